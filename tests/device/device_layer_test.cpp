// The device layer: move-only buffers, the caching allocator's reuse, counted transfers, streams and events.
#include <catch2/catch.hpp>

#include <cstdint>
#include <numeric>
#include <type_traits>
#include <utility>
#include <vector>

#include "cuda/optimizer.hpp"
#include "cudacnn/device.hpp"

using Catch::Matchers::Contains;
using cudacnn::DeviceBuffer;
using cudacnn::DType;
using cudacnn::Shape;

static_assert(!std::is_copy_constructible_v<DeviceBuffer>, "copying device memory must be explicit");
static_assert(!std::is_copy_assignable_v<DeviceBuffer>, "copying device memory must be explicit");
static_assert(std::is_nothrow_move_constructible_v<DeviceBuffer>);
static_assert(std::is_nothrow_move_assignable_v<DeviceBuffer>);
static_assert(!std::is_copy_constructible_v<cudacnn::Stream> &&
              !std::is_copy_constructible_v<cudacnn::Event>);

TEST_CASE("gpu_status describes the device in one line", "[device]") {
    const cudacnn::GpuStatus status = cudacnn::gpu_status();
    CHECK(status.available);
    CHECK(!status.description.empty());
    CHECK(status.description.find('\n') == std::string::npos);
}

TEST_CASE("DeviceBuffer moves ownership and leaves the source empty", "[device][allocator]") {
    DeviceBuffer a(1000);
    void* const block = a.data();
    REQUIRE(block != nullptr);
    CHECK(a.bytes() == 1000);

    DeviceBuffer b(std::move(a));
    CHECK(b.data() == block);
    CHECK(b.bytes() == 1000);
    CHECK(a.empty());  // NOLINT(bugprone-use-after-move): checking the moved-from state is the point
    CHECK(a.bytes() == 0);

    DeviceBuffer c;
    CHECK(c.empty());
    c = std::move(b);
    CHECK(c.data() == block);
    CHECK(b.empty());  // NOLINT(bugprone-use-after-move)

    c.reset();
    CHECK(c.empty());
    CHECK(DeviceBuffer(0).empty());
}

TEST_CASE("size classes round up to 512 bytes, then to 8 classes per power of two", "[allocator]") {
    using cudacnn::CachingAllocator;
    CHECK(CachingAllocator::size_class(1) == 512);
    CHECK(CachingAllocator::size_class(512) == 512);
    CHECK(CachingAllocator::size_class(513) == 1024);
    CHECK(CachingAllocator::size_class(4097) == 4608);
    CHECK(CachingAllocator::size_class(8193) == 9216);
    for (std::size_t bytes :
         {std::size_t{1}, std::size_t{777}, std::size_t{100000}, std::size_t{123456789}}) {
        const std::size_t size = CachingAllocator::size_class(bytes);
        CHECK(size >= bytes);
        CHECK(size % 512 == 0);
        CHECK(size <= bytes + bytes / 8 + 512);             // bounded waste
        CHECK(CachingAllocator::size_class(size) == size);  // a class is its own class
    }
}

TEST_CASE("The allocator reuses a freed block for a request of the same size class", "[device][allocator]") {
    auto& allocator = cudacnn::device_allocator();
    allocator.release_cached();
    const cudacnn::AllocatorStats start = allocator.stats();
    CHECK(start.bytes_cached == 0);

    void* first = nullptr;
    {
        DeviceBuffer a(1000);
        first = a.data();
        const cudacnn::AllocatorStats live = allocator.stats();
        CHECK(live.malloc_calls == start.malloc_calls + 1);
        CHECK(live.bytes_in_use == start.bytes_in_use + 1024);
    }
    const cudacnn::AllocatorStats freed = allocator.stats();
    CHECK(freed.bytes_cached == 1024);
    CHECK(freed.bytes_in_use == start.bytes_in_use);

    {
        DeviceBuffer b(900);  // same 1024-byte class
        CHECK(b.data() == first);
        const cudacnn::AllocatorStats reused = allocator.stats();
        CHECK(reused.malloc_calls == freed.malloc_calls);
        CHECK(reused.reuses == freed.reuses + 1);
        CHECK(reused.bytes_cached == 0);

        DeviceBuffer c(3000);  // another class: a new block
        CHECK(allocator.stats().malloc_calls == freed.malloc_calls + 1);
    }
    allocator.release_cached();
    CHECK(allocator.stats().bytes_cached == 0);
    CHECK_THROWS_WITH(allocator.deallocate(reinterpret_cast<void*>(0x1000)),
                      Contains("was not allocated here"));
}

