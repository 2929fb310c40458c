// The kernels that fold a ReLU into the dropout after it (cuda/dropout.cu: relu_dropout_forward and
// relu_dropout_backward) against relu_forward then dropout_forward and dropout_backward then relu_backward,
// which the other parity tests hold to the CPU reference: the executor swaps one for the other, so outputs,
// keep decisions and gradients must be the same bits, NaN, infinities and signed zeros included.
#include <catch2/catch.hpp>

#include <cstdint>
#include <limits>
#include <vector>

#include "cuda/activation.hpp"
#include "cuda/dropout.hpp"
#include "support/errors.hpp"
#include "support/parity.hpp"

using namespace cudacnn;
using Catch::Matchers::Contains;

namespace {

constexpr float kNaN = std::numeric_limits<float>::quiet_NaN();
constexpr float kInf = std::numeric_limits<float>::infinity();

// Random values with the ReLU's edge cases sprinkled in: ±0, NaN, ±infinity.
HostTensor<float> with_specials(const Shape& shape, uint32_t seed) {
    HostTensor<float> t = test::random_tensor<float>(shape, seed);
    const float specials[] = {0.0f, -0.0f, kNaN, kInf, -kInf, -kNaN};
    const int64_t n = t.numel();
    for (int64_t k = 0; k < 6 && k * 5 < n; ++k) t[(k * 5 + seed) % n] = specials[k];
    return t;
}

struct Pass {
    HostTensor<float> y, dx;
    HostTensor<uint8_t> mask;
};

// One forward and backward, fused or as the separate kernels, with x, y, dy, dx `offset` floats into their
// buffers (offset 1: the scalar paths) and every output poisoned first. `step`: a device step counter or none.
Pass run(const HostTensor<float>& x, const HostTensor<float>& dy, const cpu::DropoutOptions& options,
         int64_t offset, const gpu::DeviceStep& step, bool fused) {
    const Shape& shape = x.shape();
    const int64_t n = shape.numel();
    const test::OffsetBuffer<float> x_d = test::to_device_at(x, offset), y_d = test::poisoned_at<float>(n, offset);
    const test::OffsetBuffer<float> dy_d = test::to_device_at(dy, offset), dx_d = test::poisoned_at<float>(n, offset);
    const DeviceBuffer mask_d = test::poisoned<uint8_t>(n);
    auto* mask = mask_d.data_as<uint8_t>();
    if (fused) {
        gpu::relu_dropout_forward(x_d.data(), y_d.data(), mask, n, options, nullptr, step);
        gpu::relu_dropout_backward(dy_d.data(), mask, dx_d.data(), n, options, nullptr);
    } else {
        // The executor's unfused order: ReLU into its own output, dropout into another, and back.
        const test::OffsetBuffer<float> relu_d = test::poisoned_at<float>(n, offset),
                                        drelu_d = test::poisoned_at<float>(n, offset);
        gpu::relu_forward(x_d.data(), relu_d.data(), n, nullptr);
        gpu::dropout_forward(relu_d.data(), y_d.data(), mask, n, options, nullptr, step);
        gpu::dropout_backward(dy_d.data(), mask, drelu_d.data(), n, options, nullptr);
        gpu::relu_backward(relu_d.data(), drelu_d.data(), dx_d.data(), n, nullptr);
    }
    return {test::to_host(y_d, shape), test::to_host(dx_d, shape), test::to_host<uint8_t>(mask_d, shape)};
}

// The fused mask's bits: kept as the dropout's own mask says, passes where ReLU's backward would pass dy.
void check_mask_bits(const HostTensor<float>& x, const HostTensor<uint8_t>& fused,
                     const HostTensor<uint8_t>& separate) {
    for (int64_t i = 0; i < x.numel(); ++i) {
        INFO("unit " << i << ", x = " << x[i]);
        const float relu = x[i] < 0.0f ? 0.0f : x[i];
        const int passes = relu <= 0.0f ? 0 : gpu::kReluDropoutPasses;
        CHECK(fused[i] == ((separate[i] != 0 ? gpu::kReluDropoutKept : 0) | passes));
    }
}

}  // namespace

