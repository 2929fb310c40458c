// conv2d as an implicit GEMM: the im2col column matrix is never written; each block gathers the column tile
// it needs straight from x (or dy) into shared memory, with the zero padding applied as it reads.
//
// The three products, for groups 1 and K = C·KH·KW (rows of the virtual column matrix col (K, N·OH·OW)):
//   forward          y  (OC, N·OH·OW) = W (OC, K) · col (K, N·OH·OW)            [+ bias per row]
//   backward-data    dx (C, N·H·W)    = Wᵗ (C, OC·KH·KW) · dycol (OC·KH·KW, N·H·W)
//                    where Wᵗ[c, (oc, i, j)] = W[oc, c, i, j] (transposed into the workspace first) and
//                    dycol[(oc, i, j), (n, h, w)] = dy[n, oc, oh, ow] for the output position (oh, ow) whose
//                    tap (i, j) reads (h, w), or 0 when none does (a gather: no atomics);
//   backward-filter  dW (OC, K)       = dy (OC, N·OH·OW) · colᵀ (N·OH·OW, K).
// Split-k: a product with few output tiles for its k range (backward-filter, whose k = N·OH·OW is long;
// forward and backward-data on small maps, e.g. CifarCNN's 8 × 8 layers) has k cut into slices for about two
// blocks per H100 SM, each slice's partial product written densely to the workspace, then summed in slice
// order by a second kernel (deterministic, no atomics) that writes the real output. The "matrices" are views:
// y, dx are written and dy, x are read in NCHW or NHWC through index decoders. Kernel: 256 threads, block
// tile BM × 128 (BM = 32, 64 or 128 by the product's m), k-slices of 8, double-buffered shared slices with
// one barrier per slice, BM/16 × 8 outputs per thread in registers. Every output sums its k terms in order
// and nothing uses atomics: results are bitwise reproducible.
// TF32 (allow_tf32, --precision tf32): the same gather, pipeline and split-k, with the gathered values
// rounded to TF32 (cvt.rna.tf32.f32, as cuda/gemm_tf32.hpp rounds) as they enter shared memory and the block
// tile multiplied on tensor cores (nvcuda::wmma 16 × 16 × 8, FP32 accumulators, 8 warps of (BM/2) × 32).
// Inputs keep 10 mantissa bits, so errors are of TF32 size (~1e-3 relative), not FP32's; the bias, the
// split-k sums and backward-filter's bias gradient stay FP32. Still deterministic: the tensor cores' order is
// fixed, and the emulator's wmma sums k in order, which makes it bit for bit the FP32 kernel on TF32-rounded
// inputs. Built unless CUDACNN_IMPLICIT_TF32=0 (default: CUDACNN_TENSOR_CORES); where it cannot run,
// allow_tf32 runs the FP32 kernel (conv2d_implicit_tf32_available() says which).
// bf16 (--precision bf16): x, y, dy, dx and the weights' copy stored as bf16, read by the same FP32 kernel
// (loads widen exactly; products of two bf16 are exact in float), FP32 sums, each stored bf16 element rounded
// once (to nearest even) from its float sum (+ bias); bias, dw and dbias stay float. No TF32 with bf16: the
// bf16 overloads take no allow_tf32.
// bf16 on tensor cores (what the bf16 overloads run where conv2d_implicit_bf16_tensor_cores_available()):
// the same gather, pipeline and split-k, the gathered values stored in shared memory as bf16 (exact) in
// k-slices of 16 and the block tile multiplied with nvcuda::wmma bf16 16 × 16 × 16 (FP32 accumulators, the
// TF32 kernel's 8 warps of (BM/2) × 32). Products of two bf16 are exact in float, so only the order of the
// float sums differs from the CUDA-core bf16 kernel: the emulator's wmma adds k in order, which makes it bit
// for bit that kernel; tensor cores add in their own (fixed) order, so on a GPU the bits differ by float
// rounding. Deterministic and without atomics either way. Built unless CUDACNN_IMPLICIT_BF16_MMA=0 (default:
// CUDACNN_IMPLICIT_TF32); the *_with_kernel calls choose the kernel (tests).
// NHWC (channels_last, the overloads with a last MemoryFormat): x, y, dy and dx in either memory format
// (shapes written (N, C, H, W) either way); the weights and dw stay (OC, C, KH, KW). The format is only the
// decoders' channel and pixel strides, and k keeps the weights' order (c, i, j), so an NHWC call sums every
// output's terms in the NCHW call's order: the same bits, permuted. TF32 and bf16 included. The gathers'
// thread layout is NCHW's (reads along output positions or k, C elements apart in NHWC except 1×1 kernels).
#pragma once

#include <cuda_runtime_api.h>

#include <cstddef>
#include <string>

#include "cuda/batch_norm.hpp"
#include "cuda/bf16.cuh"
#include "cudacnn/memory_format.hpp"
#include "cudacnn/ops/conv2d.hpp"

