// Tests of the SGD, Adam and AdamW reference steps: hand-computed steps, PyTorch fixtures, bad arguments.
// Optimizers have no backward pass, so test tier 2 (finite-difference gradient checks) does not apply here;
// the fixtures check every state slot after every step instead.
#include <catch2/catch.hpp>

#include <cmath>
#include <string>
#include <vector>

#include "cudacnn/ops/optimizer.hpp"
#include "support/compare.hpp"

using namespace cudacnn;
using namespace cudacnn::cpu;
using Catch::Matchers::Contains;

namespace {

template <class T>
HostTensor<T> flat(std::vector<T> values) {
    const auto n = static_cast<int64_t>(values.size());
    return HostTensor<T>(Shape{n}, std::move(values));
}

// Row k of an (S, N) fixture tensor as an (N) tensor.
template <class T>
HostTensor<T> row(const HostTensor<T>& t, int64_t k) {
    const int64_t n = t.dim(1);
    return HostTensor<T>(Shape{n}, std::vector<T>(t.data() + k * n, t.data() + (k + 1) * n));
}

// Tolerances for the fixtures, as max_relative_error per tensor (‖a − b‖∞ / ‖b‖∞), for params and every state
// slot after every step:
// - double: the reference does PyTorch's operations in PyTorch's order; only fused multiply-adds in PyTorch's
//   vectorized kernels may round differently, ~1e-16 per operation. Measured worst: 2.1e-16. 1e-14 leaves a
//   margin of 50 and still catches any formula or ordering difference (those show at 1e-8 or more).
// - float: measured worst 1.4e-7 (one or two float roundings of the largest value). 1e-6, tighter than the
//   issue's default 1e-5, leaves a margin of 7 for other compilers and FMA contraction.
constexpr double kDoubleTolerance = 1e-14;
constexpr double kFloatTolerance = 1e-6;

// The hyperparameters stored with each fixture config, so that a change on one side cannot go unnoticed.
std::vector<double> options_vector(const SgdOptions& o) {
    return {o.momentum, o.dampening, o.weight_decay, double(o.nesterov), double(o.maximize)};
}
template <class Options>
std::vector<double> options_vector(const Options& o) {
    return {o.beta1, o.beta2, o.eps, o.weight_decay, double(o.amsgrad), double(o.maximize)};
}

template <class Options>
struct FixtureConfig {
    std::string name;
    Options options;  // lr comes from the fixture's per-step lr
    std::vector<std::string> slots;
};

template <class T, class Options, class InitFn, class StepFn>
void check_fixture(const std::string& file, const FixtureConfig<Options>& config, InitFn init, StepFn step) {
    const SafetensorsFile fixture = test::load_fixture(file);
    const std::string tag = std::is_same<T, double>::value ? "f64" : "f32";
    const double tolerance = std::is_same<T, double>::value ? kDoubleTolerance : kFloatTolerance;
    INFO(file << " " << config.name << " " << tag);

    const std::vector<double> stored = fixture.get<double>(config.name + ".options").values();
    REQUIRE(stored == options_vector(config.options));

    HostTensor<T> params = fixture.get<T>(tag + ".param0");
    const HostTensor<T> grads = fixture.get<T>(tag + ".grads");  // (S, N)
    const HostTensor<double> lrs = fixture.get<double>(config.name + ".lr");
    const HostTensor<T> expected_params = fixture.get<T>(config.name + "." + tag + ".param");
    const int64_t steps = grads.dim(0);
    REQUIRE(lrs.numel() == steps);

    Options options = config.options;
    options.lr = lrs[0];
    OptimizerState<T> state = init(options, params.numel());
    REQUIRE(state.slots() == static_cast<int64_t>(config.slots.size()));
    for (int64_t k = 0; k < steps; ++k) {
        INFO("step " << k);
        options.lr = lrs[k];  // what a scheduler does to PyTorch's param group between steps
        step(options, params, row(grads, k), state);
        CHECK(state.step == k + 1);
        const double param_error = test::max_relative_error(params, row(expected_params, k));
        INFO("param error " << param_error);
        CHECK(param_error <= tolerance);
        for (size_t s = 0; s < config.slots.size(); ++s) {
            const HostTensor<T> expected = row(fixture.get<T>(config.name + "." + tag + "." + config.slots[s]), k);
            const double error = test::max_relative_error(state.slot_tensor(static_cast<int64_t>(s)), expected);
            INFO(config.slots[s] << " error " << error);
            CHECK(error <= tolerance);
        }
    }
}

SgdOptions sgd(double momentum, double dampening, double weight_decay, bool nesterov, bool maximize) {
    SgdOptions o;
    o.momentum = momentum;
    o.dampening = dampening;
    o.weight_decay = weight_decay;
    o.nesterov = nesterov;
    o.maximize = maximize;
    return o;
}

template <class Options>
Options adam(double beta1, double beta2, double eps, double weight_decay, bool amsgrad, bool maximize) {
    Options o;
    o.beta1 = beta1;
    o.beta2 = beta2;
    o.eps = eps;
    o.weight_decay = weight_decay;
    o.amsgrad = amsgrad;
    o.maximize = maximize;
    return o;
}

const std::vector<std::string> kAdamSlots = {"exp_avg", "exp_avg_sq"};
const std::vector<std::string> kAmsgradSlots = {"exp_avg", "exp_avg_sq", "max_exp_avg_sq"};

}  // namespace

