// The per-value arithmetic of the SGD, Adam and AdamW steps (formulas in cudacnn/ops/optimizer.hpp): the
// scalars a step derives from its options, and one value's update in the reference's float operation order.
// Shared by the reference (src/cpu/optimizer.cpp) and the fast CPU path (src/cpu_fast/optimizer.cpp), so that
// both give bit-identical results by construction.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>

#include "cudacnn/ops/optimizer.hpp"

namespace cudacnn::cpu::detail {

// SGD's scalars for a step taken after `step` earlier ones, rounded to T from the double options.
template <class T>
struct SgdRule {
    bool maximize, decay, momentum_on, nesterov, first_step;
    T weight_decay, momentum, one_minus_dampening, neg_lr;

    SgdRule(const SgdOptions& o, int64_t step)
        : maximize(o.maximize),
          decay(o.weight_decay != 0.0),
          momentum_on(o.momentum != 0.0),
          nesterov(o.nesterov),
          // PyTorch's buffer starts as None and becomes a clone of the first (decayed) gradient.
          first_step(step == 0),
          weight_decay(static_cast<T>(o.weight_decay)),
          momentum(static_cast<T>(o.momentum)),
          one_minus_dampening(static_cast<T>(1.0 - o.dampening)),
          neg_lr(static_cast<T>(-o.lr)) {}

    // One value: p and its momentum buffer entry (not touched without momentum) from the gradient g_in.
    void apply(T& p, T g_in, T& buffer) const {
        T g = maximize ? -g_in : g_in;
        if (decay) g = g + weight_decay * p;
        if (momentum_on) {
            buffer = first_step ? g : buffer * momentum + one_minus_dampening * g;
            g = nesterov ? g + momentum * buffer : buffer;
        }
        p = p + neg_lr * g;
    }
};

// Adam's and AdamW's scalars for step number t (1 for the first step); `decoupled` selects AdamW's weight decay
// p ← p · (1 − lr · wd) instead of g ← g + wd · p. Options is AdamOptions or AdamWOptions (the same fields).
template <class T>
struct AdamRule {
    bool maximize, decoupled, decay, amsgrad;
    T step_size, bias_correction2_sqrt, beta1, one_minus_beta1, beta2, one_minus_beta2, eps, weight_decay,
        decay_factor;

    template <class Options>
    AdamRule(const Options& o, bool decoupled_decay, int64_t t)
        : maximize(o.maximize), decoupled(decoupled_decay), decay(o.weight_decay != 0.0), amsgrad(o.amsgrad) {
        // Host-side scalars in double, as PyTorch computes them from Python floats.
        const double bias_correction1 = 1.0 - std::pow(o.beta1, static_cast<double>(t));
        const double bias_correction2 = 1.0 - std::pow(o.beta2, static_cast<double>(t));
        step_size = static_cast<T>(o.lr / bias_correction1);
        bias_correction2_sqrt = static_cast<T>(std::sqrt(bias_correction2));
        beta1 = static_cast<T>(o.beta1), one_minus_beta1 = static_cast<T>(1.0 - o.beta1);
        beta2 = static_cast<T>(o.beta2), one_minus_beta2 = static_cast<T>(1.0 - o.beta2);
        eps = static_cast<T>(o.eps);
        weight_decay = static_cast<T>(o.weight_decay);
        decay_factor = static_cast<T>(1.0 - o.lr * o.weight_decay);
    }

    // One value: p, its first and second moments m and v, and v_max (touched only with amsgrad).
    void apply(T& p, T g_in, T& m, T& v, T& v_max) const {
        T g = maximize ? -g_in : g_in;
        if (decoupled) {
            p = p * decay_factor;
        } else if (decay) {
            g = g + weight_decay * p;
        }
        m = m * beta1 + one_minus_beta1 * g;
        v = v * beta2 + one_minus_beta2 * g * g;
        T second = v;
        if (amsgrad) {
            v_max = std::max(v_max, v);
            second = v_max;
        }
        const T denom = std::sqrt(second) / bias_correction2_sqrt + eps;
        p = p + (-step_size) * m / denom;
    }
};

}  // namespace cudacnn::cpu::detail
