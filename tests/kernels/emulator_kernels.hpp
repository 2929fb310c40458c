// Launchers for the kernels that prove the device path (emulated or real) implements CUDA's semantics.
// All pointers are device pointers; each function launches once on the default stream.
#pragma once

#include <cstdint>

namespace cudacnn::test {

// out[linear global thread id] = id, for a 3-D grid of 3-D blocks: checks the built-in index variables.
void write_thread_ids(int* out, unsigned grid_x, unsigned grid_y, unsigned grid_z, unsigned block_x,
                      unsigned block_y, unsigned block_z);

// *sum += Σ in[i] and *max_bits = max over in[i] (as a float, via atomicCAS): a grid-stride loop, a warp
// shuffle reduction, a shared-memory hand-off between warps and one atomic per block.
void reduce_sum_and_max(const float* in, int n, float* sum, float* max, int blocks, int threads_per_block);

// Integer atomics over in[0, n): counts[0] = number of i with in[i] > threshold (atomicAdd), counts[1] =
// smallest such i (atomicMin), counts[2] = largest (atomicMax), counts[3] = number of CAS wins when every
// thread tries to claim one of 8 slots (slots must start at -1).
void integer_atomics(const float* in, int n, float threshold, int* counts, int* slots);

// For every thread t of one block: the results of ballot/any/all in divergent halves of each warp
// (lanes < 16 and lanes ≥ 16 use disjoint masks) and the shuffles of width 16.
struct WarpVoteResult {
    unsigned ballot;
    int any;
    int all;
    float shfl_idx;   // value of lane (lane + 3) % 16 of its half-warp
    float shfl_up;    // value of lane - 1 in its half-warp, own value at the half's first lane
    float shfl_down;  // value of lane + 2 in its half-warp, own value past the half's end
    float shfl_xor;   // value of lane ^ 1
};
void warp_votes(const float* values, const int* predicates, WarpVoteResult* out, int threads);

// out[i] = in[block_base + (block_size - 1 - i)] within each block, through dynamic shared memory.
void reverse_in_blocks(const float* in, float* out, int n, int block_size);

// Like reverse_in_blocks but with `shared_bytes` of dynamic shared memory, opting in above 48 KiB.
void reverse_with_large_shared(const float* in, float* out, int n, int block_size, int shared_bytes);

// __syncthreads_count / _and / _or over predicate[t] = (t % modulus == 0), one block of `threads`.
void barrier_votes(int threads, int modulus, int* count, int* all, int* any);

// Launches with an invalid configuration (for the limit tests): these must throw cudacnn::Error.
void launch_with_block(unsigned block_x, unsigned block_y, unsigned block_z);
void launch_with_grid(unsigned grid_x, unsigned grid_y, unsigned grid_z);
void launch_with_dynamic_shared(int shared_bytes);

}  // namespace cudacnn::test
