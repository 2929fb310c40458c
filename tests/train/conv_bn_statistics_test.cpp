// Batch norm statistics from the conv2d before it (ExecutorOptions::fuse_conv_bn_statistics on the GPU
// backend: the implicit GEMM's forward writes per-channel partial statistics of its output as it stores it,
// and the training-mode batch norm merges them instead of reading that output once more): the conv's output
// is the same bits, training and evaluation give what the batch norm's own statistics give up to float
// rounding, in FP32 and bf16, NCHW and NHWC, eagerly and from CUDA graphs; and the executor says which convs
// write them.
#include <catch2/catch.hpp>

#include <cmath>
#include <cstring>
#include <map>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "cudacnn/graph/executor.hpp"
#include "support/compare.hpp"
#include "support/executor_steps.hpp"
#include "support/state_close.hpp"

using namespace cudacnn;
using namespace cudacnn::graph;

namespace {

// c1 → bn1 → r1 (the batch norm applies the ReLU: the _relu variant), c2 (no bias) → bn2, c3 → bn3 without
// running statistics, whose output is added to c3's own (the conv's output is read twice), then a pooling and
// a linear head.
ModelSpec conv_bn_spec() {
    return parse_model_spec(nlohmann::json::parse(R"({
        "name": "conv_bn_statistics", "input": [3, 8, 8], "num_classes": 4,
        "layers": [
            {"name": "c1", "type": "conv2d", "in_channels": 3, "out_channels": 4, "kernel_size": 3, "padding": 1},
            {"name": "bn1", "type": "batch_norm2d", "num_features": 4},
            {"name": "r1", "type": "relu"},
            {"name": "c2", "type": "conv2d", "in_channels": 4, "out_channels": 5, "kernel_size": 3, "padding": 1,
             "bias": false},
            {"name": "bn2", "type": "batch_norm2d", "num_features": 5},
            {"name": "c3", "type": "conv2d", "in_channels": 5, "out_channels": 6, "kernel_size": 3, "padding": 1},
            {"name": "bn3", "type": "batch_norm2d", "num_features": 6, "track_running_stats": false},
            {"name": "sum", "type": "add", "inputs": ["bn3", "c3"]},
            {"name": "r3", "type": "relu"},
            {"name": "p", "type": "max_pool2d", "kernel_size": 2},
            {"name": "flat", "type": "flatten"},
            {"name": "head", "type": "linear", "in_features": 96, "out_features": 4}
        ]})"),
                            "conv_bn_statistics_spec");
}

struct Variant {
    const char* precision;
    const char* memory_format;
    bool cuda_graph;
};

// The implicit GEMM, whose FP32 and bf16 forwards write the statistics. SGD with momentum, as in
// conv_bias_fold_test: the conv biases' gradients are rounding noise around 0, which Adam would scale up.
ExecutorOptions gpu_options(const Variant& v, bool fuse) {
    ExecutorOptions options;
    options.backend = Backend::gpu;
    options.conv_algo = "implicit";
    options.precision = v.precision;
    options.memory_format = v.memory_format;
    options.cuda_graph = v.cuda_graph;
    options.fuse_conv_bn_statistics = fuse;
    options.batch_size = 4;
    options.seed = 29;
    options.optimizer.kind = OptimizerKind::sgd;
    options.optimizer.lr = 5e-2;
    options.optimizer.momentum = 0.9;
    return options;
}

test::StepRun run_steps(const Variant& v, bool fuse) {
    Executor executor(build_graph(conv_bn_spec()), gpu_options(v, fuse));
    executor.initialize(29);
    return test::run_compared_steps(executor);
}

// The two runs differ where the batch norms' statistics are summed: Chan's merge of 128-value tiles against
// batch_norm2d's own reduction, each exact to a few ulps of the mean and variance (batch_norm_parity_test's
// bounds, ≲ 1e-6 of the spread); through 1/std, gradients over up to three batch norms at batch size 4 and
// nine SGD steps that feed the differences back, as in conv_bias_fold_test (kFoldTolerance, 1e-4, which also
// bounds this). Measured on the emulator: ≤ 1.7e-5 relative to each tensor's largest value in FP32.
constexpr double kFp32Tolerance = 1e-4;
// bf16: a statistic that differs in its last float bits moves a normalized value across a bf16 rounding
// boundary now and then (2^-8 of it), and nine steps feed that back. Measured on the emulator: ≤ 3e-7 (no
// flip in these runs); 2e-2 is precision_bf16_test's nine-step loss bound, which allows such flips.
constexpr double kBf16Tolerance = 2e-2;
// A conv bias's gradient is rounding noise around 0 (see state_close.hpp), bounded against the conv's weight
// gradient as in conv_bias_fold_test (measured ≤ 2e-7 of it in FP32); bf16's noise is its rounding of dy.
constexpr double kFp32BiasNoise = 1e-5;
constexpr double kBf16BiasNoise = 2e-2;

}  // namespace