// ---- hand-computed cases --------------------------------------------------------------------------------

TEST_CASE("sgd: plain step is p - lr * g", "[optimizer][sgd]") {
    SgdOptions o;
    o.lr = 0.1;
    auto p = flat<double>({1.0, -2.0});
    auto state = sgd_init_state<double>(o, 2);
    CHECK(state.slots() == 0);
    sgd_step(o, p, flat<double>({0.5, 0.25}), state);
    CHECK(p[0] == Approx(0.95).epsilon(1e-15));
    CHECK(p[1] == Approx(-2.025).epsilon(1e-15));
    CHECK(state.step == 1);
}

TEST_CASE("sgd: momentum buffer starts as the gradient, then dampens; weight decay joins the gradient",
          "[optimizer][sgd]") {
    SgdOptions o;
    o.lr = 0.1;
    o.momentum = 0.9;
    o.dampening = 0.5;
    o.weight_decay = 0.1;
    auto p = flat<double>({1.0});
    auto state = sgd_init_state<double>(o, 1);
    // Step 1: g = 0.5 + 0.1 · 1 = 0.6; b = 0.6 (no dampening on the first step); p = 1 − 0.06 = 0.94.
    sgd_step(o, p, flat<double>({0.5}), state);
    CHECK(state.slot(kSgdMomentumBuffer)[0] == Approx(0.6).epsilon(1e-15));
    CHECK(p[0] == Approx(0.94).epsilon(1e-15));
    // Step 2: g = 0.5 + 0.094 = 0.594; b = 0.9 · 0.6 + 0.5 · 0.594 = 0.837; p = 0.94 − 0.0837 = 0.8563.
    sgd_step(o, p, flat<double>({0.5}), state);
    CHECK(state.slot(kSgdMomentumBuffer)[0] == Approx(0.837).epsilon(1e-15));
    CHECK(p[0] == Approx(0.8563).epsilon(1e-15));
}

TEST_CASE("sgd: nesterov steps along g + momentum * b", "[optimizer][sgd]") {
    SgdOptions o;
    o.lr = 0.1;
    o.momentum = 0.9;
    o.nesterov = true;
    auto p = flat<double>({1.0});
    auto state = sgd_init_state<double>(o, 1);
    // Step 1: b = 0.5; d = 0.5 + 0.45 = 0.95; p = 0.905. Step 2: b = 0.45 + 0.5 = 0.95; d = 0.5 + 0.855 = 1.355.
    sgd_step(o, p, flat<double>({0.5}), state);
    CHECK(p[0] == Approx(0.905).epsilon(1e-15));
    sgd_step(o, p, flat<double>({0.5}), state);
    CHECK(p[0] == Approx(0.7695).epsilon(1e-15));
}

TEST_CASE("sgd: maximize ascends", "[optimizer][sgd]") {
    SgdOptions o;
    o.lr = 0.1;
    o.maximize = true;
    auto p = flat<float>({1.0f});
    auto state = sgd_init_state<float>(o, 1);
    sgd_step(o, p, flat<float>({0.5f}), state);
    CHECK(p[0] == Approx(1.05f).epsilon(1e-7));
}

