// Statistics of repeated timings (median and spread) and the L2-cache-defeating rotation count.
#pragma once

#include <cstdint>
#include <vector>

namespace cudacnn::bench {

struct TimingSummary {
    int64_t count = 0;
    double median = 0, min = 0, max = 0;
    double q1 = 0, q3 = 0;  // quartiles, linear interpolation between order statistics (numpy's default)

    // (q3 − q1) / median · 100: how far the middle half of the repetitions lies apart, in percent.
    double spread_percent() const { return median > 0 ? (q3 - q1) / median * 100.0 : 0.0; }
};

// Summarizes samples (any unit); throws Error for an empty list or a NaN sample.
TimingSummary summarize(std::vector<double> samples);

// The quantile q in [0, 1] of sorted samples by linear interpolation (numpy.percentile's default).
double quantile_of_sorted(const std::vector<double>& sorted, double q);

// How many copies of an op's inputs to rotate through so that each call reads data that is not in the L2
// cache from the previous call: enough copies to cover twice the L2 size, at least 2 and at most 16, and no
// more than fit in max_total_bytes. 1 when l2_bytes is 0 (the CPU emulator, whose caches we do not model).
int64_t rotation_count(int64_t bytes_per_copy, int64_t l2_bytes, int64_t max_total_bytes);

}  // namespace cudacnn::bench
