// Parity of the implicit-GEMM convolution's bf16 tensor-core kernel (cuda/conv2d_implicit.hpp, wmma bf16
// 16 × 16 × 16) and of its CUDA-core bf16 kernel with cpu::conv2d / cpu::conv2d_backward on bf16-rounded x, w
// and dy: forward, backward-data and backward-filter, NCHW and NHWC, odd shapes, strides, padding, dilation,
// 1×1 and 5×5 kernels, split k; under the emulator the two kernels bit for bit; kernel choice and
// Conv2dPlan's description.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <string>

#include "cuda/bf16.cuh"
#include "cuda/conv2d.hpp"
#include "cuda/conv2d_implicit.hpp"
#include "cudacnn/ops/conv2d.hpp"
#include "support/bf16.hpp"
#include "support/compare.hpp"
#include "support/conv2d_options.hpp"
#include "support/errors.hpp"
#include "support/nhwc.hpp"
#include "support/parity.hpp"
#include "support/tolerance.hpp"

using namespace cudacnn;
using cpu::Conv2dOptions;
using cpu::Conv2dPadding;
using cpu::Conv2dPaddingMode;
using gpu::ImplicitBf16Kernel;

// Whether this emulator build has the tensor-core kernel: unless -D flags (which reach this file too) leave
// it out, as cuda/conv2d_implicit.cu defaults them.
#if defined(CUDACNN_EMU) && (!defined(CUDACNN_TENSOR_CORES) || CUDACNN_TENSOR_CORES) && \
    (defined(CUDACNN_IMPLICIT_BF16_MMA) ? CUDACNN_IMPLICIT_BF16_MMA                     \
                                        : (!defined(CUDACNN_IMPLICIT_TF32) || CUDACNN_IMPLICIT_TF32))
#define EMULATOR_BUILDS_BF16_MMA 1
#else
#define EMULATOR_BUILDS_BF16_MMA 0
#endif

