// A shared-memory tiled SGEMM: each block computes a kTile × kTile tile of c, stepping through k one tile
// at a time with two barriers per step. Edges are guarded, so sizes need not be tile multiples.
#include "cuda/demo/tiled_matmul.hpp"

#include <algorithm>
#include <vector>

#include "cuda/launch.cuh"

namespace cudacnn::demo {

constexpr int kTile = 16;

__global__ void tiled_matmul_kernel(const float* a, const float* b, float* c, int m, int n, int k) {
    __shared__ float a_tile[kTile][kTile];
    __shared__ float b_tile[kTile][kTile + 1];  // +1 column: no bank conflicts when read down a column
    const int row = blockIdx.y * kTile + threadIdx.y;
    const int col = blockIdx.x * kTile + threadIdx.x;
    float sum = 0.0f;
    for (int k0 = 0; k0 < k; k0 += kTile) {
        const int a_col = k0 + threadIdx.x, b_row = k0 + threadIdx.y;
        a_tile[threadIdx.y][threadIdx.x] = (row < m && a_col < k) ? a[row * k + a_col] : 0.0f;
        b_tile[threadIdx.y][threadIdx.x] = (b_row < k && col < n) ? b[b_row * n + col] : 0.0f;
        __syncthreads();  // the tiles are complete
#pragma unroll
        for (int i = 0; i < kTile; ++i) sum += a_tile[threadIdx.y][i] * b_tile[i][threadIdx.x];
        __syncthreads();  // everyone is done reading before the next step overwrites the tiles
    }
    if (row < m && col < n) c[row * n + col] = sum;
}

void tiled_matmul(const float* a, const float* b, float* c, int m, int n, int k, cudaStream_t stream) {
    const dim3 block(kTile, kTile);
    const dim3 grid((n + kTile - 1) / kTile, (m + kTile - 1) / kTile);
    launch(tiled_matmul_kernel, grid, block, 0, stream, a, b, c, m, n, k);
}

void matmul_reference(const float* a, const float* b, float* c, int m, int n, int k) {
    // Row by row, with p outside j so that b and the accumulators are read in order (cache friendly).
    std::vector<double> row(n);
    for (int i = 0; i < m; ++i) {
        std::fill(row.begin(), row.end(), 0.0);
        for (int p = 0; p < k; ++p) {
            const double a_ip = a[i * k + p];
            const float* b_row = b + size_t(p) * n;
            for (int j = 0; j < n; ++j) row[j] += a_ip * b_row[j];
        }
        for (int j = 0; j < n; ++j) c[size_t(i) * n + j] = static_cast<float>(row[j]);
    }
}

}  // namespace cudacnn::demo
