// CudaGraph: stream capture, instantiation and launch of a CUDA graph (device.hpp).
#include <utility>

#include "cudacnn/device.hpp"

namespace cudacnn {
namespace {

// Ends a capture that `enqueue` left by throwing, dropping whatever it recorded.
void abandon_capture(cudaStream_t stream) {
    cudaGraph_t partial = nullptr;
    cudaStreamEndCapture(stream, &partial);
    if (partial != nullptr) cudaGraphDestroy(partial);
    cudaGetLastError();  // the abandoned capture's status is not the caller's error
}

}  // namespace

CudaGraph::~CudaGraph() {
    if (exec_ != nullptr) cudaGraphExecDestroy(exec_);
}

CudaGraph::CudaGraph(CudaGraph&& other) noexcept : exec_(std::exchange(other.exec_, nullptr)) {}

CudaGraph& CudaGraph::operator=(CudaGraph&& other) noexcept {
    if (this != &other) {
        if (exec_ != nullptr) cudaGraphExecDestroy(exec_);
        exec_ = std::exchange(other.exec_, nullptr);
    }
    return *this;
}

CudaGraph CudaGraph::capture(const Stream& stream, const std::function<void()>& enqueue) {
    const cudaStream_t handle = stream.handle();
    CUDACNN_CUDA_CHECK(cudaStreamBeginCapture(handle, cudaStreamCaptureModeGlobal));
    try {
        enqueue();
    } catch (...) {
        abandon_capture(handle);
        throw;
    }
    cudaGraph_t graph = nullptr;
    CUDACNN_CUDA_CHECK(cudaStreamEndCapture(handle, &graph));
    CudaGraph captured;
    const cudaError_t status = cudaGraphInstantiate(&captured.exec_, graph, 0);
    cudaGraphDestroy(graph);  // the executable graph keeps what it needs
    CUDACNN_CUDA_CHECK(status);
    return captured;
}

void CudaGraph::launch(const Stream& stream) const {
    CUDACNN_CHECK(exec_ != nullptr, "CudaGraph::launch: nothing was captured (an empty or moved-from graph)");
    CUDACNN_CUDA_CHECK(cudaGraphLaunch(exec_, stream.handle()));
}

}  // namespace cudacnn
