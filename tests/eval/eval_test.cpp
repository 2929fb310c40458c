// cudacnn-eval through its command line: accuracy, per-class counts, the confusion matrix, logits, TTA (flip and
// TenCrop views), FGSM and predictions checked against computations made here (a linear model with hand-set
// weights, the argmax of the --logits CSV, cudacnn-train's own test accuracy), the resize, and every bad flag's or
// file's message.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <regex>
#include <sstream>

#include <fmt/format.h>

#include "cudacnn/data/image.hpp"
#include "cudacnn/io/state_dict.hpp"
#include "cudacnn/viz/canvas.hpp"
#include "support/programs.hpp"
#include "support/temp_files.hpp"

using namespace cudacnn;

namespace {

constexpr int64_t kPixels = 3072, kClasses = 10;
const double kMean[3] = {0.4914, 0.4822, 0.4465}, kStd[3] = {0.2023, 0.1994, 0.2010};

test::Outcome eval(const std::string& args, const test::TempDir& dir) {
    return test::run_program(CUDACNN_EVAL_BINARY, args, dir.path());
}

uint32_t lcg(uint32_t& state) { return state = state * 1664525u + 1013904223u; }

// flatten + linear(3072 → 10) with hand-set weights: logits that a few lines here compute exactly.
struct LinearProbe {
    std::vector<double> w, b;  // w[c · 3072 + k]

    LinearProbe() {
        uint32_t state = 7;
        for (int64_t k = 0; k < kClasses * kPixels; ++k) w.push_back(static_cast<float>(static_cast<int>(lcg(state) >> 21) - 1024) * 1e-4f);
        for (int64_t c = 0; c < kClasses; ++c) b.push_back(static_cast<float>(0.1 * static_cast<double>(c) - 0.4));
    }

    // Writes the model spec and its weights (as a state_dict) into dir.
    void write(const test::TempDir& dir) const {
        std::ofstream(dir.file("probe.json"))
            << R"({"name": "linear_probe", "input": [3, 32, 32], "num_classes": 10, "layers": [)"
            << R"({"name": "flatten", "type": "flatten"}, {"name": "fc", "type": "linear", "in_features": 3072, "out_features": 10}]})";
        io::StateDict state;
        state.put("fc.weight", HostTensor<float>(Shape{kClasses, kPixels}, std::vector<float>(w.begin(), w.end())));
        state.put("fc.bias", HostTensor<float>(Shape{kClasses}, std::vector<float>(b.begin(), b.end())));
        io::save_state_dict(state, dir.file("probe.safetensors"));
    }

