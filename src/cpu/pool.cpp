// CPU reference for pooling (max, average, Lp, adaptive and global average) with PyTorch's semantics.
#include "cudacnn/ops/pool.hpp"

#include <algorithm>
#include <cmath>
#include <limits>

#include "cudacnn/error.hpp"

namespace cudacnn::cpu {

namespace {

// Everything one pooling call needs, validated: input (N, C, H, W), window, output (OH, OW).
struct PoolGeometry {
    int64_t n = 0, c = 0, h = 0, w = 0;
    int64_t kh = 1, kw = 1, sh = 1, sw = 1, ph = 0, pw = 0, dh = 1, dw = 1;
    int64_t oh = 0, ow = 0;

    Shape output_shape() const { return Shape{n, c, oh, ow}; }  // (N, C, OH, OW)
};

void check_input(const char* op, const Shape& input) {
    CUDACNN_CHECK(input.rank() == 4, "{}: input must be (N, C, H, W), got shape {}", op, input);
    CUDACNN_CHECK(input[0] > 0 && input[1] > 0 && input[2] > 0 && input[3] > 0,
                  "{}: input sizes must be positive, got shape {}", op, input);
}

// PyTorch's pool2d_shape_check, with its rules and in its order.
PoolGeometry pool_geometry(const char* op, const Shape& input, Pair2d kernel, std::optional<Pair2d> stride,
                           Pair2d padding, Pair2d dilation, bool ceil_mode) {
    check_input(op, input);
    const Pair2d s = stride.value_or(kernel);
    CUDACNN_CHECK(kernel.h > 0 && kernel.w > 0, "{}: kernel_size ({}, {}) must be positive", op, kernel.h,
                  kernel.w);
    CUDACNN_CHECK(s.h > 0 && s.w > 0, "{}: stride ({}, {}) must be positive", op, s.h, s.w);
    CUDACNN_CHECK(dilation.h > 0 && dilation.w > 0, "{}: dilation ({}, {}) must be positive", op, dilation.h,
                  dilation.w);
    CUDACNN_CHECK(padding.h >= 0 && padding.w >= 0, "{}: padding ({}, {}) must not be negative", op, padding.h,
                  padding.w);
    CUDACNN_CHECK(padding.h <= kernel.h / 2 && padding.w <= kernel.w / 2,
                  "{}: padding ({}, {}) must be at most half of kernel_size ({}, {})", op, padding.h, padding.w,
                  kernel.h, kernel.w);
    PoolGeometry g;
    g.n = input[0], g.c = input[1], g.h = input[2], g.w = input[3];
    g.kh = kernel.h, g.kw = kernel.w, g.sh = s.h, g.sw = s.w;
    g.ph = padding.h, g.pw = padding.w, g.dh = dilation.h, g.dw = dilation.w;
    g.oh = pool2d_output_size(g.h, g.kh, g.sh, g.ph, g.dh, ceil_mode);
    g.ow = pool2d_output_size(g.w, g.kw, g.sw, g.pw, g.dw, ceil_mode);
    CUDACNN_CHECK(g.oh >= 1 && g.ow >= 1,
                  "{}: input {} is too small for kernel_size ({}, {}), stride ({}, {}), padding ({}, {}), "
                  "dilation ({}, {}): the output would be {}x{}; use a larger input or a smaller window",
                  op, input, g.kh, g.kw, g.sh, g.sw, g.ph, g.pw, g.dh, g.dw, g.oh, g.ow);
    return g;
}

PoolGeometry max_geometry(const Shape& input, const MaxPool2dOptions& o) {
    return pool_geometry("max_pool2d", input, o.kernel_size, o.stride, o.padding, o.dilation, o.ceil_mode);
}

PoolGeometry avg_geometry(const Shape& input, const AvgPool2dOptions& o) {
    PoolGeometry g = pool_geometry("avg_pool2d", input, o.kernel_size, o.stride, o.padding, 1, o.ceil_mode);
    CUDACNN_CHECK(!o.divisor_override || *o.divisor_override != 0,
                  "avg_pool2d: divisor_override must not be 0; leave it unset to divide by the window size");
    return g;
}

PoolGeometry lp_geometry(const Shape& input, const LpPool2dOptions& o) {
    PoolGeometry g = pool_geometry("lp_pool2d", input, o.kernel_size, o.stride, 0, 1, o.ceil_mode);
    CUDACNN_CHECK(std::isfinite(o.norm_type) && o.norm_type > 0,
                  "lp_pool2d: norm_type {} must be positive and finite (use max_pool2d for p = inf)", o.norm_type);
    return g;
}

// dy must be the forward's output shape for this input.
void check_dy(const char* op, const Shape& dy, const Shape& expected) {
    CUDACNN_CHECK(dy == expected, "{}: dy has shape {} but the forward's output has shape {}", op, dy, expected);
}

// One average-pooling window after PyTorch's clipping rules: input cells [h0, h1) × [w0, w1), divided by
// `divisor`. Empty (h0 >= h1 or w0 >= w1) only for windows entirely in the padding, whose output is 0.
struct AvgWindow {
    int64_t h0, h1, w0, w1;
    int64_t divisor;
};

AvgWindow avg_window(const PoolGeometry& g, int64_t oh, int64_t ow, bool count_include_pad,
                     std::optional<int64_t> divisor_override) {
    int64_t h0 = oh * g.sh - g.ph, w0 = ow * g.sw - g.pw;
    // A ceil-mode window may reach past the right padding; that part counts nowhere.
    int64_t h1 = std::min(h0 + g.kh, g.h + g.ph), w1 = std::min(w0 + g.kw, g.w + g.pw);
    const int64_t area_with_pad = (h1 - h0) * (w1 - w0);
    h0 = std::max<int64_t>(h0, 0), w0 = std::max<int64_t>(w0, 0);
    h1 = std::min(h1, g.h), w1 = std::min(w1, g.w);
    int64_t divisor = count_include_pad ? area_with_pad : (h1 - h0) * (w1 - w0);
    if (divisor_override) divisor = *divisor_override;
    return {h0, h1, w0, w1, divisor};
}

// Adaptive pooling's window along one axis for output index i: [floor(i·in/out), ceil((i+1)·in/out)).
int64_t adaptive_start(int64_t i, int64_t in, int64_t out) { return i * in / out; }
int64_t adaptive_end(int64_t i, int64_t in, int64_t out) { return ((i + 1) * in + out - 1) / out; }

}  // namespace

int64_t pool2d_output_size(int64_t input, int64_t kernel, int64_t stride, int64_t padding, int64_t dilation,
                           bool ceil_mode) {
    const int64_t numerator = input + 2 * padding - dilation * (kernel - 1) - 1 + (ceil_mode ? stride - 1 : 0);
    // Floor division, also for a negative numerator (a window that does not fit).
    int64_t out = numerator / stride - ((numerator % stride != 0) && (numerator < 0)) + 1;
    if (ceil_mode && (out - 1) * stride >= input + padding) --out;
    return out;
}

Shape max_pool2d_output_shape(const Shape& input, const MaxPool2dOptions& options) {
    return max_geometry(input, options).output_shape();
}

Shape avg_pool2d_output_shape(const Shape& input, const AvgPool2dOptions& options) {
    return avg_geometry(input, options).output_shape();
}

Shape lp_pool2d_output_shape(const Shape& input, const LpPool2dOptions& options) {
    return lp_geometry(input, options).output_shape();
}

template <class T>
MaxPool2dResult<T> max_pool2d(const HostTensor<T>& x, const MaxPool2dOptions& options) {
    const PoolGeometry g = max_geometry(x.shape(), options);
    MaxPool2dResult<T> result{HostTensor<T>(g.output_shape()), HostTensor<int64_t>(g.output_shape())};
    for (int64_t plane = 0; plane < g.n * g.c; ++plane) {
        const T* in = x.data() + plane * g.h * g.w;  // (H, W)
        T* out = result.output.data() + plane * g.oh * g.ow;
        int64_t* indices = result.indices.data() + plane * g.oh * g.ow;
        for (int64_t oh = 0; oh < g.oh; ++oh) {
            for (int64_t ow = 0; ow < g.ow; ++ow) {
                int64_t h0 = oh * g.sh - g.ph, w0 = ow * g.sw - g.pw;
                const int64_t h1 = std::min(h0 + (g.kh - 1) * g.dh + 1, g.h);
                const int64_t w1 = std::min(w0 + (g.kw - 1) * g.dw + 1, g.w);
                // Skip the −inf padding cells in steps of the dilation, so that the scan stays on the grid.
                while (h0 < 0) h0 += g.dh;
                while (w0 < 0) w0 += g.dw;
                int64_t best = h0 * g.w + w0;
                T best_value = -std::numeric_limits<T>::infinity();
                for (int64_t h = h0; h < h1; h += g.dh) {
                    for (int64_t w = w0; w < w1; w += g.dw) {
                        const T value = in[h * g.w + w];
                        if (value > best_value || std::isnan(value)) {
                            best_value = value;
                            best = h * g.w + w;
                        }
                    }
                }
                out[oh * g.ow + ow] = best_value;
                indices[oh * g.ow + ow] = best;
            }
        }
    }
    return result;
}

template <class T>
Pool2dGrads<T> max_pool2d_backward(const Shape& input_shape, const HostTensor<int64_t>& indices,
                                   const HostTensor<T>& dy) {
    check_input("max_pool2d_backward", input_shape);
    CUDACNN_CHECK(dy.shape().rank() == 4 && dy.dim(0) == input_shape[0] && dy.dim(1) == input_shape[1],
                  "max_pool2d_backward: dy has shape {} but the input {} needs (N, C, OH, OW) = ({}, {}, ·, ·)",
                  dy.shape(), input_shape, input_shape[0], input_shape[1]);
    CUDACNN_CHECK(indices.shape() == dy.shape(), "max_pool2d_backward: indices have shape {} but dy has shape {}",
                  indices.shape(), dy.shape());
    const int64_t plane_size = input_shape[2] * input_shape[3], out_plane_size = dy.dim(2) * dy.dim(3);
    Pool2dGrads<T> grads{HostTensor<T>(input_shape)};
    for (int64_t plane = 0; plane < input_shape[0] * input_shape[1]; ++plane) {
        for (int64_t o = 0; o < out_plane_size; ++o) {
            const int64_t i = indices[plane * out_plane_size + o];
            CUDACNN_CHECK(i >= 0 && i < plane_size,
                          "max_pool2d_backward: index {} is outside the {}x{} input plane; pass the indices "
                          "that max_pool2d returned for this input",
                          i, input_shape[2], input_shape[3]);
            // Overlapping windows may share an argmax; each adds its gradient.
            grads.dx[plane * plane_size + i] += dy[plane * out_plane_size + o];
        }
    }
    return grads;
}

template <class T>
HostTensor<T> avg_pool2d(const HostTensor<T>& x, const AvgPool2dOptions& options) {
    const PoolGeometry g = avg_geometry(x.shape(), options);
    HostTensor<T> y(g.output_shape());
    for (int64_t plane = 0; plane < g.n * g.c; ++plane) {
        const T* in = x.data() + plane * g.h * g.w;  // (H, W)
        T* out = y.data() + plane * g.oh * g.ow;
        for (int64_t oh = 0; oh < g.oh; ++oh) {
            for (int64_t ow = 0; ow < g.ow; ++ow) {
                const AvgWindow win = avg_window(g, oh, ow, options.count_include_pad, options.divisor_override);
                double sum = 0.0;
                for (int64_t h = win.h0; h < win.h1; ++h) {
                    for (int64_t w = win.w0; w < win.w1; ++w) sum += static_cast<double>(in[h * g.w + w]);
                }
                const bool empty = win.h0 >= win.h1 || win.w0 >= win.w1;
                out[oh * g.ow + ow] = empty ? T(0) : static_cast<T>(sum / static_cast<double>(win.divisor));
            }
        }
    }
    return y;
}

template <class T>
Pool2dGrads<T> avg_pool2d_backward(const Shape& input_shape, const HostTensor<T>& dy,
                                   const AvgPool2dOptions& options) {
    const PoolGeometry g = avg_geometry(input_shape, options);
    check_dy("avg_pool2d_backward", dy.shape(), g.output_shape());
    // Accumulated in double: a cell may sit in several overlapping windows.
    HostTensor<double> dx(input_shape);
    for (int64_t plane = 0; plane < g.n * g.c; ++plane) {
        double* grad_in = dx.data() + plane * g.h * g.w;  // (H, W)
        const T* grad_out = dy.data() + plane * g.oh * g.ow;
        for (int64_t oh = 0; oh < g.oh; ++oh) {
            for (int64_t ow = 0; ow < g.ow; ++ow) {
                const AvgWindow win = avg_window(g, oh, ow, options.count_include_pad, options.divisor_override);
                const double share = static_cast<double>(grad_out[oh * g.ow + ow]) / static_cast<double>(win.divisor);
                for (int64_t h = win.h0; h < win.h1; ++h) {
                    for (int64_t w = win.w0; w < win.w1; ++w) grad_in[h * g.w + w] += share;
                }
            }
        }
    }
    return {dx.cast<T>()};
}

template <class T>
HostTensor<T> lp_pool2d(const HostTensor<T>& x, const LpPool2dOptions& options) {
    const PoolGeometry g = lp_geometry(x.shape(), options);
    const double p = options.norm_type;
    HostTensor<T> powered(x.shape());  // x^p
    for (int64_t i = 0; i < x.numel(); ++i) powered[i] = static_cast<T>(std::pow(static_cast<double>(x[i]), p));
    AvgPool2dOptions avg;
    avg.kernel_size = options.kernel_size;
    avg.stride = options.stride;
    avg.ceil_mode = options.ceil_mode;
    const HostTensor<T> s = avg_pool2d(powered, avg);  // (N, C, OH, OW)
    HostTensor<T> y(g.output_shape());
    const double area = static_cast<double>(g.kh * g.kw);
    // PyTorch writes sign(s) · relu(|s|) here, which is s itself (NaN stays NaN); a negative s gives NaN
    // for every p but 1, as torch.pow does.
    for (int64_t i = 0; i < y.numel(); ++i) y[i] = static_cast<T>(std::pow(static_cast<double>(s[i]) * area, 1.0 / p));
    return y;
}

template <class T>
Pool2dGrads<T> lp_pool2d_backward(const HostTensor<T>& x, const HostTensor<T>& dy, const LpPool2dOptions& options) {
    const PoolGeometry g = lp_geometry(x.shape(), options);
    check_dy("lp_pool2d_backward", dy.shape(), g.output_shape());
    const double p = options.norm_type, area = static_cast<double>(g.kh * g.kw);
    HostTensor<double> dx(x.shape());
    for (int64_t plane = 0; plane < g.n * g.c; ++plane) {
        const T* in = x.data() + plane * g.h * g.w;  // (H, W)
        double* grad_in = dx.data() + plane * g.h * g.w;
        const T* grad_out = dy.data() + plane * g.oh * g.ow;
        for (int64_t oh = 0; oh < g.oh; ++oh) {
            for (int64_t ow = 0; ow < g.ow; ++ow) {
                const AvgWindow win = avg_window(g, oh, ow, true, std::nullopt);
                double sum = 0.0;
                for (int64_t h = win.h0; h < win.h1; ++h) {
                    for (int64_t w = win.w0; w < win.w1; ++w) sum += std::pow(static_cast<double>(in[h * g.w + w]), p);
                }
                const double s = sum / static_cast<double>(win.divisor);
                if (s == 0.0) continue;  // relu(|s|) passes no gradient at 0 (and keeps 0^(1/p − 1) out)
                // d y / d s = (1/p) · (s · area)^(1/p − 1) · area; d s / d x = p · x^(p − 1) / divisor.
                const double ds = static_cast<double>(grad_out[oh * g.ow + ow]) * (1.0 / p) *
                                  std::pow(s * area, 1.0 / p - 1.0) * area / static_cast<double>(win.divisor);
                for (int64_t h = win.h0; h < win.h1; ++h) {
                    for (int64_t w = win.w0; w < win.w1; ++w) {
                        grad_in[h * g.w + w] += ds * p * std::pow(static_cast<double>(in[h * g.w + w]), p - 1.0);
                    }
                }
            }
        }
    }
    return {dx.cast<T>()};
}

template <class T>
HostTensor<T> adaptive_avg_pool2d(const HostTensor<T>& x, Pair2d output_size) {
    check_input("adaptive_avg_pool2d", x.shape());
    CUDACNN_CHECK(output_size.h > 0 && output_size.w > 0, "adaptive_avg_pool2d: output_size ({}, {}) must be positive",
                  output_size.h, output_size.w);
    const int64_t n = x.dim(0), c = x.dim(1), h_in = x.dim(2), w_in = x.dim(3);
    const int64_t oh = output_size.h, ow = output_size.w;
    HostTensor<T> y(Shape{n, c, oh, ow});
    for (int64_t plane = 0; plane < n * c; ++plane) {
        const T* in = x.data() + plane * h_in * w_in;  // (H, W)
        T* out = y.data() + plane * oh * ow;
        for (int64_t i = 0; i < oh; ++i) {
            const int64_t h0 = adaptive_start(i, h_in, oh), h1 = adaptive_end(i, h_in, oh);
            for (int64_t j = 0; j < ow; ++j) {
                const int64_t w0 = adaptive_start(j, w_in, ow), w1 = adaptive_end(j, w_in, ow);
                double sum = 0.0;
                for (int64_t h = h0; h < h1; ++h) {
                    for (int64_t w = w0; w < w1; ++w) sum += static_cast<double>(in[h * w_in + w]);
                }
                out[i * ow + j] = static_cast<T>(sum / static_cast<double>((h1 - h0) * (w1 - w0)));
            }
        }
    }
    return y;
}

template <class T>
Pool2dGrads<T> adaptive_avg_pool2d_backward(const Shape& input_shape, const HostTensor<T>& dy) {
    check_input("adaptive_avg_pool2d_backward", input_shape);
    CUDACNN_CHECK(dy.shape().rank() == 4 && dy.dim(0) == input_shape[0] && dy.dim(1) == input_shape[1] &&
                      dy.dim(2) > 0 && dy.dim(3) > 0,
                  "adaptive_avg_pool2d_backward: dy has shape {} but the input {} needs (N, C, OH, OW) = "
                  "({}, {}, OH > 0, OW > 0)",
                  dy.shape(), input_shape, input_shape[0], input_shape[1]);
    const int64_t h_in = input_shape[2], w_in = input_shape[3], oh = dy.dim(2), ow = dy.dim(3);
    HostTensor<double> dx(input_shape);
    for (int64_t plane = 0; plane < input_shape[0] * input_shape[1]; ++plane) {
        double* grad_in = dx.data() + plane * h_in * w_in;  // (H, W)
        const T* grad_out = dy.data() + plane * oh * ow;
        for (int64_t i = 0; i < oh; ++i) {
            const int64_t h0 = adaptive_start(i, h_in, oh), h1 = adaptive_end(i, h_in, oh);
            for (int64_t j = 0; j < ow; ++j) {
                const int64_t w0 = adaptive_start(j, w_in, ow), w1 = adaptive_end(j, w_in, ow);
                const double share =
                    static_cast<double>(grad_out[i * ow + j]) / static_cast<double>((h1 - h0) * (w1 - w0));
                for (int64_t h = h0; h < h1; ++h) {
                    for (int64_t w = w0; w < w1; ++w) grad_in[h * w_in + w] += share;
                }
            }
        }
    }
    return {dx.cast<T>()};
}

template <class T>
HostTensor<T> global_avg_pool2d(const HostTensor<T>& x) {
    check_input("global_avg_pool2d", x.shape());
    const int64_t n = x.dim(0), c = x.dim(1), plane_size = x.dim(2) * x.dim(3);
    HostTensor<T> y(Shape{n, c, 1, 1});
    for (int64_t plane = 0; plane < n * c; ++plane) {
        double sum = 0.0;
        for (int64_t i = 0; i < plane_size; ++i) sum += static_cast<double>(x[plane * plane_size + i]);
        y[plane] = static_cast<T>(sum / static_cast<double>(plane_size));
    }
    return y;
}

template <class T>
Pool2dGrads<T> global_avg_pool2d_backward(const Shape& input_shape, const HostTensor<T>& dy) {
    check_input("global_avg_pool2d_backward", input_shape);
    const Shape expected{input_shape[0], input_shape[1], 1, 1};
    check_dy("global_avg_pool2d_backward", dy.shape(), expected);
    const int64_t plane_size = input_shape[2] * input_shape[3];
    Pool2dGrads<T> grads{HostTensor<T>(input_shape)};
    for (int64_t plane = 0; plane < input_shape[0] * input_shape[1]; ++plane) {
        const T share = static_cast<T>(static_cast<double>(dy[plane]) / static_cast<double>(plane_size));
        for (int64_t i = 0; i < plane_size; ++i) grads.dx[plane * plane_size + i] = share;
    }
    return grads;
}

#define CUDACNN_INSTANTIATE_POOL(T)                                                                            \
    template MaxPool2dResult<T> max_pool2d(const HostTensor<T>&, const MaxPool2dOptions&);                     \
    template Pool2dGrads<T> max_pool2d_backward(const Shape&, const HostTensor<int64_t>&, const HostTensor<T>&); \
    template HostTensor<T> avg_pool2d(const HostTensor<T>&, const AvgPool2dOptions&);                          \
    template Pool2dGrads<T> avg_pool2d_backward(const Shape&, const HostTensor<T>&, const AvgPool2dOptions&);  \
    template HostTensor<T> lp_pool2d(const HostTensor<T>&, const LpPool2dOptions&);                            \
    template Pool2dGrads<T> lp_pool2d_backward(const HostTensor<T>&, const HostTensor<T>&,                     \
                                               const LpPool2dOptions&);                                        \
    template HostTensor<T> adaptive_avg_pool2d(const HostTensor<T>&, Pair2d);                              \
    template Pool2dGrads<T> adaptive_avg_pool2d_backward(const Shape&, const HostTensor<T>&);                  \
    template HostTensor<T> global_avg_pool2d(const HostTensor<T>&);                                            \
    template Pool2dGrads<T> global_avg_pool2d_backward(const Shape&, const HostTensor<T>&);

CUDACNN_INSTANTIATE_POOL(float)
CUDACNN_INSTANTIATE_POOL(double)

#undef CUDACNN_INSTANTIATE_POOL

}  // namespace cudacnn::cpu
