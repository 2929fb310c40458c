// The kernels that fuse a ReLU (cuda/batch_norm.cu: batch_norm2d_relu, cuda/pool.cu: relu_max_pool2d) against
// the separate kernels they replace, which the other parity tests hold to the CPU reference: fused and separate
// must give the same bits, forward and backward, because the executor swaps one for the other.
#include <catch2/catch.hpp>

#include <cmath>
#include <cstdint>
#include <limits>
#include <string>
#include <vector>

#include "cuda/activation.hpp"
#include "cuda/batch_norm.hpp"
#include "cuda/pool.hpp"
#include "support/compare.hpp"
#include "support/errors.hpp"
#include "support/parity.hpp"
#include "support/pool_options.hpp"

using namespace cudacnn;
using Catch::Contains;

namespace {

HostTensor<float> download(const DeviceBuffer& buffer, const Shape& shape) {
    return test::to_host<float>(buffer, shape);
}

// Batch norm's outputs and buffers after one forward and backward, fused with the ReLU or not.
struct BnRun {
    HostTensor<float> y, save_mean, save_invstd, running_mean, running_var, dx, dweight, dbias;
};

BnRun run_batch_norm(const HostTensor<float>& x, const HostTensor<float>& dy, bool training, bool fused) {
    const Shape& shape = x.shape();
    const Shape channels{shape[1]};
    const int64_t count = shape.numel();
    const HostTensor<float> weight = test::random_tensor<float>(channels, 11);
    const HostTensor<float> bias = test::random_tensor<float>(channels, 12);
    const DeviceBuffer d_x = test::to_device(x), d_dy = test::to_device(dy);
    const DeviceBuffer d_weight = test::to_device(weight), d_bias = test::to_device(bias);
    const DeviceBuffer d_running_mean = test::to_device(test::random_tensor<float>(channels, 13));
    // Positive running variances, as evaluation needs.
    HostTensor<float> variance = test::random_tensor<float>(channels, 14);
    for (float& v : variance.values()) v = 0.5f + std::fabs(v);
    const DeviceBuffer d_running_var = test::to_device(variance);
    gpu::BatchNorm2dRunningStatsView running{d_running_mean.data_as<float>(), d_running_var.data_as<float>(), 3};
    const DeviceBuffer d_y = test::poisoned<float>(count), d_mean = test::poisoned<float>(shape[1]),
                       d_invstd = test::poisoned<float>(shape[1]);
    const DeviceBuffer d_dx = test::poisoned<float>(count), d_dweight = test::poisoned<float>(shape[1]),
                       d_dbias = test::poisoned<float>(shape[1]);
    const size_t workspace_bytes = gpu::batch_norm2d_workspace_bytes(shape);
    const DeviceBuffer workspace(workspace_bytes);
    cpu::BatchNorm2dOptions options;
    options.training = training;

    const float *xp = d_x.data_as<float>(), *w = d_weight.data_as<float>(), *b = d_bias.data_as<float>();
    float *y = d_y.data_as<float>(), *mean = d_mean.data_as<float>(), *invstd = d_invstd.data_as<float>();
    if (fused) {
        gpu::batch_norm2d_relu(xp, w, b, &running, y, mean, invstd, shape, options, workspace.data(),
                               workspace_bytes, nullptr);
        gpu::batch_norm2d_relu_backward(xp, y, w, mean, invstd, d_dy.data_as<float>(), d_dx.data_as<float>(),
                                        d_dweight.data_as<float>(), d_dbias.data_as<float>(), shape, training,
                                        workspace.data(), workspace_bytes, nullptr);
    } else {
        // The executor's unfused order: batch norm into its own output, ReLU into another, and back.
        const DeviceBuffer d_normalized = test::poisoned<float>(count), d_dnormalized = test::poisoned<float>(count);
        gpu::batch_norm2d(xp, w, b, &running, d_normalized.data_as<float>(), mean, invstd, shape, options,
                          workspace.data(), workspace_bytes, nullptr);
        gpu::relu_forward(d_normalized.data_as<float>(), y, count, nullptr);
        gpu::relu_backward(y, d_dy.data_as<float>(), d_dnormalized.data_as<float>(), count, nullptr);
        gpu::batch_norm2d_backward(xp, w, mean, invstd, d_dnormalized.data_as<float>(), d_dx.data_as<float>(),
                                   d_dweight.data_as<float>(), d_dbias.data_as<float>(), shape, training,
                                   workspace.data(), workspace_bytes, nullptr);
    }
    return {download(d_y, shape),
            download(d_mean, channels),
            download(d_invstd, channels),
            download(d_running_mean, channels),
            download(d_running_var, channels),
            download(d_dx, shape),
            download(d_dweight, channels),
            download(d_dbias, channels)};
}

// Max pooling's outputs after one forward and backward, fused with the ReLU before it or not.
struct PoolRun {
    HostTensor<float> y, dx;
    std::vector<int64_t> indices;
};

PoolRun run_pool(const HostTensor<float>& x, const cpu::MaxPool2dOptions& options, uint32_t dy_seed, bool fused) {
    const Shape& shape = x.shape();
    const Shape out_shape = cpu::max_pool2d_output_shape(shape, options);
    const HostTensor<float> dy = test::random_tensor<float>(out_shape, dy_seed);
    const DeviceBuffer d_x = test::to_device(x), d_dy = test::to_device(dy);
    const DeviceBuffer d_y = test::poisoned<float>(out_shape.numel()), d_dx = test::poisoned<float>(shape.numel());
    const DeviceBuffer d_indices = test::poisoned<int64_t>(out_shape.numel());
    auto* indices = d_indices.data_as<int64_t>();
    if (fused) {
        gpu::relu_max_pool2d(d_x.data_as<float>(), d_y.data_as<float>(), indices, shape, options, nullptr);
        gpu::relu_max_pool2d_backward(indices, d_y.data_as<float>(), d_dy.data_as<float>(), d_dx.data_as<float>(),
                                      shape, options, nullptr);
    } else {
        const DeviceBuffer d_relu = test::poisoned<float>(shape.numel()), d_drelu = test::poisoned<float>(shape.numel());
        gpu::relu_forward(d_x.data_as<float>(), d_relu.data_as<float>(), shape.numel(), nullptr);
        gpu::max_pool2d(d_relu.data_as<float>(), d_y.data_as<float>(), indices, shape, options, nullptr);
        gpu::max_pool2d_backward(indices, d_dy.data_as<float>(), d_drelu.data_as<float>(), shape, options, nullptr);
        gpu::relu_backward(d_relu.data_as<float>(), d_drelu.data_as<float>(), d_dx.data_as<float>(), shape.numel(),
                           nullptr);
    }
    const HostTensor<int64_t> host_indices = test::to_host<int64_t>(d_indices, out_shape);
    return {download(d_y, out_shape), download(d_dx, shape), host_indices.values()};
}

}  // namespace

