// Runs one kernel that reads one element past the end of global, dynamic shared or static shared memory.
// In the sanitizer build, AddressSanitizer (global, dynamic shared) or -fsanitize=bounds (static shared)
// must stop it with a report naming this file and the kernel's line; tests/CMakeLists.txt checks that.
#include <cstdio>
#include <cstring>

#include "cuda/launch.cuh"
#include "cudacnn/device.hpp"

namespace cudacnn::test {

__global__ void read_past_global(const float* in, float* out, int n) {
    out[threadIdx.x] = in[threadIdx.x + n - 31];  // thread 31 reads in[n]
}

__global__ void read_past_dynamic_shared(float* out) {
    float* staged = dynamic_smem<float>();
    staged[threadIdx.x] = float(threadIdx.x);
    __syncthreads();
    out[threadIdx.x] = staged[threadIdx.x + 1];  // thread 31 reads staged[32] of 32
}

__global__ void read_past_static_shared(float* out, int offset) {
    __shared__ float staged[32];
    staged[threadIdx.x] = float(threadIdx.x);
    __syncthreads();
    out[threadIdx.x] = staged[threadIdx.x + offset];  // thread 31 reads staged[32]
}

}  // namespace cudacnn::test

int main(int argc, char** argv) {
    using namespace cudacnn;
    const char* what = argc > 1 ? argv[1] : "";
    const int n = 32;
    DeviceBuffer in(n * sizeof(float)), out(n * sizeof(float));
    fill_bytes(in.data(), 0, in.bytes());
    if (std::strcmp(what, "global") == 0) {
        launch(test::read_past_global, dim3(1), dim3(32), 0, nullptr, in.data_as<const float>(), out.data_as<float>(), n);
    } else if (std::strcmp(what, "dynamic-shared") == 0) {
        launch(test::read_past_dynamic_shared, dim3(1), dim3(32), 32 * sizeof(float), nullptr, out.data_as<float>());
    } else if (std::strcmp(what, "static-shared") == 0) {
        launch(test::read_past_static_shared, dim3(1), dim3(32), 0, nullptr, out.data_as<float>(), 1);
    } else {
        std::fprintf(stderr, "usage: %s global|dynamic-shared|static-shared\n", argv[0]);
        return 2;
    }
    std::printf("no sanitizer report: the out-of-bounds read went unnoticed\n");
    return 1;
}
