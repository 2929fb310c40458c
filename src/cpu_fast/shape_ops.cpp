// The fast CPU path's add, accumulate and concat: elementwise loops over fixed ranges, and concat as copies of
// contiguous runs, one work item per (outer row, input).
#include "src/cpu_fast/shape_ops.hpp"

#include <cstring>

#include "cudacnn/error.hpp"
#include "cudacnn/ops/shape_ops.hpp"
#include "src/cpu_fast/elementwise.hpp"

namespace cudacnn::cpu_fast {
namespace {

// The concatenation's layout: `outer` rows (the product of the dimensions before dim), each holding input k's
// run of input_shapes[k][dim] · inner values after those of inputs 0 … k − 1.
struct ConcatLayout {
    int64_t outer = 1, inner = 1, row = 0;  // row: the output's values per outer row
};

ConcatLayout concat_layout(const char* op, const std::vector<Shape>& input_shapes, int64_t dim,
                           size_t pointers) {
    CUDACNN_CHECK(pointers == input_shapes.size(), "{}: {} pointers for {} input shapes; pass one per input",
                  op, pointers, input_shapes.size());
    const Shape out = cpu::concat_output_shape(input_shapes, dim);  // validates, with the reference's errors
    const int d = static_cast<int>(dim < 0 ? dim + out.rank() : dim);
    ConcatLayout layout;
    for (int i = 0; i < d; ++i) layout.outer *= out[i];
    for (int i = d + 1; i < out.rank(); ++i) layout.inner *= out[i];
    layout.row = out[d] * layout.inner;
    return layout;
}

// Input k's run length and its offset within an output row.
void run_of(const std::vector<Shape>& input_shapes, int64_t dim, const ConcatLayout& layout, size_t k,
            int64_t& length, int64_t& offset) {
    const int d = static_cast<int>(dim < 0 ? dim + input_shapes[0].rank() : dim);
    offset = 0;
    for (size_t j = 0; j < k; ++j) offset += input_shapes[j][d] * layout.inner;
    length = input_shapes[k][d] * layout.inner;
}

}  // namespace

void add(const float* a, const float* b, float* y, int64_t count, const Workers& workers) {
    CUDACNN_CHECK(count >= 1, "add: count {} must be at least 1", count);
    parallel_ranges(workers, count, kElementwiseGrain, [&](int64_t begin, int64_t end) {
#pragma omp simd
        for (int64_t i = begin; i < end; ++i) y[i] = a[i] + b[i];
    });
}

void accumulate(float* sum, const float* value, int64_t count, const Workers& workers) {
    CUDACNN_CHECK(count >= 1, "accumulate: count {} must be at least 1", count);
    parallel_ranges(workers, count, kElementwiseGrain, [&](int64_t begin, int64_t end) {
#pragma omp simd
        for (int64_t i = begin; i < end; ++i) sum[i] += value[i];
    });
}

void concat_forward(const std::vector<const float*>& inputs, const std::vector<Shape>& input_shapes,
                    int64_t dim, float* y, const Workers& workers) {
    const ConcatLayout layout = concat_layout("concat", input_shapes, dim, inputs.size());
    const int64_t k_count = static_cast<int64_t>(inputs.size());
    parallel_for(workers, layout.outer * k_count, [&](int64_t item) {
        const int64_t o = item / k_count;
        const size_t k = static_cast<size_t>(item % k_count);
        int64_t length = 0, offset = 0;
        run_of(input_shapes, dim, layout, k, length, offset);
        std::memcpy(y + o * layout.row + offset, inputs[k] + o * length, static_cast<size_t>(length) * sizeof(float));
    });
}

void concat_backward(const float* dy, const std::vector<Shape>& input_shapes, int64_t dim,
                     const std::vector<float*>& dx, const Workers& workers) {
    const ConcatLayout layout = concat_layout("concat_backward", input_shapes, dim, dx.size());
    const int64_t k_count = static_cast<int64_t>(dx.size());
    parallel_for(workers, layout.outer * k_count, [&](int64_t item) {
        const int64_t o = item / k_count;
        const size_t k = static_cast<size_t>(item % k_count);
        if (dx[k] == nullptr) return;
        int64_t length = 0, offset = 0;
        run_of(input_shapes, dim, layout, k, length, offset);
        std::memcpy(dx[k] + o * length, dy + o * layout.row + offset, static_cast<size_t>(length) * sizeof(float));
    });
}

}  // namespace cudacnn::cpu_fast
