// cudacnn-train's command line: one table of flags drives parsing, --help, describe() and the JSON form.
#include "cudacnn/train/options.hpp"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <fstream>
#include <initializer_list>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "cudacnn/data/augment.hpp"
#include "cudacnn/error_text.hpp"
#include "cudacnn/train/cli.hpp"  // edit_distance, looks_like_flag

namespace cudacnn::train {
namespace {

using nlohmann::json;

template <class... Args>
[[noreturn]] void usage_fail(fmt::format_string<Args...> format, Args&&... args) {
    throw UsageError(fmt::format(format, std::forward<Args>(args)...));
}

// "a, b or c", for the lists of accepted values.
std::string or_list(const std::vector<std::string>& names) {
    std::string out;
    for (size_t i = 0; i < names.size(); ++i) {
        if (i > 0) out += i + 1 == names.size() ? " or " : ", ";
        out += names[i];
    }
    return out;
}

std::vector<std::string> split(const std::string& text, char separator) {
    std::vector<std::string> parts(1);
    for (const char c : text) {
        if (c == separator) {
            parts.emplace_back();
        } else {
            parts.back() += c;
        }
    }
    return parts;
}

// A value being parsed and what it belongs to ("--epochs"), which every complaint starts with.
struct Arg {
    std::string name;
    std::string text;

    [[noreturn]] void fail(const std::string& problem) const { usage_fail("{} {}: {}", name, text, problem); }
    void require(bool ok, const char* problem) const {
        if (!ok) fail(problem);
    }

    // from_chars: no leading whitespace or '+', and the whole text must be used (no trailing garbage).
    template <class T>
    T number(const char* kind) const {
        T value{};
        const char* end = text.data() + text.size();
        const auto [stop, error] = std::from_chars(text.data(), end, value);
        if (error == std::errc::result_out_of_range) fail("out of range");
        if (error != std::errc() || stop != end) fail(fmt::format("not {}", kind));
        return value;
    }
    int64_t integer(int64_t min) const {
        const auto value = number<int64_t>("a whole number");
        if (value < min) fail(fmt::format("must be at least {}", min));
        return value;
    }
    double real() const {
        const auto value = number<double>("a number");
        require(std::isfinite(value), "must be a finite number");
        return value;
    }
    std::string path() const {
        require(!text.empty(), "needs a non-empty path");
        return text;
    }
    size_t one_of(const std::vector<std::string>& accepted) const {
        const auto found = std::find(accepted.begin(), accepted.end(), text);
        if (found == accepted.end()) fail("use " + or_list(accepted));
        return static_cast<size_t>(found - accepted.begin());
    }
    template <class E>
    E pick(std::initializer_list<E> values, const char* (*name_of)(E)) const {
        std::vector<std::string> names;
        for (const E value : values) names.emplace_back(name_of(value));
        return values.begin()[one_of(names)];
    }
};

// ---- --lr-schedule ----

using cpu::LrScheduleKind;
using FieldSetter = void (*)(cpu::LrSchedule&, const Arg&);

// One kind of schedule: its syntax, its fields in order, and their text (the inverse of the setters).
struct ScheduleForm {
    LrScheduleKind kind;
    const char* usage;
    const char* meaning;  // for --help
    size_t required;
    std::vector<const char*> field_names;
    std::vector<FieldSetter> set;
    std::vector<std::string> (*fields)(const cpu::LrSchedule&);
};

// The shortest text that reads back as the same double.
std::string number_text(double value) {
    return fmt::format("{}", value);
}

const char* anneal_name(cpu::AnnealStrategy strategy) {
    return strategy == cpu::AnnealStrategy::cos ? "cos" : "linear";
}

const std::vector<ScheduleForm>& schedule_forms() {
    static const std::vector<ScheduleForm> forms = {
        {LrScheduleKind::none,
         "none",
         "the lr stays --lr",
         0,
         {},
         {},
         [](const cpu::LrSchedule&) { return std::vector<std::string>{}; }},
        {LrScheduleKind::constant,
         "constant[:FACTOR[:ITERS]]",
         "lr·FACTOR for the first ITERS epochs, then lr (ConstantLR: 1/3, 5)",
         0,
         {"FACTOR", "ITERS"},
         {[](cpu::LrSchedule& s, const Arg& a) { s.constant.factor = a.real(); },
          [](cpu::LrSchedule& s, const Arg& a) { s.constant.total_iters = a.integer(1); }},
         [](const cpu::LrSchedule& s) {
             return std::vector<std::string>{number_text(s.constant.factor),
                                             number_text(s.constant.total_iters)};
         }},
        {LrScheduleKind::step,
         "step:STEP_SIZE[:GAMMA]",
         "lr·GAMMA every STEP_SIZE epochs (StepLR; GAMMA 0.1)",
         1,
         {"STEP_SIZE", "GAMMA"},
         {[](cpu::LrSchedule& s, const Arg& a) { s.step.step_size = a.integer(1); },
          [](cpu::LrSchedule& s, const Arg& a) { s.step.gamma = a.real(); }},
         [](const cpu::LrSchedule& s) {
             return std::vector<std::string>{number_text(s.step.step_size), number_text(s.step.gamma)};
         }},
        {LrScheduleKind::multistep,
         "multistep:E1,E2,...[:GAMMA]",
         "lr·GAMMA at each listed epoch (MultiStepLR; GAMMA 0.1)",
         1,
         {"MILESTONES", "GAMMA"},
         {[](cpu::LrSchedule& s, const Arg& a) {
              s.multistep.milestones.clear();
              for (const std::string& epoch : split(a.text, ','))
                  s.multistep.milestones.push_back(Arg{a.name, epoch}.integer(0));
          },
          [](cpu::LrSchedule& s, const Arg& a) { s.multistep.gamma = a.real(); }},
         [](const cpu::LrSchedule& s) {
             return std::vector<std::string>{fmt::format("{}", fmt::join(s.multistep.milestones, ",")),
                                             number_text(s.multistep.gamma)};
         }},
        {LrScheduleKind::cosine,
         "cosine[:T_MAX[:ETA_MIN]]",
         "cosine annealing to ETA_MIN over T_MAX epochs (CosineAnnealingLR; the run's epochs, 0)",
         0,
         {"T_MAX", "ETA_MIN"},
         {[](cpu::LrSchedule& s, const Arg& a) { s.cosine.t_max = a.integer(1); },
          [](cpu::LrSchedule& s, const Arg& a) { s.cosine.eta_min = a.real(); }},
         [](const cpu::LrSchedule& s) {
             return std::vector<std::string>{s.cosine.t_max == 0 ? "" : number_text(s.cosine.t_max),
                                             number_text(s.cosine.eta_min)};
         }},
        {LrScheduleKind::one_cycle,
         "one_cycle[:PCT_START[:cos|linear]]",
         "up to --lr and down over the run (OneCycleLR; PCT_START 0.3, cos)",
         0,
         {"PCT_START", "ANNEAL"},
         {[](cpu::LrSchedule& s, const Arg& a) { s.one_cycle.pct_start = a.real(); },
          [](cpu::LrSchedule& s, const Arg& a) {
              s.one_cycle.anneal_strategy =
                  a.pick({cpu::AnnealStrategy::cos, cpu::AnnealStrategy::linear}, anneal_name);
          }},
         [](const cpu::LrSchedule& s) {
             return std::vector<std::string>{number_text(s.one_cycle.pct_start),
                                             anneal_name(s.one_cycle.anneal_strategy)};
         }},
    };
    return forms;
}

const ScheduleForm& schedule_form(LrScheduleKind kind) {
    for (const ScheduleForm& form : schedule_forms())
        if (form.kind == kind) return form;
    CUDACNN_FAIL("lr schedule: unknown kind {}", static_cast<int>(kind));
}

// ---- the flags ----

// One flag. A switch (no value_name) sets a bool; its JSON key drops the "no-" of --no-augment.
struct Flag {
    const char* group;
    const char* name;  // without the leading "--"
    char short_name;   // 0: none
    const char* value_name;
    const char* help;
    void (*set)(TrainOptions&, const Arg&);
    json (*get)(const TrainOptions&);
    const char* json_key = nullptr;  // when the name's key is taken ("augment" is --no-augment's)

