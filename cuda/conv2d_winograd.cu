// Winograd F(2×2, 3×3) convolution (see conv2d_winograd.hpp): the filter, input-tile, output-tile and
// gradient transforms as one-thread-per-(channel, tile) kernels, and the launchers that chain them with the
// batched GEMM of cuda/gemm_backend.hpp.
#include "cuda/conv2d_winograd.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cstdint>
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

namespace kernels {

constexpr int kPositions = 16;  // ξ: the entries of a 4 × 4 transformed tile

// The tiles of one convolution: T = images · tiles_h · tiles_w, tile t = (n · tiles_h + ty) · tiles_w + tx;
// the maps are h × w (the input's and the output's: padding 1 keeps the size).
struct TileGrid {
    int tiles, tiles_h, tiles_w, h, w;
};

struct TileSpot {
    int image, y0, x0;  // the output tile's top-left corner (2ty, 2tx)
};

__device__ inline TileSpot tile_spot(const TileGrid& grid, int t) {
    const int per_image = grid.tiles_h * grid.tiles_w;
    const int n = t / per_image, in_image = t - n * per_image;
    const int ty = in_image / grid.tiles_w, tx = in_image - ty * grid.tiles_w;
    return {n, 2 * ty, 2 * tx};
}

// Where entry (ξ, row, t) of a transformed array of `rows` rows lives: tiles are cut into chunks of `chunk`
// (chunks · chunk ≥ T; the entries of tiles ≥ T hold zeros), each chunk a [ξ][rows][chunk] block, so that
// (chunk, ξ) is one GEMM batch index with a constant stride. One chunk of all tiles: [ξ][rows][tiles].
struct TileLayout {
    int rows, chunk, padded_tiles;  // padded_tiles = chunks · chunk
};

// The 16 entries of (row, t): at base + ξ · stride (one division per thread, not one per entry).
struct TileEntries {
    int base, stride;
    __device__ int operator[](int xi) const { return base + xi * stride; }
};

__device__ inline TileEntries tile_entries(const TileLayout& layout, int row, int t) {
    const int s = t / layout.chunk;
    return {(s * kPositions * layout.rows + row) * layout.chunk + (t - s * layout.chunk),
            layout.rows * layout.chunk};
}

// v[ξ][c][t] = (Bᵗ d B)[ξ], d the 4 × 4 input tile of t in channel c of `in` (N, channels, h, w), zero
// outside the map (the padding) and for the padding tiles t ≥ T. One thread per (c, t), t fastest: a warp
// writes 32 consecutive floats of each ξ row.
__global__ void input_transform_kernel(const float* in, float* v, TileGrid grid, TileLayout layout) {
    const int total = layout.rows * layout.padded_tiles;
    for (int idx = blockIdx.x * blockDim.x + threadIdx.x; idx < total; idx += gridDim.x * blockDim.x) {
        const int c = idx / layout.padded_tiles, t = idx - c * layout.padded_tiles;
        float d[4][4] = {};
        if (t < grid.tiles) {
            const TileSpot s = tile_spot(grid, t);
            const float* plane = in + (s.image * layout.rows + c) * grid.h * grid.w;
#pragma unroll
            for (int a = 0; a < 4; ++a) {
                const int y = s.y0 - 1 + a;
#pragma unroll
                for (int b = 0; b < 4; ++b) {
                    const int x = s.x0 - 1 + b;
                    if (y >= 0 && y < grid.h && x >= 0 && x < grid.w) d[a][b] = plane[y * grid.w + x];
                }
            }
        }
        float r[4][4];  // Bᵗ d
#pragma unroll
        for (int b = 0; b < 4; ++b) {
            r[0][b] = d[0][b] - d[2][b];
            r[1][b] = d[1][b] + d[2][b];
            r[2][b] = d[2][b] - d[1][b];
            r[3][b] = d[1][b] - d[3][b];
        }
        const TileEntries at = tile_entries(layout, c, t);
#pragma unroll
        for (int a = 0; a < 4; ++a) {  // (Bᵗ d) B
            v[at[4 * a + 0]] = r[a][0] - r[a][2];
            v[at[4 * a + 1]] = r[a][1] + r[a][2];
            v[at[4 * a + 2]] = r[a][2] - r[a][1];
            v[at[4 * a + 3]] = r[a][1] - r[a][3];
        }
    }
}

// u[ξ][r][c] (rows `pitch` floats apart) = (G g Gᵗ)[ξ] for g = w[r][c] (w (rows, cols, 3, 3), the forward),
// or, when `rotate`, g = w[c][r] turned by 180° (w (cols, rows, 3, 3): backward-data's filter). One thread
// per (r, c), c fastest (coalesced writes; the filter is small).
__global__ void filter_transform_kernel(const float* w, float* u, int rows, int cols, int pitch,
                                        bool rotate) {
    const int total = rows * cols;
    for (int idx = blockIdx.x * blockDim.x + threadIdx.x; idx < total; idx += gridDim.x * blockDim.x) {
        const int r = idx / cols, c = idx - r * cols;
        const float* src = w + (rotate ? c * rows + r : r * cols + c) * 9;
        float g[3][3];
#pragma unroll
        for (int i = 0; i < 3; ++i) {
#pragma unroll
            for (int j = 0; j < 3; ++j) g[i][j] = rotate ? src[(2 - i) * 3 + (2 - j)] : src[i * 3 + j];
        }
        float h[4][3];  // G g
#pragma unroll
        for (int j = 0; j < 3; ++j) {
            h[0][j] = g[0][j];
            h[1][j] = 0.5f * (g[0][j] + g[1][j] + g[2][j]);
            h[2][j] = 0.5f * (g[0][j] - g[1][j] + g[2][j]);
            h[3][j] = g[2][j];
        }
        const int stride = rows * pitch;  // between ξ planes
        float* out = u + r * pitch + c;
#pragma unroll
        for (int a = 0; a < 4; ++a) {  // (G g) Gᵗ
            out[(4 * a + 0) * stride] = h[a][0];
            out[(4 * a + 1) * stride] = 0.5f * (h[a][0] + h[a][1] + h[a][2]);
            out[(4 * a + 2) * stride] = 0.5f * (h[a][0] - h[a][1] + h[a][2]);
            out[(4 * a + 3) * stride] = h[a][2];
        }
    }
}

// out (N, channels, h, w) tile t of channel k = Aᵗ M[·][k][t] A (+ bias[k]), the parts inside the map.
// One thread per (k, t), t fastest: coalesced reads of each ξ row.
__global__ void output_transform_kernel(const float* m, const float* bias, float* out, TileGrid grid,
                                        TileLayout layout) {
    const int total = layout.rows * grid.tiles;
    for (int idx = blockIdx.x * blockDim.x + threadIdx.x; idx < total; idx += gridDim.x * blockDim.x) {
        const int k = idx / grid.tiles, t = idx - k * grid.tiles;
        const TileEntries at = tile_entries(layout, k, t);
        float r[2][4];  // Aᵗ M
#pragma unroll
        for (int b = 0; b < 4; ++b) {
            const float m0 = m[at[b]], m1 = m[at[4 + b]], m2 = m[at[8 + b]], m3 = m[at[12 + b]];
            r[0][b] = m0 + m1 + m2;
            r[1][b] = m1 - m2 - m3;
        }
        const float add = bias != nullptr ? bias[k] : 0.0f;
        const TileSpot s = tile_spot(grid, t);
        float* plane = out + (s.image * layout.rows + k) * grid.h * grid.w;
#pragma unroll
        for (int a = 0; a < 2; ++a) {  // (Aᵗ M) A
            const int y = s.y0 + a;
            if (y >= grid.h) continue;
            plane[y * grid.w + s.x0] = r[a][0] + r[a][1] + r[a][2] + add;
            if (s.x0 + 1 < grid.w) plane[y * grid.w + s.x0 + 1] = r[a][1] - r[a][2] - r[a][3] + add;
        }
    }
}

// dm[ξ][k][t] = (A dy_t Aᵗ)[ξ], dy_t the 2 × 2 gradient tile of t in channel k of dy (N, channels, h, w),
// zero outside the map and for the padding tiles. One thread per (k, t), t fastest.
__global__ void gradient_transform_kernel(const float* dy, float* dm, TileGrid grid, TileLayout layout) {
    const int total = layout.rows * layout.padded_tiles;
    for (int idx = blockIdx.x * blockDim.x + threadIdx.x; idx < total; idx += gridDim.x * blockDim.x) {
        const int k = idx / layout.padded_tiles, t = idx - k * layout.padded_tiles;
        float e[2][2] = {};
        if (t < grid.tiles) {
            const TileSpot s = tile_spot(grid, t);
            const float* plane = dy + (s.image * layout.rows + k) * grid.h * grid.w;
#pragma unroll
            for (int a = 0; a < 2; ++a) {
#pragma unroll
                for (int b = 0; b < 2; ++b) {
                    const int y = s.y0 + a, x = s.x0 + b;
                    if (y < grid.h && x < grid.w) e[a][b] = plane[y * grid.w + x];
                }
            }
        }
        float r[4][2];  // A dy
#pragma unroll
        for (int b = 0; b < 2; ++b) {
            r[0][b] = e[0][b];
            r[1][b] = e[0][b] + e[1][b];
            r[2][b] = e[0][b] - e[1][b];
            r[3][b] = -e[1][b];
        }
        const TileEntries at = tile_entries(layout, k, t);
#pragma unroll
        for (int a = 0; a < 4; ++a) {  // (A dy) Aᵗ
            dm[at[4 * a + 0]] = r[a][0];
            dm[at[4 * a + 1]] = r[a][0] + r[a][1];
            dm[at[4 * a + 2]] = r[a][0] - r[a][1];
            dm[at[4 * a + 3]] = -r[a][1];
        }
    }
}

// dw[k][c] (OC, C, 3, 3) = Gᵗ dU G with dU[ξ] = Σ over chunks s, in order, of partials[s][ξ][k][c] (rows
// `pitch` floats apart). One thread per (k, c), c fastest (coalesced reads).
__global__ void filter_gradient_transform_kernel(const float* partials, float* dw, int rows, int cols,
                                                 int pitch, int chunks) {
    const int total = rows * cols, plane = rows * pitch;
    for (int idx = blockIdx.x * blockDim.x + threadIdx.x; idx < total; idx += gridDim.x * blockDim.x) {
        const int k = idx / cols, c = idx - k * cols;
        const float* in = partials + k * pitch + c;
        float du[4][4];
#pragma unroll
        for (int xi = 0; xi < kPositions; ++xi) {
            float sum = in[xi * plane];
            for (int s = 1; s < chunks; ++s) sum += in[(s * kPositions + xi) * plane];
            du[xi / 4][xi % 4] = sum;
        }
        float r[3][4];  // Gᵗ dU
#pragma unroll
        for (int b = 0; b < 4; ++b) {
            r[0][b] = du[0][b] + 0.5f * (du[1][b] + du[2][b]);
            r[1][b] = 0.5f * (du[1][b] - du[2][b]);
            r[2][b] = 0.5f * (du[1][b] + du[2][b]) + du[3][b];
        }
        float* out = dw + idx * 9;
#pragma unroll
        for (int a = 0; a < 3; ++a) {  // (Gᵗ dU) G
            out[a * 3 + 0] = r[a][0] + 0.5f * (r[a][1] + r[a][2]);
            out[a * 3 + 1] = 0.5f * (r[a][1] - r[a][2]);
            out[a * 3 + 2] = 0.5f * (r[a][1] + r[a][2]) + r[a][3];
        }
    }
}

}  // namespace kernels

