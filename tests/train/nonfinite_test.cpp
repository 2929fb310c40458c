// Non-finite values stop training: the executor's always-on per-step checks (parameters as a step begins, the
// loss, the gradients) name the step and the first non-finite parameter, at once on the CPU backends and at
// the next read-back on the GPU (a replayed CUDA graph included); detect_anomaly names the first layer whose
// output or gradient is non-finite. On the fast CPU, reference CPU and GPU (emulated in CI) backends.
#include <catch2/catch.hpp>

#include <cmath>
#include <limits>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "cudacnn/device.hpp"
#include "cudacnn/error.hpp"
#include "cudacnn/graph/executor.hpp"

using namespace cudacnn;
using namespace cudacnn::graph;
using Catch::Matchers::Contains;

namespace {

constexpr float kNaN = std::numeric_limits<float>::quiet_NaN();

// Two convolutions and a linear head on 2 × 6 × 6 images: c1, c2 and head in forward order.
Graph tiny_graph() {
    return build_graph(parse_model_spec(nlohmann::json::parse(R"({
        "name": "tiny", "input": [2, 6, 6], "num_classes": 3,
        "layers": [
            {"name": "c1", "type": "conv2d", "in_channels": 2, "out_channels": 3, "kernel_size": 3, "padding": 1},
            {"name": "r1", "type": "relu"},
            {"name": "c2", "type": "conv2d", "in_channels": 3, "out_channels": 4, "kernel_size": 3, "padding": 1},
            {"name": "r2", "type": "relu"},
            {"name": "flat", "type": "flatten"},
            {"name": "head", "type": "linear", "in_features": 144, "out_features": 3}
        ]})"), "tiny_graph"));
}

std::vector<Backend> backends() {
    std::vector<Backend> all{Backend::cpu, Backend::cpu_reference};
    if (gpu_status().available) {
        all.push_back(Backend::gpu);
    } else {
        WARN("the GPU backend is skipped: no GPU here (" << gpu_status().description << ")");
    }
    return all;
}

struct Batch {
    HostTensor<float> x{Shape{4, 2, 6, 6}};
    std::vector<int64_t> labels{0, 1, 2, 1};
    explicit Batch(int step) {
        for (int64_t i = 0; i < x.numel(); ++i) x[i] = std::sin(0.37f * static_cast<float>(i + 11 * step));
    }
};

ExecutorOptions options_for(Backend backend, bool detect_anomaly = false) {
    ExecutorOptions options;
    options.backend = backend;
    options.batch_size = 4;
    options.threads = 2;
    options.seed = 5;
    options.optimizer.lr = 1e-2;
    options.detect_anomaly = detect_anomaly;
    return options;
}

void train(Executor& executor, int64_t step, const Batch& batch) {
    executor.set_batch(batch.x.data(), batch.labels.data(), 4);
    executor.train_step(step);
}

// Runs `steps` then a read-back (the trainer's periodic one) and returns the error's message ("" if none).
template <class Steps>
std::string error_of(Executor& executor, Steps steps) {
    try {
        steps();
        executor.read_metrics();
    } catch (const Error& error) {
        return error.what();
    }
    return "";
}

void set_parameter(Executor& executor, const std::string& name, int64_t index, float value) {
    io::StateDict state = executor.model_state();
    HostTensor<float> tensor = state.f32(name);
    tensor[index] = value;
    state.put(name, std::move(tensor));
    executor.load_model_state(state, "the test");
}

}  // namespace

TEST_CASE("a NaN parameter stops training at its step, naming that parameter", "[nonfinite]") {
    for (Backend backend : backends()) {
        INFO(backend_name(backend));
        Executor executor(tiny_graph(), options_for(backend));
        executor.initialize(5);
        // Steps 0 and 1 (on the GPU: eager, then captured), then a NaN in c2's weight before step 2.
        train(executor, 0, Batch(0));
        train(executor, 1, Batch(1));
        CHECK(std::isfinite(executor.read_metrics().loss_sum));
        const io::StateDict good = executor.model_state();
        set_parameter(executor, "c2.weight", 5, kNaN);
        const std::string message = error_of(executor, [&] {
            train(executor, 2, Batch(2));
            train(executor, 3, Batch(3));
        });
        CHECK_THAT(message, Contains("step 2 (counting from 0): the loss is NaN"));
        CHECK_THAT(message, Contains("the parameters already held NaN when step 2 began, the first of them (in "
                                     "forward order) c2.weight (index 5)"));
        CHECK_THAT(message, Contains("--lr"));
        CHECK_THAT(message, Contains("--detect-anomaly"));
        CHECK_THAT(message, Contains("--resume"));
        // The report clears the checks: with good parameters again, training goes on.
        executor.load_model_state(good, "the test");
        CHECK(error_of(executor, [&] { train(executor, 4, Batch(4)); }).empty());
    }
}

TEST_CASE("a NaN in the input batch stops training at its step, saying the input holds it", "[nonfinite]") {
    for (Backend backend : backends()) {
        INFO(backend_name(backend));
        Executor executor(tiny_graph(), options_for(backend));
        executor.initialize(5);
        train(executor, 0, Batch(0));
        Batch bad(1);
        bad.x[2 * 72 + 13] = std::numeric_limits<float>::infinity();
        const std::string message = error_of(executor, [&] { train(executor, 1, bad); });
        CHECK_THAT(message, Contains("step 1 (counting from 0): the loss is"));
        CHECK_THAT(message, Contains("every parameter was finite when that step began"));
        CHECK_THAT(message, Contains("its input batch holds an infinity at index 157 (sample 2)"));
    }
}

ExecutorOptions blowing_up(Backend backend, bool detect_anomaly) {
    ExecutorOptions options = options_for(backend, detect_anomaly);
    options.optimizer.kind = OptimizerKind::sgd;
    options.optimizer.lr = 1e38;  // the first update leaves finite parameters whose products overflow
    return options;
}

TEST_CASE("a learning rate that blows up stops training, naming the step", "[nonfinite]") {
    for (Backend backend : backends()) {
        INFO(backend_name(backend));
        Executor executor(tiny_graph(), blowing_up(backend, false));
        executor.initialize(5);
        const std::string message = error_of(executor, [&] {
            for (int step = 0; step < 4; ++step) train(executor, step, Batch(step));
        });
        CHECK_THAT(message, Contains("step 1 (counting from 0): the loss is NaN"));
        CHECK_THAT(message, Contains("every parameter was finite when that step began, so its forward made the loss "
                                     "non-finite"));
        // The CPU backends stop at once; the GPU at the read-back after step 3, when step 1's input is gone.
        if (backend == Backend::gpu) {
            CHECK_THAT(message, !Contains("input batch is finite"));
        } else {
            CHECK_THAT(message, Contains("its input batch is finite"));
        }
    }
}

TEST_CASE("detect_anomaly stops at the first layer whose output is non-finite", "[nonfinite]") {
    for (Backend backend : backends()) {
        INFO(backend_name(backend));
        Executor executor(tiny_graph(), options_for(backend, /*detect_anomaly=*/true));
        executor.initialize(5);
        train(executor, 0, Batch(0));
        set_parameter(executor, "c2.weight", 5, kNaN);
        const std::string message = error_of(executor, [&] { train(executor, 1, Batch(1)); });
        CHECK_THAT(message, Contains("step 1 (counting from 0): the forward output of layer 'c2' (conv2d) holds NaN "
                                     "at index 0 of 576, sample 0"));
        CHECK_THAT(message, Contains("--lr"));

        Executor fresh(tiny_graph(), options_for(backend, /*detect_anomaly=*/true));
        fresh.initialize(5);
        Batch bad(0);
        bad.x[77] = -std::numeric_limits<float>::infinity();
        CHECK_THAT(error_of(fresh, [&] { train(fresh, 0, bad); }),
                   Contains("step 0 (counting from 0): the input batch holds -Inf at index 77 of 288, sample 1"));
    }
}

TEST_CASE("detect_anomaly finds the layer where a learning rate that blows up overflows", "[nonfinite]") {
    for (Backend backend : backends()) {
        INFO(backend_name(backend));
        Executor executor(tiny_graph(), blowing_up(backend, true));
        executor.initialize(5);
        const std::string message = error_of(executor, [&] {
            for (int step = 0; step < 4; ++step) train(executor, step, Batch(step));
        });
        CHECK_THAT(message, Contains("step 1 (counting from 0): the forward output of layer 'c2' (conv2d) holds +Inf "
                                     "at index 0 of 576, sample 0"));
        CHECK_THAT(message, !Contains("run with --detect-anomaly"));
    }
}

TEST_CASE("the checks change no result: steps with detect_anomaly equal steps without, bit for bit",
          "[nonfinite]") {
    for (Backend backend : backends()) {
        INFO(backend_name(backend));
        std::vector<io::StateDict> states;
        std::vector<double> losses;
        for (bool detect : {false, true}) {
            Executor executor(tiny_graph(), options_for(backend, detect));
            executor.initialize(5);
            for (int step = 0; step < 4; ++step) train(executor, step, Batch(step));
            executor.eval_step();
            losses.push_back(executor.read_metrics().loss_sum);
            states.push_back(executor.model_state());
        }
        CHECK(losses[0] == losses[1]);
        for (const std::string& name : states[0].names()) {
            INFO(name);
            if (states[0].dtype(name) == DType::f32) CHECK(states[0].f32(name).values() == states[1].f32(name).values());
        }
    }
}