TEST_CASE("adam: the first step moves every parameter by lr * g / (|g| + eps)", "[optimizer][adam]") {
    // After one step m̂ = g and sqrt(v̂) = |g| exactly, whatever the betas: the bias corrections undo the
    // (1 − β) factors. So the step is lr · g / (|g| + eps), the same size for tiny and huge gradients.
    AdamOptions o;
    o.lr = 0.1;
    auto p = flat<double>({1.0, -2.0, 0.5});
    const auto g = flat<double>({0.5, -0.001, 3.0});
    auto state = adam_init_state<double>(o, 3);
    REQUIRE(state.slots() == 2);
    adam_step(o, p, g, state);
    CHECK(p[0] == Approx(1.0 - 0.1 * 0.5 / (0.5 + 1e-8)).epsilon(1e-14));
    CHECK(p[0] == Approx(0.9).epsilon(1e-7));
    CHECK(p[1] == Approx(-1.9).epsilon(1e-5));  // 0.001 / (0.001 + 1e-8): eps shows at the 1e-5 level
    CHECK(p[1] == Approx(-2.0 + 0.1 * 0.001 / (0.001 + 1e-8)).epsilon(1e-14));
    CHECK(p[2] == Approx(0.4).epsilon(1e-7));
    // m = (1 − β1) g, v = (1 − β2) g².
    CHECK(state.slot(kAdamExpAvg)[2] == Approx(0.3).epsilon(1e-14));
    CHECK(state.slot(kAdamExpAvgSq)[2] == Approx(0.009).epsilon(1e-12));
    CHECK(state.step == 1);
}

TEST_CASE("adam: eps is added after the bias-corrected square root", "[optimizer][adam]") {
    // With eps = 0.5 and g = 0.5: denom = sqrt(v̂) + eps = 0.5 + 0.5, so p = 1 − 0.1 · 0.5 / 1 = 0.95.
    // eps inside the root would give 1 − 0.05 / sqrt(0.75) ≈ 0.9423; eps before the correction ≈ 0.99995.
    AdamOptions o;
    o.lr = 0.1;
    o.eps = 0.5;
    auto p = flat<double>({1.0});
    auto state = adam_init_state<double>(o, 1);
    adam_step(o, p, flat<double>({0.5}), state);
    CHECK(p[0] == Approx(0.95).epsilon(1e-14));
}

TEST_CASE("adam: the second step uses bias corrections 1 - beta^2", "[optimizer][adam]") {
    AdamOptions o;
    o.lr = 0.1;
    auto p = flat<double>({1.0});
    auto state = adam_init_state<double>(o, 1);
    adam_step(o, p, flat<double>({0.5}), state);
    adam_step(o, p, flat<double>({0.25}), state);
    // m = 0.9 · 0.05 + 0.1 · 0.25 = 0.07; v = 0.999 · 0.00025 + 0.001 · 0.0625 = 0.00031225.
    CHECK(state.slot(kAdamExpAvg)[0] == Approx(0.07).epsilon(1e-14));
    CHECK(state.slot(kAdamExpAvgSq)[0] == Approx(0.00031225).epsilon(1e-14));
    const double p1 = 1.0 - 0.1 * 0.5 / (0.5 + 1e-8);  // after the first step
    const double m_hat = 0.07 / (1 - 0.81), denom = std::sqrt(0.00031225) / std::sqrt(1 - 0.998001) + 1e-8;
    CHECK(p[0] == Approx(p1 - 0.1 * m_hat / denom).epsilon(1e-13));
}

TEST_CASE("adam vs adamw: L2 decay in the gradient vs decoupled p * (1 - lr * wd)", "[optimizer][adam][adamw]") {
    // Adam, wd 0.1: g = 0.5 + 0.1 · 1 = 0.6, and the first step is lr · g / |g| = 0.1 again: p = 0.9.
    AdamOptions adam_options;
    adam_options.lr = 0.1;
    adam_options.weight_decay = 0.1;
    auto p = flat<double>({1.0});
    auto state = adam_init_state<double>(adam_options, 1);
    adam_step(adam_options, p, flat<double>({0.5}), state);
    CHECK(p[0] == Approx(0.9).epsilon(1e-7));
    CHECK(state.slot(kAdamExpAvg)[0] == Approx(0.06).epsilon(1e-14));  // m saw the decayed gradient

    // AdamW, wd 0.1: p = 1 · (1 − 0.01) = 0.99, then 0.99 − 0.1 = 0.89; m saw the raw gradient.
    AdamWOptions adamw_options;
    adamw_options.lr = 0.1;
    adamw_options.weight_decay = 0.1;
    auto q = flat<double>({1.0});
    auto adamw_state = adamw_init_state<double>(adamw_options, 1);
    adamw_step(adamw_options, q, flat<double>({0.5}), adamw_state);
    CHECK(q[0] == Approx(0.89).epsilon(1e-7));
    CHECK(adamw_state.slot(kAdamExpAvg)[0] == Approx(0.05).epsilon(1e-14));
    CHECK(AdamWOptions{}.weight_decay == 1e-2);
    CHECK(AdamOptions{}.weight_decay == 0.0);
}

