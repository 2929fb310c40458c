// Conv2dPlan (cuda/conv2d.hpp): which algorithm it picks, that it says why when `auto` falls back, that an
// impossible explicit choice is an error, and that every algorithm it can run agrees with the reference.
#include <catch2/catch.hpp>

#include <algorithm>
#include <string>

#include "cuda/conv2d.hpp"
#include "cudacnn/ops/conv2d.hpp"
#include "support/compare.hpp"
#include "support/parity.hpp"

using namespace cudacnn;
using Catch::Matchers::Contains;
using Catch::Matchers::Matches;
using Catch::Matchers::StartsWith;

namespace {

cpu::Conv2dGeometry geometry(cpu::Conv2dPaddingMode mode) {
    cpu::Conv2dOptions options;
    options.padding = 1;
    options.padding_mode = mode;
    return cpu::conv2d_geometry(Shape{2, 3, 7, 5}, Shape{4, 3, 3, 3},
                                options);  // (N, C, H, W), (OC, C, KH, KW)
}

// Forward, backward-data and backward-filter through the plan against cpu::conv2d(_backward), for a
// geometry built with padding 1 in `mode`. 28 terms per output at most: 1e-5 is ~20× the float bound.
void check_plan_matches_reference(const gpu::Conv2dPlan& plan, cpu::Conv2dPaddingMode mode) {
    constexpr double kTolerance = 1e-5;
    cpu::Conv2dOptions options;
    options.padding = 1;
    options.padding_mode = mode;
    const cpu::Conv2dGeometry& g = plan.geometry();
    const auto x = test::random_tensor<float>(Shape{g.batch, g.in_channels, g.in_h, g.in_w}, 1);
    const auto w =
        test::random_tensor<float>(Shape{g.out_channels, g.in_channels, g.kernel_h, g.kernel_w}, 2);
    const auto b = test::random_tensor<float>(Shape{g.out_channels}, 3);
    const auto dy = test::random_tensor<float>(g.output_shape(), 4);
    DeviceBuffer d_x = test::to_device(x), d_w = test::to_device(w), d_b = test::to_device(b),
                 d_dy = test::to_device(dy);
    DeviceBuffer y = test::poisoned<float>(g.output_shape().numel()), dx = test::poisoned<float>(x.numel()),
                 dw = test::poisoned<float>(w.numel()), db = test::poisoned<float>(b.numel());
    DeviceBuffer workspace(std::max<size_t>(plan.workspace_bytes(), 1));
    plan.forward(d_x.data_as<float>(), d_w.data_as<float>(), d_b.data_as<float>(), y.data_as<float>(),
                 workspace.data(), nullptr);
    plan.backward_data(d_dy.data_as<float>(), d_w.data_as<float>(), dx.data_as<float>(), workspace.data(),
                       nullptr);
    plan.backward_filter(d_x.data_as<float>(), d_dy.data_as<float>(), dw.data_as<float>(),
                         db.data_as<float>(), workspace.data(), nullptr);
    const auto expected_y = cpu::conv2d(x, w, &b, options);
    const auto expected = cpu::conv2d_backward(x, w, dy, true, options);
    CHECK(test::max_relative_error(test::to_host<float>(y, g.output_shape()), expected_y) <= kTolerance);
    CHECK(test::max_relative_error(test::to_host<float>(dx, x.shape()), expected.dx) <= kTolerance);
    CHECK(test::max_relative_error(test::to_host<float>(dw, w.shape()), expected.dweight) <= kTolerance);
    CHECK(test::max_relative_error(test::to_host<float>(db, b.shape()), expected.dbias) <= kTolerance);
}

}  // namespace

