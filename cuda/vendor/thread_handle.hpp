// One cuDNN / cuBLAS handle per (host thread, device), created on first use, destroyed at thread exit.
#pragma once

#include <cuda_runtime_api.h>

#include <utility>
#include <vector>

#include "cudacnn/error.hpp"

namespace cudacnn::gpu {

// The calling thread's handle for the current device. Traits supplies `static Handle create()` (which may
// throw Error) and `static void destroy(Handle) noexcept`.
//
// Why per thread: a cuDNN or cuBLAS handle holds per-call state (its stream, cuBLAS's math mode), so two
// threads sharing one would race on it; per device, because a handle belongs to the device that was current
// when it was created. Callers set the stream (and any mode) on every call, so no state leaks between calls.
// The main thread's handles are destroyed before static destructors and atexit handlers run (C++17
// [basic.start.term]), hence before the CUDA runtime tears its context down.
template <class Traits>
auto thread_handle() -> decltype(Traits::create()) {
    using Handle = decltype(Traits::create());
    struct Cache {
        std::vector<std::pair<int, Handle>> handles;  // (device, handle); a thread rarely sees more than one
        Cache() = default;
        Cache(const Cache&) = delete;
        Cache& operator=(const Cache&) = delete;
        ~Cache() {
            for (const auto& entry : handles) Traits::destroy(entry.second);
        }
    };
    thread_local Cache cache;
    int device = 0;
    CUDACNN_CUDA_CHECK(cudaGetDevice(&device));
    for (const auto& entry : cache.handles) {
        if (entry.first == device) return entry.second;
    }
    const Handle handle = Traits::create();
    cache.handles.emplace_back(device, handle);
    return handle;
}

}  // namespace cudacnn::gpu
