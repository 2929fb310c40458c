// Dropouts folded into the max pooling before them (ExecutorOptions::fuse_dropout on the GPU backend: one
// max_pool2d_dropout kernel each way instead of the pooling's and the dropout's): training, evaluation and CUDA
// graphs give the bits of the unfused run, and the executor says which dropouts it folded and leaves the others.
#include <catch2/catch.hpp>

#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "cudacnn/graph/executor.hpp"
#include "cudacnn/graph/profile.hpp"
#include "src/graph/backend.hpp"
#include "support/executor_steps.hpp"

using namespace cudacnn;
using namespace cudacnn::graph;

namespace {

// d1 (dropout2d) folds into p1, which also runs r1 (the ReLU, pooling and dropout kernel); d2 (dropout) into p2,
// whose windows overlap (the gather backward); d4 into p4 through the flatten (CifarCNN's fc Dropout); p3 has two
// uses (d3 and the add), so d3 stays a dropout2d of its own. Shapes: p1 (6, 4, 4), p2 (5, 4, 4), p3 (5, 2, 2),
// p4 (5, 3, 3).
ModelSpec pool_dropout_spec() {
    return parse_model_spec(nlohmann::json::parse(R"({
        "name": "pool_dropout", "input": [3, 8, 8], "num_classes": 4,
        "layers": [
            {"name": "c1", "type": "conv2d", "in_channels": 3, "out_channels": 6, "kernel_size": 3, "padding": 1},
            {"name": "r1", "type": "relu"},
            {"name": "p1", "type": "max_pool2d", "kernel_size": 2},
            {"name": "d1", "type": "dropout2d", "p": 0.3},
            {"name": "c2", "type": "conv2d", "in_channels": 6, "out_channels": 5, "kernel_size": 3, "padding": 1},
            {"name": "p2", "type": "max_pool2d", "kernel_size": 3, "stride": 1, "padding": 1},
            {"name": "d2", "type": "dropout", "p": 0.2},
            {"name": "p3", "type": "max_pool2d", "kernel_size": 2},
            {"name": "d3", "type": "dropout2d", "p": 0.25},
            {"name": "sum", "type": "add", "inputs": ["d3", "p3"]},
            {"name": "p4", "type": "max_pool2d", "kernel_size": 2, "stride": 1, "padding": 1},
            {"name": "flat", "type": "flatten"},
            {"name": "d4", "type": "dropout", "p": 0.4},
            {"name": "l1", "type": "linear", "in_features": 45, "out_features": 12},
            {"name": "r2", "type": "relu"},
            {"name": "head", "type": "linear", "in_features": 12, "out_features": 4}
        ]})"),
                            "pool_dropout_spec");
}

ExecutorOptions gpu_options(bool fuse_relu, bool fuse_dropout, bool cuda_graph) {
    ExecutorOptions options;
    options.backend = Backend::gpu;
    options.fuse_relu = fuse_relu;
    options.fuse_dropout = fuse_dropout;
    options.cuda_graph = cuda_graph;
    options.batch_size = 4;
    options.seed = 23;
    options.optimizer.kind = OptimizerKind::adam;
    options.optimizer.lr = 1e-2;
    return options;
}

// Training steps with full and partial batches (new dropout masks each step), a learning-rate change,
// evaluation steps, then the gradients of a training and of an evaluation-mode forward and backward.
test::StepRun run_steps(bool fuse_relu, bool fuse_dropout, bool cuda_graph) {
    Executor executor(build_graph(pool_dropout_spec()), gpu_options(fuse_relu, fuse_dropout, cuda_graph));
    executor.initialize(23);
    return test::run_compared_steps(executor);
}

}  // namespace

TEST_CASE("dropouts folded into max poolings train bit for bit as separate ones, and the executor says which",
          "[executor][gpu][fused][pool_dropout]") {
    if (!test::have_gpu_backend()) return;
    for (const bool cuda_graph : {false, true}) {
        INFO("cuda_graph " << cuda_graph);
        const test::StepRun fused = run_steps(true, true, cuda_graph);
        INFO("against the ReLUs fused but no dropout folded");
        test::check_same_steps(fused, run_steps(true, false, cuda_graph));
        INFO("against nothing fused");
        const test::StepRun separate = run_steps(false, false, cuda_graph);
        test::check_same_steps(fused, separate);
        // The folded kernels are captured and replayed like the separate ones: steps 0-3 eager, capture,
        // replay, replay; 4-5 recaptured after the lr change; 6 at batch 3 eager; 7-8 replayed; eval twice.
        CHECK(fused.graph_launches == (cuda_graph ? 3 + 2 + 2 + 2 : 0));
        CHECK_THAT(fused.description, Catch::Contains("d1: fused into max pooling 'p1'") &&
                                          Catch::Contains("r1: fused into max pooling 'p1'") &&
                                          Catch::Contains("d2: fused into max pooling 'p2'") &&
                                          Catch::Contains("d4: fused into max pooling 'p4'") &&
                                          !Catch::Contains("d3: fused"));
        CHECK_THAT(separate.description, !Catch::Contains("fused into"));
    }
}

