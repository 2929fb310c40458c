// The graph executor: runs a Graph's training and evaluation steps on the CPU reference ops or on the
// device kernels, with parameters, gradients and optimizer state each in one flat block and every
// activation, gradient and workspace in one arena laid out by a static memory plan.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "cudacnn/graph/memory_plan.hpp"
#include "cudacnn/graph/model.hpp"
#include "cudacnn/io/state_dict.hpp"
#include "cudacnn/ops/optimizer.hpp"

namespace cudacnn::dist {
class Communicator;
}

namespace cudacnn::graph {

struct StepProfile;  // cudacnn/graph/profile.hpp

// cpu: the fast CPU ops (src/cpu_fast: OpenBLAS, threads); cpu_reference: the reference ops (src/cpu, the
// oracle); gpu: the hand-written kernels (and cuDNN/cuBLAS), real or emulated.
enum class Backend { cpu, cpu_reference, gpu };

const char* backend_name(Backend backend);  // "cpu", "cpu-ref", "gpu"

enum class OptimizerKind { adam, adamw, sgd };

struct OptimizerConfig {
    OptimizerKind kind = OptimizerKind::adam;
    double lr = 1e-4;
    double momentum = 0.0;      // sgd
    double weight_decay = 0.0;  // adam / sgd: L2 in the gradient; adamw: decoupled
    double beta1 = 0.9, beta2 = 0.999, eps = 1e-8;
};

// ExecutorOptions::cudnn_workspace_limit_bytes's default: a limit chosen from the device's free memory.
inline constexpr size_t kCudnnWorkspaceAuto = SIZE_MAX;

// --cudnn-workspace-mib's value (negative: auto) as a cudnn_workspace_limit_bytes.
inline size_t cudnn_workspace_limit_from_mib(int64_t mib) {
    return mib < 0 ? kCudnnWorkspaceAuto : static_cast<size_t>(mib) << 20;
}

struct ExecutorOptions {
    Backend backend = Backend::cpu;
    int64_t batch_size = 128;           // the largest batch a step may get
    std::string conv_algo = "auto";     // gpu: auto | cudnn | direct | im2col | implicit | winograd | own | fastest
    // gpu: the arithmetic of the convolutions and matrix products. "fp32": FP32 multiply-adds everywhere.
    // "tf32": cuDNN, cuBLAS and the hand-written GEMMs (linear layers, im2col) round their inputs to TF32 on
    // tensor cores (PyTorch's allow_tf32); storage, sums and every other op stay FP32; the direct kernels
    // compute in FP32 either way. The CPU backends compute in FP32 only.
    std::string precision = "fp32";
    // gpu: where the 4-d activations lie, "nchw" (PyTorch's contiguous_format) or "nhwc" (channels_last,
    // which cuDNN's tensor-core kernels prefer). nhwc: the executor converts the (f32, NCHW) input batch into
    // the layers' format as it casts it, every 4-d activation and gradient is NHWC, and a flatten of a 4-d
    // tensor with more than one pixel converts back to NCHW first (so the flattened order, the linear layers
    // and the checkpoints stay PyTorch's). Convolutions run on cuDNN or the implicit GEMM; concat has no
    // NHWC kernel yet and is refused by name. output() and input_gradient()
    // return NCHW values in either format. Results equal NCHW's up to float rounding of the batch norm sums,
    // except that a dropout folded into a max pooling draws its per-element mask in memory order (as
    // PyTorch's channels_last dropout does): the same distribution, other masks. The CPU backends are NCHW
    // only.
    std::string memory_format = "nchw";
    std::string gemm = "auto";          // gpu: auto (cublas where built, else own) | own | cublas
    // gpu: cuDNN times every algorithm for each layer shape (cudnnFind, once per process and shape) and the
    // fastest deterministic one wins, instead of its heuristics' first choice (torch.backends.cudnn.benchmark).
    bool cudnn_benchmark = false;
    // gpu: the most workspace one cuDNN convolution algorithm may use; faster ones that need more are passed over
    // (--cudnn-workspace-mib; cudnn_conv2d.hpp). kCudnnWorkspaceAuto: an eighth of the device memory free when
    // the executor is made, at least 256 MiB (gpu::resolve_workspace_limit in cuda/conv2d.hpp).
    size_t cudnn_workspace_limit_bytes = kCudnnWorkspaceAuto;
    // gpu: a ReLU whose input is a batch norm's only use runs inside that batch norm's kernels, a ReLU whose
    // only use is a max pooling inside the pooling's kernels, and one whose only use is a dropout inside the
    // dropout's (bit for bit the same results, without writing and reading back the ReLU's tensors). Off with
    // keep_activations and detect_anomaly, which read every layer's own output.
    bool fuse_relu = true;
    // gpu: a dropout or dropout2d whose input is a max pooling's only use (directly, or through a flatten for
    // dropout) runs inside the pooling's kernels, which then write and apply its mask (bit for bit the same masks
    // and results; one kernel each way instead of two or three). A switch of its own beside fuse_relu because it
    // folds a different layer, with its own saved state (the pooling keeps the dropout's mask), so that each
    // fusion can be measured and tested alone. Only with dropout on (under --no-dropout a dropout is an alias
    // anyway); off with keep_activations and detect_anomaly, as fuse_relu.
    bool fuse_dropout = true;
    // gpu: a conv2d whose only use is a batch norm runs without its bias wherever that batch norm normalizes
    // by the batch (training steps; every step without running statistics): the batch mean cancels the bias,
    // so only the running mean needs it, and the batch norm adds it there (gpu::BatchNorm2dRunningStatsView::
    // input_shift). Saves cuDNN's separate bias pass over the conv's output (the hand-written kernels'
    // epilogue add). Gradients are unchanged; outputs, saves and running statistics differ from unfolded runs
    // by float rounding only. Off with keep_activations and detect_anomaly, which read every layer's own
    // output.
    bool fold_conv_bias = true;
    // gpu: in training steps, a conv2d whose forward runs the implicit GEMM in FP32 or bf16 arithmetic (not
    // cuDNN, nor its TF32 kernel) also writes, as it stores its output, that output's per-channel partial
    // statistics, and the batch norm reading it merges them instead of reading the whole output once more for
    // its mean and variance (gpu::batch_norm2d_from_partials): the conv + BN-statistics fusion. The conv's
    // output is bit for bit the same; the batch norm's saves, output and running statistics differ from the
    // unfused run's by float rounding (another summation order). Not with sync_batch_norm, whose statistics
    // are summed across ranks.
    bool fuse_conv_bn_statistics = true;
    int threads = 0;                    // cpu: worker threads, 0 = one per core
    OptimizerConfig optimizer;
    double label_smoothing = 0.0;
    bool dropout = true;                // false: dropout layers pass their input through (--no-dropout)
    uint64_t seed = 0;                  // initial weights and dropout masks
    bool keep_activations = false;      // every layer's output survives the step (output(), cudacnn-viz)
    bool input_gradient = false;        // the backward also writes d loss / d input (input_gradient(), FGSM)
    // gpu: capture each training and evaluation step as a CUDA graph on its second run with a batch size and
    // replay it (one launch instead of one per kernel); results are the same as without (--no-cuda-graph).
    bool cuda_graph = true;
    // Every training step checks itself for a non-finite loss, gradient or parameter (in backend memory, so a
    // CUDA graph does too); the check shows at the next read_metrics() (at once on the CPU backends), which
    // throws naming the step and the first non-finite parameter. detect_anomaly (--detect-anomaly) also copies
    // the input, every layer's output and gradient, the loss and the parameters to the host as each is written
    // and throws at the first non-finite value: slow (a read-back per layer, no CUDA graphs), for diagnosis.
    bool detect_anomaly = false;
    // Data-parallel training (one process per replica, include/cudacnn/dist/communicator.hpp): each training
    // step averages the gradients across the communicator's ranks between the backward and the optimizer step.
    // Not owned; null: a single process. Its memory must be the backend's (MPI: the CPU backends; NCCL: gpu).
    dist::Communicator* communicator = nullptr;
    // With a communicator: training-mode batch norms normalize by the statistics of the whole world's batch
    // (PyTorch's SyncBatchNorm) instead of each rank's own (the default, as in DistributedDataParallel).
    bool sync_batch_norm = false;
};

// What a run of steps added up since the last read_metrics(): the seed's per-epoch numbers.
struct Metrics {
    int64_t batches = 0;
    int64_t samples = 0;
    double loss_sum = 0.0;  // the sum of each batch's mean loss (the seed's running_loss)
    int64_t correct = 0;    // top-1

