// Tests of the CPU reference linear layer: hand-computed values, double gradient checks for x, W and b,
// PyTorch fixtures in float and double, the double accumulation of the float version, and bad arguments.
#include <catch2/catch.hpp>

#include <string>

#include "cudacnn/ops/linear.hpp"
#include "support/compare.hpp"
#include "support/gradcheck.hpp"

using namespace cudacnn;
using Catch::Matchers::Contains;
using cudacnn::cpu::linear;
using cudacnn::cpu::linear_backward;
using cudacnn::test::check_gradient;
using cudacnn::test::load_fixture;
using cudacnn::test::max_relative_error;
using cudacnn::test::random_tensor;
using cudacnn::test::weighted_sum;

TEST_CASE("linear: hand-computed forward and backward", "[linear]") {
    // x (2, 3), W (2, 3), b (2)
    const HostTensor<double> x(Shape{2, 3}, {1, 2, 3, -1, 0, 2});
    const HostTensor<double> w(Shape{2, 3}, {1, 0, -1, 2, 1, 1});
    const HostTensor<double> b(Shape{2}, {0.5, -1});
    // y[0] = (1 − 3 + 0.5, 2 + 2 + 3 − 1) ; y[1] = (−1 − 2 + 0.5, −2 + 0 + 2 − 1)
    CHECK(linear(x, w, &b).values() == std::vector<double>{-1.5, 6, -2.5, -1});
    CHECK(linear(x, w).values() == std::vector<double>{-2, 7, -3, 0});

    const HostTensor<double> dy(Shape{2, 2}, {1, 2, -1, 3});
    const auto g = linear_backward(x, w, dy, true);
    // dx = dy · W: row 0 = 1·(1, 0, −1) + 2·(2, 1, 1); row 1 = −1·(1, 0, −1) + 3·(2, 1, 1)
    CHECK(g.dx.values() == std::vector<double>{5, 2, 1, 5, 3, 4});
    // dW = dyᵀ · x: row 0 = 1·(1, 2, 3) − 1·(−1, 0, 2); row 1 = 2·(1, 2, 3) + 3·(−1, 0, 2)
    CHECK(g.dweight.values() == std::vector<double>{2, 2, 1, -1, 4, 12});
    CHECK(g.dbias.values() == std::vector<double>{0, 5});
    CHECK(g.dbias.shape() == Shape{2});

    const auto g_nobias = linear_backward(x, w, dy, false);
    CHECK(g_nobias.dbias.empty());
    CHECK(g_nobias.dx.values() == g.dx.values());
    CHECK(g_nobias.dweight.values() == g.dweight.values());
}

TEST_CASE("linear: the float version accumulates in double and rounds once", "[linear]") {
    // 1e8 + 1 − 1e8 is 0 when summed in float (1 is below half an ulp of 1e8) and 1 in double. Every value
    // here is exact in float, so a correctly rounded result is exactly 1.
    const HostTensor<float> x(Shape{1, 3}, {1e8f, 1.0f, -1e8f});
    const HostTensor<float> w(Shape{1, 3}, {1, 1, 1});
    CHECK(linear(x, w)[0] == 1.0f);
    const HostTensor<float> dy(Shape{3, 1}, {1e8f, 1.0f, -1e8f});
    const HostTensor<float> x3(Shape{3, 1}, {1, 1, 1});
    const auto g = linear_backward(x3, HostTensor<float>(Shape{1, 1}, {1}), dy, true);
    CHECK(g.dweight[0] == 1.0f);
    CHECK(g.dbias[0] == 1.0f);
}

TEST_CASE("linear: gradient check in double for x, weight and bias", "[linear][gradcheck]") {
    const int64_t n = 3, in = 5, out = 4;
    const auto x = random_tensor<double>(Shape{n, in}, 11);
    const auto w = random_tensor<double>(Shape{out, in}, 12);
    const auto b = random_tensor<double>(Shape{out}, 13);
    const auto r = random_tensor<double>(Shape{n, out}, 14);
    for (const bool has_bias : {true, false}) {
        INFO("bias " << has_bias);
        const HostTensor<double>* bias = has_bias ? &b : nullptr;
        const auto g = linear_backward(x, w, r, has_bias);

        auto rx = check_gradient(
            [&](const HostTensor<double>& xx) { return weighted_sum(linear(xx, w, bias), r); }, x, g.dx);
        INFO(rx.report);
        CHECK(rx.ok());
        auto rw = check_gradient(
            [&](const HostTensor<double>& ww) { return weighted_sum(linear(x, ww, bias), r); }, w, g.dweight);
        INFO(rw.report);
        CHECK(rw.ok());
        if (has_bias) {
            auto rb = check_gradient(
                [&](const HostTensor<double>& bb) { return weighted_sum(linear(x, w, &bb), r); }, b, g.dbias);
            INFO(rb.report);
            CHECK(rb.ok());
        }
    }
}

