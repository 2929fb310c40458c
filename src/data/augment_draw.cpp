// The Philox rule of the augmentation ops' random parameters (augment.hpp documents it).
#include <cmath>

#include "cudacnn/data/augment.hpp"
#include "cudacnn/data/dataset.hpp"
#include "cudacnn/error.hpp"
#include "draws.hpp"

namespace cudacnn::data {

namespace {

// The words of one sample, in the order of augment.hpp's rule.
struct SampleWords {
    uint64_t seed, stream, position;

    uint32_t operator()(int64_t j) const {
        const uint64_t block = position + (static_cast<uint64_t>(j / 4) << 32);
        return philox_draw(seed, stream, block).v[j % 4];
    }
};

float lerp(const Range& r, uint32_t word) {
    return r.lo + (r.hi - r.lo) * uint32_to_unit_float(word);
}

// Permutation number n (< 24) of (0 1 2 3) in lexicographic order (the Lehmer code read digit by digit).
std::array<int, 4> permutation(uint32_t n) {
    std::array<int, 4> rest{0, 1, 2, 3}, out{};
    int left = 4;
    for (int i = 0, radix = 6; i < 4; ++i) {
        const int pick = static_cast<int>(n) / radix;
        n %= radix;
        out[i] = rest[pick];
        for (int k = pick; k + 1 < left; ++k) rest[k] = rest[k + 1];
        --left;
        radix = left > 1 ? radix / left : 1;
    }
    return out;
}

// torchvision's RandomErasing.get_params with our words: 10 attempts, each from 4 words.
void draw_erasing(const AugmentOp& op, const SampleWords& words, int64_t offset, int64_t height,
                  int64_t width, AugmentParams& params) {
    const double area = static_cast<double>(height * width);
    const float log_lo = std::log(op.ratio.lo), log_hi = std::log(op.ratio.hi);
    for (int64_t a = 0; a < 10; ++a) {
        const int64_t w = offset + 1 + 4 * a;
        const double erase_area = area * static_cast<double>(lerp(op.scale, words(w)));
        const double aspect =
            std::exp(log_lo + (log_hi - log_lo) * uint32_to_unit_float(words(w + 1)));  // float exp
        // Python's round: half to even, which nearbyint gives in the default rounding mode.
        const int64_t h = static_cast<int64_t>(std::nearbyint(std::sqrt(erase_area * aspect)));
        const int64_t v = static_cast<int64_t>(std::nearbyint(std::sqrt(erase_area / aspect)));
        if (!(h < height && v < width)) continue;
        params.height = h;
        params.width = v;
        params.top = detail::below(words(w + 2), static_cast<uint64_t>(height - h + 1));
        params.left = detail::below(words(w + 3), static_cast<uint64_t>(width - v + 1));
        return;
    }
    params.apply = false;  // every attempt too large: torchvision returns the image unchanged
}

// torchvision's RandomResizedCrop.get_params with our words: 10 attempts of 4 words, then the central
// fallback.
void draw_resized_crop(const AugmentOp& op, const SampleWords& words, int64_t offset, int64_t height,
                       int64_t width, AugmentParams& params) {
    const double area = static_cast<double>(height * width);
    const float log_lo = std::log(op.ratio.lo), log_hi = std::log(op.ratio.hi);
    for (int64_t a = 0; a < 10; ++a) {
        const int64_t k = offset + 4 * a;
        const double target = area * static_cast<double>(lerp(op.scale, words(k)));
        const double aspect = std::exp(log_lo + (log_hi - log_lo) * uint32_to_unit_float(words(k + 1)));
        const int64_t w = static_cast<int64_t>(std::nearbyint(std::sqrt(target * aspect)));
        const int64_t h = static_cast<int64_t>(std::nearbyint(std::sqrt(target / aspect)));
        if (!(w > 0 && w <= width && h > 0 && h <= height)) continue;
        params.height = h;
        params.width = w;
        params.top = detail::below(words(k + 2), static_cast<uint64_t>(height - h + 1));
        params.left = detail::below(words(k + 3), static_cast<uint64_t>(width - w + 1));
        return;
    }
    const double in_ratio = static_cast<double>(width) / static_cast<double>(height);
    params.width = width;
    params.height = height;
    if (in_ratio < op.ratio.lo) {
        params.height = static_cast<int64_t>(std::nearbyint(width / static_cast<double>(op.ratio.lo)));
    } else if (in_ratio > op.ratio.hi) {
        params.width = static_cast<int64_t>(std::nearbyint(height * static_cast<double>(op.ratio.hi)));
    }
    params.top = (height - params.height) / 2;
    params.left = (width - params.width) / 2;
}

}  // namespace

int64_t augment_word_count(AugmentKind kind) {
    switch (kind) {
        case AugmentKind::crop:
            return 2;
        case AugmentKind::hflip:
        case AugmentKind::vflip:
        case AugmentKind::grayscale:
        case AugmentKind::rotation:
            return 1;
        case AugmentKind::jitter:
        case AugmentKind::affine:
            return 5;
        case AugmentKind::erasing:
            return 41;
        case AugmentKind::noise:
        case AugmentKind::saltpepper:
        case AugmentKind::normalize:
        case AugmentKind::centercrop:
            return 0;
        case AugmentKind::resizedcrop:
            return 40;
    }
    return 0;
}

std::vector<int64_t> augment_word_offsets(const AugmentSpec& spec) {
    std::vector<int64_t> offsets;
    int64_t offset = 0;
    for (const AugmentOp& op : spec) {
        offsets.push_back(offset);
        offset += augment_word_count(op.kind);
    }
    return offsets;
}

AugmentParams draw_augment_params(const AugmentOp& op, uint64_t seed, int64_t epoch, int64_t position,
                                  int64_t word_offset, int64_t height, int64_t width) {
    CUDACNN_CHECK(position >= 0 && position < (int64_t{1} << 32),
                  "augment: sample position {} is outside [0, 2^32)", position);
    const SampleWords words{seed, detail::stream_at(kAugmentStream, epoch, "augment: epoch"),
                            static_cast<uint64_t>(position)};
    AugmentParams params;
    const int64_t w0 = word_offset;
    switch (op.kind) {
        case AugmentKind::crop: {
            const int64_t rows = height + 2 * op.padding - op.size + 1,
                          cols = width + 2 * op.padding - op.size + 1;
            CUDACNN_CHECK(rows >= 1 && cols >= 1,
                          "augment crop: size {} is larger than the padded image {}x{} (padding {})", op.size,
                          height + 2 * op.padding, width + 2 * op.padding, op.padding);
            params.top = detail::below(words(w0), static_cast<uint64_t>(rows));
            params.left = detail::below(words(w0 + 1), static_cast<uint64_t>(cols));
            break;
        }
        case AugmentKind::hflip:
        case AugmentKind::vflip:
        case AugmentKind::grayscale:
            params.apply = uint32_to_unit_float(words(w0)) < op.p;
            break;
        case AugmentKind::jitter:
            params.factors = {lerp(op.brightness, words(w0)), lerp(op.contrast, words(w0 + 1)),
                              lerp(op.saturation, words(w0 + 2)), lerp(op.hue, words(w0 + 3))};
            params.order = permutation(detail::below(words(w0 + 4), 24));
            break;
        case AugmentKind::erasing:
            params.apply = uint32_to_unit_float(words(w0)) < op.p;
            if (params.apply) draw_erasing(op, words, w0, height, width, params);
            break;
        case AugmentKind::affine: {
            params.angle = lerp(op.degrees, words(w0));
            // RandomAffine.get_params: a uniform shift of up to translate · size pixels, rounded half to
            // even.
            const float dx = static_cast<float>(op.translate[0] * static_cast<double>(width)),
                        dy = static_cast<float>(op.translate[1] * static_cast<double>(height));
            params.translate_x = static_cast<int64_t>(std::nearbyint(lerp(Range{-dx, dx}, words(w0 + 1))));
            params.translate_y = static_cast<int64_t>(std::nearbyint(lerp(Range{-dy, dy}, words(w0 + 2))));
            params.scale = lerp(op.affine_scale, words(w0 + 3));
            params.shear = lerp(op.shear, words(w0 + 4));
            break;
        }
        case AugmentKind::rotation:
            params.angle = lerp(op.degrees, words(w0));
            break;
        case AugmentKind::centercrop:
            CUDACNN_CHECK(
                op.size <= height && op.size <= width,
                "augment centercrop: size {} is larger than the {}x{} image (padding is not supported)",
                op.size, height, width);
            // CenterCrop: int(round((H - size) / 2.0)), Python's round (half to even).
            params.top = static_cast<int64_t>(std::nearbyint((height - op.size) / 2.0));
            params.left = static_cast<int64_t>(std::nearbyint((width - op.size) / 2.0));
            break;
        case AugmentKind::resizedcrop:
            draw_resized_crop(op, words, w0, height, width, params);
            break;
        case AugmentKind::noise:
        case AugmentKind::saltpepper:
        case AugmentKind::normalize:
            break;
    }
    return params;
}

}  // namespace cudacnn::data