    double mean_loss() const { return batches > 0 ? loss_sum / static_cast<double>(batches) : 0.0; }
    double accuracy_percent() const { return samples > 0 ? 100.0 * correct / static_cast<double>(samples) : 0.0; }
};

class Executor {
  public:
    Executor(const Graph& graph, const ExecutorOptions& options);
    ~Executor();
    Executor(const Executor&) = delete;
    Executor& operator=(const Executor&) = delete;

    const Graph& graph() const;
    const ExecutorOptions& options() const;
    const MemoryPlan& memory_plan() const;
    // One line each: the device, the planned arena beside the naive total, each conv layer's algorithm.
    std::vector<std::string> describe() const;

    // cudacnn's default initialization (PyTorch's distributions over Philox; parameter k of
    // named_parameters() draws from stream k), BN weight 1, bias 0, running mean 0, var 1; fresh optimizer.
    void initialize(uint64_t seed);

    // The model's state_dict (parameters and buffers by PyTorch's names) and the optimizer's
    // ("exp_avg.<param>", "exp_avg_sq.<param>", "momentum_buffer.<param>", and "step").
    io::StateDict model_state() const;
    void load_model_state(const io::StateDict& state, const std::string& source);
    io::StateDict optimizer_state() const;
    void load_optimizer_state(const io::StateDict& state, const std::string& source);

