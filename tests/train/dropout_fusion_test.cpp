// ReLUs folded into the dropout after them (ExecutorOptions::fuse_relu on the GPU backend: one relu_dropout
// kernel each way instead of two): training, evaluation and CUDA graphs give the bits of separate ReLUs, and
// the executor says which ReLUs it folded and leaves the others alone.
#include <catch2/catch.hpp>

#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "cudacnn/graph/executor.hpp"
#include "support/executor_steps.hpp"

using namespace cudacnn;
using namespace cudacnn::graph;

namespace {

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
test::StepRun run_steps(bool fuse_relu, bool cuda_graph) {
    Executor executor(build_graph(relu_dropout_spec()), gpu_options(fuse_relu, cuda_graph));
    executor.initialize(21);
    return test::run_compared_steps(executor);
}

}  // namespace

TEST_CASE("ReLUs folded into dropouts train bit for bit as separate ones, and the executor says which",
          "[executor][gpu][fused][relu_dropout]") {
    if (!test::have_gpu_backend()) return;
    for (const bool cuda_graph : {false, true}) {
        INFO("cuda_graph " << cuda_graph);
        const test::StepRun fused = run_steps(true, cuda_graph);
        const test::StepRun separate = run_steps(false, cuda_graph);
        test::check_same_steps(fused, separate);
        // The folded kernels are captured and replayed like the separate ones: steps 0-3 eager, capture,
        // replay, replay; 4-5 recaptured after the lr change; 6 at batch 3 eager; 7-8 replayed; eval twice.
        CHECK(fused.graph_launches == (cuda_graph ? 3 + 2 + 2 + 2 : 0));
        CHECK_THAT(fused.description, Catch::Contains("r2: fused into dropout 'd2'") &&
                                          Catch::Contains("r4: fused into dropout 'd4'") &&
                                          Catch::Contains("r1: fused into batch norm 'bn'") &&
                                          !Catch::Contains("r3: fused"));
        CHECK_THAT(separate.description, !Catch::Contains("fused into"));
    }
}

TEST_CASE("ReLUs stay out of dropouts that do not run or where every output is read",
          "[executor][gpu][fused][relu_dropout]") {
    if (!test::have_gpu_backend()) return;
    const auto described = [](const ExecutorOptions& options) {
        return test::description(Executor(build_graph(relu_dropout_spec()), options));
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
    if (!test::have_gpu_backend()) return;
    ExecutorOptions options;
    options.backend = Backend::gpu;
    options.batch_size = 2;
    const std::string text = test::description(Executor(build_graph(builtin_model("cifar_cnn")), options));
    // fc_layer: dropout (after the flatten: no ReLU before it; it folds into the max pooling instead, see
    // pool_dropout_fusion_test.cpp), linear, relu, linear, relu (folded), dropout, linear.
    CHECK_THAT(text, Catch::Contains("fc_layer.4: fused into dropout 'fc_layer.5'") &&
                         !Catch::Contains("fc_layer.2: fused"));
}
