// The graph executor: its memory plan, a whole CifarCNN step against PyTorch on both backends, gradients
// through residual adds and concatenations against finite differences, CPU/GPU agreement with dropout, and
// no host↔device transfer inside a GPU training step.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <map>
#include <string>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "cudacnn/device.hpp"
#include "cudacnn/graph/executor.hpp"
#include "support/cifar_cnn.hpp"
#include "support/compare.hpp"
#include "support/executor_steps.hpp"

using namespace cudacnn;
using namespace cudacnn::graph;
using namespace cudacnn::test::cifar_cnn;
using cudacnn::test::bit_identical;
using cudacnn::test::max_relative_error;

namespace {

// The GPU backend is the emulator in the emu flavour and a real GPU in the cuda flavour; without either
// its tests say so and pass.
ExecutorOptions fixture_options(Backend backend, const StepFixture& fixture) {
    ExecutorOptions options;
    options.backend = backend;
    options.batch_size = fixture.x.dim(0);
    options.dropout = false;  // the fixture's step has dropout off
    options.seed = fixture.seed;
    options.optimizer.lr = fixture.adam.lr;
    return options;
}

// One executor step of the built-in cifar_cnn on the fixture's batch, in the fixture's terms.
StepOutcome<float> executor_step(Backend backend, const StepFixture& fixture, const Model<float>& initial) {
    Executor executor(build_graph(builtin_model("cifar_cnn")), fixture_options(backend, fixture));
    executor.initialize(fixture.seed);
    const io::StateDict before = executor.model_state();
    for (const std::string& name : initial.names) {
        INFO(name << ": the executor's initialization must equal the reference's");
        CHECK(max_relative_error(before.f32(name), initial[name]) == 0.0);
    }
    executor.set_batch(fixture.x.data(), fixture.labels.data(), fixture.x.dim(0));
    executor.train_step(0);
    StepOutcome<float> step;
    step.logits = executor.logits();
    step.loss = HostTensor<float>(Shape{}, static_cast<float>(executor.read_metrics().loss_sum));
    const io::StateDict grads = executor.gradients();
    const io::StateDict after = executor.model_state();
    for (const std::string& name : initial.names) {
        step.grads[name] = grads.f32(name);
        step.params_after[name] = after.f32(name);
    }
    for (const auto& [layer, running] : initial.running) {
        step.running[layer] = {after.f32(layer + ".running_mean"), after.f32(layer + ".running_var"),
                               after.i64(layer + ".num_batches_tracked")[0]};
    }
    return step;
}

}  // namespace

TEST_CASE("memory plan: buffers alive together never share bytes, others do", "[executor]") {
    const std::vector<BufferRequest> requests{
        {"a", 1000, 0, 2}, {"b", 1000, 1, 3}, {"c", 1000, 3, 4}, {"d", 5000, 5, 6}, {"e", 10, 0, 6}};
    const MemoryPlan plan = plan_memory(requests);
    check_memory_plan(requests, plan);
    // Aligned to 256: a, b, c take 1024 each, d 5120, e 256; d reuses a, b and c, c reuses a.
    CHECK(plan.naive_bytes == 3 * 1024 + 5120 + 256);
    CHECK(plan.peak_bytes == 5120 + 256);
    CHECK(plan.offsets[0] == plan.offsets[2]);
    for (std::size_t i = 0; i < requests.size(); ++i) CHECK(plan.offsets[i] % MemoryPlan::kAlignment == 0);
    CHECK_THROWS_WITH(plan_memory({{"backwards", 8, 3, 2}}), Catch::Contains("backwards"));
}

TEST_CASE("the CifarCNN's plan reuses memory and the CPU executor describes itself", "[executor]") {
    ExecutorOptions options;
    options.batch_size = 128;
    const Executor executor(build_graph(builtin_model("cifar_cnn")), options);
    const MemoryPlan& plan = executor.memory_plan();
    INFO("planned " << plan.peak_bytes << " bytes, naive " << plan.naive_bytes);
    CHECK(plan.peak_bytes < plan.naive_bytes / 2);
    const std::vector<std::string> lines = executor.describe();
    REQUIRE(lines.size() >= 2);
    CHECK_THAT(lines[0], Catch::StartsWith("device: cpu"));
    CHECK_THAT(lines[1], Catch::Contains("MiB") && Catch::Contains("without reuse"));
}

TEST_CASE("one CifarCNN step on the CPU executor matches PyTorch", "[executor][cifar_cnn]") {
    const StepFixture fixture;
    const Model<float> initial = initial_model(fixture.seed);
    check_initial_model(fixture, initial);
    const StepOutcome<float> step = executor_step(Backend::cpu_reference, fixture, initial);
    // The cpu-ref executor runs the reference ops, so the reference's float bounds hold (tests/cpu/cifar_cnn_step_test.cpp:
    // float ops accumulate in double and round once; 1e-5 relative, cancelled-bias noise 1e-5).
    check_step_against_pytorch(fixture, initial, step, [](const std::string& key) { return key.rfind("noise.", 0) == 0 ? 1e-5 : 1e-5; });
}

