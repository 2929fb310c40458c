// Dropout and dropout2d kernels against the CPU reference: masks bit for bit equal to cpu::dropout_mask /
// cpu::dropout2d_mask for several (seed, stream, p), outputs and gradients equal too (the kernels use the
// reference's double arithmetic), eval mode, p = 0 and p = 1, odd and misaligned sizes, bad arguments.
#include <catch2/catch.hpp>

#include <cmath>
#include <cstdint>
#include <vector>

#include "cuda/dropout.hpp"
#include "cudacnn/ops/dropout.hpp"
#include "support/compare.hpp"
#include "support/errors.hpp"
#include "support/parity.hpp"

using namespace cudacnn;
using Catch::Matchers::Contains;

namespace {

// y = float(double(x) · factor) on both sides, one rounding of the same product: the outputs must be equal
// bit for bit, so the tolerance is zero (and masks, being integers, are compared exactly anyway).
constexpr double kSameArithmeticTolerance = 0.0;

// (seed, stream, p): the high words of seed and stream matter too; p at both ends of the range.
const std::vector<cpu::DropoutOptions>& training_options() {
    static const std::vector<cpu::DropoutOptions> all = {
        cpu::DropoutOptions{0.5, true, 1234, 5},
        cpu::DropoutOptions{0.1, true, 987654321987ull, (1ull << 33) + 7},
        cpu::DropoutOptions{0.9, true, 0x0123456789abcdefull, 0},
        cpu::DropoutOptions{0.05, true, 42, 0xfedcba9876543210ull},
    };
    return all;
}

bool masks_equal(const HostTensor<uint8_t>& a, const HostTensor<uint8_t>& b) {
    return a.shape() == b.shape() && a.values() == b.values();
}

// Forward and backward of dropout on one shape with x, y (and dy, dx) `offset` floats into their buffers.
// Every call runs on the legacy default stream, which orders copies, fills, kernels and downloads.
void check_dropout(const Shape& shape, const cpu::DropoutOptions& options, int64_t offset) {
    CAPTURE(shape.to_string(), options.p, options.seed, options.stream, options.training, offset);
    const int64_t n = shape.numel();
    const HostTensor<float> x = test::random_tensor<float>(shape, 101);
    const cpu::DropoutResult<float> expected = cpu::dropout(x, options);

    const test::OffsetBuffer<float> x_d = test::to_device_at(x, offset),
                                    y_d = test::poisoned_at<float>(n, offset);
    DeviceBuffer mask_d = test::poisoned<uint8_t>(n);
    gpu::dropout_forward(x_d.data(), y_d.data(), mask_d.data_as<uint8_t>(), n, options, nullptr);
    const HostTensor<uint8_t> mask = test::to_host<uint8_t>(mask_d, shape);
    CHECK(masks_equal(mask, expected.mask));
    CHECK(masks_equal(mask, cpu::dropout_mask(shape, options)));
    CHECK(test::max_relative_error(test::to_host(y_d, shape), expected.y) <= kSameArithmeticTolerance);

    const HostTensor<float> dy = test::random_tensor<float>(shape, 102);
    const test::OffsetBuffer<float> dy_d = test::to_device_at(dy, offset),
                                    dx_d = test::poisoned_at<float>(n, offset);
    gpu::dropout_backward(dy_d.data(), mask_d.data_as<uint8_t>(), dx_d.data(), n, options, nullptr);
    CHECK(test::max_relative_error(test::to_host(dx_d, shape),
                                   cpu::dropout_backward(dy, expected.mask, options).dx) <=
          kSameArithmeticTolerance);
}

void check_dropout2d(const Shape& shape, const cpu::DropoutOptions& options) {
    CAPTURE(shape.to_string(), options.p, options.seed, options.stream, options.training);
    const int64_t n = shape.numel();
    const Shape mask_shape{shape[0], shape[1]};
    const HostTensor<float> x = test::random_tensor<float>(shape, 201);
    const cpu::DropoutResult<float> expected = cpu::dropout2d(x, options);

    const DeviceBuffer x_d = test::to_device(x);
    DeviceBuffer y_d = test::poisoned<float>(n), mask_d = test::poisoned<uint8_t>(mask_shape.numel());
    gpu::dropout2d_forward(x_d.data_as<float>(), y_d.data_as<float>(), mask_d.data_as<uint8_t>(), shape,
                           options, nullptr);
    const HostTensor<uint8_t> mask = test::to_host<uint8_t>(mask_d, mask_shape);
    CHECK(masks_equal(mask, expected.mask));
    CHECK(masks_equal(mask, cpu::dropout2d_mask(shape, options)));
    CHECK(test::max_relative_error(test::to_host<float>(y_d, shape), expected.y) <= kSameArithmeticTolerance);

    const HostTensor<float> dy = test::random_tensor<float>(shape, 202);
    const DeviceBuffer dy_d = test::to_device(dy);
    DeviceBuffer dx_d = test::poisoned<float>(n);
    gpu::dropout2d_backward(dy_d.data_as<float>(), mask_d.data_as<uint8_t>(), dx_d.data_as<float>(), shape,
                            options, nullptr);
    CHECK(test::max_relative_error(test::to_host<float>(dx_d, shape),
                                   cpu::dropout2d_backward(dy, expected.mask, options).dx) <=
          kSameArithmeticTolerance);
}

}  // namespace

