/* strata — pad: add rows and columns around every channel.
 *
 * Sizes per side (top, bottom, left, right), each defaulting to `all`.
 * The new pixels follow `border`: zero, edge, reflect, wrap (as kernel's
 * border and numpy.pad's modes; the SDK's st_border_index() computes them,
 * so a pad wider than the image still works), or constant (`value`).
 *
 * Linear in the input: the backward adds each output pixel's gradient to
 * the input pixel it was read from (edge, reflect and wrap read some
 * pixels several times); constant and zero pixels send none back. */
#include <strata/strata.h>

#include <stddef.h>

/* ---- Metadata ----------------------------------------------------------- */

/* ST_BORDER_* first, then pad's own mode. */
#define BORDER_CONSTANT 4

typedef struct {
  int all;
  int top, bottom, left, right;  /* PAD_AS_ALL: take `all` */
  int border;
  double value;
} PadConfig;

/* A side left unset takes `all`: the symbolic name stores -1. */
#define PAD_AS_ALL (-1)
static const char *const side_names[] = { "all", NULL };
static const char *const border_names[] = { "zero", "edge", "reflect", "wrap", "constant", NULL };

#define PAD_MAX 65536
#define SIDE(key, field, what)                                                    \
  { .name = key, .type = ST_PARAM_INT, .default_value = "all",                    \
    .flags = ST_PARAM_HAS_MIN | ST_PARAM_HAS_MAX, .min = 0, .max = PAD_MAX,        \
    .choices = side_names,                                                        \
    .help = what "; all: as the all key",                                          \
    .offset = offsetof (PadConfig, field) }

static const StParamSpec pad_params[] = {
  { .name = "all", .type = ST_PARAM_INT, .default_value = "0",
    .flags = ST_PARAM_HAS_MIN | ST_PARAM_HAS_MAX, .min = 0, .max = PAD_MAX,
    .help = "pixels added on every side that is not given on its own",
    .offset = offsetof (PadConfig, all) },
  SIDE ("top", top, "rows added above"),
  SIDE ("bottom", bottom, "rows added below"),
  SIDE ("left", left, "columns added on the left"),
  SIDE ("right", right, "columns added on the right"),
  { .name = "border", .type = ST_PARAM_ENUM, .default_value = "zero",
    .choices = border_names,
    .help = "the new pixels: zero, edge (repeat), reflect (mirror, edge not repeated), "
            "wrap (the opposite side) or constant (value)",
    .offset = offsetof (PadConfig, border) },
  { .name = "value", .type = ST_PARAM_DOUBLE, .default_value = "0",
    .help = "the new pixels' value with border=constant (images hold 0 to 1)",
    .offset = offsetof (PadConfig, value) },
};

ST_DECLARE_FORWARD (pad);
ST_DECLARE_BACKWARD (pad);

static const StKind pad_kind = {
  ST_KIND_HEADER,
  .name = "pad",
  .summary = "add pixels around every channel: zero, edge, reflect, wrap or a constant",
  .category = ST_CATEGORY_PLUMBING,
  .min_inputs = 1,
  .max_inputs = 1,
  .params = pad_params,
  .n_params = G_N_ELEMENTS (pad_params),
  .config_size = sizeof (PadConfig),
  .infer = pad_infer,
  .forward = pad_forward,
  .backward = pad_backward,
};

ST_PLUGIN_DEFINE (&pad_kind)

/* ---- Implementation ------------------------------------------------------- */

typedef struct {
  int top, bottom, left, right;
} Sides;

static Sides
pad_sides (const PadConfig *cfg)
{
  return (Sides) {
    cfg->top == PAD_AS_ALL ? cfg->all : cfg->top,
    cfg->bottom == PAD_AS_ALL ? cfg->all : cfg->bottom,
    cfg->left == PAD_AS_ALL ? cfg->all : cfg->left,
    cfg->right == PAD_AS_ALL ? cfg->all : cfg->right,
  };
}

