// Pooling reference (src/cpu/pool.cpp): hand-computed cases, gradient checks in double for every op and
// option, PyTorch fixtures (tools/fixtures/pool.py) and bad arguments.
#include <catch2/catch.hpp>

#include <cmath>
#include <functional>
#include <string>
#include <vector>

#include "cudacnn/ops/pool.hpp"
#include "support/compare.hpp"
#include "support/errors.hpp"
#include "support/gradcheck.hpp"
#include "support/pool_options.hpp"

using namespace cudacnn;
using namespace cudacnn::cpu;
using cudacnn::test::avg_options;
using cudacnn::test::error_message;
using cudacnn::test::lp_options;
using cudacnn::test::max_options;
using Catch::Contains;

namespace {

// Both sides compute in double; they differ only in summation order and libm rounding (~1e-15), so 1e-12
// leaves three orders of magnitude of margin while still catching any wrong window or divisor.
constexpr double kDoubleTolerance = 1e-12;
// The float bound. Our float path accumulates in double and rounds once; PyTorch's rounds more
// often, so they differ by a few float ulps (~1e-7 relative), far inside it.
constexpr double kFloatTolerance = 1e-5;

// The cases of tools/fixtures/pool.py (same names, shapes and options), also used for gradient checks.
struct MaxCase {
    std::string name;
    Shape shape;
    MaxPool2dOptions options;
};
const std::vector<MaxCase> kMaxCases = {
    {"k2", {2, 3, 8, 8}, max_options(2)},
    {"k3s2p1", {2, 2, 7, 9}, max_options(3, 2, 1)},
    {"k3s2p1_ceil", {2, 2, 8, 10}, max_options(3, 2, 1, 1, true)},
    {"k2s2p1_ceil_drop", {1, 2, 5, 5}, max_options(2, 2, 1, 1, true)},
    {"k3s1p1d2", {2, 2, 7, 8}, max_options(3, 1, 1, 2)},
    {"k23s12p11", {1, 3, 6, 7}, max_options({2, 3}, Pair2d{1, 2}, {1, 1})},
    {"ties_k3s1p1", {2, 2, 6, 7}, max_options(3, 1, 1)},
};

struct AvgCase {
    std::string name;
    Shape shape;
    AvgPool2dOptions options;
};
const std::vector<AvgCase> kAvgCases = {
    {"k2", {2, 3, 8, 8}, avg_options(2)},
    {"k3s2p1", {2, 2, 7, 9}, avg_options(3, 2, 1)},
    {"k3s2p1_nopad", {2, 2, 7, 9}, avg_options(3, 2, 1, false, false)},
    {"k3s2p1_ceil", {2, 2, 8, 10}, avg_options(3, 2, 1, true)},
    {"k3s2p1_ceil_nopad", {2, 2, 8, 10}, avg_options(3, 2, 1, true, false)},
    {"k3s2_ceil", {1, 2, 6, 6}, avg_options(3, 2, 0, true)},
    {"k3s1p1_div5", {1, 2, 5, 6}, avg_options(3, 1, 1, false, true, 5)},
    {"k23s12p11", {1, 3, 6, 7}, avg_options({2, 3}, Pair2d{1, 2}, {1, 1})},
};

struct LpCase {
    std::string name;
    Shape shape;
    LpPool2dOptions options;
    bool positive;  // inputs in [0.1, 1): x^p and the root are defined everywhere
};
const std::vector<LpCase> kLpCases = {
    {"p2_k2", {2, 3, 6, 8}, lp_options(2.0, 2), false},
    {"p1_k3s2", {2, 2, 7, 7}, lp_options(1.0, 3, 2), false},
    {"p3_k3s2_ceil", {2, 2, 8, 8}, lp_options(3.0, 3, 2, true), true},
    {"p3_signed_k2", {2, 2, 6, 6}, lp_options(3.0, 2), false},  // NaN where a window's sum is negative
    {"p1_5_k23s1", {1, 3, 5, 6}, lp_options(1.5, {2, 3}, 1), true},
};

struct AdaptiveCase {
    std::string name;
    Shape shape;
    Pair2d output_size;
};
const std::vector<AdaptiveCase> kAdaptiveCases = {
    {"5x7_to_3x4", {2, 3, 5, 7}, {3, 4}},
    {"4x4_to_2x2", {2, 2, 4, 4}, {2, 2}},
    {"3x7_to_4x3", {1, 2, 3, 7}, {4, 3}},  // more output rows than input rows: windows overlap
    {"global", {2, 3, 5, 7}, {1, 1}},
};

int64_t count_nans(const HostTensor<double>& t) {
    int64_t n = 0;
    for (double v : t.values()) n += std::isnan(v) ? 1 : 0;
    return n;
}

// Gradient check of dx for an op given as forward(x) and backward(x, dy) → dx.
void check_input_gradient(const std::function<HostTensor<double>(const HostTensor<double>&)>& forward,
                          const std::function<HostTensor<double>(const HostTensor<double>&, const HostTensor<double>&)>&
                              backward,
                          const HostTensor<double>& x, uint32_t seed) {
    const HostTensor<double> y = forward(x);
    const HostTensor<double> r = test::random_tensor<double>(y.shape(), seed + 1);
    const HostTensor<double> analytic = backward(x, r);
    const auto result =
        test::check_gradient([&](const HostTensor<double>& xx) { return test::weighted_sum(forward(xx), r); }, x,
                             analytic);
    INFO(result.report);
    REQUIRE(result.ok());
}

}  // namespace

