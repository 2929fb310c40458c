// The fast CPU path's relu: plain elementwise loops over fixed ranges, which the compiler vectorizes.
#include "src/cpu_fast/activation.hpp"

#include "cudacnn/error.hpp"
#include "src/cpu_fast/elementwise.hpp"

namespace cudacnn::cpu_fast {

void relu_forward(const float* x, float* y, int64_t count, const Workers& workers) {
    CUDACNN_CHECK(count >= 1, "relu: count {} must be at least 1", count);
    parallel_ranges(workers, count, kElementwiseGrain, [&](int64_t begin, int64_t end) {
        // v < 0 ? 0 : v, as the reference: NaN < 0 is false, so NaN stays NaN.
#pragma omp simd
        for (int64_t i = begin; i < end; ++i) y[i] = x[i] < 0.0f ? 0.0f : x[i];
    });
}

void relu_backward(const float* y, const float* dy, float* dx, int64_t count, const Workers& workers) {
    CUDACNN_CHECK(count >= 1, "relu_backward: count {} must be at least 1", count);
    parallel_ranges(workers, count, kElementwiseGrain, [&](int64_t begin, int64_t end) {
        // Both operands loaded unconditionally, so that the select vectorizes.
#pragma omp simd
        for (int64_t i = begin; i < end; ++i) {
            const float grad = dy[i];
            dx[i] = y[i] <= 0.0f ? 0.0f : grad;
        }
    });
}

}  // namespace cudacnn::cpu_fast
