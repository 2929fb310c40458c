// batch_norm2d kernels (statistics, normalize; backward sums, dx) and their launchers, for float and bf16
// activations in NCHW or NHWC. Per-channel reductions are split over a few blocks whose partials a later
// kernel's blocks merge, each in the same fixed order: deterministic, no atomics.
#include "cuda/batch_norm.hpp"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <initializer_list>
#include <type_traits>

#include "cuda/batch_norm_common.cuh"
#include "cuda/launch.cuh"
#include "cuda/reduce.cuh"
#include "cudacnn/error.hpp"

namespace cudacnn::gpu {

namespace kernels {

constexpr unsigned kFullMask = 0xffffffffu;

constexpr int kBnUnitsPerThread = 4;         // units a thread loads before it computes (4 float4s: 64 bytes)
constexpr int kBnApplyValuesPerBlock = 4096;  // normalize / dx: 16 values per thread

// How one kernel's blocks cover a channel. The channel's M = N·H·W values are taken in units of kWidth
// consecutive values of one plane: kWidth = 4 when H·W % 4 == 0 (a unit is one float4, or 4 bf16 in 8 bytes;
// planes start on unit boundaries), 1 otherwise. Block (s, c) covers units [s · chunk, min((s + 1) · chunk,
// units)) of channel c; thread t the units begin + t, begin + t + blockDim.x, …: a warp reads 32 consecutive
// units of a plane.
struct BnSlices {
    int c = 0, hw = 0;
    int width = 1;        // kWidth: values per unit
    int plane_units = 0;  // units per plane: H·W / width
    int units = 0;        // units per channel: N · plane_units
    int splits = 1, chunk = 0;
    // Width 4 and every tensor the kernel touches aligned to a unit (16 bytes for float, 8 for bf16): a unit
    // is one vector load or store. Otherwise the same units go as scalars: the same values in the same
    // order, so the same bits.
    bool vector_access = false;
};

// The number of values block `split` covers.
__device__ inline int slice_values(const BnSlices& s, int split) {
    return max(min((split + 1) * s.chunk, s.units) - split * s.chunk, 0) * s.width;
}

// Walks one thread's units in block (split, channel) of s, yielding each unit's element offset; it advances
// without a division per unit.
class UnitCursor {
public:
    __device__ UnitCursor(const BnSlices& s, int channel, int split)
        : channel_(channel), channels_(s.c), hw_(s.hw), width_(s.width), plane_units_(s.plane_units) {
        const int step = static_cast<int>(blockDim.x);
        const int begin = split * s.chunk + static_cast<int>(threadIdx.x);
        const int end = min((split + 1) * s.chunk, s.units);
        left_ = begin < end ? (end - begin + step - 1) / step : 0;
        n_ = begin / plane_units_, i_ = begin % plane_units_;
        step_planes_ = step / plane_units_, step_units_ = step % plane_units_;
    }

    __device__ int left() const { return left_; }

    // The current unit's offset (< N·C·H·W ≤ INT_MAX, which bn_dims checks); moves to the thread's next unit.
    __device__ int next() {
        const int offset = (n_ * channels_ + channel_) * hw_ + i_ * width_;
        --left_;
        n_ += step_planes_, i_ += step_units_;
        if (i_ >= plane_units_) i_ -= plane_units_, ++n_;
        return offset;
    }

private:
    int channel_, channels_, hw_, width_, plane_units_;
    int left_, n_, i_, step_planes_, step_units_;
};

// Up to kBnUnitsPerThread units of one thread, by offset: the kernels issue all of a batch's loads before
// they use any value, so that a thread has several loads in flight (one at a time is latency-bound).
struct UnitBatch {
    int offset[kBnUnitsPerThread];
    int size;
};

template <class Cursor>  // UnitCursor, PixelCursor: int next(), int left()
__device__ UnitBatch next_batch(Cursor& cursor) {
    UnitBatch batch;
    batch.size = min(cursor.left(), kBnUnitsPerThread);
#pragma unroll
    for (int k = 0; k < kBnUnitsPerThread; ++k) batch.offset[k] = k < batch.size ? cursor.next() : 0;
    return batch;
}

// A batch's values, v[k][w] = value w of unit k (rows ≥ size are 0 and unused), in float whatever the
// storage: the kernels compute in float.
template <int kWidth>
struct BatchValues {
    float v[kBnUnitsPerThread][kWidth];
};

// A width-4 unit of bf16 as one 8-byte access (a float unit uses float4).
struct alignas(8) Bf16Unit {
    bf16 v[4];
};

// Units of T = float or bf16 (storage), widened exactly on load and rounded once on store (cuda/bf16.cuh).
template <int kWidth, class T>
__device__ BatchValues<kWidth> load_batch(const T* p, const UnitBatch& batch, bool vector_access) {
    BatchValues<kWidth> out{};
#pragma unroll
    for (int k = 0; k < kBnUnitsPerThread; ++k) {
        if (k >= batch.size) continue;
        const T* unit = p + batch.offset[k];
        if constexpr (kWidth == 4) {
            if (vector_access) {
                if constexpr (std::is_same_v<T, float>) {
                    const float4 q = *reinterpret_cast<const float4*>(unit);
                    out.v[k][0] = q.x, out.v[k][1] = q.y, out.v[k][2] = q.z, out.v[k][3] = q.w;
                } else {
                    const Bf16Unit q = *reinterpret_cast<const Bf16Unit*>(unit);
#pragma unroll
                    for (int w = 0; w < 4; ++w) out.v[k][w] = to_float(q.v[w]);
                }
                continue;
            }
        }
#pragma unroll
        for (int w = 0; w < kWidth; ++w) out.v[k][w] = to_float(unit[w]);
    }
    return out;
}

template <int kWidth, class T>
__device__ void store_batch(T* p, const UnitBatch& batch, const BatchValues<kWidth>& values,
                            bool vector_access) {
#pragma unroll
    for (int k = 0; k < kBnUnitsPerThread; ++k) {
        if (k >= batch.size) continue;
        T* unit = p + batch.offset[k];
        const float* v = values.v[k];
        if constexpr (kWidth == 4) {
            if (vector_access) {
                if constexpr (std::is_same_v<T, float>) {
                    *reinterpret_cast<float4*>(unit) = make_float4(v[0], v[1], v[2], v[3]);
                } else {
                    Bf16Unit q;
#pragma unroll
                    for (int w = 0; w < 4; ++w) q.v[w] = from_float<bf16>(v[w]);
                    *reinterpret_cast<Bf16Unit*>(unit) = q;
                }
                continue;
            }
        }
#pragma unroll
        for (int w = 0; w < kWidth; ++w) unit[w] = from_float<T>(v[w]);
    }
}

// The gradient the backward reads (incoming_gradient's rule, cuda/batch_norm_common.cuh), for a batch: dy,
// or with a fused ReLU whose output is relu_y, ReLU's backward of it.
template <int kWidth, class T>
__device__ BatchValues<kWidth> load_gradients(const T* dy, const T* relu_y, const UnitBatch& batch,
                                              bool vector_access) {
    BatchValues<kWidth> g = load_batch<kWidth>(dy, batch, vector_access);
    if (relu_y == nullptr) return g;
    const BatchValues<kWidth> y = load_batch<kWidth>(relu_y, batch, vector_access);
#pragma unroll
    for (int k = 0; k < kBnUnitsPerThread; ++k) {
#pragma unroll
        for (int w = 0; w < kWidth; ++w) {
            if (k < batch.size) g.v[k][w] = relu_gradient(y.v[k][w], g.v[k][w]);
        }
    }
    return g;
}

// Welford of a batch's values minus pivot, in two passes over registers (the mean, then Σ (value − mean)²):
// one division per batch where Welford's update takes one per value, each waiting on the last.
template <int kWidth>
__device__ Welford welford_of_batch(const BatchValues<kWidth>& values, int units, float pivot) {
    float sum = 0.0f;
#pragma unroll
    for (int k = 0; k < kBnUnitsPerThread; ++k) {
#pragma unroll
        for (int w = 0; w < kWidth; ++w) {
            if (k < units) sum += values.v[k][w] - pivot;
        }
    }
    const int count = units * kWidth;
    const float mean = sum / static_cast<float>(count);
    float m2 = 0.0f;
#pragma unroll
    for (int k = 0; k < kBnUnitsPerThread; ++k) {
#pragma unroll
        for (int w = 0; w < kWidth; ++w) {
            if (k >= units) continue;
            const float centered = values.v[k][w] - pivot - mean;
            m2 += centered * centered;
        }
    }
    return {mean, m2, count};
}

// The two sums of the backward: Σ dy and Σ dy · (x − mean).
struct GradSums {
    float dy, dy_xmu;

