// Parity of the BF16 GEMM's two kernels (cuda/gemm.hpp's Bf16GemmKernel): the tensor-core kernel
// (cuda/gemm_bf16_tc.cu, both block tiles) and the CUDA-core one, against the double reference on the bf16
// values and, under the emulator, against each other bit for bit; odd sizes, every transpose, batches,
// alpha / beta, float and bf16 C, split-k, the split-with-bias entry, and what `automatic` picks.
#include <catch2/catch.hpp>

#include <algorithm>
#include <array>
#include <cstdint>
#include <limits>
#include <vector>

#include "cuda/gemm.hpp"
#include "cuda/gemm_bf16_tc.hpp"
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

// Every output is a float sum of k exact products (two bf16 have 8 significant bits each) against the
// reference's double sum: test::float_sum_tolerance(k, margin) bounds it (k · 2^-24 per unit of max |C|
// for a round-to-nearest sum). Tensor cores of a real GPU do not round to nearest: they align each step's
// products to the largest exponent and truncate (Fasi, Higham, Mikaitis, Pranesh, "Numerical behavior of
// NVIDIA tensor cores", PeerJ CS 2021), so each addition may lose up to one unit of 2^-23 (2× RN's bound) and
// the alignment another as much: margin 4. Still far below the error of one missing or extra term (~1/k).
constexpr double kTensorCoreSumMargin = 4.0;
// A bf16 C and the reference are each rounded once to bf16; where a rounding boundary lies between the two
// float values they end one bf16 ulp apart, at most 2^-7 of the value (8 significant bits).
constexpr double kBf16Ulp = 0x1p-7;

double tolerance(int64_t k, bool bf16_c) {
    return test::float_sum_tolerance(k, kTensorCoreSumMargin) + (bf16_c ? kBf16Ulp : 0.0);
}

// The kernels under test: CUDA cores always, the tensor-core kernel's two tiles where it can run.
enum class Kernel { cuda_cores, tc128, tc64 };

std::vector<Kernel> kernels() {
    std::vector<Kernel> list{Kernel::cuda_cores};
    if (gpu::bf16_tensor_cores_available()) list.insert(list.end(), {Kernel::tc128, Kernel::tc64});
    return list;
}

const char* kernel_name(Kernel kernel) {
    return kernel == Kernel::tc128  ? "tensor cores 128 x 128"
           : kernel == Kernel::tc64 ? "tensor cores 64 x 64"
                                    : "CUDA cores";
}

// A case's operands as bf16 values (held in floats) and C's initial contents: random where beta reads it
// (rounded to bf16 for a bf16 C), else NaN.
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

// The double reference on the bf16 values, rounded once to bf16 for a bf16 C; entries outside the (m, n)
// windows keep their initial value.
HostTensor<float> reference(const GemmCase& g, const Bf16Case& c, bool bf16_c) {
    HostTensor<float> out = c.c0;
    test::gemm_reference(g.trans_a, g.trans_b, g.m, g.n, g.k, g.alpha, c.a.values.data(), c.a.ld, c.a.stride,
                         c.b.values.data(), c.b.ld, c.b.stride, g.beta, out.data(), c.ldc, c.stride_c,
                         g.batch);
    return bf16_c ? test::round_to_bf16(out) : out;
}

// Bit for bit, NaN matching NaN (the padding holds poison on one side, the reference's NaN on the other).
bool identical(const HostTensor<float>& a, const HostTensor<float>& b) {
    return test::bf16_mismatches(a, b) == 0;
}

// One strided-batched product into C of type T on `kernel`.
template <class T>
void launch(Kernel kernel, const GemmCase& g, const Bf16Case& c, const gpu::bf16* a, const gpu::bf16* b,
            T* dc) {
    if (kernel == Kernel::cuda_cores) {
        gpu::gemm_bf16_strided_batched_with_kernel(
            gpu::Bf16GemmKernel::cuda_cores, g.trans_a, g.trans_b, g.m, g.n, g.k, g.alpha, a, c.a.ld,
            c.a.stride, b, c.b.ld, c.b.stride, g.beta, dc, c.ldc, c.stride_c, g.batch, nullptr);
        return;
    }
    const gpu::Bf16TcTiling tiling =
        kernel == Kernel::tc128 ? gpu::Bf16TcTiling::block128x128 : gpu::Bf16TcTiling::block64x64;
    gpu::gemm_bf16_tensor_cores("gemm_bf16_tc_test", tiling, g.trans_a, g.trans_b, g.m, g.n, g.k, g.alpha, a,
                                c.a.ld, c.a.stride, b, c.b.ld, c.b.stride, g.beta, nullptr, dc, c.ldc,
                                c.stride_c, g.batch, g.k, nullptr);
}

