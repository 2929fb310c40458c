// Pooling kernels over (N, C, H, W) float32 and (all but Lp pooling) bfloat16 tensors: max (with argmax
// indices), average and global average, forward and backward, computing exactly what the CPU reference
// (include/cudacnn/ops/pool.hpp) defines.
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>
#include <type_traits>

#include "cuda/bf16.cuh"
#include "cuda/dropout.hpp"
#include "cudacnn/memory_format.hpp"
#include "cudacnn/ops/pool.hpp"
#include "cudacnn/tensor.hpp"

namespace cudacnn::gpu {

// Every launcher takes device pointers and validates shapes and options on the host with the reference's
// rules (cpu::max_pool2d_output_shape, cpu::avg_pool2d_output_shape), so the errors are the reference's.
// Outputs are overwritten, never read (they may hold NaN). Tensors must have fewer than 2^31 elements.
// All kernels are deterministic: no atomics; every output element is computed by one thread (or one warp)
// in a fixed order.
//
// bf16: every max pooling launcher also takes bf16 activations (x, y, dy, dx; --precision bf16), with the
// same checks, indices, taps and masks. The kernels are the float ones instantiated for bf16: values widen
// exactly to float, the computation is the float one, and each output element is rounded once to bf16. So the
// bf16 y is the float kernel's y on the same (bf16-valued) input, a selection, hence a bf16 itself (a NaN
// comes out as the canonical bf16 NaN), the indices are the float kernel's, ties and NaNs included, and dx is
// the float kernel's dx rounded once (the same float sums in the same order as the reference's). The average
// pooling launchers (avg, adaptive, global) take bf16 activations the same way: float sums of the widened
// values, each output rounded once. Lp pooling is float only.
//
// NHWC (channels_last): the max, average and adaptive average launchers take a MemoryFormat (last, default
// nchw) that applies to every tensor of the call: x, y, dy, dx, the saved indices and a folded dropout's
// per-element mask (all (N, C, ·, ·) in that format; a dropout2d mask stays (N, C)). Shapes are still
// written (N, C, H, W). The kernels are the NCHW ones with one thread per element in memory order, so
// consecutive threads take consecutive channels of one pixel (coalesced), and each thread computes its
// element in the same order as in NCHW: the NHWC outputs are the NCHW outputs permuted, bit for bit, float
// and bf16. The int64 index keeps its meaning in NHWC: the plane index h · W + w of the argmax (PyTorch's
// channels_last max_pool2d returns the indices its contiguous one does), so saved indices mean the same in
// both formats; window taps are window-relative anyway. A folded dropout over single elements (channelwise =
// false) draws unit i for the pooled element at memory offset i, as dropout_forward over the pooled buffer
// would, so its mask follows the memory order (NHWC masks differ from NCHW ones, as PyTorch's do);
// dropout2d's unit is the plane n · C + c in both formats, so its draws and mask are the NCHW ones. Global
// average and Lp pooling are NCHW only.

// The tap that a window's saved argmax holds where the window passes no gradient (see MaxPoolIndices).
constexpr uint8_t kNoWindowTap = 255;

// Where a max pooling saves its argmaxes for its backward, one per pooled element (N, C, OH, OW), in one of
// two forms. An int64_t pointer converts to the first, PyTorch's: the argmax's index h · W + w in its plane
// (−1 where the window passes no gradient). window_taps() gives the second, a byte each: the argmax's tap
// r · KW + c in its window, r and c its row and column in the KH × KW grid of the dilated window (padding
// taps counted), or kNoWindowTap; 8× less memory and traffic than the first, for windows of at most 255 taps
// (window_taps_fit(); the launchers reject larger ones). The executor's GPU backend saves taps. Either form
// gives the same backward, bit for bit: a tap and the plane index it stands for name the same input cell.
template <class Pointer>  // void* where a forward writes them, const void* where a backward reads them
struct BasicMaxPoolIndices {
    template <class T>
    using Ptr = std::conditional_t<std::is_const_v<std::remove_pointer_t<Pointer>>, const T*, T*>;

