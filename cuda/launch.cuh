// The one way to launch a kernel: cudacnn::launch(kernel, grid, block, shared_bytes, stream, args...).
// It checks the launch and throws cudacnn::Error naming the kernel, the configuration and the call site.
// Every .cu file includes this header: under nvcc it launches with <<<>>>, in the emu flavour it hands
// the kernel to the CPU emulator (cuda/emu/), so kernel source is the same in both flavours.
#pragma once

#include <cstddef>
#include <cstdint>

#ifdef CUDACNN_EMU
#include "cuda/emu/emu.hpp"
#include "cuda/emu/launch_kernel.hpp"
#else
#include <cuda_runtime.h>
#endif

namespace cudacnn {

// ⌈a / b⌉ for a ≥ 0 and b > 0: how many blocks, tiles or slices cover a (host code).
constexpr int64_t ceil_div(int64_t a, int64_t b) {
    return (a + b - 1) / b;
}

// Throws Error("file:line: launch of kernel <name> (grid ..., block ..., shared bytes) failed: ...").
[[noreturn]] void throw_launch_error(const void* kernel, dim3 grid, dim3 block, size_t shared_bytes,
                                     int status, const char* file, int line);

// The dynamic shared memory of the running block, as T*: the only extern __shared__ in the project.
template <typename T>
__device__ inline T* dynamic_smem() {
#ifdef CUDACNN_EMU
    return reinterpret_cast<T*>(emu::current_block->dynamic_shared);
#else
    extern __shared__ __align__(16) unsigned char dynamic_shared_bytes[];
    return reinterpret_cast<T*>(dynamic_shared_bytes);
#endif
}

// A class template so that the call site's file and line can follow the variadic arguments as defaults;
// the deduction guide below makes `launch(kernel, grid, block, shared_bytes, stream, args...);` read
// (and work) like a function call. Arguments convert to the kernel's parameter types as in <<<>>>.
template <typename... Args>
struct launch {
    template <typename... Params>
    launch(void (*kernel)(Params...), dim3 grid, dim3 block, size_t shared_bytes, cudaStream_t stream,
           Args... args, const char* file = __builtin_FILE(), int line = __builtin_LINE()) {
#ifdef CUDACNN_EMU
        // `run` owns a copy of the arguments: a capturing stream keeps it to run at each replay of the graph.
        const auto run = [=]() {
            auto body = [&]() { kernel(args...); };
            const emu::KernelBody kernel_body{
                [](const void* closure) { (*static_cast<const decltype(body)*>(closure))(); }, &body,
                reinterpret_cast<const void*>(kernel)};
            return emu::launch_kernel(kernel_body, grid, block, shared_bytes, stream);
        };
        const cudaError_t status =
            emu::stream_is_capturing(stream)
                ? emu::capture_launch(stream, reinterpret_cast<const void*>(kernel), grid, block, shared_bytes, run)
                : run();
#else
        kernel<<<grid, block, shared_bytes, stream>>>(args...);
        const cudaError_t status = cudaGetLastError();
#endif
        if (status != cudaSuccess) {
            throw_launch_error(reinterpret_cast<const void*>(kernel), grid, block, shared_bytes,
                               static_cast<int>(status), file, line);
        }
    }
};

template <typename... Params, typename... Args>
launch(void (*)(Params...), dim3, dim3, size_t, cudaStream_t, Args...) -> launch<Args...>;

}  // namespace cudacnn
