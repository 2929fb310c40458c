// The cases of the GEMM parity tests (gemm_parity_test.cpp, gemm_tf32_parity_test.cpp): a product's sizes,
// transposes, scalars, padded leading dimensions and batching, and its row-major stored operands.
#pragma once

#include <algorithm>
#include <cstdint>

#include "cudacnn/host_tensor.hpp"
#include "support/random.hpp"

namespace cudacnn::test {

struct GemmCase {
    bool trans_a = false, trans_b = false;
    int64_t m = 1, n = 1, k = 1;
    float alpha = 1.0f, beta = 0.0f;
    int64_t pad = 0;      // extra columns of every leading dimension (beyond the stored width)
    bool align4 = false;  // round leading dimensions and batch strides up to multiples of 4 (float4 paths)
    int64_t batch = 1;
    bool share_a = false, share_b = false;  // stride 0: one matrix for every batch entry
};

// A row-major stored operand: `rows` × `width` values in rows of `ld`; batch matrices lie `stride` apart.
struct Operand {
    int64_t rows, width, ld, stride;
    HostTensor<float> values;
};

// A leading dimension (or batch stride) of `size` + pad, rounded up to a multiple of 4 when align4 is set.
inline int64_t padded(int64_t size, const GemmCase& g) {
    const int64_t ld = std::max<int64_t>(size + g.pad, 1);
    return g.align4 ? (ld + 3) / 4 * 4 : ld;
}

// Random values in a `rows` × `width` operand laid out as the case says (shared: one matrix, stride 0).
inline Operand make_operand(int64_t rows, int64_t width, const GemmCase& g, bool shared, uint32_t seed) {
    const int64_t ld = padded(width, g);
    // A gap of `pad` between matrices: unaligned batch offsets unless align4 rounds it up.
    const int64_t stride = shared ? 0 : padded(rows * ld, g);
    const int64_t matrices = shared ? 1 : g.batch;
    const Shape shape{std::max<int64_t>(matrices * stride, rows * ld)};
    return {rows, width, ld, stride, random_tensor<float>(shape, seed)};
}

}  // namespace cudacnn::test
