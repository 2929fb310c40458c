// The safetensors reader and writer: files written by the Python side, round trips, and damaged files.
#include <catch2/catch.hpp>

#include <cstdio>
#include <fstream>
#include <string>

#include "cudacnn/safetensors.hpp"
#include "support/compare.hpp"

using namespace cudacnn;

namespace {

std::string temp_path(const std::string& name) { return "/tmp/cudacnn_test_" + name; }

void write_bytes(const std::string& path, const std::string& bytes) {
    std::ofstream(path, std::ios::binary) << bytes;
}

std::string with_header(const std::string& json, const std::string& data) {
    std::string out(8, '\0');
    for (int i = 0; i < 8; ++i) out[i] = static_cast<char>(uint64_t{json.size()} >> (8 * i) & 0xff);
    return out + json + data;
}

}  // namespace

TEST_CASE("reads a file written by tools/fixtures/safetensors_io.py", "[safetensors]") {
    const SafetensorsFile file = test::load_fixture("safetensors_sample");
    CHECK(file.names() == std::vector<std::string>{"labels", "num_batches_tracked", "running_var", "weight"});
    const auto weight = file.get<float>("weight");
    CHECK(weight.shape() == Shape{2, 3});
    CHECK(weight.values() == std::vector<float>{0.0f, 0.25f, 0.5f, 0.75f, 1.0f, 1.25f});
    CHECK(file.get<double>("running_var").values() == std::vector<double>{1.5, -2.25});
    const auto batches = file.get<int64_t>("num_batches_tracked");
    CHECK(batches.shape().rank() == 0);
    CHECK(batches[0] == 7);
    CHECK(file.get<int64_t>("labels").values() == std::vector<int64_t>{3, 0, 9});
    CHECK(file.tensor("weight").dtype == "F32");
}

TEST_CASE("write then read gives the same tensors", "[safetensors]") {
    SafetensorsFile out;
    out.put("a.weight", HostTensor<float>(Shape{3, 1, 2}, {1, 2, 3, 4, 5, 6}));
    out.put("b", HostTensor<double>(Shape{1}, {0.1}));
    out.put("c", HostTensor<int64_t>(Shape{2}, {-1, 1LL << 40}));
    const std::string path = temp_path("roundtrip.safetensors");
    out.write(path);
    const SafetensorsFile in = SafetensorsFile::read(path);
    CHECK(in.get<float>("a.weight").values() == std::vector<float>{1, 2, 3, 4, 5, 6});
    CHECK(in.get<float>("a.weight").shape() == Shape{3, 1, 2});
    CHECK(in.get<double>("b")[0] == 0.1);
    CHECK(in.get<int64_t>("c").values() == std::vector<int64_t>{-1, 1LL << 40});
    std::remove(path.c_str());
}

TEST_CASE("damaged files raise an Error naming the file and the problem", "[safetensors]") {
    const std::string path = temp_path("bad.safetensors");
    CHECK_THROWS_WITH(SafetensorsFile::read(temp_path("missing.safetensors")), Catch::Contains("cannot open"));
    write_bytes(path, "abc");
    CHECK_THROWS_WITH(SafetensorsFile::read(path), Catch::Contains(path) && Catch::Contains("too short"));
    write_bytes(path, with_header("{\"x\":", ""));
    CHECK_THROWS_WITH(SafetensorsFile::read(path), Catch::Contains("not valid JSON"));
    write_bytes(path, with_header(R"({"x":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})", "1234"));
    CHECK_THROWS_WITH(SafetensorsFile::read(path), Catch::Contains("'x'") && Catch::Contains("outside"));
    write_bytes(path, with_header(R"({"x":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}})", "12345678"));
    CHECK_THROWS_WITH(SafetensorsFile::read(path), Catch::Contains("needs 12 bytes"));
    write_bytes(path, with_header(R"({"x":{"dtype":"F32","shape":[2]}})", "12345678"));
    CHECK_THROWS_WITH(SafetensorsFile::read(path), Catch::Contains("malformed"));
    std::string header_too_long = with_header("{}", "");
    header_too_long[0] = 100;
    write_bytes(path, header_too_long);
    CHECK_THROWS_WITH(SafetensorsFile::read(path), Catch::Contains("runs past the end"));
    write_bytes(path, with_header(R"({"x":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})", "12345678"));
    CHECK_THROWS_WITH(SafetensorsFile::read(path).get<float>("y"), Catch::Contains("no tensor named 'y'"));
    std::remove(path.c_str());
}
