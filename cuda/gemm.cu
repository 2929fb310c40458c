// The project's tiled SGEMM: warp-tiled block tiles from 128 × 128 (8 × 8 outputs per thread) down to
// 32 × 32, stepped through k in double-buffered slices of 16. The same kernel, templated on the storage of
// A and B (float or bf16, widened on load) and of C (float or bf16, rounded once on store), is the BF16
// GEMM's CUDA-core kernel; the BF16 entry points take the tensor-core one (cuda/gemm_bf16_tc.cu) where
// available.
#include "cuda/gemm.hpp"

#include <algorithm>
#include <climits>
#include <cstdint>
#include <type_traits>

#include "cuda/bf16.cuh"
#include "cuda/gemm_bf16_tc.hpp"
#include "cuda/gemm_common.hpp"
#include "cuda/launch.cuh"
#include "cudacnn/error.hpp"

namespace cudacnn::gpu {
namespace kernels {

constexpr int kGemmBlockK = 16;  // the same for every tiling, so that all pad k alike (see sgemm_kernel)
// Shared rows padded by 4 floats: the transposing stores of a non-contiguous operand then hit 2-way instead
// of 4-way bank conflicts, while every row still starts 16-byte aligned for the float4 reads.
constexpr int kGemmSmemPad = 4;
// The lanes of a warp as 4 rows × 8 columns of 4 × 4 output blocks: per k step a warp reads one float4 of
// op(A) per row group (broadcast to 8 lanes) and 8 consecutive float4 of op(B) (128 bytes, no conflicts),
// and writes 128 contiguous bytes of a C row per store.
constexpr int kLaneRows = 4, kLaneCols = 8;
constexpr int kMicro = 4;  // each lane's 4 × 4 output block, repeated kRepM × kRepN times per warp tile

// A block tile of kRows × kCols outputs computed by kWarpsM × kWarpsN warps. A warp tile is
// (16 · kRepM) × (32 · kRepN): each lane holds kRepM × kRepN blocks of 4 × 4 outputs, 16 rows and 32 columns
// apart (so the 8 × 8 register tile of the big tilings reads 2 + 2 float4 per k step for 64 FMAs).
template <int kRows, int kCols, int kWarpsM, int kWarpsN, int kRepM, int kRepN>
struct GemmTile {
    static constexpr int rows = kRows, cols = kCols, rep_m = kRepM, rep_n = kRepN;
    static constexpr int warp_rows = kLaneRows * kMicro * kRepM, warp_cols = kLaneCols * kMicro * kRepN;
    static constexpr int warps_n = kWarpsN;
    static constexpr int threads = 32 * kWarpsM * kWarpsN;
    static constexpr int groups_a = kRows * kGemmBlockK / 4 / threads;
    static constexpr int groups_b = kCols * kGemmBlockK / 4 / threads;
    static_assert(warp_rows * kWarpsM == kRows && warp_cols * kWarpsN == kCols,
                  "the warp tiles must cover the block tile");
    static_assert(groups_a * threads * 4 == kRows * kGemmBlockK &&
                      groups_b * threads * 4 == kCols * kGemmBlockK,
                  "the slices must split evenly into groups of 4 per thread");
    static_assert(2 * kGemmBlockK * (kRows + kCols + 2 * kGemmSmemPad) * sizeof(float) <= 48 * 1024,
                  "static shared memory is limited to 48 KiB");
};
// 8 × 8 outputs per thread: the workhorses for products that fill the GPU.
using Tile128x128 = GemmTile<128, 128, 4, 2, 2, 2>;  // 256 threads, warp tile 32 × 64
using Tile128x64 = GemmTile<128, 64, 4, 1, 2, 2>;    // 128 threads, for n ≤ 64 (conv layers on 8 × 8 maps)
using Tile64x128 = GemmTile<64, 128, 2, 2, 2, 2>;    // 128 threads, for m ≤ 64 (64-channel conv layers)
// 4 × 8 outputs per thread, for m ≤ 32 (32-channel conv layers).
using Tile32x128 = GemmTile<32, 128, 2, 2, 1, 2>;  // 128 threads, warp tile 16 × 64
// 4 × 4 outputs per thread, for products too small to fill the GPU with bigger tiles.
using Tile64x64 = GemmTile<64, 64, 4, 2, 1, 1>;  // 256 threads, warp tile 16 × 32
using Tile32x32 = GemmTile<32, 32, 2, 1, 1, 1>;  // 64 threads

// The epilogue's bias (n, float, or nullptr): beta · C's place (the bf16 linear layer's bias, see
// gemm_bf16_split). Only the BF16 GEMM has the field: one more field in the FP32 kernel's parameters, even
// unused, changes ptxas's register allocation of that kernel (measured for sm_90: 205 → 165 registers at
// 128 × 128), and the FP32 kernel is to stay as it was.
template <bool kHasBias>
struct GemmBias {
    const float* bias;
    __device__ __host__ const float* bias_ptr() const { return bias; }
};
template <>
struct GemmBias<false> {
    __device__ __host__ const float* bias_ptr() const { return nullptr; }
};

// Everything a launch needs, by value. TIn is A's and B's storage, TOut C's (float, or bf16 for the BF16
// GEMM). vec_* says the operand's pointer, leading dimension and batch stride keep every group of 4
// contiguous elements at a multiple of 4 aligned to the group (16 bytes of float, 8 of bf16), so vector
// accesses are legal.
template <class TIn, class TOut>
struct GemmParams : GemmBias<!std::is_same<TIn, float>::value> {
    int64_t m, n, k;
    float alpha, beta;
    const TIn* a;
    int64_t lda, stride_a;
    const TIn* b;
    int64_t ldb, stride_b;
    TOut* c;
    int64_t ldc, stride_c;
    int64_t batch;
    int64_t tiles_n;  // column tiles per matrix: blockIdx.x = tile_row · tiles_n + tile_col
    bool vec_a, vec_b, vec_c;
};

// load_quad / store_quad (cuda/bf16.cuh) move 4 consecutive elements of a group-aligned address
// (GemmParams::vec_*).

// One thread's part in staging an operand op(X) (rows_op × k) slice by slice: kGroups groups of 4 elements
// that run along X's contiguous dimension, group i being number g = threadIdx.x + i · kThreads of the slice.
// Untransposed, X is stored (rows_op, k): g takes row g / 4 and k-quad g % 4. Transposed, X is stored
// (k, rows_op): g takes k-row g / (kRows / 4) and row-quad g % (kRows / 4). Consecutive threads thus read
// consecutive addresses, and group i + 1 lies kStride stored rows below group i. Elements outside the matrix
// read as 0, so the product of edge tiles needs no further guards. One pointer that moves a slice per load
// and two counters keep the per-slice cost (and the registers) low. T is X's storage; loads widen it to float
// (exactly), so the shared slices and the products are the float kernel's.
template <bool kTrans, int kRows, int kThreads, int kGroups, class T>
struct SliceLoader {
    static constexpr int kQuads = kTrans ? kRows / 4 : kGemmBlockK / 4;  // groups per stored row of a slice
    static constexpr int kStride = kThreads / kQuads;
    static_assert(kStride * kQuads == kThreads, "every group of a thread must start in the same quad");

