// Candidates of the layers other than conv2d: training-mode batch norm, relu, max and average pooling and
// linear, each forward and backward, as the hand-written kernels and the CPU reference. Tolerances are those
// of tests/ops/<op>_parity_test.cpp.
#include <algorithm>
#include <memory>
#include <optional>

#include <fmt/format.h>

#include "cuda/activation.hpp"
#include "cuda/batch_norm.hpp"
#include "cuda/gemm_backend.hpp"
#include "cuda/linear.hpp"
#include "cuda/pool.hpp"
#include "cudacnn/ops/activation.hpp"
#include "cudacnn/ops/batch_norm.hpp"
#include "cudacnn/ops/linear.hpp"
#include "cudacnn/ops/pool.hpp"
#include "measure.hpp"

namespace cudacnn::bench {
namespace {

// batch_norm_parity_test.cpp: elementwise results 1e-5, variance-like 1e-5, sums over the batch 1e-4.
constexpr double kBnElementwise = 1e-5, kBnVariance = 1e-5, kBnSum = 1e-4;
// pool_parity_test.cpp: average windows of a few float terms 1e-5; max pooling is bit-identical.
constexpr double kAvgPool = 1e-5;

float* floats(const DeviceBuffer& b) { return b.data_as<float>(); }

DeviceBuffer device_floats(int64_t count) { return DeviceBuffer(static_cast<size_t>(count) * sizeof(float)); }

std::vector<double> values_of(const HostTensor<double>& t) { return t.values(); }

// ---- batch_norm2d (training) ----------------------------------------------------------------------------

std::vector<Candidate> batch_norm_candidates(const OpCase& c, Context& context) {
    struct State {
        Shape shape;
        int64_t channels = 0;
        RotatedInputs in;  // x, dy
        HostTensor<float> weight, bias;
        cpu::BatchNorm2dOptions options;
        bool ready = false;
        cpu::BatchNorm2dResult<double> ref;
        cpu::BatchNorm2dGrads<double> ref_grads;
        DeviceBuffer w, b, y, mean, invstd, ref_mean, ref_invstd, running_mean, running_var, dx, dw, db, ws;
        gpu::BatchNorm2dRunningStatsView running;

        void ensure(const Context& ctx) {
            if (ready) return;
            in.upload_all(ctx, 7);
            const HostTensor<double> x(shape, as_doubles(in.host(0))), dy(shape, as_doubles(in.host(1)));
            const HostTensor<double> w64 = weight.cast<double>(), b64 = bias.cast<double>();
            auto stats = cpu::BatchNorm2dRunningStats<double>::initial(channels);
            ref = cpu::batch_norm2d(x, &w64, &b64, &stats, options);
            ref_grads = cpu::batch_norm2d_backward(x, &w64, ref.save_mean, ref.save_invstd, dy, true);
            w = upload(weight.values(), ctx.s());
            b = upload(bias.values(), ctx.s());
            const auto to_float = [](const HostTensor<double>& t) { return t.cast<float>().values(); };
            ref_mean = upload(to_float(ref.save_mean), ctx.s());
            ref_invstd = upload(to_float(ref.save_invstd), ctx.s());
            running_mean = upload(std::vector<float>(static_cast<size_t>(channels), 0.0f), ctx.s());
            running_var = upload(std::vector<float>(static_cast<size_t>(channels), 1.0f), ctx.s());
            running = {floats(running_mean), floats(running_var), 0};
            for (DeviceBuffer* buffer : {&y, &dx}) *buffer = device_floats(shape.numel());
            for (DeviceBuffer* buffer : {&mean, &invstd, &dw, &db}) *buffer = device_floats(channels);
            ws = DeviceBuffer(gpu::batch_norm2d_workspace_bytes(shape));
            ready = true;
        }
        void forward(int64_t call, const Context& ctx) {
            gpu::batch_norm2d(in.get(call, 0), floats(w), floats(b), &running, floats(y), floats(mean),
                              floats(invstd), shape, options, ws.data(), ws.bytes(), ctx.s());
        }
        void backward(int64_t call, const Context& ctx) {
            gpu::batch_norm2d_backward(in.get(call, 0), floats(w), floats(ref_mean), floats(ref_invstd),
                                       in.get(call, 1), floats(dx), floats(dw), floats(db), shape, true, ws.data(),
                                       ws.bytes(), ctx.s());
        }
    };
    const Shape shape = input_shape_of(c);
    auto st = std::make_shared<State>();
    st->shape = shape;
    st->channels = shape[1];
    st->in = RotatedInputs({random_values(shape.numel(), context.options.seed, 1),
                            random_values(shape.numel(), context.options.seed, 2)});
    st->weight = random_tensor(Shape{shape[1]}, context.options.seed, 3);
    st->bias = random_tensor(Shape{shape[1]}, context.options.seed, 4);
    const Context* ctx = &context;
    const double n = static_cast<double>(shape.numel()) * sizeof(float);
    std::vector<Candidate> out;
    if (context.wants("kernel")) {
        out.push_back(gpu_candidate(
            c, "forward", "kernel", context,
            [st, ctx] {
                st->ensure(*ctx);
                for (const DeviceBuffer* o : {&st->y, &st->mean, &st->invstd})
                    poison(*o, *ctx);
                st->forward(0, *ctx);
                return std::vector<Check>{
                    compare_output("y", floats(st->y), values_of(st->ref.output), kBnElementwise, *ctx),
                    compare_output("save_mean", floats(st->mean), values_of(st->ref.save_mean), kBnSum, *ctx),
                    compare_output("save_invstd", floats(st->invstd), values_of(st->ref.save_invstd), kBnVariance, *ctx)};
            },
            [st, ctx](int64_t call) { st->forward(call, *ctx); }));
        out.back().record.bytes = 3 * n;  // statistics read x, normalize reads x and writes y
        out.push_back(gpu_candidate(
            c, "backward", "kernel", context,
            [st, ctx] {
                st->ensure(*ctx);
                for (const DeviceBuffer* o : {&st->dx, &st->dw, &st->db})
                    poison(*o, *ctx);
                st->backward(0, *ctx);
                return std::vector<Check>{
                    compare_output("dx", floats(st->dx), values_of(st->ref_grads.dx), kBnElementwise, *ctx),
                    compare_output("dweight", floats(st->dw), values_of(st->ref_grads.dweight), kBnSum, *ctx),
                    compare_output("dbias", floats(st->db), values_of(st->ref_grads.dbias), kBnSum, *ctx)};
            },
            [st, ctx](int64_t call) { st->backward(call, *ctx); }));
        out.back().record.bytes = 5 * n;  // sums read x and dy, dx reads them again and writes dx
    }
    if (context.wants("cpu")) {
        auto cpu_state = std::make_shared<cpu::BatchNorm2dRunningStats<float>>(
            cpu::BatchNorm2dRunningStats<float>::initial(shape[1]));
        auto x = std::make_shared<HostTensor<float>>(shape, st->in.host(0));
        auto dy = std::make_shared<HostTensor<float>>(shape, st->in.host(1));
        auto saved = std::make_shared<std::optional<cpu::BatchNorm2dResult<float>>>();
        out.push_back(cpu_candidate(c, "forward", [st, x, cpu_state] {
            cpu::batch_norm2d(*x, &st->weight, &st->bias, cpu_state.get(), st->options);
        }));
        out.back().record.bytes = 3 * n;
        out.push_back(cpu_candidate(c, "backward", [st, x, dy, saved, cpu_state] {
            if (!*saved) *saved = cpu::batch_norm2d(*x, &st->weight, &st->bias, cpu_state.get(), st->options);
            cpu::batch_norm2d_backward(*x, &st->weight, (*saved)->save_mean, (*saved)->save_invstd, *dy, true);
        }));
        out.back().record.bytes = 5 * n;
    }
    return out;
}

// ---- relu -------------------------------------------------------------------------------------------------

std::vector<Candidate> relu_candidates(const OpCase& c, Context& context) {
    struct State {
        int64_t count = 0;
        RotatedInputs in;  // x, y (= relu of some input: the backward reads the output), dy
        bool ready = false;
        DeviceBuffer y, dx;
        void ensure(const Context& ctx) {
            if (ready) return;
            in.upload_all(ctx, 9);
            y = device_floats(count);
            dx = device_floats(count);
            ready = true;
        }
    };
    const int64_t count = input_shape_of(c).numel();
    std::vector<float> x = random_values(count, context.options.seed, 1);
    std::vector<float> y(x.size());
    for (size_t i = 0; i < x.size(); ++i) y[i] = x[i] > 0 ? x[i] : 0.0f;
    auto st = std::make_shared<State>();
    st->count = count;
    st->in = RotatedInputs({x, y, random_values(count, context.options.seed, 2)});
    const Context* ctx = &context;
    const double bytes = static_cast<double>(count) * sizeof(float);
    std::vector<Candidate> out;
    if (context.wants("kernel")) {
        out.push_back(gpu_candidate(
            c, "forward", "kernel", context,
            [st, ctx] {
                st->ensure(*ctx);
                poison(floats(st->y), st->count, *ctx);
                gpu::relu_forward(st->in.get(0, 0), floats(st->y), st->count, ctx->s());
                // relu is a select: exact (activation_parity_test.cpp).
                return std::vector<Check>{compare_output("y", floats(st->y), as_doubles(st->in.host(1)), 0.0, *ctx)};
            },
            [st, ctx](int64_t call) { gpu::relu_forward(st->in.get(call, 0), floats(st->y), st->count, ctx->s()); }));
        out.back().record.bytes = 2 * bytes;
        out.push_back(gpu_candidate(
            c, "backward", "kernel", context,
            [st, ctx] {
                st->ensure(*ctx);
                poison(floats(st->dx), st->count, *ctx);
                gpu::relu_backward(st->in.get(0, 1), st->in.get(0, 2), floats(st->dx), st->count, ctx->s());
                const HostTensor<float> y(Shape{st->count}, st->in.host(1)), dy(Shape{st->count}, st->in.host(2));
                return std::vector<Check>{compare_output(
                    "dx", floats(st->dx), as_doubles(cpu::relu_backward(y, dy).dx.values()), 0.0, *ctx)};
            },
            [st, ctx](int64_t call) {
                gpu::relu_backward(st->in.get(call, 1), st->in.get(call, 2), floats(st->dx), st->count, ctx->s());
            }));
        out.back().record.bytes = 3 * bytes;
    }
    if (context.wants("cpu")) {
        auto x_t = std::make_shared<HostTensor<float>>(Shape{count}, st->in.host(0));
        auto y_t = std::make_shared<HostTensor<float>>(Shape{count}, st->in.host(1));
        auto dy_t = std::make_shared<HostTensor<float>>(Shape{count}, st->in.host(2));
        out.push_back(cpu_candidate(c, "forward", [x_t] { cpu::relu(*x_t); }));
        out.back().record.bytes = 2 * bytes;
        out.push_back(cpu_candidate(c, "backward", [y_t, dy_t] { cpu::relu_backward(*y_t, *dy_t); }));
        out.back().record.bytes = 3 * bytes;
    }
    return out;
}

// ---- max_pool2d and avg_pool2d ----------------------------------------------------------------------------

std::vector<Candidate> pool_candidates(const OpCase& c, Context& context) {
    const bool max = c.op == "max_pool2d";
    const Shape shape = input_shape_of(c);
    const Shape out_shape = max ? cpu::max_pool2d_output_shape(shape, max_pool_options_of(c))
                                : cpu::avg_pool2d_output_shape(shape, avg_pool_options_of(c));
    struct State {
        bool max = true;
        Shape shape, out_shape;
        cpu::MaxPool2dOptions max_options;
        cpu::AvgPool2dOptions avg_options;
        RotatedInputs in;  // x, dy
        bool ready = false;
        std::vector<DeviceBuffer> indices;  // per input copy: the forward's argmax of that copy
        DeviceBuffer y, dx;
        HostTensor<int64_t> ref_indices;
        std::vector<double> ref_y, ref_dx;

        void forward(int64_t call, const Context& ctx, int64_t* idx) {
            if (max) gpu::max_pool2d(in.get(call, 0), floats(y), idx, shape, max_options, ctx.s());
            else gpu::avg_pool2d(in.get(call, 0), floats(y), shape, avg_options, ctx.s());
        }
        int64_t* indices_of(int64_t call) { return indices[static_cast<size_t>(call % in.slots())].data_as<int64_t>(); }
        void backward(int64_t call, const Context& ctx) {
            if (max) gpu::max_pool2d_backward(indices_of(call), in.get(call, 1), floats(dx), shape, max_options, ctx.s());
            else gpu::avg_pool2d_backward(in.get(call, 1), floats(dx), shape, avg_options, ctx.s());
        }
        void ensure(const Context& ctx) {
            if (ready) return;
            in.upload_all(ctx, 13);
            y = device_floats(out_shape.numel());
            dx = device_floats(shape.numel());
            const HostTensor<float> x(shape, in.host(0)), dy(out_shape, in.host(1));
            if (max) {
                for (int64_t s = 0; s < in.slots(); ++s) {
                    indices.emplace_back(static_cast<size_t>(out_shape.numel()) * sizeof(int64_t));
                    forward(s, ctx, indices.back().data_as<int64_t>());
                }
                const cpu::MaxPool2dResult<float> r = cpu::max_pool2d(x, max_options);
                ref_indices = r.indices;
                ref_y = as_doubles(r.output.values());
                ref_dx = as_doubles(cpu::max_pool2d_backward(shape, r.indices, dy).dx.values());
            } else {
                const HostTensor<double> x64 = x.cast<double>(), dy64 = dy.cast<double>();
                ref_y = cpu::avg_pool2d(x64, avg_options).values();
                ref_dx = cpu::avg_pool2d_backward(shape, dy64, avg_options).dx.values();
            }
            ready = true;
        }
    };
    auto st = std::make_shared<State>();
    st->max = max;
    st->shape = shape;
    st->out_shape = out_shape;
    if (max) st->max_options = max_pool_options_of(c);
    else st->avg_options = avg_pool_options_of(c);
    st->in = RotatedInputs({random_values(shape.numel(), context.options.seed, 1),
                            random_values(out_shape.numel(), context.options.seed, 2)});
    const Context* ctx = &context;
    const double in_bytes = static_cast<double>(shape.numel()) * sizeof(float);
    const double out_bytes = static_cast<double>(out_shape.numel()) * (max ? 12 : 4);  // y (+ int64 indices)
    // Max pooling picks and adds the same terms in the same order as the reference: bit-identical.
    const double tolerance = max ? 0.0 : kAvgPool;
    std::vector<Candidate> out;
    if (context.wants("kernel")) {
        out.push_back(gpu_candidate(
            c, "forward", "kernel", context,
            [st, ctx, tolerance] {
                st->ensure(*ctx);
                poison(floats(st->y), st->out_shape.numel(), *ctx);
                DeviceBuffer idx(st->max ? static_cast<size_t>(st->out_shape.numel()) * sizeof(int64_t) : 0);
                if (st->max) fill_bytes(idx.data(), 0xff, idx.bytes(), ctx->s());
                st->forward(0, *ctx, idx.data_as<int64_t>());
                std::vector<Check> checks{compare_output("y", floats(st->y), st->ref_y, tolerance, *ctx)};
                if (st->max) {
                    const std::vector<int64_t> got = download(idx.data_as<int64_t>(), idx.bytes() / sizeof(int64_t), ctx->s());
                    int64_t differing = 0;
                    for (size_t i = 0; i < got.size(); ++i) differing += got[i] != st->ref_indices[static_cast<int64_t>(i)];
                    checks.push_back({"indices", static_cast<double>(differing), 0.0});
                }
                return checks;
            },
            [st, ctx](int64_t call) { st->forward(call, *ctx, st->max ? st->indices_of(call) : nullptr); }));
        out.back().record.bytes = in_bytes + out_bytes;
        out.push_back(gpu_candidate(
            c, "backward", "kernel", context,
            [st, ctx, tolerance] {
                st->ensure(*ctx);
                poison(floats(st->dx), st->shape.numel(), *ctx);
                st->backward(0, *ctx);
                return std::vector<Check>{compare_output("dx", floats(st->dx), st->ref_dx, tolerance, *ctx)};
            },
            [st, ctx](int64_t call) { st->backward(call, *ctx); }));
        out.back().record.bytes = in_bytes + out_bytes;
    }
    if (context.wants("cpu")) {
        auto x = std::make_shared<HostTensor<float>>(shape, st->in.host(0));
        auto dy = std::make_shared<HostTensor<float>>(out_shape, st->in.host(1));
        if (max) {
            auto indices = std::make_shared<std::optional<HostTensor<int64_t>>>();
            out.push_back(cpu_candidate(c, "forward", [st, x] { cpu::max_pool2d(*x, st->max_options); }));
            out.back().record.bytes = in_bytes + out_bytes;
            out.push_back(cpu_candidate(c, "backward", [st, x, dy, indices] {
                if (!*indices) *indices = cpu::max_pool2d(*x, st->max_options).indices;
                cpu::max_pool2d_backward(st->shape, **indices, *dy);
            }));
        } else {
            out.push_back(cpu_candidate(c, "forward", [st, x] { cpu::avg_pool2d(*x, st->avg_options); }));
            out.back().record.bytes = in_bytes + out_bytes;
            out.push_back(cpu_candidate(c, "backward", [st, dy] {
                cpu::avg_pool2d_backward(st->shape, *dy, st->avg_options);
            }));
        }
        out.back().record.bytes = in_bytes + out_bytes;
    }
    return out;
}

// ---- linear -------------------------------------------------------------------------------------------------

std::vector<Candidate> linear_candidates(const OpCase& c, Context& context) {
    struct State {
        gpu::LinearShape shape;
        RotatedInputs in;  // x, weight, dy
        HostTensor<float> bias;
        bool ready = false;
        DeviceBuffer b, y, dx, dw, db;
        DeviceBuffer workspace;  // split-k room for the own GEMM's FP32 and TF32 kernels (cuBLAS needs none)
        size_t workspace_bytes = 0;
        std::vector<double> ref_y, ref_dx, ref_dw, ref_db;
        void ensure(const Context& ctx) {
            if (ready) return;
            in.upload_all(ctx, 17);
            b = upload(bias.values(), ctx.s());
            y = device_floats(shape.batch * shape.out_features);
            dx = device_floats(shape.batch * shape.in_features);
            dw = device_floats(shape.out_features * shape.in_features);
            db = device_floats(shape.out_features);
            for (const gpu::GemmMath math : {gpu::GemmMath::fp32, gpu::GemmMath::tf32}) {
                const gpu::GemmScope own({gpu::GemmBackend::own, math});
                workspace_bytes = std::max(workspace_bytes, gpu::linear_workspace_bytes(shape));
            }
            workspace = DeviceBuffer(workspace_bytes);
            const HostTensor<double> x(Shape{shape.batch, shape.in_features}, as_doubles(in.host(0)));
            const HostTensor<double> w(Shape{shape.out_features, shape.in_features}, as_doubles(in.host(1)));
            const HostTensor<double> dy(Shape{shape.batch, shape.out_features}, as_doubles(in.host(2)));
            const HostTensor<double> b64 = bias.cast<double>();
            ref_y = cpu::linear(x, w, &b64).values();
            const cpu::LinearGrads<double> g = cpu::linear_backward(x, w, dy, true);
            ref_dx = g.dx.values();
            ref_dw = g.dweight.values();
            ref_db = g.dbias.values();
            ready = true;
        }
        void forward(int64_t call, const Context& ctx) {
            gpu::linear_forward(in.get(call, 0), in.get(call, 1), floats(b), floats(y), shape, ctx.s(), workspace.data(),
                                workspace_bytes);
        }
        void backward(int64_t call, const Context& ctx) {
            gpu::linear_backward(in.get(call, 0), in.get(call, 1), in.get(call, 2), floats(dx), floats(dw), floats(db),
                                 shape, ctx.s(), workspace.data(), workspace_bytes);
        }
    };
    const gpu::LinearShape shape{c.number("N"), c.number("IN"), c.number("OUT")};
    auto st = std::make_shared<State>();
    st->shape = shape;
    st->in = RotatedInputs({random_values(shape.batch * shape.in_features, context.options.seed, 1),
                            random_values(shape.out_features * shape.in_features, context.options.seed, 2),
                            random_values(shape.batch * shape.out_features, context.options.seed, 3)});
    st->bias = random_tensor(Shape{shape.out_features}, context.options.seed, 4);
    const Context* ctx = &context;
    const double flops = 2.0 * static_cast<double>(shape.batch * shape.in_features * shape.out_features);
    std::vector<Candidate> out;
    // linear_parity_test.cpp: float sums of in_features (y), out_features (dx) and batch (dw, dbias) terms.
    for (const std::string name : {"cublas", "cublas_tf32", "kernel", "kernel_tf32"}) {
        if (!context.wants(name)) continue;
        const bool tf32 = name.find("_tf32") != std::string::npos;
        const gpu::GemmBackend backend = name.rfind("kernel", 0) == 0 ? gpu::GemmBackend::own : gpu::GemmBackend::cublas;
        const gpu::GemmSettings gemm{backend, tf32 ? gpu::GemmMath::tf32 : gpu::GemmMath::fp32};
        // TF32 rows: kTf32CheckTolerance instead of the float sums' bounds.
        const auto tolerance = [tf32](int64_t terms) { return tf32 ? kTf32CheckTolerance : float_sum_tolerance(terms); };
        out.push_back(gpu_candidate(
            c, "forward", name, context,
            [st, ctx, gemm, tolerance] {
                st->ensure(*ctx);
                const gpu::GemmScope scope(gemm);
                poison(floats(st->y), static_cast<int64_t>(st->ref_y.size()), *ctx);
                st->forward(0, *ctx);
                return std::vector<Check>{
                    compare_output("y", floats(st->y), st->ref_y, tolerance(st->shape.in_features), *ctx)};
            },
            [st, ctx, gemm](int64_t call) {
                const gpu::GemmScope scope(gemm);
                st->forward(call, *ctx);
            }));
        out.back().record.flops = flops;
        out.back().unsupported = out.back().skipped.empty() ? gpu::gemm_backend_unsupported(backend) : "";
        out.push_back(gpu_candidate(
            c, "backward", name, context,
            [st, ctx, gemm, tolerance] {
                st->ensure(*ctx);
                const gpu::GemmScope scope(gemm);
                for (const DeviceBuffer* o : {&st->dx, &st->dw, &st->db})
                    poison(*o, *ctx);
                st->backward(0, *ctx);
                return std::vector<Check>{
                    compare_output("dx", floats(st->dx), st->ref_dx, tolerance(st->shape.out_features), *ctx),
                    compare_output("dweight", floats(st->dw), st->ref_dw, tolerance(st->shape.batch), *ctx),
                    // The bias gradient is a plain sum of dy, FP32 at every precision.
                    compare_output("dbias", floats(st->db), st->ref_db, float_sum_tolerance(st->shape.batch), *ctx)};
            },
            [st, ctx, gemm](int64_t call) {
                const gpu::GemmScope scope(gemm);
                st->backward(call, *ctx);
            }));
        out.back().record.flops = 2 * flops;  // dx and dweight; the bias gradient is negligible
        out.back().unsupported = out.back().skipped.empty() ? gpu::gemm_backend_unsupported(backend) : "";
    }
    if (context.wants("cpu")) {
        auto x = std::make_shared<HostTensor<float>>(Shape{shape.batch, shape.in_features}, st->in.host(0));
        auto w = std::make_shared<HostTensor<float>>(Shape{shape.out_features, shape.in_features}, st->in.host(1));
        auto dy = std::make_shared<HostTensor<float>>(Shape{shape.batch, shape.out_features}, st->in.host(2));
        out.push_back(cpu_candidate(c, "forward", [st, x, w] { cpu::linear(*x, *w, &st->bias); }));
        out.back().record.flops = flops;
        out.push_back(cpu_candidate(c, "backward", [x, w, dy] { cpu::linear_backward(*x, *w, *dy, true); }));
        out.back().record.flops = 2 * flops;
    }
    return out;
}

}  // namespace

std::vector<Candidate> layer_candidates(const OpCase& c, Context& context) {
    if (c.op == "batch_norm2d") return batch_norm_candidates(c, context);
    if (c.op == "relu") return relu_candidates(c, context);
    if (c.op == "max_pool2d" || c.op == "avg_pool2d") return pool_candidates(c, context);
    if (c.op == "linear") return linear_candidates(c, context);
    CUDACNN_FAIL("bench: '{}' is not a layer op", c.op);
}

}  // namespace cudacnn::bench
