// flatten, reshape, add and concat: hand-computed shapes and layouts, gradient checks for every input and
// option, PyTorch fixtures in float and double, and bad arguments.
#include <catch2/catch.hpp>

#include <cstdint>
#include <string>
#include <vector>

#include "cudacnn/ops/shape_ops.hpp"
#include "support/compare.hpp"
#include "support/gradcheck.hpp"

using namespace cudacnn;
using cudacnn::test::check_gradient;
using cudacnn::test::random_tensor;
using cudacnn::test::weighted_sum;

namespace {

// 0, 1, 2, …: values that show where every element went.
HostTensor<double> iota(const Shape& shape) {
    HostTensor<double> t(shape);
    for (int64_t i = 0; i < t.numel(); ++i) t[i] = static_cast<double>(i);
    return t;
}

}  // namespace

TEST_CASE("flatten: nn.Flatten's start_dim / end_dim, values in the same order", "[shape_ops]") {
    const Shape in{2, 3, 4, 5};
    const auto x = iota(in);
    CHECK(cpu::flatten(x).shape() == Shape({2, 60}));  // nn.Flatten(): start_dim 1, end_dim −1
    CHECK(cpu::flatten(x).values() == x.values());
    CHECK(cpu::flatten_output_shape(in, {0, -1}) == Shape({120}));
    CHECK(cpu::flatten_output_shape(in, {1, 2}) == Shape({2, 12, 5}));
    CHECK(cpu::flatten_output_shape(in, {-3, -2}) == Shape({2, 12, 5}));
    CHECK(cpu::flatten_output_shape(in, {2, 2}) == in);
    CHECK(cpu::flatten_output_shape(in, {0, 0}) == in);
    CHECK(cpu::flatten_output_shape(Shape{7}, {0, -1}) == Shape({7}));
    CHECK(cpu::flatten_output_shape(Shape{}, {0, -1}) == Shape({1}));  // a scalar becomes (1), as PyTorch
    CHECK(cpu::flatten_output_shape(Shape{}, {-1, 0}) == Shape({1}));

    const auto dy = iota(Shape{2, 60});
    const auto dx = cpu::flatten_backward(dy, in).dx;
    CHECK(dx.shape() == in);
    CHECK(dx.values() == dy.values());
}

TEST_CASE("reshape: torch.reshape with one inferred -1, values in the same order", "[shape_ops]") {
    const Shape in{2, 3, 4};
    const auto x = iota(in);
    CHECK(cpu::reshape(x, {4, -1}).shape() == Shape({4, 6}));
    CHECK(cpu::reshape(x, {4, -1}).values() == x.values());
    CHECK(cpu::reshape_output_shape(in, {-1}) == Shape({24}));
    CHECK(cpu::reshape_output_shape(in, {-1, 1}) == Shape({24, 1}));
    CHECK(cpu::reshape_output_shape(in, {2, 3, 2, 2}) == Shape({2, 3, 2, 2}));
    CHECK(cpu::reshape_output_shape(in, {1, -1, 1, 8}) == Shape({1, 3, 1, 8}));
    CHECK(cpu::reshape_output_shape(Shape{1, 1}, {}) == Shape{});  // one element → a scalar, as PyTorch
    const auto dx = cpu::reshape_backward(iota(Shape{4, 6}), in).dx;
    CHECK(dx.shape() == in);
    CHECK(dx.values() == x.values());
}

TEST_CASE("add: element-wise sum for residual connections; both gradients are dy", "[shape_ops]") {
    const HostTensor<float> a(Shape{2, 2}, {1.0f, -2.0f, 3.5f, 0.25f});
    const HostTensor<float> b(Shape{2, 2}, {10.0f, 2.0f, -0.5f, 0.5f});
    const auto y = cpu::add(a, b);
    CHECK(y.shape() == Shape({2, 2}));
    CHECK(y.values() == std::vector<float>{11.0f, 0.0f, 3.0f, 0.75f});
    const HostTensor<float> dy(Shape{2, 2}, {1.0f, 2.0f, 3.0f, 4.0f});
    const auto grads = cpu::add_backward(dy);
    CHECK(grads.da.shape() == dy.shape());
    CHECK(grads.da.values() == dy.values());
    CHECK(grads.db.shape() == dy.shape());
    CHECK(grads.db.values() == dy.values());
}

