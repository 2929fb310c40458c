// Parity of the direct conv2d kernels (forward, backward-data, backward-filter) with the CPU reference
// conv2d, over CifarCNN-like layers and odd shapes, every padding kind and mode, groups and depthwise, with
// and without bias; plus bit-reproducibility and the launchers' argument errors.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cstdint>
#include <initializer_list>

#include "cuda/conv2d_direct.hpp"
#include "cudacnn/device.hpp"
#include "cudacnn/ops/conv2d.hpp"
#include "support/compare.hpp"
#include "support/errors.hpp"
#include "support/parity.hpp"
#include "support/tolerance.hpp"

using Catch::Matchers::Contains;
using cudacnn::DeviceBuffer;
using cudacnn::HostTensor;
using cudacnn::Shape;
using cudacnn::cpu::Conv2dGeometry;
using cudacnn::cpu::Conv2dOptions;
using cudacnn::cpu::Conv2dPadding;
using cudacnn::cpu::Conv2dPaddingMode;
using cudacnn::cpu::Pair2d;
namespace gpu = cudacnn::gpu;
namespace test = cudacnn::test;

namespace {

// The kernels sum in float, in another order than the reference, which sums in double and rounds once:
// test::float_sum_tolerance with a margin of 4 for the partial sums' growth and the final rounding.
double tolerance(int64_t reduction_length) {
    return test::float_sum_tolerance(reduction_length, 4.0);
}

// How many padded positions can read one input element along an axis: itself, plus for reflect and
// circular one copy on each side, for replicate the whole run of padding at an edge.
int64_t padded_copies(Conv2dPaddingMode mode, int64_t pad_before, int64_t pad_after) {
    switch (mode) {
        case Conv2dPaddingMode::zeros:
            return 1;
        case Conv2dPaddingMode::replicate:
            return 1 + pad_before + pad_after;
        default:
            return 3;
    }
}

// The longest sum each output is: forward over (c, i, j) plus the bias; backward-data over (oc, i, j) and the
// padded copies; backward-filter and dbias over (n, oh, ow).
int64_t forward_length(const Conv2dGeometry& g) {
    return g.in_channels_per_group() * g.kernel_h * g.kernel_w + 1;
}
int64_t backward_data_length(const Conv2dGeometry& g) {
    return g.out_channels_per_group() * g.kernel_h * g.kernel_w *
           padded_copies(g.padding_mode, g.pad_top, g.pad_bottom) *
           padded_copies(g.padding_mode, g.pad_left, g.pad_right);
}
int64_t backward_filter_length(const Conv2dGeometry& g) {
    return g.batch * g.out_h * g.out_w;
}

struct Case {
    const char* name;
    Shape x, w;             // (N, C, H, W), (OC, C/G, KH, KW)
    Conv2dOptions options;  // {stride, padding, dilation, groups, padding_mode}, the rest PyTorch's defaults
    bool bias;
};

float* floats(DeviceBuffer& b) {
    return b.data_as<float>();
}

// A NaN-poisoned workspace of conv2d_direct_workspace_bytes(g) bytes (at least one float, so never null).
DeviceBuffer workspace_for(const Conv2dGeometry& g) {
    return test::poisoned<float>(std::max<int64_t>(1, gpu::conv2d_direct_workspace_bytes(g) / sizeof(float)));
}

// The three kernels on NaN-poisoned outputs against cpu::conv2d and cpu::conv2d_backward.
void check_parity(const Case& c, uint32_t seed) {
    INFO(c.name);
    const Conv2dGeometry g = cudacnn::cpu::conv2d_geometry(c.x, c.w, c.options);
    REQUIRE(gpu::conv2d_direct_unsupported(g).empty());
    const auto x = test::random_tensor<float>(c.x, seed);
    const auto w = test::random_tensor<float>(c.w, seed + 1);
    const auto b = test::random_tensor<float>(Shape{g.out_channels}, seed + 2);
    const auto dy = test::random_tensor<float>(g.output_shape(), seed + 3);
    const auto y_ref = cudacnn::cpu::conv2d(x, w, c.bias ? &b : nullptr, c.options);
    const auto grads = cudacnn::cpu::conv2d_backward(x, w, dy, c.bias, c.options);

    DeviceBuffer x_d = test::to_device(x), w_d = test::to_device(w), b_d = test::to_device(b),
                 dy_d = test::to_device(dy);
    DeviceBuffer y_d = test::poisoned<float>(y_ref.numel()), dx_d = test::poisoned<float>(x.numel()),
                 dw_d = test::poisoned<float>(w.numel()), db_d = test::poisoned<float>(g.out_channels);
    DeviceBuffer workspace = workspace_for(g);
    gpu::conv2d_direct_forward(g, floats(x_d), floats(w_d), c.bias ? floats(b_d) : nullptr, floats(y_d),
                               nullptr);
    gpu::conv2d_direct_backward_data(g, floats(dy_d), floats(w_d), floats(dx_d), nullptr);
    gpu::conv2d_direct_backward_filter(g, floats(x_d), floats(dy_d), floats(dw_d),
                                       c.bias ? floats(db_d) : nullptr, workspace.data(),
                                       gpu::conv2d_direct_workspace_bytes(g), nullptr);

    const double y_error = test::max_relative_error(test::to_host<float>(y_d, y_ref.shape()), y_ref);
    const double dx_error = test::max_relative_error(test::to_host<float>(dx_d, x.shape()), grads.dx);
    const double dw_error = test::max_relative_error(test::to_host<float>(dw_d, w.shape()), grads.dweight);
    INFO("y error " << y_error << ", dx error " << dx_error << ", dw error " << dw_error);
    CHECK(y_error <= tolerance(forward_length(g)));
    CHECK(dx_error <= tolerance(backward_data_length(g)));
    CHECK(dw_error <= tolerance(backward_filter_length(g)));
    if (c.bias) {
        const double db_error =
            test::max_relative_error(test::to_host<float>(db_d, Shape{g.out_channels}), grads.dbias);
        INFO("dbias error " << db_error);
        CHECK(db_error <= tolerance(backward_filter_length(g)));
    }
}

void check_all(std::initializer_list<Case> cases) {
    uint32_t seed = 100;
    for (const Case& c : cases) check_parity(c, seed += 10);
}

}  // namespace

