/* strata — jitter: random brightness and contrast while training, as
 * torchvision's ColorJitter(brightness, contrast) in a fixed order.
 *
 * In training each image's brightness factor is drawn uniformly from
 * [max(0, 1 − brightness), 1 + brightness] and its contrast factor from
 * [max(0, 1 − contrast), 1 + contrast], from the item's own generator
 * (st_rng_item_new).  Brightness scales every value; contrast then moves
 * every value away from (or towards) the image's mean gray (0.299 R +
 * 0.587 G + 0.114 B for three channels, the mean of all channels
 * otherwise); each step clamps to [0, 1].  Otherwise the identity. */
#include <strata/strata.h>

#include <stddef.h>
#include <string.h>

/* ---- Metadata ----------------------------------------------------------- */

typedef struct {
  double brightness, contrast;
} JitterConfig;

static const StParamSpec jitter_params[] = {
  { .name = "brightness", .type = ST_PARAM_DOUBLE, .default_value = "0.2",
    .flags = ST_PARAM_HAS_MIN, .min = 0,
    .help = "values are scaled by a factor drawn from [max(0, 1 - brightness), 1 + brightness]",
    .offset = offsetof (JitterConfig, brightness) },
  { .name = "contrast", .type = ST_PARAM_DOUBLE, .default_value = "0.2",
    .flags = ST_PARAM_HAS_MIN, .min = 0,
    .help = "distances from the mean gray are scaled by a factor drawn from "
            "[max(0, 1 - contrast), 1 + contrast]",
    .offset = offsetof (JitterConfig, contrast) },
};

ST_DECLARE_FORWARD (jitter);

static const StKind jitter_kind = {
  ST_KIND_HEADER,
  .name = "jitter",
  .summary = "augmentation: random brightness and contrast in training; identity otherwise",
  .category = ST_CATEGORY_PLUMBING,
  .min_inputs = 1,
  .max_inputs = 1,
  .params = jitter_params,
  .n_params = G_N_ELEMENTS (jitter_params),
  .config_size = sizeof (JitterConfig),
  .infer = jitter_infer,
  .forward = jitter_forward,
  .flags = ST_KIND_RANDOM,
};

ST_PLUGIN_DEFINE (&jitter_kind)

/* ---- Implementation ------------------------------------------------------- */

static gboolean
jitter_infer (StStage *stage, G_GNUC_UNUSED GError **error)
{
  stage->out_shape = stage->in_shapes[0];
  /* The identity outside training, where strips are cut. */
  stage->halo = 0;
  stage->macs = 2.0 * st_shape_numel (stage->out_shape);
  return TRUE;
}

typedef struct {
  const float *src;
  float *dst;
  int c;
  gsize plane;                 /* h * w */
  const float *brightness, *contrast;  /* per batch item */
} Job;

static inline float
clamp01 (float v)
{
  return v < 0.0f ? 0.0f : v > 1.0f ? 1.0f : v;
}

/* One item is one image: contrast needs its mean. */
static void
jitter_range (gsize begin, gsize end, gpointer data)
{
  const Job *j = data;
  static const double luma[3] = { 0.299, 0.587, 0.114 };
  for (gsize b = begin; b < end; b++)
    {
      gsize per = j->plane * j->c;
      const float *in = j->src + b * per;
      float *out = j->dst + b * per;
      for (gsize i = 0; i < per; i++)
        out[i] = clamp01 (in[i] * j->brightness[b]);
      /* A factor of 1 leaves the values exactly as they are, which
       * rounding through the mean would not. */
      if (j->contrast[b] == 1.0f)
        continue;
      double sum = 0;
      for (int ch = 0; ch < j->c; ch++)
        {
          double weight = j->c == 3 ? luma[ch] : 1.0 / j->c;
          double plane_sum = 0;
          for (gsize i = 0; i < j->plane; i++)
            plane_sum += out[ch * j->plane + i];
          sum += weight * plane_sum;
        }
      float mean = (float) (sum / j->plane), f = j->contrast[b];
      for (gsize i = 0; i < per; i++)
        out[i] = clamp01 ((out[i] - mean) * f + mean);
    }
}

/* A factor in [max(0, 1 − spread), 1 + spread]. */
static float
draw_factor (StRng *rng, double spread)
{
  double lo = MAX (0.0, 1.0 - spread), hi = 1.0 + spread;
  return (float) (lo + st_rng_uniform (rng) * (hi - lo));
}

static gboolean
jitter_forward (StStage *stage, const StRunContext *ctx,
                const StTensor *const *inputs, StTensor *output,
                G_GNUC_UNUSED GError **error)
{
  const JitterConfig *cfg = stage->config;
  StShape s = inputs[0]->shape;
  if (!ctx->training)
    {
      memcpy (output->data, inputs[0]->data, st_tensor_numel (output) * sizeof (float));
      return TRUE;
    }
  g_autofree float *brightness = g_new (float, s.n);
  g_autofree float *contrast = g_new (float, s.n);
  for (int b = 0; b < s.n; b++)
    {
      StRng *rng = st_rng_item_new (ctx, b);
      brightness[b] = draw_factor (rng, cfg->brightness);
      contrast[b] = draw_factor (rng, cfg->contrast);
      st_rng_free (rng);
    }
  Job j = { inputs[0]->data, output->data, s.c, (gsize) s.h * s.w, brightness, contrast };
  st_parallel_for (ctx, s.n, jitter_range, &j);
  return TRUE;
}
