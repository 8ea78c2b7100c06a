/* strata — resize: every channel to width × height.
 *
 * Each method is separable: an output pixel is Σ_k wv_k · Σ_j wh_j ·
 * in(yv_k, xh_j), horizontal first then vertical, with per-axis taps.
 *
 * bilinear — PyTorch's F.interpolate (mode='bilinear', align_corners=False,
 *   antialias=False), computed as PyTorch's CPU kernel does, in float and in
 *   the same order: scale = in / out, src = (dst + 0.5) · scale − 0.5
 *   clamped below at 0, taps floor(src) and the next pixel (the last pixel
 *   twice at the far edge), weights 1 − λ and λ.  No antialiasing, so a
 *   large downscale skips pixels, as PyTorch's does: use area for that.
 * nearest — PyTorch's mode='nearest': src = min(floor(dst · scale), in − 1)
 *   in float (not 'nearest-exact').
 * area — the exact box filter: output pixel i covers the source interval
 *   [i·in/out, (i+1)·in/out) and averages the pixels it overlaps, each
 *   weighted by the length of the overlap.  That is OpenCV's INTER_AREA
 *   (shrinking and enlarging), and for integer factors it is the block mean
 *   of PyTorch's adaptive_avg_pool2d / mode='area'.  For other ratios
 *   PyTorch averages whole pixels floor(i·in/out) .. ceil((i+1)·in/out) − 1
 *   with equal weights; here the edge pixels count by their overlap, so
 *   every source pixel contributes exactly its share and the image's mean
 *   is preserved. */
#include <strata/strata.h>
#include <strata/warp.h>

#include <math.h>
#include <stddef.h>
#include <string.h>

/* ---- Metadata ----------------------------------------------------------- */

typedef enum {
  METHOD_BILINEAR,
  METHOD_AREA,
  METHOD_NEAREST,
  METHOD_BICUBIC,
  METHOD_LANCZOS,
} Method;

enum { FIT_FILL, FIT_CONTAIN, FIT_COVER };

/* ST_BORDER_* first, then resize's own mode. */
#define BORDER_CONSTANT 4

typedef struct {
  int width;                   /* 0: from height, keeping the aspect ratio */
  int height;                  /* 0: from width */
  int method;
  int fit;
  int border;
  double value;
} ResizeConfig;

#define RESIZE_MAX 65536

static const char *const method_names[] = { "bilinear", "area", "nearest", "bicubic", "lanczos", NULL };
static const char *const fit_names[] = { "fill", "contain", "cover", NULL };
static const char *const border_names[] = { "zero", "edge", "reflect", "wrap", "constant", NULL };

static const StParamSpec resize_params[] = {
  { .name = "width", .type = ST_PARAM_INT,
    .flags = ST_PARAM_HAS_MIN | ST_PARAM_HAS_MAX, .min = 1, .max = RESIZE_MAX,
    .help = "output width in pixels; alone: height keeps the aspect ratio",
    .offset = offsetof (ResizeConfig, width) },
  { .name = "height", .type = ST_PARAM_INT,
    .flags = ST_PARAM_HAS_MIN | ST_PARAM_HAS_MAX, .min = 1, .max = RESIZE_MAX,
    .help = "output height in pixels; alone: width keeps the aspect ratio",
    .offset = offsetof (ResizeConfig, height) },
  { .name = "interpolation", .type = ST_PARAM_ENUM, .default_value = "bilinear",
    .choices = method_names,
    .help = "bilinear (PyTorch, align_corners=False), area (box average, best for shrinking), "
            "nearest (PyTorch's 'nearest'), bicubic (OpenCV's, a=-0.75) or lanczos (Lanczos-3, as PIL)",
    .offset = offsetof (ResizeConfig, method) },
  { .name = "fit", .type = ST_PARAM_ENUM, .default_value = "fill",
    .choices = fit_names,
    .help = "with width and height: fill (stretch), contain (fit inside, pad by border) "
            "or cover (fill, crop the overflow centred)",
    .offset = offsetof (ResizeConfig, fit) },
  { .name = "border", .type = ST_PARAM_ENUM, .default_value = "zero",
    .choices = border_names,
    .help = "fit=contain's margins: zero, edge (repeat), reflect (mirror, edge not repeated), "
            "wrap (the opposite side) or constant (value)",
    .offset = offsetof (ResizeConfig, border) },
  { .name = "value", .type = ST_PARAM_DOUBLE, .default_value = "0",
    .help = "the margins' value with border=constant (images hold 0 to 1)",
    .offset = offsetof (ResizeConfig, value) },
};

