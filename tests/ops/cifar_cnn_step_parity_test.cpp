// One training step of the full CifarCNN on the hand-written kernels (direct, im2col, implicit-GEMM and
// Winograd convolution, the project's SGEMM, batch norm, pooling, fused cross-entropy, the fused Adam kernel
// over one flat parameter block) against PyTorch (tests/fixtures/cifar_cnn_step.safetensors), and bit-for-bit
// determinism.
#include <catch2/catch.hpp>

#include <algorithm>
#include <map>
#include <string>
#include <vector>

#include "cuda/activation.hpp"
#include "cuda/batch_norm.hpp"
#include "cuda/conv2d.hpp"
#include "cuda/linear.hpp"
#include "cuda/loss.hpp"
#include "cuda/optimizer.hpp"
#include "cuda/pool.hpp"
#include "support/cifar_cnn.hpp"
#include "support/parity.hpp"

using namespace cudacnn;
using namespace cudacnn::test::cifar_cnn;
using cudacnn::test::to_device;
using cudacnn::test::to_host;

namespace {

// Our float kernels accumulate in float, like PyTorch's, and so make the same discrete decisions: where a
// batch norm's output lies within float rounding of 0, the following ReLU passes or blocks its gradient
// differently from the float64 reference (the CPU reference rounds each output once from double, which
// never changes a sign, and so agrees with float64). Such a flip moves the gradients of every earlier layer
// by up to 8e-2 (PyTorch float32 included: the fixture stores its error per tensor as torch_f32_error.*;
// ours agrees with it to about three digits). So each entry may be off by 4× PyTorch float32's error on it,
// and never needs to beat 1e-4 (about 2^-24 times the network's longest reductions): a wiring or indexing
// bug gives errors of order 1.
constexpr double kTorchErrorFactor = 4.0;
constexpr double kFloor = 1e-4;
// p1 is dominated by p0 (|lr · sign(g)| ≪ |p0|), so float rounding of p decides: the CPU float bound holds.
constexpr double kParamAfterTolerance = 1e-5;
// A cancelled bias's gradient: float noise of the conv weight's reduction; measured ~1e-6 on these kernels.
constexpr double kCancelledBiasNoise = 1e-4;

// One device buffer per named tensor inside a flat block (the runtime's parameter / gradient layout).
struct FlatBlock {
    DeviceBuffer buffer;
    std::map<std::string, int64_t> offset;  // in floats
    int64_t size = 0;

