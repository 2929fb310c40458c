// Parity of the implicit-GEMM convolution (cuda/conv2d_implicit.cu) with cpu::conv2d / cpu::conv2d_backward:
// forward, backward-data and backward-filter (with the bias gradient) on CifarCNN-like layers scaled down,
// odd shapes that are not multiples of any tile, strides, dilation and split-k; reproducibility; errors.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cstdint>
#include <string>
#include <utility>

#include "cuda/conv2d_implicit.hpp"
#include "cudacnn/ops/conv2d.hpp"
#include "support/compare.hpp"
#include "support/conv2d_options.hpp"
#include "support/conv_kernels.hpp"
#include "support/errors.hpp"
#include "support/parity.hpp"
#include "support/tolerance.hpp"

using namespace cudacnn;
using cpu::Conv2dOptions;
using cpu::Conv2dPadding;
using cpu::Conv2dPaddingMode;

namespace {

// Float sums of L terms against the double reference: the same tolerance as conv2d_im2col's parity test
// (test::float_sum_tolerance with a margin of 4; the kernels sum in k order like the SGEMM does).
double tolerance(int64_t terms) {
    return test::float_sum_tolerance(terms, 4.0);
}

struct ConvCase {
    std::string name;
    Shape x, w;  // (N, C, H, W), (OC, C, KH, KW)
    Conv2dOptions options;
    bool bias = true;
};

Conv2dOptions zeros(cpu::Pair2d stride, Conv2dPadding padding, cpu::Pair2d dilation = 1) {
    return test::conv2d_options(stride, padding, dilation, 1, Conv2dPaddingMode::zeros);
}

void poison(const DeviceBuffer& buffer) {
    fill_bytes(buffer.data(), 0xff, buffer.bytes());
}

void check_case(const ConvCase& c, uint32_t seed) {
    INFO("case " << c.name);
    const HostTensor<float> x = test::random_tensor<float>(c.x, seed);
    const HostTensor<float> w = test::random_tensor<float>(c.w, seed + 1);
    const HostTensor<float> bias = test::random_tensor<float>(Shape{c.w[0]}, seed + 2);
    const cpu::Conv2dGeometry g = cpu::conv2d_geometry(c.x, c.w, c.options);
    REQUIRE(gpu::conv2d_implicit_unsupported(g).empty());
    const HostTensor<float> dy = test::random_tensor<float>(g.output_shape(), seed + 3);
    const HostTensor<float> y_ref = cpu::conv2d<float>(x, w, c.bias ? &bias : nullptr, c.options);
    const cpu::Conv2dGrads<float> ref = cpu::conv2d_backward<float>(x, w, dy, c.bias, c.options);

    // At least one float, so that a geometry needing none still gets a real (poisoned) buffer.
    const size_t workspace_bytes = std::max<size_t>(gpu::conv2d_implicit_workspace_bytes(g), sizeof(float));
    const DeviceBuffer d_x = test::to_device(x), d_w = test::to_device(w), d_bias = test::to_device(bias),
                       d_dy = test::to_device(dy);
    const DeviceBuffer workspace(workspace_bytes);
    const DeviceBuffer d_y = test::poisoned<float>(g.output_shape().numel());
    const DeviceBuffer d_dx = test::poisoned<float>(x.numel()), d_dw = test::poisoned<float>(w.numel()),
                       d_db = test::poisoned<float>(g.out_channels);

    poison(workspace);
    gpu::conv2d_implicit_forward(g, d_x.data_as<float>(), d_w.data_as<float>(),
                                 c.bias ? d_bias.data_as<float>() : nullptr, d_y.data_as<float>(),
                                 workspace.data(), workspace_bytes, nullptr);
    poison(workspace);
    gpu::conv2d_implicit_backward_data(g, d_dy.data_as<float>(), d_w.data_as<float>(), d_dx.data_as<float>(),
                                       workspace.data(), workspace_bytes, nullptr);
    poison(workspace);
    gpu::conv2d_implicit_backward_filter(g, d_x.data_as<float>(), d_dy.data_as<float>(),
                                         d_dw.data_as<float>(), c.bias ? d_db.data_as<float>() : nullptr,
                                         workspace.data(), workspace_bytes, nullptr);

    // Reduction lengths: y sums C·KH·KW taps (+ bias); dx sums at most OC·KH·KW taps (zero padding: one
    // copy of each element); dw and db sum N·OH·OW terms.
    const int64_t taps = g.kernel_h * g.kernel_w;
    const double y_error = test::max_relative_error(test::to_host<float>(d_y, g.output_shape()), y_ref);
    const double dx_error = test::max_relative_error(test::to_host<float>(d_dx, x.shape()), ref.dx);
    const double dw_error = test::max_relative_error(test::to_host<float>(d_dw, w.shape()), ref.dweight);
    CHECK(y_error <= tolerance(g.in_channels * taps + 1));
    CHECK(dx_error <= tolerance(g.out_channels * taps));
    CHECK(dw_error <= tolerance(g.batch * g.out_h * g.out_w));
    if (c.bias) {
        const double db_error =
            test::max_relative_error(test::to_host<float>(d_db, Shape{g.out_channels}), ref.dbias);
        CHECK(db_error <= tolerance(g.batch * g.out_h * g.out_w));
    }
}

}  // namespace

