// CPU reference of dropout and dropout2d with Philox masks: the spec (mask rule in the header) that kernels
// match.
#include "cudacnn/ops/dropout.hpp"

#include <cmath>
#include <cstdint>
#include <utility>

#include "cudacnn/error.hpp"
#include "src/cpu/dropout_rule.hpp"

namespace cudacnn::cpu {
namespace {

// Values are computed in double whatever T is and rounded to T once.
using Acc = double;

void check_options(const char* op, const DropoutOptions& options) {
    // Written so that NaN fails too.
    CUDACNN_CHECK(options.p >= 0.0 && options.p <= 1.0,
                  "{}: p is {}; it must be in [0, 1] (the probability of zeroing a unit)", op, options.p);
}

void check_dropout2d_shape(const char* op, const char* name, const Shape& shape) {
    CUDACNN_CHECK(shape.rank() == 4, "{}: {} has shape {}; it must be (N, C, H, W)", op, name, shape);
    CUDACNN_CHECK(shape.numel() > 0, "{}: {} has shape {}; every dimension must be positive", op, name,
                  shape);
}

// A mask of shape mask_shape, its units numbered in row-major order, by the rule in the header.
HostTensor<uint8_t> draw_mask(const Shape& mask_shape, const DropoutOptions& options) {
    HostTensor<uint8_t> mask(mask_shape, uint8_t{1});
    if (!options.training) return mask;
    const float p = static_cast<float>(options.p);
    for (int64_t j = 0; j < mask.numel(); ++j) {
        const uint64_t unit = static_cast<uint64_t>(j);
        bool keep[4];
        detail::dropout_keep4(options.seed, options.stream, p, unit / 4, keep);
        mask[j] = keep[unit % 4] ? 1 : 0;
    }
    return mask;
}

// The factor for a unit: 0 when dropped, 1 / (1 − p) when kept (1 in eval mode). Never evaluated as 1 / 0:
// with p = 1 every unit is dropped.
Acc unit_factor(uint8_t kept, const DropoutOptions& options) {
    if (!options.training) return 1;
    return kept != 0 ? 1 / (1 - options.p) : 0;
}

// out[i] = in[i] · factor(mask[i / unit_size]): the shared body of all four ops. unit_size is 1 for dropout
// and H · W for dropout2d, whose units are contiguous runs of H · W elements.
template <class T>
HostTensor<T> apply_mask(const HostTensor<T>& in, const HostTensor<uint8_t>& mask, int64_t unit_size,
                         const DropoutOptions& options) {
    HostTensor<T> out(in.shape());
    for (int64_t i = 0; i < in.numel(); ++i) {
        out[i] = static_cast<T>(static_cast<Acc>(in[i]) * unit_factor(mask[i / unit_size], options));
    }
    return out;
}

}  // namespace

HostTensor<uint8_t> dropout_mask(const Shape& shape, const DropoutOptions& options) {
    check_options("dropout_mask", options);
    CUDACNN_CHECK(shape.numel() > 0,
                  "dropout_mask: shape {} has no elements; every dimension must be positive", shape);
    return draw_mask(shape, options);
}

HostTensor<uint8_t> dropout2d_mask(const Shape& shape, const DropoutOptions& options) {
    check_options("dropout2d_mask", options);
    check_dropout2d_shape("dropout2d_mask", "the input", shape);
    return draw_mask(Shape{shape[0], shape[1]}, options);  // (N, C)
}

template <class T>
DropoutResult<T> dropout(const HostTensor<T>& x, const DropoutOptions& options) {
    check_options("dropout", options);
    CUDACNN_CHECK(!x.empty(),
                  "dropout: the input is empty (shape {}); pass a tensor with at least one element",
                  x.shape());
    HostTensor<uint8_t> mask = draw_mask(x.shape(), options);
    HostTensor<T> y = apply_mask(x, mask, 1, options);
    return {std::move(y), std::move(mask)};
}

template <class T>
DropoutGrads<T> dropout_backward(const HostTensor<T>& dy, const HostTensor<uint8_t>& mask,
                                 const DropoutOptions& options) {
    check_options("dropout_backward", options);
    CUDACNN_CHECK(!dy.empty(),
                  "dropout_backward: dy is empty (shape {}); pass a tensor with at least one element",
                  dy.shape());
    CUDACNN_CHECK(
        mask.shape() == dy.shape(),
        "dropout_backward: mask has shape {} but dy has shape {}; pass the mask the forward returned",
        mask.shape(), dy.shape());
    return {apply_mask(dy, mask, 1, options)};
}

template <class T>
DropoutResult<T> dropout2d(const HostTensor<T>& x, const DropoutOptions& options) {
    check_options("dropout2d", options);
    check_dropout2d_shape("dropout2d", "x", x.shape());
    HostTensor<uint8_t> mask = draw_mask(Shape{x.dim(0), x.dim(1)}, options);  // (N, C)
    HostTensor<T> y = apply_mask(x, mask, x.dim(2) * x.dim(3), options);
    return {std::move(y), std::move(mask)};
}

template <class T>
DropoutGrads<T> dropout2d_backward(const HostTensor<T>& dy, const HostTensor<uint8_t>& mask,
                                   const DropoutOptions& options) {
    check_options("dropout2d_backward", options);
    check_dropout2d_shape("dropout2d_backward", "dy", dy.shape());
    CUDACNN_CHECK(
        mask.shape() == Shape({dy.dim(0), dy.dim(1)}),
        "dropout2d_backward: mask has shape {} but dy {} needs ({}, {}) = (N, C); pass the mask the "
        "forward returned",
        mask.shape(), dy.shape(), dy.dim(0), dy.dim(1));
    return {apply_mask(dy, mask, dy.dim(2) * dy.dim(3), options)};
}

template DropoutResult<float> dropout(const HostTensor<float>&, const DropoutOptions&);
template DropoutResult<double> dropout(const HostTensor<double>&, const DropoutOptions&);
template DropoutGrads<float> dropout_backward(const HostTensor<float>&, const HostTensor<uint8_t>&,
                                              const DropoutOptions&);
template DropoutGrads<double> dropout_backward(const HostTensor<double>&, const HostTensor<uint8_t>&,
                                               const DropoutOptions&);
template DropoutResult<float> dropout2d(const HostTensor<float>&, const DropoutOptions&);
template DropoutResult<double> dropout2d(const HostTensor<double>&, const DropoutOptions&);
template DropoutGrads<float> dropout2d_backward(const HostTensor<float>&, const HostTensor<uint8_t>&,
                                                const DropoutOptions&);
template DropoutGrads<double> dropout2d_backward(const HostTensor<double>&, const HostTensor<uint8_t>&,
                                                 const DropoutOptions&);

}  // namespace cudacnn::cpu
