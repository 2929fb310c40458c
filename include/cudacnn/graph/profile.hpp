// Where the time of an executor's steps goes (cudacnn-bench --profile): each node's forward and backward, the
// loss, the gradient all-reduce, the optimizer step and the non-finite checks, timed one by one.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "cudacnn/tensor.hpp"

namespace cudacnn::graph {

// One part of a step and its times, one sample per profiled step that ran it (empty: it never ran, e.g. an
// alias, a fused ReLU, or the backward of an evaluation step).
struct ProfilePart {
    std::string name;    // the layer's name; "loss", "all_reduce", "optimizer" or "nonfinite_checks" otherwise
    std::string kind;    // layer_kind_name(); for the other parts their name again
    Shape output;        // the layer's output with the batch dimension; () for the other parts
    std::string detail;  // what the backend says about it (a convolution's plan), why it does not run, or ""
    std::vector<double> forward_us, backward_us;  // the other parts time their one pass as forward_us
};

struct StepProfile {
    std::string clock;  // "CUDA events on the executor's stream" or "the host clock"
    int64_t steps = 0;  // profiled steps
    std::vector<ProfilePart> parts;  // the graph's nodes in order, then the other parts
    std::size_t nodes = 0;           // parts[0, nodes) are the graph's nodes
    std::vector<double> step_us;     // each profiled train_step / eval_step whole, first mark to last
};

}  // namespace cudacnn::graph
