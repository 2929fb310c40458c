// One-line builders for the pooling options structs, in nn.MaxPool2d / nn.AvgPool2d / nn.LPPool2d argument
// order, shared by the reference tests (tests/cpu/pool_test.cpp) and the kernel parity tests (tests/ops).
#pragma once

#include <cstdint>
#include <optional>

#include "cudacnn/ops/pool.hpp"

namespace cudacnn::test {

inline cpu::MaxPool2dOptions max_options(cpu::Pair2d kernel, std::optional<cpu::Pair2d> stride = std::nullopt,
                                         cpu::Pair2d padding = 0, cpu::Pair2d dilation = 1,
                                         bool ceil_mode = false) {
    cpu::MaxPool2dOptions o;
    o.kernel_size = kernel, o.stride = stride, o.padding = padding, o.dilation = dilation,
    o.ceil_mode = ceil_mode;
    return o;
}

inline cpu::AvgPool2dOptions avg_options(cpu::Pair2d kernel, std::optional<cpu::Pair2d> stride = std::nullopt,
                                         cpu::Pair2d padding = 0, bool ceil_mode = false,
                                         bool count_include_pad = true,
                                         std::optional<int64_t> divisor_override = std::nullopt) {
    cpu::AvgPool2dOptions o;
    o.kernel_size = kernel, o.stride = stride, o.padding = padding, o.ceil_mode = ceil_mode;
    o.count_include_pad = count_include_pad, o.divisor_override = divisor_override;
    return o;
}

inline cpu::LpPool2dOptions lp_options(double p, cpu::Pair2d kernel,
                                       std::optional<cpu::Pair2d> stride = std::nullopt,
                                       bool ceil_mode = false) {
    cpu::LpPool2dOptions o;
    o.norm_type = p, o.kernel_size = kernel, o.stride = stride, o.ceil_mode = ceil_mode;
    return o;
}

}  // namespace cudacnn::test
