// What the emulator's runtime (runtime.cpp) and scheduler (scheduler.cpp) share; not for kernel code.
#pragma once

namespace cudacnn::emu {

// sm_90: up to 227 KiB of shared memory per block once a kernel opts in (cudaDevAttrMaxSharedMemoryPerBlockOptin).
constexpr int kMaxOptInSharedBytes = 232448;

// Per-kernel dynamic shared memory limit: 48 KiB unless raised with cudaFuncSetAttribute.
int max_dynamic_shared_bytes(const void* kernel);
void set_max_dynamic_shared_bytes(const void* kernel, int bytes);

}  // namespace cudacnn::emu