    // Pixels in [0, 1] → the seed's Normalize (float, as ToTensor + Normalize compute it).
    static std::vector<double> normalized(const std::vector<double>& v) {
        std::vector<double> x(v.size());
        for (int64_t k = 0; k < kPixels; ++k)
            x[k] = static_cast<float>((static_cast<float>(v[k]) - static_cast<float>(kMean[k / 1024])) / static_cast<float>(kStd[k / 1024]));
        return x;
    }
    std::vector<double> logits(const std::vector<double>& pixels) const {
        const std::vector<double> x = normalized(pixels);
        std::vector<double> out(b);
        for (int64_t c = 0; c < kClasses; ++c)
            for (int64_t k = 0; k < kPixels; ++k) out[c] += w[c * kPixels + k] * x[k];
        return out;
    }
};

std::vector<double> unit_pixels(const uint8_t* bytes) {
    std::vector<double> v(kPixels);
    for (int64_t k = 0; k < kPixels; ++k) v[k] = static_cast<float>(bytes[k]) / 255.0f;
    return v;
}

std::vector<double> mirrored(const std::vector<double>& v) {
    std::vector<double> m(v);
    for (int64_t row = 0; row < 96; ++row) std::reverse(m.begin() + row * 32, m.begin() + row * 32 + 32);
    return m;
}

// A view as torchvision's Pad(padding) + TenCrop(32) makes it: zeros around the image, the padded image mirrored
// for the second five, and the 32 x 32 window at five_crop's corner or centre (window 0-4: top left, top right,
// bottom left, bottom right, centre).
std::vector<double> ten_crop_view(const std::vector<double>& v, int64_t padding, int window, bool mirror) {
    const int64_t side = 32 + 2 * padding;
    std::vector<double> padded(3 * side * side, 0.0);
    for (int64_t c = 0; c < 3; ++c)
        for (int64_t y = 0; y < 32; ++y)
            for (int64_t x = 0; x < 32; ++x) padded[(c * side + y + padding) * side + x + padding] = v[(c * 32 + y) * 32 + x];
    if (mirror)
        for (int64_t row = 0; row < 3 * side; ++row) std::reverse(padded.begin() + row * side, padded.begin() + (row + 1) * side);
    const int64_t far = 2 * padding, top[5] = {0, 0, far, far, padding}, left[5] = {0, far, 0, far, padding};
    std::vector<double> out(kPixels);
    for (int64_t c = 0; c < 3; ++c)
        for (int64_t y = 0; y < 32; ++y)
            for (int64_t x = 0; x < 32; ++x)
                out[(c * 32 + y) * 32 + x] = padded[(c * side + top[window] + y) * side + left[window] + x];
    return out;
}

// The mean of the probe's logits over the five windows (and, with `mirrored_too`, their mirror images).
std::vector<double> ten_crop_logits(const LinearProbe& probe, const std::vector<double>& v, int64_t padding,
                                    bool mirrored_too) {
    std::vector<double> mean(kClasses, 0.0);
    const int views = mirrored_too ? 10 : 5;
    for (int k = 0; k < views; ++k) {
        const std::vector<double> logits = probe.logits(ten_crop_view(v, padding, k % 5, k >= 5));
        for (int64_t c = 0; c < kClasses; ++c) mean[c] += logits[c] / views;
    }
    return mean;
}

int64_t argmax(const std::vector<double>& v) { return std::max_element(v.begin(), v.end()) - v.begin(); }

std::vector<double> softmax(std::vector<double> v) {
    const double top = *std::max_element(v.begin(), v.end());
    double total = 0;
    for (double& x : v) total += x = std::exp(x - top);
    for (double& x : v) x /= total;
    return v;
}

// Random records; every other label is the probe's own prediction, so the accuracy is neither 0 nor 100%.
struct ProbeData {
    std::vector<uint8_t> images;
    std::vector<int64_t> labels;

    ProbeData(const LinearProbe& probe, int64_t count) {
        uint32_t state = 11;
        for (int64_t k = 0; k < count * kPixels; ++k) images.push_back(static_cast<uint8_t>(lcg(state) >> 24));
        for (int64_t n = 0; n < count; ++n)
            labels.push_back(n % 2 == 0 ? argmax(probe.logits(unit_pixels(&images[n * kPixels]))) : n % kClasses);
    }
};


// "  name  45.000% (9/20)" lines of the per-class table: correct and total per class, in order.
std::vector<std::pair<int64_t, int64_t>> per_class_counts(const std::string& output) {
    std::vector<std::pair<int64_t, int64_t>> counts;
    const std::regex pattern(R"(\n\s+\S+\s+[0-9.]+% \((\d+)/(\d+)\))");
    for (std::sregex_iterator it(output.begin(), output.end(), pattern), end; it != end; ++it)
        counts.emplace_back(std::stoll((*it)[1]), std::stoll((*it)[2]));
    return counts;
}

// A small_cnn checkpoint of one short run on the synthetic set, made once for the tests that need one.
struct TrainedRun {
    test::TempDir dir;
    std::string checkpoint, log;
    TrainedRun() {
        const test::Outcome run = test::run_program(
            CUDACNN_TRAIN_BINARY,
            fmt::format("--model small_cnn --epochs 1 --synthetic-size 300,120 -b 32 --lr 3e-3 --device cpu "
                        "--output-dir {} --metrics {}", dir.file("runs"), dir.file("metrics.csv")),
            dir.path());
        REQUIRE(run.exit_code == 0);
        checkpoint = dir.file("runs/checkpoint-epoch-001.safetensors");
        log = run.output;
    }
};
const TrainedRun& trained_run() {
    static const TrainedRun run;
    return run;
}

}  // namespace

