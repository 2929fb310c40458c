// Linear (fully connected) layer on the GPU, cpu::linear / cpu::linear_backward semantics, built on sgemm
// (FP32 and TF32) or gemm_bf16 (--precision bf16).
#pragma once

#include <cuda_runtime_api.h>

#include <cstddef>
#include <cstdint>

#include "cuda/bf16.cuh"

namespace cudacnn::gpu {

// The sizes of a linear layer: x (batch, in_features), weight (out_features, in_features) as in PyTorch's
// state_dict, y (batch, out_features).
struct LinearShape {
    int64_t batch = 0;
    int64_t in_features = 0;
    int64_t out_features = 0;
};

// The workspace linear_forward and linear_backward can use to split a product's k range (the own GEMM, FP32
// or TF32, on products with few output tiles and a long k, e.g. CifarCNN's 4096 → 1024 layer:
// gemm_split_workspace_bytes), under the calling thread's GEMM settings; 0 when no product would split.
size_t linear_workspace_bytes(const LinearShape& shape);

// y = x · weightᵀ + bias; bias (out_features) may be nullptr (a layer without bias). Overwrites y.
// With a bias, a broadcast kernel first writes every row of y as the bias and sgemm (x · weightᵀ, beta = 1)
// adds the product to it in its epilogue, so no read-modify-write pass over y follows the product.
// Throws Error naming "linear" and the sizes unless every size is positive.
// `workspace` (linear_workspace_bytes of it, or nullptr: no split) lets the GEMM split k.
void linear_forward(const float* x, const float* weight, const float* bias, float* y,
                    const LinearShape& shape, cudaStream_t stream, void* workspace = nullptr,
                    size_t workspace_bytes = 0);

// Gradients given dy (batch, out_features); each output is overwritten (not accumulated) and may be nullptr
// to skip it: dx (batch, in_features) = dy · weight, dweight (out_features, in_features) = dyᵀ · x (one sgemm
// each), dbias (out_features) = Σ_n dy (linear_bias_grad; nullptr for a layer without bias).
void linear_backward(const float* x, const float* weight, const float* dy, float* dx, float* dweight,
                     float* dbias, const LinearShape& shape, cudaStream_t stream, void* workspace = nullptr,
                     size_t workspace_bytes = 0);

// ---- --precision bf16 ----
// The layer with bf16 activations: x, dy and dx bf16, the weight as its bf16 copy (the master weight stays
// float in the optimizer), bias, dweight and dbias float. Every product runs on the own GEMM
// (gemm_bf16_split, whatever the GemmSettings say; cuBLAS's BF16 GEMM is a later step) with FP32
// accumulation: on tensor cores where available (Bf16GemmKernel::automatic), else on CUDA cores. Products of
// two bf16 are exact in float, so each output is a float sum of the FP32 layer's products on the bf16 values,
// rounded once where it is stored bf16: the FP32 layer's bits on CUDA cores and under the emulator, within
// float-accumulation error of them on a GPU's tensor cores (which sum in their own order).

// What the bf16 overloads may use to split k (the own FP32 GEMM's split-k sizes); 0 when nothing splits.
size_t linear_workspace_bytes_bf16(const LinearShape& shape);

// y = x · weightᵀ + bias with bias (out_features, float; nullptr: none) added in the GEMM's epilogue, so a
// bf16 y is rounded once. y bf16 for hidden layers; float for the last one, whose logits feed the loss in
// float (as PyTorch's autocast does). Errors as the float overload's.
void linear_forward(const bf16* x, const bf16* weight, const float* bias, bf16* y, const LinearShape& shape,
                    cudaStream_t stream, void* workspace = nullptr, size_t workspace_bytes = 0);
void linear_forward(const bf16* x, const bf16* weight, const float* bias, float* y, const LinearShape& shape,
                    cudaStream_t stream, void* workspace = nullptr, size_t workspace_bytes = 0);

// dx (bf16) = dy · weight, dweight (float) = dyᵀ · x, dbias (float) = Σ_n dy; nullptr skips an output.
// dweight and dbias are FP32 sums of the exact products of bf16 values, never rounded to bf16: more accurate
// than PyTorch's autocast, whose weight gradient of a bf16 matmul comes out in bf16 (and is widened for the
// FP32 master weight afterwards).
void linear_backward(const bf16* x, const bf16* weight, const bf16* dy, bf16* dx, float* dweight,
                     float* dbias, const LinearShape& shape, cudaStream_t stream, void* workspace = nullptr,
                     size_t workspace_bytes = 0);

}  // namespace cudacnn::gpu
