// Proves the device path implements CUDA's semantics: built-in indices, shared memory and barriers, warp
// collectives, atomics, dynamic shared memory and launch limits. Runs on the emulator (every fiber order)
// and, in the cuda flavour, on a real GPU.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <numeric>
#include <random>
#include <vector>

#include "cuda/demo/tiled_matmul.hpp"
#include "cudacnn/device.hpp"
#include "kernels/emulator_kernels.hpp"

using namespace cudacnn;

namespace {

std::vector<float> random_floats(size_t n, unsigned seed, float lo = -1.0f, float hi = 1.0f) {
    std::mt19937 rng(seed);
    std::uniform_real_distribution<float> dist(lo, hi);
    std::vector<float> v(n);
    for (float& x : v) x = dist(rng);
    return v;
}

// A device buffer of n floats filled with NaN, so an output the kernel forgot to write cannot pass.
DeviceBuffer poisoned_floats(size_t n) {
    DeviceBuffer buffer(n * sizeof(float));
    fill_bytes(buffer.data(), 0xff, buffer.bytes());
    return buffer;
}

}  // namespace

TEST_CASE("built-in index variables cover a 3-D grid of 3-D blocks exactly once", "[kernels]") {
    const unsigned gx = 3, gy = 2, gz = 2, bx = 5, by = 3, bz = 2;
    const size_t n = size_t{gx} * gy * gz * bx * by * bz;
    DeviceBuffer out(n * sizeof(int));
    fill_bytes(out.data(), 0xff, out.bytes());
    test::write_thread_ids(out.data_as<int>(), gx, gy, gz, bx, by, bz);
    std::vector<int> expected(n);
    std::iota(expected.begin(), expected.end(), 0);
    CHECK(download<int>(out) == expected);
}

TEST_CASE("tiled matmul with shared memory and barriers matches the reference on non-tile sizes", "[kernels]") {
    // 37 × 29 × 41: no dimension is a multiple of the 16-wide tile, so every edge guard is exercised.
    const int m = 37, n = 29, k = 41;
    const auto a = random_floats(size_t{m} * k, 1), b = random_floats(size_t{k} * n, 2);
    DeviceBuffer da = upload(a), db = upload(b), dc = poisoned_floats(size_t{m} * n);
    demo::tiled_matmul(da.data_as<float>(), db.data_as<float>(), dc.data_as<float>(), m, n, k, nullptr);
    std::vector<float> expected(size_t{m} * n);
    demo::matmul_reference(a.data(), b.data(), expected.data(), m, n, k);
    const auto c = download<float>(dc);
    // Tolerance: each output sums 41 products of values in [-1, 1]; float accumulation in a different order
    // than the double reference differs by at most about k · 2^-24 · Σ|a·b| ≤ 41 · 6e-8 · 41 ≈ 1e-4.
    constexpr float kTolerance = 1e-4f;
    for (size_t i = 0; i < c.size(); ++i) REQUIRE(std::fabs(c[i] - expected[i]) <= kTolerance);
}

TEST_CASE("warp shuffles, shared memory and atomics reduce a sum and a max across blocks", "[kernels]") {
    const int n = 10007;  // prime: the grid-stride loop ends mid-warp and mid-block
    const auto in = random_floats(n, 3, -2.0f, 2.0f);
    DeviceBuffer din = upload(in);
    const std::vector<float> init{0.0f, -INFINITY};
    DeviceBuffer sum_and_max = upload(init);
    float* sum = sum_and_max.data_as<float>();
    test::reduce_sum_and_max(din.data_as<float>(), n, sum, sum + 1, 7, 96);
    const auto result = download<float>(sum_and_max);
    const double expected_sum = std::accumulate(in.begin(), in.end(), 0.0);
    const float expected_max = *std::max_element(in.begin(), in.end());
    // Float partial sums of 10^4 values of magnitude ≤ 2 in a tree order: error well under 1e-3 of the sum's
    // scale (Σ|x| ≈ 10^4), so an absolute 1e-2 leaves room for any summation order, including atomics'.
    CHECK(std::fabs(result[0] - expected_sum) <= 1e-2);
    CHECK(result[1] == expected_max);  // max is exact whatever the order
}

TEST_CASE("integer atomicAdd, atomicMin, atomicMax and atomicCAS across blocks", "[kernels]") {
    const int n = 1001;
    const auto in = random_floats(n, 7);
    DeviceBuffer din = upload(in);
    DeviceBuffer counts = upload(std::vector<int>{0, n, -1, 0}), slots = upload(std::vector<int>(8, -1));
    test::integer_atomics(din.data_as<float>(), n, 0.5f, counts.data_as<int>(), slots.data_as<int>());
    int above = 0, first = n, last = -1;
    for (int i = 0; i < n; ++i) {
        if (in[i] > 0.5f) ++above, first = std::min(first, i), last = std::max(last, i);
    }
    CHECK(download<int>(counts) == std::vector<int>{above, first, last, 8});
    const auto won = download<int>(slots);
    for (int s = 0; s < 8; ++s) CHECK(won[s] % 8 == s);  // each slot was won once, by a thread of its class
}

