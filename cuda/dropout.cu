// Dropout kernels: Philox mask draws shared by four units per thread, and the mask-times-factor apply kernel
// that serves dropout's backward and both directions of dropout2d.
#include "cuda/dropout.hpp"

#include <cstdint>

#include "cuda/dropout_rule.cuh"
#include "cuda/elementwise.cuh"
#include "cuda/launch.cuh"
#include "cuda/relu_rule.cuh"
#include "cudacnn/error.hpp"

namespace cudacnn::gpu {
namespace kernels {

// The values of elements 4 · group .. widened to float (fewer at the end of the range; the rest left 0): one
// vector access (a float4, or 4 bf16 in 8 bytes) when kVector (the pointer aligned to 4 elements) and the
// group is whole. T is the storage type, float or bf16.
template <bool kVector, class T>
__device__ inline void load_group(const T* in, int64_t group, int64_t count, float v[4]) {
    const int64_t first = 4 * group;
    if (kVector && first + 4 <= count) {
        const ElementVector<T, 4> q = reinterpret_cast<const ElementVector<T, 4>*>(in)[group];
        for (int k = 0; k < 4; ++k) v[k] = to_float(q.value[k]);
        return;
    }
    for (int k = 0; k < 4; ++k) v[k] = first + k < count ? to_float(in[first + k]) : 0.0f;
}

// The store: each value rounded once to T.
template <bool kVector, class T>
__device__ inline void store_group(T* out, int64_t group, int64_t count, const float v[4]) {
    const int64_t first = 4 * group;
    if (kVector && first + 4 <= count) {
        ElementVector<T, 4> q;
        for (int k = 0; k < 4; ++k) q.value[k] = from_float<T>(v[k]);
        reinterpret_cast<ElementVector<T, 4>*>(out)[group] = q;
        return;
    }
    for (int k = 0; k < 4 && first + k < count; ++k) out[first + k] = from_float<T>(v[k]);
}

// in → out for elements 4 · group ..: each value times its unit's factor.
template <bool kVector, class T>
__device__ inline void scale_group(const T* in, T* out, int64_t group, int64_t count, const bool keep[4],
                                   const MaskFactors& factors) {
    float v[4];
    load_group<kVector>(in, group, count, v);
    for (int k = 0; k < 4; ++k) v[k] = apply_factor(v[k], keep[k], factors);
    store_group<kVector>(out, group, count, v);
}

// Dropout forward, fused: one thread per group of four elements draws their mask and scales their values.
template <bool kVector, class T>
__global__ void dropout_forward_kernel(const T* x, T* y, uint8_t* mask, int64_t count, MaskRule rule,
                                       MaskFactors factors) {
    const int64_t groups = (count + 3) / 4;
    const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
    for (int64_t g = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; g < groups; g += stride) {
        bool keep[4];
        draw_keep4(rule, g, keep);
        scale_group<kVector>(x, y, g, count, keep, factors);
        for (int k = 0; k < 4 && 4 * g + k < count; ++k) mask[4 * g + k] = keep[k] ? 1 : 0;
    }
}

// A mask of `units` entries by the rule, nothing else (dropout2d's (N, C) channel mask).
__global__ void draw_mask_kernel(uint8_t* mask, int64_t units, MaskRule rule) {
    const int64_t groups = (units + 3) / 4;
    const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
    for (int64_t g = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; g < groups; g += stride) {
        bool keep[4];
        draw_keep4(rule, g, keep);
        for (int k = 0; k < 4 && 4 * g + k < units; ++k) mask[4 * g + k] = keep[k] ? 1 : 0;
    }
}

// out[i] = in[i] · factor(mask[i / unit_size]): units are runs of unit_size elements (1 for dropout, H · W
// for dropout2d). One thread per group of four elements; one division per group, not per element.
template <bool kVector, class T>
__global__ void apply_mask_kernel(const T* in, const uint8_t* mask, T* out, int64_t count, int64_t unit_size,
                                  MaskFactors factors) {
    const int64_t groups = (count + 3) / 4;
    const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
    for (int64_t g = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; g < groups; g += stride) {
        int64_t unit = unit_size == 1 ? 4 * g : 4 * g / unit_size;
        int64_t position = 4 * g - unit * unit_size;  // inside the unit
        bool keep[4] = {false, false, false, false};
        for (int k = 0; k < 4 && 4 * g + k < count; ++k) {
            keep[k] = mask[unit] != 0;
            if (++position == unit_size) {
                ++unit;
                position = 0;
            }
        }
        scale_group<kVector>(in, out, g, count, keep, factors);
    }
}

// dropout2d's apply in NHWC: out[e] = in[e] · factor(mask[n · C + c]) for element
// e = ((n · H + h) · W + w) · C + c, one thread per group of four elements (as apply_mask_kernel, so the
// vector accesses are the same).
// sample_size = C · H · W, the elements of one sample.
template <bool kVector, class T>
__global__ void apply_channel_mask_nhwc_kernel(const T* in, const uint8_t* mask, T* out, int64_t count,
                                               int64_t channels, int64_t sample_size, MaskFactors factors) {
    const int64_t groups = (count + 3) / 4;
    const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
    for (int64_t g = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; g < groups; g += stride) {
        bool keep[4] = {false, false, false, false};
        for (int k = 0; k < 4 && 4 * g + k < count; ++k) {
            const int64_t e = 4 * g + k;
            keep[k] = mask[e / sample_size * channels + e % channels] != 0;
        }
        scale_group<kVector>(in, out, g, count, keep, factors);
    }
}

// ReLU then dropout: dropout_forward_kernel's draws and arithmetic on relu_value(x), the mask byte also
// recording whether the ReLU passes its gradient (relu_gradient's rule: not relu(x) <= 0).
template <bool kVector, class T>
__global__ void relu_dropout_forward_kernel(const T* x, T* y, uint8_t* mask, int64_t count, MaskRule rule,
                                            MaskFactors factors) {
    const int64_t groups = (count + 3) / 4;
    const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
    for (int64_t g = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; g < groups; g += stride) {
        bool keep[4];
        draw_keep4(rule, g, keep);
        float v[4];
        load_group<kVector>(x, g, count, v);
        uint8_t bits[4];
        for (int k = 0; k < 4; ++k) {
            const float relu = relu_value(v[k]);
            bits[k] = static_cast<uint8_t>((keep[k] ? kReluDropoutKept : 0) |
                                           (relu <= 0.0f ? 0 : kReluDropoutPasses));
            v[k] = apply_factor(relu, keep[k], factors);
        }
        store_group<kVector>(y, g, count, v);
        for (int k = 0; k < 4 && 4 * g + k < count; ++k) mask[4 * g + k] = bits[k];
    }
}

// dropout's backward (dy times the factor of the unit) then the ReLU's select, from the two mask bits.
template <bool kVector, class T>
__global__ void relu_dropout_backward_kernel(const T* dy, const uint8_t* mask, T* dx, int64_t count,
                                             MaskFactors factors) {
    const int64_t groups = (count + 3) / 4;
    const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
    for (int64_t g = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; g < groups; g += stride) {
        float v[4];
        load_group<kVector>(dy, g, count, v);
        for (int k = 0; k < 4 && 4 * g + k < count; ++k) {
            const uint8_t bits = mask[4 * g + k];
            v[k] = (bits & kReluDropoutPasses) ? apply_factor(v[k], (bits & kReluDropoutKept) != 0, factors)
                                               : 0.0f;
        }
        store_group<kVector>(dx, g, count, v);
    }
}

}  // namespace kernels

namespace {

void check_pointers(const char* op, const void* in, const void* mask, const void* out) {
    CUDACNN_CHECK(in != nullptr && mask != nullptr && out != nullptr,
                  "{}: the input ({}), mask ({}) and output ({}) must be device pointers, not null", op, in,
                  mask, out);
}

void check_dropout2d_shape(const char* op, const char* name, const Shape& shape) {
    CUDACNN_CHECK(shape.rank() == 4, "{}: {} has shape {}; it must be (N, C, H, W)", op, name, shape);
    CUDACNN_CHECK(shape.numel() > 0, "{}: {} has shape {}; every dimension must be positive", op, name,
                  shape);
}

// Whether both arrays start on a boundary of 4 elements of T (16 bytes for float, 8 for bf16), so that every
// group of four is one vector access.
template <class T>
bool group_aligned(const T* a, const T* b) {
    constexpr uintptr_t bytes = 4 * sizeof(T);
    return reinterpret_cast<uintptr_t>(a) % bytes == 0 && reinterpret_cast<uintptr_t>(b) % bytes == 0;
}

dim3 group_grid(int64_t count) {
    return elementwise_grid((count + 3) / 4);
}

// dropout2d's apply (both directions) in `format`: NCHW's units are runs of H · W elements; NHWC's are
// strided (element (n, h, w, c) takes mask[n · C + c]).
template <class T>
void launch_apply_channel_mask(const T* in, const uint8_t* mask, T* out, const Shape& shape,
                               const cpu::DropoutOptions& options, cudaStream_t stream, MemoryFormat format);

template <class T>
void launch_apply_mask(const T* in, const uint8_t* mask, T* out, int64_t count, int64_t unit_size,
                       const cpu::DropoutOptions& options, cudaStream_t stream) {
    const dim3 grid = group_grid(count), block(kElementwiseBlock);
    const kernels::MaskFactors factors = mask_factors(options);
    if (group_aligned(in, out)) {
        launch(kernels::apply_mask_kernel<true, T>, grid, block, 0, stream, in, mask, out, count, unit_size,
               factors);
    } else {
        launch(kernels::apply_mask_kernel<false, T>, grid, block, 0, stream, in, mask, out, count, unit_size,
               factors);
    }
}

template <class T>
void launch_apply_channel_mask(const T* in, const uint8_t* mask, T* out, const Shape& shape,
                               const cpu::DropoutOptions& options, cudaStream_t stream, MemoryFormat format) {
    if (format == MemoryFormat::nchw) {
        launch_apply_mask(in, mask, out, shape.numel(), shape[2] * shape[3], options, stream);
        return;
    }
    const int64_t count = shape.numel();
    const dim3 grid = group_grid(count), block(kElementwiseBlock);
    const kernels::MaskFactors factors = mask_factors(options);
    const int64_t sample_size = shape[1] * shape[2] * shape[3];
    if (group_aligned(in, out)) {
        launch(kernels::apply_channel_mask_nhwc_kernel<true, T>, grid, block, 0, stream, in, mask, out, count,
               shape[1], sample_size, factors);
    } else {
        launch(kernels::apply_channel_mask_nhwc_kernel<false, T>, grid, block, 0, stream, in, mask, out,
               count, shape[1], sample_size, factors);
    }
}

void check_format(const char* op, MemoryFormat format) {
    CUDACNN_CHECK(format == MemoryFormat::nchw || format == MemoryFormat::nhwc,
                  "{}: memory format {} is neither nchw (0) nor nhwc (1); pass MemoryFormat::nchw or "
                  "MemoryFormat::nhwc",
                  op, static_cast<int>(format));
}

// The element-wise forward launches (dropout, and ReLU + dropout): checks, the mask rule of this step, and
// the vector kernel where x and y allow it.
template <class Kernel, class T>
void launch_masked_forward(const char* op, Kernel aligned, Kernel unaligned, const T* x, T* y, uint8_t* mask,
                           int64_t count, const cpu::DropoutOptions& options, cudaStream_t stream,
                           const DeviceStep& step) {
    check_dropout_options(op, options);
    CUDACNN_CHECK(count > 0, "{}: the input is empty (count {}); pass at least one element", op, count);
    check_pointers(op, x, mask, y);
    const dim3 grid = group_grid(count), block(kElementwiseBlock);
    launch(group_aligned(x, y) ? aligned : unaligned, grid, block, 0, stream, x, y, mask, count,
           mask_rule(options, step), mask_factors(options));
}

template <class T>
void dropout_forward_t(const T* x, T* y, uint8_t* mask, int64_t count, const cpu::DropoutOptions& options,
                       cudaStream_t stream, const DeviceStep& step) {
    launch_masked_forward("dropout", kernels::dropout_forward_kernel<true, T>,
                          kernels::dropout_forward_kernel<false, T>, x, y, mask, count, options, stream,
                          step);
}

template <class T>
void dropout_backward_t(const T* dy, const uint8_t* mask, T* dx, int64_t count,
                        const cpu::DropoutOptions& options, cudaStream_t stream) {
    check_dropout_options("dropout_backward", options);
    CUDACNN_CHECK(count > 0, "dropout_backward: dy is empty (count {}); pass at least one element", count);
    check_pointers("dropout_backward", dy, mask, dx);
    launch_apply_mask(dy, mask, dx, count, 1, options, stream);
}

template <class T>
void relu_dropout_forward_t(const T* x, T* y, uint8_t* mask, int64_t count,
                            const cpu::DropoutOptions& options, cudaStream_t stream, const DeviceStep& step) {
    launch_masked_forward("relu_dropout", kernels::relu_dropout_forward_kernel<true, T>,
                          kernels::relu_dropout_forward_kernel<false, T>, x, y, mask, count, options, stream,
                          step);
}

template <class T>
void relu_dropout_backward_t(const T* dy, const uint8_t* mask, T* dx, int64_t count,
                             const cpu::DropoutOptions& options, cudaStream_t stream) {
    check_dropout_options("relu_dropout_backward", options);
    CUDACNN_CHECK(count > 0, "relu_dropout_backward: dy is empty (count {}); pass at least one element",
                  count);
    check_pointers("relu_dropout_backward", dy, mask, dx);
    const dim3 grid = group_grid(count), block(kElementwiseBlock);
    const kernels::MaskFactors factors = mask_factors(options);
    if (group_aligned(dy, dx)) {
        launch(kernels::relu_dropout_backward_kernel<true, T>, grid, block, 0, stream, dy, mask, dx, count,
               factors);
    } else {
        launch(kernels::relu_dropout_backward_kernel<false, T>, grid, block, 0, stream, dy, mask, dx, count,
               factors);
    }
}

template <class T>
void dropout2d_forward_t(const T* x, T* y, uint8_t* mask, const Shape& shape,
                         const cpu::DropoutOptions& options, cudaStream_t stream, const DeviceStep& step,
                         MemoryFormat format) {
    check_dropout_options("dropout2d", options);
    check_dropout2d_shape("dropout2d", "x", shape);
    check_format("dropout2d", format);
    check_pointers("dropout2d", x, mask, y);
    const int64_t units = shape[0] * shape[1];  // (N, C)
    launch(kernels::draw_mask_kernel, group_grid(units), dim3(kElementwiseBlock), 0, stream, mask, units,
           mask_rule(options, step));
    launch_apply_channel_mask(x, mask, y, shape, options, stream, format);
}

template <class T>
void dropout2d_backward_t(const T* dy, const uint8_t* mask, T* dx, const Shape& shape,
                          const cpu::DropoutOptions& options, cudaStream_t stream, MemoryFormat format) {
    check_dropout_options("dropout2d_backward", options);
    check_dropout2d_shape("dropout2d_backward", "dy", shape);
    check_format("dropout2d_backward", format);
    check_pointers("dropout2d_backward", dy, mask, dx);
    launch_apply_channel_mask(dy, mask, dx, shape, options, stream, format);
}

}  // namespace

void dropout_forward(const float* x, float* y, uint8_t* mask, int64_t count,
                     const cpu::DropoutOptions& options, cudaStream_t stream, const DeviceStep& step) {
    dropout_forward_t(x, y, mask, count, options, stream, step);
}
void dropout_backward(const float* dy, const uint8_t* mask, float* dx, int64_t count,
                      const cpu::DropoutOptions& options, cudaStream_t stream) {
    dropout_backward_t(dy, mask, dx, count, options, stream);
}
void relu_dropout_forward(const float* x, float* y, uint8_t* mask, int64_t count,
                          const cpu::DropoutOptions& options, cudaStream_t stream, const DeviceStep& step) {
    relu_dropout_forward_t(x, y, mask, count, options, stream, step);
}
void relu_dropout_backward(const float* dy, const uint8_t* mask, float* dx, int64_t count,
                           const cpu::DropoutOptions& options, cudaStream_t stream) {
    relu_dropout_backward_t(dy, mask, dx, count, options, stream);
}
void dropout2d_forward(const float* x, float* y, uint8_t* mask, const Shape& shape,
                       const cpu::DropoutOptions& options, cudaStream_t stream, const DeviceStep& step,
                       MemoryFormat format) {
    dropout2d_forward_t(x, y, mask, shape, options, stream, step, format);
}
void dropout2d_backward(const float* dy, const uint8_t* mask, float* dx, const Shape& shape,
                        const cpu::DropoutOptions& options, cudaStream_t stream, MemoryFormat format) {
    dropout2d_backward_t(dy, mask, dx, shape, options, stream, format);
}

void dropout_forward(const bf16* x, bf16* y, uint8_t* mask, int64_t count, const cpu::DropoutOptions& options,
                     cudaStream_t stream, const DeviceStep& step) {
    dropout_forward_t(x, y, mask, count, options, stream, step);
}
void dropout_backward(const bf16* dy, const uint8_t* mask, bf16* dx, int64_t count,
                      const cpu::DropoutOptions& options, cudaStream_t stream) {
    dropout_backward_t(dy, mask, dx, count, options, stream);
}
void relu_dropout_forward(const bf16* x, bf16* y, uint8_t* mask, int64_t count,
                          const cpu::DropoutOptions& options, cudaStream_t stream, const DeviceStep& step) {
    relu_dropout_forward_t(x, y, mask, count, options, stream, step);
}
void relu_dropout_backward(const bf16* dy, const uint8_t* mask, bf16* dx, int64_t count,
                           const cpu::DropoutOptions& options, cudaStream_t stream) {
    relu_dropout_backward_t(dy, mask, dx, count, options, stream);
}
void dropout2d_forward(const bf16* x, bf16* y, uint8_t* mask, const Shape& shape,
                       const cpu::DropoutOptions& options, cudaStream_t stream, const DeviceStep& step,
                       MemoryFormat format) {
    dropout2d_forward_t(x, y, mask, shape, options, stream, step, format);
}
void dropout2d_backward(const bf16* dy, const uint8_t* mask, bf16* dx, const Shape& shape,
                        const cpu::DropoutOptions& options, cudaStream_t stream, MemoryFormat format) {
    dropout2d_backward_t(dy, mask, dx, shape, options, stream, format);
}

}  // namespace cudacnn::gpu
