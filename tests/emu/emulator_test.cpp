// The emulator's own guarantees: fiber orders expose a missing barrier, deadlocks and misused collectives
// are reported instead of hanging, and settings behave. Emu flavour only.
#include <catch2/catch.hpp>

#include <cmath>
#include <vector>

#include "cuda/emu/launch_kernel.hpp"
#include "cudacnn/device.hpp"
#include "emu/emu_only_kernels.hpp"

using namespace cudacnn;

namespace {

// Restores the emulator's settings when a test that changed them ends.
struct SettingsGuard {
    emu::Settings saved = emu::settings();
    ~SettingsGuard() { emu::set_settings(saved); }
};

struct Exchange {
    std::vector<float> in, out;
    // How many threads did not get in[(t + 1) % n], what the kernel computes with its barrier.
    size_t wrong() const {
        size_t count = 0;
        for (size_t t = 0; t < in.size(); ++t) count += out[t] != in[(t + 1) % in.size()];
        return count;
    }
    bool correct() const { return wrong() == 0; }
};

Exchange exchange_with_order(emu::FiberOrder order, bool with_barrier, int threads) {
    emu::Settings s = emu::settings();
    s.fiber_order = order;
    emu::set_settings(s);
    // Fresh values on every call, so what an earlier launch left in shared memory never looks right.
    static int call = 0;
    const float salt = float(1000 * ++call);
    Exchange e;
    e.in.resize(threads);
    for (int t = 0; t < threads; ++t) e.in[t] = salt + float(t + 1);
    DeviceBuffer din = upload(e.in), dout(threads * sizeof(float));
    fill_bytes(dout.data(), 0xff, dout.bytes());
    test::neighbour_exchange(din.data_as<float>(), dout.data_as<float>(), threads, with_barrier);
    e.out = download<float>(dout);
    return e;
}

}  // namespace

TEST_CASE("a missing __syncthreads gives results that depend on the fiber order", "[emu]") {
    SettingsGuard guard;
    const int threads = 96;
    // Without the barrier a thread reads its neighbour's slot before (forward order) or after (reverse)
    // the neighbour wrote it. Forward order gets stale values everywhere but at the last thread, whose
    // neighbour is thread 0; reverse order is right everywhere but there.
    CHECK(exchange_with_order(emu::FiberOrder::forward, false, threads).wrong() == size_t(threads - 1));
    CHECK(exchange_with_order(emu::FiberOrder::reverse, false, threads).wrong() == 1);
    // With the barrier every order is right.
    for (emu::FiberOrder order : {emu::FiberOrder::forward, emu::FiberOrder::reverse, emu::FiberOrder::random}) {
        INFO("order " << emu::fiber_order_name(order));
        CHECK(exchange_with_order(order, true, threads).correct());
    }
}

TEST_CASE("a deadlock is reported with the kernel, the block and who waits where", "[emu]") {
    CHECK_THROWS_WITH(test::shuffle_against_barrier(),
                      Catch::Contains("cudaErrorLaunchFailure") && Catch::Contains("deadlock") &&
                          Catch::Contains("shuffle_against_barrier_kernel") && Catch::Contains("block (0,0,0)") &&
                          Catch::Contains("31 threads (first (1,0,0)) wait at __syncthreads") &&
                          Catch::Contains("__shfl_sync(mask 0x00000003)"));
    // The emulator is still usable afterwards.
    CHECK(exchange_with_order(emu::settings().fiber_order, true, 64).correct());
}

TEST_CASE("lanes of a warp at different collectives, or a mask without the caller, are errors", "[emu]") {
    CHECK_THROWS_WITH(test::mismatched_collectives(),
                      Catch::Contains("different warp collectives") && Catch::Contains("__ballot_sync") &&
                          Catch::Contains("__shfl_sync"));
    CHECK_THROWS_WITH(test::mask_without_own_lane(), Catch::Contains("does not name its own lane 5"));
}

TEST_CASE("a shuffle from a lane that took no part returns poison", "[emu]") {
    DeviceBuffer out(sizeof(float));
    fill_bytes(out.data(), 0, out.bytes());
    test::shuffle_from_finished_lane(out.data_as<float>());
    CHECK(std::isnan(download<float>(out)[0]));
}

TEST_CASE("one worker thread or several give the same results", "[emu]") {
    SettingsGuard guard;
    for (int workers : {1, 3}) {
        emu::Settings s = emu::settings();
        s.worker_threads = workers;
        emu::set_settings(s);
        INFO(workers << " workers");
        CHECK(exchange_with_order(emu::FiberOrder::random, true, 64).correct());
    }
}
