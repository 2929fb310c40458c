// Median, quartiles and spread of repeated timings; how many input copies defeat the L2 cache.
#include "cudacnn/bench/timing.hpp"

#include <algorithm>
#include <cmath>

#include "cudacnn/error.hpp"

namespace cudacnn::bench {

double quantile_of_sorted(const std::vector<double>& sorted, double q) {
    CUDACNN_CHECK(!sorted.empty(), "bench: the quantile of no samples");
    const double position = q * static_cast<double>(sorted.size() - 1);
    const auto below = static_cast<size_t>(std::floor(position));
    const size_t above = std::min(below + 1, sorted.size() - 1);
    const double fraction = position - static_cast<double>(below);
    return sorted[below] + (sorted[above] - sorted[below]) * fraction;
}

TimingSummary summarize(std::vector<double> samples) {
    CUDACNN_CHECK(!samples.empty(), "bench: no timings to summarize (repeats must be at least 1)");
    for (const double s : samples) CUDACNN_CHECK(!std::isnan(s), "bench: a timing is NaN");
    std::sort(samples.begin(), samples.end());
    TimingSummary t;
    t.count = static_cast<int64_t>(samples.size());
    t.min = samples.front();
    t.max = samples.back();
    t.median = quantile_of_sorted(samples, 0.5);
    t.q1 = quantile_of_sorted(samples, 0.25);
    t.q3 = quantile_of_sorted(samples, 0.75);
    return t;
}

int64_t rotation_count(int64_t bytes_per_copy, int64_t l2_bytes, int64_t max_total_bytes) {
    if (l2_bytes <= 0 || bytes_per_copy <= 0) return 1;
    constexpr int64_t kMinCopies = 2, kMaxCopies = 16;
    const int64_t wanted = (2 * l2_bytes + bytes_per_copy - 1) / bytes_per_copy;
    const int64_t affordable = std::max<int64_t>(1, max_total_bytes / bytes_per_copy);
    return std::min({std::max(wanted, kMinCopies), kMaxCopies, affordable});
}

}  // namespace cudacnn::bench
