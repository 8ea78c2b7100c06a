/* strata — sampling a plane through an affine map (strata/warp.h). */
#include <strata/warp.h>

#include <math.h>

/* Keys' a, as OpenCV's INTER_CUBIC. */
#define CUBIC_A (-0.75)

/* Coordinates beyond this are as far outside as it matters (every border
 * mode is periodic or constant there) and still convert to gint64. */
#define COORD_LIMIT 1e15

gboolean
st_affine_invert (const double m[6], double inverse[6])
{
  double det = m[0] * m[4] - m[1] * m[3];
  if (!isfinite (det) || fabs (det) < 1e-12)
    return FALSE;
  for (int i = 0; i < 6; i++)
    if (!isfinite (m[i]))
      return FALSE;
  double a = m[4] / det, b = -m[1] / det, d = -m[3] / det, e = m[0] / det;
  double c = -(a * m[2] + b * m[5]), f = -(d * m[2] + e * m[5]);
  inverse[0] = a, inverse[1] = b, inverse[2] = c;
  inverse[3] = d, inverse[4] = e, inverse[5] = f;
  return TRUE;
}

void
st_affine_multiply (const double a[6], const double b[6], double out[6])
{
  double r[6] = {
    a[0] * b[0] + a[1] * b[3], a[0] * b[1] + a[1] * b[4], a[0] * b[2] + a[1] * b[5] + a[2],
    a[3] * b[0] + a[4] * b[3], a[3] * b[1] + a[4] * b[4], a[3] * b[2] + a[4] * b[5] + a[5],
  };
  for (int i = 0; i < 6; i++)
    out[i] = r[i];
}

void
st_affine_compose (const StAffineParts *p, double m[6])
{
  /* Exact quarter turns: cos and sin of multiples of 90° are 0 and ±1,
   * not 6e-17, so a quarter turn moves pixels onto pixels. */
  double turns = p->rotate / 90;
  double c, s;
  if (turns == floor (turns))
    {
      static const double cos_q[] = { 1, 0, -1, 0 }, sin_q[] = { 0, 1, 0, -1 };
      int q = (int) fmod (fmod (turns, 4) + 4, 4);
      c = cos_q[q], s = sin_q[q];
    }
  else
    {
      c = cos (p->rotate * G_PI / 180);
      s = sin (p->rotate * G_PI / 180);
    }
  const double hx = tan (p->shear_x * G_PI / 180), hy = tan (p->shear_y * G_PI / 180);
  /* y points down, so a counter-clockwise turn on screen is [c s; -s c]. */
  const double to_origin[6] = { 1, 0, -p->cx, 0, 1, -p->cy };
  const double scale[6] = { p->scale_x, 0, 0, 0, p->scale_y, 0 };
  const double shear[6] = { 1, hx, 0, hy, 1, 0 };
  const double rotate[6] = { c, s, 0, -s, c, 0 };
  const double back[6] = { 1, 0, p->cx + p->translate_x, 0, 1, p->cy + p->translate_y };
  st_affine_multiply (scale, to_origin, m);
  st_affine_multiply (shear, m, m);
  st_affine_multiply (rotate, m, m);
  st_affine_multiply (back, m, m);
}

/* The taps of one output pixel along one axis: up to 4 indices (-1: the
 * constant) and their weights. */
typedef struct {
  int n;
  int idx[4];
  float w[4];
} Taps;

static void
axis_taps (const StWarp *warp, double s, int size, Taps *t)
{
  s = CLAMP (s, -COORD_LIMIT, COORD_LIMIT);
  switch (warp->interpolation)
    {
    case ST_INTERP_NEAREST:
      t->n = 1;
      t->idx[0] = st_border_index ((gint64) floor (s + 0.5), size, warp->border);
      t->w[0] = 1.0f;
      return;
    case ST_INTERP_BILINEAR:
      {
        double f = floor (s);
        double l = s - f;
        t->n = 2;
        t->idx[0] = st_border_index ((gint64) f, size, warp->border);
        t->idx[1] = st_border_index ((gint64) f + 1, size, warp->border);
        t->w[0] = (float) (1 - l);
        t->w[1] = (float) l;
        return;
      }
    case ST_INTERP_BICUBIC:
    default:
      {
        double f = floor (s);
        double l = s - f;
        t->n = 4;
        for (int k = 0; k < 4; k++)
          {
            t->idx[k] = st_border_index ((gint64) f + k - 1, size, warp->border);
            t->w[k] = (float) st_cubic_weight (l - (k - 1), CUBIC_A);
          }
        return;
      }
    }
}

