// The executor's profiling: stopwatches per part of a step, summed per step into StepProfile's samples.
#include "src/graph/step_profiler.hpp"

#include <utility>

#include "cudacnn/error.hpp"

namespace cudacnn::graph::detail {

StepProfiler::StepProfiler(BackendImpl& backend, StepProfile profile)
    : backend_(backend), profile_(std::move(profile)) {
    nodes_ = static_cast<int>(profile_.parts.size()) - kOthers;
    CUDACNN_CHECK(nodes_ >= 0, "step profiler: {} parts, fewer than the {} that follow the nodes (an executor bug)",
                  profile_.parts.size(), static_cast<int>(kOthers));
    profile_.nodes = static_cast<std::size_t>(nodes_);
    profile_.clock = backend.stopwatch_clock();
    slots_.resize(static_cast<std::size_t>(step_slot()) + 1);
}

void StepProfiler::start(int slot) {
    Slot& s = slots_.at(static_cast<std::size_t>(slot));
    if (s.used == s.watches.size()) s.watches.push_back(backend_.make_stopwatch());
    s.watches[s.used]->start();
}

void StepProfiler::stop(int slot) {
    Slot& s = slots_.at(static_cast<std::size_t>(slot));
    s.watches.at(s.used)->stop();
    ++s.used;
}

std::vector<double>* StepProfiler::samples(int slot) {
    if (slot == step_slot()) return &profile_.step_us;
    ProfilePart& part = profile_.parts[static_cast<std::size_t>(slot / 2)];
    return slot % 2 == 0 ? &part.forward_us : &part.backward_us;
}

void StepProfiler::finish_step() {
    for (int slot = 0; slot <= step_slot(); ++slot) {
        Slot& s = slots_[static_cast<std::size_t>(slot)];
        if (s.used == 0) continue;
        double sum = 0.0;
        for (std::size_t k = 0; k < s.used; ++k) sum += s.watches[k]->elapsed_us();
        samples(slot)->push_back(sum);
        s.used = 0;
    }
    ++profile_.steps;
}

}  // namespace cudacnn::graph::detail
