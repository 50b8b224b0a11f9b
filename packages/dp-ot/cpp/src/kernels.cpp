// Relaxation kernels: a portable scalar version and an AVX2 version selected at run time with
// __builtin_cpu_supports (no -march flags needed; the AVX2 code is compiled per function).
#include "kernels.hpp"

#include <algorithm>
#include <cstdlib>
#include <limits>

#include "dpot/dpot.hpp"

#if defined(__x86_64__) || defined(_M_X64)
#define DPOT_X86 1
#include <immintrin.h>
#endif

namespace dpot::detail {
namespace {

constexpr double kInf = std::numeric_limits<double>::infinity();

[[maybe_unused]] int64_t relax_portable(const double* c, const double* v, double h, double* d, double* pred,
                       double ip, int64_t n, double* dmin) {
  double best = kInf;
  int64_t arg = 0;
  for (int64_t k = 0; k < n; ++k) {
    const double cand = (c[k] - v[k]) - h;
    double dk = d[k];
    if (cand < dk) {
      dk = cand;
      d[k] = cand;
      pred[k] = ip;
    }
    if (dk < best) {
      best = dk;
      arg = k;
    }
  }
  *dmin = best;
  return arg;
}

void rowmin2_portable(const double* c, const double* v, int64_t n, double* m1, int64_t* j1,
                      double* m2, int64_t* j2) {
  double a = kInf, b = kInf;
  int64_t ja = 0, jb = 0;
  for (int64_t k = 0; k < n; ++k) {
    const double h = c[k] - v[k];
    if (h < b) {
      if (h >= a) {
        b = h;
        jb = k;
      } else {
        b = a;
        jb = ja;
        a = h;
        ja = k;
      }
    }
  }
  *m1 = a;
  *j1 = ja;
  *m2 = b;
  *j2 = jb;
}

#ifdef DPOT_X86

// x86-64 baseline (SSE2, always present): the portable path on x86; no blendv, so blends are
// and/andnot/or. Same selection rule as relax_portable (first index of the minimum).
static inline __m128d blend2(__m128d a, __m128d b, __m128d m) {
  return _mm_or_pd(_mm_and_pd(m, b), _mm_andnot_pd(m, a));
}

int64_t relax_sse2(const double* c, const double* v, double h, double* d, double* pred, double ip,
                   int64_t n, double* dmin) {
  const __m128d vh = _mm_set1_pd(h), vip = _mm_set1_pd(ip), step = _mm_set1_pd(4.0);
  __m128d best0 = _mm_set1_pd(kInf), best1 = best0;
  __m128d bidx0 = _mm_setzero_pd(), bidx1 = bidx0;
  __m128d idx0 = _mm_setr_pd(0.0, 1.0), idx1 = _mm_setr_pd(2.0, 3.0);
  int64_t k = 0;
  for (; k + 4 <= n; k += 4) {
    const __m128d c0 = _mm_sub_pd(_mm_sub_pd(_mm_loadu_pd(c + k), _mm_loadu_pd(v + k)), vh);
    const __m128d c1 = _mm_sub_pd(_mm_sub_pd(_mm_loadu_pd(c + k + 2), _mm_loadu_pd(v + k + 2)), vh);
    __m128d d0 = _mm_loadu_pd(d + k), d1 = _mm_loadu_pd(d + k + 2);
    const __m128d u0 = _mm_cmplt_pd(c0, d0), u1 = _mm_cmplt_pd(c1, d1);
    d0 = _mm_min_pd(c0, d0);  // branch-free (see relax_avx2)
    d1 = _mm_min_pd(c1, d1);
    _mm_storeu_pd(d + k, d0);
    _mm_storeu_pd(d + k + 2, d1);
    _mm_storeu_pd(pred + k, blend2(_mm_loadu_pd(pred + k), vip, u0));
    _mm_storeu_pd(pred + k + 2, blend2(_mm_loadu_pd(pred + k + 2), vip, u1));
    const __m128d b0 = _mm_cmplt_pd(d0, best0), b1 = _mm_cmplt_pd(d1, best1);
    best0 = blend2(best0, d0, b0);
    best1 = blend2(best1, d1, b1);
    bidx0 = blend2(bidx0, idx0, b0);
    bidx1 = blend2(bidx1, idx1, b1);
    idx0 = _mm_add_pd(idx0, step);
    idx1 = _mm_add_pd(idx1, step);
  }
  alignas(16) double bv[4], bi[4];
  _mm_store_pd(bv, best0);
  _mm_store_pd(bv + 2, best1);
  _mm_store_pd(bi, bidx0);
  _mm_store_pd(bi + 2, bidx1);
  double best = kInf;
  int64_t arg = 0;
  bool have = false;
  for (int l = 0; l < 4; ++l) {
    const int64_t il = static_cast<int64_t>(bi[l]);
    if (bv[l] < best || (have && bv[l] == best && il < arg)) {
      best = bv[l];
      arg = il;
      have = true;
    }
  }
  for (; k < n; ++k) {
    const double cand = (c[k] - v[k]) - h;
    double dk = d[k];
    if (cand < dk) {
      dk = cand;
      d[k] = cand;
      pred[k] = ip;
    }
    if (dk < best) {
      best = dk;
      arg = k;
    }
  }
  *dmin = best;
  return arg;
}

__attribute__((target("avx512f"))) int64_t relax_avx512(const double* c, const double* v,
                                                         double h, double* d, double* pred,
                                                         double ip, int64_t n, double* dmin) {
  const __m512d vh = _mm512_set1_pd(h), vip = _mm512_set1_pd(ip), step = _mm512_set1_pd(8.0);
  __m512d best = _mm512_set1_pd(kInf), bidx = _mm512_setzero_pd();
  __m512d idx = _mm512_setr_pd(0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0);
  int64_t k = 0;
  for (; k + 8 <= n; k += 8) {
    const __m512d cand =
        _mm512_sub_pd(_mm512_sub_pd(_mm512_loadu_pd(c + k), _mm512_loadu_pd(v + k)), vh);
    __m512d dk = _mm512_loadu_pd(d + k);
    const __mmask8 upd = _mm512_cmp_pd_mask(cand, dk, _CMP_LT_OQ);
    dk = _mm512_mask_mov_pd(dk, upd, cand);
    _mm512_storeu_pd(d + k, dk);
    _mm512_mask_storeu_pd(pred + k, upd, vip);
    const __mmask8 b = _mm512_cmp_pd_mask(dk, best, _CMP_LT_OQ);
    best = _mm512_mask_mov_pd(best, b, dk);
    bidx = _mm512_mask_mov_pd(bidx, b, idx);
    idx = _mm512_add_pd(idx, step);
  }
  alignas(64) double bv[8], bi[8];
  _mm512_store_pd(bv, best);
  _mm512_store_pd(bi, bidx);
  double bst = kInf;
  int64_t arg = 0;
  bool have = false;
  for (int l = 0; l < 8; ++l) {
    const int64_t il = static_cast<int64_t>(bi[l]);
    if (bv[l] < bst || (have && bv[l] == bst && il < arg)) {
      bst = bv[l];
      arg = il;
      have = true;
    }
  }
  for (; k < n; ++k) {
    const double cd = (c[k] - v[k]) - h;
    double dd = d[k];
    if (cd < dd) {
      dd = cd;
      d[k] = cd;
      pred[k] = ip;
    }
    if (dd < bst) {
      bst = dd;
      arg = k;
    }
  }
  *dmin = bst;
  return arg;
}

__attribute__((target("avx2"))) int64_t relax_avx2(const double* c, const double* v, double h,
                                                    double* d, double* pred, double ip,
                                                    int64_t n, double* dmin) {
  // Pass 1 (branch-free): update d/pred and track the minimum value only (short dependency
  // chain). Pass 2: first index holding that value. Same result as relax_portable.
  const __m256d vh = _mm256_set1_pd(h);
  const __m256d vip = _mm256_set1_pd(ip);
  __m256d best0 = _mm256_set1_pd(kInf), best1 = best0;
  int64_t k = 0;
  for (; k + 8 <= n; k += 8) {
    __m256d c0 = _mm256_sub_pd(_mm256_sub_pd(_mm256_loadu_pd(c + k), _mm256_loadu_pd(v + k)), vh);
    __m256d c1 =
        _mm256_sub_pd(_mm256_sub_pd(_mm256_loadu_pd(c + k + 4), _mm256_loadu_pd(v + k + 4)), vh);
    __m256d d0 = _mm256_loadu_pd(d + k);
    __m256d d1 = _mm256_loadu_pd(d + k + 4);
    __m256d u0 = _mm256_cmp_pd(c0, d0, _CMP_LT_OQ);
    __m256d u1 = _mm256_cmp_pd(c1, d1, _CMP_LT_OQ);
    d0 = _mm256_min_pd(c0, d0);  // == (c0 < d0 ? c0 : d0)
    d1 = _mm256_min_pd(c1, d1);
    _mm256_storeu_pd(d + k, d0);
    _mm256_storeu_pd(d + k + 4, d1);
    _mm256_storeu_pd(pred + k, _mm256_blendv_pd(_mm256_loadu_pd(pred + k), vip, u0));
    _mm256_storeu_pd(pred + k + 4, _mm256_blendv_pd(_mm256_loadu_pd(pred + k + 4), vip, u1));
    best0 = _mm256_min_pd(d0, best0);
    best1 = _mm256_min_pd(d1, best1);
  }
  alignas(32) double bv[4];
  _mm256_store_pd(bv, _mm256_min_pd(best0, best1));
  double best = std::min(std::min(bv[0], bv[1]), std::min(bv[2], bv[3]));
  const int64_t kv = k;
  for (; k < n; ++k) {
    const double cand = (c[k] - v[k]) - h;
    if (cand < d[k]) {
      d[k] = cand;
      pred[k] = ip;
    }
    best = std::min(best, d[k]);
  }
  *dmin = best;
  if (!(best < kInf)) return 0;
  const __m256d vb = _mm256_set1_pd(best);
  int64_t q = 0;
  for (; q + 4 <= kv; q += 4) {
    const int mask = _mm256_movemask_pd(_mm256_cmp_pd(_mm256_loadu_pd(d + q), vb, _CMP_EQ_OQ));
    if (mask) return q + __builtin_ctz(static_cast<unsigned>(mask));
  }
  for (; q < n; ++q)
    if (d[q] == best) return q;
  return 0;
}

__attribute__((target("avx2"))) void rowmin2_avx2(const double* c, const double* v, int64_t n,
                                                   double* m1, int64_t* j1, double* m2,
                                                   int64_t* j2) {
  // Per lane: smallest (first index) and smallest among the others (first index), then an
  // exact merge, so the result equals rowmin2_portable's.
  const __m256d inf = _mm256_set1_pd(kInf);
  const __m256d four = _mm256_set1_pd(4.0);
  __m256d a = inf, b = inf, ia = _mm256_setzero_pd(), ib = ia;
  __m256d idx = _mm256_setr_pd(0.0, 1.0, 2.0, 3.0);
  int64_t k = 0;
  for (; k + 4 <= n; k += 4) {
    const __m256d h = _mm256_sub_pd(_mm256_loadu_pd(c + k), _mm256_loadu_pd(v + k));
    const __m256d lt_b = _mm256_cmp_pd(h, b, _CMP_LT_OQ);
    const __m256d lt_a = _mm256_cmp_pd(h, a, _CMP_LT_OQ);
    // h < a: b <- a, a <- h ; a <= h < b: b <- h
    const __m256d nb = _mm256_blendv_pd(h, a, lt_a);
    const __m256d nib = _mm256_blendv_pd(idx, ia, lt_a);
    b = _mm256_blendv_pd(b, nb, lt_b);
    ib = _mm256_blendv_pd(ib, nib, lt_b);
    a = _mm256_blendv_pd(a, h, lt_a);
    ia = _mm256_blendv_pd(ia, idx, lt_a);
    idx = _mm256_add_pd(idx, four);
  }
  alignas(32) double av[4], bv[4], ai[4], bi[4];
  _mm256_store_pd(av, a);
  _mm256_store_pd(bv, b);
  _mm256_store_pd(ai, ia);
  _mm256_store_pd(bi, ib);
  // candidates: (value, index); pick the (value, index)-smallest, then the next one.
  double cv[8];
  int64_t ci[8];
  int nc = 0;
  for (int l = 0; l < 4; ++l) {
    cv[nc] = av[l];
    ci[nc++] = static_cast<int64_t>(ai[l]);
    cv[nc] = bv[l];
    ci[nc++] = static_cast<int64_t>(bi[l]);
  }
  auto less = [](double x, int64_t ix, double y, int64_t iy) {
    return x < y || (x == y && ix < iy);
  };
  // tail elements (fewer than 4) become further candidates via the scalar rule below
  double A = kInf, B = kInf;
  int64_t JA = -1, JB = -1;
  auto push = [&](double h, int64_t i) {
    if (!(h < kInf)) return;
    if (JA < 0 || less(h, i, A, JA)) {
      B = A;
      JB = JA;
      A = h;
      JA = i;
    } else if (JB < 0 || less(h, i, B, JB)) {
      B = h;
      JB = i;
    }
  };
  for (int q = 0; q < nc; ++q) push(cv[q], ci[q]);
  for (; k < n; ++k) push(c[k] - v[k], k);
  *m1 = A;
  *j1 = JA < 0 ? 0 : JA;
  *m2 = B;
  *j2 = JB < 0 ? 0 : JB;
}
#endif

bool g_enabled = true;
// AVX-512 measured no faster than AVX2 on the 2-core EPYC (double-pumped): opt-in only.
bool g_avx512 = std::getenv("DPOT_AVX512") != nullptr;

}  // namespace

RelaxFn relax_kernel() {
#ifdef DPOT_X86
  if (g_enabled && g_avx512 && __builtin_cpu_supports("avx512f")) return relax_avx512;
  if (g_enabled && __builtin_cpu_supports("avx2")) return relax_avx2;
  return relax_sse2;
#else
  return relax_portable;
#endif
}

RowMin2Fn rowmin2_kernel() {
#ifdef DPOT_X86
  if (g_enabled && __builtin_cpu_supports("avx2")) return rowmin2_avx2;
#endif
  return rowmin2_portable;
}

}  // namespace dpot::detail

namespace dpot {

const char* simd_level() {
#ifdef DPOT_X86
  const detail::RelaxFn k = detail::relax_kernel();
  return k == detail::relax_avx512 ? "avx512" : k == detail::relax_avx2 ? "avx2" : "portable-sse2";
#else
  return "portable";
#endif
}

const char* set_simd_enabled(bool enabled) {
  detail::g_enabled = enabled;
  return simd_level();
}

}  // namespace dpot
