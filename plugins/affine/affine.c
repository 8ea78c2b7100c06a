/* strata — affine: move every channel's pixels through a 2x3 matrix.
 *
 * The map goes from input to output, as cv2.warpAffine's matrix does:
 * input pixel (x, y) lands at (a·x + b·y + c, d·x + e·y + f), pixel centres
 * at integer coordinates, y down.  Give it as `matrix=a,b,c,d,e,f`, or
 * compose it from `scale`, `shear`, `rotate` and `translate`, applied in
 * that order about `center` (by default the image centre, ((w-1)/2,
 * (h-1)/2), so rotate=180 is an exact flip of both axes):
 *
 *     M = T(center + translate) · R(rotate) · Sh(shear) · S(scale) · T(-center)
 *
 * rotate is in degrees, counter-clockwise on screen positive (as
 * cv2.getRotationMatrix2D and PIL's rotate); shear is one or two angles in
 * degrees, x moving by tan(shear_x)·(y − cy) and y by tan(shear_y)·(x − cx)
 * (torchvision's affine shear); scale one factor for both axes or two
 * (negative mirrors).
 *
 * size=same keeps the input's size; size=fit grows (or shrinks) the output
 * to the bounding box of the whole moved image, centred in it, so nothing
 * is cut off (translate then has no effect).  Output pixels read the input
 * through the inverse map with st_warp_rows() (strata/warp.h): nearest,
 * bilinear or bicubic, and `border` beyond the input's edge.
 *
 * Not local: an output row reads input rows that depend on the matrix, so
 * the stage declares that it needs the whole input.  Linear in the input:
 * the backward is the transpose of the sampling (st_warp_backward()). */
#include <strata/strata.h>
#include <strata/warp.h>

#include <math.h>
#include <stddef.h>

/* ---- Metadata ----------------------------------------------------------- */

/* ST_BORDER_* first, then affine's own mode. */
#define BORDER_CONSTANT 4

enum { SIZE_SAME, SIZE_FIT };

typedef struct {
  StDoubleList matrix;
  double rotate;
  StDoubleList scale;
  StDoubleList translate;
  StDoubleList shear;
  StDoubleList center;
  int interpolation;
  int size;
  int border;
  double value;
} AffineConfig;

static const char *const border_names[] = { "zero", "edge", "reflect", "wrap", "constant", NULL };
static const char *const size_names[] = { "same", "fit", NULL };

/* The largest side size=fit makes: far beyond any image, and the memory
 * bound refuses what does not fit long before. */
#define AFFINE_MAX_SIDE (1 << 20)

static const StParamSpec affine_params[] = {
  { .name = "matrix", .type = ST_PARAM_DOUBLE_LIST,
    .help = "a,b,c,d,e,f: input (x, y) goes to (a x + b y + c, d x + e y + f), as cv2.warpAffine; "
            "excludes rotate, scale, shear, translate",
    .offset = offsetof (AffineConfig, matrix) },
  { .name = "rotate", .type = ST_PARAM_DOUBLE, .default_value = "0",
    .flags = ST_PARAM_HAS_MIN | ST_PARAM_HAS_MAX, .min = -36000, .max = 36000,
    .help = "degrees, counter-clockwise positive, about center",
    .offset = offsetof (AffineConfig, rotate) },
  { .name = "scale", .type = ST_PARAM_DOUBLE_LIST,
    .flags = ST_PARAM_HAS_MIN | ST_PARAM_HAS_MAX, .min = -1000, .max = 1000,
    .help = "one factor, or x,y factors, about center (negative mirrors); default 1",
    .offset = offsetof (AffineConfig, scale) },
  { .name = "translate", .type = ST_PARAM_DOUBLE_LIST,
    .flags = ST_PARAM_HAS_MIN | ST_PARAM_HAS_MAX, .min = -1e6, .max = 1e6,
    .help = "x,y: pixels moved right and down, after the rest; default 0,0",
    .offset = offsetof (AffineConfig, translate) },
  { .name = "shear", .type = ST_PARAM_DOUBLE_LIST,
    .flags = ST_PARAM_HAS_MIN | ST_PARAM_HAS_MAX | ST_PARAM_MIN_EXCLUSIVE | ST_PARAM_MAX_EXCLUSIVE,
    .min = -90, .max = 90,
    .help = "degrees: x, or x,y; x moves by tan(x)·(y - cy), y by tan(y)·(x - cx); default 0",
    .offset = offsetof (AffineConfig, shear) },
  { .name = "center", .type = ST_PARAM_DOUBLE_LIST,
    .flags = ST_PARAM_HAS_MIN | ST_PARAM_HAS_MAX, .min = -1e6, .max = 1e6,
    .help = "x,y: the fixed point of rotate, scale and shear; default the image centre",
    .offset = offsetof (AffineConfig, center) },
  { .name = "interpolation", .type = ST_PARAM_ENUM, .default_value = "bilinear",
    .choices = ST_INTERPOLATION_CHOICES,
    .help = "nearest, bilinear or bicubic (Keys a=-0.75, as OpenCV)",
    .offset = offsetof (AffineConfig, interpolation) },
  { .name = "size", .type = ST_PARAM_ENUM, .default_value = "same",
    .choices = size_names,
    .help = "same: the input's size; fit: the bounding box of the whole result, centred",
    .offset = offsetof (AffineConfig, size) },
  { .name = "border", .type = ST_PARAM_ENUM, .default_value = "zero",
    .choices = border_names,
    .help = "what is read beyond the input: zero, edge (repeat), reflect (mirror, edge not "
            "repeated), wrap (the opposite side) or constant (value)",
    .offset = offsetof (AffineConfig, border) },
  { .name = "value", .type = ST_PARAM_DOUBLE, .default_value = "0",
    .help = "what border=constant reads (images hold 0 to 1)",
    .offset = offsetof (AffineConfig, value) },
};

