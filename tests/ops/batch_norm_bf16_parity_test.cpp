// Parity of the bf16 batch_norm2d launchers (cuda/batch_norm.hpp: x, y, dy, dx in bf16, everything else
// float) with the CPU reference run on the bf16-rounded inputs, its y and dx rounded once to bf16; and with
// the float launchers on the same (widened) inputs, whose statistics and sums they must reproduce bit for bit
// and whose y and dx they must round once. Training (batch statistics, running statistics, an input shift),
// evaluation, fused ReLU, odd and vector-width shapes, misaligned tensors, a constant channel, bad arguments.
#include <catch2/catch.hpp>

#include <cmath>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "cuda/batch_norm.hpp"
#include "cudacnn/ops/activation.hpp"
#include "support/bf16.hpp"
#include "support/compare.hpp"
#include "support/errors.hpp"
#include "support/parity.hpp"

using namespace cudacnn;
using Catch::Contains;

namespace {

// y and dx against the reference's, both rounded once to bf16, relative to the tensor's max magnitude S
// (test::max_relative_error). Before rounding, the kernels' float value is the float kernels' (checked bit
// for bit below), which lies within the float test's 1e-5 · S of the reference (tests/ops/
// batch_norm_parity_test.cpp, kBnElementwiseTolerance: the float accumulation of the statistics). Two values
// that close round to the same bf16 or to neighbours, which differ by one bf16 ulp: at most 2^-7 of a value's
// binade floor, so ≤ 2^-7 · S (each rounding errs by ≤ half an ulp, 2^-8 relative; bf16 keeps 8 significant
// bits). Hence 2^-7 + 1e-5. A wrong statistic or a double rounding shows as a larger error, and the bitwise
// comparison with the float kernels below pins everything but this final rounding.
constexpr double kBf16ElementwiseTolerance = 0x1p-7 + 1e-5;
// Statistics, running statistics and dweight, dbias stay float and come from the float kernels' reductions on
// the widened values (checked bit for bit): the float test's bounds apply as they are (its comments justify
// them): save_invstd and the running variance 1e-5, the means and gradient sums 1e-4.
constexpr double kBnVarianceTolerance = 1e-5;
constexpr double kBnSumTolerance = 1e-4;

double error_vs(const HostTensor<float>& actual, const HostTensor<float>& expected) {
    return test::max_relative_error(actual, expected);
}

// bf16 device tensors that may start `offset` elements into their buffer (test::to_device_bf16_at; offset 1:
// 2 bytes, so not 8-byte aligned, and the kernels' width-4 units go as scalars), the elements before
// poisoned.
using Bf16Buffer = test::OffsetBuffer<gpu::bf16>;

Bf16Buffer poisoned_bf16_at(int64_t count, int64_t offset) {
    return test::poisoned_at<gpu::bf16>(count, offset);
}
HostTensor<float> download_bf16(const Bf16Buffer& b, const Shape& shape) {
    return test::to_host_bf16(b.data(), shape);
}
HostTensor<float> download(const DeviceBuffer& b, const Shape& shape) {
    return test::to_host<float>(b, shape);
}

// batch_norm2d_backward, or batch_norm2d_relu_backward given the forward's relu_y (nullptr: no ReLU).
template <class T>
void backward(const T* x, const T* relu_y, const float* weight, const float* save_mean,
              const float* save_invstd, const T* dy, T* dx, float* dweight, float* dbias, const Shape& shape,
              bool training, const DeviceBuffer& workspace) {
    if (relu_y != nullptr) {
        gpu::batch_norm2d_relu_backward(x, relu_y, weight, save_mean, save_invstd, dy, dx, dweight, dbias,
                                        shape, training, workspace.data(), workspace.bytes(), nullptr);
    } else {
        gpu::batch_norm2d_backward(x, weight, save_mean, save_invstd, dy, dx, dweight, dbias, shape, training,
                                   workspace.data(), workspace.bytes(), nullptr);
    }
}

struct Bf16Case {
    std::string name;
    Shape shape;
    bool training = true;
    bool relu = false;
    bool affine = true;
    std::optional<double> momentum = 0.1;
    int64_t batches_tracked = 0;
    int64_t offset = 0;             // elements of the bf16 tensors before their start
    bool input_shift = false;       // a folded conv bias (training only)
    int64_t constant_channel = -1;  // ≥ 0: that channel of x holds one value (training: zero variance)
    double eps = 1e-5;
};

void check_case(const Bf16Case& c, uint32_t seed) {
    const Shape& shape = c.shape;
    const int64_t channels = shape[1], count = shape.numel(), plane = shape[2] * shape[3];
    const Shape per_channel{channels};
    // x around 0.5 (not centred, so that the mean matters), rounded to bf16: the values the kernels read.
    HostTensor<float> x = test::random_tensor<float>(shape, seed, -1.5, 2.5);
    if (c.constant_channel >= 0) {
        for (int64_t i = 0; i < count; ++i) {
            if ((i / plane) % channels == c.constant_channel) x[i] = 0.7f;
        }
    }
    x = test::round_to_bf16(x);
    const HostTensor<float> dy = test::round_to_bf16(test::random_tensor<float>(shape, seed + 1));
    const HostTensor<float> weight = test::random_tensor<float>(per_channel, seed + 2, 0.5, 1.5);
    const HostTensor<float> bias = test::random_tensor<float>(per_channel, seed + 3);
    const HostTensor<float> shift = test::random_tensor<float>(per_channel, seed + 4);
    cpu::BatchNorm2dRunningStats<float> running{test::random_tensor<float>(per_channel, seed + 5, -0.5, 0.5),
                                                test::random_tensor<float>(per_channel, seed + 6, 0.5, 1.5),
                                                c.batches_tracked};
    const cpu::BatchNorm2dRunningStats<float> initial_running = running;
    cpu::BatchNorm2dOptions options;
    options.training = c.training, options.momentum = c.momentum, options.eps = c.eps;

    // The reference: with an input shift, on x + shift (what the running mean tracks); the saves then are
    // x's own (the backward reads x).
    HostTensor<float> x_full = x;
    if (c.input_shift) {
        for (int64_t i = 0; i < count; ++i) x_full[i] = x[i] + shift[(i / plane) % channels];
    }
    const HostTensor<float>* w = c.affine ? &weight : nullptr;
    const HostTensor<float>* b = c.affine ? &bias : nullptr;
    const cpu::BatchNorm2dResult<float> expected = cpu::batch_norm2d(x_full, w, b, &running, options);
    const cpu::BatchNorm2dResult<float> own =
        c.input_shift ? cpu::batch_norm2d<float>(x, w, b, nullptr, options) : expected;
    const HostTensor<float> expected_y =
        test::round_to_bf16(c.relu ? cpu::relu(expected.output) : expected.output);

    const DeviceBuffer d_weight = test::to_device(weight), d_bias = test::to_device(bias),
                       d_shift = test::to_device(shift);
    const float* dw = c.affine ? d_weight.data_as<float>() : nullptr;
    const float* db = c.affine ? d_bias.data_as<float>() : nullptr;
    const DeviceBuffer workspace =
        test::poisoned<float>(static_cast<int64_t>(gpu::batch_norm2d_workspace_bytes(shape) / sizeof(float)));

    // The bf16 forward.
    DeviceBuffer d_running_mean = test::to_device(initial_running.running_mean),
                 d_running_var = test::to_device(initial_running.running_var);
    gpu::BatchNorm2dRunningStatsView view{d_running_mean.data_as<float>(), d_running_var.data_as<float>(),
                                          c.batches_tracked,
                                          c.input_shift ? d_shift.data_as<float>() : nullptr};
    const Bf16Buffer d_x = test::to_device_bf16_at(x, c.offset), d_y = poisoned_bf16_at(count, c.offset);
    const DeviceBuffer d_mean = test::poisoned<float>(channels), d_invstd = test::poisoned<float>(channels);
    const auto forward = [&c](auto... args) {
        if (c.relu) return gpu::batch_norm2d_relu(args...);
        gpu::batch_norm2d(args...);
    };
    forward(d_x.data(), dw, db, &view, d_y.data(), d_mean.data_as<float>(), d_invstd.data_as<float>(), shape,
            options, workspace.data(), workspace.bytes(), nullptr);
    const HostTensor<float> y = download_bf16(d_y, shape);
    const HostTensor<float> save_mean = download(d_mean, per_channel),
                            save_invstd = download(d_invstd, per_channel);
    CHECK(error_vs(y, expected_y) <= kBf16ElementwiseTolerance);
    CHECK(error_vs(save_mean, own.save_mean) <= kBnSumTolerance);
    CHECK(error_vs(save_invstd, own.save_invstd) <= kBnVarianceTolerance);
    CHECK(view.num_batches_tracked == running.num_batches_tracked);
    const HostTensor<float> running_mean = download(d_running_mean, per_channel),
                            running_var = download(d_running_var, per_channel);
    CHECK(error_vs(running_mean, running.running_mean) <= kBnSumTolerance);
    CHECK(error_vs(running_var, running.running_var) <= kBnVarianceTolerance);
    if (c.constant_channel >= 0 && c.training) {
        // Zero variance: x − mean is exactly 0 (the pivot is the channel's value), so y = β (relu(β))
        // exactly.
        for (int64_t i = 0; i < count; ++i) {
            if ((i / plane) % channels != c.constant_channel) continue;
            const float beta = c.affine ? bias[c.constant_channel] : 0.0f;
            REQUIRE(y[i] == test::round_to_bf16(c.relu && beta < 0.0f ? 0.0f : beta));
        }
    }

    // The bf16 backward, from the reference's saves (so that both sides differentiate the same function);
    // with the fused ReLU, through the bf16 kernels' own y, which is what the executor passes (and so the
    // reference masks dy by it too: a value the two forwards round to opposite sides of 0 cannot flip the
    // mask).
    const HostTensor<float> dy_in = c.relu ? cpu::relu_backward(y, dy).dx : dy;
    const cpu::BatchNorm2dGrads<float> grads =
        cpu::batch_norm2d_backward(x, w, own.save_mean, own.save_invstd, dy_in, c.training);
    const DeviceBuffer d_save_mean = test::to_device(own.save_mean),
                       d_save_invstd = test::to_device(own.save_invstd);
    const Bf16Buffer d_dy = test::to_device_bf16_at(dy, c.offset), d_dx = poisoned_bf16_at(count, c.offset);
    const DeviceBuffer d_dweight = test::poisoned<float>(channels), d_dbias = test::poisoned<float>(channels);
    backward(d_x.data(), c.relu ? d_y.data() : nullptr, dw, d_save_mean.data_as<float>(),
             d_save_invstd.data_as<float>(), d_dy.data(), d_dx.data(), d_dweight.data_as<float>(),
             d_dbias.data_as<float>(), shape, c.training, workspace);
    const HostTensor<float> dx = download_bf16(d_dx, shape);
    const HostTensor<float> dweight = download(d_dweight, per_channel),
                            dbias = download(d_dbias, per_channel);
    CHECK(error_vs(dx, test::round_to_bf16(grads.dx)) <= kBf16ElementwiseTolerance);
    CHECK(error_vs(dweight, grads.dweight) <= kBnSumTolerance);
    CHECK(error_vs(dbias, grads.dbias) <= kBnSumTolerance);

    // The float kernels on the same values (aligned: float4 units where the bf16 run may have gone scalar):
    // every float result the same bits, y and dx those bits rounded once.
    DeviceBuffer f_running_mean = test::to_device(initial_running.running_mean),
                 f_running_var = test::to_device(initial_running.running_var);
    gpu::BatchNorm2dRunningStatsView f_view{f_running_mean.data_as<float>(), f_running_var.data_as<float>(),
                                            c.batches_tracked, view.input_shift};
    const DeviceBuffer f_x = test::to_device(x), f_y = test::poisoned<float>(count);
    const DeviceBuffer f_mean = test::poisoned<float>(channels), f_invstd = test::poisoned<float>(channels);
    forward(f_x.data_as<float>(), dw, db, &f_view, f_y.data_as<float>(), f_mean.data_as<float>(),
            f_invstd.data_as<float>(), shape, options, workspace.data(), workspace.bytes(), nullptr);
    // With the ReLU, the float backward masks by the bf16 run's y (widened), as the bf16 backward did.
    const DeviceBuffer f_relu_y = test::to_device(y), f_dy = test::to_device(dy),
                       f_dx = test::poisoned<float>(count);
    const DeviceBuffer f_dweight = test::poisoned<float>(channels), f_dbias = test::poisoned<float>(channels);
    backward(f_x.data_as<float>(), c.relu ? f_relu_y.data_as<float>() : nullptr, dw,
             d_save_mean.data_as<float>(), d_save_invstd.data_as<float>(), f_dy.data_as<float>(),
             f_dx.data_as<float>(), f_dweight.data_as<float>(), f_dbias.data_as<float>(), shape, c.training,
             workspace);
    CHECK(test::bf16_mismatches(y, test::round_to_bf16(download(f_y, shape))) == 0);
    CHECK(test::bitwise_equal(save_mean, download(f_mean, per_channel)));
    CHECK(test::bitwise_equal(save_invstd, download(f_invstd, per_channel)));
    CHECK(test::bitwise_equal(running_mean, download(f_running_mean, per_channel)));
    CHECK(test::bitwise_equal(running_var, download(f_running_var, per_channel)));
    CHECK(test::bf16_mismatches(dx, test::round_to_bf16(download(f_dx, shape))) == 0);
    CHECK(test::bitwise_equal(dweight, download(f_dweight, per_channel)));
    CHECK(test::bitwise_equal(dbias, download(f_dbias, per_channel)));
}

}  // namespace

