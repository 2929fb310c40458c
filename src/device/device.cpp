// gpu_status(): whether there is a device to run kernels on and, in one line, which one or why not.
#include "cudacnn/device.hpp"

#include <cuda_runtime_api.h>

#include <cstdlib>

#include "src/device/gpu_status_text.hpp"

namespace cudacnn {

namespace detail {

namespace {

std::string cuda_version_text(int version) {
    return fmt::format("{}.{}", version / 1000, version % 1000 / 10);
}

}  // namespace

std::string describe_unusable_cuda(int status, int driver_version, int runtime_version, const char* visible_devices) {
    const auto code = static_cast<cudaError_t>(status);
    if (code == cudaErrorInsufficientDriver && driver_version == 0) {
        return "no NVIDIA driver is installed (the CUDA runtime found no libcuda.so.1): install the NVIDIA driver";
    }
    if (code == cudaErrorInsufficientDriver) {
        return fmt::format("the NVIDIA driver supports CUDA {} but this build needs CUDA {}: install a newer "
                           "driver (or rebuild with a CUDA toolkit of at most {})",
                           cuda_version_text(driver_version), cuda_version_text(runtime_version),
                           cuda_version_text(driver_version));
    }
    std::string text = fmt::format("{} ({})", cudaGetErrorString(code), cudaGetErrorName(code));
    if (code == cudaErrorNoDevice && visible_devices != nullptr) {
        text += fmt::format("; CUDA_VISIBLE_DEVICES is '{}', which hides the others", visible_devices);
    }
    return text;
}

}  // namespace detail

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
        int driver_version = 0, runtime_version = 0;
        cudaDriverGetVersion(&driver_version);
        cudaRuntimeGetVersion(&runtime_version);
        cudaGetLastError();
        return {false, detail::describe_unusable_cuda(status, driver_version, runtime_version,
                                                      std::getenv("CUDA_VISIBLE_DEVICES"))};
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
