// Internal: the Dijkstra relaxation and row-scan kernels with run-time SIMD dispatch.
#pragma once

#include <cstdint>

namespace dpot::detail {

/// One relaxation + selection step of the shortest-augmenting-path search.
/// For k in [0, n): d[k] = min(d[k], (c[k] - v[k]) - h) (the candidate wins only if strictly
/// smaller). Returns the first index of the minimum of the updated d and stores that minimum in
/// *dmin. Done columns carry v = -inf and d = +inf, so they are never updated nor selected
/// unless every d is +inf. Predecessors are not stored: the caller recovers them afterwards
/// by recomputing the same candidates bit for bit.
using RelaxFn = int64_t (*)(const double* c, const double* v, double h, double* d, int64_t n,
                            double* dmin);

RelaxFn relax_kernel();

/// Row scan: with h_k = c[k] - v[k], *m1 = min h, *j1 its first index, *m2 the second
/// smallest h of the multiset (equal to *m1 when the minimum is attained twice). n >= 2.
using RowMin2Fn = void (*)(const double* c, const double* v, int64_t n, double* m1, int64_t* j1,
                           double* m2);

RowMin2Fn rowmin2_kernel();

/// Tight mask of a row, for the uniqueness certificate: bit (k & 63) of words[k >> 6] is set
/// exactly when c[k] - v[k] <= thr (an ordered comparison: false for NaN), for k in [0, n);
/// writes all (n + 63) / 64 words, the bits past n cleared.
using TightMaskFn = void (*)(const double* c, const double* v, double thr, int64_t n,
                             uint64_t* words);

TightMaskFn tight_mask_kernel();

/// Column reduction of a square n x n row-major matrix: v[j] = min_i c[i][j] and imin[j] the
/// first row attaining it.
using ColMinFn = void (*)(const double* c, int64_t n, double* v, int64_t* imin);

ColMinFn colmin_kernel();

/// True when no entry is NaN or +-inf (branch-free: x - x is 0 exactly for finite x).
bool all_finite(const double* x, int64_t n);

}  // namespace dpot::detail
