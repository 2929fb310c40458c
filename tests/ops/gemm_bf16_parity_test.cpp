// Parity of the BF16 GEMM's CUDA-core kernel (gemm_bf16 and variants, cuda/gemm.cu: bf16 A and B, float or
// bf16 C): bit for bit the FP32 sgemm on the widened operands (rounded once where C is bf16), and within a
// named tolerance of the double-accumulating reference on the bf16 values; every tiling, transpose, batching
// and split-k. The tensor-core kernel, which the entry points without a kernel argument take where available,
// has gemm_bf16_tc_parity_test.cpp.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <cstdint>
#include <limits>

#include "cuda/gemm.hpp"
#include "support/bf16.hpp"
#include "support/compare.hpp"
#include "support/errors.hpp"
#include "support/gemm_cases.hpp"
#include "support/gemm_reference.hpp"
#include "support/parity.hpp"
#include "support/tolerance.hpp"

using namespace cudacnn;
using test::GemmCase;
using test::Operand;
using test::padded;

namespace {

// A float C: the product of two bf16 (8 significant bits each) is exact in float, so the kernel's only error
// is its float accumulation, the FP32 GEMM's: test::float_sum_tolerance(k) as in gemm_parity_test.cpp.
// A bf16 C: the kernel's float result and the double reference are both rounded once to bf16; where a
// rounding boundary lies between them (they differ by the accumulation error) the two bf16 values are one
// ulp apart, and one bf16 ulp is at most 2^-7 of the value (8 significant bits; one rounding alone is half of
// that, 2^-8). Relative to the tensor's max |value| that adds at most kBf16Ulp.
constexpr double kBf16Ulp = 0x1p-7;

// Bit for bit, any NaN matching any NaN: the padding a kernel must leave alone holds the poison (0xffff…) on
// one side and another NaN on the other.
bool identical(const HostTensor<float>& a, const HostTensor<float>& b) {
    if (a.shape() != b.shape()) return false;
    for (int64_t i = 0; i < a.numel(); ++i) {
        if (std::isnan(a[i]) != std::isnan(b[i])) return false;
        if (!std::isnan(a[i]) && std::memcmp(&a[i], &b[i], sizeof(float)) != 0) return false;
    }
    return true;
}

double tolerance(int64_t k, bool bf16_c) {
    return test::float_sum_tolerance(k) + (bf16_c ? kBf16Ulp : 0.0);
}

// A case's operands as bf16 values (held in floats) and C's initial contents: random where beta reads it
// (rounded to bf16 for a bf16 C), else NaN. Leading dimensions and strides as the float test's.
struct Bf16Case {
    Operand a, b;
    int64_t ldc, stride_c;
    HostTensor<float> c0;
};

Operand rounded_operand(int64_t rows, int64_t width, const GemmCase& g, bool shared, uint32_t seed) {
    Operand op = test::make_operand(rows, width, g, shared, seed);
    op.values = test::round_to_bf16(op.values);
    return op;
}

Bf16Case make_case(const GemmCase& g, bool bf16_c, uint32_t seed) {
    Bf16Case c{rounded_operand(g.trans_a ? g.k : g.m, g.trans_a ? g.m : g.k, g, g.share_a, seed),
               rounded_operand(g.trans_b ? g.n : g.k, g.trans_b ? g.k : g.n, g, g.share_b, seed + 1), 0, 0,
               HostTensor<float>(Shape{1})};
    c.ldc = padded(g.n, g), c.stride_c = padded(g.m * c.ldc, g);
    const Shape c_shape{std::max<int64_t>(g.batch * c.stride_c, 1)};
    c.c0 = g.beta == 0.0f ? HostTensor<float>(c_shape, std::numeric_limits<float>::quiet_NaN())
                          : test::random_tensor<float>(c_shape, seed + 2);
    if (bf16_c) c.c0 = test::round_to_bf16(c.c0);
    return c;
}

// The values of a bf16 device copy of `t` (bf16 values) starting `offset` elements into its buffer: offset 1
// leaves the 8-byte groups unaligned (scalar loads), offset 4 aligned for bf16 though not for float4.
struct Bf16Buffer {
    DeviceBuffer buffer;
    int64_t offset;
    gpu::bf16* data() const { return test::bf16_data(buffer) + offset; }
};

Bf16Buffer to_device_bf16_at(const HostTensor<float>& t, int64_t offset) {
    HostTensor<float> shifted(Shape{t.numel() + offset}, 0.0f);
    std::copy(t.data(), t.data() + t.numel(), shifted.data() + offset);
    return {test::to_device_bf16(shifted), offset};
}

// C on the device: the bf16 kernel with `tiling` (bf16_c: C stored bf16, returned widened), the operands
// `offset` elements into their buffers; beta == 0 poisons C with NaN.
HostTensor<float> run_bf16(gpu::GemmTiling tiling, const GemmCase& g, const Bf16Case& c, bool bf16_c,
                           int64_t offset = 0) {
    const Bf16Buffer da = to_device_bf16_at(c.a.values, offset), db = to_device_bf16_at(c.b.values, offset);
    if (bf16_c) {
        DeviceBuffer dc = g.beta == 0.0f ? test::poisoned_bf16(c.c0.numel()) : test::to_device_bf16(c.c0);
        gpu::gemm_bf16_strided_batched_with_tiling(
            tiling, g.trans_a, g.trans_b, g.m, g.n, g.k, g.alpha, da.data(), c.a.ld, c.a.stride, db.data(),
            c.b.ld, c.b.stride, g.beta, test::bf16_data(dc), c.ldc, c.stride_c, g.batch, nullptr);
        return test::to_host_bf16(dc.data(), c.c0.shape());
    }
    DeviceBuffer dc = g.beta == 0.0f ? test::poisoned<float>(c.c0.numel()) : test::to_device(c.c0);
    gpu::gemm_bf16_strided_batched_with_tiling(
        tiling, g.trans_a, g.trans_b, g.m, g.n, g.k, g.alpha, da.data(), c.a.ld, c.a.stride, db.data(),
        c.b.ld, c.b.stride, g.beta, dc.data_as<float>(), c.ldc, c.stride_c, g.batch, nullptr);
    return test::to_host<float>(dc, c.c0.shape());
}

// What the bf16 kernel must give bit for bit: the FP32 sgemm on the widened operands and C, rounded once to
// bf16 for a bf16 C.
HostTensor<float> run_fp32(const GemmCase& g, const Bf16Case& c, bool bf16_c) {
    DeviceBuffer da = test::to_device(c.a.values), db = test::to_device(c.b.values);
    DeviceBuffer dc = g.beta == 0.0f ? test::poisoned<float>(c.c0.numel()) : test::to_device(c.c0);
    gpu::sgemm_strided_batched(g.trans_a, g.trans_b, g.m, g.n, g.k, g.alpha, da.data_as<float>(), c.a.ld,
                               c.a.stride, db.data_as<float>(), c.b.ld, c.b.stride, g.beta,
                               dc.data_as<float>(), c.ldc, c.stride_c, g.batch, nullptr);
    const HostTensor<float> out = test::to_host<float>(dc, c.c0.shape());
    return bf16_c ? test::round_to_bf16(out) : out;
}

// The double reference on the bf16 values, rounded once to bf16 for a bf16 C; entries outside the (m, n)
// windows keep their initial value.
HostTensor<float> reference(const GemmCase& g, const Bf16Case& c, bool bf16_c) {
    HostTensor<float> out = c.c0;
    test::gemm_reference(g.trans_a, g.trans_b, g.m, g.n, g.k, g.alpha, c.a.values.data(), c.a.ld, c.a.stride,
                         c.b.values.data(), c.b.ld, c.b.stride, g.beta, out.data(), c.ldc, c.stride_c,
                         g.batch);
    return bf16_c ? test::round_to_bf16(out) : out;
}

constexpr gpu::GemmTiling kTilings[] = {gpu::GemmTiling::block128x128, gpu::GemmTiling::block64x128,
                                        gpu::GemmTiling::block128x64,  gpu::GemmTiling::block32x128,
                                        gpu::GemmTiling::large,        gpu::GemmTiling::small};

// One case for both C types: every tiling gives the FP32 kernel's bits (so, transitively, each other's), and
// the result is within the tolerance of the reference over the whole C buffer, padding included (the kernels
// must leave it alone).
void check_case(const GemmCase& g, uint32_t seed, bool all_tilings = true) {
    for (const bool bf16_c : {false, true}) {
        INFO("C " << (bf16_c ? "bf16" : "float"));
        const Bf16Case c = make_case(g, bf16_c, seed);
        const HostTensor<float> expected = run_fp32(g, c, bf16_c);
        for (const gpu::GemmTiling tiling : kTilings) {
            if (!all_tilings && tiling != gpu::GemmTiling::small) continue;
            INFO("tiling " << static_cast<int>(tiling));
            CHECK(identical(run_bf16(tiling, g, c, bf16_c), expected));
        }
        CHECK(test::max_relative_error(expected, reference(g, c, bf16_c)) <= tolerance(g.k, bf16_c));
    }
}

void check_all_transposes(GemmCase base, uint32_t seed, bool all_tilings = true) {
    for (const bool trans_a : {false, true}) {
        for (const bool trans_b : {false, true}) {
            base.trans_a = trans_a, base.trans_b = trans_b;
            INFO("trans_a " << trans_a << ", trans_b " << trans_b << ", m " << base.m << ", n " << base.n
                            << ", k " << base.k << ", pad " << base.pad << ", batch " << base.batch);
            check_case(base, seed, all_tilings);
        }
    }
}

}  // namespace

