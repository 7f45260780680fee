// A large, read-mostly host buffer backed by anonymous memory and advised for transparent huge pages, for weights
// that inference streams once per token (the packed matmul copies, llm_model::pack_weights).
//
// Why: decode reads every weight byte once per token, and with 4 KiB pages each page is a TLB miss and a point
// where the hardware prefetcher stops. Measured on the 2-core Xeon (AVX-512, 2026-12-05; a Q4_0 packed decode
// loop over 600 MB, 1 thread): 8.7 GB/s on 4 KiB pages, 11.1 GB/s on huge pages, against a plain read of 14.4.
// The advice is only advice: where THP is off the buffer is ordinary memory and everything still works.
#pragma once
#include <cstddef>
#include <cstdint>

namespace spider {

class huge_buffer {
public:
    huge_buffer() = default;
    // Maps `bytes` (rounded up to 2 MiB) of zeroed memory; data() is nullptr when the mapping fails.
    explicit huge_buffer(size_t bytes);
    ~huge_buffer();
    huge_buffer(huge_buffer && o) noexcept;
    huge_buffer & operator=(huge_buffer && o) noexcept;
    huge_buffer(const huge_buffer &) = delete;
    huge_buffer & operator=(const huge_buffer &) = delete;

    uint8_t * data() const { return data_; }
    size_t size() const { return size_; }

private:
    uint8_t * data_ = nullptr;
    size_t size_ = 0;
};

}  // namespace spider
