// Fast CPU linear layer: each work item is one GEMM over a fixed block of output columns, so every element is
// one BLAS dot product whatever the thread count.
#include "src/cpu_fast/linear.hpp"

#include "src/cpu_fast/gemm.hpp"

namespace cudacnn::cpu_fast {
namespace {

// Columns per work item: wide enough for OpenBLAS's micro-kernels, narrow enough that a 1024-wide layer
// still gives 16 items to share among the threads.
constexpr int64_t kColumnGrain = 64;

}  // namespace

void linear_forward(const float* x, const float* weight, const float* bias, float* y, const LinearShape& s,
                    const Workers& workers) {
    parallel_ranges(workers, s.out_features, kColumnGrain, [&](int64_t begin, int64_t end) {
        gemm(false, true, s.batch, end - begin, s.in_features, 1.0f, x, s.in_features, weight + begin * s.in_features,
             s.in_features, 0.0f, y + begin, s.out_features);
        if (bias == nullptr) return;
        for (int64_t row = 0; row < s.batch; ++row)
            for (int64_t o = begin; o < end; ++o) y[row * s.out_features + o] += bias[o];
    });
}

void linear_backward(const float* x, const float* weight, const float* dy, float* dx, float* dweight, float* dbias,
                     const LinearShape& s, const Workers& workers) {
    if (dx != nullptr) {
        parallel_ranges(workers, s.in_features, kColumnGrain, [&](int64_t begin, int64_t end) {
            gemm(false, false, s.batch, end - begin, s.out_features, 1.0f, dy, s.out_features, weight + begin,
                 s.in_features, 0.0f, dx + begin, s.in_features);
        });
    }
    parallel_ranges(workers, s.out_features, kColumnGrain, [&](int64_t begin, int64_t end) {
        gemm(true, false, end - begin, s.in_features, s.batch, 1.0f, dy + begin, s.out_features, x, s.in_features,
             0.0f, dweight + begin * s.in_features, s.in_features);
        if (dbias == nullptr) return;
        for (int64_t o = begin; o < end; ++o) {
            double sum = 0.0;
            for (int64_t row = 0; row < s.batch; ++row) sum += dy[row * s.out_features + o];
            dbias[o] = static_cast<float>(sum);
        }
    });
}

}  // namespace cudacnn::cpu_fast
