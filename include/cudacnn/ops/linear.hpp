// Linear (fully connected) layer, PyTorch's nn.Linear: y = x · Wᵀ + b, forward and backward (CPU reference).
#pragma once

#include "cudacnn/host_tensor.hpp"

namespace cudacnn::cpu {

// y = x · weightᵀ + bias, with weight laid out (out_features, in_features) as in PyTorch's state_dict.
//   x      (N, in_features)
//   weight (out_features, in_features)
//   bias   (out_features), or nullptr for a layer without bias (nn.Linear(..., bias=False))
// Returns y (N, out_features). The float version accumulates in double and rounds once, so that it is at
// least as accurate as any float kernel it judges. Throws Error on mismatched or empty shapes.
template <class T>
HostTensor<T> linear(const HostTensor<T>& x, const HostTensor<T>& weight,
                     const HostTensor<T>* bias = nullptr);

template <class T>
struct LinearGrads {
    HostTensor<T> dx;       // (N, in_features)            dy · weight
    HostTensor<T> dweight;  // (out_features, in_features) dyᵀ · x
    HostTensor<T> dbias;    // (out_features)              Σ_n dy[n]; empty when has_bias is false
};

// Gradients of linear() given dy (N, out_features), the gradient of the loss with respect to y.
template <class T>
LinearGrads<T> linear_backward(const HostTensor<T>& x, const HostTensor<T>& weight, const HostTensor<T>& dy,
                               bool has_bias);

}  // namespace cudacnn::cpu
