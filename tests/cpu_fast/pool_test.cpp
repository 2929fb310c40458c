// The fast pooling (src/cpu_fast/pool.cpp) against the reference: max pooling with indices (ties, NaN,
// padding, dilation, ceil mode, overlapping windows), average pooling with every divisor rule, adaptive
// average pooling (overlapping and repeated windows), forward and backward, bit for bit with 1, 2 and 3
// threads, and the reference's errors.
#include <catch2/catch.hpp>

#include <cmath>
#include <cstdint>
#include <limits>
#include <vector>

#include "cudacnn/ops/pool.hpp"
#include "cpu_fast/fast_support.hpp"
#include "src/cpu_fast/pool.hpp"
#include "support/errors.hpp"
#include "support/pool_options.hpp"

using namespace cudacnn;
using Catch::Contains;
using cpu::Pair2d;
using test::avg_options;
using test::max_options;

namespace {

// Every fast pooling op does the reference's arithmetic in its order: max pooling selects and its backward adds
// the same float terms in (oh, ow) order; the average passes sum in double in the reference's order (the
// backward gathers each cell's windows in the order the reference scatters them) and round once. So all
// comparisons are bit for bit (no tolerance), and the indices must be equal.

const Shape kOdd{3, 5, 7, 9};
const Shape kLarge{2, 3, 33, 40};  // planes larger than the small case's and more of them than threads

// Values on a coarse grid {-1, -0.5, 0, 0.5} (many equal maxima), and a few NaNs, two in one row.
HostTensor<float> tied_with_nans(const Shape& shape, uint32_t seed) {
    HostTensor<float> x = test::random_tensor<float>(shape, seed);
    for (float& v : x.values()) v = std::floor(v * 2.0f) / 2.0f;
    const float nan = std::numeric_limits<float>::quiet_NaN();
    for (int64_t i : {int64_t{0}, int64_t{6}, int64_t{7}, x.numel() / 2, x.numel() - 1}) x[i] = nan;
    return x;
}

void check_max_pool(const HostTensor<float>& x, const cpu::MaxPool2dOptions& o) {
    const cpu::MaxPool2dResult<float> expected = cpu::max_pool2d(x, o);
    const Shape out = expected.output.shape();
    const HostTensor<float> dy = test::random_tensor<float>(out, 201);
    const HostTensor<float> expected_dx = cpu::max_pool2d_backward(x.shape(), expected.indices, dy).dx;
    for (int threads : test::kThreadCounts) {
        INFO("x " << x.shape().to_string() << ", kernel " << o.kernel_size.h << "x" << o.kernel_size.w
                  << ", padding " << o.padding.h << ", dilation " << o.dilation.h << ", ceil " << o.ceil_mode
                  << ", threads " << threads);
        const cpu_fast::Workers workers(threads);
        HostTensor<float> y = test::poisoned_tensor<float>(out);
        HostTensor<int64_t> indices = test::poisoned_tensor<int64_t>(out);
        cpu_fast::max_pool2d(x.data(), y.data(), indices.data(), x.shape(), o, workers);
        CHECK(test::same_bits(y, expected.output));
        CHECK(test::same_bits(indices, expected.indices));
        HostTensor<float> y_only = test::poisoned_tensor<float>(out);  // no indices wanted
        cpu_fast::max_pool2d(x.data(), y_only.data(), nullptr, x.shape(), o, workers);
        CHECK(test::same_bits(y_only, expected.output));
        HostTensor<float> dx = test::poisoned_tensor<float>(x.shape());
        cpu_fast::max_pool2d_backward(expected.indices.data(), dy.data(), dx.data(), x.shape(), o, workers);
        CHECK(test::same_bits(dx, expected_dx));
    }
}

void check_avg_pool(const HostTensor<float>& x, const cpu::AvgPool2dOptions& o) {
    const HostTensor<float> expected = cpu::avg_pool2d(x, o);
    const HostTensor<float> dy = test::random_tensor<float>(expected.shape(), 202);
    const HostTensor<float> expected_dx = cpu::avg_pool2d_backward(x.shape(), dy, o).dx;
    for (int threads : test::kThreadCounts) {
        INFO("x " << x.shape().to_string() << ", kernel " << o.kernel_size.h << "x" << o.kernel_size.w
                  << ", padding " << o.padding.h << ", ceil " << o.ceil_mode << ", include pad "
                  << o.count_include_pad << ", divisor " << o.divisor_override.value_or(0) << ", threads " << threads);
        const cpu_fast::Workers workers(threads);
        HostTensor<float> y = test::poisoned_tensor<float>(expected.shape());
        cpu_fast::avg_pool2d(x.data(), y.data(), x.shape(), o, workers);
        CHECK(test::same_bits(y, expected));
        HostTensor<float> dx = test::poisoned_tensor<float>(x.shape());
        cpu_fast::avg_pool2d_backward(dy.data(), dx.data(), x.shape(), o, workers);
        CHECK(test::same_bits(dx, expected_dx));
    }
}

void check_adaptive(const HostTensor<float>& x, Pair2d output_size) {
    const HostTensor<float> expected = cpu::adaptive_avg_pool2d(x, output_size);
    const HostTensor<float> dy = test::random_tensor<float>(expected.shape(), 203);
    const HostTensor<float> expected_dx = cpu::adaptive_avg_pool2d_backward(x.shape(), dy).dx;
    for (int threads : test::kThreadCounts) {
        INFO("x " << x.shape().to_string() << ", output " << output_size.h << "x" << output_size.w << ", threads "
                  << threads);
        const cpu_fast::Workers workers(threads);
        HostTensor<float> y = test::poisoned_tensor<float>(expected.shape());
        cpu_fast::adaptive_avg_pool2d(x.data(), y.data(), x.shape(), output_size, workers);
        CHECK(test::same_bits(y, expected));
        HostTensor<float> dx = test::poisoned_tensor<float>(x.shape());
        cpu_fast::adaptive_avg_pool2d_backward(dy.data(), dx.data(), x.shape(), output_size, workers);
        CHECK(test::same_bits(dx, expected_dx));
    }
}

}  // namespace

