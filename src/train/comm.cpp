// Local and MPI communicators (MPI compiled in when SPIDER_HAVE_MPI is defined by the build).
#include "train/comm.h"

#include <algorithm>
#include <climits>
#include <cstdlib>
#include <stdexcept>

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
    void allgatherv(const float * data, size_t n, std::vector<float> * out, std::vector<size_t> * counts) override {
        copy(data, n, out, counts);
    }
    void allgatherv(const int64_t * data, size_t n, std::vector<int64_t> * out, std::vector<size_t> * counts) override {
        copy(data, n, out, counts);
    }
    void barrier() override {}

private:
    template <typename T>
    static void copy(const T * data, size_t n, std::vector<T> * out, std::vector<size_t> * counts) {
        out->assign(data, data + n);
        if (counts) counts->assign(1, n);
    }
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
    void allreduce_sum(float * data, size_t n) override {
        // Chunked: MPI counts are int.
        for (size_t off = 0; off < n; off += (1u << 30))
            MPI_Allreduce(MPI_IN_PLACE, data + off, static_cast<int>(std::min<size_t>(n - off, 1u << 30)), MPI_FLOAT,
                          MPI_SUM, MPI_COMM_WORLD);
    }
    void allreduce_sum(double * data, size_t n) override {
        for (size_t off = 0; off < n; off += (1u << 30))
            MPI_Allreduce(MPI_IN_PLACE, data + off, static_cast<int>(std::min<size_t>(n - off, 1u << 30)), MPI_DOUBLE,
                          MPI_SUM, MPI_COMM_WORLD);
    }
    void allgatherv(const float * data, size_t n, std::vector<float> * out, std::vector<size_t> * counts) override {
        gather(data, n, MPI_FLOAT, out, counts);
    }
    void allgatherv(const int64_t * data, size_t n, std::vector<int64_t> * out, std::vector<size_t> * counts) override {
        gather(data, n, MPI_INT64_T, out, counts);
    }
    void barrier() override { MPI_Barrier(MPI_COMM_WORLD); }

private:
    // Two collectives: the counts first (so every rank can size its buffer), then the values.
    template <typename T>
    void gather(const T * data, size_t n, MPI_Datatype type, std::vector<T> * out, std::vector<size_t> * counts) {
        const long long mine = static_cast<long long>(n);
        std::vector<long long> all(static_cast<size_t>(size_));
        MPI_Allgather(&mine, 1, MPI_LONG_LONG, all.data(), 1, MPI_LONG_LONG, MPI_COMM_WORLD);
        std::vector<int> cnt(all.size()), displ(all.size());
        long long total = 0;
        for (size_t r = 0; r < all.size(); ++r) {
            if (all[r] > INT_MAX || total + all[r] > INT_MAX)  // MPI counts and displacements are int
                throw std::length_error("allgatherv: more than 2^31-1 values in all (" +
                                        std::to_string(total + all[r]) + ")");
            cnt[r] = static_cast<int>(all[r]);
            displ[r] = static_cast<int>(total);
            total += all[r];
        }
        out->resize(static_cast<size_t>(total));
        MPI_Allgatherv(data, cnt[static_cast<size_t>(rank_)], type, out->data(), cnt.data(), displ.data(), type,
                       MPI_COMM_WORLD);
        if (counts) counts->assign(all.begin(), all.end());
    }

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

comm & comm_single() {
    static local_comm single;
    return single;
}

std::unique_ptr<comm> comm_create(int * argc, char *** argv) {
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
