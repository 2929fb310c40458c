// The CIFAR-10 and CIFAR-100 loaders on tiny files written here (round trips, folder forms, damaged files),
// and on the real CIFAR-10 when CUDACNN_CIFAR10_DIR names it.
#include <catch2/catch.hpp>

#include <atomic>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include <unistd.h>

#include "cudacnn/data/dataset.hpp"
#include "support/errors.hpp"

using namespace cudacnn;
using namespace cudacnn::data;
namespace fs = std::filesystem;

namespace {

constexpr int64_t kPixels = 3072;

// A fresh folder under the system's temp directory, removed with everything in it at scope exit.
class TempDir {
  public:
    TempDir() {
        static std::atomic<int> counter{0};
        path_ = fs::temp_directory_path() /
                ("cudacnn_data_test_" + std::to_string(getpid()) + "_" + std::to_string(counter++));
        fs::remove_all(path_);
        fs::create_directories(path_);
    }
    ~TempDir() {
        std::error_code ignored;
        fs::remove_all(path_, ignored);
    }
    TempDir(const TempDir&) = delete;
    TempDir& operator=(const TempDir&) = delete;

    const fs::path& path() const { return path_; }
    std::string str() const { return path_.string(); }

  private:
    fs::path path_;
};

// The pixel bytes of a test record: distinct for every (record id, byte).
std::vector<uint8_t> pixels(int id) {
    std::vector<uint8_t> p(kPixels);
    for (int64_t j = 0; j < kPixels; ++j) p[j] = static_cast<uint8_t>((id * 31 + j * 7 + j / 256) % 256);
    return p;
}

// A record: its label bytes (1 for CIFAR-10; coarse, fine for CIFAR-100) then the pixels of `id`.
std::string record(const std::vector<int>& label_bytes, int id) {
    std::string r;
    for (int b : label_bytes) r.push_back(static_cast<char>(b));
    const auto p = pixels(id);
    r.append(p.begin(), p.end());
    return r;
}

void write_file(const fs::path& path, const std::string& bytes) {
    fs::create_directories(path.parent_path());
    std::ofstream(path, std::ios::binary) << bytes;
}

const char* const kCifar10Train[] = {"data_batch_1.bin", "data_batch_2.bin", "data_batch_3.bin",
                                     "data_batch_4.bin", "data_batch_5.bin"};

// A tiny CIFAR-10 folder: batch b holds b + 1 records (ids 100·b + r, label (b + r) % 10), the test file
// holds 3 (ids 900 + r, label 9 - r).
void write_cifar10(const fs::path& folder) {
    for (int b = 0; b < 5; ++b) {
        std::string bytes;
        for (int r = 0; r <= b; ++r) bytes += record({(b + r) % 10}, 100 * b + r);
        write_file(folder / kCifar10Train[b], bytes);
    }
    write_file(folder / "test_batch.bin", record({9}, 900) + record({8}, 901) + record({7}, 902));
}

// A tiny CIFAR-100 folder: train records with coarse label 19 and fine labels 0, 57, 99; test one record.
void write_cifar100(const fs::path& folder) {
    write_file(folder / "train.bin", record({19, 0}, 1) + record({19, 57}, 2) + record({19, 99}, 3));
    write_file(folder / "test.bin", record({4, 42}, 4));
}

std::vector<uint8_t> image_of(const Dataset& d, int64_t i) {
    return std::vector<uint8_t>(d.image(i), d.image(i) + d.image_bytes());
}

}  // namespace

