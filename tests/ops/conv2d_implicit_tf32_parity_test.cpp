// Parity of the implicit-GEMM convolution's TF32 tensor-core kernel (cuda/conv2d_implicit.cu, allow_tf32)
// with cpu::conv2d / cpu::conv2d_backward on TF32-rounded inputs: forward, backward-data and backward-filter
// on odd shapes, strides, dilation, padding and split-k; proof that it rounds (and how: to nearest, ties away
// from zero); bitwise reproducibility; under the emulator, bit-for-bit agreement with the FP32 kernel on
// pre-rounded inputs; and Conv2dPlan choosing it for --precision tf32.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <string>

#include "cuda/conv2d.hpp"
#include "cuda/conv2d_implicit.hpp"
#include "cudacnn/ops/conv2d.hpp"
#include "support/compare.hpp"
#include "support/conv2d_options.hpp"
#include "support/conv_kernels.hpp"
#include "support/parity.hpp"
#include "support/tf32.hpp"
#include "support/tolerance.hpp"

using namespace cudacnn;
using cpu::Conv2dOptions;
using cpu::Conv2dPadding;
using cpu::Conv2dPaddingMode;

namespace {

// Against the double-accumulating reference on TF32-rounded inputs: products of two TF32 values are exact in
// float, so what is left is an L-term float sum, as for the FP32 kernel: the FP32 parity test's tolerance
// (test::float_sum_tolerance with a margin of 4).
double tolerance(int64_t terms) {
    return test::float_sum_tolerance(terms, 4.0);
}

HostTensor<float> tf32_rounded(HostTensor<float> t) {
    for (float& v : t.values()) v = test::tf32_rounded(v);
    return t;
}

Conv2dOptions zeros(cpu::Pair2d stride, Conv2dPadding padding, cpu::Pair2d dilation = 1) {
    return test::conv2d_options(stride, padding, dilation, 1, Conv2dPaddingMode::zeros);
}

struct ConvCase {
    std::string name;
    Shape x, w;  // (N, C, H, W), (OC, C, KH, KW)
    Conv2dOptions options;
    bool bias = true;
};

// The three outputs (and the bias gradient) of one run of the kernels.
struct Outputs {
    HostTensor<float> y, dx, dw, db;
};

// Runs forward (with bias), backward-data and backward-filter (with the bias gradient), outputs and the
// workspace poisoned with NaN before each call.
Outputs run_kernels(const cpu::Conv2dGeometry& g, const HostTensor<float>& x, const HostTensor<float>& w,
                    const HostTensor<float>* bias, const HostTensor<float>& dy, bool allow_tf32) {
    const size_t bytes = std::max<size_t>(gpu::conv2d_implicit_workspace_bytes(g), sizeof(float));
    const DeviceBuffer d_x = test::to_device(x), d_w = test::to_device(w), d_dy = test::to_device(dy);
    const DeviceBuffer d_bias = test::to_device(bias != nullptr ? *bias : HostTensor<float>(Shape{1}, 0.0f));
    const DeviceBuffer workspace = test::poisoned<float>(static_cast<int64_t>(bytes / sizeof(float)));
    const DeviceBuffer d_y = test::poisoned<float>(g.output_shape().numel()),
                       d_dx = test::poisoned<float>(x.numel()), d_dw = test::poisoned<float>(w.numel()),
                       d_db = test::poisoned<float>(g.out_channels);
    const auto poison_workspace = [&] { fill_bytes(workspace.data(), 0xff, workspace.bytes()); };
    gpu::conv2d_implicit_forward(g, d_x.data_as<float>(), d_w.data_as<float>(),
                                 bias != nullptr ? d_bias.data_as<float>() : nullptr, d_y.data_as<float>(),
                                 workspace.data(), bytes, nullptr, allow_tf32);
    poison_workspace();
    gpu::conv2d_implicit_backward_data(g, d_dy.data_as<float>(), d_w.data_as<float>(), d_dx.data_as<float>(),
                                       workspace.data(), bytes, nullptr, allow_tf32);
    poison_workspace();
    gpu::conv2d_implicit_backward_filter(
        g, d_x.data_as<float>(), d_dy.data_as<float>(), d_dw.data_as<float>(),
        bias != nullptr ? d_db.data_as<float>() : nullptr, workspace.data(), bytes, nullptr, allow_tf32);
    return {test::to_host<float>(d_y, g.output_shape()), test::to_host<float>(d_dx, x.shape()),
            test::to_host<float>(d_dw, w.shape()),
            bias != nullptr ? test::to_host<float>(d_db, Shape{g.out_channels}) : HostTensor<float>()};
}

bool bitwise_equal(const Outputs& a, const Outputs& b) {
    return test::bitwise_equal(a.y, b.y) && test::bitwise_equal(a.dx, b.dx) &&
           test::bitwise_equal(a.dw, b.dw) && (a.db.numel() == 0 || test::bitwise_equal(a.db, b.db));
}

// The largest of the three outputs' errors against the reference on the FP32 inputs (how far TF32 moved
// them).
struct CaseErrors {
    double fp32 = 0.0;
    int64_t terms = 0;  // the longest reduction of the three
};

CaseErrors check_case(const ConvCase& c, uint32_t seed) {
    INFO("case " << c.name);
    const HostTensor<float> x = test::random_tensor<float>(c.x, seed);
    const HostTensor<float> w = test::random_tensor<float>(c.w, seed + 1);
    const HostTensor<float> bias = test::random_tensor<float>(Shape{c.w[0]}, seed + 2);
    const cpu::Conv2dGeometry g = cpu::conv2d_geometry(c.x, c.w, c.options);
    REQUIRE(gpu::conv2d_implicit_unsupported(g).empty());
    const HostTensor<float> dy = test::random_tensor<float>(g.output_shape(), seed + 3);
    const HostTensor<float>* b = c.bias ? &bias : nullptr;
    const Outputs tf32 = run_kernels(g, x, w, b, dy, true);

    // The bias (added after the product), the split-k sums and the bias gradient stay FP32: the reference
    // rounds x, w and dy only, and db is compared with the FP32 one.
    const HostTensor<float> xr = tf32_rounded(x), wr = tf32_rounded(w), dyr = tf32_rounded(dy);
    const HostTensor<float> y_ref = cpu::conv2d<float>(xr, wr, b, c.options);
    const cpu::Conv2dGrads<float> ref = cpu::conv2d_backward<float>(xr, wr, dyr, c.bias, c.options);
    const int64_t taps = g.kernel_h * g.kernel_w, positions = g.batch * g.out_h * g.out_w;
    CHECK(test::max_relative_error(tf32.y, y_ref) <= tolerance(g.in_channels * taps + 1));
    CHECK(test::max_relative_error(tf32.dx, ref.dx) <= tolerance(g.out_channels * taps));
    CHECK(test::max_relative_error(tf32.dw, ref.dweight) <= tolerance(positions));
    const HostTensor<float> y_fp32 = cpu::conv2d<float>(x, w, b, c.options);
    const cpu::Conv2dGrads<float> fp32 = cpu::conv2d_backward<float>(x, w, dy, c.bias, c.options);
    if (c.bias) CHECK(test::max_relative_error(tf32.db, fp32.dbias) <= tolerance(positions));

    if (!gpu::conv2d_implicit_tf32_available()) {  // a GPU below sm_80 or CUDACNN_IMPLICIT_TF32=0: FP32 runs
        CHECK(bitwise_equal(tf32, run_kernels(g, x, w, b, dy, false)));
        return {};
    }
#ifdef CUDACNN_EMU
    // The emulator's wmma sums k in order with exact products: exactly the FP32 kernel on rounded inputs. A
    // kernel that skipped the rounding would see the inputs truncated by mma_sync and differ here.
    const Outputs fp32_on_rounded = run_kernels(g, xr, wr, b, dyr, false);
    CHECK(test::bitwise_equal(tf32.y, fp32_on_rounded.y));
    CHECK(test::bitwise_equal(tf32.dx, fp32_on_rounded.dx));
    CHECK(test::bitwise_equal(tf32.dw, fp32_on_rounded.dw));
#endif
    return {std::max({test::max_relative_error(tf32.y, y_fp32), test::max_relative_error(tf32.dx, fp32.dx),
                      test::max_relative_error(tf32.dw, fp32.dweight)}),
            std::max({g.in_channels * taps, g.out_channels * taps, positions})};
}

}  // namespace

