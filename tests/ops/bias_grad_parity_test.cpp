// Parity of the bias-gradient reductions (cuda/bias_grad.cu) with the CPU references' bias gradients.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <cstdint>

#include "cuda/bias_grad.hpp"
#include "cudacnn/ops/conv2d.hpp"
#include "cudacnn/ops/linear.hpp"
#include "support/compare.hpp"
#include "support/errors.hpp"
#include "support/parity.hpp"
#include "support/tolerance.hpp"

using namespace cudacnn;

namespace {

// A float sum of `terms` values in a tree (per-thread runs, then shuffles) against a double reference: the
// error is at most about terms · 2^-24 of Σ|dy|, and far less in practice; with the random signs here the
// sum's scale is ~√terms · |dy|, so terms · 2^-24 relative to max|db| still holds with a wide margin.
double tolerance(int64_t terms) {
    return test::float_sum_tolerance(terms);
}

// db[c] = Σ_{n, h, w} dy[n, c, h, w] in double, rounded once: what cpu::conv2d_backward computes for dbias.
HostTensor<float> channel_sums(const HostTensor<float>& dy) {
    const int64_t n = dy.dim(0), c = dy.dim(1), hw = dy.dim(2) * dy.dim(3);
    HostTensor<float> db(Shape{c});
    for (int64_t ch = 0; ch < c; ++ch) {
        double sum = 0.0;
        for (int64_t i = 0; i < n; ++i) {
            for (int64_t p = 0; p < hw; ++p) sum += dy[(i * c + ch) * hw + p];
        }
        db[ch] = static_cast<float>(sum);
    }
    return db;
}

HostTensor<float> run_conv_bias_grad(const HostTensor<float>& dy) {
    DeviceBuffer d_dy = test::to_device(dy), d_db = test::poisoned<float>(dy.dim(1));
    gpu::conv_bias_grad(d_dy.data_as<float>(), d_db.data_as<float>(), dy.dim(0), dy.dim(1), dy.dim(2),
                        dy.dim(3), nullptr);
    return test::to_host<float>(d_db, Shape{dy.dim(1)});
}

}  // namespace

TEST_CASE("conv_bias_grad: matches cpu::conv2d_backward's dbias on a 7 x 5 image", "[parity][bias_grad]") {
    // A 1 × 1 convolution keeps the reference cheap; its dbias is the same channel sum as any conv's.
    const auto x = test::random_tensor<float>(Shape{5, 3, 7, 5}, 1);
    const auto weight = test::random_tensor<float>(Shape{7, 3, 1, 1}, 2);
    const auto dy = test::random_tensor<float>(Shape{5, 7, 7, 5}, 3);
    const auto grads = cpu::conv2d_backward(x, weight, dy, true);
    CHECK(test::max_relative_error(run_conv_bias_grad(dy), grads.dbias) <= tolerance(5 * 7 * 5));
}

TEST_CASE("conv_bias_grad: odd shapes, many channels and a CifarCNN-sized plane", "[parity][bias_grad]") {
    for (const Shape& shape : {Shape{1, 3, 7, 5}, Shape{1, 1, 1, 1}, Shape{5, 130, 7, 5},
                               Shape{3, 17, 13, 11}, Shape{2, 32, 32, 32}, Shape{1000, 2, 1, 1}}) {
        INFO("dy " << shape.to_string());
        const auto dy = test::random_tensor<float>(shape, static_cast<uint32_t>(shape.numel()));
        CHECK(test::max_relative_error(run_conv_bias_grad(dy), channel_sums(dy)) <=
              tolerance(shape[0] * shape[2] * shape[3]));
    }
}

TEST_CASE("conv_bias_grad: bitwise reproducible", "[parity][bias_grad]") {
    const auto dy = test::random_tensor<float>(Shape{3, 5, 16, 16}, 7);
    CHECK(test::bitwise_equal(run_conv_bias_grad(dy), run_conv_bias_grad(dy)));
}

TEST_CASE("linear_bias_grad: matches cpu::linear_backward's dbias", "[parity][bias_grad]") {
    for (const Shape& dy_shape : {Shape{1, 10}, Shape{5, 7}, Shape{128, 1024}, Shape{9, 33}}) {
        INFO("dy " << dy_shape.to_string());
        const int64_t n = dy_shape[0], c = dy_shape[1];
        const auto x = test::random_tensor<float>(Shape{n, 3}, 1);
        const auto weight = test::random_tensor<float>(Shape{c, 3}, 2);
        const auto dy = test::random_tensor<float>(dy_shape, 3);
        DeviceBuffer d_dy = test::to_device(dy), d_db = test::poisoned<float>(c);
        gpu::linear_bias_grad(d_dy.data_as<float>(), d_db.data_as<float>(), n, c, nullptr);
        const auto grads = cpu::linear_backward(x, weight, dy, true);
        CHECK(test::max_relative_error(test::to_host<float>(d_db, Shape{c}), grads.dbias) <= tolerance(n));
    }
}

TEST_CASE("bias_grad: bad arguments name the op and the values", "[parity][bias_grad]") {
    using Catch::Matchers::Contains;
    DeviceBuffer buffer = test::poisoned<float>(16);
    float* p = buffer.data_as<float>();
    CHECK_THAT(test::error_message([&] { gpu::conv_bias_grad(p, p, 2, 3, 0, 5, nullptr); }),
               Contains("conv_bias_grad") && Contains("(2, 3, 0, 5)"));
    CHECK_THAT(test::error_message([&] { gpu::linear_bias_grad(p, p, 0, 4, nullptr); }),
               Contains("linear_bias_grad") && Contains("(0, 4)"));
}
