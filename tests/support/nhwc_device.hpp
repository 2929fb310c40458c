// The NHWC parity tests' shared device plumbing: float and bf16 activations behind one interface, and the
// NCHW → NHWC permutation of integer tensors (saved indices, taps, masks) that test::to_nhwc does for floats.
#pragma once

#include <cstdint>
#include <vector>

#include "cudacnn/host_tensor.hpp"
#include "cudacnn/memory_format.hpp"
#include "support/bf16.hpp"
#include "support/nhwc.hpp"
#include "support/parity.hpp"

namespace cudacnn::test {

// T's device copy, NaN-poisoned output and download, values widened to float. bf16 inputs must hold bf16
// values already (round_to_bf16), so that the copy is exact.
template <class T>
struct DeviceOf;

template <>
struct DeviceOf<float> {
    static DeviceBuffer upload(const HostTensor<float>& t) { return to_device(t); }
    static DeviceBuffer poison(int64_t count) { return poisoned<float>(count); }
    static HostTensor<float> download(const DeviceBuffer& b, const Shape& s) { return to_host<float>(b, s); }
    static float* data(const DeviceBuffer& b) { return b.data_as<float>(); }
    static HostTensor<float> values(const HostTensor<float>& t) { return t; }
};

template <>
struct DeviceOf<gpu::bf16> {
    static DeviceBuffer upload(const HostTensor<float>& t) { return to_device_bf16(t); }
    static DeviceBuffer poison(int64_t count) { return poisoned_bf16(count); }
    static HostTensor<float> download(const DeviceBuffer& b, const Shape& s) {
        return to_host_bf16(b.data(), s);
    }
    static gpu::bf16* data(const DeviceBuffer& b) { return bf16_data(b); }
    static HostTensor<float> values(const HostTensor<float>& t) { return round_to_bf16(t); }
};

// t laid out in `format` (t itself for NCHW).
inline HostTensor<float> in_format(const HostTensor<float>& t, MemoryFormat format) {
    return format == MemoryFormat::nhwc ? to_nhwc(t) : t;
}

// The values of an NCHW-ordered (N, C, H, W) vector laid out as NHWC.
template <class V>
std::vector<V> to_nhwc_values(const std::vector<V>& nchw, const Shape& s) {
    std::vector<V> nhwc(nchw.size());
    for (int64_t n = 0; n < s[0]; ++n)
        for (int64_t c = 0; c < s[1]; ++c)
            for (int64_t h = 0; h < s[2]; ++h)
                for (int64_t w = 0; w < s[3]; ++w)
                    nhwc[static_cast<std::size_t>(
                        element_offset(MemoryFormat::nhwc, n, c, h, w, s[1], s[2], s[3]))] =
                        nchw[static_cast<std::size_t>(
                            element_offset(MemoryFormat::nchw, n, c, h, w, s[1], s[2], s[3]))];
    return nhwc;
}

}  // namespace cudacnn::test
