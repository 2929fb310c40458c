// The augmentation ops as kernels: a gather (uint8 → ToTensor floats), then one kernel per op with a block per
// image. Thread 0 draws the image's parameters into shared memory (augment_rules.hpp's draws), then the block
// writes the op's output pixels with the same per-pixel rules as the CPU reference.
#include "cuda/augment.hpp"

#include <new>

#include "cuda/elementwise.cuh"
#include "cuda/launch.cuh"
#include "cuda/reduce.cuh"
#include "cudacnn/data/dataset.hpp"
#include "cudacnn/error.hpp"
#include "src/data/augment_rules.hpp"

namespace cudacnn::gpu {
namespace kernels {

namespace rules = data::rules;
using data::AugmentKind;

constexpr int kAugmentBlock = 256;  // a power of two: block_tree_sum's size

// One op of the pipeline with what its kernel needs to know.
struct Stage {
    data::AugmentOp op;
    int64_t op_index, word_offset;
    int64_t channels, in_height, in_width, out_height, out_width;
    uint64_t seed, stream, pixel_stream;  // kAugmentStream + epoch, kAugmentPixelStream + epoch
    int64_t first_position;
};

// An image's drawn parameters, and the warp matrix they give (affine and rotation: the grid's theta;
// perspective: its 8 coefficients).
struct SampleSetup {
    data::AugmentParams params;
    float warp[8];
};

__device__ void setup_sample(const Stage& s, int64_t position, SampleSetup& setup) {
    const rules::SampleWords words{s.seed, s.stream, static_cast<uint64_t>(position)};
    setup.params = rules::draw_op(s.op, words, s.word_offset, s.in_height, s.in_width);
    if (s.op.kind == AugmentKind::affine || s.op.kind == AugmentKind::rotation)
        rules::warp_theta(s.op, setup.params, s.in_height, s.in_width, setup.warp);
    if (s.op.kind == AugmentKind::perspective && setup.params.apply)
        rules::perspective_coefficients(setup.params.corners.data(), s.in_height, s.in_width, setup.warp);
}

// ToTensor of the gathered records: x[n] = float(images[indices[n]]) / 255.
__global__ void gather_kernel(const uint8_t* images, const int64_t* dataset_labels, const int64_t* indices,
                              int64_t count, int64_t values, float* x, int64_t* labels) {
    const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
    for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < count * values; i += stride) {
        const int64_t n = i / values, index = indices[n];
        if (i % values == 0) labels[n] = dataset_labels[index];
        x[i] = static_cast<float>(images[index * values + i % values]) / 255.0f;
    }
}

// Output pixel (y, x), every channel, of every op but jitter.
__device__ void augment_pixel(const Stage& s, const SampleSetup& setup, const rules::PixelWords& pixel_words,
                              const float* in, float* out, int64_t y, int64_t x) {
    const data::AugmentOp& op = s.op;
    const data::AugmentParams& p = setup.params;
    const int64_t h = s.in_height, w = s.in_width, in_plane = h * w, out_plane = s.out_height * s.out_width;
    const int64_t o = y * s.out_width + x;
    auto src = [&](int64_t c, int64_t yy, int64_t xx) { return in[c * in_plane + yy * w + xx]; };
    auto copy = [&]() {
        for (int64_t c = 0; c < s.channels; ++c) out[c * out_plane + o] = src(c, y, x);
    };
    switch (op.kind) {
        case AugmentKind::crop: {
            const int64_t sy = rules::pad_source(p.top + y, h, op.padding, op.padding_mode);
            const int64_t sx = rules::pad_source(p.left + x, w, op.padding, op.padding_mode);
            for (int64_t c = 0; c < s.channels; ++c)
                out[c * out_plane + o] = sy < 0 || sx < 0 ? rules::channel_fill(op.fill, c) : src(c, sy, sx);
            return;
        }
        case AugmentKind::centercrop:
            for (int64_t c = 0; c < s.channels; ++c) out[c * out_plane + o] = src(c, p.top + y, p.left + x);
            return;
        case AugmentKind::hflip:
        case AugmentKind::vflip: {
            const bool horizontal = op.kind == AugmentKind::hflip;
            const int64_t sy = p.apply && !horizontal ? h - 1 - y : y, sx = p.apply && horizontal ? w - 1 - x : x;
            for (int64_t c = 0; c < s.channels; ++c) out[c * out_plane + o] = src(c, sy, sx);
            return;
        }
        case AugmentKind::grayscale: {
            if (!p.apply) return copy();
            const float l = s.channels == 1 ? src(0, y, x) : rules::gray(src(0, y, x), src(1, y, x), src(2, y, x));
            for (int64_t c = 0; c < s.channels; ++c) out[c * out_plane + o] = l;
            return;
        }
        case AugmentKind::erasing: {
            const bool inside = p.apply && y >= p.top && y < p.top + p.height && x >= p.left && x < p.left + p.width;
            for (int64_t c = 0; c < s.channels; ++c) {
                const int64_t e = c * in_plane + y * w + x;
                out[c * out_plane + o] = !inside ? in[e]
                                         : op.random_value ? rules::standard_normal(pixel_words, e)
                                                           : rules::channel_fill(op.fill, c);
            }
            return;
        }
        case AugmentKind::noise:
            for (int64_t c = 0; c < s.channels; ++c) {
                const int64_t e = c * in_plane + y * w + x;
                const float noise = op.mean + rules::standard_normal(pixel_words, e) * op.sigma;
                out[c * out_plane + o] = rules::clamp01(in[e] + noise);
            }
            return;
        case AugmentKind::saltpepper:
            for (int64_t c = 0; c < s.channels; ++c) {
                const int64_t e = c * in_plane + y * w + x;
                out[c * out_plane + o] = rules::salt_pepper(op, pixel_words, e, in[e]);
            }
            return;
        case AugmentKind::normalize:
            for (int64_t c = 0; c < s.channels; ++c) out[c * out_plane + o] = rules::normalize(src(c, y, x), op, c);
            return;
        case AugmentKind::affine:
        case AugmentKind::rotation:
        case AugmentKind::perspective: {
            if (op.kind == AugmentKind::perspective && !p.apply) return copy();
            float ix = 0.0f, iy = 0.0f;
            if (op.kind == AugmentKind::perspective) {
                rules::perspective_source(setup.warp, h, w, y, x, ix, iy);
            } else {
                rules::affine_source(setup.warp, h, w, y, x, ix, iy);
            }
            const float mask = rules::grid_mask(h, w, ix, iy, op.bilinear);
            for (int64_t c = 0; c < s.channels; ++c) {
                const float v = rules::grid_sample(in + c * in_plane, h, w, ix, iy, op.bilinear);
                out[c * out_plane + o] = rules::apply_fill(v, mask, rules::channel_fill(op.fill, c), op.bilinear);
            }
            return;
        }
        case AugmentKind::resizedcrop: {
            const rules::ResizeTap ty = rules::resize_tap(p.height, op.size, y), tx = rules::resize_tap(p.width, op.size, x);
            for (int64_t c = 0; c < s.channels; ++c) {
                auto at = [&](int64_t yy, int64_t xx) { return src(c, p.top + yy, p.left + xx); };
                out[c * out_plane + o] =
                    rules::resize_blend(ty, tx, at(ty.i0, tx.i0), at(ty.i0, tx.i1), at(ty.i1, tx.i0), at(ty.i1, tx.i1));
            }
            return;
        }
        case AugmentKind::jitter:
            return;  // jitter_image
    }
}

// ColorJitter of one image by the whole block: a copy, then the active adjustments in the drawn order, each
// over every pixel in place; contrast first reduces the image's grey mean (in double, as the reference sums).
__device__ void jitter_image(const Stage& s, const data::AugmentParams& p, const float* in, float* out) {
    __shared__ double sums[kAugmentBlock];
    __shared__ float grey_mean;
    const int64_t plane = s.in_height * s.in_width, values = s.channels * plane;
    for (int64_t i = threadIdx.x; i < values; i += blockDim.x) out[i] = in[i];
    __syncthreads();
    const bool colour = s.channels == 3;
    for (int step = 0; step < 4; ++step) {
        const int k = p.order[step];
        if (!rules::jitter_active(s.op, k)) continue;
        const float f = p.factors[k];
        if (k == 1) {
            double partial = 0.0;
            for (int64_t i = threadIdx.x; i < plane; i += blockDim.x)
                partial += colour ? rules::gray(out[i], out[plane + i], out[2 * plane + i]) : out[i];
            const double total = reduce::block_tree_sum<kAugmentBlock>(partial, sums);
            if (threadIdx.x == 0) grey_mean = static_cast<float>(total / static_cast<double>(plane));
            __syncthreads();
        }
        for (int64_t i = threadIdx.x; i < plane; i += blockDim.x) {
            if (k == 0 || k == 1) {
                const float other = k == 0 ? 0.0f : grey_mean;
                for (int64_t c = 0; c < s.channels; ++c) out[c * plane + i] = rules::blend(f, out[c * plane + i], other);
            } else if (colour && k == 2) {
                const float g = rules::gray(out[i], out[plane + i], out[2 * plane + i]);
                for (int64_t c = 0; c < 3; ++c) out[c * plane + i] = rules::blend(f, out[c * plane + i], g);
            } else if (colour) {
                rules::shift_hue(out[i], out[plane + i], out[2 * plane + i], f);
            }
        }
        __syncthreads();  // the next adjustment (and its mean) reads this one's output
    }
}

// One op on every image of the batch: block n is image n.
__global__ void __launch_bounds__(kAugmentBlock) augment_op_kernel(Stage s, const float* in, float* out) {
    alignas(SampleSetup) __shared__ unsigned char setup_bytes[sizeof(SampleSetup)];
    SampleSetup& setup = *reinterpret_cast<SampleSetup*>(setup_bytes);
    const int64_t n = blockIdx.x, position = s.first_position + n;
    if (threadIdx.x == 0) {
        new (&setup) SampleSetup{};
        setup_sample(s, position, setup);
    }
    __syncthreads();
    const float* image_in = in + n * s.channels * s.in_height * s.in_width;
    float* image_out = out + n * s.channels * s.out_height * s.out_width;
    if (s.op.kind == AugmentKind::jitter) return jitter_image(s, setup.params, image_in, image_out);
    const rules::PixelWords pixel_words(s.seed, s.pixel_stream, static_cast<uint64_t>(position), s.op_index);
    for (int64_t i = threadIdx.x; i < s.out_height * s.out_width; i += blockDim.x)
        augment_pixel(s, setup, pixel_words, image_in, image_out, i / s.out_width, i % s.out_width);
}

}  // namespace kernels

