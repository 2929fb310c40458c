// Parity of the tiled sgemm (cuda/gemm.cu) with a double-accumulating host reference: all four transpose
// combinations, alpha / beta, leading dimensions wider than the matrices, batching with shared operands, every
// block tiling giving the same bits.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>

#include "cuda/gemm.hpp"
#include "support/compare.hpp"
#include "support/errors.hpp"
#include "support/gemm_cases.hpp"
#include "support/gemm_reference.hpp"
#include "support/parity.hpp"
#include "support/tolerance.hpp"

using namespace cudacnn;
using test::GemmCase;
using test::Operand;
using test::make_operand;
using test::padded;

namespace {

// A k-term dot product per output: test::float_sum_tolerance(k) (margin 1: measured errors sit ~10× below).
double gemm_tolerance(int64_t k) {
    return test::float_sum_tolerance(k);
}

// C after the product, in double rounded once; entries outside the (m, n) windows keep their initial value.
HostTensor<float> reference(const GemmCase& g, const Operand& a, const Operand& b, HostTensor<float> c,
                            int64_t ldc, int64_t stride_c) {
    test::gemm_reference(g.trans_a, g.trans_b, g.m, g.n, g.k, g.alpha, a.values.data(), a.ld, a.stride,
                         b.values.data(), b.ld, b.stride, g.beta, c.data(), ldc, stride_c, g.batch);
    return c;
}

// C after one product on the device with the given block tile.
HostTensor<float> run_device(gpu::GemmTiling tiling, const GemmCase& g, const Operand& a, const Operand& b,
                             const HostTensor<float>& c0, int64_t ldc, int64_t stride_c) {
    DeviceBuffer da = test::to_device(a.values), db = test::to_device(b.values);
    // beta == 0: C is poisoned with NaN and must not be read; otherwise it is an input.
    DeviceBuffer dc = g.beta == 0.0f ? test::poisoned<float>(c0.numel()) : test::to_device(c0);
    gpu::sgemm_strided_batched_with_tiling(
        tiling, g.trans_a, g.trans_b, g.m, g.n, g.k, g.alpha, da.data_as<float>(), a.ld, a.stride,
        db.data_as<float>(), b.ld, b.stride, g.beta, dc.data_as<float>(), ldc, stride_c, g.batch, nullptr);
    return test::to_host<float>(dc, c0.shape());
}

// Every explicit tiling: each kernel must give the same bits as the others.
constexpr gpu::GemmTiling kTilings[] = {gpu::GemmTiling::block128x128, gpu::GemmTiling::block64x128,
                                        gpu::GemmTiling::block128x64,  gpu::GemmTiling::block32x128,
                                        gpu::GemmTiling::large,        gpu::GemmTiling::small};

// Runs one case with every block tile, checks that they agree bit for bit (same summation order), and returns
// the max relative error against the reference over the whole C buffer, padding included: the kernels must
// leave it alone (NaN padding compares equal to NaN).
double run_case(const GemmCase& g, uint32_t seed) {
    const Operand a = make_operand(g.trans_a ? g.k : g.m, g.trans_a ? g.m : g.k, g, g.share_a, seed);
    const Operand b = make_operand(g.trans_b ? g.n : g.k, g.trans_b ? g.k : g.n, g, g.share_b, seed + 1);
    const int64_t ldc = padded(g.n, g), stride_c = padded(g.m * ldc, g);
    const Shape c_shape{std::max<int64_t>(g.batch * stride_c, 1)};
    const HostTensor<float> c0 = g.beta == 0.0f
                                     ? HostTensor<float>(c_shape, std::numeric_limits<float>::quiet_NaN())
                                     : test::random_tensor<float>(c_shape, seed + 2);
    const HostTensor<float> first = run_device(kTilings[0], g, a, b, c0, ldc, stride_c);
    for (const gpu::GemmTiling tiling : kTilings) {
        INFO("tiling " << static_cast<int>(tiling));
        CHECK(test::bitwise_equal(run_device(tiling, g, a, b, c0, ldc, stride_c), first));
    }
    return test::max_relative_error(first, reference(g, a, b, c0, ldc, stride_c));
}

// Runs `base` with every combination of transposes.
void check_all_transposes(GemmCase base, uint32_t seed) {
    for (const bool trans_a : {false, true}) {
        for (const bool trans_b : {false, true}) {
            base.trans_a = trans_a, base.trans_b = trans_b;
            INFO("trans_a " << trans_a << ", trans_b " << trans_b << ", m " << base.m << ", n " << base.n
                            << ", k " << base.k << ", pad " << base.pad << ", batch " << base.batch);
            CHECK(run_case(base, seed) <= gemm_tolerance(base.k));
        }
    }
}

}  // namespace

