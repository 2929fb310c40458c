// The bf16 dropout kernels (cuda/dropout.hpp's *_bf16 launchers): their masks are the float kernels' for the
// same options and step (the same Philox draws), and their outputs and gradients are the reference's on the
// bf16-rounded inputs, rounded once to bf16, bit for bit. Dropout, dropout2d, and ReLU + dropout; several
// (seed, stream, p), eval mode, p = 0 and p = 1, a device step counter, odd sizes, the 8-byte vector path and
// the scalar one, NaN and infinities, in place, bad arguments.
#include <catch2/catch.hpp>

#include <cstdint>
#include <limits>
#include <vector>

#include "cuda/dropout.hpp"
#include "cudacnn/ops/activation.hpp"
#include "cudacnn/ops/dropout.hpp"
#include "support/bf16.hpp"
#include "support/errors.hpp"
#include "support/parity.hpp"

using namespace cudacnn;
using Catch::Matchers::Contains;

namespace {

using bf16 = gpu::bf16;

// Every comparison is exact: masks are integers drawn by the same Philox calls, and values take the float
// kernels' arithmetic (float(double(v) · factor), the reference's own) and then one rounding to bf16, which
// the reference side applies too (test::round_to_bf16; the kernels' rounding is the reference's by
// bf16_rounding_parity_test).

const std::vector<cpu::DropoutOptions>& all_options() {
    static const std::vector<cpu::DropoutOptions> all = {
        cpu::DropoutOptions{0.5, true, 1234, 5},
        cpu::DropoutOptions{0.1, true, 987654321987ull, (1ull << 33) + 7},
        cpu::DropoutOptions{0.9, true, 0x0123456789abcdefull, 0},
        cpu::DropoutOptions{0.5, false, 1, 2},  // eval mode: the identity, an all-ones mask
        cpu::DropoutOptions{0.0, true, 1, 2},   // nothing drawn, every unit kept
        cpu::DropoutOptions{1.0, true, 1, 2},   // every unit dropped: x · 0 (NaN stays NaN)
    };
    return all;
}

// bf16 values with NaN, ±Inf and ±0 among them (Inf · 0 is NaN where dropped, as in the reference).
HostTensor<float> bf16_input(const Shape& shape, uint32_t seed) {
    HostTensor<float> t = test::round_to_bf16(test::random_tensor<float>(shape, seed, -4.0, 4.0));
    const float specials[] = {std::numeric_limits<float>::quiet_NaN(), std::numeric_limits<float>::infinity(),
                              -std::numeric_limits<float>::infinity(), 0.0f, -0.0f};
    for (int64_t k = 0; k < 5 && 7 * k < t.numel(); ++k) t[(7 * k + seed) % t.numel()] = specials[k];
    return t;
}

bool masks_equal(const HostTensor<uint8_t>& a, const HostTensor<uint8_t>& b) {
    return a.shape() == b.shape() && a.values() == b.values();
}

// The float kernel's mask for the same call, the standard the bf16 mask must meet byte for byte.
template <class Launch>
HostTensor<uint8_t> float_mask(const HostTensor<float>& x, const Shape& mask_shape, Launch launch) {
    const DeviceBuffer x_d = test::to_device(x);
    DeviceBuffer y_d = test::poisoned<float>(x.numel()), mask_d = test::poisoned<uint8_t>(mask_shape.numel());
    launch(x_d.data_as<float>(), y_d.data_as<float>(), mask_d.data_as<uint8_t>());
    return test::to_host<uint8_t>(mask_d, mask_shape);
}

// dropout forward and backward with x, y, dy, dx `offset` bf16 into their buffers.
void check_dropout(const Shape& shape, const cpu::DropoutOptions& o, int64_t offset) {
    CAPTURE(shape.to_string(), o.p, o.seed, o.stream, o.training, offset);
    const int64_t n = shape.numel();
    const HostTensor<float> x = bf16_input(shape, 101), dy = bf16_input(shape, 102);
    const cpu::DropoutResult<float> expected = cpu::dropout(x, o);

    const auto x_d = test::to_device_bf16_at(x, offset);
    const auto y_d = test::poisoned_at<bf16>(n, offset);
    DeviceBuffer mask_d = test::poisoned<uint8_t>(n);
    gpu::dropout_forward(x_d.data(), y_d.data(), mask_d.data_as<uint8_t>(), n, o, nullptr);
    const HostTensor<uint8_t> mask = test::to_host<uint8_t>(mask_d, shape);
    CHECK(masks_equal(mask, float_mask(x, shape, [&](const float* xf, float* yf, uint8_t* m) {
                          gpu::dropout_forward(xf, yf, m, n, o, nullptr);
                      })));
    CHECK(masks_equal(mask, expected.mask));
    CHECK(test::bf16_mismatches(test::to_host_bf16(y_d.data(), shape), test::round_to_bf16(expected.y)) == 0);

    const auto dy_d = test::to_device_bf16_at(dy, offset);
    const auto dx_d = test::poisoned_at<bf16>(n, offset);
    gpu::dropout_backward(dy_d.data(), mask_d.data_as<uint8_t>(), dx_d.data(), n, o, nullptr);
    CHECK(test::bf16_mismatches(test::to_host_bf16(dx_d.data(), shape),
                                test::round_to_bf16(cpu::dropout_backward(dy, expected.mask, o).dx)) == 0);
}

void check_dropout2d(const Shape& shape, const cpu::DropoutOptions& o, int64_t offset) {
    CAPTURE(shape.to_string(), o.p, o.seed, o.stream, o.training, offset);
    const int64_t n = shape.numel();
    const Shape mask_shape{shape[0], shape[1]};
    const HostTensor<float> x = bf16_input(shape, 201), dy = bf16_input(shape, 202);
    const cpu::DropoutResult<float> expected = cpu::dropout2d(x, o);

    const auto x_d = test::to_device_bf16_at(x, offset);
    const auto y_d = test::poisoned_at<bf16>(n, offset);
    DeviceBuffer mask_d = test::poisoned<uint8_t>(mask_shape.numel());
    gpu::dropout2d_forward(x_d.data(), y_d.data(), mask_d.data_as<uint8_t>(), shape, o, nullptr);
    const HostTensor<uint8_t> mask = test::to_host<uint8_t>(mask_d, mask_shape);
    CHECK(masks_equal(mask, float_mask(x, mask_shape, [&](const float* xf, float* yf, uint8_t* m) {
                          gpu::dropout2d_forward(xf, yf, m, shape, o, nullptr);
                      })));
    CHECK(masks_equal(mask, expected.mask));
    CHECK(test::bf16_mismatches(test::to_host_bf16(y_d.data(), shape), test::round_to_bf16(expected.y)) == 0);

    const auto dy_d = test::to_device_bf16_at(dy, offset);
    const auto dx_d = test::poisoned_at<bf16>(n, offset);
    gpu::dropout2d_backward(dy_d.data(), mask_d.data_as<uint8_t>(), dx_d.data(), shape, o, nullptr);
    CHECK(test::bf16_mismatches(test::to_host_bf16(dx_d.data(), shape),
                                test::round_to_bf16(cpu::dropout2d_backward(dy, expected.mask, o).dx)) == 0);
}

// ReLU + dropout: the mask (with its two bits) is the float fused kernel's; y and dx are the reference's ReLU
// then dropout, and dropout's backward then ReLU's, on the rounded inputs, rounded once.
void check_relu_dropout(const Shape& shape, const cpu::DropoutOptions& o, int64_t offset,
                        const gpu::DeviceStep& step = {}) {
    CAPTURE(shape.to_string(), o.p, o.seed, o.stream, o.training, offset);
    const int64_t n = shape.numel();
    const HostTensor<float> x = bf16_input(shape, 301), dy = bf16_input(shape, 302);

    const auto x_d = test::to_device_bf16_at(x, offset);
    const auto y_d = test::poisoned_at<bf16>(n, offset);
    DeviceBuffer mask_d = test::poisoned<uint8_t>(n);
    gpu::relu_dropout_forward(x_d.data(), y_d.data(), mask_d.data_as<uint8_t>(), n, o, nullptr, step);
    const HostTensor<uint8_t> mask = test::to_host<uint8_t>(mask_d, shape);
    CHECK(masks_equal(mask, float_mask(x, shape, [&](const float* xf, float* yf, uint8_t* m) {
                          gpu::relu_dropout_forward(xf, yf, m, n, o, nullptr, step);
                      })));
    if (step.counter != nullptr)
        return;  // the reference has no step counter: the float kernel is the standard

    const HostTensor<float> relu = cpu::relu(x);
    const cpu::DropoutResult<float> expected = cpu::dropout(relu, o);
    HostTensor<uint8_t> kept = mask;
    for (int64_t i = 0; i < n; ++i) kept[i] = (mask[i] & gpu::kReluDropoutKept) ? 1 : 0;
    CHECK(masks_equal(kept, expected.mask));
    CHECK(test::bf16_mismatches(test::to_host_bf16(y_d.data(), shape), test::round_to_bf16(expected.y)) == 0);

    const auto dy_d = test::to_device_bf16_at(dy, offset);
    const auto dx_d = test::poisoned_at<bf16>(n, offset);
    gpu::relu_dropout_backward(dy_d.data(), mask_d.data_as<uint8_t>(), dx_d.data(), n, o, nullptr);
    // dropout's backward is exact in float up to its one rounding, which relu_backward's select keeps.
    const HostTensor<float> dx_ref =
        cpu::relu_backward(relu, cpu::dropout_backward(dy, expected.mask, o).dx).dx;
    CHECK(test::bf16_mismatches(test::to_host_bf16(dx_d.data(), shape), test::round_to_bf16(dx_ref)) == 0);
}

}  // namespace

