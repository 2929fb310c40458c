// The fast batch_norm2d (src/cpu_fast/batch_norm.cpp) against the reference: training (momentum and the
// cumulative average over several batches), evaluation, affine or not, with or without running statistics,
// forward and backward, bit for bit with 1, 2 and 3 threads, and the reference's errors.
#include <catch2/catch.hpp>

#include <cstdint>
#include <optional>

#include "cudacnn/ops/batch_norm.hpp"
#include "cpu_fast/fast_support.hpp"
#include "src/cpu_fast/batch_norm.hpp"
#include "support/errors.hpp"

using namespace cudacnn;
using Catch::Contains;

namespace {

// One work item per channel running the reference's loops (double sums in (n, h, w) order): every output,
// the saves and the running statistics must be bit-identical (no tolerance).

struct Case {
    Shape shape;
    bool affine = true;
    bool running = true;
    cpu::BatchNorm2dOptions options;
};

void check_case(const Case& c, uint32_t seed) {
    const int64_t channels = c.shape[1];
    // An offset and scale per tensor so that the statistics are not those of plain [-1, 1) noise.
    const HostTensor<float> weight = test::random_tensor<float>(Shape{channels}, seed + 1, 0.5, 1.5);
    const HostTensor<float> bias = test::random_tensor<float>(Shape{channels}, seed + 2);
    cpu::BatchNorm2dRunningStats<float> expected_running{test::random_tensor<float>(Shape{channels}, seed + 3),
                                                         test::random_tensor<float>(Shape{channels}, seed + 4, 0.5, 2.0),
                                                         2};
    struct Fast {
        HostTensor<float> mean, var;
        cpu_fast::BatchNorm2dRunningStatsView view;
    };
    std::vector<Fast> fast;
    for (int threads : test::kThreadCounts) {
        (void)threads;
        fast.push_back({expected_running.running_mean, expected_running.running_var, {}});
    }
    for (Fast& f : fast) f.view = {f.mean.data(), f.var.data(), expected_running.num_batches_tracked};

    // Two batches, so that the running statistics' update is checked on top of an updated state.
    for (int batch = 0; batch < 2; ++batch) {
        const HostTensor<float> x = test::random_tensor<float>(c.shape, seed + 10 + batch, -2.0, 3.0);
        const HostTensor<float> dy = test::random_tensor<float>(c.shape, seed + 20 + batch);
        const cpu::BatchNorm2dResult<float> expected =
            cpu::batch_norm2d(x, c.affine ? &weight : nullptr, c.affine ? &bias : nullptr,
                              c.running ? &expected_running : nullptr, c.options);
        const cpu::BatchNorm2dGrads<float> expected_grads = cpu::batch_norm2d_backward(
            x, c.affine ? &weight : nullptr, expected.save_mean, expected.save_invstd, dy, c.options.training);
        for (size_t t = 0; t < fast.size(); ++t) {
            INFO("shape " << c.shape.to_string() << ", affine " << c.affine << ", running " << c.running
                          << ", training " << c.options.training << ", batch " << batch << ", threads "
                          << test::kThreadCounts[t]);
            const cpu_fast::Workers workers(test::kThreadCounts[t]);
            HostTensor<float> y = test::poisoned_tensor<float>(c.shape);
            HostTensor<float> save_mean = test::poisoned_tensor<float>(Shape{channels});
            HostTensor<float> save_invstd = test::poisoned_tensor<float>(Shape{channels});
            cpu_fast::batch_norm2d(x.data(), c.affine ? weight.data() : nullptr, c.affine ? bias.data() : nullptr,
                                   c.running ? &fast[t].view : nullptr, y.data(), save_mean.data(),
                                   save_invstd.data(), c.shape, c.options, workers);
            CHECK(test::same_bits(y, expected.output));
            CHECK(test::same_bits(save_mean, expected.save_mean));
            CHECK(test::same_bits(save_invstd, expected.save_invstd));
            if (c.running) {
                CHECK(test::same_bits(fast[t].mean, expected_running.running_mean));
                CHECK(test::same_bits(fast[t].var, expected_running.running_var));
                CHECK(fast[t].view.num_batches_tracked == expected_running.num_batches_tracked);
            }
            HostTensor<float> dx = test::poisoned_tensor<float>(c.shape);
            HostTensor<float> dweight = test::poisoned_tensor<float>(Shape{channels});
            HostTensor<float> dbias = test::poisoned_tensor<float>(Shape{channels});
            cpu_fast::batch_norm2d_backward(x.data(), c.affine ? weight.data() : nullptr, expected.save_mean.data(),
                                            expected.save_invstd.data(), dy.data(), dx.data(), dweight.data(),
                                            dbias.data(), c.shape, c.options.training, workers);
            CHECK(test::same_bits(dx, expected_grads.dx));
            CHECK(test::same_bits(dweight, expected_grads.dweight));
            CHECK(test::same_bits(dbias, expected_grads.dbias));
        }
    }
}

cpu::BatchNorm2dOptions options(bool training, std::optional<double> momentum = 0.1, double eps = 1e-5) {
    cpu::BatchNorm2dOptions o;
    o.training = training, o.momentum = momentum, o.eps = eps;
    return o;
}

}  // namespace

