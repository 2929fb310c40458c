// The fast CPU path's mean cross-entropy from logits (forward and backward) and top-1 count, over raw arrays,
// with the reference's semantics and numerics (cpu::cross_entropy with default options but label_smoothing).
#pragma once

#include <cstddef>
#include <cstdint>

#include "src/cpu_fast/workers.hpp"

namespace cudacnn::cpu_fast {

// logits: row-major (rows, classes) floats; labels: (rows) int64 in [0, classes) or -100 (PyTorch's default
// ignore_index: the sample counts nowhere); rows, classes >= 1. A label outside that range throws the
// reference's Error (cpu::cross_entropy's message), before anything is written. label_smoothing: ε in [0, 1].

// The workspace cross_entropy_forward needs: one double per row (the per-sample losses, summed in row order
// afterwards exactly as the reference does). 8-byte aligned.
std::size_t cross_entropy_workspace_bytes(int64_t rows);

// *loss = the mean over the non-ignored samples of (1 − ε) · (−log p[y]) + (ε / C) · Σ_c (−log p[c]),
// p = softmax(logits row); NaN when every sample is ignored. Everything in double as the reference (the same
// operations in the same order, rows in parallel), rounded once: bit-identical to cpu::cross_entropy.
void cross_entropy_forward(const float* logits, const int64_t* labels, int64_t rows, int64_t classes,
                           double label_smoothing, float* loss, void* workspace, std::size_t workspace_bytes,
                           const Workers& workers);

// dlogits (rows, classes), overwritten: the gradient of the mean loss for dloss = 1,
//   dlogits[n, c] = ((1 − ε) · (p[c] − [c = y]) + (ε / C) · (C · p[c] − 1)) / D,
// D = the number of non-ignored samples; ignored rows are 0. Bit-identical to cpu::cross_entropy_backward.
void cross_entropy_backward(const float* logits, const int64_t* labels, int64_t rows, int64_t classes,
                            double label_smoothing, float* dlogits, const Workers& workers);

// The samples whose label ranks first among its logits (cpu::top_k_correct with k = 1: ties go to the first
// maximum, NaN ranks above every number). Labels must lie in [0, classes) (the reference's Error otherwise).
int64_t top1_correct(const float* logits, const int64_t* labels, int64_t rows, int64_t classes,
                     const Workers& workers);

}  // namespace cudacnn::cpu_fast
