/* strata — pooling: maxpool, avgpool and globalavgpool, as PyTorch's
 * MaxPool2d, AvgPool2d and AdaptiveAvgPool2d(1).
 *
 *     out(y, x) = max or mean of in(y·S − P + m, x·S − P + n),  0 ≤ m, n < K
 *
 * with output size floor((H + 2P − K) / S) + 1 (ceil_mode=False).  maxpool
 * treats padding as −∞, so it never wins, and routes the gradient to the
 * first maximum of each window (NaN counts as a maximum, as in PyTorch);
 * avgpool treats padding as zeros and always divides by K²
 * (count_include_pad=True, PyTorch's default).  The three kinds share the
 * window geometry, hence one plugin.
 *
 * Windows that tile the input (stride = size, no padding: the usual 2x2)
 * take libstrata's st_maxpool_tiles_forward() and _backward(), which
 * conv2d's fused pool= shares; they give the general path's outputs,
 * argmax and gradients bit for bit, NaN included. */
#include <strata/strata.h>
#include <strata/maxpool.h>

#include <math.h>
#include <stddef.h>
#include <string.h>

/* ---- Metadata ----------------------------------------------------------- */

typedef struct {
  int size;
  int stride;
  int padding;
} PoolConfig;

static const StParamSpec pool_params[] = {
  { .name = "size", .type = ST_PARAM_INT, .default_value = "2",
    .flags = ST_PARAM_HAS_MIN | ST_PARAM_HAS_MAX, .min = 1, .max = 4096,
    .help = "side of the square window",
    .offset = offsetof (PoolConfig, size) },
  { .name = "stride", .type = ST_PARAM_INT, .default_value = "0",
    .flags = ST_PARAM_HAS_MIN | ST_PARAM_HAS_MAX, .min = 0, .max = 4096,
    .help = "step between windows; 0: the window size (PyTorch's default)",
    .offset = offsetof (PoolConfig, stride) },
  { .name = "padding", .type = ST_PARAM_INT, .default_value = "0",
    .flags = ST_PARAM_HAS_MIN | ST_PARAM_HAS_MAX, .min = 0, .max = 2048,
    .help = "pixels added on every side, at most size/2 (-inf for maxpool, 0 for avgpool)",
    .offset = offsetof (PoolConfig, padding) },
};

static gboolean window_infer (StStage *stage, GError **error);
static gboolean maxpool_forward (StStage *stage, const StRunContext *ctx,
                                 const StTensor *const *inputs, StTensor *output,
                                 GError **error);
static gboolean maxpool_backward (StStage *stage, const StRunContext *ctx,
                                  const StTensor *const *inputs,
                                  const StTensor *output,
                                  const StTensor *grad_output,
                                  StTensor *const *grad_inputs,
                                  GError **error);
static void maxpool_finalize (StStage *stage);
static gboolean avgpool_forward (StStage *stage, const StRunContext *ctx,
                                 const StTensor *const *inputs, StTensor *output,
                                 GError **error);
static gboolean avgpool_backward (StStage *stage, const StRunContext *ctx,
                                  const StTensor *const *inputs,
                                  const StTensor *output,
                                  const StTensor *grad_output,
                                  StTensor *const *grad_inputs,
                                  GError **error);
ST_DECLARE_FORWARD (globalavgpool);
ST_DECLARE_BACKWARD (globalavgpool);

static const StKind maxpool_kind = {
  ST_KIND_HEADER,
  .name = "maxpool",
  .summary = "largest value of each window, per channel (PyTorch MaxPool2d)",
  .category = ST_CATEGORY_LAYER,
  .min_inputs = 1,
  .max_inputs = 1,
  .params = pool_params,
  .n_params = G_N_ELEMENTS (pool_params),
  .config_size = sizeof (PoolConfig),
  .infer = window_infer,
  .forward = maxpool_forward,
  .backward = maxpool_backward,
  .finalize = maxpool_finalize,
  .flags = ST_KIND_WRITES_ALL,
};