TEST_CASE("batch_norm2d_relu equals batch_norm2d then ReLU bit for bit, forward and backward",
          "[parity][batch_norm][fused]") {
    struct Case {
        std::string name;
        Shape shape;
        bool training;
    };
    // CifarCNN's BN(32) scaled down; an odd shape split over several reduction blocks; evaluation.
    const std::vector<Case> cases = {
        {"cifar_train", {2, 32, 16, 16}, true}, {"split_train", {5, 3, 23, 25}, true}, {"odd_eval", {5, 3, 7, 5}, false}};
    uint32_t seed = 700;
    for (const Case& c : cases) {
        INFO("case " << c.name);
        const HostTensor<float> x = test::random_tensor<float>(c.shape, seed);
        const HostTensor<float> dy = test::random_tensor<float>(c.shape, seed + 1);
        const BnRun fused = run_batch_norm(x, dy, c.training, true);
        const BnRun separate = run_batch_norm(x, dy, c.training, false);
        int64_t zeros = 0;  // the ReLU must have cut something for the test to mean anything
        for (float v : fused.y.values()) zeros += v == 0.0f;
        CHECK(zeros > c.shape.numel() / 10);
        CHECK(test::bitwise_equal(fused.y, separate.y));
        CHECK(test::bitwise_equal(fused.save_mean, separate.save_mean));
        CHECK(test::bitwise_equal(fused.save_invstd, separate.save_invstd));
        CHECK(test::bitwise_equal(fused.running_mean, separate.running_mean));
        CHECK(test::bitwise_equal(fused.running_var, separate.running_var));
        CHECK(test::bitwise_equal(fused.dx, separate.dx));
        CHECK(test::bitwise_equal(fused.dweight, separate.dweight));
        CHECK(test::bitwise_equal(fused.dbias, separate.dbias));
        seed += 10;
    }
}

