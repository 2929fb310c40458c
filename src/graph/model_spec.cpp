// Model specs as JSON: the parser (every error names the file, the layer and the key) and the writer.
//
// The format (docs/model-format.md has the full table of keys):
//
//   {"name": "cifar_cnn", "input": [3, 32, 32], "num_classes": 10,
//    "layers": [
//      {"name": "conv_layer.0", "type": "conv2d", "in_channels": 3, "out_channels": 32, "kernel_size": 3,
//       "padding": 1},
//      {"name": "conv_layer.1", "type": "batch_norm2d", "num_features": 32},
//      {"name": "conv_layer.2", "type": "relu"},
//      ...
//      {"name": "flatten", "type": "flatten"},
//      ...
//      {"name": "res", "type": "add", "inputs": ["a", "b"]}]}
//
// "input" is the per-sample shape (C, H, W) and "num_classes" the size of the last layer's output (the
// logits). Every layer has a "name" (unique, not "input"; the state_dict prefix of its parameters) and a
// "type" (layer_kind_name); "inputs" names earlier layers or "input" (the model input) and defaults to the
// previous layer ("input" for the first). The other keys are PyTorch's argument names with PyTorch's
// defaults:
//   conv2d        in_channels, out_channels, kernel_size; stride 1, padding 0 (or "same" / "valid"),
//                 dilation 1, groups 1, bias true, padding_mode "zeros"
//   batch_norm2d  num_features; eps 1e-5, momentum 0.1 (null: cumulative average), affine true,
//                 track_running_stats true
//   max_pool2d    kernel_size; stride null (= kernel_size), padding 0, dilation 1, ceil_mode false
//   avg_pool2d    kernel_size; stride null, padding 0, ceil_mode false, count_include_pad true,
//                 divisor_override null
//   adaptive_avg_pool2d  output_size
//   dropout, dropout2d   p 0.5
//   linear        in_features, out_features; bias true
//   relu, flatten, add, concat: none (add and concat take two or more "inputs")
// Sizes (kernel_size, stride, padding, dilation, output_size) are an integer or [h, w]. Unknown keys and
// types are errors, not silently ignored.
#include "cudacnn/graph/model.hpp"

#include <algorithm>
#include <cmath>
#include <fstream>
#include <limits>
#include <utility>

#include <nlohmann/json.hpp>

#include "cudacnn/error.hpp"
#include "cudacnn/json_parse.hpp"
#include "spec_internal.hpp"

namespace cudacnn::graph {

using nlohmann::json;

namespace {

const std::vector<std::string> kModelKeys = {"name", "input", "num_classes", "layers"};
const std::vector<std::string> kCommonLayerKeys = {"name", "type", "inputs"};

// The keys a layer of each kind may have besides the common ones.
std::vector<std::string> kind_keys(LayerKind kind) {
    switch (kind) {
        case LayerKind::conv2d:
            return {"in_channels", "out_channels", "kernel_size", "stride",      "padding",
                    "dilation",    "groups",       "bias",        "padding_mode"};
        case LayerKind::batch_norm2d:
            return {"num_features", "eps", "momentum", "affine", "track_running_stats"};
        case LayerKind::max_pool2d:
            return {"kernel_size", "stride", "padding", "dilation", "ceil_mode"};
        case LayerKind::avg_pool2d:
            return {"kernel_size", "stride", "padding", "ceil_mode", "count_include_pad", "divisor_override"};
        case LayerKind::adaptive_avg_pool2d:
            return {"output_size"};
        case LayerKind::dropout:
        case LayerKind::dropout2d:
            return {"p"};
        case LayerKind::linear:
            return {"in_features", "out_features", "bias"};
        case LayerKind::relu:
        case LayerKind::flatten:
        case LayerKind::add:
        case LayerKind::concat:
            break;
    }
    return {};
}

std::string join(const std::vector<std::string>& items) {
    return fmt::format("{}", fmt::join(items, ", "));
}

// The fallback of a nullable key that is absent: present-and-none, not "no fallback".
template <class T>
const std::optional<std::optional<T>> kAbsentIsNone{std::in_place, std::nullopt};

// The largest integer a spec may hold: larger sizes are typos or damage, and products of them (dilation ·
// kernel, C · H · W) stay far from overflowing int64.
constexpr int64_t kMaxSpecInteger = int64_t{1} << 30;

std::string integer_bound(int64_t min) {
    if (min == 1) return "a positive integer";
    if (min == 0) return "a non-negative integer";
    return fmt::format("an integer >= {}", min);
}

// Reads the keys of one JSON object (the model or a layer); every failure names `where` and the key.
class Reader {
  public:
    // where: "models/m.json: layers[3] 'conv_layer.3' (conv2d)"; owner: "a conv2d layer", for "is missing".
    Reader(const json& object, std::string where, std::string owner)
        : object_(object), where_(std::move(where)), owner_(std::move(owner)) {}

