// NCCL: the GPU path's collectives, one process per GPU. Rank 0's unique id reaches the other ranks over MPI
// (processes started by mpirun, in a build with MPI) or through a file every rank can read (torchrun-style
// launches); ncclCommInitRank then joins them.
#include "cudacnn/dist/communicator.hpp"

#include "cudacnn/error.hpp"

#if CUDACNN_HAVE_NCCL

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <memory>
#include <system_error>
#include <thread>

#include <cuda_runtime_api.h>
#include <nccl.h>
#include <unistd.h>

#include "cudacnn/device.hpp"

// ncclAvg (the gradient mean in one pass) came with NCCL 2.10.
#if !defined(NCCL_VERSION_CODE) || NCCL_VERSION_CODE < NCCL_VERSION(2, 10, 0)
#error "cudacnn's data-parallel training needs NCCL 2.10 or newer (ncclAvg): install a newer NCCL, or remove it from the include path to build without multi-GPU training"
#endif

namespace cudacnn::dist {

namespace {

// When this process started (static initialization, before main), within a few milliseconds: an id file
// older than that, less kIdFileSlack, belongs to an earlier run.
const auto kProcessStart = std::filesystem::file_time_type::clock::now();
// Launchers start the ranks within seconds of each other; the slack also absorbs modest clock differences
// between the machines and a shared file server.
constexpr auto kIdFileSlack = std::chrono::seconds(60);
constexpr auto kIdFileWait = std::chrono::seconds(60);
constexpr auto kIdFilePoll = std::chrono::milliseconds(50);

#if CUDACNN_HAVE_MPI
constexpr bool kHaveMpi = true;
#else
constexpr bool kHaveMpi = false;
#endif

// The id file: a magic line, the world size it was written for, then NCCL's opaque id. The header tells a
// torn or foreign file, and one from a run of another size, from the one this run's rank 0 wrote.
constexpr char kIdFileMagic[16] = "cudacnn-ncclid1";  // 15 characters and the terminating zero
struct IdFile {
    char magic[sizeof kIdFileMagic];
    int32_t world_size;
    ncclUniqueId id;
};

void check_nccl(ncclResult_t result, const char* expression, ncclComm_t comm, const char* file, int line) {
    if (result == ncclSuccess) return;
    std::string detail;
#if NCCL_VERSION_CODE >= NCCL_VERSION(2, 13, 0)
    const char* last = ncclGetLastError(comm);
    if (last != nullptr && *last != '\0') detail = fmt::format(" ({})", last);
#else
    (void)comm;
#endif
    throw_error(file, line,
                fmt::format("{} failed: NCCL error {}: {}{}; rerun with NCCL_DEBUG=INFO for NCCL's own account "
                            "(every rank prints it)",
                            expression, static_cast<int>(result), ncclGetErrorString(result), detail));
}

#define CUDACNN_NCCL_CHECK(expr, comm) check_nccl((expr), #expr, (comm), __FILE__, __LINE__)

std::string version_text(int code) {
    // NCCL_VERSION's encoding: major*1000 + minor*100 + patch up to 2.8, major*10000 + minor*100 + patch since.
    if (code < 10000) return fmt::format("{}.{}.{}", code / 1000, code % 1000 / 100, code % 100);
    return fmt::format("{}.{}.{}", code / 10000, code % 10000 / 100, code % 100);
}

// ---- the unique id through a shared file ----------------------------------------------------------------

// Rank 0: the whole file appears at once (written beside it, then renamed), so a reader never sees half of it.
void write_id_file(const std::string& path, const ncclUniqueId& id, int world_size) {
    IdFile contents{};
    std::memcpy(contents.magic, kIdFileMagic, sizeof kIdFileMagic);
    contents.world_size = world_size;
    contents.id = id;
    const std::string temporary = fmt::format("{}.tmp-{}", path, static_cast<long>(::getpid()));
    {
        std::ofstream out(temporary, std::ios::binary | std::ios::trunc);
        out.write(reinterpret_cast<const char*>(&contents), sizeof contents);
        out.flush();
        CUDACNN_CHECK(out.good(),
                      "--dist-id-file {}: rank 0 could not write {} (NCCL's id for the other ranks); pass a path in "
                      "a writable folder that every rank can read",
                      path, temporary);
    }
    std::error_code error;
    std::filesystem::rename(temporary, path, error);
    if (error) {
        std::filesystem::remove(temporary, error);
        CUDACNN_FAIL("--dist-id-file {}: rank 0 could not rename {} to it ({}); pass a path in a writable folder "
                     "that every rank can read",
                     path, temporary, error.message());
    }
}

// What a non-zero rank found at `path` on one look: the id, or why not yet.
enum class IdFileState { missing, stale, wrong_size, ready };

IdFileState read_id_file(const std::string& path, int world_size, ncclUniqueId& id) {
    std::error_code error;
    const auto written = std::filesystem::last_write_time(path, error);
    if (error) return IdFileState::missing;
    if (written < kProcessStart - kIdFileSlack) return IdFileState::stale;
    IdFile contents{};
    std::ifstream in(path, std::ios::binary);
    in.read(reinterpret_cast<char*>(&contents), sizeof contents);
    // Short, or not ours: an earlier writer's leftover that the rename has not replaced yet.
    if (!in || in.peek() != std::char_traits<char>::eof() ||
        std::memcmp(contents.magic, kIdFileMagic, sizeof kIdFileMagic) != 0)
        return IdFileState::stale;
    if (contents.world_size != world_size) return IdFileState::wrong_size;
    id = contents.id;
    return IdFileState::ready;
}

ncclUniqueId wait_for_id_file(const std::string& path, int rank, int world_size) {
    ncclUniqueId id{};
    const auto deadline = std::chrono::steady_clock::now() + kIdFileWait;
    IdFileState state = read_id_file(path, world_size, id);
    while (state != IdFileState::ready && std::chrono::steady_clock::now() < deadline) {
        std::this_thread::sleep_for(kIdFilePoll);
        state = read_id_file(path, world_size, id);
    }
    const char* found = "";
    switch (state) {
        case IdFileState::ready: return id;
        case IdFileState::missing: found = "the file never appeared"; break;
        case IdFileState::stale:
            found = "only an older file (an earlier run's, or not cudacnn's) was there";
            break;
        case IdFileState::wrong_size: found = "the file there was written for another world size"; break;
    }
    CUDACNN_FAIL("--dist-id-file {}: rank {} of {} waited {} s for NCCL's id, which rank 0 writes there, and {}. "
                 "The path must be on a filesystem every rank shares (same path for all of them), and rank 0 must "
                 "be running (see its log for its own error)",
                 path, rank, world_size, kIdFileWait.count(), found);
}

// Removes rank 0's id file when it goes out of scope: once ncclCommInitRank returned, every rank has joined,
// so nobody needs it, and a later run must not find it.
class IdFileRemover {
  public:
    explicit IdFileRemover(std::string path) : path_(std::move(path)) {}
    ~IdFileRemover() {
        std::error_code ignored;
        if (!path_.empty()) std::filesystem::remove(path_, ignored);
    }
    IdFileRemover(const IdFileRemover&) = delete;
    IdFileRemover& operator=(const IdFileRemover&) = delete;

