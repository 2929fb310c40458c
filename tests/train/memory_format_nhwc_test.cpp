// --memory-format nhwc in the executor (the GPU backend): every 4-d activation channels_last, the input batch
// converted at the edge, a flatten that reorders back to PyTorch's (c, h, w) order. The NHWC kernels sum each
// output in the NCHW kernels' order (the implicit GEMM keeps k = (c, kh, kw); pooling, dropout2d and the
// element-wise kernels compute element by element), so a model without batch norm trains bit for bit as its
// NCHW run with the same convolution algorithm, in f32 and in bf16, eager and from CUDA graphs; kept outputs
// and the input gradient read back in NCHW order; what has no NHWC kernels is refused by name.
#include <catch2/catch.hpp>

#include <cmath>
#include <filesystem>
#include <sstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "cudacnn/graph/executor.hpp"
#include "cudacnn/train/options.hpp"
#include "cudacnn/train/trainer.hpp"
#include "support/compare.hpp"
#include "support/executor_steps.hpp"
#include "support/parity.hpp"
#include "support/temp_files.hpp"

using namespace cudacnn;
using namespace cudacnn::graph;

namespace {

// The kinds with NHWC kernels besides batch norm, and the fusions that apply to them: a ReLU fused into a max
// pooling, an add whose inputs both need gradients, a dropout2d, average and adaptive pooling, a flatten of a
// (6, 2, 2) tensor (which reorders) and dropout and linear layers after it.
ModelSpec nhwc_spec() {
    return parse_model_spec(nlohmann::json::parse(R"({
        "name": "nhwc_kinds", "input": [3, 8, 8], "num_classes": 4,
        "layers": [
            {"name": "c1", "type": "conv2d", "in_channels": 3, "out_channels": 6, "kernel_size": 3, "padding": 1},
            {"name": "r1", "type": "relu"},
            {"name": "c2", "type": "conv2d", "in_channels": 6, "out_channels": 6, "kernel_size": 3, "padding": 1},
            {"name": "sum", "type": "add", "inputs": ["c2", "r1"]},
            {"name": "r2", "type": "relu"},
            {"name": "p1", "type": "max_pool2d", "kernel_size": 2},
            {"name": "d2", "type": "dropout2d", "p": 0.25},
            {"name": "c3", "type": "conv2d", "in_channels": 6, "out_channels": 6, "kernel_size": 3, "padding": 1,
             "stride": 1},
            {"name": "p2", "type": "avg_pool2d", "kernel_size": 2},
            {"name": "p3", "type": "adaptive_avg_pool2d", "output_size": 2},
            {"name": "flat", "type": "flatten"},
            {"name": "d1", "type": "dropout", "p": 0.25},
            {"name": "fc1", "type": "linear", "in_features": 24, "out_features": 16},
            {"name": "r3", "type": "relu"},
            {"name": "fc2", "type": "linear", "in_features": 16, "out_features": 4}
        ]})"),
                            "nhwc_spec");
}

ExecutorOptions gpu_options(const std::string& format, const std::string& precision, bool cuda_graph) {
    ExecutorOptions options;
    options.backend = Backend::gpu;
    options.memory_format = format;
    options.precision = precision;
    options.cuda_graph = cuda_graph;
    // The NHWC convolutions run on cuDNN or the implicit GEMM; the NCHW run takes the same algorithm.
    options.conv_algo = "implicit";
    // A dropout folded into a max pooling draws its mask in memory order (another mask under NHWC); unfolded,
    // dropout draws over the flattened NCHW tensor and dropout2d per (n, c) in both formats.
    options.fuse_dropout = false;
    options.batch_size = 4;
    options.seed = 31;
    options.optimizer.kind = OptimizerKind::sgd;
    options.optimizer.lr = 5e-2;
    options.optimizer.momentum = 0.9;
    return options;
}

test::StepRun run_steps(const ModelSpec& spec, const ExecutorOptions& options) {
    Executor executor(build_graph(spec), options);
    executor.initialize(31);
    return test::run_compared_steps(executor);
}

HostTensor<float> test_images() {
    HostTensor<float> x(Shape{4, 3, 8, 8});
    for (int64_t i = 0; i < x.numel(); ++i) x[i] = std::sin(0.05f * static_cast<float>(i));
    return x;
}

