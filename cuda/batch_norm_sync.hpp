// Synchronized batch norm (PyTorch's SyncBatchNorm) on the device: batch_norm2d in training mode whose
// statistics are those of the whole data-parallel world's batch. The kernels run in phases, and between two
// phases the caller sums a small buffer of doubles across the ranks (dist::Communicator::all_reduce_sum, on
// the same stream); the fast CPU path's src/cpu_fast/batch_norm.cpp defines the same sums.
//
// Forward:  statistics → [all-reduce C + 1: Σx per channel, then the count M] → squares → [all-reduce C:
//           Σ(x − mean)²] → normalize (save_mean, save_invstd, running statistics, y; a fused ReLU
//           optionally).
// Backward: gradient sums → [all-reduce 2·C + 1: Σdy, Σdy·x̂ per channel, then M] → dx. dweight and dbias are
//           this rank's own sums (written before the reduction): the data-parallel gradient average treats
//           them like every other gradient.
// Every sum is in double, block partials merged in a fixed tree (deterministic, no atomics). With no other
// rank (an identity reduction) the results are batch_norm2d's within float rounding.
//
// Activations (x, y, relu_y, dy, dx) are float or bf16 (T below; everything else float, as batch_norm2d's
// bf16 overloads): the kernels widen each loaded value exactly and round each y and dx element once, so a
// bf16 call computes the same sums and statistics as the float call on the widened values.
//
// NHWC (channels_last): the argument structs' last member, format (default nchw), applies to x, y, relu_y,
// dy and dx (shapes still (N, C, H, W)); everything else is as for NCHW, and so are the phases, their sums
// and the all-reduces. The reductions take batch_norm2d's NHWC layout (cuda/batch_norm.hpp: blocks of
// channel groups × pixel rows, a warp reading consecutive channels, a fixed row tree), in double; the merge
// adds up to 1024 partials a channel in a fixed order; normalize and dx are element-wise, c = offset % C.

#include <cuda_runtime_api.h>

#include <cstddef>
#include <cstdint>
#include <functional>

#include "cuda/batch_norm.hpp"
#include "cudacnn/memory_format.hpp"
#include "cudacnn/ops/batch_norm.hpp"
#include "cudacnn/tensor.hpp"

namespace cudacnn::gpu {

// A phase's sums, in the workspace (device memory): what the caller all-reduces before the next phase.
struct BatchNormSyncSums {
    double* data = nullptr;
    int64_t count = 0;  // doubles
};

// Sums `count` doubles in device memory across the ranks, in place, queued on the kernels' stream.
using BatchNormSyncReduce = std::function<void(double* data, int64_t count)>;

// Bytes of device workspace both directions need for this input shape, in either memory format; a multiple
// of 16. The same workspace must be passed to every phase of one direction, and its sums must not be
// touched between phases except by the reduction.
size_t batch_norm2d_sync_workspace_bytes(const Shape& input_shape);

// One synchronized forward: batch_norm2d's arguments (training mode only: options.training must be true),
// and relu for batch_norm2d_relu's fused ReLU; activations of T = float or bf16 (gpu::bf16, cuda/bf16.cuh).
template <class T>
struct BatchNorm2dSyncForwardT {
    const T* x = nullptr;                            // (N, C, H, W), this rank's part of the batch
    const float* weight = nullptr;                   // (C) or nullptr (affine=False)
    const float* bias = nullptr;                     // (C) or nullptr
    BatchNorm2dRunningStatsView* running = nullptr;  // nullptr: track_running_stats=False
    T* y = nullptr;
    float* save_mean = nullptr;    // (C): the world's mean
    float* save_invstd = nullptr;  // (C): 1 / sqrt(the world's biased variance + eps)
    Shape input_shape;
    cpu::BatchNorm2dOptions options;
    bool relu = false;
    void* workspace = nullptr;
    size_t workspace_bytes = 0;
    cudaStream_t stream = nullptr;
    MemoryFormat format = MemoryFormat::nchw;  // of x and y
};
using BatchNorm2dSyncForward = BatchNorm2dSyncForwardT<float>;

// The phases below are templates on T defined in cuda/batch_norm_sync.cu for T = float and bf16 only.
//
// Phase 1: validates like batch_norm2d and writes Σx per channel and this rank's M (C + 1 doubles).
template <class T>
BatchNormSyncSums batch_norm2d_sync_statistics(const BatchNorm2dSyncForwardT<T>& args);
// Phase 2, after phase 1's sums were all-reduced: Σ(x − mean)² per channel about the world's mean (C
// doubles).
template <class T>
BatchNormSyncSums batch_norm2d_sync_squares(const BatchNorm2dSyncForwardT<T>& args);
// Phase 3, after phase 2's sums were all-reduced: the saves, the running statistics (momentum, or the
// cumulative factor; unbiased variance over the world's M − 1; increments running->num_batches_tracked) and
// y.
template <class T>
void batch_norm2d_sync_normalize(const BatchNorm2dSyncForwardT<T>& args);
// The three phases with `all_reduce` between them.
template <class T>
void batch_norm2d_sync(const BatchNorm2dSyncForwardT<T>& args, const BatchNormSyncReduce& all_reduce);

// One synchronized backward (training mode): batch_norm2d_backward's arguments, and relu_y = the forward's y
// for batch_norm2d_relu_backward (nullptr: no fused ReLU); activations of T = float or bf16.
template <class T>
struct BatchNorm2dSyncBackwardT {
    const T* x = nullptr;
    const T* relu_y = nullptr;
    const float* weight = nullptr;  // (C) or nullptr: 1
    const float* save_mean = nullptr;
    const float* save_invstd = nullptr;
    const T* dy = nullptr;
    T* dx = nullptr;           // nullptr: only dweight and dbias wanted (the network's first layer)
    float* dweight = nullptr;  // (C) or nullptr
    float* dbias = nullptr;    // (C) or nullptr
    Shape input_shape;
    void* workspace = nullptr;
    size_t workspace_bytes = 0;
    cudaStream_t stream = nullptr;
    MemoryFormat format = MemoryFormat::nchw;  // of x, relu_y, dy and dx
};
using BatchNorm2dSyncBackward = BatchNorm2dSyncBackwardT<float>;

// Phase 1: Σdy and Σdy·x̂ per channel, then this rank's M (2·C + 1 doubles); writes dweight = Σdy·x̂ and
// dbias = Σdy of this rank.
template <class T>
BatchNormSyncSums batch_norm2d_sync_backward_sums(const BatchNorm2dSyncBackwardT<T>& args);
// Phase 2, after phase 1's sums were all-reduced: dx = γ · invstd · (dy − Σdy / M − x̂ · Σdy·x̂ / M), the
// world's sums and M.
template <class T>
void batch_norm2d_sync_backward_dx(const BatchNorm2dSyncBackwardT<T>& args);
// Both phases with `all_reduce` between them; without dx, phase 1 alone and no reduction (as the fast CPU
// path: every rank's graph is the same, so every rank skips it).
template <class T>
void batch_norm2d_sync_backward(const BatchNorm2dSyncBackwardT<T>& args,
                                const BatchNormSyncReduce& all_reduce);

}  // namespace cudacnn::gpu
