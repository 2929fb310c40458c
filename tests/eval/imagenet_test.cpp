// ImageNet models' preprocessing and class names: torchvision's weights.transforms() (Resize(256) of the shorter
// side, CenterCrop(224), ToTensor, Normalize) against torchvision's own output on JPEG files
// (tools/fixtures/imagenet_preprocess.py), the choice of preprocessing and names by model, and the shipped names.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <fstream>

#include <fmt/format.h>

#include "cudacnn/data/image.hpp"
#include "cudacnn/eval/preprocess.hpp"
#include "cudacnn/eval/session.hpp"
#include "cudacnn/graph/model.hpp"
#include "cudacnn/safetensors.hpp"

using namespace cudacnn;

namespace {

const std::string kFixtures = CUDACNN_FIXTURES_DIR;

// ToTensor + Normalize of a preprocessed image, as Session::normalize computes it (float, (v / 255 − mean) / std).
std::vector<float> normalized(const data::Image& image, const data::Normalization& n) {
    std::vector<float> x(image.pixels.size());
    const auto plane = static_cast<std::size_t>(image.height * image.width);
    for (std::size_t k = 0; k < x.size(); ++k)
        x[k] = (static_cast<float>(image.pixels[k]) / 255.0f - n.mean[k / plane]) / n.stddev[k / plane];
    return x;
}

struct Difference {
    double max_abs = 0.0;
    int64_t count = 0;  // elements that differ at all
};

Difference compare(const std::vector<float>& ours, const HostTensor<float>& theirs) {
    REQUIRE(static_cast<int64_t>(ours.size()) == theirs.numel());
    Difference d;
    for (std::size_t k = 0; k < ours.size(); ++k) {
        const double e = std::abs(static_cast<double>(ours[k]) - theirs[static_cast<int64_t>(k)]);
        d.max_abs = std::max(d.max_abs, e);
        d.count += e > 0 ? 1 : 0;
    }
    return d;
}

// The resize rounds each pass to 8 bits as PIL does, but in floating point where PIL uses fixed point
// (data::resize_image), so a pixel may come out 1 away from PIL's (2 where both passes round apart); after
// ToTensor + Normalize a step of 1 is 1 / 255 / std, at most 1 / 255 / 0.224 = 0.0175. Most pixels are exact.
constexpr double kOneStep = 1.0 / 255.0 / 0.224 + 1e-6;
constexpr double kTolerance = 2 * kOneStep;

}  // namespace

TEST_CASE("JPEG files decode to the pixels PIL decodes", "[eval][imagenet]") {
    const SafetensorsFile fixture = SafetensorsFile::read(kFixtures + "/imagenet_preprocess.safetensors");
    const HostTensor<int64_t> sums = fixture.get<int64_t>("decoded_sums");  // (2, 3)
    const HostTensor<uint8_t> rows = fixture.get<uint8_t>("decoded_rows");  // (3, 14, 553): rows 0, 30, ...
    const data::Image landscape = data::read_image(kFixtures + "/imagenet_sample.jpg");
    const data::Image portrait = data::read_image(kFixtures + "/imagenet_sample_portrait.jpg");
    REQUIRE(landscape.height == 405);
    REQUIRE(landscape.width == 553);
    REQUIRE(portrait.height == 190);
    REQUIRE(portrait.width == 131);
    for (int64_t c = 0; c < 3; ++c)
        for (int64_t r = 0; r < 14; ++r)
            for (int64_t x = 0; x < 553; ++x) REQUIRE(landscape.at(c, 30 * r, x) == rows[(c * 14 + r) * 553 + x]);
    const data::Image* images[2] = {&landscape, &portrait};
    for (int64_t i = 0; i < 2; ++i)
        for (int64_t c = 0; c < 3; ++c) {
            int64_t sum = 0;
            for (int64_t y = 0; y < images[i]->height; ++y)
                for (int64_t x = 0; x < images[i]->width; ++x) sum += images[i]->at(c, y, x);
            CHECK(sum == sums[i * 3 + c]);
        }
}

