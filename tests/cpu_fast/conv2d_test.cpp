// The fast CPU conv2d (src/cpu_fast/conv2d) against cpu::conv2d / cpu::conv2d_backward: forward and every
// gradient for every option of the reference, and the same bits whatever the thread count.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cstring>
#include <limits>
#include <string>
#include <vector>

#include "cudacnn/ops/conv2d.hpp"
#include "src/cpu_fast/conv2d.hpp"
#include "support/compare.hpp"
#include "support/conv2d_options.hpp"
#include "support/random.hpp"
#include "support/tolerance.hpp"

using namespace cudacnn;
using cpu::Conv2dOptions;
using cpu::Conv2dPadding;
using M = cpu::Conv2dPaddingMode;

namespace {

// Float sums (OpenBLAS's, in its own blocking order) against the reference's double sums rounded once:
// float_sum_tolerance with a margin of 4, as the GPU im2col path (the partial sums of these random inputs
// stay within a few times max |result|).
double tolerance(int64_t terms) {
    return test::float_sum_tolerance(terms, 4.0);
}

struct ConvCase {
    std::string name;
    Shape x, w;  // (N, C, H, W), (OC, C / G, KH, KW)
    Conv2dOptions options;
    bool bias = true;
};

// Outputs start as NaN, so that an element the op forgot to write fails the comparison.
std::vector<float> poisoned(int64_t count) {
    return std::vector<float>(static_cast<size_t>(count), std::numeric_limits<float>::quiet_NaN());
}

struct FastResult {
    std::vector<float> y, dx, dw, db;
};

FastResult run_fast(const ConvCase& c, const HostTensor<float>& x, const HostTensor<float>& w,
                    const HostTensor<float>& bias, const HostTensor<float>& dy, int threads) {
    const cpu::Conv2dGeometry g = cpu::conv2d_geometry(c.x, c.w, c.options);
    const cpu_fast::Workers workers(threads);
    const cpu_fast::Conv2d conv(g, workers);
    std::vector<float> workspace = poisoned(static_cast<int64_t>(conv.workspace_bytes() / sizeof(float)) + 1);
    FastResult r{poisoned(g.output_shape().numel()), poisoned(x.numel()), poisoned(w.numel()),
                 poisoned(g.out_channels)};
    conv.forward(x.data(), w.data(), c.bias ? bias.data() : nullptr, r.y.data(), workspace.data());
    std::fill(workspace.begin(), workspace.end(), std::numeric_limits<float>::quiet_NaN());
    conv.backward(x.data(), w.data(), dy.data(), r.dx.data(), r.dw.data(), c.bias ? r.db.data() : nullptr,
                  workspace.data());
    return r;
}

void check_case(const ConvCase& c, uint32_t seed) {
    INFO("case " << c.name);
    const HostTensor<float> x = test::random_tensor<float>(c.x, seed);
    const HostTensor<float> w = test::random_tensor<float>(c.w, seed + 1);
    const HostTensor<float> bias = test::random_tensor<float>(Shape{c.w[0]}, seed + 2);
    const cpu::Conv2dGeometry g = cpu::conv2d_geometry(c.x, c.w, c.options);
    const HostTensor<float> dy = test::random_tensor<float>(g.output_shape(), seed + 3);
    const HostTensor<float> y_ref = cpu::conv2d<float>(x, w, c.bias ? &bias : nullptr, c.options);
    const cpu::Conv2dGrads<float> ref = cpu::conv2d_backward<float>(x, w, dy, c.bias, c.options);

    const FastResult fast = run_fast(c, x, w, bias, dy, 2);
    // Reduction lengths: y sums C/G·KH·KW taps (+ bias); dx sums OC/G·KH·KW taps per padded copy of the
    // element; dw and db sum N·OH·OW terms.
    const int64_t taps = g.kernel_h * g.kernel_w;
    const int64_t copies = (1 + std::max(g.pad_top, g.pad_bottom)) * (1 + std::max(g.pad_left, g.pad_right));
    CHECK(test::max_relative_error(HostTensor<float>(g.output_shape(), fast.y), y_ref) <=
          tolerance(g.in_channels_per_group() * taps + 1));
    CHECK(test::max_relative_error(HostTensor<float>(x.shape(), fast.dx), ref.dx) <=
          tolerance(g.out_channels_per_group() * taps * copies));
    CHECK(test::max_relative_error(HostTensor<float>(w.shape(), fast.dw), ref.dweight) <=
          tolerance(g.batch * g.out_h * g.out_w));
    if (c.bias) {
        CHECK(test::max_relative_error(HostTensor<float>(Shape{g.out_channels}, fast.db), ref.dbias) <=
              tolerance(g.batch * g.out_h * g.out_w));
    }
    // Work items are chunks of images, never "a thread's share": one, two or three threads, the same bits.
    for (int threads : {1, 3}) {
        const FastResult other = run_fast(c, x, w, bias, dy, threads);
        INFO(threads << " threads");
        CHECK(other.y == fast.y);
        CHECK(other.dx == fast.dx);
        CHECK(other.dw == fast.dw);
        if (c.bias) CHECK(other.db == fast.db);
    }
}

}  // namespace