    __device__ static GradSums empty() { return {0.0f, 0.0f}; }
    __device__ void merge(const GradSums& b) { dy += b.dy, dy_xmu += b.dy_xmu; }
    // Adds a batch's incoming gradients g and inputs x, in the batch's order.
    template <int kWidth>
    __device__ void add_batch(const BatchValues<kWidth>& g, const BatchValues<kWidth>& x, int units,
                              float mean) {
#pragma unroll
        for (int k = 0; k < kBnUnitsPerThread; ++k) {
#pragma unroll
            for (int w = 0; w < kWidth; ++w) {
                if (k >= units) continue;
                dy += g.v[k][w];
                dy_xmu += g.v[k][w] * (x.v[k][w] - mean);
            }
        }
    }
    __device__ GradSums shfl_down(int offset) const {
        return {__shfl_down_sync(kFullMask, dy, offset), __shfl_down_sync(kFullMask, dy_xmu, offset)};
    }
    __device__ GradSums broadcast_lane0() const {
        return {__shfl_sync(kFullMask, dy, 0), __shfl_sync(kFullMask, dy_xmu, 0)};
    }
};

// Partials live in two (C, S) arrays one after the other: the first and second field of each block's result.
__device__ inline void store_partial(float* partials, int channels, int splits, int channel, int split,
                                     float first, float second) {
    partials[channel * splits + split] = first;
    partials[(channels + channel) * splits + split] = second;
}

// Lane l loads partials l, l + 32, … of the channel as make(first, second, split) and merges them in that
// order (S ≤ 32: just partial l), then the warp merges the lanes in a fixed tree; every lane gets lane 0's
// total (the same bits in every warp of every block that asks).
template <class Acc, class Make>
__device__ Acc merge_partials(const float* partials, int channels, int splits, int channel, Make make) {
    const int lane = threadIdx.x % kBnWarp;
    const float* first = partials + channel * splits;
    const float* second = partials + (channels + channel) * splits;
    Acc acc = Acc::empty();
    if (lane < splits) acc = make(first[lane], second[lane], lane);
#pragma unroll 4  // so that a lane's loads are in flight together
    for (int split = lane + kBnWarp; split < splits; split += kBnWarp)
        acc.merge(make(first[split], second[split], split));
    acc = reduce::warp_reduce(acc);
    return acc.broadcast_lane0();
}

// Block (s, c): (count, mean, M2) of its slice of channel c, shifted by the channel's first value
// (x[0, c, 0, 0]) so that a large common offset does not cost the mean its low bits; the threads' results
// merge with Chan's formula in a fixed shuffle tree. partials: mean (C, S) then M2 (C, S); pivots (C): the
// shifts, for the normalize, which must not read them from x (y may be x).
template <int kWidth, class T>
__global__ void batch_norm_stats_kernel(const T* x, float* partials, float* pivots, BnSlices s) {
    const int split = blockIdx.x, channel = blockIdx.y;
    const float pivot = to_float(x[static_cast<int64_t>(channel) * s.hw]);
    if (split == 0 && threadIdx.x == 0) pivots[channel] = pivot;
    UnitCursor cursor(s, channel, split);
    Welford acc = Welford::empty();
    while (cursor.left() > 0) {
        const UnitBatch batch = next_batch(cursor);
        acc.merge(welford_of_batch(load_batch<kWidth>(x, batch, s.vector_access), batch.size, pivot));
    }
    acc = reduce::block_reduce(acc);
    if (threadIdx.x == 0) store_partial(partials, s.c, s.splits, channel, split, acc.mean, acc.m2);
}

// Where the normalize finds a channel's mean and invstd, and what it saves.
struct ForwardStatistics {
    // Training: the statistics kernel's partials and slices, merged in every block (no kernel of its own:
    // one launch fewer, which the smaller layers notice). nullptr: evaluation, from the running statistics.
    const float* partials;
    const float* pivots;
    BnSlices stats;
    float eps;
    float momentum_factor;  // training: < 0: no running statistics to update
    float* running_mean;
    float* running_var;
    const float* input_shift;  // nullptr, or what x lacks per channel: the running mean adds it
    float* save_mean;
    float* save_invstd;
    bool from_saves;  // the normalize reads save_mean and save_invstd (a finalize kernel wrote them)
};

struct ChannelNorm {
    float mean, invstd;
};

// Evaluation: channel c's statistics from the running ones; the writer stores them as the saves.
__device__ ChannelNorm evaluation_norm(const ForwardStatistics& f, int channel, bool writer) {
    const ChannelNorm norm{f.running_mean[channel], 1.0f / sqrtf(f.running_var[channel] + f.eps)};
    if (writer) f.save_mean[channel] = norm.mean, f.save_invstd[channel] = norm.invstd;
    return norm;
}

// Training: channel c's statistics from its merged (count, mean, M2) about its pivot; the writer stores the
// saves and updates the running statistics.
__device__ ChannelNorm batch_norm_of(const ForwardStatistics& f, int channel, const Welford& acc,
                                     bool writer) {
    ChannelNorm norm;
    const int count = acc.count;
    const float pivot = f.pivots != nullptr ? f.pivots[channel] : 0.0f;
    norm.mean = pivot + acc.mean;                          // undo the pivot shift
    const float var = acc.m2 / static_cast<float>(count);  // biased: normalizes this batch
    norm.invstd = 1.0f / sqrtf(var + f.eps);
    if (writer) {
        f.save_mean[channel] = norm.mean, f.save_invstd[channel] = norm.invstd;
        if (f.momentum_factor >= 0.0f) {
            const float factor = f.momentum_factor;
            const float unbiased = acc.m2 / static_cast<float>(count - 1);
            // The running mean is of the input with its folded shift; the saves stay x's own (the backward
            // reads x).
            const float mean = f.input_shift != nullptr ? norm.mean + f.input_shift[channel] : norm.mean;
            f.running_mean[channel] = (1.0f - factor) * f.running_mean[channel] + factor * mean;
            f.running_var[channel] = (1.0f - factor) * f.running_var[channel] + factor * unbiased;
        }
    }
    return norm;
}

// Channel c's statistics for every thread of the block; block (0, c)'s thread 0 writes the saves and
// updates the running statistics. The whole block must call it (full-warp shuffles).
__device__ ChannelNorm channel_norm(const ForwardStatistics& f, int channel, bool writer) {
    if (f.from_saves) return {f.save_mean[channel], f.save_invstd[channel]};
    if (f.partials == nullptr) return evaluation_norm(f, channel, writer);
    const BnSlices& s = f.stats;
    const Welford acc =
        merge_partials<Welford>(f.partials, s.c, s.splits, channel, [&](float mean, float m2, int split) {
            return Welford{mean, m2, slice_values(s, split)};
        });
    return batch_norm_of(f, channel, acc, writer);
}

// Block (s, c) normalizes its slice of channel c. relu: a following ReLU is fused in (its rule applied
// before the store).
template <int kWidth, class T>
__global__ void batch_norm_normalize_kernel(const T* x, ForwardStatistics f, const float* weight,
                                            const float* bias, T* y, BnSlices s, bool relu) {
    const int split = blockIdx.x, channel = blockIdx.y;
    UnitCursor cursor(s, channel, split);
    UnitBatch batch = next_batch(cursor);
    // Loaded before the statistics' merge, so that the two latencies overlap.
    BatchValues<kWidth> values = load_batch<kWidth>(x, batch, s.vector_access);
    const ChannelNorm norm = channel_norm(f, channel, split == 0 && threadIdx.x == 0);
    const float gamma = channel_gamma(weight, channel), beta = channel_beta(bias, channel);
    for (;;) {
#pragma unroll
        for (int k = 0; k < kBnUnitsPerThread; ++k) {
#pragma unroll
            for (int w = 0; w < kWidth; ++w) {
                float& v = values.v[k][w];
                if (k < batch.size) v = normalized_value(v, norm.mean, norm.invstd, gamma, beta, relu);
            }
        }
        store_batch<kWidth>(y, batch, values, s.vector_access);
        if (cursor.left() == 0) break;
        batch = next_batch(cursor);
        values = load_batch<kWidth>(x, batch, s.vector_access);
    }
}

// Block (s, c): Σ dy and Σ dy · (x − mean) over its slice. partials: Σ dy (C, S) then Σ dy · (x − mean)
// (C, S).
template <int kWidth, class T>
__global__ void batch_norm_grad_sums_kernel(const T* x, const T* dy, const T* relu_y, const float* save_mean,
                                            float* partials, BnSlices s) {
    const int split = blockIdx.x, channel = blockIdx.y;
    const float mean = save_mean[channel];
    UnitCursor cursor(s, channel, split);
    GradSums acc = GradSums::empty();
    while (cursor.left() > 0) {
        const UnitBatch batch = next_batch(cursor);
        const BatchValues<kWidth> g = load_gradients<kWidth>(dy, relu_y, batch, s.vector_access);
        acc.add_batch(g, load_batch<kWidth>(x, batch, s.vector_access), batch.size, mean);
    }
    acc = reduce::block_reduce(acc);
    if (threadIdx.x == 0) store_partial(partials, s.c, s.splits, channel, split, acc.dy, acc.dy_xmu);
}

// What the dx kernel reads besides the tensors.
struct BackwardStatistics {
    const float* weight;  // nullptr: 1
    const float* save_mean;
    const float* save_invstd;
    // The grad sums kernel's partials and slices (nullptr: no sums, evaluation without dweight and dbias),
    // merged in every block (no kernel of its own); block (0, c) writes dweight and dbias (each nullptr:
    // not wanted).
    const float* partials;
    BnSlices stats;
    float* dweight;
    float* dbias;
    bool training;
};

// dx = γ · invstd · (g − mean_dy − x̂ · mean_dy_xhat): g the incoming gradient, x̂ = (x − mean) · invstd, the
// means Σ dy / M and Σ dy · x̂ / M in training and 0 otherwise.
struct DxRule {
    float mean, invstd, scale;  // scale = γ · invstd
    float mean_dy, mean_dy_xhat;
    bool training;

