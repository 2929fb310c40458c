// cudacnn-viz augment: the grid's size from samples, columns, scale and tile size; the first column is the
// original's pixels and column j + 1 is data::augment_image at epoch j (decoded with libpng); hflip:1 mirrors;
// normalize is shown as the identity; the JSON form draws what the text does; every bad flag, spec or file.
#include <catch2/catch.hpp>

#include <cmath>
#include <fstream>

#include <fmt/format.h>

#include "cudacnn/data/image.hpp"
#include "cudacnn/viz/commands.hpp"
#include "support/errors.hpp"
#include "support/programs.hpp"
#include "support/temp_files.hpp"

using namespace cudacnn;

namespace {

const std::string kCat = std::string(CUDACNN_FIXTURES_DIR) + "/cifar10_cat.jpg";
const std::string kShip = std::string(CUDACNN_FIXTURES_DIR) + "/cifar10_ship.jpg";

test::Outcome viz_run(const std::string& args, const test::TempDir& dir) {
    return test::run_program(CUDACNN_VIZ_BINARY, args, dir.path());
}

// tile_grid's layout, restated: 6-pixel gaps around every cell, the title at font scale 2 (8 pixels a line)
// and a gap under it, each cell as wide as its widest tile, captions of 2 lines (8 pixels each) + 2 below
// the tile.
struct Layout {
    int64_t title_lines, tile;  // tile: the tiles' side in pixels (image side · scale)

    int64_t header() const { return title_lines * 16 + 6; }
    int64_t cell_height() const { return tile + 2 * 8 + 2; }
    int64_t width(int64_t columns) const { return columns * (tile + 6) + 6; }
    int64_t height(int64_t rows) const { return header() + rows * (cell_height() + 6) + 6; }
    int64_t x(int64_t column) const { return 6 + column * (tile + 6); }
    int64_t y(int64_t row) const { return header() + 6 + row * (cell_height() + 6); }
};

// A float image in [0, 1] as the picture shows it: each value clamped, times 255, rounded.
uint8_t shown(float v) { return static_cast<uint8_t>(std::lround(std::clamp(v, 0.0f, 1.0f) * 255.0f)); }

// How many pixels of the tile at (x0, y0) differ from the image drawn `scale` pixels per value (every screen
// pixel of each block is compared); `mirror` compares with the image's columns reversed.
int64_t tile_mismatches(const test::DecodedPng& png, int64_t x0, int64_t y0, const data::FloatImage& image,
                        int64_t scale, bool mirror = false) {
    int64_t wrong = 0;
    const int64_t plane = image.height * image.width;
    for (int64_t y = 0; y < image.height * scale; ++y)
        for (int64_t x = 0; x < image.width * scale; ++x) {
            const int64_t iy = y / scale, ix = mirror ? image.width - 1 - x / scale : x / scale;
            const uint8_t* p = &png.rgb[3 * ((y0 + y) * png.width + x0 + x)];
            for (int64_t c = 0; c < 3; ++c)
                if (p[c] != shown(image.values[c * plane + iy * image.width + ix])) {
                    ++wrong;
                    break;
                }
        }
    return wrong;
}

data::FloatImage fixture_image(const std::string& path) {
    const data::Image image = data::fit_image(data::read_image(path), 32, 32);
    return data::to_float_image(image.pixels.data(), 3, 32, 32);
}

}  // namespace

