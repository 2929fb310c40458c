// Direct conv2d: shared-memory tiled forward, backward-data (gather) and backward-filter (per-tap block
// reduction) kernels and their launchers. The tilings are described in cuda/conv2d_direct.hpp.
#include "cuda/conv2d_direct.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <climits>
#include <cstdint>
#include <initializer_list>
#include <type_traits>
#include <utility>

#include "cuda/bias_grad.hpp"
#include "cuda/conv2d_common.cuh"
#include "cuda/launch.cuh"
#include "cuda/reduce.cuh"
#include "cudacnn/error.hpp"

namespace cudacnn::gpu {

using cpu::Conv2dGeometry;
using cpu::Conv2dPaddingMode;

namespace kernels {

constexpr int kFilterThreads = 256;  // backward-filter block: 8 warps
constexpr int kFilterWarps = kFilterThreads / 32;
constexpr int kWindowTaps = 16;  // filter taps one backward-filter block reduces (register accumulators)

// The geometry as 32-bit integers (conv2d_direct_unsupported checks that every index fits).
struct DirectShape {
    int batch, in_channels, in_h, in_w, out_channels, out_h, out_w, kernel_h, kernel_w, groups;
    int channels_per_group, out_channels_per_group;
    int stride_h, stride_w, dilation_h, dilation_w, pad_top, pad_bottom, pad_left, pad_right;
    Conv2dPaddingMode mode;
};

// How a kernel is tiled (chosen on the host: forward_tiling, backward_data_tiling, backward_filter_tiling).
struct DirectTiling {
    int per_thread = 1;  // forward: output channels per thread; backward-data: input channels per thread
    int rows = 1;        // forward, backward-data: thread rows (blockDim.y); backward-filter: output channels
    int channel_tiles = 1;             // blocks per group along the channels that one block covers
    int tile_h = 1, tile_w = 1;        // spatial tile: output (forward, filter) or dx (data) positions
    int tiles_h = 1, tiles_w = 1;      // tiles per plane
    int taps_h = 1, taps_w = 1;        // the window of kernel taps staged at once
    int windows_h = 1, windows_w = 1;  // windows per kernel
    int stage_channels = 1;        // forward: input channels, backward-data: output channels staged at once
    int tile_images = 1;           // backward-filter: images per staged tile (many when the plane is small)
    int patch_h = 1, patch_w = 1;  // the staged (padded input or dy) patch of one channel
};

// Which channels and taps of w a stage copies to shared memory (see stage_weights).
struct WeightSlice {
    // Output channels (absolute) and input channels (within the group): the slice holds `span` channels,
    // zeros past `count`.
    int oc_first, oc_count, oc_span;
    int c_first, c_count, c_span;
    int i0, j0, kr, kc;  // the tap window
    // The channels a thread computes come last, so that its kPerThread weights of a tap are contiguous
    // (float4 loads): forward (c_span, kr·kc, oc_span), else backward-data (oc_span, kr·kc, c_span).
    bool oc_last;
};

// The image, group, channel tile and spatial tile origin of a forward or backward-data block, and the
// thread's place in it: tile position (ty, tx), flat index tid of nthreads.
struct BlockTile {
    int n, group, channel_tile, row0, col0;
    int ty, tx, tid, nthreads;
};

// Where the weights of a forward / backward-data stage start in shared memory: after the staged patches,
// rounded up to 16 bytes for float4 loads.
__device__ inline int weight_offset(const DirectTiling& t) {
    return (t.stage_channels * t.patch_h * t.patch_w + 3) / 4 * 4;
}

// Floor and ceiling of a / b for b > 0 and a of either sign.
__device__ inline int floor_div_signed(int a, int b) {
    return a >= 0 ? a / b : -((-a + b - 1) / b);
}
__device__ inline int ceil_div_signed(int a, int b) {
    return -floor_div_signed(-a, b);
}

__device__ inline BlockTile block_tile(const DirectTiling& t, int groups) {
    int b = blockIdx.x;
    const int spatial = b % (t.tiles_h * t.tiles_w);
    b /= t.tiles_h * t.tiles_w;
    BlockTile tile;
    tile.row0 = spatial / t.tiles_w * t.tile_h;
    tile.col0 = spatial % t.tiles_w * t.tile_w;
    tile.channel_tile = b % t.channel_tiles;
    b /= t.channel_tiles;
    tile.group = b % groups;
    tile.n = b / groups;
    tile.ty = threadIdx.x / t.tile_w;
    tile.tx = threadIdx.x % t.tile_w;
    tile.tid = threadIdx.y * blockDim.x + threadIdx.x;
    tile.nthreads = blockDim.x * blockDim.y;
    return tile;
}

// The input element at padded position (row, col) of an (H, W) plane: through the padding map, 0 in zero
// padding and beyond the padded input (where a tile overhangs the output).
__device__ inline float padded_value(const float* plane, int row, int col, const DirectShape& s) {
    if (row < -s.pad_top || row >= s.in_h + s.pad_bottom || col < -s.pad_left ||
        col >= s.in_w + s.pad_right) {
        return 0.0f;
    }
    const int r = source_index(row, s.in_h, s.mode), c = source_index(col, s.in_w, s.mode);
    return (r < 0 || c < 0) ? 0.0f : plane[r * s.in_w + c];
}

// dst (count, patch_h, patch_w) = the padded patches [row0, row0 + patch_h) × [col0, col0 + patch_w) of
// `count` input planes `plane_stride` apart (channels of an image, or images of a channel). Consecutive
// threads load consecutive columns (coalesced).
__device__ inline void stage_input_patches(float* dst, const float* planes, int count, int plane_stride,
                                           int row0, int col0, int patch_h, int patch_w, const DirectShape& s,
                                           int tid, int nthreads) {
    const int patch = patch_h * patch_w;
    for (int e = tid; e < count * patch; e += nthreads) {
        const int c = e / patch, r = e % patch / patch_w, q = e % patch_w;
        dst[e] = padded_value(planes + c * plane_stride, row0 + r, col0 + q, s);
    }
}

// dst (channels, patch_h, patch_w) = dy rows [oh0, oh0 + patch_h) × columns [ow0, ow0 + patch_w) of
// `channels` consecutive dy planes, 0 outside the output.
__device__ inline void stage_output_patches(float* dst, const float* planes, int channels, int oh0, int ow0,
                                            int patch_h, int patch_w, const DirectShape& s, int tid,
                                            int nthreads) {
    const int patch = patch_h * patch_w, plane = s.out_h * s.out_w;
    for (int e = tid; e < channels * patch; e += nthreads) {
        const int c = e / patch, oh = oh0 + e % patch / patch_w, ow = ow0 + e % patch_w;
        const bool inside = oh >= 0 && oh < s.out_h && ow >= 0 && ow < s.out_w;
        dst[e] = inside ? planes[c * plane + oh * s.out_w + ow] : 0.0f;
    }
}

// Reads w in its own order (consecutive threads: consecutive taps, then input channels) and writes the
// slice's layout.
__device__ inline void stage_weights(float* dst, const float* w, const DirectShape& s, const WeightSlice& sl,
                                     int tid, int nthreads) {
    const int taps = sl.kr * sl.kc, kernel_plane = s.kernel_h * s.kernel_w;
    for (int e = tid; e < sl.oc_span * sl.c_span * taps; e += nthreads) {
        const int tap = e % taps, c = e / taps % sl.c_span, o = e / taps / sl.c_span;
        const int i = tap / sl.kc, j = tap % sl.kc;
        const bool inside = o < sl.oc_count && c < sl.c_count;
        const float value =
            inside ? w[((sl.oc_first + o) * s.channels_per_group + sl.c_first + c) * kernel_plane +
                       (sl.i0 + i) * s.kernel_w + sl.j0 + j]
                   : 0.0f;
        dst[sl.oc_last ? (c * taps + tap) * sl.oc_span + o : (o * taps + tap) * sl.c_span + c] = value;
    }
}

// acc[k] += v · w[k] for the thread's kPerThread channels; w is 16-byte aligned when kPerThread is a multiple
// of 4 (the slice layouts and weight_offset keep it so), and then read as float4 broadcasts.
template <int kPerThread>
__device__ inline void multiply_add(float (&acc)[kPerThread], float v, const float* w) {
    if constexpr (kPerThread % 4 == 0) {
#pragma unroll
        for (int q = 0; q < kPerThread / 4; ++q) {
            const float4 w4 = reinterpret_cast<const float4*>(w)[q];
            acc[4 * q] += v * w4.x;
            acc[4 * q + 1] += v * w4.y;
            acc[4 * q + 2] += v * w4.z;
            acc[4 * q + 3] += v * w4.w;
        }
    } else {
#pragma unroll
        for (int k = 0; k < kPerThread; ++k) acc[k] += v * w[k];
    }
}

// acc[k] += Σ_{c, i, j} x_s[c][i·DH][j·DW] · w_s[c][i, j][k]: x_s starts at the thread's first padded input
// element, w_s at the thread's first output channel; every weight is a broadcast within a warp.
template <int kPerThread>
__device__ inline void accumulate_forward(float (&acc)[kPerThread], const float* x_s, const float* w_s,
                                          int channels, int patch_h, int patch_w, int oc_span, int kr, int kc,
                                          const DirectShape& s) {
    for (int c = 0; c < channels; ++c) {
        const float* xc = x_s + c * patch_h * patch_w;
        const float* wc = w_s + c * kr * kc * oc_span;
        for (int i = 0; i < kr; ++i) {
            for (int j = 0; j < kc; ++j) {
                multiply_add(acc, xc[i * s.dilation_h * patch_w + j * s.dilation_w],
                             wc + (i * kc + j) * oc_span);
            }
        }
    }
}

// One staged step of backward-data for dx element (ih, iw): the window's taps (i0 + i, j0 + j) that read it
// directly, i.e. whose output position oh·SH = ih + pad_top − (i0 + i)·DH (and likewise for columns) is
// whole.
struct DataStep {
    int ih, iw, i0, j0, kr, kc, oh_first, ow_first, channels, c_span, patch_h, patch_w;
};

template <int kPerThread>
__device__ inline void accumulate_data(float (&acc)[kPerThread], const float* dy_s, const float* w_s,
                                       const DataStep& st, const DirectShape& s) {
    const int taps = st.kr * st.kc;
    for (int i = 0; i < st.kr; ++i) {
        const int th = st.ih + s.pad_top - (st.i0 + i) * s.dilation_h;
        if (th % s.stride_h != 0) continue;  // a remainder of 0 means divisible for negative th too
        const int r = th / s.stride_h - st.oh_first;
        for (int j = 0; j < st.kc; ++j) {
            const int tw = st.iw + s.pad_left - (st.j0 + j) * s.dilation_w;
            if (tw % s.stride_w != 0) continue;
            const float* dy_at = dy_s + r * st.patch_w + tw / s.stride_w - st.ow_first;
            const float* w_at = w_s + (i * st.kc + j) * st.c_span;
            for (int o = 0; o < st.channels; ++o) {
                multiply_add(acc, dy_at[o * st.patch_h * st.patch_w], w_at + o * taps * st.c_span);
            }
        }
    }
}

__device__ inline bool has_copies(const PaddedRanges& r) {
    return r.lo[1] <= r.hi[1] || r.lo[2] <= r.hi[2];
}

// Adds the taps that read input element (ih, iw) through a padded copy of it (reflect / replicate /
// circular): every pair of padded positions mapping to it except (ih, iw) itself, whose taps the staged steps
// summed. Only elements within the padding's reach of the border have copies, so dy and w come from global
// memory. w_c points at w[group's first output channel, the thread's first input channel, 0, 0].
template <int kPerThread>
__device__ inline void add_padded_copies(float (&acc)[kPerThread], const float* dy_group, const float* w_c,
                                         int channels, int ih, int iw, const DirectShape& s) {
    const PaddedRanges rows = padded_positions(ih, s.in_h, s.pad_top, s.pad_bottom, s.mode);
    const PaddedRanges cols = padded_positions(iw, s.in_w, s.pad_left, s.pad_right, s.mode);
    if (!has_copies(rows) && !has_copies(cols)) return;  // not near the border
    const int taps = s.kernel_h * s.kernel_w, out_plane = s.out_h * s.out_w;
#pragma unroll
    for (int a = 0; a < PaddedRanges::kSlots; ++a) {
#pragma unroll
        for (int b = 0; b < PaddedRanges::kSlots; ++b) {
            if (a == 0 && b == 0) continue;  // empty ranges give empty output ranges below
            for (int i = 0; i < s.kernel_h; ++i) {
                const int shift_h = s.pad_top - i * s.dilation_h;
                const int oh_lo = max(0, ceil_div_signed(rows.lo[a] + shift_h, s.stride_h));
                const int oh_hi = min(s.out_h - 1, floor_div_signed(rows.hi[a] + shift_h, s.stride_h));
                if (oh_lo > oh_hi) continue;
                for (int j = 0; j < s.kernel_w; ++j) {
                    const int shift_w = s.pad_left - j * s.dilation_w;
                    const int ow_lo = max(0, ceil_div_signed(cols.lo[b] + shift_w, s.stride_w));
                    const int ow_hi = min(s.out_w - 1, floor_div_signed(cols.hi[b] + shift_w, s.stride_w));
                    if (ow_lo > ow_hi) continue;
                    for (int oc = 0; oc < s.out_channels_per_group; ++oc) {
                        const float* plane = dy_group + oc * out_plane;
                        float d = 0.0f;
                        for (int oh = oh_lo; oh <= oh_hi; ++oh) {
                            for (int ow = ow_lo; ow <= ow_hi; ++ow) d += plane[oh * s.out_w + ow];
                        }
                        const float* w_at = w_c + oc * s.channels_per_group * taps + i * s.kernel_w + j;
#pragma unroll
                        for (int k = 0; k < kPerThread; ++k) {
                            if (k < channels) acc[k] += d * w_at[k * taps];
                        }
                    }
                }
            }
        }
    }
}

// y (N, OC, OH, OW) = conv(x, w) + bias. Block: (tile_h·tile_w, rows) threads; thread (p, r) computes output
// channels r·kPerThread … + kPerThread − 1 of the block at tile position p.
template <int kPerThread>
__global__ void conv2d_direct_forward_kernel(DirectShape s, DirectTiling t, const float* x, const float* w,
                                             const float* bias, float* y) {
    const BlockTile bt = block_tile(t, s.groups);
    const int oc_span = kPerThread * blockDim.y;
    const int oc_begin = bt.channel_tile * oc_span;  // within the group
    const int oc_count = min(oc_span, s.out_channels_per_group - oc_begin);
    const int oc_first = bt.group * s.out_channels_per_group + oc_begin;
    float* x_s = dynamic_smem<float>();   // (stage_channels, patch_h, patch_w)
    float* w_s = x_s + weight_offset(t);  // (stage_channels, kr·kc, oc_span)
    const float* x_group = x + (bt.n * s.in_channels + bt.group * s.channels_per_group) * s.in_h * s.in_w;
    const int x_offset =
        bt.ty * s.stride_h * t.patch_w + bt.tx * s.stride_w;  // the thread's first patch element

    float acc[kPerThread] = {};
    for (int i0 = 0; i0 < s.kernel_h; i0 += t.taps_h) {
        for (int j0 = 0; j0 < s.kernel_w; j0 += t.taps_w) {
            const int kr = min(t.taps_h, s.kernel_h - i0), kc = min(t.taps_w, s.kernel_w - j0);
            const int row0 = bt.row0 * s.stride_h - s.pad_top + i0 * s.dilation_h;
            const int col0 = bt.col0 * s.stride_w - s.pad_left + j0 * s.dilation_w;
            for (int c0 = 0; c0 < s.channels_per_group; c0 += t.stage_channels) {
                const int cc = min(t.stage_channels, s.channels_per_group - c0);
                __syncthreads();  // everyone is done with the previous stage
                stage_input_patches(x_s, x_group + c0 * s.in_h * s.in_w, cc, s.in_h * s.in_w, row0, col0,
                                    t.patch_h, t.patch_w, s, bt.tid, bt.nthreads);
                stage_weights(w_s, w, s, {oc_first, oc_count, oc_span, c0, cc, cc, i0, j0, kr, kc, true},
                              bt.tid, bt.nthreads);
                __syncthreads();  // the stage is complete
                accumulate_forward(acc, x_s + x_offset, w_s + threadIdx.y * kPerThread, cc, t.patch_h,
                                   t.patch_w, oc_span, kr, kc, s);
            }
        }
    }

    const int oh = bt.row0 + bt.ty, ow = bt.col0 + bt.tx;
    if (oh >= s.out_h || ow >= s.out_w) return;
#pragma unroll
    for (int k = 0; k < kPerThread; ++k) {
        const int o = threadIdx.y * kPerThread + k;
        if (o >= oc_count) break;
        const int oc = oc_first + o;
        y[((bt.n * s.out_channels + oc) * s.out_h + oh) * s.out_w + ow] =
            acc[k] + (bias != nullptr ? bias[oc] : 0.0f);
    }
}

// dx (N, C, H, W) from dy and w, a gather. Block: (tile_h·tile_w, rows) threads; thread (p, r) computes input
// channels r·kPerThread … + kPerThread − 1 of the block at dx tile position p.
template <int kPerThread>
__global__ void conv2d_direct_backward_data_kernel(DirectShape s, DirectTiling t, const float* dy,
                                                   const float* w, float* dx) {
    const BlockTile bt = block_tile(t, s.groups);
    const int c_span = kPerThread * blockDim.y;
    const int c_begin = bt.channel_tile * c_span;  // within the group
    const int c_count = min(c_span, s.channels_per_group - c_begin);
    const int oc_group = bt.group * s.out_channels_per_group;
    const int ih = bt.row0 + bt.ty, iw = bt.col0 + bt.tx;
    float* dy_s = dynamic_smem<float>();   // (stage_channels, patch_h, patch_w)
    float* w_s = dy_s + weight_offset(t);  // (stage_channels, kr·kc, c_span)
    const float* dy_group = dy + (bt.n * s.out_channels + oc_group) * s.out_h * s.out_w;

    float acc[kPerThread] = {};
    for (int i0 = 0; i0 < s.kernel_h; i0 += t.taps_h) {
        for (int j0 = 0; j0 < s.kernel_w; j0 += t.taps_w) {
            const int kr = min(t.taps_h, s.kernel_h - i0), kc = min(t.taps_w, s.kernel_w - j0);
            // The first output row / column that the window's taps read from the tile: the patch spans
            // (tile_h − 1 + (kr − 1)·DH) / SH + 1 rows from there.
            const int oh_first =
                ceil_div_signed(bt.row0 + s.pad_top - (i0 + kr - 1) * s.dilation_h, s.stride_h);
            const int ow_first =
                ceil_div_signed(bt.col0 + s.pad_left - (j0 + kc - 1) * s.dilation_w, s.stride_w);
            for (int oc0 = 0; oc0 < s.out_channels_per_group; oc0 += t.stage_channels) {
                const int occ = min(t.stage_channels, s.out_channels_per_group - oc0);
                __syncthreads();  // everyone is done with the previous stage
                stage_output_patches(dy_s, dy_group + oc0 * s.out_h * s.out_w, occ, oh_first, ow_first,
                                     t.patch_h, t.patch_w, s, bt.tid, bt.nthreads);
                stage_weights(w_s, w, s,
                              {oc_group + oc0, occ, occ, c_begin, c_count, c_span, i0, j0, kr, kc, false},
                              bt.tid, bt.nthreads);
                __syncthreads();  // the stage is complete
                const DataStep step{ih,       iw,       i0,  j0,     kr,        kc,
                                    oh_first, ow_first, occ, c_span, t.patch_h, t.patch_w};
                accumulate_data(acc, dy_s, w_s + threadIdx.y * kPerThread, step, s);
            }
        }
    }

    if (ih >= s.in_h || iw >= s.in_w) return;
    const int c_thread = c_begin + threadIdx.y * kPerThread;  // the thread's first channel, within the group
    const int channels = min(kPerThread, s.channels_per_group - c_thread);
    if (s.mode != Conv2dPaddingMode::zeros && channels > 0) {
        const float* w_c = w + (oc_group * s.channels_per_group + c_thread) * s.kernel_h * s.kernel_w;
        add_padded_copies(acc, dy_group, w_c, channels, ih, iw, s);
    }
    float* dx_at =
        dx + ((bt.n * s.in_channels + bt.group * s.channels_per_group + c_thread) * s.in_h + ih) * s.in_w +
        iw;
#pragma unroll
    for (int k = 0; k < kPerThread; ++k) {
        if (k < channels) dx_at[k * s.in_h * s.in_w] = acc[k];
    }
}

// dw[oc, c, i0 + ·, j0 + ·] over the block's tap window (and dbias[oc]) for the block's t.rows output
// channels and one input channel. Warp row o (kFilterWarps / rows warps) serves output channel o; its threads
// split the positions of each staged spatial tile, then a shuffle tree and a fixed-order sum over the row's
// warps reduce each tap: the order depends only on the geometry, so results are bit-reproducible.
__global__ void __launch_bounds__(kFilterThreads)
    conv2d_direct_backward_filter_kernel(DirectShape s, DirectTiling t, const float* x, const float* dy,
                                         float* dw, float* dbias) {
    __shared__ int tap_offset_s[kWindowTaps];  // tap k of the window: its offset within the input patch
    __shared__ float partial_s[kFilterWarps][kWindowTaps + 1];
    int b = blockIdx.x;
    const int window = b % (t.windows_h * t.windows_w);
    b /= t.windows_h * t.windows_w;
    const int c = b % s.channels_per_group;
    b /= s.channels_per_group;
    const int oc_begin = b % t.channel_tiles * t.rows;  // within the group
    const int group = b / t.channel_tiles;
    const int oc_count = min(t.rows, s.out_channels_per_group - oc_begin);
    const int oc_first = group * s.out_channels_per_group + oc_begin;
    const int i0 = window / t.windows_w * t.taps_h, j0 = window % t.windows_w * t.taps_w;
    const int kr = min(t.taps_h, s.kernel_h - i0), kc = min(t.taps_w, s.kernel_w - j0), taps = kr * kc;
    const int warps_per_oc = kFilterWarps / t.rows;
    const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
    const int o = warp / warps_per_oc;  // the block's output channel this thread serves
    const int reducer = warp % warps_per_oc * 32 + lane, reducers = warps_per_oc * 32;
    const int plane_tile = t.tile_h * t.tile_w, positions = t.tile_images * plane_tile;
    const int patch = t.patch_h * t.patch_w;
    float* dy_s = dynamic_smem<float>();     // (rows, tile_images, tile_h, tile_w)
    float* x_s = dy_s + t.rows * positions;  // (tile_images, patch_h, patch_w)
    if (static_cast<int>(threadIdx.x) < taps) {
        const int k = threadIdx.x;
        tap_offset_s[k] = k / kc * s.dilation_h * t.patch_w + k % kc * s.dilation_w;
    }

    float acc[kWindowTaps + 1] = {};  // the window's taps, then Σ dy for dbias
    for (int n0 = 0; n0 < s.batch; n0 += t.tile_images) {
        const int images = min(t.tile_images, s.batch - n0);
        const int filled = images * plane_tile;  // the tile's positions that exist
        const float* x_planes = x + (n0 * s.in_channels + group * s.channels_per_group + c) * s.in_h * s.in_w;
        const float* dy_block = dy + (n0 * s.out_channels + oc_first) * s.out_h * s.out_w;
        for (int tile = 0; tile < t.tiles_h * t.tiles_w; ++tile) {
            const int oh0 = tile / t.tiles_w * t.tile_h, ow0 = tile % t.tiles_w * t.tile_w;
            __syncthreads();  // everyone is done with the previous tile
            for (int e = threadIdx.x; e < t.rows * filled; e += kFilterThreads) {
                const int oo = e / filled, p = e % filled, image = p / plane_tile;
                const int oh = oh0 + p % plane_tile / t.tile_w, ow = ow0 + p % t.tile_w;
                const bool inside = oo < oc_count && oh < s.out_h && ow < s.out_w;
                dy_s[oo * positions + p] =
                    inside ? dy_block[((image * s.out_channels + oo) * s.out_h + oh) * s.out_w + ow] : 0.0f;
            }
            stage_input_patches(x_s, x_planes, images, s.in_channels * s.in_h * s.in_w,
                                oh0 * s.stride_h - s.pad_top + i0 * s.dilation_h,
                                ow0 * s.stride_w - s.pad_left + j0 * s.dilation_w, t.patch_h, t.patch_w, s,
                                threadIdx.x, kFilterThreads);
            __syncthreads();  // the tile is complete
            for (int p = reducer; p < filled; p += reducers) {
                const float d = dy_s[o * positions + p];
                const int q = p % plane_tile;
                const float* x_at = x_s + p / plane_tile * patch + q / t.tile_w * s.stride_h * t.patch_w +
                                    q % t.tile_w * s.stride_w;
#pragma unroll
                for (int k = 0; k < kWindowTaps; ++k) {
                    if (k < taps) acc[k] += d * x_at[tap_offset_s[k]];
                }
                acc[kWindowTaps] += d;
            }
        }
    }

#pragma unroll
    for (int k = 0; k <= kWindowTaps; ++k) {
        if (k < taps || k == kWindowTaps) {  // uniform over the block, so every lane joins the shuffles
            const float v = reduce::warp_all_sum(acc[k]);
            if (lane == 0) partial_s[warp][k] = v;
        }
    }
    __syncthreads();  // every warp's partial sums are in
    const bool with_bias = dbias != nullptr && c == 0 && window == 0;
    for (int e = threadIdx.x; e < oc_count * (kWindowTaps + 1); e += kFilterThreads) {
        const int oo = e / (kWindowTaps + 1), k = e % (kWindowTaps + 1);
        if (k >= taps && !(k == kWindowTaps && with_bias)) continue;
        float sum = 0.0f;
        for (int q = 0; q < warps_per_oc; ++q) sum += partial_s[oo * warps_per_oc + q][k];
        const int oc = oc_first + oo;
        if (k < taps) {
            dw[((oc * s.channels_per_group + c) * s.kernel_h + i0 + k / kc) * s.kernel_w + j0 + k % kc] = sum;
        } else {
            dbias[oc] = sum;
        }
    }
}

// ---- Tiled backward-filter (stride 1, dilation 1, groups 1): a register-blocked split-k GEMM ----
// dW (OC × C·KH·KW) = dY (OC × positions) · im2col(x)ᵀ over the N·OH·OW positions. A block owns an output
// tile of oc_tile output channels × c_tile input channels × one window of taps and a slice of the positions;
// each thread accumulates kTiledOc output channels × one input channel × the window's kWin × kWin taps in
// registers, so every staged dy value feeds kWin² FMAs and every staged x value kTiledOc. The window is a
// compile-time square (taps past the kernel are summed and dropped), so tap addresses are immediates.
constexpr int kTiledThreads = 256;
constexpr int kTiledOc = 8;  // output channels per thread: two float4 of a staged dy row

struct TiledFilterPlan {
    int oc_groups, oc_tile, oc_tiles;  // kTiledOc-channel groups per block; output channels per block; blocks
    int c_tile, c_tiles;               // input channels per block; blocks along them
    int pairs, position_groups;  // (oc group, channel) pairs per block; threads per pair (split positions)
    int taps_h, taps_w, windows_h, windows_w;  // the window (kWin × kWin); windows per kernel
    // A staged tile: tile_images images × tile_h × tile_w output positions, every size a power of two so that
    // a position index decodes with shifts: p = (image · tile_h + r) · tile_w + q.
    int tile_h, tile_w, tile_images, log2_tile_w, log2_plane_tile, log2_positions;
    int tiles_h, tiles_w, image_tiles, units;  // tiles per plane; image groups; units = staged tiles in all
    int positions;  // tile_images · tile_h · tile_w, at least 8 (dy rows are staged 8 at once)
    int dy_stride;  // floats per staged dy row (one position): oc_tile + 4, see stage_tiled_dy
    int patch_h, patch_w, channel_stride;  // one image's input patch; floats between the staged channels
    int dy_floats;                         // the dy region (also the final sums' scratch)
    int slices;                            // position slices: partial dW copies summed by the second kernel
};

// Copies `count` elements to shared memory, thread t taking e = t, t + blockDim.x, …: in batches of
// kStageBatch whose global loads (value(e)) are all issued before the first store (store(e, v)), so that a
// thread waits for memory once per batch rather than once per element.
constexpr int kStageBatch = 8;

template <class Value, class Store>
__device__ inline void stage_batched(int count, Value value, Store store) {
    for (int e0 = threadIdx.x; e0 < count; e0 += kStageBatch * blockDim.x) {
        float v[kStageBatch];
#pragma unroll
        for (int u = 0; u < kStageBatch; ++u) {
            const int e = e0 + u * blockDim.x;
            v[u] = e < count ? value(e) : 0.0f;
        }
#pragma unroll
        for (int u = 0; u < kStageBatch; ++u) {
            const int e = e0 + u * blockDim.x;
            if (e < count) store(e, v[u]);
        }
    }
}

// dy_s[p][o] = dy[n0 + image, oc_begin + o, oh0 + r, ow0 + q] (0 outside dy). Element e = (o_hi, p_hi,
// o_lo 4, p_lo 8): a warp reads 8 consecutive positions of 4 channels (32-byte segments) and, since dy_stride
// ≡ 4 (mod 8) (12, 20, 28 or 4 mod 32: 8 positions' rows start in distinct 4-bank quads), writes 32 distinct
// banks.
__device__ inline void stage_tiled_dy(float* dy_s, const float* dy, const DirectShape& s,
                                      const TiledFilterPlan& t, int n0, int oc_begin, int oh0, int ow0) {
    const int plane = s.out_h * s.out_w;
    const int p_hi_bits = t.log2_positions - 3;
    const auto position = [&](int e) { return ((e >> 5) & ((1 << p_hi_bits) - 1)) << 3 | (e & 7); };
    const auto channel = [&](int e) { return (e >> (5 + p_hi_bits)) << 2 | ((e >> 3) & 3); };
    stage_batched(
        t.oc_tile * t.positions,
        [&](int e) {
            const int p = position(e), image = p >> t.log2_plane_tile;
            const int oh = oh0 + ((p >> t.log2_tile_w) & (t.tile_h - 1)), ow = ow0 + (p & (t.tile_w - 1));
            const int n = n0 + image, oc = oc_begin + channel(e);
            const bool inside =
                image < t.tile_images && n < s.batch && oc < s.out_channels && oh < s.out_h && ow < s.out_w;
            return inside ? dy[(n * s.out_channels + oc) * plane + oh * s.out_w + ow] : 0.0f;
        },
        [&](int e, float v) { dy_s[position(e) * t.dy_stride + channel(e)] = v; });
}

// x_s[c][image][row][col] = the padded input of the tile's images, channels c_begin …, window (i0, j0).
__device__ inline void stage_tiled_x(float* x_s, const float* x, const DirectShape& s,
                                     const TiledFilterPlan& t, int n0, int c_begin, int row0, int col0) {
    const int patch = t.patch_h * t.patch_w, per_channel = t.tile_images * patch;
    stage_batched(
        t.c_tile * per_channel,
        [&](int e) {
            const int c = e / per_channel, image = e % per_channel / patch, rc = e % patch;
            const int n = n0 + image, channel = c_begin + c;
            return n < s.batch && channel < s.in_channels
                       ? padded_value(x + (n * s.in_channels + channel) * s.in_h * s.in_w,
                                      row0 + rc / t.patch_w, col0 + rc % t.patch_w, s)
                       : 0.0f;
        },
        [&](int e, float v) { x_s[e / per_channel * t.channel_stride + e % per_channel] = v; });
}

// Block b = ((slice · oc_tiles + oc tile) · c_tiles + c tile) · windows + window; thread = group · pairs +
// pair, pair = channel · oc_groups + oc group. Writes the block's part of its slice's partial dW (laid out as
// dw) at partials + slice · dw size; every element of every slice has exactly one writer. Deterministic: a
// thread's positions and the sum over its pair's position groups come in a fixed order.
template <int kWin>
__global__ void __launch_bounds__(kTiledThreads)
    conv2d_direct_filter_tiled_kernel(DirectShape s, TiledFilterPlan t, const float* x, const float* dy,
                                      float* partials) {
    int b = blockIdx.x;
    const int window = b % (t.windows_h * t.windows_w);
    b /= t.windows_h * t.windows_w;
    const int c_begin = b % t.c_tiles * t.c_tile;
    b /= t.c_tiles;
    const int oc_begin = b % t.oc_tiles * t.oc_tile;
    const int slice = b / t.oc_tiles;
    const int i0 = window / t.windows_w * kWin, j0 = window % t.windows_w * kWin;
    const int pair = threadIdx.x % t.pairs, group = threadIdx.x / t.pairs;
    const int og = pair % t.oc_groups, cl = pair / t.oc_groups;

    float* dy_s = dynamic_smem<float>();                                          // (positions, dy_stride)
    float* x_s = dy_s + t.dy_floats;                                              // (c_tile, channel_stride)
    int* x_offset_s = reinterpret_cast<int*>(x_s + t.c_tile * t.channel_stride);  // (positions)
    const int patch = t.patch_h * t.patch_w;
    for (int p = threadIdx.x; p < t.positions; p += blockDim.x) {
        const int r = (p >> t.log2_tile_w) & (t.tile_h - 1), q = p & (t.tile_w - 1);
        x_offset_s[p] = (p >> t.log2_plane_tile) * patch + r * t.patch_w + q;
    }

    float acc[kWin][kWin][kTiledOc] = {};
    const int64_t unit_begin = int64_t{slice} * t.units / t.slices;
    const int64_t unit_end = int64_t{slice + 1} * t.units / t.slices;
    const float* x_thread = x_s + cl * t.channel_stride;
    const int dy_step = t.position_groups * t.dy_stride;
    for (int unit = static_cast<int>(unit_begin); unit < unit_end; ++unit) {
        const int spatial = unit % (t.tiles_h * t.tiles_w);
        const int n0 = unit / (t.tiles_h * t.tiles_w) * t.tile_images;
        const int oh0 = spatial / t.tiles_w * t.tile_h, ow0 = spatial % t.tiles_w * t.tile_w;
        __syncthreads();  // everyone is done with the previous tile (and x_offset_s is written)
        stage_tiled_dy(dy_s, dy, s, t, n0, oc_begin, oh0, ow0);
        stage_tiled_x(x_s, x, s, t, n0, c_begin, oh0 - s.pad_top + i0, ow0 - s.pad_left + j0);
        __syncthreads();  // the tile is complete
        const int filled = min(t.tile_images, s.batch - n0) << t.log2_plane_tile;
        const float* dy_at = dy_s + group * t.dy_stride + og * kTiledOc;
        for (int p = group; p < filled; p += t.position_groups, dy_at += dy_step) {
            const float4 d0 = *reinterpret_cast<const float4*>(dy_at);
            const float4 d1 = *reinterpret_cast<const float4*>(dy_at + 4);
            const float* x_at = x_thread + x_offset_s[p];
#pragma unroll
            for (int i = 0; i < kWin; ++i) {
                const float* x_row = x_at + i * t.patch_w;
#pragma unroll
                for (int j = 0; j < kWin; ++j) {
                    const float v = x_row[j];
                    float* a = acc[i][j];
                    a[0] += v * d0.x;
                    a[1] += v * d0.y;
                    a[2] += v * d0.z;
                    a[3] += v * d0.w;
                    a[4] += v * d1.x;
                    a[5] += v * d1.y;
                    a[6] += v * d1.z;
                    a[7] += v * d1.w;
                }
            }
        }
    }

    // Per row of the window inside the kernel: every thread parks its kWin × kTiledOc sums in the dy region,
    // then each (pair, tap, o) sums its position groups in group order.
    constexpr int kRowSums = kWin * kTiledOc;
    float* sums_s = dy_s;  // (threads, kWin, kTiledOc)
    const size_t dw_size = size_t(s.out_channels) * s.in_channels * s.kernel_h * s.kernel_w;
    float* out = partials + slice * dw_size;
#pragma unroll
    for (int i = 0; i < kWin; ++i) {
        if (i0 + i >= s.kernel_h) continue;  // uniform over the block
        __syncthreads();                     // the last tile, or the previous row, is no longer read
        float4* mine = reinterpret_cast<float4*>(sums_s + threadIdx.x * kRowSums);
#pragma unroll
        for (int j = 0; j < kWin; ++j) {
            mine[2 * j] = make_float4(acc[i][j][0], acc[i][j][1], acc[i][j][2], acc[i][j][3]);
            mine[2 * j + 1] = make_float4(acc[i][j][4], acc[i][j][5], acc[i][j][6], acc[i][j][7]);
        }
        __syncthreads();  // every thread's sums are in
        for (int e = threadIdx.x; e < t.pairs * kRowSums; e += blockDim.x) {
            const int pr = e / kRowSums, jo = e % kRowSums, j = jo / kTiledOc, o = jo % kTiledOc;
            float sum = 0.0f;
            for (int g = 0; g < t.position_groups; ++g) sum += sums_s[(g * t.pairs + pr) * kRowSums + jo];
            const int oc = oc_begin + pr % t.oc_groups * kTiledOc + o, c = c_begin + pr / t.oc_groups;
            if (j0 + j < s.kernel_w && oc < s.out_channels && c < s.in_channels) {
                out[((oc * s.in_channels + c) * s.kernel_h + i0 + i) * s.kernel_w + j0 + j] = sum;
            }
        }
    }
}

// dw[e] = Σ_slice partials[slice · count + e]: block (32 elements, kSumWarps warps); warp w sums slices w,
// w + kSumWarps, … of its lane's element (independent loads, so many are in flight), then lane's sums are
// added in warp order. A fixed order for given slices: bit-reproducible.
constexpr int kSumWarps = 8;

__global__ void __launch_bounds__(32 * kSumWarps)
    sum_filter_slices_kernel(const float* partials, int slices, int count, float* dw) {
    __shared__ float warp_sums_s[kSumWarps][32];
    const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
    const int e = blockIdx.x * 32 + lane;
    float sum = 0.0f;
    if (e < count) {
#pragma unroll 4
        for (int sl = warp; sl < slices; sl += kSumWarps) sum += partials[size_t(sl) * count + e];
    }
    warp_sums_s[warp][lane] = sum;
    __syncthreads();  // every warp's sums are in
    if (warp == 0 && e < count) {
        float total = warp_sums_s[0][lane];
        for (int w = 1; w < kSumWarps; ++w) total += warp_sums_s[w][lane];
        dw[e] = total;
    }
}

}  // namespace kernels

namespace {

using kernels::DirectShape;
using kernels::DirectTiling;

constexpr int64_t kSharedBudgetBytes = 48 * 1024;  // dynamic shared memory without an opt-in
constexpr int kMaxTilePositions = 128;             // forward, backward-data: one thread per tile position
constexpr int kMaxBlockThreads = 256;
constexpr int kMaxStageChannels = 8;
constexpr int kMinFilterBlocks = 2 * 132;  // two blocks per H100 SM before backward-filter widens its blocks
constexpr int64_t kMaxExtent = int64_t{1} << 28;  // padded extents, strides and dilated kernels: int math

// ceil_div as an int, for the int fields of the tilings (extents are below kMaxExtent).
int int_ceil_div(int64_t a, int64_t b) {
    return static_cast<int>(ceil_div(a, b));
}

int pow2_at_least(int64_t v) {
    int p = 1;
    while (p < v) p *= 2;
    return p;
}

// 8, 4, 2 or 1 channels per thread: as many as the group has, so a depthwise block wastes no thread.
int per_thread_channels(int64_t channels) {
    return channels >= 8 ? 8 : channels >= 4 ? 4 : channels >= 2 ? 2 : 1;
}

// Thread rows of a forward / backward-data block: enough for the group's channels, up to kMaxBlockThreads.
int thread_rows(int64_t channels, int per_thread, int positions) {
    return static_cast<int>(
        std::min<int64_t>(int_ceil_div(channels, per_thread), std::max(1, kMaxBlockThreads / positions)));
}

// A tile of an (h, w) plane: up to 32 wide (a warp along a row) and max_positions in all, no larger than
// needed.
void set_spatial_tile(DirectTiling& t, int64_t h, int64_t w, int max_positions) {
    t.tile_w = std::min(pow2_at_least(w), 32);
    t.tile_h = std::min(pow2_at_least(h), max_positions / t.tile_w);
}

void set_tile_counts(DirectTiling& t, int64_t h, int64_t w) {
    t.tiles_h = int_ceil_div(h, t.tile_h);
    t.tiles_w = int_ceil_div(w, t.tile_w);
}

// Calls derive(t), then halves the first size of `order` above 1 until shared_floats(t) fits the budget; with
// every size 1 a stage is a handful of floats, so this always ends.
template <class Derive, class SharedFloats>
void fit_shared(DirectTiling& t, std::initializer_list<int*> order, Derive derive,
                SharedFloats shared_floats) {
    derive(t);
    while (shared_floats(t) * int64_t{sizeof(float)} > kSharedBudgetBytes) {
        const auto size = std::find_if(order.begin(), order.end(), [](const int* v) { return *v > 1; });
        CUDACNN_CHECK(size != order.end(), "conv2d_direct: no tiling fits {} bytes of shared memory",
                      kSharedBudgetBytes);
        **size = (**size + 1) / 2;
        derive(t);
    }
}

// The padded input rows and columns that a tile of output positions reads through a window of taps.
void set_input_patch(DirectTiling& t, const Conv2dGeometry& g) {
    t.patch_h = static_cast<int>((t.tile_h - 1) * g.stride_h + (t.taps_h - 1) * g.dilation_h + 1);
    t.patch_w = static_cast<int>((t.tile_w - 1) * g.stride_w + (t.taps_w - 1) * g.dilation_w + 1);
}

// Floats of one forward / backward-data stage: the staged channels' patches and their filter slice.
int64_t stage_floats(const DirectTiling& t) {
    return (int64_t{t.stage_channels} * t.patch_h * t.patch_w + 3) / 4 * 4 +
           int64_t{t.stage_channels} * t.per_thread * t.rows * t.taps_h * t.taps_w;
}

// The tiling shape forward and backward-data share: one thread per position of a spatial tile of an (h, w)
// plane, computing per_thread of the group's `computed` channels, with up to kMaxStageChannels of the
// `staged` channels per stage; set_patch(d) sizes the staged patch for d's tile and tap window.
template <class SetPatch>
DirectTiling per_position_tiling(const Conv2dGeometry& g, int64_t computed, int64_t staged, int64_t h,
                                 int64_t w, SetPatch set_patch) {
    DirectTiling t;
    t.per_thread = per_thread_channels(computed);
    set_spatial_tile(t, h, w, kMaxTilePositions);
    t.stage_channels = static_cast<int>(std::min<int64_t>(staged, kMaxStageChannels));
    t.taps_h = static_cast<int>(g.kernel_h);
    t.taps_w = static_cast<int>(g.kernel_w);
    fit_shared(
        t, {&t.stage_channels, &t.taps_h, &t.taps_w, &t.tile_h, &t.tile_w},
        [&](DirectTiling& d) {
            d.rows = thread_rows(computed, d.per_thread, d.tile_h * d.tile_w);
            set_patch(d);
        },
        stage_floats);
    set_tile_counts(t, h, w);
    t.channel_tiles = int_ceil_div(computed, t.per_thread * t.rows);
    return t;
}

// Output channels per thread, a tile of output positions.
DirectTiling forward_tiling(const Conv2dGeometry& g) {
    return per_position_tiling(g, g.out_channels_per_group(), g.in_channels_per_group(), g.out_h, g.out_w,
                               [&](DirectTiling& d) { set_input_patch(d, g); });
}

// Input channels per thread; the dy rows and columns that a tile of dx positions reads (see the kernel's
// oh_first).
DirectTiling backward_data_tiling(const Conv2dGeometry& g) {
    return per_position_tiling(
        g, g.in_channels_per_group(), g.out_channels_per_group(), g.in_h, g.in_w, [&](DirectTiling& d) {
            d.patch_h = static_cast<int>((d.tile_h - 1 + (d.taps_h - 1) * g.dilation_h) / g.stride_h + 1);
            d.patch_w = static_cast<int>((d.tile_w - 1 + (d.taps_w - 1) * g.dilation_w) / g.stride_w + 1);
        });
}

// Floats of one backward-filter tile: dy of the block's output channels and the images' input patches.
int64_t filter_stage_floats(const DirectTiling& t) {
    return int64_t{t.tile_images} * (int64_t{t.rows} * t.tile_h * t.tile_w + int64_t{t.patch_h} * t.patch_w);
}

DirectTiling backward_filter_tiling(const Conv2dGeometry& g) {
    DirectTiling t;
    const int64_t oc_per_group = g.out_channels_per_group();
    set_spatial_tile(t, g.out_h, g.out_w, kernels::kFilterThreads);
    t.taps_w = static_cast<int>(std::min<int64_t>(g.kernel_w, kernels::kWindowTaps));
    t.taps_h = static_cast<int>(std::min<int64_t>(g.kernel_h, kernels::kWindowTaps / t.taps_w));
    const int64_t windows = int64_t{int_ceil_div(g.kernel_h, t.taps_h)} * int_ceil_div(g.kernel_w, t.taps_w);
    // Output channels per block (one warp row each): fewer, for more blocks, while there are too few to fill
    // a GPU.
    t.rows = std::min(pow2_at_least(oc_per_group), kernels::kFilterWarps);
    while (t.rows > 1 && g.groups * int_ceil_div(oc_per_group, t.rows) * g.in_channels_per_group() * windows <
                             kMinFilterBlocks) {
        t.rows /= 2;
    }
    // Small planes: several images per tile, so that every thread has positions to sum.
    t.tile_images = static_cast<int>(
        std::min<int64_t>(g.batch, std::max(1, kernels::kFilterThreads / (t.tile_h * t.tile_w))));
    fit_shared(
        t, {&t.tile_images, &t.tile_h, &t.tile_w, &t.taps_h, &t.taps_w},
        [&](DirectTiling& d) { set_input_patch(d, g); }, filter_stage_floats);
    set_tile_counts(t, g.out_h, g.out_w);
    t.windows_h = int_ceil_div(g.kernel_h, t.taps_h);
    t.windows_w = int_ceil_div(g.kernel_w, t.taps_w);
    t.channel_tiles = int_ceil_div(oc_per_group, t.rows);
    return t;
}

DirectShape direct_shape(const Conv2dGeometry& g) {
    auto i = [](int64_t v) { return static_cast<int>(v); };
    return {i(g.batch),
            i(g.in_channels),
            i(g.in_h),
            i(g.in_w),
            i(g.out_channels),
            i(g.out_h),
            i(g.out_w),
            i(g.kernel_h),
            i(g.kernel_w),
            i(g.groups),
            i(g.in_channels_per_group()),
            i(g.out_channels_per_group()),
            i(g.stride_h),
            i(g.stride_w),
            i(g.dilation_h),
            i(g.dilation_w),
            i(g.pad_top),
            i(g.pad_bottom),
            i(g.pad_left),
            i(g.pad_right),
            g.padding_mode};
}

void check_supported(const Conv2dGeometry& g, const char* op) {
    const std::string why = conv2d_direct_unsupported(g);
    CUDACNN_CHECK(why.empty(), "{}: {}", op, why);
}

void check_pointers(std::initializer_list<const void*> pointers, const char* names, const char* op) {
    for (const void* p : pointers) {
        CUDACNN_CHECK(p != nullptr, "{}: {} must all be device pointers, not null", op, names);
    }
}

// A 1-D grid of `blocks` blocks; indices are decoded in the kernels.
dim3 flat_grid(int64_t blocks, const char* op) {
    CUDACNN_CHECK(blocks <= INT_MAX, "{}: {} blocks exceed a grid's {}", op, blocks, INT_MAX);
    return dim3(static_cast<unsigned>(blocks));
}

// Calls body(std::integral_constant<int, K>) for the first K of Ks equal to `value`, else for the last K: a
// run-time choice among kernels compiled for a few constants (per-thread positions, window sides).
template <int K, int... Rest, class Body>
void with_constant(int value, Body&& body) {
    if constexpr (sizeof...(Rest) == 0) {
        body(std::integral_constant<int, K>{});
    } else if (value == K) {
        body(std::integral_constant<int, K>{});
    } else {
        with_constant<Rest...>(value, std::forward<Body>(body));
    }
}

// Launches forward or backward-data over tiling t: blocks (image, group, channel tile, spatial tile) of
// (tile positions, thread rows) threads, running kernel_for(std::integral_constant<int, t.per_thread>).
template <class KernelFor, class... Args>
void launch_per_position(const Conv2dGeometry& g, const DirectTiling& t, const char* op, cudaStream_t stream,
                         KernelFor kernel_for, Args... args) {
    const dim3 grid = flat_grid(g.batch * g.groups * t.channel_tiles * t.tiles_h * t.tiles_w, op);
    const dim3 block(t.tile_h * t.tile_w, t.rows);
    const size_t shared_bytes = sizeof(float) * static_cast<size_t>(stage_floats(t));
    with_constant<8, 4, 2, 1>(t.per_thread, [&](auto per_thread) {
        launch(kernel_for(per_thread), grid, block, shared_bytes, stream, direct_shape(g), t, args...);
    });
}

// ---- The tiled backward-filter's plan ----
using kernels::TiledFilterPlan;

constexpr int kMaxFilterSlices = 256;  // bounds the partial dW copies (workspace) and the second stage's sums
constexpr int kTiledMaxPairs = 64;     // (oc group, channel) pairs per block: ≥ 4 threads share each

// Where the tiled kernel applies: stride 1, dilation 1, groups 1 (any padding numbers and mode).
bool tiled_filter_applies(const Conv2dGeometry& g) {
    return conv2d_direct_unsupported(g).empty() && g.stride_h == 1 && g.stride_w == 1 && g.dilation_h == 1 &&
           g.dilation_w == 1 && g.groups == 1;
}

// The side of the kernel's square window of taps, an instantiated kernel's: the smallest of 1, 2, 3, 4 that
// holds the kernel, else 4 in windows (a 3×3 window holds 72 sums per thread, a 4×4 one 128).
int tiled_window(const Conv2dGeometry& g) {
    const int64_t side = std::max(g.kernel_h, g.kernel_w);
    return static_cast<int>(std::min<int64_t>(side, 4));
}

int log2_of(int pow2) {
    int bits = 0;
    while ((1 << bits) < pow2) ++bits;
    return bits;
}

// The spatial tile for a target number of positions (a power of two), and what follows from it.
void set_tiled_tile(TiledFilterPlan& t, const Conv2dGeometry& g, int target) {
    t.tile_w = std::min(pow2_at_least(g.out_w), 32);
    t.tile_h = std::min(pow2_at_least(g.out_h), std::max(1, target / t.tile_w));
    t.tile_images = std::min(pow2_at_least(g.batch), std::max(1, target / (t.tile_h * t.tile_w)));
    t.log2_tile_w = log2_of(t.tile_w);
    t.log2_plane_tile = log2_of(t.tile_h * t.tile_w);
    t.positions = std::max(8, t.tile_images * t.tile_h * t.tile_w);
    t.log2_positions = log2_of(t.positions);
    t.patch_h = t.tile_h + t.taps_h - 1;
    t.patch_w = t.tile_w + t.taps_w - 1;
    // A warp's threads read about ⌈32 / pairs⌉ consecutive positions of each of their input channels:
    // channels skew apart modulo 32 (a power of two at least that) read distinct banks.
    const int skew = pow2_at_least(ceil_div(32, t.pairs));
    t.channel_stride = (t.tile_images * t.patch_h * t.patch_w + 31) / 32 * 32 + skew;
    // The region also holds every thread's sums of a window row at the end.
    t.dy_floats =
        std::max(t.positions * t.dy_stride, t.pairs * t.position_groups * kernels::kTiledOc * t.taps_w);
}

int64_t tiled_shared_floats(const TiledFilterPlan& t) {
    return int64_t{t.dy_floats} + int64_t{t.c_tile} * t.channel_stride + t.positions;  // + the int table
}

TiledFilterPlan tiled_filter_plan(const Conv2dGeometry& g) {
    TiledFilterPlan t{};
    t.oc_groups = static_cast<int>(std::min<int64_t>(8, ceil_div(g.out_channels, kernels::kTiledOc)));
    t.oc_tile = t.oc_groups * kernels::kTiledOc;
    t.oc_tiles = int_ceil_div(g.out_channels, t.oc_tile);
    t.c_tile = static_cast<int>(std::min<int64_t>(g.in_channels, kTiledMaxPairs / t.oc_groups));
    t.c_tile = std::min(t.c_tile, 8);  // the staged patches of more channels would crowd out positions
    t.c_tiles = int_ceil_div(g.in_channels, t.c_tile);
    t.pairs = t.oc_groups * t.c_tile;
    t.position_groups = kernels::kTiledThreads / t.pairs;
    t.taps_h = t.taps_w = tiled_window(g);
    t.windows_h = int_ceil_div(g.kernel_h, t.taps_h);
    t.windows_w = int_ceil_div(g.kernel_w, t.taps_w);
    t.dy_stride = t.oc_tile + 4;  // ≡ 4 (mod 8): conflict-free staging stores (stage_tiled_dy), float4 rows
    int target = 256;
    set_tiled_tile(t, g, target);
    while (tiled_shared_floats(t) * int64_t{sizeof(float)} > kSharedBudgetBytes) {
        CUDACNN_CHECK(target > 1,
                      "conv2d_direct: no tiled backward-filter tile fits {} bytes of shared memory",
                      kSharedBudgetBytes);
        target /= 2;
        set_tiled_tile(t, g, target);
    }
    t.tiles_h = int_ceil_div(g.out_h, t.tile_h);
    t.tiles_w = int_ceil_div(g.out_w, t.tile_w);
    t.image_tiles = int_ceil_div(g.batch, t.tile_images);
    const int64_t units = int64_t{t.image_tiles} * t.tiles_h * t.tiles_w;
    CUDACNN_CHECK(units <= INT_MAX, "conv2d_direct: {} position tiles exceed the tiled kernel's int range",
                  units);
    t.units = static_cast<int>(units);
    // Position slices for two blocks per SM, at most one per staged tile and kMaxFilterSlices.
    const int64_t tiles = int64_t{t.oc_tiles} * t.c_tiles * t.windows_h * t.windows_w;
    t.slices = static_cast<int>(std::clamp<int64_t>(ceil_div(kMinFilterBlocks, tiles), 1,
                                                    std::min<int64_t>(units, kMaxFilterSlices)));
    return t;
}

// The partial dW copies of a sliced plan (0 for one slice, which writes dw directly).
int64_t tiled_workspace_floats(const Conv2dGeometry& g, const TiledFilterPlan& t) {
    return t.slices > 1 ? int64_t{t.slices} * g.out_channels * g.in_channels * g.kernel_h * g.kernel_w : 0;
}

void tiled_backward_filter(const Conv2dGeometry& g, const float* x, const float* dy, float* dw, float* dbias,
                           void* workspace, size_t workspace_bytes, cudaStream_t stream) {
    constexpr const char* op = "conv2d_direct_backward_filter";
    const TiledFilterPlan t = tiled_filter_plan(g);
    const int64_t needed = tiled_workspace_floats(g, t) * int64_t{sizeof(float)};
    check_conv2d_workspace(op, g, workspace, workspace_bytes, needed, [&] {
        return fmt::format("conv2d_direct_workspace_bytes(g) bytes ({})", conv2d_direct_workspace_bytes(g));
    });
    float* partials = t.slices > 1 ? static_cast<float*>(workspace) : dw;
    const dim3 grid = flat_grid(int64_t{t.slices} * t.oc_tiles * t.c_tiles * t.windows_h * t.windows_w, op);
    const dim3 block(static_cast<unsigned>(t.pairs * t.position_groups));
    const size_t shared_bytes = sizeof(float) * static_cast<size_t>(tiled_shared_floats(t));
    with_constant<4, 3, 2, 1>(t.taps_h, [&](auto side) {
        launch(kernels::conv2d_direct_filter_tiled_kernel<decltype(side)::value>, grid, block, shared_bytes,
               stream, direct_shape(g), t, x, dy, partials);
    });
    if (t.slices > 1) {
        const int64_t count = g.out_channels * g.in_channels * g.kernel_h * g.kernel_w;
        launch(kernels::sum_filter_slices_kernel, flat_grid(ceil_div(count, 32), op),
               dim3(32 * kernels::kSumWarps), 0, stream, static_cast<const float*>(partials), t.slices,
               static_cast<int>(count), dw);
    }
    if (dbias != nullptr) conv_bias_grad(dy, dbias, g.batch, g.out_channels, g.out_h, g.out_w, stream);
}

}  // namespace

std::string conv2d_direct_unsupported(const Conv2dGeometry& g) {
    const std::string problem = conv2d_geometry_problem(g);
    if (!problem.empty()) return problem;
    const int64_t largest = std::max({g.batch * g.in_channels * g.in_h * g.in_w, g.output_shape().numel(),
                                      g.out_channels * g.in_channels_per_group() * g.kernel_h * g.kernel_w});
    if (largest > INT_MAX) {
        return fmt::format(
            "conv2d_direct: a tensor of geometry {} has {} elements; the kernels index with 32 bits",
            describe_conv2d_geometry(g), largest);
    }
    const int64_t extent =
        std::max({g.in_h + g.pad_top + g.pad_bottom, g.in_w + g.pad_left + g.pad_right, g.stride_h,
                  g.stride_w, g.dilation_h * g.kernel_h, g.dilation_w * g.kernel_w});
    if (extent >= kMaxExtent) {
        return fmt::format(
            "conv2d_direct: geometry {} spans {} positions along an axis (padded input, stride or dilated "
            "kernel); the kernels' index arithmetic takes fewer than {}",
            describe_conv2d_geometry(g), extent, kMaxExtent);
    }
    return {};
}

void conv2d_direct_forward(const Conv2dGeometry& g, const float* x, const float* w, const float* bias,
                           float* y, cudaStream_t stream) {
    constexpr const char* op = "conv2d_direct_forward";
    check_supported(g, op);
    check_pointers({x, w, y}, "x, w and y", op);
    launch_per_position(
        g, forward_tiling(g), op, stream,
        [](auto per_thread) { return kernels::conv2d_direct_forward_kernel<decltype(per_thread)::value>; }, x,
        w, bias, y);
}

void conv2d_direct_backward_data(const Conv2dGeometry& g, const float* dy, const float* w, float* dx,
                                 cudaStream_t stream) {
    constexpr const char* op = "conv2d_direct_backward_data";
    check_supported(g, op);
    check_pointers({dy, w, dx}, "dy, w and dx", op);
    launch_per_position(
        g, backward_data_tiling(g), op, stream,
        [](auto per_thread) {
            return kernels::conv2d_direct_backward_data_kernel<decltype(per_thread)::value>;
        },
        dy, w, dx);
}

size_t conv2d_direct_workspace_bytes(const Conv2dGeometry& g) {
    if (!tiled_filter_applies(g)) return 0;
    return static_cast<size_t>(tiled_workspace_floats(g, tiled_filter_plan(g))) * sizeof(float);
}

void conv2d_direct_backward_filter(const Conv2dGeometry& g, const float* x, const float* dy, float* dw,
                                   float* dbias, void* workspace, size_t workspace_bytes,
                                   cudaStream_t stream) {
    constexpr const char* op = "conv2d_direct_backward_filter";
    check_supported(g, op);
    check_pointers({x, dy, dw}, "x, dy and dw", op);
    if (tiled_filter_applies(g)) {
        return tiled_backward_filter(g, x, dy, dw, dbias, workspace, workspace_bytes, stream);
    }
    const DirectTiling t = backward_filter_tiling(g);
    const dim3 grid = flat_grid(
        g.groups * t.channel_tiles * g.in_channels_per_group() * int64_t{t.windows_h} * t.windows_w, op);
    const size_t shared_bytes = sizeof(float) * static_cast<size_t>(filter_stage_floats(t));
    launch(kernels::conv2d_direct_backward_filter_kernel, grid, dim3(kernels::kFilterThreads), shared_bytes,
           stream, direct_shape(g), t, x, dy, dw, dbias);
}

}  // namespace cudacnn::gpu