TEST_CASE("gemm_bf16: sizes off the tile grid, every transpose, scalar and vector paths, float and bf16 C",
          "[parity][bf16][gemm]") {
    GemmCase g;
    SECTION("37 x 29 x 41, alpha and beta, unaligned leading dimensions (scalar loads and stores)") {
        g.m = 37, g.n = 29, g.k = 41, g.alpha = 0.75f, g.beta = -1.5f, g.pad = 3;
        check_all_transposes(g, 2);
    }
    SECTION("65 x 130 x 17, beta 0 on a NaN C, leading dimensions multiples of 4 (vector paths and edges)") {
        g.m = 65, g.n = 130, g.k = 17, g.align4 = true;
        check_all_transposes(g, 3);
    }
    SECTION("68 x 132 x 36, alpha and beta, every width a multiple of 4 (vector paths only)") {
        g.m = 68, g.n = 132, g.k = 36, g.alpha = 2.0f, g.beta = 0.5f, g.pad = 4;
        check_all_transposes(g, 4);
    }
}

TEST_CASE("gemm_bf16: several 128 x 128 tiles with ragged edges, k off the slice length",
          "[parity][bf16][gemm]") {
    GemmCase g;
    g.m = 131, g.n = 259, g.k = 45, g.alpha = -0.5f, g.beta = 1.0f, g.align4 = true;
    g.trans_b = true;
    check_case(g, 11);
}

