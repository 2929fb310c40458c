// IEEE half (F16) and bfloat16 (BF16) as 2-byte storage for floats: exact decoding, and encoding with
// round-to-nearest-even that keeps ±0, subnormals, ±Inf and NaN, bit for bit as PyTorch's .half() and
// .bfloat16() do.
#pragma once

#include <cstdint>

namespace cudacnn::io {

// How a file stores float tensors: as is, or halved in size (weights to share, not checkpoints to resume).
enum class FloatStorage { f32, f16, bf16 };

// The safetensors dtype name of a storage: "F32", "F16" or "BF16".
const char* safetensors_dtype(FloatStorage storage);

std::uint16_t float_to_f16_bits(float value);  // finite values past 65504 (from 65520 up) become ±Inf
float f16_bits_to_float(std::uint16_t bits);   // exact: every half is a float
std::uint16_t float_to_bf16_bits(float value);
float bf16_bits_to_float(std::uint16_t bits);  // exact

}  // namespace cudacnn::io
