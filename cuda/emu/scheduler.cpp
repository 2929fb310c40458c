// The emulator's scheduler: runs every block of a launch on a pool of worker threads, and every CUDA thread
// of a block as a fiber. A block runs in rounds: each runnable fiber runs until it reaches a barrier, a warp
// collective or its end; then the collectives whose participants have all arrived are released. When
// nothing can be released the block is deadlocked, which is reported instead of hanging.
#include <cxxabi.h>
#include <dlfcn.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <map>
#include <memory>
#include <mutex>
#include <random>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include <fmt/format.h>

#include "cuda/emu/emu.hpp"
#include "cuda/emu/fiber.hpp"
#include "cuda/emu/internal.hpp"
#include "cuda/emu/launch_kernel.hpp"
#include "cudacnn/error.hpp"

namespace cudacnn::emu {

thread_local ThreadContext* current_thread = nullptr;
thread_local BlockContext* current_block = nullptr;

// A whole number from an environment variable, or Error naming the variable and the range to use.
uint64_t integer_from_environment(const char* name, uint64_t fallback, uint64_t lowest, uint64_t highest) {
    const char* text = std::getenv(name);
    if (text == nullptr || *text == '\0') return fallback;
    char* end = nullptr;
    const unsigned long long value = std::strtoull(text, &end, 10);
    CUDACNN_CHECK(*end == '\0' && value >= lowest && value <= highest,
                  "the emulator's {} is '{}'; use a whole number from {} to {}, or unset it", name, text, lowest,
                  highest);
    return value;
}

namespace {

// sm_90 launch limits (CUDA C++ Programming Guide, compute capability 9.0).
constexpr unsigned kMaxThreadsPerBlock = 1024;
constexpr unsigned kMaxBlockDimXY = 1024;
constexpr unsigned kMaxBlockDimZ = 64;
constexpr unsigned kMaxGridDimX = 2147483647u;
constexpr unsigned kMaxGridDimYZ = 65535;
constexpr int kDefaultMaxDynamicShared = 48 * 1024;
constexpr unsigned kFullMask = 0xffffffffu;
// What a shuffle returns when its source lane does not take part: all one bits, a NaN for floats, so that
// a result built from it cannot pass a comparison with the reference by accident.
constexpr uint64_t kPoison = ~uint64_t{0};

enum class FiberState { not_started, ready, running, at_barrier, at_warp, done };

struct Fiber {
    ThreadContext thread{};
    FiberState state = FiberState::not_started;
    FiberContext context = nullptr;
    FiberStack stack{};
    // What the fiber waits at, and what it gets when released.
    WarpOp op = WarpOp::sync;
    unsigned mask = 0;
    uint64_t value = 0;
    int lane_arg = 0;
    int width = 32;
    BarrierReduce reduce = BarrierReduce::none;
    int predicate = 0;
    uint64_t result = 0;
};

struct Job {
    const KernelBody* body = nullptr;
    dim3 grid, block;
    size_t dynamic_shared_bytes = 0;
    uint64_t launch_index = 0;
    uint64_t total_blocks = 0;
    std::atomic<uint64_t> next_block{0};
    std::atomic<bool> failed{false};
    std::mutex error_mutex;
    cudaError_t error = cudaSuccess;
    std::string error_detail;

    void fail(cudaError_t code, std::string detail) {
        std::lock_guard<std::mutex> lock(error_mutex);
        if (!failed.exchange(true)) {
            error = code;
            error_detail = std::move(detail);
        }
    }
};

// The per-OS-thread state: the fibers of the block it is running and the stacks they use.
struct Worker {
    explicit Worker(size_t stack_bytes) : stacks(stack_bytes) {}

