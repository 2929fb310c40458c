// Data-parallel training across processes on the CPU path, under mpirun (tests/CMakeLists.txt starts this
// program as 2 ranks): both ranks train together, and rank 0 compares the result with a single process that
// trains on the combined batch.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <sstream>
#include <string>
#include <vector>

#include "cudacnn/device.hpp"
#include "cudacnn/dist/communicator.hpp"
#include "cudacnn/io/state_dict.hpp"
#include "cudacnn/train/options.hpp"
#include "cudacnn/train/trainer.hpp"
#include "support/temp_files.hpp"

namespace cudacnn::train {
namespace {

namespace fs = std::filesystem;

dist::Communicator& world() { return dist::mpi_world(); }

// A folder every rank names the same (rank 0 creates and removes it).
class SharedFolder {
  public:
    SharedFolder() {
        std::string path;
        if (world().rank() == 0) {
            temp_ = std::make_unique<test::TempDir>();
            path = temp_->path();
        }
        uint64_t length = path.size();
        world().broadcast_host(&length, sizeof(length), 0);
        path.resize(length);
        world().broadcast_host(path.data(), length, 0);
        path_ = path;
    }
    ~SharedFolder() {
        double done = 0.0;
        world().all_reduce_sum_host(&done, 1);  // nobody still uses the folder when rank 0 removes it
    }
    std::string file(const std::string& name) const { return path_ + "/" + name; }