TEST_CASE("fast max_pool2d equals the reference bit for bit, indices included", "[cpu_fast]") {
    const HostTensor<float> x = test::random_tensor<float>(kOdd, 210);
    const HostTensor<float> tied = tied_with_nans(kOdd, 211);
    for (const HostTensor<float>* input : {&x, &tied}) {
        check_max_pool(*input, max_options(2));                                     // CifarCNN's pooling
        check_max_pool(*input, max_options(3, 2, 1));                               // overlapping, padded
        check_max_pool(*input, max_options({3, 2}, Pair2d{1, 2}, {1, 0}, {2, 3}));  // dilated, stride 1
        check_max_pool(*input, max_options(3, 2, 0, 1, /*ceil_mode=*/true));
        check_max_pool(*input, max_options(4, 3, 2, 1, /*ceil_mode=*/true));
    }
    check_max_pool(test::random_tensor<float>(kLarge, 212), max_options(3, 2, 1));
    check_max_pool(tied_with_nans(kLarge, 213), max_options(2));  // the unrolled 2×2 path on larger planes
    check_max_pool(tied_with_nans(Shape{1, 2, 5, 1031}, 214), max_options(2));  // rows of several 256-output runs
    check_max_pool(tied, max_options(2, 2, 0, 1, /*ceil_mode=*/true));  // 2×2 with partial windows: general path
}

TEST_CASE("fast avg_pool2d equals the reference bit for bit with every divisor rule", "[cpu_fast]") {
    const HostTensor<float> x = test::random_tensor<float>(kOdd, 220);
    for (bool include_pad : {true, false}) {
        check_avg_pool(x, avg_options(2, std::nullopt, 0, false, include_pad));
        check_avg_pool(x, avg_options(3, 2, 1, false, include_pad));                // overlapping, padded
        check_avg_pool(x, avg_options({3, 2}, Pair2d{1, 2}, {1, 1}, false, include_pad));
        check_avg_pool(x, avg_options(3, 2, 1, /*ceil_mode=*/true, include_pad));  // windows past the padding
        check_avg_pool(x, avg_options(4, 3, 2, /*ceil_mode=*/true, include_pad));
    }
    check_avg_pool(x, avg_options(3, 2, 1, true, true, /*divisor_override=*/5));
    check_avg_pool(x, avg_options(2, 1, 1, false, false, /*divisor_override=*/-3));
    check_avg_pool(test::random_tensor<float>(kLarge, 221), avg_options(3, 2, 1, true, false));
}

TEST_CASE("fast adaptive_avg_pool2d equals the reference bit for bit", "[cpu_fast]") {
    const HostTensor<float> x = test::random_tensor<float>(kOdd, 230);
    check_adaptive(x, Pair2d{1, 1});   // global average pooling
    check_adaptive(x, Pair2d{3, 4});   // overlapping windows (3 and 4 divide neither 7 nor 9)
    check_adaptive(x, Pair2d{7, 9});   // the identity
    check_adaptive(x, Pair2d{10, 13});  // more outputs than inputs: repeated windows
    check_adaptive(test::random_tensor<float>(kLarge, 231), Pair2d{5, 6});
}

TEST_CASE("fast pooling reports bad arguments as the reference", "[cpu_fast]") {
    const cpu_fast::Workers workers(1);
    const HostTensor<float> x = test::random_tensor<float>(Shape{1, 1, 4, 4}, 240);
    HostTensor<float> y(Shape{1, 1, 2, 2}), dx(x.shape());
    CHECK_THAT(test::error_message([&] { cpu_fast::max_pool2d(x.data(), y.data(), nullptr, x.shape(), max_options(2, 2, 2), workers); }),
               Contains("max_pool2d: padding (2, 2) must be at most half of kernel_size (2, 2)"));
    CHECK_THAT(test::error_message([&] { cpu_fast::avg_pool2d(x.data(), y.data(), Shape{4, 4}, avg_options(2), workers); }),
               Contains("avg_pool2d: input must be (N, C, H, W), got shape (4, 4)"));
    CHECK_THAT(test::error_message([&] {
                   cpu_fast::avg_pool2d_backward(y.data(), dx.data(), x.shape(), avg_options(2, 2, 0, false, true, 0), workers);
               }),
               Contains("avg_pool2d: divisor_override must not be 0"));
    CHECK_THAT(test::error_message([&] {
                   cpu_fast::adaptive_avg_pool2d(x.data(), y.data(), x.shape(), Pair2d{0, 2}, workers);
               }),
               Contains("adaptive_avg_pool2d: output_size (0, 2) must be positive"));
    // An index outside its plane: the reference's message, naming the first bad index in order.
    const HostTensor<int64_t> indices(Shape{1, 1, 2, 2}, std::vector<int64_t>{0, 16, 3, -1});
    CHECK_THAT(test::error_message([&] {
                   cpu_fast::max_pool2d_backward(indices.data(), y.data(), dx.data(), x.shape(), max_options(2), workers);
               }),
               Contains("max_pool2d_backward: index 16 is outside the 4x4 input plane"));
}
