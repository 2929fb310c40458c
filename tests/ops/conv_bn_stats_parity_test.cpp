// Parity of the conv → batch norm statistics fusion: conv2d_implicit_forward_with_stats
// (cuda/conv2d_implicit.hpp: per-channel (mean, M2, count) partials of each 128-column tile of y) and
// batch_norm2d_from_partials / batch_norm2d_relu_from_partials (cuda/batch_norm.hpp: training from such
// partials). 1) batch norm from host-computed partials of the CPU conv2d's y (an extra empty partial per
// channel must be skipped) against the CPU batch_norm2d with an input shift and against the GPU batch_norm2d;
// 2) the conv's partials: y bit for bit conv2d_implicit_forward's, every triple against a double host
// computation, then end to end against the CPU batch_norm2d, split-k included; 3) bad arguments. float and
// bf16, NCHW and NHWC, odd shapes, bias and no bias.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <string>
#include <type_traits>
#include <vector>

#include "cuda/batch_norm.hpp"
#include "cuda/conv2d_implicit.hpp"
#include "cudacnn/ops/activation.hpp"
#include "cudacnn/ops/conv2d.hpp"
#include "support/compare.hpp"
#include "support/errors.hpp"
#include "support/nhwc_device.hpp"
#include "support/parity.hpp"
#include "support/random.hpp"

using namespace cudacnn;
using Catch::Contains;

