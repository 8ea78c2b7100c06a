/* strata — kernel: a fixed matrix applied to each channel independently.
 *
 * Cross-correlation, as PyTorch's conv2d computes it:
 *
 *     out(y, x) = offset + Σ_m Σ_n in(y·S − pt + m, x·S − pl + n) · scale · K(m, n)
 *
 * with flip=true rotating K by 180° first (true convolution).  'same'
 * padding is the SDK's st_same_padding(), as conv2d's: the least that gives
 * ceil(input / S) outputs, the odd pixel after; at stride 1 the kernel is
 * anchored at floor((F − 1) / 2), as PyTorch's padding='same'.
 * Borders: zero, edge (replicate), reflect (mirror without repeating the
 * edge pixel: numpy 'reflect', OpenCV BORDER_REFLECT_101, PyTorch
 * 'reflect'), wrap (circular), as the SDK's st_border_index() computes
 * them; every mode is periodic, so padding wider than the image still works. */
#include <strata/strata.h>

#include <math.h>
#include <stddef.h>
#include <string.h>

/* The inner loops must vectorise; -O2 in GCC 12 uses the very-cheap
 * vectoriser cost model, which leaves most of them scalar. */
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC optimize ("O3")
#endif

/* The row loops also get an AVX2 + FMA copy, chosen when the library loads
 * (an ifunc): 1.5x faster on a 3x3 than the SSE2 baseline the build targets. */
#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && defined(__linux__)
#define ROW_LOOP __attribute__ ((target_clones ("arch=x86-64-v3", "default")))
#else
#define ROW_LOOP
#endif

/* ---- Metadata ----------------------------------------------------------- */

typedef enum {
  PRESET_IDENTITY,
  PRESET_SHARPEN,
  PRESET_EMBOSS,
  PRESET_BOX,
  PRESET_GAUSSIAN,
  PRESET_LAPLACIAN,
  PRESET_EDGE,                 /* another name for laplacian */
  PRESET_OUTLINE,
  PRESET_SOBEL_X,
  PRESET_SOBEL_Y,
} Preset;

/* The symbolic values of the int param 'padding'. */
enum { PADDING_SAME = -1, PADDING_VALID = -2 };

typedef struct {
  int preset;
  StDoubleList matrix;
  int size;
  double sigma;
  double scale;
  double offset;
  gboolean flip;
  int border;
  int stride;
  int padding;
} KernelConfig;

static const char *const preset_names[] = {
  "identity", "sharpen", "emboss", "box", "gaussian", "laplacian", "edge",
  "outline", "sobel-x", "sobel-y", NULL
};
static const char *const padding_names[] = { "same", "valid", NULL };

