// The executor's profiling (Executor::start_profile): a backend stopwatch around each part of a step, read
// once the step's work is done. Internal to src/graph.
#pragma once

#include <memory>
#include <vector>

#include "cudacnn/graph/profile.hpp"
#include "src/graph/backend.hpp"

namespace cudacnn::graph::detail {

class StepProfiler {
  public:
    // The parts after the graph's nodes, in StepProfile::parts.
    enum Other { kLoss, kAllReduce, kOptimizer, kChecks, kOthers };
    static constexpr const char* kOtherNames[kOthers] = {"loss", "all_reduce", "optimizer", "nonfinite_checks"};

    // `profile` holds the parts' names, kinds, shapes and details (nodes first, then the kOthers); the
    // profiler adds the samples.
    StepProfiler(BackendImpl& backend, StepProfile profile);

    int nodes() const { return nodes_; }
    int forward_slot(int node) const { return 2 * node; }
    int backward_slot(int node) const { return 2 * node + 1; }
    int other_slot(Other part) const { return 2 * (nodes_ + part); }
    int step_slot() const { return 2 * static_cast<int>(profile_.parts.size()); }

    // A slot may be timed several times in a step (the non-finite checks): its sample is their sum.
    void start(int slot);
    void stop(int slot);
    // After the backend has finished the step's work: one sample per slot that ran.
    void finish_step();
    StepProfile take() { return std::move(profile_); }

  private:
    struct Slot {
        std::vector<std::unique_ptr<Stopwatch>> watches;  // grows to the most uses in one step
        std::size_t used = 0;
    };
    std::vector<double>* samples(int slot);

    BackendImpl& backend_;
    StepProfile profile_;
    int nodes_ = 0;
    std::vector<Slot> slots_;
};

// Runs f, timed in `slot` when profiling (profiler not null): one branch when off.
template <class F>
void timed(StepProfiler* profiler, int slot, F&& f) {
    if (profiler == nullptr) {
        f();
        return;
    }
    profiler->start(slot);
    f();
    profiler->stop(slot);
}

}  // namespace cudacnn::graph::detail
