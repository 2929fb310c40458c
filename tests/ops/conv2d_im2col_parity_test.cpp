// Parity of the im2col + SGEMM convolution (cuda/conv2d_im2col.cu) with cpu::conv2d / cpu::conv2d_backward:
// forward, backward-data and backward-filter (with the bias gradient) for every option of the reference.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cstdint>
#include <string>
#include <utility>

#include "cuda/conv2d_im2col.hpp"
#include "cudacnn/ops/conv2d.hpp"
#include "support/compare.hpp"
#include "support/errors.hpp"
#include "support/parity.hpp"
#include "support/tolerance.hpp"
#include "support/conv2d_options.hpp"

using namespace cudacnn;
using cpu::Conv2dOptions;
using cpu::Conv2dPadding;
using cpu::Conv2dPaddingMode;

namespace {

// Float sums of L terms against the double reference: test::float_sum_tolerance with a margin of 4 (the
// partial sums of these random inputs stay within a few times max |result|; measured errors are ~1e-7).
double tolerance(int64_t terms) {
    return test::float_sum_tolerance(terms, 4.0);
}

struct ConvCase {
    std::string name;
    Shape x, w;  // (N, C, H, W), (OC, C / G, KH, KW)
    Conv2dOptions options;
    bool bias = true;
    int64_t workspace_images = 0;  // > 0: a workspace for only this many images, so the batch runs in chunks
};

// The workspace for a chunk of `images` images: what conv2d_im2col_workspace_bytes asks for a batch of that
// many, so that the launchers choose exactly that chunk.
size_t workspace_for_images(const cpu::Conv2dGeometry& g, int64_t images) {
    cpu::Conv2dGeometry chunk = g;
    chunk.batch = images;
    return gpu::conv2d_im2col_workspace_bytes(chunk);
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
    REQUIRE(gpu::conv2d_im2col_unsupported(g).empty());
    const HostTensor<float> dy = test::random_tensor<float>(g.output_shape(), seed + 3);
    const HostTensor<float> y_ref = cpu::conv2d<float>(x, w, c.bias ? &bias : nullptr, c.options);
    const cpu::Conv2dGrads<float> ref = cpu::conv2d_backward<float>(x, w, dy, c.bias, c.options);

    const size_t workspace_bytes = c.workspace_images > 0 ? workspace_for_images(g, c.workspace_images)
                                                          : gpu::conv2d_im2col_workspace_bytes(g);
    const DeviceBuffer d_x = test::to_device(x), d_w = test::to_device(w), d_bias = test::to_device(bias),
                       d_dy = test::to_device(dy);
    const DeviceBuffer workspace(workspace_bytes);
    const DeviceBuffer d_y = test::poisoned<float>(g.output_shape().numel());
    const DeviceBuffer d_dx = test::poisoned<float>(x.numel()), d_dw = test::poisoned<float>(w.numel()),
                       d_db = test::poisoned<float>(g.out_channels);

    poison(workspace);
    gpu::conv2d_im2col_forward(g, d_x.data_as<float>(), d_w.data_as<float>(),
                               c.bias ? d_bias.data_as<float>() : nullptr, d_y.data_as<float>(),
                               workspace.data(), workspace_bytes, nullptr);
    poison(workspace);
    gpu::conv2d_im2col_backward_data(g, d_dy.data_as<float>(), d_w.data_as<float>(), d_dx.data_as<float>(),
                                     workspace.data(), workspace_bytes, nullptr);
    poison(workspace);
    gpu::conv2d_im2col_backward_filter(g, d_x.data_as<float>(), d_dy.data_as<float>(), d_dw.data_as<float>(),
                                       c.bias ? d_db.data_as<float>() : nullptr, workspace.data(),
                                       workspace_bytes, nullptr);

    // Reduction lengths: y sums C/G·KH·KW taps (+ bias); dx sums OC/G·KH·KW taps per padded copy of the
    // element (at most (1 + pad) copies per axis here: replicate's edge runs, reflect's and circular's single
    // copies); dw and db sum N·OH·OW terms.
    const int64_t taps = g.kernel_h * g.kernel_w;
    const int64_t copies = (1 + std::max(g.pad_top, g.pad_bottom)) * (1 + std::max(g.pad_left, g.pad_right));
    const double y_error = test::max_relative_error(test::to_host<float>(d_y, g.output_shape()), y_ref);
    const double dx_error = test::max_relative_error(test::to_host<float>(d_dx, x.shape()), ref.dx);
    const double dw_error = test::max_relative_error(test::to_host<float>(d_dw, w.shape()), ref.dweight);
    CHECK(y_error <= tolerance(g.in_channels_per_group() * taps + 1));
    CHECK(dx_error <= tolerance(g.out_channels_per_group() * taps * copies));
    CHECK(dw_error <= tolerance(g.batch * g.out_h * g.out_w));
    if (c.bias) {
        const double db_error =
            test::max_relative_error(test::to_host<float>(d_db, Shape{g.out_channels}), ref.dbias);
        CHECK(db_error <= tolerance(g.batch * g.out_h * g.out_w));
    }
}

}  // namespace

