// The --metrics file: one row per epoch, as CSV (with a header) or JSON lines, flushed after every epoch so
// that an interrupted run keeps what it measured; and its reader (cudacnn-viz curves).
#pragma once

#include <cstdint>
#include <fstream>
#include <string>
#include <vector>

#include "cudacnn/train/options.hpp"

namespace cudacnn::train {

struct EpochRow {
    int64_t epoch = 0;
    double train_loss = 0.0, train_accuracy = 0.0, test_loss = 0.0, test_accuracy = 0.0;
    double seconds = 0.0, lr = 0.0, images_per_second = 0.0;
};

class MetricsLog {
  public:
    // An empty path writes nothing; append keeps an existing file's rows (a resumed run).
    MetricsLog(const std::string& path, MetricsFormat format, bool append);
    void write(const EpochRow& row);

  private:
    std::string path_;
    MetricsFormat format_;
    std::ofstream file_;
};

// Reads a --metrics file of either format (CSV: by its header's column names; JSON lines: by key); the epoch,
// loss and accuracy columns are required, the others default to 0. A later row for the same epoch (a run
// resumed from an earlier checkpoint) replaces the earlier one. Errors name the file and line.
std::vector<EpochRow> read_metrics_file(const std::string& path);

}  // namespace cudacnn::train
