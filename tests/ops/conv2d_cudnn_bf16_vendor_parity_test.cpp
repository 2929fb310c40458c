// Parity of the cuDNN conv2d's bf16 passes (cuda/vendor/cudnn_conv2d.cpp, CudnnConvOptions::data_type bf16)
// with cpu::conv2d / conv2d_backward run on bf16-rounded inputs (cuda only: runs on a GPU): CifarCNN's layers
// and odd shapes, the float bias and the float weight and bias gradients, benchmarked choice cached per data
// type, the workspace with its bf16 staging, and the errors of mixing data types.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cstdint>
#include <string>

#include "cuda/vendor/cudnn_conv2d.hpp"
#include "cudacnn/device.hpp"
#include "cudacnn/ops/conv2d.hpp"
#include "support/bf16.hpp"
#include "support/compare.hpp"
#include "support/cudnn_conv_cases.hpp"
#include "support/errors.hpp"
#include "support/parity.hpp"

using namespace cudacnn;
using Catch::Matchers::Contains;
using cpu::Conv2dOptions;

namespace {

// Tolerances, relative to each tensor's max |value| (test::max_relative_error).
//
// bf16 keeps 8 significant bits (7 stored): one rounding to nearest is off by at most 2^-8 relative to the
// value rounded (half the ulp 2^-7 at 1.0; 1 + 2^-8 is a tie), and the values rounded are at most about the
// tensor's max |value|. (An earlier draft of docs/bf16-nhwc-plan.md said 2^-9, half the real figure.)
constexpr double kBf16Rounding = 0x1p-8;
// Before any rounding, cuDNN and the reference compute the same float sums of products that are exact in FP32
// (bf16 × bf16 needs 16 significant bits) in different orders, possibly through Winograd or FFT transforms:
// the float test's test::cudnn_fma_tolerance covers that. On top, each rounding on either side: y with a bias
// is rounded by cuDNN, by our bias add and by the reference (3); y without a bias and dx by cuDNN and the
// reference (2); dw by cuDNN only, the reference keeping float (1); dbias is our own float sum of the same bf16
// dy (0, given the margin of 1). One more rounding's worth is a
// margin: the value cuDNN rounds before the bias add can exceed the output's max |value| where the bias
// cancels it. A wrong descriptor, type or staging gives errors of order 1. A missing or doubled bias gives
// max |bias| / max |y|: above 0.1 in the odd shapes' short sums (caught there), but only about 0.015 in the
// CifarCNN layers' long ones, within bf16's resolution of their outputs; likewise a single missing tap of a
// long sum (1/L) hides below it, and the float test catches those in the descriptors and algorithms the two
// data types share.
double bf16_tolerance(int roundings, int64_t terms) {
    return (roundings + 1) * kBf16Rounding + test::cudnn_fma_tolerance(terms);
}

// The inputs of one case: activations and weight rounded to bf16, the bias float (the executor's master
// bias).
struct Inputs {
    HostTensor<float> x, w, bias, dy;
};

Inputs make_inputs(const test::CudnnConvCase& c, const cpu::Conv2dGeometry& g, uint32_t seed) {
    Inputs in;
    in.x = test::round_to_bf16(test::random_tensor<float>(c.x, seed));
    in.w = test::round_to_bf16(test::random_tensor<float>(c.w, seed + 1));
    in.bias = test::random_tensor<float>(Shape{c.w[0]}, seed + 2);
    in.dy = test::round_to_bf16(test::random_tensor<float>(g.output_shape(), seed + 3));
    return in;
}

// y, dx as bf16 widened; dw, db float; each buffer poisoned with NaN before its pass.
struct PassOutputs {
    HostTensor<float> y, dx, dw, db;
};

PassOutputs run_passes(const gpu::CudnnConv2d& conv, const DeviceBuffer& d_x, const DeviceBuffer& d_w,
                       const DeviceBuffer* d_bias, const DeviceBuffer& d_dy, const Stream& stream) {
    const cpu::Conv2dGeometry& g = conv.geometry();
    const Shape x_shape{g.batch, g.in_channels, g.in_h, g.in_w};
    const Shape w_shape{g.out_channels, g.in_channels_per_group(), g.kernel_h, g.kernel_w};
    const DeviceBuffer workspace =
        test::poisoned<unsigned char>(static_cast<int64_t>(conv.workspace_bytes()));
    const DeviceBuffer d_y = test::poisoned_bf16(g.output_shape().numel()),
                       d_dx = test::poisoned_bf16(x_shape.numel());
    const DeviceBuffer d_dw = test::poisoned<float>(w_shape.numel()),
                       d_db = test::poisoned<float>(g.out_channels);
    const cudaStream_t s = stream.handle();
    const float* bias = d_bias != nullptr ? d_bias->data_as<float>() : nullptr;
    conv.forward(test::bf16_data(d_x), test::bf16_data(d_w), bias, test::bf16_data(d_y), workspace.data(),
                 workspace.bytes(), s);
    conv.backward_data(test::bf16_data(d_dy), test::bf16_data(d_w), test::bf16_data(d_dx), workspace.data(),
                       workspace.bytes(), s);
    conv.backward_filter(test::bf16_data(d_x), test::bf16_data(d_dy), d_dw.data_as<float>(),
                         d_bias != nullptr ? d_db.data_as<float>() : nullptr, workspace.data(),
                         workspace.bytes(), s);
    // The host copies run on the legacy default stream, which does not wait for a non-blocking Stream.
    stream.synchronize();
    PassOutputs out;
    out.y = test::to_host_bf16(d_y.data(), g.output_shape());
    out.dx = test::to_host_bf16(d_dx.data(), x_shape);
    out.dw = test::to_host<float>(d_dw, w_shape);
    if (d_bias != nullptr) out.db = test::to_host<float>(d_db, Shape{g.out_channels});
    return out;
}

gpu::CudnnConvOptions bf16_options() {
    gpu::CudnnConvOptions opts;
    opts.data_type = DType::bf16;
    return opts;
}

// Runs every bf16 pass of c through cuDNN with `opts` and checks it against the reference on the same
// (bf16-rounded) values: y and dx rounded once to bf16, dw and dbias float.
void check_case(const test::CudnnConvCase& c, const gpu::CudnnConvOptions& opts, uint32_t seed) {
    INFO("case " << c.name);
    const cpu::Conv2dGeometry g = cpu::conv2d_geometry(c.x, c.w, c.options);
    REQUIRE(gpu::conv2d_cudnn_unsupported(g).empty());
    const Inputs in = make_inputs(c, g, seed);
    const HostTensor<float> y_ref =
        test::round_to_bf16(cpu::conv2d<float>(in.x, in.w, c.bias ? &in.bias : nullptr, c.options));
    const cpu::Conv2dGrads<float> ref = cpu::conv2d_backward<float>(in.x, in.w, in.dy, c.bias, c.options);
    const HostTensor<float> dx_ref = test::round_to_bf16(ref.dx);

    Stream stream;
    const gpu::CudnnConv2d conv(g, opts, stream.handle());
    INFO("cuDNN: " << conv.describe());
    CHECK(conv.data_type() == DType::bf16);
    CHECK(conv.workspace_bytes() ==
          std::max({conv.forward_workspace_bytes(), conv.backward_data_workspace_bytes(),
                    conv.backward_filter_workspace_bytes()}));
    // The backward-filter pass holds a bf16 dw before the algorithm's workspace.
    const int64_t w_count = c.w.numel();
    CHECK(conv.backward_filter_workspace_bytes() >= static_cast<size_t>(w_count) * sizeof(gpu::bf16));
    CHECK(conv.forward_workspace_bytes() <= opts.workspace_limit_bytes);
    CHECK(conv.backward_data_workspace_bytes() <= opts.workspace_limit_bytes);

    const DeviceBuffer d_x = test::to_device_bf16(in.x), d_w = test::to_device_bf16(in.w),
                       d_dy = test::to_device_bf16(in.dy), d_bias = test::to_device(in.bias);
    const PassOutputs out = run_passes(conv, d_x, d_w, c.bias ? &d_bias : nullptr, d_dy, stream);

    // Reduction lengths as in the float test: y sums C/G·KH·KW taps (+ bias), dx at most OC/G·KH·KW taps, dw
    // and db N·OH·OW terms.
    const int64_t taps = g.kernel_h * g.kernel_w, positions = g.batch * g.out_h * g.out_w;
    CHECK(test::max_relative_error(out.y, y_ref) <=
          bf16_tolerance(c.bias ? 3 : 2, g.in_channels_per_group() * taps + 1));
    CHECK(test::max_relative_error(out.dx, dx_ref) <= bf16_tolerance(2, g.out_channels_per_group() * taps));
    CHECK(test::max_relative_error(out.dw, ref.dweight) <= bf16_tolerance(1, positions));
    if (c.bias) CHECK(test::max_relative_error(out.db, ref.dbias) <= bf16_tolerance(1, positions));
    // The widened gradients are bf16 values (one rounding in cuDNN, then an exact widening).
    CHECK(test::bitwise_equal(test::round_to_bf16(out.dw), out.dw));

    // A deterministic choice must reproduce itself bit for bit.
    if (conv.deterministic()) {
        const PassOutputs again = run_passes(conv, d_x, d_w, c.bias ? &d_bias : nullptr, d_dy, stream);
        CHECK(test::bitwise_equal(again.y, out.y));
        CHECK(test::bitwise_equal(again.dx, out.dx));
        CHECK(test::bitwise_equal(again.dw, out.dw));
        if (c.bias) CHECK(test::bitwise_equal(again.db, out.db));
    }
}

}  // namespace

