// The part of the CUDA runtime API that cudacnn uses, implemented for the emulator: "device" memory is
// host memory, streams and events are handles whose work is already done (every launch and copy completes
// before it returns, a valid ordering of any stream program), and a capturing stream records its work into
// a graph that cudaGraphLaunch runs (launch_kernel.hpp says what capture allows). Declarations come from cuda_runtime_api.h,
// so host code calls the same functions in both flavours.
#include <cuda_runtime_api.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <mutex>
#include <set>
#include <vector>
#include <unordered_map>

#include "cuda/emu/internal.hpp"
#include "cuda/emu/launch_kernel.hpp"

// The operations a capture records, in stream order; each returns what the operation itself would.
using CapturedOperations = std::vector<std::function<cudaError_t()>>;

struct CUstream_st {
    unsigned flags;
    bool capturing = false;
    bool invalidated = false;  // an unsafe call during the capture: cudaStreamEndCapture fails
    cudaStreamCaptureMode mode = cudaStreamCaptureModeGlobal;
    CapturedOperations captured;
};

struct CUgraph_st {
    CapturedOperations operations;
};

struct CUgraphExec_st {
    CapturedOperations operations;
};

struct CUevent_st {
    std::chrono::steady_clock::time_point recorded_at;
    bool recorded;
};

namespace {

constexpr size_t kDeviceAlignment = 256;  // cudaMalloc's guarantee, which kernels may rely on
constexpr int kRuntimeVersion = 13000;

thread_local cudaError_t last_error = cudaSuccess;

// Every live allocation with its size and whether it is "device" memory (cudaMalloc) or pinned host memory
// (cudaMallocHost); only device memory counts against the emulated card's size.
struct Allocation {
    size_t bytes;
    bool device;
};
std::mutex allocations_mutex;
std::unordered_map<void*, Allocation>& allocations() {
    static std::unordered_map<void*, Allocation> live;
    return live;
}
size_t device_bytes_in_use = 0;  // under allocations_mutex
size_t device_memory_limit = 0;  // under allocations_mutex; 0: not chosen yet

cudaError_t record(cudaError_t error) {
    if (error != cudaSuccess) last_error = error;
    return error;
}

size_t physical_memory_bytes() {
    return static_cast<size_t>(sysconf(_SC_PHYS_PAGES)) * static_cast<size_t>(sysconf(_SC_PAGESIZE));
}

// The emulated card's memory: the machine's, or CUDACNN_EMU_DEVICE_MEMORY_MB, so that a run too large for a real
// card's memory fails the same way here. Caller holds allocations_mutex.
size_t device_memory_limit_locked() {
    if (device_memory_limit == 0) {
        const uint64_t megabytes =
            cudacnn::emu::integer_from_environment("CUDACNN_EMU_DEVICE_MEMORY_MB", 0, 1, uint64_t{1} << 30);
        device_memory_limit = megabytes > 0 ? static_cast<size_t>(megabytes) << 20 : physical_memory_bytes();
    }
    return device_memory_limit;
}

cudaError_t allocate(void** pointer, size_t size, bool device) {
    if (pointer == nullptr) return record(cudaErrorInvalidValue);
    *pointer = nullptr;
    if (size == 0) return cudaSuccess;
    std::lock_guard<std::mutex> lock(allocations_mutex);
    // (A limit lowered below what is already in use refuses every new block.)
    const size_t limit = device_memory_limit_locked();
    if (device && (size > limit || device_bytes_in_use > limit - size)) return record(cudaErrorMemoryAllocation);
    // Exactly `size` bytes, so AddressSanitizer reports the first byte past the end.
    if (posix_memalign(pointer, kDeviceAlignment, size) != 0) return record(cudaErrorMemoryAllocation);
    allocations()[*pointer] = Allocation{size, device};
    if (device) device_bytes_in_use += size;
    return cudaSuccess;
}

cudaError_t release(void* pointer) {
    if (pointer == nullptr) return cudaSuccess;
    {
        std::lock_guard<std::mutex> lock(allocations_mutex);
        auto found = allocations().find(pointer);
        if (found == allocations().end()) return record(cudaErrorInvalidValue);
        if (found->second.device) device_bytes_in_use -= found->second.bytes;
        allocations().erase(found);
    }
    std::free(pointer);
    return cudaSuccess;
}

// ---- stream capture: which captures are active, and the calls they forbid -----------------------------

std::mutex captures_mutex;
std::set<cudaStream_t>& active_captures() {
    static std::set<cudaStream_t> streams;
    return streams;
}
thread_local std::set<cudaStream_t> thread_local_captures;  // this thread's captures in thread-local mode

// An unsafe call (one that would synchronize with, or implicitly order against, the capturing work) while a
// global-mode capture, or a thread-local one of this thread, is active: CUDA refuses it and invalidates the
// capture, so that cudaStreamEndCapture fails too.
bool refuse_during_capture() {
    std::lock_guard<std::mutex> lock(captures_mutex);
    bool refused = false;
    for (cudaStream_t stream : active_captures()) {
        if (stream->mode == cudaStreamCaptureModeGlobal || thread_local_captures.count(stream) != 0) {
            stream->invalidated = true;
            refused = true;
        }
    }
    if (refused) last_error = cudaErrorStreamCaptureUnsupported;
    return refused;
}

bool capturing(cudaStream_t stream) {
    return stream != nullptr && stream->capturing;
}

cudaError_t run_or_capture(cudaStream_t stream, std::function<cudaError_t()> operation) {
    if (!capturing(stream)) return operation();
    stream->captured.push_back(std::move(operation));
    return cudaSuccess;
}

}  // namespace

