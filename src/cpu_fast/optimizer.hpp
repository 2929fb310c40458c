// The fast CPU path's SGD, Adam and AdamW steps over a flat parameter block, bit-identical to the reference
// (cpu::sgd_step / adam_step / adamw_step).
#pragma once

#include <cstdint>

#include "cudacnn/ops/optimizer.hpp"
#include "src/cpu_fast/workers.hpp"

namespace cudacnn::cpu_fast {

// Arrays as gpu::sgd_step & co. (cuda/optimizer.hpp), all float32, updated in place:
//   params (n)          the flat parameter block; read and written
//   grads  (n)          the flat gradient block; read only
//   state  (slots, n)   slot-major as cpu::OptimizerState (slot k of value i is state[k·n + i]); slots =
//                       cpu::sgd_state_slots / adam_state_slots / adamw_state_slots(options); may be nullptr
//                       when slots is 0 (plain SGD). A fresh state is all zeros.
// `step` is the optimizer steps taken so far (cpu::OptimizerState::step before the call); the caller counts
// the step itself. Options are validated with the reference's errors (cpu::check_options), n >= 1.
// Each value's update is the reference's own code (src/cpu/optimizer_rule.hpp: the same scalars rounded from
// double, the same float operations in the same order), so results are bit-identical to the reference's float
// instantiation; work items are fixed ranges of values.
void sgd_step(const cpu::SgdOptions& options, float* params, const float* grads, float* state, int64_t n,
              int64_t step, const Workers& workers);
void adam_step(const cpu::AdamOptions& options, float* params, const float* grads, float* state, int64_t n,
               int64_t step, const Workers& workers);
void adamw_step(const cpu::AdamWOptions& options, float* params, const float* grads, float* state, int64_t n,
                int64_t step, const Workers& workers);

}  // namespace cudacnn::cpu_fast
