// ReLU's rule, shared by the activation kernels and the kernels that fuse a ReLU (batch norm, max pooling),
// so that a fused layer computes exactly the bits of the separate ones.
#pragma once

#include "cuda/launch.cuh"

namespace cudacnn::gpu {

// x < 0 rather than max(x, 0), so that NaN stays NaN as in the reference.
__device__ inline float relu_value(float x) {
    return x < 0.0f ? 0.0f : x;
}

// A select, not dy · (y > 0): an infinite dy where y = 0 gives 0, and a NaN y passes dy, as the reference.
__device__ inline float relu_gradient(float y, float dy) {
    return y <= 0.0f ? 0.0f : dy;
}

}  // namespace cudacnn::gpu