TEST_CASE("concat: torch.cat along channels (and other dims), backward splits dy", "[shape_ops]") {
    // (2, 2, 1, 2) and (2, 1, 1, 2) along channels: for each n, a's two channels then b's one.
    const HostTensor<double> a(Shape{2, 2, 1, 2}, {0, 1, 2, 3, 4, 5, 6, 7});
    const HostTensor<double> b(Shape{2, 1, 1, 2}, {10, 11, 12, 13});
    const auto y = cpu::concat<double>({&a, &b});
    CHECK(y.shape() == Shape({2, 3, 1, 2}));
    CHECK(y.values() == std::vector<double>{0, 1, 2, 3, 10, 11, 4, 5, 6, 7, 12, 13});
    const auto grads = cpu::concat_backward(y, {a.shape(), b.shape()});
    REQUIRE(grads.dx.size() == 2);
    CHECK(grads.dx[0].shape() == a.shape());
    CHECK(grads.dx[0].values() == a.values());
    CHECK(grads.dx[1].shape() == b.shape());
    CHECK(grads.dx[1].values() == b.values());

    // Other dims, negative dims, one input and three inputs.
    const HostTensor<double> p(Shape{2, 2}, {1, 2, 3, 4}), q(Shape{2, 1}, {5, 6}), s(Shape{1, 2}, {7, 8});
    CHECK(cpu::concat<double>({&p, &q}, -1).values() == std::vector<double>{1, 2, 5, 3, 4, 6});
    CHECK(cpu::concat<double>({&p, &s}, 0).values() == std::vector<double>{1, 2, 3, 4, 7, 8});
    CHECK(cpu::concat<double>({&p, &q, &q}, 1).shape() == Shape({2, 4}));
    CHECK(cpu::concat<double>({&p, &q, &q}, 1).values() == std::vector<double>{1, 2, 5, 5, 3, 4, 6, 6});
    CHECK(cpu::concat<double>({&p}).values() == p.values());
    CHECK(cpu::concat_output_shape({Shape{4, 3, 8, 8}, Shape{4, 5, 8, 8}, Shape{4, 1, 8, 8}}) ==
          Shape({4, 9, 8, 8}));
    CHECK(cpu::concat_output_shape({Shape{4, 3, 8, 8}, Shape{4, 3, 8, 2}}, 3) == Shape({4, 3, 8, 10}));
}

TEST_CASE("flatten and reshape: backward matches central differences for every option",
          "[shape_ops][gradcheck]") {
    const Shape in{2, 3, 4, 5};
    const auto x = random_tensor<double>(in, 21);
    const std::vector<cpu::FlattenOptions> flattens = {{1, -1}, {0, -1}, {1, 2}, {-2, -1}, {2, 2}};
    for (const auto& options : flattens) {
        SECTION("flatten " + std::to_string(options.start_dim) + " " + std::to_string(options.end_dim)) {
            const auto r = random_tensor<double>(cpu::flatten_output_shape(in, options), 22);
            const auto analytic = cpu::flatten_backward(r, in, options).dx;
            const auto result = check_gradient(
                [&](const HostTensor<double>& xx) { return weighted_sum(cpu::flatten(xx, options), r); }, x,
                analytic);
            INFO(result.report);
            REQUIRE(result.ok());
        }
    }
    const std::vector<std::vector<int64_t>> reshapes = {{6, -1}, {-1}, {4, 30}, {2, 3, 2, 2, 5}};
    for (size_t k = 0; k < reshapes.size(); ++k) {
        SECTION("reshape " + std::to_string(k)) {
            const auto& dims = reshapes[k];
            const auto r = random_tensor<double>(cpu::reshape_output_shape(in, dims), 23);
            const auto analytic = cpu::reshape_backward(r, in).dx;
            const auto result = check_gradient(
                [&](const HostTensor<double>& xx) { return weighted_sum(cpu::reshape(xx, dims), r); }, x,
                analytic);
            INFO(result.report);
            REQUIRE(result.ok());
        }
    }
}

