// The safetensors format beyond F32/F64/I64: F16 and BF16 encodings, __metadata__, U8/I32, tensor order, the
// validation of damaged files, and atomic writes.
#include <catch2/catch.hpp>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <limits>
#include <string>
#include <vector>

#include "cudacnn/io/float16.hpp"
#include "cudacnn/safetensors.hpp"
#include "support/compare.hpp"
#include "support/errors.hpp"
#include "support/temp_files.hpp"

using namespace cudacnn;
using namespace cudacnn::io;

namespace {

constexpr float kInf = std::numeric_limits<float>::infinity();
const float kUnit = std::ldexp(1.0f, -24);  // the smallest F16 subnormal

uint32_t bits_of(float value) {
    uint32_t bits;
    std::memcpy(&bits, &value, sizeof bits);
    return bits;
}

bool same_bits(float a, float b) {
    return bits_of(a) == bits_of(b);
}

// A file with the given JSON header and data bytes.
std::string with_header(const std::string& json, const std::string& data) {
    std::string out(8, '\0');
    for (int i = 0; i < 8; ++i) out[i] = static_cast<char>(uint64_t{json.size()} >> (8 * i) & 0xff);
    return out + json + data;
}

std::string read_error(const std::string& path) {
    return test::error_message([&] { SafetensorsFile::read(path); });
}

SafetensorsFile sample_file() {
    SafetensorsFile file;
    file.metadata()["format"] = "pt";
    file.put("w", HostTensor<float>(Shape{2, 2}, {1.5f, -2.0f, 0.25f, 3.0f}));
    file.put("h", HostTensor<float>(Shape{3}, {1.0f, 65504.0f, -0.0f}), FloatStorage::f16);
    file.put("n", HostTensor<int64_t>(Shape{}, {7}));
    return file;
}

}  // namespace

TEST_CASE("F16 encodings round to nearest even and keep zeros, subnormals, Inf and NaN", "[io]") {
    struct Case {
        float value;
        uint16_t bits;
    };
    const std::vector<Case> cases = {
        {0.0f, 0x0000},
        {-0.0f, 0x8000},
        {1.0f, 0x3c00},
        {-2.5f, 0xc100},
        {0.1f, 0x2e66},
        {65504.0f, 0x7bff},         // the largest half
        {65519.99609375f, 0x7bff},  // just below the tie with 65536
        {65520.0f, 0x7c00},
        {-65520.0f, 0xfc00},  // the tie goes to the even 65536, which is Inf
        {kInf, 0x7c00},
        {-kInf, 0xfc00},
        {1.0f + std::ldexp(1.0f, -11), 0x3c00},      // tie between 1 and 1 + 2^-10: to even 1
        {1.0f + 3 * std::ldexp(1.0f, -11), 0x3c02},  // tie between odd 0x3c01 and even 0x3c02
        {std::ldexp(1.0f, -14), 0x0400},             // the smallest normal
        {kUnit, 0x0001},
        {-kUnit, 0x8001},     // the smallest subnormal
        {kUnit / 2, 0x0000},  // tie between 0 and 1 unit: to 0
        {1.5f * kUnit, 0x0002},
        {2.5f * kUnit, 0x0002},                       // ties to even units
        {kUnit / 2 + std::ldexp(1.0f, -40), 0x0001},  // just above the tie
        {1023 * kUnit, 0x03ff},
        {1023.5f * kUnit, 0x0400},  // the largest subnormal; its tie rounds to normal
        {1e-45f, 0x0000},
        {std::numeric_limits<float>::max(), 0x7c00},
    };
    for (const Case& c : cases) {
        INFO("value " << c.value << " (float bits 0x" << std::hex << bits_of(c.value) << ")");
        CHECK(float_to_f16_bits(c.value) == c.bits);
    }
    CHECK(float_to_f16_bits(std::nanf("")) == 0x7e00);
    CHECK(float_to_f16_bits(-std::nanf("")) == 0xfe00);
}

