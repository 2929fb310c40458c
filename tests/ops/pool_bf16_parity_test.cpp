// Max pooling on bf16 activations (cuda/pool.hpp's bf16 launchers: plain, fused ReLU, folded dropout; int64
// indices and one-byte window taps) against the CPU reference run on the bf16-rounded inputs with its outputs
// rounded once to bf16, and against the float kernels on the same values: same y and dx bits, same indices,
// taps and masks.
#include <catch2/catch.hpp>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include "cuda/pool.hpp"
#include "cudacnn/ops/activation.hpp"
#include "cudacnn/ops/dropout.hpp"
#include "support/bf16.hpp"
#include "support/errors.hpp"
#include "support/max_pool_cases.hpp"
#include "support/parity.hpp"
#include "support/pool_options.hpp"

using namespace cudacnn;
using Catch::Matchers::Contains;

namespace {

// No tolerance anywhere in this file. The forward is a selection of a bf16 value (then, with a dropout, the
// reference's float(double(v) · factor), rounded once), and the backward's gather adds the same float terms
// in the same (oh, ow) order as the reference's scatter, overlapping windows included, before its one
// rounding: the bf16 result is the reference's float result rounded once, bit for bit.

// Equal bits, or both NaN (the kernels write the canonical bf16 NaN, the rounded reference keeps the payload
// and sign). Signed zeros must match. Fails with the first few differences.
void check_same_bf16(const HostTensor<float>& actual, const HostTensor<float>& expected, const char* what) {
    REQUIRE(actual.shape() == expected.shape());
    int64_t differences = 0;
    std::ostringstream first;
    for (int64_t i = 0; i < actual.numel(); ++i) {
        const float a = actual[i], e = expected[i];
        if (std::isnan(a) && std::isnan(e)) continue;
        if (std::memcmp(&a, &e, sizeof a) == 0) continue;
        if (differences++ < 5) first << " [" << i << "] " << a << " vs " << e;
    }
    INFO(what << ": " << differences << " of " << actual.numel()
              << " differ (kernel vs reference):" << first.str());
    CHECK(differences == 0);
}

// The folded dropout of a case; nullopt: none (max_pool2d or relu_max_pool2d and their backwards).
using Dropout = std::optional<gpu::PooledDropout>;

// What a pass writes: y and dx widened to floats, the saved argmaxes' raw bytes, the dropout mask.
struct Pass {
    HostTensor<float> y, dx;
    std::vector<uint8_t> indices;  // int64s or taps, as the kernel wrote them
    std::vector<uint8_t> mask;
};

// Saved argmaxes of the chosen form in a buffer filled with 0xff bytes (−1 as int64, kNoWindowTap as taps:
// the kernels must overwrite what they save; unsaved bytes would show against the other kernel's).
struct SavedArgmaxes {
    DeviceBuffer buffer;
    bool taps;
    SavedArgmaxes(int64_t outputs, bool taps_)
        : buffer(static_cast<std::size_t>(outputs) * (taps_ ? 1 : sizeof(int64_t))), taps(taps_) {
        fill_bytes(buffer.data(), 0xff, buffer.bytes());
    }
    gpu::MaxPoolIndices written() const {
        return taps ? gpu::MaxPoolIndices::window_taps(buffer.data_as<uint8_t>())
                    : gpu::MaxPoolIndices(buffer.data_as<int64_t>());
    }
    gpu::ConstMaxPoolIndices read() const {
        return taps ? gpu::ConstMaxPoolIndices::window_taps(buffer.data_as<uint8_t>())
                    : gpu::ConstMaxPoolIndices(buffer.data_as<int64_t>());
    }
    std::vector<uint8_t> bytes() const {
        return download<uint8_t>(buffer.data_as<uint8_t>(), buffer.bytes());
    }
};

// The launchers the executor calls for this case, for T = float or bf16, on device x and dy of type T.
template <class T>
void launch_pair(const T* x, T* y, const T* dy, T* dx, const SavedArgmaxes& saved, uint8_t* mask,
                 const Shape& shape, const cpu::MaxPool2dOptions& pool, const Dropout& dropout, bool relu) {
    if (dropout) {
        gpu::max_pool2d_dropout(x, y, saved.written(), mask, shape, pool, *dropout, relu, nullptr);
        gpu::max_pool2d_dropout_backward(saved.read(), mask, dy, dx, shape, pool, *dropout, nullptr);
    } else {
        (relu ? gpu::relu_max_pool2d : gpu::max_pool2d)(x, y, saved.written(), shape, pool, nullptr);
        if (relu) {
            gpu::relu_max_pool2d_backward(saved.read(), y, dy, dx, shape, pool, nullptr);
        } else {
            gpu::max_pool2d_backward(saved.read(), dy, dx, shape, pool, nullptr);
        }
    }
}

int64_t mask_count(const Shape& out, const Dropout& dropout) {
    return dropout && dropout->channelwise ? out[0] * out[1] : out.numel();
}

// One forward and backward through the bf16 launchers; x and dy hold bf16 values. Outputs are NaN-poisoned.
Pass run_bf16(const HostTensor<float>& x, const HostTensor<float>& dy, const cpu::MaxPool2dOptions& pool,
              const Dropout& dropout, bool relu, bool taps) {
    const Shape& shape = x.shape();
    const Shape out = cpu::max_pool2d_output_shape(shape, pool);
    const DeviceBuffer d_x = test::to_device_bf16(x), d_dy = test::to_device_bf16(dy);
    const DeviceBuffer d_y = test::poisoned_bf16(out.numel()), d_dx = test::poisoned_bf16(shape.numel());
    const DeviceBuffer d_mask = test::poisoned<uint8_t>(mask_count(out, dropout));
    const SavedArgmaxes saved(out.numel(), taps);
    launch_pair<gpu::bf16>(test::bf16_data(d_x), test::bf16_data(d_y), test::bf16_data(d_dy),
                           test::bf16_data(d_dx), saved, d_mask.data_as<uint8_t>(), shape, pool, dropout,
                           relu);
    return {test::to_host_bf16(d_y.data(), out), test::to_host_bf16(d_dx.data(), shape), saved.bytes(),
            test::to_host<uint8_t>(d_mask, Shape{mask_count(out, dropout)}).values()};
}

// The same through the float launchers (y and dx not rounded: only the indices and mask are compared).
Pass run_float(const HostTensor<float>& x, const HostTensor<float>& dy, const cpu::MaxPool2dOptions& pool,
               const Dropout& dropout, bool relu, bool taps) {
    const Shape& shape = x.shape();
    const Shape out = cpu::max_pool2d_output_shape(shape, pool);
    const DeviceBuffer d_x = test::to_device(x), d_dy = test::to_device(dy);
    const DeviceBuffer d_y = test::poisoned<float>(out.numel()), d_dx = test::poisoned<float>(shape.numel());
    const DeviceBuffer d_mask = test::poisoned<uint8_t>(mask_count(out, dropout));
    const SavedArgmaxes saved(out.numel(), taps);
    launch_pair<float>(d_x.data_as<float>(), d_y.data_as<float>(), d_dy.data_as<float>(),
                       d_dx.data_as<float>(), saved, d_mask.data_as<uint8_t>(), shape, pool, dropout, relu);
    return {test::to_host<float>(d_y, out), test::to_host<float>(d_dx, shape), saved.bytes(),
            test::to_host<uint8_t>(d_mask, Shape{mask_count(out, dropout)}).values()};
}

// The reference: the CPU ops the fused kernels stand for, in float on the bf16-valued inputs, y and dx
// rounded once to bf16 at the end. indices: the int64 ones the kernels save (−1 where the fused ReLU blocks a
// dropped-out window, see max_pool2d_dropout).
struct Reference {
    HostTensor<float> y, dx;
    std::vector<int64_t> indices;
    std::vector<uint8_t> mask;
};

Reference reference(const HostTensor<float>& x, const HostTensor<float>& dy,
                    const cpu::MaxPool2dOptions& pool, const Dropout& dropout, bool relu) {
    const cpu::MaxPool2dResult<float> pooled = cpu::max_pool2d(relu ? cpu::relu(x) : x, pool);
    Reference r;
    HostTensor<float> y = pooled.output, g = dy;
    if (dropout) {
        const cpu::DropoutResult<float> d = dropout->channelwise
                                                ? cpu::dropout2d(pooled.output, dropout->options)
                                                : cpu::dropout(pooled.output, dropout->options);
        y = d.y;
        r.mask = d.mask.values();
        g = (dropout->channelwise ? cpu::dropout2d_backward(dy, d.mask, dropout->options)
                                  : cpu::dropout_backward(dy, d.mask, dropout->options))
                .dx;
    }
    if (relu) g = cpu::relu_backward(pooled.output, g).dx;
    r.y = test::round_to_bf16(y);
    r.dx = test::round_to_bf16(cpu::max_pool2d_backward(x.shape(), pooled.indices, g).dx);
    r.indices = pooled.indices.values();
    if (dropout && relu) {
        for (std::size_t i = 0; i < r.indices.size(); ++i) {
            if (pooled.output[static_cast<int64_t>(i)] <= 0.0f) r.indices[i] = -1;
        }
    }
    return r;
}

std::vector<int64_t> as_int64(const std::vector<uint8_t>& bytes) {
    std::vector<int64_t> values(bytes.size() / sizeof(int64_t));
    std::memcpy(values.data(), bytes.data(), values.size() * sizeof(int64_t));
    return values;
}

}  // namespace

