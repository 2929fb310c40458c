// Non-finite detection: a grid-stride scan that leaves one record per check, updated with atomics (max of
// the complemented index is the smallest index; OR of kinds), so the result does not depend on thread order.
#include "cuda/nonfinite.hpp"

#include <cstring>

#include "cuda/elementwise.cuh"
#include "cuda/launch.cuh"
#include "cudacnn/error.hpp"

namespace cudacnn::gpu {
namespace {

constexpr uint32_t kExponentBits = 0x7f800000u, kMantissaBits = 0x007fffffu;

// 0 for a finite value, else which kind it is. Bit tests, so that no compiler flag can fold them away.
__host__ __device__ inline unsigned long long nonfinite_kind(uint32_t bits) {
    if ((bits & kExponentBits) != kExponentBits) return 0;
    if ((bits & kMantissaBits) != 0) return kNonfiniteNaN;
    return (bits >> 31) != 0 ? kNonfiniteNegInf : kNonfinitePosInf;
}

}  // namespace

namespace kernels {

__global__ void record_nonfinite_kernel(const float* values, int64_t n, const int64_t* step,
                                        NonfiniteRecord* record) {
    const unsigned long long mark = static_cast<unsigned long long>(*step) + 1;
    const unsigned long long seen = record->step_plus_one;
    if (seen != 0 && seen != mark) return;  // an earlier step's record stays
    const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
    const int64_t thread = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
    int64_t first = -1;
    unsigned long long kinds = 0;
    auto check = [&](float value, int64_t index) {
        const unsigned long long kind = nonfinite_kind(__float_as_uint(value));
        if (kind == 0) return;
        if (first < 0 || index < first) first = index;
        kinds |= kind;
    };
    // `values` is 16-byte aligned when the host chose this path (vectors > 0).
    const int64_t vectors = reinterpret_cast<uintptr_t>(values) % 16 == 0 ? n / 4 : 0;
    const float4* values4 = reinterpret_cast<const float4*>(values);
    for (int64_t v = thread; v < vectors; v += stride) {
        const float4 q = values4[v];
        check(q.x, 4 * v), check(q.y, 4 * v + 1), check(q.z, 4 * v + 2), check(q.w, 4 * v + 3);
    }
    for (int64_t i = 4 * vectors + thread; i < n; i += stride) check(values[i], i);
    if (first < 0) return;
    atomicMax(&record->not_first_index, ~static_cast<unsigned long long>(first));
    atomicOr(&record->kinds, kinds);
    atomicExch(&record->step_plus_one, mark);
}

}  // namespace kernels

void record_nonfinite(const float* values, int64_t n, const int64_t* step, NonfiniteRecord* record,
                      cudaStream_t stream) {
    CUDACNN_CHECK(n >= 1, "record_nonfinite: {} values; there must be at least one", n);
    launch(kernels::record_nonfinite_kernel, elementwise_grid((n + 3) / 4), dim3(kElementwiseBlock), 0, stream,
           values, n, step, record);
}

void record_nonfinite_host(const float* values, int64_t n, const int64_t* step, NonfiniteRecord* record) {
    const unsigned long long mark = static_cast<unsigned long long>(*step) + 1;
    if (record->step_plus_one != 0 && record->step_plus_one != mark) return;
    // A branch-free pass that vectorizes (finite values are the rule), then the details only when needed.
    uint32_t any = 0;
    for (int64_t i = 0; i < n; ++i) {
        uint32_t bits;
        std::memcpy(&bits, values + i, sizeof bits);
        any |= static_cast<uint32_t>((bits & kExponentBits) == kExponentBits);
    }
    if (any == 0) return;
    for (int64_t i = 0; i < n; ++i) {
        uint32_t bits;
        std::memcpy(&bits, values + i, sizeof bits);
        const unsigned long long kind = nonfinite_kind(bits);
        if (kind == 0) continue;
        if (record->step_plus_one != mark || ~record->not_first_index > static_cast<unsigned long long>(i)) {
            record->not_first_index = ~static_cast<unsigned long long>(i);
        }
        record->step_plus_one = mark;
        record->kinds |= kind;
    }
}

}  // namespace cudacnn::gpu