TEST_CASE("conv2d_direct matches the reference on CifarCNN-like layers", "[parity][conv2d_direct]") {
    // Conv(3→32, k3, p1) and Conv(32→64, k3, p1) of CifarCNN on scaled-down images, batch 2.
    check_all({
        {"3->32 k3 p1 16x16", Shape{2, 3, 16, 16}, Shape{32, 3, 3, 3}, Conv2dOptions{1, 1}, true},
        {"32->64 k3 p1 8x8", Shape{2, 32, 8, 8}, Shape{64, 32, 3, 3}, Conv2dOptions{1, 1}, true},
    });
}

TEST_CASE("conv2d_direct matches the reference with strides, rectangular kernels and dilation on 7x5 images",
          "[parity][conv2d_direct]") {
    check_all({
        {"batch 1, stride 2, 3x2 kernel, pad (1, 0)", Shape{1, 3, 7, 5}, Shape{4, 3, 3, 2},
         Conv2dOptions{2, Conv2dPadding(1, 0)}, false},
        {"batch 5, stride (1, 2), dilation 2, 2x3 kernel, pad (2, 1)", Shape{5, 3, 7, 5}, Shape{5, 3, 2, 3},
         Conv2dOptions{Pair2d(1, 2), Conv2dPadding(2, 1), 2}, true},
    });
}

TEST_CASE("conv2d_direct matches the reference with groups and depthwise", "[parity][conv2d_direct]") {
    check_all({
        {"groups 3, 6->9 channels, reflect", Shape{2, 6, 7, 5}, Shape{9, 2, 3, 3},
         Conv2dOptions{1, 1, 1, 3, Conv2dPaddingMode::reflect}, true},
        {"depthwise 3, stride 2, replicate", Shape{2, 3, 7, 5}, Shape{3, 1, 3, 3},
         Conv2dOptions{2, 1, 1, 3, Conv2dPaddingMode::replicate}, true},
        {"depthwise multiplier 2, dilation 2, circular", Shape{1, 3, 7, 5}, Shape{6, 1, 3, 3},
         Conv2dOptions{1, 2, 2, 3, Conv2dPaddingMode::circular}, false},
    });
}

TEST_CASE("conv2d_direct matches the reference with padding 'same' (uneven) and 'valid'",
          "[parity][conv2d_direct]") {
    check_all({
        // 'same' with even kernels: top 0 / bottom 1, left 1 / right 2.
        {"same, 2x4 kernel, circular", Shape{1, 3, 7, 5}, Shape{4, 3, 2, 4},
         Conv2dOptions{1, Conv2dPadding::same(), 1, 1, Conv2dPaddingMode::circular}, false},
        // top 1 / bottom 2, left 0 / right 1.
        {"same, 4x2 kernel, reflect", Shape{2, 3, 7, 5}, Shape{4, 3, 4, 2},
         Conv2dOptions{1, Conv2dPadding::same(), 1, 1, Conv2dPaddingMode::reflect}, true},
        {"same, 2x2 kernel, dilation (1, 3), zeros", Shape{1, 3, 7, 5}, Shape{2, 3, 2, 2},
         Conv2dOptions{1, Conv2dPadding::same(), Pair2d(1, 3)}, true},
        {"valid, stride 2, batch 5", Shape{5, 3, 7, 5}, Shape{4, 3, 3, 3},
         Conv2dOptions{2, Conv2dPadding::valid()}, true},
    });
}

