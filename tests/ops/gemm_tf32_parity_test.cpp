// Parity of the TF32 GEMM (cuda/gemm_tf32.cu), both kernels (tensor cores through wmma, CUDA cores), with a
// double-accumulating host reference whose inputs are rounded to TF32: every transpose, alpha / beta,
// padded leading dimensions, batches with shared operands; and the size of its error against the FP32
// product, which must be TF32's, not FP32's.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <vector>

#include "cuda/gemm_tf32.hpp"
#include "support/compare.hpp"
#include "support/errors.hpp"
#include "support/gemm_cases.hpp"
#include "support/gemm_reference.hpp"
#include "support/parity.hpp"
#include "support/tf32.hpp"
#include "support/tolerance.hpp"

using namespace cudacnn;
using test::GemmCase;
using test::Operand;
using test::make_operand;
using test::padded;

namespace {

// Against the reference on TF32-rounded inputs: the products of two TF32 values are exact in float, so what
// is left is a k-term float sum (then alpha and beta in float), as for sgemm: test::float_sum_tolerance(k)
// (margin 1; measured errors sit well below).
double tf32_parity_tolerance(int64_t k) {
    return test::float_sum_tolerance(k);
}

HostTensor<float> tf32_rounded(HostTensor<float> t) {
    for (float& v : t.values()) v = test::tf32_rounded(v);
    return t;
}

// C after the product in double (inputs as given), rounded once; entries outside the (m, n) windows keep
// their initial value.
HostTensor<float> reference(const GemmCase& g, const HostTensor<float>& a, int64_t lda, int64_t stride_a,
                            const HostTensor<float>& b, int64_t ldb, int64_t stride_b, HostTensor<float> c,
                            int64_t ldc, int64_t stride_c) {
    test::gemm_reference(g.trans_a, g.trans_b, g.m, g.n, g.k, g.alpha, a.data(), lda, stride_a, b.data(), ldb,
                         stride_b, g.beta, c.data(), ldc, stride_c, g.batch);
    return c;
}

// C after one product on the device with the given kernel.
HostTensor<float> run_device(gpu::Tf32Kernel kernel, const GemmCase& g, const Operand& a, const Operand& b,
                             const HostTensor<float>& c0, int64_t ldc, int64_t stride_c) {
    DeviceBuffer da = test::to_device(a.values), db = test::to_device(b.values);
    // beta == 0: C is poisoned with NaN and must not be read; otherwise it is an input.
    DeviceBuffer dc = g.beta == 0.0f ? test::poisoned<float>(c0.numel()) : test::to_device(c0);
    gpu::sgemm_tf32_strided_batched_with_kernel(kernel, g.trans_a, g.trans_b, g.m, g.n, g.k, g.alpha,
                                                da.data_as<float>(), a.ld, a.stride, db.data_as<float>(), b.ld,
                                                b.stride, g.beta, dc.data_as<float>(), ldc, stride_c, g.batch,
                                                nullptr);
    return test::to_host<float>(dc, c0.shape());
}

// The kernels this machine can run: CUDA cores always, tensor cores where available (the emulator, sm_80+).
std::vector<gpu::Tf32Kernel> kernels() {
    std::vector<gpu::Tf32Kernel> list{gpu::Tf32Kernel::cuda_cores};
    if (gpu::tf32_tensor_cores_available()) list.push_back(gpu::Tf32Kernel::tensor_cores);
    return list;
}

const char* kernel_name(gpu::Tf32Kernel kernel) {
    return kernel == gpu::Tf32Kernel::tensor_cores ? "tensor cores" : "CUDA cores";
}

struct CaseErrors {
    double tf32 = 0.0;  // max relative error against the reference on TF32-rounded inputs (worst kernel)
    double fp32 = std::numeric_limits<double>::infinity();  // against the FP32 inputs (best kernel)
};

// Runs one case on every kernel and returns its errors over the whole C buffer, padding included: the kernel
// must leave it alone (NaN padding compares equal to NaN). Under the emulator the kernels must agree bit for
// bit (same rounding, same summation order); on a GPU each is checked on its own.
CaseErrors run_case(const GemmCase& g, uint32_t seed) {
    const Operand a = make_operand(g.trans_a ? g.k : g.m, g.trans_a ? g.m : g.k, g, g.share_a, seed);
    const Operand b = make_operand(g.trans_b ? g.n : g.k, g.trans_b ? g.k : g.n, g, g.share_b, seed + 1);
    const int64_t ldc = padded(g.n, g), stride_c = padded(g.m * ldc, g);
    const Shape c_shape{std::max<int64_t>(g.batch * stride_c, 1)};
    const HostTensor<float> c0 = g.beta == 0.0f
                                     ? HostTensor<float>(c_shape, std::numeric_limits<float>::quiet_NaN())
                                     : test::random_tensor<float>(c_shape, seed + 2);
    const HostTensor<float> tf32_reference = reference(g, tf32_rounded(a.values), a.ld, a.stride,
                                                       tf32_rounded(b.values), b.ld, b.stride, c0, ldc, stride_c);
    const HostTensor<float> fp32_reference =
        reference(g, a.values, a.ld, a.stride, b.values, b.ld, b.stride, c0, ldc, stride_c);
    CaseErrors errors;
    std::vector<HostTensor<float>> results;
    for (const gpu::Tf32Kernel kernel : kernels()) {
        results.push_back(run_device(kernel, g, a, b, c0, ldc, stride_c));
        INFO(kernel_name(kernel));
        errors.tf32 = std::max(errors.tf32, test::max_relative_error(results.back(), tf32_reference));
        errors.fp32 = std::min(errors.fp32, test::max_relative_error(results.back(), fp32_reference));
    }
#ifdef CUDACNN_EMU
    if (results.size() == 2) CHECK(test::bitwise_equal(results[0], results[1]));
#endif
    return errors;
}

void check_all_transposes(GemmCase base, uint32_t seed) {
    for (const bool trans_a : {false, true}) {
        for (const bool trans_b : {false, true}) {
            base.trans_a = trans_a, base.trans_b = trans_b;
            INFO("trans_a " << trans_a << ", trans_b " << trans_b << ", m " << base.m << ", n " << base.n
                            << ", k " << base.k << ", pad " << base.pad << ", batch " << base.batch);
            CHECK(run_case(base, seed).tf32 <= tf32_parity_tolerance(base.k));
        }
    }
}

}  // namespace

