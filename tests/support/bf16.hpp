// bfloat16 in parity tests: the reference of a bf16 kernel is the float reference op run on bf16-rounded
// inputs, its output rounded once to bf16 (docs/bf16-nhwc-plan.md). Host tensors hold those values as floats;
// these move them to and from bf16 device buffers.
#pragma once

#include <cmath>
#include <cstdint>
#include <cstring>
#include <vector>

#include "cuda/bf16.cuh"
#include "cudacnn/device.hpp"
#include "cudacnn/host_tensor.hpp"
#include "cudacnn/io/float16.hpp"
#include "support/parity.hpp"

namespace cudacnn::test {

// v rounded to the nearest bf16 (ties to even), as a float; NaN stays NaN.
inline float round_to_bf16(float value) {
    return io::bf16_bits_to_float(io::float_to_bf16_bits(value));
}

inline HostTensor<float> round_to_bf16(const HostTensor<float>& t) {
    HostTensor<float> rounded = t;
    for (int64_t i = 0; i < rounded.numel(); ++i) rounded[i] = round_to_bf16(rounded[i]);
    return rounded;
}

// A bf16 device copy of t, whose values must already be bf16 (round_to_bf16), so the copy is exact.
inline DeviceBuffer to_device_bf16(const HostTensor<float>& t) {
    std::vector<std::uint16_t> bits(static_cast<std::size_t>(t.numel()));
    for (int64_t i = 0; i < t.numel(); ++i) bits[static_cast<std::size_t>(i)] = io::float_to_bf16_bits(t[i]);
    return upload(bits);
}

// A device buffer of `count` bf16 with every byte 0xff (a NaN), so an element a kernel forgot to write
// cannot pass a comparison.
inline DeviceBuffer poisoned_bf16(int64_t count) {
    DeviceBuffer buffer(static_cast<std::size_t>(count) * sizeof(std::uint16_t));
    fill_bytes(buffer.data(), 0xff, buffer.bytes());
    return buffer;
}

// The first shape.numel() bf16 of a device buffer, widened to floats (exact).
inline HostTensor<float> to_host_bf16(const void* device, const Shape& shape) {
    const std::vector<std::uint16_t> bits =
        download(static_cast<const std::uint16_t*>(device), static_cast<std::size_t>(shape.numel()));
    std::vector<float> values(bits.size());
    for (std::size_t i = 0; i < bits.size(); ++i) values[i] = io::bf16_bits_to_float(bits[i]);
    return HostTensor<float>(shape, std::move(values));
}

inline gpu::bf16* bf16_data(const DeviceBuffer& buffer) {
    return buffer.data_as<gpu::bf16>();
}

// to_device_bf16 starting `offset` bf16 into a buffer whose other elements are poisoned (poisoned_at): offset
// 1 (2 bytes) misaligns every vector path; offset 4 (8 bytes) is 8- but not 16-byte aligned.
inline OffsetBuffer<gpu::bf16> to_device_bf16_at(const HostTensor<float>& t, int64_t offset) {
    OffsetBuffer<gpu::bf16> b = poisoned_at<gpu::bf16>(t.numel(), offset);
    std::vector<std::uint16_t> bits(static_cast<std::size_t>(t.numel()));
    for (int64_t i = 0; i < t.numel(); ++i) bits[static_cast<std::size_t>(i)] = io::float_to_bf16_bits(t[i]);
    copy_to_device(b.data(), bits.data(), bits.size() * sizeof(std::uint16_t));
    return b;
}

// The elements where two tensors of bf16 values (floats, as to_host_bf16 and round_to_bf16 give them) differ
// bit for bit (so -0 differs from +0), NaN matching NaN whatever its payload: CUDA's rounding makes the
// canonical NaN, the reference's keeps the payload.
inline int64_t bf16_mismatches(const HostTensor<float>& actual, const HostTensor<float>& expected) {
    if (actual.shape() != expected.shape()) return actual.numel() + expected.numel() + 1;
    int64_t mismatches = 0;
    for (int64_t i = 0; i < actual.numel(); ++i) {
        if (std::isnan(actual[i]) && std::isnan(expected[i])) continue;
        if (std::memcmp(&actual[i], &expected[i], sizeof(float)) != 0) ++mismatches;
    }
    return mismatches;
}

}  // namespace cudacnn::test