TEST_CASE("conv2d_direct matches the reference in every padding mode, up to its padding limits",
          "[parity][conv2d_direct]") {
    check_all({
        {"reflect, padding one less than the input", Shape{1, 2, 4, 3}, Shape{3, 2, 3, 3},
         Conv2dOptions{1, Conv2dPadding(3, 2), 1, 1, Conv2dPaddingMode::reflect}, true},
        {"replicate, padding beyond the input, stride 2", Shape{1, 2, 4, 3}, Shape{3, 2, 3, 3},
         Conv2dOptions{2, Conv2dPadding(4, 5), 1, 1, Conv2dPaddingMode::replicate}, false},
        {"circular, padding as large as the input", Shape{2, 2, 4, 3}, Shape{2, 2, 3, 3},
         Conv2dOptions{1, Conv2dPadding(4, 3), 1, 1, Conv2dPaddingMode::circular}, true},
        {"zeros, padding beyond the kernel", Shape{1, 2, 4, 3}, Shape{3, 2, 3, 3}, Conv2dOptions{1, 4},
         false},
        // 25 taps: two tap windows in backward-filter.
        {"reflect, 5x5 kernel, stride (2, 1)", Shape{2, 3, 7, 5}, Shape{4, 3, 5, 5},
         Conv2dOptions{Pair2d(2, 1), 2, 1, 1, Conv2dPaddingMode::reflect}, true},
    });
}

TEST_CASE("conv2d_direct matches the reference when a dilated kernel overflows shared memory",
          "[parity][conv2d_direct]") {
    // The 3x3 kernel with dilation 60 spans 121 rows: the forward and backward-data stages no longer fit
    // 48 KiB, so the kernels stage the taps in windows of kernel rows.
    check_all({
        {"3x3 kernel, dilation 60, valid", Shape{1, 1, 125, 125}, Shape{2, 1, 3, 3},
         Conv2dOptions{1, Conv2dPadding::valid(), 60}, true},
    });
}

TEST_CASE("conv2d_direct backward kernels are bit-reproducible", "[parity][conv2d_direct]") {
    // No float atomics: the same inputs give the same bits in any fiber order. Backward-filter: the tiled
    // kernel (stride 1; 4 tiles of 8x32 positions, so 4 slices summed by the second kernel) and the per-tap
    // kernel (stride 2).
    const Shape x_shape{2, 4, 7, 37}, w_shape{8, 4, 3, 3};
    for (int stride : {1, 2}) {
        INFO("stride " << stride);
        const Conv2dOptions options{stride, 1, 1, 1, Conv2dPaddingMode::circular};
        const Conv2dGeometry g = cudacnn::cpu::conv2d_geometry(x_shape, w_shape, options);
        CHECK((gpu::conv2d_direct_workspace_bytes(g) > 0) == (stride == 1));
        DeviceBuffer x_d = test::to_device(test::random_tensor<float>(x_shape, 7));
        DeviceBuffer w_d = test::to_device(test::random_tensor<float>(w_shape, 8));
        DeviceBuffer dy_d = test::to_device(test::random_tensor<float>(g.output_shape(), 9));
        DeviceBuffer workspace = workspace_for(g);
        HostTensor<float> first_dx, first_dw, first_db;
        for (int run = 0; run < 2; ++run) {
            DeviceBuffer dx_d = test::poisoned<float>(x_shape.numel()),
                         dw_d = test::poisoned<float>(w_shape.numel());
            DeviceBuffer db_d = test::poisoned<float>(8);
            gpu::conv2d_direct_backward_data(g, floats(dy_d), floats(w_d), floats(dx_d), nullptr);
            gpu::conv2d_direct_backward_filter(g, floats(x_d), floats(dy_d), floats(dw_d), floats(db_d),
                                               workspace.data(), gpu::conv2d_direct_workspace_bytes(g),
                                               nullptr);
            const auto dx = test::to_host<float>(dx_d, x_shape);
            const auto dw = test::to_host<float>(dw_d, w_shape);
            const auto db = test::to_host<float>(db_d, Shape{8});
            if (run == 0) {
                first_dx = dx;
                first_dw = dw;
                first_db = db;
            } else {
                CHECK(test::bitwise_equal(dx, first_dx));
                CHECK(test::bitwise_equal(dw, first_dw));
                CHECK(test::bitwise_equal(db, first_db));
            }
        }
    }
}

