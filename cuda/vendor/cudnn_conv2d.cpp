// cuDNN convolution for the cuda flavour: descriptors, per-direction algorithm choice and the three passes.
#include "cuda/vendor/cudnn_conv2d.hpp"

#include <cudnn.h>

#include <algorithm>
#include <array>
#include <climits>
#include <cstdint>
#include <initializer_list>
#include <iterator>
#include <map>
#include <mutex>
#include <string>
#include <vector>

#include <fmt/format.h>

#include "cuda/bias_grad.hpp"
#include "cuda/cast.hpp"
#include "cuda/vendor/cudnn_conv2d_bf16.hpp"
#include "cuda/vendor/thread_handle.hpp"
#include "cudacnn/device.hpp"
#include "cudacnn/error.hpp"

namespace cudacnn::gpu {

namespace {

// ---- handles and descriptors ----------------------------------------------------------------------------

struct CudnnHandleTraits {
    static cudnnHandle_t create() {
        cudnnHandle_t handle = nullptr;
        CUDACNN_CUDNN_CHECK(cudnnCreate(&handle));
        return handle;
    }
    static void destroy(cudnnHandle_t handle) noexcept { cudnnDestroy(handle); }
};

// The calling thread's handle, with its work going to `stream` from now on.
cudnnHandle_t handle_on(cudaStream_t stream) {
    const cudnnHandle_t handle = thread_handle<CudnnHandleTraits>();
    CUDACNN_CUDNN_CHECK(cudnnSetStream(handle, stream));
    return handle;
}

struct TensorDescDeleter {
    void operator()(cudnnTensorDescriptor_t desc) const noexcept { cudnnDestroyTensorDescriptor(desc); }
};
struct FilterDescDeleter {
    void operator()(cudnnFilterDescriptor_t desc) const noexcept { cudnnDestroyFilterDescriptor(desc); }
};
struct ConvDescDeleter {
    void operator()(cudnnConvolutionDescriptor_t desc) const noexcept {
        cudnnDestroyConvolutionDescriptor(desc);
    }
};
using TensorDesc = std::unique_ptr<cudnnTensorStruct, TensorDescDeleter>;
using FilterDesc = std::unique_ptr<cudnnFilterStruct, FilterDescDeleter>;
using ConvDesc = std::unique_ptr<cudnnConvolutionStruct, ConvDescDeleter>;

// conv2d_cudnn_unsupported has checked that every size fits.
int as_int(int64_t value) {
    return static_cast<int>(value);
}

// The storage types CudnnConvOptions::data_type may name (checked by the constructor).
cudnnDataType_t cudnn_type(DType dtype) {
    return dtype == DType::bf16 ? CUDNN_DATA_BFLOAT16 : CUDNN_DATA_FLOAT;
}

// A packed (n, c, h, w) tensor of `type`, laid out in `format`.
TensorDesc make_tensor_desc(int64_t n, int64_t c, int64_t h, int64_t w, cudnnDataType_t type,
                            MemoryFormat format = MemoryFormat::nchw) {
    cudnnTensorDescriptor_t raw = nullptr;
    CUDACNN_CUDNN_CHECK(cudnnCreateTensorDescriptor(&raw));
    TensorDesc desc(raw);
    const cudnnTensorFormat_t layout = format == MemoryFormat::nhwc ? CUDNN_TENSOR_NHWC : CUDNN_TENSOR_NCHW;
    CUDACNN_CUDNN_CHECK(
        cudnnSetTensor4dDescriptor(raw, layout, type, as_int(n), as_int(c), as_int(h), as_int(w)));
    return desc;
}

// (OC, C / G, KH, KW): cuDNN's filter for a grouped convolution holds one group's input channels.
FilterDesc make_filter_desc(const cpu::Conv2dGeometry& g, cudnnDataType_t type) {
    cudnnFilterDescriptor_t raw = nullptr;
    CUDACNN_CUDNN_CHECK(cudnnCreateFilterDescriptor(&raw));
    FilterDesc desc(raw);
    CUDACNN_CUDNN_CHECK(cudnnSetFilter4dDescriptor(raw, type, CUDNN_TENSOR_NCHW, as_int(g.out_channels),
                                                   as_int(g.in_channels_per_group()), as_int(g.kernel_h),
                                                   as_int(g.kernel_w)));
    return desc;
}

// PyTorch's conv2d is a cross-correlation (no kernel flip); FP32 accumulation (the compute type FLOAT, for
// float data and for bf16 data alike: PSEUDO_BFLOAT16_CONFIG); padding symmetric (checked).
ConvDesc make_conv_desc(const cpu::Conv2dGeometry& g, cudnnMathType_t math) {
    cudnnConvolutionDescriptor_t raw = nullptr;
    CUDACNN_CUDNN_CHECK(cudnnCreateConvolutionDescriptor(&raw));
    ConvDesc desc(raw);
    CUDACNN_CUDNN_CHECK(cudnnSetConvolution2dDescriptor(
        raw, as_int(g.pad_top), as_int(g.pad_left), as_int(g.stride_h), as_int(g.stride_w),
        as_int(g.dilation_h), as_int(g.dilation_w), CUDNN_CROSS_CORRELATION, CUDNN_DATA_FLOAT));
    CUDACNN_CUDNN_CHECK(cudnnSetConvolutionGroupCount(raw, as_int(g.groups)));
    CUDACNN_CUDNN_CHECK(cudnnSetConvolutionMathType(raw, math));
    return desc;
}

// ---- directions, algorithms, math types -----------------------------------------------------------------

enum Direction : int { kForward = 0, kBackwardData = 1, kBackwardFilter = 2 };
constexpr std::array<Direction, 3> kDirections = {kForward, kBackwardData, kBackwardFilter};
constexpr std::array<const char*, 3> kDirectionNames = {"fwd", "bwd-data", "bwd-filter"};

// The enumerators of cudnnConvolution{Fwd,BwdData,BwdFilter}Algo_t without their common prefix.
constexpr const char* kForwardAlgorithms[] = {
    "IMPLICIT_GEMM", "IMPLICIT_PRECOMP_GEMM", "GEMM", "DIRECT", "FFT", "FFT_TILING",
    "WINOGRAD",      "WINOGRAD_NONFUSED"};
constexpr const char* kBackwardDataAlgorithms[] = {"ALGO_0",     "ALGO_1",   "FFT",
                                                   "FFT_TILING", "WINOGRAD", "WINOGRAD_NONFUSED"};
constexpr const char* kBackwardFilterAlgorithms[] = {
    "ALGO_0", "ALGO_1", "FFT", "ALGO_3", "WINOGRAD", "WINOGRAD_NONFUSED", "FFT_TILING"};
static_assert(std::size(kForwardAlgorithms) == size_t{CUDNN_CONVOLUTION_FWD_ALGO_COUNT});
static_assert(std::size(kBackwardDataAlgorithms) == size_t{CUDNN_CONVOLUTION_BWD_DATA_ALGO_COUNT});
static_assert(std::size(kBackwardFilterAlgorithms) == size_t{CUDNN_CONVOLUTION_BWD_FILTER_ALGO_COUNT});

const char* algorithm_name(Direction direction, int algo) {
    const auto pick = [algo](const auto& names) -> const char* {
        return algo >= 0 && algo < static_cast<int>(std::size(names)) ? names[algo] : "UNKNOWN";
    };
    switch (direction) {
        case kForward:
            return pick(kForwardAlgorithms);
        case kBackwardData:
            return pick(kBackwardDataAlgorithms);
        case kBackwardFilter:
            return pick(kBackwardFilterAlgorithms);
    }
    return "UNKNOWN";
}

// With bf16 data the tensor-op kernels are bf16 ones (TF32 concerns float data only).
const char* math_name(cudnnMathType_t math, DType dtype) {
    const bool bf16 = dtype == DType::bf16;
    switch (math) {
        case CUDNN_FMA_MATH:
            return bf16 ? "bf16 fma" : "fma";
        case CUDNN_DEFAULT_MATH:
            return bf16 ? "bf16 default math" : "default math (tf32 allowed)";
        case CUDNN_TENSOR_OP_MATH:
            return bf16 ? "bf16 tensor-op" : "tensor-op (tf32)";
        case CUDNN_TENSOR_OP_MATH_ALLOW_CONVERSION:
            return bf16 ? "bf16 tensor-op with conversion" : "tensor-op with conversion";
    }
    return "unknown math";
}

// Float data without TF32: only FMA kernels qualify. Float data with TF32, and bf16 data: anything but
// down-conversion of the data to FP16 (bf16 tensor-op and FMA kernels both multiply the exact bf16 values and
// accumulate in FP32).
bool math_allowed(cudnnMathType_t math, const CudnnConvOptions& options) {
    return options.allow_tf32 || options.data_type == DType::bf16
               ? math != CUDNN_TENSOR_OP_MATH_ALLOW_CONVERSION
               : math == CUDNN_FMA_MATH;
}

// The math type the descriptors start from; cudnnGet / cudnnFind consider the kernels it permits.
cudnnMathType_t base_math(const CudnnConvOptions& options) {
    if (options.data_type == DType::bf16) return CUDNN_TENSOR_OP_MATH;
    return options.allow_tf32 ? CUDNN_DEFAULT_MATH : CUDNN_FMA_MATH;
}

// One entry of cuDNN's ranking, whatever the direction (the three perf structs have the same fields).
struct Candidate {
    int algo = 0;
    cudnnStatus_t status = CUDNN_STATUS_NOT_SUPPORTED;
    size_t memory = 0;
    bool deterministic = false;
    cudnnMathType_t math = CUDNN_DEFAULT_MATH;
    float time_ms = -1.0f;  // cudnnFind's measurement; negative for heuristics, which time nothing
};

template <class Perf>
std::vector<Candidate> to_candidates(const std::vector<Perf>& perfs, int returned) {
    std::vector<Candidate> candidates;
    for (int i = 0; i < std::min(returned, static_cast<int>(perfs.size())); ++i) {
        const Perf& p = perfs[static_cast<size_t>(i)];
        candidates.push_back(Candidate{static_cast<int>(p.algo), p.status, p.memory,
                                       p.determinism == CUDNN_DETERMINISTIC, p.mathType, p.time});
    }
    return candidates;
}

// The algorithm chosen for one direction.
struct Choice {
    int algo = 0;
    cudnnMathType_t math = CUDNN_FMA_MATH;
    size_t workspace = 0;
    bool deterministic = true;
    float time_ms = -1.0f;          // as Candidate::time_ms
    float fastest_time_ms = -1.0f;  // benchmark: the fastest successful candidate's time, whatever it was
};

struct Descriptors {
    TensorDesc x, y, bias;         // (N, C, H, W), (N, OC, OH, OW), (1, OC, 1, 1)
    FilterDesc w;                  // (OC, C / G, KH, KW)
    std::array<ConvDesc, 3> conv;  // per direction, each with its chosen algorithm's math type
};

// ---- asking cuDNN -----------------------------------------------------------------------------------------

// cudnnGet*WorkspaceSize for one algorithm under the direction descriptor's current math type; not CHECKed,
// because an algorithm that cannot run this geometry answers with an error status and is skipped.
cudnnStatus_t query_workspace(cudnnHandle_t handle, const Descriptors& d, Direction direction, int algo,
                              size_t* bytes) {
    cudnnConvolutionDescriptor_t conv = d.conv[direction].get();
    switch (direction) {
        case kForward:
            return cudnnGetConvolutionForwardWorkspaceSize(handle, d.x.get(), d.w.get(), conv, d.y.get(),
                                                           static_cast<cudnnConvolutionFwdAlgo_t>(algo),
                                                           bytes);
        case kBackwardData:
            return cudnnGetConvolutionBackwardDataWorkspaceSize(
                handle, d.w.get(), d.y.get(), conv, d.x.get(),
                static_cast<cudnnConvolutionBwdDataAlgo_t>(algo), bytes);
        case kBackwardFilter:
            return cudnnGetConvolutionBackwardFilterWorkspaceSize(
                handle, d.x.get(), d.y.get(), conv, d.w.get(),
                static_cast<cudnnConvolutionBwdFilterAlgo_t>(algo), bytes);
    }
    return CUDNN_STATUS_BAD_PARAM;
}

int algorithm_count(Direction direction) {
    switch (direction) {
        case kForward:
            return CUDNN_CONVOLUTION_FWD_ALGO_COUNT;
        case kBackwardData:
            return CUDNN_CONVOLUTION_BWD_DATA_ALGO_COUNT;
        case kBackwardFilter:
            return CUDNN_CONVOLUTION_BWD_FILTER_ALGO_COUNT;
    }
    return 0;
}

// How many ranking entries cudnnGet / cudnnFind may return (cudnnGet*AlgorithmMaxCount), at least one per
// algorithm of the enum.
int ranking_size(cudnnHandle_t handle, Direction direction) {
    int count = 0;
    switch (direction) {
        case kForward:
            CUDACNN_CUDNN_CHECK(cudnnGetConvolutionForwardAlgorithmMaxCount(handle, &count));
            break;
        case kBackwardData:
            CUDACNN_CUDNN_CHECK(cudnnGetConvolutionBackwardDataAlgorithmMaxCount(handle, &count));
            break;
        case kBackwardFilter:
            CUDACNN_CUDNN_CHECK(cudnnGetConvolutionBackwardFilterAlgorithmMaxCount(handle, &count));
            break;
    }
    return std::max(count, algorithm_count(direction));
}

// cuDNN's heuristic ranking (cudnnGet*Algorithm_v7): no GPU work.
std::vector<Candidate> heuristic_candidates(cudnnHandle_t handle, const Descriptors& d, Direction direction) {
    cudnnConvolutionDescriptor_t conv = d.conv[direction].get();
    const int count = ranking_size(handle, direction);
    int returned = 0;
    switch (direction) {
        case kForward: {
            std::vector<cudnnConvolutionFwdAlgoPerf_t> perfs(static_cast<size_t>(count));
            CUDACNN_CUDNN_CHECK(cudnnGetConvolutionForwardAlgorithm_v7(
                handle, d.x.get(), d.w.get(), conv, d.y.get(), count, &returned, perfs.data()));
            return to_candidates(perfs, returned);
        }
        case kBackwardData: {
            std::vector<cudnnConvolutionBwdDataAlgoPerf_t> perfs(static_cast<size_t>(count));
            CUDACNN_CUDNN_CHECK(cudnnGetConvolutionBackwardDataAlgorithm_v7(
                handle, d.w.get(), d.y.get(), conv, d.x.get(), count, &returned, perfs.data()));
            return to_candidates(perfs, returned);
        }
        case kBackwardFilter: {
            std::vector<cudnnConvolutionBwdFilterAlgoPerf_t> perfs(static_cast<size_t>(count));
            CUDACNN_CUDNN_CHECK(cudnnGetConvolutionBackwardFilterAlgorithm_v7(
                handle, d.x.get(), d.y.get(), conv, d.w.get(), count, &returned, perfs.data()));
            return to_candidates(perfs, returned);
        }
    }
    return {};
}

// Scratch tensors for cudnnFind*AlgorithmEx, which runs every algorithm and so overwrites its output: the
// caller's buffers are not touched (they may not even exist yet when a plan is built).
struct Scratch {
    DeviceBuffer x, w, y, workspace;
};

DeviceBuffer zeroed_buffer(size_t bytes, cudaStream_t stream) {
    DeviceBuffer buffer(bytes);
    // Defined values: uninitialized memory may hold NaNs or denormals, which some kernels run slower on.
    fill_bytes(buffer.data(), 0, buffer.bytes(), stream);
    return buffer;
}

// The largest workspace any algorithm of the direction needs within the limit, so that Find can try them all.
size_t benchmark_workspace_bytes(cudnnHandle_t handle, const Descriptors& d, Direction direction,
                                 size_t limit) {
    size_t largest = 0;
    for (int algo = 0; algo < algorithm_count(direction); ++algo) {
        size_t bytes = 0;
        if (query_workspace(handle, d, direction, algo, &bytes) == CUDNN_STATUS_SUCCESS && bytes <= limit) {
            largest = std::max(largest, bytes);
        }
    }
    return largest;
}

// cuDNN's timed ranking (cudnnFind*AlgorithmEx, host-blocking): fastest first; an algorithm that needs more
// workspace than given comes back with an error status.
std::vector<Candidate> benchmark_candidates(cudnnHandle_t handle, const Descriptors& d, Direction direction,
                                            const Scratch& s) {
    cudnnConvolutionDescriptor_t conv = d.conv[direction].get();
    void* workspace = s.workspace.data();
    const size_t workspace_bytes = s.workspace.bytes();
    const int count = ranking_size(handle, direction);
    int returned = 0;
    switch (direction) {
        case kForward: {
            std::vector<cudnnConvolutionFwdAlgoPerf_t> perfs(static_cast<size_t>(count));
            CUDACNN_CUDNN_CHECK(cudnnFindConvolutionForwardAlgorithmEx(
                handle, d.x.get(), s.x.data(), d.w.get(), s.w.data(), conv, d.y.get(), s.y.data(), count,
                &returned, perfs.data(), workspace, workspace_bytes));
            return to_candidates(perfs, returned);
        }
        case kBackwardData: {
            std::vector<cudnnConvolutionBwdDataAlgoPerf_t> perfs(static_cast<size_t>(count));
            CUDACNN_CUDNN_CHECK(cudnnFindConvolutionBackwardDataAlgorithmEx(
                handle, d.w.get(), s.w.data(), d.y.get(), s.y.data(), conv, d.x.get(), s.x.data(), count,
                &returned, perfs.data(), workspace, workspace_bytes));
            return to_candidates(perfs, returned);
        }
        case kBackwardFilter: {
            std::vector<cudnnConvolutionBwdFilterAlgoPerf_t> perfs(static_cast<size_t>(count));
            CUDACNN_CUDNN_CHECK(cudnnFindConvolutionBackwardFilterAlgorithmEx(
                handle, d.x.get(), s.x.data(), d.y.get(), s.y.data(), conv, d.w.get(), s.w.data(), count,
                &returned, perfs.data(), workspace, workspace_bytes));
            return to_candidates(perfs, returned);
        }
    }
    return {};
}

std::string geometry_text(const cpu::Conv2dGeometry& g) {
    return fmt::format(
        "x ({}, {}, {}, {}), weight ({}, {}, {}, {}), stride ({}, {}), "
        "padding (top {}, bottom {}, left {}, right {}), dilation ({}, {}), groups {}, padding_mode '{}'",
        g.batch, g.in_channels, g.in_h, g.in_w, g.out_channels, g.in_channels_per_group(), g.kernel_h,
        g.kernel_w, g.stride_h, g.stride_w, g.pad_top, g.pad_bottom, g.pad_left, g.pad_right, g.dilation_h,
        g.dilation_w, g.groups, cpu::conv2d_padding_mode_name(g.padding_mode));
}

std::string candidates_text(Direction direction, const std::vector<Candidate>& candidates, DType dtype) {
    std::string text;
    for (const Candidate& c : candidates) {
        text += fmt::format("{}{} ({}, {}, {} bytes, {})", text.empty() ? "" : "; ",
                            algorithm_name(direction, c.algo), cudnnGetErrorString(c.status),
                            math_name(c.math, dtype), c.memory,
                            c.deterministic ? "deterministic" : "non-deterministic");
    }
    return text.empty() ? "none" : text;
}

// The smallest measured time among the candidates that ran (negative when nothing was timed).
float fastest_time(const std::vector<Candidate>& candidates) {
    float fastest = -1.0f;
    for (const Candidate& c : candidates) {
        if (c.status != CUDNN_STATUS_SUCCESS || c.time_ms < 0.0f) continue;
        if (fastest < 0.0f || c.time_ms < fastest) fastest = c.time_ms;
    }
    return fastest;
}

// The first qualifying candidate in cuDNN's order, deterministic ones first (see the header). Leaves the
// direction's descriptor set to the chosen math type.
Choice choose_algorithm(cudnnHandle_t handle, Descriptors& d, Direction direction,
                        const std::vector<Candidate>& candidates, const CudnnConvOptions& options,
                        const cpu::Conv2dGeometry& g) {
    cudnnConvolutionDescriptor_t conv = d.conv[direction].get();
    size_t smallest_over_limit = SIZE_MAX;
    for (const bool deterministic_only : {true, false}) {
        for (const Candidate& c : candidates) {
            if (c.status != CUDNN_STATUS_SUCCESS || !math_allowed(c.math, options)) continue;
            if (deterministic_only && !c.deterministic) continue;
            // The workspace depends on the math type too. Taking the larger of the ranking's figure and the
            // direct query means the workspace can never be short, whichever of the two cuDNN got right.
            CUDACNN_CUDNN_CHECK(cudnnSetConvolutionMathType(conv, c.math));
            size_t bytes = 0;
            if (query_workspace(handle, d, direction, c.algo, &bytes) != CUDNN_STATUS_SUCCESS) continue;
            bytes = std::max(bytes, c.memory);
            if (bytes > options.workspace_limit_bytes) {
                smallest_over_limit = std::min(smallest_over_limit, bytes);
                continue;
            }
            return Choice{c.algo, c.math, bytes, c.deterministic, c.time_ms, fastest_time(candidates)};
        }
    }
    const std::string advice =
        smallest_over_limit == SIZE_MAX
            ? std::string("use the hand-written conv2d kernels")
            : fmt::format("raise workspace_limit_bytes to at least {} or use the hand-written conv2d kernels",
                          smallest_over_limit);
    CUDACNN_FAIL(
        "cudnn_conv2d: no {} algorithm qualifies for {} ({} {} data, allow_tf32 {}, workspace limit {} "
        "bytes); "
        "cuDNN offered: {}; {}",
        kDirectionNames[direction], geometry_text(g), dtype_name(options.data_type),
        memory_format_name(options.memory_format), options.allow_tf32, options.workspace_limit_bytes,
        candidates_text(direction, candidates, options.data_type), advice);
}

// Timed rankings are worth keeping: cudnnFind runs every algorithm (tens of milliseconds per direction), and a
// network repeats shapes (the same layer at the training and evaluation batch, models with repeated blocks,
// several executors in one process). One process-wide cache, keyed by everything the timings depend on.
class BenchmarkCache {
  public:
    static BenchmarkCache& instance() {
        static BenchmarkCache cache;
        return cache;
    }
    static std::string key(const cpu::Conv2dGeometry& g, Direction direction, const CudnnConvOptions& options) {
        int device = 0;
        CUDACNN_CUDA_CHECK(cudaGetDevice(&device));
        return fmt::format("{} | {} | {} | {} | tf32 {} | limit {} | device {}", geometry_text(g),
                           kDirectionNames[direction], dtype_name(options.data_type),
                           memory_format_name(options.memory_format),
                           options.data_type == DType::f32 && options.allow_tf32,  // only float data has TF32
                           options.workspace_limit_bytes, device);
    }
    bool find(const std::string& key, std::vector<Candidate>* candidates) const {
        std::lock_guard<std::mutex> lock(mutex_);
        const auto it = rankings_.find(key);
        if (it == rankings_.end()) return false;
        *candidates = it->second;
        return true;
    }
    void store(const std::string& key, const std::vector<Candidate>& candidates) {
        std::lock_guard<std::mutex> lock(mutex_);
        rankings_[key] = candidates;
    }
    size_t size() const {
        std::lock_guard<std::mutex> lock(mutex_);
        return rankings_.size();
    }