namespace {

int64_t values_of(const data::ImageShape& shape) {
    return shape.channels * shape.height * shape.width;
}

// Floats of one scratch buffer: `count` of the largest image an op reads (the last op's output goes to x).
int64_t scratch_half(const std::vector<data::ImageShape>& shapes, int64_t count) {
    int64_t largest = 0;
    for (size_t k = 0; k + 1 < shapes.size(); ++k) largest = std::max(largest, values_of(shapes[k]));
    return count * largest;
}

}  // namespace

int64_t augment_scratch_floats(const data::AugmentSpec& spec, const data::ImageShape& input, int64_t count) {
    return 2 * scratch_half(data::augment_shapes(spec, input), count);
}

void augment_batch(const DeviceImages& dataset, const int64_t* indices, int64_t count, const data::AugmentSpec& spec,
                   uint64_t seed, int64_t epoch, int64_t first_position, float* scratch, float* x, int64_t* labels,
                   cudaStream_t stream) {
    CUDACNN_CHECK(count >= 0, "gpu::augment_batch: count {} must be >= 0", count);
    if (count == 0) return;
    CUDACNN_CHECK(dataset.images != nullptr && dataset.labels != nullptr && indices != nullptr && x != nullptr &&
                      labels != nullptr && (spec.empty() || scratch != nullptr),
                  "gpu::augment_batch: the dataset, indices, scratch, x and labels must be device pointers, not null");
    CUDACNN_CHECK(first_position >= 0 && first_position + count <= (int64_t{1} << 32),
                  "gpu::augment_batch: positions {} to {} are outside [0, 2^32)", first_position,
                  first_position + count - 1);
    CUDACNN_CHECK(epoch >= 0 && epoch < (int64_t{1} << 32), "gpu::augment_batch: epoch {} is outside [0, 2^32)",
                  epoch);
    CUDACNN_CHECK(count < (int64_t{1} << 31), "gpu::augment_batch: {} images are more than a grid holds", count);
    const data::ImageShape input{dataset.channels, dataset.height, dataset.width};
    const std::vector<data::ImageShape> shapes = data::augment_shapes(spec, input);
    const std::vector<int64_t> offsets = data::augment_word_offsets(spec);
    float* buffers[2] = {scratch, scratch + scratch_half(shapes, count)};

    float* current = spec.empty() ? x : buffers[0];
    launch(kernels::gather_kernel, elementwise_grid(count * values_of(input)), dim3(kElementwiseBlock), 0, stream,
           dataset.images, dataset.labels, indices, count, values_of(input), current, labels);
    for (size_t k = 0; k < spec.size(); ++k) {
        float* next = k + 1 == spec.size() ? x : buffers[(k + 1) % 2];
        const kernels::Stage stage{spec[k],
                                   static_cast<int64_t>(k),
                                   offsets[k],
                                   shapes[k].channels,
                                   shapes[k].height,
                                   shapes[k].width,
                                   shapes[k + 1].height,
                                   shapes[k + 1].width,
                                   seed,
                                   data::kAugmentStream + static_cast<uint64_t>(epoch),
                                   data::kAugmentPixelStream + static_cast<uint64_t>(epoch),
                                   first_position};
        launch(kernels::augment_op_kernel, dim3(static_cast<unsigned>(count)), dim3(kernels::kAugmentBlock), 0, stream,
               stage, static_cast<const float*>(current), next);
        current = next;
    }
}

}  // namespace cudacnn::gpu
