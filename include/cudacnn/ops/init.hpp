// Parameter initialization with PyTorch's default distributions, drawn from Philox so kernels can match it.
#pragma once

#include <cstdint>

#include "cudacnn/host_tensor.hpp"

namespace cudacnn::cpu {

// Randomness: element i of a tensor uses draw i of Philox stream `stream` under `seed`, that is
//   u_i = uint32_to_unit_float(philox_draw(seed, stream, i / 4).v[i % 4])   in [0, 1), on a 2^-24 grid,
// and a uniform value on [lo, hi) is lo + (hi − lo) · u_i, computed in double and rounded once to T (so the
// float and double versions hold the same values up to that rounding; float rounding may reach hi itself).
// Give every tensor of a model its own stream (e.g. its index in state_dict order): streams are independent,
// so tensors are too, and one tensor can be re-drawn without touching the others. The distributions are
// PyTorch's; the values cannot be, since PyTorch's CPU generator is a Mersenne Twister.

// PyTorch's torch.nn.init._calculate_fan_in_and_fan_out for a weight of shape (out, in, k1, k2, …), rank >= 2:
//   fan_in = in · k1 · k2 · …,  fan_out = out · k1 · k2 · …
// A conv weight is (out_channels, in_channels / groups, kh, kw), so fan_in = in_channels / groups · kh · kw;
// a linear weight is (out_features, in_features), so fan_in = in_features.
int64_t fan_in(const Shape& weight_shape);
int64_t fan_out(const Shape& weight_shape);

// torch.nn.init.calculate_gain("leaky_relu", a) = sqrt(2 / (1 + a²)).
double leaky_relu_gain(double a);

// torch.nn.init.uniform_(t, lo, hi): U[lo, hi). Requires lo <= hi, both finite, and at least one element.
template <class T>
HostTensor<T> uniform_init(const Shape& shape, double lo, double hi, uint64_t seed, uint64_t stream);

// torch.nn.init.kaiming_uniform_(w, a, mode="fan_in", nonlinearity="leaky_relu"):
// U(−bound, bound) with bound = gain · sqrt(3 / fan_in), gain = leaky_relu_gain(a).
template <class T>
HostTensor<T> kaiming_uniform_init(const Shape& weight_shape, double a, uint64_t seed, uint64_t stream);

// The weight init of nn.Conv2d and nn.Linear (reset_parameters): kaiming_uniform with a = sqrt(5), which makes
// gain = sqrt(1/3) and bound = 1 / sqrt(fan_in).
template <class T>
HostTensor<T> default_weight_init(const Shape& weight_shape, uint64_t seed, uint64_t stream);

// The bias init of nn.Conv2d and nn.Linear: U(−1/sqrt(fan_in), 1/sqrt(fan_in)) with the fan_in of the layer's
// weight (fan_in(weight_shape)), for a bias of shape (out_channels) or (out_features).
template <class T>
HostTensor<T> default_bias_init(const Shape& bias_shape, int64_t weight_fan_in, uint64_t seed, uint64_t stream);

// nn.BatchNorm2d's parameters: gamma (weight) ones and beta (bias) zeros, each of shape (channels). Its buffers
// start the same way: running_mean zeros, running_var ones.
template <class T>
HostTensor<T> batchnorm_weight_init(int64_t channels);
template <class T>
HostTensor<T> batchnorm_bias_init(int64_t channels);

}  // namespace cudacnn::cpu
