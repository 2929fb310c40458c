// Parity of the batch_norm2d kernels (cuda/batch_norm.cu) with the CPU reference (src/cpu/batch_norm.cpp):
// training (momentum, cumulative average, untracked), evaluation, affine on and off, forward and backward,
// running statistics, a large common offset, split reductions; an input shift (a folded conv bias);
// bad arguments.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "cuda/batch_norm.hpp"
#include "cudacnn/ops/activation.hpp"
#include "support/compare.hpp"
#include "support/errors.hpp"
#include "support/parity.hpp"

using namespace cudacnn;
using Catch::Contains;

namespace {

// The per-channel statistics and gradient sums are float reductions over M = N·H·W ≤ 135168 values: each
// thread adds ≤ 16 values a batch (≤ 20 in ≤ 2 batches merged by Chan's formula here), then a 5-level warp
// tree, 3 levels across warps and ≤ 5 across blocks, so a result sits k ≤ 30 roundings from the exact value;
// each rounding errs by ≤ 2^-24 of the partial result it rounds. The reference accumulates in double and
// rounds once.
//
// y, dx: elementwise from statistics that err by ≲ k · 2^-24 ≈ 1.8e-6 relative to the data's spread, plus a
// few roundings; the input with a common offset of 100 adds the float rounding of save_mean (ulp(100) / 2 ≈
// 4e-6 of the spread 1): 1e-5. (The E[x²] − E[x]² shortcut would cost that case ~1e-3.)
constexpr double kBnElementwiseTolerance = 1e-5;
// save_invstd and the running variance: M2 is a sum of positive terms, so its error stays ≲ k · 2^-24 of
// itself (≈ 1.8e-6), plus the reference's single rounding: 1e-5.
constexpr double kBnVarianceTolerance = 1e-5;
// save_mean and the running mean, dweight = Σ dy·x̂ and dbias = Σ dy: sums of random-sign terms, whose partial
// sums grow like √count, so each rounding is ≲ 2^-24 of a partial sum no larger (in expectation) than the
// result: ≈ k · 2^-24 ≈ 1.8e-6 relative to max |result| as measured (≤ 1e-6 here). The worst case, k · 2^-24
// · Σ|terms|, could be √M times larger, so the bound is 1e-4; a wrong term or a lost slice is off by ≳ 1e-2.
constexpr double kBnSumTolerance = 1e-4;

// max_relative_error of a device result (downloaded in the reference's shape) against the reference.
double error_vs(const DeviceBuffer& actual, const HostTensor<float>& expected) {
    return test::max_relative_error(test::to_host<float>(actual, expected.shape()), expected);
}

struct BnCase {
    std::string name;
    Shape shape;
    bool training = true;
    bool affine = true;
    bool track_running_stats = true;
    std::optional<double> momentum = 0.1;
    int64_t batches_tracked = 0;  // before the first step
    int steps = 1;                // forward passes, each with fresh x, sharing the running statistics
    double offset = 0.0;          // added to every input (x ∈ offset + [-1, 1))
};

// The device side of a run: buffers and the view the launchers update.
struct DeviceRunning {
    DeviceBuffer mean, var;
    gpu::BatchNorm2dRunningStatsView view;
};

DeviceRunning upload_running(const cpu::BatchNorm2dRunningStats<float>& running) {
    DeviceRunning d{test::to_device(running.running_mean), test::to_device(running.running_var), {}};
    d.view = {d.mean.data_as<float>(), d.var.data_as<float>(), running.num_batches_tracked};
    return d;
}

void check_case(const BnCase& c, uint32_t seed) {
    const Shape& shape = c.shape;
    const int64_t channels = shape[1];
    const Shape per_channel{channels};
    const HostTensor<float> weight = test::random_tensor<float>(per_channel, seed, 0.5, 1.5);
    const HostTensor<float> bias = test::random_tensor<float>(per_channel, seed + 1);
    // Running statistics away from nn.BatchNorm2d's 0 and 1, so that every update term shows.
    cpu::BatchNorm2dRunningStats<float> running{test::random_tensor<float>(per_channel, seed + 2, -0.5, 0.5),
                                                test::random_tensor<float>(per_channel, seed + 3, 0.5, 1.5),
                                                c.batches_tracked};
    cpu::BatchNorm2dRunningStats<float>* cpu_running = c.track_running_stats ? &running : nullptr;
    DeviceRunning d_running = upload_running(running);
    gpu::BatchNorm2dRunningStatsView* gpu_running = c.track_running_stats ? &d_running.view : nullptr;
    const DeviceBuffer d_weight = test::to_device(weight), d_bias = test::to_device(bias);
    const float* w = c.affine ? d_weight.data_as<float>() : nullptr;
    const float* b = c.affine ? d_bias.data_as<float>() : nullptr;
    cpu::BatchNorm2dOptions options;
    options.training = c.training, options.momentum = c.momentum;
    const size_t workspace_bytes = gpu::batch_norm2d_workspace_bytes(shape);
    const DeviceBuffer workspace =
        test::poisoned<float>(static_cast<int64_t>(workspace_bytes / sizeof(float)));

    for (int step = 0; step < c.steps; ++step) {
        INFO("step " << step);
        const uint32_t step_seed = seed + 10 * static_cast<uint32_t>(step + 1);
        const HostTensor<float> x =
            test::random_tensor<float>(shape, step_seed, c.offset - 1.0, c.offset + 1.0);
        const cpu::BatchNorm2dResult<float> expected = cpu::batch_norm2d(
            x, c.affine ? &weight : nullptr, c.affine ? &bias : nullptr, cpu_running, options);

        const DeviceBuffer d_x = test::to_device(x);
        const DeviceBuffer d_y = test::poisoned<float>(shape.numel());
        const DeviceBuffer d_mean = test::poisoned<float>(channels),
                           d_invstd = test::poisoned<float>(channels);
        gpu::batch_norm2d(d_x.data_as<float>(), w, b, gpu_running, d_y.data_as<float>(),
                          d_mean.data_as<float>(), d_invstd.data_as<float>(), shape, options,
                          workspace.data(), workspace_bytes, nullptr);
        CHECK(error_vs(d_y, expected.output) <= kBnElementwiseTolerance);
        CHECK(error_vs(d_mean, expected.save_mean) <= kBnSumTolerance);
        CHECK(error_vs(d_invstd, expected.save_invstd) <= kBnVarianceTolerance);
        if (c.track_running_stats) {
            CHECK(d_running.view.num_batches_tracked == running.num_batches_tracked);
            CHECK(error_vs(d_running.mean, running.running_mean) <= kBnSumTolerance);
            CHECK(error_vs(d_running.var, running.running_var) <= kBnVarianceTolerance);
        }

        // Backward from the reference's saves (the kernels' own are checked above), so that both sides
        // differentiate the same function.
        const HostTensor<float> dy = test::random_tensor<float>(shape, step_seed + 1);
        const cpu::BatchNorm2dGrads<float> grads = cpu::batch_norm2d_backward(
            x, c.affine ? &weight : nullptr, expected.save_mean, expected.save_invstd, dy, c.training);
        const DeviceBuffer d_save_mean = test::to_device(expected.save_mean);
        const DeviceBuffer d_save_invstd = test::to_device(expected.save_invstd);
        const DeviceBuffer d_dy = test::to_device(dy);
        const DeviceBuffer d_dx = test::poisoned<float>(shape.numel());
        const DeviceBuffer d_dweight = test::poisoned<float>(channels),
                           d_dbias = test::poisoned<float>(channels);
        gpu::batch_norm2d_backward(
            d_x.data_as<float>(), w, d_save_mean.data_as<float>(), d_save_invstd.data_as<float>(),
            d_dy.data_as<float>(), d_dx.data_as<float>(), d_dweight.data_as<float>(),
            d_dbias.data_as<float>(), shape, c.training, workspace.data(), workspace_bytes, nullptr);
        CHECK(error_vs(d_dx, grads.dx) <= kBnElementwiseTolerance);
        CHECK(error_vs(d_dweight, grads.dweight) <= kBnSumTolerance);
        CHECK(error_vs(d_dbias, grads.dbias) <= kBnSumTolerance);
    }
}

}  // namespace