TEST_CASE("cuDNN conv2d bf16 matches the reference on CifarCNN's layers at batch 4",
          "[parity][cudnn][bf16]") {
    uint32_t seed = 1100;
    for (const test::CudnnConvCase& c : test::cudnn_cifar_layers()) check_case(c, bf16_options(), seed += 10);
}

TEST_CASE("cuDNN conv2d bf16 matches the reference on odd shapes, strides, dilation, groups and depthwise",
          "[parity][cudnn][bf16]") {
    uint32_t seed = 1200;
    for (const test::CudnnConvCase& c : test::cudnn_odd_cases()) check_case(c, bf16_options(), seed += 10);
}

TEST_CASE("cuDNN conv2d bf16: benchmarked choice, and the TF32 setting ignored",
          "[parity][cudnn][bf16]") {
    const std::vector<test::CudnnConvCase> layers = test::cudnn_cifar_layers(), odd = test::cudnn_odd_cases();
    SECTION("cudnnFind timing picks algorithms that are just as exact") {
        gpu::CudnnConvOptions opts = bf16_options();
        opts.benchmark = true;
        check_case(layers[1], opts, 1300);
        check_case(odd[6], opts, 1310);
    }
    SECTION("allow_tf32 concerns float data only: the same accuracy") {
        gpu::CudnnConvOptions opts = bf16_options();
        opts.allow_tf32 = true;
        check_case(layers[3], opts, 1340);
    }
}

