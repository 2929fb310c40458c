// Puts a dataset's batches into the executor: on the GPU from a copy of the dataset in device memory, on the
// CPU through the host pipeline.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "cuda/batch_assembly.hpp"
#include "cudacnn/data/augment.hpp"
#include "cudacnn/data/dataset.hpp"
#include "cudacnn/device.hpp"
#include "cudacnn/graph/executor.hpp"

namespace cudacnn::train {

// With the GPU backend the dataset's uint8 images and labels are uploaded once, an order once per set_order(),
// and each batch is gathered, augmented and normalized on the device straight into the executor's input on its
// stream: a training step then makes no host → device copy. With the CPU backend each batch is made by the
// CPU reference and given to Executor::set_batch. Both give the same floats (bit for bit for the fused
// crop+flip form, within the augmentation parity tolerance otherwise).
class BatchFeeder {
  public:
    // `transform`: the training transform, normalization included (data::with_normalization), used when
    // feed() augments; it must give images of the dataset's shape (an Error names the spec otherwise). The
    // fused crop+flip form (data::fused_crop_flip) runs as one pass (data::assemble_batch /
    // gpu::assemble_batch), any other spec op by op (data::augment_batch / gpu::augment_batch). Without
    // augmentation a batch is ToTensor + `normalization`.
    BatchFeeder(const data::Dataset& dataset, graph::Executor& executor, const data::Normalization& normalization,
                data::AugmentSpec transform = {});

    bool on_device() const { return on_device_; }
    // One line for the start of a run: where batches are made and what is done to them.
    std::string describe() const;
    // The records of the coming batches, in order: an epoch's order, or 0..size-1.
    void set_order(std::vector<int64_t> order);
    // Makes order[first .. first + count) the executor's batch, through the training transform when `augment`
    // is set, with the randomness of (seed, epoch, position first + i) as augment.hpp describes.
    void feed(int64_t first, int64_t count, bool augment, uint64_t seed, int64_t epoch);
    // The labels of order[first .. first + count), on the host (for a confusion matrix).
    std::vector<int64_t> labels(int64_t first, int64_t count) const;

  private:
    void feed_fused(int64_t first, int64_t count, const data::Augmentation* augmentation,
                    const data::Normalization& normalization, uint64_t seed, int64_t epoch);
    void feed_spec(int64_t first, int64_t count, uint64_t seed, int64_t epoch);
    gpu::DeviceImages device_images() const;  // the dataset's copy in device memory (on_device_ only)

    const data::Dataset& dataset_;
    graph::Executor& executor_;
    data::Normalization normalization_;
    data::AugmentSpec transform_;
    bool fused_ = false;  // transform_ has the fused crop+flip form
    data::FusedCropFlip fused_form_;
    bool on_device_;
    std::vector<int64_t> order_;
    DeviceBuffer images_, labels_, device_order_, scratch_;  // on_device_ only
    std::vector<float> host_x_;                              // !on_device_ only
    std::vector<int64_t> host_labels_;
};

}  // namespace cudacnn::train
