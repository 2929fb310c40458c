// The fast CPU path's pooling: the reference's per-plane loops with one work item per (n, c) plane; the
// average-pooling backward passes gather instead of scattering, so they need no double scratch plane.
#include "src/cpu_fast/pool.hpp"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstring>
#include <limits>
#include <optional>

#include "cudacnn/error.hpp"

namespace cudacnn::cpu_fast {
namespace {

// One validated pooling call: input (N, C, H, W), window, output (OH, OW).
struct PoolGeometry {
    int64_t planes = 0, h = 0, w = 0;
    int64_t kh = 1, kw = 1, sh = 1, sw = 1, ph = 0, pw = 0, dh = 1, dw = 1;
    int64_t oh = 0, ow = 0;
};

PoolGeometry geometry(const Shape& input, const Shape& output, cpu::Pair2d kernel,
                      std::optional<cpu::Pair2d> stride, cpu::Pair2d padding, cpu::Pair2d dilation) {
    const cpu::Pair2d s = stride.value_or(kernel);
    PoolGeometry g;
    g.planes = input[0] * input[1], g.h = input[2], g.w = input[3];
    g.kh = kernel.h, g.kw = kernel.w, g.sh = s.h, g.sw = s.w;
    g.ph = padding.h, g.pw = padding.w, g.dh = dilation.h, g.dw = dilation.w;
    g.oh = output[2], g.ow = output[3];
    return g;
}

PoolGeometry max_geometry(const Shape& input, const cpu::MaxPool2dOptions& o) {
    const Shape out = cpu::max_pool2d_output_shape(input, o);  // validates, with the reference's errors
    return geometry(input, out, o.kernel_size, o.stride, o.padding, o.dilation);
}

PoolGeometry avg_geometry(const Shape& input, const cpu::AvgPool2dOptions& o) {
    const Shape out = cpu::avg_pool2d_output_shape(input, o);
    return geometry(input, out, o.kernel_size, o.stride, o.padding, 1);
}

// An average-pooling window after PyTorch's clipping rules (the reference's avg_window): input cells
// [h0, h1) × [w0, w1), divided by `divisor`; empty only for windows entirely in the padding (output 0).
struct AvgWindow {
    int64_t h0, h1, w0, w1, divisor;
};

AvgWindow avg_window(const PoolGeometry& g, int64_t oh, int64_t ow, const cpu::AvgPool2dOptions& o) {
    int64_t h0 = oh * g.sh - g.ph, w0 = ow * g.sw - g.pw;
    // A ceil-mode window may reach past the right padding; that part counts nowhere.
    int64_t h1 = std::min(h0 + g.kh, g.h + g.ph), w1 = std::min(w0 + g.kw, g.w + g.pw);
    const int64_t area_with_pad = (h1 - h0) * (w1 - w0);
    h0 = std::max<int64_t>(h0, 0), w0 = std::max<int64_t>(w0, 0);
    h1 = std::min(h1, g.h), w1 = std::min(w1, g.w);
    int64_t divisor = o.count_include_pad ? area_with_pad : (h1 - h0) * (w1 - w0);
    if (o.divisor_override) divisor = *o.divisor_override;
    return {h0, h1, w0, w1, divisor};
}

// Floor division for a positive divisor, also for a negative numerator.
int64_t floor_div(int64_t a, int64_t b) { return a / b - ((a % b != 0) && (a < 0)); }

// The output indices [first, last] along one axis whose windows may contain input cell i: those with
// o · stride − pad <= i < o · stride − pad + kernel, clamped to [0, out). Callers still test membership in
// the clipped window, so a superset would do; this is exact for the unclipped windows.
void windows_containing(int64_t i, int64_t kernel, int64_t stride, int64_t pad, int64_t out, int64_t& first,
                        int64_t& last) {
    first = std::max<int64_t>(0, floor_div(i + pad - kernel, stride) + 1);
    last = std::min<int64_t>(out - 1, floor_div(i + pad, stride));
}

// Adaptive pooling's window along one axis for output index i: [floor(i·in/out), ceil((i+1)·in/out)).
int64_t adaptive_start(int64_t i, int64_t in, int64_t out) { return i * in / out; }
int64_t adaptive_end(int64_t i, int64_t in, int64_t out) { return ((i + 1) * in + out - 1) / out; }

// The adaptive windows that may contain input cell i (a superset: the callers test membership): window o
// starts at or before i when o <= (i·out + out − 1) / in, and ends after i when o >= i·out / in − 1.
void adaptive_windows_containing(int64_t i, int64_t in, int64_t out, int64_t& first, int64_t& last) {
    first = std::max<int64_t>(0, i * out / in - 1);
    last = std::min<int64_t>(out - 1, ((i + 1) * out + in - 1) / in);
}

void check_adaptive(const char* op, const Shape& input, cpu::Pair2d output_size) {
    CUDACNN_CHECK(input.rank() == 4, "{}: input must be (N, C, H, W), got shape {}", op, input);
    CUDACNN_CHECK(input[0] > 0 && input[1] > 0 && input[2] > 0 && input[3] > 0,
                  "{}: input sizes must be positive, got shape {}", op, input);
    CUDACNN_CHECK(output_size.h > 0 && output_size.w > 0, "{}: output_size ({}, {}) must be positive", op,
                  output_size.h, output_size.w);
}

// The argmax rule of the reference's scan: a value replaces the best when it is greater or NaN (so ties keep
// the first maximum and the last NaN wins). Written as selects (value != value is isnan), which compile to
// conditional moves: random data would mispredict a branch half the time.
template <class Index>
inline void max_step(float value, Index at, float& best_value, Index& best) {
    const bool take = (value > best_value) | (value != value);
    best_value = take ? value : best_value;
    best = take ? at : best;
}

// The common 2×2 window with stride 2, no padding, no dilation, every window inside the plane (CifarCNN's
// pooling): the reference's scan of the four cells, unrolled, without its general window arithmetic.
bool is_plain_2x2(const PoolGeometry& g) {
    return g.kh == 2 && g.kw == 2 && g.sh == 2 && g.sw == 2 && g.ph == 0 && g.pw == 0 && g.dh == 1 && g.dw == 1 &&
           2 * g.oh <= g.h && 2 * g.ow <= g.w;
}

// The argmax is tracked as the cell's number k in the window (0 … 3, row-major) in 32 bits, which vector
// instructions select cheaply; a second loop turns a run of them into h · W + w (int64 selects do not vectorize
// without AVX).
template <bool kIndices>
void max_pool_plane_2x2(const PoolGeometry& g, const float* in, float* out, int64_t* idx) {
    constexpr int64_t kRun = 256;
    int32_t cell[kRun];
    for (int64_t oh = 0; oh < g.oh; ++oh) {
        const float* top = in + 2 * oh * g.w;
        const float* bottom = top + g.w;
        for (int64_t first = 0; first < g.ow; first += kRun) {
            const int64_t count = std::min(kRun, g.ow - first);
            // Outputs are independent: vector instructions change nothing (src/cpu_fast/elementwise.hpp).
#pragma omp simd
            for (int64_t r = 0; r < count; ++r) {
                const int64_t left = 2 * (first + r);
                float best_value = -std::numeric_limits<float>::infinity();
                int32_t best = 0;
                max_step(top[left], 0, best_value, best);
                max_step(top[left + 1], 1, best_value, best);
                max_step(bottom[left], 2, best_value, best);
                max_step(bottom[left + 1], 3, best_value, best);
                out[oh * g.ow + first + r] = best_value;
                cell[r] = best;
            }
            if constexpr (kIndices) {
                int64_t* run = idx + oh * g.ow + first;
                const int64_t row0 = 2 * oh * g.w;
#pragma omp simd
                for (int64_t r = 0; r < count; ++r) {
                    const int64_t k = cell[r];
                    run[r] = row0 + (k >> 1) * g.w + 2 * (first + r) + (k & 1);
                }
            }
        }
    }
}

}  // namespace

void max_pool2d(const float* x, float* y, int64_t* indices, const Shape& input_shape,
                const cpu::MaxPool2dOptions& options, const Workers& workers) {
    const PoolGeometry g = max_geometry(input_shape, options);
    const bool plain_2x2 = is_plain_2x2(g);
    parallel_for(workers, g.planes, [&](int64_t plane) {
        const float* in = x + plane * g.h * g.w;  // (H, W)
        float* out = y + plane * g.oh * g.ow;
        int64_t* idx = indices != nullptr ? indices + plane * g.oh * g.ow : nullptr;
        if (plain_2x2) {
            if (idx != nullptr) {
                max_pool_plane_2x2<true>(g, in, out, idx);
            } else {
                max_pool_plane_2x2<false>(g, in, out, nullptr);
            }
            return;
        }
        for (int64_t oh = 0; oh < g.oh; ++oh) {
            for (int64_t ow = 0; ow < g.ow; ++ow) {
                int64_t h0 = oh * g.sh - g.ph, w0 = ow * g.sw - g.pw;
                const int64_t h1 = std::min(h0 + (g.kh - 1) * g.dh + 1, g.h);
                const int64_t w1 = std::min(w0 + (g.kw - 1) * g.dw + 1, g.w);
                // Skip the −inf padding cells in steps of the dilation, so that the scan stays on the grid.
                while (h0 < 0) h0 += g.dh;
                while (w0 < 0) w0 += g.dw;
                int64_t best = h0 * g.w + w0;
                float best_value = -std::numeric_limits<float>::infinity();
                for (int64_t h = h0; h < h1; h += g.dh) {
                    for (int64_t w = w0; w < w1; w += g.dw) {
                        max_step(in[h * g.w + w], h * g.w + w, best_value, best);
                    }
                }
                out[oh * g.ow + ow] = best_value;
                if (idx != nullptr) idx[oh * g.ow + ow] = best;
            }
        }
    });
}

void max_pool2d_backward(const int64_t* indices, const float* dy, float* dx, const Shape& input_shape,
                         const cpu::MaxPool2dOptions& options, const Workers& workers) {
    const PoolGeometry g = max_geometry(input_shape, options);
    const int64_t plane_size = g.h * g.w, out_plane_size = g.oh * g.ow;
    // The first bad index in (plane, o) order, so that the error names the one the reference would.
    std::atomic<int64_t> first_bad{std::numeric_limits<int64_t>::max()};
    parallel_for(workers, g.planes, [&](int64_t plane) {
        float* grad_in = dx + plane * plane_size;
        std::memset(grad_in, 0, static_cast<size_t>(plane_size) * sizeof(float));
        const int64_t* idx = indices + plane * out_plane_size;
        const float* grad_out = dy + plane * out_plane_size;
        for (int64_t o = 0; o < out_plane_size; ++o) {
            const int64_t i = idx[o];
            if (i < 0 || i >= plane_size) {
                int64_t seen = first_bad.load();
                const int64_t here = plane * out_plane_size + o;
                while (here < seen && !first_bad.compare_exchange_weak(seen, here)) {
                }
                break;
            }
            // Overlapping windows may share an argmax; each adds its gradient, in (oh, ow) order.
            grad_in[i] += grad_out[o];
        }
    });
    const int64_t bad = first_bad.load();
    CUDACNN_CHECK(bad == std::numeric_limits<int64_t>::max(),
                  "max_pool2d_backward: index {} is outside the {}x{} input plane; pass the indices that "
                  "max_pool2d returned for this input",
                  bad == std::numeric_limits<int64_t>::max() ? 0 : indices[bad], g.h, g.w);
}

void avg_pool2d(const float* x, float* y, const Shape& input_shape, const cpu::AvgPool2dOptions& options,
                const Workers& workers) {
    const PoolGeometry g = avg_geometry(input_shape, options);
    parallel_for(workers, g.planes, [&](int64_t plane) {
        const float* in = x + plane * g.h * g.w;  // (H, W)
        float* out = y + plane * g.oh * g.ow;
        for (int64_t oh = 0; oh < g.oh; ++oh) {
            for (int64_t ow = 0; ow < g.ow; ++ow) {
                const AvgWindow win = avg_window(g, oh, ow, options);
                double sum = 0.0;
                for (int64_t h = win.h0; h < win.h1; ++h) {
                    for (int64_t w = win.w0; w < win.w1; ++w) sum += static_cast<double>(in[h * g.w + w]);
                }
                const bool empty = win.h0 >= win.h1 || win.w0 >= win.w1;
                out[oh * g.ow + ow] = empty ? 0.0f : static_cast<float>(sum / static_cast<double>(win.divisor));
            }
        }
    });
}

void avg_pool2d_backward(const float* dy, float* dx, const Shape& input_shape, const cpu::AvgPool2dOptions& options,
                         const Workers& workers) {
    const PoolGeometry g = avg_geometry(input_shape, options);
    parallel_for(workers, g.planes, [&](int64_t plane) {
        float* grad_in = dx + plane * g.h * g.w;  // (H, W)
        const float* grad_out = dy + plane * g.oh * g.ow;
        for (int64_t h = 0; h < g.h; ++h) {
            int64_t oh0 = 0, oh1 = -1;
            windows_containing(h, g.kh, g.sh, g.ph, g.oh, oh0, oh1);
            for (int64_t w = 0; w < g.w; ++w) {
                int64_t ow0 = 0, ow1 = -1;
                windows_containing(w, g.kw, g.sw, g.pw, g.ow, ow0, ow1);
                double sum = 0.0;
                for (int64_t oh = oh0; oh <= oh1; ++oh) {
                    for (int64_t ow = ow0; ow <= ow1; ++ow) {
                        const AvgWindow win = avg_window(g, oh, ow, options);
                        if (h < win.h0 || h >= win.h1 || w < win.w0 || w >= win.w1) continue;
                        sum += static_cast<double>(grad_out[oh * g.ow + ow]) / static_cast<double>(win.divisor);
                    }
                }
                grad_in[h * g.w + w] = static_cast<float>(sum);
            }
        }
    });
}

void adaptive_avg_pool2d(const float* x, float* y, const Shape& input_shape, cpu::Pair2d output_size,
                         const Workers& workers) {
    check_adaptive("adaptive_avg_pool2d", input_shape, output_size);
    const int64_t planes = input_shape[0] * input_shape[1], h_in = input_shape[2], w_in = input_shape[3];
    const int64_t oh = output_size.h, ow = output_size.w;
    parallel_for(workers, planes, [&](int64_t plane) {
        const float* in = x + plane * h_in * w_in;  // (H, W)
        float* out = y + plane * oh * ow;
        for (int64_t i = 0; i < oh; ++i) {
            const int64_t h0 = adaptive_start(i, h_in, oh), h1 = adaptive_end(i, h_in, oh);
            for (int64_t j = 0; j < ow; ++j) {
                const int64_t w0 = adaptive_start(j, w_in, ow), w1 = adaptive_end(j, w_in, ow);
                double sum = 0.0;
                for (int64_t h = h0; h < h1; ++h) {
                    for (int64_t w = w0; w < w1; ++w) sum += static_cast<double>(in[h * w_in + w]);
                }
                out[i * ow + j] = static_cast<float>(sum / static_cast<double>((h1 - h0) * (w1 - w0)));
            }
        }
    });
}

void adaptive_avg_pool2d_backward(const float* dy, float* dx, const Shape& input_shape, cpu::Pair2d output_size,
                                  const Workers& workers) {
    check_adaptive("adaptive_avg_pool2d_backward", input_shape, output_size);
    const int64_t planes = input_shape[0] * input_shape[1], h_in = input_shape[2], w_in = input_shape[3];
    const int64_t oh = output_size.h, ow = output_size.w;
    parallel_for(workers, planes, [&](int64_t plane) {
        float* grad_in = dx + plane * h_in * w_in;  // (H, W)
        const float* grad_out = dy + plane * oh * ow;
        for (int64_t h = 0; h < h_in; ++h) {
            int64_t i0 = 0, i1 = -1;
            adaptive_windows_containing(h, h_in, oh, i0, i1);
            for (int64_t w = 0; w < w_in; ++w) {
                int64_t j0 = 0, j1 = -1;
                adaptive_windows_containing(w, w_in, ow, j0, j1);
                double sum = 0.0;
                for (int64_t i = i0; i <= i1; ++i) {
                    const int64_t h0 = adaptive_start(i, h_in, oh), h1 = adaptive_end(i, h_in, oh);
                    if (h < h0 || h >= h1) continue;
                    for (int64_t j = j0; j <= j1; ++j) {
                        const int64_t w0 = adaptive_start(j, w_in, ow), w1 = adaptive_end(j, w_in, ow);
                        if (w < w0 || w >= w1) continue;
                        sum += static_cast<double>(grad_out[i * ow + j]) / static_cast<double>((h1 - h0) * (w1 - w0));
                    }
                }
                grad_in[h * w_in + w] = static_cast<float>(sum);
            }
        }
    });
}

}  // namespace cudacnn::cpu_fast
