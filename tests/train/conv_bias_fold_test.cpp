// Conv biases folded into the training-mode batch norm after them (ExecutorOptions::fold_conv_bias on the GPU
// backend: the conv runs without its bias, the batch norm adds it to its running mean only): training,
// evaluation and CUDA graphs give what unfolded runs give up to float rounding, and the executor says which
// convs it folded and leaves the others alone.
#include <catch2/catch.hpp>

#include <cmath>
#include <map>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "cudacnn/device.hpp"
#include "cudacnn/graph/executor.hpp"
#include "support/compare.hpp"
#include "support/executor_steps.hpp"
#include "support/state_close.hpp"

using namespace cudacnn;
using namespace cudacnn::graph;

namespace {

// c1 → bn1 → r1 (a fused ReLU) and c2 → bn2 fold; c3's output is also added to bn3's, so it keeps its bias;
// c4 → bn4 without running statistics folds in evaluation steps too; c5 has no bias; the head is linear.
ModelSpec conv_bn_spec() {
    return parse_model_spec(nlohmann::json::parse(R"({
        "name": "conv_bn", "input": [3, 8, 8], "num_classes": 4,
        "layers": [
            {"name": "c1", "type": "conv2d", "in_channels": 3, "out_channels": 4, "kernel_size": 3, "padding": 1},
            {"name": "bn1", "type": "batch_norm2d", "num_features": 4},
            {"name": "r1", "type": "relu"},
            {"name": "c2", "type": "conv2d", "in_channels": 4, "out_channels": 5, "kernel_size": 3, "padding": 1},
            {"name": "bn2", "type": "batch_norm2d", "num_features": 5},
            {"name": "c3", "type": "conv2d", "in_channels": 5, "out_channels": 5, "kernel_size": 3, "padding": 1},
            {"name": "bn3", "type": "batch_norm2d", "num_features": 5},
            {"name": "sum", "type": "add", "inputs": ["bn3", "c3"]},
            {"name": "c4", "type": "conv2d", "in_channels": 5, "out_channels": 6, "kernel_size": 3, "padding": 1},
            {"name": "bn4", "type": "batch_norm2d", "num_features": 6, "track_running_stats": false},
            {"name": "r4", "type": "relu"},
            {"name": "c5", "type": "conv2d", "in_channels": 6, "out_channels": 6, "kernel_size": 3, "padding": 1,
             "bias": false},
            {"name": "bn5", "type": "batch_norm2d", "num_features": 6},
            {"name": "p", "type": "max_pool2d", "kernel_size": 2},
            {"name": "flat", "type": "flatten"},
            {"name": "head", "type": "linear", "in_features": 96, "out_features": 4}
        ]})"),
                            "conv_bn_spec");
}

// SGD with momentum, not Adam: a folded conv's bias gradient is Σ of the batch norm's dx over a channel,
// exactly 0, so what either run computes is rounding noise, which Adam would scale up to ±lr steps (in both
// runs, differently: PyTorch's biases before a batch norm wander alike); SGD moves them by lr · noise.
ExecutorOptions gpu_options(bool fold, bool cuda_graph) {
    ExecutorOptions options;
    options.backend = Backend::gpu;
    options.fold_conv_bias = fold;
    options.cuda_graph = cuda_graph;
    options.batch_size = 4;
    options.seed = 23;
    options.optimizer.kind = OptimizerKind::sgd;
    options.optimizer.lr = 5e-2;
    options.optimizer.momentum = 0.9;
    return options;
}

// test::run_compared_steps' steps, checks and reads.
test::StepRun run_steps(bool fold, bool cuda_graph) {
    Executor executor(build_graph(conv_bn_spec()), gpu_options(fold, cuda_graph));
    executor.initialize(23);
    return test::run_compared_steps(executor);
}

// Folded and unfolded runs differ where the conv's output is rounded: x' + b against x' (≤ 2^-24 of |x' + b|
// per value), then the batch norm's statistics and outputs (≲ 1e-6 of the spread, batch_norm_parity_test's
// bounds), gradients through up to five layers at batch size 4 (1/std amplifies), nine SGD steps that feed
// the differences back. Measured on the emulator: ≤ 8e-6 relative to each tensor's largest value
// (max_relative_error; parameters, running statistics, momentum buffers, gradients, logits, losses); 1e-4
// leaves room for other summation orders, and a running mean without its bias is off by
// |b| / max|mean| ≳ 0.1.
constexpr double kFoldTolerance = 1e-4;
// A folded conv's bias gradient is rounding noise around 0 (see gpu_options) in both runs: bounded against
// the same conv's weight gradient (2^-24 · Σ|dy| per sum; measured ≤ 2e-7 of it), not against itself.
constexpr double kFoldedBiasGradientTolerance = 1e-5;

