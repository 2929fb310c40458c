// What the emulator's runtime (runtime.cpp) and scheduler (scheduler.cpp) share; not for kernel code.
#pragma once

#include <cstddef>
#include <cstdint>

namespace cudacnn::emu {

// A whole number from an environment variable (fallback when unset or empty), or Error naming the variable
// and the range to use.
uint64_t integer_from_environment(const char* name, uint64_t fallback, uint64_t lowest, uint64_t highest);

// The emulated card's memory in bytes, which cudaMalloc may not exceed (default: the machine's memory, or
// CUDACNN_EMU_DEVICE_MEMORY_MB); tests shrink it to provoke out-of-memory errors. 0 restores the default.
void set_device_memory_limit(size_t bytes);

// sm_90: up to 227 KiB of shared memory per block once a kernel opts in (cudaDevAttrMaxSharedMemoryPerBlockOptin).
constexpr int kMaxOptInSharedBytes = 232448;

// Per-kernel dynamic shared memory limit: 48 KiB unless raised with cudaFuncSetAttribute.
int max_dynamic_shared_bytes(const void* kernel);
void set_max_dynamic_shared_bytes(const void* kernel, int bytes);

}  // namespace cudacnn::emu
