// The warp matrix functions (nvcuda::wmma) for TF32 tiles: the emulator's version (cuda/emu/wmma.hpp) in the
// emu flavour, the tensor cores of an sm_80+ GPU in the cuda flavour. Both must meet the same expectations:
// hand-computed products, every memory layout, a random tile against a double reference, and the exact
// rounding of __float_to_tf32 (cvt.rna.tf32.f32).
#include <catch2/catch.hpp>

#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <random>
#include <vector>

#include "cudacnn/device.hpp"
#include "kernels/wmma_kernels.hpp"
#include "support/errors.hpp"
#include "support/tf32.hpp"

using namespace cudacnn;
using cudacnn::test::tf32_rounded;

namespace {

constexpr int kM = 16, kN = 16, kK = 8;

uint32_t bits_of(float value) {
    uint32_t bits;
    std::memcpy(&bits, &value, sizeof bits);
    return bits;
}

float float_of(uint32_t bits) {
    float value;
    std::memcpy(&value, &bits, sizeof value);
    return value;
}

// What a tensor core reads of an unconverted float: its top 19 bits.
float tf32_truncated(float x) {
    return float_of(bits_of(x) & ~0x1fffu);
}

// A logical rows × cols matrix in a buffer with leading dimension ld, row- or column-major, the rest NaN.
std::vector<float> store(const std::vector<float>& logical, int rows, int cols, bool col_major, unsigned ld) {
    std::vector<float> buffer(static_cast<size_t>(ld) * (col_major ? cols : rows),
                              std::numeric_limits<float>::quiet_NaN());
    for (int r = 0; r < rows; ++r) {
        for (int c = 0; c < cols; ++c) buffer[col_major ? c * ld + r : r * ld + c] = logical[r * cols + c];
    }
    return buffer;
}

struct TileResult {
    std::vector<float> d;       // logical 16 × 16, row-major
    std::vector<float> buffer;  // D's whole buffer, padding included
};

// Runs wmma_tile_product on logical A (16 × 8), B (8 × 16) and C (16 × 16) stored as `layout` says.
TileResult run_tile(const test::WmmaTileLayout& layout, const std::vector<float>& a, const std::vector<float>& b,
                    const std::vector<float>& c) {
    const DeviceBuffer da = upload(store(a, kM, kK, layout.a_col_major, layout.lda));
    const DeviceBuffer db = upload(store(b, kK, kN, layout.b_col_major, layout.ldb));
    const std::vector<float> c_stored = store(c, kM, kN, layout.c_col_major, layout.ldc);
    const DeviceBuffer dc = upload(c_stored);
    // D starts all NaN: every element of the tile must be written, and the padding left alone.
    DeviceBuffer dd = upload(std::vector<float>(c_stored.size(), std::numeric_limits<float>::quiet_NaN()));
    test::wmma_tile_product(layout, da.data_as<float>(), db.data_as<float>(), dc.data_as<float>(),
                            dd.data_as<float>(), nullptr);
    TileResult result{std::vector<float>(kM * kN), download<float>(dd)};
    for (int r = 0; r < kM; ++r) {
        for (int col = 0; col < kN; ++col)
            result.d[r * kN + col] = result.buffer[layout.c_col_major ? col * layout.ldc + r : r * layout.ldc + col];
    }
    return result;
}

std::vector<float> random_values(int count, uint32_t seed) {
    std::mt19937 rng(seed);
    std::uniform_real_distribution<float> dist(-1.0f, 1.0f);
    std::vector<float> values(count);
    for (float& v : values) v = dist(rng);
    return values;
}

// Checks d against a · b + c computed in double from the tf32 values the tensor core sees (`operand` of each
// input). Bound per element: the products of tf32 values are exact in float, so the only error is that of
// the 8 float additions into c, at most γ_8 · Σ|terms| ≈ 8 · 2^-24 · Σ|terms| (Higham); doubled for tensor
// cores whose accumulator does not round to nearest. A wrong or missing product is off by ~|a·b| ~ 0.1.
template <class Operand>
void check_against_reference(const std::vector<float>& d, const std::vector<float>& a, const std::vector<float>& b,
                             const std::vector<float>& c, Operand operand) {
    double worst = 0.0;
    int worst_index = -1;
    for (int i = 0; i < kM; ++i) {
        for (int j = 0; j < kN; ++j) {
            double sum = c[i * kN + j], magnitude = std::fabs(c[i * kN + j]);
            for (int q = 0; q < kK; ++q) {
                const double term = static_cast<double>(operand(a[i * kK + q])) * operand(b[q * kN + j]);
                sum += term, magnitude += std::fabs(term);
            }
            const double bound = 2.0 * kK * 0x1p-24 * magnitude;
            const double excess = std::fabs(d[i * kN + j] - sum) / bound;
            if (!(excess <= worst)) worst = excess, worst_index = i * kN + j;  // NaN counts as the worst
        }
    }
    INFO("worst element " << worst_index << ": error / bound = " << worst);
    CHECK(worst <= 1.0);
}

}  // namespace