TEST_CASE("load_cifar10 reads tiny files: train in batch order, pixels and labels unchanged", "[data]") {
    TempDir dir;
    write_cifar10(dir.path());
    const Splits s = load_cifar10(dir.str());
    CHECK(s.train.name == "cifar10 train");
    CHECK(s.test.name == "cifar10 test");
    REQUIRE(s.train.size() == 1 + 2 + 3 + 4 + 5);
    REQUIRE(s.test.size() == 3);
    CHECK(s.train.channels == 3);
    CHECK(s.train.height == 32);
    CHECK(s.train.width == 32);
    CHECK(s.train.image_bytes() == 3072);
    CHECK(s.train.images.size() == 15u * 3072u);
    int64_t i = 0;
    for (int b = 0; b < 5; ++b) {
        for (int r = 0; r <= b; ++r, ++i) {
            INFO("train record " << i);
            CHECK(s.train.labels[i] == (b + r) % 10);
            CHECK(image_of(s.train, i) == pixels(100 * b + r));
        }
    }
    CHECK(s.test.labels == std::vector<int64_t>{9, 8, 7});
    CHECK(image_of(s.test, 2) == pixels(902));
    // No batches.meta.txt: the known names.
    CHECK(s.train.num_classes == 10);
    CHECK(s.train.class_names == std::vector<std::string>{"airplane", "automobile", "bird", "cat", "deer",
                                                          "dog", "frog", "horse", "ship", "truck"});
    CHECK(s.test.class_names == s.train.class_names);
    CHECK_NOTHROW(s.train.validate());
}

TEST_CASE("load_cifar10 accepts the parent folder and reads batches.meta.txt", "[data]") {
    TempDir dir;
    const fs::path folder = dir.path() / "cifar-10-batches-bin";
    write_cifar10(folder);
    // The official file ends with blank lines; a copy may have CRLF line ends.
    write_file(folder / "batches.meta.txt", "a0\nb1\r\nc2\nd3\ne4\nf5\ng6\nh7\ni8\n j9 \n\n\n");
    const Splits s = load_cifar10(dir.str());
    CHECK(s.train.size() == 15);
    CHECK(s.test.size() == 3);
    CHECK(s.train.class_names ==
          std::vector<std::string>{"a0", "b1", "c2", "d3", "e4", "f5", "g6", "h7", "i8", "j9"});

    write_file(folder / "batches.meta.txt", "a0\nb1\n");
    const std::string message = test::error_message([&] { load_cifar10(dir.str()); });
    CHECK_THAT(message, Catch::Contains("batches.meta.txt: 2 class names, expected 10"));
}

TEST_CASE("load_cifar10 names a missing file, the folders searched, the layout and where to get it",
          "[data]") {
    TempDir dir;
    std::string message = test::error_message([&] { load_cifar10(dir.str()); });
    CHECK_THAT(message, Catch::Contains("data_batch_1.bin not found in " + dir.str()));
    CHECK_THAT(message, Catch::Contains((dir.path() / "cifar-10-batches-bin").string()));
    CHECK_THAT(message, Catch::Contains("test_batch.bin"));
    CHECK_THAT(message, Catch::Contains("3073-byte records (1 label byte + 3072 pixel bytes)"));
    CHECK_THAT(message, Catch::Contains("\"CIFAR-10 binary version\""));
    CHECK_THAT(message, Catch::Contains("https://www.cs.toronto.edu/~kriz/cifar.html"));

    write_cifar10(dir.path());
    fs::remove(dir.path() / "test_batch.bin");
    message = test::error_message([&] { load_cifar10(dir.str()); });
    CHECK_THAT(message, Catch::Contains("test_batch.bin not found in " + dir.str() + "."));

    fs::remove(dir.path() / "data_batch_4.bin");
    message = test::error_message([&] { load_cifar10(dir.str()); });
    CHECK_THAT(message, Catch::Contains("data_batch_4.bin not found in " + dir.str() + "."));
}

TEST_CASE("load_cifar10 rejects truncated and empty files, naming the file, its size and the record",
          "[data]") {
    TempDir dir;
    write_cifar10(dir.path());
    const fs::path batch3 = dir.path() / "data_batch_3.bin";
    write_file(batch3, record({1}, 1) + record({2}, 2) + record({3}, 3).substr(0, 100));
    std::string message = test::error_message([&] { load_cifar10(dir.str()); });
    CHECK_THAT(message,
               Catch::Contains(batch3.string() + ": 6246 bytes is not a whole number of 3073-byte records"));
    CHECK_THAT(message, Catch::Contains(
                            "record 2 (0-based, at byte offset 6146) is truncated, 100 of its 3073 bytes"));

    write_file(batch3, "");
    message = test::error_message([&] { load_cifar10(dir.str()); });
    CHECK_THAT(message, Catch::Contains(batch3.string() + ": the file is empty"));
}