namespace {

using kernels::kPositions;
using kernels::TileGrid;
using kernels::TileLayout;

constexpr int64_t kMaxElements = (int64_t{1} << 31) - 1024;  // 32-bit indices
constexpr int64_t kAlignFloats = 64;                         // 256-byte aligned parts of the workspace
// Rows of the filter-side matrices (U, partial dU) and tile counts are padded to multiples of 4 floats, so
// the GEMM's leading dimensions and batch strides allow float4 access.
constexpr int64_t kPitchFloats = 4;
// Backward-filter's GEMMs (OC × C per ξ, k = T) give few output tiles: T is cut into chunks for about two
// blocks of 128 × 128 per H100 SM, at most kMaxChunks, each at least kMinChunk tiles long (shorter ones
// would spend more on the partial sums than they gain); chunk lengths are multiples of 16 (the GEMM's k
// slice).
constexpr int64_t kTargetBlocks = 2 * 132;
constexpr int64_t kMaxChunks = 16;
constexpr int64_t kMinChunk = 256;
constexpr int64_t kChunkMultiple = 16;

int64_t round_up(int64_t a, int64_t b) {
    return ceil_div(a, b) * b;
}

int64_t tiles_h(const Conv2dGeometry& g) {
    return ceil_div(g.out_h, 2);
}
int64_t tiles_w(const Conv2dGeometry& g) {
    return ceil_div(g.out_w, 2);
}
int64_t tile_count(const Conv2dGeometry& g) {
    return g.batch * tiles_h(g) * tiles_w(g);
}

struct Chunks {
    int64_t chunk, count;
};

// Forward and backward-data: one chunk of all tiles.
Chunks single_chunk(const Conv2dGeometry& g) {
    return {round_up(tile_count(g), kPitchFloats), 1};
}

Chunks filter_chunks(const Conv2dGeometry& g) {
    const int64_t tiles = tile_count(g);
    const int64_t blocks_per_chunk =
        kPositions * ceil_div(g.out_channels, 128) * ceil_div(g.in_channels, 128);
    const int64_t wanted = std::clamp<int64_t>(kTargetBlocks / blocks_per_chunk, 1, kMaxChunks);
    const int64_t count = std::min(wanted, std::max<int64_t>(tiles / kMinChunk, 1));
    const int64_t chunk = round_up(ceil_div(tiles, count), kChunkMultiple);
    return {chunk, ceil_div(tiles, chunk)};
}

// The workspace of one direction: three parts, each 256-byte aligned. `filter` is U (16 × rows × pitch) or
// backward-filter's partial dU (chunks × 16 × OC × pitch); `in` the transformed input (or dy) tiles,
// `out` the transformed output (or gradient) tiles, 16 × channels × padded tiles each.
struct Parts {
    int64_t filter, in, out;
    int64_t in_offset() const { return round_up(filter, kAlignFloats); }
    int64_t out_offset() const { return in_offset() + round_up(in, kAlignFloats); }
    int64_t total() const { return out_offset() + out; }
};

// Forward (in = C, out = OC) or backward-data (in = OC, out = C): U (16 × out × pitch(in)), V (16 × in ×
// padded tiles), M (16 × out × padded tiles).
Parts pipeline_parts(const Conv2dGeometry& g, int64_t in_channels, int64_t out_channels) {
    const int64_t padded = single_chunk(g).chunk;
    return {kPositions * out_channels * round_up(in_channels, kPitchFloats),
            kPositions * in_channels * padded, kPositions * out_channels * padded};
}

Parts forward_parts(const Conv2dGeometry& g) {
    return pipeline_parts(g, g.in_channels, g.out_channels);
}
Parts backward_data_parts(const Conv2dGeometry& g) {
    return pipeline_parts(g, g.out_channels, g.in_channels);
}
// Partial dU (chunks × 16 × OC × pitch(C)), V (16 × C × padded tiles), dM (16 × OC × padded tiles).
Parts backward_filter_parts(const Conv2dGeometry& g) {
    const Chunks chunks = filter_chunks(g);
    const int64_t padded = chunks.chunk * chunks.count;
    return {chunks.count * kPositions * g.out_channels * round_up(g.in_channels, kPitchFloats),
            kPositions * g.in_channels * padded, kPositions * g.out_channels * padded};
}

int64_t workspace_floats(const Conv2dGeometry& g) {
    return std::max(
        {forward_parts(g).total(), backward_data_parts(g).total(), backward_filter_parts(g).total()});
}

TileGrid tile_grid(const Conv2dGeometry& g) {
    auto i = [](int64_t v) { return static_cast<int>(v); };
    return {i(tile_count(g)), i(tiles_h(g)), i(tiles_w(g)), i(g.out_h), i(g.out_w)};
}

TileLayout layout(int64_t rows, const Chunks& chunks) {
    return {static_cast<int>(rows), static_cast<int>(chunks.chunk),
            static_cast<int>(chunks.chunk * chunks.count)};
}

void check_geometry(const Conv2dGeometry& g, const char* op) {
    const std::string why = conv2d_winograd_unsupported(g);
    CUDACNN_CHECK(why.empty(), "{}: {}", op, why);
}

void check_pointers(std::initializer_list<const void*> pointers, const char* names, const char* op) {
    for (const void* p : pointers) {
        CUDACNN_CHECK(p != nullptr, "{}: {} must be device pointers, not null", op, names);
    }
}

// Returns the workspace as floats once it holds `floats`.
float* checked_workspace(const Conv2dGeometry& g, void* workspace, size_t bytes, int64_t floats,
                         const char* op) {
    const int64_t needed = floats * int64_t{sizeof(float)};
    CUDACNN_CHECK(workspace != nullptr && static_cast<int64_t>(bytes) >= needed,
                  "{}: workspace {} of {} bytes is smaller than the {} bytes this call needs "
                  "(conv2d_winograd_workspace_bytes gives {}) for geometry {}",
                  op, workspace, bytes, needed, conv2d_winograd_workspace_bytes(g),
                  describe_conv2d_geometry(g));
    return static_cast<float*>(workspace);
}

// The forward pipeline on `in` (N, in_channels, H, W) → `out` (N, out_channels, H, W) (+ bias), with the
// filter w transformed as the forward's (OC, C) filter or, when `rotate`, as backward-data's rotated one.
void run_pipeline(const Conv2dGeometry& g, const float* in, int64_t in_channels, const float* w, bool rotate,
                  const float* bias, float* out, int64_t out_channels, float* workspace,
                  cudaStream_t stream) {
    const Parts parts = pipeline_parts(g, in_channels, out_channels);
    float* u = workspace;
    float* v = workspace + parts.in_offset();
    float* m = workspace + parts.out_offset();
    const Chunks chunks = single_chunk(g);
    const int64_t pitch = round_up(in_channels, kPitchFloats), padded = chunks.chunk, tiles = tile_count(g);
    const TileGrid grid = tile_grid(g);
    const dim3 block(kElementwiseBlock);

    launch(kernels::filter_transform_kernel, elementwise_grid(out_channels * in_channels), block, 0, stream,
           w, u, static_cast<int>(out_channels), static_cast<int>(in_channels), static_cast<int>(pitch),
           rotate);
    launch(kernels::input_transform_kernel, elementwise_grid(in_channels * padded), block, 0, stream, in, v,
           grid, layout(in_channels, chunks));
    // M[ξ] (out × T) = U[ξ] (out × in) · V[ξ] (in × T), 16 products.
    gemm_strided_batched(false, false, out_channels, tiles, in_channels, 1.0f, u, pitch, out_channels * pitch,
                         v, padded, in_channels * padded, 0.0f, m, padded, out_channels * padded, kPositions,
                         stream);
    launch(kernels::output_transform_kernel, elementwise_grid(out_channels * tiles), block, 0, stream, m,
           bias, out, grid, layout(out_channels, chunks));
}

}  // namespace

