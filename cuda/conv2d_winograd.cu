// Winograd F(2×2, 3×3) and F(4×4, 3×3) convolution (see conv2d_winograd.hpp): the filter, input-tile,
// output-tile and gradient transforms as one-thread-per-(channel, tile) kernels templated on the output tile
// side M, and the launchers that chain them with the batched GEMM of cuda/gemm_backend.hpp.
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

// The 1-D transforms of F(M×M, 3×3) (the matrices of conv2d_winograd.hpp), one struct each with
// apply(in, out): InputTransform o = Bᵗ d, FilterTransform o = G g, OutputTransform o = Aᵗ v,
// GradientTransform o = A e, FilterGradientTransform o = Gᵗ u. Written out, not as matrix products, so that
// no multiply by 0 or 1 is left to the compiler (which may not drop them in floating point).
template <int M>
struct InputTransform;
template <int M>
struct FilterTransform;
template <int M>
struct OutputTransform;
template <int M>
struct GradientTransform;
template <int M>
struct FilterGradientTransform;

template <>
struct InputTransform<2> {
    __device__ static void apply(const float (&d)[4], float (&o)[4]) {
        o[0] = d[0] - d[2];
        o[1] = d[1] + d[2];
        o[2] = d[2] - d[1];
        o[3] = d[1] - d[3];
    }
};

template <>
struct FilterTransform<2> {
    __device__ static void apply(const float (&g)[3], float (&o)[4]) {
        o[0] = g[0];
        o[1] = 0.5f * (g[0] + g[1] + g[2]);
        o[2] = 0.5f * (g[0] - g[1] + g[2]);
        o[3] = g[2];
    }
};

template <>
struct OutputTransform<2> {
    __device__ static void apply(const float (&v)[4], float (&o)[2]) {
        o[0] = v[0] + v[1] + v[2];
        o[1] = v[1] - v[2] - v[3];
    }
};

template <>
struct GradientTransform<2> {
    __device__ static void apply(const float (&e)[2], float (&o)[4]) {
        o[0] = e[0];
        o[1] = e[0] + e[1];
        o[2] = e[0] - e[1];
        o[3] = -e[1];
    }
};

template <>
struct FilterGradientTransform<2> {
    __device__ static void apply(const float (&u)[4], float (&o)[3]) {
        o[0] = u[0] + 0.5f * (u[1] + u[2]);
        o[1] = 0.5f * (u[1] - u[2]);
        o[2] = 0.5f * (u[1] + u[2]) + u[3];
    }
};

// F(4×4): G's non-dyadic entries as products with the rounded reciprocals (one more rounding than a
// division, on the filter side only).
constexpr float kSixth = 1.0f / 6.0f;
constexpr float kFifteenth = 1.0f / 15.0f;
constexpr float kThirtieth = 1.0f / 30.0f;

template <>
struct InputTransform<4> {
    __device__ static void apply(const float (&d)[6], float (&o)[6]) {
        o[0] = 2.0f * (d[0] + d[4]) + 3.0f * (d[1] - d[3]) - 4.0f * d[2];
        o[1] = 2.0f * (d[4] - d[1]) - 5.0f * d[2] - d[3];
        o[2] = 2.0f * (d[1] + d[4]) + d[2] - 5.0f * d[3];
        o[3] = 2.0f * (d[4] - d[2]) + d[3] - d[1];
        o[4] = 8.0f * (d[3] - d[1]) + 4.0f * (d[2] - d[4]);
        o[5] = 2.0f * (d[1] + d[5]) + 3.0f * (d[2] - d[4]) - 4.0f * d[3];
    }
};

template <>
struct FilterTransform<4> {
    __device__ static void apply(const float (&g)[3], float (&o)[6]) {
        o[0] = 0.5f * g[0];
        o[1] = -kSixth * (g[0] + g[1] + g[2]);
        o[2] = kSixth * (g[0] - g[1] + g[2]);
        o[3] = kThirtieth * (g[0] + 2.0f * g[1] + 4.0f * g[2]);
        o[4] = kFifteenth * (4.0f * g[0] - 2.0f * g[1] + g[2]);
        o[5] = 0.5f * g[2];
    }
};