static const StKind avgpool_kind = {
  ST_KIND_HEADER,
  .name = "avgpool",
  .summary = "mean of each window, per channel, padding counted (PyTorch AvgPool2d)",
  .category = ST_CATEGORY_LAYER,
  .min_inputs = 1,
  .max_inputs = 1,
  .params = pool_params,
  .n_params = G_N_ELEMENTS (pool_params),
  .config_size = sizeof (PoolConfig),
  .infer = window_infer,
  .forward = avgpool_forward,
  .backward = avgpool_backward,
  .flags = ST_KIND_WRITES_ALL,
};

static const StKind globalavgpool_kind = {
  ST_KIND_HEADER,
  .name = "globalavgpool",
  .summary = "mean of each channel: NxCxHxW to NxCx1x1 (PyTorch AdaptiveAvgPool2d(1))",
  .category = ST_CATEGORY_LAYER,
  .min_inputs = 1,
  .max_inputs = 1,
  .infer = globalavgpool_infer,
  .forward = globalavgpool_forward,
  .backward = globalavgpool_backward,
  .flags = ST_KIND_WRITES_ALL,
};

ST_PLUGIN_DEFINE (&maxpool_kind, &avgpool_kind, &globalavgpool_kind)

/* ---- Window geometry ------------------------------------------------------ */

typedef struct {
  int k, s, p;                 /* window side, stride, padding */
  int h, w;                    /* input plane */
  int oh, ow;                  /* output plane */
} Window;

static Window
window_of (const StStage *stage)
{
  const PoolConfig *cfg = stage->config;
  StShape in = stage->in_shapes[0];
  return (Window) {
    .k = cfg->size,
    .s = cfg->stride > 0 ? cfg->stride : cfg->size,
    .p = cfg->padding,
    .h = in.h, .w = in.w,
    .oh = stage->out_shape.h, .ow = stage->out_shape.w,
  };
}

static gboolean
window_infer (StStage *stage, GError **error)
{
  const PoolConfig *cfg = stage->config;
  StShape in = stage->in_shapes[0];
  int k = cfg->size, s = cfg->stride > 0 ? cfg->stride : cfg->size, p = cfg->padding;

  /* PyTorch's rule; it also guarantees every window holds a real pixel, so
   * a maxpool never outputs the −∞ of its padding. */
  if (p > k / 2)
    {
      g_set_error (error, ST_ERROR, ST_ERROR_PIPELINE,
                   "key 'padding': at most half the window (size=%d allows %d), found %d",
                   k, k / 2, p);
      return FALSE;
    }
  gint64 ph = (gint64) in.h + 2 * p, pw = (gint64) in.w + 2 * p;
  if (in.h <= 0 || in.w <= 0 || ph < k || pw < k)
    {
      if (p > 0)
        g_set_error (error, ST_ERROR, ST_ERROR_SHAPE,
                     "pool %dx%d with padding %d leaves no output for input %dx%d",
                     k, k, p, in.h, in.w);
      else
        g_set_error (error, ST_ERROR, ST_ERROR_SHAPE,
                     "pool %dx%d leaves no output for input %dx%d", k, k, in.h, in.w);
      return FALSE;
    }
  stage->out_shape = (StShape) {
    in.n, in.c, (int) ((ph - k) / s + 1), (int) ((pw - k) / s + 1)
  };
  stage->floored = (ph - k) % s != 0 || (pw - k) % s != 0;
  stage->macs = (double) st_shape_numel (stage->out_shape) * k * k;
  /* Strips work only when output rows line up with input rows. */
  stage->halo = s == 1 && k == 2 * p + 1 ? p : ST_HALO_WHOLE;
  return TRUE;
}

/* The window of output (oy, ox) clipped to the input: rows [y0, y1), columns [x0, x1). */
static inline void
window_clip (const Window *g, int oy, int ox, int *y0, int *y1, int *x0, int *x1)
{
  int ys = oy * g->s - g->p, xs = ox * g->s - g->p;
  *y0 = MAX (ys, 0);
  *y1 = MIN (ys + g->k, g->h);
  *x0 = MAX (xs, 0);
  *x1 = MIN (xs + g->k, g->w);
}

/* ---- maxpool ---------------------------------------------------------------- */