// ---------------------------------------------------------------------------------------------------------
// Hand-computed

TEST_CASE("pool2d_output_size follows PyTorch, including the ceil-mode rule", "[pool]") {
    CHECK(pool2d_output_size(32, 2, 2, 0, 1, false) == 16);  // CifarCNN's MaxPool(2, 2)
    CHECK(pool2d_output_size(7, 3, 2, 1, 1, false) == 4);    // (7 + 2 − 2 − 1) / 2 + 1
    CHECK(pool2d_output_size(6, 3, 2, 0, 1, false) == 2);
    CHECK(pool2d_output_size(6, 3, 2, 0, 1, true) == 3);  // the last window starts at 4, inside the input
    // ceil would give 4, but the 4th window would start at 6 − 1 = 5 ≥ 5: entirely in the right padding.
    CHECK(pool2d_output_size(5, 2, 2, 1, 1, true) == 3);
    CHECK(pool2d_output_size(7, 3, 1, 1, 2, false) == 5);  // dilated: effective kernel 5
    CHECK(pool2d_output_size(2, 3, 1, 0, 1, false) == 0);  // does not fit
}

TEST_CASE("max_pool2d by hand: ties go to the first maximum, and so does the gradient", "[pool]") {
    // Both 2x2 windows (stride 1) hold three 3s; the first in row-major order is (0, 1) = index 1.
    const HostTensor<double> x(Shape{1, 1, 2, 3}, {1, 3, 3,  //
                                                   3, 2, 0});
    const auto result = max_pool2d(x, max_options(2, 1));
    CHECK(result.output.shape() == Shape{1, 1, 1, 2});
    CHECK(result.output.values() == std::vector<double>{3, 3});
    CHECK(result.indices.values() == std::vector<int64_t>{1, 1});
    const HostTensor<double> dy(Shape{1, 1, 1, 2}, {0.5, 0.25});
    const auto grads = max_pool2d_backward(x.shape(), result.indices, dy);
    CHECK(grads.dx.values() == std::vector<double>{0, 0.75, 0, 0, 0, 0});
}

