// Linear layer forward and backward: three GEMMs (split over k where that helps), a bias broadcast (FP32; the
// BF16 GEMM adds the bias in its epilogue) and a bias-gradient reduction.
#include "cuda/linear.hpp"

#include <algorithm>

#include "cuda/bias_grad.hpp"
#include "cuda/gemm.hpp"
#include "cuda/gemm_backend.hpp"
#include "cuda/launch.cuh"
#include "cudacnn/error.hpp"

namespace cudacnn::gpu {
namespace kernels {

// y (rows, cols)[r, :] = bias (cols) for every row r; grid-stride over the rows · cols elements.
__global__ void broadcast_bias_rows_kernel(const float* bias, float* y, int64_t rows, int64_t cols) {
    for (int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; i < rows * cols;
         i += int64_t{gridDim.x} * blockDim.x) {
        y[i] = bias[i % cols];
    }
}

}  // namespace kernels

namespace {

void check_linear_shape(const char* op, const LinearShape& s) {
    CUDACNN_CHECK(s.batch > 0 && s.in_features > 0 && s.out_features > 0,
                  "{}: batch = {}, in_features = {}, out_features = {}; every size must be positive", op,
                  s.batch, s.in_features, s.out_features);
}

}  // namespace

size_t linear_workspace_bytes(const LinearShape& s) {
    check_linear_shape("linear_workspace_bytes", s);
    const int64_t n = s.batch, in = s.in_features, out = s.out_features;
    // The three products of linear_forward and linear_backward, as (m, n, k).
    return std::max({gemm_split_workspace_bytes(n, out, in), gemm_split_workspace_bytes(n, in, out),
                     gemm_split_workspace_bytes(out, in, n)});
}

void linear_forward(const float* x, const float* weight, const float* bias, float* y,
                    const LinearShape& shape, cudaStream_t stream, void* workspace, size_t workspace_bytes) {
    check_linear_shape("linear", shape);
    const int64_t n = shape.batch, in = shape.in_features, out = shape.out_features;
    if (bias != nullptr) {
        constexpr int kThreads = 256;
        const int64_t blocks = std::min<int64_t>((n * out + kThreads - 1) / kThreads, 1024);
        launch(kernels::broadcast_bias_rows_kernel, dim3(static_cast<unsigned>(blocks)), dim3(kThreads), 0,
               stream, bias, y, n, out);
    }
    // y (N, out) = x (N, in) · weightᵀ, weight stored (out, in).
    gemm_split(false, true, n, out, in, 1.0f, x, in, weight, in, bias != nullptr ? 1.0f : 0.0f, y, out, workspace,
               workspace_bytes, stream);
}

void linear_backward(const float* x, const float* weight, const float* dy, float* dx, float* dweight,
                     float* dbias, const LinearShape& shape, cudaStream_t stream, void* workspace,
                     size_t workspace_bytes) {
    check_linear_shape("linear_backward", shape);
    const int64_t n = shape.batch, in = shape.in_features, out = shape.out_features;
    // dx (N, in) = dy (N, out) · weight (out, in).
    if (dx != nullptr) {
        gemm_split(false, false, n, in, out, 1.0f, dy, out, weight, in, 0.0f, dx, in, workspace, workspace_bytes,
                   stream);
    }
    // dweight (out, in) = dyᵀ · x, dy stored (N, out).
    if (dweight != nullptr) {
        gemm_split(true, false, out, in, n, 1.0f, dy, out, x, in, 0.0f, dweight, in, workspace, workspace_bytes,
                   stream);
    }
    if (dbias != nullptr) linear_bias_grad(dy, dbias, n, out, stream);
}

namespace {

// Both bf16 forwards: y (N, out) = x (N, in) · weightᵀ + bias, weight stored (out, in).
template <class TOut>
void linear_forward_bf16(const bf16* x, const bf16* weight, const float* bias, TOut* y,
                         const LinearShape& shape, cudaStream_t stream, void* workspace,
                         size_t workspace_bytes) {
    check_linear_shape("linear", shape);
    const int64_t n = shape.batch, in = shape.in_features, out = shape.out_features;
    gemm_bf16_split(false, true, n, out, in, 1.0f, x, in, weight, in, bias, y, out, workspace,
                    workspace_bytes, stream);
}

}  // namespace

size_t linear_workspace_bytes_bf16(const LinearShape& s) {
    check_linear_shape("linear_workspace_bytes_bf16", s);
    const int64_t n = s.batch, in = s.in_features, out = s.out_features;
    // The three products of linear_forward and linear_backward, as (m, n, k).
    return std::max({gemm_bf16_split_workspace_bytes(n, out, in), gemm_bf16_split_workspace_bytes(n, in, out),
                     gemm_bf16_split_workspace_bytes(out, in, n)});
}

void linear_forward(const bf16* x, const bf16* weight, const float* bias, bf16* y, const LinearShape& shape,
                    cudaStream_t stream, void* workspace, size_t workspace_bytes) {
    linear_forward_bf16(x, weight, bias, y, shape, stream, workspace, workspace_bytes);
}

void linear_forward(const bf16* x, const bf16* weight, const float* bias, float* y, const LinearShape& shape,
                    cudaStream_t stream, void* workspace, size_t workspace_bytes) {
    linear_forward_bf16(x, weight, bias, y, shape, stream, workspace, workspace_bytes);
}

void linear_backward(const bf16* x, const bf16* weight, const bf16* dy, bf16* dx, float* dweight,
                     float* dbias, const LinearShape& shape, cudaStream_t stream, void* workspace,
                     size_t workspace_bytes) {
    check_linear_shape("linear_backward", shape);
    const int64_t n = shape.batch, in = shape.in_features, out = shape.out_features;
    // dx (N, in) = dy (N, out) · weight (out, in), rounded once to bf16.
    if (dx != nullptr) {
        gemm_bf16_split(false, false, n, in, out, 1.0f, dy, out, weight, in, nullptr, dx, in, workspace,
                        workspace_bytes, stream);
    }
    // dweight (out, in) = dyᵀ · x, dy stored (N, out): FP32 sums of exact bf16 products, kept float
    // (PyTorch's autocast rounds this gradient to bf16; here it is as accurate as the FP32 layer's on the
    // bf16 values).
    if (dweight != nullptr) {
        gemm_bf16_split(true, false, out, in, n, 1.0f, dy, out, x, in, nullptr, dweight, in, workspace,
                        workspace_bytes, stream);
    }
    if (dbias != nullptr) linear_bias_grad(dy, dbias, n, out, stream);
}

}  // namespace cudacnn::gpu
