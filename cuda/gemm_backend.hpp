// Which SGEMM serves the linear layers and im2col convolution, and in which arithmetic: the project's own
// (cuda/gemm.hpp) or cuBLAS (cuda flavour), FP32 or TF32; a process-wide default like PyTorch's
// torch.backends flags, which a GemmScope overrides on its thread (an executor applies its own options so).
#pragma once

#include <cuda_runtime_api.h>

#include <cstddef>
#include <cstdint>
#include <string>

namespace cudacnn::gpu {

enum class GemmBackend { own, cublas };

// FP32: every product an FP32 multiply-add. TF32: the inputs are rounded to TF32 (10 mantissa bits, as
// PyTorch's allow_tf32 and cuBLAS's CUBLAS_TF32_TENSOR_OP_MATH) and multiplied on tensor cores where the GPU
// has them; sums stay FP32. About 1e-3 relative error per product for up to ~7× the throughput on an H100.
enum class GemmMath { fp32, tf32 };

struct GemmSettings {
    GemmBackend backend = GemmBackend::own;
    GemmMath math = GemmMath::fp32;
};

const char* gemm_backend_name(GemmBackend backend);  // "own", "cublas"
// The backend named `name`; throws Error naming the value and the choices.
GemmBackend parse_gemm_backend(const std::string& name);
// Empty when `backend` exists in this build, else why not (cuBLAS is not part of the emu flavour).
std::string gemm_backend_unsupported(GemmBackend backend);

// Selects the backend for every later gemm / gemm_strided_batched call on any thread; throws Error (and keeps
// the current one) when it does not exist in this build. The default is `own`.
void set_gemm_backend(GemmBackend backend);
GemmBackend gemm_backend();

// What gemm / gemm_strided_batched use on the calling thread: the innermost live GemmScope's settings, else
// the process-wide backend with FP32 math.
GemmSettings current_gemm_settings();

// Overrides the settings on the constructing thread until destroyed (scopes nest). Throws Error, changing
// nothing, when the backend does not exist in this build.
class GemmScope {
  public:
    explicit GemmScope(const GemmSettings& settings);
    ~GemmScope();
    GemmScope(const GemmScope&) = delete;
    GemmScope& operator=(const GemmScope&) = delete;

  private:
    const GemmSettings* previous_;
    GemmSettings settings_;
};

// gpu::sgemm / gpu::sgemm_strided_batched (same arguments and contract) through current_gemm_settings().
void gemm(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, float alpha, const float* a,
          int64_t lda, const float* b, int64_t ldb, float beta, float* c, int64_t ldc, cudaStream_t stream);
// The workspace gemm_split() may use for an m × n product over k under current_gemm_settings(): what the own
// GEMM's split-k needs when the output alone gives too few blocks for the GPU (FP32: sgemm_split_k_count > 1,
// TF32: sgemm_tf32_split_k_count > 1), else 0 (cuBLAS keeps its own workspace).
size_t gemm_split_workspace_bytes(int64_t m, int64_t n, int64_t k);

// gemm() that splits k into `workspace` where gemm_split_workspace_bytes asks for it and the workspace holds
// that much; otherwise exactly gemm(). Split results are deterministic but not gemm()'s bits.
void gemm_split(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, float alpha, const float* a,
                int64_t lda, const float* b, int64_t ldb, float beta, float* c, int64_t ldc, void* workspace,
                size_t workspace_bytes, cudaStream_t stream);

void gemm_strided_batched(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, float alpha,
                          const float* a, int64_t lda, int64_t stride_a, const float* b, int64_t ldb,
                          int64_t stride_b, float beta, float* c, int64_t ldc, int64_t stride_c,
                          int64_t batch, cudaStream_t stream);

}  // namespace cudacnn::gpu
