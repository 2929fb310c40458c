// The fast CPU linear layer (src/cpu_fast/linear) against cpu::linear / cpu::linear_backward, and the same bits
// whatever the thread count.
#include <catch2/catch.hpp>

#include <string>

#include "cudacnn/ops/linear.hpp"
#include "src/cpu_fast/linear.hpp"
#include "support/compare.hpp"
#include "support/tolerance.hpp"
#include "cpu_fast/fast_support.hpp"

using namespace cudacnn;

namespace {

// OpenBLAS's float sums against the reference's double sums rounded once: float_sum_tolerance with a margin of
// 4, as conv2d (random inputs in [-1, 1] keep the partial sums within a few times max |result|).
double tolerance(int64_t terms) {
    return test::float_sum_tolerance(terms, 4.0);
}

struct LinearResult {
    HostTensor<float> y, dx, dw, db;
};

LinearResult run_fast(const cpu_fast::LinearShape& s, const HostTensor<float>& x, const HostTensor<float>& w,
                      const HostTensor<float>& b, const HostTensor<float>& dy, bool bias, bool want_dx, int threads) {
    const cpu_fast::Workers workers(threads);
    LinearResult r{test::poisoned_tensor<float>(Shape{s.batch, s.out_features}),
                   test::poisoned_tensor<float>(x.shape()), test::poisoned_tensor<float>(w.shape()),
                   test::poisoned_tensor<float>(Shape{s.out_features})};
    cpu_fast::linear_forward(x.data(), w.data(), bias ? b.data() : nullptr, r.y.data(), s, workers);
    cpu_fast::linear_backward(x.data(), w.data(), dy.data(), want_dx ? r.dx.data() : nullptr, r.dw.data(),
                              bias ? r.db.data() : nullptr, s, workers);
    return r;
}

void check_case(const std::string& name, const cpu_fast::LinearShape& s, bool bias, bool want_dx, uint32_t seed) {
    INFO(name);
    const HostTensor<float> x = test::random_tensor<float>(Shape{s.batch, s.in_features}, seed);
    const HostTensor<float> w = test::random_tensor<float>(Shape{s.out_features, s.in_features}, seed + 1);
    const HostTensor<float> b = test::random_tensor<float>(Shape{s.out_features}, seed + 2);
    const HostTensor<float> dy = test::random_tensor<float>(Shape{s.batch, s.out_features}, seed + 3);
    const HostTensor<float> y_ref = cpu::linear<float>(x, w, bias ? &b : nullptr);
    const cpu::LinearGrads<float> ref = cpu::linear_backward<float>(x, w, dy, bias);

    const LinearResult fast = run_fast(s, x, w, b, dy, bias, want_dx, 2);
    CHECK(test::max_relative_error(fast.y, y_ref) <= tolerance(s.in_features + 1));
    if (want_dx) CHECK(test::max_relative_error(fast.dx, ref.dx) <= tolerance(s.out_features));
    CHECK(test::max_relative_error(fast.dw, ref.dweight) <= tolerance(s.batch));
    if (bias) CHECK(test::max_relative_error(fast.db, ref.dbias) <= tolerance(s.batch));
    for (int threads : test::kThreadCounts) {
        INFO(threads << " threads");
        const LinearResult other = run_fast(s, x, w, b, dy, bias, want_dx, threads);
        CHECK(test::same_bits(other.y, fast.y));
        if (want_dx) CHECK(test::same_bits(other.dx, fast.dx));
        CHECK(test::same_bits(other.dw, fast.dw));
        if (bias) CHECK(test::same_bits(other.db, fast.db));
    }
}

}  // namespace

TEST_CASE("fast linear matches the reference, forward and every gradient", "[cpu_fast][linear]") {
    // 130 outputs and 70 inputs: two full 64-column work items and a short one on each axis.
    check_case("5 × 70 → 130, bias", {5, 70, 130}, true, true, 10);
    check_case("3 × 130 → 7, no bias", {3, 130, 7}, false, true, 20);
    check_case("1 × 9 → 200, bias, no input gradient", {1, 9, 200}, true, false, 30);
    check_case("CifarCNN's last layers at batch 6: 512 → 10", {6, 512, 10}, true, true, 40);
}
