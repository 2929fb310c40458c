// The tolerance of float sums against a reference that sums in double and rounds once (DESIGN.md tier 3).
#pragma once

#include <algorithm>
#include <cstdint>

namespace cudacnn::test {

// A float sum of `terms` values is off by at most about terms · 2^-24 · Σ|values| (Higham); for random inputs
// in [-1, 1] Σ|values| stays within a small factor of the tensor's max |value|, which max_relative_error
// divides by, and typical errors are far smaller (about √terms · 2^-24). So `margin` · terms · 2^-24, with
// `margin` covering that factor, is safe yet still catches one missing or extra term (an error of order
// 1/terms or more). Sums of fewer than 16 terms get the tolerance of 16: a handful of terms can cancel to a
// small max |value|.
inline double float_sum_tolerance(int64_t terms, double margin = 1.0) {
    constexpr double kUnitRoundoff = 0x1p-24;
    constexpr int64_t kMinTerms = 16;
    return margin * static_cast<double>(std::max(terms, kMinTerms)) * kUnitRoundoff;
}

}  // namespace cudacnn::test
