// Parity of the GPU linear layer (cuda/linear.cu) with cpu::linear and cpu::linear_backward.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <cstdint>

#include "cuda/gemm_backend.hpp"
#include "cuda/linear.hpp"
#include "cudacnn/ops/linear.hpp"
#include "support/compare.hpp"
#include "support/errors.hpp"
#include "support/parity.hpp"
#include "support/tolerance.hpp"

using namespace cudacnn;

namespace {

// Every output is a float sum of `terms` products (in_features for y, out_features for dx, batch for dweight
// and dbias) against a reference that accumulates in double: the error grows like terms · 2^-24 relative to
// the output's scale (see gemm_parity_test.cpp; measured errors sit about 10× below this).
double tolerance(int64_t terms) {
    return test::float_sum_tolerance(terms);
}

// With a workspace of linear_workspace_bytes, products with few output tiles and a long k split it (own GEMM).
void check_linear(const gpu::LinearShape& s, bool has_bias, uint32_t seed, bool with_workspace = false) {
    INFO("batch " << s.batch << ", in " << s.in_features << ", out " << s.out_features << ", bias "
                  << has_bias);
    const auto x = test::random_tensor<float>(Shape{s.batch, s.in_features}, seed);
    const auto weight = test::random_tensor<float>(Shape{s.out_features, s.in_features}, seed + 1);
    const auto bias = test::random_tensor<float>(Shape{s.out_features}, seed + 2);
    const auto dy = test::random_tensor<float>(Shape{s.batch, s.out_features}, seed + 3);
    DeviceBuffer d_x = test::to_device(x), d_weight = test::to_device(weight), d_bias = test::to_device(bias),
                 d_dy = test::to_device(dy);
    DeviceBuffer d_y = test::poisoned<float>(s.batch * s.out_features);
    DeviceBuffer d_dx = test::poisoned<float>(s.batch * s.in_features);
    DeviceBuffer d_dweight = test::poisoned<float>(s.out_features * s.in_features);
    DeviceBuffer d_dbias = test::poisoned<float>(s.out_features);

    const size_t workspace_bytes = with_workspace ? gpu::linear_workspace_bytes(s) : 0;
    const DeviceBuffer workspace(workspace_bytes);
    gpu::linear_forward(d_x.data_as<float>(), d_weight.data_as<float>(),
                        has_bias ? d_bias.data_as<float>() : nullptr, d_y.data_as<float>(), s, nullptr,
                        workspace.data(), workspace_bytes);
    gpu::linear_backward(d_x.data_as<float>(), d_weight.data_as<float>(), d_dy.data_as<float>(),
                         d_dx.data_as<float>(), d_dweight.data_as<float>(),
                         has_bias ? d_dbias.data_as<float>() : nullptr, s, nullptr, workspace.data(), workspace_bytes);

    const auto y = cpu::linear(x, weight, has_bias ? &bias : nullptr);
    const auto grads = cpu::linear_backward(x, weight, dy, has_bias);
    CHECK(test::max_relative_error(test::to_host<float>(d_y, y.shape()), y) <= tolerance(s.in_features));
    CHECK(test::max_relative_error(test::to_host<float>(d_dx, grads.dx.shape()), grads.dx) <=
          tolerance(s.out_features));
    CHECK(test::max_relative_error(test::to_host<float>(d_dweight, grads.dweight.shape()), grads.dweight) <=
          tolerance(s.batch));
    if (has_bias) {
        CHECK(test::max_relative_error(test::to_host<float>(d_dbias, grads.dbias.shape()), grads.dbias) <=
              tolerance(s.batch));
    }
}

}  // namespace

TEST_CASE("linear: forward and backward match the CPU reference on CifarCNN's layers", "[parity][linear]") {
    // fc_layer: Linear(4096 → 1024), Linear(1024 → 512), Linear(512 → 10), batch scaled down from 128 to 2.
    check_linear({2, 4096, 1024}, true, 1);
    check_linear({2, 1024, 512}, true, 2);
    check_linear({2, 512, 10}, false, 3);
}

