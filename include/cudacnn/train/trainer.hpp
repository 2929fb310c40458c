// cudacnn-train's work as a library function: data, model, executor, the epoch loop with the seed's log
// line, metrics, checkpoints, export and evaluation. tools/cudacnn-train.cpp only calls train_main.
#pragma once

#include <cstdint>
#include <iosfwd>
#include <string>
#include <vector>

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
};

// Trains (or, with --evaluate, evaluates) as the options say, writing the log to `out`. Throws Error.
TrainSummary run_training(const TrainOptions& options, std::ostream& out);

// The whole command: parses args (without argv[0]), runs, and returns the exit code: 0, 1 for an Error
// (message on `err`), 2 for a usage error.
int train_main(const std::vector<std::string>& args, std::ostream& out, std::ostream& err);

}  // namespace cudacnn::train
