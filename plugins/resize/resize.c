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

#include <math.h>
#include <stddef.h>
#include <string.h>

/* ---- Metadata ----------------------------------------------------------- */

typedef enum {
  METHOD_BILINEAR,
  METHOD_AREA,
  METHOD_NEAREST,
} Method;

typedef struct {
  int width;
  int height;
  int method;
} ResizeConfig;

static const char *const method_names[] = { "bilinear", "area", "nearest", NULL };

static const StParamSpec resize_params[] = {
  { .name = "width", .type = ST_PARAM_INT,
    .flags = ST_PARAM_REQUIRED | ST_PARAM_HAS_MIN | ST_PARAM_HAS_MAX, .min = 1, .max = 65536,
    .help = "output width in pixels",
    .offset = offsetof (ResizeConfig, width) },
  { .name = "height", .type = ST_PARAM_INT,
    .flags = ST_PARAM_REQUIRED | ST_PARAM_HAS_MIN | ST_PARAM_HAS_MAX, .min = 1, .max = 65536,
    .help = "output height in pixels",
    .offset = offsetof (ResizeConfig, height) },
  { .name = "method", .type = ST_PARAM_ENUM, .default_value = "bilinear",
    .choices = method_names,
    .help = "bilinear (PyTorch, align_corners=False), area (box average, best for shrinking) "
            "or nearest (PyTorch's 'nearest')",
    .offset = offsetof (ResizeConfig, method) },
};

ST_DECLARE_FORWARD (resize);

static const StKind resize_kind = {
  ST_KIND_HEADER,
  .name = "resize",
  .summary = "scale every channel to width x height: bilinear (as PyTorch), area or nearest",
  .category = ST_CATEGORY_PLUMBING,
  .min_inputs = 1,
  .max_inputs = 1,
  .params = resize_params,
  .n_params = G_N_ELEMENTS (resize_params),
  .config_size = sizeof (ResizeConfig),
  .infer = resize_infer,
  .forward = resize_forward,
};

ST_PLUGIN_DEFINE (&resize_kind)

/* ---- Taps along one axis -------------------------------------------------- */

/* Output i reads idx[off[i] .. off[i+1]) with weights w[...]. */
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

/* The most taps an output pixel of method can have. */
static int
axis_max_taps (Method method, int in, int out)
{
  switch (method)
    {
    case METHOD_BILINEAR: return 2;
    case METHOD_NEAREST: return 1;
    case METHOD_AREA: default: return (in + out - 1) / out + 1;
    }
}

static void
axis_bilinear (Axis *a, int in, int out)
{
  const float scale = (float) in / (float) out;
  for (int i = 0; i < out; i++)
    {
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
      a->off[i] = 2 * i;
      a->idx[2 * i] = i0;
      a->w[2 * i] = l0;
      a->idx[2 * i + 1] = i1;
      a->w[2 * i + 1] = l1;
    }
  a->off[out] = 2 * out;
}

static void
axis_nearest (Axis *a, int in, int out)
{
  const float scale = (float) in / (float) out;
  for (int i = 0; i < out; i++)
    {
      int src;
      if (in == out)
        src = i;
      else if (out == 2 * in)
        src = i >> 1;
      else
        src = MIN ((int) floorf ((float) i * scale), in - 1);
      a->off[i] = i;
      a->idx[i] = src;
      a->w[i] = 1.0f;
    }
  a->off[out] = out;
}

/* In units of 1/out, output i covers [i·in, (i+1)·in) and source pixel j
 * covers [j·out, (j+1)·out): the overlaps are exact integers. */
static void
axis_area (Axis *a, int in, int out)
{
  int k = 0;
  for (int i = 0; i < out; i++)
    {
      gint64 lo = (gint64) i * in, hi = lo + in;
      a->off[i] = k;
      for (gint64 j = lo / out; j * out < hi && j < in; j++)
        {
          gint64 overlap = MIN ((j + 1) * out, hi) - MAX (j * out, lo);
          if (overlap <= 0)
            continue;
          a->idx[k] = (int) j;
          a->w[k] = (float) ((double) overlap / (double) in);
          k++;
        }
    }
  a->off[out] = k;
}

static void
axis_init (Axis *a, Method method, int in, int out)
{
  gsize taps = (gsize) out * axis_max_taps (method, in, out);
  a->off = g_new (int, out + 1);
  a->idx = g_new (int, taps);
  a->w = g_new (float, taps);
  switch (method)
    {
    case METHOD_BILINEAR: axis_bilinear (a, in, out); break;
    case METHOD_NEAREST: axis_nearest (a, in, out); break;
    case METHOD_AREA: axis_area (a, in, out); break;
    }
}

/* ---- Implementation ------------------------------------------------------- */

static gboolean
resize_infer (StStage *stage, GError **error)
{
  const ResizeConfig *cfg = stage->config;
  StShape in = stage->in_shapes[0];
  stage->out_shape = (StShape) { in.n, in.c, cfg->height, cfg->width };
  /* An output pixel's source moves with the scale, not by a fixed halo. */
  stage->halo = ST_HALO_WHOLE;
  double taps_h = axis_max_taps (cfg->method, in.w, cfg->width);
  double taps_v = axis_max_taps (cfg->method, in.h, cfg->height);
  stage->macs = (double) st_shape_numel (stage->out_shape) * taps_v * (taps_h + 1);
  return TRUE;
}

typedef struct {
  const float *in;
  float *out;
  int in_h, in_w, out_h, out_w;
  const Axis *ax, *ay;
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
      for (int kv = j->ay->off[y]; kv < j->ay->off[y + 1]; kv++)
        {
          const float *restrict line = src + (gsize) j->ay->idx[kv] * j->in_w;
          const float wv = j->ay->w[kv];
          for (int x = 0; x < ow; x++)
            {
              int kh = j->ax->off[x], stop = j->ax->off[x + 1];
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
    }
  g_free (row);
}

static gboolean
resize_forward (StStage *stage, const StRunContext *ctx,
                const StTensor *const *inputs, StTensor *output, GError **error)
{
  const ResizeConfig *cfg = stage->config;
  const StTensor *in = inputs[0];
  Axis ax, ay;
  axis_init (&ax, cfg->method, in->shape.w, output->shape.w);
  axis_init (&ay, cfg->method, in->shape.h, output->shape.h);
  Job j = { in->data, output->data, in->shape.h, in->shape.w,
            output->shape.h, output->shape.w, &ax, &ay };
  st_parallel_for (ctx, (gsize) in->shape.n * in->shape.c * output->shape.h,
                   resize_range, &j);
  axis_clear (&ax);
  axis_clear (&ay);
  return TRUE;
}
