// Helpers for GPU-vs-CPU parity tests (DESIGN.md, test tier 3): moving HostTensors to and from the device,
// NaN-poisoned outputs, bitwise comparison.
#pragma once

#include <cstdint>
#include <cstring>
#include <vector>

#include "cudacnn/device.hpp"
#include "cudacnn/host_tensor.hpp"
#include "support/random.hpp"  // random_tensor: parity inputs come from it

namespace cudacnn::test {

// A device copy of a host tensor.
template <class T>
DeviceBuffer to_device(const HostTensor<T>& t) {
    return upload(t.values());
}

// The first shape.numel() elements of a device buffer, as a host tensor.
template <class T>
HostTensor<T> to_host(const DeviceBuffer& buffer, const Shape& shape) {
    return HostTensor<T>(shape, download<T>(buffer.data_as<T>(), static_cast<std::size_t>(shape.numel())));
}

// A device buffer for `count` elements of T with every byte 0xff: NaN for floats, -1 for integers, so an
// output element the kernel forgot to write cannot pass a comparison.
template <class T>
DeviceBuffer poisoned(int64_t count) {
    DeviceBuffer buffer(static_cast<std::size_t>(count) * sizeof(T));
    fill_bytes(buffer.data(), 0xff, buffer.bytes());
    return buffer;
}

// A device copy that starts `offset` elements into its buffer, for kernels' unaligned paths (offset 1 float:
// not 16-byte aligned, so float4 code must cope); the elements before it are poisoned as by poisoned().
template <class T>
struct OffsetBuffer {
    DeviceBuffer buffer;
    int64_t offset = 0;
    T* data() const { return buffer.data_as<T>() + offset; }
};

template <class T>
OffsetBuffer<T> poisoned_at(int64_t count, int64_t offset) {
    return {poisoned<T>(count + offset), offset};
}

template <class T>
OffsetBuffer<T> to_device_at(const HostTensor<T>& t, int64_t offset) {
    OffsetBuffer<T> b = poisoned_at<T>(t.numel(), offset);
    copy_to_device(b.data(), t.data(), static_cast<std::size_t>(t.numel()) * sizeof(T));
    return b;
}

template <class T>
HostTensor<T> to_host(const OffsetBuffer<T>& b, const Shape& shape) {
    return HostTensor<T>(shape, download<T>(b.data(), static_cast<std::size_t>(shape.numel())));
}

// Bit-for-bit equality of two float tensors (NaNs with the same bits compare equal), for determinism tests.
inline bool bitwise_equal(const HostTensor<float>& a, const HostTensor<float>& b) {
    return a.shape() == b.shape() &&
           std::memcmp(a.data(), b.data(), static_cast<std::size_t>(a.numel()) * sizeof(float)) == 0;
}

}  // namespace cudacnn::test
