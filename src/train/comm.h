// Data-parallel communication: a single-process implementation and, when Spider is built with OpenMPI, an MPI one.
// Gradients of every rank are summed with allreduce; every rank then applies the same optimiser step.
#pragma once
#include <memory>
#include <string>

namespace spider::train {

class comm {
public:
    virtual ~comm() = default;
    virtual int rank() const = 0;
    virtual int size() const = 0;
    virtual void allreduce_sum(float* data, size_t n) = 0;
    virtual void allreduce_sum(double* data, size_t n) = 0;
    virtual void barrier() = 0;
};

// MPI when available and the process was started by mpirun with more than one rank, else local.
// Safe to call once per process; the object finalises MPI when destroyed.
std::unique_ptr<comm> comm_create(int* argc, char*** argv);
bool comm_has_mpi();

}  // namespace spider::train
