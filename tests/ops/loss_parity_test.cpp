// Loss kernels against the CPU reference: softmax / log_softmax forward and backward, cross-entropy forward
// and backward with every reduction, label smoothing, class weights and ignore_index, on CifarCNN's (batch,
// 10) and (N, 100) logits, large logits (±1e4) for stability, NaN rows; top-1 / top-k counts exactly, with
// ties and NaN; accumulation on the device; bad arguments.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "cuda/loss.hpp"
#include "cudacnn/ops/loss.hpp"
#include "support/compare.hpp"
#include "support/errors.hpp"
#include "support/parity.hpp"

using namespace cudacnn;
using Catch::Matchers::Contains;
using test::max_relative_error;

namespace {

// Tolerances (max relative error over the tensor; the reference computes in double and rounds once). The
// kernels work in float: a row's Σ exp is ⌈C/32⌉ lane additions plus a 5-step butterfly, so each term sees
// about ⌈C/32⌉ + 5 roundings (9 for C = 100), and expf adds 2 ulp; quotients, logs and the products with
// dy or the weights add a few more. About 16 ulp of the largest value; 2^-19 (32 ulp) leaves margin.
constexpr double kRowReductionTolerance = 32.0 / 16777216.0;
// The scalar loss: per-row losses as above, summed in double (adding nothing measurable), then one rounding.
constexpr double kLossTolerance = kRowReductionTolerance;

// Every call runs on the legacy default stream, which orders copies, fills, kernels and downloads.

HostTensor<int64_t> random_labels(int64_t rows, int64_t classes, uint32_t seed) {
    const HostTensor<float> u = test::random_tensor<float>(Shape{rows}, seed, 0.0, 1.0);
    HostTensor<int64_t> labels(Shape{rows});
    for (int64_t n = 0; n < rows; ++n)
        labels[n] = std::min<int64_t>(classes - 1, static_cast<int64_t>(u[n] * classes));
    return labels;
}

// One cross-entropy configuration: forward and backward against the reference.
struct CeCase {
    int64_t rows, classes;
    cpu::Reduction reduction;
    double smoothing;
    bool weighted;
    bool with_ignored;   // some labels set to ignore_index
    double logit_scale;  // logits uniform in ±scale
};

void check_cross_entropy(const CeCase& c) {
    CAPTURE(c.rows, c.classes, static_cast<int>(c.reduction), c.smoothing, c.weighted, c.with_ignored,
            c.logit_scale);
    const Shape shape{c.rows, c.classes};
    const HostTensor<float> logits = test::random_tensor<float>(shape, 501, -c.logit_scale, c.logit_scale);
    HostTensor<int64_t> labels = random_labels(c.rows, c.classes, 502);
    const HostTensor<float> weight = test::random_tensor<float>(Shape{c.classes}, 503, 0.25, 2.0);
    cpu::CrossEntropyOptions<float> ref_options;
    ref_options.reduction = c.reduction;
    ref_options.label_smoothing = c.smoothing;
    ref_options.weight = c.weighted ? &weight : nullptr;
    if (c.with_ignored) {
        ref_options.ignore_index = 3;  // a valid class index: those labels are ignored, not class 3 scored
        for (int64_t n = 0; n < c.rows; n += 3) labels[n] = 3;
    }

    const DeviceBuffer logits_d = test::to_device(logits), labels_d = test::to_device(labels);
    const DeviceBuffer weight_d = test::to_device(weight);
    gpu::CrossEntropyOptions options;
    options.reduction = c.reduction;
    options.label_smoothing = c.smoothing;
    options.ignore_index = ref_options.ignore_index;
    options.weight = c.weighted ? weight_d.data_as<float>() : nullptr;
    const size_t workspace_bytes = gpu::cross_entropy_workspace_bytes(c.rows);
    DeviceBuffer workspace = test::poisoned<uint8_t>(static_cast<int64_t>(workspace_bytes));

    const HostTensor<float> expected = cpu::cross_entropy(logits, labels, ref_options);
    DeviceBuffer loss_d = test::poisoned<float>(expected.numel());
    gpu::cross_entropy_forward(logits_d.data_as<float>(), labels_d.data_as<int64_t>(), c.rows, c.classes,
                               options, loss_d.data_as<float>(), workspace.data(), workspace_bytes, nullptr);
    CHECK(max_relative_error(test::to_host<float>(loss_d, expected.shape()), expected) <= kLossTolerance);

    const HostTensor<float> dloss = test::random_tensor<float>(expected.shape(), 504, 0.5, 1.5);
    const DeviceBuffer dloss_d = test::to_device(dloss);
    DeviceBuffer dlogits_d = test::poisoned<float>(shape.numel());
    gpu::cross_entropy_backward(logits_d.data_as<float>(), labels_d.data_as<int64_t>(),
                                dloss_d.data_as<float>(), c.rows, c.classes, options,
                                dlogits_d.data_as<float>(), workspace.data(), workspace_bytes, nullptr);
    CHECK(max_relative_error(test::to_host<float>(dlogits_d, shape),
                             cpu::cross_entropy_backward(logits, labels, dloss, ref_options).dlogits) <=
          kRowReductionTolerance);

    // The fused launcher (one kernel for 'mean' / 'sum' up to kCrossEntropyFusedMaxRows rows, the two calls
    // otherwise) gives the separate calls' bits, both outputs.
    DeviceBuffer fused_loss_d = test::poisoned<float>(expected.numel());
    DeviceBuffer fused_dlogits_d = test::poisoned<float>(shape.numel());
    gpu::cross_entropy_forward_backward(logits_d.data_as<float>(), labels_d.data_as<int64_t>(),
                                        dloss_d.data_as<float>(), c.rows, c.classes, options,
                                        fused_loss_d.data_as<float>(), fused_dlogits_d.data_as<float>(),
                                        workspace.data(), workspace_bytes, nullptr);
    CHECK(test::bitwise_equal(test::to_host<float>(fused_loss_d, expected.shape()),
                              test::to_host<float>(loss_d, expected.shape())));
    CHECK(test::bitwise_equal(test::to_host<float>(fused_dlogits_d, shape), test::to_host<float>(dlogits_d, shape)));
}

// Runs accuracy_counts (overwriting) and returns {top-1, top-k}.
std::vector<int64_t> device_counts(const HostTensor<float>& logits, const HostTensor<int64_t>& labels,
                                   int64_t k) {
    const DeviceBuffer logits_d = test::to_device(logits), labels_d = test::to_device(labels);
    DeviceBuffer counts = test::poisoned<int64_t>(2);
    int64_t* c = counts.data_as<int64_t>();
    gpu::accuracy_counts(logits_d.data_as<float>(), labels_d.data_as<int64_t>(), logits.dim(0), logits.dim(1),
                         k, c, c + 1, false, nullptr);
    return download<int64_t>(counts);
}

}  // namespace

