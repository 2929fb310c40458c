// The executor on the device: the hand-written kernels (and cuDNN / cuBLAS where chosen) on one stream,
// run by a real GPU in the cuda flavour or by the CPU emulator in the emu flavour.
#include <algorithm>
#include <map>
#include <type_traits>
#include <utility>
#include <vector>

#include "cuda/activation.hpp"
#include "cuda/bf16.cuh"
#include "cuda/cast.hpp"
#include "cuda/batch_norm.hpp"
#include "cuda/batch_norm_sync.hpp"
#include "cuda/conv2d.hpp"
#include "cuda/dropout.hpp"
#include "cuda/gemm_backend.hpp"
#include "cuda/layout.hpp"
#include "cuda/linear.hpp"
#include "cuda/loss.hpp"
#include "cuda/nonfinite.hpp"
#include "cuda/optimizer.hpp"
#include "cuda/pool.hpp"
#include "cuda/shape_ops.hpp"
#include "cudacnn/device.hpp"
#include "src/graph/backend.hpp"

namespace cudacnn::graph::detail {

static_assert(kCudnnWorkspaceAuto == gpu::kWorkspaceLimitAuto, "one value means auto on both sides");
namespace {

gpu::LinearShape linear_shape(const NodeArgs& a) {
    return {a.input_shapes[0][0], a.node->spec.in_features, a.node->spec.out_features};
}

// Dropout's stream with the step read on the device: the host part is the base alone.
cpu::DropoutOptions device_dropout_options(const NodeArgs& a) {
    cpu::DropoutOptions options = dropout_options(a);
    options.stream = a.dropout_stream_base;
    return options;
}

gpu::DeviceStep dropout_step(const NodeArgs& a) {
    return {a.step_counters + kDropoutStepCounter, a.dropout_stream_stride};
}

// The dropout folded into a max pooling (NodeArgs::dropout): its own p and kind, the stream as its own node's.
gpu::PooledDropout pooled_dropout(const NodeArgs& a) {
    cpu::DropoutOptions options = device_dropout_options(a);
    options.p = a.dropout->spec.p;
    return {options, a.dropout->spec.kind == LayerKind::dropout2d, dropout_step(a)};
}

// A batch norm's running statistics as its kernels update them (plain and synchronized passes alike), with the
// folded conv bias (input_shift) that only the running mean sees.
gpu::BatchNorm2dRunningStatsView running_stats_view(const NodeArgs& a) {
    return {a.running_mean, a.running_var, a.num_batches_tracked ? *a.num_batches_tracked : 0, a.input_shift};
}

// Where a max pooling's argmaxes go (NodeArgs::saved): as window taps, a byte each, where the window allows,
// which moves 8× less memory than int64 plane indices (CifarCNN: 29 MB less written and read back per step at
// batch 128).
template <class Indices>  // gpu::MaxPoolIndices for the forward, gpu::ConstMaxPoolIndices for the backward
Indices pool_indices(const NodeArgs& a) {
    if (!gpu::window_taps_fit(a.node->spec.max_pool)) {
        return static_cast<typename Indices::template Ptr<int64_t>>(a.saved);
    }
    return Indices::window_taps(static_cast<typename Indices::template Ptr<uint8_t>>(a.saved));
}

// The activations of one pass as T (float, or bf16 under --precision bf16: the executor gives every
// activation of a step one type), and the weight in that type (the bf16 copy for bf16).
template <class T>
struct TypedPass {
    std::vector<const T*> x;
    T* y = nullptr;
    const T* dy = nullptr;
    std::vector<T*> dx;
    const T* weight = nullptr;