TEST_CASE("add: backward matches central differences for both inputs", "[shape_ops][gradcheck]") {
    const auto a = random_tensor<double>(Shape{2, 3, 4, 5}, 31);
    const auto b = random_tensor<double>(a.shape(), 32);
    const auto r = random_tensor<double>(a.shape(), 33);
    const auto grads = cpu::add_backward(r);
    const auto result_a = check_gradient(
        [&](const HostTensor<double>& aa) { return weighted_sum(cpu::add(aa, b), r); }, a, grads.da);
    INFO(result_a.report);
    REQUIRE(result_a.ok());
    const auto result_b = check_gradient(
        [&](const HostTensor<double>& bb) { return weighted_sum(cpu::add(a, bb), r); }, b, grads.db);
    INFO(result_b.report);
    REQUIRE(result_b.ok());
}

TEST_CASE("concat: backward matches central differences for every input and several dims",
          "[shape_ops][gradcheck]") {
    struct ConcatCase {
        const char* name;
        std::vector<Shape> shapes;
        int64_t dim;
    };
    const std::vector<ConcatCase> cases = {
        {"channels, 3 inputs", {Shape{2, 3, 2, 3}, Shape{2, 1, 2, 3}, Shape{2, 2, 2, 3}}, 1},
        {"batch", {Shape{1, 2, 3, 2}, Shape{2, 2, 3, 2}}, 0},
        {"width, dim -1", {Shape{2, 2, 3, 1}, Shape{2, 2, 3, 4}}, -1},
        {"features of (N, F)", {Shape{3, 4}, Shape{3, 2}}, 1},
    };
    for (const ConcatCase& c : cases) {
        SECTION(c.name) {
            std::vector<HostTensor<double>> inputs;
            for (size_t k = 0; k < c.shapes.size(); ++k) {
                inputs.push_back(random_tensor<double>(c.shapes[k], 40 + static_cast<uint32_t>(k)));
            }
            const auto r = random_tensor<double>(cpu::concat_output_shape(c.shapes, c.dim), 50);
            const auto grads = cpu::concat_backward(r, c.shapes, c.dim);
            REQUIRE(grads.dx.size() == inputs.size());
            for (size_t k = 0; k < inputs.size(); ++k) {
                // The loss as a function of input k alone, the others held fixed.
                const auto loss = [&](const HostTensor<double>& xk) {
                    std::vector<const HostTensor<double>*> ptrs;
                    for (size_t i = 0; i < inputs.size(); ++i) ptrs.push_back(i == k ? &xk : &inputs[i]);
                    return weighted_sum(cpu::concat(ptrs, c.dim), r);
                };
                const auto result = check_gradient(loss, inputs[k], grads.dx[k]);
                INFO("input " << k << ": " << result.report);
                REQUIRE(result.ok());
            }
        }
    }
}

// --- PyTorch fixtures (tools/fixtures/shape_ops.py) -----------------------------------------------------

