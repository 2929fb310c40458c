// Parity of the cuBLAS SGEMM wrappers (cuda/vendor/cublas_gemm.cpp) with a double reference (cuda only):
// gpu::sgemm's row-major contract (every transpose, padded leading dimensions, alpha / beta, batches with a
// shared operand, degenerate sizes), CifarCNN's linear layers, determinism and the TF32 switch.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>

#include "cuda/vendor/cublas_gemm.hpp"
#include "cudacnn/device.hpp"
#include "support/compare.hpp"
#include "support/errors.hpp"
#include "support/gemm_reference.hpp"
#include "support/parity.hpp"
#include "support/tolerance.hpp"

using namespace cudacnn;
using Catch::Matchers::Contains;

namespace {

// A float dot product of k terms: test::float_sum_tolerance(k). With CUBLAS_DEFAULT_MATH cuBLAS multiplies
// and adds in FP32 (possibly splitting k, which only reorders the same sum). TF32 rounds both factors of
// every product to 10 explicit mantissa bits: up to 2 · 2^-11 ≈ 1e-3 relative per product; random-sign errors
// and the sum itself both grow like √k, so the relative error stays near 1e-3.
constexpr double kTf32Tolerance = 1e-2;

double fp32_tolerance(int64_t k) {
    return test::float_sum_tolerance(k);
}

struct Product {
    bool trans_a = false, trans_b = false;
    int64_t m = 1, n = 1, k = 1;
    float alpha = 1.0f, beta = 0.0f;
    int64_t pad = 0;       // extra elements in every leading dimension and between batch entries
    int64_t batch = 1;     // > 1 or `batched`: cublas_sgemm_strided_batched
    bool batched = false;  // force the batched entry point for batch 1
    bool share_a = false;  // stride_a = 0: one A for every batch entry
};

// One operand as stored: `rows` rows of `width` values, `ld` apart; `count` matrices `stride` apart.
struct Stored {
    int64_t ld = 0, stride = 0;
    HostTensor<float> values;
};

Stored make_stored(int64_t rows, int64_t width, const Product& p, bool shared, uint32_t seed) {
    Stored s;
    s.ld = std::max<int64_t>(width, 1) + p.pad;
    s.stride = shared ? 0 : rows * s.ld + p.pad;
    const int64_t count = shared ? 1 : p.batch;
    s.values = test::random_tensor<float>(
        Shape{std::max<int64_t>(count * std::max(s.stride, rows * s.ld), 1)}, seed);
    return s;
}

struct Outcome {
    HostTensor<float> c, expected;
};

// Runs p through cuBLAS on a fresh stream; C starts as NaN when beta == 0 (it must not be read), else random.
Outcome run(const Product& p, uint32_t seed) {
    const Stored a = make_stored(p.trans_a ? p.k : p.m, p.trans_a ? p.m : p.k, p, p.share_a, seed);
    const Stored b = make_stored(p.trans_b ? p.n : p.k, p.trans_b ? p.k : p.n, p, false, seed + 1);
    const int64_t ldc = std::max<int64_t>(p.n, 1) + p.pad, stride_c = p.m * ldc + p.pad;
    const Shape c_shape{std::max<int64_t>(p.batch * stride_c, 1)};
    const HostTensor<float> c0 = p.beta == 0.0f
                                     ? HostTensor<float>(c_shape, std::numeric_limits<float>::quiet_NaN())
                                     : test::random_tensor<float>(c_shape, seed + 2);
    const DeviceBuffer da = test::to_device(a.values), db = test::to_device(b.values);
    const DeviceBuffer dc = p.beta == 0.0f ? test::poisoned<float>(c_shape.numel()) : test::to_device(c0);
    Stream stream;
    if (p.batch == 1 && !p.batched) {
        gpu::cublas_sgemm(p.trans_a, p.trans_b, p.m, p.n, p.k, p.alpha, da.data_as<float>(), a.ld,
                          db.data_as<float>(), b.ld, p.beta, dc.data_as<float>(), ldc, stream.handle());
    } else {
        gpu::cublas_sgemm_strided_batched(p.trans_a, p.trans_b, p.m, p.n, p.k, p.alpha, da.data_as<float>(),
                                          a.ld, a.stride, db.data_as<float>(), b.ld, b.stride, p.beta,
                                          dc.data_as<float>(), ldc, stride_c, p.batch, stream.handle());
    }
    stream.synchronize();  // to_host copies on the legacy default stream, which does not wait for ours
    HostTensor<float> expected = c0;
    test::gemm_reference(p.trans_a, p.trans_b, p.m, p.n, p.k, p.alpha, a.values.data(), a.ld, a.stride,
                         b.values.data(), b.ld, b.stride, p.beta, expected.data(), ldc, stride_c, p.batch);
    return {test::to_host<float>(dc, c_shape), expected};
}

void check_transposes(Product p, uint32_t seed) {
    for (const bool trans_a : {false, true}) {
        for (const bool trans_b : {false, true}) {
            p.trans_a = trans_a, p.trans_b = trans_b;
            INFO("trans_a " << trans_a << ", trans_b " << trans_b << ", m " << p.m << ", n " << p.n << ", k "
                            << p.k << ", pad " << p.pad << ", batch " << p.batch);
            const Outcome o = run(p, seed);
            CHECK(test::max_relative_error(o.c, o.expected) <= fp32_tolerance(p.k));
        }
    }
}

// Restores cuBLAS's TF32 setting when a test ends, however it ends.
struct Tf32Setting {
    explicit Tf32Setting(bool allow) : saved(gpu::cublas_allow_tf32()) { gpu::set_cublas_allow_tf32(allow); }
    ~Tf32Setting() { gpu::set_cublas_allow_tf32(saved); }
    Tf32Setting(const Tf32Setting&) = delete;
    Tf32Setting& operator=(const Tf32Setting&) = delete;
    bool saved;
};

}  // namespace