    // With a communicator: every rank's parameters, buffers, optimizer state and step counts become rank
    // `root`'s (what DistributedDataParallel does as it starts), so that all replicas begin identical.
    void replicate_from(int root);

    void set_learning_rate(double lr);  // a new value makes the training step's CUDA graph be captured anew
    int64_t optimizer_steps() const;
    int64_t cuda_graph_launches() const;  // steps that ran as a replayed CUDA graph

    // Copies a batch of `count` <= batch_size images (count, C, H, W) and labels into the arena (on the GPU
    // two host → device copies, made before the step: train_step and eval_step themselves make none).
    void set_batch(const float* images, const int64_t* labels, int64_t count);
    // For a data pipeline that writes batches into the executor's memory itself (the device pipeline: no host
    // copy per step): where images (batch_size, C, H, W) float32 and labels (batch_size) int64 go, in backend
    // memory, and the stream that work must be queued on (the GPU backend's cudaStream_t; null on the CPU).
    struct InputBuffers {
        float* images;
        int64_t* labels;
        void* stream;
    };
    InputBuffers input_buffers();
    // Declares that the input buffers now hold `count` <= batch_size records. Their labels are not checked
    // (they are in device memory): the pipeline must take them from a validated dataset whose class count is
    // the model's.
    void use_input(int64_t count);

    // Forward in training mode, cross-entropy, backward, optimizer step; `step` numbers the dropout masks.
    // Adds the batch's loss and correct count to the metrics, which stay on the device.
    void train_step(int64_t step);
    // train_step without the optimizer step: the gradients of this batch's mean loss (for gradient checks
    // and tests; gradients() reads them).
    void forward_backward(int64_t step);
    io::StateDict gradients() const;  // by parameter name
    // Forward in evaluation mode (running BN statistics, no dropout); adds to the metrics.
    void eval_step();
    // The metrics accumulated since the last call (the periodic read-back), and zeroes them.
    Metrics read_metrics();
    // The last forward's logits (count, classes), e.g. for a confusion matrix.
    HostTensor<float> logits() const;
    // The last forward's output of graph node `node` (count, ...): needs keep_activations, except for the
    // last node (the logits), whose output always survives.
    HostTensor<float> output(int node) const;
    // eval_step followed by the backward in evaluation mode (running BN statistics, no dropout): the loss's
    // gradients for a fixed model, e.g. with respect to the input for an adversarial example. Adds to the
    // metrics like eval_step; the optimizer is not touched.
    void eval_forward_backward();
    // The last backward's d loss / d input (count, C, H, W): needs input_gradient.
    HostTensor<float> input_gradient() const;

    // Profiling (cudacnn-bench --profile): from start_profile() on, steps run one launch at a time (no CUDA
    // graph), wait for their work, and each part of them is timed (profile.hpp); stop_profile() returns those
    // times and steps run as before. Off, it costs nothing.
    void start_profile();
    StepProfile stop_profile();

  private:
    struct Impl;
    std::unique_ptr<Impl> impl_;
};

}  // namespace cudacnn::graph