TEST_CASE("a profile says where a folded dropout went", "[executor][gpu][fused][pool_dropout]") {
    if (!test::have_gpu_backend()) return;
    Executor executor(build_graph(pool_dropout_spec()), gpu_options(true, true, false));
    executor.initialize(23);
    std::vector<float> x(4 * 3 * 8 * 8, 0.5f);
    std::vector<int64_t> labels{0, 1, 2, 3};
    executor.set_batch(x.data(), labels.data(), 4);
    executor.start_profile();
    executor.train_step(0);
    const StepProfile profile = executor.stop_profile();
    std::vector<std::string> details;
    for (const ProfilePart& part : profile.parts) {
        if (part.name == "d1" || part.name == "d3" || part.name == "d4") details.push_back(part.name + ": " + part.detail);
    }
    CHECK(details == std::vector<std::string>{"d1: fused into 'p1'", "d3: ", "d4: fused into 'p4'"});
}

TEST_CASE("dropouts stay out of max poolings where they do not run, where every output is read, or when asked",
          "[executor][gpu][fused][pool_dropout]") {
    if (!test::have_gpu_backend()) return;
    const auto text = [](const ExecutorOptions& options) {
        return test::description(Executor(build_graph(pool_dropout_spec()), options));
    };
    ExecutorOptions options = gpu_options(true, true, true);
    CHECK_THAT(text(options), Catch::Contains("d1: fused into max pooling"));
    options.fuse_relu = false;  // the two folds are independent
    CHECK_THAT(text(options), Catch::Contains("d1: fused into max pooling") && !Catch::Contains("r1: fused"));
    options.fuse_relu = true;
    options.fuse_dropout = false;
    CHECK_THAT(text(options), !Catch::Contains("d1: fused") && Catch::Contains("r1: fused into max pooling"));
    options.fuse_dropout = true;
    options.dropout = false;  // --no-dropout: the dropouts are aliases of their own
    CHECK_THAT(text(options), !Catch::Contains("d1: fused"));
    options.dropout = true;
    options.keep_activations = true;
    CHECK_THAT(text(options), !Catch::Contains("fused into"));
    options.keep_activations = false;
    options.detect_anomaly = true;
    CHECK_THAT(text(options), !Catch::Contains("fused into"));
    options.detect_anomaly = false;
    options.backend = Backend::cpu;  // the CPU backends run every dropout themselves
    CHECK_THAT(text(options), !Catch::Contains("fused into"));
}

TEST_CASE("the CifarCNN folds its dropouts after max poolings", "[executor][gpu][fused][pool_dropout][cifar_cnn]") {
    if (!test::have_gpu_backend()) return;
    ExecutorOptions options;
    options.backend = Backend::gpu;
    options.batch_size = 2;
    const std::string text = test::description(Executor(build_graph(builtin_model("cifar_cnn")), options));
    // conv_layer: …, MaxPool (11), Dropout2d (12), …, MaxPool (18); fc_layer: flatten, Dropout (fc_layer.0), ….
    CHECK_THAT(text, Catch::Contains("conv_layer.12: fused into max pooling 'conv_layer.11'") &&
                         Catch::Contains("fc_layer.0: fused into max pooling 'conv_layer.18'"));
}

TEST_CASE("the GPU backend saves a byte per max pooling window up to 255 taps and int64 indices beyond",
          "[executor][gpu][pool_dropout]") {
    if (!test::have_gpu_backend()) return;
    const std::unique_ptr<detail::BackendImpl> gpu = detail::make_gpu_backend(ExecutorOptions{});
    const std::unique_ptr<detail::BackendImpl> cpu = detail::make_cpu_reference_backend();
    Node node;
    node.spec.kind = LayerKind::max_pool2d;
    for (const cpu::Pair2d kernel : {cpu::Pair2d{2, 2}, cpu::Pair2d{15, 17}, cpu::Pair2d{16, 16}}) {
        node.spec.max_pool.kernel_size = kernel;
        const Shape in{3, 5, 33, 34};
        const Shape out = cpu::max_pool2d_output_shape(in, node.spec.max_pool);
        const auto pooled = static_cast<std::size_t>(out.numel());
        CAPTURE(kernel.h, kernel.w);
        // cuda/pool.hpp MaxPoolIndices: window taps below kNoWindowTap (255) fit a byte; the CPU backends
        // keep int64.
        CHECK(gpu->saved_bytes(node, {in}, out) ==
              (kernel.h * kernel.w <= 255 ? 1 : sizeof(int64_t)) * pooled);
        CHECK(cpu->saved_bytes(node, {in}, out) == sizeof(int64_t) * pooled);
    }
}
