// Tests of the learning-rate schedules: hand-computed values, PyTorch's sequences step by step, bad arguments.
// Schedules are not differentiated, so there is no gradient check (test tier 2 does not apply).
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "cudacnn/ops/lr_schedule.hpp"
#include "support/compare.hpp"

using namespace cudacnn;
using namespace cudacnn::cpu;
using Catch::Matchers::Contains;

namespace {

// Every value of the sequence must match PyTorch's to 1e-12 relative to itself (not to the largest lr, so
// that the small lrs at the end of a decay count as much as the large ones). PyTorch computes step, multistep,
// constant and cosine recursively from the previous lr, each step adding ~1e-16 of relative rounding that the
// closed forms here do not share; measured worst 4.7e-15 (cosine over 45 steps), so 1e-12 has a margin of 200.
// One-cycle does PyTorch's operations in PyTorch's order and agrees exactly (measured), but is held only to
// the same tolerance, since a compiler may contract a multiply-add. The absolute floor 1e-18 · base_lr covers
// exact zeros (cosine at T_max with eta_min 0), where a recursion may leave a rounding residue.
constexpr double kScheduleTolerance = 1e-12;

void check_sequence(const std::string& name, const std::vector<double>& actual, const HostTensor<double>& expected,
                    double base_lr) {
    REQUIRE(static_cast<int64_t>(actual.size()) == expected.numel());
    for (size_t k = 0; k < actual.size(); ++k) {
        INFO(name << " step " << k << ": ours " << actual[k] << ", PyTorch " << expected[int64_t(k)]);
        const double b = expected[int64_t(k)];
        CHECK(std::fabs(actual[k] - b) <= kScheduleTolerance * std::fabs(b) + 1e-18 * base_lr);
    }
}

template <class Fn>
std::vector<double> sequence(int64_t steps, Fn lr_at) {
    std::vector<double> values;
    for (int64_t k = 0; k < steps; ++k) values.push_back(lr_at(k));
    return values;
}

}  // namespace

// ---- hand-computed values ---------------------------------------------------------------------------------

TEST_CASE("constant_lr scales by factor until total_iters", "[lr_schedule]") {
    ConstantLrOptions o;  // PyTorch's defaults: factor 1/3 for 5 steps
    CHECK(constant_lr(0.3, o, 0) == Approx(0.1).epsilon(1e-15));
    CHECK(constant_lr(0.3, o, 4) == Approx(0.1).epsilon(1e-15));
    CHECK(constant_lr(0.3, o, 5) == 0.3);
    CHECK(constant_lr(0.3, o, 1000) == 0.3);
    LrSchedule none;
    CHECK(scheduled_lr(none, 0.25, 17) == 0.25);
}

TEST_CASE("step_lr multiplies by gamma every step_size steps", "[lr_schedule]") {
    StepLrOptions o;
    o.step_size = 3;
    o.gamma = 0.1;
    CHECK(step_lr(0.1, o, 0) == 0.1);
    CHECK(step_lr(0.1, o, 2) == 0.1);
    CHECK(step_lr(0.1, o, 3) == Approx(0.01).epsilon(1e-15));
    CHECK(step_lr(0.1, o, 5) == Approx(0.01).epsilon(1e-15));
    CHECK(step_lr(0.1, o, 6) == Approx(0.001).epsilon(1e-15));
}

TEST_CASE("multistep_lr counts the milestones passed, repeats included", "[lr_schedule]") {
    MultiStepLrOptions o;
    o.milestones = {6, 2, 6};
    o.gamma = 0.5;
    CHECK(multistep_lr(1.0, o, 1) == 1.0);
    CHECK(multistep_lr(1.0, o, 2) == 0.5);
    CHECK(multistep_lr(1.0, o, 5) == 0.5);
    CHECK(multistep_lr(1.0, o, 6) == 0.125);  // two milestones at 6: gamma twice
    CHECK(multistep_lr(1.0, MultiStepLrOptions{}, 100) == 1.0);
}

TEST_CASE("cosine_lr: base at 0, midpoint at T_max / 2, eta_min at T_max, back up after", "[lr_schedule]") {
    CosineLrOptions o;
    o.t_max = 10;
    o.eta_min = 0.001;
    CHECK(cosine_lr(0.1, o, 0) == Approx(0.1).epsilon(1e-15));
    CHECK(cosine_lr(0.1, o, 5) == Approx(0.0505).epsilon(1e-14));
    CHECK(cosine_lr(0.1, o, 10) == Approx(0.001).epsilon(1e-14));
    CHECK(cosine_lr(0.1, o, 15) == Approx(0.0505).epsilon(1e-14));
    CHECK(cosine_lr(0.1, o, 20) == Approx(0.1).epsilon(1e-14));
}

