// build_graph: a spec's layers become nodes with resolved inputs, inferred per-sample shapes and their
// state_dict entries; shape rules come from the CPU reference ops, so that they are defined in one place.
#include "cudacnn/graph/model.hpp"

#include <map>
#include <regex>

#include "cudacnn/error.hpp"
#include "cudacnn/error_text.hpp"
#include "cudacnn/ops/shape_ops.hpp"
#include "spec_internal.hpp"

namespace cudacnn::graph {

namespace detail {

void fill_default_inputs(std::vector<LayerSpec>& layers) {
    std::string previous = "input";
    for (LayerSpec& layer : layers) {
        if (layer.inputs.empty()) layer.inputs = {previous};
        previous = layer.name;
    }
}

namespace {

void check_names(const ModelSpec& spec, const std::string& source) {
    std::map<std::string, size_t> first_index;
    for (size_t i = 0; i < spec.layers.size(); ++i) {
        const LayerSpec& layer = spec.layers[i];
        const std::string where = layer_location(source, i, layer);
        CUDACNN_CHECK(!layer.name.empty(), "{}: key 'name' must not be empty", where);
        CUDACNN_CHECK(layer.name != "input",
                      "{}: key 'name': 'input' is reserved for the model input (what \"inputs\" name to read "
                      "it); rename the layer",
                      where);
        const auto [it, inserted] = first_index.emplace(layer.name, i);
        CUDACNN_CHECK(
            inserted,
            "{}: key 'name': '{}' is also the name of layers[{}]; layer names must be unique (they are "
            "the state_dict prefixes of the parameters)",
            where, layer.name, it->second);
    }
}

}  // namespace

std::vector<std::vector<int>> resolve_layer_inputs(const ModelSpec& spec, const std::string& source) {
    check_names(spec, source);
    std::map<std::string, int> index_of;
    for (size_t i = 0; i < spec.layers.size(); ++i) index_of[spec.layers[i].name] = static_cast<int>(i);

    std::vector<std::vector<int>> resolved;
    for (size_t i = 0; i < spec.layers.size(); ++i) {
        const LayerSpec& layer = spec.layers[i];
        const std::string where = layer_location(source, i, layer);
        const std::vector<std::string> names =
            layer.inputs.empty() ? std::vector<std::string>{i == 0 ? "input" : spec.layers[i - 1].name}
                                 : layer.inputs;
        std::vector<int> nodes;
        for (const std::string& name : names) {
            if (name == "input") {
                nodes.push_back(kInput);
                continue;
            }
            const auto it = index_of.find(name);
            CUDACNN_CHECK(it != index_of.end(),
                          "{}: key 'inputs': '{}' is not a layer of this model; name an earlier layer or "
                          "\"input\"",
                          where, name);
            CUDACNN_CHECK(
                it->second < static_cast<int>(i),
                "{}: key 'inputs': '{}' is layers[{}], which does not come before this layer; a layer "
                "can only read earlier layers (list the layers in execution order)",
                where, name, it->second);
            nodes.push_back(it->second);
        }
        if (takes_several_inputs(layer.kind)) {
            CUDACNN_CHECK(
                nodes.size() >= 2,
                "{}: key 'inputs': {} needs two or more inputs, got {} ({}); list them in \"inputs\"", where,
                layer_kind_name(layer.kind), nodes.size(), fmt::join(names, ", "));
        } else {
            CUDACNN_CHECK(nodes.size() == 1, "{}: key 'inputs': {} reads exactly one input, got {} ({})",
                          where, layer_kind_name(layer.kind), nodes.size(), fmt::join(names, ", "));
        }
        resolved.push_back(std::move(nodes));
    }
    return resolved;
}

}  // namespace detail

namespace {

// What a shape error says about the layer: "model 'm': layer 'fc_layer.1' (linear)" and its input shapes.
struct LayerContext {
    std::string prefix;
    std::vector<Shape> inputs;
    std::string inputs_text;  // "input (256, 4, 4)" or "inputs (64, 8, 8) from 'a', (32, 8, 8) from 'b'"
};

LayerContext layer_context(const Graph& graph, const Node& node) {
    LayerContext context;
    context.prefix = fmt::format("model '{}': {}", graph.spec.name, detail::layer_label(node.spec));
    std::vector<std::string> parts;
    for (size_t k = 0; k < node.inputs.size(); ++k) {
        context.inputs.push_back(graph.shape_of(node.inputs[k]));
        parts.push_back(fmt::format("{} from '{}'", context.inputs.back(), node.spec.inputs[k]));
    }
    context.inputs_text = node.inputs.size() == 1 ? fmt::format("input {}", context.inputs[0])
                                                  : fmt::format("inputs {}", fmt::join(parts, ", "));
    return context;
}

// Runs a CPU reference shape helper and rethrows its Error naming the layer and its inputs.
template <class Helper>
Shape from_helper(const LayerContext& context, Helper&& helper) {
    try {
        return helper();
    } catch (const Error& e) {
        CUDACNN_FAIL("{}: {}: {}", context.prefix, context.inputs_text, without_location(e));
    }
}

Shape with_batch(const Shape& per_sample) {  // (…) → (1, …)
    std::vector<int64_t> dims = per_sample.dims();
    dims.insert(dims.begin(), 1);
    return Shape(dims);
}

Shape without_batch(const Shape& batched) {  // (1, …) → (…)
    const std::vector<int64_t> dims = batched.dims();
    return Shape(std::vector<int64_t>(dims.begin() + 1, dims.end()));
}

// Spatial layers read (C, H, W) images.
void check_image(const LayerSpec& layer, const LayerContext& context) {
    for (const Shape& input : context.inputs) {
        CUDACNN_CHECK(input.rank() == 3, "{}: {}: {} needs (C, H, W) images as input", context.prefix,
                      context.inputs_text, layer_kind_name(layer.kind));
    }
}

void check_channels(const LayerContext& context, const char* key, int64_t expected) {
    const int64_t channels = context.inputs[0][0];
    CUDACNN_CHECK(channels == expected, "{}: {} has {} channels but {} is {}", context.prefix,
                  context.inputs_text, channels, key, expected);
}

Shape conv2d_output(const LayerSpec& layer, const LayerContext& context) {
    check_image(layer, context);
    check_channels(context, "in_channels", layer.in_channels);
    const int64_t groups = layer.conv.groups;
    CUDACNN_CHECK(groups > 0 && layer.in_channels % groups == 0 && layer.out_channels % groups == 0,
                  "{}: groups {} must be positive and divide in_channels {} and out_channels {}",
                  context.prefix, groups, layer.in_channels, layer.out_channels);
    const Shape weight{layer.out_channels, layer.in_channels / groups, layer.kernel_size.h,
                       layer.kernel_size.w};
    return from_helper(context, [&] {
        return without_batch(
            cpu::conv2d_geometry(with_batch(context.inputs[0]), weight, layer.conv).output_shape());
    });
}

Shape linear_output(const LayerSpec& layer, const LayerContext& context) {
    const Shape& input = context.inputs[0];
    CUDACNN_CHECK(
        input.rank() == 1,
        "{}: {} is not flat; add a flatten layer before it (that gives {} features; in_features is {})",
        context.prefix, context.inputs_text, input.numel(), layer.in_features);
    CUDACNN_CHECK(input[0] == layer.in_features, "{}: {} has {} features but in_features is {}",
                  context.prefix, context.inputs_text, input[0], layer.in_features);
    return Shape{layer.out_features};
}

Shape add_output(const Node& node, const LayerContext& context) {
    for (size_t k = 1; k < context.inputs.size(); ++k) {
        CUDACNN_CHECK(context.inputs[k] == context.inputs[0],
                      "{}: {}: '{}' and '{}' differ in shape; add needs inputs of one shape", context.prefix,
                      context.inputs_text, node.spec.inputs[0], node.spec.inputs[k]);
    }
    return context.inputs[0];
}

Shape infer_output(const Node& node, const LayerContext& context) {
    const LayerSpec& layer = node.spec;
    const Shape& input = context.inputs[0];
    switch (layer.kind) {
        case LayerKind::conv2d:
            return conv2d_output(layer, context);
        case LayerKind::batch_norm2d:
            check_image(layer, context);
            check_channels(context, "num_features", layer.num_features);
            return input;
        case LayerKind::relu:
        case LayerKind::dropout:
            return input;
        case LayerKind::dropout2d:
            check_image(layer, context);
            return input;
        case LayerKind::max_pool2d:
            check_image(layer, context);
            return from_helper(context, [&] {
                return without_batch(cpu::max_pool2d_output_shape(with_batch(input), layer.max_pool));
            });
        case LayerKind::avg_pool2d:
            check_image(layer, context);
            return from_helper(context, [&] {
                return without_batch(cpu::avg_pool2d_output_shape(with_batch(input), layer.avg_pool));
            });
        case LayerKind::adaptive_avg_pool2d:
            check_image(layer, context);
            CUDACNN_CHECK(layer.output_size.h > 0 && layer.output_size.w > 0,
                          "{}: output_size ({}, {}) must be positive", context.prefix, layer.output_size.h,
                          layer.output_size.w);
            return Shape{input[0], layer.output_size.h, layer.output_size.w};
        case LayerKind::flatten:
            return from_helper(context,
                               [&] { return without_batch(cpu::flatten_output_shape(with_batch(input))); });
        case LayerKind::linear:
            return linear_output(layer, context);
        case LayerKind::add:
            return add_output(node, context);
        case LayerKind::concat:
            return from_helper(context, [&] {
                std::vector<Shape> batched;
                for (const Shape& s : context.inputs) batched.push_back(with_batch(s));
                return without_batch(cpu::concat_output_shape(batched, 1));
            });
    }
    CUDACNN_FAIL("{}: unknown layer kind {}", context.prefix, static_cast<int>(layer.kind));
}

// state_dict order within a module: parameters (weight, bias), then buffers.
void add_state(Graph& graph, Node& node, int node_index) {
    const LayerSpec& layer = node.spec;
    auto add = [&](const char* role, const Shape& shape, DType dtype, bool trainable) {
        node.state.push_back(static_cast<int>(graph.state.size()));
        graph.state.push_back({layer.name + "." + role, shape, dtype, trainable, node_index, role});
    };
    switch (layer.kind) {
        case LayerKind::conv2d:
            add("weight",
                Shape{layer.out_channels, layer.in_channels / layer.conv.groups, layer.kernel_size.h,
                      layer.kernel_size.w},
                DType::f32, true);
            if (layer.bias) add("bias", Shape{layer.out_channels}, DType::f32, true);
            return;
        case LayerKind::batch_norm2d:
            if (layer.affine) {
                add("weight", Shape{layer.num_features}, DType::f32, true);
                add("bias", Shape{layer.num_features}, DType::f32, true);
            }
            if (layer.track_running_stats) {
                add("running_mean", Shape{layer.num_features}, DType::f32, false);
                add("running_var", Shape{layer.num_features}, DType::f32, false);
                add("num_batches_tracked", Shape{}, DType::i64, false);
            }
            return;
        case LayerKind::linear:
            add("weight", Shape{layer.out_features, layer.in_features}, DType::f32, true);
            if (layer.bias) add("bias", Shape{layer.out_features}, DType::f32, true);
            return;
        default:
            return;  // no parameters or buffers
    }
}

void check_model_input(const ModelSpec& spec) {
    const Shape& input = spec.input;
    CUDACNN_CHECK(input.rank() >= 1 && input.rank() < Shape::kMaxRank && input.numel() > 0,
                  "model '{}': input {} must have 1 to {} positive sizes, (C, H, W) for images", spec.name,
                  input, Shape::kMaxRank - 1);
    CUDACNN_CHECK(spec.num_classes > 0, "model '{}': num_classes {} must be positive", spec.name,
                  spec.num_classes);
    CUDACNN_CHECK(!spec.layers.empty(), "model '{}': has no layers; a model needs at least one", spec.name);
}

// Every layer but the last feeds a later one: an unread output is a typo in "inputs", not a feature.
void check_outputs(const Graph& graph) {
    for (size_t i = 0; i + 1 < graph.nodes.size(); ++i) {
        const Node& node = graph.nodes[i];
        CUDACNN_CHECK(!node.consumers.empty(),
                      "model '{}': {}: no later layer reads its output, and only the last layer gives the "
                      "logits; remove it or name it in a later layer's \"inputs\"",
                      graph.spec.name, detail::layer_label(node.spec));
    }
    const Node& last = graph.nodes.back();
    CUDACNN_CHECK(
        last.output == Shape{graph.spec.num_classes},
        "model '{}': the last layer, {}, gives {} per sample but num_classes is {}; the last layer must "
        "give the logits ({})",
        graph.spec.name, detail::layer_label(last.spec), last.output, graph.spec.num_classes,
        graph.spec.num_classes);
}

}  // namespace

const Shape& Graph::shape_of(int node) const {
    if (node == kInput) return spec.input;
    CUDACNN_CHECK(node >= 0 && node < static_cast<int>(nodes.size()),
                  "Graph::shape_of: node {} is not in model '{}' ({} nodes; kInput is {})", node, spec.name,
                  nodes.size(), kInput);
    return nodes[static_cast<size_t>(node)].output;
}

int64_t Graph::trainable_parameter_count() const {
    int64_t count = 0;
    for (const StateEntry& entry : state) count += entry.trainable ? entry.shape.numel() : 0;
    return count;
}

int64_t Graph::state_bytes() const {
    int64_t bytes = 0;
    for (const StateEntry& entry : state)
        bytes += entry.shape.numel() * static_cast<int64_t>(dtype_size(entry.dtype));
    return bytes;
}

std::vector<int> Graph::parameters() const {
    std::vector<int> indices;
    for (size_t i = 0; i < state.size(); ++i) {
        if (state[i].trainable) indices.push_back(static_cast<int>(i));
    }
    return indices;
}

int Graph::find_node(const std::string& name) const {
    for (size_t i = 0; i < nodes.size(); ++i) {
        if (nodes[i].spec.name == name) return static_cast<int>(i);
    }
    return -1;
}

Graph build_graph(const ModelSpec& spec) {
    check_model_input(spec);
    Graph graph;
    graph.spec = spec;
    detail::fill_default_inputs(graph.spec.layers);
    const std::vector<std::vector<int>> inputs =
        detail::resolve_layer_inputs(graph.spec, fmt::format("model '{}'", spec.name));
    for (size_t i = 0; i < graph.spec.layers.size(); ++i) {
        const int index = static_cast<int>(i);
        Node node;
        node.spec = graph.spec.layers[i];
        node.inputs = inputs[i];
        for (int input : node.inputs) {
            if (input == kInput) continue;
            std::vector<int>& consumers = graph.nodes[static_cast<size_t>(input)].consumers;
            if (consumers.empty() || consumers.back() != index)
                consumers.push_back(index);  // once per reader
        }
        node.output = infer_output(node, layer_context(graph, node));
        add_state(graph, node, index);
        graph.nodes.push_back(std::move(node));
    }
    check_outputs(graph);
    return graph;
}

}  // namespace cudacnn::graph
