// Pooling kernels (max with indices, average, global average; forward and backward) and their launchers, for
// float and (all but Lp pooling) bf16 activations. Backward passes are gathers (one thread per dx element), so
// overlapping windows need no atomics.
#include "cuda/pool.hpp"

#include <algorithm>
#include <climits>
#include <cmath>
#include <type_traits>

#include "cuda/bf16.cuh"
#include "cuda/dropout_rule.cuh"
#include "cuda/elementwise.cuh"
#include "cuda/launch.cuh"
#include "cuda/relu_rule.cuh"
#include "cuda/reduce.cuh"
#include "cudacnn/error.hpp"

namespace cudacnn::gpu {

namespace kernels {

constexpr int kWarp = 32;
constexpr int kGlobalPoolBlock = 256;  // 8 warps, one (n, c) plane each
// The index of a window that passes no gradient (max_pool2d_dropout with a ReLU): outside every plane.
constexpr int64_t kNoArgmax = -1;

// The validated geometry of one pooling call, in 32-bit integers (launchers check that the sizes fit).
struct PoolDims {
    int planes = 0;  // N · C
    int h = 0, w = 0, oh = 0, ow = 0;
    int kh = 1, kw = 1, sh = 1, sw = 1, ph = 0, pw = 0, dh = 1, dw = 1;
    bool count_include_pad = true;  // average pooling only
    int divisor_override = 0;       // average pooling only; 0: none
    // The memory format of every activation, saved index and per-element mask of the call. NHWC: element
    // (n, c, h, w) of a (rows × cols) plane lies at (n · rows · cols + h · cols + w) · C + c.
    bool nhwc = false;
    int c = 1;  // C, the channels (NHWC only)
};

// Where plane (n, c) of a tensor whose planes have plane_size elements starts, and the step between two
// neighbouring elements of a plane: in NCHW the plane is contiguous (step 1); in NHWC its element h · W + w
// is C elements after the previous one, starting at (n · plane_size) · C + c. So the element at plane
// position p = h · W + w is at plane_base + p · plane_step in both formats, and NCHW computes the addresses
// it always did.
__device__ inline int64_t plane_base(const PoolDims& d, int plane, int plane_size) {
    return d.nhwc ? static_cast<int64_t>(plane / d.c) * plane_size * d.c + plane % d.c
                  : static_cast<int64_t>(plane) * plane_size;
}
__device__ inline int plane_step(const PoolDims& d) {
    return d.nhwc ? d.c : 1;
}

// Calls f(i, plane, row, col) for every element i = (plane · rows + row) · cols + col of a (planes, rows,
// cols) range: a grid-stride loop, one element per thread per step, so consecutive threads take consecutive
// elements.
template <class F>
__device__ void for_each_cell(int planes, int rows, int cols, F f) {
    const int64_t total = static_cast<int64_t>(planes) * rows * cols;
    const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
    for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < total; i += stride) {
        const int e = static_cast<int>(i);
        f(e, e / (rows * cols), (e / cols) % rows, e % cols);
    }
}

// for_each_cell in the call's memory format: f(i, plane, row, col) with i the element's memory offset in a
// (N, C, rows, cols) tensor and plane = n · C + c. NHWC: consecutive threads take consecutive channels of one
// pixel (coalesced reads and writes of the C-contiguous tensors).
template <class F>
__device__ void for_each_pool_cell(const PoolDims& d, int rows, int cols, F f) {
    if (!d.nhwc) return for_each_cell(d.planes, rows, cols, f);
    const int64_t total = static_cast<int64_t>(d.planes) * rows * cols;
    const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
    for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < total; i += stride) {
        const int e = static_cast<int>(i);
        const int pixel = e / d.c;  // n · rows · cols + row · cols + col
        const int n = pixel / (rows * cols);
        f(e, n * d.c + e % d.c, (pixel / cols) % rows, pixel % cols);
    }
}

// A window's maximum and where it is: h · W + w in its plane, and r · KW + c, its tap in the KH × KW window.
struct WindowMax {
    float value;
    int index;
    int tap;
};

// Row-major scan of the dilated window with the reference's comparison: strictly greater replaces (first
// maximum wins ties), and a NaN always replaces. The window starts on its first tap inside the input.
// relu: a ReLU before the pooling is fused in (its rule applied to each value read). T: the storage of x
// (float or bf16); values widen exactly to float, so a bf16 x selects the same argmax as its float copy.
template <class T>
__device__ inline WindowMax window_max(const T* x, const PoolDims& d, int plane, int oh, int ow, bool relu) {
    const T* in = x + plane_base(d, plane, d.h * d.w);  // (H, W), element p at in[p · step]
    const int step = plane_step(d);
    int h0 = oh * d.sh - d.ph, w0 = ow * d.sw - d.pw;
    const int h1 = min(h0 + (d.kh - 1) * d.dh + 1, d.h), w1 = min(w0 + (d.kw - 1) * d.dw + 1, d.w);
    // Skip the −inf padding taps (r0 rows, c0 columns of the window's grid) in steps of the dilation.
    const int r0 = h0 < 0 ? (-h0 + d.dh - 1) / d.dh : 0, c0 = w0 < 0 ? (-w0 + d.dw - 1) / d.dw : 0;
    h0 += r0 * d.dh, w0 += c0 * d.dw;
    WindowMax best{-INFINITY, h0 * d.w + w0, r0 * d.kw + c0};
    for (int h = h0, r = r0; h < h1; h += d.dh, ++r) {
        for (int w = w0, c = c0; w < w1; w += d.dw, ++c) {
            const float read = to_float(in[static_cast<int64_t>(h * d.w + w) * step]);
            const float value = relu ? relu_value(read) : read;
            // value != value: NaN
            if (value > best.value || value != value) best = {value, h * d.w + w, r * d.kw + c};
        }
    }
    return best;
}

