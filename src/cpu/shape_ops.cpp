// CPU reference of flatten, reshape, add and concat and their gradients: the spec that these kernels match.
#include "cudacnn/ops/shape_ops.hpp"

#include <cstddef>
#include <cstdint>
#include <string>
#include <utility>

#include <fmt/format.h>

#include "cudacnn/error.hpp"

namespace cudacnn::cpu {
namespace {

// "[2, -1, 3]", as PyTorch prints a requested shape (which is not a Shape: it may hold −1).
std::string dims_to_string(const std::vector<int64_t>& dims) {
    std::string text = "[";
    for (size_t i = 0; i < dims.size(); ++i) text += (i > 0 ? ", " : "") + std::to_string(dims[i]);
    return text + "]";
}

// PyTorch's maybe_wrap_dim: dim in [−rank, rank) maps to [0, rank); a scalar counts as rank 1 when
// scalar_as_1d (flatten), and has no dimension to name otherwise.
int64_t wrap_dim(const char* op, const char* name, int64_t dim, int rank, bool scalar_as_1d = false) {
    const int64_t r = (rank == 0 && scalar_as_1d) ? 1 : rank;
    CUDACNN_CHECK(r > 0, "{}: the input is a scalar (shape ()); it has no dimension {} = {}", op, name, dim);
    CUDACNN_CHECK(dim >= -r && dim < r,
                  "{}: {} = {} is out of range for a tensor of rank {}; it must be in [{}, {}]", op, name,
                  dim, rank, -r, r - 1);
    return dim < 0 ? dim + r : dim;
}

template <class T>
void check_not_empty(const char* op, const char* name, const HostTensor<T>& t) {
    CUDACNN_CHECK(!t.empty(), "{}: {} is empty (shape {}); pass a tensor with at least one element", op, name,
                  t.shape());
}

// Product of shape[begin..end), the size of a block of the row-major layout.
int64_t product(const Shape& shape, int begin, int end) {
    int64_t n = 1;
    for (int i = begin; i < end; ++i) n *= shape[i];
    return n;
}

}  // namespace

// ---- flatten ---------------------------------------------------------------------------------------------

Shape flatten_output_shape(const Shape& input, const FlattenOptions& options) {
    const int rank = input.rank();
    CUDACNN_CHECK(input.numel() > 0, "flatten: the input has shape {}; every dimension must be positive",
                  input);
    const int64_t start = wrap_dim("flatten", "start_dim", options.start_dim, rank, true);
    const int64_t end = wrap_dim("flatten", "end_dim", options.end_dim, rank, true);
    CUDACNN_CHECK(
        start <= end,
        "flatten: start_dim {} comes after end_dim {} for input {} (rank {}); start_dim must not come "
        "after end_dim",
        options.start_dim, options.end_dim, input, rank);
    if (rank == 0) return Shape{1};
    std::vector<int64_t> dims;
    for (int i = 0; i < start; ++i) dims.push_back(input[i]);
    dims.push_back(product(input, static_cast<int>(start), static_cast<int>(end) + 1));
    for (int i = static_cast<int>(end) + 1; i < rank; ++i) dims.push_back(input[i]);
    return Shape(dims);
}

template <class T>
HostTensor<T> flatten(const HostTensor<T>& x, const FlattenOptions& options) {
    check_not_empty("flatten", "x", x);
    return x.reshaped(flatten_output_shape(x.shape(), options));
}

template <class T>
ReshapeGrads<T> flatten_backward(const HostTensor<T>& dy, const Shape& input_shape,
                                 const FlattenOptions& options) {
    const Shape expected = flatten_output_shape(input_shape, options);
    CUDACNN_CHECK(dy.shape() == expected,
                  "flatten_backward: dy has shape {} but flattening {} (start_dim {}, end_dim {}) gives {}; "
                  "pass the forward's input shape and options",
                  dy.shape(), input_shape, options.start_dim, options.end_dim, expected);
    return {dy.reshaped(input_shape)};
}

// ---- reshape ---------------------------------------------------------------------------------------------

Shape reshape_output_shape(const Shape& input, const std::vector<int64_t>& dims) {
    CUDACNN_CHECK(input.numel() > 0, "reshape: the input has shape {}; every dimension must be positive",
                  input);
    CUDACNN_CHECK(dims.size() <= static_cast<size_t>(Shape::kMaxRank),
                  "reshape: shape {} has {} dimensions; at most {} are supported", dims_to_string(dims),
                  dims.size(), Shape::kMaxRank);
    int inferred = -1;  // the index of the −1 entry, if any
    int64_t known = 1;  // product of the other entries
    for (size_t i = 0; i < dims.size(); ++i) {
        if (dims[i] == -1) {
            CUDACNN_CHECK(inferred < 0,
                          "reshape: shape {} has more than one -1; only one dimension can be inferred",
                          dims_to_string(dims));
            inferred = static_cast<int>(i);
            continue;
        }
        CUDACNN_CHECK(
            dims[i] > 0,
            "reshape: shape {} has dimension {} = {}; dimensions must be positive (or -1 to infer one)",
            dims_to_string(dims), i, dims[i]);
        // A product beyond the input's count (which fits int64) is a mismatch anyway; stop before overflow.
        CUDACNN_CHECK(!__builtin_mul_overflow(known, dims[i], &known) && known <= input.numel(),
                      "reshape: shape {} has more elements than the input {} ({} elements)",
                      dims_to_string(dims), input, input.numel());
    }
    std::vector<int64_t> out = dims;
    if (inferred >= 0) {
        CUDACNN_CHECK(input.numel() % known == 0,
                      "reshape: shape {} is invalid for input {} of {} elements: {} is not a multiple of {}",
                      dims_to_string(dims), input, input.numel(), input.numel(), known);
        out[static_cast<size_t>(inferred)] = input.numel() / known;
    } else {
        CUDACNN_CHECK(known == input.numel(),
                      "reshape: shape {} has {} elements but the input {} has {}; the counts must be equal",
                      dims_to_string(dims), known, input, input.numel());
    }
    return Shape(out);
}

template <class T>
HostTensor<T> reshape(const HostTensor<T>& x, const std::vector<int64_t>& dims) {
    check_not_empty("reshape", "x", x);
    return x.reshaped(reshape_output_shape(x.shape(), dims));
}

template <class T>
ReshapeGrads<T> reshape_backward(const HostTensor<T>& dy, const Shape& input_shape) {
    check_not_empty("reshape_backward", "dy", dy);
    CUDACNN_CHECK(dy.numel() == input_shape.numel(),
                  "reshape_backward: dy has shape {} ({} elements) but the input shape {} has {}; pass the "
                  "forward's input shape",
                  dy.shape(), dy.numel(), input_shape, input_shape.numel());
    return {dy.reshaped(input_shape)};
}

// ---- add -------------------------------------------------------------------------------------------------

template <class T>
HostTensor<T> add(const HostTensor<T>& a, const HostTensor<T>& b) {
    check_not_empty("add", "a", a);
    CUDACNN_CHECK(a.shape() == b.shape(),
                  "add: a has shape {} and b has shape {}; they must be equal (add does not broadcast)",
                  a.shape(), b.shape());
    HostTensor<T> y(a.shape());
    // One rounding in T: the correctly rounded sum, which is what a kernel computes too.
    for (int64_t i = 0; i < a.numel(); ++i) y[i] = a[i] + b[i];
    return y;
}

template <class T>
AddGrads<T> add_backward(const HostTensor<T>& dy) {
    check_not_empty("add_backward", "dy", dy);
    return {dy, dy};
}

// ---- concat ----------------------------------------------------------------------------------------------

Shape concat_output_shape(const std::vector<Shape>& input_shapes, int64_t dim) {
    CUDACNN_CHECK(!input_shapes.empty(), "concat: no inputs; pass at least one tensor");
    const Shape& first = input_shapes[0];
    const int rank = first.rank();
    const int64_t d = wrap_dim("concat", "dim", dim, rank);
    std::vector<int64_t> out = first.dims();
    out[static_cast<size_t>(d)] = 0;
    for (size_t k = 0; k < input_shapes.size(); ++k) {
        const Shape& s = input_shapes[k];
        CUDACNN_CHECK(s.numel() > 0, "concat: input {} has shape {}; every dimension must be positive", k, s);
        CUDACNN_CHECK(s.rank() == rank,
                      "concat: input {} has shape {} but input 0 has shape {}; ranks must be equal", k, s,
                      first);
        for (int i = 0; i < rank; ++i) {
            CUDACNN_CHECK(
                i == d || s[i] == first[i],
                "concat: input {} has shape {} but input 0 has shape {}; along dim {} they may differ, "
                "but dimension {} must be equal",
                k, s, first, d, i);
        }
        out[static_cast<size_t>(d)] += s[static_cast<int>(d)];
    }
    return Shape(out);
}

template <class T>
HostTensor<T> concat(const std::vector<const HostTensor<T>*>& inputs, int64_t dim) {
    std::vector<Shape> shapes;
    for (size_t k = 0; k < inputs.size(); ++k) {
        CUDACNN_CHECK(inputs[k] != nullptr, "concat: input {} is a null pointer; pass a tensor", k);
        check_not_empty("concat", fmt::format("input {}", k).c_str(), *inputs[k]);
        shapes.push_back(inputs[k]->shape());
    }
    const Shape out_shape = concat_output_shape(shapes, dim);
    const int d = static_cast<int>(wrap_dim("concat", "dim", dim, out_shape.rank()));
    // Row-major: the output is `outer` blocks, each the inputs' blocks of size[d] · inner values one after
    // another.
    const int64_t outer = product(out_shape, 0, d), inner = product(out_shape, d + 1, out_shape.rank());
    HostTensor<T> y(out_shape);
    int64_t pos = 0;
    for (int64_t o = 0; o < outer; ++o) {
        for (const HostTensor<T>* input : inputs) {
            const int64_t block = input->dim(d) * inner;
            for (int64_t i = 0; i < block; ++i) y[pos++] = (*input)[o * block + i];
        }
    }
    return y;
}

template <class T>
ConcatGrads<T> concat_backward(const HostTensor<T>& dy, const std::vector<Shape>& input_shapes, int64_t dim) {
    const Shape expected = concat_output_shape(input_shapes, dim);
    CUDACNN_CHECK(
        dy.shape() == expected,
        "concat_backward: dy has shape {} but the input shapes concatenate to {} along dim {}; pass the "
        "forward's input shapes and dim",
        dy.shape(), expected, dim);
    const int d = static_cast<int>(wrap_dim("concat_backward", "dim", dim, expected.rank()));
    const int64_t outer = product(expected, 0, d), inner = product(expected, d + 1, expected.rank());
    ConcatGrads<T> grads;
    for (const Shape& s : input_shapes) grads.dx.emplace_back(s);
    int64_t pos = 0;
    for (int64_t o = 0; o < outer; ++o) {
        for (HostTensor<T>& dx : grads.dx) {
            const int64_t block = dx.dim(d) * inner;
            for (int64_t i = 0; i < block; ++i) dx[o * block + i] = dy[pos++];
        }
    }
    return grads;
}

#define CUDACNN_INSTANTIATE_SHAPE_OPS(T)                                                                  \
    template HostTensor<T> flatten(const HostTensor<T>&, const FlattenOptions&);                          \
    template ReshapeGrads<T> flatten_backward(const HostTensor<T>&, const Shape&, const FlattenOptions&); \
    template HostTensor<T> reshape(const HostTensor<T>&, const std::vector<int64_t>&);                    \
    template ReshapeGrads<T> reshape_backward(const HostTensor<T>&, const Shape&);                        \
    template HostTensor<T> add(const HostTensor<T>&, const HostTensor<T>&);                               \
    template AddGrads<T> add_backward(const HostTensor<T>&);                                              \
    template HostTensor<T> concat(const std::vector<const HostTensor<T>*>&, int64_t);                     \
    template ConcatGrads<T> concat_backward(const HostTensor<T>&, const std::vector<Shape>&, int64_t);

CUDACNN_INSTANTIATE_SHAPE_OPS(float)
CUDACNN_INSTANTIATE_SHAPE_OPS(double)

}  // namespace cudacnn::cpu
