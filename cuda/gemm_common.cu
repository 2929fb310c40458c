// The GEMMs' shared host side (see gemm_common.hpp), the kernel of C = beta · C and split-k's ordered sum,
// each for a float or a bf16 C.
#include "cuda/gemm_common.hpp"

#include <algorithm>
#include <cstdint>

#include "cuda/bf16.cuh"
#include "cuda/launch.cuh"
#include "cudacnn/error.hpp"

namespace cudacnn::gpu {
namespace kernels {

// C = beta · C for k == 0 or alpha == 0, where A and B take no part (and are not read); beta == 0 writes
// zeros without reading C; a non-null bias (n) is written instead (broadcast over the rows). T is C's storage
// (float, or bf16 read widened and written rounded once). Grid-stride over the m · n elements of each batch
// entry blockIdx.y, + gridDim.y, …
template <class T>
__global__ void sgemm_scale_kernel(int64_t m, int64_t n, float beta, const float* bias, T* c, int64_t ldc,
                                   int64_t stride_c, int64_t batch) {
    for (int64_t z = blockIdx.y; z < batch; z += gridDim.y) {
        T* cz = c + z * stride_c;
        for (int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; i < m * n;
             i += int64_t{gridDim.x} * blockDim.x) {
            T* dst = cz + (i / n) * ldc + i % n;
            const float value = bias != nullptr ? bias[i % n] : beta == 0.0f ? 0.0f : beta * to_float(*dst);
            *dst = from_float<T>(value);
        }
    }
}

// Split-k's second pass: C = alpha · (P_0 + P_1 + … + P_{splits−1}) + beta · C, the partial products P_s
// (m × n, dense, `partial_stride` apart) summed in order s = 0, 1, … so the result is deterministic; beta ==
// 0 never reads C. alpha and beta in one explicit rounding order, that of the FP32 GEMM's stores
// (cuda/gemm.cu scale_add), which nvcc would otherwise be free to fuse either way. A non-null bias (n) takes
// beta · C's place (as beta 1 on a C holding the bias row, so with the same rounding). T is C's storage (a
// bf16 C is read widened and written rounded once). Grid-stride over the m · n elements.
template <class T>
__global__ void sgemm_sum_partials_kernel(int64_t m, int64_t n, const float* partials, int64_t partial_stride,
                                          int64_t splits, float alpha, float beta, const float* bias, T* c,
                                          int64_t ldc) {
    for (int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; i < m * n;
         i += int64_t{gridDim.x} * blockDim.x) {
        float sum = partials[i];
        for (int64_t s = 1; s < splits; ++s) sum += partials[s * partial_stride + i];
        T* dst = c + (i / n) * ldc + i % n;
        const float value = bias != nullptr ? __fmaf_rn(1.0f, bias[i % n], alpha * sum)
                            : beta == 0.0f  ? alpha * sum
                                            : __fmaf_rn(beta, to_float(*dst), alpha * sum);
        *dst = from_float<T>(value);
    }
}

}  // namespace kernels

namespace {


// How split-k cuts k: `count` ranges of `length` (a multiple of the kernel's k-slice, so that every range
// starts where a slice would and 16-byte aligned where the operand is), the last one `last` long (≤ length).
struct SplitPlan {
    int64_t length, count, last;
};

SplitPlan plan_split(int64_t k, int64_t splits, int64_t slice) {
    const int64_t length = std::max<int64_t>(ceil_div(ceil_div(k, splits), slice) * slice, 1);
    const int64_t count = std::max<int64_t>(ceil_div(k, length), 1);
    if (count == 1) return {k, 1, k};  // one range: k itself (a rounded-up length could pass lda)
    return {length, count, k - (count - 1) * length};
}

}  // namespace

void check_gemm_args(const char* op, bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, float alpha,
                     const void* a, int64_t lda, int64_t stride_a, const void* b, int64_t ldb,
                     int64_t stride_b, const void* c, int64_t ldc, int64_t stride_c, int64_t batch) {
    CUDACNN_CHECK(m >= 0 && n >= 0 && k >= 0, "{}: sizes m = {}, n = {}, k = {} must not be negative", op, m,
                  n, k);
    CUDACNN_CHECK(batch >= 0, "{}: batch = {} must not be negative", op, batch);
    // The stored widths of A (m, k) or (k, m) and B (k, n) or (n, k); a leading dimension is at least 1.
    const int64_t a_width = trans_a ? m : k, b_width = trans_b ? k : n;
    CUDACNN_CHECK(lda >= std::max<int64_t>(1, a_width), "{}: lda = {} is less than the {} width {} of A ({})",
                  op, lda, trans_a ? "transposed" : "stored", a_width, trans_a ? "k, m" : "m, k");
    CUDACNN_CHECK(ldb >= std::max<int64_t>(1, b_width), "{}: ldb = {} is less than the {} width {} of B ({})",
                  op, ldb, trans_b ? "transposed" : "stored", b_width, trans_b ? "n, k" : "k, n");
    CUDACNN_CHECK(ldc >= std::max<int64_t>(1, n), "{}: ldc = {} is less than n = {}", op, ldc, n);
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

bool gemm_vectorizable(const void* p, int64_t ld, int64_t stride, int64_t batch, int64_t element_bytes) {
    return reinterpret_cast<uintptr_t>(p) % (4 * element_bytes) == 0 && ld % 4 == 0 &&
           (batch <= 1 || stride % 4 == 0);
}

namespace {

template <class T>
void scale_impl(int64_t m, int64_t n, float beta, const float* bias, T* c, int64_t ldc, int64_t stride_c,
                int64_t batch, cudaStream_t stream) {
    constexpr int kThreads = 256;
    const int64_t blocks = std::min<int64_t>((m * n + kThreads - 1) / kThreads, 1024);
    const dim3 grid(static_cast<unsigned>(blocks), static_cast<unsigned>(std::min(batch, kGemmMaxGridY)));
    launch(kernels::sgemm_scale_kernel<T>, grid, dim3(kThreads), 0, stream, m, n, beta, bias, c, ldc,
           stride_c, batch);
}

}  // namespace

void gemm_scale(int64_t m, int64_t n, float beta, float* c, int64_t ldc, int64_t stride_c, int64_t batch,
                cudaStream_t stream) {
    scale_impl<float>(m, n, beta, nullptr, c, ldc, stride_c, batch, stream);
}

void gemm_scale(int64_t m, int64_t n, float beta, const float* bias, float* c, int64_t ldc, int64_t stride_c,
                int64_t batch, cudaStream_t stream) {
    scale_impl<float>(m, n, beta, bias, c, ldc, stride_c, batch, stream);
}

void gemm_scale(int64_t m, int64_t n, float beta, const float* bias, bf16* c, int64_t ldc, int64_t stride_c,
                int64_t batch, cudaStream_t stream) {
    scale_impl<bf16>(m, n, beta, bias, c, ldc, stride_c, batch, stream);
}

size_t gemm_split_k_workspace_bytes(const char* op, int64_t m, int64_t n, int64_t k, int64_t splits,
                                    int64_t slice) {
    CUDACNN_CHECK(splits >= 1, "{}: splits = {} must be at least 1", op, splits);
    if (m <= 0 || n <= 0 || k <= 0) return 0;
    return static_cast<size_t>(plan_split(k, splits, slice).count * m * n) * sizeof(float);
}

namespace {

// The body of every gemm_split_k overload: TIn is A's and B's storage, T C's; `product` is called as a
// GemmRangeProduct(Bf16) with TIn operands.
template <class TIn, class T, class Product>
void split_k_impl(const char* op, const char* workspace_function, int64_t splits, int64_t slice, bool trans_a,
                  bool trans_b, int64_t m, int64_t n, int64_t k, float alpha, const TIn* a, int64_t lda,
                  const TIn* b, int64_t ldb, float beta, const float* bias, T* c, int64_t ldc,
                  void* workspace, size_t workspace_bytes, cudaStream_t stream, const Product& product) {
    CUDACNN_CHECK(splits >= 1, "{}: splits = {} must be at least 1", op, splits);
    check_gemm_args(op, trans_a, trans_b, m, n, k, alpha, a, lda, 0, b, ldb, 0, c, ldc, 0, 1);
    if (m == 0 || n == 0) return;
    if (k == 0 || alpha == 0.0f) {
        scale_impl<T>(m, n, beta, bias, c, ldc, 0, 1, stream);
        return;
    }
    const SplitPlan plan = plan_split(k, splits, slice);
    const size_t needed = gemm_split_k_workspace_bytes(op, m, n, k, splits, slice);
    CUDACNN_CHECK(workspace != nullptr && workspace_bytes >= needed,
                  "{}: the workspace holds {} bytes, {} splits of {} × {} need {} (size it with {})", op,
                  workspace == nullptr ? 0 : workspace_bytes, plan.count, m, n, needed, workspace_function);
    float* partials = static_cast<float*>(workspace);
    // Split s multiplies k range [s · length, …): columns of a stored (m, k) A or rows of a stored (k, m)
    // one, likewise for B.
    const int64_t step_a = trans_a ? plan.length * lda : plan.length;
    const int64_t step_b = trans_b ? plan.length : plan.length * ldb;
    product(plan.length, plan.last, a, step_a, b, step_b, partials, plan.count);
    constexpr int kThreads = 256;
    const int64_t blocks = std::min<int64_t>(ceil_div(m * n, kThreads), 4096);
    launch(kernels::sgemm_sum_partials_kernel<T>, dim3(static_cast<unsigned>(blocks)), dim3(kThreads), 0,
           stream, m, n, static_cast<const float*>(partials), m * n, plan.count, alpha, beta, bias, c, ldc);
}

}  // namespace

void gemm_split_k(const char* op, const char* workspace_function, int64_t splits, int64_t slice, bool trans_a,
                  bool trans_b, int64_t m, int64_t n, int64_t k, float alpha, const float* a, int64_t lda,
                  const float* b, int64_t ldb, float beta, float* c, int64_t ldc, void* workspace,
                  size_t workspace_bytes, cudaStream_t stream, const GemmRangeProduct& product) {
    split_k_impl(op, workspace_function, splits, slice, trans_a, trans_b, m, n, k, alpha, a, lda, b, ldb,
                 beta, static_cast<const float*>(nullptr), c, ldc, workspace, workspace_bytes, stream,
                 product);
}

void gemm_split_k(const char* op, const char* workspace_function, int64_t splits, int64_t slice, bool trans_a,
                  bool trans_b, int64_t m, int64_t n, int64_t k, float alpha, const bf16* a, int64_t lda,
                  const bf16* b, int64_t ldb, float beta, const float* bias, float* c, int64_t ldc,
                  void* workspace, size_t workspace_bytes, cudaStream_t stream,
                  const GemmRangeProductBf16& product) {
    split_k_impl(op, workspace_function, splits, slice, trans_a, trans_b, m, n, k, alpha, a, lda, b, ldb,
                 beta, bias, c, ldc, workspace, workspace_bytes, stream, product);
}

void gemm_split_k(const char* op, const char* workspace_function, int64_t splits, int64_t slice, bool trans_a,
                  bool trans_b, int64_t m, int64_t n, int64_t k, float alpha, const bf16* a, int64_t lda,
                  const bf16* b, int64_t ldb, float beta, const float* bias, bf16* c, int64_t ldc,
                  void* workspace, size_t workspace_bytes, cudaStream_t stream,
                  const GemmRangeProductBf16& product) {
    split_k_impl(op, workspace_function, splits, slice, trans_a, trans_b, m, n, k, alpha, a, lda, b, ldb,
                 beta, bias, c, ldc, workspace, workspace_bytes, stream, product);
}

}  // namespace cudacnn::gpu
