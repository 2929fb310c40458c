// Parity of the fused optimizer kernels (cuda/optimizer.hpp) with the CPU reference: bit for bit, every step.
#include <catch2/catch.hpp>

#include <array>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <vector>

#include "cuda/optimizer.hpp"
#include "cudacnn/device.hpp"
#include "cudacnn/ops/optimizer.hpp"
#include "support/bf16.hpp"
#include "support/compare.hpp"
#include "support/parity.hpp"

using namespace cudacnn;
using Catch::Matchers::Contains;

namespace {

// Tolerance: none. The launchers compute the reference's scalars in double and round them to float as it
// does, and the kernels do its float operations in its order with __fmul_rn / __fadd_rn / __fsqrt_rn (no
// fused multiply-add contraction) and IEEE division, so params and every state slot must equal
// cpu::*_step<float> bit for bit, under the emulator and on a GPU alike.

// Where the arrays sit: n values starting `offset` floats into their buffers. Offsets that differ between
// the arrays (or a multi-slot state with n % 4 ≠ 0) force the scalar path; equal offsets give a scalar head,
// float4 groups and a scalar tail.
struct Layout {
    const char* name;
    int64_t n;
    int64_t params_offset = 0;
    int64_t grads_offset = 0;
    int64_t state_offset = 0;
};

const std::vector<Layout> kLayouts = {
    {"n 1", 1},
    {"n 7: one float4 group and a tail of 3 (a multi-slot state is scalar)", 7},
    {"n 4099", 4099},
    {"n 4100: every slot aligned, float4 only", 4100},
    {"n 4100, every array one float past 16-byte alignment: head 3, groups, tail 1", 4100, 1, 1, 1},
    {"n 4099, only params one float off: scalar", 4099, 1, 0, 0},
};

// Steps: each with new gradients of a different scale (big then small, so amsgrad's running maximum departs
// from exp_avg_sq) and the learning rate scaled as a schedule would, including a step at lr 0.
constexpr int kSteps = 5;
constexpr double kGradScale[kSteps] = {1.0, 0.05, 2.0, 0.01, 0.5};
constexpr double kLrScale[kSteps] = {1.0, 0.5, 2.0, 0.0, 0.3};

constexpr int64_t kGuard = 4;  // NaN floats after each array, which no kernel may write

// `count` floats at `offset` floats into a device buffer whose other floats are NaN (0xff bytes).
class GuardedArray {
  public:
    GuardedArray(const float* host, int64_t count, int64_t offset)
        : buffer_(test::poisoned<float>(offset + count + kGuard)), count_(count), offset_(offset) {
        copy_to_device(data(), host, static_cast<size_t>(count) * sizeof(float));
    }
    float* data() const { return buffer_.data_as<float>() + offset_; }
    HostTensor<float> values() const {
        return HostTensor<float>(Shape{count_}, download(data(), static_cast<size_t>(count_)));
    }
    // True while every float outside the array still has the poison's bits.
    bool guards_intact() const {
        const std::vector<uint32_t> all = download(buffer_.data_as<uint32_t>(), buffer_.bytes() / 4);
        for (size_t i = 0; i < all.size(); ++i) {
            const bool inside = int64_t(i) >= offset_ && int64_t(i) < offset_ + count_;
            if (!inside && all[i] != 0xffffffffu) return false;
        }
        return true;
    }

