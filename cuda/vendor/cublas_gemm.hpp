// cuBLAS SGEMM behind the row-major API of gpu::sgemm / gpu::sgemm_strided_batched (cuda flavour only).
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>

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

}  // namespace cudacnn::gpu
