// The training pipeline's batch on the device: a dataset kept on the GPU as uint8, gathered by an epoch's
// order, cropped, flipped and normalized straight into the executor's input, so that a training step needs no
// host → device copy at all.
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>

#include "cudacnn/data/dataset.hpp"

namespace cudacnn::gpu {

// A dataset's records in device memory: images (size, channels, height, width) uint8 in the Dataset's layout,
// labels (size) int64.
struct DeviceImages {
    const uint8_t* images = nullptr;
    const int64_t* labels = nullptr;
    int64_t size = 0, channels = 3, height = 32, width = 32;
};

// Exactly data::assemble_batch (include/cudacnn/data/dataset.hpp) on the device, bit for bit: the same
// Philox draw per record (seed, kAugmentStream + epoch, first_position + i) for the crop window and the flip,
// and the same float32 ToTensor + Normalize, (float(u8) / 255.0f − mean[c]) / std[c], with IEEE division.
// indices (count) are device memory (a slice of the epoch's order), each in [0, size) — the order comes from
// data::epoch_order, so they are not checked on the device. x (count, C, H, W) and labels (count) are written
// on the stream. One thread per output value, grid-stride.
void assemble_batch(const DeviceImages& dataset, const int64_t* indices, int64_t count,
                    const data::Augmentation* augmentation /* nullptr: none */,
                    const data::Normalization& normalization, uint64_t seed, int64_t epoch, int64_t first_position,
                    float* x, int64_t* labels, cudaStream_t stream);

}  // namespace cudacnn::gpu
