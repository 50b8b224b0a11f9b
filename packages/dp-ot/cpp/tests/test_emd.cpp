// The network simplex EMD: (1) exact marginals, (2) the plan's cost equals the dual objective
// sum a_i alpha_i + sum b_j beta_j with feasible duals (strong duality certifies optimality),
// on small problems with zero weights and ties and on larger ones (up to 120 x 90),
// (3) for uniform equal sizes the cost equals the brute-force assignment optimum / n,
// (4) the pivot limit reports kMaxIter.
#include <algorithm>
#include <cmath>
#include <numeric>
#include <random>
#include <vector>

#include "check.hpp"
#include "dpot/dpot.hpp"

int main() {
  std::mt19937_64 rng(7);
  std::uniform_real_distribution<double> U(0, 1);
  for (int trial = 0; trial < 430; ++trial) {
    const bool big = trial >= 400;
    const int n = big ? 60 + static_cast<int>(rng() % 61) : 1 + static_cast<int>(rng() % 9);
    const int m = big ? 60 + static_cast<int>(rng() % 31) : 1 + static_cast<int>(rng() % 9);
    std::vector<double> a(n), b(m), M(n * m), G(n * m, 0.0), al(n), be(m);
    for (auto& x : a) x = (rng() % 5 == 0) ? 0.0 : U(rng);
    for (auto& x : b) x = (rng() % 5 == 0) ? 0.0 : U(rng);
    a[0] += 0.1;
    b[0] += 0.1;
    const double sa = std::accumulate(a.begin(), a.end(), 0.0);
    const double sb = std::accumulate(b.begin(), b.end(), 0.0);
    for (auto& x : b) x *= sa / sb;
    const bool ints = trial % 2;
    for (auto& x : M) x = ints ? static_cast<double>(rng() % 4) : U(rng) * 10 - 3;
    double cost;
    const int st = dpot::emd(a.data(), b.data(), M.data(), n, m, 100000, G.data(), al.data(),
                             be.data(), &cost);
    CHECK(st == dpot::kOk, "status %d", st);
    double dual = 0;
    for (int i = 0; i < n; ++i) {
      double rs = 0;
      for (int j = 0; j < m; ++j) {
        rs += G[i * m + j];
        CHECK(G[i * m + j] >= 0, "negative flow");
        CHECK(al[i] + be[j] <= M[i * m + j] + 1e-9, "dual infeasible");
        if (G[i * m + j] > 1e-12) CHECK(std::abs(al[i] + be[j] - M[i * m + j]) < 1e-9, "cs");
      }
      // flows are sums and differences of the weights (<= ~120 terms of size <= ~1)
      CHECK(std::abs(rs - a[i]) <= 1e-12, "row marginal %g vs %g", rs, a[i]);
      dual += a[i] * al[i];
    }
    for (int j = 0; j < m; ++j) {
      double cs = 0;
      for (int i = 0; i < n; ++i) cs += G[i * m + j];
      CHECK(std::abs(cs - b[j]) <= 1e-12, "col marginal %g vs %g", cs, b[j]);
      dual += b[j] * be[j];
    }
    CHECK(std::abs(dual - cost) <= 1e-9 * (1 + std::abs(cost)), "duality gap %g", dual - cost);
  }
  // uniform square: cost = optimal assignment / n (brute force over permutations)
  for (int trial = 0; trial < 100; ++trial) {
    const int n = 1 + static_cast<int>(rng() % 6);
    std::vector<double> a(n, 1.0 / n), M(n * n), G(n * n, 0.0), al(n), be(n);
    for (auto& x : M) x = U(rng);
    std::vector<int> p(n);
    std::iota(p.begin(), p.end(), 0);
    double best = 1e300;
    do {
      double s = 0;
      for (int i = 0; i < n; ++i) s += M[i * n + p[i]];
      best = std::min(best, s);
    } while (std::next_permutation(p.begin(), p.end()));
    double cost;
    dpot::emd(a.data(), a.data(), M.data(), n, n, 100000, G.data(), al.data(), be.data(), &cost);
    CHECK(std::abs(cost - best / n) <= 1e-12, "uniform cost %.17g vs %.17g", cost, best / n);
  }
  {  // pivot limit
    const int n = 12;
    std::vector<double> a(n), M(n * n), G(n * n, 0.0), al(n), be(n);
    for (auto& x : a) x = 0.5 + U(rng);
    for (auto& x : M) x = U(rng);
    double cost;
    const int st = dpot::emd(a.data(), a.data(), M.data(), n, n, 1, G.data(), al.data(),
                             be.data(), &cost);
    CHECK(st == dpot::kMaxIter, "expected kMaxIter, got %d", st);
  }
  std::printf("%s (%d failures)\n", g_failures ? "FAIL" : "OK", g_failures);
  return g_failures ? 1 : 0;
}
