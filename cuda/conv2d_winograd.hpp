// conv2d as Winograd F(2×2, 3×3) (Lavin & Gray, "Fast Algorithms for Convolutional Neural Networks", 2015):
// each 2 × 2 output tile costs 16 multiplies per channel pair instead of direct convolution's 36 (2.25×
// fewer), at the price of transforms that are memory-bound. For 3 × 3 kernels, stride 1, dilation 1,
// padding 1 (zeros), groups 1 — every convolution of CifarCNN.
//
// The tiles: output tile (ty, tx) of image n covers y[2ty .. 2ty + 1][2tx .. 2tx + 1] and reads the 4 × 4
// input tile x[2ty − 1 .. 2ty + 2][2tx − 1 .. 2tx + 2] (zero outside the image: the padding, applied while
// gathering); T = N · ⌈OH/2⌉ · ⌈OW/2⌉ tiles; outputs of a last partial tile beyond OH × OW are dropped. With
//   Bᵗ = [1 0 −1 0; 0 1 1 0; 0 −1 1 0; 0 1 0 −1], G = [1 0 0; ½ ½ ½; ½ −½ ½; 0 0 1],
//   Aᵗ = [1 1 1 0; 0 1 −1 −1]:
//   forward          U[ξ][k][c] = (G w[k][c] Gᵗ)[ξ], V[ξ][c][t] = (Bᵗ d_t B)[ξ] for the 16 positions ξ of a
//                    4 × 4 tile, then 16 independent GEMMs M[ξ] (OC × T) = U[ξ] (OC × C) · V[ξ] (C × T) and
//                    y_t[k] = Aᵗ M[·][k][t] A (+ bias);
//   backward-data    the same pipeline on dy with the filter rotated by 180° and C / OC swapped:
//                    dx = conv(dy, w'), w'[c][k] = rot180(w[k][c]), padding 1;
//   backward-filter  from y_t = Aᵗ (U ⊙ V_t) A: dM[ξ][k][t] = (A dy_t Aᵗ)[ξ] (dy_t the 2 × 2 gradient tile,
//                    zero outside OH × OW), dU[ξ] (OC × C) = dM[ξ] (OC × T) · V[ξ]ᵗ (T × C), dw = Gᵗ dU G.
// The GEMMs go through gpu::gemm_strided_batched (cuda/gemm_backend.hpp), so they follow the GEMM settings
// (own or cuBLAS, FP32 or TF32). Transformed arrays are laid out [ξ][rows][tiles] (tiles contiguous), so
// every GEMM reads them as they are, without transposes. Backward-filter's long k (= T) is cut into chunks
// that are an outer index of its arrays ([chunk][ξ][rows][tile in chunk]), so one batched launch of 16 ×
// chunks GEMMs fills the GPU; a last kernel sums the chunks' partial dU in chunk order and transforms them.
// Transform kernels: one thread per (channel, tile), the 4 × 4 transform in registers, coalesced along the
// tiles. Fixed-order sums and no atomics: results are bitwise reproducible (for a given GEMM backend).
//
// Numerics: the transforms' growth (entries of G up to 1, of B and A 0 / ±1) makes the rounding error a small
// multiple of direct convolution's; tests/ops/conv2d_winograd_parity_test.cpp derives the tolerance.
#pragma once

#include <cuda_runtime_api.h>

#include <cstddef>
#include <string>

#include "cudacnn/ops/conv2d.hpp"

namespace cudacnn::gpu {

// Empty when the geometry is supported: what cpu::conv2d_geometry resolves, with a 3 × 3 kernel, stride 1,
// dilation 1, padding 1 on every side, padding mode zeros, groups 1, and x, y and the workspace below 2^31
// elements (32-bit index math). Otherwise one sentence why; the calls then throw Error with it.
std::string conv2d_winograd_unsupported(const cpu::Conv2dGeometry& g);

// The workspace each of the three calls needs, in bytes (all three need some): the transformed filter (or
// backward-filter's partial dU per chunk), the transformed input tiles and the transformed output (or
// gradient) tiles, 16 × tiles × channels floats each; the largest over the three directions. No call
// allocates. Throws Error for an unsupported geometry.
size_t conv2d_winograd_workspace_bytes(const cpu::Conv2dGeometry& g);

// x (N, C, H, W), w (OC, C, 3, 3), bias (OC) or nullptr → y (N, OC, H, W), overwritten. Throws Error when
// the workspace is smaller than the call needs (conv2d_winograd_workspace_bytes(g) is always enough).
void conv2d_winograd_forward(const cpu::Conv2dGeometry& g, const float* x, const float* w, const float* bias,
                             float* y, void* workspace, size_t workspace_bytes, cudaStream_t stream);

// dy (N, OC, H, W), w → dx (N, C, H, W), overwritten. Workspace as the forward.
void conv2d_winograd_backward_data(const cpu::Conv2dGeometry& g, const float* dy, const float* w, float* dx,
                                   void* workspace, size_t workspace_bytes, cudaStream_t stream);

// x, dy → dw (OC, C, 3, 3), overwritten; dbias (OC) = Σ dy over (N, H, W) when non-null, overwritten
// (conv_bias_grad of cuda/bias_grad.hpp). Workspace as the forward.
void conv2d_winograd_backward_filter(const cpu::Conv2dGeometry& g, const float* x, const float* dy, float* dw,
                                     float* dbias, void* workspace, size_t workspace_bytes,
                                     cudaStream_t stream);

}  // namespace cudacnn::gpu