  private:
    DeviceBuffer buffer_;
    int64_t count_, offset_;
};

HostTensor<float> slice(const HostTensor<float>& t, int64_t begin, int64_t count) {
    return HostTensor<float>(Shape{count}, std::vector<float>(t.data() + begin, t.data() + begin + count));
}

// Runs kSteps steps of the reference and the kernel side by side from the same parameters and a zero state,
// and requires params, every state slot and the step counter to match exactly after each step.
template <class Options, class Init, class CpuStep, class GpuStep>
void check_steps(const Options& options, const Layout& layout, Init init, CpuStep cpu_step,
                 GpuStep gpu_step) {
    const int64_t n = layout.n;
    HostTensor<float> params = test::random_tensor<float>(Shape{n}, 11);
    cpu::OptimizerState<float> state = init(options, n);
    const int64_t slots = state.slots();
    GuardedArray device_params(params.data(), n, layout.params_offset);
    GuardedArray device_state(state.values.data(), slots * n, layout.state_offset);
    int64_t step = 0;
    for (int k = 0; k < kSteps; ++k) {
        INFO(layout.name << ", step " << k);
        Options o = options;
        o.lr = options.lr * kLrScale[k];
        const HostTensor<float> grads =
            test::random_tensor<float>(Shape{n}, 100 + k, -kGradScale[k], kGradScale[k]);
        GuardedArray device_grads(grads.data(), n, layout.grads_offset);
        cpu_step(o, params, grads, state);
        gpu_step(o, device_params.data(), device_grads.data(), slots > 0 ? device_state.data() : nullptr, n,
                 step, nullptr);
        CHECK(step == state.step);
        const HostTensor<float> actual_params = device_params.values();
        INFO("params max relative error " << test::max_relative_error(actual_params, params));
        REQUIRE(test::bitwise_equal(actual_params, params));
        const HostTensor<float> actual_state = device_state.values();
        for (int64_t s = 0; s < slots; ++s) {
            const HostTensor<float> slot = slice(actual_state, s * n, n);
            INFO("slot " << s << " max relative error "
                         << test::max_relative_error(slot, state.slot_tensor(s)));
            REQUIRE(test::bitwise_equal(slot, state.slot_tensor(s)));
        }
        REQUIRE(device_params.guards_intact());
        REQUIRE(device_state.guards_intact());
        REQUIRE(device_grads.guards_intact());
    }
}

template <class Options, class Init, class CpuStep, class GpuStep>
void check_all_layouts(const std::vector<Options>& configs, Init init, CpuStep cpu_step, GpuStep gpu_step) {
    for (size_t c = 0; c < configs.size(); ++c) {
        INFO("option set " << c);
        for (const Layout& layout : kLayouts) check_steps(configs[c], layout, init, cpu_step, gpu_step);
    }
}

}  // namespace

// The option sets of tests/cpu/optimizer_test.cpp (tools/fixtures/optim.py) with their base learning rates;
// every set runs the lr schedule of kLrScale, which covers the fixtures' *_lr_changes sets (sgd_lr_changes is
// sgd_momentum at lr 0.1, so it is not repeated).

TEST_CASE("gpu sgd equals the reference bit for bit, step by step", "[parity][optimizer][sgd]") {
    const std::vector<cpu::SgdOptions> configs = {
        // {lr, momentum, dampening, weight_decay, nesterov, maximize}
        {0.1, 0, 0, 0, false, false},      {0.05, 0, 0, 0.1, false, false},
        {0.1, 0.9, 0, 0, false, false},    {0.05, 0.8, 0.3, 0.01, false, false},
        {0.05, 0.9, 0, 1e-3, true, false}, {0.1, 0.5, 0, 0, false, true},
    };
    check_all_layouts(
        configs, [](const cpu::SgdOptions& o, int64_t n) { return cpu::sgd_init_state<float>(o, n); },
        [](const auto& o, auto& p, const auto& g, auto& s) { cpu::sgd_step(o, p, g, s); },
        [](const cpu::SgdOptions& o, float* p, const float* g, float* s, int64_t n, int64_t& step,
           cudaStream_t stream) { gpu::sgd_step(o, p, g, s, n, step, stream); });
}

TEST_CASE("gpu adam equals the reference bit for bit, step by step", "[parity][optimizer][adam]") {
    using cpu::AdamOptions;
    const std::vector<AdamOptions> configs = {
        // {lr, beta1, beta2, eps, weight_decay, amsgrad, maximize}
        {1e-3, 0.9, 0.999, 1e-8, 0, false, false}, {0.01, 0.8, 0.95, 1e-3, 0, false, false},
        {0.01, 0.0, 0.99, 1e-8, 0, false, false},  {0.01, 0.9, 0.999, 1e-8, 0.1, false, false},
        {0.01, 0.9, 0.999, 1e-8, 0, true, false},  {0.01, 0.9, 0.99, 1e-8, 0.05, true, false},
        {0.01, 0.9, 0.999, 1e-8, 0, false, true},  {0.1, 0.9, 0.999, 1e-8, 0, false, false},
    };
    check_all_layouts(
        configs, [](const AdamOptions& o, int64_t n) { return cpu::adam_init_state<float>(o, n); },
        [](const auto& o, auto& p, const auto& g, auto& s) { cpu::adam_step(o, p, g, s); },
        [](const AdamOptions& o, float* p, const float* g, float* s, int64_t n, int64_t& step,
           cudaStream_t stream) { gpu::adam_step(o, p, g, s, n, step, stream); });
}

