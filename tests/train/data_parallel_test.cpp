// The data-parallel trainer's pieces that need no second process: how an epoch's records are shared among the
// ranks (ShardPlan), the launch read from the environment, and the flag checks. The runs across processes are
// tests/dist (under mpirun).
#include <catch2/catch.hpp>

#include <cstdlib>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include "cudacnn/dist/communicator.hpp"
#include "cudacnn/error.hpp"
#include "cudacnn/train/options.hpp"
#include "cudacnn/train/trainer.hpp"
#include "src/train/data_parallel.hpp"
#include "support/temp_files.hpp"

namespace cudacnn::train {
namespace {

// Every position the world's steps use, by rank and step: each step's ranks together take `world × count`
// consecutive positions.
TEST_CASE("a shard plan gives each step's records to the ranks in consecutive blocks", "[data_parallel]") {
    for (const auto& [size, batch, world] : std::vector<std::tuple<int64_t, int64_t, int>>{
             {100, 16, 2}, {96, 16, 2}, {10, 4, 3}, {7, 8, 4}, {1, 1, 3}, {50000, 128, 8}, {33, 5, 1}}) {
        INFO("size " << size << ", batch " << batch << ", world " << world);
        const ShardPlan first(size, batch, world, 0);
        std::vector<int> uses(static_cast<std::size_t>(first.padded_size()), 0);
        for (int64_t step = 0; step < first.steps(); ++step) {
            int64_t next = step * batch * world;
            for (int rank = 0; rank < world; ++rank) {
                const Shard shard = ShardPlan(size, batch, world, rank).shard(step);
                CHECK(shard.first == next);
                CHECK(shard.count >= 1);
                CHECK(shard.count <= batch);
                CHECK(shard.count == first.shard(step).count);  // every rank trains on as many records
                for (int64_t p = shard.first; p < shard.first + shard.count; ++p) ++uses.at(static_cast<std::size_t>(p));
                next += shard.count;
            }
        }
        for (int count : uses) CHECK(count == 1);  // every position once, the padding included
        CHECK(first.padded_size() >= size);
        CHECK(first.padded_size() < size + world);  // at most world - 1 records repeated
        // The combined batch's steps: one process with world × batch records per step takes the same records.
        const ShardPlan combined(size, batch * world, 1, 0);
        if (first.padded_size() == size) {
            REQUIRE(combined.steps() == first.steps());
            for (int64_t step = 0; step < first.steps(); ++step) {
                CHECK(combined.shard(step).first == first.shard(step).first);
                CHECK(combined.shard(step).count == first.shard(step).count * world);
            }
        }
    }
}

TEST_CASE("one process's shard plan is plain batching", "[data_parallel]") {
    const ShardPlan plan(100, 32, 1, 0);
    REQUIRE(plan.steps() == 4);
    CHECK(plan.shard(0).first == 0);
    CHECK(plan.shard(3).first == 96);
    CHECK(plan.shard(3).count == 4);
    CHECK(plan.padded_size() == 100);
}

TEST_CASE("a shard plan pads the order from its start", "[data_parallel]") {
    const ShardPlan plan(5, 2, 2, 1);  // step 0: 4 records; step 1: 1 left, 1 per rank, one repeated
    REQUIRE(plan.padded_size() == 6);
    CHECK(plan.pad({4, 3, 2, 1, 0}) == std::vector<int64_t>{4, 3, 2, 1, 0, 4});
    CHECK(plan.shard(1).first == 5);
    CHECK_THROWS_AS(plan.pad({1, 2}), Error);
    CHECK_THROWS_AS(plan.shard(2), Error);
}

using Env = std::map<std::string, std::string>;

// Sets environment variables for one scope and restores what was there.
class ScopedEnvironment {
  public:
    explicit ScopedEnvironment(const std::map<std::string, std::string>& values) {
        for (const char* name : {"OMPI_COMM_WORLD_SIZE", "OMPI_COMM_WORLD_RANK", "OMPI_COMM_WORLD_LOCAL_RANK",
                                 "PMI_SIZE", "PMI_RANK", "MPI_LOCALRANKID", "RANK", "WORLD_SIZE", "LOCAL_RANK",
                                 "MASTER_ADDR", "MASTER_PORT"}) {
            const char* old = std::getenv(name);
            if (old != nullptr) saved_[name] = old;
            ::unsetenv(name);
        }
        for (const auto& [name, value] : values) ::setenv(name.c_str(), value.c_str(), 1);
    }
    ~ScopedEnvironment() {
        for (const char* name : {"OMPI_COMM_WORLD_SIZE", "OMPI_COMM_WORLD_RANK", "OMPI_COMM_WORLD_LOCAL_RANK",
                                 "PMI_SIZE", "PMI_RANK", "MPI_LOCALRANKID", "RANK", "WORLD_SIZE", "LOCAL_RANK",
                                 "MASTER_ADDR", "MASTER_PORT"}) {
            ::unsetenv(name);
        }
        for (const auto& [name, value] : saved_) ::setenv(name.c_str(), value.c_str(), 1);
    }

