// batch_norm2d kernels (statistics, finalize, normalize; backward sums and dx) and their launchers.
// Per-channel reductions are split over a few blocks and merged in a fixed order: deterministic, no atomics.
#include "cuda/batch_norm.hpp"

#include <cmath>

#include "cuda/batch_norm_common.cuh"
#include "cuda/elementwise.cuh"
#include "cuda/launch.cuh"
#include "cuda/reduce.cuh"
#include "cudacnn/error.hpp"

namespace cudacnn::gpu {

namespace kernels {

constexpr unsigned kFullMask = 0xffffffffu;

// Welford's running (count, mean, M2) and Chan's merge. No default member initializers: a __shared__ array
// of it must be trivially constructible.
struct Welford {
    float mean, m2;
    int count;

    __device__ static Welford empty() { return {0.0f, 0.0f, 0}; }

    __device__ void add(float value) {
        ++count;
        const float delta = value - mean;
        mean += delta / static_cast<float>(count);
        m2 += delta * (value - mean);
    }

    __device__ void merge(const Welford& b) {
        if (b.count == 0) return;
        if (count == 0) {
            *this = b;
            return;
        }
        const int total = count + b.count;
        const float delta = b.mean - mean;
        const float b_share = static_cast<float>(b.count) / static_cast<float>(total);
        mean += delta * b_share;
        m2 += b.m2 + delta * delta * static_cast<float>(count) * b_share;
        count = total;
    }

    __device__ Welford shfl_down(int offset) const {
        return {__shfl_down_sync(kFullMask, mean, offset), __shfl_down_sync(kFullMask, m2, offset),
                __shfl_down_sync(kFullMask, count, offset)};
    }
};

// The two sums of the backward: Σ dy and Σ dy · (x − mean).
struct GradSums {
    float dy, dy_xmu;

