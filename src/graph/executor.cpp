// The graph executor's bookkeeping, shared by both backends: flat blocks for parameters, gradients,
// optimizer state and BN buffers; a static memory plan for everything a step writes; the order of forward,
// loss, backward (with gradient accumulation where a tensor feeds several layers) and the optimizer step.
#include "cudacnn/graph/executor.hpp"

#include <algorithm>
#include <array>
#include <cmath>
#include <functional>
#include <map>
#include <vector>

#include <fmt/format.h>

#include "cudacnn/dist/communicator.hpp"
#include "cudacnn/graph/profile.hpp"
#include "cudacnn/io/float16.hpp"
#include "cudacnn/ops/init.hpp"
#include "src/graph/backend.hpp"
#include "src/graph/step_profiler.hpp"

namespace cudacnn::graph {
namespace {

using detail::Activation;
using detail::ConstActivation;
using detail::NodeArgs;
using detail::StepProfiler;
using detail::timed;

// Dropout masks draw from Philox streams far above those of the initial weights (one per parameter).
constexpr uint64_t kDropoutStreamBase = uint64_t{1} << 48;
constexpr int kNone = -1;

// Each tensor of the flat blocks starts at a multiple of 8 floats: 32 bytes, so that the fused optimizer's
// float4 path finds every f32 tensor 16-byte aligned and the bf16 copies of the weights (--precision bf16, at
// the same element offsets) are 16-byte aligned too, as vector loads and cuDNN's tensor-core filters want.
int64_t padded_to_8_floats(int64_t n) {
    return (n + 7) / 8 * 8;
}

Shape with_batch(int64_t batch, const Shape& per_sample) {
    std::vector<int64_t> dims{batch};
    for (int64_t d : per_sample.dims()) dims.push_back(d);
    return Shape(dims);
}

// Layers whose backward reads their input, or their own output.
bool backward_reads_input(LayerKind kind) {
    return kind == LayerKind::conv2d || kind == LayerKind::batch_norm2d || kind == LayerKind::linear;
}
bool backward_reads_output(LayerKind kind) {
    return kind == LayerKind::relu;
}
// Layers that skip the input gradient when given none (the model's input needs none).
bool can_skip_input_gradient(LayerKind kind) {
    return kind == LayerKind::conv2d || kind == LayerKind::linear;
}

// The per-step non-finite checks, each a gpu::NonfiniteRecord after the correct count: the parameters as a
// training step begins, its loss, its gradients after the backward.
enum NonfiniteCheck { kParamsCheck, kLossCheck, kGradsCheck, kNonfiniteChecks };
using NonfiniteRecords = std::array<gpu::NonfiniteRecord, kNonfiniteChecks>;

constexpr const char* kAnomalyAdvice =
    "lower the learning rate (--lr) and resume from the last checkpoint (--resume; the checkpoints written so "
    "far are kept)";
constexpr const char* kNonfiniteAdvice =
    "lower the learning rate (--lr), run with --detect-anomaly to stop at the first layer whose output or "
    "gradient is not finite, and resume from the last checkpoint (--resume; the checkpoints written so far are "
    "kept)";

std::string nonfinite_kinds(unsigned long long kinds) {
    std::vector<std::string> names;
    if (kinds & gpu::kNonfiniteNaN) names.push_back("NaN");
    if (kinds & gpu::kNonfinitePosInf) names.push_back("+Inf");
    if (kinds & gpu::kNonfiniteNegInf) names.push_back("-Inf");
    return fmt::format("{}", fmt::join(names, " and "));
}

int64_t record_step(const gpu::NonfiniteRecord& record) { return static_cast<int64_t>(record.step_plus_one) - 1; }
int64_t record_index(const gpu::NonfiniteRecord& record) { return static_cast<int64_t>(~record.not_first_index); }

std::vector<std::string> optimizer_slot_names(const OptimizerConfig& config) {
    switch (config.kind) {
        case OptimizerKind::sgd: return config.momentum != 0.0 ? std::vector<std::string>{"momentum_buffer"}
                                                               : std::vector<std::string>{};
        default: break;
    }
    return {"exp_avg", "exp_avg_sq"};  // PyTorch's names for Adam's and AdamW's state
}

}  // namespace

const char* backend_name(Backend backend) {
    switch (backend) {
        case Backend::cpu: return "cpu";
        case Backend::cpu_reference: return "cpu-ref";
        case Backend::gpu: return "gpu";
    }
    return "unknown";
}

namespace {

std::unique_ptr<detail::BackendImpl> make_backend(const ExecutorOptions& options) {
    const MemoryFormat format = parse_memory_format(options.memory_format);
    CUDACNN_CHECK(
        format == MemoryFormat::nchw || options.backend == Backend::gpu,
        "--memory-format {}: the {} backend computes NCHW only; use --memory-format nchw, or --device cuda "
        "for channels_last on the GPU",
        options.memory_format, backend_name(options.backend));
    if (options.backend != Backend::gpu) {
        CUDACNN_CHECK(options.precision == "fp32",
                      "--precision {}: the {} backend computes in FP32 only; use --precision fp32, or --device cuda "
                      "for TF32 on the GPU",
                      options.precision, backend_name(options.backend));
    }
    switch (options.backend) {
        case Backend::cpu: return detail::make_fast_cpu_backend(options.threads);
        case Backend::cpu_reference: return detail::make_cpu_reference_backend();
        case Backend::gpu: return detail::make_gpu_backend(options);
    }
    CUDACNN_FAIL("executor: unknown backend {}", static_cast<int>(options.backend));
}

}  // namespace

struct Executor::Impl {
    Graph graph;
    ExecutorOptions options;
    std::unique_ptr<detail::BackendImpl> backend;
    int layers = 0;

    // ---- flat blocks: parameters (and gradients, same layout), BN buffers, optimizer state -------------
    std::vector<int64_t> offset;  // per state entry, in floats of its block; kNone for num_batches_tracked
    int64_t param_floats = 0, buffer_floats = 0, slots = 0, optimizer_step = 0;
    std::shared_ptr<void> params, grads, buffers, optimizer;
    std::map<int, int64_t> num_batches_tracked;  // per batch norm node, on the host

    // ---- the arena ----------------------------------------------------------------------------------
    std::vector<int> storage;  // per node: the node whose output memory it uses (kInput for the model input)
    // Fused ReLUs (ExecutorOptions::fuse_relu): per node, for a ReLU that runs inside a neighbour, that neighbour
    // (kNone: not fused); applies_relu marks the neighbours (a batch norm before, a max pooling or dropout after).
    std::vector<int> relu_host;
    std::vector<bool> applies_relu;
    // Folded dropouts (ExecutorOptions::fuse_dropout): per dropout node that runs inside the max pooling before
    // it, that pooling (kNone: not folded); per max pooling, the dropout it runs (kNone: none).
    std::vector<int> dropout_host;
    std::vector<int> folded_dropout;
    // Folded conv biases (ExecutorOptions::fold_conv_bias): per node, a conv2d's batch norm, or a batch
    // norm's conv2d; kNone where there is none (conv_bias_folds_in() says in which passes).
    std::vector<int> bias_fold;
    // Conv → batch norm statistics (ExecutorOptions::fuse_conv_bn_statistics): per node, a conv2d's batch
    // norm, or a batch norm's conv2d, where the backend may let the conv write the batch norm's statistics
    // (kNone elsewhere); per conv2d, the buffer of those statistics (kNone where the full batch's plan
    // cannot).
    std::vector<int> bn_partials_pair;
    std::vector<int> bn_partials_buf;
    // The element type of each node's output and of its gradient (by storage node), and of the model input as
    // the layers read it: f32, or bf16 under --precision bf16 (the backend's activation_dtype()). Then the
    // executor casts at the edges, as PyTorch's autocast does: the f32 input batch to `input_cast_buf` before
    // the first layer, the logits to f32 `logits_buf` for the loss, whose f32 gradient `dlogits_buf` is cast
    // back to the last layer's dy; and the layers read a copy of the parameters in that type (params_copy),
    // written after every change of the f32 master parameters.
    std::vector<DType> output_dtype;
    DType model_dtype = DType::f32;
    // Where the 4-d activations lie (the backend's memory_format()): with NHWC the input batch is converted
    // into `input_cast_buf` too, and a flatten that must reorder (permutes_flatten) runs as a node.
    MemoryFormat layout = MemoryFormat::nchw;
    std::shared_ptr<void> params_copy;
    std::vector<BufferRequest> requests;
    MemoryPlan plan;
    std::shared_ptr<void> arena;
    std::vector<int> y_buf, dy_buf, saved_buf, workspace_buf, backward_workspace_buf;  // per node, kNone if none
    std::map<std::pair<int, int>, int> temp_buf;  // (consumer, input slot) → gradient to add, not the first writer
    int x_buf = kNone, input_cast_buf = kNone, logits_buf = kNone, dlogits_buf = kNone,
        input_grad_buf = kNone, labels_buf = kNone, loss_buf = kNone, loss_workspace_buf = kNone,
        loss_sum_buf = kNone, correct_buf = kNone;
    std::map<std::pair<int, int64_t>, std::shared_ptr<void>> extra_workspace;  // (node, batch) → when a smaller
                                                                               // batch needs more than planned
    int64_t batch = 0;  // the current batch's size
    int64_t metric_batches = 0, metric_samples = 0;