TEST_CASE("max_pool2d by hand: k2 s2, padding is -inf, dilation", "[pool]") {
    const HostTensor<float> x(Shape{1, 1, 4, 4}, {12, 3, 19, 4,  //
                                                  25, 10, 1, 7,  //
                                                  9, 7, 17, -2,  //
                                                  -5, 8, 6, 11});
    const auto k2 = max_pool2d(x, max_options(2));
    CHECK(k2.output.values() == std::vector<float>{25, 19, 9, 17});
    CHECK(k2.indices.values() == std::vector<int64_t>{4, 2, 8, 10});

    // All-negative input with padding 1: the padding never wins, since it is −inf rather than 0.
    const HostTensor<float> negative(Shape{1, 1, 2, 2}, {-4, -3, -2, -1});
    const auto padded = max_pool2d(negative, max_options(2, 1, 1));  // (1, 1, 3, 3)
    CHECK(padded.output.values() == std::vector<float>{-4, -3, -3, -2, -1, -1, -2, -1, -1});

    // Dilation 2 on a 3x3 kernel reads the corners and edge midpoints of a 5x5 square.
    HostTensor<float> grid(Shape{1, 1, 5, 5});
    for (int64_t i = 0; i < 25; ++i) grid[i] = static_cast<float>((i * 7) % 25);
    const auto dilated = max_pool2d(grid, max_options(3, 1, 0, 2));
    REQUIRE(dilated.output.shape() == Shape{1, 1, 1, 1});
    float expected = -1;
    for (int64_t h = 0; h < 5; h += 2) {
        for (int64_t w = 0; w < 5; w += 2) expected = std::max(expected, grid[h * 5 + w]);
    }
    CHECK(dilated.output[0] == expected);
}

TEST_CASE("max_pool2d propagates NaN as PyTorch does", "[pool]") {
    const HostTensor<double> x(Shape{1, 1, 1, 4}, {1, NAN, 5, 2});
    const auto result = max_pool2d(x, max_options({1, 4}));
    CHECK(std::isnan(result.output[0]));
    CHECK(result.indices[0] == 1);
}

TEST_CASE("avg_pool2d by hand: count_include_pad, divisor_override, ceil-mode clipping", "[pool]") {
    const HostTensor<double> x(Shape{1, 1, 2, 2}, {1, 2, 3, 4});
    // A 3x3 window with padding 1 around a 2x2 input always holds all four values (sum 10).
    CHECK(avg_pool2d(x, avg_options(3, 1, 1)).values() == std::vector<double>(4, 10.0 / 9));
    CHECK(avg_pool2d(x, avg_options(3, 1, 1, false, false)).values() == std::vector<double>(4, 2.5));
    CHECK(avg_pool2d(x, avg_options(3, 1, 1, false, true, 2)).values() == std::vector<double>(4, 5.0));

    // Width 3, kernel (1, 2), stride 2, ceil mode: the second window [2, 4) is clipped to [2, 3), and the
    // divisor is the clipped area 1 even with count_include_pad (the part past the input counts nowhere).
    const HostTensor<double> row(Shape{1, 1, 1, 3}, {1, 2, 3});
    CHECK(avg_pool2d(row, avg_options({1, 2}, 2, 0, true)).values() == std::vector<double>{1.5, 3});

    // Backward spreads dy / divisor over the window: here two windows share the middle cell.
    const auto grads = avg_pool2d_backward(row.shape(), HostTensor<double>(Shape{1, 1, 1, 2}, {1, 1}),
                                           avg_options({1, 2}, 1));
    CHECK(grads.dx.values() == std::vector<double>{0.5, 1, 0.5});
}

TEST_CASE("lp_pool2d by hand, including PyTorch's scaling of clipped ceil-mode windows", "[pool]") {
    const HostTensor<double> x(Shape{1, 1, 2, 2}, {1, 2, 2, 4});
    CHECK(lp_pool2d(x, lp_options(2.0, 2))[0] == Approx(5.0));  // sqrt(1 + 4 + 4 + 16)
    CHECK(lp_pool2d(x, lp_options(1.0, 2))[0] == Approx(9.0));
    // The window [2] of a ceil-mode pass is averaged over 1 cell and scaled by the full area 2:
    // sqrt(2 · 2²), not 2.
    const HostTensor<double> row(Shape{1, 1, 1, 3}, {3, 4, 2});
    const auto y = lp_pool2d(row, lp_options(2.0, {1, 2}, 2, true));
    CHECK(y[0] == Approx(5.0));
    CHECK(y[1] == Approx(std::sqrt(8.0)));
    // A negative sum under an odd p: NaN, as torch.pow gives.
    const HostTensor<double> negative(Shape{1, 1, 1, 2}, {-2, 1});
    CHECK(std::isnan(lp_pool2d(negative, lp_options(3.0, {1, 2}))[0]));
    // A window of zeros has no gradient (PyTorch's relu(|s|) at 0).
    const HostTensor<double> zeros(Shape{1, 1, 1, 2}, {0, 0});
    const auto grads = lp_pool2d_backward(zeros, HostTensor<double>(Shape{1, 1, 1, 1}, {1}), lp_options(2.0, {1, 2}));
    CHECK(grads.dx.values() == std::vector<double>{0, 0});
}

