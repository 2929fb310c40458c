// Training checkpoints: model and optimizer state plus JSON metadata in one safetensors file, exact round
// trips, files that are not checkpoints or are damaged, and atomic replacement.
#include <catch2/catch.hpp>

#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "cudacnn/io/state_dict.hpp"
#include "cudacnn/safetensors.hpp"
#include "support/errors.hpp"
#include "support/temp_files.hpp"

using namespace cudacnn;
using namespace cudacnn::io;

namespace {

Checkpoint sample_checkpoint() {
    Checkpoint c;
    c.model.put("conv.weight", HostTensor<float>(Shape{2, 1, 1, 2}, {0.1f, -1e-30f, 3.0e38f, -0.0f}));
    c.model.put("bn.num_batches_tracked", HostTensor<int64_t>(Shape{}, {391}));
    c.model.put("bn.running_mean", HostTensor<float>(Shape{2}, {0.25f, -0.5f}));
    c.optimizer.put("step", HostTensor<int64_t>(Shape{}, {7820}));
    c.optimizer.put("exp_avg.conv.weight",
                    HostTensor<float>(Shape{2, 1, 1, 2}, {1e-8f, 2e-8f, 3e-8f, 4e-8f}));
    c.optimizer.put("conv.weight", HostTensor<float>(Shape{1}, {5.0f}));  // same name as a model entry
    c.meta = {{"format", "cudacnn-checkpoint"},
              {"epoch", 20},
              {"seed", uint64_t{0xfedcba9876543210}},
              {"lr", 1e-4},
              {"options", {{"model", "cifar_cnn"}, {"batch", 128}, {"augment", true}}}};
    return c;
}

void check_same(const StateDict& a, const StateDict& b) {
    REQUIRE(a.names() == b.names());
    for (const std::string& name : a.names()) {
        INFO(name);
        REQUIRE(a.dtype(name) == b.dtype(name));
        if (a.dtype(name) == DType::i64) {
            CHECK(a.i64(name).values() == b.i64(name).values());
            CHECK(a.i64(name).shape() == b.i64(name).shape());
        } else {
            CHECK(a.f32(name).values() == b.f32(name).values());
            CHECK(a.f32(name).shape() == b.f32(name).shape());
        }
    }
}

std::string load_error(const std::string& path) {
    return test::error_message([&] { load_checkpoint(path); });
}

}  // namespace

TEST_CASE("a checkpoint round trips exactly: tensors, dtypes, order and metadata", "[io]") {
    test::TempDir dir;
    const std::string path = dir.file("checkpoint.safetensors");
    const Checkpoint saved = sample_checkpoint();
    save_checkpoint(saved, path);
    const Checkpoint loaded = load_checkpoint(path);
    check_same(loaded.model, saved.model);
    check_same(loaded.optimizer, saved.optimizer);
    CHECK(loaded.meta == saved.meta);
    CHECK(loaded.meta.at("seed").get<uint64_t>() == 0xfedcba9876543210u);

    // The layout, as PyTorch sees it: prefixed names, F32 and I64, the metadata as JSON text.
    const SafetensorsFile file = SafetensorsFile::read(path);
    CHECK(file.names_in_file_order() ==
          std::vector<std::string>{"model.conv.weight", "model.bn.num_batches_tracked",
                                   "model.bn.running_mean", "optimizer.step", "optimizer.exp_avg.conv.weight",
                                   "optimizer.conv.weight"});
    CHECK(file.tensor("model.conv.weight").dtype == "F32");
    CHECK(file.tensor("optimizer.step").dtype == "I64");
    CHECK(nlohmann::json::parse(file.metadata().at("cudacnn.checkpoint")) == saved.meta);

    // load_state_dict of a checkpoint gives its model part (to start from a checkpoint's weights).
    check_same(load_state_dict(path), saved.model);

    Checkpoint empty;
    save_checkpoint(empty, dir.file("empty.safetensors"));
    const Checkpoint empty_loaded = load_checkpoint(dir.file("empty.safetensors"));
    CHECK(empty_loaded.model.size() == 0);
    CHECK(empty_loaded.optimizer.size() == 0);
    CHECK(empty_loaded.meta.is_null());
}

TEST_CASE("files that are not cudacnn checkpoints, or have damaged parts, give Errors saying so", "[io]") {
    test::TempDir dir;
    const std::string path = dir.file("other.safetensors");
    StateDict weights;
    weights.put("w", HostTensor<float>(Shape{1}, {1.0f}));
    save_state_dict(weights, path);
    CHECK_THAT(load_error(path), Catch::Contains(path) && Catch::Contains("not a cudacnn checkpoint") &&
                                     Catch::Contains("load_state_dict"));

    SafetensorsFile file;
    file.metadata() = {{"cudacnn.checkpoint", "{\"epoch\": 3"}, {"cudacnn.checkpoint_layout", "1"}};
    file.write(path);
    CHECK_THAT(load_error(path),
               Catch::Contains(path) && Catch::Contains("metadata (\"cudacnn.checkpoint\") is damaged"));

    file.metadata()["cudacnn.checkpoint"] = "{}";
    file.metadata()["cudacnn.checkpoint_layout"] = "3";
    file.write(path);
    CHECK_THAT(load_error(path), Catch::Contains("layout is version '3'; this cudacnn reads versions 1 and 2"));

    file.metadata()["cudacnn.checkpoint_layout"] = "1";
    file.put("model.w", HostTensor<float>(Shape{1}, {1.0f}));
    file.put("stray", HostTensor<float>(Shape{1}, {1.0f}));
    file.write(path);
    CHECK_THAT(load_error(path),
               Catch::Contains("tensor 'stray' is neither \"model.…\" nor \"optimizer.…\""));
}

TEST_CASE("every truncation of a checkpoint gives an Error naming the file", "[io]") {
    test::TempDir dir;
    const std::string whole_path = dir.file("whole.safetensors"), path = dir.file("cut.safetensors");
    save_checkpoint(sample_checkpoint(), whole_path);
    const std::string whole = test::read_bytes(whole_path);
    for (size_t size = 0; size < whole.size(); size += 7) {
        INFO("truncated to " << size << " of " << whole.size() << " bytes");
        test::write_bytes(path, whole.substr(0, size));
        CHECK_THAT(load_error(path), Catch::Contains(path));
        CHECK_THAT(test::error_message([&] { load_state_dict(path); }), Catch::Contains(path));
    }
}

TEST_CASE("a checkpoint save that fails leaves the previous checkpoint intact", "[io]") {
    test::TempDir dir;
    const std::string path = dir.file("checkpoint.safetensors");
    save_checkpoint(sample_checkpoint(), path);
    const std::string before = test::read_bytes(path);

    Checkpoint bigger = sample_checkpoint();
    bigger.model.put("fc.weight", HostTensor<float>(Shape{256, 256}, 1.0f));  // 256 KiB
    bigger.meta["epoch"] = 21;
    {
        test::FileSizeLimit limit(before.size() + 100);
        CHECK_THAT(test::error_message([&] { save_checkpoint(bigger, path); }),
                   Catch::Contains("writing failed"));
    }
    CHECK(test::read_bytes(path) == before);
    CHECK(load_checkpoint(path).meta.at("epoch") == 20);
    save_checkpoint(bigger, path);
    CHECK(load_checkpoint(path).meta.at("epoch") == 21);
}
