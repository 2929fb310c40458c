// A kernel that writes Philox draws, so that tests can compare the device's bits with the host's.
#include "kernels/philox_kernels.hpp"

#include "cuda/launch.cuh"
#include "cudacnn/philox.hpp"

namespace cudacnn::test {

// External linkage (no anonymous namespace) so that launch errors and the emulator can name the kernel.
// One thread per output word; threads 4k..4k+3 compute the same block and each keeps its own word, which
// is wasteful but exercises the exact indexing that the augmentation and dropout kernels will use.
__global__ void philox_fill_kernel(std::uint32_t* out, std::int64_t n, std::uint64_t seed,
                                   std::uint64_t philox_stream) {
    const std::int64_t i = static_cast<std::int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
    if (i < n) out[i] = philox_draw(seed, philox_stream, static_cast<std::uint64_t>(i / 4)).v[i % 4];
}

void fill_philox(std::uint32_t* out, std::int64_t n, std::uint64_t seed, std::uint64_t philox_stream,
                 cudaStream_t stream) {
    constexpr unsigned kBlock = 256;
    const unsigned grid = static_cast<unsigned>((n + kBlock - 1) / kBlock);
    if (grid == 0) return;
    cudacnn::launch(philox_fill_kernel, dim3(grid), dim3(kBlock), 0, stream, out, n, seed, philox_stream);
}

}  // namespace cudacnn::test
