// Dropout2d on NHWC (channels_last) tensors (cuda/dropout.hpp's MemoryFormat parameter) against the same
// launchers on NCHW tensors, which the dropout parity tests hold to the CPU reference: the keep decisions
// depend only on the channel unit n · C + c, so the (N, C) mask must be the NCHW one and y and dx the NCHW
// ones permuted (test::to_nhwc), bit for bit, float and bf16; outputs NaN-poisoned.
#include <catch2/catch.hpp>

#include <cstdint>
#include <vector>

#include "cuda/dropout.hpp"
#include "support/errors.hpp"
#include "support/max_pool_cases.hpp"
#include "support/nhwc_device.hpp"

using namespace cudacnn;
using Catch::Matchers::Contains;

namespace {

struct Pass {
    HostTensor<float> y, dx;  // in the memory order of the pass's format
    std::vector<uint8_t> mask;
};

template <class T>
Pass run(const HostTensor<float>& x, const HostTensor<float>& dy, const cpu::DropoutOptions& options,
         MemoryFormat format) {
    using D = test::DeviceOf<T>;
    const Shape& shape = x.shape();
    const DeviceBuffer d_x = D::upload(test::in_format(x, format)),
                       d_dy = D::upload(test::in_format(dy, format));
    const DeviceBuffer d_y = D::poison(shape.numel()), d_dx = D::poison(shape.numel());
    const DeviceBuffer d_mask = test::poisoned<uint8_t>(shape[0] * shape[1]);
    uint8_t* mask = d_mask.data_as<uint8_t>();
    gpu::dropout2d_forward(D::data(d_x), D::data(d_y), mask, shape, options, nullptr, {}, format);
    gpu::dropout2d_backward(D::data(d_dy), mask, D::data(d_dx), shape, options, nullptr, format);
    return {D::download(d_y, shape), D::download(d_dx, shape),
            test::to_host<uint8_t>(d_mask, Shape{shape[0] * shape[1]}).values()};
}

template <class T>
void check_cases() {
    using D = test::DeviceOf<T>;
    // Odd channel counts (groups of four straddle pixels and samples), 1 × 1 planes, one sample.
    const std::vector<Shape> shapes = {{3, 5, 7, 9}, {2, 6, 1, 1}, {1, 3, 4, 4}, {4, 7, 3, 5}};
    const std::vector<cpu::DropoutOptions> options = {
        cpu::DropoutOptions{0.3, true, 1234, 5}, cpu::DropoutOptions{0.5, true, 99, 0},
        cpu::DropoutOptions{0.0, true, 77, 3},   // every channel kept
        cpu::DropoutOptions{1.0, true, 77, 3},   // every channel dropped: y = x · 0
        cpu::DropoutOptions{0.3, false, 77, 3},  // eval mode
    };
    uint32_t seed = 3100;
    for (const Shape& s : shapes) {
        for (const cpu::DropoutOptions& o : options) {
            CAPTURE(s.to_string(), o.p, o.training);
            const HostTensor<float> x = D::values(test::with_specials(s, seed, 7));
            const HostTensor<float> dy = D::values(test::with_specials(s, seed + 1, 5));
            seed += 2;
            const Pass nchw = run<T>(x, dy, o, MemoryFormat::nchw);
            const Pass nhwc = run<T>(x, dy, o, MemoryFormat::nhwc);
            CHECK(nhwc.mask == nchw.mask);
            CHECK(test::bitwise_equal(nhwc.y, test::to_nhwc(nchw.y)));
            CHECK(test::bitwise_equal(nhwc.dx, test::to_nhwc(nchw.dx)));
        }
    }
}

}  // namespace

TEST_CASE("NHWC dropout2d is the NCHW result permuted with the same mask, float", "[parity][dropout][nhwc]") {
    check_cases<float>();
}

TEST_CASE("NHWC dropout2d is the NCHW result permuted with the same mask, bf16",
          "[parity][dropout][nhwc][bf16]") {
    check_cases<gpu::bf16>();
}

TEST_CASE("dropout2d rejects an unknown memory format", "[parity][dropout][nhwc]") {
    const Shape shape{1, 2, 3, 3};
    const DeviceBuffer d = test::poisoned<float>(shape.numel());
    const DeviceBuffer m = test::poisoned<uint8_t>(2);
    float* p = d.data_as<float>();
    const auto bad = static_cast<MemoryFormat>(7);
    const cpu::DropoutOptions o{0.3, true, 1, 0};
    CHECK_THAT(test::error_message(
                   [&] { gpu::dropout2d_forward(p, p, m.data_as<uint8_t>(), shape, o, nullptr, {}, bad); }),
               Contains("dropout2d") && Contains("memory format 7"));
    CHECK_THAT(test::error_message(
                   [&] { gpu::dropout2d_backward(p, m.data_as<uint8_t>(), p, shape, o, nullptr, bad); }),
               Contains("dropout2d_backward") && Contains("memory format 7"));
}