TEST_CASE("adam: amsgrad normalizes by the running maximum of v", "[optimizer][adam]") {
    AdamOptions o;
    o.lr = 0.1;
    o.beta2 = 0.5;
    o.amsgrad = true;
    auto p = flat<double>({1.0});
    auto state = adam_init_state<double>(o, 1);
    REQUIRE(state.slots() == 3);
    adam_step(o, p, flat<double>({1.0}), state);  // v = 0.5, v_max = 0.5
    adam_step(o, p, flat<double>({0.0}), state);  // v = 0.25, v_max stays 0.5
    CHECK(state.slot(kAdamExpAvgSq)[0] == Approx(0.25).epsilon(1e-15));
    CHECK(state.slot(kAdamMaxExpAvgSq)[0] == Approx(0.5).epsilon(1e-15));
    // Step 2: m = 0.9 · 0.1 = 0.09, m̂ = 0.09 / 0.19; denom = sqrt(0.5) / sqrt(0.75) + 1e-8.
    const double p1 = 1.0 - 0.1 * 1.0 / (1.0 + 1e-8);
    const double expected = p1 - 0.1 * (0.09 / 0.19) / (std::sqrt(0.5) / std::sqrt(0.75) + 1e-8);
    CHECK(p[0] == Approx(expected).epsilon(1e-13));
}

TEST_CASE("optimizers treat any shape as a flat array and keep the state slot-major", "[optimizer]") {
    AdamOptions o;
    auto p = HostTensor<float>(Shape{2, 3}, 1.0f);
    auto g = HostTensor<float>(Shape{6}, std::vector<float>{1, 2, 3, 4, 5, 6});
    auto state = adam_init_state<float>(o, 6);
    CHECK(state.values.shape() == Shape({2, 6}));
    adam_step(o, p, g, state);
    for (int64_t i = 0; i < 6; ++i) {
        CHECK(state.values[kAdamExpAvg * 6 + i] == Approx(0.1f * g[i]).epsilon(1e-6));
        CHECK(state.slot_tensor(kAdamExpAvgSq)[i] == Approx(0.001f * g[i] * g[i]).epsilon(1e-6));
    }
    CHECK(p.shape() == Shape({2, 3}));
}

// ---- PyTorch fixtures (tools/fixtures/optim.py): 6 steps on two tensors, (3, 4) and (5), flattened ---------

TEST_CASE("sgd matches PyTorch step by step", "[optimizer][sgd][fixture]") {
    const std::vector<std::string> buffer = {"momentum_buffer"};
    const std::vector<FixtureConfig<SgdOptions>> configs = {
        {"sgd_plain", sgd(0, 0, 0, false, false), {}},
        {"sgd_weight_decay", sgd(0, 0, 0.1, false, false), {}},
        {"sgd_momentum", sgd(0.9, 0, 0, false, false), buffer},
        {"sgd_dampening_weight_decay", sgd(0.8, 0.3, 0.01, false, false), buffer},
        {"sgd_nesterov", sgd(0.9, 0, 1e-3, true, false), buffer},
        {"sgd_maximize", sgd(0.5, 0, 0, false, true), buffer},
        {"sgd_lr_changes", sgd(0.9, 0, 0, false, false), buffer},
    };
    const auto init_f = [](const SgdOptions& o, int64_t n) { return sgd_init_state<float>(o, n); };
    const auto init_d = [](const SgdOptions& o, int64_t n) { return sgd_init_state<double>(o, n); };
    const auto step_f = [](const SgdOptions& o, HostTensor<float>& p, const HostTensor<float>& g,
                           OptimizerState<float>& s) { sgd_step(o, p, g, s); };
    const auto step_d = [](const SgdOptions& o, HostTensor<double>& p, const HostTensor<double>& g,
                           OptimizerState<double>& s) { sgd_step(o, p, g, s); };
    for (const auto& config : configs) {
        check_fixture<double>("optim_sgd", config, init_d, step_d);
        check_fixture<float>("optim_sgd", config, init_f, step_f);
    }
}

