/* strata — randomaffine: a random rotation, scale, shear and translation
 * of each image while training, as torchvision's RandomAffine(degrees,
 * translate, scale, shear).
 *
 * In training each batch item draws, from its own generator
 * (st_rng_item_new), an angle uniform in [-rotate, rotate], a scale
 * uniform in [scale_min, scale_max] (one factor for both axes), shears
 * uniform in [-shear, shear] degrees per axis, and a translation uniform
 * in ±translate times the width and height; the map is composed about
 * the image centre by st_affine_compose() and sampled by st_warp_rows(),
 * as the `affine` stage does.  Otherwise the identity. */
#include <strata/strata.h>
#include <strata/warp.h>

#include <stddef.h>
#include <string.h>

/* ---- Metadata ----------------------------------------------------------- */

enum { BORDER_CONSTANT = ST_BORDER_WRAP + 1 };

typedef struct {
  double rotate;
  StDoubleList scale;
  StDoubleList translate;
  StDoubleList shear;
  int interpolation;
  int border;
  double value;
} RandomAffineConfig;

static const char *const border_names[] = { "zero", "edge", "reflect", "wrap", "constant", NULL };

static const StParamSpec randomaffine_params[] = {
  { .name = "rotate", .type = ST_PARAM_DOUBLE, .default_value = "0",
    .flags = ST_PARAM_HAS_MIN | ST_PARAM_HAS_MAX, .min = 0, .max = 180,
    .help = "largest turn in degrees: the angle is uniform in [-rotate, rotate]",
    .offset = offsetof (RandomAffineConfig, rotate) },
  { .name = "scale", .type = ST_PARAM_DOUBLE_LIST,
    .flags = ST_PARAM_HAS_MIN | ST_PARAM_HAS_MAX, .min = 0.01, .max = 100,
    .help = "min,max: the scale factor is uniform between them (one value: fixed); default 1",
    .offset = offsetof (RandomAffineConfig, scale) },
  { .name = "translate", .type = ST_PARAM_DOUBLE_LIST,
    .flags = ST_PARAM_HAS_MIN | ST_PARAM_HAS_MAX, .min = 0, .max = 1,
    .help = "x,y or one value for both: the shift is uniform in ±x·width and ±y·height; default 0",
    .offset = offsetof (RandomAffineConfig, translate) },
  { .name = "shear", .type = ST_PARAM_DOUBLE_LIST,
    .flags = ST_PARAM_HAS_MIN | ST_PARAM_HAS_MAX, .min = 0, .max = 89,
    .help = "largest shear in degrees, x or x,y: each uniform in [-s, s]; default 0",
    .offset = offsetof (RandomAffineConfig, shear) },
  { .name = "interpolation", .type = ST_PARAM_ENUM, .default_value = "bilinear",
    .choices = ST_INTERPOLATION_CHOICES,
    .help = "nearest, bilinear or bicubic (as affine)",
    .offset = offsetof (RandomAffineConfig, interpolation) },
  { .name = "border", .type = ST_PARAM_ENUM, .default_value = "zero",
    .choices = border_names,
    .help = "what the moved image uncovers: zero, edge (repeat), reflect (mirror, edge not "
            "repeated), wrap (the opposite side) or constant (value)",
    .offset = offsetof (RandomAffineConfig, border) },
  { .name = "value", .type = ST_PARAM_DOUBLE, .default_value = "0",
    .help = "what border=constant reads (images hold 0 to 1)",
    .offset = offsetof (RandomAffineConfig, value) },
};

ST_DECLARE_FORWARD (randomaffine);

static const StKind randomaffine_kind = {
  ST_KIND_HEADER,
  .name = "randomaffine",
  .summary = "augmentation: turns, scales, shears and shifts each image at random in training; "
             "identity otherwise",
  .category = ST_CATEGORY_PLUMBING,
  .min_inputs = 1,
  .max_inputs = 1,
  .params = randomaffine_params,
  .n_params = G_N_ELEMENTS (randomaffine_params),
  .config_size = sizeof (RandomAffineConfig),
  .infer = randomaffine_infer,
  .forward = randomaffine_forward,
  .flags = ST_KIND_RANDOM,
};

ST_PLUGIN_DEFINE (&randomaffine_kind)

/* ---- Implementation ------------------------------------------------------- */

static gboolean
check_count (const StDoubleList *l, const char *key, int most, GError **error)
{
  if (l->n <= most)
    return TRUE;
  g_set_error (error, ST_ERROR, ST_ERROR_PIPELINE, "key '%s': expected at most %d values, found %d",
               key, most, l->n);
  return FALSE;
}