TEST_CASE("cudacnn-eval on a checkpoint: its accuracy is cudacnn-train's, its counts the argmax of its logits", "[eval]") {
    const TrainedRun& trained = trained_run();
    const test::TempDir dir;
    const test::Outcome run = eval(fmt::format("--checkpoint {} --logits {} --confusion {}", trained.checkpoint,
                                               dir.file("logits.csv"), dir.file("confusion.png")), dir);
    INFO(run.output);
    REQUIRE(run.exit_code == 0);
    // The trainer's test pass (its device metrics) and this one (argmax on the host) agree.
    std::smatch trained_accuracy;
    REQUIRE(std::regex_search(trained.log, trained_accuracy, std::regex(R"(Test accuracy: ([0-9.]+)%)")));
    CHECK_THAT(run.output, Catch::Contains("Test accuracy: " + trained_accuracy[1].str() + "% ("));

    const std::vector<test::CsvRow> rows = test::read_logits_csv(dir.file("logits.csv"));
    REQUIRE(rows.size() == 120);
    std::vector<std::vector<int64_t>> confusion(kClasses, std::vector<int64_t>(kClasses, 0));
    int64_t correct = 0;
    for (std::size_t n = 0; n < rows.size(); ++n) {
        CHECK(rows[n].index == static_cast<int64_t>(n));
        CHECK(rows[n].label == static_cast<int64_t>(n) % kClasses);  // synthetic record i has label i % 10
        REQUIRE(rows[n].logits.size() == kClasses);
        const int64_t predicted = argmax(rows[n].logits);
        confusion[rows[n].label][predicted] += 1;
        correct += predicted == rows[n].label ? 1 : 0;
    }
    CHECK_THAT(run.output, Catch::Contains(fmt::format("({}/120)", correct)));
    const auto counts = per_class_counts(run.output);
    REQUIRE(counts.size() == kClasses);
    for (int64_t c = 0; c < kClasses; ++c) {
        CHECK(counts[c].first == confusion[c][c]);
        CHECK(counts[c].second == 12);
    }
    const test::DecodedPng png = test::decode_png(dir.file("confusion.png"));
    CHECK(png.width > 300);
    CHECK(png.height > 300);
    CHECK(png.colours().size() > 10);  // white, black text, several shades of blue
}

