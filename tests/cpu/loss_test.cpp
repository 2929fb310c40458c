// Tests of the CPU reference softmax, log_softmax, cross_entropy and accuracy: hand-computed values, large
// logits, double gradient checks for every option, PyTorch fixtures in float and double, and bad arguments.
#include <catch2/catch.hpp>

#include <cmath>
#include <limits>
#include <string>
#include <vector>

#include <fmt/format.h>

#include "cudacnn/ops/loss.hpp"
#include "support/compare.hpp"
#include "support/gradcheck.hpp"

using namespace cudacnn;
using Catch::Matchers::Contains;
using cudacnn::cpu::CrossEntropyOptions;
using cudacnn::cpu::Reduction;
using cudacnn::test::check_gradient;
using cudacnn::test::load_fixture;
using cudacnn::test::max_relative_error;
using cudacnn::test::random_tensor;
using cudacnn::test::weighted_sum;

namespace {

const char* reduction_name(Reduction r) {
    return r == Reduction::mean ? "mean" : r == Reduction::sum ? "sum" : "none";
}

HostTensor<int64_t> labels_of(std::vector<int64_t> values) {
    const auto n = static_cast<int64_t>(values.size());
    return HostTensor<int64_t>(Shape{n}, std::move(values));
}

HostTensor<double> scalar(double v) {
    return HostTensor<double>(Shape{}, std::vector<double>{v});
}

}  // namespace

// ---- softmax / log_softmax ------------------------------------------------------------------------------

TEST_CASE("softmax and log_softmax: hand-computed rows", "[loss][softmax]") {
    // Row 0: exp of (0, log 2, log 5) is (1, 2, 5), so p = (1, 2, 5) / 8. Row 1: equal logits, p = 1/3 each.
    const HostTensor<double> x(Shape{2, 3}, {0, std::log(2.0), std::log(5.0), 7, 7, 7});
    const auto p = cpu::softmax(x);
    const std::vector<double> expected{1.0 / 8, 2.0 / 8, 5.0 / 8, 1.0 / 3, 1.0 / 3, 1.0 / 3};
    const auto lp = cpu::log_softmax(x);
    for (int i = 0; i < 6; ++i) {
        CHECK(p[i] == Approx(expected[i]).epsilon(1e-15));
        CHECK(lp[i] == Approx(std::log(expected[i])).epsilon(1e-15));
    }
    CHECK(p.shape() == x.shape());
    CHECK(lp.shape() == x.shape());

    // dx = y ⊙ (dy − Σ dy ⊙ y): with y = (1/4, 3/4) and dy = (1, 0), Σ dy ⊙ y = 1/4 and dx = (3/16, −3/16).
    const HostTensor<double> y(Shape{1, 2}, {0.25, 0.75}), dy(Shape{1, 2}, {1, 0});
    CHECK(cpu::softmax_backward(y, dy).dx.values() == std::vector<double>{3.0 / 16, -3.0 / 16});
    // dx = dy − exp(y) · Σ dy: with log-probabilities log(1/4), log(3/4) and dy = (1, 0): (3/4, −3/4).
    const HostTensor<double> ly(Shape{1, 2}, {std::log(0.25), std::log(0.75)});
    const auto dlx = cpu::log_softmax_backward(ly, dy).dx;
    CHECK(dlx[0] == Approx(0.75).epsilon(1e-15));
    CHECK(dlx[1] == Approx(-0.75).epsilon(1e-15));
}

TEMPLATE_TEST_CASE("softmax and log_softmax: stable for large logits", "[loss][softmax]", float, double) {
    // exp(1e4) overflows even double; subtracting the row maximum makes these exact.
    const HostTensor<TestType> x(Shape{2, 2}, {10000, 10000, -10000, 0});
    const auto p = cpu::softmax(x);
    CHECK(p.values() == std::vector<TestType>{0.5, 0.5, 0, 1});
    const auto lp = cpu::log_softmax(x);
    CHECK(lp[0] == Approx(-std::log(2.0)));
    CHECK(lp[1] == Approx(-std::log(2.0)));
    CHECK(lp[2] == -10000);
    CHECK(lp[3] == 0);
}