    [[noreturn]] void fail(const std::string& key, const std::string& problem) const {
        CUDACNN_FAIL("{}: key '{}' {}", where_, key, problem);
    }

    void check_keys(const std::vector<std::string>& allowed) const {
        for (const auto& item : object_.items()) {
            if (std::find(allowed.begin(), allowed.end(), item.key()) != allowed.end()) continue;
            CUDACNN_FAIL("{}: unknown key '{}'; {} has the keys {}", where_, item.key(), owner_,
                         join(allowed));
        }
    }

    bool has(const char* key) const { return object_.contains(key); }

    std::string string(const char* key) const {
        return read<std::string>(key, std::nullopt, [&](const json& v) {
            if (!v.is_string() || v.get<std::string>().empty())
                fail(key, "must be a non-empty string, got " + v.dump());
            return v.get<std::string>();
        });
    }

    std::vector<std::string> strings(const char* key, std::vector<std::string> fallback) const {
        return read<std::vector<std::string>>(key, std::move(fallback), [&](const json& v) {
            const std::string expected = "must be a non-empty array of layer names (or \"input\"), got ";
            if (!v.is_array() || v.empty()) fail(key, expected + v.dump());
            std::vector<std::string> out;
            for (const json& item : v) {
                if (!item.is_string()) fail(key, expected + v.dump());
                out.push_back(item.get<std::string>());
            }
            return out;
        });
    }

    int64_t integer(const char* key, int64_t min, std::optional<int64_t> fallback = std::nullopt) const {
        return read<int64_t>(key, fallback, [&](const json& v) { return to_integer(v, key, min); });
    }

    // null gives nullopt, as does an absent key.
    std::optional<int64_t> nullable_integer(const char* key, int64_t min) const {
        return read<std::optional<int64_t>>(key, kAbsentIsNone<int64_t>, [&](const json& v) {
            return v.is_null() ? std::nullopt : std::optional<int64_t>(to_integer(v, key, min));
        });
    }

    cpu::Pair2d pair(const char* key, int64_t min, std::optional<cpu::Pair2d> fallback = std::nullopt) const {
        return read<cpu::Pair2d>(key, fallback, [&](const json& v) { return to_pair(v, key, min); });
    }

    // null gives nullopt, as does an absent key (pool strides: null means kernel_size).
    std::optional<cpu::Pair2d> nullable_pair(const char* key, int64_t min) const {
        return read<std::optional<cpu::Pair2d>>(key, kAbsentIsNone<cpu::Pair2d>, [&](const json& v) {
            return v.is_null() ? std::nullopt : std::optional<cpu::Pair2d>(to_pair(v, key, min));
        });
    }

    double number(const char* key, double lo, double hi, double fallback) const {
        return read<double>(key, fallback, [&](const json& v) { return to_number(v, key, lo, hi); });
    }

    // An absent key gives `fallback`; null gives nullopt (batch norm's momentum=None).
    std::optional<double> nullable_number(const char* key, double lo, double hi,
                                          std::optional<double> fallback) const {
        return read<std::optional<double>>(
            key, std::optional<std::optional<double>>(std::in_place, fallback), [&](const json& v) {
                return v.is_null() ? std::nullopt : std::optional<double>(to_number(v, key, lo, hi));
            });
    }

