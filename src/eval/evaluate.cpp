// Evaluating a dataset and predicting image files (see evaluate.hpp).
#include "cudacnn/eval/evaluate.hpp"

#include <algorithm>
#include <cmath>
#include <fstream>
#include <numeric>

#include <fmt/format.h>

#include "cudacnn/data/image.hpp"
#include "cudacnn/error.hpp"

namespace cudacnn::eval {
namespace {

using Counts = std::vector<std::vector<int64_t>>;

// Adds each image's prediction to `confusion`; returns how many were right.
int64_t count_predictions(const HostTensor<float>& logits, const std::vector<int64_t>& labels, Counts& confusion) {
    const int64_t classes = logits.dim(1);
    int64_t correct = 0;
    for (int64_t n = 0; n < logits.dim(0); ++n) {
        const int64_t predicted = argmax(logits.data() + n * classes, classes);
        confusion[labels[n]][predicted] += 1;
        correct += predicted == labels[n] ? 1 : 0;
    }
    return correct;
}

double mean_cross_entropy(const HostTensor<float>& logits, const std::vector<int64_t>& labels) {
    const int64_t classes = logits.dim(1);
    double total = 0.0;
    for (int64_t n = 0; n < logits.dim(0); ++n)
        total -= std::log(softmax(logits.data() + n * classes, classes)[labels[n]]);
    return logits.dim(0) > 0 ? total / static_cast<double>(logits.dim(0)) : 0.0;
}

}  // namespace

DatasetResult evaluate_dataset(Session& session, const data::Dataset& dataset, const Tta& tta,
                               std::optional<double> fgsm_eps) {
    const int64_t classes = session.graph().spec.num_classes;
    const std::vector<float> pixels = to_unit_pixels(dataset.images.data(), dataset.size(), dataset.image_bytes());
    DatasetResult result;
    result.labels = dataset.labels;
    result.logits = session.logits(pixels.data(), dataset.size(), tta);
    result.confusion.assign(static_cast<std::size_t>(classes), std::vector<int64_t>(static_cast<std::size_t>(classes), 0));
    result.correct = count_predictions(result.logits, result.labels, result.confusion);
    result.loss = mean_cross_entropy(result.logits, result.labels);
    if (fgsm_eps) {
        result.fgsm_eps = fgsm_eps;
        const std::vector<float> attacked = session.fgsm(pixels.data(), dataset.labels.data(), dataset.size(), *fgsm_eps);
        const HostTensor<float> logits = session.logits(attacked.data(), dataset.size(), tta);
        result.fgsm_confusion.assign(result.confusion.size(), std::vector<int64_t>(result.confusion.size(), 0));
        result.fgsm_correct = count_predictions(logits, result.labels, result.fgsm_confusion);
    }
    return result;
}

std::vector<Prediction> predict_images(Session& session, const std::vector<std::string>& paths, int64_t top_k,
                                       const Tta& tta) {
    const Shape& input = session.input_shape();
    const int64_t classes = session.graph().spec.num_classes;
    std::vector<Prediction> predictions;
    std::vector<uint8_t> images;
    for (const std::string& path : paths) {
        const data::Image image = data::read_image(path);
        predictions.push_back({path, image.height, image.width, {}});
        const data::Image fitted = session.preprocessing().apply(image);
        images.insert(images.end(), fitted.pixels.begin(), fitted.pixels.end());
    }
    const auto count = static_cast<int64_t>(paths.size());
    const std::vector<float> pixels = to_unit_pixels(images.data(), count, input.numel());
    const HostTensor<float> logits = session.logits(pixels.data(), count, tta);
    for (int64_t n = 0; n < count; ++n) {
        const std::vector<double> p = softmax(logits.data() + n * classes, classes);
        std::vector<int64_t> order(static_cast<std::size_t>(classes));
        std::iota(order.begin(), order.end(), 0);
        std::stable_sort(order.begin(), order.end(), [&](int64_t a, int64_t b) { return p[a] > p[b]; });
        for (int64_t k = 0; k < std::min(top_k, classes); ++k) predictions[n].top.emplace_back(order[k], p[order[k]]);
    }
    return predictions;
}

std::string format_result(const DatasetResult& r, const std::vector<std::string>& names) {
    std::string text = fmt::format("Test accuracy: {:.3f}% ({}/{}) | Loss: {:.4f}\n", r.accuracy_percent(), r.correct,
                                   r.size(), r.loss);
    std::size_t width = 5;
    for (const std::string& name : names) width = std::max(width, name.size());
    text += "Per-class accuracy:\n";
    for (std::size_t c = 0; c < r.confusion.size(); ++c) {
        const int64_t total = std::accumulate(r.confusion[c].begin(), r.confusion[c].end(), int64_t{0});
        const std::string percent = total > 0 ? fmt::format("{:7.3f}%", 100.0 * r.confusion[c][c] / total) : "     -  ";
        text += fmt::format("  {:>{}} {} ({}/{})\n", names[c], width, percent, r.confusion[c][c], total);
    }
    return text;
}

void write_logits_csv(const DatasetResult& r, const std::vector<std::string>& names, const std::string& path) {
    std::ofstream file(path, std::ios::trunc);
    CUDACNN_CHECK(file.good(), "--logits {}: cannot create the file; check that its folder exists and is writable", path);
    file << "index,label";
    for (const std::string& name : names) file << "," << name;
    file << "\n";
    const int64_t classes = r.logits.dim(1);
    for (int64_t n = 0; n < r.size(); ++n) {
        std::string row = fmt::format("{},{}", n, r.labels[n]);
        for (int64_t c = 0; c < classes; ++c) row += fmt::format(",{:.9g}", r.logits[n * classes + c]);
        file << row << "\n";
    }
    file.close();
    CUDACNN_CHECK(file.good(), "--logits {}: writing failed (disk full?)", path);
}

}  // namespace cudacnn::eval
