// Shape-op kernels: add through the element-wise map, concat and its split as batched strided row copies.
#include "cuda/shape_ops.hpp"

#include <algorithm>
#include <cstdint>
#include <type_traits>
#include <vector>

#include "cuda/elementwise.cuh"
#include "cuda/launch.cuh"
#include "cudacnn/error.hpp"

namespace cudacnn::gpu {
namespace kernels {

struct AddOp {
    __device__ float operator()(float a, float b) const { return a + b; }
};

// Inputs per concat launch: their pointers and runs travel as kernel arguments (a few hundred bytes).
constexpr int kMaxConcatParts = 8;

// Where each part of one launch lives in the whole, in elements of the copied type (float or float4).
struct ConcatLayout {
    int64_t run[kMaxConcatParts];     // part k's values per row of the whole: size_k · inner
    int64_t offset[kMaxConcatParts];  // where part k's run starts in a row of the whole
    int64_t whole_row;                // a row of the whole: (Σ size_k) · inner
    int64_t outer;                    // rows: the product of the dimensions before dim
};

template <class T>
struct ConcatParts {
    T* data[kMaxConcatParts];
};

// Calls f(index in part blockIdx.z, index in the whole) for every element of that part: blocks stride over
// rows (y) and along the run (x), so consecutive threads touch consecutive addresses on both sides. The
// part's run and offset are read from the (dynamically indexed) arguments once, before the loops.
template <class F>
__device__ inline void for_each_concat_element(const ConcatLayout& layout, F f) {
    const int part = static_cast<int>(blockIdx.z);
    const int64_t run = layout.run[part], offset = layout.offset[part];
    const int64_t run_stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
    for (int64_t row = blockIdx.y; row < layout.outer; row += gridDim.y) {
        const int64_t whole_start = row * layout.whole_row + offset;
        for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < run;
             i += run_stride) {
            f(row * run + i, whole_start + i);
        }
    }
}

template <class T>
__global__ void concat_kernel(ConcatParts<const T> inputs, ConcatLayout layout, T* y) {
    const T* input = inputs.data[blockIdx.z];
    for_each_concat_element(layout, [&](int64_t from, int64_t to) { y[to] = input[from]; });
}

template <class T>
__global__ void split_kernel(const T* dy, ConcatLayout layout, ConcatParts<T> dx) {
    T* part = dx.data[blockIdx.z];
    for_each_concat_element(layout, [&](int64_t to, int64_t from) { part[to] = dy[from]; });
}

}  // namespace kernels

namespace {

void check_count(const char* op, int64_t count) {
    CUDACNN_CHECK(count > 0, "{}: the input is empty (count {}); pass at least one element", op, count);
}

bool aligned16(const void* p) {
    return reinterpret_cast<uintptr_t>(p) % 16 == 0;
}

// The row geometry of a concat along dim: rows, the whole's row and each part's run, in floats.
struct ConcatGeometry {
    int64_t outer = 1;
    int64_t whole_row = 0;
    std::vector<int64_t> runs;
};

ConcatGeometry concat_geometry(const char* op, const std::vector<Shape>& input_shapes, int64_t dim,
                               size_t pointer_count) {
    CUDACNN_CHECK(pointer_count == input_shapes.size(),
                  "{}: {} tensors but {} shapes; pass one shape per tensor", op, pointer_count,
                  input_shapes.size());
    const Shape whole = cpu::concat_output_shape(input_shapes, dim);  // validates dim and the shapes
    const int rank = whole.rank();
    const int d = static_cast<int>(dim < 0 ? dim + rank : dim);
    ConcatGeometry geometry;
    int64_t inner = 1;
    for (int i = 0; i < d; ++i) geometry.outer *= whole[i];
    for (int i = d + 1; i < rank; ++i) inner *= whole[i];
    for (const Shape& s : input_shapes) geometry.runs.push_back(s[d] * inner);
    geometry.whole_row = whole[d] * inner;
    return geometry;
}

// float4 copies need every run, offset and pointer on a 16-byte boundary.
bool concat_vectorizable(const ConcatGeometry& geometry, const void* whole,
                         const std::vector<const void*>& parts) {
    if (geometry.whole_row % 4 != 0 || !aligned16(whole)) return false;
    for (size_t k = 0; k < parts.size(); ++k) {
        if (geometry.runs[k] % 4 != 0 || !aligned16(parts[k])) return false;
    }
    return true;  // offsets are sums of runs, so multiples of 4 too
}

// Launches `kernel` once per kMaxConcatParts parts, with the layout in units of T (width floats each).
// kSplit: the backward (whole = dy, parts = dx); else the forward (parts = inputs, whole = y).
template <class T, bool kSplit, class PartPointer, class Kernel, class WholePointer>
void launch_concat_chunks(Kernel kernel, const ConcatGeometry& geometry,
                          const std::vector<PartPointer>& parts, WholePointer whole, cudaStream_t stream) {
    constexpr int64_t width = sizeof(T) / sizeof(float);
    int64_t offset = 0;
    for (size_t first = 0; first < parts.size(); first += kernels::kMaxConcatParts) {
        const size_t count = std::min<size_t>(kernels::kMaxConcatParts, parts.size() - first);
        kernels::ConcatLayout layout{};
        kernels::ConcatParts<std::remove_pointer_t<PartPointer>> pointers{};
        int64_t longest = 1;
        for (size_t k = 0; k < count; ++k) {
            layout.run[k] = geometry.runs[first + k] / width;
            layout.offset[k] = offset / width;
            offset += geometry.runs[first + k];
            longest = std::max(longest, layout.run[k]);
            pointers.data[k] = parts[first + k];
        }
        layout.whole_row = geometry.whole_row / width;
        layout.outer = geometry.outer;
        // Blocks as wide as the longest run (a warp at least, 256 threads at most), up to 256 of them along
        // a row and 1024 rows at a time (grid-stride beyond): short runs do not leave most threads idle.
        const int64_t threads = std::clamp<int64_t>((longest + 31) / 32 * 32, 32, 256);
        const dim3 block(static_cast<unsigned>(threads));
        const dim3 grid(static_cast<unsigned>(std::clamp<int64_t>((longest + threads - 1) / threads, 1, 256)),
                        static_cast<unsigned>(std::min<int64_t>(geometry.outer, 1024)),
                        static_cast<unsigned>(count));
        if constexpr (kSplit) {
            launch(kernel, grid, block, 0, stream, whole, layout, pointers);
        } else {
            launch(kernel, grid, block, 0, stream, pointers, layout, whole);
        }
    }
}

template <class T>
std::vector<const T*> as_vectors(const std::vector<const float*>& parts) {
    std::vector<const T*> out;
    for (const float* p : parts) out.push_back(reinterpret_cast<const T*>(p));
    return out;
}

template <class T>
std::vector<T*> as_vectors(const std::vector<float*>& parts) {
    std::vector<T*> out;
    for (float* p : parts) out.push_back(reinterpret_cast<T*>(p));
    return out;
}

}  // namespace