TEST_CASE("wmma: a hand-computed 16 x 16 x 8 tf32 product", "[wmma][device]") {
    // A[i][q] = i + q, B[q][j] = q − j, C = 0: small integers, exact in tf32 and in every float sum.
    std::vector<float> a(kM * kK), b(kK * kN), c(kM * kN, 0.0f);
    for (int i = 0; i < kM; ++i)
        for (int q = 0; q < kK; ++q) a[i * kK + q] = static_cast<float>(i + q);
    for (int q = 0; q < kK; ++q)
        for (int j = 0; j < kN; ++j) b[q * kN + j] = static_cast<float>(q - j);
    const std::vector<float> d = run_tile(test::WmmaTileLayout{}, a, b, c).d;
    CHECK(d[0 * kN + 0] == 140.0f);     // Σ q² over q < 8
    CHECK(d[1 * kN + 2] == 96.0f);      // Σ (1 + q)(q − 2) = 140 − 28 − 16
    CHECK(d[15 * kN + 15] == -1660.0f);  // Σ (q² − 225) = 140 − 1800
    int wrong = 0;
    for (int i = 0; i < kM; ++i) {
        for (int j = 0; j < kN; ++j) {
            int expected = 0;
            for (int q = 0; q < kK; ++q) expected += (i + q) * (q - j);
            wrong += d[i * kN + j] != static_cast<float>(expected);
        }
    }
    CHECK(wrong == 0);

    SECTION("C is added") {
        std::vector<float> c2(kM * kN);
        for (int e = 0; e < kM * kN; ++e) c2[e] = static_cast<float>(e) * 0.5f;
        const std::vector<float> d2 = run_tile(test::WmmaTileLayout{}, a, b, c2).d;
        CHECK(d2[0] == 140.0f);
        CHECK(d2[1 * kN + 2] == 96.0f + 9.0f);  // C[18] = 9
    }
}

TEST_CASE("wmma: tf32 inputs are rounded by __float_to_tf32, truncated when not converted",
          "[wmma][device]") {
    // Every A element 1 + 2^-11 + 2^-12 (bits 0x3f801800): tf32 keeps 10 mantissa bits, so rounding gives
    // 1 + 2^-10 and truncation gives 1. With B = 1 and C = 0 each output is 8 such values: 8 + 2^-7 converted,
    // exactly 8 unconverted, neither the float result 8 + 2^-8 + 2^-9.
    const std::vector<float> a(kM * kK, float_of(0x3f801800u)), b(kK * kN, 1.0f), c(kM * kN, 0.0f);
    test::WmmaTileLayout layout;
    layout.convert = true;
    const std::vector<float> rounded = run_tile(layout, a, b, c).d;
    layout.convert = false;
    const std::vector<float> truncated = run_tile(layout, a, b, c).d;
    for (int e = 0; e < kM * kN; e += 37) {
        INFO("element " << e);
        CHECK(rounded[e] == 8.0078125f);
        CHECK(truncated[e] == 8.0f);
    }
}

