// Dropout and dropout2d: the documented Philox mask rule, reproducibility, kept fractions, channel masks,
// scaling, eval mode and p = 0 / p = 1, gradient checks with a fixed mask, PyTorch fixtures (everything but
// the mask itself) and bad arguments.
#include <catch2/catch.hpp>

#include <cmath>
#include <cstdint>
#include <limits>
#include <string>
#include <utility>
#include <vector>

#include "cudacnn/ops/dropout.hpp"
#include "cudacnn/philox.hpp"
#include "support/compare.hpp"
#include "support/gradcheck.hpp"

using namespace cudacnn;
using cudacnn::test::check_gradient;
using cudacnn::test::random_tensor;
using cudacnn::test::weighted_sum;

namespace {

cpu::DropoutOptions training(double p, uint64_t seed = 1234, uint64_t stream = 5) {
    cpu::DropoutOptions options;
    options.p = p;
    options.training = true;
    options.seed = seed;
    options.stream = stream;
    return options;
}

int64_t count_kept(const HostTensor<uint8_t>& mask) {
    int64_t kept = 0;
    for (int64_t i = 0; i < mask.numel(); ++i) kept += mask[i] != 0 ? 1 : 0;
    return kept;
}

int64_t count_differences(const HostTensor<uint8_t>& a, const HostTensor<uint8_t>& b) {
    int64_t n = 0;
    for (int64_t i = 0; i < a.numel(); ++i) n += a[i] != b[i] ? 1 : 0;
    return n;
}

// The header's rule restated with integers, independently of uint32_to_unit_float: u = k · 2^-24 with
// k = bits >> 8, and u ≥ p  ⇔  k ≥ ⌈p · 2^24⌉ (for p a float, p · 2^24 is exact in double).
bool rule_keeps(uint64_t seed, uint64_t stream, uint64_t unit, double p) {
    const uint32_t bits = philox_draw(seed, stream, unit / 4).v[unit % 4];
    const double threshold = std::ceil(static_cast<double>(static_cast<float>(p)) * 16777216.0);
    return static_cast<double>(bits >> 8) >= threshold;
}

}  // namespace

TEST_CASE("dropout: unit j is kept when uint32_to_unit_float(philox_draw(seed, stream, j/4).v[j%4]) >= p",
          "[dropout]") {
    const Shape shape{3, 7, 5};  // 105 elements: not a multiple of 4, so the last draw is used in part
    for (double p : {0.1, 0.3, 0.5, 0.9}) {
        const auto options = training(p, 987654321987ull, (1ull << 33) + 7);  // high words used too
        const auto mask = cpu::dropout_mask(shape, options);
        REQUIRE(mask.shape() == shape);
        for (int64_t j = 0; j < mask.numel(); ++j) {
            INFO("p " << p << " element " << j);
            REQUIRE((mask[j] == 1) == rule_keeps(options.seed, options.stream, static_cast<uint64_t>(j), p));
        }
    }
    // dropout2d: unit j = n · C + c, the same rule.
    const auto options = training(0.4, 77, 3);
    const auto mask2d = cpu::dropout2d_mask(Shape{5, 6, 2, 3}, options);
    REQUIRE(mask2d.shape() == Shape({5, 6}));
    for (int64_t n = 0; n < 5; ++n) {
        for (int64_t c = 0; c < 6; ++c) {
            const auto j = static_cast<uint64_t>(n * 6 + c);
            CHECK((mask2d[n * 6 + c] == 1) == rule_keeps(77, 3, j, 0.4));
        }
    }
    // What the forward ops use is that mask, for float and double alike.
    const auto x = random_tensor<float>(shape, 1);
    const auto mask = cpu::dropout_mask(shape, training(0.3));
    CHECK(cpu::dropout(x, training(0.3)).mask.values() == mask.values());
    CHECK(cpu::dropout(x.cast<double>(), training(0.3)).mask.values() == mask.values());
    const auto x4 = random_tensor<float>(Shape{5, 6, 2, 3}, 2);
    CHECK(cpu::dropout2d(x4, options).mask.values() == mask2d.values());
    CHECK(cpu::dropout2d(x4.cast<double>(), options).mask.values() == mask2d.values());
}

