// Shape-op kernels against the CPU reference: add (aligned, misaligned, in place) and its backward copies,
// concat along channels and other dims with 1 to 10 inputs (float4 and float paths) and its split; the
// flatten / reshape views; bad arguments.
#include <catch2/catch.hpp>

#include <cstdint>
#include <vector>

#include "cuda/shape_ops.hpp"
#include "cudacnn/ops/shape_ops.hpp"
#include "support/compare.hpp"
#include "support/errors.hpp"
#include "support/parity.hpp"

using namespace cudacnn;
using Catch::Matchers::Contains;
using test::max_relative_error;

namespace {

// add rounds a + b once in float, as the reference does; concat and split copy: all exact.
constexpr double kExactTolerance = 0.0;

// Every call runs on the legacy default stream, which orders copies, fills, kernels and downloads.

// Concat of inputs with these shapes along dim, forward and backward, against the reference.
void check_concat(const std::vector<Shape>& shapes, int64_t dim) {
    const Shape whole = cpu::concat_output_shape(shapes, dim);
    CAPTURE(shapes.size(), shapes[0].to_string(), whole.to_string(), dim);
    std::vector<HostTensor<float>> inputs;
    std::vector<DeviceBuffer> inputs_d;
    std::vector<const HostTensor<float>*> input_pointers;
    std::vector<const float*> device_pointers;
    for (size_t k = 0; k < shapes.size(); ++k)
        inputs.push_back(test::random_tensor<float>(shapes[k], 300 + k));
    for (const HostTensor<float>& t : inputs) {
        inputs_d.push_back(test::to_device(t));
        input_pointers.push_back(&t);
        device_pointers.push_back(inputs_d.back().data_as<float>());
    }
    DeviceBuffer y_d = test::poisoned<float>(whole.numel());
    gpu::concat_forward(device_pointers, shapes, dim, y_d.data_as<float>(), nullptr);
    CHECK(max_relative_error(test::to_host<float>(y_d, whole), cpu::concat(input_pointers, dim)) <=
          kExactTolerance);

    const HostTensor<float> dy = test::random_tensor<float>(whole, 399);
    const DeviceBuffer dy_d = test::to_device(dy);
    std::vector<DeviceBuffer> dx_d;
    std::vector<float*> dx_pointers;
    for (const Shape& s : shapes) {
        dx_d.push_back(test::poisoned<float>(s.numel()));
        dx_pointers.push_back(dx_d.back().data_as<float>());
    }
    gpu::concat_backward(dy_d.data_as<float>(), shapes, dim, dx_pointers, nullptr);
    const cpu::ConcatGrads<float> expected = cpu::concat_backward(dy, shapes, dim);
    for (size_t k = 0; k < shapes.size(); ++k) {
        CAPTURE(k);
        CHECK(max_relative_error(test::to_host<float>(dx_d[k], shapes[k]), expected.dx[k]) <=
              kExactTolerance);
    }
}

}  // namespace

TEST_CASE("add matches the reference: aligned, misaligned, mixed alignment and in place",
          "[parity][shape_ops]") {
    for (const Shape& shape : {Shape{4, 32, 16, 16}, Shape{5, 3, 7, 5}, Shape{1, 3}}) {
        const HostTensor<float> a = test::random_tensor<float>(shape, 1),
                                b = test::random_tensor<float>(shape, 2);
        const HostTensor<float> expected = cpu::add(a, b);
        // (a, b, y) offsets: all aligned (float4), all offset by one float (head + float4 + tail), mixed
        // (scalar).
        for (const auto& [a_offset, y_offset] : {std::pair<int64_t, int64_t>{0, 0}, {1, 1}, {1, 0}}) {
            CAPTURE(shape.to_string(), a_offset, y_offset);
            const test::OffsetBuffer<float> a_d = test::to_device_at(a, a_offset),
                                            b_d = test::to_device_at(b, a_offset);
            const test::OffsetBuffer<float> y_d = test::poisoned_at<float>(shape.numel(), y_offset);
            gpu::add_forward(a_d.data(), b_d.data(), y_d.data(), shape.numel(), nullptr);
            CHECK(max_relative_error(test::to_host(y_d, shape), expected) <= kExactTolerance);
            gpu::add_forward(a_d.data(), b_d.data(), a_d.data(), shape.numel(), nullptr);  // in place: a += b
            CHECK(max_relative_error(test::to_host(a_d, shape), expected) <= kExactTolerance);
        }
    }
}

