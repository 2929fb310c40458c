// The only code that copies between host and device, and the counters that let tests prove where it does not.
#include "cudacnn/device.hpp"

#include <atomic>

namespace cudacnn {

namespace {

// Relaxed atomics: the counters are independent tallies, read after the work they count has been issued.
struct AtomicTransferStats {
    std::atomic<std::uint64_t> host_to_device_calls{0};
    std::atomic<std::uint64_t> host_to_device_bytes{0};
    std::atomic<std::uint64_t> device_to_host_calls{0};
    std::atomic<std::uint64_t> device_to_host_bytes{0};
    std::atomic<std::uint64_t> device_to_device_calls{0};
    std::atomic<std::uint64_t> device_to_device_bytes{0};
};

AtomicTransferStats g_stats;

void copy(void* dst, const void* src, std::size_t bytes, cudaMemcpyKind kind, cudaStream_t stream) {
    if (stream == nullptr) {
        CUDACNN_CUDA_CHECK(cudaMemcpy(dst, src, bytes, kind));
    } else {
        CUDACNN_CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, kind, stream));
    }
}

void count(std::atomic<std::uint64_t>& calls, std::atomic<std::uint64_t>& total_bytes, std::size_t bytes) {
    calls.fetch_add(1, std::memory_order_relaxed);
    total_bytes.fetch_add(bytes, std::memory_order_relaxed);
}

}  // namespace

TransferStats transfer_stats() {
    TransferStats stats;
    stats.host_to_device_calls = g_stats.host_to_device_calls.load(std::memory_order_relaxed);
    stats.host_to_device_bytes = g_stats.host_to_device_bytes.load(std::memory_order_relaxed);
    stats.device_to_host_calls = g_stats.device_to_host_calls.load(std::memory_order_relaxed);
    stats.device_to_host_bytes = g_stats.device_to_host_bytes.load(std::memory_order_relaxed);
    stats.device_to_device_calls = g_stats.device_to_device_calls.load(std::memory_order_relaxed);
    stats.device_to_device_bytes = g_stats.device_to_device_bytes.load(std::memory_order_relaxed);
    return stats;
}

void reset_transfer_stats() {
    g_stats.host_to_device_calls.store(0, std::memory_order_relaxed);
    g_stats.host_to_device_bytes.store(0, std::memory_order_relaxed);
    g_stats.device_to_host_calls.store(0, std::memory_order_relaxed);
    g_stats.device_to_host_bytes.store(0, std::memory_order_relaxed);
    g_stats.device_to_device_calls.store(0, std::memory_order_relaxed);
    g_stats.device_to_device_bytes.store(0, std::memory_order_relaxed);
}

void copy_to_device(void* dst, const void* src, std::size_t bytes, cudaStream_t stream) {
    if (bytes == 0) return;
    copy(dst, src, bytes, cudaMemcpyHostToDevice, stream);
    count(g_stats.host_to_device_calls, g_stats.host_to_device_bytes, bytes);
}

void copy_to_host(void* dst, const void* src, std::size_t bytes, cudaStream_t stream) {
    if (bytes == 0) return;
    copy(dst, src, bytes, cudaMemcpyDeviceToHost, stream);
    count(g_stats.device_to_host_calls, g_stats.device_to_host_bytes, bytes);
}

void copy_on_device(void* dst, const void* src, std::size_t bytes, cudaStream_t stream) {
    if (bytes == 0) return;
    copy(dst, src, bytes, cudaMemcpyDeviceToDevice, stream);
    count(g_stats.device_to_device_calls, g_stats.device_to_device_bytes, bytes);
}

void fill_bytes(void* dst, int byte_value, std::size_t bytes, cudaStream_t stream) {
    if (bytes == 0) return;
    if (stream == nullptr) {
        CUDACNN_CUDA_CHECK(cudaMemset(dst, byte_value, bytes));
    } else {
        CUDACNN_CUDA_CHECK(cudaMemsetAsync(dst, byte_value, bytes, stream));
    }
}

}  // namespace cudacnn