// C on the device after `kernel` (returned widened for a bf16 C), the operands `offset` elements into their
// buffers (1: every vector path misaligned; 4: 8-byte groups aligned, 16-byte ones not; 8: both aligned where
// the leading dimensions allow); beta == 0 poisons C with NaN.
HostTensor<float> run(Kernel kernel, const GemmCase& g, const Bf16Case& c, bool bf16_c, int64_t offset = 0) {
    const auto da = test::to_device_bf16_at(c.a.values, offset),
               db = test::to_device_bf16_at(c.b.values, offset);
    if (bf16_c) {
        DeviceBuffer dc = g.beta == 0.0f ? test::poisoned_bf16(c.c0.numel()) : test::to_device_bf16(c.c0);
        launch(kernel, g, c, da.data(), db.data(), test::bf16_data(dc));
        return test::to_host_bf16(dc.data(), c.c0.shape());
    }
    DeviceBuffer dc = g.beta == 0.0f ? test::poisoned<float>(c.c0.numel()) : test::to_device(c.c0);
    launch(kernel, g, c, da.data(), db.data(), dc.data_as<float>());
    return test::to_host<float>(dc, c.c0.shape());
}

// Every kernel within the tolerance of the reference over the whole C buffer (padding included: it must stay
// as it was), for both C types; under the emulator every tensor-core result is the CUDA-core kernel's bit for
// bit (both sum k in order in float, and the products are exact).
void check_case(const GemmCase& g, uint32_t seed, int64_t offset = 0) {
    for (const bool bf16_c : {false, true}) {
        const Bf16Case c = make_case(g, bf16_c, seed);
        const HostTensor<float> expected = reference(g, c, bf16_c);
        HostTensor<float> cuda_cores(Shape{1});
        for (const Kernel kernel : kernels()) {
            INFO("C " << (bf16_c ? "bf16" : "float") << ", " << kernel_name(kernel) << ", offset " << offset);
            const HostTensor<float> out = run(kernel, g, c, bf16_c, offset);
            CHECK(test::max_relative_error(out, expected) <= tolerance(g.k, bf16_c));
            if (kernel == Kernel::cuda_cores) {
                cuda_cores = out;
                continue;
            }
#ifdef CUDACNN_EMU
            CHECK(identical(out, cuda_cores));
#endif
        }
    }
}

void check_all_transposes(GemmCase base, uint32_t seed) {
    for (const bool trans_a : {false, true}) {
        for (const bool trans_b : {false, true}) {
            base.trans_a = trans_a, base.trans_b = trans_b;
            INFO("trans_a " << trans_a << ", trans_b " << trans_b << ", m " << base.m << ", n " << base.n
                            << ", k " << base.k << ", pad " << base.pad << ", align4 " << base.align4
                            << ", batch " << base.batch << ", beta " << base.beta);
            check_case(base, seed);
        }
    }
}

}  // namespace

TEST_CASE("gemm_bf16 tensor cores: m, n, k from 1, 7, 17, 33, 100, 129, every transpose, float and bf16 C",
          "[parity][bf16][gemm][tensor_cores]") {
    // Each size in each position (a rotation of the list), plus 1 x 1 x 1 and 129^3 (several 128-tiles and
    // 64-tiles with ragged edges, k = 4 slices of 32 + 1). Odd cases read C (beta != 0) with unaligned
    // leading dimensions (scalar loads); even ones write a NaN C with leading dimensions multiples of 4.
    const int64_t sizes[] = {1, 7, 17, 33, 100, 129};
    std::vector<std::array<int64_t, 3>> shapes{{1, 1, 1}, {129, 129, 129}};
    for (int i = 0; i < 6; ++i) shapes.push_back({sizes[i], sizes[(i + 1) % 6], sizes[(i + 2) % 6]});
    uint32_t seed = 100;
    for (const auto& [m, n, k] : shapes) {
        GemmCase g;
        g.m = m, g.n = n, g.k = k;
        if (seed % 2 == 1) {
            g.alpha = 0.75f, g.beta = -1.5f, g.pad = 3;
        } else {
            g.alpha = 1.25f, g.align4 = true;
        }
        check_all_transposes(g, seed++);
    }
}

