// A double-accumulating host reference for the row-major, strided-batched GEMM contract of cuda/gemm.hpp.
#pragma once

#include <cstdint>

namespace cudacnn::test {

// For z < batch, i < m, j < n: c[z·stride_c + i·ldc + j] = alpha · Σ_q op(A)[i, q] · op(B)[q, j] + beta ·
// (its old value), summed in double and rounded to float once, where op(A)[i, q] = a[z·stride_a + q·lda + i]
// when trans_a and a[z·stride_a + i·lda + q] otherwise, and likewise for B. beta == 0 ignores the old value
// (it may be NaN); elements outside the (m, n) windows are left alone, so a test can check that the kernel
// left them alone too.
inline void gemm_reference(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, float alpha,
                           const float* a, int64_t lda, int64_t stride_a, const float* b, int64_t ldb,
                           int64_t stride_b, float beta, float* c, int64_t ldc, int64_t stride_c,
                           int64_t batch) {
    for (int64_t z = 0; z < batch; ++z) {
        const float* az = a + z * stride_a;
        const float* bz = b + z * stride_b;
        for (int64_t i = 0; i < m; ++i) {
            for (int64_t j = 0; j < n; ++j) {
                double sum = 0.0;
                for (int64_t q = 0; q < k; ++q) {
                    sum += static_cast<double>(trans_a ? az[q * lda + i] : az[i * lda + q]) *
                           static_cast<double>(trans_b ? bz[j * ldb + q] : bz[q * ldb + j]);
                }
                float& out = c[z * stride_c + i * ldc + j];
                const double old = beta == 0.0f ? 0.0 : static_cast<double>(beta) * static_cast<double>(out);
                out = static_cast<float>(static_cast<double>(alpha) * sum + old);
            }
        }
    }
}

}  // namespace cudacnn::test
