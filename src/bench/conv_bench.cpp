// conv2d candidates: cuDNN, the direct kernels and im2col + GEMM (each pass on its own), and the CPU reference.
//
// Checking a batch-128 layer against the reference on all 128 images would take the reference minutes. The
// check run instead gives the kernels a batch made of k ≤ 4 distinct random images, each of the N slots
// holding one of them (a random assignment, every one used): the reference computes each distinct image
// once, in double, and y and dx of slot n are those of its image, while dw and dbias are the sums of each
// image's gradients times how many slots hold it. The kernels still run the full N-image geometry; an
// index slip that reads another slot most likely reads another image and fails the check.
#include <algorithm>
#include <random>

#include <fmt/format.h>

#include "cuda/conv2d.hpp"
#include "cuda/gemm_backend.hpp"
#include "cudacnn/graph/executor.hpp"
#include "cudacnn/ops/conv2d.hpp"
#include "measure.hpp"

namespace cudacnn::bench {
namespace {

constexpr int64_t kDistinctImages = 4;

// What every candidate of one conv2d case shares; filled on first use, so that filtered-out cases allocate
// nothing.
struct ConvState {
    OpCase op_case;
    cpu::Conv2dOptions options;
    cpu::Conv2dGeometry g;
    Shape x_shape, w_shape, dy_shape;
    uint64_t seed = 0;

    // The check inputs (the periodic batch) on the host; also what the CPU reference is timed on.
    bool host_ready = false;
    HostTensor<float> x, w, b, dy;
    std::vector<int64_t> image_of;  // slot → distinct image

    bool reference_ready = false;
    std::vector<double> y_ref, dx_ref, dw_ref, db_ref;

    // GPU copies: slot 0 is the check batch, the others random batches for rotation.
    bool device_ready = false;
    int64_t slots = 1;
    std::vector<DeviceBuffer> x_d, w_d, dy_d;
    DeviceBuffer b_d, y_d, dx_d, dw_d, db_d;

    void ensure_host() {
        if (host_ready) return;
        const int64_t n = g.batch, k = std::min(n, kDistinctImages);
        image_of.resize(static_cast<size_t>(n));
        std::mt19937_64 rng(seed + 17);
        for (int64_t i = 0; i < n; ++i) image_of[i] = i < k ? i : static_cast<int64_t>(rng() % k);
        std::shuffle(image_of.begin(), image_of.end(), rng);
        const HostTensor<float> x_images = random_tensor(Shape{k, g.in_channels, g.in_h, g.in_w}, seed, 1);
        const HostTensor<float> dy_images = random_tensor(Shape{k, g.out_channels, g.out_h, g.out_w}, seed, 2);
        x = HostTensor<float>(x_shape);
        dy = HostTensor<float>(dy_shape);
        const int64_t x_image = x_shape.numel() / n, dy_image = dy_shape.numel() / n;
        for (int64_t i = 0; i < n; ++i) {
            std::copy_n(x_images.data() + image_of[i] * x_image, x_image, x.data() + i * x_image);
            std::copy_n(dy_images.data() + image_of[i] * dy_image, dy_image, dy.data() + i * dy_image);
        }
        w = random_tensor(w_shape, seed, 3);
        b = random_tensor(Shape{g.out_channels}, seed, 4);
        host_ready = true;
    }

