// The NCCL communicator (src/dist/nccl_communicator.cpp): in a build without NCCL (the emu flavour) asking for
// it fails with a message that says so; with NCCL and a real GPU, a world of one process runs every collective,
// the unique id passes through --dist-id-file (removed once every rank has joined), and an all-reduce can be
// captured in a CUDA graph, as the executor's training step is.
#include <catch2/catch.hpp>

#include <cstring>
#include <filesystem>
#include <string>
#include <vector>

#include "cudacnn/device.hpp"
#include "cudacnn/dist/communicator.hpp"
#include "support/temp_files.hpp"

using Catch::Matchers::Contains;
using namespace cudacnn;

namespace {

dist::LaunchInfo torchrun_rank(int rank, int world_size) {
    dist::LaunchInfo launch;
    launch.rank = rank;
    launch.world_size = world_size;
    launch.local_rank = rank;
    launch.launcher = "torchrun";
    launch.master_address = "127.0.0.1:29500";
    return launch;
}

}  // namespace

#if !CUDACNN_HAVE_NCCL

TEST_CASE("a build without NCCL says so when asked for an NCCL communicator", "[dist]") {
    CHECK_THROWS_WITH(dist::make_nccl_communicator(torchrun_rank(0, 1), ""),
                      Contains("built without NCCL") && Contains("mpirun"));
}

#else

TEST_CASE("NCCL with several processes and no way to pass its id names --dist-id-file", "[dist]") {
    CHECK_THROWS_WITH(dist::make_nccl_communicator(torchrun_rank(1, 2), ""), Contains("--dist-id-file"));
}

TEST_CASE("NCCL at world size 1: every collective, the id file, and capture in a CUDA graph", "[dist][gpu]") {
    if (!gpu_status().available) {
        WARN("skipped: no GPU here (" << gpu_status().description << ")");
        return;
    }
    const test::TempDir folder;
    const std::string id_file = folder.file("nccl-id");
    const auto comm = dist::make_nccl_communicator(torchrun_rank(0, 1), id_file);
    CHECK(comm->rank() == 0);
    CHECK(comm->world_size() == 1);
    CHECK(comm->device_memory());
    CHECK_THAT(comm->describe(), Contains("NCCL 2.") && Contains("rank 0 of 1") && Contains(id_file));
    CHECK_FALSE(std::filesystem::exists(id_file));  // every rank has joined: rank 0 removed it

    const Stream stream;
    const std::vector<float> values{1.5f, -2.25f, 3.0f, 1e-30f, 7.0f};
    DeviceBuffer floats(values.size() * sizeof(float));
    copy_to_device(floats.data(), values.data(), floats.bytes(), stream.handle());
    comm->all_reduce_mean(floats.data_as<float>(), static_cast<int64_t>(values.size()), stream.handle());
    std::vector<float> back(values.size());
    copy_to_host(back.data(), floats.data(), floats.bytes(), stream.handle());
    stream.synchronize();
    CHECK(back == values);  // the mean over one rank is its own data, bit for bit

    const std::vector<double> sums{0.25, -8.0, 1e300};
    DeviceBuffer doubles(sums.size() * sizeof(double));
    copy_to_device(doubles.data(), sums.data(), doubles.bytes(), stream.handle());
    comm->all_reduce_sum(doubles.data_as<double>(), static_cast<int64_t>(sums.size()), stream.handle());
    comm->broadcast(doubles.data(), doubles.bytes(), 0, stream.handle());
    std::vector<double> sums_back(sums.size());
    copy_to_host(sums_back.data(), doubles.data(), doubles.bytes(), stream.handle());
    stream.synchronize();
    CHECK(sums_back == sums);

    std::vector<double> host_sums = sums;
    comm->all_reduce_sum_host(host_sums.data(), static_cast<int64_t>(host_sums.size()));
    CHECK(host_sums == sums);
    char text[] = "every rank gets this";
    comm->broadcast_host(text, sizeof text, 0);
    CHECK(std::strcmp(text, "every rank gets this") == 0);
    CHECK_THROWS_WITH(comm->broadcast_host(text, sizeof text, 1), Contains("root rank 1"));

    // The executor captures the training step, gradient all-reduce included (NCCL >= 2.9 allows it).
    const CudaGraph graph = CudaGraph::capture(stream, [&] {
        comm->all_reduce_mean(floats.data_as<float>(), static_cast<int64_t>(values.size()), stream.handle());
    });
    for (int launch = 0; launch < 3; ++launch) graph.launch(stream);
    copy_to_host(back.data(), floats.data(), floats.bytes(), stream.handle());
    stream.synchronize();
    CHECK(back == values);
}

TEST_CASE("NCCL at world size 1 needs no id file", "[dist][gpu]") {
    if (!gpu_status().available) {
        WARN("skipped: no GPU here (" << gpu_status().description << ")");
        return;
    }
    const auto comm = dist::make_nccl_communicator(torchrun_rank(0, 1), "");
    CHECK_THAT(comm->describe(), Contains("not exchanged"));
}

#endif