TEST_CASE("bf16 batch_norm2d kernels match the reference on bf16 inputs, and the float kernels bit for bit",
          "[parity][bf16][batch_norm]") {
    std::vector<Bf16Case> cases;
    // Odd planes (units of 1 value), N = 3, C = 5.
    cases.push_back({"odd_train", {3, 5, 7, 9}});
    // Channel 2 constant: zero variance. eps 0.5 keeps its invstd (1 / sqrt(eps)) near the other channels' so
    // that its dx does not set the scale the others' errors are measured against.
    cases.push_back({"odd_train_constant_channel_relu", {3, 5, 7, 9}, true, true});
    cases.back().constant_channel = 2, cases.back().eps = 0.5;
    // Misaligned by one element, no affine, cumulative average.
    cases.push_back({"odd_train_noaffine_cumulative_misaligned", {3, 5, 7, 9}, true, false, false});
    cases.back().momentum = std::nullopt, cases.back().batches_tracked = 2, cases.back().offset = 1;
    // H·W = 80: width-4 units, 8-byte vector loads and stores when aligned, scalars when not.
    cases.push_back({"width4_train_relu", {4, 3, 8, 10}, true, true});
    cases.push_back({"width4_train_relu_misaligned", {4, 3, 8, 10}, true, true});
    cases.back().offset = 1;
    // M = 2875 > 2048: two statistics blocks per channel, merged by Chan's formula in the normalize.
    cases.push_back({"split_train_momentum03", {5, 3, 23, 25}});
    cases.back().momentum = 0.3;
    // A folded conv bias (width 1 and width 4).
    cases.push_back({"odd_train_input_shift", {3, 5, 7, 9}});
    cases.back().input_shift = true;
    cases.push_back({"width4_train_relu_input_shift", {4, 3, 8, 10}, true, true});
    cases.back().input_shift = true;
    // Evaluation: the running statistics, no sums unless dweight and dbias are wanted (they are here).
    cases.push_back({"odd_eval", {3, 5, 7, 9}, false});
    cases.push_back({"width4_eval_relu_misaligned", {4, 3, 8, 10}, false, true});
    cases.back().offset = 1;
    cases.push_back({"odd_eval_noaffine", {3, 5, 7, 9}, false, false, false});
    uint32_t seed = 7100;
    for (const Bf16Case& c : cases) {
        INFO("case " << c.name);
        check_case(c, seed);
        seed += 100;
    }
}

