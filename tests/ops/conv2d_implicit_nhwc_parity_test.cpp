// Parity of the implicit-GEMM convolution's NHWC (channels_last) activations (cuda/conv2d_implicit.hpp,
// format argument) with its NCHW calls on the same data permuted, bit for bit: the layout enters only through
// the gathers' and output views' strides and k keeps the order (c, i, j), so every output sums the same terms
// in the same order. float and bf16 storage (TF32 too, where it runs), forward, backward-data,
// backward-filter and the bias gradient (conv_bias_grad, cuda/bias_grad.hpp); CifarCNN's layers at batch 1,
// odd shapes, strides, dilation, 1×1, split k; NaN-poisoned outputs; the workspace error.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <string>
#include <type_traits>

#include "cuda/bf16.cuh"
#include "cuda/bias_grad.hpp"
#include "cuda/conv2d_implicit.hpp"
#include "cudacnn/memory_format.hpp"
#include "cudacnn/ops/conv2d.hpp"
#include "support/bf16.hpp"
#include "support/conv2d_options.hpp"
#include "support/errors.hpp"
#include "support/nhwc.hpp"
#include "support/parity.hpp"

using namespace cudacnn;
using cpu::Conv2dOptions;
using cpu::Conv2dPadding;
using cpu::Conv2dPaddingMode;
using gpu::bf16;

