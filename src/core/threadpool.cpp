// thread_pool: persistent workers with a spin-then-sleep handoff. Decode calls run() ~100 times per token with
// only microseconds between calls, so a worker first spins on the run state (cheap wake-up, no syscall) and only
// falls back to a condition variable after ~100 us without work, so an idle pool costs no CPU.
//
// The run state is one 64-bit word: generation (bits 17..), closed flag (bit 16), number of workers that joined
// this generation (bits 0..15). A worker joins by a compare-and-swap that also checks the generation is open, and
// takes thread index joined + 1. run() waits for every worker; run_any() closes the generation when the caller has
// finished its own call and then waits only for the workers that joined before that, so a worker that a busy
// machine has not scheduled yet never holds the caller up (its work was taken by the others from their queue).
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

constexpr uint64_t JOINED_MASK = 0xFFFF;
constexpr uint64_t CLOSED = uint64_t(1) << 16;
constexpr int GEN_SHIFT = 17;

}  // namespace

struct thread_pool::impl {
    int n_threads = 1;
    std::vector<std::thread> workers;

    // Work handoff: run() publishes fn, then starts a new generation in `state`.
    std::atomic<uint64_t> state{0};
    const std::function<void(int, int)> * fn = nullptr;
    bool stop = false;  // written before a generation starts, read after seeing it
    std::mutex wake_m;
    std::condition_variable wake_cv;

    // Completion: joined workers count up `done`; the one that reaches `done_target` wakes the caller if it went
    // to sleep (done_target is set before the wait, -1 while the caller still runs its own share).
    std::atomic<int> done{0};
    std::atomic<int> done_target{-1};
    std::mutex done_m;
    std::condition_variable done_cv;

    static uint64_t gen_of(uint64_t s) { return s >> GEN_SHIFT; }

    void worker_loop() {
        uint64_t seen = 0;
        for (;;) {
            auto fresh = [&] { return gen_of(state.load(std::memory_order_acquire)) != seen; };
            if (!spin_until(fresh)) {
                std::unique_lock<std::mutex> lk(wake_m);
                wake_cv.wait(lk, fresh);
            }
            uint64_t s = state.load(std::memory_order_acquire);
            seen = gen_of(s);
            if (stop) return;
            // Join this generation unless the caller has closed it (run_any finished without us).
            bool joined = false;
            while (!(s & CLOSED) && gen_of(s) == seen) {
                if (state.compare_exchange_weak(s, s + 1, std::memory_order_acq_rel, std::memory_order_acquire)) {
                    joined = true;
                    break;
                }
            }
            if (!joined) continue;
            const int ith = static_cast<int>(s & JOINED_MASK) + 1;
            (*fn)(ith, n_threads);
            // seq_cst here and on the caller's side (store target, then load done): at least one of the two sees
            // the other's write, so either the caller sees the count or this worker sees the target and notifies.
            const int d = done.fetch_add(1, std::memory_order_seq_cst) + 1;
            if (d == done_target.load(std::memory_order_seq_cst)) {
                // Taking the lock orders this notify after the caller's predicate check, so no wake-up is lost.
                { std::lock_guard<std::mutex> lk(done_m); }
                done_cv.notify_one();
            }
        }
    }

    void publish() {
        {
            // The new generation starts under wake_m so a worker between its predicate check and wait() cannot
            // miss it.
            std::lock_guard<std::mutex> lk(wake_m);
            const uint64_t g = gen_of(state.load(std::memory_order_relaxed)) + 1;
            state.store(g << GEN_SHIFT, std::memory_order_release);
        }
        wake_cv.notify_all();
    }

    void run(const std::function<void(int, int)> & f, bool any) {
        if (n_threads == 1) {
            f(0, 1);
            return;
        }
        fn = &f;
        done.store(0, std::memory_order_relaxed);
        done_target.store(-1, std::memory_order_relaxed);
        publish();
        f(0, n_threads);
        int target = n_threads - 1;
        if (any) {
            const uint64_t s = state.fetch_or(CLOSED, std::memory_order_acq_rel);
            target = static_cast<int>(s & JOINED_MASK);
        }
        done_target.store(target, std::memory_order_seq_cst);
        auto finished = [&] { return done.load(std::memory_order_seq_cst) == target; };
        if (!spin_until(finished)) {
            std::unique_lock<std::mutex> lk(done_m);
            done_cv.wait(lk, finished);
        }
    }
};

thread_pool::thread_pool(int n_threads) : p_(new impl) {
    p_->n_threads = n_threads < 1 ? 1 : n_threads;
    if (p_->n_threads > static_cast<int>(JOINED_MASK)) p_->n_threads = static_cast<int>(JOINED_MASK);
    p_->workers.reserve(p_->n_threads - 1);
    for (int i = 1; i < p_->n_threads; ++i) p_->workers.emplace_back([this] { p_->worker_loop(); });
}

thread_pool::~thread_pool() {
    p_->stop = true;
    p_->publish();
    for (auto & t : p_->workers) t.join();
}

int thread_pool::size() const {
    return p_->n_threads;
}

void thread_pool::run(const std::function<void(int ith, int nth)> & fn) {
    p_->run(fn, false);
}

void thread_pool::run_any(const std::function<void(int ith, int nth)> & fn) {
    p_->run(fn, true);
}

}  // namespace spider