    __device__ float operator()(float g, float x) const {
        if (!training) return scale * g;
        const float x_hat = (x - mean) * invstd;
        return scale * (g - (mean_dy + x_hat * mean_dy_xhat));
    }
};

struct GradientMeans {
    float dy, dy_xhat;  // Σ dy / M and Σ dy · x̂ / M
};

// From channel c's merged sums: the means the training dx subtracts; the writer stores dbias = Σ dy and
// dweight = Σ dy · x̂ (each nullptr: not wanted).
__device__ GradientMeans gradient_means(const GradSums& sums, float invstd, int count, float* dweight,
                                        float* dbias, int channel, bool writer) {
    const float sum_dy_xhat = sums.dy_xmu * invstd;
    if (writer) {
        if (dbias != nullptr) dbias[channel] = sums.dy;
        if (dweight != nullptr) dweight[channel] = sum_dy_xhat;
    }
    const float inv_count = 1.0f / static_cast<float>(count);
    return {sums.dy * inv_count, sum_dy_xhat * inv_count};
}

// Channel c's dx rule for every thread of the block; block (0, c)'s thread 0 writes dweight and dbias. The
// whole block must call it (full-warp shuffles).
__device__ DxRule dx_rule(const BackwardStatistics& b, int channel, bool writer) {
    DxRule rule;
    rule.mean = b.save_mean[channel], rule.invstd = b.save_invstd[channel];
    rule.scale = channel_gamma(b.weight, channel) * rule.invstd;
    rule.mean_dy = 0.0f, rule.mean_dy_xhat = 0.0f;
    rule.training = b.training;
    if (b.partials == nullptr) return rule;
    const GradSums sums = merge_partials<GradSums>(b.partials, b.stats.c, b.stats.splits, channel,
                                                   [](float dy, float dy_xmu, int) {
                                                       return GradSums{dy, dy_xmu};
                                                   });
    const GradientMeans means =
        gradient_means(sums, rule.invstd, b.stats.units * b.stats.width, b.dweight, b.dbias, channel, writer);
    rule.mean_dy = means.dy, rule.mean_dy_xhat = means.dy_xhat;
    return rule;
}

// What the dx kernel reads for a batch: the incoming gradient, and x in training (otherwise 0).
template <int kWidth>
struct DxInputs {
    BatchValues<kWidth> g, x;
};

template <int kWidth, class T>
__device__ DxInputs<kWidth> load_dx_inputs(const T* x, const T* dy, const T* relu_y, bool training,
                                           const UnitBatch& batch, bool vector_access) {
    DxInputs<kWidth> in{};
    in.g = load_gradients<kWidth>(dy, relu_y, batch, vector_access);
    if (training) in.x = load_batch<kWidth>(x, batch, vector_access);
    return in;
}

// Block (s, c) writes dx over its slice of channel c.
template <int kWidth, class T>
__global__ void batch_norm_dx_kernel(const T* x, const T* dy, const T* relu_y, BackwardStatistics b, T* dx,
                                     BnSlices s) {
    const int split = blockIdx.x, channel = blockIdx.y;
    UnitCursor cursor(s, channel, split);
    UnitBatch batch = next_batch(cursor);
    // Loaded before the sums' merge, so that the two latencies overlap.
    DxInputs<kWidth> in = load_dx_inputs<kWidth>(x, dy, relu_y, b.training, batch, s.vector_access);
    const DxRule rule = dx_rule(b, channel, split == 0 && threadIdx.x == 0);
    for (;;) {
#pragma unroll
        for (int k = 0; k < kBnUnitsPerThread; ++k) {
#pragma unroll
            for (int w = 0; w < kWidth; ++w) {
                if (k < batch.size) in.g.v[k][w] = rule(in.g.v[k][w], in.x.v[k][w]);
            }
        }
        store_batch<kWidth>(dx, batch, in.g, s.vector_access);
        if (cursor.left() == 0) break;
        batch = next_batch(cursor);
        in = load_dx_inputs<kWidth>(x, dy, relu_y, b.training, batch, s.vector_access);
    }
}

// ---- NHWC (channels_last): the reductions' layout is batch_norm_common.cuh's NhwcSlices ----

// Block (s, g): (count, mean, M2) of its channels over slice s, shifted by each channel's first value x[c]
// (as the NCHW kernel's pivot); partials mean (C, S) then M2 (C, S); pivots (C).
template <class T>
__global__ void batch_norm_nhwc_stats_kernel(const T* x, float* partials, float* pivots, NhwcSlices s) {
    const int split = blockIdx.x, channel = blockIdx.y * s.group + threadIdx.x;
    const bool live = channel < s.c;  // the last group may be partial
    Welford acc = Welford::empty();
    if (live) {
        const float pivot = to_float(x[channel]);
        if (split == 0 && threadIdx.y == 0) pivots[channel] = pivot;
        PixelCursor cursor(s, split, channel);
        while (cursor.left() > 0) {
            const UnitBatch batch = next_batch(cursor);
            acc.merge(welford_of_batch(load_batch<1>(x, batch, false), batch.size, pivot));
        }
    }
    acc = reduce_rows(acc);
    if (live && threadIdx.y == 0) store_partial(partials, s.c, s.splits, channel, split, acc.mean, acc.m2);
}

// One warp per channel: merges the channel's S partials (merge_partials' fixed order) into save_mean and
// save_invstd and updates the running statistics; evaluation (f.partials nullptr): the saves from the
// running statistics.
__global__ void batch_norm_nhwc_finalize_kernel(ForwardStatistics f, NhwcSlices s) {
    const int channel = warp_row();
    if (channel >= s.c) return;  // whole warps only
    const bool writer = threadIdx.x % kBnWarp == 0;
    if (f.partials == nullptr) {
        evaluation_norm(f, channel, writer);
        return;
    }
    const Welford acc =
        merge_partials<Welford>(f.partials, s.c, s.splits, channel, [&](float mean, float m2, int split) {
            return Welford{mean, m2, nhwc_slice_pixels(s, split)};
        });
    batch_norm_of(f, channel, acc, writer);
}

// One warp per channel: merges the caller's partials of the channel (lane l: p = l, l + 32, … in turn, then
// the warp's fixed tree) into the saves and the running statistics' update (no pivot: pivots nullptr).
__global__ void batch_norm_from_partials_finalize_kernel(ForwardStatistics f,
                                                         const BatchNorm2dPartialStats* partials,
                                                         int channels, int per_channel) {
    const int channel = warp_row();
    if (channel >= channels) return;  // whole warps only
    const int lane = static_cast<int>(threadIdx.x) % kBnWarp;
    const BatchNorm2dPartialStats* mine = partials + static_cast<int64_t>(channel) * per_channel;
    Welford acc = Welford::empty();
    for (int p = lane; p < per_channel; p += kBnWarp)
        acc.merge(Welford{mine[p].mean, mine[p].m2, mine[p].count});
    acc = reduce::warp_reduce(acc);
    batch_norm_of(f, channel, acc.broadcast_lane0(), lane == 0);
}

// Block (s, g): Σ dy and Σ dy · (x − mean) of its channels over slice s; partials as the NCHW kernel's.
template <class T>
__global__ void batch_norm_nhwc_grad_sums_kernel(const T* x, const T* dy, const T* relu_y,
                                                 const float* save_mean, float* partials, NhwcSlices s) {
    const int split = blockIdx.x, channel = blockIdx.y * s.group + threadIdx.x;
    const bool live = channel < s.c;
    GradSums acc = GradSums::empty();
    if (live) {
        const float mean = save_mean[channel];
        PixelCursor cursor(s, split, channel);
        while (cursor.left() > 0) {
            const UnitBatch batch = next_batch(cursor);
            const BatchValues<1> g = load_gradients<1>(dy, relu_y, batch, false);
            acc.add_batch(g, load_batch<1>(x, batch, false), batch.size, mean);
        }
    }
    acc = reduce_rows(acc);
    if (live && threadIdx.y == 0) store_partial(partials, s.c, s.splits, channel, split, acc.dy, acc.dy_xmu);
}

// One warp per channel: merges the channel's S partial sums, writes dweight and dbias (each nullptr: not
// wanted) and the dx kernel's means mean_dy, mean_dy_xhat (C) each.
__global__ void batch_norm_nhwc_grad_finalize_kernel(const float* partials, const float* save_invstd,
                                                     float* dweight, float* dbias, float* mean_dy,
                                                     float* mean_dy_xhat, NhwcSlices s) {
    const int channel = warp_row();
    if (channel >= s.c) return;  // whole warps only
    const bool writer = threadIdx.x % kBnWarp == 0;
    const GradSums sums =
        merge_partials<GradSums>(partials, s.c, s.splits, channel, [](float dy, float dy_xmu, int) {
            return GradSums{dy, dy_xmu};
        });
    const GradientMeans means =
        gradient_means(sums, save_invstd[channel], s.pixels, dweight, dbias, channel, writer);
    if (writer) mean_dy[channel] = means.dy, mean_dy_xhat[channel] = means.dy_xhat;
}

// How the NHWC normalize and dx kernels cover the tensor: element-wise in memory order, in units of width
// consecutive values (4 when C % 4 == 0: one pixel's channels c … c + 3, one vector access when aligned;
// else 1). Block b covers units [b · chunk, min((b + 1) · chunk, units)), thread t the units begin + t,
// begin + t + blockDim.x, …: a warp reads consecutive units.
struct NhwcApply {
    int c = 0, width = 1, units = 0, chunk = 0;
    bool vector_access = false;
};

// Up to kBnUnitsPerThread units of one thread, with the channel of each unit's first value.
struct ChannelBatch {
    UnitBatch units;
    int channel[kBnUnitsPerThread];
};

// Walks one thread's units of an NhwcApply block; the channel (offset % C) advances without a division.
class ChannelCursor {
  public:
    __device__ explicit ChannelCursor(const NhwcApply& a) : channels_(a.c), width_(a.width) {
        const int step = static_cast<int>(blockDim.x);
        const int block_begin = static_cast<int>(blockIdx.x) * a.chunk;
        const int begin = block_begin + static_cast<int>(threadIdx.x);
        const int end = min(block_begin + a.chunk, a.units);
        left_ = begin < end ? (end - begin + step - 1) / step : 0;
        unit_ = begin, step_ = step;
        channel_ = left_ > 0 ? (begin * width_) % channels_ : 0;
        channel_step_ = (step * width_) % channels_;
    }

