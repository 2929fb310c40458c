// The executor on the CPU reference ops: each node copies its inputs out of the arena into HostTensors,
// calls the reference op (the definition of what every kernel computes) and copies the results back.
// Correct and simple rather than fast (--device cpu-ref); fast_cpu_backend.cpp is the fast CPU path.
#include <cstring>

#include "cudacnn/ops/activation.hpp"
#include "cudacnn/ops/batch_norm.hpp"
#include "cudacnn/ops/conv2d.hpp"
#include "cudacnn/ops/dropout.hpp"
#include "cudacnn/ops/linear.hpp"
#include "cudacnn/ops/loss.hpp"
#include "cudacnn/ops/pool.hpp"
#include "cudacnn/ops/shape_ops.hpp"
#include "src/graph/backend.hpp"

namespace cudacnn::graph::detail {
namespace {

template <class T>
HostTensor<T> read(const T* data, const Shape& shape) {
    return HostTensor<T>(shape, std::vector<T>(data, data + shape.numel()));
}

template <class T>
void write(T* data, const HostTensor<T>& tensor) {
    if (tensor.numel() > 0) std::memcpy(data, tensor.data(), static_cast<std::size_t>(tensor.numel()) * sizeof(T));
}

// The reference ops compute in f32: activations of any other type throw (ActivationRef::f32).
HostTensor<float> read(ConstActivation activation, const Shape& shape) {
    return read(activation.f32(), shape);
}
void write(Activation activation, const HostTensor<float>& tensor) {
    write(activation.f32(), tensor);
}

// Writes a gradient where one is wanted (dx entries are null for the model's input).
void write_grad(Activation dst, const HostTensor<float>& grad) {
    if (dst) write(dst, grad);
}

class CpuBackend final : public HostMemoryBackend {
  public:
    Backend kind() const override { return Backend::cpu_reference; }
    std::string device_description() const override {
        return "cpu-ref: the reference ops (plain loops, one thread)";
    }

    std::size_t prepare(const NodeArgs&) override { return 0; }
    std::string describe(int) const override { return ""; }

    void forward(const NodeArgs& a) override;
    void backward(const NodeArgs& a) override;

    void accumulate(float* sum, const float* value, int64_t count) override {
        for (int64_t i = 0; i < count; ++i) sum[i] += value[i];
    }

    std::size_t loss_workspace_bytes(int64_t) const override { return 0; }
    void cross_entropy(const float* logits, const int64_t* labels, int64_t rows, int64_t classes,
                       double label_smoothing, float* loss, float* dlogits, void*, std::size_t) override {
        const HostTensor<float> z = read(logits, Shape{rows, classes});
        const HostTensor<int64_t> y = read(labels, Shape{rows});
        cpu::CrossEntropyOptions<float> options;
        options.label_smoothing = label_smoothing;
        *loss = cpu::cross_entropy(z, y, options)[0];
        if (dlogits != nullptr) {
            write(dlogits, cpu::cross_entropy_backward(z, y, HostTensor<float>(Shape{}, 1.0f), options).dlogits);
        }
    }
    void add_metrics(const float* loss, const float* logits, const int64_t* labels, int64_t rows, int64_t classes,
                     float* loss_sum, int64_t* correct) override {
        *loss_sum += *loss;
        *correct += cpu::top_k_correct(read(logits, Shape{rows, classes}), read(labels, Shape{rows}), 1);
    }

