// TF32 GEMM (row-major): inputs rounded to TF32, products summed in float, on tensor cores (nvcuda::wmma,
// sm_80+) or, with the same rounding, on CUDA cores. The arguments and contract are those of
// gpu::sgemm_strided_batched (cuda/gemm.hpp); only the precision differs.
#pragma once

#include <cuda_runtime_api.h>

#include <cstddef>
#include <cstdint>

namespace cudacnn::gpu {

// C (m, n) = alpha · op(tf32(A)) · op(tf32(B)) + beta · C, all row-major, where tf32() rounds each element to
// 10 mantissa bits, to nearest with ties away from zero (cvt.rna.tf32.f32, as cuBLAS's TF32 mode and
// PyTorch's allow_tf32 do); the products are summed in float and alpha, beta applied in float. Relative
// errors are thus of TF32 size (~1e-3 for random inputs), not FP32's. Layouts as in sgemm: op(A) is (m, k),
// A stored (m, k) with lda ≥ k or, when trans_a, (k, m) with lda ≥ m; op(B) is (k, n), B stored (k, n) with
// ldb ≥ n or, when trans_b, (n, k) with ldb ≥ k; ldc ≥ n. beta == 0 never reads C (it may hold NaN).
// m == 0 or n == 0 does nothing; k == 0 or alpha == 0 gives C = beta · C without reading A and B (which may
// then be null). Throws Error naming the op and the values on bad arguments.
//
// Deterministic (no atomics): each element sums its k products in k order, on either kernel; under the CPU
// emulator the two kernels agree bit for bit.
// Tiling: 64 × 64 block tiles, 128 threads (4 warps of 32 × 32, each 2 × 2 wmma 16 × 16 × 8 accumulators, or
// 4 × 8 outputs per thread on CUDA cores); k in slices of 32 staged through shared memory, rounded to TF32
// as they are stored, with the next slice prefetched into registers; float4 global loads where pointers,
// leading dimensions and batch strides allow; edges guarded for any size.
void sgemm_tf32(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, float alpha, const float* a,
                int64_t lda, const float* b, int64_t ldb, float beta, float* c, int64_t ldc, cudaStream_t stream);

// The same for `batch` independent products; matrix i starts at a + i·stride_a, b + i·stride_b, c +
// i·stride_c (a stride of 0 reuses one matrix for every batch entry; stride_c == 0 is allowed only for
// batch ≤ 1).
void sgemm_tf32_strided_batched(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, float alpha,
                                const float* a, int64_t lda, int64_t stride_a, const float* b, int64_t ldb,
                                int64_t stride_b, float beta, float* c, int64_t ldc, int64_t stride_c,
                                int64_t batch, cudaStream_t stream);

// Which kernel computes the product. `automatic` (what sgemm_tf32 and sgemm_tf32_strided_batched do) takes
// tensor cores when tf32_tensor_cores_available(), CUDA cores otherwise; the explicit choices let tests cover
// both kernels. Asking for tensor_cores where they are unavailable throws Error.
enum class Tf32Kernel { automatic, tensor_cores, cuda_cores };

// Whether the tensor-core kernel can run: built with CUDACNN_TENSOR_CORES (the default; compile with
// -DCUDACNN_TENSOR_CORES=0 to leave it out) and the current device has compute capability 8.0 or more (the
// CPU emulator reports 9.0 and runs it through its nvcuda::wmma).
bool tf32_tensor_cores_available();

// sgemm_tf32_strided_batched on the kernel chosen by the caller.
void sgemm_tf32_strided_batched_with_kernel(Tf32Kernel kernel, bool trans_a, bool trans_b, int64_t m, int64_t n,
                                            int64_t k, float alpha, const float* a, int64_t lda, int64_t stride_a,
                                            const float* b, int64_t ldb, int64_t stride_b, float beta, float* c,
                                            int64_t ldc, int64_t stride_c, int64_t batch, cudaStream_t stream);

// Split-k, for products with few output tiles and a long k (a linear layer's 128 × 1024 output with k = 4096
// makes 32 blocks of 64 × 64 for 132 SMs, each looping over all of k): k is cut into `splits` ranges (lengths
// rounded up to a multiple of the k-slice, 32, so there may be fewer), each range's product is written to the
// workspace by the TF32 kernel (same rounding; all ranges in one launch), then a second kernel
// (the FP32 split-k's, cuda/gemm_common.hpp) sums the partial products in range order and applies alpha and
// beta as sgemm_tf32 does. Deterministic (no atomics), but the k sum is associated differently from
// sgemm_tf32's (the ranges' float sums are added up), so the bits differ from sgemm_tf32's unless there is one
// range; the error stays a float sum of the same k TF32 products. Arguments, errors and k == 0 / alpha == 0 as
// sgemm_tf32; throws Error when the workspace is smaller than sgemm_tf32_split_k_workspace_bytes(m, n, k,
// splits).
void sgemm_tf32_split_k(int64_t splits, bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, float alpha,
                        const float* a, int64_t lda, const float* b, int64_t ldb, float beta, float* c, int64_t ldc,
                        void* workspace, size_t workspace_bytes, cudaStream_t stream);

// sgemm_tf32_split_k whose ranges run on the kernel chosen by the caller (automatic: as sgemm_tf32).
void sgemm_tf32_split_k_with_kernel(Tf32Kernel kernel, int64_t splits, bool trans_a, bool trans_b, int64_t m,
                                    int64_t n, int64_t k, float alpha, const float* a, int64_t lda, const float* b,
                                    int64_t ldb, float beta, float* c, int64_t ldc, void* workspace,
                                    size_t workspace_bytes, cudaStream_t stream);

// The bytes of workspace sgemm_tf32_split_k needs: one m × n float partial product per range of k.
size_t sgemm_tf32_split_k_workspace_bytes(int64_t m, int64_t n, int64_t k, int64_t splits);

// The split count worth using on an H100: as many ranges as keep every block of the split product resident in
// one wave (132 SMs × 3 blocks of 128 threads: a block alone on an SM waits on its loads most of the time, so
// more blocks per SM, each over a shorter k, run nearly as fast as one), each at least 256 long; 1 (then use
// sgemm_tf32) when the output alone has more than half a wave of tiles. E.g. 128 × 1024 over k = 4096: 32
// tiles, 12 ranges; 128 × 4096 over 1024: 128 tiles, 3 ranges.
int64_t sgemm_tf32_split_k_count(int64_t m, int64_t n, int64_t k);

}  // namespace cudacnn::gpu
