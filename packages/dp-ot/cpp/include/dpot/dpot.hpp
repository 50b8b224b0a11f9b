// dp-ot core: exact linear assignment, exact earth mover's distance, batched solves and the
// minibatch-OT pairing kernel. Plain C++17, no Python headers.
#pragma once

#include <cstddef>
#include <cstdint>
#include <new>
#include <vector>

namespace dpot {

/// Status codes returned by every solver.
enum Status : int {
  kOk = 0,
  kInfeasible = 1,  ///< no complete assignment with finite cost exists
  kInvalid = 2,     ///< NaN or -inf entry
  kMaxIter = 3,     ///< iteration limit reached before optimality (emd only)
};

/// Which SIMD kernels are in use: "avx2" (x86-64 with AVX2 and FMA), "sse2" (x86-64 baseline,
/// or AVX2 disabled by set_simd_enabled(false)) or "portable" (scalar C++, non-x86 builds).
const char* simd_level();
/// Force the baseline kernels (false) or allow run-time dispatch (true). Returns the new level.
const char* set_simd_enabled(bool enabled);

/// How ties between several optimal assignments are broken.
enum class Ties {
  kScipy,  ///< the assignment scipy.optimize.linear_sum_assignment returns (see solve())
  kAny,    ///< any optimum (the fast path's); deterministic, no uniqueness check
};

/// Algorithm selection for tests and benchmarks; solve() chooses by itself (kAuto).
enum class Method {
  kAuto,          ///< square and all finite: kDense; otherwise kSap
  kDense,         ///< kDenseJV or kDenseAuction, chosen from the column reduction (square, finite)
  kDenseJV,       ///< Jonker-Volgenant initialisation + shortest augmenting paths (square, finite)
  kDenseAuction,  ///< eps-scaled auction start + shortest augmenting paths (square, finite;
                  ///< the JV start where the auction does not apply)
  kSap,         ///< shortest augmenting paths from v = 0, rows in order (any nr <= nc, +inf ok)
  kScipyOrder,  ///< shortest augmenting paths with scipy's scan order and tie rule (scalar)
};

namespace detail {
/// 64-byte aligned storage for the arrays the SIMD kernels stream through (no split loads).
template <class T>
struct Aligned64 {
  using value_type = T;
  Aligned64() = default;
  template <class U>
  Aligned64(const Aligned64<U>&) {}
  T* allocate(std::size_t k) {
    return static_cast<T*>(::operator new(k * sizeof(T), std::align_val_t{64}));
  }
  void deallocate(T* p, std::size_t) { ::operator delete(p, std::align_val_t{64}); }
  template <class U>
  bool operator==(const Aligned64<U>&) const {
    return true;
  }
  template <class U>
  bool operator!=(const Aligned64<U>&) const {
    return false;
  }
};
}  // namespace detail

/// Reusable workspace for repeated solves of the same size (one per thread).
class AssignmentSolver {
 public:
  /// Exact minimum-cost assignment of every row for an nr x nc row-major cost matrix with
  /// nr <= nc. Entries may be +inf (forbidden), never NaN or -inf (checked: kInvalid).
  /// col4row[i] receives the column of row i. If u/v are non-null they receive optimal duals
  /// (u: nr, v: nc) with u_i + v_j <= c_ij, equality on the assignment, v_j = 0 on unused
  /// columns when nr < nc.
  ///
  /// This is the one place that chooses the algorithm: square all-finite inputs take the
  /// dense path (a Jonker-Volgenant or, when many rows are nobody's nearest column, an
  /// eps-scaled auction start, then shortest augmenting paths), the others shortest augmenting
  /// paths from v = 0. With Ties::kScipy the result is then certified unique (among the
  /// entries within a relative 1e-12 of tight under the optimal duals, no alternating cycle
  /// and, when nr < nc, no alternating path from a used column with v = 0 to an unused one);
  /// if it is not, the problem is re-solved with Method::kScipyOrder, which reproduces scipy's
  /// choice among tied optima.
  int solve(const double* cost, int64_t nr, int64_t nc, int64_t* col4row, double* u = nullptr,
            double* v = nullptr, Ties ties = Ties::kScipy);

