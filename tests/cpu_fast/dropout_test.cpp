// The fast dropout and dropout2d (src/cpu_fast/dropout.cpp) against the reference: the masks bit for bit (the
// shared Philox rule), values and gradients bit for bit, with 1, 2 and 3 threads; eval mode, p = 0 and p = 1,
// in place, and the reference's errors.
#include <catch2/catch.hpp>

#include <cstdint>
#include <limits>

#include "cudacnn/ops/dropout.hpp"
#include "cpu_fast/fast_support.hpp"
#include "src/cpu_fast/dropout.hpp"
#include "support/errors.hpp"

using namespace cudacnn;
using Catch::Contains;

namespace {

// The masks come from the reference's own rule function, and the values from its arithmetic (a double
// product rounded once): everything is compared bit for bit (no tolerance).

cpu::DropoutOptions options(double p, bool training = true) {
    cpu::DropoutOptions o;
    o.p = p;
    o.training = training;
    o.seed = 0x1234'5678'9abcULL;  // both halves of the Philox key nonzero
    o.stream = (uint64_t{7} << 32) + 3;
    return o;
}

HostTensor<float> input(const Shape& shape, uint32_t seed) {
    HostTensor<float> x = test::random_tensor<float>(shape, seed);
    x[1] = std::numeric_limits<float>::quiet_NaN();  // NaN · 0 stays NaN where dropped, as the reference
    return x;
}

void check_dropout(const Shape& shape, const cpu::DropoutOptions& o) {
    const HostTensor<float> x = input(shape, 51);
    const cpu::DropoutResult<float> expected = cpu::dropout(x, o);
    const HostTensor<float> dy = test::random_tensor<float>(shape, 52);
    const HostTensor<float> expected_dx = cpu::dropout_backward(dy, expected.mask, o).dx;
    for (int threads : test::kThreadCounts) {
        INFO("shape " << shape.to_string() << ", p " << o.p << ", training " << o.training << ", threads " << threads);
        const cpu_fast::Workers workers(threads);
        HostTensor<float> y = test::poisoned_tensor<float>(shape);
        HostTensor<uint8_t> mask = test::poisoned_tensor<uint8_t>(shape);
        cpu_fast::dropout_forward(x.data(), y.data(), mask.data(), x.numel(), o, workers);
        CHECK(test::same_bits(mask, expected.mask));
        CHECK(test::same_bits(y, expected.y));
        HostTensor<float> dx = test::poisoned_tensor<float>(shape);
        cpu_fast::dropout_backward(dy.data(), expected.mask.data(), dx.data(), x.numel(), o, workers);
        CHECK(test::same_bits(dx, expected_dx));
    }
}

void check_dropout2d(const Shape& shape, const cpu::DropoutOptions& o) {
    const HostTensor<float> x = input(shape, 53);
    const cpu::DropoutResult<float> expected = cpu::dropout2d(x, o);
    const HostTensor<float> dy = test::random_tensor<float>(shape, 54);
    const HostTensor<float> expected_dx = cpu::dropout2d_backward(dy, expected.mask, o).dx;
    for (int threads : test::kThreadCounts) {
        INFO("shape " << shape.to_string() << ", p " << o.p << ", training " << o.training << ", threads " << threads);
        const cpu_fast::Workers workers(threads);
        HostTensor<float> y = test::poisoned_tensor<float>(shape);
        HostTensor<uint8_t> mask = test::poisoned_tensor<uint8_t>(Shape{shape[0], shape[1]});
        cpu_fast::dropout2d_forward(x.data(), y.data(), mask.data(), shape, o, workers);
        CHECK(test::same_bits(mask, expected.mask));
        CHECK(test::same_bits(y, expected.y));
        HostTensor<float> dx = test::poisoned_tensor<float>(shape);
        cpu_fast::dropout2d_backward(dy.data(), expected.mask.data(), dx.data(), shape, o, workers);
        CHECK(test::same_bits(dx, expected_dx));
    }
}

}  // namespace

