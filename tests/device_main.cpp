// main() of the test programs that need a device. When there is none (the cuda flavour on a machine without
// a GPU) it prints one line saying why and exits 77, which CTest reports as skipped (SKIP_RETURN_CODE),
// so the rest of the suite runs undisturbed.
#include <cstdio>
#include <exception>

#include "cudacnn/device.hpp"

namespace cudacnn::test {
int run_catch_session(int argc, char** argv);  // tests/catch_impl.cpp
}

int main(int argc, char** argv) try {
    const cudacnn::GpuStatus gpu = cudacnn::gpu_status();
    if (!gpu.available) {
        std::printf("SKIPPED %s: these tests need a GPU: %s\n", argv[0], gpu.description.c_str());
        return 77;
    }
    std::printf("device: %s\n", gpu.description.c_str());
    return cudacnn::test::run_catch_session(argc, argv);
} catch (const std::exception& e) {  // e.g. a bad CUDACNN_EMU_* setting
    std::fprintf(stderr, "%s: %s\n", argv[0], e.what());
    return 1;
}
