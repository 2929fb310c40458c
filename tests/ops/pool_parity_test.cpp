// Parity of the pooling kernels (cuda/pool.cu) with the CPU reference (src/cpu/pool.cpp): max pooling with
// indices (ties, NaN, padding, dilation, ceil mode, overlapping windows), average pooling with every divisor
// rule, global average pooling; forward and backward; bad arguments.
#include <catch2/catch.hpp>

#include <cmath>
#include <cstdint>
#include <limits>
#include <optional>
#include <string>
#include <vector>

#include "cuda/pool.hpp"
#include "support/compare.hpp"
#include "support/errors.hpp"
#include "support/parity.hpp"
#include "support/pool_options.hpp"

using namespace cudacnn;
using Catch::Contains;
using cpu::AvgPool2dOptions;
using cpu::MaxPool2dOptions;
using cpu::Pair2d;
using test::avg_options;
using test::lp_options;
using test::max_options;

namespace {

// Average windows here hold at most 9 cells, and a backward cell gathers at most 9 windows: float sums of
// ≤ 9 terms of size ≤ 1 err by ≤ 9 · 2^-24 · Σ|terms| ≈ 5e-7 · (mean |term| ≈ 0.5) against a reference that
// sums in double and rounds once, and max |y| over a tensor of random windows is ≥ 0.3, so 1e-5 leaves a
// wide margin while any wrong cell or divisor (an error of ≥ 1/9 of a term) fails by orders of magnitude.
constexpr double kAvgPoolTolerance = 1e-5;
// Global pooling sums up to H·W = 256 values per plane: lane-strided (≤ 8 per lane) then a 5-level tree, so
// ≤ 13 · 2^-24 · Σ|x| / HW ≈ 4e-7 absolute for x ∈ [-1, 1); the largest plane mean of 16 random planes of
// 256 values is ≈ 0.07, so the relative error stays below ≈ 6e-6; 1e-5 is the named bound.
constexpr double kGlobalPoolTolerance = 1e-5;

// Lp pooling: the same ≤ 9-term float sums plus powf twice (≤ 2 ulp on the GPU) and, in the backward,
// pow(s · area, 1/p − 1), whose relative error is |1/p − 1| times that of s: inputs in [0.1, 1) keep s away
// from 0; signed inputs come with p = 1 (exponent 0), p = 2 (x² ≥ 0) and p = 3 (the NaN case; no window sum
// of it lies near 0), so 1e-5 again (measured: ≤ 2e-7). Where the reference is NaN (x^p or the root
// undefined) the kernels must be NaN too: max_relative_error counts any NaN mismatch as infinite.
constexpr double kLpPoolTolerance = 1e-5;
// Adaptive windows here hold ≤ 6 cells and a cell lies in ≤ 4 windows: as kAvgPoolTolerance.
constexpr double kAdaptivePoolTolerance = 1e-5;

// Values on a coarse grid {-1, -0.5, 0, 0.5}: most windows hold several equal maxima.
HostTensor<float> tied_tensor(const Shape& shape, uint32_t seed) {
    HostTensor<float> x = test::random_tensor<float>(shape, seed);
    for (float& v : x.values()) v = std::floor(v * 2.0f) / 2.0f;
    return x;
}

// A few NaNs, two in one row so that some window sees more than one (the last one scanned wins).
HostTensor<float> with_nans(HostTensor<float> x) {
    const float nan = std::numeric_limits<float>::quiet_NaN();
    for (int64_t i : {int64_t{0}, int64_t{6}, int64_t{7}, x.numel() / 2, x.numel() - 1}) x[i] = nan;
    return x;
}

bool equal_indices(const HostTensor<int64_t>& a, const HostTensor<int64_t>& b) {
    return a.shape() == b.shape() && a.values() == b.values();
}

// A kernel's float result as a host tensor: uploads `in`, poisons an `out_shape` output, runs
// launch(device in, device out) and downloads the output.
template <class Launch>
HostTensor<float> on_device(const HostTensor<float>& in, const Shape& out_shape, Launch launch) {
    const DeviceBuffer d_in = test::to_device(in);
    const DeviceBuffer d_out = test::poisoned<float>(out_shape.numel());
    launch(d_in.data_as<float>(), d_out.data_as<float>());
    return test::to_host<float>(d_out, out_shape);
}

// Forward and backward of one max-pooling case against the reference. Max pooling selects, and the gather
// adds the same float terms in the reference's order (windows in row-major order, from 0): both directions
// must be bit-identical, NaNs included, and the indices equal.
void check_max_pool(const HostTensor<float>& x, const MaxPool2dOptions& options, uint32_t dy_seed) {
    const Shape& shape = x.shape();
    const cpu::MaxPool2dResult<float> expected = cpu::max_pool2d(x, options);
    const Shape out_shape = expected.output.shape();
    const DeviceBuffer d_x = test::to_device(x);
    const DeviceBuffer d_y = test::poisoned<float>(out_shape.numel());
    const DeviceBuffer d_indices = test::poisoned<int64_t>(out_shape.numel());
    gpu::max_pool2d(d_x.data_as<float>(), d_y.data_as<float>(), d_indices.data_as<int64_t>(), shape, options,
                    nullptr);
    CHECK(test::bitwise_equal(test::to_host<float>(d_y, out_shape), expected.output));
    CHECK(equal_indices(test::to_host<int64_t>(d_indices, out_shape), expected.indices));

    // Inference: no indices wanted, same output.
    const HostTensor<float> y = on_device(x, out_shape, [&](const float* d_in, float* d_out) {
        gpu::max_pool2d(d_in, d_out, nullptr, shape, options, nullptr);
    });
    CHECK(test::bitwise_equal(y, expected.output));

    const HostTensor<float> dy = test::random_tensor<float>(out_shape, dy_seed);
    const HostTensor<float> dx = on_device(dy, shape, [&](const float* d_dy, float* d_dx) {
        gpu::max_pool2d_backward(d_indices.data_as<int64_t>(), d_dy, d_dx, shape, options, nullptr);
    });
    CHECK(test::bitwise_equal(dx, cpu::max_pool2d_backward(shape, expected.indices, dy).dx));
}

void check_avg_pool(const HostTensor<float>& x, const AvgPool2dOptions& options, uint32_t dy_seed) {
    const Shape& shape = x.shape();
    const HostTensor<float> expected = cpu::avg_pool2d(x, options);
    const HostTensor<float> y = on_device(x, expected.shape(), [&](const float* d_x, float* d_y) {
        gpu::avg_pool2d(d_x, d_y, shape, options, nullptr);
    });
    CHECK(test::max_relative_error(y, expected) <= kAvgPoolTolerance);

    const HostTensor<float> dy = test::random_tensor<float>(expected.shape(), dy_seed);
    const HostTensor<float> dx = on_device(dy, shape, [&](const float* d_dy, float* d_dx) {
        gpu::avg_pool2d_backward(d_dy, d_dx, shape, options, nullptr);
    });
    CHECK(test::max_relative_error(dx, cpu::avg_pool2d_backward(shape, dy, options).dx) <= kAvgPoolTolerance);
}

struct MaxCase {
    std::string name;
    Shape shape;
    MaxPool2dOptions options;
};

struct AvgCase {
    std::string name;
    Shape shape;
    AvgPool2dOptions options;
};

}  // namespace

