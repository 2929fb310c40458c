// cudacnn-viz and its pictures: the PNG writer against libpng's decoder, text, the seed's filter
// standardization, every command through the command line (dimensions and content of its PNG), the metrics
// reader, and every bad flag's or file's message.
#include <catch2/catch.hpp>

#include <cmath>
#include <filesystem>
#include <fstream>

#include <fmt/format.h>

#include "cudacnn/eval/session.hpp"
#include "cudacnn/io/state_dict.hpp"
#include "cudacnn/viz/canvas.hpp"
#include "cudacnn/viz/commands.hpp"
#include "src/train/metrics_log.hpp"
#include "support/errors.hpp"
#include "support/programs.hpp"
#include "support/temp_files.hpp"

using namespace cudacnn;

namespace {

test::Outcome viz_run(const std::string& args, const test::TempDir& dir) {
    return test::run_program(CUDACNN_VIZ_BINARY, args, dir.path());
}

const std::string kCat = std::string(CUDACNN_FIXTURES_DIR) + "/cifar10_cat.jpg";

// A small_cnn state with seeded weights (no training needed to draw it), saved as an export would be.
std::string small_cnn_weights(const test::TempDir& dir) {
    graph::Executor executor(graph::build_graph(graph::builtin_model("small_cnn")), graph::ExecutorOptions{});
    executor.initialize(5);
    const std::string path = dir.file("small_cnn.safetensors");
    io::save_state_dict(executor.model_state(), path, io::FloatStorage::f32, {{"model", "small_cnn"}});
    return path;
}

// Whether the picture holds a size × size block of exactly this colour.
bool has_block(const test::DecodedPng& png, viz::Rgb colour, int64_t size) {
    for (int64_t y = 0; y + size <= png.height; ++y)
        for (int64_t x = 0; x + size <= png.width; ++x) {
            bool all = true;
            for (int64_t j = 0; j < size && all; ++j)
                for (int64_t i = 0; i < size && all; ++i) {
                    const uint8_t* p = &png.rgb[3 * ((y + j) * png.width + x + i)];
                    all = p[0] == colour.r && p[1] == colour.g && p[2] == colour.b;
                }
            if (all) return true;
        }
    return false;
}

}  // namespace

TEST_CASE("write_png: libpng decodes the exact pixels; text draws within its measured box", "[viz]") {
    const test::TempDir dir;
    viz::Canvas canvas(37, 23, viz::Rgb{10, 20, 30});
    canvas.fill(5, 6, 7, 8, viz::Rgb{200, 100, 0});
    canvas.line(0, 22, 36, 0, viz::kWhite);
    viz::write_png(canvas, dir.file("c.png"));
    const test::DecodedPng png = test::decode_png(dir.file("c.png"));
    REQUIRE(png.width == 37);
    REQUIRE(png.height == 23);
    CHECK(png.rgb == canvas.pixels());
    CHECK(png.colours().size() == 3);

    viz::Canvas words(100, 30);
    words.text(2, 3, "Loss: 1.5%", viz::kBlack);
    int64_t lit = 0, right = 0, bottom = 0;
    for (int64_t y = 0; y < 30; ++y)
        for (int64_t x = 0; x < 100; ++x)
            if (words.at(x, y) == viz::kBlack) ++lit, right = std::max(right, x), bottom = std::max(bottom, y);
    CHECK(lit > 40);
    CHECK(right == 2 + viz::text_width("Loss: 1.5%") - 1);
    CHECK(bottom <= 3 + 7 - 1);
    CHECK(viz::fit_text("horizontal_stripes", 60) == "horizon...");  // 10 cells: 59 pixels
    CHECK_THAT(test::error_message([&] { viz::write_png(canvas, dir.file("none/c.png")); }),
               Catch::Contains("none/c.png: cannot create the file"));
}

TEST_CASE("filters: each filter standardized as the seed does, as RGB tiles", "[viz]") {
    const test::TempDir dir;
    eval::LoadedModel model = eval::load_model({"", small_cnn_weights(dir), ""});
    const viz::Canvas picture = viz::filters_picture(model, "", 64);
    viz::write_png(picture, dir.file("f.png"));
    const test::DecodedPng png = test::decode_png(dir.file("f.png"));
    // Filter 5 of features.0 (8, 3, 3, 3): (w − mean) / std + 0.5 over its 27 values, clipped to [0, 1]; each
    // of its 9 pixels is a 16 × 16 block (3 × 3 kernels drawn 48 pixels wide).
    const HostTensor<float>& w = model.state.f32("features.0.weight");
    const float* f = w.data() + 5 * 27;
    double mean = 0, squares = 0;
    for (int k = 0; k < 27; ++k) mean += f[k] / 27.0;
    for (int k = 0; k < 27; ++k) squares += (f[k] - mean) * (f[k] - mean) / 27.0;
    const auto level = [&](int k) {
        return static_cast<uint8_t>(std::lround(std::clamp((f[k] - mean) / std::sqrt(squares) + 0.5, 0.0, 1.0) * 255));
    };
    for (int k = 0; k < 9; ++k) {
        INFO("pixel " << k);
        CHECK(has_block(png, viz::Rgb{level(k), level(9 + k), level(18 + k)}, 16));
    }
    // A deeper layer: one grey tile per input channel, a row per filter.
    const viz::Canvas deeper = viz::filters_picture(model, "features.4", 3);
    CHECK(deeper.width() > 8 * 24);
    CHECK_THAT(test::error_message([&] { viz::filters_picture(model, "features.1", 3); }),
               Catch::Contains("--layer features.1: a batch_norm2d layer, not a conv2d"));
}