TEST_CASE("cuDNN conv2d bf16: dbias alone (no x, no dweight) gives the same bits as with dweight",
          "[parity][cudnn][bf16]") {
    const test::CudnnConvCase c = test::cudnn_odd_cases()[0];
    const cpu::Conv2dGeometry g = cpu::conv2d_geometry(c.x, c.w, c.options);
    const Inputs in = make_inputs(c, g, 1400);
    Stream stream;
    const cudaStream_t s = stream.handle();
    const gpu::CudnnConv2d conv(g, bf16_options(), s);
    const DeviceBuffer d_x = test::to_device_bf16(in.x), d_dy = test::to_device_bf16(in.dy);
    const DeviceBuffer workspace(conv.workspace_bytes());
    const DeviceBuffer both_dw = test::poisoned<float>(c.w.numel()), both_db = test::poisoned<float>(c.w[0]),
                       only_db = test::poisoned<float>(c.w[0]);
    conv.backward_filter(test::bf16_data(d_x), test::bf16_data(d_dy), both_dw.data_as<float>(),
                         both_db.data_as<float>(), workspace.data(), workspace.bytes(), s);
    conv.backward_filter(nullptr, test::bf16_data(d_dy), nullptr, only_db.data_as<float>(), workspace.data(),
                         workspace.bytes(), s);
    stream.synchronize();
    const HostTensor<float> db = test::to_host<float>(only_db, Shape{c.w[0]});
    CHECK(test::bitwise_equal(db, test::to_host<float>(both_db, Shape{c.w[0]})));
    const cpu::Conv2dGrads<float> ref = cpu::conv2d_backward<float>(in.x, in.w, in.dy, true, c.options);
    CHECK(test::max_relative_error(db, ref.dbias) <= bf16_tolerance(1, g.batch * g.out_h * g.out_w));
}