TEST_CASE("batch_norm2d kernels match the reference in training and evaluation", "[parity][batch_norm]") {
    std::vector<BnCase> cases;
    // CifarCNN's BN(32) after the first convolution, scaled down from (128, 32, 32, 32); two steps.
    cases.push_back({"cifar_train_affine", {2, 32, 16, 16}});
    cases.back().steps = 2;
    cases.push_back({"odd_train_noaffine_cumulative", {5, 3, 7, 5}, true, false});
    cases.back().momentum = std::nullopt, cases.back().batches_tracked = 2, cases.back().steps = 2;
    cases.push_back({"batch1_train_untracked", {1, 3, 7, 5}, true, true, false});
    // M = 2875 > 2048: two blocks per channel (1438 and 1437 values), merged by the normalize; a common
    // offset of 100, which the E[x²] − E[x]² shortcut would turn into a variance error of ~1e-3.
    cases.push_back({"split_offset100_train_momentum03", {5, 3, 23, 25}});
    cases.back().momentum = 0.3, cases.back().offset = 100.0;
    // 17·63·65 = 69615 values per channel: more than 32 · 2048, so the splits cap at 32 (a full merging
    // warp); blocks take 2176 values (8 or 9 per thread, batches of 4), the last one 2159.
    cases.push_back({"max_splits_train", {17, 2, 63, 65}});
    // H·W % 4 == 0: the kernels take float4 units. 33·64·64 = 135168 values per channel: 32 splits of 1056
    // units, so threads take 4 or 5 units (two batches), merged by Chan's formula; with a common offset.
    cases.push_back({"float4_max_splits_offset100", {33, 2, 64, 64}});
    cases.back().offset = 100.0;
    // Planes of 4 units and of 1 unit: a thread's next unit (256 units on) lies 64 or 256 planes further.
    cases.push_back({"float4_small_planes", {100, 3, 4, 4}});
    cases.push_back({"float4_unit_planes_cumulative", {300, 2, 2, 2}});
    cases.back().momentum = std::nullopt, cases.back().steps = 2;
    cases.push_back({"float4_eval_affine", {2, 32, 16, 16}, false, true});
    cases.push_back({"odd_eval_affine", {5, 3, 7, 5}, false, true});
    cases.push_back({"batch1_eval_noaffine", {1, 3, 7, 5}, false, false});
    uint32_t seed = 400;
    for (const BnCase& c : cases) {
        INFO("case " << c.name);
        check_case(c, seed);
        seed += 100;
    }
}

