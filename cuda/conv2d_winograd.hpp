// conv2d as Winograd F(m×m, 3×3) (Lavin & Gray, "Fast Algorithms for Convolutional Neural Networks", 2015),
// with output tiles of m = 2 or 4: each m × m output tile costs (m + 2)² multiplies per channel pair instead
// of direct convolution's 9m² (F(2×2): 16 vs 36, 2.25× fewer; F(4×4): 36 vs 144, 4× fewer), at the price of
// transforms that are memory-bound: the transformed input and output are (m + 2)² / m² the size of x and y
// (4× for F(2×2), 2.25× for F(4×4)). For 3 × 3 kernels, stride 1, dilation 1, padding 1 (zeros), groups 1 —
// every convolution of CifarCNN.
//
// The tiles: output tile (ty, tx) of image n covers y[m·ty .. m·ty + m − 1][m·tx .. m·tx + m − 1] and reads
// the (m + 2) × (m + 2) input tile x[m·ty − 1 .. m·ty + m][m·tx − 1 .. m·tx + m] (zero outside the image: the
// padding, applied while gathering); T = N · ⌈OH/m⌉ · ⌈OW/m⌉ tiles; outputs of a last partial tile beyond
// OH × OW are dropped. The matrices, Bᵗ ((m + 2) × (m + 2)), G ((m + 2) × 3), Aᵗ (m × (m + 2)):
//   F(2×2), points 0, ±1, ∞:
//     Bᵗ = [1 0 −1 0; 0 1 1 0; 0 −1 1 0; 0 1 0 −1], G = [1 0 0; ½ ½ ½; ½ −½ ½; 0 0 1],
//     Aᵗ = [1 1 1 0; 0 1 −1 −1];
//   F(4×4), points 0, 1, −1, 2, −½, ∞ (rather than Lavin's 0, ±1, ±2, ∞: Barabasz et al., "Error analysis and
//   improving the accuracy of Winograd convolution for deep neural networks", 2020: in a float simulation of
//   single tiles, C = 16 to 256, the rms error is 0.65× Lavin's and the largest 0.3–0.45×; the tests' error
//   bound is 2.6× smaller):
//     Bᵗ = [2 3 −4 −3 2 0; 0 −2 −5 −1 2 0; 0 2 1 −5 2 0; 0 −1 −2 1 2 0; 0 −8 4 8 −4 0; 0 2 3 −4 −3 2],
//     G = [½ 0 0; −⅙ −⅙ −⅙; ⅙ −⅙ ⅙; 1/30 1/15 2/15; 4/15 −2/15 1/15; 0 0 ½],
//     Aᵗ = [1 1 1 1 1 0; 0 1 −1 2 −½ 0; 0 1 1 4 ¼ 0; 0 1 −1 8 −⅛ 1]
//     (the rows' power-of-two scalings, exact in binary floating point, chosen for integer Bᵗ; the
//     non-dyadic factors 1/3, 1/5 sit in G, applied once per filter);
// with the (m + 2)² positions ξ of a transformed tile:
//   forward          U[ξ][k][c] = (G w[k][c] Gᵗ)[ξ], V[ξ][c][t] = (Bᵗ d_t B)[ξ], then (m + 2)² independent
//                    GEMMs M[ξ] (OC × T) = U[ξ] (OC × C) · V[ξ] (C × T), y_t[k] = Aᵗ M[·][k][t] A (+ bias);
//   backward-data    the same pipeline on dy with the filter rotated by 180° and C / OC swapped:
//                    dx = conv(dy, w'), w'[c][k] = rot180(w[k][c]), padding 1;
//   backward-filter  from y_t = Aᵗ (U ⊙ V_t) A: dM[ξ][k][t] = (A dy_t Aᵗ)[ξ] (dy_t the m × m gradient tile,
//                    zero outside OH × OW), dU[ξ] (OC × C) = dM[ξ] (OC × T) · V[ξ]ᵗ (T × C), dw = Gᵗ dU G.
// The GEMMs go through gpu::gemm_strided_batched (cuda/gemm_backend.hpp), so they follow the GEMM settings
// (own or cuBLAS, FP32 or TF32). Transformed arrays are laid out [ξ][rows][tiles] (tiles contiguous), so
// every GEMM reads them as they are, without transposes. Backward-filter's long k (= T) is cut into chunks
// that are an outer index of its arrays ([chunk][ξ][rows][tile in chunk]), so one batched launch of
// (m + 2)² × chunks GEMMs fills the GPU; a last kernel sums the chunks' partial dU in chunk order and
// transforms them. Transform kernels: one thread per (channel, tile), the 2-D transform in registers (one
// 1-D transform down the columns, then along the rows), coalesced along the tiles. Fixed-order sums and no
// atomics: results are bitwise reproducible (for a given GEMM backend and tile).
//
// Numerics: the rounding error grows with the transforms' entries. F(2×2)'s (G up to 1, B and A 0 / ±1) make
// it a small multiple of direct convolution's; F(4×4)'s (Bᵗ and Aᵗ up to 8) about 9× F(2×2)'s: up to 5.5e-6
// relative on CifarCNN's layers (F(2×2): 6e-7). tests/ops/conv2d_winograd_parity_test.cpp derives the
// tolerances.
#pragma once