TEST_CASE("bf16 batch_norm2d_backward in evaluation without dweight and dbias writes dx only",
          "[parity][bf16][batch_norm]") {
    const Shape shape{3, 5, 7, 9};
    const Shape per_channel{5};
    const HostTensor<float> x = test::round_to_bf16(test::random_tensor<float>(shape, 7900));
    const HostTensor<float> dy = test::round_to_bf16(test::random_tensor<float>(shape, 7901));
    const HostTensor<float> mean = test::random_tensor<float>(per_channel, 7902, -0.5, 0.5);
    const HostTensor<float> invstd = test::random_tensor<float>(per_channel, 7903, 0.5, 1.5);
    const cpu::BatchNorm2dGrads<float> grads =
        cpu::batch_norm2d_backward<float>(x, nullptr, mean, invstd, dy, false);
    const DeviceBuffer d_x = test::to_device_bf16(x), d_dy = test::to_device_bf16(dy);
    const DeviceBuffer d_mean = test::to_device(mean), d_invstd = test::to_device(invstd);
    const DeviceBuffer d_dx = test::poisoned_bf16(shape.numel());
    // Evaluation needs no sums, and so no workspace.
    gpu::batch_norm2d_backward(test::bf16_data(d_x), nullptr, d_mean.data_as<float>(),
                               d_invstd.data_as<float>(), test::bf16_data(d_dy), test::bf16_data(d_dx),
                               nullptr, nullptr, shape, false, nullptr, 0, nullptr);
    // dx = invstd · dy in float on both sides, then rounded once to bf16: the elementwise bound.
    CHECK(error_vs(test::to_host_bf16(d_dx.data(), shape), test::round_to_bf16(grads.dx)) <=
          kBf16ElementwiseTolerance);
}

