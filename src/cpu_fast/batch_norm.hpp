// The fast CPU path's batch_norm2d over (N, C, H, W) float arrays, forward (training and evaluation) and
// backward, with the reference's semantics and numerics (cpu::batch_norm2d, cudacnn/ops/batch_norm.hpp).
#pragma once

#include <cstdint>
#include <functional>

#include "cudacnn/ops/batch_norm.hpp"
#include "cudacnn/tensor.hpp"
#include "src/cpu_fast/workers.hpp"

namespace cudacnn::cpu_fast {

// nn.BatchNorm2d's buffers as raw pointers: running_mean, running_var (C floats each), num_batches_tracked.
struct BatchNorm2dRunningStatsView {
    float* running_mean = nullptr;
    float* running_var = nullptr;
    int64_t num_batches_tracked = 0;
};

// Sums `n` doubles in place across the ranks of a data-parallel run (synchronized batch norm,
// ExecutorOptions::sync_batch_norm); every rank calls it at the same points with the same n.
using StatisticsReducer = std::function<void(double* values, int64_t n)>;

// As gpu::batch_norm2d without workspace and stream: y (N, C, H, W) = (x − mean) · invstd · weight + bias per
// channel; save_mean, save_invstd (C floats each) as the reference returns them. weight, bias: (C) or nullptr
// (affine=False). running: nullptr for track_running_stats=False (training only); otherwise read (evaluation)
// or updated in place (training: num_batches_tracked += 1, then momentum or, when options.momentum is unset,
// the cumulative factor 1 / num_batches_tracked; unbiased variance M / (M − 1), M = N·H·W). Validates like the
// reference, with its messages. One work item per channel running the reference's own loops (statistics in
// double in (n, h, w) order, two passes): bit-identical to cpu::batch_norm2d<float>. With a `reducer`, training
// normalizes by the statistics of every rank's batch together: each channel's sum (with the count of values),
// then its squares about the world's mean are summed across ranks (PyTorch's SyncBatchNorm).
void batch_norm2d(const float* x, const float* weight, const float* bias, BatchNorm2dRunningStatsView* running,
                  float* y, float* save_mean, float* save_invstd, const Shape& input_shape,
                  const cpu::BatchNorm2dOptions& options, const Workers& workers,
                  const StatisticsReducer* reducer = nullptr);

// dx (N, C, H, W), dweight = Σ dy · x̂ and dbias = Σ dy (C) over (N, H, W), given the forward's x, weight (or
// nullptr: 1), save_mean and save_invstd; training: through the batch statistics, else the statistics are
// constants. Overwrites dx, dweight and dbias; each may be nullptr when not wanted (dx: no layer before wants a
// gradient; dweight, dbias: affine=False). One work item per channel, the reference's loops: bit-identical to
// cpu::batch_norm2d_backward<float>. With a `reducer` (training), Σ dy and Σ dy · x̂ are summed across ranks for
// dx (the forward's world statistics depend on every rank's x); dweight and dbias stay this rank's sums.
void batch_norm2d_backward(const float* x, const float* weight, const float* save_mean, const float* save_invstd,
                           const float* dy, float* dx, float* dweight, float* dbias, const Shape& input_shape,
                           bool training, const Workers& workers, const StatisticsReducer* reducer = nullptr);

}  // namespace cudacnn::cpu_fast
