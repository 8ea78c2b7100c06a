/* strata — randomflip: mirror each image at random while training, as
 * torchvision's RandomHorizontalFlip and RandomVerticalFlip.
 *
 * In training, each batch item is mirrored left to right (and/or top to
 * bottom) with probability p, drawn from the item's own generator
 * (st_rng_item_new), so a seed gives the same flips whatever the batch or
 * thread count.  Otherwise the identity. */
#include <strata/strata.h>

#include <stddef.h>
#include <string.h>

/* ---- Metadata ----------------------------------------------------------- */

enum { FLIP_HORIZONTAL, FLIP_VERTICAL, FLIP_BOTH };

typedef struct {
  double p;
  int direction;
} RandomFlipConfig;

static const char *const direction_names[] = { "horizontal", "vertical", "both", NULL };

static const StParamSpec randomflip_params[] = {
  { .name = "p", .type = ST_PARAM_DOUBLE, .default_value = "0.5",
    .flags = ST_PARAM_HAS_MIN | ST_PARAM_HAS_MAX, .min = 0, .max = 1,
    .help = "probability of mirroring an image in training (for both: each axis on its own)",
    .offset = offsetof (RandomFlipConfig, p) },
  { .name = "direction", .type = ST_PARAM_ENUM, .default_value = "horizontal",
    .choices = direction_names,
    .help = "horizontal (left to right), vertical (top to bottom) or both",
    .offset = offsetof (RandomFlipConfig, direction) },
};

ST_DECLARE_FORWARD (randomflip);

static const StKind randomflip_kind = {
  ST_KIND_HEADER,
  .name = "randomflip",
  .summary = "augmentation: mirrors each image with probability p in training; identity otherwise",
  .category = ST_CATEGORY_PLUMBING,
  .min_inputs = 1,
  .max_inputs = 1,
  .params = randomflip_params,
  .n_params = G_N_ELEMENTS (randomflip_params),
  .config_size = sizeof (RandomFlipConfig),
  .infer = randomflip_infer,
  .forward = randomflip_forward,
  .flags = ST_KIND_RANDOM,
};

ST_PLUGIN_DEFINE (&randomflip_kind)

/* ---- Implementation ------------------------------------------------------- */

static gboolean
randomflip_infer (StStage *stage, G_GNUC_UNUSED GError **error)
{
  stage->out_shape = stage->in_shapes[0];
  /* Outside training, where strips are cut, it is the identity. */
  stage->halo = 0;
  stage->macs = 0;
  return TRUE;
}

typedef struct {
  const float *src;
  float *dst;
  int c, h, w;
  const guint8 *mirror_x, *mirror_y;  /* per batch item */
} Job;

/* One item is one plane. */
static void
randomflip_range (gsize begin, gsize end, gpointer data)
{
  const Job *j = data;
  for (gsize plane = begin; plane < end; plane++)
    {
      gsize b = plane / j->c;
      const float *in = j->src + plane * j->h * j->w;
      float *out = j->dst + plane * j->h * j->w;
      for (int y = 0; y < j->h; y++)
        {
          const float *restrict row = in + (gsize) (j->mirror_y[b] ? j->h - 1 - y : y) * j->w;
          float *restrict o = out + (gsize) y * j->w;
          if (j->mirror_x[b])
            for (int x = 0; x < j->w; x++)
              o[x] = row[j->w - 1 - x];
          else
            memcpy (o, row, j->w * sizeof (float));
        }
    }
}

static gboolean
randomflip_forward (StStage *stage, const StRunContext *ctx,
                    const StTensor *const *inputs, StTensor *output,
                    G_GNUC_UNUSED GError **error)
{
  const RandomFlipConfig *cfg = stage->config;
  StShape s = inputs[0]->shape;
  if (!ctx->training)
    {
      memcpy (output->data, inputs[0]->data, st_tensor_numel (output) * sizeof (float));
      return TRUE;
    }
  g_autofree guint8 *mirror_x = g_new0 (guint8, s.n);
  g_autofree guint8 *mirror_y = g_new0 (guint8, s.n);
  for (int b = 0; b < s.n; b++)
    {
      StRng *rng = st_rng_item_new (ctx, b);
      if (cfg->direction != FLIP_VERTICAL)
        mirror_x[b] = st_rng_uniform (rng) < cfg->p;
      if (cfg->direction != FLIP_HORIZONTAL)
        mirror_y[b] = st_rng_uniform (rng) < cfg->p;
      st_rng_free (rng);
    }
  Job j = { inputs[0]->data, output->data, s.c, s.h, s.w, mirror_x, mirror_y };
  st_parallel_for (ctx, (gsize) s.n * s.c, randomflip_range, &j);
  return TRUE;
}
