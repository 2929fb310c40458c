// Parity of the synchronized batch norm kernels on NHWC (channels_last) tensors (cuda/batch_norm_sync.hpp's
// format member) with the CPU reference (src/cpu/batch_norm.cpp, in NCHW: inputs permuted with test::to_nhwc,
// outputs back with test::from_nhwc), float and bf16: a world of one rank (identity all-reduce) and a
// simulated world of two ranks (each a part of the batch, the all-reduce a host sum between the phases)
// against the reference on the whole batch; odd shapes (C = 1, 3, 17, 64, 68; odd H·W), more than 32
// partials a channel; bf16 against the float NHWC kernels bit for bit.
#include <catch2/catch.hpp>

#include <cstdint>
#include <optional>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "cuda/batch_norm_sync.hpp"
#include "cudacnn/ops/activation.hpp"
#include "support/compare.hpp"
#include "support/nhwc_device.hpp"

using namespace cudacnn;

namespace {

// The NCHW synchronized test's tolerances (tests/ops/batch_norm_sync_parity_test.cpp), whose reasons hold for
// NHWC as they are: every sum is in double (a thread's sum, the fixed row tree, the merge's ≤ 32 partials a
// lane and its warp tree round to ≲ 2^-50 relative), so what remains is the float rounding of the results.
// y, dx: a few float roundings per element, plus save_mean's rounding for inputs offset by 100: 1e-5.
constexpr double kSyncElementwiseTolerance = 1e-5;
// save_invstd, the running variance: a double statistic rounded once to float: 1e-5.
constexpr double kSyncVarianceTolerance = 1e-5;
// save_mean, the running mean, dweight and dbias: double sums rounded once (the two-rank dweight and dbias
// add two floats): 1e-4; a lost slice or rank is off by ≳ 1e-2.
constexpr double kSyncSumTolerance = 1e-4;
// bf16 y and dx: the float value within 1e-5 of the reference's, both rounded once to bf16 (8 significant
// bits): equal or one bf16 ulp apart, ≤ 2^-7 of the tensor's max magnitude.
constexpr double kBf16ElementwiseTolerance = 0x1p-7 + 1e-5;

template <class T>
constexpr double elementwise_tolerance() {
    return std::is_same_v<T, float> ? kSyncElementwiseTolerance : kBf16ElementwiseTolerance;
}

// Samples [first, first + count) of an (N, C, H, W) tensor.
HostTensor<float> batch_slice(const HostTensor<float>& t, int64_t first, int64_t count) {
    const Shape& s = t.shape();
    const int64_t per_sample = s[1] * s[2] * s[3];
    std::vector<float> values(t.data() + first * per_sample, t.data() + (first + count) * per_sample);
    return HostTensor<float>(Shape{count, s[1], s[2], s[3]}, std::move(values));
}

struct SyncCase {
    std::string name;
    Shape shape;  // the whole world's batch
    bool affine = true;
    bool track_running_stats = true;
    std::optional<double> momentum = 0.1;
    int64_t batches_tracked = 0;
    bool relu = false;
    double offset = 0.0;  // x ∈ offset + [-1, 1)
};

// The reference on the whole batch (x and dy holding T's values): forward (a fused ReLU after it), and the
// backward from the reference's saves, dy through ReLU's backward first.
struct Reference {
    HostTensor<float> x, weight, bias, y, save_mean, save_invstd, dy, dx, dweight, dbias;
    cpu::BatchNorm2dRunningStats<float> running_before, running_after;
};

template <class T>
Reference reference(const SyncCase& c, uint32_t seed) {
    using D = test::DeviceOf<T>;
    const Shape per_channel{c.shape[1]};
    Reference r;
    r.x = D::values(test::random_tensor<float>(c.shape, seed, c.offset - 1.0, c.offset + 1.0));
    r.weight = test::random_tensor<float>(per_channel, seed + 1, 0.5, 1.5);
    r.bias = test::random_tensor<float>(per_channel, seed + 2);
    r.running_before = {test::random_tensor<float>(per_channel, seed + 3, -0.5, 0.5),
                        test::random_tensor<float>(per_channel, seed + 4, 0.5, 1.5), c.batches_tracked};
    r.running_after = r.running_before;
    cpu::BatchNorm2dOptions options;
    options.momentum = c.momentum;
    const HostTensor<float>* weight = c.affine ? &r.weight : nullptr;
    const cpu::BatchNorm2dResult<float> forward =
        cpu::batch_norm2d(r.x, weight, c.affine ? &r.bias : nullptr,
                          c.track_running_stats ? &r.running_after : nullptr, options);
    r.y = c.relu ? cpu::relu(forward.output) : forward.output;
    r.save_mean = forward.save_mean, r.save_invstd = forward.save_invstd;
    r.dy = D::values(test::random_tensor<float>(c.shape, seed + 5));
    const HostTensor<float> dnormalized = c.relu ? cpu::relu_backward(r.y, r.dy).dx : r.dy;
    const cpu::BatchNorm2dGrads<float> grads =
        cpu::batch_norm2d_backward(r.x, weight, r.save_mean, r.save_invstd, dnormalized, /*training=*/true);
    r.dx = grads.dx, r.dweight = grads.dweight, r.dbias = grads.dbias;
    return r;
}

// One rank's device memory (samples [first, first + count), NHWC), outputs poisoned with NaN.
template <class T>
struct Rank {
    using D = test::DeviceOf<T>;
    int64_t first = 0;
    Shape shape;
    DeviceBuffer x, weight, bias, running_mean, running_var, y, save_mean, save_invstd;
    DeviceBuffer ref_mean, ref_invstd, ref_y, dy, dx, dweight, dbias, workspace;
    gpu::BatchNorm2dRunningStatsView running;
    gpu::BatchNorm2dSyncForwardT<T> forward;
    gpu::BatchNorm2dSyncBackwardT<T> backward;