const std::vector<int64_t> kLabels{0, 1, 2, 3};

}  // namespace

TEST_CASE("NHWC steps equal NCHW steps bit for bit, f32 and bf16, eager and from CUDA graphs",
          "[executor][gpu][nhwc]") {
    if (!test::have_gpu_backend()) return;
    for (const std::string precision : {"fp32", "bf16"}) {
        for (const bool cuda_graph : {false, true}) {
            INFO(precision << (cuda_graph ? ", CUDA graphs" : ", eager"));
            const test::StepRun nchw = run_steps(nhwc_spec(), gpu_options("nchw", precision, cuda_graph));
            const test::StepRun nhwc = run_steps(nhwc_spec(), gpu_options("nhwc", precision, cuda_graph));
            test::check_same_steps(nhwc, nchw);
            CHECK(test::bitwise_equal(nhwc.eval_logits, nchw.eval_logits));
            CHECK_THAT(nhwc.description, Catch::Contains("NHWC") && Catch::Contains("implicit nhwc"));
            CHECK_THAT(nchw.description, !Catch::Contains("NHWC") && !Catch::Contains("implicit nhwc"));
        }
    }
}

TEST_CASE(
    "NHWC with the default fusions: a dropout folded into its pooling draws other masks, the rest is "
    "NCHW's",
    "[executor][gpu][nhwc]") {
    if (!test::have_gpu_backend()) return;
    ExecutorOptions nchw_options = gpu_options("nchw", "fp32", true),
                    nhwc_options = gpu_options("nhwc", "fp32", true);
    nchw_options.fuse_dropout = nhwc_options.fuse_dropout = true;
    SECTION("without dropout the fused steps are the same bits") {
        nchw_options.dropout = nhwc_options.dropout = false;
        test::check_same_steps(run_steps(nhwc_spec(), nhwc_options), run_steps(nhwc_spec(), nchw_options));
    }
    SECTION("a folded dropout2d draws per (n, c): the same bits") {
        test::check_same_steps(run_steps(nhwc_spec(), nhwc_options), run_steps(nhwc_spec(), nchw_options));
    }
    SECTION("a dropout folded through a reordering flatten: other masks, the same scale of loss") {
        // CifarCNN's MaxPool → flatten → Dropout: under NHWC the pooling draws d1's units in its memory
        // order.
        const ModelSpec spec = parse_model_spec(nlohmann::json::parse(R"({
            "name": "pool_flatten_dropout", "input": [3, 8, 8], "num_classes": 4,
            "layers": [
                {"name": "c1", "type": "conv2d", "in_channels": 3, "out_channels": 6, "kernel_size": 3, "padding": 1},
                {"name": "r1", "type": "relu"},
                {"name": "p1", "type": "max_pool2d", "kernel_size": 2},
                {"name": "flat", "type": "flatten"},
                {"name": "d1", "type": "dropout", "p": 0.25},
                {"name": "fc", "type": "linear", "in_features": 96, "out_features": 4}
            ]})"),
                                                "pool_flatten_dropout");
        const test::StepRun nchw = run_steps(spec, nchw_options);
        const test::StepRun nhwc = run_steps(spec, nhwc_options);
        CHECK_THAT(nhwc.description, Catch::Contains("d1: fused into max pooling 'p1'") &&
                                         Catch::Contains("flat: reorders its NHWC input to NCHW"));
        REQUIRE(nhwc.metrics.size() == nchw.metrics.size());
        CHECK_FALSE(test::bit_identical(nhwc.model, nchw.model));  // d1's masks differ
        for (std::size_t k = 0; k < nchw.metrics.size(); ++k) {
            CHECK(std::isfinite(nhwc.metrics[k].loss_sum));
            CHECK(std::fabs(nhwc.metrics[k].loss_sum - nchw.metrics[k].loss_sum) <=
                  0.5 * std::fabs(nchw.metrics[k].loss_sum));
        }
    }
}