    bool is_switch() const { return value_name == nullptr; }
    std::string key() const {
        if (json_key != nullptr) return json_key;
        std::string key = name;
        if (is_switch() && key.rfind("no-", 0) == 0) key.erase(0, 3);
        std::replace(key.begin(), key.end(), '-', '_');
        return key;
    }
};

template <class T>
json optional_json(const std::optional<T>& value) {
    return value ? json(*value) : json(nullptr);
}

void set_metrics(TrainOptions& o, const Arg& a) {
    o.metrics_path = a.path();
    const auto ends_with = [&](const std::string& suffix) {
        return o.metrics_path.size() >= suffix.size() &&
               o.metrics_path.compare(o.metrics_path.size() - suffix.size(), suffix.size(), suffix) == 0;
    };
    if (ends_with(".csv")) {
        o.metrics_format = MetricsFormat::csv;
    } else if (ends_with(".jsonl") || ends_with(".json")) {
        o.metrics_format = MetricsFormat::jsonl;
    } else {
        a.fail("the extension picks the format: use FILE.csv, or FILE.jsonl (or .json) for JSON lines");
    }
}

// --augment: the spec's canonical text, from the text grammar or, for FILE.json, from the JSON form in the
// file.
void set_augment(TrainOptions& o, const Arg& a) {
    data::AugmentSpec spec;
    try {
        spec = data::read_augment_spec(a.text);
    } catch (const Error& e) {
        a.fail(without_location(e));
    }
    o.augment_spec = data::format_augment_spec(spec);
}

void set_synthetic_size(TrainOptions& o, const Arg& a) {
    const std::vector<std::string> sizes = split(a.text, ',');
    if (sizes.size() != 2) a.fail("give two image counts, TRAIN,TEST (e.g. 10000,2000)");
    o.synthetic_train_size = Arg{a.name, sizes[0]}.integer(1);
    o.synthetic_test_size = Arg{a.name, sizes[1]}.integer(1);
}

const std::vector<Flag>& flags() {
    static const std::vector<Flag> table = {
        {"Model and data", "model", 0, "NAME|FILE.json",
         "a built-in model (e.g. cifar_cnn) or a model spec file",
         [](TrainOptions& o, const Arg& a) { o.model = a.path(); },
         [](const TrainOptions& o) { return json(o.model); }},
        {"Model and data", "dataset", 0, "NAME",
         "cifar10, cifar100, imagefolder (your own images, see below) or synthetic (random images, no "
         "download)",
         [](TrainOptions& o, const Arg& a) {
             a.one_of({"cifar10", "cifar100", "imagefolder", "synthetic"});
             o.dataset = a.text;
         },
         [](const TrainOptions& o) { return json(o.dataset); }},
        {"Model and data", "data", 0, "DIR",
         "CIFAR's binary-version folder, or the image folder (needed for cifar10/cifar100/imagefolder)",
         [](TrainOptions& o, const Arg& a) { o.data_dir = a.path(); },
         [](const TrainOptions& o) { return json(o.data_dir); }},
        {"Model and data", "cifar100-labels", 0, "KIND",
         "cifar100's classes: fine (100) or coarse (the 20 superclasses) (default: fine)",
         [](TrainOptions& o, const Arg& a) {
             o.cifar100_labels = a.pick({data::Cifar100Labels::fine, data::Cifar100Labels::coarse},
                                        data::cifar100_labels_name);
         },
         // Only coarse is written, so that a checkpoint of a fine run reads the same with or without the
         // flag.
         [](const TrainOptions& o) {
             return o.cifar100_labels == data::Cifar100Labels::coarse ? json("coarse") : json(nullptr);
         }},
        {"Model and data", "synthetic-size", 0, "TRAIN,TEST", "image counts of the synthetic dataset",
         set_synthetic_size,
         [](const TrainOptions& o) {
             return json{o.synthetic_train_size, o.synthetic_test_size};
         }},
        {"Model and data", "limit-train", 0, "N", "use only the first N training images (default: all)",
         [](TrainOptions& o, const Arg& a) { o.limit_train = a.integer(1); },
         [](const TrainOptions& o) { return optional_json(o.limit_train); }},
        {"Model and data", "limit-test", 0, "N", "use only the first N test images (default: all)",
         [](TrainOptions& o, const Arg& a) { o.limit_test = a.integer(1); },
         [](const TrainOptions& o) { return optional_json(o.limit_test); }},
        {"Model and data", "no-augment", 0, nullptr,
         "train without augmentation (neither the default crop and flip nor --augment)",
         [](TrainOptions& o, const Arg&) { o.augment = false; },
         [](const TrainOptions& o) { return json(o.augment); }},
        {"Model and data", "augment", 0, "SPEC|FILE.json",
         "the training transform, e.g. crop:32:4,hflip,jitter:0.2 (see below) "
         "(default: crop:H:4,hflip for H×H images)",
         set_augment,
         // Unset (the default) is null, as in checkpoints written before the flag existed.
         [](const TrainOptions& o) { return o.augment_spec.empty() ? json(nullptr) : json(o.augment_spec); },
         "augment_spec"},
        {"Model and data", "no-shuffle", 0, nullptr, "keep the training images in file order",
         [](TrainOptions& o, const Arg&) { o.shuffle = false; },
         [](const TrainOptions& o) { return json(o.shuffle); }},

        {"Training", "epochs", 0, "N", "passes over the training set",
         // >= 1, or 0 with --evaluate: validate() checks it, knowing all the flags
         [](TrainOptions& o, const Arg& a) { o.epochs = a.number<int64_t>("a whole number"); },
         [](const TrainOptions& o) { return json(o.epochs); }},
        {"Training", "batch-size", 'b', "N", "images per step",
         [](TrainOptions& o, const Arg& a) { o.batch_size = a.integer(1); },
         [](const TrainOptions& o) { return json(o.batch_size); }},
        {"Training", "lr", 0, "LR", "learning rate (the peak for one_cycle)",
         [](TrainOptions& o, const Arg& a) {
             o.lr = a.real();
             a.require(o.lr > 0, "must be > 0 (e.g. 1e-3)");
         },
         [](const TrainOptions& o) { return json(o.lr); }},
        {"Training", "optimizer", 0, "NAME", "adam, adamw or sgd (PyTorch's)",
         [](TrainOptions& o, const Arg& a) {
             o.optimizer =
                 a.pick({OptimizerKind::adam, OptimizerKind::adamw, OptimizerKind::sgd}, optimizer_name);
         },
         [](const TrainOptions& o) { return json(optimizer_name(o.optimizer)); }},
        {"Training", "momentum", 0, "M", "SGD momentum in [0, 1) (sgd only)",
         [](TrainOptions& o, const Arg& a) {
             o.momentum = a.real();
             a.require(o.momentum >= 0 && o.momentum < 1, "must be in [0, 1) (e.g. 0.9)");
         },
         [](const TrainOptions& o) { return json(o.momentum); }},
        {"Training", "weight-decay", 0, "WD", "L2 penalty (decoupled for adamw) (default: 0; adamw: 0.01)",
         [](TrainOptions& o, const Arg& a) {
             o.weight_decay = a.real();
             a.require(*o.weight_decay >= 0, "must be >= 0");
         },
         [](const TrainOptions& o) { return optional_json(o.weight_decay); }},
        {"Training", "lr-schedule", 0, "SCHEDULE", "how the lr changes per epoch (see below)",
         [](TrainOptions& o, const Arg& a) { o.lr_schedule = parse_lr_schedule(a.text); },
         [](const TrainOptions& o) { return json(lr_schedule_text(o.lr_schedule)); }},
        {"Training", "label-smoothing", 0, "EPS", "cross-entropy label smoothing in [0, 1)",
         [](TrainOptions& o, const Arg& a) {
             o.label_smoothing = a.real();
             a.require(o.label_smoothing >= 0 && o.label_smoothing < 1, "must be in [0, 1) (e.g. 0.1)");
         },
         [](const TrainOptions& o) { return json(o.label_smoothing); }},
        {"Training", "no-dropout", 0, nullptr, "turn the model's dropout layers off",
         [](TrainOptions& o, const Arg&) { o.dropout = false; },
         [](const TrainOptions& o) { return json(o.dropout); }},
        {"Training", "seed", 0, "N", "seed of initialisation, shuffling, augmentation and dropout",
         [](TrainOptions& o, const Arg& a) { o.seed = a.number<uint64_t>("a whole number >= 0"); },
         [](const TrainOptions& o) { return json(o.seed); }},
        {"Training", "device", 0, "NAME",
         "auto (cuda when a GPU is there, else cpu), cuda, cpu (the fast CPU path) or cpu-ref (the reference ops)",
         [](TrainOptions& o, const Arg& a) {
             o.device = a.pick({DeviceChoice::auto_, DeviceChoice::cuda, DeviceChoice::cpu,
                                DeviceChoice::cpu_reference},
                               device_choice_name);
         },
         [](const TrainOptions& o) { return json(device_choice_name(o.device)); }},
        {"Training", "threads", 0, "N", "threads of the fast CPU path (default 0: one per core)",
         [](TrainOptions& o, const Arg& a) {
             const int64_t threads = a.integer(0);
             a.require(threads <= 4096, "must be at most 4096 (0: one per core)");
             o.threads = static_cast<int>(threads);
         },
         [](const TrainOptions& o) { return json(o.threads); }},
        {"Training", "conv-algo", 0, "NAME",
         "convolution algorithm: auto, cudnn, direct, im2col, implicit (implicit GEMM), winograd (F(2x2, 3x3)), "
         "winograd4 (F(4x4, 3x3)), own (the fastest hand-written one per layer) or fastest (each layer's passes "
         "timed on every algorithm at the start, the fastest kept)",
         [](TrainOptions& o, const Arg& a) {
             a.one_of({"auto", "cudnn", "direct", "im2col", "implicit", "winograd", "winograd4", "own", "fastest"});
             o.conv_algo = a.text;
         },
         [](const TrainOptions& o) { return json(o.conv_algo); }},
        {"Training", "precision", 0, "NAME",
         "on the GPU, the arithmetic of convolutions and matrix products: fp32 (FP32 multiply-adds), tf32 (inputs "
         "rounded to TF32 on tensor cores, as PyTorch's allow_tf32; storage and sums stay FP32) or bf16 (activations "
         "stored in bfloat16 and weights read as bfloat16 copies of the FP32 masters; sums, batch-norm statistics, "
         "loss and optimizer in FP32, as PyTorch's autocast to bfloat16; conv-algo auto, cudnn, implicit or own)",
         [](TrainOptions& o, const Arg& a) {
             a.one_of({"fp32", "tf32", "bf16"});
             o.precision = a.text;
         },
         [](const TrainOptions& o) { return json(o.precision); }},
        {"Training", "memory-format", 0, "NAME",
         "on the GPU, where activations lie: nchw (PyTorch's default) or nhwc (channels_last, which cuDNN's "
         "tensor-core kernels prefer; conv-algo auto, cudnn, implicit or own; the checkpoints are the same)",
         [](TrainOptions& o, const Arg& a) {
             a.one_of({"nchw", "nhwc"});
             o.memory_format = a.text;
         },
         [](const TrainOptions& o) { return json(o.memory_format); }},
        {"Training", "gemm", 0, "NAME",
         "on the GPU, the matrix products of linear layers and im2col: auto (cuBLAS where built), own or cublas",
         [](TrainOptions& o, const Arg& a) {
             a.one_of({"auto", "own", "cublas"});
             o.gemm = a.text;
         },
         [](const TrainOptions& o) { return json(o.gemm); }},
        {"Training", "cudnn-benchmark", 0, nullptr,
         "time every cuDNN convolution algorithm once per layer shape and use the fastest deterministic one "
         "(a few seconds at start-up; PyTorch's cudnn.benchmark)",
         [](TrainOptions& o, const Arg&) { o.cudnn_benchmark = true; },
         [](const TrainOptions& o) { return json(o.cudnn_benchmark); }},
        {"Training", "cudnn-workspace-mib", 0, "N|auto",
         "the most workspace in MiB that one cuDNN convolution algorithm may use; faster algorithms that need "
         "more are passed over, which matters for large images at large batches (default auto: an eighth of the "
         "GPU's free memory, at least 256)",
         [](TrainOptions& o, const Arg& a) {
             if (a.text == "auto") {
                 o.cudnn_workspace_mib = -1;
                 return;
             }
             const int64_t mib = a.integer(0);
             a.require(mib <= (int64_t{1} << 20), "must be at most 1048576 (1 TiB), or auto");
             o.cudnn_workspace_mib = mib;
         },
         [](const TrainOptions& o) {
             return o.cudnn_workspace_mib < 0 ? json("auto") : json(o.cudnn_workspace_mib);
         }},
        {"Training", "no-cuda-graph", 0, nullptr,
         "on the GPU, launch every kernel of a step instead of replaying the step as a CUDA graph",
         [](TrainOptions& o, const Arg&) { o.cuda_graph = false; },
         [](const TrainOptions& o) { return json(o.cuda_graph); }},
        {"Training", "detect-anomaly", 0, nullptr,
         "check the input, every layer's output and gradient, the loss and the parameters after each is written, "
         "and stop at the first NaN or Inf, naming the step, the layer and the index; slow (a read-back per "
         "layer, no CUDA graphs): for finding where a NaN loss starts",
         [](TrainOptions& o, const Arg&) { o.detect_anomaly = true; },
         [](const TrainOptions& o) { return json(o.detect_anomaly); }},

        {"Runs and checkpoints", "output-dir", 0, "DIR", "where checkpoints and logs go",
         [](TrainOptions& o, const Arg& a) { o.output_dir = a.path(); },
         [](const TrainOptions& o) { return json(o.output_dir); }},
        {"Runs and checkpoints", "save-every", 0, "N", "checkpoint every N epochs; 0: only the final one",
         [](TrainOptions& o, const Arg& a) { o.save_every = a.integer(0); },
         [](const TrainOptions& o) { return json(o.save_every); }},
        {"Runs and checkpoints", "resume", 0, "PATH", "continue the run saved in this checkpoint",
         [](TrainOptions& o, const Arg& a) { o.resume = a.path(); },
         [](const TrainOptions& o) { return json(o.resume); }},
        {"Runs and checkpoints", "init-weights", 0, "FILE.safetensors",
         "start from these weights (a PyTorch state_dict)",
         [](TrainOptions& o, const Arg& a) { o.init_weights = a.path(); },
         [](const TrainOptions& o) { return json(o.init_weights); }},
        {"Runs and checkpoints", "export", 0, "FILE.safetensors",
         "write the final weights as a PyTorch state_dict",
         [](TrainOptions& o, const Arg& a) { o.export_path = a.path(); },
         [](const TrainOptions& o) { return json(o.export_path); }},
        {"Runs and checkpoints", "export-dtype", 0, "TYPE", "the floats of --export: f32, f16 or bf16",
         [](TrainOptions& o, const Arg& a) {
             a.one_of({"f32", "f16", "bf16"});
             o.export_dtype = a.text;
         },
         [](const TrainOptions& o) { return json(o.export_dtype); }},
        {"Runs and checkpoints", "evaluate", 0, nullptr,
         "only evaluate on the test set (with --resume or --init-weights)",
         [](TrainOptions& o, const Arg&) { o.evaluate_only = true; },
         [](const TrainOptions& o) { return json(o.evaluate_only); }},

        {"Data-parallel", "distributed", 0, "MODE",
         "auto (when a launcher started several processes: mpirun, or torchrun's RANK and WORLD_SIZE), on or off; "
         "each process trains a replica on its shard of every batch and the gradients are averaged: MPI on the "
         "CPU, NCCL on the GPU",
         [](TrainOptions& o, const Arg& a) {
             a.one_of({"auto", "on", "off"});
             o.distributed = a.text;
         },
         [](const TrainOptions& o) { return json(o.distributed); }},
        {"Data-parallel", "sync-bn", 0, nullptr,
         "batch norms use the statistics of all processes' batches together (SyncBatchNorm), not "
         "each process's own",
         [](TrainOptions& o, const Arg&) { o.sync_bn = true; },
         [](const TrainOptions& o) { return json(o.sync_bn); }},
        {"Data-parallel", "dist-id-file", 0, "PATH",
         "GPU processes not started by mpirun pass NCCL's id through this file, on a filesystem every process "
         "reads (default: /tmp/cudacnn-nccl-id-MASTER_ADDR-MASTER_PORT, one machine)",
         [](TrainOptions& o, const Arg& a) { o.dist_id_file = a.path(); },
         [](const TrainOptions& o) { return json(o.dist_id_file); }},

        {"Logging", "metrics", 0, "FILE", "per-epoch metrics: FILE.csv, or FILE.jsonl for JSON lines",
         set_metrics, [](const TrainOptions& o) { return json(o.metrics_path); }},
        {"Logging", "log-every", 0, "N",
         "log every N steps; 0: a progress bar on a terminal, else about every 10%",
         [](TrainOptions& o, const Arg& a) { o.log_every = a.integer(0); },
         [](const TrainOptions& o) { return json(o.log_every); }},
    };
    return table;
}

const Flag* find_long(const std::string& name) {
    for (const Flag& flag : flags())
        if (name == flag.name) return &flag;
    return nullptr;
}

const Flag* find_short(char name) {
    for (const Flag& flag : flags())
        if (flag.short_name != 0 && flag.short_name == name) return &flag;
    return nullptr;
}

[[noreturn]] void unknown_flag(const std::string& token) {
    const std::string written = token.substr(0, token.find('='));
    const std::string bare = written.substr(std::min(written.find_first_not_of('-'), written.size()));
    const Flag* nearest = nullptr;
    size_t best = 0;
    for (const Flag& flag : flags()) {
        const size_t distance = edit_distance(bare, flag.name);
        if (nearest == nullptr || distance < best) nearest = &flag, best = distance;
    }
    // Only a near miss is worth suggesting: a third of the letters wrong at most (2 for short names).
    if (!bare.empty() && best <= std::max<size_t>(2, bare.size() / 3))
        usage_fail("unknown flag '{}'; did you mean '--{}'? (cudacnn-train --help lists the flags)", written,
                   nearest->name);
    usage_fail("unknown flag '{}' (cudacnn-train --help lists the flags)", written);
}

// The checks that need more than one flag, or the whole run.
void validate(const TrainOptions& o) {
    if (o.epochs < (o.evaluate_only ? 0 : 1))
        usage_fail("--epochs {}: must be at least {}", o.epochs,
                   o.evaluate_only ? "0" : "1 (0 is accepted only with --evaluate)");
    if (o.dataset == "imagefolder" && o.data_dir.empty())
        usage_fail(
            "--dataset imagefolder needs --data DIR, a folder with one subfolder of PNG/JPEG images "
            "per class (DIR/<class>/<image>.png), or with train/ and test/ laid out so");
    if (o.cifar100_labels && o.dataset != "cifar100")
        usage_fail("--cifar100-labels {} goes with --dataset cifar100 only (this run's dataset is {})",
                   data::cifar100_labels_name(*o.cifar100_labels), o.dataset);
    if ((o.dataset == "cifar10" || o.dataset == "cifar100") && o.data_dir.empty()) {
        const bool ten = o.dataset == "cifar10";
        usage_fail(
            "--dataset {} needs --data DIR, the folder of the {} binary version ({}, unpacked from the "
            "download at https://www.cs.toronto.edu/~kriz/cifar.html)",
            o.dataset, ten ? "CIFAR-10" : "CIFAR-100", ten ? "cifar-10-batches-bin" : "cifar-100-binary");
    }
    if (!o.augment && !o.augment_spec.empty())
        usage_fail(
            "--augment {} and --no-augment both given: --no-augment trains without any augmentation; "
            "give one of them",
            o.augment_spec);
    // PyTorch's Adam and AdamW take no momentum argument either (beta1 plays that part).
    if (o.momentum != 0 && o.optimizer != OptimizerKind::sgd)
        usage_fail(
            "--momentum {}: only --optimizer sgd has a momentum, not {}; add --optimizer sgd or drop it",
            o.momentum, optimizer_name(o.optimizer));
    // Evaluating freshly initialized weights would print chance-level accuracy as if it were a result.
    if (o.evaluate_only && o.resume.empty() && o.init_weights.empty())
        usage_fail("--evaluate needs the weights to evaluate: add --resume CHECKPOINT or --init-weights "
                   "FILE.safetensors");
    if (!o.resume.empty() && !o.init_weights.empty())
        usage_fail(
            "--resume and --init-weights both given: --resume restores the weights with the rest of "
            "the run; give one of them");
    // The reference functions check the values; the first and last epoch cover one-cycle's phases too.
    const int64_t total = std::max<int64_t>(o.epochs, 1);
    try {
        lr_at_epoch(o.lr_schedule, o.lr, 0, total);
        lr_at_epoch(o.lr_schedule, o.lr, total - 1, total);
    } catch (const Error& e) {
        usage_fail("--lr-schedule {}: {}", lr_schedule_text(o.lr_schedule), without_location(e));
    }
}

// The --augment paragraph of --help. The ops and their arguments are README's to list (and
// parse_augment_spec's error for an unknown op), so that this text cannot fall behind the spec code.
std::string augment_help() {
    return "\nAugmentation (--augment): torchvision-style ops applied in order to each training "
           "image, joined by\n"
           "',', with arguments after ':' (trailing ones may be left out), e.g.\n"
           "  --augment crop:32:4:reflect,hflip,jitter:0.4:0.4:0.4,erasing:0.25\n"
           "or FILE.json holding the same as a JSON array "
           "([{\"op\": \"crop\", \"size\": 32, \"padding\": 4}, ...]).\n"
           "README.md, section \"Data augmentation\", lists every op with its arguments "
           "(so does the error for an\n"
           "unknown op). The default is crop:H:4,hflip for H×H images (RandomCrop + RandomHorizontalFlip);\n"
           "checkpoints keep the spec's full text, also when it came from a file.\n";
}

std::string flag_title(const Flag& flag) {
    std::string title = flag.short_name != 0 ? fmt::format("-{}, --{}", flag.short_name, flag.name)
                                             : fmt::format("    --{}", flag.name);
    if (!flag.is_switch()) title += fmt::format(" {}", flag.value_name);
    return title;
}

// A setting as its flag takes it ("10000,2000" for [10000, 2000]), for --help, describe() and reading JSON.
std::string flag_text(const json& value) {
    if (value.is_string()) return value.get<std::string>();
    if (!value.is_array()) return value.dump();
    std::string text;
    for (const json& element : value) text += (text.empty() ? "" : ",") + flag_text(element);
    return text;
}

}  // namespace

const char* device_choice_name(DeviceChoice choice) {
    switch (choice) {
        case DeviceChoice::auto_:
            return "auto";
        case DeviceChoice::cuda:
            return "cuda";
        case DeviceChoice::cpu:
            return "cpu";
        case DeviceChoice::cpu_reference:
            return "cpu-ref";
    }
    return "unknown";
}

const char* optimizer_name(OptimizerKind kind) {
    switch (kind) {
        case OptimizerKind::adam:
            return "adam";
        case OptimizerKind::adamw:
            return "adamw";
        case OptimizerKind::sgd:
            return "sgd";
    }
    return "unknown";
}

const char* metrics_format_name(MetricsFormat format) {
    return format == MetricsFormat::csv ? "csv" : "jsonl";
}

LrSchedule parse_lr_schedule(const std::string& text) {
    const std::vector<std::string> parts = split(text, ':');
    std::vector<std::string> kinds;
    for (const ScheduleForm& form : schedule_forms()) kinds.emplace_back(cpu::lr_schedule_name(form.kind));
    const auto found = std::find(kinds.begin(), kinds.end(), parts[0]);
    if (found == kinds.end())
        usage_fail("--lr-schedule {}: use {} (--help shows their fields)", text, or_list(kinds));
    const ScheduleForm& form = schedule_forms()[static_cast<size_t>(found - kinds.begin())];
    const size_t given = parts.size() - 1;
    if (given < form.required || given > form.set.size())
        usage_fail("--lr-schedule {}: {} takes {}", text, parts[0], form.usage);
    LrSchedule schedule;
    schedule.spec.kind = form.kind;
    for (size_t i = 0; i < given; ++i) {
        if (parts[i + 1].empty() && i >= form.required)
            continue;  // an empty optional field keeps its default
        form.set[i](schedule.spec,
                    Arg{fmt::format("--lr-schedule {}: {}", text, form.field_names[i]), parts[i + 1]});
    }
    return schedule;
}

std::string lr_schedule_text(const LrSchedule& schedule) {
    const ScheduleForm& form = schedule_form(schedule.spec.kind);
    std::vector<std::string> fields = form.fields(schedule.spec);
    cpu::LrSchedule defaults;
    defaults.kind = form.kind;
    const std::vector<std::string> default_fields = form.fields(defaults);
    // Trailing fields at their defaults are left out: "cosine", not "cosine::0".
    while (fields.size() > form.required && fields.back() == default_fields[fields.size() - 1])
        fields.pop_back();
    std::string text = cpu::lr_schedule_name(form.kind);
    for (const std::string& field : fields) text += ":" + field;
    return text;
}

cpu::LrSchedule resolve_lr_schedule(const LrSchedule& schedule, double base_lr, int64_t total_epochs) {
    CUDACNN_CHECK(total_epochs >= 1, "lr schedule {}: total_epochs {} must be at least 1",
                  lr_schedule_text(schedule), total_epochs);
    cpu::LrSchedule resolved = schedule.spec;
    if (resolved.cosine.t_max == 0) resolved.cosine.t_max = total_epochs;
    if (resolved.one_cycle.total_steps == 0) resolved.one_cycle.total_steps = total_epochs;
    if (resolved.one_cycle.max_lr == 0) resolved.one_cycle.max_lr = base_lr;
    return resolved;
}

double lr_at_epoch(const LrSchedule& schedule, double base_lr, int64_t epoch, int64_t total_epochs) {
    return cpu::scheduled_lr(resolve_lr_schedule(schedule, base_lr, total_epochs), base_lr, epoch);
}

double effective_weight_decay(const TrainOptions& options) {
    if (options.weight_decay) return *options.weight_decay;
    return options.optimizer == OptimizerKind::adamw ? 0.01 : 0.0;  // PyTorch's defaults
}

ParsedArgs parse_train_args(const std::vector<std::string>& args) {
    ParsedArgs parsed;
    if (std::find(args.begin(), args.end(), "-h") != args.end() ||
        std::find(args.begin(), args.end(), "--help") != args.end()) {
        parsed.help = true;
        return parsed;
    }
    const Flag* previous_switch = nullptr;
    for (size_t i = 0; i < args.size(); ++i) {
        const std::string& token = args[i];
        if (!looks_like_flag(token)) {
            if (previous_switch != nullptr)
                usage_fail("unexpected argument '{}': --{} takes no value", token, previous_switch->name);
            usage_fail(
                "unexpected argument '{}': cudacnn-train takes only flags (cudacnn-train --help lists them)",
                token);
        }
        const Flag* flag = nullptr;
        std::optional<std::string> value;
        if (token.rfind("--", 0) == 0) {  // --name or --name=value
            const size_t equals = token.find('=');
            flag = find_long(token.substr(2, equals - 2));
            if (equals != std::string::npos) value = token.substr(equals + 1);
        } else {  // -b or -b64
            flag = find_short(token[1]);
            if (flag != nullptr && token.size() > 2) value = token.substr(2);
        }
        if (flag == nullptr) unknown_flag(token);
        const std::string name = std::string("--") + flag->name;
        previous_switch = flag->is_switch() ? flag : nullptr;
        if (flag->is_switch()) {
            if (value) usage_fail("{} takes no value (got '{}')", name, *value);
            flag->set(parsed.options, Arg{name, ""});
            continue;
        }
        if (!value && i + 1 < args.size() && !looks_like_flag(args[i + 1])) value = args[++i];
        if (!value || value->empty()) usage_fail("{} needs a value: {} {}", name, name, flag->value_name);
        flag->set(parsed.options, Arg{name, *value});
    }
    validate(parsed.options);
    return parsed;
}

std::string train_usage() {
    const TrainOptions defaults;
    std::string text =
        "usage: cudacnn-train [flags]\n"
        "Trains a CNN on CIFAR-10/100 or synthetic images, on a GPU or the CPU, as PyTorch would.\n";
    std::string group;
    for (const Flag& flag : flags()) {
        if (group != flag.group) {
            group = flag.group;
            text += fmt::format("\n{}:\n", group);
        }
        text += fmt::format("  {:<36} {}", flag_title(flag), flag.help);
        const json value = flag.get(defaults);
        if (!flag.is_switch() && !value.is_null() && value != "")
            text += fmt::format(" (default: {})", flag_text(value));
        text += "\n";
    }
    text += fmt::format("  {:<36} {}\n", "-h, --help", "show this text and exit");

    text +=
        "\nLearning-rate schedules (--lr-schedule), per epoch as PyTorch's lr_scheduler;\n"
        "an empty or missing optional field keeps its default:\n";
    for (const ScheduleForm& form : schedule_forms())
        text += fmt::format("  {:<36} {}\n", form.usage, form.meaning);

    text += augment_help();
    text +=
        "\nImage folders (--dataset imagefolder --data DIR): one subfolder of PNG/JPEG images per class\n"
        "(its name is the class name; labels follow the names' sorted order), each image centre-cropped and\n"
        "resized to the model's input. DIR/train and DIR/test are the two sets when DIR has both (with the\n"
        "same class folders); otherwise DIR holds the class folders and the test accuracy is measured on\n"
        "those same images.\n";

    text +=
        "\nExamples:\n"
        "  cudacnn-train --dataset cifar10 --data ~/cifar-10-batches-bin --lr 1e-3 --metrics run.csv\n"
        "  cudacnn-train --model small_cnn --epochs 3 -b64 --device cpu --limit-train 2000\n"
        "  cudacnn-train --dataset cifar100 --data ~/cifar-100-binary --cifar100-labels coarse --model "
        "m20.json\n"
        "  cudacnn-train --dataset imagefolder --data ~/photos --model m.json --augment "
        "resizedcrop:32,hflip\n"
        "  cudacnn-train --optimizer sgd --lr 0.1 --momentum 0.9 --weight-decay 5e-4 --lr-schedule "
        "multistep:10,15:0.1\n";
    return text;
}

std::string describe(const TrainOptions& options) {
    std::string text;
    for (const Flag& flag : flags()) {
        json value = flag.get(options);
        if (flag.key() == "weight_decay") value = effective_weight_decay(options);
        std::string shown_value = value.is_null() ? "all" : value == "" ? "-" : flag_text(value);
        if (flag.key() == "weight_decay" && !options.weight_decay)
            shown_value += fmt::format(" ({}'s default)", optimizer_name(options.optimizer));
        if (flag.key() == "cifar100_labels")
            shown_value =
                options.dataset == "cifar100"
                    ? data::cifar100_labels_name(options.cifar100_labels.value_or(data::Cifar100Labels::fine))
                    : "-";
        if (flag.key() == "augment_spec" && options.augment_spec.empty())
            shown_value =
                options.augment ? "- (the default: crop:H:4,hflip for H×H images)" : "- (--no-augment)";
        text += fmt::format("{:<16} {}\n", flag.key(), shown_value);
    }
    return text;
}

nlohmann::json to_json(const TrainOptions& options) {
    json out = json::object();
    for (const Flag& flag : flags()) out[flag.key()] = flag.get(options);
    return out;
}

TrainOptions options_from_json(const nlohmann::json& in) {
    CUDACNN_CHECK(in.is_object(), "training options: expected a JSON object, got {}", in.type_name());
    for (const auto& item : in.items())
        CUDACNN_CHECK(
            std::any_of(flags().begin(), flags().end(), [&](const Flag& f) { return f.key() == item.key(); }),
            "training options: unknown key '{}' (written by a newer cudacnn?)", item.key());
    const TrainOptions defaults;
    TrainOptions options;
    for (const Flag& flag : flags()) {
        const std::string key = flag.key();
        if (!in.contains(key)) continue;
        const json& value = in.at(key);
        try {
            if (flag.is_switch()) {
                CUDACNN_CHECK(value.is_boolean(), "training options: '{}' must be true or false, not {}", key,
                              value.dump());
                if (value != flag.get(defaults)) flag.set(options, Arg{key, ""});
            } else if (!value.is_null() && value != "") {
                // Through the flag's own setter, so that the file is held to the command line's checks.
                flag.set(options, Arg{key, flag_text(value)});
            }
        } catch (const UsageError& e) {
            CUDACNN_FAIL("training options: '{}': {}", key, e.what());
        }
    }
    try {
        validate(options);
    } catch (const UsageError& e) {
        CUDACNN_FAIL("training options: {}", e.what());
    }
    return options;
}

}  // namespace cudacnn::train