// PyTorch's F.linear and autograd on (5, 64) × (7, 64)ᵀ, with and without bias
// (tools/fixtures/linear_loss.py). Tolerances: double 1e-12 (both sides sum 64 products in double, differing
// only in order: ~64 · 1e-16); float 1e-5, the project's float bound; PyTorch's float sums err by ~1e-7
// relative at this size and ours, accumulated in double, by less, so the bound holds with margin.
template <class T>
void check_linear_fixture(const std::string& dtype, double tolerance) {
    const auto file = load_fixture("linear");
    for (const std::string bias_name : {"bias", "nobias"}) {
        const std::string key = dtype + "." + bias_name + ".";
        INFO(key);
        const bool has_bias = bias_name == "bias";
        const auto x = file.get<T>(key + "x");
        const auto w = file.get<T>(key + "weight");
        const HostTensor<T> b = has_bias ? file.get<T>(key + "bias") : HostTensor<T>();
        const auto y = linear(x, w, has_bias ? &b : nullptr);
        CHECK(max_relative_error(y, file.get<T>(key + "y")) <= tolerance);
        const auto g = linear_backward(x, w, file.get<T>(key + "dy"), has_bias);
        CHECK(max_relative_error(g.dx, file.get<T>(key + "dx")) <= tolerance);
        CHECK(max_relative_error(g.dweight, file.get<T>(key + "dweight")) <= tolerance);
        if (has_bias) CHECK(max_relative_error(g.dbias, file.get<T>(key + "dbias")) <= tolerance);
    }
}

TEST_CASE("linear: matches PyTorch fixtures", "[linear][fixture]") {
    check_linear_fixture<double>("f64", 1e-12);
    check_linear_fixture<float>("f32", 1e-5);
}

TEST_CASE("linear: bad arguments name the op and the values", "[linear][errors]") {
    const HostTensor<float> x(Shape{2, 3}, 1.0f), w(Shape{4, 3}, 1.0f), b(Shape{4}, 1.0f);
    CHECK_THROWS_WITH(linear(HostTensor<float>(Shape{6}, 1.0f), w),
                      Contains("linear: x has shape (6)") && Contains("(N, in_features)"));
    CHECK_THROWS_WITH(linear(x, HostTensor<float>(Shape{12}, 1.0f)),
                      Contains("linear: weight has shape (12)"));
    CHECK_THROWS_WITH(linear(x, HostTensor<float>(Shape{4, 5}, 1.0f)),
                      Contains("linear: x has shape (2, 3) but weight (4, 5) expects in_features 5"));
    const HostTensor<float> b5(Shape{5}, 1.0f);
    CHECK_THROWS_WITH(linear(x, w, &b5), Contains("linear: bias has shape (5)") && Contains("(4)"));
    CHECK_THROWS_WITH(linear(HostTensor<float>(Shape{0, 3}), w),
                      Contains("linear: x has shape (0, 3)") && Contains("positive"));
    CHECK_THROWS_WITH(linear(HostTensor<float>(Shape{2, 0}), HostTensor<float>(Shape{4, 0})),
                      Contains("linear: x has shape (2, 0)") && Contains("positive"));
    CHECK_THROWS_WITH(linear(x, HostTensor<float>(Shape{0, 3})),
                      Contains("linear: weight has shape (0, 3)") && Contains("positive"));
    CHECK_THROWS_WITH(linear_backward(x, w, HostTensor<float>(Shape{2, 3}, 1.0f), true),
                      Contains("linear_backward: dy has shape (2, 3)") && Contains("(2, 4)"));
    CHECK_NOTHROW(linear_backward(x, w, HostTensor<float>(Shape{2, 4}, 1.0f), true));
}
