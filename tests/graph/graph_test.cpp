// build_graph: state_dict entries and counts of the built-ins, inferred shapes, inputs and consumers of a
// residual / concat graph, and errors that name the layer, its input shapes and the problem.
#include <catch2/catch.hpp>

#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "cudacnn/graph/model.hpp"
#include "support/cifar_cnn.hpp"
#include "support/errors.hpp"

using namespace cudacnn;
using namespace cudacnn::graph;
using Catch::Contains;
using nlohmann::json;
using test::error_message;

namespace {

// A spec of these layers with input (4, 8, 8) and 10 classes. (A braced list, so that {conv(…)} is an array
// of one layer and not the layer itself.)
ModelSpec spec_of(std::initializer_list<json> layers) {
    return parse_model_spec(
        {{"name", "m"}, {"input", {4, 8, 8}}, {"num_classes", 10}, {"layers", json(json::array_t(layers))}},
        "test");
}

std::string build_error(const ModelSpec& spec) {
    return error_message([&] { build_graph(spec); });
}

std::vector<std::string> state_names(const Graph& graph, const std::vector<int>& indices) {
    std::vector<std::string> names;
    for (int i : indices) names.push_back(graph.state.at(static_cast<size_t>(i)).name);
    return names;
}

std::vector<std::string> all_state_names(const Graph& graph) {
    std::vector<std::string> names;
    for (const StateEntry& entry : graph.state) names.push_back(entry.name);
    return names;
}

json conv(const std::string& name, int64_t in, int64_t out, int64_t kernel, int64_t padding) {
    return {{"name", name},        {"type", "conv2d"},      {"in_channels", in},
            {"out_channels", out}, {"kernel_size", kernel}, {"padding", padding}};
}

json linear(const std::string& name, int64_t in, int64_t out) {
    return {{"name", name}, {"type", "linear"}, {"in_features", in}, {"out_features", out}};
}

json layer(const std::string& name, const std::string& type, json extra = json::object()) {
    json out = {{"name", name}, {"type", type}};
    out.update(extra);
    return out;
}

// How many times ".cpp:" occurs: once for the Error's own location, more if a quoted message kept its own.
int locations_in(const std::string& message) {
    int count = 0;
    for (size_t at = message.find(".cpp:"); at != std::string::npos; at = message.find(".cpp:", at + 1))
        ++count;
    return count;
}

}  // namespace

TEST_CASE("cifar_cnn: 5,852,170 parameters named as PyTorch's named_parameters()", "[graph]") {
    const Graph graph = build_graph(builtin_model("cifar_cnn"));
    CHECK(graph.trainable_parameter_count() == 5852170);
    CHECK(state_names(graph, graph.parameters()) == test::cifar_cnn::initial_model(0).names);
    // 5,852,170 float parameters, 2 · (32 + 128 + 256) float running statistics and 3 int64 counters.
    CHECK(graph.state_bytes() == 5852170 * 4 + 2 * (32 + 128 + 256) * 4 + 3 * 8);
    const std::vector<std::string> names = all_state_names(graph);
    const std::vector<std::string> conv_layer_1(names.begin() + 2, names.begin() + 7);
    CHECK(conv_layer_1 == std::vector<std::string>{"conv_layer.1.weight", "conv_layer.1.bias",
                                                   "conv_layer.1.running_mean", "conv_layer.1.running_var",
                                                   "conv_layer.1.num_batches_tracked"});
    const StateEntry& counter = graph.state[6];
    CHECK(counter.dtype == DType::i64);
    CHECK(counter.shape == Shape{});
    CHECK_FALSE(counter.trainable);
    CHECK(counter.role == "num_batches_tracked");
    CHECK(counter.node == graph.find_node("conv_layer.1"));
    const StateEntry& fc1 = graph.state.at(static_cast<size_t>(graph.parameters().at(18)));
    CHECK(fc1.name == "fc_layer.1.weight");
    CHECK(fc1.shape == Shape{1024, 4096});
    CHECK(fc1.trainable);
    CHECK(fc1.dtype == DType::f32);
}