TEST_CASE("conv2d_implicit matches the reference on CifarCNN's layers, scaled down",
          "[parity][conv2d_implicit]") {
    // CifarCNN's channel counts (3→32, 32→64, 64→128, 128→256) at smaller maps and batches, so all run in
    // about a second under the emulator: block tiles of 32, 64 and 128 rows, several row and column tiles,
    // and split k: 64→128 splits backward-data's k = 1152 in 2; 128→256 on 4×4 maps splits the forward's
    // k = 1152 in 2 (the bias added by the sum pass) and backward-data's k = 2304 in 4.
    const Conv2dOptions pad1 = zeros(1, 1);
    check_case({"conv 3→32, 16×16, batch 2", Shape{2, 3, 16, 16}, Shape{32, 3, 3, 3}, pad1}, 10);
    check_case({"conv 32→64, 16×16, batch 2", Shape{2, 32, 16, 16}, Shape{64, 32, 3, 3}, pad1}, 20);
    check_case({"conv 64→128, 8×8, batch 2, no bias", Shape{2, 64, 8, 8}, Shape{128, 64, 3, 3}, pad1, false},
               30);
    check_case({"conv 128→256, 4×4, batch 3", Shape{3, 128, 4, 4}, Shape{256, 128, 3, 3}, pad1}, 40);
}

TEST_CASE("conv2d_implicit matches the reference on odd shapes, strides and dilation",
          "[parity][conv2d_implicit]") {
    // 7×5 images, C = 3, OC = 5, batches 1 and 3: no size is a multiple of any tile or of 4.
    check_case({"7×5, 3→5, pad 1, batch 1", Shape{1, 3, 7, 5}, Shape{5, 3, 3, 3}, zeros(1, 1)}, 50);
    check_case(
        {"7×5, 3→5, pad 1, batch 3, no bias", Shape{3, 3, 7, 5}, Shape{5, 3, 3, 3}, zeros(1, 1), false}, 60);
    check_case(
        {"stride 2, 2×3 kernel, pad (1, 2), batch 3", Shape{3, 3, 7, 5}, Shape{5, 3, 2, 3}, zeros(2, {1, 2})},
        70);
    check_case({"stride (2, 3), pad 0, batch 3", Shape{3, 3, 7, 5}, Shape{5, 3, 3, 2}, zeros({2, 3}, 0)}, 80);
    check_case({"dilation 2, stride (1, 2), pad 2, batch 1", Shape{1, 3, 7, 5}, Shape{5, 3, 3, 3},
                zeros({1, 2}, 2, 2)},
               90);
    check_case({"'same', 4×2 kernel (pads 1 top, 2 bottom, 0 left, 1 right)", Shape{3, 3, 7, 5},
                Shape{5, 3, 4, 2}, zeros(1, Conv2dPadding::same())},
               100);
    check_case({"'valid', 1×1 kernel, 130 output channels (two row tiles)", Shape{1, 3, 7, 5},
                Shape{130, 3, 1, 1}, zeros(1, Conv2dPadding::valid())},
               110);
}

