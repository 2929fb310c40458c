// The built-in vgg16, vgg16_bn, resnet18 and resnet50 are torchvision's: parameter counts, and every
// state_dict name and shape in torchvision's order (the list that tools/fixtures/torchvision_models.py wrote
// into tests/fixtures/torchvision_models.safetensors from torchvision 0.14 itself).
#include <catch2/catch.hpp>

#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "cudacnn/graph/model.hpp"
#include "support/compare.hpp"

using namespace cudacnn;
using namespace cudacnn::graph;

namespace {

struct TorchvisionModel {
    const char* name;
    int64_t parameters;  // sum(p.numel() for p in torchvision.models.<name>().parameters())
    size_t layers;
};

// Layer counts: vgg16 13 convs + 13 ReLUs + 5 pools, avgpool, flatten, 7 classifier children; vgg16_bn adds
// 13 batch norms; resnet18: 4 stem + 8 blocks × 7 + 3 downsample pairs + 3 head; resnet50: 4 stem +
// 16 blocks × 10 + 4 downsample pairs + 3 head.
constexpr TorchvisionModel kModels[] = {{"vgg16", 138'357'544, 40},
                                        {"vgg16_bn", 138'365'992, 53},
                                        {"resnet18", 11'689'512, 4 + 8 * 7 + 3 * 2 + 3},
                                        {"resnet50", 25'557'032, 4 + 16 * 10 + 4 * 2 + 3}};

}  // namespace

TEST_CASE("torchvision models: torchvision's parameter counts, state_dict names and shapes",
          "[graph][torchvision]") {
    const SafetensorsFile fixture = test::load_fixture("torchvision_models");
    for (const TorchvisionModel& model : kModels) {
        INFO(model.name);
        const Graph graph = build_graph(builtin_model(model.name));
        CHECK(graph.spec.input == Shape{3, 224, 224});
        CHECK(graph.spec.num_classes == 1000);
        CHECK(graph.nodes.back().output == Shape{1000});
        CHECK(graph.nodes.size() == model.layers);
        CHECK(graph.trainable_parameter_count() == model.parameters);

        const auto expected =
            nlohmann::json::parse(fixture.metadata().at(std::string(model.name) + ".state_dict"));
        REQUIRE(graph.state.size() == expected.size());
        for (size_t i = 0; i < graph.state.size(); ++i) {
            INFO("state_dict entry " << i);
            CHECK(graph.state[i].name == expected[i][0].get<std::string>());
            CHECK(graph.state[i].shape.dims() == expected[i][1].get<std::vector<int64_t>>());
        }
    }
}

TEST_CASE("torchvision models: the layers torchvision reuses get names of their own",
          "[graph][torchvision]") {
    const ModelSpec resnet = builtin_model("resnet50");
    const Graph graph = build_graph(resnet);
    const Node& add = graph.nodes.at(graph.find_node("layer2.0.add"));
    REQUIRE(add.inputs.size() == 2);
    CHECK(graph.nodes[add.inputs[0]].spec.name == "layer2.0.bn3");
    CHECK(graph.nodes[add.inputs[1]].spec.name == "layer2.0.downsample.1");
    CHECK(graph.nodes[graph.find_node("layer2.0.downsample.0")].inputs ==
          std::vector<int>{graph.find_node("layer1.2.relu3")});
    CHECK(graph.nodes[graph.find_node("layer2.0.downsample.0")].output == Shape{512, 28, 28});
    const Node& identity_add = graph.nodes.at(graph.find_node("layer2.1.add"));
    CHECK(graph.nodes[identity_add.inputs[1]].spec.name ==
          "layer2.0.relu3");  // no downsample: the block input
    CHECK(graph.nodes[graph.find_node("layer4.2.relu3")].output == Shape{2048, 7, 7});
    CHECK(graph.nodes[graph.find_node("maxpool")].output == Shape{64, 56, 56});

    const Graph vgg = build_graph(builtin_model("vgg16_bn"));
    CHECK(vgg.nodes[vgg.find_node("features.43")].output == Shape{512, 7, 7});
    CHECK(vgg.nodes[vgg.find_node("avgpool")].output == Shape{512, 7, 7});
    CHECK(vgg.nodes[vgg.find_node("classifier.6")].output == Shape{1000});
}

TEST_CASE("torchvision models: the summary's totals", "[graph][torchvision]") {
    const std::string summary = model_summary(build_graph(builtin_model("resnet50")));
    CHECK_THAT(summary, Catch::Contains("Total params: 25,557,032"));
    CHECK_THAT(summary, Catch::Contains("[-1, 1000]"));
    CHECK_THAT(summary, Catch::Contains("layer4.0.downsample.1") && !Catch::Contains("layer4.2.downsample"));
}