namespace {

enum class ShapeOp { flatten, reshape, add, concat };

// The cases of tools/fixtures/shape_ops.py (same names and arguments).
struct FixtureCase {
    std::string name;
    ShapeOp op;
    std::vector<int64_t> args;  // flatten: start_dim, end_dim; reshape: the shape; concat: dim; add: none
    int inputs;
};
const std::vector<FixtureCase> kFixtureCases = {
    {"flatten_default", ShapeOp::flatten, {1, -1}, 1},
    {"flatten_all", ShapeOp::flatten, {0, -1}, 1},
    {"flatten_middle", ShapeOp::flatten, {1, 2}, 1},
    {"reshape_infer", ShapeOp::reshape, {6, -1, 5}, 1},
    {"reshape_rank5", ShapeOp::reshape, {2, 3, 2, 2, 5}, 1},
    {"add", ShapeOp::add, {}, 2},
    {"concat_channels", ShapeOp::concat, {1}, 3},
    {"concat_last", ShapeOp::concat, {-1}, 2},
    {"concat_batch", ShapeOp::concat, {0}, 2},
};

// Every output and gradient must equal PyTorch's exactly (max_relative_error 0, which also compares shapes):
// these ops only move values, and add rounds one sum, correctly on both sides.
template <class T>
void check_fixture_case(const SafetensorsFile& file, const FixtureCase& c, const std::string& tag) {
    const std::string key = c.name + "." + tag + ".";
    INFO(key);
    if (!c.args.empty()) REQUIRE(file.get<int64_t>(c.name + ".args").values() == c.args);
    const auto dy = file.get<T>(key + "dy"), y = file.get<T>(key + "y");
    const auto exact = [](const HostTensor<T>& actual, const HostTensor<T>& expected) {
        return test::max_relative_error(actual, expected) == 0.0;
    };
    switch (c.op) {
        case ShapeOp::flatten: {
            const auto x = file.get<T>(key + "x");
            const cpu::FlattenOptions options{c.args[0], c.args[1]};
            CHECK(exact(cpu::flatten(x, options), y));
            CHECK(exact(cpu::flatten_backward(dy, x.shape(), options).dx, file.get<T>(key + "dx")));
            break;
        }
        case ShapeOp::reshape: {
            const auto x = file.get<T>(key + "x");
            CHECK(exact(cpu::reshape(x, c.args), y));
            CHECK(exact(cpu::reshape_backward(dy, x.shape()).dx, file.get<T>(key + "dx")));
            break;
        }
        case ShapeOp::add: {
            CHECK(exact(cpu::add(file.get<T>(key + "a"), file.get<T>(key + "b")), y));
            const auto grads = cpu::add_backward(dy);
            CHECK(exact(grads.da, file.get<T>(key + "da")));
            CHECK(exact(grads.db, file.get<T>(key + "db")));
            break;
        }
        case ShapeOp::concat: {
            std::vector<HostTensor<T>> inputs;
            std::vector<const HostTensor<T>*> pointers;
            std::vector<Shape> shapes;
            for (int k = 0; k < c.inputs; ++k) inputs.push_back(file.get<T>(key + "x" + std::to_string(k)));
            for (const HostTensor<T>& input : inputs) {
                pointers.push_back(&input);
                shapes.push_back(input.shape());
            }
            CHECK(exact(cpu::concat(pointers, c.args[0]), y));
            const auto grads = cpu::concat_backward(dy, shapes, c.args[0]);
            REQUIRE(grads.dx.size() == inputs.size());
            for (int k = 0; k < c.inputs; ++k) {
                INFO("input " << k);
                CHECK(exact(grads.dx[size_t(k)], file.get<T>(key + "dx" + std::to_string(k))));
            }
            break;
        }
    }
}

}  // namespace

TEST_CASE(
    "shape ops: outputs and gradients match PyTorch exactly in float and double (tests/fixtures/shape_ops)",
    "[shape_ops][fixture]") {
    const SafetensorsFile file = test::load_fixture("shape_ops");
    for (const FixtureCase& c : kFixtureCases) {
        check_fixture_case<double>(file, c, "f64");
        check_fixture_case<float>(file, c, "f32");
    }
}

