// Model specs and the graph built from them: named layers (PyTorch state_dict prefixes), each reading the
// outputs of named earlier layers (so residual adds and concatenations work), with shapes inferred per
// sample and the state_dict entries (parameters and buffers) that the layers own.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "cudacnn/ops/batch_norm.hpp"
#include "cudacnn/ops/conv2d.hpp"
#include "cudacnn/ops/pool.hpp"
#include "cudacnn/tensor.hpp"

namespace cudacnn::graph {

enum class LayerKind {
    conv2d,               // weight (OC, IC/groups, KH, KW), bias (OC)
    batch_norm2d,         // weight, bias (C) when affine; running_mean, running_var, num_batches_tracked
    relu,
    max_pool2d,
    avg_pool2d,
    adaptive_avg_pool2d,  // output_size (H, W); (1, 1) is global average pooling
    dropout,              // element-wise, p
    dropout2d,            // whole channels, p
    flatten,              // (C, H, W) → (C·H·W), as x.view(x.size(0), -1)
    linear,               // weight (out, in), bias (out)
    add,                  // element-wise sum of two or more inputs of one shape
    concat,               // along channels (dim 1 of (N, C, H, W))
};

const char* layer_kind_name(LayerKind kind);               // "conv2d", … (the JSON "type")
std::optional<LayerKind> layer_kind_from_name(const std::string& name);

// One layer as the spec describes it. Only the attributes of its kind are meaningful.
struct LayerSpec {
    std::string name;                 // unique; the state_dict prefix of its parameters ("conv_layer.0")
    LayerKind kind = LayerKind::relu;
    std::vector<std::string> inputs;  // layer names or "input"; the JSON may omit it: the previous layer

    // conv2d
    int64_t in_channels = 0, out_channels = 0;
    cpu::Pair2d kernel_size{0, 0};
    cpu::Conv2dOptions conv;  // stride, padding, dilation, groups, padding_mode
    bool bias = true;         // conv2d and linear
    // batch_norm2d
    int64_t num_features = 0;
    double eps = 1e-5;
    std::optional<double> momentum = 0.1;  // JSON null: cumulative average (PyTorch's momentum=None)
    bool affine = true;
    bool track_running_stats = true;
    // max_pool2d / avg_pool2d / adaptive_avg_pool2d
    cpu::MaxPool2dOptions max_pool;
    cpu::AvgPool2dOptions avg_pool;
    cpu::Pair2d output_size{1, 1};
    // dropout / dropout2d
    double p = 0.5;
    // linear
    int64_t in_features = 0, out_features = 0;
};

// A whole model: per-sample input shape (C, H, W), class count and layers in execution order; the last
// layer's output (N, num_classes) is the logits.
struct ModelSpec {
    std::string name;
    Shape input{3, 32, 32};
    int64_t num_classes = 10;
    std::vector<LayerSpec> layers;
};

// Equal when model_spec_to_json writes the same: the name, the inputs and the attributes of the layer's
// kind (the others are not compared, since nothing reads them). For ModelSpec, a layer with no inputs
// equals one that names the previous layer (the JSON's default).
bool operator==(const LayerSpec& a, const LayerSpec& b);
inline bool operator!=(const LayerSpec& a, const LayerSpec& b) { return !(a == b); }
bool operator==(const ModelSpec& a, const ModelSpec& b);
inline bool operator!=(const ModelSpec& a, const ModelSpec& b) { return !(a == b); }

// Parses a spec; `source` (a file name, or "built-in cifar_cnn") goes into every error message, with the
// layer's name or index and the offending key. Unknown keys are errors, not silently ignored.
ModelSpec parse_model_spec(const nlohmann::json& json, const std::string& source);
ModelSpec load_model_spec(const std::string& path);  // reads and parses a JSON file
nlohmann::json model_spec_to_json(const ModelSpec& spec);  // parse_model_spec(to_json(s)) == s

// "cifar_cnn" (DESIGN.md, 5,852,170 parameters, PyTorch state_dict names; models/cifar_cnn.json), "small_cnn"
// (a few thousand parameters, for quick CPU runs), torchvision's "vgg16", "vgg16_bn", "resnet18", "resnet50".
ModelSpec builtin_model(const std::string& name);  // throws Error listing the built-in names
std::vector<std::string> builtin_model_names();

// A state_dict entry: a parameter (trainable, f32) or a buffer (running statistics f32,
// num_batches_tracked i64), with its layer.
struct StateEntry {
    std::string name;  // "conv_layer.1.running_mean"
    Shape shape;
    DType dtype = DType::f32;
    bool trainable = false;
    int node = -1;     // the owning node
    std::string role;  // "weight", "bias", "running_mean", "running_var", "num_batches_tracked"
};

struct Node {
    LayerSpec spec;
    std::vector<int> inputs;     // node indices; kInput for the model input
    std::vector<int> consumers;  // node indices that read this node's output
    Shape output;                // per sample, without the batch dimension: (C, H, W) or (F)
    std::vector<int> state;      // indices into Graph::state, in state_dict order
};

constexpr int kInput = -1;

struct Graph {
    ModelSpec spec;
    std::vector<Node> nodes;         // execution order; nodes.back() gives the logits
    std::vector<StateEntry> state;   // state_dict order: per layer, parameters then buffers

    const Shape& shape_of(int node) const;                // kInput: spec.input
    int64_t trainable_parameter_count() const;
    int64_t state_bytes() const;                          // parameters and buffers, as stored
    std::vector<int> parameters() const;                  // named_parameters() order (indices into state)
    int find_node(const std::string& name) const;         // −1 when there is none
};

// Resolves inputs, infers every shape and lists the state. Errors name the layer, its input shape(s) and
// the problem ("layer 'fc_layer.1' (linear): input (256, 4, 4) has 4096 features, in_features is 4095").
Graph build_graph(const ModelSpec& spec);

// The seed's model summary (torchsummary's table): each layer with its output shape [-1, …] and parameter
// count, the trainable and non-trainable totals, and the model size in MB (parameters and buffers, MiB).
std::string model_summary(const Graph& graph);

}  // namespace cudacnn::graph
