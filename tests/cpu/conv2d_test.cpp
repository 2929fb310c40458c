// conv2d CPU reference: hand-computed cases, gradient checks in double, PyTorch fixtures and bad arguments.
#include <catch2/catch.hpp>

#include <string>
#include <utility>
#include <vector>

#include "cudacnn/ops/conv2d.hpp"
#include "cudacnn/ops/pool.hpp"
#include "support/compare.hpp"
#include "support/gradcheck.hpp"
#include "support/conv2d_options.hpp"

using namespace cudacnn;
using Catch::Matchers::Contains;
using cudacnn::cpu::Conv2dOptions;
using cudacnn::cpu::Conv2dPadding;
using cudacnn::cpu::Conv2dPaddingMode;

namespace {

template <class T>
HostTensor<T> tensor(const Shape& shape, std::vector<T> values) {
    return HostTensor<T>(shape, std::move(values));
}

// One configuration of every option; the gradient checks and the fixtures run the same table. It must match
// CASES in tools/fixtures/conv2d.py (the fixture's "options" tensor is checked against it). Shapes are odd
// (H 7, W 5, C 3 or 6) so that no loop bound hides behind a square or a power of two.
struct ConvCase {
    std::string name;
    Shape input;  // (N, C, H, W)
    int64_t out_channels;
    cpu::Pair2d kernel;
    Conv2dOptions options;
    bool bias;
};

const std::vector<ConvCase>& conv_cases() {
    using M = Conv2dPaddingMode;
    const auto same = Conv2dPadding::same(), valid = Conv2dPadding::valid();
    static const std::vector<ConvCase> cases = {
        {"basic", {2, 3, 7, 5}, 4, {3, 3}, test::conv2d_options(1, {1, 1}, 1, 1, M::zeros), true},
        {"stride2", {2, 3, 7, 5}, 4, {3, 3}, test::conv2d_options(2, {1, 1}, 1, 1, M::zeros), true},
        {"rect_kernel", {2, 3, 7, 5}, 4, {2, 3}, test::conv2d_options({1, 2}, {0, 1}, 1, 1, M::zeros), false},
        {"dilation2", {2, 3, 7, 5}, 4, {3, 3}, test::conv2d_options(1, {2, 1}, 2, 1, M::zeros), true},
        {"dilation_stride",
         {2, 3, 7, 5},
         4,
         {2, 3},
         test::conv2d_options({1, 2}, {1, 1}, {2, 1}, 1, M::zeros),
         true},
        {"groups3", {2, 6, 7, 5}, 9, {3, 3}, test::conv2d_options(1, {1, 1}, 1, 3, M::zeros), true},
        {"depthwise", {2, 6, 7, 5}, 6, {3, 3}, test::conv2d_options(1, {1, 1}, 1, 6, M::zeros), true},
        {"depthwise_x2", {2, 3, 7, 5}, 6, {3, 3}, test::conv2d_options(2, {1, 1}, 1, 3, M::zeros), false},
        {"same_even", {2, 3, 7, 5}, 4, {2, 4}, test::conv2d_options(1, same, 1, 1, M::zeros), true},
        {"same_dilated", {2, 3, 7, 5}, 4, {3, 2}, test::conv2d_options(1, same, {2, 3}, 1, M::zeros), true},
        {"valid", {2, 3, 7, 5}, 4, {3, 3}, test::conv2d_options(1, valid, 1, 1, M::zeros), false},
        {"reflect", {2, 3, 7, 5}, 4, {3, 3}, test::conv2d_options(1, {2, 1}, 1, 1, M::reflect), true},
        {"reflect_same_even", {2, 3, 7, 5}, 4, {4, 2}, test::conv2d_options(1, same, 1, 1, M::reflect), true},
        {"replicate", {2, 3, 7, 5}, 4, {3, 3}, test::conv2d_options(2, {1, 3}, 1, 1, M::replicate), true},
        {"circular", {2, 6, 7, 5}, 3, {3, 3}, test::conv2d_options(1, {2, 2}, {2, 1}, 3, M::circular), true},
        {"circular_full", {1, 2, 7, 5}, 2, {3, 3}, test::conv2d_options(1, {7, 5}, 1, 1, M::circular), true},
    };
    return cases;
}

Shape weight_shape(const ConvCase& c) {
    return Shape{c.out_channels, c.input[1] / c.options.groups, c.kernel.h, c.kernel.w};
}

// The encoding of tools/fixtures/conv2d.py's "options" tensor.
std::vector<int64_t> encode(const ConvCase& c) {
    const Conv2dOptions& o = c.options;
    const int64_t kind = o.padding.kind == Conv2dPadding::Kind::numbers ? 0
                         : o.padding.kind == Conv2dPadding::Kind::same  ? 1
                                                                        : 2;
    return {o.stride.h,   o.stride.w,   kind,     o.padding.size.h, o.padding.size.w,
            o.dilation.h, o.dilation.w, o.groups, c.bias ? 1 : 0,   static_cast<int64_t>(o.padding_mode)};
}

}  // namespace

