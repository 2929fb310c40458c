// Kernels of cudnn_conv2d_bf16.hpp: grid-stride element-wise loops, launched through launch().
#include "cuda/vendor/cudnn_conv2d_bf16.hpp"

#include "cuda/bf16.cuh"
#include "cuda/elementwise.cuh"
#include "cuda/launch.cuh"
#include "cudacnn/error.hpp"

namespace cudacnn::gpu::cudnn_bf16 {

namespace kernels {

// The channel of flat index i of an (N, C, HW) tensor is (i / HW) % C.
__global__ void add_channel_bias_kernel(bf16* y, const float* bias, int64_t count, int64_t c, int64_t hw) {
    const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
    for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < count; i += stride) {
        y[i] = from_float<bf16>(to_float(y[i]) + bias[(i / hw) % c]);
    }
}

}  // namespace kernels

void add_channel_bias(bf16* y, const float* bias, int64_t n, int64_t c, int64_t hw, cudaStream_t stream) {
    CUDACNN_CHECK(n > 0 && c > 0 && hw > 0,
                  "cudnn_conv2d bf16 bias: y has shape ({}, {}, {}); every size must be positive", n, c, hw);
    CUDACNN_CHECK(y != nullptr && bias != nullptr,
                  "cudnn_conv2d bf16 bias: y ({}) and bias ({}) must be device pointers",
                  static_cast<const void*>(y), static_cast<const void*>(bias));
    const int64_t count = n * c * hw;
    launch(kernels::add_channel_bias_kernel, elementwise_grid(count), dim3(kElementwiseBlock), 0, stream, y,
           bias, count, c, hw);
}

}  // namespace cudacnn::gpu::cudnn_bf16