TEST_CASE("cudacnn-eval: logits, accuracy, confusion counts, TTA and FGSM of a hand-set linear model", "[eval]") {
    const test::TempDir dir;
    const LinearProbe probe;
    probe.write(dir);
    const ProbeData data(probe, 40);
    test::write_cifar10_folder(dir.path(), data.images, data.labels);
    const std::string model = fmt::format("--weights {} --model {} --dataset cifar10 --data {} --device cpu -b 16",
                                          dir.file("probe.safetensors"), dir.file("probe.json"), dir.path());

    SECTION("logits and counts") {
        const test::Outcome run = eval(model + " --logits " + dir.file("logits.csv"), dir);
        INFO(run.output);
        REQUIRE(run.exit_code == 0);
        const std::vector<test::CsvRow> rows = test::read_logits_csv(dir.file("logits.csv"));
        REQUIRE(rows.size() == 40);
        int64_t correct = 0;
        std::vector<int64_t> class_correct(kClasses, 0), class_total(kClasses, 0);
        for (int64_t n = 0; n < 40; ++n) {
            const std::vector<double> expected = probe.logits(unit_pixels(&data.images[n * kPixels]));
            for (int64_t c = 0; c < kClasses; ++c) CHECK(std::abs(rows[n].logits[c] - expected[c]) <= 1e-4);
            const bool right = argmax(expected) == data.labels[n];
            correct += right ? 1 : 0;
            class_correct[data.labels[n]] += right ? 1 : 0;
            class_total[data.labels[n]] += 1;
        }
        CHECK(correct >= 20);  // the even records at least
        CHECK(correct < 40);
        CHECK_THAT(run.output, Catch::Contains(fmt::format("Test accuracy: {:.3f}% ({}/40)", 100.0 * correct / 40, correct)));
        const auto counts = per_class_counts(run.output);
        REQUIRE(counts.size() == kClasses);
        for (int64_t c = 0; c < kClasses; ++c) CHECK(counts[c] == std::make_pair(class_correct[c], class_total[c]));
    }
    SECTION("--tta --tta-views flip averages the logits of each image and its mirror image; --limit") {
        const test::Outcome run = eval(model + " --tta --tta-views flip --limit 9 --logits " + dir.file("tta.csv"), dir);
        INFO(run.output);
        REQUIRE(run.exit_code == 0);
        CHECK_THAT(run.output, Catch::Contains("test-time augmentation (flip): the mean of the logits of each image and "
                                               "of its mirror image") && Catch::Contains("(9 images)"));
        const std::vector<test::CsvRow> rows = test::read_logits_csv(dir.file("tta.csv"));
        REQUIRE(rows.size() == 9);
        for (int64_t n = 0; n < 9; ++n) {
            const std::vector<double> v = unit_pixels(&data.images[n * kPixels]);
            const std::vector<double> plain = probe.logits(v), flipped = probe.logits(mirrored(v));
            for (int64_t c = 0; c < kClasses; ++c) CHECK(std::abs(rows[n].logits[c] - 0.5 * (plain[c] + flipped[c])) <= 1e-4);
        }
    }
    SECTION("--tta averages the logits of the 10 TenCrop views of the image padded by 4; crops padded by 2") {
        const test::Outcome run = eval(model + " --tta --limit 7 --logits " + dir.file("ten.csv"), dir);
        INFO(run.output);
        REQUIRE(run.exit_code == 0);
        CHECK_THAT(run.output, Catch::Contains("test-time augmentation (all): the mean of the logits of 10 views") &&
                                   Catch::Contains("zero-padded by 4 pixels, each as is and mirrored"));
        const test::Outcome crops = eval(model + " --tta --tta-views crops --tta-padding 2 --limit 7 --logits " +
                                         dir.file("five.csv"), dir);
        INFO(crops.output);
        REQUIRE(crops.exit_code == 0);
        CHECK_THAT(crops.output, Catch::Contains("(crops): the mean of the logits of 5 views") &&
                                     Catch::Contains("zero-padded by 2 pixels\n"));
        const std::vector<test::CsvRow> ten = test::read_logits_csv(dir.file("ten.csv"));
        const std::vector<test::CsvRow> five = test::read_logits_csv(dir.file("five.csv"));
        REQUIRE(ten.size() == 7);
        REQUIRE(five.size() == 7);
        double largest_shift = 0;  // from the plain logits: the views are not the image again
        for (int64_t n = 0; n < 7; ++n) {
            const std::vector<double> v = unit_pixels(&data.images[n * kPixels]);
            const std::vector<double> all = ten_crop_logits(probe, v, 4, true), windows = ten_crop_logits(probe, v, 2, false);
            const std::vector<double> plain = probe.logits(v);
            for (int64_t c = 0; c < kClasses; ++c) {
                CHECK(std::abs(ten[n].logits[c] - all[c]) <= 1e-4);
                CHECK(std::abs(five[n].logits[c] - windows[c]) <= 1e-4);
                largest_shift = std::max(largest_shift, std::abs(all[c] - plain[c]));
            }
        }
        CHECK(largest_shift > 0.01);
    }
    SECTION("--fgsm: the accuracy after each pixel moves by eps against the sign of the gradient") {
        const double eps = 4.0 / 255.0;
        int64_t correct = 0;
        for (int64_t n = 0; n < 40; ++n) {
            const std::vector<double> v = unit_pixels(&data.images[n * kPixels]);
            const std::vector<double> p = softmax(probe.logits(v));
            std::vector<double> attacked(v);
            for (int64_t k = 0; k < kPixels; ++k) {
                double g = 0;  // d loss / d x_k of the cross-entropy: Σ_c w[c][k] (p_c − [c = label])
                for (int64_t c = 0; c < kClasses; ++c) g += probe.w[c * kPixels + k] * (p[c] - (c == data.labels[n] ? 1 : 0));
                attacked[k] = std::clamp(v[k] + eps * (g > 0 ? 1 : g < 0 ? -1 : 0), 0.0, 1.0);
            }
            correct += argmax(probe.logits(attacked)) == data.labels[n] ? 1 : 0;
        }
        const test::Outcome run = eval(model + " --fgsm 4/255", dir);
        INFO(run.output);
        REQUIRE(run.exit_code == 0);
        CHECK_THAT(run.output, Catch::Contains(fmt::format("FGSM (eps {:g} = 4.00/255): accuracy {:.3f}% ({}/40)", eps,
                                                           100.0 * correct / 40, correct)));
        const test::Outcome none = eval(model + " --fgsm 0", dir);
        std::smatch clean;
        REQUIRE(std::regex_search(none.output, clean, std::regex(R"(Test accuracy: [0-9.]+% \((\d+)/40\))")));
        CHECK_THAT(none.output, Catch::Contains("accuracy " ) && Catch::Contains("(" + clean[1].str() + "/40), clean"));
    }
}

