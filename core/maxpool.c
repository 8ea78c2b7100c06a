/* strata — max pooling over windows that tile a plane (strata/maxpool.h).
 *
 * No clipping and no branch on the values but a rarely taken one for NaN,
 * vectorised for 2x2: 16 outputs a step with AVX-512 (masked, so a row's
 * tail costs one step), else 4 with SSE2.  For 2x2 windows the backward
 * is a vectorised gather that writes each pixel's gradient once, instead
 * of clearing the plane and scattering into it, with the scatter's values
 * bit for bit.  Every path gives the scalar one's outputs, argmax and
 * gradients bit for bit, NaN included; tests run each of them
 * (maxpool-private.h). */
#include <strata/maxpool.h>

#include "maxpool-private.h"

#include <math.h>
#include <string.h>

#ifdef __SSE2__
#include <emmintrin.h>
#endif
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>
#define HAVE_AVX512 1
#define AVX512_FUNCTION __attribute__ ((target ("avx512f")))
#endif

/* The widest path the CPU runs, or the one a test asked for. */
static int forced_path = -1;

static StMaxpoolPath
best_path (void)
{
#ifdef HAVE_AVX512
  static gsize have = 0;       /* 1 + whether the CPU has AVX-512 */
  if (g_once_init_enter (&have))
    g_once_init_leave (&have, 1 + !!__builtin_cpu_supports ("avx512f"));
  if (have == 2)
    return ST_MAXPOOL_AVX512;
#endif
#ifdef __SSE2__
  return ST_MAXPOOL_SSE2;
#else
  return ST_MAXPOOL_SCALAR;
#endif
}

gboolean
st_maxpool_force_path (StMaxpoolPath path)
{
  if (path > best_path ())
    return FALSE;
  forced_path = path;
  return TRUE;
}

void
st_maxpool_unforce_path (void)
{
  forced_path = -1;
}

static StMaxpoolPath
current_path (void)
{
  return forced_path >= 0 ? (StMaxpoolPath) forced_path : best_path ();
}

/* Whether v replaces best as the window's maximum (first one wins; NaN
 * counts as a maximum), without a branch. */
static inline int
max_takes (float best, float v)
{
  return (v > best) | (isnan (v) & !isnan (best));
}

/* Outputs [x0, x1) of one row of 2x2 windows over input rows r0, r1 = r0 + w,
 * r0 being row i0 / w of the plane. */
static void
max2_row_scalar (float *o, gint32 *am, const float *r0, const float *r1, gint32 i0, int w,
                 int x0, int x1)
{
  for (int x = x0; x < x1; x++)
    {
      const float v[4] = { r0[2 * x], r0[2 * x + 1], r1[2 * x], r1[2 * x + 1] };
      const gint32 at[4] = { i0 + 2 * x, i0 + 2 * x + 1, i0 + w + 2 * x, i0 + w + 2 * x + 1 };
      float best = v[0];
      gint32 best_i = at[0];
      for (int q = 1; q < 4; q++)
        {
          int take = max_takes (best, v[q]);
          best = take ? v[q] : best;
          best_i = take ? at[q] : best_i;
        }
      o[x] = best;
      am[x] = best_i;
    }
}