namespace cudacnn::gpu {

// Empty when the geometry is supported: what cpu::conv2d_geometry resolves, with groups 1, padding mode
// zeros, and x, y, w and the workspace below 2^31 elements (32-bit index math).
// Otherwise one sentence why; the three calls then throw Error with it (Conv2dPlan falls back to im2col).
std::string conv2d_implicit_unsupported(const cpu::Conv2dGeometry& g);

// The workspace each of the three calls accepts, in bytes: the largest of the forward's split-k partial
// outputs, backward-data's transposed weights (+ its partial outputs) and backward-filter's partial weight
// gradients (partial sums only where a product splits k; 0 is possible for the forward alone, never for
// backward-data). Enough for the bf16 calls too, which need at most as much (their transposed weights take
// half the bytes; partial sums are float in both). No call allocates. Throws Error for an unsupported
// geometry.
size_t conv2d_implicit_workspace_bytes(const cpu::Conv2dGeometry& g);

// Whether allow_tf32 runs the TF32 tensor-core kernel: built with CUDACNN_IMPLICIT_TF32 on and a device of
// compute capability 8.0 or more (the emulator reports 9.0 and runs it through its nvcuda::wmma).
bool conv2d_implicit_tf32_available();

// Whether the bf16 calls run the tensor-core kernel: built with CUDACNN_IMPLICIT_BF16_MMA on and a device of
// compute capability 8.0 or more (the emulator reports 9.0 and runs it through its nvcuda::wmma).
bool conv2d_implicit_bf16_tensor_cores_available();

// Which kernel a bf16 call runs: automatic (what the plain bf16 overloads do) takes tensor cores where
// conv2d_implicit_bf16_tensor_cores_available(), CUDA cores elsewhere; the explicit choices let tests cover
// both. tensor_cores where they are unavailable throws Error.
enum class ImplicitBf16Kernel { automatic, tensor_cores, cuda_cores };

// Each call below comes in FP32 and, with a last argument allow_tf32, in TF32 where
// conv2d_implicit_tf32_available() (FP32 elsewhere, or when it is false); the workspace is the same for both.
// A third overload takes bf16 activations and weights (FP32 sums, on tensor cores where they run; see the
// top).

// x (N, C, H, W), w (OC, C, KH, KW), bias (OC) or nullptr → y (N, OC, OH, OW), overwritten. Needs workspace
// only where it splits k (it may be null otherwise); conv2d_implicit_workspace_bytes(g) is always enough.
void conv2d_implicit_forward(const cpu::Conv2dGeometry& g, const float* x, const float* w, const float* bias,
                             float* y, void* workspace, size_t workspace_bytes, cudaStream_t stream);
void conv2d_implicit_forward(const cpu::Conv2dGeometry& g, const float* x, const float* w, const float* bias,
                             float* y, void* workspace, size_t workspace_bytes, cudaStream_t stream,
                             bool allow_tf32);
void conv2d_implicit_forward(const cpu::Conv2dGeometry& g, const bf16* x, const bf16* w, const float* bias,
                             bf16* y, void* workspace, size_t workspace_bytes, cudaStream_t stream);

// dy (N, OC, OH, OW), w → dx (N, C, H, W), overwritten (elements no tap reads get 0). Needs workspace
// (conv2d_implicit_workspace_bytes(g) is enough); a smaller one than the call needs throws Error.
void conv2d_implicit_backward_data(const cpu::Conv2dGeometry& g, const float* dy, const float* w, float* dx,
                                   void* workspace, size_t workspace_bytes, cudaStream_t stream);
void conv2d_implicit_backward_data(const cpu::Conv2dGeometry& g, const float* dy, const float* w, float* dx,
                                   void* workspace, size_t workspace_bytes, cudaStream_t stream,
                                   bool allow_tf32);
void conv2d_implicit_backward_data(const cpu::Conv2dGeometry& g, const bf16* dy, const bf16* w, bf16* dx,
                                   void* workspace, size_t workspace_bytes, cudaStream_t stream);

// x, dy → dw (OC, C, KH, KW), overwritten; dbias (OC) = Σ dy over (N, OH, OW) when non-null, overwritten
// (conv_bias_grad of cuda/bias_grad.hpp). Needs workspace where it splits k
// (conv2d_implicit_workspace_bytes(g) is enough).
void conv2d_implicit_backward_filter(const cpu::Conv2dGeometry& g, const float* x, const float* dy, float* dw,
                                     float* dbias, void* workspace, size_t workspace_bytes,
                                     cudaStream_t stream);
void conv2d_implicit_backward_filter(const cpu::Conv2dGeometry& g, const float* x, const float* dy, float* dw,
                                     float* dbias, void* workspace, size_t workspace_bytes,
                                     cudaStream_t stream, bool allow_tf32);
void conv2d_implicit_backward_filter(const cpu::Conv2dGeometry& g, const bf16* x, const bf16* dy, float* dw,
                                     float* dbias, void* workspace, size_t workspace_bytes,
                                     cudaStream_t stream);

// The nine calls above with x, y, dy and dx in `format` (MemoryFormat::nchw: the same as without it).
// Separate overloads rather than a defaulted argument, so the calls above keep their types (tests take their
// addresses).
void conv2d_implicit_forward(const cpu::Conv2dGeometry& g, const float* x, const float* w, const float* bias,
                             float* y, void* workspace, size_t workspace_bytes, cudaStream_t stream,
                             MemoryFormat format);
void conv2d_implicit_forward(const cpu::Conv2dGeometry& g, const float* x, const float* w, const float* bias,
                             float* y, void* workspace, size_t workspace_bytes, cudaStream_t stream,
                             bool allow_tf32, MemoryFormat format);
void conv2d_implicit_forward(const cpu::Conv2dGeometry& g, const bf16* x, const bf16* w, const float* bias,
                             bf16* y, void* workspace, size_t workspace_bytes, cudaStream_t stream,
                             MemoryFormat format);
void conv2d_implicit_backward_data(const cpu::Conv2dGeometry& g, const float* dy, const float* w, float* dx,
                                   void* workspace, size_t workspace_bytes, cudaStream_t stream,
                                   MemoryFormat format);
void conv2d_implicit_backward_data(const cpu::Conv2dGeometry& g, const float* dy, const float* w, float* dx,
                                   void* workspace, size_t workspace_bytes, cudaStream_t stream,
                                   bool allow_tf32, MemoryFormat format);
void conv2d_implicit_backward_data(const cpu::Conv2dGeometry& g, const bf16* dy, const bf16* w, bf16* dx,
                                   void* workspace, size_t workspace_bytes, cudaStream_t stream,
                                   MemoryFormat format);
void conv2d_implicit_backward_filter(const cpu::Conv2dGeometry& g, const float* x, const float* dy, float* dw,
                                     float* dbias, void* workspace, size_t workspace_bytes,
                                     cudaStream_t stream, MemoryFormat format);
void conv2d_implicit_backward_filter(const cpu::Conv2dGeometry& g, const float* x, const float* dy, float* dw,
                                     float* dbias, void* workspace, size_t workspace_bytes,
                                     cudaStream_t stream, bool allow_tf32, MemoryFormat format);
void conv2d_implicit_backward_filter(const cpu::Conv2dGeometry& g, const bf16* x, const bf16* dy, float* dw,
                                     float* dbias, void* workspace, size_t workspace_bytes,
                                     cudaStream_t stream, MemoryFormat format);

// The three bf16 calls on the kernel `kernel` chooses (the overloads above: automatic).
void conv2d_implicit_forward_with_kernel(ImplicitBf16Kernel kernel, const cpu::Conv2dGeometry& g,
                                         const bf16* x, const bf16* w, const float* bias, bf16* y,
                                         void* workspace, size_t workspace_bytes, cudaStream_t stream,
                                         MemoryFormat format);
void conv2d_implicit_backward_data_with_kernel(ImplicitBf16Kernel kernel, const cpu::Conv2dGeometry& g,
                                               const bf16* dy, const bf16* w, bf16* dx, void* workspace,
                                               size_t workspace_bytes, cudaStream_t stream,
                                               MemoryFormat format);
void conv2d_implicit_backward_filter_with_kernel(ImplicitBf16Kernel kernel, const cpu::Conv2dGeometry& g,
                                                 const bf16* x, const bf16* dy, float* dw, float* dbias,
                                                 void* workspace, size_t workspace_bytes, cudaStream_t stream,
                                                 MemoryFormat format);

// The forward with a following batch norm's statistics (cuda/batch_norm.hpp, batch_norm2d_from_partials):
// also writes, per output channel oc and 128-column tile t of the N·OH·OW output positions in (n, oh, ow)
// order, the (mean, M2, count) of the y values it stores there (after the bias; bf16: the rounded values) at
// stats[oc · P + t], P = conv2d_implicit_forward_stats_partials(g) = ⌈N·OH·OW / 128⌉. Without split-k the
// tile kernel's block reads back its own just-stored tile after a barrier (cache hits, not a pass over y);
// with split-k the slices' sum kernel computes them from the values it stores (one warp per (oc, t)). Each
// triple: two passes over a lane's ≤ 4 values, then Chan's merge in a fixed warp tree: deterministic, no
// atomics. y is bit for bit conv2d_implicit_forward's (float: FP32 arithmetic, no TF32; bf16: the automatic
// kernel). stats_bytes must be at least conv2d_implicit_forward_stats_bytes(g) = OC · P · 12.
int conv2d_implicit_forward_stats_partials(const cpu::Conv2dGeometry& g);
size_t conv2d_implicit_forward_stats_bytes(const cpu::Conv2dGeometry& g);
void conv2d_implicit_forward_with_stats(const cpu::Conv2dGeometry& g, const float* x, const float* w,
                                        const float* bias, float* y, BatchNorm2dPartialStats* stats,
                                        size_t stats_bytes, void* workspace, size_t workspace_bytes,
                                        cudaStream_t stream, MemoryFormat format);
void conv2d_implicit_forward_with_stats(const cpu::Conv2dGeometry& g, const bf16* x, const bf16* w,
                                        const float* bias, bf16* y, BatchNorm2dPartialStats* stats,
                                        size_t stats_bytes, void* workspace, size_t workspace_bytes,
                                        cudaStream_t stream, MemoryFormat format);

}  // namespace cudacnn::gpu