TEST_CASE("add_backward copies dy into da and db, skipping null or aliased outputs", "[parity][shape_ops]") {
    const Shape shape{5, 3, 7, 5};
    const HostTensor<float> dy = test::random_tensor<float>(shape, 3);
    const DeviceBuffer dy_d = test::to_device(dy);
    DeviceBuffer da_d = test::poisoned<float>(shape.numel()), db_d = test::poisoned<float>(shape.numel());
    const cpu::AddGrads<float> expected = cpu::add_backward(dy);
    gpu::add_backward(dy_d.data_as<float>(), da_d.data_as<float>(), db_d.data_as<float>(), shape.numel(),
                      nullptr);
    CHECK(max_relative_error(test::to_host<float>(da_d, shape), expected.da) <= kExactTolerance);
    CHECK(max_relative_error(test::to_host<float>(db_d, shape), expected.db) <= kExactTolerance);
    // Aliased and null outputs: nothing to do, nothing written.
    gpu::add_backward(dy_d.data_as<float>(), dy_d.data_as<float>(), nullptr, shape.numel(), nullptr);
    CHECK(test::bitwise_equal(test::to_host<float>(dy_d, shape), dy));
}

TEST_CASE("concat and its split match the reference along channels and other dims", "[parity][shape_ops]") {
    // Channels of CifarCNN-sized feature maps, batch scaled down: every run a multiple of 4 (float4 path).
    check_concat({Shape{2, 32, 8, 8}, Shape{2, 64, 8, 8}}, 1);
    // 7×5 planes, 3 channels and odd channel counts: the float path; batch 5 and batch 1.
    check_concat({Shape{5, 3, 7, 5}, Shape{5, 1, 7, 5}, Shape{5, 2, 7, 5}}, 1);
    check_concat({Shape{1, 3, 7, 5}, Shape{1, 3, 7, 5}}, -3);
    // One input (a copy), other dims (0 and the last), and more inputs than one launch takes (8).
    check_concat({Shape{2, 3, 4, 4}}, 1);
    check_concat({Shape{2, 3, 4, 4}, Shape{1, 3, 4, 4}}, 0);
    check_concat({Shape{2, 3, 4, 1}, Shape{2, 3, 4, 5}}, -1);
    std::vector<Shape> many;
    for (int64_t k = 1; k <= 10; ++k) many.push_back(Shape{3, k, 2, 3});
    check_concat(many, 1);
    // Runs longer than 256 blocks of 256 threads, and more than 1024 rows: the grid-stride loops go round.
    check_concat({Shape{1, 66001}, Shape{1, 3}}, 1);
    check_concat({Shape{1100, 1}, Shape{1100, 3}}, 1);
}

TEST_CASE("flatten and reshape are views: same memory, the reference's shape", "[parity][shape_ops]") {
    DeviceBuffer buffer = test::poisoned<float>(2 * 3 * 4 * 5);
    const TensorView x = buffer.view(Shape{2, 3, 4, 5}, DType::f32);
    const TensorView flat = gpu::flatten_view(x);
    CHECK(flat.data == x.data);
    CHECK(flat.shape == cpu::flatten_output_shape(x.shape));
    const TensorView reshaped = gpu::reshape_view(flat, {-1, 4, 5});
    CHECK(reshaped.data == x.data);
    CHECK(reshaped.shape == Shape{6, 4, 5});
    CHECK_THAT(test::error_message([&] {
                   gpu::reshape_view(x, {7, -1});
               }),
               Contains("reshape: shape [7, -1]"));
}

TEST_CASE("shape-op launchers reject bad arguments with the op and the values", "[parity][shape_ops]") {
    DeviceBuffer buffer = test::poisoned<float>(64);
    float* p = buffer.data_as<float>();
    CHECK_THAT(test::error_message([&] { gpu::add_forward(p, p, p, 0, nullptr); }),
               Contains("add: the input is empty (count 0)"));
    CHECK_THAT(test::error_message([&] { gpu::add_forward(p, nullptr, p, 4, nullptr); }),
               Contains("add: a ("));
    CHECK_THAT(test::error_message([&] {
                   gpu::concat_forward({p, p}, {Shape{1, 2, 2, 2}, Shape{1, 2, 3, 2}}, 1, p, nullptr);
               }),
               Contains("concat: input 1 has shape (1, 2, 3, 2) but input 0 has shape (1, 2, 2, 2)"));
    CHECK_THAT(test::error_message([&] {
                   gpu::concat_forward({p}, {Shape{1, 2}, Shape{1, 2}}, 1, p, nullptr);
               }),
               Contains("concat: 1 tensors but 2 shapes"));
    CHECK_THAT(test::error_message([&] {
                   gpu::concat_forward({p, nullptr}, {Shape{1, 2}, Shape{1, 2}}, 1, p, nullptr);
               }),
               Contains("concat: input 1 is a null pointer"));
    CHECK_THAT(test::error_message([&] {
                   gpu::concat_backward(p, {Shape{1, 2}}, 2, {p}, nullptr);
               }),
               Contains("dim = 2 is out of range for a tensor of rank 2"));
}
