// Parity of the Winograd F(2×2, 3×3) and F(4×4, 3×3) convolutions (cuda/conv2d_winograd.cu) with the
// reference cpu::conv2d and cpu::conv2d_backward: forward, backward-data and backward-filter (with the bias
// gradient) on CifarCNN's layers at batch 1, odd shapes (partial last tiles, 1×1 and 2×2 images, channel
// counts that are multiples of nothing), backward-filter's chunked tiles; reproducibility; unsupported
// geometries and bad arguments. Every case runs for both tiles.
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
using gpu::WinogradTile;

namespace {

// Winograd computes the same products regrouped: y = Σ_ξ α_ξ Σ_c U_ξc V_ξc (α the entries of Aᵗ ⊗ Aᵗ), and
// dw = Σ_ξ β_ξ Σ_t dM_ξt V_ξt (β those of Gᵗ ⊗ Gᵗ). Bound the rounding error as tolerance.hpp does, (sum
// length) · 2^-24 · Σ|terms|, with Σ|terms| ≤ (Σ_a |Aᵗ_ia| ‖G_a‖₁ ‖Bᵗ_a‖₁)² per input channel for an output
// in row / column i (the 1-D bound squared; ‖·‖₁ a row's |·|-sum) and ≤ (Σ_a |G_aj| ‖A_a‖₁ ‖Bᵗ_a‖₁)² per tile
// for dw (A = (Aᵗ)ᵗ). The GEMMs' sums are shorter than the direct ones: C terms instead of 9C, T tiles
// instead of N·OH·OW ≈ m²T.
//
// F(2×2): the 1-D bounds are 8 for y and 6 for dw (‖G_a‖₁ up to 1.5, ‖Bᵗ_a‖₁ = 2, Aᵗ's entries 0 and ±1).
// Forward and backward-data: C · 64 C against the direct 9C · 9C = 81 C²: no growth. Backward-filter: T · 36T
// against (4T)² = 16 T²: 2.25×. The transforms' own roundings add a few ulps of values of that size: growth
// 4. So the implicit-GEMM test's margin of 4 (test::float_sum_tolerance over the direct sum's length) times
// this growth: margin 16, which still catches a missing or extra term (an error of order 1/terms or more;
// scaling one of 16 terms of the output transform by 0.999 fails). Measured (2026-11-27, emulator): the
// largest error here is 8.5e-7, under 3% of its tolerance (typical errors grow like √terms, the bound like
// terms).
constexpr double kWinogradGrowth = 4.0;

// F(4×4) with the points 0, 1, −1, 2, −½, ∞ (the matrices in cuda/conv2d_winograd.hpp): per position a,
// ‖G_a‖₁ ‖Bᵗ_a‖₁ = 7, 5, 5, 1.4, 11.2, 7 and ‖A_a‖₁ ‖Bᵗ_a‖₁ = 14, 40, 40, 90, 45, 14; Aᵗ's rows 0 and 3 give
// the output's 1-D bound 29.6 (row 3: 5 + 5 + 8 · 1.4 + ⅛ · 11.2 + 7), G's columns 0 and 2 dw's 35.3.
// Forward and backward-data: C · 29.6² C = 876 C² against 81 C²: 10.8×. Backward-filter: T · 35.3² T =
// 1248 T² against (16T)² = 256 T²: 4.9×. (Lavin's points 0, ±1, ±2, ∞ give 28.4× and 11.1×.) With the
// transforms' own roundings, larger than F(2×2)'s since Bᵗ's and Aᵗ's entries reach 8: growth 16, margin
// 64. That still catches a wrong transform entry (scaling one of the 36 terms of the output transform by
// 0.999 fails; so does one of dw's). Measured (2026-11-27, emulator): the largest error here is 5.5e-6 (dx
// of conv 128→256; 9× F(2×2)'s 6.1e-7 there), under 2% of its tolerance.
constexpr double kWinograd4Growth = 16.0;

double growth(WinogradTile tile) {
    return tile == WinogradTile::f4x4 ? kWinograd4Growth : kWinogradGrowth;
}

double tolerance(int64_t terms, WinogradTile tile) {
    return test::float_sum_tolerance(terms, 4.0 * growth(tile));
}

// Every test case runs for both tiles (a Catch2 generator: the test case body runs once per tile).
WinogradTile both_tiles() {
    const WinogradTile tile = GENERATE(WinogradTile::f2x2, WinogradTile::f4x4);
    return tile;
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

void check_case(const ConvCase& c, uint32_t seed, WinogradTile tile) {
    INFO("case " << c.name << ", " << gpu::winograd_tile_name(tile));
    const Shape ws{c.oc, c.x[1], 3, 3};
    const HostTensor<float> x = test::random_tensor<float>(c.x, seed);
    const HostTensor<float> w = test::random_tensor<float>(ws, seed + 1);
    const HostTensor<float> bias = test::random_tensor<float>(Shape{c.oc}, seed + 2);
    const cpu::Conv2dGeometry g = cpu::conv2d_geometry(c.x, ws, pad1());
    REQUIRE(gpu::conv2d_winograd_unsupported(g, tile).empty());
    const HostTensor<float> dy = test::random_tensor<float>(g.output_shape(), seed + 3);
    const HostTensor<float> y_ref = cpu::conv2d<float>(x, w, c.bias ? &bias : nullptr, pad1());
    const cpu::Conv2dGrads<float> ref = cpu::conv2d_backward<float>(x, w, dy, c.bias, pad1());

    const size_t workspace_bytes = gpu::conv2d_winograd_workspace_bytes(g, tile);
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
                                 workspace.data(), workspace_bytes, nullptr, tile);
    poison(workspace);
    gpu::conv2d_winograd_backward_data(g, d_dy.data_as<float>(), d_w.data_as<float>(), d_dx.data_as<float>(),
                                       workspace.data(), workspace_bytes, nullptr, tile);
    poison(workspace);
    gpu::conv2d_winograd_backward_filter(g, d_x.data_as<float>(), d_dy.data_as<float>(),
                                         d_dw.data_as<float>(), c.bias ? d_db.data_as<float>() : nullptr,
                                         workspace.data(), workspace_bytes, nullptr, tile);

    // Direct reduction lengths: y sums 9·C taps (+ bias), dx 9·OC taps, dw and db N·OH·OW terms.
    const int64_t plane_terms = g.batch * g.out_h * g.out_w;
    const double y_error = test::max_relative_error(test::to_host<float>(d_y, g.output_shape()), y_ref);
    const double dx_error = test::max_relative_error(test::to_host<float>(d_dx, x.shape()), ref.dx);
    const double dw_error = test::max_relative_error(test::to_host<float>(d_dw, ws), ref.dweight);
    CHECK(y_error <= tolerance(9 * g.in_channels + 1, tile));
    CHECK(dx_error <= tolerance(9 * g.out_channels, tile));
    CHECK(dw_error <= tolerance(plane_terms, tile));
    if (c.bias) {
        const double db_error = test::max_relative_error(test::to_host<float>(d_db, Shape{c.oc}), ref.dbias);
        CHECK(db_error <= test::float_sum_tolerance(plane_terms, 4.0));  // conv_bias_grad: a plain float sum
    }
}

// The four calls for one tile, as test::ConvKernels' function pointers.
template <WinogradTile kTile>
test::ConvKernels kernels_of() {
    return {[](const cpu::Conv2dGeometry& g) { return gpu::conv2d_winograd_workspace_bytes(g, kTile); },
            [](const cpu::Conv2dGeometry& g, const float* x, const float* w, const float* bias, float* y,
               void* workspace, size_t bytes, cudaStream_t stream) {
                gpu::conv2d_winograd_forward(g, x, w, bias, y, workspace, bytes, stream, kTile);
            },
            [](const cpu::Conv2dGeometry& g, const float* dy, const float* w, float* dx, void* workspace,
               size_t bytes, cudaStream_t stream) {
                gpu::conv2d_winograd_backward_data(g, dy, w, dx, workspace, bytes, stream, kTile);
            },
            [](const cpu::Conv2dGeometry& g, const float* x, const float* dy, float* dw, float* dbias,
               void* workspace, size_t bytes, cudaStream_t stream) {
                gpu::conv2d_winograd_backward_filter(g, x, dy, dw, dbias, workspace, bytes, stream, kTile);
            }};
}

}  // namespace

