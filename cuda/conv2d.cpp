// conv2d on the device: choosing among cuDNN, the direct kernels and im2col + GEMM, and dispatching to them.
#include "cuda/conv2d.hpp"

#include <algorithm>
#include <utility>

#include "cuda/conv2d_direct.hpp"
#include "cuda/conv2d_im2col.hpp"
#include "cuda/conv2d_implicit.hpp"
#include "cuda/conv2d_winograd.hpp"
#include "cudacnn/error.hpp"
#if CUDACNN_CUDA
#include "cuda/vendor/cudnn_conv2d.hpp"
#endif

namespace cudacnn::gpu {

#if CUDACNN_CUDA
struct Conv2dPlan::Cudnn {
    CudnnConv2d conv;
};
#else
struct Conv2dPlan::Cudnn {};  // never created: cuDNN is not part of the emu flavour
#endif

const char* conv_algo_name(ConvAlgo algo) {
    switch (algo) {
        case ConvAlgo::automatic:
            return "auto";
        case ConvAlgo::cudnn:
            return "cudnn";
        case ConvAlgo::direct:
            return "direct";
        case ConvAlgo::im2col:
            return "im2col";
        case ConvAlgo::implicit:
            return "implicit";
        case ConvAlgo::winograd:
            return "winograd";
        case ConvAlgo::winograd4:
            return "winograd4";
        case ConvAlgo::own:
            return "own";
        case ConvAlgo::fastest:
            return "fastest";
    }
    return "invalid";
}

size_t resolve_workspace_limit(size_t requested) {
    if (requested != kWorkspaceLimitAuto) return requested;
    size_t free_bytes = 0, total_bytes = 0;
    CUDACNN_CUDA_CHECK(cudaMemGetInfo(&free_bytes, &total_bytes));
    return std::max(free_bytes / 8, kMinAutoWorkspaceLimit);
}

ConvAlgo parse_conv_algo(const std::string& name) {
    for (ConvAlgo algo : {ConvAlgo::automatic, ConvAlgo::cudnn, ConvAlgo::direct, ConvAlgo::im2col,
                          ConvAlgo::implicit, ConvAlgo::winograd, ConvAlgo::winograd4, ConvAlgo::own,
                          ConvAlgo::fastest}) {
        if (name == conv_algo_name(algo)) return algo;
    }
    CUDACNN_FAIL(
        "conv algorithm '{}' is not one of auto, cudnn, direct, im2col, implicit, winograd, winograd4, own, fastest",
        name);
}

std::string conv2d_unsupported(ConvAlgo algo, const cpu::Conv2dGeometry& g) {
    switch (algo) {
        case ConvAlgo::cudnn:
#if CUDACNN_CUDA
            return conv2d_cudnn_unsupported(g);
#else
            return "cuDNN is not part of the emu flavour (build with -DCUDACNN_FLAVOUR=cuda)";
#endif
        case ConvAlgo::direct:
            return conv2d_direct_unsupported(g);
        case ConvAlgo::im2col:
            return conv2d_im2col_unsupported(g);
        case ConvAlgo::implicit:
            return conv2d_implicit_unsupported(g);
        case ConvAlgo::winograd:
            return conv2d_winograd_unsupported(g, WinogradTile::f2x2);
        case ConvAlgo::winograd4:
            return conv2d_winograd_unsupported(g, WinogradTile::f4x4);
        case ConvAlgo::automatic:
        case ConvAlgo::own:
        case ConvAlgo::fastest:
            break;
    }
    CUDACNN_FAIL(
        "conv2d_unsupported: ask about one algorithm (cudnn, direct, im2col, implicit, winograd or winograd4), "
        "not '{}'",
        conv_algo_name(algo));
}

namespace {

WinogradTile winograd_tile(ConvAlgo algo) {
    return algo == ConvAlgo::winograd4 ? WinogradTile::f4x4 : WinogradTile::f2x2;
}

// The algorithm `automatic` stands for, and why the better ones were passed over ("" when none was).
std::pair<ConvAlgo, std::string> choose_automatically(const cpu::Conv2dGeometry& g) {
    std::string passed_over;
    for (ConvAlgo algo : {ConvAlgo::cudnn, ConvAlgo::im2col, ConvAlgo::direct}) {
        const std::string why_not = conv2d_unsupported(algo, g);
        if (why_not.empty()) return {algo, passed_over};
        passed_over +=
            fmt::format("{}{}: {}", passed_over.empty() ? "" : "; ", conv_algo_name(algo), why_not);
    }
    CUDACNN_FAIL("conv2d: no algorithm computes this geometry: {}", passed_over);
}

// Below this many input channels per group, Winograd's tile transforms cost more than its 2.25× fewer
// multiplies save: on the H200 of 2026-11-27 the 3→32 layer (32×32, batch 128) took 77 / 92 / 318 µs
// (forward / backward-data / backward-filter) with Winograd against 39 / 165 / 233 with the implicit GEMM,
// while Winograd was the fastest hand-written algorithm on every layer of 32 channels or more.
constexpr int64_t kWinogradMinChannels = 16;

// The algorithm `own` stands for: the fastest hand-written one that computes g (Winograd where it applies
// and pays, else the implicit GEMM, else im2col + GEMM, else the direct kernels), and why the faster ones
// were passed over ("" when none was).
std::pair<ConvAlgo, std::string> choose_own(const cpu::Conv2dGeometry& g) {
    std::string passed_over;
    for (ConvAlgo algo : {ConvAlgo::winograd, ConvAlgo::implicit, ConvAlgo::im2col, ConvAlgo::direct}) {
        std::string why_not = conv2d_unsupported(algo, g);
        if (why_not.empty() && algo == ConvAlgo::winograd && g.in_channels_per_group() < kWinogradMinChannels) {
            why_not = fmt::format("{} input channels per group, fewer than the {} where it pays",
                                  g.in_channels_per_group(), kWinogradMinChannels);
        }
        if (why_not.empty()) return {algo, passed_over};
        passed_over +=
            fmt::format("{}{}: {}", passed_over.empty() ? "" : "; ", conv_algo_name(algo), why_not);
    }
    CUDACNN_FAIL("conv2d: no hand-written algorithm computes this geometry: {}", passed_over);
}

// bf16 tensors or NHWC activations, which only cuDNN and the implicit GEMM compute: what the plan needs that
// the other kernels lack, the option that asked for it and the one to use instead, for the messages.
struct Restriction {
    std::string kernels;      // e.g. "bf16 kernels", "NHWC kernels", "bf16 NHWC kernels"
    std::string flag;         // e.g. "--precision bf16"
    std::string alternative;  // e.g. "--precision fp32 or tf32"
};

Restriction restriction_of(DType dtype, MemoryFormat format) {
    const bool bf16 = dtype == DType::bf16, nhwc = format == MemoryFormat::nhwc;
    Restriction r;
    r.kernels = std::string(bf16 ? "bf16 " : "") + (nhwc ? "NHWC " : "") + "kernels";
    r.flag = bf16 && nhwc ? "--precision bf16 --memory-format nhwc"
             : bf16       ? "--precision bf16"
                          : "--memory-format nhwc";
    r.alternative = bf16 && nhwc ? "--precision fp32 --memory-format nchw"
                    : bf16       ? "--precision fp32 or tf32"
                                 : "--memory-format nchw";
    return r;
}

// The algorithm with such kernels that `requested` stands for, and what was passed over.
std::pair<ConvAlgo, std::string> choose_cudnn_or_implicit(ConvAlgo requested, const cpu::Conv2dGeometry& g,
                                                          const Restriction& r) {
    const std::string implicit_why_not = conv2d_unsupported(ConvAlgo::implicit, g);
    switch (requested) {
        case ConvAlgo::automatic: {
            const std::string cudnn_why_not = conv2d_unsupported(ConvAlgo::cudnn, g);
            if (cudnn_why_not.empty()) return {ConvAlgo::cudnn, ""};
            CUDACNN_CHECK(
                implicit_why_not.empty(),
                "conv2d: no algorithm with {} computes this layer (cudnn: {}; implicit: {}); use {}",
                r.kernels, cudnn_why_not, implicit_why_not, r.alternative);
            return {ConvAlgo::implicit, "cudnn: " + cudnn_why_not};
        }
        case ConvAlgo::own:
            CUDACNN_CHECK(
                implicit_why_not.empty(),
                "conv2d: --conv-algo own has {} in the implicit GEMM only, which cannot compute this "
                "layer: {}; use --conv-algo auto or {}",
                r.kernels, implicit_why_not, r.alternative);
            return {ConvAlgo::implicit, "winograd, im2col, direct: no " + r.kernels};
        case ConvAlgo::cudnn:
        case ConvAlgo::implicit: {
            const std::string why_not = conv2d_unsupported(requested, g);
            CUDACNN_CHECK(why_not.empty(), "conv2d: --conv-algo {} cannot compute this layer: {}; choose another "
                          "algorithm or auto", conv_algo_name(requested), why_not);
            return {requested, ""};
        }
        case ConvAlgo::direct:
        case ConvAlgo::im2col:
        case ConvAlgo::winograd:
        case ConvAlgo::winograd4:
        case ConvAlgo::fastest:  // handled before (it times cuDNN and implicit)
            break;
    }
    CUDACNN_FAIL("conv2d: --conv-algo {} has no {}; with {} choose auto, cudnn, implicit, own or fastest",
                 conv_algo_name(requested), r.kernels, r.flag);
}

}  // namespace

Conv2dPlan::Conv2dPlan(const cpu::Conv2dGeometry& g, const Conv2dSettings& settings, cudaStream_t stream)
    : geometry_(g), dtype_(settings.dtype), memory_format_(settings.memory_format) {
    CUDACNN_CHECK(dtype_ == DType::f32 || dtype_ == DType::bf16,
                  "conv2d: tensors of type {} are not supported; f32 or bf16", dtype_);
    std::string passed_over;
    if (settings.algo == ConvAlgo::fastest) {
        choose_fastest(settings, stream);  // cuda/conv2d_fastest.cpp; bf16 and NHWC time cuDNN and implicit
        return;
    } else if (dtype_ == DType::bf16 || memory_format_ == MemoryFormat::nhwc) {
        std::tie(algo_, passed_over) =
            choose_cudnn_or_implicit(settings.algo, g, restriction_of(dtype_, memory_format_));
    } else if (settings.algo == ConvAlgo::automatic) {
        std::tie(algo_, passed_over) = choose_automatically(g);
    } else if (settings.algo == ConvAlgo::own) {
        std::tie(algo_, passed_over) = choose_own(g);
    } else {
        algo_ = settings.algo;
        const std::string why_not = conv2d_unsupported(algo_, g);
        CUDACNN_CHECK(why_not.empty(),
                      "conv2d: --conv-algo {} cannot compute this layer: {}; choose another "
                      "algorithm or auto",
                      conv_algo_name(algo_), why_not);
    }
    if (algo_ == ConvAlgo::cudnn) {
        const std::string why_not = make_cudnn(settings, stream);
        // auto with bf16 or NHWC: cuDNN may offer no algorithm for the mix of types and layouts (bf16 below
        // compute capability 8.0; NHWC activations with the NCHW filter): the implicit GEMM then, visibly.
        const bool restricted = dtype_ == DType::bf16 || memory_format_ == MemoryFormat::nhwc;
        if (!why_not.empty()) {
            CUDACNN_CHECK(settings.algo == ConvAlgo::automatic && restricted &&
                              conv2d_unsupported(ConvAlgo::implicit, g).empty(),
                          "{}", why_not);
            algo_ = ConvAlgo::implicit;
            passed_over = "cudnn: " + why_not;
        }
    }
    description_ = conv_algo_name(algo_);
    if (memory_format_ == MemoryFormat::nhwc) description_ += " nhwc";
    switch (algo_) {
        case ConvAlgo::cudnn:
#if CUDACNN_CUDA
            workspace_bytes_ = cudnn_->conv.workspace_bytes();
            description_ += " " + cudnn_->conv.describe();
#endif
            break;
        case ConvAlgo::im2col:
            workspace_bytes_ = conv2d_im2col_workspace_bytes(g);
            break;
        case ConvAlgo::implicit:
            workspace_bytes_ = conv2d_implicit_workspace_bytes(g);
            // bf16: the bf16 calls take their tensor-core kernel where it runs (the TF32 one reads floats).
            implicit_tf32_ = dtype_ == DType::f32 && settings.allow_tf32 && conv2d_implicit_tf32_available();
            if (dtype_ == DType::bf16) {
                description_ += conv2d_implicit_bf16_tensor_cores_available()
                                    ? " (bf16 tensor cores)"
                                    : " (bf16 on CUDA cores: tensor cores need CUDACNN_IMPLICIT_BF16_MMA and "
                                      "compute capability 8.0)";
            } else if (implicit_tf32_) {
                description_ += " (TF32 tensor cores)";
            } else if (settings.allow_tf32) {
                description_ +=
                    " (FP32: TF32 tensor cores need CUDACNN_IMPLICIT_TF32 and compute "
                    "capability 8.0)";
            }
            break;
        case ConvAlgo::winograd:
        case ConvAlgo::winograd4:
            workspace_bytes_ = conv2d_winograd_workspace_bytes(g, winograd_tile(algo_));
            break;
        case ConvAlgo::direct:
            workspace_bytes_ = conv2d_direct_workspace_bytes(g);
            break;
        case ConvAlgo::automatic:  // resolved by the constructor, as are own and fastest
        case ConvAlgo::own:
        case ConvAlgo::fastest:
            break;
    }
    (void)stream;
    if (!passed_over.empty()) {
        description_ += fmt::format(" ({}; passed over {})", conv_algo_name(settings.algo), passed_over);
    }
}

std::string Conv2dPlan::make_cudnn(const Conv2dSettings& settings, cudaStream_t stream) {
#if CUDACNN_CUDA
    CudnnConvOptions options{settings.allow_tf32, settings.benchmark, settings.workspace_limit_bytes};
    options.data_type = dtype_;
    options.memory_format = memory_format_;
    try {
        cudnn_ = std::make_unique<Cudnn>(Cudnn{CudnnConv2d(geometry_, options, stream)});
    } catch (const Error& e) {
        return e.what();
    }
    return "";
#else
    (void)settings;
    (void)stream;
    return "cuDNN is not part of the emu flavour";  // never reached: choose_* checked conv2d_unsupported
#endif
}

Conv2dPlan::~Conv2dPlan() = default;
Conv2dPlan::Conv2dPlan(Conv2dPlan&&) noexcept = default;
Conv2dPlan& Conv2dPlan::operator=(Conv2dPlan&&) noexcept = default;

ConvAlgo Conv2dPlan::algorithm(Pass pass) const {
    const auto& part = by_pass_[static_cast<size_t>(pass)];
    return part ? part->algorithm(pass) : algo_;
}

void Conv2dPlan::check_dtype(DType wanted, const char* pass) const {
    CUDACNN_CHECK(dtype_ == wanted, "conv2d: the {} pass on {} tensors, but the plan was made for {} (an executor "
                  "bug: a layer's plan and its activations must agree)", pass, wanted, dtype_);
}

void Conv2dPlan::forward(const float* x, const float* w, const float* bias, float* y, void* workspace,
                         cudaStream_t stream) const {
    check_dtype(DType::f32, "forward");
    if (const auto& part = by_pass_[static_cast<size_t>(Pass::forward)]) {
        return part->forward(x, w, bias, y, workspace, stream);
    }
    switch (algo_) {
        case ConvAlgo::cudnn:
#if CUDACNN_CUDA
            cudnn_->conv.forward(x, w, bias, y, workspace, workspace_bytes_, stream);
#endif
            return;
        case ConvAlgo::im2col:
            return conv2d_im2col_forward(geometry_, x, w, bias, y, workspace, workspace_bytes_, stream);
        case ConvAlgo::implicit:
            return conv2d_implicit_forward(geometry_, x, w, bias, y, workspace, workspace_bytes_, stream,
                                           implicit_tf32_, memory_format_);
        case ConvAlgo::winograd:
        case ConvAlgo::winograd4:
            return conv2d_winograd_forward(geometry_, x, w, bias, y, workspace, workspace_bytes_, stream,
                                           winograd_tile(algo_));
        case ConvAlgo::direct:
        case ConvAlgo::automatic:  // resolved by the constructor, as are own and fastest
        case ConvAlgo::own:
        case ConvAlgo::fastest:
            return conv2d_direct_forward(geometry_, x, w, bias, y, stream);
    }
}

void Conv2dPlan::backward_data(const float* dy, const float* w, float* dx, void* workspace,
                               cudaStream_t stream) const {
    check_dtype(DType::f32, "backward-data");
    if (const auto& part = by_pass_[static_cast<size_t>(Pass::backward_data)]) {
        return part->backward_data(dy, w, dx, workspace, stream);
    }
    switch (algo_) {
        case ConvAlgo::cudnn:
#if CUDACNN_CUDA
            cudnn_->conv.backward_data(dy, w, dx, workspace, workspace_bytes_, stream);
#endif
            return;
        case ConvAlgo::im2col:
            return conv2d_im2col_backward_data(geometry_, dy, w, dx, workspace, workspace_bytes_, stream);
        case ConvAlgo::implicit:
            return conv2d_implicit_backward_data(geometry_, dy, w, dx, workspace, workspace_bytes_, stream,
                                                 implicit_tf32_, memory_format_);
        case ConvAlgo::winograd:
        case ConvAlgo::winograd4:
            return conv2d_winograd_backward_data(geometry_, dy, w, dx, workspace, workspace_bytes_, stream,
                                                 winograd_tile(algo_));
        case ConvAlgo::direct:
        case ConvAlgo::automatic:  // resolved by the constructor, as are own and fastest
        case ConvAlgo::own:
        case ConvAlgo::fastest:
            return conv2d_direct_backward_data(geometry_, dy, w, dx, stream);
    }
}

void Conv2dPlan::backward_filter(const float* x, const float* dy, float* dw, float* dbias, void* workspace,
                                 cudaStream_t stream) const {
    check_dtype(DType::f32, "backward-filter");
    if (const auto& part = by_pass_[static_cast<size_t>(Pass::backward_filter)]) {
        return part->backward_filter(x, dy, dw, dbias, workspace, stream);
    }
    switch (algo_) {
        case ConvAlgo::cudnn:
#if CUDACNN_CUDA
            cudnn_->conv.backward_filter(x, dy, dw, dbias, workspace, workspace_bytes_, stream);
#endif
            return;
        case ConvAlgo::im2col:
            return conv2d_im2col_backward_filter(geometry_, x, dy, dw, dbias, workspace, workspace_bytes_,
                                                 stream);
        case ConvAlgo::implicit:
            return conv2d_implicit_backward_filter(geometry_, x, dy, dw, dbias, workspace, workspace_bytes_,
                                                   stream, implicit_tf32_, memory_format_);
        case ConvAlgo::winograd:
        case ConvAlgo::winograd4:
            return conv2d_winograd_backward_filter(geometry_, x, dy, dw, dbias, workspace, workspace_bytes_,
                                                   stream, winograd_tile(algo_));
        case ConvAlgo::direct:
        case ConvAlgo::automatic:  // resolved by the constructor, as are own and fastest
        case ConvAlgo::own:
        case ConvAlgo::fastest:
            return conv2d_direct_backward_filter(geometry_, x, dy, dw, dbias, workspace, workspace_bytes_,
                                                 stream);
    }
}

// ---- the forward with a following batch norm's statistics ----

int Conv2dPlan::bn_statistics_partials() const {
    if (const auto& part = by_pass_[static_cast<size_t>(Pass::forward)])
        return part->bn_statistics_partials();
    if (algo_ != ConvAlgo::implicit || implicit_tf32_) return 0;
    return conv2d_implicit_forward_stats_partials(geometry_);
}

size_t Conv2dPlan::bn_statistics_bytes() const {
    return bn_statistics_partials() == 0 ? 0 : conv2d_implicit_forward_stats_bytes(geometry_);
}

void Conv2dPlan::check_bn_statistics() const {
    CUDACNN_CHECK(bn_statistics_partials() > 0,
                  "conv2d: the forward with batch norm statistics needs the implicit "
                  "GEMM in FP32 or bf16 arithmetic, but this plan runs {} (an executor bug: ask "
                  "bn_statistics_partials() first)",
                  description_);
}

void Conv2dPlan::forward_with_bn_statistics(const float* x, const float* w, const float* bias, float* y,
                                            BatchNorm2dPartialStats* stats, size_t stats_bytes,
                                            void* workspace, cudaStream_t stream) const {
    check_dtype(DType::f32, "forward");
    if (const auto& part = by_pass_[static_cast<size_t>(Pass::forward)]) {
        return part->forward_with_bn_statistics(x, w, bias, y, stats, stats_bytes, workspace, stream);
    }
    check_bn_statistics();
    conv2d_implicit_forward_with_stats(geometry_, x, w, bias, y, stats, stats_bytes, workspace,
                                       workspace_bytes_, stream, memory_format_);
}

void Conv2dPlan::forward_with_bn_statistics(const bf16* x, const bf16* w, const float* bias, bf16* y,
                                            BatchNorm2dPartialStats* stats, size_t stats_bytes,
                                            void* workspace, cudaStream_t stream) const {
    check_dtype(DType::bf16, "forward");
    if (const auto& part = by_pass_[static_cast<size_t>(Pass::forward)]) {
        return part->forward_with_bn_statistics(x, w, bias, y, stats, stats_bytes, workspace, stream);
    }
    check_bn_statistics();
    conv2d_implicit_forward_with_stats(geometry_, x, w, bias, y, stats, stats_bytes, workspace,
                                       workspace_bytes_, stream, memory_format_);
}

// ---- bf16: cuDNN or the implicit GEMM (choose_cudnn_or_implicit and fastest allow no other) ----

void Conv2dPlan::forward(const bf16* x, const bf16* w, const float* bias, bf16* y, void* workspace,
                         cudaStream_t stream) const {
    check_dtype(DType::bf16, "forward");
    if (const auto& part = by_pass_[static_cast<size_t>(Pass::forward)]) {
        return part->forward(x, w, bias, y, workspace, stream);
    }
    if (algo_ == ConvAlgo::cudnn) {
#if CUDACNN_CUDA
        cudnn_->conv.forward(x, w, bias, y, workspace, workspace_bytes_, stream);
#endif
        return;
    }
    conv2d_implicit_forward(geometry_, x, w, bias, y, workspace, workspace_bytes_, stream, memory_format_);
}

void Conv2dPlan::backward_data(const bf16* dy, const bf16* w, bf16* dx, void* workspace, cudaStream_t stream) const {
    check_dtype(DType::bf16, "backward-data");
    if (const auto& part = by_pass_[static_cast<size_t>(Pass::backward_data)]) {
        return part->backward_data(dy, w, dx, workspace, stream);
    }
    if (algo_ == ConvAlgo::cudnn) {
#if CUDACNN_CUDA
        cudnn_->conv.backward_data(dy, w, dx, workspace, workspace_bytes_, stream);
#endif
        return;
    }
    conv2d_implicit_backward_data(geometry_, dy, w, dx, workspace, workspace_bytes_, stream, memory_format_);
}

void Conv2dPlan::backward_filter(const bf16* x, const bf16* dy, float* dw, float* dbias, void* workspace,
                                 cudaStream_t stream) const {
    check_dtype(DType::bf16, "backward-filter");
    if (const auto& part = by_pass_[static_cast<size_t>(Pass::backward_filter)]) {
        return part->backward_filter(x, dy, dw, dbias, workspace, stream);
    }
    if (algo_ == ConvAlgo::cudnn) {
#if CUDACNN_CUDA
        cudnn_->conv.backward_filter(x, dy, dw, dbias, workspace, workspace_bytes_, stream);
#endif
        return;
    }
    conv2d_implicit_backward_filter(geometry_, x, dy, dw, dbias, workspace, workspace_bytes_, stream,
                                    memory_format_);
}

}  // namespace cudacnn::gpu