namespace {

// A step that accumulates in float like PyTorch (the kernels, the fast CPU ops): as
// tests/ops/cifar_cnn_step_parity_test.cpp, a ReLU right after a batch norm can flip where its input is within
// rounding of 0; each entry may be off by 4× PyTorch float32's own error on it, never needing to beat 1e-4;
// p1 within 1e-5; cancelled-bias noise within 1e-4.
void check_float_step_against_pytorch(const StepFixture& fixture, const Model<float>& initial,
                                      const StepOutcome<float>& step) {
    const SafetensorsFile& file = fixture.file;
    check_step_against_pytorch(fixture, initial, step, [&](const std::string& key) {
        if (key.rfind("noise.", 0) == 0) return 1e-4;
        if (key.rfind("param_after.", 0) == 0) return 1e-5;
        const std::string torch_key = "torch_f32_error." + key;
        return std::max(1e-4, 4.0 * (file.contains(torch_key) ? file.get<double>(torch_key)[0] : 0.0));
    });
}

}  // namespace

TEST_CASE("one CifarCNN step on the fast CPU executor matches PyTorch", "[executor][cifar_cnn]") {
    const StepFixture fixture;
    const Model<float> initial = initial_model(fixture.seed);
    check_float_step_against_pytorch(fixture, initial, executor_step(Backend::cpu, fixture, initial));
}

TEST_CASE("one CifarCNN step on the GPU executor matches PyTorch", "[executor][cifar_cnn][gpu]") {
    if (!test::have_gpu_backend()) return;
    const StepFixture fixture;
    const Model<float> initial = initial_model(fixture.seed);
    check_float_step_against_pytorch(fixture, initial, executor_step(Backend::gpu, fixture, initial));
}

namespace {

// A small graph where one tensor feeds three layers (a conv, a residual add and a concatenation), without
// kinks (no ReLU, no max pooling) so that central differences are exact up to rounding.
ModelSpec branching_spec() {
    return parse_model_spec(nlohmann::json::parse(R"({
        "name": "branches", "input": [2, 5, 5], "num_classes": 3,
        "layers": [
            {"name": "a", "type": "conv2d", "in_channels": 2, "out_channels": 3, "kernel_size": 3, "padding": 1},
            {"name": "b", "type": "conv2d", "in_channels": 3, "out_channels": 3, "kernel_size": 3, "padding": 1},
            {"name": "sum", "type": "add", "inputs": ["a", "b"]},
            {"name": "both", "type": "concat", "inputs": ["sum", "a"]},
            {"name": "pool", "type": "adaptive_avg_pool2d", "output_size": 2},
            {"name": "flat", "type": "flatten"},
            {"name": "head", "type": "linear", "in_features": 24, "out_features": 3}
        ]})"),
                             "branching_spec");
}

// DenseNet-style: the input and c1 each feed two concatenations of different widths (the later one writes
// their gradients first, the earlier one adds its part of another size).
ModelSpec dense_spec() {
    return parse_model_spec(nlohmann::json::parse(R"({
        "name": "dense", "input": [2, 5, 5], "num_classes": 3,
        "layers": [
            {"name": "c1", "type": "conv2d", "in_channels": 2, "out_channels": 3, "kernel_size": 3, "padding": 1},
            {"name": "cat1", "type": "concat", "inputs": ["input", "c1"]},
            {"name": "c2", "type": "conv2d", "in_channels": 5, "out_channels": 2, "kernel_size": 3, "padding": 1},
            {"name": "cat2", "type": "concat", "inputs": ["input", "c1", "c2"]},
            {"name": "pool", "type": "adaptive_avg_pool2d", "output_size": 2},
            {"name": "flat", "type": "flatten"},
            {"name": "head", "type": "linear", "in_features": 28, "out_features": 3}
        ]})"),
                             "dense_spec");
}

// A flatten straight on the model input (it shares the input's memory).
ModelSpec flat_input_spec() {
    return parse_model_spec(nlohmann::json::parse(R"({
        "name": "mlp", "input": [2, 5, 5], "num_classes": 3,
        "layers": [
            {"name": "flat", "type": "flatten", "inputs": ["input"]},
            {"name": "hidden", "type": "linear", "in_features": 50, "out_features": 7},
            {"name": "head", "type": "linear", "in_features": 7, "out_features": 3}
        ]})"),
                             "flat_input_spec");
}

double batch_loss(Executor& executor) {
    executor.forward_backward(0);
    return executor.read_metrics().loss_sum;
}

