// conv2d on the device: one plan per layer that runs cuDNN, the direct kernels or im2col + GEMM, chosen
// explicitly and visibly (an algorithm that cannot compute a geometry is never used silently).
#pragma once

#include <cuda_runtime_api.h>

#include <array>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

#include "cuda/batch_norm.hpp"
#include "cuda/bf16.cuh"
#include "cudacnn/memory_format.hpp"
#include "cudacnn/ops/conv2d.hpp"
#include "cudacnn/tensor.hpp"

namespace cudacnn::gpu {

// The algorithms, as the trainer's --conv-algo names them.
// own: the hand-written kernels only, the fastest that computes each layer (Winograd for 3×3 stride-1 layers
// of 16 or more input channels, else the implicit GEMM, else im2col, else direct).
// fastest: each pass of each layer by the algorithm that ran it fastest when timed (see Conv2dPlan).
// winograd: F(2×2, 3×3); winograd4: F(4×4, 3×3) (cuda/conv2d_winograd.hpp).
enum class ConvAlgo { automatic, cudnn, direct, im2col, implicit, winograd, winograd4, own, fastest };

// "auto", "cudnn", "direct", "im2col", "implicit", "winograd", "winograd4", "own", "fastest"
const char* conv_algo_name(ConvAlgo algo);
// The algorithm named `name`; throws Error naming the value and the choices.
ConvAlgo parse_conv_algo(const std::string& name);

// Empty when `algo` (not automatic, own or fastest) computes geometry g in this build, else one sentence saying why not
// (e.g. cuDNN is not part of the emu flavour, or pads with zeros only).
std::string conv2d_unsupported(ConvAlgo algo, const cpu::Conv2dGeometry& g);

struct Conv2dSettings {
    ConvAlgo algo = ConvAlgo::automatic;
    // TF32 tensor cores for cuDNN (see cuda/vendor/cudnn_conv2d.hpp) and the implicit GEMM (see
    // cuda/conv2d_implicit.hpp), off for parity; cuDNN only: benchmark with cudnnFind*; the largest
    // workspace an algorithm may ask for.
    bool allow_tf32 = false;
    bool benchmark = false;
    size_t workspace_limit_bytes = size_t{256} << 20;
    // The type of x, w, y and their gradients (--precision bf16: DType::bf16). bf16 runs on cuDNN and the
    // implicit GEMM only (auto: cuDNN where it is built, else implicit; own: implicit; fastest: whichever of
    // the two is faster, pass by pass); the other hand-written kernels are f32 only and say so.
    DType dtype = DType::f32;
    // Where x, y, dy and dx lie (--memory-format nhwc: channels_last); the weights stay (OC, C/G, KH, KW).
    // NHWC runs on cuDNN and the implicit GEMM only, as bf16 does (auto: cuDNN where it is built, else
    // implicit; own: implicit; fastest: the faster of the two); the other hand-written kernels are NCHW only
    // and say so. For
    // either, auto also takes the implicit GEMM where cuDNN is built but offers no algorithm for the layer
    // (bf16 below compute capability 8.0, NHWC activations with our NCHW filter), and description() says why.
    MemoryFormat memory_format = MemoryFormat::nchw;
};

// The workspace limit for a run's convolutions: `requested`, or for kWorkspaceLimitAuto an eighth of the device
// memory free now, at least kMinAutoWorkspaceLimit. The executor's memory plan lets the layers' workspaces share
// memory (each lives for one pass), so the run pays for the largest one only, and a generous limit is what makes
// large layers fast: VGG16 at batch 64 on an H200 ran 55.6 ms per TF32 inference step with 256 MiB (cuDNN's
// heuristics then fell back to IMPLICIT_GEMM on the 224×224 and 112×112 layers) and 13.8 ms with 16 GiB
// (PyTorch, which caps nothing, 14.3). An eighth leaves the rest for activations, gradients and other processes.
constexpr size_t kWorkspaceLimitAuto = SIZE_MAX;
constexpr size_t kMinAutoWorkspaceLimit = size_t{256} << 20;
size_t resolve_workspace_limit(size_t requested);

// The algorithm for one convolution geometry, with what it needs (cuDNN descriptors, workspace size).
// `automatic` picks cuDNN where it is built and supports g, else im2col + GEMM (faster than the direct
// kernels on large layers), else direct; description() says what was chosen and, for a fallback, why. The
// implicit-GEMM kernels (cuda/conv2d_implicit.hpp) and the Winograd F(2×2, 3×3) and F(4×4, 3×3) ones
// (cuda/conv2d_winograd.hpp) run when asked for by name, or per layer through `own` (F(2×2) only until F(4×4)
// is measured on a GPU; description() then names the choice and why faster ones were passed over). An explicitly requested algorithm that cannot
// compute g throws Error with the reason.
//
// `fastest` times every algorithm that computes g (cuDNN benchmarked with cudnnFind where it is built, both
// Winograd tiles, the implicit GEMM, im2col, and the direct kernels' backward-filter; their other passes only when none of those
// computes g) on scratch buffers, each pass once to warm up and then three times, and runs each pass with the
// algorithm of the smallest time: the passes may differ.
// Each candidate's workspace is allocated only while it is timed; one that does not fit in free memory is left
// out. Timing blocks the host (tens of milliseconds per layer on a GPU; far longer under the emulator); the choice
// is cached for the process by geometry, TF32 and device, like cudnnFind's. description() lists each pass's
// choice and the times of all candidates. Every candidate is deterministic, so the run is as reproducible as
// its choices (which, like cuDNN's benchmark mode, may differ between runs).
class Conv2dPlan {
  public:
    Conv2dPlan(const cpu::Conv2dGeometry& g, const Conv2dSettings& settings, cudaStream_t stream);
    ~Conv2dPlan();
    Conv2dPlan(Conv2dPlan&&) noexcept;
    Conv2dPlan& operator=(Conv2dPlan&&) noexcept;
    Conv2dPlan(const Conv2dPlan&) = delete;
    Conv2dPlan& operator=(const Conv2dPlan&) = delete;

