// Philox4x32-10 against Random123's known answers, philox_draw's counter/key layout, and unit floats.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>

#include "cudacnn/philox.hpp"

using cudacnn::PhiloxBlock;
using cudacnn::PhiloxCounter;
using cudacnn::PhiloxKey;

namespace {

void check_block(const PhiloxBlock& got, std::uint32_t e0, std::uint32_t e1, std::uint32_t e2,
                 std::uint32_t e3) {
    CHECK(got.v[0] == e0);
    CHECK(got.v[1] == e1);
    CHECK(got.v[2] == e2);
    CHECK(got.v[3] == e3);
}

}  // namespace

TEST_CASE("philox4x32_10 matches the Random123 known-answer vectors", "[philox]") {
    // From Random123's kat_vectors: philox4x32 10 rounds, counter c0..c3, key k0 k1.
    check_block(cudacnn::philox4x32_10(PhiloxCounter{{0, 0, 0, 0}}, PhiloxKey{{0, 0}}),  //
                0x6627e8d5, 0xe169c58d, 0xbc57ac4c, 0x9b00dbd8);
    check_block(cudacnn::philox4x32_10(PhiloxCounter{{0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff}},
                                       PhiloxKey{{0xffffffff, 0xffffffff}}),
                0x408f276d, 0x41c83b0e, 0xa20bc7c6, 0x6d5451fd);
    check_block(cudacnn::philox4x32_10(PhiloxCounter{{0x243f6a88, 0x85a308d3, 0x13198a2e, 0x03707344}},
                                       PhiloxKey{{0xa4093822, 0x299f31d0}}),
                0xd16cfe09, 0x94fdcceb, 0x5001e420, 0x24126ea1);
}

TEST_CASE("philox_draw puts the seed in the key and (index, stream) in the counter, low words first",
          "[philox]") {
    // The third vector again, reached through the documented mapping: key = (seed lo, seed hi),
    // counter = (index lo, index hi, stream lo, stream hi).
    const std::uint64_t seed = 0x299f31d0a4093822ull;
    const std::uint64_t index = 0x85a308d3243f6a88ull;
    const std::uint64_t stream = 0x0370734413198a2eull;
    check_block(cudacnn::philox_draw(seed, stream, index), 0xd16cfe09, 0x94fdcceb, 0x5001e420, 0x24126ea1);
    check_block(cudacnn::philox_draw(0, 0, 0), 0x6627e8d5, 0xe169c58d, 0xbc57ac4c, 0x9b00dbd8);
    check_block(cudacnn::philox_draw(~0ull, ~0ull, ~0ull), 0x408f276d, 0x41c83b0e, 0xa20bc7c6, 0x6d5451fd);

    // Neighbouring streams and indices are unrelated.
    CHECK(cudacnn::philox_draw(7, 0, 0).v[0] != cudacnn::philox_draw(7, 1, 0).v[0]);
    CHECK(cudacnn::philox_draw(7, 0, 0).v[0] != cudacnn::philox_draw(7, 0, 1).v[0]);
}

TEST_CASE("uint32_to_unit_float covers [0, 1) and never reaches 1", "[philox]") {
    CHECK(cudacnn::uint32_to_unit_float(0) == 0.0f);
    CHECK(cudacnn::uint32_to_unit_float(0xffffffffu) == std::nextafter(1.0f, 0.0f));
    CHECK(cudacnn::uint32_to_unit_float(0x80000000u) == 0.5f);
    // The low 8 bits are dropped: every value is an exact multiple of 2^-24.
    CHECK(cudacnn::uint32_to_unit_float(0x000000ffu) == 0.0f);
    CHECK(cudacnn::uint32_to_unit_float(0x00000100u) == std::ldexp(1.0f, -24));
}

TEST_CASE("Unit floats from philox_draw are coarsely uniform", "[philox]") {
    constexpr int kDraws = 100000;
    constexpr int kBuckets = 16;
    double sum = 0.0;
    float low = 1.0f;
    float high = 0.0f;
    int buckets[kBuckets] = {};
    for (int i = 0; i < kDraws; ++i) {
        const float u = cudacnn::uint32_to_unit_float(cudacnn::philox_draw(1234, 5, i / 4).v[i % 4]);
        low = std::min(low, u);
        high = std::max(high, u);
        sum += u;
        if (u >= 0.0f && u < 1.0f) ++buckets[static_cast<int>(u * kBuckets)];
    }
    REQUIRE(low >= 0.0f);
    REQUIRE(high < 1.0f);
    // The mean of N uniform draws has standard deviation sqrt(1/12 / N) ≈ 0.00091 for N = 100000; 0.005 is
    // more than 5 of them, so a correct generator fails with probability below 1e-6 for any seed.
    CHECK(std::abs(sum / kDraws - 0.5) < 0.005);

    // Pearson's chi-square over 16 equal buckets has 15 degrees of freedom (mean 15, sd 5.5); it exceeds
    // 50 with probability about 1e-5, while a broken bit or a stuck counter gives values in the thousands.
    double chi_square = 0.0;
    const double expected = static_cast<double>(kDraws) / kBuckets;
    for (int count : buckets) chi_square += (count - expected) * (count - expected) / expected;
    CHECK(chi_square < 50.0);
}
