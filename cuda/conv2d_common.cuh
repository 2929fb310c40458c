// What the conv2d algorithms (direct, im2col, …) share: the geometry check on the host and, on the device,
// the reference's padded-index mapping and its inverse. Included by .cu files only.
#pragma once

#include <fmt/format.h>

#include <string>
#include <tuple>

#include "cuda/launch.cuh"
#include "cudacnn/error.hpp"
#include "cudacnn/ops/conv2d.hpp"

namespace cudacnn::gpu {

// The geometry in one line, for error messages.
inline std::string describe_conv2d_geometry(const cpu::Conv2dGeometry& g) {
    return fmt::format(
        "(N {}, C {}, H {}, W {}, OC {}, kernel {}×{}, groups {}, stride ({}, {}), dilation ({}, {}), "
        "padding "
        "(top {}, bottom {}, left {}, right {}) '{}', output {}×{})",
        g.batch, g.in_channels, g.in_h, g.in_w, g.out_channels, g.kernel_h, g.kernel_w, g.groups, g.stride_h,
        g.stride_w, g.dilation_h, g.dilation_w, g.pad_top, g.pad_bottom, g.pad_left, g.pad_right,
        cpu::conv2d_padding_mode_name(g.padding_mode), g.out_h, g.out_w);
}

// Empty when g is exactly what cpu::conv2d_geometry resolves for its own shapes and options (kernels assume
// it), else why not, in the reference's words. The options are rebuilt from g: equal pads on both sides of
// each axis as padding numbers, otherwise 'same' (the only uneven padding Conv2dOptions can express).
inline std::string conv2d_geometry_problem(const cpu::Conv2dGeometry& g) {
    if (g.groups <= 0) return fmt::format("conv2d: groups {} must be positive", g.groups);
    cpu::Conv2dOptions options;
    options.stride = cpu::Pair2d(g.stride_h, g.stride_w);
    options.dilation = cpu::Pair2d(g.dilation_h, g.dilation_w);
    options.groups = g.groups;
    options.padding_mode = g.padding_mode;
    const bool even = g.pad_top == g.pad_bottom && g.pad_left == g.pad_right;
    options.padding = even ? cpu::Conv2dPadding(g.pad_top, g.pad_left) : cpu::Conv2dPadding::same();
    cpu::Conv2dGeometry resolved;
    try {
        resolved = cpu::conv2d_geometry(
            Shape{g.batch, g.in_channels, g.in_h, g.in_w},
            Shape{g.out_channels, g.in_channels / g.groups, g.kernel_h, g.kernel_w}, options);
    } catch (const Error& e) {
        const std::string message = e.what();  // "file:line: conv2d: …": keep what follows the location
        const size_t at = message.find(": ");
        return at == std::string::npos ? message : message.substr(at + 2);
    }
    auto fields = [](const cpu::Conv2dGeometry& x) {
        return std::make_tuple(x.batch, x.in_channels, x.in_h, x.in_w, x.out_channels, x.kernel_h, x.kernel_w,
                               x.groups, x.stride_h, x.stride_w, x.dilation_h, x.dilation_w, x.pad_top,
                               x.pad_bottom, x.pad_left, x.pad_right, x.padding_mode, x.out_h, x.out_w);
    };
    if (fields(resolved) == fields(g)) return {};
    return fmt::format(
        "conv2d: geometry {} is not what cpu::conv2d_geometry resolves for its shapes and options, {}; make "
        "it "
        "with cpu::conv2d_geometry",
        describe_conv2d_geometry(g), describe_conv2d_geometry(resolved));
}

// Checks that a caller passed the `needed` bytes of workspace; sizer() says how to get them (e.g.
// "conv2d_implicit_workspace_bytes(g) bytes (8192)"), called only for a message since the check runs at every
// launch. A null workspace gets its own message: "0x0 of 0 bytes is smaller than the N bytes" would point at
// the size, not at the missing buffer.
template <class Sizer>
void check_conv2d_workspace(const char* op, const cpu::Conv2dGeometry& g, const void* workspace, size_t bytes,
                            int64_t needed, Sizer&& sizer) {
    if (needed == 0) return;
    CUDACNN_CHECK(workspace != nullptr,
                  "{}: the workspace is null, but this call needs {} bytes of it for geometry {}; pass a device "
                  "buffer of {}",
                  op, needed, describe_conv2d_geometry(g), sizer());
    CUDACNN_CHECK(static_cast<int64_t>(bytes) >= needed,
                  "{}: workspace {} of {} bytes is smaller than the {} bytes this call needs for geometry {}; "
                  "allocate {}",
                  op, workspace, bytes, needed, describe_conv2d_geometry(g), sizer());
}

namespace kernels {

// The input index that padded position i (i < 0 and i ≥ size lie in the padding) reads, or -1 for a zero:
// the reference's source_index (src/cpu/conv2d.cpp). The geometry guarantees at most one wrap for positions
// inside the padded input.
__device__ inline int source_index(int i, int size, cpu::Conv2dPaddingMode mode) {
    if (i >= 0 && i < size) return i;
    switch (mode) {
        case cpu::Conv2dPaddingMode::reflect:
            return i < 0 ? -i : 2 * (size - 1) - i;
        case cpu::Conv2dPaddingMode::replicate:
            return i < 0 ? 0 : size - 1;
        case cpu::Conv2dPaddingMode::circular:
            return i < 0 ? i + size : i - size;
        default:
            return -1;
    }
}

// The padded positions along one axis whose source_index is `i`, as three inclusive ranges in fixed slots:
// [0] i itself, [1] its copies in the padding before the input, [2] those after it (single positions for
// reflect and circular, whole runs at replicate's edges). An empty slot has lo > hi. The inverse of
// source_index, for backward-data; fixed slots keep the ranges in registers.
struct PaddedRanges {
    static constexpr int kSlots = 3;
    int lo[kSlots], hi[kSlots];
};

__device__ inline PaddedRanges padded_positions(int i, int size, int pad_before, int pad_after,
                                                cpu::Conv2dPaddingMode mode) {
    PaddedRanges r{{i, 0, 0}, {i, -1, -1}};
    const int last = size - 1 + pad_after;  // the last padded position
    switch (mode) {
        case cpu::Conv2dPaddingMode::reflect:
            if (i >= 1 && i <= pad_before) r.lo[1] = r.hi[1] = -i;
            if (i <= size - 2 && 2 * (size - 1) - i <= last) r.lo[2] = r.hi[2] = 2 * (size - 1) - i;
            break;
        case cpu::Conv2dPaddingMode::replicate:
            if (i == 0 && pad_before > 0) r.lo[1] = -pad_before, r.hi[1] = -1;
            if (i == size - 1 && pad_after > 0) r.lo[2] = size, r.hi[2] = last;
            break;
        case cpu::Conv2dPaddingMode::circular:
            if (i - size >= -pad_before) r.lo[1] = r.hi[1] = i - size;
            if (i + size <= last) r.lo[2] = r.hi[2] = i + size;
            break;
        default:
            break;
    }
    return r;
}

}  // namespace kernels
}  // namespace cudacnn::gpu
