// The confusion matrix of a test pass (see confusion.hpp).
#include "src/train/confusion.hpp"

#include <algorithm>
#include <cmath>
#include <numeric>

#include <fmt/format.h>

namespace cudacnn::train {

void Confusion::add(const HostTensor<float>& logits, const int64_t* labels) {
    const int64_t classes = logits.dim(1);
    for (int64_t n = 0; n < logits.dim(0); ++n) {
        const float* row = logits.data() + n * classes;
        // torch.argmax: the first of equal maxima, and a NaN ranks above every number (as the accuracy counts).
        int64_t predicted = 0;
        for (int64_t c = 1; c < classes; ++c) {
            if (std::isnan(row[predicted])) break;
            if (std::isnan(row[c]) || row[c] > row[predicted]) predicted = c;
        }
        counts_[labels[n]][predicted] += 1;
    }
}

void Confusion::reset() {
    for (auto& row : counts_) std::fill(row.begin(), row.end(), 0);
}

std::string Confusion::format(const std::vector<std::string>& class_names) const {
    const auto classes = static_cast<int64_t>(counts_.size());
    auto name = [&](int64_t c) { return c < static_cast<int64_t>(class_names.size()) ? class_names[c] : std::to_string(c); };
    auto row_total = [&](int64_t c) { return std::accumulate(counts_[c].begin(), counts_[c].end(), int64_t{0}); };
    auto class_accuracy = [&](int64_t c) {
        const int64_t total = row_total(c);
        return total > 0 ? 100.0 * counts_[c][c] / total : 0.0;
    };
    std::string text = "Confusion matrix on the test set (rows: true class, columns: predicted):\n";
    if (classes <= 20) {
        std::size_t width = 5;
        for (int64_t c = 0; c < classes; ++c) width = std::max(width, name(c).size());
        text += fmt::format("{:>{}}", "", width);
        for (int64_t c = 0; c < classes; ++c) text += fmt::format(" {:>5}", c);
        text += "  accuracy\n";
        for (int64_t t = 0; t < classes; ++t) {
            text += fmt::format("{:>{}}", name(t), width);
            for (int64_t p = 0; p < classes; ++p) text += fmt::format(" {:>5}", counts_[t][p]);
            text += fmt::format("  {:7.3f}%\n", class_accuracy(t));
        }
        return text;
    }
    std::vector<int64_t> order(static_cast<std::size_t>(classes));
    std::iota(order.begin(), order.end(), 0);
    std::sort(order.begin(), order.end(), [&](int64_t a, int64_t b) { return class_accuracy(a) < class_accuracy(b); });
    text = fmt::format("{} classes; the five with the lowest test accuracy:\n", classes);
    for (int64_t i = 0; i < std::min<int64_t>(5, classes); ++i) {
        text += fmt::format("  {:>20} {:7.3f}%\n", name(order[i]), class_accuracy(order[i]));
    }
    return text;
}

}  // namespace cudacnn::train
