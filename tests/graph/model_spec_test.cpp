// Model specs: layer kind names, parsing with PyTorch's defaults, the JSON round trip, the built-ins against
// models/cifar_cnn.json, and an Error naming the source, the layer and the key for every kind of bad spec.
#include <catch2/catch.hpp>

#include <cstdio>
#include <fstream>
#include <string>

#include <nlohmann/json.hpp>

#include "cudacnn/graph/model.hpp"
#include "support/errors.hpp"

using namespace cudacnn;
using namespace cudacnn::graph;
using Catch::Contains;
using nlohmann::json;
using test::error_message;

namespace {

// The repository root, from the fixtures folder that CMake passes to the tests (<repo>/tests/fixtures).
std::string repo_path(const std::string& relative) {
    return std::string(CUDACNN_FIXTURES_DIR) + "/../../" + relative;
}

json model_with(const json& layers) {
    return {{"name", "m"}, {"input", {3, 8, 8}}, {"num_classes", 10}, {"layers", layers}};
}
// A braced list of layers: {conv()} would otherwise be the one layer itself, not an array of it.
json model_with(std::initializer_list<json> layers) {
    return model_with(json(json::array_t(layers)));
}

std::string parse_error(const json& spec) {
    return error_message([&] { parse_model_spec(spec, "m.json"); });
}

// The error of a spec whose only layer is `layer`.
std::string layer_error(const json& layer) {
    return parse_error(model_with({layer}));
}

json conv(json extra = json::object()) {
    json layer = {
        {"name", "c"}, {"type", "conv2d"}, {"in_channels", 3}, {"out_channels", 4}, {"kernel_size", 3}};
    layer.update(extra);
    return layer;
}

void write_file(const std::string& path, const std::string& text) {
    std::ofstream(path) << text;
}

}  // namespace

TEST_CASE("layer kinds have their JSON names and back", "[graph]") {
    CHECK(std::string(layer_kind_name(LayerKind::conv2d)) == "conv2d");
    CHECK(std::string(layer_kind_name(LayerKind::adaptive_avg_pool2d)) == "adaptive_avg_pool2d");
    for (LayerKind kind :
         {LayerKind::conv2d, LayerKind::batch_norm2d, LayerKind::relu, LayerKind::max_pool2d,
          LayerKind::avg_pool2d, LayerKind::adaptive_avg_pool2d, LayerKind::dropout, LayerKind::dropout2d,
          LayerKind::flatten, LayerKind::linear, LayerKind::add, LayerKind::concat}) {
        INFO(layer_kind_name(kind));
        CHECK(layer_kind_from_name(layer_kind_name(kind)) == kind);
    }
    CHECK_FALSE(layer_kind_from_name("Conv2d").has_value());
    CHECK_FALSE(layer_kind_from_name("").has_value());
}

TEST_CASE("a spec gets PyTorch's defaults and inputs default to the previous layer", "[graph]") {
    const ModelSpec spec = parse_model_spec(
        model_with({conv(),
                    {{"name", "bn"}, {"type", "batch_norm2d"}, {"num_features", 4}},
                    {{"name", "pool"}, {"type", "max_pool2d"}, {"kernel_size", 2}},
                    {{"name", "avg"}, {"type", "avg_pool2d"}, {"kernel_size", 2}},
                    {{"name", "drop"}, {"type", "dropout"}},
                    {{"name", "fc"}, {"type", "linear"}, {"in_features", 4}, {"out_features", 10}}}),
        "m.json");
    CHECK(spec.name == "m");
    CHECK(spec.input == Shape{3, 8, 8});
    CHECK(spec.num_classes == 10);
    REQUIRE(spec.layers.size() == 6);
    const LayerSpec& c = spec.layers[0];
    CHECK(c.inputs == std::vector<std::string>{"input"});
    CHECK((c.kernel_size.h == 3 && c.kernel_size.w == 3));
    CHECK((c.conv.stride.h == 1 && c.conv.stride.w == 1));
    CHECK(c.conv.padding.kind == cpu::Conv2dPadding::Kind::numbers);
    CHECK((c.conv.padding.size.h == 0 && c.conv.padding.size.w == 0));
    CHECK((c.conv.dilation.h == 1 && c.conv.dilation.w == 1));
    CHECK(c.conv.groups == 1);
    CHECK(c.conv.padding_mode == cpu::Conv2dPaddingMode::zeros);
    CHECK(c.bias);
    const LayerSpec& bn = spec.layers[1];
    CHECK(bn.inputs == std::vector<std::string>{"c"});
    CHECK(bn.eps == 1e-5);
    CHECK(bn.momentum == 0.1);
    CHECK(bn.affine);
    CHECK(bn.track_running_stats);
    const LayerSpec& pool = spec.layers[2];
    CHECK(pool.inputs == std::vector<std::string>{"bn"});
    CHECK_FALSE(pool.max_pool.stride.has_value());
    CHECK((pool.max_pool.padding.h == 0 && pool.max_pool.dilation.w == 1 && !pool.max_pool.ceil_mode));
    const LayerSpec& avg = spec.layers[3];
    CHECK(avg.avg_pool.count_include_pad);
    CHECK_FALSE(avg.avg_pool.divisor_override.has_value());
    CHECK(spec.layers[4].p == 0.5);
    CHECK(spec.layers[5].bias);
}

