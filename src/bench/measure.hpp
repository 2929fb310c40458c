// Internal to src/bench: the run's context (device, stream, roofline, selection), one measurable
// implementation (a Candidate: check against the reference, then timed calls), and helpers for inputs.
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <regex>
#include <set>
#include <string>
#include <vector>

#include "cudacnn/bench/cases.hpp"
#include "cudacnn/bench/timing.hpp"
#include "cudacnn/bench/check.hpp"
#include "cudacnn/bench/options.hpp"
#include "cudacnn/bench/record.hpp"
#include "cudacnn/device.hpp"
#include "cudacnn/host_tensor.hpp"

namespace cudacnn::graph {
class Executor;
}

namespace cudacnn::bench {

// The figures that percentages refer to, measured at the start on the device that runs the ops.
struct Roofline {
    double copy_gbps = 0;     // device-to-device copy (read + write bytes per second), or memcpy on the CPU
    double sgemm_gflops = 0;  // cuBLAS SGEMM (cuda), our SGEMM (emulator), the reference's linear (CPU)
};

struct Context {
    BenchOptions options;
    std::set<std::string> algos;  // resolved --algos
    bool gpu = false;             // GPU algorithms run here (a real GPU, or the emulator when asked)
    std::string gpu_device;       // "gpu" or "emulated"
    std::string no_gpu_reason;    // why GPU algorithms are skipped, for their records
    int64_t l2_bytes = 0;         // 0 on the emulator
    int64_t max_rotation_bytes = int64_t{2} << 30;
    std::unique_ptr<Stream> stream;
    Roofline gpu_roofline, cpu_roofline;
    std::optional<std::regex> filter;
    std::string profile_tables;  // --profile: the per-node tables, printed after the step rows