// --- Tier 1: hand-computed values -----------------------------------------------------------------------

TEMPLATE_TEST_CASE("conv2d: the hand-computed cross-correlation", "[conv2d]", float, double) {
    // [[12,3,19],[25,10,1],[9,7,17]] ⋆ [[1,2],[3,4]]: e.g. 12·1 + 3·2 + 25·3 + 10·4 = 133. No kernel flip.
    const auto x = tensor<TestType>({1, 1, 3, 3}, {12, 3, 19, 25, 10, 1, 9, 7, 17});
    const auto w = tensor<TestType>({1, 1, 2, 2}, {1, 2, 3, 4});
    const auto y = cpu::conv2d(x, w, nullptr);
    CHECK(y.shape() == Shape{1, 1, 2, 2});
    CHECK(y.values() == std::vector<TestType>{133, 75, 100, 101});

    const auto b = tensor<TestType>({1}, {0.5});
    CHECK(cpu::conv2d(x, w, &b).values() == std::vector<TestType>{133.5, 75.5, 100.5, 101.5});

    // With dy all ones: dw[i][j] sums the input under kernel tap (i, j) over the four positions; dx sums the
    // weights that touch each input element (a full convolution of ones with the kernel); db counts outputs.
    const auto grads = cpu::conv2d_backward(x, w, HostTensor<TestType>({1, 1, 2, 2}, 1), true, {});
    CHECK(grads.dweight.values() == std::vector<TestType>{50, 33, 51, 35});
    CHECK(grads.dx.values() == std::vector<TestType>{1, 3, 2, 4, 10, 6, 3, 7, 4});
    CHECK(grads.dbias.values() == std::vector<TestType>{4});
    CHECK(cpu::conv2d_backward(x, w, HostTensor<TestType>({1, 1, 2, 2}, 1), false, {}).dbias.empty());
}

TEMPLATE_TEST_CASE("conv2d: padding modes on a row, by hand", "[conv2d]", float, double) {
    // [1, 2, 3] padded by one on each side, then ⋆ [1, 10, 100]; these values were confirmed with nn.Conv2d.
    const auto x = tensor<TestType>({1, 1, 1, 3}, {1, 2, 3});
    const auto w = tensor<TestType>({1, 1, 1, 3}, {1, 10, 100});
    Conv2dOptions o;
    o.padding = Conv2dPadding(0, 1);
    o.padding_mode = Conv2dPaddingMode::zeros;  // 0 1 2 3 0
    CHECK(cpu::conv2d(x, w, nullptr, o).values() == std::vector<TestType>{210, 321, 32});
    o.padding_mode = Conv2dPaddingMode::reflect;  // 2 1 2 3 2: the edge itself is not repeated
    CHECK(cpu::conv2d(x, w, nullptr, o).values() == std::vector<TestType>{212, 321, 232});
    o.padding_mode = Conv2dPaddingMode::replicate;  // 1 1 2 3 3
    CHECK(cpu::conv2d(x, w, nullptr, o).values() == std::vector<TestType>{211, 321, 332});
    o.padding_mode = Conv2dPaddingMode::circular;  // 3 1 2 3 1
    CHECK(cpu::conv2d(x, w, nullptr, o).values() == std::vector<TestType>{213, 321, 132});

    // Reflect's backward: a padded copy sends its gradient to the element it copied (dy = ones; as PyTorch).
    o.padding_mode = Conv2dPaddingMode::reflect;
    const auto g = cpu::conv2d_backward(x, w, HostTensor<TestType>({1, 1, 1, 3}, 1), false, o);
    // Padded row 2 1 2 3 2 (positions p = 0..4 read x[1], x[0], x[1], x[2], x[1]); output o reads p = o + j
    // with weight w[j]. x[0] (p 1): o0 j1, o1 j0 → 10 + 1. x[1] (p 0, 2, 4): o0 j0; o0 j2, o1 j1, o2 j0;
    // o2 j2 → 1 + 100 + 10 + 1 + 100. x[2] (p 3): o1 j2, o2 j1 → 100 + 10.
    CHECK(g.dx.values() == std::vector<TestType>{11, 212, 110});
}