/* The argmax of every output element (an index into its input plane), kept
 * from forward for backward. */
typedef struct {
  gint32 *argmax;
  gsize n;
} MaxpoolState;

/* out, argmax: [planes, oh, ow]; inp: [planes, h, w]. */
static void
maxpool_forward_planes (float *out, gint32 *argmax, const float *inp, gsize planes,
                        const Window *g)
{
  for (gsize pl = 0; pl < planes; pl++)
    {
      const float *in = inp + pl * (gsize) g->h * g->w;
      float *o = out + pl * (gsize) g->oh * g->ow;
      gint32 *am = argmax + pl * (gsize) g->oh * g->ow;
      for (int oy = 0; oy < g->oh; oy++)
        for (int ox = 0; ox < g->ow; ox++)
          {
            int y0, y1, x0, x1;
            window_clip (g, oy, ox, &y0, &y1, &x0, &x1);
            gint32 best_i = y0 * g->w + x0;
            float best = in[best_i];
            for (int y = y0; y < y1; y++)
              for (int x = x0; x < x1; x++)
                {
                  float v = in[y * g->w + x];
                  if (v > best || (isnan (v) && !isnan (best)))
                    {
                      best = v;
                      best_i = y * g->w + x;
                    }
                }
            o[oy * g->ow + ox] = best;
            am[oy * g->ow + ox] = best_i;
          }
    }
}

/* Stride = size and no padding: every window lies inside the input. */
static inline gboolean
window_tiles (const Window *g)
{
  return g->s == g->k && g->p == 0;
}

/* dinp = dout routed to each window's argmax; dinp: [planes, h, w].  Each
 * plane is cleared here, by the thread that fills it while it is in cache. */
static void
maxpool_backward_planes (float *dinp, const float *dout, const gint32 *argmax,
                         gsize planes, const Window *g)
{
  gsize on = (gsize) g->oh * g->ow;
  for (gsize pl = 0; pl < planes; pl++)
    {
      float *din = dinp + pl * (gsize) g->h * g->w;
      memset (din, 0, sizeof (float) * g->h * g->w);
      for (gsize i = 0; i < on; i++)
        din[argmax[pl * on + i]] += dout[pl * on + i];
    }
}

/* ---- avgpool ---------------------------------------------------------------- */

/* out: [planes, oh, ow]; inp: [planes, h, w]. */
static void
avgpool_forward_planes (float *out, const float *inp, gsize planes, const Window *g)
{
  float scale = 1.0f / ((float) g->k * g->k);
  for (gsize pl = 0; pl < planes; pl++)
    {
      const float *in = inp + pl * (gsize) g->h * g->w;
      float *o = out + pl * (gsize) g->oh * g->ow;
      for (int oy = 0; oy < g->oh; oy++)
        for (int ox = 0; ox < g->ow; ox++)
          {
            int y0, y1, x0, x1;
            window_clip (g, oy, ox, &y0, &y1, &x0, &x1);
            float sum = 0.0f;
            for (int y = y0; y < y1; y++)
              for (int x = x0; x < x1; x++)
                sum += in[y * g->w + x];
            o[oy * g->ow + ox] = sum * scale;
          }
    }
}

/* dinp = dout / K² summed over the windows that hold each pixel; dinp:
 * [planes, h, w], each plane cleared first. */
static void
avgpool_backward_planes (float *dinp, const float *dout, gsize planes, const Window *g)
{
  float scale = 1.0f / ((float) g->k * g->k);
  for (gsize pl = 0; pl < planes; pl++)
    {
      float *din = dinp + pl * (gsize) g->h * g->w;
      const float *d = dout + pl * (gsize) g->oh * g->ow;
      memset (din, 0, sizeof (float) * g->h * g->w);
      for (int oy = 0; oy < g->oh; oy++)
        for (int ox = 0; ox < g->ow; ox++)
          {
            int y0, y1, x0, x1;
            window_clip (g, oy, ox, &y0, &y1, &x0, &x1);
            float share = d[oy * g->ow + ox] * scale;
            for (int y = y0; y < y1; y++)
              for (int x = x0; x < x1; x++)
                din[y * g->w + x] += share;
          }
    }
}