TEST_CASE("cuDNN conv2d bf16: describe, timings cached per data type", "[parity][cudnn][bf16]") {
    // A shape no other test times, so that the first plan is sure to run cudnnFind.
    const cpu::Conv2dGeometry g =
        cpu::conv2d_geometry(Shape{3, 5, 11, 13}, Shape{7, 5, 3, 3}, Conv2dOptions{1, 1});
    Stream stream;
    gpu::CudnnConvOptions opts = bf16_options();
    const std::string heuristic = gpu::CudnnConv2d(g, opts, stream.handle()).describe();
    INFO(heuristic);
    CHECK_THAT(heuristic, Contains("fwd ") && Contains(", bwd-filter ") && Contains("bf16 ") &&
                              Contains("heuristics") && !Contains("tf32"));

    opts.benchmark = true;
    const size_t before = gpu::cudnn_benchmark_cache_entries();
    const gpu::CudnnConv2d first(g, opts, stream.handle());
    CHECK(gpu::cudnn_benchmark_cache_entries() == before + 3);  // one timed ranking per direction
    CHECK_THAT(first.describe(), Contains("benchmarked") && !Contains("cached"));
    // Float data of the same shape is another ranking; bf16 again reuses the first.
    gpu::CudnnConvOptions f32 = opts;
    f32.data_type = DType::f32;
    const gpu::CudnnConv2d float_plan(g, f32, stream.handle());
    CHECK(gpu::cudnn_benchmark_cache_entries() == before + 6);
    CHECK_THAT(float_plan.describe(), !Contains("bf16"));
    const gpu::CudnnConv2d second(g, opts, stream.handle());
    CHECK(gpu::cudnn_benchmark_cache_entries() == before + 6);
    CHECK_THAT(second.describe(), Contains("benchmarked (timings cached)") && Contains("bf16 "));
    // allow_tf32 means nothing for bf16 data: the same cached ranking.
    opts.allow_tf32 = true;
    const gpu::CudnnConv2d tf32(g, opts, stream.handle());
    CHECK(gpu::cudnn_benchmark_cache_entries() == before + 6);
}

TEST_CASE("cuDNN conv2d bf16: mixing data types, unsupported types and bad arguments name the problem",
          "[parity][cudnn][bf16]") {
    Stream stream;
    const cudaStream_t s = stream.handle();
    const cpu::Conv2dGeometry g =
        cpu::conv2d_geometry(Shape{2, 3, 7, 5}, Shape{4, 3, 3, 3}, Conv2dOptions{1, 1});
    gpu::CudnnConvOptions f16;
    f16.data_type = DType::f16;
    CHECK_THAT(test::error_message([&] { (void)gpu::CudnnConv2d(g, f16, s); }),
               Contains("cudnn_conv2d") && Contains("data_type f16") && Contains("DType::bf16"));

    const gpu::CudnnConv2d bf16_plan(g, bf16_options(), s);
    const gpu::CudnnConv2d float_plan(g, {}, s);
    const DeviceBuffer buffer = test::poisoned<float>(1024);
    float* f = buffer.data_as<float>();
    gpu::bf16* h = test::bf16_data(buffer);
    const DeviceBuffer workspace(std::max(bf16_plan.workspace_bytes(), float_plan.workspace_bytes()));
    void* ws = workspace.data();
    const size_t bytes = workspace.bytes();
    CHECK_THAT(test::error_message([&] { bf16_plan.forward(f, f, nullptr, f, ws, bytes, s); }),
               Contains("cudnn_conv2d forward") && Contains("f32 tensors on a plan made for bf16"));
    CHECK_THAT(test::error_message([&] { bf16_plan.backward_filter(f, f, f, nullptr, ws, bytes, s); }),
               Contains("cudnn_conv2d backward_filter") && Contains("f32 tensors on a plan made for bf16"));
    CHECK_THAT(test::error_message([&] { float_plan.backward_data(h, h, h, ws, bytes, s); }),
               Contains("cudnn_conv2d backward_data") && Contains("bf16 tensors on a plan made for f32"));

    CHECK_THAT(test::error_message([&] { bf16_plan.forward(nullptr, h, nullptr, h, ws, bytes, s); }),
               Contains("cudnn_conv2d forward") && Contains("x ("));
    CHECK_THAT(test::error_message([&] { bf16_plan.backward_filter(h, h, nullptr, nullptr, ws, bytes, s); }),
               Contains("cudnn_conv2d backward_filter") && Contains("nothing to compute"));
    // The staging counts: one byte short of backward_filter_workspace_bytes() is too small.
    const size_t filter_bytes = bf16_plan.backward_filter_workspace_bytes();
    CHECK_THAT(test::error_message([&] { bf16_plan.backward_filter(h, h, f, f, ws, filter_bytes - 1, s); }),
               Contains("cudnn_conv2d backward_filter") && Contains("workspace") &&
                   Contains(std::to_string(filter_bytes) + " bytes"));
    stream.synchronize();
}