    __device__ static GradSums empty() { return {0.0f, 0.0f}; }
    __device__ void merge(const GradSums& b) { dy += b.dy, dy_xmu += b.dy_xmu; }
    __device__ GradSums shfl_down(int offset) const {
        return {__shfl_down_sync(kFullMask, dy, offset), __shfl_down_sync(kFullMask, dy_xmu, offset)};
    }
};

// Partials live in two (C, S) arrays one after the other: the first and second field of each block's result.
__device__ inline void store_partial(float* partials, const BnDims& d, int channel, int split, float first,
                                     float second) {
    partials[channel * d.splits + split] = first;
    partials[(d.c + channel) * d.splits + split] = second;
}

// Lane s loads partial s of the channel as make(first, second, s) and the warp merges them in a fixed tree;
// lane 0 ends with the channel's total.
template <class Acc, class Make>
__device__ Acc merge_partials(const float* partials, const BnDims& d, int channel, Make make) {
    const int lane = threadIdx.x % kBnWarp;
    Acc acc = Acc::empty();
    if (lane < d.splits) {
        acc = make(partials[channel * d.splits + lane], partials[(d.c + channel) * d.splits + lane], lane);
    }
    return reduce::warp_reduce(acc);
}

// Block (s, c): Welford over its slice of channel c, shifted by the channel's first value (x[0, c, 0, 0])
// so that a large common offset does not cost the mean its low bits. partials: mean (C, S) then M2 (C, S).
__global__ void batch_norm_stats_kernel(const float* x, float* partials, BnDims d) {
    const int split = blockIdx.x, channel = blockIdx.y;
    const float pivot = x[static_cast<int64_t>(channel) * d.hw];
    Welford acc = Welford::empty();
    for_each_in_slice(d, channel, slice_begin(d, split), slice_end(d, split),
                      [&](int64_t offset) { acc.add(x[offset] - pivot); });
    acc = reduce::block_reduce(acc);
    if (threadIdx.x == 0) store_partial(partials, d, channel, split, acc.mean, acc.m2);
}

// One warp per channel merges the S partials, lane s holding partial s (its count follows from the slice).
// momentum_factor < 0: no running statistics to update.
__global__ void batch_norm_finalize_kernel(const float* x, const float* partials, BnDims d, float eps,
                                           float momentum_factor, float* running_mean, float* running_var,
                                           float* save_mean, float* save_invstd) {
    const int channel = warp_row();
    if (channel >= d.c) return;  // whole warps only
    const Welford acc = merge_partials<Welford>(partials, d, channel, [&](float mean, float m2, int split) {
        return Welford{mean, m2, max(slice_end(d, split) - slice_begin(d, split), 0)};
    });
    if (threadIdx.x % kBnWarp != 0) return;
    const float mean = x[static_cast<int64_t>(channel) * d.hw] + acc.mean;  // undo the pivot shift
    const float var = acc.m2 / static_cast<float>(d.count);                 // biased: normalizes this batch
    save_mean[channel] = mean;
    save_invstd[channel] = 1.0f / sqrtf(var + eps);
    if (momentum_factor >= 0.0f) {
        const float unbiased = acc.m2 / static_cast<float>(d.count - 1);
        running_mean[channel] = (1.0f - momentum_factor) * running_mean[channel] + momentum_factor * mean;
        running_var[channel] = (1.0f - momentum_factor) * running_var[channel] + momentum_factor * unbiased;
    }
}

// Evaluation: the saved statistics are the running ones.
__global__ void batch_norm_eval_stats_kernel(const float* running_mean, const float* running_var,
                                             int channels, float eps, float* save_mean, float* save_invstd) {
    const int c = blockIdx.x * blockDim.x + threadIdx.x;
    if (c >= channels) return;
    save_mean[c] = running_mean[c];
    save_invstd[c] = 1.0f / sqrtf(running_var[c] + eps);
}

// relu: a following ReLU is fused in (its rule applied before the store).
__global__ void batch_norm_normalize_kernel(const float* x, const float* mean, const float* invstd,
                                            const float* weight, const float* bias, float* y, int64_t total,
                                            int channels, int hw, bool relu) {
    const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
    for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < total; i += stride) {
        const int c = (static_cast<int>(i) / hw) % channels;
        y[i] = normalized_value(x[i], mean[c], invstd[c], weight, bias, c, relu);
    }
}

// Block (s, c): Σ dy and Σ dy · (x − mean) over its slice. partials: Σ dy (C, S) then Σ dy · (x − mean) (C,
// S).
__global__ void batch_norm_grad_sums_kernel(const float* x, const float* dy, const float* relu_y,
                                            const float* save_mean, float* partials, BnDims d) {
    const int split = blockIdx.x, channel = blockIdx.y;
    const float mean = save_mean[channel];
    GradSums acc = GradSums::empty();
    for_each_in_slice(d, channel, slice_begin(d, split), slice_end(d, split), [&](int64_t offset) {
        const float g = incoming_gradient(dy, relu_y, offset);
        acc.dy += g;
        acc.dy_xmu += g * (x[offset] - mean);
    });
    acc = reduce::block_reduce(acc);
    if (threadIdx.x == 0) store_partial(partials, d, channel, split, acc.dy, acc.dy_xmu);
}

// One warp per channel adds the S partials; totals: Σ dy (C) then Σ dy · x̂ (C), for the dx kernel.
__global__ void batch_norm_grad_finalize_kernel(const float* partials, const float* save_invstd, BnDims d,
                                                float* totals, float* dweight, float* dbias) {
    const int channel = warp_row();
    if (channel >= d.c) return;  // whole warps only
    const GradSums acc = merge_partials<GradSums>(partials, d, channel, [](float dy, float dy_xmu, int) {
        return GradSums{dy, dy_xmu};
    });
    if (threadIdx.x % kBnWarp != 0) return;
    const float sum_dy_xhat = acc.dy_xmu * save_invstd[channel];
    totals[channel] = acc.dy;
    totals[d.c + channel] = sum_dy_xhat;
    if (dbias != nullptr) dbias[channel] = acc.dy;
    if (dweight != nullptr) dweight[channel] = sum_dy_xhat;
}

// training: dx = γ · invstd · (dy − Σdy / M − x̂ · Σ(dy · x̂) / M); otherwise dx = γ · invstd · dy
// (totals is then unused and may be nullptr).
__global__ void batch_norm_dx_kernel(const float* x, const float* dy, const float* relu_y, const float* weight,
                                     const float* save_mean, const float* save_invstd, const float* totals,
                                     float* dx, int64_t total, int channels, int hw, int count,
                                     bool training) {
    const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
    const float inv_count = 1.0f / static_cast<float>(count);
    for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < total; i += stride) {
        const int c = (static_cast<int>(i) / hw) % channels;
        const float invstd = save_invstd[c];
        const float scale = (weight != nullptr ? weight[c] : 1.0f) * invstd;
        float g = incoming_gradient(dy, relu_y, i);
        if (training) {
            const float x_hat = (x[i] - save_mean[c]) * invstd;
            g -= totals[c] * inv_count + x_hat * (totals[channels + c] * inv_count);
        }
        dx[i] = scale * g;
    }
}

}  // namespace kernels