TEST_CASE("adaptive and global average pooling by hand", "[pool]") {
    // Windows of 5 into 3: [0, 2), [1, 4), [3, 5).
    const HostTensor<double> x(Shape{1, 1, 1, 5}, {1, 2, 3, 4, 5});
    const auto y = adaptive_avg_pool2d(x, {1, 3});
    CHECK(y.values() == std::vector<double>{1.5, 3, 4.5});
    const auto grads = adaptive_avg_pool2d_backward(x.shape(), HostTensor<double>(Shape{1, 1, 1, 3}, {6, 3, 2}));
    CHECK(grads.dx.values() == std::vector<double>{3, 3 + 1, 1, 1 + 1, 1});

    const HostTensor<float> planes(Shape{1, 2, 1, 2}, {1, 2, 10, 20});
    CHECK(global_avg_pool2d(planes).values() == std::vector<float>{1.5f, 15});
    CHECK(global_avg_pool2d(planes).shape() == Shape{1, 2, 1, 1});
    const auto global_grads = global_avg_pool2d_backward(planes.shape(), HostTensor<float>(Shape{1, 2, 1, 1}, {1, 4}));
    CHECK(global_grads.dx.values() == std::vector<float>{0.5f, 0.5f, 2, 2});
}

// ---------------------------------------------------------------------------------------------------------
// Gradient checks (double; max ties are kinks the checker skips, and random inputs make them rare)

TEST_CASE("max_pool2d gradient check for every option", "[pool][gradcheck]") {
    for (size_t i = 0; i < kMaxCases.size(); ++i) {
        const MaxCase& c = kMaxCases[i];
        const uint32_t seed = 100 + static_cast<uint32_t>(10 * i);
        SECTION(c.name) {
            const auto x = test::random_tensor<double>(c.shape, seed);
            check_input_gradient([&](const HostTensor<double>& xx) { return max_pool2d(xx, c.options).output; },
                                 [&](const HostTensor<double>& xx, const HostTensor<double>& dy) {
                                     return max_pool2d_backward(xx.shape(), max_pool2d(xx, c.options).indices, dy).dx;
                                 },
                                 x, seed);
        }
    }
}

TEST_CASE("avg_pool2d gradient check for every option", "[pool][gradcheck]") {
    for (size_t i = 0; i < kAvgCases.size(); ++i) {
        const AvgCase& c = kAvgCases[i];
        const uint32_t seed = 200 + static_cast<uint32_t>(10 * i);
        SECTION(c.name) {
            const auto x = test::random_tensor<double>(c.shape, seed);
            check_input_gradient([&](const HostTensor<double>& xx) { return avg_pool2d(xx, c.options); },
                                 [&](const HostTensor<double>& xx, const HostTensor<double>& dy) {
                                     return avg_pool2d_backward(xx.shape(), dy, c.options).dx;
                                 },
                                 x, seed);
        }
    }
}

TEST_CASE("lp_pool2d gradient check for every option", "[pool][gradcheck]") {
    for (size_t i = 0; i < kLpCases.size(); ++i) {
        const LpCase& c = kLpCases[i];
        const uint32_t seed = 300 + static_cast<uint32_t>(10 * i);
        // Signed inputs under an odd p > 1 give NaN (no gradient to check); the others are smooth.
        const bool positive = c.positive || c.options.norm_type == 3.0;
        SECTION(c.name) {
            const auto x = test::random_tensor<double>(c.shape, seed, positive ? 0.1 : -1.0, 1.0);
            check_input_gradient([&](const HostTensor<double>& xx) { return lp_pool2d(xx, c.options); },
                                 [&](const HostTensor<double>& xx, const HostTensor<double>& dy) {
                                     return lp_pool2d_backward(xx, dy, c.options).dx;
                                 },
                                 x, seed);
        }
    }
}