TEST_CASE("one_cycle: warm-up from max_lr / div_factor to max_lr, then down to the minimum", "[lr_schedule]") {
    OneCycleLrOptions o;
    o.max_lr = 0.1;
    o.total_steps = 100;  // pct_start 0.3: the peak is at step 29
    CHECK(one_cycle_lr(o, 0) == Approx(0.1 / 25).epsilon(1e-15));
    CHECK(one_cycle_lr(o, 29) == Approx(0.1).epsilon(1e-15));
    CHECK(one_cycle_lr(o, 99) == Approx(0.1 / 25 / 1e4).epsilon(1e-12));
    CHECK(one_cycle_momentum(o, 0) == Approx(0.95).epsilon(1e-15));
    CHECK(one_cycle_momentum(o, 29) == Approx(0.85).epsilon(1e-15));
    CHECK(one_cycle_momentum(o, 99) == Approx(0.95).epsilon(1e-15));
    // Halfway through the warm-up (step 14.5 of 29) the cos anneal is at the mean of its ends.
    o.total_steps = 10;
    o.pct_start = 0.5;  // warm-up phase [0, 4]: step 2 is its middle
    CHECK(one_cycle_lr(o, 2) == Approx((0.004 + 0.1) / 2).epsilon(1e-14));
    o.anneal_strategy = AnnealStrategy::linear;
    CHECK(one_cycle_lr(o, 1) == Approx(0.004 + (0.1 - 0.004) / 4).epsilon(1e-14));
    // Three phases: up over [0, 4], down to initial_lr over [4, 8], then to the minimum at step 9.
    o.total_steps = 10;
    o.pct_start = 0.5;
    o.three_phase = true;
    CHECK(one_cycle_lr(o, 4) == Approx(0.1).epsilon(1e-15));
    CHECK(one_cycle_lr(o, 8) == Approx(0.004).epsilon(1e-15));
    CHECK(one_cycle_lr(o, 9) == Approx(0.004 / 1e4).epsilon(1e-12));
    CHECK(one_cycle_momentum(o, 9) == Approx(0.95).epsilon(1e-15));
}

TEST_CASE("scheduled_lr dispatches on the kind", "[lr_schedule]") {
    LrSchedule s;
    s.kind = LrScheduleKind::step;
    s.step.step_size = 2;
    CHECK(scheduled_lr(s, 1.0, 3) == Approx(0.1).epsilon(1e-15));
    s.kind = LrScheduleKind::cosine;
    s.cosine.t_max = 4;
    CHECK(scheduled_lr(s, 1.0, 4) == Approx(0.0).margin(1e-16));
    s.kind = LrScheduleKind::one_cycle;
    s.one_cycle.max_lr = 1.0;
    s.one_cycle.total_steps = 10;
    CHECK(scheduled_lr(s, 123.0, 0) == Approx(0.04).epsilon(1e-15));  // one-cycle ignores the base lr
    CHECK(std::string(lr_schedule_name(LrScheduleKind::multistep)) == "multistep");
}

// ---- PyTorch's sequences (tools/fixtures/optim.py, optim_lr_schedule.safetensors) --------------------------