    Rank(const SyncCase& c, const Reference& r, int64_t first_sample, int64_t count) : first(first_sample) {
        const int64_t channels = c.shape[1];
        shape = Shape{count, channels, c.shape[2], c.shape[3]};
        const auto nhwc_part = [&](const HostTensor<float>& t) {
            return D::upload(test::to_nhwc(batch_slice(t, first, count)));
        };
        x = nhwc_part(r.x);
        weight = test::to_device(r.weight), bias = test::to_device(r.bias);
        running_mean = test::to_device(r.running_before.running_mean);
        running_var = test::to_device(r.running_before.running_var);
        running = {running_mean.data_as<float>(), running_var.data_as<float>(),
                   r.running_before.num_batches_tracked};
        y = D::poison(shape.numel());
        save_mean = test::poisoned<float>(channels), save_invstd = test::poisoned<float>(channels);
        const size_t workspace_bytes = gpu::batch_norm2d_sync_workspace_bytes(shape);
        workspace = test::poisoned<float>(static_cast<int64_t>(workspace_bytes / sizeof(float)));

        gpu::BatchNorm2dSyncForwardT<T>& f = forward;
        f.x = D::data(x);
        f.weight = c.affine ? weight.data_as<float>() : nullptr;
        f.bias = c.affine ? bias.data_as<float>() : nullptr;
        f.running = c.track_running_stats ? &running : nullptr;
        f.y = D::data(y);
        f.save_mean = save_mean.data_as<float>(), f.save_invstd = save_invstd.data_as<float>();
        f.input_shape = shape;
        f.options.momentum = c.momentum;
        f.relu = c.relu;
        f.workspace = workspace.data(), f.workspace_bytes = workspace_bytes;
        f.format = MemoryFormat::nhwc;

        // The backward reads the reference's saves and output (so that both sides differentiate the same
        // function; T's rounding of y keeps its sign, so the ReLU mask too).
        ref_mean = test::to_device(r.save_mean), ref_invstd = test::to_device(r.save_invstd);
        ref_y = nhwc_part(D::values(r.y));
        dy = nhwc_part(r.dy);
        dx = D::poison(shape.numel());
        dweight = test::poisoned<float>(channels), dbias = test::poisoned<float>(channels);
        gpu::BatchNorm2dSyncBackwardT<T>& b = backward;
        b.x = f.x;
        b.relu_y = c.relu ? D::data(ref_y) : nullptr;
        b.weight = f.weight;
        b.save_mean = ref_mean.data_as<float>(), b.save_invstd = ref_invstd.data_as<float>();
        b.dy = D::data(dy);
        b.dx = D::data(dx);
        b.dweight = c.affine ? dweight.data_as<float>() : nullptr;
        b.dbias = c.affine ? dbias.data_as<float>() : nullptr;
        b.input_shape = shape;
        b.workspace = f.workspace, b.workspace_bytes = workspace_bytes;
        b.format = MemoryFormat::nhwc;
    }

