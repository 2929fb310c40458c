// Parity of the synchronized batch norm phases (cuda/batch_norm_sync.hpp) on bf16 activations: over two
// simulated ranks (the all-reduce a host sum between the phases) and in a world of one, against the float
// phases on the same widened values (every statistic and sum the same bits, y and dx those bits rounded once)
// and against the CPU reference on the whole bf16-rounded batch, its y and dx rounded once to bf16.
#include <catch2/catch.hpp>

#include <cstdint>
#include <optional>
#include <string>
#include <type_traits>
#include <vector>

#include "cuda/batch_norm_sync.hpp"
#include "cuda/bf16.cuh"
#include "cudacnn/ops/activation.hpp"
#include "support/bf16.hpp"
#include "support/compare.hpp"
#include "support/parity.hpp"

using namespace cudacnn;

namespace {

// y and dx: the float phases' values (checked bit for bit), within the float sync test's 1e-5 · S of the
// reference (tests/ops/batch_norm_sync_parity_test.cpp), each side rounded once to bf16: values that close
// round to the same bf16 or to neighbours one ulp apart, ≤ 2^-7 of the max magnitude S (bf16 keeps 8
// significant bits). Hence 2^-7 + 1e-5; the bitwise checks pin everything but the final rounding.
constexpr double kBf16ElementwiseTolerance = 0x1p-7 + 1e-5;
// Statistics, running statistics, dweight and dbias stay float, computed as the float phases compute them on
// the same values: the float sync test's bounds (justified there).
constexpr double kSyncVarianceTolerance = 1e-5;
constexpr double kSyncSumTolerance = 1e-4;

// Activation buffers of T = float or bf16 holding host floats (bf16: already rounded, so exactly).
template <class T>
DeviceBuffer upload_activation(const HostTensor<float>& t) {
    if constexpr (std::is_same_v<T, float>) {
        return test::to_device(t);
    } else {
        return test::to_device_bf16(t);
    }
}
template <class T>
DeviceBuffer poisoned_activation(int64_t count) {
    if constexpr (std::is_same_v<T, float>) {
        return test::poisoned<float>(count);
    } else {
        return test::poisoned_bf16(count);
    }
}
template <class T>
HostTensor<float> download_activation(const DeviceBuffer& b, const Shape& shape) {
    if constexpr (std::is_same_v<T, float>) {
        return test::to_host<float>(b, shape);
    } else {
        return test::to_host_bf16(b.data(), shape);
    }
}

// A device buffer's data as P* (a function, so that templates on the activation type need no `template`).
template <class P>
P* ptr(const DeviceBuffer& b) {
    return b.data_as<P>();
}

// Samples [first, first + count) of an (N, C, H, W) tensor.
HostTensor<float> batch_slice(const HostTensor<float>& t, int64_t first, int64_t count) {
    const Shape& s = t.shape();
    const int64_t per_sample = s[1] * s[2] * s[3];
    std::vector<float> values(t.data() + first * per_sample, t.data() + (first + count) * per_sample);
    return HostTensor<float>(Shape{count, s[1], s[2], s[3]}, std::move(values));
}

struct SyncBf16Case {
    std::string name;
    Shape shape;                        // the whole world's batch
    std::vector<int64_t> rank_samples;  // samples per rank, summing to shape[0]
    bool affine = true;
    bool relu = false;
    std::optional<double> momentum = 0.1;
};

// The inputs of a run: x and dy bf16-rounded; the backward's saves (the reference's, so that the kernels and
// the reference differentiate the same function) and the y whose sign masks dy with a fused ReLU.
struct Inputs {
    HostTensor<float> x, dy, weight, bias, running_mean, running_var, save_mean, save_invstd;
    std::optional<HostTensor<float>> mask_y;  // unset: the run's own y
};

// One rank's results.
struct RankOutputs {
    HostTensor<float> y, save_mean, save_invstd, running_mean, running_var, dx, dweight, dbias;
};

// The four phases of the forward and the two of the backward over ranks of rank_samples samples each.
template <class T>
std::vector<RankOutputs> run_world(const SyncBf16Case& c, const Inputs& in) {
    const int64_t channels = c.shape[1];
    const Shape per_channel{channels};
    struct Rank {
        Shape shape;
        DeviceBuffer x, y, dy, dx, mask_y, running_mean, running_var, save_mean, save_invstd, dweight, dbias,
            workspace;
        gpu::BatchNorm2dRunningStatsView running;
        gpu::BatchNorm2dSyncForwardT<T> forward;
        gpu::BatchNorm2dSyncBackwardT<T> backward;
    };
    const DeviceBuffer weight = test::to_device(in.weight), bias = test::to_device(in.bias);
    const DeviceBuffer ref_mean = test::to_device(in.save_mean), ref_invstd = test::to_device(in.save_invstd);
    std::vector<Rank> ranks(c.rank_samples.size());
    int64_t first = 0;
    for (std::size_t r = 0; r < ranks.size(); ++r) {
        Rank& k = ranks[r];
        const int64_t count = c.rank_samples[r];
        k.shape = Shape{count, channels, c.shape[2], c.shape[3]};
        k.x = upload_activation<T>(batch_slice(in.x, first, count));
        k.dy = upload_activation<T>(batch_slice(in.dy, first, count));
        if (in.mask_y) k.mask_y = upload_activation<T>(batch_slice(*in.mask_y, first, count));
        k.y = poisoned_activation<T>(k.shape.numel()), k.dx = poisoned_activation<T>(k.shape.numel());
        k.running_mean = test::to_device(in.running_mean), k.running_var = test::to_device(in.running_var);
        k.running = {ptr<float>(k.running_mean), ptr<float>(k.running_var), 0};
        k.save_mean = test::poisoned<float>(channels), k.save_invstd = test::poisoned<float>(channels);
        k.dweight = test::poisoned<float>(channels), k.dbias = test::poisoned<float>(channels);
        const size_t workspace_bytes = gpu::batch_norm2d_sync_workspace_bytes(k.shape);
        k.workspace = test::poisoned<float>(static_cast<int64_t>(workspace_bytes / sizeof(float)));
        auto& f = k.forward;
        f.x = ptr<T>(k.x), f.y = ptr<T>(k.y);
        f.weight = c.affine ? weight.data_as<float>() : nullptr;
        f.bias = c.affine ? bias.data_as<float>() : nullptr;
        f.running = &k.running;
        f.save_mean = ptr<float>(k.save_mean), f.save_invstd = ptr<float>(k.save_invstd);
        f.input_shape = k.shape;
        f.options.momentum = c.momentum;
        f.relu = c.relu;
        f.workspace = k.workspace.data(), f.workspace_bytes = workspace_bytes;
        auto& b = k.backward;
        b.x = f.x, b.dy = ptr<T>(k.dy), b.dx = ptr<T>(k.dx);
        b.relu_y = c.relu ? (in.mask_y ? ptr<T>(k.mask_y) : f.y) : nullptr;
        b.weight = f.weight;
        b.save_mean = ref_mean.data_as<float>(), b.save_invstd = ref_invstd.data_as<float>();
        b.dweight = c.affine ? ptr<float>(k.dweight) : nullptr;
        b.dbias = c.affine ? ptr<float>(k.dbias) : nullptr;
        b.input_shape = k.shape;
        b.workspace = f.workspace, b.workspace_bytes = workspace_bytes;
        first += count;
    }
    // Every rank's phase, then the sum of their buffers written back to each (through the host).
    auto phase_and_reduce = [&](auto phase) {
        std::vector<gpu::BatchNormSyncSums> sums;
        for (Rank& k : ranks) sums.push_back(phase(k));
        const auto n = static_cast<std::size_t>(sums.at(0).count);
        std::vector<double> total(n, 0.0);
        for (const gpu::BatchNormSyncSums& s : sums) {
            const std::vector<double> values = download<double>(s.data, n);
            for (std::size_t i = 0; i < n; ++i) total[i] += values[i];
        }
        for (const gpu::BatchNormSyncSums& s : sums) copy_to_device(s.data, total.data(), n * sizeof(double));
    };
    phase_and_reduce([](Rank& k) { return gpu::batch_norm2d_sync_statistics(k.forward); });
    phase_and_reduce([](Rank& k) { return gpu::batch_norm2d_sync_squares(k.forward); });
    for (Rank& k : ranks) gpu::batch_norm2d_sync_normalize(k.forward);
    phase_and_reduce([](Rank& k) { return gpu::batch_norm2d_sync_backward_sums(k.backward); });
    for (Rank& k : ranks) gpu::batch_norm2d_sync_backward_dx(k.backward);

    std::vector<RankOutputs> out;
    for (const Rank& k : ranks) {
        out.push_back({download_activation<T>(k.y, k.shape), test::to_host<float>(k.save_mean, per_channel),
                       test::to_host<float>(k.save_invstd, per_channel),
                       test::to_host<float>(k.running_mean, per_channel),
                       test::to_host<float>(k.running_var, per_channel),
                       download_activation<T>(k.dx, k.shape), test::to_host<float>(k.dweight, per_channel),
                       test::to_host<float>(k.dbias, per_channel)});
    }
    return out;
}

void check_case(const SyncBf16Case& c, uint32_t seed) {
    const int64_t channels = c.shape[1];
    const Shape per_channel{channels};
    Inputs in;
    in.x = test::round_to_bf16(test::random_tensor<float>(c.shape, seed, -1.5, 2.5));
    in.dy = test::round_to_bf16(test::random_tensor<float>(c.shape, seed + 1));
    in.weight = test::random_tensor<float>(per_channel, seed + 2, 0.5, 1.5);
    in.bias = test::random_tensor<float>(per_channel, seed + 3);
    in.running_mean = test::random_tensor<float>(per_channel, seed + 4, -0.5, 0.5);
    in.running_var = test::random_tensor<float>(per_channel, seed + 5, 0.5, 1.5);
    cpu::BatchNorm2dRunningStats<float> running{in.running_mean, in.running_var, 0};
    cpu::BatchNorm2dOptions options;
    options.momentum = c.momentum;
    const HostTensor<float>* weight = c.affine ? &in.weight : nullptr;
    const cpu::BatchNorm2dResult<float> forward =
        cpu::batch_norm2d(in.x, weight, c.affine ? &in.bias : nullptr, &running, options);
    in.save_mean = forward.save_mean, in.save_invstd = forward.save_invstd;

    const std::vector<RankOutputs> bf16 = run_world<gpu::bf16>(c, in);
    // The float phases mask dy by the bf16 run's y, as the bf16 backward did.
    std::vector<float> y_values;
    for (const RankOutputs& k : bf16)
        y_values.insert(y_values.end(), k.y.values().begin(), k.y.values().end());
    const HostTensor<float> y_bf16(c.shape, y_values);
    in.mask_y = y_bf16;
    const std::vector<RankOutputs> fp32 = run_world<float>(c, in);

    // The reference, its dy masked by the bf16 kernels' y (what the executor passes).
    const HostTensor<float> expected_y =
        test::round_to_bf16(c.relu ? cpu::relu(forward.output) : forward.output);
    const HostTensor<float> dnormalized = c.relu ? cpu::relu_backward(y_bf16, in.dy).dx : in.dy;
    const cpu::BatchNorm2dGrads<float> grads =
        cpu::batch_norm2d_backward(in.x, weight, in.save_mean, in.save_invstd, dnormalized, true);
    const HostTensor<float> expected_dx = test::round_to_bf16(grads.dx);

    HostTensor<float> dweight(per_channel, 0.0f), dbias(per_channel, 0.0f);
    int64_t first = 0;
    for (std::size_t r = 0; r < bf16.size(); ++r) {
        INFO("rank " << r);
        const RankOutputs& k = bf16[r];
        const RankOutputs& f = fp32[r];
        const int64_t count = c.rank_samples[r];
        CHECK(test::max_relative_error(k.y, batch_slice(expected_y, first, count)) <=
              kBf16ElementwiseTolerance);
        CHECK(test::max_relative_error(k.dx, batch_slice(expected_dx, first, count)) <=
              kBf16ElementwiseTolerance);
        CHECK(test::max_relative_error(k.save_mean, forward.save_mean) <= kSyncSumTolerance);
        CHECK(test::max_relative_error(k.save_invstd, forward.save_invstd) <= kSyncVarianceTolerance);
        CHECK(test::max_relative_error(k.running_mean, running.running_mean) <= kSyncSumTolerance);
        CHECK(test::max_relative_error(k.running_var, running.running_var) <= kSyncVarianceTolerance);
        CHECK(test::bf16_mismatches(k.y, test::round_to_bf16(f.y)) == 0);
        CHECK(test::bf16_mismatches(k.dx, test::round_to_bf16(f.dx)) == 0);
        CHECK(test::bitwise_equal(k.save_mean, f.save_mean));
        CHECK(test::bitwise_equal(k.save_invstd, f.save_invstd));
        CHECK(test::bitwise_equal(k.running_mean, f.running_mean));
        CHECK(test::bitwise_equal(k.running_var, f.running_var));
        if (c.affine) {
            CHECK(test::bitwise_equal(k.dweight, f.dweight));
            CHECK(test::bitwise_equal(k.dbias, f.dbias));
            for (int64_t ch = 0; ch < channels; ++ch) dweight[ch] += k.dweight[ch], dbias[ch] += k.dbias[ch];
        }
        first += count;
    }
    // Each rank's dweight and dbias are its part's sums; together the whole batch's.
    if (c.affine) {
        CHECK(test::max_relative_error(dweight, grads.dweight) <= kSyncSumTolerance);
        CHECK(test::max_relative_error(dbias, grads.dbias) <= kSyncSumTolerance);
    }
}

}  // namespace

TEST_CASE(
    "synchronized batch norm on bf16 activations matches the reference, and the float phases bit for bit",
    "[parity][bf16][batch_norm_sync]") {
    std::vector<SyncBf16Case> cases;
    // N = 3 split 1 + 2 (the world's M, not 2 · M, must normalize), C = 5, odd planes, fused ReLU.
    cases.push_back({"odd_two_ranks_relu", {3, 5, 7, 9}, {1, 2}, true, true});
    cases.push_back({"odd_two_ranks_noaffine_cumulative", {3, 5, 7, 9}, {2, 1}, false});
    cases.back().momentum = std::nullopt;
    // A world of one: the identity all-reduce.
    cases.push_back({"world_of_one", {4, 3, 8, 10}, {4}});
    uint32_t seed = 8100;
    for (const SyncBf16Case& c : cases) {
        INFO("case " << c.name);
        check_case(c, seed);
        seed += 100;
    }
}