/* Output pixel (x, y)'s taps in both axes. */
static void
pixel_taps (const StWarp *warp, int x, int y, int src_w, int src_h, Taps *tx, Taps *ty)
{
  const double *m = warp->matrix;
  axis_taps (warp, m[0] * x + m[1] * y + m[2], src_w, tx);
  axis_taps (warp, m[3] * x + m[4] * y + m[5], src_h, ty);
}

/* Output pixel (x, y) from its taps, reading through the border: the
 * general path, for pixels whose taps leave the input. */
static float
sample_general (const StWarp *warp, const float *src, int src_w, int src_h, int x, int y)
{
  Taps tx, ty;
  pixel_taps (warp, x, y, src_w, src_h, &tx, &ty);
  float sum = 0;
  for (int j = 0; j < ty.n; j++)
    {
      float row = 0;
      if (ty.idx[j] < 0)
        row = warp->value;
      else
        {
          const float *line = src + (gsize) ty.idx[j] * src_w;
          for (int i = 0; i < tx.n; i++)
            row += tx.w[i] * (tx.idx[i] < 0 ? warp->value : line[tx.idx[i]]);
        }
      sum += ty.w[j] * row;
    }
  return sum;
}

void
st_warp_rows (const StWarp *warp, const float *src, int src_w, int src_h,
              float *dst, int dst_w, int dst_h, int row_begin, int row_end)
{
  g_return_if_fail (row_begin >= 0 && row_end <= dst_h);
  const double *m = warp->matrix;
  /* Inside these, every tap of a pixel lies in the input: read it
   * directly, in the general path's order so both give the same floats. */
  const gboolean cubic = warp->interpolation == ST_INTERP_BICUBIC;
  const double lo = cubic ? 1 : 0, x_hi = src_w - (cubic ? 3 : 2), y_hi = src_h - (cubic ? 3 : 2);
  for (int y = row_begin; y < row_end; y++)
    {
      float *out = dst + (gsize) y * dst_w;
      for (int x = 0; x < dst_w; x++)
        {
          double sx = m[0] * x + m[1] * y + m[2], sy = m[3] * x + m[4] * y + m[5];
          if (warp->interpolation == ST_INTERP_NEAREST)
            {
              double fx = floor (sx + 0.5), fy = floor (sy + 0.5);
              if (fx >= 0 && fx < src_w && fy >= 0 && fy < src_h)
                {
                  out[x] = src[(gsize) fy * src_w + (gsize) fx];
                  continue;
                }
            }
          else
            {
              double fx = floor (sx), fy = floor (sy);
              if (fx >= lo && fx <= x_hi && fy >= lo && fy <= y_hi)
                {
                  double lx = sx - fx, ly = sy - fy;
                  const float *p = src + (gsize) fy * src_w + (gsize) fx;
                  if (warp->interpolation == ST_INTERP_BILINEAR)
                    {
                      float wx0 = (float) (1 - lx), wx1 = (float) lx;
                      float wy0 = (float) (1 - ly), wy1 = (float) ly;
                      float r0 = 0, r1 = 0, sum = 0;
                      r0 += wx0 * p[0], r0 += wx1 * p[1];
                      r1 += wx0 * p[src_w], r1 += wx1 * p[src_w + 1];
                      sum += wy0 * r0, sum += wy1 * r1;
                      out[x] = sum;
                    }
                  else
                    {
                      float wx[4], wy[4], sum = 0;
                      for (int k = 0; k < 4; k++)
                        {
                          wx[k] = (float) st_cubic_weight (lx - (k - 1), CUBIC_A);
                          wy[k] = (float) st_cubic_weight (ly - (k - 1), CUBIC_A);
                        }
                      p -= src_w + 1;
                      for (int j = 0; j < 4; j++, p += src_w)
                        {
                          float row = 0;
                          for (int i = 0; i < 4; i++)
                            row += wx[i] * p[i];
                          sum += wy[j] * row;
                        }
                      out[x] = sum;
                    }
                  continue;
                }
            }
          out[x] = sample_general (warp, src, src_w, src_h, x, y);
        }
    }
}

void
st_warp_backward (const StWarp *warp, const float *grad_dst, int dst_w, int dst_h,
                  float *grad_src, int src_w, int src_h)
{
  for (int y = 0; y < dst_h; y++)
    for (int x = 0; x < dst_w; x++)
      {
        float g = grad_dst[(gsize) y * dst_w + x];
        if (g == 0)
          continue;
        Taps tx, ty;
        pixel_taps (warp, x, y, src_w, src_h, &tx, &ty);
        for (int j = 0; j < ty.n; j++)
          {
            if (ty.idx[j] < 0)
              continue;
            float *line = grad_src + (gsize) ty.idx[j] * src_w;
            for (int i = 0; i < tx.n; i++)
              if (tx.idx[i] >= 0)
                line[tx.idx[i]] += g * ty.w[j] * tx.w[i];
          }
      }
}
