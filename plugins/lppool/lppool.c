/* strata — lppool: the L_p norm of each window, as PyTorch's LPPool2d.
 *
 *     out(y, x) = (Σ_{m,n} |in(y·S + m, x·S + n)|^p)^(1/p),  0 ≤ m, n < K
 *
 * with output size floor((H − K) / S) + 1 and no padding, as LPPool2d.
 * p = 2 is L2-norm pooling; p = 1 sums absolute values; a large p tends to
 * max pooling of |x|.  PyTorch raises x to p without the absolute value,
 * which agrees for even p and for non-negative inputs (images) and is NaN
 * otherwise; the norm here is defined for every input.
 *
 * Backward: ∂out/∂in_i = sign(in_i) · (|in_i| / out)^(p−1); a window
 * whose norm is 0 passes no gradient (its subgradient 0). */
#include <strata/strata.h>

#include <math.h>
#include <stddef.h>

/* ---- Metadata ----------------------------------------------------------- */

typedef struct {
  double p;
  int size;
  int stride;
} LpPoolConfig;

static const StParamSpec lppool_params[] = {
  { .name = "p", .type = ST_PARAM_DOUBLE, .default_value = "2",
    .flags = ST_PARAM_HAS_MIN | ST_PARAM_HAS_MAX, .min = 1, .max = 64,
    .help = "the norm's power: 2 is L2-norm pooling, 1 the sum of absolute values",
    .offset = offsetof (LpPoolConfig, p) },
  { .name = "size", .type = ST_PARAM_INT, .default_value = "2",
    .flags = ST_PARAM_HAS_MIN | ST_PARAM_HAS_MAX, .min = 1, .max = 4096,
    .help = "side of the square window",
    .offset = offsetof (LpPoolConfig, size) },
  { .name = "stride", .type = ST_PARAM_INT, .default_value = "0",
    .flags = ST_PARAM_HAS_MIN | ST_PARAM_HAS_MAX, .min = 0, .max = 4096,
    .help = "step between windows; 0 means the window size",
    .offset = offsetof (LpPoolConfig, stride) },
};

ST_DECLARE_FORWARD (lppool);
ST_DECLARE_BACKWARD (lppool);

static const StKind lppool_kind = {
  ST_KIND_HEADER,
  .name = "lppool",
  .summary = "L_p norm of each window (p=2: L2-norm pooling), as PyTorch's LPPool2d",
  .category = ST_CATEGORY_LAYER,
  .min_inputs = 1,
  .max_inputs = 1,
  .params = lppool_params,
  .n_params = G_N_ELEMENTS (lppool_params),
  .config_size = sizeof (LpPoolConfig),
  .infer = lppool_infer,
  .forward = lppool_forward,
  .backward = lppool_backward,
};

ST_PLUGIN_DEFINE (&lppool_kind)

/* ---- Implementation ------------------------------------------------------- */

static int
lppool_stride (const LpPoolConfig *cfg)
{
  return cfg->stride > 0 ? cfg->stride : cfg->size;
}

static gboolean
lppool_infer (StStage *stage, GError **error)
{
  const LpPoolConfig *cfg = stage->config;
  StShape in = stage->in_shapes[0];
  int s = lppool_stride (cfg);
  if (cfg->size > in.h || cfg->size > in.w)
    {
      g_set_error (error, ST_ERROR, ST_ERROR_SHAPE,
                   "a %dx%d window does not fit in the %dx%d input (width x height)",
                   cfg->size, cfg->size, in.w, in.h);
      return FALSE;
    }
  int oh = (in.h - cfg->size) / s + 1, ow = (in.w - cfg->size) / s + 1;
  stage->out_shape = (StShape) { in.n, in.c, oh, ow };
  stage->floored = (in.h - cfg->size) % s != 0 || (in.w - cfg->size) % s != 0;
  stage->halo = ST_HALO_WHOLE;
  stage->macs = (double) st_shape_numel (stage->out_shape) * cfg->size * cfg->size;
  return TRUE;
}

typedef struct {
  const float *in;
  const float *out;            /* backward: the forward's output */
  const float *grad;           /* backward: the output's gradient */
  float *dst;                  /* forward: output; backward: the input's gradient */
  int h, w, oh, ow, k, s;
  double p;
} Job;

/* One item is one plane: windows may overlap (stride < size), so backward
 * adds into shared input pixels. */
static void
lppool_range (gsize begin, gsize end, gpointer data)
{
  const Job *j = data;
  for (gsize plane = begin; plane < end; plane++)
    {
      const float *in = j->in + plane * j->h * j->w;
      for (int y = 0; y < j->oh; y++)
        for (int x = 0; x < j->ow; x++)
          {
            gsize o = (plane * j->oh + y) * j->ow + x;
            if (!j->grad)
              {
                /* Scaled by the largest |value|, so that a large p on
                 * small or large values neither underflows nor overflows. */
                double top = 0, sum = 0;
                for (int m = 0; m < j->k; m++)
                  for (int n = 0; n < j->k; n++)
                    top = MAX (top, fabs (in[(gsize) (y * j->s + m) * j->w + x * j->s + n]));
                if (top == 0.0)
                  continue;
                for (int m = 0; m < j->k; m++)
                  for (int n = 0; n < j->k; n++)
                    sum += pow (fabs (in[(gsize) (y * j->s + m) * j->w + x * j->s + n]) / top, j->p);
                j->dst[o] = (float) (top * pow (sum, 1.0 / j->p));
                continue;
              }
            double norm = j->out[o];
            if (norm == 0.0)
              continue;
            /* (|v| / norm)^(p−1) rather than |v|^(p−1) / norm^(p−1): the
             * ratio is at most 1, so a large p neither overflows nor
             * underflows to 0/0. */
            double g = j->grad[o];
            float *din = j->dst + plane * j->h * j->w;
            for (int m = 0; m < j->k; m++)
              for (int n = 0; n < j->k; n++)
                {
                  gsize i = (gsize) (y * j->s + m) * j->w + x * j->s + n;
                  double v = in[i];
                  din[i] += (float) (g * (v < 0 ? -1.0 : 1.0) * pow (fabs (v) / norm, j->p - 1.0));
                }
          }
    }
}

static void
lppool_run (const StStage *stage, const StRunContext *ctx, const StTensor *in,
            const StTensor *out, const StTensor *grad, float *dst)
{
  const LpPoolConfig *cfg = stage->config;
  Job j = { in->data, out ? out->data : NULL, grad ? grad->data : NULL, dst,
            in->shape.h, in->shape.w, stage->out_shape.h, stage->out_shape.w,
            cfg->size, lppool_stride (cfg), cfg->p };
  st_parallel_for (ctx, (gsize) in->shape.n * in->shape.c, lppool_range, &j);
}

static gboolean
lppool_forward (StStage *stage, const StRunContext *ctx,
                const StTensor *const *inputs, StTensor *output, G_GNUC_UNUSED GError **error)
{
  lppool_run (stage, ctx, inputs[0], NULL, NULL, output->data);
  return TRUE;
}

static gboolean
lppool_backward (StStage *stage, const StRunContext *ctx,
                 const StTensor *const *inputs, const StTensor *output,
                 const StTensor *grad_output, StTensor *const *grad_inputs,
                 G_GNUC_UNUSED GError **error)
{
  if (grad_inputs[0])
    lppool_run (stage, ctx, inputs[0], output, grad_output, grad_inputs[0]->data);
  return TRUE;
}
