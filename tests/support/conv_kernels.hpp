// The hand-written convolutions' common contract (cuda/conv2d_implicit.hpp, cuda/conv2d_winograd.hpp: the same
// four functions), so that checks every such kernel must pass are written once.
#pragma once

#include <catch2/catch.hpp>

#include <cstddef>
#include <tuple>

#include <cuda_runtime_api.h>

#include "cudacnn/ops/conv2d.hpp"
#include "support/compare.hpp"
#include "support/parity.hpp"
#include "support/random.hpp"

namespace cudacnn::test {

struct ConvKernels {
    size_t (*workspace_bytes)(const cpu::Conv2dGeometry&);
    void (*forward)(const cpu::Conv2dGeometry&, const float* x, const float* w, const float* bias, float* y,
                    void* workspace, size_t workspace_bytes, cudaStream_t);
    void (*backward_data)(const cpu::Conv2dGeometry&, const float* dy, const float* w, float* dx, void* workspace,
                          size_t workspace_bytes, cudaStream_t);
    void (*backward_filter)(const cpu::Conv2dGeometry&, const float* x, const float* dy, float* dw, float* dbias,
                            void* workspace, size_t workspace_bytes, cudaStream_t);
};

// Two runs of the three directions on the same random inputs (and one workspace, reused) give the same bits:
// no atomics, no order that depends on scheduling.
inline void check_bitwise_reproducible(const ConvKernels& kernels, const cpu::Conv2dGeometry& g) {
    const Shape xs{g.batch, g.in_channels, g.in_h, g.in_w};
    const Shape ws{g.out_channels, g.in_channels_per_group(), g.kernel_h, g.kernel_w};
    const DeviceBuffer x = to_device(random_tensor<float>(xs, 160));
    const DeviceBuffer dy = to_device(random_tensor<float>(g.output_shape(), 161));
    const DeviceBuffer w = to_device(random_tensor<float>(ws, 162));
    const size_t bytes = kernels.workspace_bytes(g);
    const DeviceBuffer workspace(bytes);
    auto run = [&]() {
        const DeviceBuffer y = poisoned<float>(g.output_shape().numel()), dx = poisoned<float>(xs.numel()),
                           dw = poisoned<float>(ws.numel());
        kernels.forward(g, x.data_as<float>(), w.data_as<float>(), nullptr, y.data_as<float>(), workspace.data(),
                        bytes, nullptr);
        kernels.backward_data(g, dy.data_as<float>(), w.data_as<float>(), dx.data_as<float>(), workspace.data(),
                              bytes, nullptr);
        kernels.backward_filter(g, x.data_as<float>(), dy.data_as<float>(), dw.data_as<float>(), nullptr,
                                workspace.data(), bytes, nullptr);
        return std::make_tuple(to_host<float>(y, g.output_shape()), to_host<float>(dx, xs), to_host<float>(dw, ws));
    };
    const auto first = run(), second = run();
    CHECK(bitwise_equal(std::get<0>(first), std::get<0>(second)));
    CHECK(bitwise_equal(std::get<1>(first), std::get<1>(second)));
    CHECK(bitwise_equal(std::get<2>(first), std::get<2>(second)));
}

}  // namespace cudacnn::test
