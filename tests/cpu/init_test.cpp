// Tests of parameter initialization: fans, bounds, the Philox mapping, distribution statistics,
// reproducibility and independence of streams, PyTorch's fans and bounds, bad arguments. Initialization is
// not differentiated, so there is no gradient check; and PyTorch's values come from another generator, so
// the fixture (tools/fixtures/init.py) holds what defines the distributions instead of values.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "cudacnn/ops/batch_norm.hpp"
#include "cudacnn/ops/init.hpp"
#include "cudacnn/philox.hpp"
#include "support/compare.hpp"

using namespace cudacnn;
using namespace cudacnn::cpu;
using Catch::Matchers::Contains;

namespace {

constexpr uint64_t kSeed = 0x5eed;

// Statistical tolerances: every check below allows 5 standard errors of its statistic. For a correct
// generator each such check fails with probability 5.7e-7 (normal tails; the sample sizes here make the
// statistics normal to well within that), so all of them together with probability < 1e-4 for a random seed.
// The seeds are fixed, so the tests are deterministic; the bound says that passing them is no accident.
constexpr double kSigmas = 5.0;

// Mean, variance and a 16-bin histogram of values that should be U(−bound, bound).
template <class T>
void check_uniform_statistics(const HostTensor<T>& t, double bound) {
    const double n = static_cast<double>(t.numel());
    double sum = 0.0, sum_sq = 0.0;
    constexpr int kBins = 16;
    std::vector<double> counts(kBins, 0.0);
    for (int64_t i = 0; i < t.numel(); ++i) {
        const double x = t[i];
        sum += x;
        sum_sq += x * x;
        const int bin = std::min(kBins - 1, static_cast<int>((x + bound) / (2 * bound) * kBins));
        counts[static_cast<size_t>(bin)] += 1.0;
    }
    const double mean = sum / n, variance = sum_sq / n - mean * mean;
    // U(−b, b): mean 0 with standard error b / sqrt(3n); variance b²/3 with standard error
    // sqrt(E[x⁴] − E[x²]²) / sqrt(n) = sqrt(b⁴/5 − b⁴/9) / sqrt(n) = b² sqrt(4/45) / sqrt(n).
    INFO("mean " << mean << ", variance " << variance << ", expected " << bound * bound / 3);
    CHECK(std::fabs(mean) <= kSigmas * bound / std::sqrt(3 * n));
    CHECK(std::fabs(variance - bound * bound / 3) <= kSigmas * bound * bound * std::sqrt(4.0 / 45.0) / std::sqrt(n));
    // Each bin count is binomial(n, 1/16): standard deviation sqrt(n · 1/16 · 15/16).
    for (int b = 0; b < kBins; ++b) {
        INFO("bin " << b << " holds " << counts[size_t(b)] << " of " << n);
        CHECK(std::fabs(counts[size_t(b)] - n / kBins) <= kSigmas * std::sqrt(n / kBins * (1 - 1.0 / kBins)));
    }
}

// Pearson correlation of two equally long sequences; for independent ones it is ~N(0, 1/n).
template <class T>
double correlation(const T* a, const T* b, int64_t n) {
    double ma = 0, mb = 0;
    for (int64_t i = 0; i < n; ++i) {
        ma += a[i];
        mb += b[i];
    }
    ma /= static_cast<double>(n);
    mb /= static_cast<double>(n);
    double sab = 0, saa = 0, sbb = 0;
    for (int64_t i = 0; i < n; ++i) {
        sab += (a[i] - ma) * (b[i] - mb);
        saa += (a[i] - ma) * (a[i] - ma);
        sbb += (b[i] - mb) * (b[i] - mb);
    }
    return sab / std::sqrt(saa * sbb);
}

}  // namespace

TEST_CASE("fan_in and fan_out follow PyTorch's _calculate_fan_in_and_fan_out", "[init]") {
    CHECK(fan_in(Shape{32, 3, 3, 3}) == 27);      // Conv2d(3, 32, 3)
    CHECK(fan_out(Shape{32, 3, 3, 3}) == 288);
    CHECK(fan_in(Shape{6, 8 / 2, 3, 5}) == 60);    // Conv2d(8, 6, (3, 5), groups=2): in/groups · kh · kw
    CHECK(fan_in(Shape{1024, 4096}) == 4096);      // Linear(4096, 1024)
    CHECK(fan_out(Shape{1024, 4096}) == 1024);
    CHECK(fan_in(Shape{4, 2, 3, 3, 3}) == 54);     // rank 5 (a 3-d conv) works the same way
}