TEST_CASE("conv2d_implicit TF32 matches the reference on odd shapes, strides, dilation and padding",
          "[parity][conv2d_implicit][conv2d_implicit_tf32]") {
    // 7×5 images, C = 3, OC = 5, batches 1 and 3: no size is a multiple of any tile or of 4 (block tiles of
    // 32 rows, partly empty fragments); 130 output channels: two row tiles of 128 (4 × 2 fragments per warp).
    check_case({"7×5, 3→5, pad 1, batch 3", Shape{3, 3, 7, 5}, Shape{5, 3, 3, 3}, zeros(1, 1)}, 10);
    check_case({"stride 2, 2×3 kernel, pad (1, 2), batch 3, no bias", Shape{3, 3, 7, 5}, Shape{5, 3, 2, 3},
                zeros(2, {1, 2}), false},
               20);
    check_case({"stride (2, 3), pad 0, batch 3", Shape{3, 3, 7, 5}, Shape{5, 3, 3, 2}, zeros({2, 3}, 0)}, 30);
    check_case({"dilation 2, stride (1, 2), pad 2, batch 1", Shape{1, 3, 7, 5}, Shape{5, 3, 3, 3},
                zeros({1, 2}, 2, 2)},
               40);
    check_case({"'same', 4×2 kernel", Shape{3, 3, 7, 5}, Shape{5, 3, 4, 2}, zeros(1, Conv2dPadding::same())},
               50);
    check_case({"'valid', 1×1 kernel, 130 output channels", Shape{1, 3, 7, 5}, Shape{130, 3, 1, 1},
                zeros(1, Conv2dPadding::valid())},
               60);
    check_case({"16→40, 6×6, batch 2 (64-row tiles)", Shape{2, 16, 6, 6}, Shape{40, 16, 3, 3}, zeros(1, 1)},
               70);
}

