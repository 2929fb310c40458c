// Activation kernels: one functor per op and direction, run by the vectorized element-wise map kernel.
#include "cuda/activation.hpp"

#include <cmath>

#include "cuda/elementwise.cuh"
#include "cuda/relu_rule.cuh"
#include "cudacnn/error.hpp"

namespace cudacnn::gpu {
namespace kernels {

// The constants of the reference (src/cpu/activation.cpp), rounded to float.
constexpr float kSqrt2OverPi = 0.79788456080286535588f;
constexpr float kGeluKappa = 0.044715f;
constexpr float kInvSqrt2Pi = 0.39894228040143267794f;

// Each functor maps (input, second input) to the output; unary ops ignore the second argument.
struct ReluForward {
    __device__ float operator()(float x, float) const { return relu_value(x); }
};
struct ReluBackward {
    __device__ float operator()(float y, float dy) const { return relu_gradient(y, dy); }
};

struct LeakyReluForward {
    float slope;
    __device__ float operator()(float x, float) const { return x > 0.0f ? x : x * slope; }
};
struct LeakyReluBackward {
    float slope;
    __device__ float operator()(float x, float dy) const { return x > 0.0f ? dy : dy * slope; }
};

// x · Φ(x): normcdff is accurate in the left tail, where 0.5 · (1 + erf) would cancel.
struct GeluErfForward {
    __device__ float operator()(float x, float) const { return x * normcdff(x); }
};
struct GeluErfBackward {
    __device__ float operator()(float x, float dy) const {
        return dy * (normcdff(x) + x * (kInvSqrt2Pi * expf(-0.5f * x * x)));
    }
};

__device__ inline float gelu_tanh_inner(float x) {
    return kSqrt2OverPi * (x + kGeluKappa * x * x * x);
}

struct GeluTanhForward {
    __device__ float operator()(float x, float) const {
        return 0.5f * x * (1.0f + tanhf(gelu_tanh_inner(x)));
    }
};
struct GeluTanhBackward {
    __device__ float operator()(float x, float dy) const {
        const float t = tanhf(gelu_tanh_inner(x));
        const float sech2 = 1.0f - t * t;
        // Where tanh saturates the second term is exactly 0; skipping it avoids 0 · inf when x² overflows.
        const float slope_term =
            sech2 == 0.0f ? 0.0f : 0.5f * x * sech2 * (kSqrt2OverPi * (1.0f + 3.0f * kGeluKappa * x * x));
        return dy * (0.5f * (1.0f + t) + slope_term);
    }
};

struct SigmoidForward {
    // expf(−x) overflows to inf for very negative x, and 1 / inf = 0 is the right limit.
    __device__ float operator()(float x, float) const { return 1.0f / (1.0f + expf(-x)); }
};
struct SigmoidBackward {
    __device__ float operator()(float y, float dy) const { return dy * (y * (1.0f - y)); }
};

struct TanhForward {
    __device__ float operator()(float x, float) const { return tanhf(x); }
};
struct TanhBackward {
    __device__ float operator()(float y, float dy) const { return dy * (1.0f - y * y); }
};

}  // namespace kernels

namespace {

void check_forward(const char* op, const void* x, const void* y, int64_t count) {
    CUDACNN_CHECK(count > 0, "{}: the input is empty (count {}); pass at least one element", op, count);
    CUDACNN_CHECK(x != nullptr && y != nullptr, "{}: x ({}) and y ({}) must be device pointers, not null", op,
                  x, y);
}

void check_backward(const char* op, const void* saved, const void* dy, const void* dx, int64_t count) {
    CUDACNN_CHECK(count > 0, "{}: the input is empty (count {}); pass at least one element", op, count);
    CUDACNN_CHECK(saved != nullptr && dy != nullptr && dx != nullptr,
                  "{}: the saved tensor ({}), dy ({}) and dx ({}) must be device pointers, not null", op,
                  saved, dy, dx);
}

float checked_slope(const char* op, const cpu::LeakyReluOptions& options) {
    CUDACNN_CHECK(std::isfinite(options.negative_slope),
                  "{}: negative_slope is {}; it must be a finite number", op, options.negative_slope);
    return static_cast<float>(options.negative_slope);
}

void check_gelu_options(const char* op, const cpu::GeluOptions& options) {
    CUDACNN_CHECK(options.approximate == cpu::GeluApproximate::none ||
                      options.approximate == cpu::GeluApproximate::tanh,
                  "{}: approximate is {}; it must be GeluApproximate::none or GeluApproximate::tanh", op,
                  static_cast<int>(options.approximate));
}

// The launchers, one template per op and direction over the storage type T (float or bf16): the same functor
// runs on widened values, and the bf16 output is rounded once per element.
template <class T>
void relu_forward_t(const T* x, T* y, int64_t count, cudaStream_t stream) {
    check_forward("relu", x, y, count);
    launch_map<1>(kernels::ReluForward{}, x, nullptr, y, count, stream);
}

template <class T>
void relu_backward_t(const T* y, const T* dy, T* dx, int64_t count, cudaStream_t stream) {
    check_backward("relu_backward", y, dy, dx, count);
    launch_map<2>(kernels::ReluBackward{}, y, dy, dx, count, stream);
}

template <class T>
void leaky_relu_forward_t(const T* x, T* y, int64_t count, const cpu::LeakyReluOptions& options,
                          cudaStream_t stream) {
    check_forward("leaky_relu", x, y, count);
    const float slope = checked_slope("leaky_relu", options);
    launch_map<1>(kernels::LeakyReluForward{slope}, x, nullptr, y, count, stream);
}

template <class T>
void leaky_relu_backward_t(const T* x, const T* dy, T* dx, int64_t count,
                           const cpu::LeakyReluOptions& options, cudaStream_t stream) {
    check_backward("leaky_relu_backward", x, dy, dx, count);
    const float slope = checked_slope("leaky_relu_backward", options);
    launch_map<2>(kernels::LeakyReluBackward{slope}, x, dy, dx, count, stream);
}

template <class T>
void gelu_forward_t(const T* x, T* y, int64_t count, const cpu::GeluOptions& options, cudaStream_t stream) {
    check_forward("gelu", x, y, count);
    check_gelu_options("gelu", options);
    if (options.approximate == cpu::GeluApproximate::tanh) {
        launch_map<1>(kernels::GeluTanhForward{}, x, nullptr, y, count, stream);
    } else {
        launch_map<1>(kernels::GeluErfForward{}, x, nullptr, y, count, stream);
    }
}

template <class T>
void gelu_backward_t(const T* x, const T* dy, T* dx, int64_t count, const cpu::GeluOptions& options,
                     cudaStream_t stream) {
    check_backward("gelu_backward", x, dy, dx, count);
    check_gelu_options("gelu_backward", options);
    if (options.approximate == cpu::GeluApproximate::tanh) {
        launch_map<2>(kernels::GeluTanhBackward{}, x, dy, dx, count, stream);
    } else {
        launch_map<2>(kernels::GeluErfBackward{}, x, dy, dx, count, stream);
    }
}

template <class T>
void sigmoid_forward_t(const T* x, T* y, int64_t count, cudaStream_t stream) {
    check_forward("sigmoid", x, y, count);
    launch_map<1>(kernels::SigmoidForward{}, x, nullptr, y, count, stream);
}

template <class T>
void sigmoid_backward_t(const T* y, const T* dy, T* dx, int64_t count, cudaStream_t stream) {
    check_backward("sigmoid_backward", y, dy, dx, count);
    launch_map<2>(kernels::SigmoidBackward{}, y, dy, dx, count, stream);
}

template <class T>
void tanh_forward_t(const T* x, T* y, int64_t count, cudaStream_t stream) {
    check_forward("tanh", x, y, count);
    launch_map<1>(kernels::TanhForward{}, x, nullptr, y, count, stream);
}

template <class T>
void tanh_backward_t(const T* y, const T* dy, T* dx, int64_t count, cudaStream_t stream) {
    check_backward("tanh_backward", y, dy, dx, count);
    launch_map<2>(kernels::TanhBackward{}, y, dy, dx, count, stream);
}

}  // namespace

void relu_forward(const float* x, float* y, int64_t count, cudaStream_t stream) {
    relu_forward_t(x, y, count, stream);
}
void relu_backward(const float* y, const float* dy, float* dx, int64_t count, cudaStream_t stream) {
    relu_backward_t(y, dy, dx, count, stream);
}
void leaky_relu_forward(const float* x, float* y, int64_t count, const cpu::LeakyReluOptions& options,
                        cudaStream_t stream) {
    leaky_relu_forward_t(x, y, count, options, stream);
}
void leaky_relu_backward(const float* x, const float* dy, float* dx, int64_t count,
                         const cpu::LeakyReluOptions& options, cudaStream_t stream) {
    leaky_relu_backward_t(x, dy, dx, count, options, stream);
}
void gelu_forward(const float* x, float* y, int64_t count, const cpu::GeluOptions& options,
                  cudaStream_t stream) {
    gelu_forward_t(x, y, count, options, stream);
}
void gelu_backward(const float* x, const float* dy, float* dx, int64_t count, const cpu::GeluOptions& options,
                   cudaStream_t stream) {
    gelu_backward_t(x, dy, dx, count, options, stream);
}
void sigmoid_forward(const float* x, float* y, int64_t count, cudaStream_t stream) {
    sigmoid_forward_t(x, y, count, stream);
}
void sigmoid_backward(const float* y, const float* dy, float* dx, int64_t count, cudaStream_t stream) {
    sigmoid_backward_t(y, dy, dx, count, stream);
}
void tanh_forward(const float* x, float* y, int64_t count, cudaStream_t stream) {
    tanh_forward_t(x, y, count, stream);
}
void tanh_backward(const float* y, const float* dy, float* dx, int64_t count, cudaStream_t stream) {
    tanh_backward_t(y, dy, dx, count, stream);
}

void relu_forward(const bf16* x, bf16* y, int64_t count, cudaStream_t stream) {
    relu_forward_t(x, y, count, stream);
}
void relu_backward(const bf16* y, const bf16* dy, bf16* dx, int64_t count, cudaStream_t stream) {
    relu_backward_t(y, dy, dx, count, stream);
}
void leaky_relu_forward(const bf16* x, bf16* y, int64_t count, const cpu::LeakyReluOptions& options,
                        cudaStream_t stream) {
    leaky_relu_forward_t(x, y, count, options, stream);
}
void leaky_relu_backward(const bf16* x, const bf16* dy, bf16* dx, int64_t count,
                         const cpu::LeakyReluOptions& options, cudaStream_t stream) {
    leaky_relu_backward_t(x, dy, dx, count, options, stream);
}
void gelu_forward(const bf16* x, bf16* y, int64_t count, const cpu::GeluOptions& options,
                  cudaStream_t stream) {
    gelu_forward_t(x, y, count, options, stream);
}
void gelu_backward(const bf16* x, const bf16* dy, bf16* dx, int64_t count, const cpu::GeluOptions& options,
                   cudaStream_t stream) {
    gelu_backward_t(x, dy, dx, count, options, stream);
}
void sigmoid_forward(const bf16* x, bf16* y, int64_t count, cudaStream_t stream) {
    sigmoid_forward_t(x, y, count, stream);
}
void sigmoid_backward(const bf16* y, const bf16* dy, bf16* dx, int64_t count, cudaStream_t stream) {
    sigmoid_backward_t(y, dy, dx, count, stream);
}
void tanh_forward(const bf16* x, bf16* y, int64_t count, cudaStream_t stream) {
    tanh_forward_t(x, y, count, stream);
}
void tanh_backward(const bf16* y, const bf16* dy, bf16* dx, int64_t count, cudaStream_t stream) {
    tanh_backward_t(y, dy, dx, count, stream);
}

}  // namespace cudacnn::gpu
