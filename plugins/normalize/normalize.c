/* strata — normalize: y = (x − mean_c) / std_c per channel, as
 * torchvision's transforms.Normalize (subtract, then divide, in float).
 *
 * mean and std each hold one value per channel, or a single value for all
 * channels.  The backward (dx = dy / std_c) costs nothing, so the stage can
 * sit inside a trainable network as well as in front of one. */
#include <strata/strata.h>

#include <stddef.h>

/* ---- Metadata ----------------------------------------------------------- */

typedef struct {
  StDoubleList mean;
  StDoubleList std;
} NormalizeConfig;

static const StParamSpec normalize_params[] = {
  { .name = "mean", .type = ST_PARAM_DOUBLE_LIST, .flags = ST_PARAM_REQUIRED,
    .help = "subtracted: one value per channel (e.g. 0.485,0.456,0.406) or one for all",
    .offset = offsetof (NormalizeConfig, mean) },
  { .name = "std", .type = ST_PARAM_DOUBLE_LIST, .flags = ST_PARAM_REQUIRED,
    .help = "divided by, each > 0: one value per channel (e.g. 0.229,0.224,0.225) or one for all",
    .offset = offsetof (NormalizeConfig, std) },
};

ST_DECLARE_FORWARD (normalize);
ST_DECLARE_BACKWARD (normalize);

static const StKind normalize_kind = {
  ST_KIND_HEADER,
  .name = "normalize",
  .summary = "(x - mean) / std per channel, as torchvision's Normalize",
  .category = ST_CATEGORY_PLUMBING,
  .min_inputs = 1,
  .max_inputs = 1,
  .params = normalize_params,
  .n_params = G_N_ELEMENTS (normalize_params),
  .config_size = sizeof (NormalizeConfig),
  .infer = normalize_infer,
  .forward = normalize_forward,
  .backward = normalize_backward,
};

ST_PLUGIN_DEFINE (&normalize_kind)

/* ---- Implementation ------------------------------------------------------- */

static gboolean
check_count (const char *key, const StDoubleList *list, int channels, GError **error)
{
  if (list->n == 1 || list->n == channels)
    return TRUE;
  if (channels == 1)
    g_set_error (error, ST_ERROR, ST_ERROR_SHAPE,
                 "key '%s': expected 1 value (the input has 1 channel), found %d",
                 key, list->n);
  else
    g_set_error (error, ST_ERROR, ST_ERROR_SHAPE,
                 "key '%s': expected 1 value or %d (one per channel of the input), found %d",
                 key, channels, list->n);
  return FALSE;
}

static gboolean
normalize_infer (StStage *stage, GError **error)
{
  const NormalizeConfig *cfg = stage->config;
  StShape in = stage->in_shapes[0];
  if (!check_count ("mean", &cfg->mean, in.c, error)
      || !check_count ("std", &cfg->std, in.c, error))
    return FALSE;
  for (int i = 0; i < cfg->std.n; i++)
    if (!(cfg->std.values[i] > 0.0))
      {
        g_set_error (error, ST_ERROR, ST_ERROR_PIPELINE,
                     "key 'std': expected values > 0, found %g (value %d of %d)",
                     cfg->std.values[i], i + 1, cfg->std.n);
        return FALSE;
      }
  stage->out_shape = in;
  stage->halo = 0;
  stage->macs = (double) st_shape_numel (in);
  return TRUE;
}

typedef struct {
  const NormalizeConfig *cfg;
  const float *src;            /* x, or dy */
  float *dst;                  /* y, or dx */
  int c, h, w;
  gboolean backward;
} Job;

static inline float
value_for (const StDoubleList *list, int c)
{
  return (float) list->values[list->n == 1 ? 0 : c];
}

/* One work item is one row of one channel of one image. */
static void
normalize_range (gsize begin, gsize end, gpointer data)
{
  const Job *j = data;
  for (gsize row = begin; row < end; row++)
    {
      int c = (int) ((row / j->h) % j->c);
      const float m = value_for (&j->cfg->mean, c), s = value_for (&j->cfg->std, c);
      const float *restrict x = j->src + row * j->w;
      float *restrict y = j->dst + row * j->w;
      if (j->backward)
        for (int i = 0; i < j->w; i++)
          y[i] = x[i] / s;
      else
        for (int i = 0; i < j->w; i++)
          y[i] = (x[i] - m) / s;
    }
}

static gboolean
normalize_forward (StStage *stage, const StRunContext *ctx,
                   const StTensor *const *inputs, StTensor *output, GError **error)
{
  StShape s = inputs[0]->shape;
  Job j = { stage->config, inputs[0]->data, output->data, s.c, s.h, s.w, FALSE };
  st_parallel_for (ctx, (gsize) s.n * s.c * s.h, normalize_range, &j);
  return TRUE;
}

static gboolean
normalize_backward (StStage *stage, const StRunContext *ctx,
                    const StTensor *const *inputs, const StTensor *output,
                    const StTensor *grad_output, StTensor *const *grad_inputs,
                    GError **error)
{
  if (!grad_inputs[0])
    return TRUE;
  StShape s = grad_output->shape;
  Job j = { stage->config, grad_output->data, grad_inputs[0]->data, s.c, s.h, s.w, TRUE };
  st_parallel_for (ctx, (gsize) s.n * s.c * s.h, normalize_range, &j);
  return TRUE;
}
