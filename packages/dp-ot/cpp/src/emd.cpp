// Exact earth mover's distance: the primal network simplex on the complete bipartite transport
// network. Rows (positive supplies a_i) and columns (positive demands b_j) are nodes, every
// (i, j) an uncapacitated arc i -> j of cost M_ij; zero-weight rows and columns are left out
// and get their duals at the end. The basis is a spanning tree rooted at an artificial node
// (initially arcs i -> root carrying a_i and root -> j carrying b_j, of a cost ART large enough
// that no optimum uses them). Each pivot: block-search pricing picks the most negative reduced
// cost M_ij + pi_i - pi_j in the first block of arcs holding a negative one; the cycle closes
// through the tree; the leaving arc follows Cunningham's rule (the last blocking arc met when
// walking the cycle from the apex in the entering arc's direction), which keeps the tree
// strongly feasible, so degenerate pivots cannot cycle; the cut-off subtree is re-hung from the
// entering arc and its potentials shifted by one constant.
#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "dpot/dpot.hpp"

namespace dpot {
namespace {

constexpr double kInf = std::numeric_limits<double>::infinity();

class NetworkSimplex {
 public:
  // cost: nr x nc row-major (>= 0 after the caller's shift), supply (nr), demand (nc).
  NetworkSimplex(const double* cost, const double* supply, const double* demand, int64_t nr,
                 int64_t nc, double range)
      : c_(cost), nr_(nr), nc_(nc), nn_(nr + nc + 1), root_(nr + nc) {
    // ART exceeds the cost of any path through the real arcs (< nn * range), so an optimum
    // never routes flow through the root; pricing ignores reduced costs above -tol_, a margin
    // of many ulps of the potentials' magnitude (~2 ART).
    art_ = (range > 0 ? range : 1.0) * static_cast<double>(nn_);
    tol_ = 64 * std::numeric_limits<double>::epsilon() * art_;
    parent_.assign(nn_, root_);
    arc_.assign(nn_, -1);
    up_.assign(nn_, 0);
    flow_.assign(nn_, 0.0);
    pi_.assign(nn_, 0.0);
    first_child_.assign(nn_, -1);
    next_.assign(nn_, -1);
    prev_.assign(nn_, -1);
    mark_.assign(nn_, 0);
    in_tree_.assign(static_cast<size_t>(nr * nc), 0);
    parent_[root_] = -1;
    for (int64_t i = 0; i < nr; ++i) {
      up_[i] = 1;  // i -> root
      flow_[i] = supply[i];
      pi_[i] = -art_;
      attach(i, root_);
    }
    for (int64_t j = 0; j < nc; ++j) {
      up_[nr + j] = 0;  // root -> j
      flow_[nr + j] = demand[j];
      pi_[nr + j] = art_;
      attach(nr + j, root_);
    }
    const int64_t arcs = nr * nc;
    block_ = std::max<int64_t>(std::min<int64_t>(arcs, 64),
                               static_cast<int64_t>(std::sqrt(static_cast<double>(arcs))));
  }

  // Pivots until optimal (kOk) or max_iter pivots (kMaxIter).
  int run(int64_t max_iter) {
    for (int64_t it = 0;; ++it) {
      const int64_t e = price();
      if (e < 0) return kOk;
      if (it >= max_iter) return kMaxIter;
      if (!pivot(e)) return kInfeasible;  // no blocking arc: unreachable for finite costs
    }
  }

  // Plan entries and potentials: flow of node x's tree arc, pi.
  template <class Fn>
  void for_each_flow(Fn&& fn) const {
    for (int64_t x = 0; x < root_; ++x)
      if (arc_[x] >= 0) fn(arc_[x] / nc_, arc_[x] % nc_, flow_[x]);
  }
  double pi(int64_t node) const { return pi_[node]; }

 private:
  void attach(int64_t x, int64_t p) {
    parent_[x] = p;
    prev_[x] = -1;
    next_[x] = first_child_[p];
    if (next_[x] >= 0) prev_[next_[x]] = x;
    first_child_[p] = x;
  }
  void detach(int64_t x) {
    const int64_t p = parent_[x];
    if (prev_[x] >= 0)
      next_[prev_[x]] = next_[x];
    else
      first_child_[p] = next_[x];
    if (next_[x] >= 0) prev_[next_[x]] = prev_[x];
  }

