// The step sequence of the executor tests that compare two ways of running the same training (CUDA graphs
// against eager launches, fused kernels against separate ones), what they record, and their bitwise
// comparison.
#pragma once

#include <catch2/catch.hpp>

#include <cmath>
#include <cstring>
#include <map>
#include <string>
#include <vector>

#include "cudacnn/device.hpp"
#include "cudacnn/graph/executor.hpp"
#include "cudacnn/graph/profile.hpp"
#include "cudacnn/host_tensor.hpp"
#include "cudacnn/io/state_dict.hpp"

namespace cudacnn::test {

// Nine training steps of a batch-4 executor on (3, 8, 8) inputs: full batches and a partial one (step 6, which
// gets its own CUDA graph, or none), a learning-rate change at step 4 (a new optimizer argument: captured anew),
// and an evaluation step after every third, whose metrics are appended to `metrics`.
inline void run_test_steps(graph::Executor& executor, std::vector<graph::Metrics>& metrics) {
    HostTensor<float> x(Shape{4, 3, 8, 8});
    std::vector<int64_t> labels(4);
    for (int64_t step = 0; step < 9; ++step) {
        for (int64_t i = 0; i < x.numel(); ++i) x[i] = std::sin(0.05f * static_cast<float>(i + 7 * step));
        for (int64_t i = 0; i < 4; ++i) labels[i] = (i + step) % 4;
        const int64_t count = step == 6 ? 3 : 4;
        if (step == 4) executor.set_learning_rate(5e-3);
        executor.set_batch(x.data(), labels.data(), count);
        executor.train_step(executor.optimizer_steps());
        if (step % 3 == 2) {
            executor.eval_step();
            metrics.push_back(executor.read_metrics());
        }
    }
}

// The same names with the same bits (NaNs included), entry by entry.
inline bool bit_identical(const io::StateDict& a, const io::StateDict& b) {
    for (const std::string& name : a.names()) {
        INFO(name);
        if (a.dtype(name) == DType::i64) {
            if (a.i64(name).values() != b.i64(name).values()) return false;
        } else if (std::memcmp(a.f32(name).data(), b.f32(name).data(), sizeof(float) * a.f32(name).numel()) != 0) {
            return false;
        }
    }
    return a.names() == b.names();
}

// The GPU backend is the emulator in the emu flavour and a real GPU in the cuda flavour; without either its
// tests say so and pass.
inline bool have_gpu_backend() {
    if (gpu_status().available) return true;
    WARN("skipped: no GPU here (" << gpu_status().description << ")");
    return false;
}

// describe(), a line each.
inline std::string description(const graph::Executor& executor) {
    std::string text;
    for (const std::string& line : executor.describe()) text += line + "\n";
    return text;
}

// One profiled training step of a batch-4 executor on fixed (3, 8, 8) inputs: each profile part's detail
// (what the executor says it fused or folded there), by the part's name.
inline std::map<std::string, std::string> profiled_step_details(graph::Executor& executor) {
    HostTensor<float> x(Shape{4, 3, 8, 8});
    for (int64_t i = 0; i < x.numel(); ++i) x[i] = std::sin(0.05f * static_cast<float>(i));
    const std::vector<int64_t> labels{0, 1, 2, 3};
    executor.set_batch(x.data(), labels.data(), 4);
    executor.start_profile();
    executor.train_step(0);
    std::map<std::string, std::string> details;
    for (const graph::ProfilePart& part : executor.stop_profile().parts) details[part.name] = part.detail;
    return details;
}

// What the fusion tests compare between two ways of running the same training (fused kernels against separate
// ones): run_test_steps' metrics and final state, then the gradients of a training-mode and of an
// evaluation-mode forward and backward (whose metrics are appended too), the latter's logits, the replayed CUDA
// graphs and the executor's description.
struct StepRun {
    io::StateDict model, optimizer, gradients, eval_gradients;
    std::vector<graph::Metrics> metrics;
    HostTensor<float> eval_logits;
    int64_t graph_launches = 0;
    std::string description;  // describe(), a line each
};

inline StepRun run_compared_steps(graph::Executor& executor) {
    StepRun run;
    run_test_steps(executor, run.metrics);
    run.model = executor.model_state();
    run.optimizer = executor.optimizer_state();
    executor.forward_backward(executor.optimizer_steps());
    run.metrics.push_back(executor.read_metrics());
    run.gradients = executor.gradients();
    executor.eval_forward_backward();
    run.metrics.push_back(executor.read_metrics());
    run.eval_gradients = executor.gradients();
    run.eval_logits = executor.logits();
    run.graph_launches = executor.cuda_graph_launches();
    run.description = description(executor);
    return run;
}

// The same bits everywhere, and as many CUDA graph replays.
inline void check_same_steps(const StepRun& a, const StepRun& b) {
    CHECK(bit_identical(a.model, b.model));
    CHECK(bit_identical(a.optimizer, b.optimizer));
    CHECK(bit_identical(a.gradients, b.gradients));
    CHECK(bit_identical(a.eval_gradients, b.eval_gradients));
    REQUIRE(a.metrics.size() == b.metrics.size());
    for (std::size_t k = 0; k < a.metrics.size(); ++k) {
        CHECK(a.metrics[k].loss_sum == b.metrics[k].loss_sum);
        CHECK(a.metrics[k].correct == b.metrics[k].correct);
    }
    CHECK(a.graph_launches == b.graph_launches);
}

}  // namespace cudacnn::test