TEST_CASE("conv2d_winograd matches the reference on CifarCNN's layers at batch 1",
          "[parity][conv2d_winograd]") {
    const WinogradTile tile = both_tiles();
    check_case({"conv 3→32, 32×32", Shape{1, 3, 32, 32}, 32}, 10, tile);
    check_case({"conv 32→64, 32×32, no bias", Shape{1, 32, 32, 32}, 64, false}, 20, tile);
    check_case({"conv 64→128, 16×16", Shape{1, 64, 16, 16}, 128}, 30, tile);
    check_case({"conv 128→128, 16×16", Shape{1, 128, 16, 16}, 128}, 40, tile);
    check_case({"conv 128→256, 8×8", Shape{1, 128, 8, 8}, 256}, 50, tile);
    check_case({"conv 256→256, 8×8", Shape{1, 256, 8, 8}, 256}, 60, tile);
}

TEST_CASE("conv2d_winograd matches the reference on odd shapes", "[parity][conv2d_winograd]") {
    // Odd H and W, and sizes that are not multiples of 4: the last tile row and column are partial (their
    // outputs beyond the map dropped, their gradients zero; for F(4×4) by 1, 2 or 3 rows); channel counts
    // that are multiples of nothing (the GEMMs' row pitch is padded to 4).
    const WinogradTile tile = both_tiles();
    check_case({"7×5, 3→5, batch 1", Shape{1, 3, 7, 5}, 5}, 70, tile);
    check_case({"7×5, 3→5, batch 3, no bias", Shape{3, 3, 7, 5}, 5, false}, 80, tile);
    check_case({"9×11, 5→7, batch 3", Shape{3, 5, 9, 11}, 7}, 90, tile);
    check_case({"1×1 images, 6→3, batch 3", Shape{3, 6, 1, 1}, 3}, 100, tile);
    check_case({"2×2 images, 3→6, batch 1", Shape{1, 3, 2, 2}, 6}, 110, tile);
    check_case({"1×6 images, 1→1, batch 2", Shape{2, 1, 1, 6}, 1}, 120, tile);
    check_case({"6×6, 4→3, batch 2", Shape{2, 4, 6, 6}, 3}, 121, tile);
    check_case({"9×9, 3→4, batch 1", Shape{1, 3, 9, 9}, 4}, 122, tile);
    check_case({"5×7, 2→3, batch 2, no bias", Shape{2, 2, 5, 7}, 3, false}, 123, tile);
    check_case({"3×3 images, 5→2, batch 3", Shape{3, 5, 3, 3}, 2}, 124, tile);
}