TEST_CASE("conv2d_implicit TF32 splits k in every direction, summing the slices in FP32",
          "[parity][conv2d_implicit][conv2d_implicit_tf32]") {
    // The forward's k = 128 · 9 = 1152 on a 2×2 map: one tile, two slices (the bias added by the sum pass).
    check_case({"128→8, 2×2, batch 1", Shape{1, 128, 2, 2}, Shape{8, 128, 3, 3}, zeros(1, 1)}, 80);
    // Backward-data's k = 128 · 9 = 1152: two slices.
    check_case({"8→128, 3×3, batch 1", Shape{1, 8, 3, 3}, Shape{128, 8, 3, 3}, zeros(1, 1)}, 90);
    // Backward-filter's k = 9 · 13 · 11 = 1287: slices of 648 and 639.
    check_case({"4→8, 13×11, batch 9", Shape{9, 4, 13, 11}, Shape{8, 4, 3, 3}, zeros(1, 1)}, 100);
}

TEST_CASE("conv2d_implicit TF32: the error against FP32 is TF32's, not FP32's",
          "[parity][conv2d_implicit][conv2d_implicit_tf32]") {
    // Random inputs: each TF32 input is off by up to 2^-11 relative, so a sum of L random-signed products by
    // ~√L · 2^-11 · |x·w| against max |y| ~ √L · |x·w|: some 1e-4 … 1e-3 (measured: 2.8e-4 under the
    // emulator, L = 216). The FP32 kernel stays below float_sum_tolerance(L) = 1.3e-5 (margin 1); one that
    // forgot to round would land there and fail the lower bound.
    const CaseErrors errors =
        check_case({"16→24, 9×7, batch 2", Shape{2, 16, 9, 7}, Shape{24, 16, 3, 3}, zeros(1, 1)}, 110);
    if (!gpu::conv2d_implicit_tf32_available()) return;
    INFO("max relative error against the FP32 reference: " << errors.fp32 << " (longest sum " << errors.terms
                                                           << ")");
    CHECK(errors.fp32 > 2.0 * test::float_sum_tolerance(errors.terms));
    CHECK(errors.fp32 < 0x1p-8);
}

TEST_CASE("conv2d_implicit TF32 rounds to nearest, ties away from zero, in every direction",
          "[parity][conv2d_implicit][conv2d_implicit_tf32]") {
    // x = 1 + 2^-11 (exactly half a TF32 step of 2^-10: ties away from zero give 1 + 2^-10, where truncation
    // or ties-to-even would give 1), w = dy = 1 + 2^-12 (below half a step: 1). Every output is then a count
    // of taps times 1 + 2^-10 (y, dw) or 1 (dx), exact in float and on tensor cores whatever the summation
    // order, while FP32 gives count · (1 + 2^-11)(1 + 2^-12) or count · (1 + 2^-12)². 'valid' padding and
    // stride 2 make the counts of dx differ by position.
    if (!gpu::conv2d_implicit_tf32_available()) return;
    const Conv2dOptions options = zeros(2, Conv2dPadding::valid());
    const Shape xs{2, 5, 9, 8}, ws{6, 5, 3, 3};
    const cpu::Conv2dGeometry g = cpu::conv2d_geometry(xs, ws, options);
    const HostTensor<float> x(xs, 1.0f + 0x1p-11f), w(ws, 1.0f + 0x1p-12f);
    const HostTensor<float> dy(g.output_shape(), 1.0f + 0x1p-12f);
    const Outputs tf32 = run_kernels(g, x, w, nullptr, dy, true);
    const HostTensor<float> y_ref = cpu::conv2d<float>(tf32_rounded(x), tf32_rounded(w), nullptr, options);
    const cpu::Conv2dGrads<float> ref =
        cpu::conv2d_backward<float>(tf32_rounded(x), tf32_rounded(w), tf32_rounded(dy), false, options);
    CHECK(y_ref[0] == 45.0f * (1.0f + 0x1p-10f));  // 5 channels × 9 taps
    CHECK(test::bitwise_equal(tf32.y, y_ref));
    CHECK(test::bitwise_equal(tf32.dx, ref.dx));
    CHECK(test::bitwise_equal(tf32.dw, ref.dweight));
    const cpu::Conv2dGrads<float> fp32 = cpu::conv2d_backward<float>(x, w, dy, false, options);
    CHECK_FALSE(test::bitwise_equal(tf32.y, cpu::conv2d<float>(x, w, nullptr, options)));
    CHECK_FALSE(test::bitwise_equal(tf32.dx, fp32.dx));
    CHECK_FALSE(test::bitwise_equal(tf32.dw, fp32.dweight));
}

