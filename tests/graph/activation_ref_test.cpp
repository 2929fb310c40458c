// The executor's typed activations (src/graph/backend.hpp): a backend reads an activation only as its own
// element type, and one that computes f32 only names the layer and itself when handed anything else.
#include <catch2/catch.hpp>

#include <vector>

#include "src/graph/backend.hpp"

using namespace cudacnn;
using namespace cudacnn::graph;
using Catch::Matchers::Contains;

namespace {

Node conv_node() {
    Node node;
    node.spec.name = "conv_layer.0";
    node.spec.kind = LayerKind::conv2d;
    return node;
}

}  // namespace

TEST_CASE("typed activations hand out their data only as their own type", "[graph][precision]") {
    std::vector<float> floats(4);
    const detail::Activation written{floats.data(), DType::f32};
    const detail::ConstActivation read = written;  // an output read back keeps its place and type
    CHECK(read.data == floats.data());
    CHECK(read.dtype == DType::f32);
    CHECK(read.f32() == floats.data());
    CHECK(written.as<float>() == floats.data());

    const detail::Activation halves{floats.data(), DType::bf16};
    CHECK_THROWS_WITH(halves.f32(), Contains("bf16") && Contains("f32"));
    CHECK_FALSE(detail::Activation{});
    CHECK(detail::Activation(nullptr, DType::bf16).f32() ==
          nullptr);  // no gradient wanted: nothing to misread
}

TEST_CASE("an f32-only backend refuses other activation types, naming the layer", "[graph][precision]") {
    const Node node = conv_node();
    std::vector<float> x(8), y(8), dy(8), dx(8);
    detail::NodeArgs a;
    a.node = &node;
    a.x = {detail::ConstActivation{x.data(), DType::f32}};
    a.y = {y.data(), DType::f32};
    a.dy = {dy.data(), DType::f32};
    a.dx = {detail::Activation{dx.data(), DType::f32}, detail::Activation{}};

    const detail::F32Activations f = detail::f32_activations(a, "fast CPU backend");
    CHECK(f.x == std::vector<const float*>{x.data()});
    CHECK(f.y == y.data());
    CHECK(f.dy == dy.data());
    CHECK(f.dx == std::vector<float*>{dx.data(), nullptr});

    SECTION("a bf16 input") {
        a.x[0].dtype = DType::bf16;
    }
    SECTION("a bf16 input gradient") {
        a.dx[0].dtype = DType::bf16;
    }
    SECTION("a bf16 output") {
        a.y.dtype = DType::bf16;
    }
    CHECK_THROWS_WITH(detail::f32_activations(a, "fast CPU backend"),
                      Contains("layer 'conv_layer.0' (conv2d)") &&
                          Contains("the fast CPU backend computes f32") && Contains("is bf16") &&
                          Contains("--precision fp32"));
}
