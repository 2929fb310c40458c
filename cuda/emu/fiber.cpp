// Fibers for the emulator: guarded mmap'ed stacks, fcontext switches and AddressSanitizer annotations.
#include "cuda/emu/fiber.hpp"

#include <sys/mman.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <new>
#include <stdexcept>
#include <string>

#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/asan_interface.h>
#include <sanitizer/common_interface_defs.h>
#define CUDACNN_EMU_ASAN 1
#endif

namespace cudacnn::emu {

namespace ctx = boost::context::detail;

namespace {

size_t page_size() {
    static const size_t size = static_cast<size_t>(sysconf(_SC_PAGESIZE));
    return size;
}

FiberStack map_stack(size_t bytes) {
    const size_t guard = page_size();
    const size_t usable = (bytes + guard - 1) / guard * guard;
    void* mapping = mmap(nullptr, usable + guard, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE,
                         -1, 0);
    if (mapping == MAP_FAILED) {
        throw std::runtime_error("emulator: cannot map a fiber stack of " + std::to_string(usable) +
                                 " bytes: " + std::strerror(errno) + "; lower CUDACNN_EMU_STACK_KB");
    }
    mprotect(mapping, guard, PROT_NONE);
    return FiberStack{static_cast<char*>(mapping) + guard, usable};
}

}  // namespace

StackPool::~StackPool() {
    for (const FiberStack& stack : free_) {
        munmap(static_cast<char*>(stack.base) - page_size(), stack.size + page_size());
    }
}

FiberStack StackPool::acquire() {
    if (free_.empty()) return map_stack(stack_bytes_);
    FiberStack stack = free_.back();
    free_.pop_back();
#ifdef CUDACNN_EMU_ASAN
    // A fiber that ended (or was abandoned) never unwound its frames; clear their redzones before reuse.
    __asan_unpoison_memory_region(stack.base, stack.size);
#endif
    return stack;
}

void StackPool::release(FiberStack stack) {
    if (stack.base != nullptr) free_.push_back(stack);
}

FiberContext make_fiber_context(const FiberStack& stack, void (*entry)(FiberTransfer)) {
    void* top = static_cast<char*>(stack.base) + stack.size;
    return ctx::make_fcontext(top, stack.size, entry);
}

FiberTransfer switch_fiber(FiberContext to, void* data) {
    return ctx::jump_fcontext(to, data);
}

void sanitizer_start_switch(void** fake_stack_save, const void* bottom, size_t size) {
#ifdef CUDACNN_EMU_ASAN
    __sanitizer_start_switch_fiber(fake_stack_save, bottom, size);
#else
    (void)fake_stack_save, (void)bottom, (void)size;
#endif
}

void sanitizer_finish_switch(void* fake_stack_save, const void** old_bottom, size_t* old_size) {
#ifdef CUDACNN_EMU_ASAN
    __sanitizer_finish_switch_fiber(fake_stack_save, old_bottom, old_size);
#else
    (void)fake_stack_save, (void)old_bottom, (void)old_size;
#endif
}

}  // namespace cudacnn::emu
