// cuBLAS SGEMM with gpu::sgemm's row-major contract: argument checks, the row/column-major swap, handles; the
// bf16-operand GEMMs (cublasGemmEx) with the same contract.
#include "cuda/vendor/cublas_gemm.hpp"

#include <cublas_v2.h>

#include <algorithm>
#include <atomic>
#include <type_traits>

#include "cuda/gemm.hpp"
#include "cuda/vendor/thread_handle.hpp"
#include "cudacnn/error.hpp"

namespace cudacnn::gpu {

// The cuBLAS path must stay a drop-in replacement for the hand-written one.
static_assert(std::is_same_v<decltype(&cublas_sgemm), decltype(&sgemm)>,
              "cublas_sgemm must take exactly gpu::sgemm's arguments");
static_assert(std::is_same_v<decltype(&cublas_sgemm_strided_batched), decltype(&sgemm_strided_batched)>,
              "cublas_sgemm_strided_batched must take exactly gpu::sgemm_strided_batched's arguments");

namespace {

std::atomic<bool> process_allow_tf32{false};  // set_cublas_allow_tf32

struct CublasHandleTraits {
    static cublasHandle_t create() {
        cublasHandle_t handle = nullptr;
        CUDACNN_CUBLAS_CHECK(cublasCreate(&handle));
        // alpha and beta are host floats; this is cuBLAS's default, set so that nothing else can change it.
        CUDACNN_CUBLAS_CHECK(cublasSetPointerMode(handle, CUBLAS_POINTER_MODE_HOST));
        return handle;
    }
    static void destroy(cublasHandle_t handle) noexcept { cublasDestroy(handle); }
};

// The calling thread's handle, bound to `stream` and to the math mode of this call.
cublasHandle_t handle_for(cudaStream_t stream, cublasMath_t math) {
    const cublasHandle_t handle = thread_handle<CublasHandleTraits>();
    CUDACNN_CUBLAS_CHECK(cublasSetStream(handle, stream));
    CUDACNN_CUBLAS_CHECK(cublasSetMathMode(handle, math));
    return handle;
}

cublasHandle_t handle_for(cudaStream_t stream, bool tf32) {
    return handle_for(stream, tf32 ? CUBLAS_TF32_TENSOR_OP_MATH : CUBLAS_DEFAULT_MATH);
}

// bf16 operands: FP32 accumulation also across split-k partial sums (see the header).
cublasHandle_t handle_for_bf16(cudaStream_t stream) {
    return handle_for(stream, static_cast<cublasMath_t>(CUBLAS_DEFAULT_MATH |
                                                        CUBLAS_MATH_DISALLOW_REDUCED_PRECISION_REDUCTION));
}

// The CUDA data type of a C of element type T.
cudaDataType c_type(const float*) {
    return CUDA_R_32F;
}
cudaDataType c_type(const bf16*) {
    return CUDA_R_16BF;
}

cublasOperation_t operation(bool transposed) {
    return transposed ? CUBLAS_OP_T : CUBLAS_OP_N;
}

// The contract of cuda/gemm.hpp, checked before cuBLAS sees the arguments so that a mistake is reported in
// the caller's row-major terms (cuBLAS would only say CUBLAS_STATUS_INVALID_VALUE, in column-major terms).
void check_arguments(const char* op, bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, float alpha,
                     const void* a, int64_t lda, int64_t stride_a, const void* b, int64_t ldb,
                     int64_t stride_b, const void* c, int64_t ldc, int64_t stride_c, int64_t batch) {
    CUDACNN_CHECK(m >= 0 && n >= 0 && k >= 0, "{}: sizes m = {}, n = {}, k = {} must not be negative", op, m,
                  n, k);
    CUDACNN_CHECK(batch >= 0, "{}: batch = {} must not be negative", op, batch);
    // A row of the stored A is k long, or m when transposed; a row of the stored B is n long, or k when
    // transposed. A leading dimension is at least 1 even for an empty row, as BLAS requires.
    const int64_t a_row = trans_a ? m : k, b_row = trans_b ? k : n;
    CUDACNN_CHECK(lda >= std::max<int64_t>(1, a_row),
                  "{}: lda = {} is less than {}, the row length of A stored as ({}, {}) (trans_a = {})", op,
                  lda, std::max<int64_t>(1, a_row), trans_a ? k : m, a_row, trans_a);
    CUDACNN_CHECK(ldb >= std::max<int64_t>(1, b_row),
                  "{}: ldb = {} is less than {}, the row length of B stored as ({}, {}) (trans_b = {})", op,
                  ldb, std::max<int64_t>(1, b_row), trans_b ? n : k, b_row, trans_b);
    CUDACNN_CHECK(ldc >= std::max<int64_t>(1, n), "{}: ldc = {} is less than n = {}, the row length of C", op,
                  ldc, n);
    CUDACNN_CHECK(stride_a >= 0 && stride_b >= 0 && stride_c >= 0,
                  "{}: strides a = {}, b = {}, c = {} must not be negative", op, stride_a, stride_b,
                  stride_c);
    CUDACNN_CHECK(stride_c > 0 || batch <= 1 || m == 0 || n == 0,
                  "{}: stride_c = 0 with batch = {} would make every product write the same C", op, batch);
    if (m == 0 || n == 0 || batch == 0) return;
    CUDACNN_CHECK(c != nullptr, "{}: C is null for an output of {} × {}", op, m, n);
    if (k > 0 && alpha != 0.0f) {
        CUDACNN_CHECK(a != nullptr && b != nullptr,
                      "{}: A ({}) or B ({}) is null with m = {}, n = {}, k = {}", op, a, b, m, n, k);
    }
}

// With alpha == 0 the product term vanishes; passing k = 0 makes that explicit to cuBLAS, which then computes
// C = beta · C (zeros when beta == 0, without reading C) and never touches A or B, which may hold anything.
int64_t effective_k(int64_t k, float alpha) {
    return alpha == 0.0f ? 0 : k;
}

// One bf16-operand product (batch 1, single entry point) or `batch` of them; C float or bf16 (T).
template <class T>
void gemm_bf16(bool batched, bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, float alpha,
               const bf16* a, int64_t lda, int64_t stride_a, const bf16* b, int64_t ldb, int64_t stride_b,
               float beta, T* c, int64_t ldc, int64_t stride_c, int64_t batch, cudaStream_t stream) {
    const char* op = batched ? "cublas_gemm_bf16_strided_batched" : "cublas_gemm_bf16";
    check_arguments(op, trans_a, trans_b, m, n, k, alpha, a, lda, stride_a, b, ldb, stride_b, c, ldc,
                    stride_c, batch);
    if (m == 0 || n == 0 || batch == 0) return;
    // Column-major Cᵀ (n, m) = op(B)ᵀ (n, k) · op(A)ᵀ (k, m), as cublas_sgemm.
    const cublasHandle_t handle = handle_for_bf16(stream);
    if (!batched) {
        CUDACNN_CUBLAS_CHECK(cublasGemmEx_64(handle, operation(trans_b), operation(trans_a), n, m,
                                             effective_k(k, alpha), &alpha, b, CUDA_R_16BF, ldb, a,
                                             CUDA_R_16BF, lda, &beta, c, c_type(c), ldc, CUBLAS_COMPUTE_32F,
                                             CUBLAS_GEMM_DEFAULT));
        return;
    }
    CUDACNN_CUBLAS_CHECK(cublasGemmStridedBatchedEx_64(
        handle, operation(trans_b), operation(trans_a), n, m, effective_k(k, alpha), &alpha, b, CUDA_R_16BF,
        ldb, stride_b, a, CUDA_R_16BF, lda, stride_a, &beta, c, c_type(c), ldc, stride_c, batch,
        CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT));
}

}  // namespace

void set_cublas_allow_tf32(bool allow) {
    process_allow_tf32.store(allow, std::memory_order_relaxed);
}

bool cublas_allow_tf32() {
    return process_allow_tf32.load(std::memory_order_relaxed);
}

void cublas_sgemm(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, float alpha, const float* a,
                  int64_t lda, const float* b, int64_t ldb, float beta, float* c, int64_t ldc,
                  cudaStream_t stream) {
    cublas_sgemm_with_math(cublas_allow_tf32(), trans_a, trans_b, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc,
                           stream);
}

void cublas_sgemm_strided_batched(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, float alpha,
                                  const float* a, int64_t lda, int64_t stride_a, const float* b, int64_t ldb,
                                  int64_t stride_b, float beta, float* c, int64_t ldc, int64_t stride_c,
                                  int64_t batch, cudaStream_t stream) {
    cublas_sgemm_strided_batched_with_math(cublas_allow_tf32(), trans_a, trans_b, m, n, k, alpha, a, lda,
                                           stride_a, b, ldb, stride_b, beta, c, ldc, stride_c, batch, stream);
}

void cublas_sgemm_with_math(bool allow_tf32, bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k,
                            float alpha, const float* a, int64_t lda, const float* b, int64_t ldb, float beta,
                            float* c, int64_t ldc, cudaStream_t stream) {
    check_arguments("cublas_sgemm", trans_a, trans_b, m, n, k, alpha, a, lda, 0, b, ldb, 0, c, ldc, 0, 1);
    if (m == 0 || n == 0) return;
    // Column-major Cᵀ (n, m) = op(B)ᵀ (n, k) · op(A)ᵀ (k, m); see the header.
    CUDACNN_CUBLAS_CHECK(cublasSgemm_64(handle_for(stream, allow_tf32), operation(trans_b), operation(trans_a), n,
                                        m, effective_k(k, alpha), &alpha, b, ldb, a, lda, &beta, c, ldc));
}

void cublas_sgemm_strided_batched_with_math(bool allow_tf32, bool trans_a, bool trans_b, int64_t m, int64_t n,
                                            int64_t k, float alpha, const float* a, int64_t lda,
                                            int64_t stride_a, const float* b, int64_t ldb, int64_t stride_b,
                                            float beta, float* c, int64_t ldc, int64_t stride_c, int64_t batch,
                                            cudaStream_t stream) {
    check_arguments("cublas_sgemm_strided_batched", trans_a, trans_b, m, n, k, alpha, a, lda, stride_a, b,
                    ldb, stride_b, c, ldc, stride_c, batch);
    if (m == 0 || n == 0 || batch == 0) return;
    CUDACNN_CUBLAS_CHECK(cublasSgemmStridedBatched_64(
        handle_for(stream, allow_tf32), operation(trans_b), operation(trans_a), n, m, effective_k(k, alpha),
        &alpha, b, ldb, stride_b, a, lda, stride_a, &beta, c, ldc, stride_c, batch));
}

void cublas_gemm_bf16(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, float alpha, const bf16* a,
                      int64_t lda, const bf16* b, int64_t ldb, float beta, float* c, int64_t ldc,
                      cudaStream_t stream) {
    gemm_bf16(false, trans_a, trans_b, m, n, k, alpha, a, lda, 0, b, ldb, 0, beta, c, ldc, 0, 1, stream);
}

void cublas_gemm_bf16(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, float alpha, const bf16* a,
                      int64_t lda, const bf16* b, int64_t ldb, float beta, bf16* c, int64_t ldc,
                      cudaStream_t stream) {
    gemm_bf16(false, trans_a, trans_b, m, n, k, alpha, a, lda, 0, b, ldb, 0, beta, c, ldc, 0, 1, stream);
}

void cublas_gemm_bf16_strided_batched(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k,
                                      float alpha, const bf16* a, int64_t lda, int64_t stride_a,
                                      const bf16* b, int64_t ldb, int64_t stride_b, float beta, float* c,
                                      int64_t ldc, int64_t stride_c, int64_t batch, cudaStream_t stream) {
    gemm_bf16(true, trans_a, trans_b, m, n, k, alpha, a, lda, stride_a, b, ldb, stride_b, beta, c, ldc,
              stride_c, batch, stream);
}

void cublas_gemm_bf16_strided_batched(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k,
                                      float alpha, const bf16* a, int64_t lda, int64_t stride_a,
                                      const bf16* b, int64_t ldb, int64_t stride_b, float beta, bf16* c,
                                      int64_t ldc, int64_t stride_c, int64_t batch, cudaStream_t stream) {
    gemm_bf16(true, trans_a, trans_b, m, n, k, alpha, a, lda, stride_a, b, ldb, stride_b, beta, c, ldc,
              stride_c, batch, stream);
}

}  // namespace cudacnn::gpu
