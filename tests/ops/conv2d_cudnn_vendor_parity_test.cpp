// Parity of the cuDNN conv2d (cuda/vendor/cudnn_conv2d.cpp) with cpu::conv2d / conv2d_backward (cuda only).
// All passes and the bias gradient on CifarCNN's layers and odd shapes, what cuDNN cannot compute, and the
// algorithm choice: describe(), workspace, determinism, benchmark mode, a zero workspace, TF32.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cstdint>
#include <string>
#include <vector>

#include "cuda/vendor/cudnn_conv2d.hpp"
#include "cudacnn/device.hpp"
#include "cudacnn/ops/conv2d.hpp"
#include "support/compare.hpp"
#include "support/cudnn_conv_cases.hpp"
#include "support/errors.hpp"
#include "support/parity.hpp"
#include "support/tolerance.hpp"

using namespace cudacnn;
using Catch::Matchers::Contains;
using Catch::Matchers::Matches;
using cpu::Conv2dOptions;
using cpu::Conv2dPadding;
using cpu::Conv2dPaddingMode;

namespace {

// Tolerances, relative to each tensor's max |value| (test::max_relative_error). FMA math:
// test::cudnn_fma_tolerance (support/cudnn_conv_cases.hpp, shared with the bf16 test).
//
// TF32 rounds both inputs of every product to 10 explicit mantissa bits: up to 2 · 2^-11 ≈ 1e-3 relative
// error per product. Errors of random sign grow like √L, as does the sum itself, so the tensor-relative error
// stays near 1e-3; 1e-2 leaves a factor of 10 (and would still catch a missing tap, an error of order 1/L).
constexpr double kTf32Tolerance = 1e-2;

using test::cudnn_fma_tolerance;
using ConvCase = test::CudnnConvCase;
using test::cudnn_cifar_layers;
using test::cudnn_odd_cases;

// The device outputs of the three passes, each buffer poisoned with NaN before its pass.
struct PassOutputs {
    HostTensor<float> y, dx, dw, db;
};

PassOutputs run_passes(const gpu::CudnnConv2d& conv, const DeviceBuffer& d_x, const DeviceBuffer& d_w,
                       const DeviceBuffer* d_bias, const DeviceBuffer& d_dy, const Stream& stream) {
    const cpu::Conv2dGeometry& g = conv.geometry();
    const Shape x_shape{g.batch, g.in_channels, g.in_h, g.in_w};
    const Shape w_shape{g.out_channels, g.in_channels_per_group(), g.kernel_h, g.kernel_w};
    const DeviceBuffer workspace(conv.workspace_bytes());
    const DeviceBuffer d_y = test::poisoned<float>(g.output_shape().numel());
    const DeviceBuffer d_dx = test::poisoned<float>(x_shape.numel()),
                       d_dw = test::poisoned<float>(w_shape.numel()),
                       d_db = test::poisoned<float>(g.out_channels);
    const cudaStream_t s = stream.handle();
    conv.forward(d_x.data_as<float>(), d_w.data_as<float>(), d_bias ? d_bias->data_as<float>() : nullptr,
                 d_y.data_as<float>(), workspace.data(), workspace.bytes(), s);
    conv.backward_data(d_dy.data_as<float>(), d_w.data_as<float>(), d_dx.data_as<float>(), workspace.data(),
                       workspace.bytes(), s);
    conv.backward_filter(d_x.data_as<float>(), d_dy.data_as<float>(), d_dw.data_as<float>(),
                         d_bias ? d_db.data_as<float>() : nullptr, workspace.data(), workspace.bytes(), s);
    // test::to_host copies on the legacy default stream, which does not wait for a non-blocking Stream.
    stream.synchronize();
    PassOutputs out;
    out.y = test::to_host<float>(d_y, g.output_shape());
    out.dx = test::to_host<float>(d_dx, x_shape);
    out.dw = test::to_host<float>(d_dw, w_shape);
    if (d_bias != nullptr) out.db = test::to_host<float>(d_db, Shape{g.out_channels});
    return out;
}

// Runs every pass of c through cuDNN with `opts` and checks it against the reference.
void check_case(const ConvCase& c, const gpu::CudnnConvOptions& opts, uint32_t seed) {
    INFO("case " << c.name);
    const HostTensor<float> x = test::random_tensor<float>(c.x, seed);
    const HostTensor<float> w = test::random_tensor<float>(c.w, seed + 1);
    const HostTensor<float> bias = test::random_tensor<float>(Shape{c.w[0]}, seed + 2);
    const cpu::Conv2dGeometry g = cpu::conv2d_geometry(c.x, c.w, c.options);
    REQUIRE(gpu::conv2d_cudnn_unsupported(g).empty());
    const HostTensor<float> dy = test::random_tensor<float>(g.output_shape(), seed + 3);
    const HostTensor<float> y_ref = cpu::conv2d<float>(x, w, c.bias ? &bias : nullptr, c.options);
    const cpu::Conv2dGrads<float> ref = cpu::conv2d_backward<float>(x, w, dy, c.bias, c.options);

    Stream stream;
    const gpu::CudnnConv2d conv(g, opts, stream.handle());
    INFO("cuDNN: " << conv.describe());
    CHECK(conv.workspace_bytes() <= opts.workspace_limit_bytes);
    CHECK(conv.workspace_bytes() ==
          std::max({conv.forward_workspace_bytes(), conv.backward_data_workspace_bytes(),
                    conv.backward_filter_workspace_bytes()}));

    const DeviceBuffer d_x = test::to_device(x), d_w = test::to_device(w), d_bias = test::to_device(bias),
                       d_dy = test::to_device(dy);
    const PassOutputs out = run_passes(conv, d_x, d_w, c.bias ? &d_bias : nullptr, d_dy, stream);
    const double y_error = test::max_relative_error(out.y, y_ref);
    const double dx_error = test::max_relative_error(out.dx, ref.dx);
    const double dw_error = test::max_relative_error(out.dw, ref.dweight);
    const double db_error = c.bias ? test::max_relative_error(out.db, ref.dbias) : 0.0;

    // Reduction lengths: y sums C/G·KH·KW taps (+ bias); dx sums at most OC/G·KH·KW taps (cuDNN pads with
    // zeros, so no element has padded copies); dw and db sum N·OH·OW terms.
    const int64_t taps = g.kernel_h * g.kernel_w, positions = g.batch * g.out_h * g.out_w;
    const auto tolerance = [&](int64_t terms) {
        return opts.allow_tf32 ? kTf32Tolerance : cudnn_fma_tolerance(terms);
    };
    CHECK(y_error <= tolerance(g.in_channels_per_group() * taps + 1));
    CHECK(dx_error <= tolerance(g.out_channels_per_group() * taps));
    CHECK(dw_error <= tolerance(positions));
    CHECK(db_error <= tolerance(positions));

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

TEST_CASE("cuDNN conv2d matches the reference on CifarCNN's layers at batch 4", "[parity][cudnn]") {
    uint32_t seed = 100;
    for (const ConvCase& c : cudnn_cifar_layers()) check_case(c, {}, seed += 10);
}

TEST_CASE("cuDNN conv2d matches the reference on odd shapes, strides, dilation, groups and depthwise",
          "[parity][cudnn]") {
    uint32_t seed = 200;
    for (const ConvCase& c : cudnn_odd_cases()) check_case(c, {}, seed += 10);
}

TEST_CASE("cuDNN conv2d: benchmarked choice, no workspace at all, and TF32", "[parity][cudnn]") {
    const std::vector<ConvCase> layers = cudnn_cifar_layers(), odd = cudnn_odd_cases();
    SECTION("cudnnFind timing picks algorithms that are just as exact") {
        gpu::CudnnConvOptions opts;
        opts.benchmark = true;
        check_case(layers[1], opts, 300);
        check_case(odd[6], opts, 310);
    }
    SECTION("a zero workspace limit leaves only workspace-free algorithms") {
        gpu::CudnnConvOptions opts;
        opts.workspace_limit_bytes = 0;
        check_case(layers[3], opts, 320);
        check_case(odd[3], opts, 330);
    }
    SECTION("allow_tf32 may use TF32 tensor cores, within TF32 accuracy") {
        gpu::CudnnConvOptions opts;
        opts.allow_tf32 = true;
        check_case(layers[3], opts, 340);
    }
}

TEST_CASE("cuDNN conv2d describes its choice", "[parity][cudnn]") {
    const cpu::Conv2dGeometry g =
        cpu::conv2d_geometry(Shape{4, 64, 16, 16}, Shape{128, 64, 3, 3}, Conv2dOptions{1, 1});
    Stream stream;
    const gpu::CudnnConv2d conv(g, {}, stream.handle());
    const std::string text = conv.describe();
    INFO(text);
    CHECK_THAT(text, Contains("fwd ") && Contains(", bwd-data ") && Contains(", bwd-filter ") &&
                         Contains(" MiB") && Contains("fma") && Contains("heuristics"));
    CHECK_THAT(text, Contains(conv.deterministic() ? ", deterministic" : "non-deterministic ("));
    CHECK(conv.workspace_bytes() <= gpu::CudnnConvOptions{}.workspace_limit_bytes);
    // With a deterministic algorithm available for every direction (there always is one for FMA math, e.g.
    // IMPLICIT_GEMM / bwd-data ALGO_1 / bwd-filter ALGO_1), the choice is deterministic.
    CHECK(conv.deterministic());
    CHECK(conv.geometry().out_channels == 128);

    gpu::CudnnConvOptions benchmark;
    benchmark.benchmark = true;
    CHECK_THAT(gpu::CudnnConv2d(g, benchmark, stream.handle()).describe(), Contains("benchmarked"));
}

TEST_CASE("cuDNN conv2d: benchmark timings are cached per shape and options", "[parity][cudnn]") {
    // A shape no other test times, so that the first plan is sure to run cudnnFind.
    const cpu::Conv2dGeometry g =
        cpu::conv2d_geometry(Shape{3, 5, 13, 11}, Shape{7, 5, 3, 3}, Conv2dOptions{1, 1});
    Stream stream;
    gpu::CudnnConvOptions benchmark;
    benchmark.benchmark = true;
    const size_t before = gpu::cudnn_benchmark_cache_entries();
    const gpu::CudnnConv2d first(g, benchmark, stream.handle());
    CHECK(gpu::cudnn_benchmark_cache_entries() == before + 3);  // one timed ranking per direction
    CHECK_THAT(first.describe(), Contains("benchmarked") && !Contains("cached"));
    const gpu::CudnnConv2d second(g, benchmark, stream.handle());
    CHECK(gpu::cudnn_benchmark_cache_entries() == before + 3);
    CHECK_THAT(second.describe(), Contains("benchmarked (timings cached)"));
    // The same choices and measured times, only marked as cached.
    std::string expected = first.describe();
    expected.replace(expected.find("benchmarked"), std::string("benchmarked").size(), "benchmarked (timings cached)");
    CHECK(second.describe() == expected);
    // Each direction's measured time, and the fastest candidate's where the deterministic choice was not it (the
    // H200 of 2026-11-27 gave "…; timed fwd 0.033 ms, bwd-data 0.071 ms (fastest 0.038), bwd-filter 0.031 ms
    // (fastest 0.026)").
    const std::string timed = R"( [0-9]+\.[0-9]{3} ms( \(fastest [0-9]+\.[0-9]{3}\))?)";
    CHECK_THAT(first.describe(), Matches(".*; timed fwd" + timed + ", bwd-data" + timed + ", bwd-filter" + timed));
    // TF32 allowed is another ranking (its candidates include tensor-op kernels: Find runs under the default
    // and the tensor-op math types).
    benchmark.allow_tf32 = true;
    const gpu::CudnnConv2d tf32(g, benchmark, stream.handle());
    CHECK(gpu::cudnn_benchmark_cache_entries() == before + 6);
    INFO(tf32.describe());
    CHECK_THAT(tf32.describe(), Contains("benchmarked") && Contains("; timed fwd "));
}

TEST_CASE("conv2d_cudnn_unsupported names what cuDNN cannot do", "[parity][cudnn]") {
    using M = Conv2dPaddingMode;
    const Shape x{2, 3, 7, 5}, w{4, 3, 3, 3};
    for (const M mode : {M::reflect, M::replicate, M::circular}) {
        const std::string why =
            gpu::conv2d_cudnn_unsupported(cpu::conv2d_geometry(x, w, Conv2dOptions{1, 1, 1, 1, mode}));
        CHECK_THAT(why, Contains(cpu::conv2d_padding_mode_name(mode)) && Contains("zeros only"));
    }
    CHECK(gpu::conv2d_cudnn_unsupported(cpu::conv2d_geometry(x, w, Conv2dOptions{1, 0, 1, 1, M::circular}))
              .empty());
    // 'same' with a 4×2 kernel: totals 3 and 1 put the extra row / column at the bottom / right.
    const std::string same_odd = gpu::conv2d_cudnn_unsupported(
        cpu::conv2d_geometry(x, Shape{4, 3, 4, 2}, Conv2dOptions{1, Conv2dPadding::same()}));
    CHECK_THAT(same_odd, Contains("asymmetric") && Contains("top 1, bottom 2, left 0, right 1"));
    CHECK(gpu::conv2d_cudnn_unsupported(cpu::conv2d_geometry(x, w, Conv2dOptions{1, Conv2dPadding::same()}))
              .empty());
    // 2^31 elements in x: cuDNN's 32-bit indexing.
    const std::string huge =
        gpu::conv2d_cudnn_unsupported(cpu::conv2d_geometry(Shape{65536, 1, 256, 128}, Shape{1, 1, 1, 1}, {}));
    CHECK_THAT(huge, Contains("x has more than 2^31 − 1 elements"));
}

TEST_CASE("cuDNN conv2d: bad arguments name the op and the values", "[parity][cudnn]") {
    Stream stream;
    const cudaStream_t s = stream.handle();
    const Shape x{2, 3, 7, 5}, w{4, 3, 3, 3};
    CHECK_THAT(test::error_message([&] {
                   (void)gpu::CudnnConv2d(
                       cpu::conv2d_geometry(x, w, Conv2dOptions{1, 1, 1, 1, Conv2dPaddingMode::replicate}),
                       {}, s);
               }),
               Contains("cudnn_conv2d") && Contains("replicate") && Contains("hand-written"));
    cpu::Conv2dGeometry inconsistent = cpu::conv2d_geometry(x, w, Conv2dOptions{1, 1});
    inconsistent.out_h += 1;
    CHECK_THAT(test::error_message([&] { (void)gpu::CudnnConv2d(inconsistent, {}, s); }),
               Contains("cudnn_conv2d") && Contains("cpu::conv2d_geometry"));

    gpu::CudnnConv2d conv(cpu::conv2d_geometry(x, w, Conv2dOptions{1, 1}), {}, s);
    DeviceBuffer buffer = test::poisoned<float>(1024);
    float* p = buffer.data_as<float>();
    CHECK_THAT(test::error_message([&] { conv.forward(nullptr, p, nullptr, p, nullptr, 0, s); }),
               Contains("cudnn_conv2d forward") && Contains("x ("));
    CHECK_THAT(test::error_message([&] { conv.backward_filter(p, p, nullptr, nullptr, nullptr, 0, s); }),
               Contains("cudnn_conv2d backward_filter") && Contains("nothing to compute"));
    if (conv.forward_workspace_bytes() > 0) {
        CHECK_THAT(test::error_message([&] {
                       conv.forward(p, p, nullptr, p, buffer.data(), conv.forward_workspace_bytes() - 1, s);
                   }),
                   Contains("cudnn_conv2d forward") && Contains("workspace"));
    }
    gpu::CudnnConv2d moved = std::move(conv);
    CHECK_THAT(test::error_message([&] { (void)conv.describe(); }), Contains("moved from"));
    CHECK_THAT(moved.describe(), Contains("fwd "));
    stream.synchronize();
}
