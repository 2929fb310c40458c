// Parity of the implicit-GEMM convolution's bf16 CUDA-core kernel (cuda/conv2d_implicit.hpp,
// ImplicitBf16Kernel::cuda_cores) with cpu::conv2d / cpu::conv2d_backward run on bf16-rounded x, w and dy (y
// and dx rounded once to bf16; dw, dbias float), and bit for bit with the FP32 kernel run on the same rounded
// values: CifarCNN's six layers at batch 1, odd shapes, strides, dilation, 1×1, split k, misaligned pointers;
// the workspace and argument errors of the bf16 overloads. The tensor-core kernel, which the plain overloads
// take where it runs: conv2d_implicit_bf16_tc_parity_test.cpp.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cstdint>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "cuda/bf16.cuh"
#include "cuda/conv2d_implicit.hpp"
#include "cudacnn/ops/conv2d.hpp"
#include "support/bf16.hpp"
#include "support/compare.hpp"
#include "support/conv2d_options.hpp"
#include "support/errors.hpp"
#include "support/parity.hpp"
#include "support/tolerance.hpp"

using namespace cudacnn;
using cpu::Conv2dOptions;
using cpu::Conv2dPadding;
using cpu::Conv2dPaddingMode;
using gpu::bf16;

namespace {

// The FP32 sums: the tolerance of the float kernel's parity test (conv2d_implicit_parity_test.cpp,
// float_sum_tolerance with a margin of 4) holds unchanged. The bf16 kernel widens its inputs exactly and the
// product of two bf16 (8 significant bits each) has at most 16, so every product is exact in float and the
// sums are the float kernel's sums on the rounded inputs (the test below checks that bit for bit); the
// reference sums the same exact products in float.
double float_tolerance(int64_t terms) {
    return test::float_sum_tolerance(terms, 4.0);
}

// bf16's unit roundoff: 8 significant bits, so rounding to nearest moves a value by at most half a unit in
// the last place, 2^-8 of it (1 + 2^-8 rounds to 1).
constexpr double kBf16UnitRoundoff = 0x1p-8;

// y and dx: the kernel's float result a and the reference's b each rounded once to bf16. Per element
// |R(a) − R(b)| ≤ u|a| + |a − b| + u|b| ≤ 2u|b| + (1 + u)|a − b|, and the metric's scale max|R(b)| is at
// least max|b| / (1 + u): so max_relative_error ≤ (1 + u)² (2u + float_tolerance). Both sides are rounded
// (the reference as the plan asks), hence 2u, not u: two floats a hair apart can round to neighbouring bf16.
double bf16_output_tolerance(int64_t terms) {
    constexpr double u = kBf16UnitRoundoff;
    return (1 + u) * (1 + u) * (2 * u + float_tolerance(terms));
}

Conv2dOptions zeros(cpu::Pair2d stride, Conv2dPadding padding, cpu::Pair2d dilation = 1) {
    return test::conv2d_options(stride, padding, dilation, 1, Conv2dPaddingMode::zeros);
}

void poison(const DeviceBuffer& buffer) {
    fill_bytes(buffer.data(), 0xff, buffer.bytes());
}

// A bf16 device copy of t (already bf16 values) that starts `offset` elements into its buffer, the elements
// before it NaN: offset 1 puts it 2 bytes off any 4-byte boundary.
test::OffsetBuffer<std::uint16_t> to_device_bf16_at(const HostTensor<float>& t, int64_t offset) {
    std::vector<std::uint16_t> bits(static_cast<std::size_t>(t.numel()));
    for (int64_t i = 0; i < t.numel(); ++i) bits[static_cast<std::size_t>(i)] = io::float_to_bf16_bits(t[i]);
    test::OffsetBuffer<std::uint16_t> b = test::poisoned_at<std::uint16_t>(t.numel(), offset);
    copy_to_device(b.data(), bits.data(), bits.size() * sizeof(std::uint16_t));
    return b;
}

bf16* as_bf16(const test::OffsetBuffer<std::uint16_t>& b) {
    return reinterpret_cast<bf16*>(b.data());
}

struct ConvCase {
    std::string name;
    Shape x, w;  // (N, C, H, W), (OC, C, KH, KW)
    Conv2dOptions options;
    bool bias = true;
    int64_t offset = 0;  // bf16 elements before x, dy, y and dx in their buffers (misalignment)
};

void check_case(const ConvCase& c, uint32_t seed) {
    INFO("case " << c.name);
    const HostTensor<float> x = test::round_to_bf16(test::random_tensor<float>(c.x, seed));
    const HostTensor<float> w = test::round_to_bf16(test::random_tensor<float>(c.w, seed + 1));
    const HostTensor<float> bias = test::random_tensor<float>(Shape{c.w[0]}, seed + 2);  // float parameter
    const cpu::Conv2dGeometry g = cpu::conv2d_geometry(c.x, c.w, c.options);
    REQUIRE(gpu::conv2d_implicit_unsupported(g).empty());
    const HostTensor<float> dy = test::round_to_bf16(test::random_tensor<float>(g.output_shape(), seed + 3));
    const HostTensor<float> y_ref = cpu::conv2d<float>(x, w, c.bias ? &bias : nullptr, c.options);
    const cpu::Conv2dGrads<float> ref = cpu::conv2d_backward<float>(x, w, dy, c.bias, c.options);

    // The float sizing is enough for the bf16 calls; at least one float so that a real buffer is poisoned.
    const size_t workspace_bytes = std::max<size_t>(gpu::conv2d_implicit_workspace_bytes(g), sizeof(float));
    const DeviceBuffer workspace(workspace_bytes);
    const DeviceBuffer d_w = test::to_device_bf16(w), d_bias = test::to_device(bias);
    const auto d_x = to_device_bf16_at(x, c.offset), d_dy = to_device_bf16_at(dy, c.offset);
    const auto d_y = test::poisoned_at<std::uint16_t>(g.output_shape().numel(), c.offset);
    const auto d_dx = test::poisoned_at<std::uint16_t>(x.numel(), c.offset);
    const DeviceBuffer d_dw = test::poisoned<float>(w.numel()), d_db = test::poisoned<float>(g.out_channels);
    const float* bias_ptr = c.bias ? d_bias.data_as<float>() : nullptr;

    // The CUDA-core kernel: its sums are the FP32 kernel's, in its order, on a GPU too.
    constexpr gpu::ImplicitBf16Kernel kCudaCores = gpu::ImplicitBf16Kernel::cuda_cores;
    poison(workspace);
    gpu::conv2d_implicit_forward_with_kernel(kCudaCores, g, as_bf16(d_x), test::bf16_data(d_w), bias_ptr,
                                             as_bf16(d_y), workspace.data(), workspace_bytes, nullptr,
                                             MemoryFormat::nchw);
    poison(workspace);
    gpu::conv2d_implicit_backward_data_with_kernel(kCudaCores, g, as_bf16(d_dy), test::bf16_data(d_w),
                                                   as_bf16(d_dx), workspace.data(), workspace_bytes, nullptr,
                                                   MemoryFormat::nchw);
    poison(workspace);
    gpu::conv2d_implicit_backward_filter_with_kernel(
        kCudaCores, g, as_bf16(d_x), as_bf16(d_dy), d_dw.data_as<float>(),
        c.bias ? d_db.data_as<float>() : nullptr, workspace.data(), workspace_bytes, nullptr,
        MemoryFormat::nchw);
    const HostTensor<float> y = test::to_host_bf16(as_bf16(d_y), g.output_shape());
    const HostTensor<float> dx = test::to_host_bf16(as_bf16(d_dx), x.shape());
    const HostTensor<float> dw = test::to_host<float>(d_dw, w.shape());

    // Against the reference. Reduction lengths: y sums C·KH·KW taps (+ bias); dx at most OC·KH·KW taps (zero
    // padding: one copy of each element); dw and db sum N·OH·OW terms.
    const int64_t taps = g.kernel_h * g.kernel_w, positions = g.batch * g.out_h * g.out_w;
    CHECK(test::max_relative_error(y, test::round_to_bf16(y_ref)) <=
          bf16_output_tolerance(g.in_channels * taps + 1));
    CHECK(test::max_relative_error(dx, test::round_to_bf16(ref.dx)) <=
          bf16_output_tolerance(g.out_channels * taps));
    CHECK(test::max_relative_error(dw, ref.dweight) <= float_tolerance(positions));

    // Against the FP32 kernel on the same (rounded) values, bit for bit: the same sums in the same order, and
    // y and dx rounded exactly once, from those sums.
    const DeviceBuffer f_x = test::to_device(x), f_w = test::to_device(w), f_dy = test::to_device(dy);
    const DeviceBuffer f_y = test::poisoned<float>(g.output_shape().numel()),
                       f_dx = test::poisoned<float>(x.numel());
    const DeviceBuffer f_dw = test::poisoned<float>(w.numel()), f_db = test::poisoned<float>(g.out_channels);
    gpu::conv2d_implicit_forward(g, f_x.data_as<float>(), f_w.data_as<float>(), bias_ptr,
                                 f_y.data_as<float>(), workspace.data(), workspace_bytes, nullptr);
    gpu::conv2d_implicit_backward_data(g, f_dy.data_as<float>(), f_w.data_as<float>(), f_dx.data_as<float>(),
                                       workspace.data(), workspace_bytes, nullptr);
    gpu::conv2d_implicit_backward_filter(g, f_x.data_as<float>(), f_dy.data_as<float>(),
                                         f_dw.data_as<float>(), c.bias ? f_db.data_as<float>() : nullptr,
                                         workspace.data(), workspace_bytes, nullptr);
    CHECK(test::bitwise_equal(y, test::round_to_bf16(test::to_host<float>(f_y, g.output_shape()))));
    CHECK(test::bitwise_equal(dx, test::round_to_bf16(test::to_host<float>(f_dx, x.shape()))));
    CHECK(test::bitwise_equal(dw, test::to_host<float>(f_dw, w.shape())));
    if (c.bias) {
        const HostTensor<float> db = test::to_host<float>(d_db, Shape{g.out_channels});
        CHECK(test::max_relative_error(db, ref.dbias) <= float_tolerance(positions));
        CHECK(test::bitwise_equal(db, test::to_host<float>(f_db, Shape{g.out_channels})));
    }
}

// Whether conv2d_implicit_forward has an overload taking storage T and a trailing allow_tf32.
template <class T, class = void>
struct ForwardTakesTf32 : std::false_type {};
template <class T>
struct ForwardTakesTf32<T, std::void_t<decltype(gpu::conv2d_implicit_forward(
                               std::declval<const cpu::Conv2dGeometry&>(), std::declval<const T*>(),
                               std::declval<const T*>(), std::declval<const float*>(), std::declval<T*>(),
                               std::declval<void*>(), size_t{}, cudaStream_t{}, true))>> : std::true_type {};
// TF32 stays FP32-only: a bf16 request for it does not compile rather than silently running FP32.
static_assert(ForwardTakesTf32<float>::value && !ForwardTakesTf32<bf16>::value,
              "the bf16 overloads take no allow_tf32");

}  // namespace

