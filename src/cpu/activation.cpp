// CPU reference of the element-wise activations and their gradients: the spec that activation kernels match.
#include "cudacnn/ops/activation.hpp"

#include <cmath>
#include <cstdint>
#include <utility>

#include "cudacnn/error.hpp"

namespace cudacnn::cpu {
namespace {

// Each element is computed in double whatever T is and rounded to T once (see the header).
using Acc = double;

// √(2/π) and 0.044715: the constants of the tanh approximation of gelu (Hendrycks & Gimpel; PyTorch's kBeta
// and kKappa). 1/√(2π) normalizes the normal density.
constexpr Acc kSqrt2OverPi = 0.79788456080286535587989211986876;
constexpr Acc kGeluKappa = 0.044715;
constexpr Acc kInvSqrt2 = 0.70710678118654752440084436210485;
constexpr Acc kInvSqrt2Pi = 0.39894228040143267793994605993438;

template <class T>
void check_input(const char* op, const HostTensor<T>& x) {
    CUDACNN_CHECK(!x.empty(), "{}: the input is empty (shape {}); pass a tensor with at least one element",
                  op, x.shape());
}

// `saved` is x or y (whichever the backward takes); dy must have its shape.
template <class T>
void check_backward_args(const char* op, const char* saved_name, const HostTensor<T>& saved,
                         const HostTensor<T>& dy) {
    CUDACNN_CHECK(!saved.empty(), "{}: {} is empty (shape {}); pass the tensor saved by the forward", op,
                  saved_name, saved.shape());
    CUDACNN_CHECK(dy.shape() == saved.shape(), "{}: dy has shape {} but {} has shape {}; they must be equal",
                  op, dy.shape(), saved_name, saved.shape());
}

// y[i] = f(x[i]) with f computed in Acc.
template <class T, class F>
HostTensor<T> map(const HostTensor<T>& x, F f) {
    HostTensor<T> y(x.shape());
    for (int64_t i = 0; i < x.numel(); ++i) y[i] = static_cast<T>(f(static_cast<Acc>(x[i])));
    return y;
}

// dx[i] = dy[i] · g(saved[i]) with the local derivative g computed in Acc.
template <class T, class G>
ActivationGrads<T> chain(const HostTensor<T>& saved, const HostTensor<T>& dy, G g) {
    HostTensor<T> dx(saved.shape());
    for (int64_t i = 0; i < saved.numel(); ++i) {
        dx[i] = static_cast<T>(static_cast<Acc>(dy[i]) * g(static_cast<Acc>(saved[i])));
    }
    return {std::move(dx)};
}

void check_gelu_options(const char* op, const GeluOptions& options) {
    CUDACNN_CHECK(
        options.approximate == GeluApproximate::none || options.approximate == GeluApproximate::tanh,
        "{}: approximate is {}; it must be GeluApproximate::none or GeluApproximate::tanh", op,
        static_cast<int>(options.approximate));
}

void check_leaky_relu_options(const char* op, const LeakyReluOptions& options) {
    CUDACNN_CHECK(std::isfinite(options.negative_slope),
                  "{}: negative_slope is {}; it must be a finite number", op, options.negative_slope);
}

}  // namespace

const char* gelu_approximate_name(GeluApproximate approximate) {
    switch (approximate) {
        case GeluApproximate::none:
            return "none";
        case GeluApproximate::tanh:
            return "tanh";
    }
    return "unknown";
}

// ---- relu ------------------------------------------------------------------------------------------------

template <class T>
HostTensor<T> relu(const HostTensor<T>& x) {
    check_input("relu", x);
    // Written so that NaN stays NaN (NaN > 0 is false, but NaN < 0 is false too), as PyTorch's clamp_min.
    return map(x, [](Acc v) { return v < 0 ? Acc(0) : v; });
}

template <class T>
ActivationGrads<T> relu_backward(const HostTensor<T>& y, const HostTensor<T>& dy) {
    check_backward_args("relu_backward", "y", y, dy);
    // A select, not the product dy · (y > 0), so that an infinite dy where y = 0 gives 0 rather than NaN; and
    // written as PyTorch's threshold_backward (y <= 0 ? 0 : dy), so that a NaN y passes dy through as there.
    HostTensor<T> dx(y.shape());
    for (int64_t i = 0; i < y.numel(); ++i) dx[i] = y[i] <= T(0) ? T(0) : dy[i];
    return {std::move(dx)};
}

// ---- leaky_relu ------------------------------------------------------------------------------------------

template <class T>
HostTensor<T> leaky_relu(const HostTensor<T>& x, const LeakyReluOptions& options) {
    check_input("leaky_relu", x);
    check_leaky_relu_options("leaky_relu", options);
    const Acc slope = options.negative_slope;
    return map(x, [slope](Acc v) { return v > 0 ? v : v * slope; });
}

template <class T>
ActivationGrads<T> leaky_relu_backward(const HostTensor<T>& x, const HostTensor<T>& dy,
                                       const LeakyReluOptions& options) {
    check_backward_args("leaky_relu_backward", "x", x, dy);
    check_leaky_relu_options("leaky_relu_backward", options);
    const Acc slope = options.negative_slope;
    return chain(x, dy, [slope](Acc v) { return v > 0 ? Acc(1) : slope; });
}

// ---- gelu ------------------------------------------------------------------------------------------------

template <class T>
HostTensor<T> gelu(const HostTensor<T>& x, const GeluOptions& options) {
    check_input("gelu", x);
    check_gelu_options("gelu", options);
    if (options.approximate == GeluApproximate::tanh) {
        return map(x, [](Acc v) {
            const Acc inner = kSqrt2OverPi * (v + kGeluKappa * v * v * v);
            return 0.5 * v * (1 + std::tanh(inner));
        });
    }
    return map(x, [](Acc v) { return 0.5 * v * (1 + std::erf(v * kInvSqrt2)); });
}

template <class T>
ActivationGrads<T> gelu_backward(const HostTensor<T>& x, const HostTensor<T>& dy,
                                 const GeluOptions& options) {
    check_backward_args("gelu_backward", "x", x, dy);
    check_gelu_options("gelu_backward", options);
    if (options.approximate == GeluApproximate::tanh) {
        return chain(x, dy, [](Acc v) {
            const Acc t = std::tanh(kSqrt2OverPi * (v + kGeluKappa * v * v * v));
            const Acc d_inner = kSqrt2OverPi * (1 + 3 * kGeluKappa * v * v);
            return 0.5 * (1 + t) + 0.5 * v * (1 - t * t) * d_inner;
        });
    }
    return chain(x, dy, [](Acc v) {
        const Acc cdf = 0.5 * (1 + std::erf(v * kInvSqrt2));
        const Acc pdf = kInvSqrt2Pi * std::exp(-0.5 * v * v);
        return cdf + v * pdf;
    });
}

// ---- sigmoid ---------------------------------------------------------------------------------------------

template <class T>
HostTensor<T> sigmoid(const HostTensor<T>& x) {
    check_input("sigmoid", x);
    // exp(−x) overflows to +inf for x < −709, and 1 / (1 + inf) = 0 is the right limit, so no branch is
    // needed.
    return map(x, [](Acc v) { return 1 / (1 + std::exp(-v)); });
}

template <class T>
ActivationGrads<T> sigmoid_backward(const HostTensor<T>& y, const HostTensor<T>& dy) {
    check_backward_args("sigmoid_backward", "y", y, dy);
    return chain(y, dy, [](Acc s) { return s * (1 - s); });
}

// ---- tanh ------------------------------------------------------------------------------------------------

template <class T>
HostTensor<T> tanh(const HostTensor<T>& x) {
    check_input("tanh", x);
    return map(x, [](Acc v) { return std::tanh(v); });
}

template <class T>
ActivationGrads<T> tanh_backward(const HostTensor<T>& y, const HostTensor<T>& dy) {
    check_backward_args("tanh_backward", "y", y, dy);
    return chain(y, dy, [](Acc t) { return 1 - t * t; });
}

#define CUDACNN_INSTANTIATE_ACTIVATION(T)                                                       \
    template HostTensor<T> relu(const HostTensor<T>&);                                          \
    template ActivationGrads<T> relu_backward(const HostTensor<T>&, const HostTensor<T>&);      \
    template HostTensor<T> leaky_relu(const HostTensor<T>&, const LeakyReluOptions&);           \
    template ActivationGrads<T> leaky_relu_backward(const HostTensor<T>&, const HostTensor<T>&, \
                                                    const LeakyReluOptions&);                   \
    template HostTensor<T> gelu(const HostTensor<T>&, const GeluOptions&);                      \
    template ActivationGrads<T> gelu_backward(const HostTensor<T>&, const HostTensor<T>&,       \
                                              const GeluOptions&);                              \
    template HostTensor<T> sigmoid(const HostTensor<T>&);                                       \
    template ActivationGrads<T> sigmoid_backward(const HostTensor<T>&, const HostTensor<T>&);   \
    template HostTensor<T> tanh(const HostTensor<T>&);                                          \
    template ActivationGrads<T> tanh_backward(const HostTensor<T>&, const HostTensor<T>&);

CUDACNN_INSTANTIATE_ACTIVATION(float)
CUDACNN_INSTANTIATE_ACTIVATION(double)

}  // namespace cudacnn::cpu