  private:
    std::unique_ptr<test::TempDir> temp_;
    std::string path_;
};

// small_cnn (two conv + batch norm + ReLU + pooling blocks, a linear layer) on the synthetic set, one thread per
// rank (2 ranks on the 2 cores of CI). `batch` records per process. SGD with momentum rather than Adam: the
// convolutions' biases before batch norm have a gradient of zero up to rounding, which Adam divides by its own
// size and turns into steps of the learning rate, so that a 1e-10 rounding difference becomes a 1e-4 one.
TrainOptions run_options(const std::string& folder, int64_t batch, int64_t epochs) {
    return parse_train_args({"--model", "small_cnn", "--dataset", "synthetic", "--synthetic-size", "200,40",
                             "--epochs", std::to_string(epochs), "-b", std::to_string(batch), "--optimizer", "sgd",
                             "--momentum", "0.9", "--lr", "5e-3",
                             "--seed", "3", "--device", "cpu", "--threads", "1", "--output-dir", folder,
                             "--save-every", "1"})
        .options;
}

TrainHooks single_process() {
    TrainHooks hooks;
    hooks.launch = dist::LaunchInfo{0, 1, 0, "single process", ""};
    return hooks;
}

// The largest difference between two state dicts' float entries, relative to the largest magnitude of each.
double largest_relative_difference(const io::StateDict& a, const io::StateDict& b) {
    REQUIRE(a.names() == b.names());
    double worst = 0.0;
    for (const std::string& name : a.names()) {
        if (a.dtype(name) != DType::f32) {
            CHECK(a.i64(name).values() == b.i64(name).values());
            continue;
        }
        const auto& x = a.f32(name).values();
        const auto& y = b.f32(name).values();
        double scale = 1e-12, difference = 0.0;
        for (std::size_t i = 0; i < x.size(); ++i) {
            scale = std::max(scale, static_cast<double>(std::fabs(x[i])));
            difference = std::max(difference, static_cast<double>(std::fabs(x[i] - y[i])));
        }
        INFO(name << ": largest difference " << difference << " of largest magnitude " << scale);
        worst = std::max(worst, difference / scale);
    }
    return worst;
}

// Two ranks against one process differ only in the order of the floating-point sums: the mean gradient of the
// two halves against the whole batch's (one rounding each, ~1e-7 relative), and batch norm's statistics (summed
// in double). After two epochs (26 steps) the weights measured 2.6e-7 of each tensor's largest value apart;
// 1e-5 leaves 40 times that, while a genuine difference (per-rank batch norm statistics, a missing gradient
// average, a wrong shard) moves them by 1e-3 and more (the second case checks that).
constexpr double kCombinedBatchTolerance = 1e-5;

TEST_CASE("2 ranks with --sync-bn end with the weights of one process with the combined batch", "[mpi]") {
    REQUIRE(world().world_size() == 2);
    const SharedFolder folder;
    std::ostringstream log;
    TrainOptions parallel = run_options(folder.file("parallel"), 8, 2);
    parallel.sync_bn = true;
    parallel.export_path = folder.file("parallel.safetensors");
    const TrainSummary summary = run_training(parallel, log);
    CHECK(summary.epochs_run == 2);
    if (world().rank() != 0) {
        CHECK(log.str().empty());  // rank 0 alone logs
        return;
    }
    INFO(log.str());
    CHECK(log.str().find("data-parallel: 2 processes x batch 8 = 16 records per step, 13 steps per epoch") !=
          std::string::npos);
    CHECK(log.str().find("synchronized across ranks") != std::string::npos);
    CHECK(fs::exists(folder.file("parallel/checkpoint-epoch-002.safetensors")));

    TrainOptions single = run_options(folder.file("single"), 16, 2);
    single.export_path = folder.file("single.safetensors");
    run_training(single, log, single_process());
    const double difference = largest_relative_difference(io::load_state_dict(folder.file("parallel.safetensors")),
                                                          io::load_state_dict(folder.file("single.safetensors")));
    CHECK(difference < kCombinedBatchTolerance);
}

// The GPU backend's data parallelism: the executor's all-reduce on the stream, synchronized batch norm's kernels
// with the all-reduces between them, the broadcast of rank 0's state. Under the emulator (no NCCL) the ranks
// reduce through host memory with MPI; on real GPUs NCCL does it, which needs a GPU per rank.
TEST_CASE("2 GPU ranks with --sync-bn end with the weights of one GPU process with the combined batch", "[mpi][gpu]") {
    int gpus = 0;
    if (!gpu_status().available || cudaGetDeviceCount(&gpus) != cudaSuccess || (!kEmulated && gpus < 2)) {
        WARN("skipped: 2 ranks on the GPU need a GPU each (" << gpu_status().description << ")");
        return;
    }
    const SharedFolder folder;
    std::ostringstream log;
    TrainOptions parallel = run_options(folder.file("parallel"), 4, 1);
    parallel.synthetic_train_size = 64;
    parallel.synthetic_test_size = 16;
    parallel.device = DeviceChoice::cuda;
    parallel.sync_bn = true;
    parallel.export_path = folder.file("parallel.safetensors");
    run_training(parallel, log);
    if (world().rank() != 0) return;
    INFO(log.str());
    CHECK(log.str().find(kEmulated ? "GPU data through host memory" : "NCCL") != std::string::npos);
    TrainOptions single = parallel;
    single.batch_size = 8;
    single.sync_bn = false;
    single.output_dir = folder.file("single");
    single.export_path = folder.file("single.safetensors");
    run_training(single, log, single_process());
    CHECK(largest_relative_difference(io::load_state_dict(folder.file("parallel.safetensors")),
                                      io::load_state_dict(folder.file("single.safetensors"))) <
          kCombinedBatchTolerance);
}

TEST_CASE("2 ranks without --sync-bn normalize by their own batches", "[mpi]") {
    const SharedFolder folder;
    std::ostringstream log;
    TrainOptions parallel = run_options(folder.file("parallel"), 8, 2);
    parallel.export_path = folder.file("parallel.safetensors");
    run_training(parallel, log);
    if (world().rank() != 0) return;
    INFO(log.str());
    CHECK(log.str().find("batch norm statistics per rank") != std::string::npos);
    TrainOptions single = run_options(folder.file("single"), 16, 2);
    single.export_path = folder.file("single.safetensors");
    run_training(single, log, single_process());
    // Batch statistics of 8 records against 16: a real difference, far above the float tolerance.
    CHECK(largest_relative_difference(io::load_state_dict(folder.file("parallel.safetensors")),
                                      io::load_state_dict(folder.file("single.safetensors"))) >
          100 * kCombinedBatchTolerance);
}

TEST_CASE("a run resumes with another number of processes", "[mpi]") {
    const SharedFolder folder;
    std::ostringstream log;
    // Epoch 1 on one process with 16 records per step, epoch 2 on both ranks with 8 each: the same as two epochs
    // on one process (the recipe's batch is the world's).
    if (world().rank() == 0) {
        TrainOptions first = run_options(folder.file("resumed"), 16, 1);
        first.sync_bn = false;
        run_training(first, log, single_process());
        TrainOptions straight = run_options(folder.file("straight"), 16, 2);
        straight.export_path = folder.file("straight.safetensors");
        run_training(straight, log, single_process());
    }
    double ready = 0.0;
    world().all_reduce_sum_host(&ready, 1);
    TrainOptions second = run_options(folder.file("resumed"), 8, 2);
    second.sync_bn = true;
    second.resume = folder.file("resumed/checkpoint-epoch-001.safetensors");
    second.export_path = folder.file("resumed.safetensors");
    const TrainSummary summary = run_training(second, log);
    CHECK(summary.epochs_run == 1);
    if (world().rank() != 0) return;
    INFO(log.str());
    CHECK(log.str().find("resumed: ") != std::string::npos);
    CHECK(largest_relative_difference(io::load_state_dict(folder.file("resumed.safetensors")),
                                      io::load_state_dict(folder.file("straight.safetensors"))) <
          kCombinedBatchTolerance);

    // A per-process batch that changes the records per step is refused, naming both.
    TrainOptions other = run_options(folder.file("resumed"), 8, 3);  // one process of 8: half the records
    other.resume = folder.file("resumed/checkpoint-epoch-002.safetensors");
    CHECK_THROWS_WITH(run_training(other, log, single_process()), Catch::Contains("records per step"));
}

}  // namespace
}  // namespace cudacnn::train
