// The bf16 activation kernels (cuda/activation.hpp's bf16 overloads) against the reference on bf16-rounded
// inputs, its output rounded once to bf16: every activation and option, forward and backward, on odd sizes,
// on the 16-byte vector path (8 bf16), with a scalar head, on the scalar path, in place, with NaN, ±Inf and
// ±0; relu bit for bit. Also add (cuda/shape_ops.hpp), the other element-wise op of a bf16 step.
#include <catch2/catch.hpp>

#include <cmath>
#include <cstdint>
#include <functional>
#include <limits>
#include <string>
#include <vector>

#include "cuda/activation.hpp"
#include "cuda/shape_ops.hpp"
#include "cudacnn/ops/activation.hpp"
#include "cudacnn/ops/shape_ops.hpp"
#include "support/bf16.hpp"
#include "support/compare.hpp"
#include "support/errors.hpp"
#include "support/parity.hpp"

using namespace cudacnn;
using Catch::Matchers::Contains;
using test::max_relative_error;

namespace {

using bf16 = gpu::bf16;
constexpr float kNaN = std::numeric_limits<float>::quiet_NaN();
constexpr float kInf = std::numeric_limits<float>::infinity();

// Tolerances against the reference (max relative error over the tensor, cudacnn's metric for the float
// kernels). relu, relu_backward and add are exact: a select, or one float rounding as in the reference, then
// the one bf16 rounding on both sides, so they are compared bit for bit instead.
// The others: the float kernel's own error against the double reference (activation_parity_test: 2 float
// roundings for leaky_relu, 32 ulp for the transcendentals) and then each side rounded once to bf16, which
// moves each by at most half a bf16 ulp, 2^-9 relative to the element: 2 · 2^-9 = 2^-8 more in all.
constexpr double kBf16Roundings = 2.0 / 512.0;
constexpr double kTwoRoundingsTolerance = 2.0 / 16777216.0 + kBf16Roundings;
constexpr double kTranscendentalTolerance = 32.0 / 16777216.0 + kBf16Roundings;

using Reference = std::function<HostTensor<float>(const HostTensor<float>&)>;
using ReferenceBackward =
    std::function<HostTensor<float>(const HostTensor<float>& saved, const HostTensor<float>& dy)>;
template <class T>
using Forward = std::function<void(const T* x, T* y, int64_t count)>;
template <class T>
using Backward = std::function<void(const T* saved, const T* dy, T* dx, int64_t count)>;

// One activation: its reference, and its float and bf16 launchers.
struct Case {
    std::string name;
    bool backward_from_output;  // the reference saves y (relu, sigmoid, tanh) rather than x
    double tolerance;           // 0: bit for bit against the reference
    Reference reference_forward;
    ReferenceBackward reference_backward;
    Forward<float> forward;
    Backward<float> backward;
    Forward<bf16> forward_bf16;
    Backward<bf16> backward_bf16;
};

// forward and backward: generic lambdas, called with float and with bf16 pointers.
template <class F, class B>
Case make_case(std::string name, bool from_output, double tolerance, Reference reference,
               ReferenceBackward reference_backward, F forward, B backward) {
    return {
        std::move(name), from_output, tolerance, std::move(reference), std::move(reference_backward), forward,
        backward,        forward,     backward};
}

std::vector<Case> all_cases() {
    std::vector<Case> cases;
    cases.push_back(make_case(
        "relu", true, 0.0, [](const auto& x) { return cpu::relu(x); },
        [](const auto& y, const auto& dy) { return cpu::relu_backward(y, dy).dx; },
        [](auto x, auto y, int64_t n) { gpu::relu_forward(x, y, n, nullptr); },
        [](auto y, auto dy, auto dx, int64_t n) { gpu::relu_backward(y, dy, dx, n, nullptr); }));
    for (double slope : {0.01, -0.5}) {
        const cpu::LeakyReluOptions o{slope};
        cases.push_back(make_case(
            "leaky_relu " + std::to_string(slope), false, kTwoRoundingsTolerance,
            [o](const auto& x) { return cpu::leaky_relu(x, o); },
            [o](const auto& x, const auto& dy) { return cpu::leaky_relu_backward(x, dy, o).dx; },
            [o](auto x, auto y, int64_t n) { gpu::leaky_relu_forward(x, y, n, o, nullptr); },
            [o](auto x, auto dy, auto dx, int64_t n) {
                gpu::leaky_relu_backward(x, dy, dx, n, o, nullptr);
            }));
    }
    for (auto approximate : {cpu::GeluApproximate::none, cpu::GeluApproximate::tanh}) {
        const cpu::GeluOptions o{approximate};
        cases.push_back(make_case(
            std::string("gelu ") + cpu::gelu_approximate_name(approximate), false, kTranscendentalTolerance,
            [o](const auto& x) { return cpu::gelu(x, o); },
            [o](const auto& x, const auto& dy) { return cpu::gelu_backward(x, dy, o).dx; },
            [o](auto x, auto y, int64_t n) { gpu::gelu_forward(x, y, n, o, nullptr); },
            [o](auto x, auto dy, auto dx, int64_t n) { gpu::gelu_backward(x, dy, dx, n, o, nullptr); }));
    }
    cases.push_back(make_case(
        "sigmoid", true, kTranscendentalTolerance, [](const auto& x) { return cpu::sigmoid(x); },
        [](const auto& y, const auto& dy) { return cpu::sigmoid_backward(y, dy).dx; },
        [](auto x, auto y, int64_t n) { gpu::sigmoid_forward(x, y, n, nullptr); },
        [](auto y, auto dy, auto dx, int64_t n) { gpu::sigmoid_backward(y, dy, dx, n, nullptr); }));
    cases.push_back(make_case(
        "tanh", true, kTranscendentalTolerance, [](const auto& x) { return cpu::tanh(x); },
        [](const auto& y, const auto& dy) { return cpu::tanh_backward(y, dy).dx; },
        [](auto x, auto y, int64_t n) { gpu::tanh_forward(x, y, n, nullptr); },
        [](auto y, auto dy, auto dx, int64_t n) { gpu::tanh_backward(y, dy, dx, n, nullptr); }));
    return cases;
}

// The float kernel on the same (bf16-valued) inputs, writing into `out`, its output rounded once: what the
// bf16 kernel must give bit for bit, since both run the same functor in float and round once (the kernels'
// rounding is the reference's: bf16_rounding_parity_test).
HostTensor<float> float_kernel_rounded(const std::function<void(float* out)>& run, const Shape& shape) {
    DeviceBuffer out = test::poisoned<float>(shape.numel());
    run(out.data_as<float>());
    return test::round_to_bf16(test::to_host<float>(out, shape));
}

// One case on one shape: bf16 forward and backward with inputs `in_offset` and outputs `out_offset` bf16 into
// their (poisoned) buffers, against the reference (bit for bit when c.tolerance is 0) and against the float
// kernel rounded (always bit for bit).
void check_case(const Case& c, const Shape& shape, int64_t in_offset, int64_t out_offset, uint32_t seed) {
    CAPTURE(c.name, shape.to_string(), in_offset, out_offset);
    const int64_t n = shape.numel();
    const HostTensor<float> x = test::round_to_bf16(test::random_tensor<float>(shape, seed, -6.0, 6.0));
    const HostTensor<float> dy = test::round_to_bf16(test::random_tensor<float>(shape, seed + 1));
    const HostTensor<float> y_ref = test::round_to_bf16(c.reference_forward(x));

    const auto x_d = test::to_device_bf16_at(x, in_offset);
    const auto y_d = test::poisoned_at<bf16>(n, out_offset);
    c.forward_bf16(x_d.data(), y_d.data(), n);
    const HostTensor<float> y = test::to_host_bf16(y_d.data(), shape);
    const DeviceBuffer x_f = test::to_device(x);
    const HostTensor<float> y_float =
        float_kernel_rounded([&](float* out) { c.forward(x_f.data_as<float>(), out, n); }, shape);
    CHECK(test::bf16_mismatches(y, y_float) == 0);
    if (c.tolerance == 0.0) {
        CHECK(test::bf16_mismatches(y, y_ref) == 0);
    } else {
        CHECK(max_relative_error(y, y_ref) <= c.tolerance);
    }

    // The backward from what a bf16 forward saves: y rounded, or x.
    const HostTensor<float>& saved = c.backward_from_output ? y_ref : x;
    const HostTensor<float> dx_ref = test::round_to_bf16(c.reference_backward(saved, dy));
    const auto saved_d = test::to_device_bf16_at(saved, in_offset),
               dy_d = test::to_device_bf16_at(dy, in_offset);
    const auto dx_d = test::poisoned_at<bf16>(n, out_offset);
    c.backward_bf16(saved_d.data(), dy_d.data(), dx_d.data(), n);
    const HostTensor<float> dx = test::to_host_bf16(dx_d.data(), shape);
    const DeviceBuffer saved_f = test::to_device(saved), dy_f = test::to_device(dy);
    const HostTensor<float> dx_float = float_kernel_rounded(
        [&](float* out) { c.backward(saved_f.data_as<float>(), dy_f.data_as<float>(), out, n); }, shape);
    CHECK(test::bf16_mismatches(dx, dx_float) == 0);
    if (c.tolerance == 0.0) {
        CHECK(test::bf16_mismatches(dx, dx_ref) == 0);
    } else {
        CHECK(max_relative_error(dx, dx_ref) <= c.tolerance);
    }
}

// Random bf16 values with ReLU's edge cases sprinkled in: ±0, NaN, ±Inf.
HostTensor<float> with_specials(const Shape& shape, uint32_t seed) {
    HostTensor<float> t = test::round_to_bf16(test::random_tensor<float>(shape, seed, -3.0, 3.0));
    const float specials[] = {0.0f, -0.0f, kNaN, kInf, -kInf, -kNaN};
    for (int64_t k = 0; k < 6 && k * 5 < t.numel(); ++k) t[(k * 5 + seed) % t.numel()] = specials[k];
    return t;
}

}  // namespace

