// The error path of cudacnn::launch (cuda/launch.cuh), kept out of line so launches stay small.
#include <cuda_runtime_api.h>

#include <string>

#include "cudacnn/error.hpp"
#ifdef CUDACNN_EMU
#include "cuda/emu/launch_kernel.hpp"
#endif

namespace cudacnn {

namespace {

std::string name_of_kernel(const void* kernel) {
#ifdef CUDACNN_EMU
    return emu::kernel_name(kernel);
#else
    const char* name = nullptr;
    if (cudaFuncGetName(&name, kernel) == cudaSuccess && name != nullptr) return name;
    cudaGetLastError();  // the name is a courtesy; don't leave its failure behind as the last error
    return fmt::format("at {}", kernel);
#endif
}

std::string failure_detail() {
#ifdef CUDACNN_EMU
    const std::string detail = emu::last_launch_error_detail();
    return detail.empty() ? "" : ": " + detail;
#else
    return "";
#endif
}

}  // namespace

void throw_launch_error(const void* kernel, dim3 grid, dim3 block, size_t shared_bytes, int status,
                        const char* file, int line) {
    const auto error = static_cast<cudaError_t>(status);
    throw_error(file, line,
                fmt::format("launch of kernel {} (grid ({},{},{}), block ({},{},{}), {} bytes of dynamic shared "
                            "memory) failed: {} ({}){}",
                            name_of_kernel(kernel), grid.x, grid.y, grid.z, block.x, block.y, block.z, shared_bytes,
                            cudaGetErrorName(error), cudaGetErrorString(error), failure_detail()));
}

}  // namespace cudacnn
