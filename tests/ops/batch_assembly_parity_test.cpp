// The device batch pipeline against the host one: gpu::assemble_batch equals data::assemble_batch bit for bit
// (the same Philox windows and flips, the same float32 normalization) with and without augmentation, for
// padding 0 to 7, partial batches, later epochs and positions, 1 and 3 channels and non-square images.
#include <catch2/catch.hpp>

#include <cstdint>
#include <vector>

#include "cuda/batch_assembly.hpp"
#include "cudacnn/data/dataset.hpp"
#include "support/parity.hpp"

using namespace cudacnn;
using Catch::Matchers::Contains;

namespace {

// A dataset of `size` records with every byte value appearing (so normalization is checked on all 256).
data::Dataset pattern_dataset(int64_t size, int64_t channels, int64_t height, int64_t width) {
    data::Dataset d;
    d.name = "pattern";
    d.channels = channels;
    d.height = height;
    d.width = width;
    d.num_classes = 7;
    for (int64_t k = 0; k < 7; ++k) d.class_names.push_back("class " + std::to_string(k));
    d.images.resize(static_cast<std::size_t>(size * channels * height * width));
    for (std::size_t i = 0; i < d.images.size(); ++i) d.images[i] = static_cast<uint8_t>((i * 37 + i / 251) % 256);
    for (int64_t i = 0; i < size; ++i) d.labels.push_back((i * 3) % 7);
    return d;
}

struct Case {
    int64_t channels, height, width;
    const data::Augmentation* augmentation;
    int64_t epoch, first, count;
};

void check_case(const data::Dataset& dataset, const std::vector<int64_t>& order, const Case& c) {
    const int64_t padding = c.augmentation != nullptr ? c.augmentation->crop_padding : -1;  // -1: no augmentation
    const bool flip = c.augmentation != nullptr && c.augmentation->horizontal_flip;
    CAPTURE(c.channels, c.height, c.width, padding, flip, c.epoch, c.first, c.count);
    const data::Normalization normalization{{0.4914f, 0.4822f, 0.4465f}, {0.2023f, 0.1994f, 0.2010f}};
    constexpr uint64_t kSeed = 0x5eed0000beefull;
    const int64_t values = c.count * dataset.image_bytes();
    std::vector<float> x(static_cast<std::size_t>(values));
    std::vector<int64_t> labels(static_cast<std::size_t>(c.count));
    data::assemble_batch(dataset, order.data() + c.first, c.count, c.augmentation, normalization, kSeed, c.epoch,
                         c.first, x.data(), labels.data());

    const DeviceBuffer images_d = upload(dataset.images), labels_d = upload(dataset.labels), order_d = upload(order);
    DeviceBuffer x_d = test::poisoned<float>(values);
    DeviceBuffer batch_labels_d = test::poisoned<int64_t>(c.count);
    const gpu::DeviceImages device_images{images_d.data_as<const uint8_t>(), labels_d.data_as<const int64_t>(),
                                          dataset.size(), dataset.channels, dataset.height, dataset.width};
    gpu::assemble_batch(device_images, order_d.data_as<const int64_t>() + c.first, c.count, c.augmentation,
                        normalization, kSeed, c.epoch, c.first, x_d.data_as<float>(),
                        batch_labels_d.data_as<int64_t>(), nullptr);
    const HostTensor<float> expected(Shape{values}, x);
    CHECK(test::bitwise_equal(test::to_host<float>(x_d, Shape{values}), expected));
    CHECK(download<int64_t>(batch_labels_d) == labels);
}

}  // namespace

TEST_CASE("gpu::assemble_batch equals the host pipeline bit for bit", "[batch_assembly]") {
    const data::Augmentation seed_recipe;  // crop padding 4, flip
    data::Augmentation no_flip;
    no_flip.horizontal_flip = false;
    data::Augmentation no_padding;
    no_padding.crop_padding = 0;
    data::Augmentation wide;
    wide.crop_padding = 7;
    for (const auto& [channels, height, width] : {std::tuple<int64_t, int64_t, int64_t>{3, 32, 32}, {1, 5, 9}, {3, 7, 4}}) {
        const data::Dataset dataset = pattern_dataset(23, channels, height, width);
        const std::vector<int64_t> order = data::epoch_order(dataset.size(), true, 99, 3);
        const std::vector<const data::Augmentation*> augmentations{nullptr, &seed_recipe, &no_flip, &no_padding, &wide};
        for (const data::Augmentation* augmentation : augmentations) {
            check_case(dataset, order, {channels, height, width, augmentation, 0, 0, 8});
            check_case(dataset, order, {channels, height, width, augmentation, 5, 16, 7});  // a partial last batch
        }
    }
}

TEST_CASE("gpu::assemble_batch rejects what it cannot do, naming it", "[batch_assembly]") {
    DeviceBuffer x_d = test::poisoned<float>(3 * 32 * 32);
    DeviceBuffer labels_d = test::poisoned<int64_t>(1);
    const gpu::DeviceImages nothing{};
    const data::Normalization normalization{{0.5f, 0.5f, 0.5f}, {0.0f, 1.0f, 1.0f}};
    CHECK_THROWS_WITH(gpu::assemble_batch(nothing, nullptr, 1, nullptr, normalization, 0, 0, 0, x_d.data_as<float>(),
                                          labels_d.data_as<int64_t>(), nullptr),
                      Contains("must be device pointers"));
    CHECK_THROWS_WITH(gpu::assemble_batch(nothing, nullptr, -1, nullptr, normalization, 0, 0, 0, nullptr, nullptr,
                                          nullptr),
                      Contains("count -1"));
}
