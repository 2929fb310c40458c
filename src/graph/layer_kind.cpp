// Layer kinds and their JSON "type" names.
#include "cudacnn/graph/model.hpp"

#include "spec_internal.hpp"

namespace cudacnn::graph {

const char* layer_kind_name(LayerKind kind) {
    switch (kind) {
        case LayerKind::conv2d:
            return "conv2d";
        case LayerKind::batch_norm2d:
            return "batch_norm2d";
        case LayerKind::relu:
            return "relu";
        case LayerKind::max_pool2d:
            return "max_pool2d";
        case LayerKind::avg_pool2d:
            return "avg_pool2d";
        case LayerKind::adaptive_avg_pool2d:
            return "adaptive_avg_pool2d";
        case LayerKind::dropout:
            return "dropout";
        case LayerKind::dropout2d:
            return "dropout2d";
        case LayerKind::flatten:
            return "flatten";
        case LayerKind::linear:
            return "linear";
        case LayerKind::add:
            return "add";
        case LayerKind::concat:
            return "concat";
    }
    return "unknown";
}

std::optional<LayerKind> layer_kind_from_name(const std::string& name) {
    for (LayerKind kind : detail::all_layer_kinds()) {
        if (name == layer_kind_name(kind)) return kind;
    }
    return std::nullopt;
}

namespace detail {

const std::vector<LayerKind>& all_layer_kinds() {
    static const std::vector<LayerKind> kinds = {
        LayerKind::conv2d,     LayerKind::batch_norm2d, LayerKind::relu,
        LayerKind::max_pool2d, LayerKind::avg_pool2d,   LayerKind::adaptive_avg_pool2d,
        LayerKind::dropout,    LayerKind::dropout2d,    LayerKind::flatten,
        LayerKind::linear,     LayerKind::add,          LayerKind::concat};
    return kinds;
}

bool takes_several_inputs(LayerKind kind) {
    return kind == LayerKind::add || kind == LayerKind::concat;
}

std::string layer_label(const LayerSpec& layer) {
    return fmt::format("layer '{}' ({})", layer.name, layer_kind_name(layer.kind));
}

std::string layer_location(const std::string& source, size_t index, const LayerSpec& layer) {
    return fmt::format("{}: layers[{}] '{}' ({})", source, index, layer.name, layer_kind_name(layer.kind));
}

}  // namespace detail

}  // namespace cudacnn::graph
