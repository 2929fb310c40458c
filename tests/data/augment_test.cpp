// The augmentation pipeline: spec text and JSON, the Philox parameter rule (parity with assemble_batch),
// property and statistical tests of the CPU reference, and torchvision 0.14 fixtures.
#include <catch2/catch.hpp>

#include <algorithm>
#include <array>
#include <cmath>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "cudacnn/data/augment.hpp"
#include "cudacnn/data/dataset.hpp"
#include "cudacnn/host_tensor.hpp"
#include "cudacnn/philox.hpp"
#include "support/compare.hpp"
#include "support/errors.hpp"

using namespace cudacnn;
using namespace cudacnn::data;

namespace {

// A (C, H, W) image of Philox values in [0, 1), different per salt.
FloatImage random_image(int64_t channels, int64_t height, int64_t width, uint64_t salt) {
    FloatImage image{channels, height, width,
                     std::vector<float>(static_cast<size_t>(channels * height * width))};
    for (size_t i = 0; i < image.values.size(); ++i)
        image.values[i] = uint32_to_unit_float(philox_draw(salt, 77, i).v[0]);
    return image;
}

FloatImage from_tensor(const HostTensor<float>& t) {
    const auto& s = t.shape();
    return FloatImage{s[0], s[1], s[2], t.values()};
}

float max_abs_diff(const FloatImage& a, const FloatImage& b) {
    REQUIRE(a.values.size() == b.values.size());
    float d = 0.0f;
    for (size_t i = 0; i < a.values.size(); ++i) d = std::max(d, std::fabs(a.values[i] - b.values[i]));
    return d;
}

AugmentOp op_of(const std::string& text) {
    return parse_augment_spec(text).at(0);
}

}  // namespace

TEST_CASE("augment spec: text round trip, canonical form and defaults", "[augment]") {
    const std::string spec =
        "crop:32:4:reflect:0.1/0.2/0.3,hflip,vflip:0.25,jitter:0.1:0.2-0.9:0.3:0.05,grayscale,"
        "erasing:0.4:0.05-0.2:0.5-2:0.5,noise:0.03,saltpepper:0.02:0.7,normalize:0.4914/0.4822/0.4465:0.2";
    const AugmentSpec ops = parse_augment_spec(spec);
    REQUIRE(ops.size() == 9);
    CHECK(ops[0].padding_mode == PadMode::reflect);
    CHECK(ops[0].fill == std::array<float, 3>{0.1f, 0.2f, 0.3f});
    CHECK(ops[1].p == 0.5f);
    CHECK(ops[3].brightness.lo == 0.9f);
    CHECK(ops[3].brightness.hi == 1.1f);
    CHECK(ops[3].contrast.lo == 0.2f);
    CHECK(ops[3].contrast.hi == 0.9f);
    CHECK(ops[3].hue.lo == -0.05f);
    CHECK(ops[4].p == 0.1f);  // RandomGrayscale's default
    CHECK(ops[5].ratio.hi == 2.0f);
    CHECK(ops[8].norm_std == std::array<float, 3>{0.2f, 0.2f, 0.2f});
    const std::string canonical = format_augment_spec(ops);
    CHECK(format_augment_spec(parse_augment_spec(canonical)) == canonical);
    CHECK(augment_spec_to_json(parse_augment_spec(canonical)) == augment_spec_to_json(ops));
    CHECK(format_augment_spec(default_augment_spec()) == "crop:32:4:constant:0,hflip:0.5");
    CHECK(format_augment_spec(parse_augment_spec("jitter:0:0:0:0")) == "jitter:1-1:1-1:1-1:-0-0");
    CHECK(format_augment_spec(parse_augment_spec("jitter:1.5")) == "jitter:0-2.5:1-1:1-1:0-0");
    // RandomPerspective's defaults (distortion 0.5, p 0.5, bilinear) and erasing's value="random".
    CHECK(format_augment_spec(parse_augment_spec("perspective")) == "perspective:0.5:0.5:bilinear:0");
    CHECK(format_augment_spec(parse_augment_spec("perspective:0.3:1:nearest:0.1/0.2/0.3")) ==
          "perspective:0.3:1:nearest:0.1/0.2/0.3");
    const AugmentSpec random = parse_augment_spec("erasing:0.5:0.02-0.33:0.3-3.3:random");
    CHECK(random[0].random_value);
    CHECK(format_augment_spec(random) == "erasing:0.5:0.02-0.33:0.3-3.3:random");
    CHECK(augment_spec_from_json(augment_spec_to_json(random))[0].random_value);
    CHECK(augment_spec_to_json(random)[0]["value"] == "random");
    const nlohmann::json perspective = augment_spec_to_json(parse_augment_spec("perspective:0.25:0.75"));
    CHECK(perspective[0]["distortion_scale"].get<float>() == 0.25f);
    CHECK(perspective[0]["interpolation"] == "bilinear");
    CHECK(format_augment_spec(augment_spec_from_json(nlohmann::json::parse(R"([{"op": "perspective", "p": 1}])"))) ==
          "perspective:0.5:1:bilinear:0");
}

