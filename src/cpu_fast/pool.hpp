// The fast CPU path's max, average and adaptive average pooling over (N, C, H, W) float arrays, forward and
// backward, computing what the reference (cudacnn/ops/pool.hpp) defines, bit for bit.
#pragma once

#include <cstdint>

#include "cudacnn/ops/pool.hpp"
#include "cudacnn/tensor.hpp"
#include "src/cpu_fast/workers.hpp"

namespace cudacnn::cpu_fast {

// As gpu::max_pool2d & co. (cuda/pool.hpp) without the stream. Shapes and options are validated with the
// reference's rules and messages (cpu::max_pool2d_output_shape, cpu::avg_pool2d_output_shape); outputs are
// overwritten, never read. One work item per (n, c) plane; each runs the reference's arithmetic in its order
// (window sums in double, rounded once), so results are bit-identical to the reference's float instantiation.

// y, indices (N, C, OH, OW) = max_pool2d(x (N, C, H, W)): indices[n, c, oh, ow] = h · W + w of the argmax in
// its plane (first maximum in row-major scan order; a NaN wins and the last NaN of the scan is kept).
// indices may be nullptr when no backward follows.
void max_pool2d(const float* x, float* y, int64_t* indices, const Shape& input_shape,
                const cpu::MaxPool2dOptions& options, const Workers& workers);

// dx (N, C, H, W) from dy and the forward's indices (N, C, OH, OW): each plane zeroed, then every dy added at
// its index in (oh, ow) order (the reference's float sums). An index outside its plane throws the reference's
// Error after the pass (dx is then partly written).
void max_pool2d_backward(const int64_t* indices, const float* dy, float* dx, const Shape& input_shape,
                         const cpu::MaxPool2dOptions& options, const Workers& workers);

// y (N, C, OH, OW) = avg_pool2d(x (N, C, H, W)) with padding, ceil-mode clipping, count_include_pad and
// divisor_override as the reference.
void avg_pool2d(const float* x, float* y, const Shape& input_shape, const cpu::AvgPool2dOptions& options,
                const Workers& workers);

// dx (N, C, H, W) from dy (N, C, OH, OW): a gather, each dx cell summing in double dy / divisor of the windows
// that contain it in (oh, ow) order (the reference's scatter order), then rounded once.
void avg_pool2d_backward(const float* dy, float* dx, const Shape& input_shape, const cpu::AvgPool2dOptions& options,
                         const Workers& workers);

// y (N, C, OH, OW) = adaptive_avg_pool2d(x (N, C, H, W), output_size): the mean over rows
// [⌊i·H/OH⌋, ⌈(i+1)·H/OH⌉) and likewise for columns. output_size (1, 1) is global average pooling.
void adaptive_avg_pool2d(const float* x, float* y, const Shape& input_shape, cpu::Pair2d output_size,
                         const Workers& workers);

// dx (N, C, H, W) from dy (N, C, OH, OW): a gather as avg_pool2d_backward's.
void adaptive_avg_pool2d_backward(const float* dy, float* dx, const Shape& input_shape, cpu::Pair2d output_size,
                                  const Workers& workers);

}  // namespace cudacnn::cpu_fast
