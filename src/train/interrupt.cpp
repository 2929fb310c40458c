// Recording SIGINT and SIGTERM for the training loop (see interrupt.hpp).
#include "src/train/interrupt.hpp"

#include <csignal>
#include <string>

namespace cudacnn::train {
namespace {

volatile std::sig_atomic_t g_pending = 0;
struct sigaction g_previous_int, g_previous_term;
bool g_end_program_on_interrupt = false;

extern "C" void record_signal(int signal) {
    if (g_pending == 0) g_pending = signal;  // only assignments to a sig_atomic_t: async-signal-safe
}

}  // namespace

InterruptGuard::InterruptGuard() {
    struct sigaction action = {};
    action.sa_handler = record_signal;
    sigemptyset(&action.sa_mask);
    action.sa_flags = SA_RESTART;  // reads and writes in progress continue rather than fail with EINTR
    sigaction(SIGINT, &action, &g_previous_int);
    sigaction(SIGTERM, &action, &g_previous_term);
}

InterruptGuard::~InterruptGuard() {
    if (g_end_program_on_interrupt && g_pending != 0) {
        std::signal(SIGINT, SIG_IGN);
        std::signal(SIGTERM, SIG_IGN);
        return;
    }
    sigaction(SIGINT, &g_previous_int, nullptr);
    sigaction(SIGTERM, &g_previous_term, nullptr);
}

EndProgramOnInterrupt::EndProgramOnInterrupt() {
    g_end_program_on_interrupt = true;
}
EndProgramOnInterrupt::~EndProgramOnInterrupt() {
    g_end_program_on_interrupt = false;
}

int pending_interrupt() {
    return g_pending;
}
void request_interrupt(int signal) {
    record_signal(signal);
}
void clear_interrupt() {
    g_pending = 0;
}

const char* interrupt_signal_name(int signal) {
    if (signal == SIGINT) return "SIGINT";
    if (signal == SIGTERM) return "SIGTERM";
    static thread_local std::string other;
    other = "signal " + std::to_string(signal);
    return other.c_str();
}

}  // namespace cudacnn::train
