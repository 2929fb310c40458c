// The status checks behind CUDACNN_*_CHECK: status codes become Errors naming the call, the code and a fix.
#include "cudacnn/error.hpp"

#include <cctype>
#include <string>

#include "cudacnn/error_text.hpp"

#include <cuda_runtime_api.h>
#if CUDACNN_CUDA
#include <cublas_v2.h>
#include <cudnn.h>
#endif

namespace cudacnn {

namespace {

// A short "what to do" for the CUDA errors a user can act on; empty when there is no useful advice.
const char* cuda_hint(cudaError_t status) {
    switch (status) {
        case cudaErrorMemoryAllocation:
            return "lower the batch size or the model size, or free buffers that are no longer needed";
        case cudaErrorInsufficientDriver:
        case cudaErrorNoDevice:
            return "there is no usable GPU here; use --device cpu, or the emu flavour to run the kernels on "
                   "the CPU";
        case cudaErrorInvalidConfiguration:
        case cudaErrorLaunchOutOfResources:
            return "the kernel's block size, shared memory or register use exceeds what the device allows";
        case cudaErrorNoKernelImageForDevice:
        case cudaErrorInvalidDeviceFunction:
            return "the binary has no code for this GPU; set CMAKE_CUDA_ARCHITECTURES to its compute "
                   "capability";
        case cudaErrorIllegalAddress:
        case cudaErrorLaunchFailure:
        case cudaErrorMisalignedAddress:
            // These errors are sticky: the CUDA context is unusable afterwards, so only a new process helps.
            return "a kernel accessed memory it must not; run under compute-sanitizer or the emu flavour "
                   "with "
                   "-DCUDACNN_SANITIZE=ON to find it (the process must be restarted)";
        default:
            return "";
    }
}

std::string with_hint(std::string message, const char* hint) {
    if (hint != nullptr && *hint != '\0') {
        message += ": ";
        message += hint;
    }
    return message;
}

}  // namespace

void throw_error(const char* file, int line, const std::string& message) {
    throw Error(fmt::format("{}:{}: {}", file, line, message));
}

void check_cuda_status(int status, const char* expression, const char* file, int line) {
    if (status == 0) return;
    const auto code = static_cast<cudaError_t>(status);
    throw_error(file, line,
                with_hint(fmt::format("CUDA call '{}' failed: {} ({})", expression, cudaGetErrorName(code),
                                      cudaGetErrorString(code)),
                          cuda_hint(code)));
}

#if CUDACNN_CUDA

void check_cublas_status(int status, const char* expression, const char* file, int line) {
    if (status == 0) return;
    const auto code = static_cast<cublasStatus_t>(status);
    const char* hint = "";
    if (code == CUBLAS_STATUS_ALLOC_FAILED) {
        hint = "lower the batch size or the model size";
    } else if (code == CUBLAS_STATUS_NOT_INITIALIZED) {
        hint = "cuBLAS could not start: is there a usable GPU and driver?";
    }
    throw_error(file, line,
                with_hint(fmt::format("cuBLAS call '{}' failed: {} ({})", expression,
                                      cublasGetStatusName(code), cublasGetStatusString(code)),
                          hint));
}

void check_cudnn_status(int status, const char* expression, const char* file, int line) {
    if (status == 0) return;
    const auto code = static_cast<cudnnStatus_t>(status);
    std::string message = fmt::format("cuDNN call '{}' failed: {}", expression, cudnnGetErrorString(code));
    // cuDNN 9 keeps a per-thread description of its last error that is often much more specific than the
    // code.
    char details[512] = {};
    cudnnGetLastErrorString(details, sizeof(details));
    if (details[0] != '\0') message += fmt::format(" ({})", details);
    const char* hint = "";
    switch (CUDNN_STATUS_CATEGORY(status)) {
        case CUDNN_STATUS_NOT_SUPPORTED:
            hint = "cuDNN does not support this shape, layout or data type; use the hand-written kernel";
            break;
        case CUDNN_STATUS_BAD_PARAM:
            hint = "a descriptor or argument is invalid; this is a bug in the caller";
            break;
        default:
            if (code == CUDNN_STATUS_INTERNAL_ERROR_DEVICE_ALLOCATION_FAILED) {
                hint = "lower the batch size or the model size";
            }
    }
    // cuDNN 9 loads its engines from further libraries (libcudnn_*.so.9) when first used.
    if (code == CUDNN_STATUS_SUBLIBRARY_LOADING_FAILED || code == CUDNN_STATUS_NOT_SUPPORTED_SUBLIBRARY_UNAVAILABLE) {
        hint = "a part of cuDNN 9 (a libcudnn_*.so.9 library) could not be loaded: install the whole of cuDNN 9 or "
               "put its lib folder on LD_LIBRARY_PATH, or use --conv-algo direct or im2col, which need no cuDNN";
    } else if (code == CUDNN_STATUS_SUBLIBRARY_VERSION_MISMATCH) {
        hint = "the cuDNN libraries found are of different versions: remove the stray copy (ldconfig -p | grep "
               "cudnn lists them) or use --conv-algo direct or im2col";
    } else if (code == CUDNN_STATUS_NOT_INITIALIZED) {
        hint = "cuDNN could not start: is there a usable GPU and driver? (--conv-algo direct or im2col need no "
               "cuDNN)";
    }
    throw_error(file, line, with_hint(std::move(message), hint));
}

#else  // CUDACNN_EMU: cuBLAS and cuDNN cannot run without a GPU, so the emu flavour does not link them.

void check_cublas_status(int status, const char* expression, const char* file, int line) {
    if (status == 0) return;
    throw_error(
        file, line,
        fmt::format("cuBLAS call '{}' failed with status {}: cuBLAS is not part of the emu flavour, so "
                    "this code path should not run here; use the hand-written kernels",
                    expression, status));
}

void check_cudnn_status(int status, const char* expression, const char* file, int line) {
    if (status == 0) return;
    throw_error(file, line,
                fmt::format("cuDNN call '{}' failed with status {}: cuDNN is not part of the emu flavour, so "
                            "this code path should not run here; use the hand-written kernels",
                            expression, status));
}

#endif

std::string without_location(const Error& e) {
    const std::string message = e.what();
    // "path:line: message": strip up to the first ": " only when the part before it ends in ":<digits>".
    const std::size_t colon = message.find(": ");
    if (colon == std::string::npos) return message;
    std::size_t digits = colon;
    while (digits > 0 && std::isdigit(static_cast<unsigned char>(message[digits - 1]))) --digits;
    if (digits == colon || digits < 2 || message[digits - 1] != ':') return message;
    return message.substr(colon + 2);
}

}  // namespace cudacnn
