// Parity of the bf16 linear layer (cuda/linear.cu's bf16 overloads: x, dy, dx bf16, the weight's bf16 copy,
// y bf16 or float, bias, dweight, dbias float) with cpu::linear and cpu::linear_backward on the bf16 values,
// and bit for bit with the FP32 layer on the widened values (rounded once where stored bf16) wherever the
// BF16 GEMM sums as the FP32 one does (see gemm_matches_fp32).
#include <catch2/catch.hpp>

#include <algorithm>
#include <cstdint>

#include "cuda/gemm.hpp"
#include "cuda/linear.hpp"
#include "cudacnn/ops/linear.hpp"
#include "support/bf16.hpp"
#include "support/compare.hpp"
#include "support/errors.hpp"
#include "support/parity.hpp"
#include "support/tolerance.hpp"

using namespace cudacnn;

namespace {

// Every output is a float sum of `terms` exact products of bf16 values (in_features for y, out_features for
// dx, batch for dweight and dbias), against the reference's double sums of the same products: the FP32
// layer's bound, test::float_sum_tolerance(terms) (see linear_parity_test.cpp). A bf16 output (y, dx) and the
// reference are both rounded once to bf16; where a rounding boundary lies between the two float values they
// end one bf16 ulp apart, at most 2^-7 of the value (8 significant bits): kBf16Ulp more.
constexpr double kBf16Ulp = 0x1p-7;

// Whether the bf16 layer's GEMM (gemm_bf16_split, which takes tensor cores where available) gives the FP32
// GEMM's bits on the widened values: on its CUDA-core kernel, and on tensor cores under the emulator, whose
// wmma adds the exact products in k order in float as the CUDA-core kernel does. A GPU's tensor cores
// associate and truncate their sums their own way.
bool gemm_matches_fp32() {
#ifdef CUDACNN_EMU
    return true;
#else
    return !gpu::bf16_tensor_cores_available();
#endif
}

// The float-sum margin: 1 where the sums are the FP32 GEMM's; 4 on a GPU's tensor cores, whose additions
// truncate after aligning a step's products to the largest (gemm_bf16_tc_parity_test.cpp's
// kTensorCoreSumMargin says why 4).
double sum_margin() {
    return gemm_matches_fp32() ? 1.0 : 4.0;
}

double tolerance(int64_t terms, bool bf16_output) {
    return test::float_sum_tolerance(terms, sum_margin()) + (bf16_output ? kBf16Ulp : 0.0);
}

// A bf16 device copy of `t` (bf16 values) that starts `offset` elements into its buffer (offset 1: rows of a
// multiple of 4 elements are no longer 8-byte aligned, so the GEMM takes its scalar paths).
struct Bf16At {
    DeviceBuffer buffer;
    int64_t offset;
    gpu::bf16* data() const { return test::bf16_data(buffer) + offset; }
    HostTensor<float> host(const Shape& shape) const {
        const HostTensor<float> all = test::to_host_bf16(buffer.data(), Shape{shape.numel() + offset});
        return HostTensor<float>(shape, std::vector<float>(all.data() + offset, all.data() + all.numel()));
    }
};

Bf16At bf16_at(const HostTensor<float>& t, int64_t offset) {
    HostTensor<float> shifted(Shape{t.numel() + offset}, 0.0f);
    std::copy(t.data(), t.data() + t.numel(), shifted.data() + offset);
    return {test::to_device_bf16(shifted), offset};
}

Bf16At poisoned_bf16_at(int64_t count, int64_t offset) {
    return {test::poisoned_bf16(count + offset), offset};
}

// Forward (y bf16 and y float) and backward of the bf16 layer; with a workspace of
// linear_workspace_bytes_bf16, products with few output tiles and a long k split it. bf16 tensors start
// `offset` elements into their buffers.
void check_linear_bf16(const gpu::LinearShape& s, bool has_bias, uint32_t seed, bool with_workspace = false,
                       int64_t offset = 0) {
    INFO("batch " << s.batch << ", in " << s.in_features << ", out " << s.out_features << ", bias "
                  << has_bias << ", workspace " << with_workspace << ", offset " << offset);
    const auto x = test::round_to_bf16(test::random_tensor<float>(Shape{s.batch, s.in_features}, seed));
    const auto weight =
        test::round_to_bf16(test::random_tensor<float>(Shape{s.out_features, s.in_features}, seed + 1));
    const auto bias = test::random_tensor<float>(Shape{s.out_features}, seed + 2);  // float: not rounded
    const auto dy = test::round_to_bf16(test::random_tensor<float>(Shape{s.batch, s.out_features}, seed + 3));
    const Bf16At d_x = bf16_at(x, offset), d_weight = bf16_at(weight, offset), d_dy = bf16_at(dy, offset);
    const DeviceBuffer d_bias = test::to_device(bias);
    const float* bias_ptr = has_bias ? d_bias.data_as<float>() : nullptr;
    const Bf16At d_y = poisoned_bf16_at(s.batch * s.out_features, offset);
    const Bf16At d_dx = poisoned_bf16_at(s.batch * s.in_features, offset);
    const DeviceBuffer d_logits = test::poisoned<float>(s.batch * s.out_features);
    const DeviceBuffer d_dweight = test::poisoned<float>(s.out_features * s.in_features);
    const DeviceBuffer d_dbias = test::poisoned<float>(s.out_features);

    const size_t workspace_bytes = with_workspace ? gpu::linear_workspace_bytes_bf16(s) : 0;
    const DeviceBuffer workspace =
        test::poisoned<float>(static_cast<int64_t>(workspace_bytes / sizeof(float)));
    void* ws = with_workspace ? workspace.data() : nullptr;
    gpu::linear_forward(d_x.data(), d_weight.data(), bias_ptr, d_y.data(), s, nullptr, ws, workspace_bytes);
    gpu::linear_forward(d_x.data(), d_weight.data(), bias_ptr, d_logits.data_as<float>(), s, nullptr, ws,
                        workspace_bytes);
    gpu::linear_backward(d_x.data(), d_weight.data(), d_dy.data(), d_dx.data(), d_dweight.data_as<float>(),
                         has_bias ? d_dbias.data_as<float>() : nullptr, s, nullptr, ws, workspace_bytes);
    const HostTensor<float> y = d_y.host(Shape{s.batch, s.out_features});
    const HostTensor<float> logits = test::to_host<float>(d_logits, y.shape());
    const HostTensor<float> dx = d_dx.host(Shape{s.batch, s.in_features});
    const HostTensor<float> dweight = test::to_host<float>(d_dweight, Shape{s.out_features, s.in_features});
    const HostTensor<float> dbias = test::to_host<float>(d_dbias, bias.shape());

    // Against the reference on the bf16 values (double sums), its bf16 outputs rounded once.
    const auto y_ref = cpu::linear(x, weight, has_bias ? &bias : nullptr);
    const auto grads = cpu::linear_backward(x, weight, dy, has_bias);
    CHECK(test::max_relative_error(y, test::round_to_bf16(y_ref)) <= tolerance(s.in_features, true));
    CHECK(test::max_relative_error(logits, y_ref) <= tolerance(s.in_features, false));
    CHECK(test::max_relative_error(dx, test::round_to_bf16(grads.dx)) <= tolerance(s.out_features, true));
    CHECK(test::max_relative_error(dweight, grads.dweight) <= tolerance(s.batch, false));
    if (has_bias) CHECK(test::max_relative_error(dbias, grads.dbias) <= tolerance(s.batch, false));

    // Bit for bit the FP32 layer on the widened values (the same GEMM sums, splits and bias order; the
    // products of bf16 values are exact in float), rounded once where the bf16 layer stores bf16.
    if (!gemm_matches_fp32()) return;
    const DeviceBuffer f_x = test::to_device(x), f_weight = test::to_device(weight),
                       f_dy = test::to_device(dy);
    const DeviceBuffer f_y = test::poisoned<float>(y.numel()), f_dx = test::poisoned<float>(dx.numel());
    const DeviceBuffer f_dweight = test::poisoned<float>(dweight.numel());
    const DeviceBuffer f_dbias = test::poisoned<float>(dbias.numel());
    gpu::linear_forward(f_x.data_as<float>(), f_weight.data_as<float>(), bias_ptr, f_y.data_as<float>(), s,
                        nullptr, ws, workspace_bytes);
    gpu::linear_backward(f_x.data_as<float>(), f_weight.data_as<float>(), f_dy.data_as<float>(),
                         f_dx.data_as<float>(), f_dweight.data_as<float>(),
                         has_bias ? f_dbias.data_as<float>() : nullptr, s, nullptr, ws, workspace_bytes);
    const HostTensor<float> fp32_y = test::to_host<float>(f_y, y.shape());
    CHECK(test::bitwise_equal(logits, fp32_y));
    CHECK(test::bitwise_equal(y, test::round_to_bf16(fp32_y)));
    CHECK(test::bitwise_equal(dx, test::round_to_bf16(test::to_host<float>(f_dx, dx.shape()))));
    CHECK(test::bitwise_equal(dweight, test::to_host<float>(f_dweight, dweight.shape())));
    if (has_bias) CHECK(test::bitwise_equal(dbias, test::to_host<float>(f_dbias, dbias.shape())));
}

}  // namespace