ST_DECLARE_FORWARD (resize);
static void resize_finalize (StStage *stage);

static const StKind resize_kind = {
  ST_KIND_HEADER,
  .name = "resize",
  .summary = "scale every channel to width x height (or keep the aspect ratio; fit, contain or "
             "cover): bilinear (as PyTorch), area, nearest, bicubic or lanczos",
  .category = ST_CATEGORY_PLUMBING,
  .min_inputs = 1,
  .max_inputs = 1,
  .params = resize_params,
  .n_params = G_N_ELEMENTS (resize_params),
  .config_size = sizeof (ResizeConfig),
  .infer = resize_infer,
  .forward = resize_forward,
  .finalize = resize_finalize,
};

ST_PLUGIN_DEFINE (&resize_kind)

/* ---- Taps along one axis -------------------------------------------------- */

/* Output i reads idx[off[i] .. off[i+1]) with weights w[...]; no taps: the
 * border's constant. */
typedef struct {
  int *off;
  int *idx;
  float *w;
} Axis;

static void
axis_clear (Axis *a)
{
  g_free (a->off);
  g_free (a->idx);
  g_free (a->w);
}

/* Lanczos-3's half width in source pixels: 3, stretched when shrinking. */
static double
lanczos_support (int in, int out)
{
  return 3.0 * MAX ((double) in / out, 1.0);
}

/* The most taps an output pixel of method can have. */
static int
axis_max_taps (Method method, int in, int out)
{
  switch (method)
    {
    case METHOD_BILINEAR: return 2;
    case METHOD_NEAREST: return 1;
    case METHOD_BICUBIC: return 4;
    case METHOD_LANCZOS: return (int) ceil (2 * lanczos_support (in, out)) + 2;
    case METHOD_AREA: default: return (in + out - 1) / out + 1;
    }
}

/* Each builder fills the taps of outputs first .. first + n − 1 of an axis
 * scaled from in to out pixels (cover uses a window of them), at 0 .. n − 1. */

static void
axis_bilinear (Axis *a, int in, int out, int first, int n)
{
  const float scale = (float) in / (float) out;
  for (int k = 0; k < n; k++)
    {
      int i = first + k;
      int i0, i1;
      float l0, l1;
      if (in == out)
        {
          i0 = i1 = i;
          l0 = 1.0f;
          l1 = 0.0f;
        }
      else
        {
          float src = scale * ((float) i + 0.5f) - 0.5f;
          if (src < 0.0f)
            src = 0.0f;
          i0 = MIN ((int) floorf (src), in - 1);
          l1 = CLAMP (src - (float) i0, 0.0f, 1.0f);
          i1 = i0 + (i0 < in - 1 ? 1 : 0);
          l0 = 1.0f - l1;
        }
      a->off[k] = 2 * k;
      a->idx[2 * k] = i0;
      a->w[2 * k] = l0;
      a->idx[2 * k + 1] = i1;
      a->w[2 * k + 1] = l1;
    }
  a->off[n] = 2 * n;
}

static void
axis_nearest (Axis *a, int in, int out, int first, int n)
{
  const float scale = (float) in / (float) out;
  for (int k = 0; k < n; k++)
    {
      int i = first + k;
      int src;
      if (in == out)
        src = i;
      else if (out == 2 * in)
        src = i >> 1;
      else
        src = MIN ((int) floorf ((float) i * scale), in - 1);
      a->off[k] = k;
      a->idx[k] = src;
      a->w[k] = 1.0f;
    }
  a->off[n] = n;
}