TEST_CASE("F16 decodes exactly", "[io]") {
    CHECK(same_bits(f16_bits_to_float(0x0000), 0.0f));
    CHECK(same_bits(f16_bits_to_float(0x8000), -0.0f));
    CHECK(f16_bits_to_float(0x3c00) == 1.0f);
    CHECK(f16_bits_to_float(0x2e66) == 0.0999755859375f);
    CHECK(f16_bits_to_float(0x7bff) == 65504.0f);
    CHECK(f16_bits_to_float(0x0001) == kUnit);
    CHECK(f16_bits_to_float(0x03ff) == 1023 * kUnit);
    CHECK(f16_bits_to_float(0x8001) == -kUnit);
    CHECK(f16_bits_to_float(0x0400) == std::ldexp(1.0f, -14));
    CHECK(f16_bits_to_float(0x7c00) == kInf);
    CHECK(f16_bits_to_float(0xfc00) == -kInf);
    CHECK(std::isnan(f16_bits_to_float(0x7c01)));
    CHECK(std::isnan(f16_bits_to_float(0xfe00)));
    for (uint32_t bits = 0; bits < 0x10000; ++bits) {  // every non-NaN half survives decode → encode
        const float value = f16_bits_to_float(static_cast<uint16_t>(bits));
        if (!std::isnan(value)) REQUIRE(float_to_f16_bits(value) == bits);
    }
}

TEST_CASE("BF16 encodings round to nearest even and keep zeros, subnormals, Inf and NaN", "[io]") {
    CHECK(float_to_bf16_bits(0.0f) == 0x0000);
    CHECK(float_to_bf16_bits(-0.0f) == 0x8000);
    CHECK(float_to_bf16_bits(1.0f) == 0x3f80);
    CHECK(float_to_bf16_bits(-2.5f) == 0xc020);
    CHECK(float_to_bf16_bits(0.1f) == 0x3dcd);
    CHECK(float_to_bf16_bits(65504.0f) == 0x4780);                         // rounds up to 65536
    CHECK(float_to_bf16_bits(1.0f + std::ldexp(1.0f, -8)) == 0x3f80);      // tie: to even 1
    CHECK(float_to_bf16_bits(1.0f + 3 * std::ldexp(1.0f, -8)) == 0x3f82);  // tie: to even 0x3f82
    CHECK(float_to_bf16_bits(std::ldexp(1.0f, -133)) == 0x0001);           // a bf16 subnormal
    CHECK(float_to_bf16_bits(1e-45f) == 0x0000);
    CHECK(float_to_bf16_bits(std::numeric_limits<float>::max()) == 0x7f80);  // rounds past the largest: Inf
    CHECK(float_to_bf16_bits(-kInf) == 0xff80);
    CHECK(float_to_bf16_bits(std::nanf("")) == 0x7fc0);
    CHECK(bf16_bits_to_float(0x3dcd) == 0.10009765625f);
    CHECK(bf16_bits_to_float(0x0001) == std::ldexp(1.0f, -133));
    CHECK(same_bits(bf16_bits_to_float(0x8000), -0.0f));
    CHECK(bf16_bits_to_float(0xff80) == -kInf);
    CHECK(std::isnan(bf16_bits_to_float(0x7fc0)));
    CHECK(std::isnan(bf16_bits_to_float(0xffff)));
}

TEST_CASE("F16 and BF16 encodings match PyTorch's on its edge cases", "[io]") {
    // tools/fixtures/state_dict_interchange.py: specials.f32 and PyTorch's .half() and .bfloat16() of them.
    const SafetensorsFile file = test::load_fixture("state_dict_expected");
    const auto values = file.get<float>("specials.f32");
    REQUIRE(file.tensor("specials.f16").dtype == "F16");
    REQUIRE(file.tensor("specials.bf16").dtype == "BF16");
    const auto f16 = file.get<float>("specials.f16");
    const auto bf16 = file.get<float>("specials.bf16");
    REQUIRE(values.numel() >= 30);
    for (int64_t i = 0; i < values.numel(); ++i) {
        INFO("specials[" << i << "] = " << values[i]);
        const float ours_f16 = f16_bits_to_float(float_to_f16_bits(values[i]));
        const float ours_bf16 = bf16_bits_to_float(float_to_bf16_bits(values[i]));
        if (std::isnan(values[i])) {  // PyTorch's vectorised BF16 NaN is 0xffff, ours 0x7fc0: both NaN
            CHECK(
                (std::isnan(f16[i]) && std::isnan(bf16[i]) && std::isnan(ours_f16) && std::isnan(ours_bf16)));
        } else {
            CHECK(same_bits(ours_f16, f16[i]));
            CHECK(same_bits(ours_bf16, bf16[i]));
        }
    }
}

