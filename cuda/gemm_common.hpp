// What the project's GEMMs (cuda/gemm.cu: FP32, cuda/gemm_tf32.cu: TF32) share on the host: the argument
// checks of their common contract (cuda/gemm.hpp), the rule for float4 access, and the k == 0 / alpha == 0
// case, C = beta · C.
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>

namespace cudacnn::gpu {

// The most batch entries one grid's y dimension holds; the kernels loop over the rest.
constexpr int64_t kGemmMaxGridY = 65535;

// Throws Error naming `op` and the values unless the arguments describe valid row-major products.
void check_gemm_args(const char* op, bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, float alpha,
                     const float* a, int64_t lda, int64_t stride_a, const float* b, int64_t ldb,
                     int64_t stride_b, const float* c, int64_t ldc, int64_t stride_c, int64_t batch);

// float4 access is legal when every matrix of the batch starts 16-byte aligned and every row does too.
bool gemm_vectorizable(const void* p, int64_t ld, int64_t stride, int64_t batch);

// C = beta · C for each of `batch` matrices (m × n, leading dimension ldc, stride_c apart), for k == 0 or
// alpha == 0, where A and B take no part; beta == 0 writes zeros without reading C.
void gemm_scale(int64_t m, int64_t n, float beta, float* c, int64_t ldc, int64_t stride_c, int64_t batch,
                cudaStream_t stream);

}  // namespace cudacnn::gpu