// CifarCNN's six convolutions with their real map sizes at batch 1: block tiles of 32, 64 and 128 rows; the
// 8×8 layers split the forward's k (1152, 2304) and backward-data's; backward-filter splits k = 1024 on the
// 32×32 layers.
TEST_CASE("conv2d_implicit bf16 matches the reference on CifarCNN's first layers",
          "[parity][bf16][conv2d_implicit]") {
    const Conv2dOptions pad1 = zeros(1, 1);
    check_case({"conv 3→32, 32×32", Shape{1, 3, 32, 32}, Shape{32, 3, 3, 3}, pad1}, 210);
    check_case({"conv 32→64, 32×32", Shape{1, 32, 32, 32}, Shape{64, 32, 3, 3}, pad1}, 220);
    check_case({"conv 64→128, 16×16", Shape{1, 64, 16, 16}, Shape{128, 64, 3, 3}, pad1}, 230);
}

TEST_CASE("conv2d_implicit bf16 matches the reference on CifarCNN's last layers",
          "[parity][bf16][conv2d_implicit]") {
    const Conv2dOptions pad1 = zeros(1, 1);
    check_case({"conv 128→128, 16×16", Shape{1, 128, 16, 16}, Shape{128, 128, 3, 3}, pad1}, 240);
    check_case({"conv 128→256, 8×8, no bias", Shape{1, 128, 8, 8}, Shape{256, 128, 3, 3}, pad1, false}, 250);
    check_case({"conv 256→256, 8×8", Shape{1, 256, 8, 8}, Shape{256, 256, 3, 3}, pad1}, 260);
}

