// The dropout mask rule of cudacnn/ops/dropout.hpp ("the mask rule") as one inline function, shared by the
// reference (src/cpu/dropout.cpp) and the fast CPU path (src/cpu_fast/dropout.cpp) so the rule is written once.
#pragma once

#include <cstdint>

#include "cudacnn/philox.hpp"

namespace cudacnn::cpu::detail {

// The keep decisions of units 4·group … 4·group + 3 (one Philox block serves all four): unit j = 4·group + k
// is kept when uint32_to_unit_float(philox_draw(seed, stream, group).v[k]) >= p, with p the option's p
// rounded to float.
inline void dropout_keep4(uint64_t seed, uint64_t stream, float p, uint64_t group, bool keep[4]) {
    const PhiloxBlock bits = philox_draw(seed, stream, group);
    for (int k = 0; k < 4; ++k) keep[k] = uint32_to_unit_float(bits.v[k]) >= p;
}

}  // namespace cudacnn::cpu::detail