TEST_CASE("cublas_sgemm: every transpose, odd sizes, padded leading dimensions, alpha and beta",
          "[parity][cublas]") {
    Product p;
    SECTION("1 x 1 x 1") {
        check_transposes(p, 1);
    }
    SECTION("37 x 29 x 41, alpha 0.75, beta -1.5, leading dimensions padded by 3") {
        p.m = 37, p.n = 29, p.k = 41, p.alpha = 0.75f, p.beta = -1.5f, p.pad = 3;
        check_transposes(p, 2);
    }
    SECTION("65 x 130 x 17, beta 0 on a NaN C, padded by 1") {
        p.m = 65, p.n = 130, p.k = 17, p.pad = 1;
        check_transposes(p, 3);
    }
}

TEST_CASE("cublas_sgemm: CifarCNN's linear layers at batch 4, forward and both gradients",
          "[parity][cublas]") {
    struct Layer {
        int64_t in, out;
    };
    uint32_t seed = 10;
    for (const Layer l : {Layer{4096, 1024}, Layer{1024, 512}, Layer{512, 10}}) {
        INFO("linear " << l.in << " -> " << l.out);
        Product p;
        // y (4, out) = x (4, in) · Wᵀ, W stored (out, in).
        p.trans_b = true, p.m = 4, p.n = l.out, p.k = l.in;
        Outcome o = run(p, seed++);
        CHECK(test::max_relative_error(o.c, o.expected) <= fp32_tolerance(p.k));
        // dx (4, in) = dy (4, out) · W.
        p = Product{}, p.m = 4, p.n = l.in, p.k = l.out;
        o = run(p, seed++);
        CHECK(test::max_relative_error(o.c, o.expected) <= fp32_tolerance(p.k));
        // dW (out, in) = dyᵀ · x, dy stored (4, out); beta 1 as when gradients accumulate.
        p = Product{}, p.trans_a = true, p.m = l.out, p.n = l.in, p.k = 4, p.beta = 1.0f;
        o = run(p, seed++);
        CHECK(test::max_relative_error(o.c, o.expected) <= fp32_tolerance(p.k));
    }
}

TEST_CASE("cublas_sgemm: an im2col-shaped product, and the same inputs give the same bits",
          "[parity][cublas]") {
    // weight (128, 64·9) times columns (64·9, 16·16): conv 64 -> 128 on a 16 x 16 image.
    Product p;
    p.m = 128, p.n = 256, p.k = 576;
    const Outcome first = run(p, 20), second = run(p, 20);
    CHECK(test::max_relative_error(first.c, first.expected) <= fp32_tolerance(p.k));
    CHECK(test::bitwise_equal(first.c, second.c));
}

TEST_CASE("cublas_sgemm_strided_batched: separate, shared A, and a single entry with stride_c 0",
          "[parity][cublas]") {
    Product p;
    p.m = 19, p.n = 70, p.k = 33, p.batch = 3, p.alpha = 1.25f, p.beta = 0.25f, p.pad = 2;
    SECTION("separate matrices") {
        check_transposes(p, 30);
    }
    SECTION("A shared (stride 0), beta 0") {
        p.share_a = true, p.beta = 0.0f;
        check_transposes(p, 31);
    }
    SECTION("batch 1 through the batched entry point") {
        p.batch = 1, p.batched = true;
        check_transposes(p, 32);
    }
}

