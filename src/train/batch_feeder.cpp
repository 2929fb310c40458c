// BatchFeeder: the device pipeline (cuda/batch_assembly, cuda/augment) or the host one (data::assemble_batch,
// data::augment_batch) per backend.
#include "src/train/batch_feeder.hpp"

#include <utility>

#include <fmt/format.h>

#include "cuda/augment.hpp"
#include "cuda/batch_assembly.hpp"
#include "cudacnn/error.hpp"

namespace cudacnn::train {

namespace {

data::ImageShape shape_of(const data::Dataset& dataset) {
    return data::ImageShape{dataset.channels, dataset.height, dataset.width};
}

}  // namespace

BatchFeeder::BatchFeeder(const data::Dataset& dataset, graph::Executor& executor,
                         const data::Normalization& normalization, data::AugmentSpec transform)
    : dataset_(dataset),
      executor_(executor),
      normalization_(normalization),
      transform_(std::move(transform)),
      on_device_(executor.options().backend == graph::Backend::gpu) {
    const data::ImageShape shape = shape_of(dataset);
    if (!transform_.empty()) {
        const data::ImageShape out = data::augment_shapes(transform_, shape).back();
        // The crop ops make square images: a fix for a non-square input keeps the size instead.
        const std::string fix = shape.height == shape.width
                                    ? fmt::format("end the spec with a crop, centercrop or resizedcrop to {}", shape.height)
                                    : std::string("leave out the ops that change the size (every crop op makes a square)");
        CUDACNN_CHECK(out == shape,
                      "augmentation \"{}\" turns the {}x{}x{} images of {} into {}x{}x{} images, but they must stay "
                      "{}x{}x{} (the model's input); {}",
                      data::format_augment_spec(transform_), shape.channels, shape.height, shape.width, dataset.name,
                      out.channels, out.height, out.width, shape.channels, shape.height, shape.width, fix);
        fused_ = data::fused_crop_flip(transform_, shape, &fused_form_);
    }
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
    if (!transform_.empty() && !fused_) {
        const int64_t floats = gpu::augment_scratch_floats(transform_, shape, executor.options().batch_size);
        scratch_ = DeviceBuffer(sizeof(float) * static_cast<std::size_t>(floats));
    }
}

std::string BatchFeeder::describe() const {
    const std::string where = on_device_ ? "on the device (both sets kept there as uint8, copied once)"
                                         : "on the host (the CPU reference)";
    if (transform_.empty()) return fmt::format("data: batches are normalized {}", where);
    return fmt::format("data: training batches go through \"{}\" {}{}", data::format_augment_spec(transform_), where,
                       fused_ ? ", in one fused pass" : ", a kernel per op");
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

void BatchFeeder::feed(int64_t first, int64_t count, bool augment, uint64_t seed, int64_t epoch) {
    CUDACNN_CHECK(first >= 0 && count >= 1 && first + count <= static_cast<int64_t>(order_.size()),
                  "batch feeder: records {} to {} of an order of {}", first, first + count - 1, order_.size());
    CUDACNN_CHECK(count <= executor_.options().batch_size, "batch feeder: a batch of {} records; the executor takes {}",
                  count, executor_.options().batch_size);
    CUDACNN_CHECK(!augment || !transform_.empty(), "batch feeder: asked to augment {} without a training transform",
                  dataset_.name);
    if (!augment) return feed_fused(first, count, nullptr, normalization_, seed, epoch);
    if (!fused_) return feed_spec(first, count, seed, epoch);
    const data::Augmentation augmentation{fused_form_.crop_padding, fused_form_.horizontal_flip};
    feed_fused(first, count, &augmentation, data::Normalization{fused_form_.mean, fused_form_.stddev}, seed, epoch);
}

void BatchFeeder::feed_fused(int64_t first, int64_t count, const data::Augmentation* augmentation,
                             const data::Normalization& normalization, uint64_t seed, int64_t epoch) {
    if (!on_device_) {
        data::assemble_batch(dataset_, order_.data() + first, count, augmentation, normalization, seed, epoch, first,
                             host_x_.data(), host_labels_.data());
        executor_.set_batch(host_x_.data(), host_labels_.data(), count);
        return;
    }
    const graph::Executor::InputBuffers input = executor_.input_buffers();
    gpu::assemble_batch(device_images(), device_order_.data_as<const int64_t>() + first, count, augmentation, normalization,
                        seed, epoch, first, input.images, input.labels, static_cast<cudaStream_t>(input.stream));
    executor_.use_input(count);
}

void BatchFeeder::feed_spec(int64_t first, int64_t count, uint64_t seed, int64_t epoch) {
    if (!on_device_) {
        data::augment_batch(dataset_.images.data(), dataset_.labels.data(), shape_of(dataset_), order_.data() + first,
                            count, transform_, seed, epoch, first, host_x_.data(), host_labels_.data());
        executor_.set_batch(host_x_.data(), host_labels_.data(), count);
        return;
    }
    const graph::Executor::InputBuffers input = executor_.input_buffers();
    gpu::augment_batch(device_images(), device_order_.data_as<const int64_t>() + first, count, transform_, seed, epoch, first,
                       scratch_.data_as<float>(), input.images, input.labels, static_cast<cudaStream_t>(input.stream));
    executor_.use_input(count);
}

gpu::DeviceImages BatchFeeder::device_images() const {
    return gpu::DeviceImages{images_.data_as<const uint8_t>(), labels_.data_as<const int64_t>(), dataset_.size(),
                             dataset_.channels, dataset_.height, dataset_.width};
}

std::vector<int64_t> BatchFeeder::labels(int64_t first, int64_t count) const {
    std::vector<int64_t> out(static_cast<std::size_t>(count));
    for (int64_t i = 0; i < count; ++i) out[i] = dataset_.labels[order_.at(first + i)];
    return out;
}

}  // namespace cudacnn::train