    cudaStream_t s() const { return stream ? stream->handle() : nullptr; }
    bool wants(const std::string& algo) const { return algos.count(algo) != 0; }
    // Whether a record (op, direction, algorithm, shape) passes --filter.
    bool selected(const Record& r) const;
    const Roofline& roofline(const std::string& device) const { return device == "cpu" ? cpu_roofline : gpu_roofline; }
    // How many input copies a GPU case rotates through (1 on the emulator).
    int64_t slots_for(int64_t bytes_per_copy) const;
};

// One implementation of one op at one shape in one direction.
struct Candidate {
    Record record;            // op, shape, direction, algorithm, device, flops or bytes per call
    std::string unsupported;  // non-empty: reported with this reason, never run
    std::string skipped;      // non-empty: reported as skipped with this reason (e.g. no GPU)
    // Runs once on the check inputs and compares with the CPU reference; empty for the reference itself.
    std::function<std::vector<Check>()> check;
    std::function<void(int64_t call)> run;  // one timed call; `call` picks the rotated input copy
    std::function<std::string()> describe;  // after the check: e.g. the algorithm cuDNN chose (may be empty)
    bool device_timed = false;              // CUDA events on the context's stream, else the host clock
    double images_per_call = 0;             // > 0: the record gets images_per_s
};

// Checks, warms up and times one candidate; never throws (an Error becomes status failed with its message).
Record measure(Candidate& candidate, const Context& context);

// Sets r's repeats, median, min, max and spread from t.
void set_timing(Record& r, const TimingSummary& t);
// The untimed and the timed calls measure() makes on `device` (gpu, emulated, cpu): the options' --warmup and
// --repeats, at most 1 and 3 on the CPU and the emulator.
int64_t warmup_calls(const Context& context, const std::string& device);
int64_t timed_calls(const Context& context, const std::string& device);

// Sets ratio_to_vendor on every timed record of `records` whose op, shape and direction match a timed record
// of the vendor algorithm (cudnn for conv2d, cublas for linear).
void add_vendor_ratios(std::vector<Record>& records);

// ---- inputs -------------------------------------------------------------------------------------------------

// Values uniform in [-1, 1) from (seed, stream): never exact zeros, which would hide unwritten outputs.
std::vector<float> random_values(int64_t count, uint64_t seed, uint64_t stream);
HostTensor<float> random_tensor(const Shape& shape, uint64_t seed, uint64_t stream);
std::vector<double> as_doubles(const std::vector<float>& values);

// count floats of device memory on the context's stream: filled with NaN bytes, or read back.
void poison(float* device, int64_t count, const Context& context);
void poison(const DeviceBuffer& buffer, const Context& context);  // every float of the buffer
std::vector<float> read_back(const float* device, int64_t count, const Context& context);

// Per-call cost and record identity shared by a case's candidates.
Record base_record(const OpCase& c, const std::string& direction, const std::string& algorithm,
                   const std::string& device);

// A GPU candidate that cannot run because there is no GPU (or GPU algorithms were not asked for).
bool gpu_candidate_possible(const Context& context, Candidate& candidate);

// The candidates of each op family (conv_bench.cpp, layer_bench.cpp, train_bench.cpp, augment_bench.cpp).
std::vector<Candidate> conv2d_candidates(const OpCase& c, Context& context);
std::vector<Candidate> layer_candidates(const OpCase& c, Context& context);  // bn, relu, pools, linear
std::vector<Candidate> training_op_candidates(const OpCase& c, Context& context);  // loss, optimizers, augment
std::vector<Candidate> augment_candidates(const OpCase& c, Context& context);  // augment_bench.cpp

// The whole training step (gpu kernels with and without CUDA-graph replay, or the CPU backend) and the
// epoch estimate derived from each.
std::vector<Record> bench_train_step(const graph::Graph& graph, Context& context);

// --profile (profile_bench.cpp): whether the step variant of this train_step record is profiled: without
// --filter the default FP32 and TF32 GPU steps (cuda_graph, cuda_graph_tf32) and the CPU paths; with it each
// whose train_profile or infer_profile records it selects.
bool profiles_variant(const Record& step_record, const Context& context);
// Profiles the executor's training and inference steps (as the filter selects train_profile and infer_profile
// records) after warm-up steps; `step` numbers the training steps and moves on. Returns a record per part and
// direction and the sums (a failed record when a step throws) and appends the printed table to
// context.profile_tables, comparing with the step measured as usual (the train_step and infer_step records).
std::vector<Record> profile_step_variant(graph::Executor& executor, const Record& step_record,
                                         const std::optional<Record>& train_measured,
                                         const std::optional<Record>& infer_measured, int64_t& step,
                                         Context& context);

// The roofline records (also stored in context.gpu_roofline / cpu_roofline).
std::vector<Record> measure_gpu_roofline(Context& context);
std::vector<Record> measure_cpu_roofline(Context& context);

}  // namespace cudacnn::bench

namespace cudacnn::bench {

// Float inputs of an op: the check values on the host (copy 0) and rotated device copies (the others
// random), uploaded on first use.
class RotatedInputs {
  public:
    RotatedInputs() = default;
    explicit RotatedInputs(std::vector<std::vector<float>> host) : host_(std::move(host)) {}

    const std::vector<float>& host(size_t input) const { return host_[input]; }
    bool on_device() const { return !device_.empty(); }
    void upload_all(const Context& context, uint64_t seed);  // no-op once done
    int64_t slots() const { return slots_; }
    const float* get(int64_t call, size_t input) const {
        return device_[static_cast<size_t>(call % slots_)][input].data_as<const float>();
    }

  private:
    std::vector<std::vector<float>> host_;
    int64_t slots_ = 1;
    std::vector<std::vector<DeviceBuffer>> device_;  // [copy][input]
};

// A CPU-reference candidate: calls fn, the reference function, on the host check values.
Candidate cpu_candidate(const OpCase& c, const std::string& direction, std::function<void()> fn);

// One (output name, device pointer, expected values, tolerance) comparison after a check run.
Check compare_output(const char* output, const float* device, const std::vector<double>& expected,
                     double tolerance, const Context& context);

}  // namespace cudacnn::bench

namespace cudacnn::bench {

// A candidate that runs on the GPU (or the emulator), timed with CUDA events; skipped without a GPU.
Candidate gpu_candidate(const OpCase& c, const std::string& direction, const std::string& algorithm,
                        const Context& context, std::function<std::vector<Check>()> check,
                        std::function<void(int64_t call)> run);

}  // namespace cudacnn::bench
