// conv2d as im2col + SGEMM: the column kernels (im2col, col2im gather), the dy permute, the bias broadcast
// and the launchers that chain them with cuda/gemm.hpp chunk by chunk.
#include "cuda/conv2d_im2col.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <initializer_list>
#include <string>

#include "cuda/bias_grad.hpp"
#include "cuda/conv2d_common.cuh"
#include "cuda/elementwise.cuh"
#include "cuda/gemm_backend.hpp"
#include "cuda/launch.cuh"
#include "cudacnn/error.hpp"

namespace cudacnn::gpu {

using cpu::Conv2dGeometry;
using cpu::Conv2dPaddingMode;

namespace kernels {

// The geometry as 32-bit integers (a chunk's indices fit: conv2d_im2col_unsupported), for cheap index math.
struct Im2colShape {
    int channels, in_h, in_w, out_h, out_w, kernel_h, kernel_w;
    int stride_h, stride_w, dilation_h, dilation_w, pad_top, pad_bottom, pad_left, pad_right;
    Conv2dPaddingMode mode;
};

// The output position whose tap `tap` reads padded position `padded`, or -1 when none does (the stride
// skips it or it lies past the output).
__device__ inline int output_position(int padded, int tap, int pad_before, int dilation, int stride,
                                      int out_size) {
    const int scaled = padded + pad_before - tap * dilation;
    if (scaled < 0 || scaled % stride != 0) return -1;
    const int o = scaled / stride;
    return o < out_size ? o : -1;
}

// x (images, C, H, W) → col (C·KH·KW, images, OH·OW). One thread per (image, channel, output position) in
// a grid-stride loop, looping over the KH·KW taps: consecutive threads write consecutive output positions of
// a column row (coalesced) and read neighbouring input elements (cached across the taps).
__global__ void im2col_kernel(const float* x, float* col, Im2colShape s, int images) {
    const int plane = s.out_h * s.out_w;
    const int total = images * s.channels * plane;
    const size_t tap_stride = static_cast<size_t>(images) * plane;
    for (int t = blockIdx.x * blockDim.x + threadIdx.x; t < total; t += gridDim.x * blockDim.x) {
        const int p = t % plane, image_channel = t / plane;
        const int c = image_channel % s.channels, n = image_channel / s.channels;
        const int oh = p / s.out_w, ow = p % s.out_w;
        const float* x_plane = x + static_cast<size_t>(image_channel) * s.in_h * s.in_w;
        float* out = col + (static_cast<size_t>(c) * s.kernel_h * s.kernel_w * images + n) * plane + p;
        for (int i = 0; i < s.kernel_h; ++i) {
            const int ih = source_index(oh * s.stride_h - s.pad_top + i * s.dilation_h, s.in_h, s.mode);
            for (int j = 0; j < s.kernel_w; ++j, out += tap_stride) {
                const int iw = source_index(ow * s.stride_w - s.pad_left + j * s.dilation_w, s.in_w, s.mode);
                *out = (ih >= 0 && iw >= 0) ? x_plane[ih * s.in_w + iw] : 0.0f;
            }
        }
    }
}

// col (C·KH·KW, images, OH·OW) → dx (images, C, H, W), overwritten. A gather, one thread per input element:
// it sums, in a fixed order, every column entry whose padded position maps to it (directly or through the
// reflect / replicate / circular copies), so the result is deterministic without atomics. Consecutive threads
// write consecutive dx elements and, for stride 1, read neighbouring column entries.
__global__ void col2im_kernel(const float* col, float* dx, Im2colShape s, int images) {
    const int in_plane = s.in_h * s.in_w, out_plane = s.out_h * s.out_w;
    const int total = images * s.channels * in_plane;
    const size_t tap_stride = static_cast<size_t>(images) * out_plane;
    for (int t = blockIdx.x * blockDim.x + threadIdx.x; t < total; t += gridDim.x * blockDim.x) {
        const int w = t % s.in_w, h = (t / s.in_w) % s.in_h, image_channel = t / in_plane;
        const int c = image_channel % s.channels, n = image_channel / s.channels;
        const PaddedRanges rows = padded_positions(h, s.in_h, s.pad_top, s.pad_bottom, s.mode);
        const PaddedRanges cols = padded_positions(w, s.in_w, s.pad_left, s.pad_right, s.mode);
        const float* col_c =
            col + (static_cast<size_t>(c) * s.kernel_h * s.kernel_w * images + n) * out_plane;
        float sum = 0.0f;
        for (int i = 0; i < s.kernel_h; ++i) {
            for (int ri = 0; ri < PaddedRanges::kSlots; ++ri) {  // an empty slot has lo > hi
                for (int ph = rows.lo[ri]; ph <= rows.hi[ri]; ++ph) {
                    const int oh = output_position(ph, i, s.pad_top, s.dilation_h, s.stride_h, s.out_h);
                    if (oh < 0) continue;
                    for (int j = 0; j < s.kernel_w; ++j) {
                        const float* tap = col_c + (i * s.kernel_w + j) * tap_stride + oh * s.out_w;
                        for (int ci = 0; ci < PaddedRanges::kSlots; ++ci) {
                            for (int pw = cols.lo[ci]; pw <= cols.hi[ci]; ++pw) {
                                const int ow =
                                    output_position(pw, j, s.pad_left, s.dilation_w, s.stride_w, s.out_w);
                                if (ow >= 0) sum += tap[ow];
                            }
                        }
                    }
                }
            }
        }
        dx[t] = sum;
    }
}

// y (images, channels, plane) = bias[channel], the starting value the forward GEMM adds to (beta = 1).
__global__ void broadcast_bias_kernel(const float* bias, float* y, int channels, int plane, int total) {
    for (int t = blockIdx.x * blockDim.x + threadIdx.x; t < total; t += gridDim.x * blockDim.x) {
        y[t] = bias[(t / plane) % channels];
    }
}

// dy (images, channels, plane) → out (channels, images, plane), so that one channel's rows over a chunk of
// images form one matrix (channels, images·plane) for the backward-filter GEMM. Reads and writes coalesced
// along the plane.
__global__ void swap_images_channels_kernel(const float* dy, float* out, int images, int channels,
                                            int plane) {
    const int total = images * channels * plane;
    for (int t = blockIdx.x * blockDim.x + threadIdx.x; t < total; t += gridDim.x * blockDim.x) {
        const int p = t % plane, channel_image = t / plane;
        const int n = channel_image % images, c = channel_image / images;
        out[t] = dy[(static_cast<size_t>(n) * channels + c) * plane + p];
    }
}

// dw (count) = (accumulate ? dw : 0) + Σ_s partials[s·stride + ·], the slices in order: the split-k
// reduction of backward-filter, deterministic. Grid-stride, coalesced.
__global__ void sum_partials_kernel(const float* partials, int slices, int stride, float* dw, int count,
                                    bool accumulate) {
    for (int t = blockIdx.x * blockDim.x + threadIdx.x; t < count; t += gridDim.x * blockDim.x) {
        float sum = accumulate ? dw[t] : 0.0f;
        for (int s = 0; s < slices; ++s) sum += partials[static_cast<size_t>(s) * stride + t];
        dw[t] = sum;
    }
}

}  // namespace kernels

namespace {

constexpr int64_t kWorkspaceBudgetBytes = int64_t{64} << 20;  // the default workspace: 64 MiB
constexpr int64_t kMaxChunkElements = int64_t{1} << 30;       // 32-bit indices with room for the grid stride
constexpr int64_t kAlignFloats = 64;  // 256-byte alignment of each part of the workspace
// Backward-filter's split-k: its GEMMs have only (OC/G)·K outputs per group but k = chunk·OH·OW (up to
// millions), so with few output tiles the k range is cut into slices computed in parallel, enough for about
// kTargetBlocks blocks (two per H100 SM), at most kMaxSlices, each at least kMinSliceColumns long.
constexpr int64_t kTargetBlocks = 2 * 132;
constexpr int64_t kMaxSlices = 32;
constexpr int64_t kMinSliceColumns = 256;
constexpr int64_t kGemmTile = 64;  // the SGEMM's large block tile

int64_t round_up(int64_t v, int64_t m) {
    return (v + m - 1) / m * m;
}

int64_t column_rows(const Conv2dGeometry& g) {
    return g.in_channels * g.kernel_h * g.kernel_w;
}
int64_t out_plane(const Conv2dGeometry& g) {
    return g.out_h * g.out_w;
}

int64_t weight_elements(const Conv2dGeometry& g) {
    return g.out_channels * column_rows(g) / g.groups;
}

// The most slices backward-filter cuts a chunk's k range into (1: no split-k, no partial sums).
int64_t max_filter_slices(const Conv2dGeometry& g) {
    const int64_t tiles = (g.out_channels_per_group() + kGemmTile - 1) / kGemmTile *
                          ((column_rows(g) / g.groups + kGemmTile - 1) / kGemmTile) * g.groups;
    return std::clamp<int64_t>(kTargetBlocks / tiles, 1, kMaxSlices);
}

// The largest extent of one image that the kernels index with 32-bit integers (a chunk holds few enough
// images for the whole chunk to fit).
int64_t largest_per_image_elements(const Conv2dGeometry& g) {
    return std::max(
        {column_rows(g) * out_plane(g), g.in_channels * g.in_h * g.in_w, g.out_channels * out_plane(g)});
}

// Workspace layout, in floats: the columns of a chunk, the permuted dy of a chunk, backward-filter's partial
// sums (one dw per slice), each part 256-byte aligned.
struct WorkspaceLayout {
    int64_t dy_offset, partials_offset, floats;
};

WorkspaceLayout workspace_layout(const Conv2dGeometry& g, int64_t chunk) {
    WorkspaceLayout layout;
    layout.dy_offset = round_up(chunk * column_rows(g) * out_plane(g), kAlignFloats);
    layout.partials_offset = layout.dy_offset + round_up(chunk * g.out_channels * out_plane(g), kAlignFloats);
    const int64_t slices = max_filter_slices(g);
    layout.floats = layout.partials_offset + (slices > 1 ? slices * weight_elements(g) : 0);
    return layout;
}

int64_t workspace_bytes_for(const Conv2dGeometry& g, int64_t chunk) {
    return workspace_layout(g, chunk).floats * int64_t{sizeof(float)};
}

// The largest chunk a workspace of `bytes` holds: at most the batch, and small enough for 32-bit indices.
// 0 when not even one image fits.
int64_t chunk_for_workspace(const Conv2dGeometry& g, int64_t bytes) {
    const int64_t per_image = (column_rows(g) + g.out_channels) * out_plane(g) * int64_t{sizeof(float)};
    const int64_t fixed = workspace_bytes_for(g, 0);  // the partial sums
    const int64_t by_index =
        std::max<int64_t>(kMaxChunkElements / std::max<int64_t>(largest_per_image_elements(g), 1), 1);
    int64_t chunk =
        std::min({g.batch, by_index, std::max<int64_t>(bytes - fixed, 0) / std::max<int64_t>(per_image, 1)});
    while (chunk > 0 && workspace_bytes_for(g, chunk) > bytes) --chunk;  // the alignment padding
    return chunk;
}

// Kernels may assume the geometry is consistent and supported.
void check_geometry(const Conv2dGeometry& g, const char* op) {
    const std::string why = conv2d_im2col_unsupported(g);
    CUDACNN_CHECK(why.empty(), "{}: {}", op, why);
}

// The chunk size the given workspace allows; throws unless it holds at least one image.
int64_t checked_chunk(const Conv2dGeometry& g, const void* workspace, size_t workspace_bytes,
                      const char* op) {
    const int64_t chunk = chunk_for_workspace(g, static_cast<int64_t>(workspace_bytes));
    CUDACNN_CHECK(workspace != nullptr && chunk > 0,
                  "{}: workspace {} of {} bytes is smaller than the {} bytes one image needs "
                  "(conv2d_im2col_workspace_bytes gives {}) for geometry {}",
                  op, workspace, workspace_bytes, workspace_bytes_for(g, 1), conv2d_im2col_workspace_bytes(g),
                  describe_conv2d_geometry(g));
    return chunk;
}

void check_pointers(std::initializer_list<const void*> pointers, const char* names, const char* op) {
    for (const void* p : pointers) {
        CUDACNN_CHECK(p != nullptr, "{}: {} must be device pointers, not null", op, names);
    }
}

// What every launcher starts from: its arguments checked, the chunk its workspace allows and the sizes of
// the per-(image, group) products.
struct Plan {
    int64_t chunk_size;
    int64_t plane;         // OH·OW
    int64_t oc_per_group;  // OC/G
    int64_t k;             // C/G·KH·KW, the rows of one group's columns
    float* col;
};

Plan make_plan(const Conv2dGeometry& g, std::initializer_list<const void*> pointers, const char* names,
               void* workspace, size_t workspace_bytes, const char* op) {
    check_geometry(g, op);
    check_pointers(pointers, names, op);
    return {checked_chunk(g, workspace, workspace_bytes, op), out_plane(g), g.out_channels_per_group(),
            column_rows(g) / g.groups, static_cast<float*>(workspace)};
}

kernels::Im2colShape im2col_shape(const Conv2dGeometry& g) {
    auto i = [](int64_t v) { return static_cast<int>(v); };
    return {i(g.in_channels), i(g.in_h),     i(g.in_w),      i(g.out_h),      i(g.out_w),      i(g.kernel_h),
            i(g.kernel_w),    i(g.stride_h), i(g.stride_w),  i(g.dilation_h), i(g.dilation_w), i(g.pad_top),
            i(g.pad_bottom),  i(g.pad_left), i(g.pad_right), g.padding_mode};
}

// Images [first, first + count) of the batch.
struct Chunk {
    int64_t first, count;
};

template <class Body>
void for_each_chunk(const Conv2dGeometry& g, int64_t chunk, Body&& body) {
    for (int64_t first = 0; first < g.batch; first += chunk)
        body(Chunk{first, std::min(chunk, g.batch - first)});
}

void im2col(const Conv2dGeometry& g, const float* x, float* col, Chunk chunk, cudaStream_t stream) {
    const int64_t total = chunk.count * g.in_channels * out_plane(g);
    launch(kernels::im2col_kernel, elementwise_grid(total), dim3(kElementwiseBlock), 0, stream,
           x + chunk.first * g.in_channels * g.in_h * g.in_w, col, im2col_shape(g),
           static_cast<int>(chunk.count));
}

// Where matrix (item i, group g) of a GEMM operand starts: base + i·item_stride + g·group_stride. Items are
// the images of a chunk, or the k slices of backward-filter's split-k.
struct MatrixGrid {
    int64_t ld, item_stride, group_stride;
};

// The weight W (OC, C/G·KH·KW) as one (OC/G, K) matrix per group (the same for every image).
MatrixGrid weight_grid(const Plan& plan) {
    return {plan.k, 0, plan.oc_per_group * plan.k};
}

// A chunk's columns: col_{n,g} (K, OH·OW) inside col (C·KH·KW, chunk, OH·OW).
MatrixGrid column_grid(const Plan& plan, Chunk chunk) {
    const int64_t ld = chunk.count * plan.plane;
    return {ld, plan.plane, plan.k * ld};
}

// y or dy (N, OC, OH, OW) as one (OC/G, OH·OW) matrix per (image, group).
MatrixGrid output_grid(const Conv2dGeometry& g, const Plan& plan) {
    return {plan.plane, g.out_channels * plan.plane, plan.oc_per_group * plan.plane};
}

// One product per (item, group): strided-batched over the items with one call per group, or the other way
// round, whichever makes fewer calls.
void gemm_per_item_and_group(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, const float* a,
                             MatrixGrid ga, const float* b, MatrixGrid gb, float beta, float* c,
                             MatrixGrid gc, int64_t items, int64_t groups, cudaStream_t stream) {
    if (groups <= items) {
        for (int64_t grp = 0; grp < groups; ++grp) {
            gemm_strided_batched(trans_a, trans_b, m, n, k, 1.0f, a + grp * ga.group_stride, ga.ld,
                                  ga.item_stride, b + grp * gb.group_stride, gb.ld, gb.item_stride, beta,
                                  c + grp * gc.group_stride, gc.ld, gc.item_stride, items, stream);
        }
    } else {
        for (int64_t item = 0; item < items; ++item) {
            gemm_strided_batched(trans_a, trans_b, m, n, k, 1.0f, a + item * ga.item_stride, ga.ld,
                                  ga.group_stride, b + item * gb.item_stride, gb.ld, gb.group_stride, beta,
                                  c + item * gc.item_stride, gc.ld, gc.group_stride, groups, stream);
        }
    }
}

}  // namespace

std::string conv2d_im2col_unsupported(const Conv2dGeometry& g) {
    std::string problem = conv2d_geometry_problem(g);
    if (!problem.empty()) return problem;
    const int64_t largest =
        std::max(largest_per_image_elements(g), weight_elements(g) * max_filter_slices(g));
    if (largest >= kMaxChunkElements) {
        return fmt::format(
            "conv2d_im2col: geometry {} needs {} elements for one image (its column matrix, input or output) "
            "or for the split-k partial weight gradients; the kernels index with 32 bits and take fewer than "
            "{}",
            describe_conv2d_geometry(g), largest, kMaxChunkElements);
    }
    return {};
}

size_t conv2d_im2col_workspace_bytes(const Conv2dGeometry& g) {
    check_geometry(g, "conv2d_im2col_workspace_bytes");
    const int64_t chunk = std::max<int64_t>(chunk_for_workspace(g, kWorkspaceBudgetBytes), 1);
    return static_cast<size_t>(workspace_bytes_for(g, chunk));
}

void conv2d_im2col_forward(const Conv2dGeometry& g, const float* x, const float* w, const float* bias,
                           float* y, void* workspace, size_t workspace_bytes, cudaStream_t stream) {
    const Plan plan =
        make_plan(g, {x, w, y}, "x, w and y", workspace, workspace_bytes, "conv2d_im2col_forward");
    for_each_chunk(g, plan.chunk_size, [&](Chunk chunk) {
        float* y_chunk = y + chunk.first * g.out_channels * plan.plane;
        im2col(g, x, plan.col, chunk, stream);
        if (bias != nullptr) {
            const int64_t total = chunk.count * g.out_channels * plan.plane;
            launch(kernels::broadcast_bias_kernel, elementwise_grid(total), dim3(kElementwiseBlock), 0,
                   stream, bias, y_chunk, static_cast<int>(g.out_channels), static_cast<int>(plan.plane),
                   static_cast<int>(total));
        }
        // y_{n,g} (OC/G, P) (+)= W_g (OC/G, K) · col_{n,g} (K, P).
        gemm_per_item_and_group(false, false, plan.oc_per_group, plan.plane, plan.k, w, weight_grid(plan),
                                plan.col, column_grid(plan, chunk), bias != nullptr ? 1.0f : 0.0f, y_chunk,
                                output_grid(g, plan), chunk.count, g.groups, stream);
    });
}

void conv2d_im2col_backward_data(const Conv2dGeometry& g, const float* dy, const float* w, float* dx,
                                 void* workspace, size_t workspace_bytes, cudaStream_t stream) {
    const Plan plan =
        make_plan(g, {dy, w, dx}, "dy, w and dx", workspace, workspace_bytes, "conv2d_im2col_backward_data");
    for_each_chunk(g, plan.chunk_size, [&](Chunk chunk) {
        // col_{n,g} (K, P) = W_gᵀ (K, OC/G) · dy_{n,g} (OC/G, P).
        gemm_per_item_and_group(true, false, plan.k, plan.plane, plan.oc_per_group, w, weight_grid(plan),
                                dy + chunk.first * g.out_channels * plan.plane, output_grid(g, plan), 0.0f,
                                plan.col, column_grid(plan, chunk), chunk.count, g.groups, stream);
        const int64_t total = chunk.count * g.in_channels * g.in_h * g.in_w;
        launch(kernels::col2im_kernel, elementwise_grid(total), dim3(kElementwiseBlock), 0, stream, plan.col,
               dx + chunk.first * g.in_channels * g.in_h * g.in_w, im2col_shape(g),
               static_cast<int>(chunk.count));
    });
}

void conv2d_im2col_backward_filter(const Conv2dGeometry& g, const float* x, const float* dy, float* dw,
                                   float* dbias, void* workspace, size_t workspace_bytes,
                                   cudaStream_t stream) {
    const Plan plan = make_plan(g, {x, dy, dw}, "x, dy and dw", workspace, workspace_bytes,
                                "conv2d_im2col_backward_filter");
    const int64_t m = plan.oc_per_group, n = plan.k, weights = weight_elements(g);
    const WorkspaceLayout layout = workspace_layout(g, plan.chunk_size);
    float* dy_by_channel = plan.col + layout.dy_offset;
    float* partials = plan.col + layout.partials_offset;
    for_each_chunk(g, plan.chunk_size, [&](Chunk chunk) {
        im2col(g, x, plan.col, chunk, stream);
        const int64_t total = chunk.count * g.out_channels * plan.plane;
        launch(kernels::swap_images_channels_kernel, elementwise_grid(total), dim3(kElementwiseBlock), 0,
               stream, dy + chunk.first * g.out_channels * plan.plane, dy_by_channel,
               static_cast<int>(chunk.count), static_cast<int>(g.out_channels), static_cast<int>(plan.plane));
        // dW_g (OC/G, K) (+)= dy_g (OC/G, chunk·P) · col_gᵀ (chunk·P, K): the chunk's images in one product,
        // added to the earlier chunks' sum after the first.
        const int64_t wide = chunk.count * plan.plane;
        const bool accumulate = chunk.first > 0;
        const MatrixGrid a{wide, 0, m * wide}, b{wide, 0, n * wide};
        const int64_t slices = std::min(max_filter_slices(g), std::max<int64_t>(wide / kMinSliceColumns, 1));
        if (slices == 1) {
            gemm_per_item_and_group(false, true, m, n, wide, dy_by_channel, a, plan.col, b,
                                    accumulate ? 1.0f : 0.0f, dw, weight_grid(plan), 1, g.groups, stream);
            return;
        }
        // Split-k: slice s takes columns [s·slice, (s + 1)·slice) of both operands (16-byte aligned starts)
        // and writes partial dw number s; the last slice may be shorter. Then the partials are summed in
        // order.
        const int64_t slice = round_up((wide + slices - 1) / slices, 4);
        const int64_t full = wide / slice, rest = wide - full * slice;
        const MatrixGrid c{n, weights, m * n};
        gemm_per_item_and_group(false, true, m, n, slice, dy_by_channel, {wide, slice, a.group_stride},
                                plan.col, {wide, slice, b.group_stride}, 0.0f, partials, c, full, g.groups,
                                stream);
        if (rest > 0) {
            gemm_per_item_and_group(false, true, m, n, rest, dy_by_channel + full * slice, a,
                                    plan.col + full * slice, b, 0.0f, partials + full * weights, c, 1,
                                    g.groups, stream);
        }
        launch(kernels::sum_partials_kernel, elementwise_grid(weights), dim3(kElementwiseBlock), 0, stream,
               partials, static_cast<int>(full + (rest > 0 ? 1 : 0)), static_cast<int>(weights), dw,
               static_cast<int>(weights), accumulate);
    });
    if (dbias != nullptr) conv_bias_grad(dy, dbias, g.batch, g.out_channels, g.out_h, g.out_w, stream);
}

}  // namespace cudacnn::gpu
