// Parity of the cuBLAS bf16-operand GEMMs (cublas_gemm_bf16, cublas_gemm_bf16_strided_batched in
// cuda/vendor/cublas_gemm.cpp) with a double reference on the same bf16 values (cuda only: runs on a GPU):
// gpu::sgemm's row-major contract with C float or bf16 (every transpose, padded leading dimensions, pointers
// off 16-byte boundaries, alpha / beta, batches with a shared operand, degenerate sizes), CifarCNN's linear
// layers, determinism and the errors.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cstdint>
#include <limits>

#include "cuda/vendor/cublas_gemm.hpp"
#include "cudacnn/device.hpp"
#include "support/bf16.hpp"
#include "support/compare.hpp"
#include "support/errors.hpp"
#include "support/gemm_reference.hpp"
#include "support/parity.hpp"
#include "support/tolerance.hpp"

using namespace cudacnn;
using Catch::Matchers::Contains;

namespace {

// Tolerances, relative to each tensor's max |value| (test::max_relative_error).
//
// The product of two bf16 is exact in FP32 (16 significant bits), so before C is stored cuBLAS computes a
// float sum of k exact terms, like cublas_sgemm: test::float_sum_tolerance(k) (the float test's bound), with
// a margin of 4 because tensor-core FP32 accumulation need not round every addition to nearest (its
// alignment of the products may truncate). The reference sums the same values in double.
double sum_tolerance(int64_t k) {
    return test::float_sum_tolerance(k, 4.0);
}
// A bf16 C: cuBLAS rounds each element once (CUBLAS_MATH_DISALLOW_REDUCED_PRECISION_REDUCTION keeps split-k
// partial sums in FP32), and so does the reference; bf16 keeps 8 significant bits, so each rounding is off by
// at most 2^-8 relative (1 + 2^-8 is a tie at 1.0), the two together by 2 · 2^-8 of the tensor's max |value|.
// (An earlier draft of docs/bf16-nhwc-plan.md said 2^-9, half the real figure.)
constexpr double kBf16Rounding = 0x1p-8;

enum class CType { f32, bf16 };

double tolerance(CType c_type, int64_t k) {
    return (c_type == CType::bf16 ? 2 * kBf16Rounding : 0.0) + sum_tolerance(k);
}

struct Product {
    bool trans_a = false, trans_b = false;
    int64_t m = 1, n = 1, k = 1;
    float alpha = 1.0f, beta = 0.0f;
    int64_t pad = 0;       // extra elements in every leading dimension and between batch entries
    int64_t offset = 0;    // elements before A, B and C in their buffers (1: off every 16-byte boundary)
    int64_t batch = 1;     // > 1 or `batched`: cublas_gemm_bf16_strided_batched
    bool batched = false;  // force the batched entry point for batch 1
    bool share_a = false;  // stride_a = 0: one A for every batch entry
    CType c_type = CType::bf16;
};

// One operand as stored: `rows` rows of `width` bf16-rounded values, `ld` apart; `count` matrices `stride`
// apart, starting p.offset elements into `values` (the elements before are poisoned on the device).
struct Stored {
    int64_t ld = 0, stride = 0;
    HostTensor<float> values;
    DeviceBuffer device;
    const gpu::bf16* data(int64_t offset) const { return test::bf16_data(device) + offset; }
};

Stored make_stored(int64_t rows, int64_t width, const Product& p, bool shared, uint32_t seed) {
    Stored s;
    s.ld = std::max<int64_t>(width, 1) + p.pad;
    s.stride = shared ? 0 : rows * s.ld + p.pad;
    const int64_t count = shared ? 1 : p.batch;
    s.values = test::round_to_bf16(test::random_tensor<float>(
        Shape{p.offset + std::max<int64_t>(count * std::max(s.stride, rows * s.ld), 1)}, seed));
    for (int64_t i = 0; i < p.offset; ++i) s.values[i] = std::numeric_limits<float>::quiet_NaN();
    s.device = test::to_device_bf16(s.values);
    return s;
}

struct Outcome {
    HostTensor<float> c, expected;
};

// Runs p through cuBLAS on a fresh stream; C starts as NaN when beta == 0 (it must not be read), else random
// (bf16 values for a bf16 C). `c` and `expected` cover C's whole buffer, so elements outside the (m, n)
// windows must come back untouched.
Outcome run(const Product& p, uint32_t seed) {
    const Stored a = make_stored(p.trans_a ? p.k : p.m, p.trans_a ? p.m : p.k, p, p.share_a, seed);
    const Stored b = make_stored(p.trans_b ? p.n : p.k, p.trans_b ? p.k : p.n, p, false, seed + 1);
    const int64_t ldc = std::max<int64_t>(p.n, 1) + p.pad, stride_c = p.m * ldc + p.pad;
    const Shape c_shape{p.offset + std::max<int64_t>(p.batch * stride_c, 1)};
    HostTensor<float> c0 = p.beta == 0.0f
                               ? HostTensor<float>(c_shape, std::numeric_limits<float>::quiet_NaN())
                               : test::random_tensor<float>(c_shape, seed + 2);
    if (p.c_type == CType::bf16) c0 = test::round_to_bf16(c0);
    const DeviceBuffer dc = p.c_type == CType::bf16 ? test::to_device_bf16(c0) : test::to_device(c0);
    const int64_t o = p.offset;
    Stream stream;
    const cudaStream_t s = stream.handle();
    // C float or bf16: the overload follows the pointer's type.
    const auto gemm = [&](auto* c) {
        if (p.batch == 1 && !p.batched) {
            gpu::cublas_gemm_bf16(p.trans_a, p.trans_b, p.m, p.n, p.k, p.alpha, a.data(o), a.ld, b.data(o),
                                  b.ld, p.beta, c, ldc, s);
        } else {
            gpu::cublas_gemm_bf16_strided_batched(p.trans_a, p.trans_b, p.m, p.n, p.k, p.alpha, a.data(o),
                                                  a.ld, a.stride, b.data(o), b.ld, b.stride, p.beta, c, ldc,
                                                  stride_c, p.batch, s);
        }
    };
    if (p.c_type == CType::bf16) {
        gemm(test::bf16_data(dc) + o);
    } else {
        gemm(dc.data_as<float>() + o);
    }
    stream.synchronize();  // the host copies run on the legacy default stream, which does not wait for ours
    HostTensor<float> expected = c0;
    test::gemm_reference(p.trans_a, p.trans_b, p.m, p.n, p.k, p.alpha, a.values.data() + o, a.ld, a.stride,
                         b.values.data() + o, b.ld, b.stride, p.beta, expected.data() + o, ldc, stride_c,
                         p.batch);
    // One rounding of every written element (the others are bf16 values already, or NaN).
    if (p.c_type == CType::bf16) expected = test::round_to_bf16(expected);
    const HostTensor<float> c =
        p.c_type == CType::bf16 ? test::to_host_bf16(dc.data(), c_shape) : test::to_host<float>(dc, c_shape);
    return {c, expected};
}

void check(const Product& p, uint32_t seed) {
    INFO("trans_a " << p.trans_a << ", trans_b " << p.trans_b << ", m " << p.m << ", n " << p.n << ", k "
                    << p.k << ", pad " << p.pad << ", offset " << p.offset << ", batch " << p.batch << ", C "
                    << (p.c_type == CType::bf16 ? "bf16" : "float"));
    const Outcome o = run(p, seed);
    CHECK(test::max_relative_error(o.c, o.expected) <= tolerance(p.c_type, p.k));
}

void check_transposes_and_types(Product p, uint32_t seed) {
    for (const CType c_type : {CType::f32, CType::bf16}) {
        for (const bool trans_a : {false, true}) {
            for (const bool trans_b : {false, true}) {
                p.trans_a = trans_a, p.trans_b = trans_b, p.c_type = c_type;
                check(p, seed);
            }
        }
    }
}

}  // namespace

