// The fast CPU path's dropout and dropout2d: the mask drawn a Philox block (four units) at a time over fixed
// ranges of units, then the scaling as an elementwise loop over fixed ranges of values.
#include "src/cpu_fast/dropout.hpp"

#include <algorithm>

#include "cudacnn/error.hpp"
#include "src/cpu/dropout_rule.hpp"
#include "src/cpu_fast/elementwise.hpp"

namespace cudacnn::cpu_fast {
namespace {

void check_options(const char* op, const cpu::DropoutOptions& options) {
    // The reference's check (written so that NaN fails too).
    CUDACNN_CHECK(options.p >= 0.0 && options.p <= 1.0,
                  "{}: p is {}; it must be in [0, 1] (the probability of zeroing a unit)", op, options.p);
}

void check_dropout2d_shape(const char* op, const char* name, const Shape& shape) {
    CUDACNN_CHECK(shape.rank() == 4, "{}: {} has shape {}; it must be (N, C, H, W)", op, name, shape);
    CUDACNN_CHECK(shape.numel() > 0, "{}: {} has shape {}; every dimension must be positive", op, name, shape);
}

// The factor of a kept unit, 1 / (1 − p) in double (1 in eval mode); dropped units get 0. Never 1 / 0: with
// p = 1 every unit is dropped.
double kept_factor(const cpu::DropoutOptions& options) {
    return options.training ? 1.0 / (1.0 - options.p) : 1.0;
}

// mask[j] for units [0, units): the rule, one Philox block per group of four units; a multiple of 4 as grain
// so that no group is split between items.
void draw_mask(uint8_t* mask, int64_t units, const cpu::DropoutOptions& options, const Workers& workers) {
    if (!options.training) {
        parallel_ranges(workers, units, kElementwiseGrain, [&](int64_t begin, int64_t end) {
            for (int64_t j = begin; j < end; ++j) mask[j] = 1;
        });
        return;
    }
    const float p = static_cast<float>(options.p);
    parallel_ranges(workers, units, kElementwiseGrain, [&](int64_t begin, int64_t end) {
        for (int64_t j = begin; j < end; j += 4) {
            bool keep[4];
            cpu::detail::dropout_keep4(options.seed, options.stream, p, static_cast<uint64_t>(j / 4), keep);
            for (int64_t k = 0; k < 4 && j + k < end; ++k) mask[j + k] = keep[k] ? 1 : 0;
        }
    });
}

// out[i] = float(double(in[i]) · factor(mask[i / unit_size])) over `count` values, with factor 1 in eval mode
// whatever the mask (as the reference). unit_size is 1 for dropout and H · W for dropout2d, whose units are
// contiguous planes: its items are runs of whole planes, about kElementwiseGrain values each.
void apply_mask(const float* in, const uint8_t* mask, float* out, int64_t count, int64_t unit_size,
                const cpu::DropoutOptions& options, const Workers& workers) {
    const double kept = kept_factor(options);
    const int eval = options.training ? 0 : 1;  // an int, so that `eval | kept` below is a select, not a branch
    const int64_t units = count / unit_size;
    const int64_t units_per_item = std::max<int64_t>(1, kElementwiseGrain / unit_size);
    parallel_ranges(workers, units, units_per_item, [&](int64_t first, int64_t last) {
        if (unit_size == 1) {
#pragma omp simd
            for (int64_t i = first; i < last; ++i) {
                out[i] = static_cast<float>(static_cast<double>(in[i]) * ((eval | (mask[i] != 0)) != 0 ? kept : 0.0));
            }
            return;
        }
        for (int64_t j = first; j < last; ++j) {
            const double factor = (eval | (mask[j] != 0)) != 0 ? kept : 0.0;
            const float* src = in + j * unit_size;
            float* dst = out + j * unit_size;
#pragma omp simd
            for (int64_t i = 0; i < unit_size; ++i) dst[i] = static_cast<float>(static_cast<double>(src[i]) * factor);
        }
    });
}

}  // namespace

void dropout_forward(const float* x, float* y, uint8_t* mask, int64_t count, const cpu::DropoutOptions& options,
                     const Workers& workers) {
    check_options("dropout", options);
    CUDACNN_CHECK(count >= 1, "dropout: count {} must be at least 1", count);
    draw_mask(mask, count, options, workers);
    apply_mask(x, mask, y, count, 1, options, workers);
}

void dropout_backward(const float* dy, const uint8_t* mask, float* dx, int64_t count,
                      const cpu::DropoutOptions& options, const Workers& workers) {
    check_options("dropout_backward", options);
    CUDACNN_CHECK(count >= 1, "dropout_backward: count {} must be at least 1", count);
    apply_mask(dy, mask, dx, count, 1, options, workers);
}

void dropout2d_forward(const float* x, float* y, uint8_t* mask, const Shape& shape,
                       const cpu::DropoutOptions& options, const Workers& workers) {
    check_options("dropout2d", options);
    check_dropout2d_shape("dropout2d", "x", shape);
    draw_mask(mask, shape[0] * shape[1], options, workers);  // (N, C)
    apply_mask(x, mask, y, shape.numel(), shape[2] * shape[3], options, workers);
}

void dropout2d_backward(const float* dy, const uint8_t* mask, float* dx, const Shape& shape,
                        const cpu::DropoutOptions& options, const Workers& workers) {
    check_options("dropout2d_backward", options);
    check_dropout2d_shape("dropout2d_backward", "dy", shape);
    apply_mask(dy, mask, dx, shape.numel(), shape[2] * shape[3], options, workers);
}

}  // namespace cudacnn::cpu_fast
