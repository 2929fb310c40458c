// The fast cross-entropy and top-1 count (src/cpu_fast/loss.cpp) against the reference: mean loss and its
// gradient bit for bit (label smoothing, ignored samples, NaN and huge logits), counts with ties and NaN,
// with 1, 2 and 3 threads, and the reference's errors.
#include <catch2/catch.hpp>

#include <cstdint>
#include <limits>
#include <vector>

#include "cudacnn/ops/loss.hpp"
#include "cpu_fast/fast_support.hpp"
#include "src/cpu_fast/loss.hpp"
#include "support/errors.hpp"

using namespace cudacnn;
using Catch::Contains;

namespace {

// The fast path runs the reference's double arithmetic in its order (per-sample losses summed in row order),
// so loss and gradient must be bit-identical (no tolerance).

HostTensor<int64_t> labels_for(int64_t rows, int64_t classes, uint32_t seed) {
    const HostTensor<float> u = test::random_tensor<float>(Shape{rows}, seed, 0.0, 1.0);
    HostTensor<int64_t> labels(Shape{rows});
    for (int64_t n = 0; n < rows; ++n) labels[n] = static_cast<int64_t>(u[n] * static_cast<float>(classes)) % classes;
    return labels;
}

void check_cross_entropy(const HostTensor<float>& logits, const HostTensor<int64_t>& labels, double smoothing) {
    const int64_t rows = logits.dim(0), classes = logits.dim(1);
    cpu::CrossEntropyOptions<float> o;
    o.label_smoothing = smoothing;
    const HostTensor<float> expected_loss = cpu::cross_entropy(logits, labels, o);
    const HostTensor<float> expected_dlogits =
        cpu::cross_entropy_backward(logits, labels, HostTensor<float>(Shape{}, 1.0f), o).dlogits;
    std::vector<double> workspace(static_cast<size_t>(rows), std::numeric_limits<double>::quiet_NaN());
    for (int threads : test::kThreadCounts) {
        INFO("logits " << logits.shape().to_string() << ", smoothing " << smoothing << ", threads " << threads);
        const cpu_fast::Workers workers(threads);
        HostTensor<float> loss = test::poisoned_tensor<float>(Shape{});
        cpu_fast::cross_entropy_forward(logits.data(), labels.data(), rows, classes, smoothing, loss.data(),
                                        workspace.data(), cpu_fast::cross_entropy_workspace_bytes(rows), workers);
        CHECK(test::same_bits(loss, expected_loss));
        HostTensor<float> dlogits = test::poisoned_tensor<float>(logits.shape());
        cpu_fast::cross_entropy_backward(logits.data(), labels.data(), rows, classes, smoothing, dlogits.data(),
                                         workers);
        CHECK(test::same_bits(dlogits, expected_dlogits));
    }
}

void check_top1(const HostTensor<float>& logits, const HostTensor<int64_t>& labels) {
    const int64_t expected = cpu::top_k_correct(logits, labels, 1);
    for (int threads : test::kThreadCounts) {
        INFO("logits " << logits.shape().to_string() << ", threads " << threads);
        CHECK(cpu_fast::top1_correct(logits.data(), labels.data(), logits.dim(0), logits.dim(1),
                                     cpu_fast::Workers(threads)) == expected);
    }
}

}  // namespace

TEST_CASE("fast cross-entropy equals the reference bit for bit", "[cpu_fast]") {
    // 37 rows: part of one item; 1000 rows: many items of rows (and not a multiple of one).
    for (const Shape& shape : {Shape{37, 10}, Shape{1000, 7}, Shape{5, 1}}) {
        const HostTensor<float> logits = test::random_tensor<float>(shape, 81, -4.0, 4.0);
        const HostTensor<int64_t> labels = labels_for(shape[0], shape[1], 82);
        for (double smoothing : {0.0, 0.1, 1.0}) check_cross_entropy(logits, labels, smoothing);
    }
}

