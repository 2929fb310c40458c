// Parity of the synchronized batch norm kernels (cuda/batch_norm_sync.cu) with the CPU reference
// (src/cpu/batch_norm.cpp): a world of one rank (identity all-reduce) against the reference on the same
// batch; a simulated world of two ranks in one process (each rank half of the batch, the all-reduce a host
// sum between the phases) against the reference on the whole batch; and a GPU executor with a test
// communicator and sync_batch_norm, whose step equals one without synchronization.
#include <catch2/catch.hpp>

#include <cmath>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "cuda/batch_norm_sync.hpp"
#include "cudacnn/dist/communicator.hpp"
#include "cudacnn/error.hpp"
#include "cudacnn/graph/executor.hpp"
#include "cudacnn/ops/activation.hpp"
#include "support/compare.hpp"
#include "support/errors.hpp"
#include "support/parity.hpp"

using namespace cudacnn;
using Catch::Contains;

namespace {

// The batch_norm2d parity test's tolerances (tests/ops/batch_norm_parity_test.cpp), which these kernels meet
// with room to spare: their sums are in double (the reference's arithmetic; a block's partial and the fixed
// merge tree round to ≲ 2^-50 relative), so what remains is float rounding of the results.
//
// y, dx: per element a few float roundings (≲ 2^-22 of the data's spread), plus, for inputs with a common
// offset of 100, the rounding of save_mean to float (ulp(100) / 2 ≈ 4e-6 of the spread 1): 1e-5.
constexpr double kSyncElementwiseTolerance = 1e-5;
// save_invstd, the running variance: the double statistic rounded once to float (2^-24 ≈ 6e-8), and the
// reference's own single rounding: 1e-5 as batch_norm2d's bound.
constexpr double kSyncVarianceTolerance = 1e-5;
// save_mean, the running mean, dweight and dbias: double sums rounded once; max_relative_error divides by the
// largest |value|, so a small entry's rounding stays ≤ 2^-24 relative. The two-rank sums add two floats (one
// more rounding). 1e-4 as batch_norm2d's bound for sums; a lost slice or rank is off by ≳ 1e-2.
constexpr double kSyncSumTolerance = 1e-4;

double error_vs(const DeviceBuffer& actual, const HostTensor<float>& expected) {
    return test::max_relative_error(test::to_host<float>(actual, expected.shape()), expected);
}

// Samples [first, first + count) of an (N, C, H, W) tensor.
HostTensor<float> batch_slice(const HostTensor<float>& t, int64_t first, int64_t count) {
    const Shape& s = t.shape();
    const int64_t per_sample = s[1] * s[2] * s[3];
    std::vector<float> values(t.data() + first * per_sample, t.data() + (first + count) * per_sample);
    return HostTensor<float>(Shape{count, s[1], s[2], s[3]}, std::move(values));
}

HostTensor<float> sum_of(const HostTensor<float>& a, const HostTensor<float>& b) {
    HostTensor<float> sum(a.shape());
    for (int64_t i = 0; i < a.numel(); ++i) sum[i] = a[i] + b[i];
    return sum;
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

// The reference on the whole batch: forward (with a fused ReLU applied after it), and the backward from the
// reference's own saves, dy going through ReLU's backward first.
struct Reference {
    HostTensor<float> x, weight, bias, y, save_mean, save_invstd, dy, dx, dweight, dbias;
    cpu::BatchNorm2dRunningStats<float> running_before, running_after;
};

Reference reference(const SyncCase& c, uint32_t seed) {
    const int64_t channels = c.shape[1];
    const Shape per_channel{channels};
    Reference r;
    r.x = test::random_tensor<float>(c.shape, seed, c.offset - 1.0, c.offset + 1.0);
    r.weight = test::random_tensor<float>(per_channel, seed + 1, 0.5, 1.5);
    r.bias = test::random_tensor<float>(per_channel, seed + 2);
    // Running statistics away from nn.BatchNorm2d's 0 and 1, so that every update term shows.
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
    r.dy = test::random_tensor<float>(c.shape, seed + 5);
    const HostTensor<float> dnormalized = c.relu ? cpu::relu_backward(r.y, r.dy).dx : r.dy;
    const cpu::BatchNorm2dGrads<float> grads =
        cpu::batch_norm2d_backward(r.x, weight, r.save_mean, r.save_invstd, dnormalized, /*training=*/true);
    r.dx = grads.dx, r.dweight = grads.dweight, r.dbias = grads.dbias;
    return r;
}

// One rank's device memory: its part of the batch (samples [first, first + count)), its own copy of the
// parameters and running statistics, outputs poisoned with NaN.
struct Rank {
    int64_t first = 0;
    Shape shape;
    DeviceBuffer x, weight, bias, running_mean, running_var, y, save_mean, save_invstd;
    DeviceBuffer ref_mean, ref_invstd, ref_y, dy, dx, dweight, dbias, workspace;
    gpu::BatchNorm2dRunningStatsView running;
    gpu::BatchNorm2dSyncForward forward;
    gpu::BatchNorm2dSyncBackward backward;
};

void set_up(Rank& k, const SyncCase& c, const Reference& r, int64_t first, int64_t count) {
    const int64_t channels = c.shape[1];
    k.first = first;
    k.shape = Shape{count, c.shape[1], c.shape[2], c.shape[3]};
    k.x = test::to_device(batch_slice(r.x, first, count));
    k.weight = test::to_device(r.weight), k.bias = test::to_device(r.bias);
    k.running_mean = test::to_device(r.running_before.running_mean);
    k.running_var = test::to_device(r.running_before.running_var);
    k.running = {k.running_mean.data_as<float>(), k.running_var.data_as<float>(),
                 r.running_before.num_batches_tracked};
    k.y = test::poisoned<float>(k.shape.numel());
    k.save_mean = test::poisoned<float>(channels), k.save_invstd = test::poisoned<float>(channels);
    const size_t workspace_bytes = gpu::batch_norm2d_sync_workspace_bytes(k.shape);
    k.workspace = test::poisoned<float>(static_cast<int64_t>(workspace_bytes / sizeof(float)));

    gpu::BatchNorm2dSyncForward& f = k.forward;
    f.x = k.x.data_as<float>();
    f.weight = c.affine ? k.weight.data_as<float>() : nullptr;
    f.bias = c.affine ? k.bias.data_as<float>() : nullptr;
    f.running = c.track_running_stats ? &k.running : nullptr;
    f.y = k.y.data_as<float>();
    f.save_mean = k.save_mean.data_as<float>(), f.save_invstd = k.save_invstd.data_as<float>();
    f.input_shape = k.shape;
    f.options.momentum = c.momentum;
    f.relu = c.relu;
    f.workspace = k.workspace.data(), f.workspace_bytes = workspace_bytes;

    // The backward reads the reference's saves and output (the kernels' own are checked by the forward), so
    // that both sides differentiate the same function with the same ReLU mask.
    k.ref_mean = test::to_device(r.save_mean), k.ref_invstd = test::to_device(r.save_invstd);
    k.ref_y = test::to_device(batch_slice(r.y, first, count));
    k.dy = test::to_device(batch_slice(r.dy, first, count));
    k.dx = test::poisoned<float>(k.shape.numel());
    k.dweight = test::poisoned<float>(channels), k.dbias = test::poisoned<float>(channels);
    gpu::BatchNorm2dSyncBackward& b = k.backward;
    b.x = f.x;
    b.relu_y = c.relu ? k.ref_y.data_as<float>() : nullptr;
    b.weight = f.weight;
    b.save_mean = k.ref_mean.data_as<float>(), b.save_invstd = k.ref_invstd.data_as<float>();
    b.dy = k.dy.data_as<float>();
    b.dx = k.dx.data_as<float>();
    b.dweight = c.affine ? k.dweight.data_as<float>() : nullptr;
    b.dbias = c.affine ? k.dbias.data_as<float>() : nullptr;
    b.input_shape = k.shape;
    b.workspace = f.workspace, b.workspace_bytes = workspace_bytes;
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

// Each rank's slice of the forward and backward against the reference on the whole batch.
void check_rank(const Rank& k, const SyncCase& c, const Reference& r) {
    const int64_t count = k.shape[0];
    CHECK(error_vs(k.y, batch_slice(r.y, k.first, count)) <= kSyncElementwiseTolerance);
    CHECK(error_vs(k.save_mean, r.save_mean) <= kSyncSumTolerance);
    CHECK(error_vs(k.save_invstd, r.save_invstd) <= kSyncVarianceTolerance);
    if (c.track_running_stats) {
        CHECK(k.running.num_batches_tracked == r.running_after.num_batches_tracked);
        CHECK(error_vs(k.running_mean, r.running_after.running_mean) <= kSyncSumTolerance);
        CHECK(error_vs(k.running_var, r.running_after.running_var) <= kSyncVarianceTolerance);
    } else {
        // Untouched: still what the rank started with.
        CHECK(error_vs(k.running_mean, r.running_before.running_mean) == 0.0);
    }
    CHECK(error_vs(k.dx, batch_slice(r.dx, k.first, count)) <= kSyncElementwiseTolerance);
}

// The whole batch on one rank whose all-reduce is the identity (a world of one).
void check_world_of_one(const SyncCase& c, uint32_t seed) {
    const Reference r = reference(c, seed);
    Rank k;
    set_up(k, c, r, 0, c.shape[0]);
    int64_t reductions = 0;
    const gpu::BatchNormSyncReduce identity = [&](double*, int64_t) { ++reductions; };
    gpu::batch_norm2d_sync(k.forward, identity);
    gpu::batch_norm2d_sync_backward(k.backward, identity);
    CHECK(reductions == 3);  // Σx and M, Σ(x − mean)², the gradient sums and M
    check_rank(k, c, r);
    if (c.affine) {
        CHECK(error_vs(k.dweight, r.dweight) <= kSyncSumTolerance);
        CHECK(error_vs(k.dbias, r.dbias) <= kSyncSumTolerance);
    }
}

// The batch split between two ranks (first: `first_count` samples), phase by phase with a host all-reduce.
void check_world_of_two(const SyncCase& c, uint32_t seed, int64_t first_count) {
    const Reference r = reference(c, seed);
    std::vector<Rank> ranks(2);
    set_up(ranks[0], c, r, 0, first_count);
    set_up(ranks[1], c, r, first_count, c.shape[0] - first_count);
    auto each = [&](auto phase) {
        std::vector<gpu::BatchNormSyncSums> sums;
        for (Rank& k : ranks) sums.push_back(phase(k));
        return sums;
    };
    all_reduce_on_host(each([](Rank& k) { return gpu::batch_norm2d_sync_statistics(k.forward); }));
    all_reduce_on_host(each([](Rank& k) { return gpu::batch_norm2d_sync_squares(k.forward); }));
    for (Rank& k : ranks) gpu::batch_norm2d_sync_normalize(k.forward);
    all_reduce_on_host(each([](Rank& k) { return gpu::batch_norm2d_sync_backward_sums(k.backward); }));
    for (Rank& k : ranks) gpu::batch_norm2d_sync_backward_dx(k.backward);

    for (const Rank& k : ranks) {
        INFO("rank from sample " << k.first);
        check_rank(k, c, r);
    }
    if (!c.affine) return;
    // Each rank's dweight and dbias are its own part's sums, and together the whole batch's.
    const auto local = [](const DeviceBuffer& b, const HostTensor<float>& like) {
        return test::to_host<float>(b, like.shape());
    };
    CHECK(test::max_relative_error(
              sum_of(local(ranks[0].dweight, r.dweight), local(ranks[1].dweight, r.dweight)), r.dweight) <=
          kSyncSumTolerance);
    CHECK(test::max_relative_error(sum_of(local(ranks[0].dbias, r.dbias), local(ranks[1].dbias, r.dbias)),
                                   r.dbias) <= kSyncSumTolerance);
    for (const Rank& k : ranks) {
        const int64_t count = k.shape[0];
        const HostTensor<float> dy = batch_slice(r.dy, k.first, count);
        const HostTensor<float> dnormalized =
            c.relu ? cpu::relu_backward(batch_slice(r.y, k.first, count), dy).dx : dy;
        const cpu::BatchNorm2dGrads<float> own = cpu::batch_norm2d_backward(
            batch_slice(r.x, k.first, count), &r.weight, r.save_mean, r.save_invstd, dnormalized, true);
        CHECK(error_vs(k.dweight, own.dweight) <= kSyncSumTolerance);
        CHECK(error_vs(k.dbias, own.dbias) <= kSyncSumTolerance);
    }
}

std::vector<SyncCase> cases() {
    std::vector<SyncCase> all;
    all.push_back({"cifar_affine_momentum", {4, 32, 8, 8}});
    all.push_back({"odd_noaffine_cumulative", {5, 3, 7, 5}, false});
    all.back().momentum = std::nullopt, all.back().batches_tracked = 2;
    all.push_back({"odd_untracked_relu", {3, 3, 7, 5}, true, false});
    all.back().relu = true;
    // M = 2875 per rank-of-one: two blocks per channel; a common offset of 100.
    all.push_back({"split_offset100_momentum03_relu", {5, 3, 23, 25}});
    all.back().momentum = 0.3, all.back().offset = 100.0, all.back().relu = true;
    return all;
}

}  // namespace

TEST_CASE("synchronized batch norm in a world of one matches the reference", "[parity][batch_norm_sync]") {
    uint32_t seed = 700;
    for (const SyncCase& c : cases()) {
        INFO("case " << c.name);
        check_world_of_one(c, seed);
        seed += 100;
    }
}

TEST_CASE("synchronized batch norm over two simulated ranks matches the reference on the whole batch",
          "[parity][batch_norm_sync]") {
    uint32_t seed = 1700;
    for (const SyncCase& c : cases()) {
        INFO("case " << c.name);
        // Unequal parts where the batch is odd: the world's M, not 2 · M, must normalize.
        check_world_of_two(c, seed, c.shape[0] / 2);
        seed += 100;
    }
}

// A convolution's bias folded into the batch norm (BatchNorm2dRunningStatsView::input_shift): the kernels see
// x' = x − shift and give the reference's results on x, save_mean excepted (x''s own, for the backward). The
// subtraction rounds x' by ≤ 2^-24 of |x| ≤ 2 per value, and the running mean adds shift in double: far
// inside the sums' 1e-4; a missing shift is off by |shift| ≈ 0.5.
TEST_CASE("synchronized batch norm with an input shift updates the running mean of x + shift",
          "[parity][batch_norm_sync][bias_fold]") {
    for (const bool relu : {false, true}) {
        INFO("relu " << relu);
        SyncCase c{"shifted", {3, 4, 7, 5}};
        c.relu = relu;
        const Reference r = reference(c, relu ? 2950 : 2900);
        const int64_t channels = c.shape[1], plane = c.shape[2] * c.shape[3];
        const HostTensor<float> shift = test::random_tensor<float>(Shape{channels}, 2990);
        HostTensor<float> x_lacking(c.shape), mean_lacking(Shape{channels});
        for (int64_t i = 0; i < r.x.numel(); ++i) x_lacking[i] = r.x[i] - shift[(i / plane) % channels];
        for (int64_t ch = 0; ch < channels; ++ch) mean_lacking[ch] = r.save_mean[ch] - shift[ch];
        Rank k;
        set_up(k, c, r, 0, c.shape[0]);
        k.x = test::to_device(x_lacking);
        k.forward.x = k.x.data_as<float>();
        const DeviceBuffer d_shift = test::to_device(shift);
        k.running.input_shift = d_shift.data_as<float>();
        gpu::batch_norm2d_sync(k.forward, [](double*, int64_t) {});  // a world of one
        CHECK(error_vs(k.y, r.y) <= kSyncElementwiseTolerance);
        CHECK(error_vs(k.save_mean, mean_lacking) <= kSyncSumTolerance);
        CHECK(error_vs(k.save_invstd, r.save_invstd) <= kSyncVarianceTolerance);
        CHECK(k.running.num_batches_tracked == r.running_after.num_batches_tracked);
        CHECK(error_vs(k.running_mean, r.running_after.running_mean) <= kSyncSumTolerance);
        CHECK(error_vs(k.running_var, r.running_after.running_var) <= kSyncVarianceTolerance);
    }
}

TEST_CASE("synchronized batch norm without dx reduces nothing and writes this rank's dweight and dbias",
          "[parity][batch_norm_sync]") {
    SyncCase c{"first_layer", {2, 3, 5, 7}};
    const Reference r = reference(c, 900);
    Rank k;
    set_up(k, c, r, 0, 2);
    k.backward.dx = nullptr;
    int64_t reductions = 0;
    gpu::batch_norm2d_sync_backward(k.backward, [&](double*, int64_t) { ++reductions; });
    CHECK(reductions == 0);
    CHECK(error_vs(k.dweight, r.dweight) <= kSyncSumTolerance);
    CHECK(error_vs(k.dbias, r.dbias) <= kSyncSumTolerance);
}

TEST_CASE("synchronized batch norm launchers reject bad arguments", "[parity][batch_norm_sync]") {
    using test::error_message;
    SyncCase c{"bad", {2, 3, 4, 4}};
    const Reference r = reference(c, 950);
    Rank k;
    set_up(k, c, r, 0, 2);
    gpu::BatchNorm2dSyncForward eval = k.forward;
    eval.options.training = false;
    CHECK_THAT(
        error_message([&] { gpu::batch_norm2d_sync_statistics(eval); }),
        Contains("batch_norm2d_sync: synchronized batch norm shares batch statistics, so it runs in training "
                 "mode only"));
    gpu::BatchNorm2dSyncForward small = k.forward;
    small.workspace_bytes -= 16;
    CHECK_THAT(
        error_message([&] { gpu::batch_norm2d_sync_statistics(small); }),
        Contains(fmt::format("batch_norm2d_sync: the workspace for input (2, 3, 4, 4) must hold {} bytes",
                             gpu::batch_norm2d_sync_workspace_bytes(c.shape))));
    gpu::BatchNorm2dSyncForward one_value = k.forward;
    one_value.input_shape = Shape{1, 3, 1, 1};
    CHECK_THAT(error_message([&] { gpu::batch_norm2d_sync_statistics(one_value); }),
               Contains("batch_norm2d_sync: training needs more than 1 value per channel"));
    gpu::BatchNorm2dSyncBackward no_dy = k.backward;
    no_dy.dy = nullptr;
    CHECK_THAT(
        error_message([&] { gpu::batch_norm2d_sync_backward_sums(no_dy); }),
        Contains("batch_norm2d_sync_backward: x, dy, save_mean and save_invstd must be device pointers"));
    CHECK(k.running.num_batches_tracked == 0);  // failed calls count no batch
}

namespace {

// A world of one rank on the GPU: every collective leaves its data as it is (the sum and the mean over one
// rank), counting the synchronized batch norm's sums.
class IdentityCommunicator final : public dist::Communicator {
  public:
    explicit IdentityCommunicator(bool device_memory) : device_memory_(device_memory) {}
    int rank() const override { return 0; }
    int world_size() const override { return 1; }
    std::string describe() const override { return "identity test communicator (rank 0 of 1)"; }
    bool device_memory() const override { return device_memory_; }
    void all_reduce_mean(float*, int64_t, void*) override {}
    void all_reduce_sum(double*, int64_t, void*) override { ++sum_calls; }
    void broadcast(void*, std::size_t, int, void*) override {}
    void all_reduce_sum_host(double*, int64_t) override {}
    void broadcast_host(void*, std::size_t, int) override {}
    [[noreturn]] void abort(int exit_code) override {
        CUDACNN_FAIL("IdentityCommunicator: abort({}) called", exit_code);
    }

    int64_t sum_calls = 0;

  private:
    bool device_memory_;
};

// conv → batch norm → ReLU (fused into the batch norm) → max pooling → linear, SGD.
graph::ModelSpec bn_spec() {
    return graph::parse_model_spec(nlohmann::json::parse(R"({
        "name": "sync_bn", "input": [3, 8, 8], "num_classes": 4,
        "layers": [
            {"name": "c", "type": "conv2d", "in_channels": 3, "out_channels": 4, "kernel_size": 3, "padding": 1,
             "bias": false},
            {"name": "bn", "type": "batch_norm2d", "num_features": 4},
            {"name": "r", "type": "relu"},
            {"name": "p", "type": "max_pool2d", "kernel_size": 2},
            {"name": "flat", "type": "flatten"},
            {"name": "head", "type": "linear", "in_features": 64, "out_features": 4}
        ]})"),
                                   "bn_spec");
}

struct StepsRun {
    io::StateDict model;
    int64_t graph_launches = 0;
};

StepsRun three_sgd_steps(dist::Communicator* communicator, const std::string& memory_format = "nchw") {
    graph::ExecutorOptions options;
    options.backend = graph::Backend::gpu;
    options.memory_format = memory_format;
    options.batch_size = 4;
    options.seed = 5;
    options.optimizer.kind = graph::OptimizerKind::sgd;
    options.optimizer.lr = 0.1;
    options.communicator = communicator;
    options.sync_batch_norm = communicator != nullptr;
    graph::Executor executor(graph::build_graph(bn_spec()), options);
    executor.initialize(5);
    HostTensor<float> x(Shape{4, 3, 8, 8});
    const std::vector<int64_t> labels{0, 1, 2, 3};
    for (int64_t step = 0; step < 3; ++step) {  // later steps run as a captured CUDA graph
        for (int64_t i = 0; i < x.numel(); ++i) x[i] = std::sin(0.07f * static_cast<float>(i + 11 * step));
        executor.set_batch(x.data(), labels.data(), 4);
        executor.train_step(step);
    }
    return {executor.model_state(), executor.cuda_graph_launches()};
}

}  // namespace

TEST_CASE("a GPU executor with sync_batch_norm in a world of one trains as without",
          "[parity][batch_norm_sync]") {
    IdentityCommunicator communicator(/*device_memory=*/true);
    const StepsRun synchronized_run = three_sgd_steps(&communicator);
    const StepsRun plain_run = three_sgd_steps(nullptr);
    // Each step's batch norm sums twice forward and once backward (its input, a conv's output, needs dx); a
    // captured step calls the communicator once, as it is captured, and its graph replays the reductions.
    CHECK(communicator.sum_calls >= 3);
    CHECK(communicator.sum_calls % 3 == 0);
    CHECK(synchronized_run.graph_launches == plain_run.graph_launches);
    CHECK(synchronized_run.graph_launches >= 1);
    const io::StateDict& synchronized = synchronized_run.model;
    const io::StateDict& plain = plain_run.model;
    // SGD moves p by lr · g; the two paths' gradients and running statistics differ by the float rounding of
    // the batch statistics (float sums against double ones), ≲ 1e-6 relative: the batch norm parity bound
    // 1e-5.
    REQUIRE(synchronized.names() == plain.names());
    for (const std::string& name : plain.names()) {
        INFO(name);
        if (plain.dtype(name) == DType::i64) {
            CHECK(synchronized.i64(name).values() == plain.i64(name).values());
        } else {
            CHECK(test::max_relative_error(synchronized.f32(name), plain.f32(name)) <=
                  kSyncElementwiseTolerance);
        }
    }
}

TEST_CASE("a GPU executor with sync_batch_norm on NHWC activations trains as the NCHW one",
          "[parity][batch_norm_sync][nhwc]") {
    IdentityCommunicator communicator(/*device_memory=*/true);
    const StepsRun nhwc = three_sgd_steps(&communicator, "nhwc");
    const StepsRun nchw = three_sgd_steps(nullptr);
    CHECK(communicator.sum_calls >= 3);
    // The NHWC kernels sum in another order than the NCHW ones (and in double across the world): float
    // rounding of the batch statistics, within the same bound as above.
    REQUIRE(nhwc.model.names() == nchw.model.names());
    for (const std::string& name : nchw.model.names()) {
        INFO(name);
        if (nchw.model.dtype(name) == DType::i64) continue;
        CHECK(test::max_relative_error(nhwc.model.f32(name), nchw.model.f32(name)) <=
              kSyncElementwiseTolerance);
    }
}

TEST_CASE("the reference backend refuses sync_batch_norm and says where it runs",
          "[parity][batch_norm_sync]") {
    IdentityCommunicator communicator(/*device_memory=*/false);
    graph::ExecutorOptions options;
    options.backend = graph::Backend::cpu_reference;
    options.batch_size = 4;
    options.communicator = &communicator;
    options.sync_batch_norm = true;
    CHECK_THAT(
        test::error_message([&] { graph::Executor executor(graph::build_graph(bn_spec()), options); }),
        Contains("synchronized batch norm (--sync-bn) runs on the fast CPU path (--device cpu) and the GPU, "
                 "not on the cpu-ref backend"));
}
