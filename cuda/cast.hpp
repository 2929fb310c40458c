// Storage casts between float and bf16 activations (PyTorch's tensor.to(dtype)): the executor's conversions
// at the edges of a bf16 region, e.g. logits to float for the loss.
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>

#include "cuda/bf16.cuh"

namespace cudacnn::gpu {

// y[i] = x[i] as bf16, rounded to nearest even (as .to(torch.bfloat16)): ±0, subnormals and ±Inf keep their
// value or round as any other float, finite values above the largest bf16 (and its rounding half-way
// point) become ±Inf, NaN stays NaN (CUDA's canonical NaN; the payload is not kept).
// `count` ≥ 1 contiguous elements (any shape), else Error. Tiling: the element-wise map
// (cuda/elementwise.cuh), 4 elements per vector: a 16-byte float load and an 8-byte bf16 store, where x and y
// share their offset (in elements) from those boundaries; scalar otherwise.
void cast(const float* x, bf16* y, int64_t count, cudaStream_t stream);

// y[i] = x[i] as float: exact (every bf16 is a float), NaN stays NaN.
void cast(const bf16* x, float* y, int64_t count, cudaStream_t stream);

}  // namespace cudacnn::gpu
