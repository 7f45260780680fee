// Wall time per named section of the forward pass, for `spider bench --profile`: where a decode step's time goes
// and, for the matmul sections, at what rate they stream their weights (the output matrix's rate is the in-run
// measure of the machine's bandwidth for the layers' matmuls, docs/BENCHMARKS.md section 3).
// Off by default: a disabled mark is one branch. The architecture hooks call mark() after each step; the time
// since the previous mark (or begin()) goes to that step's section. Single-threaded: marks come from the thread
// that runs the forward pass.
#pragma once
#include <chrono>
#include <cstdint>
#include <cstring>
#include <vector>

namespace spider {

struct llm_profile_section {
    const char * name = nullptr;  // a string literal (the table keeps the pointer)
    double ns = 0;
    int64_t calls = 0;
    uint64_t bytes = 0;  // weight bytes read by the section (matmuls), summed over calls
};

class llm_profile {
public:
    // Starts collecting (clears what was collected) or stops.
    void enable(bool on) {
        on_ = on;
        sections_.clear();
        n_tokens_ = 0;
    }
    // At the start of a ubatch's forward pass.
    void begin(int64_t n_tokens) {
        if (!on_) return;
        n_tokens_ += n_tokens;
        last_ = std::chrono::steady_clock::now();
    }
    // The step that just ended: the time since the previous mark goes to section `name`.
    void mark(const char * name, uint64_t weight_bytes = 0) {
        if (!on_) return;
        const auto now = std::chrono::steady_clock::now();
        llm_profile_section & s = find(name);
        s.ns += std::chrono::duration<double, std::nano>(now - last_).count();
        s.calls += 1;
        s.bytes += weight_bytes;
        last_ = now;
    }
    // Sections in the order they were first seen.
    const std::vector<llm_profile_section> & sections() const { return sections_; }
    // Tokens that went through the forward pass while enabled.
    int64_t n_tokens() const { return n_tokens_; }

private:
    llm_profile_section & find(const char * name) {
        for (llm_profile_section & s : sections_) {
            if (s.name == name || std::strcmp(s.name, name) == 0) return s;
        }
        sections_.push_back({name, 0, 0, 0});
        return sections_.back();
    }

    bool on_ = false;
    int64_t n_tokens_ = 0;
    std::chrono::steady_clock::time_point last_;
    std::vector<llm_profile_section> sections_;
};

}  // namespace spider
