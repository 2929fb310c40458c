// Activation kernels against the CPU reference: every activation and option, forward and backward, on a
// CifarCNN-like tensor and odd sizes, aligned, offset by one float (float4 path with a scalar head) and with
// pointers of different alignment (scalar path); in-place relu; bad arguments.
#include <catch2/catch.hpp>

#include <cmath>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "cuda/activation.hpp"
#include "cudacnn/ops/activation.hpp"
#include "support/compare.hpp"
#include "support/errors.hpp"
#include "support/parity.hpp"

using namespace cudacnn;
using Catch::Matchers::Contains;
using test::max_relative_error;

namespace {

// Tolerances (max relative error over the tensor; the reference computes in double and rounds once).
// relu is a select: exact.
constexpr double kExactTolerance = 0.0;
// leaky_relu: the slope rounded to float and the product rounded: at most 2 · 2^-24 relative per element.
constexpr double kTwoRoundingsTolerance = 2.0 / 16777216.0;
// gelu, sigmoid, tanh: CUDA's expf / tanhf (2 ulp) and normcdff (5 ulp) plus up to five float roundings in
// the formulas: about 10 ulp of an element; the gelu derivative cdf + x · pdf cancels partly for x < 0,
// which can triple that relative to the element but not relative to the tensor's largest value. 32 ulp
// (2^-19) leaves margin for both.
constexpr double kTranscendentalTolerance = 32.0 / 16777216.0;

using Forward = std::function<void(const float* x, float* y, int64_t count)>;
using Backward = std::function<void(const float* saved, const float* dy, float* dx, int64_t count)>;

struct Case {
    std::string name;
    bool backward_from_output;  // the reference saves y (relu, sigmoid, tanh) rather than x
    double tolerance;
    std::function<HostTensor<float>(const HostTensor<float>&)> reference_forward;
    std::function<HostTensor<float>(const HostTensor<float>& saved, const HostTensor<float>& dy)>
        reference_backward;
    Forward forward;
    Backward backward;
};

std::vector<Case> all_cases() {
    std::vector<Case> cases;
    cases.push_back({"relu", true, kExactTolerance, [](const auto& x) { return cpu::relu(x); },
                     [](const auto& y, const auto& dy) { return cpu::relu_backward(y, dy).dx; },
                     [](const float* x, float* y, int64_t n) { gpu::relu_forward(x, y, n, nullptr); },
                     [](const float* y, const float* dy, float* dx, int64_t n) {
                         gpu::relu_backward(y, dy, dx, n, nullptr);
                     }});
    for (double slope : {0.01, -0.5, 1.5}) {
        const cpu::LeakyReluOptions o{slope};
        cases.push_back(
            {"leaky_relu " + std::to_string(slope), false, kTwoRoundingsTolerance,
             [o](const auto& x) { return cpu::leaky_relu(x, o); },
             [o](const auto& x, const auto& dy) { return cpu::leaky_relu_backward(x, dy, o).dx; },
             [o](const float* x, float* y, int64_t n) { gpu::leaky_relu_forward(x, y, n, o, nullptr); },
             [o](const float* x, const float* dy, float* dx, int64_t n) {
                 gpu::leaky_relu_backward(x, dy, dx, n, o, nullptr);
             }});
    }
    for (auto approximate : {cpu::GeluApproximate::none, cpu::GeluApproximate::tanh}) {
        const cpu::GeluOptions o{approximate};
        cases.push_back({std::string("gelu ") + cpu::gelu_approximate_name(approximate), false,
                         kTranscendentalTolerance, [o](const auto& x) { return cpu::gelu(x, o); },
                         [o](const auto& x, const auto& dy) { return cpu::gelu_backward(x, dy, o).dx; },
                         [o](const float* x, float* y, int64_t n) { gpu::gelu_forward(x, y, n, o, nullptr); },
                         [o](const float* x, const float* dy, float* dx, int64_t n) {
                             gpu::gelu_backward(x, dy, dx, n, o, nullptr);
                         }});
    }
    cases.push_back({"sigmoid", true, kTranscendentalTolerance, [](const auto& x) { return cpu::sigmoid(x); },
                     [](const auto& y, const auto& dy) { return cpu::sigmoid_backward(y, dy).dx; },
                     [](const float* x, float* y, int64_t n) { gpu::sigmoid_forward(x, y, n, nullptr); },
                     [](const float* y, const float* dy, float* dx, int64_t n) {
                         gpu::sigmoid_backward(y, dy, dx, n, nullptr);
                     }});
    cases.push_back({"tanh", true, kTranscendentalTolerance, [](const auto& x) { return cpu::tanh(x); },
                     [](const auto& y, const auto& dy) { return cpu::tanh_backward(y, dy).dx; },
                     [](const float* x, float* y, int64_t n) { gpu::tanh_forward(x, y, n, nullptr); },
                     [](const float* y, const float* dy, float* dx, int64_t n) {
                         gpu::tanh_backward(y, dy, dx, n, nullptr);
                     }});
    return cases;
}

// Every call here runs on the legacy default stream, which orders the copies, the poison fills, the kernels
// and the downloads.
using OffsetBuffer = test::OffsetBuffer<float>;
using test::to_device_at;

// One case on one shape: forward and backward with inputs at in_offset and outputs at out_offset.
void check_case(const Case& c, const Shape& shape, int64_t in_offset, int64_t out_offset, uint32_t seed) {
    CAPTURE(c.name, shape.to_string(), in_offset, out_offset);
    const int64_t n = shape.numel();
    // Wide enough for the tails of gelu, sigmoid and tanh (saturation at ±4 and beyond).
    const HostTensor<float> x = test::random_tensor<float>(shape, seed, -6.0, 6.0);
    const HostTensor<float> dy = test::random_tensor<float>(shape, seed + 1);
    const HostTensor<float> y_ref = c.reference_forward(x);

    const OffsetBuffer x_d = to_device_at(x, in_offset);
    const OffsetBuffer y_d = test::poisoned_at<float>(n, out_offset);
    c.forward(x_d.data(), y_d.data(), n);
    CHECK(max_relative_error(test::to_host(y_d, shape), y_ref) <= c.tolerance);

    const HostTensor<float>& saved = c.backward_from_output ? y_ref : x;
    const OffsetBuffer saved_d = to_device_at(saved, in_offset);
    const OffsetBuffer dy_d = to_device_at(dy, in_offset);
    const OffsetBuffer dx_d = test::poisoned_at<float>(n, out_offset);
    c.backward(saved_d.data(), dy_d.data(), dx_d.data(), n);
    CHECK(max_relative_error(test::to_host(dx_d, shape), c.reference_backward(saved, dy)) <= c.tolerance);
}

}  // namespace