  private:
    std::string path_;
};

// ---- the communicator -------------------------------------------------------------------------------------

struct CommDestroyer {
    void operator()(ncclComm* comm) const noexcept { ncclCommDestroy(comm); }  // never throws; errors ignored
};
using CommHandle = std::unique_ptr<ncclComm, CommDestroyer>;

struct CudaFree {
    void operator()(void* pointer) const noexcept { cudaFree(pointer); }
};

class NcclCommunicator final : public Communicator {
  public:
    NcclCommunicator(CommHandle comm, const LaunchInfo& launch, int device, std::string exchange)
        : comm_(std::move(comm)), launch_(launch), device_(device), exchange_(std::move(exchange)) {
        int version = 0;
        CUDACNN_NCCL_CHECK(ncclGetVersion(&version), comm_.get());
        cudaDeviceProp properties{};
        CUDACNN_CUDA_CHECK(cudaGetDeviceProperties(&properties, device_));
        description_ = fmt::format("NCCL {}, rank {} of {} (local rank {}, GPU {}: {}), id {}", version_text(version),
                                   launch_.rank, launch_.world_size, launch_.local_rank, device_, properties.name,
                                   exchange_);
    }

    int rank() const override { return launch_.rank; }
    int world_size() const override { return launch_.world_size; }
    std::string describe() const override { return description_; }
    bool device_memory() const override { return true; }

