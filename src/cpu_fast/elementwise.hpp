// The work-item size of the fast CPU path's elementwise loops (activation, dropout, optimizer, add): a fixed
// number of values per item, so each item's work is the same whatever the thread count.
#pragma once

#include <cstdint>

namespace cudacnn::cpu_fast {

// 16 Ki values: 64 KiB per float array, large enough that scheduling an item costs far less than running it,
// small enough that a CifarCNN activation (128 · 32 · 32 · 32 values) spreads over dozens of items.
constexpr int64_t kElementwiseGrain = int64_t{1} << 14;

// The loops over an item carry `#pragma omp simd`: their arrays never overlap except exactly (in place), which
// GCC cannot see, and at -O2 its cheap cost model will not add the runtime alias checks that vectorizing would
// need. The pragma only allows vector instructions; it does not reassociate or contract float arithmetic (no
// reduction clause), so results stay those of the scalar loop.

}  // namespace cudacnn::cpu_fast
