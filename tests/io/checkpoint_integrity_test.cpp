// Checkpoints that cannot be damaged silently: the magic, the layout version and the checksum catch every
// flipped bit and every truncation with an Error naming the file and saying to resume from the previous
// checkpoint, loading never changes the file, and layout-1 files (before checksums) still load, unverified.
#include <catch2/catch.hpp>

#include <string>

#include <nlohmann/json.hpp>

#include "cudacnn/io/state_dict.hpp"
#include "cudacnn/safetensors.hpp"
#include "support/errors.hpp"
#include "support/temp_files.hpp"

using namespace cudacnn;
using namespace cudacnn::io;

namespace {

Checkpoint small_checkpoint() {
    Checkpoint c;
    c.model.put("conv.weight", HostTensor<float>(Shape{2, 3}, {0.1f, -2.0f, 3.5f, 0.0f, 1e-20f, 7.0f}));
    c.model.put("bn.num_batches_tracked", HostTensor<int64_t>(Shape{}, {12}));
    c.optimizer.put("exp_avg.conv.weight",
                    HostTensor<float>(Shape{2, 3}, {1e-3f, 2e-3f, 3e-3f, 4e-3f, 5e-3f, 6e-3f}));
    c.meta = {{"format", "cudacnn-checkpoint"}, {"version", 2}, {"epoch", 4}};
    return c;
}

std::string load_error(const std::string& path) {
    return test::error_message([&] { load_checkpoint(path); });
}

}  // namespace

TEST_CASE("a checkpoint carries its magic, layout version and checksum in the safetensors metadata", "[io]") {
    test::TempDir dir;
    const std::string path = dir.file("c.safetensors");
    save_checkpoint(small_checkpoint(), path);
    const SafetensorsFile file = SafetensorsFile::read(path);  // any safetensors reader reads it
    CHECK(file.metadata().at("cudacnn.magic") == "cudacnn-checkpoint");
    CHECK(file.metadata().at("cudacnn.checkpoint_layout") == "2");
    CHECK_THAT(file.metadata().at("cudacnn.checksum"), Catch::Matches("fnv1a64:[0-9a-f]{16}"));
    const Checkpoint loaded = load_checkpoint(path);
    CHECK(loaded.checksum_verified);
    CHECK(loaded.meta.at("epoch") == 4);
}

TEST_CASE("every flipped bit of a checkpoint gives an Error naming the file, which stays as it was", "[io]") {
    test::TempDir dir;
    const std::string whole_path = dir.file("whole.safetensors"), path = dir.file("flipped.safetensors");
    save_checkpoint(small_checkpoint(), whole_path);
    const std::string whole = test::read_bytes(whole_path);
    const size_t header_end =
        8 + static_cast<size_t>(static_cast<uint8_t>(whole[0]) | static_cast<uint8_t>(whole[1]) << 8);
    int checksum_errors = 0;
    // Every data byte and every other header byte, a different bit each time (a file write per case).
    for (size_t byte = 0; byte < whole.size(); byte += byte < header_end ? 2 : 1) {
        {
            const int bit = static_cast<int>(byte * 3 % 8);
            std::string flipped = whole;
            flipped[byte] = static_cast<char>(flipped[byte] ^ (1 << bit));
            test::write_bytes(path, flipped);
            INFO("byte " << byte << " of " << whole.size() << ", bit " << bit);
            const std::string error = load_error(path);
            REQUIRE_THAT(error, Catch::Contains(path));
            if (byte >= header_end) {
                CHECK_THAT(error, Catch::Contains("checksum does not match") &&
                                      Catch::Contains("resume from the previous checkpoint"));
            }
            checksum_errors += error.find("checksum") != std::string::npos ? 1 : 0;
            REQUIRE(test::read_bytes(path) == flipped);  // loading never writes
        }
    }
    CHECK(checksum_errors > 0);
}

TEST_CASE("a truncated checkpoint says it is damaged and to resume from the previous one", "[io]") {
    test::TempDir dir;
    const std::string whole_path = dir.file("whole.safetensors"), path = dir.file("cut.safetensors");
    save_checkpoint(small_checkpoint(), whole_path);
    const std::string whole = test::read_bytes(whole_path);
    for (size_t size = 0; size < whole.size(); size += 5) {
        INFO("truncated to " << size << " of " << whole.size() << " bytes");
        test::write_bytes(path, whole.substr(0, size));
        CHECK_THAT(load_error(path),
                   Catch::Contains(path) && Catch::Contains("resume from the previous checkpoint"));
        CHECK(test::read_bytes(path) == whole.substr(0, size));
    }
}

TEST_CASE(
    "a checkpoint without its magic or checksum, or of a newer layout, is refused; layout 1 loads unverified",
    "[io]") {
    test::TempDir dir;
    const std::string good = dir.file("good.safetensors"), path = dir.file("edited.safetensors");
    save_checkpoint(small_checkpoint(), good);
    const auto edited = [&](const std::string& key, const char* value) {
        SafetensorsFile file = SafetensorsFile::read(good);
        if (value == nullptr) {
            file.metadata().erase(key);
        } else {
            file.metadata()[key] = value;
        }
        file.write(path);
        return load_error(path);
    };
    CHECK_THAT(edited("cudacnn.magic", nullptr), Catch::Contains(path) && Catch::Contains("magic") &&
                                                     Catch::Contains("resume from the previous checkpoint"));
    CHECK_THAT(edited("cudacnn.magic", "something-else"), Catch::Contains("\"something-else\" rather than"));
    CHECK_THAT(edited("cudacnn.checksum", nullptr), Catch::Contains("has no checksum"));
    CHECK_THAT(edited("cudacnn.checksum", "fnv1a64:0000000000000000"),
               Catch::Contains("checksum does not match"));
    CHECK_THAT(edited("cudacnn.checkpoint_layout", "3"),
               Catch::Contains("layout is version '3'") && Catch::Contains("newer cudacnn"));
    CHECK_THAT(edited("cudacnn.checkpoint", "{\"epoch\": 5}"), Catch::Contains("checksum does not match"));

    // What cudacnn wrote before checksums: layout 1, no magic, no checksum.
    SafetensorsFile old = SafetensorsFile::read(good);
    old.metadata().erase("cudacnn.magic");
    old.metadata().erase("cudacnn.checksum");
    old.metadata()["cudacnn.checkpoint_layout"] = "1";
    old.write(path);
    const Checkpoint loaded = load_checkpoint(path);
    CHECK_FALSE(loaded.checksum_verified);
    CHECK(loaded.meta.at("epoch") == 4);
    CHECK(loaded.model.f32("conv.weight").values() == small_checkpoint().model.f32("conv.weight").values());
}
