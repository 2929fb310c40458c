// The CUDA compatibility header of the CPU emulator: with it, the host compiler builds unmodified kernel
// source (.cu files compiled as C++), and every CUDA thread of a launch runs as a fiber (see scheduler.cpp).
// Only cuda/launch.cuh includes it, and only in the emu flavour (CUDACNN_EMU).
#pragma once

#ifdef __CUDACC__
#error "cuda/emu/emu.hpp is for the host compiler (emu flavour); nvcc builds the real kernels"
#endif

#include <cuda_runtime_api.h>
#include <vector_functions.h>
#include <vector_types.h>

// For the host compiler CUDA's headers define the keywords as nothing. __shared__ variables become
// per-worker-thread statics: a worker runs one block at a time, so all fibers of a block see one copy.
#undef __global__
#undef __shared__
#undef __constant__
#undef __launch_bounds__
#define __global__
#define __shared__ static thread_local
#define __constant__
#define __launch_bounds__(...)

#include <algorithm>
#include <climits>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <type_traits>

namespace cudacnn::emu {

// What one fiber (one CUDA thread) knows about itself.
struct ThreadContext {
    uint3 thread_idx;
};

// What every fiber of the block being run on this worker shares.
struct BlockContext {
    uint3 block_idx;
    dim3 block_dim;
    dim3 grid_dim;
    unsigned char* dynamic_shared;  // this block's dynamic shared memory, NaN-filled before it starts
};

// Set by the scheduler before it resumes a fiber; fibers never move between worker threads.
extern thread_local ThreadContext* current_thread;
extern thread_local BlockContext* current_block;

// __syncthreads and its reducing variants.
enum class BarrierReduce { none, count, all, any };
int block_barrier(BarrierReduce reduce, int predicate);

// Warp collectives; the scheduler releases one when every live lane of its mask waits at it.
enum class WarpOp { sync, shfl_idx, shfl_up, shfl_down, shfl_xor, ballot, any, all, reduce_add, reduce_min,
                    reduce_max };
uint64_t warp_collective(WarpOp op, unsigned mask, uint64_t value, int lane_arg, int width);
unsigned active_lane_mask();

template <typename T>
uint64_t to_bits(T value) {
    static_assert(std::is_trivially_copyable_v<T> && sizeof(T) <= 8, "warp shuffles move at most 8 bytes");
    uint64_t bits = 0;
    std::memcpy(&bits, &value, sizeof(T));
    return bits;
}

template <typename T>
T from_bits(uint64_t bits) {
    T value;
    std::memcpy(&value, &bits, sizeof(T));
    return value;
}

// Atomic read-modify-write through a compare-and-swap on the value's bit pattern (float max, add on double).
template <typename T, typename Combine>
T atomic_update(T* address, Combine combine) {
    using Bits = std::conditional_t<sizeof(T) == 4, uint32_t, uint64_t>;
    static_assert(sizeof(T) == sizeof(Bits), "atomics on 4- and 8-byte values only");
    Bits* raw = reinterpret_cast<Bits*>(address);
    Bits expected = __atomic_load_n(raw, __ATOMIC_RELAXED);
    for (;;) {
        const T old_value = from_bits<T>(expected);
        const Bits desired = static_cast<Bits>(to_bits(combine(old_value)));
        if (__atomic_compare_exchange_n(raw, &expected, desired, false, __ATOMIC_SEQ_CST, __ATOMIC_RELAXED)) {
            return old_value;
        }
    }
}

}  // namespace cudacnn::emu

// ---- built-in variables ---------------------------------------------------------------------------------
#define threadIdx (::cudacnn::emu::current_thread->thread_idx)
#define blockIdx (::cudacnn::emu::current_block->block_idx)
#define blockDim (::cudacnn::emu::current_block->block_dim)
#define gridDim (::cudacnn::emu::current_block->grid_dim)
constexpr int warpSize = 32;

// ---- barriers and memory fences ---------------------------------------------------------------------
inline void __syncthreads() { ::cudacnn::emu::block_barrier(::cudacnn::emu::BarrierReduce::none, 0); }
inline int __syncthreads_count(int predicate) {
    return ::cudacnn::emu::block_barrier(::cudacnn::emu::BarrierReduce::count, predicate);
}
inline int __syncthreads_and(int predicate) {
    return ::cudacnn::emu::block_barrier(::cudacnn::emu::BarrierReduce::all, predicate);
}
inline int __syncthreads_or(int predicate) {
    return ::cudacnn::emu::block_barrier(::cudacnn::emu::BarrierReduce::any, predicate);
}
inline void __threadfence() { __atomic_thread_fence(__ATOMIC_SEQ_CST); }
inline void __threadfence_block() { __atomic_thread_fence(__ATOMIC_SEQ_CST); }

// ---- warp collectives -----------------------------------------------------------------------------
inline void __syncwarp(unsigned mask = 0xffffffffu) {
    ::cudacnn::emu::warp_collective(::cudacnn::emu::WarpOp::sync, mask, 0, 0, warpSize);
}
inline unsigned __activemask() { return ::cudacnn::emu::active_lane_mask(); }

