// bfloat16 activations (--precision bf16): how kernels read and write them. Every kernel computes in float:
// a load widens exactly, a store rounds to nearest even once per element (__float2bfloat16_rn, which the
// emulator runs through cuda_bf16.h's host definitions). Kernels that take either storage are templates on
// T = float or bf16 and go through these overloads, so their float instantiation is the float kernel as
// before. Parameters, their gradients, running and saved statistics and the loss stay float in every
// precision.
#pragma once

#include <cuda_bf16.h>

#include "cudacnn/tensor.hpp"

// Kernels (and the emulator's .cu files) get __device__ from launch.cuh; host files of the cuda flavour
// (tests, backends), compiled by the host compiler, from the CUDA headers, which mark these host-callable.
#if defined(CUDACNN_EMU) || defined(__CUDACC__)
#include "cuda/launch.cuh"
#else
#include <cuda_runtime_api.h>
#endif

namespace cudacnn::gpu {

using bf16 = __nv_bfloat16;

__device__ __host__ inline float to_float(float value) {
    return value;
}
__device__ __host__ inline float to_float(bf16 value) {
    return __bfloat162float(value);
}

// from_float<T>(v): v as T, rounded to nearest even for bf16 (NaN becomes the canonical NaN 0x7fff).
template <class T>
__device__ __host__ inline T from_float(float value);
template <>
__device__ __host__ inline float from_float<float>(float value) {
    return value;
}
template <>
__device__ __host__ inline bf16 from_float<bf16>(float value) {
    return __float2bfloat16_rn(value);
}

}  // namespace cudacnn::gpu

namespace cudacnn {
// So that typed views (TensorView::data_as, the executor's activations) hand out bf16 data as gpu::bf16.
template <>
struct DTypeOf<gpu::bf16> {
    static constexpr DType value = DType::bf16;
};
}  // namespace cudacnn