    void all_reduce_mean(float* data, int64_t n, void* stream) override {
        if (n <= 0) return;
        CUDACNN_NCCL_CHECK(ncclAllReduce(data, data, static_cast<std::size_t>(n), ncclFloat, ncclAvg, comm_.get(),
                                         static_cast<cudaStream_t>(stream)),
                           comm_.get());
    }
    void all_reduce_sum(double* data, int64_t n, void* stream) override {
        if (n <= 0) return;
        CUDACNN_NCCL_CHECK(ncclAllReduce(data, data, static_cast<std::size_t>(n), ncclDouble, ncclSum, comm_.get(),
                                         static_cast<cudaStream_t>(stream)),
                           comm_.get());
    }
    void broadcast(void* data, std::size_t bytes, int root, void* stream) override {
        check_root(root);
        if (bytes == 0) return;
        CUDACNN_NCCL_CHECK(ncclBroadcast(data, data, bytes, ncclUint8, root, comm_.get(),
                                         static_cast<cudaStream_t>(stream)),
                           comm_.get());
    }

    // Host memory: through a small device buffer on this communicator's own stream. Not to be called while a
    // CUDA graph is being captured (cudaMalloc and the synchronization are not capturable).
    void all_reduce_sum_host(double* data, int64_t n) override {
        if (n <= 0) return;
        const std::size_t bytes = static_cast<std::size_t>(n) * sizeof(double);
        void* buffer = staging(bytes);
        const cudaStream_t stream = stream_.handle();
        CUDACNN_CUDA_CHECK(cudaMemcpyAsync(buffer, data, bytes, cudaMemcpyHostToDevice, stream));
        all_reduce_sum(static_cast<double*>(buffer), n, stream);
        CUDACNN_CUDA_CHECK(cudaMemcpyAsync(data, buffer, bytes, cudaMemcpyDeviceToHost, stream));
        stream_.synchronize();
    }
    void broadcast_host(void* data, std::size_t bytes, int root) override {
        check_root(root);
        if (bytes == 0) return;
        void* buffer = staging(bytes);
        const cudaStream_t stream = stream_.handle();
        // Only the root's bytes matter; the others receive into the buffer.
        if (launch_.rank == root)
            CUDACNN_CUDA_CHECK(cudaMemcpyAsync(buffer, data, bytes, cudaMemcpyHostToDevice, stream));
        broadcast(buffer, bytes, root, stream);
        CUDACNN_CUDA_CHECK(cudaMemcpyAsync(data, buffer, bytes, cudaMemcpyDeviceToHost, stream));
        stream_.synchronize();
    }

    [[noreturn]] void abort(int exit_code) override {
        // Frees this rank's share of any collective in flight; the other ranks learn of it through their launcher
        // (mpirun's MPI_Abort, or torchrun ending the group when one worker exits).
        ncclCommAbort(comm_.release());
#if CUDACNN_HAVE_MPI
        if (launch_.launcher == "mpirun") mpi_world().abort(exit_code);
#endif
        std::_Exit(exit_code);
    }

  private:
    void check_root(int root) const {
        CUDACNN_CHECK(root >= 0 && root < launch_.world_size, "NCCL broadcast: root rank {} is not in 0..{}", root,
                      launch_.world_size - 1);
    }

    void* staging(std::size_t bytes) {
        if (bytes > staging_bytes_) {
            staging_.reset();
            void* pointer = nullptr;
            CUDACNN_CUDA_CHECK(cudaMalloc(&pointer, bytes));
            staging_.reset(pointer);
            staging_bytes_ = bytes;
        }
        return staging_.get();
    }