TEST_CASE("max_pool2d kernels match the reference: outputs and gradients bit for bit, indices exactly",
          "[parity][pool]") {
    const std::vector<MaxCase> cases = {
        // CifarCNN's first MaxPool(2, 2), batch 2 instead of 128 (windows tile the input: the one-thread-per-window
        // backward kernel).
        {"cifar_k2", {2, 64, 32, 32}, max_options(2)},
        {"k3_tiles_9x6", {2, 3, 9, 6}, max_options(3)},
        {"k21_tiles_6x8", {1, 4, 6, 8}, max_options({2, 1}, Pair2d{2, 1}, {0, 0}, {1, 1}, false)},
        {"k2_odd_input_leaves_a_row_uncovered", {2, 3, 7, 5}, max_options(2)},
        {"k3s2p1", {5, 3, 7, 5}, max_options(3, 2, 1)},
        {"k3s2p1_ceil", {1, 3, 7, 5}, max_options(3, 2, 1, 1, true)},
        {"k2s2p1_ceil_drops_last_window", {1, 3, 5, 7}, max_options(2, 2, 1, 1, true)},
        {"k3s1p1_dilation2_overlapping", {2, 3, 9, 7}, max_options(3, 1, 1, 2)},
        {"k23_s12_p11_dilation21_ceil",
         {5, 3, 7, 5},
         max_options({2, 3}, Pair2d{1, 2}, {1, 1}, {2, 1}, true)},
    };
    uint32_t seed = 100;
    for (const MaxCase& c : cases) {
        INFO("case " << c.name);
        check_max_pool(test::random_tensor<float>(c.shape, seed), c.options, seed + 1);
        seed += 2;
    }
}

