// Dropout and Dropout2d kernels, forward and backward, drawing exactly the CPU reference's Philox masks
// (cudacnn/ops/dropout.hpp, "the mask rule").
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>

#include "cuda/bf16.cuh"
#include "cudacnn/memory_format.hpp"
#include "cudacnn/ops/dropout.hpp"
#include "cudacnn/tensor.hpp"

namespace cudacnn::gpu {

// Masks are bit for bit those of cpu::dropout_mask / cpu::dropout2d_mask for the same (shape, options):
// unit j keeps when uint32_to_unit_float(philox_draw(seed, stream, j / 4).v[j % 4]) >= float(p). Values are
// y = float(double(x) · factor) with factor = 1 / (1 − p) in double (0 where dropped), the reference's own
// arithmetic, so outputs equal the reference's bit for bit too (a double multiply per element costs nothing
// in these memory-bound kernels). Eval mode (training = false) and p = 0: y = x and an all-ones mask
// (nothing is drawn); p = 1: y = x · 0 (zeros; NaN stays NaN, as in the reference) and an all-zeros mask.
// Every output is overwritten; y may alias x exactly (dx may alias dy). Masks are uint8, 1 = kept; the
// backward treats any nonzero entry as kept. Options are validated as the reference does (p in [0, 1]).
//
// Tiling: grid-stride loops, 256 threads per block, one thread per group of four consecutive units, so a
// thread makes one Philox draw (10 rounds) for four units, and loads/stores its four values as one float4
// when x and y are 16-byte aligned (scalars otherwise and for the last, partial group).
//
// Every launcher below also takes bf16 activations (--precision bf16): the same kernels on bf16 x, y, dy, dx
// (masks are bytes as for float). The threads, groups and Philox draws are the float kernels', so the masks
// are identical for the same options and step; values widen exactly, take the same double arithmetic, and are
// rounded once to bf16: y = bf16(float(double(x) · factor)). A group of four moves as one 8-byte vector when
// both pointers are 8-byte aligned.

// A Philox stream that moves on with a step counter in device memory: the masks are drawn from stream
// options.stream + *counter · stride, the counter read when the kernel runs. A captured CUDA graph thus
// draws new masks at every replay (the executor's stream is base + step · layers + layer). The default (no
// counter) draws from options.stream.
struct DeviceStep {
    const int64_t* counter = nullptr;  // device memory, >= 0
    uint64_t stride = 0;
};

// x, y: `count` floats (any shape, count ≥ 1); mask: `count` bytes, written. Element-wise, so layout-
// agnostic: it runs on NHWC tensors as they are, but unit j is the element at memory offset j, so the mask
// follows the memory order and a model's NHWC dropout masks differ from its NCHW ones (harmless: PyTorch's
// also depend on the memory order). The same holds for relu_dropout_forward.
void dropout_forward(const float* x, float* y, uint8_t* mask, int64_t count,
                     const cpu::DropoutOptions& options, cudaStream_t stream, const DeviceStep& step = {});

// dx = dy · mask · 1 / (1 − p) (dx = dy in eval mode), with the forward's mask and options.
void dropout_backward(const float* dy, const uint8_t* mask, float* dx, int64_t count,
                      const cpu::DropoutOptions& options, cudaStream_t stream);

// ReLU then dropout in one kernel (the executor's fused ReLU, ExecutorOptions::fuse_relu): y and the keep
// decisions are bit for bit those of relu_forward then dropout_forward (same Philox stream and draws, y =
// float(double(relu(x)) · factor)), but each mask byte holds two bits: kReluDropoutKept (the dropout kept the
// unit) and kReluDropoutPasses (the ReLU passes its gradient: relu(x) <= 0 is false, i.e. x > 0 or NaN).
// The backward then needs neither x nor the ReLU's output, which y no longer shows where the unit dropped:
// the two bits ride in the byte the dropout saves anyway, so the fused pair keeps no more memory and reads
// no more than the dropout alone. y may alias x exactly.
constexpr uint8_t kReluDropoutKept = 1;
constexpr uint8_t kReluDropoutPasses = 2;
void relu_dropout_forward(const float* x, float* y, uint8_t* mask, int64_t count,
                          const cpu::DropoutOptions& options, cudaStream_t stream,
                          const DeviceStep& step = {});

// dx = passes ? float(double(dy) · factor(kept)) : 0 with relu_dropout_forward's mask: bit for bit
// dropout_backward then relu_backward. dx may alias dy exactly.
void relu_dropout_backward(const float* dy, const uint8_t* mask, float* dx, int64_t count,
                           const cpu::DropoutOptions& options, cudaStream_t stream);

// x, y: (N, C, H, W); mask: (N, C) bytes, written. One unit per (n, c) channel, numbered j = n · C + c.
// Two launches: the (N, C) mask (one thread per four channels), then y = x · factor(mask[i / (H · W)]).
void dropout2d_forward(const float* x, float* y, uint8_t* mask, const Shape& shape,
                       const cpu::DropoutOptions& options, cudaStream_t stream, const DeviceStep& step = {},
                       MemoryFormat format = MemoryFormat::nchw);

// dy, dx: (N, C, H, W) = shape; mask: the forward's (N, C).
//
// format (dropout2d, both directions): the memory format of x, y, dy, dx; the mask is (N, C) in both. The
// draws depend only on the unit n · C + c, so the NHWC mask is the NCHW one and the NHWC y is the NCHW y
// permuted, bit for bit; element (n, h, w, c) takes mask[n · C + c]. The NHWC apply divides per element
// rather than per group of four (the channel changes with every element).
void dropout2d_backward(const float* dy, const uint8_t* mask, float* dx, const Shape& shape,
                        const cpu::DropoutOptions& options, cudaStream_t stream,
                        MemoryFormat format = MemoryFormat::nchw);

void dropout_forward(const bf16* x, bf16* y, uint8_t* mask, int64_t count, const cpu::DropoutOptions& options,
                     cudaStream_t stream, const DeviceStep& step = {});
void dropout_backward(const bf16* dy, const uint8_t* mask, bf16* dx, int64_t count,
                      const cpu::DropoutOptions& options, cudaStream_t stream);
void relu_dropout_forward(const bf16* x, bf16* y, uint8_t* mask, int64_t count,
                          const cpu::DropoutOptions& options, cudaStream_t stream,
                          const DeviceStep& step = {});
void relu_dropout_backward(const bf16* dy, const uint8_t* mask, bf16* dx, int64_t count,
                           const cpu::DropoutOptions& options, cudaStream_t stream);
void dropout2d_forward(const bf16* x, bf16* y, uint8_t* mask, const Shape& shape,
                       const cpu::DropoutOptions& options, cudaStream_t stream, const DeviceStep& step = {},
                       MemoryFormat format = MemoryFormat::nchw);
void dropout2d_backward(const bf16* dy, const uint8_t* mask, bf16* dx, const Shape& shape,
                        const cpu::DropoutOptions& options, cudaStream_t stream,
                        MemoryFormat format = MemoryFormat::nchw);

}  // namespace cudacnn::gpu