TEST_CASE("leaky_relu_gain(sqrt(5)) makes the kaiming bound 1 / sqrt(fan_in)", "[init]") {
    CHECK(leaky_relu_gain(0.0) == Approx(std::sqrt(2.0)).epsilon(1e-15));
    CHECK(leaky_relu_gain(std::sqrt(5.0)) == Approx(std::sqrt(1.0 / 3.0)).epsilon(1e-15));
}

TEST_CASE("uniform_init maps draw i of the stream to lo + (hi - lo) * u_i", "[init]") {
    // The spec that a GPU init kernel must meet: element i reads philox_draw(seed, stream, i / 4).v[i % 4].
    const auto t = uniform_init<double>(Shape{3, 3}, -2.0, 3.0, kSeed, 7);
    for (int64_t i = 0; i < 9; ++i) {
        const double u = uint32_to_unit_float(philox_draw(kSeed, 7, uint64_t(i) / 4).v[i % 4]);
        CHECK(t[i] == -2.0 + 5.0 * u);
    }
    const auto f = uniform_init<float>(Shape{3, 3}, -2.0, 3.0, kSeed, 7);
    for (int64_t i = 0; i < 9; ++i) CHECK(f[i] == static_cast<float>(t[i]));  // one rounding of the same value
    const auto point = uniform_init<float>(Shape{5}, 1.5, 1.5, kSeed, 0);  // lo == hi is allowed, as in PyTorch
    for (int64_t i = 0; i < 5; ++i) CHECK(point[i] == 1.5f);
}

TEST_CASE("default_weight_init: U(-1/sqrt(fan_in), 1/sqrt(fan_in)) for conv and linear weights", "[init]") {
    SECTION("conv weight (64, 32, 3, 3), fan_in 288") {
        const Shape shape{64, 32, 3, 3};
        const auto w = default_weight_init<float>(shape, kSeed, 0);
        REQUIRE(w.shape() == shape);
        // PyTorch's order: sqrt(3) · (gain / sqrt(fan_in)); equal to 1 / sqrt(fan_in) up to a rounding.
        const double bound = std::sqrt(3.0) * (std::sqrt(2.0 / 6.0) / std::sqrt(288.0));
        CHECK(bound == Approx(1.0 / std::sqrt(288.0)).epsilon(1e-15));
        double max_abs = 0.0;
        for (int64_t i = 0; i < w.numel(); ++i) max_abs = std::max(max_abs, std::fabs(double(w[i])));
        CHECK(max_abs <= static_cast<float>(bound));
        CHECK(max_abs > 0.999 * bound);  // 18432 values come within 0.1% of the bound with probability > 0.99999
        check_uniform_statistics(w, bound);
    }
    SECTION("linear weight (512, 512), fan_in 512, in double") {
        const auto w = default_weight_init<double>(Shape{512, 512}, kSeed, 3);
        const double bound = 1.0 / std::sqrt(512.0);
        for (int64_t i = 0; i < w.numel(); ++i) REQUIRE(std::fabs(w[i]) <= bound * (1 + 1e-15));
        check_uniform_statistics(w, bound);
    }
    SECTION("grouped conv weight: fan_in uses in_channels / groups") {
        // Conv2d(8, 6, 3, groups=2): weight (6, 4, 3, 3), fan_in 36, bound 1/6.
        const auto w = default_weight_init<double>(Shape{6, 4, 3, 3}, kSeed, 1);
        double max_abs = 0.0;
        for (int64_t i = 0; i < w.numel(); ++i) max_abs = std::max(max_abs, std::fabs(w[i]));
        CHECK(max_abs <= 1.0 / 6.0 * (1 + 1e-15));
        CHECK(max_abs > 0.9 / 6.0);  // 216 values: none above 0.9 b has probability 0.9^216 ≈ 1e-10
    }
}

TEST_CASE("kaiming_uniform_init with a = 0 has bound sqrt(6 / fan_in)", "[init]") {
    const auto w = kaiming_uniform_init<double>(Shape{256, 1024}, 0.0, kSeed, 11);
    check_uniform_statistics(w, std::sqrt(6.0 / 1024.0));
}

TEST_CASE("default_bias_init: U(-1/sqrt(fan_in), 1/sqrt(fan_in)) of the weight's fan_in", "[init]") {
    const auto b = default_bias_init<float>(Shape{1 << 16}, 4096, kSeed, 2);
    const double bound = 1.0 / 64.0;
    for (int64_t i = 0; i < b.numel(); ++i) REQUIRE(std::fabs(double(b[i])) <= bound);
    check_uniform_statistics(b, bound);
}

