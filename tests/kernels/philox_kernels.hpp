// Host-callable launchers of the Philox test kernels, so that Catch2 stays out of .cu files (and of nvcc).
#pragma once

#include <cstdint>

#include <cuda_runtime_api.h>

namespace cudacnn::test {

// out[i] = philox_draw(seed, philox_stream, i / 4).v[i % 4] for i < n, on the device; out holds n uint32.
void fill_philox(std::uint32_t* out, std::int64_t n, std::uint64_t seed, std::uint64_t philox_stream,
                 cudaStream_t stream);

}  // namespace cudacnn::test