template <>
struct OutputTransform<4> {
    __device__ static void apply(const float (&v)[6], float (&o)[4]) {
        const float sum = v[1] + v[2], difference = v[1] - v[2];
        o[0] = v[0] + sum + v[3] + v[4];
        o[1] = difference + 2.0f * v[3] - 0.5f * v[4];
        o[2] = sum + 4.0f * v[3] + 0.25f * v[4];
        o[3] = difference + 8.0f * v[3] - 0.125f * v[4] + v[5];
    }
};

template <>
struct GradientTransform<4> {
    __device__ static void apply(const float (&e)[4], float (&o)[6]) {
        const float even = e[0] + e[2], odd = e[1] + e[3];
        o[0] = e[0];
        o[1] = even + odd;
        o[2] = even - odd;
        o[3] = e[0] + 2.0f * e[1] + 4.0f * e[2] + 8.0f * e[3];
        o[4] = e[0] - 0.5f * e[1] + 0.25f * e[2] - 0.125f * e[3];
        o[5] = e[3];
    }
};

template <>
struct FilterGradientTransform<4> {
    __device__ static void apply(const float (&u)[6], float (&o)[3]) {
        o[0] = 0.5f * u[0] + kSixth * (u[2] - u[1]) + kThirtieth * (u[3] + 8.0f * u[4]);
        o[1] = -kSixth * (u[1] + u[2]) + kFifteenth * (u[3] - 2.0f * u[4]);
        o[2] = kSixth * (u[2] - u[1]) + kFifteenth * (2.0f * u[3] + u[4]) + 0.5f * u[5];
    }
};

// out = T in Tᵗ for the 1-D transform T of `Transform` (In → Out): T down each column of in, then along
// each row of the result.
template <int In, int Out, typename Transform>
__device__ inline void transform_2d(const float (&in)[In][In], float (&out)[Out][Out]) {
    float columns[Out][In];
#pragma unroll
    for (int b = 0; b < In; ++b) {
        float column[In], result[Out];
#pragma unroll
        for (int a = 0; a < In; ++a) column[a] = in[a][b];
        Transform::apply(column, result);
#pragma unroll
        for (int a = 0; a < Out; ++a) columns[a][b] = result[a];
    }
#pragma unroll
    for (int a = 0; a < Out; ++a) Transform::apply(columns[a], out[a]);
}

// ξ: the (M + 2)² entries of a transformed tile.
template <int M>
constexpr int kPositions = (M + 2) * (M + 2);

// The tiles of one convolution: T = images · tiles_h · tiles_w, tile t = (n · tiles_h + ty) · tiles_w + tx;
// the maps are h × w (the input's and the output's: padding 1 keeps the size).
struct TileGrid {
    int tiles, tiles_h, tiles_w, h, w;
};

struct TileSpot {
    int image, y0, x0;  // the output tile's top-left corner (M·ty, M·tx)
};

template <int M>
__device__ inline TileSpot tile_spot(const TileGrid& grid, int t) {
    const int per_image = grid.tiles_h * grid.tiles_w;
    const int n = t / per_image, in_image = t - n * per_image;
    const int ty = in_image / grid.tiles_w, tx = in_image - ty * grid.tiles_w;
    return {n, M * ty, M * tx};
}

// Where entry (ξ, row, t) of a transformed array of `rows` rows lives: tiles are cut into chunks of `chunk`
// (chunks · chunk ≥ T; the entries of tiles ≥ T hold zeros), each chunk a [ξ][rows][chunk] block, so that
// (chunk, ξ) is one GEMM batch index with a constant stride. One chunk of all tiles: [ξ][rows][tiles].
struct TileLayout {
    int rows, chunk, padded_tiles;  // padded_tiles = chunks · chunk
};

// The entries of (row, t): at base + ξ · stride (one division per thread, not one per entry).
struct TileEntries {
    int base, stride;
    __device__ int operator[](int xi) const { return base + xi * stride; }
};

template <int M>
__device__ inline TileEntries tile_entries(const TileLayout& layout, int row, int t) {
    const int s = t / layout.chunk;
    return {(s * kPositions<M> * layout.rows + row) * layout.chunk + (t - s * layout.chunk),
            layout.rows * layout.chunk};
}

