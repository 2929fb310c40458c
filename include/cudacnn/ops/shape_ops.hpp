// Shape ops with PyTorch's semantics: flatten, reshape (with −1 inference), add (residual connections) and
// concat (torch.cat, along channels by default): CPU reference, forward and backward.
#pragma once

#include <cstdint>
#include <vector>

#include "cudacnn/host_tensor.hpp"
#include "cudacnn/tensor.hpp"

namespace cudacnn::cpu {

// Tensors here are contiguous and row-major, so flatten and reshape keep the order of the values and only
// change the shape. Inputs must have at least one element (an empty tensor or a zero dimension is an Error).
// Dimension arguments may be negative and count from the end, as in PyTorch (−1 is the last dimension).

// Gradient of flatten and reshape: dy in the input's shape.
template <class T>
struct ReshapeGrads {
    HostTensor<T> dx;
};

// ---- flatten ---------------------------------------------------------------------------------------------

// nn.Flatten's arguments and defaults (torch.flatten's start_dim is 0 instead): dimensions start_dim..end_dim
// (inclusive) become one. (N, C, H, W) → (N, C·H·W) with the defaults.
struct FlattenOptions {
    int64_t start_dim = 1;
    int64_t end_dim = -1;
};

// The output shape; throws Error when a dimension is out of range or start_dim comes after end_dim. As in
// PyTorch, a scalar (rank 0) counts as rank 1 for the range and flattens to (1).
Shape flatten_output_shape(const Shape& input, const FlattenOptions& options = {});

template <class T>
HostTensor<T> flatten(const HostTensor<T>& x, const FlattenOptions& options = {});

// dx = dy reshaped to input_shape; dy must have flatten_output_shape(input_shape, options).
template <class T>
ReshapeGrads<T> flatten_backward(const HostTensor<T>& dy, const Shape& input_shape,
                                 const FlattenOptions& options = {});

// ---- reshape ---------------------------------------------------------------------------------------------

// The output shape for torch.reshape(x, dims): at most one entry may be −1 and is inferred so that the
// element count stays the same; the others must be positive. Throws Error on a count mismatch, more than one
// −1, a zero or other negative entry, or more than Shape::kMaxRank dimensions.
Shape reshape_output_shape(const Shape& input, const std::vector<int64_t>& dims);

template <class T>
HostTensor<T> reshape(const HostTensor<T>& x, const std::vector<int64_t>& dims);

// dx = dy reshaped to input_shape; dy must have as many elements.
template <class T>
ReshapeGrads<T> reshape_backward(const HostTensor<T>& dy, const Shape& input_shape);

// ---- add -------------------------------------------------------------------------------------------------

// a + b element-wise, for residual connections: a and b must have the same shape (no broadcasting).
template <class T>
HostTensor<T> add(const HostTensor<T>& a, const HostTensor<T>& b);

template <class T>
struct AddGrads {
    HostTensor<T> da;  // = dy
    HostTensor<T> db;  // = dy
};

// Both gradients are dy itself.
template <class T>
AddGrads<T> add_backward(const HostTensor<T>& dy);

// ---- concat ----------------------------------------------------------------------------------------------

// The output shape of torch.cat(inputs, dim): all inputs have the same rank (at least 1) and the same sizes
// except along dim, where the output's size is the sum. dim = 1 is the channels of (N, C, H, W).
Shape concat_output_shape(const std::vector<Shape>& input_shapes, int64_t dim = 1);

// torch.cat of one or more tensors along dim, in the order given; e.g. (N, C1, H, W) and (N, C2, H, W) →
// (N, C1 + C2, H, W). Pointers so that callers need not copy their tensors into a vector; none may be null.
template <class T>
HostTensor<T> concat(const std::vector<const HostTensor<T>*>& inputs, int64_t dim = 1);

template <class T>
struct ConcatGrads {
    std::vector<HostTensor<T>> dx;  // one per input, in order, each in that input's shape
};

// Splits dy along dim into slices of the inputs' shapes (which must concatenate to dy's shape).
template <class T>
ConcatGrads<T> concat_backward(const HostTensor<T>& dy, const std::vector<Shape>& input_shapes,
                               int64_t dim = 1);

}  // namespace cudacnn::cpu
