// The fast CPU path's cross-entropy and top-1 count: the reference's double arithmetic per row, rows in fixed
// blocks as work items, and the per-sample losses summed in row order afterwards.
#include "src/cpu_fast/loss.hpp"

#include <atomic>
#include <cmath>

#include "cudacnn/error.hpp"
#include "cudacnn/tensor.hpp"

namespace cudacnn::cpu_fast {
namespace {

// PyTorch's default ignore_index, which cpu::CrossEntropyOptions keeps.
constexpr int64_t kIgnoreIndex = -100;
// Rows per work item: a CifarCNN batch of 128 rows × 10 classes makes a handful of items.
constexpr int64_t kRowsPerItem = 32;

void check_sizes(const char* op, int64_t rows, int64_t classes, double label_smoothing) {
    CUDACNN_CHECK(rows >= 1 && classes >= 1, "{}: logits has shape {}; N and C must be positive", op,
                  Shape{rows, classes});
    CUDACNN_CHECK(label_smoothing >= 0.0 && label_smoothing <= 1.0, "{}: label_smoothing {} is outside [0, 1]", op,
                  label_smoothing);
}

// The reference's label check (cpu::cross_entropy), before anything runs in parallel.
void check_labels(const char* op, const int64_t* labels, int64_t rows, int64_t classes) {
    for (int64_t n = 0; n < rows; ++n) {
        const int64_t label = labels[n];
        CUDACNN_CHECK(label == kIgnoreIndex || (label >= 0 && label < classes),
                      "{}: label {} of sample {} is outside [0, {}) (C of logits {}) and is not ignore_index {}", op,
                      label, n, classes, Shape{rows, classes}, kIgnoreIndex);
    }
}

// The row maximum in double; NaN if the row holds one (the reference's row_max).
double row_max(const float* x, int64_t classes) {
    double m = static_cast<double>(x[0]);
    for (int64_t c = 1; c < classes; ++c) {
        const double v = static_cast<double>(x[c]);
        if (v > m || std::isnan(v)) m = v;
        if (std::isnan(m)) break;
    }
    return m;
}

// A row's log-softmax as the reference computes it: log_p[c] = x[c] − max − log Σ exp(x − max), from these
// two numbers.
struct RowLogSoftmax {
    double max = 0, log_sum = 0;
    double at(const float* x, int64_t c) const { return static_cast<double>(x[c]) - max - log_sum; }
};

RowLogSoftmax row_log_softmax(const float* x, int64_t classes) {
    RowLogSoftmax r;
    r.max = row_max(x, classes);
    double sum = 0;
    for (int64_t c = 0; c < classes; ++c) sum += std::exp(static_cast<double>(x[c]) - r.max);
    r.log_sum = std::log(sum);
    return r;
}

// Σ 1 over the samples that are not ignored: what 'mean' divides by (exact in double).
double mean_denominator(const int64_t* labels, int64_t rows) {
    double total = 0;
    for (int64_t n = 0; n < rows; ++n) {
        if (labels[n] != kIgnoreIndex) total += 1.0;
    }
    return total;
}

// True when row[c] ranks above row[label]: greater, or equal and earlier; NaN above every number (the
// reference's ranks_above).
bool ranks_above(const float* row, int64_t c, int64_t label) {
    const float a = row[c], b = row[label];
    if (std::isnan(a) || std::isnan(b)) {
        if (std::isnan(a) && std::isnan(b)) return c < label;
        return std::isnan(a);
    }
    return a > b || (a == b && c < label);
}

}  // namespace

std::size_t cross_entropy_workspace_bytes(int64_t rows) {
    return static_cast<std::size_t>(rows > 0 ? rows : 0) * sizeof(double);
}

void cross_entropy_forward(const float* logits, const int64_t* labels, int64_t rows, int64_t classes,
                           double label_smoothing, float* loss, void* workspace, std::size_t workspace_bytes,
                           const Workers& workers) {
    const char* op = "cross_entropy";
    check_sizes(op, rows, classes, label_smoothing);
    CUDACNN_CHECK(workspace != nullptr && workspace_bytes >= cross_entropy_workspace_bytes(rows),
                  "{}: the workspace has {} bytes but {} rows need {}; size it with "
                  "cpu_fast::cross_entropy_workspace_bytes",
                  op, workspace_bytes, rows, cross_entropy_workspace_bytes(rows));
    check_labels(op, labels, rows, classes);
    const double eps = label_smoothing;
    double* per_sample = static_cast<double*>(workspace);  // loss_n; 0 for ignored samples
    parallel_ranges(workers, rows, kRowsPerItem, [&](int64_t begin, int64_t end) {
        for (int64_t n = begin; n < end; ++n) {
            per_sample[n] = 0.0;
            const int64_t label = labels[n];
            if (label == kIgnoreIndex) continue;
            const float* x = logits + n * classes;
            const RowLogSoftmax r = row_log_softmax(x, classes);
            double sample = (1 - eps) * -r.at(x, label);
            // Skipped when ε = 0 (as the reference) so that a −inf logit does not turn 0 · inf into NaN.
            if (eps != 0) {
                double smooth = 0;
                for (int64_t c = 0; c < classes; ++c) smooth += -r.at(x, c);
                sample += eps / static_cast<double>(classes) * smooth;
            }
            per_sample[n] = sample;
        }
    });
    double total = 0;
    for (int64_t n = 0; n < rows; ++n) total += per_sample[n];
    *loss = static_cast<float>(total / mean_denominator(labels, rows));  // 0/0 = NaN if all ignored
}

void cross_entropy_backward(const float* logits, const int64_t* labels, int64_t rows, int64_t classes,
                            double label_smoothing, float* dlogits, const Workers& workers) {
    const char* op = "cross_entropy_backward";
    check_sizes(op, rows, classes, label_smoothing);
    check_labels(op, labels, rows, classes);
    const double eps = label_smoothing;
    const double weight_sum = static_cast<double>(classes);  // W = Σ_c 1
    const double upstream = 1.0 / mean_denominator(labels, rows);
    parallel_ranges(workers, rows, kRowsPerItem, [&](int64_t begin, int64_t end) {
        for (int64_t n = begin; n < end; ++n) {
            const int64_t label = labels[n];
            float* out = dlogits + n * classes;
            if (label == kIgnoreIndex) {
                for (int64_t c = 0; c < classes; ++c) out[c] = 0.0f;
                continue;
            }
            const float* x = logits + n * classes;
            const RowLogSoftmax r = row_log_softmax(x, classes);
            for (int64_t c = 0; c < classes; ++c) {
                // (1 − ε) · (p[c] − [c = y]) + (ε / C) · (W · p[c] − 1), as the reference with unit weights.
                const double p = std::exp(r.at(x, c));
                double g = (1 - eps) * (p - (c == label ? 1 : 0));
                if (eps != 0) g += eps / static_cast<double>(classes) * (weight_sum * p - 1.0);
                out[c] = static_cast<float>(upstream * g);
            }
        }
    });
}

int64_t top1_correct(const float* logits, const int64_t* labels, int64_t rows, int64_t classes,
                     const Workers& workers) {
    CUDACNN_CHECK(rows >= 1 && classes >= 1, "top_k_accuracy: logits has shape {}; N and C must be positive",
                  Shape{rows, classes});
    for (int64_t n = 0; n < rows; ++n) {
        CUDACNN_CHECK(labels[n] >= 0 && labels[n] < classes,
                      "top_k_accuracy: label {} of sample {} is outside [0, {}) (C of logits {})", labels[n], n,
                      classes, Shape{rows, classes});
    }
    std::atomic<int64_t> correct{0};  // integer sums: the same whatever the order
    parallel_ranges(workers, rows, kRowsPerItem * 8, [&](int64_t begin, int64_t end) {
        int64_t hits = 0;
        for (int64_t n = begin; n < end; ++n) {
            const float* row = logits + n * classes;
            bool first = true;
            for (int64_t c = 0; c < classes && first; ++c) first = !ranks_above(row, c, labels[n]);
            hits += first ? 1 : 0;
        }
        correct.fetch_add(hits, std::memory_order_relaxed);
    });
    return correct.load();
}

}  // namespace cudacnn::cpu_fast