TEST_CASE("cudacnn-viz: every command writes a PNG with content", "[viz]") {
    const test::TempDir dir;
    const std::string weights = "--weights " + small_cnn_weights(dir);
    std::ofstream(dir.file("m.csv")) << "epoch,train_loss,train_accuracy,test_loss,test_accuracy,epoch_seconds,lr,images_per_second\n"
                                        "1,2.1,20.5,1.9,30.25,1.0,0.001,100\n2,1.6,41.0,1.5,45.0,1.0,0.001,100\n"
                                        "3,1.2,55.0,1.3,52.5,1.0,0.001,100\n";
    std::ofstream(dir.file("m.jsonl")) << R"({"epoch": 1, "train_loss": 2.0, "train_accuracy": 10, "test_loss": 1.8, "test_accuracy": 20})"
                                          "\n"
                                       << R"({"epoch": 2, "train_loss": 1.5, "train_accuracy": 30, "test_loss": 1.4, "test_accuracy": 35})"
                                          "\n";
    struct Case {
        std::string args;
        int64_t min_width, min_height;
        std::size_t min_colours;
    };
    const std::vector<Case> cases = {
        {"filters " + weights, 300, 60, 20},
        {"filters --layer features.4 --max-filters 4 " + weights, 200, 60, 5},
        {"activations " + kCat + " " + weights, 500, 250, 50},
        {"feature-maps " + kCat + " --layer features.0 " + weights, 300, 150, 50},
        {"curves " + dir.file("m.csv"), 600, 600, 4},
        {"curves " + dir.file("m.jsonl"), 600, 600, 4},
        {"adversarial " + kCat + " --eps 8/255 " + weights, 500, 200, 50},
    };
    for (const Case& c : cases) {
        INFO(c.args);
        const test::Outcome run = viz_run(c.args + " -o " + dir.file("out.png"), dir);
        INFO(run.output);
        REQUIRE(run.exit_code == 0);
        const test::DecodedPng png = test::decode_png(dir.file("out.png"));
        CHECK(png.width >= c.min_width);
        CHECK(png.height >= c.min_height);
        CHECK(png.colours().size() >= c.min_colours);
        std::filesystem::remove(dir.file("out.png"));
    }
    // eps 0 changes nothing: the same class and probability on both sides.
    const test::Outcome same = viz_run("adversarial " + kCat + " --eps 0 " + weights + " -o " + dir.file("a.png"), dir);
    REQUIRE(same.exit_code == 0);
    const std::string line = same.output.substr(0, same.output.find('\n'));
    const std::size_t arrow = line.find(" -> FGSM eps 0: ");
    REQUIRE(arrow != std::string::npos);
    CHECK(line.substr(line.find(": ") + 2, arrow - line.find(": ") - 2) == line.substr(arrow + 16));
}

TEST_CASE("activations and feature maps show the executor's outputs of one image", "[viz]") {
    const test::TempDir dir;
    eval::SessionOptions options;
    options.batch_size = 1;
    options.keep_activations = true;
    eval::Session session(eval::load_model({"", small_cnn_weights(dir), ""}), options);
    const std::vector<float> pixels = viz::load_input_image(kCat, session.preprocessing());
    const std::vector<HostTensor<float>> outputs = session.activations(pixels.data());
    REQUIRE(outputs.size() == session.graph().nodes.size());
    CHECK(outputs[0].shape() == Shape({1, 8, 32, 32}));
    // The logits node's output is what a plain forward gives.
    const HostTensor<float> logits = session.logits(pixels.data(), 1);
    for (int64_t c = 0; c < 10; ++c) CHECK(outputs.back()[c] == logits[c]);
    const viz::Canvas maps = viz::feature_maps_picture(session, pixels, "features.4");
    CHECK(maps.width() > 4 * 64);
    CHECK_THAT(test::error_message([&] { viz::feature_maps_picture(session, pixels, "classifier"); }),
               Catch::Contains("--layer classifier: its output is (10) features, not maps"));
    CHECK_THAT(test::error_message([&] { viz::feature_maps_picture(session, pixels, "feature.4"); }),
               Catch::Contains("no such layer (did you mean 'features.4'?)"));
}