TEST_CASE("sgemm_tf32: sizes off the tile grid, every transpose, both kernels, scalar and float4 loads",
          "[parity][gemm_tf32]") {
    GemmCase g;
    SECTION("1 x 1 x 1") {
        check_all_transposes(g, 1);
    }
    SECTION("37 x 29 x 41, alpha and beta, unaligned leading dimensions (scalar loads), two k-slices") {
        g.m = 37, g.n = 29, g.k = 41, g.alpha = 0.75f, g.beta = -1.5f, g.pad = 3;
        check_all_transposes(g, 2);
    }
    SECTION("65 x 130 x 17, beta 0 on a NaN C, leading dimensions rounded to multiples of 4") {
        g.m = 65, g.n = 130, g.k = 17, g.align4 = true;
        check_all_transposes(g, 3);
    }
    SECTION("68 x 72 x 100, alpha and beta: widths multiples of 4, padded by 4 (float4 loads), four k-slices") {
        g.m = 68, g.n = 72, g.k = 100, g.alpha = 2.0f, g.beta = 0.5f, g.pad = 4;
        check_all_transposes(g, 4);
    }
}

TEST_CASE("sgemm_tf32: strided batches, with stride 0 sharing one operand", "[parity][gemm_tf32]") {
    GemmCase g;
    g.m = 19, g.n = 70, g.k = 33, g.batch = 3, g.alpha = 1.25f, g.beta = 0.25f;
    SECTION("separate matrices") {
        check_all_transposes(g, 5);
    }
    SECTION("A shared") {
        g.share_a = true, g.pad = 1;
        check_all_transposes(g, 6);
    }
    SECTION("B shared, aligned rows") {
        g.share_b = true, g.n = 64, g.k = 32, g.beta = 0.0f, g.align4 = true;
        check_all_transposes(g, 7);
    }
}

TEST_CASE("sgemm_tf32: the error against the FP32 product is TF32's (~1e-3), not FP32's", "[parity][gemm_tf32]") {
    // A conv-like product (weights 64 × 288 times columns 288 × 96). Each TF32 input is off by up to 2^-11
    // relative, so each product by up to ~2^-10 and a sum of k random-signed ones by ~√k · 2^-11 · |a·b| —
    // relative to max |C| ~ √k · |a·b|, some 1e-4 … 1e-3 (measured: 2.2e-4 under the emulator). FP32 rounding
    // alone stays below float_sum_tolerance(k) = 1.7e-5 (measured: 5.8e-7): a kernel that forgot to round its
    // inputs would land there and fail the lower bound (and the parity check); one that truncated instead of
    // rounding fails the parity check.
    GemmCase g;
    g.m = 64, g.n = 96, g.k = 288, g.trans_b = true;
    const CaseErrors errors = run_case(g, 8);
    INFO("max relative error: " << errors.tf32 << " against the TF32 reference, " << errors.fp32
                                << " against the FP32 one");
    CHECK(errors.tf32 <= tf32_parity_tolerance(g.k));
    CHECK(errors.fp32 > 2.0 * test::float_sum_tolerance(g.k));
    CHECK(errors.fp32 < 0x1p-8);
}

