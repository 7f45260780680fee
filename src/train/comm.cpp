// Local and MPI communicators (MPI compiled in when SPIDER_HAVE_MPI is defined by the build).
#include "train/comm.h"

#include <algorithm>
#include <cstdlib>

#ifdef SPIDER_HAVE_MPI
// C bindings only: the deprecated C++ bindings would need an extra library.
#define OMPI_SKIP_MPICXX 1
#define MPICH_SKIP_MPICXX 1
#include <mpi.h>
#endif

namespace spider::train {

namespace {

class local_comm : public comm {
public:
    int rank() const override { return 0; }
    int size() const override { return 1; }
    void allreduce_sum(float *, size_t) override {}
    void allreduce_sum(double *, size_t) override {}
    void barrier() override {}
};

#ifdef SPIDER_HAVE_MPI
class mpi_comm : public comm {
public:
    mpi_comm() {
        MPI_Comm_rank(MPI_COMM_WORLD, &rank_);
        MPI_Comm_size(MPI_COMM_WORLD, &size_);
    }
    ~mpi_comm() override { MPI_Finalize(); }
    int rank() const override { return rank_; }
    int size() const override { return size_; }
    void allreduce_sum(float *data, size_t n) override {
        // Chunked: MPI counts are int.
        for (size_t off = 0; off < n; off += (1u << 30))
            MPI_Allreduce(MPI_IN_PLACE, data + off, static_cast<int>(std::min<size_t>(n - off, 1u << 30)), MPI_FLOAT,
                          MPI_SUM, MPI_COMM_WORLD);
    }
    void allreduce_sum(double *data, size_t n) override {
        for (size_t off = 0; off < n; off += (1u << 30))
            MPI_Allreduce(MPI_IN_PLACE, data + off, static_cast<int>(std::min<size_t>(n - off, 1u << 30)), MPI_DOUBLE,
                          MPI_SUM, MPI_COMM_WORLD);
    }
    void barrier() override { MPI_Barrier(MPI_COMM_WORLD); }

private:
    int rank_ = 0, size_ = 1;
};
#endif

}  // namespace

bool comm_has_mpi() {
#ifdef SPIDER_HAVE_MPI
    return true;
#else
    return false;
#endif
}

std::unique_ptr<comm> comm_create(int *argc, char ***argv) {
#ifdef SPIDER_HAVE_MPI
    // Only enter MPI when launched by mpirun (OpenMPI sets OMPI_COMM_WORLD_SIZE), so a plain run needs no MPI runtime.
    if (std::getenv("OMPI_COMM_WORLD_SIZE") || std::getenv("PMI_SIZE")) {
        MPI_Init(argc, argv);
        return std::make_unique<mpi_comm>();
    }
#endif
    (void)argc;
    (void)argv;
    return std::make_unique<local_comm>();
}

}  // namespace spider::train
