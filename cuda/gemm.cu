// The project's tiled SGEMM: 64 × 64 or 32 × 32 block tiles stepped through k in slices of 16, 4 × 4 per
// thread.
#include "cuda/gemm.hpp"

#include <algorithm>
#include <climits>
#include <cstdint>

#include "cuda/launch.cuh"
#include "cudacnn/error.hpp"

namespace cudacnn::gpu {
namespace kernels {

constexpr int kGemmBlockK = 16;
constexpr int kGemmMicro = 4;  // each thread computes a 4 × 4 register tile of C
// Shared rows padded by 4 floats: the transposing stores of a non-contiguous operand then hit 2-way instead
// of 4-way bank conflicts, while every row still starts 16-byte aligned for the float4 reads.
constexpr int kGemmSmemPad = 4;

// A block tile of kRows × kCols outputs: kRows · kCols / 16 threads, each staging `groups` runs of 4
// contiguous elements per operand slice and step. 64 × 64 (256 threads) is the default; 32 × 32 (64 threads)
// gives 4× the blocks for products too small to fill the GPU with large tiles.
template <int kRows, int kCols>
struct GemmTile {
    static constexpr int rows = kRows, cols = kCols;
    static constexpr int threads = (kRows / kGemmMicro) * (kCols / kGemmMicro);
    static constexpr int groups_a = kRows * kGemmBlockK / 4 / threads;
    static constexpr int groups_b = kCols * kGemmBlockK / 4 / threads;
    static_assert(groups_a * threads * 4 == kRows * kGemmBlockK &&
                      groups_b * threads * 4 == kCols * kGemmBlockK,
                  "the slices must split evenly into groups of 4 per thread");
};
using LargeTile = GemmTile<64, 64>;
using SmallTile = GemmTile<32, 32>;

// Everything a launch needs, by value. vec_* says the operand's pointer, leading dimension and batch stride
// keep every group of 4 contiguous elements at a multiple of 4 16-byte aligned, so float4 accesses are legal.
struct GemmParams {
    int64_t m, n, k;
    float alpha, beta;
    const float* a;
    int64_t lda, stride_a;
    const float* b;
    int64_t ldb, stride_b;
    float* c;
    int64_t ldc, stride_c;
    int64_t batch;
    int64_t tiles_n;  // column tiles per matrix: blockIdx.x = tile_row · tiles_n + tile_col
    bool vec_a, vec_b, vec_c;
};

// Loads 4 elements of a (rows × cols) row-major operand into registers: the group starts at (row, col) and
// runs along the contiguous dimension (col … col + 3). Elements outside the matrix read as 0, so the product
// of edge tiles needs no further guards.
__device__ inline void load_group(const float* base, int64_t ld, int64_t rows, int64_t cols, int64_t row,
                                  int64_t col, bool vec, float (&r)[4]) {
    if (row >= rows) {
        r[0] = r[1] = r[2] = r[3] = 0.0f;
        return;
    }
    const float* src = base + row * ld + col;
    if (vec && col + 3 < cols) {
        const float4 v = *reinterpret_cast<const float4*>(src);
        r[0] = v.x, r[1] = v.y, r[2] = v.z, r[3] = v.w;
        return;
    }
#pragma unroll
    for (int j = 0; j < 4; ++j) r[j] = col + j < cols ? src[j] : 0.0f;
}

// This thread's groups of the op(X) slice (kRows × kGemmBlockK) at (row0, k0), where op(X) is (rows_op, k);
// group g = threadIdx.x + i · kThreads. Untransposed, X is stored (rows_op, k): groups run along k, g takes
// row g / 4 and k-quad g % 4. Transposed, X is stored (k, rows_op): groups run along rows_op, g takes k-row
// g / (kRows / 4) and row-quad g % (kRows / 4). Consecutive threads thus read consecutive addresses.
template <bool kTrans, int kRows, int kThreads, int kGroups>
__device__ inline void load_operand(const float* x, int64_t ld, int64_t rows_op, int64_t k, int64_t row0,
                                    int64_t k0, bool vec, float (&r)[kGroups][4]) {
#pragma unroll
    for (int i = 0; i < kGroups; ++i) {
        const int g = threadIdx.x + i * kThreads;
        if (kTrans) {
            load_group(x, ld, k, rows_op, k0 + g / (kRows / 4), row0 + (g % (kRows / 4)) * 4, vec, r[i]);
        } else {
            load_group(x, ld, rows_op, k, row0 + g / 4, k0 + (g % 4) * 4, vec, r[i]);
        }
    }
}

// Stores the groups loaded by load_operand into the k-major shared slice s[kk][row]: the layout the inner
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

// Writes alpha · acc + beta · C for one row of 4 outputs; beta == 0 never reads C.
__device__ inline void store_row(float* dst, int64_t col, int64_t n, bool vec, float alpha, float beta,
                                 const float (&acc)[4]) {
    if (vec && col + 3 < n) {
        float4 out = make_float4(alpha * acc[0], alpha * acc[1], alpha * acc[2], alpha * acc[3]);
        if (beta != 0.0f) {
            const float4 old = *reinterpret_cast<const float4*>(dst);
            out.x += beta * old.x, out.y += beta * old.y, out.z += beta * old.z, out.w += beta * old.w;
        }
        *reinterpret_cast<float4*>(dst) = out;
        return;
    }
#pragma unroll
    for (int j = 0; j < 4; ++j) {
        if (col + j < n) dst[j] = beta == 0.0f ? alpha * acc[j] : alpha * acc[j] + beta * dst[j];
    }
}

// One block computes one Tile::rows × Tile::cols tile of C for every batch entry blockIdx.y, + gridDim.y, …
// Thread (ty, tx) owns rows 4·ty … 4·ty + 3 and columns 4·tx … 4·tx + 3 of the tile. The next k-slice is
// loaded into registers while the current one is multiplied out of shared memory. Every element sums its
// k products in order 0 … k − 1 (zeros past the edges add nothing), so both tile sizes give the same bits.
template <class Tile, bool kTransA, bool kTransB>
__global__ void __launch_bounds__(Tile::threads) sgemm_kernel(GemmParams p) {
    constexpr int kThreads = Tile::threads, kGroupsA = Tile::groups_a, kGroupsB = Tile::groups_b;
    __shared__ __align__(16) float a_slice[kGemmBlockK][Tile::rows + kGemmSmemPad];  // op(A)ᵀ slice
    __shared__ __align__(16) float b_slice[kGemmBlockK][Tile::cols + kGemmSmemPad];  // op(B) slice
    const int ty = threadIdx.x / (Tile::cols / kGemmMicro), tx = threadIdx.x % (Tile::cols / kGemmMicro);
    const int64_t row0 = (blockIdx.x / p.tiles_n) * int64_t{Tile::rows};
    const int64_t col0 = (blockIdx.x % p.tiles_n) * int64_t{Tile::cols};

    for (int64_t z = blockIdx.y; z < p.batch; z += gridDim.y) {
        const float* a = p.a + z * p.stride_a;
        const float* b = p.b + z * p.stride_b;
        float acc[kGemmMicro][kGemmMicro] = {};
        float ra[kGroupsA][4], rb[kGroupsB][4];
        // op(B) is (k, n): as an operand of the loader (rows_op = n), it is stored transposed exactly when B
        // is not.
        load_operand<kTransA, Tile::rows, kThreads>(a, p.lda, p.m, p.k, row0, 0, p.vec_a, ra);
        load_operand<!kTransB, Tile::cols, kThreads>(b, p.ldb, p.n, p.k, col0, 0, p.vec_b, rb);
        for (int64_t k0 = 0; k0 < p.k; k0 += kGemmBlockK) {
            store_operand<kTransA, Tile::rows, kThreads>(a_slice, ra);
            store_operand<!kTransB, Tile::cols, kThreads>(b_slice, rb);
            __syncthreads();  // the slices are complete
            if (k0 + kGemmBlockK < p.k) {
                load_operand<kTransA, Tile::rows, kThreads>(a, p.lda, p.m, p.k, row0, k0 + kGemmBlockK,
                                                            p.vec_a, ra);
                load_operand<!kTransB, Tile::cols, kThreads>(b, p.ldb, p.n, p.k, col0, k0 + kGemmBlockK,
                                                             p.vec_b, rb);
            }
#pragma unroll
            for (int kk = 0; kk < kGemmBlockK; ++kk) {
                const float4 av = *reinterpret_cast<const float4*>(&a_slice[kk][ty * kGemmMicro]);
                const float4 bv = *reinterpret_cast<const float4*>(&b_slice[kk][tx * kGemmMicro]);
                const float a_reg[4] = {av.x, av.y, av.z, av.w}, b_reg[4] = {bv.x, bv.y, bv.z, bv.w};
#pragma unroll
                for (int i = 0; i < kGemmMicro; ++i) {
#pragma unroll
                    for (int j = 0; j < kGemmMicro; ++j)
                        acc[i][j] += a_reg[i] * b_reg[j];  // one FMA under nvcc
                }
            }
            __syncthreads();  // everyone has read the slices before the next step overwrites them
        }
        float* c = p.c + z * p.stride_c;
        const int64_t col = col0 + tx * kGemmMicro;
#pragma unroll
        for (int i = 0; i < kGemmMicro; ++i) {
            const int64_t row = row0 + ty * kGemmMicro + i;
            if (row < p.m) store_row(c + row * p.ldc + col, col, p.n, p.vec_c, p.alpha, p.beta, acc[i]);
        }
    }
}

// C = beta · C for k == 0 or alpha == 0, where A and B take no part (and are not read); beta == 0 writes
// zeros without reading C. Grid-stride over the m · n elements of each batch entry blockIdx.y, + gridDim.y, …
__global__ void sgemm_scale_kernel(int64_t m, int64_t n, float beta, float* c, int64_t ldc, int64_t stride_c,
                                   int64_t batch) {
    for (int64_t z = blockIdx.y; z < batch; z += gridDim.y) {
        float* cz = c + z * stride_c;
        for (int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; i < m * n;
             i += int64_t{gridDim.x} * blockDim.x) {
            float* dst = cz + (i / n) * ldc + i % n;
            *dst = beta == 0.0f ? 0.0f : beta * *dst;
        }
    }
}

}  // namespace kernels

namespace {

constexpr int64_t kMaxGridY = 65535;

bool aligned16(const void* p) {
    return reinterpret_cast<uintptr_t>(p) % 16 == 0;
}

// float4 access is legal when every matrix of the batch starts 16-byte aligned and every row does too.
bool vectorizable(const void* p, int64_t ld, int64_t stride, int64_t batch) {
    return aligned16(p) && ld % 4 == 0 && (batch <= 1 || stride % 4 == 0);
}

// Throws Error unless the arguments describe valid row-major products (see gemm.hpp).
void check_gemm_args(const char* op, bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, float alpha,
                     const float* a, int64_t lda, int64_t stride_a, const float* b, int64_t ldb,
                     int64_t stride_b, const float* c, int64_t ldc, int64_t stride_c, int64_t batch) {
    CUDACNN_CHECK(m >= 0 && n >= 0 && k >= 0, "{}: sizes m = {}, n = {}, k = {} must not be negative", op, m,
                  n, k);
    CUDACNN_CHECK(batch >= 0, "{}: batch = {} must not be negative", op, batch);
    // The stored widths of A (m, k) or (k, m) and B (k, n) or (n, k); a leading dimension is at least 1.
    const int64_t a_width = trans_a ? m : k, b_width = trans_b ? k : n;
    CUDACNN_CHECK(lda >= std::max<int64_t>(1, a_width), "{}: lda = {} is less than the {} width {} of A ({})",
                  op, lda, trans_a ? "transposed" : "stored", a_width, trans_a ? "k, m" : "m, k");
    CUDACNN_CHECK(ldb >= std::max<int64_t>(1, b_width), "{}: ldb = {} is less than the {} width {} of B ({})",
                  op, ldb, trans_b ? "transposed" : "stored", b_width, trans_b ? "n, k" : "k, n");
    CUDACNN_CHECK(ldc >= std::max<int64_t>(1, n), "{}: ldc = {} is less than n = {}", op, ldc, n);
    CUDACNN_CHECK(stride_a >= 0 && stride_b >= 0 && stride_c >= 0,
                  "{}: strides a = {}, b = {}, c = {} must not be negative", op, stride_a, stride_b,
                  stride_c);
    CUDACNN_CHECK(stride_c > 0 || batch <= 1 || m == 0 || n == 0,
                  "{}: stride_c = 0 with batch = {} would make every product write the same C", op, batch);
    if (m == 0 || n == 0 || batch == 0) return;
    CUDACNN_CHECK(c != nullptr, "{}: C is null for an output of {} × {}", op, m, n);
    if (k > 0 && alpha != 0.0f) {
        CUDACNN_CHECK(a != nullptr && b != nullptr,
                      "{}: A ({}) or B ({}) is null with m = {}, n = {}, k = {}", op,
                      static_cast<const void*>(a), static_cast<const void*>(b), m, n, k);
    }
}

// Two blocks per SM of an H100 (132 SMs): below this many 64 × 64 blocks, 32 × 32 tiles are used instead.
constexpr int64_t kLargeTileMinBlocks = 2 * 132;

template <class Tile>
void launch_tiled(const char* op, bool trans_a, bool trans_b, kernels::GemmParams p, cudaStream_t stream) {
    p.tiles_n = (p.n + Tile::cols - 1) / Tile::cols;
    const int64_t tiles = (p.m + Tile::rows - 1) / Tile::rows * p.tiles_n;
    CUDACNN_CHECK(tiles <= INT_MAX, "{}: {} × {} needs {} tiles of {} × {}, more than one grid holds", op,
                  p.m, p.n, tiles, Tile::rows, Tile::cols);
    const dim3 grid(static_cast<unsigned>(tiles), static_cast<unsigned>(std::min(p.batch, kMaxGridY)));
    const dim3 block(Tile::threads);
    if (!trans_a && !trans_b) launch(kernels::sgemm_kernel<Tile, false, false>, grid, block, 0, stream, p);
    if (!trans_a && trans_b) launch(kernels::sgemm_kernel<Tile, false, true>, grid, block, 0, stream, p);
    if (trans_a && !trans_b) launch(kernels::sgemm_kernel<Tile, true, false>, grid, block, 0, stream, p);
    if (trans_a && trans_b) launch(kernels::sgemm_kernel<Tile, true, true>, grid, block, 0, stream, p);
}

void launch_sgemm(const char* op, GemmTiling tiling, bool trans_a, bool trans_b, const kernels::GemmParams& p,
                  cudaStream_t stream) {
    if (tiling == GemmTiling::automatic) {
        using Large = kernels::LargeTile;
        const int64_t large_blocks =
            (p.m + Large::rows - 1) / Large::rows * ((p.n + Large::cols - 1) / Large::cols) * p.batch;
        tiling = large_blocks < kLargeTileMinBlocks ? GemmTiling::small : GemmTiling::large;
    }
    if (tiling == GemmTiling::large) {
        launch_tiled<kernels::LargeTile>(op, trans_a, trans_b, p, stream);
    } else {
        launch_tiled<kernels::SmallTile>(op, trans_a, trans_b, p, stream);
    }
}

void launch_scale(int64_t m, int64_t n, float beta, float* c, int64_t ldc, int64_t stride_c, int64_t batch,
                  cudaStream_t stream) {
    constexpr int kThreads = 256;
    const int64_t blocks = std::min<int64_t>((m * n + kThreads - 1) / kThreads, 1024);
    const dim3 grid(static_cast<unsigned>(blocks), static_cast<unsigned>(std::min(batch, kMaxGridY)));
    launch(kernels::sgemm_scale_kernel, grid, dim3(kThreads), 0, stream, m, n, beta, c, ldc, stride_c, batch);
}

// The batched product behind both entry points; op names the caller in errors.
void sgemm_impl(const char* op, GemmTiling tiling, bool trans_a, bool trans_b, int64_t m, int64_t n,
                int64_t k, float alpha, const float* a, int64_t lda, int64_t stride_a, const float* b,
                int64_t ldb, int64_t stride_b, float beta, float* c, int64_t ldc, int64_t stride_c,
                int64_t batch, cudaStream_t stream) {
    check_gemm_args(op, trans_a, trans_b, m, n, k, alpha, a, lda, stride_a, b, ldb, stride_b, c, ldc,
                    stride_c, batch);
    if (m == 0 || n == 0 || batch == 0) return;
    if (k == 0 || alpha == 0.0f) {
        launch_scale(m, n, beta, c, ldc, stride_c, batch, stream);
        return;
    }
    kernels::GemmParams p{};
    p.m = m, p.n = n, p.k = k, p.alpha = alpha, p.beta = beta;
    p.a = a, p.lda = lda, p.stride_a = stride_a;
    p.b = b, p.ldb = ldb, p.stride_b = stride_b;
    p.c = c, p.ldc = ldc, p.stride_c = stride_c;
    p.batch = batch;
    p.vec_a = vectorizable(a, lda, stride_a, batch);
    p.vec_b = vectorizable(b, ldb, stride_b, batch);
    p.vec_c = vectorizable(c, ldc, stride_c, batch);
    launch_sgemm(op, tiling, trans_a, trans_b, p, stream);
}

}  // namespace

void sgemm_strided_batched(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, float alpha,
                           const float* a, int64_t lda, int64_t stride_a, const float* b, int64_t ldb,
                           int64_t stride_b, float beta, float* c, int64_t ldc, int64_t stride_c,
                           int64_t batch, cudaStream_t stream) {
    sgemm_impl("sgemm_strided_batched", GemmTiling::automatic, trans_a, trans_b, m, n, k, alpha, a, lda,
               stride_a, b, ldb, stride_b, beta, c, ldc, stride_c, batch, stream);
}

void sgemm(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, float alpha, const float* a,
           int64_t lda, const float* b, int64_t ldb, float beta, float* c, int64_t ldc, cudaStream_t stream) {
    sgemm_impl("sgemm", GemmTiling::automatic, trans_a, trans_b, m, n, k, alpha, a, lda, 0, b, ldb, 0, beta,
               c, ldc, 0, 1, stream);
}

void sgemm_strided_batched_with_tiling(GemmTiling tiling, bool trans_a, bool trans_b, int64_t m, int64_t n,
                                       int64_t k, float alpha, const float* a, int64_t lda, int64_t stride_a,
                                       const float* b, int64_t ldb, int64_t stride_b, float beta, float* c,
                                       int64_t ldc, int64_t stride_c, int64_t batch, cudaStream_t stream) {
    sgemm_impl("sgemm_strided_batched", tiling, trans_a, trans_b, m, n, k, alpha, a, lda, stride_a, b, ldb,
               stride_b, beta, c, ldc, stride_c, batch, stream);
}

}  // namespace cudacnn::gpu