TEST_CASE("cudacnn-viz augment: grid size, the originals, and each column as augment_image at its epoch", "[viz]") {
    const test::TempDir dir;
    const std::string spec = "crop:32:4:reflect,hflip,jitter:0.4:0.4:0.4:0.1,erasing:0.5";
    const test::Outcome run = viz_run(fmt::format("augment --images {} {} --augment {} --columns 5 --scale 3 "
                                                  "--seed 7 -o {}", kCat, kShip, spec, dir.file("a.png")),
                                      dir);
    INFO(run.output);
    REQUIRE(run.exit_code == 0);
    CHECK_THAT(run.output, Catch::Contains("augment: 2 samples x 5 versions") && Catch::Contains("a.png"));
    const test::DecodedPng png = test::decode_png(dir.file("a.png"));
    // 2 rows of 1 + 5 tiles of 96 × 96 pixels (32 · 3): 618 pixels wide, where the title (58 characters, 12
    // pixels each) breaks after "jitter:...:0.1," into 2 lines.
    const Layout layout{2, 96};
    CHECK(png.width == layout.width(6));
    CHECK(png.height == layout.height(2));
    const data::AugmentSpec parsed = data::parse_augment_spec(spec);
    const std::vector<data::FloatImage> originals = {fixture_image(kCat), fixture_image(kShip)};
    for (int64_t row = 0; row < 2; ++row) {
        INFO("row " << row);
        CHECK(tile_mismatches(png, layout.x(0), layout.y(row), originals[row], 3) == 0);
        int64_t differing_columns = 0;
        for (int64_t epoch = 0; epoch < 5; ++epoch) {
            INFO("epoch " << epoch);
            const data::FloatImage expected = data::augment_image(parsed, originals[row], 7, epoch, row);
            CHECK(tile_mismatches(png, layout.x(1 + epoch), layout.y(row), expected, 3) == 0);
            differing_columns += tile_mismatches(png, layout.x(1 + epoch), layout.y(row), originals[row], 3) > 0;
        }
        CHECK(differing_columns == 5);  // jitter's factors alone make every version differ
    }
    // The same samples with another seed draw other versions.
    const test::Outcome other = viz_run(fmt::format("augment --images {} {} --augment {} --columns 5 --scale 3 "
                                                    "--seed 8 -o {}", kCat, kShip, spec, dir.file("b.png")),
                                        dir);
    REQUIRE(other.exit_code == 0);
    CHECK(test::decode_png(dir.file("b.png")).rgb != png.rgb);
}

TEST_CASE("cudacnn-viz augment: hflip:1 mirrors every tile; synthetic samples; the JSON form draws the same", "[viz]") {
    const test::TempDir dir;
    const test::Outcome run = viz_run("augment --dataset synthetic --samples 3 --columns 4 --scale 2 --augment hflip:1 "
                                      "-o " + dir.file("flip.png"), dir);
    INFO(run.output);
    REQUIRE(run.exit_code == 0);
    const test::DecodedPng png = test::decode_png(dir.file("flip.png"));
    const Layout layout{1, 64};
    CHECK(png.width == layout.width(5));
    CHECK(png.height == layout.height(3));
    const data::Dataset synthetic = data::make_synthetic({3, 0, 0}).train;
    for (int64_t row = 0; row < 3; ++row) {
        INFO("row " << row);
        const data::FloatImage original = data::to_float_image(synthetic.image(row), 3, 32, 32);
        CHECK(tile_mismatches(png, layout.x(0), layout.y(row), original, 2) == 0);
        for (int64_t column = 1; column <= 4; ++column)
            CHECK(tile_mismatches(png, layout.x(column), layout.y(row), original, 2, true) == 0);
    }

    // The spec's JSON form, from a file, gives the same picture as its text (the title aside: it shows the
    // spec as given).
    const std::string text = "crop:28:2:edge,vflip,grayscale:0.5,noise:0.05";
    std::ofstream(dir.file("spec.json")) << data::augment_spec_to_json(data::parse_augment_spec(text)).dump();
    for (const std::string& spec : {text, dir.file("spec.json")}) {
        const test::Outcome r = viz_run(fmt::format("augment --images {} --augment {} --columns 3 --scale 1 -o {}",
                                                    kCat, spec, dir.file("s.png")), dir);
        INFO(r.output);
        REQUIRE(r.exit_code == 0);
        const test::DecodedPng s = test::decode_png(dir.file("s.png"));
        // 28 × 28 versions in cells as wide as the caption "original" (47 pixels), as tall as the 32-pixel
        // original and its caption; counted from the bottom, since the titles differ.
        const int64_t top = s.height - 6 - (32 + 18);
        for (int64_t epoch = 0; epoch < 3; ++epoch) {
            const data::FloatImage expected =
                data::augment_image(data::parse_augment_spec(text), fixture_image(kCat), 0, epoch, 0);
            CHECK(expected.height == 28);
            CHECK(tile_mismatches(s, 6 + (1 + epoch) * (47 + 6), top, expected, 1) == 0);
        }
    }
}