TEST_CASE("cudacnn-eval --predict: top-k softmax probabilities of PNG and JPEG files of any size", "[eval]") {
    const test::TempDir dir;
    const LinearProbe probe;
    probe.write(dir);
    // A 32x32 PNG goes in unchanged, so its probabilities are the probe's on its pixels.
    viz::Canvas picture(32, 32);
    uint32_t state = 3;
    std::vector<uint8_t> planes(kPixels);
    for (int64_t y = 0; y < 32; ++y)
        for (int64_t x = 0; x < 32; ++x) {
            const viz::Rgb colour{static_cast<uint8_t>(lcg(state) >> 24), static_cast<uint8_t>(lcg(state) >> 24),
                                  static_cast<uint8_t>(lcg(state) >> 24)};
            picture.set(x, y, colour);
            planes[y * 32 + x] = colour.r, planes[1024 + y * 32 + x] = colour.g, planes[2048 + y * 32 + x] = colour.b;
        }
    viz::write_png(picture, dir.file("exact.png"));
    viz::write_png(viz::Canvas(64, 48, viz::Rgb{200, 30, 90}), dir.file("wide.png"));
    const test::Outcome run = eval(fmt::format("--weights {} --model {} --predict {} {} {} --top-k 3",
                                               dir.file("probe.safetensors"), dir.file("probe.json"), dir.file("exact.png"),
                                               dir.file("wide.png"), std::string(CUDACNN_FIXTURES_DIR) + "/cifar10_cat.jpg"),
                                   dir);
    INFO(run.output);
    REQUIRE(run.exit_code == 0);
    const std::vector<double> p = softmax(probe.logits(unit_pixels(planes.data())));
    std::vector<int64_t> order(kClasses);
    for (int64_t c = 0; c < kClasses; ++c) order[c] = c;
    std::stable_sort(order.begin(), order.end(), [&](int64_t a, int64_t b) { return p[a] > p[b]; });
    CHECK_THAT(run.output, Catch::Contains(fmt::format("exact.png (32x32): 1. {} {:.2f}% | 2. {} {:.2f}% | 3. {} {:.2f}%\n",
                                                       order[0], 100 * p[order[0]], order[1], 100 * p[order[1]],
                                                       order[2], 100 * p[order[2]])));
    CHECK_THAT(run.output, Catch::Contains("wide.png (64x48): 1. ") && Catch::Contains("cifar10_cat.jpg (32x32): 1. "));
    CHECK_THAT(run.output, !Catch::Contains("4. "));

    // --tta: the probabilities of the mean logits of the views.
    const test::Outcome tta = eval(fmt::format("--weights {} --model {} --predict {} --top-k 2 --tta --tta-padding 3",
                                               dir.file("probe.safetensors"), dir.file("probe.json"), dir.file("exact.png")),
                                   dir);
    INFO(tta.output);
    REQUIRE(tta.exit_code == 0);
    const std::vector<double> q = softmax(ten_crop_logits(probe, unit_pixels(planes.data()), 3, true));
    std::stable_sort(order.begin(), order.end(), [&](int64_t a, int64_t b) { return q[a] > q[b]; });
    CHECK_THAT(tta.output, Catch::Contains("10 views") &&
                               Catch::Contains(fmt::format("exact.png (32x32): 1. {} {:.2f}% | 2. {} {:.2f}%\n", order[0],
                                                           100 * q[order[0]], order[1], 100 * q[order[1]])));
}

