// The BF16 GEMM on tensor cores: 128 × 128 or 64 × 64 block tiles of wmma bf16 16 × 16 × 16 products with
// FP32 accumulators, k in double-buffered shared slices of 32. See gemm_bf16_tc.hpp for the contract.
#include "cuda/gemm_bf16_tc.hpp"

#include <mma.h>  // nvcuda::wmma under nvcc; under the host compiler it declares nothing (emu.hpp has its own)

#include <algorithm>
#include <climits>
#include <cstdint>
#include <type_traits>

#include "cuda/gemm.hpp"
#include "cuda/gemm_common.hpp"
#include "cuda/gemm_tf32.hpp"
#include "cuda/launch.cuh"
#include "cudacnn/error.hpp"

// Tensor-core paths on (1, the default) or left out (0): then gemm_bf16 runs on CUDA cores only.
#ifndef CUDACNN_TENSOR_CORES
#define CUDACNN_TENSOR_CORES 1
#endif

// Whether this compilation can emit wmma bf16 code: the host compiler (emulator) and sm_80+ device code.
// Elsewhere the kernel's body is a plain product (correct on any architecture, never picked by the host).
#if CUDACNN_TENSOR_CORES && (!defined(__CUDA_ARCH__) || __CUDA_ARCH__ >= 800)
#define CUDACNN_BF16_WMMA 1
#else
#define CUDACNN_BF16_WMMA 0
#endif

namespace cudacnn::gpu {
namespace bf16_tc_kernels {

constexpr int kBlockK = 32;  // k per shared slice: two wmma k-steps per barrier
constexpr int kFrag = 16;    // wmma bf16 tiles are 16 × 16 × 16
constexpr int kGroup = 8;    // bf16 per 16-byte global load and shared store
// Shared rows padded by 8 bf16 (16 bytes): ldm stays a multiple of 8 elements as wmma requires, every
// 16-row step stays a multiple of 32 bytes (fragments 256-bit aligned), and consecutive rows start 16 bytes
// further along the banks, so the 16-byte stores and fragment loads of a warp spread over more banks.
constexpr int kPad = 8;
constexpr int kScratchLd = kFrag + 4;  // the epilogue's float scratch: ldm a multiple of 4 floats

// A block tile of kRows × kCols computed by kWarpsM × kWarpsN warps, each (kRows / kWarpsM) × (kCols /
// kWarpsN) of wmma accumulators.
template <int kRows, int kCols, int kWarpsM, int kWarpsN>
struct TcTile {
    static constexpr int rows = kRows, cols = kCols, warps_n = kWarpsN;
    static constexpr int warps = kWarpsM * kWarpsN, threads = 32 * warps;
    static constexpr int warp_rows = kRows / kWarpsM, warp_cols = kCols / kWarpsN;
    static constexpr int frags_m = warp_rows / kFrag, frags_n = warp_cols / kFrag;
    static_assert(frags_m * kFrag * kWarpsM == kRows && frags_n * kFrag * kWarpsN == kCols,
                  "the warps' accumulators must cover the block tile");
};
using Tile128 = TcTile<128, 128, 2, 4>;  // 256 threads, warp tile 64 × 32 (4 × 2 accumulators)
using Tile64 = TcTile<64, 64, 2, 2>;     // 128 threads, warp tile 32 × 32 (2 × 2 accumulators)

// Everything a launch needs, by value. TOut is C's storage (float or bf16). vec_a, vec_b: 16-byte loads of
// 8 bf16 are aligned (pointer, leading dimension and batch stride); vec_c: groups of 4 C elements are
// (gemm_vectorizable), for float4 / 8-byte stores.
template <class TOut>
struct TcParams {
    int64_t m, n, k, k_last;  // the last batch entry multiplies only k_last of k
    float alpha, beta;
    const bf16* a;
    int64_t lda, stride_a;
    const bf16* b;
    int64_t ldb, stride_b;
    const float* bias;  // (n) or nullptr: beta · C's place
    TOut* c;
    int64_t ldc, stride_c;
    int64_t batch;
    int64_t tiles_n;  // column tiles per matrix: blockIdx.x = tile_row · tiles_n + tile_col
    bool vec_a, vec_b, vec_c;
};

// 8 consecutive bf16, moved in one 16-byte access.
struct alignas(16) Bf16Octet {
    bf16 v[kGroup];
};

// One operand's k-slice in shared memory: op(X) restricted to kOuter rows (of m for A, of n for B) × kBlockK,
// stored as the global matrix is (k-contiguous [outer][k] when X is stored with k along its rows: A
// untransposed, B transposed; outer-contiguous [k][outer] otherwise), so staging never transposes and the
// fragments read it row- or column-major.
template <int kOuter, bool kKContiguous, int kThreads>
struct Slice {
    static constexpr bool k_contiguous = kKContiguous;
    static constexpr int threads = kThreads;
    static constexpr int rows = kKContiguous ? kOuter : kBlockK;
    static constexpr int cols = kKContiguous ? kBlockK : kOuter;
    static constexpr int ld = cols + kPad;
    static constexpr int groups_per_row = cols / kGroup;
    static constexpr int row_step = kThreads / groups_per_row;  // stored rows between a thread's groups
    static constexpr int groups_per_thread = rows * cols / kGroup / kThreads;
    static_assert(row_step * groups_per_row == kThreads &&
                      groups_per_thread * kThreads * kGroup == rows * cols,
                  "the slice splits evenly into groups of 8 per thread, all in one column");

