// Data-parallel communication: a single-process implementation and, when Spider is built with OpenMPI, an MPI one.
// Gradients of every rank are summed with allreduce; every rank then applies the same optimiser step. Losses over the
// whole micro-batch of all ranks (InfoNCE) gather the rows of every rank with allgatherv (train/autograd_dist.h).
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace spider::train {

class comm {
public:
    virtual ~comm() = default;
    virtual int rank() const = 0;
    virtual int size() const = 0;
    virtual void allreduce_sum(float * data, size_t n) = 0;
    virtual void allreduce_sum(double * data, size_t n) = 0;
    // Concatenates, in rank order, the n values every rank passes (n may differ between ranks and may be 0) into out,
    // the same on every rank; counts, unless null, receives each rank's n. A collective: every rank must call it.
    virtual void allgatherv(const float * data, size_t n, std::vector<float> * out, std::vector<size_t> * counts) = 0;
    virtual void allgatherv(const int64_t * data, size_t n, std::vector<int64_t> * out,
                            std::vector<size_t> * counts) = 0;
    virtual void barrier() = 0;
};

// MPI when available and the process was started by mpirun with more than one rank, else local.
// Safe to call once per process; the object finalises MPI when destroyed.
std::unique_ptr<comm> comm_create(int * argc, char *** argv);
bool comm_has_mpi();
// A process-wide one-rank communicator, for code that runs outside a data-parallel run (tests, a stage's loss called
// without the loop).
comm & comm_single();

}  // namespace spider::train