TEST_CASE("cifar_cnn: shapes per sample through the network", "[graph]") {
    const Graph graph = build_graph(builtin_model("cifar_cnn"));
    REQUIRE(graph.nodes.size() == 27);
    const std::vector<Shape> expected = {
        {32, 32, 32},  {32, 32, 32},  {32, 32, 32},  {64, 32, 32},  {64, 32, 32}, {64, 16, 16}, {128, 16, 16},
        {128, 16, 16}, {128, 16, 16}, {128, 16, 16}, {128, 16, 16}, {128, 8, 8},  {128, 8, 8},  {256, 8, 8},
        {256, 8, 8},   {256, 8, 8},   {256, 8, 8},   {256, 8, 8},   {256, 4, 4},  {4096},       {4096},
        {1024},        {1024},        {512},         {512},         {512},        {10}};
    for (size_t i = 0; i < expected.size(); ++i) {
        INFO(graph.nodes[i].spec.name);
        CHECK(graph.nodes[i].output == expected[i]);
        CHECK(graph.nodes[i].inputs ==
              std::vector<int>{static_cast<int>(i) - 1});  // a chain; node 0 reads kInput
        const std::vector<int> consumers =
            i + 1 < expected.size() ? std::vector<int>{static_cast<int>(i) + 1} : std::vector<int>{};
        CHECK(graph.nodes[i].consumers == consumers);
    }
    CHECK(graph.shape_of(kInput) == Shape{3, 32, 32});
    CHECK(graph.shape_of(19) == Shape{4096});
    CHECK(graph.find_node("flatten") == 19);
    CHECK(graph.find_node("fc_layer.7") == -1);
    CHECK_THAT(error_message([&] { graph.shape_of(27); }), Contains("node 27 is not in model 'cifar_cnn'"));
}

TEST_CASE("small_cnn: 11,690 parameters and the state_dict in order", "[graph]") {
    const Graph graph = build_graph(builtin_model("small_cnn"));
    // 8·3·9 + 8, 2·8, 16·8·9 + 16, 2·16, 10·1024 + 10
    CHECK(graph.trainable_parameter_count() == 224 + 16 + 1168 + 32 + 10250);
    CHECK(graph.trainable_parameter_count() == 11690);
    CHECK(all_state_names(graph) ==
          std::vector<std::string>{"features.0.weight", "features.0.bias", "features.1.weight",
                                   "features.1.bias", "features.1.running_mean", "features.1.running_var",
                                   "features.1.num_batches_tracked", "features.4.weight", "features.4.bias",
                                   "features.5.weight", "features.5.bias", "features.5.running_mean",
                                   "features.5.running_var", "features.5.num_batches_tracked",
                                   "classifier.weight", "classifier.bias"});
    CHECK(graph.parameters() == std::vector<int>{0, 1, 2, 3, 7, 8, 9, 10, 14, 15});
    CHECK(graph.state[7].shape == Shape{16, 8, 3, 3});
    CHECK(graph.state[14].shape == Shape{10, 1024});
    CHECK(graph.nodes[graph.find_node("features.1")].state == std::vector<int>{2, 3, 4, 5, 6});
    CHECK(graph.nodes[graph.find_node("features.2")].state.empty());
    CHECK(graph.state_bytes() == 11690 * 4 + 2 * (8 + 16) * 4 + 2 * 8);
    CHECK(graph.nodes[graph.find_node("flatten")].output == Shape{1024});
}

TEST_CASE("bias, affine and track_running_stats decide the state entries", "[graph]") {
    const Graph graph = build_graph(spec_of({
        layer("c", "conv2d",
              {{"in_channels", 4},
               {"out_channels", 6},
               {"kernel_size", {3, 1}},
               {"groups", 2},
               {"bias", false}}),
        layer("b1", "batch_norm2d", {{"num_features", 6}, {"affine", false}}),
        layer("b2", "batch_norm2d", {{"num_features", 6}, {"track_running_stats", false}}),
        layer("f", "flatten"),
        layer("fc", "linear", {{"in_features", 6 * 6 * 8}, {"out_features", 10}, {"bias", false}}),
    }));
    CHECK(all_state_names(graph) == std::vector<std::string>{"c.weight", "b1.running_mean", "b1.running_var",
                                                             "b1.num_batches_tracked", "b2.weight", "b2.bias",
                                                             "fc.weight"});
    CHECK(graph.state[0].shape == Shape{6, 2, 3, 1});  // (OC, IC / groups, KH, KW)
    CHECK(graph.parameters() == std::vector<int>{0, 4, 5, 6});
    CHECK(graph.trainable_parameter_count() == 36 + 6 + 6 + 10 * 288);
    CHECK(graph.nodes[0].output == Shape{6, 6, 8});
}