static gboolean
pad_infer (StStage *stage, GError **error)
{
  StShape in = stage->in_shapes[0];
  Sides s = pad_sides (stage->config);
  gint64 h = (gint64) in.h + s.top + s.bottom, w = (gint64) in.w + s.left + s.right;
  if (h > G_MAXINT || w > G_MAXINT)
    {
      g_set_error (error, ST_ERROR, ST_ERROR_SHAPE, "output of %" G_GINT64_FORMAT
                   "x%" G_GINT64_FORMAT " pixels (width x height) is too large", w, h);
      return FALSE;
    }
  stage->out_shape = (StShape) { in.n, in.c, (int) h, (int) w };
  /* Output rows are input rows moved down by the top margin, and the
   * margins read rows from the far side of the image. */
  stage->halo = ST_HALO_WHOLE;
  stage->macs = 0;
  return TRUE;
}

typedef struct {
  const float *src;
  float *dst;
  int h, w, oh, ow;
  const int *rows;             /* output row → input row, -1: a constant row */
  const int *cols;             /* output column → input column, -1: a constant pixel */
  float value;
} Job;

/* Forward: one item is one output row of one plane. */
static void
pad_forward_range (gsize begin, gsize end, gpointer data)
{
  const Job *j = data;
  for (gsize item = begin; item < end; item++)
    {
      gsize plane = item / j->oh;
      int y = (int) (item % j->oh);
      float *restrict out = j->dst + (plane * j->oh + y) * j->ow;
      int sy = j->rows[y];
      const float *restrict in = j->src + (plane * j->h + MAX (sy, 0)) * j->w;
      for (int x = 0; x < j->ow; x++)
        out[x] = sy < 0 || j->cols[x] < 0 ? j->value : in[j->cols[x]];
    }
}

/* Backward: one item is one plane, since several output pixels may add
 * into one input pixel. */
static void
pad_backward_range (gsize begin, gsize end, gpointer data)
{
  const Job *j = data;
  for (gsize plane = begin; plane < end; plane++)
    {
      const float *g = j->src + plane * j->oh * j->ow;
      float *din = j->dst + plane * j->h * j->w;
      for (int y = 0; y < j->oh; y++)
        {
          if (j->rows[y] < 0)
            continue;
          float *line = din + (gsize) j->rows[y] * j->w;
          for (int x = 0; x < j->ow; x++)
            if (j->cols[x] >= 0)
              line[j->cols[x]] += g[(gsize) y * j->ow + x];
        }
    }
}

/* Fills map[0 .. before + n + after) with where each position reads. */
static int *
pad_map (int n, int before, int after, int border)
{
  int *map = g_new (int, (gsize) before + n + after);
  for (gint64 i = 0; i < (gint64) before + n + after; i++)
    map[i] = border == BORDER_CONSTANT
             ? (i >= before && i < before + n ? (int) (i - before) : -1)
             : st_border_index (i - before, n, (StBorder) border);
  return map;
}

static void
pad_run (const StStage *stage, const StRunContext *ctx, StShape in,
         const float *src, float *dst, gboolean backward)
{
  const PadConfig *cfg = stage->config;
  Sides s = pad_sides (cfg);
  int *rows = pad_map (in.h, s.top, s.bottom, cfg->border);
  int *cols = pad_map (in.w, s.left, s.right, cfg->border);
  Job j = { src, dst, in.h, in.w, stage->out_shape.h, stage->out_shape.w, rows, cols,
            cfg->border == BORDER_CONSTANT ? (float) cfg->value : 0.0f };
  gsize planes = (gsize) in.n * in.c;
  if (backward)
    st_parallel_for (ctx, planes, pad_backward_range, &j);
  else
    st_parallel_for (ctx, planes * j.oh, pad_forward_range, &j);
  g_free (rows);
  g_free (cols);
}

static gboolean
pad_forward (StStage *stage, const StRunContext *ctx,
             const StTensor *const *inputs, StTensor *output, G_GNUC_UNUSED GError **error)
{
  pad_run (stage, ctx, inputs[0]->shape, inputs[0]->data, output->data, FALSE);
  return TRUE;
}

static gboolean
pad_backward (StStage *stage, const StRunContext *ctx,
              const StTensor *const *inputs, G_GNUC_UNUSED const StTensor *output,
              const StTensor *grad_output, StTensor *const *grad_inputs,
              G_GNUC_UNUSED GError **error)
{
  if (grad_inputs[0])
    pad_run (stage, ctx, inputs[0]->shape, grad_output->data, grad_inputs[0]->data, TRUE);
  return TRUE;
}
