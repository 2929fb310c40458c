// Parity of the TF32 GEMM (cuda/gemm_tf32.cu), both kernels (tensor cores through wmma, CUDA cores), with a
// double-accumulating host reference whose inputs are rounded to TF32: every transpose, alpha / beta,
// padded leading dimensions, batches with shared operands; the size of its error against the FP32 product,
// which must be TF32's, not FP32's; and its split-k (sgemm_tf32_split_k), alone and through gemm_split.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <vector>

#include "cuda/gemm_backend.hpp"
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

namespace {

// C after sgemm_tf32_split_k on `kernel` with `splits` ranges of k (batch 1), the workspace poisoned with NaN.
HostTensor<float> run_split_k(gpu::Tf32Kernel kernel, int64_t splits, const GemmCase& g, const Operand& a,
                              const Operand& b, const HostTensor<float>& c0, int64_t ldc) {
    DeviceBuffer da = test::to_device(a.values), db = test::to_device(b.values);
    DeviceBuffer dc = g.beta == 0.0f ? test::poisoned<float>(c0.numel()) : test::to_device(c0);
    const size_t bytes = gpu::sgemm_tf32_split_k_workspace_bytes(g.m, g.n, g.k, splits);
    DeviceBuffer workspace = test::poisoned<float>(static_cast<int64_t>(bytes / sizeof(float)));
    gpu::sgemm_tf32_split_k_with_kernel(kernel, splits, g.trans_a, g.trans_b, g.m, g.n, g.k, g.alpha,
                                        da.data_as<float>(), a.ld, db.data_as<float>(), b.ld, g.beta,
                                        dc.data_as<float>(), ldc, workspace.data(), bytes, nullptr);
    return test::to_host<float>(dc, c0.shape());
}

// Every transpose and kernel of one case, split into each of `splits` ranges: against the reference on
// TF32-rounded inputs with the unsplit tolerance (the split sums are still float sums of the same k TF32
// products, only associated by range), bitwise equal on a second run (deterministic), bitwise equal across
// the kernels under the emulator, and with one range bitwise sgemm_tf32 itself.
void check_split_k(GemmCase g, std::initializer_list<int64_t> splits, uint32_t seed) {
    for (const bool trans_a : {false, true}) {
        for (const bool trans_b : {false, true}) {
            g.trans_a = trans_a, g.trans_b = trans_b;
            const Operand a = make_operand(trans_a ? g.k : g.m, trans_a ? g.m : g.k, g, false, seed);
            const Operand b = make_operand(trans_b ? g.n : g.k, trans_b ? g.k : g.n, g, false, seed + 1);
            const int64_t ldc = padded(g.n, g);
            const Shape c_shape{g.m * ldc};
            const HostTensor<float> c0 = g.beta == 0.0f
                                             ? HostTensor<float>(c_shape, std::numeric_limits<float>::quiet_NaN())
                                             : test::random_tensor<float>(c_shape, seed + 2);
            const HostTensor<float> expected =
                reference(g, tf32_rounded(a.values), a.ld, 0, tf32_rounded(b.values), b.ld, 0, c0, ldc, 0);
            INFO("m " << g.m << ", n " << g.n << ", k " << g.k << ", trans_a " << trans_a << ", trans_b "
                      << trans_b);
            for (const int64_t s : splits) {
                std::vector<HostTensor<float>> results;
                for (const gpu::Tf32Kernel kernel : kernels()) {
                    INFO(kernel_name(kernel) << ", splits " << s);
                    results.push_back(run_split_k(kernel, s, g, a, b, c0, ldc));
                    CHECK(test::max_relative_error(results.back(), expected) <= tf32_parity_tolerance(g.k));
                    CHECK(test::bitwise_equal(run_split_k(kernel, s, g, a, b, c0, ldc), results.back()));
                }
#ifdef CUDACNN_EMU
                if (results.size() == 2) CHECK(test::bitwise_equal(results[0], results[1]));
#endif
            }
            for (const gpu::Tf32Kernel kernel : kernels()) {
                INFO(kernel_name(kernel) << ", one range");
                CHECK(test::bitwise_equal(run_split_k(kernel, 1, g, a, b, c0, ldc),
                                          run_device(kernel, g, a, b, c0, ldc, 0)));
            }
        }
    }
}

}  // namespace

