// CPU reference for batch_norm2d (training and evaluation, optional affine) with PyTorch's semantics.
#include "cudacnn/ops/batch_norm.hpp"

#include <cmath>

#include "cudacnn/error.hpp"

namespace cudacnn::cpu {

namespace {

void check_input(const char* op, const Shape& x) {
    CUDACNN_CHECK(x.rank() == 4, "{}: input must be (N, C, H, W), got shape {}", op, x);
    CUDACNN_CHECK(x[0] > 0 && x[1] > 0 && x[2] > 0 && x[3] > 0, "{}: input sizes must be positive, got shape {}",
                  op, x);
}

template <class T>
void check_per_channel(const char* op, const char* name, const HostTensor<T>* t, int64_t channels) {
    if (t == nullptr) return;
    CUDACNN_CHECK(t->shape() == Shape{channels}, "{}: {} has shape {} but the input has {} channels, so it must be ({})",
                  op, name, t->shape(), channels, channels);
}

// Offset of (n, c, 0, 0) in an (N, C, H, W) tensor with plane size hw.
int64_t plane_offset(int64_t n, int64_t c, int64_t channels, int64_t hw) { return (n * channels + c) * hw; }

}  // namespace

template <class T>
BatchNorm2dResult<T> batch_norm2d(const HostTensor<T>& x, const HostTensor<T>* weight, const HostTensor<T>* bias,
                                  BatchNorm2dRunningStats<T>* running, const BatchNorm2dOptions& options) {
    const char* op = "batch_norm2d";
    check_input(op, x.shape());
    const int64_t n_batch = x.dim(0), channels = x.dim(1), hw = x.dim(2) * x.dim(3);
    const int64_t count = n_batch * hw;  // M: values per channel
    check_per_channel(op, "weight", weight, channels);
    check_per_channel(op, "bias", bias, channels);
    if (running != nullptr) {
        check_per_channel(op, "running_mean", &running->running_mean, channels);
        check_per_channel(op, "running_var", &running->running_var, channels);
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
    // The unbiased variance divides by M − 1, and one value has no spread to normalize by (PyTorch's rule).
    CUDACNN_CHECK(!options.training || count > 1,
                  "{}: training needs more than 1 value per channel, got input shape {}; use a larger batch or "
                  "evaluation mode",
                  op, x.shape());

    const bool update = options.training && running != nullptr;
    double factor = 0.0;  // the new batch's weight in the running statistics
    if (update) {
        ++running->num_batches_tracked;
        factor = options.momentum ? *options.momentum : 1.0 / static_cast<double>(running->num_batches_tracked);
    }

    BatchNorm2dResult<T> result{HostTensor<T>(x.shape()), HostTensor<T>(Shape{channels}),
                                HostTensor<T>(Shape{channels})};
    for (int64_t c = 0; c < channels; ++c) {
        double mean = 0.0, var = 0.0;
        if (options.training) {
            double sum = 0.0;
            for (int64_t n = 0; n < n_batch; ++n) {
                for (int64_t i = 0; i < hw; ++i) sum += static_cast<double>(x[plane_offset(n, c, channels, hw) + i]);
            }
            mean = sum / static_cast<double>(count);
            // Two passes: Σ (x − mean)² does not cancel the way Σ x² − M · mean² does.
            double squares = 0.0;
            for (int64_t n = 0; n < n_batch; ++n) {
                for (int64_t i = 0; i < hw; ++i) {
                    const double d = static_cast<double>(x[plane_offset(n, c, channels, hw) + i]) - mean;
                    squares += d * d;
                }
            }
            var = squares / static_cast<double>(count);
            if (update) {
                const double unbiased = squares / static_cast<double>(count - 1);
                T& running_mean = running->running_mean[c];
                T& running_var = running->running_var[c];
                running_mean = static_cast<T>((1.0 - factor) * static_cast<double>(running_mean) + factor * mean);
                running_var = static_cast<T>((1.0 - factor) * static_cast<double>(running_var) + factor * unbiased);
            }
        } else {
            mean = static_cast<double>(running->running_mean[c]);
            var = static_cast<double>(running->running_var[c]);
        }
        const double invstd = 1.0 / std::sqrt(var + options.eps);
        result.save_mean[c] = static_cast<T>(mean);
        result.save_invstd[c] = static_cast<T>(invstd);
        const double gamma = weight != nullptr ? static_cast<double>((*weight)[c]) : 1.0;
        const double beta = bias != nullptr ? static_cast<double>((*bias)[c]) : 0.0;
        for (int64_t n = 0; n < n_batch; ++n) {
            const int64_t base = plane_offset(n, c, channels, hw);
            for (int64_t i = 0; i < hw; ++i) {
                const double x_hat = (static_cast<double>(x[base + i]) - mean) * invstd;
                result.output[base + i] = static_cast<T>(x_hat * gamma + beta);
            }
        }
    }
    return result;
}

template <class T>
BatchNorm2dGrads<T> batch_norm2d_backward(const HostTensor<T>& x, const HostTensor<T>* weight,
                                          const HostTensor<T>& save_mean, const HostTensor<T>& save_invstd,
                                          const HostTensor<T>& dy, bool training) {
    const char* op = "batch_norm2d_backward";
    check_input(op, x.shape());
    const int64_t n_batch = x.dim(0), channels = x.dim(1), hw = x.dim(2) * x.dim(3);
    const double count = static_cast<double>(n_batch * hw);
    CUDACNN_CHECK(dy.shape() == x.shape(), "{}: dy has shape {} but x has shape {}", op, dy.shape(), x.shape());
    check_per_channel(op, "weight", weight, channels);
    check_per_channel(op, "save_mean", &save_mean, channels);
    check_per_channel(op, "save_invstd", &save_invstd, channels);

    BatchNorm2dGrads<T> grads{HostTensor<T>(x.shape()), HostTensor<T>(Shape{channels}),
                              HostTensor<T>(Shape{channels})};
    for (int64_t c = 0; c < channels; ++c) {
        const double mean = static_cast<double>(save_mean[c]), invstd = static_cast<double>(save_invstd[c]);
        const double gamma = weight != nullptr ? static_cast<double>((*weight)[c]) : 1.0;
        double sum_dy = 0.0, sum_dy_xhat = 0.0;
        for (int64_t n = 0; n < n_batch; ++n) {
            const int64_t base = plane_offset(n, c, channels, hw);
            for (int64_t i = 0; i < hw; ++i) {
                const double g = static_cast<double>(dy[base + i]);
                sum_dy += g;
                sum_dy_xhat += g * (static_cast<double>(x[base + i]) - mean) * invstd;
            }
        }
        grads.dbias[c] = static_cast<T>(sum_dy);
        grads.dweight[c] = static_cast<T>(sum_dy_xhat);
        for (int64_t n = 0; n < n_batch; ++n) {
            const int64_t base = plane_offset(n, c, channels, hw);
            for (int64_t i = 0; i < hw; ++i) {
                const double g = static_cast<double>(dy[base + i]);
                double dx = g;
                if (training) {
                    // The mean and variance depend on every x of the channel: their paths remove dy's mean
                    // and its component along x̂.
                    const double x_hat = (static_cast<double>(x[base + i]) - mean) * invstd;
                    dx = g - sum_dy / count - x_hat * sum_dy_xhat / count;
                }
                grads.dx[base + i] = static_cast<T>(gamma * invstd * dx);
            }
        }
    }
    return grads;
}

#define CUDACNN_INSTANTIATE_BATCH_NORM(T)                                                                        \
    template BatchNorm2dResult<T> batch_norm2d(const HostTensor<T>&, const HostTensor<T>*, const HostTensor<T>*, \
                                               BatchNorm2dRunningStats<T>*, const BatchNorm2dOptions&);         \
    template BatchNorm2dGrads<T> batch_norm2d_backward(const HostTensor<T>&, const HostTensor<T>*,              \
                                                       const HostTensor<T>&, const HostTensor<T>&,              \
                                                       const HostTensor<T>&, bool);

CUDACNN_INSTANTIATE_BATCH_NORM(float)
CUDACNN_INSTANTIATE_BATCH_NORM(double)

#undef CUDACNN_INSTANTIATE_BATCH_NORM

}  // namespace cudacnn::cpu