TEST_CASE("adam matches PyTorch step by step", "[optimizer][adam][fixture]") {
    const std::vector<FixtureConfig<AdamOptions>> configs = {
        {"adam_default", adam<AdamOptions>(0.9, 0.999, 1e-8, 0, false, false), kAdamSlots},
        {"adam_betas_eps", adam<AdamOptions>(0.8, 0.95, 1e-3, 0, false, false), kAdamSlots},
        {"adam_beta1_zero", adam<AdamOptions>(0.0, 0.99, 1e-8, 0, false, false), kAdamSlots},
        {"adam_weight_decay", adam<AdamOptions>(0.9, 0.999, 1e-8, 0.1, false, false), kAdamSlots},
        {"adam_amsgrad", adam<AdamOptions>(0.9, 0.999, 1e-8, 0, true, false), kAmsgradSlots},
        {"adam_amsgrad_weight_decay", adam<AdamOptions>(0.9, 0.99, 1e-8, 0.05, true, false), kAmsgradSlots},
        {"adam_maximize", adam<AdamOptions>(0.9, 0.999, 1e-8, 0, false, true), kAdamSlots},
        {"adam_lr_changes", adam<AdamOptions>(0.9, 0.999, 1e-8, 0, false, false), kAdamSlots},
    };
    const auto init_f = [](const AdamOptions& o, int64_t n) { return adam_init_state<float>(o, n); };
    const auto init_d = [](const AdamOptions& o, int64_t n) { return adam_init_state<double>(o, n); };
    const auto step_f = [](const AdamOptions& o, HostTensor<float>& p, const HostTensor<float>& g,
                           OptimizerState<float>& s) { adam_step(o, p, g, s); };
    const auto step_d = [](const AdamOptions& o, HostTensor<double>& p, const HostTensor<double>& g,
                           OptimizerState<double>& s) { adam_step(o, p, g, s); };
    for (const auto& config : configs) {
        check_fixture<double>("optim_adam", config, init_d, step_d);
        check_fixture<float>("optim_adam", config, init_f, step_f);
    }
}

TEST_CASE("adamw matches PyTorch step by step", "[optimizer][adamw][fixture]") {
    const std::vector<FixtureConfig<AdamWOptions>> configs = {
        {"adamw_default", adam<AdamWOptions>(0.9, 0.999, 1e-8, 1e-2, false, false), kAdamSlots},
        {"adamw_weight_decay_eps", adam<AdamWOptions>(0.9, 0.999, 1e-3, 0.1, false, false), kAdamSlots},
        {"adamw_no_decay", adam<AdamWOptions>(0.9, 0.999, 1e-8, 0, false, false), kAdamSlots},
        {"adamw_amsgrad", adam<AdamWOptions>(0.9, 0.999, 1e-8, 0.05, true, false), kAmsgradSlots},
        {"adamw_maximize", adam<AdamWOptions>(0.9, 0.999, 1e-8, 1e-2, false, true), kAdamSlots},
        {"adamw_lr_changes", adam<AdamWOptions>(0.9, 0.999, 1e-8, 0.1, false, false), kAdamSlots},
    };
    const auto init_f = [](const AdamWOptions& o, int64_t n) { return adamw_init_state<float>(o, n); };
    const auto init_d = [](const AdamWOptions& o, int64_t n) { return adamw_init_state<double>(o, n); };
    const auto step_f = [](const AdamWOptions& o, HostTensor<float>& p, const HostTensor<float>& g,
                           OptimizerState<float>& s) { adamw_step(o, p, g, s); };
    const auto step_d = [](const AdamWOptions& o, HostTensor<double>& p, const HostTensor<double>& g,
                           OptimizerState<double>& s) { adamw_step(o, p, g, s); };
    for (const auto& config : configs) {
        check_fixture<double>("optim_adamw", config, init_d, step_d);
        check_fixture<float>("optim_adamw", config, init_f, step_f);
    }
}

// ---- bad arguments ------------------------------------------------------------------------------------------

