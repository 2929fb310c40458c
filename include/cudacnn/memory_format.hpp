// How a 4-d activation (N, C, H, W) lies in memory: NCHW (PyTorch's default, contiguous_format) or NHWC
// (channels_last: the C values of one pixel adjacent), which cuDNN's tensor-core kernels prefer
// (docs/bf16-nhwc-plan.md, slice 3). Shapes are always written (N, C, H, W), whatever the memory format:
// as in PyTorch, the format says where element (n, c, h, w) is, not what the shape is.
#pragma once

#include <cstdint>
#include <string>

#include "cudacnn/error.hpp"

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

}  // namespace cudacnn