    float* at(const std::string& name) const { return buffer.data_as<float>() + offset.at(name); }
};

FlatBlock flat_parameters(const Model<float>& model) {
    FlatBlock block;
    std::vector<float> values;
    for (const std::string& name : model.names) {
        block.offset[name] = block.size;
        const auto& v = model[name].values();
        values.insert(values.end(), v.begin(), v.end());
        block.size += model[name].numel();
    }
    block.buffer = upload(values);
    return block;
}

FlatBlock zeros_like(const FlatBlock& like) {
    FlatBlock block{DeviceBuffer(static_cast<size_t>(like.size) * sizeof(float)), like.offset, like.size};
    fill_bytes(block.buffer.data(), 0, block.buffer.bytes());
    return block;
}

DeviceBuffer floats(int64_t count) {
    return DeviceBuffer(static_cast<size_t>(count) * sizeof(float));
}

// What the forward keeps for the backward, per conv stage.
struct StageTape {
    Shape in_shape, out_shape;  // (N, C, H, W) in, (N, OC, H, W) after conv / BN / ReLU
    DeviceBuffer input, conv_out, bn_out, save_mean, save_invstd, relu_out, pool_out, indices;
};

// The whole step on the device: forward (training-mode BN, dropout off), cross-entropy, backward, Adam.
StepOutcome<float> train_step_on_device(const StepFixture& fixture, const Model<float>& initial,
                                        gpu::ConvAlgo algo) {
    const cudaStream_t stream = nullptr;
    const int64_t batch = fixture.x.dim(0);
    FlatBlock params = flat_parameters(initial);
    FlatBlock grads = zeros_like(params);
    std::map<std::string, DeviceBuffer> running_mean, running_var;
    std::map<std::string, gpu::BatchNorm2dRunningStatsView> running;
    for (const auto& [layer, stats] : initial.running) {
        running_mean[layer] = to_device(stats.running_mean);
        running_var[layer] = to_device(stats.running_var);
        running[layer] = {running_mean[layer].data_as<float>(), running_var[layer].data_as<float>(),
                          stats.num_batches_tracked};
    }

    // Plans and one workspace shared by every layer (sized for the largest).
    gpu::Conv2dSettings settings;
    settings.algo = algo;
    cpu::Conv2dOptions conv_options;
    conv_options.padding = 1;
    cpu::MaxPool2dOptions pool_options;
    pool_options.kernel_size = 2;
    const cpu::BatchNorm2dOptions bn_options;  // training, momentum 0.1, eps 1e-5
    std::vector<gpu::Conv2dPlan> plans;
    std::vector<StageTape> tape(6);
    Shape shape = fixture.x.shape();
    size_t workspace_bytes = gpu::cross_entropy_workspace_bytes(batch);
    for (int s = 0; s < 6; ++s) {
        const std::string conv = conv_name(kConvStages[s].conv);
        const cpu::Conv2dGeometry g =
            cpu::conv2d_geometry(shape, initial[conv + ".weight"].shape(), conv_options);
        plans.emplace_back(g, settings, stream);
        tape[s].in_shape = shape;
        tape[s].out_shape = g.output_shape();
        workspace_bytes = std::max({workspace_bytes, plans.back().workspace_bytes(),
                                    gpu::batch_norm2d_workspace_bytes(g.output_shape())});
        shape = kConvStages[s].pool ? cpu::max_pool2d_output_shape(g.output_shape(), pool_options)
                                    : g.output_shape();
    }
    DeviceBuffer workspace(workspace_bytes);

    // ---- forward: conv_layer ----
    DeviceBuffer h = to_device(fixture.x);
    for (int s = 0; s < 6; ++s) {
        const ConvStage& stage = kConvStages[s];
        StageTape& t = tape[s];
        const std::string conv = conv_name(stage.conv);
        const int64_t count = t.out_shape.numel(), channels = t.out_shape[1];
        t.input = std::move(h);
        t.conv_out = floats(count);
        plans[s].forward(t.input.data_as<float>(), params.at(conv + ".weight"), params.at(conv + ".bias"),
                         t.conv_out.data_as<float>(), workspace.data(), stream);
        const float* pre_relu = t.conv_out.data_as<float>();
        if (stage.batch_norm >= 0) {
            const std::string bn = conv_name(stage.batch_norm);
            t.bn_out = floats(count);
            t.save_mean = floats(channels);
            t.save_invstd = floats(channels);
            gpu::batch_norm2d(t.conv_out.data_as<float>(), params.at(bn + ".weight"), params.at(bn + ".bias"),
                              &running.at(bn), t.bn_out.data_as<float>(), t.save_mean.data_as<float>(),
                              t.save_invstd.data_as<float>(), t.out_shape, bn_options, workspace.data(),
                              workspace_bytes, stream);
            pre_relu = t.bn_out.data_as<float>();
        }
        t.relu_out = floats(count);
        gpu::relu_forward(pre_relu, t.relu_out.data_as<float>(), count, stream);
        if (!stage.pool) {
            h = DeviceBuffer(static_cast<size_t>(count) * sizeof(float));
            copy_on_device(h.data(), t.relu_out.data(), h.bytes(), stream);
            continue;
        }
        const Shape pooled = cpu::max_pool2d_output_shape(t.out_shape, pool_options);
        h = floats(pooled.numel());
        t.indices = DeviceBuffer(static_cast<size_t>(pooled.numel()) * sizeof(int64_t));
        gpu::max_pool2d(t.relu_out.data_as<float>(), h.data_as<float>(), t.indices.data_as<int64_t>(),
                        t.out_shape, pool_options, stream);
    }
    // ---- forward: flatten (the same memory), fc_layer ----
    std::vector<DeviceBuffer> fc_inputs;
    std::vector<gpu::LinearShape> fc_shapes;
    int64_t features = shape.numel() / batch;  // 4096
    for (int i = 0; i < 3; ++i) {
        const std::string fc = fc_name(kLinearLayers[i]);
        const gpu::LinearShape ls{batch, features, initial[fc + ".weight"].dim(0)};
        DeviceBuffer y = floats(batch * ls.out_features);
        gpu::linear_forward(h.data_as<float>(), params.at(fc + ".weight"), params.at(fc + ".bias"),
                            y.data_as<float>(), ls, stream);
        fc_inputs.push_back(std::move(h));
        fc_shapes.push_back(ls);
        if (i != 2)
            gpu::relu_forward(y.data_as<float>(), y.data_as<float>(), batch * ls.out_features, stream);
        h = std::move(y);
        features = ls.out_features;
    }
    const DeviceBuffer logits = std::move(h);
    const DeviceBuffer labels = to_device(fixture.labels);
    DeviceBuffer loss = floats(1);
    const gpu::CrossEntropyOptions ce_options;
    gpu::cross_entropy_forward(logits.data_as<float>(), labels.data_as<int64_t>(), batch, 10, ce_options,
                               loss.data_as<float>(), workspace.data(), workspace_bytes, stream);

    // ---- backward ----
    const DeviceBuffer dloss = upload(std::vector<float>{1.0f});
    DeviceBuffer dy = floats(batch * 10);
    gpu::cross_entropy_backward(logits.data_as<float>(), labels.data_as<int64_t>(), dloss.data_as<float>(),
                                batch, 10, ce_options, dy.data_as<float>(), workspace.data(), workspace_bytes,
                                stream);
    for (int i = 2; i >= 0; --i) {
        const std::string fc = fc_name(kLinearLayers[i]);
        const gpu::LinearShape& ls = fc_shapes[i];
        if (i != 2) {  // through the ReLU whose output is the next layer's input
            gpu::relu_backward(fc_inputs[i + 1].data_as<float>(), dy.data_as<float>(), dy.data_as<float>(),
                               batch * ls.out_features, stream);
        }
        DeviceBuffer dx = floats(batch * ls.in_features);
        gpu::linear_backward(fc_inputs[i].data_as<float>(), params.at(fc + ".weight"), dy.data_as<float>(),
                             dx.data_as<float>(), grads.at(fc + ".weight"), grads.at(fc + ".bias"), ls,
                             stream);
        dy = std::move(dx);
    }
    for (int s = 5; s >= 0; --s) {  // dy is (N, 4096) = (N, 256, 4, 4) flattened at first: the same memory
        const ConvStage& stage = kConvStages[s];
        StageTape& t = tape[s];
        const int64_t count = t.out_shape.numel();
        if (stage.pool) {
            DeviceBuffer dx = floats(count);
            gpu::max_pool2d_backward(t.indices.data_as<int64_t>(), dy.data_as<float>(), dx.data_as<float>(),
                                     t.out_shape, pool_options, stream);
            dy = std::move(dx);
        }
        gpu::relu_backward(t.relu_out.data_as<float>(), dy.data_as<float>(), dy.data_as<float>(), count,
                           stream);
        if (stage.batch_norm >= 0) {
            const std::string bn = conv_name(stage.batch_norm);
            DeviceBuffer dx = floats(count);
            gpu::batch_norm2d_backward(t.conv_out.data_as<float>(), params.at(bn + ".weight"),
                                       t.save_mean.data_as<float>(), t.save_invstd.data_as<float>(),
                                       dy.data_as<float>(), dx.data_as<float>(), grads.at(bn + ".weight"),
                                       grads.at(bn + ".bias"), t.out_shape, bn_options.training,
                                       workspace.data(), workspace_bytes, stream);
            dy = std::move(dx);
        }
        const std::string conv = conv_name(stage.conv);
        plans[s].backward_filter(t.input.data_as<float>(), dy.data_as<float>(), grads.at(conv + ".weight"),
                                 grads.at(conv + ".bias"), workspace.data(), stream);
        if (s == 0) break;  // the input image needs no gradient
        DeviceBuffer dx = floats(t.in_shape.numel());
        plans[s].backward_data(dy.data_as<float>(), params.at(conv + ".weight"), dx.data_as<float>(),
                               workspace.data(), stream);
        dy = std::move(dx);
    }

    // ---- read back before the optimizer changes the parameters, then one fused Adam step ----
    StepOutcome<float> outcome;
    outcome.logits = to_host<float>(logits, Shape{batch, 10});
    outcome.loss = to_host<float>(loss, Shape{});
    for (const std::string& name : initial.names) {
        const Shape& s = initial[name].shape();
        outcome.grads[name] =
            HostTensor<float>(s, download<float>(grads.at(name), static_cast<size_t>(s.numel())));
    }
    DeviceBuffer adam_state = floats(2 * params.size);
    fill_bytes(adam_state.data(), 0, adam_state.bytes());
    int64_t adam_step_count = 0;
    gpu::adam_step(fixture.adam, params.buffer.data_as<float>(), grads.buffer.data_as<const float>(),
                   adam_state.data_as<float>(), params.size, adam_step_count, stream);
    for (const std::string& name : initial.names) {
        const Shape& s = initial[name].shape();
        outcome.params_after[name] =
            HostTensor<float>(s, download<float>(params.at(name), static_cast<size_t>(s.numel())));
    }
    for (const auto& [layer, view] : running) {
        const int64_t channels = initial.running.at(layer).running_mean.numel();
        outcome.running.emplace(
            layer, cpu::BatchNorm2dRunningStats<float>{
                       to_host<float>(running_mean.at(layer), Shape{channels}),
                       to_host<float>(running_var.at(layer), Shape{channels}), view.num_batches_tracked});
    }
    return outcome;
}

ToleranceFor kernel_tolerances(const StepFixture& fixture) {
    return [&file = fixture.file](const std::string& key) {
        if (key.rfind("noise.", 0) == 0) return kCancelledBiasNoise;
        if (key.rfind("param_after.", 0) == 0) return kParamAfterTolerance;
        return std::max(kFloor, kTorchErrorFactor * file.get<double>("torch_f32_error." + key)[0]);
    };
}

void check_algorithm(gpu::ConvAlgo algo) {
    const StepFixture fixture;
    const Model<float> initial = initial_model(fixture.seed);
    const StepOutcome<float> outcome = train_step_on_device(fixture, initial, algo);
    check_step_against_pytorch(fixture, initial, outcome, kernel_tolerances(fixture));
}

// Every float the step produced, in a fixed order, for bitwise comparison.
std::vector<HostTensor<float>> all_results(const StepOutcome<float>& outcome) {
    std::vector<HostTensor<float>> results{outcome.logits, outcome.loss};
    for (const auto& [name, grad] : outcome.grads) results.push_back(grad);
    for (const auto& [name, p] : outcome.params_after) results.push_back(p);
    for (const auto& [layer, stats] : outcome.running) {
        results.push_back(stats.running_mean);
        results.push_back(stats.running_var);
    }
    return results;
}

void check_bitwise_repeatable(gpu::ConvAlgo algo) {
    const StepFixture fixture;
    const Model<float> initial = initial_model(fixture.seed);
    const std::vector<HostTensor<float>> first = all_results(train_step_on_device(fixture, initial, algo));
    const std::vector<HostTensor<float>> second = all_results(train_step_on_device(fixture, initial, algo));
    REQUIRE(first.size() == second.size());
    for (size_t i = 0; i < first.size(); ++i) {
        INFO("result " << i << " of shape " << first[i].shape().to_string());
        CHECK(test::bitwise_equal(first[i], second[i]));
    }
}

}  // namespace

