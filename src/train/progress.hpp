// Progress within an epoch: a one-line bar redrawn in place on a terminal, plain periodic lines otherwise
// (logs, CI), each with the loss and accuracy so far and the images per second.
#pragma once

#include <chrono>
#include <cstdint>
#include <iosfwd>

#include "cudacnn/graph/executor.hpp"

namespace cudacnn::train {

class Progress {
  public:
    // every_steps: report every that many steps; 0 chooses: about 40 redraws per epoch on a terminal, a line
    // about every 10% of the epoch otherwise.
    Progress(std::ostream& out, int64_t epoch, int64_t total_steps, int64_t every_steps);

    // Whether step (1-based) should read the metrics back and report; always true for the last step, so that
    // the epoch's metrics are read in full.
    bool due(int64_t step) const;
    int64_t every() const { return every_; }  // the steps between reports, as chosen
    void report(int64_t step, const graph::Metrics& so_far);
    void finish();  // ends the bar's line on a terminal

  private:
    std::ostream& out_;
    int64_t epoch_, total_, every_;
    bool terminal_;
    bool drew_ = false;
    std::chrono::steady_clock::time_point start_;
};

}  // namespace cudacnn::train