TEST_CASE("gemm_bf16: strided batches, with stride 0 sharing one operand", "[parity][bf16][gemm]") {
    GemmCase g;
    g.m = 19, g.n = 70, g.k = 33, g.batch = 3, g.alpha = 1.25f, g.beta = 0.25f;
    SECTION("A shared, unaligned batch offsets") {
        g.share_a = true, g.pad = 1;
        check_all_transposes(g, 6, /*all_tilings=*/false);
    }
    SECTION("B shared, aligned rows and strides") {
        g.share_b = true, g.n = 64, g.k = 32, g.beta = 0.0f, g.align4 = true;
        check_all_transposes(g, 7, /*all_tilings=*/false);
    }
}

TEST_CASE("gemm_bf16: operands 1 and 4 elements into their buffers (unaligned, and aligned for bf16 only)",
          "[parity][bf16][gemm]") {
    // Rows of 36 and 44 bf16 (multiples of 4): only the pointer decides. Offset 1 is 2 bytes off an 8-byte
    // group (scalar loads); offset 4 is 8 bytes, a legal bf16 group though not a float4 one (vector loads).
    GemmCase g;
    g.m = 33, g.n = 44, g.k = 36, g.align4 = true, g.alpha = 1.5f, g.beta = 0.0f;
    for (const int64_t offset : {1, 4}) {
        for (const bool trans_a : {false, true}) {
            g.trans_a = trans_a;
            for (const bool bf16_c : {false, true}) {
                INFO("offset " << offset << ", trans_a " << trans_a << ", C " << (bf16_c ? "bf16" : "float"));
                const Bf16Case c = make_case(g, bf16_c, 30);
                CHECK(identical(run_bf16(gpu::GemmTiling::automatic, g, c, bf16_c, offset),
                                run_fp32(g, c, bf16_c)));
            }
        }
    }
}

