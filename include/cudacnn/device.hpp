// The device layer: GPU discovery, cached move-only DeviceBuffers, streams, events and counted transfers.
// All host <-> device copies pass through here, so a test can prove that a training step makes none.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <mutex>
#include <string>
#include <type_traits>
#include <unordered_map>
#include <vector>

#include <cuda_runtime_api.h>

#include "cudacnn/error.hpp"
#include "cudacnn/tensor.hpp"

namespace cudacnn {

// True when "the GPU" is the CPU emulator (the emu flavour): same API, same kernels, far slower.
#if CUDACNN_EMU
inline constexpr bool kEmulated = true;
#else
inline constexpr bool kEmulated = false;
#endif

// ---- discovery ------------------------------------------------------------------------------------------

struct GpuStatus {
    bool available = false;
    std::string description;  // one line: the device in use, or why there is none
};

// Asks the runtime once per process; any failure counts as "no GPU" and never throws.
GpuStatus gpu_status();

// ---- caching allocator ----------------------------------------------------------------------------------

struct AllocatorStats {
    std::size_t bytes_in_use = 0;  // held by live allocations, counted at their size class
    std::size_t peak_bytes_in_use = 0;
    std::size_t bytes_cached = 0;    // freed blocks kept for reuse
    std::uint64_t malloc_calls = 0;  // successful cudaMalloc calls
    std::uint64_t reuses = 0;        // allocations served from the cache instead
};

// Keeps freed blocks and hands them out again for requests of the same size class, because cudaMalloc and
// cudaFree are slow and cudaFree synchronizes the whole device. Thread-safe.
//
// Freeing does not wait for the GPU: a freed block may be handed out at once, so memory that kernels still
// use on one stream must not be freed while another stream may receive it. Work on a single stream (the
// library's rule for a training step) is safe, because the stream orders the old and the new user.
class CachingAllocator {
  public:
    // Requests are rounded up to 512 bytes and then to one of 8 classes per power of two, so that requests of
    // nearly the same size share blocks while no block is more than 12.5% (or 511 bytes) larger than asked.
    static std::size_t size_class(std::size_t bytes);

    void* allocate(std::size_t bytes);  // nullptr for 0 bytes; throws Error when the device is out of memory
    void deallocate(void* ptr);         // nullptr is ignored; a pointer not from allocate() throws Error
    void release_cached();              // cudaFree every cached block, e.g. before handing memory to cuDNN
    AllocatorStats stats() const;

  private:
    mutable std::mutex mutex_;
    std::unordered_map<void*, std::size_t> live_;                      // pointer → size class
    std::unordered_map<std::size_t, std::vector<void*>> free_blocks_;  // size class → cached blocks
    AllocatorStats stats_;
};

// The process-wide allocator that DeviceBuffers use. Never destroyed: buffers in static objects may outlive
// any other order of destruction, and the driver reclaims device memory at exit anyway.
CachingAllocator& device_allocator();

// ---- owning device memory -------------------------------------------------------------------------------

// Owns a block of device memory. Move-only: copies are deleted to prevent performance accidents (a copy
// would be a device allocation plus a copy that nobody asked for).
class DeviceBuffer {
  public:
    DeviceBuffer() = default;
    explicit DeviceBuffer(std::size_t bytes);
    ~DeviceBuffer();

    DeviceBuffer(const DeviceBuffer&) = delete;
    DeviceBuffer& operator=(const DeviceBuffer&) = delete;
    DeviceBuffer(DeviceBuffer&& other) noexcept;
    DeviceBuffer& operator=(DeviceBuffer&& other) noexcept;

    void* data() const { return data_; }
    std::size_t bytes() const { return bytes_; }  // as requested; the block may be larger
    bool empty() const { return data_ == nullptr; }

    template <class T>
    T* data_as() const {
        return static_cast<T*>(data_);
    }

    // A view of `shape` elements of `dtype` starting offset_bytes into the buffer; throws Error unless they
    // fit and the offset is aligned for the dtype.
    TensorView view(const Shape& shape, DType dtype, std::size_t offset_bytes = 0) const;

    void reset();  // give the memory back now; the buffer becomes empty

  private:
    void* data_ = nullptr;
    std::size_t bytes_ = 0;
};

// ---- streams and events ---------------------------------------------------------------------------------

class Event;

// Owns a cudaStream_t created with cudaStreamNonBlocking, so it never synchronizes with the legacy default
// stream behind the library's back.
class Stream {
  public:
    Stream();
    ~Stream();
    Stream(const Stream&) = delete;
    Stream& operator=(const Stream&) = delete;
    Stream(Stream&& other) noexcept;
    Stream& operator=(Stream&& other) noexcept;

    // Throws Error on a moved-from Stream: its null handle would silently mean the legacy default stream.
    cudaStream_t handle() const;
    void synchronize() const;
    // Later work on this stream waits for the work recorded in `event`, without blocking the host.
    void wait(const Event& event) const;

  private:
    cudaStream_t stream_ = nullptr;
};

class Event {
  public:
    Event();  // with timing enabled, so that elapsed_ms works
    ~Event();
    Event(const Event&) = delete;
    Event& operator=(const Event&) = delete;
    Event(Event&& other) noexcept;
    Event& operator=(Event&& other) noexcept;