// The two forms of saved argmaxes (gpu::MaxPoolIndices), chosen by the index type the kernels are
// instantiated with: int64_t, the argmax's index in its plane (kNoArgmax: none); uint8_t, its window tap
// (kNoWindowTap: none).
__device__ inline int64_t saved_argmax(const WindowMax& best, bool none, int64_t) {
    return none ? kNoArgmax : best.index;
}
__device__ inline uint8_t saved_argmax(const WindowMax& best, bool none, uint8_t) {
    return none ? kNoWindowTap : static_cast<uint8_t>(best.tap);
}

// Whether a saved argmax points at input cell `index` of its plane, tap `tap` of the window: the same answer
// in both forms (a tap and the plane index it decodes to name one cell; "none" matches neither).
__device__ inline bool is_argmax(int64_t saved, int64_t index, int /*tap*/) {
    return saved == index;
}
__device__ inline bool is_argmax(uint8_t saved, int64_t /*index*/, int tap) {
    return saved == tap;
}

// T: the storage of x and y. A bf16 y is the selected bf16 value itself (from_float of a widened bf16 is
// exact; a NaN becomes the canonical NaN).
template <class T, class Index>
__global__ void max_pool2d_kernel(const T* x, T* y, Index* indices, PoolDims d, bool relu) {
    for_each_pool_cell(d, d.oh, d.ow, [&](int i, int plane, int oh, int ow) {
        const WindowMax best = window_max(x, d, plane, oh, ow, relu);
        y[i] = from_float<T>(best.value);
        if (indices != nullptr) indices[i] = saved_argmax(best, false, Index{});
    });
}

// A dropout after the pooling, folded in (max_pool2d_dropout).
struct FoldedDropout {
    uint8_t* mask;
    bool channelwise;  // dropout2d: one unit per plane, else one per pooled element
    MaskRule rule;
    MaskFactors factors;
};

// max_pool2d_kernel, then the dropout on each pooled value as dropout_forward / dropout2d_forward would: the
// thread of pooled element i draws its own unit's Philox word (unit i, or its plane for dropout2d), so the
// masks are those kernels' without a second launch; the thread of a plane's first output writes the plane's
// dropout2d mask byte (every thread of the plane draws the same decision). A bf16 y is the float result
// rounded once (the dropout's scaled float value, as the reference computes it, then bf16).
template <class T, class Index>
__global__ void max_pool2d_dropout_kernel(const T* x, T* y, Index* indices, PoolDims d, bool relu,
                                          FoldedDropout drop) {
    for_each_pool_cell(d, d.oh, d.ow, [&](int i, int plane, int oh, int ow) {
        const WindowMax best = window_max(x, d, plane, oh, ow, relu);
        const int64_t unit = drop.channelwise ? plane : i;
        const bool keep = draw_keep(drop.rule, unit);
        y[i] = from_float<T>(apply_factor(best.value, keep, drop.factors));
        // Where the unit dropped, y no longer shows whether the fused ReLU passes its window's gradient (y = 0
        // either way; it matters when dy is infinite or NaN, as dy · 0 is then NaN), so that rides in the index:
        // a window whose ReLU output is <= 0 (relu_gradient's rule) passes no gradient, and its index points
        // nowhere. Bit for bit: the separate backward adds relu_gradient's +0 there, which changes no sum (a sum
        // from +0 is never −0).
        if (indices != nullptr) indices[i] = saved_argmax(best, relu && best.value <= 0.0f, Index{});
        if (!drop.channelwise || (oh == 0 && ow == 0)) drop.mask[unit] = keep ? 1 : 0;
    });
}

// The first window index (along one axis) whose taps can reach padded position p: ceil((p − extent + 1) / s),
// at least 0, where extent = (k − 1)·dilation + 1.
__device__ inline int first_window(int p, int extent, int s) {
    const int reach = p - extent + 1;
    return reach <= 0 ? 0 : (reach + s - 1) / s;
}

// Where window o's gradient comes from: dy passed back through the layers fused after the pooling, in the
// order their own backwards would run: a folded dropout's (mask · factor), then a fused ReLU's, through which
// each window's gradient passes at its argmax, whose ReLU output is the window's output relu_y. T: the
// storage of dy and relu_y (float or bf16); the gradient is computed in float from their widened values.
template <class T>
struct OutputGradient {
    const T* dy;
    const T* relu_y = nullptr;      // relu_max_pool2d's y; nullptr: no ReLU, or one that the indices carry
    const uint8_t* mask = nullptr;  // a folded dropout's mask; nullptr: none
    bool channelwise = false;       // the mask is dropout2d's, one byte per plane
    MaskFactors factors{1.0, 1.0};
};

template <class T>
__device__ inline float output_gradient(const OutputGradient<T>& g, int64_t o, int plane) {
    float v = to_float(g.dy[o]);
    if (g.mask != nullptr) v = apply_factor(v, g.mask[g.channelwise ? plane : o] != 0, g.factors);
    return g.relu_y != nullptr ? relu_gradient(to_float(g.relu_y[o]), v) : v;
}

// T: the storage of dy, relu_y and dx. The gather sums in float and rounds each dx once.
template <class T, class Index>
__global__ void max_pool2d_backward_kernel(const Index* indices, OutputGradient<T> g, T* dx, PoolDims d) {
    const int extent_h = (d.kh - 1) * d.dh + 1, extent_w = (d.kw - 1) * d.dw + 1;
    for_each_pool_cell(d, d.h, d.w, [&](int i, int plane, int h, int w) {
        const int hp = h + d.ph, wp = w + d.pw;  // position in the padded plane
        const int oh_end = min(hp / d.sh + 1, d.oh), ow_end = min(wp / d.sw + 1, d.ow);
        const int ow_begin = first_window(wp, extent_w, d.sw);
        const int64_t target = h * d.w + w;
        const int64_t plane_out = plane_base(d, plane, d.oh * d.ow);
        const int step = plane_step(d);
        float sum = 0.0f;
        for (int oh = first_window(hp, extent_h, d.sh); oh < oh_end; ++oh) {
            if ((hp - oh * d.sh) % d.dh != 0) continue;  // (h, w) falls between this window's dilated taps
            const int tap_row = (hp - oh * d.sh) / d.dh * d.kw;
            for (int ow = ow_begin; ow < ow_end; ++ow) {
                if ((wp - ow * d.sw) % d.dw != 0) continue;
                const int64_t o = plane_out + static_cast<int64_t>(oh * d.ow + ow) * step;
                const int tap = tap_row + (wp - ow * d.sw) / d.dw;
                if (is_argmax(indices[o], target, tap)) sum += output_gradient(g, o, plane);
            }
        }
        dx[i] = from_float<T>(sum);
    });
}