static const StParamSpec kernel_params[] = {
  { .name = "preset", .type = ST_PARAM_ENUM, .default_value = "identity",
    .choices = preset_names,
    .help = "named kernel (edge = laplacian); ignored when matrix is given",
    .offset = offsetof (KernelConfig, preset) },
  { .name = "matrix", .type = ST_PARAM_DOUBLE_LIST,
    .help = "kernel rows separated by ';' (e.g. 0,-1,0;-1,5,-1;0,-1,0), any size; overrides preset",
    .offset = offsetof (KernelConfig, matrix) },
  { .name = "size", .type = ST_PARAM_INT, .default_value = "0",
    .flags = ST_PARAM_HAS_MIN | ST_PARAM_HAS_MAX, .min = 0, .max = 1001,
    .help = "box and gaussian side; 0: 3 for box, 2*ceil(3*sigma)+1 for gaussian",
    .offset = offsetof (KernelConfig, size) },
  { .name = "sigma", .type = ST_PARAM_DOUBLE, .default_value = "1",
    .flags = ST_PARAM_HAS_MIN | ST_PARAM_HAS_MAX, .min = 0.01, .max = 100,
    .help = "gaussian standard deviation in pixels",
    .offset = offsetof (KernelConfig, sigma) },
  { .name = "scale", .type = ST_PARAM_DOUBLE, .default_value = "1",
    .help = "multiplies every kernel value",
    .offset = offsetof (KernelConfig, scale) },
  { .name = "offset", .type = ST_PARAM_DOUBLE, .default_value = "0",
    .help = "added to every output value",
    .offset = offsetof (KernelConfig, offset) },
  { .name = "flip", .type = ST_PARAM_BOOL, .default_value = "false",
    .help = "rotate the kernel 180 degrees: true convolution instead of correlation",
    .offset = offsetof (KernelConfig, flip) },
  { .name = "border", .type = ST_PARAM_ENUM, .default_value = "reflect",
    .choices = ST_BORDER_CHOICES,
    .help = "pixels beyond the edge: zero, edge (repeat), reflect (mirror, edge not repeated), wrap",
    .offset = offsetof (KernelConfig, border) },
  { .name = "stride", .type = ST_PARAM_INT, .default_value = "1",
    .flags = ST_PARAM_HAS_MIN | ST_PARAM_HAS_MAX, .min = 1, .max = 4096,
    .help = "step between output pixels",
    .offset = offsetof (KernelConfig, stride) },
  { .name = "padding", .type = ST_PARAM_INT, .default_value = "same",
    .flags = ST_PARAM_HAS_MIN | ST_PARAM_HAS_MAX, .min = 0, .max = 65536,
    .choices = padding_names,
    .help = "same (output = ceil(input/stride)), valid (no padding) or pixels added on every side",
    .offset = offsetof (KernelConfig, padding) },
};

ST_DECLARE_FORWARD (kernel);
static void kernel_finalize (StStage *stage);

static const StKind kernel_kind = {
  ST_KIND_HEADER,
  .name = "kernel",
  .summary = "fixed matrix (sharpen, emboss, box, gaussian, sobel, ... or matrix=) applied to each channel",
  .category = ST_CATEGORY_FILTER,
  .min_inputs = 1,
  .max_inputs = 1,
  .params = kernel_params,
  .n_params = G_N_ELEMENTS (kernel_params),
  .config_size = sizeof (KernelConfig),
  .infer = kernel_infer,
  .forward = kernel_forward,
  .backward = NULL,
  .finalize = kernel_finalize,
};

ST_PLUGIN_DEFINE (&kernel_kind)

/* ---- The kernel as run ---------------------------------------------------- */

typedef struct {
  int fh, fw;
  float *k;                    /* fh × fw, scaled and flipped */
  /* Box and gaussian are separable, k = kv ⊗ kh: F_h + F_w taps a pixel
   * instead of F_h × F_w.  NULL otherwise. */
  float *kv, *kh;
  float offset;
  int pt, pb, pl, pr;          /* padding before/after, rows and columns */
  int stride;
  StBorder border;
} Plan;

static void
plan_free (Plan *p)
{
  if (!p)
    return;
  g_free (p->k);
  g_free (p->kv);
  g_free (p->kh);
  g_free (p);
}

static const double k_sharpen[9] = { 0, -1, 0, -1, 5, -1, 0, -1, 0 };
static const double k_emboss[9] = { -2, -1, 0, -1, 1, 1, 0, 1, 2 };
static const double k_laplacian[9] = { 0, 1, 0, 1, -4, 1, 0, 1, 0 };
static const double k_outline[9] = { -1, -1, -1, -1, 8, -1, -1, -1, -1 };
static const double k_sobel_x[9] = { -1, 0, 1, -2, 0, 2, -1, 0, 1 };
static const double k_sobel_y[9] = { -1, -2, -1, 0, 0, 0, 1, 2, 1 };

/* Builds the kernel from the config; the errors are combinations of
 * parameters that each passed their own range check. */