TEST_CASE("softmax and log_softmax kernels match the reference, forward and backward", "[parity][loss]") {
    struct Rows {
        int64_t rows, classes;
        double scale;
    };
    for (const Rows& r : {Rows{128, 10, 3.0}, Rows{5, 100, 3.0}, Rows{7, 37, 1e4}, Rows{1, 1, 1.0}}) {
        CAPTURE(r.rows, r.classes, r.scale);
        const Shape shape{r.rows, r.classes};
        const HostTensor<float> x = test::random_tensor<float>(shape, 601, -r.scale, r.scale);
        const HostTensor<float> dy = test::random_tensor<float>(shape, 602);
        const DeviceBuffer x_d = test::to_device(x), dy_d = test::to_device(dy);
        DeviceBuffer y_d = test::poisoned<float>(shape.numel()), dx_d = test::poisoned<float>(shape.numel());

        const HostTensor<float> y = cpu::softmax(x);
        gpu::softmax_forward(x_d.data_as<float>(), y_d.data_as<float>(), r.rows, r.classes, nullptr);
        CHECK(max_relative_error(test::to_host<float>(y_d, shape), y) <= kRowReductionTolerance);
        const DeviceBuffer saved_y = test::to_device(y);
        gpu::softmax_backward(saved_y.data_as<float>(), dy_d.data_as<float>(), dx_d.data_as<float>(), r.rows,
                              r.classes, nullptr);
        CHECK(max_relative_error(test::to_host<float>(dx_d, shape), cpu::softmax_backward(y, dy).dx) <=
              kRowReductionTolerance);

        const HostTensor<float> log_y = cpu::log_softmax(x);
        gpu::log_softmax_forward(x_d.data_as<float>(), y_d.data_as<float>(), r.rows, r.classes, nullptr);
        CHECK(max_relative_error(test::to_host<float>(y_d, shape), log_y) <= kRowReductionTolerance);
        const DeviceBuffer saved_log_y = test::to_device(log_y);
        gpu::log_softmax_backward(saved_log_y.data_as<float>(), dy_d.data_as<float>(), dx_d.data_as<float>(),
                                  r.rows, r.classes, nullptr);
        CHECK(max_relative_error(test::to_host<float>(dx_d, shape),
                                 cpu::log_softmax_backward(log_y, dy).dx) <= kRowReductionTolerance);
    }
}

