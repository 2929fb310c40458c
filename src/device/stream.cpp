// RAII wrappers over cudaStream_t and cudaEvent_t.
#include "cudacnn/device.hpp"

#include <utility>

namespace cudacnn {

Stream::Stream() {
    CUDACNN_CUDA_CHECK(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking));
}

Stream::~Stream() {
    // Destructors must not throw; a failure here means the context is already broken and will be reported by
    // the next checked call.
    if (stream_ != nullptr) cudaStreamDestroy(stream_);
}

Stream::Stream(Stream&& other) noexcept : stream_(std::exchange(other.stream_, nullptr)) {}

Stream& Stream::operator=(Stream&& other) noexcept {
    if (this != &other) {
        if (stream_ != nullptr) cudaStreamDestroy(stream_);
        stream_ = std::exchange(other.stream_, nullptr);
    }
    return *this;
}

cudaStream_t Stream::handle() const {
    CUDACNN_CHECK(stream_ != nullptr, "Stream::handle: the stream was moved from");
    return stream_;
}

void Stream::synchronize() const {
    CUDACNN_CUDA_CHECK(cudaStreamSynchronize(handle()));
}

void Stream::wait(const Event& event) const {
    CUDACNN_CUDA_CHECK(cudaStreamWaitEvent(handle(), event.handle(), 0));
}

Event::Event() {
    CUDACNN_CUDA_CHECK(cudaEventCreateWithFlags(&event_, cudaEventDefault));
}

Event::~Event() {
    if (event_ != nullptr) cudaEventDestroy(event_);
}

Event::Event(Event&& other) noexcept : event_(std::exchange(other.event_, nullptr)) {}

Event& Event::operator=(Event&& other) noexcept {
    if (this != &other) {
        if (event_ != nullptr) cudaEventDestroy(event_);
        event_ = std::exchange(other.event_, nullptr);
    }
    return *this;
}

cudaEvent_t Event::handle() const {
    CUDACNN_CHECK(event_ != nullptr, "Event::handle: the event was moved from");
    return event_;
}

void Event::record(cudaStream_t stream) {
    CUDACNN_CUDA_CHECK(cudaEventRecord(handle(), stream));
}

void Event::synchronize() const {
    CUDACNN_CUDA_CHECK(cudaEventSynchronize(handle()));
}

float Event::elapsed_ms(const Event& start, const Event& end) {
    float ms = 0.0f;
    CUDACNN_CUDA_CHECK(cudaEventElapsedTime(&ms, start.handle(), end.handle()));
    return ms;
}

}  // namespace cudacnn
