// TF32 rounding on the host, for references of tensor-core and TF32 kernels (tests/device/wmma_test.cpp,
// tests/ops/gemm_tf32_parity_test.cpp).
#pragma once

#include <algorithm>
#include <cmath>

namespace cudacnn::test {

// cvt.rna.tf32.f32 computed with arithmetic rather than bits (so it checks the kernels' bit tricks): a
// value's quantum is 2^-10 of its binade (2^-136 for subnormals, whose binade is that of 2^-126), and the
// value is rounded to a multiple of it, halves away from zero (std::round), in double; then to float, where a
// result past the largest finite float becomes infinity. Zeros, infinities and NaN pass through.
inline float tf32_rounded(float x) {
    if (!std::isfinite(x) || x == 0.0f) return x;
    int exponent = 0;
    std::frexp(static_cast<double>(x), &exponent);  // |x| = m · 2^exponent, m in [0.5, 1)
    const double quantum = std::ldexp(1.0, std::max(exponent, -125) - 11);
    return static_cast<float>(std::round(static_cast<double>(x) / quantum) * quantum);
}

}  // namespace cudacnn::test