TEST_CASE("dropout: masks repeat for the same seed and stream and differ for another", "[dropout]") {
    const Shape shape{4, 8, 16, 16};  // 8192 elements
    const auto a = cpu::dropout_mask(shape, training(0.5, 1, 0));
    CHECK(cpu::dropout_mask(shape, training(0.5, 1, 0)).values() == a.values());
    // Independent masks with p = 0.5 differ in half the elements (±1.5% is > 10σ for 8192 of them).
    const int64_t n = shape.numel();
    const int64_t other_seed = count_differences(a, cpu::dropout_mask(shape, training(0.5, 2, 0)));
    const int64_t other_stream = count_differences(a, cpu::dropout_mask(shape, training(0.5, 1, 1)));
    CHECK(std::abs(other_seed - n / 2) < n * 15 / 1000);
    CHECK(std::abs(other_stream - n / 2) < n * 15 / 1000);
    const auto c = cpu::dropout2d_mask(shape, training(0.5, 1, 0));
    CHECK(cpu::dropout2d_mask(shape, training(0.5, 1, 0)).values() == c.values());
    CHECK(count_differences(c, cpu::dropout2d_mask(shape, training(0.5, 1, 1))) > 0);
}

TEST_CASE("dropout: the kept fraction is 1 − p within a binomial bound", "[dropout]") {
    // The number kept of n units is Binomial(n, 1 − p) for a fair generator: standard deviation
    // σ = √(n p (1 − p)). A 6σ bound fails for a fair generator with probability ~2e-9, while a wrong rule
    // (keeping with probability p instead of 1 − p, a badly scaled u, reused draws) misses it by far more:
    // with n = 2^17, 6σ ≤ 0.0083 in the fraction. The 2^-24 grid of u biases the fraction by at most 6e-8.
    const Shape shape{8, 16, 32, 32};  // 131072 elements
    for (double p : {0.05, 0.1, 0.5, 0.9}) {
        const auto mask = cpu::dropout_mask(shape, training(p, 42, 9));
        const double n = static_cast<double>(mask.numel());
        const double bound = 6 * std::sqrt(p * (1 - p) / n);
        INFO("p " << p << " kept fraction " << count_kept(mask) / n << " bound " << bound);
        CHECK(std::fabs(count_kept(mask) / n - (1 - p)) <= bound);
    }
    // dropout2d decides per channel: 100 · 200 = 20000 channels, 6σ ≤ 0.021.
    for (double p : {0.05, 0.5}) {
        const auto mask = cpu::dropout2d_mask(Shape{100, 200, 3, 3}, training(p, 43, 9));
        const double n = static_cast<double>(mask.numel());
        const double bound = 6 * std::sqrt(p * (1 - p) / n);
        INFO("p " << p << " kept fraction " << count_kept(mask) / n << " bound " << bound);
        CHECK(std::fabs(count_kept(mask) / n - (1 - p)) <= bound);
    }
}

TEST_CASE("dropout: kept values are scaled by 1 / (1 − p), dropped ones are 0, backward uses the same mask",
          "[dropout]") {
    const double p = 0.3;
    const auto x = random_tensor<double>(Shape{3, 4, 5}, 3, 0.5, 2.0);  // nonzero, so dropped = exactly 0
    const auto result = cpu::dropout(x, training(p));
    const auto dy = random_tensor<double>(x.shape(), 4, 0.5, 2.0);
    const auto dx = cpu::dropout_backward(dy, result.mask, training(p)).dx;
    int64_t kept = 0;
    for (int64_t i = 0; i < x.numel(); ++i) {
        if (result.mask[i] != 0) {
            ++kept;
            CHECK(result.y[i] == Approx(x[i] / 0.7).epsilon(1e-15));
            CHECK(dx[i] == Approx(dy[i] / 0.7).epsilon(1e-15));
        } else {
            CHECK(result.y[i] == 0.0);
            CHECK(dx[i] == 0.0);
        }
    }
    CHECK(kept > 0);
    CHECK(kept < x.numel());

    // float: x / (1 − p) rounded once.
    const auto xf = x.cast<float>();
    const auto yf = cpu::dropout(xf, training(p)).y;
    for (int64_t i = 0; i < x.numel(); ++i) {
        const double expected = result.mask[i] != 0 ? static_cast<double>(xf[i]) / 0.7 : 0.0;
        CHECK(yf[i] == static_cast<float>(expected));
    }

    // As in PyTorch (y = x · mask · scale), NaN in x stays NaN even where the element is dropped.
    HostTensor<float> nan_x(Shape{64}, std::numeric_limits<float>::quiet_NaN());
    const auto nan_y = cpu::dropout(nan_x, training(0.5)).y;
    for (int64_t i = 0; i < nan_y.numel(); ++i) CHECK(std::isnan(nan_y[i]));
}

