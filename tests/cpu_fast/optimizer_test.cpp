// The fast SGD, Adam and AdamW steps (src/cpu_fast/optimizer.cpp) against the reference: several steps of
// every option combination bit for bit (parameters and state), with 1, 2 and 3 threads, and the errors.
#include <catch2/catch.hpp>

#include <cstdint>
#include <functional>
#include <iterator>
#include <string>
#include <type_traits>
#include <vector>

#include "cudacnn/ops/optimizer.hpp"
#include "cpu_fast/fast_support.hpp"
#include "src/cpu_fast/optimizer.hpp"
#include "support/errors.hpp"

using namespace cudacnn;
using Catch::Contains;

namespace {

// Both paths run the same per-value function (src/cpu/optimizer_rule.hpp) on scalars rounded the same way:
// parameters and state must be bit-identical after every step (no tolerance).
constexpr int kSteps = 3;  // the first step is special (SGD's buffer, Adam's bias corrections), so run more

// One optimizer: its reference step on HostTensors, and its fast step on raw arrays.
using ReferenceStep = std::function<void(HostTensor<float>&, const HostTensor<float>&, cpu::OptimizerState<float>&)>;
using FastStep = std::function<void(float*, const float*, float*, int64_t, int64_t, const cpu_fast::Workers&)>;

void check_steps(const std::string& name, int64_t slots, int64_t n, const ReferenceStep& reference,
                 const FastStep& fast) {
    HostTensor<float> expected_params = test::random_tensor<float>(Shape{n}, 61);
    cpu::OptimizerState<float> expected_state;
    expected_state.values = HostTensor<float>(Shape{slots, n}, 0.0f);
    struct Run {
        HostTensor<float> params, state;
    };
    std::vector<Run> runs;
    for (size_t t = 0; t < std::size(test::kThreadCounts); ++t) {
        runs.push_back({expected_params, HostTensor<float>(Shape{slots, n}, 0.0f)});
    }
    for (int step = 0; step < kSteps; ++step) {
        // Gradients of mixed sign and size, so that amsgrad's maximum and the momentum both matter.
        const HostTensor<float> grads = test::random_tensor<float>(Shape{n}, 70 + step, -2.0, 2.0);
        const int64_t taken = expected_state.step;
        reference(expected_params, grads, expected_state);
        for (size_t t = 0; t < runs.size(); ++t) {
            INFO(name << ", n " << n << ", step " << step << ", threads " << test::kThreadCounts[t]);
            const cpu_fast::Workers workers(test::kThreadCounts[t]);
            fast(runs[t].params.data(), grads.data(), slots > 0 ? runs[t].state.data() : nullptr, n, taken, workers);
            CHECK(test::same_bits(runs[t].params, expected_params));
            CHECK(test::same_bits(runs[t].state, expected_state.values));
        }
    }
}

void check_sgd(const cpu::SgdOptions& o, const std::string& name) {
    for (int64_t n : {int64_t{945}, test::kSeveralItems}) {
        check_steps(
            name, cpu::sgd_state_slots(o), n,
            [&](HostTensor<float>& p, const HostTensor<float>& g, cpu::OptimizerState<float>& s) {
                cpu::sgd_step(o, p, g, s);
            },
            [&](float* p, const float* g, float* s, int64_t count, int64_t step, const cpu_fast::Workers& w) {
                cpu_fast::sgd_step(o, p, g, s, count, step, w);
            });
    }
}

template <class Options>
void check_adam_family(const Options& o, const std::string& name) {
    constexpr bool adamw = std::is_same_v<Options, cpu::AdamWOptions>;
    for (int64_t n : {int64_t{945}, test::kSeveralItems}) {
        check_steps(
            name, o.amsgrad ? 3 : 2, n,
            [&](HostTensor<float>& p, const HostTensor<float>& g, cpu::OptimizerState<float>& s) {
                if constexpr (adamw) {
                    cpu::adamw_step(o, p, g, s);
                } else {
                    cpu::adam_step(o, p, g, s);
                }
            },
            [&](float* p, const float* g, float* s, int64_t count, int64_t step, const cpu_fast::Workers& w) {
                if constexpr (adamw) {
                    cpu_fast::adamw_step(o, p, g, s, count, step, w);
                } else {
                    cpu_fast::adam_step(o, p, g, s, count, step, w);
                }
            });
    }
}

cpu::SgdOptions sgd(double lr, double momentum = 0, double dampening = 0, double weight_decay = 0,
                    bool nesterov = false, bool maximize = false) {
    cpu::SgdOptions o;
    o.lr = lr, o.momentum = momentum, o.dampening = dampening, o.weight_decay = weight_decay;
    o.nesterov = nesterov, o.maximize = maximize;
    return o;
}

template <class Options>
Options adam(double weight_decay, bool amsgrad, bool maximize) {
    Options o;
    o.lr = 3e-3, o.beta1 = 0.8, o.beta2 = 0.95, o.eps = 1e-6;
    o.weight_decay = weight_decay, o.amsgrad = amsgrad, o.maximize = maximize;
    return o;
}

}  // namespace

