// Kernels that exercise each CUDA feature the emulator implements; the same file runs on a real GPU.
#include "kernels/emulator_kernels.hpp"

#include "cuda/launch.cuh"
#include "cudacnn/error.hpp"

namespace cudacnn::test {

__global__ void write_thread_ids_kernel(int* out) {
    const unsigned block = blockIdx.x + gridDim.x * (blockIdx.y + gridDim.y * blockIdx.z);
    const unsigned threads = blockDim.x * blockDim.y * blockDim.z;
    const unsigned thread = threadIdx.x + blockDim.x * (threadIdx.y + blockDim.y * threadIdx.z);
    const unsigned id = block * threads + thread;
    out[id] = static_cast<int>(id);
}

void write_thread_ids(int* out, unsigned gx, unsigned gy, unsigned gz, unsigned bx, unsigned by, unsigned bz) {
    launch(write_thread_ids_kernel, dim3(gx, gy, gz), dim3(bx, by, bz), 0, nullptr, out);
}

// Float max through a CAS loop on the bit pattern: CUDA has no float atomicMax.
__device__ float atomic_max_float(float* address, float value) {
    int* bits = reinterpret_cast<int*>(address);
    int old = *bits;
    while (__int_as_float(old) < value) {
        const int seen = atomicCAS(bits, old, __float_as_int(value));
        if (seen == old) break;
        old = seen;
    }
    return __int_as_float(old);
}

__global__ void reduce_sum_and_max_kernel(const float* in, int n, float* sum, float* max) {
    __shared__ float warp_sums[32];
    __shared__ float warp_maxes[32];
    const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
    const int warps = (blockDim.x + 31) / 32;
    float s = 0.0f, m = -INFINITY;
    for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < n; i += gridDim.x * blockDim.x) {
        s += in[i];
        m = fmaxf(m, in[i]);
    }
    for (int offset = 16; offset > 0; offset /= 2) {
        s += __shfl_down_sync(0xffffffffu, s, offset);
        m = fmaxf(m, __shfl_down_sync(0xffffffffu, m, offset));
    }
    if (lane == 0) {
        warp_sums[warp] = s;
        warp_maxes[warp] = m;
    }
    __syncthreads();
    if (warp == 0) {
        s = lane < warps ? warp_sums[lane] : 0.0f;
        m = lane < warps ? warp_maxes[lane] : -INFINITY;
        for (int offset = 16; offset > 0; offset /= 2) {
            s += __shfl_xor_sync(0xffffffffu, s, offset);
            m = fmaxf(m, __shfl_xor_sync(0xffffffffu, m, offset));
        }
        if (lane == 0) {
            atomicAdd(sum, s);
            atomic_max_float(max, m);
        }
    }
}

void reduce_sum_and_max(const float* in, int n, float* sum, float* max, int blocks, int threads_per_block) {
    launch(reduce_sum_and_max_kernel, dim3(blocks), dim3(threads_per_block), 0, nullptr, in, n, sum, max);
}

__global__ void integer_atomics_kernel(const float* in, int n, float threshold, int* counts, int* slots) {
    const int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= n) return;
    if (in[i] > threshold) {
        atomicAdd(&counts[0], 1);
        atomicMin(&counts[1], i);
        atomicMax(&counts[2], i);
    }
    if (atomicCAS(&slots[i % 8], -1, i) == -1) atomicAdd(&counts[3], 1);
}

void integer_atomics(const float* in, int n, float threshold, int* counts, int* slots) {
    launch(integer_atomics_kernel, dim3((n + 127) / 128), dim3(128), 0, nullptr, in, n, threshold, counts, slots);
}

__global__ void warp_votes_kernel(const float* values, const int* predicates, WarpVoteResult* out) {
    const int t = threadIdx.x, lane = t % 32;
    const int predicate = predicates[t];
    const float v = values[t];
    WarpVoteResult r;
    // Two divergent halves, each with its own mask: collectives must complete per half.
    if (lane < 16) {
        r.ballot = __ballot_sync(0x0000ffffu, predicate);
        r.any = __any_sync(0x0000ffffu, predicate);
        r.all = __all_sync(0x0000ffffu, predicate);
    } else {
        r.ballot = __ballot_sync(0xffff0000u, predicate);
        r.any = __any_sync(0xffff0000u, predicate);
        r.all = __all_sync(0xffff0000u, predicate);
    }
    r.shfl_idx = __shfl_sync(0xffffffffu, v, lane + 3, 16);
    r.shfl_up = __shfl_up_sync(0xffffffffu, v, 1, 16);
    r.shfl_down = __shfl_down_sync(0xffffffffu, v, 2, 16);
    r.shfl_xor = __shfl_xor_sync(0xffffffffu, v, 1);
    out[t] = r;
}

void warp_votes(const float* values, const int* predicates, WarpVoteResult* out, int threads) {
    launch(warp_votes_kernel, dim3(1), dim3(threads), 0, nullptr, values, predicates, out);
}

__global__ void reverse_in_blocks_kernel(const float* in, float* out, int n) {
    float* staged = dynamic_smem<float>();
    const int base = blockIdx.x * blockDim.x;
    const int i = base + threadIdx.x;
    if (i < n) staged[threadIdx.x] = in[i];
    __syncthreads();
    const int mirrored = blockDim.x - 1 - threadIdx.x;  // read what another thread wrote
    if (i < n && base + mirrored < n) out[i] = staged[mirrored];
}

void reverse_in_blocks(const float* in, float* out, int n, int block_size) {
    const int blocks = (n + block_size - 1) / block_size;
    launch(reverse_in_blocks_kernel, dim3(blocks), dim3(block_size), block_size * sizeof(float), nullptr, in, out, n);
}

void reverse_with_large_shared(const float* in, float* out, int n, int block_size, int shared_bytes) {
    CUDACNN_CUDA_CHECK(
        cudaFuncSetAttribute(reverse_in_blocks_kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, shared_bytes));
    const int blocks = (n + block_size - 1) / block_size;
    launch(reverse_in_blocks_kernel, dim3(blocks), dim3(block_size), shared_bytes, nullptr, in, out, n);
}

__global__ void barrier_votes_kernel(int modulus, int* count, int* all, int* any) {
    const int predicate = threadIdx.x % modulus == 0;
    const int c = __syncthreads_count(predicate);
    const int a = __syncthreads_and(predicate);
    const int o = __syncthreads_or(predicate);
    if (threadIdx.x == 0) {
        *count = c;
        *all = a;
        *any = o;
    }
}

void barrier_votes(int threads, int modulus, int* count, int* all, int* any) {
    launch(barrier_votes_kernel, dim3(1), dim3(threads), 0, nullptr, modulus, count, all, any);
}

__global__ void empty_kernel() {}

void launch_with_block(unsigned x, unsigned y, unsigned z) { launch(empty_kernel, dim3(1), dim3(x, y, z), 0, nullptr); }
void launch_with_grid(unsigned x, unsigned y, unsigned z) { launch(empty_kernel, dim3(x, y, z), dim3(1), 0, nullptr); }
void launch_with_dynamic_shared(int bytes) { launch(empty_kernel, dim3(1), dim3(32), bytes, nullptr); }

}  // namespace cudacnn::test
