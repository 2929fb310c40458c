// The geometric warps of RandomAffine, RandomRotation and RandomPerspective (torchvision's matrices and
// F_t's grid sampling with its fill mask) and RandomResizedCrop's bilinear resize, on float images; the
// per-pixel rules are in augment_rules.hpp.
#include "cudacnn/data/augment.hpp"
#include "cudacnn/error.hpp"
#include "src/data/augment_rules.hpp"

namespace cudacnn::data {

std::array<double, 6> inverse_affine_matrix(double angle, double translate_x, double translate_y,
                                            double scale, double shear_x, double shear_y) {
    std::array<double, 6> m{};
    rules::inverse_affine(angle, translate_x, translate_y, scale, shear_x, shear_y, m.data());
    return m;
}

namespace {

// Every output pixel from the input coordinates `source(y, x, ix, iy)` gives, through grid_sample and the
// fill mask (_apply_grid_transform).
template <class Source>
FloatImage warp(const FloatImage& image, const Source& source, bool bilinear, const std::array<float, 3>& fill) {
    const int64_t h = image.height, w = image.width, plane = h * w;
    FloatImage out{image.channels, h, w, std::vector<float>(image.values.size())};
    for (int64_t y = 0; y < h; ++y)
        for (int64_t x = 0; x < w; ++x) {
            float ix = 0.0f, iy = 0.0f;
            source(y, x, ix, iy);
            const float mask = rules::grid_mask(h, w, ix, iy, bilinear);
            for (int64_t c = 0; c < image.channels; ++c) {
                const float v = rules::grid_sample(image.values.data() + c * plane, h, w, ix, iy, bilinear);
                out.values[c * plane + y * w + x] = rules::apply_fill(v, mask, rules::channel_fill(fill, c), bilinear);
            }
        }
    return out;
}

}  // namespace

FloatImage warp_affine(const FloatImage& image, const std::array<double, 6>& matrix, bool bilinear,
                       const std::array<float, 3>& fill) {
    float theta[6];
    rules::affine_theta(matrix.data(), image.height, image.width, theta);
    return warp(
        image,
        [&](int64_t y, int64_t x, float& ix, float& iy) {
            rules::affine_source(theta, image.height, image.width, y, x, ix, iy);
        },
        bilinear, fill);
}

FloatImage warp_perspective(const FloatImage& image, const std::array<int64_t, 8>& corners, bool bilinear,
                            const std::array<float, 3>& fill) {
    float coeffs[8];
    rules::perspective_coefficients(corners.data(), image.height, image.width, coeffs);
    return warp(
        image,
        [&](int64_t y, int64_t x, float& ix, float& iy) {
            rules::perspective_source(coeffs, image.height, image.width, y, x, ix, iy);
        },
        bilinear, fill);
}

FloatImage resize_bilinear(const FloatImage& image, int64_t top, int64_t left, int64_t height, int64_t width,
                           int64_t size) {
    CUDACNN_CHECK(top >= 0 && left >= 0 && height >= 1 && width >= 1 && top + height <= image.height &&
                      left + width <= image.width && size >= 1,
                  "augment resizedcrop: window {}x{} at ({}, {}) does not fit the {}x{} image (size {})",
                  height, width, top, left, image.height, image.width, size);
    FloatImage out{image.channels, size, size, {}};
    for (int64_t c = 0; c < image.channels; ++c)
        for (int64_t oy = 0; oy < size; ++oy) {
            const rules::ResizeTap ty = rules::resize_tap(height, size, oy);
            for (int64_t ox = 0; ox < size; ++ox) {
                const rules::ResizeTap tx = rules::resize_tap(width, size, ox);
                auto at = [&](int64_t yy, int64_t xx) { return image.at(c, top + yy, left + xx); };
                out.values.push_back(rules::resize_blend(ty, tx, at(ty.i0, tx.i0), at(ty.i0, tx.i1), at(ty.i1, tx.i0),
                                                         at(ty.i1, tx.i1)));
            }
        }
    return out;
}

}  // namespace cudacnn::data