TEST_CASE("Conv2dPlan: auto prefers cuDNN, else im2col, and says what it passed over",
          "[parity][conv2d_plan]") {
    // cuDNN pads with zeros only: reflect padding is never cuDNN's, in either flavour.
    const gpu::Conv2dPlan reflect(geometry(cpu::Conv2dPaddingMode::reflect), {}, nullptr);
    CHECK(reflect.algorithm() == gpu::ConvAlgo::im2col);
    CHECK_THAT(reflect.description(), Contains("auto; passed over cudnn:"));
    check_plan_matches_reference(reflect, cpu::Conv2dPaddingMode::reflect);

    const gpu::Conv2dPlan zeros(geometry(cpu::Conv2dPaddingMode::zeros), {}, nullptr);
    if (gpu::conv2d_unsupported(gpu::ConvAlgo::cudnn, zeros.geometry()).empty()) {
        CHECK(zeros.algorithm() == gpu::ConvAlgo::cudnn);
    } else {
        CHECK(zeros.algorithm() == gpu::ConvAlgo::im2col);
        CHECK_THAT(zeros.description(), Contains("cuDNN is not part of the emu flavour"));
    }
    check_plan_matches_reference(zeros, cpu::Conv2dPaddingMode::zeros);
}

TEST_CASE("Conv2dPlan: every explicitly chosen algorithm this build has matches the reference",
          "[parity][conv2d_plan]") {
    for (const gpu::ConvAlgo algo : {gpu::ConvAlgo::cudnn, gpu::ConvAlgo::direct, gpu::ConvAlgo::im2col,
                                     gpu::ConvAlgo::implicit, gpu::ConvAlgo::winograd, gpu::ConvAlgo::winograd4}) {
        const cpu::Conv2dGeometry g = geometry(cpu::Conv2dPaddingMode::zeros);
        gpu::Conv2dSettings settings;
        settings.algo = algo;
        const std::string why_not = gpu::conv2d_unsupported(algo, g);
        INFO("algorithm " << gpu::conv_algo_name(algo) << ": " << why_not);
        if (!why_not.empty()) {  // never a silent substitute
            CHECK_THROWS_WITH(
                gpu::Conv2dPlan(g, settings, nullptr),
                Contains(std::string("--conv-algo ") + gpu::conv_algo_name(algo) + " cannot compute"));
            continue;
        }
        const gpu::Conv2dPlan plan(g, settings, nullptr);
        CHECK(plan.algorithm() == algo);
        check_plan_matches_reference(plan, cpu::Conv2dPaddingMode::zeros);
    }
}

TEST_CASE("Conv2dPlan: algorithm names", "[parity][conv2d_plan]") {
    CHECK(gpu::parse_conv_algo("auto") == gpu::ConvAlgo::automatic);
    CHECK(gpu::parse_conv_algo("im2col") == gpu::ConvAlgo::im2col);
    CHECK(gpu::parse_conv_algo("implicit") == gpu::ConvAlgo::implicit);
    CHECK(gpu::parse_conv_algo("winograd") == gpu::ConvAlgo::winograd);
    CHECK(std::string(gpu::conv_algo_name(gpu::ConvAlgo::winograd)) == "winograd");
    CHECK(gpu::parse_conv_algo("winograd4") == gpu::ConvAlgo::winograd4);
    CHECK(std::string(gpu::conv_algo_name(gpu::ConvAlgo::winograd4)) == "winograd4");
    CHECK_THROWS_WITH(gpu::parse_conv_algo("fft"),
                      Contains("'fft' is not one of auto, cudnn, direct, im2col, implicit, winograd, winograd4, own, "
                               "fastest"));
}

TEST_CASE("resolve_workspace_limit: a given limit stays, auto takes an eighth of the free memory",
          "[parity][conv2d_plan]") {
    CHECK(gpu::resolve_workspace_limit(0) == 0);
    CHECK(gpu::resolve_workspace_limit(size_t{3} << 20) == size_t{3} << 20);
    // The emulator's free memory follows the host's, which other processes change: bracket the call.
    size_t before = 0, after = 0, total_bytes = 0;
    REQUIRE(cudaMemGetInfo(&before, &total_bytes) == cudaSuccess);
    const size_t resolved = gpu::resolve_workspace_limit(gpu::kWorkspaceLimitAuto);
    REQUIRE(cudaMemGetInfo(&after, &total_bytes) == cudaSuccess);
    CHECK(resolved >= gpu::kMinAutoWorkspaceLimit);
    CHECK(resolved >= std::max(std::min(before, after) / 8, gpu::kMinAutoWorkspaceLimit));
    CHECK(resolved <= std::max(std::max(before, after) / 8, gpu::kMinAutoWorkspaceLimit));
}