TEST_CASE("ballot, any, all and shuffles of width 16 in divergent half-warps", "[kernels]") {
    const int threads = 64;
    std::vector<int> predicates(threads);
    for (int t = 0; t < threads; ++t) predicates[t] = (t * 7 + 3) % 5 == 0;
    predicates[32 + 20] = 0;
    for (int t = 32; t < 48; ++t) predicates[t] = 1;  // one half-warp where all holds
    const auto values = random_floats(threads, 4);
    DeviceBuffer dvalues = upload(values), dpredicates = upload(predicates);
    DeviceBuffer dout(threads * sizeof(test::WarpVoteResult));
    fill_bytes(dout.data(), 0xff, dout.bytes());
    test::warp_votes(dvalues.data_as<float>(), dpredicates.data_as<int>(), dout.data_as<test::WarpVoteResult>(),
                     threads);
    const auto out = download<test::WarpVoteResult>(dout);
    for (int t = 0; t < threads; ++t) {
        const int lane = t % 32, half_first = t - lane % 16, warp_first = t - lane;
        unsigned ballot = 0;
        for (int l = 0; l < 16; ++l) ballot |= unsigned(predicates[half_first + l] != 0) << (l + (lane / 16) * 16);
        bool any = false, all = true;
        for (int l = 0; l < 16; ++l) any |= predicates[half_first + l] != 0, all &= predicates[half_first + l] != 0;
        INFO("thread " << t);
        CHECK(out[t].ballot == ballot);
        CHECK(out[t].any == int(any));
        CHECK(out[t].all == int(all));
        CHECK(out[t].shfl_idx == values[half_first + (lane % 16 + 3) % 16]);
        CHECK(out[t].shfl_up == (lane % 16 == 0 ? values[t] : values[t - 1]));
        CHECK(out[t].shfl_down == (lane % 16 >= 14 ? values[t] : values[t + 2]));
        CHECK(out[t].shfl_xor == values[warp_first + (lane ^ 1)]);
    }
}

TEST_CASE("dynamic shared memory: a block-wise reverse through dynamic_smem", "[kernels]") {
    const int n = 1000, block = 200;  // 200 threads: not a multiple of the warp size
    const auto in = random_floats(n, 5);
    DeviceBuffer din = upload(in), dout = poisoned_floats(n);
    test::reverse_in_blocks(din.data_as<float>(), dout.data_as<float>(), n, block);
    const auto out = download<float>(dout);
    for (int i = 0; i < n; ++i) REQUIRE(out[i] == in[i / block * block + (block - 1 - i % block)]);
}

TEST_CASE("more than 48 KiB of dynamic shared memory after opting in", "[kernels]") {
    const int n = 512, block = 256, shared_bytes = 64 * 1024;
    const auto in = random_floats(n, 6);
    DeviceBuffer din = upload(in), dout = poisoned_floats(n);
    test::reverse_with_large_shared(din.data_as<float>(), dout.data_as<float>(), n, block, shared_bytes);
    const auto out = download<float>(dout);
    for (int i = 0; i < n; ++i) REQUIRE(out[i] == in[i / block * block + (block - 1 - i % block)]);
}

TEST_CASE("__syncthreads_count, _and and _or", "[kernels]") {
    DeviceBuffer results(3 * sizeof(int));
    int* r = results.data_as<int>();
    test::barrier_votes(100, 3, r, r + 1, r + 2);  // threads 0, 3, ..., 99: 34 of 100
    CHECK(download<int>(results) == std::vector<int>{34, 0, 1});
    test::barrier_votes(100, 1, r, r + 1, r + 2);
    CHECK(download<int>(results) == std::vector<int>{100, 1, 1});
    test::barrier_votes(100, 1000, r, r + 1, r + 2);  // only thread 0
    CHECK(download<int>(results) == std::vector<int>{1, 0, 1});
}

TEST_CASE("launches that break sm_90 limits throw an Error naming the kernel and the limit", "[kernels]") {
    // CUDA 13 (driver 580) refuses a bad grid or block with cudaErrorInvalidValue, seen on an H200; the
    // emulator answers the same, and the message names the kernel and the configuration.
    CHECK_THROWS_WITH(test::launch_with_block(1025, 1, 1), Catch::Contains("cudaErrorInvalidValue") &&
                                                               Catch::Contains("empty_kernel") &&
                                                               Catch::Contains("block (1025,1,1)"));
    CHECK_THROWS_WITH(test::launch_with_block(32, 32, 2), Catch::Contains("cudaErrorInvalidValue"));
    CHECK_THROWS_WITH(test::launch_with_block(1, 1, 65), Catch::Contains("cudaErrorInvalidValue"));
    CHECK_THROWS_WITH(test::launch_with_grid(1, 65536, 1),
                      Catch::Contains("cudaErrorInvalidValue") && Catch::Contains("grid (1,65536,1)"));
    CHECK_THROWS_WITH(test::launch_with_grid(0, 1, 1), Catch::Contains("cudaErrorInvalidValue"));
    // Above the 48 KiB default without cudaFuncSetAttribute: refused (emu: cudaErrorInvalidValue).
    CHECK_THROWS_AS(test::launch_with_dynamic_shared(48 * 1024 + 4), Error);
    // The limits themselves are fine.
    CHECK_NOTHROW(test::launch_with_block(1024, 1, 1));
    CHECK_NOTHROW(test::launch_with_block(1, 1, 64));
    CHECK_NOTHROW(test::launch_with_dynamic_shared(48 * 1024));
}
