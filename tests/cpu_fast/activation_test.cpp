// The fast relu (src/cpu_fast/activation.cpp) against the reference: bit-identical, NaN / ±0 / inf included,
// with 1, 2 and 3 threads, in place, and its errors.
#include <catch2/catch.hpp>

#include <cstdint>
#include <limits>

#include "cudacnn/ops/activation.hpp"
#include "src/cpu_fast/activation.hpp"
#include "support/errors.hpp"
#include "cpu_fast/fast_support.hpp"

using namespace cudacnn;
using Catch::Contains;

namespace {

// relu and its backward are selects, the reference's own: the fast results must equal it bit for bit (no
// tolerance).

// Random values with the special cases the reference's rules are about: NaN, ±0, ±inf.
HostTensor<float> with_specials(const Shape& shape, uint32_t seed) {
    HostTensor<float> x = test::random_tensor<float>(shape, seed);
    const float inf = std::numeric_limits<float>::infinity();
    const float specials[] = {std::numeric_limits<float>::quiet_NaN(), 0.0f, -0.0f, inf, -inf};
    for (int64_t k = 0; k < 5; ++k) x[(k * 37) % x.numel()] = specials[k];
    return x;
}

void check_relu(const Shape& shape) {
    const HostTensor<float> x = with_specials(shape, 11);
    const HostTensor<float> expected_y = cpu::relu(x);
    HostTensor<float> dy = with_specials(shape, 12);
    const HostTensor<float> expected_dx = cpu::relu_backward(expected_y, dy).dx;
    for (int threads : test::kThreadCounts) {
        INFO("shape " << shape.to_string() << ", threads " << threads);
        const cpu_fast::Workers workers(threads);
        HostTensor<float> y = test::poisoned_tensor<float>(shape);
        cpu_fast::relu_forward(x.data(), y.data(), x.numel(), workers);
        CHECK(test::same_bits(y, expected_y));
        HostTensor<float> dx = test::poisoned_tensor<float>(shape);
        cpu_fast::relu_backward(expected_y.data(), dy.data(), dx.data(), x.numel(), workers);
        CHECK(test::same_bits(dx, expected_dx));
    }
}

}  // namespace

TEST_CASE("fast relu equals the reference bit for bit with any thread count", "[cpu_fast]") {
    check_relu(Shape{3, 5, 7, 9});
    check_relu(Shape{test::kSeveralItems});
}

TEST_CASE("fast relu runs in place", "[cpu_fast]") {
    HostTensor<float> x = with_specials(Shape{test::kSeveralItems}, 13);
    const HostTensor<float> expected = cpu::relu(x);
    cpu_fast::relu_forward(x.data(), x.data(), x.numel(), cpu_fast::Workers(2));
    CHECK(test::same_bits(x, expected));
    HostTensor<float> dy = test::random_tensor<float>(x.shape(), 14);
    const HostTensor<float> expected_dx = cpu::relu_backward(x, dy).dx;
    cpu_fast::relu_backward(x.data(), dy.data(), dy.data(), x.numel(), cpu_fast::Workers(2));
    CHECK(test::same_bits(dy, expected_dx));
}

TEST_CASE("fast relu refuses an empty input", "[cpu_fast]") {
    float v = 1.0f;
    const cpu_fast::Workers workers(1);
    CHECK_THAT(test::error_message([&] { cpu_fast::relu_forward(&v, &v, 0, workers); }),
               Contains("relu: count 0 must be at least 1"));
    CHECK_THAT(test::error_message([&] { cpu_fast::relu_backward(&v, &v, &v, -1, workers); }),
               Contains("relu_backward: count -1 must be at least 1"));
}
