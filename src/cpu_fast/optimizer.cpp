// The fast CPU path's optimizer steps: the reference's per-value rule (src/cpu/optimizer_rule.hpp) over fixed
// ranges of the flat block.
#include "src/cpu_fast/optimizer.hpp"

#include "cudacnn/error.hpp"
#include "src/cpu/optimizer_rule.hpp"
#include "src/cpu_fast/elementwise.hpp"

namespace cudacnn::cpu_fast {
namespace {

void check_arguments(const char* op, int64_t n, int64_t step, const float* state, int64_t slots) {
    CUDACNN_CHECK(n >= 1, "{}: parameter count {} must be at least 1", op, n);
    CUDACNN_CHECK(step >= 0, "{}: state step {} must be >= 0", op, step);
    CUDACNN_CHECK(slots == 0 || state != nullptr, "{}: these options need {} state slots but state is null", op,
                  slots);
}

template <class Options>
void adam_like_step(const char* op, bool decoupled, const Options& options, float* params, const float* grads,
                    float* state, int64_t n, int64_t step, const Workers& workers) {
    cpu::check_options(options);
    check_arguments(op, n, step, state, options.amsgrad ? 3 : 2);
    const cpu::detail::AdamRule<float> rule(options, decoupled, step + 1);
    float* m = state + cpu::kAdamExpAvg * n;
    float* v = state + cpu::kAdamExpAvgSq * n;
    float* v_max = options.amsgrad ? state + cpu::kAdamMaxExpAvgSq * n : nullptr;
    parallel_ranges(workers, n, kElementwiseGrain, [&](int64_t begin, int64_t end) {
        float unused = 0;  // v_max without amsgrad
        for (int64_t i = begin; i < end; ++i) {
            rule.apply(params[i], grads[i], m[i], v[i], v_max != nullptr ? v_max[i] : unused);
        }
    });
}

}  // namespace

void sgd_step(const cpu::SgdOptions& options, float* params, const float* grads, float* state, int64_t n,
              int64_t step, const Workers& workers) {
    cpu::check_options(options);
    check_arguments("sgd", n, step, state, cpu::sgd_state_slots(options));
    const cpu::detail::SgdRule<float> rule(options, step);
    float* buffer = options.momentum != 0.0 ? state + cpu::kSgdMomentumBuffer * n : nullptr;
    parallel_ranges(workers, n, kElementwiseGrain, [&](int64_t begin, int64_t end) {
        float unused = 0;  // the buffer without momentum
        for (int64_t i = begin; i < end; ++i) {
            rule.apply(params[i], grads[i], buffer != nullptr ? buffer[i] : unused);
        }
    });
}

void adam_step(const cpu::AdamOptions& options, float* params, const float* grads, float* state, int64_t n,
               int64_t step, const Workers& workers) {
    adam_like_step("adam", /*decoupled=*/false, options, params, grads, state, n, step, workers);
}

void adamw_step(const cpu::AdamWOptions& options, float* params, const float* grads, float* state, int64_t n,
                int64_t step, const Workers& workers) {
    adam_like_step("adamw", /*decoupled=*/true, options, params, grads, state, n, step, workers);
}

}  // namespace cudacnn::cpu_fast
