// The augmentation pipeline on the device: any data::AugmentSpec (include/cudacnn/data/augment.hpp) run on
// a batch of a dataset kept on the GPU, one kernel per op with a block per image, writing the normalized
// float batch straight into the executor's input. The same per-sample draws and per-pixel rules as the CPU
// reference (src/data/augment_rules.hpp), so both give the same values (tests/ops/augment_parity_test.cpp).
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>

#include "cuda/batch_assembly.hpp"
#include "cudacnn/data/augment.hpp"

namespace cudacnn::gpu {

// Floats of device scratch augment_batch needs for `count` images of `input` through `spec`: two buffers of
// the largest intermediate batch (the ops ping-pong between them).
int64_t augment_scratch_floats(const data::AugmentSpec& spec, const data::ImageShape& input, int64_t count);

// data::augment_batch on the device: records indices[0..count) of `dataset` (device memory; each index in
// [0, size), from data::epoch_order, so not checked on the device) become ToTensor floats, then go through
// the ops in order, sample i with position first_position + i of `epoch`; the last op writes x (count, the
// shape after the spec), labels (count) get the records' labels. The spec is checked first
// (data::augment_shapes: an Error names the op). An empty spec writes the ToTensor floats. Work is queued on
// `stream`; scratch holds augment_scratch_floats floats.
void augment_batch(const DeviceImages& dataset, const int64_t* indices, int64_t count, const data::AugmentSpec& spec,
                   uint64_t seed, int64_t epoch, int64_t first_position, float* scratch, float* x, int64_t* labels,
                   cudaStream_t stream);

}  // namespace cudacnn::gpu
