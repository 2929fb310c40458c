// How cudacnn-bench judges an implementation's output against the CPU reference before timing it: the
// parity tests' metric (max relative error over the tensor) and their tolerances (tests/ops/*_parity_test.cpp).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "cudacnn/ops/conv2d.hpp"

namespace cudacnn::bench {

// max |a − b| / max |b| over the whole tensor (diff alone when b is all zeros); infinite when the sizes differ
// or exactly one side of a pair is NaN. The parity tests' test::max_relative_error.
double max_relative_error(const std::vector<float>& actual, const std::vector<double>& expected);

// One output's verdict.
struct Check {
    std::string output;  // "y", "dx", "dw", …
    double error = 0;
    double tolerance = 0;
    bool passed() const { return error <= tolerance; }  // false for NaN
};

// The check that decides: the first failing one, else the one closest to its tolerance.
Check worst_check(const std::vector<Check>& checks);

// test::float_sum_tolerance (tests/support/tolerance.hpp): a float sum of `terms` values against a reference
// that sums in double, margin · max(terms, 16) · 2^-24.
double float_sum_tolerance(int64_t terms, double margin = 1.0);

enum class ConvPass { forward, backward_data, backward_filter };

// The parity tests' conv2d tolerances: float_sum_tolerance(L, 4) for the direct and im2col kernels, with L
// the longest sum of the pass (forward: C/G·KH·KW + 1 with the bias; backward-data: OC/G·KH·KW times the
// padded copies of an input element; backward-filter and the bias gradient: N·OH·OW); cuDNN adds the rounding
// of FFT / Winograd transforms, worth 256 more terms (conv2d_cudnn_vendor_parity_test.cpp).
double conv2d_tolerance(const cpu::Conv2dGeometry& g, ConvPass pass, bool cudnn);

// The check of a TF32 row (cuDNN, cuBLAS or the own GEMM with --precision tf32): TF32 keeps 10 mantissa bits,
// so each rounded input errs by up to 2^-11 and each product by about 2^-10 ≈ 1e-3 relative; sums of mixed
// signs come out smaller than their terms, which a factor 10 covers. A kernel that mis-indexes or drops terms
// is off by O(1), so 1e-2 still tells a wrong one.
constexpr double kTf32CheckTolerance = 1e-2;

}  // namespace cudacnn::bench