TEST_CASE("a residual add and a channel concat: inputs, consumers and shapes", "[graph]") {
    const Graph graph = build_graph(spec_of({
        conv("stem", 4, 8, 3, 1),                          // 0: (8, 8, 8)
        conv("a", 8, 8, 3, 1),                             // 1: (8, 8, 8)
        layer("b", "relu"),                                // 2
        layer("res", "add", {{"inputs", {"b", "stem"}}}),  // 3: (8, 8, 8)
        layer("branch", "conv2d",
              {{"inputs", {"stem"}}, {"in_channels", 8}, {"out_channels", 4}, {"kernel_size", 1}}),  // 4: (4,
                                                                                                     // 8, 8)
        layer("cat", "concat", {{"inputs", {"res", "branch", "input"}}}),  // 5: (16, 8, 8)
        layer("gap", "adaptive_avg_pool2d", {{"output_size", 1}}),         // 6: (16, 1, 1)
        layer("flat", "flatten"),                                          // 7: (16)
        linear("fc", 16, 10),                                              // 8: (10)
    }));
    CHECK(graph.nodes[0].consumers == std::vector<int>{1, 3, 4});
    CHECK(graph.nodes[3].inputs == std::vector<int>{2, 0});
    CHECK(graph.nodes[4].inputs == std::vector<int>{0});
    CHECK(graph.nodes[5].inputs == std::vector<int>{3, 4, kInput});
    CHECK(graph.nodes[3].consumers == std::vector<int>{5});
    CHECK(graph.nodes[4].consumers == std::vector<int>{5});
    CHECK(graph.nodes[3].output == Shape{8, 8, 8});
    CHECK(graph.nodes[5].output == Shape{16, 8, 8});
    CHECK(graph.nodes[6].output == Shape{16, 1, 1});
    CHECK(graph.nodes[7].output == Shape{16});
    CHECK(graph.spec.layers[1].inputs == std::vector<std::string>{"stem"});
}

TEST_CASE("a layer that reads one node twice is one consumer", "[graph]") {
    const Graph graph =
        build_graph(spec_of({conv("c", 4, 4, 1, 0), layer("twice", "add", {{"inputs", {"c", "c"}}}),
                             layer("flat", "flatten"), linear("fc", 256, 10)}));
    CHECK(graph.nodes[1].inputs == std::vector<int>{0, 0});
    CHECK(graph.nodes[0].consumers == std::vector<int>{1});
}

TEST_CASE("specs built in code may leave inputs empty: the previous layer", "[graph]") {
    ModelSpec spec = builtin_model("small_cnn");
    for (LayerSpec& l : spec.layers) l.inputs.clear();
    const Graph graph = build_graph(spec);
    CHECK(graph.spec == builtin_model("small_cnn"));
    CHECK(graph.nodes[0].spec.inputs == std::vector<std::string>{"input"});
    CHECK(graph.nodes[9].spec.inputs == std::vector<std::string>{"flatten"});
    CHECK(graph.trainable_parameter_count() == 11690);
}

TEST_CASE("linear errors say what the input has and what to do", "[graph][errors]") {
    ModelSpec spec = builtin_model("cifar_cnn");
    spec.layers[21].in_features = 4095;
    CHECK_THAT(build_error(spec),
               Contains("model 'cifar_cnn': layer 'fc_layer.1' (linear): input (4096) has 4096 features but "
                        "in_features is 4095"));
    spec = builtin_model("cifar_cnn");
    spec.layers.erase(spec.layers.begin() + 19);  // the flatten layer
    spec.layers[19].inputs = {"conv_layer.18"};
    CHECK_THAT(build_error(spec),
               Contains("layer 'fc_layer.1' (linear): input (256, 4, 4) is not flat; add a "
                        "flatten layer before it (that gives 4096 features; in_features is 4096)"));
}