TEST_CASE("adaptive_avg_pool2d and global_avg_pool2d gradient checks", "[pool][gradcheck]") {
    for (size_t i = 0; i < kAdaptiveCases.size(); ++i) {
        const AdaptiveCase& c = kAdaptiveCases[i];
        const uint32_t seed = 400 + static_cast<uint32_t>(10 * i);
        SECTION(c.name) {
            const auto x = test::random_tensor<double>(c.shape, seed);
            check_input_gradient([&](const HostTensor<double>& xx) { return adaptive_avg_pool2d(xx, c.output_size); },
                                 [&](const HostTensor<double>& xx, const HostTensor<double>& dy) {
                                     return adaptive_avg_pool2d_backward(xx.shape(), dy).dx;
                                 },
                                 x, seed);
        }
    }
    SECTION("global") {
        const auto x = test::random_tensor<double>(Shape{2, 3, 5, 7}, 450);
        check_input_gradient([](const HostTensor<double>& xx) { return global_avg_pool2d(xx); },
                             [](const HostTensor<double>& xx, const HostTensor<double>& dy) {
                                 return global_avg_pool2d_backward(xx.shape(), dy).dx;
                             },
                             x, 450);
    }
}

// ---------------------------------------------------------------------------------------------------------
// PyTorch fixtures

TEST_CASE("max_pool2d matches PyTorch (tests/fixtures/pool_max2d)", "[pool][fixture]") {
    const SafetensorsFile file = test::load_fixture("pool_max2d");
    for (const MaxCase& c : kMaxCases) {
        SECTION(c.name) {
            const std::string p = c.name + ".";
            const auto x = file.get<double>(p + "x");
            const auto dy = file.get<double>(p + "dy");
            REQUIRE(x.shape() == c.shape);

            const auto result = max_pool2d(x, c.options);
            CHECK(result.indices.values() == file.get<int64_t>(p + "indices").values());
            // Selection and (in output order, as PyTorch) summation of the same values: exact.
            CHECK(test::max_relative_error(result.output, file.get<double>(p + "y")) == 0.0);
            const auto dx = max_pool2d_backward(x.shape(), result.indices, dy).dx;
            CHECK(test::max_relative_error(dx, file.get<double>(p + "dx")) <= kDoubleTolerance);

            const auto result_f = max_pool2d(x.cast<float>(), c.options);
            CHECK(result_f.indices.values() == file.get<int64_t>(p + "indices_f32").values());
            CHECK(test::max_relative_error(result_f.output, file.get<float>(p + "y_f32")) == 0.0);
            const auto dx_f = max_pool2d_backward(x.shape(), result_f.indices, dy.cast<float>()).dx;
            CHECK(test::max_relative_error(dx_f, file.get<float>(p + "dx_f32")) <= kFloatTolerance);
        }
    }
}

TEST_CASE("avg_pool2d matches PyTorch (tests/fixtures/pool_avg2d)", "[pool][fixture]") {
    const SafetensorsFile file = test::load_fixture("pool_avg2d");
    for (const AvgCase& c : kAvgCases) {
        SECTION(c.name) {
            const std::string p = c.name + ".";
            const auto x = file.get<double>(p + "x");
            const auto dy = file.get<double>(p + "dy");
            REQUIRE(x.shape() == c.shape);
            CHECK(test::max_relative_error(avg_pool2d(x, c.options), file.get<double>(p + "y")) <= kDoubleTolerance);
            CHECK(test::max_relative_error(avg_pool2d_backward(x.shape(), dy, c.options).dx,
                                           file.get<double>(p + "dx")) <= kDoubleTolerance);
            CHECK(test::max_relative_error(avg_pool2d(x.cast<float>(), c.options), file.get<float>(p + "y_f32")) <=
                  kFloatTolerance);
            CHECK(test::max_relative_error(avg_pool2d_backward(x.shape(), dy.cast<float>(), c.options).dx,
                                           file.get<float>(p + "dx_f32")) <= kFloatTolerance);
        }
    }
}

