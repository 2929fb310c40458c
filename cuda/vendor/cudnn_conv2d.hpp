// cuDNN conv2d (cuda flavour only): descriptors and algorithm choice for one geometry, and the three passes
// (forward with bias, backward-data, backward-filter with the bias gradient), cpu::conv2d semantics, on float
// or bf16 tensors.
#pragma once

#include <cuda_runtime_api.h>

#include <cstddef>
#include <memory>
#include <string>

#include "cuda/bf16.cuh"
#include "cudacnn/memory_format.hpp"
#include "cudacnn/ops/conv2d.hpp"
#include "cudacnn/tensor.hpp"

namespace cudacnn::gpu {

struct CudnnConvOptions {
    // TF32 tensor cores round the inputs to 10 mantissa bits. Off: every algorithm runs with CUDNN_FMA_MATH
    // (FP32 fused multiply-adds only), so results match the float reference within float tolerances. On: the
    // descriptors start from CUDNN_DEFAULT_MATH and cuDNN may pick TF32 tensor-op kernels (PyTorch's
    // torch.backends.cudnn.allow_tf32, whose default is on; ours is off).
    bool allow_tf32 = false;
    // false: cuDNN's heuristics rank the algorithms (cudnnGet*Algorithm_v7; no GPU work).
    // true: cudnnFind*AlgorithmEx runs and times every algorithm on scratch buffers (host-blocking; the
    // scratch tensors and up to workspace_limit_bytes of workspace are allocated for the duration), once per
    // process for each geometry, direction, allow_tf32, workspace limit and device: later plans of the same
    // shape reuse the timings (describe() then says "timings cached").
    bool benchmark = false;
    // Only algorithms whose workspace fits are considered; the caller provides the workspace on each call.
    size_t workspace_limit_bytes = size_t{256} << 20;
    // The storage type of x, w, y, dy and dx: DType::f32 or DType::bf16 (anything else throws Error).
    // bf16 is cuDNN's PSEUDO_BFLOAT16_CONFIG: CUDNN_DATA_BFLOAT16 tensors and filter, FLOAT compute type in
    // the convolution descriptor (FP32 accumulation of the exact bf16 products, one rounding of each output
    // to bf16), descriptors starting from CUDNN_TENSOR_OP_MATH (bf16 tensor cores; compute capability 8.0 and
    // later); allow_tf32 means nothing there (TF32 concerns FP32 data). The bias and the weight and bias
    // gradients stay float (see the bf16 passes below). Algorithms are chosen and timings cached per data
    // type.
    DType data_type = DType::f32;
    // Where x, y, dy and dx lie: NCHW, or NHWC (channels_last, CUDNN_TENSOR_NHWC descriptors). The filter
    // stays (OC, C / G, KH, KW) in NCHW order either way (the executor's weights are PyTorch's); cuDNN then
    // offers only the algorithms that take that mix of layouts, and the constructor names them when none
    // qualifies. The bias (1, OC, 1, 1) is the same in both formats. Timings are cached per format.
    MemoryFormat memory_format = MemoryFormat::nchw;
};

// Empty when cuDNN computes geometry g exactly as cpu::conv2d does, else one sentence saying why not, so that
// a caller can fall back to the hand-written kernels. cuDNN's convolution pads with zeros, by the same amount
// on both sides of an axis, and indexes tensors with 32-bit ints. Hence unsupported: padding_mode reflect,
// replicate or circular with any non-zero padding (with no padding the mode has no effect and g is
// supported); padding='same' with an odd total dilation·(kernel − 1), whose extra row / column goes to the
// bottom / right only; any size, or the element count of x, y or the weight, above 2^31 − 1.
std::string conv2d_cudnn_unsupported(const cpu::Conv2dGeometry& g);

// The cuDNN descriptors (x, y of options.data_type in options.memory_format, float bias (1, OC, 1, 1); filter
// (OC, C / groups, KH, KW) of options.data_type; a cross-correlation with the geometry's stride, symmetric
// zero padding, dilation and group count, FLOAT compute type) and one chosen algorithm per direction.
// Move-only; owns its descriptors. The methods are const and thread-safe: each uses the calling thread's
// cuDNN handle for the current device (created on first use) and sets `stream` on it.
//
// Algorithm choice, per direction: the candidates come ranked by cuDNN (heuristics or timings, see
// CudnnConvOptions::benchmark); the first one that succeeded, whose math type is FMA (float data with
// allow_tf32 off; float data with it on, and bf16 data: anything but CUDNN_TENSOR_OP_MATH_ALLOW_CONVERSION,
// which would convert to FP16) and whose workspace (the larger of the ranking's figure and
// cudnnGet*WorkspaceSize for that algorithm and math type) fits workspace_limit_bytes wins, deterministic
// candidates first; a non-deterministic algorithm (bwd-data ALGO_0, bwd-filter ALGO_0 / ALGO_3, which use
// float atomics) only when no deterministic one qualifies, and describe() says so. Each direction keeps its
// own convolution descriptor carrying its chosen math type: cuDNN selects tensor-core or FMA kernels by
// algorithm and descriptor math type together.
class CudnnConv2d {
  public:
    // Throws Error with conv2d_cudnn_unsupported's reason for an unsupported geometry, or when no algorithm
    // of some direction qualifies (naming the direction, the candidates and the workspace they would need).
    // `stream` carries the benchmark runs (and orders them after earlier work there); heuristics need none.
    CudnnConv2d(const cpu::Conv2dGeometry& g, const CudnnConvOptions& options, cudaStream_t stream);
    ~CudnnConv2d();
    CudnnConv2d(CudnnConv2d&& other) noexcept;
    CudnnConv2d& operator=(CudnnConv2d&& other) noexcept;
    CudnnConv2d(const CudnnConv2d&) = delete;
    CudnnConv2d& operator=(const CudnnConv2d&) = delete;