// The backward of windows that tile the input exactly (kernel == stride, no padding, no dilation, H = OH·KH
// and W = OW·KW; e.g. CifarCNN's MaxPool2d(2, 2)): every dx element lies in exactly one window, so one thread
// per window writes its KH × KW gradients, decoding its position once, instead of one thread per dx element
// searching the windows that could reach it (integer divisions per element: the general kernel took 137 µs
// for CifarCNN's first pooling on an H200, ~10% of memory bandwidth). Bit for bit the general kernel's
// result: the argmax gets 0 + its window's gradient (as the gather's sum from 0 gives: −0 becomes +0), the
// rest 0 (all of the window when its index is kNoArgmax or kNoWindowTap, as the gather adds nothing there).
template <class T, class Index>
__global__ void max_pool2d_backward_tiled_kernel(const Index* indices, OutputGradient<T> gradient, T* dx,
                                                 PoolDims d) {
    for_each_pool_cell(d, d.oh, d.ow, [&](int o, int plane, int oh, int ow) {
        const float g = output_gradient(gradient, o, plane);
        const Index argmax = indices[o];
        T* plane_dx = dx + plane_base(d, plane, d.h * d.w);
        const int step = plane_step(d);
        for (int r = 0; r < d.kh; ++r) {
            const int h = oh * d.kh + r;
            for (int c = 0; c < d.kw; ++c) {
                const int w = ow * d.kw + c;
                const bool hit = is_argmax(argmax, h * d.w + w, r * d.kw + c);
                plane_dx[static_cast<int64_t>(h * d.w + w) * step] = from_float<T>(hit ? 0.0f + g : 0.0f);
            }
        }
    });
}

// One average window after the reference's clipping (cpu avg_window): input cells [h0, h1) × [w0, w1).
struct AvgWindow {
    int h0, h1, w0, w1;
    int divisor;
};

__device__ inline AvgWindow avg_window(const PoolDims& d, int oh, int ow) {
    int h0 = oh * d.sh - d.ph, w0 = ow * d.sw - d.pw;
    // A ceil-mode window may reach past the right padding; that part counts nowhere.
    int h1 = min(h0 + d.kh, d.h + d.ph), w1 = min(w0 + d.kw, d.w + d.pw);
    const int area_with_pad = (h1 - h0) * (w1 - w0);
    h0 = max(h0, 0), w0 = max(w0, 0);
    h1 = min(h1, d.h), w1 = min(w1, d.w);
    int divisor = d.count_include_pad ? area_with_pad : (h1 - h0) * (w1 - w0);
    if (d.divisor_override != 0) divisor = d.divisor_override;
    return {h0, h1, w0, w1, divisor};
}

// The average kernels below are templates on T, the storage of their activations (float or bf16): they
// compute in float from the widened values and round each output element once.
template <class T>
__global__ void avg_pool2d_kernel(const T* x, T* y, PoolDims d) {
    for_each_pool_cell(d, d.oh, d.ow, [&](int i, int plane, int oh, int ow) {
        const T* in = x + plane_base(d, plane, d.h * d.w);  // (H, W), element p at in[p · step]
        const int step = plane_step(d);
        const AvgWindow win = avg_window(d, oh, ow);
        float sum = 0.0f;
        for (int h = win.h0; h < win.h1; ++h) {
            for (int w = win.w0; w < win.w1; ++w) {
                sum += to_float(in[static_cast<int64_t>(h * d.w + w) * step]);
            }
        }
        // A window entirely in the padding is 0 (the reference's rule; the shape checks make it unreachable).
        const bool empty = win.h0 >= win.h1 || win.w0 >= win.w1;
        y[i] = from_float<T>(empty ? 0.0f : sum / static_cast<float>(win.divisor));
    });
}

template <class T>
__global__ void avg_pool2d_backward_kernel(const T* dy, T* dx, PoolDims d) {
    for_each_pool_cell(d, d.h, d.w, [&](int i, int plane, int h, int w) {
        const int hp = h + d.ph, wp = w + d.pw;
        // Window oh covers input rows [oh·SH − PH, oh·SH − PH + KH) (clipping never removes an input row).
        const int oh_end = min(hp / d.sh + 1, d.oh), ow_end = min(wp / d.sw + 1, d.ow);
        const int ow_begin = first_window(wp, d.kw, d.sw);
        const T* grad_out = dy + plane_base(d, plane, d.oh * d.ow);  // (OH, OW), element p at [p · step]
        const int step = plane_step(d);
        float sum = 0.0f;
        for (int oh = first_window(hp, d.kh, d.sh); oh < oh_end; ++oh) {
            for (int ow = ow_begin; ow < ow_end; ++ow) {
                sum += to_float(grad_out[static_cast<int64_t>(oh * d.ow + ow) * step]) /
                       static_cast<float>(avg_window(d, oh, ow).divisor);
            }
        }
        dx[i] = from_float<T>(sum);
    });
}

// Lp pooling has no padding or dilation: its windows are average windows with count_include_pad and no
// override, which give the clipped area as the divisor. area = KH·KW, the unclipped window.
__device__ inline float lp_window_mean(const float* in, const PoolDims& d, const AvgWindow& win, float p) {
    float sum = 0.0f;
    for (int h = win.h0; h < win.h1; ++h) {
        for (int w = win.w0; w < win.w1; ++w) sum += powf(in[h * d.w + w], p);
    }
    return sum / static_cast<float>(win.divisor);
}

__global__ void lp_pool2d_kernel(const float* x, float* y, PoolDims d, float p) {
    const float area = static_cast<float>(d.kh * d.kw);
    for_each_cell(d.planes, d.oh, d.ow, [&](int i, int plane, int oh, int ow) {
        const float* in = x + static_cast<int64_t>(plane) * d.h * d.w;  // (H, W)
        const float s = lp_window_mean(in, d, avg_window(d, oh, ow), p);
        y[i] = powf(s * area, 1.0f / p);
    });
}