template <typename T>
T __shfl_sync(unsigned mask, T var, int src_lane, int width = warpSize) {
    using namespace ::cudacnn::emu;
    return from_bits<T>(warp_collective(WarpOp::shfl_idx, mask, to_bits(var), src_lane, width));
}
template <typename T>
T __shfl_up_sync(unsigned mask, T var, unsigned delta, int width = warpSize) {
    using namespace ::cudacnn::emu;
    return from_bits<T>(warp_collective(WarpOp::shfl_up, mask, to_bits(var), static_cast<int>(delta), width));
}
template <typename T>
T __shfl_down_sync(unsigned mask, T var, unsigned delta, int width = warpSize) {
    using namespace ::cudacnn::emu;
    return from_bits<T>(warp_collective(WarpOp::shfl_down, mask, to_bits(var), static_cast<int>(delta), width));
}
template <typename T>
T __shfl_xor_sync(unsigned mask, T var, int lane_mask, int width = warpSize) {
    using namespace ::cudacnn::emu;
    return from_bits<T>(warp_collective(WarpOp::shfl_xor, mask, to_bits(var), lane_mask, width));
}
inline unsigned __ballot_sync(unsigned mask, int predicate) {
    using namespace ::cudacnn::emu;
    return static_cast<unsigned>(warp_collective(WarpOp::ballot, mask, predicate != 0, 0, warpSize));
}
inline int __any_sync(unsigned mask, int predicate) {
    using namespace ::cudacnn::emu;
    return static_cast<int>(warp_collective(WarpOp::any, mask, predicate != 0, 0, warpSize));
}
inline int __all_sync(unsigned mask, int predicate) {
    using namespace ::cudacnn::emu;
    return static_cast<int>(warp_collective(WarpOp::all, mask, predicate != 0, 0, warpSize));
}
// sm_80 integer warp reductions.
inline unsigned __reduce_add_sync(unsigned mask, unsigned value) {
    using namespace ::cudacnn::emu;
    return static_cast<unsigned>(warp_collective(WarpOp::reduce_add, mask, value, 0, warpSize));
}
inline unsigned __reduce_min_sync(unsigned mask, unsigned value) {
    using namespace ::cudacnn::emu;
    return static_cast<unsigned>(warp_collective(WarpOp::reduce_min, mask, value, 0, warpSize));
}
inline unsigned __reduce_max_sync(unsigned mask, unsigned value) {
    using namespace ::cudacnn::emu;
    return static_cast<unsigned>(warp_collective(WarpOp::reduce_max, mask, value, 0, warpSize));
}

// ---- atomics: real atomics, because blocks run concurrently on several worker threads -------------
#define CUDACNN_EMU_INTEGER_ATOMICS(T)                                                                       \
    inline T atomicAdd(T* a, T v) { return __atomic_fetch_add(a, v, __ATOMIC_SEQ_CST); }                    \
    inline T atomicSub(T* a, T v) { return __atomic_fetch_sub(a, v, __ATOMIC_SEQ_CST); }                    \
    inline T atomicExch(T* a, T v) { return __atomic_exchange_n(a, v, __ATOMIC_SEQ_CST); }                  \
    inline T atomicAnd(T* a, T v) { return __atomic_fetch_and(a, v, __ATOMIC_SEQ_CST); }                    \
    inline T atomicOr(T* a, T v) { return __atomic_fetch_or(a, v, __ATOMIC_SEQ_CST); }                      \
    inline T atomicXor(T* a, T v) { return __atomic_fetch_xor(a, v, __ATOMIC_SEQ_CST); }                    \
    inline T atomicMax(T* a, T v) {                                                                          \
        return ::cudacnn::emu::atomic_update(a, [v](T old) { return old > v ? old : v; });                   \
    }                                                                                                        \
    inline T atomicMin(T* a, T v) {                                                                          \
        return ::cudacnn::emu::atomic_update(a, [v](T old) { return old < v ? old : v; });                   \
    }                                                                                                        \
    inline T atomicCAS(T* a, T compare, T v) {                                                               \
        __atomic_compare_exchange_n(a, &compare, v, false, __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST);              \
        return compare;                                                                                      \
    }
CUDACNN_EMU_INTEGER_ATOMICS(int)
CUDACNN_EMU_INTEGER_ATOMICS(unsigned int)
CUDACNN_EMU_INTEGER_ATOMICS(unsigned long long int)
CUDACNN_EMU_INTEGER_ATOMICS(long long int)
#undef CUDACNN_EMU_INTEGER_ATOMICS

