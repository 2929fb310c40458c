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

// 4 consecutive bf16 as one 8-byte access (the float4 of a float tensor). (No #pragma unroll in this header:
// host .cpp files include it; constant 4-trip loops unroll anyway.)
struct alignas(8) Bf16Quad {
    bf16 v[4];
};

// Reads 4 consecutive elements in one access (src aligned to the group: 16 bytes of float, 8 of bf16), widened
// to float.
__device__ inline void load_quad(const float* src, float (&r)[4]) {
    const float4 v = *reinterpret_cast<const float4*>(src);
    r[0] = v.x, r[1] = v.y, r[2] = v.z, r[3] = v.w;
}
__device__ inline void load_quad(const bf16* src, float (&r)[4]) {
    const Bf16Quad q = *reinterpret_cast<const Bf16Quad*>(src);
    for (int j = 0; j < 4; ++j) r[j] = to_float(q.v[j]);
}

// Writes 4 consecutive floats in one access to a group-aligned address, each rounded once to the storage type.
__device__ inline void store_quad(float* dst, const float (&v)[4]) {
    *reinterpret_cast<float4*>(dst) = make_float4(v[0], v[1], v[2], v[3]);
}
__device__ inline void store_quad(bf16* dst, const float (&v)[4]) {
    Bf16Quad q;
    for (int j = 0; j < 4; ++j) q.v[j] = from_float<bf16>(v[j]);
    *reinterpret_cast<Bf16Quad*>(dst) = q;
}

}  // namespace cudacnn::gpu

namespace cudacnn {
// So that typed views (TensorView::data_as, the executor's activations) hand out bf16 data as gpu::bf16.
template <>
struct DTypeOf<gpu::bf16> {
    static constexpr DType value = DType::bf16;
};
}  // namespace cudacnn
