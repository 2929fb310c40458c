// Parity of the cuDNN conv2d on NHWC (channels_last) activations (CudnnConvOptions::memory_format nhwc: NHWC
// x, y, dy, dx descriptors, the filter (OC, C / G, KH, KW) as the executor keeps it) with cpu::conv2d /
// conv2d_backward on the NCHW values, float (FMA math) and bf16, on CifarCNN's layers and the odd shapes
// (cuda only: runs on a GPU). A layout mix that cuDNN has no algorithm for shows here as "no ... algorithm
// qualifies", which the executor's --conv-algo auto answers with the implicit GEMM.
#include <catch2/catch.hpp>

#include <cstdint>
#include <string>

#include "cuda/vendor/cudnn_conv2d.hpp"
#include "cudacnn/device.hpp"
#include "cudacnn/ops/conv2d.hpp"
#include "support/compare.hpp"
#include "support/cudnn_conv_cases.hpp"
#include "support/nhwc_device.hpp"
#include "support/random.hpp"

using namespace cudacnn;

namespace {

// Tolerances, relative to each tensor's max |value|: the float test's cuDNN tolerance for L-term sums
// (test::cudnn_fma_tolerance), and for bf16 one bf16 rounding (2^-8) per rounding on either side plus one
// (tests/ops/conv2d_cudnn_bf16_vendor_parity_test.cpp explains the count). A layout error (a wrong stride or
// descriptor) moves values to other elements: errors of order 1.
constexpr double kBf16Rounding = 0x1p-8;

template <class T>
double tolerance(int bf16_roundings, int64_t terms) {
    const double rounding = std::is_same_v<T, float> ? 0.0 : (bf16_roundings + 1) * kBf16Rounding;
    return rounding + test::cudnn_fma_tolerance(terms);
}

template <class T>
void check_case(const test::CudnnConvCase& c, uint32_t seed) {
    using D = test::DeviceOf<T>;
    INFO("case " << c.name << (std::is_same_v<T, float> ? ", float" : ", bf16"));
    const cpu::Conv2dGeometry g = cpu::conv2d_geometry(c.x, c.w, c.options);
    const HostTensor<float> x = D::values(test::random_tensor<float>(c.x, seed)),
                            w = D::values(test::random_tensor<float>(c.w, seed + 1)),
                            bias = test::random_tensor<float>(Shape{c.w[0]}, seed + 2),
                            dy = D::values(test::random_tensor<float>(g.output_shape(), seed + 3));
    const HostTensor<float> y_ref = D::values(cpu::conv2d<float>(x, w, c.bias ? &bias : nullptr, c.options));
    const cpu::Conv2dGrads<float> ref = cpu::conv2d_backward<float>(x, w, dy, c.bias, c.options);

    gpu::CudnnConvOptions opts;
    opts.data_type = dtype_of<T>();
    opts.memory_format = MemoryFormat::nhwc;
    Stream stream;
    const cudaStream_t s = stream.handle();
    const gpu::CudnnConv2d conv(g, opts, s);
    INFO("cuDNN: " << conv.describe());

    const DeviceBuffer d_x = D::upload(test::to_nhwc(x)), d_dy = D::upload(test::to_nhwc(dy)),
                       d_w = D::upload(w), d_bias = test::to_device(bias);
    const DeviceBuffer d_y = D::poison(g.output_shape().numel()), d_dx = D::poison(c.x.numel());
    const DeviceBuffer d_dw = test::poisoned<float>(c.w.numel()), d_db = test::poisoned<float>(c.w[0]);
    const DeviceBuffer workspace(conv.workspace_bytes());
    conv.forward(D::data(d_x), D::data(d_w), c.bias ? d_bias.data_as<float>() : nullptr, D::data(d_y),
                 workspace.data(), workspace.bytes(), s);
    conv.backward_data(D::data(d_dy), D::data(d_w), D::data(d_dx), workspace.data(), workspace.bytes(), s);
    conv.backward_filter(D::data(d_x), D::data(d_dy), d_dw.data_as<float>(),
                         c.bias ? d_db.data_as<float>() : nullptr, workspace.data(), workspace.bytes(), s);
    stream.synchronize();

    const int64_t taps = g.kernel_h * g.kernel_w, positions = g.batch * g.out_h * g.out_w;
    CHECK(test::max_relative_error(test::from_nhwc(D::download(d_y, g.output_shape())), y_ref) <=
          tolerance<T>(c.bias ? 3 : 2, g.in_channels_per_group() * taps + 1));
    CHECK(test::max_relative_error(test::from_nhwc(D::download(d_dx, c.x)), D::values(ref.dx)) <=
          tolerance<T>(2, g.out_channels_per_group() * taps));
    CHECK(test::max_relative_error(test::to_host<float>(d_dw, c.w), ref.dweight) <=
          tolerance<T>(1, positions));
    if (c.bias) {
        CHECK(test::max_relative_error(test::to_host<float>(d_db, Shape{c.w[0]}), ref.dbias) <=
              tolerance<T>(1, positions));
    }
}

}  // namespace

TEST_CASE("cuDNN conv2d on NHWC activations matches the reference on CifarCNN's layers, float and bf16",
          "[parity][cudnn][nhwc]") {
    uint32_t seed = 2100;
    for (const test::CudnnConvCase& c : test::cudnn_cifar_layers()) {
        check_case<float>(c, seed += 10);
        check_case<gpu::bf16>(c, seed += 10);
    }
}

TEST_CASE("cuDNN conv2d on NHWC activations matches the reference on odd shapes, float and bf16",
          "[parity][cudnn][nhwc]") {
    uint32_t seed = 2300;
    for (const test::CudnnConvCase& c : test::cudnn_odd_cases()) {
        check_case<float>(c, seed += 10);
        check_case<gpu::bf16>(c, seed += 10);
    }
}
