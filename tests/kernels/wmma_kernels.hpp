// Host-callable launchers of the warp-matrix (nvcuda::wmma) test kernels, so that Catch2 stays out of .cu files.
#pragma once

#include <cstdint>

#include <cuda_runtime_api.h>

namespace cudacnn::test {

// How one 16 × 16 × 8 TF32 tile product is stored and computed.
struct WmmaTileLayout {
    bool a_col_major = false;  // A (16 × 8): row-major (a[r·lda + c]) or column-major (a[c·lda + r])
    bool b_col_major = false;  // B (8 × 16)
    bool c_col_major = false;  // C and D (16 × 16), as mem_row_major or mem_col_major
    unsigned lda = 8, ldb = 16, ldc = 16;  // leading dimensions, multiples of 4
    bool convert = true;       // round A and B with __float_to_tf32 before mma_sync (else the raw floats)
};

// One warp: D = A · B + C with wmma fragments, device pointers; D is stored with C's layout and ldc.
void wmma_tile_product(const WmmaTileLayout& layout, const float* a, const float* b, const float* c, float* d,
                       cudaStream_t stream);

// One warp: D = A · B + C for 16 × 16 × 16 tiles of bf16 (else half) operands with a float accumulator.
// A (16 × 16), B (16 × 16), C and D are row-major floats on the device (ld 16); the kernel rounds A and B to
// the 16-bit type (__float2bfloat16 / __float2half, to nearest even) into shared memory, A row-major and B
// column-major when b_col_major (else row-major), and loads the fragments from there.
void wmma_16bit_tile_product(bool bf16, bool b_col_major, const float* a, const float* b, const float* c,
                             float* d, cudaStream_t stream);

// out[i] = nvcuda::wmma::__float_to_tf32(in[i]) for i < n.
void float_to_tf32(const float* in, float* out, std::int64_t n, cudaStream_t stream);

// One warp: fill_fragment(acc, value), then every element x[i] for i < num_elements is doubled and acc is
// stored (row-major, ldm 16) to out (256 floats); *num_elements receives acc.num_elements.
void wmma_fill_and_scale(float value, float* out, int* num_elements, cudaStream_t stream);

#ifdef CUDACNN_EMU
// Misuse that the emulator must refuse (a GPU would fault or compute garbage): one warp loads a matrix_a
// fragment from a + lane_offset·lane (so lanes disagree unless lane_offset == 0) with leading dimension ldm.
void wmma_misused_load(const float* a, unsigned ldm, int lane_offset, cudaStream_t stream);
#endif

}  // namespace cudacnn::test
