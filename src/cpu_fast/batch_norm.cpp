// The fast CPU path's batch_norm2d: the reference's per-channel loops, one work item per channel.
#include "src/cpu_fast/batch_norm.hpp"

#include <cmath>
#include <utility>
#include <vector>

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

namespace {

// One channel's plane n of x: hw floats.
struct Planes {
    const float* data;
    int64_t n_batch, channels, hw;
    const float* at(int64_t n, int64_t c) const { return data + (n * channels + c) * hw; }
};

double channel_sum(const Planes& x, int64_t c) {
    double sum = 0.0;
    for (int64_t n = 0; n < x.n_batch; ++n) {
        const float* plane = x.at(n, c);
        for (int64_t i = 0; i < x.hw; ++i) sum += static_cast<double>(plane[i]);
    }
    return sum;
}

// Σ (x − mean)²: two passes, as the reference, since Σ x² − M · mean² cancels.
double channel_squares(const Planes& x, int64_t c, double mean) {
    double squares = 0.0;
    for (int64_t n = 0; n < x.n_batch; ++n) {
        const float* plane = x.at(n, c);
        for (int64_t i = 0; i < x.hw; ++i) {
            const double d = static_cast<double>(plane[i]) - mean;
            squares += d * d;
        }
    }
    return squares;
}

// Σ dy and Σ dy · x̂ over channel c.
std::pair<double, double> channel_gradient_sums(const Planes& x, const float* dy, int64_t c, double mean,
                                                double invstd) {
    double sum_dy = 0.0, sum_dy_xhat = 0.0;
    for (int64_t n = 0; n < x.n_batch; ++n) {
        const float* plane = x.at(n, c);
        const float* g_plane = dy + (plane - x.data);
        for (int64_t i = 0; i < x.hw; ++i) {
            const double g = static_cast<double>(g_plane[i]);
            sum_dy += g;
            sum_dy_xhat += g * (static_cast<double>(plane[i]) - mean) * invstd;
        }
    }
    return {sum_dy, sum_dy_xhat};
}

// Sums every rank's `values` in place (synchronized batch norm); nothing for a single process.
void reduce(const StatisticsReducer* reducer, std::vector<double>& values) {
    if (reducer != nullptr) (*reducer)(values.data(), static_cast<int64_t>(values.size()));
}

}  // namespace

void batch_norm2d(const float* x, const float* weight, const float* bias, BatchNorm2dRunningStatsView* running,
                  float* y, float* save_mean, float* save_invstd, const Shape& input_shape,
                  const cpu::BatchNorm2dOptions& options, const Workers& workers, const StatisticsReducer* reducer) {
    const char* op = "batch_norm2d";
    check_input(op, input_shape);
    check_options(op, input_shape, running, options);
    const int64_t n_batch = input_shape[0], channels = input_shape[1], hw = input_shape[2] * input_shape[3];
    const Planes planes{x, n_batch, channels, hw};

    const bool update = options.training && running != nullptr;
    double factor = 0.0;  // the new batch's weight in the running statistics
    if (update) {
        ++running->num_batches_tracked;
        factor = options.momentum ? *options.momentum : 1.0 / static_cast<double>(running->num_batches_tracked);
    }

    // Training: per channel the sum, then the squares about the mean, each summed across ranks when synchronized
    // (the last entry counts the values: M here, the world's M after the reduction).
    std::vector<double> mean(static_cast<std::size_t>(channels)), var(static_cast<std::size_t>(channels));
    if (options.training) {
        std::vector<double> sums(static_cast<std::size_t>(channels) + 1);
        sums[channels] = static_cast<double>(n_batch * hw);
        parallel_for(workers, channels, [&](int64_t c) { sums[c] = channel_sum(planes, c); });
        reduce(reducer, sums);
        const double count = sums[channels];
        std::vector<double> squares(static_cast<std::size_t>(channels));
        parallel_for(workers, channels, [&](int64_t c) {
            mean[c] = sums[c] / count;
            squares[c] = channel_squares(planes, c, mean[c]);
        });
        reduce(reducer, squares);
        for (int64_t c = 0; c < channels; ++c) {
            var[c] = squares[c] / count;
            if (!update) continue;
            const double unbiased = squares[c] / (count - 1.0);
            float& running_mean = running->running_mean[c];
            float& running_var = running->running_var[c];
            running_mean = static_cast<float>((1.0 - factor) * static_cast<double>(running_mean) + factor * mean[c]);
            running_var = static_cast<float>((1.0 - factor) * static_cast<double>(running_var) + factor * unbiased);
        }
    } else {
        for (int64_t c = 0; c < channels; ++c) {
            mean[c] = static_cast<double>(running->running_mean[c]);
            var[c] = static_cast<double>(running->running_var[c]);
        }
    }

    parallel_for(workers, channels, [&](int64_t c) {
        const double invstd = 1.0 / std::sqrt(var[c] + options.eps);
        save_mean[c] = static_cast<float>(mean[c]);
        save_invstd[c] = static_cast<float>(invstd);
        const double gamma = weight != nullptr ? static_cast<double>(weight[c]) : 1.0;
        const double beta = bias != nullptr ? static_cast<double>(bias[c]) : 0.0;
        for (int64_t n = 0; n < n_batch; ++n) {
            const int64_t base = (n * channels + c) * hw;
            // Independent values (no sum): vector instructions change nothing (src/cpu_fast/elementwise.hpp).
#pragma omp simd
            for (int64_t i = 0; i < hw; ++i) {
                const double x_hat = (static_cast<double>(x[base + i]) - mean[c]) * invstd;
                y[base + i] = static_cast<float>(x_hat * gamma + beta);
            }
        }
    });
}

void batch_norm2d_backward(const float* x, const float* weight, const float* save_mean, const float* save_invstd,
                           const float* dy, float* dx, float* dweight, float* dbias, const Shape& input_shape,
                           bool training, const Workers& workers, const StatisticsReducer* reducer) {
    const char* op = "batch_norm2d_backward";
    check_input(op, input_shape);
    const int64_t n_batch = input_shape[0], channels = input_shape[1], hw = input_shape[2] * input_shape[3];
    const Planes planes{x, n_batch, channels, hw};
    // Per channel Σ dy, then Σ dy · x̂, then the count of values; the parameters' gradients are this rank's sums
    // (a data-parallel run averages them with the other gradients), dx's through the statistics the world's.
    std::vector<double> sums(2 * static_cast<std::size_t>(channels) + 1);
    sums[2 * channels] = static_cast<double>(n_batch * hw);
    parallel_for(workers, channels, [&](int64_t c) {
        const auto [sum_dy, sum_dy_xhat] = channel_gradient_sums(planes, dy, c, static_cast<double>(save_mean[c]),
                                                                 static_cast<double>(save_invstd[c]));
        sums[c] = sum_dy;
        sums[channels + c] = sum_dy_xhat;
        if (dbias != nullptr) dbias[c] = static_cast<float>(sum_dy);
        if (dweight != nullptr) dweight[c] = static_cast<float>(sum_dy_xhat);
    });
    if (dx == nullptr) return;  // only the parameters' gradients wanted (the network's first layer)
    if (training) reduce(reducer, sums);
    const double count = sums[2 * channels];
    parallel_for(workers, channels, [&](int64_t c) {
        const double mean = static_cast<double>(save_mean[c]), invstd = static_cast<double>(save_invstd[c]);
        const double gamma = weight != nullptr ? static_cast<double>(weight[c]) : 1.0;
        const double sum_dy = sums[c], sum_dy_xhat = sums[channels + c];
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
