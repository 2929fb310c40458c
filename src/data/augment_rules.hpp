// The augmentation ops' rules for one sample and one pixel, host and device callable: the Philox draws of
// every op's parameters (augment.hpp documents them) and the per-pixel arithmetic of crop padding, ColorJitter,
// the warps, the resize and the noises. The CPU reference (src/data/augment_*.cpp) and the GPU kernels
// (cuda/augment.cu) both call these, so the two cannot drift apart; the parity tests check what differs
// between them: indexing, the order of the ops, the per-image reductions. Private to src/data and cuda/.
#pragma once

#include <math.h>

#include <cstdint>

#include "cudacnn/data/augment.hpp"
#include "cudacnn/philox.hpp"
#include "src/data/draws.hpp"

namespace cudacnn::data::rules {

// ---- Random parameters ----------------------------------------------------------------------------------

// The words of one sample, in the order of augment.hpp's rule.
struct SampleWords {
    uint64_t seed, stream, position;

    CUDACNN_HOST_DEVICE uint32_t operator()(int64_t j) const {
        const uint64_t block = position + (static_cast<uint64_t>(j / 4) << 32);
        return philox_draw(seed, stream, block).v[j % 4];
    }
};

CUDACNN_HOST_DEVICE inline float lerp(const Range& r, uint32_t word) {
    return r.lo + (r.hi - r.lo) * uint32_to_unit_float(word);
}

// Python's round(x) of a double: half to even (nearbyint in the default rounding mode).
CUDACNN_HOST_DEVICE inline int64_t round_half_even(double x) {
    return static_cast<int64_t>(nearbyint(x));
}

// torch.exp of a float32 tensor: exp in double, rounded once to float (the correctly rounded value, which is
// what torch's vectorized expf returns but for ties at the last bit; host and device agree on it).
CUDACNN_HOST_DEVICE inline float exp_float(float x) {
    return static_cast<float>(exp(static_cast<double>(x)));
}
CUDACNN_HOST_DEVICE inline float log_float(float x) {
    return static_cast<float>(log(static_cast<double>(x)));
}

// Permutation number n (< 24) of (0 1 2 3) in lexicographic order (the Lehmer code read digit by digit).
CUDACNN_HOST_DEVICE inline void permutation(uint32_t n, int out[4]) {
    int rest[4] = {0, 1, 2, 3};
    int left = 4;
    for (int i = 0, radix = 6; i < 4; ++i) {
        const int pick = static_cast<int>(n) / radix;
        n %= radix;
        out[i] = rest[pick];
        for (int k = pick; k + 1 < left; ++k) rest[k] = rest[k + 1];
        --left;
        radix = left > 1 ? radix / left : 1;
    }
}

// torchvision's area-and-aspect draw of RandomErasing and RandomResizedCrop, from two words: the area in
// double (Python floats), the aspect ratio as float32 exp of a float32 uniform in log space.
struct AreaAspect {
    double area, aspect;
};
CUDACNN_HOST_DEVICE inline AreaAspect draw_area_aspect(const Range& scale, const Range& ratio, double image_area,
                                                       uint32_t w_area, uint32_t w_aspect) {
    const float log_lo = log_float(ratio.lo), log_hi = log_float(ratio.hi);
    const double area = image_area * static_cast<double>(lerp(scale, w_area));
    const float aspect = exp_float(log_lo + (log_hi - log_lo) * uint32_to_unit_float(w_aspect));
    return {area, static_cast<double>(aspect)};
}

// RandomErasing.get_params with our words: 10 attempts of 4 words after the apply word.
CUDACNN_HOST_DEVICE inline void draw_erasing(const AugmentOp& op, const SampleWords& words, int64_t offset,
                                             int64_t height, int64_t width, AugmentParams& params) {
    for (int64_t a = 0; a < 10; ++a) {
        const int64_t w = offset + 1 + 4 * a;
        const AreaAspect d = draw_area_aspect(op.scale, op.ratio, static_cast<double>(height * width), words(w),
                                              words(w + 1));
        const int64_t h = round_half_even(sqrt(d.area * d.aspect));
        const int64_t v = round_half_even(sqrt(d.area / d.aspect));
        if (!(h < height && v < width)) continue;
        params.height = h;
        params.width = v;
        params.top = detail::below(words(w + 2), static_cast<uint64_t>(height - h + 1));
        params.left = detail::below(words(w + 3), static_cast<uint64_t>(width - v + 1));
        return;
    }
    params.apply = false;  // every attempt too large: torchvision returns the image unchanged
}

// RandomResizedCrop.get_params with our words: 10 attempts of 4 words, then the central fallback.
CUDACNN_HOST_DEVICE inline void draw_resized_crop(const AugmentOp& op, const SampleWords& words, int64_t offset,
                                                  int64_t height, int64_t width, AugmentParams& params) {
    for (int64_t a = 0; a < 10; ++a) {
        const int64_t k = offset + 4 * a;
        const AreaAspect d = draw_area_aspect(op.scale, op.ratio, static_cast<double>(height * width), words(k),
                                              words(k + 1));
        const int64_t w = round_half_even(sqrt(d.area * d.aspect));
        const int64_t h = round_half_even(sqrt(d.area / d.aspect));
        if (!(w > 0 && w <= width && h > 0 && h <= height)) continue;
        params.height = h;
        params.width = w;
        params.top = detail::below(words(k + 2), static_cast<uint64_t>(height - h + 1));
        params.left = detail::below(words(k + 3), static_cast<uint64_t>(width - w + 1));
        return;
    }
    const double in_ratio = static_cast<double>(width) / static_cast<double>(height);
    params.width = width;
    params.height = height;
    if (in_ratio < op.ratio.lo) {
        params.height = round_half_even(width / static_cast<double>(op.ratio.lo));
    } else if (in_ratio > op.ratio.hi) {
        params.width = round_half_even(height * static_cast<double>(op.ratio.hi));
    }
    params.top = (height - params.height) / 2;
    params.left = (width - params.width) / 2;
}

// RandomPerspective.get_params: each corner moves inwards by up to distortion_scale · half the size;
// torch.randint(lo, hi) is lo + below(word, hi - lo). Corners in torchvision's order: top-left, top-right,
// bottom-right, bottom-left, each (x, y).
CUDACNN_HOST_DEVICE inline void draw_perspective_corners(const AugmentOp& op, const SampleWords& words,
                                                         int64_t offset, int64_t height, int64_t width,
                                                         AugmentParams& params) {
    // int(distortion_scale * half_width) of Python floats: the product in double.
    const int64_t dx = static_cast<int64_t>(static_cast<double>(op.distortion_scale) * static_cast<double>(width / 2));
    const int64_t dy = static_cast<int64_t>(static_cast<double>(op.distortion_scale) * static_cast<double>(height / 2));
    auto randint = [&](int64_t k, int64_t lo, int64_t hi) {
        return lo + static_cast<int64_t>(detail::below(words(offset + 1 + k), static_cast<uint64_t>(hi - lo)));
    };
    const int64_t corners[8] = {randint(0, 0, dx + 1),          randint(1, 0, dy + 1),
                                randint(2, width - dx - 1, width), randint(3, 0, dy + 1),
                                randint(4, width - dx - 1, width), randint(5, height - dy - 1, height),
                                randint(6, 0, dx + 1),          randint(7, height - dy - 1, height)};
    for (int i = 0; i < 8; ++i) params.corners[i] = corners[i];
}

// Op `op`'s parameters for a sample whose words are `words`, its first word at `offset`, for an input of
// height × width. No argument checks here (they need the host): draw_augment_params and the GPU plan make
// them first.
CUDACNN_HOST_DEVICE inline AugmentParams draw_op(const AugmentOp& op, const SampleWords& words, int64_t offset,
                                                 int64_t height, int64_t width) {
    AugmentParams params;
    switch (op.kind) {
        case AugmentKind::crop: {
            const int64_t rows = height + 2 * op.padding - op.size + 1, cols = width + 2 * op.padding - op.size + 1;
            params.top = detail::below(words(offset), static_cast<uint64_t>(rows));
            params.left = detail::below(words(offset + 1), static_cast<uint64_t>(cols));
            break;
        }
        case AugmentKind::hflip:
        case AugmentKind::vflip:
        case AugmentKind::grayscale:
            params.apply = uint32_to_unit_float(words(offset)) < op.p;
            break;
        case AugmentKind::jitter: {
            params.factors[0] = lerp(op.brightness, words(offset));
            params.factors[1] = lerp(op.contrast, words(offset + 1));
            params.factors[2] = lerp(op.saturation, words(offset + 2));
            params.factors[3] = lerp(op.hue, words(offset + 3));
            int order[4];
            permutation(detail::below(words(offset + 4), 24), order);
            for (int i = 0; i < 4; ++i) params.order[i] = order[i];
            break;
        }
        case AugmentKind::erasing:
            params.apply = uint32_to_unit_float(words(offset)) < op.p;
            if (params.apply) draw_erasing(op, words, offset, height, width, params);
            break;
        case AugmentKind::affine: {
            params.angle = lerp(op.degrees, words(offset));
            // RandomAffine.get_params: a uniform shift of up to translate · size pixels, rounded half to even.
            const float dx = static_cast<float>(op.translate[0] * static_cast<double>(width)),
                        dy = static_cast<float>(op.translate[1] * static_cast<double>(height));
            params.translate_x = round_half_even(lerp(Range{-dx, dx}, words(offset + 1)));
            params.translate_y = round_half_even(lerp(Range{-dy, dy}, words(offset + 2)));
            params.scale = lerp(op.affine_scale, words(offset + 3));
            params.shear = lerp(op.shear, words(offset + 4));
            break;
        }
        case AugmentKind::rotation:
            params.angle = lerp(op.degrees, words(offset));
            break;
        case AugmentKind::perspective:
            params.apply = uint32_to_unit_float(words(offset)) < op.p;
            draw_perspective_corners(op, words, offset, height, width, params);
            break;
        case AugmentKind::centercrop:
            // CenterCrop: int(round((H - size) / 2.0)), Python's round.
            params.top = round_half_even((height - op.size) / 2.0);
            params.left = round_half_even((width - op.size) / 2.0);
            break;
        case AugmentKind::resizedcrop:
            draw_resized_crop(op, words, offset, height, width, params);
            break;
        case AugmentKind::noise:
        case AugmentKind::saltpepper:
        case AugmentKind::normalize:
            break;
    }
    return params;
}

// The per-value sequence of noise, saltpepper and erasing's random value: value e of op `op_index` of the
// sample (augment.hpp's pixel(e)).
struct PixelWords {
    uint64_t seed, stream, base;

