// ColorJitter's and RandomGrayscale's arithmetic on float images, as torchvision's tensor functions compute
// it in float32 (torchvision/transforms/functional_tensor.py: _blend, rgb_to_grayscale, _rgb2hsv, _hsv2rgb).
#include <algorithm>
#include <cmath>

#include "cudacnn/data/augment.hpp"
#include "cudacnn/error.hpp"

namespace cudacnn::data {

namespace {

void check_channels(const FloatImage& image, const char* op) {
    CUDACNN_CHECK(image.channels == 1 || image.channels == 3,
                  "augment {}: the image has {} channels; accepted 1 or 3", op, image.channels);
}

// _blend: ratio · a + (1 - ratio) · b, clamped to [0, 1]; (1 - ratio) is a double rounded to float, as
// PyTorch passes a Python scalar.
float blend(float ratio, float a, float b) {
    const float rest = static_cast<float>(1.0 - static_cast<double>(ratio));
    return std::clamp(ratio * a + rest * b, 0.0f, 1.0f);
}

float gray(float r, float g, float b) {
    return 0.2989f * r + 0.587f * g + 0.114f * b;
}

// torch.remainder for floats: fmod, moved into [0, b) when the signs differ.
float remainder1(float a) {
    float m = std::fmod(a, 1.0f);
    if (m != 0.0f && m < 0.0f) m += 1.0f;
    return m;
}

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
    for (int64_t i = 0; i < plane; ++i) {
        const float r = image.values[i], g = image.values[plane + i], b = image.values[2 * plane + i];
        // _rgb2hsv
        const float maxc = std::max({r, g, b}), minc = std::min({r, g, b});
        const bool eqc = maxc == minc;
        const float cr = maxc - minc;
        const float s = cr / (eqc ? 1.0f : maxc);
        const float divisor = eqc ? 1.0f : cr;
        const float rc = (maxc - r) / divisor, gc = (maxc - g) / divisor, bc = (maxc - b) / divisor;
        const float hr = maxc == r ? bc - gc : 0.0f;
        const float hg = (maxc == g && maxc != r) ? 2.0f + rc - bc : 0.0f;
        const float hb = (maxc != g && maxc != r) ? 4.0f + gc - rc : 0.0f;
        float h = std::fmod((hr + hg + hb) / 6.0f + 1.0f, 1.0f);
        h = remainder1(h + hue_factor);
        // _hsv2rgb
        const float v = maxc;
        const float h6 = h * 6.0f, fi = std::floor(h6), f = h6 - fi;
        const int sector = static_cast<int>(fi) % 6;
        const float p = std::clamp(v * (1.0f - s), 0.0f, 1.0f);
        const float q = std::clamp(v * (1.0f - s * f), 0.0f, 1.0f);
        const float t = std::clamp(v * (1.0f - s * (1.0f - f)), 0.0f, 1.0f);
        static const int pick[6][3] = {{0, 3, 1}, {2, 0, 1}, {1, 0, 3}, {1, 2, 0}, {3, 1, 0}, {0, 1, 2}};
        const float choices[4] = {v, p, q, t};  // indices of pick: 0 v, 1 p, 2 q, 3 t
        o[i] = choices[pick[sector][0]];
        o[plane + i] = choices[pick[sector][1]];
        o[2 * plane + i] = choices[pick[sector][2]];
    }
    return out;
}

}  // namespace cudacnn::data
