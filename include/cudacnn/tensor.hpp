// Element types, shapes and the non-owning TensorView that ops take: a pointer plus what it points at.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

#include <fmt/format.h>

#include "cudacnn/error.hpp"

namespace cudacnn {

// f16 and bf16 have no C++ type in this header: they are 2-byte storage that kernels interpret.
enum class DType { f32, f16, bf16, i32, i64, u8 };

std::size_t dtype_size(DType dtype);
const char* dtype_name(DType dtype);  // "f32", "f16", …

// dtype_of<float>() == DType::f32; only the types with a C++ representation have an entry, so a
// data_as<double>() is a compile error rather than a runtime surprise.
template <class T>
struct DTypeOf;
template <>
struct DTypeOf<float> {
    static constexpr DType value = DType::f32;
};
template <>
struct DTypeOf<std::int32_t> {
    static constexpr DType value = DType::i32;
};
template <>
struct DTypeOf<std::int64_t> {
    static constexpr DType value = DType::i64;
};
template <>
struct DTypeOf<std::uint8_t> {
    static constexpr DType value = DType::u8;
};
template <class T>
constexpr DType dtype_of() {
    return DTypeOf<std::remove_cv_t<T>>::value;
}

// Where a pointer lives. gpu means device memory, whether on a real GPU or the emulator's.
enum class Device { cpu, gpu };

const char* device_name(Device device);  // "cpu", "gpu"

// Up to 8 dimensions, each >= 0. Rank 0 is a scalar (numel 1).
class Shape {
  public:
    static constexpr int kMaxRank = 8;

    Shape() = default;
    Shape(std::initializer_list<std::int64_t> dims);
    explicit Shape(const std::vector<std::int64_t>& dims);

    int rank() const { return rank_; }
    std::int64_t operator[](int axis) const;  // throws Error when axis is not in [0, rank)
    std::int64_t numel() const;
    std::vector<std::int64_t> dims() const { return {dims_.begin(), dims_.begin() + rank_}; }

    bool operator==(const Shape& other) const;
    bool operator!=(const Shape& other) const { return !(*this == other); }

    std::string to_string() const;  // "(128, 3, 32, 32)"; "()" for a scalar

  private:
    void validate() const;

    int rank_ = 0;
    std::array<std::int64_t, kMaxRank> dims_{};  // entries past rank_ stay 0 so == can compare arrays
};

[[noreturn]] void throw_dtype_mismatch(DType actual, DType requested);

// Does not own its memory and does not know who does; it is as cheap to copy as a pointer.
struct TensorView {
    void* data = nullptr;
    Shape shape;
    DType dtype = DType::f32;
    Device device = Device::cpu;

    std::int64_t numel() const { return shape.numel(); }
    std::size_t bytes() const { return static_cast<std::size_t>(numel()) * dtype_size(dtype); }

    // The data as T*, after checking that T is the view's dtype (const T is fine).
    template <class T>
    T* data_as() const {
        if (dtype_of<T>() != dtype) throw_dtype_mismatch(dtype, dtype_of<T>());
        return static_cast<T*>(data);
    }
};

}  // namespace cudacnn

// So that messages can say CUDACNN_CHECK(a == b, "shapes {} and {} differ", a, b).
template <>
struct fmt::formatter<cudacnn::Shape> : fmt::formatter<std::string_view> {
    template <class FormatContext>
    auto format(const cudacnn::Shape& shape, FormatContext& ctx) const {
        return fmt::formatter<std::string_view>::format(shape.to_string(), ctx);
    }
};
template <>
struct fmt::formatter<cudacnn::DType> : fmt::formatter<std::string_view> {
    template <class FormatContext>
    auto format(cudacnn::DType dtype, FormatContext& ctx) const {
        return fmt::formatter<std::string_view>::format(cudacnn::dtype_name(dtype), ctx);
    }
};
