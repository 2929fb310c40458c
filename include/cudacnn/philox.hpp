// Philox4x32-10, a counter-based random generator giving the same bits on host and device.
// (Salmon et al., "Parallel random numbers: as easy as 1, 2, 3", Random123.) Counter-based means any thread
// can draw number i of stream s directly, without state to carry from draw to draw.
#pragma once

#include <cstdint>

// Host and device callable under nvcc; plain functions under g++ (host code, and kernels on the emulator).
#if defined(__CUDACC__)
#define CUDACNN_HOST_DEVICE __host__ __device__
#else
#define CUDACNN_HOST_DEVICE
#endif

namespace cudacnn {

// Plain structs rather than uint4 / uint2 so that this header needs no CUDA header.
struct PhiloxCounter {
    std::uint32_t v[4];
};
struct PhiloxKey {
    std::uint32_t v[2];
};
struct PhiloxBlock {
    std::uint32_t v[4];
};

namespace philox_detail {

// Multipliers and Weyl key increments from Random123's philox.h.
constexpr std::uint32_t kM0 = 0xD2511F53u;
constexpr std::uint32_t kM1 = 0xCD9E8D57u;
constexpr std::uint32_t kW0 = 0x9E3779B9u;  // golden ratio
constexpr std::uint32_t kW1 = 0xBB67AE85u;  // sqrt(3) - 1

CUDACNN_HOST_DEVICE inline void mulhilo(std::uint32_t a, std::uint32_t b, std::uint32_t& hi,
                                        std::uint32_t& lo) {
    // nvcc turns this into mul.lo / mul.hi; no intrinsic needed.
    const std::uint64_t product = static_cast<std::uint64_t>(a) * b;
    hi = static_cast<std::uint32_t>(product >> 32);
    lo = static_cast<std::uint32_t>(product);
}

CUDACNN_HOST_DEVICE inline PhiloxCounter philox_round(PhiloxCounter c, PhiloxKey k) {
    std::uint32_t hi0, lo0, hi1, lo1;
    mulhilo(kM0, c.v[0], hi0, lo0);
    mulhilo(kM1, c.v[2], hi1, lo1);
    return PhiloxCounter{{hi1 ^ c.v[1] ^ k.v[0], lo1, hi0 ^ c.v[3] ^ k.v[1], lo0}};
}

}  // namespace philox_detail

// The raw block function: 10 rounds, with the key bumped between rounds (9 bumps), as Random123 does.
CUDACNN_HOST_DEVICE inline PhiloxBlock philox4x32_10(PhiloxCounter counter, PhiloxKey key) {
    counter = philox_detail::philox_round(counter, key);
    for (int r = 1; r < 10; ++r) {
        key.v[0] += philox_detail::kW0;
        key.v[1] += philox_detail::kW1;
        counter = philox_detail::philox_round(counter, key);
    }
    return PhiloxBlock{{counter.v[0], counter.v[1], counter.v[2], counter.v[3]}};
}

// Four 32-bit draws number `index` of stream `stream` under `seed`. The mapping is fixed (results depend on
// it) and is curand's Philox layout, where key = seed and counter = (offset / 4, subsequence):
//   key     = (seed low 32 bits, seed high 32 bits)
//   counter = (index low, index high, stream low, stream high)
// so element i of a stream is philox_draw(seed, stream, i / 4).v[i % 4].
CUDACNN_HOST_DEVICE inline PhiloxBlock philox_draw(std::uint64_t seed, std::uint64_t stream,
                                                   std::uint64_t index) {
    const PhiloxCounter counter{{static_cast<std::uint32_t>(index), static_cast<std::uint32_t>(index >> 32),
                                 static_cast<std::uint32_t>(stream),
                                 static_cast<std::uint32_t>(stream >> 32)}};
    const PhiloxKey key{{static_cast<std::uint32_t>(seed), static_cast<std::uint32_t>(seed >> 32)}};
    return philox4x32_10(counter, key);
}

// A float in [0, 1) from the top 24 bits of u: k * 2^-24 for k < 2^24. 24 because a float has a 24-bit
// significand, so every such value is exact and evenly spaced; converting all 32 bits would round the
// largest values up to 1.0f and break the half-open range (and make the grid uneven).
CUDACNN_HOST_DEVICE inline float uint32_to_unit_float(std::uint32_t u) {
    return static_cast<float>(u >> 8) * (1.0f / 16777216.0f);
}

}  // namespace cudacnn