TEST_CASE("augment spec: JSON round trip with torchvision's names and defaults", "[augment]") {
    const AugmentSpec ops = parse_augment_spec(
        "crop:28:2:edge,hflip:0.3,jitter:0.4:0.4:0.4:0.1,erasing,noise:0.1:0.01,saltpepper:0.1,"
        "normalize:0.5:0.25,grayscale:0.2,vflip");
    const nlohmann::json j = augment_spec_to_json(ops);
    CHECK(j[0]["padding_mode"] == "edge");
    CHECK(j[0]["size"] == 28);
    CHECK(j[2]["brightness"][0].get<float>() == 0.6f);
    CHECK(j[3]["scale"][1].get<float>() == 0.33f);
    const AugmentSpec back = augment_spec_from_json(nlohmann::json::parse(j.dump()));
    CHECK(format_augment_spec(back) == format_augment_spec(ops));
    CHECK(augment_spec_to_json(back) == j);
    // Missing keys take the text defaults.
    const AugmentSpec sparse = augment_spec_from_json(nlohmann::json::parse(
        R"([{"op": "crop", "size": 32, "padding": 4}, {"op": "hflip"}, {"op": "grayscale"},
            {"op": "jitter", "hue": [-0.1, 0.1]}])"));
    CHECK(format_augment_spec(sparse) ==
          "crop:32:4:constant:0,hflip:0.5,grayscale:0.1,jitter:1-1:1-1:1-1:-0.1-0.1");
}

TEST_CASE("augment spec: every bad token is named with what is accepted", "[augment]") {
    const std::vector<std::pair<std::string, std::vector<std::string>>> cases = {
        {"", {"augment spec is empty", "crop:SIZE"}},
        {"crop:32:4,,hflip", {"bad token \"\" in op 1", "an op: crop:SIZE"}},
        {"crop:32:4,hflip,sharpen:0.5", {"bad token \"sharpen\" in op 2", "perspective[:DISTORTION"}},
        {"crop", {"bad token \"crop\"", "crop:SIZE[:PADDING[:MODE[:FILL]]] (1 to 4 arguments, got 0)"}},
        {"hflip:0.5:1", {"hflip[:P] (0 to 1 arguments, got 2)"}},
        {"crop:0", {"bad token \"0\"", "SIZE: an integer >= 1"}},
        {"crop:32:-1", {"bad token \"-1\"", "PADDING: an integer >= 0"}},
        {"crop:3x2", {"bad token \"3x2\"", "SIZE: an integer >= 1"}},
        {"crop:32:4:wrap", {"bad token \"wrap\"", "MODE: constant, edge, reflect or symmetric"}},
        {"crop:32:4:edge:0.1/0.2", {"bad token \"0.1/0.2\"", "FILL: one number or three joined by '/'"}},
        {"hflip:1.5", {"bad token \"1.5\" in op 0 \"hflip:1.5\"", "P in [0, 1]"}},
        {"vflip:abc", {"bad token \"abc\"", "P in [0, 1]"}},
        {"grayscale:nan", {"bad token \"nan\"", "P in [0, 1]"}},
        {"jitter:-0.1", {"bad token \"-0.1\"", "B (brightness) (a number or LO-HI) in [0, 1e+30]"}},
        {"jitter:0.1:0.9-0.2", {"bad token \"0.9-0.2\"", "C (contrast): LO-HI with 0 <= LO <= HI"}},
        {"jitter:0.1:0:0:0.6", {"bad token \"0.6\"", "H (hue) (a number or LO-HI) in [0, 0.5]"}},
        {"jitter:0.1:0:0:-0.6-0.1",
         {"bad token \"-0.6-0.1\"", "H (hue): LO-HI with -0.5 <= LO <= HI <= 0.5"}},
        {"erasing:0.5:0.3", {"bad token \"0.3\"", "SCALE: LO-HI with 0 <= LO <= HI <= 1"}},
        {"erasing:0.5:0.1-0.2:0-3", {"bad token \"0-3\"", "RATIO: LO-HI with 0 < LO <= HI"}},
        {"noise:-1", {"bad token \"-1\"", "SIGMA in [0, 1e+30]"}},
        {"noise:0.1:x", {"bad token \"x\"", "MEAN: a number"}},
        {"saltpepper:2", {"bad token \"2\"", "AMOUNT in [0, 1]"}},
        {"saltpepper:0.1:-1", {"bad token \"-1\"", "SALT_VS_PEPPER in [0, 1]"}},
        {"normalize:0.5", {"normalize:MEAN:STD (2 to 2 arguments, got 1)"}},
        {"normalize:0.5:0", {"bad token \"0\"", "STD: one number or three joined by '/', each > 0"}},
        {"normalize:0.5/0.5:1", {"bad token \"0.5/0.5\"", "MEAN: one number or three joined by '/'"}},
    };
    for (const auto& [spec, parts] : cases) {
        INFO("spec \"" << spec << "\"");
        const std::string message = test::error_message([&] { parse_augment_spec(spec); });
        for (const std::string& part : parts) CHECK_THAT(message, Catch::Contains(part));
        if (!spec.empty()) CHECK_THAT(message, Catch::Contains("augment spec \"" + spec + "\""));
    }
    using nlohmann::json;
    const std::vector<std::pair<std::string, std::string>> json_cases = {
        {R"({"op": "hflip"})", "expected a non-empty array of ops"},
        {R"([])", "expected a non-empty array of ops"},
        {R"([3])", "each op must be an object with a string \"op\""},
        {R"([{"op": "sharpen"}])", "unknown op \"sharpen\"; accepted: crop, hflip"},
        {R"([{"op": "affine"}])", "missing \"degrees\" (required for affine)"},
        {R"([{"op": "hflip", "prob": 0.5}])", "unknown key \"prob\" for hflip; accepted: p"},
        {R"([{"op": "crop", "padding": 4}])", "missing \"size\" (required for crop)"},
        {R"([{"op": "normalize", "mean": 0.5}])", "missing \"std\" (required for normalize)"},
        {R"([{"op": "hflip", "p": [1, "a"]}])", "\"a\" is not a number"},
        {R"([{"op": "hflip", "p": {}}])", "must be a number, a string, [lo, hi] or [a, b, c]"},
        {R"([{"op": "hflip", "p": 2}])", "bad token \"2\""},
    };
    for (const auto& [text, part] : json_cases) {
        INFO("JSON " << text);
        CHECK_THAT(test::error_message([&] { augment_spec_from_json(json::parse(text)); }),
                   Catch::Contains(part));
    }
}