namespace {

// The float sums of either kernel against the reference on the same bf16 values. Every product of two bf16
// (8 significant bits each) is exact in float, so what is left is an L-term float sum: the CUDA-core kernel's
// parity tests allow test::float_sum_tolerance with a margin of 4. Tensor cores may align and truncate the
// addends instead of rounding to nearest (Fasi et al., "Numerical behavior of NVIDIA tensor cores", 2021),
// which doubles the error bound of each addition: margin 8 keeps the same safety factor for them (and holds
// for the CUDA-core kernel a fortiori).
constexpr double kSumMargin = 8.0;
double sum_tolerance(int64_t terms) {
    return test::float_sum_tolerance(terms, kSumMargin);
}

// bf16's unit roundoff: 8 significant bits, rounding to nearest moves a value by at most 2^-8 of it.
constexpr double kBf16UnitRoundoff = 0x1p-8;

// y and dx: the kernel's float result a and the reference's b each rounded once to bf16. Per element
// |R(a) − R(b)| ≤ u|a| + |a − b| + u|b| ≤ 2u|b| + (1 + u)|a − b|, and the metric's scale max|R(b)| is at
// least max|b| / (1 + u): so max_relative_error ≤ (1 + u)² (2u + sum_tolerance).
double bf16_output_tolerance(int64_t terms) {
    constexpr double u = kBf16UnitRoundoff;
    return (1 + u) * (1 + u) * (2 * u + sum_tolerance(terms));
}

Conv2dOptions zeros(cpu::Pair2d stride, Conv2dPadding padding, cpu::Pair2d dilation = 1) {
    return test::conv2d_options(stride, padding, dilation, 1, Conv2dPaddingMode::zeros);
}

void poison(const DeviceBuffer& buffer) {
    fill_bytes(buffer.data(), 0xff, buffer.bytes());
}

// The inputs of one case: x, w, dy already bf16 values (NCHW), bias float.
struct Inputs {
    HostTensor<float> x, w, bias, dy;
    bool has_bias = true;
};

// The outputs of one run, y and dx back in NCHW order.
struct Outputs {
    HostTensor<float> y, dx, dw, db;
};

bool bitwise_equal(const Outputs& a, const Outputs& b) {
    return test::bitwise_equal(a.y, b.y) && test::bitwise_equal(a.dx, b.dx) &&
           test::bitwise_equal(a.dw, b.dw) && test::bitwise_equal(a.db, b.db);
}

// The three bf16 calls on `kernel` with x, y, dy and dx in `format`; outputs and the workspace poisoned with
// NaN before each call.
Outputs run_kernel(ImplicitBf16Kernel kernel, const cpu::Conv2dGeometry& g, const Inputs& in,
                   MemoryFormat format) {
    const bool nhwc = format == MemoryFormat::nhwc;
    const size_t bytes = std::max<size_t>(gpu::conv2d_implicit_workspace_bytes(g), sizeof(float));
    const DeviceBuffer workspace(bytes);
    const DeviceBuffer d_x = test::to_device_bf16(nhwc ? test::to_nhwc(in.x) : in.x);
    const DeviceBuffer d_dy = test::to_device_bf16(nhwc ? test::to_nhwc(in.dy) : in.dy);
    const DeviceBuffer d_w = test::to_device_bf16(in.w), d_bias = test::to_device(in.bias);
    const DeviceBuffer d_y = test::poisoned_bf16(g.output_shape().numel()),
                       d_dx = test::poisoned_bf16(in.x.numel());
    const DeviceBuffer d_dw = test::poisoned<float>(in.w.numel()),
                       d_db = test::poisoned<float>(g.out_channels);
    const float* bias = in.has_bias ? d_bias.data_as<float>() : nullptr;
    float* db = in.has_bias ? d_db.data_as<float>() : nullptr;

    poison(workspace);
    gpu::conv2d_implicit_forward_with_kernel(kernel, g, test::bf16_data(d_x), test::bf16_data(d_w), bias,
                                             test::bf16_data(d_y), workspace.data(), bytes, nullptr, format);
    poison(workspace);
    gpu::conv2d_implicit_backward_data_with_kernel(kernel, g, test::bf16_data(d_dy), test::bf16_data(d_w),
                                                   test::bf16_data(d_dx), workspace.data(), bytes, nullptr,
                                                   format);
    poison(workspace);
    gpu::conv2d_implicit_backward_filter_with_kernel(kernel, g, test::bf16_data(d_x), test::bf16_data(d_dy),
                                                     d_dw.data_as<float>(), db, workspace.data(), bytes,
                                                     nullptr, format);
    const HostTensor<float> y = test::to_host_bf16(d_y.data(), g.output_shape());
    const HostTensor<float> dx = test::to_host_bf16(d_dx.data(), in.x.shape());
    return {nhwc ? test::from_nhwc(y) : y, nhwc ? test::from_nhwc(dx) : dx,
            test::to_host<float>(d_dw, in.w.shape()),
            in.has_bias ? test::to_host<float>(d_db, Shape{g.out_channels}) : HostTensor<float>(Shape{1})};
}

struct ConvCase {
    std::string name;
    Shape x, w;  // (N, C, H, W), (OC, C, KH, KW)
    Conv2dOptions options;
    bool bias = true;
};

void check_against_reference(const Outputs& out, const cpu::Conv2dGeometry& g, const HostTensor<float>& y_ref,
                             const cpu::Conv2dGrads<float>& ref, bool has_bias) {
    // Reduction lengths: y sums C·KH·KW taps (+ bias); dx at most OC·KH·KW; dw and db N·OH·OW terms.
    const int64_t taps = g.kernel_h * g.kernel_w, positions = g.batch * g.out_h * g.out_w;
    CHECK(test::max_relative_error(out.y, test::round_to_bf16(y_ref)) <=
          bf16_output_tolerance(g.in_channels * taps + 1));
    CHECK(test::max_relative_error(out.dx, test::round_to_bf16(ref.dx)) <=
          bf16_output_tolerance(g.out_channels * taps));
    CHECK(test::max_relative_error(out.dw, ref.dweight) <= sum_tolerance(positions));
    if (has_bias) CHECK(test::max_relative_error(out.db, ref.dbias) <= sum_tolerance(positions));
}

// Both kernels in both formats against the reference; NHWC bit for bit with NCHW for each kernel (the same
// fragments, in the same order, on tensor cores too); automatic the tensor-core kernel where it runs; and
// under the emulator, whose wmma sums k in order with exact products, the tensor-core kernel bit for bit the
// CUDA-core one (the same k slices, split-k included; a kernel that dropped or repeated a k step, or rounded
// a gathered value, would differ here).
void check_case(const ConvCase& c, uint32_t seed) {
    INFO("case " << c.name);
    const cpu::Conv2dGeometry g = cpu::conv2d_geometry(c.x, c.w, c.options);
    REQUIRE(gpu::conv2d_implicit_unsupported(g).empty());
    Inputs in{test::round_to_bf16(test::random_tensor<float>(c.x, seed)),
              test::round_to_bf16(test::random_tensor<float>(c.w, seed + 1)),
              test::random_tensor<float>(Shape{c.w[0]}, seed + 2),
              test::round_to_bf16(test::random_tensor<float>(g.output_shape(), seed + 3)), c.bias};
    const HostTensor<float> y_ref = cpu::conv2d<float>(in.x, in.w, c.bias ? &in.bias : nullptr, c.options);
    const cpu::Conv2dGrads<float> ref = cpu::conv2d_backward<float>(in.x, in.w, in.dy, c.bias, c.options);

    const bool tensor_cores = gpu::conv2d_implicit_bf16_tensor_cores_available();
    for (const MemoryFormat format : {MemoryFormat::nchw, MemoryFormat::nhwc}) {
        INFO("format " << (format == MemoryFormat::nhwc ? "NHWC" : "NCHW"));
        const Outputs cuda_cores = run_kernel(ImplicitBf16Kernel::cuda_cores, g, in, format);
        INFO("CUDA-core kernel");
        check_against_reference(cuda_cores, g, y_ref, ref, c.bias);
        if (format == MemoryFormat::nhwc) {
            CHECK(bitwise_equal(cuda_cores,
                                run_kernel(ImplicitBf16Kernel::cuda_cores, g, in, MemoryFormat::nchw)));
        }
        if (!tensor_cores) {
            CHECK(bitwise_equal(run_kernel(ImplicitBf16Kernel::automatic, g, in, format), cuda_cores));
            continue;
        }
        const Outputs mma = run_kernel(ImplicitBf16Kernel::tensor_cores, g, in, format);
        INFO("tensor-core kernel");
        check_against_reference(mma, g, y_ref, ref, c.bias);
        CHECK(bitwise_equal(run_kernel(ImplicitBf16Kernel::automatic, g, in, format), mma));
        if (format == MemoryFormat::nhwc) {
            CHECK(
                bitwise_equal(mma, run_kernel(ImplicitBf16Kernel::tensor_cores, g, in, MemoryFormat::nchw)));
        }
#ifdef CUDACNN_EMU
        CHECK(bitwise_equal(mma, cuda_cores));
#endif
    }
}

}  // namespace

