// One function per fuzzed parser: feed it the raw input the way a user's file or command line reaches it.
// Header-only so that both the libFuzzer targets (tests/fuzz/fuzz_<target>.cpp, CUDACNN_FUZZ=ON) and the
// regression test of the normal builds (tests/io/fuzz_regressions_test.cpp) call exactly the same code.
// cudacnn::Error (UsageError included) is a clean rejection; any other exception escapes to the caller: for
// libFuzzer a crash, for the regression test a failure.
#pragma once

#include <unistd.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "cudacnn/bench/options.hpp"
#include "cudacnn/data/augment.hpp"
#include "cudacnn/data/dataset.hpp"
#include "cudacnn/data/image.hpp"
#include "cudacnn/error.hpp"
#include "cudacnn/eval/evaluate.hpp"
#include "cudacnn/graph/model.hpp"
#include "cudacnn/io/state_dict.hpp"
#include "cudacnn/safetensors.hpp"
#include "cudacnn/train/options.hpp"
#include "cudacnn/viz/commands.hpp"

namespace cudacnn::fuzz {

// ---- support ----------------------------------------------------------------------------------------------

// A folder of this process's own under $TMPDIR (or /tmp), made on first use and removed at exit.
inline const std::string& scratch_dir() {
    struct Dir {
        std::string path;
        Dir() {
            const char* tmp = std::getenv("TMPDIR");
            std::string pattern = std::string(tmp != nullptr && *tmp != '\0' ? tmp : "/tmp") + "/cudacnn-fuzz-XXXXXX";
            if (mkdtemp(pattern.data()) == nullptr) {
                std::perror("cudacnn fuzz: mkdtemp");
                std::abort();
            }
            path = pattern;
        }
        ~Dir() {
            std::error_code ignored;
            std::filesystem::remove_all(path, ignored);
        }
    };
    static const Dir dir;
    return dir.path;
}

// Writes bytes to `path` (replacing it).
inline void write_file(const std::string& path, const uint8_t* data, size_t size) {
    std::ofstream out(path, std::ios::binary | std::ios::trunc);
    out.write(reinterpret_cast<const char*>(data), static_cast<std::streamsize>(size));
    out.close();
    if (!out) {
        std::perror(("cudacnn fuzz: cannot write " + path).c_str());
        std::abort();
    }
}

// Writes bytes to scratch_dir()/name and returns the path.
inline std::string scratch_file(const std::string& name, const uint8_t* data, size_t size) {
    const std::string path = scratch_dir() + "/" + name;
    write_file(path, data, size);
    return path;
}

// The input as the words of a command line: split at '\n' and '\0'.
inline std::vector<std::string> split_words(const uint8_t* data, size_t size) {
    std::vector<std::string> words;
    std::string word;
    for (size_t i = 0; i < size; ++i) {
        const char c = static_cast<char>(data[i]);
        if (c == '\n' || c == '\0') {
            words.push_back(word);
            word.clear();
        } else {
            word += c;
        }
    }
    if (!word.empty()) words.push_back(word);
    return words;
}

// Runs `parse`; a cudacnn::Error is the clean answer to a bad input.
template <class Parse>
void expect_clean(Parse&& parse) {
    try {
        parse();
    } catch (const Error&) {
    }
}

// ---- the parsers --------------------------------------------------------------------------------------------

// CIFAR binary files. Byte 0 picks the layout (CIFAR-10, CIFAR-100 fine, CIFAR-100 coarse), byte 1 the length n
// of the class-names file that follows (0: no such file), the rest is every data file's content.
inline void parse_cifar(const uint8_t* data, size_t size) {
    if (size < 2) return;
    const int layout = data[0] % 3;
    const size_t names_size = std::min<size_t>(data[1], size - 2);
    const uint8_t* names = data + 2;
    const uint8_t* records = names + names_size;
    const size_t records_size = size - 2 - names_size;
    namespace fs = std::filesystem;
    const fs::path dir = fs::path(scratch_dir()) / "cifar";
    std::error_code ignored;
    fs::remove_all(dir, ignored);
    fs::create_directories(dir);
    const std::vector<std::string> files =
        layout == 0 ? std::vector<std::string>{"data_batch_1.bin", "data_batch_2.bin", "data_batch_3.bin",
                                               "data_batch_4.bin", "data_batch_5.bin", "test_batch.bin"}
                    : std::vector<std::string>{"train.bin", "test.bin"};
    for (const std::string& file : files) write_file((dir / file).string(), records, records_size);
    const char* names_file =
        layout == 0 ? "batches.meta.txt" : layout == 1 ? "fine_label_names.txt" : "coarse_label_names.txt";
    if (names_size > 0) write_file((dir / names_file).string(), names, names_size);
    expect_clean([&] {
        data::Splits splits = layout == 0 ? data::load_cifar10(dir.string())
                                          : data::load_cifar100(dir.string(), layout == 1 ? data::Cifar100Labels::fine
                                                                                          : data::Cifar100Labels::coarse);
        splits.train.validate();
        splits.test.validate();
    });
}

// A PNG or JPEG file as the only image of an image folder (DIR/class/image.png), fitted to 8×8 as training would.
inline void parse_image(const uint8_t* data, size_t size) {
    namespace fs = std::filesystem;
    const fs::path dir = fs::path(scratch_dir()) / "images";
    fs::create_directories(dir / "class");
    write_file((dir / "class" / "image.png").string(), data, size);
    expect_clean([&] {
        const data::Dataset dataset = data::load_image_folder(dir.string(), 8, 8);
        dataset.validate();
    });
}

// A safetensors file, every tensor read back as float.
inline void parse_safetensors(const uint8_t* data, size_t size) {
    const std::string path = scratch_file("tensors.safetensors", data, size);
    expect_clean([&] {
        const SafetensorsFile file = SafetensorsFile::read(path);
        for (const std::string& name : file.names()) (void)file.get<float>(name);
    });
}

// A training checkpoint (and the same file as a state dict), with the training options it records.
inline void parse_checkpoint(const uint8_t* data, size_t size) {
    const std::string path = scratch_file("checkpoint.safetensors", data, size);
    expect_clean([&] { (void)io::load_state_dict(path); });
    expect_clean([&] {
        const io::Checkpoint checkpoint = io::load_checkpoint(path);
        if (checkpoint.meta.is_object() && checkpoint.meta.contains("options"))
            (void)train::options_from_json(checkpoint.meta["options"]);
    });
}

// A model spec file (JSON), then the graph built from it.
inline void parse_model_json(const uint8_t* data, size_t size) {
    const std::string path = scratch_file("model.json", data, size);
    expect_clean([&] { (void)graph::build_graph(graph::load_model_spec(path)); });
}

// An augmentation spec in the text grammar; a spec that parses must format and parse back.
inline void parse_augment_spec(const uint8_t* data, size_t size) {
    const std::string text(reinterpret_cast<const char*>(data), size);
    expect_clean([&] { (void)data::parse_augment_spec(data::format_augment_spec(data::parse_augment_spec(text))); });
}

// An augmentation spec in its JSON form, as --augment FILE.json reads it.
inline void parse_augment_json(const uint8_t* data, size_t size) {
    const std::string path = scratch_file("augment.json", data, size);
    expect_clean([&] { (void)data::augment_spec_from_json(data::augment_spec_to_json(data::read_augment_spec(path))); });
}

// A command line: the first word names the program (train, eval, bench, viz), the rest are its arguments.
inline void parse_command_line(const uint8_t* data, size_t size) {
    std::vector<std::string> words = split_words(data, size);
    if (words.empty()) return;
    const std::string program = words.front();
    words.erase(words.begin());
    expect_clean([&] {
        if (program == "train") (void)train::parse_train_args(words);
        else if (program == "eval") (void)eval::parse_eval_args(words);
        else if (program == "bench") (void)bench::parse_bench_args(words);
        else if (program == "viz") viz::check_viz_args(words);
    });
}

// The targets by name: tests/fuzz/corpus/<name>/ and tests/fuzz/regressions/<name>/ hold their inputs.
inline const std::map<std::string, std::function<void(const uint8_t*, size_t)>>& parsers() {
    static const std::map<std::string, std::function<void(const uint8_t*, size_t)>> table = {
        {"cifar", parse_cifar},
        {"image", parse_image},
        {"safetensors", parse_safetensors},
        {"checkpoint", parse_checkpoint},
        {"model_json", parse_model_json},
        {"augment_spec", parse_augment_spec},
        {"augment_json", parse_augment_json},
        {"cli", parse_command_line},
    };
    return table;
}

}  // namespace cudacnn::fuzz
