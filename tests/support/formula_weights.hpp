// Weights and inputs from a formula that tools/fixtures/torchvision_models.py computes bit for bit the same
// (formula_values there; its docstring is the specification), so that the torchvision parity tests need no
// stored weights: a value is a 32-bit hash of its flat index and a salt from the tensor's name, mapped
// exactly to u in [-1, 1), then scaled by the tensor's role.
#pragma once

#include <cmath>
#include <cstdint>
#include <string>

#include "cudacnn/error.hpp"
#include "cudacnn/graph/model.hpp"
#include "cudacnn/host_tensor.hpp"
#include "cudacnn/io/state_dict.hpp"

namespace cudacnn::test::formula {

inline uint32_t fnv1a32(const std::string& text) {
    uint32_t h = 0x811C9DC5u;
    for (unsigned char byte : text) h = (h ^ byte) * 0x01000193u;
    return h;
}

inline uint32_t hash32(uint32_t x) {
    x ^= x >> 16;
    x *= 0x7FEB352Du;
    x ^= x >> 15;
    x *= 0x2C1B3C6Du;
    return x ^ (x >> 16);
}

// u for flat index k of a tensor whose salt is `salt`: a multiple of 2^-23 in [-1, 1), exact in float.
inline float unit_value(uint32_t salt, int64_t k) {
    const uint32_t h = hash32(static_cast<uint32_t>(k) + salt);
    return static_cast<float>(static_cast<int32_t>(h >> 8) - (1 << 23)) * 0x1p-23f;
}

// The values of tensor `name` with `shape` for its state_dict role ("weight", "bias", "running_mean",
// "running_var", or "input"); num_batches_tracked is 0 and has no formula here.
inline HostTensor<float> values(const std::string& name, const Shape& shape, const std::string& role) {
    const uint32_t salt = fnv1a32(name) * 0x9E3779B1u;
    HostTensor<float> t(shape);
    float scale = 1.0f, offset = 0.0f;
    if (role == "weight" && shape.rank() >= 2) {
        scale = static_cast<float>(std::sqrt(6.0 / static_cast<double>(shape.numel() / shape[0])));
    } else if (role == "weight" || role == "running_var") {
        scale = 0.5f, offset = 1.0f;  // the product is exact, so a fused multiply-add gives the same bits
    } else if (role == "bias" || role == "running_mean") {
        scale = 0.25f;
    } else {
        CUDACNN_CHECK(role == "input", "formula weights: {} has role '{}', which has no formula", name, role);
    }
    float* out = t.data();
    for (int64_t k = 0; k < t.numel(); ++k) out[k] = unit_value(salt, k) * scale + offset;
    return t;
}

// The whole state_dict of `graph` from the formula (BN's num_batches_tracked 0).
inline io::StateDict state_dict(const graph::Graph& graph) {
    io::StateDict state;
    for (const graph::StateEntry& entry : graph.state) {
        if (entry.dtype == DType::i64) {
            state.put(entry.name, HostTensor<int64_t>(entry.shape, 0));
        } else {
            state.put(entry.name, values(entry.name, entry.shape, entry.role));
        }
    }
    return state;
}

// An input batch (N, C, H, W): the fixture script's "input.<case>" tensor.
inline HostTensor<float> input(const std::string& case_name, const Shape& shape) {
    return values("input." + case_name, shape, "input");
}

}  // namespace cudacnn::test::formula