TEST_CASE("batchnorm: gamma ones, beta zeros", "[init]") {
    const auto gamma = batchnorm_weight_init<float>(32);
    const auto beta = batchnorm_bias_init<double>(32);
    REQUIRE(gamma.shape() == Shape({32}));
    REQUIRE(beta.shape() == Shape({32}));
    for (int64_t i = 0; i < 32; ++i) {
        CHECK(gamma[i] == 1.0f);
        CHECK(beta[i] == 0.0);
    }
}

TEST_CASE("init is reproducible for a seed, and streams and seeds are independent", "[init]") {
    const Shape shape{256, 256};
    const int64_t n = shape.numel();
    const auto a = default_weight_init<double>(shape, kSeed, 0);
    const auto again = default_weight_init<double>(shape, kSeed, 0);
    const auto other_stream = default_weight_init<double>(shape, kSeed, 1);
    const auto other_seed = default_weight_init<double>(shape, kSeed + 1, 0);
    CHECK(a.values() == again.values());

    // Independent sequences: correlation ~N(0, 1/n), so |r| <= 5 / sqrt(n); equal values would give r = 1.
    const double limit = kSigmas / std::sqrt(double(n));
    CHECK(std::fabs(correlation(a.data(), other_stream.data(), n)) <= limit);
    CHECK(std::fabs(correlation(a.data(), other_seed.data(), n)) <= limit);
    // Neighbours within one tensor, including the four lanes of one Philox block, are independent too.
    CHECK(std::fabs(correlation(a.data(), a.data() + 1, n - 1)) <= kSigmas / std::sqrt(double(n - 1)));
    CHECK(std::fabs(correlation(a.data(), a.data() + 4, n - 4)) <= kSigmas / std::sqrt(double(n - 4)));
    int64_t equal = 0;
    for (int64_t i = 0; i < n; ++i) equal += a[i] == other_stream[i];
    CHECK(equal < 16);  // 2^24 grid points: ~n / 2^24 ≈ 0.004 coincidences expected

    // A bigger tensor on the same stream starts with the same values: element i depends on i only.
    // (Same fan_in, 256, so the same bound.)
    const auto longer = default_weight_init<double>(Shape{512, 256}, kSeed, 0);
    for (int64_t i = 0; i < n; ++i) REQUIRE(longer[i] == a[i]);
}

namespace {

// The layers of tools/fixtures/init.py: CifarCNN's convolutions and linears, a grouped and a depthwise conv.
const std::vector<std::string> kInitLayers = {"conv1", "conv2",        "conv3",         "conv4",
                                              "conv5", "conv6",        "fc1",           "fc2",
                                              "fc3",   "conv_groups2", "conv_depthwise"};

// max |value| of n samples of U(−b, b) stays below (1 − t) · b with probability (1 − t)^n ≤ e^(−t·n); with
// t = 20 / n that is at most e^−20 ≈ 2e-9, so a bound that the samples do not come near is not theirs.
// Only for n > 20, where t < 1.
template <class T>
void check_reaches_bound(const HostTensor<T>& t, double bound) {
    const double n = static_cast<double>(t.numel());
    if (n <= 20) return;
    double max_abs = 0.0;
    for (int64_t i = 0; i < t.numel(); ++i) max_abs = std::max(max_abs, std::fabs(static_cast<double>(t[i])));
    INFO("max |value| " << max_abs << " of " << n << ", bound " << bound);
    CHECK(max_abs <= static_cast<float>(bound));  // float rounding may reach the bound itself
    CHECK(max_abs > (1 - 20 / n) * bound);
}

}  // namespace