void check_gradients_by_central_differences(Backend backend, const ModelSpec& spec) {
    INFO("model " << spec.name << " on the " << backend_name(backend));
    ExecutorOptions options;
    options.backend = backend;
    options.batch_size = 2;
    Executor executor(build_graph(spec), options);
    executor.initialize(7);
    HostTensor<float> x(Shape{2, 2, 5, 5});
    for (int64_t i = 0; i < x.numel(); ++i) x[i] = std::sin(0.37f * static_cast<float>(i)) + 0.1f;
    const std::vector<int64_t> labels{2, 0};
    executor.set_batch(x.data(), labels.data(), 2);
    batch_loss(executor);
    const io::StateDict grads = executor.gradients();
    io::StateDict state = executor.model_state();
    // Float loss ~1, so rounding leaves ~1e-7 / (2h) = 5e-6 in a central difference with h = 1e-2; the
    // truncation error h² f'''/6 stays below 1e-4 for this smooth net. A wiring error (a missed or doubled
    // branch) changes gradients by their own size.
    constexpr float kH = 1e-2f;
    for (const std::string& name : grads.names()) {
        const HostTensor<float> base = state.f32(name);
        for (int64_t i = 0; i < base.numel(); ++i) {
            HostTensor<float> plus = base, minus = base;
            plus[i] += kH;
            minus[i] -= kH;
            state.put(name, plus);
            executor.load_model_state(state, "test");
            const double up = batch_loss(executor);
            state.put(name, minus);
            executor.load_model_state(state, "test");
            const double down = batch_loss(executor);
            const double numeric = (up - down) / (2.0 * kH);
            INFO(name << "[" << i << "]: backward " << grads.f32(name)[i] << ", central difference " << numeric);
            CHECK(std::fabs(grads.f32(name)[i] - numeric) <= 2e-4 + 1e-2 * std::fabs(numeric));
        }
        state.put(name, base);
    }
}

// A batch norm in evaluation mode (running statistics: an affine map) between a conv and the head.
ModelSpec batch_norm_spec() {
    return parse_model_spec(nlohmann::json::parse(R"({
        "name": "bn", "input": [2, 5, 5], "num_classes": 3,
        "layers": [
            {"name": "c", "type": "conv2d", "in_channels": 2, "out_channels": 3, "kernel_size": 3, "padding": 1},
            {"name": "bn", "type": "batch_norm2d", "num_features": 3},
            {"name": "pool", "type": "adaptive_avg_pool2d", "output_size": 2},
            {"name": "flat", "type": "flatten"},
            {"name": "head", "type": "linear", "in_features": 12, "out_features": 3}
        ]})"),
                             "batch_norm_spec");
}

double eval_loss(Executor& executor, const HostTensor<float>& x, const std::vector<int64_t>& labels) {
    executor.set_batch(x.data(), labels.data(), x.dim(0));
    executor.eval_step();
    return executor.read_metrics().loss_sum;
}

// d loss / d input from eval_forward_backward against central differences of the evaluation loss, at every
// input value (tolerances as for the parameters above).
void check_input_gradient_by_central_differences(Backend backend, const ModelSpec& spec) {
    INFO("model " << spec.name << " on the " << backend_name(backend));
    ExecutorOptions options;
    options.backend = backend;
    options.batch_size = 2;
    options.input_gradient = true;
    Executor executor(build_graph(spec), options);
    executor.initialize(11);
    HostTensor<float> x(Shape{2, 2, 5, 5});
    for (int64_t i = 0; i < x.numel(); ++i) x[i] = std::cos(0.29f * static_cast<float>(i)) - 0.2f;
    const std::vector<int64_t> labels{1, 2};
    executor.set_batch(x.data(), labels.data(), 2);
    executor.eval_forward_backward();
    executor.read_metrics();
    const HostTensor<float> gradient = executor.input_gradient();
    REQUIRE(gradient.shape() == x.shape());
    constexpr float kH = 1e-2f;
    for (int64_t i = 0; i < x.numel(); ++i) {
        HostTensor<float> plus = x, minus = x;
        plus[i] += kH;
        minus[i] -= kH;
        const double numeric = (eval_loss(executor, plus, labels) - eval_loss(executor, minus, labels)) / (2.0 * kH);
        INFO("input[" << i << "]: backward " << gradient[i] << ", central difference " << numeric);
        CHECK(std::fabs(gradient[i] - numeric) <= 2e-4 + 1e-2 * std::fabs(numeric));
    }
}

}  // namespace

TEST_CASE("the input gradient of an evaluation-mode backward matches central differences", "[executor]") {
    // dense_spec reads the input twice (its gradient adds up), flat_input_spec through a flatten.
    for (const ModelSpec& spec : {dense_spec(), flat_input_spec(), batch_norm_spec()}) {
        check_input_gradient_by_central_differences(Backend::cpu_reference, spec);
        check_input_gradient_by_central_differences(Backend::cpu, spec);
    }
    if (!test::have_gpu_backend()) return;
    for (const ModelSpec& spec : {dense_spec(), batch_norm_spec()}) {
        check_input_gradient_by_central_differences(Backend::gpu, spec);
    }
}

