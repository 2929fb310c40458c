// train::load_splits, the datasets cudacnn-train's options name: image folders fitted to the model's input,
// CIFAR-100's coarse labels, the synthetic set, and --limit-train / --limit-test on each.
#include <catch2/catch.hpp>

#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "cudacnn/graph/model.hpp"
#include "cudacnn/train/options.hpp"
#include "cudacnn/train/setup.hpp"
#include "support/errors.hpp"
#include "support/images.hpp"
#include "support/temp_files.hpp"

using namespace cudacnn;
using namespace cudacnn::train;
namespace fs = std::filesystem;

namespace {

TrainOptions options(const std::vector<std::string>& args) {
    return parse_train_args(args).options;
}

// A CIFAR-100 record: coarse label, fine label, then 3072 pixel bytes of value `fill`.
std::string cifar100_record(int coarse, int fine, uint8_t fill) {
    return std::string{static_cast<char>(coarse), static_cast<char>(fine)} +
           std::string(3072, static_cast<char>(fill));
}

}  // namespace

TEST_CASE("load_splits: an image folder at the model's input size, cut by the limits",
          "[setup][imagefolder]") {
    const test::TempDir temp;
    for (const char* split : {"train", "test"})
        for (const char* name : {"bird", "fish"})
            for (int i = 0; i < 3; ++i) {
                fs::create_directories(fs::path(temp.path()) / split / name);
                test::write_solid_png(
                    temp.path() + "/" + split + "/" + name + "/" + std::to_string(i) + ".png", 9, 7,
                    static_cast<uint8_t>(i), 0, 0);
            }
    graph::ModelSpec spec = graph::builtin_model("small_cnn");
    spec.input = Shape{3, 12, 16};  // only the input's height and width matter to the loader
    const data::Splits s = load_splits(options({"--dataset", "imagefolder", "--data", temp.path()}), spec);
    CHECK(s.train.name == temp.path() + "/train");
    CHECK(s.test.name == temp.path() + "/test");
    for (const data::Dataset* d : {&s.train, &s.test}) {
        CHECK(d->size() == 6);
        CHECK((d->height == 12 && d->width == 16 && d->num_classes == 2));
        CHECK(d->labels == std::vector<int64_t>{0, 0, 0, 1, 1, 1});
        CHECK(d->class_names == std::vector<std::string>{"bird", "fish"});
    }
    const data::Splits limited = load_splits(options({"--dataset", "imagefolder", "--data", temp.path(),
                                                      "--limit-train", "4", "--limit-test", "1"}),
                                             spec);
    CHECK(limited.train.size() == 4);
    CHECK(limited.test.size() == 1);

    spec.input = Shape{48};
    CHECK_THAT(
        test::error_message([&] {
            load_splits(options({"--dataset", "imagefolder", "--data", temp.path()}), spec);
        }),
        Catch::Contains("--dataset imagefolder: model 'small_cnn' takes inputs (48), not images (C, H, W)"));
}

TEST_CASE("load_splits: CIFAR-100's coarse or fine labels as --cifar100-labels says", "[setup]") {
    const test::TempDir temp;
    std::ofstream(temp.file("train.bin"), std::ios::binary)
        << cifar100_record(7, 70, 1) + cifar100_record(19, 3, 2);
    std::ofstream(temp.file("test.bin"), std::ios::binary) << cifar100_record(0, 99, 3);
    const graph::ModelSpec spec = graph::builtin_model("small_cnn");
    const data::Splits coarse = load_splits(
        options({"--dataset", "cifar100", "--data", temp.path(), "--cifar100-labels", "coarse"}), spec);
    CHECK(coarse.train.num_classes == 20);
    CHECK(coarse.train.labels == std::vector<int64_t>{7, 19});
    CHECK(coarse.test.labels == std::vector<int64_t>{0});
    const data::Splits fine = load_splits(options({"--dataset", "cifar100", "--data", temp.path()}), spec);
    CHECK(fine.train.num_classes == 100);
    CHECK(fine.train.labels == std::vector<int64_t>{70, 3});
}

TEST_CASE("load_splits: the synthetic set of --synthetic-size and --seed", "[setup]") {
    const graph::ModelSpec spec = graph::builtin_model("small_cnn");
    const data::Splits s =
        load_splits(options({"--synthetic-size", "30,20", "--seed", "4", "--limit-test", "5"}), spec);
    const data::Splits reference = data::make_synthetic({30, 20, 4});
    CHECK(s.train.images == reference.train.images);
    CHECK(s.train.labels == reference.train.labels);
    CHECK(s.test.size() == 5);
    CHECK(s.test.labels == reference.test.first(5).labels);
}

TEST_CASE("run_normalization: the --augment spec's own normalize, else CIFAR-10's", "[setup]") {
    train::TrainOptions o;
    const data::Normalization cifar = data::cifar10_normalization();
    CHECK(train::run_normalization(o).mean == cifar.mean);
    o.augment_spec = "crop:32:4:constant:0,normalize:0.5:0.25";
    const data::Normalization own = train::run_normalization(o);
    CHECK(own.mean == std::array<float, 3>{0.5f, 0.5f, 0.5f});
    CHECK(own.stddev == std::array<float, 3>{0.25f, 0.25f, 0.25f});
    o.augment_spec = "hflip:0.5";
    CHECK(train::run_normalization(o).stddev == cifar.stddev);
}