    CUDACNN_HOST_DEVICE PixelWords(uint64_t seed_, uint64_t epoch_stream, uint64_t position, int64_t op_index)
        : seed(seed_), stream(epoch_stream), base((position << 32) + (static_cast<uint64_t>(op_index) << 24)) {}
    CUDACNN_HOST_DEVICE uint32_t operator()(int64_t e) const {
        return philox_draw(seed, stream, base + static_cast<uint64_t>(e / 4)).v[e % 4];
    }
};

// A standard normal value from draws 2e and 2e + 1 (Box-Muller, float32).
CUDACNN_HOST_DEVICE inline float standard_normal(const PixelWords& words, int64_t e) {
    const float a = uint32_to_unit_float(words(2 * e)), b = uint32_to_unit_float(words(2 * e + 1));
    const float two_pi = 6.2831853071795864769f;
    return sqrtf(-2.0f * logf(1.0f - a)) * cosf(two_pi * b);
}

// Ops whose values draw from the per-value sequence (two draws per value at most: the image may have up to
// 2^25 values).
CUDACNN_HOST_DEVICE inline bool uses_pixel_draws(const AugmentOp& op) {
    return op.kind == AugmentKind::noise || op.kind == AugmentKind::saltpepper ||
           (op.kind == AugmentKind::erasing && op.random_value);
}

// ---- Pixels ---------------------------------------------------------------------------------------------

// ColorJitter's adjustment k (0 brightness, 1 contrast, 2 saturation, 3 hue) is skipped when its range is the
// identity, as torchvision skips a None parameter.
CUDACNN_HOST_DEVICE inline bool jitter_active(const AugmentOp& op, int k) {
    switch (k) {
        case 0:
            return !(op.brightness.lo == 1 && op.brightness.hi == 1);
        case 1:
            return !(op.contrast.lo == 1 && op.contrast.hi == 1);
        case 2:
            return !(op.saturation.lo == 1 && op.saturation.hi == 1);
        default:
            return !(op.hue.lo == 0 && op.hue.hi == 0);
    }
}

// Salt (1) or pepper (0) for value e, or the value unchanged: r = u(pixel(e)), r < amount · salt_vs_pepper
// is salt, else r < amount pepper.
CUDACNN_HOST_DEVICE inline float salt_pepper(const AugmentOp& op, const PixelWords& words, int64_t e, float v) {
    const float r = uint32_to_unit_float(words(e));
    if (r < op.amount * op.salt_vs_pepper) return 1.0f;
    return r < op.amount ? 0.0f : v;
}

// Normalize of channel c: (v - mean) / std in float32.
CUDACNN_HOST_DEVICE inline float normalize(float v, const AugmentOp& op, int64_t c) {
    return (v - op.norm_mean[c]) / op.norm_std[c];
}

CUDACNN_HOST_DEVICE inline float clamp01(float v) {
    return v < 0.0f ? 0.0f : (v > 1.0f ? 1.0f : v);
}

// Source index of padded index i (0 <= i < n + 2p) along an axis of n pixels, or -1 for the fill value.
CUDACNN_HOST_DEVICE inline int64_t pad_source(int64_t i, int64_t n, int64_t padding, PadMode mode) {
    const int64_t s = i - padding;
    if (s >= 0 && s < n) return s;
    switch (mode) {
        case PadMode::constant:
            return -1;
        case PadMode::edge:
            return s < 0 ? 0 : n - 1;
        case PadMode::reflect:
            return s < 0 ? -s : 2 * (n - 1) - s;
        case PadMode::symmetric:
            return s < 0 ? -s - 1 : 2 * n - 1 - s;
    }
    return -1;
}

// A fill value per channel (one value given: every channel).
CUDACNN_HOST_DEVICE inline float channel_fill(const std::array<float, 3>& fill, int64_t c) {
    return fill[c < 2 ? c : 2];
}

// _blend: ratio · a + (1 - ratio) · b, clamped to [0, 1]; (1 - ratio) is a double rounded to float, as PyTorch
// passes a Python scalar.
CUDACNN_HOST_DEVICE inline float blend(float ratio, float a, float b) {
    const float rest = static_cast<float>(1.0 - static_cast<double>(ratio));
    return clamp01(ratio * a + rest * b);
}

// rgb_to_grayscale's weights.
CUDACNN_HOST_DEVICE inline float gray(float r, float g, float b) {
    return 0.2989f * r + 0.587f * g + 0.114f * b;
}

// adjust_hue of one pixel in place: _rgb2hsv, the hue shifted (torch.remainder by 1), _hsv2rgb, in float32.
CUDACNN_HOST_DEVICE inline void shift_hue(float& r, float& g, float& b, float hue_factor) {
    const float maxc = fmaxf(r, fmaxf(g, b)), minc = fminf(r, fminf(g, b));
    const bool eqc = maxc == minc;
    const float cr = maxc - minc;
    const float s = cr / (eqc ? 1.0f : maxc);
    const float divisor = eqc ? 1.0f : cr;
    const float rc = (maxc - r) / divisor, gc = (maxc - g) / divisor, bc = (maxc - b) / divisor;
    const float hr = maxc == r ? bc - gc : 0.0f;
    const float hg = (maxc == g && maxc != r) ? 2.0f + rc - bc : 0.0f;
    const float hb = (maxc != g && maxc != r) ? 4.0f + gc - rc : 0.0f;
    float h = fmodf((hr + hg + hb) / 6.0f + 1.0f, 1.0f);
    h = fmodf(h + hue_factor, 1.0f);  // torch.remainder: fmod moved into [0, 1)
    if (h != 0.0f && h < 0.0f) h += 1.0f;
    const float v = maxc;
    const float h6 = h * 6.0f, fi = floorf(h6), f = h6 - fi;
    const int sector = static_cast<int>(fi) % 6;
    const float p = clamp01(v * (1.0f - s));
    const float q = clamp01(v * (1.0f - s * f));
    const float t = clamp01(v * (1.0f - s * (1.0f - f)));
    // (r, g, b) per sector, as _hsv2rgb's mask picks them.
    switch (sector) {
        case 0: r = v, g = t, b = p; break;
        case 1: r = q, g = v, b = p; break;
        case 2: r = p, g = v, b = t; break;
        case 3: r = p, g = q, b = v; break;
        case 4: r = t, g = p, b = v; break;
        default: r = v, g = p, b = q; break;
    }
}

// Whether a sample point is far enough from the image to be outside it whatever the rounding, NaN included (a
// degenerate perspective): such points read the fill, and no float → integer conversion can overflow.
CUDACNN_HOST_DEVICE inline bool far_outside(float ix, float iy) {
    return !(fabsf(ix) < 1e9f && fabsf(iy) < 1e9f);
}

// grid_sample's value at pixel coordinates (ix, iy) of one plane, zeros outside (align_corners=False).
CUDACNN_HOST_DEVICE inline float grid_sample(const float* plane, int64_t height, int64_t width, float ix, float iy,
                                             bool bilinear) {
    if (far_outside(ix, iy)) return 0.0f;
    auto at = [&](int64_t y, int64_t x) {
        return y >= 0 && y < height && x >= 0 && x < width ? plane[y * width + x] : 0.0f;
    };
    if (!bilinear) return at(static_cast<int64_t>(nearbyintf(iy)), static_cast<int64_t>(nearbyintf(ix)));
    const float x0 = floorf(ix), y0 = floorf(iy), x1 = x0 + 1.0f, y1 = y0 + 1.0f;
    const float nw = (x1 - ix) * (y1 - iy), ne = (ix - x0) * (y1 - iy), sw = (x1 - ix) * (iy - y0),
                se = (ix - x0) * (iy - y0);
    const int64_t xa = static_cast<int64_t>(x0), ya = static_cast<int64_t>(y0);
    return at(ya, xa) * nw + at(ya, xa + 1) * ne + at(ya + 1, xa) * sw + at(ya + 1, xa + 1) * se;
}

// The in-bounds weight of a sample point: grid_sample of a plane of ones (torchvision's fill mask).
CUDACNN_HOST_DEVICE inline float grid_mask(int64_t height, int64_t width, float ix, float iy, bool bilinear) {
    if (far_outside(ix, iy)) return 0.0f;
    const float one = 1.0f;
    auto inside = [&](int64_t y, int64_t x) { return y >= 0 && y < height && x >= 0 && x < width ? one : 0.0f; };
    if (!bilinear) return inside(static_cast<int64_t>(nearbyintf(iy)), static_cast<int64_t>(nearbyintf(ix)));
    const float x0 = floorf(ix), y0 = floorf(iy), x1 = x0 + 1.0f, y1 = y0 + 1.0f;
    const int64_t xa = static_cast<int64_t>(x0), ya = static_cast<int64_t>(y0);
    return inside(ya, xa) * ((x1 - ix) * (y1 - iy)) + inside(ya, xa + 1) * ((ix - x0) * (y1 - iy)) +
           inside(ya + 1, xa) * ((x1 - ix) * (iy - y0)) + inside(ya + 1, xa + 1) * ((ix - x0) * (iy - y0));
}

// _apply_grid_transform's blend of a sampled value with the fill: bilinear v·m + (1-m)·fill, nearest the fill
// where m < 0.5.
CUDACNN_HOST_DEVICE inline float apply_fill(float value, float mask, float fill, bool bilinear) {
    return bilinear ? value * mask + (1.0f - mask) * fill : (mask < 0.5f ? fill : value);
}

// grid_sampler_unnormalize (align_corners=False): a grid coordinate in [-1, 1] to a pixel coordinate.
CUDACNN_HOST_DEVICE inline float unnormalize(float g, int64_t size) {
    return ((g + 1.0f) * static_cast<float>(size) - 1.0f) / 2.0f;
}

// torchvision's _get_inverse_affine_matrix (centre (0, 0), i.e. the image centre), in double.
CUDACNN_HOST_DEVICE inline void inverse_affine(double angle, double translate_x, double translate_y, double scale,
                                               double shear_x, double shear_y, double m[6]) {
    const double deg = 3.14159265358979323846 / 180.0;
    const double rot = angle * deg, sx = shear_x * deg, sy = shear_y * deg;
    const double a = cos(rot - sy) / cos(sy);
    const double b = -cos(rot - sy) * tan(sx) / cos(sy) - sin(rot);
    const double c = sin(rot - sy) / cos(sy);
    const double d = -sin(rot - sy) * tan(sx) / cos(sy) + cos(rot);
    const double r[6] = {d, -b, 0.0, -c, a, 0.0};
    for (int k = 0; k < 6; ++k) m[k] = r[k] / scale;
    m[2] += m[0] * (-translate_x) + m[1] * (-translate_y);
    m[5] += m[3] * (-translate_x) + m[4] * (-translate_y);
}

// _gen_affine_grid's theta: the matrix in float32, divided by (w/2, h/2).
CUDACNN_HOST_DEVICE inline void affine_theta(const double m[6], int64_t height, int64_t width, float theta[6]) {
    for (int k = 0; k < 3; ++k) {
        theta[k] = static_cast<float>(m[k]) / (0.5f * static_cast<float>(width));
        theta[3 + k] = static_cast<float>(m[3 + k]) / (0.5f * static_cast<float>(height));
    }
}

// The affine grid's pixel coordinates (ix, iy) of output pixel (y, x): pixel centres relative to the image
// centre through theta, then unnormalized.
CUDACNN_HOST_DEVICE inline void affine_source(const float theta[6], int64_t height, int64_t width, int64_t y,
                                              int64_t x, float& ix, float& iy) {
    const float by = static_cast<float>(y) - 0.5f * static_cast<float>(height) + 0.5f;
    const float bx = static_cast<float>(x) - 0.5f * static_cast<float>(width) + 0.5f;
    const float gx = bx * theta[0] + by * theta[1] + theta[2], gy = bx * theta[3] + by * theta[4] + theta[5];
    ix = unnormalize(gx, width);
    iy = unnormalize(gy, height);
}

// The affine theta of an affine or rotation op's parameters (F.rotate passes -angle: torchvision's rotate
// and affine turn opposite ways).
CUDACNN_HOST_DEVICE inline void warp_theta(const AugmentOp& op, const AugmentParams& params, int64_t height,
                                           int64_t width, float theta[6]) {
    double m[6];
    if (op.kind == AugmentKind::rotation) {
        inverse_affine(-static_cast<double>(params.angle), 0.0, 0.0, 1.0, 0.0, 0.0, m);
    } else {
        inverse_affine(params.angle, static_cast<double>(params.translate_x), static_cast<double>(params.translate_y),
                       params.scale, params.shear, 0.0, m);
    }
    affine_theta(m, height, width, theta);
}

// _get_perspective_coeffs: the 8 coefficients mapping output (end) points to input (start) points, the
// corners of the image, from the 8×8 system torchvision solves by least squares (exactly determined), here by
// Gaussian elimination with partial pivoting in double (torch solves it in float32: coefficients may differ
// in their last bits). Returned as float32, as torch.tensor(coeffs) makes them.
CUDACNN_HOST_DEVICE inline void perspective_coefficients(const int64_t corners[8], int64_t height, int64_t width,
                                                         float coeffs[8]) {
    const double start[8] = {0.0, 0.0, static_cast<double>(width - 1), 0.0, static_cast<double>(width - 1),
                             static_cast<double>(height - 1), 0.0, static_cast<double>(height - 1)};
    double a[8][9];
    for (int i = 0; i < 4; ++i) {
        const double ex = static_cast<double>(corners[2 * i]), ey = static_cast<double>(corners[2 * i + 1]);
        const double sx = start[2 * i], sy = start[2 * i + 1];
        const double row0[9] = {ex, ey, 1.0, 0.0, 0.0, 0.0, -sx * ex, -sx * ey, sx};
        const double row1[9] = {0.0, 0.0, 0.0, ex, ey, 1.0, -sy * ex, -sy * ey, sy};
        for (int k = 0; k < 9; ++k) {
            a[2 * i][k] = row0[k];
            a[2 * i + 1][k] = row1[k];
        }
    }
    for (int col = 0; col < 8; ++col) {
        int pivot = col;
        for (int r = col + 1; r < 8; ++r)
            if (fabs(a[r][col]) > fabs(a[pivot][col])) pivot = r;
        for (int k = 0; k < 9; ++k) {
            const double t = a[col][k];
            a[col][k] = a[pivot][k];
            a[pivot][k] = t;
        }
        for (int r = 0; r < 8; ++r) {
            if (r == col || a[col][col] == 0.0) continue;
            const double f = a[r][col] / a[col][col];
            for (int k = col; k < 9; ++k) a[r][k] -= f * a[col][k];
        }
    }
    for (int i = 0; i < 8; ++i) coeffs[i] = a[i][i] != 0.0 ? static_cast<float>(a[i][8] / a[i][i]) : 0.0f;
}

// _perspective_grid's pixel coordinates of output pixel (y, x): base point (x + 0.5, y + 0.5), numerator
// rows divided by (w/2, h/2), the denominator row (c6, c7, 1), then grid - 1 and unnormalized, in float32.
CUDACNN_HOST_DEVICE inline void perspective_source(const float c[8], int64_t height, int64_t width, int64_t y,
                                                   int64_t x, float& ix, float& iy) {
    const float bx = static_cast<float>(x) + 0.5f, by = static_cast<float>(y) + 0.5f;
    const float hw = 0.5f * static_cast<float>(width), hh = 0.5f * static_cast<float>(height);
    const float nx = bx * (c[0] / hw) + by * (c[1] / hw) + c[2] / hw;
    const float ny = bx * (c[3] / hh) + by * (c[4] / hh) + c[5] / hh;
    const float den = bx * c[6] + by * c[7] + 1.0f;
    ix = unnormalize(nx / den - 1.0f, width);
    iy = unnormalize(ny / den - 1.0f, height);
}

// upsample_bilinear2d (align_corners=False) along one axis: output index d of `size` from an input of `in`:
// source = max(scale · (d + 0.5) - 0.5, 0) with scale = in / size in float; the second neighbour clamped.
struct ResizeTap {
    int64_t i0, i1;
    float l0, l1;
};
CUDACNN_HOST_DEVICE inline ResizeTap resize_tap(int64_t in, int64_t size, int64_t d) {
    const float scale = static_cast<float>(in) / static_cast<float>(size);
    const float src = fmaxf(scale * (static_cast<float>(d) + 0.5f) - 0.5f, 0.0f);
    const int64_t i0 = static_cast<int64_t>(src);
    const float l1 = src - static_cast<float>(i0);
    return ResizeTap{i0, i0 + (i0 < in - 1 ? 1 : 0), 1.0f - l1, l1};
}

// The bilinear blend of four window values with the taps' weights, in ATen's order.
CUDACNN_HOST_DEVICE inline float resize_blend(const ResizeTap& ty, const ResizeTap& tx, float v00, float v01,
                                              float v10, float v11) {
    return ty.l0 * (tx.l0 * v00 + tx.l1 * v01) + ty.l1 * (tx.l0 * v10 + tx.l1 * v11);
}

}  // namespace cudacnn::data::rules
