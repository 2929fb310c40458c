// Which SGEMM serves the linear layers and im2col convolution: the project's own (cuda/gemm.hpp) or cuBLAS
// (cuda flavour), chosen once per process like PyTorch's torch.backends flags.
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>
#include <string>

namespace cudacnn::gpu {

enum class GemmBackend { own, cublas };

const char* gemm_backend_name(GemmBackend backend);  // "own", "cublas"
// The backend named `name`; throws Error naming the value and the choices.
GemmBackend parse_gemm_backend(const std::string& name);
// Empty when `backend` exists in this build, else why not (cuBLAS is not part of the emu flavour).
std::string gemm_backend_unsupported(GemmBackend backend);

// Selects the backend for every later gemm / gemm_strided_batched call on any thread; throws Error (and keeps
// the current one) when it does not exist in this build. The default is `own`.
void set_gemm_backend(GemmBackend backend);
GemmBackend gemm_backend();

// gpu::sgemm / gpu::sgemm_strided_batched (same arguments and contract) through the selected backend.
void gemm(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, float alpha, const float* a,
          int64_t lda, const float* b, int64_t ldb, float beta, float* c, int64_t ldc, cudaStream_t stream);
void gemm_strided_batched(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, float alpha,
                          const float* a, int64_t lda, int64_t stride_a, const float* b, int64_t ldb,
                          int64_t stride_b, float beta, float* c, int64_t ldc, int64_t stride_c,
                          int64_t batch, cudaStream_t stream);

}  // namespace cudacnn::gpu
