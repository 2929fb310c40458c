// Helpers shared by the spec parser, the built-in models, the graph builder and the summary (not public API).
#pragma once

#include <string>
#include <vector>

#include "cudacnn/graph/model.hpp"

namespace cudacnn::graph::detail {

const std::vector<LayerKind>& all_layer_kinds();  // in LayerKind's order
bool takes_several_inputs(LayerKind kind);        // add and concat; every other kind reads one input

std::string layer_label(const LayerSpec& layer);  // "layer 'fc_layer.1' (linear)"
// Where a layer sits in a spec, for parse errors: "models/m.json: layers[3] 'conv_layer.3' (conv2d)".
std::string layer_location(const std::string& source, size_t index, const LayerSpec& layer);

// Gives every layer that names no inputs the previous layer (the first one: "input"), as the JSON's default.
void fill_default_inputs(std::vector<LayerSpec>& layers);

// Checks the names (non-empty, unique, not "input") and inputs (earlier layers or "input"; exactly one for
// most kinds, two or more for add and concat) and returns each layer's input node indices (kInput for the
// model input). A layer without inputs reads the previous one. Errors start with `source` and name the layer
// (index and name) and the key.
std::vector<std::vector<int>> resolve_layer_inputs(const ModelSpec& spec, const std::string& source);

}  // namespace cudacnn::graph::detail
