// Data-parallel training's collectives: one process per GPU (or CPU), each holding a whole replica of the
// model, the gradients averaged across processes after every backward. The engines are MPI (the CPU path,
// host memory) and NCCL (the GPU path, device memory); cudacnn only calls them.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

namespace cudacnn::dist {

// Who this process is, as its launcher said in the environment: mpirun (OMPI_COMM_WORLD_RANK / _SIZE /
// _LOCAL_RANK, or MPICH's PMI_RANK / PMI_SIZE / MPI_LOCALRANKID) or torchrun's convention (RANK, WORLD_SIZE,
// LOCAL_RANK, MASTER_ADDR, MASTER_PORT). Neither: a single process (rank 0 of 1).
struct LaunchInfo {
    int rank = 0;
    int world_size = 1;
    int local_rank = 0;          // this process's index among those on its machine: which GPU it takes
    std::string launcher;        // "mpirun", "torchrun" or "single process"
    std::string master_address;  // torchrun's MASTER_ADDR:MASTER_PORT, "" when unset
};

// Reads the environment. Throws Error naming the variable when one is set but malformed or out of range
// (e.g. RANK=2 with WORLD_SIZE=2).
LaunchInfo detect_launch();

// The collectives a data-parallel step needs. Every rank must make the same calls in the same order, as with
// MPI and NCCL themselves.
class Communicator {
  public:
    virtual ~Communicator() = default;
    virtual int rank() const = 0;
    virtual int world_size() const = 0;
    virtual std::string describe() const = 0;  // one line: the engine and this process's place in the world

    // The memory of the collectives below: host memory (MPI; the CPU backends) or device memory (NCCL; the GPU
    // backend, whose work is queued on `stream`, a cudaStream_t).
    virtual bool device_memory() const = 0;
    // Whether the device collectives may be captured in a CUDA graph (NCCL's may; host-staged ones may not).
    virtual bool capturable() const { return true; }
    // data (n floats) = the mean over the ranks of their data: the gradient all-reduce.
    virtual void all_reduce_mean(float* data, int64_t n, void* stream) = 0;
    // data (n doubles) = the sum over the ranks of their data (synchronized batch norm's sums).
    virtual void all_reduce_sum(double* data, int64_t n, void* stream) = 0;
    // data (bytes) = root's data on every rank.
    virtual void broadcast(void* data, std::size_t bytes, int root, void* stream) = 0;

    // Host memory whatever the engine, returning when done: metrics, decisions every rank must share.
    virtual void all_reduce_sum_host(double* data, int64_t n) = 0;
    virtual void broadcast_host(void* data, std::size_t bytes, int root) = 0;

    // Ends every process of the world (after this one said why): a rank that fails alone would leave the
    // others waiting in a collective forever.
    [[noreturn]] virtual void abort(int exit_code) = 0;
};

// Whether this build has each engine (CMake found MPI; the cuda flavour found NCCL).
bool mpi_built();
bool nccl_built();

// MPI's world communicator (MPI_Init on first use, MPI_Finalize at exit): the one a process started by mpirun
// uses. Throws Error when the build has no MPI.
Communicator& mpi_world();

// MPI's world for the GPU backend where this build has no NCCL (the emu flavour; a cuda build without it): each
// device collective waits for the stream and goes through host memory. Correct everywhere, slow on a real GPU,
// and not capturable. Throws Error when the build has no MPI.
std::unique_ptr<Communicator> make_mpi_staged_communicator();

// NCCL over the GPU this process uses (cudaSetDevice(launch.local_rank) first), its unique id passed from rank
// 0 to the others by MPI when launch.launcher is "mpirun" and MPI is built, otherwise through `id_file`, a path
// every rank can read (rank 0 writes it, the others wait up to a minute for it). Throws Error when the build has
// no NCCL or NCCL fails.
std::unique_ptr<Communicator> make_nccl_communicator(const LaunchInfo& launch, const std::string& id_file);

}  // namespace cudacnn::dist