TEST_CASE("cross-entropy kernels match the reference for every reduction and option", "[parity][loss]") {
    using R = cpu::Reduction;
    // CifarCNN's (128, 10) with the trainer's options, then every option on smaller batches, C = 100, and
    // large logits (±1e4: exp would overflow without the max subtracted).
    check_cross_entropy({128, 10, R::mean, 0.0, false, false, 3.0});
    check_cross_entropy({5, 10, R::mean, 0.1, true, true, 3.0});
    check_cross_entropy({5, 100, R::sum, 0.2, true, false, 3.0});
    check_cross_entropy({7, 100, R::none, 0.0, false, true, 3.0});
    check_cross_entropy({7, 10, R::none, 0.1, true, true, 3.0});
    check_cross_entropy({5, 100, R::mean, 0.0, true, true, 1e4});
    check_cross_entropy({1, 10, R::mean, 0.1, false, false, 1e4});
    // More rows than one wave of warps (8192) and than the single-block reductions' threads (256): every
    // grid-stride and block-stride loop goes round (the plainest options: the emulator pays per shuffle).
    check_cross_entropy({8200, 10, R::mean, 0.0, false, true, 3.0});
}

TEST_CASE("cross-entropy kernels: every sample ignored, a NaN logit, a bad label", "[parity][loss]") {
    const Shape shape{4, 10};
    HostTensor<float> logits = test::random_tensor<float>(shape, 701);
    HostTensor<int64_t> labels(Shape{4}, int64_t{-100});  // all ignored: mean is 0 / 0
    const DeviceBuffer workspace =
        test::poisoned<uint8_t>(static_cast<int64_t>(gpu::cross_entropy_workspace_bytes(4)));
    const size_t workspace_bytes = workspace.bytes();
    auto forward = [&](const HostTensor<float>& x, const HostTensor<int64_t>& y,
                       const gpu::CrossEntropyOptions& o, int64_t outputs) {
        const DeviceBuffer x_d = test::to_device(x), y_d = test::to_device(y);
        DeviceBuffer loss = test::poisoned<float>(outputs);
        gpu::cross_entropy_forward(x_d.data_as<float>(), y_d.data_as<int64_t>(), 4, 10, o,
                                   loss.data_as<float>(), workspace.data(), workspace_bytes, nullptr);
        return download<float>(loss);
    };
    auto backward = [&](const HostTensor<float>& x, const HostTensor<int64_t>& y,
                        const gpu::CrossEntropyOptions& o) {
        const DeviceBuffer x_d = test::to_device(x), y_d = test::to_device(y);
        const DeviceBuffer dloss = test::to_device(HostTensor<float>(Shape{}, std::vector<float>{1.0f}));
        DeviceBuffer dlogits = test::poisoned<float>(shape.numel());
        gpu::cross_entropy_backward(x_d.data_as<float>(), y_d.data_as<int64_t>(), dloss.data_as<float>(), 4,
                                    10, o, dlogits.data_as<float>(), workspace.data(), workspace_bytes,
                                    nullptr);
        return test::to_host<float>(dlogits, shape);
    };
    const gpu::CrossEntropyOptions mean;
    CHECK(std::isnan(forward(logits, labels, mean, 1)[0]));
    CHECK(std::isnan(cpu::cross_entropy(logits, labels)[0]));
    CHECK(max_relative_error(
              backward(logits, labels, mean),
              cpu::cross_entropy_backward(logits, labels, HostTensor<float>(Shape{}, 1.0f)).dlogits) ==
          0.0);  // all zeros on both sides

    // A NaN logit makes its row NaN, as in the reference ('none' shows the row).
    labels = HostTensor<int64_t>(Shape{4}, std::vector<int64_t>{1, 2, 3, 4});
    logits[2 * 10 + 5] = NAN;
    gpu::CrossEntropyOptions none;
    none.reduction = cpu::Reduction::none;
    cpu::CrossEntropyOptions<float> ref_none;
    ref_none.reduction = cpu::Reduction::none;
    const std::vector<float> rows = forward(logits, labels, none, 4);
    const HostTensor<float> expected_rows = cpu::cross_entropy(logits, labels, ref_none);
    for (int64_t n = 0; n < 4; ++n) CHECK(std::isnan(rows[n]) == std::isnan(expected_rows[n]));

    // Labels are not checked on the host: a label outside [0, C) gives NaN (the reference throws instead).
    logits[2 * 10 + 5] = 0.5f;
    labels[1] = 10;
    CHECK(std::isnan(forward(logits, labels, mean, 1)[0]));
    const HostTensor<float> dlogits = backward(logits, labels, mean);
    CHECK(std::isnan(dlogits[1 * 10]));

    // The fused launcher agrees, bit for bit, on all-ignored and bad-label batches.
    const auto fused = [&](const HostTensor<float>& x, const HostTensor<int64_t>& y) {
        const DeviceBuffer x_d = test::to_device(x), y_d = test::to_device(y);
        const DeviceBuffer dloss = test::to_device(HostTensor<float>(Shape{}, std::vector<float>{1.0f}));
        DeviceBuffer loss = test::poisoned<float>(1), dx = test::poisoned<float>(shape.numel());
        gpu::cross_entropy_forward_backward(x_d.data_as<float>(), y_d.data_as<int64_t>(), dloss.data_as<float>(), 4,
                                            10, mean, loss.data_as<float>(), dx.data_as<float>(), workspace.data(),
                                            workspace_bytes, nullptr);
        return std::make_pair(download<float>(loss)[0], test::to_host<float>(dx, shape));
    };
    const auto [bad_loss, bad_dlogits] = fused(logits, labels);
    CHECK(std::isnan(bad_loss));
    CHECK(test::bitwise_equal(bad_dlogits, dlogits));
    const HostTensor<int64_t> ignored(Shape{4}, int64_t{-100});
    const auto [ignored_loss, ignored_dlogits] = fused(logits, ignored);
    CHECK(std::isnan(ignored_loss));
    CHECK(test::bitwise_equal(ignored_dlogits, backward(logits, ignored, mean)));
}