TEST_CASE("channel, shape and rank mismatches name the layer and its inputs", "[graph][errors]") {
    CHECK_THAT(
        build_error(spec_of({conv("c", 3, 4, 3, 1)})),
        Contains("model 'm': layer 'c' (conv2d): input (4, 8, 8) has 4 channels but in_channels is 3"));
    CHECK_THAT(build_error(spec_of({layer("b", "batch_norm2d", {{"num_features", 5}})})),
               Contains("layer 'b' (batch_norm2d): input (4, 8, 8) has 4 channels but num_features is 5"));
    CHECK_THAT(
        build_error(spec_of(
            {conv("c", 4, 4, 3, 1), conv("v", 4, 4, 3, 0), layer("s", "add", {{"inputs", {"c", "v"}}})})),
        Contains("layer 's' (add): inputs (4, 8, 8) from 'c', (4, 6, 6) from 'v': 'c' and 'v' differ in "
                 "shape; add needs inputs of one shape"));
    const std::string concat = build_error(spec_of(
        {conv("c", 4, 4, 3, 1), conv("v", 4, 4, 3, 0), layer("k", "concat", {{"inputs", {"c", "v"}}})}));
    CHECK_THAT(concat, Contains("layer 'k' (concat): inputs (4, 8, 8) from 'c', (4, 6, 6) from 'v': concat: "
                                "input 1 has shape (1, 4, 6, 6) but input 0 has shape (1, 4, 8, 8)"));
    CHECK(locations_in(concat) == 1);
    CHECK_THAT(build_error(spec_of({layer("f", "flatten"), layer("p", "max_pool2d", {{"kernel_size", 2}})})),
               Contains("layer 'p' (max_pool2d): input (256): max_pool2d needs (C, H, W) images as input"));
    CHECK_THAT(build_error(spec_of({layer("f", "flatten"), layer("d", "dropout2d")})),
               Contains("layer 'd' (dropout2d): input (256): dropout2d needs (C, H, W) images"));
    ModelSpec grouped = spec_of({conv("c", 4, 6, 3, 1)});
    grouped.layers[0].conv.groups = 3;
    CHECK_THAT(
        build_error(grouped),
        Contains(
            "layer 'c' (conv2d): groups 3 must be positive and divide in_channels 4 and out_channels 6"));
}

TEST_CASE("errors of the ops' shape rules are quoted with the layer", "[graph][errors]") {
    const std::string pool = build_error(spec_of({layer("p", "max_pool2d", {{"kernel_size", 16}})}));
    CHECK_THAT(pool,
               Contains("model 'm': layer 'p' (max_pool2d): input (4, 8, 8): max_pool2d: input (1, 4, 8, 8) "
                        "is too small for kernel_size (16, 16)"));
    CHECK(locations_in(pool) == 1);
    CHECK_THAT(build_error(spec_of({conv("c", 4, 4, 9, 0)})),
               Contains("layer 'c' (conv2d): input (4, 8, 8): conv2d: the kernel (9, 9)"));
    CHECK_THAT(build_error(spec_of({layer("c", "conv2d",
                                          {{"in_channels", 4},
                                           {"out_channels", 4},
                                           {"kernel_size", 3},
                                           {"stride", 2},
                                           {"padding", "same"}})})),
               Contains("layer 'c' (conv2d): input (4, 8, 8): conv2d: padding='same' needs stride 1"));
    CHECK_THAT(
        build_error(spec_of({layer("a", "avg_pool2d", {{"kernel_size", 2}, {"padding", 2}})})),
        Contains("layer 'a' (avg_pool2d): input (4, 8, 8): avg_pool2d: padding (2, 2) must be at most half"));
}

TEST_CASE("the last layer gives the logits and every other layer feeds a later one", "[graph][errors]") {
    CHECK_THAT(
        build_error(spec_of({layer("f", "flatten"), linear("fc", 256, 5)})),
        Contains("model 'm': the last layer, layer 'fc' (linear), gives (5) per sample but num_classes is "
                 "10"));
    CHECK_THAT(build_error(spec_of({layer("r", "relu")})),
               Contains("gives (4, 8, 8) per sample but num_classes"));
    CHECK_THAT(build_error(spec_of({layer("side", "relu"), layer("f", "flatten", {{"inputs", {"input"}}}),
                                    linear("fc", 256, 10)})),
               Contains("model 'm': layer 'side' (relu): no later layer reads its output"));
    ModelSpec empty = builtin_model("small_cnn");
    empty.layers.clear();
    CHECK_THAT(build_error(empty), Contains("model 'small_cnn': has no layers"));
    ModelSpec bad_input = builtin_model("small_cnn");
    bad_input.input = Shape{3, 0, 32};
    CHECK_THAT(build_error(bad_input),
               Contains("model 'small_cnn': input (3, 0, 32) must have 1 to 7 positive sizes"));
}

TEST_CASE("build_graph checks names and inputs of specs built in code", "[graph][errors]") {
    ModelSpec spec = builtin_model("small_cnn");
    spec.layers[2].name = "features.1";
    CHECK_THAT(build_error(spec), Contains("model 'small_cnn': layers[2] 'features.1' (relu): key 'name': "
                                           "'features.1' is also the name of layers[1]"));
    spec = builtin_model("small_cnn");
    spec.layers[3].inputs = {"classifier"};
    CHECK_THAT(build_error(spec),
               Contains("layers[3] 'features.3' (max_pool2d): key 'inputs': 'classifier' is "
                        "layers[9], which does not come before this layer"));
}
