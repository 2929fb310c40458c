// Direct conv2d on the GPU: shared-memory tiled forward, backward-data and backward-filter kernels for every
// option of cpu::conv2d (any kernel, stride, padding numbers / 'same' / 'valid', dilation, groups and
// depthwise, bias, padding modes zeros / reflect / replicate / circular). No atomics: every output element
// is summed by one thread (or one block's fixed reduction tree, or slices added in order), so results are
// bit-reproducible run to run. Only backward-filter may need a workspace (conv2d_direct_workspace_bytes).
//
// Tiling (chosen on the host per geometry; a stage must fit 48 KiB of dynamic shared memory, so for huge
// dilated kernels the host shrinks first the channels staged at once, then the window of kernel taps staged
// at once, then the spatial tile):
//   forward          one block = one image × one group × a spatial output tile (≤ 32 wide, ≤ 128 positions,
//                    one thread per position, a warp along a row) × thread rows of 8, 4, 2 or 1 output
//                    channels each (by the group's width, so depthwise wastes no thread; ≤ 256 threads: 16
//                    channels for a full tile). Per stage it holds the padded input patch of up to 8 input
//                    channels, the padding resolved by mode while loading, and their filter slice laid out
//                    (channel, tap, output channel) so a thread's weights are float4 warp broadcasts; each
//                    input value feeds all of the thread's output channels from a register.
//   backward-data    a gather, no atomics: one block = one image × one group × a dx tile (as above) × thread
//                    rows of 8, 4, 2 or 1 input channels. Per stage it holds the dy patch that the tile's
//                    taps read, for up to 8 output channels, and their filter slice; each thread sums, for
//                    its dx element, every (oc, i, j) tap whose output position reads it directly. With
//                    reflect / replicate / circular padding, input elements near the border were also read
//                    through the padding: those threads then add the taps of the padded copies (the inverse
//                    of the padding map, conv2d_common.cuh's padded_positions), reading dy and w from global
//                    memory.
//   backward-filter  one block (256 threads) = one group × 8, 4, 2 or 1 output channels (fewer when the grid
//                    would have under 2 blocks per H100 SM) × one input channel × a window of up to 16 kernel
//                    taps. It walks the whole (N, OH, OW) range in tiles of ≤ 256 positions (several images
//                    per tile when the plane is small), staging dy for its output channels and the padded
//                    input patches of its channel. The warps of one output channel split the positions; per
//                    tap a warp shuffle tree plus a fixed-order sum over the channel's warps reduces them, so
//                    the order depends only on the geometry. The blocks of input channel 0, first window,
//                    also sum dbias.
//                    Where stride and dilation are 1 and groups 1 (any padding), a tiled split-k kernel
//                    replaces it: a block (≤ 256 threads) owns up to 64 output channels × up to 8 input
//                    channels × a square window of up to 4×4 taps (taps past the kernel are summed and
//                    dropped; larger kernels take several windows) and a slice of the (N, OH, OW) positions,
//                    staged in tiles of ≤ 256 positions (dy of its output channels, the padded input patches
//                    of its channels); each thread sums 8 output channels × 1 input channel × the window's
//                    taps in registers over its share of a tile's positions, the block adds its threads' sums
//                    in a fixed order and writes its slice's partial dW to the workspace (or dw, for one
//                    slice); a second kernel adds the slices in order and conv_bias_grad (cuda/bias_grad.hpp)
//                    sums dbias.
// Launchers overwrite their outputs (never read them), validate the geometry against cpu::conv2d_geometry and
// throw cudacnn::Error naming the launcher and the values on bad arguments.
#pragma once

#include <cuda_runtime_api.h>

#include <string>

#include "cudacnn/ops/conv2d.hpp"

namespace cudacnn::gpu {

// Empty when the direct algorithm computes geometry g (every valid geometry whose tensors have fewer than
// 2^31 elements and whose padded extents fit 2^28), else the reason it does not (also for a geometry that
// cpu::conv2d_geometry would not produce).
std::string conv2d_direct_unsupported(const cpu::Conv2dGeometry& g);

// y (N, OC, OH, OW) = conv(x (N, C, H, W), w (OC, C/G, KH, KW)) + bias (OC), or no bias when nullptr.
// Overwrites y.
void conv2d_direct_forward(const cpu::Conv2dGeometry& g, const float* x, const float* w, const float* bias,
                           float* y, cudaStream_t stream);

// dx (N, C, H, W) from dy (N, OC, OH, OW) and w. Overwrites dx (elements no tap reads get 0).
void conv2d_direct_backward_data(const cpu::Conv2dGeometry& g, const float* dy, const float* w, float* dx,
                                 cudaStream_t stream);

// The workspace conv2d_direct_backward_filter needs for g, in bytes: the tiled kernel's partial dW slices,
// 0 where it writes dw directly or does not apply (forward and backward-data need none).
size_t conv2d_direct_workspace_bytes(const cpu::Conv2dGeometry& g);

// dw (OC, C/G, KH, KW) from x and dy; and dbias (OC) = Σ_{n,oh,ow} dy when dbias != nullptr. Overwrites both.
// `workspace` holds workspace_bytes bytes (may be null when conv2d_direct_workspace_bytes(g) is 0); one
// smaller than that throws Error.
void conv2d_direct_backward_filter(const cpu::Conv2dGeometry& g, const float* x, const float* dy, float* dw,
                                   float* dbias, void* workspace, size_t workspace_bytes,
                                   cudaStream_t stream);

}  // namespace cudacnn::gpu
