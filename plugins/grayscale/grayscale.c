/* strata — grayscale: RGB to one luma channel.
 *
 * Y = wr·R + wg·G + wb·B on the stored values, with the weights of
 * ITU-R BT.601 (0.299, 0.587, 0.114; the default, what JPEG and most tools
 * use) or BT.709 (0.2126, 0.7152, 0.0722).  Like most image tools it does
 * not linearise sRGB first.  A 1-channel input passes through unchanged. */
#include <strata/strata.h>

#include <stddef.h>
#include <string.h>

/* ---- Metadata ----------------------------------------------------------- */

typedef enum {
  WEIGHTS_BT601,
  WEIGHTS_BT709,
} Weights;

typedef struct {
  int weights;
} GrayscaleConfig;

static const char *const weights_names[] = { "bt601", "bt709", NULL };

static const StParamSpec grayscale_params[] = {
  { .name = "weights", .type = ST_PARAM_ENUM, .default_value = "bt601",
    .choices = weights_names,
    .help = "luma weights: bt601 (0.299 R + 0.587 G + 0.114 B) or bt709 (0.2126, 0.7152, 0.0722)",
    .offset = offsetof (GrayscaleConfig, weights) },
};

ST_DECLARE_FORWARD (grayscale);

static const StKind grayscale_kind = {
  ST_KIND_HEADER,
  .name = "grayscale",
  .summary = "RGB to luma, 0.299 R + 0.587 G + 0.114 B (BT.601) or BT.709; gray passes through",
  .category = ST_CATEGORY_PLUMBING,
  .min_inputs = 1,
  .max_inputs = 1,
  .params = grayscale_params,
  .n_params = G_N_ELEMENTS (grayscale_params),
  .config_size = sizeof (GrayscaleConfig),
  .infer = grayscale_infer,
  .forward = grayscale_forward,
};

ST_PLUGIN_DEFINE (&grayscale_kind)

/* ---- Implementation ------------------------------------------------------- */

static const float luma[][3] = {
  [WEIGHTS_BT601] = { 0.299f, 0.587f, 0.114f },
  [WEIGHTS_BT709] = { 0.2126f, 0.7152f, 0.0722f },
};

static gboolean
grayscale_infer (StStage *stage, GError **error)
{
  StShape in = stage->in_shapes[0];
  if (in.c != 1 && in.c != 3)
    {
      g_set_error (error, ST_ERROR, ST_ERROR_SHAPE,
                   "expected 1 (gray) or 3 (RGB) channels, found %d", in.c);
      return FALSE;
    }
  stage->out_shape = (StShape) { in.n, 1, in.h, in.w };
  stage->halo = 0;
  stage->macs = in.c == 3 ? 3.0 * st_shape_numel (stage->out_shape) : 0.0;
  return TRUE;
}

typedef struct {
  const float *in;
  float *out;
  gsize plane;                 /* h × w */
  gsize chunk;                 /* pixels per work item: one row */
  const float *w;
} Job;

/* Work items are chunks of pixels counted over the whole batch; a range
 * may cross from one image into the next. */
static void
luma_range (gsize begin, gsize end, gpointer data)
{
  const Job *j = data;
  const float wr = j->w[0], wg = j->w[1], wb = j->w[2];
  gsize total = end * j->chunk;
  for (gsize i = begin * j->chunk; i < total;)
    {
      gsize img = i / j->plane, off = i % j->plane;
      gsize stop = MIN (total - i, j->plane - off);
      const float *restrict r = j->in + img * 3 * j->plane + off;
      const float *restrict g = r + j->plane;
      const float *restrict b = g + j->plane;
      float *restrict o = j->out + img * j->plane + off;
      for (gsize x = 0; x < stop; x++)
        o[x] = wr * r[x] + wg * g[x] + wb * b[x];
      i += stop;
    }
}

static gboolean
grayscale_forward (StStage *stage, const StRunContext *ctx,
                   const StTensor *const *inputs, StTensor *output,
                   GError **error)
{
  const GrayscaleConfig *cfg = stage->config;
  const StTensor *in = inputs[0];
  gsize plane = (gsize) in->shape.h * in->shape.w;
  if (in->shape.c == 1)
    {
      memcpy (output->data, in->data, sizeof (float) * plane * in->shape.n);
      return TRUE;
    }
  Job j = { in->data, output->data, plane, (gsize) in->shape.w, luma[cfg->weights] };
  st_parallel_for (ctx, (gsize) in->shape.n * in->shape.h, luma_range, &j);
  return TRUE;
}