TEST_CASE("schedules match torch.optim.lr_scheduler step by step", "[lr_schedule][fixture]") {
    const SafetensorsFile fixture = test::load_fixture("optim_lr_schedule");
    const auto stored = [&](const std::string& name) { return fixture.get<double>(name + ".options").values(); };
    const auto expected = [&](const std::string& name) { return fixture.get<double>(name + ".lr"); };

    SECTION("ConstantLR") {
        struct Case {
            std::string name;
            double base_lr;
            ConstantLrOptions options;
        };
        for (const Case& c : {Case{"constant_default", 0.1, ConstantLrOptions{}}, Case{"constant_half", 0.05, {0.5, 3}}}) {
            REQUIRE(stored(c.name) == std::vector<double>{c.base_lr, c.options.factor, double(c.options.total_iters)});
            const auto want = expected(c.name);
            check_sequence(c.name, sequence(want.numel(), [&](int64_t k) { return constant_lr(c.base_lr, c.options, k); }),
                           want, c.base_lr);
        }
    }
    SECTION("StepLR") {
        struct Case {
            std::string name;
            double base_lr;
            StepLrOptions options;
        };
        for (const Case& c : {Case{"step", 0.1, {3, 0.5}}, Case{"step_every", 0.01, {1, 0.9}}}) {
            REQUIRE(stored(c.name) == std::vector<double>{c.base_lr, double(c.options.step_size), c.options.gamma});
            const auto want = expected(c.name);
            check_sequence(c.name, sequence(want.numel(), [&](int64_t k) { return step_lr(c.base_lr, c.options, k); }),
                           want, c.base_lr);
        }
    }
    SECTION("MultiStepLR") {
        struct Case {
            std::string name;
            double base_lr;
            MultiStepLrOptions options;
        };
        // Unsorted and repeated milestones on purpose; a milestone at 0 applies from the first step.
        for (const Case& c : {Case{"multistep", 0.2, {{8, 2, 5, 5}, 0.3}}, Case{"multistep_zero", 1.0, {{0, 4}, 0.1}}}) {
            REQUIRE(stored(c.name) == std::vector<double>{c.base_lr, c.options.gamma});
            REQUIRE(fixture.get<int64_t>(c.name + ".milestones").values() == c.options.milestones);
            const auto want = expected(c.name);
            check_sequence(c.name,
                           sequence(want.numel(), [&](int64_t k) { return multistep_lr(c.base_lr, c.options, k); }),
                           want, c.base_lr);
        }
    }
    SECTION("CosineAnnealingLR, past T_max") {
        struct Case {
            std::string name;
            double base_lr;
            CosineLrOptions options;
        };
        for (const Case& c : {Case{"cosine", 0.1, {10, 1e-4}}, Case{"cosine_zero_min", 1e-3, {7, 0.0}}}) {
            REQUIRE(stored(c.name) == std::vector<double>{c.base_lr, double(c.options.t_max), c.options.eta_min});
            const auto want = expected(c.name);
            REQUIRE(want.numel() > 2 * c.options.t_max);
            check_sequence(c.name, sequence(want.numel(), [&](int64_t k) { return cosine_lr(c.base_lr, c.options, k); }),
                           want, c.base_lr);
        }
    }
    SECTION("OneCycleLR, lr and momentum, steps 0..total_steps") {
        struct Case {
            std::string name;
            OneCycleLrOptions options;
        };
        const auto make = [](double max_lr, int64_t total, double pct, AnnealStrategy anneal, double div,
                             double final_div, bool three, double base_m, double max_m) {
            OneCycleLrOptions o;
            o.max_lr = max_lr;
            o.total_steps = total;
            o.pct_start = pct;
            o.anneal_strategy = anneal;
            o.div_factor = div;
            o.final_div_factor = final_div;
            o.three_phase = three;
            o.base_momentum = base_m;
            o.max_momentum = max_m;
            return o;
        };
        const auto cos_anneal = AnnealStrategy::cos, linear = AnnealStrategy::linear;
        const std::vector<Case> cases = {
            {"one_cycle_default", make(0.1, 25, 0.3, cos_anneal, 25.0, 1e4, false, 0.85, 0.95)},
            {"one_cycle_linear", make(0.05, 20, 0.25, linear, 10.0, 100.0, false, 0.85, 0.95)},
            {"one_cycle_three_phase", make(0.2, 30, 0.3, cos_anneal, 25.0, 1e4, true, 0.85, 0.95)},
            {"one_cycle_three_phase_linear", make(0.2, 17, 0.4, linear, 25.0, 1e4, true, 0.85, 0.95)},
            {"one_cycle_no_warmup", make(1.0, 10, 0.05, cos_anneal, 25.0, 1e4, false, 0.85, 0.95)},
            {"one_cycle_adam", make(3e-3, 15, 0.3, cos_anneal, 25.0, 1e4, false, 0.8, 0.9)},  // momentum is beta1
        };
        for (const Case& c : cases) {
            const std::string& name = c.name;
            const OneCycleLrOptions& o = c.options;
            const std::vector<double> options = {o.max_lr,
                                                 double(o.total_steps),
                                                 o.pct_start,
                                                 o.anneal_strategy == cos_anneal ? 0.0 : 1.0,
                                                 o.div_factor,
                                                 o.final_div_factor,
                                                 double(o.three_phase),
                                                 o.base_momentum,
                                                 o.max_momentum};
            const std::vector<double> stored_options = stored(name);
            REQUIRE(std::vector<double>(stored_options.begin() + 1, stored_options.end()) == options);
            const auto want = expected(name);
            REQUIRE(want.numel() == o.total_steps + 1);
            check_sequence(name, sequence(want.numel(), [&](int64_t k) { return one_cycle_lr(o, k); }), want,
                           o.max_lr);
            check_sequence(name + " momentum",
                           sequence(want.numel(), [&](int64_t k) { return one_cycle_momentum(o, k); }),
                           fixture.get<double>(name + ".momentum"), o.max_momentum);
        }
        const OneCycleLrOptions defaults;
        CHECK(defaults.pct_start == 0.3);
        CHECK(defaults.div_factor == 25.0);
        CHECK(defaults.final_div_factor == 1e4);
    }
}

