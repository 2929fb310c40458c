// The project's own tiled SGEMM (row-major), single and strided-batched; cuBLAS wrappers share the signature.
// The same kernels with bf16 A and B (FP32 accumulation, C float or bf16): gemm_bf16 and its variants, which
// run on tensor cores (cuda/gemm_bf16_tc.hpp) where available and on the CUDA-core kernel otherwise.
#pragma once

#include <cuda_runtime_api.h>

#include <cstddef>
#include <cstdint>

#include "cuda/bf16.cuh"

namespace cudacnn::gpu {

// C (m, n) = alpha · op(A) · op(B) + beta · C, all row-major. op(A) is (m, k): A is stored (m, k) with
// leading dimension lda ≥ k, or, when trans_a, stored (k, m) with lda ≥ m. Likewise op(B) is (k, n): B stored
// (k, n) with ldb ≥ n, or (n, k) when trans_b with ldb ≥ k. ldc ≥ n. beta == 0 never reads C (it may hold
// NaN). As in cuBLAS: m == 0 or n == 0 does nothing; k == 0 or alpha == 0 gives C = beta · C without reading
// A and B (which may then be null). Throws Error naming the op and the values on bad arguments.
//
// Accumulates in float, each element's products in k order, so results are deterministic (no atomics) and
// independent of the tile size chosen.
// Tiling (see GemmTiling): warp-tiled block tiles, 128 × 128 with 8 × 8 outputs per thread for products that
// fill the GPU, smaller ones (down to 32 × 32) for thin or small products; k in slices of 16 staged through
// double-buffered shared memory (k-major, so each thread reads float4 runs), the next slice loaded into
// registers while the current one is multiplied, one barrier per slice. float4 global loads and stores where
// pointers, leading dimensions and batch strides are 16-byte aligned, scalar ones otherwise; edges guarded
// for any size.
void sgemm(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, float alpha, const float* a,
           int64_t lda, const float* b, int64_t ldb, float beta, float* c, int64_t ldc, cudaStream_t stream);

// The same for `batch` independent products; matrix i starts at a + i·stride_a, b + i·stride_b, c +
// i·stride_c (a stride of 0 reuses one matrix for every batch entry; stride_c == 0 is allowed only for batch
// ≤ 1).
void sgemm_strided_batched(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, float alpha,
                           const float* a, int64_t lda, int64_t stride_a, const float* b, int64_t ldb,
                           int64_t stride_b, float beta, float* c, int64_t ldc, int64_t stride_c,
                           int64_t batch, cudaStream_t stream);

// Which block tile (rows × columns of C) sgemm uses; `automatic` is what sgemm and sgemm_strided_batched do
// (sgemm_automatic_tiling). The explicit choices exist so that tests cover every kernel whatever the sizes
// (the result is bitwise the same either way). large is 64 × 64, small 32 × 32 (4 × 4 outputs per thread).
enum class GemmTiling { automatic, large, small, block128x128, block64x128, block128x64, block32x128 };

// The tiling `automatic` picks for `batch` products of m × n: the biggest tile that fits the shape without
// much padding and still gives each SM of an H100 at least one block, else the smallest.
GemmTiling sgemm_automatic_tiling(int64_t m, int64_t n, int64_t batch);

// sgemm_strided_batched with the block tile chosen by the caller.
void sgemm_strided_batched_with_tiling(GemmTiling tiling, bool trans_a, bool trans_b, int64_t m, int64_t n,
                                       int64_t k, float alpha, const float* a, int64_t lda, int64_t stride_a,
                                       const float* b, int64_t ldb, int64_t stride_b, float beta, float* c,
                                       int64_t ldc, int64_t stride_c, int64_t batch, cudaStream_t stream);

// Split-k, for products with few output tiles and a long k (a linear layer's 128 × 1024 output with
// k = 4096 makes 8 blocks of 128 × 128 for 132 SMs): k is cut into `splits` ranges (lengths rounded up to a
// multiple of 16, so there may be fewer), each range's product is written to the workspace by the tiled
// kernel (all ranges in one launch), then a second kernel sums the partial products in range order and
// applies alpha and beta. Deterministic (no atomics), but the sums are associated differently from sgemm's,
// so the bits differ from sgemm's unless splits == 1. Arguments, errors and k == 0 / alpha == 0 as sgemm;
// throws Error when the workspace is smaller than sgemm_split_k_workspace_bytes(m, n, k, splits).
void sgemm_split_k(int64_t splits, bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, float alpha,
                   const float* a, int64_t lda, const float* b, int64_t ldb, float beta, float* c, int64_t ldc,
                   void* workspace, size_t workspace_bytes, cudaStream_t stream);

// The bytes of workspace sgemm_split_k needs: one m × n float partial product per range of k.
size_t sgemm_split_k_workspace_bytes(int64_t m, int64_t n, int64_t k, int64_t splits);

// The split count worth using on an H100: 1 when the output alone gives every SM a block (then use sgemm),
// else enough ranges for about one block per SM, each at least 256 long.
int64_t sgemm_split_k_count(int64_t m, int64_t n, int64_t k);

// ---- BF16 operands (--precision bf16) ----
// The GEMMs above with A and B stored in bf16: the same contract and errors (the error messages name
// gemm_bf16, gemm_bf16_strided_batched, gemm_bf16_split_k, gemm_bf16_split), alpha and beta as sgemm's.
// C is float or bf16 (the overloads); a bf16 C is read widened where beta != 0, and each element is rounded
// once (to nearest even) after alpha and beta are applied. Sums are float; the product of two bf16 is exact
// in float. Two kernels (Bf16GemmKernel):
// - tensor cores (cuda/gemm_bf16_tc.hpp: wmma bf16 16 × 16 × 16, FP32 accumulators, 128 × 128 or 64 × 64
//   block tiles), what the entry points without a kernel argument run where bf16_tensor_cores_available();
// - CUDA cores: sgemm's kernel and tilings, loads widening the operands to float, so C is bit for bit what
//   sgemm computes on the widened operands; vector accesses (8 bytes of bf16) where pointers, leading
//   dimensions and batch strides keep groups of 4 elements 8-byte aligned, scalar ones otherwise. The
//   fallback where tensor cores are not available (-DCUDACNN_TENSOR_CORES=0, compute capability < 8.0).
// Both sum each element's products in k order; under the CPU emulator, whose wmma adds in k order in float,
// they agree bit for bit. A GPU's tensor cores associate each step of 16 products their own way (and may
// truncate rather than round their internal sums), so there the two differ by float-accumulation errors.
enum class Bf16GemmKernel { automatic, tensor_cores, cuda_cores };

// Whether the tensor-core kernel can run: built with CUDACNN_TENSOR_CORES (the default) and a device of
// compute capability 8.0 or more (the CPU emulator reports 9.0 and runs it through its nvcuda::wmma).
bool bf16_tensor_cores_available();

void gemm_bf16(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, float alpha, const bf16* a,
               int64_t lda, const bf16* b, int64_t ldb, float beta, float* c, int64_t ldc,
               cudaStream_t stream);
void gemm_bf16(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, float alpha, const bf16* a,
               int64_t lda, const bf16* b, int64_t ldb, float beta, bf16* c, int64_t ldc,
               cudaStream_t stream);

void gemm_bf16_strided_batched(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, float alpha,
                               const bf16* a, int64_t lda, int64_t stride_a, const bf16* b, int64_t ldb,
                               int64_t stride_b, float beta, float* c, int64_t ldc, int64_t stride_c,
                               int64_t batch, cudaStream_t stream);
void gemm_bf16_strided_batched(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, float alpha,
                               const bf16* a, int64_t lda, int64_t stride_a, const bf16* b, int64_t ldb,
                               int64_t stride_b, float beta, bf16* c, int64_t ldc, int64_t stride_c,
                               int64_t batch, cudaStream_t stream);

// gemm_bf16_strided_batched on the kernel chosen by the caller: automatic is what gemm_bf16_strided_batched
// does, tensor_cores throws Error where bf16_tensor_cores_available() is false.
void gemm_bf16_strided_batched_with_kernel(Bf16GemmKernel kernel, bool trans_a, bool trans_b, int64_t m,
                                           int64_t n, int64_t k, float alpha, const bf16* a, int64_t lda,
                                           int64_t stride_a, const bf16* b, int64_t ldb, int64_t stride_b,
                                           float beta, float* c, int64_t ldc, int64_t stride_c, int64_t batch,
                                           cudaStream_t stream);
void gemm_bf16_strided_batched_with_kernel(Bf16GemmKernel kernel, bool trans_a, bool trans_b, int64_t m,
                                           int64_t n, int64_t k, float alpha, const bf16* a, int64_t lda,
                                           int64_t stride_a, const bf16* b, int64_t ldb, int64_t stride_b,
                                           float beta, bf16* c, int64_t ldc, int64_t stride_c, int64_t batch,
                                           cudaStream_t stream);

// gemm_bf16_strided_batched on the CUDA-core kernel with the block tile chosen by the caller (see
// GemmTiling; automatic: sgemm_automatic_tiling).
void gemm_bf16_strided_batched_with_tiling(GemmTiling tiling, bool trans_a, bool trans_b, int64_t m,
                                           int64_t n, int64_t k, float alpha, const bf16* a, int64_t lda,
                                           int64_t stride_a, const bf16* b, int64_t ldb, int64_t stride_b,
                                           float beta, float* c, int64_t ldc, int64_t stride_c, int64_t batch,
                                           cudaStream_t stream);
void gemm_bf16_strided_batched_with_tiling(GemmTiling tiling, bool trans_a, bool trans_b, int64_t m,
                                           int64_t n, int64_t k, float alpha, const bf16* a, int64_t lda,
                                           int64_t stride_a, const bf16* b, int64_t ldb, int64_t stride_b,
                                           float beta, bf16* c, int64_t ldc, int64_t stride_c, int64_t batch,
                                           cudaStream_t stream);

// sgemm_split_k with bf16 A and B: float partial products, so the workspace is
// sgemm_split_k_workspace_bytes(m, n, k, splits) and the split count worth using sgemm_split_k_count; the
// sum pass applies alpha and beta and rounds a bf16 C once. The ranges of k (multiples of 16 long) are the
// same on either kernel, so under the emulator the kernels' results agree bit for bit here too.
void gemm_bf16_split_k(int64_t splits, bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k,
                       float alpha, const bf16* a, int64_t lda, const bf16* b, int64_t ldb, float beta,
                       float* c, int64_t ldc, void* workspace, size_t workspace_bytes, cudaStream_t stream);
void gemm_bf16_split_k(int64_t splits, bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k,
                       float alpha, const bf16* a, int64_t lda, const bf16* b, int64_t ldb, float beta,
                       bf16* c, int64_t ldc, void* workspace, size_t workspace_bytes, cudaStream_t stream);

// The linear layer's product: C = alpha · op(A) · op(B) + bias, the float `bias` (n) broadcast over the rows
// (nullptr: no bias), C never read. The bias is added in the epilogue before C's single rounding (a bias
// written into a bf16 C first and added with beta = 1 would be rounded twice), as fmaf(1, bias, alpha · sum),
// the float linear layer's rounding. k is split into `workspace` (sgemm_split_k_count ranges) where
// gemm_bf16_split_workspace_bytes asks for it and the workspace holds that much, else one product (null
// workspace: never split); split results are deterministic but not the unsplit bits.
void gemm_bf16_split(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, float alpha, const bf16* a,
                     int64_t lda, const bf16* b, int64_t ldb, const float* bias, float* c, int64_t ldc,
                     void* workspace, size_t workspace_bytes, cudaStream_t stream);
void gemm_bf16_split(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, float alpha, const bf16* a,
                     int64_t lda, const bf16* b, int64_t ldb, const float* bias, bf16* c, int64_t ldc,
                     void* workspace, size_t workspace_bytes, cudaStream_t stream);

// gemm_bf16_split_k and gemm_bf16_split on the kernel chosen by the caller (automatic: as without it).
void gemm_bf16_split_k_with_kernel(Bf16GemmKernel kernel, int64_t splits, bool trans_a, bool trans_b,
                                   int64_t m, int64_t n, int64_t k, float alpha, const bf16* a, int64_t lda,
                                   const bf16* b, int64_t ldb, float beta, float* c, int64_t ldc,
                                   void* workspace, size_t workspace_bytes, cudaStream_t stream);
void gemm_bf16_split_k_with_kernel(Bf16GemmKernel kernel, int64_t splits, bool trans_a, bool trans_b,
                                   int64_t m, int64_t n, int64_t k, float alpha, const bf16* a, int64_t lda,
                                   const bf16* b, int64_t ldb, float beta, bf16* c, int64_t ldc,
                                   void* workspace, size_t workspace_bytes, cudaStream_t stream);
void gemm_bf16_split_with_kernel(Bf16GemmKernel kernel, bool trans_a, bool trans_b, int64_t m, int64_t n,
                                 int64_t k, float alpha, const bf16* a, int64_t lda, const bf16* b,
                                 int64_t ldb, const float* bias, float* c, int64_t ldc, void* workspace,
                                 size_t workspace_bytes, cudaStream_t stream);
void gemm_bf16_split_with_kernel(Bf16GemmKernel kernel, bool trans_a, bool trans_b, int64_t m, int64_t n,
                                 int64_t k, float alpha, const bf16* a, int64_t lda, const bf16* b,
                                 int64_t ldb, const float* bias, bf16* c, int64_t ldc, void* workspace,
                                 size_t workspace_bytes, cudaStream_t stream);

// The workspace gemm_bf16_split splits an m × n product over k with (the own FP32 GEMM's split-k size), 0
// when the output alone gives the GPU enough blocks.
size_t gemm_bf16_split_workspace_bytes(int64_t m, int64_t n, int64_t k);

}  // namespace cudacnn::gpu
