/* strata — conv2d: register-tiled convolution for channel counts in
 * sixteens, on AVX-512.
 *
 * Each of the three products keeps a tile of sums in 24 of the 32 vector
 * registers:
 * up to four vectors of 16 channels (64 channels) across a few pixels
 * (or taps), and walks the reduction axis with one vector load per 16
 * channels and one broadcast per pixel:
 *
 *     forward       acc[m][p] += W[k][m] · x[p + k]       over k = (c, i, j)
 *     weight grad   acc[m][k] += dz[p][m] · x[p + k]      over pixels p
 *     input grad    acc[c][p] += W[t][m][c] · dz[p][m]    over m, per tap t
 *
 * The input is read in place through offset tables (no im2col matrix, and
 * no second packing inside a BLAS), so a Keras MNIST-sized layer (32 to 64
 * channels on 13×13) runs from L1 and L2 instead of streaming a col matrix
 * K times the input's size through memory.  Sums run in a fixed order, so
 * results do not depend on threads or timing.  Beside them: pool='s max
 * pooling straight from the forward's pixel-major sums and its backward
 * into the weight gradient's, and the 16×16 transposes between those rows
 * and NCHW planes. */
#include "tiles.h"

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>

#define TILES_TARGET __attribute__ ((target ("avx512f")))
#define TILE static inline __attribute__ ((always_inline)) TILES_TARGET
#if defined(__clang__)
#define UNROLL _Pragma ("unroll")
#else
#define UNROLL _Pragma ("GCC unroll 24")
#endif

gboolean
conv_tiles_supported (void)
{
  return __builtin_cpu_supports ("avx512f");
}

/* Pixels (or taps) a tile spans for 1 to 4 vectors of channels: 24
 * accumulators at most, leaving registers for the loads.  At most
 * CONV_TILE_SLACK. */
#define SPAN(mb) ((mb) == 4 ? 6 : (mb) == 3 ? 8 : 12)

TILE void
forward_tile (const int mb, const int span, float *outT, int ldo, const float *x,
              const int *pix, const int *koff, int K, const float *wt, int ldw)
{
  __m512 acc[4][12];
  const float *xs[12];
  UNROLL for (int p = 0; p < span; p++)
    {
      xs[p] = x + pix[p];
      UNROLL for (int b = 0; b < mb; b++)
        acc[b][p] = _mm512_setzero_ps ();
    }
  for (int k = 0; k < K; k++)
    {
      const int o = koff[k];
      __m512 w[4];
      UNROLL for (int b = 0; b < mb; b++)
        w[b] = _mm512_loadu_ps (wt + (gsize) k * ldw + 16 * b);
      UNROLL for (int p = 0; p < span; p++)
        {
          __m512 v = _mm512_set1_ps (xs[p][o]);
          UNROLL for (int b = 0; b < mb; b++)
            acc[b][p] = _mm512_fmadd_ps (w[b], v, acc[b][p]);
        }
    }
  UNROLL for (int p = 0; p < span; p++)
    UNROLL for (int b = 0; b < mb; b++)
      _mm512_storeu_ps (outT + (gsize) p * ldo + 16 * b, acc[b][p]);
}

TILES_TARGET void
conv_tiles_forward (float *outT, const float *x, const int *pix, int n_pix,
                    const int *koff, int K, const float *wt, int M)
{
  for (int m0 = 0; m0 < M; m0 += 64)
    {
      const int mb = MIN (4, (M - m0) / 16), span = SPAN (mb);
      for (int p0 = 0; p0 < n_pix; p0 += span)
        {
          /* The last tile repeats the last pixel into outT's slack rows. */
          int at[12];
          for (int p = 0; p < span; p++)
            at[p] = pix[MIN (p0 + p, n_pix - 1)];
          float *o = outT + (gsize) p0 * M + m0;
          switch (mb)
            {
            case 4: forward_tile (4, SPAN (4), o, M, x, at, koff, K, wt + m0, M); break;
            case 3: forward_tile (3, SPAN (3), o, M, x, at, koff, K, wt + m0, M); break;
            case 2: forward_tile (2, SPAN (2), o, M, x, at, koff, K, wt + m0, M); break;
            default: forward_tile (1, SPAN (1), o, M, x, at, koff, K, wt + m0, M); break;
            }
        }
    }
}

