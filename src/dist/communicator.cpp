// Launch detection and the MPI communicator of the CPU path (see include/cudacnn/dist/communicator.hpp).
#include "cudacnn/dist/communicator.hpp"

#include <algorithm>
#include <cstdlib>
#include <vector>

#include <fmt/format.h>

#include "cudacnn/device.hpp"
#include "cudacnn/error.hpp"

#if CUDACNN_HAVE_MPI
#include <mpi.h>
#endif

namespace cudacnn::dist {
namespace {

const char* env(const char* name) {
    const char* value = std::getenv(name);
    return value != nullptr && *value != '\0' ? value : nullptr;
}

// The integer in environment variable `name`, at least `low`; `fallback` when unset.
int env_int(const char* name, int fallback, int low) {
    const char* text = env(name);
    if (text == nullptr) return fallback;
    char* end = nullptr;
    const long value = std::strtol(text, &end, 10);
    CUDACNN_CHECK(end != text && *end == '\0' && value >= low && value <= 1 << 20,
                  "environment variable {}={}: expected a whole number of at least {} (the launcher sets it: mpirun, "
                  "or torchrun's convention RANK, WORLD_SIZE, LOCAL_RANK)", name, text, low);
    return static_cast<int>(value);
}

}  // namespace

LaunchInfo detect_launch() {
    LaunchInfo launch;
    if (env("OMPI_COMM_WORLD_SIZE") != nullptr || env("PMI_SIZE") != nullptr) {
        const bool open_mpi = env("OMPI_COMM_WORLD_SIZE") != nullptr;
        launch.launcher = "mpirun";
        launch.world_size = env_int(open_mpi ? "OMPI_COMM_WORLD_SIZE" : "PMI_SIZE", 1, 1);
        launch.rank = env_int(open_mpi ? "OMPI_COMM_WORLD_RANK" : "PMI_RANK", 0, 0);
        launch.local_rank = env_int(open_mpi ? "OMPI_COMM_WORLD_LOCAL_RANK" : "MPI_LOCALRANKID", 0, 0);
    } else if (env("WORLD_SIZE") != nullptr || env("RANK") != nullptr) {
        launch.launcher = "torchrun";
        CUDACNN_CHECK(env("WORLD_SIZE") != nullptr && env("RANK") != nullptr,
                      "environment: {} is set but {} is not; torchrun's convention needs both RANK and WORLD_SIZE "
                      "(and LOCAL_RANK for a machine with several GPUs)",
                      env("RANK") ? "RANK" : "WORLD_SIZE", env("RANK") ? "WORLD_SIZE" : "RANK");
        launch.world_size = env_int("WORLD_SIZE", 1, 1);
        launch.rank = env_int("RANK", 0, 0);
        launch.local_rank = env_int("LOCAL_RANK", 0, 0);
        if (env("MASTER_ADDR") != nullptr) {
            launch.master_address = fmt::format("{}:{}", env("MASTER_ADDR"), env("MASTER_PORT") ? env("MASTER_PORT") : "");
        }
    } else {
        launch.launcher = "single process";
        return launch;
    }
    CUDACNN_CHECK(launch.rank < launch.world_size,
                  "environment ({}): rank {} but world size {}; ranks count from 0 to the world size - 1",
                  launch.launcher, launch.rank, launch.world_size);
    return launch;
}

bool mpi_built() {
#if CUDACNN_HAVE_MPI
    return true;
#else
    return false;
#endif
}

bool nccl_built() {
#if CUDACNN_HAVE_NCCL
    return true;
#else
    return false;
#endif
}

#if CUDACNN_HAVE_MPI
namespace {

void check_mpi(int code, const char* call) {
    if (code == MPI_SUCCESS) return;
    char text[MPI_MAX_ERROR_STRING] = {};
    int length = 0;
    MPI_Error_string(code, text, &length);
    CUDACNN_FAIL("{} failed: {}", call, std::string(text, static_cast<std::size_t>(length)));
}

// MPI_COMM_WORLD in host memory. MPI_Init happens once per process (MPI cannot start again after
// MPI_Finalize), so the world lives until exit.
class MpiCommunicator final : public Communicator {
  public:
    MpiCommunicator() {
        int initialized = 0;
        MPI_Initialized(&initialized);
        if (!initialized) {
            int provided = 0;
            check_mpi(MPI_Init_thread(nullptr, nullptr, MPI_THREAD_FUNNELED, &provided), "MPI_Init_thread");
            std::atexit(finalize);
        }
        MPI_Comm_rank(MPI_COMM_WORLD, &rank_);
        MPI_Comm_size(MPI_COMM_WORLD, &size_);
        char version[MPI_MAX_LIBRARY_VERSION_STRING] = {};
        int length = 0;
        MPI_Get_library_version(version, &length);
        library_ = std::string(version, static_cast<std::size_t>(length));
        library_ = library_.substr(0, library_.find_first_of(",\n"));
    }

    int rank() const override { return rank_; }
    int world_size() const override { return size_; }
    std::string describe() const override {
        return fmt::format("MPI ({}), rank {} of {}", library_, rank_, size_);
    }
    bool device_memory() const override { return false; }