// With batch norm: the NHWC statistics kernels sum each channel in another order (pixel slices × channel
// groups) than the NCHW ones, so results agree to float rounding, not bit for bit. CifarCNN's pattern: a conv
// whose bias folds into the batch norm after it, a ReLU fused into that batch norm, a max pooling, and a
// flatten that reorders.
ModelSpec batch_norm_spec() {
    return parse_model_spec(nlohmann::json::parse(R"({
        "name": "nhwc_batch_norm", "input": [3, 8, 8], "num_classes": 4,
        "layers": [
            {"name": "c1", "type": "conv2d", "in_channels": 3, "out_channels": 8, "kernel_size": 3, "padding": 1},
            {"name": "bn1", "type": "batch_norm2d", "num_features": 8},
            {"name": "r1", "type": "relu"},
            {"name": "c2", "type": "conv2d", "in_channels": 8, "out_channels": 8, "kernel_size": 3, "padding": 1},
            {"name": "bn2", "type": "batch_norm2d", "num_features": 8},
            {"name": "r2", "type": "relu"},
            {"name": "p1", "type": "max_pool2d", "kernel_size": 2},
            {"name": "flat", "type": "flatten"},
            {"name": "fc", "type": "linear", "in_features": 128, "out_features": 4}
        ]})"),
                            "batch_norm_spec");
}

// One step's gradients from the same weights, and nine steps' losses, NHWC against NCHW. f32: the batch
// norms' sums differ by float rounding (≲ 1e-6 relative, under the batch norm parity bound 1e-5), which the
// backward through two batch norms amplifies (it divides by the batch standard deviation): gradients measured
// up to 7e-7 on the emulator, bound 1e-5; losses equal to 6 digits, bound 1e-4. bf16: where the float
// statistics differ in their last bit, a bf16 rounding can flip (2^-8 relative on that element) and each
// later layer rounds again: measured 2e-7 here (no flip), bound 0.05 for one step (a flip in a batch norm's
// output reaches every gradient below it) and 1e-2 for the losses.
constexpr double kF32GradientTolerance = 1e-5, kF32LossTolerance = 1e-4;
constexpr double kBf16GradientTolerance = 0.05, kBf16LossTolerance = 1e-2;

TEST_CASE("NHWC with batch norm: one step's gradients and nine steps' losses match NCHW's to rounding",
          "[executor][gpu][nhwc]") {
    if (!test::have_gpu_backend()) return;
    for (const std::string precision : {"fp32", "bf16"}) {
        INFO(precision);
        const auto gradients = [&](const std::string& format) {
            ExecutorOptions options = gpu_options(format, precision, false);
            options.dropout = false;
            Executor executor(build_graph(batch_norm_spec()), options);
            executor.initialize(31);
            const HostTensor<float> x = test_images();
            executor.set_batch(x.data(), kLabels.data(), 4);
            executor.forward_backward(0);
            return executor.gradients();
        };
        const io::StateDict nhwc = gradients("nhwc"), nchw = gradients("nchw");
        const bool f32 = precision == "fp32";
        const double bound = f32 ? kF32GradientTolerance : kBf16GradientTolerance;
        for (const std::string& name : nchw.names()) {
            // A conv bias before a training-mode batch norm has gradient 0 exactly: both hold rounding noise.
            if (name == "c1.bias" || name == "c2.bias") continue;
            const double error = test::max_relative_error(nhwc.f32(name), nchw.f32(name));
            INFO(name << ": " << error);
            CHECK(error <= bound);
        }
        const test::StepRun nhwc_run = run_steps(batch_norm_spec(), gpu_options("nhwc", precision, true));
        const test::StepRun nchw_run = run_steps(batch_norm_spec(), gpu_options("nchw", precision, true));
        REQUIRE(nhwc_run.metrics.size() == nchw_run.metrics.size());
        for (std::size_t k = 0; k < nchw_run.metrics.size(); ++k) {
            INFO("metrics " << k << ": " << nhwc_run.metrics[k].loss_sum << " against "
                            << nchw_run.metrics[k].loss_sum);
            CHECK(std::fabs(nhwc_run.metrics[k].loss_sum - nchw_run.metrics[k].loss_sum) <=
                  (f32 ? kF32LossTolerance : kBf16LossTolerance) * std::fabs(nchw_run.metrics[k].loss_sum));
        }
        CHECK_THAT(nhwc_run.description, Catch::Contains("c1: bias folded into batch norm 'bn1'") &&
                                             Catch::Contains("r1: fused into batch norm 'bn1'"));
    }
}