  // Block search: scan arcs cyclically (row-major) from where the last search stopped, one
  // block at a time; return the most negative arc of the first block that has one, or -1.
  int64_t price() {
    const int64_t arcs = nr_ * nc_;
    const double* pj = pi_.data() + nr_;
    int64_t scanned = 0;
    while (scanned < arcs) {
      double best = -tol_;
      int64_t best_e = -1;
      for (int64_t left = block_; left > 0 && scanned < arcs;) {
        const int64_t end = std::min(nc_, cj_ + left);
        const double* row = c_ + ci_ * nc_;
        const double pii = pi_[ci_];
        for (int64_t j = cj_; j < end; ++j) {
          const double rc = (row[j] + pii) - pj[j];
          if (rc < best && !in_tree_[ci_ * nc_ + j]) {
            best = rc;
            best_e = ci_ * nc_ + j;
          }
        }
        left -= end - cj_;
        scanned += end - cj_;
        cj_ = end;
        if (cj_ == nc_) {
          cj_ = 0;
          ci_ = ci_ + 1 == nr_ ? 0 : ci_ + 1;
        }
      }
      if (best_e >= 0) return best_e;
    }
    return -1;
  }

  bool pivot(int64_t e) {
    const int64_t first = e / nc_, second = nr_ + e % nc_;
    ++stamp_;
    for (int64_t x = first; x >= 0; x = parent_[x]) mark_[x] = stamp_;
    int64_t join = second;
    while (mark_[join] != stamp_) join = parent_[join];
    // Leaving arc: flow decreases on arcs walked against their direction. First side (walked
    // from the apex down to `first`): strict < keeps the one nearest `first`; second side
    // (walked up from `second` to the apex): <= keeps the one nearest the apex, and wins ties.
    double delta = kInf;
    int64_t out = -1;
    bool out_first = true;
    for (int64_t x = first; x != join; x = parent_[x])
      if (up_[x] && flow_[x] < delta) {
        delta = flow_[x];
        out = x;
      }
    for (int64_t x = second; x != join; x = parent_[x])
      if (!up_[x] && flow_[x] <= delta) {
        delta = flow_[x];
        out = x;
        out_first = false;
      }
    if (out < 0) return false;
    if (delta > 0) {
      for (int64_t x = first; x != join; x = parent_[x]) flow_[x] += up_[x] ? -delta : delta;
      for (int64_t x = second; x != join; x = parent_[x]) flow_[x] += up_[x] ? delta : -delta;
    }
    if (arc_[out] >= 0) in_tree_[arc_[out]] = 0;
    in_tree_[e] = 1;
    // Re-hang the subtree below the leaving arc from the entering arc: the path q .. out
    // reverses (each arc moves to the other endpoint and flips orientation).
    const int64_t q = out_first ? first : second, p = out_first ? second : first;
    path_.clear();
    for (int64_t x = q;; x = parent_[x]) {
      path_.push_back(x);
      if (x == out) break;
    }
    for (int64_t x : path_) detach(x);
    for (size_t t = path_.size() - 1; t >= 1; --t) {
      const int64_t x = path_[t], below = path_[t - 1];
      arc_[x] = arc_[below];
      up_[x] = !up_[below];
      flow_[x] = flow_[below];
      attach(x, below);
    }
    arc_[q] = e;
    up_[q] = out_first;  // q = first (a row): arc q -> parent; q = second: parent -> q
    flow_[q] = delta;
    attach(q, p);
    const double rc = (c_[e] + pi_[first]) - pi_[second];
    const double shift = out_first ? -rc : rc;
    stack_.assign(1, q);
    while (!stack_.empty()) {
      const int64_t x = stack_.back();
      stack_.pop_back();
      pi_[x] += shift;
      for (int64_t ch = first_child_[x]; ch >= 0; ch = next_[ch]) stack_.push_back(ch);
    }
    return true;
  }

