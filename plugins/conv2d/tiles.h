/* strata — conv2d: register-tiled convolution for channel counts in
 * sixteens (AVX-512), without im2col.  See tiles.c.
 *
 * Pixels and taps are offsets into x, the input planes (of one image or
 * of several side by side): pix[p] that of output pixel p's window, koff[k]
 * that of tap k = (c·kh + i)·kw + j within a window. */
#pragma once

#include <glib.h>

/* Whether this CPU runs the functions below. */
gboolean conv_tiles_supported (void);

/* Rows a pixel-major result needs past its last pixel or tap: the last
 * tile runs whole. */
#define CONV_TILE_SLACK 12

/* outT[p][m] = Σ_k wt[k][m] · x[pix[p] + koff[k]] for p < n_pix, m < M
 * (M a multiple of 16).  outT: [n_pix + CONV_TILE_SLACK][M]. */
void conv_tiles_forward (float *outT, const float *x, const int *pix, int n_pix,
                         const int *koff, int K, const float *wt, int M);

/* dwT[k][m] += Σ_p dzT[p][m] · x[pix[p] + koff[k]] for k < K, m < M.
 * dwT: [K + CONV_TILE_SLACK][M]. */
void conv_tiles_weight_grad (float *dwT, const float *x, const int *koff, int K,
                             const int *pix, int n_pix, const float *dzT, int M);

/* dinT[pix[p] + tapoff[t]][c] += Σ_m wr[t][m][c] · dzT[p][m] for every
 * tap t < taps, p < n_pix and c < C (a multiple of 16), taps in order.
 * dzT: [n_pix + CONV_TILE_SLACK][M], whatever its slack rows hold: their
 * sums go to pixel dummy of dinT, which is never read. */
void conv_tiles_input_grad (float *dinT, const int *pix, int n_pix, int dummy, const int *tapoff,
                            int taps, const float *dzT, int M, const float *wr, int C);

/* dst[c][r] = src[r][c] for r < rows, c < cols. */
void conv_tiles_transpose (float *dst, gsize ldd, const float *src, gsize lds, int rows, int cols);

/* pool=, on one image's pixel-major sums yT [windows·kk][M] (M a multiple
 * of 16), the kk pixels of each pooling window in turn, in the window's
 * row order: out[m][q] = the maximum of act (yT[r][m] + b[m]) over window
 * q's rows r, act the identity or, when relu, relu; out: M planes ldo
 * apart.  argmax[q][m] (pixel-major, as only conv_tiles_unpool () reads
 * it) = that r, the first of equal maxima, a NaN before any number (as
 * maxpool).  b: NULL for no bias. */
void conv_tiles_pool (float *out, gint32 *argmax, gsize ldo, const float *yT, int windows,
                      int kk, int M, const float *b, gboolean relu);

/* Its backward: dzT [windows·kk][M] = 0 + d[m][q] at row argmax[q][m] of
 * window q, zero at the window's other rows, from d laid out as out above
 * (ldo) and argmax. */
void conv_tiles_unpool (float *dzT, const float *d, const gint32 *argmax, gsize ldo, int windows,
                        int kk, int M);