// v[ξ][c][t] = (Bᵗ d B)[ξ], d the (M + 2)² input tile of t in channel c of `in` (N, channels, h, w), zero
// outside the map (the padding) and for the padding tiles t ≥ T. One thread per (c, t), t fastest: a warp
// writes 32 consecutive floats of each ξ row.
template <int M>
__global__ void input_transform_kernel(const float* in, float* v, TileGrid grid, TileLayout layout) {
    constexpr int N = M + 2;
    const int total = layout.rows * layout.padded_tiles;
    for (int idx = blockIdx.x * blockDim.x + threadIdx.x; idx < total; idx += gridDim.x * blockDim.x) {
        const int c = idx / layout.padded_tiles, t = idx - c * layout.padded_tiles;
        float d[N][N] = {};
        if (t < grid.tiles) {
            const TileSpot s = tile_spot<M>(grid, t);
            const float* plane = in + (s.image * layout.rows + c) * grid.h * grid.w;
#pragma unroll
            for (int a = 0; a < N; ++a) {
                const int y = s.y0 - 1 + a;
#pragma unroll
                for (int b = 0; b < N; ++b) {
                    const int x = s.x0 - 1 + b;
                    if (y >= 0 && y < grid.h && x >= 0 && x < grid.w) d[a][b] = plane[y * grid.w + x];
                }
            }
        }
        float e[N][N];
        transform_2d<N, N, InputTransform<M>>(d, e);
        const TileEntries at = tile_entries<M>(layout, c, t);
#pragma unroll
        for (int a = 0; a < N; ++a) {
#pragma unroll
            for (int b = 0; b < N; ++b) v[at[N * a + b]] = e[a][b];
        }
    }
}

// u[ξ][r][c] (rows `pitch` floats apart) = (G g Gᵗ)[ξ] for g = w[r][c] (w (rows, cols, 3, 3), the forward),
// or, when `rotate`, g = w[c][r] turned by 180° (w (cols, rows, 3, 3): backward-data's filter). One thread
// per (r, c), c fastest (coalesced writes; the filter is small).
template <int M>
__global__ void filter_transform_kernel(const float* w, float* u, int rows, int cols, int pitch,
                                        bool rotate) {
    constexpr int N = M + 2;
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
        float e[N][N];
        transform_2d<3, N, FilterTransform<M>>(g, e);
        const int stride = rows * pitch;  // between ξ planes
        float* out = u + r * pitch + c;
#pragma unroll
        for (int a = 0; a < N; ++a) {
#pragma unroll
            for (int b = 0; b < N; ++b) out[(N * a + b) * stride] = e[a][b];
        }
    }
}

// out (N, channels, h, w) tile t of channel k = Aᵗ M[·][k][t] A (+ bias[k]), the parts inside the map.
// One thread per (k, t), t fastest: coalesced reads of each ξ row.
template <int M>
__global__ void output_transform_kernel(const float* m, const float* bias, float* out, TileGrid grid,
                                        TileLayout layout) {
    constexpr int N = M + 2;
    const int total = layout.rows * grid.tiles;
    for (int idx = blockIdx.x * blockDim.x + threadIdx.x; idx < total; idx += gridDim.x * blockDim.x) {
        const int k = idx / grid.tiles, t = idx - k * grid.tiles;
        const TileEntries at = tile_entries<M>(layout, k, t);
        float e[N][N];
#pragma unroll
        for (int a = 0; a < N; ++a) {
#pragma unroll
            for (int b = 0; b < N; ++b) e[a][b] = m[at[N * a + b]];
        }
        float r[M][M];
        transform_2d<N, M, OutputTransform<M>>(e, r);
        const float add = bias != nullptr ? bias[k] : 0.0f;
        const TileSpot s = tile_spot<M>(grid, t);
        float* plane = out + (s.image * layout.rows + k) * grid.h * grid.w;
#pragma unroll
        for (int a = 0; a < M; ++a) {
            const int y = s.y0 + a;
            if (y >= grid.h) continue;
#pragma unroll
            for (int b = 0; b < M; ++b) {
                if (s.x0 + b < grid.w) plane[y * grid.w + s.x0 + b] = r[a][b] + add;
            }
        }
    }
}