TEST_CASE("every key of every kind survives parse -> to_json -> parse", "[graph]") {
    const json layers = {
        {{"name", "a"},
         {"type", "conv2d"},
         {"in_channels", 3},
         {"out_channels", 6},
         {"kernel_size", {3, 5}},
         {"stride", {2, 1}},
         {"padding", {1, 2}},
         {"dilation", 2},
         {"groups", 3},
         {"bias", false},
         {"padding_mode", "reflect"}},
        {{"name", "same"},
         {"type", "conv2d"},
         {"in_channels", 6},
         {"out_channels", 6},
         {"kernel_size", 4},
         {"padding", "same"},
         {"padding_mode", "circular"}},
        {{"name", "valid"},
         {"type", "conv2d"},
         {"in_channels", 6},
         {"out_channels", 6},
         {"kernel_size", 1},
         {"padding", "valid"}},
        {{"name", "bn"},
         {"type", "batch_norm2d"},
         {"num_features", 6},
         {"eps", 1e-3},
         {"momentum", nullptr},
         {"affine", false},
         {"track_running_stats", false}},
        {{"name", "bn2"}, {"type", "batch_norm2d"}, {"num_features", 6}, {"momentum", 0.3}},
        {{"name", "mp"},
         {"type", "max_pool2d"},
         {"kernel_size", {3, 2}},
         {"stride", 1},
         {"padding", {1, 0}},
         {"dilation", {2, 1}},
         {"ceil_mode", true}},
        {{"name", "ap"},
         {"type", "avg_pool2d"},
         {"kernel_size", 3},
         {"stride", {2, 1}},
         {"padding", 1},
         {"ceil_mode", true},
         {"count_include_pad", false},
         {"divisor_override", 5}},
        {{"name", "gap"}, {"type", "adaptive_avg_pool2d"}, {"output_size", {2, 3}}},
        {{"name", "d2"}, {"type", "dropout2d"}, {"p", 0.25}},
        {{"name", "cat"}, {"type", "concat"}, {"inputs", {"gap", "d2"}}},
        {{"name", "sum"}, {"type", "add"}, {"inputs", {"cat", "cat", "input"}}},
        {{"name", "flat"}, {"type", "flatten"}, {"inputs", {"sum"}}},
        {{"name", "d"}, {"type", "dropout"}, {"p", 0}},
        {{"name", "fc"}, {"type", "linear"}, {"in_features", 72}, {"out_features", 10}, {"bias", false}},
        {{"name", "r"}, {"type", "relu"}}};
    const ModelSpec spec = parse_model_spec(model_with(layers), "all.json");
    const LayerSpec& a = spec.layers[0];
    CHECK((a.kernel_size.h == 3 && a.kernel_size.w == 5 && a.conv.stride.h == 2 && a.conv.stride.w == 1));
    CHECK((a.conv.padding.size.h == 1 && a.conv.padding.size.w == 2 && a.conv.dilation.h == 2));
    CHECK((a.conv.groups == 3 && !a.bias && a.conv.padding_mode == cpu::Conv2dPaddingMode::reflect));
    CHECK(spec.layers[1].conv.padding.kind == cpu::Conv2dPadding::Kind::same);
    CHECK(spec.layers[2].conv.padding.kind == cpu::Conv2dPadding::Kind::valid);
    CHECK_FALSE(spec.layers[3].momentum.has_value());
    CHECK(spec.layers[4].momentum == 0.3);
    CHECK(spec.layers[5].max_pool.stride.has_value());
    CHECK(spec.layers[6].avg_pool.divisor_override == 5);
    CHECK((spec.layers[7].output_size.h == 2 && spec.layers[7].output_size.w == 3));
    CHECK(spec.layers[10].inputs == std::vector<std::string>{"cat", "cat", "input"});
    CHECK(spec.layers[12].p == 0.0);

    // Written back, the JSON is the input itself (it only had non-default values and inputs that differ
    // from the previous layer, except 'flat', whose explicit ["sum"] the writer leaves out).
    json expected = model_with(layers);
    expected["layers"][11].erase("inputs");
    CHECK(model_spec_to_json(spec) == expected);
    const ModelSpec again = parse_model_spec(model_spec_to_json(spec), "again");
    CHECK(again == spec);
    CHECK(model_spec_to_json(again).dump() == model_spec_to_json(spec).dump());
}