TEST_CASE("batch_norm2d_backward without dweight and dbias writes dx only", "[parity][batch_norm]") {
    const Shape shape{5, 3, 7, 5};
    const HostTensor<float> x = test::random_tensor<float>(shape, 500);
    const HostTensor<float> dy = test::random_tensor<float>(shape, 501);
    const cpu::BatchNorm2dResult<float> forward = cpu::batch_norm2d<float>(x, nullptr, nullptr, nullptr);
    const DeviceBuffer d_x = test::to_device(x), d_dy = test::to_device(dy);
    const DeviceBuffer d_mean = test::to_device(forward.save_mean),
                       d_invstd = test::to_device(forward.save_invstd);
    const size_t workspace_bytes = gpu::batch_norm2d_workspace_bytes(shape);
    const DeviceBuffer workspace(workspace_bytes);
    for (bool training : {true, false}) {
        INFO("training " << training);
        const cpu::BatchNorm2dGrads<float> grads = cpu::batch_norm2d_backward<float>(
            x, nullptr, forward.save_mean, forward.save_invstd, dy, training);
        const DeviceBuffer d_dx = test::poisoned<float>(shape.numel());
        // Evaluation needs no sums, and so no workspace.
        gpu::batch_norm2d_backward(d_x.data_as<float>(), nullptr, d_mean.data_as<float>(),
                                   d_invstd.data_as<float>(), d_dy.data_as<float>(), d_dx.data_as<float>(),
                                   nullptr, nullptr, shape, training, training ? workspace.data() : nullptr,
                                   training ? workspace_bytes : 0, nullptr);
        CHECK(error_vs(d_dx, grads.dx) <= kBnElementwiseTolerance);
    }
}