TEST_CASE("augment: the default spec + normalize reproduces assemble_batch bit for bit", "[augment]") {
    SyntheticOptions options;
    options.train_size = 64;
    options.test_size = 1;
    const Dataset dataset = make_synthetic(options).train;
    const Normalization n = cifar10_normalization();
    AugmentSpec spec = default_augment_spec();
    AugmentOp normalize;
    normalize.kind = AugmentKind::normalize;
    normalize.norm_mean = n.mean;
    normalize.norm_std = n.stddev;
    spec.push_back(normalize);
    const Augmentation augmentation;  // crop padding 4 + flip
    const uint64_t seed = 1234;
    const int64_t epoch = 5, first_position = 1000, count = 64;
    std::vector<int64_t> indices(count);
    for (int64_t i = 0; i < count; ++i) indices[i] = (i * 37) % dataset.size();
    std::vector<float> x(static_cast<size_t>(count * dataset.image_bytes()));
    std::vector<int64_t> labels(count);
    assemble_batch(dataset, indices.data(), count, &augmentation, n, seed, epoch, first_position, x.data(),
                   labels.data());
    int64_t flips = 0;
    std::set<int64_t> tops;
    for (int64_t i = 0; i < count; ++i) {
        const FloatImage image = to_float_image(dataset.image(indices[i]), 3, 32, 32);
        const FloatImage out = augment_image(spec, image, seed, epoch, first_position + i);
        const std::vector<float> expected(x.begin() + i * dataset.image_bytes(),
                                          x.begin() + (i + 1) * dataset.image_bytes());
        INFO("sample " << i);
        CHECK(out.values == expected);
        const std::vector<int64_t> offsets = augment_word_offsets(spec);
        flips += draw_augment_params(spec[1], seed, epoch, first_position + i, offsets[1], 32, 32).apply;
        tops.insert(draw_augment_params(spec[0], seed, epoch, first_position + i, 0, 32, 32).top);
    }
    // The comparison covered both flip outcomes and many crop offsets.
    CHECK(flips > 10);
    CHECK(flips < count - 10);
    CHECK(tops.size() >= 6);
}

TEST_CASE("augment: flips twice are the identity; p = 0 never and p = 1 always applies", "[augment]") {
    const FloatImage image = random_image(3, 5, 7, 1);
    for (const char* spec : {"hflip:1,hflip:1", "vflip:1,vflip:1", "hflip:0", "vflip:0", "grayscale:0"}) {
        INFO(spec);
        for (int64_t position = 0; position < 20; ++position)
            CHECK(augment_image(parse_augment_spec(spec), image, 3, 0, position).values == image.values);
    }
    const FloatImage once = augment_image(parse_augment_spec("hflip:1"), image, 3, 0, 0);
    CHECK(once.at(1, 2, 0) == image.at(1, 2, 6));
    CHECK(once.at(2, 4, 5) == image.at(2, 4, 1));
    const FloatImage v = augment_image(parse_augment_spec("vflip:1"), image, 3, 0, 0);
    CHECK(v.at(1, 0, 3) == image.at(1, 4, 3));
}