    // Members are destroyed in reverse: the buffer and the stream go before the communicator.
    CommHandle comm_;
    LaunchInfo launch_;
    int device_;
    std::string exchange_;
    std::string description_;
    Stream stream_;
    std::unique_ptr<void, CudaFree> staging_;
    std::size_t staging_bytes_ = 0;
};

// cudaSetDevice(local rank modulo the visible GPUs): modulo so that a launcher giving each process one visible
// GPU (CUDA_VISIBLE_DEVICES per rank) works with any local rank.
int select_device(const LaunchInfo& launch) {
    int count = 0;
    const cudaError_t status = cudaGetDeviceCount(&count);
    CUDACNN_CHECK(status == cudaSuccess && count > 0,
                  "NCCL: rank {} (local rank {}) sees no GPU ({}); data-parallel training on the GPU needs one GPU "
                  "per process: check CUDA_VISIBLE_DEVICES and the driver, or train on the CPU under mpirun",
                  launch.rank, launch.local_rank, gpu_status().description);
    const int device = launch.local_rank % count;
    CUDACNN_CUDA_CHECK(cudaSetDevice(device));
    return device;
}

}  // namespace

std::unique_ptr<Communicator> make_nccl_communicator(const LaunchInfo& launch, const std::string& id_file) {
    const bool over_mpi = kHaveMpi && launch.launcher == "mpirun";
    CUDACNN_CHECK(over_mpi || launch.world_size == 1 || !id_file.empty(),
                  "NCCL with {} processes ({}): the other ranks need rank 0's NCCL id; pass --dist-id-file PATH "
                  "(the same path, on a filesystem all ranks share, to every rank){}",
                  launch.world_size, launch.launcher,
                  launch.launcher == "mpirun" ? ", or build cudacnn with MPI (libopenmpi-dev) so that mpirun "
                                                "passes it"
                                              : "");
    const int device = select_device(launch);

    ncclUniqueId id{};
    if (launch.rank == 0) CUDACNN_NCCL_CHECK(ncclGetUniqueId(&id), nullptr);
    std::string exchange;
    std::string written_file;  // rank 0's id file, removed once every rank has joined (or init failed)
    if (over_mpi) {
#if CUDACNN_HAVE_MPI
        mpi_world().broadcast_host(&id, sizeof id, 0);
#endif
        exchange = "exchanged over MPI";
    } else if (!id_file.empty()) {
        if (launch.rank == 0) {
            write_id_file(id_file, id, launch.world_size);
            written_file = id_file;
        } else {
            id = wait_for_id_file(id_file, launch.rank, launch.world_size);
        }
        exchange = fmt::format("exchanged through file {}", id_file);
    } else {
        exchange = "not exchanged (world size 1)";
    }
    const IdFileRemover remover(written_file);

    ncclComm_t comm = nullptr;
    const ncclResult_t result = ncclCommInitRank(&comm, launch.world_size, id, launch.rank);
    if (result != ncclSuccess) {
        CUDACNN_FAIL("ncclCommInitRank (rank {} of {}, GPU {}) failed: NCCL error {}: {}; every rank must start "
                     "with the same world size and reach this point (look for another rank's error), no two ranks "
                     "on one machine may share a GPU (one process per GPU), and the ranks must reach each other "
                     "over the network; rerun with NCCL_DEBUG=INFO for NCCL's own account",
                     launch.rank, launch.world_size, device, static_cast<int>(result), ncclGetErrorString(result));
    }
    return std::make_unique<NcclCommunicator>(CommHandle(comm), launch, device, std::move(exchange));
}

}  // namespace cudacnn::dist

#else  // no NCCL: the emu flavour, or the cuda flavour built where CMake found no nccl.h / libnccl

namespace cudacnn::dist {

std::unique_ptr<Communicator> make_nccl_communicator(const LaunchInfo&, const std::string&) {
    CUDACNN_FAIL("this cudacnn was built without NCCL, so it cannot train on several GPUs; NCCL comes with the "
                 "cuda flavour when CMake finds nccl.h and libnccl (install NVIDIA's NCCL, e.g. libnccl-dev, and "
                 "build again), or train on the CPU path under mpirun");
}

}  // namespace cudacnn::dist

#endif
