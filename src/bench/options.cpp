// cudacnn-bench's flags: one table (train/cli.hpp's parser, did-you-mean and --help listing, as cudacnn-eval
// and -viz), the checks that need several flags, and --help.
#include "cudacnn/bench/options.hpp"

#include <algorithm>
#include <regex>

#include <fmt/format.h>

#include "cudacnn/bench/cases.hpp"
#include "cudacnn/train/cli.hpp"

namespace cudacnn::bench {
namespace {

using train::FlagSpec;
using train::FlagValue;
using train::UsageError;

const std::vector<FlagSpec>& flag_table() {
    static const std::vector<FlagSpec> table = {
        {"model", 0, "NAME|FILE.json",
         "the model whose layers and step to time (default cifar_cnn; also small_cnn, vgg16, vgg16_bn, resnet18, "
         "resnet50)"},
        {"batch-size", 'b', "N", "images per batch (default 128; 8 with --quick)"},
        {"shape", 0, "OP:K=V,...", "time this one op instead (its own N); the ops and keys are below"},
        {"algos", 0, "LIST", "implementations to time, comma-separated (below); default gpu with a GPU, else cpu"},
        {"filter", 0, "REGEX", "only what matches \"op direction algorithm shape\", e.g. 'conv2d.*backward'"},
        {"warmup", 0, "N", "untimed calls first (default 5; the CPU and the emulator take at most 1)"},
        {"repeats", 0, "N", "timed calls for the median and spread (default 20; CPU and emulator at most 3)"},
        {"steps", 0, "N", "training steps per timed sample of the step (default 10)"},
        {"optimizer", 0, "NAME", "adam (default), adamw or sgd: the optimizer case and the step's optimizer"},
        {"no-step", 0, nullptr, "skip the training step and the epoch estimate"},
        {"profile", 0, nullptr,
         "time the steps node by node instead of the ops (forward, backward, loss, optimizer; below)"},
        {"quick", 0, nullptr, "a smoke pass: warmup 1, repeats 2, steps 1, batch 8 (unless given)"},
        {"json", 0, "FILE", "write the records as JSON (README, \"cudacnn-bench\")"},
        {"csv", 0, "FILE", "write the records as CSV, the same fields"},
        {"seed", 0, "N", "seed of the random inputs (default 0)"},
        {"threads", 0, "N", "threads of the fast CPU path's steps (default 0: one per core)"},
        {"cudnn-workspace-mib", 0, "N|auto",
         "the most workspace in MiB one cuDNN convolution algorithm may use (default auto: an eighth of the GPU's "
         "free memory, at least 256)"},
    };
    return table;
}

void set_algos(BenchOptions& o, const FlagValue& v) {
    o.algos.clear();
    std::string name;
    for (size_t i = 0; i <= v.text.size(); ++i) {
        if (i < v.text.size() && v.text[i] != ',') {
            name += v.text[i];
            continue;
        }
        const auto& known = algorithm_names();
        if (name != "gpu" && std::find(known.begin(), known.end(), name) == known.end())
            v.fail(fmt::format("unknown algorithm '{}'; use a comma-separated list of {} or gpu", name,
                               fmt::join(known, ", ")));
        o.algos.push_back(name);
        name.clear();
    }
}

}  // namespace

const std::vector<std::string>& algorithm_names() {
    static const std::vector<std::string> names = {"cudnn",       "direct",        "im2col",      "cublas",
                                                   "kernel",      "cpu",           "cpu_ref",     "implicit",
                                                   "winograd",    "cudnn_tf32",    "im2col_tf32", "cublas_tf32",
                                                   "kernel_tf32", "winograd_tf32", "implicit_tf32",
                                                   "winograd4",   "winograd4_tf32"};
    return names;
}

ParsedBenchArgs parse_bench_args(const std::vector<std::string>& args) {
    const train::CommandLine line = train::parse_command_line(args, flag_table(), "cudacnn-bench", false);
    ParsedBenchArgs parsed;
    if (line.help) {
        parsed.help = true;
        return parsed;
    }
    BenchOptions& o = parsed.options;
    o.quick = line.has("--quick");
    o.step = !line.has("--no-step");
    o.profile = line.has("--profile");
    if (o.quick) {
        o.warmup = 1;
        o.repeats = 2;
        o.steps = 1;
        o.batch_size = 8;
    }
    if (const FlagValue* v = line.last("--model")) o.model = v->path();
    if (const FlagValue* v = line.last("--batch-size")) o.batch_size = v->integer(1);
    if (const FlagValue* v = line.last("--shape")) {
        parse_shape(v->text);  // complains now, not after the roofline
        o.shape = v->text;
    }
    if (const FlagValue* v = line.last("--algos")) set_algos(o, *v);
    if (const FlagValue* v = line.last("--filter")) {
        // std::regex compiles recursively: thousands of nested groups would overflow the stack.
        constexpr size_t kMaxFilterLength = 256;
        if (v->text.size() > kMaxFilterLength)
            v->fail(fmt::format("is {} characters long; a filter has at most {}", v->text.size(), kMaxFilterLength));
        try {
            const std::regex check(v->text);
        } catch (const std::regex_error& e) {
            v->fail(fmt::format("not a regular expression ({})", e.what()));
        }
        o.filter = v->text;
    }
    if (const FlagValue* v = line.last("--warmup")) o.warmup = v->integer(0);
    if (const FlagValue* v = line.last("--repeats")) o.repeats = v->integer(1);
    if (const FlagValue* v = line.last("--steps")) o.steps = v->integer(1);
    if (const FlagValue* v = line.last("--optimizer")) {
        if (v->text != "adam" && v->text != "adamw" && v->text != "sgd") v->fail("use adam, adamw or sgd");
        o.optimizer = v->text;
    }
    if (const FlagValue* v = line.last("--json")) o.json_path = v->path();
    if (const FlagValue* v = line.last("--csv")) o.csv_path = v->path();
    if (const FlagValue* v = line.last("--seed")) o.seed = static_cast<uint64_t>(v->integer(0));
    if (const FlagValue* v = line.last("--threads")) {
        if (v->integer(0) > 4096) v->fail("must be at most 4096 (0: one per core)");
        o.threads = static_cast<int>(v->integer(0));
    }
    if (const FlagValue* v = line.last("--cudnn-workspace-mib")) {
        if (v->text == "auto") {
            o.cudnn_workspace_mib = -1;
        } else {
            if (v->integer(0) > (int64_t{1} << 20)) v->fail("must be at most 1048576 (1 TiB), or auto");
            o.cudnn_workspace_mib = v->integer(0);
        }
    }
    if (!o.shape.empty() && (line.has("--batch-size") || line.has("--model")))
        throw UsageError("--shape names one op with its own N; it does not take --model or --batch-size");
    if (o.profile && (!o.shape.empty() || !o.step))
        throw UsageError("--profile times a model's steps node by node; it takes neither --shape nor --no-step");
    return parsed;
}

std::string bench_usage() {
    std::string text =
        "usage: cudacnn-bench [--model NAME|FILE.json] [-b 128] [--shape OP:KEY=VALUE,...]\n"
        "                     [--algos LIST] [--filter REGEX] [--warmup 5] [--repeats 20] [--steps 10]\n"
        "                     [--optimizer adam|adamw|sgd] [--no-step] [--profile] [--quick] [--json FILE]\n"
        "                     [--csv FILE]\n"
        "\n"
        "Times every layer shape of a model (forward, backward-data, backward-filter), the loss, the fused\n"
        "optimizer, the augmentation, a whole training step and an epoch estimate, for each implementation.\n"
        "Each implementation's output is first checked against the CPU reference; a wrong one is reported as\n"
        "wrong and never timed. GPU timings use CUDA events after the warm-up, rotating through enough input\n"
        "copies that the L2 cache does not flatter; percentages refer to this device's roofline measured at\n"
        "the start (device copy bandwidth, SGEMM rate). README, \"cudacnn-bench\", describes every column.\n"
        "\n";
    text += train::flags_help(flag_table());
    text +=
        "\n--algos: cudnn, direct, im2col, implicit, winograd, winograd4 (conv2d), cublas (linear), kernel (the\n"
        "other ops' kernels; augment's rows kernel and fused), cpu (the reference op by op; augment's rows cpu and\n"
        "cpu_fused; the training and inference steps on the fast CPU path, --threads), cpu_ref (the steps on the\n"
        "reference ops: slow), gpu (all but the CPU ones). In the emu flavour gpu runs the emulated kernels:\n"
        "correct but slow, so use a small -b. tools/bench/cpu-vs-pytorch.sh times the fast CPU path's steps\n"
        "beside PyTorch's.\n"
        "cudnn_tf32, im2col_tf32, implicit_tf32, winograd_tf32, winograd4_tf32 (conv2d), cublas_tf32 and\n"
        "kernel_tf32 (linear) are the same with --precision tf32: inputs rounded to TF32 on tensor cores,\n"
        "checked with a TF32 tolerance.\n"
        "\n--profile: the training and inference steps (no per-op rows), and for cuda_graph, cuda_graph_tf32, cpu\n"
        "and cpu_ref (with --filter: every step variant it selects) each node's forward and backward, the loss,\n"
        "the optimizer step and the checks timed one by one (CUDA events; one launch at a time, no CUDA graph;\n"
        "medians of --repeats steps), with the algorithm chosen, its share and the sum beside the whole step.\n"
        "Records train_profile and infer_profile.\n"
        "\n--shape OP:KEY=VALUE,... (K, S, P, D set both KH/KW, SH/SW, PH/PW, DH/DW):\n";
    for (const std::string& form : shape_forms()) text += "  " + form + "\n";
    text += "\nExit codes: 0 done, 1 an error or an implementation that was wrong or failed (after the files are\n"
            "written), 2 a bad command line.\n";
    return text;
}

}  // namespace cudacnn::bench
