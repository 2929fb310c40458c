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

// The values of elements 4 · group .. (fewer at the end of the range; the rest left 0): a float4 when
// kVector (the pointer 16-byte aligned) and the group is whole.
template <bool kVector>
__device__ inline void load_group(const float* in, int64_t group, int64_t count, float v[4]) {
    const int64_t first = 4 * group;
    if (kVector && first + 4 <= count) {
        const float4 q = reinterpret_cast<const float4*>(in)[group];
        v[0] = q.x;
        v[1] = q.y;
        v[2] = q.z;
        v[3] = q.w;
        return;
    }
    for (int k = 0; k < 4; ++k) v[k] = first + k < count ? in[first + k] : 0.0f;
}

template <bool kVector>
__device__ inline void store_group(float* out, int64_t group, int64_t count, const float v[4]) {
    const int64_t first = 4 * group;
    if (kVector && first + 4 <= count) {
        reinterpret_cast<float4*>(out)[group] = make_float4(v[0], v[1], v[2], v[3]);
        return;
    }
    for (int k = 0; k < 4 && first + k < count; ++k) out[first + k] = v[k];
}

// in → out for elements 4 · group ..: each value times its unit's factor.
template <bool kVector>
__device__ inline void scale_group(const float* in, float* out, int64_t group, int64_t count,
                                   const bool keep[4], const MaskFactors& factors) {
    float v[4];
    load_group<kVector>(in, group, count, v);
    for (int k = 0; k < 4; ++k) v[k] = apply_factor(v[k], keep[k], factors);
    store_group<kVector>(out, group, count, v);
}

// Dropout forward, fused: one thread per group of four elements draws their mask and scales their values.
template <bool kVector>
__global__ void dropout_forward_kernel(const float* x, float* y, uint8_t* mask, int64_t count, MaskRule rule,
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
template <bool kVector>
__global__ void apply_mask_kernel(const float* in, const uint8_t* mask, float* out, int64_t count,
                                  int64_t unit_size, MaskFactors factors) {
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

// ReLU then dropout: dropout_forward_kernel's draws and arithmetic on relu_value(x), the mask byte also
// recording whether the ReLU passes its gradient (relu_gradient's rule: not relu(x) <= 0).
template <bool kVector>
__global__ void relu_dropout_forward_kernel(const float* x, float* y, uint8_t* mask, int64_t count, MaskRule rule,
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
            bits[k] = static_cast<uint8_t>((keep[k] ? kReluDropoutKept : 0) | (relu <= 0.0f ? 0 : kReluDropoutPasses));
            v[k] = apply_factor(relu, keep[k], factors);
        }
        store_group<kVector>(y, g, count, v);
        for (int k = 0; k < 4 && 4 * g + k < count; ++k) mask[4 * g + k] = bits[k];
    }
}

