// The Philox rule of the augmentation ops' random parameters (augment.hpp documents it; augment_rules.hpp
// holds the draws, shared with the GPU kernels): the word counts and the host entry with its checks.
#include "cudacnn/data/augment.hpp"
#include "cudacnn/data/dataset.hpp"
#include "cudacnn/error.hpp"
#include "src/data/augment_rules.hpp"
#include "src/data/draws.hpp"

namespace cudacnn::data {

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
        case AugmentKind::perspective:
            return 9;
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
    if (op.kind == AugmentKind::crop) {
        CUDACNN_CHECK(height + 2 * op.padding >= op.size && width + 2 * op.padding >= op.size,
                      "augment crop: size {} is larger than the padded image {}x{} (padding {})", op.size,
                      height + 2 * op.padding, width + 2 * op.padding, op.padding);
    }
    if (op.kind == AugmentKind::centercrop) {
        CUDACNN_CHECK(op.size <= height && op.size <= width,
                      "augment centercrop: size {} is larger than the {}x{} image (padding is not supported)",
                      op.size, height, width);
    }
    const rules::SampleWords words{seed, detail::stream_at(kAugmentStream, epoch, "augment: epoch"),
                                   static_cast<uint64_t>(position)};
    return rules::draw_op(op, words, word_offset, height, width);
}

}  // namespace cudacnn::data