TEST_CASE("dropout2d zeroes whole channels of (N, C, H, W) and scales the rest", "[dropout]") {
    const double p = 0.5;
    const auto x = random_tensor<double>(Shape{4, 6, 3, 5}, 5, 0.5, 2.0);
    const auto result = cpu::dropout2d(x, training(p));
    REQUIRE(result.mask.shape() == Shape({4, 6}));
    const auto dy = random_tensor<double>(x.shape(), 6, 0.5, 2.0);
    const auto dx = cpu::dropout2d_backward(dy, result.mask, training(p)).dx;
    int64_t kept_channels = 0;
    for (int64_t n = 0; n < 4; ++n) {
        for (int64_t c = 0; c < 6; ++c) {
            const bool kept = result.mask[n * 6 + c] != 0;
            kept_channels += kept ? 1 : 0;
            for (int64_t h = 0; h < 3; ++h) {
                for (int64_t w = 0; w < 5; ++w) {
                    const int64_t i = offset_nchw(x.shape(), n, c, h, w);
                    CHECK(result.y[i] == (kept ? Approx(x[i] * 2.0).epsilon(1e-15) : Approx(0.0).margin(0)));
                    CHECK(dx[i] == (kept ? Approx(dy[i] * 2.0).epsilon(1e-15) : Approx(0.0).margin(0)));
                }
            }
        }
    }
    // Both outcomes occur among 24 channels (else the test would prove little).
    CHECK(kept_channels > 0);
    CHECK(kept_channels < 24);
}

TEST_CASE("dropout: eval mode and p = 0 are the identity, p = 1 zeros everything", "[dropout]") {
    const auto x = random_tensor<float>(Shape{2, 3, 4, 5}, 7);
    const auto dy = random_tensor<float>(x.shape(), 8);
    cpu::DropoutOptions eval = training(0.5);
    eval.training = false;
    for (const cpu::DropoutOptions& options : {eval, training(0.0)}) {
        const auto y = cpu::dropout(x, options);
        CHECK(y.y.values() == x.values());
        CHECK(count_kept(y.mask) == x.numel());
        CHECK(cpu::dropout_backward(dy, y.mask, options).dx.values() == dy.values());
        const auto y2 = cpu::dropout2d(x, options);
        CHECK(y2.y.values() == x.values());
        CHECK(count_kept(y2.mask) == 6);
        CHECK(cpu::dropout2d_backward(dy, y2.mask, options).dx.values() == dy.values());
    }
    const auto all = training(1.0);
    const auto y = cpu::dropout(x, all);
    CHECK(count_kept(y.mask) == 0);
    CHECK(y.y.values() == std::vector<float>(120, 0.0f));
    CHECK(cpu::dropout_backward(dy, y.mask, all).dx.values() == std::vector<float>(120, 0.0f));
    const auto y2 = cpu::dropout2d(x, all);
    CHECK(count_kept(y2.mask) == 0);
    CHECK(y2.y.values() == std::vector<float>(120, 0.0f));
    CHECK(cpu::dropout2d_backward(dy, y2.mask, all).dx.values() == std::vector<float>(120, 0.0f));
    // PyTorch's defaults.
    CHECK(cpu::DropoutOptions{}.p == 0.5);
    CHECK(cpu::DropoutOptions{}.training);
}