TEST_CASE("gpu adamw equals the reference bit for bit, step by step", "[parity][optimizer][adamw]") {
    using cpu::AdamWOptions;
    const std::vector<AdamWOptions> configs = {
        // {lr, beta1, beta2, eps, weight_decay, amsgrad, maximize}
        {1e-3, 0.9, 0.999, 1e-8, 1e-2, false, false}, {0.01, 0.9, 0.999, 1e-3, 0.1, false, false},
        {0.01, 0.9, 0.999, 1e-8, 0, false, false},    {0.01, 0.9, 0.999, 1e-8, 0.05, true, false},
        {0.01, 0.9, 0.999, 1e-8, 1e-2, false, true},  {0.1, 0.9, 0.999, 1e-8, 0.1, false, false},
    };
    check_all_layouts(
        configs, [](const AdamWOptions& o, int64_t n) { return cpu::adamw_init_state<float>(o, n); },
        [](const auto& o, auto& p, const auto& g, auto& s) { cpu::adamw_step(o, p, g, s); },
        [](const AdamWOptions& o, float* p, const float* g, float* s, int64_t n, int64_t& step,
           cudaStream_t stream) { gpu::adamw_step(o, p, g, s, n, step, stream); });
}

TEST_CASE("the optimizer layouts exercise the scalar head, float4 groups and scalar tail",
          "[parity][optimizer]") {
    // Addresses only: the split never dereferences them. 0x1000 is 16-byte aligned.
    const auto at = [](int64_t floats) { return reinterpret_cast<const float*>(0x1000 + 4 * floats); };
    const auto split = [&](const Layout& l, int64_t slots) {
        return gpu::optimizer_float4_split(at(l.params_offset), at(8192 + l.grads_offset),
                                           at(16384 + l.state_offset), slots, l.n);
    };
    const auto check = [](std::array<int64_t, 3> split, int64_t head, int64_t vectors, int64_t tail) {
        CHECK(split == std::array<int64_t, 3>{head, vectors, tail});
    };
    check(split(kLayouts[1], 1), 0, 1, 3);     // n 7, SGD momentum
    check(split(kLayouts[1], 2), 7, 0, 0);     // n 7, Adam: slot 1 starts 7 floats after slot 0
    check(split(kLayouts[2], 1), 0, 1024, 3);  // n 4099, SGD
    check(split(kLayouts[3], 3), 0, 1025, 0);  // n 4100, amsgrad
    check(split(kLayouts[4], 2), 3, 1024, 1);  // one float off everywhere
    check(split(kLayouts[5], 0), 4099, 0, 0);  // params alone off
    check(split(kLayouts[0], 1), 0, 0, 1);     // n 1
}

TEST_CASE("gpu adam on views: any parameter shape, state (slots, n)", "[parity][optimizer][adam]") {
    cpu::AdamOptions o;
    o.lr = 0.01;
    o.amsgrad = true;
    HostTensor<float> params = test::random_tensor<float>(Shape{2, 3}, 5);
    cpu::OptimizerState<float> state = cpu::adam_init_state<float>(o, 6);
    DeviceBuffer device_params = test::to_device(params), device_state = test::to_device(state.values);
    int64_t step = 0;
    for (int k = 0; k < 3; ++k) {
        const HostTensor<float> grads = test::random_tensor<float>(Shape{6}, 20 + k);
        DeviceBuffer device_grads = test::to_device(grads);
        cpu::adam_step(o, params, grads, state);
        gpu::adam_step(o, device_params.view(Shape{2, 3}, DType::f32),
                       device_grads.view(Shape{6}, DType::f32), device_state.view(Shape{3, 6}, DType::f32),
                       step, nullptr);
    }
    CHECK(step == 3);
    CHECK(test::bitwise_equal(test::to_host<float>(device_params, Shape{2, 3}), params));
    CHECK(test::bitwise_equal(test::to_host<float>(device_state, Shape{3, 6}), state.values));
}