TEST_CASE("wmma: every operand and accumulator layout, padded leading dimensions, random values",
          "[wmma][device]") {
    const std::vector<float> a = random_values(kM * kK, 11), b = random_values(kK * kN, 12),
                             c = random_values(kM * kN, 13);
    for (const bool a_col : {false, true}) {
        for (const bool b_col : {false, true}) {
            for (const bool c_col : {false, true}) {
                test::WmmaTileLayout layout;
                layout.a_col_major = a_col, layout.b_col_major = b_col, layout.c_col_major = c_col;
                // 4 floats beyond each stored row or column: padding that must stay NaN in D.
                layout.lda = (a_col ? kM : kK) + 4, layout.ldb = (b_col ? kK : kN) + 4, layout.ldc = kN + 4;
                INFO("A " << (a_col ? "col" : "row") << "-major, B " << (b_col ? "col" : "row")
                          << "-major, C/D " << (c_col ? "col" : "row") << "-major");
                for (const bool convert : {true, false}) {
                    layout.convert = convert;
                    INFO("converted with __float_to_tf32: " << convert);
                    const TileResult result = run_tile(layout, a, b, c);
                    if (convert) {
                        check_against_reference(result.d, a, b, c, tf32_rounded);
                    } else {
                        check_against_reference(result.d, a, b, c, tf32_truncated);
                    }
                    int padding_written = 0;
                    for (int outer = 0; outer < kN; ++outer) {
                        for (unsigned p = kN; p < layout.ldc; ++p)
                            padding_written += !std::isnan(result.buffer[outer * layout.ldc + p]);
                    }
                    CHECK(padding_written == 0);
                }
            }
        }
    }
}

TEST_CASE("wmma: the product differs from the float product by tf32's precision, not float's",
          "[wmma][device]") {
    // A kernel that skipped the tf32 rounding (or an emulation that multiplied floats) would sit ~1e-7 from
    // the float reference; tf32 inputs carry relative errors up to 2^-11 each, so the products are ~1e-4 off.
    const std::vector<float> a = random_values(kM * kK, 21), b = random_values(kK * kN, 22),
                             c(kM * kN, 0.0f);
    const std::vector<float> d = run_tile(test::WmmaTileLayout{}, a, b, c).d;
    double max_error = 0.0, max_value = 0.0;
    for (int i = 0; i < kM; ++i) {
        for (int j = 0; j < kN; ++j) {
            double exact = 0.0;
            for (int q = 0; q < kK; ++q) exact += static_cast<double>(a[i * kK + q]) * b[q * kN + j];
            max_error = std::max(max_error, std::fabs(d[i * kN + j] - exact));
            max_value = std::max(max_value, std::fabs(exact));
        }
    }
    const double relative = max_error / max_value;
    INFO("max relative error against the float inputs: " << relative);
    CHECK(relative > 1e-5);
    CHECK(relative < 2e-3);
}