    // ---- step counters and CUDA graphs --------------------------------------------------------------------
    int counters_buf = kNone;  // kStepCounters int64 in the arena: what a step reads that changes every step
    std::array<int64_t, detail::kStepCounters> counters_in_backend{-1, -1};  // their values there; -1: unknown
    struct CapturedStep {
        bool warmed_up = false;  // one eager run has chosen algorithms and allocated what this batch needs
        CudaGraph graph;
    };
    std::map<std::pair<bool, int64_t>, CapturedStep> captured_steps;  // (training, batch) → its graph
    std::string train_capture_off, eval_capture_off;  // why steps run without a graph ("" when they don't)
    int64_t graph_launches = 0;

    // ---- non-finite checks ------------------------------------------------------------------------------
    std::string pass_label;     // "step N" or "an evaluation step": what detect_anomaly's errors name
    int64_t last_train_step = -1;  // the step of the latest training pass, whose input batch is still there

    // ---- profiling (start_profile): null when off ------------------------------------------------------
    std::unique_ptr<StepProfiler> profiler;

    Impl(const Graph& g, const ExecutorOptions& o) : graph(g), options(o) {
        CUDACNN_CHECK(options.batch_size >= 1, "executor: batch size {} must be at least 1", options.batch_size);
        backend = make_backend(options);
        layout = backend->memory_format();
        check_communicator();
        layers = static_cast<int>(graph.nodes.size());
        lay_out_state();
        decide_fusion();
        decide_conv_bias_folds();
        decide_conv_bn_statistics();
        choose_activation_dtypes();
        plan_arena();
        decide_capture();
    }

    // A communicator must reduce memory where this backend keeps its gradients.
    void check_communicator() const {
        const dist::Communicator* communicator = options.communicator;
        if (communicator == nullptr) {
            CUDACNN_CHECK(!options.sync_batch_norm, "executor: synchronized batch norm (--sync-bn) needs a "
                          "data-parallel run (a communicator); a single process has nothing to synchronize with");
            return;
        }
        CUDACNN_CHECK(!options.sync_batch_norm || options.backend != Backend::cpu_reference,
                      "executor: synchronized batch norm (--sync-bn) runs on the fast CPU path (--device cpu) and the "
                      "GPU, not on the {} backend; leave it off there (each rank normalizes by its own batch, as "
                      "DistributedDataParallel does by default)", backend_name(options.backend));
        const bool device = options.backend == Backend::gpu;
        CUDACNN_CHECK(communicator->device_memory() == device,
                      "executor: the data-parallel engine ({}) reduces {} memory, but the {} backend keeps its "
                      "gradients in {} memory; the CPU path runs under MPI, the GPU path under NCCL",
                      communicator->describe(), communicator->device_memory() ? "GPU" : "host",
                      backend_name(options.backend), device ? "GPU" : "host");
    }

    // Which steps may be captured as CUDA graphs: every kernel argument must be the same at each step, so
    // what changes lives in device memory (the step counters); a batch norm with momentum=None computes its
    // factor from num_batches_tracked on the host, so its training step cannot be captured.
    void decide_capture() {
        if (!backend->can_capture()) {
            train_capture_off = eval_capture_off = "the CPU backend runs no CUDA graphs";
            return;
        }
        if (options.detect_anomaly) {
            train_capture_off = eval_capture_off =
                "off (detect_anomaly, --detect-anomaly: every layer's values are read back as they are written)";
            return;
        }
        if (!options.cuda_graph) {
            train_capture_off = eval_capture_off = "off (cuda_graph = false, --no-cuda-graph)";
            return;
        }
        if (options.communicator != nullptr && !options.communicator->capturable()) {
            train_capture_off = fmt::format("off for training steps: the gradient all-reduce ({}) cannot be captured; "
                                            "evaluation steps are captured", options.communicator->describe());
            return;
        }
        for (const Node& node : graph.nodes) {
            if (node.spec.kind == LayerKind::batch_norm2d && node.spec.track_running_stats && !node.spec.momentum) {
                train_capture_off = fmt::format(
                    "off for training steps: batch norm '{}' has momentum null (a cumulative average whose "
                    "factor changes at every step); evaluation steps are captured",
                    node.spec.name);
                return;
            }
        }
    }

    // Which layers run inside a neighbour's kernels (and become aliases): ReLUs (ExecutorOptions::fuse_relu), then
    // dropouts after a max pooling (ExecutorOptions::fuse_dropout), on a backend that can.
    void decide_fusion() {
        relu_host.assign(layers, kNone);
        applies_relu.assign(layers, false);
        dropout_host.assign(layers, kNone);
        folded_dropout.assign(layers, kNone);
        // keep_activations and detect_anomaly read every layer's own output, which a fused layer never writes.
        if (options.keep_activations || options.detect_anomaly) return;
        if (options.fuse_relu && backend->fuses_relu()) {
            fuse_relus();
            fold_relus_into_dropouts();
        }
        if (options.fuse_dropout && backend->folds_dropouts()) fold_dropouts_into_pools();
    }

    // Which ReLUs run inside a neighbour's kernels: a batch norm whose only use is the ReLU applies it after
    // normalizing (the ReLU then shares the batch norm's output); otherwise a max pooling that is the ReLU's only
    // use applies it to each value it reads (the ReLU then shares its input's memory and is never written).
    // The ReLU itself becomes an alias; the neighbour's backward reads its own output for ReLU's mask.
    void fuse_relus() {
        for (int r = 0; r < layers - 1; ++r) {  // the last node's output is the logits, which must exist
            const Node& relu = graph.nodes[r];
            if (relu.spec.kind != LayerKind::relu || relu.inputs.size() != 1 || relu.inputs[0] == kInput) continue;
            const int producer = relu.inputs[0];
            const Node& before = graph.nodes[producer];
            if (before.spec.kind == LayerKind::batch_norm2d && before.consumers.size() == 1 && !applies_relu[producer]) {
                relu_host[r] = producer;
            } else if (relu.consumers.size() == 1 && before.spec.kind != LayerKind::flatten &&
                       before.spec.kind != LayerKind::dropout && before.spec.kind != LayerKind::dropout2d) {
                // (Not after a possible alias, which might share the model input's memory.)
                const int consumer = relu.consumers[0];
                const Node& after = graph.nodes[consumer];
                if (after.spec.kind == LayerKind::max_pool2d && after.inputs.size() == 1 && !applies_relu[consumer]) {
                    relu_host[r] = consumer;
                }
            }
            if (relu_host[r] != kNone) applies_relu[relu_host[r]] = true;
        }
    }

    // A dropout whose input is a ReLU used by nothing else (and not already fused) applies that ReLU to what it
    // reads: one kernel writes the dropout's output and a mask whose bytes also record where the ReLU passes
    // gradients, so its backward is one kernel too (gpu::relu_dropout_forward). The ReLU shares its input's
    // memory and is never written; its input lives only until the dropout's forward (nothing reads it later).
    void fold_relus_into_dropouts() {
        if (!options.dropout) return;  // --no-dropout: every dropout is an alias, the ReLUs run
        for (int d = 0; d < layers; ++d) {
            const Node& dropout = graph.nodes[d];
            if (dropout.spec.kind != LayerKind::dropout || dropout.inputs.size() != 1 || dropout.inputs[0] == kInput) {
                continue;
            }
            const int r = dropout.inputs[0];
            const Node& relu = graph.nodes[r];
            if (relu.spec.kind != LayerKind::relu || relu_host[r] != kNone || relu.consumers.size() != 1 ||
                relu.inputs.size() != 1 || relu.inputs[0] == kInput) {
                continue;
            }
            // (Not after a possible alias, which might share the model input's memory.)
            const LayerKind before = graph.nodes[relu.inputs[0]].spec.kind;
            if (before == LayerKind::flatten || before == LayerKind::dropout || before == LayerKind::dropout2d) {
                continue;
            }
            relu_host[r] = d;
            applies_relu[d] = true;
        }
    }

    // A dropout (or dropout2d) whose input is a max pooling used by nothing else, directly or through a flatten
    // used by nothing else (CifarCNN's MaxPool → flatten → Dropout; a flatten keeps the element order, so the
    // dropout's units are the pooled elements), runs inside the pooling's kernels (gpu::max_pool2d_dropout): the
    // pooling writes the dropout's output and mask, and its backward applies the mask as it gathers, one kernel
    // each way instead of two (three for dropout2d). The dropout shares the pooling's memory and never runs; its
    // mask keeps the dropout's own Philox stream, so the masks are the unfolded run's.
    void fold_dropouts_into_pools() {
        if (!options.dropout) return;  // --no-dropout: every dropout is an alias already
        for (int d = 0; d < layers; ++d) {
            const Node& dropout = graph.nodes[d];
            const LayerKind kind = dropout.spec.kind;
            if ((kind != LayerKind::dropout && kind != LayerKind::dropout2d) || applies_relu[d] ||
                dropout.inputs.size() != 1 || dropout.inputs[0] == kInput) {
                continue;
            }
            int p = dropout.inputs[0];
            if (kind == LayerKind::dropout && graph.nodes[p].spec.kind == LayerKind::flatten) {
                const Node& flatten = graph.nodes[p];
                if (flatten.consumers.size() != 1 || flatten.inputs.size() != 1 || flatten.inputs[0] == kInput) continue;
                p = flatten.inputs[0];
            }
            const Node& pool = graph.nodes[p];
            if (pool.spec.kind != LayerKind::max_pool2d || pool.consumers.size() != 1 || folded_dropout[p] != kNone) {
                continue;
            }
            dropout_host[d] = p;
            folded_dropout[p] = d;
        }
    }

