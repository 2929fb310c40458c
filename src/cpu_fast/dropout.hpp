// The fast CPU path's dropout and dropout2d, forward and backward, over flat float arrays: the masks of the
// reference's Philox rule (cudacnn/ops/dropout.hpp), bit for bit.
#pragma once

#include <cstdint>

#include "cudacnn/ops/dropout.hpp"
#include "cudacnn/tensor.hpp"
#include "src/cpu_fast/workers.hpp"

namespace cudacnn::cpu_fast {

// As gpu::dropout_forward and friends without the stream: masks are those of cpu::dropout_mask /
// cpu::dropout2d_mask for the same (shape, options) (the rule in src/cpu/dropout_rule.hpp, shared with the
// reference), and values are y = float(double(x) · factor) with factor = 1 / (1 − p) in double (0 where
// dropped), the reference's own arithmetic: outputs are bit-identical to cpu::dropout & co. Eval mode or p = 0:
// y = x and an all-ones mask (nothing drawn). Every output is overwritten; y may alias x exactly (dx may alias
// dy). Masks are uint8, 1 = kept; the backward treats any nonzero entry as kept. Options are validated as the
// reference does (p in [0, 1]).

// x, y: `count` floats (count >= 1); mask: `count` bytes, written.
void dropout_forward(const float* x, float* y, uint8_t* mask, int64_t count, const cpu::DropoutOptions& options,
                     const Workers& workers);
// dx = dy · factor(mask) (dx = dy in eval mode), with the forward's mask and options.
void dropout_backward(const float* dy, const uint8_t* mask, float* dx, int64_t count,
                      const cpu::DropoutOptions& options, const Workers& workers);

// x, y: (N, C, H, W) = shape; mask: (N, C) bytes, written, unit j = n · C + c per channel plane.
void dropout2d_forward(const float* x, float* y, uint8_t* mask, const Shape& shape,
                       const cpu::DropoutOptions& options, const Workers& workers);
void dropout2d_backward(const float* dy, const uint8_t* mask, float* dx, const Shape& shape,
                        const cpu::DropoutOptions& options, const Workers& workers);

}  // namespace cudacnn::cpu_fast
