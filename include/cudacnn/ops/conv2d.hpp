// conv2d: 2-D cross-correlation with PyTorch's nn.Conv2d / F.conv2d semantics (stride, padding numbers or
// 'same' / 'valid', dilation, groups, optional bias, padding modes), forward and backward.
#pragma once

#include <cstdint>

#include "cudacnn/host_tensor.hpp"
#include "cudacnn/ops/pair2d.hpp"
#include "cudacnn/tensor.hpp"

namespace cudacnn::cpu {

// PyTorch's `padding`: numbers (the same on both sides of an axis), 'same' (stride 1 only; output size =
// input size; an odd total puts the extra row / column on the bottom / right) or 'valid' (no padding).
struct Conv2dPadding {
    enum class Kind { numbers, same, valid };

    Kind kind = Kind::numbers;
    Pair2d size{0, 0};  // only for Kind::numbers

    Conv2dPadding() = default;
    // Implicit, so that `options.padding = 1` reads as in PyTorch.
    Conv2dPadding(int64_t both) : size(both) {}  // NOLINT(google-explicit-constructor)
    Conv2dPadding(int64_t h, int64_t w) : size(h, w) {}
    static Conv2dPadding same() { return with_kind(Kind::same); }
    static Conv2dPadding valid() { return with_kind(Kind::valid); }

  private:
    static Conv2dPadding with_kind(Kind kind) {
        Conv2dPadding padding;
        padding.kind = kind;
        return padding;
    }
};

// PyTorch's `padding_mode`: what the padded border holds. reflect mirrors without repeating the edge
// (padding must be smaller than the input), replicate repeats the edge, circular wraps around (padding at
// most the input size).
enum class Conv2dPaddingMode { zeros, reflect, replicate, circular };

const char* conv2d_padding_mode_name(Conv2dPaddingMode mode);  // "zeros", "reflect", …

// nn.Conv2d's arguments other than the channel counts and kernel size (those come from the weight's shape)
// and `bias` (a tensor or none), with PyTorch's defaults.
struct Conv2dOptions {
    Pair2d stride{1, 1};
    Conv2dPadding padding{0, 0};
    Pair2d dilation{1, 1};
    int64_t groups = 1;
    Conv2dPaddingMode padding_mode = Conv2dPaddingMode::zeros;
};

// Output length of one spatial axis: floor((input + 2·padding − dilation·(kernel − 1) − 1) / stride) + 1,
// which is (W − F + 2P)/S + 1 for dilation 1. Zero or less when the dilated kernel does not fit.
int64_t conv2d_output_size(int64_t input, int64_t kernel, int64_t stride, int64_t padding,
                           int64_t dilation = 1);

// The input index that position i of a padded axis of `size` elements reads (i < 0 and i >= size lie in the
// padding), or -1 where it reads a zero. Every implementation's padding rule.
int64_t conv2d_source_index(int64_t i, int64_t size, Conv2dPaddingMode mode);

// Everything a conv2d implementation needs, validated and resolved ('same' / 'valid' turned into numbers,
// which may differ between the two sides of an axis). Kernels may assume it is consistent.
struct Conv2dGeometry {
    int64_t batch = 0, in_channels = 0, in_h = 0, in_w = 0;
    int64_t out_channels = 0, kernel_h = 0, kernel_w = 0;
    int64_t groups = 1;
    int64_t stride_h = 1, stride_w = 1, dilation_h = 1, dilation_w = 1;
    int64_t pad_top = 0, pad_bottom = 0, pad_left = 0, pad_right = 0;
    Conv2dPaddingMode padding_mode = Conv2dPaddingMode::zeros;
    int64_t out_h = 0, out_w = 0;

    int64_t in_channels_per_group() const { return in_channels / groups; }
    int64_t out_channels_per_group() const { return out_channels / groups; }
    Shape output_shape() const { return Shape{batch, out_channels, out_h, out_w}; }  // (N, OC, OH, OW)
};

// Validates input (N, C, H, W) and weight (OC, C / groups, KH, KW) against the options and resolves the
// geometry; throws Error naming the bad values otherwise.
Conv2dGeometry conv2d_geometry(const Shape& input, const Shape& weight, const Conv2dOptions& options);

// The type of conv2d's bias argument, spelled so that it takes no part in template argument deduction: T
// comes from x and weight, and a literal nullptr (bias=False) is accepted.
template <class T>
struct Conv2dBias {
    using type = const HostTensor<T>*;
};

// x: (N, C, H, W); weight: (OC, C / G, KH, KW) for G groups; bias: (OC) or nullptr for none (bias=False).
// Returns y: (N, OC, OH, OW) with, for g = oc / (OC / G) the group of output channel oc,
//   y[n, oc, oh, ow] = bias[oc] + Σ_{c, i, j} weight[oc, c, i, j]
//                                   · xp[n, g·C/G + c, oh·SH + i·DH, ow·SW + j·DW]
// where xp is x padded as the options say (xp[.., 0, 0] is the top-left padding element). Sums are
// accumulated in double and rounded once.
template <class T>
HostTensor<T> conv2d(const HostTensor<T>& x, const HostTensor<T>& weight, typename Conv2dBias<T>::type bias,
                     const Conv2dOptions& options = {});

template <class T>
struct Conv2dGrads {
    HostTensor<T> dx;       // (N, C, H, W)
    HostTensor<T> dweight;  // (OC, C / groups, KH, KW)
    HostTensor<T> dbias;    // (OC); empty when the forward had no bias
};

// Gradients of a loss with respect to x, weight and bias given dy = d loss / d y, (N, OC, OH, OW). The
// bias value is not needed, only whether there was one. Border gradients flow back to the input elements
// that the padding copied (reflect / replicate / circular), as with PyTorch's F.pad.
template <class T>
Conv2dGrads<T> conv2d_backward(const HostTensor<T>& x, const HostTensor<T>& weight, const HostTensor<T>& dy,
                               bool has_bias, const Conv2dOptions& options = {});

}  // namespace cudacnn::cpu