TEST_CASE("ImageNet preprocessing gives torchvision's weights.transforms() output", "[eval][imagenet]") {
    const SafetensorsFile fixture = SafetensorsFile::read(kFixtures + "/imagenet_preprocess.safetensors");
    const data::Image landscape = data::read_image(kFixtures + "/imagenet_sample.jpg");
    const data::Image portrait = data::read_image(kFixtures + "/imagenet_sample_portrait.jpg");

    SECTION("scaled down: Resize(64) + CenterCrop(56), the whole result, landscape and portrait") {
        const eval::Preprocessing small = eval::imagenet_preprocessing(56, 64);
        for (const auto& [image, name] : {std::pair{&landscape, "small_56"}, std::pair{&portrait, "small_56_portrait"}}) {
            INFO(name);
            const data::Image cropped = small.apply(*image);
            REQUIRE(cropped.height == 56);
            REQUIRE(cropped.width == 56);
            const Difference d = compare(normalized(cropped, small.normalization), fixture.get<float>(name));
            INFO(fmt::format("max |difference| {:.6f} ({:.2f} steps of 1/255), {} of {} values differ", d.max_abs,
                             d.max_abs / kOneStep, d.count, 3 * 56 * 56));
            CHECK(d.max_abs <= kTolerance);
            CHECK(d.count <= 3 * 56 * 56 / 20);  // at most 5% off by a step
        }
    }
    SECTION("torchvision's size: Resize(256) + CenterCrop(224), sampled rows and columns, and channel sums") {
        const eval::Preprocessing full = eval::imagenet_preprocessing(224, 256);
        std::vector<float> x;
        // The landscape picture shrinks (405 → 256), the portrait one grows (131 → 256).
        for (const auto& [image, name, stride] : {std::tuple{&portrait, "full_224_portrait", 8},
                                                  std::tuple{&landscape, "full_224", 4}}) {
            INFO(name);
            const data::Image cropped = full.apply(*image);
            REQUIRE(cropped.height == 224);
            REQUIRE(cropped.width == 224);
            x = normalized(cropped, full.normalization);
            std::vector<float> sampled;
            for (int64_t c = 0; c < 3; ++c)
                for (int64_t y = 0; y < 224; y += stride)
                    for (int64_t i = 0; i < 224; i += stride) sampled.push_back(x[(c * 224 + y) * 224 + i]);
            const Difference d = compare(sampled, fixture.get<float>(name));
            INFO(fmt::format("max |difference| {:.6f} ({:.2f} steps of 1/255), {} of {} sampled values differ",
                             d.max_abs, d.max_abs / kOneStep, d.count, sampled.size()));
            CHECK(d.max_abs <= kTolerance);
            CHECK(d.count <= static_cast<int64_t>(sampled.size()) / 20);
        }
        // The landscape's whole result: a window one pixel off would move the sums by whole rows of differences;
        // rounding moves them by far less: the mean value within a quarter step.
        const HostTensor<double> sums = fixture.get<double>("full_224_sums");
        for (int64_t c = 0; c < 3; ++c) {
            double sum = 0.0;
            for (int64_t k = 0; k < 224 * 224; ++k) sum += x[c * 224 * 224 + k];
            CHECK(std::abs(sum - sums[c]) / (224.0 * 224.0) <= kOneStep / 4);
        }
    }
}