TEST_CASE("linear: products split over k into the workspace match the reference", "[parity][linear]") {
    // A narrow output over a long k (as CifarCNN's 4096 → 1024 layer at batch 128 is for an H100): the own
    // FP32 GEMM splits k. The split sums are still float sums of the same terms, so the same bounds hold.
    for (const gpu::LinearShape s : {gpu::LinearShape{2, 4096, 64}, gpu::LinearShape{3, 2047, 70}}) {
        CHECK(gpu::linear_workspace_bytes(s) > 0);
        check_linear(s, true, 30, /*with_workspace=*/true);
    }
    // The own TF32 GEMM splits too (tests/ops/gemm_tf32_parity_test.cpp); cuBLAS keeps its own workspace.
    const gpu::GemmScope tf32({gpu::GemmBackend::own, gpu::GemmMath::tf32});
    CHECK(gpu::linear_workspace_bytes({2, 4096, 64}) > 0);
    if (gpu::gemm_backend_unsupported(gpu::GemmBackend::cublas).empty()) {
        const gpu::GemmScope cublas({gpu::GemmBackend::cublas, gpu::GemmMath::tf32});
        CHECK(gpu::linear_workspace_bytes({2, 4096, 64}) == 0);
    }
}

TEST_CASE("linear: odd shapes, with and without bias", "[parity][linear]") {
    for (const bool has_bias : {true, false}) {
        check_linear({1, 3, 7}, has_bias, 10);
        check_linear({5, 3, 7}, has_bias, 11);
        check_linear({5, 7, 3}, has_bias, 12);
        check_linear({70, 67, 66}, has_bias, 13);  // more than one 64-wide tile in every dimension
    }
}

TEST_CASE("linear: null gradient outputs are skipped", "[parity][linear]") {
    const gpu::LinearShape s{2, 5, 3};
    const auto x = test::random_tensor<float>(Shape{2, 5}, 20);
    const auto weight = test::random_tensor<float>(Shape{3, 5}, 21);
    const auto dy = test::random_tensor<float>(Shape{2, 3}, 22);
    DeviceBuffer d_x = test::to_device(x), d_weight = test::to_device(weight), d_dy = test::to_device(dy);
    DeviceBuffer d_dweight = test::poisoned<float>(15);
    gpu::linear_backward(d_x.data_as<float>(), d_weight.data_as<float>(), d_dy.data_as<float>(), nullptr,
                         d_dweight.data_as<float>(), nullptr, s, nullptr);
    const auto grads = cpu::linear_backward(x, weight, dy, false);
    CHECK(test::max_relative_error(test::to_host<float>(d_dweight, Shape{3, 5}), grads.dweight) <=
          tolerance(2));
}

TEST_CASE("linear: bad arguments name the op and the values", "[parity][linear]") {
    using Catch::Matchers::Contains;
    DeviceBuffer buffer = test::poisoned<float>(16);
    float* p = buffer.data_as<float>();
    CHECK_THAT(test::error_message([&] {
                   gpu::linear_forward(p, p, nullptr, p, {0, 3, 4}, nullptr);
               }),
               Contains("linear") && Contains("batch = 0"));
    CHECK_THAT(test::error_message([&] {
                   gpu::linear_backward(p, p, p, p, p, p, {2, -3, 4}, nullptr);
               }),
               Contains("linear_backward") && Contains("in_features = -3"));
    CHECK_THAT(test::error_message([&] {
                   gpu::linear_forward(p, p, p, p, {2, 3, 0}, nullptr);
               }),
               Contains("out_features = 0"));
}

// The linear layer and im2col convolution call gemm(), which runs the SGEMM backend selected for the process:
// every backend this build has must give the reference's results (cuBLAS only in the cuda flavour, where
// these tests run on a GPU).
TEST_CASE("linear: every GEMM backend of this build matches the reference", "[parity][linear]") {
    for (const gpu::GemmBackend backend : {gpu::GemmBackend::own, gpu::GemmBackend::cublas}) {
        const std::string why_not = gpu::gemm_backend_unsupported(backend);
        INFO("backend " << gpu::gemm_backend_name(backend) << ": " << why_not);
        if (!why_not.empty()) {
            CHECK_THROWS_WITH(gpu::set_gemm_backend(backend),
                              Catch::Matchers::Contains("not part of the emu"));
            CHECK(gpu::gemm_backend() == gpu::GemmBackend::own);  // a refused choice leaves the current one
            continue;
        }
        gpu::set_gemm_backend(backend);
        check_linear(gpu::LinearShape{5, 67, 66}, true, 71);
        gpu::set_gemm_backend(gpu::GemmBackend::own);
    }
    CHECK(gpu::parse_gemm_backend("cublas") == gpu::GemmBackend::cublas);
    CHECK_THROWS_WITH(gpu::parse_gemm_backend("mkl"),
                      Catch::Matchers::Contains("'mkl' is not one of own, cublas"));
}

