// cudacnn-eval on a subset of the real CIFAR-10 (the folder in CUDACNN_CIFAR10_DIR; skipped when unset): a
// small_cnn checkpoint that cudacnn-train makes from 1,000 training images, evaluated on the first 200 test
// images; the printed accuracy, per-class counts and confusion matrix against the argmax of the --logits CSV
// and the labels read here from test_batch.bin, and against cudacnn-train's own test accuracy.
#include <catch2/catch.hpp>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <regex>
#include <sstream>

#include <fmt/format.h>

#include "support/programs.hpp"
#include "support/temp_files.hpp"

using namespace cudacnn;

namespace {

constexpr int64_t kImages = 200, kClasses = 10, kRecord = 3073;
const char* const kNames[kClasses] = {"airplane", "automobile", "bird", "cat", "deer",
                                      "dog", "frog", "horse", "ship", "truck"};

// The first `count` labels of test_batch.bin, in the folder or its cifar-10-batches-bin (as the loader takes).
std::vector<int64_t> read_test_labels(const std::string& folder, int64_t count) {
    std::string path = folder + "/test_batch.bin";
    if (!std::filesystem::exists(path)) path = folder + "/cifar-10-batches-bin/test_batch.bin";
    std::ifstream file(path, std::ios::binary);
    INFO("reading " << path);
    REQUIRE(file);
    std::vector<int64_t> labels;
    std::vector<char> record(kRecord);
    for (int64_t n = 0; n < count && file.read(record.data(), kRecord); ++n)
        labels.push_back(static_cast<uint8_t>(record[0]));
    REQUIRE(static_cast<int64_t>(labels.size()) == count);
    return labels;
}


}  // namespace

TEST_CASE("cudacnn-eval on 200 real CIFAR-10 test images: accuracy and confusion counts from its logits", "[eval][cifar10]") {
    const char* data = std::getenv("CUDACNN_CIFAR10_DIR");
    if (data == nullptr || *data == '\0') {
        WARN("skipped: set CUDACNN_CIFAR10_DIR to a folder with CIFAR-10's binary version to run this test");
        return;
    }
    const test::TempDir dir;
    const test::Outcome trained = test::run_program(
        CUDACNN_TRAIN_BINARY,
        fmt::format("--model small_cnn --dataset cifar10 --data {} --epochs 1 --limit-train 1000 --limit-test {} "
                    "-b 50 --lr 3e-3 --device cpu --output-dir {}", data, kImages, dir.file("runs")),
        dir.path());
    INFO(trained.output);
    REQUIRE(trained.exit_code == 0);
    const test::Outcome run = test::run_program(
        CUDACNN_EVAL_BINARY,
        fmt::format("--checkpoint {} --dataset cifar10 --data {} --limit {} --device cpu --logits {}",
                    dir.file("runs/checkpoint-epoch-001.safetensors"), data, kImages, dir.file("logits.csv")),
        dir.path());
    INFO(run.output);
    REQUIRE(run.exit_code == 0);
    CHECK_THAT(run.output, Catch::Contains(fmt::format("({} images)", kImages)));

    // The counts, from the labels read here and the argmax of the written logits.
    const std::vector<int64_t> labels = read_test_labels(data, kImages);
    const std::vector<test::CsvRow> rows = test::read_logits_csv(dir.file("logits.csv"));
    REQUIRE(static_cast<int64_t>(rows.size()) == kImages);
    std::vector<std::vector<int64_t>> confusion(kClasses, std::vector<int64_t>(kClasses, 0));
    int64_t correct = 0;
    for (int64_t n = 0; n < kImages; ++n) {
        CHECK(rows[n].index == n);
        CHECK(rows[n].label == labels[n]);
        REQUIRE(static_cast<int64_t>(rows[n].logits.size()) == kClasses);
        int64_t predicted = 0;
        for (int64_t c = 1; c < kClasses; ++c)
            if (rows[n].logits[c] > rows[n].logits[predicted]) predicted = c;
        confusion[labels[n]][predicted] += 1;
        correct += predicted == labels[n] ? 1 : 0;
    }
    const std::string accuracy = fmt::format("{:.3f}", 100.0 * static_cast<double>(correct) / kImages);
    CHECK_THAT(run.output, Catch::Contains(fmt::format("Test accuracy: {}% ({}/{})", accuracy, correct, kImages)));
    // cudacnn-train's test pass over the same 200 images (its device metrics) agrees.
    CHECK_THAT(trained.output, Catch::Contains(fmt::format("Test accuracy: {}%", accuracy)));
    CHECK(correct > kImages / 10);  // one short epoch beats chance (10%)

    // Per-class lines "  cat  45.000% (9/20)" and the confusion matrix rows "  cat  c0 … c9  45.000%".
    for (int64_t c = 0; c < kClasses; ++c) {
        int64_t total = 0;
        for (int64_t p = 0; p < kClasses; ++p) total += confusion[c][p];
        INFO("class " << kNames[c]);
        std::smatch line;
        REQUIRE(std::regex_search(run.output, line, std::regex(fmt::format(R"(\n\s*{}\s+([0-9.]+)% \((\d+)/(\d+)\))", kNames[c]))));
        CHECK(std::stoll(line[2]) == confusion[c][c]);
        CHECK(std::stoll(line[3]) == total);
        std::string row = fmt::format(R"(\n\s*{})", kNames[c]);
        for (int64_t p = 0; p < kClasses; ++p) row += fmt::format(R"(\s+{})", confusion[c][p]);
        CHECK(std::regex_search(run.output, std::regex(row + R"(\s+[0-9.]+%)")));
    }
}