TEST_CASE("conv2d_implicit bf16 tensor cores: the emulator runs them",
          "[parity][bf16][conv2d_implicit_bf16_tc]") {
#if EMULATOR_BUILDS_BF16_MMA
    // The emulator reports sm_90 and has bf16 wmma.
    CHECK(gpu::conv2d_implicit_bf16_tensor_cores_available());
#endif
    if (gpu::conv2d_implicit_bf16_tensor_cores_available()) return;
    // Elsewhere asking for them by name is an error that says what is missing.
    const cpu::Conv2dGeometry g = cpu::conv2d_geometry(Shape{1, 3, 5, 5}, Shape{2, 3, 3, 3}, zeros(1, 1));
    const DeviceBuffer x = test::poisoned_bf16(75), w = test::poisoned_bf16(54), y = test::poisoned_bf16(50);
    CHECK_THAT(test::error_message([&] {
                   gpu::conv2d_implicit_forward_with_kernel(
                       ImplicitBf16Kernel::tensor_cores, g, test::bf16_data(x), test::bf16_data(w), nullptr,
                       test::bf16_data(y), nullptr, 0, nullptr, MemoryFormat::nchw);
               }),
               Catch::Contains("conv2d_implicit_forward: ImplicitBf16Kernel::tensor_cores needs a build with "
                               "CUDACNN_IMPLICIT_BF16_MMA"));
}