TEST_CASE("bf16 activation kernels match the reference on rounded inputs, forward and backward",
          "[parity][bf16][activation]") {
    for (const Case& c : all_cases()) {
        // A CifarCNN activation, batch scaled down: the 8-bf16 vector path.
        check_case(c, Shape{2, 32, 16, 16}, 0, 0, 11);
        // 525: an odd size, misaligned by a bf16 (2 bytes): a scalar head of 7, vectors, a scalar tail.
        check_case(c, Shape{5, 3, 7, 5}, 1, 1, 12);
        // 8-byte aligned, not 16: a head of 4, then 16-byte vectors.
        check_case(c, Shape{5, 3, 7, 5}, 4, 4, 13);
        check_case(c, Shape{1, 3, 7, 5}, 0, 1, 14);  // different alignments: the scalar path
        check_case(c, Shape{7}, 0, 0, 15);           // fewer than one vector: scalars only
    }
}

TEST_CASE("bf16 relu: NaN, infinities and signed zeros bit for bit, in place, and grid-stride loops",
          "[parity][bf16][activation]") {
    const Case relu = all_cases()[0];
    for (int64_t offset : {0, 1}) {
        CAPTURE(offset);
        const Shape shape{5, 3, 7, 5};
        const HostTensor<float> x = with_specials(shape, 21);
        const HostTensor<float> y_ref = cpu::relu(x);  // a select: already bf16 values
        const auto buffer = test::to_device_bf16_at(x, offset);
        gpu::relu_forward(buffer.data(), buffer.data(), shape.numel(), nullptr);  // in place
        CHECK(test::bf16_mismatches(test::to_host_bf16(buffer.data(), shape), y_ref) == 0);
        // The backward from y, in place (dx == dy): an infinite dy where y = 0 gives 0, a NaN y passes dy.
        HostTensor<float> dy = with_specials(shape, 22);
        const auto y_d = test::to_device_bf16_at(y_ref, offset), g = test::to_device_bf16_at(dy, offset);
        gpu::relu_backward(y_d.data(), g.data(), g.data(), shape.numel(), nullptr);
        CHECK(test::bf16_mismatches(test::to_host_bf16(g.data(), shape), cpu::relu_backward(y_ref, dy).dx) ==
              0);
    }
    // 2228224 bf16: 278528 vectors of 8 for 270336 threads (one wave): the grid-stride loop goes round.
    check_case(relu, Shape{17, 128, 32, 32}, 0, 0, 23);
}