TILE void
weight_tile (const int mb, const int span, float *dwT, int ldw, const float *x, const int *koff,
             const int *pix, int n_pix, const float *dzT, int ldz)
{
  __m512 acc[4][12];
  int o[12];
  UNROLL for (int t = 0; t < span; t++)
    {
      o[t] = koff[t];
      UNROLL for (int b = 0; b < mb; b++)
        acc[b][t] = _mm512_setzero_ps ();
    }
  for (int p = 0; p < n_pix; p++)
    {
      const float *xp = x + pix[p];
      __m512 d[4];
      UNROLL for (int b = 0; b < mb; b++)
        d[b] = _mm512_loadu_ps (dzT + (gsize) p * ldz + 16 * b);
      UNROLL for (int t = 0; t < span; t++)
        {
          __m512 v = _mm512_set1_ps (xp[o[t]]);
          UNROLL for (int b = 0; b < mb; b++)
            acc[b][t] = _mm512_fmadd_ps (d[b], v, acc[b][t]);
        }
    }
  UNROLL for (int t = 0; t < span; t++)
    UNROLL for (int b = 0; b < mb; b++)
      {
        float *dst = dwT + (gsize) t * ldw + 16 * b;
        _mm512_storeu_ps (dst, _mm512_add_ps (_mm512_loadu_ps (dst), acc[b][t]));
      }
}

TILES_TARGET void
conv_tiles_weight_grad (float *dwT, const float *x, const int *koff, int K,
                        const int *pix, int n_pix, const float *dzT, int M)
{
  for (int m0 = 0; m0 < M; m0 += 64)
    {
      const int mb = MIN (4, (M - m0) / 16), span = SPAN (mb);
      for (int k0 = 0; k0 < K; k0 += span)
        {
          /* The last tile repeats the last tap into dwT's slack rows. */
          int at[12];
          for (int t = 0; t < span; t++)
            at[t] = koff[MIN (k0 + t, K - 1)];
          float *d = dwT + (gsize) k0 * M + m0;
          switch (mb)
            {
            case 4: weight_tile (4, SPAN (4), d, M, x, at, pix, n_pix, dzT + m0, M); break;
            case 3: weight_tile (3, SPAN (3), d, M, x, at, pix, n_pix, dzT + m0, M); break;
            case 2: weight_tile (2, SPAN (2), d, M, x, at, pix, n_pix, dzT + m0, M); break;
            default: weight_tile (1, SPAN (1), d, M, x, at, pix, n_pix, dzT + m0, M); break;
            }
        }
    }
}

TILE void
input_tile (const int mb, const int span, float *dinT, int ldd, const int *pix,
            const int *tapoff, int taps, const float *dzT, int ldz, int M, const float *wr)
{
  for (int t = 0; t < taps; t++)
    {
      __m512 acc[4][12];
      UNROLL for (int p = 0; p < span; p++)
        UNROLL for (int b = 0; b < mb; b++)
          acc[b][p] = _mm512_setzero_ps ();
      const float *w_t = wr + (gsize) t * M * ldd;
      for (int m = 0; m < M; m++)
        {
          __m512 w[4];
          UNROLL for (int b = 0; b < mb; b++)
            w[b] = _mm512_loadu_ps (w_t + (gsize) m * ldd + 16 * b);
          UNROLL for (int p = 0; p < span; p++)
            {
              __m512 v = _mm512_set1_ps (dzT[(gsize) p * ldz + m]);
              UNROLL for (int b = 0; b < mb; b++)
                acc[b][p] = _mm512_fmadd_ps (w[b], v, acc[b][p]);
            }
        }
      UNROLL for (int p = 0; p < span; p++)
        UNROLL for (int b = 0; b < mb; b++)
          {
            float *dst = dinT + (gsize) (pix[p] + tapoff[t]) * ldd + 16 * b;
            _mm512_storeu_ps (dst, _mm512_add_ps (_mm512_loadu_ps (dst), acc[b][p]));
          }
    }
}

