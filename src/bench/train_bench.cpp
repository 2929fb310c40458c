// Candidates of the training-only ops (cross-entropy, the fused optimizers; augment_bench.cpp has the
// augmentation's) and the whole training step through graph::Executor, with and without CUDA-graph replay, plus
// an epoch estimate.
#include <cmath>
#include <memory>
#include <optional>
#include <random>
#include <type_traits>
#include <utility>

#include <fmt/format.h>

#include "cuda/loss.hpp"
#include "cuda/optimizer.hpp"
#include "cudacnn/device.hpp"
#include "cudacnn/graph/executor.hpp"
#include "cudacnn/ops/loss.hpp"
#include "cudacnn/ops/optimizer.hpp"
#include "measure.hpp"

namespace cudacnn::bench {
namespace {

float* floats(const DeviceBuffer& b) { return b.data_as<float>(); }

// loss_parity_test.cpp: a row's softmax sums see about ⌈C/32⌉ + 5 roundings plus expf's 2 ulp: 32 ulp.
constexpr double kLossTolerance = 32.0 / 16777216.0;

// CIFAR-10's training set, what an epoch estimate covers.
constexpr int64_t kCifar10TrainImages = 50000;

// ---- cross_entropy ---------------------------------------------------------------------------------------------

std::vector<Candidate> cross_entropy_candidates(const OpCase& c, Context& context) {
    struct State {
        int64_t rows = 0, classes = 0;
        RotatedInputs in;  // logits
        std::vector<int64_t> labels;
        bool ready = false;
        DeviceBuffer labels_d, loss, dloss, dlogits, ws;
        std::vector<double> ref_loss, ref_dlogits;
        gpu::CrossEntropyOptions options;
        void ensure(const Context& ctx) {
            if (ready) return;
            in.upload_all(ctx, 19);
            labels_d = upload(labels, ctx.s());
            loss = DeviceBuffer(sizeof(float));
            dloss = upload(std::vector<float>{1.0f}, ctx.s());
            dlogits = DeviceBuffer(static_cast<size_t>(rows * classes) * sizeof(float));
            ws = DeviceBuffer(gpu::cross_entropy_workspace_bytes(rows));
            const HostTensor<double> logits(Shape{rows, classes}, as_doubles(in.host(0)));
            const HostTensor<int64_t> y(Shape{rows}, labels);
            ref_loss = cpu::cross_entropy(logits, y).values();
            ref_dlogits = cpu::cross_entropy_backward(logits, y, HostTensor<double>(Shape{}, 1.0)).dlogits.values();
            ready = true;
        }
        void forward(int64_t call, const Context& ctx) {
            gpu::cross_entropy_forward(in.get(call, 0), labels_d.data_as<int64_t>(), rows, classes, options,
                                       floats(loss), ws.data(), ws.bytes(), ctx.s());
        }
        void backward(int64_t call, const Context& ctx) {
            gpu::cross_entropy_backward(in.get(call, 0), labels_d.data_as<int64_t>(), floats(dloss), rows, classes,
                                        options, floats(dlogits), ws.data(), ws.bytes(), ctx.s());
        }
    };
    const int64_t rows = c.number("N"), classes = c.number("C");
    std::vector<int64_t> labels(static_cast<size_t>(rows));
    std::mt19937_64 rng(context.options.seed + 5);
    for (int64_t& label : labels) label = static_cast<int64_t>(rng() % static_cast<uint64_t>(classes));
    auto st = std::make_shared<State>();
    st->rows = rows;
    st->classes = classes;
    st->in = RotatedInputs({random_values(rows * classes, context.options.seed, 1)});
    st->labels = labels;
    const Context* ctx = &context;
    const double bytes = static_cast<double>(rows * classes) * sizeof(float) + static_cast<double>(rows) * 8;
    std::vector<Candidate> out;
    if (context.wants("kernel")) {
        out.push_back(gpu_candidate(
            c, "forward", "kernel", context,
            [st, ctx] {
                st->ensure(*ctx);
                poison(floats(st->loss), 1, *ctx);
                st->forward(0, *ctx);
                return std::vector<Check>{compare_output("loss", floats(st->loss), st->ref_loss, kLossTolerance, *ctx)};
            },
            [st, ctx](int64_t call) { st->forward(call, *ctx); }));
        out.back().record.bytes = bytes;
        out.push_back(gpu_candidate(
            c, "backward", "kernel", context,
            [st, ctx] {
                st->ensure(*ctx);
                poison(floats(st->dlogits), st->rows * st->classes, *ctx);
                st->backward(0, *ctx);
                return std::vector<Check>{
                    compare_output("dlogits", floats(st->dlogits), st->ref_dlogits, kLossTolerance, *ctx)};
            },
            [st, ctx](int64_t call) { st->backward(call, *ctx); }));
        out.back().record.bytes = bytes + static_cast<double>(rows * classes) * sizeof(float);
    }
    if (context.wants("cpu")) {
        auto logits = std::make_shared<HostTensor<float>>(Shape{rows, classes}, st->in.host(0));
        auto y = std::make_shared<HostTensor<int64_t>>(Shape{rows}, labels);
        out.push_back(cpu_candidate(c, "forward", [logits, y] { cpu::cross_entropy(*logits, *y); }));
        out.back().record.bytes = bytes;
        out.push_back(cpu_candidate(c, "backward", [logits, y] {
            cpu::cross_entropy_backward(*logits, *y, HostTensor<float>(Shape{}, 1.0f));
        }));
        out.back().record.bytes = bytes + static_cast<double>(rows * classes) * sizeof(float);
    }
    return out;
}

// ---- the fused optimizers ------------------------------------------------------------------------------------

// The recipe's optimizer settings: Adam / AdamW at lr 1e-4 (PyTorch's other defaults), SGD with momentum 0.9.
cpu::AdamOptions adam_options() {
    cpu::AdamOptions o;
    o.lr = 1e-4;
    return o;
}
cpu::AdamWOptions adamw_options() {
    cpu::AdamWOptions o;
    o.lr = 1e-4;
    return o;
}
cpu::SgdOptions sgd_options() {
    cpu::SgdOptions o;
    o.lr = 1e-2;
    o.momentum = 0.9;
    return o;
}

int64_t state_slots(const std::string& op) {
    if (op == "adam") return cpu::adam_state_slots(adam_options());
    if (op == "adamw") return cpu::adamw_state_slots(adamw_options());
    return cpu::sgd_state_slots(sgd_options());
}

// One step of `op` on host tensors (the reference) or on device arrays (the kernel).
template <class T>
void reference_step(const std::string& op, HostTensor<T>& params, const HostTensor<T>& grads,
                    cpu::OptimizerState<T>& state) {
    if (op == "adam") cpu::adam_step(adam_options(), params, grads, state);
    else if (op == "adamw") cpu::adamw_step(adamw_options(), params, grads, state);
    else cpu::sgd_step(sgd_options(), params, grads, state);
}

void kernel_step(const std::string& op, float* params, const float* grads, float* state, int64_t n, int64_t& step,
                 cudaStream_t stream) {
    if (op == "adam") gpu::adam_step(adam_options(), params, grads, state, n, step, stream);
    else if (op == "adamw") gpu::adamw_step(adamw_options(), params, grads, state, n, step, stream);
    else gpu::sgd_step(sgd_options(), params, grads, state, n, step, stream);
}

cpu::OptimizerState<float> fresh_state(const std::string& op, int64_t n) {
    if (op == "adam") return cpu::adam_init_state<float>(adam_options(), n);
    if (op == "adamw") return cpu::adamw_init_state<float>(adamw_options(), n);
    return cpu::sgd_init_state<float>(sgd_options(), n);
}

std::vector<Candidate> optimizer_candidates(const OpCase& c, Context& context) {
    struct State {
        std::string op;
        int64_t n = 0, slots_per_value = 0;
        std::vector<float> params, grads;
        bool ready = false;
        int64_t copies = 1;
        // Per rotated copy: parameters, gradients, state (slots_per_value · n), and its step counter.
        std::vector<DeviceBuffer> p, g, s;
        std::vector<int64_t> steps;
        void ensure(const Context& ctx) {
            if (ready) return;
            copies = ctx.slots_for((2 + slots_per_value) * n * static_cast<int64_t>(sizeof(float)));
            for (int64_t k = 0; k < copies; ++k) {
                p.push_back(upload(k == 0 ? params : random_values(n, ctx.options.seed + k, 31), ctx.s()));
                g.push_back(upload(k == 0 ? grads : random_values(n, ctx.options.seed + k, 32), ctx.s()));
                s.push_back(upload(std::vector<float>(static_cast<size_t>(std::max<int64_t>(slots_per_value, 1) * n), 0.0f),
                                   ctx.s()));
                steps.push_back(0);
            }
            ready = true;
        }
        void step(int64_t call, const Context& ctx) {
            const auto k = static_cast<size_t>(call % copies);
            kernel_step(op, floats(p[k]), floats(g[k]), slots_per_value > 0 ? floats(s[k]) : nullptr, n, steps[k], ctx.s());
        }
    };
    const int64_t n = c.number("P");
    auto st = std::make_shared<State>();
    st->op = c.op;
    st->n = n;
    st->slots_per_value = state_slots(c.op);
    st->params = random_values(n, context.options.seed, 1);
    st->grads = random_values(n, context.options.seed, 2);
    const Context* ctx = &context;
    // Adam and AdamW read p, g, m, v and write p, m, v; SGD with momentum reads p, g, b and writes p, b.
    const double bytes = static_cast<double>(n) * sizeof(float) * (1 + 2 * (1 + static_cast<double>(st->slots_per_value)));
    std::vector<Candidate> out;
    if (context.wants("kernel")) {
        out.push_back(gpu_candidate(
            c, "step", "kernel", context,
            [st, ctx] {
                st->ensure(*ctx);
                st->step(0, *ctx);  // the first step from a fresh state, as the reference below
                HostTensor<float> params(Shape{st->n}, st->params);
                const HostTensor<float> grads(Shape{st->n}, st->grads);
                cpu::OptimizerState<float> state = fresh_state(st->op, st->n);
                reference_step(st->op, params, grads, state);
                // optimizer_parity_test.cpp: the kernels are bit-identical to the float reference.
                std::vector<Check> checks{compare_output("params", floats(st->p[0]), as_doubles(params.values()), 0.0, *ctx)};
                if (st->slots_per_value > 0)
                    checks.push_back(compare_output("state", floats(st->s[0]), as_doubles(state.values.values()), 0.0, *ctx));
                return checks;
            },
            [st, ctx](int64_t call) { st->step(call, *ctx); }));
        out.back().record.bytes = bytes;
    }
    if (context.wants("cpu")) {
        struct HostState {
            HostTensor<float> params, grads;
            cpu::OptimizerState<float> state;
        };
        auto host = std::make_shared<HostState>(HostState{HostTensor<float>(Shape{n}, st->params),
                                                          HostTensor<float>(Shape{n}, st->grads), fresh_state(c.op, n)});
        const std::string op = c.op;
        out.push_back(cpu_candidate(c, "step", [host, op] { reference_step(op, host->params, host->grads, host->state); }));
        out.back().record.bytes = bytes;
    }
    return out;
}

// ---- the whole training step -----------------------------------------------------------------------------------

graph::OptimizerKind optimizer_kind(const std::string& name) {
    if (name == "adamw") return graph::OptimizerKind::adamw;
    if (name == "sgd") return graph::OptimizerKind::sgd;
    return graph::OptimizerKind::adam;
}

struct StepVariant {
    std::string algorithm;  // kernels (one launch per kernel), cuda_graph (the step replayed as a graph), cpu
                            // (the fast CPU path), cpu_ref (the reference ops); cuda_graph_* the GPU options below
    graph::Backend backend;
    bool cuda_graph;
    std::string precision = "fp32";  // ExecutorOptions::precision, gemm and cudnn_benchmark
    std::string gemm = "auto";
    bool cudnn_benchmark = false;
    bool fuse_relu = true;           // ExecutorOptions::fuse_relu and fuse_dropout (both or neither)
    std::string conv_algo = "auto";  // ExecutorOptions::conv_algo
    bool fold_conv_bias = true;      // ExecutorOptions::fold_conv_bias
    bool fuse_conv_bn_statistics = true;  // ExecutorOptions::fuse_conv_bn_statistics
    std::string memory_format = "nchw";  // ExecutorOptions::memory_format
};

// `v` with channels_last activations (--memory-format nhwc), named v's algorithm + "_nhwc".
StepVariant channels_last(StepVariant v) {
    v.algorithm += "_nhwc";
    v.memory_format = "nhwc";
    return v;
}

Record epoch_record(const Record& step, int64_t batch_size) {
    Record e = step;
    e.op = "epoch";
    e.direction = "estimate";
    e.max_error.reset();
    e.tolerance.reset();
    e.images_per_s.reset();
    e.min_us.reset();
    e.max_us.reset();
    e.spread_percent.reset();
    e.repeats = 0;
    e.median_us.reset();
    if (step.status == Status::ok && step.median_us) {
        const int64_t steps = (kCifar10TrainImages + batch_size - 1) / batch_size;
        e.epoch_s = static_cast<double>(steps) * *step.median_us * 1e-6;
        e.note = fmt::format("{} steps of {} images (CIFAR-10's 50,000), training only; no data loading or evaluation",
                             steps, batch_size);
    }
    return e;
}

// Per step, not per timed sample of several steps.
void per_step(Record& r, int64_t steps_per_call) {
    if (!r.median_us) return;
    for (auto* value : {&r.median_us, &r.min_us, &r.max_us}) **value /= static_cast<double>(steps_per_call);
    r.note += fmt::format("{}steps per sample: {}", r.note.empty() ? "" : "; ", steps_per_call);
}

// The evaluation forward pass (no dropout, running BN statistics, no backward) on the step's batch: what
// cudacnn-eval and the test set cost per image.
Record inference_record(const Record& step) {
    Record r = step;
    r.op = "infer_step";
    r.direction = "forward";
    return r;
}

Record time_inference(const Candidate& step, const std::shared_ptr<graph::Executor>& executor, int64_t classes,
                      int64_t steps_per_call, Context& context) {
    Candidate cand;
    cand.record = inference_record(step.record);
    cand.images_per_call = step.images_per_call;
    cand.check = [executor, classes] {
        executor->eval_step();
        const graph::Metrics m = executor->read_metrics();
        const double expected = std::log(static_cast<double>(classes));
        const double error = std::fabs(m.mean_loss() - expected) / expected;
        return std::vector<Check>{{"loss", std::isfinite(m.mean_loss()) ? error : INFINITY, 0.5}};
    };
    cand.run = [executor, steps_per_call](int64_t) {
        for (int64_t i = 0; i < steps_per_call; ++i) executor->eval_step();
        executor->read_metrics();
    };
    Record r = measure(cand, context);
    per_step(r, steps_per_call);
    return r;
}

}  // namespace

std::vector<Candidate> training_op_candidates(const OpCase& c, Context& context) {
    if (c.op == "cross_entropy") return cross_entropy_candidates(c, context);
    if (c.op == "adam" || c.op == "adamw" || c.op == "sgd") return optimizer_candidates(c, context);
    if (c.op == "augment") return augment_candidates(c, context);
    CUDACNN_FAIL("bench: '{}' is not a training op", c.op);
}

std::vector<Record> bench_train_step(const graph::Graph& model, Context& context) {
    const BenchOptions& o = context.options;
    std::vector<StepVariant> variants;
    if (context.wants("kernel") || context.wants("direct") || context.wants("im2col") || context.wants("implicit") ||
        context.wants("winograd") || context.wants("winograd4") || context.wants("cudnn")) {
        variants.push_back({"kernels", graph::Backend::gpu, false});
        variants.push_back({"cuda_graph", graph::Backend::gpu, true});
        // What each of issue 11's means adds on its own, and all together (each row's note names its settings).
        variants.push_back({"cuda_graph_unfused", graph::Backend::gpu, true, "fp32", "auto", false, false,
                            "auto", false, false});
        // The conv biases alone unfolded: what folding them into the batch norms saves (cuDNN's bias passes).
        variants.push_back(
            {"cuda_graph_unfolded", graph::Backend::gpu, true, "fp32", "auto", false, true, "auto", false});
        variants.push_back({"cuda_graph_own_gemm", graph::Backend::gpu, true, "fp32", "own"});
        variants.push_back({"cuda_graph_benchmark", graph::Backend::gpu, true, "fp32", "auto", true});
        variants.push_back({"cuda_graph_tf32", graph::Backend::gpu, true, "tf32"});
        variants.push_back({"cuda_graph_tf32_benchmark", graph::Backend::gpu, true, "tf32", "auto", true});
        // bf16 activations and weight copies (--precision bf16): cuDNN's bf16 convolutions where it is built,
        // else the implicit GEMM; the hand-written GEMM for the linear layers.
        variants.push_back({"cuda_graph_bf16", graph::Backend::gpu, true, "bf16"});
        variants.push_back({"cuda_graph_bf16_benchmark", graph::Backend::gpu, true, "bf16", "auto", true});
        // channels_last activations (--memory-format nhwc): cuDNN's NHWC convolutions where it is built, else
        // the implicit GEMM; the input converted at the edge and the flatten reordering back to NCHW.
        variants.push_back(channels_last({"cuda_graph", graph::Backend::gpu, true}));
        variants.push_back(channels_last({"cuda_graph_tf32", graph::Backend::gpu, true, "tf32"}));
        variants.push_back(channels_last({"cuda_graph_bf16", graph::Backend::gpu, true, "bf16"}));
        variants.push_back(
            channels_last({"cuda_graph_bf16_benchmark", graph::Backend::gpu, true, "bf16", "auto", true}));
        // No vendor library at all: the hand-written convolutions (Winograd where it pays, else the implicit GEMM:
        // --conv-algo own) and the own GEMM, FP32 (issue 11's "hand-written").
        variants.push_back(
            {"cuda_graph_hand_written", graph::Backend::gpu, true, "fp32", "own", false, true, "own"});
        // The same in bf16 (the implicit GEMM's and the GEMM's bf16 tensor-core kernels), NCHW and
        // channels_last.
        const StepVariant bf16_hand_written{
            "cuda_graph_bf16_hand_written", graph::Backend::gpu, true, "bf16", "own", false, true, "own"};
        variants.push_back(bf16_hand_written);
        variants.push_back(channels_last(bf16_hand_written));
        // The same with each batch norm summing its conv's output itself: what writing the statistics in the
        // implicit GEMM's epilogue saves (it runs every conv of the bf16 hand-written step).
        StepVariant separate_statistics = bf16_hand_written;
        separate_statistics.algorithm += "_separate_bn_statistics";
        separate_statistics.fuse_conv_bn_statistics = false;
        variants.push_back(separate_statistics);
        // Each pass of each layer by whichever algorithm ran it fastest when timed (--conv-algo fastest), FP32 and
        // TF32. Under the emulator only when --filter names them: the timing runs every algorithm there too.
        if (!kEmulated || o.filter.find("fastest") != std::string::npos) {
            variants.push_back(
                {"cuda_graph_fastest", graph::Backend::gpu, true, "fp32", "auto", false, true, "fastest"});
            variants.push_back(
                {"cuda_graph_tf32_fastest", graph::Backend::gpu, true, "tf32", "auto", false, true, "fastest"});
            // bf16 channels_last, each pass by the faster of cuDNN and the implicit GEMM's tensor-core
            // kernel.
            variants.push_back(channels_last({"cuda_graph_bf16_fastest", graph::Backend::gpu, true, "bf16",
                                              "auto", false, true, "fastest"}));
        }
    }
    if (context.wants("cpu")) variants.push_back({"cpu", graph::Backend::cpu, false});
    if (context.wants("cpu_ref")) variants.push_back({"cpu_ref", graph::Backend::cpu_reference, false});

    // One fixed random batch, copied to the device once: the step alone is timed, as PyTorch's side does.
    const int64_t n = o.batch_size;
    const int64_t image_floats = model.spec.input.numel();
    const std::vector<float> images = random_values(n * image_floats, o.seed, 41);
    std::vector<int64_t> labels(static_cast<size_t>(n));
    for (int64_t i = 0; i < n; ++i) labels[i] = i % model.spec.num_classes;

    std::vector<Record> out;
    for (const StepVariant& v : variants) {
        Candidate cand;
        cand.record.op = "train_step";
        cand.record.shape = fmt::format("model={},N={}", model.spec.name, n);
        cand.record.direction = "step";
        cand.record.algorithm = v.algorithm;
        cand.record.device = v.backend != graph::Backend::gpu ? "cpu" : context.gpu ? context.gpu_device : "gpu";
        cand.images_per_call = static_cast<double>(n);
        const bool profile = o.profile && profiles_variant(cand.record, context);
        if (o.profile && !profile) continue;  // --profile: only the variants it profiles
        const bool time_step = context.selected(cand.record);
        const bool time_infer = context.selected(inference_record(cand.record));
        if (!time_step && !time_infer && !profile) continue;
        if (v.backend == graph::Backend::gpu && !gpu_candidate_possible(context, cand)) {
            out.push_back(measure(cand, context));
            continue;
        }
        graph::ExecutorOptions options;
        options.backend = v.backend;
        options.batch_size = n;
        options.optimizer.kind = optimizer_kind(o.optimizer);
        options.optimizer.lr = o.optimizer == "sgd" ? 1e-2 : 1e-4;
        options.optimizer.momentum = o.optimizer == "sgd" ? 0.9 : 0.0;
        options.seed = o.seed;
        options.cuda_graph = v.cuda_graph;
        options.precision = v.precision;
        options.memory_format = v.memory_format;
        options.gemm = v.gemm;
        options.cudnn_benchmark = v.cudnn_benchmark;
        options.cudnn_workspace_limit_bytes = graph::cudnn_workspace_limit_from_mib(o.cudnn_workspace_mib);
        options.fuse_relu = v.fuse_relu;
        options.fuse_dropout = v.fuse_relu;  // "unfused" runs every layer's own kernels
        options.fold_conv_bias = v.fold_conv_bias;
        options.fuse_conv_bn_statistics = v.fuse_conv_bn_statistics;
        options.conv_algo = v.conv_algo;
        options.threads = o.threads;
        std::shared_ptr<graph::Executor> executor;
        try {
            executor = std::make_shared<graph::Executor>(model, options);
            executor->initialize(o.seed);
            executor->set_batch(images.data(), labels.data(), n);
        } catch (const std::exception& e) {
            cand.record.status = Status::failed;
            cand.record.note = e.what();
            out.push_back(cand.record);
            continue;
        }
        auto step = std::make_shared<int64_t>(0);
        const int64_t steps_per_call = o.steps;
        // The check: a step's loss is a finite number near ln(classes) for fresh weights (the executor's own
        // tests compare whole steps with PyTorch; this catches a broken build or device).
        cand.check = [executor, step, &model] {
            executor->train_step((*step)++);
            const graph::Metrics m = executor->read_metrics();
            const double expected = std::log(static_cast<double>(model.spec.num_classes));
            const double error = std::fabs(m.mean_loss() - expected) / expected;
            return std::vector<Check>{{"loss", std::isfinite(m.mean_loss()) ? error : INFINITY, 0.5}};
        };
        cand.run = [executor, step, steps_per_call](int64_t) {
            for (int64_t i = 0; i < steps_per_call; ++i) executor->train_step((*step)++);
            executor->read_metrics();  // waits for the device, as a training loop's read-back does
        };
        cand.images_per_call = static_cast<double>(n * steps_per_call);
        // Inference first: its check expects fresh weights, and the timed training steps below fit the one
        // fixed batch until its loss is near 0 (on a GPU, where many steps are timed).
        std::optional<Record> inference, trained;
        if (time_infer) inference = time_inference(cand, executor, model.spec.num_classes, steps_per_call, context);
        if (time_step) {
            Record r = measure(cand, context);
            per_step(r, steps_per_call);
            if (r.median_us && v.cuda_graph) {
                r.note += fmt::format("; replayed graph launches: {}", executor->cuda_graph_launches());
            }
            if (v.backend == graph::Backend::gpu) {
                r.note += "; " + executor->describe().front();
                if (v.conv_algo != "auto") r.note += ", conv2d " + v.conv_algo;
                if (!v.fuse_relu) r.note += ", ReLUs unfused";
                if (!v.fold_conv_bias) r.note += ", conv biases unfolded";
                if (!v.fuse_conv_bn_statistics) r.note += ", batch norm statistics not from the convs";
            }
            out.push_back(r);
            trained = r;
            Record e = epoch_record(r, n);
            if (context.selected(e)) out.push_back(e);
        }
        if (inference) out.push_back(*inference);
        if (profile) {
            for (Record& r : profile_step_variant(*executor, cand.record, trained, inference, *step, context))
                out.push_back(std::move(r));
        }
    }
    return out;
}

}  // namespace cudacnn::bench