TEST_CASE("augment: crop without padding at offset 0 is the identity; padding modes by hand", "[augment]") {
    const FloatImage image = random_image(3, 6, 6, 2);
    for (const char* mode : {"constant", "edge", "reflect", "symmetric"}) {
        const AugmentOp op = op_of(std::string("crop:6:0:") + mode);
        AugmentParams params;
        CHECK(apply_augment_op(op, params, image, 0, 0, 0, 0).values == image.values);
        // With size = the image and no padding the only offset is 0, whatever the draw.
        CHECK(augment_image({op}, image, 9, 2, 17).values == image.values);
    }
    // One row 0 1 2 3 padded by 2: reflect c b | a b c d | c b, symmetric b a | a b c d | d c, edge a a | … |
    // d d. (4 equal rows, so that the reflect and symmetric limits hold and every padded row reads the same).
    FloatImage row{1, 4, 4, {}};
    for (int64_t y = 0; y < 4; ++y) row.values.insert(row.values.end(), {0.0f, 0.1f, 0.2f, 0.3f});
    AugmentParams at{};
    at.top = 2;  // the image's own row
    auto padded_row = [&](const char* mode) {
        AugmentOp op = op_of(std::string("crop:1:2:") + mode + ":0.9");
        std::vector<float> out;
        for (at.left = 0; at.left < 8; ++at.left) {
            // a 1x1 window slides along the padded row
            out.push_back(apply_augment_op(op, at, row, 0, 0, 0, 0).values[0]);
        }
        return out;
    };
    CHECK(padded_row("constant") == std::vector<float>{0.9f, 0.9f, 0.0f, 0.1f, 0.2f, 0.3f, 0.9f, 0.9f});
    CHECK(padded_row("edge") == std::vector<float>{0.0f, 0.0f, 0.0f, 0.1f, 0.2f, 0.3f, 0.3f, 0.3f});
    CHECK(padded_row("reflect") == std::vector<float>{0.2f, 0.1f, 0.0f, 0.1f, 0.2f, 0.3f, 0.2f, 0.1f});
    CHECK(padded_row("symmetric") == std::vector<float>{0.1f, 0.0f, 0.0f, 0.1f, 0.2f, 0.3f, 0.3f, 0.2f});
    CHECK_THAT(test::error_message([&] { augment_image(parse_augment_spec("crop:12:2"), image, 0, 0, 0); }),
               Catch::Contains("augment op 0 \"crop:12:2:constant:0\" on 3x6x6 images: size 12 is larger than the "
                               "padded image 10x10; use a size of at most 10"));
    CHECK_THAT(
        test::error_message([&] { augment_image(parse_augment_spec("crop:6:6:reflect"), image, 0, 0, 0); }),
        Catch::Contains("reflect padding must be below the image size 6"));
    CHECK_THAT(
        test::error_message([&] { augment_image(parse_augment_spec("crop:6:7:symmetric"), image, 0, 0, 0); }),
        Catch::Contains("symmetric padding must be at most the image size 6"));
}

TEST_CASE("augment: jitter with zero factors, noise with sigma 0, erasing and saltpepper at 0 are identities",
          "[augment]") {
    const FloatImage image = random_image(3, 8, 9, 3);
    for (const char* spec : {"jitter:0:0:0:0", "noise:0", "erasing:0", "saltpepper:0"}) {
        INFO(spec);
        for (int64_t position = 0; position < 10; ++position)
            CHECK(augment_image(parse_augment_spec(spec), image, 5, 1, position).values == image.values);
    }
}

TEST_CASE("augment: normalize then un-normalize gives the image back", "[augment]") {
    const FloatImage image = random_image(3, 8, 8, 4);
    const AugmentOp op = op_of("normalize:0.4914/0.4822/0.4465:0.2023/0.1994/0.2010");
    const FloatImage n = augment_image({op}, image, 0, 0, 0);
    // (v - m) / s · s + m: two roundings of each of two float operations, all within [−3, 3].
    constexpr float kRoundTripTolerance = 4e-7f;
    FloatImage back = n;
    const int64_t plane = 64;
    for (int64_t c = 0; c < 3; ++c)
        for (int64_t i = 0; i < plane; ++i) {
            float& v = back.values[c * plane + i];
            CHECK(v == (image.values[c * plane + i] - op.norm_mean[c]) / op.norm_std[c]);
            v = v * op.norm_std[c] + op.norm_mean[c];
        }
    CHECK(max_abs_diff(back, image) <= kRoundTripTolerance);
}

TEST_CASE("augment: draw rates match p and the offsets are uniform", "[augment]") {
    // N Bernoulli(p) draws: the rate's standard deviation is sqrt(p(1-p)/N); 5 of them bound a correct draw
    // with probability 1 - 6e-7 (the draws are fixed by the seed, so the test is deterministic besides).
    constexpr int64_t kSamples = 20000;
    const AugmentSpec spec = parse_augment_spec("crop:32:4,hflip:0.3,vflip:0.7,grayscale:0.1,erasing:0.5");
    const std::vector<int64_t> offsets = augment_word_offsets(spec);
    CHECK(offsets == std::vector<int64_t>{0, 2, 3, 4, 5});
    std::array<int64_t, 5> hits{};
    std::map<int64_t, int64_t> tops;
    for (int64_t i = 0; i < kSamples; ++i) {
        const int64_t epoch = i % 3, position = i / 3;
        for (size_t k = 1; k < spec.size(); ++k)
            hits[k] += draw_augment_params(spec[k], 11, epoch, position, offsets[k], 32, 32).apply;
        ++tops[draw_augment_params(spec[0], 11, epoch, position, 0, 32, 32).top];
    }
    const double ps[5] = {0, 0.3, 0.7, 0.1, 0.5};
    for (size_t k = 1; k < spec.size(); ++k) {
        INFO("op " << k);
        const double rate = static_cast<double>(hits[k]) / kSamples;
        CHECK(std::fabs(rate - ps[k]) <= 5 * std::sqrt(ps[k] * (1 - ps[k]) / kSamples));
    }
    REQUIRE(tops.size() == 9);  // top in [0, 8]
    for (const auto& [top, n] : tops) {
        INFO("top " << top);
        CHECK(std::fabs(n / double(kSamples) - 1.0 / 9) <= 5 * std::sqrt((1.0 / 9) * (8.0 / 9) / kSamples));
    }
}

