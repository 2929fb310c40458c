// CPU reference of softmax, log-softmax, cross-entropy and accuracy: the spec that the loss kernels match.
#include "cudacnn/ops/loss.hpp"

#include <cmath>
#include <cstdint>
#include <vector>

#include "cudacnn/error.hpp"

namespace cudacnn::cpu {
namespace {

// All arithmetic runs in double and is rounded to T once, so the float reference is as accurate as float
// can be (PyTorch's float kernels accumulate in float) and parity tests measure only the kernel's error.
using Acc = double;

const char* reduction_name(Reduction reduction) {
    switch (reduction) {
        case Reduction::none:
            return "none";
        case Reduction::mean:
            return "mean";
        case Reduction::sum:
            return "sum";
    }
    return "invalid";
}

template <class T>
void check_logits(const char* op, const char* name, const HostTensor<T>& x) {
    CUDACNN_CHECK(x.shape().rank() == 2, "{}: {} has shape {}; it must be (N, C)", op, name, x.shape());
    CUDACNN_CHECK(x.dim(0) > 0 && x.dim(1) > 0, "{}: {} has shape {}; N and C must be positive", op, name,
                  x.shape());
}

template <class T>
void check_same_shape(const char* op, const HostTensor<T>& y, const HostTensor<T>& dy) {
    check_logits(op, "y", y);
    CUDACNN_CHECK(dy.shape() == y.shape(), "{}: dy has shape {} but y has shape {}; they must match", op,
                  dy.shape(), y.shape());
}

template <class T>
void check_labels_shape(const char* op, const HostTensor<T>& logits, const HostTensor<int64_t>& labels) {
    CUDACNN_CHECK(labels.shape() == Shape({logits.dim(0)}),
                  "{}: labels have shape {} but logits {} need one label per sample: ({})", op,
                  labels.shape(), logits.shape(), logits.dim(0));
}

// The row maximum; NaN if the row holds one (then every output of the row is NaN, as in PyTorch).
template <class T>
Acc row_max(const T* x, int64_t classes) {
    Acc m = static_cast<Acc>(x[0]);
    for (int64_t c = 1; c < classes; ++c) {
        const Acc v = static_cast<Acc>(x[c]);
        if (v > m || std::isnan(v)) m = v;
        if (std::isnan(m)) break;
    }
    return m;
}

// log_softmax of one row of C logits into out (double): x − max − log Σ exp(x − max). After subtracting the
// max every exponent is ≤ 0 and the largest term is exactly 1, so the sum neither overflows nor underflows.
template <class T>
void log_softmax_row(const T* x, int64_t classes, Acc* out) {
    const Acc m = row_max(x, classes);
    Acc sum = 0;
    for (int64_t c = 0; c < classes; ++c) sum += std::exp(static_cast<Acc>(x[c]) - m);
    const Acc log_sum = std::log(sum);
    for (int64_t c = 0; c < classes; ++c) out[c] = static_cast<Acc>(x[c]) - m - log_sum;
}

template <class T>
void check_cross_entropy_args(const char* op, const HostTensor<T>& logits, const HostTensor<int64_t>& labels,
                              const CrossEntropyOptions<T>& options) {
    check_logits(op, "logits", logits);
    check_labels_shape(op, logits, labels);
    const int64_t classes = logits.dim(1);
    CUDACNN_CHECK(options.reduction == Reduction::none || options.reduction == Reduction::mean ||
                      options.reduction == Reduction::sum,
                  "{}: reduction has the invalid value {}; use Reduction::none, mean or sum", op,
                  static_cast<int>(options.reduction));
    CUDACNN_CHECK(options.label_smoothing >= 0.0 && options.label_smoothing <= 1.0,
                  "{}: label_smoothing {} is outside [0, 1]", op, options.label_smoothing);
    if (options.weight != nullptr) {
        CUDACNN_CHECK(options.weight->shape() == Shape({classes}),
                      "{}: weight has shape {}; it must hold one weight per class: ({}) for logits {}", op,
                      options.weight->shape(), classes, logits.shape());
    }
    for (int64_t n = 0; n < labels.numel(); ++n) {
        const int64_t label = labels[n];
        CUDACNN_CHECK(
            label == options.ignore_index || (label >= 0 && label < classes),
            "{}: label {} of sample {} is outside [0, {}) (C of logits {}) and is not ignore_index {}", op,
            label, n, classes, logits.shape(), options.ignore_index);
    }
}

template <class T>
Acc class_weight(const CrossEntropyOptions<T>& options, int64_t c) {
    return options.weight != nullptr ? static_cast<Acc>((*options.weight)[c]) : Acc(1);
}

// Σ w[label] over the samples that are not ignored: what 'mean' divides by.
template <class T>
Acc mean_denominator(const HostTensor<int64_t>& labels, const CrossEntropyOptions<T>& options) {
    Acc total = 0;
    for (int64_t n = 0; n < labels.numel(); ++n) {
        if (labels[n] != options.ignore_index) total += class_weight(options, labels[n]);
    }
    return total;
}

// True when logits[c] ranks above logits[label] (see loss.hpp): greater, or equal and earlier; NaN counts
// as greater than every number and equal to NaN.
template <class T>
bool ranks_above(const T* row, int64_t c, int64_t label) {
    const T a = row[c], b = row[label];
    if (std::isnan(a) || std::isnan(b)) {
        if (std::isnan(a) && std::isnan(b)) return c < label;
        return std::isnan(a);
    }
    return a > b || (a == b && c < label);
}

}  // namespace

template <class T>
HostTensor<T> softmax(const HostTensor<T>& x) {
    check_logits("softmax", "x", x);
    const int64_t rows = x.dim(0), classes = x.dim(1);
    HostTensor<T> y(x.shape());  // (N, C)
    for (int64_t n = 0; n < rows; ++n) {
        const T* row = x.data() + n * classes;
        const Acc m = row_max(row, classes);
        std::vector<Acc> e(static_cast<size_t>(classes));
        Acc sum = 0;
        for (int64_t c = 0; c < classes; ++c) {
            e[c] = std::exp(static_cast<Acc>(row[c]) - m);  // ≤ 1, and exactly 1 at the maximum
            sum += e[c];
        }
        for (int64_t c = 0; c < classes; ++c) y[n * classes + c] = static_cast<T>(e[c] / sum);
    }
    return y;
}

template <class T>
HostTensor<T> log_softmax(const HostTensor<T>& x) {
    check_logits("log_softmax", "x", x);
    const int64_t rows = x.dim(0), classes = x.dim(1);
    HostTensor<T> y(x.shape());  // (N, C)
    std::vector<Acc> out(static_cast<size_t>(classes));
    for (int64_t n = 0; n < rows; ++n) {
        log_softmax_row(x.data() + n * classes, classes, out.data());
        for (int64_t c = 0; c < classes; ++c) y[n * classes + c] = static_cast<T>(out[c]);
    }
    return y;
}

template <class T>
SoftmaxGrads<T> softmax_backward(const HostTensor<T>& y, const HostTensor<T>& dy) {
    check_same_shape("softmax_backward", y, dy);
    const int64_t rows = y.dim(0), classes = y.dim(1);
    SoftmaxGrads<T> grads{HostTensor<T>(y.shape())};  // (N, C)
    for (int64_t n = 0; n < rows; ++n) {
        const int64_t base = n * classes;
        Acc dot = 0;  // Σ_c dy ⊙ y: the part of dy along the row's sum-to-one constraint
        for (int64_t c = 0; c < classes; ++c) {
            dot += static_cast<Acc>(dy[base + c]) * static_cast<Acc>(y[base + c]);
        }
        for (int64_t c = 0; c < classes; ++c) {
            grads.dx[base + c] =
                static_cast<T>(static_cast<Acc>(y[base + c]) * (static_cast<Acc>(dy[base + c]) - dot));
        }
    }
    return grads;
}

template <class T>
SoftmaxGrads<T> log_softmax_backward(const HostTensor<T>& y, const HostTensor<T>& dy) {
    check_same_shape("log_softmax_backward", y, dy);
    const int64_t rows = y.dim(0), classes = y.dim(1);
    SoftmaxGrads<T> grads{HostTensor<T>(y.shape())};  // (N, C)
    for (int64_t n = 0; n < rows; ++n) {
        const int64_t base = n * classes;
        Acc sum = 0;
        for (int64_t c = 0; c < classes; ++c) sum += static_cast<Acc>(dy[base + c]);
        for (int64_t c = 0; c < classes; ++c) {
            grads.dx[base + c] = static_cast<T>(static_cast<Acc>(dy[base + c]) -
                                                std::exp(static_cast<Acc>(y[base + c])) * sum);
        }
    }
    return grads;
}

template <class T>
HostTensor<T> cross_entropy(const HostTensor<T>& logits, const HostTensor<int64_t>& labels,
                            const CrossEntropyOptions<T>& options) {
    check_cross_entropy_args("cross_entropy", logits, labels, options);
    const int64_t rows = logits.dim(0), classes = logits.dim(1);
    const Acc eps = options.label_smoothing;
    std::vector<Acc> log_p(static_cast<size_t>(classes));
    std::vector<Acc> per_sample(static_cast<size_t>(rows), 0.0);  // loss_n; 0 for ignored samples
    for (int64_t n = 0; n < rows; ++n) {
        const int64_t label = labels[n];
        if (label == options.ignore_index) continue;
        log_softmax_row(logits.data() + n * classes, classes, log_p.data());
        Acc loss = (1 - eps) * class_weight(options, label) * -log_p[label];
        // Skipped when ε = 0 (as PyTorch does) so that a −inf logit does not turn 0 · inf into NaN.
        if (eps != 0) {
            Acc smooth = 0;
            for (int64_t c = 0; c < classes; ++c) smooth += class_weight(options, c) * -log_p[c];
            loss += eps / static_cast<Acc>(classes) * smooth;
        }
        per_sample[n] = loss;
    }

    if (options.reduction == Reduction::none) {
        HostTensor<T> out(Shape{rows});  // (N)
        for (int64_t n = 0; n < rows; ++n) out[n] = static_cast<T>(per_sample[n]);
        return out;
    }
    Acc total = 0;
    for (Acc v : per_sample) total += v;
    if (options.reduction == Reduction::mean)
        total /= mean_denominator(labels, options);                        // 0/0 = NaN if all ignored
    return HostTensor<T>(Shape{}, std::vector<T>{static_cast<T>(total)});  // ()
}

template <class T>
CrossEntropyGrads<T> cross_entropy_backward(const HostTensor<T>& logits, const HostTensor<int64_t>& labels,
                                            const HostTensor<T>& dloss,
                                            const CrossEntropyOptions<T>& options) {
    check_cross_entropy_args("cross_entropy_backward", logits, labels, options);
    const int64_t rows = logits.dim(0), classes = logits.dim(1);
    const Shape loss_shape = options.reduction == Reduction::none ? Shape({rows}) : Shape{};
    CUDACNN_CHECK(dloss.shape() == loss_shape,
                  "cross_entropy_backward: dloss has shape {}; reduction '{}' with logits {} needs {}",
                  dloss.shape(), reduction_name(options.reduction), logits.shape(), loss_shape);

    const Acc eps = options.label_smoothing;
    Acc weight_sum = 0;  // W = Σ_c w[c]
    for (int64_t c = 0; c < classes; ++c) weight_sum += class_weight(options, c);
    const Acc denominator = options.reduction == Reduction::mean ? mean_denominator(labels, options) : Acc(1);

    CrossEntropyGrads<T> grads{HostTensor<T>(logits.shape(), T(0))};  // (N, C); ignored rows stay 0
    std::vector<Acc> log_p(static_cast<size_t>(classes));
    for (int64_t n = 0; n < rows; ++n) {
        const int64_t label = labels[n];
        if (label == options.ignore_index) continue;
        const Acc upstream =
            (options.reduction == Reduction::none ? static_cast<Acc>(dloss[n]) : static_cast<Acc>(dloss[0])) /
            denominator;
        log_softmax_row(logits.data() + n * classes, classes, log_p.data());
        const Acc w_label = class_weight(options, label);
        for (int64_t c = 0; c < classes; ++c) {
            // d(−log p[k]) / d logit[c] = p[c] − [c = k], so
            //   d loss_n / d logit[c] = (1 − ε) · w[y] · (p[c] − [c = y]) + (ε / C) · (W · p[c] − w[c]).
            const Acc p = std::exp(log_p[c]);
            Acc g = (1 - eps) * w_label * (p - (c == label ? 1 : 0));
            if (eps != 0) g += eps / static_cast<Acc>(classes) * (weight_sum * p - class_weight(options, c));
            grads.dlogits[n * classes + c] = static_cast<T>(upstream * g);
        }
    }
    return grads;
}

template <class T>
int64_t top_k_correct(const HostTensor<T>& logits, const HostTensor<int64_t>& labels, int64_t k) {
    check_logits("top_k_accuracy", "logits", logits);
    check_labels_shape("top_k_accuracy", logits, labels);
    const int64_t rows = logits.dim(0), classes = logits.dim(1);
    CUDACNN_CHECK(k >= 1 && k <= classes, "top_k_accuracy: k {} is outside [1, C] = [1, {}] for logits {}", k,
                  classes, logits.shape());
    int64_t correct = 0;
    for (int64_t n = 0; n < rows; ++n) {
        const int64_t label = labels[n];
        CUDACNN_CHECK(label >= 0 && label < classes,
                      "top_k_accuracy: label {} of sample {} is outside [0, {}) (C of logits {})", label, n,
                      classes, logits.shape());
        const T* row = logits.data() + n * classes;
        int64_t above = 0;  // classes ranked above the label
        for (int64_t c = 0; c < classes; ++c) above += ranks_above(row, c, label) ? 1 : 0;
        if (above < k) ++correct;
    }
    return correct;
}

template <class T>
double top_k_accuracy(const HostTensor<T>& logits, const HostTensor<int64_t>& labels, int64_t k) {
    const int64_t correct = top_k_correct(logits, labels, k);
    return static_cast<double>(correct) / static_cast<double>(logits.dim(0));
}

template <class T>
double accuracy(const HostTensor<T>& logits, const HostTensor<int64_t>& labels) {
    return top_k_accuracy(logits, labels, 1);
}

#define CUDACNN_INSTANTIATE_LOSS(T)                                                                        \
    template HostTensor<T> softmax(const HostTensor<T>&);                                                  \
    template HostTensor<T> log_softmax(const HostTensor<T>&);                                              \
    template SoftmaxGrads<T> softmax_backward(const HostTensor<T>&, const HostTensor<T>&);                 \
    template SoftmaxGrads<T> log_softmax_backward(const HostTensor<T>&, const HostTensor<T>&);             \
    template HostTensor<T> cross_entropy(const HostTensor<T>&, const HostTensor<int64_t>&,                 \
                                         const CrossEntropyOptions<T>&);                                   \
    template CrossEntropyGrads<T> cross_entropy_backward(const HostTensor<T>&, const HostTensor<int64_t>&, \
                                                         const HostTensor<T>&,                             \
                                                         const CrossEntropyOptions<T>&);                   \
    template int64_t top_k_correct(const HostTensor<T>&, const HostTensor<int64_t>&, int64_t);             \
    template double top_k_accuracy(const HostTensor<T>&, const HostTensor<int64_t>&, int64_t);             \
    template double accuracy(const HostTensor<T>&, const HostTensor<int64_t>&);

CUDACNN_INSTANTIATE_LOSS(float)
CUDACNN_INSTANTIATE_LOSS(double)
#undef CUDACNN_INSTANTIATE_LOSS

}  // namespace cudacnn::cpu
