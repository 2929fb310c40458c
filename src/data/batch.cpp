// The batch pipeline: epoch orders (shuffling), torchvision's RandomCrop + RandomHorizontalFlip, and
// ToTensor + Normalize in float32.
#include <array>
#include <numeric>
#include <utility>

#include "cudacnn/data/dataset.hpp"
#include "cudacnn/error.hpp"
#include "cudacnn/philox.hpp"
#include "draws.hpp"

namespace cudacnn::data {

namespace {

using detail::CropWindow;

// ToTensor + Normalize of every uint8 value of channel c: the same float32 operations, done once.
using NormalizeTable = std::array<std::array<float, 256>, 3>;

NormalizeTable normalize_table(const Normalization& normalization, int64_t channels) {
    NormalizeTable table{};
    for (int64_t c = 0; c < channels; ++c) {
        CUDACNN_CHECK(normalization.stddev[c] > 0.0f,
                      "assemble_batch: normalization std {} of channel {} must be > 0",
                      normalization.stddev[c], c);
        for (int u = 0; u < 256; ++u) {
            table[c][u] = detail::normalize_byte(static_cast<uint8_t>(u), normalization.mean[c], normalization.stddev[c]);
        }
    }
    return table;
}

// One record through the window into x: (C, H, W).
void fill_image(const uint8_t* src, int64_t channels, int64_t height, int64_t width, const CropWindow& w,
                const NormalizeTable& table, float* x) {
    for (int64_t c = 0; c < channels; ++c) {
        const uint8_t* plane = src + c * height * width;
        for (int64_t y = 0; y < height; ++y) {
            const int64_t sy = y + w.dy;
            for (int64_t col = 0; col < width; ++col) {
                const int64_t sx = (w.flip ? width - 1 - col : col) + w.dx;
                const bool inside = sy >= 0 && sy < height && sx >= 0 && sx < width;
                *x++ = table[c][inside ? plane[sy * width + sx] : 0];
            }
        }
    }
}

}  // namespace

Normalization cifar10_normalization() {
    return Normalization{{0.4914f, 0.4822f, 0.4465f}, {0.2023f, 0.1994f, 0.2010f}};
}

std::vector<int64_t> epoch_order(int64_t size, bool shuffle, uint64_t seed, int64_t epoch) {
    CUDACNN_CHECK(size >= 0 && size <= (int64_t{1} << 32),
                  "epoch_order: dataset size {} is outside [0, 2^32]", size);
    std::vector<int64_t> order(static_cast<size_t>(size));
    std::iota(order.begin(), order.end(), int64_t{0});
    if (!shuffle) return order;
    const uint64_t stream = detail::stream_at(kShuffleStream, epoch, "epoch_order: epoch");
    for (int64_t i = size - 1; i >= 1; --i) {
        const uint32_t u = detail::draw_u32(seed, stream, static_cast<uint64_t>(size - 1 - i));
        std::swap(order[i], order[detail::below(u, static_cast<uint64_t>(i + 1))]);
    }
    return order;
}

void assemble_batch(const Dataset& dataset, const int64_t* indices, int64_t count,
                    const Augmentation* augmentation, const Normalization& normalization, uint64_t seed,
                    int64_t epoch, int64_t first_position, float* x, int64_t* labels) {
    CUDACNN_CHECK(count >= 0, "assemble_batch: count {} must be >= 0", count);
    if (count == 0) return;
    CUDACNN_CHECK(indices != nullptr && x != nullptr && labels != nullptr,
                  "assemble_batch: indices, x and labels must not be null for {} records", count);
    CUDACNN_CHECK(dataset.channels >= 1 && dataset.channels <= 3,
                  "assemble_batch: {} has {} channels; the normalization covers 1 to 3", dataset.name,
                  dataset.channels);
    CUDACNN_CHECK(static_cast<int64_t>(dataset.images.size()) == dataset.size() * dataset.image_bytes(),
                  "assemble_batch: {} has {} image bytes for {} records of {} bytes", dataset.name,
                  dataset.images.size(), dataset.size(), dataset.image_bytes());
    uint64_t stream = 0;
    if (augmentation != nullptr) {
        CUDACNN_CHECK(augmentation->crop_padding >= 0, "assemble_batch: crop padding {} must be >= 0",
                      augmentation->crop_padding);
        CUDACNN_CHECK(first_position >= 0, "assemble_batch: first position {} must be >= 0", first_position);
        stream = detail::stream_at(kAugmentStream, epoch, "assemble_batch: epoch");
    }
    const NormalizeTable table = normalize_table(normalization, dataset.channels);
    const int64_t image_bytes = dataset.image_bytes();
    for (int64_t i = 0; i < count; ++i) {
        const int64_t index = indices[i];
        CUDACNN_CHECK(index >= 0 && index < dataset.size(),
                      "assemble_batch: batch entry {} asks for record {} of {}, which has {} records", i,
                      index, dataset.name, dataset.size());
        labels[i] = dataset.labels[index];
        const CropWindow window = augmentation != nullptr
                                      ? detail::draw_crop_window(seed, stream, first_position + i,
                                                                 augmentation->crop_padding,
                                                                 augmentation->horizontal_flip)
                                      : CropWindow{};
        fill_image(dataset.images.data() + index * image_bytes, dataset.channels, dataset.height,
                   dataset.width, window, table, x + i * image_bytes);
    }
}

}  // namespace cudacnn::data