    explicit TypedPass(const NodeArgs& a) : y(a.y.as<T>()), dy(a.dy.as<T>()) {
        for (const ConstActivation& input : a.x) x.push_back(input.as<T>());
        for (const Activation& gradient : a.dx) dx.push_back(gradient.as<T>());
        if constexpr (std::is_same_v<T, float>) {
            weight = a.weight;
        } else {
            weight = static_cast<const T*>(a.weight_copy);
        }
    }
};

// The layer kinds without bf16 kernels; --precision bf16 names the first one when the executor is built.
bool has_bf16_kernels(LayerKind kind) {
    return kind != LayerKind::concat;
}

// The layer kinds without NHWC kernels; --memory-format nhwc names the first one when the executor is built.
bool has_nhwc_kernels(LayerKind kind) {
    return kind != LayerKind::concat;
}

// --precision: whether the convolutions and matrix products may round their f32 inputs to TF32.
bool allows_tf32(const std::string& precision) {
    CUDACNN_CHECK(precision == "fp32" || precision == "tf32" || precision == "bf16",
                  "--precision {}: not one of fp32, tf32, bf16", precision);
    return precision == "tf32";
}

// --precision bf16 stores every activation in bf16 (the executor casts at the edges); else f32.
DType activation_dtype_of(const std::string& precision) {
    return precision == "bf16" ? DType::bf16 : DType::f32;
}

// --gemm: which SGEMM serves the linear layers and im2col convolutions; auto prefers cuBLAS where it is built,
// as conv-algo auto prefers cuDNN.
gpu::GemmSettings gemm_settings(const ExecutorOptions& options) {
    CUDACNN_CHECK(options.gemm == "auto" || options.gemm == "own" || options.gemm == "cublas",
                  "--gemm {}: not one of auto, own, cublas", options.gemm);
    gpu::GemmSettings settings;
    if (options.gemm == "auto") {
        const bool cublas = gpu::gemm_backend_unsupported(gpu::GemmBackend::cublas).empty();
        settings.backend = cublas ? gpu::GemmBackend::cublas : gpu::GemmBackend::own;
    } else {
        settings.backend = gpu::parse_gemm_backend(options.gemm);
        const std::string why_not = gpu::gemm_backend_unsupported(settings.backend);
        CUDACNN_CHECK(why_not.empty(), "--gemm {}: {}; use --gemm auto or own", options.gemm, why_not);
    }
    settings.math = allows_tf32(options.precision) ? gpu::GemmMath::tf32 : gpu::GemmMath::fp32;
    return settings;
}

// CUDA events on the backend's stream: the device's own time between the marks, not the host's.
class EventStopwatch final : public Stopwatch {
  public:
    explicit EventStopwatch(const Stream& stream) : stream_(stream) {}
    void start() override { start_.record(stream_); }
    void stop() override { stop_.record(stream_); }
    double elapsed_us() override { return 1e3 * Event::elapsed_ms(start_, stop_); }

  private:
    const Stream& stream_;
    Event start_, stop_;
};

class GpuBackend final : public BackendImpl {
  public:
    explicit GpuBackend(const ExecutorOptions& options)
        : gemm_(gemm_settings(options)),
          sync_batch_norm_(options.sync_batch_norm),
          activation_dtype_(activation_dtype_of(options.precision)),
          format_(parse_memory_format(options.memory_format)) {
        conv_settings_.algo = gpu::parse_conv_algo(options.conv_algo);
        conv_settings_.allow_tf32 = gemm_.math == gpu::GemmMath::tf32;  // one --precision for both
        conv_settings_.dtype = activation_dtype_;
        conv_settings_.memory_format = format_;
        conv_settings_.benchmark = options.cudnn_benchmark;
        conv_settings_.workspace_limit_bytes = gpu::resolve_workspace_limit(options.cudnn_workspace_limit_bytes);
        const float one = 1.0f;  // d(loss)/d(loss), which the loss backward reads from device memory
        one_ = upload(&one, 1);
    }