TEST_CASE("gemm_bf16 tensor cores: 16-byte loads, and operands 1, 4 and 8 elements into their buffers",
          "[parity][bf16][gemm][tensor_cores]") {
    GemmCase g;
    SECTION("every width a multiple of 8 (16-byte loads only), alpha and beta") {
        g.m = 72, g.n = 136, g.k = 104, g.alpha = 2.0f, g.beta = 0.5f;
        check_all_transposes(g, 10);
    }
    SECTION("offsets: unaligned, 8-byte aligned only, 16-byte aligned") {
        g.m = 40, g.n = 48, g.k = 56, g.alpha = 1.5f;
        for (const int64_t offset : {1, 4, 8}) {
            for (const bool trans_a : {false, true}) {
                g.trans_a = trans_a, g.trans_b = !trans_a;
                check_case(g, 11, offset);
            }
        }
    }
}

TEST_CASE("gemm_bf16 tensor cores: strided batches, with stride 0 sharing one operand",
          "[parity][bf16][gemm][tensor_cores]") {
    GemmCase g;
    g.m = 19, g.n = 70, g.k = 33, g.batch = 3, g.alpha = 1.25f, g.beta = 0.25f;
    SECTION("separate matrices, unaligned batch offsets") {
        g.pad = 1;
        check_all_transposes(g, 20);
    }
    SECTION("A shared") {
        g.share_a = true, g.pad = 3;
        check_all_transposes(g, 21);
    }
    SECTION("B shared, rows and strides multiples of 8, beta 0") {
        g.share_b = true, g.n = 64, g.k = 48, g.beta = 0.0f, g.pad = 8;
        check_all_transposes(g, 22);
    }
}

TEST_CASE("gemm_bf16 tensor cores: k = 0 and alpha = 0 give beta · C without reading A and B",
          "[parity][bf16][gemm][tensor_cores]") {
    if (!gpu::bf16_tensor_cores_available()) return;
    const int64_t m = 5, n = 7;
    const HostTensor<float> c0 = test::round_to_bf16(test::random_tensor<float>(Shape{m, n}, 30));
    for (const float beta : {0.0f, 1.5f}) {
        for (const int64_t k : {0, 3}) {
            const float alpha = k == 0 ? 1.0f : 0.0f;
            INFO("beta " << beta << ", k " << k);
            HostTensor<float> expected = c0;
            for (float& v : expected.values()) v = beta == 0.0f ? 0.0f : v * beta;
            DeviceBuffer dc = beta == 0.0f ? test::poisoned_bf16(m * n) : test::to_device_bf16(c0);
            gpu::gemm_bf16_strided_batched_with_kernel(gpu::Bf16GemmKernel::tensor_cores, false, false, m, n,
                                                       k, alpha, nullptr, std::max<int64_t>(k, 1), 0, nullptr,
                                                       n, 0, beta, test::bf16_data(dc), n, 0, 1, nullptr);
            CHECK(identical(test::to_host_bf16(dc.data(), Shape{m, n}), test::round_to_bf16(expected)));
            DeviceBuffer df = beta == 0.0f ? test::poisoned<float>(m * n) : test::to_device(c0);
            gpu::gemm_bf16_strided_batched_with_kernel(gpu::Bf16GemmKernel::tensor_cores, false, false, m, n,
                                                       k, alpha, nullptr, std::max<int64_t>(k, 1), 0, nullptr,
                                                       n, 0, beta, df.data_as<float>(), n, 0, 1, nullptr);
            CHECK(identical(test::to_host<float>(df, Shape{m, n}), expected));
        }
    }
}