TEMPLATE_TEST_CASE("conv2d: 'same' with an even kernel pads the extra on the bottom and right", "[conv2d]",
                   float, double) {
    // Kernel [1, 10] needs one padding element in total; PyTorch puts it after the input: [1 2 3 0].
    const auto row = tensor<TestType>({1, 1, 1, 3}, {1, 2, 3});
    const auto column = tensor<TestType>({1, 1, 3, 1}, {1, 2, 3});
    Conv2dOptions o;
    o.padding = Conv2dPadding::same();
    CHECK(cpu::conv2d(row, tensor<TestType>({1, 1, 1, 2}, {1, 10}), nullptr, o).values() ==
          std::vector<TestType>{21, 32, 3});
    CHECK(cpu::conv2d(column, tensor<TestType>({1, 1, 2, 1}, {1, 10}), nullptr, o).values() ==
          std::vector<TestType>{21, 32, 3});

    const auto g = cpu::conv2d_geometry({2, 3, 7, 5}, {4, 3, 2, 4}, o);
    CHECK(g.pad_top == 0);
    CHECK(g.pad_bottom == 1);
    CHECK(g.pad_left == 1);
    CHECK(g.pad_right == 2);
    CHECK(g.output_shape() == Shape{2, 4, 7, 5});
    o.dilation = {2, 3};  // totals 2·(3 − 1) = 4 and 3·(2 − 1) = 3
    const auto d = cpu::conv2d_geometry({2, 3, 7, 5}, {4, 3, 3, 2}, o);
    CHECK((d.pad_top == 2 && d.pad_bottom == 2 && d.pad_left == 1 && d.pad_right == 2));
    CHECK(d.output_shape() == Shape{2, 4, 7, 5});
}

TEMPLATE_TEST_CASE("conv2d: stride, dilation and groups by hand", "[conv2d]", float, double) {
    // Dilation 2 spreads the kernel taps two apart: y[i] = x[i] + 10·x[i + 2]; stride 2 keeps every other.
    const auto x = tensor<TestType>({1, 1, 1, 5}, {1, 2, 3, 4, 5});
    const auto w = tensor<TestType>({1, 1, 1, 2}, {1, 10});
    Conv2dOptions o;
    o.dilation = 2;
    CHECK(cpu::conv2d(x, w, nullptr, o).values() == std::vector<TestType>{31, 42, 53});
    o.stride = 2;
    CHECK(cpu::conv2d(x, w, nullptr, o).values() == std::vector<TestType>{31, 53});

    // Two groups never mix: channel 0 (ones) only reaches output 0, channel 1 (twos) only output 1.
    const auto xg = tensor<TestType>({1, 2, 1, 2}, {1, 1, 2, 2});
    const auto wg = tensor<TestType>({2, 1, 1, 1}, {3, 5});
    const auto bg = tensor<TestType>({2}, {100, 200});
    Conv2dOptions og;
    og.groups = 2;
    CHECK(cpu::conv2d(xg, wg, &bg, og).values() == std::vector<TestType>{103, 103, 210, 210});
}

