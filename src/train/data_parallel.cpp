// cudacnn-train's data parallelism (see data_parallel.hpp).
#include "src/train/data_parallel.hpp"

#include <algorithm>
#include <array>
#include <cctype>

#include <fmt/format.h>

#include "cudacnn/error.hpp"

namespace cudacnn::train {
namespace {

// NCCL's id file when --dist-id-file is not given: one per MASTER_ADDR:MASTER_PORT on this machine's /tmp
// (so it serves processes of one machine only).
std::string default_id_file(const dist::LaunchInfo& launch) {
    if (launch.master_address.empty()) return {};
    std::string name = launch.master_address;
    std::replace_if(name.begin(), name.end(), [](char c) { return !std::isalnum(static_cast<unsigned char>(c)) && c != '.'; }, '-');
    return "/tmp/cudacnn-nccl-id-" + name;
}

bool wants_parallel(const TrainOptions& o, const dist::LaunchInfo& launch) {
    if (o.distributed == "on") return true;
    if (o.distributed == "off") {
        CUDACNN_CHECK(launch.world_size == 1,
                      "--distributed off: but {} started {} processes, which would each train the same run and "
                      "write the same checkpoints; start one process, or leave --distributed at auto",
                      launch.launcher, launch.world_size);
        return false;
    }
    return launch.world_size > 1;  // auto
}

}  // namespace

DataParallel start_data_parallel(const TrainOptions& o, const dist::LaunchInfo& launch, graph::Backend backend) {
    DataParallel parallel;
    parallel.launch = launch;
    if (!wants_parallel(o, launch)) return parallel;
    if (backend == graph::Backend::gpu) {
        // NCCL; without it in this build (always in the emu flavour), MPI through host memory under mpirun.
        const bool staged = !dist::nccl_built() && dist::mpi_built() && launch.launcher != "torchrun";
        const std::string id_file = o.dist_id_file.empty() ? default_id_file(launch) : o.dist_id_file;
        parallel.owned = staged ? dist::make_mpi_staged_communicator() : dist::make_nccl_communicator(launch, id_file);
        parallel.communicator = parallel.owned.get();
    } else {
        CUDACNN_CHECK(launch.launcher != "torchrun" || launch.world_size == 1,
                      "--distributed: the CPU path trains across processes with MPI, but these {} processes were "
                      "started with torchrun's variables (RANK, WORLD_SIZE); start them with mpirun -np {} instead",
                      launch.world_size, launch.world_size);
        parallel.communicator = &dist::mpi_world();
    }
    CUDACNN_CHECK(parallel.communicator->world_size() == launch.world_size &&
                      parallel.communicator->rank() == launch.rank,
                  "--distributed: the launcher ({}) said rank {} of {}, but {} says rank {} of {}; start every "
                  "process with the same launcher",
                  launch.launcher, launch.rank, launch.world_size, parallel.communicator->describe(),
                  parallel.communicator->rank(), parallel.communicator->world_size());
    return parallel;
}

ShardPlan::ShardPlan(int64_t size, int64_t batch, int world_size, int rank)
    : size_(size), batch_(batch), world_(world_size), rank_(rank) {
    CUDACNN_CHECK(size >= 1 && batch >= 1 && world_size >= 1 && rank >= 0 && rank < world_size,
                  "shard plan: {} records, batch {}, rank {} of {}", size, batch, rank, world_size);
}

int64_t ShardPlan::steps() const {
    const int64_t per_step = batch_ * world_;
    return (size_ + per_step - 1) / per_step;
}

int64_t ShardPlan::count_at(int64_t step) const {
    const int64_t left = size_ - step * batch_ * world_;
    return left >= batch_ * world_ ? batch_ : (left + world_ - 1) / world_;
}

Shard ShardPlan::shard(int64_t step) const {
    CUDACNN_CHECK(step >= 0 && step < steps(), "shard plan: step {} of {}", step, steps());
    const int64_t count = count_at(step);
    return {step * batch_ * world_ + rank_ * count, count};
}

int64_t ShardPlan::padded_size() const {
    const int64_t last = steps() - 1;
    return last * batch_ * world_ + count_at(last) * world_;
}

std::vector<int64_t> ShardPlan::pad(std::vector<int64_t> order) const {
    CUDACNN_CHECK(static_cast<int64_t>(order.size()) == size_, "shard plan: an order of {} records for {}",
                  order.size(), size_);
    const int64_t padding = padded_size() - size_;
    for (int64_t i = 0; i < padding; ++i) order.push_back(order[static_cast<std::size_t>(i % size_)]);
    return order;
}

graph::Metrics world_metrics(const DataParallel& parallel, const graph::Metrics& mine) {
    if (parallel.communicator == nullptr) return mine;
    std::array<double, 4> sums{static_cast<double>(mine.batches), static_cast<double>(mine.samples), mine.loss_sum,
                               static_cast<double>(mine.correct)};
    parallel.communicator->all_reduce_sum_host(sums.data(), static_cast<int64_t>(sums.size()));
    const double world = parallel.world_size();
    graph::Metrics total;
    total.batches = static_cast<int64_t>(sums[0] / world + 0.5);  // every rank ran the same steps
    total.samples = static_cast<int64_t>(sums[1] + 0.5);
    total.loss_sum = sums[2] / world;
    total.correct = static_cast<int64_t>(sums[3] + 0.5);
    return total;
}

bool world_interrupted(const DataParallel& parallel, bool mine) {
    if (parallel.communicator == nullptr) return mine;
    double stop = mine ? 1.0 : 0.0;
    parallel.communicator->all_reduce_sum_host(&stop, 1);
    return stop > 0.0;
}

}  // namespace cudacnn::train
