// Philox on the device (real or emulated) produces exactly the host's bits.
#include <catch2/catch.hpp>

#include <cstdint>
#include <vector>

#include "cudacnn/device.hpp"
#include "cudacnn/philox.hpp"
#include "kernels/philox_kernels.hpp"

TEST_CASE("philox_draw gives the same bits on the device as on the host", "[philox][device]") {
    // Odd and not a multiple of 4 or of the block size, so the last block and the last draw are partial.
    // Small enough for the emulator (one fiber per thread).
    constexpr std::int64_t n = 4099;
    const auto [seed, philox_stream] = GENERATE(table<std::uint64_t, std::uint64_t>({
        {0, 0}, {42, 7}, {0x0123456789abcdefull, 0xfedcba9876543210ull},  // high words matter too
    }));
    CAPTURE(seed, philox_stream);

    cudacnn::Stream stream;
    cudacnn::DeviceBuffer out(n * sizeof(std::uint32_t));
    cudacnn::fill_bytes(out.data(), 0xab, out.bytes(), stream.handle());  // no stale zeros can pass
    cudacnn::test::fill_philox(out.data_as<std::uint32_t>(), n, seed, philox_stream, stream.handle());
    const std::vector<std::uint32_t> device = cudacnn::download<std::uint32_t>(out, stream.handle());

    REQUIRE(device.size() == static_cast<std::size_t>(n));
    std::int64_t mismatches = 0;
    std::int64_t first_mismatch = -1;
    for (std::int64_t i = 0; i < n; ++i) {
        const std::uint32_t host = cudacnn::philox_draw(seed, philox_stream, i / 4).v[i % 4];
        if (device[i] != host) {
            if (first_mismatch < 0) first_mismatch = i;
            ++mismatches;
        }
    }
    CAPTURE(first_mismatch);
    CHECK(mismatches == 0);

    if (seed == 0 && philox_stream == 0) {
        // Random123's first known-answer vector, so that host and device cannot agree on a wrong function.
        CHECK(device[0] == 0x6627e8d5u);
        CHECK(device[1] == 0xe169c58du);
        CHECK(device[2] == 0xbc57ac4cu);
        CHECK(device[3] == 0x9b00dbd8u);
    }
}