TEST_CASE("kept activations: every layer's output can be read after a step", "[executor]") {
    ExecutorOptions options;
    options.batch_size = 2;
    options.keep_activations = true;
    const Graph graph = build_graph(builtin_model("small_cnn"));
    Executor executor(graph, options);
    executor.initialize(5);
    HostTensor<float> x(Shape{2, 3, 32, 32});
    for (int64_t i = 0; i < x.numel(); ++i) x[i] = std::sin(0.01f * static_cast<float>(i));
    const std::vector<int64_t> labels{3, 4};
    executor.set_batch(x.data(), labels.data(), 2);
    executor.eval_step();
    for (int i = 0; i < static_cast<int>(graph.nodes.size()); ++i) {
        const Node& node = graph.nodes[i];
        INFO(node.spec.name);
        const HostTensor<float> y = executor.output(i);
        CHECK(y.dim(0) == 2);
        CHECK(y.numel() == 2 * node.output.numel());
        // A ReLU's output is its input's output with the negatives cut off.
        if (node.spec.kind == LayerKind::relu) {
            const HostTensor<float> in = executor.output(node.inputs[0]);
            for (int64_t k = 0; k < y.numel(); ++k) REQUIRE(y[k] == std::max(in[k], 0.0f));
        }
    }
    CHECK(max_relative_error(executor.output(static_cast<int>(graph.nodes.size()) - 1), executor.logits()) == 0.0);
}

TEST_CASE("outputs and input gradients that were not kept say how to get them", "[executor]") {
    ExecutorOptions options;
    options.batch_size = 1;
    const Graph graph = build_graph(builtin_model("small_cnn"));
    Executor executor(graph, options);
    CHECK_THROWS_WITH(executor.output(0), Catch::Contains("keep_activations") && Catch::Contains(graph.nodes[0].spec.name));
    CHECK_THROWS_WITH(executor.output(99), Catch::Contains("node 99 does not exist"));
    CHECK_THROWS_WITH(executor.input_gradient(), Catch::Contains("input_gradient"));
}

TEST_CASE("gradients through shared tensors, adds and concatenations match central differences (CPU)", "[executor]") {
    for (const ModelSpec& spec : {branching_spec(), dense_spec(), flat_input_spec()}) {
        check_gradients_by_central_differences(Backend::cpu_reference, spec);
        check_gradients_by_central_differences(Backend::cpu, spec);
    }
}

TEST_CASE("gradients through shared tensors, adds and concatenations match central differences (GPU)",
          "[executor][gpu]") {
    if (!test::have_gpu_backend()) return;
    for (const ModelSpec& spec : {branching_spec(), dense_spec(), flat_input_spec()}) {
        check_gradients_by_central_differences(Backend::gpu, spec);
    }
}

namespace {

// small_cnn with a dropout2d and a dropout (masks drawn by the same Philox rule on every backend) after two
// Adam steps, the second on a partial batch.
io::StateDict two_steps_with_dropout(Backend backend, int threads = 0) {
    ModelSpec spec = builtin_model("small_cnn");
    LayerSpec drop2d;
    drop2d.name = "drop2d";
    drop2d.kind = LayerKind::dropout2d;
    drop2d.p = 0.25;
    spec.layers.insert(spec.layers.begin() + 4, drop2d);
    LayerSpec drop;
    drop.name = "drop";
    drop.kind = LayerKind::dropout;
    drop.p = 0.3;
    spec.layers.insert(spec.layers.end() - 1, drop);
    for (std::size_t i = 1; i < spec.layers.size(); ++i) spec.layers[i].inputs = {spec.layers[i - 1].name};
    // A conv bias that a batch norm subtracts again has gradient 0 exactly, so its Adam step is the sign of
    // rounding noise on either backend: leave those biases out, as is usual before a batch norm.
    for (LayerSpec& layer : spec.layers) {
        if (layer.kind == LayerKind::conv2d) layer.bias = false;
    }
    const Graph graph = build_graph(spec);

    HostTensor<float> x(Shape{6, 3, 32, 32});
    for (int64_t i = 0; i < x.numel(); ++i) x[i] = std::cos(0.013f * static_cast<float>(i * i % 9973));
    const std::vector<int64_t> labels{1, 7, 3, 3, 0, 9};
    ExecutorOptions options;
    options.backend = backend;
    options.threads = threads;
    options.batch_size = 4;
    options.seed = 11;
    options.optimizer.lr = 1e-3;
    Executor executor(graph, options);
    executor.initialize(11);
    executor.set_batch(x.data(), labels.data(), 4);
    executor.train_step(0);
    executor.set_batch(x.data() + 4 * 3 * 32 * 32, labels.data() + 4, 2);  // the last, partial batch
    executor.train_step(1);
    return executor.model_state();
}

// Two Adam steps move each parameter by about 2e-3 (lr · sign(g)); float kernels and the double-accumulating
// reference differ by rounding, which Adam's step passes on as at most ~1e-6 relative to p.
void check_agrees_with_reference(const io::StateDict& state, const io::StateDict& reference) {
    for (const std::string& name : reference.names()) {
        INFO(name);
        if (reference.dtype(name) == DType::i64) {
            CHECK(state.i64(name)[0] == reference.i64(name)[0]);
        } else {
            CHECK(max_relative_error(state.f32(name), reference.f32(name)) <= 1e-4);
        }
    }
}

}  // namespace

TEST_CASE("the fast CPU and reference executors agree over steps with dropout and a partial batch", "[executor]") {
    check_agrees_with_reference(two_steps_with_dropout(Backend::cpu), two_steps_with_dropout(Backend::cpu_reference));
}

