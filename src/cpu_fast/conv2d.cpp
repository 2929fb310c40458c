// Fast CPU conv2d: im2col + sgemm per chunk of images (see conv2d.hpp).
#include "src/cpu_fast/conv2d.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cstring>

#include "src/cpu_fast/gemm.hpp"

namespace cudacnn::cpu_fast {
namespace {

// Columns a chunk's GEMM aims for: enough that an 8 × 8 layer (64 columns an image) still gives OpenBLAS a
// wide product, few enough that the chunk's im2col (K × cols floats) stays in the caches. Measured on the
// CifarCNN layers (2-core EPYC, OpenBLAS 0.3.21): 256 and 512 within noise of each other, 1024 and more slower.
constexpr int64_t kColumnsPerGemm = 256;
constexpr int64_t kReduceGrain = 1 << 14;  // weight elements per work item when summing the partials
// dW work items: each sums its share of the chunks into one partial (GEMM with beta = 1), and the partials are
// added in item order. Few enough that the final sum reads little memory (8 × a 256×256×3×3 weight: 19 MB),
// enough for the threads of a typical machine; a fixed number, so the sums never depend on the thread count.
constexpr int64_t kFilterItems = 8;

std::vector<int32_t> source_table(int64_t out_size, int64_t kernel, int64_t stride, int64_t pad_before,
                                  int64_t dilation, int64_t in_size, cpu::Conv2dPaddingMode mode) {
    std::vector<int32_t> table(static_cast<size_t>(out_size * kernel));
    for (int64_t o = 0; o < out_size; ++o)
        for (int64_t k = 0; k < kernel; ++k)
            table[static_cast<size_t>(o * kernel + k)] = static_cast<int32_t>(
                cpu::conv2d_source_index(o * stride - pad_before + k * dilation, in_size, mode));
    return table;
}

std::size_t floats(int64_t count) {
    return static_cast<std::size_t>(count) * sizeof(float);
}

// The convolution whose forward is this one's data gradient, or nothing when that does not hold: with stride 1
// and zero padding, dx[c, h, w] = Σ dy[oc, h + pad_top − i·DH, w + pad_left − j·DW] · weight[oc, c, i, j], which is a
// convolution of dy (OC channels) with the weight flipped in both axes and its channels swapped, padded by
// dilation·(kernel − 1) − pad on each side (so that the output is H × W again).
std::unique_ptr<cpu::Conv2dGeometry> transposed_geometry(const cpu::Conv2dGeometry& g) {
    const int64_t reach_h = g.dilation_h * (g.kernel_h - 1), reach_w = g.dilation_w * (g.kernel_w - 1);
    if (g.stride_h != 1 || g.stride_w != 1 || g.padding_mode != cpu::Conv2dPaddingMode::zeros) return nullptr;
    if (std::max(g.pad_top, g.pad_bottom) > reach_h || std::max(g.pad_left, g.pad_right) > reach_w) return nullptr;
    auto t = std::make_unique<cpu::Conv2dGeometry>(g);
    t->in_channels = g.out_channels;
    t->in_h = g.out_h;
    t->in_w = g.out_w;
    t->out_channels = g.in_channels;
    t->pad_top = reach_h - g.pad_top;
    t->pad_bottom = reach_h - g.pad_bottom;
    t->pad_left = reach_w - g.pad_left;
    t->pad_right = reach_w - g.pad_right;
    t->out_h = g.in_h;
    t->out_w = g.in_w;
    return t;
}

}  // namespace

Conv2d::Conv2d(const cpu::Conv2dGeometry& geometry, const Workers& workers, bool forward_only)
    : g_(geometry), workers_(workers) {
    plane_ = g_.out_h * g_.out_w;
    k_ = g_.in_channels_per_group() * g_.kernel_h * g_.kernel_w;
    chunk_images_ = std::clamp<int64_t>((kColumnsPerGemm + plane_ - 1) / std::max<int64_t>(plane_, 1), 1,
                                        std::max<int64_t>(g_.batch, 1));
    max_cols_ = chunk_images_ * plane_;
    row_source_ = source_table(g_.out_h, g_.kernel_h, g_.stride_h, g_.pad_top, g_.dilation_h, g_.in_h,
                               g_.padding_mode);
    col_source_ = source_table(g_.out_w, g_.kernel_w, g_.stride_w, g_.pad_left, g_.dilation_w, g_.in_w,
                               g_.padding_mode);
    contiguous_rows_ = g_.stride_w == 1 && g_.padding_mode == cpu::Conv2dPaddingMode::zeros;
    if (forward_only) return;
    if (const auto t = transposed_geometry(g_)) transposed_ = std::make_unique<Conv2d>(*t, workers_, true);
    needs_dcol_ = transposed_ == nullptr;
}

Conv2d::Conv2d(Conv2d&&) noexcept = default;
Conv2d::~Conv2d() = default;

int64_t Conv2d::scratch_floats() const {
    return (k_ + g_.out_channels + (needs_dcol_ ? k_ : 0)) * max_cols_;
}

// [scratch per thread][a dW partial per filter work item][flipped weight][the transposed convolution's forward scratch]
std::size_t Conv2d::workspace_bytes() const {
    const int64_t weights = g_.out_channels * k_;
    const int64_t transposed = transposed_ ? weights + transposed_->forward_workspace_floats() : 0;
    return floats(forward_workspace_floats() + filter_items() * weights + transposed) + 64;
}

std::string Conv2d::description() const {
    return fmt::format("im2col + sgemm, {} image{} per GEMM", chunk_images_, chunk_images_ == 1 ? "" : "s");
}

Conv2d::Scratch Conv2d::scratch(void* workspace) const {
    float* base = static_cast<float*>(workspace) + scratch_floats() * worker_index();
    float* packed = base + k_ * max_cols_;
    return Scratch{base, packed, needs_dcol_ ? packed + g_.out_channels * max_cols_ : nullptr};
}

float* Conv2d::partials(void* workspace) const {
    return static_cast<float*>(workspace) + forward_workspace_floats();
}

float* Conv2d::flipped_weight(void* workspace) const {
    return partials(workspace) + filter_items() * g_.out_channels * k_;
}

void* Conv2d::transposed_workspace(void* workspace) const {
    return flipped_weight(workspace) + g_.out_channels * k_;
}

// col[(c · KH + i) · KW + j][image · OH·OW + oh · OW + ow] = padded x[first_image + image, group's c, …].
void Conv2d::im2col(const float* x, int64_t first_image, int64_t images, int64_t group, float* col) const {
    const int64_t cols = images * plane_, cpg = g_.in_channels_per_group();
    for (int64_t c = 0; c < cpg; ++c) {
        for (int64_t i = 0; i < g_.kernel_h; ++i) {
            for (int64_t j = 0; j < g_.kernel_w; ++j) {
                float* row = col + ((c * g_.kernel_h + i) * g_.kernel_w + j) * cols;
                for (int64_t image = 0; image < images; ++image) {
                    const float* plane = x + ((first_image + image) * g_.in_channels + group * cpg + c) * g_.in_h * g_.in_w;
                    for (int64_t oh = 0; oh < g_.out_h; ++oh, row += g_.out_w) {
                        const int32_t ih = row_source_[static_cast<size_t>(oh * g_.kernel_h + i)];
                        if (ih < 0) {
                            std::fill(row, row + g_.out_w, 0.0f);
                            continue;
                        }
                        const float* source = plane + ih * g_.in_w;
                        const int32_t* taps = col_source_.data() + j;
                        if (contiguous_rows_) {
                            // iw = ow + j·DW − pad_left: zeros, one contiguous run, zeros.
                            const int64_t shift = j * g_.dilation_w - g_.pad_left;
                            const int64_t begin = std::clamp<int64_t>(-shift, 0, g_.out_w);
                            const int64_t end = std::clamp<int64_t>(g_.in_w - shift, begin, g_.out_w);
                            std::fill(row, row + begin, 0.0f);
                            std::memcpy(row + begin, source + begin + shift, floats(end - begin));
                            std::fill(row + end, row + g_.out_w, 0.0f);
                        } else {
                            for (int64_t ow = 0; ow < g_.out_w; ++ow) {
                                const int32_t iw = taps[ow * g_.kernel_w];
                                row[ow] = iw < 0 ? 0.0f : source[iw];
                            }
                        }
                    }
                }
            }
        }
    }
}

// The transpose of im2col: dx[…] += dcol[…] over the same taps, in the same order (deterministic). dx of the
// chunk's images must be zeroed first.
void Conv2d::col2im(const float* dcol, int64_t first_image, int64_t images, int64_t group, float* dx) const {
    const int64_t cols = images * plane_, cpg = g_.in_channels_per_group();
    for (int64_t c = 0; c < cpg; ++c) {
        for (int64_t i = 0; i < g_.kernel_h; ++i) {
            for (int64_t j = 0; j < g_.kernel_w; ++j) {
                const float* row = dcol + ((c * g_.kernel_h + i) * g_.kernel_w + j) * cols;
                for (int64_t image = 0; image < images; ++image) {
                    float* plane = dx + ((first_image + image) * g_.in_channels + group * cpg + c) * g_.in_h * g_.in_w;
                    for (int64_t oh = 0; oh < g_.out_h; ++oh, row += g_.out_w) {
                        const int32_t ih = row_source_[static_cast<size_t>(oh * g_.kernel_h + i)];
                        if (ih < 0) continue;
                        float* target = plane + ih * g_.in_w;
                        const int32_t* taps = col_source_.data() + j;
                        if (contiguous_rows_) {
                            const int64_t shift = j * g_.dilation_w - g_.pad_left;
                            const int64_t begin = std::clamp<int64_t>(-shift, 0, g_.out_w);
                            const int64_t end = std::clamp<int64_t>(g_.in_w - shift, begin, g_.out_w);
                            for (int64_t ow = begin; ow < end; ++ow) target[ow + shift] += row[ow];
                        } else {
                            for (int64_t ow = 0; ow < g_.out_w; ++ow) {
                                const int32_t iw = taps[ow * g_.kernel_w];
                                if (iw >= 0) target[iw] += row[ow];
                            }
                        }
                    }
                }
            }
        }
    }
}

void Conv2d::forward_chunk(int64_t chunk, const float* x, const float* weight, const float* bias, float* y,
                           const Scratch& s) const {
    const int64_t first = chunk * chunk_images_, images = std::min(chunk_images_, g_.batch - first);
    const int64_t cols = images * plane_, ocpg = g_.out_channels_per_group();
    // One image's (OC, OH·OW) is already y's layout: the GEMM writes there and only the bias is added.
    float* out = images == 1 ? y + first * g_.out_channels * plane_ : s.packed;
    for (int64_t group = 0; group < g_.groups; ++group) {
        im2col(x, first, images, group, s.col);
        gemm(false, false, ocpg, cols, k_, 1.0f, weight + group * ocpg * k_, k_, s.col, cols, 0.0f,
             out + group * ocpg * cols, cols);
    }
    if (images == 1) {
        if (bias == nullptr) return;
        for (int64_t oc = 0; oc < g_.out_channels; ++oc)
            for (int64_t p = 0; p < plane_; ++p) out[oc * plane_ + p] += bias[oc];
        return;
    }
    // packed (OC, images · OH·OW) → y (images, OC, OH·OW), adding the bias.
    for (int64_t image = 0; image < images; ++image) {
        for (int64_t oc = 0; oc < g_.out_channels; ++oc) {
            const float* from = s.packed + oc * cols + image * plane_;
            float* to = y + ((first + image) * g_.out_channels + oc) * plane_;
            const float b = bias != nullptr ? bias[oc] : 0.0f;
            for (int64_t p = 0; p < plane_; ++p) to[p] = from[p] + b;
        }
    }
}

void Conv2d::forward(const float* x, const float* weight, const float* bias, float* y, void* workspace) const {
    parallel_for(workers_, chunks(), [&](int64_t chunk) {
        forward_chunk(chunk, x, weight, bias, y, scratch(workspace));
    });
}

// dy (images, OC, OH·OW) of the chunk → packed (OC, images · OH·OW).
const float* Conv2d::pack(const float* tensor, int64_t first_image, int64_t images, float* packed) const {
    if (images == 1) return tensor + first_image * g_.out_channels * plane_;  // already (OC, OH·OW)
    const int64_t cols = images * plane_;
    for (int64_t image = 0; image < images; ++image) {
        for (int64_t oc = 0; oc < g_.out_channels; ++oc) {
            std::memcpy(packed + oc * cols + image * plane_,
                        tensor + ((first_image + image) * g_.out_channels + oc) * plane_, floats(plane_));
        }
    }
    return packed;
}

int64_t Conv2d::chunks_per_filter_item() const {
    return (chunks() + kFilterItems - 1) / kFilterItems;
}

int64_t Conv2d::filter_items() const {  // every item gets at least one chunk
    return (chunks() + chunks_per_filter_item() - 1) / chunks_per_filter_item();
}

// partial (+)= Σ over the chunk's images of dY · colᵀ: beta 0 for an item's first chunk, then 1.
void Conv2d::backward_filter_chunk(int64_t chunk, const float* x, const float* dy, float* partial, bool first_chunk,
                                   const Scratch& s) const {
    const int64_t first = chunk * chunk_images_, images = std::min(chunk_images_, g_.batch - first);
    const int64_t cols = images * plane_, ocpg = g_.out_channels_per_group();
    const float* dy_chunk = pack(dy, first, images, s.packed);
    for (int64_t group = 0; group < g_.groups; ++group) {
        im2col(x, first, images, group, s.col);
        gemm(false, true, ocpg, k_, cols, 1.0f, dy_chunk + group * ocpg * cols, cols, s.col, cols,
             first_chunk ? 0.0f : 1.0f, partial + group * ocpg * k_, k_);
    }
}

void Conv2d::backward_data_chunk(int64_t chunk, const float* weight, const float* dy, float* dx,
                                 const Scratch& s) const {
    const int64_t first = chunk * chunk_images_, images = std::min(chunk_images_, g_.batch - first);
    const int64_t cols = images * plane_, ocpg = g_.out_channels_per_group();
    const int64_t image_floats = g_.in_channels * g_.in_h * g_.in_w;
    const float* dy_chunk = pack(dy, first, images, s.packed);
    std::memset(dx + first * image_floats, 0, floats(images * image_floats));
    for (int64_t group = 0; group < g_.groups; ++group) {
        gemm(true, false, k_, cols, ocpg, 1.0f, weight + group * ocpg * k_, k_, dy_chunk + group * ocpg * cols, cols,
             0.0f, s.dcol, cols);
        col2im(s.dcol, first, images, group, dx);
    }
}

// weight (OC, C/G, KH, KW) → flipped (C, OC/G, KH, KW): per group, channels swapped and taps reversed.
void Conv2d::flip_weight(const float* weight, float* flipped) const {
    const int64_t ocpg = g_.out_channels_per_group(), cpg = g_.in_channels_per_group();
    const int64_t taps = g_.kernel_h * g_.kernel_w;
    for (int64_t group = 0; group < g_.groups; ++group)
        for (int64_t oc = 0; oc < ocpg; ++oc)
            for (int64_t c = 0; c < cpg; ++c) {
                const float* from = weight + ((group * ocpg + oc) * cpg + c) * taps;
                float* to = flipped + ((group * cpg + c) * ocpg + oc) * taps;
                for (int64_t t = 0; t < taps; ++t) to[t] = from[taps - 1 - t];
            }
}

void Conv2d::backward(const float* x, const float* weight, const float* dy, float* dx, float* dweight, float* dbias,
                      void* workspace) const {
    float* all_partials = partials(workspace);
    const int64_t weights = g_.out_channels * k_;
    const int64_t items = filter_items(), chunks_per_item = chunks_per_filter_item();
    parallel_for(workers_, items, [&](int64_t item) {
        const Scratch s = scratch(workspace);
        const int64_t first = item * chunks_per_item, last = std::min(chunks(), first + chunks_per_item);
        for (int64_t chunk = first; chunk < last; ++chunk)
            backward_filter_chunk(chunk, x, dy, all_partials + item * weights, chunk == first, s);
    });
    if (dx != nullptr && transposed_) {
        float* flipped = flipped_weight(workspace);
        flip_weight(weight, flipped);
        transposed_->forward(dy, flipped, nullptr, dx, transposed_workspace(workspace));
    } else if (dx != nullptr) {
        parallel_for(workers_, chunks(), [&](int64_t chunk) {
            backward_data_chunk(chunk, weight, dy, dx, scratch(workspace));
        });
    }
    // dweight = Σ partials in item order, so that the sum does not depend on which thread ran which chunk.
    parallel_ranges(workers_, weights, kReduceGrain, [&](int64_t begin, int64_t end) {
        std::memcpy(dweight + begin, all_partials + begin, floats(end - begin));
        for (int64_t item = 1; item < items; ++item) {
            const float* partial = all_partials + item * weights;
            for (int64_t e = begin; e < end; ++e) dweight[e] += partial[e];
        }
    });
    if (dbias == nullptr) return;
    parallel_for(workers_, g_.out_channels, [&](int64_t oc) {
        double sum = 0.0;
        for (int64_t n = 0; n < g_.batch; ++n) {
            const float* plane = dy + (n * g_.out_channels + oc) * plane_;
            for (int64_t p = 0; p < plane_; ++p) sum += plane[p];
        }
        dbias[oc] = static_cast<float>(sum);
    });
}

}  // namespace cudacnn::cpu_fast