TEST_CASE("conv2d_im2col matches the reference on CifarCNN's first layers, scaled down",
          "[parity][conv2d_im2col]") {
    const Conv2dOptions pad1 = test::conv2d_options(1, 1, 1, 1, Conv2dPaddingMode::zeros);
    check_case({"conv 3→32, 3×3 pad 1, 16×16, batch 2", Shape{2, 3, 16, 16}, Shape{32, 3, 3, 3}, pad1}, 10);
    check_case({"conv 32→64, 3×3 pad 1, 16×16, batch 2", Shape{2, 32, 16, 16}, Shape{64, 32, 3, 3}, pad1},
               20);
}

TEST_CASE("conv2d_im2col matches the reference for strides, kernels, dilation, 'same' and 'valid'",
          "[parity][conv2d_im2col]") {
    using M = Conv2dPaddingMode;
    // 7×5 images, 3 channels, batches 1 and 5; a stride-2 rectangular kernel; dilation 2; 'same' with an even
    // kernel (the extra row and column go bottom / right); 'valid'.
    check_case({"stride 2, 2×3 kernel, pad (1, 2), batch 5", Shape{5, 3, 7, 5}, Shape{4, 3, 2, 3},
                test::conv2d_options({2, 2}, {1, 2}, 1, 1, M::zeros)},
               30);
    check_case({"dilation 2, stride (1, 2), pad 2, no bias, batch 1", Shape{1, 3, 7, 5}, Shape{5, 3, 3, 3},
                test::conv2d_options({1, 2}, 2, 2, 1, M::zeros), false},
               40);
    check_case({"'same', 4×2 kernel", Shape{2, 3, 7, 5}, Shape{4, 3, 4, 2},
                test::conv2d_options(1, Conv2dPadding::same(), 1, 1, M::zeros)},
               50);
    check_case({"'valid', 3×3 kernel, no bias", Shape{2, 3, 7, 5}, Shape{6, 3, 3, 3},
                test::conv2d_options(1, Conv2dPadding::valid(), 1, 1, M::zeros), false},
               60);
}

TEST_CASE("conv2d_im2col matches the reference for groups and depthwise", "[parity][conv2d_im2col]") {
    using M = Conv2dPaddingMode;
    // groups 3 with batch 1 (one GEMM call per image, batched over groups) and depthwise with a channel
    // multiplier of 2 and batch 5 (one call per group, batched over images).
    check_case({"groups 3, 6→9, batch 1", Shape{1, 6, 7, 5}, Shape{9, 2, 3, 3},
                test::conv2d_options(1, 1, 1, 3, M::zeros)},
               70);
    check_case({"depthwise ×2, 3→6, stride 2, batch 5", Shape{5, 3, 7, 5}, Shape{6, 1, 3, 3},
                test::conv2d_options(2, 1, 1, 3, M::zeros), false},
               80);
}