    StackPool stacks;
    FiberContext scheduler_context = nullptr;
    const void* scheduler_stack_bottom = nullptr;
    size_t scheduler_stack_size = 0;
    std::vector<Fiber> fibers;
    std::vector<unsigned> order;
    Fiber* running = nullptr;
    BlockContext block{};
    std::unique_ptr<unsigned char[]> dynamic_shared;
    const Job* job = nullptr;
    std::exception_ptr kernel_exception;
};

std::mutex settings_mutex;
Settings current_settings{};
bool settings_loaded = false;


Settings settings_from_environment() {
    Settings s{};
    const unsigned cores = std::max(1u, std::thread::hardware_concurrency());
    s.worker_threads = static_cast<int>(integer_from_environment("CUDACNN_EMU_WORKERS", cores, 1, 1024));
    s.fiber_order = FiberOrder::forward;
    if (const char* v = std::getenv("CUDACNN_EMU_ORDER")) {
        const std::string order(v);
        if (order == "reverse") {
            s.fiber_order = FiberOrder::reverse;
        } else if (order == "random") {
            s.fiber_order = FiberOrder::random;
        } else {
            CUDACNN_CHECK(order == "forward" || order.empty(),
                          "the emulator's CUDACNN_EMU_ORDER is '{}'; use forward, reverse or random", order);
        }
    }
    s.random_seed = integer_from_environment("CUDACNN_EMU_SEED", 20261125, 0, UINT64_MAX);
    // Kernel frames are small, but sanitizers multiply them.
#if defined(__SANITIZE_ADDRESS__)
    constexpr uint64_t kDefaultStackKb = 512;
#else
    constexpr uint64_t kDefaultStackKb = 128;
#endif
    s.fiber_stack_bytes = 1024 * integer_from_environment("CUDACNN_EMU_STACK_KB", kDefaultStackKb, 16, 1 << 20);
    return s;
}

thread_local std::unique_ptr<Worker> this_thread_worker;
thread_local std::string last_error_detail;

Worker& worker_for_this_thread(size_t stack_bytes) {
    if (!this_thread_worker || this_thread_worker->stacks.stack_bytes() != stack_bytes) {
        this_thread_worker = std::make_unique<Worker>(stack_bytes);
    }
    return *this_thread_worker;
}

Worker& running_worker() { return *this_thread_worker; }

// ---- fiber switching ----------------------------------------------------------------------------------

void run_thread_body(Worker& w) {
    try {
        w.job->body->invoke(w.job->body->closure);
    } catch (...) {
        if (!w.kernel_exception) w.kernel_exception = std::current_exception();
    }
}

[[noreturn]] void fiber_main(FiberTransfer from_scheduler) {
    Worker& w = *static_cast<Worker*>(from_scheduler.data);
    w.scheduler_context = from_scheduler.fctx;
    sanitizer_finish_switch(nullptr, &w.scheduler_stack_bottom, &w.scheduler_stack_size);
    run_thread_body(w);
    w.running->state = FiberState::done;
    // The last switch: this fiber is never resumed, so its fake stack may go (null save slot).
    sanitizer_start_switch(nullptr, w.scheduler_stack_bottom, w.scheduler_stack_size);
    switch_fiber(w.scheduler_context, nullptr);
    std::abort();  // unreachable: nothing resumes a finished fiber
}

// Called on a fiber's stack: gives control back to the scheduler until the fiber is released.
void yield_to_scheduler(Worker& w) {
    void* fake_stack = nullptr;
    sanitizer_start_switch(&fake_stack, w.scheduler_stack_bottom, w.scheduler_stack_size);
    const FiberTransfer back = switch_fiber(w.scheduler_context, nullptr);
    sanitizer_finish_switch(fake_stack, nullptr, nullptr);
    w.scheduler_context = back.fctx;
}

void resume(Worker& w, Fiber& f) {
    if (f.state == FiberState::not_started) {
        f.stack = w.stacks.acquire();
        f.context = make_fiber_context(f.stack, fiber_main);
    }
    f.state = FiberState::running;
    w.running = &f;
    current_thread = &f.thread;
    void* fake_stack = nullptr;
    sanitizer_start_switch(&fake_stack, f.stack.base, f.stack.size);
    const FiberTransfer back = switch_fiber(f.context, &w);
    sanitizer_finish_switch(fake_stack, nullptr, nullptr);
    f.context = back.fctx;
    w.running = nullptr;
    current_thread = nullptr;
    if (f.state == FiberState::done) {
        w.stacks.release(f.stack);
        f.stack = {};
    }
}

// ---- releasing barriers and warp collectives ---------------------------------------------------------

const char* warp_op_name(WarpOp op) {
    switch (op) {
        case WarpOp::sync: return "__syncwarp";
        case WarpOp::shfl_idx: return "__shfl_sync";
        case WarpOp::shfl_up: return "__shfl_up_sync";
        case WarpOp::shfl_down: return "__shfl_down_sync";
        case WarpOp::shfl_xor: return "__shfl_xor_sync";
        case WarpOp::ballot: return "__ballot_sync";
        case WarpOp::any: return "__any_sync";
        case WarpOp::all: return "__all_sync";
        case WarpOp::reduce_add: return "__reduce_add_sync";
        case WarpOp::reduce_min: return "__reduce_min_sync";
        case WarpOp::reduce_max: return "__reduce_max_sync";
    }
    return "warp collective";
}

std::string thread_name(const Fiber& f) {
    return fmt::format("({},{},{})", f.thread.thread_idx.x, f.thread.thread_idx.y, f.thread.thread_idx.z);
}

std::string block_name(const BlockContext& b) {
    return fmt::format("({},{},{})", b.block_idx.x, b.block_idx.y, b.block_idx.z);
}

// The error raised inside the scheduler for a block that cannot go on.
struct BlockFailure {
    cudaError_t code;
    std::string detail;
};

[[noreturn]] void fail_block(const Worker& w, const std::string& what) {
    throw BlockFailure{cudaErrorLaunchFailure,
                       fmt::format("kernel {} block {}: {}", kernel_name(w.job->body->kernel),
                                   block_name(w.block), what)};
}

// The lane a shuffle reads from, or -1 when it returns the caller's own value (source outside its segment).
int shuffle_source(WarpOp op, int lane, int arg, int width) {
    const int segment = lane & ~(width - 1);
    switch (op) {
        case WarpOp::shfl_idx: return segment + (arg & (width - 1));
        case WarpOp::shfl_up: return lane - arg >= segment ? lane - arg : -1;
        case WarpOp::shfl_down: return lane + arg < segment + width ? lane + arg : -1;
        case WarpOp::shfl_xor: {
            const int source = lane ^ arg;
            return source < segment + width ? source : -1;  // CUDA allows reading earlier segments only
        }
        default: return -1;
    }
}

// Computes the results of one released collective. `group` holds block thread indices by lane (-1: the lane
// does not take part: outside the mask, beyond the block, or finished).
void complete_collective(std::vector<Fiber>& fibers, const int (&group)[32], WarpOp op) {
    uint64_t ballot = 0, sum = 0, minimum = ~uint64_t{0}, maximum = 0;
    bool all = true;
    for (int lane = 0; lane < 32; ++lane) {
        if (group[lane] < 0) continue;
        const uint64_t v = fibers[group[lane]].value;
        if (v != 0) ballot |= uint64_t{1} << lane;
        all = all && v != 0;
        sum += v;
        minimum = std::min(minimum, v);
        maximum = std::max(maximum, v);
    }
    for (int lane = 0; lane < 32; ++lane) {
        if (group[lane] < 0) continue;
        Fiber& f = fibers[group[lane]];
        switch (op) {
            case WarpOp::sync: f.result = 0; break;
            case WarpOp::ballot: f.result = ballot; break;
            case WarpOp::any: f.result = ballot != 0; break;
            case WarpOp::all: f.result = all; break;
            case WarpOp::reduce_add: f.result = static_cast<uint32_t>(sum); break;
            case WarpOp::reduce_min: f.result = minimum; break;
            case WarpOp::reduce_max: f.result = maximum; break;
            default: {
                const int source = shuffle_source(op, lane, f.lane_arg, f.width);
                if (source < 0) f.result = f.value;
                else if (source < 32 && group[source] >= 0) f.result = fibers[group[source]].value;
                else f.result = kPoison;
            }
        }
        f.state = FiberState::ready;
    }
}

// Releases every warp collective whose live participants have all arrived. Returns whether any was.
bool release_warp_collectives(Worker& w) {
    const int threads = static_cast<int>(w.fibers.size());
    bool released = false;
    for (int warp_base = 0; warp_base < threads; warp_base += 32) {
        const int lanes = std::min(32, threads - warp_base);
        for (int lane = 0; lane < lanes; ++lane) {
            const Fiber& first = w.fibers[warp_base + lane];
            if (first.state != FiberState::at_warp) continue;
            int group[32];
            bool complete = true;
            for (int other = 0; other < 32; ++other) {
                group[other] = -1;
                if (!(first.mask >> other & 1u) || other >= lanes) continue;
                const Fiber& f = w.fibers[warp_base + other];
                if (f.state == FiberState::done) continue;
                if (f.state != FiberState::at_warp) {
                    complete = false;
                    continue;
                }
                if (f.op != first.op || f.mask != first.mask) {
                    fail_block(w, fmt::format("threads {} and {} of one warp wait at different warp collectives: "
                                              "{}(mask 0x{:08x}) and {}(mask 0x{:08x})",
                                              thread_name(first), thread_name(f), warp_op_name(first.op),
                                              first.mask, warp_op_name(f.op), f.mask));
                }
                group[other] = warp_base + other;
            }
            if (complete) {
                complete_collective(w.fibers, group, first.op);
                released = true;
            }
        }
    }
    return released;
}

// Releases __syncthreads once every live thread waits at it. Returns whether it did.
bool release_barrier(Worker& w) {
    int waiting = 0, count = 0;
    for (const Fiber& f : w.fibers) {
        if (f.state == FiberState::done) continue;
        if (f.state != FiberState::at_barrier) return false;
        ++waiting;
        count += f.predicate != 0;
    }
    if (waiting == 0) return false;
    for (Fiber& f : w.fibers) {
        if (f.state != FiberState::at_barrier) continue;
        switch (f.reduce) {
            case BarrierReduce::none: f.result = 0; break;
            case BarrierReduce::count: f.result = static_cast<uint64_t>(count); break;
            case BarrierReduce::all: f.result = count == waiting; break;
            case BarrierReduce::any: f.result = count > 0; break;
        }
        f.state = FiberState::ready;
    }
    return true;
}

[[noreturn]] void report_deadlock(const Worker& w) {
    int at_barrier = 0;
    std::string first_barrier, warp_waits;
    int listed = 0;
    for (const Fiber& f : w.fibers) {
        if (f.state == FiberState::at_barrier) {
            if (at_barrier++ == 0) first_barrier = thread_name(f);
        } else if (f.state == FiberState::at_warp && listed < 4) {
            warp_waits += fmt::format("{}thread {} at {}(mask 0x{:08x})", listed++ ? ", " : "", thread_name(f),
                                      warp_op_name(f.op), f.mask);
        }
    }
    std::string what = "deadlock: no thread can go on";
    if (at_barrier > 0) what += fmt::format("; {} threads (first {}) wait at __syncthreads", at_barrier, first_barrier);
    if (!warp_waits.empty()) what += "; waiting at warp collectives: " + warp_waits;
    what += " (a barrier or collective that not every thread reaches, or a mask naming a lane that never joins)";
    fail_block(w, what);
}

// ---- running blocks -------------------------------------------------------------------------------------

void order_fibers(Worker& w, std::mt19937_64& rng, FiberOrder order) {
    w.order.clear();
    for (unsigned i = 0; i < w.fibers.size(); ++i) {
        const FiberState s = w.fibers[i].state;
        if (s == FiberState::not_started || s == FiberState::ready) w.order.push_back(i);
    }
    if (order == FiberOrder::reverse) std::reverse(w.order.begin(), w.order.end());
    if (order == FiberOrder::random) std::shuffle(w.order.begin(), w.order.end(), rng);
}

void abandon_fibers(Worker& w) {
    for (Fiber& f : w.fibers) {
        w.stacks.release(f.stack);  // suspended frames hold nothing that needs unwinding in kernel code
        f.stack = {};
        f.state = FiberState::done;
    }
}

void run_block(Worker& w, const Job& job, uint64_t linear_block, const Settings& s) {
    const dim3 g = job.grid, b = job.block;
    w.block.block_idx = uint3{static_cast<unsigned>(linear_block % g.x), static_cast<unsigned>(linear_block / g.x % g.y),
                              static_cast<unsigned>(linear_block / (uint64_t{g.x} * g.y))};
    if (job.dynamic_shared_bytes > 0) std::memset(w.dynamic_shared.get(), 0xff, job.dynamic_shared_bytes);
    unsigned index = 0;
    for (unsigned z = 0; z < b.z; ++z)
        for (unsigned y = 0; y < b.y; ++y)
            for (unsigned x = 0; x < b.x; ++x) {
                Fiber& f = w.fibers[index++];
                f = Fiber{};
                f.thread.thread_idx = uint3{x, y, z};
            }
    std::mt19937_64 rng(s.random_seed ^ (job.launch_index * 0x9e3779b97f4a7c15ull) ^ (linear_block << 20));
    current_block = &w.block;
    try {
        for (;;) {
            order_fibers(w, rng, s.fiber_order);
            for (unsigned i : w.order) {
                resume(w, w.fibers[i]);
                if (w.kernel_exception) break;
            }
            if (w.kernel_exception) {
                std::exception_ptr e = std::exchange(w.kernel_exception, nullptr);
                try {
                    std::rethrow_exception(e);
                } catch (const BlockFailure&) {
                    throw;  // raised by a collective on the fiber's stack (a bad mask, say)
                } catch (const std::exception& ex) {
                    fail_block(w, std::string("kernel code threw: ") + ex.what());
                } catch (...) {
                    fail_block(w, "kernel code threw an exception that is not a std::exception");
                }
            }
            const bool finished = std::all_of(w.fibers.begin(), w.fibers.end(),
                                              [](const Fiber& f) { return f.state == FiberState::done; });
            if (finished) break;
            if (!release_warp_collectives(w) && !release_barrier(w)) report_deadlock(w);
        }
    } catch (...) {
        abandon_fibers(w);
        current_block = nullptr;
        throw;
    }
    current_block = nullptr;
}

void run_blocks(Job& job, const Settings& s) {
    Worker& w = worker_for_this_thread(s.fiber_stack_bytes);
    w.job = &job;
    w.block.block_dim = job.block;
    w.block.grid_dim = job.grid;
    w.fibers.assign(uint64_t{job.block.x} * job.block.y * job.block.z, Fiber{});
    // Exactly the launch's size, so AddressSanitizer reports any access past it.
    w.dynamic_shared.reset(job.dynamic_shared_bytes > 0 ? new unsigned char[job.dynamic_shared_bytes] : nullptr);
    w.block.dynamic_shared = w.dynamic_shared.get();
    for (;;) {
        const uint64_t block = job.next_block.fetch_add(1);
        if (block >= job.total_blocks || job.failed.load()) break;
        try {
            run_block(w, job, block, s);
        } catch (const BlockFailure& failure) {
            job.fail(failure.code, failure.detail);
        } catch (const std::exception& e) {  // the emulator itself failed (no memory for a stack, say)
            job.fail(cudaErrorLaunchFailure, e.what());
        }
    }
    w.dynamic_shared.reset();
    w.job = nullptr;
}

// Worker threads besides the launching thread, which runs blocks too (so one worker means no extra thread).
class WorkerPool {
public:
    ~WorkerPool() { stop(); }

