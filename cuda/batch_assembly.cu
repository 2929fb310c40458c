// The device batch pipeline: gather, random crop with zero padding, horizontal flip and normalize in one kernel.
#include "cuda/batch_assembly.hpp"

#include "cuda/elementwise.cuh"
#include "cuda/launch.cuh"
#include "cudacnn/error.hpp"
#include "cudacnn/philox.hpp"
#include "src/data/draws.hpp"

namespace cudacnn::gpu {
namespace kernels {

struct CropFlip {
    bool active;    // false: no augmentation (the test transform)
    int64_t padding;
    bool flip;      // RandomHorizontalFlip on
    uint64_t seed, stream;
    int64_t first_position;
};

struct Normalize {
    float mean[3], stddev[3];
};

// One thread per value of x (count, C, H, W); each draws its record's window (the same draw for all of them).
__global__ void assemble_batch_kernel(const uint8_t* images, const int64_t* dataset_labels, const int64_t* indices,
                                      int64_t count, int64_t channels, int64_t height, int64_t width, CropFlip crop,
                                      Normalize normalize, float* x, int64_t* labels) {
    const int64_t plane = height * width, record = channels * plane, total = count * record;
    const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
    for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < total; i += stride) {
        const int64_t n = i / record, c = (i / plane) % channels, y = (i / width) % height, col = i % width;
        const int64_t index = indices[n];
        if (i % record == 0) labels[n] = dataset_labels[index];
        const data::detail::CropWindow w =
            crop.active ? data::detail::draw_crop_window(crop.seed, crop.stream, crop.first_position + n, crop.padding,
                                                         crop.flip)
                        : data::detail::CropWindow{};
        const int64_t sy = y + w.dy, sx = (w.flip ? width - 1 - col : col) + w.dx;
        const bool inside = sy >= 0 && sy < height && sx >= 0 && sx < width;
        const uint8_t u = inside ? images[index * record + c * plane + sy * width + sx] : 0;
        x[i] = data::detail::normalize_byte(u, normalize.mean[c], normalize.stddev[c]);
    }
}

}  // namespace kernels

void assemble_batch(const DeviceImages& dataset, const int64_t* indices, int64_t count,
                    const data::Augmentation* augmentation, const data::Normalization& normalization, uint64_t seed,
                    int64_t epoch, int64_t first_position, float* x, int64_t* labels, cudaStream_t stream) {
    CUDACNN_CHECK(count >= 0, "gpu::assemble_batch: count {} must be >= 0", count);
    if (count == 0) return;
    CUDACNN_CHECK(dataset.images != nullptr && dataset.labels != nullptr && indices != nullptr && x != nullptr &&
                      labels != nullptr,
                  "gpu::assemble_batch: the dataset, indices, x and labels must be device pointers, not null");
    CUDACNN_CHECK(dataset.channels >= 1 && dataset.channels <= 3,
                  "gpu::assemble_batch: {} channels; the normalization covers 1 to 3", dataset.channels);
    CUDACNN_CHECK(dataset.height >= 1 && dataset.width >= 1, "gpu::assemble_batch: images of {}x{} pixels",
                  dataset.height, dataset.width);
    kernels::CropFlip crop{};
    if (augmentation != nullptr) {
        CUDACNN_CHECK(augmentation->crop_padding >= 0, "gpu::assemble_batch: crop padding {} must be >= 0",
                      augmentation->crop_padding);
        CUDACNN_CHECK(first_position >= 0, "gpu::assemble_batch: first position {} must be >= 0", first_position);
        CUDACNN_CHECK(epoch >= 0 && epoch < (int64_t{1} << 32), "gpu::assemble_batch: epoch {} is outside [0, 2^32)",
                      epoch);
        crop = {true, augmentation->crop_padding, augmentation->horizontal_flip, seed,
                data::kAugmentStream + static_cast<uint64_t>(epoch), first_position};
    }
    kernels::Normalize normalize{};
    for (int64_t c = 0; c < dataset.channels; ++c) {
        CUDACNN_CHECK(normalization.stddev[c] > 0.0f, "gpu::assemble_batch: normalization std {} of channel {} must be > 0",
                      normalization.stddev[c], c);
        normalize.mean[c] = normalization.mean[c];
        normalize.stddev[c] = normalization.stddev[c];
    }
    const int64_t total = count * dataset.channels * dataset.height * dataset.width;
    launch(kernels::assemble_batch_kernel, elementwise_grid(total), dim3(kElementwiseBlock), 0, stream, dataset.images,
           dataset.labels, indices, count, dataset.channels, dataset.height, dataset.width, crop, normalize, x, labels);
}

}  // namespace cudacnn::gpu
