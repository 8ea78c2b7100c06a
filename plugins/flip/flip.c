/* strata — flip: mirror every channel left–right, top–bottom, or both.
 *
 * horizontal: out(y, x) = in(y, W − 1 − x)   (numpy fliplr, PIL FLIP_LEFT_RIGHT)
 * vertical:   out(y, x) = in(H − 1 − y, x)   (numpy flipud, PIL FLIP_TOP_BOTTOM)
 * both:       the two together, which is a 180° rotation.
 *
 * A pure permutation of pixels: the backward applies the same flip to the
 * gradient. */
#include <strata/strata.h>

#include <stddef.h>
#include <string.h>

/* ---- Metadata ----------------------------------------------------------- */

typedef enum {
  DIRECTION_HORIZONTAL,
  DIRECTION_VERTICAL,
  DIRECTION_BOTH,
} Direction;

typedef struct {
  int direction;
} FlipConfig;

static const char *const direction_names[] = { "horizontal", "vertical", "both", NULL };

static const StParamSpec flip_params[] = {
  { .name = "direction", .type = ST_PARAM_ENUM, .default_value = "horizontal",
    .choices = direction_names,
    .help = "horizontal (mirror left-right), vertical (upside down) or both (a 180 degree turn)",
    .offset = offsetof (FlipConfig, direction) },
};

ST_DECLARE_FORWARD (flip);
ST_DECLARE_BACKWARD (flip);

static const StKind flip_kind = {
  ST_KIND_HEADER,
  .name = "flip",
  .summary = "mirror every channel: horizontal (left-right), vertical (top-bottom) or both",
  .category = ST_CATEGORY_PLUMBING,
  .min_inputs = 1,
  .max_inputs = 1,
  .params = flip_params,
  .n_params = G_N_ELEMENTS (flip_params),
  .config_size = sizeof (FlipConfig),
  .infer = flip_infer,
  .forward = flip_forward,
  .backward = flip_backward,
};

ST_PLUGIN_DEFINE (&flip_kind)

/* ---- Implementation ------------------------------------------------------- */

static gboolean
flip_infer (StStage *stage, G_GNUC_UNUSED GError **error)
{
  const FlipConfig *cfg = stage->config;
  stage->out_shape = stage->in_shapes[0];
  /* A left-right mirror keeps every row where it is, so a strip of rows is
   * flipped on its own; turning upside down moves rows across the image. */
  stage->halo = cfg->direction == DIRECTION_HORIZONTAL ? 0 : ST_HALO_WHOLE;
  stage->macs = 0;
  return TRUE;
}

typedef struct {
  const float *src;
  float *dst;
  int h, w;
  gboolean mirror_x, mirror_y;
} Job;

/* One item is one row of one plane; the flip is its own inverse, so the
 * same loop serves forward and backward. */
static void
flip_range (gsize begin, gsize end, gpointer data)
{
  const Job *j = data;
  for (gsize item = begin; item < end; item++)
    {
      gsize plane = item / j->h;
      int y = (int) (item % j->h);
      int sy = j->mirror_y ? j->h - 1 - y : y;
      const float *restrict in = j->src + (plane * j->h + sy) * j->w;
      float *restrict out = j->dst + (plane * j->h + y) * j->w;
      if (j->mirror_x)
        for (int x = 0; x < j->w; x++)
          out[x] = in[j->w - 1 - x];
      else
        memcpy (out, in, (gsize) j->w * sizeof (float));
    }
}

static void
flip_run (const StStage *stage, const StRunContext *ctx, const StTensor *src, StTensor *dst)
{
  const FlipConfig *cfg = stage->config;
  Job j = { src->data, dst->data, src->shape.h, src->shape.w,
            cfg->direction != DIRECTION_VERTICAL, cfg->direction != DIRECTION_HORIZONTAL };
  st_parallel_for (ctx, (gsize) src->shape.n * src->shape.c * src->shape.h, flip_range, &j);
}

static gboolean
flip_forward (StStage *stage, const StRunContext *ctx,
              const StTensor *const *inputs, StTensor *output, G_GNUC_UNUSED GError **error)
{
  flip_run (stage, ctx, inputs[0], output);
  return TRUE;
}

static gboolean
flip_backward (StStage *stage, const StRunContext *ctx,
               G_GNUC_UNUSED const StTensor *const *inputs, G_GNUC_UNUSED const StTensor *output,
               const StTensor *grad_output, StTensor *const *grad_inputs,
               G_GNUC_UNUSED GError **error)
{
  if (grad_inputs[0])
    flip_run (stage, ctx, grad_output, grad_inputs[0]);
  return TRUE;
}
