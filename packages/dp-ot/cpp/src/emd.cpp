// Exact earth mover's distance: successive shortest paths on the dense bipartite transport
// network (rows = sources with supply a_i, columns = sinks with demand b_j, uncapacitated arcs
// i->j of cost M_ij; residual arcs j->i where flow is positive). Dijkstra on reduced costs
// with node potentials; every augmentation exhausts a supply, a demand or a residual arc.
#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "dpot/dpot.hpp"

namespace dpot {
namespace {
constexpr double kInf = std::numeric_limits<double>::infinity();
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
  // Potentials: reduced cost r_ij = M_ij + pr_i - pc_j >= 0.
  std::vector<double> pr(n, 0.0), pc(m, kInf);
  for (int64_t i = 0; i < n; ++i)
    for (int64_t j = 0; j < m; ++j) pc[j] = std::min(pc[j], M[i * m + j]);
  if (n == 0 || m == 0) {
    for (int64_t i = 0; i < n; ++i) alpha[i] = 0.0;
    for (int64_t j = 0; j < m; ++j) beta[j] = 0.0;
    return kOk;
  }
  std::vector<double> supply(a, a + n), demand(b, b + m);
  std::vector<double> dist(n + m);
  std::vector<int64_t> pred(n + m);
  std::vector<char> visited(n + m);
  int64_t iter = 0;
  int status = kOk;
  auto remaining = [&]() {
    bool s = false, t = false;
    for (int64_t i = 0; i < n && !s; ++i) s = supply[i] > 0.0;
    for (int64_t j = 0; j < m && !t; ++j) t = demand[j] > 0.0;
    return s && t;
  };
  while (remaining()) {
    if (iter++ >= max_iter) {
      status = kMaxIter;
      break;
    }
    // Dense Dijkstra from every row with supply left (distance 0).
    for (int64_t i = 0; i < n; ++i) {
      dist[i] = supply[i] > 0.0 ? 0.0 : kInf;
      pred[i] = -1;
    }
    std::fill(dist.begin() + n, dist.end(), kInf);
    std::fill(visited.begin(), visited.end(), 0);
    int64_t sink = -1;
    double dsink = kInf;
    while (true) {
      int64_t u = -1;
      double du = kInf;
      for (int64_t k = 0; k < n + m; ++k)
        if (!visited[k] && dist[k] < du) {
          du = dist[k];
          u = k;
        }
      if (u < 0) break;
      visited[u] = 1;
      if (u < n) {
        const double* row = M + u * m;
        for (int64_t j = 0; j < m; ++j) {
          if (visited[n + j]) continue;
          const double nd = du + std::max(0.0, row[j] + pr[u] - pc[j]);
          if (nd < dist[n + j]) {
            dist[n + j] = nd;
            pred[n + j] = u;
          }
        }
      } else {
        const int64_t j = u - n;
        if (demand[j] > 0.0) {
          sink = j;
          dsink = du;
          break;
        }
        for (int64_t i = 0; i < n; ++i) {
          if (visited[i] || !(G[i * m + j] > 0.0)) continue;
          // residual arc j -> i has reduced cost -r_ij = 0 up to rounding
          const double nd = du + std::max(0.0, -(M[i * m + j] + pr[i] - pc[j]));
          if (nd < dist[i]) {
            dist[i] = nd;
            pred[i] = u;
          }
        }
      }
    }
    if (sink < 0) {
      status = kInfeasible;
      break;
    }
    // Potentials: shift by min(dist, dsink); keeps reduced costs >= 0 and zero on the path.
    for (int64_t i = 0; i < n; ++i) pr[i] += std::min(dist[i], dsink);
    for (int64_t j = 0; j < m; ++j) pc[j] += std::min(dist[n + j], dsink);
    // Bottleneck along the path.
    int64_t node = n + sink;
    double delta = demand[sink];
    int64_t src = -1;
    while (true) {
      const int64_t p = pred[node];
      if (p < 0) {
        src = node;
        break;
      }
      if (node < n) delta = std::min(delta, G[node * m + (p - n)]);  // residual arc p -> node
      node = p;
    }
    delta = std::min(delta, supply[src]);
    // Apply: the arc(s) attaining the bottleneck are set exactly to zero.
    node = n + sink;
    while (pred[node] >= 0) {
      const int64_t p = pred[node];
      if (node >= n) {
        G[p * m + (node - n)] += delta;
      } else {
        double& g = G[node * m + (p - n)];
        g = g <= delta ? 0.0 : g - delta;
      }
      node = p;
    }
    supply[src] = supply[src] <= delta ? 0.0 : supply[src] - delta;
    demand[sink] = demand[sink] <= delta ? 0.0 : demand[sink] - delta;
  }
  // r_ij >= 0 holds throughout, so alpha_i = -pr_i, beta_j = pc_j satisfy alpha_i + beta_j <= M_ij.
  double c = 0.0;
  for (int64_t i = 0; i < n; ++i) {
    alpha[i] = -pr[i];
    for (int64_t j = 0; j < m; ++j) c += G[i * m + j] * M[i * m + j];
  }
  for (int64_t j = 0; j < m; ++j) beta[j] = pc[j];
  *cost = c;
  return status;
}

}  // namespace dpot
