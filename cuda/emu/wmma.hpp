// The emulator's nvcuda::wmma (<mma.h>): the subset a TF32 GEMM needs, with CUDA's documented semantics
// ("Warp Matrix Functions" in the CUDA C++ Programming Guide), so kernel source using tensor cores runs
// unchanged on the CPU. Included by emu.hpp; under nvcc <mma.h> provides the real thing.
//
// Supported, as in CUDA (sm_80+): fragment<matrix_a | matrix_b, 16, 16, 8, precision::tf32, row_major |
// col_major> with fragment<accumulator, 16, 16, 8, float>, and fragment<matrix_a | matrix_b, 16, 16, 16,
// __nv_bfloat16 | __half, row_major | col_major> with fragment<accumulator, 16, 16, 16, float>;
// fill_fragment, load_matrix_sync, store_matrix_sync (mem_row_major | mem_col_major), mma_sync,
// __float_to_tf32, num_elements and x[]. Other combinations fail to compile (nvcc has a few more: integer,
// double and __half accumulator fragments, other shapes). The 16-bit types come from <cuda_bf16.h> and
// <cuda_fp16.h>, which <mma.h> includes; this header needs them only where a kernel uses them.
//
// How CUDA's rules map onto fibers:
// - The element-to-lane mapping of a fragment is unspecified, so here every lane keeps the whole tile
//   (x[] is the tile in row-major order of its logical shape: m × k, k × n or m × n). Element-wise code over
//   x[0 .. num_elements) (scaling, conversion) then means the same as on a GPU, and mma_sync needs no
//   exchange between lanes: the first lane of a warp to arrive computes the whole product and the others copy
//   it (emu_detail::MmaMemo).
// - The *_sync functions must be called by all 32 lanes of the warp with the same arguments: each is a warp
//   collective here (a lane that never arrives is a deadlock the scheduler names), and load/store check that
//   every lane passed the same pointer, leading dimension and layout.
// - mptr must be 256-bit aligned and ldm a multiple of 16 bytes (4 floats, 8 halves); a violation throws,
//   which the emulator reports as a launch failure naming the kernel (a GPU would fault or compute garbage).
// - __float_to_tf32 rounds to 10 mantissa bits, to nearest with ties away from zero (cvt.rna.tf32.f32).
//   mma_sync reads only the top 19 bits (sign, exponent, 10 mantissa bits) of each tf32 element, so inputs
//   that were not converted are truncated, as tensor cores do.
// - Products of two tf32, bf16 or half values are exact in float (at most 11 × 11 significand bits); mma_sync
//   adds them to the accumulator in float, k in order (tensor cores promise no order; this one is
//   deterministic).
#pragma once

#include <cstdint>
#include <cstring>
#include <stdexcept>
#include <string>
#include <type_traits>