    Backend kind() const override { return Backend::gpu; }
    std::string device_description() const override {
        const char* math = activation_dtype_ == DType::bf16 ? "BF16"
                           : conv_settings_.allow_tf32      ? "TF32"
                                                            : "FP32";
        return fmt::format(
            "gpu: {}; {}{}, GEMM {}{}", description_, math, format_ == MemoryFormat::nhwc ? ", NHWC" : "",
            gpu::gemm_backend_name(gemm_.backend), conv_settings_.benchmark ? ", cuDNN benchmark" : "");
    }

    std::shared_ptr<void> allocate(std::size_t bytes) override {
        auto buffer = std::make_shared<DeviceBuffer>(bytes);
        fill_bytes(buffer->data(), 0, bytes, stream_.handle());
        stream_.synchronize();
        return std::shared_ptr<void>(buffer, buffer->data());
    }
    // The stream may still be reading the destination (or writing the source): copy on it and wait.
    void copy_from_host(void* dst, const void* src, std::size_t bytes) override {
        copy_to_device(dst, src, bytes, stream_.handle());
        stream_.synchronize();
    }
    void copy_to_host(void* dst, const void* src, std::size_t bytes) override {
        cudacnn::copy_to_host(dst, src, bytes, stream_.handle());
        stream_.synchronize();
    }
    void zero(void* dst, std::size_t bytes) override { fill_bytes(dst, 0, bytes, stream_.handle()); }

    std::size_t saved_bytes(const Node& node, const std::vector<Shape>& input_shapes,
                            const Shape& output_shape) const override {
        // pool_indices: one tap per pooled element where the window allows.
        if (node.spec.kind == LayerKind::max_pool2d && gpu::window_taps_fit(node.spec.max_pool)) {
            return static_cast<std::size_t>(output_shape.numel());
        }
        return detail::saved_bytes(node, input_shapes, output_shape);
    }

    std::size_t prepare(const NodeArgs& a) override {
        CUDACNN_CHECK(activation_dtype_ != DType::bf16 || has_bf16_kernels(a.node->spec.kind),
                      "executor: layer '{}' ({}) has no bf16 kernels yet; run this model with --precision fp32 "
                      "or tf32",
                      a.node->spec.name, layer_kind_name(a.node->spec.kind));
        CUDACNN_CHECK(
            format_ != MemoryFormat::nhwc || has_nhwc_kernels(a.node->spec.kind),
            "executor: layer '{}' ({}) has no NHWC kernels yet; run this model with --memory-format nchw",
            a.node->spec.name, layer_kind_name(a.node->spec.kind));
        switch (a.node->spec.kind) {
            case LayerKind::conv2d: {
                const auto key = std::make_pair(a.index, a.input_shapes[0][0]);
                auto it = plans_.find(key);
                if (it == plans_.end()) {
                    it = plans_.emplace(key, gpu::Conv2dPlan(conv_geometry(a), conv_settings_, stream_.handle()))
                             .first;
                    if (descriptions_.count(a.index) == 0) descriptions_[a.index] = it->second.description();
                }
                return it->second.workspace_bytes();
            }
            case LayerKind::batch_norm2d: {
                // Synchronized training passes (NodeArgs::sync_statistics, not set here) need room for their sums.
                const std::size_t bytes = gpu::batch_norm2d_workspace_bytes(a.input_shapes[0]);
                if (!sync_batch_norm_) return bytes;
                return std::max(bytes, gpu::batch_norm2d_sync_workspace_bytes(a.input_shapes[0]));
            }
            case LayerKind::linear: {
                const gpu::GemmScope gemm_scope(gemm_);  // the workspace depends on which GEMM runs
                return activation_dtype_ == DType::bf16 ? gpu::linear_workspace_bytes_bf16(linear_shape(a))
                                                        : gpu::linear_workspace_bytes(linear_shape(a));
            }
            default: return 0;
        }
    }
    std::string describe(int node_index) const override {
        const auto it = descriptions_.find(node_index);
        return it == descriptions_.end() ? "" : it->second;
    }
    BnPartials conv_bn_partials(const NodeArgs& conv) const override {
        const gpu::Conv2dPlan& p = plan(conv);
        return {p.bn_statistics_bytes(), p.bn_statistics_partials()};
    }

