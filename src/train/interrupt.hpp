// SIGINT and SIGTERM during training: the loop finishes its step, writes a checkpoint and stops, rather than
// the process dying with the work since the last checkpoint.
#pragma once

namespace cudacnn::train {

// While alive, SIGINT and SIGTERM only record themselves (pending_interrupt); further signals, e.g. a second
// Ctrl-C while the checkpoint is written, are recorded too and change nothing, so the write completes (and it
// is atomic in any case). Restores the previous handlers when it ends.
class InterruptGuard {
  public:
    InterruptGuard();
    ~InterruptGuard();
    InterruptGuard(const InterruptGuard&) = delete;
    InterruptGuard& operator=(const InterruptGuard&) = delete;
};

// For a program that ends when its run is interrupted (cudacnn-train's main): while one of these is alive, an
// InterruptGuard that ends with an interrupt pending leaves SIGINT and SIGTERM ignored instead of restoring
// the previous handlers, so that a repeated signal while the program reports the checkpoint and exits cannot
// kill it (losing the message and the exit status 128 + signal). Other callers (library use, tests) keep the
// restoring behaviour.
class EndProgramOnInterrupt {
  public:
    EndProgramOnInterrupt();
    ~EndProgramOnInterrupt();
    EndProgramOnInterrupt(const EndProgramOnInterrupt&) = delete;
    EndProgramOnInterrupt& operator=(const EndProgramOnInterrupt&) = delete;
};

int pending_interrupt();             // the first signal received since clear_interrupt(), 0 if none
void request_interrupt(int signal);  // as if `signal` had come (tests)
void clear_interrupt();
const char* interrupt_signal_name(int signal);  // "SIGINT", "SIGTERM", or "signal N"

}  // namespace cudacnn::train
