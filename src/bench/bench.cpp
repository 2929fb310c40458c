// cudacnn-bench's run: the device and algorithms, the roofline, each op's candidates, the training step, the
// table and the result files.
#include "cudacnn/bench/bench.hpp"

#include <ostream>

#include <fmt/format.h>
#include <fmt/ostream.h>

#include "cudacnn/graph/model.hpp"
#include "cudacnn/train/cli.hpp"
#include "cudacnn/train/options.hpp"
#include "cudacnn/train/setup.hpp"
#include "measure.hpp"

namespace cudacnn::bench {
namespace {

// The GPU algorithms of this build, in the order they are measured.
std::vector<std::string> gpu_algorithms() {
    std::vector<std::string> names;
    if (!kEmulated) names = {"cudnn", "cudnn_tf32", "cublas", "cublas_tf32"};
    for (const char* name : {"direct", "im2col", "implicit", "winograd", "winograd4", "kernel"}) {
        names.emplace_back(name);
    }
    // The emulator's TF32 rows are as slow as its FP32 ones and add nothing to a timing there; ask by name.
    if (!kEmulated) {
        names.insert(names.end(), {"im2col_tf32", "implicit_tf32", "winograd_tf32", "winograd4_tf32", "kernel_tf32"});
    }
    return names;
}

void resolve_device(Context& context, std::ostream& out) {
    const GpuStatus status = gpu_status();
    const bool real_gpu = status.available && !kEmulated;
    std::vector<std::string> asked = context.options.algos;
    if (asked.empty()) asked = {real_gpu ? "gpu" : "cpu"};
    for (const std::string& name : asked) {
        if (name == "gpu") {
            for (const std::string& g : gpu_algorithms()) context.algos.insert(g);
        } else {
            context.algos.insert(name);
        }
    }
    const bool wants_gpu = std::any_of(context.algos.begin(), context.algos.end(), [](const std::string& a) { return a != "cpu" && a != "cpu_ref"; });
    context.gpu = wants_gpu && status.available;
    context.gpu_device = kEmulated ? "emulated" : "gpu";
    if (!status.available) {
        context.no_gpu_reason = fmt::format("GPU timings need a GPU ({})", status.description);
    } else if (kEmulated) {
        context.no_gpu_reason = "GPU timings need a GPU: this emu build has only the CPU emulator";
    } else if (!wants_gpu) {
        context.no_gpu_reason = "GPU algorithms were not asked for (--algos)";
    }
    if (context.gpu) {
        fmt::print(out, "device: {}\n", status.description);
    } else if (!status.available) {
        fmt::print(out, "device: cpu; no GPU ({}): timing the CPU path, GPU timings need a GPU\n", status.description);
    } else if (kEmulated) {
        fmt::print(out, "device: cpu (this emu build's kernels run on the CPU emulator with --algos gpu, slowly)\n");
    } else {
        fmt::print(out, "device: cpu (GPU algorithms not asked for; {} is there)\n", status.description);
    }
    if (context.gpu && kEmulated)
        fmt::print(out, "note: the GPU algorithms run on the CPU emulator: correct, but a thousand times slower than a GPU\n");
    if (!context.gpu) return;
    context.stream = std::make_unique<Stream>();
    cudaDeviceProp prop{};
    int device = 0;
    if (cudaGetDevice(&device) == cudaSuccess && cudaGetDeviceProperties(&prop, device) == cudaSuccess) {
        context.l2_bytes = prop.l2CacheSize;
        // Rotated inputs may take up to a quarter of the card's memory.
        if (prop.totalGlobalMem > 0) context.max_rotation_bytes = static_cast<int64_t>(prop.totalGlobalMem / 4);
    }
    cudaGetLastError();
}

std::vector<Candidate> candidates_for(const OpCase& c, Context& context) {
    if (c.op == "conv2d") return conv2d_candidates(c, context);
    if (c.op == "cross_entropy" || c.op == "adam" || c.op == "adamw" || c.op == "sgd" || c.op == "augment")
        return training_op_candidates(c, context);
    return layer_candidates(c, context);
}

void emit(const Record& r, Report& report, std::ostream& out) {
    out << table_row(r) << std::flush;
    report.records.push_back(r);
}

}  // namespace

Report run_bench(const BenchOptions& options, std::ostream& out) {
    Context context;
    context.options = options;
    if (!options.filter.empty()) context.filter.emplace(options.filter);
    resolve_device(context, out);

    Report report;
    report.model = options.shape.empty() ? options.model : "";
    report.batch_size = options.shape.empty() ? options.batch_size : 0;
    report.warmup = options.warmup;
    report.repeats = options.repeats;

    // Load the model before the roofline, so that a bad --model fails at once.
    std::optional<graph::Graph> model;
    std::vector<OpCase> cases;
    if (options.shape.empty()) {
        model = graph::build_graph(train::resolve_model(options.model));
        if (!options.profile) {  // --profile: the steps alone, node by node
            cases = cases_from_graph(*model, options.batch_size, options.optimizer);
            for (OpCase& c : augment_cases()) cases.push_back(std::move(c));
        }
    } else {
        cases.push_back(parse_shape(options.shape));
    }
    report.device = context.gpu ? gpu_status().description : "cpu";
    fmt::print(out, "model: {}, batch {}; algorithms: {}; warm-up {}, repeats {} (CPU and emulator: at most 1 and 3)\n\n",
               options.shape.empty() ? options.model : "--shape " + options.shape, options.batch_size,
               fmt::join(context.algos, ","), options.warmup, options.repeats);

    out << table_header();
    if (context.gpu && !options.profile)
        for (const Record& r : measure_gpu_roofline(context)) emit(r, report, out);
    if (context.wants("cpu") && !options.profile)
        for (const Record& r : measure_cpu_roofline(context)) emit(r, report, out);

    for (const OpCase& c : cases) {
        std::vector<Record> records;
        for (Candidate& cand : candidates_for(c, context)) {
            if (!context.selected(cand.record)) continue;
            records.push_back(measure(cand, context));
        }
        add_vendor_ratios(records);
        for (const Record& r : records) emit(r, report, out);
    }
    if (model && options.step) {
        for (const Record& r : bench_train_step(*model, context)) {
            if (r.op == "train_profile" || r.op == "infer_profile") {
                report.records.push_back(r);  // printed below, as a table per step variant
                if (r.status != Status::ok) out << table_row(r);
            } else {
                emit(r, report, out);
            }
        }
    }
    if (!context.profile_tables.empty()) out << "\n" << context.profile_tables;

    int64_t bad = 0, ok = 0;
    for (const Record& r : report.records) {
        bad += r.status == Status::wrong || r.status == Status::failed;
        ok += r.status == Status::ok;
    }
    fmt::print(out, "\n{} measured, {} wrong or failed, {} unsupported or skipped\n", ok, bad,
               static_cast<int64_t>(report.records.size()) - ok - bad);
    if (!context.no_gpu_reason.empty()) fmt::print(out, "{}\n", context.no_gpu_reason);
    if (!options.json_path.empty()) write_json(options.json_path, report);
    if (!options.csv_path.empty()) write_csv(options.csv_path, report);
    return report;
}

int bench_main(const std::vector<std::string>& args, std::ostream& out, std::ostream& err) {
    ParsedBenchArgs parsed;
    const auto run = [&] {
        const Report report = run_bench(parsed.options, out);
        for (const Record& r : report.records) {
            if (r.status == Status::wrong || r.status == Status::failed) {
                err << "cudacnn-bench: some implementations were wrong or failed (status column); see above\n";
                return 1;
            }
        }
        return 0;
    };
    return train::program_main(
        "cudacnn-bench", [&] { return !(parsed = parse_bench_args(args)).help; }, bench_usage, run, out, err);
}

}  // namespace cudacnn::bench
