// The BF16 GEMM on tensor cores (nvcuda::wmma bf16 16 × 16 × 16, FP32 accumulators): the kernel that
// gemm_bf16 and its variants (cuda/gemm.hpp) run where bf16_tensor_cores_available() and the caller asks for
// Bf16GemmKernel::automatic or tensor_cores. Callers use cuda/gemm.hpp; this header is the launcher it
// dispatches to, plus a block-tile choice so that tests cover both tiles whatever the sizes.
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>

#include "cuda/bf16.cuh"

namespace cudacnn::gpu {

// The block tile of C. 128 × 128 (256 threads, 8 warps of 64 × 32, each 4 × 2 wmma accumulators) for
// products that give every SM of an H100 a block with it; 64 × 64 (128 threads, 4 warps of 32 × 32, 2 × 2
// accumulators) otherwise, to spread small products over more SMs. `automatic` picks by that rule. Every
// element sums its k products in k order on either tile, so the choice never changes the bits.
enum class Bf16TcTiling { automatic, block128x128, block64x64 };

// C = alpha · op(A) · op(B) + beta · C for `batch` products, with gemm_bf16_strided_batched's contract
// (layouts, strides, beta == 0 never reading C, k == 0 / alpha == 0, errors naming `op`). A non-null float
// `bias` (n) takes beta · C's place as in gemm_bf16_split: C = fmaf(1, bias, alpha · sum), C not read. The
// last batch entry multiplies only the first k_last (1 ≤ k_last ≤ k) of its k (split-k's shorter last range,
// in the same launch). Throws Error when the build has CUDACNN_TENSOR_CORES off (the caller checks
// bf16_tensor_cores_available() first).
//
// Tiling: k in slices of 32 staged as bf16 in double-buffered shared memory as the operands are stored (no
// transposing copy; the wmma fragments read row- or column-major), 16-byte global loads of 8 bf16 where the
// pointer, leading dimension and batch stride keep them aligned, scalar guarded loads otherwise; the next
// slice is loaded into registers while the current one is multiplied, one barrier per slice. The epilogue
// goes fragment by fragment through a 16 × 16 float scratch per warp (aliasing the slices once the k loop is
// done), each lane writing 8 consecutive columns of a row, alpha, beta / bias and a bf16 C's single rounding
// as the CUDA-core kernel does them.
void gemm_bf16_tensor_cores(const char* op, Bf16TcTiling tiling, bool trans_a, bool trans_b, int64_t m,
                            int64_t n, int64_t k, float alpha, const bf16* a, int64_t lda, int64_t stride_a,
                            const bf16* b, int64_t ldb, int64_t stride_b, float beta, const float* bias,
                            float* c, int64_t ldc, int64_t stride_c, int64_t batch, int64_t k_last,
                            cudaStream_t stream);
void gemm_bf16_tensor_cores(const char* op, Bf16TcTiling tiling, bool trans_a, bool trans_b, int64_t m,
                            int64_t n, int64_t k, float alpha, const bf16* a, int64_t lda, int64_t stride_a,
                            const bf16* b, int64_t ldb, int64_t stride_b, float beta, const float* bias,
                            bf16* c, int64_t ldc, int64_t stride_c, int64_t batch, int64_t k_last,
                            cudaStream_t stream);

}  // namespace cudacnn::gpu
