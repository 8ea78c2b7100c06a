/* strata — randomerase: cutout while training, as torchvision's
 * RandomErasing.
 *
 * In training, with probability p, a rectangle of every channel is set to
 * `value`.  Its area is a fraction of the image drawn uniformly from
 * `area`, its aspect (height / width) drawn log-uniformly from `ratio`;
 * its place is uniform among those that fit.  A draw that does not fit is
 * tried again, ten times at most, and after that nothing is erased (as
 * torchvision).  The draws come from the item's own generator
 * (st_rng_item_new).  Otherwise the identity. */
#include <strata/strata.h>

#include <math.h>
#include <stddef.h>
#include <string.h>

/* ---- Metadata ----------------------------------------------------------- */

typedef struct {
  double p;
  StDoubleList area, ratio;
  double value;
} RandomEraseConfig;

static const StParamSpec randomerase_params[] = {
  { .name = "p", .type = ST_PARAM_DOUBLE, .default_value = "0.5",
    .flags = ST_PARAM_HAS_MIN | ST_PARAM_HAS_MAX, .min = 0, .max = 1,
    .help = "probability of erasing a rectangle of an image in training",
    .offset = offsetof (RandomEraseConfig, p) },
  { .name = "area", .type = ST_PARAM_DOUBLE_LIST, .default_value = "0.02,0.33",
    .flags = ST_PARAM_HAS_MIN | ST_PARAM_HAS_MAX | ST_PARAM_MIN_EXCLUSIVE, .min = 0, .max = 1,
    .help = "min,max of the rectangle's area as a fraction of the image's",
    .offset = offsetof (RandomEraseConfig, area) },
  { .name = "ratio", .type = ST_PARAM_DOUBLE_LIST, .default_value = "0.3,3.3",
    .flags = ST_PARAM_HAS_MIN | ST_PARAM_MIN_EXCLUSIVE, .min = 0,
    .help = "min,max of the rectangle's height / width (drawn log-uniformly)",
    .offset = offsetof (RandomEraseConfig, ratio) },
  { .name = "value", .type = ST_PARAM_DOUBLE, .default_value = "0",
    .help = "what the rectangle is filled with (images hold 0 to 1)",
    .offset = offsetof (RandomEraseConfig, value) },
};

ST_DECLARE_FORWARD (randomerase);

static const StKind randomerase_kind = {
  ST_KIND_HEADER,
  .name = "randomerase",
  .summary = "augmentation: fills a random rectangle with a value (cutout) in training; "
             "identity otherwise",
  .category = ST_CATEGORY_PLUMBING,
  .min_inputs = 1,
  .max_inputs = 1,
  .params = randomerase_params,
  .n_params = G_N_ELEMENTS (randomerase_params),
  .config_size = sizeof (RandomEraseConfig),
  .infer = randomerase_infer,
  .forward = randomerase_forward,
  .flags = ST_KIND_RANDOM,
};

ST_PLUGIN_DEFINE (&randomerase_kind)

/* ---- Implementation ------------------------------------------------------- */

static gboolean
check_range (const StDoubleList *list, const char *key, GError **error)
{
  if (list->n != 2 || list->values[0] > list->values[1])
    {
      g_set_error (error, ST_ERROR, ST_ERROR_PIPELINE,
                   "key '%s': expected min,max with min <= max, found %d value%s%s", key,
                   list->n, list->n == 1 ? "" : "s",
                   list->n == 2 ? " with min > max" : "");
      return FALSE;
    }
  return TRUE;
}

static gboolean
randomerase_infer (StStage *stage, GError **error)
{
  const RandomEraseConfig *cfg = stage->config;
  if (!check_range (&cfg->area, "area", error) || !check_range (&cfg->ratio, "ratio", error))
    return FALSE;
  stage->out_shape = stage->in_shapes[0];
  stage->halo = 0;             /* the identity outside training */
  stage->macs = 0;
  return TRUE;
}

typedef struct {
  int top, left, height, width;  /* height 0: nothing erased */
} Box;

/* torchvision's RandomErasing.get_params, from the item's generator. */
static Box
draw_box (const RandomEraseConfig *cfg, StRng *rng, int h, int w)
{
  Box box = { 0 };
  if (st_rng_uniform (rng) >= cfg->p)
    return box;
  double log_lo = log (cfg->ratio.values[0]), log_hi = log (cfg->ratio.values[1]);
  for (int attempt = 0; attempt < 10; attempt++)
    {
      double area = (double) h * w
                    * (cfg->area.values[0]
                       + st_rng_uniform (rng) * (cfg->area.values[1] - cfg->area.values[0]));
      double aspect = exp (log_lo + st_rng_uniform (rng) * (log_hi - log_lo));
      double eh = round (sqrt (area * aspect)), ew = round (sqrt (area / aspect));
      if (!(eh < h && ew < w))
        continue;
      box.height = (int) eh;
      box.width = (int) ew;
      box.top = (int) (st_rng_next (rng) % (guint64) (h - box.height + 1));
      box.left = (int) (st_rng_next (rng) % (guint64) (w - box.width + 1));
      return box;
    }
  return box;
}

typedef struct {
  const float *src;
  float *dst;
  int c, h, w;
  float value;
  const Box *boxes;            /* per batch item */
} Job;

/* One item is one plane. */
static void
randomerase_range (gsize begin, gsize end, gpointer data)
{
  const Job *j = data;
  gsize per = (gsize) j->h * j->w;
  for (gsize plane = begin; plane < end; plane++)
    {
      const Box *box = &j->boxes[plane / j->c];
      float *out = j->dst + plane * per;
      memcpy (out, j->src + plane * per, per * sizeof (float));
      for (int y = box->top; y < box->top + box->height; y++)
        for (int x = box->left; x < box->left + box->width; x++)
          out[(gsize) y * j->w + x] = j->value;
    }
}

static gboolean
randomerase_forward (StStage *stage, const StRunContext *ctx,
                     const StTensor *const *inputs, StTensor *output,
                     G_GNUC_UNUSED GError **error)
{
  const RandomEraseConfig *cfg = stage->config;
  StShape s = inputs[0]->shape;
  if (!ctx->training)
    {
      memcpy (output->data, inputs[0]->data, st_tensor_numel (output) * sizeof (float));
      return TRUE;
    }
  g_autofree Box *boxes = g_new0 (Box, s.n);
  for (int b = 0; b < s.n; b++)
    {
      StRng *rng = st_rng_item_new (ctx, b);
      boxes[b] = draw_box (cfg, rng, s.h, s.w);
      st_rng_free (rng);
    }
  Job j = { inputs[0]->data, output->data, s.c, s.h, s.w, (float) cfg->value, boxes };
  st_parallel_for (ctx, (gsize) s.n * s.c, randomerase_range, &j);
  return TRUE;
}
