// The CPU reference of the augmentation ops: geometry (crop, flips), erasing, noise, normalize, jitter's
// random order, and the whole spec on one sample (the per-pixel rules live in augment_rules.hpp).
#include <algorithm>
#include <cmath>

#include "cudacnn/data/augment.hpp"
#include "cudacnn/data/dataset.hpp"
#include "cudacnn/error.hpp"
#include "src/data/augment_rules.hpp"
#include "src/data/draws.hpp"

namespace cudacnn::data {

namespace {

FloatImage crop(const AugmentOp& op, const AugmentParams& params, const FloatImage& in) {
    FloatImage out{in.channels, op.size, op.size,
                   std::vector<float>(static_cast<size_t>(in.channels * op.size * op.size))};
    float* o = out.values.data();
    for (int64_t c = 0; c < in.channels; ++c) {
        const float fill = rules::channel_fill(op.fill, c);
        for (int64_t y = 0; y < op.size; ++y) {
            const int64_t sy = rules::pad_source(params.top + y, in.height, op.padding, op.padding_mode);
            for (int64_t x = 0; x < op.size; ++x) {
                const int64_t sx = rules::pad_source(params.left + x, in.width, op.padding, op.padding_mode);
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
    FloatImage out = in;
    for (int k : params.order) {
        if (!rules::jitter_active(op, k)) continue;
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

// The per-value draws of op `op_index` (augment.hpp's pixel(e)), after checking that they fit the rule.
rules::PixelWords pixel_words(uint64_t seed, int64_t epoch, int64_t position, int64_t op_index) {
    CUDACNN_CHECK(op_index >= 0 && op_index < 256, "augment: op index {} of a noise op must be below 256",
                  op_index);
    CUDACNN_CHECK(position >= 0 && position < (int64_t{1} << 32),
                  "augment: sample position {} is outside [0, 2^32)", position);
    return rules::PixelWords(seed, detail::stream_at(kAugmentPixelStream, epoch, "augment: epoch"),
                             static_cast<uint64_t>(position), op_index);
}

FloatImage erase(const AugmentOp& op, const AugmentParams& params, const FloatImage& in,
                 const rules::PixelWords& words) {
    FloatImage out = in;
    if (!params.apply) return out;
    for (int64_t c = 0; c < in.channels; ++c)
        for (int64_t y = params.top; y < params.top + params.height; ++y)
            for (int64_t x = params.left; x < params.left + params.width; ++x) {
                const int64_t e = (c * in.height + y) * in.width + x;
                out.values[e] = op.random_value ? rules::standard_normal(words, e) : rules::channel_fill(op.fill, c);
            }
    return out;
}

FloatImage gaussian_noise(const AugmentOp& op, const FloatImage& in, const rules::PixelWords& words) {
    FloatImage out = in;
    for (size_t e = 0; e < out.values.size(); ++e) {
        // v2.functional.gaussian_noise: mean + randn · sigma, clipped.
        const float noise = op.mean + rules::standard_normal(words, static_cast<int64_t>(e)) * op.sigma;
        out.values[e] = rules::clamp01(out.values[e] + noise);
    }
    return out;
}

FloatImage salt_pepper(const AugmentOp& op, const FloatImage& in, const rules::PixelWords& words) {
    FloatImage out = in;
    for (size_t e = 0; e < out.values.size(); ++e) out.values[e] = rules::salt_pepper(op, words, e, out.values[e]);
    return out;
}

FloatImage normalize(const AugmentOp& op, const FloatImage& in) {
    FloatImage out = in;
    const int64_t plane = in.height * in.width;
    for (int64_t c = 0; c < in.channels; ++c)
        for (int64_t i = 0; i < plane; ++i) {
            float& v = out.values[c * plane + i];
            v = rules::normalize(v, op, c);
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
    augment_shapes({op}, ImageShape{image.channels, image.height, image.width});  // checks the op's arguments
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
            return erase(op, params, image, pixel_words(seed, epoch, position, op_index));
        case AugmentKind::noise:
            return gaussian_noise(op, image, pixel_words(seed, epoch, position, op_index));
        case AugmentKind::saltpepper:
            return salt_pepper(op, image, pixel_words(seed, epoch, position, op_index));
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
        case AugmentKind::perspective:
            return params.apply ? warp_perspective(image, params.corners, op.bilinear, op.fill) : image;
    }
    return image;
}

FloatImage augment_image(const AugmentSpec& spec, const FloatImage& image, uint64_t seed, int64_t epoch,
                         int64_t position) {
    augment_shapes(spec, ImageShape{image.channels, image.height, image.width});  // every op's arguments
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