TEST_CASE("conv2d_implicit TF32 is bitwise reproducible", "[parity][conv2d_implicit][conv2d_implicit_tf32]") {
    using G = cpu::Conv2dGeometry;
    const test::ConvKernels kernels{
        gpu::conv2d_implicit_workspace_bytes,
        [](const G& g, const float* x, const float* w, const float* bias, float* y, void* ws, size_t bytes,
           cudaStream_t s) { gpu::conv2d_implicit_forward(g, x, w, bias, y, ws, bytes, s, true); },
        [](const G& g, const float* dy, const float* w, float* dx, void* ws, size_t bytes, cudaStream_t s) {
            gpu::conv2d_implicit_backward_data(g, dy, w, dx, ws, bytes, s, true);
        },
        [](const G& g, const float* x, const float* dy, float* dw, float* db, void* ws, size_t bytes,
           cudaStream_t s) { gpu::conv2d_implicit_backward_filter(g, x, dy, dw, db, ws, bytes, s, true); }};
    // Backward-filter splits k = 1287 in two.
    test::check_bitwise_reproducible(
        kernels, cpu::conv2d_geometry(Shape{9, 4, 13, 11}, Shape{6, 4, 3, 3}, zeros(1, 1)));
}

TEST_CASE("Conv2dPlan: implicit with allow_tf32 runs the TF32 kernel and says so",
          "[parity][conv2d_plan][conv2d_implicit_tf32]") {
    const Shape xs{2, 3, 7, 5}, ws{4, 3, 3, 3};
    const cpu::Conv2dGeometry g = cpu::conv2d_geometry(xs, ws, zeros(1, 1));
    gpu::Conv2dSettings settings;
    settings.algo = gpu::ConvAlgo::implicit;
    const gpu::Conv2dPlan fp32(g, settings, nullptr);
    CHECK(fp32.description() == "implicit");
    settings.allow_tf32 = true;
    const gpu::Conv2dPlan tf32(g, settings, nullptr);
    CHECK(tf32.workspace_bytes() == fp32.workspace_bytes());
    if (gpu::conv2d_implicit_tf32_available()) {
        CHECK(tf32.description() == "implicit (TF32 tensor cores)");
    } else {
        CHECK_THAT(tf32.description(), Catch::Matchers::Contains("implicit (FP32: TF32 tensor cores need"));
    }

    // The plan's three passes give the bits of the direct calls with allow_tf32.
    const HostTensor<float> x = test::random_tensor<float>(xs, 120), w = test::random_tensor<float>(ws, 121);
    const HostTensor<float> bias = test::random_tensor<float>(Shape{4}, 122);
    const HostTensor<float> dy = test::random_tensor<float>(g.output_shape(), 123);
    const DeviceBuffer d_x = test::to_device(x), d_w = test::to_device(w), d_b = test::to_device(bias),
                       d_dy = test::to_device(dy);
    const DeviceBuffer y = test::poisoned<float>(g.output_shape().numel()),
                       dx = test::poisoned<float>(x.numel()), dw = test::poisoned<float>(w.numel()),
                       db = test::poisoned<float>(4);
    const DeviceBuffer workspace(std::max<size_t>(tf32.workspace_bytes(), sizeof(float)));
    tf32.forward(d_x.data_as<float>(), d_w.data_as<float>(), d_b.data_as<float>(), y.data_as<float>(),
                 workspace.data(), nullptr);
    tf32.backward_data(d_dy.data_as<float>(), d_w.data_as<float>(), dx.data_as<float>(), workspace.data(),
                       nullptr);
    tf32.backward_filter(d_x.data_as<float>(), d_dy.data_as<float>(), dw.data_as<float>(),
                         db.data_as<float>(), workspace.data(), nullptr);
    const Outputs expected = run_kernels(g, x, w, &bias, dy, true);
    CHECK(bitwise_equal({test::to_host<float>(y, g.output_shape()), test::to_host<float>(dx, xs),
                         test::to_host<float>(dw, ws), test::to_host<float>(db, Shape{4})},
                        expected));
    if (gpu::conv2d_implicit_tf32_available()) {
        CHECK_FALSE(test::bitwise_equal(expected.y, run_kernels(g, x, w, &bias, dy, false).y));
    }
}
