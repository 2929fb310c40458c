// Synchronized batch norm kernels (per-channel double sums, their fixed-order merge, finalize, normalize,
// dx) and the launchers of each phase, for float and bf16 activations; the all-reduces between phases are
// the caller's.
#include "cuda/batch_norm_sync.hpp"

#include <algorithm>
#include <cmath>

#include "cuda/batch_norm_common.cuh"
#include "cuda/bf16.cuh"
#include "cuda/elementwise.cuh"
#include "cuda/launch.cuh"
#include "cuda/reduce.cuh"
#include "cudacnn/error.hpp"

namespace cudacnn::gpu {

namespace kernels {

constexpr unsigned kSyncFullMask = 0xffffffffu;
constexpr int kSyncChannelBlock = 256;  // the per-channel kernels: one thread per channel

// The backward's two sums of a block: Σ dy and Σ dy · x̂.
struct DoublePair {
    double first, second;

    __device__ static DoublePair empty() { return {0.0, 0.0}; }
    __device__ void merge(const DoublePair& b) { first += b.first, second += b.second; }
    __device__ DoublePair shfl_down(int offset) const {
        return {__shfl_down_sync(kSyncFullMask, first, offset),
                __shfl_down_sync(kSyncFullMask, second, offset)};
    }
};

// Block (s, c): Σ x over its slice of channel c. partials: (C, S).
template <class T>
__global__ void batch_norm_sync_sum_kernel(const T* x, double* partials, BnDims d) {
    const int split = blockIdx.x, channel = blockIdx.y;
    double acc = 0.0;
    for_each_in_slice(d, channel, slice_begin(d, split), slice_end(d, split),
                      [&](int64_t offset) { acc += static_cast<double>(to_float(x[offset])); });
    acc = reduce::block_reduce(acc);
    if (threadIdx.x == 0) partials[channel * d.splits + split] = acc;
}

// Block (s, c): Σ (x − mean)² over its slice, mean = the world's Σx / M (sums: C + 1, all-reduced): two
// passes, as the reference, since Σx² − M · mean² cancels. partials: (C, S).
template <class T>
__global__ void batch_norm_sync_squares_kernel(const T* x, const double* sums, double* partials, BnDims d) {
    const int split = blockIdx.x, channel = blockIdx.y;
    const double mean = sums[channel] / sums[d.c];
    double acc = 0.0;
    for_each_in_slice(d, channel, slice_begin(d, split), slice_end(d, split), [&](int64_t offset) {
        const double centered = static_cast<double>(to_float(x[offset])) - mean;
        acc += centered * centered;
    });
    acc = reduce::block_reduce(acc);
    if (threadIdx.x == 0) partials[channel * d.splits + split] = acc;
}

// Block (s, c): Σ dy and Σ dy · x̂ over its slice (dy through a fused ReLU's backward when relu_y is given).
// partials: Σ dy (C, S) then Σ dy · x̂ (C, S).
template <class T>
__global__ void batch_norm_sync_grad_sums_kernel(const T* x, const T* dy, const T* relu_y,
                                                 const float* save_mean, const float* save_invstd,
                                                 double* partials, BnDims d) {
    const int split = blockIdx.x, channel = blockIdx.y;
    const double mean = static_cast<double>(save_mean[channel]);
    const double invstd = static_cast<double>(save_invstd[channel]);
    DoublePair acc = DoublePair::empty();
    for_each_in_slice(d, channel, slice_begin(d, split), slice_end(d, split), [&](int64_t offset) {
        const double g = static_cast<double>(incoming_gradient(dy, relu_y, offset));
        acc.first += g;
        acc.second += g * (static_cast<double>(to_float(x[offset])) - mean) * invstd;
    });
    acc = reduce::block_reduce(acc);
    if (threadIdx.x == 0) {
        partials[channel * d.splits + split] = acc.first;
        partials[(d.c + channel) * d.splits + split] = acc.second;
    }
}

// NHWC block (s, g): Σ x of each of its channels over slice s (cuda/batch_norm_common.cuh's NhwcSlices).
// partials: (C, S).
template <class T>
__global__ void batch_norm_sync_nhwc_sum_kernel(const T* x, double* partials, NhwcSlices s) {
    const int split = blockIdx.x, channel = blockIdx.y * s.group + threadIdx.x;
    const bool live = channel < s.c;  // the last group may be partial
    double acc = 0.0;
    if (live) {
        for (PixelCursor cursor(s, split, channel); cursor.left() > 0;)
            acc += static_cast<double>(to_float(x[cursor.next()]));
    }
    acc = reduce_rows(acc);
    if (live && threadIdx.y == 0) partials[channel * s.splits + split] = acc;
}

// NHWC block (s, g): Σ (x − mean)² of each of its channels over slice s, as the NCHW squares kernel.
template <class T>
__global__ void batch_norm_sync_nhwc_squares_kernel(const T* x, const double* sums, double* partials,
                                                    NhwcSlices s) {
    const int split = blockIdx.x, channel = blockIdx.y * s.group + threadIdx.x;
    const bool live = channel < s.c;
    double acc = 0.0;
    if (live) {
        const double mean = sums[channel] / sums[s.c];
        for (PixelCursor cursor(s, split, channel); cursor.left() > 0;) {
            const double centered = static_cast<double>(to_float(x[cursor.next()])) - mean;
            acc += centered * centered;
        }
    }
    acc = reduce_rows(acc);
    if (live && threadIdx.y == 0) partials[channel * s.splits + split] = acc;
}

// NHWC block (s, g): Σ dy and Σ dy · x̂ of each of its channels over slice s, as the NCHW grad sums kernel.
template <class T>
__global__ void batch_norm_sync_nhwc_grad_sums_kernel(const T* x, const T* dy, const T* relu_y,
                                                      const float* save_mean, const float* save_invstd,
                                                      double* partials, NhwcSlices s) {
    const int split = blockIdx.x, channel = blockIdx.y * s.group + threadIdx.x;
    const bool live = channel < s.c;
    DoublePair acc = DoublePair::empty();
    if (live) {
        const double mean = static_cast<double>(save_mean[channel]);
        const double invstd = static_cast<double>(save_invstd[channel]);
        for (PixelCursor cursor(s, split, channel); cursor.left() > 0;) {
            const int offset = cursor.next();
            const double g = static_cast<double>(incoming_gradient(dy, relu_y, offset));
            acc.first += g;
            acc.second += g * (static_cast<double>(to_float(x[offset])) - mean) * invstd;
        }
    }
    acc = reduce_rows(acc);
    if (live && threadIdx.y == 0) {
        partials[channel * s.splits + split] = acc.first;
        partials[(s.c + channel) * s.splits + split] = acc.second;
    }
}

// One warp per row r < rows (a channel's sum: rows C or 2·C, the row's S partials at r · S): lane l adds
// partials l, l + 32, … in turn (S ≤ 32, NCHW: partial l alone), a fixed shift-down tree adds the lanes,
// out[r] = the total. count ≥ 0: out[rows] = count (this rank's M, which the all-reduce turns into the
// world's). local_first / local_second (nullptr: not wanted) get the rows' totals as floats, rows < C and
// rows ≥ C: the backward's dbias and dweight, this rank's own sums.
__global__ void batch_norm_sync_merge_kernel(const double* partials, int rows, int channels, int splits,
                                             double count, double* out, float* local_first,
                                             float* local_second) {
    const int row = warp_row();
    if (row == 0 && threadIdx.x == 0 && count >= 0.0) out[rows] = count;
    if (row >= rows) return;  // whole warps only
    const int lane = threadIdx.x % kBnWarp;
    const double* row_partials = partials + static_cast<int64_t>(row) * splits;
    double acc = lane < splits ? row_partials[lane] : 0.0;
    for (int split = lane + kBnWarp; split < splits; split += kBnWarp) acc += row_partials[split];
    acc = reduce::warp_reduce(acc);
    if (lane != 0) return;
    out[row] = acc;
    float* local = row < channels ? local_first : local_second;
    if (local != nullptr) local[row % channels] = static_cast<float>(acc);
}

// Per channel, from the world's sums (C + 1) and squares (C): the saves and the running statistics (momentum
// factor < 0: none to update), in double as the reference, rounded once.
__global__ void batch_norm_sync_finalize_kernel(const double* sums, const double* squares, int channels,
                                                double eps, double factor, float* running_mean,
                                                float* running_var, const float* input_shift,
                                                float* save_mean, float* save_invstd) {
    const int c = blockIdx.x * blockDim.x + threadIdx.x;
    if (c >= channels) return;
    const double count = sums[channels];
    const double mean = sums[c] / count;
    const double var = squares[c] / count;  // biased: normalizes this batch
    save_mean[c] = static_cast<float>(mean);
    save_invstd[c] = static_cast<float>(1.0 / sqrt(var + eps));
    if (factor >= 0.0) {
        const double unbiased = squares[c] / (count - 1.0);
        // input_shift (BatchNorm2dRunningStatsView): what x lacks per channel, which the running mean
        // includes.
        const double shifted = input_shift != nullptr ? mean + static_cast<double>(input_shift[c]) : mean;
        running_mean[c] =
            static_cast<float>((1.0 - factor) * static_cast<double>(running_mean[c]) + factor * shifted);
        running_var[c] =
            static_cast<float>((1.0 - factor) * static_cast<double>(running_var[c]) + factor * unbiased);
    }
}

// batch_norm2d's normalize, element for element (cuda/batch_norm_common.cuh's rule), rounded once to T.
// Element i is of channel (i / hw) % C: hw = H·W for NCHW, 1 for NHWC.
template <class T>
__global__ void batch_norm_sync_normalize_kernel(const T* x, const float* mean, const float* invstd,
                                                 const float* weight, const float* bias, T* y, int64_t total,
                                                 int channels, int hw, bool relu) {
    const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
    for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < total; i += stride) {
        const int c = (static_cast<int>(i) / hw) % channels;
        y[i] = from_float<T>(normalized_value(to_float(x[i]), mean[c], invstd[c], weight, bias, c, relu));
    }
}

// Per channel, from the world's gradient sums (2·C + 1): Σdy / M and Σdy·x̂ / M, for the dx kernel.
__global__ void batch_norm_sync_grad_means_kernel(const double* sums, int channels, float* means) {
    const int c = blockIdx.x * blockDim.x + threadIdx.x;
    if (c >= channels) return;
    const double count = sums[2 * channels];
    means[c] = static_cast<float>(sums[c] / count);
    means[channels + c] = static_cast<float>(sums[channels + c] / count);
}

// dx = γ · invstd · (dy − Σdy / M − x̂ · Σdy·x̂ / M), means: Σdy / M (C) then Σdy·x̂ / M (C); rounded once
// to T. Channels as the normalize kernel's (hw: H·W for NCHW, 1 for NHWC).
template <class T>
__global__ void batch_norm_sync_dx_kernel(const T* x, const T* dy, const T* relu_y, const float* weight,
                                          const float* save_mean, const float* save_invstd,
                                          const float* means, T* dx, int64_t total, int channels, int hw) {
    const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
    for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < total; i += stride) {
        const int c = (static_cast<int>(i) / hw) % channels;
        const float invstd = save_invstd[c];
        const float scale = (weight != nullptr ? weight[c] : 1.0f) * invstd;
        const float x_hat = (to_float(x[i]) - save_mean[c]) * invstd;
        const float g = incoming_gradient(dy, relu_y, i) - (means[c] + x_hat * means[channels + c]);
        dx[i] = from_float<T>(scale * g);
    }
}

}  // namespace kernels

