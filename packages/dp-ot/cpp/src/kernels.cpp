// Relaxation, row-scan, column-reduction and tight-list kernels: a portable scalar version
// (non-x86 builds), the x86-64 SSE2 baseline and an AVX2 + FMA version selected at run time with
// __builtin_cpu_supports (no -march flags needed; the AVX2 code is compiled per function). Every
// variant returns bit-identical results: no contraction (-ffp-contract=off), min/max/compare
// only, the same operation order per element, and the AVX2 subtractions done as
// fnmadd(b, 1, a), which rounds exactly as a - b (see fsub).
#include "kernels.hpp"

#include <algorithm>
#include <limits>

#include "dpot/dpot.hpp"

#if defined(__x86_64__) || defined(_M_X64)
#define DPOT_X86 1
#include <immintrin.h>
#endif

namespace dpot::detail {
namespace {

constexpr double kInf = std::numeric_limits<double>::infinity();

[[maybe_unused]] int64_t relax_portable(const double* c, const double* v, double h, double* d,
                                        int64_t n, double* dmin) {
  double best = kInf;
  int64_t arg = 0;
  for (int64_t k = 0; k < n; ++k) {
    const double cand = (c[k] - v[k]) - h;
    const double dk = cand < d[k] ? cand : d[k];
    d[k] = dk;
    if (dk < best) {
      best = dk;
      arg = k;
    }
  }
  *dmin = best;
  return arg;
}

[[maybe_unused]] void rowmin2_portable(const double* c, const double* v, int64_t n, double* m1,
                                       int64_t* j1, double* m2) {
  double a = kInf, b = kInf;
  int64_t ja = 0;
  for (int64_t k = 0; k < n; ++k) {
    const double h = c[k] - v[k];
    if (h < b) {
      if (h >= a) {
        b = h;
      } else {
        b = a;
        a = h;
        ja = k;
      }
    }
  }
  *m1 = a;
  *j1 = ja;
  *m2 = b;
}

// Columns [j0, n) of the column reduction, one column at a time (the SIMD kernels' tail).
void colmin_cols(const double* c, int64_t n, int64_t j0, double* v, int64_t* imin) {
  for (int64_t j = j0; j < n; ++j) {
    double m = c[j];
    int64_t im = 0;
    for (int64_t i = 1; i < n; ++i) {
      const double x = c[i * n + j];
      im = x < m ? i : im;
      m = x < m ? x : m;
    }
    v[j] = m;
    imin[j] = im;
  }
}

[[maybe_unused]] void colmin_portable(const double* c, int64_t n, double* v, int64_t* imin) {
  colmin_cols(c, n, 0, v, imin);
}

// Columns [k, n) of a tight mask, one at a time; word holds the bits of [k & ~63, k).
inline void tight_mask_tail(const double* c, const double* v, double thr, int64_t k, int64_t n,
                            uint64_t word, uint64_t* words) {
  for (; k < n; ++k) {
    word |= static_cast<uint64_t>((c[k] - v[k]) <= thr) << (k & 63);
    if ((k & 63) == 63) {
      words[k >> 6] = word;
      word = 0;
    }
  }
  if (n & 63) words[n >> 6] = word;
}

// Appends the 16 mask bits of columns k..k+15 (k a multiple of 16) to the current 64-bit word,
// storing it once its last 16 columns are in: the SIMD kernels' common step.
inline void push16(unsigned bits, int64_t k, uint64_t& word, uint64_t* words) {
  word |= static_cast<uint64_t>(bits) << (k & 63);
  if ((k & 63) == 48) {
    words[k >> 6] = word;
    word = 0;
  }
}

[[maybe_unused]] void tight_mask_portable(const double* c, const double* v, double thr, int64_t n,
                                          uint64_t* words) {
  tight_mask_tail(c, v, thr, 0, n, 0, words);
}

#ifdef DPOT_X86

// a - b on the FMA ports: fnmadd(b, 1, a) = round(a - b * 1) = round(a - b), bit for bit the
// subtraction (b * 1 is exact and the FMA rounds once), including signed zeros and infinities.
// On AMD Zen 4 subtraction, min and max share two pipes while FMAs run on two others, so the
// AVX2 scans (two or three min/max per element) move their subtractions there.
__attribute__((target("avx2,fma"))) inline __m256d fsub(__m256d a, __m256d b) {
  return _mm256_fnmadd_pd(b, _mm256_set1_pd(1.0), a);
}

// Tight masks: branch-free, 16 columns per step, one 64-bit word stored per 64 columns. Each
// double's all-ones/zero compare mask is packed to 32 bits, so one movemask (ps) takes 4 (SSE2)
// or 8 (AVX2) columns. The scan used to append indices as it went (a branch per 4 columns,
// taken ~2 times per row, each a misprediction that also flushed the row's loads in flight):
// ~2x the cost of this pass.
void tight_mask_sse2(const double* c, const double* v, double thr, int64_t n, uint64_t* words) {
  const __m128d vt = _mm_set1_pd(thr);
  uint64_t word = 0;
  int64_t k = 0;
  for (; k + 16 <= n; k += 16) {
    __m128i m[8];
    for (int q = 0; q < 8; ++q)
      m[q] = _mm_castpd_si128(
          _mm_cmple_pd(_mm_sub_pd(_mm_loadu_pd(c + k + 2 * q), _mm_loadu_pd(v + k + 2 * q)), vt));
    unsigned bits = 0;
    for (int q = 0; q < 4; ++q)
      bits |= static_cast<unsigned>(_mm_movemask_ps(
                  _mm_castsi128_ps(_mm_packs_epi32(m[2 * q], m[2 * q + 1]))))
              << (4 * q);
    push16(bits, k, word, words);
  }
  tight_mask_tail(c, v, thr, k, n, word, words);
}

__attribute__((target("avx2,fma"))) void tight_mask_avx2(const double* c, const double* v,
                                                      double thr, int64_t n, uint64_t* words) {
  const __m256d vt = _mm256_set1_pd(thr);
  uint64_t word = 0;
  int64_t k = 0;
  for (; k + 16 <= n; k += 16) {
    __m256i m[4];
    for (int q = 0; q < 4; ++q)
      m[q] = _mm256_castpd_si256(_mm256_cmp_pd(
          fsub(_mm256_loadu_pd(c + k + 4 * q), _mm256_loadu_pd(v + k + 4 * q)), vt, _CMP_LE_OQ));
    // The pack works within 128-bit lanes (columns 0-1, 4-5 | 2-3, 6-7); vpermq restores the
    // column order.
    unsigned bits = 0;
    for (int q = 0; q < 2; ++q)
      bits |= static_cast<unsigned>(_mm256_movemask_ps(_mm256_castsi256_ps(_mm256_permute4x64_epi64(
                  _mm256_packs_epi32(m[2 * q], m[2 * q + 1]), 0xd8))))
              << (8 * q);
    push16(bits, k, word, words);
  }
  tight_mask_tail(c, v, thr, k, n, word, words);
}

// Column reduction, 8 (SSE2) or 16 (AVX2) columns at a time held in registers while the rows
// stream past: m = min(x, m) (== x < m ? x : m) and the row index taken where x < m, so the
// first row attaining the minimum wins, as in colmin_cols.
void colmin_sse2(const double* c, int64_t n, double* v, int64_t* imin) {
  int64_t j = 0;
  for (; j + 8 <= n; j += 8) {
    const double* p = c + j;
    __m128d m[4];
    __m128i im[4];
    for (int q = 0; q < 4; ++q) {
      m[q] = _mm_loadu_pd(p + 2 * q);
      im[q] = _mm_setzero_si128();
    }
    for (int64_t i = 1; i < n; ++i) {
      p += n;
      const __m128i ii = _mm_set1_epi64x(i);
      for (int q = 0; q < 4; ++q) {
        const __m128d x = _mm_loadu_pd(p + 2 * q);
        const __m128i lt = _mm_castpd_si128(_mm_cmplt_pd(x, m[q]));
        m[q] = _mm_min_pd(x, m[q]);
        im[q] = _mm_or_si128(_mm_and_si128(lt, ii), _mm_andnot_si128(lt, im[q]));
      }
    }
    for (int q = 0; q < 4; ++q) {
      _mm_storeu_pd(v + j + 2 * q, m[q]);
      _mm_storeu_si128(reinterpret_cast<__m128i*>(imin + j + 2 * q), im[q]);
    }
  }
  colmin_cols(c, n, j, v, imin);
}

__attribute__((target("avx2"))) void colmin_avx2(const double* c, int64_t n, double* v,
                                                  int64_t* imin) {
  int64_t j = 0;
  for (; j + 16 <= n; j += 16) {
    const double* p = c + j;
    __m256d m[4], im[4];  // im: int64 row indices, blended as doubles (bitwise)
    for (int q = 0; q < 4; ++q) {
      m[q] = _mm256_loadu_pd(p + 4 * q);
      im[q] = _mm256_setzero_pd();
    }
    for (int64_t i = 1; i < n; ++i) {
      p += n;
      const __m256d ii = _mm256_castsi256_pd(_mm256_set1_epi64x(i));
      for (int q = 0; q < 4; ++q) {
        const __m256d x = _mm256_loadu_pd(p + 4 * q);
        const __m256d lt = _mm256_cmp_pd(x, m[q], _CMP_LT_OQ);
        m[q] = _mm256_min_pd(x, m[q]);
        im[q] = _mm256_blendv_pd(im[q], ii, lt);
      }
    }
    for (int q = 0; q < 4; ++q) {
      _mm256_storeu_pd(v + j + 4 * q, m[q]);
      _mm256_storeu_pd(reinterpret_cast<double*>(imin + j + 4 * q), im[q]);
    }
  }
  colmin_cols(c, n, j, v, imin);
}

// x86-64 baseline (SSE2, always present): the portable path on x86.
int64_t relax_sse2(const double* c, const double* v, double h, double* d, int64_t n,
                   double* dmin) {
  const __m128d vh = _mm_set1_pd(h);
  __m128d best0 = _mm_set1_pd(kInf), best1 = best0;
  int64_t k = 0;
  for (; k + 4 <= n; k += 4) {
    const __m128d c0 = _mm_sub_pd(_mm_sub_pd(_mm_loadu_pd(c + k), _mm_loadu_pd(v + k)), vh);
    const __m128d c1 =
        _mm_sub_pd(_mm_sub_pd(_mm_loadu_pd(c + k + 2), _mm_loadu_pd(v + k + 2)), vh);
    const __m128d d0 = _mm_min_pd(c0, _mm_loadu_pd(d + k));  // == (c0 < d ? c0 : d)
    const __m128d d1 = _mm_min_pd(c1, _mm_loadu_pd(d + k + 2));
    _mm_storeu_pd(d + k, d0);
    _mm_storeu_pd(d + k + 2, d1);
    best0 = _mm_min_pd(d0, best0);
    best1 = _mm_min_pd(d1, best1);
  }
  alignas(16) double bv[2];
  _mm_store_pd(bv, _mm_min_pd(best0, best1));
  double best = std::min(bv[0], bv[1]);
  const int64_t kv = k;
  for (; k < n; ++k) {
    const double cand = (c[k] - v[k]) - h;
    d[k] = cand < d[k] ? cand : d[k];
    best = std::min(best, d[k]);
  }
  *dmin = best;
  if (!(best < kInf)) return 0;
  const __m128d vb = _mm_set1_pd(best);
  int64_t q = 0;
  for (; q + 2 <= kv; q += 2) {
    const int mask = _mm_movemask_pd(_mm_cmpeq_pd(_mm_loadu_pd(d + q), vb));
    if (mask) return q + __builtin_ctz(static_cast<unsigned>(mask));
  }
  for (; q < n; ++q)
    if (d[q] == best) return q;
  return 0;
}

void rowmin2_sse2(const double* c, const double* v, int64_t n, double* m1, int64_t* j1,
                  double* m2) {
  // Per lane: smallest a and second smallest b of the multiset (b = min(b, max(a, h))), four
  // independent accumulators merged in registers, then the first index of the overall minimum
  // in a second, early-exit pass.
  const __m128d inf = _mm_set1_pd(kInf);
  __m128d a0 = inf, b0 = inf, a1 = inf, b1 = inf, a2 = inf, b2 = inf, a3 = inf, b3 = inf;
  int64_t k = 0;
  for (; k + 8 <= n; k += 8) {
    const __m128d h0 = _mm_sub_pd(_mm_loadu_pd(c + k), _mm_loadu_pd(v + k));
    const __m128d h1 = _mm_sub_pd(_mm_loadu_pd(c + k + 2), _mm_loadu_pd(v + k + 2));
    const __m128d h2 = _mm_sub_pd(_mm_loadu_pd(c + k + 4), _mm_loadu_pd(v + k + 4));
    const __m128d h3 = _mm_sub_pd(_mm_loadu_pd(c + k + 6), _mm_loadu_pd(v + k + 6));
    b0 = _mm_min_pd(b0, _mm_max_pd(a0, h0));
    b1 = _mm_min_pd(b1, _mm_max_pd(a1, h1));
    b2 = _mm_min_pd(b2, _mm_max_pd(a2, h2));
    b3 = _mm_min_pd(b3, _mm_max_pd(a3, h3));
    a0 = _mm_min_pd(a0, h0);
    a1 = _mm_min_pd(a1, h1);
    a2 = _mm_min_pd(a2, h2);
    a3 = _mm_min_pd(a3, h3);
  }
  const auto merge = [](__m128d& a, __m128d& b, __m128d a2, __m128d b2) {
    b = _mm_min_pd(_mm_min_pd(b, b2), _mm_max_pd(a, a2));
    a = _mm_min_pd(a, a2);
  };
  merge(a0, b0, a1, b1);
  merge(a2, b2, a3, b3);
  merge(a0, b0, a2, b2);
  merge(a0, b0, _mm_shuffle_pd(a0, a0, 1), _mm_shuffle_pd(b0, b0, 1));
  double x = _mm_cvtsd_f64(a0), y = _mm_cvtsd_f64(b0);
  for (; k < n; ++k) {
    const double h = c[k] - v[k];
    y = std::min(y, std::max(x, h));
    x = std::min(x, h);
  }
  *m1 = x;
  *m2 = y;
  const __m128d vb = _mm_set1_pd(*m1);
  int64_t q = 0;
  for (; q + 2 <= n; q += 2) {
    const __m128d hq = _mm_sub_pd(_mm_loadu_pd(c + q), _mm_loadu_pd(v + q));
    const int mask = _mm_movemask_pd(_mm_cmpeq_pd(hq, vb));
    if (mask) {
      *j1 = q + __builtin_ctz(static_cast<unsigned>(mask));
      return;
    }
  }
  for (; q < n; ++q)
    if (c[q] - v[q] == *m1) break;
  *j1 = q;
}

__attribute__((target("avx2,fma"))) int64_t relax_avx2(const double* c, const double* v, double h,
                                                    double* d, int64_t n, double* dmin) {
  // Pass 1 (branch-free): update d and track the minimum value only (short dependency chain).
  // Pass 2: first index holding that value (early exit). Same result as relax_portable.
  const __m256d vh = _mm256_set1_pd(h);
  __m256d best0 = _mm256_set1_pd(kInf), best1 = best0;
  int64_t k = 0;
  for (; k + 8 <= n; k += 8) {
    const __m256d c0 =
        fsub(fsub(_mm256_loadu_pd(c + k), _mm256_loadu_pd(v + k)), vh);
    const __m256d c1 =
        fsub(fsub(_mm256_loadu_pd(c + k + 4), _mm256_loadu_pd(v + k + 4)), vh);
    const __m256d d0 = _mm256_min_pd(c0, _mm256_loadu_pd(d + k));  // == (c0 < d ? c0 : d)
    const __m256d d1 = _mm256_min_pd(c1, _mm256_loadu_pd(d + k + 4));
    _mm256_storeu_pd(d + k, d0);
    _mm256_storeu_pd(d + k + 4, d1);
    best0 = _mm256_min_pd(d0, best0);
    best1 = _mm256_min_pd(d1, best1);
  }
  alignas(32) double bv[4];
  _mm256_store_pd(bv, _mm256_min_pd(best0, best1));
  double best = std::min(std::min(bv[0], bv[1]), std::min(bv[2], bv[3]));
  const int64_t kv = k;
  for (; k < n; ++k) {
    const double cand = (c[k] - v[k]) - h;
    d[k] = cand < d[k] ? cand : d[k];
    best = std::min(best, d[k]);
  }
  *dmin = best;
  if (!(best < kInf)) return 0;
  const __m256d vb = _mm256_set1_pd(best);
  int64_t q = 0;
  // 16 columns per test (one branch), then the first hit inside them.
  for (; q + 16 <= kv; q += 16) {
    const __m256d e0 = _mm256_cmp_pd(_mm256_loadu_pd(d + q), vb, _CMP_EQ_OQ);
    const __m256d e1 = _mm256_cmp_pd(_mm256_loadu_pd(d + q + 4), vb, _CMP_EQ_OQ);
    const __m256d e2 = _mm256_cmp_pd(_mm256_loadu_pd(d + q + 8), vb, _CMP_EQ_OQ);
    const __m256d e3 = _mm256_cmp_pd(_mm256_loadu_pd(d + q + 12), vb, _CMP_EQ_OQ);
    const __m256d any = _mm256_or_pd(_mm256_or_pd(e0, e1), _mm256_or_pd(e2, e3));
    if (!_mm256_testz_pd(any, any)) {
      const unsigned mask = static_cast<unsigned>(_mm256_movemask_pd(e0)) |
                            static_cast<unsigned>(_mm256_movemask_pd(e1)) << 4 |
                            static_cast<unsigned>(_mm256_movemask_pd(e2)) << 8 |
                            static_cast<unsigned>(_mm256_movemask_pd(e3)) << 12;
      return q + __builtin_ctz(mask);
    }
  }
  for (; q + 4 <= kv; q += 4) {
    const int mask = _mm256_movemask_pd(_mm256_cmp_pd(_mm256_loadu_pd(d + q), vb, _CMP_EQ_OQ));
    if (mask) return q + __builtin_ctz(static_cast<unsigned>(mask));
  }
  for (; q < n; ++q)
    if (d[q] == best) return q;
  return 0;
}

// Merge two per-lane (smallest, second smallest) pairs of multisets into (a, b).
__attribute__((target("avx2,fma"))) inline void merge_two_smallest(__m256d& a, __m256d& b,
                                                                __m256d a2, __m256d b2) {
  b = _mm256_min_pd(_mm256_min_pd(b, b2), _mm256_max_pd(a, a2));
  a = _mm256_min_pd(a, a2);
}

__attribute__((target("avx2,fma"))) void rowmin2_avx2(const double* c, const double* v, int64_t n,
                                                   double* m1, int64_t* j1, double* m2) {
  // Four independent 4-wide (smallest, second smallest) accumulators (the min/max chains are
  // latency-bound otherwise), merged in registers; then the early-exit index pass.
  const __m256d inf = _mm256_set1_pd(kInf);
  __m256d a0 = inf, b0 = inf, a1 = inf, b1 = inf, a2 = inf, b2 = inf, a3 = inf, b3 = inf;
  int64_t k = 0;
  for (; k + 16 <= n; k += 16) {
    const __m256d h0 = fsub(_mm256_loadu_pd(c + k), _mm256_loadu_pd(v + k));
    const __m256d h1 = fsub(_mm256_loadu_pd(c + k + 4), _mm256_loadu_pd(v + k + 4));
    const __m256d h2 = fsub(_mm256_loadu_pd(c + k + 8), _mm256_loadu_pd(v + k + 8));
    const __m256d h3 = fsub(_mm256_loadu_pd(c + k + 12), _mm256_loadu_pd(v + k + 12));
    b0 = _mm256_min_pd(b0, _mm256_max_pd(a0, h0));
    b1 = _mm256_min_pd(b1, _mm256_max_pd(a1, h1));
    b2 = _mm256_min_pd(b2, _mm256_max_pd(a2, h2));
    b3 = _mm256_min_pd(b3, _mm256_max_pd(a3, h3));
    a0 = _mm256_min_pd(a0, h0);
    a1 = _mm256_min_pd(a1, h1);
    a2 = _mm256_min_pd(a2, h2);
    a3 = _mm256_min_pd(a3, h3);
  }
  for (; k + 4 <= n; k += 4) {
    const __m256d h = fsub(_mm256_loadu_pd(c + k), _mm256_loadu_pd(v + k));
    b0 = _mm256_min_pd(b0, _mm256_max_pd(a0, h));
    a0 = _mm256_min_pd(a0, h);
  }
  merge_two_smallest(a0, b0, a1, b1);
  merge_two_smallest(a2, b2, a3, b3);
  merge_two_smallest(a0, b0, a2, b2);
  merge_two_smallest(a0, b0, _mm256_permute2f128_pd(a0, a0, 1), _mm256_permute2f128_pd(b0, b0, 1));
  merge_two_smallest(a0, b0, _mm256_permute_pd(a0, 5), _mm256_permute_pd(b0, 5));
  double x = _mm256_cvtsd_f64(a0), y = _mm256_cvtsd_f64(b0);
  for (; k < n; ++k) {
    const double h = c[k] - v[k];
    y = std::min(y, std::max(x, h));
    x = std::min(x, h);
  }
  *m1 = x;
  *m2 = y;
  const __m256d vb = _mm256_set1_pd(x);
  int64_t q = 0;
  for (; q + 4 <= n; q += 4) {
    const __m256d hq = fsub(_mm256_loadu_pd(c + q), _mm256_loadu_pd(v + q));
    const int mask = _mm256_movemask_pd(_mm256_cmp_pd(hq, vb, _CMP_EQ_OQ));
    if (mask) {
      *j1 = q + __builtin_ctz(static_cast<unsigned>(mask));
      return;
    }
  }
  for (; q < n; ++q)
    if (c[q] - v[q] == x) break;
  *j1 = q;
}
#endif

bool g_enabled = true;

#ifdef DPOT_X86
// The AVX2 level needs AVX2 and FMA (every AVX2 x86-64 CPU in practice).
bool use_avx2() {
  return g_enabled && __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
}
#endif

}  // namespace

namespace {
#ifdef DPOT_X86
// x - x is 0 for finite x and NaN otherwise; NaN propagates through the sums. Four independent
// accumulators, so the pass is not bound by the add latency.
bool all_finite_sse2(const double* x, int64_t n) {
  __m128d a[4] = {_mm_setzero_pd(), _mm_setzero_pd(), _mm_setzero_pd(), _mm_setzero_pd()};
  int64_t k = 0;
  for (; k + 8 <= n; k += 8)
    for (int q = 0; q < 4; ++q) {
      const __m128d y = _mm_loadu_pd(x + k + 2 * q);
      a[q] = _mm_add_pd(a[q], _mm_sub_pd(y, y));
    }
  alignas(16) double s[2];
  _mm_store_pd(s, _mm_add_pd(_mm_add_pd(a[0], a[1]), _mm_add_pd(a[2], a[3])));
  double acc = s[0] + s[1];
  for (; k < n; ++k) acc += x[k] - x[k];
  return acc == 0.0;
}

__attribute__((target("avx2"))) bool all_finite_avx2(const double* x, int64_t n) {
  __m256d a[4] = {_mm256_setzero_pd(), _mm256_setzero_pd(), _mm256_setzero_pd(),
                  _mm256_setzero_pd()};
  int64_t k = 0;
  for (; k + 16 <= n; k += 16)
    for (int q = 0; q < 4; ++q) {
      const __m256d y = _mm256_loadu_pd(x + k + 4 * q);
      a[q] = _mm256_add_pd(a[q], _mm256_sub_pd(y, y));
    }
  alignas(32) double s[4];
  _mm256_store_pd(s, _mm256_add_pd(_mm256_add_pd(a[0], a[1]), _mm256_add_pd(a[2], a[3])));
  double acc = (s[0] + s[1]) + (s[2] + s[3]);
  for (; k < n; ++k) acc += x[k] - x[k];
  return acc == 0.0;
}
#endif
}  // namespace

bool all_finite(const double* x, int64_t n) {
#ifdef DPOT_X86
  if (use_avx2()) return all_finite_avx2(x, n);
  return all_finite_sse2(x, n);
#else
  double acc = 0.0;
  for (int64_t k = 0; k < n; ++k) acc += x[k] - x[k];
  return acc == 0.0;
#endif
}

RelaxFn relax_kernel() {
#ifdef DPOT_X86
  if (use_avx2()) return relax_avx2;
  return relax_sse2;
#else
  return relax_portable;
#endif
}

TightMaskFn tight_mask_kernel() {
#ifdef DPOT_X86
  if (use_avx2()) return tight_mask_avx2;
  return tight_mask_sse2;
#else
  return tight_mask_portable;
#endif
}

ColMinFn colmin_kernel() {
#ifdef DPOT_X86
  if (use_avx2()) return colmin_avx2;
  return colmin_sse2;
#else
  return colmin_portable;
#endif
}

RowMin2Fn rowmin2_kernel() {
#ifdef DPOT_X86
  if (use_avx2()) return rowmin2_avx2;
  return rowmin2_sse2;
#else
  return rowmin2_portable;
#endif
}

}  // namespace dpot::detail

namespace dpot {

const char* simd_level() {
#ifdef DPOT_X86
  const detail::RelaxFn k = detail::relax_kernel();
  return k == detail::relax_avx2 ? "avx2" : "sse2";
#else
  return "portable";
#endif
}

const char* set_simd_enabled(bool enabled) {
  detail::g_enabled = enabled;
  return simd_level();
}

}  // namespace dpot
