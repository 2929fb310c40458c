// Element-wise helpers of the cuDNN conv2d's bf16 passes (cuda flavour only): widening cuDNN's bf16 weight
// and bias gradients to the float gradients the executor keeps, and the float bias added to a bf16 output.
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>

#include "cuda/bf16.cuh"

namespace cudacnn::gpu::cudnn_bf16 {

// dst[i] = src[i] as float (exact: every bf16 is a float; NaN stays NaN), count ≥ 0 elements.
// A stand-in for gpu::cast (bf16 → float), which is not on main yet; replace it once it is.
void widen(const bf16* src, float* dst, int64_t count, cudaStream_t stream);

// y (N, C, HW)[n, c, i] = to bf16(y[n, c, i] + bias[c]): the bias added in float to the bf16 value cuDNN
// wrote, rounded once more to nearest even. Every size ≥ 1.
void add_channel_bias(bf16* y, const float* bias, int64_t n, int64_t c, int64_t hw, cudaStream_t stream);

}  // namespace cudacnn::gpu::cudnn_bf16