namespace {

using bn_detail::align16;
using bn_detail::bn_dims;
using kernels::BnDims;

// Workspace layout: partials 2 · C · S floats, then totals 2 · C floats (backward only).
size_t partials_bytes(const BnDims& d) {
    return align16(2 * sizeof(float) * d.c * d.splits);
}
size_t totals_bytes(const BnDims& d) {
    return align16(2 * sizeof(float) * d.c);
}

void check_workspace(const char* op, const BnDims& d, const Shape& x, const void* workspace, size_t bytes) {
    const size_t needed = partials_bytes(d) + totals_bytes(d);
    CUDACNN_CHECK(workspace != nullptr && bytes >= needed,
                  "{}: the workspace for input {} must hold {} bytes (batch_norm2d_workspace_bytes), got {} "
                  "bytes at {}",
                  op, x, needed, bytes, workspace);
}

// Validates like the reference, in its order; returns the running statistics' update factor (−1: none),
// incrementing num_batches_tracked when a training step updates them.
float check_forward_and_count(const BnDims& d, const Shape& x, BatchNorm2dRunningStatsView* running,
                              const cpu::BatchNorm2dOptions& options) {
    bn_detail::check_forward("batch_norm2d", d, x, running, options);
    const double factor = bn_detail::count_training_batch(running, options);
    return factor < 0.0 ? -1.0f : static_cast<float>(factor);
}

}  // namespace

size_t batch_norm2d_workspace_bytes(const Shape& input_shape) {
    const BnDims d = bn_dims("batch_norm2d_workspace_bytes", input_shape);
    return partials_bytes(d) + totals_bytes(d);
}

namespace {

// batch_norm2d, and with relu batch_norm2d_relu; op names the entry point in errors.
void batch_norm2d_impl(const char* op, bool relu, const float* x, const float* weight, const float* bias,
                       BatchNorm2dRunningStatsView* running, float* y, float* save_mean, float* save_invstd,
                       const Shape& input_shape, const cpu::BatchNorm2dOptions& options, void* workspace,
                       size_t workspace_bytes, cudaStream_t stream) {
    const BnDims d = bn_dims(op, input_shape);
    CUDACNN_CHECK(x != nullptr && y != nullptr && save_mean != nullptr && save_invstd != nullptr,
                  "{}: x, y, save_mean and save_invstd must be device pointers, got {}, {}, {} and {}", op,
                  static_cast<const void*>(x), static_cast<const void*>(y),
                  static_cast<const void*>(save_mean), static_cast<const void*>(save_invstd));
    if (options.training) check_workspace(op, d, input_shape, workspace, workspace_bytes);
    const float factor = check_forward_and_count(d, input_shape, running, options);
    const float eps = static_cast<float>(options.eps);
    if (options.training) {
        float* partials = static_cast<float*>(workspace);
        launch(kernels::batch_norm_stats_kernel, dim3(d.splits, d.c), dim3(kernels::kBnReduceBlock), 0,
               stream, x, partials, d);
        float* running_mean = running != nullptr ? running->running_mean : nullptr;
        float* running_var = running != nullptr ? running->running_var : nullptr;
        launch(kernels::batch_norm_finalize_kernel, bn_detail::warp_per_row_grid(d.c),
               dim3(kernels::kBnFinalizeBlock), 0, stream, x, static_cast<const float*>(partials), d, eps,
               factor, running_mean, running_var, save_mean, save_invstd);
    } else {
        launch(kernels::batch_norm_eval_stats_kernel, dim3((d.c + 255) / 256), dim3(256), 0, stream,
               static_cast<const float*>(running->running_mean),
               static_cast<const float*>(running->running_var), d.c, eps, save_mean, save_invstd);
    }
    const int64_t total = input_shape.numel();
    launch(kernels::batch_norm_normalize_kernel, elementwise_grid(total), dim3(kElementwiseBlock), 0, stream,
           x, static_cast<const float*>(save_mean), static_cast<const float*>(save_invstd), weight, bias, y,
           total, d.c, d.hw, relu);
}

// batch_norm2d_backward, and with relu_y batch_norm2d_relu_backward.
void batch_norm2d_backward_impl(const char* op, const float* relu_y, const float* x, const float* weight,
                                const float* save_mean, const float* save_invstd, const float* dy, float* dx,
                                float* dweight, float* dbias, const Shape& input_shape, bool training,
                                void* workspace, size_t workspace_bytes, cudaStream_t stream) {
    const BnDims d = bn_dims(op, input_shape);
    CUDACNN_CHECK(
        x != nullptr && dy != nullptr && dx != nullptr && save_mean != nullptr && save_invstd != nullptr,
        "{}: x, dy, dx, save_mean and save_invstd must be device pointers, got {}, {}, {}, {} and {}", op,
        static_cast<const void*>(x), static_cast<const void*>(dy), static_cast<const void*>(dx),
        static_cast<const void*>(save_mean), static_cast<const void*>(save_invstd));
    const bool sums_needed = training || dweight != nullptr || dbias != nullptr;
    float* totals = nullptr;
    if (sums_needed) {
        check_workspace(op, d, input_shape, workspace, workspace_bytes);
        float* partials = static_cast<float*>(workspace);
        totals = reinterpret_cast<float*>(static_cast<char*>(workspace) + partials_bytes(d));
        launch(kernels::batch_norm_grad_sums_kernel, dim3(d.splits, d.c), dim3(kernels::kBnReduceBlock), 0,
               stream, x, dy, relu_y, save_mean, partials, d);
        launch(kernels::batch_norm_grad_finalize_kernel, bn_detail::warp_per_row_grid(d.c),
               dim3(kernels::kBnFinalizeBlock), 0, stream, static_cast<const float*>(partials), save_invstd,
               d, totals, dweight, dbias);
    }
    const int64_t total = input_shape.numel();
    launch(kernels::batch_norm_dx_kernel, elementwise_grid(total), dim3(kElementwiseBlock), 0, stream, x, dy,
           relu_y, weight, save_mean, save_invstd, static_cast<const float*>(totals), dx, total, d.c, d.hw, d.count,
           training);
}

}  // namespace