TEST_CASE("the fast CPU executor gives the same bits with 1, 2 or 3 threads", "[executor]") {
    const io::StateDict one = two_steps_with_dropout(Backend::cpu, 1);
    for (int threads : {2, 3}) {
        const io::StateDict other = two_steps_with_dropout(Backend::cpu, threads);
        for (const std::string& name : one.names()) {
            INFO(name << ", " << threads << " threads");
            if (one.dtype(name) == DType::i64) {
                CHECK(other.i64(name)[0] == one.i64(name)[0]);
            } else {
                CHECK(max_relative_error(other.f32(name), one.f32(name)) == 0.0);
            }
        }
    }
}

TEST_CASE("the CPU and GPU executors agree over steps with dropout and a partial batch", "[executor][gpu]") {
    if (!test::have_gpu_backend()) return;
    check_agrees_with_reference(two_steps_with_dropout(Backend::gpu), two_steps_with_dropout(Backend::cpu_reference));
}

TEST_CASE("a GPU training step makes no host-device transfer; the metrics read-back makes two", "[executor][gpu]") {
    if (!test::have_gpu_backend()) return;
    ExecutorOptions options;
    options.backend = Backend::gpu;
    options.batch_size = 8;
    Executor executor(build_graph(builtin_model("small_cnn")), options);
    executor.initialize(3);
    HostTensor<float> x(Shape{8, 3, 32, 32}, 0.5f);
    const std::vector<int64_t> labels{0, 1, 2, 3, 4, 5, 6, 7};
    executor.set_batch(x.data(), labels.data(), 8);
    reset_transfer_stats();
    executor.train_step(0);
    executor.train_step(1);
    executor.eval_step();
    TransferStats stats = transfer_stats();
    CHECK(stats.host_to_device_calls == 0);
    CHECK(stats.device_to_host_calls == 0);
    const Metrics metrics = executor.read_metrics();
    CHECK(metrics.batches == 3);
    CHECK(metrics.samples == 24);
    CHECK(std::isfinite(metrics.loss_sum));
    stats = transfer_stats();
    CHECK(stats.device_to_host_calls == 2);  // the loss sum and the correct count
}

namespace {

// Batch norm and both kinds of dropout: every per-step argument a captured step must read from the device.
ModelSpec dropout_bn_spec(const char* momentum) {
    return parse_model_spec(nlohmann::json::parse(fmt::format(R"({{
        "name": "dropout_bn", "input": [3, 8, 8], "num_classes": 4,
        "layers": [
            {{"name": "c", "type": "conv2d", "in_channels": 3, "out_channels": 4, "kernel_size": 3, "padding": 1}},
            {{"name": "bn", "type": "batch_norm2d", "num_features": 4, "momentum": {}}},
            {{"name": "r", "type": "relu"}},
            {{"name": "d2", "type": "dropout2d", "p": 0.25}},
            {{"name": "flat", "type": "flatten"}},
            {{"name": "d", "type": "dropout", "p": 0.3}},
            {{"name": "head", "type": "linear", "in_features": 256, "out_features": 4}}
        ]}})", momentum)),
                            "dropout_bn_spec");
}

struct GraphRun {
    io::StateDict model, optimizer;
    std::vector<Metrics> metrics;
    int64_t graph_launches = 0;
    std::vector<std::string> description;
};

// Training steps with full and partial batches, a learning-rate change and evaluation steps, with or
// without CUDA graphs.
GraphRun run_steps(const ModelSpec& spec, OptimizerKind optimizer, bool cuda_graph, bool fuse_relu = true) {
    ExecutorOptions options;
    options.backend = Backend::gpu;
    options.fuse_relu = fuse_relu;
    options.batch_size = 4;
    options.seed = 21;
    options.cuda_graph = cuda_graph;
    options.optimizer.kind = optimizer;
    options.optimizer.lr = 1e-2;
    options.optimizer.momentum = optimizer == OptimizerKind::sgd ? 0.9 : 0.0;
    Executor executor(build_graph(spec), options);
    executor.initialize(21);
    GraphRun run;
    test::run_test_steps(executor, run.metrics);
    run.model = executor.model_state();
    run.optimizer = executor.optimizer_state();
    run.graph_launches = executor.cuda_graph_launches();
    run.description = executor.describe();
    return run;
}

std::string joined(const std::vector<std::string>& lines) {
    std::string text;
    for (const std::string& line : lines) text += line + "\n";
    return text;
}

}  // namespace

