// cudacnn-bench's results: one Record per measured (op, shape, direction, algorithm), the single schema that
// the printed table, --json, --csv and tools/bench/pytorch_bench.py share (README, "cudacnn-bench").
#pragma once

#include <cstdint>
#include <iosfwd>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json_fwd.hpp>

namespace cudacnn::bench {

// The "schema" value of a results file; bumped when a field changes meaning.
inline constexpr const char* kSchema = "cudacnn-bench/1";

enum class Status {
    ok,           // checked against the CPU reference (or it is the reference) and timed
    wrong,        // its output disagreed with the CPU reference: never timed
    unsupported,  // this algorithm cannot compute this shape in this build (note says why)
    failed,       // an error while running it (note holds the message)
    skipped,      // not measured here: needs a GPU, or not available yet (note says which)
};

const char* status_name(Status status);                     // "ok", "wrong", …
std::optional<Status> status_from_name(const std::string& name);

struct Record {
    std::string op;         // conv2d, batch_norm2d, relu, max_pool2d, avg_pool2d, linear, cross_entropy,
                            // adam, adamw, sgd, augment, train_step, epoch, roofline
    std::string shape;      // the op's parameters as --shape takes them: "N=128,C=3,H=32,W=32,OC=32,K=3,P=1"
    std::string direction;  // forward, backward_data, backward_filter, backward, step; copy / sgemm (roofline)
    std::string algorithm;  // cudnn, direct, im2col, implicit, winograd, kernel, cublas, cpu, cuda_graph, fused,
                            // cpu_fused (augment), ...; torch_* (PyTorch)
    std::string device;     // gpu, emulated (the CPU emulator of the emu flavour) or cpu
    Status status = Status::ok;
    std::string note;  // the reason when status is not ok; otherwise e.g. the algorithm cuDNN chose

    int64_t repeats = 0;              // timed calls that the statistics summarize
    std::optional<double> median_us;  // per call
    std::optional<double> min_us, max_us;
    std::optional<double> spread_percent;  // interquartile range / median · 100

    std::optional<double> flops;  // per call (compute-bound ops)
    std::optional<double> bytes;  // per call: the least memory traffic of the kernels' passes (memory-bound ops)
    std::optional<double> gflops, gbps;
    std::optional<double> peak_percent;     // of this device's measured SGEMM rate or copy bandwidth (roofline)
    std::optional<double> ratio_to_vendor;  // median / cuDNN's (conv2d) or cuBLAS's (linear) median

    std::optional<double> max_error;  // max |out − ref| / max |ref| over the worst output (augment: max |out − ref|)
    std::optional<double> tolerance;  // what that output was allowed

    std::optional<double> images_per_s;  // train_step, augment
    std::optional<double> epoch_s;       // epoch: 50,000 CIFAR-10 training images at this batch size
};

// What the whole run measured: the device line, the settings and every record in the order measured.
struct Report {
    std::string tool = "cudacnn-bench";
    std::string device;  // e.g. "NVIDIA H100 80GB HBM3, sm_90, …" or "cpu (no GPU: …)"
    std::string model;
    int64_t batch_size = 0;
    int64_t warmup = 0, repeats = 0;
    std::vector<Record> records;
};

// The record's field names in the CSV column order (also the JSON keys of a record).
const std::vector<std::string>& record_fields();

nlohmann::json to_json(const Record& record);
// Throws Error naming the field for a missing key of a string field, a bad status or a wrong type.
Record record_from_json(const nlohmann::json& json);
nlohmann::json to_json(const Report& report);
Report report_from_json(const nlohmann::json& json);

// RFC 4180: a header line of record_fields(), then one line per record; empty cells for absent numbers;
// cells with a comma, quote or newline are quoted.
std::string csv_header();
std::string csv_row(const Record& record);

// Writes the file whole (a temporary beside it, then renamed); throws Error naming the path.
void write_json(const std::string& path, const Report& report);
void write_csv(const std::string& path, const Report& report);

// The printed table: a header and one aligned line per record (rows may be printed as they are measured).
std::string table_header();
std::string table_row(const Record& record);

}  // namespace cudacnn::bench
