// The dropout mask rule and arithmetic on the device (cudacnn/ops/dropout.hpp, "the mask rule"), shared by the
// dropout kernels (cuda/dropout.cu) and the kernels that fold a dropout into a neighbour (max pooling,
// cuda/pool.cu), so that a fused layer draws the same masks and computes the same bits as dropout's own kernels.
#pragma once

#include <cstdint>

#include "cuda/dropout.hpp"
#include "cuda/launch.cuh"
#include "cudacnn/error.hpp"
#include "cudacnn/philox.hpp"

namespace cudacnn::gpu {
namespace kernels {

// The mask rule of cpu::DropoutOptions; draw = false keeps every unit (eval mode, or p = 0 where u >= 0
// holds for every draw anyway).
struct MaskRule {
    uint64_t seed;
    uint64_t stream;
    float p;
    bool draw;
    const int64_t* step;   // DeviceStep: when set, the stream is stream + *step · step_stride
    uint64_t step_stride;
};

__device__ inline uint64_t philox_stream(const MaskRule& rule) {
    return rule.step == nullptr ? rule.stream : rule.stream + static_cast<uint64_t>(*rule.step) * rule.step_stride;
}

// The factor of a kept and of a dropped unit, in double as the reference computes them.
struct MaskFactors {
    double kept;
    double dropped;
};

// The keep decisions of units 4 · group .. 4 · group + 3: one Philox block serves all four.
__device__ inline void draw_keep4(const MaskRule& rule, int64_t group, bool keep[4]) {
    if (!rule.draw) {
        for (int k = 0; k < 4; ++k) keep[k] = true;
        return;
    }
    const PhiloxBlock bits = philox_draw(rule.seed, philox_stream(rule), static_cast<uint64_t>(group));
    for (int k = 0; k < 4; ++k) keep[k] = uint32_to_unit_float(bits.v[k]) >= rule.p;
}

// The keep decision of one unit: word unit % 4 of draw_keep4's block, for a kernel whose threads do not own
// whole groups of four units (a fused pooling's thread owns one pooled output). Four times the Philox work of
// draw_keep4 per unit, which a pooling thread's window scan outweighs.
__device__ inline bool draw_keep(const MaskRule& rule, int64_t unit) {
    if (!rule.draw) return true;
    const PhiloxBlock bits = philox_draw(rule.seed, philox_stream(rule), static_cast<uint64_t>(unit / 4));
    return uint32_to_unit_float(bits.v[unit % 4]) >= rule.p;
}

// The reference's value: float(double(v) · factor), one rounding.
__device__ inline float apply_factor(float v, bool kept, const MaskFactors& factors) {
    return static_cast<float>(static_cast<double>(v) * (kept ? factors.kept : factors.dropped));
}

}  // namespace kernels

// Host side: the options' checks and their kernel arguments.

inline void check_dropout_options(const char* op, const cpu::DropoutOptions& options) {
    // Written so that NaN fails too.
    CUDACNN_CHECK(options.p >= 0.0 && options.p <= 1.0,
                  "{}: p is {}; it must be in [0, 1] (the probability of zeroing a unit)", op, options.p);
}

inline kernels::MaskRule mask_rule(const cpu::DropoutOptions& options, const DeviceStep& step = {}) {
    const float p = static_cast<float>(options.p);
    return kernels::MaskRule{options.seed, options.stream, p, options.training && p > 0.0f, step.counter, step.stride};
}

// As the reference's unit_factor: 1 / (1 − p) for kept units (never used when p = 1: every unit drops).
inline kernels::MaskFactors mask_factors(const cpu::DropoutOptions& options) {
    if (!options.training) return {1.0, 1.0};
    return {1.0 / (1.0 - options.p), 0.0};
}

}  // namespace cudacnn::gpu
