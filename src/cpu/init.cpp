// CPU reference of parameter initialization: PyTorch's default distributions over Philox draws.
#include "cudacnn/ops/init.hpp"

#include <cmath>

#include "cudacnn/error.hpp"
#include "cudacnn/philox.hpp"

namespace cudacnn::cpu {
namespace {

// The receptive field k1 · k2 · … of a weight (out, in, k1, k2, …); 1 for a linear weight.
int64_t receptive_field(const char* op, const Shape& shape) {
    CUDACNN_CHECK(shape.rank() >= 2,
                  "{}: weight shape {} has rank {}; fan-in and fan-out need (out, in, ...) with rank >= 2", op,
                  shape, shape.rank());
    CUDACNN_CHECK(shape.numel() >= 1, "{}: weight shape {} has no elements; every dimension must be >= 1", op,
                  shape);
    int64_t size = 1;
    for (int axis = 2; axis < shape.rank(); ++axis) size *= shape[axis];
    return size;
}

}  // namespace

int64_t fan_in(const Shape& weight_shape) {
    const int64_t receptive = receptive_field("fan_in", weight_shape);  // checks the rank before [1] is read
    return weight_shape[1] * receptive;
}

int64_t fan_out(const Shape& weight_shape) {
    const int64_t receptive = receptive_field("fan_out", weight_shape);
    return weight_shape[0] * receptive;
}

double leaky_relu_gain(double a) {
    CUDACNN_CHECK(std::isfinite(a), "leaky_relu_gain: negative slope {} must be finite", a);
    return std::sqrt(2.0 / (1.0 + a * a));
}

template <class T>
HostTensor<T> uniform_init(const Shape& shape, double lo, double hi, uint64_t seed, uint64_t stream) {
    CUDACNN_CHECK(std::isfinite(lo) && std::isfinite(hi) && lo <= hi,
                  "uniform_init: range [{}, {}) must be finite with lo <= hi", lo, hi);
    CUDACNN_CHECK(shape.numel() >= 1, "uniform_init: shape {} has no elements; every dimension must be >= 1",
                  shape);
    HostTensor<T> t(shape);
    for (int64_t i = 0; i < t.numel(); ++i) {
        const PhiloxBlock block = philox_draw(seed, stream, static_cast<uint64_t>(i) / 4);
        const double u = uint32_to_unit_float(block.v[i % 4]);
        t[i] = static_cast<T>(lo + (hi - lo) * u);
    }
    return t;
}

template <class T>
HostTensor<T> kaiming_uniform_init(const Shape& weight_shape, double a, uint64_t seed, uint64_t stream) {
    // PyTorch's order of operations: std = gain / sqrt(fan), bound = sqrt(3) · std.
    const double std_dev = leaky_relu_gain(a) / std::sqrt(static_cast<double>(fan_in(weight_shape)));
    const double bound = std::sqrt(3.0) * std_dev;
    return uniform_init<T>(weight_shape, -bound, bound, seed, stream);
}

template <class T>
HostTensor<T> default_weight_init(const Shape& weight_shape, uint64_t seed, uint64_t stream) {
    return kaiming_uniform_init<T>(weight_shape, std::sqrt(5.0), seed, stream);
}

template <class T>
HostTensor<T> default_bias_init(const Shape& bias_shape, int64_t weight_fan_in, uint64_t seed, uint64_t stream) {
    CUDACNN_CHECK(bias_shape.rank() == 1 && bias_shape[0] >= 1,
                  "default_bias_init: bias shape {} must be (out_channels) with out_channels >= 1", bias_shape);
    CUDACNN_CHECK(weight_fan_in >= 1, "default_bias_init: weight fan_in {} must be at least 1", weight_fan_in);
    const double bound = 1.0 / std::sqrt(static_cast<double>(weight_fan_in));
    return uniform_init<T>(bias_shape, -bound, bound, seed, stream);
}

template <class T>
HostTensor<T> batchnorm_weight_init(int64_t channels) {
    CUDACNN_CHECK(channels >= 1, "batchnorm_weight_init: channels {} must be at least 1", channels);
    return HostTensor<T>(Shape{channels}, T(1));
}

template <class T>
HostTensor<T> batchnorm_bias_init(int64_t channels) {
    CUDACNN_CHECK(channels >= 1, "batchnorm_bias_init: channels {} must be at least 1", channels);
    return HostTensor<T>(Shape{channels}, T(0));
}

#define CUDACNN_INSTANTIATE_INIT(T)                                                                       \
    template HostTensor<T> uniform_init<T>(const Shape&, double, double, uint64_t, uint64_t);             \
    template HostTensor<T> kaiming_uniform_init<T>(const Shape&, double, uint64_t, uint64_t);             \
    template HostTensor<T> default_weight_init<T>(const Shape&, uint64_t, uint64_t);                      \
    template HostTensor<T> default_bias_init<T>(const Shape&, int64_t, uint64_t, uint64_t);               \
    template HostTensor<T> batchnorm_weight_init<T>(int64_t);                                             \
    template HostTensor<T> batchnorm_bias_init<T>(int64_t);

CUDACNN_INSTANTIATE_INIT(float)
CUDACNN_INSTANTIATE_INIT(double)

}  // namespace cudacnn::cpu
