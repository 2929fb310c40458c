// batch_norm2d kernels over (N, C, H, W) float32 or bfloat16 tensors, NCHW or NHWC: training (batch
// statistics, running-statistics update) and evaluation, forward and backward, computing what the CPU
// reference (include/cudacnn/ops/batch_norm.hpp) defines.
#pragma once

#include <cuda_runtime_api.h>

#include <cstddef>
#include <cstdint>

#include "cuda/bf16.cuh"
#include "cudacnn/memory_format.hpp"
#include "cudacnn/ops/batch_norm.hpp"
#include "cudacnn/tensor.hpp"

namespace cudacnn::gpu {

// nn.BatchNorm2d's buffers: running_mean and running_var on the device, (C) each; num_batches_tracked on the
// host, because it only chooses the update factor. A training launch increments num_batches_tracked and,
// with options.momentum unset (cumulative average), passes 1 / num_batches_tracked to the kernel as an
// argument: a CUDA graph that captured such a launch would replay the old factor, so capture only with a
// momentum (the CifarCNN default 0.1), or re-capture every step.
//
// input_shift (C) or nullptr: per-channel values that x lacks, the bias of a convolution folded into this
// batch norm (the executor runs such a conv without its bias). A training step normalizes x as it is, which
// is exact since the batch mean cancels the shift, and updates the running mean with mean(x) + input_shift[c]
// (the variance does not change with a shift). Evaluation reads the running statistics, which include the
// shift, so it refuses an input_shift: run the conv with its bias there.
struct BatchNorm2dRunningStatsView {
    float* running_mean = nullptr;  // (C)
    float* running_var = nullptr;   // (C)
    int64_t num_batches_tracked = 0;
    const float* input_shift = nullptr;  // (C)
};

// bf16: every launcher below also takes bf16 activations (x, y, dy, dx; --precision bf16), with everything
// else float as for float activations: weight, bias, dweight, dbias, the running statistics and input_shift,
// the saves, the workspace (the same batch_norm2d_workspace_bytes). The kernels are the float ones
// instantiated for bf16: a load widens exactly, every sum and statistic is the float kernels' (the same
// units, threads, trees and Chan merges, so the same bits as the float launchers on the widened values), and
// each y or dx element is rounded to nearest even once, when it is stored. A width-4 unit moves as one 8-byte
// access when the bf16 tensors are 8-byte aligned, as 4 scalars otherwise (the same bits).

// NHWC (channels_last): every launcher below takes a MemoryFormat (last, default nchw) that applies to x, y,
// dy and dx (shapes still written (N, C, H, W); element (n, c, h, w) at ((n · H + h) · W + w) · C + c);
// weight, bias, the saves, the running statistics, input_shift and the workspace are (C) vectors or bytes as
// for NCHW. The NHWC launchers compute the same functions with the same checks and errors, float and bf16
// (each y or dx element rounded once when stored), deterministic, without atomics, but sum in another order
// than NCHW's: their statistics and sums match NCHW's within float rounding, not bit for bit.
//  1. statistics (and the backward's sums): grid (S, G), block (group, rows): G = ⌈C / 32⌉ groups of
//     group = ⌈C / G⌉ channels, rows = 256 / group. Block (s, g) covers channels [g · group, (g + 1) · group)
//     of the s-th of S equal slices of the N·H·W pixels, thread (t, r) channel g · group + t of the slice's
//     pixels r, r + rows, …: a warp reads consecutive channels of consecutive pixels (with C ≤ 32 one
//     contiguous run). Each thread loads 4 values at once and merges their (count, mean, M2) with Chan's
//     formula (the NCHW kernel's pivot shift, x[0, c, 0, 0]); the block merges its rows in a fixed halving
//     tree and writes one partial per (slice, channel) to the workspace. S ≤ 1024 grows with N·H·W, about 16
//     values per thread, so that small-C layers fill the GPU.
//  2. finalize: one warp per channel; lane l merges partials l, l + 32, … in turn, then the warp in a fixed
//     tree; it writes save_mean and save_invstd and updates the running statistics (the backward's: dweight,
//     dbias and the two means dx subtracts, in the workspace). A kernel of its own, unlike NCHW's merge in
//     every normalize block: an element-wise NHWC block touches every channel, and would re-merge all C · S
//     partials. Evaluation runs it too (the saves from the running statistics; no workspace).
//  3. normalize (dx): one thread per unit in memory order, channel c = offset % C (advanced without a
//     division); a unit is 4 values, one pixel's channels c … c + 3, when C % 4 == 0 (one vector access when
//     the tensors are aligned, 4 scalars otherwise: the same bits), else 1. It reads save_mean and
//     save_invstd (the backward: the saves and the means), so y may be x.

// Bytes of device workspace that batch_norm2d and batch_norm2d_backward need for this input shape (either
// direction, either memory format: the larger of the two layouts' needs); a multiple of 16. Needed by the
// training forward and by the backward unless it is in evaluation mode with dweight and dbias both nullptr;
// those calls check workspace_bytes against it, the others ignore the workspace (it may be nullptr).
size_t batch_norm2d_workspace_bytes(const Shape& input_shape);

// y (N, C, H, W) = (x − mean) · invstd · weight + bias per channel; save_mean, save_invstd (C) as the
// reference returns them. weight, bias: (C) or nullptr (affine=False). running: nullptr for
// track_running_stats=False (training only); otherwise its statistics are read (evaluation) or updated in
// place (training: momentum or cumulative average, unbiased variance M / (M − 1), M = N·H·W). Overwrites y
// (which may be x) and the saves. Validates like the reference (eps, momentum, evaluation needs running,
// training needs M > 1).
//
// Training runs two kernels, both deterministic (no atomics). A channel's values are taken in units of 4
// consecutive values of a plane when H·W % 4 == 0 (one float4 when the tensors are 16-byte aligned, 4
// scalars otherwise: the same bits either way), else of 1.
//  1. statistics: grid (S, C), 256 threads; block (s, c) covers the s-th of S equal slices of channel c's
//     units in (n, h, w) order (a warp reads 32 consecutive units of a plane: coalesced). Each thread loads
//     up to 4 units at once, takes their (count, mean, M2) in two passes over registers, and merges batches
//     with Chan's formula; the block merges the threads' triples in a fixed shuffle tree and writes one
//     partial to the workspace. S ≤ 32 grows with N·H·W so that small-C layers still fill the GPU (about
//     2048 values per block). Block (0, c) also stores the shift it subtracted, x[0, c, 0, 0], in the
//     workspace, where kernel 2 reads it (not from x, which y may overwrite).
//  2. normalize: grid (S', C), about 4096 values per block. Every block first merges its channel's S
//     partials in one warp (lane s holds partial s, a fixed tree: the same bits in every block) into mean
//     and invstd = 1 / sqrt(var + eps) with the biased variance; block (0, c) writes save_mean, save_invstd
//     and updates the running statistics. Then each thread normalizes its units.
// Evaluation runs kernel 2 alone, with the running statistics in place of the merged partials.
void batch_norm2d(const float* x, const float* weight, const float* bias,
                  BatchNorm2dRunningStatsView* running, float* y, float* save_mean, float* save_invstd,
                  const Shape& input_shape, const cpu::BatchNorm2dOptions& options, void* workspace,
                  size_t workspace_bytes, cudaStream_t stream, MemoryFormat format = MemoryFormat::nchw);
void batch_norm2d(const bf16* x, const float* weight, const float* bias, BatchNorm2dRunningStatsView* running,
                  bf16* y, float* save_mean, float* save_invstd, const Shape& input_shape,
                  const cpu::BatchNorm2dOptions& options, void* workspace, size_t workspace_bytes,
                  cudaStream_t stream, MemoryFormat format = MemoryFormat::nchw);

// dx (N, C, H, W), dweight = Σ dy · x̂ and dbias = Σ dy (C) over (N, H, W), x̂ = (x − save_mean) · save_invstd,
// given the forward's x, weight (or nullptr: 1), save_mean and save_invstd. training: dx goes through the
// batch statistics, dx = weight · invstd · (dy − mean(dy) − x̂ · mean(dy · x̂)); otherwise the statistics are
// constants, dx = weight · invstd · dy. Overwrites dx, dweight and dbias (it does not accumulate); dweight
// and dbias may be nullptr when not wanted (affine=False). Deterministic, in the forward's layout: grid
// (S, C) blocks sum dy and dy · (x − mean) over their slices in a fixed tree; then the dx kernel's blocks
// each add their channel's S partials in one warp in a fixed tree (block (0, c) writes dweight and dbias)
// and write dx. Without sums (evaluation, dweight and dbias nullptr) only the dx kernel runs.
void batch_norm2d_backward(const float* x, const float* weight, const float* save_mean,
                           const float* save_invstd, const float* dy, float* dx, float* dweight, float* dbias,
                           const Shape& input_shape, bool training, void* workspace, size_t workspace_bytes,
                           cudaStream_t stream, MemoryFormat format = MemoryFormat::nchw);
void batch_norm2d_backward(const bf16* x, const float* weight, const float* save_mean,
                           const float* save_invstd, const bf16* dy, bf16* dx, float* dweight, float* dbias,
                           const Shape& input_shape, bool training, void* workspace, size_t workspace_bytes,
                           cudaStream_t stream, MemoryFormat format = MemoryFormat::nchw);

// batch_norm2d and a following ReLU in one pass: y = relu(batch_norm2d(x)), bit for bit what batch_norm2d then
// relu_forward give (the normalize kernel applies ReLU's rule, cuda/relu_rule.cuh, before it stores), without
// writing and reading back the intermediate tensor. Same arguments, checks and saves as batch_norm2d. On bf16
// the ReLU is applied before the one rounding: the values of relu_forward on the rounded output (a negative
// value that rounds to −0 keeps its sign there; here it is +0).
void batch_norm2d_relu(const float* x, const float* weight, const float* bias,
                       BatchNorm2dRunningStatsView* running, float* y, float* save_mean, float* save_invstd,
                       const Shape& input_shape, const cpu::BatchNorm2dOptions& options, void* workspace,
                       size_t workspace_bytes, cudaStream_t stream, MemoryFormat format = MemoryFormat::nchw);
void batch_norm2d_relu(const bf16* x, const float* weight, const float* bias,
                       BatchNorm2dRunningStatsView* running, bf16* y, float* save_mean, float* save_invstd,
                       const Shape& input_shape, const cpu::BatchNorm2dOptions& options, void* workspace,
                       size_t workspace_bytes, cudaStream_t stream, MemoryFormat format = MemoryFormat::nchw);

// The backward of batch_norm2d_relu, given its output y and the gradient dy of y: bit for bit relu_backward(y,
// dy) then batch_norm2d_backward, with ReLU's backward applied wherever the batch norm kernels read a gradient.
void batch_norm2d_relu_backward(const float* x, const float* y, const float* weight, const float* save_mean,
                                const float* save_invstd, const float* dy, float* dx, float* dweight,
                                float* dbias, const Shape& input_shape, bool training, void* workspace,
                                size_t workspace_bytes, cudaStream_t stream,
                                MemoryFormat format = MemoryFormat::nchw);
void batch_norm2d_relu_backward(const bf16* x, const bf16* y, const float* weight, const float* save_mean,
                                const float* save_invstd, const bf16* dy, bf16* dx, float* dweight,
                                float* dbias, const Shape& input_shape, bool training, void* workspace,
                                size_t workspace_bytes, cudaStream_t stream,
                                MemoryFormat format = MemoryFormat::nchw);

// Training from per-channel partial statistics that a producer of x computed as it wrote x (e.g. a
// convolution's epilogue), instead of batch_norm2d's statistics kernel: one fewer full read of x.
// A partial is (mean, M2 = Σ (value − mean)², count) of `count` values of one channel, with the values as x
// holds them (bf16: the rounded values). Layout: partials[c · P + p], P = partials_per_channel ≥ 1 for every
// channel; a partial with count 0 is skipped. The counts of a channel must add up to N·H·W (not checkable on
// the host: the caller's contract).
struct BatchNorm2dPartialStats {
    float mean;
    float m2;
    int32_t count;
};
static_assert(sizeof(BatchNorm2dPartialStats) == 12, "three 4-byte fields, no padding");

// batch_norm2d (training only) from such partials: one warp per channel merges its P partials with Chan's
// formula in a fixed order (lane l takes p = l, l + 32, … in turn, then the warp's fixed shuffle tree),
// writes save_mean and save_invstd and updates the running statistics (input_shift included) as
// batch_norm2d's training does; then the normalize (batch_norm2d's, reading the saves) writes y, which may be
// x. No workspace, deterministic, no atomics. Same checks and errors as batch_norm2d, plus training mode and
// P ≥ 1. The _relu variants fuse a following ReLU as batch_norm2d_relu does.
void batch_norm2d_from_partials(const float* x, const BatchNorm2dPartialStats* partials,
                                int partials_per_channel, const float* weight, const float* bias,
                                BatchNorm2dRunningStatsView* running, float* y, float* save_mean,
                                float* save_invstd, const Shape& input_shape,
                                const cpu::BatchNorm2dOptions& options, cudaStream_t stream,
                                MemoryFormat format = MemoryFormat::nchw);
void batch_norm2d_from_partials(const bf16* x, const BatchNorm2dPartialStats* partials,
                                int partials_per_channel, const float* weight, const float* bias,
                                BatchNorm2dRunningStatsView* running, bf16* y, float* save_mean,
                                float* save_invstd, const Shape& input_shape,
                                const cpu::BatchNorm2dOptions& options, cudaStream_t stream,
                                MemoryFormat format = MemoryFormat::nchw);
void batch_norm2d_relu_from_partials(const float* x, const BatchNorm2dPartialStats* partials,
                                     int partials_per_channel, const float* weight, const float* bias,
                                     BatchNorm2dRunningStatsView* running, float* y, float* save_mean,
                                     float* save_invstd, const Shape& input_shape,
                                     const cpu::BatchNorm2dOptions& options, cudaStream_t stream,
                                     MemoryFormat format = MemoryFormat::nchw);
void batch_norm2d_relu_from_partials(const bf16* x, const BatchNorm2dPartialStats* partials,
                                     int partials_per_channel, const float* weight, const float* bias,
                                     BatchNorm2dRunningStatsView* running, bf16* y, float* save_mean,
                                     float* save_invstd, const Shape& input_shape,
                                     const cpu::BatchNorm2dOptions& options, cudaStream_t stream,
                                     MemoryFormat format = MemoryFormat::nchw);

}  // namespace cudacnn::gpu