#ifdef __SSE2__
/* Outputs [x, x + 4) of one row of 2x2 windows, as max2_row_scalar(). */
static inline void
max2_block (float *o, gint32 *am, const float *r0, const float *r1, gint32 i0, int w, int x)
{
  const __m128i one = _mm_set1_epi32 (1), down = _mm_set1_epi32 (w);
  __m128i left = _mm_add_epi32 (_mm_set1_epi32 (i0 + 2 * x), _mm_setr_epi32 (0, 2, 4, 6));
  __m128 p0 = _mm_loadu_ps (r0 + 2 * x), q0 = _mm_loadu_ps (r0 + 2 * x + 4);
  __m128 p1 = _mm_loadu_ps (r1 + 2 * x), q1 = _mm_loadu_ps (r1 + 2 * x + 4);
  /* a b / c d: the corners of four windows, in scan order. */
  __m128 a = _mm_shuffle_ps (p0, q0, _MM_SHUFFLE (2, 0, 2, 0));
  __m128 b = _mm_shuffle_ps (p0, q0, _MM_SHUFFLE (3, 1, 3, 1));
  __m128 c = _mm_shuffle_ps (p1, q1, _MM_SHUFFLE (2, 0, 2, 0));
  __m128 d = _mm_shuffle_ps (p1, q1, _MM_SHUFFLE (3, 1, 3, 1));
  /* maxps (v, best) is v > best ? v : best, max_takes without NaN: a
   * block holding a NaN takes the scalar rule instead. */
  __m128 nan = _mm_or_ps (_mm_cmpunord_ps (a, b), _mm_cmpunord_ps (c, d));
  if (G_UNLIKELY (_mm_movemask_ps (nan)))
    {
      max2_row_scalar (o, am, r0, r1, i0, w, x, x + 4);
      return;
    }
  __m128 top = _mm_max_ps (b, a), bottom = _mm_max_ps (d, c);
  __m128 take_b = _mm_cmpgt_ps (b, a), take_d = _mm_cmpgt_ps (d, c);
  __m128 take_bottom = _mm_cmpgt_ps (bottom, top);
  __m128 right = _mm_or_ps (_mm_and_ps (take_bottom, take_d),
                            _mm_andnot_ps (take_bottom, take_b));
  __m128i at = _mm_add_epi32 (left, _mm_and_si128 (_mm_castps_si128 (right), one));
  at = _mm_add_epi32 (at, _mm_and_si128 (_mm_castps_si128 (take_bottom), down));
  _mm_storeu_ps (o + x, _mm_max_ps (bottom, top));
  _mm_storeu_si128 ((__m128i *) (am + x), at);
}
#endif

#ifdef HAVE_AVX512
/* Masks of the first n and of the next n - 16 of 2n floats, n ≤ 16. */
#define MASK_FIRST(n) ((__mmask16) ((n) >= 16 ? 0xffff : (1u << (n)) - 1))

/* Outputs [x, x + n) of one row of 2x2 windows, n ≤ 16, as max2_block();
 * store: the lanes written, which may run past the n outputs into ones
 * the caller writes later (a masked store costs more than the step). */