std::string conv2d_winograd_unsupported(const Conv2dGeometry& g) {
    std::string problem = conv2d_geometry_problem(g);
    if (!problem.empty()) return problem;
    const bool winograd_shape = g.kernel_h == 3 && g.kernel_w == 3 && g.stride_h == 1 && g.stride_w == 1 &&
                                g.dilation_h == 1 && g.dilation_w == 1 && g.pad_top == 1 &&
                                g.pad_bottom == 1 && g.pad_left == 1 && g.pad_right == 1;
    if (!winograd_shape) {
        return fmt::format(
            "conv2d_winograd: F(2×2, 3×3) computes 3×3 kernels with stride 1, dilation 1 and padding 1 only, "
            "not geometry {}; use --conv-algo implicit or im2col for it",
            describe_conv2d_geometry(g));
    }
    if (g.groups != 1) {
        return fmt::format("conv2d_winograd: groups {} are not supported (only groups 1), geometry {}",
                           g.groups, describe_conv2d_geometry(g));
    }
    if (g.padding_mode != cpu::Conv2dPaddingMode::zeros) {
        return fmt::format("conv2d_winograd: padding_mode '{}' is not supported (only 'zeros'), geometry {}",
                           cpu::conv2d_padding_mode_name(g.padding_mode), describe_conv2d_geometry(g));
    }
    const int64_t largest = std::max({g.batch * g.in_channels * g.in_h * g.in_w,
                                      g.batch * g.out_channels * g.out_h * g.out_w, workspace_floats(g)});
    if (largest >= kMaxElements) {
        return fmt::format(
            "conv2d_winograd: geometry {} has a tensor (x, y or the workspace's transformed tiles) of {} "
            "elements; the kernels index with 32 bits and take fewer than {}",
            describe_conv2d_geometry(g), largest, kMaxElements);
    }
    return {};
}