TEST_CASE("gpu optimizers reject bad options and mismatched arrays", "[parity][optimizer][errors]") {
    DeviceBuffer buffer = test::poisoned<float>(16);
    float* p = buffer.data_as<float>();
    const float* g = p + 4;
    float* s = p + 8;
    int64_t step = 0;

    cpu::SgdOptions sgd_options;
    REQUIRE_THROWS_WITH(gpu::sgd_step(sgd_options, p, g, nullptr, 2, step, nullptr),
                        Contains("sgd: lr is not set"));
    sgd_options.lr = 0.1;
    sgd_options.nesterov = true;
    REQUIRE_THROWS_WITH(gpu::sgd_step(sgd_options, p, g, nullptr, 2, step, nullptr),
                        Contains("sgd: nesterov needs momentum > 0 and dampening 0, got momentum 0"));
    sgd_options.nesterov = false;
    sgd_options.momentum = 0.9;
    REQUIRE_THROWS_WITH(gpu::sgd_step(sgd_options, p, g, nullptr, 2, step, nullptr),
                        Contains("sgd: state is null but these options need 1 state slots of 2 values"));
    REQUIRE_THROWS_WITH(gpu::sgd_step(sgd_options, p, nullptr, s, 2, step, nullptr),
                        Contains("sgd: params (") && Contains("must not be null"));
    step = -1;
    REQUIRE_THROWS_WITH(gpu::sgd_step(sgd_options, p, g, s, 2, step, nullptr),
                        Contains("sgd: state step -1 must be >= 0"));
    CHECK(step == -1);

    step = 0;
    cpu::AdamOptions adam_options;
    adam_options.beta1 = 1.0;
    REQUIRE_THROWS_WITH(gpu::adam_step(adam_options, p, g, s, 2, step, nullptr),
                        Contains("adam: beta1 1 must be in [0, 1)"));
    adam_options.beta1 = 0.9;
    REQUIRE_THROWS_WITH(gpu::adam_step(adam_options, p, g, s, 0, step, nullptr),
                        Contains("adam: parameter count 0 must be at least 1"));
    cpu::AdamWOptions adamw_options;
    adamw_options.eps = -1e-8;
    REQUIRE_THROWS_WITH(gpu::adamw_step(adamw_options, p, g, s, 2, step, nullptr),
                        Contains("adamw: eps -1e-08 must be"));
    adamw_options.eps = 1e-8;
    adamw_options.lr = std::nan("");
    REQUIRE_THROWS_WITH(gpu::adamw_step(adamw_options, p, g, s, 2, step, nullptr),
                        Contains("adamw: lr nan must be"));
    CHECK(step == 0);  // no failed call counts as a step

    // Views: sizes and state shape.
    const TensorView params = buffer.view(Shape{2}, DType::f32);
    REQUIRE_THROWS_WITH(gpu::adam_step(adam_options, params, buffer.view(Shape{3}, DType::f32, 16),
                                       buffer.view(Shape{2, 2}, DType::f32, 32), step, nullptr),
                        Contains("adam: gradients have 3 elements but parameters have 2"));
    adam_options.amsgrad = true;
    REQUIRE_THROWS_WITH(
        gpu::adam_step(adam_options, params, buffer.view(Shape{2}, DType::f32, 16),
                       buffer.view(Shape{2, 2}, DType::f32, 32), step, nullptr),
        Contains("adam: state has shape (2, 2) but these options and 2 parameters need (3, 2)"));
    REQUIRE_THROWS_WITH(gpu::sgd_step(sgd_options, params, buffer.view(Shape{2}, DType::i32, 16),
                                      buffer.view(Shape{1, 2}, DType::f32, 32), step, nullptr),
                        Contains("sgd: grads has dtype i32; the optimizer kernels take f32"));
    std::vector<float> host(4, 1.0f);
    const TensorView host_view{host.data(), Shape{1, 2}, DType::f32, Device::cpu};
    REQUIRE_THROWS_WITH(
        gpu::sgd_step(sgd_options, params, buffer.view(Shape{2}, DType::f32, 16), host_view, step, nullptr),
        Contains("sgd: state is a cpu view; the optimizer kernels need device memory"));
    CHECK(step == 0);
}

