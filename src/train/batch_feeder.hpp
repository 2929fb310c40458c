// Puts a dataset's batches into the executor: on the GPU from a copy of the dataset in device memory, on the
// CPU through the host pipeline.
#pragma once

#include <cstdint>
#include <vector>

#include "cudacnn/data/dataset.hpp"
#include "cudacnn/device.hpp"
#include "cudacnn/graph/executor.hpp"

namespace cudacnn::train {

// With the GPU backend the dataset's uint8 images and labels are uploaded once, an order once per set_order(),
// and each batch is gathered, augmented and normalized by gpu::assemble_batch straight into the executor's
// input on its stream: a training step then makes no host → device copy. With the CPU backend each batch
// goes through data::assemble_batch and Executor::set_batch. Both give the same floats, bit for bit.
class BatchFeeder {
  public:
    BatchFeeder(const data::Dataset& dataset, graph::Executor& executor, const data::Normalization& normalization);

    bool on_device() const { return on_device_; }
    // The records of the coming batches, in order: an epoch's order, or 0..size-1.
    void set_order(std::vector<int64_t> order);
    // Makes order[first .. first + count) the executor's batch (augmented when `augmentation` is set, with the
    // randomness of (seed, epoch, first + i) as data::assemble_batch describes).
    void feed(int64_t first, int64_t count, const data::Augmentation* augmentation, uint64_t seed, int64_t epoch);
    // The labels of order[first .. first + count), on the host (for a confusion matrix).
    std::vector<int64_t> labels(int64_t first, int64_t count) const;

  private:
    const data::Dataset& dataset_;
    graph::Executor& executor_;
    data::Normalization normalization_;
    bool on_device_;
    std::vector<int64_t> order_;
    DeviceBuffer images_, labels_, device_order_;  // on_device_ only
    std::vector<float> host_x_;                    // !on_device_ only
    std::vector<int64_t> host_labels_;
};

}  // namespace cudacnn::train
