// Shape-op kernels with the CPU reference's semantics (cudacnn/ops/shape_ops.hpp): add (residual
// connections) and concat along a dimension (channels by default), forward and backward.
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>
#include <vector>

#include "cuda/bf16.cuh"
#include "cudacnn/ops/shape_ops.hpp"
#include "cudacnn/tensor.hpp"

namespace cudacnn::gpu {

// ---- flatten / reshape: views, no kernel ------------------------------------------------------------------
// Device tensors are contiguous and row-major, like the reference's, so flatten and reshape (and their
// backward passes) keep the memory as it is and only change the shape: a graph gives the output the input's
// memory (TensorView with shape cpu::flatten_output_shape / cpu::reshape_output_shape, which validate), and
// the gradient dy's memory viewed in the input's shape. These helpers do exactly that.
TensorView flatten_view(const TensorView& x, const cpu::FlattenOptions& options = {});
TensorView reshape_view(const TensorView& x, const std::vector<int64_t>& dims);

// ---- add
// ---------------------------------------------------------------------------------------------------- y = a
// + b over `count` floats (same shape, no broadcasting; count ≥ 1). y may alias a or b exactly. Tiling: the
// vectorized element-wise map (cuda/elementwise.cuh): grid-stride, float4 where aligned.
void add_forward(const float* a, const float* b, float* y, int64_t count, cudaStream_t stream);
// bf16 storage: the float sum of the widened inputs, rounded once to bf16 (8 bf16 per 16-byte vector).
void add_forward(const bf16* a, const bf16* b, bf16* y, int64_t count, cudaStream_t stream);

// Both gradients are dy itself, so the cheapest backward is none: a graph should let da and db alias dy (or
// accumulate dy into its consumers). For callers that need separate buffers this copies dy into da and db
// (overwriting them); a null da or db, or one equal to dy, is skipped.
void add_backward(const float* dy, float* da, float* db, int64_t count, cudaStream_t stream);
void add_backward(const bf16* dy, bf16* da, bf16* db, int64_t count, cudaStream_t stream);  // exact copies

// ---- concat
// -------------------------------------------------------------------------------------------------
// torch.cat(inputs, dim) of contiguous tensors: input k has shape input_shapes[k] (validated, and the output
// shape computed, by cpu::concat_output_shape; dim may be negative, 1 is the channels of (N, C, H, W)), y has
// the concatenated shape and is overwritten. Any number of inputs ≥ 1.
// Tiling: the output is `outer` rows (the product of the dimensions before dim); input k fills a run of
// size_k · inner values in each row. One launch per 8 inputs: blockIdx.z picks the input, blockIdx.y the
// row (up to 1024, grid-stride beyond), blocks of 32–256 threads (as wide as the run) stride along the run,
// so reads and writes are both coalesced; float4 copies when every run, offset and pointer is a multiple
// of 4 floats (16 bytes), float otherwise.
void concat_forward(const std::vector<const float*>& inputs, const std::vector<Shape>& input_shapes,
                    int64_t dim, float* y, cudaStream_t stream);

// The split: dx[k] (shape input_shapes[k], overwritten) is input k's slice of dy along dim.
void concat_backward(const float* dy, const std::vector<Shape>& input_shapes, int64_t dim,
                     const std::vector<float*>& dx, cudaStream_t stream);

}  // namespace cudacnn::gpu