static Plan *
plan_new (const KernelConfig *cfg, GError **error)
{
  g_autofree double *k = NULL;
  g_autofree double *k1 = NULL;  /* the 1-D factor of a separable preset */
  int fh, fw;

  if (cfg->matrix.n > 0)
    {
      fh = MAX (cfg->matrix.rows, 1);
      fw = cfg->matrix.n / fh;
      if (cfg->size != 0)
        {
          g_set_error (error, ST_ERROR, ST_ERROR_PIPELINE,
                       "key 'size': applies to the box and gaussian presets, not to matrix=");
          return NULL;
        }
      k = g_memdup2 (cfg->matrix.values, sizeof (double) * cfg->matrix.n);
    }
  else if (cfg->preset == PRESET_BOX || cfg->preset == PRESET_GAUSSIAN)
    {
      int s = cfg->size;
      if (cfg->preset == PRESET_BOX)
        s = s ? s : 3;
      else
        s = s ? s : 2 * (int) ceil (3.0 * cfg->sigma) + 1;
      fh = fw = s;
      k1 = g_new (double, s);
      double sum = 0;
      for (int i = 0; i < s; i++)
        {
          /* Centred on the middle of the window, even sizes included, so
           * the kernel stays symmetric. */
          double d = i - (s - 1) / 2.0;
          k1[i] = cfg->preset == PRESET_BOX ? 1.0
                  : exp (-d * d / (2.0 * cfg->sigma * cfg->sigma));
          sum += k1[i];
        }
      for (int i = 0; i < s; i++)
        k1[i] /= sum;
      k = g_new (double, s * s);
      for (int m = 0; m < s; m++)
        for (int n = 0; n < s; n++)
          k[m * s + n] = k1[m] * k1[n];
    }
  else
    {
      if (cfg->size != 0)
        {
          g_set_error (error, ST_ERROR, ST_ERROR_PIPELINE,
                       "key 'size': applies to the box and gaussian presets, not to '%s'",
                       preset_names[cfg->preset]);
          return NULL;
        }
      const double *src = NULL;
      switch ((Preset) cfg->preset)
        {
        case PRESET_SHARPEN: src = k_sharpen; break;
        case PRESET_EMBOSS: src = k_emboss; break;
        case PRESET_LAPLACIAN:
        case PRESET_EDGE: src = k_laplacian; break;
        case PRESET_OUTLINE: src = k_outline; break;
        case PRESET_SOBEL_X: src = k_sobel_x; break;
        case PRESET_SOBEL_Y: src = k_sobel_y; break;
        case PRESET_IDENTITY:
        case PRESET_BOX:
        case PRESET_GAUSSIAN:
          break;
        }
      if (src)
        {
          fh = fw = 3;
          k = g_memdup2 (src, sizeof (double) * 9);
        }
      else
        {
          fh = fw = 1;
          k = g_new (double, 1);
          k[0] = 1.0;
        }
    }

  Plan *p = g_new0 (Plan, 1);
  p->fh = fh;
  p->fw = fw;
  p->k = g_new (float, fh * fw);
  for (int m = 0; m < fh; m++)
    for (int n = 0; n < fw; n++)
      {
        int sm = cfg->flip ? fh - 1 - m : m;
        int sn = cfg->flip ? fw - 1 - n : n;
        p->k[m * fw + n] = (float) (cfg->scale * k[sm * fw + sn]);
      }
  if (k1)
    {
      /* Symmetric, so flip changes nothing; scale goes into one factor. */
      int s = fh;               /* square: fh == fw */
      p->kv = g_new (float, (guint) s);
      p->kh = g_new (float, (guint) s);
      for (int i = 0; i < s; i++)
        {
          p->kv[i] = (float) k1[i];
          p->kh[i] = (float) (cfg->scale * k1[i]);
        }
    }
  p->offset = (float) cfg->offset;
  p->stride = cfg->stride;
  p->border = (StBorder) cfg->border;
  /* 'same' depends on the input's size: kernel_infer sets it. */
  if (cfg->padding >= 0)
    p->pt = p->pb = p->pl = p->pr = cfg->padding;
  return p;
}