namespace {

using bn_detail::align16;
using bn_detail::bn_dims;
using kernels::BnDims;
using kernels::NhwcSlices;

// Workspace layout: sums (2·C + 1 doubles: the forward's Σx and M, then its squares; the backward's Σdy,
// Σdy·x̂ and M), block partials (2·C·S doubles, S the larger of the NCHW and NHWC reductions': one size
// serves both formats), the backward's per-channel means (2·C floats).
size_t sums_bytes(const BnDims& d) {
    return align16(sizeof(double) * (2 * static_cast<size_t>(d.c) + 1));
}
size_t partials_bytes(const BnDims& d) {
    const int splits = std::max(d.splits, bn_detail::nhwc_slices(d).splits);
    return align16(2 * sizeof(double) * d.c * splits);
}
size_t means_bytes(const BnDims& d) {
    return align16(2 * sizeof(float) * d.c);
}

struct SyncWorkspace {
    double* sums;
    double* partials;
    float* means;
};

SyncWorkspace sync_workspace(const char* op, const BnDims& d, const Shape& x, void* workspace, size_t bytes) {
    const size_t needed = sums_bytes(d) + partials_bytes(d) + means_bytes(d);
    CUDACNN_CHECK(
        workspace != nullptr && bytes >= needed,
        "{}: the workspace for input {} must hold {} bytes (batch_norm2d_sync_workspace_bytes), got {} "
        "bytes at {}",
        op, x, needed, bytes, workspace);
    char* base = static_cast<char*>(workspace);
    return {reinterpret_cast<double*>(base), reinterpret_cast<double*>(base + sums_bytes(d)),
            reinterpret_cast<float*>(base + sums_bytes(d) + partials_bytes(d))};
}

// Adds each row's `splits` block partials into out (rows doubles; count ≥ 0 also goes to out[rows]).
void merge_rows(const double* partials, int rows, const BnDims& d, int splits, double count, double* out,
                float* local_first, float* local_second, cudaStream_t stream) {
    launch(kernels::batch_norm_sync_merge_kernel, bn_detail::warp_per_row_grid(rows),
           dim3(kernels::kBnFinalizeBlock), 0, stream, partials, rows, d.c, splits, count, out, local_first,
           local_second);
}

// The element-wise kernels' channel rule: element i is of channel (i / hw) % C.
int channel_stride(const BnDims& d, MemoryFormat format) {
    return format == MemoryFormat::nhwc ? 1 : d.hw;
}

dim3 per_channel_grid(int channels) {
    return dim3((channels + kernels::kSyncChannelBlock - 1) / kernels::kSyncChannelBlock);
}

constexpr const char* kForwardOp = "batch_norm2d_sync";
constexpr const char* kBackwardOp = "batch_norm2d_sync_backward";

template <class T>
void check_forward_pointers(const BatchNorm2dSyncForwardT<T>& a) {
    CUDACNN_CHECK(a.x != nullptr && a.y != nullptr && a.save_mean != nullptr && a.save_invstd != nullptr,
                  "{}: x, y, save_mean and save_invstd must be device pointers, got {}, {}, {} and {}",
                  kForwardOp, static_cast<const void*>(a.x), static_cast<const void*>(a.y),
                  static_cast<const void*>(a.save_mean), static_cast<const void*>(a.save_invstd));
}

template <class T>
void check_backward_pointers(const BatchNorm2dSyncBackwardT<T>& a) {
    CUDACNN_CHECK(a.x != nullptr && a.dy != nullptr && a.save_mean != nullptr && a.save_invstd != nullptr,
                  "{}: x, dy, save_mean and save_invstd must be device pointers, got {}, {}, {} and {}",
                  kBackwardOp, static_cast<const void*>(a.x), static_cast<const void*>(a.dy),
                  static_cast<const void*>(a.save_mean), static_cast<const void*>(a.save_invstd));
}

}  // namespace