TEST_CASE(
    "cublas_gemm_bf16: every transpose, both C types, odd sizes, padded leading dimensions, alpha and beta",
    "[parity][cublas][bf16]") {
    Product p;
    SECTION("1 x 1 x 1") {
        check_transposes_and_types(p, 1);
    }
    SECTION("37 x 29 x 41, alpha 0.75, beta -1.5, leading dimensions padded by 3") {
        p.m = 37, p.n = 29, p.k = 41, p.alpha = 0.75f, p.beta = -1.5f, p.pad = 3;
        check_transposes_and_types(p, 2);
    }
    SECTION("65 x 130 x 17, beta 0 on a NaN C, padded by 1") {
        p.m = 65, p.n = 130, p.k = 17, p.pad = 1;
        check_transposes_and_types(p, 3);
    }
    SECTION("64 x 128 x 96 with A, B and C one element past a 16-byte boundary, beta 0.5") {
        p.m = 64, p.n = 128, p.k = 96, p.offset = 1, p.beta = 0.5f;
        check_transposes_and_types(p, 4);
    }
}

TEST_CASE("cublas_gemm_bf16: CifarCNN's linear layers at batch 4, forward and both gradients",
          "[parity][cublas][bf16]") {
    struct Layer {
        int64_t in, out;
    };
    uint32_t seed = 10;
    for (const Layer l : {Layer{4096, 1024}, Layer{1024, 512}, Layer{512, 10}}) {
        INFO("linear " << l.in << " -> " << l.out);
        Product p;
        // y (4, out) = x (4, in) · Wᵀ, W stored (out, in): bf16 activations, and float for the logits.
        p.trans_b = true, p.m = 4, p.n = l.out, p.k = l.in;
        p.c_type = CType::bf16;
        check(p, seed++);
        p.c_type = CType::f32;
        check(p, seed++);
        // dx (4, in) = dy (4, out) · W, bf16.
        p = Product{}, p.m = 4, p.n = l.in, p.k = l.out, p.c_type = CType::bf16;
        check(p, seed++);
        // dW (out, in) = dyᵀ · x into the float gradient, dy stored (4, out); beta 1 as when gradients
        // accumulate.
        p = Product{}, p.trans_a = true, p.m = l.out, p.n = l.in, p.k = 4, p.beta = 1.0f,
        p.c_type = CType::f32;
        check(p, seed++);
    }
}