size_t conv2d_winograd_workspace_bytes(const Conv2dGeometry& g) {
    check_geometry(g, "conv2d_winograd_workspace_bytes");
    return static_cast<size_t>(workspace_floats(g)) * sizeof(float);
}

void conv2d_winograd_forward(const Conv2dGeometry& g, const float* x, const float* w, const float* bias,
                             float* y, void* workspace, size_t workspace_bytes, cudaStream_t stream) {
    const char* op = "conv2d_winograd_forward";
    check_geometry(g, op);
    check_pointers({x, w, y}, "x, w and y", op);
    float* ws = checked_workspace(g, workspace, workspace_bytes, forward_parts(g).total(), op);
    run_pipeline(g, x, g.in_channels, w, false, bias, y, g.out_channels, ws, stream);
}

void conv2d_winograd_backward_data(const Conv2dGeometry& g, const float* dy, const float* w, float* dx,
                                   void* workspace, size_t workspace_bytes, cudaStream_t stream) {
    const char* op = "conv2d_winograd_backward_data";
    check_geometry(g, op);
    check_pointers({dy, w, dx}, "dy, w and dx", op);
    float* ws = checked_workspace(g, workspace, workspace_bytes, backward_data_parts(g).total(), op);
    run_pipeline(g, dy, g.out_channels, w, true, nullptr, dx, g.in_channels, ws, stream);
}

