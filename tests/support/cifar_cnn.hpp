// The CifarCNN of DESIGN.md for tests that train one step of it (tests/cpu/cifar_cnn_step_test.cpp on the
// CPU reference, tests/ops/cifar_cnn_step_parity_test.cpp on the kernels): its layers and parameter names,
// cudacnn's default initialization, and the comparison with tests/fixtures/cifar_cnn_step.safetensors
// (made by tools/fixtures/cifar_cnn_step.py: PyTorch float64, dropout off, one Adam step at lr 1e-4).
#pragma once

#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include <fmt/format.h>

#include "cudacnn/ops/batch_norm.hpp"
#include "cudacnn/ops/init.hpp"
#include "cudacnn/ops/optimizer.hpp"
#include "support/compare.hpp"

namespace cudacnn::test::cifar_cnn {

using cpu::BatchNorm2dRunningStats;

// Conv stages of conv_layer: conv index, batch norm index (−1: none), and whether a 2×2 max pool follows.
struct ConvStage {
    int conv;
    int batch_norm;
    bool pool;
};
constexpr ConvStage kConvStages[] = {{0, 1, false}, {3, -1, true},   {6, 7, false},
                                     {9, -1, true}, {13, 14, false}, {16, -1, true}};
constexpr int kLinearLayers[] = {1, 3, 6};  // fc_layer indices; ReLU follows all but the last

inline std::string conv_name(int index) {
    return fmt::format("conv_layer.{}", index);
}
inline std::string fc_name(int index) {
    return fmt::format("fc_layer.{}", index);
}

// The convolutions whose bias feeds a training-mode batch norm, which subtracts it again: the exact
// gradient of those biases is 0, and what arithmetic leaves is rounding noise in any implementation.
inline bool bias_cancelled_by_batch_norm(const std::string& parameter) {
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
inline Model<float> initial_model(uint64_t seed) {
    Model<float> model;
    auto add = [&](const std::string& name, HostTensor<float> value) {
        model.names.push_back(name);
        model.params.emplace(name, std::move(value));
    };
    auto add_layer = [&](const std::string& layer, const Shape& weight_shape) {
        const uint64_t stream = model.names.size();
        add(layer + ".weight", cpu::default_weight_init<float>(weight_shape, seed, stream));
        add(layer + ".bias", cpu::default_bias_init<float>(Shape{weight_shape[0]}, cpu::fan_in(weight_shape),
                                                           seed, stream + 1));
    };
    const int64_t channels[] = {3, 32, 64, 128, 128, 256, 256};
    for (int s = 0; s < 6; ++s) {
        const ConvStage& stage = kConvStages[s];
        add_layer(conv_name(stage.conv), Shape{channels[s + 1], channels[s], 3, 3});
        if (stage.batch_norm < 0) continue;
        const std::string bn = conv_name(stage.batch_norm);
        add(bn + ".weight", cpu::batchnorm_weight_init<float>(channels[s + 1]));
        add(bn + ".bias", cpu::batchnorm_bias_init<float>(channels[s + 1]));
        model.running.emplace(bn, BatchNorm2dRunningStats<float>::initial(channels[s + 1]));
    }
    add_layer(fc_name(1), Shape{1024, 4096});
    add_layer(fc_name(3), Shape{512, 1024});
    add_layer(fc_name(6), Shape{10, 512});
    return model;
}

// What one training step produced, whichever path computed it.
template <class T>
struct StepOutcome {
    HostTensor<T> logits;                                       // (N, 10)
    HostTensor<T> loss;                                         // ()
    std::map<std::string, HostTensor<T>> grads;                 // by parameter name
    std::map<std::string, BatchNorm2dRunningStats<T>> running;  // by batch norm layer, after the step
    std::map<std::string, HostTensor<T>> params_after;          // after the Adam step
};

// The fixture's inputs and settings.
struct StepFixture {
    SafetensorsFile file = load_fixture("cifar_cnn_step");
    uint64_t seed = static_cast<uint64_t>(file.get<int64_t>("seed")[0]);
    int64_t sample_size = file.get<int64_t>("sample_size")[0];
    HostTensor<float> x = file.get<float>("x");                // (N, 3, 32, 32)
    HostTensor<int64_t> labels = file.get<int64_t>("labels");  // (N)
    cpu::AdamOptions adam{/*lr=*/1e-4};                        // PyTorch's defaults otherwise
};

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

inline double relative_difference(double actual, double expected) {
    return std::fabs(actual - expected) / std::fabs(expected);
}

inline double max_abs(const HostTensor<double>& t) {
    double m = 0.0;
    for (double v : t.values()) m = std::max(m, std::fabs(v));
    return m;
}

// Adam's first step moves each parameter by lr · g / (|g| + eps), about lr · sign(g): it amplifies an error
// δ in g by lr · eps / (|g| + eps)², which is harmless in double but not in float where |g| is near eps, and
// arbitrary where the exact gradient is 0 (cancelled biases). So:
//  - double: the change p1 − p0 matches PyTorch's everywhere (cancelled biases: both move by ≈ 0);
//  - float: p1 matches where |g| ≥ 1e3 · eps (there the step is lr · sign(g) to 1e-3) and |g| is well above
//    the gradient's own error, and elsewhere the step stays within Adam's bound lr (float rounding of p adds
//    under 1 % of lr).
// grad_tolerance is the relative error allowed in this tensor's gradient: where |g| is within ten times that
// error of 0, float can flip the step's sign, so those entries are held to the bound lr only.
template <class T>
void check_update(const HostTensor<T>& p0, const HostTensor<T>& p1, const HostTensor<double>& expected_p1,
                  const HostTensor<double>& expected_grad, bool cancelled_bias, double lr,
                  double grad_tolerance, double tolerance) {
    constexpr double kEps = 1e-8;  // Adam's default
    const double well_conditioned = std::max(1e3 * kEps, 10 * grad_tolerance * max_abs(expected_grad));
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
        if (!cancelled_bias && std::fabs(expected_grad[i]) >= well_conditioned) {
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
    INFO("p1 where |g| >= " << well_conditioned << " (" << n << " of " << p0.numel() << " entries): error "
                            << error);
    CHECK(error <= tolerance);
}

// A bias that a batch norm cancels has exact gradient 0, and both sides hold rounding noise: check that ours
// is noise too, at most `bound` beside the gradient of the conv weight (whose terms the noise comes from).
template <class T>
void check_cancelled_bias_gradient(const std::string& bias, const HostTensor<T>& grad,
                                   const SafetensorsFile& fixture, double bound) {
    const std::string weight = bias.substr(0, bias.size() - std::string("bias").size()) + "weight";
    const double noise =
        max_abs(grad.template cast<double>()) / max_abs(fixture.get<double>("grad." + weight));
    INFO(bias << ": gradient relative to " << weight << "'s " << noise);
    CHECK(noise <= bound);
}

// The initial parameters drawn here must be those tools/fixtures/philox.py drew for the fixture.
inline void check_initial_model(const StepFixture& fixture, const Model<float>& initial) {
    for (const std::string& name : initial.names) {
        INFO("initial " << name << " must equal tools/fixtures/philox.py's draw");
        CHECK(max_relative_error(sample(initial[name], fixture.sample_size),
                                 fixture.file.get<float>("init." + name)) == 0.0);
    }
}

// The relative error allowed per fixture entry: "logits", "loss", "running_mean.<layer>",
// "running_var.<layer>", "grad.<param>", "param_after.<param>", and "noise.<bias>" (a cancelled bias's
// gradient beside its weight's, see check_cancelled_bias_gradient).
using ToleranceFor = std::function<double(const std::string& key)>;

// Everything the fixture holds against a step computed in T from `initial`.
template <class T>
void check_step_against_pytorch(const StepFixture& fixture, const Model<float>& initial,
                                const StepOutcome<T>& step, const ToleranceFor& tolerance_for) {
    const SafetensorsFile& file = fixture.file;
    const int64_t sample_size = fixture.sample_size;
    auto check_tensor = [&](const std::string& key, const HostTensor<T>& actual,
                            const std::string& torch_key) {
        const double error = max_relative_error(sample(actual, sample_size), file.get<double>(key));
        INFO(key << ": error " << error << ", PyTorch float32's " << file.get<double>(torch_key)[0]);
        CHECK(error <= tolerance_for(key));
    };
    check_tensor("logits", step.logits, "torch_f32_error.logits");
    check_tensor("loss", step.loss, "torch_f32_error.loss");
    for (const auto& [layer, running] : step.running) {
        check_tensor("running_mean." + layer, running.running_mean, "torch_f32_error.running_mean." + layer);
        check_tensor("running_var." + layer, running.running_var, "torch_f32_error.running_var." + layer);
        CHECK(running.num_batches_tracked == file.get<int64_t>("num_batches_tracked." + layer)[0]);
    }
    for (const std::string& name : initial.names) {
        const HostTensor<T>& grad = step.grads.at(name);
        if (bias_cancelled_by_batch_norm(name)) {
            check_cancelled_bias_gradient(name, grad, file, tolerance_for("noise." + name));
            continue;
        }
        check_tensor("grad." + name, grad, "torch_f32_error.grad." + name);
        INFO("grad " << name << ": sum of squares");
        CHECK(relative_difference(sum_of_squares(grad), file.get<double>("grad_sumsq." + name)[0]) <=
              tolerance_for("grad." + name));
    }
    for (const std::string& name : initial.names) {
        INFO("after the Adam step: " << name);
        const HostTensor<T> before = initial[name].template cast<T>();
        const HostTensor<T>& after = step.params_after.at(name);
        const double tolerance = tolerance_for("param_after." + name);
        check_update(sample(before, sample_size), sample(after, sample_size),
                     file.get<double>("param_after." + name), file.get<double>("grad." + name),
                     bias_cancelled_by_batch_norm(name), fixture.adam.lr, tolerance_for("grad." + name),
                     tolerance);
        // In float a cancelled bias moves arbitrarily (see check_update), and so does its sum of squares.
        if (sizeof(T) == sizeof(float) && bias_cancelled_by_batch_norm(name)) continue;
        // The sum of squares takes in every update, also where |g| is within the gradient's own error of 0
        // (and a batch norm's beta starts at 0, so there p1 is all update): allow the gradient's tolerance
        // too.
        CHECK(relative_difference(sum_of_squares(after), file.get<double>("param_after_sumsq." + name)[0]) <=
              std::max(tolerance, tolerance_for("grad." + name)));
    }
}

}  // namespace cudacnn::test::cifar_cnn
