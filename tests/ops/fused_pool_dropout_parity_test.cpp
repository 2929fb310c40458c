// The kernels that fold a dropout into the max pooling before it (cuda/pool.cu: max_pool2d_dropout and its
// backward, with and without the fused ReLU) against the separate kernels they replace (max_pool2d or
// relu_max_pool2d, then dropout_forward or dropout2d_forward, and back), which the other parity tests hold to
// the CPU reference: the executor swaps one for the other, so outputs, masks and gradients must be the same
// bits, NaN, infinities and signed zeros included.
#include <catch2/catch.hpp>

#include <cmath>
#include <cstdint>
#include <limits>
#include <string>
#include <vector>

#include "cuda/dropout.hpp"
#include "cuda/pool.hpp"
#include "support/errors.hpp"
#include "support/max_pool_cases.hpp"
#include "support/parity.hpp"
#include "support/pool_options.hpp"

using namespace cudacnn;
using Catch::Matchers::Contains;

namespace {

struct Pass {
    HostTensor<float> y, dx;
    HostTensor<float> pooled;  // the separate run's max pooling output (empty for the fused run)
    std::vector<int64_t> indices;
    std::vector<uint8_t> mask;
};

// One forward and backward, fused or as the executor's separate kernels, every output poisoned first.
Pass run(const HostTensor<float>& x, const HostTensor<float>& dy, const cpu::MaxPool2dOptions& pool,
         const gpu::PooledDropout& dropout, bool relu, bool fused) {
    const Shape& shape = x.shape();
    const Shape out_shape = cpu::max_pool2d_output_shape(shape, pool);
    const int64_t outputs = out_shape.numel();
    const Shape mask_shape = dropout.channelwise ? Shape{out_shape[0], out_shape[1]} : out_shape;
    const DeviceBuffer d_x = test::to_device(x), d_dy = test::to_device(dy);
    const DeviceBuffer d_y = test::poisoned<float>(outputs), d_dx = test::poisoned<float>(shape.numel());
    const DeviceBuffer d_indices = test::poisoned<int64_t>(outputs), d_mask = test::poisoned<uint8_t>(mask_shape.numel());
    auto* indices = d_indices.data_as<int64_t>();
    auto* mask = d_mask.data_as<uint8_t>();
    const float* dy_p = d_dy.data_as<float>();
    float *y = d_y.data_as<float>(), *dx = d_dx.data_as<float>();
    Pass pass;
    if (fused) {
        gpu::max_pool2d_dropout(d_x.data_as<float>(), y, indices, mask, shape, pool, dropout, relu, nullptr);
        gpu::max_pool2d_dropout_backward(indices, mask, dy_p, dx, shape, pool, dropout, nullptr);
    } else {
        const DeviceBuffer d_pooled = test::poisoned<float>(outputs), d_dpooled = test::poisoned<float>(outputs);
        float *pooled = d_pooled.data_as<float>(), *dpooled = d_dpooled.data_as<float>();
        if (relu) {
            gpu::relu_max_pool2d(d_x.data_as<float>(), pooled, indices, shape, pool, nullptr);
        } else {
            gpu::max_pool2d(d_x.data_as<float>(), pooled, indices, shape, pool, nullptr);
        }
        if (dropout.channelwise) {
            gpu::dropout2d_forward(pooled, y, mask, out_shape, dropout.options, nullptr, dropout.step);
            gpu::dropout2d_backward(dy_p, mask, dpooled, out_shape, dropout.options, nullptr);
        } else {
            gpu::dropout_forward(pooled, y, mask, outputs, dropout.options, nullptr, dropout.step);
            gpu::dropout_backward(dy_p, mask, dpooled, outputs, dropout.options, nullptr);
        }
        if (relu) {
            gpu::relu_max_pool2d_backward(indices, pooled, dpooled, dx, shape, pool, nullptr);
        } else {
            gpu::max_pool2d_backward(indices, dpooled, dx, shape, pool, nullptr);
        }
        pass.pooled = test::to_host<float>(d_pooled, out_shape);
    }
    pass.y = test::to_host<float>(d_y, out_shape);
    pass.dx = test::to_host<float>(d_dx, shape);
    pass.indices = test::to_host<int64_t>(d_indices, out_shape).values();
    pass.mask = test::to_host<uint8_t>(d_mask, mask_shape).values();
    return pass;
}

// Everything the fused pass must share with the separate one. Its indices are max pooling's, except that with
// the ReLU a window whose ReLU output is <= 0 (which passes no gradient) points nowhere (−1).
void check_same(const Pass& fused, const Pass& separate, bool relu) {
    CHECK(test::bitwise_equal(fused.y, separate.y));
    CHECK(fused.mask == separate.mask);
    CHECK(test::bitwise_equal(fused.dx, separate.dx));
    REQUIRE(fused.indices.size() == separate.indices.size());
    for (std::size_t i = 0; i < fused.indices.size(); ++i) {
        const bool blocked = relu && separate.pooled[static_cast<int64_t>(i)] <= 0.0f;
        INFO("output " << i << ", pooled " << separate.pooled[static_cast<int64_t>(i)]);
        CHECK(fused.indices[i] == (blocked ? -1 : separate.indices[i]));
    }
}

}  // namespace