TEST_CASE("A host -> device -> host round trip keeps the data and counts each transfer",
          "[device][transfer]") {
    std::vector<float> host(1237);  // odd size
    std::iota(host.begin(), host.end(), -100.25f);
    const std::uint64_t bytes = host.size() * sizeof(float);

    cudacnn::reset_transfer_stats();
    const DeviceBuffer device = cudacnn::upload(host);
    DeviceBuffer copy(device.bytes());
    cudacnn::copy_on_device(copy.data(), device.data(), device.bytes());
    const std::vector<float> back = cudacnn::download<float>(copy);
    CHECK(back == host);

    const cudacnn::TransferStats stats = cudacnn::transfer_stats();
    CHECK(stats.host_to_device_calls == 1);
    CHECK(stats.host_to_device_bytes == bytes);
    CHECK(stats.device_to_host_calls == 1);
    CHECK(stats.device_to_host_bytes == bytes);
    CHECK(stats.device_to_device_calls == 1);
    CHECK(stats.device_to_device_bytes == bytes);

    cudacnn::copy_to_device(copy.data(), host.data(), 0);  // nothing moves, nothing is counted
    CHECK(cudacnn::transfer_stats().host_to_device_calls == 1);

    cudacnn::reset_transfer_stats();
    const cudacnn::TransferStats zero = cudacnn::transfer_stats();
    CHECK(zero.host_to_device_calls == 0);
    CHECK(zero.host_to_device_bytes == 0);
    CHECK(zero.device_to_host_calls == 0);
    CHECK(zero.device_to_host_bytes == 0);
    CHECK(zero.device_to_device_calls == 0);
    CHECK(zero.device_to_device_bytes == 0);
}

TEST_CASE("Transfers on a stream are ordered there and counted the same way", "[device][transfer][stream]") {
    cudacnn::Stream stream;
    std::vector<std::int32_t> host(513);
    std::iota(host.begin(), host.end(), 1);

    cudacnn::reset_transfer_stats();
    DeviceBuffer device(host.size() * sizeof(std::int32_t));
    cudacnn::fill_bytes(device.data(), 0, device.bytes(), stream.handle());
    cudacnn::copy_to_device(device.data(), host.data(), device.bytes(), stream.handle());
    std::vector<std::int32_t> back(host.size());
    cudacnn::copy_to_host(back.data(), device.data(), device.bytes(), stream.handle());
    stream.synchronize();
    CHECK(back == host);
    CHECK(cudacnn::transfer_stats().host_to_device_calls == 1);
    CHECK(cudacnn::transfer_stats().device_to_host_calls == 1);

    const cudacnn::TensorView view = device.view(Shape{513}, DType::i32);
    CHECK(cudacnn::download<std::int32_t>(view, stream.handle()) == host);
    CHECK_THROWS_WITH(cudacnn::download<float>(view), Contains("holds i32"));
}

TEST_CASE("Streams and events record, synchronize and time", "[device][stream]") {
    cudacnn::Stream stream;
    cudacnn::Event start;
    cudacnn::Event end;
    DeviceBuffer buffer(1 << 20);

    start.record(stream);
    cudacnn::fill_bytes(buffer.data(), 0x5a, buffer.bytes(), stream.handle());
    end.record(stream);
    end.synchronize();
    CHECK(cudacnn::Event::elapsed_ms(start, end) >= 0.0f);

    cudacnn::Stream other;
    other.wait(end);
    other.synchronize();
    stream.synchronize();
    CHECK(cudacnn::download<std::uint8_t>(buffer)[12345] == 0x5a);

    cudacnn::Stream moved = std::move(stream);
    CHECK_NOTHROW(moved.handle());
    CHECK_THROWS_WITH(stream.handle(), Contains("moved from"));  // NOLINT(bugprone-use-after-move)
}