TEST_CASE("conv2d_implicit bf16 tensor cores match the reference on odd shapes",
          "[parity][bf16][conv2d_implicit_bf16_tc]") {
    // C = 3, 5, 17 and OC = 7, 64 (block tiles of 32 and 64 rows, partly empty fragments); odd H and W; no
    // size a multiple of any tile, of 8 or of 16 (one k step of the tensor-core kernel).
    check_case({"3→7, 9×7, 3×3, pad 1, batch 3", Shape{3, 3, 9, 7}, Shape{7, 3, 3, 3}, zeros(1, 1)}, 700);
    check_case({"5→64, 9×11, 5×5, stride 2, pad 2, batch 1, no bias", Shape{1, 5, 9, 11}, Shape{64, 5, 5, 5},
                zeros(2, 2), false},
               710);
    check_case({"17→7, 11×9, 3×3, dilation 2, pad 2, batch 3", Shape{3, 17, 11, 9}, Shape{7, 17, 3, 3},
                zeros(1, 2, 2)},
               720);
    check_case({"17→64, 7×5, 1×1, 'valid', batch 3, no bias", Shape{3, 17, 7, 5}, Shape{64, 17, 1, 1},
                zeros(1, Conv2dPadding::valid()), false},
               730);
    check_case({"5→7, 13×11, 5×5, stride 2, pad (1, 2), dilation (1, 2), batch 1", Shape{1, 5, 13, 11},
                Shape{7, 5, 5, 5}, zeros(2, {1, 2}, {1, 2})},
               740);
    check_case({"3→7, 7×9, 2×3, stride (2, 1), 'valid', batch 3", Shape{3, 3, 7, 9}, Shape{7, 3, 2, 3},
                zeros({2, 1}, Conv2dPadding::valid())},
               750);
}

TEST_CASE("conv2d_implicit bf16 tensor cores split k, summing the slices in float",
          "[parity][bf16][conv2d_implicit_bf16_tc]") {
    // Small maps: the forward's and backward-data's k = 128 · 9 = 1152 on a 3×3 map, one tile, two slices of
    // 576 (the bias added by the sum pass, which rounds y).
    check_case({"128→128, 3×3, batch 1", Shape{1, 128, 3, 3}, Shape{128, 128, 3, 3}, zeros(1, 1)}, 760);
    // Backward-filter's long k = 9 · 13 · 11 = 1287: slices of 648 (not a multiple of 16: the tensor-core
    // kernel's last step of the first slice is half zeros) and 639.
    check_case({"5→7, 13×11, batch 9, no bias", Shape{9, 5, 13, 11}, Shape{7, 5, 3, 3}, zeros(1, 1), false},
               770);
    // k = 12 · 15 · 16 = 2880 in five slices of 576, stride 2 on an odd 31×33 input.
    check_case({"3→7, 31×33, stride 2, batch 12", Shape{12, 3, 31, 33}, Shape{7, 3, 3, 3}, zeros(2, 0)}, 780);
}