TEST_CASE("bf16 add and add_backward match the reference bit for bit, in place too",
          "[parity][bf16][shape_ops]") {
    const Shape shape{5, 3, 7, 5};
    const HostTensor<float> a = with_specials(shape, 31),
                            b = test::round_to_bf16(test::random_tensor<float>(shape, 32));
    // a + b in float as the reference adds, rounded once to bf16.
    const HostTensor<float> expected = test::round_to_bf16(cpu::add(a, b));
    for (auto [in_offset, out_offset] : {std::pair<int64_t, int64_t>{0, 0}, {1, 1}, {4, 4}, {0, 3}}) {
        CAPTURE(in_offset, out_offset);
        const auto a_d = test::to_device_bf16_at(a, in_offset), b_d = test::to_device_bf16_at(b, in_offset);
        const auto y_d = test::poisoned_at<bf16>(shape.numel(), out_offset);
        gpu::add_forward(a_d.data(), b_d.data(), y_d.data(), shape.numel(), nullptr);
        CHECK(test::bf16_mismatches(test::to_host_bf16(y_d.data(), shape), expected) == 0);
        gpu::add_forward(a_d.data(), b_d.data(), a_d.data(), shape.numel(), nullptr);  // in place: a += b
        CHECK(test::bf16_mismatches(test::to_host_bf16(a_d.data(), shape), expected) == 0);

        const auto da_d = test::poisoned_at<bf16>(shape.numel(), out_offset);
        const auto db_d = test::poisoned_at<bf16>(shape.numel(), out_offset);
        gpu::add_backward(b_d.data(), da_d.data(), db_d.data(), shape.numel(), nullptr);
        CHECK(test::bf16_mismatches(test::to_host_bf16(da_d.data(), shape), b) == 0);
        CHECK(test::bf16_mismatches(test::to_host_bf16(db_d.data(), shape), b) == 0);
    }
}

TEST_CASE("bf16 activation and add launchers reject bad arguments with the op and the value",
          "[parity][bf16][activation]") {
    DeviceBuffer buffer = test::poisoned_bf16(8);
    bf16* p = test::bf16_data(buffer);
    CHECK_THAT(test::error_message([&] { gpu::relu_forward(p, p, 0, nullptr); }),
               Contains("relu: the input is empty (count 0)"));
    CHECK_THAT(
        test::error_message([&] { gpu::relu_backward(p, static_cast<const bf16*>(nullptr), p, 8, nullptr); }),
        Contains("relu_backward: the saved tensor"));
    CHECK_THAT(test::error_message([&] { gpu::leaky_relu_forward(p, p, 8, {NAN}, nullptr); }),
               Contains("leaky_relu: negative_slope is nan; it must be a finite number"));
    CHECK_THAT(
        test::error_message([&] { gpu::add_forward(p, static_cast<const bf16*>(nullptr), p, 8, nullptr); }),
        Contains("add: a ("));
}