    // Which conv2d biases fold into the batch norm after them: a conv2d with a bias whose only use is a batch
    // norm. The batch mean cancels the bias, so where the batch norm normalizes by the batch the conv runs
    // without it and the batch norm adds it to its running mean only. Not with keep_activations or
    // detect_anomaly, which read the conv's own output.
    void decide_conv_bias_folds() {
        bias_fold.assign(layers, kNone);
        if (!options.fold_conv_bias || !backend->folds_conv_bias() || options.keep_activations ||
            options.detect_anomaly) {
            return;
        }
        for (int b = 0; b < layers; ++b) {
            const Node& bn = graph.nodes[b];
            if (bn.spec.kind != LayerKind::batch_norm2d || bn.inputs.size() != 1 || bn.inputs[0] == kInput) {
                continue;
            }
            const int c = bn.inputs[0];
            const Node& conv = graph.nodes[c];
            if (conv.spec.kind != LayerKind::conv2d || !conv.spec.bias || conv.consumers.size() != 1) {
                continue;
            }
            bias_fold[c] = b, bias_fold[b] = c;
        }
    }

    // Which batch norms may take their batch statistics from the conv2d before them: a batch norm whose input
    // is a conv2d's output. Whether the conv's kernels can write them is the backend's word, per plan
    // (conv_bn_partials()); sync_batch_norm sums its statistics across ranks instead.
    void decide_conv_bn_statistics() {
        bn_partials_pair.assign(layers, kNone);
        if (!options.fuse_conv_bn_statistics || options.sync_batch_norm) return;
        for (int b = 0; b < layers; ++b) {
            const Node& bn = graph.nodes[b];
            if (bn.spec.kind != LayerKind::batch_norm2d || bn.inputs.size() != 1 || bn.inputs[0] == kInput) {
                continue;
            }
            const int c = bn.inputs[0];
            if (graph.nodes[c].spec.kind != LayerKind::conv2d || bn_partials_pair[c] != kNone) continue;
            bn_partials_pair[c] = b, bn_partials_pair[b] = c;
        }
    }

    // Whether node i's folded conv bias is folded in this pass: where the batch norm normalizes by the batch
    // (training passes; every pass without running statistics). Evaluation by the running statistics needs
    // the conv's output with its bias.
    bool conv_bias_folds_in(int i, bool training) const {
        if (bias_fold[i] == kNone) return false;
        const int bn = graph.nodes[i].spec.kind == LayerKind::batch_norm2d ? i : bias_fold[i];
        return training || !graph.nodes[bn].spec.track_running_stats;
    }

    // Whether node m's backward reads its own output: a ReLU's, or a node's that applies a fused ReLU (not a
    // dropout's: its mask holds the ReLU's rule; nor a max pooling's that runs a folded dropout: its indices do).
    bool reads_own_output(int m) const {
        if (relu_host[m] != kNone) return false;  // a fused ReLU has no backward of its own
        const LayerKind kind = graph.nodes[m].spec.kind;
        return backward_reads_output(kind) ||
               (applies_relu[m] && kind != LayerKind::dropout && folded_dropout[m] == kNone);
    }

    int fwd_time(int node) const { return node; }
    int loss_time() const { return layers; }
    int bwd_time(int node) const { return 2 * layers - node; }

    // Backends never run an alias: flatten always, dropout under --no-dropout (then the identity), a ReLU fused
    // into a neighbour, a dropout folded into its max pooling.
    bool is_alias(int node) const {
        const LayerKind kind = graph.nodes[node].spec.kind;
        return (kind == LayerKind::flatten && !permutes_flatten(node)) || relu_host[node] != kNone ||
               dropout_host[node] != kNone ||
               (!options.dropout && (kind == LayerKind::dropout || kind == LayerKind::dropout2d));
    }

    // Whether a tensor of this per-sample shape lies differently in the two formats: (C, H, W) with more than
    // one channel and more than one pixel (NHWC and NCHW agree otherwise).
    static bool format_matters(const Shape& per_sample) {
        return per_sample.rank() == 3 && per_sample[0] > 1 && per_sample[1] * per_sample[2] > 1;
    }
    // Under NHWC, a flatten of such a tensor reorders it to PyTorch's (c, h, w) order: a node of its own.
    bool permutes_flatten(int node) const {
        const Node& n = graph.nodes[node];
        return layout == MemoryFormat::nhwc && n.spec.kind == LayerKind::flatten &&
               format_matters(graph.shape_of(n.inputs[0]));
    }
    // Whether the f32 NCHW input batch is converted before the first layer: into another type or format.
    bool converts_input() const {
        return casts_at_edges() || (layout == MemoryFormat::nhwc && format_matters(graph.spec.input));
    }

    void* address(int request) const {
        return request == kNone ? nullptr : static_cast<char*>(arena.get()) + plan.offsets[request];
    }
    float* floats(int request) const { return static_cast<float*>(address(request)); }
    // The activation of storage node s (kInput: the model input) held in `request`.
    DType activation_dtype(int s) const { return s == kInput ? model_dtype : output_dtype[s]; }
    Activation activation(int request, int s) const { return {address(request), activation_dtype(s)}; }
    std::size_t activation_bytes(int s, const Shape& shape) const {
        return dtype_size(activation_dtype(s)) * static_cast<std::size_t>(shape.numel());
    }
    float* param(const std::shared_ptr<void>& block, int entry) const {
        return static_cast<float*>(block.get()) + offset[entry];
    }

    void lay_out_state() {
        offset.assign(graph.state.size(), kNone);
        for (std::size_t e = 0; e < graph.state.size(); ++e) {
            const StateEntry& entry = graph.state[e];
            if (entry.dtype != DType::f32) {
                num_batches_tracked[entry.node] = 0;
                continue;
            }
            int64_t& size = entry.trainable ? param_floats : buffer_floats;
            offset[e] = size;
            size += padded_to_8_floats(entry.shape.numel());
        }
        slots = detail::optimizer_state_slots(options.optimizer);
        CUDACNN_CHECK(slots == static_cast<int64_t>(optimizer_slot_names(options.optimizer).size()),
                      "executor: the optimizer has {} state slots but {} names for them", slots,
                      optimizer_slot_names(options.optimizer).size());
        params = backend->allocate(sizeof(float) * param_floats);
        grads = backend->allocate(sizeof(float) * param_floats);
        buffers = backend->allocate(sizeof(float) * std::max<int64_t>(buffer_floats, 1));
        optimizer = backend->allocate(sizeof(float) * std::max<int64_t>(slots * param_floats, 1));
    }

    void choose_activation_dtypes() {
        model_dtype = backend->activation_dtype();
        output_dtype.assign(layers, model_dtype);
        if (model_dtype == DType::f32) return;
        params_copy = backend->allocate(dtype_size(model_dtype) * std::max<int64_t>(param_floats, 1));
    }
    bool casts_at_edges() const { return model_dtype != DType::f32; }

    // The layers' copy of the parameters in their type, from the f32 masters (a no-op in f32).
    void refresh_params_copy() {
        if (!casts_at_edges() || param_floats == 0) return;
        backend->cast({params.get(), DType::f32}, {params_copy.get(), model_dtype}, param_floats);
    }

    int request(const std::string& name, std::size_t bytes, int first, int last) {
        requests.push_back({name, bytes, first, last});
        return static_cast<int>(requests.size()) - 1;
    }

    std::vector<Shape> input_shapes(int node, int64_t n) const {
        std::vector<Shape> shapes;
        for (int input : graph.nodes[node].inputs) shapes.push_back(with_batch(n, graph.shape_of(input)));
        return shapes;
    }