size_t batch_norm2d_sync_workspace_bytes(const Shape& input_shape) {
    const BnDims d = bn_dims("batch_norm2d_sync_workspace_bytes", input_shape);
    return sums_bytes(d) + partials_bytes(d) + means_bytes(d);
}

template <class T>
BatchNormSyncSums batch_norm2d_sync_statistics(const BatchNorm2dSyncForwardT<T>& a) {
    const BnDims d = bn_dims(kForwardOp, a.input_shape);
    check_forward_pointers(a);
    CUDACNN_CHECK(
        a.options.training,
        "{}: synchronized batch norm shares batch statistics, so it runs in training mode only; evaluation "
        "normalizes by the running statistics with batch_norm2d",
        kForwardOp);
    bn_detail::check_forward(kForwardOp, d, a.input_shape, a.running, a.options);
    const SyncWorkspace ws = sync_workspace(kForwardOp, d, a.input_shape, a.workspace, a.workspace_bytes);
    int splits = d.splits;
    if (a.format == MemoryFormat::nhwc) {
        const NhwcSlices s = bn_detail::nhwc_slices(d);
        launch(kernels::batch_norm_sync_nhwc_sum_kernel<T>, bn_detail::nhwc_reduce_grid(s),
               bn_detail::nhwc_reduce_block(s), 0, a.stream, a.x, ws.partials, s);
        splits = s.splits;
    } else {
        launch(kernels::batch_norm_sync_sum_kernel<T>, dim3(d.splits, d.c), dim3(kernels::kBnReduceBlock), 0,
               a.stream, a.x, ws.partials, d);
    }
    merge_rows(ws.partials, d.c, d, splits, static_cast<double>(d.count), ws.sums, nullptr, nullptr,
               a.stream);
    return {ws.sums, static_cast<int64_t>(d.c) + 1};
}

