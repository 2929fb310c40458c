// F16 and BF16 encoding and decoding (see include/cudacnn/io/float16.hpp). Integer arithmetic only, so the
// result does not depend on the FPU's rounding mode or flush-to-zero flags.
#include "cudacnn/io/float16.hpp"

#include <cstring>

namespace cudacnn::io {

namespace {

std::uint32_t bits_of(float value) {
    std::uint32_t bits;
    std::memcpy(&bits, &value, sizeof bits);
    return bits;
}

float float_of(std::uint32_t bits) {
    float value;
    std::memcpy(&value, &bits, sizeof value);
    return value;
}

// value >> shift rounded to nearest, ties to even (shift in [1, 31]).
std::uint32_t shift_right_rne(std::uint32_t value, int shift) {
    const std::uint32_t half = 1u << (shift - 1), rest = value & ((1u << shift) - 1);
    std::uint32_t out = value >> shift;
    if (rest > half || (rest == half && (out & 1u))) ++out;
    return out;
}

}  // namespace

const char* safetensors_dtype(FloatStorage storage) {
    switch (storage) {
        case FloatStorage::f16:
            return "F16";
        case FloatStorage::bf16:
            return "BF16";
        case FloatStorage::f32:
            break;
    }
    return "F32";
}

std::uint16_t float_to_f16_bits(float value) {
    const std::uint32_t bits = bits_of(value);
    const auto sign = static_cast<std::uint16_t>(bits >> 16 & 0x8000u);
    const std::uint32_t magnitude = bits & 0x7fffffffu;
    // NaN stays a quiet NaN with the top of its payload; Inf, and anything that rounds past 65504, is Inf.
    if (magnitude > 0x7f800000u)
        return static_cast<std::uint16_t>(sign | 0x7e00u | (magnitude >> 13 & 0x1ffu));
    if (magnitude >= 0x477ff000u) return static_cast<std::uint16_t>(sign | 0x7c00u);  // ≥ 65520
    if (magnitude >= 0x38800000u) {  // ≥ 2^-14: a normal half; rebias the exponent (127 → 15), round 13 bits
        return static_cast<std::uint16_t>(sign | shift_right_rne(magnitude - (112u << 23), 13));
    }
    // A half subnormal counts units of 2^-24. A float's mantissa m (implicit bit included) at biased exponent
    // e is m · 2^(e − 150), that is m >> (126 − e) units; past 24 bits of shift it rounds to zero.
    const int exponent = static_cast<int>(magnitude >> 23), shift = 126 - exponent;
    if (exponent == 0 || shift > 24) return sign;
    const std::uint32_t mantissa = (magnitude & 0x7fffffu) | 0x800000u;
    return static_cast<std::uint16_t>(sign | shift_right_rne(mantissa, shift));  // may round up to 2^-14
}

float f16_bits_to_float(std::uint16_t bits) {
    const std::uint32_t sign = static_cast<std::uint32_t>(bits & 0x8000u) << 16;
    const std::uint32_t exponent = bits >> 10 & 0x1fu, mantissa = bits & 0x3ffu;
    if (exponent == 0x1f) return float_of(sign | 0x7f800000u | mantissa << 13);  // Inf, NaN
    if (exponent != 0) return float_of(sign | (exponent + 112) << 23 | mantissa << 13);
    // Subnormal (or zero): mantissa · 2^-24, exact in float.
    return float_of(sign | bits_of(static_cast<float>(mantissa) * 0x1p-24f));
}

std::uint16_t float_to_bf16_bits(float value) {
    const std::uint32_t bits = bits_of(value);
    if ((bits & 0x7fffffffu) > 0x7f800000u)
        return static_cast<std::uint16_t>(bits >> 16 | 0x0040u);  // quiet NaN
    // Rounding may carry into the exponent; past the largest bf16 that gives Inf, as it should.
    return static_cast<std::uint16_t>(shift_right_rne(bits, 16));
}

float bf16_bits_to_float(std::uint16_t bits) {
    return float_of(static_cast<std::uint32_t>(bits) << 16);
}

}  // namespace cudacnn::io
