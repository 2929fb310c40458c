// The Philox draws of the data pipeline (private to src/data): a stream from a base and an offset, the k-th
// 32-bit draw of a stream, and an integer below n from one draw.
#pragma once

#include <cstdint>

#include "cudacnn/error.hpp"
#include "cudacnn/philox.hpp"

namespace cudacnn::data::detail {

// base + offset, where offset (an epoch or a record index) must stay below 2^32 so that the streams of
// dataset.hpp's bases never overlap one another.
inline uint64_t stream_at(uint64_t base, int64_t offset, const char* what) {
    CUDACNN_CHECK(offset >= 0 && offset < (int64_t{1} << 32), "data: {} {} is outside [0, 2^32)", what,
                  offset);
    return base + static_cast<uint64_t>(offset);
}

// Element k of a stream, in curand's layout (philox.hpp).
inline uint32_t draw_u32(uint64_t seed, uint64_t stream, uint64_t k) {
    return philox_draw(seed, stream, k / 4).v[k % 4];
}

// An integer in [0, n) from a 32-bit draw by multiply-shift (Lemire, without the rejection step): the bias is
// below n / 2^32, far under anything a dataset of millions can show, and it needs exactly one draw.
inline uint32_t below(uint32_t u, uint64_t n) {
    return static_cast<uint32_t>((static_cast<uint64_t>(u) * n) >> 32);
}

}  // namespace cudacnn::data::detail