// dm[ξ][k][t] = (A dy_t Aᵗ)[ξ], dy_t the M × M gradient tile of t in channel k of dy (N, channels, h, w),
// zero outside the map and for the padding tiles. One thread per (k, t), t fastest.
template <int M>
__global__ void gradient_transform_kernel(const float* dy, float* dm, TileGrid grid, TileLayout layout) {
    constexpr int N = M + 2;
    const int total = layout.rows * layout.padded_tiles;
    for (int idx = blockIdx.x * blockDim.x + threadIdx.x; idx < total; idx += gridDim.x * blockDim.x) {
        const int k = idx / layout.padded_tiles, t = idx - k * layout.padded_tiles;
        float e[M][M] = {};
        if (t < grid.tiles) {
            const TileSpot s = tile_spot<M>(grid, t);
            const float* plane = dy + (s.image * layout.rows + k) * grid.h * grid.w;
#pragma unroll
            for (int a = 0; a < M; ++a) {
#pragma unroll
                for (int b = 0; b < M; ++b) {
                    const int y = s.y0 + a, x = s.x0 + b;
                    if (y < grid.h && x < grid.w) e[a][b] = plane[y * grid.w + x];
                }
            }
        }
        float r[N][N];
        transform_2d<M, N, GradientTransform<M>>(e, r);
        const TileEntries at = tile_entries<M>(layout, k, t);
#pragma unroll
        for (int a = 0; a < N; ++a) {
#pragma unroll
            for (int b = 0; b < N; ++b) dm[at[N * a + b]] = r[a][b];
        }
    }
}

// dw[k][c] (OC, C, 3, 3) = Gᵗ dU G with dU[ξ] = Σ over chunks s, in order, of partials[s][ξ][k][c] (rows
// `pitch` floats apart). One thread per (k, c), c fastest (coalesced reads).
template <int M>
__global__ void filter_gradient_transform_kernel(const float* partials, float* dw, int rows, int cols,
                                                 int pitch, int chunks) {
    constexpr int N = M + 2;
    const int total = rows * cols, plane = rows * pitch;
    for (int idx = blockIdx.x * blockDim.x + threadIdx.x; idx < total; idx += gridDim.x * blockDim.x) {
        const int k = idx / cols, c = idx - k * cols;
        const float* in = partials + k * pitch + c;
        float du[N][N];
#pragma unroll
        for (int xi = 0; xi < kPositions<M>; ++xi) {
            float sum = in[xi * plane];
            for (int s = 1; s < chunks; ++s) sum += in[(s * kPositions<M> + xi) * plane];
            du[xi / N][xi % N] = sum;
        }
        float r[3][3];
        transform_2d<N, 3, FilterGradientTransform<M>>(du, r);
        float* out = dw + idx * 9;
#pragma unroll
        for (int a = 0; a < 3; ++a) {
#pragma unroll
            for (int b = 0; b < 3; ++b) out[a * 3 + b] = r[a][b];
        }
    }
}

}  // namespace kernels

