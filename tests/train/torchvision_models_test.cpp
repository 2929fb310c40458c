// The built-in torchvision models give torchvision's logits: weights and inputs from the formula of
// tests/support/formula_weights.hpp (nothing downloaded or stored but the logits), loaded by name into the
// executor, one evaluation-mode forward, compared with tests/fixtures/torchvision_models.safetensors
// (tools/fixtures/torchvision_models.py: torchvision 0.14 in float64 on the same float32 weights).
#include <catch2/catch.hpp>

#include <cstring>
#include <functional>
#include <string>
#include <vector>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "cudacnn/device.hpp"
#include "cudacnn/graph/executor.hpp"
#include "support/compare.hpp"
#include "support/executor_steps.hpp"
#include "support/formula_weights.hpp"

using namespace cudacnn;
using namespace cudacnn::graph;
using cudacnn::test::max_relative_error;

namespace {

const char* const kModels[] = {"vgg16", "vgg16_bn", "resnet18", "resnet50"};

struct Case {
    const char* name;  // the fixture's "<model>.logits_<name>" and the formula's "input.<name>"
    int64_t batch;
    int64_t size;  // height = width
};
constexpr Case k224{"224", 1, 224};
constexpr Case k64{"64", 2, 64};
constexpr Case k32{"32", 1, 32};

// Float32 logits against torchvision's float64 ones, as max |a − b| / max |b| over the logits. Each layer
// adds a few float roundings per output (sums over k = C·3·3 up to 4608 products, blocked differently by
// OpenBLAS, im2col and the kernels than by PyTorch), 16 to 50 layers deep. Measured: PyTorch's own float32
// logits are off by 2.3e-7 to 9.7e-7 on these cases (the fixture's metadata); the fast CPU path by at
// most 1.0e-6, the emulated kernels 2.3e-6, the reference ops (double sums) 1.3e-7. 1e-4 leaves a margin of
// 40 over the worst of them for other summation orders (cuDNN's algorithms on a GPU), and is far below what a
// slip does: one batch norm's running variance left at 1 moves resnet18's logits by 6e-2 (the last test
// case).
constexpr double kLogitsTolerance = 1e-4;

// FNV-1a 64 over the floats' bit patterns, one 32-bit step each, as the fixture script's fnv1a64_of_bits.
std::string fnv1a64_of_bits(const HostTensor<float>& t) {
    uint64_t h = 0xCBF29CE484222325ull;
    for (int64_t i = 0; i < t.numel(); ++i) {
        uint32_t bits;
        std::memcpy(&bits, &t[i], sizeof bits);
        h = (h ^ bits) * 0x100000001B3ull;
    }
    return fmt::format("{:016x}", h);
}

// The model's logits for the case's formula input, on `backend` with formula weights (which `edit` may
// change).
HostTensor<float> formula_logits(const std::string& model, const Case& c, Backend backend,
                                 const std::function<void(io::StateDict&)>& edit = {}) {
    ModelSpec spec = builtin_model(model);
    spec.input = Shape{3, c.size, c.size};
    const Graph graph = build_graph(spec);
    ExecutorOptions options;
    options.backend = backend;
    options.batch_size = c.batch;
    options.optimizer.kind = OptimizerKind::sgd;  // no optimizer state: these models are large
    Executor executor(graph, options);
    io::StateDict weights = test::formula::state_dict(graph);
    if (edit) edit(weights);
    executor.load_model_state(weights, "formula weights");
    const HostTensor<float> x = test::formula::input(c.name, Shape{c.batch, 3, c.size, c.size});
    const std::vector<int64_t> labels(static_cast<size_t>(c.batch), 0);  // the loss is not checked
    executor.set_batch(x.data(), labels.data(), c.batch);
    executor.eval_step();
    return executor.logits();
}

HostTensor<float> fixture_logits(const std::string& model, const Case& c) {  // (batch, 1000)
    return test::load_fixture("torchvision_models").get<float>(model + ".logits_" + std::string(c.name));
}

void check_logits(const std::string& model, const Case& c, Backend backend) {
    const double error = max_relative_error(formula_logits(model, c, backend), fixture_logits(model, c));
    INFO(model << " at " << c.size << "x" << c.size << ", batch " << c.batch << ", on "
               << backend_name(backend) << ": relative error " << error);
    CHECK(error <= kLogitsTolerance);
}

}  // namespace