// The outputs of one forward and backward (training, affine, running statistics) on tensors that start
// `offset` floats into their buffers.
struct OffsetRun {
    HostTensor<float> y, mean, invstd, running_mean, running_var, dx, dweight, dbias;
};

OffsetRun run_at_offset(const HostTensor<float>& x, const HostTensor<float>& dy, bool relu, int64_t offset) {
    const Shape& shape = x.shape();
    const Shape per_channel{shape[1]};
    const HostTensor<float> weight = test::random_tensor<float>(per_channel, 601, 0.5, 1.5);
    const HostTensor<float> bias = test::random_tensor<float>(per_channel, 602);
    const DeviceBuffer d_weight = test::to_device(weight), d_bias = test::to_device(bias);
    DeviceBuffer d_running_mean = test::to_device(HostTensor<float>(per_channel, 0.0f));
    DeviceBuffer d_running_var = test::to_device(HostTensor<float>(per_channel, 1.0f));
    gpu::BatchNorm2dRunningStatsView running{d_running_mean.data_as<float>(), d_running_var.data_as<float>(), 0};
    const size_t workspace_bytes = gpu::batch_norm2d_workspace_bytes(shape);
    const DeviceBuffer workspace(workspace_bytes);
    const DeviceBuffer d_mean = test::poisoned<float>(shape[1]), d_invstd = test::poisoned<float>(shape[1]);
    const DeviceBuffer d_dweight = test::poisoned<float>(shape[1]), d_dbias = test::poisoned<float>(shape[1]);
    const test::OffsetBuffer<float> d_x = test::to_device_at(x, offset), d_dy = test::to_device_at(dy, offset);
    const test::OffsetBuffer<float> d_y = test::poisoned_at<float>(shape.numel(), offset);
    const test::OffsetBuffer<float> d_dx = test::poisoned_at<float>(shape.numel(), offset);
    const float* w = d_weight.data_as<float>();
    const cpu::BatchNorm2dOptions options;
    if (relu) {
        gpu::batch_norm2d_relu(d_x.data(), w, d_bias.data_as<float>(), &running, d_y.data(),
                               d_mean.data_as<float>(), d_invstd.data_as<float>(), shape, options,
                               workspace.data(), workspace_bytes, nullptr);
        gpu::batch_norm2d_relu_backward(d_x.data(), d_y.data(), w, d_mean.data_as<float>(),
                                        d_invstd.data_as<float>(), d_dy.data(), d_dx.data(),
                                        d_dweight.data_as<float>(), d_dbias.data_as<float>(), shape, true,
                                        workspace.data(), workspace_bytes, nullptr);
    } else {
        gpu::batch_norm2d(d_x.data(), w, d_bias.data_as<float>(), &running, d_y.data(), d_mean.data_as<float>(),
                          d_invstd.data_as<float>(), shape, options, workspace.data(), workspace_bytes, nullptr);
        gpu::batch_norm2d_backward(d_x.data(), w, d_mean.data_as<float>(), d_invstd.data_as<float>(),
                                   d_dy.data(), d_dx.data(), d_dweight.data_as<float>(),
                                   d_dbias.data_as<float>(), shape, true, workspace.data(), workspace_bytes,
                                   nullptr);
    }
    return {test::to_host(d_y, shape),
            test::to_host<float>(d_mean, per_channel),
            test::to_host<float>(d_invstd, per_channel),
            test::to_host<float>(d_running_mean, per_channel),
            test::to_host<float>(d_running_var, per_channel),
            test::to_host(d_dx, shape),
            test::to_host<float>(d_dweight, per_channel),
            test::to_host<float>(d_dbias, per_channel)};
}

