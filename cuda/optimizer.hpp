// Fused SGD, Adam and AdamW steps on the GPU: one launch per step over the whole flat parameter block.
#pragma once

#include <cuda_runtime_api.h>

#include <array>
#include <cstdint>

#include "cuda/bf16.cuh"
#include "cudacnn/ops/optimizer.hpp"
#include "cudacnn/tensor.hpp"

namespace cudacnn::gpu {

// Semantics are exactly cpu::sgd_step / adam_step / adamw_step (include/cudacnn/ops/optimizer.hpp), with the
// same options structs and the same errors, and the results are BIT-IDENTICAL to the reference's float
// instantiation: the host computes every scalar (1 − β, bias corrections, lr / bias_correction1, …) in double
// exactly as the reference does and rounds it to float, and the kernels do the reference's float operations
// in its order with __fmul_rn / __fadd_rn / __fsqrt_rn, so nvcc cannot contract a·b + c into a fused
// multiply-add (which rounds once instead of twice). Division is a plain `/`, IEEE round-to-nearest under
// nvcc's default -prec-div=true; building with --use_fast_math would break the bit identity.
//
// Arrays, all float32 device memory, updated in place (nothing is accumulated across calls but the state):
//   params (n)               the flat parameter block; read and written
//   grads  (n)               the flat gradient block; read only
//   state  (slots, n)        slot-major as cpu::OptimizerState: slot k of value i is state[k·n + i];
//                            slots = cpu::sgd_state_slots / adam_state_slots / adamw_state_slots(options);
//                            may be nullptr when slots is 0 (plain SGD). A fresh state is all zeros.
// The arrays must not overlap. `step` is the host-side step counter (cpu::OptimizerState::step): the launcher
// reads it (SGD's first step initializes the momentum buffer; Adam's bias corrections use step + 1) and
// increments it once the kernel is queued; on an Error it is left unchanged. The lr (and every other option)
// is read on each call, so a learning-rate schedule just changes options.lr between steps.
//
// Kernels: one grid-stride kernel per optimizer, 256-thread blocks, each thread updating one float4 group of
// 4 consecutive values of every array per iteration (memory-bound: Adam moves 7–9 floats per value). The
// float4 path needs every array (params, grads and each state slot) at the same address modulo 16 bytes; then
// up to 3 leading values and the up to 3 trailing values go through the scalar path. Arrays at different
// offsets modulo 16 (e.g. a multi-slot state with n % 4 ≠ 0) use the scalar path, still fully coalesced.
// No atomics, no reductions: every value is computed by one thread, so results are deterministic.

void sgd_step(const cpu::SgdOptions& options, float* params, const float* grads, float* state, int64_t n,
              int64_t& step, cudaStream_t stream);
void adam_step(const cpu::AdamOptions& options, float* params, const float* grads, float* state, int64_t n,
               int64_t& step, cudaStream_t stream);
void adamw_step(const cpu::AdamWOptions& options, float* params, const float* grads, float* state, int64_t n,
                int64_t& step, cudaStream_t stream);

// The same with the step count in device memory (*step_counter = the steps taken so far, as
// cpu::OptimizerState::step), read when the kernel runs and left unchanged: advance_step_counters moves it on
// after the step. A captured CUDA graph needs this, because kernel arguments are frozen at capture. Adam's
// bias corrections are then computed on the device, in double as on the host; the emulator's pow is the
// host's, so results stay bit-identical there, while CUDA's double pow is within 2 ulp, so on a real GPU a
// rounded float scalar (lr / bias_correction1, sqrt(bias_correction2)) can differ from the host's in its last
// bit — roughly once in 10^8 steps.
//
// params_copy (n) or nullptr: --precision bf16's copy of the parameters, at the same element offsets, which
// the step rewrites as it stores each updated value (rounded to nearest even: what gpu::cast of the updated
// params writes, bit for bit) instead of a separate cast pass that would read the parameters again. Its
// float4 groups are stored 8 bytes at a time where the copy is 8-byte aligned there, 2 bytes at a time
// otherwise.
void sgd_step(const cpu::SgdOptions& options, float* params, const float* grads, float* state, int64_t n,
              const int64_t* step_counter, cudaStream_t stream, bf16* params_copy = nullptr);
void adam_step(const cpu::AdamOptions& options, float* params, const float* grads, float* state, int64_t n,
               const int64_t* step_counter, cudaStream_t stream, bf16* params_copy = nullptr);
void adamw_step(const cpu::AdamWOptions& options, float* params, const float* grads, float* state, int64_t n,
                const int64_t* step_counter, cudaStream_t stream, bf16* params_copy = nullptr);

// counters[0 .. count) += 1 on the stream (1 <= count <= 256): the executor's step counters, after a step.
void advance_step_counters(int64_t* counters, int count, cudaStream_t stream);

// The same on views, which also checks what raw pointers cannot show: f32 device views, grads.numel() ==
// params.numel() (params and grads may have any shape; both are read flat) and a state of shape (slots, n).
void sgd_step(const cpu::SgdOptions& options, const TensorView& params, const TensorView& grads,
              const TensorView& state, int64_t& step, cudaStream_t stream);
void adam_step(const cpu::AdamOptions& options, const TensorView& params, const TensorView& grads,
               const TensorView& state, int64_t& step, cudaStream_t stream);
void adamw_step(const cpu::AdamWOptions& options, const TensorView& params, const TensorView& grads,
                const TensorView& state, int64_t& step, cudaStream_t stream);

// How the kernels split n values for these pointers: {scalar head, float4 groups, scalar tail}, the groups
// starting at value head (cuda/elementwise.cuh's split_for_float4). Exposed so that tests can prove each path
// runs.
std::array<int64_t, 3> optimizer_float4_split(const float* params, const float* grads, const float* state,
                                              int64_t slots, int64_t n);

}  // namespace cudacnn::gpu