TEST_CASE("put stores floats as F16 or BF16 and get converts them back to float", "[io]") {
    test::TempDir dir;
    const HostTensor<float> values(Shape{2, 3}, {1.0f, 0.1f, -kInf, 65520.0f, kUnit / 2, 1.5f * kUnit});
    SafetensorsFile out;
    out.put("half", values, FloatStorage::f16);
    out.put("brain", values, FloatStorage::bf16);
    out.put("full", values, FloatStorage::f32);
    out.write(dir.file("halves.safetensors"));
    const SafetensorsFile in = SafetensorsFile::read(dir.file("halves.safetensors"));
    CHECK(in.tensor("half").dtype == "F16");
    CHECK(in.tensor("brain").dtype == "BF16");
    CHECK(in.tensor("full").dtype == "F32");
    CHECK(in.tensor("half").bytes.size() == 12);
    // Little-endian 2-byte patterns: 0x3c00, 0x2e66, 0xfc00, 0x7c00, 0x0000, 0x0002.
    CHECK(in.tensor("half").bytes ==
          std::vector<uint8_t>{0x00, 0x3c, 0x66, 0x2e, 0x00, 0xfc, 0x00, 0x7c, 0x00, 0x00, 0x02, 0x00});
    const auto half = in.get<float>("half");
    CHECK(half.shape() == Shape{2, 3});
    CHECK(half.values() == std::vector<float>{1.0f, 0.0999755859375f, -kInf, kInf, 0.0f, 2 * kUnit});
    CHECK(in.get<float>("brain").values() ==
          std::vector<float>{1.0f, 0.10009765625f, -kInf, 65536.0f, kUnit / 2, 1.5f * kUnit});
    CHECK(in.get<double>("half")[1] == 0.0999755859375);
    CHECK(in.get<float>("full").values() == values.values());
}

TEST_CASE("U8 and I32 tensors round trip", "[io]") {
    test::TempDir dir;
    SafetensorsFile out;
    out.put("pixels", HostTensor<uint8_t>(Shape{2, 2}, {0, 17, 128, 255}));
    out.put("labels", HostTensor<int32_t>(Shape{3}, {-1, 0, 1 << 30}));
    out.write(dir.file("ints.safetensors"));
    const SafetensorsFile in = SafetensorsFile::read(dir.file("ints.safetensors"));
    CHECK(in.tensor("pixels").dtype == "U8");
    CHECK(in.get<uint8_t>("pixels").values() == std::vector<uint8_t>{0, 17, 128, 255});
    CHECK(in.get<float>("pixels").values() == std::vector<float>{0, 17, 128, 255});
    CHECK(in.tensor("labels").dtype == "I32");
    CHECK(in.get<int32_t>("labels").values() == std::vector<int32_t>{-1, 0, 1 << 30});
    CHECK(in.get<int64_t>("labels").values() == std::vector<int64_t>{-1, 0, 1 << 30});
}

