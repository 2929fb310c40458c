// gemm over OpenBLAS's cblas_sgemm.
#include "src/cpu_fast/gemm.hpp"

#include <cblas.h>

#include <string>

namespace cudacnn::cpu_fast {

void gemm(bool transpose_a, bool transpose_b, int64_t m, int64_t n, int64_t k, float alpha, const float* a,
          int64_t lda, const float* b, int64_t ldb, float beta, float* c, int64_t ldc) {
    if (m <= 0 || n <= 0) return;
    if (k <= 0) {  // BLAS would scale C by beta; the product is empty
        for (int64_t i = 0; i < m; ++i)
            for (int64_t j = 0; j < n; ++j) c[i * ldc + j] = beta == 0.0f ? 0.0f : beta * c[i * ldc + j];
        return;
    }
    cblas_sgemm(CblasRowMajor, transpose_a ? CblasTrans : CblasNoTrans, transpose_b ? CblasTrans : CblasNoTrans,
                static_cast<blasint>(m), static_cast<blasint>(n), static_cast<blasint>(k), alpha, a,
                static_cast<blasint>(lda), b, static_cast<blasint>(ldb), beta, c, static_cast<blasint>(ldc));
}

void use_single_threaded_blas() {
    openblas_set_num_threads(1);
}

const char* blas_description() {
    static const std::string text = [] {
        // openblas_get_config(): "OpenBLAS 0.3.21 NO_LAPACKE DYNAMIC_ARCH NO_AFFINITY Zen MAX_THREADS=64"
        const std::string config = openblas_get_config();
        const std::size_t version_end = config.find(' ', config.find(' ') + 1);
        return config.substr(0, version_end) + " (" + openblas_get_corename() + " kernels)";
    }();
    return text.c_str();
}

}  // namespace cudacnn::cpu_fast