TEST_CASE("conv2d_im2col matches the reference for every padding mode, gradients included",
          "[parity][conv2d_im2col]") {
    using M = Conv2dPaddingMode;
    check_case({"reflect, 'same' with a 4×4 kernel (pads 1 top, 2 bottom)", Shape{2, 3, 7, 5},
                Shape{4, 3, 4, 4}, test::conv2d_options(1, Conv2dPadding::same(), 1, 1, M::reflect)},
               90);
    check_case({"reflect, pad (2, 4), dilation 2, groups 3", Shape{1, 3, 7, 5}, Shape{3, 1, 2, 3},
                test::conv2d_options(1, {2, 4}, 2, 3, M::reflect), false},
               100);
    check_case({"replicate, pad (3, 2) wider than the kernel, stride 2", Shape{2, 3, 7, 5}, Shape{4, 3, 3, 2},
                test::conv2d_options(2, {3, 2}, 1, 1, M::replicate)},
               110);
    check_case({"circular, pad as large as the input (3, 2) on 3×2", Shape{2, 3, 3, 2}, Shape{2, 3, 3, 3},
                test::conv2d_options(1, {3, 2}, 1, 1, M::circular)},
               120);
    check_case(
        {"circular, 'same' 2×4 kernel, dilation (1, 2) (pads 0 top, 1 bottom)", Shape{1, 3, 7, 5},
         Shape{3, 3, 2, 4}, test::conv2d_options(1, Conv2dPadding::same(), {1, 2}, 1, M::circular), false},
        130);
}

TEST_CASE("conv2d_im2col splits backward-filter's k range with a short last slice",
          "[parity][conv2d_im2col]") {
    // 4 · 13 · 11 = 572 columns: 2 slices of 288 and 284.
    check_case({"split-k, 4→8, 13×11, batch 4", Shape{4, 4, 13, 11}, Shape{8, 4, 3, 3},
                test::conv2d_options(1, 1, 1, 1, Conv2dPaddingMode::circular)},
               170);
}

TEST_CASE("conv2d_im2col processes the batch in chunks when the workspace holds fewer images",
          "[parity][conv2d_im2col]") {
    using M = Conv2dPaddingMode;
    // Batch 5 in chunks of 2, 2 and 1: offsets of later chunks, a short last chunk, and backward-filter
    // adding each chunk to the earlier ones, through split-k partial sums (2 · 16 · 16 columns make 2 slices)
    // and through the GEMM's beta = 1 (the last chunk's 256 columns make one slice).
    check_case({"replicate, 16×16, chunks of 2", Shape{5, 3, 16, 16}, Shape{4, 3, 3, 3},
                test::conv2d_options(1, 1, 1, 1, M::replicate), true, 2},
               140);
    check_case({"groups 3, circular, chunks of 1", Shape{3, 6, 7, 5}, Shape{6, 2, 3, 3},
                test::conv2d_options(1, 1, 1, 3, M::circular), true, 1},
               150);
}

TEST_CASE("conv2d_im2col is bitwise reproducible", "[parity][conv2d_im2col]") {
    const cpu::Conv2dGeometry g = cpu::conv2d_geometry(
        Shape{2, 4, 7, 5}, Shape{6, 2, 3, 3}, test::conv2d_options(1, 1, 1, 2, Conv2dPaddingMode::reflect));
    const DeviceBuffer x = test::to_device(test::random_tensor<float>(Shape{2, 4, 7, 5}, 160));
    const DeviceBuffer dy = test::to_device(test::random_tensor<float>(g.output_shape(), 161));
    const DeviceBuffer w = test::to_device(test::random_tensor<float>(Shape{6, 2, 3, 3}, 162));
    const size_t bytes = gpu::conv2d_im2col_workspace_bytes(g);
    const DeviceBuffer workspace(bytes);
    auto gradients = [&]() {
        const DeviceBuffer dx = test::poisoned<float>(2 * 4 * 7 * 5),
                           dw = test::poisoned<float>(6 * 2 * 3 * 3);
        gpu::conv2d_im2col_backward_data(g, dy.data_as<float>(), w.data_as<float>(), dx.data_as<float>(),
                                         workspace.data(), bytes, nullptr);
        gpu::conv2d_im2col_backward_filter(g, x.data_as<float>(), dy.data_as<float>(), dw.data_as<float>(),
                                           nullptr, workspace.data(), bytes, nullptr);
        return std::make_pair(test::to_host<float>(dx, Shape{2, 4, 7, 5}),
                              test::to_host<float>(dw, Shape{6, 2, 3, 3}));
    };
    const auto first = gradients(), second = gradients();
    CHECK(test::bitwise_equal(first.first, second.first));
    CHECK(test::bitwise_equal(first.second, second.second));
}

