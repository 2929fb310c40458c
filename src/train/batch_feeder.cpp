// BatchFeeder: the device pipeline (cuda/batch_assembly) or the host one (data::assemble_batch) per backend.
#include "src/train/batch_feeder.hpp"

#include <utility>

#include "cuda/batch_assembly.hpp"
#include "cudacnn/error.hpp"

namespace cudacnn::train {

BatchFeeder::BatchFeeder(const data::Dataset& dataset, graph::Executor& executor,
                         const data::Normalization& normalization)
    : dataset_(dataset),
      executor_(executor),
      normalization_(normalization),
      on_device_(executor.options().backend == graph::Backend::gpu) {
    if (!on_device_) {
        host_x_.resize(static_cast<std::size_t>(executor.options().batch_size * dataset.image_bytes()));
        host_labels_.resize(static_cast<std::size_t>(executor.options().batch_size));
        return;
    }
    const auto stream = static_cast<cudaStream_t>(executor.input_buffers().stream);
    images_ = DeviceBuffer(dataset.images.size());
    labels_ = DeviceBuffer(sizeof(int64_t) * dataset.labels.size());
    copy_to_device(images_.data(), dataset.images.data(), images_.bytes(), stream);
    copy_to_device(labels_.data(), dataset.labels.data(), labels_.bytes(), stream);
}

void BatchFeeder::set_order(std::vector<int64_t> order) {
    for (int64_t index : order) {
        CUDACNN_CHECK(index >= 0 && index < dataset_.size(), "batch feeder: record {} of {}, which has {} records",
                      index, dataset_.name, dataset_.size());
    }
    order_ = std::move(order);
    if (!on_device_) return;
    const auto stream = static_cast<cudaStream_t>(executor_.input_buffers().stream);
    if (device_order_.bytes() < sizeof(int64_t) * order_.size()) device_order_ = DeviceBuffer(sizeof(int64_t) * order_.size());
    copy_to_device(device_order_.data(), order_.data(), sizeof(int64_t) * order_.size(), stream);
}

void BatchFeeder::feed(int64_t first, int64_t count, const data::Augmentation* augmentation, uint64_t seed,
                       int64_t epoch) {
    CUDACNN_CHECK(first >= 0 && count >= 1 && first + count <= static_cast<int64_t>(order_.size()),
                  "batch feeder: records {} to {} of an order of {}", first, first + count - 1, order_.size());
    if (!on_device_) {
        data::assemble_batch(dataset_, order_.data() + first, count, augmentation, normalization_, seed, epoch, first,
                             host_x_.data(), host_labels_.data());
        executor_.set_batch(host_x_.data(), host_labels_.data(), count);
        return;
    }
    const graph::Executor::InputBuffers input = executor_.input_buffers();
    const gpu::DeviceImages images{images_.data_as<const uint8_t>(), labels_.data_as<const int64_t>(), dataset_.size(),
                                   dataset_.channels, dataset_.height, dataset_.width};
    gpu::assemble_batch(images, device_order_.data_as<const int64_t>() + first, count, augmentation, normalization_,
                        seed, epoch, first, input.images, input.labels, static_cast<cudaStream_t>(input.stream));
    executor_.use_input(count);
}

std::vector<int64_t> BatchFeeder::labels(int64_t first, int64_t count) const {
    std::vector<int64_t> out(static_cast<std::size_t>(count));
    for (int64_t i = 0; i < count; ++i) out[i] = dataset_.labels[order_.at(first + i)];
    return out;
}

}  // namespace cudacnn::train