TEST_CASE("image resize: PIL's bilinear filter, widened when shrinking; centre crop keeps the aspect ratio", "[eval]") {
    // A horizontal ramp 0, 8, 16, ... halved: output x takes source 2x−1 … 2x+2 with weights 1/8, 3/8, 3/8, 1/8
    // (the triangle of width 2·2 around 2x + 1), renormalized where it leaves the image.
    data::Image ramp{4, 16, std::vector<uint8_t>(3 * 4 * 16)};
    for (int64_t c = 0; c < 3; ++c)
        for (int64_t y = 0; y < 4; ++y)
            for (int64_t x = 0; x < 16; ++x) ramp.pixels[(c * 4 + y) * 16 + x] = static_cast<uint8_t>(8 * x);
    const data::Image half = data::resize_image(ramp, 2, 8);
    CHECK(half.at(0, 0, 0) == std::lround((3 * 0 + 3 * 8 + 1 * 16) / 7.0));
    for (int64_t x = 1; x < 7; ++x) CHECK(half.at(1, 1, x) == 16 * x + 4);  // (8(2x−1) + 3·8(2x) + 3·8(2x+1) + 8(2x+2)) / 8
    CHECK(half.at(2, 0, 7) == std::lround((1 * 104 + 3 * 112 + 3 * 120) / 7.0));
    // A 40x20 image with a 20x20 red centre: the centre crop is the red square, whatever it is resized to.
    data::Image wide{20, 40, std::vector<uint8_t>(3 * 20 * 40, 0)};
    for (int64_t y = 0; y < 20; ++y)
        for (int64_t x = 10; x < 30; ++x) wide.pixels[y * 40 + x] = 255;
    const data::Image fitted = data::fit_image(wide, 8, 8);
    CHECK(std::all_of(fitted.pixels.begin(), fitted.pixels.begin() + 64, [](uint8_t v) { return v == 255; }));
    CHECK(std::all_of(fitted.pixels.begin() + 64, fitted.pixels.end(), [](uint8_t v) { return v == 0; }));
    // The JPEG sample decodes to its 32x32 pixels.
    const data::Image cat = data::read_image(std::string(CUDACNN_FIXTURES_DIR) + "/cifar10_cat.jpg");
    CHECK(cat.height == 32);
    CHECK(cat.width == 32);
}

TEST_CASE("cudacnn-eval --dataset folder reads the ImageFolder layout", "[eval]") {
    const test::TempDir dir;
    const LinearProbe probe;
    probe.write(dir);
    for (const char* name : {"cat", "ship"}) {
        std::filesystem::create_directories(dir.file(std::string("images/test/") + name));
        std::filesystem::copy_file(fmt::format("{}/cifar10_{}.jpg", CUDACNN_FIXTURES_DIR, name),
                                   dir.file(fmt::format("images/test/{}/0000.jpg", name)));
    }
    const test::Outcome two_classes = eval(fmt::format("--weights {} --model {} --dataset folder --data {}",
                                                       dir.file("probe.safetensors"), dir.file("probe.json"),
                                                       dir.file("images")), dir);
    CHECK(two_classes.exit_code == 1);
    CHECK_THAT(two_classes.output, Catch::Contains("has 10 outputs but the dataset") && Catch::Contains("has 2 classes"));
}