namespace {

// The kernel choices a split entry point takes: CUDA cores always, tensor cores where available.
std::vector<gpu::Bf16GemmKernel> entry_kernels() {
    std::vector<gpu::Bf16GemmKernel> list{gpu::Bf16GemmKernel::cuda_cores};
    if (gpu::bf16_tensor_cores_available()) list.push_back(gpu::Bf16GemmKernel::tensor_cores);
    return list;
}

// C after gemm_bf16_split_k_with_kernel (batch 1), the workspace poisoned with NaN.
HostTensor<float> run_split_k(gpu::Bf16GemmKernel kernel, int64_t splits, const GemmCase& g,
                              const Bf16Case& c, bool bf16_c) {
    const DeviceBuffer da = test::to_device_bf16(c.a.values), db = test::to_device_bf16(c.b.values);
    const size_t bytes = gpu::sgemm_split_k_workspace_bytes(g.m, g.n, g.k, splits);
    DeviceBuffer workspace = test::poisoned<float>(static_cast<int64_t>(bytes / sizeof(float)));
    if (bf16_c) {
        DeviceBuffer dc = g.beta == 0.0f ? test::poisoned_bf16(c.c0.numel()) : test::to_device_bf16(c.c0);
        gpu::gemm_bf16_split_k_with_kernel(kernel, splits, g.trans_a, g.trans_b, g.m, g.n, g.k, g.alpha,
                                           test::bf16_data(da), c.a.ld, test::bf16_data(db), c.b.ld, g.beta,
                                           test::bf16_data(dc), c.ldc, workspace.data(), bytes, nullptr);
        return test::to_host_bf16(dc.data(), c.c0.shape());
    }
    DeviceBuffer dc = g.beta == 0.0f ? test::poisoned<float>(c.c0.numel()) : test::to_device(c.c0);
    gpu::gemm_bf16_split_k_with_kernel(kernel, splits, g.trans_a, g.trans_b, g.m, g.n, g.k, g.alpha,
                                       test::bf16_data(da), c.a.ld, test::bf16_data(db), c.b.ld, g.beta,
                                       dc.data_as<float>(), c.ldc, workspace.data(), bytes, nullptr);
    return test::to_host<float>(dc, c.c0.shape());
}

// The unsplit product on an entry kernel (batch 1).
HostTensor<float> run_entry(gpu::Bf16GemmKernel kernel, const GemmCase& g, const Bf16Case& c, bool bf16_c) {
    const DeviceBuffer da = test::to_device_bf16(c.a.values), db = test::to_device_bf16(c.b.values);
    if (bf16_c) {
        DeviceBuffer dc = g.beta == 0.0f ? test::poisoned_bf16(c.c0.numel()) : test::to_device_bf16(c.c0);
        gpu::gemm_bf16_strided_batched_with_kernel(
            kernel, g.trans_a, g.trans_b, g.m, g.n, g.k, g.alpha, test::bf16_data(da), c.a.ld, 0,
            test::bf16_data(db), c.b.ld, 0, g.beta, test::bf16_data(dc), c.ldc, 0, 1, nullptr);
        return test::to_host_bf16(dc.data(), c.c0.shape());
    }
    DeviceBuffer dc = g.beta == 0.0f ? test::poisoned<float>(c.c0.numel()) : test::to_device(c.c0);
    gpu::gemm_bf16_strided_batched_with_kernel(kernel, g.trans_a, g.trans_b, g.m, g.n, g.k, g.alpha,
                                               test::bf16_data(da), c.a.ld, 0, test::bf16_data(db), c.b.ld, 0,
                                               g.beta, dc.data_as<float>(), c.ldc, 0, 1, nullptr);
    return test::to_host<float>(dc, c.c0.shape());
}

}  // namespace

TEST_CASE("gemm_bf16_split_k on both kernels: ragged ranges of k, alpha and beta, float and bf16 C",
          "[parity][bf16][gemm][tensor_cores]") {
    // (k, splits): 100 = 32 + 32 + 32 + 4 (the last range shorter, in the same launch on tensor cores); 129
    // = 48 + 48 + 33 (ranges that end mid-slice of 32); 33 in one range.
    struct Split {
        int64_t k, splits;
    };
    GemmCase g;
    g.m = 37, g.n = 29, g.alpha = 0.75f;
    for (const Split s : {Split{100, 3}, Split{129, 3}, Split{33, 1}}) {
        g.k = s.k;
        // C read with beta and unaligned rows, or written over NaN with rows of a multiple of 4.
        for (const bool reads_c : {true, false}) {
            g.pad = reads_c ? 3 : 0, g.align4 = !reads_c, g.beta = reads_c ? -1.5f : 0.0f;
            g.trans_a = !reads_c, g.trans_b = reads_c;
            for (const bool bf16_c : {false, true}) {
                const Bf16Case c = make_case(g, bf16_c, 40);
                const HostTensor<float> expected = reference(g, c, bf16_c);
                HostTensor<float> cuda_cores(Shape{1});
                for (const gpu::Bf16GemmKernel kernel : entry_kernels()) {
                    const bool tc = kernel == gpu::Bf16GemmKernel::tensor_cores;
                    INFO("k " << s.k << ", splits " << s.splits << ", reads C " << reads_c << ", C "
                              << (bf16_c ? "bf16" : "float") << ", " << (tc ? "tensor cores" : "CUDA cores"));
                    const HostTensor<float> split = run_split_k(kernel, s.splits, g, c, bf16_c);
                    CHECK(test::max_relative_error(split, expected) <= tolerance(g.k, bf16_c));
                    // One range is the unsplit product: the same kernel, tile and rounding order, on any
                    // device.
                    if (s.splits == 1) CHECK(identical(split, run_entry(kernel, g, c, bf16_c)));
                    if (!tc) {
                        cuda_cores = split;
                        continue;
                    }
#ifdef CUDACNN_EMU
                    CHECK(identical(split, cuda_cores));
#endif
                }
            }
        }
    }
}