    // Every buffer of a step with its lifetime: forward of node i at time i, the loss at L, the backward of
    // node i at 2L − i.
    void plan_arena() {
        const int64_t b = options.batch_size;
        storage.assign(layers, kNone);
        for (int i = 0; i < layers; ++i) storage[i] = is_alias(i) ? storage_of(graph.nodes[i].inputs[0]) : i;
        y_buf.assign(layers, kNone);
        dy_buf.assign(layers, kNone);
        saved_buf.assign(layers, kNone);
        workspace_buf.assign(layers, kNone);
        backward_workspace_buf.assign(layers, kNone);
        bn_partials_buf.assign(layers, kNone);
        const int last = layers - 1;

        const Shape input_shape = with_batch(b, graph.spec.input);
        x_buf = request("input", sizeof(float) * input_shape.numel(), 0, MemoryPlan::kForever);
        if (converts_input()) {
            input_cast_buf = request(fmt::format("input as {} {}", model_dtype, memory_format_name(layout)),
                                     activation_bytes(kInput, input_shape), 0, MemoryPlan::kForever);
        }
        if (casts_at_edges()) {
            const std::size_t logits_bytes = sizeof(float) * with_batch(b, graph.nodes[last].output).numel();
            logits_buf = request("logits as f32", logits_bytes, 0, MemoryPlan::kForever);
            dlogits_buf = request("logits dx as f32", logits_bytes, loss_time(), loss_time());
        }
        labels_buf = request("labels", sizeof(int64_t) * b, 0, MemoryPlan::kForever);
        loss_buf = request("loss", sizeof(float), 0, MemoryPlan::kForever);
        loss_sum_buf = request("loss sum", sizeof(float), 0, MemoryPlan::kForever);
        // The correct count and the non-finite records: read back together, in one copy.
        correct_buf = request("correct and non-finite records", sizeof(int64_t) + sizeof(NonfiniteRecords), 0,
                              MemoryPlan::kForever);
        loss_workspace_buf = request("loss workspace", backend->loss_workspace_bytes(b), loss_time(), loss_time());
        counters_buf = request("step counters", sizeof(int64_t) * detail::kStepCounters, 0, MemoryPlan::kForever);

        for (int s = 0; s < layers; ++s) {
            if (storage[s] != s) continue;
            const std::size_t bytes = activation_bytes(s, with_batch(b, graph.nodes[s].output));
            const std::string& name = graph.nodes[s].spec.name;
            int y_last = fwd_time(s), dy_first = storage[last] == s ? loss_time() : MemoryPlan::kForever;
            for (int m = s; m < layers; ++m) {
                if (storage[m] != s) continue;
                if (reads_own_output(m)) y_last = std::max(y_last, bwd_time(m));
                for (int c : graph.nodes[m].consumers) {
                    y_last = std::max(y_last, fwd_time(c));
                    if (backward_reads_input(graph.nodes[c].spec.kind)) y_last = std::max(y_last, bwd_time(c));
                    if (!is_alias(c)) dy_first = std::min(dy_first, bwd_time(c));
                }
            }
            // The logits stay readable after a step; with keep_activations every output does.
            if (storage[last] == s || options.keep_activations) y_last = MemoryPlan::kForever;
            y_buf[s] = request(name + " y", bytes, fwd_time(s), y_last);
            if (dy_first != MemoryPlan::kForever) dy_buf[s] = request(name + " dy", bytes, dy_first, bwd_time(s));
        }
        for (int i = 0; i < layers; ++i) {
            const Node& node = graph.nodes[i];
            const std::vector<Shape> in = input_shapes(i, b);
            const Shape out = with_batch(b, node.output);
            const int host = dropout_host[i];
            if (host != kNone) {  // the mask of a folded dropout, from its pooling's forward to its backward
                saved_buf[i] =
                    request(node.spec.name + " saved (written by '" + graph.nodes[host].spec.name + "')",
                            backend->saved_bytes(node, in, out), fwd_time(host), bwd_time(host));
            }
            if (is_alias(i)) continue;
            const std::size_t saved = backend->saved_bytes(node, in, out);
            if (saved > 0) saved_buf[i] = request(node.spec.name + " saved", saved, fwd_time(i), bwd_time(i));
            // Scratch for one pass only, so that layers' workspaces share memory.
            const std::size_t workspace = backend->prepare(args_shapes(i, b));
            if (workspace > 0) {
                workspace_buf[i] = request(node.spec.name + " forward workspace", workspace, fwd_time(i), fwd_time(i));
                backward_workspace_buf[i] =
                    request(node.spec.name + " backward workspace", workspace, bwd_time(i), bwd_time(i));
            }
            plan_bn_partials(i, b);
        }
        plan_gradient_accumulation(b);
        plan = plan_memory(requests);
        check_memory_plan(requests, plan);
        arena = backend->allocate(plan.peak_bytes);
    }

    // A conv2d's statistics for its batch norm live from the conv's forward to the batch norm's.
    void plan_bn_partials(int conv, int64_t b) {
        const int bn = bn_partials_pair[conv];
        if (bn == kNone || graph.nodes[conv].spec.kind != LayerKind::conv2d) return;
        const std::size_t bytes = backend->conv_bn_partials(args_shapes(conv, b)).bytes;
        if (bytes == 0) return;
        bn_partials_buf[conv] = request(
            fmt::format("{} statistics for '{}'", graph.nodes[conv].spec.name, graph.nodes[bn].spec.name),
            bytes, fwd_time(conv), fwd_time(bn));
    }

    // In a training pass's forward, a paired conv2d (a) writes its batch norm's statistics and the batch norm
    // reads them, where the plan of this batch can (a smaller last batch has a plan of its own, which must
    // fit the full batch's buffer). Both ask the same conv plan, so they agree.
    void use_bn_partials(NodeArgs& a) const {
        const bool is_conv = a.node->spec.kind == LayerKind::conv2d;
        const int conv = is_conv ? a.index : bn_partials_pair[a.index];
        const int buffer = bn_partials_buf[conv];
        if (buffer == kNone) return;
        const detail::BackendImpl::BnPartials partials =
            backend->conv_bn_partials(is_conv ? a : args_shapes(conv, batch));
        if (partials.bytes == 0 || partials.bytes > requests[buffer].bytes) return;
        a.bn_partials = address(buffer);
        a.bn_partials_bytes = partials.bytes;
        a.bn_partials_per_channel = partials.per_channel;
    }

    int storage_of(int node) const { return node == kInput ? kInput : storage[node]; }
    // The model input as the layers read it.
    int input_request() const { return input_cast_buf == kNone ? x_buf : input_cast_buf; }

    // Where several layers read one tensor, the first backward (the latest layer) writes its gradient and
    // the others write theirs into a temporary that is then added.
    void plan_gradient_accumulation(int64_t b) {
        std::map<int, bool> written;  // storage → has a writer already
        for (int c = layers - 1; c >= 0; --c) {
            if (is_alias(c)) continue;
            const Node& node = graph.nodes[c];
            for (std::size_t k = 0; k < node.inputs.size(); ++k) {
                const int target = storage_of(node.inputs[k]);
                const std::size_t bytes = activation_bytes(target, with_batch(b, graph.shape_of(node.inputs[k])));
                if (target == kInput && !options.input_gradient) {
                    if (can_skip_input_gradient(node.spec.kind)) continue;
                    // Nobody reads the input's gradient; one scratch buffer serves every layer that must write it.
                    if (input_grad_buf == kNone) {
                        input_grad_buf = request("input dx (unused)", bytes, bwd_time(c), MemoryPlan::kForever);
                    }
                    continue;
                }
                if (target == kInput && input_grad_buf == kNone) {
                    input_grad_buf = request("input dx", bytes, bwd_time(c), MemoryPlan::kForever);
                }
                if (written[target]) {
                    temp_buf[{c, static_cast<int>(k)}] =
                        request(fmt::format("{} dx{} (to add)", node.spec.name, k), bytes, bwd_time(c), bwd_time(c));
                }
                written[target] = true;
            }
        }
    }

    // Shapes and node only: what prepare() needs.
    NodeArgs args_shapes(int i, int64_t n) const {
        NodeArgs a;
        a.index = i;
        a.node = &graph.nodes[i];
        a.input_shapes = input_shapes(i, n);
        a.output_shape = with_batch(n, graph.nodes[i].output);
        for (int entry : graph.nodes[i].state) {
            if (graph.state[entry].role == "weight") a.weight_shape = graph.state[entry].shape;
        }
        return a;
    }

    NodeArgs node_args(int i, bool training, int64_t step, bool backward_pass = false) {
        NodeArgs a = args_shapes(i, batch);
        const Node& node = graph.nodes[i];
        for (int input : node.inputs) {
            // An alias of the model input (a flatten reading "input") reads the input itself.
            const int s = storage_of(input);
            a.x.push_back(activation(s == kInput ? input_request() : y_buf[s], s));
        }
        a.y = activation(y_buf[i], i);
        a.dy = activation(dy_buf[i], i);
        for (int e : node.state) {
            const StateEntry& entry = graph.state[e];
            if (entry.role == "weight") {
                a.weight = param(params, e);
                if (casts_at_edges()) {
                    a.weight_copy =
                        static_cast<char*>(params_copy.get()) + dtype_size(model_dtype) * offset[e];
                }
                a.dweight = param(grads, e);
            } else if (entry.role == "bias") {
                a.bias = param(params, e);
                a.dbias = param(grads, e);
            } else if (entry.role == "running_mean") {
                a.running_mean = param(buffers, e);
            } else if (entry.role == "running_var") {
                a.running_var = param(buffers, e);
            } else if (entry.role == "num_batches_tracked") {
                a.num_batches_tracked = &num_batches_tracked.at(i);
            }
        }
        a.saved = address(saved_buf[i]);
        const int workspace = backward_pass ? backward_workspace_buf[i] : workspace_buf[i];
        a.workspace = address(workspace);
        a.workspace_bytes = workspace == kNone ? 0 : requests[workspace].bytes;
        if (batch != options.batch_size) use_workspace_for_batch(a);
        a.training = training;
        if (training && options.sync_batch_norm && node.spec.kind == LayerKind::batch_norm2d) {
            a.sync_statistics = options.communicator;
        }
        a.relu = applies_relu[i];
        if (conv_bias_folds_in(i, training)) {
            if (node.spec.kind == LayerKind::conv2d) {
                a.skip_bias = true;
            } else {
                for (int e : graph.nodes[bias_fold[i]].state) {
                    if (graph.state[e].role == "bias") a.input_shift = param(params, e);
                }
            }
        }
        if (training && !backward_pass && bn_partials_pair[i] != kNone) use_bn_partials(a);
        a.seed = options.seed;
        // Stream kDropoutStreamBase + step · layers + i: distinct for every layer and step.
        a.dropout_stream_base = kDropoutStreamBase + static_cast<uint64_t>(i);
        a.dropout_stream_stride = static_cast<uint64_t>(layers);
        if (const int d = folded_dropout[i]; d != kNone) {  // the dropout's own stream, mask and settings
            a.dropout = &graph.nodes[d];
            a.dropout_mask = static_cast<uint8_t*>(address(saved_buf[d]));
            a.dropout_stream_base = kDropoutStreamBase + static_cast<uint64_t>(d);
        }
        a.step = step;
        a.step_counters = counters();
        return a;
    }

