// The memory-format conversions (cuda/layout.hpp) against the host permutation (test::to_nhwc / from_nhwc):
// bit for bit, NCHW → NHWC and back, float → float, float → bf16 (the cast's rounding) and bf16 → bf16, on
// shapes smaller than, equal to and larger than the 32 × 32 tile, with one-sized dimensions; the copy when
// the formats agree; bad arguments.
#include <catch2/catch.hpp>

#include "cuda/layout.hpp"
#include "support/bf16.hpp"
#include "support/errors.hpp"
#include "support/nhwc.hpp"
#include "support/parity.hpp"
#include "support/random.hpp"

using namespace cudacnn;
using Catch::Matchers::Contains;

namespace {

// (N, C, H, W): C and H·W below, at and above the tile's 32, a single pixel, a single channel, and more
// samples than one tile row of blocks (the batch loop).
const Shape kShapes[] = {{1, 1, 1, 1},  {2, 3, 5, 7},  {3, 32, 4, 8},  {2, 33, 6, 6},
                         {1, 64, 1, 1}, {4, 1, 17, 3}, {5, 70, 3, 11}, {130, 3, 2, 2}};

HostTensor<float> expected_in(const HostTensor<float>& nchw, MemoryFormat format) {
    return format == MemoryFormat::nhwc ? test::to_nhwc(nchw) : nchw;
}

}  // namespace

TEST_CASE("convert_layout moves every element to its offset in the other format, bit for bit",
          "[parity][layout][nhwc]") {
    for (const Shape& shape : kShapes) {
        CAPTURE(shape.to_string());
        const HostTensor<float> nchw = test::random_tensor<float>(shape, 71);
        const HostTensor<float> nhwc = test::to_nhwc(nchw);
        const DeviceBuffer d_nchw = test::to_device(nchw), d_nhwc = test::to_device(nhwc);
        const DeviceBuffer out = test::poisoned<float>(shape.numel());

        gpu::convert_layout(d_nchw.data_as<float>(), out.data_as<float>(), shape, MemoryFormat::nchw,
                            MemoryFormat::nhwc, nullptr);
        CHECK(test::bitwise_equal(test::to_host<float>(out, shape), nhwc));

        gpu::convert_layout(d_nhwc.data_as<float>(), out.data_as<float>(), shape, MemoryFormat::nhwc,
                            MemoryFormat::nchw, nullptr);
        CHECK(test::bitwise_equal(test::to_host<float>(out, shape), nchw));

        for (MemoryFormat same : {MemoryFormat::nchw, MemoryFormat::nhwc}) {
            gpu::convert_layout(d_nchw.data_as<float>(), out.data_as<float>(), shape, same, same, nullptr);
            CHECK(test::bitwise_equal(test::to_host<float>(out, shape), nchw));
        }
    }
}

TEST_CASE("convert_layout with bf16 output rounds each element once, as the cast does",
          "[parity][layout][nhwc][bf16]") {
    for (const Shape& shape : kShapes) {
        CAPTURE(shape.to_string());
        const HostTensor<float> nchw = test::random_tensor<float>(shape, 72, -100.0, 100.0);
        const DeviceBuffer d_nchw = test::to_device(nchw);
        const DeviceBuffer bf16_out = test::poisoned_bf16(shape.numel());
        for (MemoryFormat to : {MemoryFormat::nhwc, MemoryFormat::nchw}) {
            CAPTURE(memory_format_name(to));
            gpu::convert_layout(d_nchw.data_as<float>(), test::bf16_data(bf16_out), shape, MemoryFormat::nchw,
                                to, nullptr);
            CHECK(test::bitwise_equal(test::to_host_bf16(bf16_out.data(), shape),
                                      expected_in(test::round_to_bf16(nchw), to)));
        }
    }
}

TEST_CASE("convert_layout moves bf16 tensors exactly, both ways", "[parity][layout][nhwc][bf16]") {
    for (const Shape& shape : kShapes) {
        CAPTURE(shape.to_string());
        const HostTensor<float> nchw = test::round_to_bf16(test::random_tensor<float>(shape, 73));
        const DeviceBuffer d_nchw = test::to_device_bf16(nchw);
        const DeviceBuffer d_nhwc = test::poisoned_bf16(shape.numel()),
                           back = test::poisoned_bf16(shape.numel());
        gpu::convert_layout(test::bf16_data(d_nchw), test::bf16_data(d_nhwc), shape, MemoryFormat::nchw,
                            MemoryFormat::nhwc, nullptr);
        CHECK(test::bitwise_equal(test::to_host_bf16(d_nhwc.data(), shape), test::to_nhwc(nchw)));
        gpu::convert_layout(test::bf16_data(d_nhwc), test::bf16_data(back), shape, MemoryFormat::nhwc,
                            MemoryFormat::nchw, nullptr);
        CHECK(test::bitwise_equal(test::to_host_bf16(back.data(), shape), nchw));
    }
}

TEST_CASE("convert_layout rejects shapes that are not 4-d or are empty, and null pointers",
          "[parity][layout]") {
    const DeviceBuffer a = test::poisoned<float>(8), b = test::poisoned<float>(8);
    const auto convert = [&](const Shape& shape, const float* x, float* y) {
        return test::error_message(
            [&] { gpu::convert_layout(x, y, shape, MemoryFormat::nchw, MemoryFormat::nhwc, nullptr); });
    };
    CHECK_THAT(convert(Shape{2, 4}, a.data_as<float>(), b.data_as<float>()), Contains("(N, C, H, W)"));
    CHECK_THAT(convert(Shape{0, 2, 2, 2}, a.data_as<float>(), b.data_as<float>()), Contains("at least 1"));
    CHECK_THAT(convert(Shape{1, 2, 2, 2}, nullptr, b.data_as<float>()), Contains("device pointers"));
}