TILES_TARGET void
conv_tiles_input_grad (float *dinT, const int *pix, int n_pix, int dummy, const int *tapoff,
                       int taps, const float *dzT, int M, const float *wr, int C)
{
  for (int c0 = 0; c0 < C; c0 += 64)
    {
      const int mb = MIN (4, (C - c0) / 16), span = SPAN (mb);
      for (int p0 = 0; p0 < n_pix; p0 += span)
        {
          /* The last tile's pixels past n_pix read dzT's slack rows and
           * add into the dummy pixel. */
          int at[12];
          for (int p = 0; p < span; p++)
            at[p] = p0 + p < n_pix ? pix[p0 + p] : dummy;
          float *d = dinT + c0;
          const float *dz = dzT + (gsize) p0 * M;
          switch (mb)
            {
            case 4: input_tile (4, SPAN (4), d, C, at, tapoff, taps, dz, M, M, wr + c0); break;
            case 3: input_tile (3, SPAN (3), d, C, at, tapoff, taps, dz, M, M, wr + c0); break;
            case 2: input_tile (2, SPAN (2), d, C, at, tapoff, taps, dz, M, M, wr + c0); break;
            default: input_tile (1, SPAN (1), d, C, at, tapoff, taps, dz, M, M, wr + c0); break;
            }
        }
    }
}

/* 16×16 floats in registers: r[i] holds row i; afterwards column i. */
TILE void
transpose16 (__m512 r[16])
{
  __m512 t[16];
  UNROLL for (int i = 0; i < 16; i += 2)
    {
      t[i] = _mm512_unpacklo_ps (r[i], r[i + 1]);
      t[i + 1] = _mm512_unpackhi_ps (r[i], r[i + 1]);
    }
  UNROLL for (int i = 0; i < 16; i += 4)
    UNROLL for (int h = 0; h < 2; h++)
      {
        __m512d a = _mm512_castps_pd (t[i + h]), b = _mm512_castps_pd (t[i + h + 2]);
        r[i + 2 * h] = _mm512_castpd_ps (_mm512_unpacklo_pd (a, b));
        r[i + 2 * h + 1] = _mm512_castpd_ps (_mm512_unpackhi_pd (a, b));
      }
  /* Rows now hold 4×4 blocks; gather the 128-bit lanes. */
  UNROLL for (int i = 0; i < 4; i++)
    {
      t[i] = _mm512_shuffle_f32x4 (r[i], r[i + 4], 0x88);
      t[i + 4] = _mm512_shuffle_f32x4 (r[i], r[i + 4], 0xdd);
      t[i + 8] = _mm512_shuffle_f32x4 (r[i + 8], r[i + 12], 0x88);
      t[i + 12] = _mm512_shuffle_f32x4 (r[i + 8], r[i + 12], 0xdd);
    }
  UNROLL for (int i = 0; i < 4; i++)
    {
      r[i] = _mm512_shuffle_f32x4 (t[i], t[i + 8], 0x88);
      r[i + 8] = _mm512_shuffle_f32x4 (t[i], t[i + 8], 0xdd);
      r[i + 4] = _mm512_shuffle_f32x4 (t[i + 4], t[i + 12], 0x88);
      r[i + 12] = _mm512_shuffle_f32x4 (t[i + 4], t[i + 12], 0xdd);
    }
}

TILES_TARGET void
conv_tiles_transpose (float *dst, gsize ldd, const float *src, gsize lds, int rows, int cols)
{
  for (int r0 = 0; r0 < rows; r0 += 16)
    for (int c0 = 0; c0 < cols; c0 += 16)
      {
        /* Rows and columns past the matrix are masked off entirely (their
         * addresses clamped inside it), so the loops stay unrolled. */
        const int nr = MIN (16, rows - r0), nc = MIN (16, cols - c0);
        const __mmask16 cmask = (__mmask16) ((1u << nc) - 1), rmask = (__mmask16) ((1u << nr) - 1);
        __m512 v[16];
        UNROLL for (int i = 0; i < 16; i++)
          v[i] = _mm512_maskz_loadu_ps (i < nr ? cmask : 0,
                                        src + (gsize) (r0 + MIN (i, nr - 1)) * lds + c0);
        transpose16 (v);
        UNROLL for (int i = 0; i < 16; i++)
          _mm512_mask_storeu_ps (dst + (gsize) (c0 + MIN (i, nc - 1)) * ldd + r0,
                                 i < nc ? rmask : 0, v[i]);
      }
}