TEST_CASE("conv2d_direct launchers reject bad arguments naming the launcher and the values",
          "[parity][conv2d_direct]") {
    const Conv2dGeometry good =
        cudacnn::cpu::conv2d_geometry(Shape{1, 4, 5, 5}, Shape{6, 2, 3, 3}, Conv2dOptions{1, 1, 1, 2});
    DeviceBuffer buffer = test::poisoned<float>(1024);
    float* p = floats(buffer);

    Conv2dGeometry odd_groups = good;
    odd_groups.groups = 3;
    CHECK_THAT(gpu::conv2d_direct_unsupported(odd_groups), Contains("groups 3 must divide in_channels 4"));
    CHECK_THAT(
        test::error_message([&] { gpu::conv2d_direct_forward(odd_groups, p, p, nullptr, p, nullptr); }),
        Contains("conv2d_direct_forward") && Contains("groups 3"));

    Conv2dGeometry wrong_output = good;
    wrong_output.out_h = 6;
    CHECK_THAT(test::error_message(
                   [&] { gpu::conv2d_direct_backward_filter(wrong_output, p, p, p, p, p, 4096, nullptr); }),
               Contains("conv2d_direct_backward_filter") && Contains("output 6×5") &&
                   Contains("cpu::conv2d_geometry"));

    Conv2dGeometry reflect_too_far = good;
    reflect_too_far.padding_mode = Conv2dPaddingMode::reflect;
    reflect_too_far.pad_top = reflect_too_far.pad_bottom = 5;
    reflect_too_far.out_h = 13;
    CHECK_THAT(
        test::error_message([&] { gpu::conv2d_direct_backward_data(reflect_too_far, p, p, p, nullptr); }),
        Contains("conv2d_direct_backward_data") && Contains("'reflect' needs padding smaller"));

    CHECK_THAT(
        test::error_message([&] { gpu::conv2d_direct_backward_data(good, p, p, nullptr, nullptr); }),
        Contains("conv2d_direct_backward_data") && Contains("dy, w and dx must all be device pointers"));
    CHECK(gpu::conv2d_direct_unsupported(good).empty());
}

TEST_CASE("conv2d_direct's tiled backward-filter matches the reference on odd shapes",
          "[parity][conv2d_direct]") {
    // Stride 1, dilation 1, groups 1: the tiled kernel (8 output channels × one input channel × a square
    // window of up to 4x4 taps per thread). Input and output channels that do not fill a thread's 8 or a
    // block's tile, planes that are not multiples of the power-of-two tiles (columns beyond 32, rows beyond a
    // tile), several images per tile with the last tile short, windows that overhang the kernel (2x4, 1x3,
    // 3x1) and kernels in several windows (5x5 and 7x7: 4 windows of 4x4).
    check_all({
        {"C1 -> OC1, 1x1, pad 0, batch 1, 9x7", Shape{1, 1, 9, 7}, Shape{1, 1, 1, 1}, Conv2dOptions{1, 0},
         true},
        {"C3 -> OC7, 3x3, pad 1, batch 3, 37x5", Shape{3, 3, 37, 5}, Shape{7, 3, 3, 3}, Conv2dOptions{1, 1},
         true},
        {"C5 -> OC32, 5x5, pad 2, batch 3, 11x35", Shape{3, 5, 11, 35}, Shape{32, 5, 5, 5},
         Conv2dOptions{1, 2}, true},
        {"C3 -> OC7, 2x4, pad (1, 2), batch 1, 13x9", Shape{1, 3, 13, 9}, Shape{7, 3, 2, 4},
         Conv2dOptions{1, Conv2dPadding(1, 2)}, false},
        {"C5 -> OC1, 1x3, pad (0, 1), batch 3, 7x33", Shape{3, 5, 7, 33}, Shape{1, 5, 1, 3},
         Conv2dOptions{1, Conv2dPadding(0, 1)}, true},
        {"C1 -> OC32, 3x1, pad 2, batch 1, 5x5", Shape{1, 1, 5, 5}, Shape{32, 1, 3, 1}, Conv2dOptions{1, 2},
         true},
        {"C1 -> OC7, 7x7, pad 3, batch 1, 9x9", Shape{1, 1, 9, 9}, Shape{7, 1, 7, 7}, Conv2dOptions{1, 3},
         false},
        {"C5 -> OC7, 3x3, pad 1, batch 3, 3x5: 4 images per tile, one missing", Shape{3, 5, 3, 5},
         Shape{7, 5, 3, 3}, Conv2dOptions{1, 1}, true},
        {"C3 -> OC7, 1x1, batch 3, 1x1 planes", Shape{3, 3, 1, 1}, Shape{7, 3, 1, 1}, Conv2dOptions{1, 0},
         true},
        // 72 output channels and 9 input channels: two blocks along each (the second ones partly empty).
        {"C9 -> OC72, 3x3, pad 1, batch 1, 5x5", Shape{1, 9, 5, 5}, Shape{72, 9, 3, 3}, Conv2dOptions{1, 1},
         true},
        {"C3 -> OC7, 3x3, pad 1, replicate, batch 3, 6x5", Shape{3, 3, 6, 5}, Shape{7, 3, 3, 3},
         Conv2dOptions{1, 1, 1, 1, Conv2dPaddingMode::replicate}, true},
    });
}