TEST_CASE("conv2d_implicit splits backward-filter's k range with a short last slice",
          "[parity][conv2d_implicit]") {
    // 5 · 13 · 11 = 715 columns of k with one output tile: 1 slice of 720 ≥ 512; 9 · 13 · 11 = 1287: two
    // slices of 648 and 639 (k slices are multiples of 8), summed in order.
    check_case({"4→8, 13×11, batch 5", Shape{5, 4, 13, 11}, Shape{8, 4, 3, 3}, zeros(1, 1)}, 120);
    check_case({"4→8, 13×11, batch 9", Shape{9, 4, 13, 11}, Shape{8, 4, 3, 3}, zeros(1, 1)}, 130);
    // 12 · 15 · 16 = 2880 columns: 5 slices of 576, with stride 2 and no padding on an odd 31×33 input.
    check_case({"3→5, 31×33, stride 2, batch 12", Shape{12, 3, 31, 33}, Shape{5, 3, 3, 3}, zeros(2, 0)}, 140);
}

TEST_CASE("conv2d_implicit is bitwise reproducible", "[parity][conv2d_implicit]") {
    const test::ConvKernels kernels{gpu::conv2d_implicit_workspace_bytes, gpu::conv2d_implicit_forward,
                                    gpu::conv2d_implicit_backward_data, gpu::conv2d_implicit_backward_filter};
    test::check_bitwise_reproducible(kernels, cpu::conv2d_geometry(Shape{9, 4, 13, 11}, Shape{6, 4, 3, 3}, zeros(1, 1)));
}

TEST_CASE("conv2d_implicit names the geometries it does not support", "[parity][conv2d_implicit]") {
    using Catch::Matchers::Contains;
    const cpu::Conv2dGeometry cifar =
        cpu::conv2d_geometry(Shape{128, 128, 8, 8}, Shape{256, 128, 3, 3}, zeros(1, 1));
    CHECK(gpu::conv2d_implicit_unsupported(cifar).empty());

    const cpu::Conv2dGeometry grouped = cpu::conv2d_geometry(
        Shape{1, 6, 7, 5}, Shape{9, 2, 3, 3}, test::conv2d_options(1, 1, 1, 3, Conv2dPaddingMode::zeros));
    CHECK_THAT(gpu::conv2d_implicit_unsupported(grouped),
               Contains("conv2d_implicit: groups 3 are not supported (only groups 1)"));
    const cpu::Conv2dGeometry reflect = cpu::conv2d_geometry(
        Shape{1, 3, 7, 5}, Shape{4, 3, 3, 3}, test::conv2d_options(1, 1, 1, 1, Conv2dPaddingMode::reflect));
    CHECK_THAT(gpu::conv2d_implicit_unsupported(reflect),
               Contains("conv2d_implicit: padding_mode 'reflect' is not supported (only 'zeros')"));

    cpu::Conv2dGeometry huge = cifar;
    huge.batch = 1;
    huge.in_channels = 1 << 19;  // a 2^31-element input
    huge.out_channels = 1;
    huge.in_h = huge.in_w = huge.out_h = huge.out_w = 64;
    huge.kernel_h = huge.kernel_w = 1;
    huge.pad_top = huge.pad_bottom = huge.pad_left = huge.pad_right = 0;
    CHECK_THAT(gpu::conv2d_implicit_unsupported(huge), Contains("conv2d_implicit") && Contains("2147483648"));
}

