// The project's own tiled SGEMM (row-major), single and strided-batched; cuBLAS wrappers share the signature.
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>

namespace cudacnn::gpu {

// C (m, n) = alpha · op(A) · op(B) + beta · C, all row-major. op(A) is (m, k): A is stored (m, k) with
// leading dimension lda ≥ k, or, when trans_a, stored (k, m) with lda ≥ m. Likewise op(B) is (k, n): B stored
// (k, n) with ldb ≥ n, or (n, k) when trans_b with ldb ≥ k. ldc ≥ n. beta == 0 never reads C (it may hold
// NaN). As in cuBLAS: m == 0 or n == 0 does nothing; k == 0 or alpha == 0 gives C = beta · C without reading
// A and B (which may then be null). Throws Error naming the op and the values on bad arguments.
//
// Accumulates in float, each element's products in k order, so results are deterministic (no atomics) and
// independent of the tile size chosen.
// Tiling: 64 × 64 block tiles (256 threads), or 32 × 32 (64 threads) when large tiles would give fewer than
// two blocks per SM of an H100; k in slices of 16 staged through shared memory (k-major, so each thread reads
// float4 runs) with the next slice prefetched into registers; each thread computes a 4 × 4 register tile.
// float4 global loads and stores where pointers, leading dimensions and batch strides are 16-byte aligned,
// scalar ones otherwise; edges guarded for any size.
void sgemm(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, float alpha, const float* a,
           int64_t lda, const float* b, int64_t ldb, float beta, float* c, int64_t ldc, cudaStream_t stream);

// The same for `batch` independent products; matrix i starts at a + i·stride_a, b + i·stride_b, c +
// i·stride_c (a stride of 0 reuses one matrix for every batch entry; stride_c == 0 is allowed only for batch
// ≤ 1).
void sgemm_strided_batched(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, float alpha,
                           const float* a, int64_t lda, int64_t stride_a, const float* b, int64_t ldb,
                           int64_t stride_b, float beta, float* c, int64_t ldc, int64_t stride_c,
                           int64_t batch, cudaStream_t stream);

// Which block tile sgemm uses; `automatic` is what sgemm and sgemm_strided_batched do. The explicit choices
// exist so that tests cover both kernels whatever the sizes (the result is bitwise the same either way).
enum class GemmTiling { automatic, large, small };

// sgemm_strided_batched with the block tile chosen by the caller.
void sgemm_strided_batched_with_tiling(GemmTiling tiling, bool trans_a, bool trans_b, int64_t m, int64_t n,
                                       int64_t k, float alpha, const float* a, int64_t lda, int64_t stride_a,
                                       const float* b, int64_t ldb, int64_t stride_b, float beta, float* c,
                                       int64_t ldc, int64_t stride_c, int64_t batch, cudaStream_t stream);

}  // namespace cudacnn::gpu