TEST_CASE("A captured CUDA graph records without running, and each launch runs it all again", "[device][graph]") {
    cudacnn::Stream stream;
    DeviceBuffer counters(2 * sizeof(std::int64_t));
    DeviceBuffer bytes(256);
    cudacnn::fill_bytes(counters.data(), 0, counters.bytes(), stream.handle());
    cudacnn::fill_bytes(bytes.data(), 0, bytes.bytes(), stream.handle());
    stream.synchronize();

    // A kernel launch, a fill and a device-to-device copy: none of them may run during the capture.
    auto* counter_values = static_cast<std::int64_t*>(counters.data());
    cudacnn::CudaGraph graph = cudacnn::CudaGraph::capture(stream, [&] {
        cudacnn::gpu::advance_step_counters(counter_values, 2, stream.handle());
        cudacnn::fill_bytes(bytes.data(), 0x11, 128, stream.handle());
        cudacnn::copy_on_device(static_cast<char*>(bytes.data()) + 128, bytes.data(), 64, stream.handle());
    });
    CHECK_FALSE(graph.empty());
    stream.synchronize();
    CHECK(cudacnn::download<std::int64_t>(counters) == std::vector<std::int64_t>{0, 0});
    CHECK(cudacnn::download<std::uint8_t>(bytes)[0] == 0);

    for (int i = 0; i < 3; ++i) graph.launch(stream);
    stream.synchronize();
    CHECK(cudacnn::download<std::int64_t>(counters) == std::vector<std::int64_t>{3, 3});
    const std::vector<std::uint8_t> after = cudacnn::download<std::uint8_t>(bytes);
    CHECK(after[127] == 0x11);
    CHECK(after[128 + 63] == 0x11);
    CHECK(after[128 + 64] == 0);
}

TEST_CASE("A synchronizing call inside a capture fails it, and the stream is usable afterwards", "[device][graph]") {
    cudacnn::Stream stream;
    CHECK_THROWS_WITH(cudacnn::CudaGraph::capture(stream, [&] { stream.synchronize(); }),
                      Contains("cudaErrorStreamCaptureUnsupported"));
    // What `enqueue` throws comes back as it was, and the capture is abandoned.
    CHECK_THROWS_WITH(cudacnn::CudaGraph::capture(stream, [] { CUDACNN_FAIL("thrown inside the capture"); }),
                      Contains("thrown inside the capture"));
    DeviceBuffer buffer(64);
    cudacnn::fill_bytes(buffer.data(), 0x7f, buffer.bytes(), stream.handle());
    stream.synchronize();
    CHECK(cudacnn::download<std::uint8_t>(buffer)[63] == 0x7f);
    CHECK_THROWS_WITH(cudacnn::CudaGraph().launch(stream), Contains("nothing was captured"));
}

TEST_CASE("view() checks that the shape fits the buffer", "[device]") {
    DeviceBuffer buffer(6 * sizeof(float));
    const cudacnn::TensorView view = buffer.view(Shape{2, 3}, DType::f32);
    CHECK(view.data == buffer.data());
    CHECK(view.shape == Shape{2, 3});
    CHECK(view.device == cudacnn::Device::gpu);
    CHECK(view.bytes() == buffer.bytes());

    CHECK_THROWS_WITH(buffer.view(Shape{2, 4}, DType::f32),
                      Contains("(2, 4) f32 needs 32 bytes") && Contains("holds 24 bytes"));
    CHECK_THROWS_AS(buffer.view(Shape{4}, DType::i64), cudacnn::Error);  // 32 of 24 bytes

    // Per-tensor views into one flat block, as parameters will use.
    const cudacnn::TensorView tail = buffer.view(Shape{2}, DType::f32, 4 * sizeof(float));
    CHECK(tail.data == static_cast<char*>(buffer.data()) + 16);
    CHECK_THROWS_AS(buffer.view(Shape{3}, DType::f32, 4 * sizeof(float)), cudacnn::Error);
    CHECK_THROWS_WITH(buffer.view(Shape{1}, DType::f32, 2), Contains("not a multiple"));
}