TEST_CASE("Resize of the shorter side and CenterCrop round as torchvision does", "[eval][imagenet]") {
    const auto blank = [](int64_t h, int64_t w) { return data::Image{h, w, std::vector<uint8_t>(3 * h * w, 7)}; };
    // int(256 · long / short), truncated: 256 · 277 / 203 = 349.3, 256 · 190 / 131 = 371.3; a square stays square.
    const data::Image wide = data::resize_shorter_side(blank(203, 277), 256);
    CHECK((wide.height == 256 && wide.width == 349));
    const data::Image tall = data::resize_shorter_side(blank(190, 131), 256);
    CHECK((tall.height == 371 && tall.width == 256));
    const data::Image square = data::resize_shorter_side(blank(300, 300), 256);
    CHECK((square.height == 256 && square.width == 256));
    // The shorter side already the size: returned as it is (torchvision skips the resize), even when long.
    CHECK(data::resize_shorter_side(blank(256, 1000), 256).width == 1000);
    // CenterCrop's offsets: int(round(d / 2.0)), halves to even. A ramp tells where the window starts.
    data::Image ramp{1, 40, std::vector<uint8_t>(3 * 40)};
    for (int64_t x = 0; x < 40; ++x) ramp.pixels[x] = ramp.pixels[40 + x] = ramp.pixels[80 + x] = static_cast<uint8_t>(x);
    for (const auto& [crop, left] : {std::pair{9, 16}, std::pair{7, 16}, std::pair{5, 18}, std::pair{40, 0}, std::pair{39, 0},
                                     std::pair{37, 2}}) {
        INFO(fmt::format("crop {} of 40", crop));  // 31 → 15.5 → 16; 33 → 16.5 → 16; 35 → 17.5 → 18; 1 → 0.5 → 0; 3 → 2
        CHECK(data::center_crop(ramp, 1, crop).at(0, 0, 0) == left);
    }
    CHECK_THROWS_WITH(data::center_crop(ramp, 2, 4), Catch::Contains("does not fit in a 1x40 image"));
}

TEST_CASE("Preprocessing and class names are chosen by model: ImageNet's for torchvision's architectures", "[eval][imagenet]") {
    graph::ModelSpec spec;
    spec.input = Shape{3, 224, 224};
    spec.num_classes = 1000;
    for (const std::string name : {"vgg16", "vgg16_bn", "resnet18", "resnet50"}) {
        INFO(name);
        spec.name = name;
        CHECK(eval::is_imagenet_model(name));
        const eval::Preprocessing p = eval::preprocessing_for(spec, nullptr);
        CHECK(p.resize_shorter == 256);
        CHECK((p.height == 224 && p.width == 224));
        CHECK(p.normalization.mean == eval::imagenet_normalization().mean);
        CHECK(p.normalization.stddev == eval::imagenet_normalization().stddev);
        CHECK(p.describe() == "Resize(256) (bilinear) + CenterCrop(224) + ToTensor + Normalize(mean (0.485, 0.456, "
                              "0.406), std (0.229, 0.224, 0.225))");
        eval::LoadedModel model;
        model.spec = spec;
        CHECK(eval::class_names(model, nullptr) == eval::imagenet_class_names());
    }
    // At another input the ratio 256 / 224 holds: the scaled-down variant the fixture also checks.
    spec.input = Shape{3, 56, 56};
    CHECK(eval::preprocessing_for(spec, nullptr).resize_shorter == 64);
    // Other models, and ImageNet architectures trained here (a checkpoint's run): the window fitted, the run's or the
    // seed's Normalize; names are ImageNet's only for 1,000 classes.
    const train::TrainOptions run;
    CHECK(eval::preprocessing_for(spec, &run).resize_shorter == 0);
    eval::LoadedModel small;
    small.spec = graph::builtin_model("small_cnn");
    const eval::Preprocessing seed = eval::preprocessing_for(small.spec, nullptr);
    CHECK(seed.resize_shorter == 0);
    CHECK(seed.normalization.mean == data::cifar10_normalization().mean);
    CHECK(!eval::is_imagenet_model("small_cnn"));
    CHECK(!eval::is_imagenet_model("VGG16"));
    small.spec.name = "resnet18";  // ten classes: no ImageNet names
    CHECK(eval::class_names(small, nullptr).front() == "0");
}

TEST_CASE("The 1,000 ImageNet class names, compiled in and shipped as models/imagenet_classes.txt", "[eval][imagenet]") {
    const std::vector<std::string>& names = eval::imagenet_class_names();
    REQUIRE(names.size() == 1000);
    CHECK(names[0] == "tench");
    CHECK(names[281] == "tabby");
    CHECK(names[285] == "Egyptian cat");
    CHECK(names[999] == "toilet tissue");
    std::ifstream file(kFixtures + "/../../models/imagenet_classes.txt");
    REQUIRE(file.good());
    std::vector<std::string> lines;
    for (std::string line; std::getline(file, line);) lines.push_back(line);
    CHECK(lines == names);
}