namespace nvcuda {
namespace wmma {

struct row_major;
struct col_major;
struct matrix_a;
struct matrix_b;
struct accumulator;
namespace precision {
struct tf32;
}

enum layout_t { mem_row_major, mem_col_major };

namespace emu_detail {

inline uint32_t float_bits(float value) {
    uint32_t bits;
    std::memcpy(&bits, &value, sizeof bits);
    return bits;
}

inline float bits_float(uint32_t bits) {
    float value;
    std::memcpy(&value, &bits, sizeof value);
    return value;
}

constexpr uint32_t kTf32DroppedBits = 0x1fffu;  // the 13 low mantissa bits that tf32 does not keep
constexpr uint32_t kExponentMask = 0x7f800000u;
constexpr uint32_t kCanonicalNan = 0x7fffffffu;

inline bool is_nan_bits(uint32_t bits) {
    return (bits & kExponentMask) == kExponentMask && (bits & 0x007fffffu) != 0;
}

// What a tensor core reads of a tf32 element: its top 19 bits. A NaN stays a NaN (its payload may sit in
// the dropped bits, and cutting them would make it an infinity).
inline float tf32_operand(float value) {
    const uint32_t bits = float_bits(value);
    return is_nan_bits(bits) ? bits_float(kCanonicalNan) : bits_float(bits & ~kTf32DroppedBits);
}

template <class T>
struct storage {
    using type = T;
};
template <>
struct storage<precision::tf32> {
    using type = float;
};

// The logical shape of a fragment's tile: m × k for matrix_a, k × n for matrix_b, m × n for the accumulator.
template <class Use, int M, int N, int K>
struct tile_shape;
template <int M, int N, int K>
struct tile_shape<matrix_a, M, N, K> {
    static constexpr int rows = M, cols = K;
};
template <int M, int N, int K>
struct tile_shape<matrix_b, M, N, K> {
    static constexpr int rows = K, cols = N;
};
template <int M, int N, int K>
struct tile_shape<accumulator, M, N, K> {
    static constexpr int rows = M, cols = N;
};

// __nv_bfloat16 and __half, without naming them (their headers are the kernel's business): 2-byte class
// types that convert to float.
template <class T>
constexpr bool is_16bit_float() {
    if constexpr (std::is_same_v<T, precision::tf32>) {
        return false;  // an incomplete tag type
    } else {
        return sizeof(T) == 2 && std::is_class_v<T> && std::is_convertible_v<T, float>;
    }
}

// The combinations CUDA offers that this emulation implements: tf32 operands in 16 × 16 × 8 tiles, bf16 and
// half operands in 16 × 16 × 16 tiles, float accumulators.
template <class Use, int M, int N, int K, class T, class Layout>
constexpr bool supported() {
    constexpr bool m16n16 = M == 16 && N == 16;
    constexpr bool operand = std::is_same_v<Use, matrix_a> || std::is_same_v<Use, matrix_b>;
    constexpr bool operand_layout = std::is_same_v<Layout, row_major> || std::is_same_v<Layout, col_major>;
    if (operand) {
        return m16n16 && operand_layout &&
               ((K == 8 && std::is_same_v<T, precision::tf32>) || (K == 16 && is_16bit_float<T>()));
    }
    return std::is_same_v<Use, accumulator> && m16n16 && (K == 8 || K == 16) && std::is_same_v<T, float> &&
           std::is_same_v<Layout, void>;
}

// The value a tensor core multiplies: the top 19 bits of a tf32 element, a 16-bit element exactly.
inline float operand_value(float tf32_element) {
    return tf32_operand(tf32_element);
}
template <class T>
float operand_value(const T& element) {
    return static_cast<float>(element);
}

[[noreturn]] inline void fail(const char* function, const std::string& what) {
    throw std::invalid_argument(std::string("nvcuda::wmma::") + function + ": " + what);
}

// Every lane of the warp must reach the call (it is a warp collective here, as on a GPU) and pass the same
// pointer, leading dimension and layout; alignment as the Programming Guide requires.
inline void check_memory_access(const char* function, const void* mptr, unsigned ldm, size_t element_bytes,
                                int layout) {
    const auto address = reinterpret_cast<uintptr_t>(mptr);
    const uint64_t key = (static_cast<uint64_t>(address) * 0x9e3779b97f4a7c15ull) ^
                         (static_cast<uint64_t>(ldm) << 1) ^ static_cast<uint64_t>(layout);
    const auto key32 = static_cast<unsigned>(key ^ (key >> 32));
    const unsigned lowest = __reduce_min_sync(0xffffffffu, key32);
    const unsigned highest = __reduce_max_sync(0xffffffffu, key32);
    if (lowest != highest) {
        fail(function, "the lanes of a warp passed different pointers, leading dimensions or layouts; all 32 "
                       "lanes must call it with the same arguments");
    }
    if (address % 32 != 0) {
        fail(function, "mptr " + std::to_string(address) + " is not 256-bit (32-byte) aligned");
    }
    if (ldm * element_bytes % 16 != 0) {
        fail(function, "ldm = " + std::to_string(ldm) + " is not a multiple of " +
                           std::to_string(16 / element_bytes) + " elements (16 bytes)");
    }
}

// Offset of element (row, col) of a tile stored with leading dimension ldm.
inline size_t offset(bool row_major_storage, int row, int col, unsigned ldm) {
    return row_major_storage ? static_cast<size_t>(row) * ldm + col : static_cast<size_t>(col) * ldm + row;
}

}  // namespace emu_detail

template <class Use, int M, int N, int K, class T, class Layout = void>
class fragment {
    static_assert(emu_detail::supported<Use, M, N, K, T, Layout>(),
                  "the emulated nvcuda::wmma implements matrix_a / matrix_b <16, 16, 8, precision::tf32> and "
                  "<16, 16, 16, __nv_bfloat16 | __half> (row_major | col_major), accumulator <16, 16, 8 | 16, "
                  "float> only");

public:
    using element_type = T;
    using storage_element_type = typename emu_detail::storage<T>::type;
    static constexpr int tile_rows = emu_detail::tile_shape<Use, M, N, K>::rows;
    static constexpr int tile_cols = emu_detail::tile_shape<Use, M, N, K>::cols;
    // The whole tile in every lane (see the top of this file), as enums like CUDA's __frag_base.
    enum { num_elements = tile_rows * tile_cols };
    enum { num_storage_elements = num_elements };