__global__ void lp_pool2d_backward_kernel(const float* x, const float* dy, float* dx, PoolDims d, float p) {
    const float area = static_cast<float>(d.kh * d.kw);
    for_each_cell(d.planes, d.h, d.w, [&](int i, int plane, int h, int w) {
        const float* in = x + static_cast<int64_t>(plane) * d.h * d.w;           // (H, W)
        const float* grad_out = dy + static_cast<int64_t>(plane) * d.oh * d.ow;  // (OH, OW)
        const float local = p * powf(in[h * d.w + w], p - 1.0f);                 // d (x^p) / d x
        const int oh_end = min(h / d.sh + 1, d.oh), ow_end = min(w / d.sw + 1, d.ow);
        const int ow_begin = first_window(w, d.kw, d.sw);
        float sum = 0.0f;
        for (int oh = first_window(h, d.kh, d.sh); oh < oh_end; ++oh) {
            for (int ow = ow_begin; ow < ow_end; ++ow) {
                const AvgWindow win = avg_window(d, oh, ow);
                const float s = lp_window_mean(in, d, win, p);
                if (s == 0.0f) continue;  // the reference's relu(|s|) passes no gradient at 0
                // d y / d s = (1/p)·(s·area)^(1/p − 1)·area; d s / d x = local / divisor.
                const float ds = grad_out[oh * d.ow + ow] / p * powf(s * area, 1.0f / p - 1.0f) * area /
                                 static_cast<float>(win.divisor);
                sum += ds * local;
            }
        }
        dx[i] = sum;
    });
}

// Adaptive windows along one axis: [⌊i·in/out⌋, ⌈(i+1)·in/out⌉).
__device__ inline int adaptive_start(int i, int in, int out) {
    return i * in / out;
}
__device__ inline int adaptive_end(int i, int in, int out) {
    return ((i + 1) * in + out - 1) / out;
}

template <class T>
__global__ void adaptive_avg_pool2d_kernel(const T* x, T* y, PoolDims d) {
    for_each_pool_cell(d, d.oh, d.ow, [&](int i, int plane, int oh, int ow) {
        const T* in = x + plane_base(d, plane, d.h * d.w);  // (H, W), element p at in[p · step]
        const int step = plane_step(d);
        const int h0 = adaptive_start(oh, d.h, d.oh), h1 = adaptive_end(oh, d.h, d.oh);
        const int w0 = adaptive_start(ow, d.w, d.ow), w1 = adaptive_end(ow, d.w, d.ow);
        float sum = 0.0f;
        for (int h = h0; h < h1; ++h) {
            for (int w = w0; w < w1; ++w) sum += to_float(in[static_cast<int64_t>(h * d.w + w) * step]);
        }
        y[i] = from_float<T>(sum / static_cast<float>((h1 - h0) * (w1 - w0)));
    });
}

template <class T>
__global__ void adaptive_avg_pool2d_backward_kernel(const T* dy, T* dx, PoolDims d) {
    for_each_pool_cell(d, d.h, d.w, [&](int i, int plane, int h, int w) {
        const T* grad_out = dy + plane_base(d, plane, d.oh * d.ow);  // (OH, OW), element p at [p · step]
        const int step = plane_step(d);
        // Window i contains row h iff ⌊h·OH/H⌋ ≤ i ≤ ⌊((h+1)·OH − 1)/H⌋.
        const int oh_begin = h * d.oh / d.h, oh_end = ((h + 1) * d.oh - 1) / d.h + 1;
        const int ow_begin = w * d.ow / d.w, ow_end = ((w + 1) * d.ow - 1) / d.w + 1;
        float sum = 0.0f;
        for (int oh = oh_begin; oh < oh_end; ++oh) {
            const int rows = adaptive_end(oh, d.h, d.oh) - adaptive_start(oh, d.h, d.oh);
            for (int ow = ow_begin; ow < ow_end; ++ow) {
                const int cols = adaptive_end(ow, d.w, d.ow) - adaptive_start(ow, d.w, d.ow);
                sum += to_float(grad_out[static_cast<int64_t>(oh * d.ow + ow) * step]) /
                       static_cast<float>(rows * cols);
            }
        }
        dx[i] = from_float<T>(sum);
    });
}

template <class T>
__global__ void global_avg_pool2d_kernel(const T* x, T* y, int planes, int plane_size) {
    const int plane = blockIdx.x * (blockDim.x / kWarp) + threadIdx.x / kWarp;
    const int lane = threadIdx.x % kWarp;
    if (plane >= planes) return;  // whole warps only: the shuffles below see full warps
    const T* in = x + static_cast<int64_t>(plane) * plane_size;
    float sum = 0.0f;
    for (int i = lane; i < plane_size; i += kWarp) sum += to_float(in[i]);
    sum = reduce::warp_all_sum(sum);
    if (lane == 0) y[plane] = from_float<T>(sum / static_cast<float>(plane_size));
}

template <class T>
__global__ void global_avg_pool2d_backward_kernel(const T* dy, T* dx, int planes, int plane_size) {
    const float divisor = static_cast<float>(plane_size);
    for_each_cell(planes, 1, plane_size,
                  [&](int i, int plane, int, int) { dx[i] = from_float<T>(to_float(dy[plane]) / divisor); });
}

}  // namespace kernels

