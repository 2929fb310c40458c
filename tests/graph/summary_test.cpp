// model_summary: torchsummary's table (its columns, then our layer names) for the built-ins, row by row and
// in total.
#include <catch2/catch.hpp>

#include <sstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "cudacnn/graph/model.hpp"

using namespace cudacnn;
using namespace cudacnn::graph;

namespace {

std::vector<std::string> lines_of(const std::string& text) {
    std::vector<std::string> lines;
    std::istringstream in(text);
    for (std::string line; std::getline(in, line);) lines.push_back(line);
    return lines;
}

}  // namespace

TEST_CASE("summary of small_cnn, whole", "[graph]") {
    // Params: 11,690 · 4 bytes = 0.0446 MiB; with 2 · (8 + 16) float running statistics and 2 int64
    // counters 46,968 bytes = 0.0448 MiB. The rules span the widest row: 63 + 2 + "Layer name".
    const std::string expected =
        R"(---------------------------------------------------------------------------
        Layer (type)               Output Shape         Param #  Layer name
===========================================================================
            Conv2d-1            [-1, 8, 32, 32]             224  features.0
       BatchNorm2d-2            [-1, 8, 32, 32]              16  features.1
              ReLU-3            [-1, 8, 32, 32]               0  features.2
         MaxPool2d-4            [-1, 8, 16, 16]               0  features.3
            Conv2d-5           [-1, 16, 16, 16]           1,168  features.4
       BatchNorm2d-6           [-1, 16, 16, 16]              32  features.5
              ReLU-7           [-1, 16, 16, 16]               0  features.6
         MaxPool2d-8             [-1, 16, 8, 8]               0  features.7
           Flatten-9                 [-1, 1024]               0  flatten
           Linear-10                   [-1, 10]          10,250  classifier
===========================================================================
Total params: 11,690
Trainable params: 11,690
Non-trainable params: 0
---------------------------------------------------------------------------
Params size (MB): 0.04
Model size with buffers (MB): 0.04
---------------------------------------------------------------------------
)";
    CHECK(model_summary(build_graph(builtin_model("small_cnn"))) == expected);
}

TEST_CASE("summary of cifar_cnn: rows and totals as the seed prints them", "[graph]") {
    const std::vector<std::string> lines = lines_of(model_summary(build_graph(builtin_model("cifar_cnn"))));
    REQUIRE(lines.size() == 3 + 27 + 8);
    const std::string rule(78, '-');  // 63 + 2 + "conv_layer.10"
    CHECK(lines[0] == rule);
    CHECK(lines[1] == "        Layer (type)               Output Shape         Param #  Layer name");
    CHECK(lines[2] == std::string(78, '='));
    CHECK(lines[3] == "            Conv2d-1           [-1, 32, 32, 32]             896  conv_layer.0");
    CHECK(lines[4] == "       BatchNorm2d-2           [-1, 32, 32, 32]              64  conv_layer.1");
    CHECK(lines[5] == "              ReLU-3           [-1, 32, 32, 32]               0  conv_layer.2");
    CHECK(lines[8] == "         MaxPool2d-6           [-1, 64, 16, 16]               0  conv_layer.5");
    CHECK(lines[15] == "        Dropout2d-13            [-1, 128, 8, 8]               0  conv_layer.12");
    CHECK(lines[22] == "          Flatten-20                 [-1, 4096]               0  flatten");
    CHECK(lines[23] == "          Dropout-21                 [-1, 4096]               0  fc_layer.0");
    CHECK(lines[24] == "           Linear-22                 [-1, 1024]       4,195,328  fc_layer.1");
    CHECK(lines[29] == "           Linear-27                   [-1, 10]           5,130  fc_layer.6");
    const std::vector<std::string> totals(lines.begin() + 30, lines.end());
    // 23,408,680 parameter bytes = 22.324 MiB; with 3,328 bytes of running statistics and 24 of counters
    // 23,412,032 = 22.328 MiB (DESIGN.md's 22.33 MB).
    CHECK(totals == std::vector<std::string>{std::string(78, '='), "Total params: 5,852,170",
                                             "Trainable params: 5,852,170", "Non-trainable params: 0", rule,
                                             "Params size (MB): 22.32", "Model size with buffers (MB): 22.33",
                                             rule});
}

TEST_CASE("summary names our own layers Add and Concat and counts every layer", "[graph]") {
    const nlohmann::json spec = {
        {"name", "res"},
        {"input", {2, 4, 4}},
        {"num_classes", 3},
        {"layers",
         {{{"name", "a"}, {"type", "relu"}},
          {{"name", "sum"}, {"type", "add"}, {"inputs", {"a", "input"}}},
          {{"name", "cat"}, {"type", "concat"}, {"inputs", {"sum", "a"}}},
          {{"name", "gap"}, {"type", "adaptive_avg_pool2d"}, {"output_size", 1}},
          {{"name", "avg"}, {"type", "avg_pool2d"}, {"kernel_size", 1}},
          {{"name", "f"}, {"type", "flatten"}},
          {{"name", "out"}, {"type", "linear"}, {"in_features", 4}, {"out_features", 3}, {"bias", false}}}}};
    const std::vector<std::string> lines =
        lines_of(model_summary(build_graph(parse_model_spec(spec, "test"))));
    REQUIRE(lines.size() == 3 + 7 + 8);
    CHECK(lines[0] == std::string(65 + 10, '-'));  // "Layer name" is the widest name
    CHECK(lines[4] == "               Add-2              [-1, 2, 4, 4]               0  sum");
    CHECK(lines[5] == "            Concat-3              [-1, 4, 4, 4]               0  cat");
    CHECK(lines[6] == " AdaptiveAvgPool2d-4              [-1, 4, 1, 1]               0  gap");
    CHECK(lines[7] == "         AvgPool2d-5              [-1, 4, 1, 1]               0  avg");
    CHECK(lines[9] == "            Linear-7                    [-1, 3]              12  out");
    CHECK(lines[11] == "Total params: 12");
    CHECK(lines[15] == "Params size (MB): 0.00");
}