    void all_reduce_mean(float* data, int64_t n, void*) override {
        in_chunks(data, n, [](float* first, int count) {
            check_mpi(MPI_Allreduce(MPI_IN_PLACE, first, count, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD),
                      "MPI_Allreduce (gradients)");
        });
        const float scale = 1.0f / static_cast<float>(size_);
        for (int64_t i = 0; i < n; ++i) data[i] *= scale;
    }
    void all_reduce_sum(double* data, int64_t n, void*) override { all_reduce_sum_host(data, n); }
    void broadcast(void* data, std::size_t bytes, int root, void*) override { broadcast_host(data, bytes, root); }

    void all_reduce_sum_host(double* data, int64_t n) override {
        in_chunks(data, n, [](double* first, int count) {
            check_mpi(MPI_Allreduce(MPI_IN_PLACE, first, count, MPI_DOUBLE, MPI_SUM, MPI_COMM_WORLD), "MPI_Allreduce");
        });
    }
    void broadcast_host(void* data, std::size_t bytes, int root) override {
        in_chunks(static_cast<char*>(data), static_cast<int64_t>(bytes), [root](char* first, int count) {
            check_mpi(MPI_Bcast(first, count, MPI_BYTE, root, MPI_COMM_WORLD), "MPI_Bcast");
        });
    }

    [[noreturn]] void abort(int exit_code) override {
        MPI_Abort(MPI_COMM_WORLD, exit_code);
        std::_Exit(exit_code);  // MPI_Abort does not return; should it, this process still ends
    }

  private:
    // call(first, count) over n elements in pieces of at most 2^30: MPI counts are int.
    template <class T, class Call>
    static void in_chunks(T* data, int64_t n, const Call& call) {
        constexpr int64_t kChunk = int64_t{1} << 30;
        for (int64_t first = 0; first < n; first += kChunk) {
            call(data + first, static_cast<int>(std::min(kChunk, n - first)));
        }
    }
    static void finalize() {
        int finalized = 0;
        MPI_Finalized(&finalized);
        if (!finalized) MPI_Finalize();
    }

    int rank_ = 0, size_ = 1;
    std::string library_;
};

// Device memory through the host (see make_mpi_staged_communicator): wait for the stream's work, copy the data
// out, reduce it with MPI, copy it back and wait again (the host buffer must outlive the copy).
class MpiStagedCommunicator final : public Communicator {
  public:
    explicit MpiStagedCommunicator(Communicator& host) : host_(host) {}

    int rank() const override { return host_.rank(); }
    int world_size() const override { return host_.world_size(); }
    std::string describe() const override {
        return host_.describe() + ", GPU data through host memory (this build has no NCCL)";
    }
    bool device_memory() const override { return true; }
    bool capturable() const override { return false; }

    void all_reduce_mean(float* data, int64_t n, void* stream) override {
        staged<float>(data, n, stream, [this](float* host, int64_t count) { host_.all_reduce_mean(host, count, nullptr); });
    }
    void all_reduce_sum(double* data, int64_t n, void* stream) override {
        staged<double>(data, n, stream, [this](double* host, int64_t count) { host_.all_reduce_sum_host(host, count); });
    }
    void broadcast(void* data, std::size_t bytes, int root, void* stream) override {
        staged<char>(static_cast<char*>(data), static_cast<int64_t>(bytes), stream,
                     [this, root](char* host, int64_t count) { host_.broadcast_host(host, static_cast<std::size_t>(count), root); });
    }
    void all_reduce_sum_host(double* data, int64_t n) override { host_.all_reduce_sum_host(data, n); }
    void broadcast_host(void* data, std::size_t bytes, int root) override { host_.broadcast_host(data, bytes, root); }
    [[noreturn]] void abort(int exit_code) override {
        host_.abort(exit_code);
        std::_Exit(exit_code);  // not reached: MPI_Abort ends the process
    }

  private:
    template <class T, class Reduce>
    static void staged(T* device_data, int64_t n, void* stream_handle, const Reduce& reduce) {
        if (n <= 0) return;
        const auto stream = static_cast<cudaStream_t>(stream_handle);
        std::vector<T> host(static_cast<std::size_t>(n));
        copy_to_host(host.data(), device_data, sizeof(T) * host.size(), stream);
        CUDACNN_CUDA_CHECK(cudaStreamSynchronize(stream));
        reduce(host.data(), n);
        copy_to_device(device_data, host.data(), sizeof(T) * host.size(), stream);
        CUDACNN_CUDA_CHECK(cudaStreamSynchronize(stream));
    }

    Communicator& host_;
};

}  // namespace

Communicator& mpi_world() {
    static MpiCommunicator world;
    return world;
}

std::unique_ptr<Communicator> make_mpi_staged_communicator() {
    return std::make_unique<MpiStagedCommunicator>(mpi_world());
}
#else
Communicator& mpi_world() {
    CUDACNN_FAIL("this cudacnn was built without MPI, so it cannot train across processes started by mpirun; "
                 "install Debian's libopenmpi-dev (bash tools/setup.sh does) and build again");
}

std::unique_ptr<Communicator> make_mpi_staged_communicator() {
    mpi_world();  // says why there is none
    return nullptr;
}
#endif

}  // namespace cudacnn::dist