TEST_CASE("conv2d_implicit bf16 matches the reference on odd shapes, strides, dilation and 1×1",
          "[parity][bf16][conv2d_implicit]") {
    // 7×5 images, C = 3, OC = 5: no size a multiple of any tile, of 4 or of 2 (bf16 pairs).
    check_case(
        {"7×5, 3→5, pad 1, batch 3, no bias", Shape{3, 3, 7, 5}, Shape{5, 3, 3, 3}, zeros(1, 1), false}, 270);
    check_case(
        {"stride 2, 2×3 kernel, pad (1, 2), batch 3", Shape{3, 3, 7, 5}, Shape{5, 3, 2, 3}, zeros(2, {1, 2})},
        280);
    check_case({"stride (2, 3), pad 0, batch 3", Shape{3, 3, 7, 5}, Shape{5, 3, 3, 2}, zeros({2, 3}, 0)},
               290);
    check_case(
        {"dilation 2, stride (1, 2), pad 2", Shape{1, 3, 7, 5}, Shape{5, 3, 3, 3}, zeros({1, 2}, 2, 2)}, 300);
    check_case({"'same', 4×2 kernel", Shape{3, 3, 7, 5}, Shape{5, 3, 4, 2}, zeros(1, Conv2dPadding::same())},
               310);
    check_case({"'valid', 1×1 kernel, 130 output channels", Shape{1, 3, 7, 5}, Shape{130, 3, 1, 1},
                zeros(1, Conv2dPadding::valid())},
               320);
    // x, dy, y and dx one bf16 (2 bytes) into their buffers: the kernels' global accesses are scalar.
    check_case(
        {"misaligned x, y, dy, dx; stride 2", Shape{3, 3, 7, 5}, Shape{5, 3, 3, 3}, zeros(2, 1), true, 1},
        330);
}