TEST_CASE("accuracy counts match the reference's top-k rule exactly, with ties and NaN", "[parity][loss]") {
    // Ties: logits drawn from 3 values, so most rows tie at the label; NaN in a few rows.
    for (int64_t classes : {10, 100}) {
        const int64_t rows = classes == 10 ? 128 : 37;
        HostTensor<float> logits = test::random_tensor<float>(Shape{rows, classes}, 801, 0.0, 3.0);
        for (int64_t i = 0; i < logits.numel(); ++i) logits[i] = std::floor(logits[i]);
        for (int64_t n = 0; n < rows; n += 7) logits[n * classes + (n % classes)] = NAN;
        logits[5 * classes + 2] = NAN;  // two NaNs in one row
        HostTensor<int64_t> labels = random_labels(rows, classes, 802);
        labels[5] = 2;  // a label on a NaN
        for (int64_t k : {int64_t{1}, int64_t{3}, classes}) {
            CAPTURE(classes, k);
            const std::vector<int64_t> counts = device_counts(logits, labels, k);
            CHECK(counts[0] == cpu::top_k_correct(logits, labels, 1));
            CHECK(counts[1] == cpu::top_k_correct(logits, labels, k));
        }
    }
    // Random logits (no ties): CifarCNN's batch, and an evaluation-sized one.
    for (int64_t rows : {128, 8200}) {
        CAPTURE(rows);
        const HostTensor<float> logits = test::random_tensor<float>(Shape{rows, 10}, 803);
        const HostTensor<int64_t> labels = random_labels(rows, 10, 804);
        const std::vector<int64_t> counts = device_counts(logits, labels, 5);
        CHECK(counts[0] == cpu::top_k_correct(logits, labels, 1));
        CHECK(counts[1] == cpu::top_k_correct(logits, labels, 5));
    }
}

