// The CPU reference of the augmentation ops: geometry (crop, flips), erasing, noise, normalize, jitter's
// random order, and the whole spec on one sample.
#include <algorithm>
#include <cmath>

#include "cudacnn/data/augment.hpp"
#include "cudacnn/data/dataset.hpp"
#include "cudacnn/error.hpp"
#include "draws.hpp"

namespace cudacnn::data {

namespace {

// Source index of padded index i (0 <= i < n + 2p) along an axis of n pixels, or -1 for the fill value.
int64_t pad_source(int64_t i, int64_t n, int64_t padding, PadMode mode) {
    const int64_t s = i - padding;
    if (s >= 0 && s < n) return s;
    switch (mode) {
        case PadMode::constant:
            return -1;
        case PadMode::edge:
            return std::clamp<int64_t>(s, 0, n - 1);
        case PadMode::reflect:
            return s < 0 ? -s : 2 * (n - 1) - s;
        case PadMode::symmetric:
            return s < 0 ? -s - 1 : 2 * n - 1 - s;
    }
    return -1;
}

FloatImage crop(const AugmentOp& op, const AugmentParams& params, const FloatImage& in) {
    // torch's reflect needs padding < n, symmetric padding <= n (one mirror, no wrapping).
    const int64_t limit = std::min(in.height, in.width) - (op.padding_mode == PadMode::reflect ? 1 : 0);
    CUDACNN_CHECK(
        op.padding_mode == PadMode::constant || op.padding_mode == PadMode::edge || op.padding <= limit,
        "augment crop: padding {} is too large for {} padding of a {}x{} image (at most {})", op.padding,
        op.padding_mode == PadMode::reflect ? "reflect" : "symmetric", in.height, in.width, limit);
    FloatImage out{in.channels, op.size, op.size,
                   std::vector<float>(static_cast<size_t>(in.channels * op.size * op.size))};
    float* o = out.values.data();
    for (int64_t c = 0; c < in.channels; ++c) {
        const float fill = op.fill[std::min<int64_t>(c, 2)];
        for (int64_t y = 0; y < op.size; ++y) {
            const int64_t sy = pad_source(params.top + y, in.height, op.padding, op.padding_mode);
            for (int64_t x = 0; x < op.size; ++x) {
                const int64_t sx = pad_source(params.left + x, in.width, op.padding, op.padding_mode);
                *o++ = sy < 0 || sx < 0 ? fill : in.at(c, sy, sx);
            }
        }
    }
    return out;
}

FloatImage flip(const FloatImage& in, bool horizontal) {
    FloatImage out = in;
    for (int64_t c = 0; c < in.channels; ++c)
        for (int64_t y = 0; y < in.height; ++y)
            for (int64_t x = 0; x < in.width; ++x)
                out.values[(c * in.height + y) * in.width + x] =
                    horizontal ? in.at(c, y, in.width - 1 - x) : in.at(c, in.height - 1 - y, x);
    return out;
}

FloatImage jitter(const AugmentOp& op, const AugmentParams& params, const FloatImage& in) {
    // torchvision skips an adjustment whose range is the identity (its parameter is None then).
    const bool active[4] = {
        !(op.brightness.lo == 1 && op.brightness.hi == 1), !(op.contrast.lo == 1 && op.contrast.hi == 1),
        !(op.saturation.lo == 1 && op.saturation.hi == 1), !(op.hue.lo == 0 && op.hue.hi == 0)};
    FloatImage out = in;
    for (int k : params.order) {
        if (!active[k]) continue;
        const float f = params.factors[k];
        switch (k) {
            case 0:
                out = adjust_brightness(out, f);
                break;
            case 1:
                out = adjust_contrast(out, f);
                break;
            case 2:
                out = adjust_saturation(out, f);
                break;
            default:
                out = adjust_hue(out, f);
                break;
        }
    }
    return out;
}

FloatImage erase(const AugmentOp& op, const AugmentParams& params, const FloatImage& in) {
    FloatImage out = in;
    if (!params.apply) return out;
    for (int64_t c = 0; c < in.channels; ++c)
        for (int64_t y = params.top; y < params.top + params.height; ++y)
            for (int64_t x = params.left; x < params.left + params.width; ++x)
                out.values[(c * in.height + y) * in.width + x] = op.fill[std::min<int64_t>(c, 2)];
    return out;
}

// Value e of the per-value sequence of op `op_index` (augment.hpp's pixel(e)).
struct PixelWords {
    uint64_t seed, stream, base;
    uint32_t operator()(int64_t e) const {
        return philox_draw(seed, stream, base + static_cast<uint64_t>(e / 4)).v[e % 4];
    }
};

PixelWords pixel_words(uint64_t seed, int64_t epoch, int64_t position, int64_t op_index, int64_t values,
                       int64_t per_value) {
    CUDACNN_CHECK(op_index >= 0 && op_index < 256, "augment: op index {} of a noise op must be below 256",
                  op_index);
    CUDACNN_CHECK(values * per_value <= (int64_t{1} << 26),
                  "augment: an image of {} values is too large for the per-value draws (at most 2^26 draws)",
                  values);
    CUDACNN_CHECK(position >= 0 && position < (int64_t{1} << 32),
                  "augment: sample position {} is outside [0, 2^32)", position);
    return PixelWords{seed, detail::stream_at(kAugmentPixelStream, epoch, "augment: epoch"),
                      (static_cast<uint64_t>(position) << 32) + (static_cast<uint64_t>(op_index) << 24)};
}

FloatImage gaussian_noise(const AugmentOp& op, const FloatImage& in, const PixelWords& words) {
    FloatImage out = in;
    const float two_pi = 6.2831853071795864769f;
    for (size_t e = 0; e < out.values.size(); ++e) {
        const float a = uint32_to_unit_float(words(2 * static_cast<int64_t>(e)));
        const float b = uint32_to_unit_float(words(2 * static_cast<int64_t>(e) + 1));
        const float z = std::sqrt(-2.0f * std::log(1.0f - a)) * std::cos(two_pi * b);
        const float noise = op.mean + z * op.sigma;  // v2.functional.gaussian_noise: mean + randn · sigma
        out.values[e] = std::clamp(out.values[e] + noise, 0.0f, 1.0f);
    }
    return out;
}

FloatImage salt_pepper(const AugmentOp& op, const FloatImage& in, const PixelWords& words) {
    FloatImage out = in;
    const float salt = op.amount * op.salt_vs_pepper;
    for (size_t e = 0; e < out.values.size(); ++e) {
        const float r = uint32_to_unit_float(words(static_cast<int64_t>(e)));
        if (r < salt)
            out.values[e] = 1.0f;
        else if (r < op.amount)
            out.values[e] = 0.0f;
    }
    return out;
}

FloatImage normalize(const AugmentOp& op, const FloatImage& in) {
    CUDACNN_CHECK(in.channels <= 3, "augment normalize: the image has {} channels; at most 3 are accepted",
                  in.channels);
    FloatImage out = in;
    const int64_t plane = in.height * in.width;
    for (int64_t c = 0; c < in.channels; ++c)
        for (int64_t i = 0; i < plane; ++i) {
            float& v = out.values[c * plane + i];
            v = (v - op.norm_mean[c]) / op.norm_std[c];
        }
    return out;
}

}  // namespace

FloatImage to_float_image(const uint8_t* chw, int64_t channels, int64_t height, int64_t width) {
    FloatImage image{channels, height, width,
                     std::vector<float>(static_cast<size_t>(channels * height * width))};
    for (size_t i = 0; i < image.values.size(); ++i) image.values[i] = static_cast<float>(chw[i]) / 255.0f;
    return image;
}

FloatImage apply_augment_op(const AugmentOp& op, const AugmentParams& params, const FloatImage& image,
                            uint64_t seed, int64_t epoch, int64_t position, int64_t op_index) {
    CUDACNN_CHECK(static_cast<int64_t>(image.values.size()) == image.channels * image.height * image.width,
                  "augment: image of {}x{}x{} has {} values", image.channels, image.height, image.width,
                  image.values.size());
    const int64_t values = static_cast<int64_t>(image.values.size());
    switch (op.kind) {
        case AugmentKind::crop:
            return crop(op, params, image);
        case AugmentKind::hflip:
            return params.apply ? flip(image, true) : image;
        case AugmentKind::vflip:
            return params.apply ? flip(image, false) : image;
        case AugmentKind::jitter:
            return jitter(op, params, image);
        case AugmentKind::grayscale:
            return params.apply ? rgb_to_grayscale(image, image.channels) : image;
        case AugmentKind::erasing:
            return erase(op, params, image);
        case AugmentKind::noise:
            return gaussian_noise(op, image, pixel_words(seed, epoch, position, op_index, values, 2));
        case AugmentKind::saltpepper:
            return salt_pepper(op, image, pixel_words(seed, epoch, position, op_index, values, 1));
        case AugmentKind::normalize:
            return normalize(op, image);
        case AugmentKind::affine:
            return warp_affine(image,
                               inverse_affine_matrix(params.angle, static_cast<double>(params.translate_x),
                                                     static_cast<double>(params.translate_y), params.scale,
                                                     params.shear, 0.0),
                               op.bilinear, op.fill);
        case AugmentKind::rotation:
            // F.rotate passes -angle to the matrix (torchvision's rotate and affine turn opposite ways).
            return warp_affine(image, inverse_affine_matrix(-params.angle, 0.0, 0.0, 1.0, 0.0, 0.0),
                               op.bilinear, op.fill);
        case AugmentKind::centercrop: {
            FloatImage out{image.channels, op.size, op.size, {}};
            for (int64_t c = 0; c < image.channels; ++c)
                for (int64_t y = 0; y < op.size; ++y)
                    for (int64_t x = 0; x < op.size; ++x)
                        out.values.push_back(image.at(c, params.top + y, params.left + x));
            return out;
        }
        case AugmentKind::resizedcrop:
            return resize_bilinear(image, params.top, params.left, params.height, params.width, op.size);
    }
    return image;
}

FloatImage augment_image(const AugmentSpec& spec, const FloatImage& image, uint64_t seed, int64_t epoch,
                         int64_t position) {
    const std::vector<int64_t> offsets = augment_word_offsets(spec);
    FloatImage current = image;
    for (size_t k = 0; k < spec.size(); ++k) {
        const AugmentParams params =
            draw_augment_params(spec[k], seed, epoch, position, offsets[k], current.height, current.width);
        current = apply_augment_op(spec[k], params, current, seed, epoch, position, static_cast<int64_t>(k));
    }
    return current;
}

}  // namespace cudacnn::data
