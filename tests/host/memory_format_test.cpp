// element_offset: where (n, c, h, w) lies in NCHW and in NHWC (channels_last), as PyTorch lays them out; the
// tests' to_nhwc / from_nhwc.
#include <catch2/catch.hpp>

#include <set>
#include <string>

#include "cudacnn/memory_format.hpp"
#include "support/nhwc.hpp"

using namespace cudacnn;

TEST_CASE("element offsets of NCHW and NHWC tensors", "[memory_format]") {
    const int64_t N = 2, C = 3, H = 4, W = 5;
    // PyTorch's strides: contiguous (C·H·W, H·W, W, 1), channels_last (H·W·C, 1, W·C, C).
    CHECK(element_offset(MemoryFormat::nchw, 1, 2, 3, 4, C, H, W) == 1 * 60 + 2 * 20 + 3 * 5 + 4);
    CHECK(element_offset(MemoryFormat::nhwc, 1, 2, 3, 4, C, H, W) == 1 * 60 + 2 * 1 + 3 * 15 + 4 * 3);
    for (const MemoryFormat format : {MemoryFormat::nchw, MemoryFormat::nhwc}) {
        std::set<int64_t> offsets;  // a bijection onto [0, N·C·H·W)
        for (int64_t n = 0; n < N; ++n)
            for (int64_t c = 0; c < C; ++c)
                for (int64_t h = 0; h < H; ++h)
                    for (int64_t w = 0; w < W; ++w)
                        offsets.insert(element_offset(format, n, c, h, w, C, H, W));
        CHECK(offsets.size() == static_cast<size_t>(N * C * H * W));
        CHECK(*offsets.begin() == 0);
        CHECK(*offsets.rbegin() == N * C * H * W - 1);
    }
    CHECK(std::string(memory_format_name(MemoryFormat::nhwc)) == "nhwc");
    CHECK(std::string(memory_format_name(MemoryFormat::nchw)) == "nchw");
}

TEST_CASE("to_nhwc and from_nhwc permute and invert", "[memory_format]") {
    HostTensor<float> x(Shape{2, 3, 2, 2});
    for (int64_t i = 0; i < x.numel(); ++i) x[i] = static_cast<float>(i);
    const HostTensor<float> nhwc = test::to_nhwc(x);
    CHECK(nhwc.shape() == x.shape());
    CHECK(nhwc[1] == x[4]);  // (0, 1, 0, 0): next to (0, 0, 0, 0) in NHWC, a plane (H·W = 4) away in NCHW
    CHECK(nhwc[3] == x[1]);  // (0, 0, 0, 1)
    CHECK(test::from_nhwc(nhwc).values() == x.values());
}
