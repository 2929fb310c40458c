// Pair2d: a per-axis (height, width) value for the spatial arguments of conv and pooling ops.
#pragma once

#include <cstdint>

namespace cudacnn::cpu {

// One number means the same for both axes, as in PyTorch's `stride=2`; two are (height, width).
struct Pair2d {
    int64_t h = 0;
    int64_t w = 0;

    Pair2d() = default;
    // Implicit, so that `options.stride = 2` reads as in PyTorch.
    Pair2d(int64_t both) : h(both), w(both) {}  // NOLINT(google-explicit-constructor)
    Pair2d(int64_t h_, int64_t w_) : h(h_), w(w_) {}
};

}  // namespace cudacnn::cpu
