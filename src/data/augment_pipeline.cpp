// Whole augmentation pipelines: the shapes and checks of a spec on an input, the run's training transform
// (the spec + Normalize), the form the fused crop+flip batch paths compute, and the CPU reference batch.
#include <algorithm>
#include <cstring>

#include <fmt/format.h>

#include "cudacnn/data/augment.hpp"
#include "cudacnn/error.hpp"
#include "src/data/augment_rules.hpp"

namespace cudacnn::data {

namespace {

// What is wrong with op `op` on an input of `in`, or "" when nothing is.
std::string op_problem(const AugmentOp& op, int64_t index, const ImageShape& in) {
    const int64_t smaller = std::min(in.height, in.width);
    if (rules::uses_pixel_draws(op)) {
        if (index >= 256) return "ops drawing per-value noise must be among the first 256 ops";
        if (in.channels * in.height * in.width * 2 > (int64_t{1} << 26))
            return "the image is too large for the per-value draws (at most 2^25 values)";
    }
    switch (op.kind) {
        case AugmentKind::crop:
            if (in.height + 2 * op.padding < op.size || in.width + 2 * op.padding < op.size)
                return fmt::format("size {} is larger than the padded image {}x{}; use a size of at most {}", op.size,
                                   in.height + 2 * op.padding, in.width + 2 * op.padding, smaller + 2 * op.padding);
            if (op.padding_mode == PadMode::reflect && op.padding >= smaller)
                return fmt::format("reflect padding must be below the image size {}", smaller);
            if (op.padding_mode == PadMode::symmetric && op.padding > smaller)
                return fmt::format("symmetric padding must be at most the image size {}", smaller);
            return "";
        case AugmentKind::centercrop:
            if (op.size > smaller)
                return fmt::format("size {} is larger than the image; use at most {} (padding is not supported)",
                                   op.size, smaller);
            return "";
        case AugmentKind::jitter:
        case AugmentKind::grayscale:
            if (in.channels != 1 && in.channels != 3) return "it takes images of 1 or 3 channels";
            return "";
        case AugmentKind::normalize:
            if (in.channels > 3) return "it takes images of at most 3 channels";
            return "";
        default:
            return "";
    }
}

ImageShape output_shape(const AugmentOp& op, const ImageShape& in) {
    switch (op.kind) {
        case AugmentKind::crop:
        case AugmentKind::centercrop:
        case AugmentKind::resizedcrop:
            return ImageShape{in.channels, op.size, op.size};
        default:
            return in;
    }
}

}  // namespace

std::vector<ImageShape> augment_shapes(const AugmentSpec& spec, const ImageShape& input) {
    CUDACNN_CHECK(input.channels >= 1 && input.height >= 1 && input.width >= 1,
                  "augment: images of {}x{}x{} values", input.channels, input.height, input.width);
    std::vector<ImageShape> shapes{input};
    for (size_t k = 0; k < spec.size(); ++k) {
        const ImageShape& in = shapes.back();
        const std::string problem = op_problem(spec[k], static_cast<int64_t>(k), in);
        CUDACNN_CHECK(problem.empty(), "augment op {} \"{}\" on {}x{}x{} images: {}", k,
                      format_augment_spec({spec[k]}), in.channels, in.height, in.width, problem);
        shapes.push_back(output_shape(spec[k], in));
    }
    return shapes;
}

AugmentSpec with_normalization(AugmentSpec spec, const std::array<float, 3>& mean, const std::array<float, 3>& std) {
    for (const AugmentOp& op : spec)
        if (op.kind == AugmentKind::normalize) return spec;
    AugmentOp normalize = default_augment_op(AugmentKind::normalize);
    normalize.norm_mean = mean;
    normalize.norm_std = std;
    spec.push_back(normalize);
    return spec;
}

bool fused_crop_flip(const AugmentSpec& spec, const ImageShape& input, FusedCropFlip* fused) {
    FusedCropFlip f;
    size_t k = 0;
    if (k < spec.size() && spec[k].kind == AugmentKind::crop) {
        const AugmentOp& crop = spec[k];
        const bool zero_fill = crop.fill == std::array<float, 3>{0, 0, 0};
        if (crop.size != input.height || crop.size != input.width || crop.padding_mode != PadMode::constant ||
            !zero_fill)
            return false;
        f.crop_padding = crop.padding;
        ++k;
    }
    if (k < spec.size() && spec[k].kind == AugmentKind::hflip) {
        // The fused pass takes the flip from word 2, which is the rule's only after a crop's two words.
        if (spec[k].p != 0.5f || k == 0) return false;
        f.horizontal_flip = true;
        ++k;
    }
    if (k + 1 != spec.size() || spec[k].kind != AugmentKind::normalize || input.channels > 3) return false;
    f.mean = spec[k].norm_mean;
    f.stddev = spec[k].norm_std;
    if (fused != nullptr) *fused = f;
    return true;
}

void augment_batch(const uint8_t* images, const int64_t* dataset_labels, const ImageShape& input,
                   const int64_t* indices, int64_t count, const AugmentSpec& spec, uint64_t seed, int64_t epoch,
                   int64_t first_position, float* x, int64_t* labels) {
    const ImageShape out = augment_shapes(spec, input).back();
    const int64_t in_values = input.channels * input.height * input.width;
    const int64_t out_values = out.channels * out.height * out.width;
    for (int64_t i = 0; i < count; ++i) {
        const FloatImage image = to_float_image(images + indices[i] * in_values, input.channels, input.height,
                                                input.width);
        const FloatImage result = augment_image(spec, image, seed, epoch, first_position + i);
        std::memcpy(x + i * out_values, result.values.data(), sizeof(float) * out_values);
        labels[i] = dataset_labels[indices[i]];
    }
}

}  // namespace cudacnn::data
