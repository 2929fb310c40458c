// The float bias added to the bf16 output of the cuDNN conv2d's bf16 forward (cuda flavour only).
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>

#include "cuda/bf16.cuh"

namespace cudacnn::gpu::cudnn_bf16 {

// y (N, C, HW)[n, c, i] = to bf16(y[n, c, i] + bias[c]): the bias added in float to the bf16 value cuDNN
// wrote, rounded once more to nearest even. Every size ≥ 1.
void add_channel_bias(bf16* y, const float* bias, int64_t n, int64_t c, int64_t hw, cudaStream_t stream);

}  // namespace cudacnn::gpu::cudnn_bf16