TEST_CASE("bf16 batch_norm2d launchers reject bad arguments as the float ones do",
          "[parity][bf16][batch_norm]") {
    using test::error_message;
    const Shape shape{2, 3, 4, 4};
    const DeviceBuffer buffer = test::poisoned_bf16(shape.numel());
    gpu::bf16* p = test::bf16_data(buffer);
    DeviceBuffer stats = test::poisoned<float>(6);
    float* s = stats.data_as<float>();
    const size_t bytes = gpu::batch_norm2d_workspace_bytes(shape);
    const DeviceBuffer workspace(bytes);
    gpu::BatchNorm2dRunningStatsView running{s, s + 3, 0};
    const cpu::BatchNorm2dOptions options;
    CHECK_THAT(error_message([&] {
                   gpu::batch_norm2d(p, nullptr, nullptr, &running, p, s, s, Shape{2, 3, 4}, options,
                                     workspace.data(), bytes, nullptr);
               }),
               Contains("batch_norm2d: input must be (N, C, H, W), got shape (2, 3, 4)"));
    CHECK_THAT(error_message([&] {
                   gpu::batch_norm2d_relu(p, nullptr, nullptr, &running, p, s, s, shape, options,
                                          workspace.data(), bytes - 16, nullptr);
               }),
               Contains(fmt::format(
                   "batch_norm2d_relu: the workspace for input (2, 3, 4, 4) must hold {} bytes", bytes)));
    CHECK(running.num_batches_tracked == 0);  // failed calls count no batch
    CHECK_THAT(
        error_message([&] {
            gpu::batch_norm2d_backward(p, nullptr, s, s, p, nullptr, s, s, shape, true, workspace.data(),
                                       bytes, nullptr);
        }),
        Contains("batch_norm2d_backward: x, dy, dx, save_mean and save_invstd must be device pointers"));
    CHECK_THAT(error_message([&] {
                   gpu::batch_norm2d_relu_backward(p, nullptr, nullptr, s, s, p, p, s, s, shape, true,
                                                   workspace.data(), bytes, nullptr);
               }),
               Contains("batch_norm2d_relu_backward: y must be the device pointer batch_norm2d_relu wrote"));
}
