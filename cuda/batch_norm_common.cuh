// What the batch norm kernels (cuda/batch_norm.cu) and the synchronized batch norm kernels
// (cuda/batch_norm_sync.cu) share: how a channel's N·H·W values split over reduction blocks (NCHW), how
// pixel slices and channel groups split an NHWC tensor, the walk over one block's slice, and the
// per-element rules of the normalize and of the incoming gradient. Included by those .cu files only.
#pragma once

#include <algorithm>
#include <climits>
#include <cmath>
#include <cstddef>
#include <cstdint>

#include "cuda/batch_norm.hpp"
#include "cuda/bf16.cuh"
#include "cuda/launch.cuh"
#include "cuda/reduce.cuh"
#include "cuda/relu_rule.cuh"
#include "cudacnn/error.hpp"
#include "cudacnn/tensor.hpp"

namespace cudacnn::gpu {

namespace kernels {

constexpr int kBnWarp = 32;
constexpr int kBnReduceBlock = 256;      // threads of a statistics / gradient-sum block
constexpr int kBnValuesPerBlock = 2048;  // aim: 8 values per thread before the block's tree
constexpr int kBnMaxSplits = kBnWarp;    // the finalize merges a channel's partials in one warp
constexpr int kBnFinalizeBlock = 256;    // 8 channels per finalize block, one warp each

// Sizes of one call; the launchers check that they fit in int.
struct BnDims {
    int n = 0, c = 0, hw = 0;
    int count = 0;   // M = N · H · W, values per channel
    int splits = 1;  // S: blocks per channel in the reductions
    int chunk = 0;   // values per block: block s covers [s · chunk, min((s + 1) · chunk, M))
};

// Calls f(offset) for the values j = begin + threadIdx.x, j + blockDim.x, … < end of channel c, where value
// j is (n, h·W + w) = (j / HW, j % HW): consecutive threads read consecutive addresses within a plane, and
// the position advances without a division per value.
template <class F>
__device__ void for_each_in_slice(const BnDims& d, int channel, int begin, int end, F f) {
    int j = begin + static_cast<int>(threadIdx.x);
    if (j >= end) return;
    int n = j / d.hw, i = j % d.hw;
    const int step = static_cast<int>(blockDim.x);
    const int dn = step / d.hw, di = step % d.hw;
    for (; j < end; j += step) {
        f((static_cast<int64_t>(n) * d.c + channel) * d.hw + i);
        n += dn, i += di;
        if (i >= d.hw) i -= d.hw, ++n;
    }
}

__device__ inline int slice_begin(const BnDims& d, int split) {
    return split * d.chunk;
}
__device__ inline int slice_end(const BnDims& d, int split) {
    return min((split + 1) * d.chunk, d.count);
}

// (count, mean, M2) and Chan's merge (also the conv's epilogue statistics, cuda/conv2d_implicit.cu). No
// default member initializers: a __shared__ array of it must be trivially constructible.
struct Welford {
    float mean, m2;
    int count;

