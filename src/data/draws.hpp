// The Philox draws of the data pipeline (private to src/data and its device twin cuda/batch_assembly): a stream
// from a base and an offset, the k-th 32-bit draw of a stream, an integer below n from one draw, and the
// per-record rules of assemble_batch (crop window and flip, ToTensor + Normalize), callable on the device.
#pragma once

#include <cstdint>

#include "cudacnn/error.hpp"
#include "cudacnn/philox.hpp"

namespace cudacnn::data::detail {

// base + offset, where offset (an epoch or a record index) must stay below 2^32 so that the streams of
// dataset.hpp's bases never overlap one another.
inline uint64_t stream_at(uint64_t base, int64_t offset, const char* what) {
    CUDACNN_CHECK(offset >= 0 && offset < (int64_t{1} << 32), "data: {} {} is outside [0, 2^32)", what,
                  offset);
    return base + static_cast<uint64_t>(offset);
}

// Element k of a stream, in curand's layout (philox.hpp).
inline uint32_t draw_u32(uint64_t seed, uint64_t stream, uint64_t k) {
    return philox_draw(seed, stream, k / 4).v[k % 4];
}

// An integer in [0, n) from a 32-bit draw by multiply-shift (Lemire, without the rejection step): the bias is
// below n / 2^32, far under anything a dataset of millions can show, and it needs exactly one draw.
CUDACNN_HOST_DEVICE inline uint32_t below(uint32_t u, uint64_t n) {
    return static_cast<uint32_t>((static_cast<uint64_t>(u) * n) >> 32);
}

// Where a window's pixels come from: window pixel (y, x) reads source (y + dy, x' + dx) with x' = W-1-x when
// flipped, x otherwise; outside the source it reads the padding value 0.
struct CropWindow {
    int64_t dy = 0, dx = 0;
    bool flip = false;
};

// assemble_batch's RandomCrop(padding) + RandomHorizontalFlip draw for the record at `position` of the epoch
// (the rule is in dataset.hpp): top and left in [0, 2·padding] from words 0 and 1, the flip from word 2.
CUDACNN_HOST_DEVICE inline CropWindow draw_crop_window(uint64_t seed, uint64_t stream, int64_t position,
                                                       int64_t padding, bool horizontal_flip) {
    const PhiloxBlock b = philox_draw(seed, stream, static_cast<uint64_t>(position));
    const uint64_t choices = static_cast<uint64_t>(2 * padding + 1);
    CropWindow w;
    w.dy = static_cast<int64_t>(below(b.v[0], choices)) - padding;
    w.dx = static_cast<int64_t>(below(b.v[1], choices)) - padding;
    w.flip = horizontal_flip && uint32_to_unit_float(b.v[2]) < 0.5f;
    return w;
}

// torchvision's ToTensor + Normalize of one byte, in its float32 operations (no fused multiply-add possible).
CUDACNN_HOST_DEVICE inline float normalize_byte(uint8_t u, float mean, float stddev) {
    const float v = static_cast<float>(u) / 255.0f;
    return (v - mean) / stddev;
}

}  // namespace cudacnn::data::detail