    storage_element_type x[num_storage_elements];
};

template <class Use, int M, int N, int K, class T, class Layout>
inline void fill_fragment(fragment<Use, M, N, K, T, Layout>& f,
                          const typename fragment<Use, M, N, K, T, Layout>::storage_element_type& value) {
    for (auto& element : f.x) element = value;
}

// matrix_a / matrix_b: the layout is part of the fragment's type.
template <class Use, int M, int N, int K, class T, class Layout, class Element>
inline void load_matrix_sync(fragment<Use, M, N, K, T, Layout>& f, const Element* mptr, unsigned ldm) {
    static_assert(!std::is_same_v<Layout, void>, "an accumulator load needs a layout_t argument");
    using Frag = fragment<Use, M, N, K, T, Layout>;
    static_assert(std::is_same_v<std::remove_cv_t<Element>, typename Frag::storage_element_type>,
                  "load_matrix_sync reads the fragment's storage type (float for precision::tf32)");
    constexpr bool row_major_storage = std::is_same_v<Layout, row_major>;
    emu_detail::check_memory_access("load_matrix_sync", mptr, ldm, sizeof(Element), row_major_storage ? 0 : 1);
    for (int r = 0; r < Frag::tile_rows; ++r) {
        for (int c = 0; c < Frag::tile_cols; ++c)
            f.x[r * Frag::tile_cols + c] = mptr[emu_detail::offset(row_major_storage, r, c, ldm)];
    }
}

// The accumulator: the layout in memory is an argument.
template <int M, int N, int K>
inline void load_matrix_sync(fragment<accumulator, M, N, K, float>& f, const float* mptr, unsigned ldm,
                             layout_t layout) {
    using Frag = fragment<accumulator, M, N, K, float>;
    emu_detail::check_memory_access("load_matrix_sync", mptr, ldm, sizeof(float), layout);
    for (int r = 0; r < Frag::tile_rows; ++r) {
        for (int c = 0; c < Frag::tile_cols; ++c)
            f.x[r * Frag::tile_cols + c] = mptr[emu_detail::offset(layout == mem_row_major, r, c, ldm)];
    }
}

template <int M, int N, int K>
inline void store_matrix_sync(float* mptr, const fragment<accumulator, M, N, K, float>& f, unsigned ldm,
                              layout_t layout) {
    using Frag = fragment<accumulator, M, N, K, float>;
    emu_detail::check_memory_access("store_matrix_sync", mptr, ldm, sizeof(float), layout);
    for (int r = 0; r < Frag::tile_rows; ++r) {
        for (int c = 0; c < Frag::tile_cols; ++c)
            mptr[emu_detail::offset(layout == mem_row_major, r, c, ldm)] = f.x[r * Frag::tile_cols + c];
    }
}

namespace emu_detail {

// The last product a warp computed on this worker thread. The 32 lanes of a warp multiply the same fragments
// (every lane holds the whole tile), so the first lane to arrive computes and the others copy: d is a pure
// function of a, b and c, compared here bit for bit, so a copy is always the product itself. Slots are by
// warp within the block (8 of them); a slot shared or evicted only costs a recomputation. A lane runs from
// the
// __syncwarp at the top of mma_sync to its end without yielding, so no other fiber sees a half-written slot.
template <int M, int N, int K, class Storage>
struct MmaMemo {
    bool valid = false;
    Storage a[M * K], b[K * N];
    float c[M * N], d[M * N];
};

template <int M, int N, int K, class Storage>
MmaMemo<M, N, K, Storage>& mma_memo() {
    constexpr int kSlots = 8;
    thread_local MmaMemo<M, N, K, Storage> memos[kSlots];
    const unsigned linear_thread = threadIdx.x + blockDim.x * (threadIdx.y + blockDim.y * threadIdx.z);
    return memos[(linear_thread / warpSize) % kSlots];
}

}  // namespace emu_detail

// d = a · b + c (d may be c). Each product of two operand values is exact in float; the sums are float, k in
// order, so the result is deterministic.
template <int M, int N, int K, class T, class LayoutA, class LayoutB>
inline void mma_sync(fragment<accumulator, M, N, K, float>& d, const fragment<matrix_a, M, N, K, T, LayoutA>& a,
                     const fragment<matrix_b, M, N, K, T, LayoutB>& b,
                     const fragment<accumulator, M, N, K, float>& c) {
    __syncwarp();  // all lanes of the warp take part, as on a GPU
    using Storage = typename fragment<matrix_a, M, N, K, T, LayoutA>::storage_element_type;
    auto& memo = emu_detail::mma_memo<M, N, K, Storage>();
    if (memo.valid && std::memcmp(memo.a, a.x, sizeof memo.a) == 0 &&
        std::memcmp(memo.b, b.x, sizeof memo.b) == 0 && std::memcmp(memo.c, c.x, sizeof memo.c) == 0) {
        std::memcpy(d.x, memo.d, sizeof memo.d);
        return;
    }
    std::memcpy(memo.a, a.x, sizeof memo.a);  // before d is written: d may be c
    std::memcpy(memo.b, b.x, sizeof memo.b);
    std::memcpy(memo.c, c.x, sizeof memo.c);
    float a_values[M * K], b_values[K * N];
    for (int i = 0; i < M * K; ++i) a_values[i] = emu_detail::operand_value(a.x[i]);
    for (int i = 0; i < K * N; ++i) b_values[i] = emu_detail::operand_value(b.x[i]);
    for (int i = 0; i < M; ++i) {
        for (int j = 0; j < N; ++j) {
            float sum = c.x[i * N + j];
            for (int q = 0; q < K; ++q) sum += a_values[i * K + q] * b_values[q * N + j];
            d.x[i * N + j] = sum;
        }
    }
    std::memcpy(memo.d, d.x, sizeof memo.d);
    memo.valid = true;
}

// cvt.rna.tf32.f32: round to 10 mantissa bits, to nearest, ties away from zero (adding half of the dropped
// range to the magnitude's bits carries into the kept ones exactly then); the dropped bits become zero. An
// infinity stays itself and values that round past the largest tf32 become infinities, as IEEE rounding gives.
// A NaN keeps its top 19 bits: the dropped bits are cut, not rounded, so a NaN whose payload sits only in them
// becomes an infinity. That is what an H200 does (0x7f800001 -> 0x7f800000, measured 2026-11-27 by the wmma
// device test); NaNs made by arithmetic (0x7fffffff on a GPU) stay NaNs.
inline float __float_to_tf32(float in) {
    const uint32_t bits = emu_detail::float_bits(in);
    if ((bits & emu_detail::kExponentMask) == emu_detail::kExponentMask) {
        return emu_detail::bits_float(bits & ~emu_detail::kTf32DroppedBits);
    }
    return emu_detail::bits_float((bits + 0x1000u) & ~emu_detail::kTf32DroppedBits);
}

}  // namespace wmma
}  // namespace nvcuda