TEST_CASE("dropout: backward matches central differences with the mask fixed by (seed, stream)",
          "[dropout][gradcheck]") {
    cpu::DropoutOptions eval = training(0.3);
    eval.training = false;
    const std::vector<std::pair<const char*, cpu::DropoutOptions>> cases = {
        {"p 0.3", training(0.3)}, {"p 0.5", training(0.5, 99, 1)},
        {"p 0", training(0.0)},   {"p 1", training(1.0)},
        {"eval", eval},
    };
    for (const auto& named : cases) {
        const char* name = named.first;
        const cpu::DropoutOptions options = named.second;
        SECTION(std::string("dropout ") + name) {
            const auto x = random_tensor<double>(Shape{2, 3, 4, 5}, 10);
            const auto r = random_tensor<double>(x.shape(), 11);
            const auto mask = cpu::dropout(x, options).mask;
            const auto analytic = cpu::dropout_backward(r, mask, options).dx;
            const auto result = check_gradient(
                [&](const HostTensor<double>& xx) { return weighted_sum(cpu::dropout(xx, options).y, r); }, x,
                analytic);
            INFO(result.report);
            REQUIRE(result.ok());
        }
        SECTION(std::string("dropout2d ") + name) {
            const auto x = random_tensor<double>(Shape{3, 4, 2, 3}, 12);
            const auto r = random_tensor<double>(x.shape(), 13);
            const auto mask = cpu::dropout2d(x, options).mask;
            const auto analytic = cpu::dropout2d_backward(r, mask, options).dx;
            const auto result = check_gradient(
                [&](const HostTensor<double>& xx) { return weighted_sum(cpu::dropout2d(xx, options).y, r); },
                x, analytic);
            INFO(result.report);
            REQUIRE(result.ok());
        }
    }
}

// --- PyTorch fixtures (tools/fixtures/dropout.py) --------------------------------------------------------

namespace {

// The cases of tools/fixtures/dropout.py (same names and p).
struct FixtureCase {
    std::string name;
    bool channels;  // dropout2d: one mask entry per (n, c)
    double p;
};
const std::vector<FixtureCase> kFixtureCases = {
    {"dropout_p0.3", false, 0.3}, {"dropout_p0.5", false, 0.5},  {"dropout_p0", false, 0.0},
    {"dropout_p1", false, 1.0},   {"dropout2d_p0.3", true, 0.3}, {"dropout2d_p0.5", true, 0.5},
    {"dropout2d_p1", true, 1.0},
};

// Tolerances (max_relative_error per tensor). double: both sides compute x · (1 / (1 − p)) in double, the
// same two roundings, so only a contracted multiply could differ (~1e-16); 1e-15 allows for that. float:
// PyTorch rounds the scale 1 / (1 − p) to float before multiplying, we round x / (1 − p) once from double;
// the two are at most ~1.5 float ulps apart (~2e-7), so 1e-6 has a margin of 5 (tighter than the issue's
// 1e-5).
constexpr double kFixtureDoubleTolerance = 1e-15;
constexpr double kFixtureFloatTolerance = 1e-6;

// PyTorch's masks come from its own generator, so one case checks what does not depend on the mask: the
// backward given PyTorch's mask, the forward where both masks keep a unit, zeros where ours drops one, whole
// channels for dropout2d, and the identity in eval mode.
template <class T>
void check_fixture_case(const SafetensorsFile& file, const FixtureCase& c, const std::string& tag,
                        double tolerance) {
    const std::string key = c.name + "." + tag + ".";
    INFO(key);
    REQUIRE(file.get<double>(c.name + ".p")[0] == c.p);
    const auto x = file.get<T>(key + "x"), dy = file.get<T>(key + "dy"), y = file.get<T>(key + "y");
    const cpu::DropoutOptions options = training(c.p);

    // PyTorch's mask, read back from y: x is never zero, so y is zero exactly where a unit was dropped.
    const Shape mask_shape = c.channels ? Shape{x.dim(0), x.dim(1)} : x.shape();
    const int64_t unit_size = x.numel() / mask_shape.numel();  // H · W for dropout2d, else 1
    HostTensor<uint8_t> torch_mask(mask_shape);
    for (int64_t j = 0; j < mask_shape.numel(); ++j) {
        torch_mask[j] = y[j * unit_size] != T(0) ? 1 : 0;
        for (int64_t i = 1; i < unit_size; ++i) {
            INFO("unit " << j << " element " << i);  // PyTorch's dropout2d drops whole channels, as ours
            REQUIRE((y[j * unit_size + i] != T(0)) == (torch_mask[j] != 0));
        }
    }
    if (c.p > 0 && c.p < 1) {  // both outcomes, or the case would prove little
        CHECK(count_kept(torch_mask) > 0);
        CHECK(count_kept(torch_mask) < torch_mask.numel());
    }

    const auto dx = c.channels ? cpu::dropout2d_backward(dy, torch_mask, options).dx
                               : cpu::dropout_backward(dy, torch_mask, options).dx;
    CHECK(test::max_relative_error(dx, file.get<T>(key + "dx")) <= tolerance);

    const auto ours = c.channels ? cpu::dropout2d(x, options) : cpu::dropout(x, options);
    std::vector<T> ours_kept, torch_kept;
    for (int64_t i = 0; i < x.numel(); ++i) {
        const int64_t j = i / unit_size;
        if (ours.mask[j] == 0) {
            CHECK(ours.y[i] == T(0));
        } else if (torch_mask[j] != 0) {
            ours_kept.push_back(ours.y[i]);
            torch_kept.push_back(y[i]);
        }
    }
    if (c.p < 1) {
        const auto n = static_cast<int64_t>(ours_kept.size());
        REQUIRE(n > 0);
        CHECK(test::max_relative_error(HostTensor<T>(Shape{n}, ours_kept),
                                       HostTensor<T>(Shape{n}, torch_kept)) <= tolerance);
    } else {
        CHECK(count_kept(ours.mask) == 0);
    }

    cpu::DropoutOptions eval = options;
    eval.training = false;
    const auto y_eval = c.channels ? cpu::dropout2d(x, eval).y : cpu::dropout(x, eval).y;
    CHECK(y_eval.values() == file.get<T>(key + "y_eval").values());
}

}  // namespace