TEST_CASE("spec equality compares what the layer's kind uses", "[graph]") {
    const ModelSpec spec = builtin_model("small_cnn");
    ModelSpec other = spec;
    CHECK(other == spec);
    other.layers[0].num_features = 99;  // not a conv2d attribute
    CHECK(other == spec);
    other.layers[0].conv.stride = 2;
    CHECK(other != spec);
    other = spec;
    other.layers[1].inputs.clear();  // means the previous layer, as the JSON's default
    CHECK(other == spec);
    other.layers[1].inputs = {"input"};
    CHECK(other != spec);
    other = spec;
    other.num_classes = 9;
    CHECK(other != spec);
    CHECK(spec.layers[0] == spec.layers[0]);
    CHECK(spec.layers[0] != spec.layers[4]);
}

TEST_CASE("models/cifar_cnn.json is the built-in cifar_cnn", "[graph]") {
    const std::string path = repo_path("models/cifar_cnn.json");
    const ModelSpec from_file = load_model_spec(path);
    const ModelSpec builtin = builtin_model("cifar_cnn");
    CHECK(from_file == builtin);
    // The writer leaves out defaults as the file does, so even the JSON values agree.
    std::ifstream in(path);
    CHECK(model_spec_to_json(builtin) == json::parse(in));
    REQUIRE(builtin.layers.size() == 27);
    CHECK(builtin.layers[18].name == "conv_layer.18");
    CHECK(builtin.layers[19].name == "flatten");
    CHECK(builtin.layers[26].name == "fc_layer.6");
}

TEST_CASE("the built-in models and their names", "[graph]") {
    CHECK(builtin_model_names() ==
          std::vector<std::string>{"cifar_cnn", "small_cnn", "vgg16", "vgg16_bn", "resnet18", "resnet50"});
    const ModelSpec small = builtin_model("small_cnn");
    CHECK(small.name == "small_cnn");
    std::vector<std::string> names;
    for (const LayerSpec& layer : small.layers) names.push_back(layer.name);
    CHECK(names == std::vector<std::string>{"features.0", "features.1", "features.2", "features.3",
                                            "features.4", "features.5", "features.6", "features.7", "flatten",
                                            "classifier"});
    for (const std::string& name : builtin_model_names()) {
        INFO(name);
        CHECK(parse_model_spec(model_spec_to_json(builtin_model(name)), name) == builtin_model(name));
    }
    CHECK_THAT(error_message([] { builtin_model("resnet34"); }),
               Contains("no built-in model 'resnet34'") &&
                   Contains("cifar_cnn, small_cnn, vgg16, vgg16_bn, resnet18, resnet50"));
}

TEST_CASE("load_model_spec reads a file and reports unreadable ones", "[graph][errors]") {
    const std::string path = "/tmp/cudacnn_test_graph_spec.json";
    write_file(path, model_with({conv()}).dump(2));
    const ModelSpec spec = load_model_spec(path);
    CHECK(spec.layers.at(0).name == "c");
    write_file(path, "{\"name\": \"m\",");
    CHECK_THAT(error_message([&] { load_model_spec(path); }),
               Contains(path) && Contains("not valid JSON") && Contains("line 1"));
    write_file(path, model_with({conv({{"kernel_size", 0}})}).dump());
    CHECK_THAT(error_message([&] { load_model_spec(path); }),
               Contains(path + ": layers[0] 'c' (conv2d): key 'kernel_size' must be a positive integer"));
    std::remove(path.c_str());
    CHECK_THAT(error_message([] { load_model_spec("/nonexistent/model.json"); }),
               Contains("/nonexistent/model.json: cannot open"));
}