namespace {

// As batch_norm_parity_test.cpp's (same reasoning: a float reduction over ≤ 30 roundings, the reference in
// double): the partials are exact-in-double values rounded once to float, and the finalize merges ≤ 2 per
// lane then a 5-level warp tree, fewer roundings than the statistics kernel takes.
constexpr double kElementwiseTolerance = 1e-5;  // y: from statistics off by ≲ 2e-6 of the spread
constexpr double kVarianceTolerance = 1e-5;     // save_invstd, running_var: M2 sums positive terms
constexpr double kSumTolerance = 1e-4;          // save_mean, running_mean: random-sign sums (see there)
// bf16 y against the reference's y rounded once to bf16: values within kElementwiseTolerance round to the
// same bf16 or neighbours one ulp apart, ≤ 2^-7 of the tensor's max magnitude (batch_norm_bf16_parity_test).
constexpr double kBf16ElementwiseTolerance = 0x1p-7 + 1e-5;
// Against the GPU batch_norm2d on the same x: the two merge the same values in different orders, so their
// statistics differ by float rounding only (both are ≲ 2e-6 from exact): float y within 1e-5; bf16 y within
// one bf16 ulp as above.
constexpr int kTileColumns = 128;  // output positions per partial (the implicit conv's block tile width)

struct Case {
    std::string name;
    int64_t n, c, h, w, oc;
    int64_t kernel = 3, stride = 1, padding = 1;
    bool conv_bias = true;
};

// The conv's output positions of channel oc in (n, oh, ow) order, as NCHW offsets.
std::vector<float> channel_values(const HostTensor<float>& y, int64_t oc) {
    const Shape& s = y.shape();
    const int64_t hw = s[2] * s[3];
    std::vector<float> v;
    v.reserve(static_cast<size_t>(s[0] * hw));
    for (int64_t n = 0; n < s[0]; ++n)
        for (int64_t i = 0; i < hw; ++i) v.push_back(y.data()[(n * s[1] + oc) * hw + i]);
    return v;
}

// Partials of y (N, OC, OH, OW): channel-major, tiles of kTileColumns positions, plus one empty partial.
std::vector<gpu::BatchNorm2dPartialStats> host_partials(const HostTensor<float>& y, int& per_channel,
                                                        bool with_empty = true) {
    const Shape& s = y.shape();
    const int64_t count = s[0] * s[2] * s[3];
    per_channel = static_cast<int>((count + kTileColumns - 1) / kTileColumns) + (with_empty ? 1 : 0);
    std::vector<gpu::BatchNorm2dPartialStats> out;
    for (int64_t oc = 0; oc < s[1]; ++oc) {
        const std::vector<float> v = channel_values(y, oc);
        for (int64_t begin = 0; begin < count; begin += kTileColumns) {
            const int64_t end = std::min(count, begin + kTileColumns);
            double sum = 0.0;
            for (int64_t i = begin; i < end; ++i) sum += v[static_cast<size_t>(i)];
            const double mean = sum / static_cast<double>(end - begin);
            double m2 = 0.0;
            for (int64_t i = begin; i < end; ++i)
                m2 += (v[static_cast<size_t>(i)] - mean) * (v[static_cast<size_t>(i)] - mean);
            out.push_back(
                {static_cast<float>(mean), static_cast<float>(m2), static_cast<int32_t>(end - begin)});
        }
        if (with_empty) out.push_back({123.0f, 456.0f, 0});  // empty: skipped whatever its mean and M2
    }
    return out;
}

DeviceBuffer upload_partials(const std::vector<gpu::BatchNorm2dPartialStats>& p) {
    return upload(p);
}

double error_vs(const HostTensor<float>& actual, const HostTensor<float>& expected) {
    return test::max_relative_error(actual, expected);
}

template <class T>
void check_case(const Case& c, MemoryFormat format, bool relu, uint32_t seed) {
    using D = test::DeviceOf<T>;
    constexpr bool kBf16 = !std::is_same_v<T, float>;
    const double y_tolerance = kBf16 ? kBf16ElementwiseTolerance : kElementwiseTolerance;
    INFO(c.name << (kBf16 ? " bf16" : " float") << (format == MemoryFormat::nhwc ? " nhwc" : " nchw")
                << (relu ? " relu" : ""));
    // The conv: x and w as the device would hold them (bf16: rounded), y rounded as a bf16 conv stores it.
    const HostTensor<float> x = D::values(test::random_tensor<float>({c.n, c.c, c.h, c.w}, seed));
    const HostTensor<float> w =
        D::values(test::random_tensor<float>({c.oc, c.c, c.kernel, c.kernel}, seed + 1));
    const HostTensor<float> conv_bias = test::random_tensor<float>({c.oc}, seed + 2, 2.0, 3.0);
    cpu::Conv2dOptions conv_options;
    conv_options.stride = {c.stride, c.stride};
    conv_options.padding = c.padding;
    const HostTensor<float> y =
        D::values(cpu::conv2d(x, w, c.conv_bias ? &conv_bias : nullptr, conv_options));
    const Shape& shape = y.shape();
    const int64_t channels = shape[1];

    const HostTensor<float> gamma = test::random_tensor<float>({channels}, seed + 3, 0.5, 1.5);
    const HostTensor<float> beta = test::random_tensor<float>({channels}, seed + 4);
    const HostTensor<float> shift = test::random_tensor<float>({channels}, seed + 5);
    cpu::BatchNorm2dRunningStats<float> running{test::random_tensor<float>({channels}, seed + 6, -0.5, 0.5),
                                                test::random_tensor<float>({channels}, seed + 7, 0.5, 1.5),
                                                3};
    cpu::BatchNorm2dOptions options;
    options.training = true, options.momentum = 0.1;
    // The reference runs on y plus the shift (what a conv with its bias unfolded would give), so that its
    // running mean includes the shift; its y and saves are those of y itself shifted: compare y and the
    // variance directly, and save_mean minus the shift.
    HostTensor<float> y_shifted = y;
    {
        const int64_t hw = shape[2] * shape[3];
        for (int64_t n = 0; n < shape[0]; ++n)
            for (int64_t oc = 0; oc < channels; ++oc)
                for (int64_t i = 0; i < hw; ++i)
                    y_shifted.data()[(n * channels + oc) * hw + i] += shift.data()[oc];
    }
    cpu::BatchNorm2dRunningStats<float> expected_running = running;
    const cpu::BatchNorm2dResult<float> expected =
        cpu::batch_norm2d(y_shifted, &gamma, &beta, &expected_running, options);
    // Reference outputs: batch norm is shift-invariant, so y's normalization equals y_shifted's.
    HostTensor<float> expected_y = relu ? cpu::relu(expected.output) : expected.output;
    if (kBf16) expected_y = test::round_to_bf16(expected_y);
    HostTensor<float> expected_mean = expected.save_mean;
    for (int64_t oc = 0; oc < channels; ++oc) expected_mean.data()[oc] -= shift.data()[oc];

    int per_channel = 0;
    const DeviceBuffer d_partials = upload_partials(host_partials(y, per_channel));
    const DeviceBuffer d_gamma = test::to_device(gamma), d_beta = test::to_device(beta);
    const DeviceBuffer d_shift = test::to_device(shift);
    const DeviceBuffer d_x = D::upload(test::in_format(y, format));
    const DeviceBuffer d_y = D::poison(shape.numel());
    const DeviceBuffer d_mean = test::poisoned<float>(channels), d_invstd = test::poisoned<float>(channels);
    DeviceBuffer d_rmean = test::to_device(running.running_mean),
                 d_rvar = test::to_device(running.running_var);
    gpu::BatchNorm2dRunningStatsView view{d_rmean.data_as<float>(), d_rvar.data_as<float>(),
                                          running.num_batches_tracked, d_shift.data_as<float>()};
    const auto* partials = static_cast<const gpu::BatchNorm2dPartialStats*>(d_partials.data());
    if (relu) {
        gpu::batch_norm2d_relu_from_partials(D::data(d_x), partials, per_channel, d_gamma.data_as<float>(),
                                             d_beta.data_as<float>(), &view, D::data(d_y),
                                             d_mean.data_as<float>(), d_invstd.data_as<float>(), shape,
                                             options, nullptr, format);
    } else {
        gpu::batch_norm2d_from_partials(D::data(d_x), partials, per_channel, d_gamma.data_as<float>(),
                                        d_beta.data_as<float>(), &view, D::data(d_y), d_mean.data_as<float>(),
                                        d_invstd.data_as<float>(), shape, options, nullptr, format);
    }
    auto download = [&](const DeviceBuffer& b) {
        const HostTensor<float> t = D::download(b, shape);  // the shape stays (N, C, H, W) in NHWC
        return format == MemoryFormat::nhwc ? test::from_nhwc(t) : t;
    };
    const HostTensor<float> actual_y = download(d_y);
    CHECK(error_vs(actual_y, expected_y) <= y_tolerance);
    CHECK(error_vs(test::to_host<float>(d_mean, {channels}), expected_mean) <= kSumTolerance);
    CHECK(error_vs(test::to_host<float>(d_invstd, {channels}), expected.save_invstd) <= kVarianceTolerance);
    CHECK(view.num_batches_tracked == expected_running.num_batches_tracked);
    CHECK(error_vs(test::to_host<float>(d_rmean, {channels}), expected_running.running_mean) <=
          kSumTolerance);
    CHECK(error_vs(test::to_host<float>(d_rvar, {channels}), expected_running.running_var) <=
          kVarianceTolerance);

    // The GPU batch_norm2d(_relu) on the same x: the path the partials replace.
    const size_t workspace_bytes = gpu::batch_norm2d_workspace_bytes(shape);
    const DeviceBuffer workspace =
        test::poisoned<float>(static_cast<int64_t>(workspace_bytes / sizeof(float)));
    const DeviceBuffer d_y2 = D::poison(shape.numel());
    const DeviceBuffer d_mean2 = test::poisoned<float>(channels), d_invstd2 = test::poisoned<float>(channels);
    if (relu) {
        gpu::batch_norm2d_relu(D::data(d_x), d_gamma.data_as<float>(), d_beta.data_as<float>(), nullptr,
                               D::data(d_y2), d_mean2.data_as<float>(), d_invstd2.data_as<float>(), shape,
                               options, workspace.data(), workspace_bytes, nullptr, format);
    } else {
        gpu::batch_norm2d(D::data(d_x), d_gamma.data_as<float>(), d_beta.data_as<float>(), nullptr,
                          D::data(d_y2), d_mean2.data_as<float>(), d_invstd2.data_as<float>(), shape, options,
                          workspace.data(), workspace_bytes, nullptr, format);
    }
    CHECK(error_vs(actual_y, download(d_y2)) <= y_tolerance);
    CHECK(error_vs(test::to_host<float>(d_mean, {channels}), test::to_host<float>(d_mean2, {channels})) <=
          kSumTolerance);
    CHECK(error_vs(test::to_host<float>(d_invstd, {channels}), test::to_host<float>(d_invstd2, {channels})) <=
          kVarianceTolerance);
}

// The conv's epilogue partials: y bit for bit conv2d_implicit_forward's, each (mean, M2, count) against the
// host's double computation on that y, then batch_norm2d_from_partials on them against the CPU batch_norm2d
// of that y.
// A triple's mean and M2 come from ≤ 4 values per lane (two passes) and a 5-level Chan tree: ≲ 10 float
// roundings, each ≤ 2^-24 of a partial result bounded by the tile's max |y| (mean) or its M2 (M2 sums
// positive terms): 1e-5 relative to the largest of the tensor leaves room; a dropped or doubled column is
// off by ≳ 1/128.
constexpr double kPartialTolerance = 1e-5;

template <class T>
void check_conv_stats(const Case& c, MemoryFormat format, uint32_t seed) {
    using D = test::DeviceOf<T>;
    constexpr bool kBf16 = !std::is_same_v<T, float>;
    INFO(c.name << (kBf16 ? " bf16" : " float") << (format == MemoryFormat::nhwc ? " nhwc" : " nchw"));
    const HostTensor<float> x = D::values(test::random_tensor<float>({c.n, c.c, c.h, c.w}, seed));
    const HostTensor<float> w =
        D::values(test::random_tensor<float>({c.oc, c.c, c.kernel, c.kernel}, seed + 1));
    const HostTensor<float> conv_bias = test::random_tensor<float>({c.oc}, seed + 2, 2.0, 3.0);
    cpu::Conv2dOptions conv_options;
    conv_options.stride = {c.stride, c.stride};
    conv_options.padding = c.padding;
    const cpu::Conv2dGeometry g = cpu::conv2d_geometry(x.shape(), w.shape(), conv_options);
    const Shape shape{c.n, c.oc, g.out_h, g.out_w};
    const DeviceBuffer d_x = D::upload(test::in_format(x, format)), d_w = D::upload(w);
    const DeviceBuffer d_bias = test::to_device(conv_bias);
    const float* bias = c.conv_bias ? d_bias.data_as<float>() : nullptr;
    const size_t workspace_bytes = gpu::conv2d_implicit_workspace_bytes(g);
    const DeviceBuffer workspace(std::max<size_t>(workspace_bytes, 16));
    const DeviceBuffer d_y_plain = D::poison(shape.numel()), d_y = D::poison(shape.numel());
    gpu::conv2d_implicit_forward(g, D::data(d_x), D::data(d_w), bias, D::data(d_y_plain), workspace.data(),
                                 workspace_bytes, nullptr, format);
    const int partials = gpu::conv2d_implicit_forward_stats_partials(g);
    const size_t stats_bytes = gpu::conv2d_implicit_forward_stats_bytes(g);
    REQUIRE(stats_bytes == static_cast<size_t>(c.oc * partials) * sizeof(gpu::BatchNorm2dPartialStats));
    const DeviceBuffer d_stats = test::poisoned<float>(static_cast<int64_t>(stats_bytes / sizeof(float)));
    auto* stats = static_cast<gpu::BatchNorm2dPartialStats*>(d_stats.data());
    gpu::conv2d_implicit_forward_with_stats(g, D::data(d_x), D::data(d_w), bias, D::data(d_y), stats,
                                            stats_bytes, workspace.data(), workspace_bytes, nullptr, format);
    auto fetch = [&](const DeviceBuffer& b) {
        const HostTensor<float> t = D::download(b, shape);
        return format == MemoryFormat::nhwc ? test::from_nhwc(t) : t;
    };
    const HostTensor<float> y = fetch(d_y);
    CHECK(test::bitwise_equal(y, fetch(d_y_plain)));

    int expected_partials = 0;
    const std::vector<gpu::BatchNorm2dPartialStats> expected = host_partials(y, expected_partials, false);
    REQUIRE(expected_partials == partials);
    const std::vector<gpu::BatchNorm2dPartialStats> actual =
        download(static_cast<const gpu::BatchNorm2dPartialStats*>(stats), expected.size());
    HostTensor<float> means({static_cast<int64_t>(actual.size())}), m2s = means, expected_means = means,
                                                                    expected_m2s = means;
    int64_t count_mismatches = 0;
    for (size_t i = 0; i < actual.size(); ++i) {
        means.data()[i] = actual[i].mean, m2s.data()[i] = actual[i].m2;
        expected_means.data()[i] = expected[i].mean, expected_m2s.data()[i] = expected[i].m2;
        count_mismatches += actual[i].count != expected[i].count ? 1 : 0;
    }
    CHECK(count_mismatches == 0);
    CHECK(error_vs(means, expected_means) <= kPartialTolerance);
    CHECK(error_vs(m2s, expected_m2s) <= kPartialTolerance);

    // End to end: the batch norm from these partials against the CPU batch_norm2d of the same y.
    cpu::BatchNorm2dOptions options;
    options.training = true, options.momentum = 0.1;
    const HostTensor<float> gamma = test::random_tensor<float>({c.oc}, seed + 3, 0.5, 1.5);
    const HostTensor<float> beta = test::random_tensor<float>({c.oc}, seed + 4);
    cpu::BatchNorm2dRunningStats<float> running{test::random_tensor<float>({c.oc}, seed + 6, -0.5, 0.5),
                                                test::random_tensor<float>({c.oc}, seed + 7, 0.5, 1.5), 0};
    DeviceBuffer d_rmean = test::to_device(running.running_mean),
                 d_rvar = test::to_device(running.running_var);
    gpu::BatchNorm2dRunningStatsView view{d_rmean.data_as<float>(), d_rvar.data_as<float>(), 0, nullptr};
    const cpu::BatchNorm2dResult<float> reference = cpu::batch_norm2d(y, &gamma, &beta, &running, options);
    const DeviceBuffer d_gamma = test::to_device(gamma), d_beta = test::to_device(beta);
    const DeviceBuffer d_mean = test::poisoned<float>(c.oc), d_invstd = test::poisoned<float>(c.oc);
    const DeviceBuffer d_out = D::poison(shape.numel());
    gpu::batch_norm2d_from_partials(D::data(d_y), stats, partials, d_gamma.data_as<float>(),
                                    d_beta.data_as<float>(), &view, D::data(d_out), d_mean.data_as<float>(),
                                    d_invstd.data_as<float>(), shape, options, nullptr, format);
    const HostTensor<float> expected_out = kBf16 ? test::round_to_bf16(reference.output) : reference.output;
    CHECK(error_vs(fetch(d_out), expected_out) <=
          (kBf16 ? kBf16ElementwiseTolerance : kElementwiseTolerance));
    CHECK(error_vs(test::to_host<float>(d_mean, {c.oc}), reference.save_mean) <= kSumTolerance);
    CHECK(error_vs(test::to_host<float>(d_invstd, {c.oc}), reference.save_invstd) <= kVarianceTolerance);
    CHECK(error_vs(test::to_host<float>(d_rmean, {c.oc}), running.running_mean) <= kSumTolerance);
    CHECK(error_vs(test::to_host<float>(d_rvar, {c.oc}), running.running_var) <= kVarianceTolerance);
}

const std::vector<Case>& cases() {
    static const std::vector<Case> all{
        {"C=3 OC=7 odd map", 3, 3, 9, 7, 7},
        {"C=5 OC=64 N=1 stride 2", 1, 5, 11, 13, 64, 3, 2, 1},
        {"C=17 OC=7 no bias 1x1", 3, 17, 5, 5, 7, 1, 1, 0, false},
        {"C=128 OC=64 3x3 map (one tile + one empty partial)", 3, 128, 3, 3, 64},
        {"C=5 OC=7 N=2 61x67 (65 partials: lanes merge 3 in turn)", 2, 5, 61, 67, 7},
    };
    return all;
}

}  // namespace

