// What the fused max-pooling parity tests share (max_pool2d_dropout, window taps): the pooling geometries that
// reach both backward kernels, and inputs with the values where max pooling, ReLU and dropout disagree easily.
#pragma once

#include <cstdint>
#include <limits>
#include <string>
#include <vector>

#include "cudacnn/host_tensor.hpp"
#include "cudacnn/ops/pool.hpp"
#include "support/pool_options.hpp"
#include "support/random.hpp"

namespace cudacnn::test {

struct MaxPoolCase {
    std::string name;
    Shape shape;  // the input (N, C, H, W)
    cpu::MaxPool2dOptions pool;
};

// CifarCNN's MaxPool(2, 2) scaled down and odd sizes (the tiled backward); a cut-off last row and column,
// overlapping windows with padding, dilation with ceil mode (the gather).
inline std::vector<MaxPoolCase> max_pool_kernel_cases() {
    return {
        {"cifar_k2", {2, 8, 16, 16}, max_options(2)},
        {"odd_tiled_k2", {3, 5, 6, 10}, max_options(2)},
        {"odd_cut_k2", {3, 5, 9, 7}, max_options(2)},
        {"overlap_k3s1p1", {2, 3, 7, 5}, max_options(3, 1, 1)},
        {"overlap_k3s2p1", {1, 7, 7, 5}, max_options(3, 2, 1)},
        {"dilation2_ceil", {2, 3, 9, 7}, max_options(3, 2, 1, 2, true)},
    };
}

// Random values with ±0, ±NaN and ±inf at every `every`-th element (from seed % every). ties: values rounded to
// quarters first, so that windows hold equal maxima (the first in scan order must win).
inline HostTensor<float> with_specials(const Shape& shape, uint32_t seed, int64_t every, bool ties = false) {
    constexpr float kNaN = std::numeric_limits<float>::quiet_NaN();
    constexpr float kInf = std::numeric_limits<float>::infinity();
    HostTensor<float> t = random_tensor<float>(shape, seed);
    if (ties) {
        for (int64_t i = 0; i < t.numel(); ++i) t[i] = static_cast<float>(static_cast<int>(t[i] * 4.0f)) / 4.0f;
    }
    const float specials[] = {0.0f, -0.0f, kNaN, kInf, -kInf, -kNaN};
    for (int64_t i = seed % every, k = 0; i < t.numel(); i += every, ++k) t[i] = specials[k % 6];
    return t;
}

}  // namespace cudacnn::test
