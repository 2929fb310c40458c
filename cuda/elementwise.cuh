// Vectorized element-wise kernels: out[i] = op(a[i], b[i]) over a flat range, in 16-byte vectors where
// aligned. Included by .cu files only (activations, add, casts, copies). Grid-stride loops, 256 threads per
// block.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <initializer_list>

#include "cuda/bf16.cuh"
#include "cuda/launch.cuh"

namespace cudacnn::gpu {

// How `count` elements split for vector access: `head` scalars until every pointer reaches a vector boundary,
// `vectors` vectors of `width` elements each, then `tail` scalars. Pointers whose offsets from their vector
// boundaries differ in elements cannot all be aligned at once: then everything is head (the scalar path).
struct VectorSplit {
    int64_t head = 0;
    int64_t vectors = 0;
    int64_t tail = 0;
};
using Float4Split = VectorSplit;  // width 4 over floats: what the float-only kernels (optimizer) use

// One array of a split: its address and element size (a vector of it is width · element_bytes bytes).
struct SplitPointer {
    const void* pointer;
    int64_t element_bytes;
};

// nullptr entries are ignored (the unused second input of a unary op). width · element_bytes must be a power
// of two (the vector's alignment), as it is for vectors of 4 floats, 4 bf16 and 8 bf16.
inline VectorSplit split_for_vectors(int64_t count, int64_t width,
                                     std::initializer_list<SplitPointer> arrays) {
    int64_t head = -1;  // the elements every array needs before its first vector boundary
    for (const SplitPointer& array : arrays) {
        if (array.pointer == nullptr) continue;
        const int64_t vector_bytes = width * array.element_bytes;
        const auto misalignment =
            static_cast<int64_t>(reinterpret_cast<uintptr_t>(array.pointer) % vector_bytes);
        if (misalignment % array.element_bytes != 0) return {count, 0, 0};
        const int64_t elements = ((vector_bytes - misalignment) % vector_bytes) / array.element_bytes;
        if (head >= 0 && elements != head) return {count, 0, 0};
        head = elements;
    }
    VectorSplit split;
    split.head = std::min<int64_t>(count, std::max<int64_t>(head, 0));
    split.vectors = (count - split.head) / width;
    split.tail = count - split.head - width * split.vectors;
    return split;
}

// The float4 split of up to three float arrays (16-byte vectors).
inline Float4Split split_for_float4(int64_t count, const void* p0, const void* p1, const void* p2) {
    return split_for_vectors(count, 4, {{p0, 4}, {p1, 4}, {p2, 4}});
}

// Threads per block of the element-wise kernels, and the grid cap: one full wave on an H100 (132 SMs × 8
// resident blocks of 256 threads); grid-stride loops cover the rest, so large tensors need no more blocks.
constexpr int kElementwiseBlock = 256;
constexpr int64_t kElementwiseMaxBlocks = 132 * 8;

inline dim3 elementwise_grid(int64_t work_items) {
    const int64_t blocks = (work_items + kElementwiseBlock - 1) / kElementwiseBlock;
    return dim3(static_cast<unsigned>(std::clamp<int64_t>(blocks, 1, kElementwiseMaxBlocks)));
}

// Elements per vector of a map over these storage types: 16 bytes of the widest type, so each access of the
// widest array is one 16-byte load or store (4 floats; 8 bf16 when every array is bf16; 4 when floats and
// bf16 mix, the bf16 side then moving 8 bytes).
template <int kInputs, class TA, class TB>
constexpr std::size_t kMapInputBytes = kInputs == 2 && sizeof(TB) > sizeof(TA) ? sizeof(TB) : sizeof(TA);
template <int kInputs, class TA, class TB, class TOut>
constexpr std::size_t kMapWidestBytes = std::max(kMapInputBytes<kInputs, TA, TB>, sizeof(TOut));
template <int kInputs, class TA, class TB, class TOut>
constexpr int kMapVectorWidth = static_cast<int>(16 / kMapWidestBytes<kInputs, TA, TB, TOut>);

// kWidth elements of T as one aligned access (a float4-sized load for 4 floats).
template <class T, int kWidth>
struct alignas(sizeof(T) * kWidth) ElementVector {
    T value[kWidth];
};

namespace kernels {

// Functors take and return float: storage types only change the loads (exact widening) and the store (one
// rounding per element, from_float), so the float instantiation computes the bits it always did.
struct CopyOp {
    __device__ float operator()(float a, float) const { return a; }
};

// kInputs = 1: out[i] = op(a[i], 0); kInputs = 2: out[i] = op(a[i], b[i]). out may alias a or b exactly
// (each element is read and written by the same thread, same types), which makes in-place activations work.
template <int kInputs, class Op, class TA, class TB, class TOut>
__global__ void map_kernel(Op op, const TA* a, const TB* b, TOut* out, VectorSplit split) {
    constexpr int kWidth = kMapVectorWidth<kInputs, TA, TB, TOut>;
    const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
    const int64_t first = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
    auto scalar = [&](int64_t i) {
        out[i] = from_float<TOut>(op(to_float(a[i]), kInputs == 2 ? to_float(b[i]) : 0.0f));
    };
    for (int64_t i = first; i < split.head; i += stride) scalar(i);
    const int64_t body_end = split.head + kWidth * split.vectors;
    const auto* a_vectors = reinterpret_cast<const ElementVector<TA, kWidth>*>(a + split.head);
    const auto* b_vectors =
        reinterpret_cast<const ElementVector<TB, kWidth>*>(kInputs == 2 ? b + split.head : nullptr);
    auto* out_vectors = reinterpret_cast<ElementVector<TOut, kWidth>*>(out + split.head);
    for (int64_t v = first; v < split.vectors; v += stride) {
        const ElementVector<TA, kWidth> x = a_vectors[v];
        ElementVector<TOut, kWidth> y;
        if constexpr (kInputs == 2) {
            const ElementVector<TB, kWidth> z = b_vectors[v];
#pragma unroll
            for (int k = 0; k < kWidth; ++k)
                y.value[k] = from_float<TOut>(op(to_float(x.value[k]), to_float(z.value[k])));
        } else {
#pragma unroll
            for (int k = 0; k < kWidth; ++k) y.value[k] = from_float<TOut>(op(to_float(x.value[k]), 0.0f));
        }
        out_vectors[v] = y;
    }
    for (int64_t i = first; i < split.tail; i += stride) scalar(body_end + i);
}

}  // namespace kernels

// Launches out[i] = op(a[i], b[i]) for i < count; each of a, b and out may be float or bf16.
template <int kInputs, class Op, class TA, class TB, class TOut>
void launch_map(Op op, const TA* a, const TB* b, TOut* out, int64_t count, cudaStream_t stream) {
    constexpr int kWidth = kMapVectorWidth<kInputs, TA, TB, TOut>;
    const VectorSplit split = split_for_vectors(
        count, kWidth, {{a, sizeof(TA)}, {kInputs == 2 ? b : nullptr, sizeof(TB)}, {out, sizeof(TOut)}});
    const int64_t work = std::max({split.head, split.vectors, split.tail});
    launch(kernels::map_kernel<kInputs, Op, TA, TB, TOut>, elementwise_grid(work), dim3(kElementwiseBlock), 0,
           stream, op, a, b, out, split);
}

// Unary ops: out[i] = op(a[i], 0), b passed as nullptr.
template <int kInputs, class Op, class TA, class TOut>
void launch_map(Op op, const TA* a, std::nullptr_t, TOut* out, int64_t count, cudaStream_t stream) {
    static_assert(kInputs == 1, "launch_map: a binary op needs its second input");
    launch_map<1, Op, TA, TA, TOut>(op, a, static_cast<const TA*>(nullptr), out, count, stream);
}

}  // namespace cudacnn::gpu