    HostTensor<float> y_nchw() const { return test::from_nhwc(D::download(y, shape)); }
    HostTensor<float> dx_nchw() const { return test::from_nhwc(D::download(dx, shape)); }
};

HostTensor<float> per_channel(const DeviceBuffer& b, const HostTensor<float>& like) {
    return test::to_host<float>(b, like.shape());
}

// The all-reduce of a simulated world: every rank's buffer becomes the sum of all of them (through the host).
void all_reduce_on_host(const std::vector<gpu::BatchNormSyncSums>& per_rank) {
    const auto n = static_cast<std::size_t>(per_rank.at(0).count);
    std::vector<double> total(n, 0.0);
    for (const gpu::BatchNormSyncSums& sums : per_rank) {
        REQUIRE(sums.count == per_rank[0].count);
        const std::vector<double> values = download<double>(sums.data, n);
        for (std::size_t i = 0; i < n; ++i) total[i] += values[i];
    }
    for (const gpu::BatchNormSyncSums& sums : per_rank)
        copy_to_device(sums.data, total.data(), n * sizeof(double));
}

// A rank's forward and dx against the reference's slice.
template <class T>
void check_rank(const Rank<T>& k, const SyncCase& c, const Reference& r) {
    using D = test::DeviceOf<T>;
    const int64_t count = k.shape[0];
    CHECK(test::max_relative_error(k.y_nchw(), D::values(batch_slice(r.y, k.first, count))) <=
          elementwise_tolerance<T>());
    CHECK(test::max_relative_error(per_channel(k.save_mean, r.save_mean), r.save_mean) <= kSyncSumTolerance);
    CHECK(test::max_relative_error(per_channel(k.save_invstd, r.save_invstd), r.save_invstd) <=
          kSyncVarianceTolerance);
    const HostTensor<float> running_mean = per_channel(k.running_mean, r.save_mean);
    if (c.track_running_stats) {
        CHECK(k.running.num_batches_tracked == r.running_after.num_batches_tracked);
        CHECK(test::max_relative_error(running_mean, r.running_after.running_mean) <= kSyncSumTolerance);
        CHECK(test::max_relative_error(per_channel(k.running_var, r.save_mean),
                                       r.running_after.running_var) <= kSyncVarianceTolerance);
    } else {
        CHECK(test::bitwise_equal(running_mean, r.running_before.running_mean));  // untouched
    }
    CHECK(test::max_relative_error(k.dx_nchw(), D::values(batch_slice(r.dx, k.first, count))) <=
          elementwise_tolerance<T>());
}

// The whole batch on one rank whose all-reduce is the identity.
template <class T>
void check_world_of_one(const SyncCase& c, const Reference& r) {
    Rank<T> k(c, r, 0, c.shape[0]);
    int64_t reductions = 0;
    const gpu::BatchNormSyncReduce identity = [&](double*, int64_t) { ++reductions; };
    gpu::batch_norm2d_sync(k.forward, identity);
    gpu::batch_norm2d_sync_backward(k.backward, identity);
    CHECK(reductions == 3);
    check_rank(k, c, r);
    if (c.affine) {
        CHECK(test::max_relative_error(per_channel(k.dweight, r.dweight), r.dweight) <= kSyncSumTolerance);
        CHECK(test::max_relative_error(per_channel(k.dbias, r.dbias), r.dbias) <= kSyncSumTolerance);
    }
    if constexpr (!std::is_same_v<T, float>) {
        // The float NHWC kernels on the same (widened) values: the same sums and statistics bit for bit, y
        // and dx their float values rounded once.
        Rank<float> f(c, r, 0, c.shape[0]);
        gpu::batch_norm2d_sync(f.forward, identity);
        gpu::batch_norm2d_sync_backward(f.backward, identity);
        CHECK(test::bf16_mismatches(k.y_nchw(), test::round_to_bf16(f.y_nchw())) == 0);
        CHECK(test::bf16_mismatches(k.dx_nchw(), test::round_to_bf16(f.dx_nchw())) == 0);
        const std::vector<std::pair<const DeviceBuffer*, const DeviceBuffer*>> same_bits{
            {&k.save_mean, &f.save_mean},       {&k.save_invstd, &f.save_invstd},
            {&k.running_mean, &f.running_mean}, {&k.running_var, &f.running_var},
            {&k.dweight, &f.dweight},           {&k.dbias, &f.dbias}};
        for (const auto& [mine, theirs] : same_bits) {
            CHECK(test::bitwise_equal(per_channel(*mine, r.save_mean), per_channel(*theirs, r.save_mean)));
        }
    }
}

// The batch split between two ranks (the first takes `first_count` samples), phase by phase.
template <class T>
void check_world_of_two(const SyncCase& c, const Reference& r, int64_t first_count) {
    std::vector<Rank<T>> ranks;
    ranks.reserve(2);
    ranks.emplace_back(c, r, 0, first_count);
    ranks.emplace_back(c, r, first_count, c.shape[0] - first_count);
    auto each = [&](auto phase) {
        std::vector<gpu::BatchNormSyncSums> sums;
        for (Rank<T>& k : ranks) sums.push_back(phase(k));
        return sums;
    };
    all_reduce_on_host(each([](Rank<T>& k) { return gpu::batch_norm2d_sync_statistics(k.forward); }));
    all_reduce_on_host(each([](Rank<T>& k) { return gpu::batch_norm2d_sync_squares(k.forward); }));
    for (Rank<T>& k : ranks) gpu::batch_norm2d_sync_normalize(k.forward);
    all_reduce_on_host(each([](Rank<T>& k) { return gpu::batch_norm2d_sync_backward_sums(k.backward); }));
    for (Rank<T>& k : ranks) gpu::batch_norm2d_sync_backward_dx(k.backward);
    for (const Rank<T>& k : ranks) {
        INFO("rank from sample " << k.first);
        check_rank(k, c, r);
    }
    if (!c.affine) return;
    // Each rank's dweight and dbias are its own part's sums, and together the whole batch's.
    HostTensor<float> dweight(r.dweight.shape()), dbias(r.dbias.shape());
    const HostTensor<float> w0 = per_channel(ranks[0].dweight, r.dweight),
                            w1 = per_channel(ranks[1].dweight, r.dweight);
    const HostTensor<float> b0 = per_channel(ranks[0].dbias, r.dbias),
                            b1 = per_channel(ranks[1].dbias, r.dbias);
    for (int64_t ch = 0; ch < dweight.numel(); ++ch)
        dweight[ch] = w0[ch] + w1[ch], dbias[ch] = b0[ch] + b1[ch];
    CHECK(test::max_relative_error(dweight, r.dweight) <= kSyncSumTolerance);
    CHECK(test::max_relative_error(dbias, r.dbias) <= kSyncSumTolerance);
}

std::vector<SyncCase> cases() {
    std::vector<SyncCase> all;
    // C = 64: two channel groups of 32, width-4 normalize and dx.
    all.push_back({"c64_affine_momentum_relu", {4, 64, 5, 5}});
    all.back().relu = true;
    // C = 3 (one block of 3 channels × 85 pixel rows), odd planes; no affine, a cumulative average.
    all.push_back({"c3_odd_noaffine_cumulative", {5, 3, 7, 5}, false});
    all.back().momentum = std::nullopt, all.back().batches_tracked = 2;
    // C = 17, untracked, fused ReLU.
    all.push_back({"c17_untracked_relu", {3, 17, 5, 7}, true, false});
    all.back().relu = true;
    // C = 68: three groups (23, 23, 22 channels); a common offset of 100.
    all.push_back({"c68_offset100_momentum03", {3, 68, 3, 5}});
    all.back().momentum = 0.3, all.back().offset = 100.0;
    // C = 1, 135135 pixels in a world of one: 33 slices, so the merge's lane 0 adds two partials.
    all.push_back({"c1_33_splits", {33, 1, 65, 63}});
    return all;
}

template <class T>
void check_all() {
    uint32_t seed = 5700;
    for (const SyncCase& c : cases()) {
        INFO("case " << c.name);
        const Reference r = reference<T>(c, seed);
        {
            INFO("world of one");
            check_world_of_one<T>(c, r);
        }
        {
            INFO("world of two");  // unequal parts where the batch is odd: the world's M must normalize
            check_world_of_two<T>(c, r, c.shape[0] / 2);
        }
        seed += 100;
    }
}

}  // namespace

TEST_CASE("NHWC synchronized batch norm matches the reference in worlds of one and two ranks",
          "[parity][batch_norm_sync][nhwc]") {
    check_all<float>();
}

TEST_CASE("bf16 NHWC synchronized batch norm matches the reference and the float NHWC kernels bit for bit",
          "[parity][bf16][batch_norm_sync][nhwc]") {
    check_all<gpu::bf16>();
}