TEST_CASE("sgemm_tf32: automatic takes tensor cores where available, and repeated runs agree bit for bit",
          "[parity][gemm_tf32]") {
    GemmCase g;
    g.m = 70, g.n = 45, g.k = 50;
    const Operand a = make_operand(g.m, g.k, g, false, 9), b = make_operand(g.k, g.n, g, false, 10);
    const HostTensor<float> c0(Shape{g.m * g.n}, 0.0f);
    const gpu::Tf32Kernel expected =
        gpu::tf32_tensor_cores_available() ? gpu::Tf32Kernel::tensor_cores : gpu::Tf32Kernel::cuda_cores;
    const HostTensor<float> first = run_device(gpu::Tf32Kernel::automatic, g, a, b, c0, g.n, 0);
    CHECK(test::bitwise_equal(first, run_device(gpu::Tf32Kernel::automatic, g, a, b, c0, g.n, 0)));
    CHECK(test::bitwise_equal(first, run_device(expected, g, a, b, c0, g.n, 0)));
    // The plain entry points are the automatic choice too.
    DeviceBuffer da = test::to_device(a.values), db = test::to_device(b.values);
    DeviceBuffer dc = test::poisoned<float>(g.m * g.n);
    gpu::sgemm_tf32(false, false, g.m, g.n, g.k, 1.0f, da.data_as<float>(), g.k, db.data_as<float>(), g.n, 0.0f,
                    dc.data_as<float>(), g.n, nullptr);
    CHECK(test::bitwise_equal(first, test::to_host<float>(dc, c0.shape())));
}

TEST_CASE("sgemm_tf32: k = 0 and alpha = 0 give beta · C without reading A and B; empty m or n do nothing",
          "[parity][gemm_tf32]") {
    const int64_t m = 5, n = 7;
    const HostTensor<float> c0 = test::random_tensor<float>(Shape{m, n}, 10);
    for (const float beta : {0.0f, 2.0f}) {
        for (const int64_t k : {0, 3}) {
            const float alpha = k == 0 ? 1.0f : 0.0f;
            DeviceBuffer dc = beta == 0.0f ? test::poisoned<float>(m * n) : test::to_device(c0);
            gpu::sgemm_tf32(false, false, m, n, k, alpha, nullptr, std::max<int64_t>(k, 1), nullptr, n, beta,
                            dc.data_as<float>(), n, nullptr);
            HostTensor<float> expected = c0;
            for (float& v : expected.values()) v *= beta;
            INFO("beta " << beta << ", k " << k);
            CHECK(test::max_relative_error(test::to_host<float>(dc, Shape{m, n}), expected) == 0.0);
        }
    }
    DeviceBuffer dc = test::to_device(c0);
    gpu::sgemm_tf32(false, false, 0, n, 3, 1.0f, nullptr, 3, nullptr, n, 0.0f, dc.data_as<float>(), n, nullptr);
    gpu::sgemm_tf32_strided_batched(false, false, m, n, 3, 1.0f, nullptr, 3, 0, nullptr, n, 0, 0.0f,
                                    dc.data_as<float>(), n, 0, 0, nullptr);
    CHECK(test::bitwise_equal(test::to_host<float>(dc, Shape{m, n}), c0));
}

TEST_CASE("sgemm_tf32: bad arguments name the op and the values", "[parity][gemm_tf32]") {
    using Catch::Matchers::Contains;
    DeviceBuffer buffer = test::poisoned<float>(64);
    float* p = buffer.data_as<float>();
    const auto gemm = [&](bool ta, bool tb, int64_t m, int64_t n, int64_t k, int64_t lda, int64_t ldb,
                          int64_t ldc) {
        return test::error_message(
            [&] { gpu::sgemm_tf32(ta, tb, m, n, k, 1.0f, p, lda, p, ldb, 0.0f, p, ldc, nullptr); });
    };
    CHECK_THAT(gemm(false, false, -1, 2, 2, 2, 2, 2), Contains("sgemm_tf32") && Contains("m = -1"));
    CHECK_THAT(gemm(false, false, 2, 3, 4, 3, 3, 3), Contains("lda = 3") && Contains("4"));
    CHECK_THAT(gemm(true, false, 5, 3, 2, 4, 3, 3), Contains("lda = 4") && Contains("5"));
    CHECK_THAT(gemm(false, true, 2, 3, 4, 4, 3, 3), Contains("ldb = 3") && Contains("4"));
    CHECK_THAT(gemm(false, false, 2, 3, 4, 4, 3, 2), Contains("ldc = 2") && Contains("n = 3"));
    CHECK_THAT(test::error_message([&] {
                   gpu::sgemm_tf32(false, false, 2, 2, 2, 1.0f, p, 2, p, 2, 0.0f, nullptr, 2, nullptr);
               }),
               Contains("sgemm_tf32") && Contains("C is null"));
    CHECK_THAT(test::error_message([&] {
                   gpu::sgemm_tf32_strided_batched(false, false, 2, 2, 2, 1.0f, p, 2, 4, p, 2, 4, 0.0f, p, 2, 0, 3,
                                                   nullptr);
               }),
               Contains("sgemm_tf32_strided_batched") && Contains("stride_c = 0") && Contains("batch = 3"));
    if (!gpu::tf32_tensor_cores_available()) {  // a build with CUDACNN_TENSOR_CORES=0, or a GPU below sm_80
        CHECK_THAT(test::error_message([&] {
                       gpu::sgemm_tf32_strided_batched_with_kernel(gpu::Tf32Kernel::tensor_cores, false, false, 2, 2,
                                                                   2, 1.0f, p, 2, 0, p, 2, 0, 0.0f, p, 2, 0, 1,
                                                                   nullptr);
                   }),
                   Contains("tensor-core kernel needs") && Contains("cuda_cores"));
    }
}