TEST_CASE("CifarCNN on NHWC activations: one step's loss and gradients match NCHW's to float rounding",
          "[executor][gpu][nhwc][cifar_cnn]") {
    if (!test::have_gpu_backend()) return;
    const Graph graph = build_graph(builtin_model("cifar_cnn"));
    const auto step = [&](const std::string& format) {
        ExecutorOptions options = gpu_options(format, "fp32", false);
        options.batch_size = 2;
        options.dropout = false;  // the same masks need no fold: compare the arithmetic alone
        Executor executor(graph, options);
        executor.initialize(7);
        HostTensor<float> x(Shape{2, 3, 32, 32});
        for (int64_t i = 0; i < x.numel(); ++i) x[i] = std::sin(0.013f * static_cast<float>(i));
        const std::vector<int64_t> labels{3, 8};
        executor.set_batch(x.data(), labels.data(), 2);
        executor.forward_backward(0);
        return std::make_pair(executor.read_metrics().loss_sum, executor.gradients());
    };
    const auto [nhwc_loss, nhwc] = step("nhwc");
    const auto [nchw_loss, nchw] = step("nchw");
    CHECK(std::fabs(nhwc_loss - nchw_loss) <= kF32LossTolerance * std::fabs(nchw_loss));
    for (const std::string& name : nchw.names()) {
        const double error = test::max_relative_error(nhwc.f32(name), nchw.f32(name));
        INFO(name << ": " << error);
        // The biases of the convs before a batch norm: 0 exactly, both runs hold rounding noise.
        if (name == "conv_layer.0.bias" || name == "conv_layer.6.bias" || name == "conv_layer.13.bias")
            continue;
        CHECK(error <= kF32GradientTolerance);
    }
}

TEST_CASE("NHWC kept outputs and the input gradient read back in NCHW order, as the NCHW run's",
          "[executor][gpu][nhwc]") {
    if (!test::have_gpu_backend()) return;
    const auto run = [](const std::string& format) {
        ExecutorOptions options = gpu_options(format, "fp32", false);
        options.keep_activations = true;
        options.input_gradient = true;
        auto executor = std::make_unique<Executor>(build_graph(nhwc_spec()), options);
        executor->initialize(31);
        const HostTensor<float> x = test_images();
        executor->set_batch(x.data(), kLabels.data(), 4);
        executor->forward_backward(0);
        return executor;
    };
    const auto nchw = run("nchw"), nhwc = run("nhwc");
    const Graph& graph = nchw->graph();
    for (int node = 0; node < static_cast<int>(graph.nodes.size()); ++node) {
        INFO(graph.nodes[node].spec.name);
        CHECK(test::bitwise_equal(nhwc->output(node), nchw->output(node)));
    }
    CHECK(test::bitwise_equal(nhwc->input_gradient(), nchw->input_gradient()));
}

TEST_CASE("--memory-format nhwc refuses what has no NHWC kernels, naming it", "[executor][gpu][nhwc]") {
    SECTION("an unknown format and the CPU backends") {
        ExecutorOptions options;
        options.memory_format = "channels_first";
        CHECK_THROWS_WITH(Executor(build_graph(nhwc_spec()), options),
                          Catch::Contains("--memory-format channels_first: not one of nchw, nhwc"));
        options.memory_format = "nhwc";
        CHECK_THROWS_WITH(Executor(build_graph(nhwc_spec()), options),
                          Catch::Contains("the cpu backend computes NCHW only"));
    }
    if (!test::have_gpu_backend()) return;
    SECTION("a concat") {
        const ModelSpec spec = parse_model_spec(nlohmann::json::parse(R"({
            "name": "with_concat", "input": [3, 4, 4], "num_classes": 2,
            "layers": [
                {"name": "c1", "type": "conv2d", "in_channels": 3, "out_channels": 2, "kernel_size": 1},
                {"name": "cat", "type": "concat", "inputs": ["c1", "input"]},
                {"name": "flat", "type": "flatten"},
                {"name": "fc", "type": "linear", "in_features": 80, "out_features": 2}
            ]})"),
                                                "with_concat");
        CHECK_THROWS_WITH(Executor(build_graph(spec), gpu_options("nhwc", "fp32", false)),
                          Catch::Contains("layer 'cat' (concat) has no NHWC kernels") &&
                              Catch::Contains("--memory-format nchw"));
    }
    SECTION("the convolution algorithms with NCHW kernels only") {
        for (const std::string algo : {"direct", "im2col", "winograd", "winograd4"}) {
            ExecutorOptions options = gpu_options("nhwc", "fp32", false);
            options.conv_algo = algo;
            CHECK_THROWS_WITH(
                Executor(build_graph(nhwc_spec()), options),
                Catch::Contains("--conv-algo " + algo + " has no NHWC kernels") &&
                    Catch::Contains(
                        "with --memory-format nhwc choose auto, cudnn, implicit, own or fastest"));
        }
        for (const std::string algo : {"auto", "own", "fastest"}) {
            ExecutorOptions options = gpu_options("nhwc", "fp32", false);
            options.conv_algo = algo;
            const std::string text = test::description(Executor(build_graph(nhwc_spec()), options));
            INFO(algo << ":\n" << text);
#if CUDACNN_EMU
            CHECK_THAT(text, Catch::Contains("implicit nhwc"));  // no cuDNN in the emu flavour
#endif
            // fastest times cuDNN and the implicit GEMM only and says why it left the others out.
            if (algo == "fastest") CHECK_THAT(text, Catch::Contains("winograd: no NHWC kernels"));
        }
    }
}

