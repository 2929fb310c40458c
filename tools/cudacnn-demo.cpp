// cudacnn-demo: runs the tiled SGEMM kernel on the device (a real GPU in the cuda flavour, the CPU
// emulator in the emu flavour), checks it against the CPU reference and prints the timings. It is the
// main job until cudacnn-train exists.
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <string>
#include <vector>

#include <fmt/format.h>

#include "cuda/demo/tiled_matmul.hpp"
#include "cudacnn/device.hpp"
#include "cudacnn/error.hpp"

namespace {

int parse_size(int argc, char** argv) {
    int size = 256;
    for (int i = 1; i < argc; ++i) {
        const std::string arg = argv[i];
        if (arg == "--size" && i + 1 < argc) {
            size = std::atoi(argv[++i]);
        } else if (arg == "--help" || arg == "-h") {
            std::printf("usage: cudacnn-demo [--size N]   (N×N×N SGEMM, default 256)\n");
            std::exit(0);
        } else {
            throw cudacnn::Error(fmt::format("cudacnn-demo: unknown argument '{}'; try --help", arg));
        }
    }
    if (size < 1 || size > 8192) {
        throw cudacnn::Error(fmt::format("cudacnn-demo: --size {} is out of range; use 1 to 8192", size));
    }
    return size;
}

int run(int argc, char** argv) {
    const int n = parse_size(argc, argv);
    const cudacnn::GpuStatus gpu = cudacnn::gpu_status();
    if (!gpu.available) {
        std::printf("cudacnn-demo: no GPU: %s. Build the emu flavour to run the kernels on the CPU.\n",
                    gpu.description.c_str());
        return 2;
    }
    std::printf("cudacnn-demo: %d×%d×%d SGEMM with the tiled shared-memory kernel on: %s\n", n, n, n,
                gpu.description.c_str());
    std::mt19937 rng(1);
    std::uniform_real_distribution<float> dist(-1.0f, 1.0f);
    std::vector<float> a(size_t(n) * n), b(size_t(n) * n), reference(size_t(n) * n);
    for (float& x : a) x = dist(rng);
    for (float& x : b) x = dist(rng);

    cudacnn::DeviceBuffer da = cudacnn::upload(a), db = cudacnn::upload(b), dc(a.size() * sizeof(float));
    cudacnn::Event start, stop;
    start.record();
    cudacnn::demo::tiled_matmul(da.data_as<float>(), db.data_as<float>(), dc.data_as<float>(), n, n, n, nullptr);
    stop.record();
    stop.synchronize();
    const double device_ms = cudacnn::Event::elapsed_ms(start, stop);
    const std::vector<float> c = cudacnn::download<float>(dc);

    const auto t0 = std::chrono::steady_clock::now();
    cudacnn::demo::matmul_reference(a.data(), b.data(), reference.data(), n, n, n);
    const double reference_ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();

    double max_error = 0.0;
    for (size_t i = 0; i < c.size(); ++i) max_error = std::fmax(max_error, std::fabs(c[i] - reference[i]));
    const double gflop = 2.0 * n * n * double(n) * 1e-9;
    std::printf("  device kernel   %10.2f ms  %8.2f GFLOP/s\n", device_ms, gflop / (device_ms * 1e-3));
    std::printf("  CPU reference   %10.2f ms  %8.2f GFLOP/s\n", reference_ms, gflop / (reference_ms * 1e-3));
    // Float sums of n products of values in [-1, 1] against a double reference: about n · 2^-24 · n.
    const double tolerance = 1e-7 * n * n + 1e-6;
    std::printf("  max |device - reference| = %.3g (tolerance %.3g): %s\n", max_error, tolerance,
                max_error <= tolerance ? "OK" : "MISMATCH");
    std::printf("Training (cudacnn-train) is not built yet; this demo proves the kernel path end to end.\n");
    return max_error <= tolerance ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
    try {
        return run(argc, argv);
    } catch (const std::exception& e) {
        std::fprintf(stderr, "%s\n", e.what());
        return 1;
    }
}
