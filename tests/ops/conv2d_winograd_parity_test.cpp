// Parity of the Winograd F(2×2, 3×3) convolution (cuda/conv2d_winograd.cu) with cpu::conv2d /
// cpu::conv2d_backward: forward, backward-data and backward-filter (with the bias gradient) on CifarCNN's
// layers at batch 1, odd shapes (partial last tiles, 1×1 and 2×2 images, channel counts that are multiples of
// nothing), backward-filter's chunked tiles; reproducibility; unsupported geometries and bad arguments.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cstdint>
#include <string>

#include "cuda/conv2d_winograd.hpp"
#include "cudacnn/ops/conv2d.hpp"
#include "support/compare.hpp"
#include "support/conv2d_options.hpp"
#include "support/conv_kernels.hpp"
#include "support/errors.hpp"
#include "support/parity.hpp"
#include "support/tolerance.hpp"

using namespace cudacnn;
using cpu::Conv2dOptions;
using cpu::Conv2dPaddingMode;

namespace {

// Winograd computes the same products regrouped: y = Σ_ξ α_ξ Σ_c U_ξc V_ξc (α the ±1 / 0 entries of Aᵗ ⊗ Aᵗ,
// 9 non-zero per output), and dw = Σ_ξ β_ξ Σ_t dM_ξt V_ξt (β from Gᵗ ⊗ Gᵗ, Σ|β| ≤ 2 · 2). Bound the rounding
// error as tolerance.hpp does, (sum length) · 2^-24 · Σ|terms|: the GEMMs' sums are shorter than the direct
// ones (C terms instead of 9C; T tiles instead of N·OH·OW ≈ 4T) but their terms larger, since G's rows have
// |·|-sums up to 1.5 and Bᵗ's and A's rows up to 2: |U| ≤ 2.25 max|w|, |V| ≤ 4 max|x|, |dM| ≤ 4 max|dy|.
// Forward and backward-data: 9 · 2.25 · 4 · C² = 81 C² against the direct (9C)² = 81 C²: the same bound.
// Backward-filter: 4 · 4 · 4 · T² = 64 T² against (4T)² = 16 T²: 4×. The transforms' own roundings add a
// few ulps of values of that size. So the implicit-GEMM test's margin of 4 (test::float_sum_tolerance over
// the direct sum's length) times this growth of 4: margin 16, which still catches a missing or extra term
// (an error of order 1/terms or more; scaling one of 16 terms of the output transform by 0.999 fails).
// Measured (2026-11-27, emulator): the largest error here is 8.5e-7, under 3% of its tolerance (typical
// errors grow like √terms, the bound like terms).
constexpr double kWinogradGrowth = 4.0;

double tolerance(int64_t terms) {
    return test::float_sum_tolerance(terms, 4.0 * kWinogradGrowth);
}

struct ConvCase {
    std::string name;
    Shape x;           // (N, C, H, W)
    int64_t oc = 1;    // the 3 × 3 filter's output channels
    bool bias = true;  // with a bias (forward) and its gradient (backward-filter)
};

Conv2dOptions pad1() {
    return test::conv2d_options(1, 1, 1, 1, Conv2dPaddingMode::zeros);
}

void poison(const DeviceBuffer& buffer) {
    fill_bytes(buffer.data(), 0xff, buffer.bytes());
}

void check_case(const ConvCase& c, uint32_t seed) {
    INFO("case " << c.name);
    const Shape ws{c.oc, c.x[1], 3, 3};
    const HostTensor<float> x = test::random_tensor<float>(c.x, seed);
    const HostTensor<float> w = test::random_tensor<float>(ws, seed + 1);
    const HostTensor<float> bias = test::random_tensor<float>(Shape{c.oc}, seed + 2);
    const cpu::Conv2dGeometry g = cpu::conv2d_geometry(c.x, ws, pad1());
    REQUIRE(gpu::conv2d_winograd_unsupported(g).empty());
    const HostTensor<float> dy = test::random_tensor<float>(g.output_shape(), seed + 3);
    const HostTensor<float> y_ref = cpu::conv2d<float>(x, w, c.bias ? &bias : nullptr, pad1());
    const cpu::Conv2dGrads<float> ref = cpu::conv2d_backward<float>(x, w, dy, c.bias, pad1());

    const size_t workspace_bytes = gpu::conv2d_winograd_workspace_bytes(g);
    const DeviceBuffer d_x = test::to_device(x), d_w = test::to_device(w), d_bias = test::to_device(bias),
                       d_dy = test::to_device(dy);
    const DeviceBuffer workspace(workspace_bytes);
    const DeviceBuffer d_y = test::poisoned<float>(g.output_shape().numel());
    const DeviceBuffer d_dx = test::poisoned<float>(x.numel()), d_dw = test::poisoned<float>(w.numel()),
                       d_db = test::poisoned<float>(c.oc);

    // A poisoned workspace: a transformed entry the kernels forget to write (the padding tiles' zeros
    // included) turns into NaN in the result.
    poison(workspace);
    gpu::conv2d_winograd_forward(g, d_x.data_as<float>(), d_w.data_as<float>(),
                                 c.bias ? d_bias.data_as<float>() : nullptr, d_y.data_as<float>(),
                                 workspace.data(), workspace_bytes, nullptr);
    poison(workspace);
    gpu::conv2d_winograd_backward_data(g, d_dy.data_as<float>(), d_w.data_as<float>(), d_dx.data_as<float>(),
                                       workspace.data(), workspace_bytes, nullptr);
    poison(workspace);
    gpu::conv2d_winograd_backward_filter(g, d_x.data_as<float>(), d_dy.data_as<float>(),
                                         d_dw.data_as<float>(), c.bias ? d_db.data_as<float>() : nullptr,
                                         workspace.data(), workspace_bytes, nullptr);

    // Direct reduction lengths: y sums 9·C taps (+ bias), dx 9·OC taps, dw and db N·OH·OW terms.
    const int64_t plane_terms = g.batch * g.out_h * g.out_w;
    const double y_error = test::max_relative_error(test::to_host<float>(d_y, g.output_shape()), y_ref);
    const double dx_error = test::max_relative_error(test::to_host<float>(d_dx, x.shape()), ref.dx);
    const double dw_error = test::max_relative_error(test::to_host<float>(d_dw, ws), ref.dweight);
    CHECK(y_error <= tolerance(9 * g.in_channels + 1));
    CHECK(dx_error <= tolerance(9 * g.out_channels));
    CHECK(dw_error <= tolerance(plane_terms));
    if (c.bias) {
        const double db_error = test::max_relative_error(test::to_host<float>(d_db, Shape{c.oc}), ref.dbias);
        CHECK(db_error <= test::float_sum_tolerance(plane_terms, 4.0));  // conv_bias_grad: a plain float sum
    }
}

}  // namespace

