// Batched solves over a pool of std::threads. Work is handed out one problem at a time from an
// atomic counter; every problem is solved independently and deterministically, so results do
// not depend on the number of threads.
#include <algorithm>
#include <atomic>
#include <cmath>
#include <thread>
#include <vector>

#include "dpot/dpot.hpp"

namespace dpot {
namespace {

template <class Fn>
void parallel_for(int64_t count, int threads, Fn&& fn) {
  const int nt = static_cast<int>(std::max<int64_t>(1, std::min<int64_t>(threads, count)));
  std::atomic<int64_t> next{0};
  auto worker = [&](int tid) {
    AssignmentSolver solver;
    std::vector<double> scratch;
    for (int64_t b = next++; b < count; b = next++) fn(b, solver, scratch);
    (void)tid;
  };
  if (nt == 1) {
    worker(0);
    return;
  }
  std::vector<std::thread> pool;
  pool.reserve(nt - 1);
  for (int t = 1; t < nt; ++t) pool.emplace_back(worker, t);
  worker(0);
  for (auto& th : pool) th.join();
}

}  // namespace

void batch_assignment(const double* costs, int64_t batch, int64_t n, int threads,
                      int64_t* col4row, int* status) {
  parallel_for(batch, threads, [&](int64_t b, AssignmentSolver& solver, std::vector<double>&) {
    status[b] = solver.solve(costs + b * n * n, n, n, col4row + b * n);
  });
}

void pair_blocks(const double* x0, const double* x1, int64_t batch, int64_t block, int64_t dim,
                 int threads, uint8_t* out, int* status) {
  if (block > 256) {
    for (int64_t b = 0; b < batch; ++b) status[b] = kInvalid;
    return;
  }
  parallel_for(batch, threads,
               [&](int64_t b, AssignmentSolver& solver, std::vector<double>& cost) {
                 cost.resize(static_cast<size_t>(block * block));
                 const double* p1 = x1 + b * block * dim;
                 const double* p0 = x0 + b * block * dim;
                 bool finite = true;
                 for (int64_t k = 0; k < block; ++k)
                   for (int64_t j = 0; j < block; ++j) {
                     double s = 0.0;
                     for (int64_t q = 0; q < dim; ++q) {
                       const double t = p1[k * dim + q] - p0[j * dim + q];
                       s += t * t;
                     }
                     cost[k * block + j] = s;
                     finite = finite && std::isfinite(s);
                   }
                 if (!finite) {
                   status[b] = kInvalid;
                   return;
                 }
                 int64_t c4r[256];
                 status[b] = solver.solve(cost.data(), block, block, c4r, nullptr, nullptr,
                                          Ties::kAny);
                 for (int64_t k = 0; k < block; ++k) out[b * block + k] = static_cast<uint8_t>(c4r[k]);
               });
}

}  // namespace dpot
