// The TF32 GEMM: 64 × 64 block tiles stepped through k in slices of 32, on tensor cores (wmma 16 × 16 × 8)
// or on CUDA cores with the same rounding. See gemm_tf32.hpp for the contract.
#include "cuda/gemm_tf32.hpp"

#include <mma.h>  // nvcuda::wmma under nvcc; under the host compiler it declares nothing (emu.hpp has its own)

#include <algorithm>
#include <array>
#include <atomic>
#include <climits>
#include <cstdint>
#include <type_traits>

#include "cuda/gemm_common.hpp"
#include "cuda/launch.cuh"
#include "cudacnn/error.hpp"

// Tensor-core paths on (1, the default) or left out (0): then only the CUDA-core kernel is built and used.
#ifndef CUDACNN_TENSOR_CORES
#define CUDACNN_TENSOR_CORES 1
#endif

// Whether this compilation can emit the wmma TF32 code: the host compiler (emulator) and sm_80+ device code.
// Elsewhere the tensor-core kernel's body is the CUDA-core product, so it stays correct on any architecture
// (the host never picks it there anyway).
#if CUDACNN_TENSOR_CORES && (!defined(__CUDA_ARCH__) || __CUDA_ARCH__ >= 800)
#define CUDACNN_TF32_WMMA 1
#else
#define CUDACNN_TF32_WMMA 0
#endif

namespace cudacnn::gpu {
namespace tf32_kernels {

constexpr int kBlockM = 64, kBlockN = 64;  // the block tile of C
constexpr int kBlockK = 32;                // k per shared-memory slice
constexpr int kThreads = 128;              // 4 warps, 2 × 2 over the block tile
constexpr int kMinBlocksPerSm = 3;         // __launch_bounds__: at most 168 registers per thread
constexpr int kWarpTile = 32;              // each warp: 32 × 32 of C, 2 × 2 wmma accumulators
// Shared rows padded by 4 floats: rows stay 16-byte aligned (float4 stores) and wmma's ldm a multiple of 4,
// while a 16-row step moves 2304 or 4352 bytes (multiples of 32, so every fragment is 256-bit aligned).
constexpr int kPad = 4;
// CUDA-core kernel: each thread computes 4 rows × 8 columns of the block tile.
constexpr int kMicroRows = 4, kMicroCols = 8;
static_assert((kBlockM / kMicroRows) * (kBlockN / kMicroCols) == kThreads, "one micro tile per thread");
static_assert((kBlockM / kWarpTile) * (kBlockN / kWarpTile) * 32 == kThreads, "one warp tile per warp");

// Everything a launch needs, by value. vec_* says the operand's pointer, leading dimension and batch stride
// keep every group of 4 contiguous elements at a multiple of 4 16-byte aligned, so float4 loads are legal.
struct Tf32Params {
    int64_t m, n, k;
    float alpha, beta;
    const float* a;
    int64_t lda, stride_a;
    const float* b;
    int64_t ldb, stride_b;
    float* c;
    int64_t ldc, stride_c;
    int64_t batch;
    int64_t k_last;   // the last batch entry's k (≤ k): split-k's shorter last range runs in the same launch
    int64_t tiles_n;  // column tiles per matrix: blockIdx.x = tile_row · tiles_n + tile_col
    bool vec_a, vec_b;
};

// cvt.rna.tf32.f32 on the CUDA-core path, on any architecture: round to 10 mantissa bits, ties away from zero
// (half the dropped range added to the bits carries into the kept ones exactly then); infinities stay, and a
// NaN loses its dropped bits unrounded (so 0x7f800001 becomes an infinity, as the hardware conversion does).
// The tensor-core path uses wmma::__float_to_tf32, which must give the same bits.
__device__ inline float round_to_tf32(float x) {
    const unsigned bits = __float_as_uint(x);
    if ((bits & 0x7f800000u) == 0x7f800000u) return __uint_as_float(bits & ~0x1fffu);
    return __uint_as_float((bits + 0x1000u) & ~0x1fffu);
}

// One operand's k-slice in shared memory: op(X) restricted to kOuter rows (of m for A, of n for B) × kBlockK.
// It is stored as the global matrix is, so the copy never transposes: k-contiguous ([outer][k]) when X is
// stored with k along its rows (A untransposed, B transposed), outer-contiguous ([k][outer]) otherwise; the
// wmma fragments read either layout (row_major / col_major).
template <int kOuter, bool kKContiguous>
struct Slice {
    static constexpr bool k_contiguous = kKContiguous;
    static constexpr int rows = kKContiguous ? kOuter : kBlockK;
    static constexpr int cols = kKContiguous ? kBlockK : kOuter;
    static constexpr int ld = cols + kPad;
    static constexpr int groups_per_thread = rows * cols / 4 / kThreads;  // float4 groups to stage
    static_assert(groups_per_thread * kThreads * 4 == rows * cols, "the slice splits evenly into groups of 4");