TEST_CASE("fast conv2d matches the reference on CifarCNN-like layers, several chunks of images",
          "[cpu_fast][conv2d]") {
    const Conv2dOptions pad1 = test::conv2d_options(1, 1, 1, 1, M::zeros);
    // 16×16 planes: 1 image per GEMM, 5 chunks; 8×8: 4 images per GEMM, 9 images = 3 chunks (the last one short).
    check_case({"conv 3→32, 3×3 pad 1, 16×16, batch 5", Shape{5, 3, 16, 16}, Shape{32, 3, 3, 3}, pad1}, 10);
    check_case({"conv 20→24, 3×3 pad 1, 8×8, batch 9", Shape{9, 20, 8, 8}, Shape{24, 20, 3, 3}, pad1}, 20);
    // 19 one-image chunks: the weight gradient's 8 work items take 3 chunks each, the last one only 1.
    check_case({"conv 4→6, 3×3 pad 1, 16×16, batch 19", Shape{19, 4, 16, 16}, Shape{6, 4, 3, 3}, pad1}, 22);
    check_case({"conv 7→5, 3×3 pad 1, 33×31, batch 2, no bias", Shape{2, 7, 33, 31}, Shape{5, 7, 3, 3}, pad1,
                false},
               25);
}

TEST_CASE("fast conv2d matches the reference for strides, kernels, dilation, 'same' and 'valid'",
          "[cpu_fast][conv2d]") {
    check_case({"stride 2, 2×3 kernel, pad (1, 2), batch 5", Shape{5, 3, 7, 5}, Shape{4, 3, 2, 3},
                test::conv2d_options({2, 2}, {1, 2}, 1, 1, M::zeros)},
               30);
    check_case({"dilation 2, stride (1, 2), pad 2, no bias, batch 1", Shape{1, 3, 7, 5}, Shape{5, 3, 3, 3},
                test::conv2d_options({1, 2}, 2, 2, 1, M::zeros), false},
               40);
    check_case({"dilation (2, 3), stride 1, pad 3", Shape{3, 2, 9, 11}, Shape{4, 2, 3, 3},
                test::conv2d_options(1, 3, {2, 3}, 1, M::zeros)},
               45);
    check_case({"'same', 4×2 kernel", Shape{2, 3, 7, 5}, Shape{4, 3, 4, 2},
                test::conv2d_options(1, Conv2dPadding::same(), 1, 1, M::zeros)},
               50);
    check_case({"'valid', 3×3 kernel, no bias", Shape{2, 3, 7, 5}, Shape{6, 3, 3, 3},
                test::conv2d_options(1, Conv2dPadding::valid(), 1, 1, M::zeros), false},
               60);
    check_case({"1×1 kernel, stride 2", Shape{4, 6, 9, 9}, Shape{5, 6, 1, 1},
                test::conv2d_options(2, 0, 1, 1, M::zeros)},
               65);
}

TEST_CASE("fast conv2d matches the reference for groups and every padding mode", "[cpu_fast][conv2d]") {
    check_case({"groups 3, 6→9, batch 1", Shape{1, 6, 7, 5}, Shape{9, 2, 3, 3},
                test::conv2d_options(1, 1, 1, 3, M::zeros)},
               70);
    check_case({"depthwise ×2, 3→6, stride 2, batch 5", Shape{5, 3, 7, 5}, Shape{6, 1, 3, 3},
                test::conv2d_options(2, 1, 1, 3, M::zeros), false},
               80);
    check_case({"reflect, 'same' with a 4×4 kernel", Shape{2, 3, 7, 5}, Shape{4, 3, 4, 4},
                test::conv2d_options(1, Conv2dPadding::same(), 1, 1, M::reflect)},
               90);
    check_case({"reflect, pad (2, 4), dilation 2, groups 3", Shape{1, 3, 7, 5}, Shape{3, 1, 2, 3},
                test::conv2d_options(1, {2, 4}, 2, 3, M::reflect), false},
               100);
    check_case({"replicate, pad 2, stride 2", Shape{3, 2, 6, 7}, Shape{3, 2, 3, 3},
                test::conv2d_options(2, 2, 1, 1, M::replicate)},
               110);
    check_case({"circular, pad (1, 3)", Shape{2, 2, 5, 6}, Shape{3, 2, 3, 3},
                test::conv2d_options(1, {1, 3}, 1, 1, M::circular)},
               120);
}