AVX512_FUNCTION static inline void
max2_block16 (float *o, gint32 *am, const float *r0, const float *r1, gint32 i0, int w, int x,
              int n, __mmask16 store)
{
  const __mmask16 out = MASK_FIRST (n), lo = MASK_FIRST (2 * n);
  const __mmask16 hi = n > 8 ? MASK_FIRST (2 * n - 16) : 0;
  const __m512i even = _mm512_setr_epi32 (0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
  const __m512i odd = _mm512_add_epi32 (even, _mm512_set1_epi32 (1));
  __m512 p0 = _mm512_maskz_loadu_ps (lo, r0 + 2 * x), q0 = _mm512_maskz_loadu_ps (hi, r0 + 2 * x + 16);
  __m512 p1 = _mm512_maskz_loadu_ps (lo, r1 + 2 * x), q1 = _mm512_maskz_loadu_ps (hi, r1 + 2 * x + 16);
  __m512 a = _mm512_permutex2var_ps (p0, even, q0), b = _mm512_permutex2var_ps (p0, odd, q0);
  __m512 c = _mm512_permutex2var_ps (p1, even, q1), d = _mm512_permutex2var_ps (p1, odd, q1);
  if (G_UNLIKELY (_mm512_mask_cmp_ps_mask (out, a, b, _CMP_UNORD_Q)
                  | _mm512_mask_cmp_ps_mask (out, c, d, _CMP_UNORD_Q)))
    {
      max2_row_scalar (o, am, r0, r1, i0, w, x, x + n);
      return;
    }
  /* max (v, best) is v > best ? v : best, as in max2_block(). */
  __m512 top = _mm512_max_ps (b, a), bottom = _mm512_max_ps (d, c);
  __mmask16 take_b = _mm512_cmp_ps_mask (b, a, _CMP_GT_OQ);
  __mmask16 take_d = _mm512_cmp_ps_mask (d, c, _CMP_GT_OQ);
  __mmask16 take_bottom = _mm512_cmp_ps_mask (bottom, top, _CMP_GT_OQ);
  __mmask16 right = (take_bottom & take_d) | (~take_bottom & take_b);
  __m512i at = _mm512_add_epi32 (_mm512_set1_epi32 (i0 + 2 * x), even);
  at = _mm512_mask_add_epi32 (at, right, at, _mm512_set1_epi32 (1));
  at = _mm512_mask_add_epi32 (at, take_bottom, at, _mm512_set1_epi32 (w));
  if (store == 0xffff)
    {
      _mm512_storeu_ps (o + x, _mm512_max_ps (bottom, top));
      _mm512_storeu_si512 (am + x, at);
    }
  else
    {
      _mm512_mask_storeu_ps (o + x, store, _mm512_max_ps (bottom, top));
      _mm512_mask_storeu_epi32 (am + x, store, at);
    }
}

/* st_maxpool_tiles_forward() for 2x2 windows.  Rows are written in order,
 * so a step may write past its row into outputs that later steps
 * overwrite: only where its plane ends (or, for planes side by side, the
 * last one) are the lanes past the outputs masked off. */
AVX512_FUNCTION static void
max2_planes16 (float *out, gint32 *argmax, gsize out_stride, const float *in, gsize in_stride,
               gsize planes, int h, int w)
{
  const int oh = h / 2, ow = w / 2;
  const gsize ohw = (gsize) oh * ow;
  for (gsize pl = 0; pl < planes; pl++)
    {
      const float *src = in + pl * in_stride;
      float *o = out + pl * out_stride;
      gint32 *am = argmax + pl * out_stride;
      const gsize region = out_stride == ohw ? (planes - pl) * ohw : ohw;
      for (int oy = 0; oy < oh; oy++, o += ow, am += ow)
        {
          const gint32 i0 = 2 * oy * w;
          for (int x = 0; x < ow; x += 16)
            {
              gsize left = region - ((gsize) oy * ow + x);
              max2_block16 (o, am, src + i0, src + i0 + w, i0, w, x, MIN (16, ow - x),
                            left >= 16 ? 0xffff : MASK_FIRST ((int) left));
            }
        }
    }
}
#endif

static void
max2_row (float *o, gint32 *am, const float *r0, const float *r1, gint32 i0, int w, int ow,
          StMaxpoolPath path)
{
  int x = 0;
#ifdef __SSE2__
  for (; path >= ST_MAXPOOL_SSE2 && x + 4 <= ow; x += 4)
    max2_block (o, am, r0, r1, i0, w, x);
  /* The last outputs as one more block ending at the row's end, which
   * redoes a few with the same results: the scalar loop costs as much as
   * the rest of a short row (7 or 14 outputs, as after a 28x28 map). */
  if (path >= ST_MAXPOOL_SSE2 && x < ow && ow >= 4)
    {
      max2_block (o, am, r0, r1, i0, w, ow - 4);
      return;
    }
#endif
  max2_row_scalar (o, am, r0, r1, i0, w, x, ow);
}

void
st_maxpool_tiles_forward (float *out, gint32 *argmax, gsize out_stride,
                          const float *in, gsize in_stride, gsize planes,
                          int h, int w, int k)
{
  const int oh = h / k, ow = w / k;
  const StMaxpoolPath path = current_path ();
#ifdef HAVE_AVX512
  if (k == 2 && path == ST_MAXPOOL_AVX512)
    {
      max2_planes16 (out, argmax, out_stride, in, in_stride, planes, h, w);
      return;
    }
#endif
  for (gsize pl = 0; pl < planes; pl++)
    {
      const float *src = in + pl * in_stride;
      float *o = out + pl * out_stride;
      gint32 *am = argmax + pl * out_stride;
      for (int oy = 0; oy < oh; oy++, o += ow, am += ow)
        {
          gint32 i0 = oy * k * w;
          if (k == 2)
            {
              max2_row (o, am, src + i0, src + i0 + w, i0, w, ow, path);
              continue;
            }
          for (int ox = 0; ox < ow; ox++)
            {
              gint32 best_i = i0 + ox * k;
              float best = src[best_i];
              for (int m = 0; m < k; m++)
                for (int n = 0; n < k; n++)
                  {
                    gint32 i = i0 + m * w + ox * k + n;
                    int take = max_takes (best, src[i]);
                    best = take ? src[i] : best;
                    best_i = take ? i : best_i;
                  }
              o[ox] = best;
              am[ox] = best_i;
            }
        }
    }
}

#ifdef __SSE2__
/* With SSE2 the gather pays off only on rows of at least this many outputs
 * (26x26 pooled to 13x13): on shorter rows the redone last block and the
 * work per row cost more than the scatter's few additions into a cleared
 * plane (11x11 to 5x5 ran twice as long).  AVX-512's masked steps take
 * every row.  For larger windows the scatter touches only one pixel in k². */
#define GATHER_MIN_OW 8

/* Outputs [x, x + 4) of one row of 2x2 windows: input rows t and t + w,
 * t being row i0 / w of the plane.  0 + dout, not dout: the scatter adds
 * to a cleared plane, which turns a −0 gradient into +0. */
static inline void
route2_block (float *t, const float *d, const gint32 *am, gint32 i0, int w, int x)
{
  __m128i left = _mm_add_epi32 (_mm_set1_epi32 (i0 + 2 * x), _mm_setr_epi32 (0, 2, 4, 6));
  __m128i rel = _mm_sub_epi32 (_mm_loadu_si128 ((const __m128i *) (am + x)), left);
  __m128 v = _mm_add_ps (_mm_setzero_ps (), _mm_loadu_ps (d + x));
  /* rel is 0, 1, w or w + 1: which corner of its window won. */
  __m128 a = _mm_and_ps (_mm_castsi128_ps (_mm_cmpeq_epi32 (rel, _mm_setzero_si128 ())), v);
  __m128 b = _mm_and_ps (_mm_castsi128_ps (_mm_cmpeq_epi32 (rel, _mm_set1_epi32 (1))), v);
  __m128 c = _mm_and_ps (_mm_castsi128_ps (_mm_cmpeq_epi32 (rel, _mm_set1_epi32 (w))), v);
  __m128 e = _mm_and_ps (_mm_castsi128_ps (_mm_cmpeq_epi32 (rel, _mm_set1_epi32 (w + 1))), v);
  _mm_storeu_ps (t + 2 * x, _mm_unpacklo_ps (a, b));
  _mm_storeu_ps (t + 2 * x + 4, _mm_unpackhi_ps (a, b));
  _mm_storeu_ps (t + w + 2 * x, _mm_unpacklo_ps (c, e));
  _mm_storeu_ps (t + w + 2 * x + 4, _mm_unpackhi_ps (c, e));
}
#endif

#ifdef HAVE_AVX512
/* Outputs [x, x + n) of one row of 2x2 windows, n ≤ 16, as route2_block();
 * lo, hi: the lanes written of each input row's two vectors, which may
 * run past the 2n pixels into ones the caller writes later. */
AVX512_FUNCTION static inline void
route2_block16 (float *t, const float *d, const gint32 *am, gint32 i0, int w, int x, int n,
                __mmask16 lo, __mmask16 hi)
{
  const __mmask16 out = MASK_FIRST (n);
  const __m512i even = _mm512_setr_epi32 (0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
  const __m512i first = _mm512_setr_epi32 (0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23);
  const __m512i second = _mm512_add_epi32 (first, _mm512_set1_epi32 (8));
  __m512i left = _mm512_add_epi32 (_mm512_set1_epi32 (i0 + 2 * x), even);
  __m512i rel = _mm512_sub_epi32 (_mm512_maskz_loadu_epi32 (out, am + x), left);
  __m512 v = _mm512_add_ps (_mm512_setzero_ps (), _mm512_maskz_loadu_ps (out, d + x));
  __m512 a = _mm512_maskz_mov_ps (_mm512_cmpeq_epi32_mask (rel, _mm512_setzero_si512 ()), v);
  __m512 b = _mm512_maskz_mov_ps (_mm512_cmpeq_epi32_mask (rel, _mm512_set1_epi32 (1)), v);
  __m512 c = _mm512_maskz_mov_ps (_mm512_cmpeq_epi32_mask (rel, _mm512_set1_epi32 (w)), v);
  __m512 e = _mm512_maskz_mov_ps (_mm512_cmpeq_epi32_mask (rel, _mm512_set1_epi32 (w + 1)), v);
  __m512 ab0 = _mm512_permutex2var_ps (a, first, b), ab1 = _mm512_permutex2var_ps (a, second, b);
  __m512 ce0 = _mm512_permutex2var_ps (c, first, e), ce1 = _mm512_permutex2var_ps (c, second, e);
  if ((lo & hi) == 0xffff)
    {
      _mm512_storeu_ps (t + 2 * x, ab0);
      _mm512_storeu_ps (t + 2 * x + 16, ab1);
      _mm512_storeu_ps (t + w + 2 * x, ce0);
      _mm512_storeu_ps (t + w + 2 * x + 16, ce1);
      return;
    }
  _mm512_mask_storeu_ps (t + 2 * x, lo, ab0);
  _mm512_mask_storeu_ps (t + 2 * x + 16, hi, ab1);
  _mm512_mask_storeu_ps (t + w + 2 * x, lo, ce0);
  _mm512_mask_storeu_ps (t + w + 2 * x + 16, hi, ce1);
}

/* One plane's rows of 2x2 windows through route2_block16(); region: the
 * floats from the plane's start that the caller writes later or that are
 * this plane's.  A row of one step writes 32 floats of each input row
 * where the region has them, the top one running into the bottom one
 * (written next) and the bottom one into the next pair; a row of several
 * steps writes exactly its 2n, since its top row's tail would reach back
 * into a bottom row already written. */
AVX512_FUNCTION static void
route2_plane16 (float *din, const float *d, const gint32 *am, int h, int w, gsize region)
{
  const int oh = h / 2, ow = w / 2;
  for (int oy = 0; oy < oh; oy++, d += ow, am += ow)
    {
      const gint32 i0 = 2 * oy * w;
      for (int x = 0; x < ow; x += 16)
        {
          const int n = MIN (16, ow - x);
          gsize room = region - ((gsize) i0 + w + 2 * x);
          int lanes = ow <= 16 ? (int) MIN (room, 32) : 2 * n;
          __mmask16 lo = MASK_FIRST (MIN (lanes, 16));
          __mmask16 hi = lanes > 16 ? MASK_FIRST (lanes - 16) : 0;
          route2_block16 (din + i0, d, am, i0, w, x, n, lo, hi);
        }
    }
}
#endif

/* Whether the backward of 2x2 windows on rows of ow outputs gathers. */
static gboolean
gathers (StMaxpoolPath path, int ow)
{
  return (path == ST_MAXPOOL_AVX512 && ow >= 1)
#ifdef __SSE2__
         || (path == ST_MAXPOOL_SSE2 && ow >= GATHER_MIN_OW)
#endif
         ;
}

/* The gather for one plane of 2x2 windows, where gathers(); region: as
 * for route2_plane16(). */
static void
gather2_plane (float *din, const float *d, const gint32 *am, int h, int w, StMaxpoolPath path,
               gsize region)
{
  const int oh = h / 2, ow = w / 2, covered = 2 * ow;
#ifdef HAVE_AVX512
  if (path == ST_MAXPOOL_AVX512)
    route2_plane16 (din, d, am, h, w, region);
#else
  (void) region;
#endif
  for (int oy = 0; oy < oh; oy++, d += ow, am += ow)
    {
      gint32 i0 = 2 * oy * w;
#ifdef __SSE2__
      if (path == ST_MAXPOOL_SSE2)
        {
          int x = 0;
          for (; x + 4 <= ow; x += 4)
            route2_block (din + i0, d, am, i0, w, x);
          /* As in max2_row: a last block that rewrites a few of the same values. */
          if (x < ow)
            route2_block (din + i0, d, am, i0, w, ow - 4);
        }
#endif
      if (covered < w)
        din[i0 + covered] = din[i0 + w + covered] = 0.0f;
    }
  if (2 * oh < h)
    memset (din + (gsize) 2 * oh * w, 0, sizeof (float) * w);
}

void
st_maxpool_tiles_backward (float *din, gsize din_stride, const float *dout,
                           const gint32 *argmax, gsize out_stride, gsize planes,
                           int h, int w, int k)
{
  const gsize on = (gsize) (h / k) * (w / k);
  const StMaxpoolPath path = current_path ();
  for (gsize pl = 0; pl < planes; pl++)
    {
      float *dst = din + pl * din_stride;
      const float *d = dout + pl * out_stride;
      const gint32 *am = argmax + pl * out_stride;
      if (k == 2 && gathers (path, w / 2))
        {
          const gsize plane = (gsize) h * w;
          gather2_plane (dst, d, am, h, w, path,
                         din_stride == plane ? (planes - pl) * plane : plane);
          continue;
        }
      memset (dst, 0, sizeof (float) * h * w);
      for (gsize i = 0; i < on; i++)
        dst[am[i]] += d[i];
    }
}
