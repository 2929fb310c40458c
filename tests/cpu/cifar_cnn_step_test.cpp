// One training step of the full CifarCNN (DESIGN.md) composed from the CPU reference ops — forward in
// training mode with dropout off, cross-entropy, backward, one Adam step at lr 1e-4 — against PyTorch
// (tests/fixtures/cifar_cnn_step.safetensors, made by tools/fixtures/cifar_cnn_step.py).
#include <catch2/catch.hpp>

#include <cmath>
#include <map>
#include <string>
#include <vector>

#include <fmt/format.h>

#include "cudacnn/ops/activation.hpp"
#include "cudacnn/ops/batch_norm.hpp"
#include "cudacnn/ops/conv2d.hpp"
#include "cudacnn/ops/init.hpp"
#include "cudacnn/ops/linear.hpp"
#include "cudacnn/ops/loss.hpp"
#include "cudacnn/ops/optimizer.hpp"
#include "cudacnn/ops/pool.hpp"
#include "cudacnn/ops/shape_ops.hpp"
#include "support/compare.hpp"

using namespace cudacnn;
using namespace cudacnn::cpu;
using cudacnn::test::load_fixture;
using cudacnn::test::max_relative_error;

namespace {

// The double path and PyTorch's float64 run do the same arithmetic in different orders: ~1e-15 per op,
// grown by the depth of the network and by the cancellation in gradients of layers feeding a batch norm
// (Σ dW · W = 0 there). 1e-9 is four orders of magnitude above what we measure and far below any bug.
constexpr double kDoubleTolerance = 1e-9;
// The float bound. Our float ops accumulate in double and round each output once, so the result
// drifts from the float64 reference only by the conditioning of the step (perturbing the float32
// parameters by 1e-7 moves the float64 gradients by < 6e-7). PyTorch's own float32 run is far worse on the
// batch-normed layers (up to 8e-2, stored in the fixture as torch_f32_error.*), because its float
// reductions cancel; we print both.
constexpr double kFloatTolerance = 1e-5;

// Conv stages of conv_layer: conv index, batch norm index (−1: none), and whether a 2×2 max pool follows.
struct ConvStage {
    int conv;
    int batch_norm;
    bool pool;
};
constexpr ConvStage kConvStages[] = {{0, 1, false}, {3, -1, true},   {6, 7, false},
                                     {9, -1, true}, {13, 14, false}, {16, -1, true}};
constexpr int kLinearLayers[] = {1, 3, 6};  // fc_layer indices; ReLU follows all but the last

std::string conv_name(int index) {
    return fmt::format("conv_layer.{}", index);
}
std::string fc_name(int index) {
    return fmt::format("fc_layer.{}", index);
}

// The convolutions whose bias feeds a training-mode batch norm, which subtracts it again: the exact
// gradient of those biases is 0, and what arithmetic leaves is rounding noise in any implementation.
bool bias_cancelled_by_batch_norm(const std::string& parameter) {
    for (const ConvStage& stage : kConvStages) {
        if (stage.batch_norm >= 0 && parameter == conv_name(stage.conv) + ".bias") return true;
    }
    return false;
}

template <class T>
struct Model {
    std::vector<std::string> names;  // named_parameters() order
    std::map<std::string, HostTensor<T>> params;
    std::map<std::string, BatchNorm2dRunningStats<T>> running;  // by batch norm layer name

    const HostTensor<T>& operator[](const std::string& name) const { return params.at(name); }