TEST_CASE("cublas_gemm_bf16: a large k, and the same inputs give the same bits", "[parity][cublas][bf16]") {
    // k = 4608 (the im2col product of a 512-channel 3 × 3 convolution): long enough for cuBLAS to split k,
    // whose partial sums must stay FP32 for a bf16 C.
    Product p;
    p.m = 128, p.n = 64, p.k = 4608;
    for (const CType c_type : {CType::bf16, CType::f32}) {
        p.c_type = c_type;
        INFO("C " << (c_type == CType::bf16 ? "bf16" : "float"));
        const Outcome first = run(p, 20), second = run(p, 20);
        CHECK(test::max_relative_error(first.c, first.expected) <= tolerance(c_type, p.k));
        CHECK(test::bitwise_equal(first.c, second.c));
    }
}

TEST_CASE("cublas_gemm_bf16_strided_batched: separate, shared A, and a single entry",
          "[parity][cublas][bf16]") {
    Product p;
    p.m = 19, p.n = 70, p.k = 33, p.batch = 3, p.alpha = 1.25f, p.beta = 0.25f, p.pad = 2;
    SECTION("separate matrices") {
        check_transposes_and_types(p, 30);
    }
    SECTION("A shared (stride 0), beta 0") {
        p.share_a = true, p.beta = 0.0f;
        check_transposes_and_types(p, 31);
    }
    SECTION("batch 1 through the batched entry point") {
        p.batch = 1, p.batched = true;
        check_transposes_and_types(p, 32);
    }
}