TEST_CASE("steps replayed from CUDA graphs equal eager steps bit for bit", "[executor][gpu][graph]") {
    if (!test::have_gpu_backend()) return;
    for (OptimizerKind optimizer : {OptimizerKind::adam, OptimizerKind::sgd}) {
        const ModelSpec spec = dropout_bn_spec("0.1");
        const GraphRun eager = run_steps(spec, optimizer, false);
        const GraphRun replayed = run_steps(spec, optimizer, true);
        CHECK(eager.graph_launches == 0);
        // Train: steps 0-3 at batch 4 (eager, capture, replay, replay), 4-5 recaptured after the lr change,
        // 6 at batch 3 (eager), 7-8 replayed; eval at batch 4 from its second run.
        CHECK(replayed.graph_launches == 3 + 2 + 2 + 2);
        CHECK(joined(replayed.description).find("cuda graph: each training and evaluation step") != std::string::npos);
        CHECK(bit_identical(eager.model, replayed.model));
        CHECK(bit_identical(eager.optimizer, replayed.optimizer));
        REQUIRE(eager.metrics.size() == replayed.metrics.size());
        for (std::size_t k = 0; k < eager.metrics.size(); ++k) {
            CHECK(eager.metrics[k].batches == replayed.metrics[k].batches);
            CHECK(eager.metrics[k].samples == replayed.metrics[k].samples);
            CHECK(eager.metrics[k].loss_sum == replayed.metrics[k].loss_sum);
            CHECK(eager.metrics[k].correct == replayed.metrics[k].correct);
        }
        CHECK(replayed.model.i64("bn.num_batches_tracked")[0] == 9);
    }
}

TEST_CASE("a batch norm with momentum null keeps training steps out of CUDA graphs, and says so",
          "[executor][gpu][graph]") {
    if (!test::have_gpu_backend()) return;
    const ModelSpec spec = dropout_bn_spec("null");
    const GraphRun eager = run_steps(spec, OptimizerKind::adam, false);
    const GraphRun replayed = run_steps(spec, OptimizerKind::adam, true);
    CHECK(replayed.graph_launches == 2);  // evaluation steps only
    CHECK_THAT(joined(replayed.description), Catch::Contains("batch norm 'bn' has momentum null"));
    CHECK(bit_identical(eager.model, replayed.model));
}

TEST_CASE("bad batches get errors that say what is wrong", "[executor]") {
    ExecutorOptions options;
    options.batch_size = 2;
    Executor executor(build_graph(builtin_model("small_cnn")), options);
    HostTensor<float> x(Shape{3, 3, 32, 32}, 0.0f);
    const std::vector<int64_t> good{1, 2, 3}, bad{1, 10};
    CHECK_THROWS_WITH(executor.set_batch(x.data(), good.data(), 3), Catch::Contains("1 to 2"));
    CHECK_THROWS_WITH(executor.set_batch(x.data(), bad.data(), 2),
                      Catch::Contains("label 10 of sample 1") && Catch::Contains("[0, 10)"));
    CHECK_THROWS_WITH(executor.train_step(0), Catch::Contains("set_batch"));
}

namespace {

// The gradients of one small_cnn training step (conv, batch norm, ReLU, pooling and a linear layer) on
// a fixed batch of 8, with the given backend and GPU options.
// What one small_cnn training step (convolutions, batch norm, ReLU, pooling, a linear layer) on a fixed batch
// of 8 computes: the logits and every parameter's gradient.
struct SmallStep {
    HostTensor<float> logits;
    io::StateDict gradients;
};

SmallStep small_cnn_step(Backend backend, const std::string& precision, const std::string& gemm = "auto",
                         const std::string& conv_algo = "auto") {
    ExecutorOptions options;
    options.backend = backend;
    options.batch_size = 8;
    options.dropout = false;
    options.precision = precision;
    options.gemm = gemm;
    options.conv_algo = conv_algo;
    // A conv bias that a batch norm subtracts again has gradient 0 exactly, so only rounding noise: leave
    // those biases out (as two_steps_with_dropout does), or the relative errors would measure noise.
    ModelSpec spec = builtin_model("small_cnn");
    for (LayerSpec& layer : spec.layers) {
        if (layer.kind == LayerKind::conv2d) layer.bias = false;
    }
    Executor executor(build_graph(spec), options);
    executor.initialize(5);
    HostTensor<float> x(Shape{8, 3, 32, 32});
    for (int64_t i = 0; i < x.numel(); ++i) x[i] = std::sin(0.37f * static_cast<float>(i % 1543)) + 0.25f;
    const std::vector<int64_t> labels{0, 1, 2, 3, 4, 5, 6, 7};
    executor.set_batch(x.data(), labels.data(), 8);
    executor.train_step(0);
    return {executor.logits(), executor.gradients()};
}

// How far a step is from the reference step: the logits' and each gradient's max |a − b| / max |b|.
struct StepErrors {
    double logits = 0.0, classifier = 0.0, largest_gradient = 0.0;
};

StepErrors step_errors(const SmallStep& actual, const SmallStep& reference) {
    StepErrors e;
    e.logits = max_relative_error(actual.logits, reference.logits);
    for (const std::string& name : reference.gradients.names()) {
        const double error = max_relative_error(actual.gradients.f32(name), reference.gradients.f32(name));
        UNSCOPED_INFO(name << ": " << error);
        if (name == "classifier.weight") e.classifier = error;
        e.largest_gradient = std::max(e.largest_gradient, error);
    }
    return e;
}

// TF32 keeps 10 of float's 23 mantissa bits: each rounded input errs by up to 2^-11 ≈ 4.9e-4 relative and a
// product of two by ~1e-3; sums of mixed signs come out smaller than their terms, which a factor 10 covers.
// That bounds the logits and the classifier's weight gradient (one GEMM of rounded inputs on top of the
// rounded forward).
constexpr double kTf32StepTolerance = 1e-2;
// The gradients below a batch norm amplify that: its backward subtracts the per-channel means of dy and dy · x̂
// (cancellation), and ReLUs whose pre-activation lies within TF32's rounding of 0 flip their decision (as in
// PyTorch's own float32 step against double, README "Status"). Measured: up to 9e-2 (the second convolution's
// weight); bound 0.25 — a broken kernel (a wrong index, a dropped term) is off by O(1).
constexpr double kTf32DeepGradientTolerance = 0.25;

}  // namespace

