// Shape validation and printing, dtype tables and the dtype-mismatch error of TensorView.
#include "cudacnn/tensor.hpp"

namespace cudacnn {

std::size_t dtype_size(DType dtype) {
    switch (dtype) {
        case DType::f32:
            return 4;
        case DType::f16:
            return 2;
        case DType::bf16:
            return 2;
        case DType::i32:
            return 4;
        case DType::i64:
            return 8;
        case DType::u8:
            return 1;
    }
    CUDACNN_FAIL("dtype_size: invalid DType value {}", static_cast<int>(dtype));
}

const char* dtype_name(DType dtype) {
    switch (dtype) {
        case DType::f32:
            return "f32";
        case DType::f16:
            return "f16";
        case DType::bf16:
            return "bf16";
        case DType::i32:
            return "i32";
        case DType::i64:
            return "i64";
        case DType::u8:
            return "u8";
    }
    return "invalid-dtype";  // no throw: this is used while formatting other errors
}

const char* device_name(Device device) {
    switch (device) {
        case Device::cpu:
            return "cpu";
        case Device::gpu:
            return "gpu";
    }
    return "invalid-device";
}

Shape::Shape(std::initializer_list<std::int64_t> dims) : Shape(std::vector<std::int64_t>(dims)) {}

Shape::Shape(const std::vector<std::int64_t>& dims) {
    CUDACNN_CHECK(dims.size() <= static_cast<std::size_t>(kMaxRank),
                  "Shape: rank {} exceeds the maximum of {}", dims.size(), kMaxRank);
    rank_ = static_cast<int>(dims.size());
    for (int i = 0; i < rank_; ++i) dims_[i] = dims[i];
    validate();
}

void Shape::validate() const {
    std::int64_t numel = 1;
    for (int i = 0; i < rank_; ++i) {
        CUDACNN_CHECK(dims_[i] >= 0, "Shape {}: dimension {} is negative", to_string(), i);
        // Checked once here so that numel() and bytes() can never overflow later.
        CUDACNN_CHECK(!__builtin_mul_overflow(numel, dims_[i], &numel),
                      "Shape {}: the number of elements overflows int64", to_string());
    }
}

std::int64_t Shape::operator[](int axis) const {
    CUDACNN_CHECK(axis >= 0 && axis < rank_, "Shape {}: axis {} is out of range for rank {}", to_string(),
                  axis, rank_);
    return dims_[axis];
}

std::int64_t Shape::numel() const {
    std::int64_t n = 1;
    for (int i = 0; i < rank_; ++i) n *= dims_[i];
    return n;
}

bool Shape::operator==(const Shape& other) const {
    return rank_ == other.rank_ && dims_ == other.dims_;
}

std::string Shape::to_string() const {
    std::string text = "(";
    for (int i = 0; i < rank_; ++i) {
        if (i > 0) text += ", ";
        text += std::to_string(dims_[i]);
    }
    return text + ")";
}

void throw_dtype_mismatch(DType actual, DType requested) {
    CUDACNN_FAIL(
        "TensorView::data_as: the tensor holds {} elements but was accessed as {}; "
        "convert it or access it with the matching type",
        dtype_name(actual), dtype_name(requested));
}

}  // namespace cudacnn