  /// One named algorithm, no uniqueness check (tests and benchmarks). The kDense* methods require a
  /// square all-finite matrix (kInvalid otherwise).
  int solve_with(Method method, const double* cost, int64_t nr, int64_t nc, int64_t* col4row,
                 double* u = nullptr, double* v = nullptr);

 private:
  friend struct AssignmentSolverTest;  // unit tests call unique_optimum directly
  int augment_all(const double* cost, int64_t nr, int64_t nc, const int64_t* free_rows,
                  int64_t nfree);
  enum class Start { kChoose, kJV, kAuction };
  int64_t column_reduction(const double* cost, int64_t n);
  int64_t row_reduction(const double* cost, int64_t n, int64_t nfree, int64_t budget);
  int64_t init_jv(const double* cost, int64_t n);       // returns the number of free rows
  int64_t init_auction(const double* cost, int64_t n);  // the same, or -1: not applicable
  int run_dense(const double* cost, int64_t n, Start start);
  int run_sap(const double* cost, int64_t nr, int64_t nc);
  int run_scipy_order(const double* cost, int64_t nr, int64_t nc);
  bool unique_optimum(const double* cost, int64_t nr, int64_t nc);
  void resize(int64_t nr, int64_t nc);
  void write_out(const double* cost, int64_t nr, int64_t nc, int64_t* col4row, double* u,
                 double* v) const;

  std::vector<double, detail::Aligned64<double>> v_, d_;
  std::vector<double> u_, pred_, dsave_, vsave_;
  std::vector<int64_t> row4col_, col4row_, done_, free_, srow_, remaining_, path_, imin_, matches_;
  std::vector<char> scanned_row_;
  // Uniqueness certificate, kept between calls: tight masks (nr x ceil(nc / 64) words), the
  // column graph (CSR) and the cycle search's state.
  std::vector<uint64_t> tight_;
  std::vector<int64_t> arc_start_, arcs_, cert_indeg_, cert_order_;
  std::vector<char> cert_reach_;
};

/// scipy-compatible rectangular assignment: any nr, nc; writes k = min(nr, nc) pairs with
/// rows sorted ascending, the same pairs scipy returns (Ties::kScipy). Returns a Status.
int linear_sum_assignment(const double* cost, int64_t nr, int64_t nc, int64_t* rows,
                          int64_t* cols);

/// Solve B independent n x n problems (row-major, contiguous) with `threads` worker threads.
/// Each result equals AssignmentSolver::solve's (Ties::kScipy), whatever the thread count.
/// status[b] receives each problem's Status.
void batch_assignment(const double* costs, int64_t batch, int64_t n, int threads,
                      int64_t* col4row, int* status);

/// Minibatch-OT pairing kernel: for each block b, cost[k][j] = |x1[b,k] - x0[b,j]|^2 and the
/// exact assignment (Ties::kAny: continuous data have a unique optimum almost surely);
/// out[b, k] = j (requires block <= 256). x0, x1: (B, block, dim).
void pair_blocks(const double* x0, const double* x1, int64_t batch, int64_t block, int64_t dim,
                 int threads, uint8_t* out, int* status);

/// Exact earth mover's distance by the primal network simplex on the complete bipartite
/// transport network (rows: supplies a, columns: demands b, arc costs M), block-search pricing
/// and strongly feasible spanning trees (Cunningham's leaving-arc rule), started from an
/// artificial-root tree. a (n), b (m) nonnegative with equal sums; M (n x m) finite.
/// Writes the plan G (n x m, zero-initialised by the caller), duals alpha (n), beta (m) with
/// alpha_i + beta_j <= M_ij (equality on the support), and the cost. max_iter bounds the
/// number of simplex pivots (kMaxIter when hit).
int emd(const double* a, const double* b, const double* M, int64_t n, int64_t m,
        int64_t max_iter, double* G, double* alpha, double* beta, double* cost);

}  // namespace dpot
