// PyTorch interchange for the full CifarCNN (DESIGN.md): weights made here by Executor::initialize and the
// batch-norm formula of tools/fixtures/eval_interop_cifar_cnn.py, saved as a safetensors state_dict and
// evaluated by cudacnn-eval, give PyTorch's float64 logits and predictions; the file holds the very values
// PyTorch drew (so PyTorch loading it computes those logits). The weights themselves are not committed (23 MB).
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <sstream>

#include <fmt/format.h>

#include "cudacnn/graph/executor.hpp"
#include "cudacnn/io/state_dict.hpp"
#include "cudacnn/safetensors.hpp"
#include "support/programs.hpp"
#include "support/temp_files.hpp"

using namespace cudacnn;

namespace {

// eval_interop_cifar_cnn.py's batch_norm_values: weight, bias, running_mean, running_var of conv_layer.<layer>,
// rationals in double rounded to float, so both sides hold the same bits.
void set_batch_norm(io::StateDict& state, int layer, int64_t channels) {
    HostTensor<float> weight(Shape{channels}), bias(Shape{channels}), mean(Shape{channels}), var(Shape{channels});
    for (int64_t c = 0; c < channels; ++c) {
        weight[c] = static_cast<float>(0.5 + static_cast<double>((3 * c + layer) % 7) / 6.0);
        bias[c] = static_cast<float>(static_cast<double>((c + 2 * layer) % 9 - 4) / 10.0);
        mean[c] = static_cast<float>(static_cast<double>((7 * c + layer) % 11 - 5) / 32.0);
        var[c] = static_cast<float>((layer == 1 ? 0.5 : 1.0 / 64.0) *
                                    (0.5 + static_cast<double>((5 * c + layer) % 13) / 12.0));
    }
    const std::string name = fmt::format("conv_layer.{}", layer);
    state.put(name + ".weight", std::move(weight));
    state.put(name + ".bias", std::move(bias));
    state.put(name + ".running_mean", std::move(mean));
    state.put(name + ".running_var", std::move(var));
}

// The fixture's sample of a parameter: entries i · numel / sample_size, all of it when smaller.
std::vector<float> sample(const HostTensor<float>& t, int64_t sample_size) {
    if (t.numel() <= sample_size) return t.values();
    std::vector<float> s;
    for (int64_t i = 0; i < sample_size; ++i) s.push_back(t[i * t.numel() / sample_size]);
    return s;
}

}  // namespace

TEST_CASE("CifarCNN weights PyTorch builds too, evaluated by cudacnn-eval, give PyTorch's logits", "[eval][interop]") {
    const SafetensorsFile fixture =
        SafetensorsFile::read(std::string(CUDACNN_FIXTURES_DIR) + "/eval_interop_cifar_cnn.safetensors");
    const HostTensor<uint8_t> images = fixture.get<uint8_t>("images");
    const HostTensor<int64_t> labels = fixture.get<int64_t>("labels");
    const HostTensor<double> expected = fixture.get<double>("logits");  // (N, 10), float64 from the float32 weights
    const auto seed = static_cast<uint64_t>(fixture.get<int64_t>("seed")[0]);
    const int64_t sample_size = fixture.get<int64_t>("sample_size")[0];
    const int64_t n = labels.numel(), classes = 10;

    graph::ExecutorOptions options;
    options.backend = graph::Backend::cpu;
    options.batch_size = n;
    graph::Executor executor(graph::build_graph(graph::builtin_model("cifar_cnn")), options);
    executor.initialize(seed);
    io::StateDict state = executor.model_state();
    set_batch_norm(state, 1, 32);
    set_batch_norm(state, 7, 128);
    set_batch_norm(state, 14, 256);
    const test::TempDir dir;
    const std::string weights = dir.file("cifar_cnn.safetensors");
    io::save_state_dict(state, weights);

    // The file holds what PyTorch drew: every parameter's sample equals the fixture's bit for bit.
    const io::StateDict saved = io::load_state_dict(weights);
    int64_t parameters = 0;
    for (const std::string& key : fixture.names()) {
        if (key.rfind("init.", 0) != 0) continue;
        const std::string name = key.substr(5);
        INFO(name << " must equal tools/fixtures/philox.py's draw (batch norms: the formula)");
        const std::vector<float> theirs = fixture.get<float>(key).values();
        if (name.find("conv_layer.1.") == 0 || name.find("conv_layer.7.") == 0 || name.find("conv_layer.14.") == 0) {
            CHECK(theirs == std::vector<float>(theirs.size(), name.back() == 't' ? 1.0f : 0.0f));  // PyTorch's init
        } else {
            CHECK(sample(saved.f32(name), sample_size) == theirs);
        }
        ++parameters;
    }
    CHECK(parameters == 24);  // weight and bias of 6 convolutions, 3 linear layers and 3 batch norms

    test::write_cifar10_folder(dir.path(), images.values(), labels.values());
    const test::Outcome run = test::run_program(
        CUDACNN_EVAL_BINARY,
        fmt::format("--weights {} --model cifar_cnn --dataset cifar10 --data {} --device cpu --logits {}", weights,
                    dir.path(), dir.file("logits.csv")),
        dir.path());
    INFO(run.output);
    REQUIRE(run.exit_code == 0);
    const std::vector<test::CsvRow> rows = test::read_logits_csv(dir.file("logits.csv"));
    REQUIRE(static_cast<int64_t>(rows.size()) == n);
    std::vector<int64_t> predictions;
    for (int64_t i = 0; i < n; ++i) {
        REQUIRE(static_cast<int64_t>(rows[i].logits.size()) == classes);
        double scale = 0.0;
        for (int64_t c = 0; c < classes; ++c) scale = std::max(scale, std::abs(expected[i * classes + c]));
        int64_t ours = 0, theirs = 0;
        for (int64_t c = 0; c < classes; ++c) {
            // Our float32 forward against PyTorch's float64 one: float32 sums over fan-ins up to 4,096 are off by
            // about sqrt(4096) · 2^-24 ≈ 4e-6 relative; PyTorch's own float32 run is off by torch_f32_error
            // (1.9e-6 of the largest logit). 2e-5 of the largest logit allows 10 times that and is still 100 times
            // below the smallest gap between an image's top two logits (7.9e-4, 2e-3 of the largest), so the
            // check would catch a wrong layer while the argmax below cannot flip by rounding.
            INFO("image " << i << " class " << c << ", PyTorch float32's error "
                          << fixture.get<double>("torch_f32_error")[0]);
            CHECK(std::abs(rows[i].logits[c] - expected[i * classes + c]) <= 2e-5 * scale);
            if (rows[i].logits[c] > rows[i].logits[ours]) ours = c;
            if (expected[i * classes + c] > expected[i * classes + theirs]) theirs = c;
        }
        CHECK(ours == theirs);
        predictions.push_back(theirs);
    }
    // The images are told apart (not one bias-dominated answer): the predictions differ.
    CHECK(std::count(predictions.begin(), predictions.end(), predictions[0]) < n);
}