    void run(Job& job, const Settings& s) {
        ensure_helpers(s.worker_threads - 1);
        {
            std::lock_guard<std::mutex> lock(mutex_);
            job_ = &job;
            settings_ = s;
            busy_ = static_cast<int>(helpers_.size());
            ++generation_;
        }
        work_ready_.notify_all();
        run_blocks(job, s);
        std::unique_lock<std::mutex> lock(mutex_);
        work_done_.wait(lock, [this] { return busy_ == 0; });
        job_ = nullptr;
    }

    void stop() {
        {
            std::lock_guard<std::mutex> lock(mutex_);
            stopping_ = true;
        }
        work_ready_.notify_all();
        for (std::thread& t : helpers_) t.join();
        helpers_.clear();
        stopping_ = false;
    }

private:
    void ensure_helpers(int count) {
        if (static_cast<int>(helpers_.size()) == count) return;
        stop();
        // A helper starts from the generation current now, so the next job is new to it even if the job
        // is posted before the thread first looks.
        const uint64_t start = generation_;
        for (int i = 0; i < count; ++i) helpers_.emplace_back([this, start] { helper_loop(start); });
    }

    void helper_loop(uint64_t seen) {
        for (;;) {
            Job* job;
            Settings s;
            {
                std::unique_lock<std::mutex> lock(mutex_);
                work_ready_.wait(lock, [&] { return stopping_ || generation_ != seen; });
                if (stopping_) return;
                seen = generation_;
                job = job_;
                s = settings_;
            }
            run_blocks(*job, s);
            std::lock_guard<std::mutex> lock(mutex_);
            if (--busy_ == 0) work_done_.notify_all();
        }
    }