    __align__(32) float v[rows][ld];

    // Element (outer o, k q) of the slice, and its address (for wmma loads).
    __device__ float at(int o, int q) const { return kKContiguous ? v[o][q] : v[q][o]; }
    __device__ const float* address(int o, int q) const { return kKContiguous ? &v[o][q] : &v[q][o]; }
};

// This thread's groups of 4 elements of the slice at (outer0, k0) of op(X), where op(X) is (outer_size, k) and
// X is stored row-major as the Slice is (rows and cols below are X's stored ones). Group g = threadIdx.x +
// i · kThreads is slice row g / (cols / 4), column quad g % (cols / 4): every group of a thread has the same
// column and rows kRowStep apart, and consecutive threads read consecutive addresses. Elements outside the
// matrix read as 0, so edge tiles need no further guards.
template <class S>
__device__ inline void load_slice(const float* x, int64_t ld, int64_t outer_size, int64_t k, int64_t outer0,
                                  int64_t k0, bool vec, float (&r)[S::groups_per_thread][4]) {
    constexpr int kQuadsPerRow = S::cols / 4, kRowStep = kThreads / kQuadsPerRow;
    const int64_t rows = S::k_contiguous ? outer_size : k, cols = S::k_contiguous ? k : outer_size;
    const int64_t row = (S::k_contiguous ? outer0 : k0) + threadIdx.x / kQuadsPerRow;
    const int64_t col = (S::k_contiguous ? k0 : outer0) + (threadIdx.x % kQuadsPerRow) * 4;
    const bool whole_float4 = vec && col + 3 < cols;
#pragma unroll
    for (int i = 0; i < S::groups_per_thread; ++i) {
        if (row + i * kRowStep >= rows) {
            r[i][0] = r[i][1] = r[i][2] = r[i][3] = 0.0f;
            continue;
        }
        const float* src = x + (row + i * kRowStep) * ld + col;
        if (whole_float4) {
            const float4 v = *reinterpret_cast<const float4*>(src);
            r[i][0] = v.x, r[i][1] = v.y, r[i][2] = v.z, r[i][3] = v.w;
        } else {
#pragma unroll
            for (int j = 0; j < 4; ++j) r[i][j] = col + j < cols ? src[j] : 0.0f;
        }
    }
}

// Rounds to TF32 with wmma::__float_to_tf32 (kWmma: the tensor-core kernel) or round_to_tf32 (the CUDA-core
// kernel, on any architecture); the two must agree, which the emulator's bitwise comparison of the kernels
// checks.
template <bool kWmma>
__device__ inline float to_tf32(float x) {
#if CUDACNN_TF32_WMMA
    if constexpr (kWmma) return nvcuda::wmma::__float_to_tf32(x);
#endif
    return round_to_tf32(x);
}

// Stores the groups of load_slice, rounded to TF32, at the same places in shared memory.
template <bool kWmma, class S>
__device__ inline void store_slice(S& s, const float (&r)[S::groups_per_thread][4]) {
#pragma unroll
    for (int i = 0; i < S::groups_per_thread; ++i) {
        const int g = threadIdx.x + i * kThreads;
        *reinterpret_cast<float4*>(&s.v[g / (S::cols / 4)][(g % (S::cols / 4)) * 4]) =
            make_float4(to_tf32<kWmma>(r[i][0]), to_tf32<kWmma>(r[i][1]), to_tf32<kWmma>(r[i][2]),
                        to_tf32<kWmma>(r[i][3]));
    }
}

// The block's C tile, staged in shared memory between the product and the guarded, coalesced writes.
struct CTile {
    __align__(32) float v[kBlockM][kBlockN + kPad];
};

// CUDA cores: thread (ty, tx) accumulates rows 4·ty … 4·ty + 3, columns 8·tx … 8·tx + 7, k in order.
template <class SA, class SB>
__device__ inline void multiply_slice_cuda_cores(const SA& a_s, const SB& b_s,
                                                 float (&acc)[kMicroRows][kMicroCols]) {
    const int ty = threadIdx.x / (kBlockN / kMicroCols), tx = threadIdx.x % (kBlockN / kMicroCols);
#pragma unroll 4
    for (int q = 0; q < kBlockK; ++q) {
        float a_reg[kMicroRows], b_reg[kMicroCols];
#pragma unroll
        for (int i = 0; i < kMicroRows; ++i) a_reg[i] = a_s.at(ty * kMicroRows + i, q);
#pragma unroll
        for (int j = 0; j < kMicroCols; ++j) b_reg[j] = b_s.at(tx * kMicroCols + j, q);
#pragma unroll
        for (int i = 0; i < kMicroRows; ++i) {
#pragma unroll
            for (int j = 0; j < kMicroCols; ++j) acc[i][j] += a_reg[i] * b_reg[j];
        }
    }
}

__device__ inline void stage_cuda_cores(CTile& c_s, const float (&acc)[kMicroRows][kMicroCols]) {
    const int ty = threadIdx.x / (kBlockN / kMicroCols), tx = threadIdx.x % (kBlockN / kMicroCols);
#pragma unroll
    for (int i = 0; i < kMicroRows; ++i) {
#pragma unroll
        for (int j = 0; j < kMicroCols; ++j) c_s.v[ty * kMicroRows + i][tx * kMicroCols + j] = acc[i][j];
    }
}

#if CUDACNN_TF32_WMMA
namespace wmma = nvcuda::wmma;
constexpr int kFrag = 16;   // wmma tile m = n = 16
constexpr int kFragK = 8;   // wmma tile k
constexpr int kFragsPerWarp = kWarpTile / kFrag;
using Accumulator = wmma::fragment<wmma::accumulator, kFrag, kFrag, kFragK, float>;

// The wmma fragment layout that reads a Slice: matrix_a (m × k) is row-major in a k-contiguous slice,
// matrix_b (k × n) column-major in one.
template <bool kKContiguous, bool kIsA>
using FragLayout = std::conditional_t<kKContiguous == kIsA, wmma::row_major, wmma::col_major>;

// Tensor cores: warp (wr, wc) accumulates its 32 × 32 of the tile, k in slices of 8, in order.
template <bool kAKContiguous, bool kBKContiguous, class SA, class SB>
__device__ inline void multiply_slice_tensor_cores(const SA& a_s, const SB& b_s,
                                                   Accumulator (&acc)[kFragsPerWarp][kFragsPerWarp]) {
    const int warp = threadIdx.x / 32;
    const int wr = warp / (kBlockN / kWarpTile), wc = warp % (kBlockN / kWarpTile);
    wmma::fragment<wmma::matrix_a, kFrag, kFrag, kFragK, wmma::precision::tf32, FragLayout<kAKContiguous, true>>
        a_frag[kFragsPerWarp];
    wmma::fragment<wmma::matrix_b, kFrag, kFrag, kFragK, wmma::precision::tf32, FragLayout<kBKContiguous, false>>
        b_frag[kFragsPerWarp];
#pragma unroll
    for (int q = 0; q < kBlockK; q += kFragK) {
#pragma unroll
        for (int f = 0; f < kFragsPerWarp; ++f) {
            wmma::load_matrix_sync(a_frag[f], a_s.address(wr * kWarpTile + f * kFrag, q), SA::ld);
            wmma::load_matrix_sync(b_frag[f], b_s.address(wc * kWarpTile + f * kFrag, q), SB::ld);
        }
#pragma unroll
        for (int i = 0; i < kFragsPerWarp; ++i) {
#pragma unroll
            for (int j = 0; j < kFragsPerWarp; ++j) wmma::mma_sync(acc[i][j], a_frag[i], b_frag[j], acc[i][j]);
        }
    }
}

__device__ inline void stage_tensor_cores(CTile& c_s, const Accumulator (&acc)[kFragsPerWarp][kFragsPerWarp]) {
    const int warp = threadIdx.x / 32;
    const int wr = warp / (kBlockN / kWarpTile), wc = warp % (kBlockN / kWarpTile);
#pragma unroll
    for (int i = 0; i < kFragsPerWarp; ++i) {
#pragma unroll
        for (int j = 0; j < kFragsPerWarp; ++j) {
            wmma::store_matrix_sync(&c_s.v[wr * kWarpTile + i * kFrag][wc * kWarpTile + j * kFrag], acc[i][j],
                                    kBlockN + kPad, wmma::mem_row_major);
        }
    }
}
#endif

// C = alpha · tile + beta · C for the in-bounds part of the staged tile; beta == 0 never reads C. Element
// e = threadIdx.x + i · kThreads is row e / kBlockN, column e % kBlockN: consecutive threads, consecutive
// addresses.
__device__ inline void write_tile(const CTile& c_s, float* c, int64_t ldc, int64_t m, int64_t n, int64_t row0,
                                  int64_t col0, float alpha, float beta) {
#pragma unroll 4
    for (int e = threadIdx.x; e < kBlockM * kBlockN; e += kThreads) {
        const int r = e / kBlockN, col = e % kBlockN;
        if (row0 + r >= m || col0 + col >= n) continue;
        float* dst = c + (row0 + r) * ldc + col0 + col;
        const float value = alpha * c_s.v[r][col];
        // One explicit rounding order (nvcc fuses it so anyway), that of split-k's ordered sum
        // (gemm_common.cu), so a single range of sgemm_tf32_split_k gives sgemm_tf32's bits.
        *dst = beta == 0.0f ? value : __fmaf_rn(beta, *dst, value);
    }
}

// One block computes one 64 × 64 tile of C for every batch entry blockIdx.y, + gridDim.y, … The next
// k-slice is loaded into registers while the current one is multiplied out of shared memory. Both kernels
// (kTensorCores or not) stage the same TF32-rounded slices and sum each element's products in k order.
// Three blocks per SM: ptxas (sm_90) then fits every instantiation in 168 registers without spilling.
template <bool kTensorCores, bool kTransA, bool kTransB>
__global__ void __launch_bounds__(kThreads, kMinBlocksPerSm) sgemm_tf32_kernel(Tf32Params p) {
    constexpr bool kAKContiguous = !kTransA, kBKContiguous = kTransB;
    using SliceA = Slice<kBlockM, kAKContiguous>;
    using SliceB = Slice<kBlockN, kBKContiguous>;
    __shared__ SliceA a_s;
    __shared__ SliceB b_s;
    __shared__ CTile c_s;
    const int64_t row0 = (blockIdx.x / p.tiles_n) * int64_t{kBlockM};
    const int64_t col0 = (blockIdx.x % p.tiles_n) * int64_t{kBlockN};

    for (int64_t z = blockIdx.y; z < p.batch; z += gridDim.y) {
        const int64_t k = z + 1 == p.batch ? p.k_last : p.k;
        const float* a = p.a + z * p.stride_a;
        const float* b = p.b + z * p.stride_b;
        float ra[SliceA::groups_per_thread][4], rb[SliceB::groups_per_thread][4];
        load_slice<SliceA>(a, p.lda, p.m, k, row0, 0, p.vec_a, ra);
        load_slice<SliceB>(b, p.ldb, p.n, k, col0, 0, p.vec_b, rb);
#if CUDACNN_TF32_WMMA
        if constexpr (kTensorCores) {
            Accumulator acc[kFragsPerWarp][kFragsPerWarp];
#pragma unroll
            for (int i = 0; i < kFragsPerWarp; ++i) {
#pragma unroll
                for (int j = 0; j < kFragsPerWarp; ++j) wmma::fill_fragment(acc[i][j], 0.0f);
            }
            for (int64_t k0 = 0; k0 < k; k0 += kBlockK) {
                store_slice<true>(a_s, ra);
                store_slice<true>(b_s, rb);
                __syncthreads();  // the slices are complete
                if (k0 + kBlockK < k) {
                    load_slice<SliceA>(a, p.lda, p.m, k, row0, k0 + kBlockK, p.vec_a, ra);
                    load_slice<SliceB>(b, p.ldb, p.n, k, col0, k0 + kBlockK, p.vec_b, rb);
                }
                multiply_slice_tensor_cores<kAKContiguous, kBKContiguous>(a_s, b_s, acc);
                __syncthreads();  // everyone has read the slices before the next step overwrites them
            }
            stage_tensor_cores(c_s, acc);
        } else
#endif
        {
            float acc[kMicroRows][kMicroCols] = {};
            for (int64_t k0 = 0; k0 < k; k0 += kBlockK) {
                store_slice<false>(a_s, ra);
                store_slice<false>(b_s, rb);
                __syncthreads();  // the slices are complete
                if (k0 + kBlockK < k) {
                    load_slice<SliceA>(a, p.lda, p.m, k, row0, k0 + kBlockK, p.vec_a, ra);
                    load_slice<SliceB>(b, p.ldb, p.n, k, col0, k0 + kBlockK, p.vec_b, rb);
                }
                multiply_slice_cuda_cores(a_s, b_s, acc);
                __syncthreads();  // everyone has read the slices before the next step overwrites them
            }
            stage_cuda_cores(c_s, acc);
        }
        __syncthreads();  // the staged tile is complete
        write_tile(c_s, p.c + z * p.stride_c, p.ldc, p.m, p.n, row0, col0, p.alpha, p.beta);
        __syncthreads();  // the tile is written out before the next batch entry stages its own
    }
}


}  // namespace tf32_kernels

namespace {


// The compute capability major of the current device, asked once per device (cudaGetDeviceProperties is slow).
int device_major() {
    static std::array<std::atomic<int>, 64> majors_plus_one{};  // 0: not asked yet
    int device = 0;
    CUDACNN_CUDA_CHECK(cudaGetDevice(&device));
    cudaDeviceProp prop{};
    if (device < 0 || device >= static_cast<int>(majors_plus_one.size())) {
        CUDACNN_CUDA_CHECK(cudaGetDeviceProperties(&prop, device));
        return prop.major;
    }
    if (majors_plus_one[device].load() == 0) {
        CUDACNN_CUDA_CHECK(cudaGetDeviceProperties(&prop, device));
        majors_plus_one[device].store(prop.major + 1);
    }
    return majors_plus_one[device].load() - 1;
}

// Throws Error naming `op` when the caller asks for the tensor-core kernel where it cannot run.
void check_kernel_available(const char* op, Tf32Kernel kernel) {
    if (kernel != Tf32Kernel::tensor_cores) return;
    CUDACNN_CHECK(tf32_tensor_cores_available(),
                  "{}: the tensor-core kernel needs a build with CUDACNN_TENSOR_CORES on (it is {}) and a GPU "
                  "of compute capability 8.0 or more (this one is {}.x); use Tf32Kernel::automatic or cuda_cores",
                  op, CUDACNN_TENSOR_CORES ? "on" : "off", device_major());
}

template <bool kTensorCores>
void launch_product(const char* op, bool trans_a, bool trans_b, tf32_kernels::Tf32Params p, cudaStream_t stream) {
    using namespace tf32_kernels;
    p.tiles_n = (p.n + kBlockN - 1) / kBlockN;
    const int64_t tiles = (p.m + kBlockM - 1) / kBlockM * p.tiles_n;
    CUDACNN_CHECK(tiles <= INT_MAX, "{}: {} × {} needs {} tiles of {} × {}, more than one grid holds", op, p.m,
                  p.n, tiles, kBlockM, kBlockN);
    const dim3 grid(static_cast<unsigned>(tiles), static_cast<unsigned>(std::min(p.batch, kGemmMaxGridY)));
    const dim3 block(kThreads);
    if (!trans_a && !trans_b) launch(sgemm_tf32_kernel<kTensorCores, false, false>, grid, block, 0, stream, p);
    if (!trans_a && trans_b) launch(sgemm_tf32_kernel<kTensorCores, false, true>, grid, block, 0, stream, p);
    if (trans_a && !trans_b) launch(sgemm_tf32_kernel<kTensorCores, true, false>, grid, block, 0, stream, p);
    if (trans_a && trans_b) launch(sgemm_tf32_kernel<kTensorCores, true, true>, grid, block, 0, stream, p);
}


// The batched product behind every entry point; op names the caller in errors.
// The last batch entry multiplies only the first k_last (1 ≤ k_last ≤ k) of its k.
void sgemm_tf32_impl(const char* op, Tf32Kernel kernel, bool trans_a, bool trans_b, int64_t m, int64_t n,
                     int64_t k, float alpha, const float* a, int64_t lda, int64_t stride_a, const float* b,
                     int64_t ldb, int64_t stride_b, float beta, float* c, int64_t ldc, int64_t stride_c,
                     int64_t batch, cudaStream_t stream, int64_t k_last) {
    check_gemm_args(op, trans_a, trans_b, m, n, k, alpha, a, lda, stride_a, b, ldb, stride_b, c, ldc, stride_c,
                    batch);
    check_kernel_available(op, kernel);
    if (m == 0 || n == 0 || batch == 0) return;
    if (k == 0 || alpha == 0.0f) {
        gemm_scale(m, n, beta, c, ldc, stride_c, batch, stream);
        return;
    }
    tf32_kernels::Tf32Params p{};
    p.m = m, p.n = n, p.k = k, p.alpha = alpha, p.beta = beta;
    p.a = a, p.lda = lda, p.stride_a = stride_a;
    p.b = b, p.ldb = ldb, p.stride_b = stride_b;
    p.c = c, p.ldc = ldc, p.stride_c = stride_c;
    p.batch = batch;
    p.k_last = k_last;
    p.vec_a = gemm_vectorizable(a, lda, stride_a, batch);
    p.vec_b = gemm_vectorizable(b, ldb, stride_b, batch);
    const bool tensor_cores =
        kernel == Tf32Kernel::tensor_cores || (kernel == Tf32Kernel::automatic && tf32_tensor_cores_available());
#if CUDACNN_TENSOR_CORES
    if (tensor_cores) {
        launch_product<true>(op, trans_a, trans_b, p, stream);
        return;
    }
#endif
    (void)tensor_cores;
    launch_product<false>(op, trans_a, trans_b, p, stream);
}

// The SMs of an H100 (132) times the blocks of sgemm_tf32_kernel each holds at once (kMinBlocksPerSm: its
// registers allow 3, its 35 KiB of shared memory 6): the blocks one wave runs.
constexpr int64_t kResidentBlocks = 132 * tf32_kernels::kMinBlocksPerSm;
// Each range should multiply at least this many k (8 slices: the pipeline's prologue and the partial's
// write and read stay small next to its products).
constexpr int64_t kMinSplitLength = 256;

}  // namespace

bool tf32_tensor_cores_available() {
    return CUDACNN_TENSOR_CORES && device_major() >= 8;
}

void sgemm_tf32_strided_batched_with_kernel(Tf32Kernel kernel, bool trans_a, bool trans_b, int64_t m, int64_t n,
                                            int64_t k, float alpha, const float* a, int64_t lda, int64_t stride_a,
                                            const float* b, int64_t ldb, int64_t stride_b, float beta, float* c,
                                            int64_t ldc, int64_t stride_c, int64_t batch, cudaStream_t stream) {
    sgemm_tf32_impl("sgemm_tf32_strided_batched", kernel, trans_a, trans_b, m, n, k, alpha, a, lda, stride_a, b,
                    ldb, stride_b, beta, c, ldc, stride_c, batch, stream, k);
}

void sgemm_tf32_strided_batched(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, float alpha,
                                const float* a, int64_t lda, int64_t stride_a, const float* b, int64_t ldb,
                                int64_t stride_b, float beta, float* c, int64_t ldc, int64_t stride_c,
                                int64_t batch, cudaStream_t stream) {
    sgemm_tf32_impl("sgemm_tf32_strided_batched", Tf32Kernel::automatic, trans_a, trans_b, m, n, k, alpha, a, lda,
                    stride_a, b, ldb, stride_b, beta, c, ldc, stride_c, batch, stream, k);
}

void sgemm_tf32(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, float alpha, const float* a,
                int64_t lda, const float* b, int64_t ldb, float beta, float* c, int64_t ldc, cudaStream_t stream) {
    sgemm_tf32_impl("sgemm_tf32", Tf32Kernel::automatic, trans_a, trans_b, m, n, k, alpha, a, lda, 0, b, ldb, 0,
                    beta, c, ldc, 0, 1, stream, k);
}

int64_t sgemm_tf32_split_k_count(int64_t m, int64_t n, int64_t k) {
    using namespace tf32_kernels;
    if (m <= 0 || n <= 0 || k <= 0) return 1;
    const int64_t tiles = (m + kBlockM - 1) / kBlockM * ((n + kBlockN - 1) / kBlockN);
    return std::clamp<int64_t>(kResidentBlocks / tiles, 1, std::max<int64_t>(k / kMinSplitLength, 1));
}

size_t sgemm_tf32_split_k_workspace_bytes(int64_t m, int64_t n, int64_t k, int64_t splits) {
    return gemm_split_k_workspace_bytes("sgemm_tf32_split_k_workspace_bytes", m, n, k, splits,
                                        tf32_kernels::kBlockK);
}

void sgemm_tf32_split_k_with_kernel(Tf32Kernel kernel, int64_t splits, bool trans_a, bool trans_b, int64_t m,
                                    int64_t n, int64_t k, float alpha, const float* a, int64_t lda, const float* b,
                                    int64_t ldb, float beta, float* c, int64_t ldc, void* workspace,
                                    size_t workspace_bytes, cudaStream_t stream) {
    constexpr const char* op = "sgemm_tf32_split_k";
    check_kernel_available(op, kernel);
    // Ranges in multiples of the k-slice: no slice of a range is padding but the last range's last.
    gemm_split_k(op, "sgemm_tf32_split_k_workspace_bytes", splits, tf32_kernels::kBlockK, trans_a, trans_b, m, n, k,
                 alpha, a, lda, b, ldb, beta, c, ldc, workspace, workspace_bytes, stream,
                 [&](int64_t k_len, int64_t k_last, const float* a_s, int64_t stride_a, const float* b_s,
                     int64_t stride_b, float* c_s, int64_t batch) {
                     // Every range in one launch, the shorter last one included: a launch of its own would run
                     // its few blocks alone after all the others.
                     sgemm_tf32_impl(op, kernel, trans_a, trans_b, m, n, k_len, 1.0f, a_s, lda, stride_a, b_s, ldb,
                                     stride_b, 0.0f, c_s, n, m * n, batch, stream, k_last);
                 });
}

void sgemm_tf32_split_k(int64_t splits, bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, float alpha,
                        const float* a, int64_t lda, const float* b, int64_t ldb, float beta, float* c, int64_t ldc,
                        void* workspace, size_t workspace_bytes, cudaStream_t stream) {
    sgemm_tf32_split_k_with_kernel(Tf32Kernel::automatic, splits, trans_a, trans_b, m, n, k, alpha, a, lda, b, ldb,
                                   beta, c, ldc, workspace, workspace_bytes, stream);
}

}  // namespace cudacnn::gpu
