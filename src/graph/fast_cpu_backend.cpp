// The executor on the fast CPU ops (src/cpu_fast): OpenBLAS for convolutions (im2col) and linear layers,
// threaded loops for the rest, every buffer in the executor's arena (nothing allocated per step). Results
// depend on the shapes only, never on the thread count, so a run reproduces bit for bit.
#include <map>
#include <utility>

#include <fmt/format.h>

#include "src/cpu_fast/activation.hpp"
#include "src/cpu_fast/batch_norm.hpp"
#include "src/cpu_fast/conv2d.hpp"
#include "src/cpu_fast/dropout.hpp"
#include "src/cpu_fast/gemm.hpp"
#include "src/cpu_fast/linear.hpp"
#include "src/cpu_fast/loss.hpp"
#include "src/cpu_fast/optimizer.hpp"
#include "src/cpu_fast/pool.hpp"
#include "src/cpu_fast/shape_ops.hpp"
#include "src/graph/backend.hpp"

namespace cudacnn::graph::detail {
namespace {

cpu_fast::LinearShape linear_shape(const NodeArgs& a) {
    return {a.input_shapes[0][0], a.node->spec.in_features, a.node->spec.out_features};
}

// A synchronized batch norm's sums across the data-parallel ranks (host memory: MPI); empty when not synchronized.
cpu_fast::StatisticsReducer statistics_reducer(const NodeArgs& a) {
    if (a.sync_statistics == nullptr) return {};
    dist::Communicator* communicator = a.sync_statistics;
    return [communicator](double* values, int64_t n) { communicator->all_reduce_sum(values, n, nullptr); };
}

class FastCpuBackend final : public HostMemoryBackend {
  public:
    explicit FastCpuBackend(int threads) : workers_(threads) {}

    Backend kind() const override { return Backend::cpu; }
    std::string device_description() const override {
        return fmt::format("cpu: the fast CPU ops, {} thread{}, {}", workers_.count(), workers_.count() == 1 ? "" : "s",
                           cpu_fast::blas_description());
    }

    std::size_t prepare(const NodeArgs& a) override {
        if (a.node->spec.kind != LayerKind::conv2d) return 0;
        const auto key = std::make_pair(a.index, a.input_shapes[0][0]);
        auto it = convs_.find(key);
        if (it == convs_.end()) {
            it = convs_.emplace(key, cpu_fast::Conv2d(conv_geometry(a), workers_)).first;
            descriptions_.emplace(a.index, it->second.description());
        }
        return it->second.workspace_bytes();
    }
    std::string describe(int node_index) const override {
        const auto it = descriptions_.find(node_index);
        return it == descriptions_.end() ? "" : it->second;
    }

    void forward(const NodeArgs& a) override;
    void backward(const NodeArgs& a) override;

    void accumulate(float* sum, const float* value, int64_t count) override {
        cpu_fast::accumulate(sum, value, count, workers_);
    }

    std::size_t loss_workspace_bytes(int64_t rows) const override {
        return cpu_fast::cross_entropy_workspace_bytes(rows);
    }
    void cross_entropy(const float* logits, const int64_t* labels, int64_t rows, int64_t classes,
                       double label_smoothing, float* loss, float* dlogits, void* workspace,
                       std::size_t workspace_bytes) override {
        cpu_fast::cross_entropy_forward(logits, labels, rows, classes, label_smoothing, loss, workspace,
                                        workspace_bytes, workers_);
        if (dlogits != nullptr) {
            cpu_fast::cross_entropy_backward(logits, labels, rows, classes, label_smoothing, dlogits, workers_);
        }
    }
    void add_metrics(const float* loss, const float* logits, const int64_t* labels, int64_t rows, int64_t classes,
                     float* loss_sum, int64_t* correct) override {
        *loss_sum += *loss;
        *correct += cpu_fast::top1_correct(logits, labels, rows, classes, workers_);
    }

    void optimizer_step(const OptimizerConfig& config, float* params, const float* grads, float* state,
                        int64_t n, int64_t step, int64_t* counters,
                        Activation /*params_copy: f32 only, always null*/) override {
        switch (config.kind) {
            case OptimizerKind::adam: cpu_fast::adam_step(adam_options(config), params, grads, state, n, step, workers_); break;
            case OptimizerKind::adamw:
                cpu_fast::adamw_step(adamw_options(config), params, grads, state, n, step, workers_);
                break;
            case OptimizerKind::sgd: cpu_fast::sgd_step(sgd_options(config), params, grads, state, n, step, workers_); break;
        }
        for (int k = 0; k < kStepCounters; ++k) counters[k] += 1;  // backend memory is host memory here
    }

  private:
    const cpu_fast::Conv2d& conv(const NodeArgs& a) const { return convs_.at({a.index, a.input_shapes[0][0]}); }