/* The first of equal maxima wins, and a NaN wins over any number, as in
 * maxpool (core/maxpool.c): take v where v > best or v alone is NaN.  A
 * total preorder, so maxima of parts combine in order to the maximum of
 * the whole. */
TILE __mmask16
takes (__m512 best, __m512 v)
{
  return _mm512_cmp_ps_mask (v, best, _CMP_GT_OQ)
         | (_mm512_cmp_ps_mask (v, v, _CMP_UNORD_Q) & _mm512_cmp_ps_mask (best, best, _CMP_ORD_Q));
}

/* 16 channels of pixel p of yT, + bias, through relu (v > 0 ? v : +0). */
TILE __m512
pool_input (const float *yT, int p, int M, __m512 bias, gboolean relu)
{
  __m512 v = _mm512_add_ps (_mm512_loadu_ps (yT + (gsize) p * M), bias);
  return relu ? _mm512_max_ps (v, _mm512_setzero_ps ()) : v;
}

/* The larger of (a, ia) and (b, ib), a first; relu: neither is NaN. */
TILE void
pool_pick (__m512 *a, __m512i *ia, __m512 b, __m512i ib, gboolean relu)
{
  const __mmask16 take = relu ? _mm512_cmp_ps_mask (b, *a, _CMP_GT_OQ) : takes (*a, b);
  *a = _mm512_mask_mov_ps (*a, take, b);
  *ia = _mm512_mask_mov_epi32 (*ia, take, ib);
}

/* The maximum over window q's kk rows of 16 channels: 2×2 windows as two
 * pairs, whose chains run in parallel, then the larger pair. */
TILE void
pool_window (__m512 *best, __m512i *at, const float *yT, int q, int kk, int M, __m512 bias,
             gboolean relu)
{
  const int r0 = q * kk;
  if (kk == 4)
    {
      __m512 top = pool_input (yT, r0, M, bias, relu), bottom = pool_input (yT, r0 + 2, M, bias, relu);
      __m512i itop = _mm512_set1_epi32 (r0), ibottom = _mm512_set1_epi32 (r0 + 2);
      pool_pick (&top, &itop, pool_input (yT, r0 + 1, M, bias, relu), _mm512_set1_epi32 (r0 + 1),
                 relu);
      pool_pick (&bottom, &ibottom, pool_input (yT, r0 + 3, M, bias, relu),
                 _mm512_set1_epi32 (r0 + 3), relu);
      pool_pick (&top, &itop, bottom, ibottom, relu);
      *best = top;
      *at = itop;
      return;
    }
  *best = pool_input (yT, r0, M, bias, relu);
  *at = _mm512_set1_epi32 (r0);
  for (int r = r0 + 1; r < r0 + kk; r++)
    pool_pick (best, at, pool_input (yT, r, M, bias, relu), _mm512_set1_epi32 (r), relu);
}

TILES_TARGET void
conv_tiles_pool (float *out, gint32 *argmax, gsize ldo, const float *yT, int windows, int kk,
                 int M, const float *b, gboolean relu)
{
  for (int m0 = 0; m0 < M; m0 += 16)
    {
      /* + 0 even without a bias: the epilogue's sum turns −0 into +0. */
      const __m512 bias = b ? _mm512_loadu_ps (b + m0) : _mm512_setzero_ps ();
      for (int q0 = 0; q0 < windows; q0 += 16)
        {
          const int nq = MIN (16, windows - q0);
          __m512 best[16];
          for (int i = 0; i < nq; i++)
            {
              __m512i ai;
              if (relu)
                pool_window (&best[i], &ai, yT + m0, q0 + i, kk, M, bias, TRUE);
              else
                pool_window (&best[i], &ai, yT + m0, q0 + i, kk, M, bias, FALSE);
              _mm512_storeu_si512 (argmax + (gsize) (q0 + i) * M + m0, ai);
            }
          for (int i = nq; i < 16; i++)
            best[i] = _mm512_setzero_ps ();
          transpose16 (best);
          const __mmask16 lanes = (__mmask16) ((1u << nq) - 1);
          UNROLL for (int c = 0; c < 16; c++)
            _mm512_mask_storeu_ps (out + (gsize) (m0 + c) * ldo + q0, lanes, best[c]);
        }
    }
}

