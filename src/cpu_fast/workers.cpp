// Workers: the thread count of the fast CPU path and its OpenMP loop.
#include "src/cpu_fast/workers.hpp"

#include <omp.h>

#include <thread>

#include "src/cpu_fast/gemm.hpp"

namespace cudacnn::cpu_fast {

Workers::Workers(int threads) {
    const int cores = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
    count_ = threads > 0 ? threads : cores;
    use_single_threaded_blas();
}

int worker_index() {
    return omp_get_thread_num();
}

namespace detail {

void run_parallel(int threads, int64_t items, void (*call)(void*, int64_t), void* body) {
#pragma omp parallel for schedule(dynamic, 1) num_threads(threads)
    for (int64_t i = 0; i < items; ++i) call(body, i);
}

}  // namespace detail
}  // namespace cudacnn::cpu_fast