TEST_CASE("fast dropout equals the reference bit for bit, masks included", "[cpu_fast]") {
    for (double p : {0.5, 0.1, 0.0, 1.0}) {
        check_dropout(Shape{3, 5, 7, 9}, options(p));
        check_dropout(Shape{test::kSeveralItems}, options(p));
    }
    check_dropout(Shape{3, 5, 7, 9}, options(0.5, /*training=*/false));
}

TEST_CASE("fast dropout2d equals the reference bit for bit, masks included", "[cpu_fast]") {
    for (double p : {0.5, 0.0, 1.0}) {
        check_dropout2d(Shape{3, 5, 7, 9}, options(p));
        check_dropout2d(Shape{4, 9, 1, 1}, options(p));  // one value per channel
    }
    // More channels than one item of masks holds, and planes large enough to split the values into items.
    check_dropout2d(Shape{3, 6000, 2, 3}, options(0.3));
    check_dropout2d(Shape{2, 3, 150, 150}, options(0.3));
    check_dropout2d(Shape{3, 5, 7, 9}, options(0.5, /*training=*/false));
}

TEST_CASE("fast dropout's eval mode ignores the mask it is given", "[cpu_fast]") {
    // The reference's backward multiplies by 1 in eval mode whatever the mask says; so must the fast one.
    const HostTensor<float> dy = test::random_tensor<float>(Shape{3, 5, 7, 9}, 55);
    const HostTensor<uint8_t> zeros(dy.shape(), uint8_t{0});
    const cpu::DropoutOptions eval = options(0.5, /*training=*/false);
    HostTensor<float> dx = test::poisoned_tensor<float>(dy.shape());
    cpu_fast::dropout_backward(dy.data(), zeros.data(), dx.data(), dy.numel(), eval, cpu_fast::Workers(2));
    CHECK(test::same_bits(dx, cpu::dropout_backward(dy, zeros, eval).dx));
    CHECK(test::same_bits(dx, dy));
}

TEST_CASE("fast dropout runs in place", "[cpu_fast]") {
    HostTensor<float> x = input(Shape{test::kSeveralItems}, 56);
    const cpu::DropoutResult<float> expected = cpu::dropout(x, options(0.4));
    HostTensor<uint8_t> mask = test::poisoned_tensor<uint8_t>(x.shape());
    cpu_fast::dropout_forward(x.data(), x.data(), mask.data(), x.numel(), options(0.4), cpu_fast::Workers(3));
    CHECK(test::same_bits(x, expected.y));
    CHECK(test::same_bits(mask, expected.mask));
}

TEST_CASE("fast dropout reports bad arguments as the reference", "[cpu_fast]") {
    const cpu_fast::Workers workers(1);
    float v = 1.0f;
    uint8_t m = 0;
    CHECK_THAT(test::error_message([&] { cpu_fast::dropout_forward(&v, &v, &m, 1, options(1.5), workers); }),
               Contains("dropout: p is 1.5; it must be in [0, 1]"));
    CHECK_THAT(test::error_message([&] {
                   cpu_fast::dropout_backward(&v, &m, &v, 1, options(std::numeric_limits<double>::quiet_NaN()), workers);
               }),
               Contains("dropout_backward: p is nan"));
    CHECK_THAT(test::error_message([&] { cpu_fast::dropout_forward(&v, &v, &m, 0, options(0.5), workers); }),
               Contains("dropout: count 0 must be at least 1"));
    CHECK_THAT(test::error_message([&] { cpu_fast::dropout2d_forward(&v, &v, &m, Shape{1, 1, 1}, options(0.5), workers); }),
               Contains("dropout2d: x has shape (1, 1, 1); it must be (N, C, H, W)"));
    CHECK_THAT(
        test::error_message([&] { cpu_fast::dropout2d_backward(&v, &m, &v, Shape{1, 0, 1, 1}, options(0.5), workers); }),
        Contains("dropout2d_backward: dy has shape (1, 0, 1, 1); every dimension must be positive"));
}
