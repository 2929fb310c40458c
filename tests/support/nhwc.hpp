// NHWC (channels_last) test data: the references compute in NCHW; these permute a (N, C, H, W) host tensor to
// and from the NHWC memory order (the shape stays (N, C, H, W), as in PyTorch and cudacnn::MemoryFormat).
#pragma once

#include "cudacnn/host_tensor.hpp"
#include "cudacnn/memory_format.hpp"

namespace cudacnn::test {

// The values of an NCHW tensor laid out as NHWC (same shape).
inline HostTensor<float> to_nhwc(const HostTensor<float>& nchw) {
    return convert_memory_format(nchw, MemoryFormat::nchw, MemoryFormat::nhwc);
}

// The inverse of to_nhwc.
inline HostTensor<float> from_nhwc(const HostTensor<float>& nhwc) {
    return convert_memory_format(nhwc, MemoryFormat::nhwc, MemoryFormat::nchw);
}

}  // namespace cudacnn::test