#include <cuda_runtime_api.h>

#include <cstddef>
#include <string>

#include "cudacnn/ops/conv2d.hpp"

namespace cudacnn::gpu {

// The output tile: F(2×2, 3×3) or F(4×4, 3×3). Every call takes it last, F(2×2) by default; the three
// directions of one layer may use different tiles (each call's workspace_bytes for its own tile).
enum class WinogradTile { f2x2, f4x4 };

// "F(2×2, 3×3)" or "F(4×4, 3×3)".
const char* winograd_tile_name(WinogradTile tile);

// Empty when the geometry is supported: what cpu::conv2d_geometry resolves, with a 3 × 3 kernel, stride 1,
// dilation 1, padding 1 on every side, padding mode zeros, groups 1, and x, y and the workspace below 2^31
// elements (32-bit index math). Otherwise one sentence why; the calls then throw Error with it.
std::string conv2d_winograd_unsupported(const cpu::Conv2dGeometry& g, WinogradTile tile = WinogradTile::f2x2);

// The workspace each of the three calls needs, in bytes (all three need some): the transformed filter (or
// backward-filter's partial dU per chunk), the transformed input tiles and the transformed output (or
// gradient) tiles, (m + 2)² × tiles × channels floats each; the largest over the three directions. No call
// allocates. Throws Error for an unsupported geometry.
size_t conv2d_winograd_workspace_bytes(const cpu::Conv2dGeometry& g, WinogradTile tile = WinogradTile::f2x2);

// x (N, C, H, W), w (OC, C, 3, 3), bias (OC) or nullptr → y (N, OC, H, W), overwritten. Throws Error when
// the workspace is smaller than the call needs (conv2d_winograd_workspace_bytes(g, tile) is always enough).
void conv2d_winograd_forward(const cpu::Conv2dGeometry& g, const float* x, const float* w, const float* bias,
                             float* y, void* workspace, size_t workspace_bytes, cudaStream_t stream,
                             WinogradTile tile = WinogradTile::f2x2);

// dy (N, OC, H, W), w → dx (N, C, H, W), overwritten. Workspace as the forward.
void conv2d_winograd_backward_data(const cpu::Conv2dGeometry& g, const float* dy, const float* w, float* dx,
                                   void* workspace, size_t workspace_bytes, cudaStream_t stream,
                                   WinogradTile tile = WinogradTile::f2x2);

// x, dy → dw (OC, C, 3, 3), overwritten; dbias (OC) = Σ dy over (N, H, W) when non-null, overwritten
// (conv_bias_grad of cuda/bias_grad.hpp). Workspace as the forward.
void conv2d_winograd_backward_filter(const cpu::Conv2dGeometry& g, const float* x, const float* dy, float* dw,
                                     float* dbias, void* workspace, size_t workspace_bytes,
                                     cudaStream_t stream, WinogradTile tile = WinogradTile::f2x2);

}  // namespace cudacnn::gpu