  private:
    mutable std::mutex mutex_;
    std::map<std::string, std::vector<Candidate>> rankings_;
};

// The math types cudnnFind is run under. With TF32 allowed, once under CUDNN_DEFAULT_MATH and once under
// CUDNN_TENSOR_OP_MATH: on an H200 (docs/gpu-runs.md, 2026-11-27) Find under the default math alone reported
// only default-math entries and kept FP32-speed kernels on the 32×32 and 16×16 CifarCNN layers (2.2× slower
// than PyTorch's TF32 convolutions there), while the heuristics' tensor-op picks ran the whole step 14%
// faster. bf16 data: under CUDNN_TENSOR_OP_MATH, the math type its descriptors start from.
std::vector<cudnnMathType_t> benchmark_maths(const CudnnConvOptions& options) {
    if (options.data_type == DType::bf16) return {CUDNN_TENSOR_OP_MATH};
    if (!options.allow_tf32) return {CUDNN_FMA_MATH};
    return {CUDNN_DEFAULT_MATH, CUDNN_TENSOR_OP_MATH};
}

// Several timed rankings as one, fastest first (a stable sort keeps cuDNN's order among equal times; entries
// that failed, which carry no meaningful time, go last in their original order).
std::vector<Candidate> merge_by_time(const std::vector<std::vector<Candidate>>& rankings) {
    std::vector<Candidate> merged;
    for (const std::vector<Candidate>& ranking : rankings) merged.insert(merged.end(), ranking.begin(), ranking.end());
    std::stable_sort(merged.begin(), merged.end(), [](const Candidate& a, const Candidate& b) {
        const bool a_ran = a.status == CUDNN_STATUS_SUCCESS, b_ran = b.status == CUDNN_STATUS_SUCCESS;
        if (a_ran != b_ran) return a_ran;
        return a_ran && a.time_ms < b.time_ms;
    });
    return merged;
}

// cuDNN's timed ranking, run on scratch buffers the size of this geometry's tensors, under every math type of
// benchmark_maths; leaves the direction's descriptor at that list's first math type.
std::vector<Candidate> timed_candidates(cudnnHandle_t handle, const Descriptors& d, Direction direction,
                                        const CudnnConvOptions& options, const cpu::Conv2dGeometry& g,
                                        cudaStream_t stream) {
    const auto bytes_of = [&](const Shape& shape) {
        return static_cast<size_t>(shape.numel()) * dtype_size(options.data_type);
    };
    cudnnConvolutionDescriptor_t conv = d.conv[direction].get();
    const std::vector<cudnnMathType_t> maths = benchmark_maths(options);
    size_t workspace_bytes = 0;  // enough for every algorithm under every math type, within the limit
    for (const cudnnMathType_t math : maths) {
        CUDACNN_CUDNN_CHECK(cudnnSetConvolutionMathType(conv, math));
        workspace_bytes =
            std::max(workspace_bytes, benchmark_workspace_bytes(handle, d, direction, options.workspace_limit_bytes));
    }
    Scratch scratch;
    scratch.x = zeroed_buffer(bytes_of(Shape{g.batch, g.in_channels, g.in_h, g.in_w}), stream);
    scratch.w = zeroed_buffer(
        bytes_of(Shape{g.out_channels, g.in_channels_per_group(), g.kernel_h, g.kernel_w}), stream);
    scratch.y = zeroed_buffer(bytes_of(g.output_shape()), stream);
    scratch.workspace = DeviceBuffer(workspace_bytes);
    // The scratch buffers go back to the allocator when this returns; Find has finished with them (it blocks
    // the host until its runs end), and later work on `stream` is ordered after them anyway.
    std::vector<std::vector<Candidate>> rankings;
    for (const cudnnMathType_t math : maths) {
        CUDACNN_CUDNN_CHECK(cudnnSetConvolutionMathType(conv, math));
        rankings.push_back(benchmark_candidates(handle, d, direction, scratch));
    }
    CUDACNN_CUDNN_CHECK(cudnnSetConvolutionMathType(conv, maths.front()));
    return merge_by_time(rankings);
}

// The ranking for one direction: by heuristics, or by timing (once per process and key; *reused says whether
// the timings came from the cache).
std::vector<Candidate> ranked_candidates(cudnnHandle_t handle, const Descriptors& d, Direction direction,
                                         const CudnnConvOptions& options, const cpu::Conv2dGeometry& g,
                                         cudaStream_t stream, bool* reused) {
    *reused = false;
    if (!options.benchmark) return heuristic_candidates(handle, d, direction);
    BenchmarkCache& cache = BenchmarkCache::instance();
    const std::string key = BenchmarkCache::key(g, direction, options);
    std::vector<Candidate> candidates;
    if (cache.find(key, &candidates)) {
        *reused = true;
        return candidates;
    }
    candidates = timed_candidates(handle, d, direction, options, g, stream);
    cache.store(key, candidates);
    return candidates;
}

// max(count of elements, INT_MAX + 1) without overflowing: enough to compare a tensor's size with 2^31 − 1.
int64_t capped_count(std::initializer_list<int64_t> sizes) {
    constexpr int64_t kCap = int64_t{INT_MAX} + 1;
    int64_t count = 1;
    for (const int64_t size : sizes) {
        count = size != 0 && count > kCap / size ? kCap : std::min(count * size, kCap);
    }
    return count;
}

// `needed`: the algorithm's workspace plus any bf16 staging the pass puts before it.
void check_workspace(const char* pass, Direction direction, const Choice& choice, size_t needed,
                     const void* workspace, size_t bytes) {
    CUDACNN_CHECK(
        bytes >= needed && (needed == 0 || workspace != nullptr),
        "cudnn_conv2d {}: the workspace ({} bytes at {}) is smaller than the {} bytes that {} {} needs; "
        "pass workspace_bytes() of the CudnnConv2d",
        pass, bytes, workspace, needed, kDirectionNames[direction], algorithm_name(direction, choice.algo));
}

// Staging buffers in a workspace start at multiples of this many bytes from its start, so that the one after
// them (and cuDNN's workspace) keeps the caller's alignment (cudaMalloc's is 256).
constexpr size_t kStagingAlignment = 256;

size_t staging_bytes(int64_t count) {
    const size_t bytes = static_cast<size_t>(count) * sizeof(bf16);
    return (bytes + kStagingAlignment - 1) / kStagingAlignment * kStagingAlignment;
}

}  // namespace

// ---- conv2d_cudnn_unsupported ----------------------------------------------------------------------------

std::string conv2d_cudnn_unsupported(const cpu::Conv2dGeometry& g) {
    const bool padded = g.pad_top != 0 || g.pad_bottom != 0 || g.pad_left != 0 || g.pad_right != 0;
    if (g.padding_mode != cpu::Conv2dPaddingMode::zeros && padded) {
        return fmt::format(
            "padding_mode '{}' with padding (top {}, bottom {}, left {}, right {}): "
            "cuDNN pads with zeros only",
            cpu::conv2d_padding_mode_name(g.padding_mode), g.pad_top, g.pad_bottom, g.pad_left, g.pad_right);
    }
    if (g.pad_top != g.pad_bottom || g.pad_left != g.pad_right) {
        return fmt::format(
            "asymmetric padding (top {}, bottom {}, left {}, right {}), which padding='same' gives when "
            "dilation · (kernel − 1) is odd: cuDNN pads both sides of an axis by the same amount",
            g.pad_top, g.pad_bottom, g.pad_left, g.pad_right);
    }
    const int64_t sizes[] = {g.batch,    g.in_channels, g.in_h,     g.in_w,     g.out_channels, g.kernel_h,
                             g.kernel_w, g.groups,      g.stride_h, g.stride_w, g.dilation_h,   g.dilation_w,
                             g.pad_top,  g.pad_left,    g.out_h,    g.out_w};
    for (const int64_t size : sizes) {
        if (size > INT_MAX) {
            return fmt::format(
                "a size or setting of {} exceeds 2^31 − 1, and cuDNN takes them as 32-bit ints", size);
        }
    }
    const struct {
        const char* name;
        int64_t count;
    } tensors[] = {
        {"x", capped_count({g.batch, g.in_channels, g.in_h, g.in_w})},
        {"y", capped_count({g.batch, g.out_channels, g.out_h, g.out_w})},
        {"the weight", capped_count({g.out_channels, g.in_channels_per_group(), g.kernel_h, g.kernel_w})},
    };
    for (const auto& t : tensors) {
        if (t.count > INT_MAX) {
            return fmt::format(
                "{} has more than 2^31 − 1 elements, and cuDNN's convolution indexes tensors with "
                "32-bit ints (split the batch)",
                t.name);
        }
    }
    return "";
}

// ---- CudnnConv2d ----------------------------------------------------------------------------------------

struct CudnnConv2d::State {
    cpu::Conv2dGeometry geometry;
    CudnnConvOptions options;
    Descriptors desc;
    std::array<Choice, 3> choice;
    // bf16 data: the backward-filter pass's staging of dw (OC, C / G, KH, KW) in bf16 at the start of the
    // workspace, cuDNN's workspace after it; 0 for float data.
    size_t dw_staging = 0;
    bool reused_timings = false;  // benchmark: some direction's timings came from the process-wide cache