    void ensure_reference() {
        if (reference_ready) return;
        ensure_host();
        const int64_t n = g.batch, k = std::min(n, kDistinctImages);
        const HostTensor<double> w64 = w.cast<double>(), b64 = b.cast<double>();
        const int64_t x_image = x_shape.numel() / n, y_image = dy_shape.numel() / n;
        y_ref.assign(static_cast<size_t>(dy_shape.numel()), 0.0);
        dx_ref.assign(static_cast<size_t>(x_shape.numel()), 0.0);
        dw_ref.assign(static_cast<size_t>(w_shape.numel()), 0.0);
        db_ref.assign(static_cast<size_t>(g.out_channels), 0.0);
        for (int64_t j = 0; j < k; ++j) {
            const auto first = std::find(image_of.begin(), image_of.end(), j) - image_of.begin();
            const auto copies = std::count(image_of.begin(), image_of.end(), j);
            const HostTensor<double> xj(Shape{1, g.in_channels, g.in_h, g.in_w},
                                        std::vector<double>(x.data() + first * x_image, x.data() + (first + 1) * x_image));
            const HostTensor<double> dyj(Shape{1, g.out_channels, g.out_h, g.out_w},
                                         std::vector<double>(dy.data() + first * y_image, dy.data() + (first + 1) * y_image));
            const HostTensor<double> yj = cpu::conv2d(xj, w64, &b64, options);
            const cpu::Conv2dGrads<double> grads = cpu::conv2d_backward(xj, w64, dyj, true, options);
            for (int64_t i = 0; i < n; ++i) {
                if (image_of[i] != j) continue;
                std::copy_n(yj.data(), y_image, y_ref.data() + i * y_image);
                std::copy_n(grads.dx.data(), x_image, dx_ref.data() + i * x_image);
            }
            for (int64_t e = 0; e < w_shape.numel(); ++e) dw_ref[e] += static_cast<double>(copies) * grads.dweight[e];
            for (int64_t e = 0; e < g.out_channels; ++e) db_ref[e] += static_cast<double>(copies) * grads.dbias[e];
        }
        reference_ready = true;
    }

    void ensure_device(const Context& context) {
        if (device_ready) return;
        ensure_host();
        const int64_t bytes = (x_shape.numel() + w_shape.numel() + dy_shape.numel()) * int64_t{sizeof(float)};
        slots = context.slots_for(bytes);
        for (int64_t s = 0; s < slots; ++s) {
            if (s == 0) {
                x_d.push_back(upload(x.values(), context.s()));
                w_d.push_back(upload(w.values(), context.s()));
                dy_d.push_back(upload(dy.values(), context.s()));
            } else {
                x_d.push_back(upload(random_values(x_shape.numel(), seed + s, 11), context.s()));
                w_d.push_back(upload(random_values(w_shape.numel(), seed + s, 12), context.s()));
                dy_d.push_back(upload(random_values(dy_shape.numel(), seed + s, 13), context.s()));
            }
        }
        b_d = upload(b.values(), context.s());
        y_d = DeviceBuffer(static_cast<size_t>(dy_shape.numel()) * sizeof(float));
        dx_d = DeviceBuffer(static_cast<size_t>(x_shape.numel()) * sizeof(float));
        dw_d = DeviceBuffer(static_cast<size_t>(w_shape.numel()) * sizeof(float));
        db_d = DeviceBuffer(static_cast<size_t>(g.out_channels) * sizeof(float));
        device_ready = true;
    }

    const float* slot(const std::vector<DeviceBuffer>& copies, int64_t call) const {
        return copies[static_cast<size_t>(call % slots)].data_as<const float>();
    }
};

// One GPU algorithm's plan, shared by its three passes and made on first use.
struct PlanState {
    gpu::ConvAlgo algo;
    bool tf32;  // --precision tf32: cuDNN and implicit may use TF32 tensor cores; im2col and winograd run the own
                // TF32 GEMM
    std::unique_ptr<gpu::Conv2dPlan> plan;
    DeviceBuffer workspace;

