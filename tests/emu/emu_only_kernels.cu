// Kernels that are wrong on purpose, for the emulator's own tests (see emu_only_kernels.hpp).
#include "emu/emu_only_kernels.hpp"

#include "cuda/launch.cuh"

namespace cudacnn::test {

__global__ void neighbour_exchange_kernel(const float* in, float* out, bool with_barrier) {
    __shared__ float staged[1024];
    const int t = threadIdx.x;
    staged[t] = in[t];
    if (with_barrier) __syncthreads();
    out[t] = staged[(t + 1) % blockDim.x];
}

void neighbour_exchange(const float* in, float* out, int threads, bool with_barrier) {
    launch(neighbour_exchange_kernel, dim3(1), dim3(threads), 0, nullptr, in, out, with_barrier);
}

__global__ void shuffle_against_barrier_kernel() {
    float v = threadIdx.x;
    if (threadIdx.x == 0) {
        v = __shfl_sync(0x3u, v, 1);
    } else {
        __syncthreads();
    }
    (void)v;
}

void shuffle_against_barrier() { launch(shuffle_against_barrier_kernel, dim3(1), dim3(32), 0, nullptr); }

__global__ void mismatched_collectives_kernel() {
    if (threadIdx.x % 2 == 0) {
        (void)__ballot_sync(0xffffffffu, 1);
    } else {
        (void)__shfl_sync(0xffffffffu, 1.0f, 0);
    }
}

void mismatched_collectives() { launch(mismatched_collectives_kernel, dim3(1), dim3(32), 0, nullptr); }

__global__ void mask_without_own_lane_kernel() {
    if (threadIdx.x == 5) (void)__shfl_sync(0x1u, 1.0f, 0);
}

void mask_without_own_lane() { launch(mask_without_own_lane_kernel, dim3(1), dim3(32), 0, nullptr); }

__global__ void shuffle_from_finished_lane_kernel(float* out) {
    if (threadIdx.x != 0) return;
    out[0] = __shfl_sync(0xffffffffu, 1.0f, 7);
}

void shuffle_from_finished_lane(float* out) {
    launch(shuffle_from_finished_lane_kernel, dim3(1), dim3(32), 0, nullptr, out);
}

}  // namespace cudacnn::test
