// The premise of every bf16 parity test: the kernels' rounding (from_float<bf16>, __float2bfloat16_rn) and
// the references' (io::float_to_bf16_bits, as PyTorch's .bfloat16()) give the same bf16 for every float but
// NaN, where CUDA returns its canonical NaN and the reference keeps the payload: both are NaN.
#include <catch2/catch.hpp>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <random>
#include <vector>

#include "cuda/bf16.cuh"
#include "support/bf16.hpp"

using namespace cudacnn;

namespace {

std::uint16_t kernel_bits(float value) {
    const gpu::bf16 rounded = gpu::from_float<gpu::bf16>(value);
    std::uint16_t bits = 0;
    std::memcpy(&bits, &rounded, sizeof bits);
    return bits;
}

float float_of(std::uint32_t bits) {
    float value = 0.0f;
    std::memcpy(&value, &bits, sizeof value);
    return value;
}

}  // namespace

TEST_CASE("bf16 rounding of the kernels matches the reference's", "[bf16]") {
    std::vector<float> values = {0.0f, -0.0f, 1.0f, -1.0f, std::numeric_limits<float>::infinity(),
                                 -std::numeric_limits<float>::infinity(), std::numeric_limits<float>::max(),
                                 std::numeric_limits<float>::denorm_min(), std::numeric_limits<float>::min(),
                                 // ties: the low 16 bits are exactly half; even and odd kept bits
                                 float_of(0x3f808000u), float_of(0x3f818000u), float_of(0x7f7f8000u)};
    std::mt19937 random(20261128);
    for (int i = 0; i < 1 << 20; ++i) values.push_back(float_of(random()));
    for (float value : values) {
        const std::uint16_t expected = io::float_to_bf16_bits(value);
        const std::uint16_t actual = kernel_bits(value);
        if (std::isnan(value)) {
            REQUIRE(std::isnan(io::bf16_bits_to_float(actual)));
            REQUIRE(std::isnan(io::bf16_bits_to_float(expected)));
        } else if (actual != expected) {
            FAIL_CHECK("bf16 of " << value << ": kernel " << actual << ", reference " << expected);
        }
        if (!std::isnan(value))
            REQUIRE(gpu::to_float(gpu::from_float<gpu::bf16>(value)) == test::round_to_bf16(value));
    }
    CHECK(test::round_to_bf16(1.0f + 0x1p-8f) == 1.0f);                // a tie rounds to the even 1.0
    CHECK(test::round_to_bf16(1.0f + 3 * 0x1p-8f) == 1.0f + 0x1p-6f);  // a tie rounds up to even
    CHECK(std::isinf(test::round_to_bf16(std::numeric_limits<float>::max())));
}
