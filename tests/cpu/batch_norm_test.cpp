// batch_norm2d reference (src/cpu/batch_norm.cpp): hand-computed running statistics, gradient checks in double
// for every mode and option, PyTorch fixtures (tools/fixtures/batch_norm.py) and bad arguments.
#include <catch2/catch.hpp>

#include <cmath>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "cudacnn/ops/batch_norm.hpp"
#include "support/compare.hpp"
#include "support/errors.hpp"
#include "support/gradcheck.hpp"

using namespace cudacnn;
using namespace cudacnn::cpu;
using cudacnn::test::error_message;
using Catch::Contains;

namespace {

// Both sides compute in double (PyTorch's CPU batch norm sums in double for float too); they differ in
// summation order and in how y = x̂ · γ + β is grouped, ~1e-15 relative, so 1e-12 leaves ample margin.
constexpr double kDoubleTolerance = 1e-12;
// The float bound. Both sides accumulate statistics in double and round to float at the end,
// so the difference is a few float ulps (~1e-7) even in dx, whose terms partly cancel.
constexpr double kFloatTolerance = 1e-5;


BatchNorm2dOptions options(bool training, std::optional<double> momentum = 0.1, double eps = 1e-5) {
    BatchNorm2dOptions o;
    o.training = training, o.momentum = momentum, o.eps = eps;
    return o;
}

// A pointer to t, or nullptr when t is empty (the fixture had no such tensor).
template <class T>
const HostTensor<T>* optional_tensor(const HostTensor<T>& t) {
    return t.empty() ? nullptr : &t;
}

}  // namespace

// ---------------------------------------------------------------------------------------------------------
// Hand-computed

TEST_CASE("batch_norm2d training step by hand: output and running statistics", "[batch_norm]") {
    // One channel holding 1, 2, 3, 4: mean 2.5, biased variance 1.25, unbiased 5/3.
    const HostTensor<double> x(Shape{1, 1, 2, 2}, {1, 2, 3, 4});
    auto running = BatchNorm2dRunningStats<double>::initial(1);
    const auto result = batch_norm2d<double>(x, nullptr, nullptr, &running, options(true));
    const double invstd = 1 / std::sqrt(1.25 + 1e-5);
    for (int64_t i = 0; i < 4; ++i) CHECK(result.output[i] == Approx((x[i] - 2.5) * invstd).epsilon(1e-14));
    CHECK(result.save_mean[0] == 2.5);
    CHECK(result.save_invstd[0] == Approx(invstd).epsilon(1e-14));
    // running = 0.9 · running + 0.1 · batch: mean 0.9 · 0 + 0.1 · 2.5, var 0.9 · 1 + 0.1 · 5/3.
    CHECK(running.running_mean[0] == Approx(0.25).epsilon(1e-14));
    CHECK(running.running_var[0] == Approx(0.9 + 0.5 / 3).epsilon(1e-14));
    CHECK(running.num_batches_tracked == 1);
}

TEST_CASE("batch_norm2d momentum=None keeps a cumulative average", "[batch_norm]") {
    auto running = BatchNorm2dRunningStats<double>::initial(1);
    batch_norm2d<double>(HostTensor<double>(Shape{2, 1, 1, 2}, {1, 2, 3, 4}), nullptr, nullptr, &running,
                         options(true, std::nullopt));
    // The first batch has weight 1 / 1: the running statistics become its own (mean 2.5, unbiased var 5/3).
    CHECK(running.running_mean[0] == Approx(2.5).epsilon(1e-14));
    CHECK(running.running_var[0] == Approx(5.0 / 3).epsilon(1e-14));
    batch_norm2d<double>(HostTensor<double>(Shape{2, 1, 1, 2}, {2, 4, 6, 8}), nullptr, nullptr, &running,
                         options(true, std::nullopt));
    // The second has weight 1 / 2: mean (2.5 + 5) / 2, var (5/3 + 20/3) / 2.
    CHECK(running.running_mean[0] == Approx(3.75).epsilon(1e-14));
    CHECK(running.running_var[0] == Approx(25.0 / 6).epsilon(1e-14));
    CHECK(running.num_batches_tracked == 2);
}

