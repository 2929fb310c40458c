// cudacnn-train stops on a non-finite loss with a message naming the step and what to do; --detect-anomaly is
// a flag of its own, whose help says that it is slow.
#include <catch2/catch.hpp>

#include <filesystem>
#include <string>

#include <fmt/format.h>

#include "cudacnn/train/options.hpp"
#include "support/programs.hpp"
#include "support/temp_files.hpp"

using namespace cudacnn;
namespace fs = std::filesystem;

namespace {

using test::Outcome;

Outcome run_train(const std::string& args, const fs::path& folder) {
    return test::run_program(CUDACNN_TRAIN_BINARY, args, folder.string());
}

}  // namespace

TEST_CASE("cudacnn-train: a learning rate that blows up stops the run with the step and what to do", "[cli][nonfinite]") {
    const test::TempDir temp;
    const fs::path folder = temp.path();
    const Outcome run = run_train(
        fmt::format("--model small_cnn --device cpu --epochs 1 -b 8 --log-every 2 --synthetic-size 32,8 "
                    "--optimizer sgd --lr 1e38 --output-dir {}",
                    (folder / "run").string()),
        folder);
    INFO(run.output);
    CHECK(run.exit_code == 1);
    CHECK_THAT(run.output, Catch::Contains("step 1 (counting from 0): the loss is"));
    CHECK_THAT(run.output, Catch::Contains("--detect-anomaly") && Catch::Contains("--resume"));
    CHECK_THAT(run.output, !Catch::Contains("Epoch: 1 |"));
}

TEST_CASE("cudacnn-train: --detect-anomaly is a switch whose help says it is slow", "[cli][nonfinite]") {
    CHECK_FALSE(train::parse_train_args({}).options.detect_anomaly);
    CHECK(train::parse_train_args({"--detect-anomaly"}).options.detect_anomaly);
    const test::TempDir temp;
    const Outcome help = run_train("--help", temp.path());
    CHECK_THAT(help.output, Catch::Contains("--detect-anomaly") && Catch::Contains("slow"));
}
