// Single-precision matrix products for the fast CPU path, through OpenBLAS's CBLAS (row-major).
#pragma once

#include <cstdint>

namespace cudacnn::cpu_fast {

// C (M × N) = alpha · op(A) · op(B) + beta · C, all row-major: op(A) is M × K (A stored K × M when
// transpose_a), op(B) is K × N (B stored N × K when transpose_b); ld* are the row strides. beta = 0 ignores
// what C held (NaN too). One thread: callers run several products at once on their own workers.
void gemm(bool transpose_a, bool transpose_b, int64_t m, int64_t n, int64_t k, float alpha, const float* a,
          int64_t lda, const float* b, int64_t ldb, float beta, float* c, int64_t ldc);

// Makes OpenBLAS run each call on the calling thread only (process-wide; Workers' constructor calls it).
void use_single_threaded_blas();

// "OpenBLAS 0.3.21 (Zen kernels)": the library and the kernels it chose for this CPU, for the device line.
const char* blas_description();

}  // namespace cudacnn::cpu_fast