TEST_CASE("lp_pool2d matches PyTorch, NaNs included (tests/fixtures/pool_lp2d)", "[pool][fixture]") {
    const SafetensorsFile file = test::load_fixture("pool_lp2d");
    for (const LpCase& c : kLpCases) {
        SECTION(c.name) {
            const std::string p = c.name + ".";
            const auto x = file.get<double>(p + "x");
            const auto dy = file.get<double>(p + "dy");
            REQUIRE(x.shape() == c.shape);
            const auto expected_y = file.get<double>(p + "y");
            if (c.name == "p3_signed_k2") CHECK(count_nans(expected_y) > 0);  // the case must exercise NaN
            // max_relative_error fails on any NaN in one tensor and not the other.
            CHECK(test::max_relative_error(lp_pool2d(x, c.options), expected_y) <= kDoubleTolerance);
            CHECK(test::max_relative_error(lp_pool2d_backward(x, dy, c.options).dx, file.get<double>(p + "dx")) <=
                  kDoubleTolerance);
            const auto xf = x.cast<float>();
            CHECK(test::max_relative_error(lp_pool2d(xf, c.options), file.get<float>(p + "y_f32")) <= kFloatTolerance);
            CHECK(test::max_relative_error(lp_pool2d_backward(xf, dy.cast<float>(), c.options).dx,
                                           file.get<float>(p + "dx_f32")) <= kFloatTolerance);
        }
    }
}