TEST_CASE("CifarCNN training step on the kernels with im2col convolution matches PyTorch",
          "[parity][cifar_cnn]") {
    check_algorithm(gpu::ConvAlgo::im2col);
}

TEST_CASE("CifarCNN training step on the kernels with direct convolution matches PyTorch",
          "[parity][cifar_cnn]") {
    check_algorithm(gpu::ConvAlgo::direct);
}

TEST_CASE("CifarCNN training step on the kernels with implicit-GEMM convolution matches PyTorch",
          "[parity][cifar_cnn]") {
    check_algorithm(gpu::ConvAlgo::implicit);
}

TEST_CASE("CifarCNN training step on the kernels with Winograd convolution matches PyTorch", "[parity][cifar_cnn]") {
    check_algorithm(gpu::ConvAlgo::winograd);
}

TEST_CASE("CifarCNN training step on the kernels with F(4×4) Winograd convolution matches PyTorch",
          "[parity][cifar_cnn]") {
    check_algorithm(gpu::ConvAlgo::winograd4);
}

// ctest runs these with CUDACNN_EMU_WORKERS=1 (tests/CMakeLists.txt): the hand-written path has no atomics
// and no order-dependent reductions, so two runs of a step agree to the bit.
TEST_CASE("CifarCNN training step on the kernels is bitwise repeatable (im2col)", "[determinism]") {
    check_bitwise_repeatable(gpu::ConvAlgo::im2col);
}

TEST_CASE("CifarCNN training step on the kernels is bitwise repeatable (direct)", "[determinism]") {
    check_bitwise_repeatable(gpu::ConvAlgo::direct);
}
