// CPU reference for conv2d: plain loops that define what the conv2d kernels must compute (PyTorch semantics).
#include "cudacnn/ops/conv2d.hpp"

#include <algorithm>
#include <vector>

#include "cudacnn/error.hpp"

namespace cudacnn::cpu {

const char* conv2d_padding_mode_name(Conv2dPaddingMode mode) {
    switch (mode) {
        case Conv2dPaddingMode::zeros:
            return "zeros";
        case Conv2dPaddingMode::reflect:
            return "reflect";
        case Conv2dPaddingMode::replicate:
            return "replicate";
        case Conv2dPaddingMode::circular:
            return "circular";
    }
    return "unknown";
}

namespace {

// Floor division for a positive divisor: C++'s / truncates towards zero, which would report an output
// size of 1 instead of 0 for a kernel that overshoots the padded input by less than a stride.
int64_t floor_div(int64_t a, int64_t b) {
    return a >= 0 ? a / b : -((-a + b - 1) / b);
}

// Output length when the two sides of an axis are padded differently ('same' with an odd total).
int64_t output_size(int64_t input, int64_t kernel, int64_t stride, int64_t pad_before, int64_t pad_after,
                    int64_t dilation) {
    return floor_div(input + pad_before + pad_after - dilation * (kernel - 1) - 1, stride) + 1;
}

// table[o · kernel + k]: the input index that output position o reads through kernel tap k along one axis,
// or -1 where it reads a zero. Computed once per axis so that the tap loop below does no index arithmetic
// beyond offsets.
std::vector<int64_t> source_table(int64_t out_size, int64_t kernel, int64_t stride, int64_t pad_before,
                                  int64_t dilation, int64_t in_size, Conv2dPaddingMode mode) {
    std::vector<int64_t> table(static_cast<size_t>(out_size * kernel));
    for (int64_t o = 0; o < out_size; ++o) {
        for (int64_t k = 0; k < kernel; ++k) {
            table[static_cast<size_t>(o * kernel + k)] =
                conv2d_source_index(o * stride - pad_before + k * dilation, in_size, mode);
        }
    }
    return table;
}

// Calls tap(x_offset, weight_offset, y_offset) once for every product weight · x that contributes to an
// output element. The forward pass and both backward gradients are all sums over these same taps, so they
// share this one loop nest and cannot drift apart. Offsets are row-major in x (N, C, H, W),
// weight (OC, C / G, KH, KW) and y (N, OC, OH, OW).
template <class Tap>
void for_each_tap(const Conv2dGeometry& g, Tap&& tap) {
    const std::vector<int64_t> rows =
        source_table(g.out_h, g.kernel_h, g.stride_h, g.pad_top, g.dilation_h, g.in_h, g.padding_mode);
    const std::vector<int64_t> cols =
        source_table(g.out_w, g.kernel_w, g.stride_w, g.pad_left, g.dilation_w, g.in_w, g.padding_mode);
    const int64_t channels_per_group = g.in_channels_per_group();
    const int64_t x_plane = g.in_h * g.in_w, w_plane = g.kernel_h * g.kernel_w;
    int64_t y_offset = 0;
    for (int64_t n = 0; n < g.batch; ++n) {
        for (int64_t oc = 0; oc < g.out_channels; ++oc) {
            // Output channel oc belongs to group `group` and sees only that group's input channels.
            const int64_t first_channel = oc / g.out_channels_per_group() * channels_per_group;
            for (int64_t oh = 0; oh < g.out_h; ++oh) {
                for (int64_t ow = 0; ow < g.out_w; ++ow, ++y_offset) {
                    for (int64_t c = 0; c < channels_per_group; ++c) {
                        const int64_t x_base = (n * g.in_channels + first_channel + c) * x_plane;
                        const int64_t w_base = (oc * channels_per_group + c) * w_plane;
                        for (int64_t i = 0; i < g.kernel_h; ++i) {
                            const int64_t ih = rows[static_cast<size_t>(oh * g.kernel_h + i)];
                            if (ih < 0) continue;
                            for (int64_t j = 0; j < g.kernel_w; ++j) {
                                const int64_t iw = cols[static_cast<size_t>(ow * g.kernel_w + j)];
                                if (iw < 0) continue;
                                tap(x_base + ih * g.in_w + iw, w_base + i * g.kernel_w + j, y_offset);
                            }
                        }
                    }
                }
            }
        }
    }
}

template <class T>
HostTensor<T> rounded(const Shape& shape, const std::vector<double>& sums) {
    return HostTensor<T>(shape, std::vector<T>(sums.begin(), sums.end()));
}

}  // namespace

// The geometry checks guarantee that reflect and circular never wrap more than once.
int64_t conv2d_source_index(int64_t i, int64_t size, Conv2dPaddingMode mode) {
    if (i >= 0 && i < size) return i;
    switch (mode) {
        case Conv2dPaddingMode::zeros:
            return -1;
        case Conv2dPaddingMode::reflect:
            return i < 0 ? -i : 2 * (size - 1) - i;  // edge not repeated
        case Conv2dPaddingMode::replicate:
            return i < 0 ? 0 : size - 1;
        case Conv2dPaddingMode::circular:
            return i < 0 ? i + size : i - size;
    }
    return -1;
}

int64_t conv2d_output_size(int64_t input, int64_t kernel, int64_t stride, int64_t padding, int64_t dilation) {
    CUDACNN_CHECK(input > 0 && kernel > 0 && stride > 0 && padding >= 0 && dilation > 0,
                  "conv2d_output_size: input {}, kernel {}, stride {} and dilation {} must be positive and "
                  "padding {} non-negative",
                  input, kernel, stride, dilation, padding);
    return output_size(input, kernel, stride, padding, padding, dilation);
}

Conv2dGeometry conv2d_geometry(const Shape& input, const Shape& weight, const Conv2dOptions& options) {
    CUDACNN_CHECK(input.rank() == 4,
                  "conv2d: input shape {} must be (N, C, H, W); reshape an unbatched (C, H, W) input to "
                  "(1, C, H, W)",
                  input);
    CUDACNN_CHECK(weight.rank() == 4,
                  "conv2d: weight shape {} must be (out_channels, in_channels / groups, "
                  "kernel_h, kernel_w)",
                  weight);
    CUDACNN_CHECK(input.numel() > 0, "conv2d: input shape {} has a zero size; every size must be positive",
                  input);
    CUDACNN_CHECK(weight.numel() > 0, "conv2d: weight shape {} has a zero size; every size must be positive",
                  weight);
    const Conv2dOptions& o = options;
    CUDACNN_CHECK(o.groups > 0, "conv2d: groups {} must be positive", o.groups);
    CUDACNN_CHECK(o.stride.h > 0 && o.stride.w > 0, "conv2d: stride ({}, {}) must be positive", o.stride.h,
                  o.stride.w);
    CUDACNN_CHECK(o.dilation.h > 0 && o.dilation.w > 0, "conv2d: dilation ({}, {}) must be positive",
                  o.dilation.h, o.dilation.w);

    Conv2dGeometry g;
    g.batch = input[0];
    g.in_channels = input[1];
    g.in_h = input[2];
    g.in_w = input[3];
    g.out_channels = weight[0];
    g.kernel_h = weight[2];
    g.kernel_w = weight[3];
    g.groups = o.groups;
    g.stride_h = o.stride.h;
    g.stride_w = o.stride.w;
    g.dilation_h = o.dilation.h;
    g.dilation_w = o.dilation.w;
    g.padding_mode = o.padding_mode;

    CUDACNN_CHECK(g.in_channels % g.groups == 0 && g.out_channels % g.groups == 0,
                  "conv2d: groups {} must divide in_channels {} and out_channels {}", g.groups, g.in_channels,
                  g.out_channels);
    CUDACNN_CHECK(
        weight[1] * g.groups == g.in_channels,
        "conv2d: weight shape {} expects {} input channels ({} per group × {} groups) but input "
        "shape {} has {}; the weight must be (out_channels, in_channels / groups, kernel_h, kernel_w)",
        weight, weight[1] * g.groups, weight[1], g.groups, input, g.in_channels);

    switch (o.padding.kind) {
        case Conv2dPadding::Kind::numbers:
            CUDACNN_CHECK(o.padding.size.h >= 0 && o.padding.size.w >= 0,
                          "conv2d: padding ({}, {}) must not be negative", o.padding.size.h,
                          o.padding.size.w);
            g.pad_top = g.pad_bottom = o.padding.size.h;
            g.pad_left = g.pad_right = o.padding.size.w;
            break;
        case Conv2dPadding::Kind::same: {
            CUDACNN_CHECK(
                g.stride_h == 1 && g.stride_w == 1,
                "conv2d: padding='same' needs stride 1 but stride is ({}, {}); give padding as numbers "
                "for a strided convolution",
                g.stride_h, g.stride_w);
            // As PyTorch: the total d·(k − 1) split with the smaller half first, so an odd total puts the
            // extra row at the bottom and the extra column on the right.
            const int64_t total_h = g.dilation_h * (g.kernel_h - 1),
                          total_w = g.dilation_w * (g.kernel_w - 1);
            g.pad_top = total_h / 2;
            g.pad_bottom = total_h - g.pad_top;
            g.pad_left = total_w / 2;
            g.pad_right = total_w - g.pad_left;
            break;
        }
        case Conv2dPadding::Kind::valid:
            break;  // no padding
    }

    const int64_t max_pad_h = std::max(g.pad_top, g.pad_bottom),
                  max_pad_w = std::max(g.pad_left, g.pad_right);
    if (g.padding_mode == Conv2dPaddingMode::reflect) {
        CUDACNN_CHECK(max_pad_h < g.in_h && max_pad_w < g.in_w,
                      "conv2d: padding_mode 'reflect' needs padding smaller than the input, but padding "
                      "(top {}, bottom {}, left {}, right {}) meets input height {} and width {}; use less "
                      "padding or padding_mode 'replicate'",
                      g.pad_top, g.pad_bottom, g.pad_left, g.pad_right, g.in_h, g.in_w);
    }
    if (g.padding_mode == Conv2dPaddingMode::circular) {
        CUDACNN_CHECK(
            max_pad_h <= g.in_h && max_pad_w <= g.in_w,
            "conv2d: padding_mode 'circular' needs padding at most the input size (it would wrap "
            "around more than once), but padding (top {}, bottom {}, left {}, right {}) exceeds input "
            "height {} or width {}",
            g.pad_top, g.pad_bottom, g.pad_left, g.pad_right, g.in_h, g.in_w);
    }

    g.out_h = output_size(g.in_h, g.kernel_h, g.stride_h, g.pad_top, g.pad_bottom, g.dilation_h);
    g.out_w = output_size(g.in_w, g.kernel_w, g.stride_w, g.pad_left, g.pad_right, g.dilation_w);
    CUDACNN_CHECK(
        g.out_h > 0 && g.out_w > 0,
        "conv2d: the kernel ({}, {}) with dilation ({}, {}) spans ({}, {}), more than the padded input "
        "({}, {}); use a smaller kernel or dilation, or more padding",
        g.kernel_h, g.kernel_w, g.dilation_h, g.dilation_w, g.dilation_h * (g.kernel_h - 1) + 1,
        g.dilation_w * (g.kernel_w - 1) + 1, g.in_h + g.pad_top + g.pad_bottom,
        g.in_w + g.pad_left + g.pad_right);
    return g;
}

template <class T>
HostTensor<T> conv2d(const HostTensor<T>& x, const HostTensor<T>& weight, typename Conv2dBias<T>::type bias,
                     const Conv2dOptions& options) {
    const Conv2dGeometry g = conv2d_geometry(x.shape(), weight.shape(), options);
    if (bias != nullptr) {
        CUDACNN_CHECK(bias->shape() == Shape{g.out_channels},
                      "conv2d: bias shape {} must be ({}), one value per output channel", bias->shape(),
                      g.out_channels);
    }
    const Shape y_shape = g.output_shape();  // (N, OC, OH, OW)
    std::vector<double> y(static_cast<size_t>(y_shape.numel()), 0.0);
    if (bias != nullptr) {
        for (int64_t i = 0; i < y_shape.numel(); ++i) {
            const int64_t oc = (i / (g.out_h * g.out_w)) % g.out_channels;
            y[i] = static_cast<double>((*bias)[oc]);
        }
    }
    for_each_tap(g, [&](int64_t xo, int64_t wo, int64_t yo) {
        y[yo] += static_cast<double>(weight[wo]) * static_cast<double>(x[xo]);
    });
    return rounded<T>(y_shape, y);
}

template <class T>
Conv2dGrads<T> conv2d_backward(const HostTensor<T>& x, const HostTensor<T>& weight, const HostTensor<T>& dy,
                               bool has_bias, const Conv2dOptions& options) {
    const Conv2dGeometry g = conv2d_geometry(x.shape(), weight.shape(), options);
    CUDACNN_CHECK(dy.shape() == g.output_shape(),
                  "conv2d_backward: dy shape {} must be the output shape {} of input {} and weight {}",
                  dy.shape(), g.output_shape(), x.shape(), weight.shape());

    // Each tap x · w contributed to y, so it sends dy · w back to x and dy · x back to w; a padded position
    // that copied an input element sends its share to that element.
    std::vector<double> dx(static_cast<size_t>(x.numel()), 0.0);
    std::vector<double> dw(static_cast<size_t>(weight.numel()), 0.0);
    for_each_tap(g, [&](int64_t xo, int64_t wo, int64_t yo) {
        const double d = static_cast<double>(dy[yo]);
        dx[xo] += d * static_cast<double>(weight[wo]);
        dw[wo] += d * static_cast<double>(x[xo]);
    });

    Conv2dGrads<T> grads;
    grads.dx = rounded<T>(x.shape(), dx);
    grads.dweight = rounded<T>(weight.shape(), dw);
    if (has_bias) {
        // bias[oc] was added to every output element of channel oc.
        std::vector<double> db(static_cast<size_t>(g.out_channels), 0.0);
        for (int64_t i = 0; i < dy.numel(); ++i) {
            db[(i / (g.out_h * g.out_w)) % g.out_channels] += static_cast<double>(dy[i]);
        }
        grads.dbias = rounded<T>(Shape{g.out_channels}, db);
    }
    return grads;
}

template HostTensor<float> conv2d(const HostTensor<float>&, const HostTensor<float>&,
                                  const HostTensor<float>*, const Conv2dOptions&);
template HostTensor<double> conv2d(const HostTensor<double>&, const HostTensor<double>&,
                                   const HostTensor<double>*, const Conv2dOptions&);
template Conv2dGrads<float> conv2d_backward(const HostTensor<float>&, const HostTensor<float>&,
                                            const HostTensor<float>&, bool, const Conv2dOptions&);
template Conv2dGrads<double> conv2d_backward(const HostTensor<double>&, const HostTensor<double>&,
                                             const HostTensor<double>&, bool, const Conv2dOptions&);

}  // namespace cudacnn::cpu
