// The batch pipeline: epoch orders, torchvision's normalization, crop and flip geometry, and determinism.
#include <catch2/catch.hpp>

#include <algorithm>
#include <array>
#include <cmath>
#include <map>
#include <numeric>
#include <set>
#include <vector>

#include "cudacnn/data/dataset.hpp"
#include "cudacnn/philox.hpp"
#include "support/errors.hpp"

using namespace cudacnn;
using namespace cudacnn::data;

namespace {

constexpr int64_t kSide = 32, kPlane = 32 * 32, kImage = 3 * 32 * 32;

// Records whose red value is its column + 1, green its row + 1 (so 0 means padding) and blue 100 + record.
Dataset coordinate_dataset(int64_t size) {
    Dataset d;
    d.name = "coordinates";
    d.class_names = {"a", "b", "c", "d", "e", "f", "g", "h", "i", "j"};
    d.images.resize(static_cast<size_t>(size * kImage));
    for (int64_t n = 0; n < size; ++n) {
        d.labels.push_back((3 * n + 1) % 10);
        for (int64_t y = 0; y < kSide; ++y) {
            for (int64_t x = 0; x < kSide; ++x) {
                uint8_t* p = d.images.data() + n * kImage + y * kSide + x;
                p[0] = static_cast<uint8_t>(x + 1);
                p[kPlane] = static_cast<uint8_t>(y + 1);
                p[2 * kPlane] = static_cast<uint8_t>(100 + n);
            }
        }
    }
    return d;
}

// torchvision's ToTensor + Normalize of one value, in float32.
float normalized(uint8_t u, int64_t c, const Normalization& norm = cifar10_normalization()) {
    return (static_cast<float>(u) / 255.0f - norm.mean[c]) / norm.stddev[c];
}

struct Batch {
    std::vector<float> x;
    std::vector<int64_t> labels;
};

Batch assemble(const Dataset& d, const std::vector<int64_t>& indices, const Augmentation* augmentation,
               uint64_t seed, int64_t epoch, int64_t first_position) {
    const auto count = static_cast<int64_t>(indices.size());
    Batch b{std::vector<float>(static_cast<size_t>(count * d.image_bytes()), NAN),
            std::vector<int64_t>(static_cast<size_t>(count), -1)};
    assemble_batch(d, indices.data(), count, augmentation, cifar10_normalization(), seed, epoch,
                   first_position, b.x.data(), b.labels.data());
    return b;
}

// The window that dataset.hpp documents for (seed, epoch, position) with padding 4.
struct Window {
    int64_t top, left;
    bool flip;
};
Window documented_window(uint64_t seed, int64_t epoch, int64_t position) {
    const PhiloxBlock b = philox_draw(seed, kAugmentStream + static_cast<uint64_t>(epoch), position);
    return Window{static_cast<int64_t>((uint64_t{b.v[0]} * 9) >> 32),
                  static_cast<int64_t>((uint64_t{b.v[1]} * 9) >> 32), uint32_to_unit_float(b.v[2]) < 0.5f};
}

}  // namespace

TEST_CASE("epoch_order: identity without shuffle; a deterministic permutation per (seed, epoch) with it",
          "[data]") {
    std::vector<int64_t> identity(1000);
    std::iota(identity.begin(), identity.end(), 0);
    CHECK(epoch_order(1000, false, 5, 3) == identity);
    CHECK(epoch_order(0, true, 5, 0).empty());
    CHECK(epoch_order(1, true, 5, 0) == std::vector<int64_t>{0});

    const auto order = epoch_order(1000, true, 5, 0);
    CHECK(order != identity);
    auto sorted = order;
    std::sort(sorted.begin(), sorted.end());
    CHECK(sorted == identity);
    CHECK(epoch_order(1000, true, 5, 0) == order);
    CHECK(epoch_order(1000, true, 5, 1) != order);
    CHECK(epoch_order(1000, true, 6, 0) != order);

    // Size 2: one Fisher–Yates step, j = (u · 2) >> 32 with u draw 0 of the epoch's stream: swapped iff
    // j = 0.
    for (int64_t epoch = 0; epoch < 8; ++epoch) {
        const uint32_t u = philox_draw(9, kShuffleStream + static_cast<uint64_t>(epoch), 0).v[0];
        INFO("epoch " << epoch);
        CHECK(epoch_order(2, true, 9, epoch) ==
              (u < 0x80000000u ? std::vector<int64_t>{1, 0} : std::vector<int64_t>{0, 1}));
    }
    // The 6 orders of 3 records are about equally frequent over 6000 epochs (expected 1000 each; a fixed
    // seed, so this is a fixed outcome, not a flaky one).
    std::map<std::vector<int64_t>, int> counts;
    for (int64_t epoch = 0; epoch < 6000; ++epoch) ++counts[epoch_order(3, true, 1, epoch)];
    CHECK(counts.size() == 6);
    for (const auto& [permutation, count] : counts) {
        CHECK(count > 880);
        CHECK(count < 1120);
    }
    CHECK_THAT(test::error_message([] { epoch_order(10, true, 0, -1); }),
               Catch::Contains("epoch_order: epoch -1 is outside [0, 2^32)"));
}

