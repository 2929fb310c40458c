// Loss kernels: warp-per-row softmax statistics shared by softmax, log_softmax, cross-entropy and accuracy;
// single-block reductions in double, in a fixed order, for the scalar loss and the mean's denominator.
#include "cuda/loss.hpp"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <initializer_list>

#include "cuda/launch.cuh"
#include "cuda/reduce.cuh"
#include "cudacnn/error.hpp"

namespace cudacnn::gpu {
namespace kernels {

constexpr unsigned kFullMask = 0xffffffffu;
constexpr int kRowThreads = 256;         // 8 warps per block, a warp per row
constexpr int64_t kRowMaxBlocks = 1024;  // 8192 warps, a full H100 wave; grid-stride beyond
constexpr int kReduceThreads = 256;      // the single-block reductions
constexpr int kAccuracyThreads = 1024;   // 32 warps in the single accuracy block

__device__ inline bool is_nan(float v) {
    return v != v;
}

// max that propagates NaN (fmaxf would drop it), as the reference's row max.
__device__ inline float nan_max(float a, float b) {
    return (is_nan(a) || a > b) ? a : b;
}

// Butterfly reductions (reduce.cuh): every lane ends with the same bits, so every lane can use the result.
__device__ inline float warp_sum(float v) {
    return reduce::warp_all_sum(v);
}

__device__ inline float warp_max(float v) {
    return reduce::warp_all_reduce(v, [](float a, float b) { return nan_max(a, b); });
}

__device__ inline int lane_id() {
    return static_cast<int>(threadIdx.x % 32);
}

// The rows of a warp-per-row kernel: this warp's current row (its first to begin with) and the stride,
// the number of warps in the grid.
struct WarpRows {
    int64_t row;
    int64_t stride;
};

__device__ inline WarpRows warp_rows() {
    return {(static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x) / 32,
            static_cast<int64_t>(gridDim.x) * blockDim.x / 32};
}

// The row's max and Σ exp(x − max): the stable pieces of every softmax quantity
// (log Σ exp x = max + log Σ exp(x − max)).
struct RowStats {
    float max;
    float sum;
};

__device__ inline RowStats row_stats(const float* x, int64_t classes) {
    float m = -INFINITY;
    for (int64_t c = lane_id(); c < classes; c += 32) m = nan_max(m, x[c]);
    m = warp_max(m);
    float s = 0.0f;
    for (int64_t c = lane_id(); c < classes; c += 32) s += expf(x[c] - m);
    return {m, warp_sum(s)};
}

__global__ void softmax_kernel(const float* x, float* y, int64_t rows, int64_t classes) {
    for (WarpRows r = warp_rows(); r.row < rows; r.row += r.stride) {
        const float* in = x + r.row * classes;
        float* out = y + r.row * classes;
        const RowStats stats = row_stats(in, classes);
        for (int64_t c = lane_id(); c < classes; c += 32) out[c] = expf(in[c] - stats.max) / stats.sum;
    }
}

__global__ void log_softmax_kernel(const float* x, float* y, int64_t rows, int64_t classes) {
    for (WarpRows r = warp_rows(); r.row < rows; r.row += r.stride) {
        const float* in = x + r.row * classes;
        float* out = y + r.row * classes;
        const RowStats stats = row_stats(in, classes);
        const float log_sum = logf(stats.sum);
        for (int64_t c = lane_id(); c < classes; c += 32) out[c] = (in[c] - stats.max) - log_sum;
    }
}

__global__ void softmax_backward_kernel(const float* y, const float* dy, float* dx, int64_t rows,
                                        int64_t classes) {
    for (WarpRows r = warp_rows(); r.row < rows; r.row += r.stride) {
        const int64_t base = r.row * classes;
        float dot = 0.0f;  // Σ_c dy ⊙ y
        for (int64_t c = lane_id(); c < classes; c += 32) dot += dy[base + c] * y[base + c];
        dot = warp_sum(dot);
        for (int64_t c = lane_id(); c < classes; c += 32) dx[base + c] = y[base + c] * (dy[base + c] - dot);
    }
}

__global__ void log_softmax_backward_kernel(const float* y, const float* dy, float* dx, int64_t rows,
                                            int64_t classes) {
    for (WarpRows r = warp_rows(); r.row < rows; r.row += r.stride) {
        const int64_t base = r.row * classes;
        float sum = 0.0f;
        for (int64_t c = lane_id(); c < classes; c += 32) sum += dy[base + c];
        sum = warp_sum(sum);
        for (int64_t c = lane_id(); c < classes; c += 32)
            dx[base + c] = dy[base + c] - expf(y[base + c]) * sum;
    }
}

// What the cross-entropy kernels need of gpu::CrossEntropyOptions, with ε as float.
struct CrossEntropyParams {
    const float* weight;  // (C) or nullptr
    int64_t ignore_index;
    float smoothing;
};

__device__ inline float class_weight(const CrossEntropyParams& params, int64_t c) {
    return params.weight != nullptr ? params.weight[c] : 1.0f;
}

// W = Σ_c w[c] (C without weights), needed only with label smoothing.
__device__ inline float weight_total(const CrossEntropyParams& params, int64_t classes) {
    if (params.weight == nullptr) return static_cast<float>(classes);
    float w = 0.0f;
    for (int64_t c = lane_id(); c < classes; c += 32) w += params.weight[c];
    return warp_sum(w);
}

// One row's loss_n (0 if ignored, NaN for a bad label) and its share of the mean's denominator, w[y] (0 if
// ignored, NaN for a bad label); a warp computes it together and every lane ends with the result.
struct RowLoss {
    float loss, weight;
};

__device__ inline RowLoss cross_entropy_row(const float* logits, const int64_t* labels, int64_t n, int64_t classes,
                                            const CrossEntropyParams& params) {
    const int64_t label = labels[n];
    RowLoss r{0.0f, 0.0f};
    if (label == params.ignore_index) return r;
    if (label < 0 || label >= classes) return {NAN, NAN};
    const float* x = logits + n * classes;
    const RowStats stats = row_stats(x, classes);
    const float log_sum = logf(stats.sum);
    r.weight = class_weight(params, label);
    // −log p[c] = log Σ exp(x − max) + (max − x[c]): both terms ≥ 0, no cancellation.
    r.loss = (1.0f - params.smoothing) * r.weight * (log_sum + (stats.max - x[label]));
    // Skipped when ε = 0, as the reference, so that a −inf logit cannot turn 0 · inf into NaN.
    if (params.smoothing != 0.0f) {
        float smooth = 0.0f;  // Σ_c w[c] · (max − x[c])
        for (int64_t c = lane_id(); c < classes; c += 32) smooth += class_weight(params, c) * (stats.max - x[c]);
        smooth = warp_sum(smooth) + weight_total(params, classes) * log_sum;
        r.loss += params.smoothing / static_cast<float>(classes) * smooth;
    }
    return r;
}

// Per row: row_loss = loss_n and, when row_weight is not null, w[y] (cross_entropy_row).
__global__ void cross_entropy_rows_kernel(const float* logits, const int64_t* labels, int64_t rows,
                                          int64_t classes, CrossEntropyParams params, float* row_loss,
                                          float* row_weight) {
    for (WarpRows r = warp_rows(); r.row < rows; r.row += r.stride) {
        const RowLoss row = cross_entropy_row(logits, labels, r.row, classes, params);
        if (lane_id() == 0) {
            row_loss[r.row] = row.loss;
            if (row_weight != nullptr) row_weight[r.row] = row.weight;
        }
    }
}

// Σ of v over the block's threads in a fixed tree order; the result is valid in thread 0.
__device__ inline double block_sum(double v, double* shared) {
    return reduce::block_tree_sum<kReduceThreads>(v, shared);
}

// The scalar loss's two sums over the rows, in double and in a fixed order (a stride over the block's threads,
// then a tree): Σ row_loss, and Σ row_weight when row_weight is given ('mean'; else 1). Every thread returns them.
struct LossSums {
    double total, denominator;
};

__device__ inline LossSums sum_rows(const float* row_loss, const float* row_weight, int64_t rows, double* partial) {
    double total = 0.0, weight = 0.0;
    for (int64_t n = threadIdx.x; n < rows; n += kReduceThreads) {
        total += row_loss[n];
        if (row_weight != nullptr) weight += row_weight[n];
    }
    total = block_sum(total, partial);
    __syncthreads();  // everyone has read partial[0] before it is reused
    return {total, row_weight != nullptr ? block_sum(weight, partial) : 1.0};
}

// One block: loss = Σ row_loss (/ Σ row_weight when row_weight is given: 'mean'), in double.
__global__ void cross_entropy_reduce_kernel(const float* row_loss, const float* row_weight, int64_t rows,
                                            float* loss) {
    __shared__ double partial[kReduceThreads];
    const LossSums sums = sum_rows(row_loss, row_weight, rows, partial);
    if (threadIdx.x == 0) *loss = static_cast<float>(row_weight != nullptr ? sums.total / sums.denominator : sums.total);
}

// One block: D = Σ w[y_n] over the samples that are not ignored (NaN for a bad label), in double.
__global__ void mean_denominator_kernel(const int64_t* labels, int64_t rows, int64_t classes,
                                        CrossEntropyParams params, double* denominator) {
    __shared__ double partial[kReduceThreads];
    double total = 0.0;
    for (int64_t n = threadIdx.x; n < rows; n += kReduceThreads) {
        const int64_t label = labels[n];
        if (label == params.ignore_index) continue;
        total += (label >= 0 && label < classes) ? class_weight(params, label) : NAN;
    }
    total = block_sum(total, partial);
    if (threadIdx.x == 0) *denominator = total;
}

// One row of dlogits (see loss.hpp), given upstream = dloss_n / D; a warp writes it together.
__device__ inline void cross_entropy_row_gradient(const float* logits, const int64_t* labels, int64_t n,
                                                  int64_t classes, const CrossEntropyParams& params, float upstream,
                                                  float* dlogits) {
    const int64_t label = labels[n];
    const float* x = logits + n * classes;
    float* out = dlogits + n * classes;
    if (label == params.ignore_index || label < 0 || label >= classes) {
        const float fill = label == params.ignore_index ? 0.0f : NAN;
        for (int64_t c = lane_id(); c < classes; c += 32) out[c] = fill;
        return;
    }
    const RowStats stats = row_stats(x, classes);
    const float eps = params.smoothing;
    const float label_term = (1.0f - eps) * class_weight(params, label);
    const float w_total = eps != 0.0f ? weight_total(params, classes) : 0.0f;
    const float eps_per_class = eps / static_cast<float>(classes);
    for (int64_t c = lane_id(); c < classes; c += 32) {
        const float p = expf(x[c] - stats.max) / stats.sum;
        float g = label_term * (p - (c == label ? 1.0f : 0.0f));
        if (eps != 0.0f) g += eps_per_class * (w_total * p - class_weight(params, c));
        out[c] = upstream * g;
    }
}

// upstream = dloss / D in double, rounded once, as every launcher computes it.
__device__ inline float upstream_gradient(float dloss, double denominator) {
    return static_cast<float>(static_cast<double>(dloss) / denominator);
}

// dlogits per row; denominator is null except for 'mean'; dloss per row for 'none'.
__global__ void cross_entropy_backward_kernel(const float* logits, const int64_t* labels, const float* dloss,
                                              const double* denominator, bool dloss_per_row, int64_t rows,
                                              int64_t classes, CrossEntropyParams params, float* dlogits) {
    for (WarpRows r = warp_rows(); r.row < rows; r.row += r.stride) {
        const double d = denominator != nullptr ? *denominator : 1.0;
        const float upstream = upstream_gradient(dloss[dloss_per_row ? r.row : 0], d);
        cross_entropy_row_gradient(logits, labels, r.row, classes, params, upstream, dlogits);
    }
}

// 'mean' or 'sum': the loss and its gradient in one block, bit for bit the separate kernels (the same row
// functions, cross_entropy_reduce_kernel's sum_rows, whose Σ row_weight equals mean_denominator_kernel's sum:
// Σ row_weight equals Σ w[y_n] over the samples that are not ignored, an ignored row adding 0). Three phases
// separated by barriers: each warp's rows into the workspace, the block's sums, each warp's gradient rows.
__global__ void cross_entropy_fused_kernel(const float* logits, const int64_t* labels, const float* dloss,
                                           bool mean, int64_t rows, int64_t classes, CrossEntropyParams params,
                                           float* row_loss, float* row_weight, float* loss, float* dlogits) {
    __shared__ double partial[kReduceThreads];
    const int64_t warp = threadIdx.x / 32, warps = kReduceThreads / 32;
    for (int64_t n = warp; n < rows; n += warps) {
        const RowLoss row = cross_entropy_row(logits, labels, n, classes, params);
        if (lane_id() == 0) {
            row_loss[n] = row.loss;
            row_weight[n] = row.weight;
        }
    }
    __syncthreads();  // every row's loss and weight are written
    const LossSums sums = sum_rows(row_loss, mean ? row_weight : nullptr, rows, partial);
    if (threadIdx.x == 0) *loss = static_cast<float>(mean ? sums.total / sums.denominator : sums.total);
    const float upstream = upstream_gradient(dloss[0], sums.denominator);
    for (int64_t n = warp; n < rows; n += warps) {
        cross_entropy_row_gradient(logits, labels, n, classes, params, upstream, dlogits);
    }
}

// The reference's ranking: c above the label when greater, or equal and earlier; NaN above every number.
__device__ inline bool ranks_above(float a, float b, int64_t c, int64_t label) {
    if (is_nan(a) || is_nan(b)) return (is_nan(a) && is_nan(b)) ? c < label : is_nan(a);
    return a > b || (a == b && c < label);
}

// One block, a warp per row: counts how many classes rank above the label, 32 at a time with a ballot.
__global__ void accuracy_kernel(const float* logits, const int64_t* labels, int64_t rows, int64_t classes,
                                int64_t k, int64_t* top1_correct, int64_t* topk_correct, bool accumulate) {
    constexpr int kWarps = kAccuracyThreads / 32;
    __shared__ int64_t warp_counts[kWarps][2];
    const int warp = static_cast<int>(threadIdx.x / 32);
    int64_t top1 = 0, topk = 0;
    for (int64_t n = warp; n < rows; n += kWarps) {
        const int64_t label = labels[n];
        if (label < 0 || label >= classes) continue;  // a bad label counts as wrong
        const float* x = logits + n * classes;
        const float target = x[label];
        int64_t above = 0;
        for (int64_t first = 0; first < classes; first += 32) {
            const int64_t c = first + lane_id();
            above += __popc(__ballot_sync(kFullMask, c < classes && ranks_above(x[c], target, c, label)));
        }
        top1 += above < 1 ? 1 : 0;
        topk += above < k ? 1 : 0;
    }
    if (lane_id() == 0) {
        warp_counts[warp][0] = top1;
        warp_counts[warp][1] = topk;
    }
    __syncthreads();
    if (threadIdx.x != 0) return;
    int64_t totals[2] = {0, 0};
    for (int w = 0; w < kWarps; ++w) {
        totals[0] += warp_counts[w][0];
        totals[1] += warp_counts[w][1];
    }
    if (top1_correct != nullptr) *top1_correct = totals[0] + (accumulate ? *top1_correct : 0);
    if (topk_correct != nullptr) *topk_correct = totals[1] + (accumulate ? *topk_correct : 0);
}

}  // namespace kernels

namespace {

dim3 row_grid(int64_t rows) {
    constexpr int64_t warps_per_block = kernels::kRowThreads / 32;
    return dim3(static_cast<unsigned>(
        std::clamp<int64_t>((rows + warps_per_block - 1) / warps_per_block, 1, kernels::kRowMaxBlocks)));
}

void check_rows(const char* op, int64_t rows, int64_t classes) {
    CUDACNN_CHECK(rows > 0 && classes > 0,
                  "{}: the input has shape (N, C) = ({}, {}); N and C must be positive", op, rows, classes);
}

void check_pointers(const char* op, std::initializer_list<const void*> pointers) {
    for (const void* p : pointers) {
        CUDACNN_CHECK(p != nullptr,
                      "{}: a device pointer argument is null; pass device memory for every input "
                      "and output",
                      op);
    }
}

void launch_rows(void (*kernel)(const float*, float*, int64_t, int64_t), const float* x, float* y,
                 int64_t rows, int64_t classes, cudaStream_t stream) {
    launch(kernel, row_grid(rows), dim3(kernels::kRowThreads), 0, stream, x, y, rows, classes);
}

void launch_rows_backward(void (*kernel)(const float*, const float*, float*, int64_t, int64_t),
                          const float* y, const float* dy, float* dx, int64_t rows, int64_t classes,
                          cudaStream_t stream) {
    launch(kernel, row_grid(rows), dim3(kernels::kRowThreads), 0, stream, y, dy, dx, rows, classes);
}

const char* reduction_name(cpu::Reduction reduction) {
    switch (reduction) {
        case cpu::Reduction::none:
            return "none";
        case cpu::Reduction::mean:
            return "mean";
        case cpu::Reduction::sum:
            return "sum";
    }
    return "invalid";
}

kernels::CrossEntropyParams checked_params(const char* op, int64_t rows, int64_t classes,
                                           const CrossEntropyOptions& options, const void* workspace,
                                           size_t workspace_bytes) {
    check_rows(op, rows, classes);
    CUDACNN_CHECK(options.reduction == cpu::Reduction::none || options.reduction == cpu::Reduction::mean ||
                      options.reduction == cpu::Reduction::sum,
                  "{}: reduction has the invalid value {}; use Reduction::none, mean or sum", op,
                  static_cast<int>(options.reduction));
    CUDACNN_CHECK(options.label_smoothing >= 0.0 && options.label_smoothing <= 1.0,
                  "{}: label_smoothing {} is outside [0, 1]", op, options.label_smoothing);
    if (options.reduction != cpu::Reduction::none) {
        const size_t needed = cross_entropy_workspace_bytes(rows);
        CUDACNN_CHECK(workspace != nullptr && workspace_bytes >= needed,
                      "{}: the workspace has {} bytes at {} but reduction '{}' with {} rows needs {} "
                      "(cross_entropy_workspace_bytes)",
                      op, workspace_bytes, workspace, reduction_name(options.reduction), rows, needed);
        CUDACNN_CHECK(reinterpret_cast<uintptr_t>(workspace) % alignof(double) == 0,
                      "{}: the workspace at {} is not 8-byte aligned", op, workspace);
    }
    return {options.weight, options.ignore_index, static_cast<float>(options.label_smoothing)};
}

// Workspace layout: the mean's denominator (one double), then per-row losses and per-row weights (floats).
double* workspace_denominator(void* workspace) {
    return static_cast<double*>(workspace);
}
float* workspace_row_losses(void* workspace) {
    return reinterpret_cast<float*>(static_cast<unsigned char*>(workspace) + sizeof(double));
}

}  // namespace

void softmax_forward(const float* x, float* y, int64_t rows, int64_t classes, cudaStream_t stream) {
    check_rows("softmax", rows, classes);
    check_pointers("softmax", {x, y});
    launch_rows(kernels::softmax_kernel, x, y, rows, classes, stream);
}

void softmax_backward(const float* y, const float* dy, float* dx, int64_t rows, int64_t classes,
                      cudaStream_t stream) {
    check_rows("softmax_backward", rows, classes);
    check_pointers("softmax_backward", {y, dy, dx});
    launch_rows_backward(kernels::softmax_backward_kernel, y, dy, dx, rows, classes, stream);
}

void log_softmax_forward(const float* x, float* y, int64_t rows, int64_t classes, cudaStream_t stream) {
    check_rows("log_softmax", rows, classes);
    check_pointers("log_softmax", {x, y});
    launch_rows(kernels::log_softmax_kernel, x, y, rows, classes, stream);
}

void log_softmax_backward(const float* y, const float* dy, float* dx, int64_t rows, int64_t classes,
                          cudaStream_t stream) {
    check_rows("log_softmax_backward", rows, classes);
    check_pointers("log_softmax_backward", {y, dy, dx});
    launch_rows_backward(kernels::log_softmax_backward_kernel, y, dy, dx, rows, classes, stream);
}

size_t cross_entropy_workspace_bytes(int64_t rows) {
    return sizeof(double) + 2 * sizeof(float) * static_cast<size_t>(std::max<int64_t>(rows, 0));
}

void cross_entropy_forward(const float* logits, const int64_t* labels, int64_t rows, int64_t classes,
                           const CrossEntropyOptions& options, float* loss, void* workspace,
                           size_t workspace_bytes, cudaStream_t stream) {
    const kernels::CrossEntropyParams params =
        checked_params("cross_entropy", rows, classes, options, workspace, workspace_bytes);
    check_pointers("cross_entropy", {logits, labels, loss});
    const dim3 grid = row_grid(rows), block(kernels::kRowThreads);
    if (options.reduction == cpu::Reduction::none) {
        launch(kernels::cross_entropy_rows_kernel, grid, block, 0, stream, logits, labels, rows, classes,
               params, loss, static_cast<float*>(nullptr));
        return;
    }
    float* row_loss = workspace_row_losses(workspace);
    float* row_weight = options.reduction == cpu::Reduction::mean ? row_loss + rows : nullptr;
    launch(kernels::cross_entropy_rows_kernel, grid, block, 0, stream, logits, labels, rows, classes, params,
           row_loss, row_weight);
    launch(kernels::cross_entropy_reduce_kernel, dim3(1), dim3(kernels::kReduceThreads), 0, stream,
           static_cast<const float*>(row_loss), static_cast<const float*>(row_weight), rows, loss);
}

void cross_entropy_backward(const float* logits, const int64_t* labels, const float* dloss, int64_t rows,
                            int64_t classes, const CrossEntropyOptions& options, float* dlogits,
                            void* workspace, size_t workspace_bytes, cudaStream_t stream) {
    const kernels::CrossEntropyParams params =
        checked_params("cross_entropy_backward", rows, classes, options, workspace, workspace_bytes);
    check_pointers("cross_entropy_backward", {logits, labels, dloss, dlogits});
    const double* denominator = nullptr;
    if (options.reduction == cpu::Reduction::mean) {
        double* d = workspace_denominator(workspace);
        launch(kernels::mean_denominator_kernel, dim3(1), dim3(kernels::kReduceThreads), 0, stream, labels,
               rows, classes, params, d);
        denominator = d;
    }
    launch(kernels::cross_entropy_backward_kernel, row_grid(rows), dim3(kernels::kRowThreads), 0, stream,
           logits, labels, dloss, denominator, options.reduction == cpu::Reduction::none, rows, classes,
           params, dlogits);
}

void cross_entropy_forward_backward(const float* logits, const int64_t* labels, const float* dloss, int64_t rows,
                                    int64_t classes, const CrossEntropyOptions& options, float* loss,
                                    float* dlogits, void* workspace, size_t workspace_bytes, cudaStream_t stream) {
    if (options.reduction == cpu::Reduction::none || rows > kCrossEntropyFusedMaxRows) {
        cross_entropy_forward(logits, labels, rows, classes, options, loss, workspace, workspace_bytes, stream);
        cross_entropy_backward(logits, labels, dloss, rows, classes, options, dlogits, workspace, workspace_bytes,
                               stream);
        return;
    }
    const kernels::CrossEntropyParams params =
        checked_params("cross_entropy_forward_backward", rows, classes, options, workspace, workspace_bytes);
    check_pointers("cross_entropy_forward_backward", {logits, labels, dloss, loss, dlogits});
    float* row_loss = workspace_row_losses(workspace);
    launch(kernels::cross_entropy_fused_kernel, dim3(1), dim3(kernels::kReduceThreads), 0, stream, logits, labels,
           dloss, options.reduction == cpu::Reduction::mean, rows, classes, params, row_loss, row_loss + rows, loss,
           dlogits);
}

void accuracy_counts(const float* logits, const int64_t* labels, int64_t rows, int64_t classes, int64_t k,
                     int64_t* top1_correct, int64_t* topk_correct, bool accumulate, cudaStream_t stream) {
    check_rows("top_k_accuracy", rows, classes);
    CUDACNN_CHECK(k >= 1 && k <= classes,
                  "top_k_accuracy: k {} is outside [1, C] = [1, {}] for logits ({}, {})", k, classes, rows,
                  classes);
    check_pointers("top_k_accuracy", {logits, labels});
    CUDACNN_CHECK(top1_correct != nullptr || topk_correct != nullptr,
                  "top_k_accuracy: top1_correct and topk_correct are both null; pass at least one counter");
    launch(kernels::accuracy_kernel, dim3(1), dim3(kernels::kAccuracyThreads), 0, stream, logits, labels,
           rows, classes, k, top1_correct, topk_correct, accumulate);
}

}  // namespace cudacnn::gpu