    void forward(const NodeArgs& a) override;
    void backward(const NodeArgs& a) override;

    void accumulate(float* sum, const float* value, int64_t count) override {
        gpu::add_forward(sum, value, sum, count, stream_.handle());
    }
    void accumulate_activations(Activation sum, ConstActivation value, int64_t count) override {
        if (sum.dtype != DType::bf16) return accumulate(sum.f32(), value.f32(), count);
        gpu::bf16* target = sum.as<gpu::bf16>();
        gpu::add_forward(target, value.as<gpu::bf16>(), target, count, stream_.handle());
    }

    DType activation_dtype() const override { return activation_dtype_; }
    MemoryFormat memory_format() const override { return format_; }
    void convert_input(ConstActivation src, Activation dst, const Shape& shape) override {
        if (shape.rank() != 4) return cast(src, dst, shape.numel());
        if (dst.dtype == DType::bf16) {
            return gpu::convert_layout(src.f32(), dst.as<gpu::bf16>(), shape, MemoryFormat::nchw, format_,
                                       stream_.handle());
        }
        gpu::convert_layout(src.f32(), dst.f32(), shape, MemoryFormat::nchw, format_, stream_.handle());
    }
    void cast(ConstActivation src, Activation dst, int64_t n) override {
        if (src.dtype == DType::f32 && dst.dtype == DType::bf16) {
            return gpu::cast(src.as<float>(), dst.as<gpu::bf16>(), n, stream_.handle());
        }
        gpu::cast(src.as<gpu::bf16>(), dst.as<float>(), n, stream_.handle());
    }

    std::size_t loss_workspace_bytes(int64_t rows) const override { return gpu::cross_entropy_workspace_bytes(rows); }
    void cross_entropy(const float* logits, const int64_t* labels, int64_t rows, int64_t classes,
                       double label_smoothing, float* loss, float* dlogits, void* workspace,
                       std::size_t workspace_bytes) override {
        gpu::CrossEntropyOptions options;
        options.label_smoothing = label_smoothing;
        if (dlogits == nullptr) {
            gpu::cross_entropy_forward(logits, labels, rows, classes, options, loss, workspace, workspace_bytes,
                                       stream_.handle());
        } else {
            gpu::cross_entropy_forward_backward(logits, labels, one_.data_as<const float>(), rows, classes, options,
                                                loss, dlogits, workspace, workspace_bytes, stream_.handle());
        }
    }
    void add_metrics(const float* loss, const float* logits, const int64_t* labels, int64_t rows, int64_t classes,
                     float* loss_sum, int64_t* correct) override {
        accumulate(loss_sum, loss, 1);
        gpu::accuracy_counts(logits, labels, rows, classes, 1, correct, nullptr, /*accumulate=*/true,
                             stream_.handle());
    }

    // The step count comes from device memory, so that the launch's arguments are the same at every step.
    // The bf16 copy is written by the step's own kernel (no second pass over the parameters).
    void optimizer_step(const OptimizerConfig& config, float* params, const float* grads, float* state,
                        int64_t n, int64_t /*step: counters[kOptimizerStepCounter] on the device*/,
                        int64_t* counters, Activation params_copy) override {
        const cudaStream_t st = stream_.handle();
        const int64_t* step = counters + kOptimizerStepCounter;
        gpu::bf16* copy = params_copy.as<gpu::bf16>();
        switch (config.kind) {
            case OptimizerKind::adam:
                gpu::adam_step(adam_options(config), params, grads, state, n, step, st, copy);
                break;
            case OptimizerKind::adamw:
                gpu::adamw_step(adamw_options(config), params, grads, state, n, step, st, copy);
                break;
            case OptimizerKind::sgd:
                gpu::sgd_step(sgd_options(config), params, grads, state, n, step, st, copy);
                break;
        }
        gpu::advance_step_counters(counters, kStepCounters, st);
    }
    void record_nonfinite(const float* values, int64_t n, const int64_t* step,
                          gpu::NonfiniteRecord* record) override {
        gpu::record_nonfinite(values, n, step, record, stream_.handle());
    }
    void synchronize() override { stream_.synchronize(); }
    void* stream_handle() override { return stream_.handle(); }

