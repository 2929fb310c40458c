// Fast CPU conv2d: im2col + sgemm per chunk of images (see conv2d.hpp).
#include "src/cpu_fast/conv2d.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cstring>

#include "src/cpu_fast/gemm.hpp"

namespace cudacnn::cpu_fast {
namespace {

// Columns a chunk's GEMM aims for: enough that an 8 × 8 layer (64 columns an image) still gives OpenBLAS a
// wide product, few enough that the chunk's im2col (K × cols floats) stays within the L2/L3 caches.
constexpr int64_t kColumnsPerGemm = 512;
constexpr int64_t kReduceGrain = 1 << 14;  // weight elements per work item when summing the chunks' partials

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

}  // namespace

Conv2d::Conv2d(const cpu::Conv2dGeometry& geometry, const Workers& workers) : g_(geometry), workers_(workers) {
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
}

std::size_t Conv2d::workspace_bytes() const {
    const int64_t per_thread = 2 * k_ * max_cols_ + g_.out_channels * max_cols_;
    const int64_t weights = g_.out_channels * k_;
    return floats(per_thread * workers_.count() + chunks() * weights) + 64;
}

std::string Conv2d::description() const {
    return fmt::format("im2col + sgemm, {} image{} per GEMM", chunk_images_, chunk_images_ == 1 ? "" : "s");
}

Conv2d::Scratch Conv2d::scratch(void* workspace) const {
    float* base = static_cast<float*>(workspace) + (2 * k_ + g_.out_channels) * max_cols_ * worker_index();
    return Scratch{base, base + k_ * max_cols_, base + 2 * k_ * max_cols_};
}

float* Conv2d::partials(void* workspace) const {
    return static_cast<float*>(workspace) + (2 * k_ + g_.out_channels) * max_cols_ * workers_.count();
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
    for (int64_t group = 0; group < g_.groups; ++group) {
        im2col(x, first, images, group, s.col);
        gemm(false, false, ocpg, cols, k_, 1.0f, weight + group * ocpg * k_, k_, s.col, cols, 0.0f,
             s.packed + group * ocpg * cols, cols);
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

void Conv2d::backward_chunk(int64_t chunk, const float* x, const float* weight, const float* dy, float* dx,
                            float* partial, const Scratch& s) const {
    const int64_t first = chunk * chunk_images_, images = std::min(chunk_images_, g_.batch - first);
    const int64_t cols = images * plane_, ocpg = g_.out_channels_per_group();
    for (int64_t image = 0; image < images; ++image) {  // dy (images, OC, OH·OW) → packed (OC, images · OH·OW)
        for (int64_t oc = 0; oc < g_.out_channels; ++oc) {
            std::memcpy(s.packed + oc * cols + image * plane_, dy + ((first + image) * g_.out_channels + oc) * plane_,
                        floats(plane_));
        }
    }
    if (dx != nullptr) {
        std::memset(dx + first * g_.in_channels * g_.in_h * g_.in_w, 0, floats(images * g_.in_channels * g_.in_h * g_.in_w));
    }
    for (int64_t group = 0; group < g_.groups; ++group) {
        const float* dy_group = s.packed + group * ocpg * cols;
        im2col(x, first, images, group, s.col);
        gemm(false, true, ocpg, k_, cols, 1.0f, dy_group, cols, s.col, cols, 0.0f, partial + group * ocpg * k_, k_);
        if (dx != nullptr) {
            gemm(true, false, k_, cols, ocpg, 1.0f, weight + group * ocpg * k_, k_, dy_group, cols, 0.0f, s.dcol, cols);
            col2im(s.dcol, first, images, group, dx);
        }
    }
}

void Conv2d::backward(const float* x, const float* weight, const float* dy, float* dx, float* dweight, float* dbias,
                      void* workspace) const {
    float* all_partials = partials(workspace);
    const int64_t weights = g_.out_channels * k_;
    parallel_for(workers_, chunks(), [&](int64_t chunk) {
        backward_chunk(chunk, x, weight, dy, dx, all_partials + chunk * weights, scratch(workspace));
    });
    // dweight = Σ partials in chunk order, so that the sum does not depend on which thread ran which chunk.
    parallel_ranges(workers_, weights, kReduceGrain, [&](int64_t begin, int64_t end) {
        std::memcpy(dweight + begin, all_partials + begin, floats(end - begin));
        for (int64_t chunk = 1; chunk < chunks(); ++chunk) {
            const float* partial = all_partials + chunk * weights;
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