TEST_CASE("gemm_bf16: k = 0 and alpha = 0 give beta · C without reading A and B, rounded once for bf16 C",
          "[parity][bf16][gemm]") {
    const int64_t m = 5, n = 7;
    const HostTensor<float> c0 = test::round_to_bf16(test::random_tensor<float>(Shape{m, n}, 10));
    // 1.5 · a bf16 value needs up to 9 significant bits: the bf16 result is rounded.
    for (const float beta : {0.0f, 1.5f}) {
        for (const int64_t k : {0, 3}) {
            const float alpha = k == 0 ? 1.0f : 0.0f;
            INFO("beta " << beta << ", k " << k);
            HostTensor<float> expected = c0;
            for (float& v : expected.values()) v = beta == 0.0f ? 0.0f : v * beta;  // beta 0 writes +0
            DeviceBuffer dc = beta == 0.0f ? test::poisoned_bf16(m * n) : test::to_device_bf16(c0);
            gpu::gemm_bf16(false, false, m, n, k, alpha, nullptr, std::max<int64_t>(k, 1), nullptr, n, beta,
                           test::bf16_data(dc), n, nullptr);
            CHECK(identical(test::to_host_bf16(dc.data(), Shape{m, n}), test::round_to_bf16(expected)));
            DeviceBuffer df = beta == 0.0f ? test::poisoned<float>(m * n) : test::to_device(c0);
            gpu::gemm_bf16(false, false, m, n, k, alpha, nullptr, std::max<int64_t>(k, 1), nullptr, n, beta,
                           df.data_as<float>(), n, nullptr);
            CHECK(identical(test::to_host<float>(df, Shape{m, n}), expected));
        }
    }
}

namespace {

// C after gemm_bf16_split_k on the CUDA-core kernel (batch 1), the workspace poisoned with NaN.
HostTensor<float> run_split_k(int64_t splits, const GemmCase& g, const Bf16Case& c, bool bf16_c) {
    const DeviceBuffer da = test::to_device_bf16(c.a.values), db = test::to_device_bf16(c.b.values);
    const size_t bytes = gpu::sgemm_split_k_workspace_bytes(g.m, g.n, g.k, splits);
    DeviceBuffer workspace = test::poisoned<float>(static_cast<int64_t>(bytes / sizeof(float)));
    if (bf16_c) {
        DeviceBuffer dc = g.beta == 0.0f ? test::poisoned_bf16(c.c0.numel()) : test::to_device_bf16(c.c0);
        gpu::gemm_bf16_split_k_with_kernel(gpu::Bf16GemmKernel::cuda_cores, splits, g.trans_a, g.trans_b, g.m,
                                           g.n, g.k, g.alpha, test::bf16_data(da), c.a.ld,
                                           test::bf16_data(db), c.b.ld, g.beta, test::bf16_data(dc), c.ldc,
                                           workspace.data(), bytes, nullptr);
        return test::to_host_bf16(dc.data(), c.c0.shape());
    }
    DeviceBuffer dc = g.beta == 0.0f ? test::poisoned<float>(c.c0.numel()) : test::to_device(c.c0);
    gpu::gemm_bf16_split_k_with_kernel(gpu::Bf16GemmKernel::cuda_cores, splits, g.trans_a, g.trans_b, g.m,
                                       g.n, g.k, g.alpha, test::bf16_data(da), c.a.ld, test::bf16_data(db),
                                       c.b.ld, g.beta, dc.data_as<float>(), c.ldc, workspace.data(), bytes,
                                       nullptr);
    return test::to_host<float>(dc, c.c0.shape());
}

// sgemm_split_k on the widened operands: what gemm_bf16_split_k must give bit for bit (rounded for bf16 C).
HostTensor<float> run_split_k_fp32(int64_t splits, const GemmCase& g, const Bf16Case& c, bool bf16_c) {
    DeviceBuffer da = test::to_device(c.a.values), db = test::to_device(c.b.values);
    DeviceBuffer dc = g.beta == 0.0f ? test::poisoned<float>(c.c0.numel()) : test::to_device(c.c0);
    const size_t bytes = gpu::sgemm_split_k_workspace_bytes(g.m, g.n, g.k, splits);
    DeviceBuffer workspace(bytes);
    gpu::sgemm_split_k(splits, g.trans_a, g.trans_b, g.m, g.n, g.k, g.alpha, da.data_as<float>(), c.a.ld,
                       db.data_as<float>(), c.b.ld, g.beta, dc.data_as<float>(), c.ldc, workspace.data(),
                       bytes, nullptr);
    const HostTensor<float> out = test::to_host<float>(dc, c.c0.shape());
    return bf16_c ? test::round_to_bf16(out) : out;
}

}  // namespace