TEST_CASE("linear bf16: forward and backward match the reference on CifarCNN's layers",
          "[parity][bf16][linear]") {
    // fc_layer's Linear(1024 → 512) and Linear(512 → 10) (the last one: y float as logits for the loss),
    // batch scaled down from 128 to 2. Linear(4096 → 1024) would take seconds under the emulator: its k =
    // 4096 is covered by the split test below at 64 outputs.
    check_linear_bf16({2, 1024, 512}, true, 2);
    check_linear_bf16({2, 512, 10}, true, 3);
}

TEST_CASE("linear bf16: products split over k into the workspace", "[parity][bf16][linear]") {
    // A narrow output over a long k: the own GEMM splits k (float partial products, summed in order).
    for (const gpu::LinearShape s : {gpu::LinearShape{2, 4096, 64}, gpu::LinearShape{3, 2047, 70}}) {
        CHECK(gpu::linear_workspace_bytes_bf16(s) > 0);
        check_linear_bf16(s, true, 30, /*with_workspace=*/true);
    }
    CHECK(gpu::linear_workspace_bytes_bf16({256, 64, 64}) == 0);  // nothing worth splitting
}

TEST_CASE("linear bf16: odd shapes, with and without bias, unaligned tensors", "[parity][bf16][linear]") {
    for (const bool has_bias : {true, false}) {
        check_linear_bf16({1, 3, 7}, has_bias, 10);
        check_linear_bf16({5, 7, 3}, has_bias, 11);
        check_linear_bf16({70, 67, 66}, has_bias, 13);  // more than one 64-wide tile in every dimension
    }
    // Rows of 8 and 12 elements: 8-byte groups where the tensors start aligned (offset 0), scalar access at
    // offset 1.
    for (const int64_t offset : {0, 1}) check_linear_bf16({5, 8, 12}, true, 14, false, offset);
}

