// conv2d as an implicit GEMM (see conv2d_implicit.hpp): one tiled GEMM kernel whose operands are gathered
// through index decoders, in three arithmetics (FP32 FMAs on CUDA cores; TF32 and bf16 wmma on tensor cores),
// the launchers that describe forward, backward-data and backward-filter to it, and two small helpers (the
// weight transpose of backward-data, the split-k sum). Operands and outputs are stored as T = float (FP32,
// TF32) or bf16 (FP32, bf16 wmma): gathers widen exactly, outputs round once, everything in between is float.
#include "cuda/conv2d_implicit.hpp"

#include <fmt/format.h>
#include <mma.h>  // nvcuda::wmma under nvcc; under the host compiler it declares nothing (emu.hpp has its own)

#include <algorithm>
#include <cstdint>
#include <initializer_list>
#include <string>
#include <type_traits>

#include "cuda/batch_norm_common.cuh"
#include "cuda/bf16.cuh"
#include "cuda/bias_grad.hpp"
#include "cuda/conv2d_common.cuh"
#include "cuda/elementwise.cuh"
#include "cuda/gemm_tf32.hpp"
#include "cuda/launch.cuh"
#include "cudacnn/error.hpp"

// The TF32 tensor-core kernel (allow_tf32): built (1) or left out (0: allow_tf32 then runs the FP32 kernel).
// Defaults to CUDACNN_TENSOR_CORES, the switch of the TF32 GEMM (cuda/gemm_tf32.cu), which defaults to on.
#ifndef CUDACNN_TENSOR_CORES
#define CUDACNN_TENSOR_CORES 1
#endif
#ifndef CUDACNN_IMPLICIT_TF32
#define CUDACNN_IMPLICIT_TF32 CUDACNN_TENSOR_CORES
#endif
// The bf16 tensor-core kernel (bf16 storage): built (1) or left out (0: the bf16 calls then run the CUDA-core
// kernel). Defaults to CUDACNN_IMPLICIT_TF32, so one switch turns both tensor-core kernels off.
#ifndef CUDACNN_IMPLICIT_BF16_MMA
#define CUDACNN_IMPLICIT_BF16_MMA CUDACNN_IMPLICIT_TF32
#endif
// Whether this compilation can emit wmma TF32 and bf16 code: the host compiler (the emulator's nvcuda::wmma)
// and sm_80+ device code. Elsewhere the tensor-core kernels' bodies multiply on CUDA cores; the host never
// launches them there (the *_available functions ask for compute capability 8.0).
#if (CUDACNN_IMPLICIT_TF32 || CUDACNN_IMPLICIT_BF16_MMA) && (!defined(__CUDA_ARCH__) || __CUDA_ARCH__ >= 800)
#define CUDACNN_IMPLICIT_WMMA 1
#else
#define CUDACNN_IMPLICIT_WMMA 0
#endif

namespace cudacnn::gpu {

using cpu::Conv2dGeometry;

namespace kernels {

constexpr int kImplicitThreads = 256;
constexpr int kImplicitBlockK = 8;    // the k-slice (FP32 and TF32)
constexpr int kImplicitBlockN = 128;  // the block tile's columns; its rows BM are 32, 64 or 128
// Shared rows padded by 4 floats: the k-fast stores s[t % 8][t / 8] of a warp then hit 32 distinct banks
// (row pitch ≡ 4 mod 32), while rows stay 16-byte aligned for the float4 reads.
constexpr int kImplicitPad = 4;
// The bf16 tensor-core arithmetic: k-slices of 16 stored as bf16, one wmma m16n16k16 step each. Rows padded
// by 8 bf16 (16 bytes), the least that keeps wmma's ldm a multiple of 8 bf16 and every fragment 32-byte
// aligned.
constexpr int kBf16BlockK = 16;
constexpr int kBf16Pad = 8;

// How a block multiplies its tile: FP32 FMAs on CUDA cores (float or bf16 storage), TF32 wmma (float
// storage), bf16 wmma (bf16 storage).
enum class Arithmetic { fp32, tf32, bf16_mma };

// x / d by a multiply-high and a shift (Granlund–Montgomery, the scheme of CUTLASS's FastDivmod), exact for
// 0 ≤ x < 2^31 and d ≥ 1: a hardware integer division costs ~20 instructions, and the gathers decode several
// indices per k-slice.
struct FastDiv {
    int divisor;
    uint32_t mul, shift;
    __device__ int div(int x) const {
        if (divisor == 1) return x;
        const auto high =
            static_cast<uint32_t>((static_cast<uint64_t>(static_cast<uint32_t>(x)) * mul) >> 32);
        return static_cast<int>(high >> shift);
    }
};

// Decodes a row, column or k index of a product into a partial address. idx → (outer, y, x) with
// outer = idx / (ny·nx) and (y, x) its position in an ny × nx plane; gives offset = outer · outer_stride and
// the scaled, shifted (y, x). Indices ≥ count lie outside the matrix.
struct IndexDecoder {
    FastDiv plane, width;  // ny·nx and nx
    int outer_stride, y_scale, y_shift, x_scale, x_shift;
    int count;
};

struct Spot {
    int offset, y, x;
    bool valid;
};

__device__ inline Spot decode(const IndexDecoder& d, int idx) {
    const int outer = d.plane.div(idx);
    const int in_plane = idx - outer * d.plane.divisor;
    const int y = d.width.div(in_plane);
    const int x = in_plane - y * d.width.divisor;
    return {outer * d.outer_stride, y * d.y_scale + d.y_shift, x * d.x_scale + d.x_shift, idx < d.count};
}

// An operand stored densely: element (row, k) at base[row.offset + row.y + k.offset + k.y] (the decoders'
// x is unused). The weights (rows oc, k = (c, i, j)) and dy as backward-filter's A (rows oc, k = (n, p)).
// T = float or bf16: the load widens to float (exact).
template <class T>
struct MatrixGather {
    const T* base;
    __device__ float load(const Spot& r, const Spot& k) const {
        return r.valid && k.valid ? to_float(base[r.offset + r.y + k.offset + k.y]) : 0.0f;
    }
};

// An operand read from an NCHW or NHWC tensor of h × w planes: element (row, k) is at offset row.offset +
// k.offset (image and channel, whose strides the decoders carry) + pixel · pixel_stride, pixel = position
// (row.y + k.y, row.x + k.x), divided by the stride when the stride is not 1 (backward-data: only positions
// that a stride step reaches read dy); zero outside the plane (the zero padding). pixel_stride is 1 in NCHW
// and the channel count in NHWC (the layout enters only through these strides, so both formats sum the same
// k terms in the same order). T = float or bf16, widened as MatrixGather does.
template <class T>
struct SpatialGather {
    const T* base;
    int h, w, stride_h, stride_w, pixel_stride;
    __device__ float load(const Spot& r, const Spot& k) const {
        if (!r.valid || !k.valid) return 0.0f;
        int y = r.y + k.y, x = r.x + k.x;
        if (stride_h != 1) {
            if (y < 0 || y % stride_h != 0) return 0.0f;
            y /= stride_h;
        }
        if (stride_w != 1) {
            if (x < 0 || x % stride_w != 0) return 0.0f;
            x /= stride_w;
        }
        return y >= 0 && y < h && x >= 0 && x < w
                   ? to_float(base[r.offset + k.offset + (y * w + x) * pixel_stride])
                   : 0.0f;
    }
};

// Where the product's outputs go: element (row, col) at base[row.offset + row.y + col.offset + col.y]
// (NCHW y or dx, or a dense dw), plus bias[row] when bias is not null. T = float or bf16 (y, dx): the float
// sum plus bias is rounded once, as it is stored (from_float<T>); split-k's partial outputs are float.
template <class T>
struct OutputView {
    T* base;
    IndexDecoder rows, cols;
    const float* bias;
    int slice_stride;  // elements between the partial outputs of consecutive k slices (blockIdx.y)
    // Final outputs only (never split-k's partial products): per-row statistics of the stored values, one
    // (mean, M2, count) per (row, 128-column tile) at stats[row · ⌈n / 128⌉ + tile]; nullptr: none.
    BatchNorm2dPartialStats* stats;
};

// Lane l's stored values at columns col0 + l + 32 q (q < 4) of a row, as one Welford triple (two passes over
// registers), merged over the warp in reduce's fixed shuffle tree; lane 0 holds the 128 columns' triple.
__device__ inline Welford warp_tile_stats(const float (&v)[4], const bool (&valid)[4]) {
    float sum = 0.0f;
    int count = 0;
#pragma unroll
    for (int q = 0; q < 4; ++q) {
        if (valid[q]) sum += v[q], ++count;
    }
    Welford acc = Welford::empty();
    if (count > 0) {
        acc.count = count;
        acc.mean = sum / static_cast<float>(count);
#pragma unroll
        for (int q = 0; q < 4; ++q) {
            if (valid[q]) acc.m2 += (v[q] - acc.mean) * (v[q] - acc.mean);
        }
    }
    return reduce::warp_reduce(acc);
}

// After the block stored its tile (rows row0 …, columns col0 … col0 + 127; a barrier made the stores
// visible): each warp reads back rows w, w + 8, … of it (the values as stored: bf16 rounded) and writes their
// triples. Re-reading the block's own tile hits L1/L2, not another pass over y.
template <int kBM, class TC>
__device__ void write_tile_stats(const OutputView<TC>& c, int row0, int col0, int tiles_n) {
    const int warp = static_cast<int>(threadIdx.x) / 32, lane = static_cast<int>(threadIdx.x) % 32;
    Spot cols[4];
    bool valid[4];
#pragma unroll
    for (int q = 0; q < 4; ++q) cols[q] = decode(c.cols, col0 + lane + 32 * q), valid[q] = cols[q].valid;
    for (int row = row0 + warp; row < row0 + kBM; row += kImplicitThreads / 32) {
        const Spot r = decode(c.rows, row);
        if (!r.valid) break;  // warp-uniform; later rows are past m too
        float v[4];
#pragma unroll
        for (int q = 0; q < 4; ++q)
            v[q] = valid[q] ? to_float(c.base[r.offset + r.y + cols[q].offset + cols[q].y]) : 0.0f;
        const Welford acc = warp_tile_stats(v, valid);
        if (lane == 0) c.stats[row * tiles_n + col0 / kImplicitBlockN] = {acc.mean, acc.m2, acc.count};
    }
}

// C (m × n) = A (m × k) · B (k × n) over k range [blockIdx.y · k_slice, + k_slice) ∩ [0, k), C stored as TC.
template <class GA, class GB, class TC>
struct ImplicitProblem {
    GA a;
    IndexDecoder a_rows, a_k;
    GB b;
    IndexDecoder b_cols, b_k;
    OutputView<TC> c;
    int k, k_slice, tiles_n;
};

// One thread's part in staging an operand slice (kRows × kBlockK) into the k-major shared slice s[kk][row]:
// kRows · kBlockK / 256 elements, all of one k index, so each slice decodes one k index per thread and the
// rows are decoded once. With L = 256 / kBlockK lines: k-fast, consecutive threads take consecutive k of a
// row (k t % kBlockK, rows t / kBlockK + L·e); row-fast, consecutive threads take consecutive rows of one k
// (k t / L, rows t % L + L·e; for kBlockK 8 a warp takes 32 rows). The layout that reads contiguous memory is
// chosen per operand: along k for the weights, dy as A and x as backward-filter's B; along the columns
// (output or input positions) for the forward's and backward-data's B. With float slices of 8 both store a
// warp's 32 values into 32 distinct banks (k-fast: row pitch ≡ 4 mod 32); bf16 slices of 16 stay within 2-way
// conflicts. Values are gathered as float and stored as the slice's type S (float, or bf16: exact, they were
// bf16).
template <int kRows, bool kKFast, int kBlockK = kImplicitBlockK>
struct TileLoader {
    static constexpr int kLines = kImplicitThreads / kBlockK;
    static constexpr int kPer = kRows / kLines;
    static_assert(kLines * kBlockK == kImplicitThreads && kPer * kLines == kRows,
                  "the slice must split evenly");
    Spot rows[kPer];