namespace {

Conv2dOptions zeros(cpu::Pair2d stride, Conv2dPadding padding, cpu::Pair2d dilation = 1) {
    return test::conv2d_options(stride, padding, dilation, 1, Conv2dPaddingMode::zeros);
}

void poison(const DeviceBuffer& buffer) {
    fill_bytes(buffer.data(), 0xff, buffer.bytes());
}

// How a test moves activations of storage T: float as is; bf16 from values already rounded to bf16 (exact).
template <class T>
struct Storage;

template <>
struct Storage<float> {
    static HostTensor<float> values(const HostTensor<float>& t) { return t; }
    static DeviceBuffer upload(const HostTensor<float>& t) { return test::to_device(t); }
    static DeviceBuffer poisoned(int64_t count) { return test::poisoned<float>(count); }
    static HostTensor<float> download(const DeviceBuffer& b, const Shape& s) {
        return test::to_host<float>(b, s);
    }
    static float* data(const DeviceBuffer& b) { return b.data_as<float>(); }
};

template <>
struct Storage<bf16> {
    static HostTensor<float> values(const HostTensor<float>& t) { return test::round_to_bf16(t); }
    static DeviceBuffer upload(const HostTensor<float>& t) { return test::to_device_bf16(t); }
    static DeviceBuffer poisoned(int64_t count) { return test::poisoned_bf16(count); }
    static HostTensor<float> download(const DeviceBuffer& b, const Shape& s) {
        return test::to_host_bf16(b.data(), s);
    }
    static bf16* data(const DeviceBuffer& b) { return test::bf16_data(b); }
};

struct ConvResults {
    HostTensor<float> y, dx, dw, db;  // y and dx in the call's format; dw (OC, C, KH, KW) and db in both
};

// The three directions in `format` on x and dy given in that format (TF32 when tf32; float storage only).
template <class T>
ConvResults run_conv(const cpu::Conv2dGeometry& g, const HostTensor<float>& x, const HostTensor<float>& w,
                     const HostTensor<float>* bias, const HostTensor<float>& dy, MemoryFormat format,
                     bool tf32 = false) {
    using S = Storage<T>;
    // At least one float, so that a geometry needing none still gets a real (poisoned) buffer.
    const size_t workspace_bytes = std::max<size_t>(gpu::conv2d_implicit_workspace_bytes(g), sizeof(float));
    const DeviceBuffer workspace(workspace_bytes);
    const DeviceBuffer d_x = S::upload(x), d_w = S::upload(w), d_dy = S::upload(dy);
    const DeviceBuffer d_bias = test::to_device(bias != nullptr ? *bias : HostTensor<float>(Shape{1}));
    const DeviceBuffer d_y = S::poisoned(g.output_shape().numel()), d_dx = S::poisoned(x.numel());
    const DeviceBuffer d_dw = test::poisoned<float>(w.numel()), d_db = test::poisoned<float>(g.out_channels);
    const float* bias_ptr = bias != nullptr ? d_bias.data_as<float>() : nullptr;
    float* db_ptr = bias != nullptr ? d_db.data_as<float>() : nullptr;

    poison(workspace);
    if constexpr (std::is_same_v<T, float>) {
        gpu::conv2d_implicit_forward(g, S::data(d_x), S::data(d_w), bias_ptr, S::data(d_y), workspace.data(),
                                     workspace_bytes, nullptr, tf32, format);
        poison(workspace);
        gpu::conv2d_implicit_backward_data(g, S::data(d_dy), S::data(d_w), S::data(d_dx), workspace.data(),
                                           workspace_bytes, nullptr, tf32, format);
        poison(workspace);
        gpu::conv2d_implicit_backward_filter(g, S::data(d_x), S::data(d_dy), d_dw.data_as<float>(), db_ptr,
                                             workspace.data(), workspace_bytes, nullptr, tf32, format);
    } else {
        gpu::conv2d_implicit_forward(g, S::data(d_x), S::data(d_w), bias_ptr, S::data(d_y), workspace.data(),
                                     workspace_bytes, nullptr, format);
        poison(workspace);
        gpu::conv2d_implicit_backward_data(g, S::data(d_dy), S::data(d_w), S::data(d_dx), workspace.data(),
                                           workspace_bytes, nullptr, format);
        poison(workspace);
        gpu::conv2d_implicit_backward_filter(g, S::data(d_x), S::data(d_dy), d_dw.data_as<float>(), db_ptr,
                                             workspace.data(), workspace_bytes, nullptr, format);
    }
    ConvResults r{S::download(d_y, g.output_shape()), S::download(d_dx, x.shape()),
                  test::to_host<float>(d_dw, w.shape()), HostTensor<float>(Shape{1})};
    if (bias != nullptr) r.db = test::to_host<float>(d_db, Shape{g.out_channels});
    return r;
}

struct ConvCase {
    std::string name;
    Shape x, w;  // (N, C, H, W), (OC, C, KH, KW)
    Conv2dOptions options;
    bool bias = true;
};

// NHWC against NCHW on the same values, bit for bit (no tolerance: the same sums in the same order, rounded
// once to T as they are stored). Also checks that the NHWC outputs are finite, so that a poisoned element no
// kernel wrote cannot hide behind a NaN on both sides.
template <class T>
void check_case(const ConvCase& c, uint32_t seed, bool tf32 = false) {
    INFO("case " << c.name << (tf32 ? ", TF32" : ""));
    using S = Storage<T>;
    const HostTensor<float> x = S::values(test::random_tensor<float>(c.x, seed));
    const HostTensor<float> w = S::values(test::random_tensor<float>(c.w, seed + 1));
    const HostTensor<float> bias = test::random_tensor<float>(Shape{c.w[0]}, seed + 2);  // float parameter
    const cpu::Conv2dGeometry g = cpu::conv2d_geometry(c.x, c.w, c.options);
    REQUIRE(gpu::conv2d_implicit_unsupported(g).empty());
    const HostTensor<float> dy = S::values(test::random_tensor<float>(g.output_shape(), seed + 3));
    const HostTensor<float>* b = c.bias ? &bias : nullptr;

    const ConvResults nchw = run_conv<T>(g, x, w, b, dy, MemoryFormat::nchw, tf32);
    const ConvResults nhwc =
        run_conv<T>(g, test::to_nhwc(x), w, b, test::to_nhwc(dy), MemoryFormat::nhwc, tf32);
    CHECK(test::bitwise_equal(test::from_nhwc(nhwc.y), nchw.y));
    CHECK(test::bitwise_equal(test::from_nhwc(nhwc.dx), nchw.dx));
    CHECK(test::bitwise_equal(nhwc.dw, nchw.dw));
    for (const HostTensor<float>* t : {&nhwc.y, &nhwc.dx, &nhwc.dw}) {
        CHECK(std::all_of(t->values().begin(), t->values().end(), [](float v) { return std::isfinite(v); }));
    }
    if (c.bias) {
        CHECK(test::bitwise_equal(nhwc.db, nchw.db));
        CHECK(std::all_of(nhwc.db.values().begin(), nhwc.db.values().end(),
                          [](float v) { return std::isfinite(v); }));
    }
}

template <class T>
void check_cifar_first_layers() {
    const Conv2dOptions pad1 = zeros(1, 1);
    check_case<T>({"conv 3→32, 32×32", Shape{1, 3, 32, 32}, Shape{32, 3, 3, 3}, pad1}, 410);
    check_case<T>({"conv 32→64, 32×32", Shape{1, 32, 32, 32}, Shape{64, 32, 3, 3}, pad1}, 420);
    check_case<T>({"conv 64→128, 16×16", Shape{1, 64, 16, 16}, Shape{128, 64, 3, 3}, pad1}, 430);
}

template <class T>
void check_cifar_last_layers() {
    const Conv2dOptions pad1 = zeros(1, 1);
    check_case<T>({"conv 128→128, 16×16", Shape{1, 128, 16, 16}, Shape{128, 128, 3, 3}, pad1}, 440);
    check_case<T>({"conv 128→256, 8×8, no bias", Shape{1, 128, 8, 8}, Shape{256, 128, 3, 3}, pad1, false},
                  450);
    check_case<T>({"conv 256→256, 8×8", Shape{1, 256, 8, 8}, Shape{256, 256, 3, 3}, pad1}, 460);
}

template <class T>
void check_odd_shapes() {
    // 7×5 images, C = 3, OC = 5: no size a multiple of any tile, of 4 or of 2.
    check_case<T>(
        {"7×5, 3→5, pad 1, batch 3, no bias", Shape{3, 3, 7, 5}, Shape{5, 3, 3, 3}, zeros(1, 1), false}, 470);
    check_case<T>(
        {"stride 2, 2×3 kernel, pad (1, 2), batch 3", Shape{3, 3, 7, 5}, Shape{5, 3, 2, 3}, zeros(2, {1, 2})},
        480);
    check_case<T>({"stride (2, 3), pad 0, batch 3", Shape{3, 3, 7, 5}, Shape{5, 3, 3, 2}, zeros({2, 3}, 0)},
                  490);
    check_case<T>(
        {"dilation 2, stride (1, 2), pad 2", Shape{1, 3, 7, 5}, Shape{5, 3, 3, 3}, zeros({1, 2}, 2, 2)}, 500);
    check_case<T>(
        {"'same', 4×2 kernel", Shape{3, 3, 7, 5}, Shape{5, 3, 4, 2}, zeros(1, Conv2dPadding::same())}, 510);
    // 1×1: k = C, so in NHWC consecutive k are adjacent channels.
    check_case<T>({"'valid', 1×1 kernel, 7→130 channels", Shape{2, 7, 7, 5}, Shape{130, 7, 1, 1},
                   zeros(1, Conv2dPadding::valid())},
                  520);
}

template <class T>
void check_split_k() {
    // Backward-filter: 9 · 13 · 11 = 1287 columns of k in two slices; 12 · 15 · 16 = 2880 in five, stride 2
    // on an odd 31×33 input. The forward and backward-data: 128 → 256 on 4×4 maps split k = 1152 and 2304.
    check_case<T>({"4→8, 13×11, batch 9", Shape{9, 4, 13, 11}, Shape{8, 4, 3, 3}, zeros(1, 1)}, 530);
    check_case<T>({"3→5, 31×33, stride 2, batch 12", Shape{12, 3, 31, 33}, Shape{5, 3, 3, 3}, zeros(2, 0)},
                  540);
    check_case<T>({"128→256, 4×4, batch 3", Shape{3, 128, 4, 4}, Shape{256, 128, 3, 3}, zeros(1, 1)}, 550);
}

}  // namespace

