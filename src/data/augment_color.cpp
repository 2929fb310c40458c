// ColorJitter's and RandomGrayscale's arithmetic on float images, as torchvision's tensor functions compute
// it in float32 (torchvision/transforms/functional_tensor.py: _blend, rgb_to_grayscale, _rgb2hsv, _hsv2rgb;
// the per-pixel rules are in augment_rules.hpp).
#include <algorithm>
#include <cmath>

#include "cudacnn/data/augment.hpp"
#include "cudacnn/error.hpp"
#include "src/data/augment_rules.hpp"

namespace cudacnn::data {

namespace {

void check_channels(const FloatImage& image, const char* op) {
    CUDACNN_CHECK(image.channels == 1 || image.channels == 3,
                  "augment {}: the image has {} channels; accepted 1 or 3", op, image.channels);
}

using rules::blend;
using rules::gray;

}  // namespace

FloatImage rgb_to_grayscale(const FloatImage& image, int64_t output_channels) {
    check_channels(image, "grayscale");
    const int64_t plane = image.height * image.width;
    FloatImage out{output_channels, image.height, image.width,
                   std::vector<float>(static_cast<size_t>(output_channels * plane))};
    for (int64_t i = 0; i < plane; ++i) {
        const float* v = image.values.data();
        const float l = image.channels == 1 ? v[i] : gray(v[i], v[plane + i], v[2 * plane + i]);
        for (int64_t c = 0; c < output_channels; ++c) out.values[c * plane + i] = l;
    }
    return out;
}

FloatImage adjust_brightness(const FloatImage& image, float factor) {
    FloatImage out = image;
    for (float& v : out.values) v = blend(factor, v, 0.0f);
    return out;
}

FloatImage adjust_contrast(const FloatImage& image, float factor) {
    check_channels(image, "jitter contrast");
    const FloatImage g = rgb_to_grayscale(image, 1);
    double sum = 0.0;  // torch.mean's float32 sum is blocked; a double sum is within an ulp of it
    for (float v : g.values) sum += v;
    const float mean = static_cast<float>(sum / static_cast<double>(g.values.size()));
    FloatImage out = image;
    for (float& v : out.values) v = blend(factor, v, mean);
    return out;
}

FloatImage adjust_saturation(const FloatImage& image, float factor) {
    check_channels(image, "jitter saturation");
    if (image.channels == 1) return image;  // torchvision leaves grey images alone
    const FloatImage g = rgb_to_grayscale(image, 1);
    const int64_t plane = image.height * image.width;
    FloatImage out = image;
    for (int64_t c = 0; c < 3; ++c)
        for (int64_t i = 0; i < plane; ++i)
            out.values[c * plane + i] = blend(factor, image.values[c * plane + i], g.values[i]);
    return out;
}

FloatImage adjust_hue(const FloatImage& image, float hue_factor) {
    check_channels(image, "jitter hue");
    CUDACNN_CHECK(hue_factor >= -0.5f && hue_factor <= 0.5f,
                  "augment jitter: hue factor {} is outside [-0.5, 0.5]", hue_factor);
    if (image.channels == 1) return image;
    const int64_t plane = image.height * image.width;
    FloatImage out = image;
    float* o = out.values.data();
    for (int64_t i = 0; i < plane; ++i) rules::shift_hue(o[i], o[plane + i], o[2 * plane + i], hue_factor);
    return out;
}

}  // namespace cudacnn::data