    const cpu::Conv2dGeometry& geometry() const { return geometry_; }
    enum class Pass { forward, backward_data, backward_filter };
    // The algorithm of the forward pass (every pass's, except with `fastest`).
    ConvAlgo algorithm() const { return algorithm(Pass::forward); }
    ConvAlgo algorithm(Pass pass) const;
    // e.g. "im2col (auto: cudnn: padding_mode 'reflect' ...)", "cudnn fwd IMPLICIT_PRECOMP_GEMM, ..." or
    // "implicit (TF32 tensor cores)" (bf16: "implicit (bf16 tensor cores)" where the implicit GEMM's bf16
    // calls run on them, cuda/conv2d_implicit.hpp).
    const std::string& description() const { return description_; }
    // The workspace every pass may use (one buffer serves all three); for the direct kernels only their tiled
    // backward-filter's partial sums (0 where it does not apply).
    size_t workspace_bytes() const { return workspace_bytes_; }

    // The three passes with the semantics of cpu::conv2d / conv2d_backward; all device pointers, outputs
    // overwritten. x (N, C, H, W), w (OC, C/G, KH, KW), bias (OC) or nullptr, y/dy (N, OC, OH, OW);
    // dbias (OC) or nullptr. `workspace` holds workspace_bytes() bytes (nullptr when that is 0).
    void forward(const float* x, const float* w, const float* bias, float* y, void* workspace,
                 cudaStream_t stream) const;
    void backward_data(const float* dy, const float* w, float* dx, void* workspace,
                       cudaStream_t stream) const;
    void backward_filter(const float* x, const float* dy, float* dw, float* dbias, void* workspace,
                         cudaStream_t stream) const;
    // The same on bf16 tensors, for a plan made with dtype bf16 (each set throws Error on a plan of the
    // other type): x, w (the bf16 copy of the weight), y, dy, dx bf16; bias, dw and dbias float.
    void forward(const bf16* x, const bf16* w, const float* bias, bf16* y, void* workspace,
                 cudaStream_t stream) const;
    void backward_data(const bf16* dy, const bf16* w, bf16* dx, void* workspace, cudaStream_t stream) const;
    void backward_filter(const bf16* x, const bf16* dy, float* dw, float* dbias, void* workspace,
                         cudaStream_t stream) const;
    DType dtype() const { return dtype_; }
    MemoryFormat memory_format() const { return memory_format_; }

    // The forward that also writes the per-channel partial statistics of y that a following batch norm
    // reads instead of its own statistics pass (conv2d_implicit_forward_with_stats, cuda/conv2d_implicit.hpp;
    // the batch norm side is batch_norm2d_from_partials). Only where the forward pass runs the implicit GEMM
    // in FP32 or bf16 arithmetic: its TF32 kernel, cuDNN and the other kernels have no such epilogue.
    // bn_statistics_partials(): the partials per channel (0 where this plan's forward cannot write them);
    // bn_statistics_bytes(): what `stats` must hold (0 likewise). y is bit for bit forward()'s.
    int bn_statistics_partials() const;
    size_t bn_statistics_bytes() const;
    void forward_with_bn_statistics(const float* x, const float* w, const float* bias, float* y,
                                    BatchNorm2dPartialStats* stats, size_t stats_bytes, void* workspace,
                                    cudaStream_t stream) const;
    void forward_with_bn_statistics(const bf16* x, const bf16* w, const float* bias, bf16* y,
                                    BatchNorm2dPartialStats* stats, size_t stats_bytes, void* workspace,
                                    cudaStream_t stream) const;

  private:
    struct Cudnn;  // the cuDNN state, cuda flavour only
    void choose_fastest(const Conv2dSettings& settings, cudaStream_t stream);
    // Builds cudnn_ for geometry_; "" on success, else cuDNN's reason (e.g. no algorithm qualifies).
    std::string make_cudnn(const Conv2dSettings& settings, cudaStream_t stream);
    void check_dtype(DType wanted, const char* pass) const;
    void check_bn_statistics() const;  // throws where bn_statistics_partials() is 0

    cpu::Conv2dGeometry geometry_;
    ConvAlgo algo_ = ConvAlgo::direct;
    // `fastest`: the plan that runs each pass (two passes may share one); empty otherwise.
    std::array<std::shared_ptr<const Conv2dPlan>, 3> by_pass_;
    std::string description_;
    size_t workspace_bytes_ = 0;
    bool implicit_tf32_ = false;  // the implicit GEMM runs its TF32 tensor-core kernel
    DType dtype_ = DType::f32;
    MemoryFormat memory_format_ = MemoryFormat::nchw;
    std::unique_ptr<Cudnn> cudnn_;
};

}  // namespace cudacnn::gpu