    std::unique_ptr<Stopwatch> make_stopwatch() override { return std::make_unique<EventStopwatch>(stream_); }
    const char* stopwatch_clock() const override { return "CUDA events on the executor's stream"; }

    bool fuses_relu() const override { return true; }
    bool folds_dropouts() const override { return true; }
    bool folds_conv_bias() const override { return true; }
    bool can_capture() const override { return true; }
    CudaGraph capture(const std::function<void()>& enqueue) override { return CudaGraph::capture(stream_, enqueue); }
    void replay(const CudaGraph& graph) override { graph.launch(stream_); }

  private:
    const gpu::Conv2dPlan& plan(const NodeArgs& a) const { return plans_.at({a.index, a.input_shapes[0][0]}); }
    template <class T>
    void forward_as(const NodeArgs& a);
    template <class T>
    void backward_as(const NodeArgs& a);
    template <class T>
    void synchronized_batch_norm_forward(const NodeArgs& a);
    template <class T>
    void batch_norm_from_partials_forward(const NodeArgs& a);
    static gpu::BatchNorm2dPartialStats* bn_partials(const NodeArgs& a) {
        return static_cast<gpu::BatchNorm2dPartialStats*>(a.bn_partials);
    }
    template <class T>
    void synchronized_batch_norm_backward(const NodeArgs& a);
    // Sums a synchronized batch norm's doubles across the ranks, in device memory, on this backend's stream.
    gpu::BatchNormSyncReduce sync_reduce(const NodeArgs& a) {
        dist::Communicator* communicator = a.sync_statistics;
        void* stream = stream_.handle();
        return [communicator, stream](double* data, int64_t n) { communicator->all_reduce_sum(data, n, stream); };
    }

    // Which device, or why there is none: before any member makes a CUDA call (stream_), so that no GPU gives
    // this message rather than the first call's error.
    static std::string usable_gpu_description() {
        const GpuStatus status = gpu_status();
        CUDACNN_CHECK(status.available, "--device cuda: no usable GPU here ({}); use --device cpu, or build the emu "
                      "flavour to run the kernels on the CPU emulator", status.description);
        return status.description;
    }

