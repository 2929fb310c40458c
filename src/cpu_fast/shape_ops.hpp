// The fast CPU path's add, accumulate and concat (forward and backward) over flat float arrays, with the
// semantics of cpu::add / cpu::concat (cudacnn/ops/shape_ops.hpp).
#pragma once

#include <cstdint>
#include <vector>

#include "cudacnn/tensor.hpp"
#include "src/cpu_fast/workers.hpp"

namespace cudacnn::cpu_fast {

// y = a + b over `count` floats (count >= 1): one float rounding, bit-identical to cpu::add. y may alias a or
// b exactly.
void add(const float* a, const float* b, float* y, int64_t count, const Workers& workers);

// sum += value over `count` floats (count >= 1): a gradient that several consumers feed.
void accumulate(float* sum, const float* value, int64_t count, const Workers& workers);

// torch.cat(inputs, dim) of contiguous tensors, as gpu::concat_forward: input k has shape input_shapes[k]
// (validated by cpu::concat_output_shape, whose errors these are; dim may be negative, 1 = channels of
// (N, C, H, W)); y has the concatenated shape and is overwritten. A copy, so bit-identical to cpu::concat.
void concat_forward(const std::vector<const float*>& inputs, const std::vector<Shape>& input_shapes,
                    int64_t dim, float* y, const Workers& workers);

// The split: dx[k] (shape input_shapes[k], overwritten) is input k's slice of dy along dim; a null dx[k] is
// skipped (no gradient wanted).
void concat_backward(const float* dy, const std::vector<Shape>& input_shapes, int64_t dim,
                     const std::vector<float*>& dx, const Workers& workers);

}  // namespace cudacnn::cpu_fast