    // A smaller (last) batch gets its own algorithm choice; should that want more workspace than the full
    // batch's plan holds, it gets a buffer of its own, once.
    void use_workspace_for_batch(NodeArgs& a) {
        const std::size_t needed = backend->prepare(a);
        if (needed <= a.workspace_bytes) return;
        auto& extra = extra_workspace[{a.index, batch}];
        if (!extra) extra = backend->allocate(needed);
        a.workspace = extra.get();
        a.workspace_bytes = needed;
    }

    int64_t* counters() const { return static_cast<int64_t*>(address(counters_buf)); }
    gpu::NonfiniteRecord* records() const {
        return reinterpret_cast<gpu::NonfiniteRecord*>(static_cast<int64_t*>(address(correct_buf)) + 1);
    }

    // Makes the backend's step counters hold the optimizer's step count and the dropout step of this pass:
    // a copy only after initialize(), a loaded optimizer state or a step number out of sequence.
    void sync_step_counters(int64_t dropout_step) {
        const std::array<int64_t, detail::kStepCounters> wanted{optimizer_step, dropout_step};
        if (wanted == counters_in_backend) return;
        backend->copy_from_host(counters(), wanted.data(), sizeof(wanted));
        counters_in_backend = wanted;
    }

    // Runs a step's work: eagerly, or as a CUDA graph captured on the second run with this batch size (the
    // first chooses algorithms and allocates; neither may happen inside a capture) and replayed after.
    // `enqueue` must only queue work: the host-side bookkeeping of a step is account_step's.
    void run_step(bool training, const std::function<void()>& enqueue) {
        if (profiler) {  // one launch at a time, so that each part can be timed
            timed(profiler.get(), profiler->step_slot(), enqueue);
            return;
        }
        if (!(training ? train_capture_off : eval_capture_off).empty()) {
            enqueue();
            return;
        }
        CapturedStep& captured = captured_steps[{training, batch}];
        if (captured.graph.empty()) {
            if (!captured.warmed_up) {
                enqueue();
                captured.warmed_up = true;
                return;
            }
            try {
                captured.graph = backend->capture(enqueue);
            } catch (const Error& error) {
                // Run without graphs from now on, saying why in describe(); a real fault of the step itself
                // shows again in the eager run.
                train_capture_off = eval_capture_off = fmt::format("off: capturing a step failed: {}", error.what());
                captured_steps.clear();
                enqueue();
                return;
            }
        }
        backend->replay(captured.graph);
        ++graph_launches;
    }

    // What a step changes on the host, done once per step however its work ran.
    void account_step(bool training) {
        if (profiler) {
            backend->synchronize();
            profiler->finish_step();
        }
        ++metric_batches;
        metric_samples += batch;
        if (!training) return;
        for (auto& [node, count] : num_batches_tracked) ++count;  // every BN with running statistics
    }

    // A training pass marks its step (the dropout step counter, in backend memory) in the records where the
    // parameters as it begins, its loss or its gradients are not finite: cheap, and captured with the step.
    void record_nonfinite(NonfiniteCheck check, const float* values, int64_t n) {
        if (n <= 0) return;
        timed(profiler.get(), checks_slot(), [&] {
            backend->record_nonfinite(values, n, counters() + detail::kDropoutStepCounter, &records()[check]);
        });
    }

    void enqueue_forward_backward(bool training, int64_t step) {
        if (training) record_nonfinite(kParamsCheck, static_cast<const float*>(params.get()), param_floats);
        forward(training, step);
        loss_and_metrics(/*with_gradient=*/true);
        if (training) record_nonfinite(kLossCheck, floats(loss_buf), 1);
        backward(training, step);
        if (training) record_nonfinite(kGradsCheck, static_cast<const float*>(grads.get()), param_floats);
    }

    void enqueue_train_step(int64_t step) {
        enqueue_forward_backward(/*training=*/true, step);
        // Data-parallel: every replica steps with the world's mean gradient (equal batches on every rank, so the
        // mean of the ranks' mean-loss gradients is the gradient of the world batch's mean loss).
        if (options.communicator != nullptr) {
            timed(profiler.get(), other_slot(StepProfiler::kAllReduce), [&] {
                options.communicator->all_reduce_mean(static_cast<float*>(grads.get()), param_floats,
                                                      backend->stream_handle());
            });
        }
        timed(profiler.get(), other_slot(StepProfiler::kOptimizer), [&] {
            // The step rewrites the layers' copy of the parameters too (casts_at_edges()).
            const Activation copy{casts_at_edges() ? params_copy.get() : nullptr, model_dtype};
            backend->optimizer_step(
                options.optimizer, static_cast<float*>(params.get()), static_cast<const float*>(grads.get()),
                static_cast<float*>(optimizer.get()), param_floats, optimizer_step, counters(), copy);
        });
        if (!options.detect_anomaly) return;
        for (int e : graph.parameters()) {
            check_finite(fmt::format("the optimizer step's new {}", graph.state[e].name), param(params, e),
                         graph.state[e].shape.numel());
        }
    }

    // ---- profiling ----------------------------------------------------------------------------------------

    // Stopwatch slots (timed() ignores them when the profiler is off).
    int forward_slot(int node) const { return profiler ? profiler->forward_slot(node) : 0; }
    int backward_slot(int node) const { return profiler ? profiler->backward_slot(node) : 0; }
    int other_slot(StepProfiler::Other part) const { return profiler ? profiler->other_slot(part) : 0; }
    int checks_slot() const { return other_slot(StepProfiler::kChecks); }

    // What a node is in a profile beside its times: a fused ReLU or an alias never runs on its own.
    std::string profile_detail(int node) const {
        const int host = relu_host[node] != kNone ? relu_host[node] : dropout_host[node];
        if (host != kNone) return fmt::format("fused into '{}'", graph.nodes[host].spec.name);
        if (is_alias(node)) return "shares its input's memory: nothing to run";
        std::vector<std::string> parts;
        if (std::string described = backend->describe(node); !described.empty()) parts.push_back(described);
        const bool conv = graph.nodes[node].spec.kind == LayerKind::conv2d;
        if (bias_fold[node] != kNone && conv) {
            const LayerSpec& bn = graph.nodes[bias_fold[node]].spec;
            parts.push_back(fmt::format("bias folded into '{}'{}", bn.name,
                                        bn.track_running_stats ? " in training steps" : ""));
        }
        if (const int pair = bn_partials_pair[node];
            pair != kNone && bn_partials_buf[conv ? node : pair] != kNone) {
            parts.push_back(conv ? fmt::format("writes '{}''s batch statistics in training steps",
                                               graph.nodes[pair].spec.name)
                                 : fmt::format("batch statistics from '{}''s forward in training steps",
                                               graph.nodes[pair].spec.name));
        }
        std::string detail;
        for (const std::string& part : parts) detail += (detail.empty() ? "" : "; ") + part;
        return detail;
    }

    StepProfile profile_parts() const {
        const int64_t n = batch > 0 ? batch : options.batch_size;
        StepProfile profile;
        for (int i = 0; i < layers; ++i) {
            const LayerSpec& spec = graph.nodes[i].spec;
            profile.parts.push_back({spec.name, layer_kind_name(spec.kind), with_batch(n, graph.nodes[i].output),
                                     profile_detail(i), {}, {}});
        }
        for (const char* other : StepProfiler::kOtherNames) {
            profile.parts.push_back({other, other, Shape{}, "", {}, {}});
        }
        return profile;
    }

    // ---- detect_anomaly: each value read back as it is written ---------------------------------------------

    // Throws naming the pass, `what` and the first non-finite value of data (n floats; `per_sample` floats a
    // sample, 0 when the value is no batch).
    void check_finite(const std::string& what, const float* data, int64_t n, int64_t per_sample = 0) const {
        check_finite(what, ConstActivation{data, DType::f32}, n, per_sample);
    }
    void check_finite(const std::string& what, ConstActivation data, int64_t n,
                      int64_t per_sample = 0) const {
        if (!options.detect_anomaly || n <= 0) return;
        const std::vector<float> host = to_host_floats(data, n);
        for (int64_t i = 0; i < n; ++i) {
            const float v = host[static_cast<std::size_t>(i)];
            if (std::isfinite(v)) continue;
            const std::string sample = per_sample > 0 ? fmt::format(", sample {}", i / per_sample) : "";
            CUDACNN_FAIL("{}: {} holds {} at index {} of {}{} (--detect-anomaly: the first non-finite value of the "
                         "step, everything before it was finite); {}",
                         pass_label, what, std::isnan(v) ? "NaN" : (v > 0 ? "+Inf" : "-Inf"), i, n, sample,
                         kAnomalyAdvice);
        }
    }

    std::string layer_label(int node) const {
        return fmt::format("layer '{}' ({})", graph.nodes[node].spec.name,
                           layer_kind_name(graph.nodes[node].spec.kind));
    }

    // ---- the non-finite report ------------------------------------------------------------------------------

    NonfiniteRecords read_records() const {
        NonfiniteRecords r;
        backend->copy_to_host(r.data(), records(), sizeof(r));
        return r;
    }

    // The trainable entry holding flat index i of the parameter (or gradient) block, as "name (index k)".
    std::string parameter_at(int64_t i) const {
        for (int e : graph.parameters()) {
            const int64_t first = offset[e], n = graph.state[e].shape.numel();
            if (i >= first && i < first + n) return fmt::format("{} (index {})", graph.state[e].name, i - first);
        }
        return fmt::format("index {} of the parameter block (padding: an executor bug)", i);
    }