static gboolean
kernel_infer (StStage *stage, GError **error)
{
  const KernelConfig *cfg = stage->config;
  StShape in = stage->in_shapes[0];

  g_clear_pointer ((Plan **) &stage->priv, plan_free);
  Plan *p = plan_new (cfg, error);
  if (!p)
    return FALSE;
  stage->priv = p;

  if (in.n <= 0 || in.c <= 0 || in.h <= 0 || in.w <= 0)
    {
      char buf[64];
      g_set_error (error, ST_ERROR, ST_ERROR_SHAPE, "input %s is empty",
                   st_shape_format (in, buf, sizeof buf));
      return FALSE;
    }
  if (cfg->padding == PADDING_SAME)
    {
      st_same_padding (in.h, p->fh, p->stride, 1, &p->pt, &p->pb);
      st_same_padding (in.w, p->fw, p->stride, 1, &p->pl, &p->pr);
    }
  /* 64-bit: padding may be up to 65536 on an image near INT_MAX wide. */
  gint64 ph = (gint64) in.h + p->pt + p->pb;
  gint64 pw = (gint64) in.w + p->pl + p->pr;
  if (ph < p->fh || pw < p->fw)
    {
      g_set_error (error, ST_ERROR, ST_ERROR_SHAPE,
                   "kernel %dx%d is larger than the padded input %" G_GINT64_FORMAT
                   "x%" G_GINT64_FORMAT, p->fh, p->fw, ph, pw);
      return FALSE;
    }
  gint64 h2 = (ph - p->fh) / p->stride + 1;
  gint64 w2 = (pw - p->fw) / p->stride + 1;
  if (h2 > G_MAXINT || w2 > G_MAXINT)
    {
      g_set_error (error, ST_ERROR, ST_ERROR_SHAPE, "output of %" G_GINT64_FORMAT
                   "x%" G_GINT64_FORMAT " pixels is too large", h2, w2);
      return FALSE;
    }
  stage->out_shape = (StShape) { in.n, in.c, (int) h2, (int) w2 };
  stage->floored = (ph - p->fh) % p->stride != 0 || (pw - p->fw) % p->stride != 0;
  stage->macs = (double) st_shape_numel (stage->out_shape) * p->fh * p->fw;

  /* A strip of rows can be filtered on its own only when output rows line
   * up with input rows (stride 1, 'same' anchor) and the border does not
   * reach across the image (wrap reads the other edge). */
  gboolean aligned = p->stride == 1
                     && p->pt == (p->fh - 1) / 2 && p->pb == p->fh - 1 - p->pt
                     && p->pl == (p->fw - 1) / 2 && p->pr == p->fw - 1 - p->pl;
  if (aligned && p->border != ST_BORDER_WRAP)
    stage->halo = MAX (MAX (p->pt, p->pb), MAX (p->pl, p->pr));
  else
    stage->halo = ST_HALO_WHOLE;
  return TRUE;
}

static void
kernel_finalize (StStage *stage)
{
  g_clear_pointer ((Plan **) &stage->priv, plan_free);
}

/* ---- Forward ---------------------------------------------------------------- */

/* out[x] += Σ_n k[n] · in[x·s + n] for x < w.  Stride 1 takes four taps a
 * pass so each output element is loaded and stored F/4 times, not F. */
ROW_LOOP static void
taps_acc (float *restrict out, const float *restrict in, const float *k,
          int fw, int w, int s)
{
  if (s != 1)
    {
      for (int n = 0; n < fw; n++)
        {
          float k0 = k[n];
          const float *restrict a = in + n;
          for (int x = 0; x < w; x++)
            out[x] += k0 * a[(gsize) x * s];
        }
      return;
    }
  int n = 0;
  for (; n + 4 <= fw; n += 4)
    {
      float k0 = k[n], k1 = k[n + 1], k2 = k[n + 2], k3 = k[n + 3];
      const float *restrict a = in + n;
      for (int x = 0; x < w; x++)
        out[x] += k0 * a[x] + k1 * a[x + 1] + k2 * a[x + 2] + k3 * a[x + 3];
    }
  const float *restrict a = in + n;
  switch (fw - n)
    {
    case 3:
      {
        float k0 = k[n], k1 = k[n + 1], k2 = k[n + 2];
        for (int x = 0; x < w; x++)
          out[x] += k0 * a[x] + k1 * a[x + 1] + k2 * a[x + 2];
        break;
      }
    case 2:
      {
        float k0 = k[n], k1 = k[n + 1];
        for (int x = 0; x < w; x++)
          out[x] += k0 * a[x] + k1 * a[x + 1];
        break;
      }
    case 1:
      {
        float k0 = k[n];
        for (int x = 0; x < w; x++)
          out[x] += k0 * a[x];
        break;
      }
    default:
      break;
    }
}