TEST_CASE("batch_norm2d_from_partials matches conv2d then batch_norm2d", "[conv_bn_stats]") {
    uint32_t seed = 7000;
    for (const Case& c : cases()) {
        for (MemoryFormat format : {MemoryFormat::nchw, MemoryFormat::nhwc}) {
            for (bool relu : {false, true}) {
                check_case<float>(c, format, relu, seed);
                check_case<gpu::bf16>(c, format, relu, seed + 100);
                seed += 10;
            }
        }
    }
}

TEST_CASE("conv2d_implicit_forward_with_stats writes the tiles' partial statistics", "[conv_bn_stats]") {
    const std::vector<Case> conv_cases{
        {"C=3 OC=7 odd map", 3, 3, 9, 7, 7},
        {"C=5 OC=64 N=1 stride 2", 1, 5, 11, 13, 64, 3, 2, 1},
        {"C=17 OC=7 no bias 1x1", 3, 17, 5, 5, 7, 1, 1, 0, false},
        {"C=128 OC=64 3x3 map (split-k)", 3, 128, 3, 3, 64},
        {"C=128 OC=7 N=1 3x3 map no bias (split-k)", 1, 128, 3, 3, 7, 3, 1, 1, false},
        {"C=5 OC=7 N=2 61x67 (64 tiles)", 2, 5, 61, 67, 7},
    };
    uint32_t seed = 9000;
    for (const Case& c : conv_cases) {
        for (MemoryFormat format : {MemoryFormat::nchw, MemoryFormat::nhwc}) {
            check_conv_stats<float>(c, format, seed);
            check_conv_stats<gpu::bf16>(c, format, seed + 100);
            seed += 10;
        }
    }
}