TEST_CASE("conv2d_winograd cuts backward-filter's tiles into chunks with a short last one",
          "[parity][conv2d_winograd]") {
    // 2 · 23 · 24 = 1104 tiles (F(2×2) on 45×47, F(4×4) on 91×95): 4 chunks of 288 (multiples of 16), the
    // last one 240 tiles + 48 zero tiles, summed in order.
    check_case({"45×47, 3→4, batch 2", Shape{2, 3, 45, 47}, 4}, 130, WinogradTile::f2x2);
    check_case({"91×95, 3→4, batch 2", Shape{2, 3, 91, 95}, 4}, 131, WinogradTile::f4x4);
}

TEST_CASE("conv2d_winograd is bitwise reproducible", "[parity][conv2d_winograd]") {
    const cpu::Conv2dGeometry g = cpu::conv2d_geometry(Shape{3, 5, 9, 11}, Shape{6, 5, 3, 3}, pad1());
    test::check_bitwise_reproducible(kernels_of<WinogradTile::f2x2>(), g);
    test::check_bitwise_reproducible(kernels_of<WinogradTile::f4x4>(), g);
}

TEST_CASE("conv2d_winograd names the geometries it does not support", "[parity][conv2d_winograd]") {
    using Catch::Matchers::Contains;
    const cpu::Conv2dGeometry cifar =
        cpu::conv2d_geometry(Shape{128, 128, 8, 8}, Shape{256, 128, 3, 3}, pad1());
    CHECK(gpu::conv2d_winograd_unsupported(cifar).empty());
    CHECK(gpu::conv2d_winograd_unsupported(cifar, WinogradTile::f4x4).empty());

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
    CHECK_THAT(gpu::conv2d_winograd_unsupported(
                   cpu::conv2d_geometry(xs, Shape{4, 3, 3, 3},
                                        test::conv2d_options(2, 1, 1, 1, Conv2dPaddingMode::zeros)),
                   WinogradTile::f4x4),
               Contains("conv2d_winograd: F(4×4, 3×3) computes 3×3 kernels with stride 1") &&
                   Contains("stride (2, 2)"));

    cpu::Conv2dGeometry huge = cifar;
    huge.batch =
        1 << 15;  // 2^15 · 4 · 4 = 2^19 tiles: the forward's M alone is 16 · 256 · 2^19 = 2^31 floats
    CHECK_THAT(gpu::conv2d_winograd_unsupported(huge),
               Contains("conv2d_winograd: geometry") && Contains("the kernels index with 32 bits"));
    // F(4×4)'s transformed tiles are 0.56 the size: its forward workspace (V and M) is 36 · (128 + 256) ·
    // 4 · batch floats: 1.36e9 at batch 3 · 2^13 (F(2×2)'s 16 · 384 · 16 · batch: 2.4e9), 3.6e9 at 2^16.
    huge.batch = 3 << 13;
    CHECK_THAT(gpu::conv2d_winograd_unsupported(huge), Contains("the kernels index with 32 bits"));
    CHECK(gpu::conv2d_winograd_unsupported(huge, WinogradTile::f4x4).empty());
    huge.batch = 1 << 16;
    CHECK_THAT(gpu::conv2d_winograd_unsupported(huge, WinogradTile::f4x4),
               Contains("transformed tiles of F(4×4, 3×3)") && Contains("the kernels index with 32 bits"));
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
                   Contains("allocate conv2d_winograd_workspace_bytes(g, tile) bytes (" + std::to_string(bytes) +
                            " for F(2×2, 3×3))"));
    CHECK_THAT(
        test::error_message([&] {
            gpu::conv2d_winograd_backward_filter(g, xp, yp, yp, nullptr, workspace.data(), bytes - 4,
                                                 nullptr);
        }),
        Contains("conv2d_winograd_backward_filter: workspace") &&
            Contains(std::to_string(bytes - 4) + " bytes is smaller than the " + std::to_string(bytes)));
    // A null workspace of the right size is named as null, not as "0x0 of N bytes smaller than M bytes".
    CHECK_THAT(test::error_message(
                   [&] { gpu::conv2d_winograd_backward_data(g, yp, wp, yp, nullptr, bytes, nullptr); }),
               Contains("conv2d_winograd_backward_data: the workspace is null") &&
                   Contains("conv2d_winograd_workspace_bytes(g, tile) bytes (" + std::to_string(bytes) +
                            " for F(2×2, 3×3))") &&
                   !Contains("is smaller"));
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