TEST_CASE("__metadata__ is read and written; tensors keep the order they were put in", "[io]") {
    test::TempDir dir;
    SafetensorsFile out = sample_file();
    out.metadata()["note"] = "ünïcode, \"quotes\"";
    out.put("w", HostTensor<float>(Shape{1}, {9.0f}));  // replaces in place: the order stays w, h, n
    out.put("a", HostTensor<float>(Shape{1}, {4.0f}));
    out.write(dir.file("meta.safetensors"));
    const SafetensorsFile in = SafetensorsFile::read(dir.file("meta.safetensors"));
    CHECK(in.metadata() ==
          std::map<std::string, std::string>{{"format", "pt"}, {"note", "ünïcode, \"quotes\""}});
    CHECK(in.names_in_file_order() == std::vector<std::string>{"w", "h", "n", "a"});
    CHECK(in.names() == std::vector<std::string>{"a", "h", "n", "w"});
    CHECK(in.get<float>("w").values() == std::vector<float>{9.0f});

    // Files written in PyTorch's state_dict order, with PyTorch's {"format": "pt"}.
    const SafetensorsFile fixture = test::load_fixture("state_dict_f16");
    CHECK(fixture.metadata() == std::map<std::string, std::string>{{"format", "pt"}});
    CHECK(fixture.names_in_file_order().front() == "conv_layer.0.weight");
    CHECK(fixture.names_in_file_order().back() == "fc_layer.1.bias");

    const std::string path = dir.file("bad_meta.safetensors");
    test::write_bytes(path, with_header(R"({"__metadata__":{"epoch":3}})", ""));
    CHECK_THAT(read_error(path),
               Catch::Contains(path) && Catch::Contains("'epoch' is number") && Catch::Contains("strings"));
    test::write_bytes(path, with_header(R"({"__metadata__":[1]})", ""));
    CHECK_THAT(read_error(path), Catch::Contains("__metadata__ is array"));
}

TEST_CASE("damaged headers give an Error naming the file, the tensor and the problem", "[io]") {
    test::TempDir dir;
    const std::string path = dir.file("bad.safetensors");
    const auto error_for = [&](const std::string& json, const std::string& data) {
        test::write_bytes(path, with_header(json, data));
        return read_error(path);
    };
    CHECK_THAT(error_for(R"({"x":{"dtype":"Q7","shape":[2],"data_offsets":[0,2]}})", "12"),
               Catch::Contains(path) && Catch::Contains("'x'") && Catch::Contains("dtype 'Q7'"));
    CHECK_THAT(error_for(R"({"x":{"dtype":3,"shape":[2],"data_offsets":[0,8]}})", "12345678"),
               Catch::Contains("'x' has dtype 3, not a string"));
    CHECK_THAT(error_for(R"({"x":{"dtype":"F32","shape":[-2],"data_offsets":[0,8]}})", "12345678"),
               Catch::Contains("'x' has shape [-2]") && Catch::Contains("integers ≥ 0"));
    CHECK_THAT(error_for(R"({"x":{"dtype":"F32","shape":[2.5],"data_offsets":[0,8]}})", "12345678"),
               Catch::Contains("'x' has shape [2.5]"));
    CHECK_THAT(error_for(R"({"x":{"dtype":"F32","shape":2,"data_offsets":[0,8]}})", "12345678"),
               Catch::Contains("not an array of integers"));
    CHECK_THAT(
        error_for(R"({"x":{"dtype":"F32","shape":[1,1,1,1,1,1,1,1,2],"data_offsets":[0,8]}})", "12345678"),
        Catch::Contains("'x' has rank 9"));
    CHECK_THAT(error_for(R"({"x":{"dtype":"F64","shape":[4294967296,4294967296],"data_offsets":[0,8]}})",
                         "12345678"),
               Catch::Contains("'x' has shape [4294967296,4294967296], too large"));
    CHECK_THAT(error_for(R"({"x":{"dtype":"F32","shape":[2],"data_offsets":[4,0]}})", "12345678"),
               Catch::Contains("'x' has data offsets [4,0] outside the 8 data bytes"));
    CHECK_THAT(error_for(R"({"x":{"dtype":"F32","shape":[2],"data_offsets":[0,8,9]}})", "12345678"),
               Catch::Contains("outside"));
    CHECK_THAT(error_for(R"({"x":{"dtype":"BF16","shape":[3],"data_offsets":[0,8]}})", "12345678"),
               Catch::Contains("'x' of shape (3) and dtype BF16 needs 6 bytes, the file gives 8"));
    CHECK_THAT(error_for(R"({"x":[1]})", ""), Catch::Contains("'x' has a malformed header entry"));
    CHECK_THAT(error_for(R"([1,2])", ""), Catch::Contains("not a JSON object"));
    CHECK_THAT(error_for(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
                         R"("b":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}})",
                         "12345678"),
               Catch::Contains("tensors 'a' (bytes 0–8) and 'b' (bytes 4–8) overlap"));
    CHECK_THAT(error_for(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}})", "12345678"),
               Catch::Contains("data bytes 0–4 before tensor 'a' belong to no tensor"));
    CHECK_THAT(error_for(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}})", "12345678"),
               Catch::Contains("4 data bytes after the last tensor"));
    std::string too_long = with_header("{}", "");
    too_long[1] = 1;  // 258 header bytes in a 10-byte file
    test::write_bytes(path, too_long);
    CHECK_THAT(read_error(path),
               Catch::Contains("header of 258 bytes runs past the end of the file (10 bytes)"));
    // Empty tensors take no bytes, wherever they sit.
    test::write_bytes(path, with_header(R"({"e":{"dtype":"F32","shape":[0,3],"data_offsets":[4,4]},)"
                                        R"("a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}})",
                                        "1234"));
    CHECK(SafetensorsFile::read(path).get<float>("e").shape() == Shape{0, 3});
}

