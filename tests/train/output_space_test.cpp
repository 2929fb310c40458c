// The free-space check before training: an error when not even one checkpoint fits, a warning when not all do.
#include <catch2/catch.hpp>

#include <string>

#include "cudacnn/error.hpp"
#include "src/train/output_space.hpp"
#include "support/temp_files.hpp"

using Catch::Matchers::Contains;
using cudacnn::train::output_space_verdict;

namespace {

constexpr std::uintmax_t kMiB = 1024 * 1024;

}  // namespace

TEST_CASE("no room for one checkpoint (and its temporary copy) stops the run before training", "[train][errors]") {
    CHECK_THROWS_WITH(output_space_verdict(3 * kMiB, 2 * kMiB, 5, "runs/a", "--output-dir"),
                      Contains("--output-dir runs/a: 3.0 MiB free, but one checkpoint needs about 4.0 MiB") &&
                          Contains("free some space or choose another --output-dir"));
}

TEST_CASE("room for some checkpoints but not all is a warning, enough room says nothing", "[train][errors]") {
    const std::string warning = output_space_verdict(5 * kMiB, 2 * kMiB, 5, "runs/a", "--output-dir");
    CHECK_THAT(warning, Contains("warning: --output-dir runs/a: 5.0 MiB free, but this run writes 5 checkpoints of "
                                 "about 2.0 MiB (12.0 MiB in all)"));
    CHECK(output_space_verdict(12 * kMiB, 2 * kMiB, 5, "runs/a", "--output-dir").empty());
    CHECK(output_space_verdict(0, 2 * kMiB, 0, "runs/a", "--output-dir").empty());  // nothing to write
}

TEST_CASE("the real folder's free space: a small checkpoint fits the test machine's temporary folder",
          "[train][errors]") {
    cudacnn::test::TempDir folder;
    CHECK(cudacnn::train::check_output_space(folder.path(), 1024, 3, "--output-dir").empty());
}