TEST_CASE("shape ops: bad arguments raise Error naming the op and the values", "[shape_ops][errors]") {
    using Catch::Contains;
    const HostTensor<float> x(Shape{2, 3, 4}, 1.0f);
    const HostTensor<float> empty;

    CHECK_THROWS_WITH(cpu::flatten(x, {2, 1}), Contains("flatten: start_dim 2 comes after end_dim 1"));
    CHECK_THROWS_WITH(
        cpu::flatten(x, {3, -1}),
        Contains("flatten: start_dim = 3 is out of range for a tensor of rank 3; it must be in [-3, 2]"));
    CHECK_THROWS_WITH(cpu::flatten(x, {0, -4}), Contains("flatten: end_dim = -4 is out of range"));
    CHECK_THROWS_WITH(cpu::flatten_output_shape(Shape{}, {}),
                      Contains("flatten: start_dim = 1 is out of range"));
    CHECK_THROWS_WITH(cpu::flatten(empty), Contains("flatten: x is empty"));
    CHECK_THROWS_WITH(cpu::flatten_output_shape(Shape{2, 0, 3}),
                      Contains("flatten: the input has shape (2, 0, 3)"));
    CHECK_THROWS_WITH(
        cpu::flatten_backward(HostTensor<float>(Shape{2, 4, 3}), x.shape()),
        Contains("flatten_backward: dy has shape (2, 4, 3) but flattening (2, 3, 4) (start_dim 1, "
                 "end_dim -1) gives (2, 12)"));

    CHECK_THROWS_WITH(cpu::reshape(x, {5, -1}),
                      Contains("reshape: shape [5, -1] is invalid for input (2, 3, 4) of 24 elements"));
    CHECK_THROWS_WITH(cpu::reshape(x, {5, 5}),
                      Contains("reshape: shape [5, 5] has more elements than the input (2, 3, 4)"));
    CHECK_THROWS_WITH(cpu::reshape(x, {2, 2}),
                      Contains("reshape: shape [2, 2] has 4 elements but the input (2, 3, 4) has 24"));
    CHECK_THROWS_WITH(cpu::reshape(x, {-1, 2, -1}),
                      Contains("reshape: shape [-1, 2, -1] has more than one -1"));
    CHECK_THROWS_WITH(cpu::reshape(x, {0, -1}), Contains("reshape: shape [0, -1] has dimension 0 = 0"));
    CHECK_THROWS_WITH(cpu::reshape(x, {-2, -12}), Contains("reshape: shape [-2, -12] has dimension 0 = -2"));
    CHECK_THROWS_WITH(cpu::reshape(x, {1, 1, 1, 1, 1, 1, 1, 2, 12}),
                      Contains("reshape: shape [1, 1, 1, 1, 1, 1, 1, 2, 12] has 9 dimensions; at most 8"));
    CHECK_THROWS_WITH(cpu::reshape(x, {int64_t{1} << 62, 4, -1}),
                      Contains("has more elements than the input"));
    CHECK_THROWS_WITH(cpu::reshape(empty, {1}), Contains("reshape: x is empty"));
    CHECK_THROWS_WITH(
        cpu::reshape_backward(HostTensor<float>(Shape{5}), x.shape()),
        Contains("reshape_backward: dy has shape (5) (5 elements) but the input shape (2, 3, 4) has 24"));

    CHECK_THROWS_WITH(cpu::add(x, HostTensor<float>(Shape{2, 4, 3})),
                      Contains("add: a has shape (2, 3, 4) and b has shape (2, 4, 3); they must be equal"));
    CHECK_THROWS_WITH(cpu::add(x, HostTensor<float>(Shape{1, 3, 4})), Contains("does not broadcast"));
    CHECK_THROWS_WITH(cpu::add(empty, empty), Contains("add: a is empty"));
    CHECK_THROWS_WITH(cpu::add_backward(empty), Contains("add_backward: dy is empty"));

    const HostTensor<float> c1(Shape{2, 3, 4, 4}), c2(Shape{2, 5, 4, 3}), c3(Shape{2, 5, 4});
    CHECK_THROWS_WITH(cpu::concat<float>({}), Contains("concat: no inputs; pass at least one tensor"));
    CHECK_THROWS_WITH(cpu::concat<float>({&c1, nullptr}), Contains("concat: input 1 is a null pointer"));
    CHECK_THROWS_WITH(
        cpu::concat<float>({&c1, &c2}),
        Contains("concat: input 1 has shape (2, 5, 4, 3) but input 0 has shape (2, 3, 4, 4); along "
                 "dim 1 they may differ, but dimension 3 must be equal"));
    CHECK_THROWS_WITH(
        cpu::concat<float>({&c1, &c3}),
        Contains("concat: input 1 has shape (2, 5, 4) but input 0 has shape (2, 3, 4, 4); ranks must "
                 "be equal"));
    CHECK_THROWS_WITH(
        cpu::concat<float>({&c1, &c1}, 4),
        Contains("concat: dim = 4 is out of range for a tensor of rank 4; it must be in [-4, 3]"));
    CHECK_THROWS_WITH(cpu::concat<float>({&c1, &empty}), Contains("concat: input 1 is empty (shape ())"));
    CHECK_THROWS_WITH(cpu::concat<float>({&c1, &c3}, 0), Contains("concat: input 1 has shape (2, 5, 4)"));
    CHECK_THROWS_WITH(cpu::concat_output_shape({Shape{}}), Contains("concat: the input is a scalar"));
    CHECK_THROWS_WITH(
        cpu::concat_backward(HostTensor<float>(Shape{2, 7, 4, 4}), {c1.shape(), c1.shape()}),
        Contains("concat_backward: dy has shape (2, 7, 4, 4) but the input shapes concatenate to "
                 "(2, 6, 4, 4) along dim 1"));
    CHECK_THROWS_AS(cpu::add(x, HostTensor<float>(Shape{3})), Error);
}
