// Max pooling's two forms of saved argmaxes (cuda/pool.hpp: MaxPoolIndices), int64 plane indices (PyTorch's,
// which the other parity tests hold to the CPU reference) and one-byte window taps (the executor's GPU
// backend's): every max pooling launcher, forward and backward, with and without the fused ReLU and the
// folded dropout, must give the same y and dx bits from either, and the taps must name the cells the int64
// indices name.
#include <catch2/catch.hpp>

#include <cstdint>
#include <limits>
#include <optional>
#include <string>
#include <vector>

#include "cuda/pool.hpp"
#include "support/errors.hpp"
#include "support/max_pool_cases.hpp"
#include "support/parity.hpp"
#include "support/pool_options.hpp"

using namespace cudacnn;
using Catch::Matchers::Contains;

namespace {

// The plane index (h · W + w) that window tap `tap` of output o stands for; −1 for kNoWindowTap.
int64_t decode_tap(uint8_t tap, int64_t o, const Shape& input, const Shape& out,
                   const cpu::MaxPool2dOptions& p) {
    if (tap == gpu::kNoWindowTap) return -1;
    const int64_t oh = o / out[3] % out[2], ow = o % out[3];
    const cpu::Pair2d s = p.stride.value_or(p.kernel_size);
    const int64_t h = oh * s.h - p.padding.h + tap / p.kernel_size.w * p.dilation.h;
    const int64_t w = ow * s.w - p.padding.w + tap % p.kernel_size.w * p.dilation.w;
    return h * input[3] + w;
}

struct Pass {
    HostTensor<float> y, dx;
    std::vector<int64_t> indices;  // as plane indices (taps decoded)
    std::vector<uint8_t> mask;
};

// One forward and backward through the launchers the executor uses, saving int64 indices or window taps (the
// index buffer filled with `poison` bytes first, so that an unwritten one shows as a difference between runs;
// y, dx and the mask are NaN-poisoned).
Pass run(const HostTensor<float>& x, const HostTensor<float>& dy, const cpu::MaxPool2dOptions& pool,
         const std::optional<gpu::PooledDropout>& dropout, bool relu, bool taps, int poison) {
    const Shape& shape = x.shape();
    const Shape out_shape = cpu::max_pool2d_output_shape(shape, pool);
    const int64_t outputs = out_shape.numel();
    const int64_t mask_count = dropout && dropout->channelwise ? out_shape[0] * out_shape[1] : outputs;
    const DeviceBuffer d_x = test::to_device(x), d_dy = test::to_device(dy);
    const DeviceBuffer d_y = test::poisoned<float>(outputs), d_dx = test::poisoned<float>(shape.numel());
    const DeviceBuffer d_mask = test::poisoned<uint8_t>(mask_count);
    const DeviceBuffer d_indices(static_cast<std::size_t>(outputs) * (taps ? 1 : sizeof(int64_t)));
    fill_bytes(d_indices.data(), poison, d_indices.bytes());
    const gpu::MaxPoolIndices written = taps ? gpu::MaxPoolIndices::window_taps(d_indices.data_as<uint8_t>())
                                             : gpu::MaxPoolIndices(d_indices.data_as<int64_t>());
    const gpu::ConstMaxPoolIndices read =
        taps ? gpu::ConstMaxPoolIndices::window_taps(d_indices.data_as<uint8_t>())
             : gpu::ConstMaxPoolIndices(d_indices.data_as<int64_t>());
    const float* xp = d_x.data_as<float>();
    const float* dyp = d_dy.data_as<float>();
    float *y = d_y.data_as<float>(), *dx = d_dx.data_as<float>();
    auto* mask = d_mask.data_as<uint8_t>();
    if (dropout) {
        gpu::max_pool2d_dropout(xp, y, written, mask, shape, pool, *dropout, relu, nullptr);
        gpu::max_pool2d_dropout_backward(read, mask, dyp, dx, shape, pool, *dropout, nullptr);
    } else if (relu) {
        gpu::relu_max_pool2d(xp, y, written, shape, pool, nullptr);
        gpu::relu_max_pool2d_backward(read, y, dyp, dx, shape, pool, nullptr);
    } else {
        gpu::max_pool2d(xp, y, written, shape, pool, nullptr);
        gpu::max_pool2d_backward(read, dyp, dx, shape, pool, nullptr);
    }
    Pass pass;
    pass.y = test::to_host<float>(d_y, out_shape);
    pass.dx = test::to_host<float>(d_dx, shape);
    pass.mask = test::to_host<uint8_t>(d_mask, Shape{mask_count}).values();
    if (taps) {
        const std::vector<uint8_t> saved = test::to_host<uint8_t>(d_indices, out_shape).values();
        for (int64_t o = 0; o < outputs; ++o) {
            const uint8_t tap = saved[static_cast<std::size_t>(o)];
            // A tap is a cell of the window's grid or "none"; an unwritten byte may be neither.
            const bool in_grid = tap < pool.kernel_size.h * pool.kernel_size.w || tap == gpu::kNoWindowTap;
            CHECK(in_grid);
            pass.indices.push_back(decode_tap(tap, o, shape, out_shape, pool));
        }
    } else {
        pass.indices = test::to_host<int64_t>(d_indices, out_shape).values();
    }
    return pass;
}

void check_same(const Pass& taps, const Pass& plane) {
    CHECK(test::bitwise_equal(taps.y, plane.y));
    CHECK(test::bitwise_equal(taps.dx, plane.dx));
    CHECK(taps.mask == plane.mask);
    CHECK(taps.indices == plane.indices);
}

}  // namespace

