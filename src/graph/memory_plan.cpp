// Greedy-by-size static memory planning: the largest buffers are placed first, each at the lowest offset
// where it overlaps no already placed buffer that is alive at the same time.
#include "cudacnn/graph/memory_plan.hpp"

#include <algorithm>
#include <numeric>

#include "cudacnn/error.hpp"

namespace cudacnn::graph {
namespace {

std::size_t aligned(std::size_t bytes) {
    return (bytes + MemoryPlan::kAlignment - 1) / MemoryPlan::kAlignment * MemoryPlan::kAlignment;
}

bool lifetimes_overlap(const BufferRequest& a, const BufferRequest& b) {
    return a.first <= b.last && b.first <= a.last;
}

}  // namespace

MemoryPlan plan_memory(const std::vector<BufferRequest>& requests) {
    MemoryPlan plan;
    plan.offsets.assign(requests.size(), 0);
    std::vector<std::size_t> order(requests.size());
    std::iota(order.begin(), order.end(), 0);
    // Largest first; ties by first use, then by index, so the plan is deterministic.
    std::stable_sort(order.begin(), order.end(), [&](std::size_t a, std::size_t b) {
        if (requests[a].bytes != requests[b].bytes) return requests[a].bytes > requests[b].bytes;
        return requests[a].first < requests[b].first;
    });
    std::vector<std::size_t> placed;
    for (std::size_t index : order) {
        const BufferRequest& request = requests[index];
        CUDACNN_CHECK(request.first <= request.last, "memory plan: buffer '{}' is last read (time {}) before it is "
                      "written (time {})", request.name, request.last, request.first);
        plan.naive_bytes += aligned(request.bytes);
        // The live neighbours' byte ranges, sorted by offset; take the first gap that fits.
        std::vector<std::pair<std::size_t, std::size_t>> taken;
        for (std::size_t other : placed) {
            if (lifetimes_overlap(request, requests[other])) {
                taken.emplace_back(plan.offsets[other], plan.offsets[other] + aligned(requests[other].bytes));
            }
        }
        std::sort(taken.begin(), taken.end());
        std::size_t offset = 0;
        for (const auto& [begin, end] : taken) {
            if (offset + aligned(request.bytes) <= begin) break;
            offset = std::max(offset, end);
        }
        plan.offsets[index] = offset;
        plan.peak_bytes = std::max(plan.peak_bytes, offset + aligned(request.bytes));
        placed.push_back(index);
    }
    return plan;
}

void check_memory_plan(const std::vector<BufferRequest>& requests, const MemoryPlan& plan) {
    for (std::size_t a = 0; a < requests.size(); ++a) {
        for (std::size_t b = a + 1; b < requests.size(); ++b) {
            if (!lifetimes_overlap(requests[a], requests[b]) || requests[a].bytes == 0 || requests[b].bytes == 0) {
                continue;
            }
            const bool disjoint = plan.offsets[a] + requests[a].bytes <= plan.offsets[b] ||
                                  plan.offsets[b] + requests[b].bytes <= plan.offsets[a];
            CUDACNN_CHECK(disjoint, "memory plan: '{}' and '{}' are alive together but overlap in the arena",
                          requests[a].name, requests[b].name);
        }
    }
}

}  // namespace cudacnn::graph
