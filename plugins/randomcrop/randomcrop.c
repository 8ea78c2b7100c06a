/* strata — randomcrop: a random translation or crop while training, as
 * torchvision's RandomCrop(size, padding, padding_mode).
 *
 * Each image is padded by `padding` pixels on every side (with `border`:
 * zero, edge, reflect or wrap, computed by the SDK's st_border_index())
 * and a window of `size` (the input's own size when not given) is cut
 * from it at an offset drawn uniformly, each offset equally likely, from
 * the item's own generator (st_rng_item_new).  Outside training the
 * window is the centred one: the identity without `size`, a centre crop
 * with it. */
#include <strata/strata.h>

#include <stddef.h>
#include <string.h>

/* ---- Metadata ----------------------------------------------------------- */

typedef struct {
  int padding;
  int border;
  StIntList size;
} RandomCropConfig;

#define PADDING_MAX 65536

static const StParamSpec randomcrop_params[] = {
  { .name = "padding", .type = ST_PARAM_INT, .default_value = "4",
    .flags = ST_PARAM_HAS_MIN | ST_PARAM_HAS_MAX, .min = 0, .max = PADDING_MAX,
    .help = "pixels added on every side before the window is cut: shifts of up to this much",
    .offset = offsetof (RandomCropConfig, padding) },
  { .name = "border", .type = ST_PARAM_ENUM, .default_value = "zero",
    .choices = ST_BORDER_CHOICES,
    .help = "the padding's pixels: zero, edge (repeat), reflect (mirror, edge not repeated) "
            "or wrap (the opposite side)",
    .offset = offsetof (RandomCropConfig, border) },
  { .name = "size", .type = ST_PARAM_INT_LIST,
    .flags = ST_PARAM_HAS_MIN, .min = 1,
    .help = "the window, height,width or one value for both; default: the input's size",
    .offset = offsetof (RandomCropConfig, size) },
};

ST_DECLARE_FORWARD (randomcrop);

static const StKind randomcrop_kind = {
  ST_KIND_HEADER,
  .name = "randomcrop",
  .summary = "augmentation: pads, then cuts a window at a random place in training; "
             "the centred window otherwise",
  .category = ST_CATEGORY_PLUMBING,
  .min_inputs = 1,
  .max_inputs = 1,
  .params = randomcrop_params,
  .n_params = G_N_ELEMENTS (randomcrop_params),
  .config_size = sizeof (RandomCropConfig),
  .infer = randomcrop_infer,
  .forward = randomcrop_forward,
  .flags = ST_KIND_RANDOM | ST_KIND_SIZE_DEPENDENT,
};

ST_PLUGIN_DEFINE (&randomcrop_kind)

/* ---- Implementation ------------------------------------------------------- */

static gboolean
randomcrop_infer (StStage *stage, GError **error)
{
  const RandomCropConfig *cfg = stage->config;
  StShape in = stage->in_shapes[0];
  if (cfg->size.n > 2)
    {
      g_set_error (error, ST_ERROR, ST_ERROR_PIPELINE,
                   "key 'size': expected height,width or one value, found %d values",
                   cfg->size.n);
      return FALSE;
    }
  int oh = cfg->size.n ? cfg->size.values[0] : in.h;
  int ow = cfg->size.n ? cfg->size.values[cfg->size.n - 1] : in.w;
  gint64 ph = (gint64) in.h + 2 * (gint64) cfg->padding;
  gint64 pw = (gint64) in.w + 2 * (gint64) cfg->padding;
  if (oh > ph || ow > pw)
    {
      g_set_error (error, ST_ERROR, ST_ERROR_SHAPE,
                   "key 'size': a window of %dx%d (height x width) is larger than the input "
                   "padded to %" G_GINT64_FORMAT "x%" G_GINT64_FORMAT,
                   oh, ow, ph, pw);
      return FALSE;
    }
  stage->out_shape = (StShape) { in.n, in.c, oh, ow };
  /* Outside training it is the identity without size; a centre crop reads
   * far from its output pixels. */
  stage->halo = cfg->size.n ? ST_HALO_WHOLE : 0;
  stage->macs = 0;
  return TRUE;
}

typedef struct {
  const float *src;
  float *dst;
  int c, h, w, oh, ow, padding;
  StBorder border;
  const int *top, *left;       /* per batch item: the window's corner in the padded image */
} Job;

/* One item is one output plane. */
static void
randomcrop_range (gsize begin, gsize end, gpointer data)
{
  const Job *j = data;
  for (gsize plane = begin; plane < end; plane++)
    {
      gsize b = plane / j->c;
      const float *in = j->src + plane * j->h * j->w;
      float *out = j->dst + plane * j->oh * j->ow;
      int dx = j->left[b] - j->padding;
      /* Output columns [x0, x1) read inside the image: copied as a run. */
      int x0 = CLAMP (-dx, 0, j->ow), x1 = CLAMP (j->w - dx, x0, j->ow);
      for (int y = 0; y < j->oh; y++)
        {
          float *restrict o = out + (gsize) y * j->ow;
          int sy = st_border_index ((gint64) y + j->top[b] - j->padding, j->h, j->border);
          if (sy < 0)
            continue;          /* a zero row: the output is zero-filled */
          const float *restrict row = in + (gsize) sy * j->w;
          for (int x = 0; x < x0; x++)
            {
              int sx = st_border_index ((gint64) x + dx, j->w, j->border);
              o[x] = sx < 0 ? 0.0f : row[sx];
            }
          if (x1 > x0)
            memcpy (o + x0, row + x0 + dx, (gsize) (x1 - x0) * sizeof (float));
          for (int x = x1; x < j->ow; x++)
            {
              int sx = st_border_index ((gint64) x + dx, j->w, j->border);
              o[x] = sx < 0 ? 0.0f : row[sx];
            }
        }
    }
}

/* An integer in [0, n], each equally likely. */
static int
draw_offset (StRng *rng, int n)
{
  return (int) (st_rng_next (rng) % ((guint64) n + 1));
}

static gboolean
randomcrop_forward (StStage *stage, const StRunContext *ctx,
                    const StTensor *const *inputs, StTensor *output,
                    G_GNUC_UNUSED GError **error)
{
  const RandomCropConfig *cfg = stage->config;
  StShape s = inputs[0]->shape, o = output->shape;
  int room_y = s.h + 2 * cfg->padding - o.h, room_x = s.w + 2 * cfg->padding - o.w;
  g_autofree int *top = g_new (int, s.n);
  g_autofree int *left = g_new (int, s.n);
  for (int b = 0; b < s.n; b++)
    {
      if (!ctx->training)
        {
          top[b] = room_y / 2;
          left[b] = room_x / 2;
          continue;
        }
      StRng *rng = st_rng_item_new (ctx, b);
      top[b] = draw_offset (rng, room_y);
      left[b] = draw_offset (rng, room_x);
      st_rng_free (rng);
    }
  Job j = { inputs[0]->data, output->data, s.c, s.h, s.w, o.h, o.w, cfg->padding,
            (StBorder) cfg->border, top, left };
  st_parallel_for (ctx, (gsize) s.n * s.c, randomcrop_range, &j);
  return TRUE;
}