TEST_CASE("conv2d: output sizes", "[conv2d]") {
    // The LeNet-style chain: 5×5 kernels with padding 2 keep 28, each 2×2 pooling (stride 2) halves:
    // (28 − 5 + 2·2)/1 + 1 = 28, floor((28 − 2)/2) + 1 = 14, (14 − 5 + 4)/1 + 1 = 14, floor((14 − 2)/2) + 1
    // = 7.
    const int64_t c1 = cpu::conv2d_output_size(28, 5, 1, 2);
    CHECK(c1 == 28);
    const int64_t p1 = cpu::pool2d_output_size(c1, 2, 2, 0, 1, false);
    CHECK(p1 == 14);
    const int64_t c2 = cpu::conv2d_output_size(p1, 5, 1, 2);
    CHECK(c2 == 14);
    CHECK(cpu::pool2d_output_size(c2, 2, 2, 0, 1, false) == 7);

    CHECK(cpu::conv2d_output_size(7, 3, 1, 0, 2) == 3);  // dilated span 5
    CHECK(cpu::conv2d_output_size(7, 3, 2, 1) == 4);     // (7 − 3 + 2) / 2 + 1
    CHECK(cpu::conv2d_output_size(6, 3, 2, 0) == 2);  // floor((6 − 3) / 2) + 1: the last column is unused
    CHECK(cpu::conv2d_output_size(3, 3, 1, 0) == 1);
    CHECK(cpu::conv2d_output_size(2, 3, 2, 0) == 0);    // floor(−1 / 2) + 1: does not fit, not a size of 1
    CHECK(cpu::conv2d_output_size(32, 3, 1, 1) == 32);  // CifarCNN's convolutions
}

TEST_CASE("conv2d and max_pool2d: 28 → 28 → 14 → 14 → 7 through the ops themselves", "[conv2d][pool]") {
    // The same chain as above, run through conv2d and max_pool2d on a real (1, 1, 28, 28) input so that the
    // ops' own geometry (not only the formulas) is checked: (1, 6, 28, 28), (1, 6, 14, 14), (1, 16, 14, 14),
    // (1, 16, 7, 7).
    Conv2dOptions pad2;
    pad2.padding = 2;
    cpu::MaxPool2dOptions pool2;
    pool2.kernel_size = 2;  // stride defaults to the kernel size, as PyTorch's
    const auto x = test::random_tensor<float>({1, 1, 28, 28}, 5);
    const auto y1 = cpu::conv2d(x, test::random_tensor<float>({6, 1, 5, 5}, 6), nullptr, pad2);
    CHECK(y1.shape() == Shape{1, 6, 28, 28});
    const auto y2 = cpu::max_pool2d(y1, pool2).output;
    CHECK(y2.shape() == Shape{1, 6, 14, 14});
    const auto y3 = cpu::conv2d(y2, test::random_tensor<float>({16, 6, 5, 5}, 7), nullptr, pad2);
    CHECK(y3.shape() == Shape{1, 16, 14, 14});
    CHECK(cpu::max_pool2d(y3, pool2).output.shape() == Shape{1, 16, 7, 7});
    CHECK(cpu::max_pool2d_output_shape(y3.shape(), pool2) == Shape{1, 16, 7, 7});
}

// --- Tier 2: gradient checks in double ------------------------------------------------------------------

namespace {

// dx, dweight and dbias of one case against central differences of Σ r ⊙ conv2d(...) for a random r.
void check_case_gradients(const ConvCase& c, uint32_t seed) {
    INFO("case " << c.name);
    const auto x = test::random_tensor<double>(c.input, seed);
    const auto w = test::random_tensor<double>(weight_shape(c), seed + 1);
    const auto b = test::random_tensor<double>({c.out_channels}, seed + 2);
    const HostTensor<double>* bias = c.bias ? &b : nullptr;
    const Shape y_shape = cpu::conv2d(x, w, bias, c.options).shape();
    const auto r = test::random_tensor<double>(y_shape, seed + 3);
    const auto grads = cpu::conv2d_backward(x, w, r, c.bias, c.options);

    const auto dx = test::check_gradient(
        [&](const HostTensor<double>& xx) {
            return test::weighted_sum(cpu::conv2d(xx, w, bias, c.options), r);
        },
        x, grads.dx);
    INFO("dx: " << dx.report);
    CHECK(dx.ok());
    CHECK(dx.skipped_kinks == 0);  // conv2d is linear in each argument: there are no kinks to skip

    const auto dw = test::check_gradient(
        [&](const HostTensor<double>& ww) {
            return test::weighted_sum(cpu::conv2d(x, ww, bias, c.options), r);
        },
        w, grads.dweight);
    INFO("dweight: " << dw.report);
    CHECK(dw.ok());
    CHECK(dw.skipped_kinks == 0);

    if (c.bias) {
        const auto db = test::check_gradient(
            [&](const HostTensor<double>& bb) {
                return test::weighted_sum(cpu::conv2d(x, w, &bb, c.options), r);
            },
            b, grads.dbias);
        INFO("dbias: " << db.report);
        CHECK(db.ok());
    } else {
        CHECK(grads.dbias.empty());
    }
}

}  // namespace