TEST_CASE("accuracy counts accumulate on the device across calls", "[parity][loss]") {
    const HostTensor<float> logits = test::random_tensor<float>(Shape{5, 10}, 901);
    const HostTensor<int64_t> labels = random_labels(5, 10, 902);
    const DeviceBuffer logits_d = test::to_device(logits), labels_d = test::to_device(labels);
    DeviceBuffer top1 = test::poisoned<int64_t>(1), top3 = test::poisoned<int64_t>(1);
    for (bool accumulate : {false, true, true}) {
        gpu::accuracy_counts(logits_d.data_as<float>(), labels_d.data_as<int64_t>(), 5, 10, 3,
                             top1.data_as<int64_t>(), top3.data_as<int64_t>(), accumulate, nullptr);
    }
    CHECK(download<int64_t>(top1)[0] == 3 * cpu::top_k_correct(logits, labels, 1));
    CHECK(download<int64_t>(top3)[0] == 3 * cpu::top_k_correct(logits, labels, 3));
    // Only one counter asked for: the other is not touched.
    gpu::accuracy_counts(logits_d.data_as<float>(), labels_d.data_as<int64_t>(), 5, 10, 3, nullptr,
                         top3.data_as<int64_t>(), false, nullptr);
    CHECK(download<int64_t>(top3)[0] == cpu::top_k_correct(logits, labels, 3));
}

TEST_CASE("loss launchers reject bad arguments with the op and the values", "[parity][loss]") {
    DeviceBuffer buffer = test::poisoned<float>(64), labels = test::poisoned<int64_t>(4);
    float* p = buffer.data_as<float>();
    int64_t* l = labels.data_as<int64_t>();
    CHECK_THAT(test::error_message([&] { gpu::softmax_forward(p, p, 0, 10, nullptr); }),
               Contains("softmax: the input has shape (N, C) = (0, 10); N and C must be positive"));
    CHECK_THAT(test::error_message([&] { gpu::log_softmax_backward(p, nullptr, p, 2, 2, nullptr); }),
               Contains("log_softmax_backward: a device pointer argument is null"));
    gpu::CrossEntropyOptions options;
    CHECK_THAT(
        test::error_message([&] { gpu::cross_entropy_forward(p, l, 4, 10, options, p, p, 8, nullptr); }),
        Contains("cross_entropy: the workspace has 8 bytes"));
    options.label_smoothing = 1.5;
    CHECK_THAT(
        test::error_message([&] { gpu::cross_entropy_backward(p, l, p, 4, 10, options, p, p, 64, nullptr); }),
        Contains("cross_entropy_backward: label_smoothing 1.5 is outside [0, 1]"));
    options.label_smoothing = 0.0;
    options.reduction = static_cast<cpu::Reduction>(9);
    CHECK_THAT(
        test::error_message([&] { gpu::cross_entropy_forward(p, l, 4, 10, options, p, p, 64, nullptr); }),
        Contains("cross_entropy: reduction has the invalid value 9"));
    CHECK_THAT(test::error_message([&] {
                   gpu::accuracy_counts(p, l, 4, 10, 11, reinterpret_cast<int64_t*>(p), nullptr, false,
                                        nullptr);
               }),
               Contains("top_k_accuracy: k 11 is outside [1, C] = [1, 10] for logits (4, 10)"));
    CHECK_THAT(
        test::error_message([&] { gpu::accuracy_counts(p, l, 4, 10, 1, nullptr, nullptr, false, nullptr); }),
        Contains("top1_correct and topk_correct are both null"));
}