TEST_CASE("fast batch_norm2d equals the reference bit for bit", "[cpu_fast]") {
    check_case({Shape{3, 5, 7, 9}, true, true, options(true)}, 100);
    check_case({Shape{3, 5, 7, 9}, true, true, options(true, std::nullopt)}, 110);  // cumulative average
    check_case({Shape{3, 5, 7, 9}, false, true, options(true, 0.3, 1e-3)}, 120);     // affine=False
    check_case({Shape{3, 5, 7, 9}, true, false, options(true)}, 130);                // no running statistics
    check_case({Shape{3, 5, 7, 9}, true, true, options(false)}, 140);                // evaluation
    check_case({Shape{2, 1, 1, 2}, true, true, options(true)}, 150);                 // M = 2, the least
    check_case({Shape{4, 37, 5, 3}, true, true, options(true)}, 160);                // many channels
}

TEST_CASE("fast batch_norm2d_backward may skip dweight and dbias", "[cpu_fast]") {
    const Shape shape{3, 5, 7, 9};
    const HostTensor<float> x = test::random_tensor<float>(shape, 170);
    const HostTensor<float> dy = test::random_tensor<float>(shape, 171);
    const cpu::BatchNorm2dResult<float> forward = cpu::batch_norm2d<float>(x, nullptr, nullptr, nullptr, options(true));
    const cpu::BatchNorm2dGrads<float> expected =
        cpu::batch_norm2d_backward<float>(x, nullptr, forward.save_mean, forward.save_invstd, dy, true);
    HostTensor<float> dx = test::poisoned_tensor<float>(shape);
    cpu_fast::batch_norm2d_backward(x.data(), nullptr, forward.save_mean.data(), forward.save_invstd.data(),
                                    dy.data(), dx.data(), nullptr, nullptr, shape, true, cpu_fast::Workers(2));
    CHECK(test::same_bits(dx, expected.dx));
}

TEST_CASE("fast batch_norm2d_backward may skip dx", "[cpu_fast]") {
    // The executor asks for no dx when no layer before this one needs a gradient.
    const Shape shape{3, 5, 7, 9};
    const HostTensor<float> x = test::random_tensor<float>(shape, 172);
    const HostTensor<float> dy = test::random_tensor<float>(shape, 173);
    const HostTensor<float> weight = test::random_tensor<float>(Shape{5}, 174);
    const cpu::BatchNorm2dResult<float> forward = cpu::batch_norm2d<float>(x, &weight, nullptr, nullptr, options(true));
    const cpu::BatchNorm2dGrads<float> expected =
        cpu::batch_norm2d_backward(x, &weight, forward.save_mean, forward.save_invstd, dy, true);
    HostTensor<float> dweight = test::poisoned_tensor<float>(Shape{5});
    HostTensor<float> dbias = test::poisoned_tensor<float>(Shape{5});
    cpu_fast::batch_norm2d_backward(x.data(), weight.data(), forward.save_mean.data(), forward.save_invstd.data(),
                                    dy.data(), nullptr, dweight.data(), dbias.data(), shape, true,
                                    cpu_fast::Workers(3));
    CHECK(test::same_bits(dweight, expected.dweight));
    CHECK(test::same_bits(dbias, expected.dbias));
}

TEST_CASE("fast batch_norm2d reports bad arguments as the reference", "[cpu_fast]") {
    const cpu_fast::Workers workers(1);
    float v[4] = {1, 2, 3, 4}, out[4], mean[1], invstd[1];
    CHECK_THAT(test::error_message([&] {
                   cpu_fast::batch_norm2d(v, nullptr, nullptr, nullptr, out, mean, invstd, Shape{1, 1, 1, 1},
                                          options(true), workers);
               }),
               Contains("batch_norm2d: training needs more than 1 value per channel, got input shape (1, 1, 1, 1)"));
    CHECK_THAT(test::error_message([&] {
                   cpu_fast::batch_norm2d(v, nullptr, nullptr, nullptr, out, mean, invstd, Shape{1, 1, 2, 2},
                                          options(false), workers);
               }),
               Contains("batch_norm2d: evaluation mode normalizes by the running statistics, but none were given"));
    CHECK_THAT(test::error_message([&] {
                   cpu_fast::batch_norm2d(v, nullptr, nullptr, nullptr, out, mean, invstd, Shape{1, 1, 2, 2},
                                          options(true, 1.5), workers);
               }),
               Contains("batch_norm2d: momentum 1.5 must be in [0, 1]"));
    CHECK_THAT(test::error_message([&] {
                   cpu_fast::batch_norm2d_backward(v, nullptr, mean, invstd, v, out, nullptr, nullptr, Shape{4},
                                                   true, workers);
               }),
               Contains("batch_norm2d_backward: input must be (N, C, H, W), got shape (4)"));
}