TEST_CASE("augment: jitter draws factors in range and all 24 orders", "[augment]") {
    const AugmentOp op = op_of("jitter:0.4:0.2-0.5:0:0.1");
    std::map<std::array<int, 4>, int64_t> orders;
    for (int64_t position = 0; position < 2400; ++position) {
        const AugmentParams p = draw_augment_params(op, 8, 0, position, 3, 32, 32);
        CHECK((p.factors[0] >= 0.6f && p.factors[0] < 1.4f));
        CHECK((p.factors[1] >= 0.2f && p.factors[1] < 0.5f));
        CHECK(p.factors[2] == 1.0f);
        CHECK((p.factors[3] >= -0.1f && p.factors[3] < 0.1f));
        std::array<int, 4> sorted = p.order;
        std::sort(sorted.begin(), sorted.end());
        CHECK(sorted == std::array<int, 4>{0, 1, 2, 3});
        ++orders[p.order];
    }
    CHECK(orders.size() == 24);
    // 100 expected each; 5 standard deviations of a binomial(2400, 1/24) is 49.
    for (const auto& [order, n] : orders) CHECK(std::abs(n - 100) <= 49);
}

TEST_CASE("augment: perspective corners stay in torchvision's ranges and the apply rate follows p", "[augment]") {
    const AugmentOp op = op_of("perspective:0.5:0.3");
    int64_t applied = 0;
    // A 20x13 image: dx = int(0.5 · 10) = 5, dy = int(0.5 · 6) = 3.
    std::array<std::set<int64_t>, 8> seen;
    for (int64_t position = 0; position < 2000; ++position) {
        const AugmentParams p = draw_augment_params(op, 9, 1, position, 0, 13, 20);
        applied += p.apply;
        const std::array<int64_t, 8>& c = p.corners;
        CHECK((c[0] >= 0 && c[0] <= 5 && c[1] >= 0 && c[1] <= 3));      // top-left
        CHECK((c[2] >= 14 && c[2] <= 19 && c[3] >= 0 && c[3] <= 3));    // top-right
        CHECK((c[4] >= 14 && c[4] <= 19 && c[5] >= 9 && c[5] <= 12));   // bottom-right
        CHECK((c[6] >= 0 && c[6] <= 5 && c[7] >= 9 && c[7] <= 12));     // bottom-left
        for (size_t k = 0; k < 8; ++k) seen[k].insert(c[k]);
    }
    for (size_t k = 0; k < 8; ++k) CHECK(seen[k].size() == (k % 2 == 0 ? 6u : 4u));  // every value occurs
    // 600 expected; 5 standard deviations of a binomial(2000, 0.3) is 102.
    CHECK(std::abs(applied - 600) <= 102);
    // Distortion 0 keeps the corners, and the warp is then the identity.
    const FloatImage image = random_image(3, 13, 20, 3);
    CHECK(augment_image(parse_augment_spec("perspective:0:1:nearest"), image, 9, 1, 4).values == image.values);
}

TEST_CASE("augment: erasing with value=random fills its box with standard normal values", "[augment]") {
    const AugmentOp op = op_of("erasing:1:0.3-0.3:1-1:random");
    const FloatImage image = random_image(3, 32, 32, 5);
    double sum = 0.0, squares = 0.0;
    int64_t count = 0;
    for (int64_t position = 0; position < 20; ++position) {
        const AugmentParams p = draw_augment_params(op, 4, 0, position, 0, 32, 32);
        REQUIRE(p.apply);
        const FloatImage out = apply_augment_op(op, p, image, 4, 0, position, 0);
        for (int64_t c = 0; c < 3; ++c)
            for (int64_t y = 0; y < 32; ++y)
                for (int64_t x = 0; x < 32; ++x) {
                    const bool inside = y >= p.top && y < p.top + p.height && x >= p.left && x < p.left + p.width;
                    if (!inside) {
                        CHECK(out.at(c, y, x) == image.at(c, y, x));
                        continue;
                    }
                    sum += out.at(c, y, x);
                    squares += double(out.at(c, y, x)) * out.at(c, y, x);
                    ++count;
                }
    }
    const double mean = sum / count, variance = squares / count - mean * mean;
    // About 18,000 values: the standard error of the mean is 0.0075, of the variance about 0.011.
    CHECK(std::abs(mean) < 0.04);
    CHECK(std::abs(variance - 1.0) < 0.06);
}

TEST_CASE("augment: erasing boxes lie inside the image with areas in the scale range", "[augment]") {
    const AugmentOp op = op_of("erasing:1:0.05-0.2:0.5-2:0.25");
    int64_t erased = 0;
    for (int64_t position = 0; position < 500; ++position) {
        const AugmentParams p = draw_augment_params(op, 4, 0, position, 0, 32, 32);
        if (!p.apply) continue;
        ++erased;
        CHECK((p.height >= 1 && p.width >= 1 && p.height < 32 && p.width < 32));
        CHECK((p.top >= 0 && p.top + p.height <= 32 && p.left >= 0 && p.left + p.width <= 32));
        // round() of each side moves the area by at most (h + w) / 2 + 1/4 pixels.
        const double area = double(p.height * p.width), slack = (p.height + p.width) / 2.0 + 0.25;
        CHECK(area >= 0.05 * 1024 - slack);
        CHECK(area <= 0.2 * 1024 + slack);
    }
    CHECK(erased == 500);  // these boxes always fit, so the first attempt wins
    const FloatImage image = random_image(3, 32, 32, 5);
    AugmentParams p = draw_augment_params(op, 4, 0, 0, 0, 32, 32);
    const FloatImage out = apply_augment_op(op, p, image, 4, 0, 0, 0);
    int64_t changed = 0;
    for (int64_t c = 0; c < 3; ++c)
        for (int64_t y = 0; y < 32; ++y)
            for (int64_t x = 0; x < 32; ++x) {
                const bool inside = y >= p.top && y < p.top + p.height && x >= p.left && x < p.left + p.width;
                CHECK(out.at(c, y, x) == (inside ? 0.25f : image.at(c, y, x)));
                changed += inside;
            }
    CHECK(changed == 3 * p.height * p.width);
    // Boxes that can never fit (scale 1 of a 4x4 image): every attempt fails and the image stays.
    const AugmentOp huge = op_of("erasing:1:1-1:1-1");
    CHECK_FALSE(draw_augment_params(huge, 4, 0, 0, 0, 4, 4).apply);
}