TEST_CASE("max_pool2d_dropout equals max pooling then dropout bit for bit, forward and backward",
          "[parity][pool][dropout][fused]") {
    const std::vector<cpu::DropoutOptions> options = {
        cpu::DropoutOptions{0.3, true, 1234, 5},
        cpu::DropoutOptions{0.0, true, 77, 3},   // nothing drawn, every unit kept
        cpu::DropoutOptions{1.0, true, 77, 3},   // every unit dropped: y = pooled · 0
        cpu::DropoutOptions{0.3, false, 77, 3},  // eval mode: the pooling alone, an all-ones mask
    };
    // The edge cases in dy make the dropped units' gradients NaN (NaN · 0), which only the right ReLU decision
    // passes or stops.
    uint32_t seed = 1100;
    for (const test::MaxPoolCase& c : test::max_pool_kernel_cases()) {
        for (const cpu::DropoutOptions& o : options) {
            for (bool channelwise : {false, true}) {
                for (bool relu : {false, true}) {
                    CAPTURE(c.name, o.p, o.training, channelwise, relu);
                    const HostTensor<float> x = test::with_specials(c.shape, seed, 11);
                    const HostTensor<float> dy =
                        test::with_specials(cpu::max_pool2d_output_shape(c.shape, c.pool), seed + 1, 5);
                    const gpu::PooledDropout dropout{o, channelwise, {}};
                    const Pass fused = run(x, dy, c.pool, dropout, relu, true);
                    const Pass separate = run(x, dy, c.pool, dropout, relu, false);
                    check_same(fused, separate, relu);
                    seed += 2;
                }
            }
        }
    }
}

TEST_CASE("max_pool2d_dropout's test inputs reach the cases that matter", "[parity][pool][dropout][fused]") {
    // Some windows blocked by the ReLU where the dropout dropped the unit and dy is not finite (the case the
    // index's −1 exists for), and p = 0.3 keeps some units and drops others.
    const Shape shape{3, 5, 9, 7};
    const cpu::MaxPool2dOptions pool = test::max_options(2);
    // Mostly negative inputs, so that many windows are all <= 0.
    HostTensor<float> x = test::with_specials(shape, 1200, 11);
    for (float& v : x.values()) v -= 0.6f;
    const HostTensor<float> dy = test::with_specials(cpu::max_pool2d_output_shape(shape, pool), 1201, 5);
    const gpu::PooledDropout dropout{cpu::DropoutOptions{0.3, true, 1234, 5}, false, {}};
    const Pass fused = run(x, dy, pool, dropout, true, true);
    const Pass separate = run(x, dy, pool, dropout, true, false);
    check_same(fused, separate, true);
    int64_t kept = 0, dropped = 0, blocked_nonfinite = 0, passing_nonfinite = 0;
    for (std::size_t i = 0; i < fused.mask.size(); ++i) {
        const auto o = static_cast<int64_t>(i);
        (fused.mask[i] != 0 ? kept : dropped) += 1;
        if (fused.mask[i] != 0 || std::isfinite(dy[o])) continue;
        (separate.pooled[o] <= 0.0f ? blocked_nonfinite : passing_nonfinite) += 1;
    }
    CHECK(kept > 0);
    CHECK(dropped > 0);
    CHECK(blocked_nonfinite > 0);
    CHECK(passing_nonfinite > 0);
}

TEST_CASE("max_pool2d_dropout draws from the device step counter's stream, as dropout does",
          "[parity][pool][dropout][fused]") {
    const Shape shape{4, 6, 10, 9};
    const cpu::MaxPool2dOptions pool = test::max_options(2);
    const HostTensor<float> x = test::with_specials(shape, 1300, 11);
    const HostTensor<float> dy = test::with_specials(cpu::max_pool2d_output_shape(shape, pool), 1301, 5);
    const DeviceBuffer counter = test::to_device(HostTensor<int64_t>(Shape{1}, std::vector<int64_t>{5}));
    const gpu::DeviceStep step{counter.data_as<int64_t>(), 11};
    for (bool channelwise : {false, true}) {
        CAPTURE(channelwise);
        const gpu::PooledDropout stepped{cpu::DropoutOptions{0.3, true, 21, uint64_t{1} << 48}, channelwise, step};
        const Pass fused = run(x, dy, pool, stepped, true, true);
        const Pass separate = run(x, dy, pool, stepped, true, false);
        check_same(fused, separate, true);
        // Another step, other masks: the counter is read, not ignored.
        gpu::PooledDropout unstepped = stepped;
        unstepped.step = {};
        CHECK(run(x, dy, pool, unstepped, true, true).mask != fused.mask);
    }
}

TEST_CASE("max_pool2d_dropout checks its arguments as max pooling and dropout do", "[parity][pool][dropout][fused]") {
    const Shape shape{1, 2, 4, 4};
    const DeviceBuffer buffer = test::poisoned<float>(shape.numel());
    const DeviceBuffer indices = test::poisoned<int64_t>(8), mask = test::poisoned<uint8_t>(8);
    float* f = buffer.data_as<float>();
    int64_t* i = indices.data_as<int64_t>();
    uint8_t* m = mask.data_as<uint8_t>();
    const cpu::MaxPool2dOptions pool = test::max_options(2);
    gpu::PooledDropout bad{cpu::DropoutOptions{1.5, true, 1, 2}, false, {}};
    CHECK_THAT(test::error_message([&] { gpu::max_pool2d_dropout(f, f, i, m, shape, pool, bad, true, nullptr); }),
               Contains("relu_max_pool2d_dropout: p is 1.5"));
    const gpu::PooledDropout good{cpu::DropoutOptions{0.5, true, 1, 2}, true, {}};
    CHECK_THAT(test::error_message([&] { gpu::max_pool2d_dropout(f, f, i, nullptr, shape, pool, good, false, nullptr); }),
               Contains("max_pool2d_dropout: the dropout mask must be a device pointer (N · C bytes)"));
    CHECK_THAT(test::error_message([&] {
                   gpu::max_pool2d_dropout_backward(nullptr, m, f, f, shape, pool, good, nullptr);
               }),
               Contains("max_pool2d_dropout_backward: indices must be the device pointer"));
}