TEST_CASE("conv2d_winograd's F(4×4) workspace is sized and checked per direction",
          "[parity][conv2d_winograd]") {
    using Catch::Matchers::Contains;
    constexpr WinogradTile f4 = WinogradTile::f4x4;
    const cpu::Conv2dGeometry g = cpu::conv2d_geometry(Shape{2, 3, 7, 5}, Shape{4, 3, 3, 3}, pad1());
    const size_t bytes = gpu::conv2d_winograd_workspace_bytes(g, f4);
    // 2 · 2 · 2 = 8 tiles, 36 positions; parts start at multiples of 64 floats. Backward-filter needs the
    // most: one chunk of 16 tiles, so partial dU 36 · 4 · 4 + V 36 · 3 · 16 + dM 36 · 4 · 16 = 576 + 1728 +
    // 2304 floats.
    CHECK(bytes == (576 + 1728 + 2304) * sizeof(float));
    const DeviceBuffer x(2 * 3 * 7 * 5 * sizeof(float)), w(4 * 3 * 3 * 3 * sizeof(float));
    const DeviceBuffer y(2 * 4 * 7 * 5 * sizeof(float)), workspace(bytes);
    const float* xp = x.data_as<float>();
    const float* wp = w.data_as<float>();
    float* yp = y.data_as<float>();

    // The forward: U 36 · 4 · 4 = 576, V 36 · 3 · 8 = 864 (its part 896 long), M 36 · 4 · 8 = 1152.
    const size_t forward_bytes = (576 + 896 + 1152) * sizeof(float);
    CHECK_THAT(
        test::error_message([&] {
            gpu::conv2d_winograd_forward(g, xp, wp, nullptr, yp, workspace.data(), forward_bytes - 4, nullptr,
                                         f4);
        }),
        Contains("conv2d_winograd_forward: workspace") &&
            Contains(std::to_string(forward_bytes - 4) + " bytes is smaller than the " +
                     std::to_string(forward_bytes) + " bytes this call needs") &&
            Contains("allocate conv2d_winograd_workspace_bytes(g, tile) bytes (" + std::to_string(bytes) +
                            " for F(4×4, 3×3))"));
    // Backward-data: U 36 · 3 · 4 = 432 (448 long), V 36 · 4 · 8 = 1152, M 36 · 3 · 8 = 864.
    const size_t data_bytes = (448 + 1152 + 864) * sizeof(float);
    CHECK_THAT(test::error_message([&] {
                   gpu::conv2d_winograd_backward_data(g, yp, wp, yp, workspace.data(), data_bytes - 4,
                                                      nullptr, f4);
               }),
               Contains("conv2d_winograd_backward_data: workspace") &&
                   Contains("smaller than the " + std::to_string(data_bytes) + " bytes"));
    CHECK_THAT(test::error_message([&] {
                   gpu::conv2d_winograd_backward_filter(g, xp, yp, yp, nullptr, workspace.data(), bytes - 4,
                                                        nullptr, f4);
               }),
               Contains("conv2d_winograd_backward_filter: workspace") &&
                   Contains("smaller than the " + std::to_string(bytes) + " bytes"));
    // The F(2×2) workspace of this geometry (3840 floats) is too small for F(4×4)'s backward-filter.
    CHECK(gpu::conv2d_winograd_workspace_bytes(g) < bytes);
}
