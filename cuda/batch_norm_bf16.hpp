// The batch_norm2d launchers (cuda/batch_norm.hpp) for bfloat16 activations (--precision bf16). A header of
// their own, because code that takes a launcher's address by its bare name (`relu ? gpu::batch_norm2d_relu :
// gpu::batch_norm2d`, as the executor and the float tests do) cannot pick from an overload set: include this
// where bf16 is wanted and name the overload there (a cast, or a call in each branch).
#pragma once

#include <cuda_runtime_api.h>

#include <cstddef>

#include "cuda/batch_norm.hpp"
#include "cuda/bf16.cuh"
#include "cudacnn/ops/batch_norm.hpp"
#include "cudacnn/tensor.hpp"

namespace cudacnn::gpu {

// bf16 activations: the same four launchers with x, y, dy and dx in bf16 and everything else in float as
// there: weight, bias, dweight, dbias, the running statistics and input_shift, the saves, the workspace (the
// same batch_norm2d_workspace_bytes). The kernels are the float ones instantiated on the storage type: a load
// widens exactly, every sum and statistic is the float kernel's (the same units, threads, trees and Chan
// merges, so the same bits as the float launchers on the widened values), and each y or dx element is
// rounded to nearest even once, when it is stored. A width-4 unit moves as one 8-byte access when the
// tensors are 8-byte aligned, as 4 scalars otherwise (the same bits).
void batch_norm2d(const bf16* x, const float* weight, const float* bias, BatchNorm2dRunningStatsView* running,
                  bf16* y, float* save_mean, float* save_invstd, const Shape& input_shape,
                  const cpu::BatchNorm2dOptions& options, void* workspace, size_t workspace_bytes,
                  cudaStream_t stream);
void batch_norm2d_backward(const bf16* x, const float* weight, const float* save_mean,
                           const float* save_invstd, const bf16* dy, bf16* dx, float* dweight, float* dbias,
                           const Shape& input_shape, bool training, void* workspace, size_t workspace_bytes,
                           cudaStream_t stream);
void batch_norm2d_relu(const bf16* x, const float* weight, const float* bias,
                       BatchNorm2dRunningStatsView* running, bf16* y, float* save_mean, float* save_invstd,
                       const Shape& input_shape, const cpu::BatchNorm2dOptions& options, void* workspace,
                       size_t workspace_bytes, cudaStream_t stream);
void batch_norm2d_relu_backward(const bf16* x, const bf16* y, const float* weight, const float* save_mean,
                                const float* save_invstd, const bf16* dy, bf16* dx, float* dweight,
                                float* dbias, const Shape& input_shape, bool training, void* workspace,
                                size_t workspace_bytes, cudaStream_t stream);

}  // namespace cudacnn::gpu
