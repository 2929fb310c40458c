// The executor's three implementations of each node's forward and backward: the CPU reference ops
// (cpu_backend.cpp), the fast CPU ops (fast_cpu_backend.cpp) and the device kernels (gpu_backend.cpp). Both work on raw pointers that the executor
// hands out from its arena and flat blocks, so that the executor's bookkeeping is written once.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <type_traits>
#include <vector>

#include "cuda/nonfinite.hpp"
#include "cudacnn/device.hpp"
#include "cudacnn/dist/communicator.hpp"
#include "cudacnn/graph/executor.hpp"
#include "cudacnn/graph/model.hpp"
#include "cudacnn/memory_format.hpp"
#include "cudacnn/ops/batch_norm.hpp"
#include "cudacnn/ops/conv2d.hpp"
#include "cudacnn/ops/dropout.hpp"
#include "cudacnn/tensor.hpp"

namespace cudacnn::graph::detail {

// One activation of a pass (an input, the output, or a gradient of either) in the executor's arena: where it
// is and its element type (f32, or bf16 under --precision bf16: docs/bf16-nhwc-plan.md). Backends read it
// through as<T>() or f32(), which check the type, so that no kernel ever reads bf16 bits as floats; a backend
// that computes f32 only says so by calling f32(). Void is void (written) or const void (read only).
template <class Void>
struct ActivationRef {
    Void* data = nullptr;
    DType dtype = DType::f32;

    ActivationRef() = default;
    ActivationRef(Void* data_, DType dtype_) : data(data_), dtype(dtype_) {}
    // A written activation is also readable (the fused passes read their own output back).
    template <class Other, class = std::enable_if_t<std::is_const_v<Void> && !std::is_same_v<Other, Void>>>
    ActivationRef(const ActivationRef<Other>& written) : data(written.data), dtype(written.dtype) {}

    template <class T>
    using Pointer = std::conditional_t<std::is_const_v<Void>, const T*, T*>;

