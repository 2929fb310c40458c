// CPU reference of the SGD, Adam and AdamW steps over a flat parameter block (formulas in optimizer.hpp).
#include "cudacnn/ops/optimizer.hpp"

#include <algorithm>
#include <cmath>

#include "cudacnn/error.hpp"
#include "src/cpu/optimizer_rule.hpp"

namespace cudacnn::cpu {

template <class T>
HostTensor<T> OptimizerState<T>::slot_tensor(int64_t k) const {
    CUDACNN_CHECK(k >= 0 && k < slots(), "optimizer state: slot {} does not exist; the state has {} slots", k,
                  slots());
    return HostTensor<T>(Shape{size()}, std::vector<T>(slot(k), slot(k) + size()));
}

namespace {

// A hyperparameter that must be a finite number >= 0 (NaN fails both tests).
void check_non_negative(const char* op, const char* name, double value) {
    CUDACNN_CHECK(std::isfinite(value) && value >= 0.0, "{}: {} {} must be a finite number >= 0", op, name,
                  value);
}

void check_beta(const char* op, const char* name, double value) {
    CUDACNN_CHECK(value >= 0.0 && value < 1.0, "{}: {} {} must be in [0, 1)", op, name, value);
}

template <class T>
OptimizerState<T> make_state(const char* op, int64_t slots, int64_t n) {
    CUDACNN_CHECK(n >= 1, "{}: parameter count {} must be at least 1", op, n);
    OptimizerState<T> state;
    state.values = HostTensor<T>(Shape{slots, n}, T(0));
    return state;
}

// What every step checks besides the options: matching element counts and a state made for them.
template <class T>
void check_step_arguments(const char* op, const HostTensor<T>& params, const HostTensor<T>& grads,
                          const OptimizerState<T>& state, int64_t slots) {
    const int64_t n = params.numel();
    CUDACNN_CHECK(n >= 1, "{}: parameter count {} must be at least 1", op, n);
    CUDACNN_CHECK(grads.numel() == n,
                  "{}: gradients have {} elements but parameters have {}; pass the gradient block that "
                  "matches the parameter block",
                  op, grads.numel(), n);
    CUDACNN_CHECK(state.values.shape() == Shape({slots, n}),
                  "{}: state has shape {} but these options and {} parameters need ({}, {}); make it with "
                  "{}_init_state",
                  op, state.values.shape(), n, slots, n, op);
    CUDACNN_CHECK(state.step >= 0, "{}: state step {} must be >= 0", op, state.step);
}

void check_sgd_options(const SgdOptions& o) {
    CUDACNN_CHECK(!std::isnan(o.lr),
                  "sgd: lr is not set; PyTorch's SGD has no default learning rate, so set options.lr (e.g. 0.01)");
    check_non_negative("sgd", "lr", o.lr);
    check_non_negative("sgd", "momentum", o.momentum);
    check_non_negative("sgd", "weight_decay", o.weight_decay);
    CUDACNN_CHECK(std::isfinite(o.dampening), "sgd: dampening {} must be a finite number", o.dampening);
    CUDACNN_CHECK(!o.nesterov || (o.momentum > 0.0 && o.dampening == 0.0),
                  "sgd: nesterov needs momentum > 0 and dampening 0, got momentum {} and dampening {}",
                  o.momentum, o.dampening);
}

// Adam and AdamW share every field; `op` names which one the caller is.
template <class Options>
void check_adam_options(const char* op, const Options& o) {
    check_non_negative(op, "lr", o.lr);
    check_non_negative(op, "eps", o.eps);
    check_beta(op, "beta1", o.beta1);
    check_beta(op, "beta2", o.beta2);
    check_non_negative(op, "weight_decay", o.weight_decay);
}

// The Adam step; `decoupled` selects AdamW's weight decay p ← p · (1 − lr · wd) instead of g ← g + wd · p.
template <class T, class Options>
void adam_like_step(const char* op, bool decoupled, const Options& o, HostTensor<T>& params,
                    const HostTensor<T>& grads, OptimizerState<T>& state) {
    check_adam_options(op, o);
    check_step_arguments(op, params, grads, state, o.amsgrad ? 3 : 2);
    const int64_t n = params.numel();
    T* p = params.data();
    const T* g_in = grads.data();
    T* m = state.slot(kAdamExpAvg);
    T* v = state.slot(kAdamExpAvgSq);
    T* v_max = o.amsgrad ? state.slot(kAdamMaxExpAvgSq) : nullptr;

    state.step += 1;
    const detail::AdamRule<T> rule(o, decoupled, state.step);
    T unused = 0;  // v_max without amsgrad
    for (int64_t i = 0; i < n; ++i) rule.apply(p[i], g_in[i], m[i], v[i], o.amsgrad ? v_max[i] : unused);
}

}  // namespace

void check_options(const SgdOptions& options) { check_sgd_options(options); }
void check_options(const AdamOptions& options) { check_adam_options("adam", options); }
void check_options(const AdamWOptions& options) { check_adam_options("adamw", options); }

int64_t sgd_state_slots(const SgdOptions& options) { return options.momentum != 0.0 ? 1 : 0; }
int64_t adam_state_slots(const AdamOptions& options) { return options.amsgrad ? 3 : 2; }
int64_t adamw_state_slots(const AdamWOptions& options) { return options.amsgrad ? 3 : 2; }

template <class T>
OptimizerState<T> sgd_init_state(const SgdOptions& options, int64_t n) {
    check_sgd_options(options);
    return make_state<T>("sgd", sgd_state_slots(options), n);
}

template <class T>
void sgd_step(const SgdOptions& o, HostTensor<T>& params, const HostTensor<T>& grads, OptimizerState<T>& state) {
    check_sgd_options(o);
    check_step_arguments("sgd", params, grads, state, sgd_state_slots(o));
    const int64_t n = params.numel();
    T* p = params.data();
    const T* g_in = grads.data();
    T* buffer = o.momentum != 0.0 ? state.slot(kSgdMomentumBuffer) : nullptr;
    const detail::SgdRule<T> rule(o, state.step);
    T unused = 0;  // the buffer without momentum
    for (int64_t i = 0; i < n; ++i) rule.apply(p[i], g_in[i], buffer != nullptr ? buffer[i] : unused);
    state.step += 1;
}

template <class T>
OptimizerState<T> adam_init_state(const AdamOptions& options, int64_t n) {
    check_adam_options("adam", options);
    return make_state<T>("adam", adam_state_slots(options), n);
}

template <class T>
OptimizerState<T> adamw_init_state(const AdamWOptions& options, int64_t n) {
    check_adam_options("adamw", options);
    return make_state<T>("adamw", adamw_state_slots(options), n);
}

template <class T>
void adam_step(const AdamOptions& options, HostTensor<T>& params, const HostTensor<T>& grads,
               OptimizerState<T>& state) {
    adam_like_step("adam", /*decoupled=*/false, options, params, grads, state);
}

template <class T>
void adamw_step(const AdamWOptions& options, HostTensor<T>& params, const HostTensor<T>& grads,
                OptimizerState<T>& state) {
    adam_like_step("adamw", /*decoupled=*/true, options, params, grads, state);
}

#define CUDACNN_INSTANTIATE_OPTIMIZERS(T)                                                                   \
    template struct OptimizerState<T>;                                                                      \
    template OptimizerState<T> sgd_init_state<T>(const SgdOptions&, int64_t);                               \
    template void sgd_step<T>(const SgdOptions&, HostTensor<T>&, const HostTensor<T>&, OptimizerState<T>&); \
    template OptimizerState<T> adam_init_state<T>(const AdamOptions&, int64_t);                             \
    template OptimizerState<T> adamw_init_state<T>(const AdamWOptions&, int64_t);                           \
    template void adam_step<T>(const AdamOptions&, HostTensor<T>&, const HostTensor<T>&, OptimizerState<T>&); \
    template void adamw_step<T>(const AdamWOptions&, HostTensor<T>&, const HostTensor<T>&, OptimizerState<T>&);

CUDACNN_INSTANTIATE_OPTIMIZERS(float)
CUDACNN_INSTANTIATE_OPTIMIZERS(double)

}  // namespace cudacnn::cpu
