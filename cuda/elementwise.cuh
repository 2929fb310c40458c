// Vectorized element-wise kernels: out[i] = op(a[i], b[i]) over a flat range, float4 where aligned.
// Included by .cu files only (activations, add, copies). Grid-stride loops, 256 threads per block.
#pragma once

#include <algorithm>
#include <cstdint>

#include "cuda/launch.cuh"

namespace cudacnn::gpu {

// How `count` floats split for float4 access: `head` scalars until every pointer reaches a 16-byte
// boundary, `vectors` float4s, then `tail` scalars. Pointers with different offsets modulo 16 cannot all be
// aligned at once: then everything is head (the scalar path).
struct Float4Split {
    int64_t head = 0;
    int64_t vectors = 0;
    int64_t tail = 0;
};

// nullptr entries are ignored (the unused second input of a unary op).
inline Float4Split split_for_float4(int64_t count, const void* p0, const void* p1, const void* p2) {
    const void* pointers[] = {p0, p1, p2};
    int64_t offset = -1;  // the common address modulo 16, in bytes
    for (const void* p : pointers) {
        if (p == nullptr) continue;
        const auto misalignment = static_cast<int64_t>(reinterpret_cast<uintptr_t>(p) % 16);
        if (misalignment % 4 != 0 || (offset >= 0 && misalignment != offset)) return {count, 0, 0};
        offset = misalignment;
    }
    Float4Split split;
    split.head = std::min<int64_t>(count, ((16 - offset) % 16) / 4);
    split.vectors = (count - split.head) / 4;
    split.tail = count - split.head - 4 * split.vectors;
    return split;
}

// Threads per block of the element-wise kernels, and the grid cap: one full wave on an H100 (132 SMs × 8
// resident blocks of 256 threads); grid-stride loops cover the rest, so large tensors need no more blocks.
constexpr int kElementwiseBlock = 256;
constexpr int64_t kElementwiseMaxBlocks = 132 * 8;

inline dim3 elementwise_grid(int64_t work_items) {
    const int64_t blocks = (work_items + kElementwiseBlock - 1) / kElementwiseBlock;
    return dim3(static_cast<unsigned>(std::clamp<int64_t>(blocks, 1, kElementwiseMaxBlocks)));
}

namespace kernels {

// kInputs = 1: out[i] = op(a[i], 0); kInputs = 2: out[i] = op(a[i], b[i]). out may alias a or b exactly
// (each element is read and written by the same thread), which makes in-place activations work.
template <int kInputs, class Op>
__global__ void map_kernel(Op op, const float* a, const float* b, float* out, Float4Split split) {
    const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
    const int64_t first = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
    auto scalar = [&](int64_t i) { out[i] = op(a[i], kInputs == 2 ? b[i] : 0.0f); };
    for (int64_t i = first; i < split.head; i += stride) scalar(i);
    const int64_t body_end = split.head + 4 * split.vectors;
    const float4* a4 = reinterpret_cast<const float4*>(a + split.head);
    const float4* b4 = reinterpret_cast<const float4*>(kInputs == 2 ? b + split.head : a + split.head);
    float4* out4 = reinterpret_cast<float4*>(out + split.head);
    for (int64_t v = first; v < split.vectors; v += stride) {
        const float4 x = a4[v];
        const float4 y = kInputs == 2 ? b4[v] : make_float4(0.0f, 0.0f, 0.0f, 0.0f);
        out4[v] = make_float4(op(x.x, y.x), op(x.y, y.y), op(x.z, y.z), op(x.w, y.w));
    }
    for (int64_t i = first; i < split.tail; i += stride) scalar(body_end + i);
}

}  // namespace kernels

// Launches out[i] = op(a[i], b[i]) for i < count (b unused and may be nullptr when kInputs == 1).
template <int kInputs, class Op>
void launch_map(Op op, const float* a, const float* b, float* out, int64_t count, cudaStream_t stream) {
    const Float4Split split = split_for_float4(count, a, kInputs == 2 ? b : nullptr, out);
    const int64_t work = std::max({split.head, split.vectors, split.tail});
    launch(kernels::map_kernel<kInputs, Op>, elementwise_grid(work), dim3(kElementwiseBlock), 0, stream, op,
           a, b, out, split);
}

}  // namespace cudacnn::gpu