/* ---- Running the window kinds over planes in parallel ------------------- */

typedef enum {
  MAX_FORWARD, MAX_TILED_FORWARD, MAX_BACKWARD, MAX_TILED_BACKWARD, AVG_FORWARD, AVG_BACKWARD
} Op;

typedef struct {
  Op op;
  Window g;
  float *dst;                  /* out or dinp */
  const float *src;            /* inp or dout */
  gint32 *argmax;
  gsize planes, per_item;      /* work items are runs of per_item planes */
} Job;

/* Window elements visited per work item, at least: waking the pool's
 * threads can cost tens of microseconds, more than a small map takes
 * (a 32x26x26 one, batch 1: 6 us). */
#define ITEM_WORK 32768

static void
planes_range (gsize item_begin, gsize item_end, gpointer data)
{
  const Job *j = data;
  gsize in_plane = (gsize) j->g.h * j->g.w, out_plane = (gsize) j->g.oh * j->g.ow;
  gsize begin = item_begin * j->per_item, end = MIN (item_end * j->per_item, j->planes);
  gsize n = end - begin;
  switch (j->op)
    {
    case MAX_FORWARD:
      maxpool_forward_planes (j->dst + begin * out_plane, j->argmax + begin * out_plane,
                       j->src + begin * in_plane, n, &j->g);
      break;
    case MAX_TILED_FORWARD:
      st_maxpool_tiles_forward (j->dst + begin * out_plane, j->argmax + begin * out_plane,
                                out_plane, j->src + begin * in_plane, in_plane, n, j->g.h,
                                j->g.w, j->g.k);
      break;
    case MAX_BACKWARD:
      maxpool_backward_planes (j->dst + begin * in_plane, j->src + begin * out_plane,
                        j->argmax + begin * out_plane, n, &j->g);
      break;
    case MAX_TILED_BACKWARD:
      st_maxpool_tiles_backward (j->dst + begin * in_plane, in_plane, j->src + begin * out_plane,
                                 j->argmax + begin * out_plane, out_plane, n, j->g.h, j->g.w,
                                 j->g.k);
      break;
    case AVG_FORWARD:
      avgpool_forward_planes (j->dst + begin * out_plane, j->src + begin * in_plane, n, &j->g);
      break;
    case AVG_BACKWARD:
      avgpool_backward_planes (j->dst + begin * in_plane, j->src + begin * out_plane, n, &j->g);
      break;
    }
}

static void
run_planes (const StRunContext *ctx, const StStage *stage, Op op, float *dst,
            const float *src, gint32 *argmax)
{
  Job j = { op, window_of (stage), dst, src, argmax, 0, 0 };
  gsize work = (gsize) j.g.oh * j.g.ow * j.g.k * j.g.k;
  j.planes = (gsize) stage->in_shapes[0].n * stage->in_shapes[0].c;
  j.per_item = MAX (ITEM_WORK / MAX (work, 1), 1);
  st_parallel_for (ctx, (j.planes + j.per_item - 1) / j.per_item, planes_range, &j);
}

static gboolean
maxpool_forward (StStage *stage, const StRunContext *ctx,
                 const StTensor *const *inputs, StTensor *output, GError **error)
{
  MaxpoolState *st = stage->priv;
  gsize n = st_tensor_numel (output);
  if (!st)
    stage->priv = st = g_new0 (MaxpoolState, 1);
  if (st->n != n)
    {
      g_free (st->argmax);
      st->argmax = g_new (gint32, n);
      st->n = n;
    }
  Window g = window_of (stage);
  run_planes (ctx, stage, window_tiles (&g) ? MAX_TILED_FORWARD : MAX_FORWARD, output->data,
              inputs[0]->data, st->argmax);
  return TRUE;
}

