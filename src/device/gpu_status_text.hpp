// Why CUDA cannot be used here, in one line a user can act on (device.cpp's gpu_status(); tests feed it made-up
// versions, since no CI machine has an old driver).
#pragma once

#include <string>

namespace cudacnn::detail {

// status: the cudaError_t of the failed device query; driver_version and runtime_version as CUDA reports them
// (1000 · major + 10 · minor; a driver version of 0 means no driver is installed); visible_devices: the value
// of CUDA_VISIBLE_DEVICES, or nullptr when it is unset.
std::string describe_unusable_cuda(int status, int driver_version, int runtime_version, const char* visible_devices);

}  // namespace cudacnn::detail
