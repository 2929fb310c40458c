// Pooling over (N, C, H, W) tensors with PyTorch's semantics: max, average, power-average (Lp), adaptive
// average and global average pooling, forward and backward (CPU reference).
#pragma once

#include <cstdint>
#include <optional>

#include "cudacnn/host_tensor.hpp"
#include "cudacnn/ops/pair2d.hpp"
#include "cudacnn/tensor.hpp"

namespace cudacnn::cpu {

// Output length of one spatial axis, PyTorch's pooling_output_shape:
//   floor((input + 2·padding − dilation·(kernel − 1) − 1 + (ceil_mode ? stride − 1 : 0)) / stride) + 1,
// and in ceil mode one less when the last window would start past the input and its left padding (at or
// beyond input + padding), so that every window covers at least one input or left-padding cell.
// Zero or less when the window does not fit; the pooling functions reject that.
int64_t pool2d_output_size(int64_t input, int64_t kernel, int64_t stride, int64_t padding, int64_t dilation,
                           bool ceil_mode);

// nn.MaxPool2d's arguments with PyTorch's defaults (kernel_size has none: it must be set).
struct MaxPool2dOptions {
    Pair2d kernel_size;
    std::optional<Pair2d> stride;  // nullopt: kernel_size, as PyTorch's stride=None
    Pair2d padding{0, 0};          // implicit −inf cells on each side; at most kernel_size / 2
    Pair2d dilation{1, 1};
    bool ceil_mode = false;
};

// nn.AvgPool2d's arguments with PyTorch's defaults (kernel_size has none: it must be set).
struct AvgPool2dOptions {
    Pair2d kernel_size;
    std::optional<Pair2d> stride;  // nullopt: kernel_size
    Pair2d padding{0, 0};          // implicit zeros on each side; at most kernel_size / 2
    bool ceil_mode = false;
    // Whether the padding cells count in the divisor. Either way, the part of a ceil-mode window that lies
    // beyond the right / bottom padding never counts (PyTorch's rule).
    bool count_include_pad = true;
    std::optional<int64_t> divisor_override;  // divide every window's sum by this (nonzero) instead
};

// nn.LPPool2d's arguments: y = (Σ_window x^p)^(1/p), computed as PyTorch does (see lp_pool2d).
struct LpPool2dOptions {
    double norm_type = 2.0;  // p > 0; PyTorch has no default, 2 is the usual choice
    Pair2d kernel_size;
    std::optional<Pair2d> stride;  // nullopt: kernel_size
    bool ceil_mode = false;
};

// Output shapes (N, C, OH, OW) for an input shape (N, C, H, W); they validate the input and options the
// way the pooling functions do and throw Error naming the op and the bad values.
Shape max_pool2d_output_shape(const Shape& input, const MaxPool2dOptions& options);
Shape avg_pool2d_output_shape(const Shape& input, const AvgPool2dOptions& options);
Shape lp_pool2d_output_shape(const Shape& input, const LpPool2dOptions& options);

template <class T>
struct MaxPool2dResult {
    HostTensor<T> output;         // (N, C, OH, OW)
    HostTensor<int64_t> indices;  // (N, C, OH, OW): the argmax as h · W + w in its (H, W) input plane,
                                  // as PyTorch's return_indices=True
};

// Gradient of a pooling op with respect to its input.
template <class T>
struct Pool2dGrads {
    HostTensor<T> dx;  // (N, C, H, W)
};

// y[n, c, oh, ow] = max over h = oh·SH − PH + i·DH, w = ow·SW − PW + j·DW inside the input (padding is −inf).
// Scans the window row by row; a value replaces the maximum only when strictly greater, so on ties the
// first maximum wins, and a NaN always replaces it (PyTorch propagates NaN). x: (N, C, H, W).
template <class T>
MaxPool2dResult<T> max_pool2d(const HostTensor<T>& x, const MaxPool2dOptions& options);

// dx[n, c, indices[n, c, oh, ow]] += dy[n, c, oh, ow]: each output's gradient goes to its argmax only.
// input_shape: (N, C, H, W) of the forward's x; indices and dy: (N, C, OH, OW).
template <class T>
Pool2dGrads<T> max_pool2d_backward(const Shape& input_shape, const HostTensor<int64_t>& indices,
                                   const HostTensor<T>& dy);

// y = Σ_window x / divisor, with zeros for the padding. The window is clipped at input + padding on the
// right / bottom; the divisor is divisor_override if set, else the clipped window's area (padding cells
// included) when count_include_pad, else the number of input cells in it. x: (N, C, H, W).
// Sums are accumulated in double and rounded once.
template <class T>
HostTensor<T> avg_pool2d(const HostTensor<T>& x, const AvgPool2dOptions& options);

// dx[cell] += dy[window] / divisor for every cell of every window. dy: (N, C, OH, OW).
template <class T>
Pool2dGrads<T> avg_pool2d_backward(const Shape& input_shape, const HostTensor<T>& dy,
                                   const AvgPool2dOptions& options);

// torch.nn.functional.lp_pool2d, step by step: s = avg_pool2d(x^p, kernel, stride, padding 0, ceil_mode),
// y = (s · KH · KW)^(1/p). That is (Σ_window x^p)^(1/p) for whole windows; a ceil-mode window clipped at
// the input is scaled by KH · KW / (its clipped area), as in PyTorch. Like PyTorch, the result is NaN where
// x^p or the root is undefined (negative x with a fractional p, a negative sum with an odd p ≠ 1).
template <class T>
HostTensor<T> lp_pool2d(const HostTensor<T>& x, const LpPool2dOptions& options);

// The chain rule through the steps above, as PyTorch's autograd takes it: where a window's s is 0 the
// gradient is 0 (PyTorch's formula passes s through relu(|s|), which has no gradient at 0).
template <class T>
Pool2dGrads<T> lp_pool2d_backward(const HostTensor<T>& x, const HostTensor<T>& dy, const LpPool2dOptions& options);

// y[n, c, i, j] = mean of x[n, c, h, w] over h in [floor(i·H/OH), ceil((i+1)·H/OH)) and likewise for w,
// PyTorch's adaptive_avg_pool2d (windows overlap when OH does not divide H; OH may exceed H).
// x: (N, C, H, W); output_size (OH, OW), both positive.
template <class T>
HostTensor<T> adaptive_avg_pool2d(const HostTensor<T>& x, Pair2d output_size);

// dx[cell] += dy[window] / window area. dy: (N, C, OH, OW), whose shape gives the output size.
template <class T>
Pool2dGrads<T> adaptive_avg_pool2d_backward(const Shape& input_shape, const HostTensor<T>& dy);

// y[n, c, 0, 0] = mean of x[n, c] over (H, W): adaptive_avg_pool2d to (1, 1). Returns (N, C, 1, 1).
template <class T>
HostTensor<T> global_avg_pool2d(const HostTensor<T>& x);

// dx[n, c, h, w] = dy[n, c, 0, 0] / (H · W). dy: (N, C, 1, 1).
template <class T>
Pool2dGrads<T> global_avg_pool2d_backward(const Shape& input_shape, const HostTensor<T>& dy);

}  // namespace cudacnn::cpu
