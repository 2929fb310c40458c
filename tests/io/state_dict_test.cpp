// State dicts: the PyTorch-written fixtures in F32, F16 and BF16, save → load round trips in each storage,
// and the strict check of a loaded state dict against what a model expects.
#include <catch2/catch.hpp>

#include <cmath>
#include <limits>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "cudacnn/io/state_dict.hpp"
#include "cudacnn/safetensors.hpp"
#include "support/compare.hpp"
#include "support/errors.hpp"
#include "support/temp_files.hpp"

using namespace cudacnn;
using namespace cudacnn::io;

namespace {

constexpr float kInf = std::numeric_limits<float>::infinity();
const float kUnit = std::ldexp(1.0f, -24);  // the smallest F16 subnormal

std::string fixture_path(const std::string& name) {
    return std::string(CUDACNN_FIXTURES_DIR) + "/" + name + ".safetensors";
}

// The fixture model's state_dict names, in PyTorch's order (tools/fixtures/state_dict_interchange.py).
const std::vector<std::string> kFixtureNames = {"conv_layer.0.weight",
                                                "conv_layer.0.bias",
                                                "conv_layer.1.weight",
                                                "conv_layer.1.bias",
                                                "conv_layer.1.running_mean",
                                                "conv_layer.1.running_var",
                                                "conv_layer.1.num_batches_tracked",
                                                "fc_layer.1.weight",
                                                "fc_layer.1.bias"};

std::vector<ExpectedEntry> fixture_model() {
    return {{"conv_layer.0.weight", Shape{4, 3, 3, 3}, DType::f32},
            {"conv_layer.0.bias", Shape{4}, DType::f32},
            {"conv_layer.1.weight", Shape{4}, DType::f32},
            {"conv_layer.1.bias", Shape{4}, DType::f32},
            {"conv_layer.1.running_mean", Shape{4}, DType::f32},
            {"conv_layer.1.running_var", Shape{4}, DType::f32},
            {"conv_layer.1.num_batches_tracked", Shape{}, DType::i64},
            {"fc_layer.1.weight", Shape{5, 64}, DType::f32},
            {"fc_layer.1.bias", Shape{5}, DType::f32}};
}

bool same_values(const std::vector<float>& a, const std::vector<float>& b) {  // NaN equals NaN, -0 ≠ +0
    if (a.size() != b.size()) return false;
    for (size_t i = 0; i < a.size(); ++i) {
        if (std::isnan(a[i]) ? !std::isnan(b[i]) : a[i] != b[i] || std::signbit(a[i]) != std::signbit(b[i]))
            return false;
    }
    return true;
}

// Values whose F16 and BF16 roundings are worked out by hand below.
const std::vector<float> kSpecials = {0.0f,
                                      -0.0f,
                                      1.0f,
                                      -2.5f,
                                      0.1f,
                                      65504.0f,
                                      65520.0f,
                                      kInf,
                                      -kInf,
                                      std::nanf(""),
                                      1.0f + std::ldexp(1.0f, -11),
                                      1.0f + 3 * std::ldexp(1.0f, -11),
                                      1.0f + 3 * std::ldexp(1.0f, -8),
                                      kUnit,
                                      kUnit / 2,
                                      1.5f * kUnit,
                                      1023 * kUnit,
                                      std::numeric_limits<float>::max()};

StateDict sample_state() {
    StateDict state;
    state.put("conv.weight", HostTensor<float>(Shape{2, 9}, kSpecials));
    state.put("bn.num_batches_tracked", HostTensor<int64_t>(Shape{}, {int64_t{1} << 40}));
    state.put("bn.running_var", HostTensor<float>(Shape{2}, {0.5f, 2.0f}));
    state.put("a.bias", HostTensor<float>(Shape{0}));  // empty, and out of alphabetical order
    return state;
}

}  // namespace

TEST_CASE("StateDict keeps insertion order, replaces in place and names the entry it lacks", "[io]") {
    StateDict state = sample_state();
    CHECK(state.size() == 4);
    CHECK(state.names() ==
          std::vector<std::string>{"conv.weight", "bn.num_batches_tracked", "bn.running_var", "a.bias"});
    state.put("bn.running_var", HostTensor<int64_t>(Shape{1}, {3}));  // another dtype, same place
    CHECK(state.names()[2] == "bn.running_var");
    CHECK(state.dtype("bn.running_var") == DType::i64);
    CHECK(state.i64("bn.running_var")[0] == 3);
    CHECK(state.dtype("conv.weight") == DType::f32);
    CHECK(state.shape("conv.weight") == Shape{2, 9});
    CHECK(state.contains("a.bias"));
    CHECK_FALSE(state.contains("fc.weight"));
    CHECK_THAT(test::error_message([&] { state.f32("fc.weight"); }), Catch::Contains("no entry 'fc.weight'"));
    CHECK_THAT(test::error_message([&] { state.dtype("fc.weight"); }),
               Catch::Contains("no entry 'fc.weight'"));
    CHECK_THAT(test::error_message([&] { state.f32("bn.num_batches_tracked"); }),
               Catch::Contains("'bn.num_batches_tracked' is i64, not f32"));
    CHECK_THAT(test::error_message([&] { state.i64("conv.weight"); }),
               Catch::Contains("'conv.weight' is f32, not i64"));
}