TEST_CASE("linear bf16: null gradient outputs are skipped", "[parity][bf16][linear]") {
    const gpu::LinearShape s{2, 5, 3};
    const auto x = test::round_to_bf16(test::random_tensor<float>(Shape{2, 5}, 20));
    const auto weight = test::round_to_bf16(test::random_tensor<float>(Shape{3, 5}, 21));
    const auto dy = test::round_to_bf16(test::random_tensor<float>(Shape{2, 3}, 22));
    const DeviceBuffer d_x = test::to_device_bf16(x), d_weight = test::to_device_bf16(weight),
                       d_dy = test::to_device_bf16(dy);
    const DeviceBuffer d_dweight = test::poisoned<float>(15);
    gpu::linear_backward(test::bf16_data(d_x), test::bf16_data(d_weight), test::bf16_data(d_dy), nullptr,
                         d_dweight.data_as<float>(), nullptr, s, nullptr);
    const auto grads = cpu::linear_backward(x, weight, dy, false);
    CHECK(test::max_relative_error(test::to_host<float>(d_dweight, Shape{3, 5}), grads.dweight) <=
          tolerance(2, false));
}

TEST_CASE("linear bf16: bad arguments name the op and the values", "[parity][bf16][linear]") {
    using Catch::Matchers::Contains;
    const DeviceBuffer buffer = test::poisoned_bf16(16);
    gpu::bf16* p = test::bf16_data(buffer);
    const DeviceBuffer floats = test::poisoned<float>(16);
    float* f = floats.data_as<float>();
    CHECK_THAT(test::error_message([&] {
                   gpu::linear_forward(p, p, nullptr, p, {0, 3, 4}, nullptr);
               }),
               Contains("linear") && Contains("batch = 0"));
    CHECK_THAT(test::error_message([&] {
                   gpu::linear_forward(p, p, f, f, {2, 3, 0}, nullptr);
               }),
               Contains("out_features = 0"));
    CHECK_THAT(test::error_message([&] {
                   gpu::linear_backward(p, p, p, p, f, f, {2, -3, 4}, nullptr);
               }),
               Contains("linear_backward") && Contains("in_features = -3"));
    CHECK_THAT(test::error_message([&] {
                   gpu::linear_workspace_bytes_bf16({2, 3, -1});
               }),
               Contains("linear_workspace_bytes_bf16") && Contains("out_features = -1"));
}
