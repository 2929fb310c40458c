// Command-line options of cudacnn-train: parsing (argparse conventions), --help, the echo at the start of a
// run, and the JSON form stored in checkpoints.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "cudacnn/data/dataset.hpp"
#include "cudacnn/error.hpp"
#include "cudacnn/ops/lr_schedule.hpp"

namespace cudacnn::train {

// A bad command line. It derives from Error so that a caller catching Error sees it too, but its message is
// for the person at the terminal, so it has no file:line prefix: it names the flag, the bad value and what is
// accepted. cudacnn-train prints it and exits with code 2 (argparse's code for usage errors).
class UsageError : public Error {
  public:
    using Error::Error;
};

enum class DeviceChoice { auto_, cuda, cpu, cpu_reference };
enum class OptimizerKind { adam, adamw, sgd };
enum class MetricsFormat { csv, jsonl };  // from the --metrics file's extension: .csv, else .jsonl / .json

const char* device_choice_name(DeviceChoice choice);    // "auto", "cuda", "cpu", "cpu-ref"
const char* optimizer_name(OptimizerKind kind);         // "adam", "adamw", "sgd"
const char* metrics_format_name(MetricsFormat format);  // "csv", "jsonl"

// --lr-schedule as given. `spec` is the CPU reference schedule (ops/lr_schedule.hpp) with 0 standing for the
// values the run supplies: cosine's t_max and one-cycle's total_steps (the number of epochs) and one-cycle's
// max_lr (--lr). The syntax, fields separated by ':' (an empty or missing optional field takes its default):
//   none                                 the lr stays --lr (the default)
//   constant[:FACTOR[:ITERS]]            ConstantLR: lr·FACTOR for the first ITERS epochs (PyTorch: 1/3, 5)
//   step:STEP_SIZE[:GAMMA]               StepLR: lr·GAMMA every STEP_SIZE epochs (GAMMA 0.1)
//   multistep:E1,E2,...[:GAMMA]          MultiStepLR: lr·GAMMA at each listed epoch (GAMMA 0.1)
//   cosine[:T_MAX[:ETA_MIN]]             CosineAnnealingLR (T_MAX: the number of epochs, ETA_MIN 0)
//   one_cycle[:PCT_START[:cos|linear]]   OneCycleLR peaking at --lr, over all epochs (0.3, cos)
struct LrSchedule {
    cpu::LrSchedule spec;
};

// Parses the syntax above; throws UsageError for an unknown kind, a missing, extra or non-numeric field.
// Value ranges (gamma > 0, …) are the reference functions' to check: parse_train_args calls lr_at_epoch.
LrSchedule parse_lr_schedule(const std::string& text);
std::string lr_schedule_text(const LrSchedule& schedule);  // parse_lr_schedule(lr_schedule_text(s)) gives s
// The reference schedule with the run's values filled in (for one-cycle's momentum too).
cpu::LrSchedule resolve_lr_schedule(const LrSchedule& schedule, double base_lr, int64_t total_epochs);
// The lr of epoch `epoch` (from 0) of a run of total_epochs: cpu::scheduled_lr of the resolved schedule.
double lr_at_epoch(const LrSchedule& schedule, double base_lr, int64_t epoch, int64_t total_epochs);

struct TrainOptions {
    std::string model = "cifar_cnn";  // --model: a built-in name or a FILE.json path (checked by the loader)
    std::string dataset = "synthetic";  // --dataset cifar10|cifar100|imagefolder|synthetic
    std::string data_dir;               // --data DIR: required for cifar10/cifar100/imagefolder
    std::optional<data::Cifar100Labels> cifar100_labels;  // --cifar100-labels (cifar100 only); unset: fine
    int64_t epochs = 20;                             // --epochs: >= 1, or 0 with --evaluate
    int64_t batch_size = 128;                        // -b / --batch-size
    double lr = 1e-4;                                // --lr
    OptimizerKind optimizer = OptimizerKind::adam;   // --optimizer
    double momentum = 0.0;                           // --momentum: sgd only
    std::optional<double> weight_decay;              // --weight-decay; unset: effective_weight_decay
    LrSchedule lr_schedule;                          // --lr-schedule
    double label_smoothing = 0.0;                    // --label-smoothing in [0, 1)
    uint64_t seed = 0;                               // --seed
    DeviceChoice device = DeviceChoice::auto_;       // --device
    std::string conv_algo = "auto";                  // --conv-algo auto|cudnn|direct|im2col|implicit|winograd|own|fastest
    std::string precision = "fp32";                  // --precision fp32|tf32 (the GPU's convolutions and GEMMs)
    std::string memory_format = "nchw";              // --memory-format nchw|nhwc (the GPU's activations)
    std::string gemm = "auto";                       // --gemm auto|own|cublas
    bool cudnn_benchmark = false;                    // --cudnn-benchmark
    int64_t cudnn_workspace_mib = -1;                // --cudnn-workspace-mib N|auto (-1)
    int threads = 0;                                 // --threads: the fast CPU path's threads, 0 = one per core
    std::string output_dir = "runs";                 // --output-dir
    int64_t save_every = 20;                         // --save-every N epochs; 0: only the final checkpoint
    std::string resume;                              // --resume PATH
    bool evaluate_only = false;                      // --evaluate
    std::optional<int64_t> limit_train, limit_test;  // --limit-train N, --limit-test N
    bool augment = true, dropout = true, shuffle = true;  // --no-augment, --no-dropout, --no-shuffle
    // --augment SPEC or FILE.json: the training transform as data::format_augment_spec's canonical text (a
    // file's content, not its path, so that checkpoints carry it); empty: the default, "crop:H:4,hflip" for
    // H×H images. Never set together with augment = false.
    std::string augment_spec;
    bool cuda_graph = true;                               // --no-cuda-graph
    bool detect_anomaly = false;                          // --detect-anomaly
    std::string init_weights;                             // --init-weights FILE.safetensors
    std::string export_path;                              // --export FILE.safetensors
    std::string export_dtype = "f32";                     // --export-dtype f32|f16|bf16
    std::string metrics_path;                             // --metrics FILE
    MetricsFormat metrics_format = MetricsFormat::csv;    // set with metrics_path
    int64_t synthetic_train_size = 10000, synthetic_test_size = 2000;  // --synthetic-size TRAIN,TEST
    std::string distributed = "auto";  // --distributed auto|on|off: data-parallel across processes (src/train/data_parallel)
    bool sync_bn = false;              // --sync-bn
    std::string dist_id_file;          // --dist-id-file PATH: NCCL's id for processes not started by mpirun
    int64_t log_every = 0;  // --log-every N steps; 0: a progress bar on a terminal, about every 10% otherwise
};

// --weight-decay, or PyTorch's default for the optimizer when it is not given: 0.01 for adamw, else 0.
double effective_weight_decay(const TrainOptions& options);

struct ParsedArgs {
    TrainOptions options;
    bool help = false;  // -h / --help anywhere: the options are the defaults and nothing else was checked
};

// `args` without argv[0]. `--flag value`, `--flag=value`, `-b 64`, `-b64`; switches take no value; a repeated
// flag's last value wins. Throws UsageError for anything it does not accept, after checking the flags
// together (--data for CIFAR, --momentum only with sgd, the schedule's values for this many epochs).
ParsedArgs parse_train_args(const std::vector<std::string>& args);
std::string train_usage();  // the --help text

// One "key value" line per setting, the keys of to_json; for the log at the start and for checkpoints.
std::string describe(const TrainOptions& options);
// Every setting under its flag's name with '_' for '-' and without the "no-" of switches ("batch_size",
// "data", "augment", "lr_schedule" as its text, unset optionals as null); --augment's is "augment_spec".
nlohmann::json to_json(const TrainOptions& options);
// Reads to_json's form back with the same checks as the command line (absent keys keep their defaults);
// throws Error naming the key for an unknown key or a bad value.
TrainOptions options_from_json(const nlohmann::json& json);

}  // namespace cudacnn::train