namespace {

using kernels::kGlobalPoolBlock;
using kernels::kWarp;
using kernels::PoolDims;

// The kernels index planes with int: every tensor they touch must have fewer than 2^31 elements.
void check_fits_int(const char* op, const Shape& shape) {
    CUDACNN_CHECK(shape.numel() <= INT_MAX,
                  "{}: shape {} has {} elements; the kernels index with 32-bit integers (at most {})", op,
                  shape, shape.numel(), INT_MAX);
}

void check_pointers(const char* op, const void* in, const char* in_name, const void* out,
                    const char* out_name) {
    CUDACNN_CHECK(in != nullptr && out != nullptr, "{}: {} and {} must be device pointers, got {} and {}", op,
                  in_name, out_name, in, out);
}

// The planes and the input and output plane sizes of input (N, C, H, W) → out (N, C, OH, OW), checked to fit
// int.
PoolDims plane_dims(const Shape& input, const Shape& out) {
    PoolDims d;
    d.planes = static_cast<int>(input[0] * input[1]);
    d.h = static_cast<int>(input[2]), d.w = static_cast<int>(input[3]);
    d.oh = static_cast<int>(out[2]), d.ow = static_cast<int>(out[3]);
    return d;
}

// Sizes shared by max and average pooling; out is the validated output shape (N, C, OH, OW).
PoolDims pool_dims(const char* op, const Shape& input, const Shape& out, cpu::Pair2d kernel,
                   std::optional<cpu::Pair2d> stride, cpu::Pair2d padding, cpu::Pair2d dilation) {
    check_fits_int(op, input);
    check_fits_int(op, out);
    const cpu::Pair2d s = stride.value_or(kernel);
    // Windows far beyond the input are legal but pointless; the kernels' int arithmetic needs them bounded.
    CUDACNN_CHECK(
        std::max({kernel.h, kernel.w, s.h, s.w, dilation.h, dilation.w}) <= (1 << 15),
        "{}: kernel_size ({}, {}), stride ({}, {}) and dilation ({}, {}) must be at most 32768 each", op,
        kernel.h, kernel.w, s.h, s.w, dilation.h, dilation.w);
    PoolDims d = plane_dims(input, out);
    d.kh = static_cast<int>(kernel.h), d.kw = static_cast<int>(kernel.w);
    d.sh = static_cast<int>(s.h), d.sw = static_cast<int>(s.w);
    d.ph = static_cast<int>(padding.h), d.pw = static_cast<int>(padding.w);
    d.dh = static_cast<int>(dilation.h), d.dw = static_cast<int>(dilation.w);
    return d;
}

PoolDims max_dims(const char* op, const Shape& input, const cpu::MaxPool2dOptions& o) {
    const Shape out = cpu::max_pool2d_output_shape(input, o);
    return pool_dims(op, input, out, o.kernel_size, o.stride, o.padding, o.dilation);
}

PoolDims avg_dims(const char* op, const Shape& input, const cpu::AvgPool2dOptions& o) {
    const Shape out = cpu::avg_pool2d_output_shape(input, o);
    PoolDims d = pool_dims(op, input, out, o.kernel_size, o.stride, o.padding, 1);
    d.count_include_pad = o.count_include_pad;
    if (o.divisor_override) {
        CUDACNN_CHECK(*o.divisor_override >= INT_MIN && *o.divisor_override <= INT_MAX,
                      "{}: divisor_override {} does not fit in 32 bits", op, *o.divisor_override);
        d.divisor_override = static_cast<int>(*o.divisor_override);
    }
    return d;
}

PoolDims lp_dims(const char* op, const Shape& input, const cpu::LpPool2dOptions& o) {
    const Shape out = cpu::lp_pool2d_output_shape(input, o);
    return pool_dims(op, input, out, o.kernel_size, o.stride, 0, 1);  // count_include_pad, no override
}

// The reference's input check (rank 4, positive sizes) for the ops without a cpu:: shape function.
void check_input(const char* op, const Shape& input) {
    CUDACNN_CHECK(input.rank() == 4, "{}: input must be (N, C, H, W), got shape {}", op, input);
    CUDACNN_CHECK(input[0] > 0 && input[1] > 0 && input[2] > 0 && input[3] > 0,
                  "{}: input sizes must be positive, got shape {}", op, input);
    check_fits_int(op, input);
}

PoolDims adaptive_dims(const char* op, const Shape& input, cpu::Pair2d output_size) {
    check_input(op, input);
    CUDACNN_CHECK(output_size.h > 0 && output_size.w > 0, "{}: output_size ({}, {}) must be positive", op,
                  output_size.h, output_size.w);
    const Shape out{input[0], input[1], output_size.h, output_size.w};
    check_fits_int(op, out);
    // The window bounds multiply an output index by an input size.
    CUDACNN_CHECK((output_size.h + 1) * input[2] <= INT_MAX && (output_size.w + 1) * input[3] <= INT_MAX,
                  "{}: output_size ({}, {}) times the input's (H, W) = ({}, {}) must stay below 2^31", op,
                  output_size.h, output_size.w, input[2], input[3]);
    return plane_dims(input, out);
}

// d for tensors in `format` (checked: a known format). input: the validated (N, C, H, W).
PoolDims in_format(const char* op, PoolDims d, const Shape& input, MemoryFormat format) {
    CUDACNN_CHECK(format == MemoryFormat::nchw || format == MemoryFormat::nhwc,
                  "{}: memory format {} is neither nchw (0) nor nhwc (1); pass MemoryFormat::nchw or "
                  "MemoryFormat::nhwc",
                  op, static_cast<int>(format));
    d.nhwc = format == MemoryFormat::nhwc;
    d.c = static_cast<int>(input[1]);
    return d;
}

// Calls f with the saved argmaxes as a pointer of their form's type (int64_t or uint8_t, const where Pointer
// is), which instantiates the kernels for it; window taps must fit the window.
template <class Pointer, class F>
void with_indices(const char* op, const PoolDims& d, BasicMaxPoolIndices<Pointer> indices, F f) {
    using Indices = BasicMaxPoolIndices<Pointer>;
    if (!indices.taps) return f(static_cast<typename Indices::template Ptr<int64_t>>(indices.data));
    CUDACNN_CHECK(
        d.kh * d.kw <= kNoWindowTap,
        "{}: window taps are saved as bytes and kernel_size ({}, {}) has {} taps (at most {}); save int64 "
        "plane indices for windows this large",
        op, d.kh, d.kw, d.kh * d.kw, static_cast<int>(kNoWindowTap));
    f(static_cast<typename Indices::template Ptr<uint8_t>>(indices.data));
}

// T: the activations' storage (float or bf16), for every max pooling launcher below.
template <class T>
void launch_max_pool2d(const char* op, bool relu, const T* x, T* y, MaxPoolIndices indices,
                       const Shape& input_shape, const cpu::MaxPool2dOptions& options, cudaStream_t stream,
                       MemoryFormat format) {
    const PoolDims d = in_format(op, max_dims(op, input_shape, options), input_shape, format);
    check_pointers(op, x, "x", y, "y");
    const int64_t outputs = static_cast<int64_t>(d.planes) * d.oh * d.ow;
    with_indices(op, d, indices, [&](auto* saved) {
        using Index = std::remove_pointer_t<decltype(saved)>;
        launch(kernels::max_pool2d_kernel<T, Index>, elementwise_grid(outputs), dim3(kElementwiseBlock), 0,
               stream, x, y, saved, d, relu);
    });
}

template <class T>
void launch_max_pool2d_backward(const char* op, ConstMaxPoolIndices indices,
                                const kernels::OutputGradient<T>& g, T* dx, const Shape& input_shape,
                                const cpu::MaxPool2dOptions& options, cudaStream_t stream,
                                MemoryFormat format) {
    const PoolDims d = in_format(op, max_dims(op, input_shape, options), input_shape, format);
    check_pointers(op, g.dy, "dy", dx, "dx");
    CUDACNN_CHECK(indices.data != nullptr,
                  "{}: indices must be the device pointer that max_pool2d filled, got nullptr", op);
    const bool windows_tile_input = d.kh == d.sh && d.kw == d.sw && d.ph == 0 && d.pw == 0 && d.dh == 1 &&
                                    d.dw == 1 && d.h == d.oh * d.kh && d.w == d.ow * d.kw;
    with_indices(op, d, indices, [&](auto* saved) {
        using Index = std::remove_const_t<std::remove_pointer_t<decltype(saved)>>;
        if (windows_tile_input) {
            const int64_t windows = static_cast<int64_t>(d.planes) * d.oh * d.ow;
            launch(kernels::max_pool2d_backward_tiled_kernel<T, Index>, elementwise_grid(windows),
                   dim3(kElementwiseBlock), 0, stream, saved, g, dx, d);
        } else {
            launch(kernels::max_pool2d_backward_kernel<T, Index>, elementwise_grid(input_shape.numel()),
                   dim3(kElementwiseBlock), 0, stream, saved, g, dx, d);
        }
    });
}

// The folded dropout's checks: dropout's own (p in [0, 1]) and a mask to write or read.
void check_folded_dropout(const char* op, const PooledDropout& dropout, const void* mask) {
    check_dropout_options(op, dropout.options);
    CUDACNN_CHECK(mask != nullptr, "{}: the dropout mask must be a device pointer ({} bytes), got nullptr", op,
                  dropout.channelwise ? "N · C" : "N · C · OH · OW");
}

template <class T>
void relu_max_pool2d_backward_impl(ConstMaxPoolIndices indices, const T* y, const T* dy, T* dx,
                                   const Shape& input_shape, const cpu::MaxPool2dOptions& options,
                                   cudaStream_t stream, MemoryFormat format) {
    CUDACNN_CHECK(y != nullptr,
                  "relu_max_pool2d_backward: y must be the device pointer relu_max_pool2d wrote, got "
                  "nullptr");
    kernels::OutputGradient<T> g{dy};
    g.relu_y = y;
    launch_max_pool2d_backward("relu_max_pool2d_backward", indices, g, dx, input_shape, options, stream,
                               format);
}

template <class T>
void max_pool2d_dropout_impl(const T* x, T* y, MaxPoolIndices indices, uint8_t* mask,
                             const Shape& input_shape, const cpu::MaxPool2dOptions& options,
                             const PooledDropout& dropout, bool relu, cudaStream_t stream,
                             MemoryFormat format) {
    const char* op = relu ? "relu_max_pool2d_dropout" : "max_pool2d_dropout";
    const PoolDims d = in_format(op, max_dims(op, input_shape, options), input_shape, format);
    check_pointers(op, x, "x", y, "y");
    check_folded_dropout(op, dropout, mask);
    const kernels::FoldedDropout drop{mask, dropout.channelwise, mask_rule(dropout.options, dropout.step),
                                      mask_factors(dropout.options)};
    const int64_t outputs = static_cast<int64_t>(d.planes) * d.oh * d.ow;
    with_indices(op, d, indices, [&](auto* saved) {
        using Index = std::remove_pointer_t<decltype(saved)>;
        launch(kernels::max_pool2d_dropout_kernel<T, Index>, elementwise_grid(outputs),
               dim3(kElementwiseBlock), 0, stream, x, y, saved, d, relu, drop);
    });
}

template <class T>
void max_pool2d_dropout_backward_impl(ConstMaxPoolIndices indices, const uint8_t* mask, const T* dy, T* dx,
                                      const Shape& input_shape, const cpu::MaxPool2dOptions& options,
                                      const PooledDropout& dropout, cudaStream_t stream,
                                      MemoryFormat format) {
    const char* op = "max_pool2d_dropout_backward";
    check_folded_dropout(op, dropout, mask);
    kernels::OutputGradient<T> g{dy};
    g.mask = mask;
    g.channelwise = dropout.channelwise;
    g.factors = mask_factors(dropout.options);
    launch_max_pool2d_backward(op, indices, g, dx, input_shape, options, stream, format);
}

template <class T>
void avg_pool2d_impl(const T* x, T* y, const Shape& input_shape, const cpu::AvgPool2dOptions& options,
                     cudaStream_t stream, MemoryFormat format) {
    const char* op = "avg_pool2d";
    const PoolDims d = in_format(op, avg_dims(op, input_shape, options), input_shape, format);
    check_pointers("avg_pool2d", x, "x", y, "y");
    const int64_t outputs = static_cast<int64_t>(d.planes) * d.oh * d.ow;
    launch(kernels::avg_pool2d_kernel<T>, elementwise_grid(outputs), dim3(kElementwiseBlock), 0, stream, x, y,
           d);
}

template <class T>
void avg_pool2d_backward_impl(const T* dy, T* dx, const Shape& input_shape,
                              const cpu::AvgPool2dOptions& options, cudaStream_t stream,
                              MemoryFormat format) {
    const char* op = "avg_pool2d_backward";
    const PoolDims d = in_format(op, avg_dims(op, input_shape, options), input_shape, format);
    check_pointers("avg_pool2d_backward", dy, "dy", dx, "dx");
    launch(kernels::avg_pool2d_backward_kernel<T>, elementwise_grid(input_shape.numel()),
           dim3(kElementwiseBlock), 0, stream, dy, dx, d);
}

template <class T>
void adaptive_avg_pool2d_impl(const T* x, T* y, const Shape& input_shape, cpu::Pair2d output_size,
                              cudaStream_t stream, MemoryFormat format) {
    const char* op = "adaptive_avg_pool2d";
    const PoolDims d = in_format(op, adaptive_dims(op, input_shape, output_size), input_shape, format);
    check_pointers("adaptive_avg_pool2d", x, "x", y, "y");
    const int64_t outputs = static_cast<int64_t>(d.planes) * d.oh * d.ow;
    launch(kernels::adaptive_avg_pool2d_kernel<T>, elementwise_grid(outputs), dim3(kElementwiseBlock), 0,
           stream, x, y, d);
}

template <class T>
void adaptive_avg_pool2d_backward_impl(const T* dy, T* dx, const Shape& input_shape, cpu::Pair2d output_size,
                                       cudaStream_t stream, MemoryFormat format) {
    const char* op = "adaptive_avg_pool2d_backward";
    const PoolDims d = in_format(op, adaptive_dims(op, input_shape, output_size), input_shape, format);
    check_pointers("adaptive_avg_pool2d_backward", dy, "dy", dx, "dx");
    launch(kernels::adaptive_avg_pool2d_backward_kernel<T>, elementwise_grid(input_shape.numel()),
           dim3(kElementwiseBlock), 0, stream, dy, dx, d);
}

template <class T>
void global_avg_pool2d_impl(const T* x, T* y, const Shape& input_shape, cudaStream_t stream) {
    check_input("global_avg_pool2d", input_shape);
    check_pointers("global_avg_pool2d", x, "x", y, "y");
    const int planes = static_cast<int>(input_shape[0] * input_shape[1]);
    constexpr int planes_per_block = kGlobalPoolBlock / kWarp;
    const dim3 grid((planes + planes_per_block - 1) / planes_per_block);
    launch(kernels::global_avg_pool2d_kernel<T>, grid, dim3(kGlobalPoolBlock), 0, stream, x, y, planes,
           static_cast<int>(input_shape[2] * input_shape[3]));
}

template <class T>
void global_avg_pool2d_backward_impl(const T* dy, T* dx, const Shape& input_shape, cudaStream_t stream) {
    check_input("global_avg_pool2d_backward", input_shape);
    check_pointers("global_avg_pool2d_backward", dy, "dy", dx, "dx");
    launch(kernels::global_avg_pool2d_backward_kernel<T>, elementwise_grid(input_shape.numel()),
           dim3(kElementwiseBlock), 0, stream, dy, dx, static_cast<int>(input_shape[0] * input_shape[1]),
           static_cast<int>(input_shape[2] * input_shape[3]));
}

}  // namespace