TEST_CASE("softmax and log_softmax: gradient check in double", "[loss][softmax][gradcheck]") {
    const auto x = random_tensor<double>(Shape{4, 6}, 21, -3, 3);
    const auto r = random_tensor<double>(Shape{4, 6}, 22);
    const auto gs = cpu::softmax_backward(cpu::softmax(x), r).dx;
    auto rs = check_gradient([&](const HostTensor<double>& xx) { return weighted_sum(cpu::softmax(xx), r); },
                             x, gs);
    INFO(rs.report);
    CHECK(rs.ok());
    const auto gl = cpu::log_softmax_backward(cpu::log_softmax(x), r).dx;
    auto rl = check_gradient(
        [&](const HostTensor<double>& xx) { return weighted_sum(cpu::log_softmax(xx), r); }, x, gl);
    INFO(rl.report);
    CHECK(rl.ok());
}

// PyTorch's F.softmax / F.log_softmax and autograd on (6, 10) logits of scale 3 and 1e4.
// Tolerances: double 1e-13 (the same formula, a few roundings of exp and log apart); float 1e-5, the
// project's float bound (PyTorch's float kernels err by a few ulps, ~1e-7 relative per tensor).
template <class T>
void check_softmax_fixture(const std::string& dtype, double tolerance) {
    const auto file = load_fixture("loss_softmax");
    for (const std::string scale : {"unit", "large"}) {
        const std::string key = dtype + "." + scale + ".";
        INFO(key);
        const auto x = file.get<T>(key + "x");
        const auto dy = file.get<T>(key + "dy");
        const auto p = cpu::softmax(x);
        CHECK(max_relative_error(p, file.get<T>(key + "softmax")) <= tolerance);
        CHECK(max_relative_error(cpu::softmax_backward(p, dy).dx, file.get<T>(key + "softmax_dx")) <=
              tolerance);
        const auto lp = cpu::log_softmax(x);
        CHECK(max_relative_error(lp, file.get<T>(key + "log_softmax")) <= tolerance);
        CHECK(max_relative_error(cpu::log_softmax_backward(lp, dy).dx, file.get<T>(key + "log_softmax_dx")) <=
              tolerance);
    }
}

TEST_CASE("softmax and log_softmax: match PyTorch fixtures", "[loss][softmax][fixture]") {
    check_softmax_fixture<double>("f64", 1e-13);
    check_softmax_fixture<float>("f32", 1e-5);
}

TEST_CASE("softmax and log_softmax: bad arguments", "[loss][softmax][errors]") {
    CHECK_THROWS_WITH(cpu::softmax(HostTensor<float>(Shape{4}, 1.0f)),
                      Contains("softmax: x has shape (4); it must be (N, C)"));
    CHECK_THROWS_WITH(cpu::log_softmax(HostTensor<float>(Shape{2, 0})),
                      Contains("log_softmax: x has shape (2, 0)") && Contains("positive"));
    CHECK_THROWS_WITH(cpu::softmax_backward(HostTensor<float>(Shape{2, 3}), HostTensor<float>(Shape{3, 2})),
                      Contains("softmax_backward: dy has shape (3, 2) but y has shape (2, 3)"));
    CHECK_THROWS_WITH(
        cpu::log_softmax_backward(HostTensor<float>(Shape{2, 3}), HostTensor<float>(Shape{2, 4})),
        Contains("log_softmax_backward: dy has shape (2, 4) but y has shape (2, 3)"));
}

// ---- cross_entropy ---------------------------------------------------------------------------------------