TEST_CASE("conv2d_implicit rejects bad arguments naming the op and the values", "[parity][conv2d_implicit]") {
    using Catch::Matchers::Contains;
    const cpu::Conv2dGeometry g = cpu::conv2d_geometry(Shape{2, 3, 7, 5}, Shape{4, 3, 3, 3}, Conv2dOptions{});
    const size_t bytes = gpu::conv2d_implicit_workspace_bytes(g);
    CHECK(bytes == 4 * 3 * 3 * 3 * sizeof(float));  // the transposed weights; backward-filter does not split
    const DeviceBuffer x(2 * 3 * 7 * 5 * sizeof(float)), w(4 * 3 * 3 * 3 * sizeof(float));
    const DeviceBuffer y(2 * 4 * 5 * 3 * sizeof(float)), workspace(bytes);
    const float* xp = x.data_as<float>();
    const float* wp = w.data_as<float>();
    float* yp = y.data_as<float>();

    CHECK_THAT(test::error_message([&] {
                   gpu::conv2d_implicit_backward_data(g, yp, wp, yp, workspace.data(), bytes - 4, nullptr);
               }),
               Contains("conv2d_implicit_backward_data: workspace") &&
                   Contains(std::to_string(bytes - 4) + " bytes is smaller than the " +
                            std::to_string(bytes) + " bytes"));
    CHECK_THAT(test::error_message([&] {
                   gpu::conv2d_implicit_backward_data(g, yp, wp, nullptr, workspace.data(), bytes, nullptr);
               }),
               Contains("conv2d_implicit_backward_data: dy, w and dx must be device pointers"));
    CHECK_THAT(test::error_message(
                   [&] { gpu::conv2d_implicit_forward(g, nullptr, wp, nullptr, yp, nullptr, 0, nullptr); }),
               Contains("conv2d_implicit_forward: x, w and y must be device pointers"));

    // 256 output channels of 4×4 maps with k = 1152: the forward splits k in 2 and needs partial sums.
    const cpu::Conv2dGeometry split =
        cpu::conv2d_geometry(Shape{1, 128, 4, 4}, Shape{256, 128, 3, 3}, zeros(1, 1));
    const DeviceBuffer big(256 * 128 * 9 * sizeof(float));
    CHECK_THAT(test::error_message([&] {
                   gpu::conv2d_implicit_forward(split, big.data_as<float>(), big.data_as<float>(), nullptr,
                                                big.data_as<float>(), nullptr, 0, nullptr);
               }),
               Contains("conv2d_implicit_forward: the workspace is null") &&
                   Contains("the workspace is null, but this call needs " +
                            std::to_string(2 * 256 * 16 * sizeof(float)) + " bytes"));

    cpu::Conv2dGeometry wrong_output = g;
    wrong_output.out_w = 4;
    CHECK_THAT(
        test::error_message([&] {
            gpu::conv2d_implicit_backward_filter(wrong_output, xp, yp, yp, nullptr, workspace.data(), bytes,
                                                 nullptr);
        }),
        Contains("conv2d_implicit_backward_filter: conv2d: geometry") && Contains("output 5×4) is not what"));

    cpu::Conv2dGeometry bad_groups = g;
    bad_groups.groups = 2;
    CHECK_THAT(
        test::error_message(
            [&] { gpu::conv2d_implicit_forward(bad_groups, xp, wp, nullptr, yp, nullptr, 0, nullptr); }),
        Contains("conv2d_implicit_forward: conv2d: groups 2 must divide in_channels 3 and out_channels 4"));
    CHECK_THAT(test::error_message([&] { gpu::conv2d_implicit_workspace_bytes(bad_groups); }),
               Contains("conv2d_implicit_workspace_bytes: conv2d: groups 2 must divide"));
}