// Two test cases, zero padding and the other padding modes, so that each stays around half a second.
TEST_CASE("conv2d: gradients match finite differences: stride, dilation, groups, 'same', 'valid', bias",
          "[conv2d][gradcheck]") {
    uint32_t seed = 1;
    for (const ConvCase& c : conv_cases()) {
        if (c.options.padding_mode == Conv2dPaddingMode::zeros) check_case_gradients(c, seed);
        seed += 4;
    }
}

TEST_CASE("conv2d: gradients match finite differences: reflect, replicate and circular padding",
          "[conv2d][gradcheck]") {
    uint32_t seed = 1;
    for (const ConvCase& c : conv_cases()) {
        if (c.options.padding_mode != Conv2dPaddingMode::zeros) check_case_gradients(c, seed);
        seed += 4;
    }
}

// --- Tier 4: PyTorch fixtures (tools/fixtures/conv2d.py) --------------------------------------------------

TEST_CASE("conv2d: matches PyTorch's nn.Conv2d outputs and gradients for every option", "[conv2d][fixture]") {
    for (const ConvCase& c : conv_cases()) {
        INFO("case " << c.name);
        const SafetensorsFile f = test::load_fixture("conv2d_" + c.name);
        REQUIRE(f.get<int64_t>("options").values() == encode(c));
        REQUIRE(f.get<float>("x").shape() == c.input);
        REQUIRE(f.get<float>("weight").shape() == weight_shape(c));

        // float: PyTorch sums in float32 and we sum in double and round once; over at most 3·3·6 = 54 taps
        // (dweight: 2·7·5 = 70 positions) float32 rounding stays near 1e-7 of the tensor's largest value, so
        // 1e-5 (the project's float tolerance) has two orders of margin.
        {
            const auto x = f.get<float>("x"), w = f.get<float>("weight"), dy = f.get<float>("dy");
            const HostTensor<float> b = c.bias ? f.get<float>("bias") : HostTensor<float>();
            const auto y = cpu::conv2d(x, w, c.bias ? &b : nullptr, c.options);
            const auto g = cpu::conv2d_backward(x, w, dy, c.bias, c.options);
            CHECK(test::max_relative_error(y, f.get<float>("y.f32")) <= 1e-5);
            CHECK(test::max_relative_error(g.dx, f.get<float>("dx.f32")) <= 1e-5);
            CHECK(test::max_relative_error(g.dweight, f.get<float>("dweight.f32")) <= 1e-5);
            if (c.bias) CHECK(test::max_relative_error(g.dbias, f.get<float>("dbias.f32")) <= 1e-5);
            // The float reference rounds the exact sum once, so against PyTorch's float64 it is within half
            // an ulp of float (6e-8 of each element, so of the tensor's largest value): the spec is that
            // precise.
            CHECK(test::max_relative_error(y, f.get<double>("y.f64")) <= 1e-7);
            CHECK(test::max_relative_error(g.dx, f.get<double>("dx.f64")) <= 1e-7);
            CHECK(test::max_relative_error(g.dweight, f.get<double>("dweight.f64")) <= 1e-7);
        }
        // double: the same inputs (float32 values are exact in double); both sides sum in double in different
        // orders, which differs by a few ulps over ~70 terms (~1e-15), so 1e-12 is tight yet order-agnostic.
        {
            const auto x = f.get<double>("x"), w = f.get<double>("weight"), dy = f.get<double>("dy");
            const HostTensor<double> b = c.bias ? f.get<double>("bias") : HostTensor<double>();
            const auto y = cpu::conv2d(x, w, c.bias ? &b : nullptr, c.options);
            const auto g = cpu::conv2d_backward(x, w, dy, c.bias, c.options);
            CHECK(test::max_relative_error(y, f.get<double>("y.f64")) <= 1e-12);
            CHECK(test::max_relative_error(g.dx, f.get<double>("dx.f64")) <= 1e-12);
            CHECK(test::max_relative_error(g.dweight, f.get<double>("dweight.f64")) <= 1e-12);
            if (c.bias) CHECK(test::max_relative_error(g.dbias, f.get<double>("dbias.f64")) <= 1e-12);
        }
    }
}

