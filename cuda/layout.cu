// Memory-format conversions: a batched tiled transpose, or the element-wise copy when the formats agree.
#include "cuda/layout.hpp"

#include <algorithm>

#include "cuda/elementwise.cuh"
#include "cuda/launch.cuh"
#include "cudacnn/error.hpp"

namespace cudacnn::gpu {

namespace kernels {

constexpr int kTile = 32;     // the transposed tile is kTile × kTile elements
constexpr int kTileRows = 8;  // threads per block: kTile × kTileRows, each moving kTile / kTileRows elements
constexpr int kMaxGridZ = 65535;

// y[b] (cols, rows) = x[b] (rows, cols)ᵀ for b = blockIdx.z, blockIdx.z + gridDim.z, ... < batch; each matrix
// row-major and dense. Block (i, j) moves the tile of x's rows [32 j, 32 j + 32) and columns [32 i, 32 i +
// 32).
template <class Src, class Dst>
__global__ void transpose_batched_kernel(const Src* x, Dst* y, int64_t batch, int64_t rows, int64_t cols) {
    __shared__ float tile[kTile][kTile + 1];
    const int64_t matrix = rows * cols;
    const int64_t col0 = static_cast<int64_t>(blockIdx.x) * kTile;
    const int64_t row0 = static_cast<int64_t>(blockIdx.y) * kTile;
    for (int64_t b = blockIdx.z; b < batch; b += gridDim.z) {
        const Src* in = x + b * matrix;
        Dst* out = y + b * matrix;
        for (int r = threadIdx.y; r < kTile; r += kTileRows) {
            const int64_t row = row0 + r, col = col0 + threadIdx.x;
            if (row < rows && col < cols) tile[r][threadIdx.x] = to_float(in[row * cols + col]);
        }
        __syncthreads();
        // Thread (tx, ty) now writes y's row col0 + r (x's column) at column row0 + tx (x's row).
        for (int r = threadIdx.y; r < kTile; r += kTileRows) {
            const int64_t out_row = col0 + r, out_col = row0 + threadIdx.x;
            if (out_row < cols && out_col < rows)
                out[out_row * rows + out_col] = from_float<Dst>(tile[threadIdx.x][r]);
        }
        __syncthreads();  // the tile is refilled for the next matrix
    }
}

}  // namespace kernels

namespace {

template <class Src, class Dst>
void convert_layout_t(const Src* x, Dst* y, const Shape& shape, MemoryFormat from, MemoryFormat to,
                      cudaStream_t stream) {
    CUDACNN_CHECK(shape.rank() == 4 && shape.numel() > 0,
                  "convert_layout: the shape {} must be (N, C, H, W) with every size at least 1", shape);
    CUDACNN_CHECK(x != nullptr && y != nullptr, "convert_layout: x ({}) and y ({}) must be device pointers",
                  static_cast<const void*>(x), static_cast<const void*>(y));
    const int64_t count = shape.numel();
    if (from == to) {
        launch_map<1>(kernels::CopyOp{}, x, nullptr, y, count, stream);
        return;
    }
    const int64_t channels = shape[1], pixels = shape[2] * shape[3];
    // NCHW → NHWC transposes each sample's (C, H·W) matrix; NHWC → NCHW its (H·W, C) one.
    const int64_t rows = from == MemoryFormat::nchw ? channels : pixels;
    const int64_t cols = from == MemoryFormat::nchw ? pixels : channels;
    CUDACNN_CHECK(ceil_div(rows, kernels::kTile) <= 65535,
                  "convert_layout: {} rows of 32 are more than a grid's 65535 (shape {})", rows, shape);
    const dim3 grid(static_cast<unsigned>(ceil_div(cols, kernels::kTile)),
                    static_cast<unsigned>(ceil_div(rows, kernels::kTile)),
                    static_cast<unsigned>(std::min<int64_t>(shape[0], kernels::kMaxGridZ)));
    launch(kernels::transpose_batched_kernel<Src, Dst>, grid, dim3(kernels::kTile, kernels::kTileRows), 0,
           stream, x, y, shape[0], rows, cols);
}

}  // namespace

void convert_layout(const float* x, float* y, const Shape& shape, MemoryFormat from, MemoryFormat to,
                    cudaStream_t stream) {
    convert_layout_t(x, y, shape, from, to, stream);
}

void convert_layout(const float* x, bf16* y, const Shape& shape, MemoryFormat from, MemoryFormat to,
                    cudaStream_t stream) {
    convert_layout_t(x, y, shape, from, to, stream);
}

void convert_layout(const bf16* x, bf16* y, const Shape& shape, MemoryFormat from, MemoryFormat to,
                    cudaStream_t stream) {
    convert_layout_t(x, y, shape, from, to, stream);
}

}  // namespace cudacnn::gpu