TEST_CASE(
    "gemm_bf16_split_k: ragged ranges of k, alpha and beta; the FP32 split-k's bits; 1 split is gemm_bf16",
    "[parity][bf16][gemm]") {
    GemmCase g;
    g.m = 37, g.n = 29, g.k = 100, g.alpha = 0.75f;
    for (const bool aligned : {false, true}) {
        g.align4 = aligned, g.pad = aligned ? 0 : 3, g.beta = aligned ? 0.0f : -1.5f;
        for (const bool trans_a : {false, true}) {
            g.trans_a = trans_a, g.trans_b = !trans_a;
            for (const bool bf16_c : {false, true}) {
                INFO("aligned " << aligned << ", trans_a " << trans_a << ", C "
                                << (bf16_c ? "bf16" : "float"));
                const Bf16Case c = make_case(g, bf16_c, 20);
                // 100 = 32 + 32 + 32 + 4 for 3 splits (lengths rounded up to 16).
                const HostTensor<float> split = run_split_k(3, g, c, bf16_c);
                CHECK(identical(split, run_split_k_fp32(3, g, c, bf16_c)));
                CHECK(test::max_relative_error(split, reference(g, c, bf16_c)) <= tolerance(g.k, bf16_c));
                CHECK(identical(run_split_k(1, g, c, bf16_c),
                                run_bf16(gpu::GemmTiling::automatic, g, c, bf16_c)));
            }
        }
    }
}

namespace {

// gemm_bf16_split on the CUDA-core kernel (the linear layer's product, op(B) = Bᵀ) with a float bias, into a
// float or bf16 C, with a workspace that makes it split k or none.
HostTensor<float> run_bias_split(const GemmCase& g, const Bf16Case& c, const HostTensor<float>& bias,
                                 bool bf16_c, bool split) {
    const DeviceBuffer da = test::to_device_bf16(c.a.values), db = test::to_device_bf16(c.b.values);
    const DeviceBuffer dbias = test::to_device(bias);
    const size_t bytes = split ? gpu::gemm_bf16_split_workspace_bytes(g.m, g.n, g.k) : 0;
    DeviceBuffer workspace = test::poisoned<float>(static_cast<int64_t>(bytes / sizeof(float)));
    void* ws = split ? workspace.data() : nullptr;
    if (bf16_c) {
        DeviceBuffer dc = test::poisoned_bf16(c.c0.numel());
        gpu::gemm_bf16_split_with_kernel(gpu::Bf16GemmKernel::cuda_cores, g.trans_a, g.trans_b, g.m, g.n, g.k,
                                         g.alpha, test::bf16_data(da), c.a.ld, test::bf16_data(db), c.b.ld,
                                         dbias.data_as<float>(), test::bf16_data(dc), c.ldc, ws, bytes,
                                         nullptr);
        return test::to_host_bf16(dc.data(), c.c0.shape());
    }
    DeviceBuffer dc = test::poisoned<float>(c.c0.numel());
    gpu::gemm_bf16_split_with_kernel(gpu::Bf16GemmKernel::cuda_cores, g.trans_a, g.trans_b, g.m, g.n, g.k,
                                     g.alpha, test::bf16_data(da), c.a.ld, test::bf16_data(db), c.b.ld,
                                     dbias.data_as<float>(), dc.data_as<float>(), c.ldc, ws, bytes, nullptr);
    return test::to_host<float>(dc, c.c0.shape());
}

}  // namespace