TEST_CASE("cross_entropy: hand-computed losses and gradients", "[loss][cross_entropy]") {
    // Sample 0: logits (0, log 3) give p = (1/4, 3/4); label 1. Sample 1: logits (log 3, 0), p = (3/4, 1/4);
    // label 1. −log p[label] = log(4/3) and log 4.
    const HostTensor<double> z(Shape{2, 2}, {0, std::log(3.0), std::log(3.0), 0});
    const auto labels = labels_of({1, 1});
    const double l0 = std::log(4.0 / 3), l1 = std::log(4.0);

    SECTION("mean, sum and none") {
        CrossEntropyOptions<double> o;
        CHECK(cpu::cross_entropy(z, labels, o)[0] == Approx((l0 + l1) / 2).epsilon(1e-15));
        CHECK(cpu::cross_entropy(z, labels, o).shape() == Shape{});
        o.reduction = Reduction::sum;
        CHECK(cpu::cross_entropy(z, labels, o)[0] == Approx(l0 + l1).epsilon(1e-15));
        o.reduction = Reduction::none;
        const auto none = cpu::cross_entropy(z, labels, o);
        CHECK(none.shape() == Shape{2});
        CHECK(none[0] == Approx(l0).epsilon(1e-15));
        CHECK(none[1] == Approx(l1).epsilon(1e-15));
        // d/dz = p − onehot(label), per sample times the upstream gradient.
        const auto g =
            cpu::cross_entropy_backward(z, labels, HostTensor<double>(Shape{2}, {2, -1}), o).dlogits;
        const std::vector<double> expected{2 * 0.25, 2 * -0.25, -1 * 0.75, -1 * -0.75};
        for (int i = 0; i < 4; ++i) CHECK(g[i] == Approx(expected[i]).epsilon(1e-15));
        o.reduction = Reduction::mean;
        const auto gm = cpu::cross_entropy_backward(z, labels, scalar(1), o).dlogits;
        // 'mean' divides by N = 2: (p − onehot) / 2 with an upstream gradient of 1.
        const std::vector<double> expected_mean{0.25 / 2, -0.25 / 2, 0.75 / 2, -0.75 / 2};
        for (int i = 0; i < 4; ++i) CHECK(gm[i] == Approx(expected_mean[i]).epsilon(1e-15));
    }
    SECTION("label smoothing: (1 − ε) · nll + ε · mean over classes of −log p") {
        CrossEntropyOptions<double> o;
        o.label_smoothing = 0.5;
        o.reduction = Reduction::none;
        const auto none = cpu::cross_entropy(z, labels, o);
        const double smooth = (std::log(4.0) + std::log(4.0 / 3)) / 2;  // the same for both samples
        CHECK(none[0] == Approx(0.5 * l0 + 0.5 * smooth).epsilon(1e-15));
        CHECK(none[1] == Approx(0.5 * l1 + 0.5 * smooth).epsilon(1e-15));
        // Gradient of sample 0: 0.5 · (p − onehot) + 0.5 · (p − 1/2) = 0.5 · (1/4, −1/4) + 0.5 · (−1/4, 1/4)
        // = 0.
        const auto g =
            cpu::cross_entropy_backward(z, labels, HostTensor<double>(Shape{2}, {1, 1}), o).dlogits;
        CHECK(g[0] == Approx(0).margin(1e-15));
        CHECK(g[1] == Approx(0).margin(1e-15));
        // Sample 1: 0.5 · (3/4, −3/4) + 0.5 · (1/4, −1/4) = (1/2, −1/2).
        CHECK(g[2] == Approx(0.5).epsilon(1e-15));
        CHECK(g[3] == Approx(-0.5).epsilon(1e-15));
    }
    SECTION("class weights: the mean divides by the sum of the labels' weights") {
        const HostTensor<double> w(Shape{2}, {3, 0.5});
        const auto mixed = labels_of({0, 1});  // weights 3 and 0.5
        CrossEntropyOptions<double> o;
        o.weight = &w;
        const double nll0 = std::log(4.0),
                     nll1 = std::log(4.0);  // p[0] of sample 0 and p[1] of sample 1: 1/4
        CHECK(cpu::cross_entropy(z, mixed, o)[0] == Approx((3 * nll0 + 0.5 * nll1) / 3.5).epsilon(1e-15));
        o.reduction = Reduction::sum;
        CHECK(cpu::cross_entropy(z, mixed, o)[0] == Approx(3 * nll0 + 0.5 * nll1).epsilon(1e-15));
        // With smoothing, PyTorch weighs the uniform term by the class weights too, and 'mean' divides it by
        // the same Σ w[label]: per sample ε/C · Σ_c w[c] · (−log p[c]).
        o.reduction = Reduction::mean;
        o.label_smoothing = 0.2;
        const double s0 = 3 * std::log(4.0) + 0.5 * std::log(4.0 / 3);
        const double s1 = 3 * std::log(4.0 / 3) + 0.5 * std::log(4.0);
        CHECK(cpu::cross_entropy(z, mixed, o)[0] ==
              Approx((0.8 * (3 * nll0 + 0.5 * nll1) + 0.1 * (s0 + s1)) / 3.5).epsilon(1e-15));
    }
    SECTION("ignore_index: ignored samples contribute nothing, also to the mean's denominator") {
        CrossEntropyOptions<double> o;
        o.label_smoothing = 0.3;
        const auto ignored = labels_of({-100, 1});
        o.reduction = Reduction::none;
        const auto only = cpu::cross_entropy(z, labels, o);
        const auto none = cpu::cross_entropy(z, ignored, o);
        CHECK(none[0] == 0);
        CHECK(none[1] == only[1]);
        o.reduction = Reduction::mean;
        CHECK(cpu::cross_entropy(z, ignored, o)[0] == Approx(only[1]).epsilon(1e-15));
        const auto g = cpu::cross_entropy_backward(z, ignored, scalar(1), o).dlogits;
        CHECK(g[0] == 0);
        CHECK(g[1] == 0);
        // ignore_index may be a valid class, as in PyTorch.
        o.ignore_index = 1;
        CHECK(cpu::cross_entropy(z, labels_of({0, 1}), o)[0] ==
              Approx(0.7 * std::log(4.0) + 0.15 * (std::log(4.0) + std::log(4.0 / 3))).epsilon(1e-15));
    }
    SECTION("every sample ignored: the mean is NaN and the gradient zero, as in PyTorch") {
        CrossEntropyOptions<double> o;
        const auto all_ignored = labels_of({-100, -100});
        CHECK(std::isnan(cpu::cross_entropy(z, all_ignored, o)[0]));
        CHECK(cpu::cross_entropy_backward(z, all_ignored, scalar(1), o).dlogits.values() ==
              std::vector<double>(4, 0.0));
        o.reduction = Reduction::sum;
        CHECK(cpu::cross_entropy(z, all_ignored, o)[0] == 0);
    }
}

