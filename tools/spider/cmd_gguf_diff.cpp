// `spider gguf-diff A.gguf B.gguf [--tol X]`: compares the tensors of two GGUF files (same names, shapes and types;
// values dequantized to F32) and prints the largest absolute difference per tensor. Exit 0 if every difference is
// within the tolerance, 1 if not, 2 on an error.
#include <CLI/CLI.hpp>
#include <cmath>
#include <cstdio>

#include "command.h"
#include "core/ops.h"
#include "io/gguf.h"

static int run_gguf_diff(int argc, char ** argv) {
    CLI::App app{"spider gguf-diff: compare the tensors of two GGUF files", "spider gguf-diff"};
    std::string a_path, b_path;
    double tol = 0.0;
    bool verbose = false;
    app.add_option("a", a_path, "first file")->required();
    app.add_option("b", b_path, "second file")->required();
    app.add_option("--tol", tol, "largest allowed absolute difference (default 0: bit-identical values)");
    app.add_flag("-v,--verbose", verbose, "print every tensor, not only those that differ");
    try {
        app.parse(argc, argv);
    } catch (const CLI::ParseError & e) {
        return app.exit(e);
    }
    std::string err;
    auto a = spider::gguf_file::open(a_path, &err);
    if (!a) return std::fprintf(stderr, "spider gguf-diff: %s\n", err.c_str()), 2;
    auto b = spider::gguf_file::open(b_path, &err);
    if (!b) return std::fprintf(stderr, "spider gguf-diff: %s\n", err.c_str()), 2;
    bool ok = a->tensors().size() == b->tensors().size();
    if (!ok) std::printf("tensor count differs: %zu vs %zu\n", a->tensors().size(), b->tensors().size());
    double worst = 0;
    for (const auto & ta : a->tensors()) {
        const spider::gguf_tensor_info * tb = b->find_tensor(ta.name);
        if (!tb) {
            std::printf("%-48s only in %s\n", ta.name.c_str(), a_path.c_str());
            ok = false;
            continue;
        }
        bool same_shape = ta.n_dims == tb->n_dims && ta.type == tb->type;
        for (int i = 0; same_shape && i < ta.n_dims; ++i) same_shape = ta.ne[i] == tb->ne[i];
        if (!same_shape) {
            std::printf("%-48s shape or type differs\n", ta.name.c_str());
            ok = false;
            continue;
        }
        spider::tensor va = a->view(ta), vb = b->view(*tb);
        const int64_t n = ta.ne[0], rows = va.nrows();
        std::vector<float> ra(static_cast<size_t>(n)), rb(static_cast<size_t>(n));
        double max_diff = 0;
        for (int64_t r = 0; r < rows; ++r) {
            // Rows are contiguous in a GGUF tensor: view each as a one-row table and dequantize it.
            spider::tensor ma = spider::make_tensor(ta.type, const_cast<void *>(va.row(r)), n, 1);
            spider::tensor mb = spider::make_tensor(ta.type, const_cast<void *>(vb.row(r)), n, 1);
            const int32_t id = 0;
            spider::get_rows(ma, &id, 1, ra.data());
            spider::get_rows(mb, &id, 1, rb.data());
            for (int64_t i = 0; i < n; ++i) {
                const double d = std::fabs(static_cast<double>(ra[i]) - rb[i]);
                if (!(d <= max_diff)) max_diff = std::isnan(d) ? INFINITY : d;
            }
        }
        worst = std::max(worst, max_diff);
        if (max_diff > tol) ok = false;
        if (verbose || max_diff > tol) std::printf("%-48s max |a-b| = %.3e\n", ta.name.c_str(), max_diff);
    }
    std::printf("%s: largest difference %.3e (tolerance %.3e)\n", ok ? "same" : "DIFFERENT", worst, tol);
    return ok ? 0 : 1;
}

static spider_cli::command_registrar reg({"gguf-diff", "compare the tensors of two GGUF files", run_gguf_diff});