    __device__ int left() const { return left_; }

    __device__ ChannelBatch next_batch() {
        ChannelBatch batch;
        batch.units.size = min(left_, kBnUnitsPerThread);
#pragma unroll
        for (int k = 0; k < kBnUnitsPerThread; ++k) {
            batch.units.offset[k] = 0, batch.channel[k] = 0;
            if (k >= batch.units.size) continue;
            batch.units.offset[k] = unit_ * width_, batch.channel[k] = channel_;
            --left_;
            if (left_ == 0) continue;  // the next unit may lie past INT_MAX
            unit_ += step_;
            channel_ += channel_step_;
            if (channel_ >= channels_) channel_ -= channels_;
        }
        return batch;
    }

  private:
    int channels_, width_;
    int left_, unit_, step_, channel_, channel_step_;
};

// y = normalized_value(x) per element, from the finalize's save_mean and save_invstd; relu: a following
// ReLU fused in.
template <int kWidth, class T>
__global__ void batch_norm_nhwc_normalize_kernel(const T* x, const float* mean, const float* invstd,
                                                 const float* weight, const float* bias, T* y, NhwcApply a,
                                                 bool relu) {
    ChannelCursor cursor(a);
    while (cursor.left() > 0) {
        const ChannelBatch batch = cursor.next_batch();
        BatchValues<kWidth> values = load_batch<kWidth>(x, batch.units, a.vector_access);
#pragma unroll
        for (int k = 0; k < kBnUnitsPerThread; ++k) {
#pragma unroll
            for (int w = 0; w < kWidth; ++w) {
                if (k >= batch.units.size) continue;
                const int c = batch.channel[k] + w;
                float& v = values.v[k][w];
                v = normalized_value(v, mean[c], invstd[c], weight, bias, c, relu);
            }
        }
        store_batch<kWidth>(y, batch.units, values, a.vector_access);
    }
}

// What the NHWC dx kernel reads besides the tensors: the saves, γ (nullptr: 1) and, in training, the grad
// finalize's means.
struct NhwcGradient {
    const float* weight;
    const float* save_mean;
    const float* save_invstd;
    const float* mean_dy;       // nullptr: evaluation
    const float* mean_dy_xhat;  // nullptr: evaluation
    bool training;
};

// dx per element by DxRule (the NCHW kernel's rule), channel c = offset % C.
template <int kWidth, class T>
__global__ void batch_norm_nhwc_dx_kernel(const T* x, const T* dy, const T* relu_y, NhwcGradient b, T* dx,
                                          NhwcApply a) {
    ChannelCursor cursor(a);
    while (cursor.left() > 0) {
        const ChannelBatch batch = cursor.next_batch();
        DxInputs<kWidth> in = load_dx_inputs<kWidth>(x, dy, relu_y, b.training, batch.units, a.vector_access);
#pragma unroll
        for (int k = 0; k < kBnUnitsPerThread; ++k) {
#pragma unroll
            for (int w = 0; w < kWidth; ++w) {
                if (k >= batch.units.size) continue;
                const int c = batch.channel[k] + w;
                DxRule rule;
                rule.mean = b.save_mean[c], rule.invstd = b.save_invstd[c];
                rule.scale = channel_gamma(b.weight, c) * rule.invstd;
                rule.training = b.training;
                rule.mean_dy = b.training ? b.mean_dy[c] : 0.0f;
                rule.mean_dy_xhat = b.training ? b.mean_dy_xhat[c] : 0.0f;
                in.g.v[k][w] = rule(in.g.v[k][w], in.x.v[k][w]);
            }
        }
        store_batch<kWidth>(dx, batch.units, in.g, a.vector_access);
    }
}

}  // namespace kernels

namespace {

using bn_detail::align16;
using bn_detail::bn_dims;
using bn_detail::nhwc_reduce_block;
using bn_detail::nhwc_reduce_grid;
using bn_detail::nhwc_slices;
using kernels::BnDims;
using kernels::BnSlices;
using kernels::NhwcApply;
using kernels::NhwcSlices;

// Workspace layout: the statistics or gradient sums kernel's partials, 2 · C · S floats (S: bn_dims' for
// NCHW, nhwc_slices' for NHWC), then the statistics' pivots, C floats (forward only), then, NHWC only, the
// dx kernel's two means, 2 · C floats (backward only).
size_t partials_bytes(const BnDims& d) {
    return align16(2 * sizeof(float) * d.c * d.splits);
}
size_t nhwc_partials_bytes(const NhwcSlices& s) {
    return align16(2 * sizeof(float) * s.c * s.splits);
}
size_t pivots_bytes(const BnDims& d) {
    return align16(sizeof(float) * d.c);
}
size_t gradient_means_bytes(const BnDims& d) {
    return align16(2 * sizeof(float) * d.c);
}

// What batch_norm2d_workspace_bytes returns: enough for either format, so that one size serves both.
size_t workspace_bytes_for(const BnDims& d) {
    const size_t nchw = partials_bytes(d) + pivots_bytes(d);
    const size_t nhwc = nhwc_partials_bytes(nhwc_slices(d)) + pivots_bytes(d) + gradient_means_bytes(d);
    return std::max(nchw, nhwc);
}

void check_workspace(const char* op, const BnDims& d, const Shape& x, const void* workspace, size_t bytes) {
    const size_t needed = workspace_bytes_for(d);
    CUDACNN_CHECK(workspace != nullptr && bytes >= needed,
                  "{}: the workspace for input {} must hold {} bytes (batch_norm2d_workspace_bytes), got {} "
                  "bytes at {}",
                  op, x, needed, bytes, workspace);
}

// Validates like the reference, in its order; returns the running statistics' update factor (−1: none),
// incrementing num_batches_tracked when a training step updates them.
float check_forward_and_count(const BnDims& d, const Shape& x, BatchNorm2dRunningStatsView* running,
                              const cpu::BatchNorm2dOptions& options) {
    bn_detail::check_forward("batch_norm2d", d, x, running, options);
    const double factor = bn_detail::count_training_batch(running, options);
    return factor < 0.0 ? -1.0f : static_cast<float>(factor);
}

// Whether every tensor (nullptr: none) of elements T starts on a width-4 unit's boundary (16 bytes for
// float, 8 for bf16), where a unit can move as one vector access.
template <class T>
bool unit_aligned(std::initializer_list<const T*> tensors) {
    return std::all_of(tensors.begin(), tensors.end(), [](const T* p) {
        return p == nullptr || reinterpret_cast<uintptr_t>(p) % (4 * sizeof(T)) == 0;
    });
}

// A kernel's slices of input d: `splits` blocks per channel; vector access when every tensor it touches
// (nullptr: none) is unit-aligned. The unit width depends on the shape only, so that an unaligned
// tensor changes how values load but not which thread adds which value: the results keep their bits.
template <class T>
BnSlices make_slices(const BnDims& d, int splits, std::initializer_list<const T*> tensors) {
    BnSlices s;
    s.c = d.c, s.hw = d.hw;
    s.width = d.hw % 4 == 0 ? 4 : 1;
    s.plane_units = d.hw / s.width;
    s.units = d.n * s.plane_units;
    s.splits = splits;
    s.chunk = static_cast<int>(ceil_div(s.units, splits));
    s.vector_access = s.width == 4 && unit_aligned(tensors);
    return s;
}

// The reductions' slices: bn_dims' S (≤ 32, about 2048 values a block, so that small-C layers still fill
// the GPU), which sizes the workspace.
template <class T>
BnSlices reduction_slices(const BnDims& d, std::initializer_list<const T*> tensors) {
    return make_slices(d, d.splits, tensors);
}

// The normalize's and dx's slices: about kBnApplyValuesPerBlock values a block (one batch of float4s a
// thread), without the reductions' cap on S, since they write independent values.
template <class T>
BnSlices apply_slices(const BnDims& d, std::initializer_list<const T*> tensors) {
    return make_slices(d, static_cast<int>(ceil_div(d.count, kernels::kBnApplyValuesPerBlock)), tensors);
}

dim3 slices_grid(const BnSlices& s) {
    return dim3(static_cast<unsigned>(s.splits), static_cast<unsigned>(s.c));
}

// Launches kernel<4> or kernel<1> by the slices' unit width: call(kernel) launches the given instance.
template <class Slices, class Call, class Kernel4, class Kernel1>  // Slices: BnSlices or NhwcApply
void launch_by_width(const Slices& s, Call call, Kernel4 kernel4, Kernel1 kernel1) {
    if (s.width == 4) {
        call(kernel4);
    } else {
        call(kernel1);
    }
}

// The NHWC normalize's and dx's units of input d: width 4 when C % 4 == 0 (a unit is one pixel's channels
// c … c + 3), vector access when every tensor (nullptr: none) is unit-aligned; about
// kBnApplyValuesPerBlock values a block.
template <class T>
NhwcApply nhwc_apply(const BnDims& d, std::initializer_list<const T*> tensors) {
    NhwcApply a;
    a.c = d.c;
    a.width = d.c % 4 == 0 ? 4 : 1;
    a.units = d.count * (d.c / a.width);  // N·C·H·W / width ≤ INT_MAX (bn_dims)
    a.chunk = kernels::kBnApplyValuesPerBlock / a.width;
    a.vector_access = a.width == 4 && unit_aligned(tensors);
    return a;
}

dim3 nhwc_apply_grid(const NhwcApply& a) {
    return dim3(static_cast<unsigned>(ceil_div(a.units, a.chunk)));
}

// batch_norm2d(_relu)'s NHWC kernels, after the launcher's checks (f: everything but the partials):
// training: statistics, finalize, normalize; evaluation: finalize (the saves), normalize.
template <class T>
void batch_norm2d_nhwc(bool relu, const T* x, const float* weight, const float* bias, T* y,
                       kernels::ForwardStatistics f, const BnDims& d, bool training, void* workspace,
                       cudaStream_t stream) {
    const NhwcSlices s = nhwc_slices(d);
    if (training) {
        float* partials = static_cast<float*>(workspace);
        float* pivots = reinterpret_cast<float*>(static_cast<char*>(workspace) + nhwc_partials_bytes(s));
        f.partials = partials, f.pivots = pivots;
        launch(kernels::batch_norm_nhwc_stats_kernel<T>, nhwc_reduce_grid(s), nhwc_reduce_block(s), 0, stream,
               x, partials, pivots, s);
    }
    launch(kernels::batch_norm_nhwc_finalize_kernel, bn_detail::warp_per_row_grid(d.c),
           dim3(kernels::kBnFinalizeBlock), 0, stream, f, s);
    const NhwcApply a = nhwc_apply<T>(d, {x, y});
    launch_by_width(
        a,
        [&](auto kernel) {
            launch(kernel, nhwc_apply_grid(a), dim3(kernels::kBnReduceBlock), 0, stream, x,
                   static_cast<const float*>(f.save_mean), static_cast<const float*>(f.save_invstd), weight,
                   bias, y, a, relu);
        },
        kernels::batch_norm_nhwc_normalize_kernel<4, T>, kernels::batch_norm_nhwc_normalize_kernel<1, T>);
}

// batch_norm2d(_relu)_backward's NHWC kernels, after the launcher's checks: with sums (training, or dweight
// or dbias wanted) the gradient sums and their finalize, then dx.
template <class T>
void batch_norm2d_backward_nhwc(const T* relu_y, const T* x, const float* weight, const float* save_mean,
                                const float* save_invstd, const T* dy, T* dx, float* dweight, float* dbias,
                                const BnDims& d, bool training, void* workspace, cudaStream_t stream) {
    kernels::NhwcGradient b{weight, save_mean, save_invstd, nullptr, nullptr, training};
    if (training || dweight != nullptr || dbias != nullptr) {
        const NhwcSlices s = nhwc_slices(d);
        float* partials = static_cast<float*>(workspace);
        float* means = reinterpret_cast<float*>(static_cast<char*>(workspace) + nhwc_partials_bytes(s) +
                                                bn_detail::align16(sizeof(float) * d.c));
        launch(kernels::batch_norm_nhwc_grad_sums_kernel<T>, nhwc_reduce_grid(s), nhwc_reduce_block(s), 0,
               stream, x, dy, relu_y, save_mean, partials, s);
        launch(kernels::batch_norm_nhwc_grad_finalize_kernel, bn_detail::warp_per_row_grid(d.c),
               dim3(kernels::kBnFinalizeBlock), 0, stream, static_cast<const float*>(partials), save_invstd,
               dweight, dbias, means, means + d.c, s);
        if (training) b.mean_dy = means, b.mean_dy_xhat = means + d.c;
    }
    const NhwcApply a = nhwc_apply<T>(d, {x, dy, relu_y, dx});
    launch_by_width(
        a,
        [&](auto kernel) {
            launch(kernel, nhwc_apply_grid(a), dim3(kernels::kBnReduceBlock), 0, stream, x, dy, relu_y, b, dx,
                   a);
        },
        kernels::batch_norm_nhwc_dx_kernel<4, T>, kernels::batch_norm_nhwc_dx_kernel<1, T>);
}

}  // namespace

size_t batch_norm2d_workspace_bytes(const Shape& input_shape) {
    return workspace_bytes_for(bn_dims("batch_norm2d_workspace_bytes", input_shape));
}

namespace {

// batch_norm2d, and with relu batch_norm2d_relu, on activations of T = float or bf16; op names the entry
// point in errors. Training: the statistics kernel, then the normalize (which merges the partials);
// evaluation: the normalize alone.
template <class T>
void batch_norm2d_impl(const char* op, bool relu, const T* x, const float* weight, const float* bias,
                       BatchNorm2dRunningStatsView* running, T* y, float* save_mean, float* save_invstd,
                       const Shape& input_shape, const cpu::BatchNorm2dOptions& options, void* workspace,
                       size_t workspace_bytes, cudaStream_t stream, MemoryFormat format) {
    const BnDims d = bn_dims(op, input_shape);
    CUDACNN_CHECK(x != nullptr && y != nullptr && save_mean != nullptr && save_invstd != nullptr,
                  "{}: x, y, save_mean and save_invstd must be device pointers, got {}, {}, {} and {}", op,
                  static_cast<const void*>(x), static_cast<const void*>(y),
                  static_cast<const void*>(save_mean), static_cast<const void*>(save_invstd));
    if (options.training) check_workspace(op, d, input_shape, workspace, workspace_bytes);
    const float factor = check_forward_and_count(d, input_shape, running, options);

    kernels::ForwardStatistics f{};
    f.eps = static_cast<float>(options.eps);
    f.momentum_factor = factor;
    f.running_mean = running != nullptr ? running->running_mean : nullptr;
    f.running_var = running != nullptr ? running->running_var : nullptr;
    f.input_shift = running != nullptr ? running->input_shift : nullptr;
    f.save_mean = save_mean, f.save_invstd = save_invstd;
    if (format == MemoryFormat::nhwc) {
        batch_norm2d_nhwc(relu, x, weight, bias, y, f, d, options.training, workspace, stream);
        return;
    }
    if (options.training) {
        float* partials = static_cast<float*>(workspace);
        float* pivots = reinterpret_cast<float*>(static_cast<char*>(workspace) + partials_bytes(d));
        f.partials = partials, f.pivots = pivots;
        f.stats = reduction_slices<T>(d, {x});
        launch_by_width(
            f.stats,
            [&](auto kernel) {
                launch(kernel, slices_grid(f.stats), dim3(kernels::kBnReduceBlock), 0, stream, x, partials,
                       pivots, f.stats);
            },
            kernels::batch_norm_stats_kernel<4, T>, kernels::batch_norm_stats_kernel<1, T>);
    }
    const BnSlices s = apply_slices<T>(d, {x, y});
    launch_by_width(
        s,
        [&](auto kernel) {
            launch(kernel, slices_grid(s), dim3(kernels::kBnReduceBlock), 0, stream, x, f, weight, bias, y, s,
                   relu);
        },
        kernels::batch_norm_normalize_kernel<4, T>, kernels::batch_norm_normalize_kernel<1, T>);
}

// batch_norm2d_from_partials(_relu) on activations of T = float or bf16: the finalize merges the caller's
// partials into the saves, then the format's normalize reads them.
template <class T>
void batch_norm2d_from_partials_impl(const char* op, bool relu, const T* x,
                                     const BatchNorm2dPartialStats* partials, int per_channel,
                                     const float* weight, const float* bias,
                                     BatchNorm2dRunningStatsView* running, T* y, float* save_mean,
                                     float* save_invstd, const Shape& input_shape,
                                     const cpu::BatchNorm2dOptions& options, cudaStream_t stream,
                                     MemoryFormat format) {
    const BnDims d = bn_dims(op, input_shape);
    CUDACNN_CHECK(
        x != nullptr && y != nullptr && save_mean != nullptr && save_invstd != nullptr && partials != nullptr,
        "{}: x, y, save_mean, save_invstd and partials must be device pointers, got {}, {}, {}, {} "
        "and {}",
        op, static_cast<const void*>(x), static_cast<const void*>(y), static_cast<const void*>(save_mean),
        static_cast<const void*>(save_invstd), static_cast<const void*>(partials));
    CUDACNN_CHECK(options.training,
                  "{}: partial statistics are of this batch, so only training mode takes them; evaluation "
                  "normalizes by the running statistics: call batch_norm2d",
                  op);
    CUDACNN_CHECK(per_channel >= 1, "{}: partials_per_channel must be at least 1, got {}", op, per_channel);
    bn_detail::check_forward(op, d, input_shape, running, options);
    const double factor = bn_detail::count_training_batch(running, options);

    kernels::ForwardStatistics f{};
    f.eps = static_cast<float>(options.eps);
    f.momentum_factor = factor < 0.0 ? -1.0f : static_cast<float>(factor);
    f.running_mean = running != nullptr ? running->running_mean : nullptr;
    f.running_var = running != nullptr ? running->running_var : nullptr;
    f.input_shift = running != nullptr ? running->input_shift : nullptr;
    f.save_mean = save_mean, f.save_invstd = save_invstd;
    launch(kernels::batch_norm_from_partials_finalize_kernel, bn_detail::warp_per_row_grid(d.c),
           dim3(kernels::kBnFinalizeBlock), 0, stream, f, partials, d.c, per_channel);
    f.from_saves = true;
    if (format == MemoryFormat::nhwc) {
        const NhwcApply a = nhwc_apply<T>(d, {x, y});
        launch_by_width(
            a,
            [&](auto kernel) {
                launch(kernel, nhwc_apply_grid(a), dim3(kernels::kBnReduceBlock), 0, stream, x,
                       static_cast<const float*>(save_mean), static_cast<const float*>(save_invstd), weight,
                       bias, y, a, relu);
            },
            kernels::batch_norm_nhwc_normalize_kernel<4, T>, kernels::batch_norm_nhwc_normalize_kernel<1, T>);
        return;
    }
    const BnSlices s = apply_slices<T>(d, {x, y});
    launch_by_width(
        s,
        [&](auto kernel) {
            launch(kernel, slices_grid(s), dim3(kernels::kBnReduceBlock), 0, stream, x, f, weight, bias, y, s,
                   relu);
        },
        kernels::batch_norm_normalize_kernel<4, T>, kernels::batch_norm_normalize_kernel<1, T>);
}

// batch_norm2d_backward, and with relu_y batch_norm2d_relu_backward, on activations of T = float or bf16.
// With sums (training, or dweight or dbias wanted): the gradient sums kernel, then the dx kernel (which
// merges the partials); otherwise the dx kernel alone.
template <class T>
void batch_norm2d_backward_impl(const char* op, const T* relu_y, const T* x, const float* weight,
                                const float* save_mean, const float* save_invstd, const T* dy, T* dx,
                                float* dweight, float* dbias, const Shape& input_shape, bool training,
                                void* workspace, size_t workspace_bytes, cudaStream_t stream,
                                MemoryFormat format) {
    const BnDims d = bn_dims(op, input_shape);
    CUDACNN_CHECK(
        x != nullptr && dy != nullptr && dx != nullptr && save_mean != nullptr && save_invstd != nullptr,
        "{}: x, dy, dx, save_mean and save_invstd must be device pointers, got {}, {}, {}, {} and {}", op,
        static_cast<const void*>(x), static_cast<const void*>(dy), static_cast<const void*>(dx),
        static_cast<const void*>(save_mean), static_cast<const void*>(save_invstd));
    const bool sums = training || dweight != nullptr || dbias != nullptr;
    if (sums) check_workspace(op, d, input_shape, workspace, workspace_bytes);
    if (format == MemoryFormat::nhwc) {
        batch_norm2d_backward_nhwc(relu_y, x, weight, save_mean, save_invstd, dy, dx, dweight, dbias, d,
                                   training, workspace, stream);
        return;
    }
    kernels::BackwardStatistics b{};
    b.weight = weight, b.save_mean = save_mean, b.save_invstd = save_invstd;
    b.dweight = dweight, b.dbias = dbias;
    b.training = training;
    if (sums) {
        float* partials = static_cast<float*>(workspace);
        b.partials = partials;
        b.stats = reduction_slices<T>(d, {x, dy, relu_y});
        launch_by_width(
            b.stats,
            [&](auto kernel) {
                launch(kernel, slices_grid(b.stats), dim3(kernels::kBnReduceBlock), 0, stream, x, dy, relu_y,
                       save_mean, partials, b.stats);
            },
            kernels::batch_norm_grad_sums_kernel<4, T>, kernels::batch_norm_grad_sums_kernel<1, T>);
    }
    const BnSlices s = apply_slices<T>(d, {x, dy, relu_y, dx});
    launch_by_width(
        s,
        [&](auto kernel) {
            launch(kernel, slices_grid(s), dim3(kernels::kBnReduceBlock), 0, stream, x, dy, relu_y, b, dx, s);
        },
        kernels::batch_norm_dx_kernel<4, T>, kernels::batch_norm_dx_kernel<1, T>);
}

}  // namespace

void batch_norm2d(const float* x, const float* weight, const float* bias,
                  BatchNorm2dRunningStatsView* running, float* y, float* save_mean, float* save_invstd,
                  const Shape& input_shape, const cpu::BatchNorm2dOptions& options, void* workspace,
                  size_t workspace_bytes, cudaStream_t stream, MemoryFormat format) {
    batch_norm2d_impl("batch_norm2d", false, x, weight, bias, running, y, save_mean, save_invstd, input_shape,
                      options, workspace, workspace_bytes, stream, format);
}

void batch_norm2d_relu(const float* x, const float* weight, const float* bias,
                       BatchNorm2dRunningStatsView* running, float* y, float* save_mean, float* save_invstd,
                       const Shape& input_shape, const cpu::BatchNorm2dOptions& options, void* workspace,
                       size_t workspace_bytes, cudaStream_t stream, MemoryFormat format) {
    batch_norm2d_impl("batch_norm2d_relu", true, x, weight, bias, running, y, save_mean, save_invstd,
                      input_shape, options, workspace, workspace_bytes, stream, format);
}

void batch_norm2d_backward(const float* x, const float* weight, const float* save_mean,
                           const float* save_invstd, const float* dy, float* dx, float* dweight, float* dbias,
                           const Shape& input_shape, bool training, void* workspace, size_t workspace_bytes,
                           cudaStream_t stream, MemoryFormat format) {
    batch_norm2d_backward_impl<float>("batch_norm2d_backward", nullptr, x, weight, save_mean, save_invstd, dy,
                                      dx, dweight, dbias, input_shape, training, workspace, workspace_bytes,
                                      stream, format);
}

void batch_norm2d_relu_backward(const float* x, const float* y, const float* weight, const float* save_mean,
                                const float* save_invstd, const float* dy, float* dx, float* dweight,
                                float* dbias, const Shape& input_shape, bool training, void* workspace,
                                size_t workspace_bytes, cudaStream_t stream, MemoryFormat format) {
    CUDACNN_CHECK(y != nullptr,
                  "batch_norm2d_relu_backward: y must be the device pointer batch_norm2d_relu wrote, got nullptr");
    batch_norm2d_backward_impl("batch_norm2d_relu_backward", y, x, weight, save_mean, save_invstd, dy, dx,
                               dweight, dbias, input_shape, training, workspace, workspace_bytes, stream,
                               format);
}

void batch_norm2d(const bf16* x, const float* weight, const float* bias, BatchNorm2dRunningStatsView* running,
                  bf16* y, float* save_mean, float* save_invstd, const Shape& input_shape,
                  const cpu::BatchNorm2dOptions& options, void* workspace, size_t workspace_bytes,
                  cudaStream_t stream, MemoryFormat format) {
    batch_norm2d_impl("batch_norm2d", false, x, weight, bias, running, y, save_mean, save_invstd, input_shape,
                      options, workspace, workspace_bytes, stream, format);
}

void batch_norm2d_relu(const bf16* x, const float* weight, const float* bias,
                       BatchNorm2dRunningStatsView* running, bf16* y, float* save_mean, float* save_invstd,
                       const Shape& input_shape, const cpu::BatchNorm2dOptions& options, void* workspace,
                       size_t workspace_bytes, cudaStream_t stream, MemoryFormat format) {
    batch_norm2d_impl("batch_norm2d_relu", true, x, weight, bias, running, y, save_mean, save_invstd,
                      input_shape, options, workspace, workspace_bytes, stream, format);
}

void batch_norm2d_backward(const bf16* x, const float* weight, const float* save_mean,
                           const float* save_invstd, const bf16* dy, bf16* dx, float* dweight, float* dbias,
                           const Shape& input_shape, bool training, void* workspace, size_t workspace_bytes,
                           cudaStream_t stream, MemoryFormat format) {
    batch_norm2d_backward_impl<bf16>("batch_norm2d_backward", nullptr, x, weight, save_mean, save_invstd, dy,
                                     dx, dweight, dbias, input_shape, training, workspace, workspace_bytes,
                                     stream, format);
}

void batch_norm2d_relu_backward(const bf16* x, const bf16* y, const float* weight, const float* save_mean,
                                const float* save_invstd, const bf16* dy, bf16* dx, float* dweight,
                                float* dbias, const Shape& input_shape, bool training, void* workspace,
                                size_t workspace_bytes, cudaStream_t stream, MemoryFormat format) {
    CUDACNN_CHECK(
        y != nullptr,
        "batch_norm2d_relu_backward: y must be the device pointer batch_norm2d_relu wrote, got nullptr");
    batch_norm2d_backward_impl("batch_norm2d_relu_backward", y, x, weight, save_mean, save_invstd, dy, dx,
                               dweight, dbias, input_shape, training, workspace, workspace_bytes, stream,
                               format);
}

void batch_norm2d_from_partials(const float* x, const BatchNorm2dPartialStats* partials,
                                int partials_per_channel, const float* weight, const float* bias,
                                BatchNorm2dRunningStatsView* running, float* y, float* save_mean,
                                float* save_invstd, const Shape& input_shape,
                                const cpu::BatchNorm2dOptions& options, cudaStream_t stream,
                                MemoryFormat format) {
    batch_norm2d_from_partials_impl("batch_norm2d_from_partials", false, x, partials, partials_per_channel,
                                    weight, bias, running, y, save_mean, save_invstd, input_shape, options,
                                    stream, format);
}

void batch_norm2d_relu_from_partials(const float* x, const BatchNorm2dPartialStats* partials,
                                     int partials_per_channel, const float* weight, const float* bias,
                                     BatchNorm2dRunningStatsView* running, float* y, float* save_mean,
                                     float* save_invstd, const Shape& input_shape,
                                     const cpu::BatchNorm2dOptions& options, cudaStream_t stream,
                                     MemoryFormat format) {
    batch_norm2d_from_partials_impl("batch_norm2d_relu_from_partials", true, x, partials,
                                    partials_per_channel, weight, bias, running, y, save_mean, save_invstd,
                                    input_shape, options, stream, format);
}

void batch_norm2d_from_partials(const bf16* x, const BatchNorm2dPartialStats* partials,
                                int partials_per_channel, const float* weight, const float* bias,
                                BatchNorm2dRunningStatsView* running, bf16* y, float* save_mean,
                                float* save_invstd, const Shape& input_shape,
                                const cpu::BatchNorm2dOptions& options, cudaStream_t stream,
                                MemoryFormat format) {
    batch_norm2d_from_partials_impl("batch_norm2d_from_partials", false, x, partials, partials_per_channel,
                                    weight, bias, running, y, save_mean, save_invstd, input_shape, options,
                                    stream, format);
}

void batch_norm2d_relu_from_partials(const bf16* x, const BatchNorm2dPartialStats* partials,
                                     int partials_per_channel, const float* weight, const float* bias,
                                     BatchNorm2dRunningStatsView* running, bf16* y, float* save_mean,
                                     float* save_invstd, const Shape& input_shape,
                                     const cpu::BatchNorm2dOptions& options, cudaStream_t stream,
                                     MemoryFormat format) {
    batch_norm2d_from_partials_impl("batch_norm2d_relu_from_partials", true, x, partials,
                                    partials_per_channel, weight, bias, running, y, save_mean, save_invstd,
                                    input_shape, options, stream, format);
}

}  // namespace cudacnn::gpu
