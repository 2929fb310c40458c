// cudacnn-bench's command line: what to measure, how often, and where the results go.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace cudacnn::bench {

struct BenchOptions {
    std::string model = "cifar_cnn";  // --model NAME|FILE.json: its layer shapes and training step
    int64_t batch_size = 128;         // --batch-size / -b
    std::string shape;                // --shape OP:K=V,...: this one op instead of the model's layers
    // --algos: which implementations to time, from cudnn, direct, im2col, implicit, winograd (conv2d), cublas
    // (linear), kernel (the hand-written kernels of the other ops), cpu (the reference op by op; the fast CPU path for the
    // whole step), cpu_ref (the step on the reference ops), gpu (all but the CPU ones). Empty: gpu when a real
    // GPU answers, else cpu.
    std::vector<std::string> algos;
    std::string filter;                // --filter REGEX over "op direction algorithm shape"
    int64_t warmup = 5;                // --warmup: untimed calls first
    int64_t repeats = 20;              // --repeats: timed calls (at most 3 on the CPU and the emulator)
    int64_t steps = 10;                // --steps: training steps per timed sample of train_step
    std::string optimizer = "adam";    // --optimizer adam|adamw|sgd: the fused optimizer case and the step
    bool step = true;                  // --no-step: no training step and epoch estimate
    // --profile: only the whole steps (no per-op rows, no roofline), each profiled variant's also node by node
    bool profile = false;
    bool quick = false;                // --quick: warmup 1, repeats 2, steps 1, batch 8 unless -b is given
    std::string json_path, csv_path;   // --json FILE, --csv FILE
    uint64_t seed = 0;                 // --seed: the random inputs
    int threads = 0;                   // --threads: the fast CPU path's, 0 = one per core
    int64_t cudnn_workspace_mib = -1;  // --cudnn-workspace-mib N|auto (-1): the cuDNN workspace limit
};

struct ParsedBenchArgs {
    BenchOptions options;
    bool help = false;
};

// `args` without argv[0]; `--flag value` or `--flag=value`. Throws train::UsageError naming the flag, the
// value and what is accepted.
ParsedBenchArgs parse_bench_args(const std::vector<std::string>& args);
std::string bench_usage();

// The implementations --algos accepts, in the order they are measured.
const std::vector<std::string>& algorithm_names();

}  // namespace cudacnn::bench
