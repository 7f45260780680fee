// Differentiable gathering of rows across data-parallel ranks (train/comm.h), so that a loss over the whole
// micro-batch (InfoNCE: every example is contrasted with every other) sees the rows of every rank.
//
// Scaling, derived. The global micro-batch has G examples spread over N ranks; rank r computes the feature rows X_r
// of its own examples from the parameters. T(X) is the contrastive term over all G rows, X = [X_0; ...; X_{N-1}]
// ordered by global example index (one process adds T to its loss). The loop sums the losses and the parameter
// gradients of the ranks (allreduce). Each rank gathers X with gather_rows, computes the same T(X) as every other
// rank, and adds T / N to its loss:
//   - loss: sum_r T / N = T.
//   - a parameter phi that T uses directly (the logit scale): rank r's backward gives (1/N) dT/dphi, summed over
//     the ranks: dT/dphi.
//   - an encoder parameter theta: dT/dtheta = sum_r (dT/dX_r) (dX_r/dtheta). Rank r can only backprop into its own
//     rows X_r (the other rows' graphs live on the other ranks). Its backward of T / N reaches the gathered copy of
//     X_r with (1/N) dT/dX_r; gather_rows hands back N times that, dT/dX_r, so rank r contributes
//     (dT/dX_r) (dX_r/dtheta) and the sum over ranks is dT/dtheta.
// The factor N is exactly the sum, over the N ranks' copies of T / N, of the gradient each copy puts on X_r (what a
// reduce-scatter of the gathered gradient would compute); it needs no communication because every rank computes the
// same T from the same rows. Hence the contract: use the gathered rows only in terms that every rank computes
// identically and scales by 1 / size(). Without the gather each rank contrasted only its own G / N rows: a
// different, weaker loss than one process's, whose value and gradients depended on the number of ranks.
#pragma once
#include <cstdint>
#include <vector>

#include "train/autograd.h"
#include "train/comm.h"

namespace spider::train {

// A collective: every rank calls it with its local rows (each of `width` elements, e.g. [1, width]) and one distinct
// global key per row (the example index). Returns, on every rank, [n_total, width]: the rows of all ranks sorted by
// key, i.e. the matrix one process builds over the whole micro-batch. A rank may pass no rows. The backward adds
// c.size() x the gradient of each local row's place to that row (see the contract above). Throws, naming the
// problem, on a row of the wrong size, mismatched counts or a key held twice.
value gather_rows(comm & c, const std::vector<value> & rows, const std::vector<int64_t> & keys, int64_t width);

}  // namespace spider::train