TEST_CASE(
    "dropout and dropout2d match PyTorch's scaling, whole channels and eval identity "
    "(tests/fixtures/dropout)",
    "[dropout][fixture]") {
    const SafetensorsFile file = test::load_fixture("dropout");
    for (const FixtureCase& c : kFixtureCases) {
        check_fixture_case<double>(file, c, "f64", kFixtureDoubleTolerance);
        check_fixture_case<float>(file, c, "f32", kFixtureFloatTolerance);
    }
}

TEST_CASE("dropout: bad arguments raise Error naming the op and the values", "[dropout][errors]") {
    using Catch::Contains;
    const HostTensor<float> x(Shape{2, 3, 4, 5}, 1.0f);
    CHECK_THROWS_WITH(cpu::dropout(x, training(-0.1)), Contains("dropout: p is -0.1; it must be in [0, 1]"));
    CHECK_THROWS_WITH(cpu::dropout(x, training(1.5)), Contains("dropout: p is 1.5"));
    CHECK_THROWS_WITH(cpu::dropout(x, training(std::nan(""))), Contains("dropout: p is nan"));
    CHECK_THROWS_WITH(cpu::dropout2d(x, training(2.0)), Contains("dropout2d: p is 2"));
    CHECK_THROWS_WITH(cpu::dropout_mask(x.shape(), training(-1.0)), Contains("dropout_mask: p is -1"));
    CHECK_THROWS_WITH(cpu::dropout2d_mask(x.shape(), training(-1.0)), Contains("dropout2d_mask: p is -1"));
    CHECK_THROWS_WITH(cpu::dropout_backward(x, HostTensor<uint8_t>(x.shape()), training(1.01)),
                      Contains("dropout_backward: p is 1.01"));
    CHECK_THROWS_WITH(cpu::dropout(HostTensor<float>(), training(0.5)),
                      Contains("dropout: the input is empty"));
    CHECK_THROWS_WITH(cpu::dropout_mask(Shape{2, 0, 3}, training(0.5)),
                      Contains("dropout_mask: shape (2, 0, 3) has no elements"));
    CHECK_THROWS_WITH(cpu::dropout2d(HostTensor<float>(Shape{3, 4, 5}), training(0.5)),
                      Contains("dropout2d: x has shape (3, 4, 5); it must be (N, C, H, W)"));
    CHECK_THROWS_WITH(cpu::dropout2d(HostTensor<float>(Shape{2, 0, 4, 5}), training(0.5)),
                      Contains("dropout2d: x has shape (2, 0, 4, 5); every dimension must be positive"));
    CHECK_THROWS_WITH(cpu::dropout_backward(x, HostTensor<uint8_t>(Shape{2, 3}), training(0.5)),
                      Contains("dropout_backward: mask has shape (2, 3) but dy has shape (2, 3, 4, 5)"));
    CHECK_THROWS_WITH(
        cpu::dropout2d_backward(x, HostTensor<uint8_t>(x.shape()), training(0.5)),
        Contains("dropout2d_backward: mask has shape (2, 3, 4, 5) but dy (2, 3, 4, 5) needs (2, 3)"));
    CHECK_THROWS_AS(cpu::dropout(x, training(7.0)), Error);
}
