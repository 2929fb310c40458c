// conv2d as im2col + the project's SGEMM (cuda/gemm.hpp): forward, backward-data and backward-filter for
// every option of cpu::conv2d (any kernel, stride, padding numbers / 'same' / 'valid', dilation, groups,
// bias, padding modes zeros / reflect / replicate / circular).
//
// The batch is processed in chunks of as many images as the workspace holds. For a chunk the column buffer
// is col (C·KH·KW, chunk, OH·OW), row-major: row r = (c, i, j) holds, for every image of the chunk and every
// output position, the padded input element that tap (i, j) of channel c reads. Group g owns rows
// [g·K, (g+1)·K) with K = C/G·KH·KW, so for image n its matrix col_{n,g} is (K, OH·OW) with leading dimension
// chunk·OH·OW, and
//   forward          y_{n,g}  = W_g · col_{n,g}                (W_g (OC/G, K); one strided-batched GEMM per
//                                                               group or per image, whichever is fewer)
//   backward-data    col_{n,g} = W_gᵀ · dy_{n,g}, then col2im   (col2im: a gather, one thread per input
//                                                               element; deterministic, no atomics)
//   backward-filter  dW_g = dy_gᵖ · col_gᵀ over the whole chunk (dy permuted to (OC, chunk, OH·OW) so that
//                                                               the chunk's images form one GEMM with
//                                                               k = chunk·OH·OW), added to the earlier
//                                                               chunks' sum. When (OC/G)·K gives few output
//                                                               tiles the k range is split into up to 32
//                                                               slices of ≥ 256 columns computed as one
//                                                               batched GEMM into partial sums, then added in
//                                                               slice order (split-k, deterministic).
// Kernels: im2col, one thread per (image, channel, output position) looping over the taps (coalesced column
// writes); col2im, one thread per input element gathering its column entries (coalesced dx writes);
// element-wise grid-stride kernels for the bias broadcast, the dy permute and the split-k sum; the GEMMs are
// cuda/gemm.hpp's tiled SGEMM. Nothing uses atomics: results are bitwise reproducible for a given workspace
// size (the chunk and split sizes follow it).
// Padding modes: im2col reads through the reference's padded-index mapping; col2im sends every column entry
// to the input element its padded position maps to (reflect / replicate / circular border gradients).
#pragma once

#include <cuda_runtime_api.h>

#include <cstddef>
#include <cstdint>
#include <string>

#include "cudacnn/ops/conv2d.hpp"

namespace cudacnn::gpu {

// Empty when the geometry is supported: every geometry cpu::conv2d_geometry resolves, with one limit: a
// single image's column matrix (C·KH·KW · OH·OW elements), input or output must have fewer than 2^30 elements
// (the kernels index a chunk with 32-bit integers). Otherwise why not: the reference's own message for a
// geometry it would not produce (conv2d_common.cuh), or the limit. The three calls throw Error with this
// message.
std::string conv2d_im2col_unsupported(const cpu::Conv2dGeometry& g);

// The workspace the three calls need, in bytes: chunk · (C·KH·KW + OC) · OH·OW floats (the column buffer,
// then for backward-filter the permuted dy) plus, when backward-filter splits k, slices · OC · C/G·KH·KW
// floats of partial sums; the chunk is as many images as fit 64 MiB, at least one, at most the batch. The
// calls also accept a smaller workspace, down to one image's worth, and then process the batch in smaller
// chunks (the tests use this to cover chunking); less than that throws Error, as does an unsupported
// geometry.
size_t conv2d_im2col_workspace_bytes(const cpu::Conv2dGeometry& g);

// x (N, C, H, W), w (OC, C/G, KH, KW), bias (OC) or nullptr → y (N, OC, OH, OW), overwritten. With a bias,
// y is first filled with the broadcast bias and the GEMM adds to it (beta = 1).
void conv2d_im2col_forward(const cpu::Conv2dGeometry& g, const float* x, const float* w, const float* bias,
                           float* y, void* workspace, size_t workspace_bytes, cudaStream_t stream);

// dy (N, OC, OH, OW), w → dx (N, C, H, W), overwritten (elements no tap reads get 0).
void conv2d_im2col_backward_data(const cpu::Conv2dGeometry& g, const float* dy, const float* w, float* dx,
                                 void* workspace, size_t workspace_bytes, cudaStream_t stream);

// x, dy → dw (OC, C/G, KH, KW), overwritten; dbias (OC) = Σ dy over (N, OH, OW) when non-null, overwritten
// (conv_bias_grad of cuda/bias_grad.hpp).
void conv2d_im2col_backward_filter(const cpu::Conv2dGeometry& g, const float* x, const float* dy, float* dw,
                                   float* dbias, void* workspace, size_t workspace_bytes,
                                   cudaStream_t stream);

}  // namespace cudacnn::gpu
