// --precision bf16 in the executor (the GPU backend): every activation in bf16 with casts at the edges (the
// f32 input batch, the f32 logits for the loss), f32 master weights with bf16 copies the layers read.
// Replayed CUDA graphs equal eager steps bit for bit (the casts and the copies' refresh are captured),
// checkpoints stay f32 and interchange with fp32 runs, kept activations and --detect-anomaly read bf16, and a
// layer without bf16 kernels is refused by name. The step's accuracy against the reference is executor_test's
// "--precision bf16" case.
#include <catch2/catch.hpp>

#include <cmath>
#include <limits>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "cudacnn/graph/executor.hpp"
#include "support/bf16.hpp"
#include "support/compare.hpp"
#include "support/executor_steps.hpp"
#include "support/parity.hpp"

using namespace cudacnn;
using namespace cudacnn::graph;

namespace {

// Every kind with bf16 kernels and every fusion: a conv bias folded into bn1, a ReLU fused into bn1 and one
// into the max pooling, a dropout folded into that pooling, an add whose inputs both need gradients, a
// dropout2d, average pooling and two linear layers with a dropout between them.
ModelSpec bf16_spec() {
    return parse_model_spec(nlohmann::json::parse(R"({
        "name": "bf16_kinds", "input": [3, 8, 8], "num_classes": 4,
        "layers": [
            {"name": "c1", "type": "conv2d", "in_channels": 3, "out_channels": 6, "kernel_size": 3, "padding": 1},
            {"name": "bn1", "type": "batch_norm2d", "num_features": 6},
            {"name": "r1", "type": "relu"},
            {"name": "c2", "type": "conv2d", "in_channels": 6, "out_channels": 6, "kernel_size": 3, "padding": 1},
            {"name": "sum", "type": "add", "inputs": ["c2", "r1"]},
            {"name": "r2", "type": "relu"},
            {"name": "p1", "type": "max_pool2d", "kernel_size": 2},
            {"name": "d1", "type": "dropout", "p": 0.25},
            {"name": "d2", "type": "dropout2d", "p": 0.25},
            {"name": "p2", "type": "avg_pool2d", "kernel_size": 2},
            {"name": "flat", "type": "flatten"},
            {"name": "fc1", "type": "linear", "in_features": 24, "out_features": 16},
            {"name": "r3", "type": "relu"},
            {"name": "d3", "type": "dropout", "p": 0.5},
            {"name": "fc2", "type": "linear", "in_features": 16, "out_features": 4}
        ]})"),
                            "bf16_spec");
}

ExecutorOptions gpu_options(const std::string& precision, bool cuda_graph) {
    ExecutorOptions options;
    options.backend = Backend::gpu;
    options.precision = precision;
    options.cuda_graph = cuda_graph;
    options.batch_size = 4;
    options.seed = 31;
    options.optimizer.kind = OptimizerKind::sgd;
    options.optimizer.lr = 5e-2;
    options.optimizer.momentum = 0.9;
    return options;
}

test::StepRun run_steps(const std::string& precision, bool cuda_graph) {
    Executor executor(build_graph(bf16_spec()), gpu_options(precision, cuda_graph));
    executor.initialize(31);
    return test::run_compared_steps(executor);
}

HostTensor<float> test_images(float scale = 1.0f) {
    HostTensor<float> x(Shape{4, 3, 8, 8});
    for (int64_t i = 0; i < x.numel(); ++i) x[i] = scale * std::sin(0.05f * static_cast<float>(i));
    return x;
}

const std::vector<int64_t> kLabels{0, 1, 2, 3};

// One step's gradients, bf16 against fp32: a bf16 rounding per layer, amplified below the batch norm (as
// executor_test's kBf16DeepGradientTolerance). Measured on the emulator: up to 0.078 (c2's weight); bound
// 0.25.
constexpr double kOneStepGradientTolerance = 0.25;
// Nine steps' losses, bf16 against fp32 with the same dropout masks: measured within 0.41% (the fourth
// evaluation); bound 2%. (The parameters drift further apart, up to 0.24 of a tensor's largest value: SGD
// with momentum 0.9 at lr 0.05 accumulates nine steps of gradients that differ by up to 8% each.)
constexpr double kNineStepLossTolerance = 2e-2;

Shape batch_of_4(const Shape& per_sample) {
    std::vector<int64_t> dims{4};
    for (int64_t d : per_sample.dims()) dims.push_back(d);
    return Shape(dims);
}

}  // namespace

TEST_CASE("bf16 steps replayed from CUDA graphs equal eager bf16 steps bit for bit",
          "[executor][gpu][bf16]") {
    if (!test::have_gpu_backend()) return;
    const test::StepRun eager = run_steps("bf16", false);
    test::StepRun graphed = run_steps("bf16", true);
    CHECK(graphed.graph_launches == 3 + 2 + 2 + 2);  // run_compared_steps' steps, as in the f32 graph tests
    graphed.graph_launches = eager.graph_launches;
    test::check_same_steps(graphed, eager);
    CHECK(test::bitwise_equal(graphed.eval_logits, eager.eval_logits));
    CHECK_THAT(graphed.description, Catch::Contains("BF16"));
}