    // data as T (const T for a read-only view), after checking that T is its dtype; null stays null.
    template <class T>
    Pointer<T> as() const {
        if (data != nullptr && dtype_of<T>() != dtype) throw_dtype_mismatch(dtype, dtype_of<T>());
        return static_cast<Pointer<T>>(data);
    }
    Pointer<float> f32() const { return as<float>(); }
    explicit operator bool() const { return data != nullptr; }
};
using Activation = ActivationRef<void>;
using ConstActivation = ActivationRef<const void>;

// What one node reads and writes in one pass. Shapes include the batch dimension.
struct NodeArgs {
    int index = 0;
    const Node* node = nullptr;
    std::vector<Shape> input_shapes;
    Shape output_shape;
    std::vector<ConstActivation> x;  // inputs
    Activation y;
    ConstActivation dy;              // backward: the gradient of y
    std::vector<Activation> dx;      // backward: per input, or null where no gradient is needed
    Shape weight_shape;  // the layer's weight state entry, when it has one: conv (OC, IC/G, KH, KW), linear (out, in)
    const float* weight = nullptr;
    // Activations in another type than f32 (--precision bf16): the weight in that type, which the
    // convolutions and matrix products read (the executor rewrites it after each optimizer step); else null.
    const void* weight_copy = nullptr;
    const float* bias = nullptr;
    float* dweight = nullptr;
    float* dbias = nullptr;
    float* running_mean = nullptr;  // batch norm with running statistics
    float* running_var = nullptr;
    // Batch norm with running statistics: the count before this pass (host memory, read only: the momentum=None
    // factor depends on it); the executor counts the pass itself, so that a replayed step counts too.
    const int64_t* num_batches_tracked = nullptr;
    void* saved = nullptr;  // kept from forward to backward: see saved_bytes()
    void* workspace = nullptr;
    std::size_t workspace_bytes = 0;
    bool training = true;
    // A fused ReLU (only for a backend whose fuses_relu() is true): batch_norm2d applies it after itself,
    // max_pool2d and dropout before themselves; the first two's backwards then read y, the fused output, the
    // dropout's its mask (which then also records where the ReLU passes gradients).
    bool relu = false;
    // A dropout folded into this max pooling (only for a backend whose folds_dropouts() is true): the dropout's
    // node (its kind and p) and its mask, which the pooling's forward writes and its backward reads; the
    // dropout_stream_base below is then the dropout's, so that the masks are those it would draw itself. With a
    // fused ReLU too, the pooling's backward reads neither y nor the ReLU's rule from it: its indices hold that.
    const Node* dropout = nullptr;
    uint8_t* dropout_mask = nullptr;
    // A conv2d's bias folded into the batch norm that is its only use (ExecutorOptions::fold_conv_bias, for a
    // backend whose folds_conv_bias() is true), in a pass where that batch norm normalizes by the batch: the
    // conv's forward runs without its bias (skip_bias; its backward is unchanged, dbias = Σ dy), and the
    // batch norm gets the bias as input_shift (C), which only its running mean's update adds.
    bool skip_bias = false;
    const float* input_shift = nullptr;
    // Conv → batch norm statistics (ExecutorOptions::fuse_conv_bn_statistics, where the backend's
    // conv_bn_partials() offers them): in a training pass, a conv2d's forward also writes per-channel partial
    // statistics of its output here as it stores it, and the batch norm reading that output takes its batch
    // statistics from them instead of reading it once more (gpu::batch_norm2d_from_partials). Both nodes get
    // the same buffer; null otherwise.
    void* bn_partials = nullptr;
    std::size_t bn_partials_bytes = 0;
    int bn_partials_per_channel = 0;
    // A training-mode batch norm of a data-parallel run with synchronized statistics (ExecutorOptions::
    // sync_batch_norm): its sums over the batch are summed across this communicator's ranks. Null otherwise.
    dist::Communicator* sync_statistics = nullptr;
    uint64_t seed = 0;
    // Dropout's Philox stream is dropout_stream_base + step · dropout_stream_stride, with the step on the host
    // (`step`, the CPU backend) or in device memory (step_counters[kDropoutStepCounter], the GPU backend, so
    // that a captured step draws new masks at each replay).
    uint64_t dropout_stream_base = 0;
    uint64_t dropout_stream_stride = 0;
    int64_t step = 0;
    const int64_t* step_counters = nullptr;
};

// The executor's step counters, in backend memory: the optimizer steps taken so far (Adam's bias corrections,
// SGD's first step) and the dropout step of the next training pass. optimizer_step() advances both.
constexpr int kOptimizerStepCounter = 0;
constexpr int kDropoutStepCounter = 1;
constexpr int kStepCounters = 2;

// The bytes a node keeps from its forward for its backward: batch norm's mean and 1/std (2·C floats), max
// pooling's argmax (int64 per output), dropout's mask (a byte per unit). A backend may save less (its own
// saved_bytes).
std::size_t saved_bytes(const Node& node, const std::vector<Shape>& input_shapes, const Shape& output_shape);

// Profiling (Executor::start_profile): a start and a stop mark around queued work, read once the work is done
// (after synchronize()); start and stop may be marked again after that.
class Stopwatch {
  public:
    virtual ~Stopwatch() = default;
    virtual void start() = 0;
    virtual void stop() = 0;
    virtual double elapsed_us() = 0;
};

class BackendImpl {
  public:
    virtual ~BackendImpl() = default;
    virtual Backend kind() const = 0;
    virtual std::string device_description() const = 0;

    // Memory the executor lays its arena and flat blocks in; zero-filled.
    virtual std::shared_ptr<void> allocate(std::size_t bytes) = 0;
    virtual void copy_from_host(void* dst, const void* src, std::size_t bytes) = 0;
    virtual void copy_to_host(void* dst, const void* src, std::size_t bytes) = 0;
    virtual void zero(void* dst, std::size_t bytes) = 0;

