// Conv2dPlan with `fastest` (see cuda/conv2d.hpp): time every algorithm that computes a geometry, pass by
// pass, and keep the fastest for each pass.
#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <map>
#include <mutex>
#include <vector>

#include "cuda/conv2d.hpp"
#include "cudacnn/device.hpp"
#include "cudacnn/error.hpp"

namespace cudacnn::gpu {

namespace {

using Pass = Conv2dPlan::Pass;
constexpr std::array<Pass, 3> kPasses = {Pass::forward, Pass::backward_data, Pass::backward_filter};
constexpr std::array<const char*, 3> kPassNames = {"forward", "backward-data", "backward-filter"};
constexpr int kTimedRuns = 3;  // after one warm-up run; the smallest counts (noise only ever adds time)

// The candidates, in the order that breaks ties: the vendor's first, then the hand-written ones by how often
// they won on an H200 (2026-11-27; F(4×4) Winograd, not yet measured there, after F(2×2)). The direct kernels
// are timed on backward-filter only (see timed_on).
constexpr std::array<ConvAlgo, 6> kCandidates = {ConvAlgo::cudnn,    ConvAlgo::winograd, ConvAlgo::winograd4,
                                                 ConvAlgo::implicit, ConvAlgo::im2col,   ConvAlgo::direct};

// F(4×4) Winograd's transforms amplify its products' rounding about 10× (cuda/conv2d_winograd.hpp); on TF32's
// 2^-11 that could reach ~5e-3 of a layer's outputs, beyond what --precision tf32 promises (about 1e-3).
constexpr const char* kNoWinograd4WithTf32 =
    "F(4×4)'s transforms would amplify TF32's rounding about tenfold (ask for it by name to use it)";

// Whether `algo` is timed on `pass`. The direct kernels' forward and backward-data never came near the others
// (3–10× slower on every CifarCNN layer of the H200 runs), so they are timed only when nothing else computes g;
// their backward-filter is a tiled reduction that suits layers with few channels and large maps, where the GEMM
// formulations have too small an output to fill the GPU.
bool timed_on(ConvAlgo algo, Pass pass, bool direct_only) {
    return algo != ConvAlgo::direct || direct_only || pass == Pass::backward_filter;
}

// One candidate's time on one pass, in ms.
struct Timing {
    ConvAlgo algo;
    float ms;
};

// What a geometry's timing decided, kept for the process: each pass's winner and the line that explains it.
struct Decision {
    std::array<ConvAlgo, 3> winners{};
    std::string report;
};

// Device buffers for every tensor a pass reads or writes, zero-filled (the time of these kernels does not
// depend on the values), and the workspace of the candidate being timed.
struct Scratch {
    DeviceBuffer x, w, bias, y, dx, dw, db, workspace;

    Scratch(const cpu::Conv2dGeometry& g, cudaStream_t stream)
        : x(floats(g.batch * g.in_channels * g.in_h * g.in_w)),
          w(floats(g.out_channels * g.in_channels_per_group() * g.kernel_h * g.kernel_w)),
          bias(floats(g.out_channels)),
          y(floats(g.output_shape().numel())),
          dx(floats(g.batch * g.in_channels * g.in_h * g.in_w)),
          dw(floats(g.out_channels * g.in_channels_per_group() * g.kernel_h * g.kernel_w)),
          db(floats(g.out_channels)) {
        for (DeviceBuffer* b : {&x, &w, &bias, &y}) {
            CUDACNN_CUDA_CHECK(cudaMemsetAsync(b->data(), 0, b->bytes(), stream));
        }
    }

