// Kernels that exercise the warp matrix functions (nvcuda::wmma) for the TF32 tile shape, on a GPU (sm_80+)
// or on the emulator's version (cuda/emu/wmma.hpp).
#include "kernels/wmma_kernels.hpp"

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <mma.h>

#include <type_traits>

#include "cuda/launch.cuh"

namespace cudacnn::test {

namespace wmma = nvcuda::wmma;

// External linkage (no anonymous namespace) so that launch errors and the emulator can name the kernels.
template <class LayoutA, class LayoutB>
__global__ void wmma_tile_product_kernel(WmmaTileLayout layout, const float* a, const float* b, const float* c,
                                         float* d) {
    wmma::fragment<wmma::matrix_a, 16, 16, 8, wmma::precision::tf32, LayoutA> a_frag;
    wmma::fragment<wmma::matrix_b, 16, 16, 8, wmma::precision::tf32, LayoutB> b_frag;
    wmma::fragment<wmma::accumulator, 16, 16, 8, float> acc;
    const wmma::layout_t c_layout = layout.c_col_major ? wmma::mem_col_major : wmma::mem_row_major;
    wmma::load_matrix_sync(a_frag, a, layout.lda);
    wmma::load_matrix_sync(b_frag, b, layout.ldb);
    wmma::load_matrix_sync(acc, c, layout.ldc, c_layout);
    if (layout.convert) {
        for (int i = 0; i < a_frag.num_elements; ++i) a_frag.x[i] = wmma::__float_to_tf32(a_frag.x[i]);
        for (int i = 0; i < b_frag.num_elements; ++i) b_frag.x[i] = wmma::__float_to_tf32(b_frag.x[i]);
    }
    wmma::mma_sync(acc, a_frag, b_frag, acc);
    wmma::store_matrix_sync(d, acc, layout.ldc, c_layout);
}

void wmma_tile_product(const WmmaTileLayout& layout, const float* a, const float* b, const float* c, float* d,
                       cudaStream_t stream) {
    const dim3 grid(1), warp(32);
    if (!layout.a_col_major && !layout.b_col_major) {
        launch(wmma_tile_product_kernel<wmma::row_major, wmma::row_major>, grid, warp, 0, stream, layout, a, b, c, d);
    } else if (!layout.a_col_major && layout.b_col_major) {
        launch(wmma_tile_product_kernel<wmma::row_major, wmma::col_major>, grid, warp, 0, stream, layout, a, b, c, d);
    } else if (layout.a_col_major && !layout.b_col_major) {
        launch(wmma_tile_product_kernel<wmma::col_major, wmma::row_major>, grid, warp, 0, stream, layout, a, b, c, d);
    } else {
        launch(wmma_tile_product_kernel<wmma::col_major, wmma::col_major>, grid, warp, 0, stream, layout, a, b, c, d);
    }
}

template <class T>
__device__ T from_float(float x);
template <>
__device__ __nv_bfloat16 from_float<__nv_bfloat16>(float x) {
    return __float2bfloat16(x);
}
template <>
__device__ __half from_float<__half>(float x) {
    return __float2half(x);
}

template <class T, class LayoutB>
__global__ void wmma_16bit_tile_product_kernel(const float* a, const float* b, const float* c, float* d) {
    constexpr int kTile = 16;
    constexpr bool b_col = std::is_same_v<LayoutB, wmma::col_major>;
    __shared__ __align__(32) T a_s[kTile * kTile];
    __shared__ __align__(32) T b_s[kTile * kTile];
    for (int e = threadIdx.x; e < kTile * kTile; e += 32) {
        const int r = e / kTile, col = e % kTile;
        a_s[e] = from_float<T>(a[e]);
        b_s[b_col ? col * kTile + r : e] = from_float<T>(b[e]);
    }
    __syncwarp();
    wmma::fragment<wmma::matrix_a, kTile, kTile, kTile, T, wmma::row_major> a_frag;
    wmma::fragment<wmma::matrix_b, kTile, kTile, kTile, T, LayoutB> b_frag;
    wmma::fragment<wmma::accumulator, kTile, kTile, kTile, float> acc;
    wmma::load_matrix_sync(a_frag, a_s, kTile);
    wmma::load_matrix_sync(b_frag, b_s, kTile);
    wmma::load_matrix_sync(acc, c, kTile, wmma::mem_row_major);
    wmma::mma_sync(acc, a_frag, b_frag, acc);
    wmma::store_matrix_sync(d, acc, kTile, wmma::mem_row_major);
}

void wmma_16bit_tile_product(bool bf16, bool b_col_major, const float* a, const float* b, const float* c,
                             float* d, cudaStream_t stream) {
    const dim3 grid(1), warp(32);
    if (bf16 && b_col_major) {
        launch(wmma_16bit_tile_product_kernel<__nv_bfloat16, wmma::col_major>, grid, warp, 0, stream, a, b, c, d);
    } else if (bf16) {
        launch(wmma_16bit_tile_product_kernel<__nv_bfloat16, wmma::row_major>, grid, warp, 0, stream, a, b, c, d);
    } else if (b_col_major) {
        launch(wmma_16bit_tile_product_kernel<__half, wmma::col_major>, grid, warp, 0, stream, a, b, c, d);
    } else {
        launch(wmma_16bit_tile_product_kernel<__half, wmma::row_major>, grid, warp, 0, stream, a, b, c, d);
    }
}

__global__ void float_to_tf32_kernel(const float* in, float* out, std::int64_t n) {
    const std::int64_t i = static_cast<std::int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
    if (i < n) out[i] = wmma::__float_to_tf32(in[i]);
}

void float_to_tf32(const float* in, float* out, std::int64_t n, cudaStream_t stream) {
    constexpr unsigned kBlock = 128;
    const unsigned grid = static_cast<unsigned>((n + kBlock - 1) / kBlock);
    if (grid > 0) launch(float_to_tf32_kernel, dim3(grid), dim3(kBlock), 0, stream, in, out, n);
}

__global__ void wmma_fill_and_scale_kernel(float value, float* out, int* num_elements) {
    wmma::fragment<wmma::accumulator, 16, 16, 8, float> acc;
    wmma::fill_fragment(acc, value);
    for (int i = 0; i < acc.num_elements; ++i) acc.x[i] *= 2.0f;
    wmma::store_matrix_sync(out, acc, 16, wmma::mem_row_major);
    if (threadIdx.x == 0) *num_elements = acc.num_elements;
}

void wmma_fill_and_scale(float value, float* out, int* num_elements, cudaStream_t stream) {
    launch(wmma_fill_and_scale_kernel, dim3(1), dim3(32), 0, stream, value, out, num_elements);
}

#ifdef CUDACNN_EMU
__global__ void wmma_misused_load_kernel(const float* a, unsigned ldm, int lane_offset) {
    wmma::fragment<wmma::matrix_a, 16, 16, 8, wmma::precision::tf32, wmma::row_major> a_frag;
    wmma::load_matrix_sync(a_frag, a + lane_offset * static_cast<int>(threadIdx.x % 32), ldm);
}

void wmma_misused_load(const float* a, unsigned ldm, int lane_offset, cudaStream_t stream) {
    launch(wmma_misused_load_kernel, dim3(1), dim3(32), 0, stream, a, ldm, lane_offset);
}
#endif

}  // namespace cudacnn::test