    // Called once per (node, batch) before the node runs with that batch: chooses algorithms and returns
    // the workspace bytes its forward and its backward need.
    virtual std::size_t prepare(const NodeArgs& args) = 0;
    // The bytes NodeArgs::saved holds for the node: detail::saved_bytes, unless the backend saves less (the
    // GPU backend's max pooling: a byte per argmax).
    virtual std::size_t saved_bytes(const Node& node, const std::vector<Shape>& input_shapes,
                                    const Shape& output_shape) const {
        return detail::saved_bytes(node, input_shapes, output_shape);
    }
    virtual std::string describe(int node_index) const = 0;  // "" when there is nothing to say
    // The partial statistics a conv2d's forward can write for the batch norm after it
    // (NodeArgs::bn_partials), for this node and batch once prepare() has seen them: their bytes and count
    // per channel, or zeros where its forward cannot (the GPU backend: only the implicit GEMM's FP32 and bf16
    // kernels can).
    struct BnPartials {
        std::size_t bytes = 0;
        int per_channel = 0;
    };
    virtual BnPartials conv_bn_partials(const NodeArgs& /*conv*/) const { return {}; }

    virtual void forward(const NodeArgs& args) = 0;
    virtual void backward(const NodeArgs& args) = 0;
    virtual void accumulate(float* sum, const float* value, int64_t count) = 0;  // sum += value
    // The same for activations (gradients of a tensor several layers read), in their type.
    virtual void accumulate_activations(Activation sum, ConstActivation value, int64_t count) {
        accumulate(sum.f32(), value.f32(), count);
    }

    // The element type of every activation (layer inputs, outputs and their gradients): f32, or where a
    // backend computes them so, bf16 (the GPU backend's --precision bf16). The executor casts at the edges
    // (cast() below), so a layer's activations all share this type.
    virtual DType activation_dtype() const { return DType::f32; }
    // dst = src, n elements converted between f32 and activation_dtype(); queued like a kernel.
    virtual void cast(ConstActivation src, Activation dst, int64_t n);
    // Where every 4-d activation lies (ExecutorOptions::memory_format): NCHW, or NHWC where the backend
    // computes so (the GPU backend). Then the executor converts the NCHW input batch (convert_input) and a
    // flatten of a 4-d tensor with more than one pixel runs as a node: its forward converts NHWC to NCHW, its
    // backward NCHW to NHWC.
    virtual MemoryFormat memory_format() const { return MemoryFormat::nchw; }
    // dst (shape, activation_dtype(), memory_format()) = src (shape, f32, NCHW): the input batch as the
    // layers read it; queued like a kernel.
    virtual void convert_input(ConstActivation src, Activation dst, const Shape& shape) {
        cast(src, dst, shape.numel());
    }

    virtual std::size_t loss_workspace_bytes(int64_t rows) const = 0;
    // Mean cross-entropy into *loss and, when dlogits is not null, its gradient with respect to the logits.
    virtual void cross_entropy(const float* logits, const int64_t* labels, int64_t rows, int64_t classes,
                               double label_smoothing, float* loss, float* dlogits, void* workspace,
                               std::size_t workspace_bytes) = 0;
    // loss_sum += *loss; correct += the batch's top-1 hits.
    virtual void add_metrics(const float* loss, const float* logits, const int64_t* labels, int64_t rows,
                             int64_t classes, float* loss_sum, int64_t* correct) = 0;
    // One step over the whole flat parameter block; state holds `slots` arrays of n floats. `step` is the
    // optimizer steps taken so far (as counters[kOptimizerStepCounter], which the GPU backend reads instead);
    // afterwards every step counter moves on by one. params_copy: where activation_dtype() is not f32, the
    // layers' copy of the parameters in that type (NodeArgs::weight_copy), which the step rewrites from the
    // updated values (null in f32).
    virtual void optimizer_step(const OptimizerConfig& config, float* params, const float* grads,
                                float* state, int64_t n, int64_t step, int64_t* counters,
                                Activation params_copy) = 0;
    // Marks *step (read from backend memory) in `record` if `values` (n floats) holds a NaN or an infinity and
    // the record holds no earlier step: gpu::record_nonfinite's rule. Queued like a kernel; reads only.
    virtual void record_nonfinite(const float* values, int64_t n, const int64_t* step,
                                  gpu::NonfiniteRecord* record) = 0;
    virtual void synchronize() = 0;
    virtual void* stream_handle() { return nullptr; }  // the GPU backend's cudaStream_t, where all its work goes