TEST_CASE("bad model keys name the source and the key", "[graph][errors]") {
    json spec = model_with({conv()});
    spec["classes"] = 10;
    CHECK_THAT(parse_error(spec), Contains("m.json: unknown key 'classes'") && Contains("num_classes"));
    spec = model_with({conv()});
    spec.erase("num_classes");
    CHECK_THAT(parse_error(spec), Contains("m.json: key 'num_classes' is missing"));
    spec = model_with({conv()});
    spec["input"] = {3, 0, 8};
    CHECK_THAT(parse_error(spec), Contains("m.json: key 'input' must list positive sizes"));
    spec["input"] = "3x32x32";
    CHECK_THAT(parse_error(spec), Contains("key 'input' must be a non-empty array"));
    spec = model_with(json::array());
    CHECK_THAT(parse_error(spec), Contains("m.json: key 'layers' must be a non-empty array"));
    spec = model_with({conv()});
    spec["name"] = 7;
    CHECK_THAT(parse_error(spec), Contains("m.json: key 'name' must be a non-empty string, got 7"));
    CHECK_THAT(parse_error(json::array()), Contains("m.json: a model spec must be a JSON object"));
    CHECK_THAT(parse_error(model_with({json("relu")})), Contains("m.json: layers[0] must be a JSON object"));
}

TEST_CASE("bad layers name the source, the layer and the key", "[graph][errors]") {
    CHECK_THAT(layer_error({{"type", "relu"}}), Contains("m.json: layers[0]: key 'name' is missing"));
    CHECK_THAT(layer_error({{"name", "r"}}), Contains("m.json: layers[0] 'r': key 'type' is missing"));
    CHECK_THAT(layer_error({{"name", "r"}, {"type", "ReLU"}}),
               Contains("layers[0] 'r': key 'type' is 'ReLU', which is not a layer type") &&
                   Contains("relu, max_pool2d"));
    CHECK_THAT(layer_error(conv({{"stide", 2}})),
               Contains("m.json: layers[0] 'c' (conv2d): unknown key 'stide'") && Contains("stride"));
    CHECK_THAT(layer_error({{"name", "r"}, {"type", "relu"}, {"inplace", true}}),
               Contains("layers[0] 'r' (relu): unknown key 'inplace'"));
    json missing = conv();
    missing.erase("out_channels");
    CHECK_THAT(layer_error(missing),
               Contains("layers[0] 'c' (conv2d): key 'out_channels' is missing; a conv2d layer needs it"));
    CHECK_THAT(layer_error({{"name", "p"}, {"type", "max_pool2d"}}),
               Contains("layers[0] 'p' (max_pool2d): key 'kernel_size' is missing"));
}

