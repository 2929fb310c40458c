// The device augmentation pipeline against the CPU reference: gpu::augment_batch equals data::augment_batch
// for every op and option (the same Philox parameters, the same per-pixel rules), on odd, non-square images
// of 1 and 3 channels, at later epochs and positions, alone and chained; the fused crop+flip kernel equals
// the general pipeline on the default spec; bad specs are refused naming the op.
#include <catch2/catch.hpp>

#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include "cuda/augment.hpp"
#include "cuda/batch_assembly.hpp"
#include "cudacnn/data/augment.hpp"
#include "support/errors.hpp"
#include "support/parity.hpp"

using namespace cudacnn;
using Catch::Matchers::Contains;

namespace {

// Both paths run the same rules (src/data/augment_rules.hpp) in the same float operations; what may differ:
// contrast's grey mean, summed in double in another order (the float mean can move by an ulp, the blended
// values by ~1e-7), and on a real GPU the device's logf/cosf (noise, erasing's random values: within 2 ulp
// of glibc's) and double cos/sin/tan/exp/log (the warp matrices, the area draws: the rounded floats almost
// never differ). Values are in [0, 1] before normalize and below 10 after it, so 1e-5 is ~100 ulps of the
// largest value, yet far below any pixel the kernels could read wrongly (1/255 and more apart).
constexpr double kAugmentTolerance = 1e-5;

constexpr uint64_t kSeed = 0x5eed0000beefull;

struct Images {
    data::ImageShape shape;
    int64_t size = 0;
    std::vector<uint8_t> pixels;
    std::vector<int64_t> labels;
};

// Images with every byte value and smooth regions (so bilinear sampling sees gradients, not only noise).
Images pattern_images(int64_t size, const data::ImageShape& shape) {
    Images d{shape, size, {}, {}};
    const int64_t values = shape.channels * shape.height * shape.width;
    for (int64_t n = 0; n < size; ++n) {
        for (int64_t i = 0; i < values; ++i) {
            const int64_t x = i % shape.width, y = (i / shape.width) % shape.height, c = i / (shape.height * shape.width);
            const int64_t smooth = 255 * (x + y) / (shape.width + shape.height) + 40 * c;
            d.pixels.push_back(static_cast<uint8_t>(n % 2 == 0 ? smooth % 256 : (i * 37 + n * 11) % 256));
        }
        d.labels.push_back(n % 7);
    }
    return d;
}

struct Run {
    std::vector<float> x;
    std::vector<int64_t> labels;
};

Run host_run(const Images& d, const std::vector<int64_t>& indices, const data::AugmentSpec& spec, int64_t epoch,
             int64_t first, int64_t out_values) {
    const int64_t count = static_cast<int64_t>(indices.size());
    Run r{std::vector<float>(static_cast<size_t>(count * out_values)), std::vector<int64_t>(static_cast<size_t>(count))};
    data::augment_batch(d.pixels.data(), d.labels.data(), d.shape, indices.data(), count, spec, kSeed, epoch, first,
                        r.x.data(), r.labels.data());
    return r;
}

Run device_run(const Images& d, const std::vector<int64_t>& indices, const data::AugmentSpec& spec, int64_t epoch,
               int64_t first, int64_t out_values) {
    const int64_t count = static_cast<int64_t>(indices.size());
    const DeviceBuffer images = upload(d.pixels), labels = upload(d.labels), order = upload(indices);
    DeviceBuffer scratch = test::poisoned<float>(std::max<int64_t>(1, gpu::augment_scratch_floats(spec, d.shape, count)));
    // A poisoned tail after x: a kernel writing past the batch changes it.
    constexpr int64_t kTail = 64;
    DeviceBuffer x = test::poisoned<float>(count * out_values + kTail), out_labels = test::poisoned<int64_t>(count);
    const gpu::DeviceImages device{images.data_as<const uint8_t>(), labels.data_as<const int64_t>(), d.size,
                                   d.shape.channels, d.shape.height, d.shape.width};
    gpu::augment_batch(device, order.data_as<const int64_t>(), count, spec, kSeed, epoch, first, scratch.data_as<float>(),
                       x.data_as<float>(), out_labels.data_as<int64_t>(), nullptr);
    std::vector<float> all = download<float>(x);
    for (int64_t i = count * out_values; i < count * out_values + kTail; ++i)
        CHECK(std::isnan(all[static_cast<size_t>(i)]));  // still the poison
    all.resize(static_cast<size_t>(count * out_values));
    return {all, download<int64_t>(out_labels)};
}

double max_abs_difference(const std::vector<float>& a, const std::vector<float>& b) {
    double worst = a.size() == b.size() ? 0.0 : INFINITY;
    for (size_t i = 0; i < a.size() && i < b.size(); ++i) {
        const double d = std::fabs(static_cast<double>(a[i]) - static_cast<double>(b[i]));
        worst = std::isnan(d) ? INFINITY : std::max(worst, d);  // NaN: an unwritten (poisoned) value
    }
    return worst;
}

void check_spec(const Images& d, const std::string& text, int64_t epoch, int64_t first) {
    const data::AugmentSpec spec = data::parse_augment_spec(text);
    const data::ImageShape out = data::augment_shapes(spec, d.shape).back();
    const int64_t out_values = out.channels * out.height * out.width;
    const std::vector<int64_t> indices{3, 0, 5, 5, 1, 4};  // a repeated record gets different draws
    CAPTURE(text, d.shape.channels, d.shape.height, d.shape.width, epoch, first);
    const Run host = host_run(d, indices, spec, epoch, first, out_values);
    const Run device = device_run(d, indices, spec, epoch, first, out_values);
    CHECK(max_abs_difference(device.x, host.x) <= kAugmentTolerance);
    CHECK(device.labels == host.labels);
}

}  // namespace

