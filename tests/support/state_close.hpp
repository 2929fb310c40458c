// Comparing the state of two runs of one training whose arithmetic differs by float rounding only (a conv
// bias folded into its batch norm against an unfolded one, batch norm statistics from the conv's epilogue
// against the batch norm's own pass): entry by entry, within a tolerance of each tensor's largest value.
#pragma once

#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "cudacnn/io/state_dict.hpp"
#include "support/compare.hpp"

namespace cudacnn::test {

inline double max_abs(const HostTensor<float>& t) {
    double m = 0.0;
    for (int64_t i = 0; i < t.numel(); ++i) m = std::max(m, std::fabs(static_cast<double>(t[i])));
    return m;
}

inline bool ends_with(const std::string& name, const std::string& suffix) {
    return name.size() >= suffix.size() &&
           name.compare(name.size() - suffix.size(), suffix.size(), suffix) == 0;
}

// What check_state_close allows.
struct StateTolerance {
    double relative = 0.0;  // max_relative_error of each float entry
    // The gradient (or momentum) of a conv bias before a training-mode batch norm is Σ of the batch norm's dx
    // over a channel: exactly 0, so what either run holds is rounding noise around 0. Such entries (names
    // ending in one of these, e.g. "c1.bias") are bounded against the same conv's weight entry instead:
    // |a − b| ≤ noise · max |weight|.
    std::vector<std::string> noise_biases;
    double noise = 0.0;
};

// Every float entry of a against b within `tolerance` (the i64 ones, step counts, equal). gradients: the
// entries are gradients or sums of them (noise_biases apply).
inline void check_state_close(const io::StateDict& a, const io::StateDict& b, const StateTolerance& tolerance,
                              bool gradients) {
    REQUIRE(a.names() == b.names());
    for (const std::string& name : a.names()) {
        INFO(name);
        if (a.dtype(name) == DType::i64) {
            CHECK(a.i64(name).values() == b.i64(name).values());
            continue;
        }
        const bool noise =
            gradients && std::any_of(tolerance.noise_biases.begin(), tolerance.noise_biases.end(),
                                     [&](const std::string& bias) { return ends_with(name, bias); });
        if (noise) {
            const std::string weight = name.substr(0, name.size() - 4) + "weight";
            double diff = 0.0;
            for (int64_t i = 0; i < a.f32(name).numel(); ++i) {
                diff = std::max(diff, std::fabs(static_cast<double>(a.f32(name)[i]) - b.f32(name)[i]));
            }
            CHECK(diff <= tolerance.noise * max_abs(b.f32(weight)));
            continue;
        }
        CHECK(max_relative_error(a.f32(name), b.f32(name)) <= tolerance.relative);
    }
}

}  // namespace cudacnn::test