TEMPLATE_TEST_CASE("cross_entropy: stable for large logits", "[loss][cross_entropy]", float, double) {
    // Logits (1e4, 0), label 1: the loss is exactly 1e4 and the gradient (1, −1); a naive exp overflows.
    const HostTensor<TestType> z(Shape{1, 2}, {10000, 0});
    const auto label = labels_of({1});
    CrossEntropyOptions<TestType> o;
    CHECK(cpu::cross_entropy(z, label, o)[0] == 10000);
    const auto g = cpu::cross_entropy_backward(z, label, HostTensor<TestType>(Shape{}, {1}), o).dlogits;
    CHECK(g.values() == std::vector<TestType>{1, -1});
    o.label_smoothing = 0.1;  // (0.9 + 0.05) · 1e4 + 0.05 · 0
    CHECK(cpu::cross_entropy(z, label, o)[0] == Approx(9500));
    // A −inf logit with ε = 0 must not give 0 · inf = NaN through the smoothing term.
    const HostTensor<TestType> z_inf(Shape{1, 2}, {-std::numeric_limits<TestType>::infinity(), 0});
    o.label_smoothing = 0;
    CHECK(cpu::cross_entropy(z_inf, label, o)[0] == 0);
}

TEST_CASE("cross_entropy: gradient check in double for every option", "[loss][cross_entropy][gradcheck]") {
    const int64_t n = 5, c = 4;
    const auto z = random_tensor<double>(Shape{n, c}, 31, -3, 3);
    const auto w = random_tensor<double>(Shape{c}, 32, 0.25, 2);
    const auto labels = labels_of({2, 0, 3, 3, 1});
    const auto labels_ignore = labels_of({2, -100, 3, -100, 1});
    for (const Reduction reduction : {Reduction::mean, Reduction::sum, Reduction::none}) {
        for (const double smoothing : {0.0, 0.1, 1.0}) {
            for (const bool weighted : {false, true}) {
                for (const bool ignore : {false, true}) {
                    INFO(fmt::format("reduction {}, label_smoothing {}, weight {}, ignore {}",
                                     reduction_name(reduction), smoothing, weighted, ignore));
                    CrossEntropyOptions<double> o;
                    o.reduction = reduction;
                    o.label_smoothing = smoothing;
                    o.weight = weighted ? &w : nullptr;
                    const auto& y = ignore ? labels_ignore : labels;
                    const auto r =
                        reduction == Reduction::none ? random_tensor<double>(Shape{n}, 33) : scalar(0.7);
                    const auto g = cpu::cross_entropy_backward(z, y, r, o).dlogits;
                    auto result = check_gradient(
                        [&](const HostTensor<double>& zz) {
                            return weighted_sum(cpu::cross_entropy(zz, y, o), r);
                        },
                        z, g);
                    INFO(result.report);
                    CHECK(result.ok());
                }
            }
        }
    }
}

