// The synthetic dataset: determinism, balance, splits that differ, classes that shape tells apart and
// brightness does not; and Dataset's prefix and checks.
#include <catch2/catch.hpp>

#include <cmath>
#include <cstdint>
#include <vector>

#include "cudacnn/data/dataset.hpp"
#include "support/errors.hpp"

using namespace cudacnn;
using namespace cudacnn::data;

namespace {

std::vector<uint8_t> image_of(const Dataset& d, int64_t i) {
    return std::vector<uint8_t>(d.image(i), d.image(i) + d.image_bytes());
}

// The mean of all bytes of record i.
double brightness(const Dataset& d, int64_t i) {
    double sum = 0.0;
    for (int64_t j = 0; j < d.image_bytes(); ++j) sum += d.image(i)[j];
    return sum / static_cast<double>(d.image_bytes());
}

}  // namespace

TEST_CASE("make_synthetic: sizes, names, labels i % 10 and balanced classes", "[data]") {
    const Splits s = make_synthetic(SyntheticOptions{120, 40, 7});
    CHECK(s.train.name == "synthetic train");
    CHECK(s.test.name == "synthetic test");
    REQUIRE(s.train.size() == 120);
    REQUIRE(s.test.size() == 40);
    CHECK(s.train.images.size() == 120u * 3072u);
    CHECK(s.train.num_classes == 10);
    CHECK(s.train.class_names == std::vector<std::string>{"circle", "square", "triangle", "plus", "ring",
                                                          "horizontal_stripes", "vertical_stripes",
                                                          "diagonal_stripes", "checkerboard", "dots"});
    for (int64_t i = 0; i < s.train.size(); ++i) CHECK(s.train.labels[i] == i % 10);
    CHECK(s.train.class_counts() == std::vector<int64_t>(10, 12));
    CHECK(s.test.class_counts() == std::vector<int64_t>(10, 4));
    CHECK_NOTHROW(s.train.validate());
    CHECK_NOTHROW(s.test.validate());

    const Splits defaults = make_synthetic(SyntheticOptions{});
    CHECK(defaults.train.size() == 10000);
    CHECK(defaults.test.size() == 2000);
    CHECK(defaults.train.class_counts() == std::vector<int64_t>(10, 1000));
}

TEST_CASE("make_synthetic is deterministic in the seed; train and test differ", "[data]") {
    const Splits a = make_synthetic(SyntheticOptions{50, 20, 3});
    const Splits b = make_synthetic(SyntheticOptions{50, 20, 3});
    const Splits other = make_synthetic(SyntheticOptions{50, 20, 4});
    CHECK(a.train.images == b.train.images);
    CHECK(a.test.images == b.test.images);
    CHECK(a.train.labels == b.train.labels);
    // Record i does not depend on how many records are made.
    const Splits longer = make_synthetic(SyntheticOptions{60, 0, 3});
    CHECK(longer.train.first(50).images == a.train.images);
    for (int64_t i = 0; i < 20; ++i) {
        INFO("record " << i);
        CHECK(image_of(a.train, i) != image_of(other.train, i));
        CHECK(image_of(a.train, i) != image_of(a.test, i));
    }
}

TEST_CASE("make_synthetic images use the whole range and every class varies in colour", "[data]") {
    const Splits s = make_synthetic(SyntheticOptions{200, 0, 11});
    const Dataset& d = s.train;
    for (int64_t i = 0; i < d.size(); ++i) {
        // Two colours at least 64 apart in every channel (plus noise): each channel spans >= 40 levels.
        for (int64_t c = 0; c < 3; ++c) {
            const uint8_t* plane = d.image(i) + c * 1024;
            const auto [lo, hi] = std::minmax_element(plane, plane + 1024);
            INFO("record " << i << " channel " << c);
            CHECK(*hi - *lo >= 40);
        }
    }
    // The first pixel's colour of a class's records spreads over the range, so colour does not give the
    // class.
    for (int64_t label = 0; label < 10; ++label) {
        double lo = 255, hi = 0;
        for (int64_t i = label; i < d.size(); i += 10) {
            lo = std::min<double>(lo, d.image(i)[0]);
            hi = std::max<double>(hi, d.image(i)[0]);
        }
        INFO("class " << label);
        CHECK(hi - lo >= 128);
    }
}

TEST_CASE("make_synthetic classes are not told apart by mean brightness", "[data]") {
    // Nearest class mean of the brightness, fitted on train and scored on test, stays near chance (10 %).
    const Splits s = make_synthetic(SyntheticOptions{2000, 1000, 5});
    std::vector<double> class_mean(10, 0.0);
    for (int64_t i = 0; i < s.train.size(); ++i)
        class_mean[s.train.labels[i]] += brightness(s.train, i) / 200.0;
    int64_t correct = 0;
    for (int64_t i = 0; i < s.test.size(); ++i) {
        const double b = brightness(s.test, i);
        int64_t best = 0;
        for (int64_t k = 1; k < 10; ++k) {
            if (std::fabs(b - class_mean[k]) < std::fabs(b - class_mean[best])) best = k;
        }
        correct += best == s.test.labels[i];
    }
    const double accuracy = static_cast<double>(correct) / static_cast<double>(s.test.size());
    INFO("brightness accuracy " << accuracy);
    CHECK(accuracy < 0.2);
}

TEST_CASE("Dataset::first keeps a prefix; validate and image check their input", "[data]") {
    const Dataset d = make_synthetic(SyntheticOptions{30, 0, 1}).train;
    const Dataset head = d.first(7);
    CHECK(head.name == d.name);
    CHECK(head.size() == 7);
    CHECK(head.class_names == d.class_names);
    CHECK(head.images == std::vector<uint8_t>(d.images.begin(), d.images.begin() + 7 * 3072));
    CHECK(head.labels == std::vector<int64_t>(d.labels.begin(), d.labels.begin() + 7));
    CHECK(d.first(1000).size() == 30);
    CHECK(d.first(0).size() == 0);
    CHECK_THAT(test::error_message([&] { d.first(-1); }),
               Catch::Contains("cannot take the first -1 records"));
    CHECK_THAT(test::error_message([&] { d.image(30); }),
               Catch::Contains("synthetic train: record 30 is outside [0, 30)"));

    Dataset bad = d.first(3);
    bad.labels[2] = 10;
    CHECK_THAT(test::error_message([&] { bad.validate(); }),
               Catch::Contains("synthetic train: record 2 has label 10, outside [0, 10)"));
    bad.labels[2] = 0;
    bad.images.pop_back();
    CHECK_THAT(test::error_message([&] { bad.validate(); }),
               Catch::Contains("9215 image bytes for 3 labels"));
}
