// The caching device allocator and DeviceBuffer, the owning handle that returns its block to it.
#include "cudacnn/device.hpp"

#include <algorithm>
#include <string>
#include <utility>

// Under the emulator "device" memory is host memory, so AddressSanitizer can watch it, but only if the cache
// tells it which bytes of a block a buffer may touch: the tail past the requested size, and whole cached
// blocks, are poisoned. (With a real GPU the pointers are device addresses and must not be touched.)
#if defined(CUDACNN_EMU) && defined(__SANITIZE_ADDRESS__)
#include <sanitizer/asan_interface.h>
#define CUDACNN_POISON(address, bytes) ASAN_POISON_MEMORY_REGION(address, bytes)
#define CUDACNN_UNPOISON(address, bytes) ASAN_UNPOISON_MEMORY_REGION(address, bytes)
#else
#define CUDACNN_POISON(address, bytes) ((void)(address), (void)(bytes))
#define CUDACNN_UNPOISON(address, bytes) ((void)(address), (void)(bytes))
#endif

namespace cudacnn {

namespace {

constexpr std::size_t kGranularity = 512;  // cudaMalloc itself aligns to 256; 512 keeps tiny classes few
constexpr std::size_t kClassesPerOctave = 8;

std::size_t round_up(std::size_t value, std::size_t multiple) {
    return (value + multiple - 1) / multiple * multiple;
}

std::size_t highest_power_of_two_at_most(std::size_t value) {
    std::size_t power = 1;
    while (power <= value / 2) power *= 2;
    return power;
}

std::string format_bytes(std::size_t bytes) {
    if (bytes >= (std::size_t{1} << 30))
        return fmt::format("{:.2f} GiB", bytes / double(std::size_t{1} << 30));
    if (bytes >= (std::size_t{1} << 20))
        return fmt::format("{:.1f} MiB", bytes / double(std::size_t{1} << 20));
    return fmt::format("{} bytes", bytes);
}

// What was needed, what the device has, and what to change. The device may be shared with other processes,
// so its free memory can be much less than its total minus what cudacnn holds.
std::string out_of_memory_message(std::size_t block_size, std::size_t bytes_in_use) {
    std::size_t free_bytes = 0, total_bytes = 0;
    const bool known = cudaMemGetInfo(&free_bytes, &total_bytes) == cudaSuccess;
    if (!known) cudaGetLastError();
    const std::string device =
        known ? fmt::format("the GPU has {} free of {}", format_bytes(free_bytes), format_bytes(total_bytes))
              : std::string("the GPU's free memory could not be read");
    return fmt::format(
        "out of device memory: needed {} more with {} already in use by cudacnn, but {}: lower the batch size "
        "(--batch-size; activations and workspaces grow with it), or stop other processes that use the GPU "
        "(nvidia-smi lists them)",
        format_bytes(block_size), format_bytes(bytes_in_use), device);
}

}  // namespace

std::size_t CachingAllocator::size_class(std::size_t bytes) {
    const std::size_t rounded = round_up(std::max<std::size_t>(bytes, 1), kGranularity);
    const std::size_t step =
        std::max(kGranularity, highest_power_of_two_at_most(rounded) / kClassesPerOctave);
    return round_up(rounded, step);
}

void* CachingAllocator::allocate(std::size_t bytes) {
    if (bytes == 0) return nullptr;
    const std::size_t block_size = size_class(bytes);
    std::lock_guard<std::mutex> lock(mutex_);

    void* ptr = nullptr;
    auto cached = free_blocks_.find(block_size);
    if (cached != free_blocks_.end() && !cached->second.empty()) {
        ptr = cached->second.back();
        cached->second.pop_back();
        stats_.bytes_cached -= block_size;
        ++stats_.reuses;
    } else {
        cudaError_t status = cudaMalloc(&ptr, block_size);
        if (status == cudaErrorMemoryAllocation && stats_.bytes_cached > 0) {
            // The cache may hold enough memory in other size classes: give it back to the driver and retry.
            cudaGetLastError();  // clear the recorded error so that a later launch check does not see it
            for (auto& [size, blocks] : free_blocks_) {
                for (void* block : blocks) {
                    CUDACNN_UNPOISON(block, size);
                    CUDACNN_CUDA_CHECK(cudaFree(block));
                }
            }
            free_blocks_.clear();
            stats_.bytes_cached = 0;
            status = cudaMalloc(&ptr, block_size);
        }
        if (status == cudaErrorMemoryAllocation) {
            cudaGetLastError();
            CUDACNN_FAIL("{}", out_of_memory_message(block_size, stats_.bytes_in_use));
        }
        check_cuda_status(status, "cudaMalloc(&ptr, block_size)", __FILE__, __LINE__);
        ++stats_.malloc_calls;
    }
    live_.emplace(ptr, block_size);
    CUDACNN_UNPOISON(ptr, bytes);
    CUDACNN_POISON(static_cast<char*>(ptr) + bytes, block_size - bytes);
    stats_.bytes_in_use += block_size;
    stats_.peak_bytes_in_use = std::max(stats_.peak_bytes_in_use, stats_.bytes_in_use);
    return ptr;
}

void CachingAllocator::deallocate(void* ptr) {
    if (ptr == nullptr) return;
    std::lock_guard<std::mutex> lock(mutex_);
    auto live = live_.find(ptr);
    CUDACNN_CHECK(live != live_.end(),
                  "CachingAllocator::deallocate: {} was not allocated here or was freed "
                  "twice",
                  ptr);
    const std::size_t block_size = live->second;
    live_.erase(live);
    CUDACNN_POISON(ptr, block_size);  // a kernel still using a freed buffer is reported
    free_blocks_[block_size].push_back(ptr);
    stats_.bytes_in_use -= block_size;
    stats_.bytes_cached += block_size;
}

void CachingAllocator::release_cached() {
    std::lock_guard<std::mutex> lock(mutex_);
    for (auto& [size, blocks] : free_blocks_) {
        while (!blocks.empty()) {
            CUDACNN_UNPOISON(blocks.back(), size);
            CUDACNN_CUDA_CHECK(cudaFree(blocks.back()));
            blocks.pop_back();
            stats_.bytes_cached -= size;
        }
    }
    free_blocks_.clear();
}

AllocatorStats CachingAllocator::stats() const {
    std::lock_guard<std::mutex> lock(mutex_);
    return stats_;
}

CachingAllocator& device_allocator() {
    static CachingAllocator* const allocator = new CachingAllocator();  // deliberately never deleted
    return *allocator;
}

// ---- DeviceBuffer ---------------------------------------------------------------------------------------

DeviceBuffer::DeviceBuffer(std::size_t bytes) : data_(device_allocator().allocate(bytes)), bytes_(bytes) {}

DeviceBuffer::~DeviceBuffer() {
    reset();
}

DeviceBuffer::DeviceBuffer(DeviceBuffer&& other) noexcept
    : data_(std::exchange(other.data_, nullptr)), bytes_(std::exchange(other.bytes_, 0)) {}

DeviceBuffer& DeviceBuffer::operator=(DeviceBuffer&& other) noexcept {
    if (this != &other) {
        reset();
        data_ = std::exchange(other.data_, nullptr);
        bytes_ = std::exchange(other.bytes_, 0);
    }
    return *this;
}

void DeviceBuffer::reset() {
    // deallocate() only throws for pointers it never handed out, which a DeviceBuffer cannot hold.
    device_allocator().deallocate(std::exchange(data_, nullptr));
    bytes_ = 0;
}

TensorView DeviceBuffer::view(const Shape& shape, DType dtype, std::size_t offset_bytes) const {
    const std::size_t needed = static_cast<std::size_t>(shape.numel()) * dtype_size(dtype);
    CUDACNN_CHECK(offset_bytes % dtype_size(dtype) == 0,
                  "DeviceBuffer::view: offset {} is not a multiple of the {}-byte size of {}", offset_bytes,
                  dtype_size(dtype), dtype);
    CUDACNN_CHECK(offset_bytes <= bytes_ && needed <= bytes_ - offset_bytes,
                  "DeviceBuffer::view: {} {} needs {} bytes at offset {}, but the buffer holds {} bytes",
                  shape, dtype, needed, offset_bytes, bytes_);
    return TensorView{static_cast<char*>(data_) + offset_bytes, shape, dtype, Device::gpu};
}

}  // namespace cudacnn
