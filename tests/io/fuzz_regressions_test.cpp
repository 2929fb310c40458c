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

#include "cudacnn/json_parse.hpp"
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

TEST_CASE("fuzz regressions: a JPEG that ends before its pixels is damaged, refused at once", "[fuzz]") {
    // 335 bytes whose header claims 8192 rows: libjpeg would fill 67M missing pixels with grey (minutes under the
    // fuzzer's sanitizers); like PIL ("image file is truncated") we refuse it at its premature end.
    const std::string path = (kFuzzDir / "regressions" / "image" / "jpeg_truncated_8192x8192.jpg").string();
    CHECK_THROWS_WITH(cudacnn::data::read_image(path),
                      Catch::Contains("damaged JPEG (Premature end of JPEG file)") && Catch::Contains(path));
}

TEST_CASE("fuzz regressions: JSON nested 60 000 deep is refused while parsing, before it can overflow the stack",
          "[fuzz]") {
    const fs::path dir = kFuzzDir / "regressions";
    const std::string nested = "JSON nested deeper than 64 levels";
    CHECK_THROWS_WITH(cudacnn::graph::load_model_spec((dir / "model_json" / "input_nested_60000_deep.json").string()),
                      Catch::Contains(nested));
    CHECK_THROWS_WITH(cudacnn::data::read_augment_spec((dir / "augment_json" / "size_nested_60000_deep.json").string()),
                      Catch::Contains(nested));
    CHECK_THROWS_WITH(cudacnn::SafetensorsFile::read((dir / "safetensors" / "shape_nested_60000_deep").string()),
                      Catch::Contains(nested));
    // 64 levels are still read.
    const auto nest = [](int levels) { return std::string(levels - 1, '[') + "{}" + std::string(levels - 1, ']'); };
    CHECK_NOTHROW(cudacnn::parse_json_limited("test", nest(64)));
    CHECK_THROWS_WITH(cudacnn::parse_json_limited("test", nest(65)), Catch::Contains(nested));
}

TEST_CASE("fuzz regressions: a cudacnn-bench --filter too long for std::regex's recursion is a usage error", "[fuzz]") {
    const std::string nested = std::string(20000, '(') + std::string(20000, ')');
    CHECK_THROWS_WITH(cudacnn::bench::parse_bench_args({"--filter", nested}),
                      Catch::Contains("40000 characters long; a filter has at most 256"));
    CHECK_NOTHROW(cudacnn::bench::parse_bench_args({"--filter", std::string(128, '(') + std::string(128, ')')}));
}

TEST_CASE("fuzz regressions: model spec sizes above 2^30 are refused (dilation 2^62 overflowed the output size)",
          "[fuzz]") {
    CHECK_THROWS_WITH(
        cudacnn::graph::load_model_spec((kFuzzDir / "regressions" / "model_json" / "conv2d_dilation_2pow62.json").string()),
        Catch::Contains("key 'dilation' must be at most 1073741824 (2^30), got 4611686018427387904"));
}