TEST_CASE("Conv2dPlan: winograd runs only when asked for, and names what it cannot compute",
          "[parity][conv2d_plan]") {
    // auto never picks it (cuDNN, else im2col, until a GPU has timed it).
    const gpu::Conv2dPlan automatic(geometry(cpu::Conv2dPaddingMode::zeros), {}, nullptr);
    CHECK(automatic.algorithm() != gpu::ConvAlgo::winograd);

    gpu::Conv2dSettings settings;
    settings.algo = gpu::ConvAlgo::winograd;
    cpu::Conv2dOptions stride2;
    stride2.stride = 2;
    stride2.padding = 1;
    const cpu::Conv2dGeometry g = cpu::conv2d_geometry(Shape{2, 3, 7, 5}, Shape{4, 3, 3, 3}, stride2);
    CHECK_THROWS_WITH(gpu::Conv2dPlan(g, settings, nullptr),
                      Contains("--conv-algo winograd cannot compute this layer: conv2d_winograd: F(2×2, 3×3) "
                               "computes 3×3 kernels with stride 1"));
}

TEST_CASE("Conv2dPlan: own picks the fastest hand-written algorithm per layer and says why", "[parity][conv2d_plan]") {
    gpu::Conv2dSettings own;
    own.algo = gpu::ConvAlgo::own;
    CHECK(gpu::parse_conv_algo("own") == gpu::ConvAlgo::own);

    // 3×3, stride 1, padding 1, 16 input channels: Winograd.
    cpu::Conv2dOptions same;
    same.padding = 1;
    const gpu::Conv2dPlan wide(cpu::conv2d_geometry(Shape{1, 16, 6, 6}, Shape{4, 16, 3, 3}, same), own, nullptr);
    CHECK(wide.algorithm() == gpu::ConvAlgo::winograd);
    CHECK(wide.description() == "winograd");

    // The same with 3 input channels (an RGB first layer): the transforms would cost more than they save.
    const gpu::Conv2dPlan rgb(geometry(cpu::Conv2dPaddingMode::zeros), own, nullptr);
    CHECK(rgb.algorithm() == gpu::ConvAlgo::implicit);
    CHECK_THAT(rgb.description(),
               Contains("(own; passed over winograd: 3 input channels per group, fewer than the 16 where it pays)"));
    check_plan_matches_reference(rgb, cpu::Conv2dPaddingMode::zeros);

    // ResNet's stem (7×7, stride 2, padding 3) is not Winograd's; reflect padding is not the implicit GEMM's.
    cpu::Conv2dOptions stem;
    stem.stride = 2;
    stem.padding = 3;
    const gpu::Conv2dPlan resnet_stem(cpu::conv2d_geometry(Shape{1, 3, 16, 16}, Shape{8, 3, 7, 7}, stem), own,
                                      nullptr);
    CHECK(resnet_stem.algorithm() == gpu::ConvAlgo::implicit);
    CHECK_THAT(resnet_stem.description(), Contains("passed over winograd: conv2d_winograd: F(2×2, 3×3)"));
    const gpu::Conv2dPlan reflect(geometry(cpu::Conv2dPaddingMode::reflect), own, nullptr);
    CHECK(reflect.algorithm() == gpu::ConvAlgo::im2col);
    CHECK_THAT(reflect.description(), Contains("implicit: conv2d_implicit: padding_mode 'reflect'"));
    check_plan_matches_reference(reflect, cpu::Conv2dPaddingMode::reflect);
}