TEST_CASE("load_cifar10 rejects a label out of range, naming the file, record, offset and value", "[data]") {
    TempDir dir;
    write_cifar10(dir.path());
    const fs::path batch2 = dir.path() / "data_batch_2.bin";
    write_file(batch2, record({3}, 1) + record({10}, 2));
    std::string message = test::error_message([&] { load_cifar10(dir.str()); });
    CHECK_THAT(message,
               Catch::Contains(batch2.string() +
                               ": record 1 (0-based, at byte offset 3073) has label 10, outside [0, 10)"));

    const fs::path test_file = dir.path() / "test_batch.bin";
    write_file(batch2, record({3}, 1));
    write_file(test_file, record({255}, 1));
    message = test::error_message([&] { load_cifar10(dir.str()); });
    CHECK_THAT(message,
               Catch::Contains(test_file.string() + ": record 0 (0-based, at byte offset 0) has label 255"));
}

TEST_CASE("load_cifar100 reads fine labels and pixels, in either folder form", "[data]") {
    TempDir dir;
    write_cifar100(dir.path());
    Splits s = load_cifar100(dir.str());
    CHECK(s.train.name == "cifar100 train");
    CHECK(s.train.num_classes == 100);
    CHECK(s.train.labels == std::vector<int64_t>{0, 57, 99});
    CHECK(s.test.labels == std::vector<int64_t>{42});
    CHECK(image_of(s.train, 1) == pixels(2));
    CHECK(image_of(s.test, 0) == pixels(4));
    REQUIRE(s.train.class_names.size() == 100);
    CHECK(s.train.class_names[0] == "apple");
    CHECK(s.train.class_names[57] == "pear");
    CHECK(s.train.class_names[99] == "worm");
    CHECK_NOTHROW(s.test.validate());

    const fs::path folder = dir.path() / "cifar-100-binary";
    write_cifar100(folder);
    fs::remove(dir.path() / "train.bin");
    std::string names;
    for (int k = 0; k < 100; ++k) names += "class" + std::to_string(k) + "\n";
    write_file(folder / "fine_label_names.txt", names);
    s = load_cifar100(dir.str());
    CHECK(s.train.labels == std::vector<int64_t>{0, 57, 99});
    CHECK(s.train.class_names[57] == "class57");
}

TEST_CASE("load_cifar100 errors: missing file, truncated record, fine label out of range", "[data]") {
    TempDir dir;
    std::string message = test::error_message([&] { load_cifar100(dir.str()); });
    CHECK_THAT(message, Catch::Contains("train.bin not found in " + dir.str()));
    CHECK_THAT(message, Catch::Contains("cifar-100-binary"));
    CHECK_THAT(message, Catch::Contains("\"CIFAR-100 binary version\""));
    CHECK_THAT(message, Catch::Contains("1 coarse label byte + 1 fine label byte + 3072 pixel bytes"));

    write_cifar100(dir.path());
    const fs::path train = dir.path() / "train.bin";
    write_file(train, record({1, 2}, 1) + "xyz");
    message = test::error_message([&] { load_cifar100(dir.str()); });
    CHECK_THAT(message,
               Catch::Contains(train.string() + ": 3077 bytes is not a whole number of 3074-byte records"));
    CHECK_THAT(message,
               Catch::Contains("record 1 (0-based, at byte offset 3074) is truncated, 3 of its 3074 bytes"));

    write_file(train, record({1, 2}, 1) + record({1, 2}, 2) + record({1, 100}, 3));
    message = test::error_message([&] { load_cifar100(dir.str()); });
    CHECK_THAT(
        message,
        Catch::Contains(train.string() +
                        ": record 2 (0-based, at byte offset 6148) has fine label 100, outside [0, 100)"));
}

