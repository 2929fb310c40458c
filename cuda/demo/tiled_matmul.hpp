// A shared-memory tiled SGEMM: the emulator's first proof (tests/device) and the demo's workload.
#pragma once

#include <cuda_runtime_api.h>

namespace cudacnn::demo {

// c = a · b for row-major a (m, k), b (k, n), c (m, n), all in device memory. Any sizes ≥ 1.
void tiled_matmul(const float* a, const float* b, float* c, int m, int n, int k, cudaStream_t stream);

// The same on the host, in double accumulation: the reference the kernel is checked against.
void matmul_reference(const float* a, const float* b, float* c, int m, int n, int k);

}  // namespace cudacnn::demo
