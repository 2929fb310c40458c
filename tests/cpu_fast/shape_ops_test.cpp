// The fast add, accumulate and concat (src/cpu_fast/shape_ops.cpp) against the reference: bit-identical (one
// float addition, or copies) with 1, 2 and 3 threads, aliasing, skipped gradients, and the reference's errors.
#include <catch2/catch.hpp>

#include <cstdint>
#include <vector>

#include "cudacnn/ops/shape_ops.hpp"
#include "cpu_fast/fast_support.hpp"
#include "src/cpu_fast/shape_ops.hpp"
#include "support/errors.hpp"

using namespace cudacnn;
using Catch::Contains;

// add and accumulate are one correctly rounded float addition per value, as the reference's add; concat and
// its backward are copies: every comparison here is bit for bit (no tolerance).

TEST_CASE("fast add and accumulate equal the reference bit for bit with any thread count", "[cpu_fast]") {
    for (const Shape& shape : {Shape{3, 5, 7, 9}, Shape{test::kSeveralItems}}) {
        const HostTensor<float> a = test::random_tensor<float>(shape, 21);
        const HostTensor<float> b = test::random_tensor<float>(shape, 22);
        const HostTensor<float> expected = cpu::add(a, b);
        for (int threads : test::kThreadCounts) {
            INFO("shape " << shape.to_string() << ", threads " << threads);
            const cpu_fast::Workers workers(threads);
            HostTensor<float> y = test::poisoned_tensor<float>(shape);
            cpu_fast::add(a.data(), b.data(), y.data(), a.numel(), workers);
            CHECK(test::same_bits(y, expected));
            HostTensor<float> sum = a;
            cpu_fast::accumulate(sum.data(), b.data(), a.numel(), workers);
            CHECK(test::same_bits(sum, expected));
        }
    }
}

TEST_CASE("fast add may write over an input", "[cpu_fast]") {
    HostTensor<float> a = test::random_tensor<float>(Shape{test::kSeveralItems}, 23);
    const HostTensor<float> b = test::random_tensor<float>(a.shape(), 24);
    const HostTensor<float> expected = cpu::add(a, b);
    cpu_fast::add(a.data(), b.data(), a.data(), a.numel(), cpu_fast::Workers(3));
    CHECK(test::same_bits(a, expected));
}

TEST_CASE("fast concat and its backward equal the reference with any thread count", "[cpu_fast]") {
    struct Case {
        std::vector<Shape> shapes;
        int64_t dim;
    };
    const std::vector<Case> cases = {
        {{Shape{3, 5, 7, 9}, Shape{3, 2, 7, 9}, Shape{3, 1, 7, 9}}, 1},
        {{Shape{3, 4, 7, 9}, Shape{3, 4, 7, 9}}, -3},     // negative dim: channels again
        {{Shape{2, 5, 7, 9}, Shape{1, 5, 7, 9}}, 0},      // one outer row
        {{Shape{3, 5, 7, 2}, Shape{3, 5, 7, 3}}, 3},      // short runs
        {{Shape{2, 300, 8, 8}, Shape{2, 200, 8, 8}}, 1},  // runs larger than an elementwise item
    };
    for (const Case& c : cases) {
        std::vector<HostTensor<float>> inputs;
        std::vector<const HostTensor<float>*> input_ptrs;
        std::vector<const float*> raw;
        for (size_t k = 0; k < c.shapes.size(); ++k) inputs.push_back(test::random_tensor<float>(c.shapes[k], 30 + k));
        for (const HostTensor<float>& t : inputs) input_ptrs.push_back(&t), raw.push_back(t.data());
        const HostTensor<float> expected = cpu::concat(input_ptrs, c.dim);
        const HostTensor<float> dy = test::random_tensor<float>(expected.shape(), 40);
        const cpu::ConcatGrads<float> expected_dx = cpu::concat_backward(dy, c.shapes, c.dim);
        for (int threads : test::kThreadCounts) {
            INFO("output " << expected.shape().to_string() << ", dim " << c.dim << ", threads " << threads);
            const cpu_fast::Workers workers(threads);
            HostTensor<float> y = test::poisoned_tensor<float>(expected.shape());
            cpu_fast::concat_forward(raw, c.shapes, c.dim, y.data(), workers);
            CHECK(test::same_bits(y, expected));
            std::vector<HostTensor<float>> dx;
            std::vector<float*> dx_raw;
            for (const Shape& s : c.shapes) dx.push_back(test::poisoned_tensor<float>(s));
            for (HostTensor<float>& t : dx) dx_raw.push_back(t.data());
            cpu_fast::concat_backward(dy.data(), c.shapes, c.dim, dx_raw, workers);
            for (size_t k = 0; k < dx.size(); ++k) CHECK(test::same_bits(dx[k], expected_dx.dx[k]));
        }
    }
}

TEST_CASE("fast concat_backward skips a null gradient", "[cpu_fast]") {
    const std::vector<Shape> shapes = {Shape{3, 5, 7, 9}, Shape{3, 2, 7, 9}};
    const HostTensor<float> dy = test::random_tensor<float>(Shape{3, 7, 7, 9}, 41);
    const cpu::ConcatGrads<float> expected = cpu::concat_backward(dy, shapes, 1);
    HostTensor<float> dx1 = test::poisoned_tensor<float>(shapes[1]);
    cpu_fast::concat_backward(dy.data(), shapes, 1, {nullptr, dx1.data()}, cpu_fast::Workers(2));
    CHECK(test::same_bits(dx1, expected.dx[1]));
}

TEST_CASE("fast shape ops report bad arguments", "[cpu_fast]") {
    const cpu_fast::Workers workers(1);
    float v = 1.0f;
    CHECK_THAT(test::error_message([&] { cpu_fast::add(&v, &v, &v, 0, workers); }),
               Contains("add: count 0 must be at least 1"));
    CHECK_THAT(test::error_message([&] { cpu_fast::accumulate(&v, &v, 0, workers); }),
               Contains("accumulate: count 0 must be at least 1"));
    // The reference's shape check, word for word.
    const std::vector<Shape> shapes = {Shape{3, 5, 7, 9}, Shape{3, 2, 6, 9}};
    CHECK_THAT(test::error_message([&] { cpu_fast::concat_forward({&v, &v}, shapes, 1, &v, workers); }),
               Contains("concat: input 1 has shape (3, 2, 6, 9) but input 0 has shape (3, 5, 7, 9); along dim 1"));
    CHECK_THAT(test::error_message([&] { cpu_fast::concat_forward({&v}, shapes, 1, &v, workers); }),
               Contains("concat: 1 pointers for 2 input shapes"));
    CHECK_THAT(test::error_message([&] { cpu_fast::concat_backward(&v, {Shape{3, 5}}, 2, {&v}, workers); }),
               Contains("concat: dim = 2 is out of range for a tensor of rank 2"));
}