// PyTorch's F.cross_entropy and autograd on (7, 5) logits for every combination of reduction × label
// smoothing (0, 0.1, 1) × weight × ignored labels, with ordinary logits and large ones (±1e4).
// Tolerances: double 1e-12 (the same formula in a different order: a few roundings of log, exp and sums of
// 7 · 5 terms); float 1e-5, the project's float bound (PyTorch's float kernels err by ~1e-7 here).
template <class T>
void check_cross_entropy_fixture(const std::string& file_name, const std::string& dtype, double tolerance) {
    const auto file = load_fixture(file_name);
    const auto logits = file.get<T>(dtype + ".logits");
    const auto weight = file.get<T>(dtype + ".weight");
    int cases = 0;
    for (const Reduction reduction : {Reduction::mean, Reduction::sum, Reduction::none}) {
        for (const std::string smoothing : {"0.0", "0.1", "1.0"}) {
            for (const bool weighted : {false, true}) {
                for (const bool ignore : {false, true}) {
                    const std::string key =
                        fmt::format("{}.{}.ls{}.{}.{}.", dtype, reduction_name(reduction), smoothing,
                                    weighted ? "w" : "nw", ignore ? "ign" : "all");
                    INFO(file_name << ": " << key);
                    CrossEntropyOptions<T> o;
                    o.reduction = reduction;
                    o.label_smoothing = std::stod(smoothing);
                    o.weight = weighted ? &weight : nullptr;
                    const auto labels = file.get<int64_t>(dtype + (ignore ? ".labels_ignore" : ".labels"));
                    CHECK(max_relative_error(cpu::cross_entropy(logits, labels, o),
                                             file.get<T>(key + "loss")) <= tolerance);
                    const auto g = cpu::cross_entropy_backward(logits, labels, file.get<T>(key + "dloss"), o);
                    CHECK(max_relative_error(g.dlogits, file.get<T>(key + "dlogits")) <= tolerance);
                    ++cases;
                }
            }
        }
    }
    CHECK(cases == 36);
}

