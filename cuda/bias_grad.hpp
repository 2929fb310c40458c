// Bias gradients: deterministic per-channel sums of dy for convolution (N, C, H, W) and linear (N, C) layers.
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>

#include "cuda/bf16.cuh"
#include "cudacnn/memory_format.hpp"

namespace cudacnn::gpu {

// db (C)[c] = Σ over n, h, w of dy (N, C, H, W)[n, c, h, w]: the bias gradient of a convolution.
// Overwrites db (does not accumulate). Deterministic: no atomics, a fixed summation order for given sizes.
// One block of 512 threads per channel: thread t sums the elements t, t + 512, … of the channel's N · H · W
// values in (n, h, w) order (coalesced within each plane, no division in the loop), then a warp-shuffle and
// shared-memory tree adds the 512 partial sums. Throws Error unless every size is positive.
// format: dy's memory format. NHWC sums the same elements in the same order (so the same bits as NCHW on the
// permuted dy); its reads are C elements apart within a block, the neighbouring channels' blocks reading the
// rest of each sector (through L2) — correct and deterministic, not yet a channels-innermost reduction.
void conv_bias_grad(const float* dy, float* db, int64_t n, int64_t c, int64_t h, int64_t w,
                    cudaStream_t stream, MemoryFormat format = MemoryFormat::nchw);
// The same sums of a bf16 dy, each element widened exactly; float sums, float db.
void conv_bias_grad(const bf16* dy, float* db, int64_t n, int64_t c, int64_t h, int64_t w,
                    cudaStream_t stream, MemoryFormat format = MemoryFormat::nchw);

// db (C)[c] = Σ_n dy (N, C)[n, c]: the bias gradient of a linear layer. Overwrites db; deterministic.
// Blocks of 32 × 8 threads cover 32 channels: lane x reads column c (a warp reads 128 contiguous bytes of a
// row), thread row y sums rows y, y + 8, …, and thread row 0 adds the 8 partial sums in order.
// Throws Error unless both sizes are positive.
void linear_bias_grad(const float* dy, float* db, int64_t n, int64_t c, cudaStream_t stream);
// The same for a bf16 dy (--precision bf16), widened exactly; db stays float, summed in float in the same
// order.
void linear_bias_grad(const bf16* dy, float* db, int64_t n, int64_t c, cudaStream_t stream);

}  // namespace cudacnn::gpu