// Folded conv biases: c1, c2 and c4.
void check_close(const io::StateDict& a, const io::StateDict& b, bool gradients) {
    const test::StateTolerance tolerance{
        kFoldTolerance, {"c1.bias", "c2.bias", "c4.bias"}, kFoldedBiasGradientTolerance};
    test::check_state_close(a, b, tolerance, gradients);
}

}  // namespace

TEST_CASE("conv biases folded into batch norms train as unfolded ones, and the executor says which",
          "[executor][gpu][fused][bias_fold]") {
    if (!test::have_gpu_backend()) return;
    for (const bool cuda_graph : {false, true}) {
        INFO("cuda_graph " << cuda_graph);
        const test::StepRun folded = run_steps(true, cuda_graph);
        const test::StepRun unfolded = run_steps(false, cuda_graph);
        check_close(folded.model, unfolded.model, false);
        check_close(folded.optimizer, unfolded.optimizer, true);  // momentum buffers: sums of gradients
        check_close(folded.gradients, unfolded.gradients, true);
        check_close(folded.eval_gradients, unfolded.eval_gradients, true);
        CHECK(test::max_relative_error(folded.eval_logits, unfolded.eval_logits) <= kFoldTolerance);
        REQUIRE(folded.metrics.size() == unfolded.metrics.size());
        for (std::size_t k = 0; k < folded.metrics.size(); ++k) {
            INFO("metrics " << k);
            CHECK(std::fabs(folded.metrics[k].loss_sum - unfolded.metrics[k].loss_sum) <=
                  kFoldTolerance * std::fabs(unfolded.metrics[k].loss_sum));
            CHECK(folded.metrics[k].samples == unfolded.metrics[k].samples);
        }
        // Folded steps are captured and replayed like unfolded ones.
        CHECK(folded.graph_launches == (cuda_graph ? 3 + 2 + 2 + 2 : 0));
        CHECK(folded.graph_launches == unfolded.graph_launches);
        CHECK_THAT(folded.description,
                   Catch::Contains("c1: bias folded into batch norm 'bn1' (training steps)") &&
                       Catch::Contains("c2: bias folded into batch norm 'bn2' (training steps)") &&
                       Catch::Contains("c4: bias folded into batch norm 'bn4' (every step)") &&
                       !Catch::Contains("c3: bias folded") && !Catch::Contains("c5: bias folded"));
        CHECK_THAT(unfolded.description, !Catch::Contains("bias folded"));
    }
}

TEST_CASE("conv biases stay unfolded where every output is read or the backend does not fold",
          "[executor][gpu][fused][bias_fold]") {
    if (!test::have_gpu_backend()) return;
    const auto described = [](const ExecutorOptions& options) {
        return test::description(Executor(build_graph(conv_bn_spec()), options));
    };
    ExecutorOptions options = gpu_options(true, true);
    CHECK_THAT(described(options), Catch::Contains("bias folded"));
    options.keep_activations = true;
    CHECK_THAT(described(options), !Catch::Contains("bias folded"));
    options.keep_activations = false;
    options.detect_anomaly = true;
    CHECK_THAT(described(options), !Catch::Contains("bias folded"));
    options.detect_anomaly = false;
    options.backend = Backend::cpu;  // the CPU backends add every bias in the conv
    CHECK_THAT(described(options), !Catch::Contains("bias folded"));
}

TEST_CASE("a profile names the batch norm each folded conv bias went into",
          "[executor][gpu][fused][bias_fold]") {
    if (!test::have_gpu_backend()) return;
    Executor executor(build_graph(conv_bn_spec()), gpu_options(true, true));
    executor.initialize(23);
    std::map<std::string, std::string> detail = test::profiled_step_details(executor);
    CHECK_THAT(detail.at("c1"), Catch::EndsWith("bias folded into 'bn1' in training steps"));
    CHECK_THAT(detail.at("c4"), Catch::EndsWith("bias folded into 'bn4'"));
    CHECK_THAT(detail.at("c3"), !Catch::Contains("folded"));
}

TEST_CASE("the CifarCNN folds each conv bias before a batch norm", "[executor][gpu][fused][bias_fold]") {
    if (!test::have_gpu_backend()) return;
    ExecutorOptions options;
    options.backend = Backend::gpu;
    options.batch_size = 2;
    const std::string text = test::description(Executor(build_graph(builtin_model("cifar_cnn")), options));
    // conv_layer: 0 conv, 1 BN, 2 ReLU, 3 conv (a ReLU after it: keeps its bias), …, 6 conv, 7 BN, …, 13
    // conv, 14 BN.
    CHECK_THAT(text, Catch::Contains("conv_layer.0: bias folded into batch norm 'conv_layer.1'") &&
                         Catch::Contains("conv_layer.6: bias folded into batch norm 'conv_layer.7'") &&
                         Catch::Contains("conv_layer.13: bias folded into batch norm 'conv_layer.14'") &&
                         !Catch::Contains("conv_layer.3: bias folded"));
}