    static size_t floats(int64_t count) { return static_cast<size_t>(count) * sizeof(float); }
};

// Runs one pass of a bf16 plan on the scratch buffers, which are large enough for either type.
void run_bf16_pass(const Conv2dPlan& plan, Pass pass, const Scratch& s, cudaStream_t stream) {
    switch (pass) {
        case Pass::forward:
            return plan.forward(s.x.data_as<bf16>(), s.w.data_as<bf16>(), s.bias.data_as<float>(),
                                s.y.data_as<bf16>(), s.workspace.data(), stream);
        case Pass::backward_data:
            return plan.backward_data(s.y.data_as<bf16>(), s.w.data_as<bf16>(), s.dx.data_as<bf16>(),
                                      s.workspace.data(), stream);
        case Pass::backward_filter:
            return plan.backward_filter(s.x.data_as<bf16>(), s.y.data_as<bf16>(), s.dw.data_as<float>(),
                                        s.db.data_as<float>(), s.workspace.data(), stream);
    }
}

// Runs one pass of `plan` on the scratch buffers (y doubles as dy: only the time matters).
void run_pass(const Conv2dPlan& plan, Pass pass, const Scratch& s, cudaStream_t stream) {
    if (plan.dtype() == DType::bf16) return run_bf16_pass(plan, pass, s, stream);
    switch (pass) {
        case Pass::forward:
            return plan.forward(s.x.data_as<float>(), s.w.data_as<float>(), s.bias.data_as<float>(),
                                s.y.data_as<float>(), s.workspace.data(), stream);
        case Pass::backward_data:
            return plan.backward_data(s.y.data_as<float>(), s.w.data_as<float>(), s.dx.data_as<float>(),
                                      s.workspace.data(), stream);
        case Pass::backward_filter:
            return plan.backward_filter(s.x.data_as<float>(), s.y.data_as<float>(), s.dw.data_as<float>(),
                                        s.db.data_as<float>(), s.workspace.data(), stream);
    }
}

// The smallest of kTimedRuns timed runs of the pass, in ms, after one warm-up run.
float time_pass(const Conv2dPlan& plan, Pass pass, const Scratch& s, cudaStream_t stream) {
    Event start, end;
    run_pass(plan, pass, s, stream);
    float best = -1.0f;
    for (int run = 0; run < kTimedRuns; ++run) {
        start.record(stream);
        run_pass(plan, pass, s, stream);
        end.record(stream);
        end.synchronize();
        const float ms = Event::elapsed_ms(start, end);
        if (best < 0.0f || ms < best) best = ms;
    }
    return best;
}

// One candidate's own plan: `algo` alone, cuDNN choosing its algorithms by time as fastest does the others.
std::shared_ptr<const Conv2dPlan> single_plan(const cpu::Conv2dGeometry& g, const Conv2dSettings& settings,
                                              ConvAlgo algo, cudaStream_t stream) {
    Conv2dSettings single = settings;
    single.algo = algo;
    single.benchmark = true;
    return std::make_shared<const Conv2dPlan>(g, single, stream);
}

// The candidates that compute g, each as its own plan (a candidate whose plan cannot be made, e.g. cuDNN with no
// algorithm within the workspace limit, is left out with the reason).
std::vector<std::pair<ConvAlgo, std::shared_ptr<const Conv2dPlan>>> candidate_plans(
    const cpu::Conv2dGeometry& g, const Conv2dSettings& settings, cudaStream_t stream,
    std::vector<std::string>* left_out) {
    std::vector<std::pair<ConvAlgo, std::shared_ptr<const Conv2dPlan>>> plans;
    // bf16 and NHWC have kernels in cuDNN and the implicit GEMM only.
    const bool restricted = settings.dtype == DType::bf16 || settings.memory_format == MemoryFormat::nhwc;
    auto add = [&](ConvAlgo algo) {
        std::string why_not = conv2d_unsupported(algo, g);
        if (why_not.empty() && algo == ConvAlgo::winograd4 && settings.allow_tf32) why_not = kNoWinograd4WithTf32;
        if (why_not.empty() && restricted && algo != ConvAlgo::cudnn && algo != ConvAlgo::implicit) {
            why_not = fmt::format("no {}{}kernels", settings.dtype == DType::bf16 ? "bf16 " : "",
                                  settings.memory_format == MemoryFormat::nhwc ? "NHWC " : "");
        }
        if (!why_not.empty()) {
            left_out->push_back(fmt::format("{}: {}", conv_algo_name(algo), why_not));
            return;
        }
        try {
            plans.emplace_back(algo, single_plan(g, settings, algo, stream));
        } catch (const Error& e) {
            left_out->push_back(fmt::format("{}: {}", conv_algo_name(algo), e.what()));
        }
    };
    for (ConvAlgo algo : kCandidates) add(algo);
    CUDACNN_CHECK(!plans.empty(), "conv2d: --conv-algo fastest found no algorithm for this layer: {}",
                  fmt::join(*left_out, "; "));
    return plans;
}

// "forward winograd 0.126 ms (cudnn 0.138, implicit 0.207, im2col 0.278)"
std::string pass_report(Pass pass, ConvAlgo winner, const std::vector<Timing>& timings) {
    std::string others;
    float winner_ms = 0.0f;
    for (const Timing& t : timings) {
        if (t.algo == winner) {
            winner_ms = t.ms;
            continue;
        }
        others += fmt::format("{}{} {:.3f}", others.empty() ? "" : ", ", conv_algo_name(t.algo), t.ms);
    }
    return fmt::format("{} {} {:.3f} ms{}", kPassNames[static_cast<size_t>(pass)], conv_algo_name(winner),
                       winner_ms, others.empty() ? "" : " (" + others + ")");
}

// Times every candidate on every pass and keeps the fastest per pass; `plans` receives the candidates' plans
// so that the winners need not be made again. Each candidate's workspace is allocated only while it is timed,
// and one that cannot be allocated leaves the candidate out (Winograd's on a 224×224 layer at batch 64 is
// gigabytes), so that a smaller GPU still gets the fastest of the rest.
Decision decide(const cpu::Conv2dGeometry& g, const Conv2dSettings& settings, cudaStream_t stream,
                std::vector<std::pair<ConvAlgo, std::shared_ptr<const Conv2dPlan>>>* plans) {
    std::vector<std::string> left_out;
    *plans = candidate_plans(g, settings, stream, &left_out);
    Scratch scratch(g, stream);
    const bool direct_only = plans->size() == 1;
    std::array<std::vector<Timing>, 3> timings;  // by pass
    for (auto candidate = plans->begin(); candidate != plans->end();) {
        const auto& [algo, plan] = *candidate;
        try {
            scratch.workspace = DeviceBuffer(std::max<size_t>(plan->workspace_bytes(), 1));
        } catch (const Error& e) {
            left_out.push_back(fmt::format("{}: its workspace of {} bytes: {}", conv_algo_name(algo),
                                           plan->workspace_bytes(), e.what()));
            candidate = plans->erase(candidate);
            continue;
        }
        for (Pass pass : kPasses) {
            if (!timed_on(algo, pass, direct_only)) continue;
            timings[static_cast<size_t>(pass)].push_back({algo, time_pass(*plan, pass, scratch, stream)});
        }
        scratch.workspace.reset();
        ++candidate;
    }
    CUDACNN_CHECK(!plans->empty(), "conv2d: --conv-algo fastest could not time any algorithm for this layer: {}",
                  fmt::join(left_out, "; "));
    Decision decision;
    std::string report;
    for (Pass pass : kPasses) {
        const std::vector<Timing>& times = timings[static_cast<size_t>(pass)];
        CUDACNN_CHECK(!times.empty(),
                      "conv2d: --conv-algo fastest could not time any algorithm's {} for this layer: {}; choose "
                      "an algorithm with --conv-algo",
                      kPassNames[static_cast<size_t>(pass)], fmt::join(left_out, "; "));
        // The first of the smallest: ties go to the earlier candidate (kCandidates' order).
        const auto best = std::min_element(times.begin(), times.end(),
                                           [](const Timing& a, const Timing& b) { return a.ms < b.ms; });
        decision.winners[static_cast<size_t>(pass)] = best->algo;
        report += (report.empty() ? "" : "; ") + pass_report(pass, best->algo, times);
    }
    if (!left_out.empty()) report += fmt::format("; not timed: {}", fmt::join(left_out, "; "));
    decision.report = report;
    return decision;
}

// Decisions for the process, by everything the times depend on (like cudnnFind's cache).
class DecisionCache {
  public:
    static DecisionCache& instance() {
        static DecisionCache cache;
        return cache;
    }
    static std::string key(const cpu::Conv2dGeometry& g, const Conv2dSettings& settings) {
        int device = 0;
        CUDACNN_CUDA_CHECK(cudaGetDevice(&device));
        return fmt::format(
            "N {} C {} H {} W {} OC {} k {}x{} g {} s {}x{} d {}x{} p {} {} {} {} mode {} | tf32 {} | {} {} "
            "| "
            "limit {} | device {}",
            g.batch, g.in_channels, g.in_h, g.in_w, g.out_channels, g.kernel_h, g.kernel_w, g.groups,
            g.stride_h, g.stride_w, g.dilation_h, g.dilation_w, g.pad_top, g.pad_bottom, g.pad_left,
            g.pad_right, cpu::conv2d_padding_mode_name(g.padding_mode), settings.allow_tf32, settings.dtype,
            memory_format_name(settings.memory_format), settings.workspace_limit_bytes, device);
    }
    bool find(const std::string& key, Decision* decision) const {
        std::lock_guard<std::mutex> lock(mutex_);
        const auto it = decisions_.find(key);
        if (it == decisions_.end()) return false;
        *decision = it->second;
        return true;
    }
    void store(const std::string& key, const Decision& decision) {
        std::lock_guard<std::mutex> lock(mutex_);
        decisions_.emplace(key, decision);
    }