// --- Bad arguments ---------------------------------------------------------------------------------------

TEST_CASE("conv2d: bad arguments raise Error naming the op and the values", "[conv2d][errors]") {
    const HostTensor<float> x({2, 3, 7, 5}, 1.0f), w({4, 3, 3, 3}, 1.0f);
    const auto conv = [](const Shape& xs, const Shape& ws, const Conv2dOptions& o = {}) {
        return cpu::conv2d(HostTensor<float>(xs, 1.0f), HostTensor<float>(ws, 1.0f), nullptr, o);
    };
    const auto with = [](auto set) {
        Conv2dOptions o;
        set(o);
        return o;
    };

    // Channels: the weight's second dimension times groups must be the input's channels.
    REQUIRE_THROWS_AS(conv({2, 3, 7, 5}, {4, 2, 3, 3}), Error);
    REQUIRE_THROWS_WITH(conv({2, 3, 7, 5}, {4, 2, 3, 3}),
                        Contains("conv2d: weight shape (4, 2, 3, 3) expects 2 input channels") &&
                            Contains("input shape (2, 3, 7, 5) has 3"));
    REQUIRE_THROWS_WITH(conv({2, 6, 7, 5}, {4, 2, 3, 3}, with([](auto& o) { o.groups = 4; })),
                        Contains("conv2d: groups 4 must divide in_channels 6 and out_channels 4"));
    REQUIRE_THROWS_WITH(conv({2, 6, 7, 5}, {6, 2, 3, 3}, with([](auto& o) { o.groups = 4; })),
                        Contains("conv2d: groups 4 must divide in_channels 6 and out_channels 6"));
    REQUIRE_THROWS_WITH(conv({2, 3, 7, 5}, {4, 3, 3, 3}, with([](auto& o) { o.groups = 0; })),
                        Contains("conv2d: groups 0 must be positive"));

    // Ranks and zero sizes.
    REQUIRE_THROWS_WITH(conv({3, 7, 5}, {4, 3, 3, 3}),
                        Contains("conv2d: input shape (3, 7, 5) must be (N, C, H, W)"));
    REQUIRE_THROWS_WITH(conv({2, 3, 7, 5}, {4, 3, 3}), Contains("conv2d: weight shape (4, 3, 3) must be"));
    REQUIRE_THROWS_WITH(conv({0, 3, 7, 5}, {4, 3, 3, 3}),
                        Contains("conv2d: input shape (0, 3, 7, 5) has a zero size"));
    REQUIRE_THROWS_WITH(conv({2, 3, 7, 5}, {4, 3, 0, 3}),
                        Contains("conv2d: weight shape (4, 3, 0, 3) has a zero size"));
    REQUIRE_THROWS_WITH(conv({2, 3, 7, 5}, {0, 3, 3, 3}),
                        Contains("conv2d: weight shape (0, 3, 3, 3) has a zero size"));

    // Zero and negative stride, dilation, padding.
    REQUIRE_THROWS_WITH(conv({2, 3, 7, 5}, {4, 3, 3, 3}, with([](auto& o) {
                                 o.stride = {1, 0};
                             })),
                        Contains("conv2d: stride (1, 0) must be positive"));
    REQUIRE_THROWS_WITH(conv({2, 3, 7, 5}, {4, 3, 3, 3}, with([](auto& o) { o.stride = -2; })),
                        Contains("conv2d: stride (-2, -2) must be positive"));
    REQUIRE_THROWS_WITH(conv({2, 3, 7, 5}, {4, 3, 3, 3}, with([](auto& o) { o.dilation = 0; })),
                        Contains("conv2d: dilation (0, 0) must be positive"));
    REQUIRE_THROWS_WITH(conv({2, 3, 7, 5}, {4, 3, 3, 3}, with([](auto& o) {
                                 o.padding = {-1, 1};
                             })),
                        Contains("conv2d: padding (-1, 1) must not be negative"));

    // 'same' only for stride 1.
    REQUIRE_THROWS_WITH(conv({2, 3, 7, 5}, {4, 3, 3, 3}, with([](auto& o) {
                                 o.padding = Conv2dPadding::same();
                                 o.stride = {1, 2};
                             })),
                        Contains("conv2d: padding='same' needs stride 1 but stride is (1, 2)"));

    // Reflect needs padding < input size, circular at most the input size; replicate takes any.
    const auto mode_pad = [](Conv2dPaddingMode mode, int64_t ph, int64_t pw) {
        Conv2dOptions o;
        o.padding_mode = mode;
        o.padding = Conv2dPadding(ph, pw);
        return o;
    };
    REQUIRE_THROWS_WITH(conv({2, 3, 7, 5}, {4, 3, 3, 3}, mode_pad(Conv2dPaddingMode::reflect, 1, 5)),
                        Contains("conv2d: padding_mode 'reflect' needs padding smaller than the input") &&
                            Contains("(top 1, bottom 1, left 5, right 5) meets input height 7 and width 5"));
    REQUIRE_THROWS_WITH(conv({2, 3, 7, 5}, {4, 3, 3, 3}, mode_pad(Conv2dPaddingMode::reflect, 7, 1)),
                        Contains("padding_mode 'reflect'"));
    REQUIRE_NOTHROW(conv({2, 3, 7, 5}, {4, 3, 3, 3}, mode_pad(Conv2dPaddingMode::reflect, 6, 4)));
    REQUIRE_THROWS_WITH(conv({2, 3, 7, 5}, {4, 3, 3, 3}, mode_pad(Conv2dPaddingMode::circular, 8, 1)),
                        Contains("conv2d: padding_mode 'circular' needs padding at most the input size") &&
                            Contains("(top 8, bottom 8, left 1, right 1) exceeds input height 7 or width 5"));
    REQUIRE_NOTHROW(conv({2, 3, 7, 5}, {4, 3, 3, 3}, mode_pad(Conv2dPaddingMode::circular, 7, 5)));
    REQUIRE_NOTHROW(conv({2, 3, 7, 5}, {4, 3, 3, 3}, mode_pad(Conv2dPaddingMode::replicate, 20, 20)));

    // A kernel that does not fit the padded input (PyTorch: "Kernel size can't be greater than actual input
    // size").
    REQUIRE_THROWS_WITH(
        conv({1, 1, 3, 3}, {1, 1, 5, 5}),
        Contains("conv2d: the kernel (5, 5) with dilation (1, 1) spans (5, 5), more than the padded "
                 "input (3, 3)"));
    REQUIRE_THROWS_WITH(conv({1, 1, 7, 5}, {1, 1, 3, 3}, with([](auto& o) {
                                 o.dilation = {1, 3};
                             })),
                        Contains("spans (3, 7), more than the padded input (7, 5)"));

    // Bias and dy shapes.
    const HostTensor<float> bad_bias({3}, 1.0f);
    REQUIRE_THROWS_WITH(cpu::conv2d(x, w, &bad_bias), Contains("conv2d: bias shape (3) must be (4)"));
    REQUIRE_THROWS_WITH(
        cpu::conv2d_backward(x, w, HostTensor<float>({2, 4, 5, 5}, 1.0f), true, {}),
        Contains("conv2d_backward: dy shape (2, 4, 5, 5) must be the output shape (2, 4, 5, 3)"));
    // The backward validates its arguments as the forward does.
    REQUIRE_THROWS_WITH(cpu::conv2d_backward(x, HostTensor<float>({4, 2, 3, 3}, 1.0f),
                                             HostTensor<float>({2, 4, 5, 3}, 1.0f), true, {}),
                        Contains("conv2d: weight shape (4, 2, 3, 3) expects 2 input channels"));

    REQUIRE_THROWS_WITH(
        cpu::conv2d_output_size(7, 3, 0, 1),
        Contains("conv2d_output_size: input 7, kernel 3, stride 0 and dilation 1 must be positive"));
    REQUIRE_THROWS_WITH(cpu::conv2d_output_size(7, 3, 1, -1), Contains("padding -1 non-negative"));
}