    // wmma: ldm a multiple of 8 bf16; slices stacked in shared memory keep 256-bit aligned fragments.
    static_assert(ld % 8 == 0 && rows * ld * sizeof(bf16) % 32 == 0, "wmma alignment");

    bf16 v[rows][ld];

    // The address of element (outer o, k q), for wmma loads.
    __device__ const bf16* address(int o, int q) const { return kKContiguous ? &v[o][q] : &v[q][o]; }
};

// A block's shared memory: the double-buffered slices during the k loop, then each warp's epilogue scratch.
template <class Tile, class SA, class SB>
union alignas(128) TcShared {
    struct {
        SA a[2];
        SB b[2];
    } slices;
    float scratch[Tile::warps][kFrag][kScratchLd];
};

// This thread's groups of 8 of the slice at (outer0, k0) of op(X), where op(X) is (outer_size, k) and X is
// stored row-major as the Slice is. Group g = threadIdx.x + i · kThreads is stored row g / groups_per_row,
// column group g % groups_per_row: consecutive threads read consecutive addresses. Elements outside the
// matrix read as 0 (exact zero products), so edge tiles need no further guards.
template <class S>
__device__ inline void load_slice(const bf16* x, int64_t ld, int64_t outer_size, int64_t k, int64_t outer0,
                                  int64_t k0, bool vec, Bf16Octet (&r)[S::groups_per_thread]) {
    const int64_t rows = S::k_contiguous ? outer_size : k, cols = S::k_contiguous ? k : outer_size;
    const int64_t row = (S::k_contiguous ? outer0 : k0) + threadIdx.x / S::groups_per_row;
    const int64_t col = (S::k_contiguous ? k0 : outer0) + (threadIdx.x % S::groups_per_row) * kGroup;
    const bf16 zero = from_float<bf16>(0.0f);
#pragma unroll
    for (int i = 0; i < S::groups_per_thread; ++i) {
        const int64_t stored_row = row + i * S::row_step;
        if (stored_row >= rows) {
#pragma unroll
            for (int j = 0; j < kGroup; ++j) r[i].v[j] = zero;
            continue;
        }
        const bf16* src = x + stored_row * ld + col;
        if (vec && col + kGroup <= cols) {
            r[i] = *reinterpret_cast<const Bf16Octet*>(src);
        } else {
#pragma unroll
            for (int j = 0; j < kGroup; ++j) r[i].v[j] = col + j < cols ? src[j] : zero;
        }
    }
}

// Stores the groups of load_slice at the same places of the shared slice (16-byte stores).
template <class S>
__device__ inline void store_slice(S& s, const Bf16Octet (&r)[S::groups_per_thread]) {
#pragma unroll
    for (int i = 0; i < S::groups_per_thread; ++i) {
        const int g = threadIdx.x + i * S::threads;
        *reinterpret_cast<Bf16Octet*>(&s.v[g / S::groups_per_row][(g % S::groups_per_row) * kGroup]) = r[i];
    }
}

// One C element as the CUDA-core kernel computes it (cuda/gemm.cu store_row, with one explicit rounding order
// nvcc cannot refuse): alpha · sum, + beta · C as fmaf(beta, C, alpha · sum), or the bias as
// fmaf(1, bias, alpha · sum); beta == 0 never reads C. Rounded once to T.
template <class T>
__device__ inline void store_element(T* dst, float sum, float alpha, float beta, const float* bias) {
    float value = alpha * sum;
    if (bias != nullptr) {
        value = __fmaf_rn(1.0f, *bias, value);
    } else if (beta != 0.0f) {
        value = __fmaf_rn(beta, to_float(*dst), value);
    }
    *dst = from_float<T>(value);
}


// Writes the 4 sums at columns col … col + 3 of a C row (dst at col), as store_element does each: one vector
// access where C allows it and all 4 are inside, else element by element up to n.
template <class T>
__device__ inline void write_quad_of_row(T* dst, int64_t col, const float* sums, const TcParams<T>& p) {
    const float* bias = p.bias != nullptr ? p.bias + col : nullptr;
    if (p.vec_c && col + 3 < p.n) {
        float v[4];
        if (bias == nullptr && p.beta != 0.0f) load_quad(dst, v);
#pragma unroll
        for (int j = 0; j < 4; ++j) {
            const float scaled = p.alpha * sums[j];
            v[j] = bias != nullptr  ? __fmaf_rn(1.0f, bias[j], scaled)
                   : p.beta != 0.0f ? __fmaf_rn(p.beta, v[j], scaled)
                                    : scaled;
        }
        store_quad(dst, v);
        return;
    }
#pragma unroll
    for (int j = 0; j < 4; ++j) {
        if (col + j < p.n)
            store_element(dst + j, sums[j], p.alpha, p.beta, bias != nullptr ? bias + j : nullptr);
    }
}

#if CUDACNN_BF16_WMMA
namespace wmma = nvcuda::wmma;
using Accumulator = wmma::fragment<wmma::accumulator, kFrag, kFrag, kFrag, float>;

// The fragment layout that reads a Slice: matrix_a (m × k) is row-major in a k-contiguous slice, matrix_b
// (k × n) column-major in one.
template <bool kKContiguous, bool kIsA>
using FragLayout = std::conditional_t<kKContiguous == kIsA, wmma::row_major, wmma::col_major>;

// Warp (wr, wc) adds the slice's products to its accumulators, k in order (two steps of 16).
template <class Tile, class SA, class SB>
__device__ inline void multiply_slice(const SA& a_s, const SB& b_s,
                                      Accumulator (&acc)[Tile::frags_m][Tile::frags_n]) {
    const int warp = threadIdx.x / 32;
    const int wr = warp / Tile::warps_n, wc = warp % Tile::warps_n;
    using FragA =
        wmma::fragment<wmma::matrix_a, kFrag, kFrag, kFrag, bf16, FragLayout<SA::k_contiguous, true>>;
    using FragB =
        wmma::fragment<wmma::matrix_b, kFrag, kFrag, kFrag, bf16, FragLayout<SB::k_contiguous, false>>;
#pragma unroll
    for (int q = 0; q < kBlockK; q += kFrag) {
        FragA a_frag[Tile::frags_m];
        FragB b_frag[Tile::frags_n];
#pragma unroll
        for (int i = 0; i < Tile::frags_m; ++i)
            wmma::load_matrix_sync(a_frag[i], a_s.address(wr * Tile::warp_rows + i * kFrag, q), SA::ld);
#pragma unroll
        for (int j = 0; j < Tile::frags_n; ++j)
            wmma::load_matrix_sync(b_frag[j], b_s.address(wc * Tile::warp_cols + j * kFrag, q), SB::ld);
#pragma unroll
        for (int i = 0; i < Tile::frags_m; ++i) {
#pragma unroll
            for (int j = 0; j < Tile::frags_n; ++j)
                wmma::mma_sync(acc[i][j], a_frag[i], b_frag[j], acc[i][j]);
        }
    }
}

// Writes the warp's accumulators to C, one 16 × 16 fragment at a time through the warp's scratch: lane l
// takes row l / 2, columns 8 · (l % 2) … + 7 of the fragment (two quads of write_quad_of_row).
template <class Tile, class T>
__device__ inline void write_accumulators(float (&scratch)[kFrag][kScratchLd],
                                          const Accumulator (&acc)[Tile::frags_m][Tile::frags_n],
                                          const TcParams<T>& p, T* c, int64_t row0, int64_t col0) {
    const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
    const int wr = warp / Tile::warps_n, wc = warp % Tile::warps_n;
    const int r = lane / 2, half = (lane % 2) * kGroup;
#pragma unroll
    for (int i = 0; i < Tile::frags_m; ++i) {
#pragma unroll
        for (int j = 0; j < Tile::frags_n; ++j) {
            wmma::store_matrix_sync(&scratch[0][0], acc[i][j], kScratchLd, wmma::mem_row_major);
            __syncwarp();  // the fragment is in the scratch
            const int64_t row = row0 + wr * Tile::warp_rows + i * kFrag + r;
            const int64_t col = col0 + wc * Tile::warp_cols + j * kFrag + half;
            if (row < p.m) {
                T* dst = c + row * p.ldc + col;
                write_quad_of_row(dst, col, &scratch[r][half], p);
                write_quad_of_row(dst + 4, col + 4, &scratch[r][half + 4], p);
            }
            __syncwarp();  // every lane has read it before the next fragment overwrites it
        }
    }
}
#endif

// One block computes one Tile::rows × Tile::cols tile of C for every batch entry blockIdx.y, + gridDim.y, …
// Pipeline, one barrier per k-slice: while slice t is multiplied out of buffer t % 2, slice t + 1 is loaded
// from global memory into registers and then stored into the other buffer, which everyone finished reading
// before the barrier that ended step t − 1.
// Every element sums its k products in order 0 … k − 1 (the wmma k-steps in order, each accumulating onto
// the last), then zero products up to the next multiple of 32; the products of two bf16 are exact in float.
// So where the tensor cores add in k order in float (the emulator's nvcuda::wmma does), the sums are bit
// for bit the CUDA-core kernel's (cuda/gemm.cu, also k in order, zero products up to a multiple of 16; the
// extra +0 terms here could only turn a sum of −0 products into +0); on a GPU the tensor cores associate each
// 16-product step their own way.
template <class Tile, bool kTransA, bool kTransB, class TOut>
__global__ void __launch_bounds__(Tile::threads) gemm_bf16_tc_kernel(TcParams<TOut> p) {
    using SA = Slice<Tile::rows, !kTransA, Tile::threads>;
    using SB = Slice<Tile::cols, kTransB, Tile::threads>;
    __shared__ TcShared<Tile, SA, SB> smem;
    const int64_t row0 = (blockIdx.x / p.tiles_n) * int64_t{Tile::rows};
    const int64_t col0 = (blockIdx.x % p.tiles_n) * int64_t{Tile::cols};

    for (int64_t z = blockIdx.y; z < p.batch; z += gridDim.y) {
        const int64_t k = z + 1 == p.batch ? p.k_last : p.k;
        const bf16* a = p.a + z * p.stride_a;
        const bf16* b = p.b + z * p.stride_b;
        TOut* c = p.c + z * p.stride_c;
#if CUDACNN_BF16_WMMA
        Accumulator acc[Tile::frags_m][Tile::frags_n];
#pragma unroll
        for (int i = 0; i < Tile::frags_m; ++i) {
#pragma unroll
            for (int j = 0; j < Tile::frags_n; ++j) wmma::fill_fragment(acc[i][j], 0.0f);
        }
        Bf16Octet ra[SA::groups_per_thread], rb[SB::groups_per_thread];
        load_slice<SA>(a, p.lda, p.m, k, row0, 0, p.vec_a, ra);
        load_slice<SB>(b, p.ldb, p.n, k, col0, 0, p.vec_b, rb);
        store_slice(smem.slices.a[0], ra);
        store_slice(smem.slices.b[0], rb);
        __syncthreads();  // slice 0 is complete
        int buf = 0;
        for (int64_t k0 = 0; k0 < k; k0 += kBlockK, buf ^= 1) {
            const bool more = k0 + kBlockK < k;
            if (more) {
                load_slice<SA>(a, p.lda, p.m, k, row0, k0 + kBlockK, p.vec_a, ra);
                load_slice<SB>(b, p.ldb, p.n, k, col0, k0 + kBlockK, p.vec_b, rb);
            }
            multiply_slice<Tile>(smem.slices.a[buf], smem.slices.b[buf], acc);
            if (more) {
                store_slice(smem.slices.a[buf ^ 1], ra);
                store_slice(smem.slices.b[buf ^ 1], rb);
            }
            // The next slice is complete, and everyone is done with this one's buffer (and, after the last
            // slice, with all of them: the scratch below aliases them).
            __syncthreads();
        }
        write_accumulators<Tile>(smem.scratch[threadIdx.x / 32], acc, p, c, row0, col0);
        __syncthreads();  // the scratch is read out before the next batch entry stages its slices there
#else
        // A plain product for architectures without bf16 wmma (never launched there: see
        // bf16_tensor_cores_available), k in order, with the same epilogue.
        (void)smem;
        for (int e = threadIdx.x; e < Tile::rows * Tile::cols; e += Tile::threads) {
            const int64_t row = row0 + e / Tile::cols, col = col0 + e % Tile::cols;
            if (row >= p.m || col >= p.n) continue;
            float sum = 0.0f;
            for (int64_t q = 0; q < k; ++q) {
                const bf16 x = kTransA ? a[q * p.lda + row] : a[row * p.lda + q];
                const bf16 y = kTransB ? b[col * p.ldb + q] : b[q * p.ldb + col];
                sum += to_float(x) * to_float(y);
            }
            store_element(c + row * p.ldc + col, sum, p.alpha, p.beta,
                          p.bias != nullptr ? p.bias + col : nullptr);
        }
#endif
    }
}

}  // namespace bf16_tc_kernels

namespace {

// One block for each of the 132 SMs of an H100: the big tile only where it still gives every SM one.
constexpr int64_t kMinBlocks = 132;

int64_t tile_count(int64_t m, int64_t n, int64_t rows, int64_t cols) {
    return ceil_div(m, rows) * ceil_div(n, cols);
}

Bf16TcTiling choose_tiling(int64_t m, int64_t n, int64_t batch) {
    return tile_count(m, n, 128, 128) * batch >= kMinBlocks ? Bf16TcTiling::block128x128
                                                            : Bf16TcTiling::block64x64;
}

// 16-byte loads of 8 bf16 are legal when every matrix of the batch and every row starts 16-byte aligned.
bool octets_aligned(const bf16* p, int64_t ld, int64_t stride, int64_t batch) {
    return reinterpret_cast<uintptr_t>(p) % 16 == 0 && ld % 8 == 0 && (batch <= 1 || stride % 8 == 0);
}

template <class Tile, class TOut>
void launch_tiled(const char* op, bool trans_a, bool trans_b, bf16_tc_kernels::TcParams<TOut> p,
                  cudaStream_t stream) {
    using namespace bf16_tc_kernels;
    p.tiles_n = ceil_div(p.n, int64_t{Tile::cols});
    const int64_t tiles = tile_count(p.m, p.n, Tile::rows, Tile::cols);
    CUDACNN_CHECK(tiles <= INT_MAX, "{}: {} × {} needs {} tiles of {} × {}, more than one grid holds", op,
                  p.m, p.n, tiles, Tile::rows, Tile::cols);
    const dim3 grid(static_cast<unsigned>(tiles), static_cast<unsigned>(std::min(p.batch, kGemmMaxGridY)));
    const dim3 block(Tile::threads);
    if (!trans_a && !trans_b)
        launch(gemm_bf16_tc_kernel<Tile, false, false, TOut>, grid, block, 0, stream, p);
    if (!trans_a && trans_b) launch(gemm_bf16_tc_kernel<Tile, false, true, TOut>, grid, block, 0, stream, p);
    if (trans_a && !trans_b) launch(gemm_bf16_tc_kernel<Tile, true, false, TOut>, grid, block, 0, stream, p);
    if (trans_a && trans_b) launch(gemm_bf16_tc_kernel<Tile, true, true, TOut>, grid, block, 0, stream, p);
}

template <class TOut>
void tensor_cores_impl(const char* op, Bf16TcTiling tiling, bool trans_a, bool trans_b, int64_t m, int64_t n,
                       int64_t k, float alpha, const bf16* a, int64_t lda, int64_t stride_a, const bf16* b,
                       int64_t ldb, int64_t stride_b, float beta, const float* bias, TOut* c, int64_t ldc,
                       int64_t stride_c, int64_t batch, int64_t k_last, cudaStream_t stream) {
    check_gemm_args(op, trans_a, trans_b, m, n, k, alpha, a, lda, stride_a, b, ldb, stride_b, c, ldc,
                    stride_c, batch);
    if (m == 0 || n == 0 || batch == 0) return;
    if (k == 0 || alpha == 0.0f) {
        gemm_scale(m, n, beta, bias, c, ldc, stride_c, batch, stream);
        return;
    }
    CUDACNN_CHECK(k_last >= 1 && k_last <= k, "{}: the last entry's k = {} must lie in 1 … k = {}", op,
                  k_last, k);
    bf16_tc_kernels::TcParams<TOut> p{};
    p.m = m, p.n = n, p.k = k, p.k_last = k_last, p.alpha = alpha, p.beta = beta;
    p.a = a, p.lda = lda, p.stride_a = stride_a;
    p.b = b, p.ldb = ldb, p.stride_b = stride_b;
    p.bias = bias;
    p.c = c, p.ldc = ldc, p.stride_c = stride_c;
    p.batch = batch;
    p.vec_a = octets_aligned(a, lda, stride_a, batch);
    p.vec_b = octets_aligned(b, ldb, stride_b, batch);
    p.vec_c = gemm_vectorizable(c, ldc, stride_c, batch, sizeof(TOut));
    if (tiling == Bf16TcTiling::automatic) tiling = choose_tiling(m, n, batch);
#if CUDACNN_TENSOR_CORES
    if (tiling == Bf16TcTiling::block128x128) {
        return launch_tiled<bf16_tc_kernels::Tile128>(op, trans_a, trans_b, p, stream);
    }
    launch_tiled<bf16_tc_kernels::Tile64>(op, trans_a, trans_b, p, stream);
#else
    (void)p;
    CUDACNN_CHECK(false, "{}: this build has CUDACNN_TENSOR_CORES off; use Bf16GemmKernel::cuda_cores", op);
#endif
}

}  // namespace

bool bf16_tensor_cores_available() {
    // bf16 wmma needs what TF32 wmma needs (sm_80+, the macro on); tf32_tensor_cores_available asks the
    // device once and caches the answer.
    return CUDACNN_TENSOR_CORES && tf32_tensor_cores_available();
}

void gemm_bf16_tensor_cores(const char* op, Bf16TcTiling tiling, bool trans_a, bool trans_b, int64_t m,
                            int64_t n, int64_t k, float alpha, const bf16* a, int64_t lda, int64_t stride_a,
                            const bf16* b, int64_t ldb, int64_t stride_b, float beta, const float* bias,
                            float* c, int64_t ldc, int64_t stride_c, int64_t batch, int64_t k_last,
                            cudaStream_t stream) {
    tensor_cores_impl(op, tiling, trans_a, trans_b, m, n, k, alpha, a, lda, stride_a, b, ldb, stride_b, beta,
                      bias, c, ldc, stride_c, batch, k_last, stream);
}

void gemm_bf16_tensor_cores(const char* op, Bf16TcTiling tiling, bool trans_a, bool trans_b, int64_t m,
                            int64_t n, int64_t k, float alpha, const bf16* a, int64_t lda, int64_t stride_a,
                            const bf16* b, int64_t ldb, int64_t stride_b, float beta, const float* bias,
                            bf16* c, int64_t ldc, int64_t stride_c, int64_t batch, int64_t k_last,
                            cudaStream_t stream) {
    tensor_cores_impl(op, tiling, trans_a, trans_b, m, n, k, alpha, a, lda, stride_a, b, ldb, stride_b, beta,
                      bias, c, ldc, stride_c, batch, k_last, stream);
}

}  // namespace cudacnn::gpu