    cudaEvent_t handle() const;
    void record(cudaStream_t stream = nullptr);
    void record(const Stream& stream) { record(stream.handle()); }
    void synchronize() const;

    // Milliseconds between two recorded events; both must have completed (synchronize `end` first).
    static float elapsed_ms(const Event& start, const Event& end);

  private:
    cudaEvent_t event_ = nullptr;
};

// A CUDA graph: the work that one callable queues on a stream, captured once and instantiated, then launched
// any number of times for the cost of one launch (a training step is ~100 kernels of a few µs each).
// Kernel arguments are frozen at capture: whatever must change between launches has to live in device
// memory. The capture is in global mode, so a synchronizing or allocating call inside `enqueue` fails
// (cudaErrorStreamCaptureUnsupported) instead of silently breaking the graph.
class CudaGraph {
  public:
    CudaGraph() = default;
    ~CudaGraph();
    CudaGraph(const CudaGraph&) = delete;
    CudaGraph& operator=(const CudaGraph&) = delete;
    CudaGraph(CudaGraph&& other) noexcept;
    CudaGraph& operator=(CudaGraph&& other) noexcept;

    // Runs `enqueue` with `stream` capturing and instantiates what it queued. Throws Error naming the CUDA
    // status when the capture or the instantiation fails, and rethrows what `enqueue` throws; the stream has
    // left capture mode in every case.
    static CudaGraph capture(const Stream& stream, const std::function<void()>& enqueue);
    void launch(const Stream& stream) const;
    bool empty() const { return exec_ == nullptr; }

  private:
    cudaGraphExec_t exec_ = nullptr;
};

// ---- host <-> device transfers --------------------------------------------------------------------------
// Every copy between host and device in the library goes through copy_to_device / copy_to_host, so that
// transfer_stats() sees all of them. With stream == nullptr a copy is synchronous for the host (cudaMemcpy
// on the legacy default stream, which does NOT wait for non-blocking Streams: pass the stream that produced
// the data, or synchronize it first); with a stream it is queued there and returns at once. Zero-byte
// copies do nothing and are not counted.

struct TransferStats {
    std::uint64_t host_to_device_calls = 0;
    std::uint64_t host_to_device_bytes = 0;
    std::uint64_t device_to_host_calls = 0;
    std::uint64_t device_to_host_bytes = 0;
    std::uint64_t device_to_device_calls = 0;
    std::uint64_t device_to_device_bytes = 0;
};

TransferStats transfer_stats();
void reset_transfer_stats();

void copy_to_device(void* dst, const void* src, std::size_t bytes, cudaStream_t stream = nullptr);
void copy_to_host(void* dst, const void* src, std::size_t bytes, cudaStream_t stream = nullptr);
// Device to device: no host involvement, counted separately. Asynchronous for the host even without a stream.
void copy_on_device(void* dst, const void* src, std::size_t bytes, cudaStream_t stream = nullptr);

// Sets `bytes` bytes of device memory to byte_value; e.g. 0xff writes NaNs into float outputs before a test.
void fill_bytes(void* dst, int byte_value, std::size_t bytes, cudaStream_t stream = nullptr);

// Typed helpers for setup and tests. They go through the counted functions above and return only when the
// copy has completed, so the host data may be reused or read at once.

template <class T>
DeviceBuffer upload(const T* host, std::size_t count, cudaStream_t stream = nullptr) {
    static_assert(std::is_trivially_copyable_v<T>, "upload: T must be trivially copyable");
    DeviceBuffer buffer(count * sizeof(T));
    copy_to_device(buffer.data(), host, buffer.bytes(), stream);
    if (stream != nullptr) CUDACNN_CUDA_CHECK(cudaStreamSynchronize(stream));
    return buffer;
}

template <class T>
DeviceBuffer upload(const std::vector<T>& host, cudaStream_t stream = nullptr) {
    return upload(host.data(), host.size(), stream);
}

template <class T>
std::vector<T> download(const T* device, std::size_t count, cudaStream_t stream = nullptr) {
    static_assert(std::is_trivially_copyable_v<T>, "download: T must be trivially copyable");
    std::vector<T> host(count);
    copy_to_host(host.data(), device, count * sizeof(T), stream);
    if (stream != nullptr) CUDACNN_CUDA_CHECK(cudaStreamSynchronize(stream));
    return host;
}

// The whole buffer as T; its size must be a multiple of sizeof(T).
template <class T>
std::vector<T> download(const DeviceBuffer& buffer, cudaStream_t stream = nullptr) {
    CUDACNN_CHECK(buffer.bytes() % sizeof(T) == 0,
                  "download: a buffer of {} bytes does not hold whole {}-byte "
                  "elements",
                  buffer.bytes(), sizeof(T));
    return download(buffer.data_as<const T>(), buffer.bytes() / sizeof(T), stream);
}

// A device view as T; T must match its dtype.
template <class T>
std::vector<T> download(const TensorView& view, cudaStream_t stream = nullptr) {
    CUDACNN_CHECK(view.device == Device::gpu, "download: the view of shape {} is on the {}, not on the gpu",
                  view.shape, device_name(view.device));
    return download(view.data_as<const T>(), static_cast<std::size_t>(view.numel()), stream);
}

}  // namespace cudacnn