TEST_CASE("gemm_bf16_split: the bias is added before C's one rounding, split over k or not",
          "[parity][bf16][gemm]") {
    // (m, n, k) = (3, 70, 2047): 1 tile, so sgemm_split_k_count splits k (as for CifarCNN's 4096 -> 1024
    // layer at batch 128 on an H100); pad 1: unaligned rows.
    GemmCase g;
    g.m = 3, g.n = 70, g.k = 2047, g.trans_b = true, g.pad = 1;
    REQUIRE(gpu::gemm_bf16_split_workspace_bytes(g.m, g.n, g.k) > 0);
    const HostTensor<float> bias = test::random_tensor<float>(Shape{g.n}, 42);
    for (const bool bf16_c : {false, true}) {
        // The expected C: the bias in every row (C's initial value, beta 1 reads it). The FP32 GEMM then adds
        // alpha · sum as fmaf(1, bias, alpha · sum): the bf16 kernel's rounding, once at the end.
        Bf16Case c = make_case(g, false, 40);
        for (int64_t i = 0; i < g.m; ++i) {
            for (int64_t j = 0; j < g.n; ++j) c.c0[i * c.ldc + j] = bias[j];
        }
        GemmCase with_beta = g;
        with_beta.beta = 1.0f;
        const int64_t splits = gpu::sgemm_split_k_count(g.m, g.n, g.k);
        const HostTensor<float> expected = reference(with_beta, c, bf16_c);
        for (const bool split : {false, true}) {
            INFO("C " << (bf16_c ? "bf16" : "float") << ", split " << split);
            // The padding between rows is never written: NaN in C's initial value and in the poisoned output.
            const HostTensor<float> out = run_bias_split(g, c, bias, bf16_c, split);
            CHECK(identical(out, split ? run_split_k_fp32(splits, with_beta, c, bf16_c)
                                       : run_fp32(with_beta, c, bf16_c)));
            CHECK(test::max_relative_error(out, expected) <= tolerance(g.k, bf16_c));
        }
    }
}

TEST_CASE("gemm_bf16: bad arguments name the op and the values", "[parity][bf16][gemm]") {
    using Catch::Matchers::Contains;
    DeviceBuffer buffer = test::poisoned_bf16(64);
    gpu::bf16* p = test::bf16_data(buffer);
    CHECK_THAT(test::error_message(
                   [&] { gpu::gemm_bf16(false, false, 2, 3, 4, 1.0f, p, 3, p, 3, 0.0f, p, 3, nullptr); }),
               Contains("gemm_bf16") && Contains("lda = 3") && Contains("4"));
    CHECK_THAT(test::error_message([&] {
                   gpu::gemm_bf16(false, false, 2, 2, 2, 1.0f, p, 2, p, 2, 0.0f, static_cast<float*>(nullptr),
                                  2, nullptr);
               }),
               Contains("gemm_bf16") && Contains("C is null"));
    CHECK_THAT(test::error_message([&] {
                   gpu::gemm_bf16_strided_batched(false, false, 2, 2, 2, 1.0f, p, 2, 4, p, 2, 4, 0.0f, p, 2,
                                                  0, 3, nullptr);
               }),
               Contains("gemm_bf16_strided_batched") && Contains("stride_c = 0") && Contains("batch = 3"));
    CHECK_THAT(
        test::error_message([&] {
            gpu::gemm_bf16_split_k(2, false, false, 4, 4, 64, 1.0f, p, 64, p, 4, 0.0f, p, 4, p, 16, nullptr);
        }),
        Contains("gemm_bf16_split_k") && Contains("16 bytes") && Contains("sgemm_split_k_workspace_bytes"));
    CHECK_THAT(test::error_message([&] {
                   gpu::gemm_bf16_split(false, true, 2, 3, 4, 1.0f, p, 4, p, 3, nullptr, p, 3, nullptr, 0,
                                        nullptr);
               }),
               Contains("gemm_bf16_split") && Contains("ldb = 3") && Contains("4"));
}
