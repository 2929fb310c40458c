// Parity of the non-finite check (cuda/nonfinite.cu) with its host version, which the CPU backends run: the
// same record (step, smallest index, kinds) for NaNs and infinities anywhere, aligned or not, and an earlier
// step's record kept.
#include <catch2/catch.hpp>

#include <cstdint>
#include <limits>
#include <vector>

#include "cuda/nonfinite.hpp"
#include "support/parity.hpp"

using namespace cudacnn;
using gpu::NonfiniteRecord;

namespace {

constexpr float kInf = std::numeric_limits<float>::infinity();
constexpr float kNaN = std::numeric_limits<float>::quiet_NaN();

// Runs the check at `step` on the device and on the host, from the same starting record; both results.
struct Both {
    NonfiniteRecord device, host;
};

Both check_at(const HostTensor<float>& values, int64_t step, NonfiniteRecord start, int64_t offset = 0) {
    const test::OffsetBuffer<float> d_values = test::to_device_at(values, offset);
    DeviceBuffer d_step = upload(std::vector<int64_t>{step});
    DeviceBuffer d_record = upload(&start, 1);
    gpu::record_nonfinite(d_values.data(), values.numel(), d_step.data_as<const int64_t>(),
                          d_record.data_as<NonfiniteRecord>(), nullptr);
    Both both{download<NonfiniteRecord>(d_record.data_as<NonfiniteRecord>(), 1)[0], start};
    gpu::record_nonfinite_host(values.data(), values.numel(), &step, &both.host);
    return both;
}

void check_same(const Both& both) {
    CHECK(both.device.step_plus_one == both.host.step_plus_one);
    CHECK(both.device.not_first_index == both.host.not_first_index);
    CHECK(both.device.kinds == both.host.kinds);
}

}  // namespace

TEST_CASE("record_nonfinite: finite values leave the record empty", "[parity][nonfinite]") {
    for (int64_t n : {1, 3, 4, 1000, 70001}) {
        INFO(n);
        HostTensor<float> values = test::random_tensor<float>(Shape{n}, 3);
        values[0] = std::numeric_limits<float>::max();
        values[n - 1] = -std::numeric_limits<float>::denorm_min();
        const Both both = check_at(values, 7, NonfiniteRecord{});
        check_same(both);
        CHECK(both.device.step_plus_one == 0);
    }
}

TEST_CASE("record_nonfinite: the step, the smallest index and every kind, aligned or not", "[parity][nonfinite]") {
    for (int64_t offset : {0, 1, 3}) {
        for (int64_t n : {1, 5, 4099, 300000}) {
            INFO("n " << n << ", offset " << offset);
            HostTensor<float> values = test::random_tensor<float>(Shape{n}, 4);
            const int64_t first = n / 3;
            values[first] = -kInf;
            values[n - 1] = kNaN;
            if (n > 2) values[(first + n) / 2] = kInf;
            const Both both = check_at(values, 41, NonfiniteRecord{}, offset);
            check_same(both);
            CHECK(both.device.step_plus_one == 42);
            CHECK(~both.device.not_first_index == static_cast<unsigned long long>(first));
            const unsigned long long kinds = n == 1 ? gpu::kNonfiniteNaN
                                             : n == 2 ? gpu::kNonfiniteNegInf | gpu::kNonfiniteNaN
                                                      : gpu::kNonfiniteNaN | gpu::kNonfinitePosInf |
                                                            gpu::kNonfiniteNegInf;
            CHECK(both.device.kinds == kinds);
        }
    }
}

TEST_CASE("record_nonfinite: an earlier step's record stays; the same step's gathers", "[parity][nonfinite]") {
    HostTensor<float> values = test::random_tensor<float>(Shape{999}, 5);
    values[10] = kNaN;
    NonfiniteRecord earlier;
    earlier.step_plus_one = 3;
    earlier.not_first_index = ~500ull;
    earlier.kinds = gpu::kNonfinitePosInf;
    const Both kept = check_at(values, 9, earlier);
    check_same(kept);
    CHECK(kept.device.step_plus_one == 3);
    CHECK(~kept.device.not_first_index == 500);
    CHECK(kept.device.kinds == gpu::kNonfinitePosInf);

    NonfiniteRecord same = earlier;
    same.step_plus_one = 10;  // step 9
    const Both gathered = check_at(values, 9, same);
    check_same(gathered);
    CHECK(~gathered.device.not_first_index == 10);
    CHECK(gathered.device.kinds == (gpu::kNonfinitePosInf | gpu::kNonfiniteNaN));
}
