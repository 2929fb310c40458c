// Warp- and block-level reductions in fixed tree orders (bit-reproducible); included by .cu files only.
#pragma once

#include <type_traits>

#include "cuda/launch.cuh"

namespace cudacnn::gpu::kernels::reduce {

constexpr int kWarp = 32;
constexpr unsigned kFullMask = 0xffffffffu;

// An accumulator is an arithmetic value (merged with +, identity 0) or a struct with `static T empty()`,
// `void merge(const T&)` and `T shfl_down(int offset) const` (e.g. a Welford triple, a pair of sums).
template <class T>
__device__ T identity() {
    if constexpr (std::is_arithmetic_v<T>) {
        return T{0};
    } else {
        return T::empty();
    }
}

template <class T>
__device__ void merge_into(T& acc, const T& other) {
    if constexpr (std::is_arithmetic_v<T>) {
        acc += other;
    } else {
        acc.merge(other);
    }
}

template <class T>
__device__ T shfl_down(const T& acc, int offset) {
    if constexpr (std::is_arithmetic_v<T>) {
        return __shfl_down_sync(kFullMask, acc, offset);
    } else {
        return acc.shfl_down(offset);
    }
}

// Shift-down tree (offsets 16, 8, …, 1): lane 0 ends with the whole warp's accumulator.
template <class T>
__device__ T warp_reduce(T acc) {
    for (int offset = kWarp / 2; offset > 0; offset /= 2) merge_into(acc, shfl_down(acc, offset));
    return acc;
}

// Every warp reduces, then warp 0 reduces the warp results; thread 0 ends with the block's accumulator.
// Once per kernel (the shared array is not guarded for reuse). blockDim.x must be a multiple of 32, ≤ 1024.
template <class T>
__device__ T block_reduce(T acc) {
    __shared__ T warp_results[kWarp];
    const int warp = threadIdx.x / kWarp, lane = threadIdx.x % kWarp;
    acc = warp_reduce(acc);
    if (lane == 0) warp_results[warp] = acc;
    __syncthreads();  // all warp results are written
    if (warp == 0) {
        acc = lane < static_cast<int>(blockDim.x / kWarp) ? warp_results[lane] : identity<T>();
        acc = warp_reduce(acc);
    }
    return acc;
}

// Butterfly (xor) tree: every lane ends with the same bits (each step combines the same two values), so
// every lane can use the result.
template <class T, class Combine>
__device__ T warp_all_reduce(T v, Combine combine) {
    for (int offset = kWarp / 2; offset > 0; offset /= 2)
        v = combine(v, __shfl_xor_sync(kFullMask, v, offset));
    return v;
}

template <class T>
__device__ T warp_all_sum(T v) {
    return warp_all_reduce(v, [](T a, T b) { return a + b; });
}

// Σ of v over the block's kThreads threads (a power of two, = blockDim.x) by a shared-memory halving tree:
// thread t adds t + half for half = kThreads / 2, …, 1. `shared` holds kThreads values; every thread
// returns shared[0]. Callers reusing `shared` must __syncthreads() first.
template <int kThreads, class T>
__device__ T block_tree_sum(T v, T* shared) {
    shared[threadIdx.x] = v;
    __syncthreads();
    for (int half = kThreads / 2; half > 0; half /= 2) {
        if (static_cast<int>(threadIdx.x) < half) shared[threadIdx.x] += shared[threadIdx.x + half];
        __syncthreads();
    }
    return shared[0];
}

}  // namespace cudacnn::gpu::kernels::reduce