TEST_CASE("gpu::augment_batch equals the CPU reference for every op and option", "[augment_gpu]") {
    const Images colour = pattern_images(6, {3, 13, 11});
    const std::vector<std::string> specs{
        "crop:11:3:constant:0.25/0.5/0.75,hflip",
        "crop:12:4:reflect,vflip:0.7",
        "crop:10:2:edge,hflip:0.3",
        "crop:13:5:symmetric",
        "jitter:0.4:0.4:0.4:0.1",
        "jitter:0.5",
        "jitter:0:0.6",
        "jitter:0:0:0.8",
        "jitter:0:0:0:0.5",
        "grayscale:0.5",
        "erasing:0.8",
        "erasing:1:0.1-0.4:0.5-2:random",
        "erasing:0.7:0.02-0.33:0.3-3.3:0.2/0.4/0.6",
        "noise:0.1",
        "noise:0.2:0.05",
        "saltpepper:0.1",
        "saltpepper:0.3:0.2",
        "normalize:0.5/0.4/0.3:0.2/0.25/0.3",
        "affine:30:0.1:0.8-1.2:10",
        "affine:20:0.2/0.1:0.9-1.1:-5-15:bilinear:0.5",
        "rotation:45",
        "rotation:90:bilinear:0.3",
        "centercrop:9",
        "resizedcrop:8",
        "resizedcrop:16:0.3-1:0.5-2",
        "perspective:0.6:0.8",
        "perspective:0.3:1:nearest:0.2",
        "crop:13:2:reflect,hflip,affine:15:0.1:0.9-1.1,jitter:0.2:0.2:0.2:0.05,grayscale:0.2,erasing:0.5,"
        "noise:0.05,saltpepper:0.02,perspective:0.4,resizedcrop:9,normalize:0.49/0.48/0.45:0.2/0.2/0.2"};
    for (const std::string& spec : specs) check_spec(colour, spec, 3, 5);

    // Images of more pixels than a block has threads (256): every per-pixel loop and jitter pass strides.
    const Images large = pattern_images(6, {3, 19, 17});
    for (const std::string& spec : {"crop:17:3:reflect,hflip,jitter:0.4:0.4:0.4:0.1,erasing:1:0.1-0.4:0.5-2:random",
                                    "affine:20:0.2/0.1:0.9-1.1:-5-15:bilinear:0.5,perspective:0.5:1,noise:0.1",
                                    "jitter:0:0.6,grayscale:0.5,saltpepper:0.1,resizedcrop:20,normalize:0.5:0.25"})
        check_spec(large, spec, 1, 40);
    // RandomResizedCrop's central fallback: no attempt of aspect 3-4 fits with scale 0.99-1.
    check_spec(colour, "resizedcrop:8:0.99-1:3-4", 0, 0);
    // A flip without a crop draws word 0 (not the fused pass's word 2).
    check_spec(colour, "hflip,normalize:0.5:0.25", 2, 9);

    const Images grey = pattern_images(6, {1, 9, 9});
    check_spec(grey, "crop:9:2,hflip,jitter:0.3:0.3:0.3:0.1,grayscale:0.5,rotation:20:bilinear,noise:0.1,"
                     "erasing:1:0.1-0.3:0.5-2:random,normalize:0.5:0.25",
               0, 0);
    check_spec(grey, "vflip:1,saltpepper:0.2,perspective:0.5:1,resizedcrop:5", 7, 1000);
    check_spec(pattern_images(6, {1, 16, 16}), "crop:16:2:symmetric,jitter:0.3:0.3:0.3:0.1,rotation:30:bilinear", 1, 3);
}