TEST_CASE("sgemm_tf32_split_k: narrow outputs over a long k, odd sizes, every transpose, alpha and beta, both "
          "kernels; deterministic; one range is sgemm_tf32",
          "[parity][gemm_tf32]") {
    GemmCase g;
    SECTION("8 x 20 x 700, beta 0 on a NaN C: ranges of 256, 256, 188 (3 splits) and 160 x 4 + 60 (5)") {
        g.m = 8, g.n = 20, g.k = 700;
        check_split_k(g, {3, 5}, 40);
    }
    SECTION("37 x 29 x 100, alpha and beta, unaligned (scalar loads): ranges of 64 + 36 (2) and 32 x 3 + 4 (4)") {
        g.m = 37, g.n = 29, g.k = 100, g.alpha = 0.75f, g.beta = -1.5f, g.pad = 3;
        check_split_k(g, {2, 4}, 43);
    }
    SECTION("one row (a linear layer at batch 1), 1 x 70 x 300, beta: ranges of 128, 128, 44") {
        g.m = 1, g.n = 70, g.k = 300, g.beta = 0.5f;
        check_split_k(g, {3}, 46);
    }
    SECTION("68 x 72 x 256 over four tiles, float4 loads, beta 0: four whole ranges in one launch") {
        g.m = 68, g.n = 72, g.k = 256, g.alpha = 2.0f, g.pad = 4, g.align4 = true;
        check_split_k(g, {4}, 49);
    }
}

TEST_CASE("sgemm_tf32_split_k: the split count, the workspace size, k = 0 and the errors", "[parity][gemm_tf32]") {
    using Catch::Matchers::Contains;
    // CifarCNN's 4096 -> 1024 layer at batch 128. Forward (128, 1024) over 4096: 32 tiles of 64 x 64, 396 / 32
    // = 12 ranges (of 352 = 11 slices, the last 224). Backward data (128, 4096) over 1024: 128 tiles, 3
    // ranges. Backward weights (1024, 4096) over 128: 1024 tiles, no split.
    CHECK(gpu::sgemm_tf32_split_k_count(128, 1024, 4096) == 12);
    CHECK(gpu::sgemm_tf32_split_k_workspace_bytes(128, 1024, 4096, 12) == 12 * 128 * 1024 * sizeof(float));
    CHECK(gpu::sgemm_tf32_split_k_count(128, 4096, 1024) == 3);
    CHECK(gpu::sgemm_tf32_split_k_count(1024, 4096, 128) == 1);
    // Its 1024 -> 512 layer: 16 tiles, at most 1024 / 256 ranges.
    CHECK(gpu::sgemm_tf32_split_k_count(128, 512, 1024) == 4);
    // More than half a wave of tiles: no split; a short k: no split.
    CHECK(gpu::sgemm_tf32_split_k_count(1024, 1024, 4096) == 1);
    CHECK(gpu::sgemm_tf32_split_k_count(16, 16, 100) == 1);
    // Lengths rounded up to the 32-long k-slice: 100 in 3 splits is 64 + 36, two partial products.
    CHECK(gpu::sgemm_tf32_split_k_workspace_bytes(3, 5, 100, 3) == 2 * 15 * sizeof(float));
    CHECK(gpu::sgemm_tf32_split_k_workspace_bytes(3, 5, 10, 4) == 15 * sizeof(float));

    const int64_t m = 5, n = 7;
    const HostTensor<float> c0 = test::random_tensor<float>(Shape{m, n}, 52);
    DeviceBuffer dc = test::to_device(c0);
    gpu::sgemm_tf32_split_k(4, false, false, m, n, 0, 1.0f, nullptr, 1, nullptr, n, 2.0f, dc.data_as<float>(), n,
                            nullptr, 0, nullptr);
    HostTensor<float> doubled = c0;
    for (float& v : doubled.values()) v *= 2.0f;
    CHECK(test::max_relative_error(test::to_host<float>(dc, Shape{m, n}), doubled) == 0.0);

    DeviceBuffer buffer = test::poisoned<float>(64);
    float* p = buffer.data_as<float>();
    // 64 in 2 ranges of 32: 2 · 4 · 4 floats = 128 bytes needed.
    CHECK_THAT(test::error_message([&] {
                   gpu::sgemm_tf32_split_k(2, false, false, 4, 4, 64, 1.0f, p, 64, p, 4, 0.0f, p, 4, p, 16, nullptr);
               }),
               Contains("sgemm_tf32_split_k") && Contains("16 bytes") && Contains("need 128") &&
                   Contains("sgemm_tf32_split_k_workspace_bytes"));
    CHECK_THAT(test::error_message([&] {
                   gpu::sgemm_tf32_split_k(0, false, false, 4, 4, 4, 1.0f, p, 4, p, 4, 0.0f, p, 4, p, 256, nullptr);
               }),
               Contains("sgemm_tf32_split_k") && Contains("splits = 0"));
    CHECK_THAT(test::error_message([&] { gpu::sgemm_tf32_split_k_workspace_bytes(4, 4, 4, 0); }),
               Contains("sgemm_tf32_split_k_workspace_bytes") && Contains("splits = 0"));
    CHECK_THAT(test::error_message([&] {
                   gpu::sgemm_tf32_split_k(2, false, false, 4, 4, 8, 1.0f, p, 4, p, 4, 0.0f, p, 4, p, 256, nullptr);
               }),
               Contains("sgemm_tf32_split_k") && Contains("lda = 4"));
    if (!gpu::tf32_tensor_cores_available()) {
        CHECK_THAT(test::error_message([&] {
                       gpu::sgemm_tf32_split_k_with_kernel(gpu::Tf32Kernel::tensor_cores, 2, false, false, 4, 4, 64,
                                                           1.0f, p, 64, p, 4, 0.0f, p, 4, p, 256, nullptr);
                   }),
                   Contains("sgemm_tf32_split_k") && Contains("tensor-core kernel needs"));
    }
}