namespace {

// gemm_bf16_split_with_kernel (the linear layer's product, op(B) = Bᵀ) with a float bias, into a float or
// bf16 C, with a workspace that makes it split k or none.
HostTensor<float> run_bias_split(gpu::Bf16GemmKernel kernel, const GemmCase& g, const Bf16Case& c,
                                 const HostTensor<float>& bias, bool bf16_c, bool split) {
    const DeviceBuffer da = test::to_device_bf16(c.a.values), db = test::to_device_bf16(c.b.values);
    const DeviceBuffer dbias = test::to_device(bias);
    const size_t bytes = split ? gpu::gemm_bf16_split_workspace_bytes(g.m, g.n, g.k) : 0;
    DeviceBuffer workspace = test::poisoned<float>(static_cast<int64_t>(bytes / sizeof(float)));
    void* ws = split ? workspace.data() : nullptr;
    if (bf16_c) {
        DeviceBuffer dc = test::poisoned_bf16(c.c0.numel());
        gpu::gemm_bf16_split_with_kernel(kernel, g.trans_a, g.trans_b, g.m, g.n, g.k, g.alpha,
                                         test::bf16_data(da), c.a.ld, test::bf16_data(db), c.b.ld,
                                         dbias.data_as<float>(), test::bf16_data(dc), c.ldc, ws, bytes,
                                         nullptr);
        return test::to_host_bf16(dc.data(), c.c0.shape());
    }
    DeviceBuffer dc = test::poisoned<float>(c.c0.numel());
    gpu::gemm_bf16_split_with_kernel(kernel, g.trans_a, g.trans_b, g.m, g.n, g.k, g.alpha,
                                     test::bf16_data(da), c.a.ld, test::bf16_data(db), c.b.ld,
                                     dbias.data_as<float>(), dc.data_as<float>(), c.ldc, ws, bytes, nullptr);
    return test::to_host<float>(dc, c.c0.shape());
}

}  // namespace

TEST_CASE("gemm_bf16_split on both kernels: the bias added before C's one rounding, split over k or not",
          "[parity][bf16][gemm][tensor_cores]") {
    // (3, 70, 2047): one output tile, so sgemm_split_k_count splits k (as for CifarCNN's 4096 -> 1024 layer
    // at batch 128 on an H100); pad 1: unaligned rows. (33, 100, 17): never split.
    for (const auto& [m, n, k] : {std::array<int64_t, 3>{3, 70, 2047}, std::array<int64_t, 3>{33, 100, 17}}) {
        GemmCase g;
        g.m = m, g.n = n, g.k = k, g.trans_b = true, g.pad = 1, g.alpha = 1.5f;
        const HostTensor<float> bias = test::random_tensor<float>(Shape{g.n}, 50);
        for (const bool bf16_c : {false, true}) {
            // The expected C: the bias in every row as C's initial value, read with beta 1.
            Bf16Case c = make_case(g, false, 51);
            for (int64_t i = 0; i < g.m; ++i) {
                for (int64_t j = 0; j < g.n; ++j) c.c0[i * c.ldc + j] = bias[j];
            }
            GemmCase with_beta = g;
            with_beta.beta = 1.0f;
            const HostTensor<float> expected = reference(with_beta, c, bf16_c);
            for (const bool split : {false, true}) {
                HostTensor<float> cuda_cores(Shape{1});
                for (const gpu::Bf16GemmKernel kernel : entry_kernels()) {
                    const bool tc = kernel == gpu::Bf16GemmKernel::tensor_cores;
                    INFO("m " << m << ", n " << n << ", k " << k << ", C " << (bf16_c ? "bf16" : "float")
                              << ", split " << split << ", " << (tc ? "tensor cores" : "CUDA cores"));
                    const HostTensor<float> out = run_bias_split(kernel, g, c, bias, bf16_c, split);
                    CHECK(test::max_relative_error(out, expected) <= tolerance(g.k, bf16_c));
                    if (!tc) {
                        cuda_cores = out;
                        continue;
                    }
#ifdef CUDACNN_EMU
                    CHECK(identical(out, cuda_cores));
#endif
                }
            }
        }
    }
}

