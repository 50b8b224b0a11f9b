// Internal: the Dijkstra relaxation kernel with run-time SIMD dispatch.
#pragma once

#include <cstdint>

namespace dpot::detail {

/// One relaxation + selection step of the shortest-augmenting-path search.
/// For k in [0, n): cand = c[k] - v[k] - h; if cand < d[k] then d[k] = cand, pred[k] = ip.
/// Returns the first index of the minimum of the updated d and stores that minimum in *dmin.
/// Done columns carry v = -inf and d = +inf, so they are never updated nor selected unless
/// every d is +inf.
using RelaxFn = int64_t (*)(const double* c, const double* v, double h, double* d, double* pred,
                            double ip, int64_t n, double* dmin);

RelaxFn relax_kernel();

/// Row scan of augmenting row reduction: smallest and second smallest of c[k] - v[k] with
/// their first indices.
using RowMin2Fn = void (*)(const double* c, const double* v, int64_t n, double* m1, int64_t* j1,
                           double* m2, int64_t* j2);

RowMin2Fn rowmin2_kernel();

}  // namespace dpot::detail
