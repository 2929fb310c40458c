// Storage casts: the element-wise map's copy functor between float and bf16 storage, whose load widens and
// whose store rounds once (cuda/bf16.cuh), which is the whole cast.
#include "cuda/cast.hpp"

#include "cuda/elementwise.cuh"
#include "cudacnn/error.hpp"

namespace cudacnn::gpu {
namespace {

template <class From, class To>
void cast_t(const From* x, To* y, int64_t count, cudaStream_t stream) {
    CUDACNN_CHECK(count > 0, "cast: the input is empty (count {}); pass at least one element", count);
    CUDACNN_CHECK(x != nullptr && y != nullptr, "cast: x ({}) and y ({}) must be device pointers, not null",
                  static_cast<const void*>(x), static_cast<const void*>(y));
    launch_map<1>(kernels::CopyOp{}, x, nullptr, y, count, stream);
}

}  // namespace

void cast(const float* x, bf16* y, int64_t count, cudaStream_t stream) {
    cast_t(x, y, count, stream);
}

void cast(const bf16* x, float* y, int64_t count, cudaStream_t stream) {
    cast_t(x, y, count, stream);
}

}  // namespace cudacnn::gpu
