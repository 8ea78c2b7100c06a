/* threshold — an example strata plugin built outside the strata tree.
 *
 * Every value becomes 0 below level and 1 above it: a hard step, or, with
 * soft > 0, a sigmoid ramp that rises from 0.02 to 0.98 over an input
 * interval of width soft centred on level (anti-aliased edges).  It works
 * on every channel; put `grayscale` before it for a black-and-white image.
 *
 * Build: cc -shared -fPIC $(pkg-config --cflags --libs strata) threshold.c -o threshold.so
 * Run:   strata run 'grayscale ! threshold level=0.4' photo.png -o bw.png --plugin-dir . */
#include <strata/strata.h>

#include <math.h>
#include <stddef.h>

/* ---- Metadata -------------------------------------------------------------
 * Everything strata needs to list, document and validate the stage, as
 * static data: `strata plugins threshold` prints it without running any of
 * the code below. */

/* Where the core writes the validated parameters (stage->config). */
typedef struct {
  double level;
  double soft;
} ThresholdConfig;

static const StParamSpec threshold_params[] = {
  { .name = "level", .type = ST_PARAM_DOUBLE, .default_value = "0.5",
    .flags = ST_PARAM_HAS_MIN | ST_PARAM_HAS_MAX, .min = 0, .max = 1,
    .help = "values below it become 0, values above it 1",
    .offset = offsetof (ThresholdConfig, level) },
  { .name = "soft", .type = ST_PARAM_DOUBLE, .default_value = "0",
    .flags = ST_PARAM_HAS_MIN, .min = 0,
    .help = "0: a hard step; > 0: a smooth ramp of this width around level",
    .offset = offsetof (ThresholdConfig, soft) },
};

static gboolean threshold_infer (StStage *stage, GError **error);
static gboolean threshold_forward (StStage *stage, const StRunContext *ctx,
                                   const StTensor *const *inputs, StTensor *output,
                                   GError **error);

static const StKind threshold_kind = {
  ST_KIND_HEADER,
  .name = "threshold",
  .summary = "0 below level, 1 above: a hard step or a smooth ramp of width soft",
  .category = ST_CATEGORY_FILTER,
  .rank = 0,
  .min_inputs = 1,
  .max_inputs = 1,
  .params = threshold_params,
  .n_params = G_N_ELEMENTS (threshold_params),
  .config_size = sizeof (ThresholdConfig),
  .infer = threshold_infer,
  .forward = threshold_forward,
  /* No backward: inference only, like the classic filters. */
};

ST_PLUGIN_DEFINE (&threshold_kind)

/* ---- Implementation ------------------------------------------------------- */

static gboolean
threshold_infer (StStage *stage, G_GNUC_UNUSED GError **error)
{
  /* Any shape goes through unchanged; each output value needs only the
   * input value under it (halo 0), so large images can run in strips. */
  stage->out_shape = stage->in_shapes[0];
  stage->halo = 0;
  stage->macs = (double) st_shape_numel (stage->out_shape);
  return TRUE;
}

/* Values per work item: large enough that scheduling costs nothing. */
#define CHUNK 16384

typedef struct {
  const float *x;
  float *y;
  gsize numel;
  float level;
  float gain;                  /* 8 / soft, or 0 for the hard step */
} Job;

/* Runs on the core's threads: reads only the job, writes only its range. */
static void
threshold_range (gsize begin, gsize end, gpointer data)
{
  const Job *j = data;
  gsize lo = begin * CHUNK, hi = MIN (end * CHUNK, j->numel);
  if (j->gain == 0.0f)
    for (gsize i = lo; i < hi; i++)
      j->y[i] = j->x[i] >= j->level ? 1.0f : 0.0f;
  else
    /* sigmoid(±4) = 0.018 / 0.982 at level ± soft/2. */
    for (gsize i = lo; i < hi; i++)
      j->y[i] = 1.0f / (1.0f + expf (-j->gain * (j->x[i] - j->level)));
}

static gboolean
threshold_forward (StStage *stage, const StRunContext *ctx,
                   const StTensor *const *inputs, StTensor *output,
                   G_GNUC_UNUSED GError **error)
{
  const ThresholdConfig *cfg = stage->config;
  Job j = {
    .x = inputs[0]->data,
    .y = output->data,
    .numel = st_tensor_numel (output),
    .level = (float) cfg->level,
    /* A ramp narrower than a 16-bit step is a step, and 8 / soft stays
     * finite (an infinite gain would make 0 · inf = NaN at level). */
    .gain = cfg->soft > 1e-6 ? (float) (8.0 / cfg->soft) : 0.0f,
  };
  st_parallel_for (ctx, (j.numel + CHUNK - 1) / CHUNK, threshold_range, &j);
  return TRUE;
}
