// CIFAR-10 and CIFAR-100 loaders for the official binary versions
// (https://www.cs.toronto.edu/~kriz/cifar.html).
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include <fmt/format.h>

#include "cudacnn/data/dataset.hpp"
#include "cudacnn/error.hpp"

namespace cudacnn::data {

namespace {

namespace fs = std::filesystem;

constexpr int64_t kChannels = 3, kSide = 32;
constexpr int64_t kPixelBytes = kChannels * kSide * kSide;  // 1024 R, 1024 G, 1024 B, each row-major
constexpr const char* kHome = "https://www.cs.toronto.edu/~kriz/cifar.html";

// What differs between the two binary versions.
struct Layout {
    const char* dataset;                   // "cifar10": the prefix of Dataset::name and of messages
    const char* folder;                    // the folder the archive unpacks to
    const char* version;                   // the download's name on the home page
    const char* archive;                   // its file name
    std::vector<std::string> train_files;  // in record order
    std::vector<std::string> test_files;
    const char* names_file;
    int64_t record_bytes;  // label bytes + kPixelBytes
    int64_t label_offset;  // the byte of the label used, within a record
    const char* label_kind;
    const char* record_description;
    int64_t num_classes;
    std::vector<std::string> known_names;  // when names_file is absent
};

const Layout& cifar10_layout() {
    static const Layout layout{
        "cifar10",
        "cifar-10-batches-bin",
        "CIFAR-10 binary version",
        "cifar-10-binary.tar.gz",
        {"data_batch_1.bin", "data_batch_2.bin", "data_batch_3.bin", "data_batch_4.bin", "data_batch_5.bin"},
        {"test_batch.bin"},
        "batches.meta.txt",
        1 + kPixelBytes,
        0,
        "label",
        "1 label byte + 3072 pixel bytes",
        10,
        {"airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"}};
    return layout;
}

const Layout& cifar100_layout() {
    static const Layout layout{
        "cifar100",
        "cifar-100-binary",
        "CIFAR-100 binary version",
        "cifar-100-binary.tar.gz",
        {"train.bin"},
        {"test.bin"},
        "fine_label_names.txt",
        2 + kPixelBytes,
        1,
        "fine label",
        "1 coarse label byte + 1 fine label byte + 3072 pixel bytes",
        100,
        {"apple",       "aquarium_fish", "baby",      "bear",       "beaver",       "bed",
         "bee",         "beetle",        "bicycle",   "bottle",     "bowl",         "boy",
         "bridge",      "bus",           "butterfly", "camel",      "can",          "castle",
         "caterpillar", "cattle",        "chair",     "chimpanzee", "clock",        "cloud",
         "cockroach",   "couch",         "crab",      "crocodile",  "cup",          "dinosaur",
         "dolphin",     "elephant",      "flatfish",  "forest",     "fox",          "girl",
         "hamster",     "house",         "kangaroo",  "keyboard",   "lamp",         "lawn_mower",
         "leopard",     "lion",          "lizard",    "lobster",    "man",          "maple_tree",
         "motorcycle",  "mountain",      "mouse",     "mushroom",   "oak_tree",     "orange",
         "orchid",      "otter",         "palm_tree", "pear",       "pickup_truck", "pine_tree",
         "plain",       "plate",         "poppy",     "porcupine",  "possum",       "rabbit",
         "raccoon",     "ray",           "road",      "rocket",     "rose",         "sea",
         "seal",        "shark",         "shrew",     "skunk",      "skyscraper",   "snail",
         "snake",       "spider",        "squirrel",  "streetcar",  "sunflower",    "sweet_pepper",
         "table",       "tank",          "telephone", "television", "tiger",        "tractor",
         "train",       "trout",         "tulip",     "turtle",     "wardrobe",     "whale",
         "willow_tree", "wolf",          "woman",     "worm"}};
    return layout;
}

// The same files read for the other label byte.
const Layout& cifar100_coarse_layout() {
    static const Layout layout = [] {
        Layout coarse = cifar100_layout();
        coarse.names_file = "coarse_label_names.txt";
        coarse.label_offset = 0;
        coarse.label_kind = "coarse label";
        coarse.num_classes = 20;
        coarse.known_names = {"aquatic_mammals",
                              "fish",
                              "flowers",
                              "food_containers",
                              "fruit_and_vegetables",
                              "household_electrical_devices",
                              "household_furniture",
                              "insects",
                              "large_carnivores",
                              "large_man-made_outdoor_things",
                              "large_natural_outdoor_scenes",
                              "large_omnivores_and_herbivores",
                              "medium_mammals",
                              "non-insect_invertebrates",
                              "people",
                              "reptiles",
                              "small_mammals",
                              "trees",
                              "vehicles_1",
                              "vehicles_2"};
        return coarse;
    }();
    return layout;
}

// Whether path is a regular file; an unreadable folder counts as not holding it (the caller then says where
// it looked and what it expected).
bool is_file(const fs::path& path) {
    std::error_code ignored;
    return fs::is_regular_file(path, ignored);
}

std::string expected_files(const Layout& layout) {
    std::string files;
    for (const auto& f : layout.train_files) files += f + ", ";
    for (const auto& f : layout.test_files) files += f + ", ";
    return fmt::format("{}{} (optional), each a sequence of {}-byte records ({})", files, layout.names_file,
                       layout.record_bytes, layout.record_description);
}

[[noreturn]] void fail_missing(const Layout& layout, const std::string& file, const std::string& searched) {
    CUDACNN_FAIL(
        "load_{}: {} not found in {}. Expected the {}: {}. Download \"{}\" ({}) from {}, unpack it and pass "
        "the "
        "{} folder or its parent",
        layout.dataset, file, searched, layout.version, expected_files(layout), layout.version,
        layout.archive, kHome, layout.folder);
}

// `dir` itself when it holds the first training file, else its child named layout.folder when that does.
std::string resolve_folder(const std::string& dir, const Layout& layout) {
    const std::string& probe = layout.train_files.front();
    if (is_file(fs::path(dir) / probe)) return dir;
    const fs::path child = fs::path(dir) / layout.folder;
    if (is_file(child / probe)) return child.string();
    fail_missing(layout, probe, fmt::format("{} (nor in {})", dir, child.string()));
}

// The number of records in a file, whose size must be a positive whole number of records.
int64_t record_count(const fs::path& path, const Layout& layout) {
    const std::string name = path.string();
    const int64_t record = layout.record_bytes;
    std::error_code error;
    const auto file_size = static_cast<int64_t>(fs::file_size(path, error));
    CUDACNN_CHECK(!error, "{}: cannot read the file's size: {}", name, error.message());
    CUDACNN_CHECK(file_size > 0, "{}: the file is empty; expected a whole number of {}-byte records ({})",
                  name, record, layout.record_description);
    CUDACNN_CHECK(
        file_size % record == 0,
        "{}: {} bytes is not a whole number of {}-byte records: record {} (0-based, at byte offset {}) "
        "is truncated, {} of its {} bytes present. The file is cut short or is not the {}; download "
        "it again from {}",
        name, file_size, record, file_size / record, file_size / record * record, file_size % record, record,
        layout.version, kHome);
    return file_size / record;
}

// Reads the `records` records of one file into records first, first + 1, … of `out`, checking every label.
// `bytes` is scratch space, reused from file to file.
void read_records(const fs::path& path, int64_t records, const Layout& layout, int64_t first, Dataset& out,
                  std::vector<char>& bytes) {
    const std::string name = path.string();
    const int64_t record = layout.record_bytes, file_size = records * record;
    bytes.resize(static_cast<size_t>(file_size));
    std::ifstream in(path, std::ios::binary);
    CUDACNN_CHECK(in.good(), "{}: cannot open the file; check its permissions", name);
    in.read(bytes.data(), file_size);
    CUDACNN_CHECK(in.gcount() == file_size, "{}: read {} of its {} bytes", name, in.gcount(), file_size);
    for (int64_t r = 0; r < records; ++r) {
        const char* rec = bytes.data() + r * record;
        const int64_t label = static_cast<uint8_t>(rec[layout.label_offset]);
        CUDACNN_CHECK(
            label < layout.num_classes,
            "{}: record {} (0-based, at byte offset {}) has {} {}, outside [0, {}); the file is damaged "
            "or is not the {}",
            name, r, r * record, layout.label_kind, label, layout.num_classes, layout.version);
        out.labels[first + r] = label;
        std::memcpy(out.images.data() + (first + r) * kPixelBytes, rec + (record - kPixelBytes), kPixelBytes);
    }
}

// The class names in label order: one a line in layout.names_file (blank lines and surrounding spaces
// ignored, as the official file ends with blank lines), or the known names when the file is absent.
std::vector<std::string> class_names(const std::string& folder, const Layout& layout) {
    const fs::path path = fs::path(folder) / layout.names_file;
    if (!is_file(path)) return layout.known_names;
    std::ifstream in(path);
    CUDACNN_CHECK(in.good(), "{}: cannot open the file; check its permissions", path.string());
    std::vector<std::string> names;
    for (std::string line; std::getline(in, line);) {
        const auto begin = line.find_first_not_of(" \t\r");
        if (begin == std::string::npos) continue;
        names.push_back(line.substr(begin, line.find_last_not_of(" \t\r") - begin + 1));
    }
    CUDACNN_CHECK(
        static_cast<int64_t>(names.size()) == layout.num_classes,
        "{}: {} class names, expected {} (one a line, in label order); fix the file or remove it to use "
        "the known names",
        path.string(), names.size(), layout.num_classes);
    return names;
}

Dataset load_split(const std::string& folder, const std::vector<std::string>& files, const char* split,
                   const std::vector<std::string>& names, const Layout& layout) {
    Dataset out;
    out.name = fmt::format("{} {}", layout.dataset, split);
    out.channels = kChannels;
    out.height = out.width = kSide;
    out.num_classes = layout.num_classes;
    out.class_names = names;
    // Sizes first: one allocation for the whole split, and a damaged file is reported before any is read.
    std::vector<int64_t> counts;
    int64_t total = 0;
    for (const auto& file : files)
        total += counts.emplace_back(record_count(fs::path(folder) / file, layout));
    out.labels.resize(static_cast<size_t>(total));
    out.images.resize(static_cast<size_t>(total * kPixelBytes));
    std::vector<char> bytes;
    int64_t first = 0;
    for (size_t f = 0; f < files.size(); ++f) {
        read_records(fs::path(folder) / files[f], counts[f], layout, first, out, bytes);
        first += counts[f];
    }
    return out;
}

Splits load(const std::string& dir, const Layout& layout) {
    const std::string folder = resolve_folder(dir, layout);
    // Every file must be there before any is read, so a missing test file does not cost a full read first.
    for (const auto* files : {&layout.train_files, &layout.test_files}) {
        for (const auto& file : *files) {
            if (!is_file(fs::path(folder) / file)) fail_missing(layout, file, folder);
        }
    }
    const std::vector<std::string> names = class_names(folder, layout);
    return Splits{load_split(folder, layout.train_files, "train", names, layout),
                  load_split(folder, layout.test_files, "test", names, layout)};
}

}  // namespace

Splits load_cifar10(const std::string& dir) {
    return load(dir, cifar10_layout());
}

const char* cifar100_labels_name(Cifar100Labels labels) {
    return labels == Cifar100Labels::coarse ? "coarse" : "fine";
}

Splits load_cifar100(const std::string& dir, Cifar100Labels labels) {
    if (labels == Cifar100Labels::fine) return load(dir, cifar100_layout());
    Splits splits = load(dir, cifar100_coarse_layout());
    splits.train.name = "cifar100 coarse train";
    splits.test.name = "cifar100 coarse test";
    return splits;
}

std::vector<std::string> known_class_names(const std::string& dataset) {
    if (dataset == "cifar10") return cifar10_layout().known_names;
    if (dataset == "cifar100") return cifar100_layout().known_names;
    if (dataset == "cifar100_coarse") return cifar100_coarse_layout().known_names;
    if (dataset == "synthetic") return synthetic_class_names();
    CUDACNN_FAIL("dataset '{}': no known class names; use cifar10, cifar100, cifar100_coarse or synthetic",
                 dataset);
}

}  // namespace cudacnn::data
