/* strata — crop: keep a width × height rectangle of every channel.
 *
 * The rectangle's top-left corner is (x, y), or with center=true the one
 * that centres it: ((W − width) / 2, (H − height) / 2), rounded down, as
 * torchvision's center_crop for an even margin (an odd margin leaves the
 * extra pixel on the right and bottom).  A rectangle reaching outside the
 * image is an error that names both sizes; pad first to grow an image.
 *
 * A selection of pixels: the backward puts each output gradient back at
 * its pixel and leaves zero where the crop cut. */
#include <strata/strata.h>

#include <stddef.h>
#include <string.h>

/* ---- Metadata ----------------------------------------------------------- */

typedef struct {
  int x;
  int y;
  int width;
  int height;
  gboolean center;
} CropConfig;

/* Larger than any image strata reads, and printed whole by `strata plugins`. */
#define CROP_MAX 999999

static const StParamSpec crop_params[] = {
  { .name = "x", .type = ST_PARAM_INT, .default_value = "0",
    .flags = ST_PARAM_HAS_MIN | ST_PARAM_HAS_MAX, .min = 0, .max = CROP_MAX,
    .help = "left edge of the rectangle, in pixels from the left (ignored with center=true)",
    .offset = offsetof (CropConfig, x) },
  { .name = "y", .type = ST_PARAM_INT, .default_value = "0",
    .flags = ST_PARAM_HAS_MIN | ST_PARAM_HAS_MAX, .min = 0, .max = CROP_MAX,
    .help = "top edge of the rectangle, in pixels from the top (ignored with center=true)",
    .offset = offsetof (CropConfig, y) },
  { .name = "width", .type = ST_PARAM_INT,
    .flags = ST_PARAM_REQUIRED | ST_PARAM_HAS_MIN | ST_PARAM_HAS_MAX, .min = 1, .max = CROP_MAX,
    .help = "width of the rectangle kept, in pixels",
    .offset = offsetof (CropConfig, width) },
  { .name = "height", .type = ST_PARAM_INT,
    .flags = ST_PARAM_REQUIRED | ST_PARAM_HAS_MIN | ST_PARAM_HAS_MAX, .min = 1, .max = CROP_MAX,
    .help = "height of the rectangle kept, in pixels",
    .offset = offsetof (CropConfig, height) },
  { .name = "center", .type = ST_PARAM_BOOL, .default_value = "false",
    .help = "centre the rectangle in the image instead of placing it at x, y",
    .offset = offsetof (CropConfig, center) },
};

ST_DECLARE_FORWARD (crop);
ST_DECLARE_BACKWARD (crop);

static const StKind crop_kind = {
  ST_KIND_HEADER,
  .name = "crop",
  .summary = "keep a width x height rectangle of every channel, at x, y or centred",
  .category = ST_CATEGORY_PLUMBING,
  .min_inputs = 1,
  .max_inputs = 1,
  .params = crop_params,
  .n_params = G_N_ELEMENTS (crop_params),
  .config_size = sizeof (CropConfig),
  .infer = crop_infer,
  .forward = crop_forward,
  .backward = crop_backward,
  /* A filter pipeline's load-time check on a typical image must not refuse
   * a crop meant for larger ones. */
  .flags = ST_KIND_SIZE_DEPENDENT,
};

ST_PLUGIN_DEFINE (&crop_kind)

/* ---- Implementation ------------------------------------------------------- */

/* The rectangle's top-left corner in an image of in's size. */
static void
crop_origin (const CropConfig *cfg, StShape in, int *x0, int *y0)
{
  *x0 = cfg->center ? (in.w - cfg->width) / 2 : cfg->x;
  *y0 = cfg->center ? (in.h - cfg->height) / 2 : cfg->y;
}

static gboolean
crop_infer (StStage *stage, GError **error)
{
  const CropConfig *cfg = stage->config;
  StShape in = stage->in_shapes[0];
  if (cfg->center && (cfg->width > in.w || cfg->height > in.h))
    {
      g_set_error (error, ST_ERROR, ST_ERROR_SHAPE,
                   "a centred crop of %dx%d does not fit in the %dx%d image "
                   "(width x height); pad the image first to grow it",
                   cfg->width, cfg->height, in.w, in.h);
      return FALSE;
    }
  if (!cfg->center && ((gint64) cfg->x + cfg->width > in.w
                       || (gint64) cfg->y + cfg->height > in.h))
    {
      g_set_error (error, ST_ERROR, ST_ERROR_SHAPE,
                   "a crop of %dx%d at x=%d, y=%d reaches outside the %dx%d image "
                   "(width x height): it needs x + width <= %d and y + height <= %d",
                   cfg->width, cfg->height, cfg->x, cfg->y, in.w, in.h, in.w, in.h);
      return FALSE;
    }
  stage->out_shape = (StShape) { in.n, in.c, cfg->height, cfg->width };
  /* Output rows are input rows moved up by the top margin. */
  stage->halo = ST_HALO_WHOLE;
  stage->macs = 0;
  return TRUE;
}

typedef struct {
  const float *src;
  float *dst;
  int h, w;                    /* input */
  int oh, ow;                  /* output */
  int x0, y0;
  gboolean backward;           /* copy output rows into input rows */
} Job;

/* One item is one output row of one plane. */
static void
crop_range (gsize begin, gsize end, gpointer data)
{
  const Job *j = data;
  for (gsize item = begin; item < end; item++)
    {
      gsize plane = item / j->oh;
      int y = (int) (item % j->oh);
      gsize inner = (plane * j->h + j->y0 + y) * j->w + j->x0;
      gsize outer = (plane * j->oh + y) * j->ow;
      if (j->backward)
        memcpy (j->dst + inner, j->src + outer, (gsize) j->ow * sizeof (float));
      else
        memcpy (j->dst + outer, j->src + inner, (gsize) j->ow * sizeof (float));
    }
}

static void
crop_run (const StStage *stage, const StRunContext *ctx, StShape in,
          const float *src, float *dst, gboolean backward)
{
  Job j = { src, dst, in.h, in.w, stage->out_shape.h, stage->out_shape.w, 0, 0, backward };
  crop_origin (stage->config, in, &j.x0, &j.y0);
  st_parallel_for (ctx, (gsize) in.n * in.c * j.oh, crop_range, &j);
}

static gboolean
crop_forward (StStage *stage, const StRunContext *ctx,
              const StTensor *const *inputs, StTensor *output, G_GNUC_UNUSED GError **error)
{
  crop_run (stage, ctx, inputs[0]->shape, inputs[0]->data, output->data, FALSE);
  return TRUE;
}

/* grad_inputs[0] comes zero-filled: what the crop cut gets no gradient. */
static gboolean
crop_backward (StStage *stage, const StRunContext *ctx,
               const StTensor *const *inputs, G_GNUC_UNUSED const StTensor *output,
               const StTensor *grad_output, StTensor *const *grad_inputs,
               G_GNUC_UNUSED GError **error)
{
  if (grad_inputs[0])
    crop_run (stage, ctx, inputs[0]->shape, grad_output->data, grad_inputs[0]->data, TRUE);
  return TRUE;
}