TEST_CASE("load_cifar100 with coarse labels reads the first label byte and the 20 superclass names",
          "[data]") {
    TempDir dir;
    // Coarse and fine labels that differ in every record, so that reading the wrong byte shows.
    write_file(dir.path() / "train.bin", record({3, 50}, 1) + record({0, 99}, 2) + record({19, 7}, 3));
    write_file(dir.path() / "test.bin", record({11, 2}, 4) + record({1, 1}, 5));
    Splits s = load_cifar100(dir.str(), Cifar100Labels::coarse);
    CHECK(s.train.name == "cifar100 coarse train");
    CHECK(s.test.name == "cifar100 coarse test");
    CHECK(s.train.num_classes == 20);
    CHECK(s.test.num_classes == 20);
    CHECK(s.train.labels == std::vector<int64_t>{3, 0, 19});
    CHECK(s.test.labels == std::vector<int64_t>{11, 1});
    CHECK(image_of(s.train, 2) == pixels(3));
    CHECK(image_of(s.test, 1) == pixels(5));
    REQUIRE(s.train.class_names.size() == 20);
    CHECK(s.train.class_names[0] == "aquatic_mammals");
    CHECK(s.train.class_names[3] == "food_containers");
    CHECK(s.train.class_names[11] == "large_omnivores_and_herbivores");
    CHECK(s.train.class_names[19] == "vehicles_2");
    CHECK(s.train.class_names == known_class_names("cifar100_coarse"));
    CHECK_NOTHROW(s.train.validate());
    CHECK_NOTHROW(s.test.validate());
    // The same files with the default: the fine byte.
    CHECK(load_cifar100(dir.str()).train.labels == std::vector<int64_t>{50, 99, 7});
    CHECK(std::string(cifar100_labels_name(Cifar100Labels::coarse)) == "coarse");
    CHECK(std::string(cifar100_labels_name(Cifar100Labels::fine)) == "fine");

    // coarse_label_names.txt when it is there (fine_label_names.txt is not read for coarse labels).
    std::string fine_names, coarse_names;
    for (int k = 0; k < 100; ++k) fine_names += "fine" + std::to_string(k) + "\n";
    for (int k = 0; k < 20; ++k) coarse_names += "super" + std::to_string(k) + "\n";
    write_file(dir.path() / "fine_label_names.txt", fine_names);
    write_file(dir.path() / "coarse_label_names.txt", coarse_names + "\n\n");
    s = load_cifar100(dir.str(), Cifar100Labels::coarse);
    CHECK(s.train.class_names[3] == "super3");
    CHECK(load_cifar100(dir.str()).train.class_names[50] == "fine50");

    write_file(dir.path() / "coarse_label_names.txt", "a\nb\n");
    CHECK_THAT(
        test::error_message([&] { load_cifar100(dir.str(), Cifar100Labels::coarse); }),
        Catch::Contains((dir.path() / "coarse_label_names.txt").string() + ": 2 class names, expected 20"));
    fs::remove(dir.path() / "coarse_label_names.txt");

    // A coarse label of 20 is damage even though a fine label could be 20.
    const fs::path train = dir.path() / "train.bin";
    write_file(train, record({3, 50}, 1) + record({20, 20}, 2));
    CHECK_THAT(
        test::error_message([&] { load_cifar100(dir.str(), Cifar100Labels::coarse); }),
        Catch::Contains(train.string() +
                        ": record 1 (0-based, at byte offset 3074) has coarse label 20, outside [0, 20)"));
    CHECK(load_cifar100(dir.str()).train.labels == std::vector<int64_t>{50, 20});
}

TEST_CASE("load_cifar10 on the real data set (CUDACNN_CIFAR10_DIR)", "[data]") {
    const char* dir = std::getenv("CUDACNN_CIFAR10_DIR");
    if (dir == nullptr || *dir == '\0') {
        WARN(
            "skipped: set CUDACNN_CIFAR10_DIR to the CIFAR-10 binary folder (or its parent) to run this "
            "test");
        return;
    }
    const Splits s = load_cifar10(dir);
    REQUIRE(s.train.size() == 50000);
    REQUIRE(s.test.size() == 10000);
    CHECK(s.train.images.size() == 50000u * 3072u);
    CHECK(s.train.class_counts() == std::vector<int64_t>(10, 5000));
    CHECK(s.test.class_counts() == std::vector<int64_t>(10, 1000));
    CHECK(s.train.class_names.front() == "airplane");
    CHECK(s.train.class_names.back() == "truck");
    // Real photographs: neither blank nor saturated on average.
    double sum = 0.0;
    for (const uint8_t v : s.test.images) sum += v;
    const double mean = sum / static_cast<double>(s.test.images.size());
    CHECK(mean > 90.0);
    CHECK(mean < 160.0);
}