inline float atomicAdd(float* a, float v) {
    return ::cudacnn::emu::atomic_update(a, [v](float old) { return old + v; });
}
inline double atomicAdd(double* a, double v) {
    return ::cudacnn::emu::atomic_update(a, [v](double old) { return old + v; });
}
inline float atomicExch(float* a, float v) {
    return ::cudacnn::emu::from_bits<float>(
        __atomic_exchange_n(reinterpret_cast<uint32_t*>(a), ::cudacnn::emu::to_bits(v), __ATOMIC_SEQ_CST));
}
// Wrapping increment/decrement, exactly as CUDA defines them.
inline unsigned atomicInc(unsigned* a, unsigned limit) {
    return ::cudacnn::emu::atomic_update(a, [limit](unsigned old) { return old >= limit ? 0u : old + 1; });
}
inline unsigned atomicDec(unsigned* a, unsigned limit) {
    return ::cudacnn::emu::atomic_update(
        a, [limit](unsigned old) { return (old == 0 || old > limit) ? limit : old - 1; });
}

// ---- intrinsics ----------------------------------------------------------------------------------
// The fast-math intrinsics are computed exactly here; their GPU versions are less accurate, so tests
// that compare with them must use the GPU's documented error bounds, not exact equality.
inline float __expf(float x) { return std::exp(x); }
inline float __exp10f(float x) { return std::pow(10.0f, x); }
inline float __logf(float x) { return std::log(x); }
inline float __log2f(float x) { return std::log2(x); }
inline float __powf(float x, float y) { return std::pow(x, y); }
inline float __sinf(float x) { return std::sin(x); }
inline float __cosf(float x) { return std::cos(x); }
inline float __tanf(float x) { return std::tan(x); }
inline float __fdividef(float x, float y) { return x / y; }
inline float __frcp_rn(float x) { return 1.0f / x; }
inline float __fsqrt_rn(float x) { return std::sqrt(x); }
inline float __fadd_rn(float x, float y) { return x + y; }
inline float __fmul_rn(float x, float y) { return x * y; }
inline float __fmaf_rn(float x, float y, float z) { return std::fma(x, y, z); }
inline float __saturatef(float x) { return x < 0.0f ? 0.0f : (x > 1.0f ? 1.0f : x); }
inline float rsqrtf(float x) { return 1.0f / std::sqrt(x); }
inline double rsqrt(double x) { return 1.0 / std::sqrt(x); }
inline float normcdff(float x) { return 0.5f * std::erfc(-x / std::sqrt(2.0f)); }

inline int __float_as_int(float x) { return ::cudacnn::emu::from_bits<int>(::cudacnn::emu::to_bits(x)); }
inline float __int_as_float(int x) { return ::cudacnn::emu::from_bits<float>(::cudacnn::emu::to_bits(x)); }
inline unsigned __float_as_uint(float x) {
    return ::cudacnn::emu::from_bits<unsigned>(::cudacnn::emu::to_bits(x));
}
inline float __uint_as_float(unsigned x) { return ::cudacnn::emu::from_bits<float>(::cudacnn::emu::to_bits(x)); }
inline long long __double_as_longlong(double x) {
    return ::cudacnn::emu::from_bits<long long>(::cudacnn::emu::to_bits(x));
}
inline double __longlong_as_double(long long x) {
    return ::cudacnn::emu::from_bits<double>(::cudacnn::emu::to_bits(x));
}

inline int __popc(unsigned x) { return __builtin_popcount(x); }
inline int __popcll(unsigned long long x) { return __builtin_popcountll(x); }
inline int __clz(int x) { return x == 0 ? 32 : __builtin_clz(static_cast<unsigned>(x)); }
inline int __clzll(long long x) { return x == 0 ? 64 : __builtin_clzll(static_cast<unsigned long long>(x)); }
inline int __ffs(int x) { return __builtin_ffs(x); }
inline int __ffsll(long long x) { return __builtin_ffsll(x); }
inline unsigned __brev(unsigned x) {
    unsigned r = 0;
    for (int i = 0; i < 32; ++i) r |= ((x >> i) & 1u) << (31 - i);
    return r;
}
inline unsigned __umulhi(unsigned a, unsigned b) {
    return static_cast<unsigned>((static_cast<unsigned long long>(a) * b) >> 32);
}
inline unsigned long long __umul64hi(unsigned long long a, unsigned long long b) {
    return static_cast<unsigned long long>((static_cast<unsigned __int128>(a) * b) >> 64);
}
inline int __mul24(int a, int b) { return a * b; }
inline unsigned __umul24(unsigned a, unsigned b) { return a * b; }

template <typename T>
T __ldg(const T* p) { return *p; }

// CUDA's device code has global min/max overloads for arithmetic types.
using std::max;
using std::min;

// The template overload that cuda_runtime.h gives nvcc users.
template <typename T>
cudaError_t cudaFuncSetAttribute(T* entry, cudaFuncAttribute attr, int value) {
    return ::cudaFuncSetAttribute(reinterpret_cast<const void*>(entry), attr, value);
}

// Warp matrix functions (nvcuda::wmma, <mma.h> under nvcc): tensor-core code runs on the emulator too.
#include "cuda/emu/wmma.hpp"
