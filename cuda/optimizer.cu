// Fused optimizer kernels: one grid-stride, float4-vectorized launch per step over the flat parameter block.
#include "cuda/optimizer.hpp"

#include <algorithm>
#include <cmath>
#include <cstdint>

#include "cuda/bf16.cuh"
#include "cuda/elementwise.cuh"
#include "cuda/launch.cuh"
#include "cudacnn/error.hpp"

namespace cudacnn::gpu {

namespace kernels {

// The per-step scalars, rounded to float on the host exactly where the reference rounds them to T.
struct SgdScalars {
    float weight_decay;
    float momentum;
    float one_minus_dampening;
    float neg_lr;
    bool maximize;
    bool has_weight_decay;  // tested on the double option, as the reference does
    bool has_momentum;
    bool nesterov;
    bool first_step;  // the momentum buffer becomes the gradient, without reading the old one
};

struct AdamScalars {
    float beta1;
    float one_minus_beta1;
    float beta2;
    float one_minus_beta2;
    float eps;
    float weight_decay;
    float decay_factor;   // AdamW: 1 − lr · weight_decay
    float neg_step_size;  // −lr / bias_correction1
    float bias_correction2_sqrt;
    bool maximize;
    bool decoupled;  // AdamW
    bool has_weight_decay;
    bool amsgrad;
};

// Where the step count lives when it is read on the device (CUDA graphs): *step = steps taken so far. Adam's
// step-dependent scalars are then computed by each thread, in double as the host does.
struct DeviceStepScalars {
    const int64_t* step;  // nullptr: the host's scalars stand
    double lr, beta1, beta2;
};

// The bf16 copy of the parameters that --precision bf16's layers read, written by the step as it stores each
// updated value (data null: none). vectors: the copy's float4 groups start 8-byte aligned (one store each).
struct ParamsCopy {
    bf16* data;
    bool vectors;
};

__device__ inline void store_copy(const ParamsCopy& copy, int64_t i, float p) {
    if (copy.data != nullptr) copy.data[i] = from_float<bf16>(p);
}

__device__ inline void store_copy4(const ParamsCopy& copy, int64_t i, float4 p) {
    if (copy.data == nullptr) return;
    ElementVector<bf16, 4> v;
    v.value[0] = from_float<bf16>(p.x);
    v.value[1] = from_float<bf16>(p.y);
    v.value[2] = from_float<bf16>(p.z);
    v.value[3] = from_float<bf16>(p.w);
    if (copy.vectors) {
        *reinterpret_cast<ElementVector<bf16, 4>*>(copy.data + i) = v;
    } else {
        for (int k = 0; k < 4; ++k) copy.data[i + k] = v.value[k];
    }
}

__device__ inline AdamScalars with_device_step(AdamScalars s, const DeviceStepScalars& d) {
    if (d.step == nullptr) return s;
    const double t = static_cast<double>(*d.step + 1);  // PyTorch counts the step before using it
    const double bias_correction1 = 1.0 - pow(d.beta1, t);
    const double bias_correction2 = 1.0 - pow(d.beta2, t);
    s.neg_step_size = -static_cast<float>(d.lr / bias_correction1);
    s.bias_correction2_sqrt = static_cast<float>(sqrt(bias_correction2));
    return s;
}

__device__ inline SgdScalars with_device_step(SgdScalars s, const int64_t* step) {
    if (step != nullptr) s.first_step = *step == 0;
    return s;
}

// One value of SGD, in the reference's operations and order (cpu::sgd_step); _rn intrinsics forbid FMA.
__device__ inline void sgd_value(const SgdScalars& s, float& p, float g, float& buffer) {
    float d = s.maximize ? -g : g;
    if (s.has_weight_decay) d = __fadd_rn(d, __fmul_rn(s.weight_decay, p));
    if (s.has_momentum) {
        buffer =
            s.first_step ? d : __fadd_rn(__fmul_rn(buffer, s.momentum), __fmul_rn(s.one_minus_dampening, d));
        d = s.nesterov ? __fadd_rn(d, __fmul_rn(s.momentum, buffer)) : buffer;
    }
    p = __fadd_rn(p, __fmul_rn(s.neg_lr, d));
}

// One value of Adam / AdamW, in the reference's operations and order (cpu adam_like_step).
__device__ inline void adam_value(const AdamScalars& s, float& p, float g, float& m, float& v, float& v_max) {
    float d = s.maximize ? -g : g;
    if (s.decoupled) {
        p = __fmul_rn(p, s.decay_factor);
    } else if (s.has_weight_decay) {
        d = __fadd_rn(d, __fmul_rn(s.weight_decay, p));
    }
    m = __fadd_rn(__fmul_rn(m, s.beta1), __fmul_rn(s.one_minus_beta1, d));
    v = __fadd_rn(__fmul_rn(v, s.beta2), __fmul_rn(__fmul_rn(s.one_minus_beta2, d), d));
    float second = v;
    if (s.amsgrad) {
        v_max = v_max < v ? v : v_max;  // std::max's comparison, so NaNs propagate as in the reference
        second = v_max;
    }
    const float denom = __fadd_rn(__fsqrt_rn(second) / s.bias_correction2_sqrt, s.eps);
    p = __fadd_rn(p, __fmul_rn(s.neg_step_size, m) / denom);
}

__device__ inline float4 load4(const float* p) {
    return *reinterpret_cast<const float4*>(p);
}
__device__ inline void store4(float* p, float4 value) {
    *reinterpret_cast<float4*>(p) = value;
}

// Grid-stride over the split: vector(i) for each float4 group starting at value i, scalar(i) for the head
// and tail values.
template <class Scalar, class Vector>
__device__ inline void for_each_value(const Float4Split& split, int64_t n, Scalar scalar, Vector vector) {
    const int64_t first = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
    const int64_t stride = int64_t(blockDim.x) * gridDim.x;
    for (int64_t k = first; k < split.vectors; k += stride) vector(split.head + 4 * k);
    for (int64_t i = first; i < split.head; i += stride) scalar(i);
    for (int64_t i = split.head + 4 * split.vectors + first; i < n; i += stride) scalar(i);
}

// params, grads, buffer: (n); buffer is the momentum slot (unused without momentum).
__global__ void __launch_bounds__(kElementwiseBlock)
    sgd_kernel(float* __restrict__ params, const float* __restrict__ grads, float* __restrict__ buffer,
               int64_t n, Float4Split split, SgdScalars host_scalars, const int64_t* device_step,
               ParamsCopy copy) {
    const SgdScalars s = with_device_step(host_scalars, device_step);
    const bool read_buffer = s.has_momentum && !s.first_step;
    const auto scalar = [&](int64_t i) {
        float p = params[i], b = read_buffer ? buffer[i] : 0.0f;
        sgd_value(s, p, grads[i], b);
        params[i] = p;
        store_copy(copy, i, p);
        if (s.has_momentum) buffer[i] = b;
    };
    const auto vector = [&](int64_t i) {
        float4 p = load4(params + i), b = read_buffer ? load4(buffer + i) : make_float4(0, 0, 0, 0);
        const float4 g = load4(grads + i);
        sgd_value(s, p.x, g.x, b.x);
        sgd_value(s, p.y, g.y, b.y);
        sgd_value(s, p.z, g.z, b.z);
        sgd_value(s, p.w, g.w, b.w);
        store4(params + i, p);
        store_copy4(copy, i, p);
        if (s.has_momentum) store4(buffer + i, b);
    };
    for_each_value(split, n, scalar, vector);
}

// params, grads, m, v, v_max: (n); v_max only with amsgrad.
__global__ void __launch_bounds__(kElementwiseBlock)
    adam_kernel(float* __restrict__ params, const float* __restrict__ grads, float* __restrict__ m,
                float* __restrict__ v, float* __restrict__ v_max, int64_t n, Float4Split split,
                AdamScalars host_scalars, DeviceStepScalars device_step, ParamsCopy copy) {
    const AdamScalars s = with_device_step(host_scalars, device_step);
    const auto scalar = [&](int64_t i) {
        float p = params[i], mi = m[i], vi = v[i], vmi = s.amsgrad ? v_max[i] : 0.0f;
        adam_value(s, p, grads[i], mi, vi, vmi);
        params[i] = p;
        store_copy(copy, i, p);
        m[i] = mi;
        v[i] = vi;
        if (s.amsgrad) v_max[i] = vmi;
    };
    const auto vector = [&](int64_t i) {
        float4 p = load4(params + i), mi = load4(m + i), vi = load4(v + i);
        float4 vmi = s.amsgrad ? load4(v_max + i) : make_float4(0, 0, 0, 0);
        const float4 g = load4(grads + i);
        adam_value(s, p.x, g.x, mi.x, vi.x, vmi.x);
        adam_value(s, p.y, g.y, mi.y, vi.y, vmi.y);
        adam_value(s, p.z, g.z, mi.z, vi.z, vmi.z);
        adam_value(s, p.w, g.w, mi.w, vi.w, vmi.w);
        store4(params + i, p);
        store_copy4(copy, i, p);
        store4(m + i, mi);
        store4(v + i, vi);
        if (s.amsgrad) store4(v_max + i, vmi);
    };
    for_each_value(split, n, scalar, vector);
}

__global__ void advance_counters_kernel(int64_t* counters, int count) {
    for (int i = threadIdx.x; i < count; i += blockDim.x) counters[i] += 1;
}

}  // namespace kernels

namespace {

// The split of n values shared by every array: split_for_float4 over params, grads and state slot 0, whose
// later slots keep slot 0's offset modulo 16 bytes only when n % 4 == 0.
Float4Split split_arrays(const float* params, const float* grads, const float* state, int64_t slots,
                         int64_t n) {
    if (slots > 1 && n % 4 != 0) return {n, 0, 0};
    return split_for_float4(n, params, grads, slots > 0 ? state : nullptr);
}

// The kernels' view of an optional bf16 copy of params (same element offsets).
kernels::ParamsCopy params_copy_of(bf16* copy, const Float4Split& split) {
    const bool aligned = copy != nullptr && reinterpret_cast<uintptr_t>(copy + split.head) % 8 == 0;
    return {copy, aligned};
}

dim3 grid_for(const Float4Split& split) {
    return elementwise_grid(std::max({split.vectors, split.head, split.tail}));
}

// What every launcher checks besides the options (which cpu::check_options checks as the reference does).
void check_arrays(const char* op, const float* params, const float* grads, const float* state, int64_t slots,
                  int64_t n, int64_t step) {
    CUDACNN_CHECK(n >= 1, "{}: parameter count {} must be at least 1", op, n);
    CUDACNN_CHECK(step >= 0, "{}: state step {} must be >= 0", op, step);
    CUDACNN_CHECK(params != nullptr && grads != nullptr, "{}: params ({}) and grads ({}) must not be null",
                  op, static_cast<const void*>(params), static_cast<const void*>(grads));
    CUDACNN_CHECK(
        slots == 0 || state != nullptr,
        "{}: state is null but these options need {} state slots of {} values; allocate them zeroed", op,
        slots, n);
}

// The views' counterpart of the reference's check_step_arguments; returns n.
int64_t check_views(const char* op, const TensorView& params, const TensorView& grads,
                    const TensorView& state, int64_t slots) {
    const auto check_view = [op](const char* name, const TensorView& view) {
        CUDACNN_CHECK(view.dtype == DType::f32, "{}: {} has dtype {}; the optimizer kernels take f32", op,
                      name, view.dtype);
        CUDACNN_CHECK(view.device == Device::gpu,
                      "{}: {} is a {} view; the optimizer kernels need device memory", op, name,
                      device_name(view.device));
    };
    check_view("params", params);
    check_view("grads", grads);
    check_view("state", state);
    const int64_t n = params.numel();
    CUDACNN_CHECK(
        grads.numel() == n,
        "{}: gradients have {} elements but parameters have {}; pass the gradient block that matches "
        "the parameter block",
        op, grads.numel(), n);
    CUDACNN_CHECK(state.shape == Shape({slots, n}),
                  "{}: state has shape {} but these options and {} parameters need ({}, {})", op, state.shape,
                  n, slots, n);
    return n;
}

// A launcher on pointers, which the view overloads check for and then call.
template <class Options>
using PointerStep = void (*)(const Options&, float*, const float*, float*, int64_t, int64_t&, cudaStream_t);

template <class Options>
void step_on_views(const char* op, PointerStep<Options> pointer_step, const Options& options, int64_t slots,
                   const TensorView& params, const TensorView& grads, const TensorView& state, int64_t& step,
                   cudaStream_t stream) {
    cpu::check_options(options);  // before the arrays, in the reference's order
    const int64_t n = check_views(op, params, grads, state, slots);
    pointer_step(options, static_cast<float*>(params.data), static_cast<const float*>(grads.data),
                 static_cast<float*>(state.data), n, step, stream);
}

template <class Options>
kernels::AdamScalars adam_scalars(const Options& o, bool decoupled, int64_t t) {
    // In double, then rounded to float, exactly as the reference's adam_like_step does.
    const double bias_correction1 = 1.0 - std::pow(o.beta1, static_cast<double>(t));
    const double bias_correction2 = 1.0 - std::pow(o.beta2, static_cast<double>(t));
    kernels::AdamScalars s{};
    s.beta1 = static_cast<float>(o.beta1);
    s.one_minus_beta1 = static_cast<float>(1.0 - o.beta1);
    s.beta2 = static_cast<float>(o.beta2);
    s.one_minus_beta2 = static_cast<float>(1.0 - o.beta2);
    s.eps = static_cast<float>(o.eps);
    s.weight_decay = static_cast<float>(o.weight_decay);
    s.decay_factor = static_cast<float>(1.0 - o.lr * o.weight_decay);
    s.neg_step_size = -static_cast<float>(o.lr / bias_correction1);
    s.bias_correction2_sqrt = static_cast<float>(std::sqrt(bias_correction2));
    s.maximize = o.maximize;
    s.decoupled = decoupled;
    s.has_weight_decay = o.weight_decay != 0.0;
    s.amsgrad = o.amsgrad;
    return s;
}

// One Adam launch; the step is the host's `step` or, when device_step is set, read on the device.
template <class Options>
void launch_adam(const char* op, bool decoupled, const Options& o, float* params, const float* grads,
                 float* state, int64_t n, int64_t step, const int64_t* device_step, cudaStream_t stream,
                 bf16* copy = nullptr) {
    cpu::check_options(o);
    const int64_t slots = o.amsgrad ? 3 : 2;
    check_arrays(op, params, grads, state, slots, n, step);
    const Float4Split split = split_arrays(params, grads, state, slots, n);
    float* v_max = o.amsgrad ? state + cpu::kAdamMaxExpAvgSq * n : nullptr;
    const kernels::DeviceStepScalars on_device{device_step, o.lr, o.beta1, o.beta2};
    launch(kernels::adam_kernel, grid_for(split), dim3(kElementwiseBlock), 0, stream, params, grads,
           state + cpu::kAdamExpAvg * n, state + cpu::kAdamExpAvgSq * n, v_max, n, split,
           adam_scalars(o, decoupled, step + 1), on_device,  // PyTorch counts the step before using it
           params_copy_of(copy, split));
}

template <class Options>
void adam_like_step(const char* op, bool decoupled, const Options& o, float* params, const float* grads,
                    float* state, int64_t n, int64_t& step, cudaStream_t stream) {
    launch_adam(op, decoupled, o, params, grads, state, n, step, nullptr, stream);
    step += 1;
}

// One SGD launch; the step is the host's `step` or, when device_step is set, read on the device.
void launch_sgd(const cpu::SgdOptions& o, float* params, const float* grads, float* state, int64_t n,
                int64_t step, const int64_t* device_step, cudaStream_t stream, bf16* copy = nullptr) {
    cpu::check_options(o);
    const int64_t slots = cpu::sgd_state_slots(o);
    check_arrays("sgd", params, grads, state, slots, n, step);
    kernels::SgdScalars s{};
    s.weight_decay = static_cast<float>(o.weight_decay);
    s.momentum = static_cast<float>(o.momentum);
    s.one_minus_dampening = static_cast<float>(1.0 - o.dampening);
    s.neg_lr = static_cast<float>(-o.lr);
    s.maximize = o.maximize;
    s.has_weight_decay = o.weight_decay != 0.0;
    s.has_momentum = slots > 0;
    s.nesterov = o.nesterov;
    s.first_step = step == 0;  // PyTorch's buffer starts as None and becomes a clone of the first gradient
    const Float4Split split = split_arrays(params, grads, state, slots, n);
    float* buffer = slots > 0 ? state + cpu::kSgdMomentumBuffer * n : nullptr;
    launch(kernels::sgd_kernel, grid_for(split), dim3(kElementwiseBlock), 0, stream, params, grads, buffer, n,
           split, s, device_step, params_copy_of(copy, split));
}

void check_step_counter(const char* op, const int64_t* step_counter) {
    CUDACNN_CHECK(step_counter != nullptr, "{}: the step counter must be a device pointer, not null", op);
}

}  // namespace

std::array<int64_t, 3> optimizer_float4_split(const float* params, const float* grads, const float* state,
                                              int64_t slots, int64_t n) {
    const Float4Split split = split_arrays(params, grads, state, slots, n);
    return {split.head, split.vectors, split.tail};
}

void sgd_step(const cpu::SgdOptions& o, float* params, const float* grads, float* state, int64_t n,
              int64_t& step, cudaStream_t stream) {
    launch_sgd(o, params, grads, state, n, step, nullptr, stream);
    step += 1;
}

void sgd_step(const cpu::SgdOptions& options, float* params, const float* grads, float* state, int64_t n,
              const int64_t* step_counter, cudaStream_t stream, bf16* params_copy) {
    check_step_counter("sgd", step_counter);
    launch_sgd(options, params, grads, state, n, 0, step_counter, stream, params_copy);
}

void adam_step(const cpu::AdamOptions& options, float* params, const float* grads, float* state, int64_t n,
               const int64_t* step_counter, cudaStream_t stream, bf16* params_copy) {
    check_step_counter("adam", step_counter);
    launch_adam("adam", /*decoupled=*/false, options, params, grads, state, n, 0, step_counter, stream,
                params_copy);
}

void adamw_step(const cpu::AdamWOptions& options, float* params, const float* grads, float* state, int64_t n,
                const int64_t* step_counter, cudaStream_t stream, bf16* params_copy) {
    check_step_counter("adamw", step_counter);
    launch_adam("adamw", /*decoupled=*/true, options, params, grads, state, n, 0, step_counter, stream,
                params_copy);
}

void advance_step_counters(int64_t* counters, int count, cudaStream_t stream) {
    CUDACNN_CHECK(counters != nullptr && count >= 1 && count <= kElementwiseBlock,
                  "advance_step_counters: {} counters at {}; pass 1 to {} device counters", count,
                  static_cast<const void*>(counters), kElementwiseBlock);
    launch(kernels::advance_counters_kernel, dim3(1), dim3(kElementwiseBlock), 0, stream, counters, count);
}

void adam_step(const cpu::AdamOptions& options, float* params, const float* grads, float* state, int64_t n,
               int64_t& step, cudaStream_t stream) {
    adam_like_step("adam", /*decoupled=*/false, options, params, grads, state, n, step, stream);
}

void adamw_step(const cpu::AdamWOptions& options, float* params, const float* grads, float* state, int64_t n,
                int64_t& step, cudaStream_t stream) {
    adam_like_step("adamw", /*decoupled=*/true, options, params, grads, state, n, step, stream);
}

void sgd_step(const cpu::SgdOptions& options, const TensorView& params, const TensorView& grads,
              const TensorView& state, int64_t& step, cudaStream_t stream) {
    step_on_views("sgd", &sgd_step, options, cpu::sgd_state_slots(options), params, grads, state, step,
                  stream);
}

void adam_step(const cpu::AdamOptions& options, const TensorView& params, const TensorView& grads,
               const TensorView& state, int64_t& step, cudaStream_t stream) {
    step_on_views("adam", &adam_step, options, cpu::adam_state_slots(options), params, grads, state, step,
                  stream);
}

void adamw_step(const cpu::AdamWOptions& options, const TensorView& params, const TensorView& grads,
                const TensorView& state, int64_t& step, cudaStream_t stream) {
    step_on_views("adamw", &adamw_step, options, cpu::adamw_state_slots(options), params, grads, state, step,
                  stream);
}

}  // namespace cudacnn::gpu