    __device__ static int row_of(int e) {
        const int t = static_cast<int>(threadIdx.x);
        return kKFast ? t / kBlockK + e * kLines : t % kLines + kLines * e;
    }
    __device__ static int kk() {
        const int t = static_cast<int>(threadIdx.x);
        return kKFast ? t % kBlockK : t / kLines;
    }

    __device__ TileLoader(const IndexDecoder& row_decoder, int row0) {
#pragma unroll
        for (int e = 0; e < kPer; ++e) rows[e] = decode(row_decoder, row0 + row_of(e));
    }

    template <class Gather>
    __device__ void load(const Gather& g, const IndexDecoder& k_decoder, int k0, int k_end,
                         float (&r)[kPer]) const {
        Spot k = decode(k_decoder, k0 + kk());
        k.valid = k.valid && k0 + kk() < k_end;
#pragma unroll
        for (int e = 0; e < kPer; ++e) r[e] = g.load(rows[e], k);
    }

    template <class S, int kLd>
    __device__ static void store(S (&s)[kBlockK][kLd], const float (&r)[kPer]) {
#pragma unroll
        for (int e = 0; e < kPer; ++e) s[kk()][row_of(e)] = from_float<S>(r[e]);
    }
};

// acc += the 8 k steps of the shared slices: thread (ty, tx) = (t / 16, t % 16) owns rows ty·TM … + TM − 1
// (a warp's two ty values read by broadcast) and columns tx·4 + 64·c + j, c < 2, j < 4 (16 lanes read 256
// contiguous bytes per float4 read: no bank conflicts).
template <int kBM>
__device__ inline void multiply_slice(const float (&a)[kImplicitBlockK][kBM + kImplicitPad],
                                      const float (&b)[kImplicitBlockK][kImplicitBlockN + kImplicitPad],
                                      int ty, int tx, float (&acc)[kBM / 16][8]) {
    constexpr int kTM = kBM / 16;
#pragma unroll
    for (int kk = 0; kk < kImplicitBlockK; ++kk) {
        float a_reg[kTM], b_reg[8];
        if constexpr (kTM % 4 == 0) {
#pragma unroll
            for (int q = 0; q < kTM / 4; ++q) {
                const float4 v = *reinterpret_cast<const float4*>(&a[kk][ty * kTM + 4 * q]);
                a_reg[4 * q] = v.x, a_reg[4 * q + 1] = v.y, a_reg[4 * q + 2] = v.z, a_reg[4 * q + 3] = v.w;
            }
        } else {
            const float2 v = *reinterpret_cast<const float2*>(&a[kk][ty * kTM]);
            a_reg[0] = v.x, a_reg[1] = v.y;
        }
#pragma unroll
        for (int c = 0; c < 2; ++c) {
            const float4 v = *reinterpret_cast<const float4*>(&b[kk][tx * 4 + 64 * c]);
            b_reg[4 * c] = v.x, b_reg[4 * c + 1] = v.y, b_reg[4 * c + 2] = v.z, b_reg[4 * c + 3] = v.w;
        }
#pragma unroll
        for (int i = 0; i < kTM; ++i) {
#pragma unroll
            for (int j = 0; j < 8; ++j) acc[i][j] += a_reg[i] * b_reg[j];  // one FMA under nvcc
        }
    }
}

// The FP32 arithmetic: thread (ty, tx) = (t / 16, t % 16) keeps BM/16 × 8 outputs in registers
// (multiply_slice), multiplied with FMAs on CUDA cores, and writes them straight from there.
template <int kBM>
struct FmaTile {
    static constexpr int kTM = kBM / 16;
    float acc[kTM][8] = {};

    template <int kN>
    __device__ static void round_inputs(float (&)[kN]) {}  // FP32: the gathered values as they are

    __device__ void multiply(const float (&a)[kImplicitBlockK][kBM + kImplicitPad],
                             const float (&b)[kImplicitBlockK][kImplicitBlockN + kImplicitPad]) {
        const int t = static_cast<int>(threadIdx.x);
        multiply_slice<kBM>(a, b, t / 16, t % 16, acc);
    }