namespace {

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

// m: the output tile's side.
int64_t tile_side(WinogradTile tile) {
    return tile == WinogradTile::f4x4 ? 4 : 2;
}
// (m + 2)²: the GEMMs of one direction (per chunk).
int64_t positions(WinogradTile tile) {
    const int64_t n = tile_side(tile) + 2;
    return n * n;
}

int64_t tiles_h(const Conv2dGeometry& g, WinogradTile tile) {
    return ceil_div(g.out_h, tile_side(tile));
}
int64_t tiles_w(const Conv2dGeometry& g, WinogradTile tile) {
    return ceil_div(g.out_w, tile_side(tile));
}
int64_t tile_count(const Conv2dGeometry& g, WinogradTile tile) {
    return g.batch * tiles_h(g, tile) * tiles_w(g, tile);
}

struct Chunks {
    int64_t chunk, count;
};

// Forward and backward-data: one chunk of all tiles.
Chunks single_chunk(const Conv2dGeometry& g, WinogradTile tile) {
    return {round_up(tile_count(g, tile), kPitchFloats), 1};
}

Chunks filter_chunks(const Conv2dGeometry& g, WinogradTile tile) {
    const int64_t tiles = tile_count(g, tile);
    const int64_t blocks_per_chunk =
        positions(tile) * ceil_div(g.out_channels, 128) * ceil_div(g.in_channels, 128);
    const int64_t wanted = std::clamp<int64_t>(kTargetBlocks / blocks_per_chunk, 1, kMaxChunks);
    const int64_t count = std::min(wanted, std::max<int64_t>(tiles / kMinChunk, 1));
    const int64_t chunk = round_up(ceil_div(tiles, count), kChunkMultiple);
    return {chunk, ceil_div(tiles, chunk)};
}

// The workspace of one direction: three parts, each 256-byte aligned. `filter` is U (positions × rows ×
// pitch) or backward-filter's partial dU (chunks × positions × OC × pitch); `in` the transformed input (or
// dy) tiles, `out` the transformed output (or gradient) tiles, positions × channels × padded tiles each.
struct Parts {
    int64_t filter, in, out;
    int64_t in_offset() const { return round_up(filter, kAlignFloats); }
    int64_t out_offset() const { return in_offset() + round_up(in, kAlignFloats); }
    int64_t total() const { return out_offset() + out; }
};

// Forward (in = C, out = OC) or backward-data (in = OC, out = C): U (positions × out × pitch(in)), V
// (positions × in × padded tiles), M (positions × out × padded tiles).
Parts pipeline_parts(const Conv2dGeometry& g, WinogradTile tile, int64_t in_channels, int64_t out_channels) {
    const int64_t padded = single_chunk(g, tile).chunk, p = positions(tile);
    return {p * out_channels * round_up(in_channels, kPitchFloats), p * in_channels * padded,
            p * out_channels * padded};
}

Parts forward_parts(const Conv2dGeometry& g, WinogradTile tile) {
    return pipeline_parts(g, tile, g.in_channels, g.out_channels);
}
Parts backward_data_parts(const Conv2dGeometry& g, WinogradTile tile) {
    return pipeline_parts(g, tile, g.out_channels, g.in_channels);
}
// Partial dU (chunks × positions × OC × pitch(C)), V (positions × C × padded tiles), dM (positions × OC ×
// padded tiles).
Parts backward_filter_parts(const Conv2dGeometry& g, WinogradTile tile) {
    const Chunks chunks = filter_chunks(g, tile);
    const int64_t padded = chunks.chunk * chunks.count, p = positions(tile);
    return {chunks.count * p * g.out_channels * round_up(g.in_channels, kPitchFloats),
            p * g.in_channels * padded, p * g.out_channels * padded};
}

int64_t workspace_floats(const Conv2dGeometry& g, WinogradTile tile) {
    return std::max({forward_parts(g, tile).total(), backward_data_parts(g, tile).total(),
                     backward_filter_parts(g, tile).total()});
}

TileGrid tile_grid(const Conv2dGeometry& g, WinogradTile tile) {
    auto i = [](int64_t v) { return static_cast<int>(v); };
    return {i(tile_count(g, tile)), i(tiles_h(g, tile)), i(tiles_w(g, tile)), i(g.out_h), i(g.out_w)};
}

TileLayout layout(int64_t rows, const Chunks& chunks) {
    return {static_cast<int>(rows), static_cast<int>(chunks.chunk),
            static_cast<int>(chunks.chunk * chunks.count)};
}

void check_geometry(const Conv2dGeometry& g, WinogradTile tile, const char* op) {
    const std::string why = conv2d_winograd_unsupported(g, tile);
    CUDACNN_CHECK(why.empty(), "{}: {}", op, why);
}

void check_pointers(std::initializer_list<const void*> pointers, const char* names, const char* op) {
    for (const void* p : pointers) {
        CUDACNN_CHECK(p != nullptr, "{}: {} must be device pointers, not null", op, names);
    }
}

// Returns the workspace as floats once it holds `floats`.
float* checked_workspace(const Conv2dGeometry& g, WinogradTile tile, void* workspace, size_t bytes,
                         int64_t floats, const char* op) {
    check_conv2d_workspace(op, g, workspace, bytes, floats * int64_t{sizeof(float)}, [&] {
        return fmt::format("conv2d_winograd_workspace_bytes(g, tile) bytes ({} for {})",
                           conv2d_winograd_workspace_bytes(g, tile), winograd_tile_name(tile));
    });
    return static_cast<float*>(workspace);
}

// The forward pipeline of F(M×M) on `in` (N, in_channels, H, W) → `out` (N, out_channels, H, W) (+ bias),
// with the filter w transformed as the forward's (OC, C) filter or, when `rotate`, as backward-data's
// rotated one.
template <int M>
void run_pipeline(const Conv2dGeometry& g, const float* in, int64_t in_channels, const float* w, bool rotate,
                  const float* bias, float* out, int64_t out_channels, float* workspace,
                  cudaStream_t stream) {
    constexpr WinogradTile tile = M == 4 ? WinogradTile::f4x4 : WinogradTile::f2x2;
    const Parts parts = pipeline_parts(g, tile, in_channels, out_channels);
    float* u = workspace;
    float* v = workspace + parts.in_offset();
    float* m = workspace + parts.out_offset();
    const Chunks chunks = single_chunk(g, tile);
    const int64_t pitch = round_up(in_channels, kPitchFloats), padded = chunks.chunk;
    const int64_t tiles = tile_count(g, tile);
    const TileGrid grid = tile_grid(g, tile);
    const dim3 block(kElementwiseBlock);

    launch(kernels::filter_transform_kernel<M>, elementwise_grid(out_channels * in_channels), block, 0,
           stream, w, u, static_cast<int>(out_channels), static_cast<int>(in_channels),
           static_cast<int>(pitch), rotate);
    launch(kernels::input_transform_kernel<M>, elementwise_grid(in_channels * padded), block, 0, stream, in,
           v, grid, layout(in_channels, chunks));
    // M[ξ] (out × T) = U[ξ] (out × in) · V[ξ] (in × T), one product per position.
    gemm_strided_batched(false, false, out_channels, tiles, in_channels, 1.0f, u, pitch, out_channels * pitch,
                         v, padded, in_channels * padded, 0.0f, m, padded, out_channels * padded,
                         kernels::kPositions<M>, stream);
    launch(kernels::output_transform_kernel<M>, elementwise_grid(out_channels * tiles), block, 0, stream, m,
           bias, out, grid, layout(out_channels, chunks));
}

template <int M>
void run_backward_filter(const Conv2dGeometry& g, const float* x, const float* dy, float* dw,
                         float* workspace, cudaStream_t stream) {
    constexpr WinogradTile tile = M == 4 ? WinogradTile::f4x4 : WinogradTile::f2x2;
    const Parts parts = backward_filter_parts(g, tile);
    float* partials = workspace;
    float* v = workspace + parts.in_offset();
    float* dm = workspace + parts.out_offset();
    const Chunks chunks = filter_chunks(g, tile);
    const int64_t padded = chunks.chunk * chunks.count, pitch = round_up(g.in_channels, kPitchFloats);
    const int64_t oc = g.out_channels, c = g.in_channels;
    const TileGrid grid = tile_grid(g, tile);
    const dim3 block(kElementwiseBlock);

    launch(kernels::input_transform_kernel<M>, elementwise_grid(c * padded), block, 0, stream, x, v, grid,
           layout(c, chunks));
    launch(kernels::gradient_transform_kernel<M>, elementwise_grid(oc * padded), block, 0, stream, dy, dm,
           grid, layout(oc, chunks));
    // Batch entry (s, ξ): partial dU (OC × C) = dM[s][ξ] (OC × chunk) · V[s][ξ]ᵗ (chunk × C); the padding
    // tiles hold zeros on both sides.
    gemm_strided_batched(false, true, oc, c, chunks.chunk, 1.0f, dm, chunks.chunk, oc * chunks.chunk, v,
                         chunks.chunk, c * chunks.chunk, 0.0f, partials, pitch, oc * pitch,
                         chunks.count * kernels::kPositions<M>, stream);
    launch(kernels::filter_gradient_transform_kernel<M>, elementwise_grid(oc * c), block, 0, stream, partials,
           dw, static_cast<int>(oc), static_cast<int>(c), static_cast<int>(pitch),
           static_cast<int>(chunks.count));
}

}  // namespace

