// Loss kernels with the CPU reference's semantics (cudacnn/ops/loss.hpp): fused stable softmax +
// cross-entropy from logits (forward and backward), softmax and log_softmax, and top-1 / top-k accuracy
// counts kept on the device.
#pragma once

#include <cuda_runtime_api.h>

#include <cstddef>
#include <cstdint>

#include "cudacnn/ops/loss.hpp"

namespace cudacnn::gpu {

// Logits are row-major (N, C) = (rows, classes) floats in device memory, labels (N) int64 in device memory.
// Every output is overwritten unless a function says otherwise.
//
// Tiling: one warp per row (8 warps = 256 threads per block, grid-stride over rows): lanes stride over the
// classes (coalesced), and the row max, Σ exp and other row sums are warp-shuffle reductions in a fixed
// order. Stable: exp(x − max) ≤ 1, log Σ exp = max + log Σ exp(x − max), so logits of ±1e4 (or ±1e30) work.
// A NaN in a row makes that row's outputs NaN (the max propagates NaN), as in the reference.
// Deterministic: no float atomics anywhere; scalar losses come from a single-block reduction in a fixed
// order.

// ---- softmax / log_softmax over the classes ---------------------------------------------------------------

void softmax_forward(const float* x, float* y, int64_t rows, int64_t classes, cudaStream_t stream);
// From the saved y = softmax(x): dx = y ⊙ (dy − Σ_c dy ⊙ y).
void softmax_backward(const float* y, const float* dy, float* dx, int64_t rows, int64_t classes,
                      cudaStream_t stream);

void log_softmax_forward(const float* x, float* y, int64_t rows, int64_t classes, cudaStream_t stream);
// From the saved y = log_softmax(x): dx = dy − exp(y) · Σ_c dy.
void log_softmax_backward(const float* y, const float* dy, float* dx, int64_t rows, int64_t classes,
                          cudaStream_t stream);

// ---- cross-entropy from logits ----------------------------------------------------------------------------

// cpu::CrossEntropyOptions with the class weights in device memory.
struct CrossEntropyOptions {
    const float* weight = nullptr;  // (C) in device memory, or nullptr for all ones; not owned
    int64_t ignore_index = -100;    // samples with this label contribute nothing
    cpu::Reduction reduction = cpu::Reduction::mean;
    double label_smoothing = 0.0;  // ε in [0, 1]
};

// The workspace that cross_entropy_forward and cross_entropy_backward need for `rows` samples (any
// reduction): per-row losses and weights for the forward's reduction, the mean's denominator for the
// backward. Pass a device block at least this large, 8-byte aligned (device allocations are).
size_t cross_entropy_workspace_bytes(int64_t rows);

// loss: one float for 'mean' and 'sum', (N) floats for 'none' (0 for ignored samples). Per sample, as the
// reference: loss_n = (1 − ε) · w[y] · (−log p[y]) + (ε / C) · Σ_c w[c] · (−log p[c]); 'mean' divides by
// Σ w[y_n] over the samples that are not ignored (NaN when all are ignored, as the reference).
// Labels stay on the device, so they are not validated on the host: a label outside [0, C) that is not
// ignore_index makes its sample's loss NaN (and so the mean or sum), which shows up in the loss at once.
// Two launches for 'mean' / 'sum' (rows into the workspace, then one block sums them in double in a fixed
// order), one for 'none'.
void cross_entropy_forward(const float* logits, const int64_t* labels, int64_t rows, int64_t classes,
                           const CrossEntropyOptions& options, float* loss, void* workspace,
                           size_t workspace_bytes, cudaStream_t stream);

// dlogits (N, C): softmax − smoothed, weighted one-hot, fused per row:
//   dlogits[n, c] = dloss_n / D · ((1 − ε) · w[y] · (p[c] − [c = y]) + (ε / C) · (W · p[c] − w[c]))
// with W = Σ_c w[c], D = Σ w[y_n] over the samples that are not ignored for 'mean' (1 otherwise), dloss_n =
// dloss[0] for 'mean' / 'sum' and dloss[n] for 'none' (dloss in device memory). Ignored rows are 0; a row
// with a bad label (see above) is NaN. 'mean' adds a one-block launch for D (in double, fixed order).
void cross_entropy_backward(const float* logits, const int64_t* labels, const float* dloss, int64_t rows,
                            int64_t classes, const CrossEntropyOptions& options, float* dlogits,
                            void* workspace, size_t workspace_bytes, cudaStream_t stream);

// Up to this many rows, cross_entropy_forward_backward runs as one block (a training batch); beyond, the one
// block's serial share of rows would cost more than the launches it saves.
constexpr int64_t kCrossEntropyFusedMaxRows = 4096;

// cross_entropy_forward then cross_entropy_backward (same arguments, same bits, both outputs) — for 'mean' and
// 'sum' with rows ≤ kCrossEntropyFusedMaxRows in one launch of one block instead of four: the softmax, loss and
// gradient fused, the training step's loss in a single kernel. Otherwise the two calls.
void cross_entropy_forward_backward(const float* logits, const int64_t* labels, const float* dloss, int64_t rows,
                                    int64_t classes, const CrossEntropyOptions& options, float* loss,
                                    float* dlogits, void* workspace, size_t workspace_bytes, cudaStream_t stream);

// ---- accuracy ---------------------------------------------------------------------------------------------

// Counts the samples whose label is in the top 1 and in the top k of its logits, by the reference's rule:
// c ranks above the label y when logits[c] > logits[y], or they are equal and c < y; NaN ranks above every
// number (and NaNs among themselves by index). A label outside [0, C) counts as wrong (labels are not
// validated on the host). top1_correct and topk_correct are single int64 counters in device memory (either
// may be nullptr, not both); accumulate = false overwrites them, true adds to them, so a trainer can sum a
// whole epoch on the device and read it once. k in [1, C].
// One block (32 warps, a warp per row, ballot + popc per 32 classes): a per-batch metric needs no more, and a
// single block can overwrite or accumulate without atomics or a memset.
void accuracy_counts(const float* logits, const int64_t* labels, int64_t rows, int64_t classes, int64_t k,
                     int64_t* top1_correct, int64_t* topk_correct, bool accumulate, cudaStream_t stream);

}  // namespace cudacnn::gpu