TEST_CASE("cifar10_normalization holds torchvision's CIFAR-10 constants", "[data]") {
    const Normalization n = cifar10_normalization();
    CHECK(n.mean == std::array<float, 3>{0.4914f, 0.4822f, 0.4465f});
    CHECK(n.stddev == std::array<float, 3>{0.2023f, 0.1994f, 0.2010f});
}

TEST_CASE("assemble_batch without augmentation: ToTensor + Normalize, labels in index order", "[data]") {
    Dataset d = coordinate_dataset(3);
    d.images[2 * kImage + 0] = 255;         // record 2, red, pixel (0, 0)
    d.images[2 * kImage + kPlane + 5] = 0;  // record 2, green, pixel (0, 5)
    const Batch b = assemble(d, {2, 0}, nullptr, 1, 0, 0);
    CHECK(b.labels == std::vector<int64_t>{7, 1});
    // By hand: (255/255 − 0.4914) / 0.2023 = 2.51409 and (0 − 0.4822) / 0.1994 = −2.41825.
    CHECK(b.x[0] == Approx(2.514088).epsilon(1e-6));
    CHECK(b.x[kPlane + 5] == Approx(-2.418255).epsilon(1e-6));
    // Exactly torchvision's float32 arithmetic for every value.
    for (int64_t i = 0; i < 2; ++i) {
        const int64_t record = i == 0 ? 2 : 0;
        for (int64_t j = 0; j < kImage; ++j) {
            const float expected = normalized(d.images[record * kImage + j], j / kPlane);
            if (b.x[i * kImage + j] != expected) FAIL("entry " << i << " value " << j);
        }
    }
    // No crop padding and no flip is the same transform.
    const Augmentation none{0, false};
    CHECK(assemble(d, {2, 0}, &none, 1, 0, 0).x == b.x);
}

TEST_CASE("assemble_batch crops from the zero-padded image and flips, as documented", "[data]") {
    const Dataset d = coordinate_dataset(1);
    const Augmentation augmentation;  // padding 4, flip
    // Padding is the uint8 value 0, so it normalizes to (0 − mean) / std.
    const float padding[3] = {-0.4914f / 0.2023f, -0.4822f / 0.1994f, -0.4465f / 0.2010f};
    std::set<int64_t> tops, lefts;
    int flips = 0;
    int64_t padded = 0;
    constexpr int kPositions = 400;
    const Batch b = assemble(d, std::vector<int64_t>(kPositions, 0), &augmentation, 21, 3, 1000);
    for (int64_t i = 0; i < kPositions; ++i) {
        const Window w = documented_window(21, 3, 1000 + i);
        tops.insert(w.top);
        lefts.insert(w.left);
        flips += w.flip;
        // Window pixel (y, col) is padded pixel (top + y, left + x), x the column before the flip: source
        // (top − 4 + y, left − 4 + x), whose red value is its column + 1 and green its row + 1.
        std::vector<float> expected(kImage);
        for (int64_t y = 0; y < kSide; ++y) {
            for (int64_t col = 0; col < kSide; ++col) {
                const int64_t sy = w.top + y - 4, sx = (w.flip ? kSide - 1 - col : col) + w.left - 4;
                const bool inside = sy >= 0 && sy < kSide && sx >= 0 && sx < kSide;
                padded += !inside;
                const uint8_t codes[3] = {static_cast<uint8_t>(sx + 1), static_cast<uint8_t>(sy + 1), 100};
                for (int64_t c = 0; c < 3; ++c) {
                    expected[c * kPlane + y * kSide + col] = inside ? normalized(codes[c], c) : padding[c];
                }
            }
        }
        const std::vector<float> actual(b.x.begin() + i * kImage, b.x.begin() + (i + 1) * kImage);
        INFO("position " << 1000 + i << ": top " << w.top << ", left " << w.left << ", flip " << w.flip);
        REQUIRE(actual == expected);
    }
    CHECK(padded > 0);
    // Every offset of [0, 8] occurs, and about half of the windows flip.
    CHECK(tops.size() == 9);
    CHECK(lefts.size() == 9);
    CHECK(flips > 160);
    CHECK(flips < 240);
}