ST_DECLARE_FORWARD (affine);
ST_DECLARE_BACKWARD (affine);
static void affine_finalize (StStage *stage);

static const StKind affine_kind = {
  ST_KIND_HEADER,
  .name = "affine",
  .summary = "move pixels by a 2x3 matrix or rotate/scale/shear/translate: "
             "nearest, bilinear or bicubic, as cv2.warpAffine",
  .category = ST_CATEGORY_PLUMBING,
  .min_inputs = 1,
  .max_inputs = 1,
  .params = affine_params,
  .n_params = G_N_ELEMENTS (affine_params),
  .config_size = sizeof (AffineConfig),
  .infer = affine_infer,
  .forward = affine_forward,
  .backward = affine_backward,
  .finalize = affine_finalize,
};

ST_PLUGIN_DEFINE (&affine_kind)

/* ---- Implementation ------------------------------------------------------- */

static gboolean
check_count (const StDoubleList *list, const char *key, int lo, int hi, GError **error)
{
  if (list->n == 0 || (list->n >= lo && list->n <= hi))
    return TRUE;
  if (lo == hi)
    g_set_error (error, ST_ERROR, ST_ERROR_PIPELINE,
                 "%s takes %d values, not %d", key, lo, list->n);
  else
    g_set_error (error, ST_ERROR, ST_ERROR_PIPELINE,
                 "%s takes %d or %d values, not %d", key, lo, hi, list->n);
  return FALSE;
}

/* The forward map (input to output) that the config describes for an
 * input of w x h, before size=fit. */
static gboolean
forward_matrix (const AffineConfig *cfg, int w, int h, double m[6], GError **error)
{
  if (!check_count (&cfg->matrix, "matrix", 6, 6, error)
      || !check_count (&cfg->scale, "scale", 1, 2, error)
      || !check_count (&cfg->translate, "translate", 2, 2, error)
      || !check_count (&cfg->shear, "shear", 1, 2, error)
      || !check_count (&cfg->center, "center", 2, 2, error))
    return FALSE;
  if (cfg->matrix.n)
    {
      if (cfg->rotate != 0 || cfg->scale.n || cfg->translate.n || cfg->shear.n)
        {
          g_set_error (error, ST_ERROR, ST_ERROR_PIPELINE,
                       "matrix gives the whole map: leave out rotate, scale, shear and translate");
          return FALSE;
        }
      for (int i = 0; i < 6; i++)
        m[i] = cfg->matrix.values[i];
      return TRUE;
    }
  const StAffineParts parts = {
    .cx = cfg->center.n ? cfg->center.values[0] : (w - 1) / 2.0,
    .cy = cfg->center.n ? cfg->center.values[1] : (h - 1) / 2.0,
    .scale_x = cfg->scale.n ? cfg->scale.values[0] : 1,
    .scale_y = cfg->scale.n ? cfg->scale.values[cfg->scale.n - 1] : 1,
    .shear_x = cfg->shear.n ? cfg->shear.values[0] : 0,
    .shear_y = cfg->shear.n == 2 ? cfg->shear.values[1] : 0,
    .rotate = cfg->rotate,
    .translate_x = cfg->translate.n ? cfg->translate.values[0] : 0,
    .translate_y = cfg->translate.n ? cfg->translate.values[1] : 0,
  };
  st_affine_compose (&parts, m);
  return TRUE;
}

typedef struct {
  StWarp warp;                 /* set by infer for the current input size */
} AffinePriv;