const char* winograd_tile_name(WinogradTile tile) {
    return tile == WinogradTile::f4x4 ? "F(4×4, 3×3)" : "F(2×2, 3×3)";
}

std::string conv2d_winograd_unsupported(const Conv2dGeometry& g, WinogradTile tile) {
    std::string problem = conv2d_geometry_problem(g);
    if (!problem.empty()) return problem;
    const bool winograd_shape = g.kernel_h == 3 && g.kernel_w == 3 && g.stride_h == 1 && g.stride_w == 1 &&
                                g.dilation_h == 1 && g.dilation_w == 1 && g.pad_top == 1 &&
                                g.pad_bottom == 1 && g.pad_left == 1 && g.pad_right == 1;
    if (!winograd_shape) {
        return fmt::format(
            "conv2d_winograd: {} computes 3×3 kernels with stride 1, dilation 1 and padding 1 only, "
            "not geometry {}; use --conv-algo implicit or im2col for it",
            winograd_tile_name(tile), describe_conv2d_geometry(g));
    }
    if (g.groups != 1) {
        return fmt::format("conv2d_winograd: groups {} are not supported (only groups 1), geometry {}",
                           g.groups, describe_conv2d_geometry(g));
    }
    if (g.padding_mode != cpu::Conv2dPaddingMode::zeros) {
        return fmt::format("conv2d_winograd: padding_mode '{}' is not supported (only 'zeros'), geometry {}",
                           cpu::conv2d_padding_mode_name(g.padding_mode), describe_conv2d_geometry(g));
    }
    const int64_t largest =
        std::max({g.batch * g.in_channels * g.in_h * g.in_w, g.batch * g.out_channels * g.out_h * g.out_w,
                  workspace_floats(g, tile)});
    if (largest >= kMaxElements) {
        return fmt::format(
            "conv2d_winograd: geometry {} has a tensor (x, y or the workspace's transformed tiles of {}) "
            "of {} elements; the kernels index with 32 bits and take fewer than {}",
            describe_conv2d_geometry(g), winograd_tile_name(tile), largest, kMaxElements);
    }
    return {};
}