TEST_CASE("PyTorch's state dicts in F32, F16 and BF16 load with exact values, dtypes and order", "[io]") {
    const SafetensorsFile expected = test::load_fixture("state_dict_expected");
    const auto order = nlohmann::json::parse(expected.metadata().at("order")).get<std::vector<std::string>>();
    REQUIRE(order == kFixtureNames);
    for (const std::string storage : {"f32", "f16", "bf16"}) {
        INFO("state_dict_" << storage);
        const StateDict state = load_state_dict(fixture_path("state_dict_" + storage));
        CHECK(state.names() == kFixtureNames);
        check_state_dict(state, fixture_model(), "fixture");
        for (const std::string& name : kFixtureNames) {
            INFO(name);
            if (name == "conv_layer.1.num_batches_tracked") {
                REQUIRE(state.dtype(name) == DType::i64);
                CHECK(state.i64(name).values() == std::vector<int64_t>{1});  // one training forward
                continue;
            }
            const auto want = expected.get<float>(storage + "." + name);
            CHECK(state.f32(name).shape() == want.shape());
            CHECK(state.f32(name).values() == want.values());  // F16 and BF16 decode exactly
        }
        // The BN statistics moved away from their defaults (mean 0, variance 1).
        CHECK(state.f32("conv_layer.1.running_mean")[0] != 0.0f);
        CHECK(state.f32("conv_layer.1.running_var")[0] != 1.0f);
    }
}

TEST_CASE("our F16 and BF16 rounding of PyTorch's float weights matches PyTorch's, bit for bit", "[io]") {
    const SafetensorsFile f32 = SafetensorsFile::read(fixture_path("state_dict_f32"));
    test::TempDir dir;
    for (const auto& [storage, name] :
         {std::pair{FloatStorage::f16, "f16"}, std::pair{FloatStorage::bf16, "bf16"}}) {
        save_state_dict(load_state_dict(fixture_path("state_dict_f32")), dir.file("ours.safetensors"),
                        storage);
        const SafetensorsFile ours = SafetensorsFile::read(dir.file("ours.safetensors"));
        const SafetensorsFile torch = SafetensorsFile::read(fixture_path(std::string("state_dict_") + name));
        for (const std::string& tensor : kFixtureNames) {
            INFO(name << " " << tensor);
            CHECK(ours.tensor(tensor).dtype == torch.tensor(tensor).dtype);
            CHECK(ours.tensor(tensor).bytes == torch.tensor(tensor).bytes);
        }
        CHECK(f32.tensor("fc_layer.1.weight").bytes.size() ==
              2 * ours.tensor("fc_layer.1.weight").bytes.size());
    }
}

TEST_CASE("save_state_dict → load_state_dict in each storage rounds as worked out by hand", "[io]") {
    test::TempDir dir;
    const float kF16Tie = 1.0f + 2 * std::ldexp(1.0f, -10);  // 1 + 3·2^-11 rounds to the even 1 + 2^-9
    const std::vector<std::pair<FloatStorage, std::vector<float>>> cases = {
        {FloatStorage::f32, kSpecials},
        {FloatStorage::f16,
         {0.0f, -0.0f, 1.0f, -2.5f, 0.0999755859375f, 65504.0f, kInf, kInf, -kInf, std::nanf(""), 1.0f,
          kF16Tie, 1.01171875f, kUnit, 0.0f, 2 * kUnit, 1023 * kUnit, kInf}},
        {FloatStorage::bf16,
         {0.0f, -0.0f, 1.0f, -2.5f, 0.10009765625f, 65536.0f, 65536.0f, kInf, -kInf, std::nanf(""), 1.0f,
          1.0f, 1.015625f, kUnit, kUnit / 2, 1.5f * kUnit, 1024 * kUnit, kInf}},
    };
    for (const auto& [storage, rounded] : cases) {
        const std::string path =
            dir.file(std::string("state_") + safetensors_dtype(storage) + ".safetensors");
        INFO(path);
        save_state_dict(sample_state(), path, storage, {{"model", "sample"}});
        const StateDict state = load_state_dict(path);
        CHECK(state.names() == sample_state().names());
        CHECK(state.f32("conv.weight").shape() == Shape{2, 9});
        CHECK(same_values(state.f32("conv.weight").values(), rounded));
        CHECK(state.f32("bn.running_var").values() == std::vector<float>{0.5f, 2.0f});
        CHECK(state.f32("a.bias").shape() == Shape{0});
        REQUIRE(state.dtype("bn.num_batches_tracked") == DType::i64);
        CHECK(state.i64("bn.num_batches_tracked")[0] == int64_t{1} << 40);
        CHECK(state.i64("bn.num_batches_tracked").shape().rank() == 0);

        const SafetensorsFile file = SafetensorsFile::read(path);
        CHECK(file.tensor("conv.weight").dtype == safetensors_dtype(storage));
        CHECK(file.tensor("bn.num_batches_tracked").dtype == "I64");
        CHECK(file.metadata() == std::map<std::string, std::string>{{"format", "pt"}, {"model", "sample"}});
    }
    save_state_dict(sample_state(), dir.file("own_format.safetensors"), FloatStorage::f32,
                    {{"format", "mine"}});
    CHECK(SafetensorsFile::read(dir.file("own_format.safetensors")).metadata().at("format") == "mine");
}

