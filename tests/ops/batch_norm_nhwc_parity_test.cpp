// Parity of the batch_norm2d launchers on NHWC (channels_last) tensors (cuda/batch_norm.hpp's MemoryFormat
// parameter) with the CPU reference (src/cpu/batch_norm.cpp, which computes in NCHW: inputs are permuted with
// test::to_nhwc, outputs back with test::from_nhwc), float and bf16: training (momentum, cumulative average,
// untracked, an input shift), evaluation, affine on and off, fused ReLU, forward and backward (dweight and
// dbias wanted or not), odd shapes (C = 1, 3, 17, 24, 64, 68; odd H·W; N = 1), more than 32 partials a
// channel; bf16 against the float NHWC launchers bit for bit; misaligned tensors and y over x; workspace
// errors.
#include <catch2/catch.hpp>

#include <cstdint>
#include <optional>
#include <string>
#include <type_traits>
#include <vector>

#include "cuda/batch_norm.hpp"
#include "cudacnn/ops/activation.hpp"
#include "support/compare.hpp"
#include "support/errors.hpp"
#include "support/nhwc_device.hpp"

using namespace cudacnn;
using Catch::Contains;

namespace {

// The NHWC statistics and gradient sums are float reductions too, in another order than NCHW's: a thread
// takes ≤ 17 values of its channel in batches of 4 (two passes each) merged by Chan's formula, its block's
// rows merge in a halving tree of ≤ 8 levels (256 rows when C = 1), and the finalize's lanes merge ≤ 32
// partials in turn before a 5-level warp tree: a result sits k ≤ 4 + 5 + 8 + 32 + 5 = 54 roundings from the
// exact value, each ≤ 2^-24 of the partial result it rounds. The reference accumulates in double and rounds
// once. The tests' shapes take ≤ 36 partials, so k ≤ 4 + 5 + 8 + 2 + 5 = 24 here.
//
// y, dx: elementwise from statistics that err by ≲ k · 2^-24 ≤ 3.2e-6 of the data's spread, plus a few
// roundings; with a common offset of 100 the float rounding of save_mean adds ulp(100) / 2 ≈ 4e-6 of the
// spread 1: 1e-5, as for NCHW (tests/ops/batch_norm_parity_test.cpp).
constexpr double kBnElementwiseTolerance = 1e-5;
// save_invstd and the running variance: M2 sums positive terms, so its error stays ≲ k · 2^-24 ≤ 3.2e-6 of
// itself, plus the reference's rounding: 1e-5.
constexpr double kBnVarianceTolerance = 1e-5;
// save_mean, the running mean, dweight = Σ dy · x̂, dbias = Σ dy: random-sign sums whose partial sums are no
// larger than the result in expectation, ≈ k · 2^-24 ≤ 3.2e-6 of max |result|; the worst case may be √M
// times that, so 1e-4 (as for NCHW). A lost slice or a wrong channel is off by ≳ 1e-2.
constexpr double kBnSumTolerance = 1e-4;
// bf16 y and dx: the kernels' float value lies within 1e-5 · S of the reference's (the float bound above, S
// the tensor's max magnitude), and both are rounded once to bf16 (8 significant bits): two values that close
// round to the same bf16 or to neighbours one ulp apart, ≤ 2^-7 · S. A double rounding or a wrong statistic
// shows larger; the bitwise comparison with the float NHWC launchers pins everything but this rounding.
constexpr double kBf16ElementwiseTolerance = 0x1p-7 + 1e-5;

template <class T>
constexpr double elementwise_tolerance() {
    return std::is_same_v<T, float> ? kBnElementwiseTolerance : kBf16ElementwiseTolerance;
}

HostTensor<float> download(const DeviceBuffer& b, const Shape& shape) {
    return test::to_host<float>(b, shape);
}

// x + shift[c] over an NCHW tensor.
HostTensor<float> add_channel_shift(const HostTensor<float>& x, const HostTensor<float>& shift) {
    HostTensor<float> out = x;
    const int64_t channels = x.shape()[1], plane = x.shape()[2] * x.shape()[3];
    for (int64_t i = 0; i < x.numel(); ++i) out[i] += shift[(i / plane) % channels];
    return out;
}

struct NhwcCase {
    std::string name;
    Shape shape;
    bool training = true;
    bool relu = false;
    bool affine =
        true;  // without: weight, bias, dweight and dbias all nullptr (nn.BatchNorm2d(affine=False))
    bool track_running_stats = true;
    std::optional<double> momentum = 0.1;
    int64_t batches_tracked = 0;
    bool input_shift = false;  // a folded conv bias (training only)
    double offset = 0.0;       // x ∈ offset + [-1.5, 2.5)
};

// What one NHWC forward and backward wrote, permuted back to NCHW, widened to float.
struct Outputs {
    HostTensor<float> y, save_mean, save_invstd, running_mean, running_var, dx, dweight, dbias;
    int64_t batches_tracked = 0;
};

// The inputs of a case, all NCHW; x and dy hold T's values (bf16: rounded).
struct Inputs {
    HostTensor<float> x, dy, weight, bias, shift;
    cpu::BatchNorm2dRunningStats<float> running;
};

template <class T>
Inputs make_inputs(const NhwcCase& c, uint32_t seed) {
    using D = test::DeviceOf<T>;
    const Shape per_channel{c.shape[1]};
    return {D::values(test::random_tensor<float>(c.shape, seed, c.offset - 1.5, c.offset + 2.5)),
            D::values(test::random_tensor<float>(c.shape, seed + 1)),
            test::random_tensor<float>(per_channel, seed + 2, 0.5, 1.5),
            test::random_tensor<float>(per_channel, seed + 3),
            test::random_tensor<float>(per_channel, seed + 4),
            {test::random_tensor<float>(per_channel, seed + 5, -0.5, 0.5),
             test::random_tensor<float>(per_channel, seed + 6, 0.5, 1.5), c.batches_tracked}};
}

// T's NHWC forward, then its backward from the given saves (relu: through the forward's own y).
template <class T>
Outputs run_nhwc(const NhwcCase& c, const Inputs& in, const HostTensor<float>& backward_mean,
                 const HostTensor<float>& backward_invstd) {
    using D = test::DeviceOf<T>;
    const Shape& shape = c.shape;
    const int64_t channels = shape[1], count = shape.numel();
    const Shape per_channel{channels};
    const DeviceBuffer d_weight = test::to_device(in.weight), d_bias = test::to_device(in.bias),
                       d_shift = test::to_device(in.shift);
    const float* w = c.affine ? d_weight.data_as<float>() : nullptr;
    const float* b = c.affine ? d_bias.data_as<float>() : nullptr;
    DeviceBuffer d_running_mean = test::to_device(in.running.running_mean),
                 d_running_var = test::to_device(in.running.running_var);
    gpu::BatchNorm2dRunningStatsView view{d_running_mean.data_as<float>(), d_running_var.data_as<float>(),
                                          c.batches_tracked,
                                          c.input_shift ? d_shift.data_as<float>() : nullptr};
    const size_t workspace_bytes = gpu::batch_norm2d_workspace_bytes(shape);
    const DeviceBuffer workspace =
        test::poisoned<float>(static_cast<int64_t>(workspace_bytes / sizeof(float)));
    cpu::BatchNorm2dOptions options;
    options.training = c.training, options.momentum = c.momentum;

    const DeviceBuffer d_x = D::upload(test::to_nhwc(in.x)), d_y = D::poison(count);
    const DeviceBuffer d_mean = test::poisoned<float>(channels), d_invstd = test::poisoned<float>(channels);
    const auto forward = [&c](auto... args) {
        if (c.relu) return gpu::batch_norm2d_relu(args...);
        gpu::batch_norm2d(args...);
    };
    forward(D::data(d_x), w, b, c.track_running_stats ? &view : nullptr, D::data(d_y),
            d_mean.data_as<float>(), d_invstd.data_as<float>(), shape, options, workspace.data(),
            workspace_bytes, nullptr, MemoryFormat::nhwc);

    const DeviceBuffer d_save_mean = test::to_device(backward_mean),
                       d_save_invstd = test::to_device(backward_invstd);
    const DeviceBuffer d_dy = D::upload(test::to_nhwc(in.dy)), d_dx = D::poison(count);
    const DeviceBuffer d_dweight = test::poisoned<float>(channels), d_dbias = test::poisoned<float>(channels);
    float* dweight = c.affine ? d_dweight.data_as<float>() : nullptr;
    float* dbias = c.affine ? d_dbias.data_as<float>() : nullptr;
    if (c.relu) {
        gpu::batch_norm2d_relu_backward(D::data(d_x), D::data(d_y), w, d_save_mean.data_as<float>(),
                                        d_save_invstd.data_as<float>(), D::data(d_dy), D::data(d_dx), dweight,
                                        dbias, shape, c.training, workspace.data(), workspace_bytes, nullptr,
                                        MemoryFormat::nhwc);
    } else {
        gpu::batch_norm2d_backward(D::data(d_x), w, d_save_mean.data_as<float>(),
                                   d_save_invstd.data_as<float>(), D::data(d_dy), D::data(d_dx), dweight,
                                   dbias, shape, c.training, workspace.data(), workspace_bytes, nullptr,
                                   MemoryFormat::nhwc);
    }
    return {test::from_nhwc(D::download(d_y, shape)),
            download(d_mean, per_channel),
            download(d_invstd, per_channel),
            download(d_running_mean, per_channel),
            download(d_running_var, per_channel),
            test::from_nhwc(D::download(d_dx, shape)),
            download(d_dweight, per_channel),
            download(d_dbias, per_channel),
            view.num_batches_tracked};
}

template <class T>
void check_case(const NhwcCase& c, uint32_t seed) {
    using D = test::DeviceOf<T>;
    const Inputs in = make_inputs<T>(c, seed);
    cpu::BatchNorm2dOptions options;
    options.training = c.training, options.momentum = c.momentum;
    const HostTensor<float>* w = c.affine ? &in.weight : nullptr;
    const HostTensor<float>* b = c.affine ? &in.bias : nullptr;
    // The reference on x + shift (what the running mean tracks); the saves are x's own (the backward reads
    // x).
    cpu::BatchNorm2dRunningStats<float> running = in.running;
    const cpu::BatchNorm2dResult<float> expected =
        cpu::batch_norm2d(c.input_shift ? add_channel_shift(in.x, in.shift) : in.x, w, b,
                          c.track_running_stats ? &running : nullptr, options);
    const cpu::BatchNorm2dResult<float> own =
        c.input_shift ? cpu::batch_norm2d<float>(in.x, w, b, nullptr, options) : expected;
    const HostTensor<float> expected_y = D::values(c.relu ? cpu::relu(expected.output) : expected.output);

    const Outputs out = run_nhwc<T>(c, in, own.save_mean, own.save_invstd);
    CHECK(test::max_relative_error(out.y, expected_y) <= elementwise_tolerance<T>());
    CHECK(test::max_relative_error(out.save_mean, own.save_mean) <= kBnSumTolerance);
    CHECK(test::max_relative_error(out.save_invstd, own.save_invstd) <= kBnVarianceTolerance);
    if (c.track_running_stats) {
        CHECK(out.batches_tracked == running.num_batches_tracked);
        CHECK(test::max_relative_error(out.running_mean, running.running_mean) <= kBnSumTolerance);
        CHECK(test::max_relative_error(out.running_var, running.running_var) <= kBnVarianceTolerance);
    } else {
        CHECK(test::bitwise_equal(out.running_mean, in.running.running_mean));  // untouched
    }

    // The backward from the reference's saves (both sides differentiate the same function); with the fused
    // ReLU masked by the kernels' own y, which is what the executor passes.
    const HostTensor<float> dy_in = c.relu ? cpu::relu_backward(out.y, in.dy).dx : in.dy;
    const cpu::BatchNorm2dGrads<float> grads =
        cpu::batch_norm2d_backward(in.x, w, own.save_mean, own.save_invstd, dy_in, c.training);
    CHECK(test::max_relative_error(out.dx, D::values(grads.dx)) <= elementwise_tolerance<T>());
    if (c.affine) {
        CHECK(test::max_relative_error(out.dweight, grads.dweight) <= kBnSumTolerance);
        CHECK(test::max_relative_error(out.dbias, grads.dbias) <= kBnSumTolerance);
    }

    if constexpr (!std::is_same_v<T, float>) {
        // The float NHWC launchers on the same (widened) values: the same statistics and sums bit for bit,
        // y and dx their float values rounded once. With the ReLU, the float backward masks by its own float
        // y, which is positive exactly where its rounding, the bf16 y, is: the same mask.
        const Outputs f = run_nhwc<float>(c, in, own.save_mean, own.save_invstd);
        CHECK(test::bf16_mismatches(out.y, test::round_to_bf16(f.y)) == 0);
        CHECK(test::bitwise_equal(out.save_mean, f.save_mean));
        CHECK(test::bitwise_equal(out.save_invstd, f.save_invstd));
        CHECK(test::bitwise_equal(out.running_mean, f.running_mean));
        CHECK(test::bitwise_equal(out.running_var, f.running_var));
        CHECK(test::bf16_mismatches(out.dx, test::round_to_bf16(f.dx)) == 0);
        if (c.affine) {
            CHECK(test::bitwise_equal(out.dweight, f.dweight));
            CHECK(test::bitwise_equal(out.dbias, f.dbias));
        }
    }
}

std::vector<NhwcCase> nhwc_cases() {
    std::vector<NhwcCase> cases;
    // C = 3: a block of 3 channels × 85 pixel rows; odd H·W, scalar units.
    cases.push_back({"c3_odd_train", {5, 3, 7, 5}});
    // C = 17: 17 × 15 rows; fused ReLU, no affine, a cumulative average.
    cases.push_back({"c17_train_relu_noaffine_cumulative", {3, 17, 5, 7}, true, true, false});
    cases.back().momentum = std::nullopt, cases.back().batches_tracked = 2;
    // N = 1, C = 1 (one channel × 256 rows), untracked.
    cases.push_back({"c1_batch1_train_untracked", {1, 1, 9, 7}, true, false, true, false});
    // C = 64: two channel groups, width-4 units (vector access) in the normalize and dx; an input shift.
    cases.push_back({"c64_train_relu_input_shift", {2, 64, 5, 5}, true, true});
    cases.back().input_shift = true;
    // C = 68: three groups of 23, 23 and 22 channels (a partial block); width 4; a common offset of 100.
    cases.push_back({"c68_train_offset100_momentum03", {3, 68, 3, 5}});
    cases.back().momentum = 0.3, cases.back().offset = 100.0;
    // M = 135135 pixels of one channel: 33 slices of 4096 pixels, so the finalize's lane 0 merges two.
    cases.push_back({"c1_33_splits", {33, 1, 65, 63}});
    // 4495 pixels × 64 channels: 36 slices of 125 pixels per group.
    cases.push_back({"c64_36_splits_relu", {5, 64, 31, 29}, true, true});
    // Evaluation: the running statistics; dweight and dbias wanted (sums) or not (affine=False).
    cases.push_back({"c64_eval_relu", {2, 64, 5, 5}, false, true});
    cases.push_back({"c17_eval", {3, 17, 5, 7}, false});
    cases.push_back({"c3_batch1_eval_noaffine", {1, 3, 7, 5}, false, false, false});
    return cases;
}

template <class T>
void check_all_cases() {
    uint32_t seed = 9100;
    for (const NhwcCase& c : nhwc_cases()) {
        INFO("case " << c.name);
        check_case<T>(c, seed);
        seed += 100;
    }
}

}  // namespace