/* The common 3×3 at stride 1 in one pass: each output written once. */
ROW_LOOP static void
conv3x3_row (float *restrict out, const float *restrict r0,
             const float *restrict r1, const float *restrict r2,
             const float *k, float offset, int w)
{
  float k0 = k[0], k1 = k[1], k2 = k[2];
  float k3 = k[3], k4 = k[4], k5 = k[5];
  float k6 = k[6], k7 = k[7], k8 = k[8];
  for (int x = 0; x < w; x++)
    out[x] = offset
             + (k0 * r0[x] + k1 * r0[x + 1] + k2 * r0[x + 2])
             + (k3 * r1[x] + k4 * r1[x + 1] + k5 * r1[x + 2])
             + (k6 * r2[x] + k7 * r2[x + 1] + k8 * r2[x + 2]);
}

/* out[x] = offset + Σ_m kv[m] · rows[m][x], four rows a pass. */
ROW_LOOP static void
vertical_row (float *restrict out, const float *const *rows, const float *kv,
              int fh, float offset, int w)
{
  for (int x = 0; x < w; x++)
    out[x] = offset;
  int m = 0;
  for (; m + 4 <= fh; m += 4)
    {
      const float *restrict a = rows[m], *restrict b = rows[m + 1];
      const float *restrict c = rows[m + 2], *restrict d = rows[m + 3];
      float k0 = kv[m], k1 = kv[m + 1], k2 = kv[m + 2], k3 = kv[m + 3];
      for (int x = 0; x < w; x++)
        out[x] += k0 * a[x] + k1 * b[x] + k2 * c[x] + k3 * d[x];
    }
  for (; m < fh; m++)
    {
      const float *restrict a = rows[m];
      float k0 = kv[m];
      for (int x = 0; x < w; x++)
        out[x] += k0 * a[x];
    }
}

typedef struct {
  const Plan *p;
  const float *in;
  float *out;
  int h1, w1, h2, w2;
  gsize wp;                    /* padded row: pl + w1 + pr */
  const int *colmap;           /* source column of each pad column (pl left, then pr right), -1: zero */
  const float *zeros;          /* MAX (wp, w2) zeros: a row wholly outside under border=zero */
} Job;

/* A padded copy of one input row: the row itself plus its pad columns. */
static void
pad_row (float *restrict dst, const float *restrict src, const Job *j)
{
  const Plan *p = j->p;
  for (int i = 0; i < p->pl; i++)
    dst[i] = j->colmap[i] >= 0 ? src[j->colmap[i]] : 0.0f;
  memcpy (dst + p->pl, src, sizeof (float) * j->w1);
  for (int i = 0; i < p->pr; i++)
    {
      int c = j->colmap[p->pl + i];
      dst[p->pl + j->w1 + i] = c >= 0 ? src[c] : 0.0f;
    }
}

/* Output rows [begin, end) counted over all planes.  Each input row a
 * range needs is padded (and, when separable, filtered across) once into a
 * ring of F_h slots, slot r mod F_h: the F_h consecutive rows one output
 * row reads never share a slot. */