static gboolean
affine_infer (StStage *stage, GError **error)
{
  const AffineConfig *cfg = stage->config;
  StShape in = stage->in_shapes[0];
  double m[6];
  if (!forward_matrix (cfg, in.w, in.h, m, error))
    return FALSE;
  int out_w = in.w, out_h = in.h;
  if (cfg->size == SIZE_FIT)
    {
      /* The box the input's pixels cover, edges at -0.5 and w - 0.5. */
      double lo_x = G_MAXDOUBLE, hi_x = -G_MAXDOUBLE, lo_y = G_MAXDOUBLE, hi_y = -G_MAXDOUBLE;
      for (int k = 0; k < 4; k++)
        {
          double x = (k & 1 ? in.w : 0) - 0.5, y = (k & 2 ? in.h : 0) - 0.5;
          double X = m[0] * x + m[1] * y + m[2], Y = m[3] * x + m[4] * y + m[5];
          lo_x = MIN (lo_x, X), hi_x = MAX (hi_x, X);
          lo_y = MIN (lo_y, Y), hi_y = MAX (hi_y, Y);
        }
      /* The tolerance keeps an exact turn's w x h from rounding up a pixel. */
      double fw = ceil (hi_x - lo_x - 1e-6), fh = ceil (hi_y - lo_y - 1e-6);
      if (!(fw <= AFFINE_MAX_SIDE && fh <= AFFINE_MAX_SIDE))
        {
          g_set_error (error, ST_ERROR, ST_ERROR_SHAPE,
                       "size=fit needs %.0fx%.0f pixels (width x height), more than %d a side",
                       fw, fh, AFFINE_MAX_SIDE);
          return FALSE;
        }
      out_w = MAX ((int) fw, 1), out_h = MAX ((int) fh, 1);
      m[2] += (out_w - 1) / 2.0 - (lo_x + hi_x) / 2;
      m[5] += (out_h - 1) / 2.0 - (lo_y + hi_y) / 2;
    }
  AffinePriv *priv = stage->priv;
  if (!priv)
    stage->priv = priv = g_new0 (AffinePriv, 1);
  if (!st_affine_invert (m, priv->warp.matrix))
    {
      g_set_error (error, ST_ERROR, ST_ERROR_PIPELINE,
                   "the matrix %g,%g,%g,%g,%g,%g cannot be inverted (it flattens the image)",
                   m[0], m[1], m[2], m[3], m[4], m[5]);
      return FALSE;
    }
  priv->warp.interpolation = (StInterpolation) cfg->interpolation;
  priv->warp.border = cfg->border == BORDER_CONSTANT ? ST_BORDER_ZERO : (StBorder) cfg->border;
  priv->warp.value = cfg->border == BORDER_CONSTANT ? (float) cfg->value : 0.0f;
  stage->out_shape = (StShape) { in.n, in.c, out_h, out_w };
  /* Which input rows an output row reads depends on the matrix. */
  stage->halo = ST_HALO_WHOLE;
  static const double taps[] = { 1, 4, 16 };
  stage->macs = (double) st_shape_numel (stage->out_shape) * taps[cfg->interpolation];
  return TRUE;
}

static void
affine_finalize (StStage *stage)
{
  g_free (stage->priv);
}

typedef struct {
  const StWarp *warp;
  const float *src;
  float *dst;
  StShape in, out;
} Job;

/* Forward: one item is one output row of one plane. */
static void
forward_range (gsize begin, gsize end, gpointer data)
{
  const Job *j = data;
  for (gsize item = begin; item < end; item++)
    {
      gsize plane = item / j->out.h;
      int y = (int) (item % j->out.h);
      st_warp_rows (j->warp, j->src + plane * j->in.h * j->in.w, j->in.w, j->in.h,
                    j->dst + plane * j->out.h * j->out.w, j->out.w, j->out.h, y, y + 1);
    }
}

/* Backward: one item is one plane, since output pixels add into shared
 * input pixels. */
static void
backward_range (gsize begin, gsize end, gpointer data)
{
  const Job *j = data;
  for (gsize plane = begin; plane < end; plane++)
    st_warp_backward (j->warp, j->src + plane * j->out.h * j->out.w, j->out.w, j->out.h,
                      j->dst + plane * j->in.h * j->in.w, j->in.w, j->in.h);
}

static gboolean
affine_forward (StStage *stage, const StRunContext *ctx,
                const StTensor *const *inputs, StTensor *output, G_GNUC_UNUSED GError **error)
{
  const AffinePriv *priv = stage->priv;
  Job j = { &priv->warp, inputs[0]->data, output->data, inputs[0]->shape, output->shape };
  st_parallel_for (ctx, (gsize) j.out.n * j.out.c * j.out.h, forward_range, &j);
  return TRUE;
}

static gboolean
affine_backward (StStage *stage, const StRunContext *ctx,
                 const StTensor *const *inputs, const StTensor *output,
                 const StTensor *grad_output, StTensor *const *grad_inputs,
                 G_GNUC_UNUSED GError **error)
{
  if (!grad_inputs[0])
    return TRUE;
  const AffinePriv *priv = stage->priv;
  Job j = { &priv->warp, grad_output->data, grad_inputs[0]->data, inputs[0]->shape,
            output->shape };
  st_parallel_for (ctx, (gsize) j.in.n * j.in.c, backward_range, &j);
  return TRUE;
}