TEST_CASE("sgemm: sizes off the tile grid, every transpose, scalar and float4 paths", "[parity][gemm]") {
    GemmCase g;
    SECTION("1 x 1 x 1") {
        check_all_transposes(g, 1);
    }
    SECTION("37 x 29 x 41, alpha and beta, unaligned leading dimensions (scalar loads)") {
        g.m = 37, g.n = 29, g.k = 41, g.alpha = 0.75f, g.beta = -1.5f, g.pad = 3;
        check_all_transposes(g, 2);
    }
    SECTION("65 x 130 x 17, beta 0 on a NaN C, leading dimensions rounded to multiples of 4 (float4 paths)") {
        // 20, 68 and 132 wide rows: float4 groups, with scalar fallbacks for the partial groups at the edges.
        g.m = 65, g.n = 130, g.k = 17, g.align4 = true;
        check_all_transposes(g, 3);
    }
    SECTION("68 x 132 x 36, alpha and beta: every width a multiple of 4, padded by 4 (float4 paths only)") {
        g.m = 68, g.n = 132, g.k = 36, g.alpha = 2.0f, g.beta = 0.5f, g.pad = 4;
        check_all_transposes(g, 4);
    }
}

TEST_CASE("sgemm: several 128 x 128 tiles with ragged edges on every side, k off the slice length",
          "[parity][gemm]") {
    GemmCase g;
    g.m = 131, g.n = 259, g.k = 45, g.alpha = -0.5f, g.beta = 1.0f, g.align4 = true;
    check_all_transposes(g, 11);
    SECTION("unaligned: the scalar paths") {
        g.pad = 1, g.align4 = false, g.beta = 0.0f;
        check_all_transposes(g, 12);
    }
}