TEST_CASE("batch_norm2d gives the same bits on tensors that are not 16-byte aligned", "[parity][batch_norm]") {
    // H·W = 320: float4 units, loaded as float4s when aligned and as scalars otherwise; two statistics
    // blocks per channel, 2 or 3 units a thread.
    const Shape shape{9, 3, 16, 20};
    const HostTensor<float> x = test::random_tensor<float>(shape, 603, -2.0, 3.0);
    const HostTensor<float> dy = test::random_tensor<float>(shape, 604);
    for (bool relu : {false, true}) {
        INFO("relu " << relu);
        const OffsetRun aligned = run_at_offset(x, dy, relu, 0);
        const OffsetRun unaligned = run_at_offset(x, dy, relu, 1);
        CHECK(test::bitwise_equal(aligned.y, unaligned.y));
        CHECK(test::bitwise_equal(aligned.mean, unaligned.mean));
        CHECK(test::bitwise_equal(aligned.invstd, unaligned.invstd));
        CHECK(test::bitwise_equal(aligned.running_mean, unaligned.running_mean));
        CHECK(test::bitwise_equal(aligned.running_var, unaligned.running_var));
        CHECK(test::bitwise_equal(aligned.dx, unaligned.dx));
        CHECK(test::bitwise_equal(aligned.dweight, unaligned.dweight));
        CHECK(test::bitwise_equal(aligned.dbias, unaligned.dbias));
        // And right: the normalized output against the reference.
        const Shape per_channel{shape[1]};
        const HostTensor<float> weight = test::random_tensor<float>(per_channel, 601, 0.5, 1.5);
        const HostTensor<float> bias = test::random_tensor<float>(per_channel, 602);
        HostTensor<float> expected = cpu::batch_norm2d<float>(x, &weight, &bias, nullptr).output;
        if (relu) {
            for (int64_t i = 0; i < expected.numel(); ++i) expected.data()[i] = std::max(expected.data()[i], 0.0f);
        }
        CHECK(test::max_relative_error(aligned.y, expected) <= kBnElementwiseTolerance);
    }
}

TEST_CASE("batch_norm2d may write y over x", "[parity][batch_norm]") {
    // 9·24·24 = 5184 values per channel: two statistics blocks and two normalize blocks per channel, so a
    // block that read the statistics' shift from x could see another block's output.
    const Shape shape{9, 2, 24, 24};
    const HostTensor<float> x = test::random_tensor<float>(shape, 605, 50.0, 52.0);
    const size_t workspace_bytes = gpu::batch_norm2d_workspace_bytes(shape);
    const DeviceBuffer workspace(workspace_bytes);
    const cpu::BatchNorm2dOptions options;
    auto run = [&](bool in_place) {
        const DeviceBuffer d_x = test::to_device(x);
        const DeviceBuffer d_y = test::poisoned<float>(shape.numel());
        const DeviceBuffer d_mean = test::poisoned<float>(2), d_invstd = test::poisoned<float>(2);
        float* y = in_place ? d_x.data_as<float>() : d_y.data_as<float>();
        gpu::batch_norm2d(d_x.data_as<float>(), nullptr, nullptr, nullptr, y, d_mean.data_as<float>(),
                          d_invstd.data_as<float>(), shape, options, workspace.data(), workspace_bytes, nullptr);
        return test::to_host<float>(in_place ? d_x : d_y, shape);
    };
    CHECK(test::bitwise_equal(run(true), run(false)));
}

