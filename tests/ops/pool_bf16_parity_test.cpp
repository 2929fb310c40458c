// Pooling on bf16 activations (cuda/pool.hpp's bf16 launchers) against the CPU reference run on the
// bf16-rounded inputs with its outputs rounded once to bf16. Max pooling (plain, fused ReLU, folded dropout;
// int64 indices and one-byte window taps) also against the float kernels on the same values: same y and dx
// bits, same indices, taps and masks. Average, adaptive and global average pooling within a named tolerance.
#include <catch2/catch.hpp>

#include <algorithm>
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

// No tolerance for max pooling. The forward is a selection of a bf16 value (then, with a dropout, the
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
    } else if (relu) {
        gpu::relu_max_pool2d(x, y, saved.written(), shape, pool, nullptr);
        gpu::relu_max_pool2d_backward(saved.read(), y, dy, dx, shape, pool, nullptr);
    } else {
        gpu::max_pool2d(x, y, saved.written(), shape, pool, nullptr);
        gpu::max_pool2d_backward(saved.read(), dy, dx, shape, pool, nullptr);
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

// Average pooling (avg, adaptive, global) sums in float where the reference sums in double: the float results
// differ by at most the float kernels' own tolerances (pool_parity_test.cpp, for the same window sizes and
// plane sizes as here: kAvgPoolTolerance, kAdaptivePoolTolerance, kGlobalPoolTolerance, all 1e-5 of the
// tensor's largest |value|). Rounding each to bf16 adds at most half a bf16 ulp on either side, so the two
// bf16 results may differ by one ulp of the larger (2^-7 of it at most) where the value lies near a rounding
// midpoint, never by more. (On bf16 inputs the float sums are nearly always exact, so nearly every element is
// in fact bit-identical.) A wrong cell, window or divisor is off by far more.
constexpr double kBf16AvgPoolFloatError = 1e-5;

// Finite elements within one bf16 ulp of the larger of the two plus float_error of the largest finite
// |expected|; non-finite ones equal (NaN matching NaN).
void check_within_one_bf16_ulp(const HostTensor<float>& actual, const HostTensor<float>& expected,
                               double float_error, const char* what) {
    REQUIRE(actual.shape() == expected.shape());
    float scale = 0.0f;
    for (float e : expected.values()) {
        if (std::isfinite(e)) scale = std::max(scale, std::fabs(e));
    }
    int64_t outside = 0, inexact = 0, finite = 0;
    std::ostringstream first;
    for (int64_t i = 0; i < actual.numel(); ++i) {
        const float a = actual[i], e = expected[i];
        if (!std::isfinite(e) || !std::isfinite(a)) {
            const bool same = (std::isnan(a) && std::isnan(e)) || a == e;
            if (!same && outside++ < 5) first << " [" << i << "] " << a << " vs " << e;
            continue;
        }
        ++finite;
        const float larger = std::max(std::fabs(a), std::fabs(e));
        const double ulp =
            larger == 0.0f ? 0.0 : std::ldexp(1.0, std::ilogb(larger) - 7);  // 8 significant bits
        if (a != e) ++inexact;
        if (std::fabs(static_cast<double>(a) - e) > ulp + float_error * scale && outside++ < 5) {
            first << " [" << i << "] " << a << " vs " << e;
        }
    }
    INFO(what << ": " << outside << " of " << actual.numel() << " outside one bf16 ulp (" << inexact << " of "
              << finite << " finite ones not bit-identical):" << first.str());
    CHECK(outside == 0);
    CHECK(finite > actual.numel() / 2);  // the specials leave most windows finite
}

// Runs f(x, y) on a bf16 device copy of x (bf16 values) and a NaN-poisoned bf16 y of y_shape; y widened.
template <class F>
HostTensor<float> on_device_bf16(const HostTensor<float>& x, const Shape& y_shape, F f) {
    const DeviceBuffer d_x = test::to_device_bf16(x), d_y = test::poisoned_bf16(y_shape.numel());
    f(static_cast<const gpu::bf16*>(test::bf16_data(d_x)), test::bf16_data(d_y));
    return test::to_host_bf16(d_y.data(), y_shape);
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
        if (relu) {
            gpu::relu_max_pool2d(test::bf16_data(d_x), test::bf16_data(d_y), nullptr, shape, pool, nullptr);
        } else {
            gpu::max_pool2d(test::bf16_data(d_x), test::bf16_data(d_y), nullptr, shape, pool, nullptr);
        }
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

TEST_CASE("bf16 average pooling matches the reference within one bf16 ulp", "[parity][bf16][pool]") {
    struct AvgCase {
        std::string name;
        Shape shape;
        cpu::AvgPool2dOptions options;
    };
    // The float test's divisor rules: count_include_pad or not, ceil-mode clipping, divisor_override, unequal
    // axes; odd sizes throughout.
    const std::vector<AvgCase> cases = {
        {"cifar_k2", {2, 8, 16, 16}, test::avg_options(2)},
        {"k3s2p1_count_pad", {5, 3, 7, 5}, test::avg_options(3, 2, 1)},
        {"k3s2p1_no_count_pad_ceil", {1, 3, 7, 5}, test::avg_options(3, 2, 1, true, false)},
        {"k3s1p1_divisor_override_5", {2, 3, 7, 5}, test::avg_options(3, 1, 1, false, true, 5)},
        {"k23_s12_p11_no_count_pad",
         {5, 3, 7, 5},
         test::avg_options({2, 3}, cpu::Pair2d{1, 2}, {1, 1}, false, false)},
    };
    uint32_t seed = 4500;
    for (const AvgCase& c : cases) {
        CAPTURE(c.name);
        // ±0, ±NaN and ±inf at every 23rd element: NaN and inf must propagate as in the reference.
        const HostTensor<float> x = test::round_to_bf16(test::with_specials(c.shape, seed, 23));
        const Shape out = cpu::avg_pool2d_output_shape(c.shape, c.options);
        const HostTensor<float> y = on_device_bf16(x, out, [&](const gpu::bf16* d_x, gpu::bf16* d_y) {
            gpu::avg_pool2d(d_x, d_y, c.shape, c.options, nullptr);
        });
        check_within_one_bf16_ulp(y, test::round_to_bf16(cpu::avg_pool2d(x, c.options)),
                                  kBf16AvgPoolFloatError, "y");
        const HostTensor<float> dy = test::round_to_bf16(test::with_specials(out, seed + 1, 23));
        const HostTensor<float> dx = on_device_bf16(dy, c.shape, [&](const gpu::bf16* d_dy, gpu::bf16* d_dx) {
            gpu::avg_pool2d_backward(d_dy, d_dx, c.shape, c.options, nullptr);
        });
        check_within_one_bf16_ulp(dx,
                                  test::round_to_bf16(cpu::avg_pool2d_backward(c.shape, dy, c.options).dx),
                                  kBf16AvgPoolFloatError, "dx");
        seed += 2;
    }
}

TEST_CASE("bf16 adaptive and global average pooling match the reference within one bf16 ulp",
          "[parity][bf16][pool]") {
    struct AdaptiveCase {
        Shape shape;
        cpu::Pair2d output_size;
    };
    // Overlapping windows (5 → 3), exact division (4 → 2), more outputs than inputs (3 → 4).
    for (const AdaptiveCase& c : {AdaptiveCase{{2, 3, 5, 7}, {3, 4}}, AdaptiveCase{{1, 3, 4, 4}, {2, 2}},
                                  AdaptiveCase{{5, 3, 3, 7}, {4, 3}}}) {
        INFO("adaptive " << c.shape.to_string() << " to " << c.output_size.h << "x" << c.output_size.w);
        const HostTensor<float> x = test::round_to_bf16(test::with_specials(c.shape, 4700, 23));
        const Shape out{c.shape[0], c.shape[1], c.output_size.h, c.output_size.w};
        const HostTensor<float> y = on_device_bf16(x, out, [&](const gpu::bf16* d_x, gpu::bf16* d_y) {
            gpu::adaptive_avg_pool2d(d_x, d_y, c.shape, c.output_size, nullptr);
        });
        check_within_one_bf16_ulp(y, test::round_to_bf16(cpu::adaptive_avg_pool2d(x, c.output_size)),
                                  kBf16AvgPoolFloatError, "y");
        const HostTensor<float> dy = test::round_to_bf16(test::with_specials(out, 4701, 23));
        const HostTensor<float> dx = on_device_bf16(dy, c.shape, [&](const gpu::bf16* d_dy, gpu::bf16* d_dx) {
            gpu::adaptive_avg_pool2d_backward(d_dy, d_dx, c.shape, c.output_size, nullptr);
        });
        check_within_one_bf16_ulp(dx, test::round_to_bf16(cpu::adaptive_avg_pool2d_backward(c.shape, dy).dx),
                                  kBf16AvgPoolFloatError, "dx");
    }
    // Planes of 256 (8 per lane), 35 (not a multiple of the warp) and 1 cell. Random inputs without specials:
    // a special would make its whole plane's mean non-finite.
    for (const Shape& shape : {Shape{2, 8, 16, 16}, Shape{5, 3, 7, 5}, Shape{1, 3, 1, 1}}) {
        INFO("global " << shape.to_string());
        const HostTensor<float> x = test::round_to_bf16(test::random_tensor<float>(shape, 4800));
        const Shape out{shape[0], shape[1], 1, 1};
        const HostTensor<float> y = on_device_bf16(x, out, [&](const gpu::bf16* d_x, gpu::bf16* d_y) {
            gpu::global_avg_pool2d(d_x, d_y, shape, nullptr);
        });
        check_within_one_bf16_ulp(y, test::round_to_bf16(cpu::global_avg_pool2d(x)), kBf16AvgPoolFloatError,
                                  "y");
        // dy / (H·W): one correctly rounded float division on both sides, then one rounding: bit-identical.
        const HostTensor<float> dy = test::round_to_bf16(test::random_tensor<float>(out, 4801));
        const HostTensor<float> dx = on_device_bf16(dy, shape, [&](const gpu::bf16* d_dy, gpu::bf16* d_dx) {
            gpu::global_avg_pool2d_backward(d_dy, d_dx, shape, nullptr);
        });
        check_same_bf16(dx, test::round_to_bf16(cpu::global_avg_pool2d_backward(shape, dy).dx), "dx");
    }
}

TEST_CASE("bf16 average pooling checks its arguments as the float launchers do", "[parity][bf16][pool]") {
    const Shape shape{1, 2, 4, 4};
    const DeviceBuffer buffer = test::poisoned_bf16(shape.numel());
    gpu::bf16* b = test::bf16_data(buffer);
    CHECK_THAT(test::error_message([&] {
                   gpu::avg_pool2d(b, b, shape, test::avg_options(2, std::nullopt, 0, false, true, 0),
                                   nullptr);
               }),
               Contains("avg_pool2d: divisor_override must not be 0"));
    CHECK_THAT(test::error_message([&] {
                   gpu::adaptive_avg_pool2d(b, b, shape, {0, 2}, nullptr);
               }),
               Contains("adaptive_avg_pool2d: output_size (0, 2) must be positive"));
    CHECK_THAT(test::error_message([&] { gpu::global_avg_pool2d_backward(b, nullptr, shape, nullptr); }),
               Contains("global_avg_pool2d_backward: dy and dx must be device pointers"));
}
