// Fibers for the emulator: guarded stacks and a context switch (Boost.Context's fcontext, about 14 ns),
// with the AddressSanitizer annotations that let sanitizer builds follow execution across stacks.
#pragma once

#include <boost/context/detail/fcontext.hpp>
#include <cstddef>
#include <vector>

namespace cudacnn::emu {

// An mmap'ed stack whose lowest page is inaccessible, so an overflow faults instead of corrupting memory.
struct FiberStack {
    void* base = nullptr;  // lowest usable address
    size_t size = 0;
};

// Stacks are expensive to map and cheap to reuse: a worker keeps the ones its finished fibers gave back.
class StackPool {
public:
    explicit StackPool(size_t stack_bytes) : stack_bytes_(stack_bytes) {}
    StackPool(const StackPool&) = delete;
    StackPool& operator=(const StackPool&) = delete;
    ~StackPool();

    FiberStack acquire();
    void release(FiberStack stack);
    size_t stack_bytes() const { return stack_bytes_; }

private:
    size_t stack_bytes_;
    std::vector<FiberStack> free_;
};

using FiberContext = boost::context::detail::fcontext_t;

// What a switch delivers to the side that resumes: .fctx, the context that switched away, and .data.
using FiberTransfer = boost::context::detail::transfer_t;

// A fresh context that will call entry(transfer) on the given stack when first switched to.
// entry must never return: it ends by switching away for the last time.
FiberContext make_fiber_context(const FiberStack& stack, void (*entry)(FiberTransfer));

// Suspends the caller and resumes `to`, handing it `data`.
FiberTransfer switch_fiber(FiberContext to, void* data);

// AddressSanitizer's fiber annotations (no-ops in other builds). Call start before every switch, with the
// stack being switched to (a null fake_stack_save when the current fiber will never run again), and finish
// right after control arrives on a stack.
void sanitizer_start_switch(void** fake_stack_save, const void* bottom, size_t size);
void sanitizer_finish_switch(void* fake_stack_save, const void** old_bottom, size_t* old_size);

}  // namespace cudacnn::emu