    template <class TC>
    __device__ void write(const OutputView<TC>& c, TC* out, int row0, int col0, float* /*stage*/) const {
        const int ty = static_cast<int>(threadIdx.x) / 16, tx = static_cast<int>(threadIdx.x) % 16;
        Spot cols[8];
#pragma unroll
        for (int j = 0; j < 8; ++j) cols[j] = decode(c.cols, col0 + tx * 4 + 64 * (j / 4) + j % 4);
#pragma unroll
        for (int i = 0; i < kTM; ++i) {
            const int row = row0 + ty * kTM + i;
            const Spot r = decode(c.rows, row);
            if (!r.valid) continue;
            const float bias = c.bias != nullptr ? c.bias[row] : 0.0f;
#pragma unroll
            for (int j = 0; j < 8; ++j) {
                if (cols[j].valid) {
                    out[r.offset + r.y + cols[j].offset + cols[j].y] = from_float<TC>(acc[i][j] + bias);
                }
            }
        }
    }
};

#if CUDACNN_IMPLICIT_WMMA
namespace wmma = nvcuda::wmma;
constexpr int kFrag = 16;                    // wmma tile m = n = 16; its k is the whole k-slice (8 or 16)
constexpr int kWarpRows = 2, kWarpCols = 4;  // the 8 warps over the block tile
static_assert(kWarpRows * kWarpCols * 32 == kImplicitThreads, "one warp tile per warp");

// The tensor-core arithmetics, Precision wmma::precision::tf32 (allow_tf32) or bf16 (bf16 storage). TF32: the
// gathered values are rounded to TF32 (wmma::__float_to_tf32, i.e. cvt.rna.tf32.f32, as cuda/gemm_tf32.cu
// rounds) before they are stored into float slices of 8, one m16n16k8 step per slice. bf16: the gathered
// values (bf16 already, so exact) are stored into bf16 slices of 16, one m16n16k16 step per slice (slices of
// 16 rather than two steps per pair of 8-slices: the same loads per mma, half the barriers). Warp (wr, wc) =
// (warp / 4, warp % 4) multiplies its (BM/2) × 32 part of the tile: BM/32 × 2 accumulator fragments of
// 16 × 16 (FP32). The k-major slices are matrix_a in column-major and matrix_b in row-major layout as they
// stand (leading dimensions BM + pad and 128 + pad, 16 bytes apart at least; every fragment starts 32-byte
// aligned: rows of 16 elements, slices of whole 32-byte multiples).
template <int kBM, class Precision>
struct WmmaTile {
    static constexpr bool kBf16 = std::is_same_v<Precision, bf16>;
    static constexpr int kK = kBf16 ? kBf16BlockK : kImplicitBlockK;
    static constexpr int kPad = kBf16 ? kBf16Pad : kImplicitPad;
    using Shared = std::conditional_t<kBf16, bf16, float>;
    static constexpr int kWarpM = kBM / kWarpRows, kWarpN = kImplicitBlockN / kWarpCols;
    static constexpr int kFragRows = kWarpM / kFrag, kFragCols = kWarpN / kFrag;
    static constexpr int kStageLd = kFrag;  // one warp's staged 16 × 16 fragment (see write)
    using Accumulator = wmma::fragment<wmma::accumulator, kFrag, kFrag, kK, float>;
    Accumulator acc[kFragRows][kFragCols];

    __device__ WmmaTile() {
#pragma unroll
        for (int i = 0; i < kFragRows; ++i) {
#pragma unroll
            for (int j = 0; j < kFragCols; ++j) wmma::fill_fragment(acc[i][j], 0.0f);
        }
    }

    template <int kN>
    __device__ static void round_inputs(float (&r)[kN]) {
        if constexpr (!kBf16) {
#pragma unroll
            for (int e = 0; e < kN; ++e) r[e] = wmma::__float_to_tf32(r[e]);
        }
    }

    __device__ static int warp_row() {
        return static_cast<int>(threadIdx.x) / 32 / kWarpCols;
    }
    __device__ static int warp_col() {
        return static_cast<int>(threadIdx.x) / 32 % kWarpCols;
    }

    __device__ void multiply(const Shared (&a)[kK][kBM + kPad],
                             const Shared (&b)[kK][kImplicitBlockN + kPad]) {
        wmma::fragment<wmma::matrix_a, kFrag, kFrag, kK, Precision, wmma::col_major> a_frag[kFragRows];
        wmma::fragment<wmma::matrix_b, kFrag, kFrag, kK, Precision, wmma::row_major> b_frag[kFragCols];
#pragma unroll
        for (int i = 0; i < kFragRows; ++i) {
            wmma::load_matrix_sync(a_frag[i], &a[0][warp_row() * kWarpM + i * kFrag], kBM + kPad);
        }
#pragma unroll
        for (int j = 0; j < kFragCols; ++j) {
            wmma::load_matrix_sync(b_frag[j], &b[0][warp_col() * kWarpN + j * kFrag], kImplicitBlockN + kPad);
        }
#pragma unroll
        for (int i = 0; i < kFragRows; ++i) {
#pragma unroll
            for (int j = 0; j < kFragCols; ++j) wmma::mma_sync(acc[i][j], a_frag[i], b_frag[j], acc[i][j]);
        }
    }