TEST_CASE("cublas_sgemm: k = 0 and alpha = 0 give beta · C without reading A and B; empty sizes do nothing",
          "[parity][cublas]") {
    const int64_t m = 5, n = 7, k = 3;
    const HostTensor<float> c0 = test::random_tensor<float>(Shape{m, n}, 40);
    // A and B full of NaN: any read of them would show in C.
    const DeviceBuffer nan_ab = test::poisoned<float>(m * k + k * n);
    const float* a = nan_ab.data_as<float>();
    const float* b = a + m * k;
    for (const float beta : {0.0f, 2.0f}) {
        for (const bool zero_k : {true, false}) {
            INFO("beta " << beta << (zero_k ? ", k = 0" : ", alpha = 0"));
            const DeviceBuffer dc = beta == 0.0f ? test::poisoned<float>(m * n) : test::to_device(c0);
            if (zero_k) {
                gpu::cublas_sgemm(false, false, m, n, 0, 1.0f, nullptr, 1, nullptr, n, beta,
                                  dc.data_as<float>(), n, nullptr);
            } else {
                gpu::cublas_sgemm(false, false, m, n, k, 0.0f, a, k, b, n, beta, dc.data_as<float>(), n,
                                  nullptr);
            }
            HostTensor<float> expected = c0;
            for (float& v : expected.values()) v *= beta;  // exact: ±0 or a doubling
            // Exact, and no NaN (max_relative_error is infinite when only one side is NaN); ±0 compare equal.
            CHECK(test::max_relative_error(test::to_host<float>(dc, Shape{m, n}), expected) == 0.0);
        }
    }
    const DeviceBuffer dc = test::to_device(c0);
    gpu::cublas_sgemm(false, false, 0, n, k, 1.0f, a, k, b, n, 0.0f, dc.data_as<float>(), n, nullptr);
    gpu::cublas_sgemm(false, false, m, 0, k, 1.0f, a, k, b, 1, 0.0f, dc.data_as<float>(), 1, nullptr);
    gpu::cublas_sgemm_strided_batched(false, false, m, n, k, 1.0f, a, k, 0, b, n, 0, 0.0f,
                                      dc.data_as<float>(), n, 0, 0, nullptr);
    CHECK(test::bitwise_equal(test::to_host<float>(dc, Shape{m, n}), c0));
}

TEST_CASE("cublas_sgemm: TF32 only when allowed, and then within TF32 accuracy", "[parity][cublas]") {
    CHECK_FALSE(gpu::cublas_allow_tf32());  // the default: FP32 parity
    const Tf32Setting tf32(true);
    CHECK(gpu::cublas_allow_tf32());
    Product p;
    p.trans_b = true, p.m = 64, p.n = 1024, p.k = 4096;  // big enough for cuBLAS to pick tensor-core kernels
    const Outcome o = run(p, 50);
    CHECK(test::max_relative_error(o.c, o.expected) <= kTf32Tolerance);
}

TEST_CASE("cublas_sgemm: bad arguments name the function and the values", "[parity][cublas]") {
    const DeviceBuffer buffer = test::poisoned<float>(64);
    float* p = buffer.data_as<float>();
    const auto gemm = [&](bool ta, bool tb, int64_t m, int64_t n, int64_t k, int64_t lda, int64_t ldb,
                          int64_t ldc) {
        return test::error_message(
            [&] { gpu::cublas_sgemm(ta, tb, m, n, k, 1.0f, p, lda, p, ldb, 0.0f, p, ldc, nullptr); });
    };
    CHECK_THAT(gemm(false, false, -1, 2, 2, 2, 2, 2), Contains("cublas_sgemm") && Contains("m = -1"));
    CHECK_THAT(gemm(false, false, 2, 3, 4, 3, 3, 3), Contains("lda = 3") && Contains("(2, 4)"));
    CHECK_THAT(gemm(true, false, 5, 3, 2, 4, 3, 3), Contains("lda = 4") && Contains("(2, 5)"));
    CHECK_THAT(gemm(false, true, 2, 3, 4, 4, 3, 3), Contains("ldb = 3") && Contains("(3, 4)"));
    CHECK_THAT(gemm(false, false, 2, 3, 4, 4, 3, 2), Contains("ldc = 2") && Contains("n = 3"));
    CHECK_THAT(test::error_message([&] {
                   gpu::cublas_sgemm(false, false, 2, 2, 2, 1.0f, p, 2, p, 2, 0.0f, nullptr, 2, nullptr);
               }),
               Contains("cublas_sgemm") && Contains("C is null"));
    CHECK_THAT(test::error_message([&] {
                   gpu::cublas_sgemm_strided_batched(false, false, 2, 2, 2, 1.0f, p, 2, 4, p, 2, 4, 0.0f, p,
                                                     2, 0, 3, nullptr);
               }),
               Contains("cublas_sgemm_strided_batched") && Contains("stride_c = 0") && Contains("batch = 3"));
    CHECK_THAT(test::error_message([&] {
                   gpu::cublas_sgemm_strided_batched(false, false, 2, 2, 2, 1.0f, p, 2, 4, p, 2, 4, 0.0f, p,
                                                     2, 4, -1, nullptr);
               }),
               Contains("batch = -1"));
}