  const double* c_;
  int64_t nr_, nc_, nn_, root_;
  double art_, tol_;
  int64_t block_, ci_ = 0, cj_ = 0, stamp_ = 0;
  std::vector<int64_t> parent_, arc_, first_child_, next_, prev_, mark_, path_, stack_;
  std::vector<char> up_, in_tree_;
  std::vector<double> flow_, pi_;
};

}  // namespace

int emd(const double* a, const double* b, const double* M, int64_t n, int64_t m,
        int64_t max_iter, double* G, double* alpha, double* beta, double* cost) {
  *cost = 0.0;
  for (int64_t k = 0; k < n * m; ++k)
    if (!std::isfinite(M[k])) return kInvalid;
  for (int64_t i = 0; i < n; ++i)
    if (!(a[i] >= 0.0) || !std::isfinite(a[i])) return kInvalid;
  for (int64_t j = 0; j < m; ++j)
    if (!(b[j] >= 0.0) || !std::isfinite(b[j])) return kInvalid;
  // Positive-weight rows and columns form the network; costs shifted to >= 0 (the same plans
  // are optimal: every plan moves the same total mass).
  std::vector<int64_t> rows, cols;
  for (int64_t i = 0; i < n; ++i)
    if (a[i] > 0) rows.push_back(i);
  for (int64_t j = 0; j < m; ++j)
    if (b[j] > 0) cols.push_back(j);
  const int64_t nr = static_cast<int64_t>(rows.size()), nc = static_cast<int64_t>(cols.size());
  std::vector<double> c(static_cast<size_t>(nr * nc)), sa(nr), sb(nc);
  double lo = kInf, hi = -kInf;
  for (int64_t i = 0; i < nr; ++i) {
    sa[i] = a[rows[i]];
    for (int64_t j = 0; j < nc; ++j) {
      const double x = M[rows[i] * m + cols[j]];
      c[i * nc + j] = x;
      lo = std::min(lo, x);
      hi = std::max(hi, x);
    }
  }
  for (int64_t j = 0; j < nc; ++j) sb[j] = b[cols[j]];
  if (nr * nc > 0)
    for (double& x : c) x -= lo;
  int status = kOk;
  std::vector<double> al(n, 0.0), be(m, 0.0);
  std::vector<char> row_in(n, 0), col_in(m, 0);
  if (nr > 0 && nc > 0) {
    NetworkSimplex ns(c.data(), sa.data(), sb.data(), nr, nc, hi - lo);
    status = ns.run(max_iter);
    ns.for_each_flow([&](int64_t i, int64_t j, double f) { G[rows[i] * m + cols[j]] = f; });
    // Reduced cost M_ij - lo + pi_i - pi_j >= 0: alpha_i = lo - pi_i, beta_j = pi_j. Subtract
    // the potentials' common offset (one real node's) so that the duals are of the costs' size.
    const double off = ns.pi(nr);
    for (int64_t i = 0; i < nr; ++i) {
      al[rows[i]] = lo - (ns.pi(i) - off);
      row_in[rows[i]] = 1;
    }
    for (int64_t j = 0; j < nc; ++j) {
      be[cols[j]] = ns.pi(nr + j) - off;
      col_in[cols[j]] = 1;
    }
  }
  // Zero-weight rows, then columns: the largest dual keeping alpha_i + beta_j <= M_ij.
  for (int64_t i = 0; i < n; ++i) {
    if (row_in[i]) continue;
    double u = kInf;
    for (int64_t j = 0; j < m; ++j)
      if (col_in[j]) u = std::min(u, M[i * m + j] - be[j]);
    al[i] = u < kInf ? u : 0.0;
  }
  for (int64_t j = 0; j < m; ++j) {
    if (col_in[j]) continue;
    double v = kInf;
    for (int64_t i = 0; i < n; ++i) v = std::min(v, M[i * m + j] - al[i]);
    be[j] = v < kInf ? v : 0.0;
  }
  double total = 0.0;
  for (int64_t k = 0; k < n * m; ++k) total += G[k] * M[k];
  std::copy(al.begin(), al.end(), alpha);
  std::copy(be.begin(), be.end(), beta);
  *cost = total;
  return status;
}

}  // namespace dpot