TEST_CASE("every truncation of a written file, and flipped header bytes, give Errors", "[io]") {
    test::TempDir dir;
    const std::string whole_path = dir.file("whole.safetensors"), path = dir.file("damaged.safetensors");
    sample_file().write(whole_path);
    const std::string whole = test::read_bytes(whole_path);
    REQUIRE(SafetensorsFile::read(whole_path).names().size() == 3);
    for (size_t size = 0; size < whole.size(); ++size) {
        INFO("truncated to " << size << " of " << whole.size() << " bytes");
        test::write_bytes(path, whole.substr(0, size));
        CHECK_THAT(read_error(path), Catch::Contains(path));
    }
    // A flipped bit in the header length always breaks the file; elsewhere in the header it may yield another
    // valid file (a renamed tensor), but never a crash or another exception type.
    uint64_t header_size = 0;
    for (int i = 7; i >= 0; --i) header_size = header_size << 8 | static_cast<uint8_t>(whole[i]);
    int errors = 0;
    for (size_t byte = 0; byte < 8 + header_size; ++byte) {
        for (int bit = 0; bit < 8; ++bit) {
            std::string damaged = whole;
            damaged[byte] = static_cast<char>(damaged[byte] ^ (1 << bit));
            test::write_bytes(path, damaged);
            INFO("byte " << byte << " bit " << bit);
            try {
                SafetensorsFile::read(path);
                CHECK(byte >= 8);
            } catch (const Error& e) {
                ++errors;
                CHECK_THAT(e.what(), Catch::Contains(path));
            }
        }
    }
    CHECK(errors > static_cast<int>(8 * header_size) / 2);
}

TEST_CASE("writes are atomic: a failed write leaves the earlier file intact and no temporary", "[io]") {
    test::TempDir dir;
    const std::string path = dir.file("weights.safetensors");
    sample_file().write(path);
    const std::string before = test::read_bytes(path);

    SafetensorsFile big;
    big.put("big", HostTensor<float>(Shape{64, 1024}, 0.5f));  // 256 KiB
    {
        test::FileSizeLimit limit(16 * 1024);  // the disk is "full" after 16 KiB
        CHECK_THAT(test::error_message([&] { big.write(path); }), Catch::Contains(path) &&
                                                                      Catch::Contains("writing failed") &&
                                                                      Catch::Contains("unchanged"));
    }
    CHECK(test::read_bytes(path) == before);
    CHECK(std::distance(std::filesystem::directory_iterator(dir.path()), {}) == 1);  // no temporary left

    // A target that cannot be replaced (a folder) and a folder that does not exist.
    std::filesystem::create_directory(dir.file("folder.safetensors"));
    CHECK_THAT(test::error_message([&] { big.write(dir.file("folder.safetensors")); }),
               Catch::Contains("cannot replace it"));
    CHECK(std::filesystem::is_directory(dir.file("folder.safetensors")));
    CHECK_THAT(test::error_message([&] { big.write(dir.file("missing/w.safetensors")); }),
               Catch::Contains("missing/w.safetensors: cannot create") && Catch::Contains("folder exists"));
    CHECK(std::distance(std::filesystem::directory_iterator(dir.path()), {}) == 2);

    big.write(path);  // and a write that succeeds replaces the file
    CHECK(SafetensorsFile::read(path).get<float>("big").values() == std::vector<float>(64 * 1024, 0.5f));
}