    template <class U>
    Model<U> cast() const {
        Model<U> model{names, {}, {}};
        for (const auto& [name, p] : params) model.params.emplace(name, p.template cast<U>());
        for (const auto& [name, r] : running) {
            model.running.emplace(
                name, BatchNorm2dRunningStats<U>{r.running_mean.template cast<U>(),
                                                 r.running_var.template cast<U>(), r.num_batches_tracked});
        }
        return model;
    }
};

// cudacnn's default initialization (PyTorch's distributions over Philox): parameter k of named_parameters()
// draws from stream k, as tools/fixtures/cifar_cnn_step.py does.
Model<float> initial_model(uint64_t seed) {
    Model<float> model;
    auto add = [&](const std::string& name, HostTensor<float> value) {
        model.names.push_back(name);
        model.params.emplace(name, std::move(value));
    };
    auto add_layer = [&](const std::string& layer, const Shape& weight_shape) {
        const uint64_t stream = model.names.size();
        add(layer + ".weight", default_weight_init<float>(weight_shape, seed, stream));
        add(layer + ".bias",
            default_bias_init<float>(Shape{weight_shape[0]}, fan_in(weight_shape), seed, stream + 1));
    };
    const int64_t channels[] = {3, 32, 64, 128, 128, 256, 256};
    for (int s = 0; s < 6; ++s) {
        const ConvStage& stage = kConvStages[s];
        add_layer(conv_name(stage.conv), Shape{channels[s + 1], channels[s], 3, 3});
        if (stage.batch_norm < 0) continue;
        const std::string bn = conv_name(stage.batch_norm);
        add(bn + ".weight", batchnorm_weight_init<float>(channels[s + 1]));
        add(bn + ".bias", batchnorm_bias_init<float>(channels[s + 1]));
        model.running.emplace(bn, BatchNorm2dRunningStats<float>::initial(channels[s + 1]));
    }
    add_layer(fc_name(1), Shape{1024, 4096});
    add_layer(fc_name(3), Shape{512, 1024});
    add_layer(fc_name(6), Shape{10, 512});
    return model;
}

// What the forward keeps for the backward, per conv stage.
template <class T>
struct StageTape {
    HostTensor<T> input;     // (N, C, H, W)
    HostTensor<T> conv_out;  // (N, OC, H, W)
    BatchNorm2dResult<T> batch_norm;
    HostTensor<T> relu_out;
    MaxPool2dResult<T> pool;
};

template <class T>
struct StepResult {
    HostTensor<T> logits;  // (N, 10)
    HostTensor<T> loss;    // ()
    std::map<std::string, HostTensor<T>> grads;
};

// Forward and backward of one batch; updates model.running (batch norm in training mode).
template <class T>
StepResult<T> forward_backward(Model<T>& model, const HostTensor<T>& x, const HostTensor<int64_t>& labels) {
    Conv2dOptions conv_options;
    conv_options.padding = 1;
    MaxPool2dOptions pool_options;
    pool_options.kernel_size = 2;
    BatchNorm2dOptions bn_options;  // training, momentum 0.1, eps 1e-5

    // ---- forward: conv_layer (the Dropout2d after stage 4 is off: the identity) ----
    std::vector<StageTape<T>> tape;
    HostTensor<T> h = x;
    for (const ConvStage& stage : kConvStages) {
        StageTape<T> t;
        t.input = h;
        const std::string conv = conv_name(stage.conv);
        t.conv_out = conv2d(h, model[conv + ".weight"], &model[conv + ".bias"], conv_options);
        const HostTensor<T>* pre_relu = &t.conv_out;
        if (stage.batch_norm >= 0) {
            const std::string bn = conv_name(stage.batch_norm);
            t.batch_norm = batch_norm2d(t.conv_out, &model[bn + ".weight"], &model[bn + ".bias"],
                                        &model.running.at(bn), bn_options);
            pre_relu = &t.batch_norm.output;
        }
        t.relu_out = relu(*pre_relu);
        if (stage.pool) t.pool = max_pool2d(t.relu_out, pool_options);
        h = stage.pool ? t.pool.output : t.relu_out;
        tape.push_back(std::move(t));
    }
    // ---- forward: flatten, fc_layer (both Dropouts off) ----
    const Shape conv_output_shape = h.shape();  // (N, 256, 4, 4)
    std::vector<HostTensor<T>> fc_inputs;
    h = flatten(h);
    for (int layer : kLinearLayers) {
        fc_inputs.push_back(h);
        const std::string fc = fc_name(layer);
        h = linear(h, model[fc + ".weight"], &model[fc + ".bias"]);
        if (layer != kLinearLayers[2]) h = relu(h);
    }
    StepResult<T> result;
    result.logits = h;
    result.loss = cross_entropy(result.logits, labels);

    // ---- backward, in reverse ----
    HostTensor<T> dy = cross_entropy_backward(result.logits, labels, HostTensor<T>(Shape{}, T(1))).dlogits;
    for (int i = 2; i >= 0; --i) {
        const std::string fc = fc_name(kLinearLayers[i]);
        if (i != 2) dy = relu_backward(fc_inputs[i + 1], dy).dx;  // fc_inputs[i + 1] is that relu's output
        LinearGrads<T> g = linear_backward(fc_inputs[i], model[fc + ".weight"], dy, true);
        result.grads[fc + ".weight"] = std::move(g.dweight);
        result.grads[fc + ".bias"] = std::move(g.dbias);
        dy = std::move(g.dx);
    }
    dy = flatten_backward(dy, conv_output_shape).dx;
    for (int s = 5; s >= 0; --s) {
        const ConvStage& stage = kConvStages[s];
        const StageTape<T>& t = tape[s];
        if (stage.pool) dy = max_pool2d_backward(t.relu_out.shape(), t.pool.indices, dy).dx;
        dy = relu_backward(t.relu_out, dy).dx;
        if (stage.batch_norm >= 0) {
            const std::string bn = conv_name(stage.batch_norm);
            BatchNorm2dGrads<T> g =
                batch_norm2d_backward(t.conv_out, &model[bn + ".weight"], t.batch_norm.save_mean,
                                      t.batch_norm.save_invstd, dy, bn_options.training);
            result.grads[bn + ".weight"] = std::move(g.dweight);
            result.grads[bn + ".bias"] = std::move(g.dbias);
            dy = std::move(g.dx);
        }
        const std::string conv = conv_name(stage.conv);
        Conv2dGrads<T> g = conv2d_backward(t.input, model[conv + ".weight"], dy, true, conv_options);
        result.grads[conv + ".weight"] = std::move(g.dweight);
        result.grads[conv + ".bias"] = std::move(g.dbias);
        dy = std::move(g.dx);
    }
    return result;
}

// One Adam step over all parameters as one flat block, as the runtime keeps them.
template <class T>
std::map<std::string, HostTensor<T>> adam_step_all(const Model<T>& model,
                                                   const std::map<std::string, HostTensor<T>>& grads,
                                                   const AdamOptions& options) {
    std::vector<T> flat_params, flat_grads;
    for (const std::string& name : model.names) {
        const auto& p = model[name].values();
        const auto& g = grads.at(name).values();
        flat_params.insert(flat_params.end(), p.begin(), p.end());
        flat_grads.insert(flat_grads.end(), g.begin(), g.end());
    }
    const auto n = static_cast<int64_t>(flat_params.size());
    HostTensor<T> params(Shape{n}, std::move(flat_params));
    OptimizerState<T> state = adam_init_state<T>(options, n);
    adam_step(options, params, HostTensor<T>(Shape{n}, std::move(flat_grads)), state);

    std::map<std::string, HostTensor<T>> after;
    int64_t offset = 0;
    for (const std::string& name : model.names) {
        const Shape& shape = model[name].shape();
        std::vector<T> values(params.data() + offset, params.data() + offset + shape.numel());
        after.emplace(name, HostTensor<T>(shape, std::move(values)));
        offset += shape.numel();
    }
    return after;
}

// The fixture's sample of a tensor: all of it up to sample_size entries, else entries i · numel /
// sample_size.
template <class T>
HostTensor<T> sample(const HostTensor<T>& t, int64_t sample_size) {
    if (t.numel() <= sample_size) return t;
    HostTensor<T> s(Shape{sample_size});
    for (int64_t i = 0; i < sample_size; ++i) s[i] = t[i * t.numel() / sample_size];
    return s;
}

template <class T>
double sum_of_squares(const HostTensor<T>& t) {
    double sum = 0.0;
    for (int64_t i = 0; i < t.numel(); ++i) sum += static_cast<double>(t[i]) * static_cast<double>(t[i]);
    return sum;
}

double relative_difference(double actual, double expected) {
    return std::fabs(actual - expected) / std::fabs(expected);
}

double max_abs(const HostTensor<double>& t) {
    double m = 0.0;
    for (double v : t.values()) m = std::max(m, std::fabs(v));
    return m;
}

// Adam's first step moves each parameter by lr · g / (|g| + eps), about lr · sign(g): it amplifies an error
// δ in g by lr · eps / (|g| + eps)², which is harmless in double but not in float where |g| is near eps, and
// arbitrary where the exact gradient is 0 (cancelled biases). So:
//  - double: the change p1 − p0 matches PyTorch's everywhere (cancelled biases: both move by ≈ 0);
//  - float: p1 matches where |g| ≥ 1e3 · eps (there the step is lr · sign(g) to 1e-3), and elsewhere the
//    step stays within Adam's bound lr (float rounding of p adds under 1 % of lr).
template <class T>
void check_update(const HostTensor<T>& p0, const HostTensor<T>& p1, const HostTensor<double>& expected_p1,
                  const HostTensor<double>& expected_grad, bool cancelled_bias, double lr, double tolerance) {
    constexpr double kEps = 1e-8;  // Adam's default
    HostTensor<double> step(p0.shape()), expected_step(p0.shape());
    for (int64_t i = 0; i < p0.numel(); ++i) {
        step[i] = static_cast<double>(p1[i]) - static_cast<double>(p0[i]);
        expected_step[i] = expected_p1[i] - static_cast<double>(p0[i]);
    }
    if (sizeof(T) == sizeof(double)) {
        if (cancelled_bias) {
            CHECK(max_abs(step) <= 1e-6 * lr);
            CHECK(max_abs(expected_step) <= 1e-6 * lr);
        } else {
            const double error = max_relative_error(step, expected_step);
            INFO("p1 - p0: error " << error);
            CHECK(error <= tolerance);
        }
        return;
    }
    std::vector<double> kept, kept_expected;
    for (int64_t i = 0; i < p0.numel(); ++i) {
        if (!cancelled_bias && std::fabs(expected_grad[i]) >= 1e3 * kEps) {
            kept.push_back(static_cast<double>(p1[i]));
            kept_expected.push_back(expected_p1[i]);
        } else {
            CHECK(std::fabs(step[i]) <= 1.01 * lr);
        }
    }
    if (kept.empty()) return;
    const auto n = static_cast<int64_t>(kept.size());
    const double error =
        max_relative_error(HostTensor<double>(Shape{n}, kept), HostTensor<double>(Shape{n}, kept_expected));
    INFO("p1 where |g| >= 1e-5 (" << n << " of " << p0.numel() << " entries): error " << error);
    CHECK(error <= tolerance);
}

// A bias that a batch norm cancels has exact gradient 0, and both sides hold rounding noise: check that ours
// is noise too, tiny beside the gradient of the conv weight (whose terms the noise comes from). Measured:
// ~5e-15 in double, ~2e-7 in float; the bounds sit a few hundred times above, far below a real gradient.
template <class T>
void check_cancelled_bias_gradient(const std::string& bias, const HostTensor<T>& grad,
                                   const SafetensorsFile& fixture) {
    const double bound = sizeof(T) == sizeof(double) ? 1e-12 : 1e-5;
    const std::string weight = bias.substr(0, bias.size() - std::string("bias").size()) + "weight";
    const double noise =
        max_abs(grad.template cast<double>()) / max_abs(fixture.get<double>("grad." + weight));
    INFO(bias << ": gradient relative to " << weight << "'s " << noise);
    CHECK(noise <= bound);
}

// Everything the fixture holds, checked for the step computed in T.
template <class T>
void check_step_against_pytorch(double tolerance) {
    const SafetensorsFile fixture = load_fixture("cifar_cnn_step");
    const auto seed = static_cast<uint64_t>(fixture.get<int64_t>("seed")[0]);
    const int64_t sample_size = fixture.get<int64_t>("sample_size")[0];

    const Model<float> initial = initial_model(seed);
    for (const std::string& name : initial.names) {
        INFO("initial " << name << " must equal tools/fixtures/philox.py's draw");
        CHECK(max_relative_error(sample(initial[name], sample_size), fixture.get<float>("init." + name)) ==
              0.0);
    }
    Model<T> model = initial.template cast<T>();
    const Model<T> before = model;
    const HostTensor<T> x = fixture.get<float>("x").template cast<T>();
    const StepResult<T> step = forward_backward(model, x, fixture.get<int64_t>("labels"));

    auto check_tensor = [&](const std::string& key, const HostTensor<T>& actual,
                            const std::string& torch_key) {
        const double error = max_relative_error(sample(actual, sample_size), fixture.get<double>(key));
        INFO(key << ": error " << error << ", PyTorch float32's " << fixture.get<double>(torch_key)[0]);
        CHECK(error <= tolerance);
    };
    check_tensor("logits", step.logits, "torch_f32_error.logits");
    check_tensor("loss", step.loss, "torch_f32_error.loss");
    for (const auto& [layer, running] : model.running) {
        check_tensor("running_mean." + layer, running.running_mean, "torch_f32_error.running_mean." + layer);
        check_tensor("running_var." + layer, running.running_var, "torch_f32_error.running_var." + layer);
        CHECK(running.num_batches_tracked == fixture.get<int64_t>("num_batches_tracked." + layer)[0]);
    }

    const AdamOptions adam{/*lr=*/1e-4};
    const std::map<std::string, HostTensor<T>> after = adam_step_all(model, step.grads, adam);
    for (const std::string& name : model.names) {
        const HostTensor<T>& grad = step.grads.at(name);
        if (bias_cancelled_by_batch_norm(name)) {
            check_cancelled_bias_gradient(name, grad, fixture);
            continue;
        }
        check_tensor("grad." + name, grad, "torch_f32_error.grad." + name);
        INFO("grad " << name << ": sum of squares");
        CHECK(relative_difference(sum_of_squares(grad), fixture.get<double>("grad_sumsq." + name)[0]) <=
              tolerance);
    }
    for (const std::string& name : model.names) {
        INFO("after the Adam step: " << name);
        check_update(sample(before[name], sample_size), sample(after.at(name), sample_size),
                     fixture.get<double>("param_after." + name), fixture.get<double>("grad." + name),
                     bias_cancelled_by_batch_norm(name), adam.lr, tolerance);
        // In float a cancelled bias moves arbitrarily (see check_update), and so does its sum of squares.
        if (sizeof(T) == sizeof(float) && bias_cancelled_by_batch_norm(name)) continue;
        CHECK(relative_difference(sum_of_squares(after.at(name)),
                                  fixture.get<double>("param_after_sumsq." + name)[0]) <= tolerance);
    }
}

}  // namespace

TEST_CASE("CifarCNN training step in double matches PyTorch float64", "[cifar_cnn][fixture]") {
    check_step_against_pytorch<double>(kDoubleTolerance);
}

TEST_CASE("CifarCNN training step in float matches PyTorch float64", "[cifar_cnn][fixture]") {
    check_step_against_pytorch<float>(kFloatTolerance);
}
