// Progress within an epoch (see progress.hpp).
#include "src/train/progress.hpp"

#include <unistd.h>

#include <algorithm>
#include <iostream>
#include <string>

#include <fmt/format.h>

namespace cudacnn::train {

namespace {
// A bar only when the stream is the terminal's stdout: redrawing with '\r' garbles files and pipes.
bool is_terminal(const std::ostream& out) {
    return &out == &std::cout && isatty(STDOUT_FILENO) == 1;
}
}  // namespace

Progress::Progress(std::ostream& out, int64_t epoch, int64_t total_steps, int64_t every_steps)
    : out_(out), epoch_(epoch), total_(std::max<int64_t>(total_steps, 1)), terminal_(is_terminal(out)),
      start_(std::chrono::steady_clock::now()) {
    every_ = every_steps > 0 ? every_steps : std::max<int64_t>(1, total_ / (terminal_ ? 40 : 10));
}

bool Progress::due(int64_t step) const {
    return step == total_ || step % every_ == 0;
}

void Progress::report(int64_t step, const graph::Metrics& so_far) {
    const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
    const double images_per_second = so_far.samples / std::max(seconds, 1e-9);
    const std::string numbers = fmt::format("{}/{} | loss {:.4f} | accuracy {:.3f}% | {:.0f} images/s", step, total_,
                                            so_far.mean_loss(), so_far.accuracy_percent(), images_per_second);
    if (terminal_) {
        constexpr int kWidth = 30;
        const int filled = static_cast<int>(kWidth * step / total_);
        out_ << fmt::format("\rEpoch {} [{}{}] {}", epoch_, std::string(filled, '='), std::string(kWidth - filled, ' '),
                            numbers)
             << std::flush;
        drew_ = true;
    } else if (step != total_) {  // the epoch line that follows says the rest
        out_ << fmt::format("  epoch {} step {}\n", epoch_, numbers) << std::flush;
    }
}

void Progress::finish() {
    if (drew_) out_ << "\r\033[K" << std::flush;  // clear the bar: the epoch line replaces it
}

}  // namespace cudacnn::train