  private:
    std::map<std::string, std::string> saved_;
};

TEST_CASE("the launch is read from mpirun's or torchrun's variables", "[data_parallel]") {
    {
        const ScopedEnvironment env(Env{});
        const dist::LaunchInfo launch = dist::detect_launch();
        CHECK(launch.launcher == "single process");
        CHECK(launch.world_size == 1);
    }
    {
        const ScopedEnvironment env(Env{{"OMPI_COMM_WORLD_SIZE", "4"}, {"OMPI_COMM_WORLD_RANK", "3"},
                                     {"OMPI_COMM_WORLD_LOCAL_RANK", "1"}});
        const dist::LaunchInfo launch = dist::detect_launch();
        CHECK(launch.launcher == "mpirun");
        CHECK(launch.world_size == 4);
        CHECK(launch.rank == 3);
        CHECK(launch.local_rank == 1);
    }
    {
        const ScopedEnvironment env(Env{{"WORLD_SIZE", "2"}, {"RANK", "1"}, {"LOCAL_RANK", "1"},
                                     {"MASTER_ADDR", "10.0.0.1"}, {"MASTER_PORT", "29500"}});
        const dist::LaunchInfo launch = dist::detect_launch();
        CHECK(launch.launcher == "torchrun");
        CHECK(launch.rank == 1);
        CHECK(launch.master_address == "10.0.0.1:29500");
    }
    {
        const ScopedEnvironment env(Env{{"WORLD_SIZE", "2"}, {"RANK", "2"}});
        CHECK_THROWS_WITH(dist::detect_launch(), Catch::Contains("rank 2 but world size 2"));
    }
    {
        const ScopedEnvironment env(Env{{"WORLD_SIZE", "two"}, {"RANK", "0"}});
        CHECK_THROWS_WITH(dist::detect_launch(), Catch::Contains("WORLD_SIZE=two"));
    }
    {
        const ScopedEnvironment env(Env{{"RANK", "0"}});
        CHECK_THROWS_WITH(dist::detect_launch(), Catch::Contains("WORLD_SIZE is not"));
    }
}

TrainOptions small_run(const std::string& folder) {
    TrainOptions o = parse_train_args({"--model", "small_cnn", "--dataset", "synthetic", "--synthetic-size", "64,16",
                                       "--epochs", "1", "-b", "8", "--device", "cpu", "--threads", "1",
                                       "--output-dir", folder})
                         .options;
    return o;
}

TEST_CASE("data-parallel flags that cannot work say what to do", "[data_parallel]") {
    const test::TempDir temp;
    std::ostringstream log;
    {
        // Two processes of the same run would write the same checkpoints.
        const ScopedEnvironment env(Env{{"OMPI_COMM_WORLD_SIZE", "2"}, {"OMPI_COMM_WORLD_RANK", "0"}});
        TrainOptions o = small_run(temp.path());
        o.distributed = "off";
        TrainHooks hooks;
        hooks.launch = dist::detect_launch();
        CHECK_THROWS_WITH(run_training(o, log, hooks), Catch::Contains("--distributed off") &&
                                                            Catch::Contains("start one process"));
    }
    {
        const ScopedEnvironment env(Env{{"WORLD_SIZE", "2"}, {"RANK", "0"}});
        TrainOptions o = small_run(temp.path());
        TrainHooks hooks;
        hooks.launch = dist::detect_launch();
        CHECK_THROWS_WITH(run_training(o, log, hooks), Catch::Contains("mpirun -np 2"));
    }
    {
        const ScopedEnvironment env(Env{});
        TrainOptions o = small_run(temp.path());
        o.sync_bn = true;  // nothing to synchronize with
        CHECK_THROWS_WITH(run_training(o, log), Catch::Contains("--sync-bn"));
    }
}

}  // namespace
}  // namespace cudacnn::train