TEST_CASE("NHWC batch_norm2d kernels match the reference", "[parity][batch_norm][nhwc]") {
    check_all_cases<float>();
}

TEST_CASE("NHWC batch_norm2d at CifarCNN's first BN layer merges 1024 partials a channel",
          "[parity][batch_norm][nhwc]") {
    // (128, 32, 32, 32): 131072 pixels, slices of 128 (16 values a thread): S = 1024, the cap, so that the
    // finalize's lanes merge 32 partials each in turn; width-4 units.
    NhwcCase c{"cifar_bn32_batch128_relu", {128, 32, 32, 32}, true, true};
    check_case<float>(c, 9050);
}

TEST_CASE("bf16 NHWC batch_norm2d kernels match the reference and the float NHWC kernels bit for bit",
          "[parity][bf16][batch_norm][nhwc]") {
    check_all_cases<gpu::bf16>();
}

TEST_CASE("NHWC batch_norm2d_backward in evaluation without dweight and dbias needs no workspace",
          "[parity][batch_norm][nhwc]") {
    const Shape shape{3, 17, 5, 7};
    const Shape per_channel{17};
    const HostTensor<float> x = test::random_tensor<float>(shape, 9900);
    const HostTensor<float> dy = test::random_tensor<float>(shape, 9901);
    const HostTensor<float> mean = test::random_tensor<float>(per_channel, 9902, -0.5, 0.5);
    const HostTensor<float> invstd = test::random_tensor<float>(per_channel, 9903, 0.5, 1.5);
    const HostTensor<float> weight = test::random_tensor<float>(per_channel, 9904, 0.5, 1.5);
    const cpu::BatchNorm2dGrads<float> grads =
        cpu::batch_norm2d_backward<float>(x, &weight, mean, invstd, dy, false);
    const DeviceBuffer d_x = test::to_device(test::to_nhwc(x)), d_dy = test::to_device(test::to_nhwc(dy));
    const DeviceBuffer d_mean = test::to_device(mean), d_invstd = test::to_device(invstd),
                       d_weight = test::to_device(weight);
    const DeviceBuffer d_dx = test::poisoned<float>(shape.numel());
    gpu::batch_norm2d_backward(d_x.data_as<float>(), d_weight.data_as<float>(), d_mean.data_as<float>(),
                               d_invstd.data_as<float>(), d_dy.data_as<float>(), d_dx.data_as<float>(),
                               nullptr, nullptr, shape, false, nullptr, 0, nullptr, MemoryFormat::nhwc);
    CHECK(test::max_relative_error(test::from_nhwc(download(d_dx, shape)), grads.dx) <=
          kBnElementwiseTolerance);
}