    void optimizer_step(const OptimizerConfig& config, float* params, const float* grads, float* state,
                        int64_t n, int64_t step, int64_t* counters,
                        Activation /*params_copy: f32 only, always null*/) override {
        HostTensor<float> p = read(params, Shape{n});
        const HostTensor<float> g = read(grads, Shape{n});
        const int64_t slots = optimizer_state_slots(config);
        cpu::OptimizerState<float> s;
        s.step = step;
        s.values = slots > 0 ? read(state, Shape{slots, n}) : HostTensor<float>(Shape{0, n});
        switch (config.kind) {
            case OptimizerKind::adam: cpu::adam_step(adam_options(config), p, g, s); break;
            case OptimizerKind::adamw: cpu::adamw_step(adamw_options(config), p, g, s); break;
            case OptimizerKind::sgd: cpu::sgd_step(sgd_options(config), p, g, s); break;
        }
        write(params, p);
        if (slots > 0) write(state, s.values);
        for (int k = 0; k < kStepCounters; ++k) counters[k] += 1;  // backend memory is host memory here
    }
};

void CpuBackend::forward(const NodeArgs& a) {
    const LayerSpec& s = a.node->spec;
    const HostTensor<float> x = read(a.x[0], a.input_shapes[0]);
    switch (s.kind) {
        case LayerKind::conv2d: {
            const HostTensor<float> w = read(a.weight, a.weight_shape);
            const HostTensor<float> b = a.bias ? read(a.bias, Shape{s.out_channels}) : HostTensor<float>();
            write(a.y, cpu::conv2d(x, w, a.bias ? &b : nullptr, s.conv));
            break;
        }
        case LayerKind::batch_norm2d: {
            const int64_t c = s.num_features;
            const HostTensor<float> w = a.weight ? read(a.weight, Shape{c}) : HostTensor<float>();
            const HostTensor<float> b = a.bias ? read(a.bias, Shape{c}) : HostTensor<float>();
            cpu::BatchNorm2dRunningStats<float> running;
            if (a.running_mean != nullptr) {
                running = {read(a.running_mean, Shape{c}), read(a.running_var, Shape{c}), *a.num_batches_tracked};
            }
            auto result = cpu::batch_norm2d(x, a.weight ? &w : nullptr, a.bias ? &b : nullptr,
                                            a.running_mean ? &running : nullptr, batch_norm_options(a));
            write(a.y, result.output);
            auto* saved = static_cast<float*>(a.saved);
            write(saved, result.save_mean);
            write(saved + c, result.save_invstd);
            if (a.running_mean != nullptr) {
                write(a.running_mean, running.running_mean);
                write(a.running_var, running.running_var);
            }
            break;
        }
        case LayerKind::relu: write(a.y, cpu::relu(x)); break;
        case LayerKind::max_pool2d: {
            auto result = cpu::max_pool2d(x, s.max_pool);
            write(a.y, result.output);
            write(static_cast<int64_t*>(a.saved), result.indices);
            break;
        }
        case LayerKind::avg_pool2d: write(a.y, cpu::avg_pool2d(x, s.avg_pool)); break;
        case LayerKind::adaptive_avg_pool2d: write(a.y, cpu::adaptive_avg_pool2d(x, s.output_size)); break;
        case LayerKind::dropout:
        case LayerKind::dropout2d: {
            auto result = s.kind == LayerKind::dropout ? cpu::dropout(x, dropout_options(a))
                                                       : cpu::dropout2d(x, dropout_options(a));
            write(a.y, result.y);
            write(static_cast<uint8_t*>(a.saved), result.mask);
            break;
        }
        case LayerKind::flatten: fail_alias(a); break;
        case LayerKind::linear: {
            const HostTensor<float> w = read(a.weight, a.weight_shape);
            const HostTensor<float> b = a.bias ? read(a.bias, Shape{s.out_features}) : HostTensor<float>();
            write(a.y, cpu::linear(x, w, a.bias ? &b : nullptr));
            break;
        }
        case LayerKind::add: {
            HostTensor<float> sum = x;
            for (std::size_t k = 1; k < a.x.size(); ++k) sum = cpu::add(sum, read(a.x[k], a.input_shapes[k]));
            write(a.y, sum);
            break;
        }
        case LayerKind::concat: {
            std::vector<HostTensor<float>> inputs;
            for (std::size_t k = 0; k < a.x.size(); ++k) inputs.push_back(read(a.x[k], a.input_shapes[k]));
            std::vector<const HostTensor<float>*> pointers;
            for (const auto& input : inputs) pointers.push_back(&input);
            write(a.y, cpu::concat(pointers, 1));
            break;
        }
    }
}

void CpuBackend::backward(const NodeArgs& a) {
    const LayerSpec& s = a.node->spec;
    const HostTensor<float> dy = read(a.dy, a.output_shape);
    const Shape& in_shape = a.input_shapes[0];
    switch (s.kind) {
        case LayerKind::conv2d: {
            const HostTensor<float> x = read(a.x[0], in_shape);
            const auto g = cpu::conv2d_backward(x, read(a.weight, a.weight_shape), dy, a.bias != nullptr, s.conv);
            write_grad(a.dx[0], g.dx);
            write(a.dweight, g.dweight);
            if (a.bias != nullptr) write(a.dbias, g.dbias);
            break;
        }
        case LayerKind::batch_norm2d: {
            const int64_t c = s.num_features;
            const HostTensor<float> w = a.weight ? read(a.weight, Shape{c}) : HostTensor<float>();
            const auto* saved = static_cast<const float*>(a.saved);
            const auto g = cpu::batch_norm2d_backward(read(a.x[0], in_shape), a.weight ? &w : nullptr,
                                                      read(saved, Shape{c}), read(saved + c, Shape{c}), dy,
                                                      batch_norm_options(a).training);
            write_grad(a.dx[0], g.dx);
            if (a.weight != nullptr) write(a.dweight, g.dweight);
            if (a.bias != nullptr) write(a.dbias, g.dbias);
            break;
        }
        case LayerKind::relu: write_grad(a.dx[0], cpu::relu_backward(read(a.y, a.output_shape), dy).dx); break;
        case LayerKind::max_pool2d:
            write_grad(a.dx[0], cpu::max_pool2d_backward(
                                    in_shape, read(static_cast<const int64_t*>(a.saved), a.output_shape), dy).dx);
            break;
        case LayerKind::avg_pool2d: write_grad(a.dx[0], cpu::avg_pool2d_backward(in_shape, dy, s.avg_pool).dx); break;
        case LayerKind::adaptive_avg_pool2d:
            write_grad(a.dx[0], cpu::adaptive_avg_pool2d_backward(in_shape, dy).dx);
            break;
        case LayerKind::dropout:
        case LayerKind::dropout2d: {
            const Shape mask_shape = s.kind == LayerKind::dropout ? in_shape : Shape{in_shape[0], in_shape[1]};
            const HostTensor<uint8_t> mask = read(static_cast<const uint8_t*>(a.saved), mask_shape);
            write_grad(a.dx[0], s.kind == LayerKind::dropout ? cpu::dropout_backward(dy, mask, dropout_options(a)).dx
                                                             : cpu::dropout2d_backward(dy, mask, dropout_options(a)).dx);
            break;
        }
        case LayerKind::flatten: fail_alias(a); break;
        case LayerKind::linear: {
            const auto g = cpu::linear_backward(read(a.x[0], in_shape), read(a.weight, a.weight_shape),
                                                dy, a.bias != nullptr);
            write_grad(a.dx[0], g.dx);
            write(a.dweight, g.dweight);
            if (a.bias != nullptr) write(a.dbias, g.dbias);
            break;
        }
        case LayerKind::add:
            for (const Activation& dx : a.dx) write_grad(dx, dy);
            break;
        case LayerKind::concat: {
            const auto g = cpu::concat_backward(dy, a.input_shapes, 1);
            for (std::size_t k = 0; k < a.dx.size(); ++k) write_grad(a.dx[k], g.dx[k]);
            break;
        }
    }
}

}  // namespace

std::unique_ptr<BackendImpl> make_cpu_reference_backend() {
    return std::make_unique<CpuBackend>();
}

}  // namespace cudacnn::graph::detail