TEST_CASE("max_pool2d kernels: ties go to the first maximum, NaN propagates as in the reference",
          "[parity][pool]") {
    SECTION("many ties, overlapping windows (k3 s1 p1): the gradient of shared argmaxes adds up") {
        check_max_pool(tied_tensor({2, 3, 7, 5}, 7), max_options(3, 1, 1), 8);
    }
    SECTION("ties with stride 2 and ceil mode") {
        check_max_pool(tied_tensor({1, 3, 7, 5}, 9), max_options(3, 2, 1, 1, true), 10);
    }
    SECTION("NaN inputs") {
        check_max_pool(with_nans(test::random_tensor<float>({1, 3, 7, 5}, 11)), max_options(3, 2, 1), 12);
    }
    SECTION("ties and NaN where the windows tile the input (k2 s2)") {
        check_max_pool(tied_tensor({2, 3, 8, 6}, 13), max_options(2), 14);
        check_max_pool(with_nans(test::random_tensor<float>({1, 3, 8, 6}, 15)), max_options(2), 16);
    }
}

TEST_CASE("avg_pool2d kernels match the reference for every divisor rule", "[parity][pool]") {
    const std::vector<AvgCase> cases = {
        {"cifar_k2", {2, 8, 16, 16}, avg_options(2)},
        {"k3s2p1_count_pad", {5, 3, 7, 5}, avg_options(3, 2, 1)},
        {"k3s2p1_no_count_pad_ceil", {1, 3, 7, 5}, avg_options(3, 2, 1, true, false)},
        {"k3s2p1_count_pad_ceil_clipped", {1, 3, 7, 5}, avg_options(3, 2, 1, true, true)},
        {"k3s2_ceil_no_padding", {2, 3, 8, 6}, avg_options(3, 2, 0, true)},
        {"k3s1p1_divisor_override_5", {2, 3, 7, 5}, avg_options(3, 1, 1, false, true, 5)},
        {"k23_s12_p11_no_count_pad", {5, 3, 7, 5}, avg_options({2, 3}, Pair2d{1, 2}, {1, 1}, false, false)},
    };
    uint32_t seed = 200;
    for (const AvgCase& c : cases) {
        INFO("case " << c.name);
        check_avg_pool(test::random_tensor<float>(c.shape, seed), c.options, seed + 1);
        seed += 2;
    }
}

TEST_CASE("global_avg_pool2d kernels match the reference", "[parity][pool]") {
    for (const Shape& shape : {Shape{2, 8, 16, 16}, Shape{5, 3, 7, 5}, Shape{1, 3, 1, 1}}) {
        INFO("shape " << shape.to_string());
        const HostTensor<float> x = test::random_tensor<float>(shape, 300);
        const HostTensor<float> expected = cpu::global_avg_pool2d(x);
        const HostTensor<float> y = on_device(x, expected.shape(), [&](const float* d_x, float* d_y) {
            gpu::global_avg_pool2d(d_x, d_y, shape, nullptr);
        });
        CHECK(test::max_relative_error(y, expected) <= kGlobalPoolTolerance);

        // dy / (H·W) is one correctly rounded float division on both sides (the reference's double quotient
        // rounds to the same float): bit-identical.
        const HostTensor<float> dy = test::random_tensor<float>(expected.shape(), 301);
        const HostTensor<float> dx = on_device(dy, shape, [&](const float* d_dy, float* d_dx) {
            gpu::global_avg_pool2d_backward(d_dy, d_dx, shape, nullptr);
        });
        CHECK(test::bitwise_equal(dx, cpu::global_avg_pool2d_backward(shape, dy).dx));
    }
}

TEST_CASE("pooling launchers reject bad arguments with the reference's messages", "[parity][pool]") {
    using test::error_message;
    const DeviceBuffer buffer = test::poisoned<float>(64);
    float* p = buffer.data_as<float>();
    const Shape shape{1, 1, 4, 4};
    CHECK_THAT(error_message([&] { gpu::max_pool2d(p, p, nullptr, shape, max_options(2, 2, 2), nullptr); }),
               Contains("max_pool2d: padding (2, 2) must be at most half of kernel_size (2, 2)"));
    CHECK_THAT(error_message([&] { gpu::max_pool2d(p, p, nullptr, shape, max_options(5), nullptr); }),
               Contains("max_pool2d: input (1, 1, 4, 4) is too small"));
    CHECK_THAT(error_message([&] { gpu::max_pool2d(nullptr, p, nullptr, shape, max_options(2), nullptr); }),
               Contains("max_pool2d: x and y must be device pointers"));
    CHECK_THAT(
        error_message([&] { gpu::max_pool2d_backward(nullptr, p, p, shape, max_options(2), nullptr); }),
        Contains("max_pool2d_backward: indices must be the device pointer"));
    CHECK_THAT(error_message([&] {
                   gpu::avg_pool2d(p, p, shape, avg_options(2, std::nullopt, 0, false, true, 0), nullptr);
               }),
               Contains("avg_pool2d: divisor_override must not be 0"));
    CHECK_THAT(error_message([&] {
                   gpu::avg_pool2d_backward(p, p, Shape{4, 4}, avg_options(2), nullptr);
               }),
               Contains("avg_pool2d: input must be (N, C, H, W), got shape (4, 4)"));
    CHECK_THAT(error_message([&] {
                   gpu::global_avg_pool2d(p, p, Shape{1, 0, 4, 4}, nullptr);
               }),
               Contains("global_avg_pool2d: input sizes must be positive, got shape (1, 0, 4, 4)"));
    CHECK_THAT(error_message([&] { gpu::lp_pool2d(p, p, shape, lp_options(-1.0, 2), nullptr); }),
               Contains("lp_pool2d: norm_type -1 must be positive and finite"));
    CHECK_THAT(error_message([&] {
                   gpu::adaptive_avg_pool2d(p, p, shape, {0, 2}, nullptr);
               }),
               Contains("adaptive_avg_pool2d: output_size (0, 2) must be positive"));
    CHECK_THAT(error_message([&] { gpu::global_avg_pool2d_backward(p, nullptr, shape, nullptr); }),
               Contains("global_avg_pool2d_backward: dy and dx must be device pointers"));
}

