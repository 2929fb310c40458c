// What the executor backends share: the bytes a node keeps for its backward, the node's and the optimizer's
// settings in the reference's option structs, and the CPU backends' host memory.
#include <chrono>
#include <cstdlib>
#include <cstring>

#include "src/graph/backend.hpp"

namespace cudacnn::graph::detail {

std::size_t saved_bytes(const Node& node, const std::vector<Shape>& input_shapes, const Shape& output_shape) {
    switch (node.spec.kind) {
        case LayerKind::batch_norm2d: return 2 * sizeof(float) * static_cast<std::size_t>(node.spec.num_features);
        case LayerKind::max_pool2d: return sizeof(int64_t) * static_cast<std::size_t>(output_shape.numel());
        case LayerKind::dropout: return static_cast<std::size_t>(input_shapes[0].numel());
        case LayerKind::dropout2d: return static_cast<std::size_t>(input_shapes[0][0] * input_shapes[0][1]);  // (N, C)
        default: return 0;
    }
}

std::shared_ptr<void> HostMemoryBackend::allocate(std::size_t bytes) {
    void* data = std::aligned_alloc(256, (bytes + 255) / 256 * 256 + 256);
    CUDACNN_CHECK(data != nullptr, "{} backend: could not allocate {} bytes of host memory", backend_name(kind()), bytes);
    std::memset(data, 0, bytes);
    return std::shared_ptr<void>(data, std::free);
}

void HostMemoryBackend::copy_from_host(void* dst, const void* src, std::size_t bytes) {
    std::memcpy(dst, src, bytes);
}

void HostMemoryBackend::copy_to_host(void* dst, const void* src, std::size_t bytes) {
    std::memcpy(dst, src, bytes);
}

void HostMemoryBackend::zero(void* dst, std::size_t bytes) {
    std::memset(dst, 0, bytes);
}

cpu::Conv2dGeometry conv_geometry(const NodeArgs& a) {
    return cpu::conv2d_geometry(a.input_shapes[0], a.weight_shape, a.node->spec.conv);
}

void fail_alias(const NodeArgs& a) {
    CUDACNN_FAIL("executor: layer '{}' ({}) shares its input's memory and has nothing to run; a backend was asked "
                 "to run it (an executor bug)", a.node->spec.name, layer_kind_name(a.node->spec.kind));
}

void BackendImpl::cast(ConstActivation src, Activation dst, int64_t) {
    CUDACNN_FAIL(
        "executor: the {} backend computes f32 activations only and has no cast from {} to {} (an "
        "executor bug: it casts only for a backend whose activation_dtype() is not f32)",
        backend_name(kind()), src.dtype, dst.dtype);
}

F32Activations f32_activations(const NodeArgs& a, const char* backend) {
    const auto check = [&](DType dtype, const char* what) {
        CUDACNN_CHECK(dtype == DType::f32,
                      "executor: layer '{}' ({}): the {} computes f32 activations, but its {} is {}; run this "
                      "precision on a backend that supports it (--precision fp32 runs everywhere)",
                      a.node->spec.name, layer_kind_name(a.node->spec.kind), backend, what, dtype);
    };
    F32Activations f;
    for (const ConstActivation& x : a.x) {
        check(x.dtype, "input");
        f.x.push_back(static_cast<const float*>(x.data));
    }
    check(a.y.dtype, "output");
    f.y = static_cast<float*>(a.y.data);
    check(a.dy.dtype, "output gradient");
    f.dy = static_cast<const float*>(a.dy.data);
    for (const Activation& dx : a.dx) {
        check(dx.dtype, "input gradient");
        f.dx.push_back(static_cast<float*>(dx.data));
    }
    return f;
}

cpu::DropoutOptions dropout_options(const NodeArgs& a) {
    cpu::DropoutOptions options;
    options.p = a.node->spec.p;
    options.training = a.training;
    options.seed = a.seed;
    options.stream = a.dropout_stream_base + static_cast<uint64_t>(a.step) * a.dropout_stream_stride;
    return options;
}

namespace {

class HostStopwatch final : public Stopwatch {
  public:
    void start() override { start_ = std::chrono::steady_clock::now(); }
    void stop() override { stop_ = std::chrono::steady_clock::now(); }
    double elapsed_us() override { return std::chrono::duration<double, std::micro>(stop_ - start_).count(); }

  private:
    std::chrono::steady_clock::time_point start_, stop_;
};

}  // namespace

std::unique_ptr<Stopwatch> BackendImpl::make_stopwatch() { return std::make_unique<HostStopwatch>(); }

CudaGraph BackendImpl::capture(const std::function<void()>&) {
    CUDACNN_FAIL("executor: the {} backend cannot capture a step as a CUDA graph", backend_name(kind()));
}

void BackendImpl::replay(const CudaGraph&) {
    CUDACNN_FAIL("executor: the {} backend cannot replay a CUDA graph", backend_name(kind()));
}

cpu::BatchNorm2dOptions batch_norm_options(const NodeArgs& a) {
    cpu::BatchNorm2dOptions options;
    // Without running statistics PyTorch normalizes by the batch in eval mode too.
    options.training = a.training || a.running_mean == nullptr;
    options.momentum = a.node->spec.momentum;
    options.eps = a.node->spec.eps;
    return options;
}

cpu::SgdOptions sgd_options(const OptimizerConfig& config) {
    cpu::SgdOptions options;
    options.lr = config.lr;
    options.momentum = config.momentum;
    options.weight_decay = config.weight_decay;
    return options;
}

namespace {
// Adam's and AdamW's options have the same fields; only their default weight decay differs.
template <class Options>
Options adam_family_options(const OptimizerConfig& config) {
    Options options;
    options.lr = config.lr;
    options.beta1 = config.beta1;
    options.beta2 = config.beta2;
    options.eps = config.eps;
    options.weight_decay = config.weight_decay;
    return options;
}
}  // namespace

cpu::AdamOptions adam_options(const OptimizerConfig& config) {
    return adam_family_options<cpu::AdamOptions>(config);
}

cpu::AdamWOptions adamw_options(const OptimizerConfig& config) {
    return adam_family_options<cpu::AdamWOptions>(config);
}

int64_t optimizer_state_slots(const OptimizerConfig& config) {
    switch (config.kind) {
        case OptimizerKind::adam: return cpu::adam_state_slots(adam_options(config));
        case OptimizerKind::adamw: return cpu::adamw_state_slots(adamw_options(config));
        case OptimizerKind::sgd: return cpu::sgd_state_slots(sgd_options(config));
    }
    return 0;
}

}  // namespace cudacnn::graph::detail