// --precision bf16 stores every activation with 8 significant bits (unit roundoff 2^-8 ≈ 3.9e-3, 8× TF32's
// 2^-11) and reads bf16 copies of the weights: each layer's output carries one rounding of its own on top of
// what its inputs carried. Measured on the emulator: logits 8.4e-3 (about two roundings' worth), the
// classifier's weight gradient 4.7e-3; bound 2.5e-2, three times that.
constexpr double kBf16StepTolerance = 2.5e-2;
// Below the batch norms, amplified as for TF32 (see kTf32DeepGradientTolerance): measured up to 0.13 (the
// first batch norm's weight; the convolutions' weights 0.10 and 0.12); bound 0.4 — a wrong index, a dropped
// term or a float read as bf16 is off by O(1).
constexpr double kBf16DeepGradientTolerance = 0.4;

TEST_CASE("--precision tf32: the GPU executor's step carries TF32-sized errors, fp32's float-sized ones",
          "[executor][gpu][precision]") {
    if (!test::have_gpu_backend()) return;
    const SmallStep reference = small_cnn_step(Backend::cpu_reference, "fp32");
    // The hand-written GEMM on both flavours (im2col convolutions, own GEMM), so that TF32 rounding is sure to
    // happen; cuDNN and cuBLAS may pick FP32 kernels for such small shapes even when TF32 is allowed.
    const StepErrors fp32 = step_errors(small_cnn_step(Backend::gpu, "fp32", "own", "im2col"), reference);
    const StepErrors tf32 = step_errors(small_cnn_step(Backend::gpu, "tf32", "own", "im2col"), reference);
    INFO("fp32: logits " << fp32.logits << ", gradients " << fp32.largest_gradient << "; tf32: logits "
                         << tf32.logits << ", classifier " << tf32.classifier << ", gradients "
                         << tf32.largest_gradient);
    // FP32: float rounding in sums of up to 1,024 terms, amplified by batch norm's normalization over 8 images
    // (the same bound as the CPU/GPU agreement tests above).
    CHECK(fp32.logits <= 1e-4);
    CHECK(fp32.largest_gradient <= 1e-4);
    CHECK(tf32.logits <= kTf32StepTolerance);
    CHECK(tf32.classifier <= kTf32StepTolerance);
    CHECK(tf32.largest_gradient <= kTf32DeepGradientTolerance);
    // The rounding did happen: errors an order of magnitude above FP32's (a kernel that forgot to round fails).
    CHECK(tf32.logits > 10 * fp32.logits);
    CHECK(tf32.largest_gradient > 10 * fp32.largest_gradient);
    // The default GEMM and convolution choices (cuBLAS and cuDNN on a real GPU) stay within TF32's bounds too.
    const StepErrors defaults = step_errors(small_cnn_step(Backend::gpu, "tf32"), reference);
    CHECK(defaults.logits <= kTf32StepTolerance);
    CHECK(defaults.classifier <= kTf32StepTolerance);
    CHECK(defaults.largest_gradient <= kTf32DeepGradientTolerance);
}

TEST_CASE("--precision bf16: the GPU executor's step carries bf16-sized errors",
          "[executor][gpu][precision][bf16]") {
    if (!test::have_gpu_backend()) return;
    const SmallStep reference = small_cnn_step(Backend::cpu_reference, "fp32");
    const StepErrors fp32 = step_errors(small_cnn_step(Backend::gpu, "fp32"), reference);
    const StepErrors bf16 = step_errors(small_cnn_step(Backend::gpu, "bf16"), reference);
    INFO("fp32: logits " << fp32.logits << ", gradients " << fp32.largest_gradient << "; bf16: logits "
                         << bf16.logits << ", classifier " << bf16.classifier << ", gradients "
                         << bf16.largest_gradient);
    CHECK(bf16.logits <= kBf16StepTolerance);
    CHECK(bf16.classifier <= kBf16StepTolerance);
    CHECK(bf16.largest_gradient <= kBf16DeepGradientTolerance);
    // The rounding did happen: errors far above FP32's (a layer that forgot to store bf16 fails).
    CHECK(bf16.logits > 100 * fp32.logits);
    CHECK(bf16.largest_gradient > 100 * fp32.largest_gradient);
}

