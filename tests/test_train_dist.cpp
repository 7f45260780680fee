// Data-parallel pieces of training (train/comm.h, train/autograd_dist.h): gather_rows against finite differences
// with the one-rank communicator, and N simulated ranks whose summed losses and gradients must equal one process's
// (the contract of autograd_dist.h) for a contrastive loss over the global micro-batch.
#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <stdexcept>
#include <string>
#include <vector>

#include "train/autograd_dist.h"
#include "train/losses.h"

#include "grad_check.h"

using namespace spider::train;

namespace {

// Rank `r` of an n-rank run simulated inside one process, the ranks run one after another: the other ranks' payloads
// of every allgatherv call are scripted up front ([call][rank]); this rank's own slot is what it passes, and must
// match the script (the script is built from the same numbers).
class scripted_comm : public comm {
public:
    scripted_comm(int r, int n, std::vector<std::vector<std::vector<int64_t>>> ints,
                  std::vector<std::vector<std::vector<float>>> floats)
        : r_(r), n_(n), ints_(std::move(ints)), floats_(std::move(floats)) {}
    int rank() const override { return r_; }
    int size() const override { return n_; }
    void allreduce_sum(float *, size_t) override { FAIL() << "not used"; }
    void allreduce_sum(double *, size_t) override { FAIL() << "not used"; }
    void allgatherv(const float * data, size_t n, std::vector<float> * out, std::vector<size_t> * counts) override {
        play(floats_.at(next_float_++), data, n, out, counts);
    }
    void allgatherv(const int64_t * data, size_t n, std::vector<int64_t> * out, std::vector<size_t> * counts) override {
        play(ints_.at(next_int_++), data, n, out, counts);
    }
    void barrier() override {}

private:
    template <typename T>
    void play(const std::vector<std::vector<T>> & call, const T * data, size_t n, std::vector<T> * out,
              std::vector<size_t> * counts) {
        ASSERT_EQ(call.size(), static_cast<size_t>(n_));
        EXPECT_EQ(std::vector<T>(data, data + n), call[static_cast<size_t>(r_)]) << "rank " << r_;
        out->clear();
        if (counts) counts->clear();
        for (const auto & part : call) {
            out->insert(out->end(), part.begin(), part.end());
            if (counts) counts->push_back(part.size());
        }
    }
    int r_, n_;
    std::vector<std::vector<std::vector<int64_t>>> ints_;
    std::vector<std::vector<std::vector<float>>> floats_;
    size_t next_int_ = 0, next_float_ = 0;
};

// A toy CLIP step: features x_k W (W trainable) against fixed targets t_k; per example an L2 penalty on the feature,
// and over the whole micro-batch InfoNCE with a learnable log scale, weighted by the number of pairs, as the stages.
struct toy {
    static constexpr int64_t d_in = 3, d = 4, G = 6;
    value W, log_scale;
    std::vector<std::vector<float>> x, t;

    toy() {
        std::mt19937 rng(7);
        W = parameter({d_in, d}, randv(d_in * d, rng));
        log_scale = parameter({1}, {1.3f});
        for (int64_t k = 0; k < G; ++k) {
            x.push_back(randv(d_in, rng));
            t.push_back(randv(d, rng));
        }
    }
    value feature(int64_t k) const { return matmul(constant({1, d_in}, x[k]), W); }
    // The micro-batch loss of one rank holding `examples` (the SUM convention of stage::loss).
    value loss(comm & c, const std::vector<int64_t> & examples) const {
        std::vector<value> rows, targets;
        value total;
        for (int64_t k : examples) {
            value f = feature(k);
            total = total ? add(total, scale(sum(mul(f, f)), 0.1f)) : scale(sum(mul(f, f)), 0.1f);
            rows.push_back(f);
            targets.push_back(constant({1, d}, t[k]));
        }
        value X = gather_rows(c, rows, examples, d), T = gather_rows(c, targets, examples, d);
        const float n = static_cast<float>(X->shape[0]);
        return add(total, scale(info_nce(X, T, log_scale), n / static_cast<float>(c.size())));
    }
    // The trainer's deal: rank r of n holds examples r, r + n, ...
    static std::vector<int64_t> examples_of(int r, int n) {
        std::vector<int64_t> e;
        for (int64_t k = r; k < G; k += n) e.push_back(k);
        return e;
    }
};

struct run_result {
    double loss = 0;
    std::vector<float> grad_w, grad_scale;
};

run_result one_process(toy & m) {
    m.W->zero_grad();
    m.log_scale->zero_grad();
    value L = m.loss(comm_single(), toy::examples_of(0, 1));
    backward(L);
    return {L->data[0], m.W->grad, m.log_scale->grad};
}

// n ranks one after another on the same parameters: their gradients accumulate, which is the loop's allreduce sum.
run_result n_ranks(toy & m, int n) {
    std::vector<std::vector<int64_t>> keys;
    std::vector<std::vector<float>> feats, targs;
    for (int q = 0; q < n; ++q) {
        keys.push_back(toy::examples_of(q, n));
        feats.emplace_back();
        targs.emplace_back();
        for (int64_t k : keys.back()) {
            const value f = m.feature(k);
            feats.back().insert(feats.back().end(), f->data.begin(), f->data.end());
            targs.back().insert(targs.back().end(), m.t[k].begin(), m.t[k].end());
        }
    }
    m.W->zero_grad();
    m.log_scale->zero_grad();
    run_result res;
    for (int r = 0; r < n; ++r) {
        scripted_comm c(r, n, {keys, keys}, {feats, targs});  // gather_rows: keys, then rows; features, then targets
        value L = m.loss(c, keys[static_cast<size_t>(r)]);
        backward(L);
        res.loss += L->data[0];
    }
    res.grad_w = m.W->grad;
    res.grad_scale = m.log_scale->grad;
    return res;
}

void expect_same(const std::vector<float> & got, const std::vector<float> & want, const std::string & what) {
    ASSERT_EQ(got.size(), want.size()) << what;
    for (size_t i = 0; i < got.size(); ++i)
        EXPECT_NEAR(got[i], want[i], 1e-5 + 1e-5 * std::fabs(want[i])) << what << " element " << i;
}

}  // namespace

