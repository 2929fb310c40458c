// The geometric warp of RandomAffine and RandomRotation: torchvision's inverse affine matrix and F_t.affine's
// grid sampling (nearest or bilinear) with its fill mask.
#include <algorithm>
#include <cmath>

#include "cudacnn/data/augment.hpp"
#include "cudacnn/error.hpp"

namespace cudacnn::data {

std::array<double, 6> inverse_affine_matrix(double angle, double translate_x, double translate_y,
                                            double scale, double shear_x, double shear_y) {
    // torchvision.transforms.functional._get_inverse_affine_matrix with center (0, 0), line by line.
    const double deg = 3.14159265358979323846 / 180.0;
    const double rot = angle * deg, sx = shear_x * deg, sy = shear_y * deg;
    const double a = std::cos(rot - sy) / std::cos(sy);
    const double b = -std::cos(rot - sy) * std::tan(sx) / std::cos(sy) - std::sin(rot);
    const double c = std::sin(rot - sy) / std::cos(sy);
    const double d = -std::sin(rot - sy) * std::tan(sx) / std::cos(sy) + std::cos(rot);
    std::array<double, 6> m{d, -b, 0.0, -c, a, 0.0};
    for (double& v : m) v /= scale;
    m[2] += m[0] * (-translate_x) + m[1] * (-translate_y);
    m[5] += m[3] * (-translate_x) + m[4] * (-translate_y);
    return m;
}

namespace {

// grid_sample's value at pixel coordinates (ix, iy) of one plane, zeros outside (align_corners=False).
float sample(const float* plane, int64_t height, int64_t width, float ix, float iy, bool bilinear) {
    auto at = [&](int64_t y, int64_t x) {
        return y >= 0 && y < height && x >= 0 && x < width ? plane[y * width + x] : 0.0f;
    };
    if (!bilinear) {
        return at(static_cast<int64_t>(std::nearbyint(iy)), static_cast<int64_t>(std::nearbyint(ix)));
    }
    const float x0 = std::floor(ix), y0 = std::floor(iy), x1 = x0 + 1.0f, y1 = y0 + 1.0f;
    const float nw = (x1 - ix) * (y1 - iy), ne = (ix - x0) * (y1 - iy), sw = (x1 - ix) * (iy - y0),
                se = (ix - x0) * (iy - y0);
    const int64_t xa = static_cast<int64_t>(x0), ya = static_cast<int64_t>(y0);
    return at(ya, xa) * nw + at(ya, xa + 1) * ne + at(ya + 1, xa) * sw + at(ya + 1, xa + 1) * se;
}

}  // namespace

FloatImage warp_affine(const FloatImage& image, const std::array<double, 6>& matrix, bool bilinear,
                       const std::array<float, 3>& fill) {
    const int64_t h = image.height, w = image.width, plane = h * w;
    // _gen_affine_grid: theta in float32, divided by (w/2, h/2); the base grid holds pixel centres relative
    // to the image centre.
    float r[6];
    for (int k = 0; k < 3; ++k) {
        r[k] = static_cast<float>(matrix[k]) / (0.5f * static_cast<float>(w));
        r[3 + k] = static_cast<float>(matrix[3 + k]) / (0.5f * static_cast<float>(h));
    }
    const std::vector<float> ones(static_cast<size_t>(plane), 1.0f);
    FloatImage out{image.channels, h, w, std::vector<float>(image.values.size())};
    for (int64_t y = 0; y < h; ++y) {
        const float by = static_cast<float>(y) - 0.5f * static_cast<float>(h) + 0.5f;
        for (int64_t x = 0; x < w; ++x) {
            const float bx = static_cast<float>(x) - 0.5f * static_cast<float>(w) + 0.5f;
            const float gx = bx * r[0] + by * r[1] + r[2], gy = bx * r[3] + by * r[4] + r[5];
            // grid_sampler_unnormalize with align_corners=False
            const float ix = ((gx + 1.0f) * static_cast<float>(w) - 1.0f) / 2.0f;
            const float iy = ((gy + 1.0f) * static_cast<float>(h) - 1.0f) / 2.0f;
            const float mask = sample(ones.data(), h, w, ix, iy, bilinear);
            for (int64_t c = 0; c < image.channels; ++c) {
                const float v = sample(image.values.data() + c * plane, h, w, ix, iy, bilinear);
                const float f = fill[std::min<int64_t>(c, 2)];
                out.values[c * plane + y * w + x] =
                    bilinear ? v * mask + (1.0f - mask) * f : (mask < 0.5f ? f : v);
            }
        }
    }
    return out;
}

}  // namespace cudacnn::data

namespace cudacnn::data {

FloatImage resize_bilinear(const FloatImage& image, int64_t top, int64_t left, int64_t height, int64_t width,
                           int64_t size) {
    CUDACNN_CHECK(top >= 0 && left >= 0 && height >= 1 && width >= 1 && top + height <= image.height &&
                      left + width <= image.width && size >= 1,
                  "augment resizedcrop: window {}x{} at ({}, {}) does not fit the {}x{} image (size {})",
                  height, width, top, left, image.height, image.width, size);
    // upsample_bilinear2d (align_corners=False): source = max(scale · (dst + 0.5) - 0.5, 0), scale = in / out
    // in float; the second neighbour is clamped to the last pixel.
    struct Tap {
        int64_t i0, i1;
        float l0, l1;
    };
    auto taps = [&](int64_t in) {
        const float scale = static_cast<float>(in) / static_cast<float>(size);
        std::vector<Tap> t;
        for (int64_t d = 0; d < size; ++d) {
            const float src = std::max(scale * (static_cast<float>(d) + 0.5f) - 0.5f, 0.0f);
            const int64_t i0 = static_cast<int64_t>(src);
            const float l1 = src - static_cast<float>(i0);
            t.push_back(Tap{i0, i0 + (i0 < in - 1 ? 1 : 0), 1.0f - l1, l1});
        }
        return t;
    };
    const std::vector<Tap> ty = taps(height), tx = taps(width);
    FloatImage out{image.channels, size, size, {}};
    for (int64_t c = 0; c < image.channels; ++c)
        for (const Tap& y : ty)
            for (const Tap& x : tx) {
                auto at = [&](int64_t yy, int64_t xx) { return image.at(c, top + yy, left + xx); };
                out.values.push_back(y.l0 * (x.l0 * at(y.i0, x.i0) + x.l1 * at(y.i0, x.i1)) +
                                     y.l1 * (x.l0 * at(y.i1, x.i0) + x.l1 * at(y.i1, x.i1)));
            }
    return out;
}

}  // namespace cudacnn::data