    __device__ static Welford empty() { return {0.0f, 0.0f, 0}; }

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
        return {__shfl_down_sync(reduce::kFullMask, mean, offset),
                __shfl_down_sync(reduce::kFullMask, m2, offset),
                __shfl_down_sync(reduce::kFullMask, count, offset)};
    }
    __device__ Welford broadcast_lane0() const {
        return {__shfl_sync(reduce::kFullMask, mean, 0), __shfl_sync(reduce::kFullMask, m2, 0),
                __shfl_sync(reduce::kFullMask, count, 0)};
    }
};

// The kernels that finish a per-channel reduction run one warp per row (a channel, or a channel's second
// sum); this is the warp's row (≥ the row count: the warp has none).
__device__ inline int warp_row() {
    return blockIdx.x * (blockDim.x / kBnWarp) + threadIdx.x / kBnWarp;
}

// y = (x − mean) · invstd · γ + β, with a fused ReLU's rule applied when relu.
__device__ inline float normalized_value(float x, float mean, float invstd, float gamma, float beta,
                                         bool relu) {
    const float value = (x - mean) * invstd * gamma + beta;
    return relu ? relu_value(value) : value;
}

// γ, β of channel c: 1, 0 without affine.
__device__ inline float channel_gamma(const float* weight, int c) {
    return weight != nullptr ? weight[c] : 1.0f;
}
__device__ inline float channel_beta(const float* bias, int c) {
    return bias != nullptr ? bias[c] : 0.0f;
}

// The same, reading γ and β of channel c.
__device__ inline float normalized_value(float x, float mean, float invstd, const float* weight,
                                         const float* bias, int c, bool relu) {
    return normalized_value(x, mean, invstd, channel_gamma(weight, c), channel_beta(bias, c), relu);
}

// The gradient batch norm's backward reads at element i: dy, or, with a fused ReLU whose output is relu_y,
// ReLU's backward of it (computed where it is read instead of stored); T = float or bf16, widened.
template <class T>
__device__ inline float incoming_gradient(const T* dy, const T* relu_y, int64_t i) {
    return relu_y != nullptr ? relu_gradient(to_float(relu_y[i]), to_float(dy[i])) : to_float(dy[i]);
}

// NHWC (channels_last): x[p · C + c] for pixel p = (n · H + h) · W + w.

constexpr int kBnNhwcMaxGroup = 32;             // channels of a reduction block: a warp's 32 lanes, one pixel
constexpr int kBnNhwcValuesPerThread = 16;      // aim of the reductions: 4 batches of 4 loads a thread
constexpr int kBnNhwcMaxSplits = 32 * kBnWarp;  // the finalize's lanes merge ≤ 32 partials each

// How the NHWC reductions cover the (M pixels × C channels) input: grid (S, G), block (group, rows), with
// G = ⌈C / 32⌉ and group = ⌈C / G⌉ ≤ 32. Block (s, g) takes channels [g · group, (g + 1) · group) and the
// pixels [s · chunk, min((s + 1) · chunk, M)) of slice s, thread (t, r) channel g · group + t of pixels
// begin + r, begin + r + rows, …: a warp reads consecutive channels of consecutive pixels (with group = C
// ≤ 32, a block reads a contiguous run).
struct NhwcSlices {
    int c = 0;       // channels
    int pixels = 0;  // M = N·H·W
    int group = 1;   // channels per block: ⌈C / ⌈C / 32⌉⌉
    int rows = 1;    // pixels a block reads at once: 256 / group
    int splits = 1, chunk = 0;
};

// The number of pixels (values per channel) slice `split` covers.
__device__ inline int nhwc_slice_pixels(const NhwcSlices& s, int split) {
    return max(min((split + 1) * s.chunk, s.pixels) - split * s.chunk, 0);
}

// Walks thread (threadIdx.x, threadIdx.y)'s pixels of slice `split` for one channel, yielding offsets.
class PixelCursor {
  public:
    __device__ PixelCursor(const NhwcSlices& s, int split, int channel) {
        const int begin = split * s.chunk + static_cast<int>(threadIdx.y);
        const int end = min((split + 1) * s.chunk, s.pixels);
        left_ = begin < end ? (end - begin + s.rows - 1) / s.rows : 0;
        offset_ = left_ > 0 ? static_cast<int64_t>(begin) * s.c + channel : 0;
        step_ = static_cast<int64_t>(s.rows) * s.c;
    }

    __device__ int left() const { return left_; }

    __device__ int next() {
        const int offset = static_cast<int>(offset_);  // < N·C·H·W ≤ INT_MAX (bn_dims)
        --left_;
        offset_ += step_;
        return offset;
    }

  private:
    int left_;
    int64_t offset_, step_;
};

// Merges each channel's accumulators (reduce.cuh's: arithmetic, or with merge()) over the block's rows (block
// (group, rows), blockDim.x · blockDim.y ≤ kBnReduceBlock) in a fixed halving tree: row r takes row r +
// ⌈active / 2⌉'s. Row 0's threads get their channel's total. Once per kernel (the shared array is not guarded
// for reuse).
template <class T>
__device__ T reduce_rows(T acc) {
    __shared__ T rows[kBnReduceBlock];
    const int width = static_cast<int>(blockDim.x), row = static_cast<int>(threadIdx.y);
    const int col = static_cast<int>(threadIdx.x);
    rows[row * width + col] = acc;
    __syncthreads();
    for (int active = static_cast<int>(blockDim.y); active > 1;) {
        const int half = (active + 1) / 2;
        if (row < active - half)
            reduce::merge_into(rows[row * width + col], rows[(row + half) * width + col]);
        __syncthreads();
        active = half;
    }
    return rows[col];
}

}  // namespace kernels

