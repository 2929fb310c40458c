// The fast CPU path's batch_norm2d: the reference's per-channel loops, one work item per channel.
#include "src/cpu_fast/batch_norm.hpp"

#include <cmath>

#include "cudacnn/error.hpp"

namespace cudacnn::cpu_fast {
namespace {

void check_input(const char* op, const Shape& x) {
    CUDACNN_CHECK(x.rank() == 4, "{}: input must be (N, C, H, W), got shape {}", op, x);
    CUDACNN_CHECK(x[0] > 0 && x[1] > 0 && x[2] > 0 && x[3] > 0, "{}: input sizes must be positive, got shape {}",
                  op, x);
}

// The reference's option checks, in its order and with its messages.
void check_options(const char* op, const Shape& shape, const BatchNorm2dRunningStatsView* running,
                   const cpu::BatchNorm2dOptions& options) {
    const int64_t count = shape[0] * shape[2] * shape[3];
    if (running != nullptr) {
        CUDACNN_CHECK(running->running_mean != nullptr && running->running_var != nullptr,
                      "{}: running statistics without running_mean or running_var; pass both (C floats each)", op);
        CUDACNN_CHECK(running->num_batches_tracked >= 0, "{}: num_batches_tracked {} must not be negative", op,
                      running->num_batches_tracked);
    }
    CUDACNN_CHECK(std::isfinite(options.eps) && options.eps >= 0, "{}: eps {} must be finite and >= 0", op,
                  options.eps);
    CUDACNN_CHECK(!options.momentum || (*options.momentum >= 0 && *options.momentum <= 1),
                  "{}: momentum {} must be in [0, 1] (or unset for a cumulative average)", op,
                  options.momentum.value_or(0.0));
    CUDACNN_CHECK(options.training || running != nullptr,
                  "{}: evaluation mode normalizes by the running statistics, but none were given; pass them or "
                  "use training mode (as nn.BatchNorm2d does with track_running_stats=False)",
                  op);
    CUDACNN_CHECK(!options.training || count > 1,
                  "{}: training needs more than 1 value per channel, got input shape {}; use a larger batch or "
                  "evaluation mode",
                  op, shape);
}

}  // namespace

void batch_norm2d(const float* x, const float* weight, const float* bias, BatchNorm2dRunningStatsView* running,
                  float* y, float* save_mean, float* save_invstd, const Shape& input_shape,
                  const cpu::BatchNorm2dOptions& options, const Workers& workers) {
    const char* op = "batch_norm2d";
    check_input(op, input_shape);
    check_options(op, input_shape, running, options);
    const int64_t n_batch = input_shape[0], channels = input_shape[1], hw = input_shape[2] * input_shape[3];
    const int64_t count = n_batch * hw;  // M: values per channel

    const bool update = options.training && running != nullptr;
    double factor = 0.0;  // the new batch's weight in the running statistics
    if (update) {
        ++running->num_batches_tracked;
        factor = options.momentum ? *options.momentum : 1.0 / static_cast<double>(running->num_batches_tracked);
    }

    parallel_for(workers, channels, [&](int64_t c) {
        double mean = 0.0, var = 0.0;
        if (options.training) {
            double sum = 0.0;
            for (int64_t n = 0; n < n_batch; ++n) {
                const float* plane = x + (n * channels + c) * hw;
                for (int64_t i = 0; i < hw; ++i) sum += static_cast<double>(plane[i]);
            }
            mean = sum / static_cast<double>(count);
            // Two passes, as the reference: Σ (x − mean)² does not cancel the way Σ x² − M · mean² does.
            double squares = 0.0;
            for (int64_t n = 0; n < n_batch; ++n) {
                const float* plane = x + (n * channels + c) * hw;
                for (int64_t i = 0; i < hw; ++i) {
                    const double d = static_cast<double>(plane[i]) - mean;
                    squares += d * d;
                }
            }
            var = squares / static_cast<double>(count);
            if (update) {
                const double unbiased = squares / static_cast<double>(count - 1);
                float& running_mean = running->running_mean[c];
                float& running_var = running->running_var[c];
                running_mean =
                    static_cast<float>((1.0 - factor) * static_cast<double>(running_mean) + factor * mean);
                running_var =
                    static_cast<float>((1.0 - factor) * static_cast<double>(running_var) + factor * unbiased);
            }
        } else {
            mean = static_cast<double>(running->running_mean[c]);
            var = static_cast<double>(running->running_var[c]);
        }
        const double invstd = 1.0 / std::sqrt(var + options.eps);
        save_mean[c] = static_cast<float>(mean);
        save_invstd[c] = static_cast<float>(invstd);
        const double gamma = weight != nullptr ? static_cast<double>(weight[c]) : 1.0;
        const double beta = bias != nullptr ? static_cast<double>(bias[c]) : 0.0;
        for (int64_t n = 0; n < n_batch; ++n) {
            const int64_t base = (n * channels + c) * hw;
            // Independent values (no sum): vector instructions change nothing (src/cpu_fast/elementwise.hpp).
#pragma omp simd
            for (int64_t i = 0; i < hw; ++i) {
                const double x_hat = (static_cast<double>(x[base + i]) - mean) * invstd;
                y[base + i] = static_cast<float>(x_hat * gamma + beta);
            }
        }
    });
}

void batch_norm2d_backward(const float* x, const float* weight, const float* save_mean, const float* save_invstd,
                           const float* dy, float* dx, float* dweight, float* dbias, const Shape& input_shape,
                           bool training, const Workers& workers) {
    const char* op = "batch_norm2d_backward";
    check_input(op, input_shape);
    const int64_t n_batch = input_shape[0], channels = input_shape[1], hw = input_shape[2] * input_shape[3];
    const double count = static_cast<double>(n_batch * hw);
    parallel_for(workers, channels, [&](int64_t c) {
        const double mean = static_cast<double>(save_mean[c]), invstd = static_cast<double>(save_invstd[c]);
        const double gamma = weight != nullptr ? static_cast<double>(weight[c]) : 1.0;
        double sum_dy = 0.0, sum_dy_xhat = 0.0;
        for (int64_t n = 0; n < n_batch; ++n) {
            const int64_t base = (n * channels + c) * hw;
            for (int64_t i = 0; i < hw; ++i) {
                const double g = static_cast<double>(dy[base + i]);
                sum_dy += g;
                sum_dy_xhat += g * (static_cast<double>(x[base + i]) - mean) * invstd;
            }
        }
        if (dbias != nullptr) dbias[c] = static_cast<float>(sum_dy);
        if (dweight != nullptr) dweight[c] = static_cast<float>(sum_dy_xhat);
        if (dx == nullptr) return;  // only the parameters' gradients wanted (the network's first layer)
        const double scale = gamma * invstd;
        for (int64_t n = 0; n < n_batch; ++n) {
            const int64_t base = (n * channels + c) * hw;
            // Two loops rather than a test per value, so that each vectorizes (GCC -O2 does not unswitch).
            if (training) {
                // The mean and variance depend on every x of the channel: their paths remove dy's mean and its
                // component along x̂.
#pragma omp simd
                for (int64_t i = 0; i < hw; ++i) {
                    const double g = static_cast<double>(dy[base + i]);
                    const double x_hat = (static_cast<double>(x[base + i]) - mean) * invstd;
                    dx[base + i] = static_cast<float>(scale * (g - sum_dy / count - x_hat * sum_dy_xhat / count));
                }
            } else {
#pragma omp simd
                for (int64_t i = 0; i < hw; ++i) dx[base + i] = static_cast<float>(scale * static_cast<double>(dy[base + i]));
            }
        }
    });
}

}  // namespace cudacnn::cpu_fast