TEST_CASE(
    "batch norm statistics from the conv's forward train as the batch norm's own, and the executor says so",
    "[executor][gpu][fused][conv_bn_stats]") {
    if (!test::have_gpu_backend()) return;
    for (const Variant& v :
         {Variant{"fp32", "nchw", false}, Variant{"fp32", "nchw", true}, Variant{"fp32", "nhwc", true},
          Variant{"bf16", "nchw", true}, Variant{"bf16", "nhwc", true}}) {
        INFO(v.precision << " " << v.memory_format << (v.cuda_graph ? " with CUDA graphs" : " eager"));
        const bool bf16 = std::string(v.precision) == "bf16";
        const test::StateTolerance tolerance{bf16 ? kBf16Tolerance : kFp32Tolerance,
                                             {"c1.bias", "c3.bias"},
                                             bf16 ? kBf16BiasNoise : kFp32BiasNoise};
        const test::StepRun fused = run_steps(v, true);
        const test::StepRun separate = run_steps(v, false);
        test::check_state_close(fused.model, separate.model, tolerance, false);
        test::check_state_close(fused.optimizer, separate.optimizer, tolerance, true);
        test::check_state_close(fused.gradients, separate.gradients, tolerance, true);
        // Not eval_gradients: evaluation passes never take the partials, so they see the fusion only through
        // the trained state (compared above), and their gradients pass through ReLU masks whose near-zero
        // inputs may flip between two such states (measured: one flip moved c1's FP32 NHWC weight gradient by
        // 8e-3). The next test compares evaluation passes from one state: bit for bit.
        CHECK(test::max_relative_error(fused.eval_logits, separate.eval_logits) <= tolerance.relative);
        REQUIRE(fused.metrics.size() == separate.metrics.size());
        for (std::size_t k = 0; k < fused.metrics.size(); ++k) {
            INFO("metrics " << k);
            CHECK(std::fabs(fused.metrics[k].loss_sum - separate.metrics[k].loss_sum) <=
                  tolerance.relative * std::fabs(separate.metrics[k].loss_sum));
            CHECK(fused.metrics[k].samples == separate.metrics[k].samples);
        }
        CHECK(fused.graph_launches == separate.graph_launches);
        CHECK_THAT(fused.description, Catch::Contains("c1: writes batch norm 'bn1''s batch statistics") &&
                                          Catch::Contains("c2: writes batch norm 'bn2''s batch statistics") &&
                                          Catch::Contains("c3: writes batch norm 'bn3''s batch statistics"));
        CHECK_THAT(separate.description, !Catch::Contains("batch statistics"));
    }
}

namespace {

// From one state (the initial weights, batch 4, keep_activations so that every output can be read, which
// also leaves every conv bias in its conv): an evaluation pass (which never takes the partials) gives the
// same bits, and a training pass the same c1 output bits (c1 reads the same input) and, after it, outputs and
// gradients within one step's rounding of the statistics.
struct OneStep {
    std::vector<HostTensor<float>> eval_outputs, train_outputs;
    io::StateDict eval_gradients, train_gradients;
    std::string description;
};

OneStep one_step(const Variant& v, bool fuse) {
    ExecutorOptions options = gpu_options(v, fuse);
    options.keep_activations = true;
    Executor executor(build_graph(conv_bn_spec()), options);
    executor.initialize(29);
    HostTensor<float> x(Shape{4, 3, 8, 8});
    for (int64_t i = 0; i < x.numel(); ++i) x[i] = std::cos(0.07f * static_cast<float>(i));
    const std::vector<int64_t> labels{3, 2, 1, 0};
    executor.set_batch(x.data(), labels.data(), 4);
    OneStep run;
    const auto outputs = [&] {
        std::vector<HostTensor<float>> out;
        for (int node = 0; node < 7; ++node) out.push_back(executor.output(node));  // c1 … bn3
        return out;
    };
    executor.eval_forward_backward();
    run.eval_outputs = outputs();
    run.eval_gradients = executor.gradients();
    executor.forward_backward(0);
    run.train_outputs = outputs();
    run.train_gradients = executor.gradients();
    run.description = test::description(executor);
    return run;
}

// One training pass, no feedback: a few ulps of the statistics, scaled by 1/std (batch_norm_parity_test's
// bounds) through up to three batch norms; measured on the emulator ≤ 6e-7 in FP32. bf16: a normalized value
// that crosses a bf16 rounding boundary moves by 2^-8 of itself, which 1e-2 allows; measured ≤ 2e-7 (no
// flip).
constexpr double kOneStepFp32Tolerance = 1e-5;
constexpr double kOneStepBf16Tolerance = 1e-2;

}  // namespace

