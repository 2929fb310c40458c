// cudacnn-train's work as a library function: data, model, executor, the epoch loop with the seed's log
// line, metrics, checkpoints, export and evaluation. tools/cudacnn-train.cpp only calls train_main.
#pragma once

#include <cstdint>
#include <functional>
#include <iosfwd>
#include <optional>
#include <string>
#include <vector>

#include "cudacnn/dist/communicator.hpp"
#include "cudacnn/train/options.hpp"

namespace cudacnn::train {

// What a run reached, for tests and the final summary.
struct TrainSummary {
    int64_t epochs_run = 0;
    double final_test_accuracy = 0.0;  // percent
    double best_test_accuracy = 0.0;   // percent
    int64_t best_epoch = 0;
    double final_train_loss = 0.0;
    std::vector<std::vector<int64_t>> confusion;  // [true class][predicted class] on the test set, last epoch
    // SIGINT or SIGTERM stopped the run early (0 if not); last_checkpoint holds its work and --resume goes on.
    int interrupted_by_signal = 0;
    std::string last_checkpoint;
};

// Calls into a run, for tests.
struct TrainHooks {
    std::function<void(int64_t epoch, int64_t batches_done)> after_step;  // after each training step
    // The launch to assume instead of the environment's (dist::detect_launch), e.g. a single-process run inside
    // a test that mpirun started.
    std::optional<dist::LaunchInfo> launch;
};

// Trains (or, with --evaluate, evaluates) as the options say, writing the log to `out`. Throws Error.
// While it trains, SIGINT and SIGTERM make it finish the step under way, write a checkpoint (named
// checkpoint-epoch-NNN-step-SSSSS.safetensors within an epoch) and return with interrupted_by_signal set.
TrainSummary run_training(const TrainOptions& options, std::ostream& out, const TrainHooks& hooks = {});

// The command line that resumes the run of `args` from `checkpoint`: args without any --resume, then
// --resume checkpoint, quoted for a POSIX shell.
std::string resume_command(const std::vector<std::string>& args, const std::string& checkpoint);

// The whole command: parses args (without argv[0]), runs, and returns the exit code: 0, 1 for an Error
// (message on `err`), 2 for a usage error, 128 + the signal (130 for SIGINT, 143 for SIGTERM) for a run
// interrupted by one, after saying on `err` which checkpoint holds its work and the command that resumes it.
int train_main(const std::vector<std::string>& args, std::ostream& out, std::ostream& err);

}  // namespace cudacnn::train
