// Micro-benchmark (not a ctest): CPU time per 256x256 squared-Euclidean block between N(0, I3)
// noise and data, for each dense start (JV, eps-scaled auction, the automatic choice) and for
// solve() (the automatic choice plus the uniqueness certificate); every optimum is checked
// against Method::kSap first.
// Usage: bench_square [blocks=40] [reps=5] [data=0]
//   data 0: N(0, I3) (standardized); 1: 2 N(0, I3) + 1 (raw: other scale and offset);
//   2: a unit Plummer sphere (raw: heavy tails)
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
  const int data = argc > 3 ? std::atoi(argv[3]) : 0;
  const int n = 256;
  std::mt19937_64 rng(7);
  std::normal_distribution<double> N01;
  std::uniform_real_distribution<double> U01;
  std::vector<double> costs(static_cast<size_t>(B) * n * n);
  for (int b = 0; b < B; ++b) {
    std::vector<double> x0(n * 3), x1(n * 3);
    for (auto& x : x0) x = N01(rng);
    for (auto& x : x1) x = data == 1 ? 2.0 * N01(rng) + 1.0 : N01(rng);
    if (data == 2)
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
        costs[(static_cast<size_t>(b) * n + i) * n + j] = s;
      }
  }
  const dpot::Method methods[] = {dpot::Method::kDenseJV, dpot::Method::kDenseAuction,
                                  dpot::Method::kDense};
  const char* names[] = {"JV start", "auction start", "chosen start"};
  dpot::AssignmentSolver solver;
  std::vector<int64_t> a(n), g(n);
  for (int b = 0; b < B; ++b) {
    const double* c = costs.data() + static_cast<size_t>(b) * n * n;
    solver.solve_with(dpot::Method::kSap, c, n, n, g.data());
    double cg = 0;
    for (int i = 0; i < n; ++i) cg += c[i * n + g[i]];
    for (const dpot::Method m : methods) {
      solver.solve_with(m, c, n, n, a.data());
      double ca = 0;
      for (int i = 0; i < n; ++i) ca += c[i * n + a[i]];
      if (std::abs(ca - cg) > 1e-12 * cg) std::printf("MISMATCH block %d: %.17g vs %.17g\n", b, ca, cg);
    }
  }
  for (bool simd : {true, false}) {
    const char* lvl = dpot::set_simd_enabled(simd);
    std::printf("%s (data %d):", lvl, data);
    for (int k = 0; k < 3; ++k) {
      double best = 1e9;
      for (int r = 0; r < reps; ++r) {
        const double t = cpu_s();
        for (int b = 0; b < B; ++b)
          solver.solve_with(methods[k], costs.data() + static_cast<size_t>(b) * n * n, n, n, a.data());
        best = std::min(best, (cpu_s() - t) / B);
      }
      std::printf("  %s %.3f ms", names[k], best * 1e3);
    }
    double best_solve = 1e9;
    for (int r = 0; r < reps; ++r) {
      const double t = cpu_s();
      for (int b = 0; b < B; ++b) solver.solve(costs.data() + static_cast<size_t>(b) * n * n, n, n, a.data());
      best_solve = std::min(best_solve, (cpu_s() - t) / B);
    }
    std::printf("  solve() %.3f ms per block\n", best_solve * 1e3);
  }
  return 0;
}