    // The first non-finite value of the model input now in the arena, or "" when it is finite.
    std::string input_nonfinite() const {
        const int64_t per_sample = graph.spec.input.numel(), n = batch * per_sample;
        std::vector<float> host(static_cast<std::size_t>(n));
        backend->copy_to_host(host.data(), floats(x_buf), sizeof(float) * host.size());
        for (int64_t i = 0; i < n; ++i) {
            const float v = host[static_cast<std::size_t>(i)];
            if (!std::isfinite(v)) {
                return fmt::format("{} at index {} (sample {})", std::isnan(v) ? "NaN" : "an infinity", i,
                                   i / per_sample);
            }
        }
        return "";
    }

    // What the records say, in the order things happen: the parameters as the step began, then its loss,
    // then its gradients.
    std::string nonfinite_report(const NonfiniteRecords& r) const {
        const gpu::NonfiniteRecord& params_r = r[kParamsCheck];
        const gpu::NonfiniteRecord& loss_r = r[kLossCheck];
        const gpu::NonfiniteRecord& grads_r = r[kGradsCheck];
        auto at_or_before = [](const gpu::NonfiniteRecord& a, int64_t step) {
            return a.step_plus_one != 0 && record_step(a) <= step;
        };
        std::string text;
        if (loss_r.step_plus_one != 0) {
            const int64_t step = record_step(loss_r);
            text = fmt::format("step {} (counting from 0): the loss is {}", step,
                               loss_r.kinds == gpu::kNonfiniteNaN ? "NaN" : nonfinite_kinds(loss_r.kinds));
            if (at_or_before(params_r, step)) {
                text += fmt::format("; the parameters already held {} when step {} began, the first of them (in "
                                    "forward order) {}",
                                    nonfinite_kinds(params_r.kinds), record_step(params_r),
                                    parameter_at(record_index(params_r)));
            } else if (at_or_before(grads_r, step) && record_step(grads_r) < step) {
                text += fmt::format("; step {}'s gradients held {}, the first (in forward order) that of {}",
                                    record_step(grads_r), nonfinite_kinds(grads_r.kinds),
                                    parameter_at(record_index(grads_r)));
            } else {
                text += "; every parameter was finite when that step began, so its forward made the loss "
                        "non-finite (a layer's output overflowed, or the input batch holds NaN or Inf)";
                if (step == last_train_step) {
                    const std::string bad_input = input_nonfinite();
                    text += bad_input.empty() ? "; its input batch is finite"
                                              : "; its input batch holds " + bad_input;
                }
            }
        } else if (grads_r.step_plus_one != 0) {
            text = fmt::format("step {} (counting from 0): the gradients hold {} although the loss was finite; the "
                               "first (in forward order) is that of {}",
                               record_step(grads_r), nonfinite_kinds(grads_r.kinds),
                               parameter_at(record_index(grads_r)));
        } else {
            text = fmt::format("step {} (counting from 0): the parameters held {} as it began, the first (in forward "
                               "order) {}",
                               record_step(params_r), nonfinite_kinds(params_r.kinds),
                               parameter_at(record_index(params_r)));
        }
        return text + "; training cannot go on: " + kNonfiniteAdvice;
    }

    // Throws the report if a check has fired (then clears the records, so that an executor given a good state
    // again can go on).
    void throw_if_nonfinite(const NonfiniteRecords& r) {
        const bool fired = std::any_of(r.begin(), r.end(), [](const auto& x) { return x.step_plus_one != 0; });
        if (!fired) return;
        backend->zero(records(), sizeof(NonfiniteRecords));
        CUDACNN_FAIL("{}", nonfinite_report(r));
    }

    // On the CPU backends the records are in host memory and the step has finished: look at once.
    void check_records_now() {
        if (backend->kind() != Backend::gpu) throw_if_nonfinite(read_records());
    }

    void require_batch() const { CUDACNN_CHECK(batch > 0, "executor: set_batch() must come before a step"); }
    void check_batch_count(int64_t count) const {
        CUDACNN_CHECK(count >= 1 && count <= options.batch_size,
                      "executor: a batch of {} images; it must hold 1 to {} (the batch size it was planned for)",
                      count, options.batch_size);
    }

    void forward(bool training, int64_t step) {
        const int64_t per_sample = graph.spec.input.numel();
        check_finite("the input batch", floats(x_buf), batch * per_sample, per_sample);
        if (converts_input()) {  // timed with the loss, as the other conversions at the edges
            timed(profiler.get(), other_slot(StepProfiler::kLoss), [&] {
                backend->convert_input({address(x_buf), DType::f32}, activation(input_cast_buf, kInput),
                                       with_batch(batch, graph.spec.input));
            });
        }
        for (int i = 0; i < layers; ++i) {
            if (is_alias(i)) continue;
            const NodeArgs a = node_args(i, training, step);
            timed(profiler.get(), forward_slot(i), [&] { backend->forward(a); });
            check_finite("the forward output of " + layer_label(i), a.y, a.output_shape.numel(),
                         a.output_shape.numel() / batch);
        }
    }

    // The loss reads f32 logits and writes their f32 gradient: the last layer's own, or casts of them.
    const float* logits_ptr() const {
        return floats(casts_at_edges() ? logits_buf : y_buf[storage[layers - 1]]);
    }
    float* dlogits_ptr() const {
        return floats(casts_at_edges() ? dlogits_buf : dy_buf[storage[layers - 1]]);
    }

    // The mean cross-entropy of the batch (and its gradient for the backward), added to the device metrics.
    void loss_and_metrics(bool with_gradient) {
        const int64_t classes = graph.spec.num_classes;
        const auto* labels = static_cast<const int64_t*>(address(labels_buf));
        const int last = storage[layers - 1];
        const int64_t logits_count = batch * classes;
        timed(profiler.get(), other_slot(StepProfiler::kLoss), [&] {
            if (casts_at_edges())
                backend->cast(activation(y_buf[last], last), {address(logits_buf), DType::f32}, logits_count);
            backend->cross_entropy(logits_ptr(), labels, batch, classes, options.label_smoothing, floats(loss_buf),
                                   with_gradient ? dlogits_ptr() : nullptr, address(loss_workspace_buf),
                                   requests[loss_workspace_buf].bytes);
            backend->add_metrics(floats(loss_buf), logits_ptr(), labels, batch, classes, floats(loss_sum_buf),
                                 static_cast<int64_t*>(address(correct_buf)));
            if (casts_at_edges() && with_gradient) {
                backend->cast({address(dlogits_buf), DType::f32}, activation(dy_buf[last], last),
                              logits_count);
            }
        });
        check_finite("the loss", floats(loss_buf), 1);
        if (with_gradient) {
            check_finite("the loss's gradient with respect to the logits", dlogits_ptr(), batch * classes, classes);
        }
    }

    // A batch of activations as NCHW floats, whatever their type and format.
    HostTensor<float> read_buffer(ConstActivation device, const Shape& per_sample) const {
        const Shape shape = with_batch(batch, per_sample);
        HostTensor<float> values(shape, to_host_floats(device, shape.numel()));
        if (layout != MemoryFormat::nhwc || !format_matters(per_sample)) return values;
        return convert_memory_format(values, MemoryFormat::nhwc, MemoryFormat::nchw);
    }

    // n activations, widened to floats.
    std::vector<float> to_host_floats(ConstActivation device, int64_t n) const {
        std::vector<float> host(static_cast<std::size_t>(n));
        if (device.dtype == DType::f32) {
            backend->copy_to_host(host.data(), device.data, sizeof(float) * host.size());
            return host;
        }
        CUDACNN_CHECK(device.dtype == DType::bf16, "executor: activations of type {} cannot be read",
                      device.dtype);
        std::vector<uint16_t> bits(host.size());
        backend->copy_to_host(bits.data(), device.data, sizeof(uint16_t) * bits.size());
        for (std::size_t i = 0; i < bits.size(); ++i) host[i] = io::bf16_bits_to_float(bits[i]);
        return host;
    }

    void backward(bool training, int64_t step) {
        for (int i = layers - 1; i >= 0; --i) {
            // Aliases pass gradients through their shared memory; a layer that nothing downstream uses has none.
            if (is_alias(i) || dy_buf[storage[i]] == kNone) continue;
            NodeArgs a = node_args(i, training, step, /*backward_pass=*/true);
            a.dy = activation(dy_buf[storage[i]], storage[i]);
            struct Addition {
                Activation target;
                ConstActivation temporary;
                int64_t count;  // the input's elements: concat's inputs differ in size
            };
            std::vector<Addition> to_add;
            for (std::size_t k = 0; k < a.node->inputs.size(); ++k) {
                const int input = a.node->inputs[k];
                const bool reads_model_input = storage_of(input) == kInput;
                if (reads_model_input && !options.input_gradient) {
                    a.dx.push_back(can_skip_input_gradient(a.node->spec.kind) ? Activation{}
                                                                              : activation(input_grad_buf, kInput));
                    continue;
                }
                const int s = storage_of(input);
                const Activation target = activation(reads_model_input ? input_grad_buf : dy_buf[s], s);
                const auto temp = temp_buf.find({i, static_cast<int>(k)});
                if (temp == temp_buf.end()) {
                    a.dx.push_back(target);
                } else {
                    a.dx.push_back(activation(temp->second, s));
                    to_add.push_back({target, a.dx.back(), a.input_shapes[k].numel()});
                }
            }
            timed(profiler.get(), backward_slot(i), [&] {
                backend->backward(a);
                for (const Addition& add : to_add) {
                    backend->accumulate_activations(add.target, add.temporary, add.count);
                }
            });
            if (options.detect_anomaly) check_backward(a, to_add);
        }
    }