void batch_norm2d(const float* x, const float* weight, const float* bias,
                  BatchNorm2dRunningStatsView* running, float* y, float* save_mean, float* save_invstd,
                  const Shape& input_shape, const cpu::BatchNorm2dOptions& options, void* workspace,
                  size_t workspace_bytes, cudaStream_t stream) {
    batch_norm2d_impl("batch_norm2d", false, x, weight, bias, running, y, save_mean, save_invstd, input_shape,
                      options, workspace, workspace_bytes, stream);
}

void batch_norm2d_relu(const float* x, const float* weight, const float* bias,
                       BatchNorm2dRunningStatsView* running, float* y, float* save_mean, float* save_invstd,
                       const Shape& input_shape, const cpu::BatchNorm2dOptions& options, void* workspace,
                       size_t workspace_bytes, cudaStream_t stream) {
    batch_norm2d_impl("batch_norm2d_relu", true, x, weight, bias, running, y, save_mean, save_invstd,
                      input_shape, options, workspace, workspace_bytes, stream);
}

void batch_norm2d_backward(const float* x, const float* weight, const float* save_mean,
                           const float* save_invstd, const float* dy, float* dx, float* dweight, float* dbias,
                           const Shape& input_shape, bool training, void* workspace, size_t workspace_bytes,
                           cudaStream_t stream) {
    batch_norm2d_backward_impl("batch_norm2d_backward", nullptr, x, weight, save_mean, save_invstd, dy, dx,
                               dweight, dbias, input_shape, training, workspace, workspace_bytes, stream);
}

void batch_norm2d_relu_backward(const float* x, const float* y, const float* weight, const float* save_mean,
                                const float* save_invstd, const float* dy, float* dx, float* dweight,
                                float* dbias, const Shape& input_shape, bool training, void* workspace,
                                size_t workspace_bytes, cudaStream_t stream) {
    CUDACNN_CHECK(y != nullptr,
                  "batch_norm2d_relu_backward: y must be the device pointer batch_norm2d_relu wrote, got nullptr");
    batch_norm2d_backward_impl("batch_norm2d_relu_backward", y, x, weight, save_mean, save_invstd, dy, dx,
                               dweight, dbias, input_shape, training, workspace, workspace_bytes, stream);
}

}  // namespace cudacnn::gpu
