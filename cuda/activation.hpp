// Element-wise activation kernels (relu, leaky_relu, gelu, sigmoid, tanh), forward and backward, with the
// semantics of the CPU reference (cudacnn/ops/activation.hpp).
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>

#include "cuda/bf16.cuh"
#include "cudacnn/ops/activation.hpp"

namespace cudacnn::gpu {

// Every launcher works on `count` contiguous floats in device memory (any shape; count ≥ 1, else Error) and
// overwrites its output. An output may alias its input exactly (in place: y == x, dx == dy), never partly.
// The backward passes take the tensor the reference saves: y for relu, sigmoid and tanh, x for leaky_relu
// and gelu. NaN propagates as in the reference (relu(NaN) = NaN, relu_backward with y = NaN passes dy).
//
// Tiling: one grid-stride kernel (cuda/elementwise.cuh), 256 threads per block, each thread a float4 at a
// time where all pointers share their offset modulo 16 (a few scalar elements before and after), a scalar
// loop otherwise. Memory-bound: one read per input, one write, nothing else.
// bf16 overloads (--precision bf16): the same kernels on bf16 storage; loads widen exactly, the float math is
// the float kernel's, and each output is rounded once to bf16 (nearest even). Vectors of 8 bf16 (16 bytes)
// where all pointers share their offset modulo 16.
// Accuracy: float math; relu is exact, leaky_relu rounds twice (slope to float, product), gelu, sigmoid
// and tanh use CUDA's expf / tanhf / normcdff (a few ulp), so they agree with the reference to rounding.

void relu_forward(const float* x, float* y, int64_t count, cudaStream_t stream);
// dx = y <= 0 ? 0 : dy (PyTorch's threshold_backward; gradient 0 at x = 0).
void relu_backward(const float* y, const float* dy, float* dx, int64_t count, cudaStream_t stream);

void leaky_relu_forward(const float* x, float* y, int64_t count, const cpu::LeakyReluOptions& options,
                        cudaStream_t stream);
void leaky_relu_backward(const float* x, const float* dy, float* dx, int64_t count,
                         const cpu::LeakyReluOptions& options, cudaStream_t stream);

void gelu_forward(const float* x, float* y, int64_t count, const cpu::GeluOptions& options,
                  cudaStream_t stream);
void gelu_backward(const float* x, const float* dy, float* dx, int64_t count, const cpu::GeluOptions& options,
                   cudaStream_t stream);

void sigmoid_forward(const float* x, float* y, int64_t count, cudaStream_t stream);
void sigmoid_backward(const float* y, const float* dy, float* dx, int64_t count, cudaStream_t stream);

void tanh_forward(const float* x, float* y, int64_t count, cudaStream_t stream);
void tanh_backward(const float* y, const float* dy, float* dx, int64_t count, cudaStream_t stream);

void relu_forward(const bf16* x, bf16* y, int64_t count, cudaStream_t stream);
void relu_backward(const bf16* y, const bf16* dy, bf16* dx, int64_t count, cudaStream_t stream);
void leaky_relu_forward(const bf16* x, bf16* y, int64_t count, const cpu::LeakyReluOptions& options,
                        cudaStream_t stream);
void leaky_relu_backward(const bf16* x, const bf16* dy, bf16* dx, int64_t count,
                         const cpu::LeakyReluOptions& options, cudaStream_t stream);
void gelu_forward(const bf16* x, bf16* y, int64_t count, const cpu::GeluOptions& options,
                  cudaStream_t stream);
void gelu_backward(const bf16* x, const bf16* dy, bf16* dx, int64_t count, const cpu::GeluOptions& options,
                   cudaStream_t stream);
void sigmoid_forward(const bf16* x, bf16* y, int64_t count, cudaStream_t stream);
void sigmoid_backward(const bf16* y, const bf16* dy, bf16* dx, int64_t count, cudaStream_t stream);
void tanh_forward(const bf16* x, bf16* y, int64_t count, cudaStream_t stream);
void tanh_backward(const bf16* y, const bf16* dy, bf16* dx, int64_t count, cudaStream_t stream);

}  // namespace cudacnn::gpu
