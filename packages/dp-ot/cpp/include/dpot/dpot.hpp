// dp-ot core: exact linear assignment, exact earth mover's distance, batched solves and the
// minibatch-OT pairing kernel. Plain C++17, no Python headers.
#pragma once

#include <cstdint>
#include <vector>

namespace dpot {

/// Status codes returned by every solver.
enum Status : int {
  kOk = 0,
  kInfeasible = 1,  ///< no complete assignment with finite cost exists
  kInvalid = 2,     ///< NaN or -inf entry
  kMaxIter = 3,     ///< iteration limit reached before optimality (emd only)
};

/// Which SIMD kernels are in use: "avx2" or "portable".
const char* simd_level();
/// Force the portable kernels (false) or allow run-time dispatch (true). Returns the new level.
const char* set_simd_enabled(bool enabled);

/// Reusable workspace for repeated solves of the same size (one per thread).
class AssignmentSolver {
 public:
  /// Exact minimum-cost assignment of every row for an nr x nc row-major cost matrix with
  /// nr <= nc. Entries may be +inf (forbidden), never NaN or -inf (checked: kInvalid).
  /// col4row[i] receives the column of row i. If u/v are non-null they receive optimal duals
  /// (u: nr, v: nc) with u_i + v_j <= c_ij, equality on the assignment, v_j = 0 on unused
  /// columns when nr < nc.
  int solve(const double* cost, int64_t nr, int64_t nc, int64_t* col4row, double* u = nullptr,
            double* v = nullptr);

  /// Square, all-finite fast path: Jonker-Volgenant initialisation (column reduction,
  /// reduction transfer, capped augmenting row reduction) followed by exact shortest
  /// augmenting paths. Same optimum as solve(); the caller guarantees finite entries.
  int solve_square_dense(const double* cost, int64_t n, int64_t* col4row, double* u = nullptr,
                         double* v = nullptr);

 private:
  int augment_all(const double* cost, int64_t nr, int64_t nc, const int64_t* free_rows,
                  int64_t nfree);
  int64_t init_jv(const double* cost, int64_t n);  // returns the number of free rows
  void resize(int64_t nr, int64_t nc);
  void write_duals(const double* cost, int64_t nr, int64_t nc, double* u, double* v) const;

  std::vector<double> v_, d_, pred_, dsave_, vsave_;
  std::vector<int64_t> row4col_, col4row_, done_, free_, srow_;
};

/// scipy-compatible rectangular assignment: any nr, nc; writes k = min(nr, nc) pairs with
/// rows sorted ascending. Returns a Status.
int linear_sum_assignment(const double* cost, int64_t nr, int64_t nc, int64_t* rows,
                          int64_t* cols);

/// Solve B independent n x n problems (row-major, contiguous) with `threads` worker threads.
/// Results do not depend on the thread count. status[b] receives each problem's Status.
void batch_assignment(const double* costs, int64_t batch, int64_t n, int threads,
                      int64_t* col4row, int* status);

/// Minibatch-OT pairing kernel: for each block b, cost[k][j] = |x1[b,k] - x0[b,j]|^2 and the
/// exact assignment; out[b, k] = j (requires block <= 256). x0, x1: (B, block, dim).
void pair_blocks(const double* x0, const double* x1, int64_t batch, int64_t block, int64_t dim,
                 int threads, uint8_t* out, int* status);

/// Exact earth mover's distance by successive shortest paths (min-cost flow) on the dense
/// bipartite transport network. a (n), b (m) nonnegative with equal sums; M (n x m) finite.
/// Writes the plan G (n x m, zero-initialised by the caller), duals alpha (n), beta (m) with
/// alpha_i + beta_j <= M_ij (equality on the support), and the cost. max_iter bounds the
/// number of augmentations (kMaxIter when hit).
int emd(const double* a, const double* b, const double* M, int64_t n, int64_t m,
        int64_t max_iter, double* G, double* alpha, double* beta, double* cost);

}  // namespace dpot
