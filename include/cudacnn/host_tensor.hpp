// HostTensor<T>: an owning, contiguous, row-major tensor in host memory. The CPU reference ops take and
// return these, templated on float (what kernels compute) and double (what gradient checks use).
#pragma once

#include <cstdint>
#include <utility>
#include <vector>

#include "cudacnn/error.hpp"
#include "cudacnn/tensor.hpp"

namespace cudacnn {

template <class T>
class HostTensor {
public:
    HostTensor() = default;
    explicit HostTensor(const Shape& shape, T fill = T{})
        : shape_(shape), values_(static_cast<size_t>(shape.numel()), fill) {}
    HostTensor(const Shape& shape, std::vector<T> values) : shape_(shape), values_(std::move(values)) {
        CUDACNN_CHECK(static_cast<int64_t>(values_.size()) == shape_.numel(),
                      "HostTensor: {} values do not fill shape {} ({} elements)", values_.size(), shape_,
                      shape_.numel());
    }

    const Shape& shape() const { return shape_; }
    int64_t numel() const { return static_cast<int64_t>(values_.size()); }
    bool empty() const { return values_.empty(); }
    int64_t dim(int axis) const { return shape_[axis]; }

    T* data() { return values_.data(); }
    const T* data() const { return values_.data(); }
    T& operator[](int64_t i) { return values_[static_cast<size_t>(i)]; }
    const T& operator[](int64_t i) const { return values_[static_cast<size_t>(i)]; }
    std::vector<T>& values() { return values_; }
    const std::vector<T>& values() const { return values_; }

    // The same values as another element type (float ↔ double for gradient checks).
    template <class U>
    HostTensor<U> cast() const {
        return HostTensor<U>(shape_, std::vector<U>(values_.begin(), values_.end()));
    }

    // A view of the data for code that takes TensorView (float, int32, int64, uint8 only).
    TensorView view() { return TensorView{values_.data(), shape_, dtype_of<T>(), Device::cpu}; }

    // The same values under another shape with as many elements.
    HostTensor reshaped(const Shape& shape) const& { return HostTensor(shape, values_); }
    HostTensor reshaped(const Shape& shape) && { return HostTensor(shape, std::move(values_)); }

private:
    Shape shape_;
    std::vector<T> values_;
};

// Row-major offset of element (n, c, h, w) of an (N, C, H, W) tensor.
inline int64_t offset_nchw(const Shape& s, int64_t n, int64_t c, int64_t h, int64_t w) {
    return ((n * s[1] + c) * s[2] + h) * s[3] + w;
}

}  // namespace cudacnn