template <class T>
BatchNormSyncSums batch_norm2d_sync_squares(const BatchNorm2dSyncForwardT<T>& a) {
    const BnDims d = bn_dims(kForwardOp, a.input_shape);
    check_forward_pointers(a);
    const SyncWorkspace ws = sync_workspace(kForwardOp, d, a.input_shape, a.workspace, a.workspace_bytes);
    double* squares = ws.sums + d.c + 1;
    int splits = d.splits;
    if (a.format == MemoryFormat::nhwc) {
        const NhwcSlices s = bn_detail::nhwc_slices(d);
        launch(kernels::batch_norm_sync_nhwc_squares_kernel<T>, bn_detail::nhwc_reduce_grid(s),
               bn_detail::nhwc_reduce_block(s), 0, a.stream, a.x, static_cast<const double*>(ws.sums),
               ws.partials, s);
        splits = s.splits;
    } else {
        launch(kernels::batch_norm_sync_squares_kernel<T>, dim3(d.splits, d.c), dim3(kernels::kBnReduceBlock),
               0, a.stream, a.x, static_cast<const double*>(ws.sums), ws.partials, d);
    }
    merge_rows(ws.partials, d.c, d, splits, -1.0, squares, nullptr, nullptr, a.stream);
    return {squares, static_cast<int64_t>(d.c)};
}