bool window_taps_fit(const cpu::MaxPool2dOptions& options) {
    return options.kernel_size.h * options.kernel_size.w <= kNoWindowTap;
}

void max_pool2d(const float* x, float* y, MaxPoolIndices indices, const Shape& input_shape,
                const cpu::MaxPool2dOptions& options, cudaStream_t stream, MemoryFormat format) {
    launch_max_pool2d("max_pool2d", false, x, y, indices, input_shape, options, stream, format);
}

void relu_max_pool2d(const float* x, float* y, MaxPoolIndices indices, const Shape& input_shape,
                     const cpu::MaxPool2dOptions& options, cudaStream_t stream, MemoryFormat format) {
    launch_max_pool2d("relu_max_pool2d", true, x, y, indices, input_shape, options, stream, format);
}

void max_pool2d_backward(ConstMaxPoolIndices indices, const float* dy, float* dx, const Shape& input_shape,
                         const cpu::MaxPool2dOptions& options, cudaStream_t stream, MemoryFormat format) {
    launch_max_pool2d_backward("max_pool2d_backward", indices, kernels::OutputGradient<float>{dy}, dx,
                               input_shape, options, stream, format);
}

void relu_max_pool2d_backward(ConstMaxPoolIndices indices, const float* y, const float* dy, float* dx,
                              const Shape& input_shape, const cpu::MaxPool2dOptions& options,
                              cudaStream_t stream, MemoryFormat format) {
    relu_max_pool2d_backward_impl(indices, y, dy, dx, input_shape, options, stream, format);
}