TEST_CASE("conv2d_implicit bf16 splits k, summing the slices in float and rounding once",
          "[parity][bf16][conv2d_implicit]") {
    // Backward-filter: 9 · 13 · 11 = 1287 columns of k in two slices (648 and a short 639); 12 · 15 · 16 =
    // 2880 in five of 576, with stride 2 and no padding on an odd 31×33 input. The forward: 128 → 256 on 4×4
    // maps splits k = 1152 in 2 (the bias added by the sum pass, which rounds y).
    check_case({"4→8, 13×11, batch 9", Shape{9, 4, 13, 11}, Shape{8, 4, 3, 3}, zeros(1, 1)}, 340);
    check_case({"3→5, 31×33, stride 2, batch 12", Shape{12, 3, 31, 33}, Shape{5, 3, 3, 3}, zeros(2, 0)}, 350);
    check_case({"128→256, 4×4, batch 3", Shape{3, 128, 4, 4}, Shape{256, 128, 3, 3}, zeros(1, 1)}, 360);
}

TEST_CASE("conv2d_implicit bf16 checks its workspace and arguments", "[parity][bf16][conv2d_implicit]") {
    using Catch::Matchers::Contains;
    const cpu::Conv2dGeometry g = cpu::conv2d_geometry(Shape{2, 3, 7, 5}, Shape{4, 3, 3, 3}, Conv2dOptions{});
    const size_t float_bytes = gpu::conv2d_implicit_workspace_bytes(g);
    // Backward-data's transposed weights are bf16 like the weights: half the float call's 4·3·3·3 floats.
    const size_t bf16_bytes = 4 * 3 * 3 * 3 * sizeof(bf16);
    CHECK(float_bytes == 2 * bf16_bytes);
    const DeviceBuffer x = test::poisoned_bf16(2 * 3 * 7 * 5), w = test::poisoned_bf16(4 * 3 * 3 * 3);
    const DeviceBuffer y = test::poisoned_bf16(2 * 4 * 5 * 3), dw = test::poisoned<float>(4 * 3 * 3 * 3);
    const DeviceBuffer workspace(float_bytes);
    const bf16* xp = test::bf16_data(x);
    const bf16* wp = test::bf16_data(w);
    bf16* yp = test::bf16_data(y);

    CHECK_THAT(
        test::error_message([&] {
            gpu::conv2d_implicit_backward_data(g, yp, wp, test::bf16_data(x), workspace.data(),
                                               bf16_bytes - 1, nullptr);
        }),
        Contains("conv2d_implicit_backward_data: workspace") &&
            Contains(std::to_string(bf16_bytes - 1) + " bytes is smaller than the " +
                     std::to_string(bf16_bytes) + " bytes") &&
            Contains("allocate conv2d_implicit_workspace_bytes(g) bytes (" + std::to_string(float_bytes)));
    CHECK_NOTHROW(gpu::conv2d_implicit_backward_data(g, yp, wp, test::bf16_data(x), workspace.data(),
                                                     bf16_bytes, nullptr));
    CHECK_THAT(test::error_message([&] {
                   gpu::conv2d_implicit_backward_data(g, yp, wp, nullptr, workspace.data(), float_bytes,
                                                      nullptr);
               }),
               Contains("conv2d_implicit_backward_data: dy, w and dx must be device pointers"));
    CHECK_THAT(test::error_message(
                   [&] { gpu::conv2d_implicit_forward(g, nullptr, wp, nullptr, yp, nullptr, 0, nullptr); }),
               Contains("conv2d_implicit_forward: x, w and y must be device pointers"));
    CHECK_THAT(test::error_message([&] {
                   gpu::conv2d_implicit_backward_filter(g, xp, yp, nullptr, nullptr, workspace.data(),
                                                        float_bytes, nullptr);
               }),
               Contains("conv2d_implicit_backward_filter: x, dy and dw must be device pointers"));

    // The forward's split-k partial sums are float for bf16 too: 2 slices × 256 × 16 floats.
    const cpu::Conv2dGeometry split =
        cpu::conv2d_geometry(Shape{1, 128, 4, 4}, Shape{256, 128, 3, 3}, zeros(1, 1));
    const DeviceBuffer big = test::poisoned_bf16(256 * 128 * 9);
    CHECK_THAT(test::error_message([&] {
                   gpu::conv2d_implicit_forward(split, test::bf16_data(big), test::bf16_data(big), nullptr,
                                                test::bf16_data(big), nullptr, 0, nullptr);
               }),
               Contains("conv2d_implicit_forward: the workspace is null, but this call needs " +
                        std::to_string(2 * 256 * 16 * sizeof(float)) + " bytes"));

    // Groups are not supported by the implicit kernels, in bf16 as in float.
    const cpu::Conv2dGeometry grouped = cpu::conv2d_geometry(
        Shape{1, 6, 7, 5}, Shape{9, 2, 3, 3}, test::conv2d_options(1, 1, 1, 3, Conv2dPaddingMode::zeros));
    CHECK_THAT(test::error_message([&] {
                   gpu::conv2d_implicit_backward_filter(grouped, xp, yp, dw.data_as<float>(), nullptr,
                                                        workspace.data(), float_bytes, nullptr);
               }),
               Contains("conv2d_implicit_backward_filter: conv2d_implicit: groups 3 are not supported"));
}