template <class T>
void batch_norm2d_sync_normalize(const BatchNorm2dSyncForwardT<T>& a) {
    const BnDims d = bn_dims(kForwardOp, a.input_shape);
    check_forward_pointers(a);
    const SyncWorkspace ws = sync_workspace(kForwardOp, d, a.input_shape, a.workspace, a.workspace_bytes);
    const double factor = bn_detail::count_training_batch(a.running, a.options);
    float* running_mean = a.running != nullptr ? a.running->running_mean : nullptr;
    float* running_var = a.running != nullptr ? a.running->running_var : nullptr;
    launch(kernels::batch_norm_sync_finalize_kernel, per_channel_grid(d.c), dim3(kernels::kSyncChannelBlock),
           0, a.stream, static_cast<const double*>(ws.sums), static_cast<const double*>(ws.sums + d.c + 1),
           d.c, a.options.eps, factor, running_mean, running_var,
           a.running != nullptr ? a.running->input_shift : nullptr, a.save_mean, a.save_invstd);
    const int64_t total = a.input_shape.numel();
    launch(kernels::batch_norm_sync_normalize_kernel<T>, elementwise_grid(total), dim3(kElementwiseBlock), 0,
           a.stream, a.x, static_cast<const float*>(a.save_mean), static_cast<const float*>(a.save_invstd),
           a.weight, a.bias, a.y, total, d.c, channel_stride(d, a.format), a.relu);
}

template <class T>
void batch_norm2d_sync(const BatchNorm2dSyncForwardT<T>& args, const BatchNormSyncReduce& all_reduce) {
    const BatchNormSyncSums sums = batch_norm2d_sync_statistics(args);
    all_reduce(sums.data, sums.count);
    const BatchNormSyncSums squares = batch_norm2d_sync_squares(args);
    all_reduce(squares.data, squares.count);
    batch_norm2d_sync_normalize(args);
}