void max_pool2d_dropout(const float* x, float* y, MaxPoolIndices indices, uint8_t* mask,
                        const Shape& input_shape, const cpu::MaxPool2dOptions& options,
                        const PooledDropout& dropout, bool relu, cudaStream_t stream, MemoryFormat format) {
    max_pool2d_dropout_impl(x, y, indices, mask, input_shape, options, dropout, relu, stream, format);
}

void max_pool2d_dropout_backward(ConstMaxPoolIndices indices, const uint8_t* mask, const float* dy, float* dx,
                                 const Shape& input_shape, const cpu::MaxPool2dOptions& options,
                                 const PooledDropout& dropout, cudaStream_t stream, MemoryFormat format) {
    max_pool2d_dropout_backward_impl(indices, mask, dy, dx, input_shape, options, dropout, stream, format);
}

void max_pool2d(const bf16* x, bf16* y, MaxPoolIndices indices, const Shape& input_shape,
                const cpu::MaxPool2dOptions& options, cudaStream_t stream, MemoryFormat format) {
    launch_max_pool2d("max_pool2d", false, x, y, indices, input_shape, options, stream, format);
}

void relu_max_pool2d(const bf16* x, bf16* y, MaxPoolIndices indices, const Shape& input_shape,
                     const cpu::MaxPool2dOptions& options, cudaStream_t stream, MemoryFormat format) {
    launch_max_pool2d("relu_max_pool2d", true, x, y, indices, input_shape, options, stream, format);
}