TEST_CASE("max pooling saves window taps that give the int64 indices' outputs and gradients bit for bit",
          "[parity][pool][dropout][fused]") {
    // The shared geometries, then unequal axes and the largest window that taps fit: 15 × 17 = 255 taps,
    // 0 … 254, below kNoWindowTap.
    std::vector<test::MaxPoolCase> cases = test::max_pool_kernel_cases();
    cases.push_back(
        {"unequal_axes", {2, 3, 11, 8}, test::max_options({2, 3}, cpu::Pair2d{1, 2}, {1, 1}, {2, 1}, true)});
    cases.push_back({"taps_255", {1, 3, 19, 21}, test::max_options({15, 17}, cpu::Pair2d{2, 3}, {7, 8})});
    std::vector<std::optional<gpu::PooledDropout>> dropouts = {std::nullopt};
    for (bool channelwise : {false, true}) {
        dropouts.push_back(gpu::PooledDropout{cpu::DropoutOptions{0.3, true, 1234, 5}, channelwise, {}});
    }
    dropouts.push_back(
        gpu::PooledDropout{cpu::DropoutOptions{1.0, true, 77, 3}, false, {}});  // every unit dropped
    uint32_t seed = 2100;
    for (const test::MaxPoolCase& c : cases) {
        REQUIRE(gpu::window_taps_fit(c.pool));
        for (const auto& dropout : dropouts) {
            for (bool relu : {false, true}) {
                CAPTURE(c.name, relu, dropout.has_value(), dropout && dropout->channelwise,
                        dropout ? dropout->options.p : 0.0);
                const HostTensor<float> x = test::with_specials(c.shape, seed, 7, true);
                const HostTensor<float> dy =
                    test::with_specials(cpu::max_pool2d_output_shape(c.shape, c.pool), seed + 1, 5, true);
                const Pass plane = run(x, dy, c.pool, dropout, relu, false, 0xff);
                check_same(run(x, dy, c.pool, dropout, relu, true, 0xff), plane);
                check_same(run(x, dy, c.pool, dropout, relu, true, 0x00), plane);
                seed += 2;
            }
        }
    }
}

TEST_CASE("window taps need windows of at most 255 taps; larger ones keep int64 indices", "[parity][pool]") {
    const cpu::MaxPool2dOptions pool = test::max_options(16);  // 256 taps: 255 is kNoWindowTap
    CHECK_FALSE(gpu::window_taps_fit(pool));
    CHECK(gpu::window_taps_fit(test::max_options({15, 17})));
    const Shape shape{1, 2, 17, 18};
    const DeviceBuffer x = test::to_device(test::random_tensor<float>(shape, 5));
    const DeviceBuffer y = test::poisoned<float>(2), dx = test::poisoned<float>(shape.numel());
    const DeviceBuffer taps = test::poisoned<uint8_t>(2);
    const auto* tap_data = taps.data_as<uint8_t>();
    auto* tap_out = taps.data_as<uint8_t>();
    CHECK_THROWS_WITH(
        gpu::max_pool2d(x.data_as<float>(), y.data_as<float>(), gpu::MaxPoolIndices::window_taps(tap_out),
                        shape, pool, nullptr),
        Contains("max_pool2d") && Contains("(16, 16) has 256 taps (at most 255)") && Contains("int64"));
    CHECK_THROWS_WITH(gpu::max_pool2d_backward(gpu::ConstMaxPoolIndices::window_taps(tap_data),
                                               y.data_as<float>(), dx.data_as<float>(), shape, pool, nullptr),
                      Contains("max_pool2d_backward") && Contains("256 taps"));
    const gpu::PooledDropout dropout{cpu::DropoutOptions{0.3, true, 1, 1}, false, {}};
    CHECK_THROWS_WITH(gpu::max_pool2d_dropout(x.data_as<float>(), y.data_as<float>(),
                                              gpu::MaxPoolIndices::window_taps(tap_out), tap_out, shape, pool,
                                              dropout, true, nullptr),
                      Contains("relu_max_pool2d_dropout") && Contains("256 taps"));
    // The int64 form takes the same window.
    const DeviceBuffer indices = test::poisoned<int64_t>(2);
    gpu::max_pool2d(x.data_as<float>(), y.data_as<float>(), indices.data_as<int64_t>(), shape, pool, nullptr);
    const std::vector<int64_t> saved = test::to_host<int64_t>(indices, Shape{2}).values();
    CHECK(saved[0] >= 0);
    CHECK(saved[0] < 17 * 18);
}