TEST_CASE("wmma: 16 x 16 x 16 bf16 and half tiles with a float accumulator", "[wmma][device]") {
    constexpr int kT = 16;
    const auto run = [](bool bf16, bool b_col_major, const std::vector<float>& a, const std::vector<float>& b,
                        const std::vector<float>& c) {
        const DeviceBuffer da = upload(a), db = upload(b), dc = upload(c);
        DeviceBuffer dd = upload(std::vector<float>(kT * kT, std::numeric_limits<float>::quiet_NaN()));
        test::wmma_16bit_tile_product(bf16, b_col_major, da.data_as<float>(), db.data_as<float>(),
                                      dc.data_as<float>(), dd.data_as<float>(), nullptr);
        return download<float>(dd);
    };
    for (const bool bf16 : {true, false}) {
        for (const bool b_col_major : {false, true}) {
            INFO((bf16 ? "bf16" : "half") << ", B " << (b_col_major ? "col" : "row") << "-major");
            // Hand-computed: A[i][q] = i + q, B[q][j] = q − j, C = 0: integers below 31, exact in both types.
            std::vector<float> a(kT * kT), b(kT * kT), zero(kT * kT, 0.0f);
            for (int r = 0; r < kT; ++r) {
                for (int q = 0; q < kT; ++q) a[r * kT + q] = static_cast<float>(r + q), b[r * kT + q] = static_cast<float>(r - q);
            }
            const std::vector<float> d = run(bf16, b_col_major, a, b, zero);
            CHECK(d[0] == 1240.0f);            // Σ q² over q < 16
            CHECK(d[15 * kT + 15] == -2360.0f);  // Σ (q² − 225) = 1240 − 3600
            int wrong = 0;
            for (int i = 0; i < kT; ++i) {
                for (int j = 0; j < kT; ++j) {
                    int expected = 0;
                    for (int q = 0; q < kT; ++q) expected += (i + q) * (q - j);
                    wrong += d[i * kT + j] != static_cast<float>(expected);
                }
            }
            CHECK(wrong == 0);

            // Random values against a double reference on the rounded inputs (the host's __float2bfloat16 /
            // __float2half, to nearest even). Products of two 16-bit values are exact in float, so the error is
            // that of 16 float additions: at most γ_16 · Σ|terms| ≈ 16 · 2^-24 · Σ|terms|, doubled as above.
            const std::vector<float> ra = random_values(kT * kT, 41), rb = random_values(kT * kT, 42),
                                     rc = random_values(kT * kT, 43);
            const auto rounded = [bf16](float x) {
                return bf16 ? __bfloat162float(__float2bfloat16(x)) : __half2float(__float2half(x));
            };
            const std::vector<float> rd = run(bf16, b_col_major, ra, rb, rc);
            double worst = 0.0;
            for (int i = 0; i < kT; ++i) {
                for (int j = 0; j < kT; ++j) {
                    double sum = rc[i * kT + j], magnitude = std::fabs(rc[i * kT + j]);
                    for (int q = 0; q < kT; ++q) {
                        const double term = static_cast<double>(rounded(ra[i * kT + q])) * rounded(rb[q * kT + j]);
                        sum += term, magnitude += std::fabs(term);
                    }
                    const double excess = std::fabs(rd[i * kT + j] - sum) / (2.0 * kT * 0x1p-24 * magnitude);
                    if (!(excess <= worst)) worst = excess;
                }
            }
            INFO("worst error / bound = " << worst);
            CHECK(worst <= 1.0);
        }
    }
}

