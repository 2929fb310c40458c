// Building conv2d options in one call, for tables of test cases.
#pragma once

#include <cstdint>

#include "cudacnn/ops/conv2d.hpp"

namespace cudacnn::test {

inline cpu::Conv2dOptions conv2d_options(cpu::Pair2d stride, cpu::Conv2dPadding padding, cpu::Pair2d dilation,
                                         int64_t groups, cpu::Conv2dPaddingMode mode) {
    cpu::Conv2dOptions o;
    o.stride = stride;
    o.padding = padding;
    o.dilation = dilation;
    o.groups = groups;
    o.padding_mode = mode;
    return o;
}

}  // namespace cudacnn::test
