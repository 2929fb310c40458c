// What cudacnn-train says when the GPU cannot do the job: no usable GPU with --device cuda (in the cuda flavour
// on a machine without one, as in CI), and out of device memory (on the emulator, shrunk to a small card).
// Each is one line naming the cause and what to change, and the program exits with status 1, never a crash.
#include <catch2/catch.hpp>

#include <sstream>
#include <string>
#include <vector>

#include "cudacnn/device.hpp"
#include "cudacnn/train/trainer.hpp"
#include "support/temp_files.hpp"
#if CUDACNN_EMU
#include "cuda/emu/internal.hpp"
#endif

using Catch::Matchers::Contains;
using Catch::Matchers::StartsWith;
using namespace cudacnn;

namespace {

struct Outcome {
    int exit_code;
    std::string err;
};

Outcome train_on_cuda(const test::TempDir& folder, const std::string& batch_size) {
    std::ostringstream out, err;
    const std::vector<std::string> args{"--device",    "cuda",   "--dataset",      "synthetic", "--synthetic-size",
                                        "256,64",      "--epochs", "1",            "--batch-size", batch_size,
                                        "--output-dir", folder.path()};
    const int code = train::train_main(args, out, err);
    return {code, err.str()};
}

// One line ending in a newline, without the source location that only developers need.
bool one_clean_line(const std::string& text) {
    return !text.empty() && text.find('\n') == text.size() - 1 && text.find(".cpp:") == std::string::npos;
}

}  // namespace

TEST_CASE("--device cuda without a usable GPU: one line that says why and to use --device cpu", "[train][errors]") {
    if (gpu_status().available) {
        WARN("skipped: this machine has a usable GPU (" << gpu_status().description << ")");
        return;
    }
    test::TempDir folder;
    const Outcome outcome = train_on_cuda(folder, "32");
    CHECK(outcome.exit_code == 1);
    CHECK(one_clean_line(outcome.err));
    CHECK_THAT(outcome.err, StartsWith("cudacnn-train: error: --device cuda: no usable GPU here ("));
    CHECK_THAT(outcome.err, Contains(gpu_status().description));
    CHECK_THAT(outcome.err, Contains("use --device cpu"));
}

#if CUDACNN_EMU
TEST_CASE("out of device memory: what was needed, what the card has, and to lower --batch-size", "[train][errors]") {
    // A 16 MiB card: CifarCNN's activations at batch 512 need far more.
    struct SmallCard {
        SmallCard() { emu::set_device_memory_limit(std::size_t{16} << 20); }
        ~SmallCard() { emu::set_device_memory_limit(0); }
    } small_card;
    test::TempDir folder;
    const Outcome outcome = train_on_cuda(folder, "512");
    CHECK(outcome.exit_code == 1);
    CHECK(one_clean_line(outcome.err));
    CHECK_THAT(outcome.err, StartsWith("cudacnn-train: error: out of device memory: needed "));
    CHECK_THAT(outcome.err, Contains("of 16.0 MiB"));
    CHECK_THAT(outcome.err, Contains("lower the batch size (--batch-size"));
}
#endif
