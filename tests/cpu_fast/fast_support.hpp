// Helpers of the fast CPU path's tests (tests/cpu_fast): NaN-poisoned outputs, bitwise comparison, and running
// an op with 1, 2 and 3 worker threads.
#pragma once

#include <cstdint>
#include <cstring>
#include <functional>
#include <limits>
#include <type_traits>

#include "cudacnn/host_tensor.hpp"
#include "src/cpu_fast/workers.hpp"
#include "support/random.hpp"  // random_tensor: the tests' inputs come from it

namespace cudacnn::test {

// An output for the op to overwrite, every element NaN (floats) or all bits set (integers), so an element the
// op forgot to write cannot pass a comparison.
template <class T>
HostTensor<T> poisoned_tensor(const Shape& shape) {
    if constexpr (std::is_floating_point_v<T>) {
        return HostTensor<T>(shape, std::numeric_limits<T>::quiet_NaN());
    } else {
        return HostTensor<T>(shape, static_cast<T>(~T{0}));
    }
}

// Bit-for-bit equality (NaNs with the same bits compare equal): the fast ops promise it against the reference
// wherever they do the reference's arithmetic, and always across thread counts.
template <class T>
bool same_bits(const HostTensor<T>& a, const HostTensor<T>& b) {
    // memcmp must not see the null data of an empty tensor (plain SGD's state).
    return a.shape() == b.shape() &&
           (a.numel() == 0 || std::memcmp(a.data(), b.data(), static_cast<std::size_t>(a.numel()) * sizeof(T)) == 0);
}

// The thread counts every fast op is run with: results must not depend on them.
constexpr int kThreadCounts[] = {1, 2, 3};

// A work-item count larger than one elementwise item (src/cpu_fast/elementwise.hpp's 16 Ki values) and not a
// multiple of 4, so that the last item is partial and several threads get work.
constexpr int64_t kSeveralItems = 3 * (int64_t{1} << 14) + 7;

}  // namespace cudacnn::test