TEST_CASE(
    "bf16 max pooling equals the reference on bf16 inputs bit for bit, with the float kernels' argmaxes",
    "[parity][bf16][pool]") {
    // The shared geometries (both backward kernels: the tiled one for exact k = s tilings, the gather for
    // cut-off, overlapping, padded and dilated windows) and one window of 255 taps, the most that taps fit.
    std::vector<test::MaxPoolCase> cases = test::max_pool_kernel_cases();
    cases.push_back({"taps_255", {1, 2, 19, 21}, test::max_options({15, 17}, cpu::Pair2d{2, 3}, {7, 8})});
    std::vector<Dropout> dropouts = {std::nullopt};
    for (bool channelwise : {false, true}) {
        dropouts.push_back(gpu::PooledDropout{cpu::DropoutOptions{0.3, true, 1234, 5}, channelwise, {}});
    }
    dropouts.push_back(gpu::PooledDropout{cpu::DropoutOptions{1.0, true, 77, 3}, false, {}});  // all dropped
    dropouts.push_back(gpu::PooledDropout{cpu::DropoutOptions{0.3, false, 77, 3}, true, {}});  // eval mode
    uint32_t seed = 4100;
    for (const test::MaxPoolCase& c : cases) {
        for (const Dropout& dropout : dropouts) {
            for (bool relu : {false, true}) {
                // Ties (values on a grid of quarters, exact in bf16) every other seed; ±0, ±NaN and ±inf in
                // x and dy either way. Rounding to bf16 makes more ties among the rest.
                const bool ties = seed % 4 == 0;
                const HostTensor<float> x = test::round_to_bf16(test::with_specials(c.shape, seed, 7, ties));
                const HostTensor<float> dy = test::round_to_bf16(
                    test::with_specials(cpu::max_pool2d_output_shape(c.shape, c.pool), seed + 1, 5, ties));
                seed += 2;
                const Reference ref = reference(x, dy, c.pool, dropout, relu);
                for (bool taps : {false, true}) {
                    CAPTURE(c.name, relu, ties, taps, dropout.has_value(), dropout && dropout->channelwise,
                            dropout ? dropout->options.p : 0.0, dropout && dropout->options.training);
                    const Pass bf16 = run_bf16(x, dy, c.pool, dropout, relu, taps);
                    check_same_bf16(bf16.y, ref.y, "y");
                    check_same_bf16(bf16.dx, ref.dx, "dx");
                    if (dropout) CHECK(bf16.mask == ref.mask);
                    // The argmaxes: the float kernels' bytes on the same values, in either form; the int64
                    // ones are the reference's.
                    const Pass f32 = run_float(x, dy, c.pool, dropout, relu, taps);
                    CHECK(bf16.indices == f32.indices);
                    CHECK(bf16.mask == f32.mask);
                    if (!taps) CHECK(as_int64(bf16.indices) == ref.indices);
                }
            }
        }
    }
}