/* In units of 1/out, output i covers [i·in, (i+1)·in) and source pixel j
 * covers [j·out, (j+1)·out): the overlaps are exact integers. */
static void
axis_area (Axis *a, int in, int out, int first, int n)
{
  int t = 0;
  for (int k = 0; k < n; k++)
    {
      gint64 lo = (gint64) (first + k) * in, hi = lo + in;
      a->off[k] = t;
      for (gint64 j = lo / out; j * out < hi && j < in; j++)
        {
          gint64 overlap = MIN ((j + 1) * out, hi) - MAX (j * out, lo);
          if (overlap <= 0)
            continue;
          a->idx[t] = (int) j;
          a->w[t] = (float) ((double) overlap / (double) in);
          t++;
        }
    }
  a->off[n] = t;
}

static void
axis_bicubic (Axis *a, int in, int out, int first, int n)
{
  const double scale = (double) in / out;
  for (int k = 0; k < n; k++)
    {
      double src = ((first + k) + 0.5) * scale - 0.5;
      double f = floor (src), l = src - f;
      a->off[k] = 4 * k;
      for (int m = 0; m < 4; m++)
        {
          a->idx[4 * k + m] = CLAMP ((gint64) f + m - 1, 0, in - 1);
          a->w[4 * k + m] = (float) st_cubic_weight (l - (m - 1), -0.75);
        }
    }
  a->off[n] = 4 * n;
}

/* sinc(x)·sinc(x/3), exactly 0 at the nonzero integers so that an
 * unscaled axis is the identity. */
static double
lanczos3 (double x)
{
  if (x == 0)
    return 1;
  if (fabs (x) >= 3 || x == floor (x))
    return 0;
  double px = G_PI * x;
  return 3 * sin (px) * sin (px / 3) / (px * px);
}

/* As PIL's precompute_coeffs: the window centred on the output pixel's
 * centre in source coordinates, clipped to the image, normalised. */
static void
axis_lanczos (Axis *a, int in, int out, int first, int n)
{
  const double scale = (double) in / out;
  const double stretch = MAX (scale, 1.0), support = lanczos_support (in, out);
  int t = 0;
  for (int k = 0; k < n; k++)
    {
      double centre = ((first + k) + 0.5) * scale;
      int lo = MAX ((int) floor (centre - support + 0.5), 0);
      int hi = MIN ((int) floor (centre + support + 0.5), in);
      double sum = 0;
      a->off[k] = t;
      for (int j = lo; j < hi; j++)
        {
          double w = lanczos3 ((j + 0.5 - centre) / stretch);
          if (w == 0)
            continue;
          a->idx[t] = j;
          a->w[t] = (float) w;
          sum += w;
          t++;
        }
      for (int m = a->off[k]; m < t; m++)
        a->w[m] = (float) (a->w[m] / sum);
    }
  a->off[n] = t;
}

/* The taps of outputs first .. first + n − 1 of an axis scaled from in to
 * out pixels. */
static void
axis_init (Axis *a, Method method, int in, int out, int first, int n)
{
  gsize taps = (gsize) n * axis_max_taps (method, in, out);
  a->off = g_new (int, n + 1);
  a->idx = g_new (int, taps);
  a->w = g_new (float, taps);
  switch (method)
    {
    case METHOD_BILINEAR: axis_bilinear (a, in, out, first, n); break;
    case METHOD_NEAREST: axis_nearest (a, in, out, first, n); break;
    case METHOD_AREA: axis_area (a, in, out, first, n); break;
    case METHOD_BICUBIC: axis_bicubic (a, in, out, first, n); break;
    case METHOD_LANCZOS: axis_lanczos (a, in, out, first, n); break;
    }
}

/* Where the scaled image of `inner` pixels lies along an output axis of
 * `out`: inner > out (cover) shows inner pixels from `first` on;
 * inner < out (contain) starts at output `at`, the rest is margin. */
