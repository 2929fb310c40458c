// Element-wise activations with PyTorch's semantics (relu, leaky_relu, gelu, sigmoid, tanh): CPU reference,
// forward and backward.
#pragma once

#include "cudacnn/host_tensor.hpp"

namespace cudacnn::cpu {

// All functions here work on tensors of any shape (at least one element; an empty tensor is an Error) and
// return tensors of the same shape. The float versions compute each element in double and round once, so
// they are within half an ulp of the exact value: parity tests of float kernels measure the kernel's error.
// NaN inputs propagate as in PyTorch (relu(NaN) = NaN).

template <class T>
struct ActivationGrads {
    HostTensor<T> dx;  // same shape as x
};

// ---- relu: max(x, 0) ------------------------------------------------------------------------------------

template <class T>
HostTensor<T> relu(const HostTensor<T>& x);

// dx = dy where y > 0, else 0, from the saved output y = relu(x) (as PyTorch does, so that an in-place
// relu works). The gradient at exactly x = 0 is 0, as in PyTorch. Passing x instead of y gives the same
// result, since y > 0 exactly where x > 0.
template <class T>
ActivationGrads<T> relu_backward(const HostTensor<T>& y, const HostTensor<T>& dy);

// ---- leaky_relu: x if x > 0, else negative_slope · x ---------------------------------------------------

// nn.LeakyReLU's argument. Any finite slope is allowed (PyTorch allows negative and > 1 slopes too).
struct LeakyReluOptions {
    double negative_slope = 0.01;
};

template <class T>
HostTensor<T> leaky_relu(const HostTensor<T>& x, const LeakyReluOptions& options = {});

// dx = dy where x > 0, else negative_slope · dy, from the saved input x: at exactly x = 0 the gradient is
// negative_slope · dy, as in PyTorch.
template <class T>
ActivationGrads<T> leaky_relu_backward(const HostTensor<T>& x, const HostTensor<T>& dy,
                                       const LeakyReluOptions& options = {});

// ---- gelu ------------------------------------------------------------------------------------------------

// PyTorch's `approximate` argument of nn.GELU: 'none' (the default) or 'tanh'.
enum class GeluApproximate { none, tanh };

const char* gelu_approximate_name(GeluApproximate approximate);  // "none", "tanh"

struct GeluOptions {
    GeluApproximate approximate = GeluApproximate::none;
};

// none: x · Φ(x) = 0.5 · x · (1 + erf(x / √2)), Φ the standard normal CDF.
// tanh: 0.5 · x · (1 + tanh(√(2/π) · (x + 0.044715 · x³))).
template <class T>
HostTensor<T> gelu(const HostTensor<T>& x, const GeluOptions& options = {});

// From the saved input x. none: dx = dy · (Φ(x) + x · φ(x)), φ the standard normal density.
// tanh: dx = dy · (0.5 · (1 + t) + 0.5 · x · (1 − t²) · √(2/π) · (1 + 3 · 0.044715 · x²)) with t the tanh
// above.
template <class T>
ActivationGrads<T> gelu_backward(const HostTensor<T>& x, const HostTensor<T>& dy,
                                 const GeluOptions& options = {});

// ---- sigmoid: 1 / (1 + exp(−x)) -------------------------------------------------------------------------

template <class T>
HostTensor<T> sigmoid(const HostTensor<T>& x);

// dx = dy · y · (1 − y), from the saved output y = sigmoid(x), as in PyTorch.
template <class T>
ActivationGrads<T> sigmoid_backward(const HostTensor<T>& y, const HostTensor<T>& dy);

// ---- tanh ------------------------------------------------------------------------------------------------

// Call it as cpu::tanh(x); inside namespace cudacnn::cpu write std::tanh for the scalar function.
template <class T>
HostTensor<T> tanh(const HostTensor<T>& x);

// dx = dy · (1 − y²), from the saved output y = tanh(x), as in PyTorch.
template <class T>
ActivationGrads<T> tanh_backward(const HostTensor<T>& y, const HostTensor<T>& dy);

}  // namespace cudacnn::cpu
