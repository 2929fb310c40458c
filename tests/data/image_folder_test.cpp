// The image-folder layout as training and test sets (load_image_folder_splits, cudacnn-train's --dataset
// imagefolder) on tiny PNG folders written here: DIR/train + DIR/test, DIR alone, and the layouts it refuses.
#include <catch2/catch.hpp>

#include <array>
#include <filesystem>
#include <string>
#include <vector>

#include "cudacnn/data/image.hpp"
#include "support/errors.hpp"
#include "support/images.hpp"
#include "support/temp_files.hpp"

using namespace cudacnn;
using namespace cudacnn::data;
using Catch::Matchers::Contains;
namespace fs = std::filesystem;

namespace {

// Image i of class `label` is a solid 6×4 PNG of colour (40·label + i, 100 + i, 200 + split), so every record
// tells which file it came from.
std::array<uint8_t, 3> colour(int label, int i, int split) {
    return {static_cast<uint8_t>(40 * label + i), static_cast<uint8_t>(100 + i),
            static_cast<uint8_t>(200 + split)};
}

void write_classes(const fs::path& root, const std::vector<std::string>& classes, int per_class, int split) {
    for (std::size_t label = 0; label < classes.size(); ++label) {
        fs::create_directories(root / classes[label]);
        for (int i = 0; i < per_class; ++i) {
            const auto c = colour(static_cast<int>(label), i, split);
            test::write_solid_png((root / classes[label] / (std::to_string(i) + ".png")).string(), 6, 4, c[0],
                                  c[1], c[2]);
        }
    }
}

// Every record n is image n % per_class of class n / per_class, in every channel and pixel.
void check_records(const Dataset& d, int classes, int per_class, int split) {
    REQUIRE(d.size() == classes * per_class);
    for (int64_t n = 0; n < d.size(); ++n) {
        const int label = static_cast<int>(n / per_class), i = static_cast<int>(n % per_class);
        INFO(d.name << " record " << n);
        CHECK(d.labels[n] == label);
        const auto c = colour(label, i, split);
        const int64_t plane = d.height * d.width;
        bool all = true;
        for (int64_t k = 0; k < d.image_bytes(); ++k) all = all && d.image(n)[k] == c[k / plane];
        CHECK(all);
    }
}

}  // namespace

TEST_CASE("load_image_folder_splits: DIR/train and DIR/test are the two sets", "[data][imagefolder]") {
    const test::TempDir temp;
    const fs::path root = temp.path();
    write_classes(root / "train", {"cat", "dog", "emu"}, 2, 0);
    write_classes(root / "test", {"cat", "dog", "emu"}, 1, 1);
    // Solid colours stay exact through the resize, so any input size shows the pixels' order and labels.
    const Splits s = load_image_folder_splits(root.string(), 5, 7);
    CHECK(s.train.name == (root / "train").string());
    CHECK(s.test.name == (root / "test").string());
    for (const Dataset* d : {&s.train, &s.test}) {
        CHECK(d->num_classes == 3);
        CHECK(d->class_names == std::vector<std::string>{"cat", "dog", "emu"});
        CHECK((d->channels == 3 && d->height == 5 && d->width == 7));
        CHECK_NOTHROW(d->validate());
    }
    check_records(s.train, 3, 2, 0);
    check_records(s.test, 3, 1, 1);
}

TEST_CASE("load_image_folder_splits: DIR alone is the training set and, named so, the test set",
          "[data][imagefolder]") {
    const test::TempDir temp;
    write_classes(temp.path(), {"a", "b"}, 3, 0);
    const Splits s = load_image_folder_splits(temp.path(), 4, 6);
    check_records(s.train, 2, 3, 0);
    check_records(s.test, 2, 3, 0);
    CHECK(s.train.name == temp.path());
    CHECK(s.test.name == temp.path() + " (the training images again: no test/ folder)");
    CHECK(s.test.class_names == std::vector<std::string>{"a", "b"});
}

TEST_CASE("load_image_folder_splits refuses half a split, different classes and no classes",
          "[data][imagefolder]") {
    const test::TempDir temp;
    const fs::path root = temp.path();
    write_classes(root / "train", {"cat", "dog"}, 1, 0);
    CHECK_THAT(
        test::error_message([&] { load_image_folder_splits(root.string(), 4, 4); }),
        Contains("image folder " + root.string() + ": has train/ but no test/; give both train/ and test/"));

    write_classes(root / "test", {"cat", "cow"}, 1, 1);
    CHECK_THAT(test::error_message([&] { load_image_folder_splits(root.string(), 4, 4); }),
               Contains("image folder " + root.string() +
                        ": train/ has the classes [cat, dog] but test/ has [cat, cow]; give both the same "
                        "class folders"));

    fs::remove_all(root / "train");
    CHECK_THAT(test::error_message([&] { load_image_folder_splits(root.string(), 4, 4); }),
               Contains("has test/ but no train/"));

    const test::TempDir empty;
    CHECK_THAT(test::error_message([&] { load_image_folder_splits(empty.path(), 4, 4); }),
               Contains("no class subfolders"));
    CHECK_THAT(test::error_message([&] { load_image_folder_splits(empty.file("missing"), 4, 4); }),
               Contains("not a folder"));
}