namespace bn_detail {

// Validates an (N, C, H, W) input for the kernels and chooses S.
inline kernels::BnDims bn_dims(const char* op, const Shape& x) {
    CUDACNN_CHECK(x.rank() == 4, "{}: input must be (N, C, H, W), got shape {}", op, x);
    CUDACNN_CHECK(x[0] > 0 && x[1] > 0 && x[2] > 0 && x[3] > 0,
                  "{}: input sizes must be positive, got shape {}", op, x);
    CUDACNN_CHECK(x.numel() <= INT_MAX,
                  "{}: shape {} has {} elements; the kernels index with 32-bit integers (at most {})", op, x,
                  x.numel(), INT_MAX);
    // Reduction blocks are laid out as grid (S, C), and gridDim.y is at most 65535.
    CUDACNN_CHECK(x[1] <= 65535, "{}: {} channels; the kernels handle at most 65535", op, x[1]);
    kernels::BnDims d;
    d.n = static_cast<int>(x[0]), d.c = static_cast<int>(x[1]), d.hw = static_cast<int>(x[2] * x[3]);
    d.count = d.n * d.hw;
    const int wanted = (d.count + kernels::kBnValuesPerBlock - 1) / kernels::kBnValuesPerBlock;
    d.splits = std::clamp(wanted, 1, kernels::kBnMaxSplits);
    d.chunk = (d.count + d.splits - 1) / d.splits;
    return d;
}

// The NHWC reductions' slices of input d: S grows with M so that every thread reads about
// kBnNhwcValuesPerThread values (small-C layers still fill the GPU), capped at kBnNhwcMaxSplits.
inline kernels::NhwcSlices nhwc_slices(const kernels::BnDims& d) {
    kernels::NhwcSlices s;
    s.c = d.c, s.pixels = d.count;
    // G = ⌈C / 32⌉ groups of equal size (the last up to G − 1 short): C = 40 takes 2 × 20, not 32 + 8.
    const int64_t groups = cudacnn::ceil_div(d.c, kernels::kBnNhwcMaxGroup);
    s.group = static_cast<int>(cudacnn::ceil_div(d.c, groups));
    s.rows = kernels::kBnReduceBlock / s.group;
    const int64_t wanted = cudacnn::ceil_div(d.count, int64_t{kernels::kBnNhwcValuesPerThread} * s.rows);
    s.splits = static_cast<int>(std::clamp<int64_t>(wanted, 1, kernels::kBnNhwcMaxSplits));
    s.chunk = static_cast<int>(cudacnn::ceil_div(d.count, s.splits));
    return s;
}

// The NHWC reductions' grid (S, G) and block (group, rows).
inline dim3 nhwc_reduce_grid(const kernels::NhwcSlices& s) {
    return dim3(static_cast<unsigned>(s.splits), static_cast<unsigned>(cudacnn::ceil_div(s.c, s.group)));
}
inline dim3 nhwc_reduce_block(const kernels::NhwcSlices& s) {
    return dim3(static_cast<unsigned>(s.group), static_cast<unsigned>(s.rows));
}

inline size_t align16(size_t bytes) {
    return (bytes + 15) / 16 * 16;
}

// The grid of a kernel that runs one warp per row.
inline dim3 warp_per_row_grid(int rows) {
    constexpr int rows_per_block = kernels::kBnFinalizeBlock / kernels::kBnWarp;
    return dim3((rows + rows_per_block - 1) / rows_per_block);
}

// Validates a forward's arguments like the reference, in its order (op names the entry point in errors).
inline void check_forward(const char* op, const kernels::BnDims& d, const Shape& x,
                          const BatchNorm2dRunningStatsView* running,
                          const cpu::BatchNorm2dOptions& options) {
    if (running != nullptr) {
        CUDACNN_CHECK(
            running->running_mean != nullptr && running->running_var != nullptr,
            "{}: running statistics need device pointers for running_mean and running_var, got {} and {}", op,
            static_cast<const void*>(running->running_mean), static_cast<const void*>(running->running_var));
        CUDACNN_CHECK(running->num_batches_tracked >= 0, "{}: num_batches_tracked {} must not be negative",
                      op, running->num_batches_tracked);
        CUDACNN_CHECK(
            options.training || running->input_shift == nullptr,
            "{}: evaluation normalizes by the running statistics, which include the input_shift "
            "({}) that x lacks; pass input_shift = nullptr and x with the shift added (the conv with "
            "its bias)",
            op, static_cast<const void*>(running->input_shift));
    }
    CUDACNN_CHECK(std::isfinite(options.eps) && options.eps >= 0, "{}: eps {} must be finite and >= 0", op,
                  options.eps);
    CUDACNN_CHECK(!options.momentum || (*options.momentum >= 0 && *options.momentum <= 1),
                  "{}: momentum {} must be in [0, 1] (or unset for a cumulative average)", op,
                  options.momentum.value_or(0.0));
    CUDACNN_CHECK(
        options.training || running != nullptr,
        "{}: evaluation mode normalizes by the running statistics, but none were given; pass them or "
        "use training mode (as nn.BatchNorm2d does with track_running_stats=False)",
        op);
    CUDACNN_CHECK(
        !options.training || d.count > 1,
        "{}: training needs more than 1 value per channel, got input shape {}; use a larger batch or "
        "evaluation mode",
        op, x);
}

// The running statistics' update factor of a training step (−1: nothing to update), counting the batch in
// num_batches_tracked: momentum, or 1 / num_batches_tracked for a cumulative average (momentum unset).
inline double count_training_batch(BatchNorm2dRunningStatsView* running,
                                   const cpu::BatchNorm2dOptions& options) {
    if (!options.training || running == nullptr) return -1.0;
    ++running->num_batches_tracked;
    return options.momentum ? *options.momentum : 1.0 / static_cast<double>(running->num_batches_tracked);
}

}  // namespace bn_detail

}  // namespace cudacnn::gpu