    std::mutex mutex_;
    std::condition_variable work_ready_, work_done_;
    std::vector<std::thread> helpers_;
    Job* job_ = nullptr;
    Settings settings_{};
    uint64_t generation_ = 0;
    int busy_ = 0;
    bool stopping_ = false;
};

std::mutex launch_mutex;  // launches from several host threads run one after another, as on one stream
uint64_t launches = 0;

WorkerPool& pool() {
    static WorkerPool instance;
    return instance;
}

std::mutex attributes_mutex;
std::map<const void*, int> max_dynamic_shared;

const char* check_configuration(dim3 grid, dim3 block) {
    if (block.x == 0 || block.y == 0 || block.z == 0) return "a block dimension is 0";
    if (block.x > kMaxBlockDimXY || block.y > kMaxBlockDimXY) return "blockDim.x and .y may be at most 1024";
    if (block.z > kMaxBlockDimZ) return "blockDim.z may be at most 64";
    if (uint64_t{block.x} * block.y * block.z > kMaxThreadsPerBlock) return "a block may have at most 1024 threads";
    if (grid.x == 0 || grid.y == 0 || grid.z == 0) return "a grid dimension is 0";
    if (grid.x > kMaxGridDimX) return "gridDim.x may be at most 2^31-1";
    if (grid.y > kMaxGridDimYZ || grid.z > kMaxGridDimYZ) return "gridDim.y and .z may be at most 65535";
    return nullptr;
}

}  // namespace

// ---- what kernel code calls (emu.hpp) -----------------------------------------------------------------

int block_barrier(BarrierReduce reduce, int predicate) {
    Worker& w = running_worker();
    Fiber& f = *w.running;
    f.state = FiberState::at_barrier;
    f.reduce = reduce;
    f.predicate = predicate;
    yield_to_scheduler(w);
    return static_cast<int>(f.result);
}

uint64_t warp_collective(WarpOp op, unsigned mask, uint64_t value, int lane_arg, int width) {
    Worker& w = running_worker();
    Fiber& f = *w.running;
    const unsigned lane = static_cast<unsigned>(&f - w.fibers.data()) % 32;
    if (!(mask >> lane & 1u)) {
        fail_block(w, fmt::format("thread {} calls {} with mask 0x{:08x}, which does not name its own lane {}",
                                  thread_name(f), warp_op_name(op), mask, lane));
    }
    if (width < 1 || width > 32 || (width & (width - 1)) != 0) {
        fail_block(w, fmt::format("thread {} calls {} with width {}; it must be a power of two up to 32",
                                  thread_name(f), warp_op_name(op), width));
    }
    f.state = FiberState::at_warp;
    f.op = op;
    f.mask = mask;
    f.value = value;
    f.lane_arg = lane_arg;
    f.width = width;
    yield_to_scheduler(w);
    return f.result;
}

unsigned active_lane_mask() {
    // Lanes that have not finished. (On a GPU it is the converged subset; code may only rely on its own bit.)
    Worker& w = running_worker();
    const unsigned index = static_cast<unsigned>(w.running - w.fibers.data());
    const unsigned base = index / 32 * 32;
    unsigned mask = 0;
    for (unsigned lane = 0; lane < 32 && base + lane < w.fibers.size(); ++lane) {
        if (w.fibers[base + lane].state != FiberState::done) mask |= 1u << lane;
    }
    return mask;
}

// ---- host side ------------------------------------------------------------------------------------

Settings settings() {
    std::lock_guard<std::mutex> lock(settings_mutex);
    if (!settings_loaded) {
        current_settings = settings_from_environment();
        settings_loaded = true;
    }
    return current_settings;
}

void set_settings(const Settings& s) {
    std::lock_guard<std::mutex> lock(settings_mutex);
    current_settings = s;
    current_settings.worker_threads = std::max(1, s.worker_threads);
    settings_loaded = true;
}

const char* fiber_order_name(FiberOrder order) {
    switch (order) {
        case FiberOrder::forward: return "forward";
        case FiberOrder::reverse: return "reverse";
        case FiberOrder::random: return "random";
    }
    return "?";
}

std::string last_launch_error_detail() { return last_error_detail; }

std::string kernel_name(const void* kernel) {
    // Kernels with external linkage in a program linked with -rdynamic (CMake's ENABLE_EXPORTS) have names.
    Dl_info info{};
    if (dladdr(kernel, &info) != 0 && info.dli_sname != nullptr && info.dli_saddr == kernel) {
        int status = 0;
        std::unique_ptr<char, void (*)(void*)> demangled(
            abi::__cxa_demangle(info.dli_sname, nullptr, nullptr, &status), std::free);
        return status == 0 ? demangled.get() : info.dli_sname;
    }
    return fmt::format("at {}", kernel);
}

int max_dynamic_shared_bytes(const void* kernel) {
    std::lock_guard<std::mutex> lock(attributes_mutex);
    const auto it = max_dynamic_shared.find(kernel);
    return it == max_dynamic_shared.end() ? kDefaultMaxDynamicShared : it->second;
}

void set_max_dynamic_shared_bytes(const void* kernel, int bytes) {
    std::lock_guard<std::mutex> lock(attributes_mutex);
    max_dynamic_shared[kernel] = bytes;
}

cudaError_t check_launch(const void* kernel, dim3 grid, dim3 block, size_t dynamic_shared_bytes) {
    last_error_detail.clear();
    if (current_thread != nullptr) {  // called from kernel code, on a fiber
        last_error_detail = "a kernel launched another kernel; the emulator has no dynamic parallelism";
        return cudaErrorNotSupported;
    }
    if (const char* problem = check_configuration(grid, block)) {
        last_error_detail = problem;
        // CUDA 13 (driver 580, seen on an H200 on 2026-11-26) answers a bad grid or block with
        // cudaErrorInvalidValue; older releases said cudaErrorInvalidConfiguration.
        return cudaErrorInvalidValue;
    }
    const int shared_limit = max_dynamic_shared_bytes(kernel);
    if (dynamic_shared_bytes > static_cast<size_t>(shared_limit)) {
        last_error_detail = fmt::format(
            "{} bytes of dynamic shared memory requested, the kernel may use {} (raise it with "
            "cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, bytes), up to {})",
            dynamic_shared_bytes, shared_limit, kMaxOptInSharedBytes);
        return cudaErrorInvalidValue;
    }
    return cudaSuccess;
}

cudaError_t launch_kernel(const KernelBody& body, dim3 grid, dim3 block, size_t dynamic_shared_bytes,
                          cudaStream_t /*stream: the emulator runs every launch to completion, in order*/) {
    if (const cudaError_t error = check_launch(body.kernel, grid, block, dynamic_shared_bytes); error != cudaSuccess) {
        return error;
    }
    std::lock_guard<std::mutex> lock(launch_mutex);
    Job job;
    job.body = &body;
    job.grid = grid;
    job.block = block;
    job.dynamic_shared_bytes = dynamic_shared_bytes;
    job.launch_index = launches++;
    job.total_blocks = uint64_t{grid.x} * grid.y * grid.z;
    pool().run(job, settings());
    if (job.failed) {
        last_error_detail = job.error_detail;
        return job.error;
    }
    return cudaSuccess;
}

}  // namespace cudacnn::emu
