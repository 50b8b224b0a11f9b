// Assignment solvers against a brute-force optimum (all injections of rows into columns) on
// small random instances: ties, integer costs, rectangular both ways, +inf (forbidden) entries,
// both SIMD levels, the batched and pairing entry points with 1 and 3 threads.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <numeric>
#include <random>
#include <vector>

#include "../src/kernels.hpp"
#include "check.hpp"
#include "dpot/dpot.hpp"

namespace dpot {
struct AssignmentSolverTest {
  static bool unique_optimum(AssignmentSolver& s, const double* c, int64_t nr, int64_t nc) {
    return s.unique_optimum(c, nr, nc);
  }
};
}  // namespace dpot

namespace {
constexpr double kInf = std::numeric_limits<double>::infinity();

// Brute force over all injections rows -> columns (nr <= nc) or columns -> rows.
double brute(const std::vector<double>& c, int nr, int nc) {
  const bool tr = nr > nc;
  const int r = tr ? nc : nr, k = tr ? nr : nc;
  auto at = [&](int i, int j) { return tr ? c[j * nc + i] : c[i * nc + j]; };
  std::vector<int> perm(k);
  std::iota(perm.begin(), perm.end(), 0);
  double best = kInf;
  do {  // permutations of k, first r entries define the injection (duplicates harmless)
    double s = 0;
    for (int i = 0; i < r; ++i) s += at(i, perm[i]);
    best = std::min(best, s);
  } while (std::next_permutation(perm.begin(), perm.end()));
  return best;
}

double cost_of(const std::vector<double>& c, int nc, const std::vector<int64_t>& rows,
               const std::vector<int64_t>& cols) {
  double s = 0;
  for (size_t q = 0; q < rows.size(); ++q) s += c[rows[q] * nc + cols[q]];
  return s;
}

void check_valid(const std::vector<int64_t>& rows, const std::vector<int64_t>& cols, int nr,
                 int nc) {
  std::vector<char> ur(nr, 0), uc(nc, 0);
  for (size_t q = 0; q < rows.size(); ++q) {
    CHECK(rows[q] >= 0 && rows[q] < nr && !ur[rows[q]], "bad row");
    CHECK(cols[q] >= 0 && cols[q] < nc && !uc[cols[q]], "bad col");
    if (rows[q] >= 0 && rows[q] < nr) ur[rows[q]] = 1;
    if (cols[q] >= 0 && cols[q] < nc) uc[cols[q]] = 1;
    if (q) CHECK(rows[q] > rows[q - 1], "rows not sorted");
  }
}

void random_instances(std::mt19937_64& rng) {
  for (int trial = 0; trial < 3000; ++trial) {
    const int nr = static_cast<int>(rng() % 7), nc = static_cast<int>(rng() % 7);
    const int kind = static_cast<int>(rng() % 4);
    std::vector<double> c(nr * nc);
    std::uniform_real_distribution<double> U(-5, 5);
    for (auto& x : c) {
      if (kind == 0) x = U(rng);
      if (kind == 1) x = static_cast<double>(rng() % 3);     // many ties
      if (kind == 2) x = static_cast<double>(rng() % 1000) * 1e6;  // large integers
      if (kind == 3) x = (rng() % 4 == 0) ? kInf : U(rng);  // forbidden entries
    }
    const double ref = brute(c, nr, nc);
    const int k = std::min(nr, nc);
    std::vector<int64_t> rows(k), cols(k);
    const int st = dpot::linear_sum_assignment(c.data(), nr, nc, rows.data(), cols.data());
    if (!(ref < kInf) && k > 0) {
      CHECK(st == dpot::kInfeasible, "expected infeasible, got %d (%dx%d)", st, nr, nc);
      continue;
    }
    CHECK(st == dpot::kOk, "status %d", st);
    check_valid(rows, cols, nr, nc);
    const double got = cost_of(c, nc, rows, cols);
    // exact up to summation-order rounding of <= 6 terms of magnitude <= 1e9
    CHECK(std::abs(got - ref) <= 1e-9 * (1 + std::abs(ref)), "cost %.17g vs %.17g (%dx%d kind %d)",
          got, ref, nr, nc, kind);
  }
}

void dense_duals_and_batch(std::mt19937_64& rng) {
  // Larger square instances: dual feasibility + complementary slackness certify optimality;
  // batch and pairing results must not depend on the thread count.
  const int n = 64, B = 12;
  std::normal_distribution<double> N01;
  std::vector<double> costs(B * n * n);
  for (auto& x : costs) x = std::floor(std::abs(N01(rng)) * 4);  // heavy ties
  std::vector<int64_t> r1(B * n), r3(B * n);
  std::vector<int> s1(B), s3(B);
  dpot::batch_assignment(costs.data(), B, n, 1, r1.data(), s1.data());
  dpot::batch_assignment(costs.data(), B, n, 3, r3.data(), s3.data());
  CHECK(r1 == r3, "batch differs between 1 and 3 threads");
  dpot::AssignmentSolver solver;
  for (int b = 0; b < B; ++b) {
    CHECK(s1[b] == dpot::kOk, "batch status");
    const double* c = costs.data() + b * n * n;
    std::vector<int64_t> a(n), g(n);
    std::vector<double> u(n), v(n);
    CHECK(solver.solve_with(dpot::Method::kDenseJV, c, n, n, a.data(), u.data(), v.data()) == dpot::kOk, "st");
    CHECK(solver.solve_with(dpot::Method::kSap, c, n, n, g.data()) == dpot::kOk, "st");
    double ca = 0, cg = 0;
    for (int i = 0; i < n; ++i) {
      ca += c[i * n + a[i]];
      cg += c[i * n + g[i]];
      CHECK(std::abs(u[i] + v[a[i]] - c[i * n + a[i]]) < 1e-9, "slackness");
      for (int j = 0; j < n; ++j) CHECK(u[i] + v[j] <= c[i * n + j] + 1e-9, "dual feasibility");
    }
    CHECK(ca == cg, "dense vs generic %.17g %.17g", ca, cg);  // integer costs: exact
  }
  // Pairing kernel: 1 vs 3 threads, and equal to solving the explicit cost matrix.
  const int blk = 32, d = 3;
  std::vector<double> x0(B * blk * d), x1(B * blk * d);
  for (auto& x : x0) x = N01(rng);
  for (auto& x : x1) x = N01(rng);
  std::vector<uint8_t> p1(B * blk), p3(B * blk);
  dpot::pair_blocks(x0.data(), x1.data(), B, blk, d, 1, p1.data(), s1.data());
  dpot::pair_blocks(x0.data(), x1.data(), B, blk, d, 3, p3.data(), s3.data());
  CHECK(p1 == p3, "pairings differ between thread counts");
  for (int b = 0; b < B; ++b) {
    std::vector<double> c(blk * blk);
    for (int k = 0; k < blk; ++k)
      for (int j = 0; j < blk; ++j) {
        double s = 0;
        for (int q = 0; q < d; ++q) {
          const double t = x1[(b * blk + k) * d + q] - x0[(b * blk + j) * d + q];
          s += t * t;
        }
        c[k * blk + j] = s;
      }
    std::vector<int64_t> g(blk);
    solver.solve_with(dpot::Method::kSap, c.data(), blk, blk, g.data());
    double cp = 0, cg = 0;
    for (int k = 0; k < blk; ++k) {
      cp += c[k * blk + p1[b * blk + k]];
      cg += c[k * blk + g[k]];
    }
    CHECK(std::abs(cp - cg) <= 1e-12 * cg, "pairing cost %.17g vs %.17g", cp, cg);
  }
}

// Larger square instances through the fast path (JV init + relaxation without stored
// predecessors, recovered on the augmenting path by recomputing candidates bit for bit):
// heavy ties (many equal candidates, so the "first scanned row" rule matters), integer costs,
// large magnitudes, and squared-Euclidean blocks. Oracle: a dual certificate (u_i + v_j <= c_ij,
// equality on the assignment) plus equality with the generic cold-start solver.
// Every dense start: JV, the eps-scaled auction, and the automatic choice between them.
// Kinds 5 and 6 are unstandardized clouds (different scale and offset; heavy tails), where the
// automatic choice takes the auction start.
void dense_stress(std::mt19937_64& rng) {
  dpot::AssignmentSolver solver;
  std::normal_distribution<double> N01;
  std::uniform_real_distribution<double> U01;
  for (const dpot::Method method :
       {dpot::Method::kDenseJV, dpot::Method::kDenseAuction, dpot::Method::kDense})
  for (int n : {2, 3, 7, 33, 100, 256}) {
    for (int kind = 0; kind < 7; ++kind) {
      std::vector<double> c(static_cast<size_t>(n) * n);
      if (kind >= 4) {  // squared Euclidean, N(0, I3) noise vs data, as in the pairing blocks
        std::vector<double> x0(n * 3), x1(n * 3);
        for (auto& x : x0) x = N01(rng);
        for (auto& x : x1) x = kind == 5 ? 2.0 * N01(rng) + 1.0 : N01(rng);
        if (kind == 6)  // unit Plummer sphere: radius from the inverse mass profile
          for (int i = 0; i < n; ++i) {
            const double r = 1.0 / std::sqrt(std::pow(U01(rng), -2.0 / 3.0) - 1.0);
            const double q = std::sqrt(x1[i * 3] * x1[i * 3] + x1[i * 3 + 1] * x1[i * 3 + 1] +
                                       x1[i * 3 + 2] * x1[i * 3 + 2]);
            for (int k = 0; k < 3; ++k) x1[i * 3 + k] *= r / q;
          }
        for (int i = 0; i < n; ++i)
          for (int j = 0; j < n; ++j) {
            double s = 0;
            for (int q = 0; q < 3; ++q) {
              const double t = x1[i * 3 + q] - x0[j * 3 + q];
              s += t * t;
            }
            c[i * n + j] = s;
          }
      }
      for (auto& x : c) {
        if (kind == 0) x = static_cast<double>(rng() % 2);                  // 0/1: extreme ties
        if (kind == 1) x = static_cast<double>(rng() % 17);                 // small integers
        if (kind == 2) x = static_cast<double>(rng() % 100000) * 1e9;       // large integers
        if (kind == 3) x = 1e15 + static_cast<double>(rng() % 1000) * 4.0;  // large offset
      }
      std::vector<int64_t> a(n), g(n);
      std::vector<double> u(n), v(n);
      CHECK(solver.solve_with(method, c.data(), n, n, a.data(), u.data(), v.data()) == dpot::kOk,
            "status n=%d kind=%d", n, kind);
      CHECK(solver.solve_with(dpot::Method::kSap, c.data(), n, n, g.data()) == dpot::kOk, "generic status");
      double cmax = 0, ca = 0, cg = 0;
      for (double x : c) cmax = std::max(cmax, std::abs(x));
      std::vector<char> used(n, 0);
      for (int i = 0; i < n; ++i) {
        CHECK(a[i] >= 0 && a[i] < n && !used[a[i]], "not a permutation (n=%d kind=%d)", n, kind);
        if (a[i] >= 0 && a[i] < n) used[a[i]] = 1;
        const double base = kind == 3 ? 1e15 : 0.0;  // keep the integer sums below 2^53
        ca += c[i * n + a[i]] - base;
        cg += c[i * n + g[i]] - base;
      }
      // Duals are sums/differences of a few costs and, after the auction start, of its eps
      // steps (fractional even on integer costs: v = -7.7 gives u = c - v = 9.7 rounded, and
      // u + v = c - 2^-51). So: exact up to a few roundings of magnitude |c| + |v|.
      double vmax = 0;
      for (double x : v) vmax = std::max(vmax, std::abs(x));
      const double tol = kind >= 4 ? 1e-12 * cmax : 4 * 0x1p-52 * (cmax + vmax);
      int bad = 0;
      for (int i = 0; i < n; ++i) {
        if (std::abs(u[i] + v[a[i]] - c[i * n + a[i]]) > tol) ++bad;
        for (int j = 0; j < n; ++j)
          if (u[i] + v[j] > c[i * n + j] + tol) ++bad;
      }
      CHECK(bad == 0, "dual certificate fails at %d entries (n=%d kind=%d)", bad, n, kind);
      // integer kinds: sums exact; float kind: same optimum up to summation rounding
      CHECK(kind >= 4 ? std::abs(ca - cg) <= 1e-12 * std::abs(cg) : ca == cg,
            "dense %.17g vs generic %.17g (n=%d kind=%d)", ca, cg, n, kind);
    }
  }
}

// The scipy-order variant against brute force (ties, +inf, rectangular), and solve()'s
// choice: equal to the scipy-order result on tied problems, to the fast path's on unique ones.
void scipy_order_and_ties(std::mt19937_64& rng) {
  dpot::AssignmentSolver solver;
  std::uniform_real_distribution<double> U(-5, 5);
  for (int trial = 0; trial < 2000; ++trial) {
    const int nr = 1 + static_cast<int>(rng() % 6), nc = nr + static_cast<int>(rng() % 3);
    const int kind = static_cast<int>(rng() % 3);
    std::vector<double> c(nr * nc);
    for (auto& x : c) {
      if (kind == 0) x = static_cast<double>(rng() % 3);   // ties
      if (kind == 1) x = (rng() % 4 == 0) ? kInf : static_cast<double>(rng() % 4);
      if (kind == 2) x = U(rng);
    }
    const double ref = brute(c, nr, nc);
    std::vector<int64_t> s(nr), a(nr), rows(nr);
    std::iota(rows.begin(), rows.end(), int64_t{0});
    const int st = solver.solve_with(dpot::Method::kScipyOrder, c.data(), nr, nc, s.data());
    if (!(ref < kInf)) {
      CHECK(st == dpot::kInfeasible, "scipy order: expected infeasible, got %d", st);
      continue;
    }
    CHECK(st == dpot::kOk, "scipy order status %d", st);
    check_valid(rows, s, nr, nc);
    // integer kinds: exact; uniform kind: <= 6 roundings of magnitude 5
    CHECK(std::abs(cost_of(c, nc, rows, s) - ref) <= 1e-12 * 30, "scipy order cost");
    CHECK(solver.solve(c.data(), nr, nc, a.data()) == dpot::kOk, "solve status");
    if (kind != 2) CHECK(a == s, "solve() differs from the scipy order on a tied problem");
  }
  // Constant costs: scipy returns the identity (its own test for issue 11602).
  for (int n : {1, 2, 8, 33}) {
    std::vector<double> c(n * n, 1.0);
    std::vector<int64_t> a(n), id(n);
    std::iota(id.begin(), id.end(), int64_t{0});
    CHECK(solver.solve(c.data(), n, n, a.data()) == dpot::kOk && a == id, "constant n=%d", n);
  }
  // Continuous costs: the optimum is unique, so solve() keeps the fast path's answer.
  std::normal_distribution<double> N01;
  for (int n : {16, 64, 200}) {
    std::vector<double> c(n * n);
    for (auto& x : c) x = N01(rng);
    std::vector<int64_t> a(n), s(n);
    solver.solve(c.data(), n, n, a.data());
    solver.solve_with(dpot::Method::kScipyOrder, c.data(), n, n, s.data());
    CHECK(a == s, "unique optimum differs between paths (n=%d)", n);
  }
}

// The tight-mask kernel of the active SIMD level against the scalar definition: every length
// 1..100 (the 16-column blocks, the 64-column words and the tails), exact ties, +-inf and NaN.
void tight_mask_kernel(std::mt19937_64& rng) {
  const dpot::detail::TightMaskFn tight = dpot::detail::tight_mask_kernel();
  const double nan = std::numeric_limits<double>::quiet_NaN();
  const double cvals[] = {0.0, 1.0, 2.0, -1.0, 0.5, kInf, nan, -0.0};
  const double vvals[] = {0.0, 1.0, -1.0, 0.5, -0.0};
  for (int trial = 0; trial < 2000; ++trial) {
    const int n = 1 + trial % 100;
    std::vector<double> c(n), v(n);
    for (auto& x : c) x = cvals[rng() % 8];
    for (auto& x : v) x = vvals[rng() % 5];
    const double thr = cvals[rng() % 5];
    const int nw = (n + 63) / 64;
    std::vector<uint64_t> w(nw + 1, 0xdeadbeefdeadbeefu);
    tight(c.data(), v.data(), thr, n, w.data());
    std::vector<uint64_t> ref(nw, 0);
    for (int k = 0; k < n; ++k)
      if ((c[k] - v[k]) <= thr) ref[k >> 6] |= uint64_t{1} << (k & 63);
    for (int q = 0; q < nw; ++q) CHECK(w[q] == ref[q], "tight mask n=%d word %d", n, q);
    CHECK(w[nw] == 0xdeadbeefdeadbeefu, "tight mask wrote past its words (n=%d)", n);
  }
}

// Reference for the uniqueness certificate, from solve_with's outputs: the same tight entries
// (scalar), reachability between columns by Warshall's closure; unique unless an alternating
// cycle exists or (nr < nc) a used column with v = 0 reaches an unused one.
bool reference_unique(const std::vector<double>& c, int nr, int nc,
                      const std::vector<int64_t>& col4row, const std::vector<double>& v) {
  double vmax = 0.0;
  for (int j = 0; j < nc; ++j) vmax = std::max(vmax, std::abs(v[j]));
  std::vector<int> row4col(nc, -1);
  for (int i = 0; i < nr; ++i) row4col[col4row[i]] = i;
  std::vector<char> reach(nc * nc, 0);
  for (int i = 0; i < nr; ++i) {
    const int64_t m = col4row[i];
    const double h = c[i * nc + m] - v[m];
    const double thr = h + 1e-12 * (std::abs(c[i * nc + m]) + vmax);
    for (int j = 0; j < nc; ++j)
      if (j != m && (c[i * nc + j] - v[j]) <= thr) reach[m * nc + j] = 1;
  }
  for (int k = 0; k < nc; ++k)
    for (int a = 0; a < nc; ++a)
      if (reach[a * nc + k])
        for (int b = 0; b < nc; ++b) reach[a * nc + b] |= reach[k * nc + b];
  for (int a = 0; a < nc; ++a)
    if (reach[a * nc + a]) return false;
  if (nr < nc)
    for (int j = 0; j < nc; ++j)
      if (row4col[j] >= 0 && std::abs(v[j]) <= 1e-12 * vmax)
        for (int f = 0; f < nc; ++f)
          if (row4col[f] < 0 && reach[j * nc + f]) return false;
  return true;
}

// Number of optimal injections of the rows into the columns (exact costs: small integers).
int count_optima(const std::vector<double>& c, int nr, int nc, double best) {
  std::vector<char> used(nc, 0);
  int count = 0;
  auto rec = [&](auto&& self, int i, double s) -> void {
    if (i == nr) {
      count += s == best;
      return;
    }
    for (int j = 0; j < nc; ++j)
      if (!used[j]) {
        used[j] = 1;
        self(self, i + 1, s + c[i * nc + j]);
        used[j] = 0;
      }
  };
  rec(rec, 0, 0.0);
  return count;
}

// The uniqueness certificate: against the brute-force count of optima on small integer
// problems, and against reference_unique on larger ones (several tight entries per row, both
// answers, square and rectangular, sizes around the kernels' 16- and 32-column steps).
void uniqueness_certificate(std::mt19937_64& rng) {
  dpot::AssignmentSolver solver;
  std::normal_distribution<double> N01;
  for (int trial = 0; trial < 1500; ++trial) {
    const int nr = 1 + static_cast<int>(rng() % 6), nc = nr + static_cast<int>(rng() % 3);
    const int levels = 2 + static_cast<int>(rng() % 6);
    std::vector<double> c(nr * nc);
    for (auto& x : c) x = static_cast<double>(rng() % levels);
    std::vector<int64_t> a(nr);
    std::vector<double> u(nr), v(nc);
    CHECK(solver.solve_with(dpot::Method::kAuto, c.data(), nr, nc, a.data(), u.data(),
                            v.data()) == dpot::kOk, "status");
    const double best = brute(c, nr, nc);
    const bool unique = count_optima(c, nr, nc, best) == 1;
    CHECK(dpot::AssignmentSolverTest::unique_optimum(solver, c.data(), nr, nc) == unique,
          "certificate vs brute force (%dx%d)", nr, nc);
  }
  int answers[2] = {0, 0};
  for (int trial = 0; trial < 240; ++trial) {
    const int sizes[] = {15, 16, 17, 31, 32, 33, 47, 64, 65, 70};
    const int nr = sizes[trial % 10], nc = nr + (trial % 3 == 0 ? static_cast<int>(rng() % 5) : 0);
    const int kind = static_cast<int>(rng() % 3);
    std::vector<double> c(nr * nc);
    for (auto& x : c) {
      if (kind == 0) x = static_cast<double>(rng() % 40);  // a few ties
      if (kind == 1) x = static_cast<double>(rng() % 400) * 0.25;  // rare ties
      if (kind == 2) x = N01(rng);  // unique, several tight entries per row
    }
    std::vector<int64_t> a(nr);
    std::vector<double> u(nr), v(nc);
    CHECK(solver.solve_with(dpot::Method::kAuto, c.data(), nr, nc, a.data(), u.data(),
                            v.data()) == dpot::kOk, "status");
    const bool ref = reference_unique(c, nr, nc, a, v);
    const bool got = dpot::AssignmentSolverTest::unique_optimum(solver, c.data(), nr, nc);
    CHECK(got == ref, "certificate %d vs reference %d (%dx%d kind %d)", got, ref, nr, nc, kind);
    ++answers[got];
  }
  CHECK(answers[0] > 20 && answers[1] > 20, "both answers: %d not unique, %d unique", answers[0],
        answers[1]);
}

void invalid_inputs() {
  const double nan = std::numeric_limits<double>::quiet_NaN();
  std::vector<double> c = {1, nan, 2, 3};
  int64_t r[2], k[2];
  CHECK(dpot::linear_sum_assignment(c.data(), 2, 2, r, k) == dpot::kInvalid, "nan");
  c = {1, -kInf, 2, 3};
  CHECK(dpot::linear_sum_assignment(c.data(), 2, 2, r, k) == dpot::kInvalid, "-inf");
  c = {kInf, kInf, 2, 3};
  CHECK(dpot::linear_sum_assignment(c.data(), 2, 2, r, k) == dpot::kInfeasible, "inf row");
}

}  // namespace

int main() {
  std::mt19937_64 rng(12345);
  for (bool simd : {true, false}) {
    std::printf("simd level: %s\n", dpot::set_simd_enabled(simd));
    random_instances(rng);
    dense_duals_and_batch(rng);
    dense_stress(rng);
    tight_mask_kernel(rng);
    uniqueness_certificate(rng);
    scipy_order_and_ties(rng);
  }
  invalid_inputs();
  std::printf("%s (%d failures)\n", g_failures ? "FAIL" : "OK", g_failures);
  return g_failures ? 1 : 0;
}