TEST_CASE(
    "cublas_gemm_bf16: k = 0 and alpha = 0 give beta · C without reading A and B; empty sizes do nothing",
    "[parity][cublas][bf16]") {
    const int64_t m = 5, n = 7, k = 3;
    const HostTensor<float> c0 = test::round_to_bf16(test::random_tensor<float>(Shape{m, n}, 40));
    // A and B full of NaN: any read of them would show in C.
    const DeviceBuffer nan_ab = test::poisoned_bf16(m * k + k * n);
    const gpu::bf16* a = test::bf16_data(nan_ab);
    const gpu::bf16* b = a + m * k;
    for (const float beta : {0.0f, 2.0f}) {
        for (const bool zero_k : {true, false}) {
            INFO("beta " << beta << (zero_k ? ", k = 0" : ", alpha = 0"));
            HostTensor<float> expected = c0;
            for (float& v : expected.values()) v *= beta;  // exact in bf16 and float: ±0 or a doubling
            // bf16 C.
            const DeviceBuffer dh = beta == 0.0f ? test::poisoned_bf16(m * n) : test::to_device_bf16(c0);
            const DeviceBuffer df = beta == 0.0f ? test::poisoned<float>(m * n) : test::to_device(c0);
            if (zero_k) {
                gpu::cublas_gemm_bf16(false, false, m, n, 0, 1.0f, nullptr, 1, nullptr, n, beta,
                                      test::bf16_data(dh), n, nullptr);
                gpu::cublas_gemm_bf16(false, false, m, n, 0, 1.0f, nullptr, 1, nullptr, n, beta,
                                      df.data_as<float>(), n, nullptr);
            } else {
                gpu::cublas_gemm_bf16(false, false, m, n, k, 0.0f, a, k, b, n, beta, test::bf16_data(dh), n,
                                      nullptr);
                gpu::cublas_gemm_bf16(false, false, m, n, k, 0.0f, a, k, b, n, beta, df.data_as<float>(), n,
                                      nullptr);
            }
            // Exact, and no NaN (max_relative_error is infinite when only one side is NaN); ±0 compare equal.
            CHECK(test::max_relative_error(test::to_host_bf16(dh.data(), Shape{m, n}), expected) == 0.0);
            CHECK(test::max_relative_error(test::to_host<float>(df, Shape{m, n}), expected) == 0.0);
        }
    }
    const DeviceBuffer dc = test::to_device_bf16(c0);
    gpu::bf16* c = test::bf16_data(dc);
    gpu::cublas_gemm_bf16(false, false, 0, n, k, 1.0f, a, k, b, n, 0.0f, c, n, nullptr);
    gpu::cublas_gemm_bf16(false, false, m, 0, k, 1.0f, a, k, b, 1, 0.0f, c, 1, nullptr);
    gpu::cublas_gemm_bf16_strided_batched(false, false, m, n, k, 1.0f, a, k, 0, b, n, 0, 0.0f, c, n, 0, 0,
                                          nullptr);
    CHECK(test::bitwise_equal(test::to_host_bf16(dc.data(), Shape{m, n}), c0));
}

TEST_CASE("cublas_gemm_bf16: bad arguments name the function and the values", "[parity][cublas][bf16]") {
    const DeviceBuffer buffer = test::poisoned_bf16(64);
    gpu::bf16* p = test::bf16_data(buffer);
    const DeviceBuffer c_buffer = test::poisoned<float>(64);
    float* c = c_buffer.data_as<float>();
    const auto gemm = [&](bool ta, bool tb, int64_t m, int64_t n, int64_t k, int64_t lda, int64_t ldb,
                          int64_t ldc) {
        return test::error_message(
            [&] { gpu::cublas_gemm_bf16(ta, tb, m, n, k, 1.0f, p, lda, p, ldb, 0.0f, p, ldc, nullptr); });
    };
    CHECK_THAT(gemm(false, false, -1, 2, 2, 2, 2, 2), Contains("cublas_gemm_bf16") && Contains("m = -1"));
    CHECK_THAT(gemm(false, false, 2, 3, 4, 3, 3, 3), Contains("lda = 3") && Contains("(2, 4)"));
    CHECK_THAT(gemm(false, true, 2, 3, 4, 4, 3, 3), Contains("ldb = 3") && Contains("(3, 4)"));
    CHECK_THAT(gemm(false, false, 2, 3, 4, 4, 3, 2), Contains("ldc = 2") && Contains("n = 3"));
    CHECK_THAT(test::error_message([&] {
                   gpu::cublas_gemm_bf16(false, false, 2, 2, 2, 1.0f, p, 2, p, 2, 0.0f,
                                         static_cast<float*>(nullptr), 2, nullptr);
               }),
               Contains("cublas_gemm_bf16") && Contains("C is null"));
    CHECK_THAT(test::error_message([&] {
                   gpu::cublas_gemm_bf16(false, false, 2, 2, 2, 1.0f, nullptr, 2, p, 2, 0.0f, c, 2, nullptr);
               }),
               Contains("cublas_gemm_bf16") && Contains("A (") && Contains("is null"));
    CHECK_THAT(
        test::error_message([&] {
            gpu::cublas_gemm_bf16_strided_batched(false, false, 2, 2, 2, 1.0f, p, 2, 4, p, 2, 4, 0.0f, c, 2,
                                                  0, 3, nullptr);
        }),
        Contains("cublas_gemm_bf16_strided_batched") && Contains("stride_c = 0") && Contains("batch = 3"));
}
