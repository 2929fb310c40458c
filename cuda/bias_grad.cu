// Bias-gradient reductions: one block per channel for (N, C, H, W), column sums for (N, C); no atomics.
#include "cuda/bias_grad.hpp"

#include <climits>

#include "cuda/bf16.cuh"
#include "cuda/launch.cuh"
#include "cuda/reduce.cuh"
#include "cudacnn/error.hpp"

namespace cudacnn::gpu {
namespace kernels {

constexpr int kConvBiasThreads = 512;
constexpr int kLinearBiasChannels = 32;  // threadIdx.x: one warp spans 32 adjacent channels
constexpr int kLinearBiasRows = 8;       // threadIdx.y: rows of dy split 8 ways

// Block c sums channel c of dy (N, C, HW). Thread t visits flat indices t, t + blockDim.x, … of the channel's
// (n, hw) values, tracking (n, hw) incrementally instead of dividing per element; element (n, c, p) is at
// n · C·HW + c · channel_stride + p · pixel_stride (NCHW: HW and 1; NHWC: 1 and C), the same visiting order
// in both formats. T = float or bf16 (widened).
template <class T>
__global__ void __launch_bounds__(kConvBiasThreads)
    conv_bias_grad_kernel(const T* dy, float* db, int64_t n, int64_t c, int64_t hw, int64_t channel_stride,
                          int64_t pixel_stride) {
    const int64_t channel = blockIdx.x;
    const int64_t step_image = blockDim.x / hw, step_pos = blockDim.x % hw;
    int64_t image = threadIdx.x / hw, pos = threadIdx.x % hw;
    float sum = 0.0f;
    while (image < n) {
        sum += to_float(dy[image * c * hw + channel * channel_stride + pos * pixel_stride]);
        image += step_image, pos += step_pos;
        if (pos >= hw) pos -= hw, ++image;
    }
    sum = reduce::block_reduce(sum);  // valid in thread 0
    if (threadIdx.x == 0) db[channel] = sum;
}

// Block b sums columns 32·b … 32·b + 31 of dy (N, C); T is dy's storage (float, or bf16 widened exactly), the
// sums are float.
template <class T>
__global__ void linear_bias_grad_kernel(const T* dy, float* db, int64_t n, int64_t c) {
    __shared__ float partial[kLinearBiasRows][kLinearBiasChannels + 1];  // +1: no bank conflicts reading down
    const int64_t column = blockIdx.x * int64_t{kLinearBiasChannels} + threadIdx.x;
    float sum = 0.0f;
    if (column < c) {
        for (int64_t row = threadIdx.y; row < n; row += kLinearBiasRows)
            sum += to_float(dy[row * c + column]);
    }
    partial[threadIdx.y][threadIdx.x] = sum;
    __syncthreads();
    if (threadIdx.y == 0 && column < c) {
        for (int y = 1; y < kLinearBiasRows; ++y) sum += partial[y][threadIdx.x];
        db[column] = sum;
    }
}

}  // namespace kernels

namespace {

template <class T>
void launch_conv_bias_grad(const T* dy, float* db, int64_t n, int64_t c, int64_t h, int64_t w,
                           cudaStream_t stream, MemoryFormat format) {
    CUDACNN_CHECK(n > 0 && c > 0 && h > 0 && w > 0,
                  "conv_bias_grad: dy has shape ({}, {}, {}, {}); every size must be positive", n, c, h, w);
    CUDACNN_CHECK(c <= INT_MAX, "conv_bias_grad: {} channels are more than one grid holds", c);
    const bool nhwc = format == MemoryFormat::nhwc;
    launch(kernels::conv_bias_grad_kernel<T>, dim3(static_cast<unsigned>(c)), dim3(kernels::kConvBiasThreads),
           0, stream, dy, db, n, c, h * w, nhwc ? int64_t{1} : h * w, nhwc ? c : int64_t{1});
}

}  // namespace

void conv_bias_grad(const float* dy, float* db, int64_t n, int64_t c, int64_t h, int64_t w,
                    cudaStream_t stream, MemoryFormat format) {
    launch_conv_bias_grad(dy, db, n, c, h, w, stream, format);
}

void conv_bias_grad(const bf16* dy, float* db, int64_t n, int64_t c, int64_t h, int64_t w,
                    cudaStream_t stream, MemoryFormat format) {
    launch_conv_bias_grad(dy, db, n, c, h, w, stream, format);
}

namespace {

template <class T>
void linear_bias_grad_impl(const T* dy, float* db, int64_t n, int64_t c, cudaStream_t stream) {
    CUDACNN_CHECK(n > 0 && c > 0, "linear_bias_grad: dy has shape ({}, {}); both sizes must be positive", n,
                  c);
    CUDACNN_CHECK(c <= INT_MAX, "linear_bias_grad: {} channels are more than one grid holds", c);
    const int64_t blocks = (c + kernels::kLinearBiasChannels - 1) / kernels::kLinearBiasChannels;
    launch(kernels::linear_bias_grad_kernel<T>, dim3(static_cast<unsigned>(blocks)),
           dim3(kernels::kLinearBiasChannels, kernels::kLinearBiasRows), 0, stream, dy, db, n, c);
}

}  // namespace

void linear_bias_grad(const float* dy, float* db, int64_t n, int64_t c, cudaStream_t stream) {
    linear_bias_grad_impl(dy, db, n, c, stream);
}

void linear_bias_grad(const bf16* dy, float* db, int64_t n, int64_t c, cudaStream_t stream) {
    linear_bias_grad_impl(dy, db, n, c, stream);
}

}  // namespace cudacnn::gpu