    // Implicit, so that the usual form reads as before: max_pool2d(x, y, indices, ...) with int64_t* indices.
    BasicMaxPoolIndices(Ptr<int64_t> plane_indices) : data(plane_indices) {}  // NOLINT
    static BasicMaxPoolIndices window_taps(Ptr<uint8_t> taps) {
        BasicMaxPoolIndices indices(nullptr);
        indices.data = taps;
        indices.taps = true;
        return indices;
    }

    Pointer data;       // nullptr: none saved (a forward that no backward follows)
    bool taps = false;  // bytes (window taps), else int64 plane indices
};
using MaxPoolIndices = BasicMaxPoolIndices<void*>;
using ConstMaxPoolIndices = BasicMaxPoolIndices<const void*>;

// Whether options' windows have few enough taps (KH · KW <= 255: kNoWindowTap is not a tap) to save taps.
bool window_taps_fit(const cpu::MaxPool2dOptions& options);

// y, indices (N, C, OH, OW) = max_pool2d(x (N, C, H, W)). indices: the argmax of each window (first maximum
// in row-major scan order on ties; a NaN wins and the last NaN of the scan is kept, as the reference), in
// either form of MaxPoolIndices. indices may be nullptr when no backward follows (inference). Tiling: one
// thread per output element (grid-stride, 256 threads per block), so a warp writes 32 consecutive outputs and
// reads neighbouring window rows that the L1 cache shares between lanes.
void max_pool2d(const float* x, float* y, MaxPoolIndices indices, const Shape& input_shape,
                const cpu::MaxPool2dOptions& options, cudaStream_t stream,
                MemoryFormat format = MemoryFormat::nchw);
void max_pool2d(const bf16* x, bf16* y, MaxPoolIndices indices, const Shape& input_shape,
                const cpu::MaxPool2dOptions& options, cudaStream_t stream,
                MemoryFormat format = MemoryFormat::nchw);

// dx (N, C, H, W) from dy and the forward's indices (N, C, OH, OW). A gather, not a scatter: the thread of
// dx[n, c, h, w] visits the windows that contain (h, w) in (oh, ow) row-major order and adds the dy of those
// whose index points at it, so overlapping windows need no atomics and the float sum is the reference's
// (same terms, same order: bit-identical). Indices outside their plane contribute nowhere.
void max_pool2d_backward(ConstMaxPoolIndices indices, const float* dy, float* dx, const Shape& input_shape,
                         const cpu::MaxPool2dOptions& options, cudaStream_t stream,
                         MemoryFormat format = MemoryFormat::nchw);
void max_pool2d_backward(ConstMaxPoolIndices indices, const bf16* dy, bf16* dx, const Shape& input_shape,
                         const cpu::MaxPool2dOptions& options, cudaStream_t stream,
                         MemoryFormat format = MemoryFormat::nchw);

// A ReLU and the max pooling that follows it in one pass: y, indices = max_pool2d(relu(x)), bit for bit what
// relu_forward then max_pool2d give (ReLU's rule, cuda/relu_rule.cuh, applied to each value read), without
// writing and reading back the ReLU's output. Same arguments and checks as max_pool2d.
void relu_max_pool2d(const float* x, float* y, MaxPoolIndices indices, const Shape& input_shape,
                     const cpu::MaxPool2dOptions& options, cudaStream_t stream,
                     MemoryFormat format = MemoryFormat::nchw);
void relu_max_pool2d(const bf16* x, bf16* y, MaxPoolIndices indices, const Shape& input_shape,
                     const cpu::MaxPool2dOptions& options, cudaStream_t stream,
                     MemoryFormat format = MemoryFormat::nchw);

// The backward of relu_max_pool2d, given its output y: dx = relu_backward(relu(x), max_pool2d_backward(dy)) bit
// for bit, each window's gradient passing ReLU's backward at its argmax, whose ReLU output is the window's y.
void relu_max_pool2d_backward(ConstMaxPoolIndices indices, const float* y, const float* dy, float* dx,
                              const Shape& input_shape, const cpu::MaxPool2dOptions& options,
                              cudaStream_t stream, MemoryFormat format = MemoryFormat::nchw);
void relu_max_pool2d_backward(ConstMaxPoolIndices indices, const bf16* y, const bf16* dy, bf16* dx,
                              const Shape& input_shape, const cpu::MaxPool2dOptions& options,
                              cudaStream_t stream, MemoryFormat format = MemoryFormat::nchw);

// A dropout after a max pooling, folded into its kernels (max_pool2d_dropout): dropout's own options, and its
// step counter as dropout_forward takes it (forward only).
struct PooledDropout {
    cpu::DropoutOptions options;
    bool channelwise = false;  // dropout2d: one unit per (n, c) plane; else dropout: one unit per pooled element
    DeviceStep step;
};

// Max pooling (after a fused ReLU when relu, as relu_max_pool2d) and the dropout on its output in one launch:
// y (N, C, OH, OW) and mask bit for bit what max_pool2d (or relu_max_pool2d) then dropout_forward (over the
// N·C·OH·OW pooled values) or dropout2d_forward would write (same Philox draws, step counter included; eval
// mode, p = 0 and p = 1 as there), without writing and reading back the pooled tensor. mask: dropout's bytes,
// N·C·OH·OW of them, or dropout2d's N·C. indices as max_pool2d's, except that with relu a window whose ReLU
// output is <= 0 gets index −1 (outside its plane; kNoWindowTap as a tap): where the unit dropped, y = 0 can
// no longer tell whether ReLU's backward passes that window's gradient (which matters for an infinite or NaN
// dy), so the index says it. indices may be nullptr when no backward follows. Tiling: one thread per pooled
// element, as max_pool2d; each thread draws its own unit's Philox word (a block of four words serves four
// units in dropout_forward), and dropout2d's mask byte is written by the thread of its plane's first output.
void max_pool2d_dropout(const float* x, float* y, MaxPoolIndices indices, uint8_t* mask,
                        const Shape& input_shape, const cpu::MaxPool2dOptions& options,
                        const PooledDropout& dropout, bool relu, cudaStream_t stream,
                        MemoryFormat format = MemoryFormat::nchw);
void max_pool2d_dropout(const bf16* x, bf16* y, MaxPoolIndices indices, uint8_t* mask,
                        const Shape& input_shape, const cpu::MaxPool2dOptions& options,
                        const PooledDropout& dropout, bool relu, cudaStream_t stream,
                        MemoryFormat format = MemoryFormat::nchw);

// The backward of max_pool2d_dropout, one launch: dx (N, C, H, W) = max_pool2d_backward(dropout_backward(dy))
// (or dropout2d_backward's; with the forward's ReLU, relu_max_pool2d_backward's result), bit for bit, each
// window's gradient scaled by its unit's factor as it is gathered. The ReLU's rule rides in the indices, so
// this backward needs no y and no relu flag. dropout.step is not read.
void max_pool2d_dropout_backward(ConstMaxPoolIndices indices, const uint8_t* mask, const float* dy, float* dx,
                                 const Shape& input_shape, const cpu::MaxPool2dOptions& options,
                                 const PooledDropout& dropout, cudaStream_t stream,
                                 MemoryFormat format = MemoryFormat::nchw);
void max_pool2d_dropout_backward(ConstMaxPoolIndices indices, const uint8_t* mask, const bf16* dy, bf16* dx,
                                 const Shape& input_shape, const cpu::MaxPool2dOptions& options,
                                 const PooledDropout& dropout, cudaStream_t stream,
                                 MemoryFormat format = MemoryFormat::nchw);

// y (N, C, OH, OW) = avg_pool2d(x (N, C, H, W)) with count_include_pad, ceil-mode clipping and
// divisor_override as the reference. One thread per output element; the window is summed in float in
// row-major order and divided once (the reference sums in double: see the parity test's tolerance).
void avg_pool2d(const float* x, float* y, const Shape& input_shape, const cpu::AvgPool2dOptions& options,
                cudaStream_t stream, MemoryFormat format = MemoryFormat::nchw);
void avg_pool2d(const bf16* x, bf16* y, const Shape& input_shape, const cpu::AvgPool2dOptions& options,
                cudaStream_t stream, MemoryFormat format = MemoryFormat::nchw);

// dx (N, C, H, W) from dy (N, C, OH, OW): a gather, one thread per dx element adding dy / divisor of every
// window that contains it, in (oh, ow) row-major order.
void avg_pool2d_backward(const float* dy, float* dx, const Shape& input_shape,
                         const cpu::AvgPool2dOptions& options, cudaStream_t stream,
                         MemoryFormat format = MemoryFormat::nchw);
void avg_pool2d_backward(const bf16* dy, bf16* dx, const Shape& input_shape,
                         const cpu::AvgPool2dOptions& options, cudaStream_t stream,
                         MemoryFormat format = MemoryFormat::nchw);

// y (N, C, OH, OW) = lp_pool2d(x (N, C, H, W)) as the reference: (Σ_window x^p / area' · KH·KW)^(1/p), area'
// the window's clipped area; NaN where x^p or the root is undefined. One thread per output element, powf
// and the window sum in float.
void lp_pool2d(const float* x, float* y, const Shape& input_shape, const cpu::LpPool2dOptions& options,
               cudaStream_t stream);

// dx (N, C, H, W) from x and dy (N, C, OH, OW), the reference's chain rule (zero where a window's sum is 0).
// A gather: the thread of dx[n, c, h, w] visits the windows containing (h, w) and recomputes each one's sum
// (at most ⌈KH/SH⌉·⌈KW/SW⌉ windows of KH·KW cells, read through L1), so no workspace and no atomics.
void lp_pool2d_backward(const float* x, const float* dy, float* dx, const Shape& input_shape,
                        const cpu::LpPool2dOptions& options, cudaStream_t stream);

// y (N, C, OH, OW) = adaptive_avg_pool2d(x (N, C, H, W), output_size): the mean over rows
// [⌊i·H/OH⌋, ⌈(i+1)·H/OH⌉) and likewise for columns. One thread per output element.
void adaptive_avg_pool2d(const float* x, float* y, const Shape& input_shape, cpu::Pair2d output_size,
                         cudaStream_t stream, MemoryFormat format = MemoryFormat::nchw);
void adaptive_avg_pool2d(const bf16* x, bf16* y, const Shape& input_shape, cpu::Pair2d output_size,
                         cudaStream_t stream, MemoryFormat format = MemoryFormat::nchw);

// dx (N, C, H, W) from dy (N, C, OH, OW): a gather, one thread per dx element adding dy / area of every
// window containing it (windows overlap when OH does not divide H).
void adaptive_avg_pool2d_backward(const float* dy, float* dx, const Shape& input_shape,
                                  cpu::Pair2d output_size, cudaStream_t stream,
                                  MemoryFormat format = MemoryFormat::nchw);
void adaptive_avg_pool2d_backward(const bf16* dy, bf16* dx, const Shape& input_shape, cpu::Pair2d output_size,
                                  cudaStream_t stream, MemoryFormat format = MemoryFormat::nchw);

// y (N, C, 1, 1) = mean of x (N, C, H, W) over (H, W). One warp per (n, c) plane, 8 planes per 256-thread
// block: lane l sums the elements l, l + 32, … (coalesced), then a shuffle tree adds the 32 partial sums.
// A warp rather than a block per plane because CifarCNN-sized planes are small (≤ 32 × 32) and N · C large.
void global_avg_pool2d(const float* x, float* y, const Shape& input_shape, cudaStream_t stream);
void global_avg_pool2d(const bf16* x, bf16* y, const Shape& input_shape, cudaStream_t stream);

// dx (N, C, H, W) = dy (N, C, 1, 1) / (H · W), broadcast over each plane. Grid-stride, one thread per dx
// element.
void global_avg_pool2d_backward(const float* dy, float* dx, const Shape& input_shape, cudaStream_t stream);
void global_avg_pool2d_backward(const bf16* dy, bf16* dx, const Shape& input_shape, cudaStream_t stream);

}  // namespace cudacnn::gpu