TEST_CASE("batch_norm2d evaluation by hand uses the running statistics and changes nothing", "[batch_norm]") {
    // mean 1, var 3, eps 1: invstd 0.5; with γ = 2 and β = 1, y = (x − 1) · 0.5 · 2 + 1 = x.
    const HostTensor<double> x(Shape{1, 1, 2, 2}, {1, 2, 3, 4});
    const HostTensor<double> weight(Shape{1}, {2}), bias(Shape{1}, {1});
    BatchNorm2dRunningStats<double> running{HostTensor<double>(Shape{1}, {1.0}), HostTensor<double>(Shape{1}, {3.0}), 7};
    const auto result = batch_norm2d(x, &weight, &bias, &running, options(false, 0.1, 1.0));
    CHECK(result.output.values() == x.values());
    CHECK(running.running_mean[0] == 1.0);
    CHECK(running.running_var[0] == 3.0);
    CHECK(running.num_batches_tracked == 7);
    // The statistics are constants here: dx = γ · invstd · dy = dy; dγ = Σ dy · x̂, dβ = Σ dy.
    const HostTensor<double> dy(Shape{1, 1, 2, 2}, {1, -1, 2, 0.5});
    const auto grads = batch_norm2d_backward(x, &weight, result.save_mean, result.save_invstd, dy, false);
    CHECK(grads.dx.values() == dy.values());
    CHECK(grads.dweight[0] == Approx(1 * 0 + -1 * 0.5 + 2 * 1 + 0.5 * 1.5));
    CHECK(grads.dbias[0] == Approx(2.5));
}

TEST_CASE("batch_norm2d training without running statistics normalizes by the batch", "[batch_norm]") {
    const auto x = test::random_tensor<float>(Shape{3, 2, 2, 3}, 11);
    auto running = BatchNorm2dRunningStats<float>::initial(2);
    const auto tracked = batch_norm2d<float>(x, nullptr, nullptr, &running, options(true));
    const auto untracked = batch_norm2d<float>(x, nullptr, nullptr, nullptr, options(true));
    CHECK(untracked.output.values() == tracked.output.values());
}

// ---------------------------------------------------------------------------------------------------------
// Gradient checks (double): x, weight and bias, in training and in evaluation, with and without affine