TEST_CASE("conv2d_winograd matches the reference on CifarCNN's layers at batch 1",
          "[parity][conv2d_winograd]") {
    check_case({"conv 3→32, 32×32", Shape{1, 3, 32, 32}, 32}, 10);
    check_case({"conv 32→64, 32×32, no bias", Shape{1, 32, 32, 32}, 64, false}, 20);
    check_case({"conv 64→128, 16×16", Shape{1, 64, 16, 16}, 128}, 30);
    check_case({"conv 128→128, 16×16", Shape{1, 128, 16, 16}, 128}, 40);
    check_case({"conv 128→256, 8×8", Shape{1, 128, 8, 8}, 256}, 50);
    check_case({"conv 256→256, 8×8", Shape{1, 256, 8, 8}, 256}, 60);
}

TEST_CASE("conv2d_winograd matches the reference on odd shapes", "[parity][conv2d_winograd]") {
    // Odd H and W: the last tile row and column are partial (their outputs beyond the map dropped, their
    // gradients zero); channel counts that are multiples of nothing (the GEMMs' row pitch is padded to 4).
    check_case({"7×5, 3→5, batch 1", Shape{1, 3, 7, 5}, 5}, 70);
    check_case({"7×5, 3→5, batch 3, no bias", Shape{3, 3, 7, 5}, 5, false}, 80);
    check_case({"9×11, 5→7, batch 3", Shape{3, 5, 9, 11}, 7}, 90);
    check_case({"1×1 images, 6→3, batch 3", Shape{3, 6, 1, 1}, 3}, 100);
    check_case({"2×2 images, 3→6, batch 1", Shape{1, 3, 2, 2}, 6}, 110);
    check_case({"1×6 images, 1→1, batch 2", Shape{2, 1, 1, 6}, 1}, 120);
}

