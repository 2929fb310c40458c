// PyTorch interchange for evaluation: small_cnn weights exported by PyTorch (tools/fixtures/eval_interop.py)
// evaluated by cudacnn-eval give PyTorch's logits and predictions; cudacnn-train's export of them holds the
// very tensors PyTorch wrote (so PyTorch loading our export computes the same logits).
#include <catch2/catch.hpp>

#include <cmath>
#include <fstream>
#include <sstream>

#include <fmt/format.h>

#include "cudacnn/io/state_dict.hpp"
#include "cudacnn/safetensors.hpp"
#include "support/programs.hpp"
#include "support/temp_files.hpp"

using namespace cudacnn;

TEST_CASE("PyTorch's small_cnn weights evaluated by cudacnn-eval give PyTorch's logits; the export round-trips", "[eval][interop]") {
    const std::string fixtures = CUDACNN_FIXTURES_DIR;
    const SafetensorsFile fixture = SafetensorsFile::read(fixtures + "/eval_interop.safetensors");
    const HostTensor<uint8_t> images = fixture.get<uint8_t>("images");
    const HostTensor<int64_t> labels = fixture.get<int64_t>("labels");
    const HostTensor<double> expected = fixture.get<double>("logits");  // (N, 10), float64 from float32 weights
    const int64_t n = labels.numel();
    const test::TempDir dir;
    test::write_cifar10_folder(dir.path(), images.values(), labels.values());
    const std::string weights = fixtures + "/eval_interop_small_cnn.safetensors";

    const test::Outcome run = test::run_program(
        CUDACNN_EVAL_BINARY,
        fmt::format("--weights {} --model small_cnn --dataset cifar10 --data {} --device cpu --logits {}", weights,
                    dir.path(), dir.file("logits.csv")),
        dir.path());
    INFO(run.output);
    REQUIRE(run.exit_code == 0);
    std::ifstream csv(dir.file("logits.csv"));
    std::string line;
    std::getline(csv, line);
    for (int64_t i = 0; i < n; ++i) {
        REQUIRE(std::getline(csv, line));
        std::stringstream cells(line);
        std::string cell;
        std::getline(cells, cell, ',');
        std::getline(cells, cell, ',');
        std::vector<double> logits;
        while (std::getline(cells, cell, ',')) logits.push_back(std::stod(cell));
        REQUIRE(logits.size() == 10);
        int64_t ours = 0, theirs = 0;
        for (int64_t c = 0; c < 10; ++c) {
            // float32 forward against PyTorch's float64 one: a few ulps of the largest partial sums.
            CHECK(std::abs(logits[c] - expected[i * 10 + c]) <= 1e-4 * std::max(1.0, std::abs(expected[i * 10 + c])));
            if (logits[c] > logits[ours]) ours = c;
            if (expected[i * 10 + c] > expected[i * 10 + theirs]) theirs = c;
        }
        CHECK(ours == theirs);
    }

    // Our export of the loaded weights: the same names, order and values as PyTorch's file.
    const test::Outcome exported = test::run_program(
        CUDACNN_TRAIN_BINARY,
        fmt::format("--model small_cnn --dataset cifar10 --data {} --evaluate --epochs 0 --init-weights {} --export {} "
                    "--device cpu --output-dir {}", dir.path(), weights, dir.file("ours.safetensors"), dir.file("runs")),
        dir.path());
    INFO(exported.output);
    REQUIRE(exported.exit_code == 0);
    const io::StateDict theirs = io::load_state_dict(weights), ours = io::load_state_dict(dir.file("ours.safetensors"));
    REQUIRE(ours.names() == theirs.names());
    for (const std::string& name : theirs.names()) {
        INFO(name);
        if (theirs.dtype(name) == DType::i64) {
            CHECK(ours.i64(name).values() == theirs.i64(name).values());
        } else {
            CHECK(ours.f32(name).values() == theirs.f32(name).values());
        }
    }
}