TILES_TARGET void
conv_tiles_unpool (float *dzT, const float *d, const gint32 *argmax, gsize ldo, int windows,
                   int kk, int M)
{
  const __m512 zero = _mm512_setzero_ps ();
  for (int m0 = 0; m0 < M; m0 += 16)
    for (int q0 = 0; q0 < windows; q0 += 16)
      {
        const int nq = MIN (16, windows - q0);
        const __mmask16 lanes = (__mmask16) ((1u << nq) - 1);
        __m512 dv[16];
        UNROLL for (int c = 0; c < 16; c++)
          dv[c] = _mm512_maskz_loadu_ps (lanes, d + (gsize) (m0 + c) * ldo + q0);
        transpose16 (dv);
        for (int i = 0; i < nq; i++)
          {
            const int r0 = (q0 + i) * kk;
            /* 0 + d, as maxpool's scatter into a cleared plane: −0 becomes +0. */
            const __m512 g = _mm512_add_ps (zero, dv[i]);
            const __m512i a = _mm512_loadu_si512 (argmax + (gsize) (q0 + i) * M + m0);
            for (int r = r0; r < r0 + kk; r++)
              {
                const __mmask16 hit = _mm512_cmpeq_epi32_mask (a, _mm512_set1_epi32 (r));
                _mm512_storeu_ps (dzT + (gsize) r * M + m0, _mm512_maskz_mov_ps (hit, g));
              }
          }
      }
}

#else

gboolean
conv_tiles_supported (void)
{
  return FALSE;
}

/* Never called where conv_tiles_supported() is false. */
void
conv_tiles_forward (G_GNUC_UNUSED float *outT, G_GNUC_UNUSED const float *x,
                    G_GNUC_UNUSED const int *pix, G_GNUC_UNUSED int n_pix,
                    G_GNUC_UNUSED const int *koff, G_GNUC_UNUSED int K,
                    G_GNUC_UNUSED const float *wt, G_GNUC_UNUSED int M)
{
  g_assert_not_reached ();
}

void
conv_tiles_weight_grad (G_GNUC_UNUSED float *dwT, G_GNUC_UNUSED const float *x,
                        G_GNUC_UNUSED const int *koff, G_GNUC_UNUSED int K,
                        G_GNUC_UNUSED const int *pix, G_GNUC_UNUSED int n_pix,
                        G_GNUC_UNUSED const float *dzT, G_GNUC_UNUSED int M)
{
  g_assert_not_reached ();
}

void
conv_tiles_input_grad (G_GNUC_UNUSED float *dinT, G_GNUC_UNUSED const int *pix,
                       G_GNUC_UNUSED int n_pix, G_GNUC_UNUSED int dummy,
                       G_GNUC_UNUSED const int *tapoff,
                       G_GNUC_UNUSED int taps, G_GNUC_UNUSED const float *dzT,
                       G_GNUC_UNUSED int M, G_GNUC_UNUSED const float *wr, G_GNUC_UNUSED int C)
{
  g_assert_not_reached ();
}

void
conv_tiles_transpose (G_GNUC_UNUSED float *dst, G_GNUC_UNUSED gsize ldd,
                      G_GNUC_UNUSED const float *src, G_GNUC_UNUSED gsize lds,
                      G_GNUC_UNUSED int rows, G_GNUC_UNUSED int cols)
{
  g_assert_not_reached ();
}

void
conv_tiles_pool (G_GNUC_UNUSED float *out, G_GNUC_UNUSED gint32 *argmax,
                 G_GNUC_UNUSED gsize ldo, G_GNUC_UNUSED const float *yT,
                 G_GNUC_UNUSED int windows, G_GNUC_UNUSED int kk, G_GNUC_UNUSED int M,
                 G_GNUC_UNUSED const float *b, G_GNUC_UNUSED gboolean relu)
{
  g_assert_not_reached ();
}

void
conv_tiles_unpool (G_GNUC_UNUSED float *dzT, G_GNUC_UNUSED const float *d,
                   G_GNUC_UNUSED const gint32 *argmax, G_GNUC_UNUSED gsize ldo,
                   G_GNUC_UNUSED int windows, G_GNUC_UNUSED int kk, G_GNUC_UNUSED int M)
{
  g_assert_not_reached ();
}

#endif