typedef struct {
  int in, inner, out;
  int first, at;
} Span;

static Span
span_make (int in, int inner, int out)
{
  return (Span) { in, inner, out, MAX ((inner - out) / 2, 0), MAX ((out - inner) / 2, 0) };
}

/* The taps of the whole output axis of span: the scaled image's own, and
 * in contain's margins those of the scaled pixel the border reads there
 * (none where it reads the constant). */
static void
axis_build (Axis *a, Method method, Span s, StBorder border)
{
  if (s.inner >= s.out)
    {
      axis_init (a, method, s.in, s.inner, s.first, s.out);
      return;
    }
  Axis inner;
  axis_init (&inner, method, s.in, s.inner, 0, s.inner);
  gsize taps = (gsize) s.out * axis_max_taps (method, s.in, s.inner);
  a->off = g_new (int, s.out + 1);
  a->idx = g_new (int, taps);
  a->w = g_new (float, taps);
  int t = 0;
  for (int i = 0; i < s.out; i++)
    {
      a->off[i] = t;
      int j = st_border_index ((gint64) i - s.at, s.inner, border);
      if (j < 0)
        continue;
      for (int m = inner.off[j]; m < inner.off[j + 1]; m++, t++)
        {
          a->idx[t] = inner.idx[m];
          a->w[t] = inner.w[m];
        }
    }
  a->off[s.out] = t;
  axis_clear (&inner);
}

/* ---- Implementation ------------------------------------------------------- */

typedef struct {
  Span x, y;
} ResizePriv;

/* The side that keeps in_a : in_b when the other becomes given. */
static gint64
keep_aspect (int in_a, int in_b, int given)
{
  return MAX ((gint64) llround ((double) in_a * given / in_b), 1);
}

static gboolean
resize_infer (StStage *stage, GError **error)
{
  const ResizeConfig *cfg = stage->config;
  StShape in = stage->in_shapes[0];
  if (!cfg->width && !cfg->height)
    {
      g_set_error (error, ST_ERROR, ST_ERROR_PIPELINE,
                   "give width, height or both (one alone keeps the aspect ratio)");
      return FALSE;
    }
  gint64 w = cfg->width ? cfg->width : keep_aspect (in.w, in.h, cfg->height);
  gint64 h = cfg->height ? cfg->height : keep_aspect (in.h, in.w, cfg->width);
  if (w > RESIZE_MAX || h > RESIZE_MAX)
    {
      g_set_error (error, ST_ERROR, ST_ERROR_SHAPE,
                   "keeping the %dx%d input's aspect ratio gives %" G_GINT64_FORMAT "x%"
                   G_GINT64_FORMAT " (width x height), more than %d a side",
                   in.w, in.h, w, h, RESIZE_MAX);
      return FALSE;
    }
  /* The scaled image's size: the output's, or for contain and cover the
   * aspect-true size that fits inside or covers it. */
  gint64 iw = w, ih = h;
  if (cfg->fit != FIT_FILL && cfg->width && cfg->height)
    {
      gboolean width_binds = (w * in.h <= h * in.w) == (cfg->fit == FIT_CONTAIN);
      if (width_binds)
        ih = keep_aspect (in.h, in.w, (int) w);
      else
        iw = keep_aspect (in.w, in.h, (int) h);
      if (cfg->fit == FIT_CONTAIN)
        iw = MIN (iw, w), ih = MIN (ih, h);
      else
        iw = MAX (iw, w), ih = MAX (ih, h);
    }
  if (iw > G_MAXINT || ih > G_MAXINT)
    {
      g_set_error (error, ST_ERROR, ST_ERROR_SHAPE,
                   "covering %" G_GINT64_FORMAT "x%" G_GINT64_FORMAT " with the %dx%d input "
                   "needs a scaled image too large to index", w, h, in.w, in.h);
      return FALSE;
    }
  ResizePriv *priv = stage->priv;
  if (!priv)
    stage->priv = priv = g_new0 (ResizePriv, 1);
  priv->x = span_make (in.w, (int) iw, (int) w);
  priv->y = span_make (in.h, (int) ih, (int) h);
  stage->out_shape = (StShape) { in.n, in.c, (int) h, (int) w };
  /* An output pixel's source moves with the scale, not by a fixed halo. */
  stage->halo = ST_HALO_WHOLE;
  double taps_h = axis_max_taps (cfg->method, in.w, (int) iw);
  double taps_v = axis_max_taps (cfg->method, in.h, (int) ih);
  stage->macs = (double) st_shape_numel (stage->out_shape) * taps_v * (taps_h + 1);
  return TRUE;
}