    cpu_fast::Workers workers_;
    std::map<std::pair<int, int64_t>, cpu_fast::Conv2d> convs_;  // by (node, batch)
    std::map<int, std::string> descriptions_;
};

void FastCpuBackend::forward(const NodeArgs& a) {
    const LayerSpec& s = a.node->spec;
    const Shape& in = a.input_shapes[0];
    const int64_t count = in.numel();
    const cpu_fast::Workers& w = workers_;
    const F32Activations f = f32_activations(a, "fast CPU backend");
    switch (s.kind) {
        case LayerKind::conv2d: conv(a).forward(f.x[0], a.weight, a.bias, f.y, a.workspace); break;
        case LayerKind::batch_norm2d: {
            cpu_fast::BatchNorm2dRunningStatsView running{a.running_mean, a.running_var,
                                                          a.num_batches_tracked ? *a.num_batches_tracked : 0};
            auto* saved = static_cast<float*>(a.saved);
            const cpu_fast::StatisticsReducer reducer = statistics_reducer(a);
            cpu_fast::batch_norm2d(f.x[0], a.weight, a.bias, a.running_mean ? &running : nullptr, f.y, saved,
                                   saved + s.num_features, in, batch_norm_options(a), w, reducer ? &reducer : nullptr);
            break;
        }
        case LayerKind::relu: cpu_fast::relu_forward(f.x[0], f.y, count, w); break;
        case LayerKind::max_pool2d:
            cpu_fast::max_pool2d(f.x[0], f.y, static_cast<int64_t*>(a.saved), in, s.max_pool, w);
            break;
        case LayerKind::avg_pool2d: cpu_fast::avg_pool2d(f.x[0], f.y, in, s.avg_pool, w); break;
        case LayerKind::adaptive_avg_pool2d: cpu_fast::adaptive_avg_pool2d(f.x[0], f.y, in, s.output_size, w); break;
        case LayerKind::dropout:
            cpu_fast::dropout_forward(f.x[0], f.y, static_cast<uint8_t*>(a.saved), count, dropout_options(a), w);
            break;
        case LayerKind::dropout2d:
            cpu_fast::dropout2d_forward(f.x[0], f.y, static_cast<uint8_t*>(a.saved), in, dropout_options(a), w);
            break;
        case LayerKind::flatten: fail_alias(a); break;
        case LayerKind::linear: cpu_fast::linear_forward(f.x[0], a.weight, a.bias, f.y, linear_shape(a), w); break;
        case LayerKind::add:
            cpu_fast::add(f.x[0], f.x[1], f.y, count, w);
            for (std::size_t k = 2; k < f.x.size(); ++k) cpu_fast::accumulate(f.y, f.x[k], count, w);
            break;
        case LayerKind::concat: cpu_fast::concat_forward(f.x, a.input_shapes, 1, f.y, w); break;
    }
}

void FastCpuBackend::backward(const NodeArgs& a) {
    const LayerSpec& s = a.node->spec;
    const Shape& in = a.input_shapes[0];
    const int64_t count = in.numel();
    const cpu_fast::Workers& w = workers_;
    const F32Activations f = f32_activations(a, "fast CPU backend");
    float* dx = f.dx[0];
    const bool has_parameters = s.kind == LayerKind::conv2d || s.kind == LayerKind::linear ||
                                s.kind == LayerKind::batch_norm2d;
    if (dx == nullptr && !has_parameters && s.kind != LayerKind::add && s.kind != LayerKind::concat) return;
    switch (s.kind) {
        case LayerKind::conv2d: conv(a).backward(f.x[0], a.weight, f.dy, dx, a.dweight, a.dbias, a.workspace); break;
        case LayerKind::batch_norm2d: {
            const auto* saved = static_cast<const float*>(a.saved);
            const cpu_fast::StatisticsReducer reducer = statistics_reducer(a);
            cpu_fast::batch_norm2d_backward(f.x[0], a.weight, saved, saved + s.num_features, f.dy, dx, a.dweight,
                                            a.dbias, in, batch_norm_options(a).training, w,
                                            reducer ? &reducer : nullptr);
            break;
        }
        case LayerKind::relu: cpu_fast::relu_backward(f.y, f.dy, dx, count, w); break;
        case LayerKind::max_pool2d:
            cpu_fast::max_pool2d_backward(static_cast<const int64_t*>(a.saved), f.dy, dx, in, s.max_pool, w);
            break;
        case LayerKind::avg_pool2d: cpu_fast::avg_pool2d_backward(f.dy, dx, in, s.avg_pool, w); break;
        case LayerKind::adaptive_avg_pool2d: cpu_fast::adaptive_avg_pool2d_backward(f.dy, dx, in, s.output_size, w); break;
        case LayerKind::dropout:
            cpu_fast::dropout_backward(f.dy, static_cast<const uint8_t*>(a.saved), dx, count, dropout_options(a), w);
            break;
        case LayerKind::dropout2d:
            cpu_fast::dropout2d_backward(f.dy, static_cast<const uint8_t*>(a.saved), dx, in, dropout_options(a), w);
            break;
        case LayerKind::flatten: fail_alias(a); break;
        case LayerKind::linear:
            cpu_fast::linear_backward(f.x[0], a.weight, f.dy, dx, a.dweight, a.dbias, linear_shape(a), w);
            break;
        case LayerKind::add:
            for (float* d : f.dx) {
                if (d != nullptr) std::copy(f.dy, f.dy + count, d);
            }
            break;
        case LayerKind::concat: cpu_fast::concat_backward(f.dy, a.input_shapes, 1, f.dx, w); break;
    }
}

}  // namespace

std::unique_ptr<BackendImpl> make_fast_cpu_backend(int threads) {
    return std::make_unique<FastCpuBackend>(threads);
}

}  // namespace cudacnn::graph::detail
