// How a 4-d activation (N, C, H, W) lies in memory: NCHW (PyTorch's default, contiguous_format) or NHWC
// (channels_last: the C values of one pixel adjacent), which cuDNN's tensor-core kernels prefer
// (docs/bf16-nhwc-plan.md, slice 3). Shapes are always written (N, C, H, W), whatever the memory format:
// as in PyTorch, the format says where element (n, c, h, w) is, not what the shape is.
#pragma once

#include <cstdint>
#include <string>

#include "cudacnn/error.hpp"
#include "cudacnn/host_tensor.hpp"

namespace cudacnn {

enum class MemoryFormat { nchw, nhwc };

// "nchw" or "nhwc".
inline const char* memory_format_name(MemoryFormat format) {
    return format == MemoryFormat::nhwc ? "nhwc" : "nchw";
}

// The format `name` ("nchw" or "nhwc", as --memory-format takes it); Error naming the value otherwise.
inline MemoryFormat parse_memory_format(const std::string& name) {
    if (name == "nchw") return MemoryFormat::nchw;
    if (name == "nhwc") return MemoryFormat::nhwc;
    CUDACNN_FAIL("--memory-format {}: not one of nchw, nhwc (nhwc: channels_last)", name);
}

// The offset of element (n, c, h, w) of a (N, C, H, W) tensor in `format`.
inline int64_t element_offset(MemoryFormat format, int64_t n, int64_t c, int64_t h, int64_t w,
                              int64_t channels, int64_t height, int64_t width) {
    return format == MemoryFormat::nhwc ? ((n * height + h) * width + w) * channels + c
                                        : ((n * channels + c) * height + h) * width + w;
}

// A 4-d (N, C, H, W) host tensor's values moved from memory format `from` to `to` (the shape stays): what
// PyTorch's tensor.contiguous(memory_format=...) does to the storage. The executor reads NHWC activations
// back through it; tests lay out their data with it.
template <class T>
HostTensor<T> convert_memory_format(const HostTensor<T>& x, MemoryFormat from, MemoryFormat to) {
    const Shape& s = x.shape();
    CUDACNN_CHECK(s.rank() == 4, "convert_memory_format: the shape {} is not (N, C, H, W)", s);
    if (from == to) return x;
    HostTensor<T> y(s);
    for (int64_t n = 0; n < s[0]; ++n)
        for (int64_t c = 0; c < s[1]; ++c)
            for (int64_t h = 0; h < s[2]; ++h)
                for (int64_t w = 0; w < s[3]; ++w)
                    y[element_offset(to, n, c, h, w, s[1], s[2], s[3])] =
                        x[element_offset(from, n, c, h, w, s[1], s[2], s[3])];
    return y;
}

}  // namespace cudacnn