TEST_CASE("conv2d_winograd cuts backward-filter's tiles into chunks with a short last one",
          "[parity][conv2d_winograd]") {
    // 2 · 23 · 24 = 1104 tiles: 4 chunks of 288 (multiples of 16), the last one 240 tiles + 48 zero tiles,
    // summed in order.
    check_case({"45×47, 3→4, batch 2", Shape{2, 3, 45, 47}, 4}, 130);
}

TEST_CASE("conv2d_winograd is bitwise reproducible", "[parity][conv2d_winograd]") {
    const test::ConvKernels kernels{gpu::conv2d_winograd_workspace_bytes, gpu::conv2d_winograd_forward,
                                    gpu::conv2d_winograd_backward_data, gpu::conv2d_winograd_backward_filter};
    test::check_bitwise_reproducible(kernels, cpu::conv2d_geometry(Shape{3, 5, 9, 11}, Shape{6, 5, 3, 3}, pad1()));
}

TEST_CASE("conv2d_winograd names the geometries it does not support", "[parity][conv2d_winograd]") {
    using Catch::Matchers::Contains;
    const cpu::Conv2dGeometry cifar =
        cpu::conv2d_geometry(Shape{128, 128, 8, 8}, Shape{256, 128, 3, 3}, pad1());
    CHECK(gpu::conv2d_winograd_unsupported(cifar).empty());

    const std::string only =
        "conv2d_winograd: F(2×2, 3×3) computes 3×3 kernels with stride 1, dilation 1 and "
        "padding 1 only, not geometry";
    auto why = [](const Shape& xs, const Shape& ws, const Conv2dOptions& options) {
        return gpu::conv2d_winograd_unsupported(cpu::conv2d_geometry(xs, ws, options));
    };
    const Shape xs{1, 3, 7, 5};
    CHECK_THAT(why(xs, Shape{4, 3, 5, 5}, test::conv2d_options(1, 2, 1, 1, Conv2dPaddingMode::zeros)),
               Contains(only) && Contains("kernel 5×5"));
    CHECK_THAT(why(xs, Shape{4, 3, 3, 3}, test::conv2d_options(2, 1, 1, 1, Conv2dPaddingMode::zeros)),
               Contains(only) && Contains("stride (2, 2)"));
    CHECK_THAT(why(xs, Shape{4, 3, 3, 3}, test::conv2d_options(1, 2, 2, 1, Conv2dPaddingMode::zeros)),
               Contains(only) && Contains("dilation (2, 2)"));
    CHECK_THAT(why(xs, Shape{4, 3, 3, 3}, test::conv2d_options(1, 0, 1, 1, Conv2dPaddingMode::zeros)),
               Contains(only) && Contains("padding (top 0"));
    CHECK_THAT(
        why(Shape{1, 6, 7, 5}, Shape{9, 2, 3, 3}, test::conv2d_options(1, 1, 1, 3, Conv2dPaddingMode::zeros)),
        Contains("conv2d_winograd: groups 3 are not supported (only groups 1)"));
    CHECK_THAT(why(xs, Shape{4, 3, 3, 3}, test::conv2d_options(1, 1, 1, 1, Conv2dPaddingMode::reflect)),
               Contains("conv2d_winograd: padding_mode 'reflect' is not supported (only 'zeros')"));

    cpu::Conv2dGeometry huge = cifar;
    huge.batch =
        1 << 15;  // 2^15 · 4 · 4 = 2^19 tiles: the forward's M alone is 16 · 256 · 2^19 = 2^31 floats
    CHECK_THAT(gpu::conv2d_winograd_unsupported(huge),
               Contains("conv2d_winograd: geometry") && Contains("the kernels index with 32 bits"));
}