TEST_CASE("dropout kernels draw the reference's mask bit for bit and scale as it does", "[parity][dropout]") {
    for (const cpu::DropoutOptions& options : training_options()) {
        check_dropout(Shape{5, 3, 7, 5}, options, 0);  // 525 units: the last Philox draw is used in part
        check_dropout(Shape{5, 3, 7, 5}, options, 1);  // misaligned by a float: the scalar path
    }
    // The fc layers' Dropout(0.1) of CifarCNN on (batch, 4096), batch scaled down: the float4 path.
    check_dropout(Shape{8, 4096}, cpu::DropoutOptions{0.1, true, 7, 3}, 0);
    check_dropout(Shape{1, 3}, cpu::DropoutOptions{0.5, true, 7, 4}, 0);  // fewer units than one draw
    // More groups of four (278528) than one wave of threads (270336): the grid-stride loops go round.
    check_dropout(Shape{17, 64, 32, 32}, cpu::DropoutOptions{0.1, true, 8, 9}, 0);
}

TEST_CASE("dropout kernels: eval mode and p = 0 are the identity, p = 1 zeros everything",
          "[parity][dropout]") {
    const Shape shape{5, 3, 7, 5};
    for (const cpu::DropoutOptions& options :
         {cpu::DropoutOptions{0.5, false, 1, 2}, cpu::DropoutOptions{0.0, true, 1, 2},
          cpu::DropoutOptions{1.0, true, 1, 2}}) {
        check_dropout(shape, options, 0);
        check_dropout2d(shape, options);
    }
    // The mask contents themselves, not only their agreement with the reference.
    DeviceBuffer x_d = test::to_device(test::random_tensor<float>(shape, 5)),
                 y_d = test::poisoned<float>(shape.numel());
    DeviceBuffer mask_d = test::poisoned<uint8_t>(shape.numel());
    gpu::dropout_forward(x_d.data_as<float>(), y_d.data_as<float>(), mask_d.data_as<uint8_t>(), shape.numel(),
                         cpu::DropoutOptions{1.0, true, 1, 2}, nullptr);
    for (uint8_t m : download<uint8_t>(mask_d)) REQUIRE(m == 0);
    for (float y : download<float>(y_d)) REQUIRE(y == 0.0f);
}

TEST_CASE("dropout2d kernels drop whole (n, c) channels with the reference's mask", "[parity][dropout]") {
    for (const cpu::DropoutOptions& options : training_options()) {
        check_dropout2d(Shape{5, 3, 7, 5}, options);  // 15 channels of 35 values: groups span channels
    }
    // CifarCNN's Dropout2d(0.05) after the second pooling: (batch, 128, 8, 8), batch scaled down.
    check_dropout2d(Shape{4, 128, 8, 8}, cpu::DropoutOptions{0.05, true, 99, 12});
    check_dropout2d(Shape{1, 3, 1, 1}, cpu::DropoutOptions{0.5, true, 99, 13});  // one value per channel
}

TEST_CASE("dropout kernels keep NaN where dropped, as the reference's product does", "[parity][dropout]") {
    const Shape shape{2, 3, 2, 2};
    HostTensor<float> x = test::random_tensor<float>(shape, 7);
    for (int64_t i = 0; i < shape.numel(); i += 5) x[i] = NAN;
    const cpu::DropoutOptions options{0.5, true, 3, 4};
    const DeviceBuffer x_d = test::to_device(x);
    DeviceBuffer y_d = test::poisoned<float>(shape.numel()), mask_d = test::poisoned<uint8_t>(shape.numel());
    gpu::dropout_forward(x_d.data_as<float>(), y_d.data_as<float>(), mask_d.data_as<uint8_t>(), shape.numel(),
                         options, nullptr);
    const HostTensor<float> y = test::to_host<float>(y_d, shape), expected = cpu::dropout(x, options).y;
    for (int64_t i = 0; i < shape.numel(); ++i) CHECK(std::isnan(y[i]) == std::isnan(expected[i]));
}

TEST_CASE("dropout launchers reject bad arguments with the op and the value", "[parity][dropout]") {
    DeviceBuffer buffer = test::poisoned<float>(8), mask = test::poisoned<uint8_t>(8);
    float* p = buffer.data_as<float>();
    uint8_t* m = mask.data_as<uint8_t>();
    const cpu::DropoutOptions half{0.5, true, 0, 0};
    CHECK_THAT(test::error_message([&] {
                   gpu::dropout_forward(p, p, m, 8, cpu::DropoutOptions{1.5, true, 0, 0}, nullptr);
               }),
               Contains("dropout: p is 1.5; it must be in [0, 1]"));
    CHECK_THAT(test::error_message([&] {
                   gpu::dropout_backward(p, m, p, 8, cpu::DropoutOptions{NAN, true, 0, 0}, nullptr);
               }),
               Contains("dropout_backward: p is nan"));
    CHECK_THAT(test::error_message([&] { gpu::dropout_forward(p, p, m, 0, half, nullptr); }),
               Contains("dropout: the input is empty (count 0)"));
    CHECK_THAT(test::error_message([&] { gpu::dropout_forward(p, p, nullptr, 8, half, nullptr); }),
               Contains("mask (0x0)"));
    CHECK_THAT(test::error_message([&] {
                   gpu::dropout2d_forward(p, p, m, Shape{2, 4}, half, nullptr);
               }),
               Contains("dropout2d: x has shape (2, 4); it must be (N, C, H, W)"));
    CHECK_THAT(test::error_message([&] {
                   gpu::dropout2d_backward(p, m, p, Shape{2, 0, 2, 2}, half, nullptr);
               }),
               Contains("dropout2d_backward: dy has shape (2, 0, 2, 2); every dimension must be positive"));
}