TEST_CASE("bf16 dropout draws the float kernel's masks and scales as the reference, bit for bit",
          "[parity][bf16][dropout]") {
    for (const cpu::DropoutOptions& o : all_options()) {
        check_dropout(Shape{5, 3, 7, 5}, o, 0);  // 525 units: 8-byte vectors, the last draw used in part
        check_dropout(Shape{5, 3, 7, 5}, o, 1);  // misaligned by a bf16: the scalar path
    }
    check_dropout(Shape{3, 4096}, cpu::DropoutOptions{0.1, true, 7, 3},
                  4);                                                     // fc layer's: 8-byte aligned only
    check_dropout(Shape{1, 3}, cpu::DropoutOptions{0.5, true, 7, 4}, 0);  // fewer units than one draw
}

TEST_CASE("bf16 dropout2d drops the float kernel's channels and scales as the reference, bit for bit",
          "[parity][bf16][dropout]") {
    for (const cpu::DropoutOptions& o : all_options()) {
        check_dropout2d(Shape{5, 3, 7, 5}, o, 0);  // 15 channels of 35 values: groups span channels
        check_dropout2d(Shape{5, 3, 7, 5}, o, 1);
    }
    // CifarCNN's Dropout2d(0.05) after the second pooling: (batch, 128, 8, 8), batch scaled down.
    check_dropout2d(Shape{2, 128, 8, 8}, cpu::DropoutOptions{0.05, true, 99, 12}, 0);
}

