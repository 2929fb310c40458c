// The float <-> bf16 cast kernels (cuda/cast.hpp) against the reference's rounding (io::float_to_bf16_bits,
// as PyTorch's .to(torch.bfloat16)): bit for bit on the edge cases (±0, subnormals, ±Inf, NaN, values that
// round to Inf, ties) and on random bit patterns, on the vector path (with a scalar head and tail) and the
// scalar one; the widening of every one of the 65536 bf16 values; bad arguments.
#include <catch2/catch.hpp>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <random>
#include <vector>

#include "cuda/cast.hpp"
#include "support/bf16.hpp"
#include "support/errors.hpp"
#include "support/parity.hpp"

using namespace cudacnn;
using Catch::Matchers::Contains;

namespace {

float float_of(std::uint32_t bits) {
    float value = 0.0f;
    std::memcpy(&value, &bits, sizeof value);
    return value;
}

// The edge cases, then random bit patterns (every exponent, NaNs and subnormals included): an odd count.
HostTensor<float> cast_inputs() {
    constexpr float kInf = std::numeric_limits<float>::infinity();
    std::vector<float> values = {
        0.0f,
        -0.0f,
        kInf,
        -kInf,
        std::numeric_limits<float>::quiet_NaN(),
        -std::numeric_limits<float>::quiet_NaN(),
        float_of(0x7f800001u),  // a signalling NaN whose payload lies in the bits rounding drops
        float_of(0xffc00001u),
        std::numeric_limits<float>::denorm_min(),
        -std::numeric_limits<float>::denorm_min(),
        float_of(0x00008000u),  // half the smallest bf16 subnormal, a tie: rounds to even, +0
        float_of(0x00018000u),  // 1.5 of it, a tie: rounds to even, 2 of it
        float_of(0x00010000u),  // the smallest bf16 subnormal, exact
        float_of(0x007fffffu),  // the largest float subnormal: rounds up to the smallest normal
        std::numeric_limits<float>::min(),
        -std::numeric_limits<float>::min(),
        std::numeric_limits<float>::max(),
        -std::numeric_limits<float>::max(),  // round to ±Inf
        float_of(0x7f7f8000u),  // half way between the largest bf16 and 2^128, odd below: rounds to Inf
        float_of(0x7f7f7fffu),  // just below that: the largest bf16
        float_of(0x3f808000u),
        float_of(0x3f818000u),  // ties to the even 1.0 and up to the even 1 + 2^-6
        1.0f,
        -1.0f,
        0.1f,
        -3.3333333f};
    std::mt19937 random(20261128);
    while (values.size() < 4099) values.push_back(float_of(random()));
    const Shape shape{static_cast<int64_t>(values.size())};
    return HostTensor<float>(shape, std::move(values));
}

// The reference: each value rounded to the nearest bf16, ties to even.
HostTensor<float> rounded(const HostTensor<float>& x) {
    return test::round_to_bf16(x);
}

}  // namespace

TEST_CASE("cast float to bf16 rounds as the reference, bit for bit, edge cases included",
          "[parity][bf16][cast]") {
    const HostTensor<float> x = cast_inputs();
    const HostTensor<float> expected = rounded(x);
    const int64_t n = x.numel();
    // (x offset, y offset) in elements: 0, 0 the vector path (16-byte float loads, 8-byte bf16 stores) with a
    // scalar tail; 1, 1 a head of 3 (x 4 bytes, y 2 bytes past their vectors' boundaries) first; 0, 1 the
    // scalar path (no common head); 2, 2 a head of 2.
    for (auto [x_offset, y_offset] : {std::pair<int64_t, int64_t>{0, 0}, {1, 1}, {0, 1}, {2, 2}}) {
        CAPTURE(x_offset, y_offset);
        const test::OffsetBuffer<float> x_d = test::to_device_at(x, x_offset);
        const test::OffsetBuffer<gpu::bf16> y_d = test::poisoned_at<gpu::bf16>(n, y_offset);
        gpu::cast(x_d.data(), y_d.data(), n, nullptr);
        const HostTensor<float> y = test::to_host_bf16(y_d.data(), x.shape());
        CHECK(test::bf16_mismatches(y, expected) == 0);
        // The named edge cases one by one, so a failure says which.
        for (int64_t i = 0; i < 26; ++i) {
            INFO("input " << i << " = " << x[i] << ", bf16 " << y[i] << ", reference " << expected[i]);
            CHECK(std::isnan(y[i]) == std::isnan(x[i]));
            if (!std::isnan(x[i])) CHECK(std::memcmp(&y[i], &expected[i], sizeof(float)) == 0);
        }
    }
}

TEST_CASE("cast bf16 to float widens every bf16 value exactly", "[parity][bf16][cast]") {
    // All 65536 bit patterns: the float is the bf16's bits shifted up (NaNs stay NaN), plus 3 to make the
    // count odd.
    const int64_t n = 65536 + 3;
    std::vector<float> values(static_cast<std::size_t>(n));
    for (int64_t i = 0; i < n; ++i)
        values[static_cast<std::size_t>(i)] = float_of(static_cast<std::uint32_t>(i % 65536) << 16);
    const HostTensor<float> x(Shape{n}, std::move(values));
    for (auto [x_offset, y_offset] : {std::pair<int64_t, int64_t>{0, 0}, {3, 3}, {1, 0}}) {
        CAPTURE(x_offset, y_offset);
        const test::OffsetBuffer<gpu::bf16> x_d = test::to_device_bf16_at(x, x_offset);
        const test::OffsetBuffer<float> y_d = test::poisoned_at<float>(n, y_offset);
        gpu::cast(x_d.data(), y_d.data(), n, nullptr);
        const HostTensor<float> y = test::to_host(y_d, x.shape());
        int64_t mismatches = 0;
        for (int64_t i = 0; i < n; ++i) {
            const bool same =
                std::isnan(x[i]) ? std::isnan(y[i]) : std::memcmp(&x[i], &y[i], sizeof(float)) == 0;
            mismatches += same ? 0 : 1;
        }
        CHECK(mismatches == 0);
    }
}

TEST_CASE("cast float to bf16 and back is the reference's rounding", "[parity][bf16][cast]") {
    const HostTensor<float> x = test::random_tensor<float>(Shape{3, 5, 7, 11}, 41, -100.0, 100.0);
    const int64_t n = x.numel();
    const DeviceBuffer x_d = test::to_device(x);
    DeviceBuffer h_d = test::poisoned_bf16(n), y_d = test::poisoned<float>(n);
    gpu::cast(x_d.data_as<float>(), test::bf16_data(h_d), n, nullptr);
    gpu::cast(test::bf16_data(h_d), y_d.data_as<float>(), n, nullptr);
    CHECK(test::bf16_mismatches(test::to_host<float>(y_d, x.shape()), rounded(x)) == 0);
}

TEST_CASE("cast rejects bad arguments with the op and the value", "[parity][bf16][cast]") {
    DeviceBuffer f = test::poisoned<float>(4), h = test::poisoned_bf16(4);
    CHECK_THAT(test::error_message([&] { gpu::cast(f.data_as<float>(), test::bf16_data(h), 0, nullptr); }),
               Contains("cast: the input is empty (count 0)"));
    CHECK_THAT(
        test::error_message([&] { gpu::cast(test::bf16_data(h), static_cast<float*>(nullptr), 4, nullptr); }),
        Contains("cast: x (") && Contains("and y (0x0) must be device pointers"));
}