    const cpu::Conv2dGeometry& geometry() const;
    // The workspace each pass needs; workspace_bytes() is their maximum, the size of one workspace that
    // serves all three. Each is the chosen algorithm's (≤ workspace_limit_bytes), and for bf16 the
    // backward-filter pass adds its bf16 staging of dw (see backward_filter for bf16).
    size_t forward_workspace_bytes() const;
    size_t backward_data_workspace_bytes() const;
    size_t backward_filter_workspace_bytes() const;
    size_t workspace_bytes() const;
    bool deterministic() const;  // all three chosen algorithms are bitwise reproducible run to run
    // One line: the algorithms, the workspace, the math type(s), determinism and how they were chosen, e.g.
    // "fwd IMPLICIT_PRECOMP_GEMM, bwd-data ALGO_1, bwd-filter ALGO_1, ws 12.3 MiB, fma, deterministic,
    // heuristics".
    std::string describe() const;
    DType data_type() const;  // options.data_type

    // Every pointer is device memory; `workspace` holds at least the pass's workspace bytes (it may be
    // nullptr when that is 0); `bytes` is its size. Throws Error on a null tensor or a too small workspace.
    // The passes are asynchronous on `stream`.
    //
    // x (N, C, H, W), weight (OC, C / G, KH, KW), bias (OC) or nullptr for none → y (N, OC, OH, OW),
    // overwritten (cudnnConvolutionForward with beta = 0, then cudnnAddTensor of the bias).
    void forward(const float* x, const float* weight, const float* bias, float* y, void* workspace,
                 size_t bytes, cudaStream_t stream) const;
    // dy (N, OC, OH, OW), weight → dx (N, C, H, W), overwritten.
    void backward_data(const float* dy, const float* weight, float* dx, void* workspace, size_t bytes,
                       cudaStream_t stream) const;
    // x, dy → dweight (OC, C / G, KH, KW) and dbias (OC) = Σ_{n, oh, ow} dy (cudnnConvolutionBackwardBias),
    // each overwritten, each skipped when nullptr (at least one must be given); dbias needs no workspace.
    void backward_filter(const float* x, const float* dy, float* dweight, float* dbias, void* workspace,
                         size_t bytes, cudaStream_t stream) const;

    // The same three passes on bf16 tensors (a plan made with data_type DType::bf16; the float passes above
    // throw Error on such a plan, and these on a float one). The weight arrives as the bf16 copy of the float
    // master weight; bias, dweight and dbias are float, as the executor keeps them.
    //
    // forward: y = conv (rounded once to bf16 by cuDNN), then y = bf16(y + bias[oc]) by our own element-wise
    // kernel (cudnnAddTensor is not documented for a float bias on a bf16 y, and a bf16 copy of the bias
    // would round the bias too). So a biased y is rounded twice, as in PyTorch's autocast (bf16 convolution,
    // then a bf16 bias add).
    void forward(const bf16* x, const bf16* weight, const float* bias, bf16* y, void* workspace, size_t bytes,
                 cudaStream_t stream) const;
    void backward_data(const bf16* dy, const bf16* weight, bf16* dx, void* workspace, size_t bytes,
                       cudaStream_t stream) const;
    // cuDNN's legacy API writes the weight gradient in the filter's data type: it is written in bf16 into the
    // workspace (FP32 accumulation, one rounding per element) and widened exactly into the caller's float
    // dweight, as PyTorch's autocast computes a bf16 weight gradient that the optimizer then reads as float.
    // The workspace holds the algorithm's workspace after that staging (backward_filter_workspace_bytes()
    // counts both). dbias is our own FP32 sum of dy (gpu::conv_bias_grad), never rounded to bf16:
    // cudnnConvolutionBackwardBias would write it in dy's type.
    void backward_filter(const bf16* x, const bf16* dy, float* dweight, float* dbias, void* workspace,
                         size_t bytes, cudaStream_t stream) const;

  private:
    struct State;
    std::unique_ptr<State> state_;
    const State& state() const;  // throws Error on a moved-from object
};

// How many timed rankings (one per geometry, direction and options) the process has cached so far.
size_t cudnn_benchmark_cache_entries();

}  // namespace cudacnn::gpu