    const T* next;       // group 0's first element in the next slice
    int64_t k_left;      // k minus group 0's k index in the next slice
    int64_t width_left;  // untransposed: rows_op minus group 0's row; transposed: rows_op minus its column
    bool vec;            // vector loads of 4 elements are aligned

    __device__ SliceLoader(const T* x, int64_t ld, int64_t rows_op, int64_t k, int64_t row0, bool vec_)
        : vec(vec_) {
        const int quad = threadIdx.x % kQuads, stored_row = threadIdx.x / kQuads;
        if (kTrans) {
            next = x + stored_row * ld + row0 + quad * 4;
            k_left = k - stored_row;
            width_left = rows_op - row0 - quad * 4;
        } else {
            next = x + (row0 + stored_row) * ld + quad * 4;
            k_left = k - quad * 4;
            width_left = rows_op - row0 - stored_row;
        }
    }

    // Loads the next slice into r and moves on to the one after (ld is X's leading dimension).
    __device__ void load(int64_t ld, float (&r)[kGroups][4]) {
        // Untransposed, the groups share k and differ in row; transposed, the other way round.
        const int64_t run_left = kTrans ? width_left : k_left;  // elements left in a group's row
        const int64_t rows_left = kTrans ? k_left : width_left;
#pragma unroll
        for (int i = 0; i < kGroups; ++i) {
            const T* src = next + i * kStride * ld;
            if (rows_left <= i * kStride) {
                r[i][0] = r[i][1] = r[i][2] = r[i][3] = 0.0f;
            } else if (vec && run_left >= 4) {
                load_quad(src, r[i]);
            } else {
#pragma unroll
                for (int j = 0; j < 4; ++j) r[i][j] = j < run_left ? to_float(src[j]) : 0.0f;
            }
        }
        next += kTrans ? kGemmBlockK * ld : kGemmBlockK;
        k_left -= kGemmBlockK;
    }
};

// Stores the groups loaded by SliceLoader into the k-major shared slice s[kk][row]: the layout the inner
// product reads runs of 4 consecutive outputs from.
template <bool kTrans, int kRows, int kThreads, int kGroups>
__device__ inline void store_operand(float (&s)[kGemmBlockK][kRows + kGemmSmemPad],
                                     const float (&r)[kGroups][4]) {
#pragma unroll
    for (int i = 0; i < kGroups; ++i) {
        const int g = threadIdx.x + i * kThreads;
        if (kTrans) {
            *reinterpret_cast<float4*>(&s[g / (kRows / 4)][(g % (kRows / 4)) * 4]) =
                make_float4(r[i][0], r[i][1], r[i][2], r[i][3]);
        } else {
#pragma unroll
            for (int j = 0; j < 4; ++j) s[(g % 4) * 4 + j][g / 4] = r[i][j];
        }
    }
}

// alpha · sum + beta · old with one explicit rounding order, so that every path (float4 or scalar stores, the
// split-k sum) gives the same bits: nvcc would otherwise fuse either product into the addition.
__device__ inline float scale_add(float alpha, float sum, float beta, float old) {
    return __fmaf_rn(beta, old, alpha * sum);
}

// Writes alpha · acc + beta · C for one row of 4 outputs, each rounded once to T (C's storage; a bf16 C is
// read widened); beta == 0 never reads C. A non-null `bias` (this row's 4 columns of it) takes beta · C's
// place as beta 1 on a C holding the bias would: fmaf(1, bias, alpha · acc), C not read.
template <class T>
__device__ inline void store_row(T* dst, int64_t col, int64_t n, bool vec, float alpha, float beta,
                                 const float* bias, const float* acc) {
    if (bias != nullptr) {
        float out[4];
#pragma unroll
        for (int j = 0; j < 4; ++j) out[j] = col + j < n ? scale_add(alpha, acc[j], 1.0f, bias[j]) : 0.0f;
        if (vec && col + 3 < n) {
            store_quad(dst, out);
            return;
        }
#pragma unroll
        for (int j = 0; j < 4; ++j) {
            if (col + j < n) dst[j] = from_float<T>(out[j]);
        }
        return;
    }
    if (vec && col + 3 < n) {
        float out[4] = {alpha * acc[0], alpha * acc[1], alpha * acc[2], alpha * acc[3]};
        if (beta != 0.0f) {
            float old[4];
            load_quad(dst, old);
#pragma unroll
            for (int j = 0; j < 4; ++j) out[j] = scale_add(alpha, acc[j], beta, old[j]);
        }
        store_quad(dst, out);
        return;
    }
#pragma unroll
    for (int j = 0; j < 4; ++j) {
        if (col + j < n) {
            dst[j] = from_float<T>(beta == 0.0f ? alpha * acc[j]
                                                : scale_add(alpha, acc[j], beta, to_float(dst[j])));
        }
    }
}

// Copies 4 consecutive floats of a k-major shared row into registers with one float4 read.
__device__ inline void read_quad(const float* s, float* r) {
    const float4 v = *reinterpret_cast<const float4*>(s);
    r[0] = v.x, r[1] = v.y, r[2] = v.z, r[3] = v.w;
}

// acc += the products of k steps kFrom … kTo − 1 of the shared slices, in k order: per step, the lane's
// rep_m + rep_n float4 runs of op(A)ᵀ and op(B), then their outer product.
template <class Tile, int kFrom, int kTo, int kRowsT, int kColsT>
__device__ inline void multiply_slice(const float (&a_slice)[kGemmBlockK][Tile::rows + kGemmSmemPad],
                                      const float (&b_slice)[kGemmBlockK][Tile::cols + kGemmSmemPad], int ty,
                                      int tx, float (&acc)[kRowsT][kColsT]) {
#pragma unroll
    for (int kk = kFrom; kk < kTo; ++kk) {
        float a_reg[kRowsT], b_reg[kColsT];
#pragma unroll
        for (int r = 0; r < Tile::rep_m; ++r)
            read_quad(&a_slice[kk][ty + r * kLaneRows * kMicro], &a_reg[r * kMicro]);
#pragma unroll
        for (int c = 0; c < Tile::rep_n; ++c)
            read_quad(&b_slice[kk][tx + c * kLaneCols * kMicro], &b_reg[c * kMicro]);
#pragma unroll
        for (int i = 0; i < kRowsT; ++i) {
#pragma unroll
            for (int j = 0; j < kColsT; ++j) acc[i][j] += a_reg[i] * b_reg[j];  // one FMA under nvcc
        }
    }
}

// One block computes one Tile::rows × Tile::cols tile of C for every batch entry blockIdx.y, + gridDim.y, …
// Warp w owns the warp tile (w / warps_n, w % warps_n); lane (ly, lx) of it owns, for each repeat (r, c),
// rows 16·r + 4·ly … + 3 and columns 32·c + 4·lx … + 3 of the warp tile.
// Pipeline, one barrier per k-slice: the slices are double-buffered in shared memory; while slice t is
// multiplied out of buffer t % 2, slice t + 1 is loaded from global memory into registers (its latency
// hidden by the FMAs) and then stored into the other buffer, which everyone finished reading before the
// barrier that ended step t − 1.
// Every element sums its k products in order 0 … k − 1, and zeros past the edges (k rounded up to the same
// slice length for every tiling) add the same +0 terms, so all tilings give the same bits.
// TIn = bf16: the operands are widened as they are loaded and everything after is the float kernel's; the
// product of two bf16 (8 significant bits each) is exact in float, so each FMA rounds only the sum, and the
// result is bit for bit the float kernel's on the widened operands (before a bf16 C's own rounding).
template <class Tile, bool kTransA, bool kTransB, class TIn, class TOut>
// __launch_bounds__(threads, 1) lets ptxas use up to 255 registers: an 8 × 8 tile takes ~200 – 230 for sm_90
// without spills (capped at 128 or 168 it spills), i.e. 8 resident warps per SM, whose 64 independent FMAs
// per k step keep the FMA pipes busy.
__global__ void __launch_bounds__(Tile::threads, 1) sgemm_kernel(GemmParams<TIn, TOut> p) {
    constexpr int kThreads = Tile::threads, kGroupsA = Tile::groups_a, kGroupsB = Tile::groups_b;
    constexpr int kRowsT = kMicro * Tile::rep_m, kColsT = kMicro * Tile::rep_n;  // outputs per thread
    __shared__ __align__(16) float a_slices[2][kGemmBlockK][Tile::rows + kGemmSmemPad];  // op(A)ᵀ slices
    __shared__ __align__(16) float b_slices[2][kGemmBlockK][Tile::cols + kGemmSmemPad];  // op(B) slices
    const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
    // This lane's first row and column inside the block tile.
    const int ty = (warp / Tile::warps_n) * Tile::warp_rows + (lane / kLaneCols) * kMicro;
    const int tx = (warp % Tile::warps_n) * Tile::warp_cols + (lane % kLaneCols) * kMicro;
    const int64_t row0 = (blockIdx.x / p.tiles_n) * int64_t{Tile::rows};
    const int64_t col0 = (blockIdx.x % p.tiles_n) * int64_t{Tile::cols};

    for (int64_t z = blockIdx.y; z < p.batch; z += gridDim.y) {
        float acc[kRowsT][kColsT] = {};
        float ra[kGroupsA][4], rb[kGroupsB][4];
        // op(B) is (k, n): as an operand of the loader (rows_op = n), it is stored transposed exactly when B
        // is not.
        SliceLoader<kTransA, Tile::rows, kThreads, kGroupsA, TIn> a_loader(p.a + z * p.stride_a, p.lda, p.m,
                                                                           p.k, row0, p.vec_a);
        SliceLoader<!kTransB, Tile::cols, kThreads, kGroupsB, TIn> b_loader(p.b + z * p.stride_b, p.ldb, p.n,
                                                                            p.k, col0, p.vec_b);
        a_loader.load(p.lda, ra);
        b_loader.load(p.ldb, rb);
        store_operand<kTransA, Tile::rows, kThreads>(a_slices[0], ra);
        store_operand<!kTransB, Tile::cols, kThreads>(b_slices[0], rb);
        __syncthreads();  // slice 0 is complete
        int buf = 0;
        for (int64_t k0 = 0; k0 < p.k; k0 += kGemmBlockK, buf ^= 1) {
            // The next slice's A is in flight during the first half of this one's FMAs, its B during the
            // second: half the staging registers of loading both at once.
            const bool more = k0 + kGemmBlockK < p.k;
            if (more) a_loader.load(p.lda, ra);
            multiply_slice<Tile, 0, kGemmBlockK / 2>(a_slices[buf], b_slices[buf], ty, tx, acc);
            if (more) {
                store_operand<kTransA, Tile::rows, kThreads>(a_slices[buf ^ 1], ra);
                b_loader.load(p.ldb, rb);
            }
            multiply_slice<Tile, kGemmBlockK / 2, kGemmBlockK>(a_slices[buf], b_slices[buf], ty, tx, acc);
            if (more) store_operand<!kTransB, Tile::cols, kThreads>(b_slices[buf ^ 1], rb);
            // The next slice is complete, and everyone is done with this one's buffer, which the next step
            // overwrites (or, after the last slice, the next batch entry's slice 0).
            __syncthreads();
        }
        TOut* c = p.c + z * p.stride_c;
#pragma unroll
        for (int r = 0; r < Tile::rep_m; ++r) {
#pragma unroll
            for (int i = 0; i < kMicro; ++i) {
                const int64_t row = row0 + ty + r * kLaneRows * kMicro + i;
                if (row >= p.m) continue;
#pragma unroll
                for (int cr = 0; cr < Tile::rep_n; ++cr) {
                    const int64_t col = col0 + tx + cr * kLaneCols * kMicro;
                    store_row(c + row * p.ldc + col, col, p.n, p.vec_c, p.alpha, p.beta,
                              p.bias_ptr() != nullptr ? p.bias_ptr() + col : nullptr,
                              &acc[r * kMicro + i][cr * kMicro]);
                }
            }
        }
    }
}

}  // namespace kernels

namespace {


// The tilings `automatic` chooses from, biggest tile first (64 × 128 ahead of 128 × 64: its C rows are
// written in longer runs).
struct TilingShape {
    GemmTiling tiling;
    int64_t rows, cols;
};
constexpr TilingShape kTilingShapes[] = {
    {GemmTiling::block128x128, 128, 128}, {GemmTiling::block64x128, 64, 128},
    {GemmTiling::block128x64, 128, 64},   {GemmTiling::block32x128, 32, 128},
    {GemmTiling::large, 64, 64},          {GemmTiling::small, 32, 32}};

// One block for each of the 132 SMs of an H100: below this, SMs would idle for the whole product.
constexpr int64_t kMinBlocks = 132;
// A tile is skipped when its padding makes the computed area exceed the tightest tiling's by more than 25%
// (a 128-row tile on a 64-row product computes twice the outputs).
constexpr double kMaxPaddingRatio = 1.25;


// The rule: the biggest tile (the most FMAs per shared-memory read, the fewest operand reloads) that
// fits the product's shape without much padding and still gives every SM of an H100 at least one block
// (with 132 – 264 blocks of 128 × 128, every SM gets 1 – 2 blocks, all resident at once: one wave). If no
// tile does, the smallest one, which spreads the product over the most SMs (split-k would be the next step:
// see the report of issue 11).
GemmTiling choose_tiling(int64_t m, int64_t n, int64_t batch) {
    const auto computed = [&](const TilingShape& s) {
        return ceil_div(m, s.rows) * s.rows * ceil_div(n, s.cols) * s.cols;
    };
    int64_t tightest = computed(kTilingShapes[0]);
    for (const TilingShape& s : kTilingShapes) tightest = std::min(tightest, computed(s));
    for (const TilingShape& s : kTilingShapes) {
        if (static_cast<double>(computed(s)) > kMaxPaddingRatio * static_cast<double>(tightest)) continue;
        if (ceil_div(m, s.rows) * ceil_div(n, s.cols) * batch >= kMinBlocks) return s.tiling;
    }
    return GemmTiling::small;
}

template <class Tile, class TIn, class TOut>
void launch_tiled(const char* op, bool trans_a, bool trans_b, kernels::GemmParams<TIn, TOut> p,
                  cudaStream_t stream) {
    p.tiles_n = (p.n + Tile::cols - 1) / Tile::cols;
    const int64_t tiles = (p.m + Tile::rows - 1) / Tile::rows * p.tiles_n;
    CUDACNN_CHECK(tiles <= INT_MAX, "{}: {} × {} needs {} tiles of {} × {}, more than one grid holds", op,
                  p.m, p.n, tiles, Tile::rows, Tile::cols);
    const dim3 grid(static_cast<unsigned>(tiles), static_cast<unsigned>(std::min(p.batch, kGemmMaxGridY)));
    const dim3 block(Tile::threads);
    if (!trans_a && !trans_b)
        launch(kernels::sgemm_kernel<Tile, false, false, TIn, TOut>, grid, block, 0, stream, p);
    if (!trans_a && trans_b)
        launch(kernels::sgemm_kernel<Tile, false, true, TIn, TOut>, grid, block, 0, stream, p);
    if (trans_a && !trans_b)
        launch(kernels::sgemm_kernel<Tile, true, false, TIn, TOut>, grid, block, 0, stream, p);
    if (trans_a && trans_b)
        launch(kernels::sgemm_kernel<Tile, true, true, TIn, TOut>, grid, block, 0, stream, p);
}

template <class TIn, class TOut>
void launch_sgemm(const char* op, GemmTiling tiling, bool trans_a, bool trans_b,
                  const kernels::GemmParams<TIn, TOut>& p, cudaStream_t stream) {
    if (tiling == GemmTiling::automatic) tiling = choose_tiling(p.m, p.n, p.batch);
    switch (tiling) {
        case GemmTiling::block128x128:
            return launch_tiled<kernels::Tile128x128>(op, trans_a, trans_b, p, stream);
        case GemmTiling::block64x128:
            return launch_tiled<kernels::Tile64x128>(op, trans_a, trans_b, p, stream);
        case GemmTiling::block128x64:
            return launch_tiled<kernels::Tile128x64>(op, trans_a, trans_b, p, stream);
        case GemmTiling::block32x128:
            return launch_tiled<kernels::Tile32x128>(op, trans_a, trans_b, p, stream);
        case GemmTiling::large:
            return launch_tiled<kernels::Tile64x64>(op, trans_a, trans_b, p, stream);
        case GemmTiling::small:
        case GemmTiling::automatic:
            break;
    }
    launch_tiled<kernels::Tile32x32>(op, trans_a, trans_b, p, stream);
}

// C = beta · C (or the bias rows) for k == 0 or alpha == 0: the float GEMM's own path, or the bias-aware one.
void scale_c(int64_t m, int64_t n, float beta, const float* bias, float* c, int64_t ldc, int64_t stride_c,
             int64_t batch, cudaStream_t stream) {
    if (bias == nullptr) return gemm_scale(m, n, beta, c, ldc, stride_c, batch, stream);
    gemm_scale(m, n, beta, bias, c, ldc, stride_c, batch, stream);
}
void scale_c(int64_t m, int64_t n, float beta, const float* bias, bf16* c, int64_t ldc, int64_t stride_c,
             int64_t batch, cudaStream_t stream) {
    gemm_scale(m, n, beta, bias, c, ldc, stride_c, batch, stream);
}

// The batched product behind every entry point, float (TIn = TOut = float) or BF16; op names the caller in
// errors. bias: see GemmBias (nullptr but for gemm_bf16_split).
template <class TIn, class TOut>
void sgemm_impl(const char* op, GemmTiling tiling, bool trans_a, bool trans_b, int64_t m, int64_t n,
                int64_t k, float alpha, const TIn* a, int64_t lda, int64_t stride_a, const TIn* b,
                int64_t ldb, int64_t stride_b, float beta, const float* bias, TOut* c, int64_t ldc,
                int64_t stride_c, int64_t batch, cudaStream_t stream) {
    check_gemm_args(op, trans_a, trans_b, m, n, k, alpha, a, lda, stride_a, b, ldb, stride_b, c, ldc,
                    stride_c, batch);
    if (m == 0 || n == 0 || batch == 0) return;
    if (k == 0 || alpha == 0.0f) {
        scale_c(m, n, beta, bias, c, ldc, stride_c, batch, stream);
        return;
    }
    kernels::GemmParams<TIn, TOut> p{};
    p.m = m, p.n = n, p.k = k, p.alpha = alpha, p.beta = beta;
    p.a = a, p.lda = lda, p.stride_a = stride_a;
    p.b = b, p.ldb = ldb, p.stride_b = stride_b;
    p.c = c, p.ldc = ldc, p.stride_c = stride_c;
    if constexpr (std::is_same<TIn, float>::value) {
        CUDACNN_CHECK(bias == nullptr, "{}: the FP32 GEMM has no bias epilogue", op);
    } else {
        p.bias = bias;
    }
    p.batch = batch;
    p.vec_a = gemm_vectorizable(a, lda, stride_a, batch, sizeof(TIn));
    p.vec_b = gemm_vectorizable(b, ldb, stride_b, batch, sizeof(TIn));
    p.vec_c = gemm_vectorizable(c, ldc, stride_c, batch, sizeof(TOut));
    launch_sgemm(op, tiling, trans_a, trans_b, p, stream);
}

// Each split should multiply at least this many k (16 slices: the pipeline's prologue and the partial's
// write and read stay small next to its FMAs).
constexpr int64_t kMinSplitLength = 256;

}  // namespace

void sgemm_strided_batched(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, float alpha,
                           const float* a, int64_t lda, int64_t stride_a, const float* b, int64_t ldb,
                           int64_t stride_b, float beta, float* c, int64_t ldc, int64_t stride_c,
                           int64_t batch, cudaStream_t stream) {
    sgemm_impl<float, float>("sgemm_strided_batched", GemmTiling::automatic, trans_a, trans_b, m, n, k, alpha,
                             a, lda, stride_a, b, ldb, stride_b, beta, nullptr, c, ldc, stride_c, batch,
                             stream);
}

void sgemm(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, float alpha, const float* a,
           int64_t lda, const float* b, int64_t ldb, float beta, float* c, int64_t ldc, cudaStream_t stream) {
    sgemm_impl<float, float>("sgemm", GemmTiling::automatic, trans_a, trans_b, m, n, k, alpha, a, lda, 0, b,
                             ldb, 0, beta, nullptr, c, ldc, 0, 1, stream);
}

GemmTiling sgemm_automatic_tiling(int64_t m, int64_t n, int64_t batch) {
    return choose_tiling(m, n, batch);
}

void sgemm_strided_batched_with_tiling(GemmTiling tiling, bool trans_a, bool trans_b, int64_t m, int64_t n,
                                       int64_t k, float alpha, const float* a, int64_t lda, int64_t stride_a,
                                       const float* b, int64_t ldb, int64_t stride_b, float beta, float* c,
                                       int64_t ldc, int64_t stride_c, int64_t batch, cudaStream_t stream) {
    sgemm_impl<float, float>("sgemm_strided_batched", tiling, trans_a, trans_b, m, n, k, alpha, a, lda,
                             stride_a, b, ldb, stride_b, beta, nullptr, c, ldc, stride_c, batch, stream);
}

int64_t sgemm_split_k_count(int64_t m, int64_t n, int64_t k) {
    if (m <= 0 || n <= 0 || k <= 0) return 1;
    // The tiles of the tiling a product with plenty of blocks would get (the biggest that fits the shape).
    const GemmTiling tiling = choose_tiling(m, n, kMinBlocks);
    int64_t tiles = 0;
    for (const TilingShape& s : kTilingShapes) {
        if (s.tiling == tiling) tiles = ceil_div(m, s.rows) * ceil_div(n, s.cols);
    }
    if (tiles >= kMinBlocks) return 1;
    return std::clamp<int64_t>(ceil_div(kMinBlocks, tiles), 1, std::max<int64_t>(k / kMinSplitLength, 1));
}

size_t sgemm_split_k_workspace_bytes(int64_t m, int64_t n, int64_t k, int64_t splits) {
    return gemm_split_k_workspace_bytes("sgemm_split_k_workspace_bytes", m, n, k, splits, kernels::kGemmBlockK);
}

namespace {

// Split-k's first pass on the tiled kernel (a GemmRangeProduct for TIn = float, GemmRangeProductBf16 for
// bf16): the full-length ranges of k are one strided batch, a shorter last one another launch.
template <class TIn>
auto range_product(const char* op, bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t lda, int64_t ldb,
                   cudaStream_t stream) {
    return [=](int64_t k_len, int64_t k_last, const TIn* a_s, int64_t stride_a, const TIn* b_s,
               int64_t stride_b, float* c_s, int64_t batch) {
        const int64_t full = k_last == k_len ? batch : batch - 1;
        if (full > 0) {
            sgemm_impl(op, GemmTiling::automatic, trans_a, trans_b, m, n, k_len, 1.0f, a_s, lda, stride_a,
                       b_s, ldb, stride_b, 0.0f, nullptr, c_s, n, m * n, full, stream);
        }
        if (full < batch) {
            sgemm_impl(op, GemmTiling::automatic, trans_a, trans_b, m, n, k_last, 1.0f, a_s + full * stride_a,
                       lda, 0, b_s + full * stride_b, ldb, 0, 0.0f, nullptr, c_s + full * m * n, n, 0, 1,
                       stream);
        }
    };
}

}  // namespace

void sgemm_split_k(int64_t splits, bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, float alpha,
                   const float* a, int64_t lda, const float* b, int64_t ldb, float beta, float* c, int64_t ldc,
                   void* workspace, size_t workspace_bytes, cudaStream_t stream) {
    constexpr const char* op = "sgemm_split_k";
    // Ranges in multiples of the slice length, so that every range starts 16-byte aligned where the operand is.
    gemm_split_k(op, "sgemm_split_k_workspace_bytes", splits, kernels::kGemmBlockK, trans_a, trans_b, m, n, k,
                 alpha, a, lda, b, ldb, beta, c, ldc, workspace, workspace_bytes, stream,
                 range_product<float>(op, trans_a, trans_b, m, n, lda, ldb, stream));
}

// ---- BF16 operands: the tensor-core kernel (cuda/gemm_bf16_tc.cu) where available, else the same kernels
// instantiated for bf16 A and B, float or bf16 C ----

namespace {

// Whether `kernel` runs on tensor cores here; throws Error naming `op` when tensor_cores is asked for where
// they are unavailable.
bool use_tensor_cores(const char* op, Bf16GemmKernel kernel) {
    if (kernel == Bf16GemmKernel::cuda_cores) return false;
    const bool available = bf16_tensor_cores_available();
    CUDACNN_CHECK(
        available || kernel == Bf16GemmKernel::automatic,
        "{}: the tensor-core kernel needs a build with CUDACNN_TENSOR_CORES on and a GPU of compute "
        "capability 8.0 or more; use Bf16GemmKernel::automatic or cuda_cores",
        op);
    return available;
}

// The batched bf16 product on `kernel` (tiling: the CUDA-core kernel's block tile); bias as in sgemm_impl.
template <class TOut>
void bf16_impl(const char* op, Bf16GemmKernel kernel, GemmTiling tiling, bool trans_a, bool trans_b,
               int64_t m, int64_t n, int64_t k, float alpha, const bf16* a, int64_t lda, int64_t stride_a,
               const bf16* b, int64_t ldb, int64_t stride_b, float beta, const float* bias, TOut* c,
               int64_t ldc, int64_t stride_c, int64_t batch, cudaStream_t stream) {
    if (use_tensor_cores(op, kernel)) {
        return gemm_bf16_tensor_cores(op, Bf16TcTiling::automatic, trans_a, trans_b, m, n, k, alpha, a, lda,
                                      stride_a, b, ldb, stride_b, beta, bias, c, ldc, stride_c, batch, k,
                                      stream);
    }
    sgemm_impl(op, tiling, trans_a, trans_b, m, n, k, alpha, a, lda, stride_a, b, ldb, stride_b, beta, bias,
               c, ldc, stride_c, batch, stream);
}

template <class TOut>
void bf16_split_k_impl(const char* op, Bf16GemmKernel kernel, int64_t splits, bool trans_a, bool trans_b,
                       int64_t m, int64_t n, int64_t k, float alpha, const bf16* a, int64_t lda,
                       const bf16* b, int64_t ldb, float beta, const float* bias, TOut* c, int64_t ldc,
                       void* workspace, size_t workspace_bytes, cudaStream_t stream) {
    // The partial products are float, as sgemm_split_k's: its workspace size is this one's. Both kernels cut
    // k into the same ranges (multiples of the CUDA-core slice, which the tensor-core kernel's slices pad).
    if (use_tensor_cores(op, kernel)) {
        const auto product = [&](int64_t k_len, int64_t k_last, const bf16* a_s, int64_t stride_a,
                                 const bf16* b_s, int64_t stride_b, float* c_s, int64_t batch) {
            // Every range in one launch, the shorter last one included.
            gemm_bf16_tensor_cores(op, Bf16TcTiling::automatic, trans_a, trans_b, m, n, k_len, 1.0f, a_s, lda,
                                   stride_a, b_s, ldb, stride_b, 0.0f, nullptr, c_s, n, m * n, batch, k_last,
                                   stream);
        };
        return gemm_split_k(op, "sgemm_split_k_workspace_bytes", splits, kernels::kGemmBlockK, trans_a,
                            trans_b, m, n, k, alpha, a, lda, b, ldb, beta, bias, c, ldc, workspace,
                            workspace_bytes, stream, product);
    }
    gemm_split_k(op, "sgemm_split_k_workspace_bytes", splits, kernels::kGemmBlockK, trans_a, trans_b, m, n, k,
                 alpha, a, lda, b, ldb, beta, bias, c, ldc, workspace, workspace_bytes, stream,
                 range_product<bf16>(op, trans_a, trans_b, m, n, lda, ldb, stream));
}

// gemm_bf16_split for either C: split-k where the own FP32 GEMM would split and the workspace holds it (the
// same rule on either kernel, so that gemm_bf16_split_workspace_bytes sizes both).
template <class TOut>
void bf16_split_impl(Bf16GemmKernel kernel, bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k,
                     float alpha, const bf16* a, int64_t lda, const bf16* b, int64_t ldb, const float* bias,
                     TOut* c, int64_t ldc, void* workspace, size_t workspace_bytes, cudaStream_t stream) {
    constexpr const char* op = "gemm_bf16_split";
    const int64_t splits = sgemm_split_k_count(m, n, k);
    if (splits > 1 && workspace != nullptr &&
        workspace_bytes >= sgemm_split_k_workspace_bytes(m, n, k, splits)) {
        return bf16_split_k_impl(op, kernel, splits, trans_a, trans_b, m, n, k, alpha, a, lda, b, ldb, 0.0f,
                                 bias, c, ldc, workspace, workspace_bytes, stream);
    }
    bf16_impl(op, kernel, GemmTiling::automatic, trans_a, trans_b, m, n, k, alpha, a, lda, 0, b, ldb, 0, 0.0f,
              bias, c, ldc, 0, 1, stream);
}

}  // namespace

void gemm_bf16(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, float alpha, const bf16* a,
               int64_t lda, const bf16* b, int64_t ldb, float beta, float* c, int64_t ldc,
               cudaStream_t stream) {
    bf16_impl("gemm_bf16", Bf16GemmKernel::automatic, GemmTiling::automatic, trans_a, trans_b, m, n, k, alpha,
              a, lda, 0, b, ldb, 0, beta, nullptr, c, ldc, 0, 1, stream);
}

void gemm_bf16(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, float alpha, const bf16* a,
               int64_t lda, const bf16* b, int64_t ldb, float beta, bf16* c, int64_t ldc,
               cudaStream_t stream) {
    bf16_impl("gemm_bf16", Bf16GemmKernel::automatic, GemmTiling::automatic, trans_a, trans_b, m, n, k, alpha,
              a, lda, 0, b, ldb, 0, beta, nullptr, c, ldc, 0, 1, stream);
}

void gemm_bf16_strided_batched_with_kernel(Bf16GemmKernel kernel, bool trans_a, bool trans_b, int64_t m,
                                           int64_t n, int64_t k, float alpha, const bf16* a, int64_t lda,
                                           int64_t stride_a, const bf16* b, int64_t ldb, int64_t stride_b,
                                           float beta, float* c, int64_t ldc, int64_t stride_c, int64_t batch,
                                           cudaStream_t stream) {
    bf16_impl("gemm_bf16_strided_batched", kernel, GemmTiling::automatic, trans_a, trans_b, m, n, k, alpha, a,
              lda, stride_a, b, ldb, stride_b, beta, nullptr, c, ldc, stride_c, batch, stream);
}

void gemm_bf16_strided_batched_with_kernel(Bf16GemmKernel kernel, bool trans_a, bool trans_b, int64_t m,
                                           int64_t n, int64_t k, float alpha, const bf16* a, int64_t lda,
                                           int64_t stride_a, const bf16* b, int64_t ldb, int64_t stride_b,
                                           float beta, bf16* c, int64_t ldc, int64_t stride_c, int64_t batch,
                                           cudaStream_t stream) {
    bf16_impl("gemm_bf16_strided_batched", kernel, GemmTiling::automatic, trans_a, trans_b, m, n, k, alpha, a,
              lda, stride_a, b, ldb, stride_b, beta, nullptr, c, ldc, stride_c, batch, stream);
}

void gemm_bf16_strided_batched_with_tiling(GemmTiling tiling, bool trans_a, bool trans_b, int64_t m,
                                           int64_t n, int64_t k, float alpha, const bf16* a, int64_t lda,
                                           int64_t stride_a, const bf16* b, int64_t ldb, int64_t stride_b,
                                           float beta, float* c, int64_t ldc, int64_t stride_c, int64_t batch,
                                           cudaStream_t stream) {
    sgemm_impl("gemm_bf16_strided_batched", tiling, trans_a, trans_b, m, n, k, alpha, a, lda, stride_a, b,
               ldb, stride_b, beta, nullptr, c, ldc, stride_c, batch, stream);
}

void gemm_bf16_strided_batched_with_tiling(GemmTiling tiling, bool trans_a, bool trans_b, int64_t m,
                                           int64_t n, int64_t k, float alpha, const bf16* a, int64_t lda,
                                           int64_t stride_a, const bf16* b, int64_t ldb, int64_t stride_b,
                                           float beta, bf16* c, int64_t ldc, int64_t stride_c, int64_t batch,
                                           cudaStream_t stream) {
    sgemm_impl("gemm_bf16_strided_batched", tiling, trans_a, trans_b, m, n, k, alpha, a, lda, stride_a, b,
               ldb, stride_b, beta, nullptr, c, ldc, stride_c, batch, stream);
}

void gemm_bf16_strided_batched(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, float alpha,
                               const bf16* a, int64_t lda, int64_t stride_a, const bf16* b, int64_t ldb,
                               int64_t stride_b, float beta, float* c, int64_t ldc, int64_t stride_c,
                               int64_t batch, cudaStream_t stream) {
    gemm_bf16_strided_batched_with_kernel(Bf16GemmKernel::automatic, trans_a, trans_b, m, n, k, alpha, a, lda,
                                          stride_a, b, ldb, stride_b, beta, c, ldc, stride_c, batch, stream);
}

void gemm_bf16_strided_batched(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, float alpha,
                               const bf16* a, int64_t lda, int64_t stride_a, const bf16* b, int64_t ldb,
                               int64_t stride_b, float beta, bf16* c, int64_t ldc, int64_t stride_c,
                               int64_t batch, cudaStream_t stream) {
    gemm_bf16_strided_batched_with_kernel(Bf16GemmKernel::automatic, trans_a, trans_b, m, n, k, alpha, a, lda,
                                          stride_a, b, ldb, stride_b, beta, c, ldc, stride_c, batch, stream);
}

void gemm_bf16_split_k_with_kernel(Bf16GemmKernel kernel, int64_t splits, bool trans_a, bool trans_b,
                                   int64_t m, int64_t n, int64_t k, float alpha, const bf16* a, int64_t lda,
                                   const bf16* b, int64_t ldb, float beta, float* c, int64_t ldc,
                                   void* workspace, size_t workspace_bytes, cudaStream_t stream) {
    bf16_split_k_impl("gemm_bf16_split_k", kernel, splits, trans_a, trans_b, m, n, k, alpha, a, lda, b, ldb,
                      beta, nullptr, c, ldc, workspace, workspace_bytes, stream);
}

void gemm_bf16_split_k_with_kernel(Bf16GemmKernel kernel, int64_t splits, bool trans_a, bool trans_b,
                                   int64_t m, int64_t n, int64_t k, float alpha, const bf16* a, int64_t lda,
                                   const bf16* b, int64_t ldb, float beta, bf16* c, int64_t ldc,
                                   void* workspace, size_t workspace_bytes, cudaStream_t stream) {
    bf16_split_k_impl("gemm_bf16_split_k", kernel, splits, trans_a, trans_b, m, n, k, alpha, a, lda, b, ldb,
                      beta, nullptr, c, ldc, workspace, workspace_bytes, stream);
}

void gemm_bf16_split_k(int64_t splits, bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k,
                       float alpha, const bf16* a, int64_t lda, const bf16* b, int64_t ldb, float beta,
                       float* c, int64_t ldc, void* workspace, size_t workspace_bytes, cudaStream_t stream) {
    gemm_bf16_split_k_with_kernel(Bf16GemmKernel::automatic, splits, trans_a, trans_b, m, n, k, alpha, a, lda,
                                  b, ldb, beta, c, ldc, workspace, workspace_bytes, stream);
}

void gemm_bf16_split_k(int64_t splits, bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k,
                       float alpha, const bf16* a, int64_t lda, const bf16* b, int64_t ldb, float beta,
                       bf16* c, int64_t ldc, void* workspace, size_t workspace_bytes, cudaStream_t stream) {
    gemm_bf16_split_k_with_kernel(Bf16GemmKernel::automatic, splits, trans_a, trans_b, m, n, k, alpha, a, lda,
                                  b, ldb, beta, c, ldc, workspace, workspace_bytes, stream);
}

size_t gemm_bf16_split_workspace_bytes(int64_t m, int64_t n, int64_t k) {
    const int64_t splits = sgemm_split_k_count(m, n, k);
    return splits > 1 ? sgemm_split_k_workspace_bytes(m, n, k, splits) : 0;
}

void gemm_bf16_split_with_kernel(Bf16GemmKernel kernel, bool trans_a, bool trans_b, int64_t m, int64_t n,
                                 int64_t k, float alpha, const bf16* a, int64_t lda, const bf16* b,
                                 int64_t ldb, const float* bias, float* c, int64_t ldc, void* workspace,
                                 size_t workspace_bytes, cudaStream_t stream) {
    bf16_split_impl(kernel, trans_a, trans_b, m, n, k, alpha, a, lda, b, ldb, bias, c, ldc, workspace,
                    workspace_bytes, stream);
}

void gemm_bf16_split_with_kernel(Bf16GemmKernel kernel, bool trans_a, bool trans_b, int64_t m, int64_t n,
                                 int64_t k, float alpha, const bf16* a, int64_t lda, const bf16* b,
                                 int64_t ldb, const float* bias, bf16* c, int64_t ldc, void* workspace,
                                 size_t workspace_bytes, cudaStream_t stream) {
    bf16_split_impl(kernel, trans_a, trans_b, m, n, k, alpha, a, lda, b, ldb, bias, c, ldc, workspace,
                    workspace_bytes, stream);
}

void gemm_bf16_split(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, float alpha, const bf16* a,
                     int64_t lda, const bf16* b, int64_t ldb, const float* bias, float* c, int64_t ldc,
                     void* workspace, size_t workspace_bytes, cudaStream_t stream) {
    bf16_split_impl(Bf16GemmKernel::automatic, trans_a, trans_b, m, n, k, alpha, a, lda, b, ldb, bias, c, ldc,
                    workspace, workspace_bytes, stream);
}

void gemm_bf16_split(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, float alpha, const bf16* a,
                     int64_t lda, const bf16* b, int64_t ldb, const float* bias, bf16* c, int64_t ldc,
                     void* workspace, size_t workspace_bytes, cudaStream_t stream) {
    bf16_split_impl(Bf16GemmKernel::automatic, trans_a, trans_b, m, n, k, alpha, a, lda, b, ldb, bias, c, ldc,
                    workspace, workspace_bytes, stream);
}

}  // namespace cudacnn::gpu