TEST_CASE("assemble_batch flip alone mirrors the columns", "[data]") {
    const Dataset d = coordinate_dataset(1);
    const Augmentation flip_only{0, true};
    const Batch plain = assemble(d, {0}, nullptr, 0, 0, 0);
    int mirrored = 0;
    for (int64_t position = 0; position < 16; ++position) {
        const Batch b = assemble(d, {0}, &flip_only, 4, 0, position);
        if (b.x == plain.x) continue;
        ++mirrored;
        for (int64_t c = 0; c < 3; ++c) {
            for (int64_t y = 0; y < kSide; ++y) {
                for (int64_t x = 0; x < kSide; ++x) {
                    REQUIRE(b.x[c * kPlane + y * kSide + x] ==
                            plain.x[c * kPlane + y * kSide + (kSide - 1 - x)]);
                }
            }
        }
    }
    CHECK(mirrored > 0);
    CHECK(mirrored < 16);
}

TEST_CASE("assemble_batch randomness depends only on (seed, epoch, position)", "[data]") {
    const Dataset d = coordinate_dataset(4);
    const Augmentation augmentation;
    const std::vector<int64_t> indices{3, 1, 0, 2, 2, 1, 3, 0};
    const Batch whole = assemble(d, indices, &augmentation, 8, 2, 16);
    // The same positions in two batches (a resumed run) give the same values.
    const Batch front = assemble(d, {3, 1, 0, 2}, &augmentation, 8, 2, 16);
    const Batch back = assemble(d, {2, 1, 3, 0}, &augmentation, 8, 2, 20);
    std::vector<float> joined = front.x;
    joined.insert(joined.end(), back.x.begin(), back.x.end());
    CHECK(joined == whole.x);
    CHECK(assemble(d, indices, &augmentation, 8, 2, 16).x == whole.x);
    CHECK(assemble(d, indices, &augmentation, 8, 3, 16).x != whole.x);
    CHECK(assemble(d, indices, &augmentation, 9, 2, 16).x != whole.x);
    CHECK(assemble(d, indices, &augmentation, 8, 2, 17).x != whole.x);
    CHECK(whole.labels == std::vector<int64_t>{0, 4, 1, 7, 7, 4, 0, 1});
}

TEST_CASE("assemble_batch rejects bad input", "[data]") {
    const Dataset d = coordinate_dataset(2);
    const Augmentation augmentation;
    CHECK_THAT(test::error_message([&] {
                   assemble(d, {0, 2}, nullptr, 0, 0, 0);
               }),
               Catch::Contains("batch entry 1 asks for record 2 of coordinates, which has 2 records"));
    CHECK_THAT(test::error_message([&] { assemble(d, {0}, &augmentation, 0, -1, 0); }),
               Catch::Contains("assemble_batch: epoch -1 is outside [0, 2^32)"));
    const Augmentation negative{-1, true};
    CHECK_THAT(test::error_message([&] { assemble(d, {0}, &negative, 0, 0, 0); }),
               Catch::Contains("crop padding -1 must be >= 0"));
    Dataset gray = d;
    gray.channels = 4;
    CHECK_THAT(test::error_message([&] { assemble(gray, {0}, nullptr, 0, 0, 0); }),
               Catch::Contains("coordinates has 4 channels"));
}