TEST_CASE("activation kernels match the reference, forward and backward, for every option",
          "[parity][activation]") {
    const std::vector<Case> cases = all_cases();
    for (const Case& c : cases) {
        // A CifarCNN activation, batch scaled down: the float4 path.
        check_case(c, Shape{4, 32, 16, 16}, 0, 0, 11);
        // 525: an odd size, misaligned by a float: scalar head, float4 body, scalar tail.
        check_case(c, Shape{5, 3, 7, 5}, 1, 1, 12);
        check_case(c, Shape{1, 3, 7, 5}, 0, 1, 13);  // different alignments: the scalar path
        check_case(c, Shape{3}, 0, 0, 14);           // fewer than four elements: no float4 at all
    }
}

TEST_CASE("activation kernels: more elements than one wave of threads, so grid-stride loops go round",
          "[parity][activation]") {
    const Case relu = all_cases()[0];
    // CifarCNN's largest activation (conv 32→64 at 32×32), batch 17: 278528 float4s for 270336 threads.
    check_case(relu, Shape{17, 64, 32, 32}, 1, 1, 16);
    check_case(relu, Shape{5, 64, 32, 32}, 0, 1, 17);  // the scalar path: 327680 floats
}

TEST_CASE("relu works in place (y == x), aligned and misaligned", "[parity][activation]") {
    for (int64_t offset : {0, 1}) {
        CAPTURE(offset);
        const Shape shape{5, 3, 7, 5};
        const HostTensor<float> x = test::random_tensor<float>(shape, 21);
        const OffsetBuffer buffer = to_device_at(x, offset);
        gpu::relu_forward(buffer.data(), buffer.data(), shape.numel(), nullptr);
        const HostTensor<float> y = test::to_host(buffer, shape);
        CHECK(max_relative_error(y, cpu::relu(x)) == 0.0);
        // The backward from y, again in place (dx == dy): y has exact zeros, where the gradient is 0.
        const HostTensor<float> dy = test::random_tensor<float>(shape, 22);
        const OffsetBuffer y_d = to_device_at(y, offset), g = to_device_at(dy, offset);
        gpu::relu_backward(y_d.data(), g.data(), g.data(), shape.numel(), nullptr);
        CHECK(max_relative_error(test::to_host(g, shape), cpu::relu_backward(y, dy).dx) == 0.0);
    }
}

TEST_CASE("activation kernels propagate NaN as the reference does", "[parity][activation]") {
    const Shape shape{9};
    HostTensor<float> x = test::random_tensor<float>(shape, 31, -3.0, 3.0);
    x[2] = NAN;
    x[7] = NAN;
    for (const Case& c : all_cases()) {
        CAPTURE(c.name);
        const DeviceBuffer x_d = test::to_device(x);
        DeviceBuffer y_d = test::poisoned<float>(shape.numel());
        c.forward(x_d.data_as<float>(), y_d.data_as<float>(), shape.numel());
        const HostTensor<float> y = test::to_host<float>(y_d, shape);
        const HostTensor<float> expected = c.reference_forward(x);
        for (int64_t i = 0; i < shape.numel(); ++i) CHECK(std::isnan(y[i]) == std::isnan(expected[i]));
    }
}

TEST_CASE("activation launchers reject bad arguments with the op and the value", "[parity][activation]") {
    DeviceBuffer buffer = test::poisoned<float>(8);
    float* p = buffer.data_as<float>();
    CHECK_THAT(test::error_message([&] { gpu::relu_forward(p, p, 0, nullptr); }),
               Contains("relu: the input is empty (count 0)"));
    CHECK_THAT(test::error_message([&] { gpu::sigmoid_forward(nullptr, p, 8, nullptr); }),
               Contains("sigmoid: x (0x0) and y"));
    CHECK_THAT(test::error_message([&] { gpu::tanh_backward(p, nullptr, p, 8, nullptr); }),
               Contains("tanh_backward: the saved tensor"));
    CHECK_THAT(test::error_message([&] { gpu::leaky_relu_forward(p, p, 8, {INFINITY}, nullptr); }),
               Contains("leaky_relu: negative_slope is inf; it must be a finite number"));
    CHECK_THAT(test::error_message(
                   [&] { gpu::gelu_backward(p, p, p, 8, {static_cast<cpu::GeluApproximate>(7)}, nullptr); }),
               Contains("gelu_backward: approximate is 7"));
}