void max_pool2d_backward(ConstMaxPoolIndices indices, const bf16* dy, bf16* dx, const Shape& input_shape,
                         const cpu::MaxPool2dOptions& options, cudaStream_t stream, MemoryFormat format) {
    launch_max_pool2d_backward("max_pool2d_backward", indices, kernels::OutputGradient<bf16>{dy}, dx,
                               input_shape, options, stream, format);
}

void relu_max_pool2d_backward(ConstMaxPoolIndices indices, const bf16* y, const bf16* dy, bf16* dx,
                              const Shape& input_shape, const cpu::MaxPool2dOptions& options,
                              cudaStream_t stream, MemoryFormat format) {
    relu_max_pool2d_backward_impl(indices, y, dy, dx, input_shape, options, stream, format);
}

void max_pool2d_dropout(const bf16* x, bf16* y, MaxPoolIndices indices, uint8_t* mask,
                        const Shape& input_shape, const cpu::MaxPool2dOptions& options,
                        const PooledDropout& dropout, bool relu, cudaStream_t stream, MemoryFormat format) {
    max_pool2d_dropout_impl(x, y, indices, mask, input_shape, options, dropout, relu, stream, format);
}

void max_pool2d_dropout_backward(ConstMaxPoolIndices indices, const uint8_t* mask, const bf16* dy, bf16* dx,
                                 const Shape& input_shape, const cpu::MaxPool2dOptions& options,
                                 const PooledDropout& dropout, cudaStream_t stream, MemoryFormat format) {
    max_pool2d_dropout_backward_impl(indices, mask, dy, dx, input_shape, options, dropout, stream, format);
}

void avg_pool2d(const float* x, float* y, const Shape& input_shape, const cpu::AvgPool2dOptions& options,
                cudaStream_t stream, MemoryFormat format) {
    avg_pool2d_impl(x, y, input_shape, options, stream, format);
}

void avg_pool2d(const bf16* x, bf16* y, const Shape& input_shape, const cpu::AvgPool2dOptions& options,
                cudaStream_t stream, MemoryFormat format) {
    avg_pool2d_impl(x, y, input_shape, options, stream, format);
}

void avg_pool2d_backward(const float* dy, float* dx, const Shape& input_shape,
                         const cpu::AvgPool2dOptions& options, cudaStream_t stream, MemoryFormat format) {
    avg_pool2d_backward_impl(dy, dx, input_shape, options, stream, format);
}

void avg_pool2d_backward(const bf16* dy, bf16* dx, const Shape& input_shape,
                         const cpu::AvgPool2dOptions& options, cudaStream_t stream, MemoryFormat format) {
    avg_pool2d_backward_impl(dy, dx, input_shape, options, stream, format);
}

void lp_pool2d(const float* x, float* y, const Shape& input_shape, const cpu::LpPool2dOptions& options,
               cudaStream_t stream) {
    const PoolDims d = lp_dims("lp_pool2d", input_shape, options);
    check_pointers("lp_pool2d", x, "x", y, "y");
    const int64_t outputs = static_cast<int64_t>(d.planes) * d.oh * d.ow;
    launch(kernels::lp_pool2d_kernel, elementwise_grid(outputs), dim3(kElementwiseBlock), 0, stream, x, y, d,
           static_cast<float>(options.norm_type));
}

void lp_pool2d_backward(const float* x, const float* dy, float* dx, const Shape& input_shape,
                        const cpu::LpPool2dOptions& options, cudaStream_t stream) {
    const PoolDims d = lp_dims("lp_pool2d_backward", input_shape, options);
    check_pointers("lp_pool2d_backward", dy, "dy", dx, "dx");
    CUDACNN_CHECK(x != nullptr,
                  "lp_pool2d_backward: x must be the forward's input on the device, got nullptr");
    launch(kernels::lp_pool2d_backward_kernel, elementwise_grid(input_shape.numel()), dim3(kElementwiseBlock),
           0, stream, x, dy, dx, d, static_cast<float>(options.norm_type));
}

void adaptive_avg_pool2d(const float* x, float* y, const Shape& input_shape, cpu::Pair2d output_size,
                         cudaStream_t stream, MemoryFormat format) {
    adaptive_avg_pool2d_impl(x, y, input_shape, output_size, stream, format);
}

void adaptive_avg_pool2d(const bf16* x, bf16* y, const Shape& input_shape, cpu::Pair2d output_size,
                         cudaStream_t stream, MemoryFormat format) {
    adaptive_avg_pool2d_impl(x, y, input_shape, output_size, stream, format);
}

void adaptive_avg_pool2d_backward(const float* dy, float* dx, const Shape& input_shape,
                                  cpu::Pair2d output_size, cudaStream_t stream, MemoryFormat format) {
    adaptive_avg_pool2d_backward_impl(dy, dx, input_shape, output_size, stream, format);
}

void adaptive_avg_pool2d_backward(const bf16* dy, bf16* dx, const Shape& input_shape, cpu::Pair2d output_size,
                                  cudaStream_t stream, MemoryFormat format) {
    adaptive_avg_pool2d_backward_impl(dy, dx, input_shape, output_size, stream, format);
}

void global_avg_pool2d(const float* x, float* y, const Shape& input_shape, cudaStream_t stream) {
    global_avg_pool2d_impl(x, y, input_shape, stream);
}

void global_avg_pool2d(const bf16* x, bf16* y, const Shape& input_shape, cudaStream_t stream) {
    global_avg_pool2d_impl(x, y, input_shape, stream);
}

void global_avg_pool2d_backward(const float* dy, float* dx, const Shape& input_shape, cudaStream_t stream) {
    global_avg_pool2d_backward_impl(dy, dx, input_shape, stream);
}

void global_avg_pool2d_backward(const bf16* dy, bf16* dx, const Shape& input_shape, cudaStream_t stream) {
    global_avg_pool2d_backward_impl(dy, dx, input_shape, stream);
}

}  // namespace cudacnn::gpu