TEST_CASE("bf16 max pooling without saved indices (inference) writes the same y", "[parity][bf16][pool]") {
    const Shape shape{3, 5, 9, 7};
    const cpu::MaxPool2dOptions pool = test::max_options(3, 2, 1);
    const HostTensor<float> x = test::round_to_bf16(test::with_specials(shape, 4300, 7, true));
    const Shape out = cpu::max_pool2d_output_shape(shape, pool);
    const DeviceBuffer d_x = test::to_device_bf16(x), d_y = test::poisoned_bf16(out.numel());
    for (bool relu : {false, true}) {
        CAPTURE(relu);
        (relu ? gpu::relu_max_pool2d : gpu::max_pool2d)(test::bf16_data(d_x), test::bf16_data(d_y), nullptr,
                                                        shape, pool, nullptr);
        const HostTensor<float> expected = cpu::max_pool2d(relu ? cpu::relu(x) : x, pool).output;
        check_same_bf16(test::to_host_bf16(d_y.data(), out), test::round_to_bf16(expected), "y");
    }
}

TEST_CASE("bf16 max pooling checks its arguments as the float launchers do", "[parity][bf16][pool]") {
    const Shape shape{1, 2, 17, 18};
    const DeviceBuffer buffer = test::poisoned_bf16(shape.numel());
    const DeviceBuffer taps = test::poisoned<uint8_t>(8), mask = test::poisoned<uint8_t>(8);
    gpu::bf16* b = test::bf16_data(buffer);
    const auto* t = taps.data_as<uint8_t>();
    auto* m = mask.data_as<uint8_t>();
    const cpu::MaxPool2dOptions big = test::max_options(16);  // 256 taps: 255 is kNoWindowTap
    CHECK_THAT(test::error_message(
                   [&] { gpu::max_pool2d(b, b, gpu::MaxPoolIndices::window_taps(m), shape, big, nullptr); }),
               Contains("max_pool2d") && Contains("(16, 16) has 256 taps (at most 255)"));
    CHECK_THAT(test::error_message([&] {
                   gpu::max_pool2d_backward(gpu::ConstMaxPoolIndices::window_taps(t), b, b, shape, big,
                                            nullptr);
               }),
               Contains("max_pool2d_backward") && Contains("256 taps"));
    const cpu::MaxPool2dOptions pool = test::max_options(2);
    CHECK_THAT(test::error_message([&] {
                   gpu::relu_max_pool2d_backward(gpu::ConstMaxPoolIndices::window_taps(t), nullptr, b, b,
                                                 shape, pool, nullptr);
               }),
               Contains("relu_max_pool2d_backward: y must be the device pointer"));
    const gpu::PooledDropout dropout{cpu::DropoutOptions{0.5, true, 1, 2}, true, {}};
    CHECK_THAT(test::error_message([&] {
                   gpu::max_pool2d_dropout(b, b, gpu::MaxPoolIndices::window_taps(m), nullptr, shape, pool,
                                           dropout, false, nullptr);
               }),
               Contains("max_pool2d_dropout: the dropout mask must be a device pointer (N · C bytes)"));
    CHECK_THAT(test::error_message([&] {
                   gpu::max_pool2d_dropout_backward(
                       gpu::ConstMaxPoolIndices(static_cast<const int64_t*>(nullptr)), m, b, b, shape, pool,
                       dropout, nullptr);
               }),
               Contains("max_pool2d_dropout_backward: indices must be the device pointer"));
    CHECK_THAT(test::error_message([&] {
                   gpu::max_pool2d(static_cast<const gpu::bf16*>(nullptr), b, nullptr, shape, pool, nullptr);
               }),
               Contains("max_pool2d") && Contains("x and y must be device pointers"));
}
