// Pooling on NHWC (channels_last) tensors (cuda/pool.hpp's MemoryFormat parameter) against the same launchers
// on NCHW tensors, which the other pool parity tests hold to the CPU reference: each NHWC thread computes its
// element in the NCHW order, so the NHWC outputs must be the NCHW outputs permuted (test::to_nhwc), bit for
// bit, for float and bf16, and the saved argmaxes the same plane indices or taps (PyTorch's channels_last
// max_pool2d returns the indices of its contiguous one). Max pooling plain, with the fused ReLU and with a
// folded dropout2d; average and adaptive average pooling; forward and backward; outputs NaN-poisoned.
#include <catch2/catch.hpp>

#include <cstdint>
#include <vector>

#include "cuda/dropout.hpp"
#include "cuda/pool.hpp"
#include "support/errors.hpp"
#include "support/max_pool_cases.hpp"
#include "support/nhwc_device.hpp"
#include "support/pool_options.hpp"

using namespace cudacnn;
using Catch::Matchers::Contains;

namespace {

// What a max pooling forward and backward write, in the memory order of their format.
struct MaxPass {
    HostTensor<float> y, dx;
    std::vector<int64_t> indices;  // int64 plane indices, or taps widened
    std::vector<uint8_t> mask;     // a folded dropout's (empty without one)
};

enum class Variant { plain, relu, dropout2d, relu_dropout2d, dropout, relu_dropout };

// One forward and backward of `variant` on x and dy (NCHW values; laid out in `format` here), T's launchers.
template <class T>
MaxPass run_max(const HostTensor<float>& x, const HostTensor<float>& dy, const cpu::MaxPool2dOptions& pool,
                Variant variant, bool taps, MemoryFormat format) {
    using D = test::DeviceOf<T>;
    const Shape& shape = x.shape();
    const Shape out = cpu::max_pool2d_output_shape(shape, pool);
    const bool relu =
        variant == Variant::relu || variant == Variant::relu_dropout2d || variant == Variant::relu_dropout;
    const bool folded = variant != Variant::plain && variant != Variant::relu;
    const bool channelwise = variant == Variant::dropout2d || variant == Variant::relu_dropout2d;
    const gpu::PooledDropout dropout{cpu::DropoutOptions{0.3, true, 4321, 7}, channelwise, {}};
    const int64_t mask_count = channelwise ? out[0] * out[1] : out.numel();
    const DeviceBuffer d_x = D::upload(test::in_format(x, format)),
                       d_dy = D::upload(test::in_format(dy, format));
    const DeviceBuffer d_y = D::poison(out.numel()), d_dx = D::poison(shape.numel());
    const DeviceBuffer d_indices =
        taps ? test::poisoned<uint8_t>(out.numel()) : test::poisoned<int64_t>(out.numel());
    const DeviceBuffer d_mask = test::poisoned<uint8_t>(mask_count);
    const gpu::MaxPoolIndices saved = taps ? gpu::MaxPoolIndices::window_taps(d_indices.data_as<uint8_t>())
                                           : gpu::MaxPoolIndices(d_indices.data_as<int64_t>());
    const gpu::ConstMaxPoolIndices read =
        taps ? gpu::ConstMaxPoolIndices::window_taps(d_indices.data_as<uint8_t>())
             : gpu::ConstMaxPoolIndices(d_indices.data_as<int64_t>());
    T *y = D::data(d_y), *dx = D::data(d_dx);
    const T *xp = D::data(d_x), *dyp = D::data(d_dy);
    uint8_t* mask = d_mask.data_as<uint8_t>();
    if (folded) {
        gpu::max_pool2d_dropout(xp, y, saved, mask, shape, pool, dropout, relu, nullptr, format);
        gpu::max_pool2d_dropout_backward(read, mask, dyp, dx, shape, pool, dropout, nullptr, format);
    } else if (relu) {
        gpu::relu_max_pool2d(xp, y, saved, shape, pool, nullptr, format);
        gpu::relu_max_pool2d_backward(read, y, dyp, dx, shape, pool, nullptr, format);
    } else {
        gpu::max_pool2d(xp, y, saved, shape, pool, nullptr, format);
        gpu::max_pool2d_backward(read, dyp, dx, shape, pool, nullptr, format);
    }
    MaxPass pass{D::download(d_y, out), D::download(d_dx, shape), {}, {}};
    if (taps) {
        const HostTensor<uint8_t> saved_taps = test::to_host<uint8_t>(d_indices, out);
        for (uint8_t t : saved_taps.values()) pass.indices.push_back(t);
    } else {
        pass.indices = test::to_host<int64_t>(d_indices, out).values();
    }
    if (folded) pass.mask = test::to_host<uint8_t>(d_mask, Shape{mask_count}).values();
    return pass;
}

// The NHWC pass against the NCHW one permuted: y, dx, indices (and a dropout2d mask, which is (N, C) in
// both).
template <class T>
void check_max_case(const test::MaxPoolCase& c, Variant variant, bool taps, uint32_t seed) {
    using D = test::DeviceOf<T>;
    const HostTensor<float> x = D::values(test::with_specials(c.shape, seed, 11, seed % 2 == 0));
    const Shape out = cpu::max_pool2d_output_shape(c.shape, c.pool);
    const HostTensor<float> dy = D::values(test::with_specials(out, seed + 1, 5));
    const MaxPass nchw = run_max<T>(x, dy, c.pool, variant, taps, MemoryFormat::nchw);
    const MaxPass nhwc = run_max<T>(x, dy, c.pool, variant, taps, MemoryFormat::nhwc);
    CHECK(test::bitwise_equal(nhwc.y, test::to_nhwc(nchw.y)));
    CHECK(test::bitwise_equal(nhwc.dx, test::to_nhwc(nchw.dx)));
    CHECK(nhwc.indices == test::to_nhwc_values(nchw.indices, out));
    CHECK(nhwc.mask == nchw.mask);
}

template <class T>
void check_max_cases() {
    uint32_t seed = 2300;
    for (const test::MaxPoolCase& c : test::max_pool_kernel_cases()) {
        for (Variant v : {Variant::plain, Variant::relu, Variant::dropout2d, Variant::relu_dropout2d}) {
            for (bool taps : {false, true}) {
                CAPTURE(c.name, static_cast<int>(v), taps);
                check_max_case<T>(c, v, taps, seed);
                seed += 2;
            }
        }
    }
}

// A folded dropout over single elements draws unit i for the pooled element at memory offset i
// (dropout_forward over the pooled buffer), so its NHWC mask is not the NCHW one permuted: the NHWC pass must
// instead be max pooling then dropout_forward on the NHWC pooled buffer, bit for bit.
template <class T>
void check_elementwise_dropout(const test::MaxPoolCase& c, bool relu, uint32_t seed) {
    using D = test::DeviceOf<T>;
    const HostTensor<float> x = D::values(test::with_specials(c.shape, seed, 11));
    const Shape out = cpu::max_pool2d_output_shape(c.shape, c.pool);
    const HostTensor<float> dy = D::values(test::with_specials(out, seed + 1, 5));
    const MaxPass plain =
        run_max<T>(x, dy, c.pool, relu ? Variant::relu : Variant::plain, false, MemoryFormat::nhwc);
    const MaxPass folded =
        run_max<T>(x, dy, c.pool, relu ? Variant::relu_dropout : Variant::dropout, false, MemoryFormat::nhwc);
    // The separate kernels: dropout_forward over the NHWC pooled buffer (plain.y, already in memory order).
    const cpu::DropoutOptions o{0.3, true, 4321, 7};
    const DeviceBuffer d_pooled = D::upload(plain.y), d_y = D::poison(out.numel());
    const DeviceBuffer d_mask = test::poisoned<uint8_t>(out.numel());
    gpu::dropout_forward(D::data(d_pooled), D::data(d_y), d_mask.data_as<uint8_t>(), out.numel(), o, nullptr);
    CHECK(folded.mask == test::to_host<uint8_t>(d_mask, out).values());
    CHECK(test::bitwise_equal(folded.y, D::download(d_y, out)));
}

}  // namespace