namespace {

// A step counter in device memory: the launchers that CUDA graphs capture read it there.
DeviceBuffer device_counter(int64_t value) {
    DeviceBuffer counter(sizeof(int64_t));
    copy_to_device(counter.data(), &value, sizeof value);
    return counter;
}

// kSteps device-step launches of `step` with a bf16 copy `copy_offset` bf16 into a NaN-poisoned buffer,
// beside the same launches without one: the params and state must be the same bits, and the copy after each
// step the updated params rounded to bf16 (what gpu::cast writes), with nothing written outside it.
template <class Options, class Init, class Step>
void check_params_copy(const Options& options, const Layout& layout, int64_t copy_offset, Init init,
                       Step step) {
    const int64_t n = layout.n;
    const HostTensor<float> params = test::random_tensor<float>(Shape{n}, 12);
    const cpu::OptimizerState<float> state = init(options, n);
    const int64_t slots = state.slots();
    GuardedArray with_params(params.data(), n, layout.params_offset),
        without_params(params.data(), n, layout.params_offset);
    GuardedArray with_state(state.values.data(), slots * n, layout.state_offset),
        without_state(state.values.data(), slots * n, layout.state_offset);
    const test::OffsetBuffer<gpu::bf16> copy = test::poisoned_at<gpu::bf16>(n + kGuard, copy_offset);
    for (int k = 0; k < kSteps; ++k) {
        INFO(layout.name << ", copy offset " << copy_offset << ", step " << k);
        const HostTensor<float> grads =
            test::random_tensor<float>(Shape{n}, 200 + k, -kGradScale[k], kGradScale[k]);
        GuardedArray device_grads(grads.data(), n, layout.grads_offset);
        const DeviceBuffer counter = device_counter(k);
        step(options, with_params.data(), device_grads.data(), slots > 0 ? with_state.data() : nullptr, n,
             counter.data_as<int64_t>(), copy.data());
        step(options, without_params.data(), device_grads.data(), slots > 0 ? without_state.data() : nullptr,
             n, counter.data_as<int64_t>(), nullptr);
        const HostTensor<float> updated = with_params.values();
        REQUIRE(test::bitwise_equal(updated, without_params.values()));
        REQUIRE(test::bitwise_equal(with_state.values(), without_state.values()));
        const HostTensor<float> all = test::to_host_bf16(copy.buffer.data(), Shape{copy_offset + n + kGuard});
        CHECK(test::bitwise_equal(slice(all, copy_offset, n), test::round_to_bf16(updated)));
        for (int64_t i = 0; i < all.numel(); ++i) {
            if (i >= copy_offset && i < copy_offset + n) continue;
            INFO("bf16 element " << i << " outside the copy");
            REQUIRE(std::isnan(all[i]));
        }
    }
}

}  // namespace

TEST_CASE("the device-step launchers rewrite a bf16 copy of the parameters as cast would, bit for bit",
          "[parity][optimizer][bf16]") {
    // Copy offsets 0 (the float4 groups' copies 8-byte aligned: one store each) and 1 (2-byte stores).
    const std::vector<Layout> layouts = {kLayouts[1], kLayouts[3], kLayouts[4]};
    for (const Layout& layout : layouts) {
        for (const int64_t copy_offset : {int64_t{0}, int64_t{1}}) {
            check_params_copy(
                cpu::SgdOptions{0.05, 0.9, 0, 1e-3, true, false}, layout, copy_offset,
                [](const cpu::SgdOptions& o, int64_t n) { return cpu::sgd_init_state<float>(o, n); },
                [](const cpu::SgdOptions& o, float* p, const float* g, float* s, int64_t n,
                   const int64_t* step,
                   gpu::bf16* copy) { gpu::sgd_step(o, p, g, s, n, step, nullptr, copy); });
            check_params_copy(
                cpu::AdamOptions{0.01, 0.9, 0.99, 1e-8, 0.05, true, false}, layout, copy_offset,
                [](const cpu::AdamOptions& o, int64_t n) { return cpu::adam_init_state<float>(o, n); },
                [](const cpu::AdamOptions& o, float* p, const float* g, float* s, int64_t n,
                   const int64_t* step,
                   gpu::bf16* copy) { gpu::adam_step(o, p, g, s, n, step, nullptr, copy); });
            check_params_copy(
                cpu::AdamWOptions{1e-3, 0.9, 0.999, 1e-8, 1e-2, false, false}, layout, copy_offset,
                [](const cpu::AdamWOptions& o, int64_t n) { return cpu::adamw_init_state<float>(o, n); },
                [](const cpu::AdamWOptions& o, float* p, const float* g, float* s, int64_t n,
                   const int64_t* step,
                   gpu::bf16* copy) { gpu::adamw_step(o, p, g, s, n, step, nullptr, copy); });
        }
    }
}
