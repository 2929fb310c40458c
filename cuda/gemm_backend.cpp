// The SGEMM backend switch: the project's tiled SGEMMs (FP32 or TF32) everywhere, cuBLAS in the cuda flavour on
// request; a process-wide default and per-thread scopes.
#include "cuda/gemm_backend.hpp"

#include <atomic>

#include "cuda/gemm.hpp"
#include "cuda/gemm_tf32.hpp"
#include "cudacnn/error.hpp"
#if CUDACNN_CUDA
#include "cuda/vendor/cublas_gemm.hpp"
#endif

namespace cudacnn::gpu {
namespace {

std::atomic<GemmBackend> selected_backend{GemmBackend::own};
thread_local const GemmSettings* scoped_settings = nullptr;  // the innermost GemmScope on this thread

}  // namespace

const char* gemm_backend_name(GemmBackend backend) {
    switch (backend) {
        case GemmBackend::own:
            return "own";
        case GemmBackend::cublas:
            return "cublas";
    }
    return "invalid";
}

GemmBackend parse_gemm_backend(const std::string& name) {
    for (GemmBackend backend : {GemmBackend::own, GemmBackend::cublas}) {
        if (name == gemm_backend_name(backend)) return backend;
    }
    CUDACNN_FAIL("GEMM backend '{}' is not one of own, cublas", name);
}

std::string gemm_backend_unsupported(GemmBackend backend) {
#if CUDACNN_CUDA
    (void)backend;
    return "";
#else
    return backend == GemmBackend::cublas
               ? "cuBLAS is not part of the emu flavour (build with -DCUDACNN_FLAVOUR=cuda)"
               : "";
#endif
}

void set_gemm_backend(GemmBackend backend) {
    const std::string why_not = gemm_backend_unsupported(backend);
    CUDACNN_CHECK(why_not.empty(), "GEMM backend {}: {}", gemm_backend_name(backend), why_not);
    selected_backend.store(backend);
}

GemmBackend gemm_backend() {
    return selected_backend.load();
}

GemmSettings current_gemm_settings() {
    if (scoped_settings != nullptr) return *scoped_settings;
    return GemmSettings{gemm_backend(), GemmMath::fp32};
}

GemmScope::GemmScope(const GemmSettings& settings) : previous_(scoped_settings), settings_(settings) {
    const std::string why_not = gemm_backend_unsupported(settings.backend);
    CUDACNN_CHECK(why_not.empty(), "GEMM backend {}: {}", gemm_backend_name(settings.backend), why_not);
    scoped_settings = &settings_;
}

GemmScope::~GemmScope() {
    scoped_settings = previous_;
}

void gemm(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, float alpha, const float* a,
          int64_t lda, const float* b, int64_t ldb, float beta, float* c, int64_t ldc, cudaStream_t stream) {
    const GemmSettings settings = current_gemm_settings();
#if CUDACNN_CUDA
    if (settings.backend == GemmBackend::cublas) {
        return cublas_sgemm_with_math(settings.math == GemmMath::tf32, trans_a, trans_b, m, n, k, alpha, a, lda,
                                      b, ldb, beta, c, ldc, stream);
    }
#endif
    if (settings.math == GemmMath::tf32) {
        return sgemm_tf32(trans_a, trans_b, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc, stream);
    }
    sgemm(trans_a, trans_b, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc, stream);
}

namespace {

// How many k ranges gemm_split cuts an m × n product into under `settings`: the own GEMMs' split-k count
// (FP32 or TF32), 1 (no split) on cuBLAS, which keeps its own workspace.
int64_t split_count(const GemmSettings& settings, int64_t m, int64_t n, int64_t k) {
    if (settings.backend != GemmBackend::own) return 1;
    return settings.math == GemmMath::tf32 ? sgemm_tf32_split_k_count(m, n, k) : sgemm_split_k_count(m, n, k);
}

// The workspace the own GEMM of `settings` needs for `splits` ranges (0 for one range: no split).
size_t split_workspace_bytes(const GemmSettings& settings, int64_t m, int64_t n, int64_t k, int64_t splits) {
    if (splits <= 1) return 0;
    return settings.math == GemmMath::tf32 ? sgemm_tf32_split_k_workspace_bytes(m, n, k, splits)
                                           : sgemm_split_k_workspace_bytes(m, n, k, splits);
}

}  // namespace

size_t gemm_split_workspace_bytes(int64_t m, int64_t n, int64_t k) {
    const GemmSettings settings = current_gemm_settings();
    return split_workspace_bytes(settings, m, n, k, split_count(settings, m, n, k));
}

void gemm_split(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, float alpha, const float* a,
                int64_t lda, const float* b, int64_t ldb, float beta, float* c, int64_t ldc, void* workspace,
                size_t workspace_bytes, cudaStream_t stream) {
    const GemmSettings settings = current_gemm_settings();
    const int64_t splits = split_count(settings, m, n, k);
    const size_t needed = split_workspace_bytes(settings, m, n, k, splits);
    if (splits > 1 && workspace != nullptr && workspace_bytes >= needed) {
        if (settings.math == GemmMath::tf32) {
            return sgemm_tf32_split_k(splits, trans_a, trans_b, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc,
                                      workspace, workspace_bytes, stream);
        }
        return sgemm_split_k(splits, trans_a, trans_b, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc, workspace,
                             workspace_bytes, stream);
    }
    gemm(trans_a, trans_b, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc, stream);
}

void gemm_strided_batched(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, float alpha,
                          const float* a, int64_t lda, int64_t stride_a, const float* b, int64_t ldb,
                          int64_t stride_b, float beta, float* c, int64_t ldc, int64_t stride_c,
                          int64_t batch, cudaStream_t stream) {
    const GemmSettings settings = current_gemm_settings();
#if CUDACNN_CUDA
    if (settings.backend == GemmBackend::cublas) {
        return cublas_sgemm_strided_batched_with_math(settings.math == GemmMath::tf32, trans_a, trans_b, m, n, k,
                                                      alpha, a, lda, stride_a, b, ldb, stride_b, beta, c, ldc,
                                                      stride_c, batch, stream);
    }
#endif
    if (settings.math == GemmMath::tf32) {
        return sgemm_tf32_strided_batched(trans_a, trans_b, m, n, k, alpha, a, lda, stride_a, b, ldb, stride_b,
                                          beta, c, ldc, stride_c, batch, stream);
    }
    sgemm_strided_batched(trans_a, trans_b, m, n, k, alpha, a, lda, stride_a, b, ldb, stride_b, beta, c, ldc,
                          stride_c, batch, stream);
}

}  // namespace cudacnn::gpu
