#include "core/huge_buffer.h"

#include <sys/mman.h>

#include <utility>

namespace spider {

namespace {
constexpr size_t HUGE_PAGE = size_t(2) << 20;
}

huge_buffer::huge_buffer(size_t bytes) {
    if (bytes == 0) return;
    const size_t size = (bytes + HUGE_PAGE - 1) / HUGE_PAGE * HUGE_PAGE;
    // Over-map by one huge page so the buffer can start on a 2 MiB boundary (THP maps only aligned ranges).
    void * raw = mmap(nullptr, size + HUGE_PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (raw == MAP_FAILED) return;
    const uintptr_t start = reinterpret_cast<uintptr_t>(raw);
    const uintptr_t aligned = (start + HUGE_PAGE - 1) / HUGE_PAGE * HUGE_PAGE;
    if (aligned > start) munmap(raw, aligned - start);
    const size_t tail = (start + size + HUGE_PAGE) - (aligned + size);
    if (tail > 0) munmap(reinterpret_cast<void *>(aligned + size), tail);
    data_ = reinterpret_cast<uint8_t *>(aligned);
    size_ = size;
#ifdef MADV_HUGEPAGE
    madvise(data_, size_, MADV_HUGEPAGE);
#endif
}

huge_buffer::~huge_buffer() {
    if (data_) munmap(data_, size_);
}

huge_buffer::huge_buffer(huge_buffer && o) noexcept
    : data_(std::exchange(o.data_, nullptr)), size_(std::exchange(o.size_, 0)) {}

huge_buffer & huge_buffer::operator=(huge_buffer && o) noexcept {
    if (this != &o) {
        if (data_) munmap(data_, size_);
        data_ = std::exchange(o.data_, nullptr);
        size_ = std::exchange(o.size_, 0);
    }
    return *this;
}

}  // namespace spider
