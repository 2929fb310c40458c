// Fast CPU linear layer (nn.Linear): sgemm over fixed blocks of output columns, forward and backward.
#pragma once

#include <cstdint>

#include "src/cpu_fast/workers.hpp"

namespace cudacnn::cpu_fast {

struct LinearShape {
    int64_t batch = 0;
    int64_t in_features = 0;
    int64_t out_features = 0;
};

// y (batch, out) = x (batch, in) · weightᵀ + bias; weight (out, in); bias (out) or nullptr. Overwrites y.
void linear_forward(const float* x, const float* weight, const float* bias, float* y, const LinearShape& shape,
                    const Workers& workers);

// From dy (batch, out): dx (batch, in) = dy · weight (skipped when dx is nullptr), dweight (out, in) = dyᵀ · x,
// dbias (out) = Σ_rows dy in double (skipped when nullptr). All overwritten.
void linear_backward(const float* x, const float* weight, const float* dy, float* dx, float* dweight, float* dbias,
                     const LinearShape& shape, const Workers& workers);

}  // namespace cudacnn::cpu_fast
