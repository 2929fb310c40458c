// Fast CPU conv2d: im2col + OpenBLAS sgemm over chunks of images, forward and backward, for every geometry
// the reference accepts (stride, padding numbers or 'same'/'valid', dilation, groups, padding modes).
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "cudacnn/ops/conv2d.hpp"
#include "src/cpu_fast/workers.hpp"

namespace cudacnn::cpu_fast {

// One convolution layer at one batch size, planned once: how many images share a GEMM, the per-axis source
// tables of the padded input, and the workspace. Work items are chunks of images, so results depend on the
// shape only, never on the thread count.
//
// Forward, per chunk and group: col (K × cols) = im2col(x), K = C/G·KH·KW and cols = images · OH·OW; then
// out (OC/G × cols) = W_g · col, copied to y with the bias. Backward: dW = Σ_chunks dY_chunk · colᵀ (a partial
// per fixed group of chunks, the partials summed in order), dbias = Σ dY in double, and dx either as the forward of the transposed
// convolution (stride 1, zero padding: dx = dY ⋆ W flipped, a GEMM whose inner dimension is OC/G·KH·KW and
// no scatter) or, for the other geometries, dcol = W_gᵀ · dY_chunk scattered back by col2im.
class Conv2d {
  public:
    // forward_only: a plan whose backward is never called (the data gradient's own convolution).
    Conv2d(const cpu::Conv2dGeometry& geometry, const Workers& workers, bool forward_only = false);
    Conv2d(Conv2d&&) noexcept;
    ~Conv2d();

    std::size_t workspace_bytes() const;  // forward and backward
    std::string description() const;     // "im2col + sgemm, 4 images per GEMM"

    // x (N, C, H, W), weight (OC, C/G, KH, KW), bias (OC) or nullptr → y (N, OC, OH, OW), overwritten.
    void forward(const float* x, const float* weight, const float* bias, float* y, void* workspace) const;
    // dy (N, OC, OH, OW) → dx (overwritten; nullptr: not wanted), dweight and dbias (overwritten; dbias
    // nullptr when the layer has no bias).
    void backward(const float* x, const float* weight, const float* dy, float* dx, float* dweight, float* dbias,
                  void* workspace) const;

    const cpu::Conv2dGeometry& geometry() const { return g_; }
    int64_t images_per_chunk() const { return chunk_images_; }

  private:
    struct Scratch {
        float* col;     // (K, cols)
        float* packed;  // (OC, cols): the chunk's y or dy, channel-major
        float* dcol;    // (K, cols), for col2im only
    };
    int64_t scratch_floats() const;  // per thread
    int64_t forward_workspace_floats() const { return scratch_floats() * workers_.count(); }
    Scratch scratch(void* workspace) const;
    float* partials(void* workspace) const;
    float* flipped_weight(void* workspace) const;  // after the partials: the transposed convolution's weight
    void* transposed_workspace(void* workspace) const;
    int64_t chunks() const { return (g_.batch + chunk_images_ - 1) / chunk_images_; }
    void flip_weight(const float* weight, float* flipped) const;

    void im2col(const float* x, int64_t first_image, int64_t images, int64_t group, float* col) const;
    void col2im(const float* dcol, int64_t first_image, int64_t images, int64_t group, float* dx) const;
    void forward_chunk(int64_t chunk, const float* x, const float* weight, const float* bias, float* y,
                       const Scratch& s) const;
    int64_t chunks_per_filter_item() const;
    int64_t filter_items() const;
    void backward_filter_chunk(int64_t chunk, const float* x, const float* dy, float* partial, bool first_chunk,
                               const Scratch& s) const;
    void backward_data_chunk(int64_t chunk, const float* weight, const float* dy, float* dx, const Scratch& s) const;
    // The chunk's (images, OC, OH·OW) as (OC, images · OH·OW): copied into packed, or in place for one image.
    const float* pack(const float* tensor, int64_t first_image, int64_t images, float* packed) const;

    cpu::Conv2dGeometry g_;
    Workers workers_;
    int64_t chunk_images_ = 1;
    int64_t k_ = 0;         // rows of col: C/G · KH · KW
    int64_t plane_ = 0;     // OH · OW
    int64_t max_cols_ = 0;  // chunk_images_ · plane_
    // row_source[oh · KH + i] / col_source[ow · KW + j]: the input row / column that output position oh / ow
    // reads through tap i / j, or -1 for a zero of the padding.
    std::vector<int32_t> row_source_, col_source_;
    // Whether each tap column j reads a contiguous run (stride 1, zero padding): then im2col copies rows.
    bool contiguous_rows_ = false;
    // dx as a convolution of dy (stride 1, zero padding no wider than the dilated kernel); null: col2im.
    std::unique_ptr<Conv2d> transposed_;
    bool needs_dcol_ = false;  // the col2im data gradient's scratch
};

}  // namespace cudacnn::cpu_fast