TEST_CASE("Conv2dPlan: fastest times every algorithm per pass, keeps the fastest and caches the choice",
          "[parity][conv2d_plan]") {
    gpu::Conv2dSettings fastest;
    fastest.algo = gpu::ConvAlgo::fastest;
    CHECK(gpu::parse_conv_algo("fastest") == gpu::ConvAlgo::fastest);
    // 16 input channels: Winograd, the implicit GEMM and im2col all compute it (and cuDNN in the cuda flavour).
    cpu::Conv2dOptions same;
    same.padding = 1;
    const cpu::Conv2dGeometry g = cpu::conv2d_geometry(Shape{1, 16, 6, 6}, Shape{4, 16, 3, 3}, same);
    const gpu::Conv2dPlan first(g, fastest, nullptr);
    INFO(first.description());
    CHECK_THAT(first.description(),
               Matches("fastest: forward [a-z0-9]+ [0-9.]+ ms \\(.*\\); backward-data [a-z0-9]+ [0-9.]+ ms \\(.*\\); "
                       "backward-filter [a-z0-9]+ [0-9.]+ ms \\(.*\\).*"));
    for (const auto pass : {gpu::Conv2dPlan::Pass::forward, gpu::Conv2dPlan::Pass::backward_data,
                            gpu::Conv2dPlan::Pass::backward_filter}) {
        const gpu::ConvAlgo algo = first.algorithm(pass);
        CHECK((algo == gpu::ConvAlgo::cudnn || algo == gpu::ConvAlgo::winograd || algo == gpu::ConvAlgo::implicit ||
               algo == gpu::ConvAlgo::im2col ||
               (algo == gpu::ConvAlgo::direct && pass == gpu::Conv2dPlan::Pass::backward_filter)));
    }
    // Both Winograd tiles are timed in FP32; the direct kernels on backward-filter only.
    CHECK_THAT(first.description(), Contains("winograd4"));
    const std::string report = first.description();
    const size_t filter_part = report.find("backward-filter ");
    REQUIRE(filter_part != std::string::npos);
    CHECK(report.substr(0, filter_part).find("direct") == std::string::npos);
    CHECK(report.substr(filter_part).find("direct") != std::string::npos);
    // Under TF32 F(4×4) Winograd is left out, saying why.
    gpu::Conv2dSettings fastest_tf32 = fastest;
    fastest_tf32.allow_tf32 = true;
    const gpu::Conv2dPlan tf32(g, fastest_tf32, nullptr);
    CHECK_THAT(tf32.description(),
               Contains("not timed: ") && Contains("winograd4: F(4×4)'s transforms would amplify TF32's"));
    // A second plan of the same shape reuses the choice instead of timing again.
    const gpu::Conv2dPlan second(g, fastest, nullptr);
    CHECK_THAT(second.description(), StartsWith("fastest (timings cached): "));
    for (const auto pass : {gpu::Conv2dPlan::Pass::forward, gpu::Conv2dPlan::Pass::backward_data,
                            gpu::Conv2dPlan::Pass::backward_filter}) {
        CHECK(second.algorithm(pass) == first.algorithm(pass));
    }

    // Whatever won, the passes compute the reference (an RGB layer: 27 terms per output, within the 1e-5 bound).
    const gpu::Conv2dPlan rgb(geometry(cpu::Conv2dPaddingMode::zeros), fastest, nullptr);
    check_plan_matches_reference(rgb, cpu::Conv2dPaddingMode::zeros);
    // Reflect padding: only im2col and direct compute it, and the report says why the others were not timed.
    const gpu::Conv2dPlan reflect(geometry(cpu::Conv2dPaddingMode::reflect), fastest, nullptr);
    CHECK(reflect.algorithm() == gpu::ConvAlgo::im2col);
    CHECK_THAT(reflect.description(), Contains("not timed: cudnn: ") && Contains("winograd: conv2d_winograd: padding_mode"));
    check_plan_matches_reference(reflect, cpu::Conv2dPaddingMode::reflect);
}