TEST_CASE("read_metrics_file: CSV and JSON lines, a resumed epoch replaces the earlier row, damaged files named", "[viz]") {
    const test::TempDir dir;
    std::ofstream(dir.file("m.csv")) << "epoch,train_loss,train_accuracy,test_loss,test_accuracy\n1,2,10,1.9,12\n2,1.5,20,1.4,22\n"
                                        "2,1.25,21,1.3,23\n";
    const std::vector<train::EpochRow> rows = train::read_metrics_file(dir.file("m.csv"));
    REQUIRE(rows.size() == 2);
    CHECK(rows[1].epoch == 2);
    CHECK(rows[1].train_loss == 1.25);
    CHECK(rows[1].test_accuracy == 23);
    std::ofstream(dir.file("bad.csv")) << "epoch,train_loss,train_accuracy,test_loss,test_accuracy\n1,2,ten,1.9,12\n";
    CHECK_THAT(test::error_message([&] { train::read_metrics_file(dir.file("bad.csv")); }),
               Catch::Contains("bad.csv, line 2: column 'train_accuracy' holds 'ten', not a number"));
    std::ofstream(dir.file("other.csv")) << "step,loss\n1,2\n";
    CHECK_THAT(test::error_message([&] { train::read_metrics_file(dir.file("other.csv")); }),
               Catch::Contains("other.csv, line 2: no 'epoch' column"));
    std::ofstream(dir.file("bad.jsonl")) << "{\"epoch\": 1,\n";
    CHECK_THAT(test::error_message([&] { train::read_metrics_file(dir.file("bad.jsonl")); }),
               Catch::Contains("bad.jsonl, line 1: not valid JSON"));
    // Nested deeper than any metrics row: refused while parsing (nlohmann would recurse through it later).
    std::ofstream(dir.file("deep.jsonl")) << "{\"epoch\": " << std::string(100000, '[') << "\n";
    CHECK_THAT(test::error_message([&] { train::read_metrics_file(dir.file("deep.jsonl")); }),
               Catch::Contains("deep.jsonl, line 1: JSON nested deeper than 64 levels"));
}

TEST_CASE("cudacnn-viz: every bad flag exits 2 and every bad file exits 1, each with a message", "[viz]") {
    const test::TempDir dir;
    const std::string weights = "--weights " + small_cnn_weights(dir);
    std::ofstream(dir.file("notes.txt")) << "not an image";
    const std::vector<std::pair<std::string, std::string>> usage = {
        {"", "no command"},
        {"filter " + weights, "unknown command 'filter'"},
        {"activations " + weights, "activations needs IMAGE"},
        {"curves a.csv b.csv", "curves: unexpected argument 'b.csv'"},
        {"filters", "filters needs the model's weights"},
        {"curves m.csv " + weights, "curves reads only the metrics file"},
        {"feature-maps " + kCat + " " + weights, "feature-maps needs --layer NAME"},
        {"adversarial " + kCat + " " + weights, "adversarial needs --eps E"},
        {"adversarial " + kCat + " --eps 3 " + weights, "--eps 3: must be in [0, 1]"},
        {"filters --eps 0.1 " + weights, "--eps and --label go with the adversarial command"},
        {"activations " + kCat + " --layer features.0 " + weights, "--layer goes with filters and feature-maps"},
        {"filters --max-filters 0 " + weights, "--max-filters 0: must be at least 1"},
        {"filters --layr features.0 " + weights, "did you mean '--layer'?"},
    };
    for (const auto& [args, message] : usage) {
        const test::Outcome run = viz_run(args, dir);
        INFO(args << "\n" << run.output);
        CHECK(run.exit_code == 2);
        CHECK_THAT(run.output, Catch::Contains(message));
    }
    const std::vector<std::pair<std::string, std::string>> failures = {
        {"activations " + dir.file("notes.txt") + " " + weights, "neither PNG nor JPEG"},
        {"curves " + dir.file("none.csv"), "none.csv: cannot open it"},
        {"filters --layer conv9 " + weights, "--layer conv9: model 'small_cnn' has no such layer"},
        {"adversarial " + kCat + " --eps 0.1 --label zebra " + weights, "--label zebra: not a class of the model"},
        {"filters " + weights + " -o " + dir.file("no/dir/f.png"), "cannot create the file"},
    };
    for (const auto& [args, message] : failures) {
        const test::Outcome run = viz_run(args, dir);
        INFO(args << "\n" << run.output);
        CHECK(run.exit_code == 1);
        CHECK_THAT(run.output, Catch::Contains(message));
    }
    const test::Outcome help = viz_run("--help", dir);
    CHECK(help.exit_code == 0);
    CHECK_THAT(help.output, Catch::Contains("feature-maps IMAGE") && Catch::Contains("--eps E"));
}