TEST_CASE("conv2d_im2col rejects bad arguments naming the op and the values", "[parity][conv2d_im2col]") {
    using Catch::Matchers::Contains;
    const cpu::Conv2dGeometry g = cpu::conv2d_geometry(Shape{2, 3, 7, 5}, Shape{4, 3, 3, 3}, Conv2dOptions{});
    const size_t bytes = gpu::conv2d_im2col_workspace_bytes(g);
    const DeviceBuffer x(2 * 3 * 7 * 5 * sizeof(float)), w(4 * 3 * 3 * 3 * sizeof(float));
    const DeviceBuffer y(2 * 4 * 5 * 3 * sizeof(float)), workspace(bytes);
    const float* xp = x.data_as<float>();
    const float* wp = w.data_as<float>();
    float* yp = y.data_as<float>();

    const size_t one_image = workspace_for_images(g, 1);
    CHECK_THAT(
        test::error_message([&] {
            gpu::conv2d_im2col_forward(g, xp, wp, nullptr, yp, workspace.data(), one_image - 4, nullptr);
        }),
        Contains("conv2d_im2col_forward: workspace") && Contains(std::to_string(one_image - 4) + " bytes") &&
            Contains(std::to_string(one_image) + " bytes one image needs"));
    CHECK_THAT(test::error_message([&] {
                   gpu::conv2d_im2col_backward_data(g, yp, wp, nullptr, workspace.data(), bytes, nullptr);
               }),
               Contains("conv2d_im2col_backward_data: dy, w and dx must be device pointers"));

    cpu::Conv2dGeometry wrong_output = g;
    wrong_output.out_w = 4;
    CHECK_THAT(test::error_message([&] {
                   gpu::conv2d_im2col_backward_filter(wrong_output, xp, yp, yp, nullptr, workspace.data(),
                                                      bytes, nullptr);
               }),
               Contains("conv2d_im2col_backward_filter: conv2d: geometry") &&
                   Contains("output 5×4) is not what") && Contains("cpu::conv2d_geometry resolves") &&
                   Contains("output 5×3)"));

    cpu::Conv2dGeometry bad_groups = g;
    bad_groups.groups = 2;
    CHECK_THAT(
        test::error_message([&] {
            gpu::conv2d_im2col_forward(bad_groups, xp, wp, nullptr, yp, workspace.data(), bytes, nullptr);
        }),
        Contains("conv2d_im2col_forward: conv2d: groups 2 must divide in_channels 3 and out_channels 4"));
    CHECK_THAT(test::error_message([&] { gpu::conv2d_im2col_workspace_bytes(bad_groups); }),
               Contains("conv2d_im2col_workspace_bytes: conv2d: groups 2 must divide"));

    cpu::Conv2dGeometry too_much_reflect = g;
    too_much_reflect.padding_mode = Conv2dPaddingMode::reflect;
    too_much_reflect.pad_left = too_much_reflect.pad_right = 5;
    too_much_reflect.out_w = 13;
    CHECK_THAT(
        test::error_message([&] {
            gpu::conv2d_im2col_forward(too_much_reflect, xp, wp, nullptr, yp, workspace.data(), bytes,
                                       nullptr);
        }),
        Contains(
            "conv2d_im2col_forward: conv2d: padding_mode 'reflect' needs padding smaller than the input") &&
            Contains("left 5"));

    cpu::Conv2dGeometry huge = g;
    huge.batch = 1;
    huge.in_channels = 1 << 18;  // a 2^30-element input and column matrix
    huge.out_channels = 1;
    huge.in_h = huge.in_w = huge.out_h = huge.out_w = 64;
    huge.kernel_h = huge.kernel_w = 1;
    CHECK_THAT(gpu::conv2d_im2col_unsupported(huge), Contains("conv2d_im2col") && Contains("1073741824"));
}