TEST_CASE("augment: gaussian and salt-and-pepper noise statistics and reproducibility", "[augment]") {
    const FloatImage grey{3, 32, 32, std::vector<float>(3 * 1024, 0.5f)};
    const AugmentSpec noise = parse_augment_spec("noise:0.05:0.01");
    const FloatImage a = augment_image(noise, grey, 21, 2, 9);
    CHECK(augment_image(noise, grey, 21, 2, 9).values == a.values);
    CHECK(augment_image(noise, grey, 21, 2, 10).values != a.values);
    CHECK(augment_image(noise, grey, 21, 3, 9).values != a.values);
    // 3072 values of 0.5 + 0.01 + N(0, 0.05) (none near the clamp): mean within 5 · 0.05 / sqrt(3072) =
    // 0.0045, standard deviation within 10% (its own relative deviation is 1/sqrt(2 · 3072) = 1.3%).
    double sum = 0, sq = 0;
    for (float v : a.values) sum += v, sq += double(v) * v;
    const double mean = sum / 3072, sd = std::sqrt(sq / 3072 - mean * mean);
    CHECK(std::fabs(mean - 0.51) <= 0.0045);
    CHECK(std::fabs(sd - 0.05) <= 0.005);
    // amount 0.2, salt_vs_pepper 0.25: 5% salt, 15% pepper, 80% unchanged; 5-sigma bounds of 3072 draws.
    const FloatImage sp = augment_image(parse_augment_spec("saltpepper:0.2:0.25"), grey, 21, 2, 9);
    int64_t salt = 0, pepper = 0;
    for (float v : sp.values) salt += v == 1.0f, pepper += v == 0.0f;
    CHECK(std::fabs(salt / 3072.0 - 0.05) <= 5 * std::sqrt(0.05 * 0.95 / 3072));
    CHECK(std::fabs(pepper / 3072.0 - 0.15) <= 5 * std::sqrt(0.15 * 0.85 / 3072));
    // Two noise ops of one spec draw different values (op index in the counter).
    const FloatImage twice = augment_image(parse_augment_spec("saltpepper:0.5,noise:0"), grey, 1, 0, 0);
    const FloatImage other = augment_image(parse_augment_spec("noise:0,saltpepper:0.5"), grey, 1, 0, 0);
    CHECK(twice.values != other.values);
}

TEST_CASE("augment: colour ops, padding and erase equal torchvision 0.14 (tools/fixtures/augment_color.py)",
          "[augment]") {
    const SafetensorsFile file = test::load_fixture("augment_color");
    const FloatImage x = from_tensor(file.get<float>("x")), x1 = from_tensor(file.get<float>("x1"));
    auto expect = [&](const std::string& name) { return from_tensor(file.get<float>(name)); };
    // Same float32 operations in the same order: exact.
    CHECK(max_abs_diff(rgb_to_grayscale(x, 3), expect("gray3")) == 0.0f);
    CHECK(max_abs_diff(adjust_brightness(x, 0.6f), expect("brightness_0.6")) == 0.0f);
    CHECK(max_abs_diff(adjust_brightness(x, 1.4f), expect("brightness_1.4")) == 0.0f);
    CHECK(max_abs_diff(adjust_saturation(x, 0.3f), expect("saturation_0.3")) == 0.0f);
    CHECK(max_abs_diff(adjust_saturation(x, 1.8f), expect("saturation_1.8")) == 0.0f);
    for (float h : {-0.5f, -0.3f, 0.12f, 0.5f}) {
        INFO("hue " << h);
        CHECK(max_abs_diff(adjust_hue(x, h), expect(fmt::format("hue_{}", h))) == 0.0f);
    }
    // The contrast mean: torch sums float32 in blocks, we sum in double; the means differ by an ulp at most,
    // which moves a blended value by (1 - factor) ulp of 0.5.
    constexpr float kMeanTolerance = 2e-7f;
    for (float f : {0.5f, 1.7f}) {
        INFO("contrast " << f);
        CHECK(max_abs_diff(adjust_contrast(x, f), expect(fmt::format("contrast_{}", f))) <= kMeanTolerance);
        CHECK(max_abs_diff(adjust_contrast(x1, f), expect(fmt::format("contrast1_{}", f))) <= kMeanTolerance);
    }
    AugmentOp jitter = op_of("jitter:0.5:0.5:0.5:0.5");
    AugmentParams params;
    params.factors = {1.3f, 0.7f, 1.5f, -0.2f};
    params.order = {3, 0, 2, 1};
    CHECK(max_abs_diff(apply_augment_op(jitter, params, x, 0, 0, 0, 0), expect("jitter_chain")) <=
          kMeanTolerance);
    for (const char* mode : {"constant", "edge", "reflect", "symmetric"}) {
        INFO(mode);
        AugmentParams at;
        at.top = 2;
        at.left = 1;
        const FloatImage out =
            apply_augment_op(op_of(fmt::format("crop:5:3:{}:0.25", mode)), at, x, 0, 0, 0, 0);
        CHECK(max_abs_diff(out, expect(fmt::format("crop_{}", mode))) == 0.0f);
    }
    AugmentParams box;
    box.apply = true;
    box.top = 1, box.left = 2, box.height = 3, box.width = 4;
    CHECK(max_abs_diff(apply_augment_op(op_of("erasing:1:0.1-0.2:1-2:0.1/0.2/0.3"), box, x, 0, 0, 0, 0),
                       expect("erase")) == 0.0f);
}