TEST_CASE("sgemm: strided batches, with stride 0 sharing one operand", "[parity][gemm]") {
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

TEST_CASE("sgemm: a CifarCNN-like im2col product, conv 64 -> 128, 3 x 3 kernel on a 16 x 16 image",
          "[parity][gemm]") {
    // weight (128, 64·9) times columns (64·9, 16·16): the shape an im2col convolution hands to sgemm.
    GemmCase g;
    g.m = 128, g.n = 256, g.k = 576;
    CHECK(run_case(g, 8) <= gemm_tolerance(g.k));
    // The weight gradient: dy (128, 16·16) times columnsᵀ, accumulated (beta 1) over the images of a batch.
    g.n = 576, g.k = 256, g.trans_b = true, g.beta = 1.0f;
    CHECK(run_case(g, 9) <= gemm_tolerance(g.k));
}

TEST_CASE("sgemm: k = 0 and alpha = 0 give beta · C without reading A and B; empty m or n do nothing",
          "[parity][gemm]") {
    const int64_t m = 5, n = 7;
    const HostTensor<float> c0 = test::random_tensor<float>(Shape{m, n}, 10);
    for (const float beta : {0.0f, 2.0f}) {
        for (const int64_t k : {0, 3}) {
            const float alpha = k == 0 ? 1.0f : 0.0f;
            DeviceBuffer dc = beta == 0.0f ? test::poisoned<float>(m * n) : test::to_device(c0);
            gpu::sgemm(false, false, m, n, k, alpha, nullptr, std::max<int64_t>(k, 1), nullptr, n, beta,
                       dc.data_as<float>(), n, nullptr);
            HostTensor<float> expected = c0;
            for (float& v : expected.values()) v *= beta;
            INFO("beta " << beta << ", k " << k);
            CHECK(test::max_relative_error(test::to_host<float>(dc, Shape{m, n}), expected) == 0.0);
        }
    }
    DeviceBuffer dc = test::to_device(c0);
    gpu::sgemm(false, false, 0, n, 3, 1.0f, nullptr, 3, nullptr, n, 0.0f, dc.data_as<float>(), n, nullptr);
    gpu::sgemm_strided_batched(false, false, m, n, 3, 1.0f, nullptr, 3, 0, nullptr, n, 0, 0.0f,
                               dc.data_as<float>(), n, 0, 0, nullptr);
    CHECK(test::bitwise_equal(test::to_host<float>(dc, Shape{m, n}), c0));
}

TEST_CASE("sgemm: the automatic tiling takes the biggest tile that fits the shape and fills an H100",
          "[parity][gemm]") {
    using gpu::GemmTiling;
    // 2048^3: 256 blocks of 128 x 128.
    CHECK(gpu::sgemm_automatic_tiling(2048, 2048, 1) == GemmTiling::block128x128);
    // CifarCNN forward per image (OC, OH·OW), batch 128: 128-row tiles would half-fill 64 rows, and 32 rows.
    CHECK(gpu::sgemm_automatic_tiling(128, 256, 128) == GemmTiling::block128x128);
    CHECK(gpu::sgemm_automatic_tiling(64, 1024, 128) == GemmTiling::block64x128);
    CHECK(gpu::sgemm_automatic_tiling(32, 1024, 128) == GemmTiling::block32x128);
    CHECK(gpu::sgemm_automatic_tiling(256, 64, 128) == GemmTiling::block128x64);
    // 1024^3 makes only 64 blocks of 128 x 128 and 128 of 64 x 128, 128 x 64: 256 of 32 x 128.
    CHECK(gpu::sgemm_automatic_tiling(1024, 1024, 1) == GemmTiling::block32x128);
    // The linear layer's 128 x 1024 output fills no SM count with any tile: the smallest spreads it most.
    CHECK(gpu::sgemm_automatic_tiling(128, 1024, 1) == GemmTiling::small);
    CHECK(gpu::sgemm_automatic_tiling(1, 1, 1) == GemmTiling::small);
}

TEST_CASE("sgemm: bad arguments name the op and the values", "[parity][gemm]") {
    using Catch::Matchers::Contains;
    DeviceBuffer buffer = test::poisoned<float>(64);
    float* p = buffer.data_as<float>();
    const auto gemm = [&](bool ta, bool tb, int64_t m, int64_t n, int64_t k, int64_t lda, int64_t ldb,
                          int64_t ldc) {
        return test::error_message(
            [&] { gpu::sgemm(ta, tb, m, n, k, 1.0f, p, lda, p, ldb, 0.0f, p, ldc, nullptr); });
    };
    CHECK_THAT(gemm(false, false, -1, 2, 2, 2, 2, 2), Contains("sgemm") && Contains("m = -1"));
    CHECK_THAT(gemm(false, false, 2, 3, 4, 3, 3, 3),
               Contains("sgemm") && Contains("lda = 3") && Contains("4"));
    CHECK_THAT(gemm(true, false, 5, 3, 2, 4, 3, 3), Contains("lda = 4") && Contains("5"));
    CHECK_THAT(gemm(false, true, 2, 3, 4, 4, 3, 3), Contains("ldb = 3") && Contains("4"));
    CHECK_THAT(gemm(false, false, 2, 3, 4, 4, 3, 2), Contains("ldc = 2") && Contains("n = 3"));
    CHECK_THAT(test::error_message(
                   [&] { gpu::sgemm(false, false, 2, 2, 2, 1.0f, p, 2, p, 2, 0.0f, nullptr, 2, nullptr); }),
               Contains("sgemm") && Contains("C is null"));
    CHECK_THAT(test::error_message([&] {
                   gpu::sgemm_strided_batched(false, false, 2, 2, 2, 1.0f, p, 2, 4, p, 2, 4, 0.0f, p, 2, 0, 3,
                                              nullptr);
               }),
               Contains("sgemm_strided_batched") && Contains("stride_c = 0") && Contains("batch = 3"));
    CHECK_THAT(test::error_message([&] {
                   gpu::sgemm_strided_batched(false, false, 2, 2, 2, 1.0f, p, 2, 4, p, 2, 4, 0.0f, p, 2, 4,
                                              -1, nullptr);
               }),
               Contains("batch = -1"));
}

namespace {

// C after sgemm_split_k with `splits` ranges of k (batch 1), the workspace poisoned with NaN.
HostTensor<float> run_split_k(int64_t splits, const GemmCase& g, const Operand& a, const Operand& b,
                              const HostTensor<float>& c0, int64_t ldc) {
    DeviceBuffer da = test::to_device(a.values), db = test::to_device(b.values);
    DeviceBuffer dc = g.beta == 0.0f ? test::poisoned<float>(c0.numel()) : test::to_device(c0);
    const size_t bytes = gpu::sgemm_split_k_workspace_bytes(g.m, g.n, g.k, splits);
    DeviceBuffer workspace = test::poisoned<float>(static_cast<int64_t>(bytes / sizeof(float)));
    gpu::sgemm_split_k(splits, g.trans_a, g.trans_b, g.m, g.n, g.k, g.alpha, da.data_as<float>(), a.ld,
                       db.data_as<float>(), b.ld, g.beta, dc.data_as<float>(), ldc, workspace.data(), bytes,
                       nullptr);
    return test::to_host<float>(dc, c0.shape());
}

}  // namespace

TEST_CASE("sgemm_split_k: every transpose, ragged ranges of k, alpha and beta; deterministic; 1 split is sgemm",
          "[parity][gemm]") {
    GemmCase g;
    g.m = 37, g.n = 29, g.k = 100, g.alpha = 0.75f, g.beta = -1.5f, g.pad = 3;
    for (const bool aligned : {false, true}) {
        g.align4 = aligned, g.beta = aligned ? 0.0f : -1.5f;
        for (const bool trans_a : {false, true}) {
            for (const bool trans_b : {false, true}) {
                g.trans_a = trans_a, g.trans_b = trans_b;
                const Operand a = make_operand(trans_a ? g.k : g.m, trans_a ? g.m : g.k, g, false, 20);
                const Operand b = make_operand(trans_b ? g.n : g.k, trans_b ? g.k : g.n, g, false, 21);
                const int64_t ldc = padded(g.n, g);
                const Shape c_shape{g.m * ldc};
                const HostTensor<float> c0 =
                    g.beta == 0.0f ? HostTensor<float>(c_shape, std::numeric_limits<float>::quiet_NaN())
                                   : test::random_tensor<float>(c_shape, 22);
                const HostTensor<float> expected = reference(g, a, b, c0, ldc, 0);
                INFO("aligned " << aligned << ", trans_a " << trans_a << ", trans_b " << trans_b);
                // 100 = 32 + 32 + 32 + 4 for 3 splits (lengths rounded up to 16); 7 splits: 16 × 6 + 4.
                for (const int64_t splits : {3, 7}) {
                    INFO("splits " << splits);
                    const HostTensor<float> once = run_split_k(splits, g, a, b, c0, ldc);
                    CHECK(test::max_relative_error(once, expected) <= gemm_tolerance(g.k));
                    CHECK(test::bitwise_equal(run_split_k(splits, g, a, b, c0, ldc), once));
                }
                CHECK(test::bitwise_equal(run_split_k(1, g, a, b, c0, ldc),
                                          run_device(gpu::GemmTiling::automatic, g, a, b, c0, ldc, 0)));
            }
        }
    }
}

TEST_CASE("sgemm_split_k: the split count, the workspace size, k = 0 and the errors", "[parity][gemm]") {
    using Catch::Matchers::Contains;
    // The linear layer 4096 -> 1024 at batch 128: 8 tiles of 128 x 128, so 16 ranges of 256.
    CHECK(gpu::sgemm_split_k_count(128, 1024, 4096) == 16);
    CHECK(gpu::sgemm_split_k_workspace_bytes(128, 1024, 4096, 16) == 16 * 128 * 1024 * sizeof(float));
    // Its backward-data product (128, 4096) with k = 1024: 32 tiles, at most 1024 / 256 ranges.
    CHECK(gpu::sgemm_split_k_count(128, 4096, 1024) == 4);
    CHECK(gpu::sgemm_split_k_count(2048, 2048, 2048) == 1);
    CHECK(gpu::sgemm_split_k_count(16, 16, 100) == 1);
    // 10 = one range however many are asked for.
    CHECK(gpu::sgemm_split_k_workspace_bytes(3, 5, 10, 4) == 15 * sizeof(float));

    const int64_t m = 5, n = 7;
    const HostTensor<float> c0 = test::random_tensor<float>(Shape{m, n}, 23);
    DeviceBuffer dc = test::to_device(c0);
    gpu::sgemm_split_k(4, false, false, m, n, 0, 1.0f, nullptr, 1, nullptr, n, 2.0f, dc.data_as<float>(), n,
                       nullptr, 0, nullptr);
    HostTensor<float> doubled = c0;
    for (float& v : doubled.values()) v *= 2.0f;
    CHECK(test::max_relative_error(test::to_host<float>(dc, Shape{m, n}), doubled) == 0.0);

    DeviceBuffer buffer = test::poisoned<float>(64);
    float* p = buffer.data_as<float>();
    CHECK_THAT(test::error_message([&] {
                   gpu::sgemm_split_k(2, false, false, 4, 4, 64, 1.0f, p, 64, p, 4, 0.0f, p, 4, p, 16, nullptr);
               }),
               Contains("sgemm_split_k") && Contains("16 bytes") && Contains("sgemm_split_k_workspace_bytes"));
    CHECK_THAT(test::error_message([&] {
                   gpu::sgemm_split_k(0, false, false, 4, 4, 4, 1.0f, p, 4, p, 4, 0.0f, p, 4, p, 256, nullptr);
               }),
               Contains("splits = 0"));
    CHECK_THAT(test::error_message([&] {
                   gpu::sgemm_split_k(2, false, false, 4, 4, 8, 1.0f, p, 4, p, 4, 0.0f, p, 4, p, 256, nullptr);
               }),
               Contains("sgemm_split_k") && Contains("lda = 4"));
}
