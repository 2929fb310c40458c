// The fast CPU path's worker threads: how many, and a parallel loop over fixed work items, so that every
// fast op's result depends on how its work is cut into items but never on how many threads run them.
#pragma once

#include <algorithm>
#include <cstdint>

namespace cudacnn::cpu_fast {

// The threads a fast op may use (OpenMP under the hood). Creating one also sets OpenBLAS to one thread per
// call, process-wide: the fast ops parallelize over their own work items and call BLAS from each thread.
class Workers {
  public:
    // threads <= 0: one per core.
    explicit Workers(int threads = 0);
    int count() const { return count_; }

  private:
    int count_ = 1;
};

// The index of the calling worker within a parallel_for, in [0, workers.count()): it picks a per-thread
// scratch buffer.
int worker_index();

namespace detail {
void run_parallel(int threads, int64_t items, void (*call)(void*, int64_t), void* body);
}

// Runs body(item) for every item in [0, items), spread over the workers (dynamic: an item at a time). Items
// must not depend on each other or on the thread that runs them; body must not throw (validate first).
template <class Body>
void parallel_for(const Workers& workers, int64_t items, Body&& body) {
    if (items <= 0) return;
    const int threads = static_cast<int>(std::min<int64_t>(workers.count(), items));
    if (threads <= 1) {
        for (int64_t i = 0; i < items; ++i) body(i);
        return;
    }
    detail::run_parallel(threads, items, [](void* b, int64_t i) { (*static_cast<Body*>(b))(i); }, &body);
}

// Splits [0, total) into ranges of `grain` (the last one shorter): the work items of an elementwise loop.
// The grain is fixed by the caller, not by the thread count, so that every item's work is the same whatever
// the threads.
template <class Body>
void parallel_ranges(const Workers& workers, int64_t total, int64_t grain, Body&& body) {
    const int64_t items = (total + grain - 1) / grain;
    parallel_for(workers, items, [&](int64_t item) {
        const int64_t begin = item * grain;
        body(begin, std::min(total, begin + grain));
    });
}

}  // namespace cudacnn::cpu_fast