// ---- bad arguments -----------------------------------------------------------------------------------------

TEST_CASE("schedules reject bad options and steps", "[lr_schedule][errors]") {
    REQUIRE_THROWS_WITH(constant_lr(-0.1, ConstantLrOptions{}, 0), Contains("constant_lr: base_lr -0.1 must be"));
    REQUIRE_THROWS_WITH(constant_lr(0.1, ConstantLrOptions{}, -1), Contains("constant_lr: step -1 must be >= 0"));
    REQUIRE_THROWS_WITH(constant_lr(0.1, ConstantLrOptions{1.5, 5}, 0),
                        Contains("constant_lr: factor 1.5 must be in (0, 1]"));
    REQUIRE_THROWS_WITH(constant_lr(0.1, ConstantLrOptions{0.5, 0}, 0),
                        Contains("constant_lr: total_iters 0 must be at least 1"));

    REQUIRE_THROWS_WITH(step_lr(0.1, StepLrOptions{}, 0), Contains("step_lr: step_size 0 must be at least 1"));
    REQUIRE_THROWS_WITH(step_lr(0.1, StepLrOptions{2, -0.5}, 0), Contains("step_lr: gamma -0.5 must be"));

    MultiStepLrOptions m;
    m.milestones = {3, -2};
    REQUIRE_THROWS_WITH(multistep_lr(0.1, m, 0), Contains("multistep_lr: milestone -2 must be >= 0"));
    m.milestones = {3};
    m.gamma = 0.0;
    REQUIRE_THROWS_WITH(multistep_lr(0.1, m, 0), Contains("multistep_lr: gamma 0 must be"));

    REQUIRE_THROWS_WITH(cosine_lr(0.1, CosineLrOptions{}, 0), Contains("cosine_lr: t_max 0 must be at least 1"));
    REQUIRE_THROWS_WITH(cosine_lr(0.1, CosineLrOptions{5, -1e-3}, 0), Contains("cosine_lr: eta_min -0.001 must be"));

    OneCycleLrOptions o;
    o.total_steps = 10;
    REQUIRE_THROWS_WITH(one_cycle_lr(o, 0), Contains("one_cycle: max_lr 0 must be"));
    o.max_lr = 0.1;
    o.total_steps = 0;
    REQUIRE_THROWS_WITH(one_cycle_lr(o, 0), Contains("one_cycle: total_steps 0 must be at least 1"));
    o.total_steps = 10;
    REQUIRE_THROWS_WITH(one_cycle_lr(o, 11), Contains("one_cycle: step 11 is outside [0, total_steps 10]"));
    REQUIRE_NOTHROW(one_cycle_lr(o, 10));  // PyTorch allows the step after the last one
    o.pct_start = 1.2;
    REQUIRE_THROWS_WITH(one_cycle_lr(o, 0), Contains("one_cycle: pct_start 1.2 must be in [0, 1]"));
    o.pct_start = 0.1;  // the warm-up phase ends at 0.1 · 10 − 1 = 0: zero length, and step 0 falls in it
    REQUIRE_THROWS_WITH(one_cycle_lr(o, 0), Contains("one_cycle: step 0 falls in phase 1 of zero length"));
    o.pct_start = 0.3;
    o.div_factor = 0.0;
    REQUIRE_THROWS_WITH(one_cycle_lr(o, 0), Contains("one_cycle: div_factor 0 must be"));
    o.div_factor = 25.0;
    o.final_div_factor = -1.0;
    REQUIRE_THROWS_WITH(one_cycle_lr(o, 0), Contains("one_cycle: final_div_factor -1 must be"));
    o.final_div_factor = 1e4;
    o.cycle_momentum = false;
    REQUIRE_THROWS_WITH(one_cycle_momentum(o, 0), Contains("one_cycle: cycle_momentum is off"));
}
