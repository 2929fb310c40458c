// CPU reference of the learning-rate schedules: closed forms of PyTorch's lr_scheduler sequences.
#include "cudacnn/ops/lr_schedule.hpp"

#include <cmath>

#include "cudacnn/error.hpp"

namespace cudacnn::cpu {
namespace {

constexpr double kPi = 3.14159265358979323846;  // Python's math.pi

void check_common(const char* op, double base_lr, int64_t step) {
    CUDACNN_CHECK(std::isfinite(base_lr) && base_lr >= 0.0, "{}: base_lr {} must be a finite number >= 0", op,
                  base_lr);
    CUDACNN_CHECK(step >= 0, "{}: step {} must be >= 0 (step 0 is the first optimizer step)", op, step);
}

void check_gamma(const char* op, double gamma) {
    CUDACNN_CHECK(std::isfinite(gamma) && gamma > 0.0, "{}: gamma {} must be a finite number > 0", op, gamma);
}

void check_one_cycle(const OneCycleLrOptions& o, int64_t step) {
    CUDACNN_CHECK(std::isfinite(o.max_lr) && o.max_lr > 0.0, "one_cycle: max_lr {} must be a finite number > 0",
                  o.max_lr);
    CUDACNN_CHECK(o.total_steps >= 1, "one_cycle: total_steps {} must be at least 1", o.total_steps);
    CUDACNN_CHECK(o.pct_start >= 0.0 && o.pct_start <= 1.0, "one_cycle: pct_start {} must be in [0, 1]",
                  o.pct_start);
    CUDACNN_CHECK(std::isfinite(o.div_factor) && o.div_factor > 0.0,
                  "one_cycle: div_factor {} must be a finite number > 0", o.div_factor);
    CUDACNN_CHECK(std::isfinite(o.final_div_factor) && o.final_div_factor > 0.0,
                  "one_cycle: final_div_factor {} must be a finite number > 0", o.final_div_factor);
    CUDACNN_CHECK(std::isfinite(o.base_momentum) && o.base_momentum >= 0.0,
                  "one_cycle: base_momentum {} must be a finite number >= 0", o.base_momentum);
    CUDACNN_CHECK(std::isfinite(o.max_momentum) && o.max_momentum >= 0.0,
                  "one_cycle: max_momentum {} must be a finite number >= 0", o.max_momentum);
    CUDACNN_CHECK(step >= 0 && step <= o.total_steps,
                  "one_cycle: step {} is outside [0, total_steps {}]; raise total_steps to cover the run", step,
                  o.total_steps);
}

// One phase of the cycle: it ends at end_step and anneals lr and momentum between the named endpoints.
struct Phase {
    double end_step;
    double start_lr, end_lr;
    double start_momentum, end_momentum;
};

double anneal(AnnealStrategy strategy, double start, double end, double pct) {
    if (strategy == AnnealStrategy::cos) return end + (start - end) / 2.0 * (std::cos(kPi * pct) + 1.0);
    return (end - start) * pct + start;
}

// PyTorch's OneCycleLR.get_lr, operation for operation (so the values are the same doubles): the first phase
// whose end_step is not before `step` (or the last phase) holds it.
void one_cycle_values(const OneCycleLrOptions& o, int64_t step, double& lr, double& momentum) {
    check_one_cycle(o, step);
    const double initial_lr = o.max_lr / o.div_factor;
    const double min_lr = initial_lr / o.final_div_factor;
    const double total = static_cast<double>(o.total_steps);
    Phase phases[3];
    int count = 0;
    if (o.three_phase) {
        phases[count++] = {o.pct_start * total - 1.0, initial_lr, o.max_lr, o.max_momentum, o.base_momentum};
        phases[count++] = {2.0 * o.pct_start * total - 2.0, o.max_lr, initial_lr, o.base_momentum,
                           o.max_momentum};
        phases[count++] = {total - 1.0, initial_lr, min_lr, o.max_momentum, o.max_momentum};
    } else {
        phases[count++] = {o.pct_start * total - 1.0, initial_lr, o.max_lr, o.max_momentum, o.base_momentum};
        phases[count++] = {total - 1.0, o.max_lr, min_lr, o.base_momentum, o.max_momentum};
    }
    const double s = static_cast<double>(step);
    double start_step = 0.0;
    for (int i = 0; i < count; ++i) {
        const Phase& phase = phases[i];
        if (s <= phase.end_step || i == count - 1) {
            CUDACNN_CHECK(phase.end_step != start_step,
                          "one_cycle: step {} falls in phase {} of zero length (pct_start {} with total_steps {}); "
                          "change pct_start or total_steps",
                          step, i + 1, o.pct_start, o.total_steps);
            const double pct = (s - start_step) / (phase.end_step - start_step);
            lr = anneal(o.anneal_strategy, phase.start_lr, phase.end_lr, pct);
            momentum = anneal(o.anneal_strategy, phase.start_momentum, phase.end_momentum, pct);
            return;
        }
        start_step = phase.end_step;
    }
}

}  // namespace

double constant_lr(double base_lr, const ConstantLrOptions& o, int64_t step) {
    check_common("constant_lr", base_lr, step);
    CUDACNN_CHECK(o.factor > 0.0 && o.factor <= 1.0, "constant_lr: factor {} must be in (0, 1]", o.factor);
    CUDACNN_CHECK(o.total_iters >= 1, "constant_lr: total_iters {} must be at least 1", o.total_iters);
    return step < o.total_iters ? base_lr * o.factor : base_lr;
}

double step_lr(double base_lr, const StepLrOptions& o, int64_t step) {
    check_common("step_lr", base_lr, step);
    CUDACNN_CHECK(o.step_size >= 1, "step_lr: step_size {} must be at least 1", o.step_size);
    check_gamma("step_lr", o.gamma);
    return base_lr * std::pow(o.gamma, static_cast<double>(step / o.step_size));
}

double multistep_lr(double base_lr, const MultiStepLrOptions& o, int64_t step) {
    check_common("multistep_lr", base_lr, step);
    check_gamma("multistep_lr", o.gamma);
    int64_t passed = 0;
    for (const int64_t milestone : o.milestones) {
        CUDACNN_CHECK(milestone >= 0, "multistep_lr: milestone {} must be >= 0", milestone);
        if (milestone <= step) ++passed;
    }
    return base_lr * std::pow(o.gamma, static_cast<double>(passed));
}

double cosine_lr(double base_lr, const CosineLrOptions& o, int64_t step) {
    check_common("cosine_lr", base_lr, step);
    CUDACNN_CHECK(o.t_max >= 1, "cosine_lr: t_max {} must be at least 1", o.t_max);
    CUDACNN_CHECK(std::isfinite(o.eta_min) && o.eta_min >= 0.0, "cosine_lr: eta_min {} must be a finite number >= 0",
                  o.eta_min);
    const double phase = kPi * static_cast<double>(step) / static_cast<double>(o.t_max);
    return o.eta_min + (base_lr - o.eta_min) * (1.0 + std::cos(phase)) / 2.0;
}

double one_cycle_lr(const OneCycleLrOptions& o, int64_t step) {
    double lr = 0.0, momentum = 0.0;
    one_cycle_values(o, step, lr, momentum);
    return lr;
}

double one_cycle_momentum(const OneCycleLrOptions& o, int64_t step) {
    CUDACNN_CHECK(o.cycle_momentum,
                  "one_cycle: cycle_momentum is off, so the schedule sets no momentum; use the optimizer's own");
    double lr = 0.0, momentum = 0.0;
    one_cycle_values(o, step, lr, momentum);
    return momentum;
}

const char* lr_schedule_name(LrScheduleKind kind) {
    switch (kind) {
        case LrScheduleKind::none: return "none";
        case LrScheduleKind::constant: return "constant";
        case LrScheduleKind::step: return "step";
        case LrScheduleKind::multistep: return "multistep";
        case LrScheduleKind::cosine: return "cosine";
        case LrScheduleKind::one_cycle: return "one_cycle";
    }
    return "unknown";
}

double scheduled_lr(const LrSchedule& schedule, double base_lr, int64_t step) {
    switch (schedule.kind) {
        case LrScheduleKind::none: check_common("lr schedule none", base_lr, step); return base_lr;
        case LrScheduleKind::constant: return constant_lr(base_lr, schedule.constant, step);
        case LrScheduleKind::step: return step_lr(base_lr, schedule.step, step);
        case LrScheduleKind::multistep: return multistep_lr(base_lr, schedule.multistep, step);
        case LrScheduleKind::cosine: return cosine_lr(base_lr, schedule.cosine, step);
        case LrScheduleKind::one_cycle: return one_cycle_lr(schedule.one_cycle, step);
    }
    CUDACNN_FAIL("lr schedule: unknown kind {}", static_cast<int>(schedule.kind));
}

}  // namespace cudacnn::cpu