    gpu::GemmSettings gemm_;  // applied (GemmScope) around every node, so that its GEMMs follow this executor
    bool sync_batch_norm_;    // ExecutorOptions::sync_batch_norm: batch norm workspaces hold the sync kernels' sums
    DType activation_dtype_;  // --precision bf16: bf16, else f32
    MemoryFormat format_;     // --memory-format: where the 4-d activations lie
    gpu::Conv2dSettings conv_settings_;
    std::string description_ = usable_gpu_description();
    Stream stream_;
    DeviceBuffer one_;
    std::map<std::pair<int, int64_t>, gpu::Conv2dPlan> plans_;  // by (node, batch)
    std::map<int, std::string> descriptions_;
};

void GpuBackend::forward(const NodeArgs& a) {
    if (a.y.dtype == DType::bf16) return forward_as<gpu::bf16>(a);
    forward_as<float>(a);
}

void GpuBackend::backward(const NodeArgs& a) {
    if (a.dy.dtype == DType::bf16) return backward_as<gpu::bf16>(a);
    backward_as<float>(a);
}

template <class T>
void GpuBackend::forward_as(const NodeArgs& a) {
    const TypedPass<T> f(a);
    const gpu::GemmScope gemm_scope(gemm_);
    const LayerSpec& s = a.node->spec;
    const cudaStream_t st = stream_.handle();
    const Shape& in = a.input_shapes[0];
    const int64_t count = in.numel();
    switch (s.kind) {
        case LayerKind::conv2d: {
            const float* bias = a.skip_bias ? nullptr : a.bias;
            if (a.bn_partials != nullptr) {
                plan(a).forward_with_bn_statistics(f.x[0], f.weight, bias, f.y, bn_partials(a),
                                                   a.bn_partials_bytes, a.workspace, st);
            } else {
                plan(a).forward(f.x[0], f.weight, bias, f.y, a.workspace, st);
            }
            break;
        }
        case LayerKind::batch_norm2d: {
            if (a.sync_statistics != nullptr) {
                synchronized_batch_norm_forward<T>(a);
                break;
            }
            if (a.bn_partials != nullptr) {
                batch_norm_from_partials_forward<T>(a);
                break;
            }
            gpu::BatchNorm2dRunningStatsView running = running_stats_view(a);
            auto* saved = static_cast<float*>(a.saved);
            gpu::BatchNorm2dRunningStatsView* stats = a.running_mean ? &running : nullptr;
            if (a.relu) {
                gpu::batch_norm2d_relu(f.x[0], a.weight, a.bias, stats, f.y, saved, saved + s.num_features,
                                       in, batch_norm_options(a), a.workspace, a.workspace_bytes, st,
                                       format_);
            } else {
                gpu::batch_norm2d(f.x[0], a.weight, a.bias, stats, f.y, saved, saved + s.num_features, in,
                                  batch_norm_options(a), a.workspace, a.workspace_bytes, st, format_);
            }
            break;
        }
        case LayerKind::relu: gpu::relu_forward(f.x[0], f.y, count, st); break;
        case LayerKind::max_pool2d: {
            const auto indices = pool_indices<gpu::MaxPoolIndices>(a);
            if (a.dropout != nullptr) {
                gpu::max_pool2d_dropout(f.x[0], f.y, indices, a.dropout_mask, in, s.max_pool,
                                        pooled_dropout(a), a.relu, st, format_);
            } else if (a.relu) {
                gpu::relu_max_pool2d(f.x[0], f.y, indices, in, s.max_pool, st, format_);
            } else {
                gpu::max_pool2d(f.x[0], f.y, indices, in, s.max_pool, st, format_);
            }
            break;
        }
        case LayerKind::avg_pool2d:
            gpu::avg_pool2d(f.x[0], f.y, in, s.avg_pool, st, format_);
            break;
        case LayerKind::adaptive_avg_pool2d:
            gpu::adaptive_avg_pool2d(f.x[0], f.y, in, s.output_size, st, format_);
            break;
        case LayerKind::dropout: {
            auto* mask = static_cast<uint8_t*>(a.saved);
            if (a.relu) {
                gpu::relu_dropout_forward(f.x[0], f.y, mask, count, device_dropout_options(a), st,
                                          dropout_step(a));
            } else {
                gpu::dropout_forward(f.x[0], f.y, mask, count, device_dropout_options(a), st,
                                     dropout_step(a));
            }
            break;
        }
        case LayerKind::dropout2d:
            gpu::dropout2d_forward(f.x[0], f.y, static_cast<uint8_t*>(a.saved), in, device_dropout_options(a),
                                   st, dropout_step(a), format_);
            break;
        case LayerKind::flatten:  // a node only where it reorders NHWC into PyTorch's (c, h, w) order
            if (format_ != MemoryFormat::nhwc || in.rank() != 4) fail_alias(a);
            gpu::convert_layout(f.x[0], f.y, in, MemoryFormat::nhwc, MemoryFormat::nchw, st);
            break;
        case LayerKind::linear:
            gpu::linear_forward(f.x[0], f.weight, a.bias, f.y, linear_shape(a), st, a.workspace,
                                a.workspace_bytes);
            break;
        case LayerKind::add:
            gpu::add_forward(f.x[0], f.x[1], f.y, count, st);
            for (std::size_t k = 2; k < f.x.size(); ++k) gpu::add_forward(f.y, f.x[k], f.y, count, st);
            break;
        case LayerKind::concat:
            if constexpr (std::is_same_v<T, float>) gpu::concat_forward(f.x, a.input_shapes, 1, f.y, st);
            break;
    }
}

template <class T>
void GpuBackend::backward_as(const NodeArgs& a) {
    const TypedPass<T> f(a);
    const gpu::GemmScope gemm_scope(gemm_);
    const LayerSpec& s = a.node->spec;
    const cudaStream_t st = stream_.handle();
    const Shape& in = a.input_shapes[0];
    const int64_t count = in.numel();
    T* dx = f.dx[0];
    switch (s.kind) {
        case LayerKind::conv2d:
            if (dx != nullptr) plan(a).backward_data(f.dy, f.weight, dx, a.workspace, st);
            plan(a).backward_filter(f.x[0], f.dy, a.dweight, a.dbias, a.workspace, st);
            break;
        case LayerKind::batch_norm2d: {
            if (a.sync_statistics != nullptr) {
                synchronized_batch_norm_backward<T>(a);
                break;
            }
            const auto* saved = static_cast<const float*>(a.saved);
            const bool training = batch_norm_options(a).training;
            if (a.relu) {
                gpu::batch_norm2d_relu_backward(f.x[0], f.y, a.weight, saved, saved + s.num_features, f.dy,
                                                dx, a.dweight, a.dbias, in, training, a.workspace,
                                                a.workspace_bytes, st, format_);
            } else {
                gpu::batch_norm2d_backward(f.x[0], a.weight, saved, saved + s.num_features, f.dy, dx,
                                           a.dweight, a.dbias, in, training, a.workspace, a.workspace_bytes,
                                           st, format_);
            }
            break;
        }
        case LayerKind::relu: gpu::relu_backward(f.y, f.dy, dx, count, st); break;
        case LayerKind::max_pool2d: {
            const auto indices = pool_indices<gpu::ConstMaxPoolIndices>(a);
            if (a.dropout != nullptr) {  // the fused ReLU's rule rides in the indices
                gpu::max_pool2d_dropout_backward(indices, a.dropout_mask, f.dy, dx, in, s.max_pool,
                                                 pooled_dropout(a), st, format_);
            } else if (a.relu) {
                gpu::relu_max_pool2d_backward(indices, f.y, f.dy, dx, in, s.max_pool, st, format_);
            } else {
                gpu::max_pool2d_backward(indices, f.dy, dx, in, s.max_pool, st, format_);
            }
            break;
        }
        case LayerKind::avg_pool2d:
            gpu::avg_pool2d_backward(f.dy, dx, in, s.avg_pool, st, format_);
            break;
        case LayerKind::adaptive_avg_pool2d:
            gpu::adaptive_avg_pool2d_backward(f.dy, dx, in, s.output_size, st, format_);
            break;
        case LayerKind::dropout: {
            const auto* mask = static_cast<const uint8_t*>(a.saved);
            if (a.relu) {
                gpu::relu_dropout_backward(f.dy, mask, dx, count, dropout_options(a), st);
            } else {
                gpu::dropout_backward(f.dy, mask, dx, count, dropout_options(a), st);
            }
            break;
        }
        case LayerKind::dropout2d:
            gpu::dropout2d_backward(f.dy, static_cast<const uint8_t*>(a.saved), dx, in, dropout_options(a),
                                    st, format_);
            break;
        case LayerKind::flatten:
            if (format_ != MemoryFormat::nhwc || in.rank() != 4) fail_alias(a);
            gpu::convert_layout(f.dy, dx, in, MemoryFormat::nchw, MemoryFormat::nhwc, st);
            break;
        case LayerKind::linear:
            gpu::linear_backward(f.x[0], f.weight, f.dy, dx, a.dweight, a.dbias, linear_shape(a), st,
                                 a.workspace, a.workspace_bytes);
            break;
        case LayerKind::add:
            for (T* d : f.dx) copy_on_device(d, f.dy, static_cast<std::size_t>(count) * sizeof(T), st);
            break;
        case LayerKind::concat:
            if constexpr (std::is_same_v<T, float>) gpu::concat_backward(f.dy, a.input_shapes, 1, f.dx, st);
            break;
    }
}

// A training batch norm whose statistics the conv2d before it wrote (NodeArgs::bn_partials): it merges them
// instead of reading x for them, then normalizes as batch_norm2d does.
template <class T>
void GpuBackend::batch_norm_from_partials_forward(const NodeArgs& a) {
    const TypedPass<T> f(a);
    const Shape& in = a.input_shapes[0];
    gpu::BatchNorm2dRunningStatsView running = running_stats_view(a);
    gpu::BatchNorm2dRunningStatsView* stats = a.running_mean ? &running : nullptr;
    float* save_mean = static_cast<float*>(a.saved);
    float* save_invstd = save_mean + a.node->spec.num_features;
    const int per_channel = a.bn_partials_per_channel;
    if (a.relu) {
        gpu::batch_norm2d_relu_from_partials(f.x[0], bn_partials(a), per_channel, a.weight, a.bias, stats,
                                             f.y, save_mean, save_invstd, in, batch_norm_options(a),
                                             stream_.handle(), format_);
    } else {
        gpu::batch_norm2d_from_partials(f.x[0], bn_partials(a), per_channel, a.weight, a.bias, stats, f.y,
                                        save_mean, save_invstd, in, batch_norm_options(a), stream_.handle(),
                                        format_);
    }
}

// The world's statistics (--sync-bn): the kernels' phases with the communicator's all-reduces between them.
template <class T>
void GpuBackend::synchronized_batch_norm_forward(const NodeArgs& a) {
    const TypedPass<T> f(a);
    const int64_t channels = a.node->spec.num_features;
    gpu::BatchNorm2dRunningStatsView running = running_stats_view(a);
    gpu::BatchNorm2dSyncForwardT<T> args;
    args.x = f.x[0];
    args.weight = a.weight;
    args.bias = a.bias;
    args.running = a.running_mean ? &running : nullptr;
    args.y = f.y;
    args.save_mean = static_cast<float*>(a.saved);
    args.save_invstd = args.save_mean + channels;
    args.input_shape = a.input_shapes[0];
    args.options = batch_norm_options(a);
    args.relu = a.relu;
    args.format = format_;
    args.workspace = a.workspace;
    args.workspace_bytes = a.workspace_bytes;
    args.stream = stream_.handle();
    gpu::batch_norm2d_sync(args, sync_reduce(a));
}

// dweight and dbias stay this rank's sums (averaged later with the other gradients); dx uses the world's.
template <class T>
void GpuBackend::synchronized_batch_norm_backward(const NodeArgs& a) {
    const TypedPass<T> f(a);
    const int64_t channels = a.node->spec.num_features;
    gpu::BatchNorm2dSyncBackwardT<T> args;
    args.x = f.x[0];
    args.relu_y = a.relu ? f.y : nullptr;
    args.weight = a.weight;
    args.save_mean = static_cast<const float*>(a.saved);
    args.save_invstd = args.save_mean + channels;
    args.dy = f.dy;
    args.dx = f.dx[0];
    args.dweight = a.dweight;
    args.dbias = a.dbias;
    args.input_shape = a.input_shapes[0];
    args.format = format_;
    args.workspace = a.workspace;
    args.workspace_bytes = a.workspace_bytes;
    args.stream = stream_.handle();
    gpu::batch_norm2d_sync_backward(args, sync_reduce(a));
}

}  // namespace

std::unique_ptr<BackendImpl> make_gpu_backend(const ExecutorOptions& options) {
    return std::make_unique<GpuBackend>(options);
}

}  // namespace cudacnn::graph::detail