    // A fragment's element-to-lane mapping is unspecified, so each warp stores one fragment at a time into
    // its own 16 × 16 of `stage` (shared memory the slices no longer need, 8 · 256 floats, 32-byte aligned)
    // and writes it out: lane l takes column l % 16 and rows l / 16, + 2, …, so half-warps write 16
    // consecutive columns (output positions). TC = float or bf16 (rounded once, from the sum + bias).
    template <class TC>
    __device__ void write(const OutputView<TC>& c, TC* out, int row0, int col0, float* stage) const {
        const int lane = static_cast<int>(threadIdx.x) % 32;
        float* mine = stage + static_cast<int>(threadIdx.x) / 32 * kFrag * kStageLd;
#pragma unroll
        for (int i = 0; i < kFragRows; ++i) {
#pragma unroll
            for (int j = 0; j < kFragCols; ++j) {
                wmma::store_matrix_sync(mine, acc[i][j], kStageLd, wmma::mem_row_major);
                __syncwarp();  // the fragment is in `mine`
                const int frag_row0 = row0 + warp_row() * kWarpM + i * kFrag;
                const Spot col = decode(c.cols, col0 + warp_col() * kWarpN + j * kFrag + lane % 16);
#pragma unroll
                for (int e = lane / 16; e < kFrag; e += 2) {
                    const int row = frag_row0 + e;
                    const Spot r = decode(c.rows, row);
                    if (!r.valid || !col.valid) continue;
                    const float bias = c.bias != nullptr ? c.bias[row] : 0.0f;
                    out[r.offset + r.y + col.offset + col.y] =
                        from_float<TC>(mine[e * kStageLd + lane % 16] + bias);
                }
                __syncwarp();  // every lane has read `mine` before the next fragment overwrites it
            }
        }
    }
};

template <int kBM>
using Tf32Tile = WmmaTile<kBM, wmma::precision::tf32>;
template <int kBM>
using Bf16MmaTile = WmmaTile<kBM, bf16>;
#else
template <int kBM>
using Tf32Tile = FmaTile<kBM>;  // never launched (see CUDACNN_IMPLICIT_WMMA)

// Never launched either (see CUDACNN_IMPLICIT_WMMA): the FP32 tile multiplying the bf16 slices of 16 on CUDA
// cores, so that the bf16 tensor-core kernel's body compiles where wmma cannot.
template <int kBM>
struct Bf16MmaTile : FmaTile<kBM> {
    __device__ void multiply(const bf16 (&a)[kBf16BlockK][kBM + kBf16Pad],
                             const bf16 (&b)[kBf16BlockK][kImplicitBlockN + kBf16Pad]) {
        const int ty = static_cast<int>(threadIdx.x) / 16, tx = static_cast<int>(threadIdx.x) % 16;
        for (int kk = 0; kk < kBf16BlockK; ++kk) {
            for (int i = 0; i < FmaTile<kBM>::kTM; ++i) {
                const float a_value = to_float(a[kk][ty * FmaTile<kBM>::kTM + i]);
                for (int j = 0; j < 8; ++j) {
                    this->acc[i][j] += a_value * to_float(b[kk][tx * 4 + 64 * (j / 4) + j % 4]);
                }
            }
        }
    }
};
#endif

// What each arithmetic stores in shared memory and how it multiplies: the tile, the slices' element type,
// k-slice and row padding.
template <Arithmetic kArith, int kBM>
struct ArithmeticTraits {
    using Tile = FmaTile<kBM>;
    using Shared = float;
    static constexpr int kBlockK = kImplicitBlockK, kPad = kImplicitPad;
};
template <int kBM>
struct ArithmeticTraits<Arithmetic::tf32, kBM> : ArithmeticTraits<Arithmetic::fp32, kBM> {
    using Tile = Tf32Tile<kBM>;
};
template <int kBM>
struct ArithmeticTraits<Arithmetic::bf16_mma, kBM> {
    using Tile = Bf16MmaTile<kBM>;
    using Shared = bf16;
    static constexpr int kBlockK = kBf16BlockK, kPad = kBf16Pad;
};

// One block computes one kBM × 128 tile of C (blockIdx.x = tile_row · tiles_n + tile_col) over k slice
// blockIdx.y, in FP32 (FmaTile), TF32 (Tf32Tile) or bf16 (Bf16MmaTile) arithmetic. Pipeline, one barrier per
// k-slice (as cuda/gemm.cu): slices double-buffered in shared memory; while slice t is multiplied out of
// buffer t % 2, slice t + 1 is gathered into registers (its latency hidden by the FMAs or MMAs) and then
// stored into the other buffer, which everyone finished reading before the barrier that ended step t − 1.
// Every output sums its k terms in one fixed order, so results are reproducible.
// __launch_bounds__(256, 1): ptxas may use up to 255 registers (the 8 × 8 tile and the decoded positions).
// TF32 is FP32 storage only, bf16 wmma bf16 storage only (the launchers pair them so).
template <int kBM, bool kBKFast, Arithmetic kArith, class GA, class GB, class TC>
__global__ void __launch_bounds__(kImplicitThreads, 1) implicit_gemm_kernel(ImplicitProblem<GA, GB, TC> p) {
    static_assert(
        kArith != Arithmetic::tf32 || (std::is_same_v<GA, MatrixGather<float>> && std::is_same_v<TC, float>),
        "the TF32 kernel reads and writes float");
    static_assert(
        kArith != Arithmetic::bf16_mma ||
            (std::is_same_v<GA, MatrixGather<bf16>> && std::is_same_v<GB, SpatialGather<bf16>>),
        "the bf16 tensor-core kernel reads bf16 (storing the gathered values as bf16 is exact only then)");
    using Traits = ArithmeticTraits<kArith, kBM>;
    using Tile = typename Traits::Tile;
    using S = typename Traits::Shared;
    constexpr int kK = Traits::kBlockK, kPad = Traits::kPad;
    // 32-byte aligned: wmma fragments load from them, and b_slices stages the tensor-core tiles' output.
    __shared__ __align__(32) S a_slices[2][kK][kBM + kPad];
    __shared__ __align__(32) S b_slices[2][kK][kImplicitBlockN + kPad];
    const int row0 = static_cast<int>(blockIdx.x) / p.tiles_n * kBM;
    const int col0 = static_cast<int>(blockIdx.x) % p.tiles_n * kImplicitBlockN;
    const int k_begin = static_cast<int>(blockIdx.y) * p.k_slice;
    const int k_end = min(p.k, k_begin + p.k_slice);

    using ALoader = TileLoader<kBM, true, kK>;
    using BLoader = TileLoader<kImplicitBlockN, kBKFast, kK>;
    const ALoader a_loader(p.a_rows, row0);
    const BLoader b_loader(p.b_cols, col0);
    float ra[ALoader::kPer], rb[BLoader::kPer];
    a_loader.load(p.a, p.a_k, k_begin, k_end, ra);
    b_loader.load(p.b, p.b_k, k_begin, k_end, rb);
    Tile::round_inputs(ra);
    Tile::round_inputs(rb);
    a_loader.store(a_slices[0], ra);
    b_loader.store(b_slices[0], rb);
    __syncthreads();

    Tile tile;
    int buf = 0;
    for (int k0 = k_begin; k0 < k_end; k0 += kK, buf ^= 1) {
        const bool more = k0 + kK < k_end;
        if (more) {
            a_loader.load(p.a, p.a_k, k0 + kK, k_end, ra);
            b_loader.load(p.b, p.b_k, k0 + kK, k_end, rb);
        }
        tile.multiply(a_slices[buf], b_slices[buf]);
        if (more) {
            Tile::round_inputs(ra);
            Tile::round_inputs(rb);
            a_loader.store(a_slices[buf ^ 1], ra);
            b_loader.store(b_slices[buf ^ 1], rb);
        }
        __syncthreads();
    }
    // The last barrier above ended every read of the slices: the tensor-core tiles may stage their output in
    // b_slices.
    static_assert(sizeof(b_slices) >= sizeof(float) * kImplicitThreads / 32 * 16 * 16, "room to stage");
    tile.write(p.c, p.c.base + static_cast<int>(blockIdx.y) * p.c.slice_stride, row0, col0,
               reinterpret_cast<float*>(&b_slices[0][0][0]));
    if (p.c.stats != nullptr) {  // uniform: the whole block takes the barrier
        __syncthreads();
        write_tile_stats<kBM>(p.c, row0, col0, p.tiles_n);
    }
}

// wt (C, OC, KH·KW) = w (OC, C, KH·KW) with the first two axes swapped: backward-data's A, rows c, contiguous
// k = (oc, i, j). Grid-stride, coalesced writes. T = float or bf16: a copy, exact.
template <class T>
__global__ void transpose_weights_kernel(const T* w, T* wt, int out_channels, int channels, int taps) {
    const int total = out_channels * channels * taps;
    for (int t = blockIdx.x * blockDim.x + threadIdx.x; t < total; t += gridDim.x * blockDim.x) {
        const int tap = t % taps, oc = (t / taps) % out_channels, c = t / (taps * out_channels);
        wt[t] = w[(oc * channels + c) * taps + tap];
    }
}

// Split-k's second pass: element (row, col) of the m × n product = Σ_s partials[s·m·n + row·n + col], the k
// slices in order (deterministic), + bias[row] when there is one, written where `out` puts it (NCHW y or dx,
// or dw). Grid-stride over the m·n elements; reads coalesced, writes coalesced along each output plane.
// T = float or bf16: the float sum (+ bias) is rounded once, as it is stored.
template <class T>
__global__ void sum_slices_kernel(const float* partials, int slices, OutputView<T> out) {
    const int m = out.rows.count, n = out.cols.count, count = m * n;
    for (int t = blockIdx.x * blockDim.x + threadIdx.x; t < count; t += gridDim.x * blockDim.x) {
        float sum = partials[t];
        for (int s = 1; s < slices; ++s) sum += partials[s * count + t];
        const int row = t / n;
        const Spot r = decode(out.rows, row), c = decode(out.cols, t - row * n);
        out.base[r.offset + r.y + c.offset + c.y] =
            from_float<T>(out.bias != nullptr ? sum + out.bias[row] : sum);
    }
}

// sum_slices_kernel with the statistics: warp (row, tile) sums and stores columns tile · 128 + lane + 32 q
// (q < 4) of one row (the same sums and roundings as sum_slices_kernel), then writes the triple of the stored
// values at out.stats[row · tiles_n + tile].
template <class T>
__global__ void sum_slices_stats_kernel(const float* partials, int slices, OutputView<T> out, int tiles_n) {
    const int m = out.rows.count, n = out.cols.count, count = m * n;
    const int warp = static_cast<int>((blockIdx.x * blockDim.x + threadIdx.x) / 32);
    const int lane = static_cast<int>(threadIdx.x) % 32;
    const int row = warp / tiles_n, tile = warp - row * tiles_n;
    if (row >= m) return;  // whole warps only
    const Spot r = decode(out.rows, row);
    float v[4];
    bool valid[4];
#pragma unroll
    for (int q = 0; q < 4; ++q) {
        const int col = tile * kImplicitBlockN + lane + 32 * q;
        valid[q] = col < n;
        v[q] = 0.0f;
        if (!valid[q]) continue;
        const int t = row * n + col;
        float sum = partials[t];
        for (int s = 1; s < slices; ++s) sum += partials[s * count + t];
        const Spot c = decode(out.cols, col);
        const T stored = from_float<T>(out.bias != nullptr ? sum + out.bias[row] : sum);
        out.base[r.offset + r.y + c.offset + c.y] = stored;
        v[q] = to_float(stored);
    }
    const Welford acc = warp_tile_stats(v, valid);
    if (lane == 0) out.stats[row * tiles_n + tile] = {acc.mean, acc.m2, acc.count};
}

}  // namespace kernels

namespace {

using kernels::Arithmetic;
using kernels::ImplicitProblem;
using kernels::IndexDecoder;
using kernels::MatrixGather;
using kernels::SpatialGather;

constexpr int64_t kMaxElements = (int64_t{1} << 31) - 1024;  // 32-bit indices with room for a tile's overrun
// Split-k: a product with few output tiles for its k (backward-filter: OC × C·KH·KW outputs, k = N·OH·OW;
// the 8 × 8 layers' forward and backward-data: 64 – 128 tiles for 132 SMs) has its k range cut into slices
// for about two blocks per H100 SM, at most kMaxSlices, each at least kMinSliceK long (shorter slices would
// spend more on the partial sums than they save). Partial products go to the workspace, then are summed.
// kMaxSlices is 256 because a one-tile product needs that many slices to fill the GPU: the 3→32 layer's
// backward-filter (32 × 27 outputs over k = 131,072) took 233 µs on an H200 with 64 slices, 64 blocks each
// walking 256 slices of 8 one barrier at a time on half the SMs (the 32-row kernel fits 2 blocks per SM).
// The partial sums stay small: slices × m × n ≤ 256 × 128 × 128 floats (16 MiB) for one tile.
constexpr int64_t kTargetBlocks = 2 * 132;
constexpr int64_t kMaxSlices = 256;
constexpr int64_t kMinSliceK = 512;

// The multiplier and shift of kernels::FastDiv for d ≥ 1: p = 31 + ⌈log2 d⌉, mul = ⌈2^p / d⌉, shift = p − 32.
kernels::FastDiv fast_div(int64_t d) {
    CUDACNN_CHECK(d >= 1 && d < (int64_t{1} << 31), "conv2d_implicit: divisor {} outside [1, 2^31)", d);
    if (d == 1) return {1, 0, 0};
    int log2 = 0;
    while ((int64_t{1} << log2) < d) ++log2;
    const int p = 31 + log2;
    const uint64_t mul = ((uint64_t{1} << p) + static_cast<uint64_t>(d) - 1) / static_cast<uint64_t>(d);
    return {static_cast<int>(d), static_cast<uint32_t>(mul), static_cast<uint32_t>(p - 32)};
}

// idx → (idx / plane, (idx % plane) / width, idx % width): offset outer · outer_stride, y · y_scale +
// y_shift, x · x_scale + x_shift; valid below count.
IndexDecoder decoder(int64_t plane, int64_t width, int64_t outer_stride, int64_t y_scale, int64_t y_shift,
                     int64_t x_scale, int64_t x_shift, int64_t count) {
    auto i = [](int64_t v) { return static_cast<int>(v); };
    return {fast_div(plane), fast_div(width), i(outer_stride), i(y_scale),
            i(y_shift),      i(x_scale),      i(x_shift),      i(count)};
}

// Rows (or columns) of a dense matrix with `stride` elements between them: offset index · stride.
IndexDecoder dense(int64_t stride, int64_t count) {
    return decoder(1, 1, stride, 0, 0, 0, 0, count);
}

// (n, p) for p < plane, as offset n · image_stride + p · pixel_stride: a column of y, dy or dx or a k of dy
// (pixel_stride 1 in NCHW, the channel count in NHWC).
IndexDecoder images_by_plane(int64_t plane, int64_t image_stride, int64_t count, int64_t pixel_stride = 1) {
    return decoder(plane, 1, image_stride, pixel_stride, 0, 0, 0, count);
}

// Where a format puts an activation's channels and pixels: element (n, c, pixel) of a (N, C, H·W) tensor is
// at n · C·H·W + c · channel + pixel · pixel, with the fields below (cudacnn::element_offset, split into the
// strides the decoders and gathers take).
struct LayoutStrides {
    int64_t channel, pixel;
};
LayoutStrides layout_strides(MemoryFormat format, int64_t channels, int64_t plane) {
    return format == MemoryFormat::nhwc ? LayoutStrides{1, channels} : LayoutStrides{plane, 1};
}

int64_t taps(const Conv2dGeometry& g) {
    return g.kernel_h * g.kernel_w;
}
int64_t column_rows(const Conv2dGeometry& g) {  // K = C·KH·KW
    return g.in_channels * taps(g);
}
int64_t out_plane(const Conv2dGeometry& g) {
    return g.out_h * g.out_w;
}

int block_rows_for(int64_t m) {
    return m <= 32 ? 32 : m <= 64 ? 64 : 128;
}

// The sizes of one product: C (m × n) = A (m × k) · B (k × n).
struct ProductSize {
    int64_t m, n, k;
};

ProductSize forward_size(const Conv2dGeometry& g) {
    return {g.out_channels, g.batch * out_plane(g), column_rows(g)};
}
ProductSize backward_data_size(const Conv2dGeometry& g) {
    return {g.in_channels, g.batch * g.in_h * g.in_w, g.out_channels * taps(g)};
}
ProductSize backward_filter_size(const Conv2dGeometry& g) {
    return {g.out_channels, column_rows(g), g.batch * out_plane(g)};
}

// A product's k slice length (a multiple of the k-slice) and slice count.
struct KSplit {
    int64_t slice_k, slices;
};

KSplit k_split(const ProductSize& s) {
    const int64_t tiles = ceil_div(s.m, block_rows_for(s.m)) * ceil_div(s.n, kernels::kImplicitBlockN);
    const int64_t wanted = std::clamp<int64_t>(kTargetBlocks / tiles, 1, kMaxSlices);
    const int64_t by_length = std::max<int64_t>(s.k / kMinSliceK, 1);
    const int64_t slices = std::min(wanted, by_length);
    const int64_t slice_k =
        ceil_div(ceil_div(s.k, slices), kernels::kImplicitBlockK) * kernels::kImplicitBlockK;
    return {slice_k, ceil_div(s.k, slice_k)};
}

// The partial products' floats (0 when k is not split).
int64_t partial_floats(const ProductSize& s) {
    const KSplit split = k_split(s);
    return split.slices > 1 ? split.slices * s.m * s.n : 0;
}

constexpr int64_t kAlignBytes = 256;  // 256-byte aligned parts of the workspace

int64_t transposed_weights(const Conv2dGeometry& g) {  // elements
    return g.out_channels * column_rows(g);
}
// Backward-data's workspace: the transposed weights, stored as the weights are (T), then (256-byte aligned)
// its partial products (float whatever T: they are sums). bf16 needs half the float bytes for the weights.
template <class T>
int64_t backward_data_partials_offset_bytes(const Conv2dGeometry& g) {
    return ceil_div(transposed_weights(g) * int64_t{sizeof(T)}, kAlignBytes) * kAlignBytes;
}

template <class T>
int64_t backward_data_bytes(const Conv2dGeometry& g) {
    const int64_t partials = partial_floats(backward_data_size(g));
    return partials > 0 ? backward_data_partials_offset_bytes<T>(g) + partials * int64_t{sizeof(float)}
                        : transposed_weights(g) * int64_t{sizeof(T)};
}

// The float storage's workspace, the largest: the bf16 calls need at most as much (their partial products are
// the same floats, their transposed weights half the bytes).
int64_t workspace_floats(const Conv2dGeometry& g) {
    return std::max({partial_floats(forward_size(g)), backward_data_bytes<float>(g) / int64_t{sizeof(float)},
                     partial_floats(backward_filter_size(g))});
}

// allow_tf32 takes the TF32 kernel where it can run; elsewhere the FP32 kernel (more precise, never wrong).
Arithmetic float_arithmetic(bool allow_tf32) {
    return allow_tf32 && conv2d_implicit_tf32_available() ? Arithmetic::tf32 : Arithmetic::fp32;
}

// The arithmetic of a bf16 call: automatic takes tensor cores where they run.
Arithmetic bf16_arithmetic(ImplicitBf16Kernel kernel, const char* op) {
    switch (kernel) {
        case ImplicitBf16Kernel::automatic:
            return conv2d_implicit_bf16_tensor_cores_available() ? Arithmetic::bf16_mma : Arithmetic::fp32;
        case ImplicitBf16Kernel::tensor_cores:
            CUDACNN_CHECK(
                conv2d_implicit_bf16_tensor_cores_available(),
                "{}: ImplicitBf16Kernel::tensor_cores needs a build with CUDACNN_IMPLICIT_BF16_MMA on "
                "(it is {}) and a GPU of compute capability 8.0 or more; use automatic or cuda_cores",
                op, CUDACNN_IMPLICIT_BF16_MMA ? "on" : "off");
            return Arithmetic::bf16_mma;
        case ImplicitBf16Kernel::cuda_cores:
            return Arithmetic::fp32;
    }
    CUDACNN_FAIL("{}: unknown ImplicitBf16Kernel {}", op, static_cast<int>(kernel));
}

void check_geometry(const Conv2dGeometry& g, const char* op) {
    const std::string why = conv2d_implicit_unsupported(g);
    CUDACNN_CHECK(why.empty(), "{}: {}", op, why);
}

void check_pointers(std::initializer_list<const void*> pointers, const char* names, const char* op) {
    for (const void* p : pointers) {
        CUDACNN_CHECK(p != nullptr, "{}: {} must be device pointers, not null", op, names);
    }
}

void check_workspace(const Conv2dGeometry& g, const void* workspace, size_t bytes, int64_t needed_bytes,
                     const char* op) {
    check_conv2d_workspace(op, g, workspace, bytes, needed_bytes, [&] {
        return fmt::format("conv2d_implicit_workspace_bytes(g) bytes ({})",
                           conv2d_implicit_workspace_bytes(g));
    });
}

// Launches the implicit GEMM in arithmetic kArith with the block tile that fits m (the rows of A) over
// `slices` k slices.
template <bool kBKFast, kernels::Arithmetic kArith, class GA, class GB, class TC>
void launch_implicit_gemm(ImplicitProblem<GA, GB, TC> p, int64_t slices, cudaStream_t stream) {
    const int64_t m = p.a_rows.count, n = p.b_cols.count;
    const int block_rows = block_rows_for(m);
    p.tiles_n = static_cast<int>(ceil_div(n, kernels::kImplicitBlockN));
    const dim3 grid(static_cast<unsigned>(ceil_div(m, block_rows) * p.tiles_n),
                    static_cast<unsigned>(slices));
    const dim3 block(kernels::kImplicitThreads);
    if (block_rows == 32) {
        launch(kernels::implicit_gemm_kernel<32, kBKFast, kArith, GA, GB, TC>, grid, block, 0, stream, p);
    } else if (block_rows == 64) {
        launch(kernels::implicit_gemm_kernel<64, kBKFast, kArith, GA, GB, TC>, grid, block, 0, stream, p);
    } else {
        launch(kernels::implicit_gemm_kernel<128, kBKFast, kArith, GA, GB, TC>, grid, block, 0, stream, p);
    }
}

// TF32 is honoured for float storage only and bf16 wmma for bf16 storage only (the public calls never ask
// otherwise; each problem instantiates only the tensor-core kernel it can use); everything else runs FP32.
template <bool kBKFast, class GA, class GB, class TC>
void launch_implicit_gemm(ImplicitProblem<GA, GB, TC> p, int64_t slices, Arithmetic arith,
                          cudaStream_t stream) {
#if CUDACNN_IMPLICIT_TF32
    if constexpr (std::is_same_v<GA, MatrixGather<float>> && std::is_same_v<TC, float>) {
        if (arith == Arithmetic::tf32)
            return launch_implicit_gemm<kBKFast, Arithmetic::tf32>(p, slices, stream);
    }
#endif
#if CUDACNN_IMPLICIT_BF16_MMA
    if constexpr (std::is_same_v<GA, MatrixGather<bf16>>) {
        if (arith == Arithmetic::bf16_mma) {
            return launch_implicit_gemm<kBKFast, Arithmetic::bf16_mma>(p, slices, stream);
        }
    }
#endif
    (void)arith;
    launch_implicit_gemm<kBKFast, Arithmetic::fp32>(p, slices, stream);
}

// Runs product p (its k, A, B and final output view set) in arithmetic `arith`: in one pass, or split over k
// into dense partial products at `partials` (room for partial_floats; float whatever TC, so that each output
// is rounded to TC once, by the sum) and then summed into p.c in slice order. The split is the same for every
// arithmetic (slices a multiple of 8 long; bf16 wmma's last step of a slice may then be half zeros), so the
// bf16 kernels sum the same slices.
template <bool kBKFast, class GA, class GB, class TC>
void run_product(ImplicitProblem<GA, GB, TC> p, float* partials, Arithmetic arith, cudaStream_t stream) {
    const ProductSize size{p.a_rows.count, p.b_cols.count, p.k};
    const KSplit split = k_split(size);
    p.k_slice = static_cast<int>(split.slice_k);
    if (split.slices == 1) {
        launch_implicit_gemm<kBKFast>(p, 1, arith, stream);
        return;
    }
    ImplicitProblem<GA, GB, float> q{p.a,   p.a_rows, p.a_k, p.b,       p.b_cols,
                                     p.b_k, {},       p.k,   p.k_slice, p.tiles_n};
    q.c = {partials, dense(size.n, size.m), dense(1, size.n), nullptr, static_cast<int>(size.m * size.n),
           nullptr};
    launch_implicit_gemm<kBKFast>(q, split.slices, arith, stream);
    if (p.c.stats != nullptr) {
        const int64_t tiles_n = ceil_div(size.n, kernels::kImplicitBlockN);
        const int64_t threads = size.m * tiles_n * 32;
        launch(kernels::sum_slices_stats_kernel<TC>, dim3(static_cast<unsigned>(ceil_div(threads, 256))),
               dim3(256), 0, stream, partials, static_cast<int>(split.slices), p.c,
               static_cast<int>(tiles_n));
        return;
    }
    launch(kernels::sum_slices_kernel<TC>, elementwise_grid(size.m * size.n), dim3(kElementwiseBlock), 0,
           stream, partials, static_cast<int>(split.slices), p.c);
}

// The three directions for storage T (float or bf16), behind the public overloads. Arithmetic tf32 only with
// float, bf16_mma only with bf16.
template <class T>
void run_forward(const Conv2dGeometry& g, const T* x, const T* w, const float* bias, T* y, void* workspace,
                 size_t workspace_bytes, cudaStream_t stream, Arithmetic arith, MemoryFormat format,
                 BatchNorm2dPartialStats* stats = nullptr) {
    const char* op = "conv2d_implicit_forward";
    check_geometry(g, op);
    check_pointers({x, w, y}, "x, w and y", op);
    check_workspace(g, workspace, workspace_bytes, partial_floats(forward_size(g)) * int64_t{sizeof(float)},
                    op);
    const int64_t k = column_rows(g), plane = out_plane(g), n = g.batch * plane, hw = g.in_h * g.in_w;
    const LayoutStrides xs = layout_strides(format, g.in_channels, hw);
    const LayoutStrides ys = layout_strides(format, g.out_channels, plane);
    ImplicitProblem<MatrixGather<T>, SpatialGather<T>, T> p{};
    // A = W (OC, K); B = col: column (n, oh, ow), k (c, i, j) reads x[n, c, oh·SH − PT + i·DH, ow·SW − PL +
    // j·DW]. The k order is (c, i, j) in both formats (the weights' order), so NHWC sums as NCHW does.
    p.a = {w};
    p.a_rows = dense(k, g.out_channels);
    p.a_k = dense(1, k);
    p.b = {x, static_cast<int>(g.in_h), static_cast<int>(g.in_w), 1, 1, static_cast<int>(xs.pixel)};
    p.b_cols =
        decoder(plane, g.out_w, g.in_channels * hw, g.stride_h, -g.pad_top, g.stride_w, -g.pad_left, n);
    p.b_k = decoder(taps(g), g.kernel_w, xs.channel, g.dilation_h, 0, g.dilation_w, 0, k);
    p.c = {y,
           dense(ys.channel, g.out_channels),
           images_by_plane(plane, g.out_channels * plane, n, ys.pixel),
           bias,
           0,
           stats};
    p.k = static_cast<int>(k);
    run_product<false>(p, static_cast<float*>(workspace), arith, stream);
}

template <class T>
void run_backward_data(const Conv2dGeometry& g, const T* dy, const T* w, T* dx, void* workspace,
                       size_t workspace_bytes, cudaStream_t stream, Arithmetic arith, MemoryFormat format) {
    const char* op = "conv2d_implicit_backward_data";
    check_geometry(g, op);
    check_pointers({dy, w, dx}, "dy, w and dx", op);
    check_workspace(g, workspace, workspace_bytes, backward_data_bytes<T>(g), op);
    T* wt = static_cast<T*>(workspace);
    const int64_t weights = transposed_weights(g);
    launch(kernels::transpose_weights_kernel<T>, elementwise_grid(weights), dim3(kElementwiseBlock), 0,
           stream, w, wt, static_cast<int>(g.out_channels), static_cast<int>(g.in_channels),
           static_cast<int>(taps(g)));
    const int64_t k = g.out_channels * taps(g), plane = out_plane(g), hw = g.in_h * g.in_w, n = g.batch * hw;
    const LayoutStrides dys = layout_strides(format, g.out_channels, plane);
    const LayoutStrides dxs = layout_strides(format, g.in_channels, hw);
    ImplicitProblem<MatrixGather<T>, SpatialGather<T>, T> p{};
    // A = Wᵗ (C, OC·KH·KW); B: column (n, h, w), k (oc, i, j) reads dy[n, oc, (h + PT − i·DH) / SH,
    // (w + PL − j·DW) / SW] where the divisions are exact and land inside the output.
    p.a = {wt};
    p.a_rows = dense(k, g.in_channels);
    p.a_k = dense(1, k);
    p.b = {dy,
           static_cast<int>(g.out_h),
           static_cast<int>(g.out_w),
           static_cast<int>(g.stride_h),
           static_cast<int>(g.stride_w),
           static_cast<int>(dys.pixel)};
    p.b_cols = decoder(hw, g.in_w, g.out_channels * plane, 1, g.pad_top, 1, g.pad_left, n);
    p.b_k = decoder(taps(g), g.kernel_w, dys.channel, -g.dilation_h, 0, -g.dilation_w, 0, k);
    p.c = {dx,
           dense(dxs.channel, g.in_channels),
           images_by_plane(hw, g.in_channels * hw, n, dxs.pixel),
           nullptr,
           0,
           nullptr};
    p.k = static_cast<int>(k);
    float* partials =
        reinterpret_cast<float*>(static_cast<char*>(workspace) + backward_data_partials_offset_bytes<T>(g));
    run_product<false>(p, partials, arith, stream);
}

// dw and dbias are float whatever T (parameter gradients).
template <class T>
void run_backward_filter(const Conv2dGeometry& g, const T* x, const T* dy, float* dw, float* dbias,
                         void* workspace, size_t workspace_bytes, cudaStream_t stream, Arithmetic arith,
                         MemoryFormat format) {
    const char* op = "conv2d_implicit_backward_filter";
    check_geometry(g, op);
    check_pointers({x, dy, dw}, "x, dy and dw", op);
    check_workspace(g, workspace, workspace_bytes,
                    partial_floats(backward_filter_size(g)) * int64_t{sizeof(float)}, op);
    const int64_t cols = column_rows(g), plane = out_plane(g), k = g.batch * plane, hw = g.in_h * g.in_w;
    const LayoutStrides xs = layout_strides(format, g.in_channels, hw);
    const LayoutStrides dys = layout_strides(format, g.out_channels, plane);
    ImplicitProblem<MatrixGather<T>, SpatialGather<T>, float> p{};
    // A = dy (OC, N·OH·OW): row oc, k (n, p) at dy[n, oc, p]; B = colᵀ: k (n, oh, ow), column (c, i, j) reads
    // x[n, c, oh·SH − PT + i·DH, ow·SW − PL + j·DW]; C = dW (OC, C·KH·KW), one per k slice when split.
    p.a = {dy};
    p.a_rows = dense(dys.channel, g.out_channels);
    p.a_k = images_by_plane(plane, g.out_channels * plane, k, dys.pixel);
    p.b = {x, static_cast<int>(g.in_h), static_cast<int>(g.in_w), 1, 1, static_cast<int>(xs.pixel)};
    p.b_cols = decoder(taps(g), g.kernel_w, xs.channel, g.dilation_h, 0, g.dilation_w, 0, cols);
    p.b_k = decoder(plane, g.out_w, g.in_channels * hw, g.stride_h, -g.pad_top, g.stride_w, -g.pad_left, k);
    p.c = {dw, dense(cols, g.out_channels), dense(1, cols), nullptr, 0, nullptr};
    p.k = static_cast<int>(k);
    run_product<true>(p, static_cast<float*>(workspace), arith, stream);
    if (dbias != nullptr) {
        conv_bias_grad(dy, dbias, g.batch, g.out_channels, g.out_h, g.out_w, stream, format);
    }
}

}  // namespace

std::string conv2d_implicit_unsupported(const Conv2dGeometry& g) {
    std::string problem = conv2d_geometry_problem(g);
    if (!problem.empty()) return problem;
    if (g.groups != 1) {
        return fmt::format("conv2d_implicit: groups {} are not supported (only groups 1), geometry {}",
                           g.groups, describe_conv2d_geometry(g));
    }
    if (g.padding_mode != cpu::Conv2dPaddingMode::zeros) {
        return fmt::format("conv2d_implicit: padding_mode '{}' is not supported (only 'zeros'), geometry {}",
                           cpu::conv2d_padding_mode_name(g.padding_mode), describe_conv2d_geometry(g));
    }
    const int64_t largest = std::max({g.batch * g.in_channels * g.in_h * g.in_w,
                                      g.batch * g.out_channels * out_plane(g), workspace_floats(g)});
    if (largest >= kMaxElements) {
        return fmt::format(
            "conv2d_implicit: geometry {} has a tensor (x, y, w or the workspace's split-k partial sums) of "
            "{} "
            "elements; the kernels index with 32 bits and take fewer than {}",
            describe_conv2d_geometry(g), largest, kMaxElements);
    }
    return {};
}

size_t conv2d_implicit_workspace_bytes(const Conv2dGeometry& g) {
    check_geometry(g, "conv2d_implicit_workspace_bytes");
    return static_cast<size_t>(workspace_floats(g)) * sizeof(float);
}

bool conv2d_implicit_tf32_available() {
    return CUDACNN_IMPLICIT_TF32 && tf32_tensor_cores_available();
}

// Compute capability 8.0, as TF32 (tf32_tensor_cores_available asks for it): bf16 wmma starts at sm_80 too.
bool conv2d_implicit_bf16_tensor_cores_available() {
    return CUDACNN_IMPLICIT_BF16_MMA && tf32_tensor_cores_available();
}

void conv2d_implicit_forward(const Conv2dGeometry& g, const float* x, const float* w, const float* bias,
                             float* y, void* workspace, size_t workspace_bytes, cudaStream_t stream) {
    run_forward(g, x, w, bias, y, workspace, workspace_bytes, stream, Arithmetic::fp32, MemoryFormat::nchw);
}

void conv2d_implicit_forward(const Conv2dGeometry& g, const float* x, const float* w, const float* bias,
                             float* y, void* workspace, size_t workspace_bytes, cudaStream_t stream,
                             bool allow_tf32) {
    run_forward(g, x, w, bias, y, workspace, workspace_bytes, stream, float_arithmetic(allow_tf32),
                MemoryFormat::nchw);
}

void conv2d_implicit_forward(const Conv2dGeometry& g, const bf16* x, const bf16* w, const float* bias,
                             bf16* y, void* workspace, size_t workspace_bytes, cudaStream_t stream) {
    conv2d_implicit_forward_with_kernel(ImplicitBf16Kernel::automatic, g, x, w, bias, y, workspace,
                                        workspace_bytes, stream, MemoryFormat::nchw);
}

void conv2d_implicit_backward_data(const Conv2dGeometry& g, const float* dy, const float* w, float* dx,
                                   void* workspace, size_t workspace_bytes, cudaStream_t stream) {
    run_backward_data(g, dy, w, dx, workspace, workspace_bytes, stream, Arithmetic::fp32, MemoryFormat::nchw);
}

void conv2d_implicit_backward_data(const Conv2dGeometry& g, const float* dy, const float* w, float* dx,
                                   void* workspace, size_t workspace_bytes, cudaStream_t stream,
                                   bool allow_tf32) {
    run_backward_data(g, dy, w, dx, workspace, workspace_bytes, stream, float_arithmetic(allow_tf32),
                      MemoryFormat::nchw);
}

void conv2d_implicit_backward_data(const Conv2dGeometry& g, const bf16* dy, const bf16* w, bf16* dx,
                                   void* workspace, size_t workspace_bytes, cudaStream_t stream) {
    conv2d_implicit_backward_data_with_kernel(ImplicitBf16Kernel::automatic, g, dy, w, dx, workspace,
                                              workspace_bytes, stream, MemoryFormat::nchw);
}

void conv2d_implicit_backward_filter(const Conv2dGeometry& g, const float* x, const float* dy, float* dw,
                                     float* dbias, void* workspace, size_t workspace_bytes,
                                     cudaStream_t stream) {
    run_backward_filter(g, x, dy, dw, dbias, workspace, workspace_bytes, stream, Arithmetic::fp32,
                        MemoryFormat::nchw);
}

void conv2d_implicit_backward_filter(const Conv2dGeometry& g, const float* x, const float* dy, float* dw,
                                     float* dbias, void* workspace, size_t workspace_bytes,
                                     cudaStream_t stream, bool allow_tf32) {
    run_backward_filter(g, x, dy, dw, dbias, workspace, workspace_bytes, stream, float_arithmetic(allow_tf32),
                        MemoryFormat::nchw);
}

void conv2d_implicit_backward_filter(const Conv2dGeometry& g, const bf16* x, const bf16* dy, float* dw,
                                     float* dbias, void* workspace, size_t workspace_bytes,
                                     cudaStream_t stream) {
    conv2d_implicit_backward_filter_with_kernel(ImplicitBf16Kernel::automatic, g, x, dy, dw, dbias, workspace,
                                                workspace_bytes, stream, MemoryFormat::nchw);
}

// The NHWC-capable overloads (format).
void conv2d_implicit_forward(const Conv2dGeometry& g, const float* x, const float* w, const float* bias,
                             float* y, void* workspace, size_t workspace_bytes, cudaStream_t stream,
                             MemoryFormat format) {
    run_forward(g, x, w, bias, y, workspace, workspace_bytes, stream, Arithmetic::fp32, format);
}

void conv2d_implicit_forward(const Conv2dGeometry& g, const float* x, const float* w, const float* bias,
                             float* y, void* workspace, size_t workspace_bytes, cudaStream_t stream,
                             bool allow_tf32, MemoryFormat format) {
    run_forward(g, x, w, bias, y, workspace, workspace_bytes, stream, float_arithmetic(allow_tf32), format);
}

void conv2d_implicit_forward(const Conv2dGeometry& g, const bf16* x, const bf16* w, const float* bias,
                             bf16* y, void* workspace, size_t workspace_bytes, cudaStream_t stream,
                             MemoryFormat format) {
    conv2d_implicit_forward_with_kernel(ImplicitBf16Kernel::automatic, g, x, w, bias, y, workspace,
                                        workspace_bytes, stream, format);
}

void conv2d_implicit_backward_data(const Conv2dGeometry& g, const float* dy, const float* w, float* dx,
                                   void* workspace, size_t workspace_bytes, cudaStream_t stream,
                                   MemoryFormat format) {
    run_backward_data(g, dy, w, dx, workspace, workspace_bytes, stream, Arithmetic::fp32, format);
}

void conv2d_implicit_backward_data(const Conv2dGeometry& g, const float* dy, const float* w, float* dx,
                                   void* workspace, size_t workspace_bytes, cudaStream_t stream,
                                   bool allow_tf32, MemoryFormat format) {
    run_backward_data(g, dy, w, dx, workspace, workspace_bytes, stream, float_arithmetic(allow_tf32), format);
}

void conv2d_implicit_backward_data(const Conv2dGeometry& g, const bf16* dy, const bf16* w, bf16* dx,
                                   void* workspace, size_t workspace_bytes, cudaStream_t stream,
                                   MemoryFormat format) {
    conv2d_implicit_backward_data_with_kernel(ImplicitBf16Kernel::automatic, g, dy, w, dx, workspace,
                                              workspace_bytes, stream, format);
}

void conv2d_implicit_backward_filter(const Conv2dGeometry& g, const float* x, const float* dy, float* dw,
                                     float* dbias, void* workspace, size_t workspace_bytes,
                                     cudaStream_t stream, MemoryFormat format) {
    run_backward_filter(g, x, dy, dw, dbias, workspace, workspace_bytes, stream, Arithmetic::fp32, format);
}

void conv2d_implicit_backward_filter(const Conv2dGeometry& g, const float* x, const float* dy, float* dw,
                                     float* dbias, void* workspace, size_t workspace_bytes,
                                     cudaStream_t stream, bool allow_tf32, MemoryFormat format) {
    run_backward_filter(g, x, dy, dw, dbias, workspace, workspace_bytes, stream, float_arithmetic(allow_tf32),
                        format);
}

void conv2d_implicit_backward_filter(const Conv2dGeometry& g, const bf16* x, const bf16* dy, float* dw,
                                     float* dbias, void* workspace, size_t workspace_bytes,
                                     cudaStream_t stream, MemoryFormat format) {
    conv2d_implicit_backward_filter_with_kernel(ImplicitBf16Kernel::automatic, g, x, dy, dw, dbias, workspace,
                                                workspace_bytes, stream, format);
}

// The bf16 calls on the kernel the caller chooses.
void conv2d_implicit_forward_with_kernel(ImplicitBf16Kernel kernel, const Conv2dGeometry& g, const bf16* x,
                                         const bf16* w, const float* bias, bf16* y, void* workspace,
                                         size_t workspace_bytes, cudaStream_t stream, MemoryFormat format) {
    run_forward(g, x, w, bias, y, workspace, workspace_bytes, stream,
                bf16_arithmetic(kernel, "conv2d_implicit_forward"), format);
}

void conv2d_implicit_backward_data_with_kernel(ImplicitBf16Kernel kernel, const Conv2dGeometry& g,
                                               const bf16* dy, const bf16* w, bf16* dx, void* workspace,
                                               size_t workspace_bytes, cudaStream_t stream,
                                               MemoryFormat format) {
    run_backward_data(g, dy, w, dx, workspace, workspace_bytes, stream,
                      bf16_arithmetic(kernel, "conv2d_implicit_backward_data"), format);
}

void conv2d_implicit_backward_filter_with_kernel(ImplicitBf16Kernel kernel, const Conv2dGeometry& g,
                                                 const bf16* x, const bf16* dy, float* dw, float* dbias,
                                                 void* workspace, size_t workspace_bytes, cudaStream_t stream,
                                                 MemoryFormat format) {
    run_backward_filter(g, x, dy, dw, dbias, workspace, workspace_bytes, stream,
                        bf16_arithmetic(kernel, "conv2d_implicit_backward_filter"), format);
}

int conv2d_implicit_forward_stats_partials(const Conv2dGeometry& g) {
    check_geometry(g, "conv2d_implicit_forward_stats_partials");
    return static_cast<int>(ceil_div(forward_size(g).n, kernels::kImplicitBlockN));
}

size_t conv2d_implicit_forward_stats_bytes(const Conv2dGeometry& g) {
    return static_cast<size_t>(g.out_channels) *
           static_cast<size_t>(conv2d_implicit_forward_stats_partials(g)) * sizeof(BatchNorm2dPartialStats);
}

namespace {

void check_stats(const Conv2dGeometry& g, const BatchNorm2dPartialStats* stats, size_t stats_bytes) {
    const char* op = "conv2d_implicit_forward_with_stats";
    const size_t needed = conv2d_implicit_forward_stats_bytes(g);
    CUDACNN_CHECK(stats != nullptr, "{}: stats must be a device pointer, not null", op);
    CUDACNN_CHECK(stats_bytes >= needed,
                  "{}: stats has {} bytes; the geometry needs conv2d_implicit_forward_stats_bytes(g) = {}",
                  op, stats_bytes, needed);
}

}  // namespace

void conv2d_implicit_forward_with_stats(const Conv2dGeometry& g, const float* x, const float* w,
                                        const float* bias, float* y, BatchNorm2dPartialStats* stats,
                                        size_t stats_bytes, void* workspace, size_t workspace_bytes,
                                        cudaStream_t stream, MemoryFormat format) {
    check_stats(g, stats, stats_bytes);
    run_forward(g, x, w, bias, y, workspace, workspace_bytes, stream, Arithmetic::fp32, format, stats);
}

void conv2d_implicit_forward_with_stats(const Conv2dGeometry& g, const bf16* x, const bf16* w,
                                        const float* bias, bf16* y, BatchNorm2dPartialStats* stats,
                                        size_t stats_bytes, void* workspace, size_t workspace_bytes,
                                        cudaStream_t stream, MemoryFormat format) {
    check_stats(g, stats, stats_bytes);
    run_forward(g, x, w, bias, y, workspace, workspace_bytes, stream,
                bf16_arithmetic(ImplicitBf16Kernel::automatic, "conv2d_implicit_forward_with_stats"), format,
                stats);
}

}  // namespace cudacnn::gpu