TEST(train_dist, local_comm_allgatherv_is_a_copy) {
    const float f[3] = {1, 2, 3};
    const int64_t k[2] = {5, -1};
    std::vector<float> fo;
    std::vector<int64_t> ko;
    std::vector<size_t> counts;
    comm_single().allgatherv(f, 3, &fo, &counts);
    EXPECT_EQ(fo, std::vector<float>({1, 2, 3}));
    EXPECT_EQ(counts, std::vector<size_t>({3}));
    comm_single().allgatherv(k, 2, &ko, nullptr);
    EXPECT_EQ(ko, std::vector<int64_t>({5, -1}));
    comm_single().allgatherv(f, 0, &fo, &counts);
    EXPECT_TRUE(fo.empty());
    EXPECT_EQ(counts, std::vector<size_t>({0}));
}

TEST(train_dist, gather_rows_orders_by_key_and_matches_finite_differences) {
    std::mt19937 rng(3);
    value a = parameter({1, 3}, randv(3, rng)), b = parameter({1, 3}, randv(3, rng)),
          c = parameter({1, 3}, randv(3, rng));
    value g = gather_rows(comm_single(), {a, b, c}, {7, 2, 4}, 3);  // key order: b, c, a
    ASSERT_EQ(g->shape, std::vector<int64_t>({3, 3}));
    for (int j = 0; j < 3; ++j) {
        EXPECT_EQ(g->data[0 * 3 + j], b->data[j]);
        EXPECT_EQ(g->data[1 * 3 + j], c->data[j]);
        EXPECT_EQ(g->data[2 * 3 + j], a->data[j]);
    }
    value t = constant({3, 3}, randv(9, rng));
    value ls = parameter({1}, {2.0f});
    grad_check(
        "gather_rows", {a, b, c, ls},
        [&] {
            return info_nce(gather_rows(comm_single(), {a, b, c}, {7, 2, 4}, 3), t, ls);
        },
        1e-3f);
    grad_check(
        "gather_rows (rows)", {a, b, c},
        [&] {
            return gather_rows(comm_single(), {a, b, c}, {7, 2, 4}, 3);
        },
        1e-3f);
}

TEST(train_dist, gather_rows_errors_name_the_problem) {
    value a = parameter({1, 3}, {1, 2, 3}), b = parameter({1, 2}, {1, 2});
    try {
        gather_rows(comm_single(), {a, a}, {1, 1}, 3);
        FAIL() << "a duplicate key was accepted";
    } catch (const std::invalid_argument & e) {
        EXPECT_NE(std::string(e.what()).find("key 1 is held by two rows"), std::string::npos) << e.what();
    }
    try {
        gather_rows(comm_single(), {a, b}, {1, 2}, 3);
        FAIL() << "a row of the wrong width was accepted";
    } catch (const std::invalid_argument & e) {
        EXPECT_NE(std::string(e.what()).find("row 1 has shape [1, 2], expected 3 elements"), std::string::npos)
            << e.what();
    }
    EXPECT_THROW(gather_rows(comm_single(), {a}, {1, 2}, 3), std::invalid_argument);
    value empty = gather_rows(comm_single(), {}, {}, 3);  // a rank may hold no rows
    EXPECT_EQ(empty->shape, std::vector<int64_t>({0, 3}));
}

// The data-parallel contract: N ranks, each holding every N-th example, sum to one process's loss and gradients,
// for the per-example term, the replicated contrastive term, the encoder weights (which each rank can only reach
// through its own rows) and the logit scale (which every rank reaches).
TEST(train_dist, ranks_sum_to_one_process) {
    toy m;
    const run_result one = one_process(m);
    for (int n : {2, 3, 6}) {
        const run_result many = n_ranks(m, n);
        EXPECT_NEAR(many.loss, one.loss, 1e-5 * std::fabs(one.loss)) << n << " ranks";
        expect_same(many.grad_w, one.grad_w, std::to_string(n) + " ranks: dL/dW");
        expect_same(many.grad_scale, one.grad_scale, std::to_string(n) + " ranks: dL/dlog_scale");
    }
    // The check can fail: contrasting each rank's own rows only (the behaviour before the gather) gives another loss.
    double per_rank = 0;
    for (int r = 0; r < 2; ++r) per_rank += m.loss(comm_single(), toy::examples_of(r, 2))->data[0];
    EXPECT_GT(std::fabs(per_rank - one.loss), 1e-2) << "per-rank contrast " << per_rank << " vs " << one.loss;
}