TEST_CASE("batch_norm2d_from_partials rejects bad arguments", "[conv_bn_stats]") {
    const Shape shape{2, 3, 4, 4};
    const DeviceBuffer x = test::poisoned<float>(shape.numel()), y = test::poisoned<float>(shape.numel());
    const DeviceBuffer saves = test::poisoned<float>(6);
    const DeviceBuffer partials(3 * sizeof(gpu::BatchNorm2dPartialStats));
    const auto* p = static_cast<const gpu::BatchNorm2dPartialStats*>(partials.data());
    cpu::BatchNorm2dOptions options;
    auto call = [&](const gpu::BatchNorm2dPartialStats* parts, int per_channel, bool training) {
        options.training = training;
        gpu::batch_norm2d_from_partials(x.data_as<float>(), parts, per_channel, nullptr, nullptr, nullptr,
                                        y.data_as<float>(), saves.data_as<float>(),
                                        saves.data_as<float>() + 3, shape, options, nullptr);
    };
    CHECK_THROWS_WITH(call(p, 1, false), Contains("batch_norm2d_from_partials") && Contains("training"));
    CHECK_THROWS_WITH(call(p, 0, true), Contains("partials_per_channel must be at least 1, got 0"));
    CHECK_THROWS_WITH(call(nullptr, 1, true), Contains("partials"));

    // The conv's statistics buffer must hold OC · P triples.
    const cpu::Conv2dGeometry g = cpu::conv2d_geometry({2, 3, 4, 4}, {3, 3, 3, 3}, {});
    const size_t stats_bytes = gpu::conv2d_implicit_forward_stats_bytes(g);
    CHECK(stats_bytes == 3 * sizeof(gpu::BatchNorm2dPartialStats));  // 2·2·2 = 8 positions: one tile
    const DeviceBuffer w = test::poisoned<float>(81), stats(stats_bytes);
    auto* s = static_cast<gpu::BatchNorm2dPartialStats*>(stats.data());
    CHECK_THROWS_WITH(gpu::conv2d_implicit_forward_with_stats(g, x.data_as<float>(), w.data_as<float>(),
                                                              nullptr, y.data_as<float>(), s, stats_bytes - 1,
                                                              nullptr, 0, nullptr, MemoryFormat::nchw),
                      Contains("conv2d_implicit_forward_with_stats: stats has 35 bytes"));
    CHECK_THROWS_WITH(gpu::conv2d_implicit_forward_with_stats(
                          g, x.data_as<float>(), w.data_as<float>(), nullptr, y.data_as<float>(), nullptr,
                          stats_bytes, nullptr, 0, nullptr, MemoryFormat::nchw),
                      Contains("stats must be a device pointer"));
}