// An executor applies its --gemm and --precision through a GemmScope on its thread: the scope's settings hold
// inside, nested scopes restore the outer ones, and the process-wide default is back afterwards.
TEST_CASE("linear: a GemmScope sets backend and arithmetic on its thread, nested scopes restore", "[parity][linear]") {
    CHECK(gpu::current_gemm_settings().backend == gpu::GemmBackend::own);
    CHECK(gpu::current_gemm_settings().math == gpu::GemmMath::fp32);
    {
        const gpu::GemmScope outer({gpu::GemmBackend::own, gpu::GemmMath::tf32});
        CHECK(gpu::current_gemm_settings().math == gpu::GemmMath::tf32);
        {
            const gpu::GemmScope inner({gpu::GemmBackend::own, gpu::GemmMath::fp32});
            CHECK(gpu::current_gemm_settings().math == gpu::GemmMath::fp32);
        }
        CHECK(gpu::current_gemm_settings().math == gpu::GemmMath::tf32);
    }
    CHECK(gpu::current_gemm_settings().math == gpu::GemmMath::fp32);
    if (!gpu::gemm_backend_unsupported(gpu::GemmBackend::cublas).empty()) {
        CHECK_THROWS_WITH(gpu::GemmScope({gpu::GemmBackend::cublas, gpu::GemmMath::fp32}),
                          Catch::Matchers::Contains("GEMM backend cublas: cuBLAS is not part of the emu flavour"));
        CHECK(gpu::current_gemm_settings().backend == gpu::GemmBackend::own);
    }
}

// Under TF32 the linear layer runs the TF32 GEMM (own or cuBLAS): its inputs are rounded to 10 mantissa bits,
// about 1e-3 relative per product, so it meets kTf32Tolerance (sums of ≤ 67 mixed-sign terms, a factor 10 of
// margin over the product error) but, on the own GEMM, not FP32's bound (which a forgotten rounding would meet).
TEST_CASE("linear: TF32 through a GemmScope gives TF32-sized errors on every backend", "[parity][linear]") {
    constexpr double kTf32Tolerance = 1e-2;
    const gpu::LinearShape s{5, 67, 66};
    const auto x = test::random_tensor<float>(Shape{s.batch, s.in_features}, 81);
    const auto weight = test::random_tensor<float>(Shape{s.out_features, s.in_features}, 82);
    const auto y = cpu::linear<float>(x, weight, nullptr);
    const DeviceBuffer d_x = test::to_device(x), d_weight = test::to_device(weight);
    for (const gpu::GemmBackend backend : {gpu::GemmBackend::own, gpu::GemmBackend::cublas}) {
        if (!gpu::gemm_backend_unsupported(backend).empty()) continue;
        INFO("backend " << gpu::gemm_backend_name(backend));
        const DeviceBuffer d_y = test::poisoned<float>(s.batch * s.out_features);
        {
            const gpu::GemmScope scope({backend, gpu::GemmMath::tf32});
            gpu::linear_forward(d_x.data_as<float>(), d_weight.data_as<float>(), nullptr, d_y.data_as<float>(), s,
                                nullptr);
        }
        const double error = test::max_relative_error(test::to_host<float>(d_y, y.shape()), y);
        CHECK(error <= kTf32Tolerance);
        // cuBLAS may run so small a product on CUDA cores even in TF32 mode; the own GEMM always rounds.
        if (backend == gpu::GemmBackend::own) CHECK(error > tolerance(s.in_features));
    }
}