// The logits tests would pass with weights a rounding apart; this one sees the C++ formula give the script's
// bits for one tensor of every role and scale rule.
TEST_CASE("torchvision models: the formula weights are the fixture script's, bit for bit", "[torchvision]") {
    const auto samples =
        nlohmann::json::parse(test::load_fixture("torchvision_models").metadata().at("formula.fnv1a64"));
    REQUIRE(samples.size() == 7);
    for (const auto& [name, sample] : samples.items()) {
        INFO(name);
        const Shape shape(sample[0].get<std::vector<int64_t>>());
        CHECK(fnv1a64_of_bits(test::formula::values(name, shape, sample[1].get<std::string>())) ==
              sample[2].get<std::string>());
    }
}

// Timings on 2 cores (emu flavour, RelWithDebInfo): 224x224 vgg16 2.4 s, vgg16_bn 2.1 s, resnet18 0.2 s,
// resnet50 0.4 s; 64x64 VGG 1.5 s each (mostly its 138 million formula weights and their copies), ResNet 0.1
// and 0.3 s. The reference ops would take 10 s per VGG at 64x64 and 4 s at 32x32, so they run the ResNets
// only, at 32x32 (0.3 and 0.7 s); the emulated kernels (VGG 5.7 s at 64x64) run the ResNets at 64x64 (0.5 and
// 1.1 s) and vgg16_bn at 32x32 (3 s; vgg16's layers are a subset of vgg16_bn's).
TEST_CASE("torchvision models: the fast CPU path gives torchvision's logits at 224x224", "[torchvision]") {
    for (const char* model : kModels) check_logits(model, k224, Backend::cpu);
}

TEST_CASE("torchvision models: the fast CPU path gives torchvision's logits at 64x64 batch 2",
          "[torchvision]") {
    for (const char* model : kModels) check_logits(model, k64, Backend::cpu);
}

// Under AddressSanitizer (CI's emu-asan build, which runs these cases too) the emulated kernels are about ten
// times slower (resnet18, resnet50 and vgg16_bn together 57 s) and the reference ops several times: the
// sanitized build runs resnet18 only there (6 s and 0.7 s), which has every kind of layer but VGG's adaptive
// pooling to 7x7 (the unsanitized builds run all; the fast CPU path runs all four in every build: 14 s under
// AddressSanitizer, 21 s for this file).
#if defined(__SANITIZE_ADDRESS__)
constexpr bool kSanitized = true;
#else
constexpr bool kSanitized = false;
#endif

TEST_CASE("torchvision models: the GPU backend (emulated kernels here) gives torchvision's logits",
          "[torchvision][gpu]") {
    if (!test::have_gpu_backend()) return;
    check_logits("resnet18", k64, Backend::gpu);
    if (kSanitized) return;
    check_logits("resnet50", k64, Backend::gpu);
    check_logits("vgg16_bn", k32, Backend::gpu);
}

TEST_CASE("torchvision models: the reference ops give torchvision's logits", "[torchvision]") {
    check_logits("resnet18", k32, Backend::cpu_reference);
    if (kSanitized) return;
    check_logits("resnet50", k32, Backend::cpu_reference);
}

TEST_CASE("torchvision models: the tolerance catches one unloaded batch norm buffer", "[torchvision]") {
    const HostTensor<float> logits = formula_logits("resnet18", k64, Backend::cpu, [](io::StateDict& w) {
        w.put("layer4.1.bn2.running_var", HostTensor<float>(Shape{512}, 1.0f));  // PyTorch's initial value
    });
    const double error = max_relative_error(logits, fixture_logits("resnet18", k64));
    INFO("resnet18 with layer4.1.bn2.running_var = 1: relative error " << error);
    CHECK(error > 100 * kLogitsTolerance);
}
