/* strata — rotate90: turn every channel by a quarter, half or three
 * quarters, exactly (pixels move; nothing is interpolated).
 *
 * Counter-clockwise, as numpy.rot90 and torch.rot90 (k = angle / 90) and
 * PIL's Image.rotate turn; for an H×W input:
 *
 *     90:  out is W×H, out(y, x) = in(x, W − 1 − y)
 *     180: out is H×W, out(y, x) = in(H − 1 − y, W − 1 − x)
 *     270: out is W×H, out(y, x) = in(H − 1 − x, y)   (90 clockwise)
 *
 * A permutation of pixels: the backward sends each output gradient back to
 * the pixel it came from. */
#include <strata/strata.h>

#include <stddef.h>

/* ---- Metadata ----------------------------------------------------------- */

typedef enum {
  ANGLE_90,
  ANGLE_180,
  ANGLE_270,
} Angle;

typedef struct {
  int angle;
} Rotate90Config;

static const char *const angle_names[] = { "90", "180", "270", NULL };

static const StParamSpec rotate90_params[] = {
  { .name = "angle", .type = ST_PARAM_ENUM, .default_value = "90",
    .choices = angle_names,
    .help = "degrees counter-clockwise, as numpy.rot90: 90, 180 or 270 (= 90 clockwise)",
    .offset = offsetof (Rotate90Config, angle) },
};

ST_DECLARE_FORWARD (rotate90);
ST_DECLARE_BACKWARD (rotate90);

static const StKind rotate90_kind = {
  ST_KIND_HEADER,
  .name = "rotate90",
  .summary = "turn every channel counter-clockwise by 90, 180 or 270 degrees, exactly",
  .category = ST_CATEGORY_PLUMBING,
  .min_inputs = 1,
  .max_inputs = 1,
  .params = rotate90_params,
  .n_params = G_N_ELEMENTS (rotate90_params),
  .config_size = sizeof (Rotate90Config),
  .infer = rotate90_infer,
  .forward = rotate90_forward,
  .backward = rotate90_backward,
};

ST_PLUGIN_DEFINE (&rotate90_kind)

/* ---- Implementation ------------------------------------------------------- */

static gboolean
rotate90_infer (StStage *stage, G_GNUC_UNUSED GError **error)
{
  const Rotate90Config *cfg = stage->config;
  StShape in = stage->in_shapes[0];
  stage->out_shape = cfg->angle == ANGLE_180 ? in : (StShape) { in.n, in.c, in.w, in.h };
  /* Every turn moves pixels across rows. */
  stage->halo = ST_HALO_WHOLE;
  stage->macs = 0;
  return TRUE;
}

typedef struct {
  const float *in;             /* the input (forward) */
  float *out;                  /* the output, or the input's gradient (backward) */
  const float *grad;           /* backward: the output's gradient */
  Angle angle;
  int h, w;                    /* input */
  int oh, ow;                  /* output */
} Job;

/* The input offset, within its plane, of output pixel (y, x). */
static inline gsize
source (const Job *j, int y, int x)
{
  switch (j->angle)
    {
    case ANGLE_90: return (gsize) x * j->w + (j->w - 1 - y);
    case ANGLE_180: return (gsize) (j->h - 1 - y) * j->w + (j->w - 1 - x);
    case ANGLE_270: default: return (gsize) (j->h - 1 - x) * j->w + y;
    }
}

/* One item is one output row of one plane.  Forward gathers; backward
 * scatters the output's gradient to the same places, each input pixel
 * being the source of exactly one output pixel. */
static void
rotate90_range (gsize begin, gsize end, gpointer data)
{
  const Job *j = data;
  const gsize in_plane = (gsize) j->h * j->w, out_plane = (gsize) j->oh * j->ow;
  for (gsize item = begin; item < end; item++)
    {
      gsize plane = item / j->oh;
      int y = (int) (item % j->oh);
      if (j->grad)
        {
          const float *g = j->grad + plane * out_plane + (gsize) y * j->ow;
          float *din = j->out + plane * in_plane;
          for (int x = 0; x < j->ow; x++)
            din[source (j, y, x)] = g[x];
        }
      else
        {
          const float *in = j->in + plane * in_plane;
          float *out = j->out + plane * out_plane + (gsize) y * j->ow;
          for (int x = 0; x < j->ow; x++)
            out[x] = in[source (j, y, x)];
        }
    }
}

static void
rotate90_run (const StStage *stage, const StRunContext *ctx, const StTensor *in,
              const StTensor *grad, float *dst)
{
  const Rotate90Config *cfg = stage->config;
  Job j = { in->data, dst, grad ? grad->data : NULL, (Angle) cfg->angle,
            in->shape.h, in->shape.w, stage->out_shape.h, stage->out_shape.w };
  st_parallel_for (ctx, (gsize) in->shape.n * in->shape.c * j.oh, rotate90_range, &j);
}

static gboolean
rotate90_forward (StStage *stage, const StRunContext *ctx,
                  const StTensor *const *inputs, StTensor *output, G_GNUC_UNUSED GError **error)
{
  rotate90_run (stage, ctx, inputs[0], NULL, output->data);
  return TRUE;
}

static gboolean
rotate90_backward (StStage *stage, const StRunContext *ctx,
                   const StTensor *const *inputs, G_GNUC_UNUSED const StTensor *output,
                   const StTensor *grad_output, StTensor *const *grad_inputs,
                   G_GNUC_UNUSED GError **error)
{
  if (grad_inputs[0])
    rotate90_run (stage, ctx, inputs[0], grad_output, grad_inputs[0]->data);
  return TRUE;
}
