// Optimizers SGD, Adam and AdamW stepping one flat parameter block, with PyTorch's exact semantics (CPU reference).
#pragma once

#include <cstdint>
#include <limits>

#include "cudacnn/host_tensor.hpp"

namespace cudacnn::cpu {

// The runtime keeps all parameters in one flat block, their gradients in another and the optimizer state
// in a third, each with per-tensor views. Every optimizer here is elementwise, so stepping the flat block
// equals stepping PyTorch's parameter tensors one by one (one param group; fixtures check exactly that).
// Parameters and gradients may have any shape; they are read as flat arrays of n = numel() values.
//
// The state is `slots` arrays of n values in one (slots, n) block, slot-major: slot k of value i is
// values[k * n + i], so each slot has the same per-tensor views as the parameters. `step` counts the steps
// taken (PyTorch's state["step"]; the same for all tensors of a group, hence one counter per optimizer).
template <class T>
struct OptimizerState {
    int64_t step = 0;
    HostTensor<T> values;  // (slots, n)

    int64_t slots() const { return values.dim(0); }
    int64_t size() const { return values.dim(1); }  // n
    T* slot(int64_t k) { return values.data() + k * size(); }
    const T* slot(int64_t k) const { return values.data() + k * size(); }
    // A copy of slot k as an (n) tensor, for comparisons.
    HostTensor<T> slot_tensor(int64_t k) const;
};

// ---- SGD (torch.optim.SGD) ----------------------------------------------------------------------------
// With g the gradient, p the parameter and b the momentum buffer, one step is, in this order:
//   g ← −g                                 if maximize
//   g ← g + weight_decay · p               if weight_decay ≠ 0 (L2 penalty folded into the gradient)
//   if momentum ≠ 0:
//       b ← g                              on the first step (PyTorch clones the gradient: no dampening)
//       b ← momentum · b + (1 − dampening) · g   on later steps
//       g ← g + momentum · b               if nesterov
//       g ← b                              otherwise
//   p ← p − lr · g
// State slots: 1 (the momentum buffer) when momentum ≠ 0, else 0.
struct SgdOptions {
    // PyTorch's SGD has no default learning rate; NaN means "not set" and is rejected.
    double lr = std::numeric_limits<double>::quiet_NaN();
    double momentum = 0.0;
    double dampening = 0.0;
    double weight_decay = 0.0;
    bool nesterov = false;  // requires momentum > 0 and dampening == 0, as in PyTorch
    bool maximize = false;
};

constexpr int64_t kSgdMomentumBuffer = 0;  // slot of the momentum buffer

int64_t sgd_state_slots(const SgdOptions& options);

// A fresh state for n parameters: step 0, every slot zero. Throws Error on invalid options or n < 1.
template <class T>
OptimizerState<T> sgd_init_state(const SgdOptions& options, int64_t n);

// One step: updates params and state in place and increments state.step. Throws Error (naming the value)
// on invalid options, gradients with a different element count, or a state not made for these options/n.
template <class T>
void sgd_step(const SgdOptions& options, HostTensor<T>& params, const HostTensor<T>& grads,
              OptimizerState<T>& state);

// ---- Adam (torch.optim.Adam) and AdamW (torch.optim.AdamW) ---------------------------------------------
// With t the step number counted from 1, m and v the first and second moments (slots 0 and 1) and v_max
// their running maximum (slot 2, amsgrad only), one step is, in this order:
//   g ← −g                                          if maximize
//   Adam:  g ← g + weight_decay · p                 if weight_decay ≠ 0 (L2 penalty in the gradient)
//   AdamW: p ← p · (1 − lr · weight_decay)          always (decoupled decay; a no-op for weight_decay 0)
//   m ← β1 · m + (1 − β1) · g
//   v ← β2 · v + (1 − β2) · g · g
//   bias_correction1 = 1 − β1^t,  bias_correction2 = 1 − β2^t
//   v_max ← max(v_max, v), and v ← v_max below     if amsgrad
//   denom = sqrt(v) / sqrt(bias_correction2) + eps  (eps outside the square root, after bias correction)
//   p ← p − (lr / bias_correction1) · m / denom
// The scalars (1 − β, bias corrections, lr / bias_correction1) are computed in double and rounded to T
// where they meet the arrays, as PyTorch does with its Python-float hyperparameters; a fused kernel
// should compute them the same way on the host and pass them in.
struct AdamOptions {
    double lr = 1e-3;
    double beta1 = 0.9;  // PyTorch's betas[0]
    double beta2 = 0.999;  // PyTorch's betas[1]
    double eps = 1e-8;
    double weight_decay = 0.0;
    bool amsgrad = false;
    bool maximize = false;
};

// The same fields as Adam; only the default weight decay differs (PyTorch's AdamW uses 1e-2).
struct AdamWOptions {
    double lr = 1e-3;
    double beta1 = 0.9;
    double beta2 = 0.999;
    double eps = 1e-8;
    double weight_decay = 1e-2;
    bool amsgrad = false;
    bool maximize = false;
};

constexpr int64_t kAdamExpAvg = 0;      // m
constexpr int64_t kAdamExpAvgSq = 1;    // v
constexpr int64_t kAdamMaxExpAvgSq = 2;  // v_max, amsgrad only

int64_t adam_state_slots(const AdamOptions& options);    // 2, or 3 with amsgrad
int64_t adamw_state_slots(const AdamWOptions& options);  // 2, or 3 with amsgrad

template <class T>
OptimizerState<T> adam_init_state(const AdamOptions& options, int64_t n);
template <class T>
OptimizerState<T> adamw_init_state(const AdamWOptions& options, int64_t n);

// One step each, as for sgd_step.
template <class T>
void adam_step(const AdamOptions& options, HostTensor<T>& params, const HostTensor<T>& grads,
               OptimizerState<T>& state);
template <class T>
void adamw_step(const AdamWOptions& options, HostTensor<T>& params, const HostTensor<T>& grads,
                OptimizerState<T>& state);

// The option checks that every init_state and step function above runs (Error naming the op and the value),
// for the other implementations of these steps, e.g. the fused GPU kernels in cuda/optimizer.hpp.
void check_options(const SgdOptions& options);
void check_options(const AdamOptions& options);
void check_options(const AdamWOptions& options);

}  // namespace cudacnn::cpu