TEST_CASE(
    "augment: affine, rotation, perspective and centercrop equal torchvision 0.14 (tools/fixtures/augment_geometry.py)",
    "[augment]") {
    const SafetensorsFile file = test::load_fixture("augment_geometry");
    const FloatImage x = from_tensor(file.get<float>("x"));
    auto expect = [&](const std::string& name) { return from_tensor(file.get<float>(name)); };
    // Sampling coordinates are float32 sums whose order torch's bmm may choose differently, an ulp or so
    // apart; that moves a bilinear value by a few 1e-7 (3.4e-7 measured here): the bound is 6x that.
    constexpr float kBilinearTolerance = 2e-6f;
    for (const bool bilinear : {false, true}) {
        const std::string name = bilinear ? "bilinear" : "nearest";
        INFO(name);
        AugmentParams p;
        p.angle = 23.5f;
        p.translate_x = 1;
        p.translate_y = -2;
        p.scale = 1.1f;
        p.shear = 7.0f;
        const FloatImage affine =
            apply_augment_op(op_of("affine:30:0.1:0.9-1.1:10:" + name + ":0.1/0.2/0.3"), p, x, 0, 0, 0, 0);
        AugmentParams r;
        r.angle = 30.0f;
        const FloatImage rotated =
            apply_augment_op(op_of("rotation:45:" + name + ":0.1/0.2/0.3"), r, x, 0, 0, 0, 0);
        // Nearest picks whole pixels; no coordinate of these cases lies within an ulp of a half, so all
        // match.
        const float tolerance = bilinear ? kBilinearTolerance : 0.0f;
        CHECK(max_abs_diff(affine, expect("affine_" + name)) <= tolerance);
        CHECK(max_abs_diff(rotated, expect("rotate_" + name)) <= tolerance);
        // torch solves the perspective system in float32 by least squares, we in double by elimination: the
        // coefficients differ in their last float bits, which moves coordinates by ~1e-6 px; no nearest
        // coordinate of this case lies that close to a half.
        const FloatImage perspective = warp_perspective(x, {2, 1, 9, 0, 10, 6, 1, 8}, bilinear, {0.1f, 0.2f, 0.3f});
        CHECK(max_abs_diff(perspective, expect("perspective_" + name)) <= (bilinear ? 1e-5f : 0.0f));
        AugmentParams q;
        q.apply = true;
        q.corners = {2, 1, 9, 0, 10, 6, 1, 8};
        CHECK(apply_augment_op(op_of("perspective:0.5:1:" + name + ":0.1/0.2/0.3"), q, x, 0, 0, 0, 0).values ==
              perspective.values);
        q.apply = false;
        CHECK(apply_augment_op(op_of("perspective:0.5:1:" + name), q, x, 0, 0, 0, 0).values == x.values);
    }
    for (int64_t size : {6, 7}) {
        const AugmentOp op = op_of(fmt::format("centercrop:{}", size));
        const FloatImage out = augment_image({op}, x, 0, 0, 0);
        CHECK(max_abs_diff(out, expect(fmt::format("centercrop_{}", size))) == 0.0f);
    }
    CHECK_THAT(test::error_message([&] { augment_image(parse_augment_spec("centercrop:10"), x, 0, 0, 0); }),
               Catch::Contains("augment op 0 \"centercrop:10\" on 3x9x11 images: size 10 is larger than the image; use at most 9"));
}