TEST_CASE("conv2d_implicit bf16 tensor cores are bitwise reproducible",
          "[parity][bf16][conv2d_implicit_bf16_tc]") {
    const ConvCase c{"5→7, 13×11, batch 9", Shape{9, 5, 13, 11}, Shape{7, 5, 3, 3}, zeros(1, 1)};  // split k
    const cpu::Conv2dGeometry g = cpu::conv2d_geometry(c.x, c.w, c.options);
    const Inputs in{test::round_to_bf16(test::random_tensor<float>(c.x, 790)),
                    test::round_to_bf16(test::random_tensor<float>(c.w, 791)),
                    test::random_tensor<float>(Shape{7}, 792),
                    test::round_to_bf16(test::random_tensor<float>(g.output_shape(), 793)), true};
    const Outputs first = run_kernel(ImplicitBf16Kernel::automatic, g, in, MemoryFormat::nhwc);
    CHECK(bitwise_equal(first, run_kernel(ImplicitBf16Kernel::automatic, g, in, MemoryFormat::nhwc)));
}

TEST_CASE("Conv2dPlan: bf16 implicit names its kernel and runs the automatic one",
          "[parity][bf16][conv2d_plan][conv2d_implicit_bf16_tc]") {
    const Shape xs{2, 5, 7, 9}, ws{7, 5, 3, 3};
    const cpu::Conv2dGeometry g = cpu::conv2d_geometry(xs, ws, zeros(1, 1));
    gpu::Conv2dSettings settings;
    settings.algo = gpu::ConvAlgo::implicit;
    settings.dtype = DType::bf16;
    settings.memory_format = MemoryFormat::nhwc;
    const gpu::Conv2dPlan plan(g, settings, nullptr);
    if (gpu::conv2d_implicit_bf16_tensor_cores_available()) {
        CHECK(plan.description() == "implicit nhwc (bf16 tensor cores)");
    } else {
        CHECK_THAT(plan.description(),
                   Catch::Contains("implicit nhwc (bf16 on CUDA cores: tensor cores need"));
    }
    settings.dtype = DType::f32;
    CHECK(gpu::Conv2dPlan(g, settings, nullptr).description() == "implicit nhwc");

    // The plan's three passes give the bits of the direct calls on the automatic kernel.
    const Inputs in{test::round_to_bf16(test::random_tensor<float>(xs, 800)),
                    test::round_to_bf16(test::random_tensor<float>(ws, 801)),
                    test::random_tensor<float>(Shape{7}, 802),
                    test::round_to_bf16(test::random_tensor<float>(g.output_shape(), 803)), true};
    const DeviceBuffer d_x = test::to_device_bf16(test::to_nhwc(in.x)), d_w = test::to_device_bf16(in.w);
    const DeviceBuffer d_dy = test::to_device_bf16(test::to_nhwc(in.dy)), d_b = test::to_device(in.bias);
    const DeviceBuffer y = test::poisoned_bf16(g.output_shape().numel()),
                       dx = test::poisoned_bf16(xs.numel());
    const DeviceBuffer dw = test::poisoned<float>(ws.numel()), db = test::poisoned<float>(7);
    const DeviceBuffer workspace(std::max<size_t>(plan.workspace_bytes(), sizeof(float)));
    plan.forward(test::bf16_data(d_x), test::bf16_data(d_w), d_b.data_as<float>(), test::bf16_data(y),
                 workspace.data(), nullptr);
    plan.backward_data(test::bf16_data(d_dy), test::bf16_data(d_w), test::bf16_data(dx), workspace.data(),
                       nullptr);
    plan.backward_filter(test::bf16_data(d_x), test::bf16_data(d_dy), dw.data_as<float>(),
                         db.data_as<float>(), workspace.data(), nullptr);
    const Outputs from_plan{test::from_nhwc(test::to_host_bf16(y.data(), g.output_shape())),
                            test::from_nhwc(test::to_host_bf16(dx.data(), xs)), test::to_host<float>(dw, ws),
                            test::to_host<float>(db, Shape{7})};
    CHECK(bitwise_equal(from_plan, run_kernel(ImplicitBf16Kernel::automatic, g, in, MemoryFormat::nhwc)));
}
