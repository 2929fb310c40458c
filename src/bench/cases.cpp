// --shape parsing and printing, and the layer shapes of a model that cudacnn-bench measures.
#include "cudacnn/bench/cases.hpp"

#include <algorithm>
#include <charconv>
#include <map>

#include <fmt/format.h>

#include "cudacnn/data/dataset.hpp"
#include "cudacnn/error.hpp"
#include "cudacnn/error_text.hpp"
#include "cudacnn/train/options.hpp"

namespace cudacnn::bench {
namespace {

using train::UsageError;

// One key of an op: its default ("" for a required key; "=KEY" for another key's value).
struct KeyForm {
    const char* key;
    const char* fallback;
};

// Pairs of keys that print (and may be given) as one shorthand when both halves are equal.
struct PairForm {
    const char* shorthand;
    const char* first;
    const char* second;
};

constexpr PairForm kPairs[] = {{"K", "KH", "KW"}, {"S", "SH", "SW"}, {"P", "PH", "PW"}, {"D", "DH", "DW"}};

struct OpForm {
    const char* op;
    const char* meaning;
    std::vector<KeyForm> keys;
};

const std::vector<OpForm>& op_forms() {
    static const std::vector<OpForm> forms = {
        {"conv2d", "input (N, C, H, W), OC filters KH×KW, stride, zero padding, dilation, groups",
         {{"N", ""}, {"C", ""}, {"H", ""}, {"W", ""}, {"OC", ""}, {"KH", ""}, {"KW", ""}, {"SH", "1"},
          {"SW", "1"}, {"PH", "0"}, {"PW", "0"}, {"DH", "1"}, {"DW", "1"}, {"G", "1"}, {"mode", "zeros"}}},
        {"batch_norm2d", "training-mode batch norm of (N, C, H, W)", {{"N", ""}, {"C", ""}, {"H", ""}, {"W", ""}}},
        {"relu", "over N·C·H·W values", {{"N", ""}, {"C", ""}, {"H", "1"}, {"W", "1"}}},
        {"max_pool2d", "window KH×KW, stride (default: the window), -inf padding",
         {{"N", ""}, {"C", ""}, {"H", ""}, {"W", ""}, {"KH", ""}, {"KW", ""}, {"SH", "=KH"}, {"SW", "=KW"},
          {"PH", "0"}, {"PW", "0"}, {"ceil", "0"}}},
        {"avg_pool2d", "window KH×KW, stride (default: the window), zero padding counted",
         {{"N", ""}, {"C", ""}, {"H", ""}, {"W", ""}, {"KH", ""}, {"KW", ""}, {"SH", "=KH"}, {"SW", "=KW"},
          {"PH", "0"}, {"PW", "0"}, {"ceil", "0"}}},
        {"linear", "x (N, IN) times weight (OUT, IN)ᵀ plus bias", {{"N", ""}, {"IN", ""}, {"OUT", ""}}},
        {"cross_entropy", "mean cross-entropy of logits (N, C)", {{"N", ""}, {"C", ""}}},
        {"adam", "one fused step over P parameters", {{"P", ""}}},
        {"adamw", "one fused step over P parameters", {{"P", ""}}},
        {"sgd", "one fused step over P parameters (momentum 0.9)", {{"P", ""}}},
        {"augment", "augmentation op OP of N random 32×32 RGB images; default: the trainer's crop + flip + "
                    "normalize; OP is one of",
         {{"OP", "default"}, {"N", ""}}},
    };
    return forms;
}

const OpForm* find_op(const std::string& op) {
    for (const OpForm& form : op_forms())
        if (op == form.op) return &form;
    return nullptr;
}

std::string op_names() {
    std::string names;
    for (const OpForm& form : op_forms()) names += (names.empty() ? "" : ", ") + std::string(form.op);
    return names;
}

bool is_word_key(const std::string& key) { return key == "mode" || key == "OP"; }

const AugmentBenchOp* find_augment_op(const std::string& name) {
    for (const AugmentBenchOp& op : augment_bench_ops())
        if (name == op.name) return &op;
    return nullptr;
}

std::string augment_op_names() {
    std::string names;
    for (const AugmentBenchOp& op : augment_bench_ops()) names += (names.empty() ? "" : ", ") + std::string(op.name);
    return names;
}

[[noreturn]] void shape_fail(const std::string& text, const std::string& problem) {
    throw UsageError(fmt::format("--shape {}: {}", text, problem));
}

const PairForm* pair_of(const std::string& key) {
    for (const PairForm& p : kPairs)
        if (key == p.first || key == p.second) return &p;
    return nullptr;
}

}  // namespace

const std::string& OpCase::text(const std::string& key) const {
    for (const auto& [k, v] : params)
        if (k == key) return v;
    CUDACNN_FAIL("bench: op '{}' has no parameter '{}'", op, key);
}

int64_t OpCase::number(const std::string& key) const {
    const std::string& value = text(key);
    int64_t n = 0;
    const auto [end, error] = std::from_chars(value.data(), value.data() + value.size(), n);
    CUDACNN_CHECK(error == std::errc() && end == value.data() + value.size(),
                  "bench: parameter {}={} of op '{}' is not a whole number", key, value, op);
    return n;
}

bool operator==(const OpCase& a, const OpCase& b) { return a.op == b.op && a.params == b.params; }

std::vector<std::string> shape_forms() {
    std::vector<std::string> lines;
    for (const OpForm& form : op_forms()) {
        std::string keys;
        for (const KeyForm& k : form.keys) {
            keys += keys.empty() ? "" : ",";
            keys += k.key;
            if (*k.fallback != '\0' && *k.fallback != '=') keys += fmt::format("[={}]", k.fallback);
        }
        const std::string ops = form.op == std::string("augment") ? " " + augment_op_names() : "";
        lines.push_back(fmt::format("{}:{}  ({}{})", form.op, keys, form.meaning, ops));
    }
    return lines;
}

OpCase parse_shape(const std::string& text) {
    const size_t colon = text.find(':');
    const std::string op = text.substr(0, colon);
    const OpForm* form = find_op(op);
    if (form == nullptr) shape_fail(text, fmt::format("unknown op '{}'; use {}", op, op_names()));
    if (colon == std::string::npos) shape_fail(text, fmt::format("give the parameters after a colon, e.g. {}", shape_forms()[0]));

    std::map<std::string, std::string> given;
    std::string rest = text.substr(colon + 1);
    size_t start = 0;
    while (start <= rest.size()) {
        const size_t comma = std::min(rest.find(',', start), rest.size());
        const std::string item = rest.substr(start, comma - start);
        start = comma + 1;
        const size_t equals = item.find('=');
        if (equals == std::string::npos || equals == 0)
            shape_fail(text, fmt::format("'{}' is not KEY=VALUE", item));
        std::string key = item.substr(0, equals);
        const std::string value = item.substr(equals + 1);
        std::vector<std::string> keys{key};
        const bool direct_key = std::any_of(form->keys.begin(), form->keys.end(),
                                            [&](const KeyForm& f) { return key == f.key; });
        for (const PairForm& p : kPairs)
            if (!direct_key && key == p.shorthand) keys = {p.first, p.second};
        for (const std::string& k : keys) {
            const bool known = std::any_of(form->keys.begin(), form->keys.end(),
                                           [&](const KeyForm& f) { return k == f.key; });
            if (!known) {
                std::string accepted;
                for (const KeyForm& f : form->keys) accepted += (accepted.empty() ? "" : ", ") + std::string(f.key);
                shape_fail(text, fmt::format("{} has no key '{}'; its keys are {}", op, key, accepted));
            }
            if (given.count(k) != 0) shape_fail(text, fmt::format("{} is given twice", k));
            given[k] = value;
        }
    }

    OpCase c{op, {}};
    for (const KeyForm& k : form->keys) {
        std::string value;
        if (given.count(k.key) != 0) {
            value = given[k.key];
        } else if (*k.fallback == '\0') {
            shape_fail(text, fmt::format("{} needs {} (e.g. {})", op, k.key, shape_forms()[static_cast<size_t>(form - op_forms().data())]));
        } else if (*k.fallback == '=') {
            value = c.text(k.fallback + 1);
        } else {
            value = k.fallback;
        }
        if (std::string(k.key) == "OP") {
            if (find_augment_op(value) == nullptr)
                shape_fail(text, fmt::format("OP={}: unknown augmentation op; use {}", value, augment_op_names()));
        } else if (is_word_key(k.key)) {
            bool known = false;
            for (auto mode : {cpu::Conv2dPaddingMode::zeros, cpu::Conv2dPaddingMode::reflect,
                              cpu::Conv2dPaddingMode::replicate, cpu::Conv2dPaddingMode::circular})
                known = known || value == cpu::conv2d_padding_mode_name(mode);
            if (!known) shape_fail(text, fmt::format("mode={}: use zeros, reflect, replicate or circular", value));
        } else {
            int64_t n = 0;
            const auto [end, error] = std::from_chars(value.data(), value.data() + value.size(), n);
            if (error != std::errc() || end != value.data() + value.size())
                shape_fail(text, fmt::format("{}={} is not a whole number", k.key, value));
            const bool zero_ok = pair_of(k.key) != nullptr && pair_of(k.key)->shorthand == std::string("P");
            const bool flag = std::string(k.key) == "ceil";
            if (flag ? (n != 0 && n != 1) : (n < (zero_ok ? 0 : 1)))
                shape_fail(text, fmt::format("{}={} must be {}", k.key, value,
                                             flag ? "0 or 1" : zero_ok ? "at least 0" : "at least 1"));
        }
        c.params.emplace_back(k.key, value);
    }
    // Let the reference's own checks judge the geometry, worded for the command line.
    try {
        if (op == "conv2d") conv2d_geometry_of(c);
        if (op == "max_pool2d") cpu::max_pool2d_output_shape(input_shape_of(c), max_pool_options_of(c));
        if (op == "avg_pool2d") cpu::avg_pool2d_output_shape(input_shape_of(c), avg_pool_options_of(c));
    } catch (const UsageError&) {
        throw;
    } catch (const Error& e) {
        shape_fail(text, without_location(e));
    }
    return c;
}

std::string shape_text(const OpCase& c) {
    const OpForm* form = find_op(c.op);
    CUDACNN_CHECK(form != nullptr, "bench: unknown op '{}'", c.op);
    std::vector<std::string> items;
    for (const KeyForm& k : form->keys) {
        const std::string& value = c.text(k.key);
        const std::string fallback = *k.fallback == '=' ? c.text(k.fallback + 1) : std::string(k.fallback);
        const PairForm* pair = pair_of(k.key);
        if (pair == nullptr) {
            if (value != fallback) items.push_back(fmt::format("{}={}", k.key, value));
            continue;
        }
        if (k.key != std::string(pair->first)) continue;  // the pair is written at its first key
        const std::string& second = c.text(pair->second);
        const KeyForm* second_form = nullptr;
        for (const KeyForm& f : form->keys)
            if (f.key == std::string(pair->second)) second_form = &f;
        const std::string second_fallback =
            *second_form->fallback == '=' ? c.text(second_form->fallback + 1) : std::string(second_form->fallback);
        if (value == fallback && second == second_fallback) continue;
        if (value == second) {
            items.push_back(fmt::format("{}={}", pair->shorthand, value));
        } else {
            items.push_back(fmt::format("{}={},{}={}", pair->first, value, pair->second, second));
        }
    }
    return fmt::format("{}", fmt::join(items, ","));
}

Shape input_shape_of(const OpCase& c) {
    return Shape{c.number("N"), c.number("C"), c.number("H"), c.number("W")};
}

cpu::Conv2dOptions conv2d_options_of(const OpCase& c) {
    CUDACNN_CHECK(c.op == "conv2d", "bench: op '{}' is not a conv2d", c.op);
    cpu::Conv2dOptions options;
    options.stride = {c.number("SH"), c.number("SW")};
    options.padding = cpu::Conv2dPadding(c.number("PH"), c.number("PW"));
    options.dilation = {c.number("DH"), c.number("DW")};
    options.groups = c.number("G");
    for (auto mode : {cpu::Conv2dPaddingMode::zeros, cpu::Conv2dPaddingMode::reflect,
                      cpu::Conv2dPaddingMode::replicate, cpu::Conv2dPaddingMode::circular})
        if (c.text("mode") == cpu::conv2d_padding_mode_name(mode)) options.padding_mode = mode;
    return options;
}

Shape conv2d_weight_shape_of(const OpCase& c) {
    const int64_t groups = c.number("G");
    CUDACNN_CHECK(c.number("C") % groups == 0 && c.number("OC") % groups == 0,
                  "conv2d: C={} and OC={} must both be multiples of G={}", c.number("C"), c.number("OC"), groups);
    return Shape{c.number("OC"), c.number("C") / groups, c.number("KH"), c.number("KW")};
}

cpu::Conv2dGeometry conv2d_geometry_of(const OpCase& c) {
    return cpu::conv2d_geometry(input_shape_of(c), conv2d_weight_shape_of(c), conv2d_options_of(c));
}

cpu::MaxPool2dOptions max_pool_options_of(const OpCase& c) {
    CUDACNN_CHECK(c.op == "max_pool2d", "bench: op '{}' is not a max_pool2d", c.op);
    cpu::MaxPool2dOptions o;
    o.kernel_size = {c.number("KH"), c.number("KW")};
    o.stride = cpu::Pair2d{c.number("SH"), c.number("SW")};
    o.padding = {c.number("PH"), c.number("PW")};
    o.ceil_mode = c.number("ceil") == 1;
    return o;
}

cpu::AvgPool2dOptions avg_pool_options_of(const OpCase& c) {
    CUDACNN_CHECK(c.op == "avg_pool2d", "bench: op '{}' is not an avg_pool2d", c.op);
    cpu::AvgPool2dOptions o;
    o.kernel_size = {c.number("KH"), c.number("KW")};
    o.stride = cpu::Pair2d{c.number("SH"), c.number("SW")};
    o.padding = {c.number("PH"), c.number("PW")};
    o.ceil_mode = c.number("ceil") == 1;
    return o;
}

const std::vector<AugmentBenchOp>& augment_bench_ops() {
    // torchvision's defaults where it has them (RandomHorizontalFlip's p = 0.5, RandomErasing's p = 0.5 and
    // value 0), else the usual CIFAR-training arguments; normalize is CIFAR-10's (cifar10_normalization).
    static const std::vector<AugmentBenchOp> ops = {
        {"default", "crop:32:4,hflip"},
        {"crop", "crop:32:4"},
        {"hflip", "hflip:0.5"},
        {"vflip", "vflip:0.5"},
        {"jitter", "jitter:0.4:0.4:0.4:0.1"},
        {"grayscale", "grayscale:0.1"},
        {"erasing", "erasing:0.5"},
        {"noise", "noise:0.1"},
        {"saltpepper", "saltpepper:0.05"},
        {"normalize", "normalize:0.4914/0.4822/0.4465:0.2023/0.1994/0.2010"},
        {"affine", "affine:15:0.1:0.9-1.1:5:bilinear"},
        {"rotation", "rotation:30:bilinear"},
        {"centercrop", "centercrop:28"},
        {"resizedcrop", "resizedcrop:32"},
        {"perspective", "perspective:0.5:1"},
    };
    return ops;
}

data::AugmentSpec augment_spec_of(const OpCase& c) {
    CUDACNN_CHECK(c.op == "augment", "bench: op '{}' is not an augment", c.op);
    const AugmentBenchOp* op = find_augment_op(c.text("OP"));
    CUDACNN_CHECK(op != nullptr, "bench: unknown augmentation op '{}'; use {}", c.text("OP"), augment_op_names());
    const data::AugmentSpec spec = data::parse_augment_spec(op->spec);
    if (std::string(op->name) != "default") return spec;
    const data::Normalization n = data::cifar10_normalization();
    return data::with_normalization(spec, n.mean, n.stddev);
}

std::vector<OpCase> augment_cases() {
    std::vector<OpCase> cases;
    for (const AugmentBenchOp& op : augment_bench_ops())
        for (const int64_t n : {int64_t{1}, int64_t{32}, int64_t{128}})
            cases.push_back(parse_shape(fmt::format("augment:OP={},N={}", op.name, n)));
    return cases;
}

std::vector<OpCase> cases_from_graph(const graph::Graph& graph, int64_t batch_size, const std::string& optimizer) {
    std::vector<OpCase> cases;
    auto add = [&](const std::string& text) {
        OpCase c = parse_shape(text);
        if (std::find(cases.begin(), cases.end(), c) == cases.end()) cases.push_back(std::move(c));
    };
    const std::string n = fmt::format("N={}", batch_size);
    for (const graph::Node& node : graph.nodes) {
        const graph::LayerSpec& s = node.spec;
        const Shape& in = graph.shape_of(node.inputs.empty() ? graph::kInput : node.inputs[0]);
        const auto image = [&] {
            return in.rank() == 3 ? fmt::format("{},C={},H={},W={}", n, in[0], in[1], in[2])
                                  : fmt::format("{},C={}", n, in.numel());
        };
        switch (s.kind) {
            case graph::LayerKind::conv2d: {
                const cpu::Conv2dGeometry g = cpu::conv2d_geometry(
                    Shape{batch_size, in[0], in[1], in[2]},
                    Shape{s.out_channels, s.in_channels / s.conv.groups, s.kernel_size.h, s.kernel_size.w}, s.conv);
                if (g.pad_top != g.pad_bottom || g.pad_left != g.pad_right) break;  // --shape cannot say it
                add(fmt::format("conv2d:{},OC={},KH={},KW={},SH={},SW={},PH={},PW={},DH={},DW={},G={},mode={}",
                                image(), g.out_channels, g.kernel_h, g.kernel_w, g.stride_h, g.stride_w, g.pad_top,
                                g.pad_left, g.dilation_h, g.dilation_w, g.groups,
                                cpu::conv2d_padding_mode_name(g.padding_mode)));
                break;
            }
            case graph::LayerKind::batch_norm2d:
                add("batch_norm2d:" + image());
                break;
            case graph::LayerKind::relu:
                add("relu:" + image());
                break;
            case graph::LayerKind::max_pool2d: {
                const cpu::MaxPool2dOptions& o = s.max_pool;
                if (o.dilation.h != 1 || o.dilation.w != 1) break;  // --shape cannot say it
                const cpu::Pair2d stride = o.stride.value_or(o.kernel_size);
                add(fmt::format("max_pool2d:{},KH={},KW={},SH={},SW={},PH={},PW={},ceil={}", image(),
                                o.kernel_size.h, o.kernel_size.w, stride.h, stride.w, o.padding.h, o.padding.w,
                                o.ceil_mode ? 1 : 0));
                break;
            }
            case graph::LayerKind::avg_pool2d: {
                const cpu::AvgPool2dOptions& o = s.avg_pool;
                if (!o.count_include_pad || o.divisor_override) break;  // --shape cannot say it
                const cpu::Pair2d stride = o.stride.value_or(o.kernel_size);
                add(fmt::format("avg_pool2d:{},KH={},KW={},SH={},SW={},PH={},PW={},ceil={}", image(),
                                o.kernel_size.h, o.kernel_size.w, stride.h, stride.w, o.padding.h, o.padding.w,
                                o.ceil_mode ? 1 : 0));
                break;
            }
            case graph::LayerKind::linear:
                add(fmt::format("linear:{},IN={},OUT={}", n, s.in_features, s.out_features));
                break;
            default:
                break;
        }
    }
    add(fmt::format("cross_entropy:{},C={}", n, graph.spec.num_classes));
    add(fmt::format("{}:P={}", optimizer, graph.trainable_parameter_count()));
    return cases;
}

}  // namespace cudacnn::bench