TEST_CASE("load_state_dict converts F64 and I32 and refuses other dtypes, naming file and tensor", "[io]") {
    test::TempDir dir;
    SafetensorsFile file;
    file.put("d", HostTensor<double>(Shape{2}, {0.1, -3.0}));
    file.put("i", HostTensor<int32_t>(Shape{1}, {-7}));
    file.write(dir.file("wide.safetensors"));
    const StateDict state = load_state_dict(dir.file("wide.safetensors"));
    CHECK(state.f32("d").values() == std::vector<float>{0.1f, -3.0f});
    CHECK(state.i64("i").values() == std::vector<int64_t>{-7});

    file.put("pixels", HostTensor<uint8_t>(Shape{1}, {3}));
    file.write(dir.file("bytes.safetensors"));
    CHECK_THAT(test::error_message([&] { load_state_dict(dir.file("bytes.safetensors")); }),
               Catch::Contains(dir.file("bytes.safetensors")) && Catch::Contains("'pixels' is U8"));
    CHECK_THAT(test::error_message([&] { load_state_dict(dir.file("absent.safetensors")); }),
               Catch::Contains("absent.safetensors: cannot open"));
}

TEST_CASE("check_state_dict lists every missing key, unexpected key and mismatch in one Error", "[io]") {
    StateDict loaded;
    loaded.put("conv_layer.0.weight", HostTensor<float>(Shape{32, 3, 3, 3}));
    loaded.put("fc_layer.1.weight", HostTensor<float>(Shape{1024, 4095}));
    loaded.put("fc_layer.9.weight", HostTensor<float>(Shape{1}));
    loaded.put("extra", HostTensor<float>(Shape{1}));
    loaded.put("bn.num_batches_tracked", HostTensor<float>(Shape{}));
    const std::vector<ExpectedEntry> expected = {{"conv_layer.0.weight", Shape{32, 3, 3, 3}, DType::f32},
                                                 {"conv_layer.0.bias", Shape{32}, DType::f32},
                                                 {"fc_layer.1.weight", Shape{1024, 4096}, DType::f32},
                                                 {"fc_layer.1.bias", Shape{1024}, DType::f32},
                                                 {"bn.num_batches_tracked", Shape{}, DType::i64}};
    const std::string message =
        test::error_message([&] { check_state_dict(loaded, expected, "w.safetensors"); });
    CHECK_THAT(message, Catch::Contains("w.safetensors: the state dict does not fit the model"));
    CHECK_THAT(message, Catch::Contains("missing keys (the model has them, the file not): "
                                        "\"conv_layer.0.bias\", \"fc_layer.1.bias\""));
    CHECK_THAT(message, Catch::Contains("unexpected keys (the file has them, the model not): "
                                        "\"fc_layer.9.weight\", \"extra\""));
    CHECK_THAT(
        message,
        Catch::Contains(
            "size mismatch for fc_layer.1.weight: the file has (1024, 4095), the model needs (1024, 4096)"));
    CHECK_THAT(
        message,
        Catch::Contains("dtype mismatch for bn.num_batches_tracked: the file has f32, the model needs i64"));
    CHECK_THAT(message, !Catch::Contains("conv_layer.0.weight"));

    // Only what is wrong is listed; F16 and BF16 model entries accept floats, I32 ones int64.
    StateDict fits;
    fits.put("w", HostTensor<float>(Shape{2}));
    fits.put("n", HostTensor<int64_t>(Shape{}));
    CHECK_NOTHROW(check_state_dict(fits, {{"w", Shape{2}, DType::bf16}, {"n", Shape{}, DType::i32}}, "f"));
    const std::string missing_only = test::error_message([&] {
        check_state_dict(
            fits, {{"w", Shape{2}, DType::f16}, {"n", Shape{}, DType::i64}, {"m", Shape{1}, DType::f32}},
            "f");
    });
    CHECK_THAT(missing_only, Catch::Contains("missing keys (the model has them, the file not): \"m\""));
    CHECK_THAT(missing_only, !Catch::Contains("unexpected") && !Catch::Contains("mismatch"));
}