static void
kernel_rows (gsize begin, gsize end, gpointer data)
{
  const Job *j = data;
  const Plan *p = j->p;
  const int fh = p->fh, fw = p->fw, s = p->stride;
  const gboolean separable = p->kv != NULL;
  const gboolean direct = !separable && p->pl == 0 && p->pr == 0;
  const gsize slot_w = separable ? (gsize) j->w2 : j->wp;

  /* Reads stop at column (w2 − 1)·s + fw − 1 < wp: no slack needed. */
  float *ring = direct ? NULL : g_new (float, fh * slot_w);
  float *line = separable ? g_new (float, j->wp) : NULL;
  gsize *tag_plane = g_new (gsize, fh);
  gint64 *tag_row = g_new (gint64, fh);
  const float **rows = g_new (const float *, fh);
  for (int i = 0; i < fh; i++)
    tag_row[i] = G_MININT64;

  for (gsize i = begin; i < end; i++)
    {
      gsize plane = i / (gsize) j->h2;
      int y = (int) (i % (gsize) j->h2);
      const float *src = j->in + plane * (gsize) j->h1 * j->w1;
      float *dst = j->out + plane * (gsize) j->h2 * j->w2 + (gsize) y * j->w2;
      gint64 r0 = (gint64) y * s - p->pt;

      for (int m = 0; m < fh; m++)
        {
          gint64 r = r0 + m;
          int sr = st_border_index (r, j->h1, p->border);
          if (sr < 0)
            {
              rows[m] = j->zeros;
              continue;
            }
          const float *srow = src + (gsize) sr * j->w1;
          if (direct)
            {
              rows[m] = srow;
              continue;
            }
          int slot = (int) (((r % fh) + fh) % fh);
          float *buf = ring + slot * slot_w;
          if (tag_row[slot] != r || tag_plane[slot] != plane)
            {
              if (separable)
                {
                  pad_row (line, srow, j);
                  memset (buf, 0, sizeof (float) * j->w2);
                  taps_acc (buf, line, p->kh, fw, j->w2, s);
                }
              else
                pad_row (buf, srow, j);
              tag_row[slot] = r;
              tag_plane[slot] = plane;
            }
          rows[m] = buf;
        }

      if (separable)
        vertical_row (dst, rows, p->kv, fh, p->offset, j->w2);
      else if (fh == 3 && fw == 3 && s == 1)
        conv3x3_row (dst, rows[0], rows[1], rows[2], p->k, p->offset, j->w2);
      else
        {
          for (int x = 0; x < j->w2; x++)
            dst[x] = p->offset;
          for (int m = 0; m < fh; m++)
            taps_acc (dst, rows[m], p->k + m * fw, fw, j->w2, s);
        }
    }

  g_free (ring);
  g_free (line);
  g_free (tag_plane);
  g_free (tag_row);
  g_free (rows);
}

static gboolean
kernel_forward (StStage *stage, const StRunContext *ctx,
                const StTensor *const *inputs, StTensor *output,
                GError **error)
{
  const Plan *p = stage->priv;
  const StTensor *in = inputs[0];
  Job j = {
    .p = p,
    .in = in->data,
    .out = output->data,
    .h1 = in->shape.h,
    .w1 = in->shape.w,
    .h2 = output->shape.h,
    .w2 = output->shape.w,
    .wp = (gsize) p->pl + (gsize) in->shape.w + (gsize) p->pr,
  };
  int *colmap = g_new (int, p->pl + p->pr + 1);
  for (int i = 0; i < p->pl; i++)
    colmap[i] = st_border_index ((gint64) i - p->pl, j.w1, p->border);
  for (int i = 0; i < p->pr; i++)
    colmap[p->pl + i] = st_border_index ((gint64) j.w1 + i, j.w1, p->border);
  float *zeros = g_new0 (float, MAX (j.wp, (gsize) j.w2));
  j.colmap = colmap;
  j.zeros = zeros;

  gsize n_rows = (gsize) in->shape.n * in->shape.c * j.h2;
  st_parallel_for (ctx, n_rows, kernel_rows, &j);

  g_free (colmap);
  g_free (zeros);
  return TRUE;
}