TensorView flatten_view(const TensorView& x, const cpu::FlattenOptions& options) {
    return TensorView{x.data, cpu::flatten_output_shape(x.shape, options), x.dtype, x.device};
}

TensorView reshape_view(const TensorView& x, const std::vector<int64_t>& dims) {
    return TensorView{x.data, cpu::reshape_output_shape(x.shape, dims), x.dtype, x.device};
}

namespace {

template <class T>
void add_forward_t(const T* a, const T* b, T* y, int64_t count, cudaStream_t stream) {
    check_count("add", count);
    CUDACNN_CHECK(a != nullptr && b != nullptr && y != nullptr,
                  "add: a ({}), b ({}) and y ({}) must be device pointers, not null",
                  static_cast<const void*>(a), static_cast<const void*>(b), static_cast<const void*>(y));
    launch_map<2>(kernels::AddOp{}, a, b, y, count, stream);
}

template <class T>
void add_backward_t(const T* dy, T* da, T* db, int64_t count, cudaStream_t stream) {
    check_count("add_backward", count);
    CUDACNN_CHECK(dy != nullptr, "add_backward: dy must be a device pointer, not null");
    for (T* d : {da, db}) {
        if (d != nullptr && d != dy) launch_map<1>(kernels::CopyOp{}, dy, nullptr, d, count, stream);
    }
}

}  // namespace

void add_forward(const float* a, const float* b, float* y, int64_t count, cudaStream_t stream) {
    add_forward_t(a, b, y, count, stream);
}
void add_forward(const bf16* a, const bf16* b, bf16* y, int64_t count, cudaStream_t stream) {
    add_forward_t(a, b, y, count, stream);
}

void add_backward(const float* dy, float* da, float* db, int64_t count, cudaStream_t stream) {
    add_backward_t(dy, da, db, count, stream);
}
void add_backward(const bf16* dy, bf16* da, bf16* db, int64_t count, cudaStream_t stream) {
    add_backward_t(dy, da, db, count, stream);
}

void concat_forward(const std::vector<const float*>& inputs, const std::vector<Shape>& input_shapes,
                    int64_t dim, float* y, cudaStream_t stream) {
    const ConcatGeometry geometry = concat_geometry("concat", input_shapes, dim, inputs.size());
    CUDACNN_CHECK(y != nullptr, "concat: y must be a device pointer, not null");
    for (size_t k = 0; k < inputs.size(); ++k) {
        CUDACNN_CHECK(inputs[k] != nullptr, "concat: input {} is a null pointer; pass a device pointer", k);
    }
    if (concat_vectorizable(geometry, y, {inputs.begin(), inputs.end()})) {
        launch_concat_chunks<float4, false>(kernels::concat_kernel<float4>, geometry,
                                            as_vectors<float4>(inputs), reinterpret_cast<float4*>(y), stream);
    } else {
        launch_concat_chunks<float, false>(kernels::concat_kernel<float>, geometry, inputs, y, stream);
    }
}

void concat_backward(const float* dy, const std::vector<Shape>& input_shapes, int64_t dim,
                     const std::vector<float*>& dx, cudaStream_t stream) {
    const ConcatGeometry geometry = concat_geometry("concat_backward", input_shapes, dim, dx.size());
    CUDACNN_CHECK(dy != nullptr, "concat_backward: dy must be a device pointer, not null");
    for (size_t k = 0; k < dx.size(); ++k) {
        CUDACNN_CHECK(dx[k] != nullptr, "concat_backward: dx {} is a null pointer; pass a device pointer", k);
    }
    if (concat_vectorizable(geometry, dy, {dx.begin(), dx.end()})) {
        launch_concat_chunks<float4, true>(kernels::split_kernel<float4>, geometry, as_vectors<float4>(dx),
                                           reinterpret_cast<const float4*>(dy), stream);
    } else {
        launch_concat_chunks<float, true>(kernels::split_kernel<float>, geometry, dx, dy, stream);
    }
}

}  // namespace cudacnn::gpu
