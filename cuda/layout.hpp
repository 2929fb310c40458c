// Memory-format conversions of (N, C, H, W) activations between NCHW and NHWC (PyTorch's
// tensor.contiguous(memory_format=...)), optionally with the float → bf16 storage cast: the executor's
// conversions at the edges of a channels_last step (the f32 NCHW input batch into the layers' format and
// type, and the flatten before the first linear layer, whose order must stay PyTorch's (c, h, w)).
#pragma once

#include <cuda_runtime_api.h>

#include "cuda/bf16.cuh"
#include "cudacnn/memory_format.hpp"
#include "cudacnn/tensor.hpp"

namespace cudacnn::gpu {

// y = x with every element (n, c, h, w) of the 4-d `shape` moved from its offset in format `from` to its
// offset in format `to` (include/cudacnn/memory_format.hpp), converted to y's type: float → float and
// bf16 → bf16 exactly, float → bf16 rounded to nearest even (as gpu::cast). from == to is a copy (or cast).
// x and y must not overlap. Every size ≥ 1, else Error.
// Tiling: an NCHW ↔ NHWC conversion transposes each sample's (C, H·W) matrix (or (H·W, C)) through a 32 × 33
// shared-memory tile (the extra column keeps a warp's column reads off one bank), 32 × 8 threads, so that
// both the reads and the writes of a warp are 32 consecutive elements.
void convert_layout(const float* x, float* y, const Shape& shape, MemoryFormat from, MemoryFormat to,
                    cudaStream_t stream);
void convert_layout(const float* x, bf16* y, const Shape& shape, MemoryFormat from, MemoryFormat to,
                    cudaStream_t stream);
void convert_layout(const bf16* x, bf16* y, const Shape& shape, MemoryFormat from, MemoryFormat to,
                    cudaStream_t stream);

}  // namespace cudacnn::gpu