TEST_CASE("gemm_bf16: automatic takes tensor cores where available, on every entry point",
          "[parity][bf16][gemm][tensor_cores]") {
    // Each kernel is deterministic, so the plain entry points must give the expected kernel's bits on any
    // device (on a GPU the two kernels' bits differ, so this tells them apart there).
    const gpu::Bf16GemmKernel expected = gpu::bf16_tensor_cores_available()
                                             ? gpu::Bf16GemmKernel::tensor_cores
                                             : gpu::Bf16GemmKernel::cuda_cores;
    GemmCase g;
    g.m = 70, g.n = 45, g.k = 50, g.alpha = 0.5f, g.beta = 2.0f;
    for (const bool bf16_c : {false, true}) {
        INFO("C " << (bf16_c ? "bf16" : "float"));
        const Bf16Case c = make_case(g, bf16_c, 60);
        const DeviceBuffer da = test::to_device_bf16(c.a.values), db = test::to_device_bf16(c.b.values);
        HostTensor<float> plain(Shape{1});
        if (bf16_c) {
            DeviceBuffer dc = test::to_device_bf16(c.c0);
            gpu::gemm_bf16(false, false, g.m, g.n, g.k, g.alpha, test::bf16_data(da), c.a.ld,
                           test::bf16_data(db), c.b.ld, g.beta, test::bf16_data(dc), c.ldc, nullptr);
            plain = test::to_host_bf16(dc.data(), c.c0.shape());
        } else {
            DeviceBuffer dc = test::to_device(c.c0);
            gpu::gemm_bf16(false, false, g.m, g.n, g.k, g.alpha, test::bf16_data(da), c.a.ld,
                           test::bf16_data(db), c.b.ld, g.beta, dc.data_as<float>(), c.ldc, nullptr);
            plain = test::to_host<float>(dc, c.c0.shape());
        }
        CHECK(identical(plain, run_entry(expected, g, c, bf16_c)));
        CHECK(identical(run_entry(gpu::Bf16GemmKernel::automatic, g, c, bf16_c), plain));
        CHECK(identical(run_split_k(gpu::Bf16GemmKernel::automatic, 2, g, c, bf16_c),
                        run_split_k(expected, 2, g, c, bf16_c)));
    }
}

TEST_CASE("gemm_bf16 tensor cores: bad arguments and an unavailable kernel name the op and the values",
          "[parity][bf16][gemm][tensor_cores]") {
    using Catch::Matchers::Contains;
    DeviceBuffer buffer = test::poisoned_bf16(64);
    gpu::bf16* p = test::bf16_data(buffer);
    CHECK_THAT(test::error_message([&] {
                   gpu::gemm_bf16_tensor_cores("gemm_bf16_tc_test", gpu::Bf16TcTiling::automatic, false,
                                               false, 2, 3, 4, 1.0f, p, 3, 0, p, 3, 0, 0.0f, nullptr, p, 3, 0,
                                               1, 4, nullptr);
               }),
               Contains("gemm_bf16_tc_test") && Contains("lda = 3") && Contains("4"));
    if (gpu::bf16_tensor_cores_available()) {
        CHECK_THAT(test::error_message([&] {
                       gpu::gemm_bf16_tensor_cores("gemm_bf16_tc_test", gpu::Bf16TcTiling::automatic, false,
                                                   false, 2, 3, 4, 1.0f, p, 4, 0, p, 3, 0, 0.0f, nullptr, p,
                                                   3, 0, 1, 5, nullptr);
                   }),
                   Contains("gemm_bf16_tc_test") && Contains("k = 5"));
    } else {  // a build with CUDACNN_TENSOR_CORES=0, or a GPU below sm_80
        CHECK_THAT(test::error_message([&] {
                       gpu::gemm_bf16_strided_batched_with_kernel(gpu::Bf16GemmKernel::tensor_cores, false,
                                                                  false, 2, 2, 2, 1.0f, p, 2, 0, p, 2, 0,
                                                                  0.0f, p, 2, 0, 1, nullptr);
                   }),
                   Contains("gemm_bf16_strided_batched") && Contains("tensor-core kernel needs") &&
                       Contains("cuda_cores"));
    }
}