void conv2d_winograd_backward_filter(const Conv2dGeometry& g, const float* x, const float* dy, float* dw,
                                     float* dbias, void* workspace, size_t workspace_bytes,
                                     cudaStream_t stream) {
    const char* op = "conv2d_winograd_backward_filter";
    check_geometry(g, op);
    check_pointers({x, dy, dw}, "x, dy and dw", op);
    const Parts parts = backward_filter_parts(g);
    float* ws = checked_workspace(g, workspace, workspace_bytes, parts.total(), op);
    float* partials = ws;
    float* v = ws + parts.in_offset();
    float* dm = ws + parts.out_offset();
    const Chunks chunks = filter_chunks(g);
    const int64_t padded = chunks.chunk * chunks.count, pitch = round_up(g.in_channels, kPitchFloats);
    const int64_t oc = g.out_channels, c = g.in_channels;
    const TileGrid grid = tile_grid(g);
    const dim3 block(kElementwiseBlock);

    launch(kernels::input_transform_kernel, elementwise_grid(c * padded), block, 0, stream, x, v, grid,
           layout(c, chunks));
    launch(kernels::gradient_transform_kernel, elementwise_grid(oc * padded), block, 0, stream, dy, dm, grid,
           layout(oc, chunks));
    // Batch entry (s, ξ): partial dU (OC × C) = dM[s][ξ] (OC × chunk) · V[s][ξ]ᵗ (chunk × C); the padding
    // tiles hold zeros on both sides.
    gemm_strided_batched(false, true, oc, c, chunks.chunk, 1.0f, dm, chunks.chunk, oc * chunks.chunk, v,
                         chunks.chunk, c * chunks.chunk, 0.0f, partials, pitch, oc * pitch,
                         chunks.count * kPositions, stream);
    launch(kernels::filter_gradient_transform_kernel, elementwise_grid(oc * c), block, 0, stream, partials,
           dw, static_cast<int>(oc), static_cast<int>(c), static_cast<int>(pitch),
           static_cast<int>(chunks.count));
    if (dbias != nullptr) conv_bias_grad(dy, dbias, g.batch, g.out_channels, g.out_h, g.out_w, stream);
}

}  // namespace cudacnn::gpu