TEST_CASE("relu_dropout equals ReLU then dropout bit for bit, forward and backward", "[parity][dropout][fused]") {
    const std::vector<Shape> shapes = {Shape{1}, Shape{7}, Shape{3, 37}, Shape{4, 512}, Shape{5, 1023}};
    const std::vector<cpu::DropoutOptions> options = {
        cpu::DropoutOptions{0.5, true, 1234, 5},
        cpu::DropoutOptions{0.1, true, 987654321987ull, (1ull << 33) + 7},
        cpu::DropoutOptions{0.0, true, 77, 3},   // nothing drawn, every unit kept
        cpu::DropoutOptions{1.0, true, 77, 3},   // every unit dropped: y = relu(x) · 0
        cpu::DropoutOptions{0.5, false, 77, 3},  // eval mode: the ReLU alone
    };
    uint32_t seed = 900;
    for (const Shape& shape : shapes) {
        for (const cpu::DropoutOptions& o : options) {
            for (int64_t offset : {int64_t{0}, int64_t{1}}) {
                CAPTURE(shape.to_string(), o.p, o.training, offset);
                const HostTensor<float> x = with_specials(shape, seed), dy = with_specials(shape, seed + 1);
                const Pass fused = run(x, dy, o, offset, {}, true);
                const Pass separate = run(x, dy, o, offset, {}, false);
                CHECK(test::bitwise_equal(fused.y, separate.y));
                CHECK(test::bitwise_equal(fused.dx, separate.dx));
                check_mask_bits(x, fused.mask, separate.mask);
                seed += 2;
            }
        }
    }
}

TEST_CASE("relu_dropout draws from the device step counter's stream, as dropout does", "[parity][dropout][fused]") {
    const Shape shape{6, 129};
    const HostTensor<float> x = with_specials(shape, 31), dy = with_specials(shape, 32);
    const DeviceBuffer counter = test::to_device(HostTensor<int64_t>(Shape{1}, std::vector<int64_t>{5}));
    const gpu::DeviceStep step{counter.data_as<int64_t>(), 11};
    const cpu::DropoutOptions o{0.3, true, 21, uint64_t{1} << 48};
    const Pass fused = run(x, dy, o, 0, step, true);
    const Pass separate = run(x, dy, o, 0, step, false);
    CHECK(test::bitwise_equal(fused.y, separate.y));
    CHECK(test::bitwise_equal(fused.dx, separate.dx));
    check_mask_bits(x, fused.mask, separate.mask);
    // Another step, other masks: the counter is read, not ignored.
    const Pass unstepped = run(x, dy, o, 0, {}, true);
    CHECK(unstepped.mask.values() != fused.mask.values());
}

TEST_CASE("relu_dropout works in place and checks its arguments as dropout does", "[parity][dropout][fused]") {
    const Shape shape{3, 41};
    const int64_t n = shape.numel();
    const HostTensor<float> x = with_specials(shape, 41), dy = with_specials(shape, 42);
    const cpu::DropoutOptions o{0.5, true, 5, 6};
    const Pass expected = run(x, dy, o, 0, {}, false);
    const DeviceBuffer inout = test::to_device(x), grad = test::to_device(dy), mask = test::poisoned<uint8_t>(n);
    gpu::relu_dropout_forward(inout.data_as<float>(), inout.data_as<float>(), mask.data_as<uint8_t>(), n, o, nullptr);
    gpu::relu_dropout_backward(grad.data_as<float>(), mask.data_as<uint8_t>(), grad.data_as<float>(), n, o, nullptr);
    CHECK(test::bitwise_equal(test::to_host<float>(inout, shape), expected.y));
    CHECK(test::bitwise_equal(test::to_host<float>(grad, shape), expected.dx));

    float* f = inout.data_as<float>();
    cpu::DropoutOptions bad = o;
    bad.p = 1.5;
    CHECK_THAT(test::error_message([&] { gpu::relu_dropout_forward(f, f, mask.data_as<uint8_t>(), n, bad, nullptr); }),
               Contains("relu_dropout: p is 1.5"));
    CHECK_THAT(test::error_message([&] { gpu::relu_dropout_backward(f, nullptr, f, n, o, nullptr); }),
               Contains("relu_dropout_backward: the input"));
    CHECK_THAT(test::error_message([&] { gpu::relu_dropout_forward(f, f, mask.data_as<uint8_t>(), 0, o, nullptr); }),
               Contains("relu_dropout: the input is empty"));
}
