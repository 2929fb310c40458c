// The GEMMs' shared host side (see gemm_common.hpp) and the kernel of C = beta · C.
#include "cuda/gemm_common.hpp"

#include <algorithm>
#include <cstdint>

#include "cuda/launch.cuh"
#include "cudacnn/error.hpp"

namespace cudacnn::gpu {
namespace kernels {

// C = beta · C for k == 0 or alpha == 0, where A and B take no part (and are not read); beta == 0 writes
// zeros without reading C. Grid-stride over the m · n elements of each batch entry blockIdx.y, + gridDim.y, …
__global__ void sgemm_scale_kernel(int64_t m, int64_t n, float beta, float* c, int64_t ldc, int64_t stride_c,
                                   int64_t batch) {
    for (int64_t z = blockIdx.y; z < batch; z += gridDim.y) {
        float* cz = c + z * stride_c;
        for (int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; i < m * n;
             i += int64_t{gridDim.x} * blockDim.x) {
            float* dst = cz + (i / n) * ldc + i % n;
            *dst = beta == 0.0f ? 0.0f : beta * *dst;
        }
    }
}

}  // namespace kernels

void check_gemm_args(const char* op, bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, float alpha,
                     const float* a, int64_t lda, int64_t stride_a, const float* b, int64_t ldb,
                     int64_t stride_b, const float* c, int64_t ldc, int64_t stride_c, int64_t batch) {
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
                      "{}: A ({}) or B ({}) is null with m = {}, n = {}, k = {}", op,
                      static_cast<const void*>(a), static_cast<const void*>(b), m, n, k);
    }
}

bool gemm_vectorizable(const void* p, int64_t ld, int64_t stride, int64_t batch) {
    return reinterpret_cast<uintptr_t>(p) % 16 == 0 && ld % 4 == 0 && (batch <= 1 || stride % 4 == 0);
}

void gemm_scale(int64_t m, int64_t n, float beta, float* c, int64_t ldc, int64_t stride_c, int64_t batch,
                cudaStream_t stream) {
    constexpr int kThreads = 256;
    const int64_t blocks = std::min<int64_t>((m * n + kThreads - 1) / kThreads, 1024);
    const dim3 grid(static_cast<unsigned>(blocks), static_cast<unsigned>(std::min(batch, kGemmMaxGridY)));
    launch(kernels::sgemm_scale_kernel, grid, dim3(kThreads), 0, stream, m, n, beta, c, ldc, stride_c, batch);
}

}  // namespace cudacnn::gpu
