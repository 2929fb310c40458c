// Deterministic random test tensors.
#pragma once

#include <cstdint>
#include <random>

#include "cudacnn/host_tensor.hpp"

namespace cudacnn::test {

// A tensor of values uniform in [lo, hi), deterministic for a seed. Exact zeros are practically impossible
// (they would hide unwritten outputs and untested products).
template <class T>
HostTensor<T> random_tensor(const Shape& shape, uint32_t seed, double lo = -1.0, double hi = 1.0) {
    std::mt19937 rng(seed);
    std::uniform_real_distribution<double> dist(lo, hi);
    HostTensor<T> t(shape);
    for (int64_t i = 0; i < t.numel(); ++i) t[i] = static_cast<T>(dist(rng));
    return t;
}

}  // namespace cudacnn::test