TEST_CASE("--conv-algo own and fastest: the GPU executor's FP32 step matches the reference",
          "[executor][gpu][conv_algo]") {
    if (!test::have_gpu_backend()) return;
    const SmallStep reference = small_cnn_step(Backend::cpu_reference, "fp32");
    for (const std::string algo : {"own", "fastest"}) {
        const StepErrors e = step_errors(small_cnn_step(Backend::gpu, "fp32", "own", algo), reference);
        INFO("--conv-algo " << algo << ": logits " << e.logits << ", gradients " << e.largest_gradient);
        // The FP32 bounds of the test above; Winograd's transforms add a few float roundings per term, well
        // within them (its own parity tests bound it per layer).
        CHECK(e.logits <= 1e-4);
        CHECK(e.largest_gradient <= 1e-4);
    }
}

TEST_CASE("precision and GEMM choices that cannot apply are errors naming the option", "[executor][precision]") {
    const Graph graph = build_graph(builtin_model("small_cnn"));
    ExecutorOptions options;
    options.precision = "tf32";
    for (const Backend backend : {Backend::cpu, Backend::cpu_reference}) {
        options.backend = backend;
        CHECK_THROWS_WITH(Executor(graph, options),
                          Catch::Contains("--precision tf32") && Catch::Contains("computes in FP32 only") &&
                              Catch::Contains("--device cuda"));
    }
    if (!test::have_gpu_backend()) return;
    options.backend = Backend::gpu;
    options.precision = "fp16";
    CHECK_THROWS_WITH(Executor(graph, options), Catch::Contains("--precision fp16: not one of fp32, tf32"));
    options.precision = "fp32";
    options.gemm = "mkl";
    CHECK_THROWS_WITH(Executor(graph, options), Catch::Contains("--gemm mkl: not one of auto, own, cublas"));
#if CUDACNN_EMU
    options.gemm = "cublas";
    CHECK_THROWS_WITH(Executor(graph, options),
                      Catch::Contains("--gemm cublas: cuBLAS is not part of the emu flavour"));
#endif
    options.gemm = "own";
    options.precision = "tf32";
    const std::vector<std::string> lines = Executor(graph, options).describe();
    CHECK_THAT(lines.front(), Catch::Contains("TF32, GEMM own"));
}

namespace {

// Both kinds of ReLU fusion (r1 into the batch norm before it, r2 into the max pooling after it) and a ReLU
// that cannot fuse (r3: after a pooling, before a flatten).
ModelSpec fused_relu_spec() {
    return parse_model_spec(nlohmann::json::parse(R"({
        "name": "fused_relu", "input": [3, 8, 8], "num_classes": 4,
        "layers": [
            {"name": "c1", "type": "conv2d", "in_channels": 3, "out_channels": 4, "kernel_size": 3, "padding": 1},
            {"name": "bn", "type": "batch_norm2d", "num_features": 4},
            {"name": "r1", "type": "relu"},
            {"name": "c2", "type": "conv2d", "in_channels": 4, "out_channels": 6, "kernel_size": 3, "padding": 1},
            {"name": "r2", "type": "relu"},
            {"name": "p", "type": "max_pool2d", "kernel_size": 2},
            {"name": "r3", "type": "relu"},
            {"name": "flat", "type": "flatten"},
            {"name": "head", "type": "linear", "in_features": 96, "out_features": 4}
        ]})"),
                            "fused_relu_spec");
}

}  // namespace

TEST_CASE("fused ReLUs train bit for bit as separate ones, and the executor says which it fused",
          "[executor][gpu][fused]") {
    if (!test::have_gpu_backend()) return;
    for (const bool cuda_graph : {false, true}) {
        INFO("cuda_graph " << cuda_graph);
        const GraphRun fused = run_steps(fused_relu_spec(), OptimizerKind::adam, cuda_graph, true);
        const GraphRun separate = run_steps(fused_relu_spec(), OptimizerKind::adam, cuda_graph, false);
        CHECK(bit_identical(fused.model, separate.model));
        CHECK(bit_identical(fused.optimizer, separate.optimizer));
        REQUIRE(fused.metrics.size() == separate.metrics.size());
        for (std::size_t k = 0; k < fused.metrics.size(); ++k) {
            CHECK(fused.metrics[k].loss_sum == separate.metrics[k].loss_sum);
            CHECK(fused.metrics[k].correct == separate.metrics[k].correct);
        }
        const std::string said = joined(fused.description);
        CHECK_THAT(said, Catch::Contains("r1: fused into batch norm 'bn'") &&
                             Catch::Contains("r2: fused into max pooling 'p'") && !Catch::Contains("r3: fused"));
        CHECK_THAT(joined(separate.description), !Catch::Contains("fused into"));
    }
}

TEST_CASE("ReLUs stay separate where a layer's own output is wanted", "[executor][gpu][fused]") {
    if (!test::have_gpu_backend()) return;
    ExecutorOptions options;
    options.backend = Backend::gpu;
    options.batch_size = 2;
    options.keep_activations = true;  // every layer's output readable, the ReLUs' included
    CHECK_THAT(joined(Executor(build_graph(fused_relu_spec()), options).describe()), !Catch::Contains("fused into"));
    options.keep_activations = false;
    options.detect_anomaly = true;
    CHECK_THAT(joined(Executor(build_graph(fused_relu_spec()), options).describe()), !Catch::Contains("fused into"));
}
