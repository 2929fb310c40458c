// Shape, DType and TensorView: element counts, printing, validation and the dtype check of data_as.
#include <catch2/catch.hpp>

#include <cstdint>
#include <vector>

#include "cudacnn/tensor.hpp"

using Catch::Matchers::Contains;
using cudacnn::DType;
using cudacnn::Shape;
using cudacnn::TensorView;

TEST_CASE("Shape counts elements and prints like a tuple", "[tensor]") {
    const Shape batch{128, 3, 32, 32};
    CHECK(batch.rank() == 4);
    CHECK(batch.numel() == 128 * 3 * 32 * 32);
    CHECK(batch[1] == 3);
    CHECK(batch.to_string() == "(128, 3, 32, 32)");
    CHECK(fmt::format("{}", batch) == "(128, 3, 32, 32)");
    CHECK(batch.dims() == std::vector<std::int64_t>{128, 3, 32, 32});

    CHECK(Shape{}.rank() == 0);
    CHECK(Shape{}.numel() == 1);  // a scalar
    CHECK(Shape{}.to_string() == "()");
    CHECK(Shape{10}.to_string() == "(10)");
    CHECK(Shape{4, 0, 5}.numel() == 0);
}

TEST_CASE("Shape equality compares rank and every dimension", "[tensor]") {
    CHECK(Shape{2, 3} == Shape(std::vector<std::int64_t>{2, 3}));
    CHECK(Shape{2, 3} != Shape{3, 2});
    CHECK(Shape{2, 3} != Shape{2, 3, 1});
    CHECK(Shape{} != Shape{1});
}

TEST_CASE("Shape rejects negative dimensions, rank above 8 and overflowing sizes", "[tensor]") {
    CHECK_THROWS_WITH(Shape({2, -1, 3}), Contains("(2, -1, 3)") && Contains("dimension 1 is negative"));
    CHECK_THROWS_AS(Shape({1, 1, 1, 1, 1, 1, 1, 1, 1}), cudacnn::Error);
    CHECK_THROWS_WITH(Shape({1, 1, 1, 1, 1, 1, 1, 1, 1}), Contains("rank 9 exceeds the maximum of 8"));
    CHECK_NOTHROW(Shape({1, 1, 1, 1, 1, 1, 1, 1}));
    CHECK_THROWS_WITH(Shape({std::int64_t{1} << 40, std::int64_t{1} << 40}), Contains("overflows"));
    CHECK_THROWS_WITH(Shape({2, 3})[2], Contains("axis 2 is out of range"));
}

TEST_CASE("dtype sizes and names", "[tensor]") {
    CHECK(cudacnn::dtype_size(DType::f32) == 4);
    CHECK(cudacnn::dtype_size(DType::f16) == 2);
    CHECK(cudacnn::dtype_size(DType::bf16) == 2);
    CHECK(cudacnn::dtype_size(DType::i32) == 4);
    CHECK(cudacnn::dtype_size(DType::i64) == 8);
    CHECK(cudacnn::dtype_size(DType::u8) == 1);
    CHECK(std::string(cudacnn::dtype_name(DType::bf16)) == "bf16");
    STATIC_REQUIRE(cudacnn::dtype_of<float>() == DType::f32);
    STATIC_REQUIRE(cudacnn::dtype_of<const std::int64_t>() == DType::i64);
    STATIC_REQUIRE(cudacnn::dtype_of<std::uint8_t>() == DType::u8);
}

TEST_CASE("TensorView gives typed access only for its own dtype", "[tensor]") {
    std::vector<float> storage(2 * 3, 1.5f);
    const TensorView view{storage.data(), Shape{2, 3}, DType::f32, cudacnn::Device::cpu};
    CHECK(view.numel() == 6);
    CHECK(view.bytes() == 24);
    CHECK(view.data_as<float>() == storage.data());
    CHECK(view.data_as<const float>()[5] == 1.5f);

    CHECK_THROWS_AS(view.data_as<std::int32_t>(), cudacnn::Error);
    CHECK_THROWS_WITH(view.data_as<std::int32_t>(), Contains("holds f32") && Contains("accessed as i32"));

    const TensorView half{storage.data(), Shape{4}, DType::f16, cudacnn::Device::cpu};
    CHECK(half.bytes() == 8);
    CHECK_THROWS_WITH(half.data_as<float>(), Contains("holds f16") && Contains("accessed as f32"));
}
