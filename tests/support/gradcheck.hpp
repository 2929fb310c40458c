// Finite-difference gradient checks for the CPU reference (DESIGN.md, test tier 2): central differences in
// double, with kinks (ReLU at 0, max ties, clamps) detected and skipped rather than compared.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <functional>
#include <random>
#include <string>

#include <fmt/format.h>

#include "cudacnn/host_tensor.hpp"
#include "support/random.hpp"

namespace cudacnn::test {

struct GradcheckOptions {
    // Step: central differences err by O(eps² f''') + O(1e-16 / eps); 1e-6 balances the two at ~1e-10.
    double eps = 1e-6;
    // Agreement: |numeric − analytic| ≤ atol + rtol · |numeric|. With the error above, 1e-6 relative is
    // four orders of magnitude of margin for smooth functions of O(1) inputs.
    double rtol = 1e-6;
    double atol = 1e-8;
    // A kink: the one-sided differences disagree by more than this (relative to their size); smooth
    // functions give ~eps · |f''| ≈ 1e-6, a kink gives the jump in slope, O(1).
    double kink = 1e-3;
    // At most this many elements are checked (spread evenly); 0 checks them all.
    int64_t max_checks = 0;
};

struct GradcheckResult {
    int64_t checked = 0;
    int64_t skipped_kinks = 0;
    int64_t failures = 0;
    std::string report;  // the worst mismatches, for INFO()

    bool ok() const { return failures == 0 && checked > 0; }
};

// Compares `analytic` (d loss / d x, computed by the op's backward) with central differences of `loss`,
// a function of x alone (it must read x through the reference it is given).
inline GradcheckResult check_gradient(const std::function<double(const HostTensor<double>&)>& loss,
                                      HostTensor<double> x, const HostTensor<double>& analytic,
                                      const GradcheckOptions& options = {}) {
    GradcheckResult result;
    if (analytic.shape() != x.shape()) {
        result.failures = 1;
        result.report =
            fmt::format("gradient shape {} differs from input shape {}", analytic.shape(), x.shape());
        return result;
    }
    const int64_t n = x.numel();
    const int64_t stride = options.max_checks > 0 ? std::max<int64_t>(1, n / options.max_checks) : 1;
    const double f0 = loss(x);
    for (int64_t i = 0; i < n; i += stride) {
        const double saved = x[i];
        x[i] = saved + options.eps;
        const double f_plus = loss(x);
        x[i] = saved - options.eps;
        const double f_minus = loss(x);
        x[i] = saved;
        const double forward = (f_plus - f0) / options.eps, backward = (f0 - f_minus) / options.eps;
        if (std::fabs(forward - backward) >
            options.kink * std::max(1.0, std::fabs(forward) + std::fabs(backward))) {
            ++result.skipped_kinks;
            continue;
        }
        ++result.checked;
        const double numeric = (f_plus - f_minus) / (2 * options.eps);
        const double error = std::fabs(numeric - analytic[i]);
        if (error > options.atol + options.rtol * std::fabs(numeric)) {
            if (++result.failures <= 5) {
                result.report +=
                    fmt::format("element {}: numeric {:.12g}, analytic {:.12g}\n", i, numeric, analytic[i]);
            }
        }
    }
    result.report += fmt::format("{} checked, {} kinks skipped, {} failures", result.checked,
                                 result.skipped_kinks, result.failures);
    return result;
}

// Σ r ⊙ y: the scalar whose gradient with respect to y is r. Gradient checks use random r so that every
// output element's gradient path is weighed differently.
inline double weighted_sum(const HostTensor<double>& y, const HostTensor<double>& r) {
    double sum = 0.0;
    for (int64_t i = 0; i < y.numel(); ++i) sum += y[i] * r[i];
    return sum;
}

}  // namespace cudacnn::test