    // The bytes pass `direction` needs: its algorithm's workspace, after the staging for bf16
    // backward-filter.
    size_t pass_bytes(Direction direction) const {
        return choice[direction].workspace + (direction == kBackwardFilter ? dw_staging : 0);
    }
    // Throws unless the plan was made for `dtype` (the passes' pointer types).
    void check_type(const char* pass, DType dtype) const {
        CUDACNN_CHECK(
            options.data_type == dtype,
            "cudnn_conv2d {}: called with {} tensors on a plan made for {} data; make the CudnnConv2d "
            "with CudnnConvOptions::data_type = DType::{}",
            pass, dtype_name(dtype), dtype_name(options.data_type), dtype_name(dtype));
    }
};

CudnnConv2d::CudnnConv2d(const cpu::Conv2dGeometry& g, const CudnnConvOptions& options, cudaStream_t stream)
    : state_(std::make_unique<State>()) {
    const std::string why = conv2d_cudnn_unsupported(g);
    CUDACNN_CHECK(why.empty(),
                  "cudnn_conv2d: cuDNN cannot compute {}: {}; use the hand-written conv2d kernels",
                  geometry_text(g), why);
    CUDACNN_CHECK(options.data_type == DType::f32 || options.data_type == DType::bf16,
                  "cudnn_conv2d: data_type {} is not supported; use DType::f32 or DType::bf16",
                  dtype_name(options.data_type));
    State& s = *state_;
    s.geometry = g;
    s.options = options;
    const cudnnDataType_t type = cudnn_type(options.data_type);
    s.desc.x = make_tensor_desc(g.batch, g.in_channels, g.in_h, g.in_w, type, options.memory_format);
    s.desc.y = make_tensor_desc(g.batch, g.out_channels, g.out_h, g.out_w, type, options.memory_format);
    s.desc.bias = make_tensor_desc(1, g.out_channels, 1, 1, CUDNN_DATA_FLOAT);
    s.desc.w = make_filter_desc(g, type);
    for (const Direction direction : kDirections) {
        s.desc.conv[direction] = make_conv_desc(g, base_math(options));
    }
    if (options.data_type == DType::bf16) {
        s.dw_staging = staging_bytes(g.out_channels * g.in_channels_per_group() * g.kernel_h * g.kernel_w);
    }

    // A geometry not made by cpu::conv2d_geometry could disagree with cuDNN about the output size.
    int n = 0, c = 0, h = 0, w = 0;
    CUDACNN_CUDNN_CHECK(cudnnGetConvolution2dForwardOutputDim(s.desc.conv[kForward].get(), s.desc.x.get(),
                                                              s.desc.w.get(), &n, &c, &h, &w));
    CUDACNN_CHECK(n == g.batch && c == g.out_channels && h == g.out_h && w == g.out_w,
                  "cudnn_conv2d: the geometry says the output is ({}, {}, {}, {}) "
                  "but cuDNN computes ({}, {}, {}, {}) for {}; make the geometry with cpu::conv2d_geometry",
                  g.batch, g.out_channels, g.out_h, g.out_w, n, c, h, w, geometry_text(g));

    const cudnnHandle_t handle = handle_on(stream);
    for (const Direction direction : kDirections) {
        bool reused = false;
        const std::vector<Candidate> candidates =
            ranked_candidates(handle, s.desc, direction, options, g, stream, &reused);
        s.reused_timings = s.reused_timings || reused;
        s.choice[direction] = choose_algorithm(handle, s.desc, direction, candidates, options, g);
    }
}

CudnnConv2d::~CudnnConv2d() = default;
CudnnConv2d::CudnnConv2d(CudnnConv2d&& other) noexcept = default;
CudnnConv2d& CudnnConv2d::operator=(CudnnConv2d&& other) noexcept = default;

const CudnnConv2d::State& CudnnConv2d::state() const {
    CUDACNN_CHECK(state_ != nullptr,
                  "cudnn_conv2d: this CudnnConv2d was moved from; use the object it moved to");
    return *state_;
}

const cpu::Conv2dGeometry& CudnnConv2d::geometry() const {
    return state().geometry;
}

size_t CudnnConv2d::forward_workspace_bytes() const {
    return state().pass_bytes(kForward);
}
size_t CudnnConv2d::backward_data_workspace_bytes() const {
    return state().pass_bytes(kBackwardData);
}
size_t CudnnConv2d::backward_filter_workspace_bytes() const {
    return state().pass_bytes(kBackwardFilter);
}

size_t CudnnConv2d::workspace_bytes() const {
    const State& s = state();
    return std::max({s.pass_bytes(kForward), s.pass_bytes(kBackwardData), s.pass_bytes(kBackwardFilter)});
}

DType CudnnConv2d::data_type() const {
    return state().options.data_type;
}

bool CudnnConv2d::deterministic() const {
    const auto& choice = state().choice;
    return choice[0].deterministic && choice[1].deterministic && choice[2].deterministic;
}

std::string CudnnConv2d::describe() const {
    const State& s = state();
    const auto& choice = s.choice;
    const DType dtype = s.options.data_type;
    std::string math = math_name(choice[0].math, dtype);
    if (choice[1].math != choice[0].math || choice[2].math != choice[0].math) {
        math = fmt::format("math fwd {} / bwd-data {} / bwd-filter {}", math_name(choice[0].math, dtype),
                           math_name(choice[1].math, dtype), math_name(choice[2].math, dtype));
    }
    std::string non_deterministic;
    for (const Direction direction : kDirections) {
        if (choice[direction].deterministic) continue;
        non_deterministic +=
            fmt::format("{}{} {}", non_deterministic.empty() ? "" : ", ", kDirectionNames[direction],
                        algorithm_name(direction, choice[direction].algo));
    }
    const std::string determinism = non_deterministic.empty()
                                        ? std::string("deterministic")
                                        : "non-deterministic (" + non_deterministic + ")";
    std::string timings;  // benchmark: each choice's measured time, and the fastest where that was not chosen
    if (s.options.benchmark) {
        for (const Direction direction : kDirections) {
            const Choice& c = choice[direction];
            timings += fmt::format("{}{} {:.3f} ms", timings.empty() ? "; timed " : ", ", kDirectionNames[direction],
                                   c.time_ms);
            if (c.fastest_time_ms >= 0.0f && c.fastest_time_ms < c.time_ms) {
                timings += fmt::format(" (fastest {:.3f})", c.fastest_time_ms);
            }
        }
    }
    return fmt::format("fwd {}, bwd-data {}, bwd-filter {}, ws {:.1f} MiB, {}, {}, {}{}",
                       algorithm_name(kForward, choice[kForward].algo),
                       algorithm_name(kBackwardData, choice[kBackwardData].algo),
                       algorithm_name(kBackwardFilter, choice[kBackwardFilter].algo),
                       static_cast<double>(workspace_bytes()) / (1024.0 * 1024.0), math, determinism,
                       !s.options.benchmark ? "heuristics"
                       : s.reused_timings   ? "benchmarked (timings cached)"
                                            : "benchmarked",
                       timings);
}

// ---- the passes, on either data type (the typed methods below check the pointers' type) ------------------

namespace {

// y = conv(x, weight), overwritten (beta = 0: y is written without being read; it may hold NaN).
void convolve(const Descriptors& d, const Choice& choice, cudnnHandle_t handle, const void* x,
              const void* weight, void* y, void* workspace, size_t bytes) {
    const float one = 1.0f, zero = 0.0f;
    CUDACNN_CUDNN_CHECK(cudnnConvolutionForward(
        handle, &one, d.x.get(), x, d.w.get(), weight, d.conv[kForward].get(),
        static_cast<cudnnConvolutionFwdAlgo_t>(choice.algo), workspace, bytes, &zero, d.y.get(), y));
}

// dx = ∂L/∂x, overwritten.
void data_gradient(const Descriptors& d, const Choice& choice, cudnnHandle_t handle, const void* dy,
                   const void* weight, void* dx, void* workspace, size_t bytes) {
    const float one = 1.0f, zero = 0.0f;
    CUDACNN_CUDNN_CHECK(cudnnConvolutionBackwardData(
        handle, &one, d.w.get(), weight, d.y.get(), dy, d.conv[kBackwardData].get(),
        static_cast<cudnnConvolutionBwdDataAlgo_t>(choice.algo), workspace, bytes, &zero, d.x.get(), dx));
}

// dw = ∂L/∂w in the filter's data type, overwritten.
void filter_gradient(const Descriptors& d, const Choice& choice, cudnnHandle_t handle, const void* x,
                     const void* dy, void* dweight, void* workspace, size_t bytes) {
    const float one = 1.0f, zero = 0.0f;
    CUDACNN_CUDNN_CHECK(cudnnConvolutionBackwardFilter(
        handle, &one, d.x.get(), x, d.y.get(), dy, d.conv[kBackwardFilter].get(),
        static_cast<cudnnConvolutionBwdFilterAlgo_t>(choice.algo), workspace, bytes, &zero, d.w.get(),
        dweight));
}

// dbias[oc] = Σ over n, oh, ow of dy[n, oc, oh, ow], reduced into (1, OC, 1, 1) described by `bias_desc`
// (of dy's data type: cudnnConvolutionBackwardBias takes one type for both).
void bias_gradient(const Descriptors& d, cudnnHandle_t handle, const void* dy,
                   cudnnTensorDescriptor_t bias_desc, void* dbias) {
    const float one = 1.0f, zero = 0.0f;
    CUDACNN_CUDNN_CHECK(cudnnConvolutionBackwardBias(handle, &one, d.y.get(), dy, &zero, bias_desc, dbias));
}

void check_forward_pointers(const void* x, const void* weight, const void* y) {
    CUDACNN_CHECK(x != nullptr && weight != nullptr && y != nullptr,
                  "cudnn_conv2d forward: x ({}), weight ({}) and y ({}) must be device pointers", x, weight,
                  y);
}

void check_backward_data_pointers(const void* dy, const void* weight, const void* dx) {
    CUDACNN_CHECK(dy != nullptr && weight != nullptr && dx != nullptr,
                  "cudnn_conv2d backward_data: dy ({}), weight ({}) and dx ({}) must be device pointers", dy,
                  weight, dx);
}

void check_backward_filter_pointers(const void* x, const void* dy, const void* dweight, const void* dbias) {
    CUDACNN_CHECK(dy != nullptr && (dweight == nullptr || x != nullptr),
                  "cudnn_conv2d backward_filter: dy ({}) and, for dweight, x ({}) must be device pointers",
                  dy, x);
    CUDACNN_CHECK(
        dweight != nullptr || dbias != nullptr,
        "cudnn_conv2d backward_filter: dweight and dbias are both null; there is nothing to compute");
}

}  // namespace

void CudnnConv2d::forward(const float* x, const float* weight, const float* bias, float* y, void* workspace,
                          size_t bytes, cudaStream_t stream) const {
    const State& s = state();
    s.check_type("forward", DType::f32);
    check_forward_pointers(x, weight, y);
    check_workspace("forward", kForward, s.choice[kForward], s.pass_bytes(kForward), workspace, bytes);
    const cudnnHandle_t handle = handle_on(stream);
    convolve(s.desc, s.choice[kForward], handle, x, weight, y, workspace, bytes);
    // y += bias, broadcast from (1, OC, 1, 1) over N, OH and OW.
    if (bias != nullptr) {
        const float one = 1.0f;
        CUDACNN_CUDNN_CHECK(cudnnAddTensor(handle, &one, s.desc.bias.get(), bias, &one, s.desc.y.get(), y));
    }
}

void CudnnConv2d::backward_data(const float* dy, const float* weight, float* dx, void* workspace,
                                size_t bytes, cudaStream_t stream) const {
    const State& s = state();
    s.check_type("backward_data", DType::f32);
    check_backward_data_pointers(dy, weight, dx);
    check_workspace("backward_data", kBackwardData, s.choice[kBackwardData], s.pass_bytes(kBackwardData),
                    workspace, bytes);
    data_gradient(s.desc, s.choice[kBackwardData], handle_on(stream), dy, weight, dx, workspace, bytes);
}

void CudnnConv2d::backward_filter(const float* x, const float* dy, float* dweight, float* dbias,
                                  void* workspace, size_t bytes, cudaStream_t stream) const {
    const State& s = state();
    s.check_type("backward_filter", DType::f32);
    check_backward_filter_pointers(x, dy, dweight, dbias);
    const cudnnHandle_t handle = handle_on(stream);
    if (dweight != nullptr) {
        check_workspace("backward_filter", kBackwardFilter, s.choice[kBackwardFilter],
                        s.pass_bytes(kBackwardFilter), workspace, bytes);
        filter_gradient(s.desc, s.choice[kBackwardFilter], handle, x, dy, dweight, workspace, bytes);
    }
    if (dbias != nullptr) bias_gradient(s.desc, handle, dy, s.desc.bias.get(), dbias);
}

void CudnnConv2d::forward(const bf16* x, const bf16* weight, const float* bias, bf16* y, void* workspace,
                          size_t bytes, cudaStream_t stream) const {
    const State& s = state();
    s.check_type("forward", DType::bf16);
    check_forward_pointers(x, weight, y);
    check_workspace("forward", kForward, s.choice[kForward], s.pass_bytes(kForward), workspace, bytes);
    convolve(s.desc, s.choice[kForward], handle_on(stream), x, weight, y, workspace, bytes);
    const cpu::Conv2dGeometry& g = s.geometry;
    if (bias == nullptr) return;
    if (s.options.memory_format == MemoryFormat::nhwc) {  // channel innermost: (N·OH·OW, OC, 1)
        cudnn_bf16::add_channel_bias(y, bias, g.batch * g.out_h * g.out_w, g.out_channels, 1, stream);
    } else {
        cudnn_bf16::add_channel_bias(y, bias, g.batch, g.out_channels, g.out_h * g.out_w, stream);
    }
}

void CudnnConv2d::backward_data(const bf16* dy, const bf16* weight, bf16* dx, void* workspace, size_t bytes,
                                cudaStream_t stream) const {
    const State& s = state();
    s.check_type("backward_data", DType::bf16);
    check_backward_data_pointers(dy, weight, dx);
    check_workspace("backward_data", kBackwardData, s.choice[kBackwardData], s.pass_bytes(kBackwardData),
                    workspace, bytes);
    data_gradient(s.desc, s.choice[kBackwardData], handle_on(stream), dy, weight, dx, workspace, bytes);
}

void CudnnConv2d::backward_filter(const bf16* x, const bf16* dy, float* dweight, float* dbias,
                                  void* workspace, size_t bytes, cudaStream_t stream) const {
    const State& s = state();
    s.check_type("backward_filter", DType::bf16);
    check_backward_filter_pointers(x, dy, dweight, dbias);
    // Workspace: [dw staging (bf16)] [the algorithm's workspace]; dbias alone needs none.
    const size_t staging = s.dw_staging;
    check_workspace("backward_filter", kBackwardFilter, s.choice[kBackwardFilter],
                    dweight != nullptr ? s.pass_bytes(kBackwardFilter) : 0, workspace, bytes);
    unsigned char* base = static_cast<unsigned char*>(workspace);
    bf16* dw_stage = reinterpret_cast<bf16*>(base);
    const cpu::Conv2dGeometry& g = s.geometry;
    if (dweight != nullptr) {
        filter_gradient(s.desc, s.choice[kBackwardFilter], handle_on(stream), x, dy, dw_stage, base + staging,
                        bytes - staging);
        cast(dw_stage, dweight, g.out_channels * g.in_channels_per_group() * g.kernel_h * g.kernel_w, stream);
    }
    // Our own FP32 sums of the bf16 dy (cudnnConvolutionBackwardBias would write dbias in dy's type, bf16).
    if (dbias != nullptr)
        conv_bias_grad(dy, dbias, g.batch, g.out_channels, g.out_h, g.out_w, stream, s.options.memory_format);
}

size_t cudnn_benchmark_cache_entries() {
    return BenchmarkCache::instance().size();
}

}  // namespace cudacnn::gpu
