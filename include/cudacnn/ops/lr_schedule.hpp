// Learning-rate schedules as pure functions of the step, giving PyTorch's torch.optim.lr_scheduler values.
#pragma once

#include <cstdint>
#include <vector>

namespace cudacnn::cpu {

// Every function returns the learning rate that PyTorch's scheduler has put into the optimizer after
// `step` calls of scheduler.step(), i.e. the lr of optimizer step number `step` (counted from 0) when the
// scheduler steps once per optimizer step — or of epoch `step` when it steps once per epoch.
//
// PyTorch computes most of these recursively (lr ← lr · gamma at each boundary, a ratio of cosines from one
// step to the next); the closed forms here equal those sequences up to rounding: the fixture tests compare
// them step by step with a relative error below 1e-12 (one-cycle is computed exactly as PyTorch does).
// They throw Error naming the schedule and the value for invalid options, a negative step, or base_lr < 0.

// ConstantLR: base_lr · factor for steps < total_iters, then base_lr. (Without any scheduler the lr is
// simply base_lr at every step: LrScheduleKind::none below.)
struct ConstantLrOptions {
    double factor = 1.0 / 3.0;  // in (0, 1]; PyTorch divides by it when the phase ends
    int64_t total_iters = 5;    // >= 1
};
double constant_lr(double base_lr, const ConstantLrOptions& options, int64_t step);

// StepLR: base_lr · gamma^floor(step / step_size).
struct StepLrOptions {
    int64_t step_size = 0;  // required (PyTorch has no default): >= 1
    double gamma = 0.1;     // > 0
};
double step_lr(double base_lr, const StepLrOptions& options, int64_t step);

// MultiStepLR: base_lr · gamma^(number of milestones <= step). Milestones may come in any order and may
// repeat; a repeated milestone applies gamma once per repeat, as PyTorch's Counter does.
struct MultiStepLrOptions {
    std::vector<int64_t> milestones;  // each >= 0
    double gamma = 0.1;               // > 0
};
double multistep_lr(double base_lr, const MultiStepLrOptions& options, int64_t step);

// CosineAnnealingLR (closed form): eta_min + (base_lr − eta_min) · (1 + cos(π · step / T_max)) / 2.
// Past T_max it climbs back towards base_lr (period 2 T_max), as PyTorch's does.
struct CosineLrOptions {
    int64_t t_max = 0;     // PyTorch's T_max; required: >= 1
    double eta_min = 0.0;  // >= 0
};
double cosine_lr(double base_lr, const CosineLrOptions& options, int64_t step);

// OneCycleLR (Smith & Topin's 1cycle). The optimizer's own lr is ignored (PyTorch overwrites it):
//   initial_lr = max_lr / div_factor,  min_lr = initial_lr / final_div_factor
//   two phases (default): initial_lr → max_lr over steps [0, pct_start·total_steps − 1] (the warm-up),
//                         then max_lr → min_lr until step total_steps − 1
//   three_phase:          initial_lr → max_lr → initial_lr (each pct_start·total_steps − 1 steps long),
//                         then initial_lr → min_lr until step total_steps − 1
// Within a phase from step a to step b, pct = (step − a) / (b − a) and the lr anneals from start to end:
//   cos:    end + (start − end) / 2 · (cos(π · pct) + 1)
//   linear: (end − start) · pct + start
// The phase boundaries are real numbers, as in PyTorch: when pct_start · total_steps < 1 there is no warm-up
// step at all. Steps 0..total_steps are valid (PyTorch allows one scheduler.step() after the last step,
// extrapolating the last phase); a phase of zero length that a step falls in is an error (PyTorch divides
// by zero there). When cycle_momentum is set, the momentum (SGD's momentum, Adam's beta1) follows the
// opposite path, max_momentum → base_momentum → max_momentum (three phases: … → max_momentum), with the
// same pct and annealing.
enum class AnnealStrategy { cos, linear };

struct OneCycleLrOptions {
    double max_lr = 0.0;       // required: > 0
    int64_t total_steps = 0;   // required: >= 1 (PyTorch's epochs · steps_per_epoch form: multiply them)
    double pct_start = 0.3;    // in [0, 1]
    AnnealStrategy anneal_strategy = AnnealStrategy::cos;
    bool cycle_momentum = true;
    double base_momentum = 0.85;  // >= 0
    double max_momentum = 0.95;   // >= 0
    double div_factor = 25.0;        // > 0
    double final_div_factor = 1e4;   // > 0
    bool three_phase = false;
};
double one_cycle_lr(const OneCycleLrOptions& options, int64_t step);
// The momentum at `step`; throws Error when cycle_momentum is off (the optimizer's own momentum applies).
double one_cycle_momentum(const OneCycleLrOptions& options, int64_t step);

// A schedule picked at run time (from flags or a config file), for the trainer.
enum class LrScheduleKind { none, constant, step, multistep, cosine, one_cycle };

struct LrSchedule {
    LrScheduleKind kind = LrScheduleKind::none;  // none: base_lr at every step
    ConstantLrOptions constant;
    StepLrOptions step;
    MultiStepLrOptions multistep;
    CosineLrOptions cosine;
    OneCycleLrOptions one_cycle;
};

const char* lr_schedule_name(LrScheduleKind kind);  // "none", "constant", "step", "multistep", "cosine", "one_cycle"
double scheduled_lr(const LrSchedule& schedule, double base_lr, int64_t step);

}  // namespace cudacnn::cpu