TEST_CASE("conv2d_implicit NHWC: CifarCNN's first layers, bit for bit with NCHW",
          "[parity][nhwc][conv2d_implicit]") {
    SECTION("float") {
        check_cifar_first_layers<float>();
    }
    SECTION("bf16") {
        check_cifar_first_layers<bf16>();
    }
}

TEST_CASE("conv2d_implicit NHWC: CifarCNN's last layers, bit for bit with NCHW",
          "[parity][nhwc][conv2d_implicit]") {
    SECTION("float") {
        check_cifar_last_layers<float>();
    }
    SECTION("bf16") {
        check_cifar_last_layers<bf16>();
    }
}

TEST_CASE("conv2d_implicit NHWC: odd shapes, strides, dilation and 1×1, bit for bit with NCHW",
          "[parity][nhwc][conv2d_implicit]") {
    SECTION("float") {
        check_odd_shapes<float>();
    }
    SECTION("bf16") {
        check_odd_shapes<bf16>();
    }
}

TEST_CASE("conv2d_implicit NHWC: split k, bit for bit with NCHW", "[parity][nhwc][conv2d_implicit]") {
    SECTION("float") {
        check_split_k<float>();
    }
    SECTION("bf16") {
        check_split_k<bf16>();
    }
}

// The TF32 kernel shares the gathers and output views, so NHWC falls out of them; where it cannot run,
// allow_tf32 runs the FP32 kernel in both formats and the check still holds.
TEST_CASE("conv2d_implicit NHWC: TF32, bit for bit with NCHW TF32",
          "[parity][nhwc][conv2d_implicit][conv2d_implicit_tf32]") {
    check_case<float>(
        {"stride 2, 2×3 kernel, pad (1, 2), batch 3", Shape{3, 3, 7, 5}, Shape{5, 3, 2, 3}, zeros(2, {1, 2})},
        560, true);
    // Backward-filter's k (9 · 13 · 11 = 1287) in two slices, summed in FP32.
    check_case<float>({"4→8, 13×11, batch 9", Shape{9, 4, 13, 11}, Shape{8, 4, 3, 3}, zeros(1, 1)}, 570,
                      true);
}