TEST_CASE("gpu::augment_batch: an empty spec is ToTensor; one image works", "[augment_gpu]") {
    const Images colour = pattern_images(6, {3, 13, 11});
    const std::vector<int64_t> one{2};
    const Run device = device_run(colour, one, {}, 0, 0, 3 * 13 * 11);
    std::vector<float> expected;
    for (int64_t i = 0; i < 3 * 13 * 11; ++i) expected.push_back(static_cast<float>(colour.pixels[2 * 3 * 13 * 11 + i]) / 255.0f);
    CHECK(device.x == expected);
    CHECK(device.labels == std::vector<int64_t>{colour.labels[2]});
}

TEST_CASE("gpu::augment_batch on the default spec equals the fused crop+flip kernel bit for bit", "[augment_gpu]") {
    const Images colour = pattern_images(6, {3, 12, 12});
    const data::AugmentSpec spec =
        data::with_normalization(data::parse_augment_spec("crop:12:4,hflip"), {0.4914f, 0.4822f, 0.4465f},
                                 {0.2023f, 0.1994f, 0.2010f});
    data::FusedCropFlip fused;
    REQUIRE(data::fused_crop_flip(spec, colour.shape, &fused));
    CHECK(fused.crop_padding == 4);
    CHECK(fused.horizontal_flip);
    const std::vector<int64_t> indices{3, 0, 5, 5, 1, 4};
    const int64_t values = 6 * 3 * 12 * 12;
    const Run general = device_run(colour, indices, spec, 2, 17, 3 * 12 * 12);

    const DeviceBuffer images = upload(colour.pixels), labels = upload(colour.labels), order = upload(indices);
    DeviceBuffer x = test::poisoned<float>(values), out_labels = test::poisoned<int64_t>(6);
    const gpu::DeviceImages device{images.data_as<const uint8_t>(), labels.data_as<const int64_t>(), 6, 3, 12, 12};
    const data::Augmentation augmentation{fused.crop_padding, fused.horizontal_flip};
    const data::Normalization normalization{fused.mean, fused.stddev};
    gpu::assemble_batch(device, order.data_as<const int64_t>(), 6, &augmentation, normalization, kSeed, 2, 17,
                        x.data_as<float>(), out_labels.data_as<int64_t>(), nullptr);
    CHECK(test::bitwise_equal(HostTensor<float>(Shape{values}, download<float>(x)),
                              HostTensor<float>(Shape{values}, general.x)));

    CHECK_FALSE(data::fused_crop_flip(data::parse_augment_spec("crop:12:4:reflect,normalize:0.5:0.5"), colour.shape,
                                      nullptr));
    CHECK_FALSE(data::fused_crop_flip(data::parse_augment_spec("crop:12:4,hflip:0.3,normalize:0.5:0.5"), colour.shape,
                                      nullptr));
    CHECK_FALSE(data::fused_crop_flip(data::parse_augment_spec("crop:10:4,hflip,normalize:0.5:0.5"), colour.shape,
                                      nullptr));
    CHECK_FALSE(data::fused_crop_flip(data::parse_augment_spec("crop:12:4,hflip"), colour.shape, nullptr));
    CHECK_FALSE(data::fused_crop_flip(data::parse_augment_spec("hflip,normalize:0.5:0.5"), colour.shape, nullptr));
    CHECK(data::fused_crop_flip(data::parse_augment_spec("normalize:0.5:0.5"), colour.shape, nullptr));
}

TEST_CASE("gpu::augment_batch refuses a spec its images cannot take, naming the op", "[augment_gpu]") {
    const Images colour = pattern_images(2, {3, 13, 11});
    const std::vector<int64_t> indices{0, 1};
    CHECK_THAT(test::error_message([&] { device_run(colour, indices, data::parse_augment_spec("hflip,centercrop:12"), 0, 0, 1); }),
               Contains("augment op 1 \"centercrop:12\" on 3x13x11 images: size 12 is larger than the image"));
    CHECK_THAT(test::error_message([&] { device_run(colour, indices, data::parse_augment_spec("crop:11:11:reflect"), 0, 0, 1); }),
               Contains("reflect padding must be below the image size 11"));
}
