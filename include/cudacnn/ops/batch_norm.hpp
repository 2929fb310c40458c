// batch_norm2d: PyTorch's nn.BatchNorm2d / F.batch_norm over (N, C, H, W) — training (batch statistics and
// running-statistics update) and evaluation (running statistics), optional affine — forward and backward.
#pragma once

#include <cstdint>
#include <optional>

#include "cudacnn/host_tensor.hpp"
#include "cudacnn/tensor.hpp"

namespace cudacnn::cpu {

// nn.BatchNorm2d's arguments other than num_features (from the input) and affine / track_running_stats
// (whether weight, bias and running statistics are passed), with PyTorch's defaults.
struct BatchNorm2dOptions {
    bool training = true;  // normalize by batch statistics (and update the running ones) or by the running ones
    // Weight of the new batch in the running statistics, in [0, 1]; nullopt (PyTorch's momentum=None)
    // means a cumulative average: the weight is 1 / num_batches_tracked.
    std::optional<double> momentum = 0.1;
    double eps = 1e-5;  // added to the variance before the square root; >= 0
};

// The module's buffers (state_dict: running_mean, running_var, num_batches_tracked); a training step
// updates them in place.
template <class T>
struct BatchNorm2dRunningStats {
    HostTensor<T> running_mean;  // (C)
    HostTensor<T> running_var;   // (C)
    int64_t num_batches_tracked = 0;

    // What nn.BatchNorm2d starts with: mean 0, variance 1, no batches.
    static BatchNorm2dRunningStats initial(int64_t channels) {
        return {HostTensor<T>(Shape{channels}, T(0)), HostTensor<T>(Shape{channels}, T(1)), 0};
    }
};

template <class T>
struct BatchNorm2dResult {
    HostTensor<T> output;       // (N, C, H, W)
    HostTensor<T> save_mean;    // (C): the mean x was normalized with (batch mean in training, else running)
    HostTensor<T> save_invstd;  // (C): 1 / sqrt(var + eps) for that variance (biased batch variance in training)
};

// y[n, c, h, w] = (x[n, c, h, w] − mean[c]) / sqrt(var[c] + eps) · weight[c] + bias[c].
// Training: mean and var are the batch's over (N, H, W), var biased (÷ N·H·W); if `running` is given,
// num_batches_tracked += 1, then with f = momentum (or 1 / num_batches_tracked when momentum is nullopt)
//   running_mean = (1 − f) · running_mean + f · mean,
//   running_var  = (1 − f) · running_var  + f · var · M / (M − 1)   (unbiased, M = N·H·W > 1).
// Evaluation: mean and var are running_mean and running_var (`running` is required); nothing is updated.
// x: (N, C, H, W); weight, bias: (C) each, or nullptr for none (affine=False: 1 and 0); running: nullptr for
// track_running_stats=False (then only training is possible, as nn.BatchNorm2d always uses batch statistics).
// Statistics are accumulated in double and rounded once (as PyTorch's CPU path does for float).
template <class T>
BatchNorm2dResult<T> batch_norm2d(const HostTensor<T>& x, const HostTensor<T>* weight, const HostTensor<T>* bias,
                                  BatchNorm2dRunningStats<T>* running, const BatchNorm2dOptions& options = {});

template <class T>
struct BatchNorm2dGrads {
    HostTensor<T> dx;       // (N, C, H, W)
    HostTensor<T> dweight;  // (C): Σ_{n,h,w} dy · x̂; what weight gets (ignore it without affine)
    HostTensor<T> dbias;    // (C): Σ_{n,h,w} dy; what bias gets (ignore it without affine)
};

// Gradients given dy (N, C, H, W) and the forward's save_mean and save_invstd, with x̂ = (x − mean) · invstd.
// training: through the batch statistics, dx = weight · invstd · (dy − mean(dy) − x̂ · mean(dy · x̂)) with
// means over (N, H, W); otherwise the statistics are constants and dx = weight · invstd · dy.
// weight: (C) or nullptr as in the forward (the bias value is not needed).
template <class T>
BatchNorm2dGrads<T> batch_norm2d_backward(const HostTensor<T>& x, const HostTensor<T>* weight,
                                          const HostTensor<T>& save_mean, const HostTensor<T>& save_invstd,
                                          const HostTensor<T>& dy, bool training);

}  // namespace cudacnn::cpu