TEST_CASE("augment: affine and rotation with identity parameters keep the image; draws stay in range",
          "[augment]") {
    const FloatImage image = random_image(3, 8, 10, 7);
    for (const char* spec : {"affine:0", "affine:0:0:1:0:nearest", "rotation:0"}) {
        INFO(spec);
        CHECK(augment_image(parse_augment_spec(spec), image, 2, 0, 3).values == image.values);
    }
    // Bilinear samples at pixel centres computed in float32 ((x + 0.5 - W/2) / (W/2) and back), an ulp or so
    // off, as torchvision's are: the identity holds up to that (3.6e-7 measured).
    constexpr float kIdentityTolerance = 1e-6f;
    for (const char* spec : {"affine:0:0:1:0:bilinear", "rotation:0:bilinear"}) {
        INFO(spec);
        CHECK(max_abs_diff(augment_image(parse_augment_spec(spec), image, 2, 0, 3), image) <=
              kIdentityTolerance);
    }
    const AugmentOp op = op_of("affine:15:0.1/0.2:0.9-1.1:-5-10");
    std::set<int64_t> xs, ys;
    for (int64_t position = 0; position < 1000; ++position) {
        const AugmentParams p = draw_augment_params(op, 3, 0, position, 0, 20, 30);
        CHECK((p.angle >= -15.0f && p.angle < 15.0f));
        CHECK((p.translate_x >= -3 && p.translate_x <= 3));  // 0.1 · width 30
        CHECK((p.translate_y >= -4 && p.translate_y <= 4));  // 0.2 · height 20
        CHECK((p.scale >= 0.9f && p.scale < 1.1f));
        CHECK((p.shear >= -5.0f && p.shear < 10.0f));
        xs.insert(p.translate_x);
        ys.insert(p.translate_y);
    }
    CHECK(xs.size() == 7);
    CHECK(ys.size() == 9);
    // The issue's example spec, and its round trips.
    const AugmentSpec example =
        parse_augment_spec("crop:32:4,hflip,affine:15:0.1:0.9-1.1,jitter:0.1:0.1:0.1:0.05");
    CHECK(format_augment_spec(example) ==
          "crop:32:4:constant:0,hflip:0.5,affine:-15-15:0.1/0.1:0.9-1.1:0-0:nearest:0,"
          "jitter:0.9-1.1:0.9-1.1:0.9-1.1:-0.05-0.05");
    CHECK(format_augment_spec(augment_spec_from_json(augment_spec_to_json(example))) ==
          format_augment_spec(example));
    CHECK(augment_word_offsets(example) == std::vector<int64_t>{0, 2, 3, 8});
    for (const auto& [spec, part] : std::vector<std::pair<std::string, std::string>>{
             {"affine:400", "DEGREES (a number or LO-HI) in [0, 360]"},
             {"affine:10:0.1/0.2/0.3", "TRANSLATE: T or TX/TY, each in [0, 1]"},
             {"affine:10:1.5", "TRANSLATE (T or TX/TY) in [0, 1]"},
             {"affine:10:0:0", "SCALE: a number or LO-HI, > 0"},
             {"affine:10:0:1:0:cubic", "INTERP: nearest or bilinear"},
             {"rotation:10:nearest:1/2", "FILL: one number or three joined by '/'"},
             {"centercrop:0", "SIZE: an integer >= 1"}}) {
        INFO(spec);
        CHECK_THAT(test::error_message([&] { parse_augment_spec(spec); }), Catch::Contains(part));
    }
}

TEST_CASE("augment: resizedcrop's resize equals torchvision 0.14; its windows follow scale and ratio",
          "[augment]") {
    const SafetensorsFile file = test::load_fixture("augment_geometry");
    const FloatImage x = from_tensor(file.get<float>("x"));
    // ATen's upsample loop rounds its products in another order (an ulp apart on values below 1, 1.2e-7
    // measured): the bound is 2.5x that.
    constexpr float kResizeTolerance = 3e-7f;
    for (int64_t size : {8, 3}) {
        INFO("size " << size);
        AugmentParams window;
        window.top = 1, window.left = 2, window.height = 5, window.width = 6;
        const FloatImage out =
            apply_augment_op(op_of(fmt::format("resizedcrop:{}", size)), window, x, 0, 0, 0, 0);
        CHECK(max_abs_diff(out, from_tensor(file.get<float>(fmt::format("resizedcrop_{}", size)))) <=
              kResizeTolerance);
    }
    const AugmentOp op = op_of("resizedcrop:32:0.25-0.5:0.5-2");
    CHECK(format_augment_spec(parse_augment_spec("resizedcrop:24")) ==
          "resizedcrop:24:0.08-1:0.75-1.3333334");
    for (int64_t position = 0; position < 500; ++position) {
        const AugmentParams p = draw_augment_params(op, 6, 1, position, 0, 40, 40);
        CHECK((p.top >= 0 && p.left >= 0 && p.top + p.height <= 40 && p.left + p.width <= 40));
        // Rounding each side moves the area by at most (h + w) / 2 + 1/4 pixels and the ratio a little.
        const double area = double(p.height * p.width), slack = (p.height + p.width) / 2.0 + 0.25;
        CHECK(area >= 0.25 * 1600 - slack);
        CHECK(area <= 0.5 * 1600 + slack);
        const double ratio = double(p.width) / p.height;
        CHECK((ratio >= 0.5 * 0.85 && ratio <= 2 / 0.85));
    }
    // A window that can never be drawn (scale 1 with ratio 2 of a square): the central fallback, clamped to
    // the ratio: width 40, height round(40 / 2) = 20, centred.
    const AugmentParams fallback = draw_augment_params(op_of("resizedcrop:8:1-1:2-2"), 0, 0, 0, 0, 40, 40);
    CHECK(fallback.width == 40);
    CHECK(fallback.height == 20);
    CHECK(fallback.top == 10);
    CHECK(fallback.left == 0);
    CHECK(augment_image(parse_augment_spec("resizedcrop:8"), x, 1, 2, 3).height == 8);
    CHECK_THAT(test::error_message([&] { parse_augment_spec("resizedcrop:8:0-0"); }),
               Catch::Contains("SCALE: LO-HI with 0 <= LO <= HI <= 1, HI > 0"));
}
