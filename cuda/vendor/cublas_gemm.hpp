// cuBLAS SGEMM behind the row-major API of gpu::sgemm / gpu::sgemm_strided_batched (cuda flavour only), and
// the same GEMMs with bf16 A and B (cublasGemmEx, FP32 accumulation, C float or bf16).
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>

#include "cuda/bf16.cuh"

namespace cudacnn::gpu {

// Exactly the contract and argument lists of gpu::sgemm and gpu::sgemm_strided_batched (cuda/gemm.hpp):
// C (m, n) = alpha · op(A) · op(B) + beta · C, all row-major, op(A) (m, k) stored (m, k) with lda ≥ k or,
// when trans_a, (k, m) with lda ≥ m; op(B) (k, n) stored (k, n) with ldb ≥ n or (n, k) with ldb ≥ k; ldc ≥ n.
// beta == 0 never reads C; m == 0, n == 0 or batch == 0 does nothing; k == 0 or alpha == 0 gives C = beta · C
// without reading A or B. Bad sizes, leading dimensions or strides throw Error naming the function.
//
// cuBLAS is column-major, and a row-major (r, c) matrix with leading dimension ld is the column-major (c, r)
// matrix with the same ld, i.e. its transpose. So C = op(A) · op(B) is computed as the column-major product
// Cᵀ (n, m) = op(B)ᵀ · op(A)ᵀ: B is cuBLAS's first operand, A its second, and m and n trade places; the
// transpose flags carry over unchanged. The 64-bit cuBLAS entry points take the sizes as they are.
//
// Runs on `stream` with the calling thread's cuBLAS handle for the current device (created on first use),
// pointer mode host, and math mode CUBLAS_DEFAULT_MATH: FP32 multiply-adds, no TF32 (which has fewer mantissa
// bits than float, so the default mode does not use it). set_cublas_allow_tf32(true) switches to
// CUBLAS_TF32_TENSOR_OP_MATH. Deterministic (cuBLAS disallows atomics by default) on one GPU architecture,
// as long as a handle is not shared between streams concurrently: cuBLAS's results depend on which of its
// internal workspace buffers are free (cuBLAS "Results reproducibility"; CUBLAS_WORKSPACE_CONFIG fixes that).
void cublas_sgemm(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, float alpha, const float* a,
                  int64_t lda, const float* b, int64_t ldb, float beta, float* c, int64_t ldc,
                  cudaStream_t stream);

// The same for `batch` independent products; matrix i starts at a + i·stride_a, b + i·stride_b, c +
// i·stride_c (stride 0 reuses one matrix; stride_c == 0 only for batch ≤ 1). One cublasSgemmStridedBatched_64
// call.
void cublas_sgemm_strided_batched(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, float alpha,
                                  const float* a, int64_t lda, int64_t stride_a, const float* b, int64_t ldb,
                                  int64_t stride_b, float beta, float* c, int64_t ldc, int64_t stride_c,
                                  int64_t batch, cudaStream_t stream);

// The same two with the math mode given per call (allow_tf32: CUBLAS_TF32_TENSOR_OP_MATH, else
// CUBLAS_DEFAULT_MATH) instead of the process-wide setting below; gpu::gemm calls these.
void cublas_sgemm_with_math(bool allow_tf32, bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k,
                            float alpha, const float* a, int64_t lda, const float* b, int64_t ldb, float beta,
                            float* c, int64_t ldc, cudaStream_t stream);
void cublas_sgemm_strided_batched_with_math(bool allow_tf32, bool trans_a, bool trans_b, int64_t m, int64_t n,
                                            int64_t k, float alpha, const float* a, int64_t lda,
                                            int64_t stride_a, const float* b, int64_t ldb, int64_t stride_b,
                                            float beta, float* c, int64_t ldc, int64_t stride_c, int64_t batch,
                                            cudaStream_t stream);

// Whether cuBLAS may use TF32 tensor cores for FP32 GEMMs (PyTorch's torch.backends.cuda.matmul.allow_tf32).
// Process-wide, off by default so that results match the float reference within float tolerances; takes
// effect at the next cublas_sgemm* call on any thread. TF32 rounds the inputs to 10 mantissa bits (about 1e-3
// relative error per product) in exchange for up to ~7x the FP32 throughput on an H100.
void set_cublas_allow_tf32(bool allow);
bool cublas_allow_tf32();

// ---- bf16 operands (--precision bf16) ----
// cublas_sgemm's contract, row-major swap, checks and error messages (naming cublas_gemm_bf16 or
// cublas_gemm_bf16_strided_batched) with A and B stored in bf16 (CUDA_R_16BF) and C float (CUDA_R_32F) or
// bf16 (CUDA_R_16BF), the overloads: one cublasGemmEx_64 / cublasGemmStridedBatchedEx_64 call with
// CUBLAS_COMPUTE_32F (the documented combinations A, B 16BF with C 16BF or 32F; alpha and beta float). cuBLAS
// multiplies the exact bf16 values and accumulates in FP32 (bf16 tensor cores from compute capability 8.0);
// a bf16 C (read widened where beta ≠ 0) is rounded once per element. The math mode is CUBLAS_DEFAULT_MATH |
// CUBLAS_MATH_DISALLOW_REDUCED_PRECISION_REDUCTION, so that partial sums of a split k are added in FP32 and
// not in C's type (by default cuBLAS may reduce them in bf16, rounding a bf16 C more than once); the TF32
// setting does not apply (it concerns float operands). Deterministic as cublas_sgemm is.
// The linear layer's uses, W (out, in) stored row-major: y (N, out) = x · Wᵀ (trans_b; C bf16, or float for
// logits that feed the loss), dx (N, in) = dy · W (C bf16), dW (out, in) = dyᵀ · x (trans_a; C float, the
// executor's float weight gradient, beta 1 where gradients accumulate).
void cublas_gemm_bf16(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, float alpha, const bf16* a,
                      int64_t lda, const bf16* b, int64_t ldb, float beta, float* c, int64_t ldc,
                      cudaStream_t stream);
void cublas_gemm_bf16(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, float alpha, const bf16* a,
                      int64_t lda, const bf16* b, int64_t ldb, float beta, bf16* c, int64_t ldc,
                      cudaStream_t stream);

// The same for `batch` independent products, strides as cublas_sgemm_strided_batched's (in elements).
void cublas_gemm_bf16_strided_batched(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k,
                                      float alpha, const bf16* a, int64_t lda, int64_t stride_a,
                                      const bf16* b, int64_t ldb, int64_t stride_b, float beta, float* c,
                                      int64_t ldc, int64_t stride_c, int64_t batch, cudaStream_t stream);
void cublas_gemm_bf16_strided_batched(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k,
                                      float alpha, const bf16* a, int64_t lda, int64_t stride_a,
                                      const bf16* b, int64_t ldb, int64_t stride_b, float beta, bf16* c,
                                      int64_t ldc, int64_t stride_c, int64_t batch, cudaStream_t stream);

}  // namespace cudacnn::gpu
