// The step sequence of the executor tests that compare two ways of running the same training (CUDA graphs
// against eager launches, fused kernels against separate ones), and their bitwise comparison.
#pragma once

#include <catch2/catch.hpp>

#include <cmath>
#include <cstring>
#include <string>
#include <vector>

#include "cudacnn/graph/executor.hpp"
#include "cudacnn/host_tensor.hpp"
#include "cudacnn/io/state_dict.hpp"

namespace cudacnn::test {

// Nine training steps of a batch-4 executor on (3, 8, 8) inputs: full batches and a partial one (step 6, which
// gets its own CUDA graph, or none), a learning-rate change at step 4 (a new optimizer argument: captured anew),
// and an evaluation step after every third, whose metrics are appended to `metrics`.
inline void run_test_steps(graph::Executor& executor, std::vector<graph::Metrics>& metrics) {
    HostTensor<float> x(Shape{4, 3, 8, 8});
    std::vector<int64_t> labels(4);
    for (int64_t step = 0; step < 9; ++step) {
        for (int64_t i = 0; i < x.numel(); ++i) x[i] = std::sin(0.05f * static_cast<float>(i + 7 * step));
        for (int64_t i = 0; i < 4; ++i) labels[i] = (i + step) % 4;
        const int64_t count = step == 6 ? 3 : 4;
        if (step == 4) executor.set_learning_rate(5e-3);
        executor.set_batch(x.data(), labels.data(), count);
        executor.train_step(executor.optimizer_steps());
        if (step % 3 == 2) {
            executor.eval_step();
            metrics.push_back(executor.read_metrics());
        }
    }
}

// The same names with the same bits (NaNs included), entry by entry.
inline bool bit_identical(const io::StateDict& a, const io::StateDict& b) {
    for (const std::string& name : a.names()) {
        INFO(name);
        if (a.dtype(name) == DType::i64) {
            if (a.i64(name).values() != b.i64(name).values()) return false;
        } else if (std::memcmp(a.f32(name).data(), b.f32(name).data(), sizeof(float) * a.f32(name).numel()) != 0) {
            return false;
        }
    }
    return a.names() == b.names();
}

}  // namespace cudacnn::test