TEST_CASE("augment picture: normalize is shown as the identity and said so; a long title wraps", "[viz]") {
    const data::FloatImage cat = fixture_image(kCat);
    const data::AugmentSpec normalize = data::parse_augment_spec("normalize:0.4914/0.4822/0.4465:0.2023/0.1994/0.2010");
    const data::AugmentSpec shown_spec = viz::display_spec(normalize);
    REQUIRE(shown_spec.size() == 1);
    CHECK(data::augment_image(shown_spec, cat, 0, 0, 0).values == cat.values);
    const test::TempDir dir;
    const test::Outcome run =
        viz_run("augment --images " + kCat + " --augment hflip:0,normalize:0.5:0.25 --columns 2 -o " + dir.file("n.png"), dir);
    INFO(run.output);
    REQUIRE(run.exit_code == 0);
    CHECK_THAT(run.output, Catch::Contains("normalize ops skipped for display"));
    const test::DecodedPng png = test::decode_png(dir.file("n.png"));
    const Layout layout{2, 128};  // the title's second line says that normalize was skipped
    CHECK(png.height == layout.height(1));
    for (int64_t column = 0; column < 3; ++column) CHECK(tile_mismatches(png, layout.x(column), layout.y(0), cat, 4) == 0);

    // A title wider than the grid breaks after commas into lines of at most 480 pixels (40 characters) rather
    // than widening the picture: "crop:32:4:reflect,hflip," / "affine:15:0.1:0.9-1.1," / "jitter:...,erasing:0.5".
    const std::string long_spec = "crop:32:4:reflect,hflip,affine:15:0.1:0.9-1.1,jitter:0.4:0.4:0.4:0.1,erasing:0.5";
    const viz::Canvas picture =
        viz::augment_picture({{"cat", cat}}, data::parse_augment_spec(long_spec), 3, 0, 2, long_spec);
    CHECK(picture.width() == viz::text_width("jitter:0.4:0.4:0.4:0.1,erasing:0.5", 2) + 12);
    CHECK(picture.height() == Layout{3, 64}.height(1));
    CHECK_THAT(test::error_message([&] { viz::augment_picture({}, normalize, 3, 0, 2, ""); }),
               Catch::Contains("no samples"));
}

TEST_CASE("cudacnn-viz augment: every bad flag or spec exits 2 and every bad file exits 1, each with a message", "[viz]") {
    const test::TempDir dir;
    std::ofstream(dir.file("bad.json")) << R"([{"op": "blur"}])";
    std::ofstream(dir.file("broken.json")) << "[{";
    const std::vector<std::pair<std::string, std::string>> usage = {
        {"augment --images " + kCat + " --augment crop:32:x", "bad token \"x\""},
        {"augment --images " + kCat + " --augment crop:32,blur", "bad token \"blur\""},
        {"augment --images " + kCat + " --augment " + dir.file("bad.json"), "bad.json"},
        {"augment --images " + kCat + " --augment " + dir.file("broken.json"), "broken.json: the file is not valid JSON"},
        {"augment --images " + kCat + " --augment " + dir.file("none.json"), "none.json: cannot open the file"},
        {"augment", "augment needs its images: --images FILE... or --dataset"},
        {"augment --images " + kCat + " --dataset synthetic", "(one of them)"},
        {"augment --dataset cifar10", "--dataset cifar10 needs --data DIR"},
        {"augment --dataset imagenet", "--dataset imagenet: use cifar10"},
        {"augment --dataset synthetic --data " + dir.path(), "--data goes with --dataset cifar10"},
        {"augment --dataset synthetic --size 24", "--size goes with --images"},
        {"augment --dataset synthetic --samples 0", "--samples 0: must be at least 1"},
        {"augment --dataset synthetic --scale 99", "--scale 99: must be at most 32"},
        {"augment --dataset synthetic --weights w.safetensors", "augment draws no model"},
        {"curves m.csv --augment hflip", "--augment goes with the augment command, not curves"},
        {"augment --dataset synthetic --colums 3", "did you mean '--columns'?"},
    };
    for (const auto& [args, message] : usage) {
        const test::Outcome run = viz_run(args + " -o " + dir.file("x.png"), dir);
        INFO(args << "\n" << run.output);
        CHECK(run.exit_code == 2);
        CHECK_THAT(run.output, Catch::Contains(message));
    }
    const std::vector<std::pair<std::string, std::string>> failures = {
        {"augment --images " + kCat + " " + dir.file("missing.jpg"), "missing.jpg"},
        {"augment --dataset cifar10 --data " + dir.file("nowhere"), "nowhere"},
        {"augment --images " + kCat + " --augment crop:40", "crop"},
        {"augment --dataset synthetic -o " + dir.file("no/dir/a.png"), "cannot create the file"},
    };
    for (const auto& [args, message] : failures) {
        const test::Outcome run = viz_run(args + (args.find(" -o ") == std::string::npos ? " -o " + dir.file("x.png") : ""), dir);
        INFO(args << "\n" << run.output);
        CHECK(run.exit_code == 1);
        CHECK_THAT(run.output, Catch::Contains(message));
    }
    const test::Outcome help = viz_run("--help", dir);
    CHECK_THAT(help.output, Catch::Contains("augment") && Catch::Contains("--augment SPEC|FILE.json"));
}
