// cudacnn-eval --predict on a torchvision architecture end to end: resnet18 at its real size with the formula
// weights of tests/support/formula_weights.hpp, on two JPEG files, against torchvision's resnet18 with the same
// weights on its weights.transforms() of the same files (tools/fixtures/imagenet_preprocess.py): the file's
// decoding, ImageNet's preprocessing, the forward pass and ImageNet's class names together.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <numeric>

#include <fmt/format.h>

#include "cudacnn/eval/evaluate.hpp"
#include "cudacnn/eval/preprocess.hpp"
#include "cudacnn/eval/session.hpp"
#include "cudacnn/graph/model.hpp"
#include "cudacnn/io/state_dict.hpp"
#include "cudacnn/safetensors.hpp"
#include "support/formula_weights.hpp"
#include "support/programs.hpp"
#include "support/temp_files.hpp"

using namespace cudacnn;

namespace {

const std::string kFixtures = CUDACNN_FIXTURES_DIR;
const std::vector<std::string> kFiles = {kFixtures + "/imagenet_sample.jpg", kFixtures + "/imagenet_sample_portrait.jpg"};

// torchvision's log-softmax of one fixture row, in double.
std::vector<double> log_softmax(const float* logits, int64_t classes) {
    const double top = *std::max_element(logits, logits + classes);
    double total = 0.0;
    for (int64_t c = 0; c < classes; ++c) total += std::exp(static_cast<double>(logits[c]) - top);
    std::vector<double> out(static_cast<std::size_t>(classes));
    for (int64_t c = 0; c < classes; ++c) out[c] = static_cast<double>(logits[c]) - top - std::log(total);
    return out;
}

// The "k. NAME P%" entries of the output line that starts with `head`.
std::vector<std::pair<std::string, double>> top_entries(const std::string& output, const std::string& head) {
    const std::size_t at = output.find(head);
    if (at == std::string::npos) return {};
    const std::string line = output.substr(at + head.size(), output.find('\n', at) - at - head.size());
    std::vector<std::pair<std::string, double>> entries;
    for (std::size_t begin = 0; begin < line.size();) {
        std::size_t end = line.find(" | ", begin);
        if (end == std::string::npos) end = line.size();
        const std::string entry = line.substr(begin, end - begin);  // " 1. Sealyham terrier 99.99%"
        const std::size_t name = entry.find(". ") + 2, percent = entry.rfind(' ');
        entries.emplace_back(entry.substr(name, percent - name), std::stod(entry.substr(percent + 1)));
        begin = end + 3;
    }
    return entries;
}

}  // namespace

TEST_CASE("resnet18 predictions of JPEG files: torchvision's log-probabilities and ImageNet's names", "[eval][imagenet]") {
    const HostTensor<float> expected = SafetensorsFile::read(kFixtures + "/imagenet_preprocess.safetensors")
                                           .get<float>("resnet18_logits");  // (2, 1000)
    const int64_t classes = 1000;
    eval::LoadedModel model;
    model.spec = graph::builtin_model("resnet18");
    model.state = test::formula::state_dict(graph::build_graph(model.spec));
    model.source = "formula weights";
    const test::TempDir dir;
    const std::string weights = dir.file("resnet18.safetensors");
    io::save_state_dict(model.state, weights, io::FloatStorage::f32, {{"model", "resnet18"}});

    SECTION("every class's log-probability (predict_images, the library path)") {
        eval::SessionOptions options;
        options.batch_size = 2;
        eval::Session session(std::move(model), options);
        const std::vector<eval::Prediction> predictions = eval::predict_images(session, kFiles, classes, {});
        REQUIRE(predictions.size() == 2);
        for (int64_t n = 0; n < 2; ++n) {
            const std::vector<double> theirs = log_softmax(expected.data() + n * classes, classes);
            double worst = 0.0;
            for (const auto& [c, p] : predictions[n].top) worst = std::max(worst, std::abs(std::log(p) - theirs[c]));
            // The logits reach |186| here, so float32 sums (up to 512 · 9 terms a layer) move the log-probabilities
            // by about 1e-4 of that (0.011 measured on the portrait file, whose input is torchvision's bit for bit);
            // the landscape file's few pixels one 1/255 step from PIL's resize add as much (0.021 measured).
            INFO(fmt::format("{}: max |log p - torchvision's| {:.5f}", kFiles[n], worst));
            CHECK(worst <= 0.05);
            CHECK(predictions[n].top.front().first == std::max_element(theirs.begin(), theirs.end()) - theirs.begin());
        }
    }
    SECTION("cudacnn-eval --weights FILE --predict: the model from the file's metadata, top 5 with ImageNet's names") {
        const test::Outcome run = test::run_program(
            CUDACNN_EVAL_BINARY, fmt::format("--weights {} --predict {} {} --device cpu", weights, kFiles[0], kFiles[1]),
            dir.path());
        INFO(run.output);
        REQUIRE(run.exit_code == 0);
        CHECK_THAT(run.output, Catch::Contains("model: resnet18 (11689512 parameters)") &&
                                   Catch::Contains("preprocessing: Resize(256) (bilinear) + CenterCrop(224)"));
        const std::vector<std::string>& names = eval::imagenet_class_names();
        const char* sizes[2] = {"(553x405)", "(131x190)"};
        for (int64_t n = 0; n < 2; ++n) {
            INFO(kFiles[n]);
            const std::vector<double> theirs = log_softmax(expected.data() + n * classes, classes);
            std::vector<int64_t> order(classes);
            std::iota(order.begin(), order.end(), 0);
            std::stable_sort(order.begin(), order.end(), [&](int64_t a, int64_t b) { return theirs[a] > theirs[b]; });
            const std::vector<std::pair<std::string, double>> shown = top_entries(run.output, kFiles[n] + " " + sizes[n] + ":");
            REQUIRE(shown.size() == 5);
            for (std::size_t k = 0; k < shown.size(); ++k) {
                INFO(fmt::format("{}. {} {:.2f}%", k + 1, shown[k].first, shown[k].second));
                const auto found = std::find(names.begin(), names.end(), shown[k].first);
                REQUIRE(found != names.end());
                const auto c = static_cast<int64_t>(found - names.begin());
                // torchvision's rank, up to classes within the tolerance of each other (a few of the top 5 are
                // 0.02 apart in log-probability), and its probability as printed.
                CHECK(theirs[c] >= theirs[order[k]] - 0.05);
                CHECK(std::abs(shown[k].second - 100.0 * std::exp(theirs[c])) <= 0.005 + 100.0 * std::exp(theirs[c]) * 0.06);
                if (k == 0) CHECK(c == order[0]);
            }
        }
    }
}