// conv_bias_grad on its own: an NHWC dy gives NCHW's sums bit for bit (the same elements in the same order).
TEST_CASE("conv_bias_grad NHWC: bit for bit with NCHW", "[parity][nhwc][bias_grad]") {
    for (const Shape& s : {Shape{3, 5, 7, 5}, Shape{2, 130, 3, 9}, Shape{1, 32, 32, 32}}) {
        INFO("dy " << s[0] << "×" << s[1] << "×" << s[2] << "×" << s[3]);
        const HostTensor<float> dy = test::round_to_bf16(test::random_tensor<float>(s, 600));
        for (const bool bf : {false, true}) {
            auto run = [&](const HostTensor<float>& t, MemoryFormat format) {
                const DeviceBuffer d = bf ? test::to_device_bf16(t) : test::to_device(t);
                const DeviceBuffer db = test::poisoned<float>(s[1]);
                if (bf) {
                    gpu::conv_bias_grad(test::bf16_data(d), db.data_as<float>(), s[0], s[1], s[2], s[3],
                                        nullptr, format);
                } else {
                    gpu::conv_bias_grad(d.data_as<float>(), db.data_as<float>(), s[0], s[1], s[2], s[3],
                                        nullptr, format);
                }
                return test::to_host<float>(db, Shape{s[1]});
            };
            const HostTensor<float> nhwc = run(test::to_nhwc(dy), MemoryFormat::nhwc);
            CHECK(test::bitwise_equal(nhwc, run(dy, MemoryFormat::nchw)));
            CHECK(std::all_of(nhwc.values().begin(), nhwc.values().end(),
                              [](float v) { return std::isfinite(v); }));
        }
    }
}

// The workspace check does not depend on the format: NHWC needs what NCHW needs and says so the same way.
TEST_CASE("conv2d_implicit NHWC checks its workspace", "[parity][nhwc][conv2d_implicit]") {
    using Catch::Matchers::Contains;
    const cpu::Conv2dGeometry g = cpu::conv2d_geometry(Shape{2, 3, 7, 5}, Shape{4, 3, 3, 3}, Conv2dOptions{});
    const size_t bytes = gpu::conv2d_implicit_workspace_bytes(g);
    const DeviceBuffer x = test::poisoned<float>(2 * 3 * 7 * 5), w = test::poisoned<float>(4 * 3 * 3 * 3);
    const DeviceBuffer dy = test::poisoned<float>(2 * 4 * 5 * 3), workspace(bytes);
    CHECK_THAT(test::error_message([&] {
                   gpu::conv2d_implicit_backward_data(g, dy.data_as<float>(), w.data_as<float>(),
                                                      x.data_as<float>(), workspace.data(), bytes - 1,
                                                      nullptr, MemoryFormat::nhwc);
               }),
               Contains("conv2d_implicit_backward_data: workspace") &&
                   Contains(std::to_string(bytes - 1) + " bytes is smaller than the " +
                            std::to_string(bytes) + " bytes"));
    const cpu::Conv2dGeometry split =
        cpu::conv2d_geometry(Shape{1, 128, 4, 4}, Shape{256, 128, 3, 3}, zeros(1, 1));
    const DeviceBuffer big = test::poisoned_bf16(256 * 128 * 9);
    CHECK_THAT(test::error_message([&] {
                   gpu::conv2d_implicit_forward(split, test::bf16_data(big), test::bf16_data(big), nullptr,
                                                test::bf16_data(big), nullptr, 0, nullptr,
                                                MemoryFormat::nhwc);
               }),
               Contains("conv2d_implicit_forward: the workspace is null, but this call needs " +
                        std::to_string(2 * 256 * 16 * sizeof(float)) + " bytes"));
}