template <class T>
BatchNormSyncSums batch_norm2d_sync_backward_sums(const BatchNorm2dSyncBackwardT<T>& a) {
    const BnDims d = bn_dims(kBackwardOp, a.input_shape);
    check_backward_pointers(a);
    const SyncWorkspace ws = sync_workspace(kBackwardOp, d, a.input_shape, a.workspace, a.workspace_bytes);
    int splits = d.splits;
    if (a.format == MemoryFormat::nhwc) {
        const NhwcSlices s = bn_detail::nhwc_slices(d);
        launch(kernels::batch_norm_sync_nhwc_grad_sums_kernel<T>, bn_detail::nhwc_reduce_grid(s),
               bn_detail::nhwc_reduce_block(s), 0, a.stream, a.x, a.dy, a.relu_y, a.save_mean, a.save_invstd,
               ws.partials, s);
        splits = s.splits;
    } else {
        launch(kernels::batch_norm_sync_grad_sums_kernel<T>, dim3(d.splits, d.c),
               dim3(kernels::kBnReduceBlock), 0, a.stream, a.x, a.dy, a.relu_y, a.save_mean, a.save_invstd,
               ws.partials, d);
    }
    merge_rows(ws.partials, 2 * d.c, d, splits, static_cast<double>(d.count), ws.sums, a.dbias, a.dweight,
               a.stream);
    return {ws.sums, 2 * static_cast<int64_t>(d.c) + 1};
}

template <class T>
void batch_norm2d_sync_backward_dx(const BatchNorm2dSyncBackwardT<T>& a) {
    const BnDims d = bn_dims(kBackwardOp, a.input_shape);
    check_backward_pointers(a);
    CUDACNN_CHECK(a.dx != nullptr,
                  "{}: the dx phase needs dx, a device pointer; without one run the sums phase only",
                  kBackwardOp);
    const SyncWorkspace ws = sync_workspace(kBackwardOp, d, a.input_shape, a.workspace, a.workspace_bytes);
    launch(kernels::batch_norm_sync_grad_means_kernel, per_channel_grid(d.c),
           dim3(kernels::kSyncChannelBlock), 0, a.stream, static_cast<const double*>(ws.sums), d.c, ws.means);
    const int64_t total = a.input_shape.numel();
    launch(kernels::batch_norm_sync_dx_kernel<T>, elementwise_grid(total), dim3(kElementwiseBlock), 0,
           a.stream, a.x, a.dy, a.relu_y, a.weight, a.save_mean, a.save_invstd,
           static_cast<const float*>(ws.means), a.dx, total, d.c, channel_stride(d, a.format));
}

template <class T>
void batch_norm2d_sync_backward(const BatchNorm2dSyncBackwardT<T>& args,
                                const BatchNormSyncReduce& all_reduce) {
    const BatchNormSyncSums sums = batch_norm2d_sync_backward_sums(args);
    if (args.dx == nullptr) return;
    all_reduce(sums.data, sums.count);
    batch_norm2d_sync_backward_dx(args);
}

// The phases for the two activation types the header promises.
template BatchNormSyncSums batch_norm2d_sync_statistics(const BatchNorm2dSyncForwardT<float>&);
template BatchNormSyncSums batch_norm2d_sync_squares(const BatchNorm2dSyncForwardT<float>&);
template void batch_norm2d_sync_normalize(const BatchNorm2dSyncForwardT<float>&);
template void batch_norm2d_sync(const BatchNorm2dSyncForwardT<float>&, const BatchNormSyncReduce&);
template BatchNormSyncSums batch_norm2d_sync_backward_sums(const BatchNorm2dSyncBackwardT<float>&);
template void batch_norm2d_sync_backward_dx(const BatchNorm2dSyncBackwardT<float>&);
template void batch_norm2d_sync_backward(const BatchNorm2dSyncBackwardT<float>&, const BatchNormSyncReduce&);
template BatchNormSyncSums batch_norm2d_sync_statistics(const BatchNorm2dSyncForwardT<bf16>&);
template BatchNormSyncSums batch_norm2d_sync_squares(const BatchNorm2dSyncForwardT<bf16>&);
template void batch_norm2d_sync_normalize(const BatchNorm2dSyncForwardT<bf16>&);
template void batch_norm2d_sync(const BatchNorm2dSyncForwardT<bf16>&, const BatchNormSyncReduce&);
template BatchNormSyncSums batch_norm2d_sync_backward_sums(const BatchNorm2dSyncBackwardT<bf16>&);
template void batch_norm2d_sync_backward_dx(const BatchNorm2dSyncBackwardT<bf16>&);
template void batch_norm2d_sync_backward(const BatchNorm2dSyncBackwardT<bf16>&, const BatchNormSyncReduce&);

}  // namespace cudacnn::gpu