TEST_CASE("batch_norm2d gradient check for every mode and option", "[batch_norm][gradcheck]") {
    const Shape shape{3, 2, 3, 4};
    const auto x = test::random_tensor<double>(shape, 21, -2.0, 3.0);
    const auto weight = test::random_tensor<double>(Shape{2}, 22, 0.5, 1.5);
    const auto bias = test::random_tensor<double>(Shape{2}, 23);
    const BatchNorm2dRunningStats<double> running{test::random_tensor<double>(Shape{2}, 24),
                                                  test::random_tensor<double>(Shape{2}, 25, 0.5, 2.0), 3};
    const auto r = test::random_tensor<double>(shape, 26);

    struct Mode {
        std::string name;
        bool training;
        bool affine;
        double eps;
        bool tracked = true;  // running statistics given (track_running_stats=True)
    };
    const std::vector<Mode> modes = {
        {"training, affine", true, true, 1e-5},
        {"training, no affine", true, false, 1e-5},
        {"training, eps 0.1", true, true, 0.1},
        {"training, untracked", true, true, 1e-5, false},
        {"evaluation, affine", false, true, 1e-5},
        {"evaluation, no affine", false, false, 1e-5},
    };
    for (const Mode& mode : modes) {
        SECTION(mode.name) {
            const BatchNorm2dOptions o = options(mode.training, 0.1, mode.eps);
            // The loss as a function of (x, weight, bias); running statistics are copied so that the many
            // forward passes of the check do not drift them.
            auto loss = [&](const HostTensor<double>& xx, const HostTensor<double>& w, const HostTensor<double>& b) {
                BatchNorm2dRunningStats<double> stats = running;
                const auto y = batch_norm2d(xx, mode.affine ? &w : nullptr, mode.affine ? &b : nullptr,
                                            mode.tracked ? &stats : nullptr, o);
                return test::weighted_sum(y.output, r);
            };
            BatchNorm2dRunningStats<double> stats = running;
            const HostTensor<double>* w = mode.affine ? &weight : nullptr;
            const auto forward =
                batch_norm2d(x, w, mode.affine ? &bias : nullptr, mode.tracked ? &stats : nullptr, o);
            const auto grads = batch_norm2d_backward(x, w, forward.save_mean, forward.save_invstd, r, mode.training);

            const auto dx = test::check_gradient([&](const HostTensor<double>& xx) { return loss(xx, weight, bias); },
                                                 x, grads.dx);
            INFO("dx: " << dx.report);
            CHECK(dx.ok());
            if (mode.affine) {
                const auto dw = test::check_gradient(
                    [&](const HostTensor<double>& ww) { return loss(x, ww, bias); }, weight, grads.dweight);
                INFO("dweight: " << dw.report);
                CHECK(dw.ok());
                const auto db = test::check_gradient(
                    [&](const HostTensor<double>& bb) { return loss(x, weight, bb); }, bias, grads.dbias);
                INFO("dbias: " << db.report);
                CHECK(db.ok());
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------------------
// PyTorch fixtures: output, gradients, running statistics and num_batches_tracked after the step

namespace {

// The cases of tools/fixtures/batch_norm.py; affine and track_running_stats come from what the file holds.
struct FixtureCase {
    std::string name;
    bool training;
    std::optional<double> momentum;
    double eps;
};
const std::vector<FixtureCase> kFixtureCases = {
    {"train_affine", true, 0.1, 1e-5},
    {"train_noaffine", true, 0.1, 1e-5},
    {"train_momentum03_2steps", true, 0.3, 1e-5},
    {"train_cumulative_3steps", true, std::nullopt, 1e-5},
    {"train_eps1em3", true, 0.1, 1e-3},
    {"train_untracked", true, 0.1, 1e-5},
    {"eval_affine", false, 0.1, 1e-5},
    {"eval_noaffine", false, 0.1, 1e-5},
    {"eval_after_train", false, 0.1, 1e-5},
};

// Runs one fixture case in T: the module's state from the file, its earlier training steps, then the
// final forward and backward, each compared with PyTorch's (suffix "" for float64, "_f32" for float32).
template <class T>
void check_fixture_case(const SafetensorsFile& file, const FixtureCase& c, const std::string& suffix,
                        double tolerance) {
    const bool affine = file.contains("weight"), tracked = file.contains("running_mean_before");
    const HostTensor<T> weight = affine ? file.get<double>("weight").cast<T>() : HostTensor<T>();
    const HostTensor<T> bias = affine ? file.get<double>("bias").cast<T>() : HostTensor<T>();
    BatchNorm2dRunningStats<T> running;
    if (tracked) {
        running.running_mean = file.get<double>("running_mean_before").cast<T>();
        running.running_var = file.get<double>("running_var_before").cast<T>();
        running.num_batches_tracked = file.get<int64_t>("num_batches_tracked_before")[0];
    }
    BatchNorm2dRunningStats<T>* stats = tracked ? &running : nullptr;

    for (int k = 0; file.contains("pre" + std::to_string(k) + ".x"); ++k) {
        const auto pre_x = file.get<double>("pre" + std::to_string(k) + ".x").cast<T>();
        batch_norm2d(pre_x, optional_tensor(weight), optional_tensor(bias), stats, options(true, c.momentum, c.eps));
    }
    const auto x = file.get<double>("x").cast<T>();
    const auto dy = file.get<double>("dy").cast<T>();
    const auto result =
        batch_norm2d(x, optional_tensor(weight), optional_tensor(bias), stats, options(c.training, c.momentum, c.eps));
    const auto grads =
        batch_norm2d_backward(x, optional_tensor(weight), result.save_mean, result.save_invstd, dy, c.training);

    CHECK(test::max_relative_error(result.output, file.get<T>("y" + suffix)) <= tolerance);
    CHECK(test::max_relative_error(grads.dx, file.get<T>("dx" + suffix)) <= tolerance);
    if (affine) {
        CHECK(test::max_relative_error(grads.dweight, file.get<T>("dweight" + suffix)) <= tolerance);
        CHECK(test::max_relative_error(grads.dbias, file.get<T>("dbias" + suffix)) <= tolerance);
    }
    if (tracked) {
        CHECK(test::max_relative_error(running.running_mean, file.get<T>("running_mean" + suffix)) <= tolerance);
        CHECK(test::max_relative_error(running.running_var, file.get<T>("running_var" + suffix)) <= tolerance);
        CHECK(running.num_batches_tracked == file.get<int64_t>("num_batches_tracked" + suffix)[0]);
    }
}

}  // namespace

TEST_CASE("batch_norm2d matches PyTorch (tests/fixtures/batch_norm_*)", "[batch_norm][fixture]") {
    for (const FixtureCase& c : kFixtureCases) {
        SECTION(c.name) {
            const SafetensorsFile file = test::load_fixture("batch_norm_" + c.name);
            // Each case must exercise what its name says.
            CHECK(file.contains("weight") == (c.name.find("noaffine") == std::string::npos));
            CHECK(file.contains("running_mean_before") == (c.name != "train_untracked"));
            SECTION("double") { check_fixture_case<double>(file, c, "", kDoubleTolerance); }
            SECTION("float") { check_fixture_case<float>(file, c, "_f32", kFloatTolerance); }
        }
    }
}

// ---------------------------------------------------------------------------------------------------------
// Bad arguments

TEST_CASE("batch_norm2d rejects bad arguments with messages naming the values", "[batch_norm][errors]") {
    const HostTensor<float> x(Shape{2, 3, 2, 2}, 1.0f);
    const HostTensor<float> c3(Shape{3}, 1.0f), c4(Shape{4}, 1.0f);
    auto running = BatchNorm2dRunningStats<float>::initial(3);
    auto wrong_running = BatchNorm2dRunningStats<float>::initial(4);

    CHECK_THAT(error_message([&] { batch_norm2d<float>(HostTensor<float>(Shape{2, 3}), nullptr, nullptr, nullptr); }),
               Contains("batch_norm2d: input must be (N, C, H, W), got shape (2, 3)"));
    CHECK_THAT(error_message([&] { batch_norm2d<float>(HostTensor<float>(Shape{0, 3, 2, 2}), nullptr, nullptr, nullptr); }),
               Contains("batch_norm2d: input sizes must be positive, got shape (0, 3, 2, 2)"));
    CHECK_THAT(error_message([&] { batch_norm2d<float>(x, &c4, &c3, &running); }),
               Contains("batch_norm2d: weight has shape (4) but the input has 3 channels, so it must be (3)"));
    CHECK_THAT(error_message([&] { batch_norm2d<float>(x, &c3, &c4, &running); }),
               Contains("batch_norm2d: bias has shape (4) but the input has 3 channels"));
    CHECK_THAT(error_message([&] { batch_norm2d<float>(x, &c3, &c3, &wrong_running); }),
               Contains("batch_norm2d: running_mean has shape (4) but the input has 3 channels"));
    CHECK_THAT(error_message([&] { batch_norm2d<float>(x, nullptr, nullptr, &running, options(true, 1.5)); }),
               Contains("batch_norm2d: momentum 1.5 must be in [0, 1]"));
    CHECK_THAT(error_message([&] { batch_norm2d<float>(x, nullptr, nullptr, &running, options(true, -0.1)); }),
               Contains("batch_norm2d: momentum -0.1 must be in [0, 1]"));
    CHECK_THAT(error_message([&] { batch_norm2d<float>(x, nullptr, nullptr, &running, options(true, 0.1, -1e-5)); }),
               Contains("batch_norm2d: eps -1e-05 must be finite and >= 0"));
    CHECK_THAT(error_message([&] { batch_norm2d<float>(x, nullptr, nullptr, nullptr, options(false)); }),
               Contains("batch_norm2d: evaluation mode normalizes by the running statistics, but none were given"));
    CHECK_THAT(error_message([&] {
                   batch_norm2d<float>(HostTensor<float>(Shape{1, 3, 1, 1}), nullptr, nullptr, &running);
               }),
               Contains("batch_norm2d: training needs more than 1 value per channel, got input shape (1, 3, 1, 1)"));
    // A rejected call leaves the running statistics alone.
    CHECK(running.num_batches_tracked == 0);
    // One value per channel is fine in evaluation.
    CHECK_NOTHROW(batch_norm2d<float>(HostTensor<float>(Shape{1, 3, 1, 1}), nullptr, nullptr, &running, options(false)));

    const auto forward = batch_norm2d<float>(x, &c3, &c3, &running);
    CHECK_THAT(error_message([&] {
                   batch_norm2d_backward<float>(x, &c3, forward.save_mean, forward.save_invstd,
                                                HostTensor<float>(Shape{2, 3, 2, 1}), true);
               }),
               Contains("batch_norm2d_backward: dy has shape (2, 3, 2, 1) but x has shape (2, 3, 2, 2)"));
    CHECK_THAT(error_message([&] {
                   batch_norm2d_backward<float>(x, &c3, c4, forward.save_invstd, HostTensor<float>(x.shape()), true);
               }),
               Contains("batch_norm2d_backward: save_mean has shape (4) but the input has 3 channels"));
}