TEST_CASE("lp_pool2d kernels match the reference, NaNs included", "[parity][pool]") {
    struct LpCase {
        std::string name;
        Shape shape;
        cpu::LpPool2dOptions options;
        bool positive;  // inputs in [0.1, 1): x^p and the root are defined everywhere
    };
    const std::vector<LpCase> cases = {
        {"p2_k2", {2, 3, 6, 8}, lp_options(2.0, 2), false},
        {"p1_k3s2", {5, 3, 7, 5}, lp_options(1.0, 3, 2), false},
        {"p3_k3s2_ceil_clipped", {1, 3, 7, 5}, lp_options(3.0, 3, 2, true), true},
        {"p3_signed_k2_nan",
         {2, 2, 6, 6},
         lp_options(3.0, 2),
         false},  // NaN where a window's sum is negative
        {"p1_5_k23s1", {1, 3, 5, 6}, lp_options(1.5, {2, 3}, 1), true},
    };
    uint32_t seed = 600;
    for (const LpCase& c : cases) {
        INFO("case " << c.name);
        const HostTensor<float> x = test::random_tensor<float>(c.shape, seed, c.positive ? 0.1 : -1.0, 1.0);
        const HostTensor<float> expected = cpu::lp_pool2d(x, c.options);
        const DeviceBuffer d_x = test::to_device(x);
        const HostTensor<float> y = on_device(x, expected.shape(), [&](const float* d_in, float* d_y) {
            gpu::lp_pool2d(d_in, d_y, c.shape, c.options, nullptr);
        });
        CHECK(test::max_relative_error(y, expected) <= kLpPoolTolerance);

        const HostTensor<float> dy = test::random_tensor<float>(expected.shape(), seed + 1);
        const HostTensor<float> dx = on_device(dy, c.shape, [&](const float* d_dy, float* d_dx) {
            gpu::lp_pool2d_backward(d_x.data_as<float>(), d_dy, d_dx, c.shape, c.options, nullptr);
        });
        CHECK(test::max_relative_error(dx, cpu::lp_pool2d_backward(x, dy, c.options).dx) <= kLpPoolTolerance);
        seed += 2;
    }
}

TEST_CASE("adaptive_avg_pool2d kernels match the reference", "[parity][pool]") {
    struct AdaptiveCase {
        Shape shape;
        Pair2d output_size;
    };
    // Overlapping windows (5 → 3), exact division (4 → 2), more outputs than inputs (3 → 4).
    for (const AdaptiveCase& c : {AdaptiveCase{{2, 3, 5, 7}, {3, 4}}, AdaptiveCase{{1, 3, 4, 4}, {2, 2}},
                                  AdaptiveCase{{5, 3, 3, 7}, {4, 3}}}) {
        INFO("shape " << c.shape.to_string() << " to " << c.output_size.h << "x" << c.output_size.w);
        const HostTensor<float> x = test::random_tensor<float>(c.shape, 700);
        const HostTensor<float> expected = cpu::adaptive_avg_pool2d(x, c.output_size);
        const HostTensor<float> y = on_device(x, expected.shape(), [&](const float* d_x, float* d_y) {
            gpu::adaptive_avg_pool2d(d_x, d_y, c.shape, c.output_size, nullptr);
        });
        CHECK(test::max_relative_error(y, expected) <= kAdaptivePoolTolerance);

        const HostTensor<float> dy = test::random_tensor<float>(expected.shape(), 701);
        const HostTensor<float> dx = on_device(dy, c.shape, [&](const float* d_dy, float* d_dx) {
            gpu::adaptive_avg_pool2d_backward(d_dy, d_dx, c.shape, c.output_size, nullptr);
        });
        CHECK(test::max_relative_error(dx, cpu::adaptive_avg_pool2d_backward(c.shape, dy).dx) <=
              kAdaptivePoolTolerance);
    }
}