TEST_CASE("relu_max_pool2d equals ReLU then max_pool2d bit for bit, forward and backward",
          "[parity][pool][fused]") {
    struct Case {
        std::string name;
        HostTensor<float> x;
        cpu::MaxPool2dOptions options;
    };
    // Ties (a coarse grid, and every negative value becomes a tied 0) and NaNs, with overlapping windows.
    HostTensor<float> tied = test::random_tensor<float>({2, 3, 7, 5}, 21);
    for (float& v : tied.values()) v = std::floor(v * 2.0f) / 2.0f;
    HostTensor<float> with_nans = test::random_tensor<float>({1, 3, 7, 5}, 22);
    for (int64_t i : {int64_t{0}, int64_t{6}, int64_t{7}, with_nans.numel() / 2}) {
        with_nans[i] = std::numeric_limits<float>::quiet_NaN();
    }
    const std::vector<Case> cases = {
        {"cifar_k2", test::random_tensor<float>({2, 8, 16, 16}, 20), test::max_options(2)},
        {"ties_k3s1p1_overlapping", tied, test::max_options(3, 1, 1)},
        {"nans_k3s2p1", with_nans, test::max_options(3, 2, 1)},
        {"dilation2_ceil", test::random_tensor<float>({2, 3, 9, 7}, 23), test::max_options(3, 2, 1, 2, true)},
    };
    uint32_t seed = 800;
    for (const Case& c : cases) {
        INFO("case " << c.name);
        const PoolRun fused = run_pool(c.x, c.options, seed, true);
        const PoolRun separate = run_pool(c.x, c.options, seed, false);
        CHECK(test::bitwise_equal(fused.y, separate.y));
        CHECK(fused.indices == separate.indices);
        CHECK(test::bitwise_equal(fused.dx, separate.dx));
        ++seed;
    }
}

TEST_CASE("the fused backward launchers need the forward's output", "[parity][fused]") {
    const Shape shape{1, 2, 4, 4};
    const DeviceBuffer buffer = test::poisoned<float>(shape.numel());
    const DeviceBuffer indices = test::poisoned<int64_t>(4 * 2);
    auto* f = buffer.data_as<float>();
    CHECK_THAT(test::error_message([&] {
                   gpu::relu_max_pool2d_backward(indices.data_as<int64_t>(), nullptr, f, f, shape, test::max_options(2),
                                                 nullptr);
               }),
               Contains("relu_max_pool2d_backward: y must be the device pointer relu_max_pool2d wrote"));
    CHECK_THAT(test::error_message([&] {
                   gpu::batch_norm2d_relu_backward(f, nullptr, nullptr, f, f, f, f, nullptr, nullptr, shape, false,
                                                   nullptr, 0, nullptr);
               }),
               Contains("batch_norm2d_relu_backward: y must be the device pointer batch_norm2d_relu wrote"));
}