TEST_CASE("wmma: __float_to_tf32 rounds to nearest, ties away from zero, like cvt.rna.tf32.f32",
          "[wmma][device]") {
    struct Pattern {
        uint32_t in, out;
        const char* what;
    };
    const std::vector<Pattern> patterns = {
        {0x3f800000u, 0x3f800000u, "1 is exact"},
        {0x3f800fffu, 0x3f800000u, "just below half of the dropped range rounds down"},
        {0x3f801000u, 0x3f802000u, "a tie rounds away from zero, even though the kept LSB is even (not RNE)"},
        {0x3f803000u, 0x3f804000u, "a tie with an odd kept LSB rounds up too"},
        {0x3f801001u, 0x3f802000u, "just above half rounds up"},
        {0xbf801000u, 0xbf802000u, "a negative tie rounds away from zero (down)"},
        {0xbf800fffu, 0xbf800000u, "a negative value below half rounds toward zero"},
        {0x3fffffffu, 0x40000000u, "rounding up carries into the exponent"},
        {0x3dcccccdu, 0x3dccc000u, "0.1f: dropped bits 0x0ccd round down"},
        {0x80000000u, 0x80000000u, "-0 stays -0"},
        {0x00001000u, 0x00002000u, "a subnormal tie rounds away from zero"},
        {0x00000fffu, 0x00000000u, "the smallest subnormals round to 0"},
        {0x7f7fe000u, 0x7f7fe000u, "the largest finite tf32 is exact"},
        {0x7f7fffffu, 0x7f800000u, "the largest float rounds past the largest tf32 to infinity (no satfinite)"},
        {0x7f800000u, 0x7f800000u, "+infinity stays"},
        {0xff800000u, 0xff800000u, "-infinity stays"},
    };
    // NaNs lose their dropped bits unrounded: an H200 turned 0x7f800001 into +infinity (2026-11-27); the
    // other three are this model's prediction, and the WARN below prints what the device gave.
    const std::vector<Pattern> nans = {
        {0x7fc00000u, 0x7fc00000u, "the quiet NaN stays"},
        {0x7f800001u, 0x7f800000u, "a NaN whose payload sits only in the dropped bits becomes +infinity"},
        {0xffc00001u, 0xffc00000u, "a negative NaN keeps its sign and top payload"},
        {0x7fffffffu, 0x7fffe000u, "the GPU's canonical NaN stays a NaN (cut, not rounded into the sign bit)"},
    };

    std::vector<float> inputs;
    for (const Pattern& p : patterns) inputs.push_back(float_of(p.in));
    for (const Pattern& p : nans) inputs.push_back(float_of(p.in));
    const std::vector<float> random = random_values(1000, 31);
    for (const float v : random) inputs.push_back(v * 1e3f);
    for (const float v : random) inputs.push_back(v * 1e-38f);  // subnormals and the smallest normals

    const DeviceBuffer in = upload(inputs);
    DeviceBuffer out(inputs.size() * sizeof(float));
    test::float_to_tf32(in.data_as<float>(), out.data_as<float>(), static_cast<int64_t>(inputs.size()), nullptr);
    const std::vector<float> converted = download<float>(out);

    size_t i = 0;
    for (const Pattern& p : patterns) {
        INFO(p.what << ": 0x" << std::hex << p.in << " -> 0x" << bits_of(converted[i]) << ", expected 0x" << p.out);
        CHECK(bits_of(converted[i++]) == p.out);
    }
    for (const Pattern& p : nans) {
        WARN("NaN 0x" << std::hex << p.in << " -> 0x" << bits_of(converted[i]) << " (" << p.what << ")");
        CHECK(bits_of(converted[i++]) == p.out);
    }
    int mismatches = 0;
    for (; i < inputs.size(); ++i) mismatches += bits_of(converted[i]) != bits_of(tf32_rounded(inputs[i]));
    CHECK(mismatches == 0);
}

TEST_CASE("wmma: fill_fragment and element-wise code over x[0 .. num_elements) cover the whole tile",
          "[wmma][device]") {
    DeviceBuffer out = upload(std::vector<float>(kM * kN, std::numeric_limits<float>::quiet_NaN()));
    DeviceBuffer count(sizeof(int));
    test::wmma_fill_and_scale(1.25f, out.data_as<float>(), count.data_as<int>(), nullptr);
    const std::vector<float> values = download<float>(out);
    int wrong = 0;
    for (const float v : values) wrong += v != 2.5f;
    CHECK(wrong == 0);
    // The element-to-lane mapping is unspecified: a GPU spreads the 256 elements over 32 lanes (8 each); the
    // emulator keeps the whole tile in every lane.
    const int num_elements = download<int>(count)[0];
#ifdef CUDACNN_EMU
    CHECK(num_elements == kM * kN);
#else
    CHECK(num_elements * 32 >= kM * kN);
#endif
}

#ifdef CUDACNN_EMU
TEST_CASE("wmma (emulator): misaligned pointers, bad leading dimensions and lanes that disagree fail the launch",
          "[wmma][device]") {
    using Catch::Matchers::Contains;
    DeviceBuffer a = upload(std::vector<float>(64 * 16, 1.0f));
    const float* base = a.data_as<float>();
    CHECK_THAT(test::error_message([&] { test::wmma_misused_load(base + 1, 8, 0, nullptr); }),
               Contains("wmma_misused_load_kernel") && Contains("load_matrix_sync") && Contains("256-bit"));
    CHECK_THAT(test::error_message([&] { test::wmma_misused_load(base, 10, 0, nullptr); }),
               Contains("ldm = 10") && Contains("multiple of 4"));
    CHECK_THAT(test::error_message([&] { test::wmma_misused_load(base, 8, 8, nullptr); }),
               Contains("same arguments"));
    test::wmma_misused_load(base, 8, 0, nullptr);  // the same call used well succeeds
}
#endif