namespace {

// One NHWC training forward and backward (affine, fused ReLU or not) on tensors of T that start `offset`
// elements into their buffers; y written over x when in_place. Returns y, the saves, dx, dweight, dbias.
template <class T>
std::vector<HostTensor<float>> run_at(const HostTensor<float>& x, const HostTensor<float>& dy, bool relu,
                                      int64_t offset, bool in_place) {
    const Shape& shape = x.shape();
    const Shape per_channel{shape[1]};
    const DeviceBuffer d_weight = test::to_device(test::random_tensor<float>(per_channel, 9801, 0.5, 1.5));
    const DeviceBuffer d_bias = test::to_device(test::random_tensor<float>(per_channel, 9802));
    const size_t workspace_bytes = gpu::batch_norm2d_workspace_bytes(shape);
    const DeviceBuffer workspace(workspace_bytes);
    const DeviceBuffer d_mean = test::poisoned<float>(shape[1]), d_invstd = test::poisoned<float>(shape[1]);
    const DeviceBuffer d_dweight = test::poisoned<float>(shape[1]), d_dbias = test::poisoned<float>(shape[1]);
    const auto upload = [&](const HostTensor<float>& t) {
        if constexpr (std::is_same_v<T, float>) {
            return test::to_device_at(test::to_nhwc(t), offset);
        } else {
            return test::to_device_bf16_at(test::to_nhwc(t), offset);
        }
    };
    const auto to_host = [&](const test::OffsetBuffer<T>& b) {
        if constexpr (std::is_same_v<T, float>) {
            return test::from_nhwc(test::to_host(b, shape));
        } else {
            return test::from_nhwc(test::to_host_bf16(b.data(), shape));
        }
    };
    const test::OffsetBuffer<T> d_x = upload(x), d_dy = upload(dy);
    const test::OffsetBuffer<T> d_out = test::poisoned_at<T>(shape.numel(), offset);
    const test::OffsetBuffer<T> d_dx = test::poisoned_at<T>(shape.numel(), offset);
    // In place, the backward still needs the forward's x: it reads a copy.
    const test::OffsetBuffer<T> d_x_copy = upload(x);
    T* y = in_place ? d_x.data() : d_out.data();
    const float* w = d_weight.data_as<float>();
    const cpu::BatchNorm2dOptions options;
    const auto forward = [relu](auto... args) {
        if (relu) return gpu::batch_norm2d_relu(args...);
        gpu::batch_norm2d(args...);
    };
    forward(d_x.data(), w, d_bias.data_as<float>(), nullptr, y, d_mean.data_as<float>(),
            d_invstd.data_as<float>(), shape, options, workspace.data(), workspace_bytes, nullptr,
            MemoryFormat::nhwc);
    if (relu) {
        gpu::batch_norm2d_relu_backward(d_x_copy.data(), y, w, d_mean.data_as<float>(),
                                        d_invstd.data_as<float>(), d_dy.data(), d_dx.data(),
                                        d_dweight.data_as<float>(), d_dbias.data_as<float>(), shape, true,
                                        workspace.data(), workspace_bytes, nullptr, MemoryFormat::nhwc);
    } else {
        gpu::batch_norm2d_backward(d_x_copy.data(), w, d_mean.data_as<float>(), d_invstd.data_as<float>(),
                                   d_dy.data(), d_dx.data(), d_dweight.data_as<float>(),
                                   d_dbias.data_as<float>(), shape, true, workspace.data(), workspace_bytes,
                                   nullptr, MemoryFormat::nhwc);
    }
    return {to_host(in_place ? d_x : d_out),  download(d_mean, per_channel),
            download(d_invstd, per_channel),  to_host(d_dx),
            download(d_dweight, per_channel), download(d_dbias, per_channel)};
}

template <class T>
void check_layout_independence() {
    // C = 24: width-4 units (vector access when aligned, scalars at offset 1); 2 · 9 · 11 = 198 pixels.
    const Shape shape{2, 24, 9, 11};
    const HostTensor<float> x = test::round_to_bf16(test::random_tensor<float>(shape, 9810, -2.0, 3.0));
    const HostTensor<float> dy = test::round_to_bf16(test::random_tensor<float>(shape, 9811));
    for (bool relu : {false, true}) {
        INFO("relu " << relu);
        const std::vector<HostTensor<float>> aligned = run_at<T>(x, dy, relu, 0, false);
        const std::vector<HostTensor<float>> misaligned = run_at<T>(x, dy, relu, 1, false);
        const std::vector<HostTensor<float>> in_place = run_at<T>(x, dy, relu, 0, true);
        for (size_t i = 0; i < aligned.size(); ++i) {
            INFO("output " << i);
            CHECK(test::bitwise_equal(aligned[i], misaligned[i]));
            CHECK(test::bitwise_equal(aligned[i], in_place[i]));
        }
    }
}

}  // namespace