TEST_CASE("wrong value types and ranges name the key and the value", "[graph][errors]") {
    const std::string at = "m.json: layers[0] 'c' (conv2d): key ";
    CHECK_THAT(layer_error(conv({{"kernel_size", "3"}})),
               Contains(at + "'kernel_size' must be a positive integer or [h, w] of them, got \"3\""));
    CHECK_THAT(layer_error(conv({{"kernel_size", {3, 3, 3}}})), Contains(at + "'kernel_size'"));
    CHECK_THAT(layer_error(conv({{"kernel_size", {3, 0}}})),
               Contains(at + "'kernel_size' must be a positive integer, got 0"));
    CHECK_THAT(layer_error(conv({{"in_channels", 3.0}})),
               Contains(at + "'in_channels' must be a positive integer, got 3.0"));
    CHECK_THAT(layer_error(conv({{"in_channels", true}})),
               Contains(at + "'in_channels' must be a positive integer"));
    CHECK_THAT(layer_error(conv({{"in_channels", json(18446744073709551615ULL)}})),
               Contains(at + "'in_channels' must be a positive integer, got 18446744073709551615"));
    CHECK_THAT(layer_error(conv({{"padding", -1}})),
               Contains(at + "'padding' must be a non-negative integer"));
    CHECK_THAT(layer_error(conv({{"padding", "full"}})),
               Contains(at + "'padding' must be \"same\", \"valid\", an integer or [h, w], got \"full\""));
    CHECK_THAT(layer_error(conv({{"padding_mode", "wrap"}})),
               Contains(at + "'padding_mode' must be \"zeros\", \"reflect\", \"replicate\" or \"circular\""));
    CHECK_THAT(layer_error(conv({{"bias", 1}})), Contains(at + "'bias' must be true or false, got 1"));
    CHECK_THAT(layer_error(conv({{"groups", 0}})),
               Contains(at + "'groups' must be a positive integer, got 0"));
    CHECK_THAT(layer_error({{"name", "d"}, {"type", "dropout"}, {"p", 1.5}}),
               Contains("layers[0] 'd' (dropout): key 'p' must be a number in [0, 1], got 1.5"));
    CHECK_THAT(
        layer_error({{"name", "b"}, {"type", "batch_norm2d"}, {"num_features", 4}, {"momentum", "none"}}),
        Contains("layers[0] 'b' (batch_norm2d): key 'momentum' must be a number in [0, 1], got \"none\""));
    CHECK_THAT(layer_error({{"name", "b"}, {"type", "batch_norm2d"}, {"num_features", 4}, {"eps", -1}}),
               Contains("key 'eps' must be a number >= 0, got -1"));
    CHECK_THAT(
        layer_error({{"name", "a"}, {"type", "avg_pool2d"}, {"kernel_size", 2}, {"divisor_override", 0}}),
        Contains("layers[0] 'a' (avg_pool2d): key 'divisor_override' must not be 0"));
    CHECK_THAT(layer_error({{"name", "m"}, {"type", "max_pool2d"}, {"kernel_size", 2}, {"stride", 0}}),
               Contains("layers[0] 'm' (max_pool2d): key 'stride' must be a positive integer"));
    CHECK_THAT(layer_error(conv({{"inputs", "input"}})),
               Contains(at + "'inputs' must be a non-empty array of layer names"));
    CHECK_THAT(layer_error(conv({{"inputs", json::array()}})),
               Contains(at + "'inputs' must be a non-empty array"));
}

TEST_CASE("names must be unique and inputs must name earlier layers", "[graph][errors]") {
    const json relu = {{"name", "r"}, {"type", "relu"}};
    CHECK_THAT(parse_error(model_with({conv(), relu, relu})),
               Contains("m.json: layers[2] 'r' (relu): key 'name': 'r' is also the name of layers[1]") &&
                   Contains("unique"));
    CHECK_THAT(layer_error({{"name", "input"}, {"type", "relu"}}),
               Contains("layers[0] 'input' (relu): key 'name': 'input' is reserved"));
    CHECK_THAT(layer_error({{"name", ""}, {"type", "relu"}}),
               Contains("layers[0]: key 'name' must be a non-empty string"));
    CHECK_THAT(parse_error(model_with({conv({{"inputs", {"r"}}}), relu})),
               Contains("m.json: layers[0] 'c' (conv2d): key 'inputs': 'r' is layers[1], which does not come "
                        "before this layer"));
    CHECK_THAT(parse_error(model_with({conv({{"inputs", {"c"}}})})),
               Contains("key 'inputs': 'c' is layers[0], which does not come before this layer"));
    CHECK_THAT(parse_error(model_with({conv(), {{"name", "r"}, {"type", "relu"}, {"inputs", {"cc"}}}})),
               Contains("m.json: layers[1] 'r' (relu): key 'inputs': 'cc' is not a layer of this model"));
    CHECK_THAT(
        parse_error(model_with({conv(), {{"name", "r"}, {"type", "relu"}, {"inputs", {"c", "input"}}}})),
        Contains("layers[1] 'r' (relu): key 'inputs': relu reads exactly one input, got 2 (c, input)"));
    CHECK_THAT(parse_error(model_with({conv(), {{"name", "s"}, {"type", "add"}}})),
               Contains("layers[1] 's' (add): key 'inputs': add needs two or more inputs, got 1 (c)"));
    CHECK_THAT(parse_error(model_with({conv(), {{"name", "s"}, {"type", "concat"}, {"inputs", {"c"}}}})),
               Contains("layers[1] 's' (concat): key 'inputs': concat needs two or more inputs, got 1"));
}
