// The bench's correctness verdicts: the parity tests' error metric and tolerances.
#include "cudacnn/bench/check.hpp"

#include <algorithm>
#include <cmath>
#include <limits>

namespace cudacnn::bench {

double max_relative_error(const std::vector<float>& actual, const std::vector<double>& expected) {
    if (actual.size() != expected.size()) return std::numeric_limits<double>::infinity();
    double diff = 0.0, scale = 0.0;
    for (size_t i = 0; i < actual.size(); ++i) {
        const double a = actual[i], b = expected[i];
        if (std::isnan(a) != std::isnan(b)) return std::numeric_limits<double>::infinity();
        if (std::isnan(a)) continue;
        diff = std::max(diff, std::fabs(a - b));
        scale = std::max(scale, std::fabs(b));
    }
    return scale == 0.0 ? diff : diff / scale;
}

Check worst_check(const std::vector<Check>& checks) {
    Check worst;
    double worst_ratio = -1.0;
    for (const Check& c : checks) {
        if (!c.passed()) return c;
        const double ratio = c.tolerance > 0 ? c.error / c.tolerance : (c.error > 0 ? INFINITY : 0.0);
        if (ratio > worst_ratio) {
            worst_ratio = ratio;
            worst = c;
        }
    }
    return worst;
}

double float_sum_tolerance(int64_t terms, double margin) {
    constexpr double kUnitRoundoff = 0x1p-24;
    constexpr int64_t kMinTerms = 16;
    return margin * static_cast<double>(std::max(terms, kMinTerms)) * kUnitRoundoff;
}

namespace {

// How many padded positions can read one input element along an axis (conv2d_direct_parity_test.cpp).
int64_t padded_copies(cpu::Conv2dPaddingMode mode, int64_t pad_before, int64_t pad_after) {
    switch (mode) {
        case cpu::Conv2dPaddingMode::zeros:
            return 1;
        case cpu::Conv2dPaddingMode::replicate:
            return 1 + pad_before + pad_after;
        default:
            return 3;
    }
}

}  // namespace

double conv2d_tolerance(const cpu::Conv2dGeometry& g, ConvPass pass, bool cudnn) {
    constexpr double kMargin = 4.0;
    constexpr int64_t kTransformTerms = 256;
    int64_t terms = 0;
    switch (pass) {
        case ConvPass::forward:
            terms = g.in_channels_per_group() * g.kernel_h * g.kernel_w + 1;
            break;
        case ConvPass::backward_data:
            terms = g.out_channels_per_group() * g.kernel_h * g.kernel_w *
                    padded_copies(g.padding_mode, g.pad_top, g.pad_bottom) *
                    padded_copies(g.padding_mode, g.pad_left, g.pad_right);
            break;
        case ConvPass::backward_filter:
            terms = g.batch * g.out_h * g.out_w;
            break;
    }
    return float_sum_tolerance(terms, kMargin) + (cudnn ? float_sum_tolerance(kTransformTerms, kMargin) : 0.0);
}

}  // namespace cudacnn::bench