TEST_CASE("bf16 relu_dropout: the float kernel's mask bits, ReLU then dropout's values, bit for bit",
          "[parity][bf16][dropout][fused]") {
    for (const cpu::DropoutOptions& o : all_options()) {
        check_relu_dropout(Shape{5, 3, 7, 5}, o, 0);
        check_relu_dropout(Shape{5, 3, 7, 5}, o, 1);
    }
    // A device step counter moves the stream on: the bf16 kernel reads it as the float one does.
    const DeviceBuffer counter = upload(std::vector<int64_t>{3});
    check_relu_dropout(Shape{2, 3, 7, 5}, cpu::DropoutOptions{0.3, true, 21, 1ull << 40}, 0,
                       gpu::DeviceStep{counter.data_as<int64_t>(), 5});
}

TEST_CASE("bf16 dropout works in place and rejects bad arguments as the float launchers do",
          "[parity][bf16][dropout]") {
    const Shape shape{3, 5, 7};
    const int64_t n = shape.numel();
    const cpu::DropoutOptions o{0.5, true, 5, 6};
    const HostTensor<float> x = bf16_input(shape, 401);
    const cpu::DropoutResult<float> expected = cpu::dropout(x, o);
    const auto inout = test::to_device_bf16_at(x, 0);
    DeviceBuffer mask = test::poisoned<uint8_t>(n);
    gpu::dropout_forward(inout.data(), inout.data(), mask.data_as<uint8_t>(), n, o, nullptr);
    CHECK(test::bf16_mismatches(test::to_host_bf16(inout.data(), shape), test::round_to_bf16(expected.y)) ==
          0);
    gpu::dropout_backward(inout.data(), mask.data_as<uint8_t>(), inout.data(), n, o, nullptr);
    const HostTensor<float> twice =
        test::round_to_bf16(cpu::dropout_backward(test::round_to_bf16(expected.y), expected.mask, o).dx);
    CHECK(test::bf16_mismatches(test::to_host_bf16(inout.data(), shape), twice) == 0);

    bf16* p = inout.data();
    uint8_t* m = mask.data_as<uint8_t>();
    CHECK_THAT(test::error_message([&] {
                   gpu::dropout_forward(p, p, m, n, cpu::DropoutOptions{1.5, true, 0, 0}, nullptr);
               }),
               Contains("dropout: p is 1.5; it must be in [0, 1]"));
    CHECK_THAT(test::error_message([&] { gpu::relu_dropout_backward(p, nullptr, p, n, o, nullptr); }),
               Contains("relu_dropout_backward: the input"));
    CHECK_THAT(test::error_message([&] {
                   gpu::dropout2d_forward(p, p, m, Shape{2, 4}, o, nullptr);
               }),
               Contains("dropout2d: x has shape (2, 4); it must be (N, C, H, W)"));
    CHECK_THAT(test::error_message([&] { gpu::dropout_backward(p, m, p, 0, o, nullptr); }),
               Contains("dropout_backward: dy is empty (count 0)"));
}