TEST_CASE("conv2d_winograd rejects bad arguments naming the op and the values", "[parity][conv2d_winograd]") {
    using Catch::Matchers::Contains;
    const cpu::Conv2dGeometry g = cpu::conv2d_geometry(Shape{2, 3, 7, 5}, Shape{4, 3, 3, 3}, pad1());
    const size_t bytes = gpu::conv2d_winograd_workspace_bytes(g);
    // 2 · 4 · 3 = 24 tiles. Backward-filter needs the most: one chunk of 32 tiles (a multiple of 16), so
    // partial dU 16 · 4 · 4 (C = 3 padded to 4) + V 16 · 3 · 32 + dM 16 · 4 · 32 = 256 + 1536 + 2048 floats.
    CHECK(bytes == (256 + 1536 + 2048) * sizeof(float));
    const DeviceBuffer x(2 * 3 * 7 * 5 * sizeof(float)), w(4 * 3 * 3 * 3 * sizeof(float));
    const DeviceBuffer y(2 * 4 * 7 * 5 * sizeof(float)), workspace(bytes);
    const float* xp = x.data_as<float>();
    const float* wp = w.data_as<float>();
    float* yp = y.data_as<float>();

    // The forward needs U 16 · 4 · 4 + V 16 · 3 · 24 + M 16 · 4 · 24 = 256 + 1152 + 1536 floats.
    const size_t forward_bytes = (256 + 1152 + 1536) * sizeof(float);
    CHECK_THAT(test::error_message([&] {
                   gpu::conv2d_winograd_forward(g, xp, wp, nullptr, yp, workspace.data(), forward_bytes - 4,
                                                nullptr);
               }),
               Contains("conv2d_winograd_forward: workspace") &&
                   Contains(std::to_string(forward_bytes - 4) + " bytes is smaller than the " +
                            std::to_string(forward_bytes) + " bytes this call needs") &&
                   Contains("conv2d_winograd_workspace_bytes gives " + std::to_string(bytes)));
    CHECK_THAT(
        test::error_message([&] {
            gpu::conv2d_winograd_backward_filter(g, xp, yp, yp, nullptr, workspace.data(), bytes - 4,
                                                 nullptr);
        }),
        Contains("conv2d_winograd_backward_filter: workspace") &&
            Contains(std::to_string(bytes - 4) + " bytes is smaller than the " + std::to_string(bytes)));
    CHECK_THAT(test::error_message(
                   [&] { gpu::conv2d_winograd_backward_data(g, yp, wp, yp, nullptr, bytes, nullptr); }),
               Contains("conv2d_winograd_backward_data: workspace"));
    CHECK_THAT(test::error_message([&] {
                   gpu::conv2d_winograd_backward_data(g, yp, wp, nullptr, workspace.data(), bytes, nullptr);
               }),
               Contains("conv2d_winograd_backward_data: dy, w and dx must be device pointers"));
    CHECK_THAT(test::error_message([&] {
                   gpu::conv2d_winograd_forward(g, nullptr, wp, nullptr, yp, workspace.data(), bytes,
                                                nullptr);
               }),
               Contains("conv2d_winograd_forward: x, w and y must be device pointers"));

    cpu::Conv2dGeometry wrong_output = g;
    wrong_output.out_w = 4;
    CHECK_THAT(
        test::error_message([&] {
            gpu::conv2d_winograd_backward_filter(wrong_output, xp, yp, yp, nullptr, workspace.data(), bytes,
                                                 nullptr);
        }),
        Contains("conv2d_winograd_backward_filter: conv2d: geometry") && Contains("output 7×4) is not what"));
    cpu::Conv2dGeometry stride2 = g;
    stride2.stride_h = 2;
    stride2.out_h = 4;
    CHECK_THAT(test::error_message([&] { gpu::conv2d_winograd_workspace_bytes(stride2); }),
               Contains("conv2d_winograd_workspace_bytes: conv2d_winograd: F(2×2, 3×3) computes"));
}
