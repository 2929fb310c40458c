// Non-finite detection: records the first step at which a block of floats held a NaN or an infinity, in
// device memory, so that a training step (a replayed CUDA graph included) checks itself without a read-back.
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>

namespace cudacnn::gpu {

// What record_nonfinite found, in backend memory; all zero (its initial state) means nothing yet. Unsigned
// 64-bit fields, so that the device updates them with atomics.
struct NonfiniteRecord {
    unsigned long long step_plus_one = 0;    // the step (+ 1) at which non-finite values were first seen
    unsigned long long not_first_index = 0;  // ~(the smallest index holding one) at that step
    unsigned long long kinds = 0;            // kNonfiniteNaN | kNonfinitePosInf | kNonfiniteNegInf seen then
};
constexpr unsigned long long kNonfiniteNaN = 1, kNonfinitePosInf = 2, kNonfiniteNegInf = 4;

// If `values` (n floats) holds a NaN or an infinity and `record` is empty or already marks this step
// (*step, read on the device, so that a captured launch sees each step's): marks *step in `record`, with the
// smallest such index and which kinds there were. A record of an earlier step is kept (and the kernel then
// returns at once). Deterministic: the same record whatever the launch order. Grid-stride over float4s.
void record_nonfinite(const float* values, int64_t n, const int64_t* step, NonfiniteRecord* record,
                      cudaStream_t stream);

// The same on host memory (the CPU backends and the tests' reference).
void record_nonfinite_host(const float* values, int64_t n, const int64_t* step, NonfiniteRecord* record);

}  // namespace cudacnn::gpu
