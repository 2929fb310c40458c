// ReLUs folded into the dropout after them (ExecutorOptions::fuse_relu on the GPU backend: one relu_dropout
// kernel each way instead of two): training, evaluation and CUDA graphs give the bits of separate ReLUs, and
// the executor says which ReLUs it folded and leaves the others alone.
#include <catch2/catch.hpp>

#include <cmath>
#include <cstring>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "cudacnn/device.hpp"
#include "cudacnn/graph/executor.hpp"
#include "support/executor_steps.hpp"

using namespace cudacnn;
using namespace cudacnn::graph;
using cudacnn::test::bit_identical;

namespace {

bool have_device() {
    if (gpu_status().available) return true;
    WARN("skipped: no GPU here (" << gpu_status().description << ")");
    return false;
}

// r2 and r4 fold into the dropouts after them (r4's with p = 0; its input l3 has a second use, so l3's gradient
// is a sum); r1 is fused into its batch norm already, so d1 stays a plain dropout; r3 has two uses (d3 and the
// add), so it stays a ReLU.
ModelSpec relu_dropout_spec() {
    return parse_model_spec(nlohmann::json::parse(R"({
        "name": "relu_dropout", "input": [3, 8, 8], "num_classes": 4,
        "layers": [
            {"name": "c1", "type": "conv2d", "in_channels": 3, "out_channels": 4, "kernel_size": 3, "padding": 1},
            {"name": "bn", "type": "batch_norm2d", "num_features": 4},
            {"name": "r1", "type": "relu"},
            {"name": "d1", "type": "dropout", "p": 0.25},
            {"name": "p", "type": "max_pool2d", "kernel_size": 2},
            {"name": "flat", "type": "flatten"},
            {"name": "l1", "type": "linear", "in_features": 64, "out_features": 33},
            {"name": "r2", "type": "relu"},
            {"name": "d2", "type": "dropout", "p": 0.5},
            {"name": "l2", "type": "linear", "in_features": 33, "out_features": 16},
            {"name": "r3", "type": "relu"},
            {"name": "d3", "type": "dropout", "p": 0.3},
            {"name": "sum", "type": "add", "inputs": ["d3", "r3"]},
            {"name": "l3", "type": "linear", "in_features": 16, "out_features": 15},
            {"name": "r4", "type": "relu"},
            {"name": "d4", "type": "dropout", "p": 0.0},
            {"name": "sum2", "type": "add", "inputs": ["d4", "l3"]},
            {"name": "head", "type": "linear", "in_features": 15, "out_features": 4}
        ]})"),
                             "relu_dropout_spec");
}

struct Run {
    io::StateDict model, optimizer, gradients, eval_gradients;
    std::vector<Metrics> metrics;
    int64_t graph_launches = 0;
    std::string description;
};

ExecutorOptions gpu_options(bool fuse_relu, bool cuda_graph) {
    ExecutorOptions options;
    options.backend = Backend::gpu;
    options.fuse_relu = fuse_relu;
    options.cuda_graph = cuda_graph;
    options.batch_size = 4;
    options.seed = 21;
    options.optimizer.kind = OptimizerKind::adam;
    options.optimizer.lr = 1e-2;
    return options;
}

// Training steps with full and partial batches (new dropout masks each step), a learning-rate change,
// evaluation steps, then the gradients of a training and of an evaluation-mode forward and backward.
Run run_steps(bool fuse_relu, bool cuda_graph) {
    Executor executor(build_graph(relu_dropout_spec()), gpu_options(fuse_relu, cuda_graph));
    executor.initialize(21);
    Run run;
    test::run_test_steps(executor, run.metrics);
    run.model = executor.model_state();
    run.optimizer = executor.optimizer_state();
    executor.forward_backward(executor.optimizer_steps());
    run.metrics.push_back(executor.read_metrics());
    run.gradients = executor.gradients();
    executor.eval_forward_backward();
    run.metrics.push_back(executor.read_metrics());
    run.eval_gradients = executor.gradients();
    run.graph_launches = executor.cuda_graph_launches();
    for (const std::string& line : executor.describe()) run.description += line + "\n";
    return run;
}

}  // namespace