TEST_CASE("from one state, writing the statistics in the conv changes a training pass by rounding only",
          "[executor][gpu][fused][conv_bn_stats]") {
    if (!test::have_gpu_backend()) return;
    for (const Variant& v : {Variant{"fp32", "nchw", false}, Variant{"fp32", "nhwc", false},
                             Variant{"bf16", "nchw", false}, Variant{"bf16", "nhwc", false}}) {
        INFO(v.precision << " " << v.memory_format);
        const OneStep fused = one_step(v, true);
        const OneStep separate = one_step(v, false);
        CHECK_THAT(fused.description, Catch::Contains("c2: writes batch norm 'bn2''s batch statistics"));
        CHECK_THAT(separate.description, !Catch::Contains("batch statistics"));
        CHECK(test::bit_identical(fused.eval_gradients, separate.eval_gradients));
        for (std::size_t k = 0; k < fused.eval_outputs.size(); ++k) {
            INFO("evaluation output " << k);
            CHECK(test::max_relative_error(fused.eval_outputs[k], separate.eval_outputs[k]) == 0.0);
        }
        const HostTensor<float>& c1 = fused.train_outputs[0];
        REQUIRE(c1.numel() == separate.train_outputs[0].numel());
        CHECK(std::memcmp(c1.data(), separate.train_outputs[0].data(), sizeof(float) * c1.numel()) == 0);
        const bool bf16 = std::string(v.precision) == "bf16";
        const double bound = bf16 ? kOneStepBf16Tolerance : kOneStepFp32Tolerance;
        for (std::size_t k = 1; k < fused.train_outputs.size(); ++k) {
            INFO("training output " << k);
            CHECK(test::max_relative_error(fused.train_outputs[k], separate.train_outputs[k]) <= bound);
        }
        const test::StateTolerance tolerance{
            bound, {"c1.bias", "c3.bias"}, bf16 ? kBf16BiasNoise : kFp32BiasNoise};
        test::check_state_close(fused.train_gradients, separate.train_gradients, tolerance, true);
    }
}

TEST_CASE("batch norms compute their own statistics where the conv cannot write them or the switch is off",
          "[executor][gpu][fused][conv_bn_stats]") {
    if (!test::have_gpu_backend()) return;
    const auto described = [](const ExecutorOptions& options) {
        return test::description(Executor(build_graph(conv_bn_spec()), options));
    };
    ExecutorOptions options = gpu_options(Variant{"fp32", "nchw", true}, true);
    CHECK_THAT(described(options), Catch::Contains("batch statistics"));
    options.conv_algo = "im2col";  // no epilogue of its own: GEMM, then the bias
    CHECK_THAT(described(options), !Catch::Contains("batch statistics"));
    options.conv_algo = "direct";
    CHECK_THAT(described(options), !Catch::Contains("batch statistics"));
    options.conv_algo = "implicit";
    options.fuse_conv_bn_statistics = false;
    CHECK_THAT(described(options), !Catch::Contains("batch statistics"));
    options.fuse_conv_bn_statistics = true;
    options.backend = Backend::cpu;  // the CPU backends compute batch norm statistics in the batch norm
    CHECK_THAT(described(options), !Catch::Contains("batch statistics"));
}

TEST_CASE("a profile names the batch norm whose statistics each conv writes",
          "[executor][gpu][fused][conv_bn_stats]") {
    if (!test::have_gpu_backend()) return;
    Executor executor(build_graph(conv_bn_spec()), gpu_options(Variant{"fp32", "nchw", true}, true));
    executor.initialize(29);
    std::map<std::string, std::string> detail = test::profiled_step_details(executor);
    CHECK_THAT(detail.at("c1"), Catch::EndsWith("writes 'bn1''s batch statistics in training steps"));
    CHECK_THAT(detail.at("bn2"), Catch::Contains("batch statistics from 'c2''s forward in training steps"));
    CHECK_THAT(detail.at("head"), !Catch::Contains("statistics"));
}

TEST_CASE("the CifarCNN's bf16 hand-written step writes each batch norm's statistics in its conv",
          "[executor][gpu][fused][conv_bn_stats]") {
    if (!test::have_gpu_backend()) return;
    // cudacnn-bench's cuda_graph_bf16_hand_written: every conv on the implicit GEMM's bf16 kernel.
    ExecutorOptions options;
    options.backend = Backend::gpu;
    options.batch_size = 2;
    options.precision = "bf16";
    options.conv_algo = "own";
    options.gemm = "own";
    const std::string text = test::description(Executor(build_graph(builtin_model("cifar_cnn")), options));
    // conv_layer: 0 conv → 1 BN, 6 conv → 7 BN, 13 conv → 14 BN; the other convs feed ReLUs.
    CHECK_THAT(text, Catch::Contains("conv_layer.0: writes batch norm 'conv_layer.1''s batch statistics") &&
                         Catch::Contains("conv_layer.6: writes batch norm 'conv_layer.7''s batch statistics") &&
                         Catch::Contains("conv_layer.13: writes batch norm 'conv_layer.14''s batch statistics") &&
                         !Catch::Contains("conv_layer.3: writes"));
}