static gboolean
maxpool_backward (StStage *stage, const StRunContext *ctx,
                  const StTensor *const *inputs, const StTensor *output,
                  const StTensor *grad_output, StTensor *const *grad_inputs,
                  GError **error)
{
  MaxpoolState *st = stage->priv;
  if (!grad_inputs[0])
    return TRUE;
  if (!st || st->n != st_tensor_numel (grad_output))
    {
      g_set_error (error, ST_ERROR, ST_ERROR_FAILED, "backward without a matching forward");
      return FALSE;
    }
  Window g = window_of (stage);
  run_planes (ctx, stage, window_tiles (&g) ? MAX_TILED_BACKWARD : MAX_BACKWARD,
              grad_inputs[0]->data, grad_output->data, st->argmax);
  return TRUE;
}

static void
maxpool_finalize (StStage *stage)
{
  MaxpoolState *st = stage->priv;
  if (!st)
    return;
  g_free (st->argmax);
  g_free (st);
  stage->priv = NULL;
}

static gboolean
avgpool_forward (StStage *stage, const StRunContext *ctx,
                 const StTensor *const *inputs, StTensor *output, GError **error)
{
  run_planes (ctx, stage, AVG_FORWARD, output->data, inputs[0]->data, NULL);
  return TRUE;
}

static gboolean
avgpool_backward (StStage *stage, const StRunContext *ctx,
                  const StTensor *const *inputs, const StTensor *output,
                  const StTensor *grad_output, StTensor *const *grad_inputs,
                  GError **error)
{
  if (grad_inputs[0])
    run_planes (ctx, stage, AVG_BACKWARD, grad_inputs[0]->data, grad_output->data, NULL);
  return TRUE;
}

/* ---- globalavgpool ------------------------------------------------------------ */

static gboolean
globalavgpool_infer (StStage *stage, GError **error)
{
  StShape in = stage->in_shapes[0];
  stage->out_shape = (StShape) { in.n, in.c, 1, 1 };
  stage->macs = (double) st_shape_numel (in);
  stage->halo = ST_HALO_WHOLE;
  return TRUE;
}

/* out: [planes]; inp: [planes, plane].  Summed in double: a plane may be a
 * whole photograph. */
static void
globalavgpool_forward_planes (float *out, const float *inp, gsize planes, gsize plane)
{
  for (gsize pl = 0; pl < planes; pl++)
    {
      const float *in = inp + pl * plane;
      double sum = 0.0;
      for (gsize i = 0; i < plane; i++)
        sum += in[i];
      out[pl] = (float) (sum / (double) plane);
    }
}

/* dinp = dout / plane; dinp: [planes, plane]. */
static void
globalavgpool_backward_planes (float *dinp, const float *dout, gsize planes, gsize plane)
{
  for (gsize pl = 0; pl < planes; pl++)
    {
      float share = (float) (dout[pl] / (double) plane);
      float *din = dinp + pl * plane;
      for (gsize i = 0; i < plane; i++)
        din[i] = share;
    }
}

typedef struct {
  gboolean backward;
  float *dst;
  const float *src;
  gsize plane;
} GlobalJob;

static void
global_range (gsize begin, gsize end, gpointer data)
{
  const GlobalJob *j = data;
  if (j->backward)
    globalavgpool_backward_planes (j->dst + begin * j->plane, j->src + begin, end - begin, j->plane);
  else
    globalavgpool_forward_planes (j->dst + begin, j->src + begin * j->plane, end - begin, j->plane);
}

static gboolean
globalavgpool_forward (StStage *stage, const StRunContext *ctx,
                       const StTensor *const *inputs, StTensor *output, GError **error)
{
  StShape in = inputs[0]->shape;
  GlobalJob j = { FALSE, output->data, inputs[0]->data, (gsize) in.h * in.w };
  st_parallel_for (ctx, (gsize) in.n * in.c, global_range, &j);
  return TRUE;
}

static gboolean
globalavgpool_backward (StStage *stage, const StRunContext *ctx,
                        const StTensor *const *inputs, const StTensor *output,
                        const StTensor *grad_output, StTensor *const *grad_inputs,
                        GError **error)
{
  if (!grad_inputs[0])
    return TRUE;
  StShape in = inputs[0]->shape;
  GlobalJob j = { TRUE, grad_inputs[0]->data, grad_output->data, (gsize) in.h * in.w };
  st_parallel_for (ctx, (gsize) in.n * in.c, global_range, &j);
  return TRUE;
}