TEST_CASE("init: fans, gains and bounds are PyTorch's, for CifarCNN's layers (tests/fixtures/init)",
          "[init][fixture]") {
    const SafetensorsFile file = test::load_fixture("init");
    // Same formula as torch.nn.init.calculate_gain; only libm's sqrt rounding may differ (~1e-16).
    CHECK(leaky_relu_gain(0.0) == Approx(file.get<double>("gain.a0")[0]).epsilon(1e-15));
    for (size_t k = 0; k < kInitLayers.size(); ++k) {
        const std::string& name = kInitLayers[k];
        SECTION(name) {
            const Shape shape(file.get<int64_t>(name + ".shape").values());
            const auto fans = file.get<int64_t>(name + ".fans");     // fan_in, fan_out
            const auto bounds = file.get<double>(name + ".bounds");  // gain, weight bound, bias bound
            const auto absmax = file.get<double>(name + ".absmax");  // of PyTorch's own samples
            CHECK(fan_in(shape) == fans[0]);
            CHECK(fan_out(shape) == fans[1]);
            CHECK(leaky_relu_gain(std::sqrt(5.0)) == Approx(bounds[0]).epsilon(1e-15));
            const double weight_bound = bounds[1], bias_bound = bounds[2];

            // PyTorch's samples fill exactly these ranges (so the bounds are the support, not just a limit).
            CHECK(absmax[0] <= static_cast<float>(weight_bound));
            CHECK(absmax[1] <= static_cast<float>(bias_bound));
            if (shape.numel() > 20) {
                CHECK(absmax[0] > (1 - 20.0 / static_cast<double>(shape.numel())) * weight_bound);
            }
            if (shape[0] > 20) CHECK(absmax[1] > (1 - 20.0 / static_cast<double>(shape[0])) * bias_bound);

            // Ours: the same ranges, filled uniformly.
            const auto stream = static_cast<uint64_t>(2 * k);
            const auto w = default_weight_init<float>(shape, kSeed, stream);
            const auto b = default_bias_init<float>(Shape{shape[0]}, fan_in(shape), kSeed, stream + 1);
            check_reaches_bound(w, weight_bound);
            check_reaches_bound(b, bias_bound);
            check_uniform_statistics(w, weight_bound);
            check_uniform_statistics(b, bias_bound);
        }
    }
    SECTION("batch norm: nn.BatchNorm2d(32)'s parameters and buffers") {
        CHECK(batchnorm_weight_init<float>(32).values() == file.get<float>("bn.weight").values());
        CHECK(batchnorm_bias_init<float>(32).values() == file.get<float>("bn.bias").values());
        const auto running = BatchNorm2dRunningStats<float>::initial(32);
        CHECK(running.running_mean.values() == file.get<float>("bn.running_mean").values());
        CHECK(running.running_var.values() == file.get<float>("bn.running_var").values());
        CHECK(running.num_batches_tracked == file.get<int64_t>("bn.num_batches_tracked")[0]);
    }
}

TEST_CASE("init rejects bad shapes and ranges", "[init][errors]") {
    REQUIRE_THROWS_WITH(fan_in(Shape{10}),
                        Contains("fan_in: weight shape (10) has rank 1; fan-in and fan-out need (out, in, ...)"));
    REQUIRE_THROWS_WITH(fan_out(Shape{0, 3, 3, 3}), Contains("fan_out: weight shape (0, 3, 3, 3) has no elements"));
    REQUIRE_THROWS_WITH(default_weight_init<float>(Shape{8, 0}, kSeed, 0),
                        Contains("fan_in: weight shape (8, 0) has no elements"));
    REQUIRE_THROWS_WITH(uniform_init<float>(Shape{4}, 1.0, -1.0, kSeed, 0),
                        Contains("uniform_init: range [1, -1) must be finite with lo <= hi"));
    REQUIRE_THROWS_WITH(uniform_init<float>(Shape{4}, 0.0, INFINITY, kSeed, 0),
                        Contains("uniform_init: range [0, inf) must be finite"));
    REQUIRE_THROWS_WITH(uniform_init<double>(Shape{3, 0}, 0.0, 1.0, kSeed, 0),
                        Contains("uniform_init: shape (3, 0) has no elements"));
    REQUIRE_THROWS_WITH(default_bias_init<float>(Shape{16}, 0, kSeed, 0),
                        Contains("default_bias_init: weight fan_in 0 must be at least 1"));
    REQUIRE_THROWS_WITH(default_bias_init<float>(Shape{4, 4}, 9, kSeed, 0),
                        Contains("default_bias_init: bias shape (4, 4) must be (out_channels)"));
    REQUIRE_THROWS_WITH(batchnorm_weight_init<float>(0), Contains("batchnorm_weight_init: channels 0 must be"));
    REQUIRE_THROWS_WITH(batchnorm_bias_init<float>(-2), Contains("batchnorm_bias_init: channels -2 must be"));
    REQUIRE_THROWS_WITH(kaiming_uniform_init<float>(Shape{4, 4}, NAN, kSeed, 0),
                        Contains("leaky_relu_gain: negative slope nan must be finite"));
}