// A convolution's bias folded into the training-mode batch norm after it (BatchNorm2dRunningStatsView::
// input_shift): the kernels see x' = x − shift and must give what the reference gives on x = x' + shift,
// except that save_mean is x''s own (the backward reads x'). The running mean's extra error is one float
// rounding of mean(x') + shift (≤ 2^-24 of |mean + shift| ≤ 2) beside the reference's roundings of
// x' + shift (≤ 2^-24 of |x| each, random in sign, averaged): orders below kBnSumTolerance's 1e-4, which
// the mean's own reduction error already sets; a missing shift is off by |shift| ≈ 0.5.
TEST_CASE("batch_norm2d with an input shift normalizes x as it is and updates the running mean of x + shift",
          "[parity][batch_norm][bias_fold]") {
    struct ShiftCase {
        Shape shape;
        bool relu;
        std::optional<double> momentum;
    };
    // Odd planes (units of 1), float4 planes split over two statistics blocks, a cumulative average.
    const std::vector<ShiftCase> cases{{{5, 3, 7, 5}, false, 0.1},
                                       {{5, 3, 7, 5}, true, 0.1},
                                       {{9, 2, 24, 24}, true, 0.3},
                                       {{3, 5, 9, 11}, false, std::nullopt}};
    uint32_t seed = 3100;
    for (const ShiftCase& c : cases) {
        INFO("shape " << fmt::format("{}", c.shape) << " relu " << c.relu);
        seed += 100;
        const int64_t channels = c.shape[1];
        const Shape per_channel{channels};
        const HostTensor<float> x_lacking = test::random_tensor<float>(c.shape, seed);
        const HostTensor<float> shift = test::random_tensor<float>(per_channel, seed + 1);
        HostTensor<float> x_full(c.shape);
        const int64_t plane = c.shape[2] * c.shape[3];
        for (int64_t i = 0; i < x_full.numel(); ++i) x_full[i] = x_lacking[i] + shift[(i / plane) % channels];
        const HostTensor<float> weight = test::random_tensor<float>(per_channel, seed + 2, 0.5, 1.5);
        const HostTensor<float> bias = test::random_tensor<float>(per_channel, seed + 3);
        cpu::BatchNorm2dRunningStats<float> running{
            test::random_tensor<float>(per_channel, seed + 4, -0.5, 0.5),
            test::random_tensor<float>(per_channel, seed + 5, 0.5, 1.5), c.momentum ? 0 : 3};
        DeviceRunning d_running = upload_running(running);
        const DeviceBuffer d_shift = test::to_device(shift);
        d_running.view.input_shift = d_shift.data_as<float>();
        cpu::BatchNorm2dOptions options;
        options.momentum = c.momentum;
        const cpu::BatchNorm2dResult<float> expected =
            cpu::batch_norm2d(x_full, &weight, &bias, &running, options);
        const HostTensor<float> lacking_mean =
            cpu::batch_norm2d<float>(x_lacking, nullptr, nullptr, nullptr).save_mean;
        HostTensor<float> expected_y = expected.output;
        if (c.relu) expected_y = cpu::relu(expected_y);

        const size_t workspace_bytes = gpu::batch_norm2d_workspace_bytes(c.shape);
        const DeviceBuffer workspace =
            test::poisoned<float>(static_cast<int64_t>(workspace_bytes / sizeof(float)));
        const DeviceBuffer d_x = test::to_device(x_lacking), d_weight = test::to_device(weight),
                           d_bias = test::to_device(bias);
        const DeviceBuffer d_y = test::poisoned<float>(c.shape.numel());
        const DeviceBuffer d_mean = test::poisoned<float>(channels),
                           d_invstd = test::poisoned<float>(channels);
        const auto forward = [&c](auto... args) {
            if (c.relu) return gpu::batch_norm2d_relu(args...);
            gpu::batch_norm2d(args...);
        };
        forward(d_x.data_as<float>(), d_weight.data_as<float>(), d_bias.data_as<float>(), &d_running.view,
                d_y.data_as<float>(), d_mean.data_as<float>(), d_invstd.data_as<float>(), c.shape, options,
                workspace.data(), workspace_bytes, nullptr);
        CHECK(error_vs(d_y, expected_y) <= kBnElementwiseTolerance);
        CHECK(error_vs(d_mean, lacking_mean) <= kBnSumTolerance);  // x''s own: the backward reads x'
        CHECK(error_vs(d_invstd, expected.save_invstd) <= kBnVarianceTolerance);
        CHECK(d_running.view.num_batches_tracked == running.num_batches_tracked);
        CHECK(error_vs(d_running.mean, running.running_mean) <= kBnSumTolerance);
        CHECK(error_vs(d_running.var, running.running_var) <= kBnVarianceTolerance);
    }
}

