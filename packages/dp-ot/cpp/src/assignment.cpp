// Exact linear assignment by shortest augmenting paths (Jonker-Volgenant / Crouse), with a
// Jonker-Volgenant initialisation (capped augmenting row reduction) for square dense blocks,
// a uniqueness certificate, and a scalar variant that breaks ties as scipy does.
#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>

#include "dpot/dpot.hpp"
#include "kernels.hpp"

namespace dpot {
namespace {
constexpr double kInf = std::numeric_limits<double>::infinity();

// Second index k > j1 with c[k] - v[k] == m (the minimum m is attained at least twice).
int64_t second_argmin(const double* c, const double* v, int64_t n, int64_t j1, double m) {
  for (int64_t k = j1 + 1; k < n; ++k)
    if (c[k] - v[k] == m) return k;
  return j1;  // unreachable when the minimum is attained twice
}
}  // namespace

void AssignmentSolver::resize(int64_t nr, int64_t nc) {
  v_.assign(nc, 0.0);
  u_.assign(nr, 0.0);
  d_.resize(nc);
  pred_.resize(nc + 1);
  srow_.resize(nc + 1);
  dsave_.resize(nc);
  vsave_.resize(nc);
  row4col_.assign(nc, -1);
  col4row_.assign(nr, -1);
  matches_.resize(nr);
  done_.resize(nc);
  free_.resize(std::max<int64_t>(nr, 1));
  remaining_.resize(nc);
  path_.resize(nc);
  scanned_row_.resize(nr);
}

// Shortest augmenting path from every row in free_rows. Invariant (dual feasibility): for
// every assigned row i, c[i][col4row[i]] - v[col4row[i]] = min_j (c[i][j] - v[j]).
// The relaxation kernel keeps no predecessors; they are recovered for the few columns on the
// augmenting path by recomputing each scanned row's candidate bit for bit (the predecessor of
// a column is the first scanned row whose candidate equals the column's final distance).
int AssignmentSolver::augment_all(const double* cost, int64_t nr, int64_t nc,
                                  const int64_t* free_rows, int64_t nfree) {
  (void)nr;
  const detail::RelaxFn relax = detail::relax_kernel();
  double* v = v_.data();
  double* d = d_.data();
  double* sh = pred_.data();  // h of the t-th scanned row
  int64_t* srow = srow_.data();
  for (int64_t f = 0; f < nfree; ++f) {
    const int64_t frow = free_rows[f];
    std::fill(d, d + nc, kInf);
    double mind;
    int64_t j = relax(cost + frow * nc, v, 0.0, d, nc, &mind);
    srow[0] = frow;
    sh[0] = 0.0;
    int64_t ndone = 0;
    int status = kOk;
    while (true) {
      if (!(mind < kInf)) {
        status = kInfeasible;
        break;
      }
      if (row4col_[j] < 0) break;
      // Column j is reached at distance mind; its row is scanned next.
      dsave_[j] = mind;
      vsave_[j] = v[j];
      v[j] = -kInf;
      d[j] = kInf;
      done_[ndone++] = j;
      const int64_t i = row4col_[j];
      const double h = cost[i * nc + j] - vsave_[j] - mind;
      srow[ndone] = i;
      sh[ndone] = h;
      j = relax(cost + i * nc, v, h, d, nc, &mind);
    }
    if (status != kOk) {
      for (int64_t t = 0; t < ndone; ++t) v[done_[t]] = vsave_[done_[t]];
      return status;
    }
    // Augment along the recovered predecessor chain (done columns: saved v and distance).
    const int64_t sink = j;
    double vj = v[sink], dj = mind;
    while (true) {
      int64_t t = 0;
      while ((cost[srow[t] * nc + j] - vj) - sh[t] != dj) ++t;
      const int64_t i = srow[t];
      row4col_[j] = i;
      std::swap(j, col4row_[i]);
      if (i == frow) break;
      vj = vsave_[j];
      dj = dsave_[j];
    }
    // Restore the scanned columns' duals, lowered by how much closer than the sink they were.
    for (int64_t t = 0; t < ndone; ++t) {
      const int64_t c = done_[t];
      v[c] = vsave_[c] + (dsave_[c] - mind);
    }
  }
  return kOk;
}

// Column reduction v_j = min_i c_ij (first such row in imin; a SIMD kernel). Returns the
// number of rows that are no column's argmin.
int64_t AssignmentSolver::column_reduction(const double* cost, int64_t n) {
  imin_.resize(n);
  detail::colmin_kernel()(cost, n, v_.data(), imin_.data());
  std::fill(matches_.begin(), matches_.end(), 0);
  for (int64_t j = 0; j < n; ++j) ++matches_[imin_[j]];
  int64_t unmatched = 0;
  for (int64_t i = 0; i < n; ++i) unmatched += matches_[i] == 0;
  return unmatched;
}

// Augmenting row reduction (Jonker & Volgenant) of the nfree rows in free_, capped at `budget`
// row scans: an auction with zero increment on ties can cycle, and unbounded it costs more
// than it saves. Every row it assigns is exactly tight, so augment_all's invariant holds.
// Returns the number of rows still free (in free_).
int64_t AssignmentSolver::row_reduction(const double* cost, int64_t n, int64_t nfree,
                                        int64_t budget) {
  const detail::RowMin2Fn rowmin2 = detail::rowmin2_kernel();
  int64_t scans = 0;
  for (int pass = 0; pass < 2 && nfree > 0 && scans < budget; ++pass) {
    int64_t k = 0;
    const int64_t prev = nfree;
    nfree = 0;
    while (k < prev) {
      if (scans >= budget) {
        while (k < prev) free_[nfree++] = free_[k++];
        break;
      }
      ++scans;
      const int64_t i = free_[k++];
      double umin, usub;
      int64_t j1;
      rowmin2(cost + i * n, v_.data(), n, &umin, &j1, &usub);
      int64_t i0 = row4col_[j1];
      if (umin < usub) {
        v_[j1] -= usub - umin;
      } else if (i0 >= 0) {
        j1 = second_argmin(cost + i * n, v_.data(), n, j1, umin);
        i0 = row4col_[j1];
      }
      row4col_[j1] = i;
      col4row_[i] = j1;
      if (i0 >= 0) {
        col4row_[i0] = -1;
        if (umin < usub)
          free_[--k] = i0;
        else
          free_[nfree++] = i0;
      }
    }
  }
  return nfree;
}

// Jonker-Volgenant start from the column reduction: each column tentatively goes to its argmin
// row, rows matched once move their slack onto their column's dual (reduction transfer), then
// a capped augmenting row reduction. Returns the number of free rows (in free_).
int64_t AssignmentSolver::init_jv(const double* cost, int64_t n) {
  const detail::RowMin2Fn rowmin2 = detail::rowmin2_kernel();
  std::fill(row4col_.begin(), row4col_.end(), -1);
  std::fill(col4row_.begin(), col4row_.end(), -1);
  std::fill(matches_.begin(), matches_.end(), 0);
  // Last column first; a row reached by several columns keeps the last one visited.
  for (int64_t j = n - 1; j >= 0; --j) {
    const int64_t r = imin_[j];
    if (++matches_[r] > 1) row4col_[col4row_[r]] = -1;
    col4row_[r] = j;
    row4col_[j] = r;
  }
  int64_t nfree = 0;
  for (int64_t i = 0; i < n; ++i) {
    if (matches_[i] == 0) {
      free_[nfree++] = i;
    } else if (matches_[i] == 1) {
      const int64_t j1 = col4row_[i];
      double m1, m2;
      int64_t a1;
      rowmin2(cost + i * n, v_.data(), n, &m1, &a1, &m2);
      const double mn = a1 == j1 ? m2 : m1;  // min over j != j1 of c_ij - v_j
      v_[j1] -= mn - (cost[i * n + j1] - v_[j1]);
    }
  }
  // Rows matched more than once keep one column; the others stay unassigned but those rows are
  // assigned, so they are not free. Their reduced row minimum is their column (v_j = c_ij and
  // c_ik - v_k >= 0 = c_ij - v_j for all k since v_k <= c_ik).
  return row_reduction(cost, n, nfree, n);  // budget n: measured best (2n, 4n: slower)
}

// Epsilon-scaled forward auction from the column reduction's prices (min form: row i bids for
// argmin_j c_ij - v_j and lowers v_j by its margin over the second best plus eps), two phases
// (eps = 4 s, then 0.7 s, where s is the median gap between the two smallest reduced costs of
// 32 sampled rows, so the scale follows the data's own spread, not its range; with the AVX2 +
// FMA kernels {4, 0.7} beat the earlier {3, 0.5} by 3-9 % on Plummer and standardized blocks
// and lose 1-3 % on 2 N(0, I) + 1 blocks), then a
// zero-increment augmenting row reduction from the final prices in which every assigned row is
// exactly tight; the rows it leaves free go to the exact shortest-path completion. Returns the
// number of free rows, or -1 when the auction does not apply (no gap: ties everywhere) or runs
// over its bid budget; v_ is then stale and the caller starts over.
int64_t AssignmentSolver::init_auction(const double* cost, int64_t n) {
  const detail::RowMin2Fn rowmin2 = detail::rowmin2_kernel();
  double* v = v_.data();
  const int64_t step = std::max<int64_t>(1, n / 32);
  std::vector<double> gaps;
  gaps.reserve(static_cast<size_t>(n / step + 1));
  for (int64_t i = 0; i < n; i += step) {
    double m1, m2;
    int64_t a1;
    rowmin2(cost + i * n, v, n, &m1, &a1, &m2);
    gaps.push_back(m2 - m1);
  }
  std::nth_element(gaps.begin(), gaps.begin() + gaps.size() / 2, gaps.end());
  const double s = gaps[gaps.size() / 2];
  if (!(s > 0.0) || !std::isfinite(s)) return -1;
  // Typical runs take 12-16 bids per row; past 48 the data are not what the auction is for.
  const int64_t max_bids = 48 * n;
  int64_t bids = 0;
  int64_t* stack = free_.data();
  for (const double eps : {4.0 * s, 0.7 * s}) {
    std::fill(row4col_.begin(), row4col_.end(), -1);
    int64_t top = 0;
    for (int64_t i = n - 1; i >= 0; --i) stack[top++] = i;
    while (top > 0) {
      if (++bids > max_bids) return -1;
      const int64_t i = stack[--top];
      double m1, m2;
      int64_t j1;
      rowmin2(cost + i * n, v, n, &m1, &j1, &m2);
      v[j1] -= (m2 - m1) + eps;
      const int64_t i0 = row4col_[j1];
      row4col_[j1] = i;
      if (i0 >= 0) stack[top++] = i0;
    }
  }
  // The eps-bids leave their rows eps-slack: start the exact phase with every row free.
  std::fill(row4col_.begin(), row4col_.end(), -1);
  std::fill(col4row_.begin(), col4row_.end(), -1);
  std::iota(free_.begin(), free_.begin() + n, int64_t{0});
  return row_reduction(cost, n, n, 2 * n);
}

int AssignmentSolver::run_dense(const double* cost, int64_t n, Start start) {
  if (n == 1) {
    col4row_[0] = row4col_[0] = 0;
    return kOk;
  }
  const int64_t unmatched = column_reduction(cost, n);
  // Many rows nobody's nearest (clouds of different scale or offset, heavy tails) leave the JV
  // start long augmenting paths; the auction's cost hardly depends on that. Measured on
  // 256-blocks (cpp/tests/bench_square.cpp, AVX2 + FMA kernels): standardized clouds ~0.41 n
  // unmatched (JV 0.27 ms, auction 0.27 ms), a unit Plummer sphere against N(0, I) ~0.46 n
  // (JV 0.38 ms, auction 0.29 ms), 2 N(0, I) + 1 against N(0, I) ~0.71 n (JV 0.85 ms, auction
  // 0.33 ms). Threshold 0.40 n (0.34-0.44 n: within 2 % on these and the benchmark sets).
  if (start == Start::kChoose) start = 5 * unmatched > 2 * n ? Start::kAuction : Start::kJV;
  int64_t nfree = -1;
  if (start == Start::kAuction) {
    nfree = init_auction(cost, n);
    if (nfree < 0) column_reduction(cost, n);
  }
  if (nfree < 0) nfree = init_jv(cost, n);
  return augment_all(cost, n, n, free_.data(), nfree);
}

int AssignmentSolver::run_sap(const double* cost, int64_t nr, int64_t nc) {
  // Cold start v = 0: v only decreases on scanned (assigned) columns, so unused columns keep
  // v = 0 >= every other v, which is the rectangular optimality condition.
  std::iota(free_.begin(), free_.begin() + nr, int64_t{0});
  return augment_all(cost, nr, nc, free_.data(), nr);
}

// Shortest augmenting paths from every row in turn with explicit duals u, v, scanning the
// unreached columns in the order of a list that starts at nc-1 ... 0 and loses a reached
// column by moving its last entry into the hole. Among columns at the minimal distance an
// unassigned one is preferred (the last such in list order), otherwise the first in list
// order. This is the rule of scipy's linear_sum_assignment (Crouse's algorithm), with the
// same arithmetic, so tied problems get scipy's answer.
int AssignmentSolver::run_scipy_order(const double* cost, int64_t nr, int64_t nc) {
  std::fill(u_.begin(), u_.end(), 0.0);
  std::fill(v_.begin(), v_.end(), 0.0);
  double* d = d_.data();
  int64_t* rem = remaining_.data();
  int64_t* path = path_.data();
  for (int64_t root = 0; root < nr; ++root) {
    for (int64_t q = 0; q < nc; ++q) rem[q] = nc - 1 - q;
    std::fill(d, d + nc, kInf);
    std::fill(scanned_row_.begin(), scanned_row_.end(), 0);
    int64_t nrem = nc, ndone = 0, row = root, sink = -1;
    double dist = 0.0;
    while (sink < 0) {
      scanned_row_[row] = 1;
      const double* c = cost + row * nc;
      const double ui = u_[row];
      double best = kInf;
      int64_t at = -1;
      for (int64_t q = 0; q < nrem; ++q) {
        const int64_t j = rem[q];
        const double r = dist + c[j] - ui - v_[j];
        if (r < d[j]) {
          d[j] = r;
          path[j] = row;
        }
        if (d[j] < best || (d[j] == best && row4col_[j] < 0)) {
          best = d[j];
          at = q;
        }
      }
      if (!(best < kInf)) return kInfeasible;
      dist = best;
      const int64_t j = rem[at];
      rem[at] = rem[--nrem];
      done_[ndone++] = j;
      if (row4col_[j] < 0)
        sink = j;
      else
        row = row4col_[j];
    }
    u_[root] += dist;
    for (int64_t i = 0; i < nr; ++i)
      if (scanned_row_[i] && i != root) u_[i] += dist - d[col4row_[i]];
    for (int64_t t = 0; t < ndone; ++t) v_[done_[t]] -= dist - d[done_[t]];
    for (int64_t j = sink;;) {
      const int64_t i = path[j];
      row4col_[j] = i;
      std::swap(j, col4row_[i]);
      if (i == root) break;
    }
  }
  return kOk;
}

// True when the optimum is unique. With these optimal duals every optimal assignment uses only
// tight entries (complementary slackness), so another optimum exists exactly when the tight
// entries hold an alternating cycle (rows i switching from col4row[i] to another tight column,
// closing up), or, when nr < nc, an alternating path from a used column with v = 0 to an
// unused one (unused columns have v = 0). Entries within a relative 1e-12 of tight count as
// tight: far above the dual updates' rounding (a few ulps of |c| + |v|), far below the gaps
// between distinct assignment costs of continuous data; a near-tie only costs the fallback.
//
// The matrix pass only writes each row's tight mask (branch-free, so no misprediction stalls
// the streaming loads); the arcs are read off the masks afterwards, from L1.
bool AssignmentSolver::unique_optimum(const double* cost, int64_t nr, int64_t nc) {
  const detail::TightMaskFn tight = detail::tight_mask_kernel();
  const int64_t nw = (nc + 63) / 64;
  tight_.resize(static_cast<size_t>(nr * nw));
  uint64_t* mask = tight_.data();
  double vmax = 0.0;
  for (int64_t j = 0; j < nc; ++j) vmax = std::max(vmax, std::abs(v_[j]));
  for (int64_t i = 0; i < nr; ++i) {
    const int64_t m = col4row_[i];
    const double h = cost[i * nc + m] - v_[m];
    const double thr = h + 1e-12 * (std::abs(cost[i * nc + m]) + vmax);
    tight(cost + i * nc, v_.data(), thr, nc, mask + i * nw);
  }
  // Column graph: arc col4row[i] -> j for every tight (i, j), j != col4row[i] (CSR by row i).
  // Raw pointers throughout: the char stores would otherwise make the compiler reload every
  // vector's data pointer after each of them.
  const int64_t* c4r = col4row_.data();
  const int64_t* r4c = row4col_.data();
  // Arc extraction: the first arc of each mask word is taken branch-free (a row has ~1 arc
  // besides its own column, so a bit loop would mispredict on nearly every word).
  arc_start_.resize(nr + 1);
  int64_t* start = arc_start_.data();
  if (static_cast<int64_t>(arcs_.size()) < 2 * nc) arcs_.resize(2 * nc);
  int64_t* adj = arcs_.data();
  int64_t e = 0;
  start[0] = 0;
  for (int64_t i = 0; i < nr; ++i) {
    if (e + nc > static_cast<int64_t>(arcs_.size())) {
      arcs_.resize(2 * arcs_.size() + nc);
      adj = arcs_.data();
    }
    uint64_t* w = mask + i * nw;
    const int64_t m = c4r[i];
    w[m >> 6] &= ~(uint64_t{1} << (m & 63));
    for (int64_t q = 0; q < nw; ++q) {
      uint64_t bits = w[q];
      adj[e] = 64 * q + __builtin_ctzll(bits | (uint64_t{1} << 63));
      e += bits != 0;
      for (bits &= bits - 1; bits; bits &= bits - 1) adj[e++] = 64 * q + __builtin_ctzll(bits);
    }
    start[i + 1] = e;
  }
  const int64_t narcs = e;
  if (narcs == 0) return true;
  // Kahn's algorithm: repeatedly remove columns no arc enters; the graph holds a cycle exactly
  // when some column is never removed. Branch-light (the DFS it replaced mispredicted on
  // almost every step).
  cert_indeg_.assign(nc, 0);
  cert_order_.resize(nc + 1);  // + 1: the branch-free appends write one past the end
  int64_t* indeg = cert_indeg_.data();
  int64_t* order = cert_order_.data();
  for (int64_t k = 0; k < narcs; ++k) ++indeg[adj[k]];
  int64_t tail = 0;
  for (int64_t j = 0; j < nc; ++j) {
    order[tail] = j;
    tail += indeg[j] == 0;
  }
  for (int64_t head = 0; head < tail; ++head) {
    const int64_t r = r4c[order[head]];
    if (r < 0) continue;
    for (int64_t k = start[r]; k < start[r + 1]; ++k) {
      const int64_t t = adj[k];
      order[tail] = t;
      tail += --indeg[t] == 0;
    }
  }
  if (tail < nc) return false;  // alternating cycle
  if (nr < nc) {
    // Reverse topological order: a column reaches a free one when it is free or an arc leads
    // to one that does.
    cert_reach_.resize(nc);
    char* reaches_free = cert_reach_.data();
    for (int64_t k = nc - 1; k >= 0; --k) {
      const int64_t c = order[k];
      const int64_t r = r4c[c];
      char f = r < 0;
      if (r >= 0)
        for (int64_t e = start[r]; e < start[r + 1]; ++e) f |= reaches_free[adj[e]];
      reaches_free[c] = f;
      if (r >= 0 && f && std::abs(v_[c]) <= 1e-12 * vmax) return false;
    }
  }
  return true;
}

void AssignmentSolver::write_out(const double* cost, int64_t nr, int64_t nc, int64_t* col4row,
                                 double* u, double* v) const {
  std::copy(col4row_.begin(), col4row_.begin() + nr, col4row);
  if (v) std::copy(v_.begin(), v_.begin() + nc, v);
  if (u)
    for (int64_t i = 0; i < nr; ++i) u[i] = cost[i * nc + col4row_[i]] - v_[col4row_[i]];
}

int AssignmentSolver::solve_with(Method method, const double* cost, int64_t nr, int64_t nc,
                                 int64_t* col4row, double* u, double* v) {
  if (nr > nc) return kInvalid;
  const bool finite = detail::all_finite(cost, nr * nc);
  if (!finite)
    for (int64_t k = 0; k < nr * nc; ++k)
      if (std::isnan(cost[k]) || cost[k] == -kInf) return kInvalid;
  if (method == Method::kAuto) method = finite && nr == nc ? Method::kDense : Method::kSap;
  const bool dense = method == Method::kDense || method == Method::kDenseJV ||
                     method == Method::kDenseAuction;
  if (dense && !(finite && nr == nc)) return kInvalid;
  resize(nr, nc);
  if (nr == 0) return kOk;
  int st;
  switch (method) {
    case Method::kDense: st = run_dense(cost, nr, Start::kChoose); break;
    case Method::kDenseJV: st = run_dense(cost, nr, Start::kJV); break;
    case Method::kDenseAuction: st = run_dense(cost, nr, Start::kAuction); break;
    case Method::kSap: st = run_sap(cost, nr, nc); break;
    default: st = run_scipy_order(cost, nr, nc); break;
  }
  if (st != kOk) return st;
  write_out(cost, nr, nc, col4row, u, v);
  return kOk;
}

int AssignmentSolver::solve(const double* cost, int64_t nr, int64_t nc, int64_t* col4row,
                            double* u, double* v, Ties ties) {
  const int st = solve_with(Method::kAuto, cost, nr, nc, col4row, u, v);
  if (st != kOk || ties == Ties::kAny || nr == 0 || unique_optimum(cost, nr, nc)) return st;
  return solve_with(Method::kScipyOrder, cost, nr, nc, col4row, u, v);
}

int linear_sum_assignment(const double* cost, int64_t nr, int64_t nc, int64_t* rows,
                          int64_t* cols) {
  const int64_t k = std::min(nr, nc);
  if (k == 0) return kOk;
  AssignmentSolver solver;
  std::vector<int64_t> c4r(k);
  if (nr <= nc) {
    const int st = solver.solve(cost, nr, nc, c4r.data());
    if (st != kOk) return st;
    for (int64_t i = 0; i < nr; ++i) {
      rows[i] = i;
      cols[i] = c4r[i];
    }
    return kOk;
  }
  std::vector<double> t(static_cast<size_t>(nr * nc));
  for (int64_t i = 0; i < nr; ++i)
    for (int64_t j = 0; j < nc; ++j) t[j * nr + i] = cost[i * nc + j];
  const int st = solver.solve(t.data(), nc, nr, c4r.data());
  if (st != kOk) return st;
  std::vector<int64_t> order(nc);
  std::iota(order.begin(), order.end(), int64_t{0});
  std::sort(order.begin(), order.end(), [&](int64_t x, int64_t y) { return c4r[x] < c4r[y]; });
  for (int64_t q = 0; q < nc; ++q) {
    rows[q] = c4r[order[q]];
    cols[q] = order[q];
  }
  return kOk;
}

}  // namespace dpot
