// NHWC (channels_last) test data: the references compute in NCHW; these permute a (N, C, H, W) host tensor to
// and from the NHWC memory order (the shape stays (N, C, H, W), as in PyTorch and cudacnn::MemoryFormat).
#pragma once

#include "cudacnn/host_tensor.hpp"
#include "cudacnn/memory_format.hpp"

namespace cudacnn::test {

// The values of an NCHW tensor laid out as NHWC (same shape).
inline HostTensor<float> to_nhwc(const HostTensor<float>& nchw) {
    const Shape& s = nchw.shape();
    HostTensor<float> nhwc(s);
    for (int64_t n = 0; n < s[0]; ++n)
        for (int64_t c = 0; c < s[1]; ++c)
            for (int64_t h = 0; h < s[2]; ++h)
                for (int64_t w = 0; w < s[3]; ++w)
                    nhwc[element_offset(MemoryFormat::nhwc, n, c, h, w, s[1], s[2], s[3])] =
                        nchw[element_offset(MemoryFormat::nchw, n, c, h, w, s[1], s[2], s[3])];
    return nhwc;
}

// The inverse of to_nhwc.
inline HostTensor<float> from_nhwc(const HostTensor<float>& nhwc) {
    const Shape& s = nhwc.shape();
    HostTensor<float> nchw(s);
    for (int64_t n = 0; n < s[0]; ++n)
        for (int64_t c = 0; c < s[1]; ++c)
            for (int64_t h = 0; h < s[2]; ++h)
                for (int64_t w = 0; w < s[3]; ++w)
                    nchw[element_offset(MemoryFormat::nchw, n, c, h, w, s[1], s[2], s[3])] =
                        nhwc[element_offset(MemoryFormat::nhwc, n, c, h, w, s[1], s[2], s[3])];
    return nchw;
}

}  // namespace cudacnn::test
