// The fuzz targets' inputs replayed through the normal build (tests/fuzz/parsers.hpp, the same entry points the
// libFuzzer targets call): every input that once was a finding (tests/fuzz/regressions/<target>/) and every
// seed (tests/fuzz/corpus/<target>/) must parse or give a cudacnn::Error, never another exception; a crash or
// a sanitizer report (emu-asan) fails the program.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include "fuzz/parsers.hpp"

namespace {

namespace fs = std::filesystem;

const fs::path kFuzzDir = fs::path(CUDACNN_FIXTURES_DIR) / ".." / "fuzz";

std::vector<uint8_t> read_bytes(const fs::path& path) {
    std::ifstream in(path, std::ios::binary);
    REQUIRE(in.good());
    return std::vector<uint8_t>((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

// The files of folder/<target>/ for every target, sorted; returns how many were fed.
int replay(const std::string& folder) {
    int fed = 0;
    for (const auto& [target, parse] : cudacnn::fuzz::parsers()) {
        const fs::path dir = kFuzzDir / folder / target;
        if (!fs::is_directory(dir)) continue;
        std::vector<fs::path> files;
        for (const auto& entry : fs::directory_iterator(dir)) files.push_back(entry.path());
        std::sort(files.begin(), files.end());
        for (const fs::path& file : files) {
            const std::vector<uint8_t> bytes = read_bytes(file);
            INFO(file.string());
            CHECK_NOTHROW(parse(bytes.data(), bytes.size()));
            ++fed;
        }
    }
    return fed;
}

}  // namespace

TEST_CASE("fuzz regressions: every saved finding is now a clean error", "[fuzz]") {
    CHECK(replay("regressions") > 0);
}

TEST_CASE("fuzz corpus: every seed parses or gives a clean error", "[fuzz]") {
    // Every target has seeds.
    for (const auto& [target, parse] : cudacnn::fuzz::parsers()) {
        INFO(target);
        CHECK(fs::is_directory(kFuzzDir / "corpus" / target));
    }
    CHECK(replay("corpus") > 0);
}

TEST_CASE("fuzz regressions: an image header too large for memory is refused before any pixel is allocated", "[fuzz]") {
    for (const char* name : {"png_60000x60000_header.png", "jpeg_65000x65000_header.jpg"}) {
        INFO(name);
        const std::string path = (kFuzzDir / "regressions" / "image" / name).string();
        CHECK_THROWS_WITH(cudacnn::data::read_image(path), Catch::Contains("pixels is more than the 67108864 (8192x8192)"));
    }
}