TEST_CASE("bf16 training stays close to fp32 training, and its checkpoints are f32 ones",
          "[executor][gpu][bf16]") {
    if (!test::have_gpu_backend()) return;
    {  // One step's gradients from the same weights (every kind above, the add's accumulated gradient too).
        const auto gradients = [](const std::string& precision) {
            ExecutorOptions options = gpu_options(precision, false);
            options.dropout = false;
            Executor executor(build_graph(bf16_spec()), options);
            executor.initialize(31);
            const HostTensor<float> x = test_images();
            executor.set_batch(x.data(), kLabels.data(), 4);
            executor.forward_backward(0);
            return executor.gradients();
        };
        const io::StateDict bf16 = gradients("bf16"), fp32 = gradients("fp32");
        for (const std::string& name : fp32.names()) {
            // A conv bias before a training-mode batch norm has gradient 0 exactly: both runs hold rounding
            // noise.
            if (name == "c1.bias") continue;
            const double error = test::max_relative_error(bf16.f32(name), fp32.f32(name));
            INFO(name << ": " << error);
            CHECK(error <= kOneStepGradientTolerance);
        }
    }
    const test::StepRun bf16 = run_steps("bf16", true);
    const test::StepRun fp32 = run_steps("fp32", true);
    REQUIRE(bf16.metrics.size() == fp32.metrics.size());
    for (std::size_t k = 0; k < fp32.metrics.size(); ++k) {
        INFO("metrics " << k << ": " << bf16.metrics[k].loss_sum << " against " << fp32.metrics[k].loss_sum);
        CHECK(std::fabs(bf16.metrics[k].loss_sum - fp32.metrics[k].loss_sum) <=
              kNineStepLossTolerance * std::fabs(fp32.metrics[k].loss_sum));
        CHECK(bf16.metrics[k].samples == fp32.metrics[k].samples);
    }

    // The bf16 run's state_dict is f32 (its master weights) and loads into an fp32 executor, and back.
    Executor fp32_executor(build_graph(bf16_spec()), gpu_options("fp32", false));
    fp32_executor.load_model_state(bf16.model, "the bf16 run");
    CHECK(test::bit_identical(fp32_executor.model_state(), bf16.model));
    Executor bf16_executor(build_graph(bf16_spec()), gpu_options("bf16", false));
    bf16_executor.load_model_state(fp32.model, "the fp32 run");
    CHECK(test::bit_identical(bf16_executor.model_state(), fp32.model));
    // Loading rewrote the layers' bf16 copies: an evaluation of the loaded weights matches the fp32 run's to
    // bf16 rounding, not the freshly initialized weights'.
    const HostTensor<float> x = test_images();
    bf16_executor.set_batch(x.data(), kLabels.data(), 4);
    bf16_executor.eval_step();
    fp32_executor.load_model_state(fp32.model, "the fp32 run");
    fp32_executor.set_batch(x.data(), kLabels.data(), 4);
    fp32_executor.eval_step();
    CHECK(test::max_relative_error(bf16_executor.logits(), fp32_executor.logits()) <= 0.05);
}

TEST_CASE("bf16 activations read back as floats: kept outputs, the input gradient", "[executor][gpu][bf16]") {
    if (!test::have_gpu_backend()) return;
    ExecutorOptions options = gpu_options("bf16", false);
    options.keep_activations = true;
    options.input_gradient = true;
    options.dropout = false;
    Executor executor(build_graph(bf16_spec()), options);
    executor.initialize(31);
    const HostTensor<float> x = test_images();
    executor.set_batch(x.data(), kLabels.data(), 4);
    executor.forward_backward(0);
    const Graph& graph = executor.graph();
    for (int node = 0; node < static_cast<int>(graph.nodes.size()) - 1; ++node) {
        INFO(graph.nodes[node].spec.name);
        const HostTensor<float> y = executor.output(node);
        CHECK(y.shape() == batch_of_4(graph.nodes[node].output));
        CHECK(test::bitwise_equal(y, test::round_to_bf16(y)));  // bf16 values, widened exactly
    }
    // The logits are the loss's f32 copy of the last layer's bf16 output: bf16 values too.
    CHECK(test::bitwise_equal(executor.logits(), test::round_to_bf16(executor.logits())));
    const HostTensor<float> dx = executor.input_gradient();
    CHECK(dx.shape() == x.shape());
    CHECK(test::bitwise_equal(dx, test::round_to_bf16(dx)));
    double largest = 0.0;
    for (int64_t i = 0; i < dx.numel(); ++i)
        largest = std::max(largest, std::fabs(static_cast<double>(dx[i])));
    CHECK(largest > 0.0);
}