TEST_CASE("cross_entropy: matches PyTorch fixtures for every option", "[loss][cross_entropy][fixture]") {
    for (const std::string file : {"loss_cross_entropy", "loss_cross_entropy_large"}) {
        check_cross_entropy_fixture<double>(file, "f64", 1e-12);
        check_cross_entropy_fixture<float>(file, "f32", 1e-5);
    }
}

TEST_CASE("cross_entropy: bad arguments name the op and the values", "[loss][cross_entropy][errors]") {
    const HostTensor<float> z(Shape{3, 4}, 0.5f);
    const auto labels = labels_of({0, 3, 1});
    CrossEntropyOptions<float> o;
    CHECK_THROWS_WITH(cpu::cross_entropy(HostTensor<float>(Shape{12}, 1.0f), labels),
                      Contains("cross_entropy: logits has shape (12); it must be (N, C)"));
    CHECK_THROWS_WITH(cpu::cross_entropy(HostTensor<float>(Shape{3, 0}), labels),
                      Contains("cross_entropy: logits has shape (3, 0)") && Contains("positive"));
    CHECK_THROWS_WITH(cpu::cross_entropy(z, labels_of({0, 1})),
                      Contains("cross_entropy: labels have shape (2) but logits (3, 4)") && Contains("(3)"));
    CHECK_THROWS_WITH(
        cpu::cross_entropy(z, labels_of({0, 4, 1})),
        Contains("cross_entropy: label 4 of sample 1 is outside [0, 4)") && Contains("ignore_index -100"));
    CHECK_THROWS_WITH(cpu::cross_entropy(z, labels_of({0, 1, -1})),
                      Contains("cross_entropy: label -1 of sample 2 is outside [0, 4)"));
    const HostTensor<float> w3(Shape{3}, 1.0f);
    o.weight = &w3;
    CHECK_THROWS_WITH(cpu::cross_entropy(z, labels, o),
                      Contains("cross_entropy: weight has shape (3)") && Contains("(4)"));
    o.weight = nullptr;
    for (const double bad : {-0.1, 1.5, std::nan("")}) {
        o.label_smoothing = bad;
        CHECK_THROWS_WITH(cpu::cross_entropy(z, labels, o),
                          Contains(fmt::format("cross_entropy: label_smoothing {} is outside [0, 1]", bad)));
    }
    o.label_smoothing = 1.0;  // the closed interval's end is valid, as in PyTorch
    CHECK_NOTHROW(cpu::cross_entropy(z, labels, o));
    o.label_smoothing = 0;
    o.reduction = static_cast<Reduction>(7);
    CHECK_THROWS_WITH(cpu::cross_entropy(z, labels, o),
                      Contains("cross_entropy: reduction has the invalid value 7"));
    o.reduction = Reduction::mean;
    CHECK_THROWS_WITH(
        cpu::cross_entropy_backward(z, labels, HostTensor<float>(Shape{3}, 1.0f), o),
        Contains("cross_entropy_backward: dloss has shape (3); reduction 'mean'") && Contains("()"));
    o.reduction = Reduction::none;
    CHECK_THROWS_WITH(
        cpu::cross_entropy_backward(z, labels, HostTensor<float>(Shape{}, 1.0f), o),
        Contains("cross_entropy_backward: dloss has shape (); reduction 'none'") && Contains("(3)"));
    CHECK_THROWS_WITH(
        cpu::cross_entropy_backward(z, labels_of({0, 9, 1}), HostTensor<float>(Shape{3}, 1.0f), o),
        Contains("cross_entropy_backward: label 9 of sample 1"));
}

// ---- accuracy --------------------------------------------------------------------------------------------

