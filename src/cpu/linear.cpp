// CPU reference of the linear layer (y = x · Wᵀ + b) and its gradients: the spec that linear kernels match.
#include "cudacnn/ops/linear.hpp"

#include <cstdint>

#include "cudacnn/error.hpp"

namespace cudacnn::cpu {
namespace {

// Every sum runs in double, whatever T is, and is rounded to T once: a float reference then differs from
// the exact result by at most half an ulp (plus double's far smaller error), whereas float accumulation
// over K terms errs by up to ~K ulps. Parity tests of float kernels thus measure the kernel's own error.
using Acc = double;

template <class T>
void check_linear_args(const HostTensor<T>& x, const HostTensor<T>& weight) {
    CUDACNN_CHECK(x.shape().rank() == 2, "linear: x has shape {}; it must be (N, in_features)", x.shape());
    CUDACNN_CHECK(weight.shape().rank() == 2,
                  "linear: weight has shape {}; it must be (out_features, in_features)", weight.shape());
    CUDACNN_CHECK(x.dim(0) > 0 && x.dim(1) > 0, "linear: x has shape {}; N and in_features must be positive",
                  x.shape());
    CUDACNN_CHECK(weight.dim(0) > 0 && weight.dim(1) > 0,
                  "linear: weight has shape {}; out_features and in_features must be positive",
                  weight.shape());
    CUDACNN_CHECK(x.dim(1) == weight.dim(1),
                  "linear: x has shape {} but weight {} expects in_features {}; x must be (N, {})", x.shape(),
                  weight.shape(), weight.dim(1), weight.dim(1));
}

}  // namespace

template <class T>
HostTensor<T> linear(const HostTensor<T>& x, const HostTensor<T>& weight, const HostTensor<T>* bias) {
    check_linear_args(x, weight);
    const int64_t n_batch = x.dim(0), in = x.dim(1), out = weight.dim(0);
    if (bias != nullptr) {
        CUDACNN_CHECK(bias->shape() == Shape({out}),
                      "linear: bias has shape {}; it must be (out_features) = ({}) to match weight {}",
                      bias->shape(), out, weight.shape());
    }
    HostTensor<T> y(Shape{n_batch, out});  // (N, out_features)
    for (int64_t n = 0; n < n_batch; ++n) {
        for (int64_t o = 0; o < out; ++o) {
            Acc sum = bias != nullptr ? static_cast<Acc>((*bias)[o]) : Acc(0);
            for (int64_t i = 0; i < in; ++i) {
                sum += static_cast<Acc>(x[n * in + i]) * static_cast<Acc>(weight[o * in + i]);
            }
            y[n * out + o] = static_cast<T>(sum);
        }
    }
    return y;
}

template <class T>
LinearGrads<T> linear_backward(const HostTensor<T>& x, const HostTensor<T>& weight, const HostTensor<T>& dy,
                               bool has_bias) {
    check_linear_args(x, weight);
    const int64_t n_batch = x.dim(0), in = x.dim(1), out = weight.dim(0);
    CUDACNN_CHECK(
        dy.shape() == Shape({n_batch, out}),
        "linear_backward: dy has shape {}; it must be (N, out_features) = ({}, {}) for x {} and weight {}",
        dy.shape(), n_batch, out, x.shape(), weight.shape());

    LinearGrads<T> grads;
    grads.dx = HostTensor<T>(Shape{n_batch, in});  // dx[n, i] = Σ_o dy[n, o] · W[o, i]
    for (int64_t n = 0; n < n_batch; ++n) {
        for (int64_t i = 0; i < in; ++i) {
            Acc sum = 0;
            for (int64_t o = 0; o < out; ++o) {
                sum += static_cast<Acc>(dy[n * out + o]) * static_cast<Acc>(weight[o * in + i]);
            }
            grads.dx[n * in + i] = static_cast<T>(sum);
        }
    }
    grads.dweight = HostTensor<T>(Shape{out, in});  // dW[o, i] = Σ_n dy[n, o] · x[n, i]
    for (int64_t o = 0; o < out; ++o) {
        for (int64_t i = 0; i < in; ++i) {
            Acc sum = 0;
            for (int64_t n = 0; n < n_batch; ++n) {
                sum += static_cast<Acc>(dy[n * out + o]) * static_cast<Acc>(x[n * in + i]);
            }
            grads.dweight[o * in + i] = static_cast<T>(sum);
        }
    }
    if (has_bias) {
        grads.dbias = HostTensor<T>(Shape{out});  // db[o] = Σ_n dy[n, o]
        for (int64_t o = 0; o < out; ++o) {
            Acc sum = 0;
            for (int64_t n = 0; n < n_batch; ++n) sum += static_cast<Acc>(dy[n * out + o]);
            grads.dbias[o] = static_cast<T>(sum);
        }
    }
    return grads;
}

template HostTensor<float> linear(const HostTensor<float>&, const HostTensor<float>&,
                                  const HostTensor<float>*);
template HostTensor<double> linear(const HostTensor<double>&, const HostTensor<double>&,
                                   const HostTensor<double>*);
template LinearGrads<float> linear_backward(const HostTensor<float>&, const HostTensor<float>&,
                                            const HostTensor<float>&, bool);
template LinearGrads<double> linear_backward(const HostTensor<double>&, const HostTensor<double>&,
                                             const HostTensor<double>&, bool);

}  // namespace cudacnn::cpu