    bool boolean(const char* key, bool fallback) const {
        return read<bool>(key, fallback, [&](const json& v) {
            if (!v.is_boolean()) fail(key, "must be true or false, got " + v.dump());
            return v.get<bool>();
        });
    }

    cpu::Conv2dPadding conv_padding(const char* key) const {
        return read<cpu::Conv2dPadding>(key, cpu::Conv2dPadding(0), [&](const json& v) {
            if (v == "same") return cpu::Conv2dPadding::same();
            if (v == "valid") return cpu::Conv2dPadding::valid();
            if (v.is_string())
                fail(key, "must be \"same\", \"valid\", an integer or [h, w], got " + v.dump());
            const cpu::Pair2d p = to_pair(v, key, 0);
            return cpu::Conv2dPadding(p.h, p.w);
        });
    }

    cpu::Conv2dPaddingMode padding_mode(const char* key) const {
        using Mode = cpu::Conv2dPaddingMode;
        return read<Mode>(key, Mode::zeros, [&](const json& v) {
            for (Mode mode : {Mode::zeros, Mode::reflect, Mode::replicate, Mode::circular}) {
                if (v == cpu::conv2d_padding_mode_name(mode)) return mode;
            }
            fail(key, "must be \"zeros\", \"reflect\", \"replicate\" or \"circular\", got " + v.dump());
        });
    }

    const json& array(const char* key) const {
        const json& v = required(key);
        if (!v.is_array() || v.empty()) fail(key, "must be a non-empty array, got " + v.dump());
        return v;
    }

  private:
    const json& required(const char* key) const {
        const auto it = object_.find(key);
        if (it == object_.end()) fail(key, fmt::format("is missing; {} needs it", owner_));
        return *it;
    }

    // The converted value of key, or `fallback` when the key is absent (an error when there is none).
    template <class T, class Convert>
    T read(const char* key, std::optional<T> fallback, Convert convert) const {
        if (!object_.contains(key) && fallback) return *std::move(fallback);
        return convert(required(key));
    }

    int64_t to_integer(const json& v, const char* key, int64_t min) const {
        const bool fits = v.is_number_integer() &&
                          (!v.is_number_unsigned() ||
                           v.get<uint64_t>() <= static_cast<uint64_t>(std::numeric_limits<int64_t>::max()));
        if (!fits || v.get<int64_t>() < min)
            fail(key, fmt::format("must be {}, got {}", integer_bound(min), v.dump()));
        if (v.get<int64_t>() > kMaxSpecInteger)
            fail(key, fmt::format("must be at most {} (2^30), got {}", kMaxSpecInteger, v.dump()));
        return v.get<int64_t>();
    }

    cpu::Pair2d to_pair(const json& v, const char* key, int64_t min) const {
        if (v.is_array() && v.size() == 2 && v[0].is_number_integer() && v[1].is_number_integer()) {
            return {to_integer(v[0], key, min), to_integer(v[1], key, min)};
        }
        if (!v.is_number_integer()) {
            fail(key, fmt::format("must be {} or [h, w] of them, got {}", integer_bound(min), v.dump()));
        }
        return cpu::Pair2d(to_integer(v, key, min));
    }

    // hi may be infinity: no upper bound.
    double to_number(const json& v, const char* key, double lo, double hi) const {
        if (!v.is_number() || v.get<double>() < lo || v.get<double>() > hi) {
            const std::string range =
                std::isinf(hi) ? fmt::format(">= {}", lo) : fmt::format("in [{}, {}]", lo, hi);
            fail(key, fmt::format("must be a number {}, got {}", range, v.dump()));
        }
        return v.get<double>();
    }