TEST_CASE("NHWC max pooling (plain, ReLU, dropout2d folded) is the NCHW result permuted, float",
          "[parity][pool][nhwc]") {
    check_max_cases<float>();
}

TEST_CASE("NHWC max pooling (plain, ReLU, dropout2d folded) is the NCHW result permuted, bf16",
          "[parity][pool][nhwc][bf16]") {
    check_max_cases<gpu::bf16>();
}

TEST_CASE("NHWC max pooling with a folded element-wise dropout draws its units in memory order",
          "[parity][pool][dropout][nhwc]") {
    uint32_t seed = 2500;
    for (const test::MaxPoolCase& c : test::max_pool_kernel_cases()) {
        for (bool relu : {false, true}) {
            CAPTURE(c.name, relu);
            check_elementwise_dropout<float>(c, relu, seed);
            check_elementwise_dropout<gpu::bf16>(c, relu, seed + 1);
            seed += 4;
        }
    }
}

namespace {

// avg_pool2d or adaptive_avg_pool2d (adaptive when avg is null) forward and backward in `format`.
template <class T>
std::pair<HostTensor<float>, HostTensor<float>> run_avg(const HostTensor<float>& x,
                                                        const HostTensor<float>& dy,
                                                        const cpu::AvgPool2dOptions* avg,
                                                        cpu::Pair2d adaptive, MemoryFormat format) {
    using D = test::DeviceOf<T>;
    const Shape& shape = x.shape();
    const Shape& out = dy.shape();
    const DeviceBuffer d_x = D::upload(test::in_format(x, format)),
                       d_dy = D::upload(test::in_format(dy, format));
    const DeviceBuffer d_y = D::poison(out.numel()), d_dx = D::poison(shape.numel());
    if (avg != nullptr) {
        gpu::avg_pool2d(D::data(d_x), D::data(d_y), shape, *avg, nullptr, format);
        gpu::avg_pool2d_backward(D::data(d_dy), D::data(d_dx), shape, *avg, nullptr, format);
    } else {
        gpu::adaptive_avg_pool2d(D::data(d_x), D::data(d_y), shape, adaptive, nullptr, format);
        gpu::adaptive_avg_pool2d_backward(D::data(d_dy), D::data(d_dx), shape, adaptive, nullptr, format);
    }
    return {D::download(d_y, out), D::download(d_dx, shape)};
}

template <class T>
void check_avg(const Shape& shape, const cpu::AvgPool2dOptions* avg, cpu::Pair2d adaptive, uint32_t seed) {
    using D = test::DeviceOf<T>;
    const Shape out = avg != nullptr ? cpu::avg_pool2d_output_shape(shape, *avg)
                                     : Shape{shape[0], shape[1], adaptive.h, adaptive.w};
    const HostTensor<float> x = D::values(test::with_specials(shape, seed, 13));
    const HostTensor<float> dy = D::values(test::random_tensor<float>(out, seed + 1));
    const auto nchw = run_avg<T>(x, dy, avg, adaptive, MemoryFormat::nchw);
    const auto nhwc = run_avg<T>(x, dy, avg, adaptive, MemoryFormat::nhwc);
    CHECK(test::bitwise_equal(nhwc.first, test::to_nhwc(nchw.first)));
    CHECK(test::bitwise_equal(nhwc.second, test::to_nhwc(nchw.second)));
}

template <class T>
void check_avg_cases() {
    const std::vector<cpu::AvgPool2dOptions> options = {
        test::avg_options(2),
        test::avg_options(3, 1, 1),
        test::avg_options(3, 2, 1, true, false),
        test::avg_options(3, 2, 1, false, true, 5),
    };
    const std::vector<Shape> shapes = {{2, 8, 16, 16}, {3, 5, 9, 7}, {1, 7, 7, 5}};
    uint32_t seed = 2700;
    for (const Shape& s : shapes) {
        for (std::size_t k = 0; k < options.size(); ++k) {
            CAPTURE(s.to_string(), k);
            check_avg<T>(s, &options[k], 0, seed += 2);
        }
        for (cpu::Pair2d a : {cpu::Pair2d{3, 2}, cpu::Pair2d{4, 4}, cpu::Pair2d{1, 1}}) {
            CAPTURE(s.to_string(), a.h, a.w);
            check_avg<T>(s, nullptr, a, seed += 2);
        }
    }
}

}  // namespace

TEST_CASE("NHWC average and adaptive average pooling are the NCHW results permuted, float and bf16",
          "[parity][pool][nhwc][bf16]") {
    check_avg_cases<float>();
    check_avg_cases<gpu::bf16>();
}

TEST_CASE("pooling rejects an unknown memory format", "[parity][pool][nhwc]") {
    const Shape shape{1, 2, 4, 4};
    const DeviceBuffer d = test::poisoned<float>(shape.numel());
    float* p = d.data_as<float>();
    const auto bad = static_cast<MemoryFormat>(7);
    CHECK_THAT(test::error_message(
                   [&] { gpu::max_pool2d(p, p, nullptr, shape, test::max_options(2), nullptr, bad); }),
               Contains("max_pool2d") && Contains("memory format 7"));
    CHECK_THAT(test::error_message([&] { gpu::avg_pool2d(p, p, shape, test::avg_options(2), nullptr, bad); }),
               Contains("avg_pool2d") && Contains("memory format 7"));
    CHECK_THAT(test::error_message([&] {
                   gpu::adaptive_avg_pool2d(p, p, shape, {2, 2}, nullptr, bad);
               }),
               Contains("adaptive_avg_pool2d") && Contains("memory format 7"));
}
