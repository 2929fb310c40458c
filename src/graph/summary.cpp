// model_summary: torchsummary's table, as the seed's train script prints it, plus our layer names.
#include "cudacnn/graph/model.hpp"

#include <algorithm>
#include <string>

#include "cudacnn/error.hpp"

namespace cudacnn::graph {

namespace {

// The PyTorch module class of each kind (torchsummary's "Layer (type)"); Add and Concat are ours.
const char* pytorch_class_name(LayerKind kind) {
    switch (kind) {
        case LayerKind::conv2d:
            return "Conv2d";
        case LayerKind::batch_norm2d:
            return "BatchNorm2d";
        case LayerKind::relu:
            return "ReLU";
        case LayerKind::max_pool2d:
            return "MaxPool2d";
        case LayerKind::avg_pool2d:
            return "AvgPool2d";
        case LayerKind::adaptive_avg_pool2d:
            return "AdaptiveAvgPool2d";
        case LayerKind::dropout:
            return "Dropout";
        case LayerKind::dropout2d:
            return "Dropout2d";
        case LayerKind::flatten:
            return "Flatten";
        case LayerKind::linear:
            return "Linear";
        case LayerKind::add:
            return "Add";
        case LayerKind::concat:
            return "Concat";
    }
    return "Unknown";
}

// 5852170 → "5,852,170", as Python's "{0:,}".
std::string with_thousands(int64_t value) {
    std::string digits = std::to_string(value < 0 ? -value : value);
    for (int i = static_cast<int>(digits.size()) - 3; i > 0; i -= 3)
        digits.insert(static_cast<size_t>(i), ",");
    return value < 0 ? "-" + digits : digits;
}

// Python's str() of torchsummary's shape list: the batch as -1, "[-1, 32, 32, 32]".
std::string batched_shape(const Shape& per_sample) {
    std::vector<int64_t> dims = per_sample.dims();
    dims.insert(dims.begin(), -1);
    return fmt::format("[{}]", fmt::join(dims, ", "));
}

double mebibytes(int64_t bytes) {
    return static_cast<double>(bytes) / (1024.0 * 1024.0);
}

}  // namespace

std::string model_summary(const Graph& graph) {
    size_t name_width = std::string("Layer name").size();
    for (const Node& node : graph.nodes) name_width = std::max(name_width, node.spec.name.size());
    // torchsummary's columns ({:>20}  {:>25} {:>15}, 63 characters under a 64-character rule), then ours.
    const auto row = [&](const std::string& type, const std::string& shape, const std::string& params,
                         const std::string& name) {
        return fmt::format("{:>20}  {:>25} {:>15}  {}", type, shape, params, name);
    };
    const size_t width = std::max<size_t>(64, 63 + 2 + name_width);
    const std::string rule(width, '-'), double_rule(width, '=');

    std::string out = rule + "\n" + row("Layer (type)", "Output Shape", "Param #", "Layer name") + "\n" +
                      double_rule + "\n";
    int64_t total_params = 0, trainable_bytes = 0;
    for (size_t i = 0; i < graph.nodes.size(); ++i) {
        const Node& node = graph.nodes[i];
        int64_t params = 0;  // torchsummary counts weight and bias, not buffers
        for (int s : node.state) {
            const StateEntry& entry = graph.state[static_cast<size_t>(s)];
            if (!entry.trainable) continue;
            params += entry.shape.numel();
            trainable_bytes += entry.shape.numel() * static_cast<int64_t>(dtype_size(entry.dtype));
        }
        total_params += params;
        out += row(fmt::format("{}-{}", pytorch_class_name(node.spec.kind), i + 1),
                   batched_shape(node.output), with_thousands(params), node.spec.name) +
               "\n";
    }
    const int64_t trainable = graph.trainable_parameter_count();
    out += double_rule + "\n";
    out += "Total params: " + with_thousands(total_params) + "\n";
    out += "Trainable params: " + with_thousands(trainable) + "\n";
    out += "Non-trainable params: " + with_thousands(total_params - trainable) + "\n";
    out += rule + "\n";
    out += fmt::format("Params size (MB): {:.2f}\n", mebibytes(trainable_bytes));
    out += fmt::format("Model size with buffers (MB): {:.2f}\n", mebibytes(graph.state_bytes()));
    out += rule + "\n";
    return out;
}

}  // namespace cudacnn::graph