    // A stopwatch for profiling and what it reads: the host clock here (the CPU backends' work is done when a
    // call returns); the GPU backend's records CUDA events on its stream.
    virtual std::unique_ptr<Stopwatch> make_stopwatch();
    virtual const char* stopwatch_clock() const { return "the host clock"; }

    // Whether forward and backward honour NodeArgs::relu (fused ReLUs; the GPU backend).
    virtual bool fuses_relu() const { return false; }
    // Whether a max pooling's forward and backward honour NodeArgs::dropout (folded dropouts; the GPU backend).
    virtual bool folds_dropouts() const { return false; }
    // Whether forward honours NodeArgs::skip_bias and input_shift (folded conv biases; the GPU backend).
    virtual bool folds_conv_bias() const { return false; }

    // CUDA graphs (the GPU backend): whether this backend can capture a step, and capturing and replaying one.
    virtual bool can_capture() const { return false; }
    virtual CudaGraph capture(const std::function<void()>& enqueue);
    virtual void replay(const CudaGraph& graph);
};

// The two CPU backends' memory: host memory, aligned, zero-filled; copies are memcpy and nothing is queued.
class HostMemoryBackend : public BackendImpl {
  public:
    std::shared_ptr<void> allocate(std::size_t bytes) override;
    void copy_from_host(void* dst, const void* src, std::size_t bytes) override;
    void copy_to_host(void* dst, const void* src, std::size_t bytes) override;
    void zero(void* dst, std::size_t bytes) override;
    void record_nonfinite(const float* values, int64_t n, const int64_t* step,
                          gpu::NonfiniteRecord* record) override {
        gpu::record_nonfinite_host(values, n, step, record);
    }
    void synchronize() override {}
};

std::unique_ptr<BackendImpl> make_cpu_reference_backend();
// threads <= 0: one per core.
std::unique_ptr<BackendImpl> make_fast_cpu_backend(int threads);
// Throws Error, saying why, when there is no GPU (the emu flavour always has its emulated one), or naming the
// option when conv_algo, precision or gemm is not one of its choices.
std::unique_ptr<BackendImpl> make_gpu_backend(const ExecutorOptions& options);

// A pass's activations as floats, for code that computes f32 only (the CPU backends; the GPU backend's f32
// passes). Throws Error naming the layer and `backend` when one of them is of another type.
struct F32Activations {
    std::vector<const float*> x;
    float* y = nullptr;
    const float* dy = nullptr;
    std::vector<float*> dx;
};
F32Activations f32_activations(const NodeArgs& args, const char* backend);

// A flatten shares its input's memory and never reaches a backend; this says so if it ever does.
[[noreturn]] void fail_alias(const NodeArgs& args);

// A conv2d node's geometry at this pass's batch size.
cpu::Conv2dGeometry conv_geometry(const NodeArgs& args);

// A dropout or batch norm node's settings for this pass, as the reference ops and kernels take them.
cpu::DropoutOptions dropout_options(const NodeArgs& args);
cpu::BatchNorm2dOptions batch_norm_options(const NodeArgs& args);

int64_t optimizer_state_slots(const OptimizerConfig& config);
cpu::SgdOptions sgd_options(const OptimizerConfig& config);
cpu::AdamOptions adam_options(const OptimizerConfig& config);
cpu::AdamWOptions adamw_options(const OptimizerConfig& config);

}  // namespace cudacnn::graph::detail