static void
resize_finalize (StStage *stage)
{
  g_free (stage->priv);
}

typedef struct {
  const float *in;
  float *out;
  int in_h, in_w, out_h, out_w;
  const Axis *ax, *ay;
  float value;                 /* where an axis has no taps */
} Job;

/* One work item is one output row, over the whole batch (plane · out_h + y).
 * The horizontal pass of each source row it reads is redone per output
 * row; that is at most the taps the vertical pass needs, and keeps every
 * item independent. */
static void
resize_range (gsize begin, gsize end, gpointer data)
{
  const Job *j = data;
  const int ow = j->out_w;
  float *row = g_new (float, ow);
  for (gsize item = begin; item < end; item++)
    {
      gsize plane = item / j->out_h;
      int y = (int) (item % j->out_h);
      const float *src = j->in + plane * j->in_h * j->in_w;
      float *restrict dst = j->out + plane * j->out_h * ow + (gsize) y * ow;
      if (j->ay->off[y] == j->ay->off[y + 1])
        {
          for (int x = 0; x < ow; x++)
            dst[x] = j->value;
          continue;
        }
      for (int kv = j->ay->off[y]; kv < j->ay->off[y + 1]; kv++)
        {
          const float *restrict line = src + (gsize) j->ay->idx[kv] * j->in_w;
          const float wv = j->ay->w[kv];
          for (int x = 0; x < ow; x++)
            {
              int kh = j->ax->off[x], stop = j->ax->off[x + 1];
              if (kh == stop)
                {
                  row[x] = 0;
                  continue;
                }
              float t = line[j->ax->idx[kh]] * j->ax->w[kh];
              for (kh++; kh < stop; kh++)
                t += line[j->ax->idx[kh]] * j->ax->w[kh];
              row[x] = t;
            }
          /* As PyTorch: out = t0·w0, then out += t1·w1. */
          if (kv == j->ay->off[y])
            for (int x = 0; x < ow; x++)
              dst[x] = row[x] * wv;
          else
            for (int x = 0; x < ow; x++)
              dst[x] += row[x] * wv;
        }
      for (int x = 0; x < ow; x++)
        if (j->ax->off[x] == j->ax->off[x + 1])
          dst[x] = j->value;
    }
  g_free (row);
}

static gboolean
resize_forward (StStage *stage, const StRunContext *ctx,
                const StTensor *const *inputs, StTensor *output, GError **error)
{
  const ResizeConfig *cfg = stage->config;
  const ResizePriv *priv = stage->priv;
  const StTensor *in = inputs[0];
  StBorder border = cfg->border == BORDER_CONSTANT ? ST_BORDER_ZERO : (StBorder) cfg->border;
  Axis ax, ay;
  axis_build (&ax, cfg->method, priv->x, border);
  axis_build (&ay, cfg->method, priv->y, border);
  Job j = { in->data, output->data, in->shape.h, in->shape.w,
            output->shape.h, output->shape.w, &ax, &ay,
            cfg->border == BORDER_CONSTANT ? (float) cfg->value : 0.0f };
  st_parallel_for (ctx, (gsize) in->shape.n * in->shape.c * output->shape.h,
                   resize_range, &j);
  axis_clear (&ax);
  axis_clear (&ay);
  return TRUE;
}
