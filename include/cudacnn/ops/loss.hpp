// Softmax, log-softmax, cross-entropy (PyTorch's nn.CrossEntropyLoss) and accuracy metrics: CPU reference.
#pragma once

#include <cstdint>

#include "cudacnn/host_tensor.hpp"

namespace cudacnn::cpu {

// ---- softmax / log-softmax over the last dimension of (N, C) --------------------------------------------
// Numerically stable: the row maximum is subtracted before exp, so logits of any size (1e4, 1e30) work.
// The float versions compute in double and round once.

template <class T>
HostTensor<T> softmax(const HostTensor<T>& x);  // (N, C) → (N, C), each row sums to 1

template <class T>
HostTensor<T> log_softmax(const HostTensor<T>& x);  // (N, C) → (N, C): x − max − log Σ exp(x − max)

template <class T>
struct SoftmaxGrads {
    HostTensor<T> dx;  // (N, C)
};

// Backward from the saved output y = softmax(x), as PyTorch does: dx = y ⊙ (dy − Σ_c dy ⊙ y).
template <class T>
SoftmaxGrads<T> softmax_backward(const HostTensor<T>& y, const HostTensor<T>& dy);

// Backward from the saved output y = log_softmax(x): dx = dy − exp(y) · Σ_c dy.
template <class T>
SoftmaxGrads<T> log_softmax_backward(const HostTensor<T>& y, const HostTensor<T>& dy);

// ---- cross-entropy from logits --------------------------------------------------------------------------

// How per-sample losses combine; PyTorch's reduction='none' | 'mean' | 'sum'.
enum class Reduction { none, mean, sum };

// nn.CrossEntropyLoss's options with its defaults. Per sample n with label y (not ignored), C classes,
// class weights w (all ones without weight) and p = softmax(logits[n]):
//   loss_n = (1 − ε) · w[y] · (−log p[y]) + (ε / C) · Σ_c w[c] · (−log p[c])
// 'mean' divides Σ_n loss_n by Σ_n w[y_n] over the samples that are not ignored (both terms, as PyTorch
// 1.13 does), so it is NaN when every sample is ignored (PyTorch too; the gradient is then zero).
// 'sum' is Σ_n loss_n; 'none' gives loss_n, 0 for ignored samples.
template <class T>
struct CrossEntropyOptions {
    const HostTensor<T>* weight = nullptr;  // (C) per-class weights, or nullptr for all ones; not owned
    int64_t ignore_index = -100;            // samples with this label contribute nothing
    Reduction reduction = Reduction::mean;
    double label_smoothing = 0.0;  // ε in [0, 1]
};

// logits (N, C), labels (N) with values in [0, C) or ignore_index. Returns the loss: shape () for 'mean'
// and 'sum', (N) for 'none'. Throws Error on bad shapes, labels out of range, weights of the wrong length
// or label_smoothing outside [0, 1].
template <class T>
HostTensor<T> cross_entropy(const HostTensor<T>& logits, const HostTensor<int64_t>& labels,
                            const CrossEntropyOptions<T>& options = {});

template <class T>
struct CrossEntropyGrads {
    HostTensor<T> dlogits;  // (N, C)
};

// Gradient with respect to the logits; dloss has the shape cross_entropy returned (() or (N)).
template <class T>
CrossEntropyGrads<T> cross_entropy_backward(const HostTensor<T>& logits, const HostTensor<int64_t>& labels,
                                            const HostTensor<T>& dloss,
                                            const CrossEntropyOptions<T>& options = {});

// ---- accuracy -------------------------------------------------------------------------------------------
// A sample counts for top-k when fewer than k classes rank above its label, where class c ranks above
// label y if logits[c] > logits[y], or if they are equal and c < y. For k = 1 that is torch.argmax's rule
// (ties go to the first maximum), and NaN ranks above every number, as torch.argmax treats NaN as the
// maximum. labels (N) must lie in [0, C); k in [1, C].

template <class T>
int64_t top_k_correct(const HostTensor<T>& logits, const HostTensor<int64_t>& labels, int64_t k);  // a count

template <class T>
double top_k_accuracy(const HostTensor<T>& logits, const HostTensor<int64_t>& labels,
                      int64_t k);  // in [0, 1]

template <class T>
double accuracy(const HostTensor<T>& logits, const HostTensor<int64_t>& labels);  // top-1, in [0, 1]

}  // namespace cudacnn::cpu