TEST_CASE("adaptive_avg_pool2d and global_avg_pool2d match PyTorch (tests/fixtures/pool_adaptive_avg2d)",
          "[pool][fixture]") {
    const SafetensorsFile file = test::load_fixture("pool_adaptive_avg2d");
    for (const AdaptiveCase& c : kAdaptiveCases) {
        SECTION(c.name) {
            const std::string p = c.name + ".";
            const auto x = file.get<double>(p + "x");
            const auto dy = file.get<double>(p + "dy");
            REQUIRE(x.shape() == c.shape);
            const auto y = file.get<double>(p + "y"), dx = file.get<double>(p + "dx");
            const auto y_f = file.get<float>(p + "y_f32"), dx_f = file.get<float>(p + "dx_f32");
            CHECK(test::max_relative_error(adaptive_avg_pool2d(x, c.output_size), y) <= kDoubleTolerance);
            CHECK(test::max_relative_error(adaptive_avg_pool2d_backward(x.shape(), dy).dx, dx) <= kDoubleTolerance);
            CHECK(test::max_relative_error(adaptive_avg_pool2d(x.cast<float>(), c.output_size), y_f) <=
                  kFloatTolerance);
            CHECK(test::max_relative_error(adaptive_avg_pool2d_backward(x.shape(), dy.cast<float>()).dx, dx_f) <=
                  kFloatTolerance);
            if (c.name == "global") {
                CHECK(test::max_relative_error(global_avg_pool2d(x), y) <= kDoubleTolerance);
                CHECK(test::max_relative_error(global_avg_pool2d_backward(x.shape(), dy).dx, dx) <= kDoubleTolerance);
                CHECK(test::max_relative_error(global_avg_pool2d(x.cast<float>()), y_f) <= kFloatTolerance);
                CHECK(test::max_relative_error(global_avg_pool2d_backward(x.shape(), dy.cast<float>()).dx, dx_f) <=
                      kFloatTolerance);
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------------------
// Bad arguments

TEST_CASE("pooling rejects bad arguments with messages naming the op and the values", "[pool][errors]") {
    const HostTensor<float> x(Shape{1, 2, 4, 4}, 1.0f);
    const HostTensor<float> x3d(Shape{2, 4, 4}, 1.0f);

    CHECK_THAT(error_message([&] { max_pool2d(x3d, max_options(2)); }),
               Contains("max_pool2d: input must be (N, C, H, W), got shape (2, 4, 4)"));
    CHECK_THAT(error_message([&] { avg_pool2d(HostTensor<float>(Shape{1, 0, 4, 4}), avg_options(2)); }),
               Contains("avg_pool2d: input sizes must be positive, got shape (1, 0, 4, 4)"));
    CHECK_THAT(error_message([&] { max_pool2d(x, MaxPool2dOptions{}); }),
               Contains("max_pool2d: kernel_size (0, 0) must be positive"));
    CHECK_THAT(error_message([&] { max_pool2d(x, max_options({2, -1})); }),
               Contains("max_pool2d: kernel_size (2, -1) must be positive"));
    CHECK_THAT(error_message([&] { avg_pool2d(x, avg_options(2, 0)); }),
               Contains("avg_pool2d: stride (0, 0) must be positive"));
    CHECK_THAT(error_message([&] { max_pool2d(x, max_options(2, 1, 0, {1, 0})); }),
               Contains("max_pool2d: dilation (1, 0) must be positive"));
    CHECK_THAT(error_message([&] { max_pool2d(x, max_options(3, 1, -1)); }),
               Contains("max_pool2d: padding (-1, -1) must not be negative"));
    CHECK_THAT(error_message([&] { max_pool2d(x, max_options(3, 1, {1, 2})); }),
               Contains("max_pool2d: padding (1, 2) must be at most half of kernel_size (3, 3)"));
    CHECK_THAT(error_message([&] { avg_pool2d(x, avg_options(5)); }),
               Contains("avg_pool2d: input (1, 2, 4, 4) is too small for kernel_size (5, 5)"));
    CHECK_THAT(error_message([&] { max_pool2d(x, max_options(3, 1, 0, 2)); }),
               Contains("the output would be 0x0"));
    CHECK_THAT(error_message([&] { avg_pool2d(x, avg_options(2, 2, 0, false, true, 0)); }),
               Contains("avg_pool2d: divisor_override must not be 0"));
    CHECK_THAT(error_message([&] { lp_pool2d(x, lp_options(0.0, 2)); }),
               Contains("lp_pool2d: norm_type 0 must be positive and finite"));
    CHECK_THAT(error_message([&] { lp_pool2d(x, lp_options(INFINITY, 2)); }),
               Contains("lp_pool2d: norm_type inf must be positive and finite"));
    CHECK_THAT(error_message([&] { adaptive_avg_pool2d(x, {0, 2}); }),
               Contains("adaptive_avg_pool2d: output_size (0, 2) must be positive"));
    CHECK_THAT(error_message([&] { global_avg_pool2d(x3d); }),
               Contains("global_avg_pool2d: input must be (N, C, H, W), got shape (2, 4, 4)"));
}

TEST_CASE("pooling backward rejects gradients and indices that do not fit the input", "[pool][errors]") {
    const Shape input{1, 2, 4, 4};
    const HostTensor<float> dy(Shape{1, 2, 2, 2}, 1.0f);
    const HostTensor<float> wrong_dy(Shape{1, 2, 3, 2}, 1.0f);
    const HostTensor<int64_t> indices(Shape{1, 2, 2, 2}, 0);

    CHECK_THAT(error_message([&] { avg_pool2d_backward(input, wrong_dy, avg_options(2)); }),
               Contains("avg_pool2d_backward: dy has shape (1, 2, 3, 2) but the forward's output has shape "
                        "(1, 2, 2, 2)"));
    CHECK_THAT(error_message([&] { lp_pool2d_backward(HostTensor<float>(input, 1.0f), wrong_dy, lp_options(2, 2)); }),
               Contains("lp_pool2d_backward: dy has shape (1, 2, 3, 2)"));
    CHECK_THAT(error_message([&] { max_pool2d_backward(input, indices, wrong_dy); }),
               Contains("max_pool2d_backward: indices have shape (1, 2, 2, 2) but dy has shape (1, 2, 3, 2)"));
    CHECK_THAT(error_message([&] { max_pool2d_backward(input, indices, HostTensor<float>(Shape{1, 3, 2, 2})); }),
               Contains("max_pool2d_backward: dy has shape (1, 3, 2, 2) but the input (1, 2, 4, 4) needs"));
    HostTensor<int64_t> bad_indices = indices;
    bad_indices[3] = 16;
    CHECK_THAT(error_message([&] { max_pool2d_backward(input, bad_indices, dy); }),
               Contains("max_pool2d_backward: index 16 is outside the 4x4 input plane"));
    CHECK_THAT(error_message([&] { adaptive_avg_pool2d_backward(input, HostTensor<float>(Shape{2, 2, 1, 1})); }),
               Contains("adaptive_avg_pool2d_backward: dy has shape (2, 2, 1, 1) but the input (1, 2, 4, 4)"));
    CHECK_THAT(error_message([&] { global_avg_pool2d_backward(input, dy); }),
               Contains("global_avg_pool2d_backward: dy has shape (1, 2, 2, 2) but the forward's output has shape "
                        "(1, 2, 1, 1)"));
}
