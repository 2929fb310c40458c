// What the project's GEMMs (cuda/gemm.cu: FP32 and BF16 operands, cuda/gemm_tf32.cu: TF32) share on the host:
// the argument checks of their common contract (cuda/gemm.hpp), the rule for vector access, the k == 0 /
// alpha == 0 case, C = beta · C, and the body of split-k (the ranges of k, the workspace, the ordered sum).
#pragma once

#include <cuda_runtime_api.h>

#include <cstddef>
#include <cstdint>
#include <functional>

#include "cuda/bf16.cuh"

namespace cudacnn::gpu {

// The most batch entries one grid's y dimension holds; the kernels loop over the rest.
constexpr int64_t kGemmMaxGridY = 65535;

// Throws Error naming `op` and the values unless the arguments describe valid row-major products.
// (The pointers are only checked against null, so any element type will do.)
void check_gemm_args(const char* op, bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, float alpha,
                     const void* a, int64_t lda, int64_t stride_a, const void* b, int64_t ldb,
                     int64_t stride_b, const void* c, int64_t ldc, int64_t stride_c, int64_t batch);

// Access by groups of 4 elements (float4 for float, 8 bytes for bf16) is legal when every matrix of the batch
// starts aligned to a group (4 · element_bytes) and every row does too.
bool gemm_vectorizable(const void* p, int64_t ld, int64_t stride, int64_t batch, int64_t element_bytes = 4);

// C = beta · C for each of `batch` matrices (m × n, leading dimension ldc, stride_c apart), for k == 0 or
// alpha == 0, where A and B take no part; beta == 0 writes zeros without reading C.
void gemm_scale(int64_t m, int64_t n, float beta, float* c, int64_t ldc, int64_t stride_c, int64_t batch,
                cudaStream_t stream);
// The same for the GEMMs with bf16 operands: a bf16 C is read widened and beta · C rounded once; a non-null
// float `bias` (n) takes beta · C's place (C = bias broadcast over the rows, C not read; see gemm_split_k).
void gemm_scale(int64_t m, int64_t n, float beta, const float* bias, float* c, int64_t ldc, int64_t stride_c,
                int64_t batch, cudaStream_t stream);
void gemm_scale(int64_t m, int64_t n, float beta, const float* bias, bf16* c, int64_t ldc, int64_t stride_c,
                int64_t batch, cudaStream_t stream);

// The products of a split-k GEMM, alpha 1 and beta 0, on the GEMM's own kernel: `batch` ranges of k, each
// k_len long but the last, which is k_last long (≤ k_len); range s reads op(A) at a + s · stride_a, op(B) at
// b + s · stride_b (the caller's lda, ldb and transposes) and writes its dense m × n partial product at
// c + s · m · n.
using GemmRangeProduct = std::function<void(int64_t k_len, int64_t k_last, const float* a, int64_t stride_a,
                                            const float* b, int64_t stride_b, float* c, int64_t batch)>;
// The same for bf16 operands (cuda/gemm.cu's gemm_bf16_split_k); the partial products stay float.
using GemmRangeProductBf16 =
    std::function<void(int64_t k_len, int64_t k_last, const bf16* a, int64_t stride_a, const bf16* b,
                       int64_t stride_b, float* c, int64_t batch)>;

// The bytes of workspace gemm_split_k needs: one m × n float partial product per range of k (see
// gemm_split_k for how k is cut). `op` names the caller in errors (splits < 1).
size_t gemm_split_k_workspace_bytes(const char* op, int64_t m, int64_t n, int64_t k, int64_t splits,
                                    int64_t slice);

// The body of sgemm_split_k and sgemm_tf32_split_k: checks the arguments (errors name `op`, and
// `workspace_function` when the workspace is too small), does k == 0 / alpha == 0 as the GEMMs do, cuts k
// into `splits` ranges whose length is rounded up to a multiple of `slice` (the kernel's k-slice; so there
// may be fewer ranges, the last one shorter), runs `product` once for all of them into the workspace, then
// sums the partial products in range order and
// applies alpha and beta as fmaf(beta, C, alpha · sum) (beta == 0 never reads C). Deterministic, no atomics.
void gemm_split_k(const char* op, const char* workspace_function, int64_t splits, int64_t slice, bool trans_a,
                  bool trans_b, int64_t m, int64_t n, int64_t k, float alpha, const float* a, int64_t lda,
                  const float* b, int64_t ldb, float beta, float* c, int64_t ldc, void* workspace,
                  size_t workspace_bytes, cudaStream_t stream, const GemmRangeProduct& product);

// gemm_split_k for bf16 A and B, C float or bf16 (read widened where beta != 0, rounded once), and an
// optional float `bias` (n; nullptr: none) that takes beta · C's place: C = alpha · sum + bias[column], C not
// read (the bf16 linear layer's epilogue, so that a bf16 y is rounded once, bias included). With a bias, beta
// is ignored.
void gemm_split_k(const char* op, const char* workspace_function, int64_t splits, int64_t slice, bool trans_a,
                  bool trans_b, int64_t m, int64_t n, int64_t k, float alpha, const bf16* a, int64_t lda,
                  const bf16* b, int64_t ldb, float beta, const float* bias, float* c, int64_t ldc,
                  void* workspace, size_t workspace_bytes, cudaStream_t stream,
                  const GemmRangeProductBf16& product);
void gemm_split_k(const char* op, const char* workspace_function, int64_t splits, int64_t slice, bool trans_a,
                  bool trans_b, int64_t m, int64_t n, int64_t k, float alpha, const bf16* a, int64_t lda,
                  const bf16* b, int64_t ldb, float beta, const float* bias, bf16* c, int64_t ldc,
                  void* workspace, size_t workspace_bytes, cudaStream_t stream,
                  const GemmRangeProductBf16& product);

}  // namespace cudacnn::gpu