    // detect_anomaly: the gradients a node's backward wrote (its parameters', then its inputs', sums included).
    template <class Additions>
    void check_backward(const NodeArgs& a, const Additions& to_add) const {
        const std::string layer = "the backward of " + layer_label(a.index);
        for (int e : a.node->state) {
            const StateEntry& entry = graph.state[e];
            const float* grad = entry.role == "weight" ? a.dweight : entry.role == "bias" ? a.dbias : nullptr;
            if (grad != nullptr) check_finite(layer + ": the gradient of " + entry.name, grad, entry.shape.numel());
        }
        for (std::size_t k = 0; k < a.dx.size(); ++k) {
            if (!a.dx[k]) continue;
            ConstActivation written = a.dx[k];
            for (const auto& add : to_add) {
                if (add.temporary.data == a.dx[k].data) written = add.target;  // the sum it was added into
            }
            const int input = a.node->inputs[k];
            const std::string name = input == kInput ? "the model input" : "'" + graph.nodes[input].spec.name + "'";
            check_finite(fmt::format("{}: the gradient with respect to its input {}", layer, name), written,
                         a.input_shapes[k].numel(), a.input_shapes[k].numel() / batch);
        }
    }
};

// ---- public interface -----------------------------------------------------------------------------------

Executor::Executor(const Graph& graph, const ExecutorOptions& options)
    : impl_(std::make_unique<Impl>(graph, options)) {}
Executor::~Executor() = default;

const Graph& Executor::graph() const { return impl_->graph; }
const ExecutorOptions& Executor::options() const { return impl_->options; }
const MemoryPlan& Executor::memory_plan() const { return impl_->plan; }

std::vector<std::string> Executor::describe() const {
    const Impl& m = *impl_;
    std::vector<std::string> lines{fmt::format("device: {}", m.backend->device_description())};
    constexpr double kMiB = 1024.0 * 1024.0;
    lines.push_back(fmt::format("memory plan at batch {}: {:.2f} MiB for activations, gradients and workspaces "
                                "({:.2f} MiB without reuse); parameters, gradients and optimizer state {:.2f} MiB",
                                m.options.batch_size, m.plan.peak_bytes / kMiB, m.plan.naive_bytes / kMiB,
                                sizeof(float) * m.param_floats * (2 + m.slots) / kMiB));
    if (m.backend->can_capture()) {
        const std::string& off = m.train_capture_off.empty() ? m.eval_capture_off : m.train_capture_off;
        lines.push_back(off.empty() ? "cuda graph: each training and evaluation step is captured on its second run "
                                      "with a batch size and replayed as one launch"
                                    : "cuda graph: " + off);
    }
    if (m.options.communicator != nullptr) {
        lines.push_back(fmt::format("data-parallel: {}; gradients ({} floats) averaged across ranks after each "
                                    "backward; batch norm statistics {}",
                                    m.options.communicator->describe(), m.param_floats,
                                    m.options.sync_batch_norm ? "synchronized across ranks (--sync-bn)"
                                                              : "per rank"));
    }
    for (int i = 0; i < m.layers; ++i) {
        const std::string d = m.backend->describe(i);
        if (!d.empty()) lines.push_back(fmt::format("{}: {}", m.graph.nodes[i].spec.name, d));
    }
    for (int r = 0; r < m.layers; ++r) {
        const int host = m.relu_host[r];
        if (host == kNone) continue;
        const Node& node = m.graph.nodes[host];
        const LayerKind kind = node.spec.kind;
        lines.push_back(fmt::format("{}: fused into {} '{}'", m.graph.nodes[r].spec.name,
                                    kind == LayerKind::batch_norm2d ? "batch norm"
                                    : kind == LayerKind::dropout    ? "dropout"
                                                                    : "max pooling",
                                    node.spec.name));
    }
    for (int d = 0; d < m.layers; ++d) {
        const int host = m.dropout_host[d];
        if (host != kNone) {
            lines.push_back(fmt::format("{}: fused into max pooling '{}' (one kernel each way writes and applies its "
                                        "mask)", m.graph.nodes[d].spec.name, m.graph.nodes[host].spec.name));
        }
    }
    for (int f = 0; f < m.layers; ++f) {
        if (!m.permutes_flatten(f)) continue;
        lines.push_back(
            fmt::format("{}: reorders its NHWC input to NCHW, PyTorch's flattened (c, h, w) order (one "
                        "transpose each way)",
                        m.graph.nodes[f].spec.name));
    }
    for (int c = 0; c < m.layers; ++c) {
        if (m.bias_fold[c] == kNone || m.graph.nodes[c].spec.kind != LayerKind::conv2d) continue;
        const Node& bn = m.graph.nodes[m.bias_fold[c]];
        lines.push_back(fmt::format("{}: bias folded into batch norm '{}' ({})", m.graph.nodes[c].spec.name,
                                    bn.spec.name,
                                    bn.spec.track_running_stats ? "training steps" : "every step"));
    }
    for (int c = 0; c < m.layers; ++c) {
        if (m.bn_partials_buf[c] == kNone) continue;
        lines.push_back(
            fmt::format("{}: writes batch norm '{}''s batch statistics as it stores its output, which "
                        "the batch norm then need not read for them (training steps)",
                        m.graph.nodes[c].spec.name, m.graph.nodes[m.bn_partials_pair[c]].spec.name));
    }
    return lines;
}

void Executor::initialize(uint64_t seed) {
    Impl& m = *impl_;
    std::vector<float> params(m.param_floats, 0.0f), buffers(std::max<int64_t>(m.buffer_floats, 1), 0.0f);
    const std::vector<int> order = m.graph.parameters();
    for (std::size_t k = 0; k < order.size(); ++k) {
        const StateEntry& entry = m.graph.state[order[k]];
        const LayerSpec& layer = m.graph.nodes[entry.node].spec;
        HostTensor<float> value;
        if (layer.kind == LayerKind::batch_norm2d) {
            value = entry.role == "weight" ? cpu::batchnorm_weight_init<float>(entry.shape[0])
                                           : cpu::batchnorm_bias_init<float>(entry.shape[0]);
        } else if (entry.role == "weight") {
            value = cpu::default_weight_init<float>(entry.shape, seed, k);
        } else {
            // The bias's bound comes from its layer's weight, the entry before it.
            const Shape& weight = m.graph.state[order[k - 1]].shape;
            value = cpu::default_bias_init<float>(entry.shape, cpu::fan_in(weight), seed, k);
        }
        std::copy(value.values().begin(), value.values().end(), params.begin() + m.offset[order[k]]);
    }
    for (std::size_t e = 0; e < m.graph.state.size(); ++e) {
        if (m.graph.state[e].role == "running_var") {
            std::fill_n(buffers.begin() + m.offset[e], m.graph.state[e].shape.numel(), 1.0f);
        }
    }
    m.backend->copy_from_host(m.params.get(), params.data(), sizeof(float) * params.size());
    m.backend->copy_from_host(m.buffers.get(), buffers.data(), sizeof(float) * buffers.size());
    m.refresh_params_copy();
    m.backend->zero(m.optimizer.get(), sizeof(float) * std::max<int64_t>(m.slots * m.param_floats, 1));
    for (auto& [node, count] : m.num_batches_tracked) count = 0;
    m.optimizer_step = 0;
    m.sync_step_counters(0);
    m.backend->zero(m.records(), sizeof(NonfiniteRecords));  // a fresh model has no non-finite history
}

io::StateDict Executor::model_state() const {
    const Impl& m = *impl_;
    io::StateDict state;
    for (std::size_t e = 0; e < m.graph.state.size(); ++e) {
        const StateEntry& entry = m.graph.state[e];
        if (entry.dtype == DType::i64) {
            state.put(entry.name, HostTensor<int64_t>(Shape{}, std::vector<int64_t>{m.num_batches_tracked.at(entry.node)}));
            continue;
        }
        HostTensor<float> value(entry.shape);
        m.backend->copy_to_host(value.data(), m.param(entry.trainable ? m.params : m.buffers, static_cast<int>(e)),
                                sizeof(float) * value.numel());
        state.put(entry.name, std::move(value));
    }
    return state;
}

void Executor::load_model_state(const io::StateDict& state, const std::string& source) {
    Impl& m = *impl_;
    std::vector<io::ExpectedEntry> expected;
    for (const StateEntry& entry : m.graph.state) expected.push_back({entry.name, entry.shape, entry.dtype});
    io::check_state_dict(state, expected, source);
    for (std::size_t e = 0; e < m.graph.state.size(); ++e) {
        const StateEntry& entry = m.graph.state[e];
        if (entry.dtype == DType::i64) {
            m.num_batches_tracked[entry.node] = state.i64(entry.name)[0];
            continue;
        }
        const HostTensor<float>& value = state.f32(entry.name);
        m.backend->copy_from_host(m.param(entry.trainable ? m.params : m.buffers, static_cast<int>(e)), value.data(),
                                  sizeof(float) * value.numel());
    }
    m.refresh_params_copy();
}

io::StateDict Executor::gradients() const {
    const Impl& m = *impl_;
    io::StateDict grads;
    for (int e : m.graph.parameters()) {
        HostTensor<float> value(m.graph.state[e].shape);
        m.backend->copy_to_host(value.data(), m.param(m.grads, e), sizeof(float) * value.numel());
        grads.put(m.graph.state[e].name, std::move(value));
    }
    return grads;
}

io::StateDict Executor::optimizer_state() const {
    const Impl& m = *impl_;
    io::StateDict state;
    const std::vector<std::string> slot_names = optimizer_slot_names(m.options.optimizer);
    for (int e : m.graph.parameters()) {
        const StateEntry& entry = m.graph.state[e];
        for (std::size_t k = 0; k < slot_names.size(); ++k) {
            HostTensor<float> value(entry.shape);
            m.backend->copy_to_host(value.data(), m.param(m.optimizer, e) + k * m.param_floats,
                                    sizeof(float) * value.numel());
            state.put(slot_names[k] + "." + entry.name, std::move(value));
        }
    }
    state.put("step", HostTensor<int64_t>(Shape{}, std::vector<int64_t>{m.optimizer_step}));
    return state;
}

void Executor::load_optimizer_state(const io::StateDict& state, const std::string& source) {
    Impl& m = *impl_;
    const std::vector<std::string> slot_names = optimizer_slot_names(m.options.optimizer);
    std::vector<io::ExpectedEntry> expected{{"step", Shape{}, DType::i64}};
    for (int e : m.graph.parameters()) {
        for (const std::string& slot : slot_names) {
            expected.push_back({slot + "." + m.graph.state[e].name, m.graph.state[e].shape, DType::f32});
        }
    }
    io::check_state_dict(state, expected, source);
    for (int e : m.graph.parameters()) {
        for (std::size_t k = 0; k < slot_names.size(); ++k) {
            const HostTensor<float>& value = state.f32(slot_names[k] + "." + m.graph.state[e].name);
            m.backend->copy_from_host(m.param(m.optimizer, e) + k * m.param_floats, value.data(),
                                      sizeof(float) * value.numel());
        }
    }
    m.optimizer_step = state.i64("step")[0];
    m.sync_step_counters(m.optimizer_step);  // the trainer's dropout step is the optimizer's
}

void Executor::replicate_from(int root) {
    Impl& m = *impl_;
    dist::Communicator* communicator = m.options.communicator;
    CUDACNN_CHECK(communicator != nullptr, "executor: replicate_from needs a communicator (a data-parallel run)");
    void* stream = m.backend->stream_handle();
    communicator->broadcast(m.params.get(), sizeof(float) * m.param_floats, root, stream);
    communicator->broadcast(m.buffers.get(), sizeof(float) * m.buffer_floats, root, stream);
    communicator->broadcast(m.optimizer.get(), sizeof(float) * m.slots * m.param_floats, root, stream);
    m.refresh_params_copy();
    std::vector<int64_t> counts{m.optimizer_step};
    for (const auto& [node, count] : m.num_batches_tracked) counts.push_back(count);
    communicator->broadcast_host(counts.data(), sizeof(int64_t) * counts.size(), root);
    m.optimizer_step = counts[0];
    std::size_t k = 1;
    for (auto& [node, count] : m.num_batches_tracked) count = counts[k++];
    m.backend->synchronize();
    m.sync_step_counters(m.optimizer_step);
}

void Executor::set_learning_rate(double lr) {
    Impl& m = *impl_;
    if (lr == m.options.optimizer.lr) return;
    m.options.optimizer.lr = lr;
    // The learning rate is an argument of the optimizer's launch: training graphs are captured anew.
    for (auto& [key, captured] : m.captured_steps) {
        if (key.first) captured.graph = CudaGraph();
    }
}

int64_t Executor::cuda_graph_launches() const { return impl_->graph_launches; }
int64_t Executor::optimizer_steps() const { return impl_->optimizer_step; }

void Executor::set_batch(const float* images, const int64_t* labels, int64_t count) {
    Impl& m = *impl_;
    m.check_batch_count(count);
    const int64_t classes = m.graph.spec.num_classes;
    for (int64_t i = 0; i < count; ++i) {
        // The kernels do not validate labels; a bad one would silently read past the logits.
        CUDACNN_CHECK(labels[i] >= 0 && labels[i] < classes,
                      "executor: label {} of sample {} in the batch is outside [0, {}) for model '{}' with {} classes",
                      labels[i], i, classes, m.graph.spec.name, classes);
    }
    const int64_t image_floats = m.graph.spec.input.numel();
    m.backend->copy_from_host(m.address(m.x_buf), images, sizeof(float) * image_floats * count);
    m.backend->copy_from_host(m.address(m.labels_buf), labels, sizeof(int64_t) * count);
    m.batch = count;
}

Executor::InputBuffers Executor::input_buffers() {
    Impl& m = *impl_;
    return {m.floats(m.x_buf), static_cast<int64_t*>(m.address(m.labels_buf)), m.backend->stream_handle()};
}

void Executor::use_input(int64_t count) {
    impl_->check_batch_count(count);
    impl_->batch = count;
}

void Executor::train_step(int64_t step) {
    Impl& m = *impl_;
    m.require_batch();
    m.sync_step_counters(step);
    m.pass_label = fmt::format("step {} (counting from 0)", step);
    m.last_train_step = step;
    m.run_step(/*training=*/true, [&m, step] { m.enqueue_train_step(step); });
    m.account_step(/*training=*/true);
    ++m.optimizer_step;
    for (int64_t& counter : m.counters_in_backend) ++counter;  // optimizer_step() moved them on
    m.check_records_now();
}

void Executor::forward_backward(int64_t step) {
    Impl& m = *impl_;
    m.require_batch();
    m.sync_step_counters(step);
    m.pass_label = fmt::format("step {} (counting from 0)", step);
    m.last_train_step = step;
    m.enqueue_forward_backward(/*training=*/true, step);
    m.account_step(/*training=*/true);
    m.check_records_now();
}

void Executor::eval_step() {
    Impl& m = *impl_;
    m.require_batch();
    m.pass_label = "an evaluation step";
    m.run_step(/*training=*/false, [&m] {
        m.forward(/*training=*/false, 0);
        m.loss_and_metrics(/*with_gradient=*/false);
    });
    m.account_step(/*training=*/false);
}

void Executor::eval_forward_backward() {
    Impl& m = *impl_;
    m.require_batch();
    m.pass_label = "an evaluation step";
    m.enqueue_forward_backward(/*training=*/false, 0);
    m.account_step(/*training=*/false);
}

Metrics Executor::read_metrics() {
    Impl& m = *impl_;
    float loss_sum = 0.0f;
    struct {
        int64_t correct = 0;
        NonfiniteRecords records;
    } counts;
    static_assert(sizeof(counts) == sizeof(int64_t) + sizeof(NonfiniteRecords), "one copy reads both");
    m.backend->copy_to_host(&loss_sum, m.address(m.loss_sum_buf), sizeof(float));
    m.backend->copy_to_host(&counts, m.address(m.correct_buf), sizeof(counts));
    m.backend->zero(m.address(m.loss_sum_buf), sizeof(float));
    m.backend->zero(m.address(m.correct_buf), sizeof(int64_t));
    const int64_t correct = counts.correct;
    m.throw_if_nonfinite(counts.records);
    Metrics metrics{m.metric_batches, m.metric_samples, loss_sum, correct};
    m.metric_batches = m.metric_samples = 0;
    return metrics;
}

HostTensor<float> Executor::logits() const {
    const Impl& m = *impl_;
    return m.read_buffer(ConstActivation{m.logits_ptr(), DType::f32}, Shape{m.graph.spec.num_classes});
}

HostTensor<float> Executor::output(int node) const {
    const Impl& m = *impl_;
    CUDACNN_CHECK(node >= 0 && node < m.layers, "executor: node {} does not exist; model '{}' has nodes 0 to {}",
                  node, m.graph.spec.name, m.layers - 1);
    CUDACNN_CHECK(m.options.keep_activations || m.storage[node] == m.storage[m.layers - 1],
                  "executor: the output of layer '{}' is not kept after a step; build the executor with "
                  "keep_activations",
                  m.graph.nodes[node].spec.name);
    CUDACNN_CHECK(m.batch > 0, "executor: no step has run yet, so layer '{}' has no output",
                  m.graph.nodes[node].spec.name);
    const int source = m.storage[node];
    return m.read_buffer(m.activation(source == kInput ? m.input_request() : m.y_buf[source], source),
                         m.graph.nodes[node].output);
}

void Executor::start_profile() {
    Impl& m = *impl_;
    m.profiler = std::make_unique<StepProfiler>(*m.backend, m.profile_parts());
}

StepProfile Executor::stop_profile() {
    Impl& m = *impl_;
    CUDACNN_CHECK(m.profiler != nullptr, "executor: stop_profile() without start_profile()");
    StepProfile profile = m.profiler->take();
    m.profiler.reset();
    return profile;
}

HostTensor<float> Executor::input_gradient() const {
    const Impl& m = *impl_;
    CUDACNN_CHECK(m.options.input_gradient, "executor: the input gradient is not computed; build the executor with "
                  "input_gradient");
    CUDACNN_CHECK(m.batch > 0, "executor: no backward has run yet, so there is no input gradient");
    return m.read_buffer(m.activation(m.input_grad_buf, kInput), m.graph.spec.input);
}

}  // namespace cudacnn::graph