TEST_CASE("conv2d_direct's tiled backward-filter sums slices of several position tiles",
          "[parity][conv2d_direct]") {
    // One block tile and 264 staged tiles of 8x32 positions: 256 slices (the most), some of two tiles, so the
    // workspace holds 256 partial copies of dW.
    const Case c{"C1 -> OC1, 3x3, pad 1, batch 3, 2800x5", Shape{3, 1, 2800, 5}, Shape{1, 1, 3, 3},
                 Conv2dOptions{1, 1}, true};
    const Conv2dGeometry g = cudacnn::cpu::conv2d_geometry(c.x, c.w, c.options);
    CHECK(gpu::conv2d_direct_workspace_bytes(g) == 256 * 9 * sizeof(float));
    check_all({c});
}

TEST_CASE("conv2d_direct's backward-filter falls back to the per-tap kernel, without workspace",
          "[parity][conv2d_direct]") {
    const std::initializer_list<Case> cases = {
        {"stride 2, C3 -> OC7, 3x3, pad 1, batch 3, 9x7", Shape{3, 3, 9, 7}, Shape{7, 3, 3, 3},
         Conv2dOptions{2, 1}, true},
        {"dilation 2, C5 -> OC7, 3x3, pad 2, batch 1, 9x7", Shape{1, 5, 9, 7}, Shape{7, 5, 3, 3},
         Conv2dOptions{1, 2, 2}, true},
        {"groups 2, C4 -> OC6, 3x3, pad 1, batch 3, 9x7", Shape{3, 4, 9, 7}, Shape{6, 2, 3, 3},
         Conv2dOptions{1, 1, 1, 2}, true},
    };
    for (const Case& c : cases) {
        INFO(c.name);
        CHECK(gpu::conv2d_direct_workspace_bytes(cudacnn::cpu::conv2d_geometry(c.x, c.w, c.options)) == 0);
    }
    check_all(cases);
}

TEST_CASE("conv2d_direct_backward_filter rejects a workspace smaller than conv2d_direct_workspace_bytes",
          "[parity][conv2d_direct]") {
    const Conv2dGeometry g =
        cudacnn::cpu::conv2d_geometry(Shape{2, 3, 16, 16}, Shape{32, 3, 3, 3}, Conv2dOptions{1, 1});
    const size_t bytes = gpu::conv2d_direct_workspace_bytes(g);
    REQUIRE(bytes > 0);  // two images, one tile each: two slices
    DeviceBuffer buffer = test::poisoned<float>(2 * 16 * 16 * 32);
    float* p = floats(buffer);
    CHECK_THAT(test::error_message(
                   [&] { gpu::conv2d_direct_backward_filter(g, p, p, p, nullptr, p, bytes - 4, nullptr); }),
               Contains("conv2d_direct_backward_filter") && Contains("workspace") &&
                   Contains(std::to_string(bytes)) && Contains("conv2d_direct_workspace_bytes"));
    CHECK_THAT(test::error_message(
                   [&] { gpu::conv2d_direct_backward_filter(g, p, p, p, nullptr, nullptr, 0, nullptr); }),
               Contains("conv2d_direct_backward_filter") && Contains("workspace"));
    // A null workspace of the right size is named as null, not as "0x0 of N bytes smaller than N bytes".
    CHECK_THAT(test::error_message(
                   [&] { gpu::conv2d_direct_backward_filter(g, p, p, p, nullptr, nullptr, bytes, nullptr); }),
               Contains("conv2d_direct_backward_filter: the workspace is null") &&
                   Contains("needs " + std::to_string(bytes) + " bytes") &&
                   Contains("conv2d_direct_workspace_bytes") && !Contains("is smaller"));
}