TEST_CASE("--detect-anomaly names the layer whose bf16 output overflows", "[executor][gpu][bf16]") {
    if (!test::have_gpu_backend()) return;
    ExecutorOptions options = gpu_options("bf16", false);
    options.detect_anomaly = true;
    Executor executor(build_graph(bf16_spec()), options);
    executor.initialize(31);
    // Finite in f32 and in bf16 (the largest bf16 is 3.39e38), but c1's sums of 27 such products are not.
    const HostTensor<float> x = test_images(3e38f);
    executor.set_batch(x.data(), kLabels.data(), 4);
    CHECK_THROWS_WITH(executor.train_step(0), Catch::Contains("the forward output of layer 'c1' (conv2d)"));
}

TEST_CASE("--precision bf16 refuses a model with a layer that has no bf16 kernels, naming it",
          "[executor][gpu][bf16]") {
    if (!test::have_gpu_backend()) return;
    const ModelSpec spec = parse_model_spec(nlohmann::json::parse(R"({
        "name": "with_concat", "input": [3, 8, 8], "num_classes": 4,
        "layers": [
            {"name": "c1", "type": "conv2d", "in_channels": 3, "out_channels": 2, "kernel_size": 3, "padding": 1},
            {"name": "c2", "type": "conv2d", "in_channels": 3, "out_channels": 2, "kernel_size": 3, "padding": 1,
             "inputs": ["input"]},
            {"name": "cat", "type": "concat", "inputs": ["c1", "c2"]},
            {"name": "flat", "type": "flatten"},
            {"name": "fc", "type": "linear", "in_features": 256, "out_features": 4}
        ]})"),
                                            "with_concat");
    CHECK_THROWS_WITH(
        Executor(build_graph(spec), gpu_options("bf16", false)),
        Catch::Contains("layer 'cat' (concat) has no bf16 kernels") && Catch::Contains("--precision fp32"));
    CHECK_NOTHROW(Executor(build_graph(spec), gpu_options("fp32", false)));
}

TEST_CASE(
    "--precision bf16 convolutions: auto, implicit, own and fastest run, the f32-only algorithms say so",
    "[executor][gpu][bf16][conv_algo]") {
    if (!test::have_gpu_backend()) return;
    const Graph graph = build_graph(bf16_spec());
    for (const std::string algo : {"auto", "implicit", "own", "fastest"}) {
        ExecutorOptions options = gpu_options("bf16", false);
        options.conv_algo = algo;
        const std::string text = test::description(Executor(graph, options));
        INFO(algo << ":\n" << text);
#if CUDACNN_EMU
        CHECK_THAT(text, Catch::Contains("implicit"));  // no cuDNN in the emu flavour
#endif
        if (algo == "fastest") CHECK_THAT(text, Catch::Contains("im2col: no bf16 kernels"));
    }
    for (const std::string algo : {"direct", "im2col", "winograd", "winograd4"}) {
        ExecutorOptions options = gpu_options("bf16", false);
        options.conv_algo = algo;
        CHECK_THROWS_WITH(Executor(graph, options),
                          Catch::Contains("--conv-algo " + algo + " has no bf16 kernels") &&
                              Catch::Contains("choose auto, cudnn, implicit, own or fastest"));
    }
}

TEST_CASE("a bf16 model without parameters initializes and evaluates", "[executor][gpu][bf16]") {
    if (!test::have_gpu_backend()) return;
    const ModelSpec spec = parse_model_spec(nlohmann::json::parse(R"({
        "name": "no_parameters", "input": [4, 2, 2], "num_classes": 4,
        "layers": [
            {"name": "pool", "type": "avg_pool2d", "kernel_size": 2},
            {"name": "flat", "type": "flatten"}
        ]})"),
                                            "no_parameters");
    Executor executor(build_graph(spec), gpu_options("bf16", false));
    executor.initialize(31);  // no parameters: nothing to copy to bf16
    HostTensor<float> x(Shape{4, 4, 2, 2});
    for (int64_t i = 0; i < x.numel(); ++i) x[i] = 0.25f * static_cast<float>(i % 7);
    executor.set_batch(x.data(), kLabels.data(), 4);
    executor.eval_step();
    const HostTensor<float> logits = executor.logits();
    // Each logit is the mean of its 2×2 plane: exact in bf16 here (quarters of small integers).
    for (int64_t n = 0; n < 4; ++n) {
        for (int64_t c = 0; c < 4; ++c) {
            float sum = 0.0f;
            for (int64_t k = 0; k < 4; ++k) sum += x[(n * 4 + c) * 4 + k];
            CHECK(logits[n * 4 + c] == sum / 4.0f);
        }
    }
}
