// Image datasets (CIFAR-10, CIFAR-100, a procedural synthetic set) and the batch pipeline that turns records
// into normalized, optionally augmented float batches with torchvision's arithmetic.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <vector>

namespace cudacnn::data {

// A labelled set of uint8 images, all of one size, held in memory.
struct Dataset {
    std::string name;  // "cifar10 train", "synthetic test", ...
    int64_t channels = 3, height = 32, width = 32;
    int64_t num_classes = 10;
    std::vector<std::string> class_names;  // num_classes entries
    std::vector<uint8_t> images;           // (N, C, H, W) uint8, CIFAR's channel-planar order
    std::vector<int64_t> labels;           // (N), each in [0, num_classes)

    int64_t size() const;
    int64_t image_bytes() const;  // C·H·W
    const uint8_t* image(int64_t i) const;
    Dataset first(int64_t n) const;  // the first min(n, size()) records (for --limit-train / --limit-test)

    // How many records each class has: num_classes entries.
    std::vector<int64_t> class_counts() const;
    // Throws an Error naming the dataset unless images, labels, class names and sizes agree and every label
    // is in [0, num_classes).
    void validate() const;
};

struct Splits {
    Dataset train, test;
};

// ---- CIFAR (https://www.cs.toronto.edu/~kriz/cifar.html, the binary versions) -----------------------------
// `dir` is the folder holding the files, or its parent holding cifar-10-batches-bin / cifar-100-binary.
// Any whole number of records per file is accepted. Missing files, empty or truncated files and labels out of
// range are Errors naming the file (and the record).

// data_batch_1.bin … data_batch_5.bin (train, in that order) and test_batch.bin; records of 1 label byte +
// 3072 pixel bytes (1024 R, 1024 G, 1024 B, row-major). Class names from batches.meta.txt, else the known
// ones.
Splits load_cifar10(const std::string& dir);
// Which of CIFAR-100's two labels a record's class is: the fine label (100 classes) or the coarse one (20
// superclasses, each five fine classes).
enum class Cifar100Labels { fine, coarse };
const char* cifar100_labels_name(Cifar100Labels labels);  // "fine", "coarse"

// train.bin and test.bin; records of 1 coarse label byte + 1 fine label byte + 3072 pixel bytes. `labels`
// picks the byte: fine (names from fine_label_names.txt, else the known ones; datasets "cifar100 train",
// "cifar100 test") or coarse (names from coarse_label_names.txt, else the official 20; "cifar100 coarse
// train", ...).
Splits load_cifar100(const std::string& dir, Cifar100Labels labels = Cifar100Labels::fine);

// ---- Synthetic ------------------------------------------------------------------------------------------
// 10 classes of procedural 32×32 colour images told apart by shape or texture, never by colour: filled
// circle, filled square, triangle, plus, ring, horizontal stripes, vertical stripes, diagonal stripes,
// checkerboard, scattered dots. Colours, size, position, phase and noise are random. Record i has label
// i % 10. Deterministic from the seed; train and test use different Philox streams.
struct SyntheticOptions {
    int64_t train_size = 10000;
    int64_t test_size = 2000;
    uint64_t seed = 0;
};
Splits make_synthetic(const SyntheticOptions& options);

// The class names of a dataset kind without reading its files (for predictions from weights alone): cifar10
// and cifar100 (the official names, in label order), cifar100_coarse (the 20 superclasses) and synthetic.
// Error for any other name.
std::vector<std::string> known_class_names(const std::string& dataset);
const std::vector<std::string>& synthetic_class_names();

// ---- Batches --------------------------------------------------------------------------------------------
struct Normalization {
    std::array<float, 3> mean, stddev;
};
Normalization cifar10_normalization();  // mean (0.4914, 0.4822, 0.4465), std (0.2023, 0.1994, 0.2010)

// torchvision's RandomCrop(32, padding=crop_padding) (zero fill) + RandomHorizontalFlip(p=0.5).
struct Augmentation {
    int64_t crop_padding = 4;
    bool horizontal_flip = true;
};

// Philox streams of the data pipeline (philox_draw(seed, stream, counter), cudacnn/philox.hpp). Parameter
// init uses small streams (a tensor's index) and dropout streams of the form step · layers + layer; these
// live at 0xDA7A'000k << 32 and above, which neither can reach, and each adds a value below 2^32 (checked).
constexpr uint64_t kShuffleStream = 0xDA7A0001ull << 32;         // + epoch: the epoch's permutation
constexpr uint64_t kAugmentStream = 0xDA7A0002ull << 32;         // + epoch: counter = position in the epoch
constexpr uint64_t kSyntheticTrainStream = 0xDA7A0003ull << 32;  // + record index
constexpr uint64_t kSyntheticTestStream = 0xDA7A0004ull << 32;   // + record index

// The order of one epoch: 0..size-1, or a permutation drawn from (seed, epoch) when shuffle is set.
// Shuffling is Fisher–Yates: for i = size-1 down to 1, with k = size-1-i and the 32-bit draw
//   u = philox_draw(seed, kShuffleStream + epoch, k / 4).v[k % 4],
// swap order[i] with order[j], j = (u · (i+1)) >> 32: uniform in [0, i] up to a bias below (i+1) / 2^32.
std::vector<int64_t> epoch_order(int64_t size, bool shuffle, uint64_t seed, int64_t epoch);

// Fills x (count, C, H, W) float32 and labels (count) from the records `indices[0..count)`: optional
// augmentation then normalization exactly as torchvision's ToTensor + Normalize compute it in float32:
//   v = float(u8) / 255.0f; x = (v - mean[c]) / std[c].
// The augmentation randomness depends only on (seed, epoch, position = first_position + i within the epoch),
// so a resumed run draws the same crops and flips. With padding p and
//   b = philox_draw(seed, kAugmentStream + epoch, position):
//   top = (b.v[0] · (2p+1)) >> 32 and left = (b.v[1] · (2p+1)) >> 32, both in [0, 2p];
//   flip when uint32_to_unit_float(b.v[2]) < 0.5f.
// Window pixel (y, x) is padded pixel (top + y, left + x), i.e. source (top - p + y, left - p + x),
// 0 outside the image; a flip then mirrors the window's columns.
void assemble_batch(const Dataset& dataset, const int64_t* indices, int64_t count,
                    const Augmentation* augmentation /* nullptr: none (test transform, --no-augment) */,
                    const Normalization& normalization, uint64_t seed, int64_t epoch, int64_t first_position,
                    float* x, int64_t* labels);

}  // namespace cudacnn::data