TEST_CASE("accuracy and top-k accuracy: hand-computed, ties go to the first maximum", "[loss][accuracy]") {
    const float nan = std::nan("");
    // (4, 4) logits:
    //   row 0: argmax 2                      label 2 → top-1
    //   row 1: tie between classes 0 and 3   label 3 → not top-1 (class 0 comes first), top-2
    //   row 2: tie between classes 1 and 2   label 1 → top-1
    //   row 3: NaN at class 3 is the maximum label 0 (the largest number) → not top-1, top-2
    const HostTensor<float> z(Shape{4, 4}, {0.1f, 0.2f, 0.9f, 0.3f,  //
                                            5, 1, 2, 5,              //
                                            0, 3, 3, 1,              //
                                            4, 1, 2, nan});
    const auto labels = labels_of({2, 3, 1, 0});
    CHECK(cpu::top_k_correct(z, labels, 1) == 2);
    CHECK(cpu::accuracy(z, labels) == 0.5);
    CHECK(cpu::top_k_correct(z, labels, 2) == 4);
    CHECK(cpu::top_k_accuracy(z, labels, 2) == 1.0);
    CHECK(cpu::top_k_accuracy(z, labels, 4) == 1.0);
    // Label 3 of row 1 ranks behind class 0 (equal, earlier); with label 0 the tie counts for it.
    CHECK(cpu::top_k_correct(z, labels_of({3, 0, 2, 3}), 1) == 2);  // rows 1 (label 0) and 3 (the NaN)
}

TEST_CASE("accuracy: matches torch.argmax and torch.topk", "[loss][accuracy][fixture]") {
    const auto file = load_fixture("loss_accuracy");
    const auto logits = file.get<float>("logits");
    const auto labels = file.get<int64_t>("labels");
    CHECK(cpu::top_k_correct(logits, labels, 1) == file.get<int64_t>("top1")[0]);
    CHECK(cpu::accuracy(logits, labels) == Approx(file.get<int64_t>("top1")[0] / 40.0));
    for (const int64_t k : {1, 3, 5, 10}) {
        INFO("k " << k);
        const int64_t expected = file.get<int64_t>(fmt::format("top{}_correct", k))[0];
        CHECK(cpu::top_k_correct(logits, labels, k) == expected);
        CHECK(cpu::top_k_correct(logits.cast<double>(), labels, k) ==
              expected);  // float values are exact in double
    }
    // Integer logits in {0, 1, 2}: most rows tie, and torch.argmax takes the first maximum.
    CHECK(cpu::top_k_correct(file.get<float>("tied_logits"), labels, 1) == file.get<int64_t>("tied_top1")[0]);
    CHECK(cpu::accuracy(file.get<double>("tied_logits"), labels) == file.get<int64_t>("tied_top1")[0] / 40.0);
}

TEST_CASE("accuracy: bad arguments", "[loss][accuracy][errors]") {
    const HostTensor<float> z(Shape{2, 3}, 1.0f);
    CHECK_THROWS_WITH(cpu::top_k_accuracy(z, labels_of({0, 1}), 4),
                      Contains("top_k_accuracy: k 4 is outside [1, C] = [1, 3]"));
    CHECK_THROWS_WITH(cpu::top_k_accuracy(z, labels_of({0, 1}), 0),
                      Contains("top_k_accuracy: k 0 is outside"));
    CHECK_THROWS_WITH(cpu::accuracy(z, labels_of({0, 3})),
                      Contains("top_k_accuracy: label 3 of sample 1 is outside [0, 3)"));
    CHECK_THROWS_WITH(cpu::accuracy(z, labels_of({0})), Contains("labels have shape (1) but logits (2, 3)"));
    CHECK_THROWS_WITH(cpu::accuracy(HostTensor<float>(Shape{0, 3}), HostTensor<int64_t>(Shape{0})),
                      Contains("logits has shape (0, 3)") && Contains("positive"));
}
