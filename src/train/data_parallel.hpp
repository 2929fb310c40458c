// cudacnn-train's data parallelism: which communicator a run uses, and which records of every step each rank
// trains on. Every rank holds a whole replica; each step the world trains on `world × batch` consecutive records
// of the epoch's order, rank r on the r-th block of them, so that the world's step sees the same records as one
// process with the combined batch (and, since augmentation draws by position in the order, the same crops).
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "cudacnn/dist/communicator.hpp"
#include "cudacnn/graph/executor.hpp"
#include "cudacnn/train/options.hpp"

namespace cudacnn::train {

// The communicator a run uses (null: a single process), decided from --distributed, the launcher's environment
// and the backend: MPI for the CPU backends (processes started by mpirun), NCCL for the GPU. Throws Error
// saying what to do when the combination cannot work (e.g. --distributed off under a launcher that started
// several processes, or the CPU path under torchrun's variables without mpirun).
struct DataParallel {
    dist::LaunchInfo launch;
    dist::Communicator* communicator = nullptr;
    std::unique_ptr<dist::Communicator> owned;  // NCCL's; MPI's world lives for the whole process

    int rank() const { return communicator != nullptr ? communicator->rank() : 0; }
    int world_size() const { return communicator != nullptr ? communicator->world_size() : 1; }
    bool is_root() const { return rank() == 0; }
};
DataParallel start_data_parallel(const TrainOptions& options, const dist::LaunchInfo& launch,
                                 graph::Backend backend);

// Where one rank's records of a step lie in the epoch's (padded) order.
struct Shard {
    int64_t first = 0;  // position in the order
    int64_t count = 0;  // records: the same on every rank
};

// An epoch of `size` records in steps of up to `batch` records per rank. A last step with fewer than world × batch
// records left gives every rank ceil(left / world); the positions past the end wrap to the order's start
// (DistributedSampler's padding), so that every rank trains on as many records as the others.
class ShardPlan {
  public:
    ShardPlan(int64_t size, int64_t batch, int world_size, int rank);
    int64_t steps() const;
    Shard shard(int64_t step) const;
    int64_t padded_size() const;  // positions the steps use: size plus the padding
    // The epoch's order with the padding appended.
    std::vector<int64_t> pad(std::vector<int64_t> order) const;

  private:
    int64_t count_at(int64_t step) const;
    int64_t size_, batch_, world_, rank_;
};

// The world's totals of this rank's metrics since the last read: samples and hits summed, and each step's
// loss the mean over the ranks' (equal) batches. Unchanged for a single process.
graph::Metrics world_metrics(const DataParallel& parallel, const graph::Metrics& mine);

// Whether any rank has been asked to stop (SIGINT or SIGTERM): the world stops at the same step.
bool world_interrupted(const DataParallel& parallel, bool mine);

}  // namespace cudacnn::train