TEST_CASE("sgd rejects bad options and mismatched arrays", "[optimizer][sgd][errors]") {
    SgdOptions o;
    auto p = flat<double>({1.0, 2.0});
    const auto g = flat<double>({0.1, 0.2});
    OptimizerState<double> state;
    state.values = HostTensor<double>(Shape{0, 2});
    REQUIRE_THROWS_WITH(sgd_step(o, p, g, state), Contains("sgd: lr is not set"));
    o.lr = -0.1;
    REQUIRE_THROWS_WITH(sgd_step(o, p, g, state), Contains("sgd: lr -0.1 must be"));
    o.lr = 0.1;
    o.momentum = -0.5;
    REQUIRE_THROWS_WITH(sgd_init_state<double>(o, 2), Contains("sgd: momentum -0.5 must be"));
    o.momentum = 0.0;
    o.weight_decay = -1e-4;
    REQUIRE_THROWS_WITH(sgd_init_state<double>(o, 2), Contains("sgd: weight_decay -0.0001 must be"));
    o.weight_decay = 0.0;
    o.nesterov = true;
    REQUIRE_THROWS_WITH(sgd_init_state<double>(o, 2),
                        Contains("sgd: nesterov needs momentum > 0 and dampening 0, got momentum 0 and dampening 0"));
    o.momentum = 0.9;
    o.dampening = 0.1;
    REQUIRE_THROWS_WITH(sgd_init_state<double>(o, 2), Contains("got momentum 0.9 and dampening 0.1"));
    o.nesterov = false;
    REQUIRE_THROWS_WITH(sgd_init_state<double>(o, 0), Contains("sgd: parameter count 0 must be at least 1"));

    // A state made without momentum has no buffer slot.
    auto momentum_state = sgd_init_state<double>(o, 2);
    REQUIRE_THROWS_WITH(sgd_step(o, p, flat<double>({0.1, 0.2, 0.3}), momentum_state),
                        Contains("sgd: gradients have 3 elements but parameters have 2"));
    REQUIRE_THROWS_WITH(sgd_step(o, p, g, state), Contains("sgd: state has shape (0, 2) but these options and 2 "
                                                           "parameters need (1, 2); make it with sgd_init_state"));
    REQUIRE_NOTHROW(sgd_step(o, p, g, momentum_state));
}

TEST_CASE("adam and adamw reject bad options and mismatched arrays", "[optimizer][adam][adamw][errors]") {
    AdamOptions o;
    auto p = flat<float>({1.0f, 2.0f});
    const auto g = flat<float>({0.1f, 0.2f});
    auto state = adam_init_state<float>(o, 2);
    o.lr = -1e-3;
    REQUIRE_THROWS_WITH(adam_step(o, p, g, state), Contains("adam: lr -0.001 must be"));
    o.lr = 1e-3;
    o.beta1 = 1.0;
    REQUIRE_THROWS_WITH(adam_step(o, p, g, state), Contains("adam: beta1 1 must be in [0, 1)"));
    o.beta1 = 0.9;
    o.beta2 = -0.1;
    REQUIRE_THROWS_WITH(adam_init_state<float>(o, 2), Contains("adam: beta2 -0.1 must be in [0, 1)"));
    o.beta2 = std::nan("");
    REQUIRE_THROWS_WITH(adam_init_state<float>(o, 2), Contains("adam: beta2 nan must be in [0, 1)"));
    o.beta2 = 0.999;
    o.eps = -1e-8;
    REQUIRE_THROWS_WITH(adam_init_state<float>(o, 2), Contains("adam: eps -1e-08 must be"));
    o.eps = 1e-8;
    o.weight_decay = -0.01;
    REQUIRE_THROWS_WITH(adam_init_state<float>(o, 2), Contains("adam: weight_decay -0.01 must be"));
    o.weight_decay = 0.0;
    REQUIRE_THROWS_WITH(adam_step(o, p, flat<float>({0.1f}), state),
                        Contains("adam: gradients have 1 elements but parameters have 2"));
    o.amsgrad = true;  // needs a third slot that this state lacks
    REQUIRE_THROWS_WITH(adam_step(o, p, g, state), Contains("need (3, 2); make it with adam_init_state"));
    REQUIRE_THROWS_WITH(adam_init_state<float>(o, -3), Contains("adam: parameter count -3 must be at least 1"));

    AdamWOptions w;
    w.beta1 = 1.5;
    REQUIRE_THROWS_WITH(adamw_init_state<double>(w, 2), Contains("adamw: beta1 1.5 must be in [0, 1)"));
    w.beta1 = 0.9;
    auto adamw_state = adamw_init_state<float>(w, 2);
    HostTensor<float> empty(Shape{0});
    REQUIRE_THROWS_WITH(adamw_step(w, empty, empty, adamw_state), Contains("adamw: parameter count 0"));
}
