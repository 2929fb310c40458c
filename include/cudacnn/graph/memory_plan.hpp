// A static memory plan: every buffer of a training step gets an offset in one arena, and buffers whose
// lifetimes do not overlap share memory (greedy by size, as TFLite's and MXNet's planners do).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace cudacnn::graph {

// One buffer: its size and the step times of its first write and last read (inclusive). A buffer that
// lives through every step (inputs, metrics) spans [0, kForever].
struct BufferRequest {
    std::string name;  // for the plan's description: "conv_layer.0 y", "fc_layer.6 dy", …
    std::size_t bytes = 0;
    int first = 0;
    int last = 0;
};

struct MemoryPlan {
    static constexpr std::size_t kAlignment = 256;  // cudaMalloc's alignment: every kernel's vector loads are aligned
    static constexpr int kForever = 1 << 30;

    std::vector<std::size_t> offsets;  // per request, in bytes
    std::size_t peak_bytes = 0;        // the arena's size
    std::size_t naive_bytes = 0;       // every buffer separately (aligned)
};

// Places every request; overlapping lifetimes never share bytes. Deterministic for a given request list.
MemoryPlan plan_memory(const std::vector<BufferRequest>& requests);

// Throws Error if two buffers that are alive at the same time overlap in the arena (a planner bug).
void check_memory_plan(const std::vector<BufferRequest>& requests, const MemoryPlan& plan);

}  // namespace cudacnn::graph