// dropout's backward (dy times the factor of the unit) then the ReLU's select, from the two mask bits.
template <bool kVector>
__global__ void relu_dropout_backward_kernel(const float* dy, const uint8_t* mask, float* dx, int64_t count,
                                             MaskFactors factors) {
    const int64_t groups = (count + 3) / 4;
    const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
    for (int64_t g = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; g < groups; g += stride) {
        float v[4];
        load_group<kVector>(dy, g, count, v);
        for (int k = 0; k < 4 && 4 * g + k < count; ++k) {
            const uint8_t bits = mask[4 * g + k];
            v[k] = (bits & kReluDropoutPasses) ? apply_factor(v[k], (bits & kReluDropoutKept) != 0, factors) : 0.0f;
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

bool float4_aligned(const float* a, const float* b) {
    return reinterpret_cast<uintptr_t>(a) % 16 == 0 && reinterpret_cast<uintptr_t>(b) % 16 == 0;
}

dim3 group_grid(int64_t count) {
    return elementwise_grid((count + 3) / 4);
}

void launch_apply_mask(const float* in, const uint8_t* mask, float* out, int64_t count, int64_t unit_size,
                       const cpu::DropoutOptions& options, cudaStream_t stream) {
    const dim3 grid = group_grid(count), block(kElementwiseBlock);
    const kernels::MaskFactors factors = mask_factors(options);
    if (float4_aligned(in, out)) {
        launch(kernels::apply_mask_kernel<true>, grid, block, 0, stream, in, mask, out, count, unit_size,
               factors);
    } else {
        launch(kernels::apply_mask_kernel<false>, grid, block, 0, stream, in, mask, out, count, unit_size,
               factors);
    }
}

// The element-wise forward launches (dropout, and ReLU + dropout): checks, the mask rule of this step, and the
// float4 kernel where x and y allow it.
template <class Kernel>
void launch_masked_forward(const char* op, Kernel aligned, Kernel unaligned, const float* x, float* y,
                           uint8_t* mask, int64_t count, const cpu::DropoutOptions& options, cudaStream_t stream,
                           const DeviceStep& step) {
    check_dropout_options(op, options);
    CUDACNN_CHECK(count > 0, "{}: the input is empty (count {}); pass at least one element", op, count);
    check_pointers(op, x, mask, y);
    const dim3 grid = group_grid(count), block(kElementwiseBlock);
    launch(float4_aligned(x, y) ? aligned : unaligned, grid, block, 0, stream, x, y, mask, count,
           mask_rule(options, step), mask_factors(options));
}

}  // namespace

void dropout_forward(const float* x, float* y, uint8_t* mask, int64_t count,
                     const cpu::DropoutOptions& options, cudaStream_t stream, const DeviceStep& step) {
    launch_masked_forward("dropout", kernels::dropout_forward_kernel<true>, kernels::dropout_forward_kernel<false>,
                          x, y, mask, count, options, stream, step);
}

void dropout_backward(const float* dy, const uint8_t* mask, float* dx, int64_t count,
                      const cpu::DropoutOptions& options, cudaStream_t stream) {
    check_dropout_options("dropout_backward", options);
    CUDACNN_CHECK(count > 0, "dropout_backward: dy is empty (count {}); pass at least one element", count);
    check_pointers("dropout_backward", dy, mask, dx);
    launch_apply_mask(dy, mask, dx, count, 1, options, stream);
}

void relu_dropout_forward(const float* x, float* y, uint8_t* mask, int64_t count,
                          const cpu::DropoutOptions& options, cudaStream_t stream, const DeviceStep& step) {
    launch_masked_forward("relu_dropout", kernels::relu_dropout_forward_kernel<true>,
                          kernels::relu_dropout_forward_kernel<false>, x, y, mask, count, options, stream, step);
}

void relu_dropout_backward(const float* dy, const uint8_t* mask, float* dx, int64_t count,
                           const cpu::DropoutOptions& options, cudaStream_t stream) {
    check_dropout_options("relu_dropout_backward", options);
    CUDACNN_CHECK(count > 0, "relu_dropout_backward: dy is empty (count {}); pass at least one element", count);
    check_pointers("relu_dropout_backward", dy, mask, dx);
    const dim3 grid = group_grid(count), block(kElementwiseBlock);
    const kernels::MaskFactors factors = mask_factors(options);
    if (float4_aligned(dy, dx)) {
        launch(kernels::relu_dropout_backward_kernel<true>, grid, block, 0, stream, dy, mask, dx, count, factors);
    } else {
        launch(kernels::relu_dropout_backward_kernel<false>, grid, block, 0, stream, dy, mask, dx, count, factors);
    }
}

void dropout2d_forward(const float* x, float* y, uint8_t* mask, const Shape& shape,
                       const cpu::DropoutOptions& options, cudaStream_t stream, const DeviceStep& step) {
    check_dropout_options("dropout2d", options);
    check_dropout2d_shape("dropout2d", "x", shape);
    check_pointers("dropout2d", x, mask, y);
    const int64_t units = shape[0] * shape[1];  // (N, C)
    launch(kernels::draw_mask_kernel, group_grid(units), dim3(kElementwiseBlock), 0, stream, mask, units,
           mask_rule(options, step));
    launch_apply_mask(x, mask, y, shape.numel(), shape[2] * shape[3], options, stream);
}

void dropout2d_backward(const float* dy, const uint8_t* mask, float* dx, const Shape& shape,
                        const cpu::DropoutOptions& options, cudaStream_t stream) {
    check_dropout_options("dropout2d_backward", options);
    check_dropout2d_shape("dropout2d_backward", "dy", shape);
    check_pointers("dropout2d_backward", dy, mask, dx);
    launch_apply_mask(dy, mask, dx, shape.numel(), shape[2] * shape[3], options, stream);
}

}  // namespace cudacnn::gpu