TEST_CASE("fast SGD steps equal the reference bit for bit", "[cpu_fast]") {
    check_sgd(sgd(0.1), "plain");
    check_sgd(sgd(0.05, 0.9), "momentum");
    check_sgd(sgd(0.05, 0.9, 0.3, 1e-2), "momentum, dampening, weight decay");
    check_sgd(sgd(0.05, 0.9, 0, 1e-3, /*nesterov=*/true), "nesterov");
    check_sgd(sgd(0.05, 0, 0, 1e-2, false, /*maximize=*/true), "maximize, weight decay");
}

TEST_CASE("fast Adam and AdamW steps equal the reference bit for bit", "[cpu_fast]") {
    for (bool amsgrad : {false, true}) {
        for (bool maximize : {false, true}) {
            const std::string flags = std::string(amsgrad ? " amsgrad" : "") + (maximize ? " maximize" : "");
            check_adam_family(adam<cpu::AdamOptions>(0.0, amsgrad, maximize), "adam" + flags);
            check_adam_family(adam<cpu::AdamOptions>(1e-2, amsgrad, maximize), "adam weight decay" + flags);
            check_adam_family(adam<cpu::AdamWOptions>(1e-2, amsgrad, maximize), "adamw" + flags);
        }
    }
}

TEST_CASE("fast optimizer steps report bad arguments", "[cpu_fast]") {
    const cpu_fast::Workers workers(1);
    float p = 1.0f, g = 1.0f, s[3] = {0, 0, 0};
    // The reference's option checks.
    CHECK_THAT(test::error_message([&] { cpu_fast::sgd_step(cpu::SgdOptions{}, &p, &g, nullptr, 1, 0, workers); }),
               Contains("sgd: lr is not set"));
    cpu::AdamOptions bad_beta;
    bad_beta.beta1 = 1.0;
    CHECK_THAT(test::error_message([&] { cpu_fast::adam_step(bad_beta, &p, &g, s, 1, 0, workers); }),
               Contains("adam: beta1 1 must be in [0, 1)"));
    CHECK_THAT(test::error_message([&] { cpu_fast::adamw_step(cpu::AdamWOptions{}, &p, &g, s, 0, 0, workers); }),
               Contains("adamw: parameter count 0 must be at least 1"));
    CHECK_THAT(test::error_message([&] { cpu_fast::adam_step(cpu::AdamOptions{}, &p, &g, s, 1, -1, workers); }),
               Contains("adam: state step -1 must be >= 0"));
    CHECK_THAT(test::error_message([&] { cpu_fast::sgd_step(sgd(0.1, 0.9), &p, &g, nullptr, 1, 0, workers); }),
               Contains("sgd: these options need 1 state slots but state is null"));
}