    void ensure(const ConvState& conv, const Context& context) {
        if (plan) return;
        gpu::Conv2dSettings settings;
        settings.algo = algo;
        settings.allow_tf32 = tf32;
        settings.benchmark = true;  // cuDNN: cudnnFind's fastest, as torch.backends.cudnn.benchmark = True
        settings.workspace_limit_bytes =
            gpu::resolve_workspace_limit(graph::cudnn_workspace_limit_from_mib(context.options.cudnn_workspace_mib));
        plan = std::make_unique<gpu::Conv2dPlan>(conv.g, settings, context.s());
        workspace = DeviceBuffer(plan->workspace_bytes());
    }
};

double conv_flops(const cpu::Conv2dGeometry& g) {
    return 2.0 * static_cast<double>(g.batch * g.out_channels * g.out_h * g.out_w) *
           static_cast<double>(g.in_channels_per_group() * g.kernel_h * g.kernel_w);
}

void add_gpu_candidates(std::vector<Candidate>& out, gpu::ConvAlgo algo, bool tf32,
                        const std::shared_ptr<ConvState>& conv, const OpCase& c, Context& context) {
    const std::string name = std::string(gpu::conv_algo_name(algo)) + (tf32 ? "_tf32" : "");
    auto plan = std::make_shared<PlanState>(PlanState{algo, tf32, nullptr, DeviceBuffer()});
    // The im2col GEMMs' arithmetic (cuDNN takes its own from the plan's settings).
    const gpu::GemmSettings gemm{gpu::GemmBackend::own, tf32 ? gpu::GemmMath::tf32 : gpu::GemmMath::fp32};
    const Context* ctx = &context;
    const std::string unsupported = context.gpu ? gpu::conv2d_unsupported(algo, conv->g) : "";
    // cuDNN's FFT / Winograd algorithms and the own Winograd kernels also round in their transforms.
    const bool transforms =
        algo == gpu::ConvAlgo::cudnn || algo == gpu::ConvAlgo::winograd || algo == gpu::ConvAlgo::winograd4;
    const auto describe = [plan] { return plan->plan ? plan->plan->description() : std::string(); };

    struct Pass {
        const char* direction;
        ConvPass pass;
    };
    for (const Pass p : {Pass{"forward", ConvPass::forward}, Pass{"backward_data", ConvPass::backward_data},
                         Pass{"backward_filter", ConvPass::backward_filter}}) {
        Candidate cand;
        cand.record = base_record(c, p.direction, name, context.gpu_device);
        cand.record.flops = conv_flops(conv->g);
        if (!gpu_candidate_possible(context, cand)) {
            out.push_back(std::move(cand));
            continue;
        }
        cand.unsupported = unsupported;
        cand.device_timed = true;
        cand.describe = describe;
        const double tolerance = tf32 ? kTf32CheckTolerance : conv2d_tolerance(conv->g, p.pass, transforms);
        const ConvPass pass = p.pass;
        // One call of this pass on input copy `call`.
        const auto run = [conv, plan, ctx, pass, gemm](int64_t call) {
            const gpu::GemmScope scope(gemm);
            const ConvState& s = *conv;
            const gpu::Conv2dPlan& pl = *plan->plan;
            void* ws = plan->workspace.data();
            switch (pass) {
                case ConvPass::forward:
                    pl.forward(s.slot(s.x_d, call), s.slot(s.w_d, call), s.b_d.data_as<float>(),
                               s.y_d.data_as<float>(), ws, ctx->s());
                    break;
                case ConvPass::backward_data:
                    pl.backward_data(s.slot(s.dy_d, call), s.slot(s.w_d, call), s.dx_d.data_as<float>(), ws, ctx->s());
                    break;
                case ConvPass::backward_filter:
                    pl.backward_filter(s.slot(s.x_d, call), s.slot(s.dy_d, call), s.dw_d.data_as<float>(),
                                       s.db_d.data_as<float>(), ws, ctx->s());
                    break;
            }
        };
        cand.run = [conv, plan, ctx, run](int64_t call) { run(call); };
        cand.check = [conv, plan, ctx, run, pass, tolerance]() {
            ConvState& s = *conv;
            s.ensure_device(*ctx);
            s.ensure_reference();
            plan->ensure(s, *ctx);
            std::vector<Check> checks;
            const auto compare = [&](const char* output, float* device, const std::vector<double>& expected) {
                checks.push_back({output, max_relative_error(read_back(device, static_cast<int64_t>(expected.size()), *ctx), expected),
                                  tolerance});
            };
            const auto poison_all = [&](std::initializer_list<std::pair<float*, size_t>> outputs) {
                for (const auto& [p, n] : outputs) poison(p, static_cast<int64_t>(n), *ctx);
            };
            switch (pass) {
                case ConvPass::forward:
                    poison_all({{s.y_d.data_as<float>(), s.y_ref.size()}});
                    run(0);
                    compare("y", s.y_d.data_as<float>(), s.y_ref);
                    break;
                case ConvPass::backward_data:
                    poison_all({{s.dx_d.data_as<float>(), s.dx_ref.size()}});
                    run(0);
                    compare("dx", s.dx_d.data_as<float>(), s.dx_ref);
                    break;
                case ConvPass::backward_filter:
                    poison_all({{s.dw_d.data_as<float>(), s.dw_ref.size()}, {s.db_d.data_as<float>(), s.db_ref.size()}});
                    run(0);
                    compare("dw", s.dw_d.data_as<float>(), s.dw_ref);
                    compare("dbias", s.db_d.data_as<float>(), s.db_ref);
                    break;
            }
            return checks;
        };
        out.push_back(std::move(cand));
    }
}

void add_cpu_candidates(std::vector<Candidate>& out, const std::shared_ptr<ConvState>& conv, const OpCase& c) {
    // The reference computes all three gradients in one call, so its backward is one row.
    for (const bool forward : {true, false}) {
        Candidate cand;
        cand.record = base_record(c, forward ? "forward" : "backward", "cpu", "cpu");
        cand.record.flops = conv_flops(conv->g) * (forward ? 1.0 : 2.0);
        cand.run = [conv, forward](int64_t) {
            ConvState& s = *conv;
            s.ensure_host();
            if (forward) {
                cpu::conv2d(s.x, s.w, &s.b, s.options);
            } else {
                cpu::conv2d_backward(s.x, s.w, s.dy, true, s.options);
            }
        };
        out.push_back(std::move(cand));
    }
}

}  // namespace

std::vector<Candidate> conv2d_candidates(const OpCase& c, Context& context) {
    auto conv = std::make_shared<ConvState>();
    conv->op_case = c;
    conv->options = conv2d_options_of(c);
    conv->g = conv2d_geometry_of(c);
    conv->x_shape = input_shape_of(c);
    conv->w_shape = conv2d_weight_shape_of(c);
    conv->dy_shape = conv->g.output_shape();
    conv->seed = context.options.seed;
    std::vector<Candidate> out;
    for (const gpu::ConvAlgo algo : {gpu::ConvAlgo::cudnn, gpu::ConvAlgo::direct, gpu::ConvAlgo::im2col,
                                     gpu::ConvAlgo::implicit, gpu::ConvAlgo::winograd, gpu::ConvAlgo::winograd4}) {
        const std::string name = gpu::conv_algo_name(algo);
        if (context.wants(name)) add_gpu_candidates(out, algo, false, conv, c, context);
        // cuDNN's TF32, the implicit GEMM's TF32 kernel, or the own TF32 GEMM.
        const bool has_tf32 = algo == gpu::ConvAlgo::cudnn || algo == gpu::ConvAlgo::im2col ||
                              algo == gpu::ConvAlgo::implicit || algo == gpu::ConvAlgo::winograd ||
                              algo == gpu::ConvAlgo::winograd4;
        if (has_tf32 && context.wants(name + "_tf32")) {
            add_gpu_candidates(out, algo, true, conv, c, context);
        }
    }
    if (context.wants("cpu")) add_cpu_candidates(out, conv, c);
    return out;
}

}  // namespace cudacnn::bench
