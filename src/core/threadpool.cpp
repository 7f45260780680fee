// thread_pool: persistent workers with a spin-then-sleep handoff. Decode calls run() ~100 times per token with
// only microseconds between calls, so a worker first spins on a generation counter (cheap wake-up, no syscall)
// and only falls back to a condition variable after ~100 us without work, so an idle pool costs no CPU.
#include "core/threadpool.h"

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <thread>
#include <vector>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#endif

namespace spider {

namespace {

inline void cpu_relax() {
#if defined(__x86_64__) || defined(__i386__)
    _mm_pause();
#else
    std::this_thread::yield();
#endif
}

// How long a thread spins before it blocks. Long enough to cover the gap between two matmuls of one decode step,
// short enough that an idle pool does not steal a core from others on a shared machine.
constexpr auto SPIN_TIME = std::chrono::microseconds(100);

// Spins until pred() is true or SPIN_TIME has passed; returns pred().
template <typename Pred>
bool spin_until(Pred pred) {
    if (pred()) return true;
    const auto t0 = std::chrono::steady_clock::now();
    for (;;) {
        for (int i = 0; i < 64; ++i) {
            if (pred()) return true;
            cpu_relax();
        }
        if (std::chrono::steady_clock::now() - t0 > SPIN_TIME) return pred();
    }
}

}  // namespace

struct thread_pool::impl {
    int n_threads = 1;
    std::vector<std::thread> workers;

    // Work handoff: run() publishes fn, then bumps gen; a worker that sees a new gen runs fn once.
    std::atomic<uint64_t> gen{0};
    const std::function<void(int, int)>* fn = nullptr;
    bool stop = false;  // written before a gen bump, read after seeing it
    std::mutex wake_m;
    std::condition_variable wake_cv;

    // Completion: workers decrement pending; the last one wakes run() if it went to sleep.
    std::atomic<int> pending{0};
    std::mutex done_m;
    std::condition_variable done_cv;

    void worker_loop(int ith) {
        uint64_t seen = 0;
        for (;;) {
            if (!spin_until([&] { return gen.load(std::memory_order_acquire) != seen; })) {
                std::unique_lock<std::mutex> lk(wake_m);
                wake_cv.wait(lk, [&] { return gen.load(std::memory_order_acquire) != seen; });
            }
            seen = gen.load(std::memory_order_acquire);
            if (stop) return;
            (*fn)(ith, n_threads);
            if (pending.fetch_sub(1, std::memory_order_acq_rel) == 1) {
                // Taking the lock orders this notify after run()'s predicate check, so no wake-up is lost.
                { std::lock_guard<std::mutex> lk(done_m); }
                done_cv.notify_one();
            }
        }
    }

    void publish() {
        {
            // The bump happens under wake_m so a worker between its predicate check and wait() cannot miss it.
            std::lock_guard<std::mutex> lk(wake_m);
            gen.fetch_add(1, std::memory_order_acq_rel);
        }
        wake_cv.notify_all();
    }
};

thread_pool::thread_pool(int n_threads) : p_(new impl) {
    p_->n_threads = n_threads < 1 ? 1 : n_threads;
    p_->workers.reserve(p_->n_threads - 1);
    for (int i = 1; i < p_->n_threads; ++i) p_->workers.emplace_back([this, i] { p_->worker_loop(i); });
}

thread_pool::~thread_pool() {
    p_->stop = true;
    p_->publish();
    for (auto& t : p_->workers) t.join();
}

int thread_pool::size() const {
    return p_->n_threads;
}

void thread_pool::run(const std::function<void(int ith, int nth)>& fn) {
    impl& s = *p_;
    if (s.n_threads == 1) {
        fn(0, 1);
        return;
    }
    s.fn = &fn;
    s.pending.store(s.n_threads - 1, std::memory_order_relaxed);
    s.publish();
    fn(0, s.n_threads);
    if (!spin_until([&] { return s.pending.load(std::memory_order_acquire) == 0; })) {
        std::unique_lock<std::mutex> lk(s.done_m);
        s.done_cv.wait(lk, [&] { return s.pending.load(std::memory_order_acquire) == 0; });
    }
}

}  // namespace spider
