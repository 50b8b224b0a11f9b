// Micro-benchmark (not a ctest): CPU time per 256x256 squared-Euclidean block, N(0, I3) noise
// vs N(0, I3) data, for Method::kDenseJV and for solve() (the same plus the uniqueness
// certificate); every optimum checked against Method::kSap.
// Usage: bench_square [blocks=40] [reps=5]
#include <time.h>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <vector>

#include "dpot/dpot.hpp"

static double cpu_s() {
  timespec t;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
  return t.tv_sec + 1e-9 * t.tv_nsec;
}

int main(int argc, char** argv) {
  const int B = argc > 1 ? std::atoi(argv[1]) : 40, reps = argc > 2 ? std::atoi(argv[2]) : 5;
  const int n = 256;
  std::mt19937_64 rng(7);
  std::normal_distribution<double> N01;
  std::vector<double> costs(static_cast<size_t>(B) * n * n);
  for (int b = 0; b < B; ++b) {
    std::vector<double> x0(n * 3), x1(n * 3);
    for (auto& x : x0) x = N01(rng);
    for (auto& x : x1) x = N01(rng);
    for (int i = 0; i < n; ++i)
      for (int j = 0; j < n; ++j) {
        double s = 0;
        for (int q = 0; q < 3; ++q) s += (x1[i * 3 + q] - x0[j * 3 + q]) * (x1[i * 3 + q] - x0[j * 3 + q]);
        costs[(static_cast<size_t>(b) * n + i) * n + j] = s;
      }
  }
  dpot::AssignmentSolver solver;
  std::vector<int64_t> a(n), g(n);
  for (int b = 0; b < B; ++b) {
    const double* c = costs.data() + static_cast<size_t>(b) * n * n;
    solver.solve_with(dpot::Method::kDenseJV, c, n, n, a.data());
    solver.solve_with(dpot::Method::kSap, c, n, n, g.data());
    double ca = 0, cg = 0;
    for (int i = 0; i < n; ++i) ca += c[i * n + a[i]], cg += c[i * n + g[i]];
    if (std::abs(ca - cg) > 1e-12 * cg) std::printf("MISMATCH block %d: %.17g vs %.17g\n", b, ca, cg);
  }
  for (bool simd : {true, false}) {
    const char* lvl = dpot::set_simd_enabled(simd);
    double best = 1e9;
    for (int r = 0; r < reps; ++r) {
      const double t = cpu_s();
      for (int b = 0; b < B; ++b)
        solver.solve_with(dpot::Method::kDenseJV, costs.data() + static_cast<size_t>(b) * n * n, n, n, a.data());
      best = std::min(best, (cpu_s() - t) / B);
    }
    double best_solve = 1e9;
    for (int r = 0; r < reps; ++r) {
      const double t = cpu_s();
      for (int b = 0; b < B; ++b)
        solver.solve(costs.data() + static_cast<size_t>(b) * n * n, n, n, a.data());
      best_solve = std::min(best_solve, (cpu_s() - t) / B);
    }
    std::printf("%s: dense JV %.3f ms/block, solve() %.3f ms/block\n", lvl, best * 1e3,
                best_solve * 1e3);
  }
  return 0;
}
