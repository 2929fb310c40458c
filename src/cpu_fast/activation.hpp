// The fast CPU path's relu, forward and backward, over flat float arrays (semantics of cpu::relu).
#pragma once

#include <cstdint>

#include "src/cpu_fast/workers.hpp"

namespace cudacnn::cpu_fast {

// Elementwise over `count` floats (count >= 1, else Error); the output is overwritten and may alias its
// input exactly (y == x, dx == dy). Bit-identical to cpu::relu / cpu::relu_backward (the same selects):
// relu(NaN) = NaN, and the backward is PyTorch's threshold_backward, dx = y <= 0 ? 0 : dy, so a NaN y passes
// dy and y = 0 gives 0 even for an infinite dy.
void relu_forward(const float* x, float* y, int64_t count, const Workers& workers);
void relu_backward(const float* y, const float* dy, float* dx, int64_t count, const Workers& workers);

}  // namespace cudacnn::cpu_fast