    const json& object_;
    std::string where_;
    std::string owner_;
};

void parse_conv2d(const Reader& r, LayerSpec& layer) {
    layer.in_channels = r.integer("in_channels", 1);
    layer.out_channels = r.integer("out_channels", 1);
    layer.kernel_size = r.pair("kernel_size", 1);
    layer.conv.stride = r.pair("stride", 1, cpu::Pair2d(1));
    layer.conv.padding = r.conv_padding("padding");
    layer.conv.dilation = r.pair("dilation", 1, cpu::Pair2d(1));
    layer.conv.groups = r.integer("groups", 1, 1);
    layer.bias = r.boolean("bias", true);
    layer.conv.padding_mode = r.padding_mode("padding_mode");
}

void parse_batch_norm2d(const Reader& r, LayerSpec& layer) {
    layer.num_features = r.integer("num_features", 1);
    layer.eps = r.number("eps", 0.0, std::numeric_limits<double>::infinity(), 1e-5);
    layer.momentum = r.nullable_number("momentum", 0.0, 1.0, 0.1);
    layer.affine = r.boolean("affine", true);
    layer.track_running_stats = r.boolean("track_running_stats", true);
}

void parse_max_pool2d(const Reader& r, LayerSpec& layer) {
    layer.max_pool.kernel_size = r.pair("kernel_size", 1);
    layer.max_pool.stride = r.nullable_pair("stride", 1);
    layer.max_pool.padding = r.pair("padding", 0, cpu::Pair2d(0));
    layer.max_pool.dilation = r.pair("dilation", 1, cpu::Pair2d(1));
    layer.max_pool.ceil_mode = r.boolean("ceil_mode", false);
}

void parse_avg_pool2d(const Reader& r, LayerSpec& layer) {
    layer.avg_pool.kernel_size = r.pair("kernel_size", 1);
    layer.avg_pool.stride = r.nullable_pair("stride", 1);
    layer.avg_pool.padding = r.pair("padding", 0, cpu::Pair2d(0));
    layer.avg_pool.ceil_mode = r.boolean("ceil_mode", false);
    layer.avg_pool.count_include_pad = r.boolean("count_include_pad", true);
    layer.avg_pool.divisor_override =
        r.nullable_integer("divisor_override", std::numeric_limits<int64_t>::min());
    if (layer.avg_pool.divisor_override == 0) r.fail("divisor_override", "must not be 0; use null for none");
}

void parse_kind_attributes(const Reader& r, LayerSpec& layer) {
    switch (layer.kind) {
        case LayerKind::conv2d:
            return parse_conv2d(r, layer);
        case LayerKind::batch_norm2d:
            return parse_batch_norm2d(r, layer);
        case LayerKind::max_pool2d:
            return parse_max_pool2d(r, layer);
        case LayerKind::avg_pool2d:
            return parse_avg_pool2d(r, layer);
        case LayerKind::adaptive_avg_pool2d:
            layer.output_size = r.pair("output_size", 1);
            return;
        case LayerKind::dropout:
        case LayerKind::dropout2d:
            layer.p = r.number("p", 0.0, 1.0, 0.5);
            return;
        case LayerKind::linear:
            layer.in_features = r.integer("in_features", 1);
            layer.out_features = r.integer("out_features", 1);
            layer.bias = r.boolean("bias", true);
            return;
        case LayerKind::relu:
        case LayerKind::flatten:
        case LayerKind::add:
        case LayerKind::concat:
            return;
    }
}

std::vector<std::string> type_names() {
    std::vector<std::string> names;
    for (LayerKind kind : detail::all_layer_kinds()) names.emplace_back(layer_kind_name(kind));
    return names;
}

LayerSpec parse_layer(const json& object, size_t index, const std::string& source) {
    const std::string position = fmt::format("{}: layers[{}]", source, index);
    CUDACNN_CHECK(object.is_object(), "{} must be a JSON object with \"name\" and \"type\", got {}", position,
                  object.dump());
    LayerSpec layer;
    const Reader named(object, position, "every layer");
    layer.name = named.string("name");
    const Reader typed(object, fmt::format("{} '{}'", position, layer.name), "every layer");
    const std::string type = typed.string("type");
    const std::optional<LayerKind> kind = layer_kind_from_name(type);
    if (!kind)
        typed.fail("type", fmt::format("is '{}', which is not a layer type; the types are {}", type,
                                       join(type_names())));
    layer.kind = *kind;

    const Reader r(object, detail::layer_location(source, index, layer), fmt::format("a {} layer", type));
    std::vector<std::string> allowed = kCommonLayerKeys;
    for (std::string& key : kind_keys(layer.kind)) allowed.push_back(std::move(key));
    r.check_keys(allowed);
    layer.inputs = r.strings("inputs", {});  // {}: the previous layer, filled in once all are read
    parse_kind_attributes(r, layer);
    return layer;
}

Shape parse_input_shape(const Reader& r) {
    const json& dims = r.array("input");
    std::vector<int64_t> out;
    for (const json& d : dims) {
        if (!d.is_number_integer() || d.get<int64_t>() < 1) {
            r.fail("input", "must list positive sizes, (C, H, W) for images, got " + dims.dump());
        }
        if (d.get<int64_t>() > kMaxSpecInteger)
            r.fail("input", fmt::format("has a size above {} (2^30), got {}", kMaxSpecInteger, dims.dump()));
        out.push_back(d.get<int64_t>());
    }
    // One dimension goes to the batch.
    if (out.size() >= Shape::kMaxRank)
        r.fail("input",
               fmt::format("has {} dimensions; at most {} are possible", out.size(), Shape::kMaxRank - 1));
    return Shape(out);
}

// ---- writing ---------------------------------------------------------------------------------------------

bool same(cpu::Pair2d a, cpu::Pair2d b) {
    return a.h == b.h && a.w == b.w;
}

json pair_json(cpu::Pair2d p) {
    return p.h == p.w ? json(p.h) : json::array({p.h, p.w});
}

json conv_padding_json(const cpu::Conv2dPadding& padding) {
    switch (padding.kind) {
        case cpu::Conv2dPadding::Kind::same:
            return "same";
        case cpu::Conv2dPadding::Kind::valid:
            return "valid";
        case cpu::Conv2dPadding::Kind::numbers:
            break;
    }
    return pair_json(padding.size);
}

// Writes only what differs from PyTorch's defaults, so that files stay short and read like the model code.
void write_kind_attributes(const LayerSpec& layer, json& out) {
    switch (layer.kind) {
        case LayerKind::conv2d: {
            const cpu::Conv2dOptions& c = layer.conv;
            out["in_channels"] = layer.in_channels;
            out["out_channels"] = layer.out_channels;
            out["kernel_size"] = pair_json(layer.kernel_size);
            if (!same(c.stride, 1)) out["stride"] = pair_json(c.stride);
            const bool zero_padding =
                c.padding.kind == cpu::Conv2dPadding::Kind::numbers && same(c.padding.size, 0);
            if (!zero_padding) out["padding"] = conv_padding_json(c.padding);
            if (!same(c.dilation, 1)) out["dilation"] = pair_json(c.dilation);
            if (c.groups != 1) out["groups"] = c.groups;
            if (!layer.bias) out["bias"] = false;
            if (c.padding_mode != cpu::Conv2dPaddingMode::zeros) {
                out["padding_mode"] = cpu::conv2d_padding_mode_name(c.padding_mode);
            }
            return;
        }
        case LayerKind::batch_norm2d:
            out["num_features"] = layer.num_features;
            if (layer.eps != 1e-5) out["eps"] = layer.eps;
            if (!layer.momentum) out["momentum"] = nullptr;
            if (layer.momentum && *layer.momentum != 0.1) out["momentum"] = *layer.momentum;
            if (!layer.affine) out["affine"] = false;
            if (!layer.track_running_stats) out["track_running_stats"] = false;
            return;
        case LayerKind::max_pool2d: {
            const cpu::MaxPool2dOptions& m = layer.max_pool;
            out["kernel_size"] = pair_json(m.kernel_size);
            if (m.stride) out["stride"] = pair_json(*m.stride);
            if (!same(m.padding, 0)) out["padding"] = pair_json(m.padding);
            if (!same(m.dilation, 1)) out["dilation"] = pair_json(m.dilation);
            if (m.ceil_mode) out["ceil_mode"] = true;
            return;
        }
        case LayerKind::avg_pool2d: {
            const cpu::AvgPool2dOptions& a = layer.avg_pool;
            out["kernel_size"] = pair_json(a.kernel_size);
            if (a.stride) out["stride"] = pair_json(*a.stride);
            if (!same(a.padding, 0)) out["padding"] = pair_json(a.padding);
            if (a.ceil_mode) out["ceil_mode"] = true;
            if (!a.count_include_pad) out["count_include_pad"] = false;
            if (a.divisor_override) out["divisor_override"] = *a.divisor_override;
            return;
        }
        case LayerKind::adaptive_avg_pool2d:
            out["output_size"] = pair_json(layer.output_size);
            return;
        case LayerKind::dropout:
        case LayerKind::dropout2d:
            if (layer.p != 0.5) out["p"] = layer.p;
            return;
        case LayerKind::linear:
            out["in_features"] = layer.in_features;
            out["out_features"] = layer.out_features;
            if (!layer.bias) out["bias"] = false;
            return;
        case LayerKind::relu:
        case LayerKind::flatten:
        case LayerKind::add:
        case LayerKind::concat:
            return;
    }
}

// `previous`: the name that "inputs" defaults to; inputs equal to just that are left out. nullptr: always
// written.
json layer_json(const LayerSpec& layer, const std::string* previous) {
    json out = {{"name", layer.name}, {"type", layer_kind_name(layer.kind)}};
    const bool default_inputs =
        previous != nullptr && (layer.inputs.empty() || layer.inputs == std::vector<std::string>{*previous});
    if (!default_inputs) out["inputs"] = layer.inputs;
    write_kind_attributes(layer, out);
    return out;
}

}  // namespace

ModelSpec parse_model_spec(const json& json_spec, const std::string& source) {
    CUDACNN_CHECK(json_spec.is_object(),
                  "{}: a model spec must be a JSON object with \"name\", \"input\", \"num_classes\" and "
                  "\"layers\", got {}",
                  source, json_spec.dump().substr(0, 200));
    const Reader r(json_spec, source, "a model spec");
    r.check_keys(kModelKeys);
    ModelSpec spec;
    spec.name = r.string("name");
    spec.input = parse_input_shape(r);
    spec.num_classes = r.integer("num_classes", 1);
    const json& layers = r.array("layers");
    for (size_t i = 0; i < layers.size(); ++i) spec.layers.push_back(parse_layer(layers[i], i, source));
    detail::fill_default_inputs(spec.layers);
    detail::resolve_layer_inputs(spec, source);
    return spec;
}

ModelSpec load_model_spec(const std::string& path) {
    std::ifstream in(path);
    CUDACNN_CHECK(in.good(), "{}: cannot open the model spec; check the path (built-in models: {})", path,
                  join(builtin_model_names()));
    json parsed;
    try {
        parsed = parse_json_limited(path, in);
    } catch (const json::exception& e) {
        CUDACNN_FAIL("{}: the model spec is not valid JSON: {}", path, e.what());
    }
    return parse_model_spec(parsed, path);
}

json model_spec_to_json(const ModelSpec& spec) {
    json layers = json::array();
    std::string previous = "input";
    for (const LayerSpec& layer : spec.layers) {
        layers.push_back(layer_json(layer, &previous));
        previous = layer.name;
    }
    return {{"name", spec.name},
            {"input", spec.input.dims()},
            {"num_classes", spec.num_classes},
            {"layers", layers}};
}

bool operator==(const LayerSpec& a, const LayerSpec& b) {
    return layer_json(a, nullptr) == layer_json(b, nullptr);
}

// Through the JSON, so that omitted inputs equal the previous layer named explicitly.
bool operator==(const ModelSpec& a, const ModelSpec& b) {
    return model_spec_to_json(a) == model_spec_to_json(b);
}

}  // namespace cudacnn::graph
