/* strata — max pooling over windows that tile a plane (strata/maxpool.h).
 *
 * No clipping and no branch on the values but a rarely taken one for NaN,
 * vectorised for 2x2.  For 2x2 windows on rows of GATHER_MIN_OW outputs or
 * more the backward is a vectorised gather that writes each pixel's
 * gradient once, instead of clearing the plane and scattering into it,
 * with the scatter's values bit for bit. */
#include <strata/maxpool.h>

#include <math.h>
#include <string.h>

#ifdef __SSE2__
#include <emmintrin.h>
#endif

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

static void
max2_row (float *o, gint32 *am, const float *r0, const float *r1, gint32 i0, int w, int ow)
{
  int x = 0;
#ifdef __SSE2__
  for (; x + 4 <= ow; x += 4)
    max2_block (o, am, r0, r1, i0, w, x);
  /* The last outputs as one more block ending at the row's end, which
   * redoes a few with the same results: the scalar loop costs as much as
   * the rest of a short row (7 or 14 outputs, as after a 28x28 map). */
  if (x < ow && ow >= 4)
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
              max2_row (o, am, src + i0, src + i0 + w, i0, w, ow);
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
/* The gather pays off only vectorised and on rows of at least this many
 * outputs (26x26 pooled to 13x13): on shorter rows the redone last block
 * and the work per row cost more than the scatter's few additions into a
 * cleared plane (11x11 to 5x5 ran twice as long), and for larger windows
 * the scatter touches only one pixel in k². */
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

/* The gather for one plane of 2x2 windows, ow ≥ 4. */
static void
gather2_plane (float *din, const float *d, const gint32 *am, int h, int w)
{
  const int oh = h / 2, ow = w / 2, covered = 2 * ow;
  for (int oy = 0; oy < oh; oy++, d += ow, am += ow)
    {
      gint32 i0 = 2 * oy * w;
      int x = 0;
      for (; x + 4 <= ow; x += 4)
        route2_block (din + i0, d, am, i0, w, x);
      /* As in max2_row: a last block that rewrites a few of the same values. */
      if (x < ow)
        route2_block (din + i0, d, am, i0, w, ow - 4);
      if (covered < w)
        din[i0 + covered] = din[i0 + w + covered] = 0.0f;
    }
  if (2 * oh < h)
    memset (din + (gsize) 2 * oh * w, 0, sizeof (float) * w);
}
#endif

void
st_maxpool_tiles_backward (float *din, gsize din_stride, const float *dout,
                           const gint32 *argmax, gsize out_stride, gsize planes,
                           int h, int w, int k)
{
  const gsize on = (gsize) (h / k) * (w / k);
  for (gsize pl = 0; pl < planes; pl++)
    {
      float *dst = din + pl * din_stride;
      const float *d = dout + pl * out_stride;
      const gint32 *am = argmax + pl * out_stride;
#ifdef __SSE2__
      if (k == 2 && w / 2 >= GATHER_MIN_OW)
        {
          gather2_plane (dst, d, am, h, w);
          continue;
        }
#endif
      memset (dst, 0, sizeof (float) * h * w);
      for (gsize i = 0; i < on; i++)
        dst[am[i]] += d[i];
    }
}