static gboolean
randomaffine_infer (StStage *stage, GError **error)
{
  const RandomAffineConfig *cfg = stage->config;
  if (!check_count (&cfg->scale, "scale", 2, error)
      || !check_count (&cfg->translate, "translate", 2, error)
      || !check_count (&cfg->shear, "shear", 2, error))
    return FALSE;
  if (cfg->scale.n == 2 && cfg->scale.values[0] > cfg->scale.values[1])
    {
      g_set_error (error, ST_ERROR, ST_ERROR_PIPELINE,
                   "key 'scale': expected min,max with min <= max, found %g,%g",
                   cfg->scale.values[0], cfg->scale.values[1]);
      return FALSE;
    }
  stage->out_shape = stage->in_shapes[0];
  /* Outside training, where strips are cut, it is the identity. */
  stage->halo = 0;
  stage->macs = (double) st_shape_numel (stage->out_shape) * 4;
  return TRUE;
}

/* Uniform in [lo, hi]. */
static double
uniform (StRng *rng, double lo, double hi)
{
  return lo + (hi - lo) * st_rng_uniform (rng);
}

/* The warp of one batch item, drawn from its generator. */
static void
draw_warp (const RandomAffineConfig *cfg, StRng *rng, int w, int h, StWarp *warp)
{
  const double *sc = cfg->scale.values, *tr = cfg->translate.values, *sh = cfg->shear.values;
  const double scale = cfg->scale.n ? uniform (rng, sc[0], sc[cfg->scale.n - 1]) : 1;
  const double tx = cfg->translate.n ? tr[0] : 0;
  const double ty = cfg->translate.n ? tr[cfg->translate.n - 1] : 0;
  const double shx = cfg->shear.n ? sh[0] : 0, shy = cfg->shear.n == 2 ? sh[1] : 0;
  /* Every draw is made, zero ranges included, so each item's stream
   * holds the same number of draws whatever the parameters. */
  StAffineParts parts = {
    .cx = (w - 1) / 2.0,
    .cy = (h - 1) / 2.0,
    .rotate = uniform (rng, -cfg->rotate, cfg->rotate),
    .scale_x = scale,
    .scale_y = scale,
    .translate_x = uniform (rng, -tx, tx) * w,
    .translate_y = uniform (rng, -ty, ty) * h,
    .shear_x = uniform (rng, -shx, shx),
    .shear_y = uniform (rng, -shy, shy),
  };
  double m[6];
  st_affine_compose (&parts, m);
  /* The ranges keep the scale at least 0.01 and the shear below 89°, so
   * the map is invertible. */
  if (!st_affine_invert (m, warp->matrix))
    {
      const double identity[6] = { 1, 0, 0, 0, 1, 0 };
      memcpy (warp->matrix, identity, sizeof identity);
    }
  warp->interpolation = (StInterpolation) cfg->interpolation;
  warp->border = cfg->border == BORDER_CONSTANT ? ST_BORDER_ZERO : (StBorder) cfg->border;
  warp->value = cfg->border == BORDER_CONSTANT ? (float) cfg->value : 0.0f;
}

typedef struct {
  const StWarp *warps;         /* per batch item */
  const float *src;
  float *dst;
  StShape s;
} Job;

/* One item is one row of one plane. */
static void
randomaffine_range (gsize begin, gsize end, gpointer data)
{
  const Job *j = data;
  const gsize plane_size = (gsize) j->s.h * j->s.w;
  for (gsize item = begin; item < end; item++)
    {
      gsize plane = item / j->s.h;
      int y = (int) (item % j->s.h);
      st_warp_rows (&j->warps[plane / j->s.c], j->src + plane * plane_size, j->s.w, j->s.h,
                    j->dst + plane * plane_size, j->s.w, j->s.h, y, y + 1);
    }
}

static gboolean
randomaffine_forward (StStage *stage, const StRunContext *ctx,
                      const StTensor *const *inputs, StTensor *output,
                      G_GNUC_UNUSED GError **error)
{
  const RandomAffineConfig *cfg = stage->config;
  StShape s = inputs[0]->shape;
  if (!ctx->training)
    {
      memcpy (output->data, inputs[0]->data, sizeof (float) * st_tensor_numel (output));
      return TRUE;
    }
  g_autofree StWarp *warps = g_new (StWarp, s.n);
  for (int b = 0; b < s.n; b++)
    {
      StRng *rng = st_rng_item_new (ctx, b);
      draw_warp (cfg, rng, s.w, s.h, &warps[b]);
      st_rng_free (rng);
    }
  Job j = { warps, inputs[0]->data, output->data, s };
  st_parallel_for (ctx, (gsize) s.n * s.c * s.h, randomaffine_range, &j);
  return TRUE;
}