size_t conv2d_winograd_workspace_bytes(const Conv2dGeometry& g, WinogradTile tile) {
    check_geometry(g, tile, "conv2d_winograd_workspace_bytes");
    return static_cast<size_t>(workspace_floats(g, tile)) * sizeof(float);
}

void conv2d_winograd_forward(const Conv2dGeometry& g, const float* x, const float* w, const float* bias,
                             float* y, void* workspace, size_t workspace_bytes, cudaStream_t stream,
                             WinogradTile tile) {
    const char* op = "conv2d_winograd_forward";
    check_geometry(g, tile, op);
    check_pointers({x, w, y}, "x, w and y", op);
    float* ws = checked_workspace(g, tile, workspace, workspace_bytes, forward_parts(g, tile).total(), op);
    if (tile == WinogradTile::f4x4) {
        run_pipeline<4>(g, x, g.in_channels, w, false, bias, y, g.out_channels, ws, stream);
    } else {
        run_pipeline<2>(g, x, g.in_channels, w, false, bias, y, g.out_channels, ws, stream);
    }
}

void conv2d_winograd_backward_data(const Conv2dGeometry& g, const float* dy, const float* w, float* dx,
                                   void* workspace, size_t workspace_bytes, cudaStream_t stream,
                                   WinogradTile tile) {
    const char* op = "conv2d_winograd_backward_data";
    check_geometry(g, tile, op);
    check_pointers({dy, w, dx}, "dy, w and dx", op);
    float* ws =
        checked_workspace(g, tile, workspace, workspace_bytes, backward_data_parts(g, tile).total(), op);
    if (tile == WinogradTile::f4x4) {
        run_pipeline<4>(g, dy, g.out_channels, w, true, nullptr, dx, g.in_channels, ws, stream);
    } else {
        run_pipeline<2>(g, dy, g.out_channels, w, true, nullptr, dx, g.in_channels, ws, stream);
    }
}

void conv2d_winograd_backward_filter(const Conv2dGeometry& g, const float* x, const float* dy, float* dw,
                                     float* dbias, void* workspace, size_t workspace_bytes,
                                     cudaStream_t stream, WinogradTile tile) {
    const char* op = "conv2d_winograd_backward_filter";
    check_geometry(g, tile, op);
    check_pointers({x, dy, dw}, "x, dy and dw", op);
    float* ws =
        checked_workspace(g, tile, workspace, workspace_bytes, backward_filter_parts(g, tile).total(), op);
    if (tile == WinogradTile::f4x4) {
        run_backward_filter<4>(g, x, dy, dw, ws, stream);
    } else {
        run_backward_filter<2>(g, x, dy, dw, ws, stream);
    }
    if (dbias != nullptr) conv_bias_grad(dy, dbias, g.batch, g.out_channels, g.out_h, g.out_w, stream);
}

}  // namespace cudacnn::gpu