TEST_CASE("fast cross-entropy handles ignored samples, huge and NaN logits as the reference", "[cpu_fast]") {
    HostTensor<float> logits = test::random_tensor<float>(Shape{70, 9}, 83, -3.0, 3.0);
    HostTensor<int64_t> labels = labels_for(70, 9, 84);
    labels[3] = -100;  // ignore_index: counts nowhere, its gradient row is 0
    labels[40] = -100;
    logits[5 * 9 + 2] = 1e30f;  // stable: no overflow
    logits[6 * 9 + 4] = -1e30f;
    check_cross_entropy(logits, labels, 0.0);
    check_cross_entropy(logits, labels, 0.2);
    logits[50 * 9 + 1] = std::numeric_limits<float>::quiet_NaN();  // the row, and so the mean, is NaN
    check_cross_entropy(logits, labels, 0.0);
    for (int64_t n = 0; n < 70; ++n) labels[n] = -100;  // all ignored: 0 / 0 = NaN, gradient 0
    check_cross_entropy(logits, labels, 0.1);
}

TEST_CASE("fast top-1 count equals the reference's, ties and NaN included", "[cpu_fast]") {
    HostTensor<float> logits = test::random_tensor<float>(Shape{600, 10}, 85);
    const HostTensor<int64_t> labels = labels_for(600, 10, 86);
    check_top1(logits, labels);
    // Coarse values: many ties, which go to the first maximum; a few NaNs, which rank above every number.
    for (float& v : logits.values()) v = static_cast<float>(static_cast<int>(v * 2.0f));
    logits[3 * 10 + labels[3]] = std::numeric_limits<float>::quiet_NaN();
    logits[4 * 10 + (labels[4] + 1) % 10] = std::numeric_limits<float>::quiet_NaN();
    check_top1(logits, labels);
    CHECK(cpu::top_k_correct(logits, labels, 1) > 0);  // the case is not vacuous
}

TEST_CASE("fast loss ops report bad arguments as the reference", "[cpu_fast]") {
    const cpu_fast::Workers workers(1);
    const float logits[6] = {1, 2, 3, 4, 5, 6};
    const int64_t bad_labels[2] = {1, 3};
    double workspace[2];
    float out[6];
    CHECK_THAT(test::error_message([&] {
                   cpu_fast::cross_entropy_forward(logits, bad_labels, 2, 3, 0.0, out, workspace, sizeof workspace,
                                                   workers);
               }),
               Contains("cross_entropy: label 3 of sample 1 is outside [0, 3) (C of logits (2, 3)) and is not "
                        "ignore_index -100"));
    CHECK_THAT(test::error_message([&] {
                   cpu_fast::cross_entropy_backward(logits, bad_labels, 2, 3, 0.0, out, workers);
               }),
               Contains("cross_entropy_backward: label 3 of sample 1 is outside [0, 3)"));
    CHECK_THAT(test::error_message([&] { cpu_fast::top1_correct(logits, bad_labels, 2, 3, workers); }),
               Contains("top_k_accuracy: label 3 of sample 1 is outside [0, 3) (C of logits (2, 3))"));
    const int64_t labels[2] = {0, 2};
    CHECK_THAT(test::error_message([&] {
                   cpu_fast::cross_entropy_forward(logits, labels, 2, 3, 0.0, out, workspace, 8, workers);
               }),
               Contains("cross_entropy: the workspace has 8 bytes but 2 rows need 16"));
    CHECK_THAT(test::error_message([&] {
                   cpu_fast::cross_entropy_forward(logits, labels, 2, 3, 1.5, out, workspace, sizeof workspace,
                                                   workers);
               }),
               Contains("cross_entropy: label_smoothing 1.5 is outside [0, 1]"));
    CHECK_THAT(test::error_message([&] { cpu_fast::cross_entropy_backward(logits, labels, 0, 3, 0.0, out, workers); }),
               Contains("cross_entropy_backward: logits has shape (0, 3); N and C must be positive"));
}
