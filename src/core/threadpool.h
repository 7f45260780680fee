// A fixed pool of worker threads that runs one parallel-for at a time; the calling thread takes part, so a pool
// of n threads starts n-1 workers. Kernels split work by index ranges: fn(thread_index, n_threads).
#pragma once
#include <functional>
#include <memory>

namespace spider {

class thread_pool {
public:
    explicit thread_pool(int n_threads);
    ~thread_pool();
    thread_pool(const thread_pool &) = delete;
    thread_pool & operator=(const thread_pool &) = delete;

    int size() const;
    // Runs fn(i, size()) for i in [0, size()) and returns when all are done. Not reentrant.
    void run(const std::function<void(int ith, int nth)> & fn);
    // Runs fn(0, size()) on the calling thread and fn(i, size()) on each worker that starts before that call
    // returns; waits only for those. For work that threads pull from a shared queue (any subset of the calls
    // finishes it): a worker that a busy machine has not scheduled yet does not hold the caller up. Not reentrant.
    void run_any(const std::function<void(int ith, int nth)> & fn);

private:
    struct impl;
    std::unique_ptr<impl> p_;
};

// Helper: the [begin, end) share of n items for worker ith of nth.
inline void split_range(long long n, int ith, int nth, long long & begin, long long & end) {
    long long per = (n + nth - 1) / nth;
    begin = per * ith;
    if (begin > n) begin = n;
    end = begin + per;
    if (end > n) end = n;
}

}  // namespace spider
