// gpu_status(): whether there is a device to run kernels on and, in one line, which one or why not.
#include "cudacnn/device.hpp"

#include <cuda_runtime_api.h>

namespace cudacnn {

namespace {

GpuStatus query_gpu_status() {
    // The same path serves both flavours: under the emulator these calls are answered by
    // cuda/emu/runtime.cpp, whose device name says that it is the emulator.
    int count = 0;
    cudaError_t status = cudaGetDeviceCount(&count);
    if (status == cudaSuccess && count == 0) return {false, "the CUDA runtime reports no device"};
    int device = 0;
    if (status == cudaSuccess) status = cudaGetDevice(&device);
    cudaDeviceProp prop{};
    if (status == cudaSuccess) status = cudaGetDeviceProperties(&prop, device);
    if (status != cudaSuccess) {
        // A failed query is recorded as the thread's last error; clear it so that the next launch check does
        // not report it as its own.
        cudaGetLastError();
        return {false, fmt::format("{} ({})", cudaGetErrorString(status), cudaGetErrorName(status))};
    }
    const double gib = static_cast<double>(prop.totalGlobalMem) / (1024.0 * 1024.0 * 1024.0);
    std::string description = fmt::format("{}, sm_{}{}, {:.1f} GiB, {} SMs", prop.name, prop.major,
                                          prop.minor, gib, prop.multiProcessorCount);
    if (count > 1) description += fmt::format(" (device {} of {})", device, count);
    return {true, description};
}

}  // namespace

GpuStatus gpu_status() {
    static const GpuStatus status = query_gpu_status();
    return status;
}

}  // namespace cudacnn