TEST_CASE("batch_norm2d launchers reject bad arguments with the reference's messages",
          "[parity][batch_norm]") {
    using test::error_message;
    const Shape shape{2, 3, 4, 4};
    const DeviceBuffer buffer = test::poisoned<float>(shape.numel());
    float* p = buffer.data_as<float>();
    const size_t bytes = gpu::batch_norm2d_workspace_bytes(shape);
    const DeviceBuffer workspace(bytes);
    void* ws = workspace.data();
    DeviceBuffer stats = test::poisoned<float>(6);
    gpu::BatchNorm2dRunningStatsView running{stats.data_as<float>(), stats.data_as<float>() + 3, 0};
    cpu::BatchNorm2dOptions options;
    auto forward = [&](const Shape& s, gpu::BatchNorm2dRunningStatsView* r, const cpu::BatchNorm2dOptions& o,
                       size_t ws_bytes) {
        gpu::batch_norm2d(p, nullptr, nullptr, r, p, p, p, s, o, ws, ws_bytes, nullptr);
    };
    CHECK_THAT(error_message([&] {
                   forward(Shape{2, 3, 4}, &running, options, bytes);
               }),
               Contains("batch_norm2d: input must be (N, C, H, W), got shape (2, 3, 4)"));
    CHECK_THAT(error_message([&] { forward(shape, &running, options, bytes - 16); }),
               Contains(fmt::format("batch_norm2d: the workspace for input (2, 3, 4, 4) must hold {} bytes",
                                    bytes)));
    cpu::BatchNorm2dOptions eval;
    eval.training = false;
    CHECK_THAT(
        error_message([&] { forward(shape, nullptr, eval, 0); }),
        Contains("batch_norm2d: evaluation mode normalizes by the running statistics, but none were given"));
    gpu::BatchNorm2dRunningStatsView shifted = running;
    shifted.input_shift = stats.data_as<float>();
    CHECK_THAT(error_message([&] { forward(shape, &shifted, eval, 0); }),
               Contains("batch_norm2d: evaluation normalizes by the running statistics, which include the "
                        "input_shift"));
    cpu::BatchNorm2dOptions bad_momentum;
    bad_momentum.momentum = 1.5;
    CHECK_THAT(error_message([&] { forward(shape, &running, bad_momentum, bytes); }),
               Contains("batch_norm2d: momentum 1.5 must be in [0, 1]"));
    cpu::BatchNorm2dOptions bad_eps;
    bad_eps.eps = -1.0;
    CHECK_THAT(error_message([&] { forward(shape, &running, bad_eps, bytes); }),
               Contains("batch_norm2d: eps -1 must be finite and >= 0"));
    CHECK_THAT(
        error_message([&] {
            forward(Shape{1, 3, 1, 1}, &running, options, bytes);
        }),
        Contains("batch_norm2d: training needs more than 1 value per channel, got input shape (1, 3, 1, 1)"));
    CHECK(running.num_batches_tracked == 0);  // failed calls count no batch
    CHECK_THAT(error_message([&] {
                   gpu::batch_norm2d_backward(p, nullptr, p, p, p, p, p, p, shape, true, ws, 0, nullptr);
               }),
               Contains("batch_norm2d_backward: the workspace for input (2, 3, 4, 4) must hold"));
    CHECK_THAT(
        error_message([&] {
            gpu::batch_norm2d_backward(p, nullptr, nullptr, p, p, p, p, p, shape, true, ws, bytes, nullptr);
        }),
        Contains("batch_norm2d_backward: x, dy, dx, save_mean and save_invstd must be device pointers"));
}