TEST_CASE("ReLUs folded into dropouts train bit for bit as separate ones, and the executor says which",
          "[executor][gpu][fused][relu_dropout]") {
    if (!have_device()) return;
    for (const bool cuda_graph : {false, true}) {
        INFO("cuda_graph " << cuda_graph);
        const Run fused = run_steps(true, cuda_graph);
        const Run separate = run_steps(false, cuda_graph);
        CHECK(bit_identical(fused.model, separate.model));
        CHECK(bit_identical(fused.optimizer, separate.optimizer));
        CHECK(bit_identical(fused.gradients, separate.gradients));
        CHECK(bit_identical(fused.eval_gradients, separate.eval_gradients));
        REQUIRE(fused.metrics.size() == separate.metrics.size());
        for (std::size_t k = 0; k < fused.metrics.size(); ++k) {
            CHECK(fused.metrics[k].loss_sum == separate.metrics[k].loss_sum);
            CHECK(fused.metrics[k].correct == separate.metrics[k].correct);
        }
        // The folded kernels are captured and replayed like the separate ones: steps 0-3 eager, capture,
        // replay, replay; 4-5 recaptured after the lr change; 6 at batch 3 eager; 7-8 replayed; eval twice.
        CHECK(fused.graph_launches == (cuda_graph ? 3 + 2 + 2 + 2 : 0));
        CHECK(fused.graph_launches == separate.graph_launches);
        CHECK_THAT(fused.description, Catch::Contains("r2: fused into dropout 'd2'") &&
                                          Catch::Contains("r4: fused into dropout 'd4'") &&
                                          Catch::Contains("r1: fused into batch norm 'bn'") &&
                                          !Catch::Contains("r3: fused"));
        CHECK_THAT(separate.description, !Catch::Contains("fused into"));
    }
}

TEST_CASE("ReLUs stay out of dropouts that do not run or where every output is read",
          "[executor][gpu][fused][relu_dropout]") {
    if (!have_device()) return;
    const auto described = [](const ExecutorOptions& options) {
        std::string text;
        for (const std::string& line : Executor(build_graph(relu_dropout_spec()), options).describe()) {
            text += line + "\n";
        }
        return text;
    };
    ExecutorOptions options = gpu_options(true, true);
    CHECK_THAT(described(options), Catch::Contains("fused into dropout"));
    options.dropout = false;  // --no-dropout: the dropouts are aliases, the ReLUs run
    CHECK_THAT(described(options), !Catch::Contains("fused into dropout"));
    options.dropout = true;
    options.keep_activations = true;
    CHECK_THAT(described(options), !Catch::Contains("fused into"));
    options.keep_activations = false;
    options.detect_anomaly = true;
    CHECK_THAT(described(options), !Catch::Contains("fused into"));
    options.detect_anomaly = false;
    options.backend = Backend::cpu;  // the CPU backends run every ReLU themselves
    CHECK_THAT(described(options), !Catch::Contains("fused into"));
}

TEST_CASE("the CifarCNN folds the ReLU before its last dropout", "[executor][gpu][fused][relu_dropout]") {
    if (!have_device()) return;
    ExecutorOptions options;
    options.backend = Backend::gpu;
    options.batch_size = 2;
    std::string text;
    for (const std::string& line : Executor(build_graph(builtin_model("cifar_cnn")), options).describe()) {
        text += line + "\n";
    }
    // fc_layer: dropout (after the flatten: stays), linear, relu, linear, relu (folded), dropout, linear.
    CHECK_THAT(text, Catch::Contains("fc_layer.4: fused into dropout 'fc_layer.5'") &&
                         !Catch::Contains("fc_layer.2: fused"));
}