TEST_CASE("NHWC batch_norm2d gives the same bits misaligned and with y over x",
          "[parity][batch_norm][nhwc]") {
    check_layout_independence<float>();
    check_layout_independence<gpu::bf16>();
}

TEST_CASE("NHWC batch_norm2d launchers check the workspace as the NCHW ones do",
          "[parity][batch_norm][nhwc]") {
    using test::error_message;
    const Shape shape{2, 3, 4, 4};
    const DeviceBuffer buffer = test::poisoned<float>(shape.numel());
    float* p = buffer.data_as<float>();
    const size_t bytes = gpu::batch_norm2d_workspace_bytes(shape);
    const DeviceBuffer workspace(bytes);
    const cpu::BatchNorm2dOptions options;
    CHECK_THAT(error_message([&] {
                   gpu::batch_norm2d(p, nullptr, nullptr, nullptr, p, p, p, shape, options, workspace.data(),
                                     bytes - 16, nullptr, MemoryFormat::nhwc);
               }),
               Contains(fmt::format("batch_norm2d: the workspace for input (2, 3, 4, 4) must hold {} bytes",
                                    bytes)));
    CHECK_THAT(error_message([&] {
                   gpu::batch_norm2d_relu_backward(p, p, nullptr, p, p, p, p, p, p, shape, true, nullptr, 0,
                                                   nullptr, MemoryFormat::nhwc);
               }),
               Contains("batch_norm2d_relu_backward: the workspace for input (2, 3, 4, 4) must hold"));
}