namespace cudacnn::emu {

void set_device_memory_limit(size_t bytes) {
    std::lock_guard<std::mutex> lock(allocations_mutex);
    device_memory_limit = bytes;
}

bool stream_is_capturing(cudaStream_t stream) {
    return capturing(stream);
}

cudaError_t capture_launch(cudaStream_t stream, const void* kernel, dim3 grid, dim3 block,
                           size_t dynamic_shared_bytes, std::function<cudaError_t()> run) {
    if (const cudaError_t error = check_launch(kernel, grid, block, dynamic_shared_bytes); error != cudaSuccess) {
        stream->invalidated = true;  // as in CUDA, a failed launch ends the capture's usefulness
        return error;
    }
    stream->captured.push_back(std::move(run));
    return cudaSuccess;
}

}  // namespace cudacnn::emu

extern "C" {

cudaError_t cudaGetDeviceCount(int* count) {
    if (count == nullptr) return record(cudaErrorInvalidValue);
    *count = 1;
    return cudaSuccess;
}

cudaError_t cudaGetDeviceProperties(cudaDeviceProp* prop, int device) {
    if (prop == nullptr || device != 0) return record(cudaErrorInvalidDevice);
    std::memset(prop, 0, sizeof(*prop));
    const int workers = cudacnn::emu::settings().worker_threads;
    std::snprintf(prop->name, sizeof(prop->name), "cudacnn CPU emulator (%d worker thread%s, sm_90 limits)",
                  workers, workers == 1 ? "" : "s");
    {
        std::lock_guard<std::mutex> lock(allocations_mutex);
        prop->totalGlobalMem = device_memory_limit_locked();
    }
    prop->sharedMemPerBlock = 48 * 1024;
    prop->sharedMemPerBlockOptin = cudacnn::emu::kMaxOptInSharedBytes;
    prop->sharedMemPerMultiprocessor = 228 * 1024;
    prop->regsPerBlock = 65536;
    prop->warpSize = 32;
    prop->maxThreadsPerBlock = 1024;
    prop->maxThreadsDim[0] = 1024;
    prop->maxThreadsDim[1] = 1024;
    prop->maxThreadsDim[2] = 64;
    prop->maxGridSize[0] = 2147483647;
    prop->maxGridSize[1] = 65535;
    prop->maxGridSize[2] = 65535;
    prop->major = 9;
    prop->minor = 0;
    prop->multiProcessorCount = workers;
    prop->maxThreadsPerMultiProcessor = 2048;
    prop->totalConstMem = 64 * 1024;
    return cudaSuccess;
}

cudaError_t cudaSetDevice(int device) { return device == 0 ? cudaSuccess : record(cudaErrorInvalidDevice); }

cudaError_t cudaGetDevice(int* device) {
    if (device == nullptr) return record(cudaErrorInvalidValue);
    *device = 0;
    return cudaSuccess;
}

cudaError_t cudaMalloc(void** pointer, size_t size) {
    return refuse_during_capture() ? cudaErrorStreamCaptureUnsupported : allocate(pointer, size, /*device=*/true);
}
cudaError_t cudaFree(void* pointer) {
    return refuse_during_capture() ? cudaErrorStreamCaptureUnsupported : release(pointer);
}
cudaError_t cudaMallocHost(void** pointer, size_t size) {
    return refuse_during_capture() ? cudaErrorStreamCaptureUnsupported : allocate(pointer, size, /*device=*/false);
}
cudaError_t cudaFreeHost(void* pointer) {
    return refuse_during_capture() ? cudaErrorStreamCaptureUnsupported : release(pointer);
}

namespace {
cudaError_t copy_bytes(void* dst, const void* src, size_t count) {
    if (count == 0) return cudaSuccess;
    if (dst == nullptr || src == nullptr) return record(cudaErrorInvalidValue);
    std::memmove(dst, src, count);
    return cudaSuccess;
}
cudaError_t fill_bytes(void* pointer, int value, size_t count) {
    if (count == 0) return cudaSuccess;
    if (pointer == nullptr) return record(cudaErrorInvalidValue);
    std::memset(pointer, value, count);
    return cudaSuccess;
}
}  // namespace

cudaError_t cudaMemcpy(void* dst, const void* src, size_t count, cudaMemcpyKind /*kind*/) {
    return refuse_during_capture() ? cudaErrorStreamCaptureUnsupported : copy_bytes(dst, src, count);
}

cudaError_t cudaMemcpyAsync(void* dst, const void* src, size_t count, cudaMemcpyKind, cudaStream_t stream) {
    return run_or_capture(stream, [=]() { return copy_bytes(dst, src, count); });
}

cudaError_t cudaMemset(void* pointer, int value, size_t count) {
    return refuse_during_capture() ? cudaErrorStreamCaptureUnsupported : fill_bytes(pointer, value, count);
}

cudaError_t cudaMemsetAsync(void* pointer, int value, size_t count, cudaStream_t stream) {
    return run_or_capture(stream, [=]() { return fill_bytes(pointer, value, count); });
}

cudaError_t cudaStreamCreate(cudaStream_t* stream) { return cudaStreamCreateWithFlags(stream, 0); }

cudaError_t cudaStreamCreateWithFlags(cudaStream_t* stream, unsigned int flags) {
    if (stream == nullptr) return record(cudaErrorInvalidValue);
    *stream = new CUstream_st;
    (*stream)->flags = flags;
    return cudaSuccess;
}

cudaError_t cudaStreamDestroy(cudaStream_t stream) {
    if (stream == nullptr) return record(cudaErrorInvalidResourceHandle);
    if (stream->capturing) {
        std::lock_guard<std::mutex> lock(captures_mutex);
        active_captures().erase(stream);
        thread_local_captures.erase(stream);
    }
    delete stream;
    return cudaSuccess;
}

cudaError_t cudaStreamSynchronize(cudaStream_t) {
    return refuse_during_capture() ? cudaErrorStreamCaptureUnsupported : cudaSuccess;
}
cudaError_t cudaStreamWaitEvent(cudaStream_t, cudaEvent_t event, unsigned int) {
    return event == nullptr ? record(cudaErrorInvalidResourceHandle) : cudaSuccess;
}
cudaError_t cudaDeviceSynchronize(void) {
    return refuse_during_capture() ? cudaErrorStreamCaptureUnsupported : cudaSuccess;
}

cudaError_t cudaStreamBeginCapture(cudaStream_t stream, cudaStreamCaptureMode mode) {
    // The legacy default stream cannot capture; a stream captures once at a time.
    if (stream == nullptr || stream->capturing) return record(cudaErrorInvalidValue);
    stream->capturing = true;
    stream->invalidated = false;
    stream->mode = mode;
    stream->captured.clear();
    std::lock_guard<std::mutex> lock(captures_mutex);
    active_captures().insert(stream);
    if (mode == cudaStreamCaptureModeThreadLocal) thread_local_captures.insert(stream);
    return cudaSuccess;
}

cudaError_t cudaStreamEndCapture(cudaStream_t stream, cudaGraph_t* graph) {
    if (stream == nullptr || graph == nullptr) return record(cudaErrorInvalidValue);
    *graph = nullptr;
    if (!stream->capturing) return record(cudaErrorIllegalState);
    {
        std::lock_guard<std::mutex> lock(captures_mutex);
        active_captures().erase(stream);
        thread_local_captures.erase(stream);
    }
    stream->capturing = false;
    CapturedOperations operations = std::move(stream->captured);
    stream->captured.clear();
    if (stream->invalidated) return record(cudaErrorStreamCaptureInvalidated);
    *graph = new CUgraph_st{std::move(operations)};
    return cudaSuccess;
}

cudaError_t cudaStreamIsCapturing(cudaStream_t stream, cudaStreamCaptureStatus* status) {
    if (status == nullptr) return record(cudaErrorInvalidValue);
    *status = !capturing(stream)   ? cudaStreamCaptureStatusNone
              : stream->invalidated ? cudaStreamCaptureStatusInvalidated
                                    : cudaStreamCaptureStatusActive;
    return cudaSuccess;
}

cudaError_t cudaGraphInstantiate(cudaGraphExec_t* exec, cudaGraph_t graph, unsigned long long) {
    if (exec == nullptr || graph == nullptr) return record(cudaErrorInvalidValue);
    *exec = new CUgraphExec_st{graph->operations};
    return cudaSuccess;
}

cudaError_t cudaGraphLaunch(cudaGraphExec_t exec, cudaStream_t stream) {
    if (exec == nullptr) return record(cudaErrorInvalidValue);
    if (refuse_during_capture()) return cudaErrorStreamCaptureUnsupported;  // no graphs inside graphs here
    (void)stream;  // every operation runs to completion now, a valid order for any stream
    for (const auto& operation : exec->operations) {
        if (const cudaError_t error = operation(); error != cudaSuccess) return record(error);
    }
    return cudaSuccess;
}

cudaError_t cudaGraphExecDestroy(cudaGraphExec_t exec) {
    if (exec == nullptr) return record(cudaErrorInvalidValue);
    delete exec;
    return cudaSuccess;
}

cudaError_t cudaGraphDestroy(cudaGraph_t graph) {
    if (graph == nullptr) return record(cudaErrorInvalidValue);
    delete graph;
    return cudaSuccess;
}

cudaError_t cudaEventCreate(cudaEvent_t* event) { return cudaEventCreateWithFlags(event, 0); }

cudaError_t cudaEventCreateWithFlags(cudaEvent_t* event, unsigned int) {
    if (event == nullptr) return record(cudaErrorInvalidValue);
    *event = new CUevent_st{{}, false};
    return cudaSuccess;
}

cudaError_t cudaEventDestroy(cudaEvent_t event) {
    if (event == nullptr) return record(cudaErrorInvalidResourceHandle);
    delete event;
    return cudaSuccess;
}

cudaError_t cudaEventRecord(cudaEvent_t event, cudaStream_t stream) {
    if (event == nullptr) return record(cudaErrorInvalidResourceHandle);
    return run_or_capture(stream, [event]() {
        event->recorded_at = std::chrono::steady_clock::now();
        event->recorded = true;
        return cudaSuccess;
    });
}

cudaError_t cudaEventSynchronize(cudaEvent_t event) {
    if (event == nullptr) return record(cudaErrorInvalidResourceHandle);
    return refuse_during_capture() ? cudaErrorStreamCaptureUnsupported : cudaSuccess;
}

cudaError_t cudaEventElapsedTime(float* ms, cudaEvent_t start, cudaEvent_t end) {
    if (ms == nullptr) return record(cudaErrorInvalidValue);
    if (start == nullptr || end == nullptr) return record(cudaErrorInvalidResourceHandle);
    if (!start->recorded || !end->recorded) return record(cudaErrorInvalidResourceHandle);
    *ms = std::chrono::duration<float, std::milli>(end->recorded_at - start->recorded_at).count();
    return cudaSuccess;
}

cudaError_t cudaGetLastError(void) {
    const cudaError_t error = last_error;
    last_error = cudaSuccess;
    return error;
}

cudaError_t cudaPeekAtLastError(void) { return last_error; }

cudaError_t cudaMemGetInfo(size_t* free_bytes, size_t* total_bytes) {
    if (free_bytes == nullptr || total_bytes == nullptr) return record(cudaErrorInvalidValue);
    const size_t available =
        static_cast<size_t>(sysconf(_SC_AVPHYS_PAGES)) * static_cast<size_t>(sysconf(_SC_PAGESIZE));
    std::lock_guard<std::mutex> lock(allocations_mutex);
    *total_bytes = device_memory_limit_locked();
    *free_bytes = std::min(available, *total_bytes - std::min(*total_bytes, device_bytes_in_use));
    return cudaSuccess;
}

cudaError_t cudaRuntimeGetVersion(int* version) {
    if (version == nullptr) return record(cudaErrorInvalidValue);
    *version = kRuntimeVersion;
    return cudaSuccess;
}

cudaError_t cudaDriverGetVersion(int* version) {
    if (version == nullptr) return record(cudaErrorInvalidValue);
    *version = kRuntimeVersion;
    return cudaSuccess;
}

cudaError_t cudaFuncSetAttribute(const void* func, cudaFuncAttribute attr, int value) {
    if (func == nullptr) return record(cudaErrorInvalidDeviceFunction);
    if (attr != cudaFuncAttributeMaxDynamicSharedMemorySize) return cudaSuccess;  // hints only
    if (value < 0 || value > cudacnn::emu::kMaxOptInSharedBytes) return record(cudaErrorInvalidValue);
    cudacnn::emu::set_max_dynamic_shared_bytes(func, value);
    return cudaSuccess;
}

const char* cudaGetErrorName(cudaError_t error) {
    switch (error) {
        case cudaSuccess: return "cudaSuccess";
        case cudaErrorInvalidValue: return "cudaErrorInvalidValue";
        case cudaErrorMemoryAllocation: return "cudaErrorMemoryAllocation";
        case cudaErrorInvalidConfiguration: return "cudaErrorInvalidConfiguration";
        case cudaErrorInvalidDevice: return "cudaErrorInvalidDevice";
        case cudaErrorInvalidDeviceFunction: return "cudaErrorInvalidDeviceFunction";
        case cudaErrorInvalidResourceHandle: return "cudaErrorInvalidResourceHandle";
        case cudaErrorNotSupported: return "cudaErrorNotSupported";
        case cudaErrorLaunchFailure: return "cudaErrorLaunchFailure";
        case cudaErrorNoDevice: return "cudaErrorNoDevice";
        case cudaErrorInsufficientDriver: return "cudaErrorInsufficientDriver";
        case cudaErrorIllegalState: return "cudaErrorIllegalState";
        case cudaErrorStreamCaptureUnsupported: return "cudaErrorStreamCaptureUnsupported";
        case cudaErrorStreamCaptureInvalidated: return "cudaErrorStreamCaptureInvalidated";
        default: return "cudaErrorUnknown";
    }
}

const char* cudaGetErrorString(cudaError_t error) {
    switch (error) {
        case cudaSuccess: return "no error";
        case cudaErrorInvalidValue: return "invalid argument";
        case cudaErrorMemoryAllocation: return "out of memory";
        case cudaErrorInvalidConfiguration: return "invalid configuration argument";
        case cudaErrorInvalidDevice: return "invalid device ordinal";
        case cudaErrorInvalidDeviceFunction: return "invalid device function";
        case cudaErrorInvalidResourceHandle: return "invalid resource handle";
        case cudaErrorNotSupported: return "operation not supported";
        case cudaErrorLaunchFailure: return "unspecified launch failure";
        case cudaErrorNoDevice: return "no CUDA-capable device is detected";
        case cudaErrorInsufficientDriver: return "CUDA driver version is insufficient for CUDA runtime version";
        case cudaErrorIllegalState: return "the operation cannot be performed in the present state";
        case cudaErrorStreamCaptureUnsupported: return "operation not permitted when stream is capturing";
        case cudaErrorStreamCaptureInvalidated:
            return "operation failed due to a previous error during capture";
        default: return "unknown error";
    }
}

}  // extern "C"