TEST_CASE("cudacnn-eval: every bad flag exits 2 and every bad file exits 1, each with a message", "[eval]") {
    const test::TempDir dir;
    const LinearProbe probe;
    probe.write(dir);
    const std::string weights = fmt::format("--weights {} --model {}", dir.file("probe.safetensors"), dir.file("probe.json"));
    std::ofstream(dir.file("notes.txt")) << "not an image";
    const std::vector<std::pair<std::string, std::string>> usage = {
        {"", "give the model's weights: --checkpoint PATH"},
        {"--checkpoint a --weights b", "--checkpoint and --weights both given"},
        {weights, "a weights file does not say which data it was trained on"},
        {weights + " --dataset imagenet", "--dataset imagenet: use cifar10, cifar100, synthetic or folder"},
        {weights + " --dataset cifar10", "--dataset cifar10 needs --data DIR"},
        {weights + " --dataset synthetic --limit 0", "--limit 0: must be at least 1"},
        {weights + " --dataset synthetic --fgsm 2", "--fgsm 2: must be in [0, 1]"},
        {weights + " --dataset synthetic --fgsm x/0", "--fgsm x/0: not a number"},
        {weights + " --dataset synthetic --device tpu", "--device tpu: use auto, cuda, cpu or cpu-ref"},
        {weights + " --dataset synthetic -b 0", "--batch-size 0: must be at least 1"},
        {weights + " --dataset synthetic --top-k 3", "--top-k goes with --predict"},
        {weights + " --predict", "--predict needs a value"},
        {weights + " --dataset synthetic --tta=yes", "--tta takes no value"},
        {weights + " --dataset synthetic --tta --tta-views rotate", "--tta-views rotate: use flip, crops or all"},
        {weights + " --dataset synthetic --tta --tta-padding -1", "--tta-padding -1: must be at least 0"},
        {weights + " --dataset synthetic --tta --tta-padding four", "--tta-padding four: not a whole number"},
        {weights + " --dataset synthetic --tta-views crops", "--tta-views goes with --tta"},
        {weights + " --dataset synthetic --tta-padding 2", "--tta-padding goes with --tta"},
        {weights + " --dataset synthetic --tta --tta-views flip --tta-padding 2",
         "--tta-padding goes with the windows (--tta-views crops or all)"},
        {weights + " --datset synthetic", "unknown flag '--datset'; did you mean '--dataset'?"},
        {weights + " stray", "unexpected argument 'stray'"},
    };
    for (const auto& [args, message] : usage) {
        const test::Outcome run = eval(args, dir);
        INFO(args << "\n" << run.output);
        CHECK(run.exit_code == 2);
        CHECK_THAT(run.output, Catch::Contains(message));
    }
    const std::vector<std::pair<std::string, std::string>> failures = {
        {"--checkpoint " + dir.file("missing.safetensors"), "missing.safetensors"},
        {"--checkpoint " + dir.file("probe.safetensors"), "not a cudacnn-train checkpoint"},
        {"--weights " + dir.file("probe.safetensors") + " --model small_cnn --predict x.png", "missing keys"},
        {"--weights " + dir.file("probe.safetensors") + " --predict x.png", "does not say which model"},
        {weights + " --predict " + dir.file("notes.txt"), "neither PNG nor JPEG"},
        {weights + " --predict " + dir.file("absent.png"), "absent.png: cannot open the file"},
        {weights + " --dataset cifar10 --data " + dir.file("nowhere"), "nowhere"},
        {weights + " --dataset folder --data " + dir.file("nowhere"), "image folder"},
        {weights + " --dataset synthetic --limit 5 --confusion " + dir.file("no/such/dir/c.png"), "cannot create the file"},
        {weights + " --dataset synthetic --limit 5 --logits " + dir.file("no/such/dir/l.csv"), "--logits"},
        {weights + " --dataset synthetic --limit 5 --tta --tta-padding 32",
         "--tta-padding 32: the corner windows of a 32x32 image padded by 32 would hold no pixel of the image; use 0 to 31"},
    };
    for (const auto& [args, message] : failures) {
        const test::Outcome run = eval(args, dir);
        INFO(args << "\n" << run.output);
        CHECK(run.exit_code == 1);
        CHECK_THAT(run.output, Catch::Contains(message));
    }
    const test::Outcome help = eval("--help", dir);
    CHECK(help.exit_code == 0);
    CHECK_THAT(help.output, Catch::Contains("--predict IMAGE...") && Catch::Contains("--fgsm EPS") &&
                                Catch::Contains("--tta-views flip|crops|all") && Catch::Contains("--tta-padding P"));
}