// gemm_split is what the linear layers call (cuda/linear.cu), under the executor's GemmScope.
TEST_CASE("gemm_split: under the own TF32 GEMM it splits k with sgemm_tf32_split_k, and without room for the "
          "partial products it is sgemm_tf32",
          "[parity][gemm_tf32]") {
    // 8 x 20 over 600: one tile, so as many ranges as k allows (600 / 256 = 2).
    GemmCase g;
    g.m = 8, g.n = 20, g.k = 600, g.trans_b = true, g.beta = 0.5f;
    const Operand a = make_operand(g.m, g.k, g, false, 60), b = make_operand(g.n, g.k, g, false, 61);
    const HostTensor<float> c0 = test::random_tensor<float>(Shape{g.m * g.n}, 62);
    DeviceBuffer da = test::to_device(a.values), db = test::to_device(b.values);
    const gpu::GemmScope tf32({gpu::GemmBackend::own, gpu::GemmMath::tf32});
    REQUIRE(gpu::sgemm_tf32_split_k_count(g.m, g.n, g.k) == 2);
    const size_t bytes = gpu::gemm_split_workspace_bytes(g.m, g.n, g.k);
    CHECK(bytes == gpu::sgemm_tf32_split_k_workspace_bytes(g.m, g.n, g.k, 2));
    CHECK(gpu::gemm_split_workspace_bytes(128, 1024, 4096) ==
          gpu::sgemm_tf32_split_k_workspace_bytes(128, 1024, 4096, 12));
    DeviceBuffer workspace = test::poisoned<float>(static_cast<int64_t>(bytes / sizeof(float)));
    const auto run = [&](void* ws, size_t ws_bytes, bool direct_split) {
        DeviceBuffer dc = test::to_device(c0);
        if (direct_split) {
            gpu::sgemm_tf32_split_k(2, false, true, g.m, g.n, g.k, g.alpha, da.data_as<float>(), a.ld,
                                    db.data_as<float>(), b.ld, g.beta, dc.data_as<float>(), g.n, workspace.data(),
                                    bytes, nullptr);
        } else {
            gpu::gemm_split(false, true, g.m, g.n, g.k, g.alpha, da.data_as<float>(), a.ld, db.data_as<float>(),
                            b.ld, g.beta, dc.data_as<float>(), g.n, ws, ws_bytes, nullptr);
        }
        return test::to_host<float>(dc, c0.shape());
    };
    const HostTensor<float> split = run(nullptr, 0, true);
    const HostTensor<float> unsplit = run_device(gpu::Tf32Kernel::automatic, g, a, b, c0, g.n, 0);
    const HostTensor<float> expected =
        reference(g, tf32_rounded(a.values), a.ld, 0, tf32_rounded(b.values), b.ld, 0, c0, g.n, 0);
    CHECK(test::max_relative_error(split, expected) <= tf32_parity_tolerance(g.k));
    // The range sums are associated differently, so some bits differ and the checks below tell them apart.
    REQUIRE_FALSE(test::bitwise_equal(split, unsplit));
    CHECK(test::bitwise_equal(run(workspace.data(), bytes, false), split));
    // Too small a workspace, or none: the unsplit product, as on the FP32 GEMM.
    CHECK(test::bitwise_equal(run(workspace.data(), bytes - sizeof(float), false), unsplit));
    CHECK(test::bitwise_equal(run(nullptr, 0, false), unsplit));
}