TEST_CASE("cudacnn-train --memory-format nhwc trains as nchw does, and its checkpoint resumes under nchw",
          "[train][gpu][nhwc]") {
    if (!test::have_gpu_backend()) return;
    const auto train = [](const std::string& format, const std::string& folder) {
        train::TrainOptions o = train::parse_train_args({"--model",
                                                         "small_cnn",
                                                         "--dataset",
                                                         "synthetic",
                                                         "--synthetic-size",
                                                         "32,16",
                                                         "--epochs",
                                                         "1",
                                                         "-b",
                                                         "16",
                                                         "--seed",
                                                         "5",
                                                         "--device",
                                                         "cuda",
                                                         "--precision",
                                                         "bf16",
                                                         "--memory-format",
                                                         format,
                                                         "--no-dropout",
                                                         "--output-dir",
                                                         folder,
                                                         "--save-every",
                                                         "0"})
                                    .options;
        std::ostringstream log;
        const train::TrainSummary summary = train::run_training(o, log);
        return std::make_pair(summary, log.str());
    };
    const test::TempDir nhwc_folder, nchw_folder;
    const auto [nhwc, nhwc_log] = train("nhwc", nhwc_folder.path());
    const auto [nchw, nchw_log] = train("nchw", nchw_folder.path());
    INFO(nhwc_log);
    CHECK_THAT(nhwc_log, Catch::Contains("BF16, NHWC"));
    CHECK_THAT(nchw_log, !Catch::Contains("NHWC"));
    CHECK(nhwc.epochs_run == 1);
    // bf16 rounding of batch-norm statistics summed in another order (kBf16LossTolerance above).
    CHECK(std::fabs(nhwc.final_train_loss - nchw.final_train_loss) <=
          kBf16LossTolerance * nchw.final_train_loss);
    CHECK(std::fabs(nhwc.final_test_accuracy - nchw.final_test_accuracy) <= 100.0 / 16 + 1e-9);  // one image

    // The NHWC run's checkpoint holds PyTorch's layouts: an NCHW evaluation of it scores what the run did.
    const std::string checkpoint =
        (std::filesystem::path(nhwc_folder.path()) / "checkpoint-epoch-001.safetensors").string();
    REQUIRE(std::filesystem::exists(checkpoint));
    const test::TempDir eval_folder;
    train::TrainOptions o = train::parse_train_args({"--model",
                                                     "small_cnn",
                                                     "--dataset",
                                                     "synthetic",
                                                     "--synthetic-size",
                                                     "32,16",
                                                     "--seed",
                                                     "5",
                                                     "--device",
                                                     "cuda",
                                                     "--precision",
                                                     "bf16",
                                                     "--memory-format",
                                                     "nchw",
                                                     "-b",
                                                     "16",
                                                     "--no-dropout",
                                                     "--evaluate",
                                                     "--resume",
                                                     checkpoint,
                                                     "--output-dir",
                                                     eval_folder.path()})
                                .options;
    std::ostringstream log;
    const train::TrainSummary evaluated = train::run_training(o, log);
    INFO(log.str());
    CHECK(std::fabs(evaluated.final_test_accuracy - nhwc.final_test_accuracy) <= 100.0 / 16 + 1e-9);
}