  private:
    mutable std::mutex mutex_;
    std::map<std::string, Decision> decisions_;
};

}  // namespace

void Conv2dPlan::choose_fastest(const Conv2dSettings& settings, cudaStream_t stream) {
    const std::string key = DecisionCache::key(geometry_, settings);
    Decision decision;
    std::vector<std::pair<ConvAlgo, std::shared_ptr<const Conv2dPlan>>> plans;
    const bool cached = DecisionCache::instance().find(key, &decision);
    if (!cached) {
        decision = decide(geometry_, settings, stream, &plans);
        DecisionCache::instance().store(key, decision);
    }
    for (Pass pass : kPasses) {
        const ConvAlgo winner = decision.winners[static_cast<size_t>(pass)];
        auto it = std::find_if(plans.begin(), plans.end(), [&](const auto& p) { return p.first == winner; });
        if (it == plans.end()) {  // cached: make the winner's plan (once, if two passes share it)
            plans.emplace_back(winner, single_plan(geometry_, settings, winner, stream));
            it = std::prev(plans.end());
        }
        by_pass_[static_cast<size_t>(pass)] = it->second;
        workspace_bytes_ = std::max(workspace_bytes_, it->second->workspace_bytes());
    }
    algo_ = ConvAlgo::fastest;
    description_ = fmt::format("fastest{}: {}", cached ? " (timings cached)" : "", decision.report);
    for (ConvAlgo algo : kCandidates) {  // what the chosen cuDNN or implicit plans say of themselves
        for (Pass pass : kPasses) {
            if (decision.winners[static_cast<size_t>(pass)] != algo) continue;
            const auto it = std::find_if(plans.begin(), plans.end(), [&](const auto& p) { return p.first == algo; });
            if (it->second->description() != conv_algo_name(algo)) description_ += "; " + it->second->description();
            break;
        }
    }
}

}  // namespace cudacnn::gpu
