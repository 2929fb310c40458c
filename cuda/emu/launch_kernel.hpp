// The emulator's launch entry point and its settings (worker threads, fiber order), host side.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>

#include <cuda_runtime_api.h>

namespace cudacnn::emu {

// A kernel bound to its arguments: invoke(closure) runs the kernel body once, as the current CUDA thread.
struct KernelBody {
    void (*invoke)(const void* closure);
    const void* closure;
    const void* kernel;  // the __global__ function, for its name and attributes
};

// Runs every block of the launch before returning. Returns cudaSuccess, or the error a GPU would give
// (cudaErrorInvalidValue for a bad configuration, as CUDA 13 does, ...) and keeps a description for
// last_launch_error_detail(); a deadlock or an exception thrown by kernel code is cudaErrorLaunchFailure.
cudaError_t launch_kernel(const KernelBody& body, dim3 grid, dim3 block, size_t dynamic_shared_bytes,
                          cudaStream_t stream);

// What launch_kernel checks before it runs anything (nested launch, grid and block limits, dynamic shared
// memory), on its own: a launch recorded by a stream capture is checked when it is recorded, as CUDA does.
cudaError_t check_launch(const void* kernel, dim3 grid, dim3 block, size_t dynamic_shared_bytes);

// What went wrong in this host thread's last failed launch, in words ("" after a good one).
std::string last_launch_error_detail();

// ---- stream capture (CUDA graphs) -----------------------------------------------------------------------
// While a stream captures (cudaStreamBeginCapture .. cudaStreamEndCapture), launches and asynchronous copies
// and fills queued on it are recorded instead of run; cudaGraphLaunch runs the recording, in order. As in
// CUDA, the calls that would wait for or implicitly order with a capturing stream (cudaMalloc, cudaFree,
// cudaMemcpy, cudaMemset, any synchronize) fail with cudaErrorStreamCaptureUnsupported while a global- or
// this thread's thread-local-mode capture is active, and invalidate it.
bool stream_is_capturing(cudaStream_t stream);
// Records a checked launch; `run` performs it (with its own copy of the arguments) at each replay.
cudaError_t capture_launch(cudaStream_t stream, const void* kernel, dim3 grid, dim3 block,
                           size_t dynamic_shared_bytes, std::function<cudaError_t()> run);

// The demangled name of a kernel, or its address when the symbol is not exported.
std::string kernel_name(const void* kernel);

// In which order a block's fibers run in each round: CUDA promises no order, so running every order
// exposes code that silently depends on one (a missing __syncthreads, say).
enum class FiberOrder { forward, reverse, random };

struct Settings {
    int worker_threads;       // CUDACNN_EMU_WORKERS, default: the machine's cores; 1 is reproducible
    FiberOrder fiber_order;   // CUDACNN_EMU_ORDER = forward | reverse | random, default forward
    uint64_t random_seed;     // CUDACNN_EMU_SEED, for the random order
    size_t fiber_stack_bytes; // CUDACNN_EMU_STACK_KB
};

// The settings in force; read from the environment on first use.
Settings settings();
// Replaces the settings (tests use it to run one kernel in every order); not during a launch.
void set_settings(const Settings& settings);

const char* fiber_order_name(FiberOrder order);

}  // namespace cudacnn::emu
