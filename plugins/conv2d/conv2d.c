/* strata — conv2d: the 2-D convolution layer.
 *
 * Cross-correlation, as PyTorch's Conv2d and Keras' Conv2D compute it:
 *
 *     out(n, o, y, x) = b(o) + Σ_c Σ_i Σ_j w(o, c, i, j) ·
 *                       in(n, g·C/G + c, y·S − pt + i·D, x·S − pl + j·D)
 *
 * with c running over the C/G input channels of output channel o's group g,
 * zero outside the input, then the fused activation.  Weights are
 * [out, in/groups, kh, kw], PyTorch's layout, so state_dicts move unchanged.
 *
 * Each group is one SGEMM per block of output pixels:
 *
 *     out_g [M/G, pixels] = W_g [M/G, K] × col [K, pixels],   K = C/G·kh·kw
 *
 * where col is the input unrolled tap by tap (im2col).  A block holds
 * several small images side by side (a 3×3 map is a useless GEMM width on
 * its own) or a piece of one large image.  The blocks are shared among the
 * core's threads and OpenBLAS runs single-threaded inside each, so packing,
 * bias and activation run in parallel too and the two thread pools never
 * compete for the cores: on the Keras MNIST layers at batch 64 and 2
 * threads this is 1.3 to 2 times faster than one packing thread feeding
 * OpenBLAS's own two.  A 1×1 convolution at stride 1 without padding reads
 * the input as its own col matrix.
 *
 * In training the forward keeps col for the backward, up to 64 MB a
 * layer; past that the backward rebuilds it from the input: kept, it is K
 * times the input's size, and rebuilding it costs about a sixth of the two
 * GEMMs that use it.
 *
 * On a CPU with AVX-512, stride-1 layers whose filters come in sixteens
 * skip im2col and SGEMM for the register tiles of tiles.c (the input
 * gradient on the input channels rounded up to sixteens), whole images to
 * a task: as fast as SGEMM on the product alone, without the col matrix
 * or OpenBLAS's packing of it.  With pool= and relu or no activation the
 * tiles' pixel-major sums are pooled directly (tile_pools_sums ()). */
#include <strata/strata.h>

#include "tiles.h"

#include <strata/maxpool.h>

#include <cblas.h>
#include <math.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

/* The packing loops must vectorise (see plugins/kernel/kernel.c), and stay
 * loops: turned into memcpy/memset calls they cost more than they move on
 * rows of a few pixels. */
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC optimize ("O3", "no-tree-loop-distribute-patterns")
#endif

/* OpenBLAS's own extension, declared by its cblas.h but not by others. */
void openblas_set_num_threads (int num_threads);

/* ---- Metadata ----------------------------------------------------------- */

/* The symbolic values of the int param 'padding'. */
enum { PADDING_SAME = -1, PADDING_VALID = -2 };

typedef struct {
  int filters;
  StIntList size;
  StIntList stride;
  int padding;
  StIntList dilation;
  int groups;
  gboolean bias;
  int pool;
  int activation;
  double slope;
  double alpha;
} ConvConfig;

static const char *const padding_names[] = { "same", "valid", NULL };

static const StParamSpec conv_params[] = {
  { .name = "filters", .type = ST_PARAM_INT, .flags = ST_PARAM_REQUIRED
    | ST_PARAM_HAS_MIN | ST_PARAM_HAS_MAX, .min = 1, .max = 65536,
    .help = "output channels",
    .offset = offsetof (ConvConfig, filters) },
  { .name = "size", .type = ST_PARAM_INT_LIST, .default_value = "3",
    .flags = ST_PARAM_HAS_MIN | ST_PARAM_HAS_MAX, .min = 1, .max = 1024,
    .help = "kernel size: one value, or kh,kw",
    .offset = offsetof (ConvConfig, size) },
  { .name = "stride", .type = ST_PARAM_INT_LIST, .default_value = "1",
    .flags = ST_PARAM_HAS_MIN | ST_PARAM_HAS_MAX, .min = 1, .max = 4096,
    .help = "step between output pixels: one value, or sh,sw",
    .offset = offsetof (ConvConfig, stride) },
  { .name = "padding", .type = ST_PARAM_INT, .default_value = "valid",
    .flags = ST_PARAM_HAS_MIN | ST_PARAM_HAS_MAX, .min = 0, .max = 65536,
    .choices = padding_names,
    .help = "valid (none), N zero pixels on every side, or same: output = ceil(input/stride) "
            "with the padding split as TensorFlow does (extra pixel after; PyTorch's 'same' at stride 1)",
    .offset = offsetof (ConvConfig, padding) },
  { .name = "dilation", .type = ST_PARAM_INT_LIST, .default_value = "1",
    .flags = ST_PARAM_HAS_MIN | ST_PARAM_HAS_MAX, .min = 1, .max = 1024,
    .help = "spacing between kernel taps: one value, or dh,dw",
    .offset = offsetof (ConvConfig, dilation) },
  { .name = "groups", .type = ST_PARAM_INT, .default_value = "1",
    .flags = ST_PARAM_HAS_MIN | ST_PARAM_HAS_MAX, .min = 1, .max = 65536,
    .help = "channel groups; input channels and filters must divide by it (groups = channels: depthwise)",
    .offset = offsetof (ConvConfig, groups) },
  { .name = "bias", .type = ST_PARAM_BOOL, .default_value = "true",
    .help = "add a learned bias per filter",
    .offset = offsetof (ConvConfig, bias) },
  { .name = "pool", .type = ST_PARAM_INT, .default_value = "0",
    .flags = ST_PARAM_HAS_MIN | ST_PARAM_HAS_MAX, .min = 0, .max = 16,
    .help = "max pooling over pool x pool windows after the activation, stride pool: a following "
            "maxpool stage of size=pool, fused, without the full-size map in memory; 0: none",
    .offset = offsetof (ConvConfig, pool) },
  ST_ACTIVATION_PARAM_SPECS (ConvConfig),
};

ST_DECLARE_FORWARD (conv);
ST_DECLARE_BACKWARD (conv);
static void conv_finalize (StStage *stage);

static const StKind conv_kind = {
  ST_KIND_HEADER,
  .name = "conv2d",
  .summary = "2-D convolution layer (im2col + OpenBLAS SGEMM), with groups, dilation and fused activation",
  .category = ST_CATEGORY_LAYER,
  .rank = 10,
  .min_inputs = 1,
  .max_inputs = 1,
  .params = conv_params,
  .n_params = G_N_ELEMENTS (conv_params),
  .config_size = sizeof (ConvConfig),
  .infer = conv_infer,
  .forward = conv_forward,
  .backward = conv_backward,
  /* Every block writes its pixels of all channels; backward clears din
   * itself before adding into it. */
  .flags = ST_KIND_WRITES_ALL,
  .finalize = conv_finalize,
};

ST_PLUGIN_DEFINE (&conv_kind)

/* ---- Geometry and state --------------------------------------------------- */

typedef struct {
  int n, c1, h1, w1;           /* input */
  int c2, h2, w2;              /* output */
  int kh, kw, sh, sw, dh, dw;
  int pt, pb, pl, pr;          /* padding before/after, rows and columns */
  int groups;
  int cg, mg, kg;              /* per group: input channels, filters, col rows (cg·kh·kw) */
  gboolean pointwise;          /* 1×1, stride 1, no padding: col = input */
  int pool;                    /* fused max pooling window, 0 for none */
  int h3, w3;                  /* the pooled output: h2 / pool, w2 / pool (h2, w2 without) */
} Geom;

/* Maps with rows shorter than this (and no more pixels than SMALL_MAP) are
 * packed through a table of taps, one loop per plane instead of per row;
 * longer rows are copied as rows (measured on 3- and 11-pixel rows). */
#define SMALL_ROW 8
#define SMALL_MAP 1024

/* One task's scratch, kept between calls. */
typedef struct {
  float *col;                  /* [kg, cols]: im2col of one group */
  float *tmp;                  /* [c2, cols]: GEMM output, or dz in backward */
  float *dcol;                 /* [kg, cols]: the col gradient */
  float *dw;                   /* [c2, kg]: this task's weight gradient (tasks > 0) */
  float *db;                   /* [c2] */
  float *halo;                 /* [2, c1, halo rows, w1]: input-gradient rows shared with other tasks */
  float *row;                  /* [c2, h2·w2]: one image's output gradient (register tiles),
                                * or its unpooled output (pool=, forward) */
  float *pre;                  /* like tmp or row: the values before the activation (pool=) */
  float *pooled;               /* [c2, h3·w3]: one image's pooled output gradient (pool=) */
  gsize col_n, tmp_n, dcol_n, dw_n, db_n, halo_n, row_n, pre_n, pooled_n;
} Work;

typedef struct {
  Geom g;
  int weight, bias;            /* parameter indices; bias -1 without one */
  float *pre;                  /* pre-activation output, kept only when the activation's backward needs it;
                                * with pool=, at each window's maximum */
  gsize pre_n;
  /* pool=: each output's maximum, as an index in its h2×w2 plane; where
   * the blocks are pieces of images (large maps), the forward writes the
   * whole unpooled output (and its pre-activation values) to full and
   * full_pre and pools it after, and the backward unpools the gradient
   * into full_dout. */
  gint32 *argmax;
  gsize argmax_n;
  float *full, *full_pre, *full_dout;
  gsize full_n, full_pre_n, full_dout_n;
  gboolean pooled_via_full;
  gboolean pooled_by_tiles;    /* the forward took the tiles: argmax as tile_pools_sums () says */
  /* Small maps: for tap t and output pixel q, the input pixel it reads
   * (offset in the plane), or -1 for padding; [kh·kw, H2·W2].  NULL for
   * large maps, whose rows are long enough to copy as rows. */
  int *taps;
  Work *work;
  int n_work;
  /* Training: the col matrices of the last forward, every block's, for its
   * backward; valid for the plan they were packed under. */
  float *cols;
  gsize cols_n;
  gboolean cols_valid, cols_split;
  int cols_blocks, cols_per_block;
  /* Register tiles (tiles.c), where the geometry takes them: a call
   * covers tile_images images side by side in padded input planes
   * [c1, hp, wp] each; offsets of tap k = (c·kh + i)·kw + j, of each
   * output pixel's window in those planes, of the same pixel in the
   * input-gradient planes (tile_din_rows () pixels an image), and of tap
   * (i, j) there.  NULL where the layer does not take tiles. */
  int *tile_koff, *tile_pix, *tile_pix_din, *tile_tapoff;
  int tile_images;
  gboolean tile_windows;       /* the pixels of pooling windows only (tile_pools_sums ()) */
  int tile_hw;                 /* pixels an image in the tables */
  float *tile_w;               /* the weights, reordered for the call */
  gsize tile_w_n;
} Conv;

static void
work_clear (Work *w)
{
  g_free (w->col);
  g_free (w->tmp);
  g_free (w->dcol);
  g_free (w->dw);
  g_free (w->db);
  g_free (w->halo);
  g_free (w->pre);
  g_free (w->pooled);
  g_free (w->row);
  memset (w, 0, sizeof *w);
}

static void
conv_free (Conv *cv)
{
  if (!cv)
    return;
  for (int i = 0; i < cv->n_work; i++)
    work_clear (&cv->work[i]);
  g_free (cv->work);
  g_free (cv->pre);
  g_free (cv->argmax);
  g_free (cv->full);
  g_free (cv->full_pre);
  g_free (cv->full_dout);
  g_free (cv->taps);
  g_free (cv->cols);
  g_free (cv->tile_koff);
  g_free (cv->tile_pix);
  g_free (cv->tile_pix_din);
  g_free (cv->tile_tapoff);
  g_free (cv->tile_w);
  g_free (cv);
}

static void
conv_finalize (StStage *stage)
{
  g_clear_pointer ((Conv **) &stage->priv, conv_free);
}

/* A buffer of at least n floats; contents are not kept.  NULL when the
 * memory cannot be had: the unrolled input of a wide kernel over many
 * channels can ask for far more than the tensors around it. */
static void *
scratch_bytes (void **buf, gsize *have, gsize n, gsize size)
{
  if (*have < n)
    {
      free (*buf);
      /* Cache-line aligned: the register tiles' 64-byte rows would
       * otherwise each straddle two lines (malloc aligns to 16, a large
       * block to 16 past a page), which halved a layer's speed.  g_free ()
       * frees it like the rest: GLib allocates with malloc. */
      if (n > G_MAXSIZE / size || posix_memalign (buf, 64, n * size) != 0)
        *buf = NULL;
      *have = *buf ? n : 0;
    }
  return *buf;
}

static float *
scratch (float **buf, gsize *have, gsize n)
{
  return scratch_bytes ((void **) buf, have, n, sizeof (float));
}

/* scratch() for the argmax of pool=. */
static gint32 *
scratch_index (gint32 **buf, gsize *have, gsize n)
{
  return scratch_bytes ((void **) buf, have, n, sizeof (gint32));
}

static gboolean
scratch_failed (const Geom *g, gsize floats, int tasks, GError **error)
{
  g_set_error (error, ST_ERROR, ST_ERROR_MEMORY,
               "out of memory for %" G_GUINT64_FORMAT " MB of working space per thread "
               "(%d threads): the input unrolled for a %dx%d kernel over %d channels",
               (guint64) floats * sizeof (float) / 1000000, tasks, g->kh, g->kw, g->c1 / g->groups);
  return FALSE;
}

/* The i-th value of a list given as one value or two. */
static int
pick (const StIntList *l, int i)
{
  return l->values[l->n == 1 ? 0 : i];
}

/* Padding before and after along one axis. */
static void
axis_padding (int padding, int in, int k, int s, int d, int *before, int *after)
{
  if (padding == PADDING_SAME)
    st_same_padding (in, k, s, d, before, after);
  else if (padding == PADDING_VALID)
    *before = *after = 0;
  else
    *before = *after = padding;
}

static gboolean
check_list (const char *key, const StIntList *l, GError **error)
{
  if (l->n == 1 || l->n == 2)
    return TRUE;
  g_set_error (error, ST_ERROR, ST_ERROR_PIPELINE,
               "key '%s': expected one value or two (height,width), found %d", key, l->n);
  return FALSE;
}

/* ---- Register tiles: geometry ----------------------------------------------- */

/* Largest per-image buffer of the tiled path, in floats: past it (large
 * images) the blocks of im2col pieces suit the caches better. */
#define TILE_MAX_FLOATS (1 << 20)

static int
tile_hp (const Geom *g)
{
  return g->h1 + g->pt + g->pb;
}

static int
tile_wp (const Geom *g)
{
  return g->w1 + g->pl + g->pr;
}

/* Channels of the input gradient's pixel-major rows: the input's, in
 * sixteens (a first layer on grey or RGB images needs none, but any layer
 * may be asked), the weights zero past c1. */
static int
tile_din_channels (const Geom *g)
{
  return (g->c1 + 15) / 16 * 16;
}

/* Pixels of one image's transposed input gradient: the padded plane, then
 * room for the taps of a dummy pixel (the last tile's pixels past the end). */
static gsize
tile_din_rows (const Geom *g)
{
  return (gsize) tile_hp (g) * tile_wp (g) + (gsize) g->kh * tile_wp (g) + g->kw;
}

/* Output pixels a call aims for at least: on a 3×3 map one image would
 * leave most of a tile's work to its set-up. */
#define TILE_MIN_PIXELS 64

/* Images a call covers: enough for TILE_MIN_PIXELS where the buffers
 * allow, else 1; 0 where the geometry does not take tiles (dense stride-1
 * convolutions to filters in sixteens, on a CPU with AVX-512, whose
 * images fit the buffers). */
static int
tile_images (const Geom *g)
{
  const gsize plane = (gsize) tile_hp (g) * tile_wp (g), hw = (gsize) g->h2 * g->w2;
  if (!(g->groups == 1 && g->sh == 1 && g->sw == 1 && g->dh == 1 && g->dw == 1
        && g->c2 % 16 == 0 && !g->pointwise
        && ((gsize) g->kg + CONV_TILE_SLACK) * g->c2 <= TILE_MAX_FLOATS
        && conv_tiles_supported ()))
    return 0;
  for (gsize images = MAX (1, (TILE_MIN_PIXELS + hw - 1) / hw); images > 0; images /= 2)
    if (images * plane * g->c1 <= TILE_MAX_FLOATS
        && (images * hw + CONV_TILE_SLACK) * g->c2 <= TILE_MAX_FLOATS
        && images * tile_din_rows (g) * tile_din_channels (g) <= TILE_MAX_FLOATS)
      return (int) images;
  return 0;
}

/* Whether the tiled path pools the pixel-major sums itself (tiles.h):
 * for relu and no activation.  Its tables then list only the pixels
 * under a window, window by window (tile_tables ()), and argmax holds
 * each maximum's row among them, per image [h3·w3][c2]; for the other
 * activations the planes are pooled, and argmax is laid out as the
 * output. */
static gboolean
tile_pools_sums (StActivation act)
{
  return act == ST_ACT_NONE || act == ST_ACT_RELU;
}

static void
tile_tables (Conv *cv, gboolean windows)
{
  const Geom *g = &cv->g;
  g_clear_pointer (&cv->tile_koff, g_free);
  g_clear_pointer (&cv->tile_pix, g_free);
  g_clear_pointer (&cv->tile_pix_din, g_free);
  g_clear_pointer (&cv->tile_tapoff, g_free);
  cv->tile_images = tile_images (g);
  if (!cv->tile_images)
    return;
  const int hp = tile_hp (g), wp = tile_wp (g), images = cv->tile_images;
  cv->tile_koff = g_new (int, g->kg);
  for (int c = 0; c < g->c1; c++)
    for (int i = 0; i < g->kh; i++)
      for (int j = 0; j < g->kw; j++)
        cv->tile_koff[(c * g->kh + i) * g->kw + j] = (c * hp + i) * wp + j;
  /* The output pixels in row order; pooling from the sums, only those
   * under a window (the rows and columns that flooring leaves out feed
   * nothing, and their gradient is zero), window by window. */
  const int k = g->pool, ow = g->w3;
  cv->tile_windows = windows;
  cv->tile_hw = windows ? g->h3 * g->w3 * k * k : g->h2 * g->w2;
  const int hw = cv->tile_hw;
  cv->tile_pix = g_new (int, images * hw);
  cv->tile_pix_din = g_new (int, images * hw);
  for (int n = 0; n < images; n++)
    for (int p = 0; p < hw; p++)
      {
        int y = p / g->w2, x = p % g->w2;
        if (windows)
          {
            int q = p / (k * k), i = p % (k * k);
            y = q / ow * k + i / k;
            x = q % ow * k + i % k;
          }
        int window = y * wp + x;
        cv->tile_pix[n * hw + p] = n * g->c1 * hp * wp + window;
        cv->tile_pix_din[n * hw + p] = n * (int) tile_din_rows (g) + window;
      }
  cv->tile_tapoff = g_new (int, g->kh * g->kw);
  for (int i = 0; i < g->kh; i++)
    for (int j = 0; j < g->kw; j++)
      cv->tile_tapoff[i * g->kw + j] = i * wp + j;
}

static gboolean
conv_infer (StStage *stage, GError **error)
{
  const ConvConfig *cfg = stage->config;
  StShape in = stage->in_shapes[0];

  if (!check_list ("size", &cfg->size, error) || !check_list ("stride", &cfg->stride, error)
      || !check_list ("dilation", &cfg->dilation, error))
    return FALSE;
  if (in.n <= 0 || in.c <= 0 || in.h <= 0 || in.w <= 0)
    {
      char buf[64];
      g_set_error (error, ST_ERROR, ST_ERROR_SHAPE, "input %s is empty",
                   st_shape_format (in, buf, sizeof buf));
      return FALSE;
    }
  if (in.c % cfg->groups != 0)
    {
      g_set_error (error, ST_ERROR, ST_ERROR_SHAPE,
                   "%d input channels are not divisible by groups=%d", in.c, cfg->groups);
      return FALSE;
    }
  if (cfg->filters % cfg->groups != 0)
    {
      g_set_error (error, ST_ERROR, ST_ERROR_SHAPE,
                   "filters=%d is not divisible by groups=%d", cfg->filters, cfg->groups);
      return FALSE;
    }

  Geom g = {
    .n = in.n, .c1 = in.c, .h1 = in.h, .w1 = in.w, .c2 = cfg->filters,
    .kh = pick (&cfg->size, 0), .kw = pick (&cfg->size, 1),
    .sh = pick (&cfg->stride, 0), .sw = pick (&cfg->stride, 1),
    .dh = pick (&cfg->dilation, 0), .dw = pick (&cfg->dilation, 1),
    .groups = cfg->groups,
  };
  axis_padding (cfg->padding, g.h1, g.kh, g.sh, g.dh, &g.pt, &g.pb);
  axis_padding (cfg->padding, g.w1, g.kw, g.sw, g.dw, &g.pl, &g.pr);

  /* 64-bit: padding may be up to 65536 on an image near INT_MAX wide. */
  gint64 ph = (gint64) g.h1 + g.pt + g.pb, pw = (gint64) g.w1 + g.pl + g.pr;
  gint64 eh = (gint64) g.dh * (g.kh - 1) + 1, ew = (gint64) g.dw * (g.kw - 1) + 1;
  if (ph < eh || pw < ew)
    {
      if (g.dh > 1 || g.dw > 1)
        g_set_error (error, ST_ERROR, ST_ERROR_SHAPE,
                     "kernel %dx%d dilated by %dx%d spans %" G_GINT64_FORMAT "x%" G_GINT64_FORMAT
                     ", larger than the padded input %" G_GINT64_FORMAT "x%" G_GINT64_FORMAT,
                     g.kh, g.kw, g.dh, g.dw, eh, ew, ph, pw);
      else
        g_set_error (error, ST_ERROR, ST_ERROR_SHAPE,
                     "kernel %dx%d is larger than the padded input %" G_GINT64_FORMAT
                     "x%" G_GINT64_FORMAT, g.kh, g.kw, ph, pw);
      return FALSE;
    }
  gint64 h2 = (ph - eh) / g.sh + 1, w2 = (pw - ew) / g.sw + 1;
  gint64 k = (gint64) in.c / g.groups * g.kh * g.kw;
  if (h2 * w2 > G_MAXINT || k > G_MAXINT / 64)
    {
      g_set_error (error, ST_ERROR, ST_ERROR_SHAPE, "output of %" G_GINT64_FORMAT "x%"
                   G_GINT64_FORMAT " pixels from %" G_GINT64_FORMAT " taps is too large",
                   h2, w2, k);
      return FALSE;
    }
  g.h2 = (int) h2;
  g.w2 = (int) w2;
  g.cg = g.c1 / g.groups;
  g.mg = g.c2 / g.groups;
  g.kg = (int) k;
  g.pointwise = g.kh == 1 && g.kw == 1 && g.sh == 1 && g.sw == 1
                && g.pt == 0 && g.pb == 0 && g.pl == 0 && g.pr == 0;
  g.pool = cfg->pool > 1 ? cfg->pool : 0;
  g.h3 = g.pool ? g.h2 / g.pool : g.h2;
  g.w3 = g.pool ? g.w2 / g.pool : g.w2;
  if (g.h3 == 0 || g.w3 == 0)
    {
      g_set_error (error, ST_ERROR, ST_ERROR_SHAPE,
                   "pool=%d needs a map of at least %dx%d; the convolution gives %dx%d",
                   g.pool, g.pool, g.pool, g.h2, g.w2);
      return FALSE;
    }

  Conv *cv = stage->priv;
  if (!cv)
    {
      cv = g_new0 (Conv, 1);
      cv->bias = -1;
      stage->priv = cv;
    }
  cv->g = g;
  cv->cols_valid = FALSE;
  g_clear_pointer (&cv->taps, g_free);
  tile_tables (cv, g.pool && tile_pools_sums (cfg->activation));
  if (g.w2 < SMALL_ROW && (gint64) g.h2 * g.w2 <= SMALL_MAP)
    {
      int hw = g.h2 * g.w2;
      cv->taps = g_new (int, g.kh * g.kw * hw);
      for (int i = 0; i < g.kh; i++)
        for (int j = 0; j < g.kw; j++)
          for (int y = 0; y < g.h2; y++)
            for (int x = 0; x < g.w2; x++)
              {
                int iy = y * g.sh - g.pt + i * g.dh, ix = x * g.sw - g.pl + j * g.dw;
                gboolean inside = iy >= 0 && iy < g.h1 && ix >= 0 && ix < g.w1;
                cv->taps[(i * g.kw + j) * hw + y * g.w2 + x] = inside ? iy * g.w1 + ix : -1;
              }
    }

  /* He/Kaiming uniform for ReLU nets; PyTorch's default bias bound. */
  int wdims[4] = { g.c2, g.cg, g.kh, g.kw };
  cv->weight = st_stage_declare_param (stage, "weight", wdims, 4, ST_INIT_HE_UNIFORM, 0, TRUE, error);
  if (cv->weight < 0)
    return FALSE;
  if (cfg->bias)
    {
      cv->bias = st_stage_declare_param (stage, "bias", &g.c2, 1, ST_INIT_UNIFORM,
                                         1.0 / sqrt ((double) g.kg), TRUE, error);
      if (cv->bias < 0)
        return FALSE;
    }

  stage->out_shape = (StShape) { g.n, g.c2, g.h3, g.w3 };
  stage->floored = (ph - eh) % g.sh != 0 || (pw - ew) % g.sw != 0
                   || (g.pool && (g.h2 % g.pool != 0 || g.w2 % g.pool != 0));
  stage->macs = (double) g.n * g.c2 * g.h2 * g.w2 * (double) g.kg;
  /* Strips line up with the input only at stride 1 with the kernel centred
   * ('same', or N = the dilated radius on both sides); otherwise the runner
   * must hand over the whole image. */
  gboolean aligned = g.sh == 1 && g.sw == 1
                     && g.pt + g.pb == eh - 1 && g.pt == (eh - 1) / 2
                     && g.pl + g.pr == ew - 1 && g.pl == (ew - 1) / 2;
  stage->halo = aligned && !g.pool ? MAX (MAX (g.pt, g.pb), MAX (g.pl, g.pr)) : ST_HALO_WHOLE;
  return TRUE;
}

/* ---- Blocks of output pixels ------------------------------------------------ *
 * Pixels are numbered over the batch, p = n·H2·W2 + y·W2 + x.  A block is
 * either whole images [n0, n1) or a piece of one image; the first kind needs
 * its GEMM output scattered to NCHW, the second writes in place. */

/* Columns of col a block aims for: wide enough for an efficient GEMM, small
 * enough that col stays in L2. */
#define COL_BUDGET (256 * 1024)
#define MIN_COLS 256
#define MAX_COLS 2048
/* Floats of col and tmp a task may hold however large the kernel: a
 * 1024x1024 kernel over three channels would otherwise unroll MIN_COLS
 * columns of 3M taps, 3.2 GB per thread.  Such kernels get narrower blocks. */
#define SCRATCH_CAP (16 * 1024 * 1024)
/* Multiply-adds a task must have to be worth waking a thread for. */
#define MIN_TASK_MACS 400000.0
/* Tasks per thread, at least, when there is work for them: the pool hands
 * them out as threads become free, so a thread the system deschedules
 * holds up one small task instead of its whole share. */
#define TASKS_PER_THREAD 4

typedef struct {
  gsize hw;                    /* pixels per image */
  gboolean split;              /* blocks are pieces of images */
  int per_block;               /* images per block (!split) or pieces per image (split) */
  int n_blocks;
  int n_tasks;
} Plan;

typedef struct {
  gsize p0, p1;                /* pixels */
  int n0, n1;                  /* images touched */
  gsize q0;                    /* first pixel within image n0 */
  int index;
} Block;

static Plan
plan_blocks (const Geom *g, const StRunContext *ctx)
{
  Plan pl = { .hw = (gsize) g->h2 * g->w2 };
  gsize target = CLAMP (COL_BUDGET / (gsize) g->kg, MIN_COLS, MAX_COLS);
  target = MAX (1, MIN (target, SCRATCH_CAP / ((gsize) g->kg + g->c2)));
  double macs = (double) g->n * pl.hw * g->kg * g->c2;
  int threads = MAX (1, (int) MIN (st_parallel_threads (ctx), macs / MIN_TASK_MACS));
  int tasks = threads == 1 ? 1
              : MAX (threads, (int) MIN (threads * TASKS_PER_THREAD, macs / MIN_TASK_MACS));

  if (pl.hw * 2 >= target)
    {
      pl.split = TRUE;
      gsize pieces = (pl.hw + target - 1) / target;
      if ((gsize) g->n * pieces < (gsize) tasks)
        pieces = MIN (((gsize) tasks + g->n - 1) / g->n, pl.hw);
      pl.per_block = (int) pieces;
      pl.n_blocks = g->n * pl.per_block;
    }
  else
    {
      int per = (int) MAX (target / pl.hw, 1);
      per = MIN (per, (g->n + tasks - 1) / tasks);
      pl.per_block = per;
      pl.n_blocks = (g->n + per - 1) / per;
    }
  /* One block a task where that is not many more than asked for. */
  pl.n_tasks = pl.n_blocks <= 2 * tasks ? pl.n_blocks : tasks;
  return pl;
}

static Block
block_at (const Plan *pl, int b, int n_images)
{
  Block k;
  k.index = b;
  if (pl->split)
    {
      int piece = b % pl->per_block;
      k.n0 = b / pl->per_block;
      k.n1 = k.n0 + 1;
      k.q0 = pl->hw * piece / pl->per_block;
      gsize q1 = pl->hw * (piece + 1) / pl->per_block;
      k.p0 = (gsize) k.n0 * pl->hw + k.q0;
      k.p1 = (gsize) k.n0 * pl->hw + q1;
    }
  else
    {
      k.n0 = b * pl->per_block;
      k.n1 = MIN (k.n0 + pl->per_block, n_images);
      k.q0 = 0;
      k.p0 = (gsize) k.n0 * pl->hw;
      k.p1 = (gsize) k.n1 * pl->hw;
    }
  return k;
}

/* Output columns x with 0 ≤ x·s + off < w1: [*lo, *hi). */
static void
valid_span (int off, int s, int w1, int w2, int *lo, int *hi)
{
  int a = off >= 0 ? 0 : (-off + s - 1) / s;
  int b = w1 - off <= 0 ? 0 : (w1 - off + s - 1) / s;
  *lo = MIN (a, w2);
  *hi = CLAMP (b, *lo, w2);
}

/* Floats of slack after a col buffer, for im2col's fixed-size row copies. */
#define ROW_BURST 16

/* im2col of the whole images [n0, n1) at column stride 1: every row of a
 * tap has the same valid columns, so the rows are copied with no
 * per-segment bookkeeping (which cost more than the copies on 11-pixel
 * rows).  Same layout as im2col. */
static void
im2col_rows (float *restrict col, const float *restrict in, const float *in_end, const Geom *g,
             int c0, int n0, int n1)
{
  const gsize plane = (gsize) g->h1 * g->w1;
  const int w2 = g->w2;
  float *restrict dst = col;
  for (int c = 0; c < g->cg; c++)
    for (int i = 0; i < g->kh; i++)
      for (int j = 0; j < g->kw; j++)
        {
          const int xoff = j * g->dw - g->pl, yoff = i * g->dh - g->pt;
          int lo, hi, ylo, yhi;
          valid_span (xoff, 1, g->w1, w2, &lo, &hi);
          valid_span (yoff, g->sh, g->h1, g->h2, &ylo, &yhi);
          const gboolean burst = lo == 0 && hi == w2 && w2 <= ROW_BURST;
          for (int n = n0; n < n1; n++)
            {
              const float *src = in + ((gsize) n * g->c1 + c0 + c) * plane;
              int y = 0;
              for (; y < ylo; y++, dst += w2)
                for (int x = 0; x < w2; x++)
                  dst[x] = 0.0f;
              for (; y < yhi; y++, dst += w2)
                {
                  const float *restrict s = src + (gsize) (y * g->sh + yoff) * g->w1 + xoff;
                  if (burst && s + ROW_BURST <= in_end)
                    {
                      /* The tail is overwritten by the next row, or lands
                       * in the slack after col. */
                      memcpy (dst, s, sizeof (float) * ROW_BURST);
                      continue;
                    }
                  for (int x = 0; x < lo; x++)
                    dst[x] = 0.0f;
                  for (int x = lo; x < hi; x++)
                    dst[x] = s[x];
                  for (int x = hi; x < w2; x++)
                    dst[x] = 0.0f;
                }
              for (; y < g->h2; y++, dst += w2)
                for (int x = 0; x < w2; x++)
                  dst[x] = 0.0f;
            }
        }
}

/* col[k][p − p0] for the pixels [p0, p1) and the group's input channels
 * from c0: row k = (c·kh + i)·kw + j is tap (i, j) of channel c.  Rows of
 * small maps are a few pixels long (11 for the second conv of an MNIST
 * net), so the walk keeps (n, y, x) as counters instead of dividing per
 * segment, and a short row is one fixed-size copy rather than a loop. */
static void
im2col (float *restrict col, const float *restrict in, const float *in_end, const Geom *g,
        int c0, gsize p0, gsize p1)
{
  const gsize hw2 = (gsize) g->h2 * g->w2, plane = (gsize) g->h1 * g->w1;
  const int n_start = (int) (p0 / hw2);
  const int y_start = (int) (p0 % hw2 / g->w2), x_start = (int) (p0 % hw2 % g->w2);
  if (g->sw == 1 && p0 % hw2 == 0 && p1 % hw2 == 0)
    {
      im2col_rows (col, in, in_end, g, c0, (int) (p0 / hw2), (int) (p1 / hw2));
      return;
    }
  float *restrict dst = col;
  for (int c = 0; c < g->cg; c++)
    for (int i = 0; i < g->kh; i++)
      for (int j = 0; j < g->kw; j++)
        {
          const int xoff = j * g->dw - g->pl, yoff = i * g->dh - g->pt;
          int lo, hi;
          valid_span (xoff, g->sw, g->w1, g->w2, &lo, &hi);
          int n = n_start, y = y_start, x = x_start;
          for (gsize p = p0; p < p1;)
            {
              int xe = (int) MIN ((gsize) g->w2, x + (p1 - p));
              int iy = y * g->sh + yoff;
              float *restrict d = dst - x;
              if (iy < 0 || iy >= g->h1)
                for (int xx = x; xx < xe; xx++)
                  d[xx] = 0.0f;
              else
                {
                  const float *restrict src = in + ((gsize) n * g->c1 + c0 + c) * plane
                                              + (gsize) iy * g->w1 + xoff;
                  int a = CLAMP (lo, x, xe), b = CLAMP (hi, a, xe);
                  if (g->sw == 1 && a == x && b == xe && xe - x <= ROW_BURST
                      && src + x + ROW_BURST <= in_end)
                    {
                      /* A short row wholly inside: one fixed-size copy,
                       * whose tail the next row (or the slack after col)
                       * overwrites, instead of a loop of a few trips. */
                      memcpy (d + x, src + x, sizeof (float) * ROW_BURST);
                      goto next;
                    }
                  for (int xx = x; xx < a; xx++)
                    d[xx] = 0.0f;
                  if (g->sw == 1)
                    for (int xx = a; xx < b; xx++)
                      d[xx] = src[xx];
                  else
                    for (int xx = a; xx < b; xx++)
                      d[xx] = src[(gsize) xx * g->sw];
                  for (int xx = b; xx < xe; xx++)
                    d[xx] = 0.0f;
                }
            next:
              dst += xe - x;
              p += xe - x;
              x = 0;
              if (++y == g->h2)
                {
                  y = 0;
                  n++;
                }
            }
        }
}

/* im2col for the whole images [n0, n1) of a small map, through the tap
 * table: one short loop per plane and tap. */
static void
im2col_taps (float *restrict col, const float *restrict in, const Geom *g, const int *taps,
             int c0, int n0, int n1)
{
  const int hw = g->h2 * g->w2;
  const gsize plane = (gsize) g->h1 * g->w1;
  float *restrict dst = col;
  for (int c = 0; c < g->cg; c++)
    for (int t = 0; t < g->kh * g->kw; t++)
      {
        const int *restrict tap = taps + (gsize) t * hw;
        for (int n = n0; n < n1; n++, dst += hw)
          {
            const float *restrict src = in + ((gsize) n * g->c1 + c0 + c) * plane;
            for (int q = 0; q < hw; q++)
              {
                /* Branch-free: a padding tap reads the plane's first pixel
                 * and keeps zero. */
                int o = tap[q];
                float v = src[o < 0 ? 0 : o];
                dst[q] = o < 0 ? 0.0f : v;
              }
          }
      }
}

/* The adjoint of im2col_taps. */
static void
col2im_taps_add (float *restrict grad_in, const float *restrict col, const Geom *g,
                 const int *taps, int c0, int n0, int n1)
{
  const int hw = g->h2 * g->w2;
  const gsize plane = (gsize) g->h1 * g->w1;
  const float *restrict src = col;
  for (int c = 0; c < g->cg; c++)
    for (int t = 0; t < g->kh * g->kw; t++)
      {
        const int *restrict tap = taps + (gsize) t * hw;
        for (int n = n0; n < n1; n++, src += hw)
          {
            float *restrict dst = grad_in + ((gsize) n * g->c1 + c0 + c) * plane;
            for (int q = 0; q < hw; q++)
              if (tap[q] >= 0)
                dst[tap[q]] += src[q];
          }
      }
}

/* Rows [r0, r1) of the input gradient of image n that another task also
 * adds into: kept apart in buf, [c1, halo_rows (g), w1], and added to the
 * gradient after all tasks, in task order, so that the sums do not depend
 * on which task finishes first.  r0 == r1: none. */
typedef struct {
  int n, r0, r1;
  float *buf;
} Halo;

/* Input rows that one output row's taps reach, at most. */
static int
halo_rows (const Geom *g)
{
  return (g->kh - 1) * g->dh + 1;
}

/* The input-gradient row (n, c, iy), in a task's halo when shared. */
static float *
din_row (float *grad_in, const Halo *halo, const Geom *g, int n, int c, int iy)
{
  for (int h = 0; halo && h < 2; h++)
    if (n == halo[h].n && iy >= halo[h].r0 && iy < halo[h].r1)
      return halo[h].buf + ((gsize) c * halo_rows (g) + (iy - halo[h].r0)) * g->w1;
  return grad_in + ((gsize) n * g->c1 + c) * g->h1 * g->w1 + (gsize) iy * g->w1;
}

/* The adjoint of im2col_rows, into grad_in directly.  Each input pixel
 * gets its terms in the same order as from col2im_add. */
static void
col2im_rows_add (float *restrict grad_in, const float *restrict col, const Geom *g,
                 int c0, int n0, int n1)
{
  const gsize plane = (gsize) g->h1 * g->w1;
  const int w2 = g->w2;
  const float *restrict src = col;
  for (int c = 0; c < g->cg; c++)
    for (int i = 0; i < g->kh; i++)
      for (int j = 0; j < g->kw; j++)
        {
          const int xoff = j * g->dw - g->pl, yoff = i * g->dh - g->pt;
          int lo, hi, ylo, yhi;
          valid_span (xoff, 1, g->w1, w2, &lo, &hi);
          valid_span (yoff, g->sh, g->h1, g->h2, &ylo, &yhi);
          for (int n = n0; n < n1; n++)
            {
              float *dst = grad_in + ((gsize) n * g->c1 + c0 + c) * plane;
              src += (gsize) ylo * w2;
              for (int y = ylo; y < yhi; y++, src += w2)
                {
                  float *restrict d = dst + (gsize) (y * g->sh + yoff) * g->w1 + xoff;
                  for (int x = lo; x < hi; x++)
                    d[x] += src[x];
                }
              src += (gsize) (g->h2 - yhi) * w2;
            }
        }
}

/* The adjoint of im2col: grad_in += each col entry at the pixel it came
 * from (or in halo, when shared with another task; halo may be NULL). */
static void
col2im_add (float *restrict grad_in, const Halo *halo, const float *restrict col, const Geom *g,
            int c0, gsize p0, gsize p1)
{
  const gsize hw2 = (gsize) g->h2 * g->w2;
  const int n_start = (int) (p0 / hw2);
  const int y_start = (int) (p0 % hw2 / g->w2), x_start = (int) (p0 % hw2 % g->w2);
  /* Whole images are never in a halo (halos are rows of images split
   * between tasks). */
  if (g->sw == 1 && p0 % hw2 == 0 && p1 % hw2 == 0
      && (!halo || (halo[0].r0 == halo[0].r1 && halo[1].r0 == halo[1].r1)))
    {
      col2im_rows_add (grad_in, col, g, c0, (int) (p0 / hw2), (int) (p1 / hw2));
      return;
    }
  const float *restrict src = col;
  for (int c = 0; c < g->cg; c++)
    for (int i = 0; i < g->kh; i++)
      for (int j = 0; j < g->kw; j++)
        {
          const int xoff = j * g->dw - g->pl, yoff = i * g->dh - g->pt;
          int lo, hi;
          valid_span (xoff, g->sw, g->w1, g->w2, &lo, &hi);
          int n = n_start, y = y_start, x = x_start;
          for (gsize p = p0; p < p1;)
            {
              int xe = (int) MIN ((gsize) g->w2, x + (p1 - p));
              int iy = y * g->sh + yoff;
              if (iy >= 0 && iy < g->h1)
                {
                  float *restrict d = din_row (grad_in, halo, g, n, c0 + c, iy) + xoff;
                  const float *restrict s = src - x;
                  int a = CLAMP (lo, x, xe), b = CLAMP (hi, a, xe);
                  if (g->sw == 1)
                    for (int xx = a; xx < b; xx++)
                      d[xx] += s[xx];
                  else
                    for (int xx = a; xx < b; xx++)
                      d[(gsize) xx * g->sw] += s[xx];
                }
              src += xe - x;
              p += xe - x;
              x = 0;
              if (++y == g->h2)
                {
                  y = 0;
                  n++;
                }
            }
        }
}

static Work *
task_work (Conv *cv, int n_tasks)
{
  if (cv->n_work < n_tasks)
    {
      cv->work = g_renew (Work, cv->work, n_tasks);
      memset (cv->work + cv->n_work, 0, sizeof (Work) * (n_tasks - cv->n_work));
      cv->n_work = n_tasks;
    }
  return cv->work;
}

/* ---- Forward ---------------------------------------------------------------- */

typedef struct {
  Conv *cv;
  const Plan *pl;
  const float *in;             /* [N, C1, H1, W1] */
  const float *in_end;
  const float *w;              /* [C2, C1/G, kh, kw] */
  const float *b;              /* [C2] or NULL */
  float *out;                  /* [N, C2, H2, W2] */
  float *pre;                  /* like out, or NULL */
  float *cols;                 /* where to keep the col matrices for backward, or NULL */
  gint32 *argmax;              /* pool=, blocks of whole images: out is pooled, argmax like it */
  StActivation act;
  float slope;
} FwdJob;

/* dst = act(src + b) over one row of one channel; src may be dst. */
static void
epilogue (float *dst, float *pre, const float *src, gsize n, float b,
          StActivation act, float slope)
{
  for (gsize i = 0; i < n; i++)
    dst[i] = src[i] + b;
  if (pre)
    memcpy (pre, dst, sizeof (float) * n);
  st_activation_forward (act, slope, dst, dst, n);
}

/* Σ x in 16 float lanes (which vectorise, where one double chain would
 * wait on every add), the lanes then summed in double. */
static double
sum_floats (const float *restrict x, gsize n)
{
  float lane[16] = { 0 };
  gsize i = 0;
  for (; i + 16 <= n; i += 16)
    for (int l = 0; l < 16; l++)
      lane[l] += x[i + l];
  double s = 0.0;
  for (int l = 0; l < 16; l++)
    s += lane[l];
  for (; i < n; i++)
    s += x[i];
  return s;
}

/* ---- Fused max pooling (pool=) ---------------------------------------------- *
 * A task pools the unpooled output of its images while it is still in
 * cache, and unpools the gradient of each image just before using it:
 * the full-size map and its gradient never go through memory. */

/* Image n's c2 unpooled planes, ch_stride apart in full (and full_pre),
 * pooled into out, argmax and pre, laid out as the output [N, c2, h3, w3];
 * pre gets the pre-activation value at each maximum (NULL: not kept). */
static void
pool_image (const Geom *g, int n, const float *full, const float *full_pre, gsize ch_stride,
            float *out, gint32 *argmax, float *pre)
{
  const gsize ohw = (gsize) g->h3 * g->w3, at = (gsize) n * g->c2 * ohw;
  st_maxpool_tiles_forward (out + at, argmax + at, ohw, full, ch_stride, g->c2, g->h2, g->w2,
                            g->pool);
  if (!pre)
    return;
  for (int m = 0; m < g->c2; m++)
    for (gsize i = 0; i < ohw; i++)
      pre[at + m * ohw + i] = full_pre[m * ch_stride + argmax[at + m * ohw + i]];
}

/* pooled = image n's pooled output gradient through the activation,
 * dout ⊙ act' [c2, h3·w3]; db (or NULL) gets each channel's sum. */
static void
pooled_grad (const Geom *g, int n, const float *out, const float *pre, const float *dout,
             StActivation act, float slope, float *pooled, float *db)
{
  const gsize ohw = (gsize) g->h3 * g->w3, at = (gsize) n * g->c2 * ohw;
  st_activation_backward_into (act, slope, pre ? pre + at : NULL, out + at, dout + at, pooled,
                               g->c2 * ohw);
  for (int m = 0; db && m < g->c2; m++)
    db[m] += (float) sum_floats (pooled + m * ohw, ohw);
}

/* dz = the unpooled output gradient of image n, dout ⊙ act' at each
 * window's maximum and 0 elsewhere, as c2 planes ch_stride apart; db as
 * for pooled_grad ().  pooled: scratch of c2·h3·w3 floats. */
static void
unpool_image (const Geom *g, int n, const float *out, const float *pre, const float *dout,
              const gint32 *argmax, StActivation act, float slope, float *pooled, float *dz,
              gsize ch_stride, float *db)
{
  const gsize ohw = (gsize) g->h3 * g->w3, at = (gsize) n * g->c2 * ohw;
  pooled_grad (g, n, out, pre, dout, act, slope, pooled, db);
  st_maxpool_tiles_backward (dz, ch_stride, pooled, argmax + at, ohw, g->c2, g->h2, g->w2,
                             g->pool);
}


/* ---- Direct path for few taps ------------------------------------------------ *
 * With K = C/G·kh·kw small (a first layer on a grey image: K = 9) the GEMM
 * is a thin one that OpenBLAS runs far below its peak, and the pass that
 * adds the bias and scatters its output to NCHW costs as much again.  Up
 * to DIRECT_MAX_K taps the block's col is instead multiplied here, 32
 * output pixels of one filter at a time in registers, bias first and the
 * activation on the way out, straight into the output. */
#define DIRECT_MAX_K 27

#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && defined(__linux__)
#define DIRECT_LOOP __attribute__ ((target_clones ("arch=x86-64-v3", "default"), \
                                    optimize ("fp-contract=fast")))
#elif defined(__GNUC__) && !defined(__clang__)
#define DIRECT_LOOP __attribute__ ((optimize ("fp-contract=fast")))
#else
#define DIRECT_LOOP
#endif

#if defined(__GNUC__)
/* Eight floats, loaded and stored unaligned. */
typedef float Vf8 __attribute__ ((vector_size (32), aligned (4), may_alias));
typedef int Vi8 __attribute__ ((vector_size (32)));
#define HAVE_VF8 1
#endif

/* out[m][q] = act(b[m] + Σ_k w[m][k]·col[k][q]) for m < mg, q < len;
 * rows of out are ldo apart, of col ldc; pre (or NULL) gets the value
 * before the activation, laid out as out. */
DIRECT_LOOP static void
direct_gemm (float *restrict out, float *restrict pre, gsize ldo,
             const float *restrict col, gsize ldc, const float *restrict w,
             const float *restrict b, int mg, int kg, gsize len,
             StActivation act, float slope)
{
  gsize q0 = 0;
#ifdef HAVE_VF8
  for (; q0 + 32 <= len; q0 += 32)
    for (int m = 0; m < mg; m++)
      {
        const float *restrict wm = w + (gsize) m * kg;
        float bm = b ? b[m] : 0.0f;
        Vf8 a0 = { bm, bm, bm, bm, bm, bm, bm, bm }, a1 = a0, a2 = a0, a3 = a0;
        const float *c = col + q0;
        for (int k = 0; k < kg; k++, c += ldc)
          {
            float wk = wm[k];
            a0 += wk * *(const Vf8 *) c;
            a1 += wk * *(const Vf8 *) (c + 8);
            a2 += wk * *(const Vf8 *) (c + 16);
            a3 += wk * *(const Vf8 *) (c + 24);
          }
        float *o = out + (gsize) m * ldo + q0;
        if (pre)
          {
            float *p = pre + (gsize) m * ldo + q0;
            *(Vf8 *) p = a0;
            *(Vf8 *) (p + 8) = a1;
            *(Vf8 *) (p + 16) = a2;
            *(Vf8 *) (p + 24) = a3;
          }
        if (act == ST_ACT_RELU)
          {
            const Vf8 z = { 0 };
            a0 = (Vf8) ((Vi8) a0 & (a0 > z));
            a1 = (Vf8) ((Vi8) a1 & (a1 > z));
            a2 = (Vf8) ((Vi8) a2 & (a2 > z));
            a3 = (Vf8) ((Vi8) a3 & (a3 > z));
          }
        *(Vf8 *) o = a0;
        *(Vf8 *) (o + 8) = a1;
        *(Vf8 *) (o + 16) = a2;
        *(Vf8 *) (o + 24) = a3;
        if (act != ST_ACT_NONE && act != ST_ACT_RELU)
          st_activation_forward (act, slope, o, o, 32);
      }
#endif
  if (q0 == len)
    return;
  for (int m = 0; m < mg; m++)
    {
      const float *restrict wm = w + (gsize) m * kg;
      float bm = b ? b[m] : 0.0f;
      float *restrict o = out + (gsize) m * ldo;
      for (gsize q = q0; q < len; q++)
        o[q] = bm;
      for (int k = 0; k < kg; k++)
        {
          float wk = wm[k];
          const float *restrict c = col + (gsize) k * ldc;
          for (gsize q = q0; q < len; q++)
            o[q] += wk * c[q];
        }
      if (pre)
        memcpy (pre + (gsize) m * ldo + q0, o + q0, sizeof (float) * (len - q0));
      st_activation_forward (act, slope, o + q0, o + q0, len - q0);
    }
}

/* Where block k's col of group gi starts in the kept matrices: blocks
 * tile the pixels, with im2col's slack after each so that its row copies
 * never reach into the next block's, which another thread may be packing. */
static gsize
kept_col (const Geom *g, const Plan *pl, const Block *k, int gi)
{
  gsize pixels = (gsize) g->n * pl->hw;
  return ((gsize) gi * pixels + k->p0) * g->kg + ((gsize) gi * pl->n_blocks + k->index) * ROW_BURST;
}

/* Floats of a plan's kept col matrices. */
static gsize
kept_cols_size (const Geom *g, const Plan *pl)
{
  return (gsize) g->groups * ((gsize) g->n * pl->hw * g->kg + (gsize) pl->n_blocks * ROW_BURST);
}

/* Largest kept col matrices, in floats: past this (large images) backward
 * packs the input again, which costs less than the memory. */
#define KEPT_COLS_MAX (16 * 1024 * 1024)

/* The block's input as the right-hand matrix of group gi: the input itself
 * for a pointwise convolution of one image, else its im2col packing, into
 * the kept matrices when training. */
static const float *
block_matrix (const FwdJob *j, Work *wk, const Block *k, int gi, gsize *ldb)
{
  const Geom *g = &j->cv->g;
  const gsize hw = (gsize) g->h2 * g->w2;
  if (g->pointwise && k->n1 - k->n0 == 1)
    {
      *ldb = hw;
      return j->in + ((gsize) k->n0 * g->c1 + (gsize) gi * g->cg) * hw + k->q0;
    }
  float *col = j->cols ? j->cols + kept_col (g, j->pl, k, gi) : wk->col;
  if (j->cv->taps && !j->pl->split)
    im2col_taps (col, j->in, g, j->cv->taps, gi * g->cg, k->n0, k->n1);
  else
    im2col (col, j->in, j->in_end, g, gi * g->cg, k->p0, k->p1);
  *ldb = k->p1 - k->p0;
  return col;
}

/* pool=: the block's images from tmp (and pre) into the pooled output. */
static void
pool_block (const FwdJob *j, const Work *wk, const Block *k)
{
  const Geom *g = &j->cv->g;
  const gsize hw = (gsize) g->h2 * g->w2, cols = k->p1 - k->p0;
  for (int n = k->n0; n < k->n1; n++)
    {
      gsize at = (gsize) (n - k->n0) * hw;
      pool_image (g, n, wk->tmp + at, j->pre ? wk->pre + at : NULL, cols, j->out, j->argmax,
                  j->pre);
    }
}

static void
forward_block (const FwdJob *j, Work *wk, const Block *k)
{
  const Geom *g = &j->cv->g;
  const gsize hw = (gsize) g->h2 * g->w2, cols = k->p1 - k->p0;
  /* pool=: the block's unpooled output goes to tmp [c2, cols] (its
   * pre-activation values to pre), which is pooled at the end. */
  const gboolean pooled = j->argmax != NULL;
  const gboolean in_place = k->n1 - k->n0 == 1 && !pooled;

  if (g->kg <= DIRECT_MAX_K)
    {
      for (int gi = 0; gi < g->groups; gi++)
        {
          gsize ldb;
          const float *bmat = block_matrix (j, wk, k, gi, &ldb);
          /* One image at a time: each is a run of planes in the output. */
          for (int n = k->n0; n < k->n1; n++)
            {
              gsize off = pooled ? (gsize) gi * g->mg * cols + (gsize) (n - k->n0) * hw
                                 : ((gsize) n * g->c2 + (gsize) gi * g->mg) * hw + k->q0;
              gsize c0 = (gsize) (n - k->n0) * hw;
              float *out = pooled ? wk->tmp : j->out;
              float *pre = pooled && j->pre ? wk->pre : j->pre;
              direct_gemm (out + off, pre ? pre + off : NULL, pooled ? cols : hw, bmat + c0, ldb,
                           j->w + (gsize) gi * g->mg * g->kg,
                           j->b ? j->b + (gsize) gi * g->mg : NULL, g->mg, g->kg,
                           in_place ? cols : hw, j->act, j->slope);
            }
        }
      if (pooled)
        pool_block (j, wk, k);
      return;
    }

  for (int gi = 0; gi < g->groups; gi++)
    {
      gsize ldb;
      const float *bmat = block_matrix (j, wk, k, gi, &ldb);
      float *cmat;
      gsize ldc;
      if (in_place)
        {
          cmat = j->out + ((gsize) k->n0 * g->c2 + (gsize) gi * g->mg) * hw + k->q0;
          ldc = hw;
        }
      else
        {
          cmat = wk->tmp + (gsize) gi * g->mg * cols;
          ldc = cols;
        }
      cblas_sgemm (CblasRowMajor, CblasNoTrans, CblasNoTrans, g->mg, (int) cols, g->kg,
                   1.0f, j->w + (gsize) gi * g->mg * g->kg, g->kg, bmat, (int) ldb,
                   0.0f, cmat, (int) ldc);
    }

  if (pooled)
    {
      for (int m = 0; m < g->c2; m++)
        epilogue (wk->tmp + (gsize) m * cols, j->pre ? wk->pre + (gsize) m * cols : NULL,
                  wk->tmp + (gsize) m * cols, cols, j->b ? j->b[m] : 0.0f, j->act, j->slope);
      pool_block (j, wk, k);
      return;
    }

  /* Bias and activation while the block is in cache, scattering a
   * several-image block to NCHW on the way. */
  for (int n = k->n0; n < k->n1; n++)
    for (int m = 0; m < g->c2; m++)
      {
        gsize off = ((gsize) n * g->c2 + m) * hw + k->q0;
        const float *src = in_place ? j->out + off
                           : wk->tmp + (gsize) m * cols + (gsize) (n - k->n0) * hw;
        epilogue (j->out + off, j->pre ? j->pre + off : NULL, src,
                  in_place ? cols : hw, j->b ? j->b[m] : 0.0f, j->act, j->slope);
      }
}

static void
forward_tasks (gsize begin, gsize end, gpointer data)
{
  const FwdJob *j = data;
  const Plan *pl = j->pl;
  for (gsize t = begin; t < end; t++)
    {
      Work *wk = &j->cv->work[t];
      int b0 = (int) ((gsize) pl->n_blocks * t / pl->n_tasks);
      int b1 = (int) ((gsize) pl->n_blocks * (t + 1) / pl->n_tasks);
      for (int b = b0; b < b1; b++)
        {
          Block k = block_at (pl, b, j->cv->g.n);
          forward_block (j, wk, &k);
        }
    }
}

/* Largest block of a plan, in pixels. */
static gsize
plan_max_cols (const Plan *pl)
{
  return pl->split ? (pl->hw + pl->per_block - 1) / pl->per_block
                   : pl->hw * pl->per_block;
}

/* ---- Register tiles: forward and backward ------------------------------------ *
 * Tasks of whole images; in each, the image's padded input is read through
 * the offset tables by tiles.c, which writes and reads pixel-major
 * matrices [pixel][channel]; the NCHW tensors are transposed to and from
 * them one channel row at a time. */

/* Tiles take a call with at least an image per thread: fewer images are
 * better cut into pieces (blocks). */
static gboolean
tile_call (const Conv *cv, const StRunContext *ctx)
{
  return cv->tile_images && cv->g.n >= st_parallel_threads (ctx);
}

/* Tasks of whole groups of tile_images images. */
static int
tile_tasks (const Conv *cv, const StRunContext *ctx)
{
  int threads = st_parallel_threads (ctx);
  int groups = (cv->g.n + cv->tile_images - 1) / cv->tile_images;
  return threads == 1 ? 1 : MIN (groups, threads * TASKS_PER_THREAD);
}

/* The images of task t of n_tasks: [*n0, *n1), in groups from *n0. */
static void
tile_task_images (const Conv *cv, int n_tasks, gsize t, int *n0, int *n1)
{
  int groups = (cv->g.n + cv->tile_images - 1) / cv->tile_images;
  *n0 = (int) ((gsize) groups * t / n_tasks) * cv->tile_images;
  *n1 = MIN ((int) ((gsize) groups * (t + 1) / n_tasks) * cv->tile_images, cv->g.n);
}

/* Images [n0, n0 + count) as padded planes side by side, as the tables
 * address them: the input itself where there is no padding. */
static const float *
tile_input (const Geom *g, const float *in, int n0, int count, float *buf)
{
  const gsize image = (gsize) g->c1 * g->h1 * g->w1;
  if (!(g->pt | g->pb | g->pl | g->pr))
    return in + n0 * image;
  const int hp = tile_hp (g), wp = tile_wp (g);
  memset (buf, 0, sizeof (float) * count * g->c1 * hp * wp);
  for (int n = 0; n < count; n++)
    for (int c = 0; c < g->c1; c++)
      for (int y = 0; y < g->h1; y++)
        memcpy (buf + (((gsize) n * g->c1 + c) * hp + y + g->pt) * wp + g->pl,
                in + (n0 + n) * image + ((gsize) c * g->h1 + y) * g->w1, sizeof (float) * g->w1);
  return buf;
}

typedef struct {
  Conv *cv;
  int n_tasks;
  const float *in;
  const float *wt;             /* [K][c2] */
  const float *b;
  float *out, *pre;
  gint32 *argmax;              /* pool=: out and pre are pooled; argmax see tile_pools_sums () */
  StActivation act;
  float slope;
} TileFwdJob;

static void
tile_forward_tasks (gsize begin, gsize end, gpointer data)
{
  const TileFwdJob *j = data;
  const Conv *cv = j->cv;
  const Geom *g = &cv->g;
  const int hw = g->h2 * g->w2, rows = cv->tile_hw;
  for (gsize t = begin; t < end; t++)
    {
      Work *wk = &cv->work[t];
      int t0, t1;
      tile_task_images (cv, j->n_tasks, t, &t0, &t1);
      for (int n0 = t0; n0 < t1; n0 += cv->tile_images)
        {
          const int count = MIN (cv->tile_images, t1 - n0);
          const float *x = tile_input (g, j->in, n0, count, wk->col);
          conv_tiles_forward (wk->tmp, x, cv->tile_pix, count * rows, cv->tile_koff, g->kg, j->wt,
                              g->c2);
          for (int n = n0; n < n0 + count; n++)
            {
              const float *tile = wk->tmp + (gsize) (n - n0) * rows * g->c2;
              if (cv->tile_windows)
                {
                  /* Pooled from the pixel-major sums, the full map never in planes. */
                  const gsize ohw = (gsize) g->h3 * g->w3, at = (gsize) n * g->c2 * ohw;
                  conv_tiles_pool (j->out + at, j->argmax + at, ohw, tile, (int) ohw,
                                   g->pool * g->pool, g->c2, j->b, j->act == ST_ACT_RELU);
                  continue;
                }
              if (j->argmax)
                {
                  /* The unpooled image in row, pooled from there while in cache. */
                  conv_tiles_transpose (wk->row, hw, tile, g->c2, hw, g->c2);
                  for (int m = 0; m < g->c2; m++)
                    epilogue (wk->row + (gsize) m * hw, j->pre ? wk->pre + (gsize) m * hw : NULL,
                              wk->row + (gsize) m * hw, hw, j->b ? j->b[m] : 0.0f, j->act,
                              j->slope);
                  pool_image (g, n, wk->row, j->pre ? wk->pre : NULL, hw, j->out, j->argmax,
                              j->pre);
                  continue;
                }
              conv_tiles_transpose (j->out + (gsize) n * g->c2 * hw, hw, tile, g->c2, hw, g->c2);
              for (int m = 0; m < g->c2; m++)
                {
                  gsize off = ((gsize) n * g->c2 + m) * hw;
                  epilogue (j->out + off, j->pre ? j->pre + off : NULL, j->out + off, hw,
                            j->b ? j->b[m] : 0.0f, j->act, j->slope);
                }
            }
        }
    }
}

/* Each task's scratch for the tiled path; FALSE (error set) without the
 * memory.  pre: the forward keeps pre-activation values (pool=). */
static gboolean
tile_scratch (Conv *cv, int n_tasks, gboolean backward, gboolean dw, gboolean db, gboolean din,
              gboolean pre, GError **error)
{
  const Geom *g = &cv->g;
  const gsize hw = (gsize) g->h2 * g->w2, images = cv->tile_images;
  const gboolean padded = g->pt | g->pb | g->pl | g->pr;
  const gsize sizes[] = {
    padded && (!backward || dw) ? images * g->c1 * tile_hp (g) * tile_wp (g) : 0,
    (images * hw + CONV_TILE_SLACK) * g->c2,
    backward && din ? images * tile_din_rows (g) * tile_din_channels (g) : 0,
    backward && dw ? ((gsize) g->kg + CONV_TILE_SLACK) * g->c2 : 0,
    backward && db ? (gsize) g->c2 : 0,
    backward || g->pool ? hw * g->c2 : 0,
    !backward && g->pool && pre ? hw * g->c2 : 0,
    backward && g->pool ? (gsize) g->h3 * g->w3 * g->c2 : 0,
  };
  Work *work = task_work (cv, n_tasks);
  for (int t = 0; t < n_tasks; t++)
    {
      Work *wk = &work[t];
      float **bufs[] = { &wk->col, &wk->tmp, &wk->dcol, &wk->dw, &wk->db, &wk->row, &wk->pre,
                         &wk->pooled };
      gsize *have[] = { &wk->col_n, &wk->tmp_n, &wk->dcol_n, &wk->dw_n, &wk->db_n, &wk->row_n,
                        &wk->pre_n, &wk->pooled_n };
      for (guint i = 0; i < G_N_ELEMENTS (sizes); i++)
        if (sizes[i] && !scratch (bufs[i], have[i], sizes[i]))
          return scratch_failed (g, sizes[i], n_tasks, error);
    }
  return TRUE;
}

/* The weights [c2][K] as [K][c2], for the forward, or as [kh·kw][c2][cp]
 * (cp = tile_din_channels (), zeros past c1) for the input gradient. */
static float *
tile_weights (Conv *cv, const float *w, gboolean by_tap)
{
  const Geom *g = &cv->g;
  const int taps = g->kh * g->kw, cp = tile_din_channels (g);
  float *dst = scratch (&cv->tile_w, &cv->tile_w_n, (gsize) g->c2 * taps * cp);
  if (!dst)
    return NULL;
  if (!by_tap)
    conv_tiles_transpose (dst, g->c2, w, g->kg, g->c2, g->kg);
  else
    {
      if (cp > g->c1)
        memset (dst, 0, sizeof (float) * g->c2 * taps * cp);
      for (int m = 0; m < g->c2; m++)
        conv_tiles_transpose (dst + (gsize) m * cp, (gsize) g->c2 * cp, w + (gsize) m * g->kg,
                              taps, g->c1, taps);
    }
  return dst;
}

static gboolean
tile_forward (Conv *cv, const StRunContext *ctx, const float *in, const float *w,
              const float *b, float *out, float *pre, gint32 *argmax, StActivation act,
              float slope, GError **error)
{
  const int n_tasks = tile_tasks (cv, ctx);
  if (!tile_scratch (cv, n_tasks, FALSE, FALSE, FALSE, FALSE, pre != NULL, error))
    return FALSE;
  const float *wt = tile_weights (cv, w, FALSE);
  if (!wt)
    return scratch_failed (&cv->g, (gsize) cv->g.c2 * cv->g.kh * cv->g.kw
                                       * tile_din_channels (&cv->g), 1, error);
  TileFwdJob j = { cv, n_tasks, in, wt, b, out, pre, argmax, act, slope };
  st_parallel_for (ctx, n_tasks, tile_forward_tasks, &j);
  return TRUE;
}

typedef struct {
  Conv *cv;
  int n_tasks;
  const float *in;
  const float *wr;             /* [kh·kw][c2][cp] (tile_weights ()), or NULL without din */
  const float *out, *pre, *dout;
  const gint32 *argmax;        /* pool=: out, pre and dout pooled; argmax see tile_pools_sums () */
  gboolean dw, db;
  float *din;
  StActivation act;
  float slope;
} TileBwdJob;

static void
tile_backward_tasks (gsize begin, gsize end, gpointer data)
{
  const TileBwdJob *j = data;
  const Conv *cv = j->cv;
  const Geom *g = &cv->g;
  const int hw = g->h2 * g->w2, wp = tile_wp (g), rows = cv->tile_hw;
  const gsize din_rows = tile_din_rows (g), plane = (gsize) g->h1 * g->w1;
  const int cp = tile_din_channels (g);
  for (gsize t = begin; t < end; t++)
    {
      Work *wk = &cv->work[t];
      float *dzT = wk->tmp;
      if (j->dw)
        memset (wk->dw, 0, sizeof (float) * ((gsize) g->kg + CONV_TILE_SLACK) * g->c2);
      if (j->db)
        memset (wk->db, 0, sizeof (float) * g->c2);
      int t0, t1;
      tile_task_images (cv, j->n_tasks, t, &t0, &t1);
      for (int n0 = t0; n0 < t1; n0 += cv->tile_images)
        {
          const int count = MIN (cv->tile_images, t1 - n0);
          /* dz = dout ⊙ act'(pre), a channel row at a time, then as dzT;
           * pool=: the pooled gradient so, then unpooled into dzT. */
          for (int n = n0; n < n0 + count; n++)
            {
              float *dzT_n = dzT + (gsize) (n - n0) * rows * g->c2;
              if (cv->tile_windows)
                {
                  const gsize ohw = (gsize) g->h3 * g->w3;
                  pooled_grad (g, n, j->out, j->pre, j->dout, j->act, j->slope, wk->pooled,
                               j->db ? wk->db : NULL);
                  conv_tiles_unpool (dzT_n, wk->pooled, j->argmax + (gsize) n * g->c2 * ohw, ohw,
                                     (int) ohw, g->pool * g->pool, g->c2);
                  continue;
                }
              if (j->argmax)
                unpool_image (g, n, j->out, j->pre, j->dout, j->argmax, j->act, j->slope,
                              wk->pooled, wk->row, hw, j->db ? wk->db : NULL);
              else
                for (int m = 0; m < g->c2; m++)
                  {
                    gsize off = ((gsize) n * g->c2 + m) * hw;
                    float *dz = wk->row + (gsize) m * hw;
                    st_activation_backward_into (j->act, j->slope, j->pre ? j->pre + off : NULL,
                                                 j->out + off, j->dout + off, dz, hw);
                    if (j->db)
                      wk->db[m] += (float) sum_floats (dz, hw);
                  }
              conv_tiles_transpose (dzT_n, g->c2, wk->row, hw, g->c2, hw);
            }
          if (j->dw)
            conv_tiles_weight_grad (wk->dw, tile_input (g, j->in, n0, count, wk->col),
                                    cv->tile_koff, g->kg, cv->tile_pix, count * rows, dzT, g->c2);
          if (!j->din)
            continue;
          memset (wk->dcol, 0, sizeof (float) * count * din_rows * cp);
          conv_tiles_input_grad (wk->dcol, cv->tile_pix_din, count * rows,
                                 (int) ((count - 1) * din_rows) + tile_hp (g) * wp,
                                 cv->tile_tapoff, g->kh * g->kw, dzT, g->c2, j->wr, cp);
          /* The rows of each padded plane that are input, channel-major. */
          for (int n = n0; n < n0 + count; n++)
            {
              float *din = j->din + (gsize) n * g->c1 * plane;
              const float *src = wk->dcol + (gsize) (n - n0) * din_rows * cp;
              if (wp == g->w1)
                conv_tiles_transpose (din, plane, src + (gsize) g->pt * wp * cp, cp, (int) plane,
                                      g->c1);
              else
                for (int y = 0; y < g->h1; y++)
                  conv_tiles_transpose (din + (gsize) y * g->w1, plane,
                                        src + ((gsize) (y + g->pt) * wp + g->pl) * cp, cp,
                                        g->w1, g->c1);
            }
        }
    }
}

typedef struct {
  const Conv *cv;
  int n_tasks;
  float *dw;                   /* [c2][K] */
} TileSumJob;

/* Taps [16·begin, 16·end) of the tasks' [K][c2] weight gradients, summed
 * in task order into task 0's and then added to the parameter's [c2][K]. */
static void
tile_sum_grads (gsize begin, gsize end, gpointer data)
{
  const TileSumJob *sj = data;
  const Geom *g = &sj->cv->g;
  const int c2 = g->c2, kg = g->kg;
  const int k0 = (int) begin * 16, k1 = MIN ((int) end * 16, kg);
  float *restrict acc = sj->cv->work[0].dw;
  for (int t = 1; t < sj->n_tasks; t++)
    {
      const float *restrict src = sj->cv->work[t].dw;
      for (gsize i = (gsize) k0 * c2; i < (gsize) k1 * c2; i++)
        acc[i] += src[i];
    }
  for (int kb = k0; kb < k1; kb += 16)
    for (int m0 = 0; m0 < c2; m0 += 16)
      {
        const int nk = MIN (16, k1 - kb);
        float block[16 * 16];
        conv_tiles_transpose (block, 16, acc + (gsize) kb * c2 + m0, c2, nk, 16);
        for (int m = 0; m < 16; m++)
          {
            float *restrict d = sj->dw + (gsize) (m0 + m) * kg + kb;
            for (int k = 0; k < nk; k++)
              d[k] += block[m * 16 + k];
          }
      }
}

static gboolean
tile_backward (Conv *cv, const StRunContext *ctx, const float *in, const float *w,
               const float *out, const float *pre, const float *dout, const gint32 *argmax,
               float *dw, float *db, float *din, StActivation act, float slope, GError **error)
{
  const int n_tasks = tile_tasks (cv, ctx);
  if (!tile_scratch (cv, n_tasks, TRUE, dw != NULL, db != NULL, din != NULL, FALSE, error))
    return FALSE;
  const float *wr = NULL;
  if (din && !(wr = tile_weights (cv, w, TRUE)))
    return scratch_failed (&cv->g, (gsize) cv->g.c2 * cv->g.kh * cv->g.kw
                                       * tile_din_channels (&cv->g), 1, error);
  TileBwdJob j = { cv, n_tasks, in, wr, out, pre, dout, argmax, dw != NULL, db != NULL, din, act,
                   slope };
  st_parallel_for (ctx, n_tasks, tile_backward_tasks, &j);
  if (dw)
    {
      TileSumJob sj = { cv, n_tasks, dw };
      st_parallel_for (ctx, (cv->g.kg + 15) / 16, tile_sum_grads, &sj);
    }
  for (int t = 0; db && t < n_tasks; t++)
    for (int m = 0; m < cv->g.c2; m++)
      db[m] += cv->work[t].db[m];
  return TRUE;
}

/* pool= over pieces of images (large maps): the whole unpooled output,
 * pooled or its gradient unpooled an image at a time. */
typedef struct {
  const Conv *cv;
  gboolean backward;
  float *out;                  /* forward: the pooled output */
  const float *dout;           /* backward: its gradient */
} FullJob;

static void
full_images (gsize begin, gsize end, gpointer data)
{
  const FullJob *j = data;
  const Conv *cv = j->cv;
  const Geom *g = &cv->g;
  const gsize hw = (gsize) g->h2 * g->w2, ohw = (gsize) g->h3 * g->w3;
  for (gsize n = begin; n < end; n++)
    if (j->backward)
      st_maxpool_tiles_backward (cv->full_dout + n * g->c2 * hw, hw, j->dout + n * g->c2 * ohw,
                                 cv->argmax + n * g->c2 * ohw, ohw, g->c2, g->h2, g->w2, g->pool);
    else
      pool_image (g, (int) n, cv->full + n * g->c2 * hw, NULL, hw, j->out, cv->argmax, NULL);
}

/* Whether pool= goes through the whole unpooled output: blocks that are
 * pieces of images cannot pool on their own. */
static gboolean
pooled_via_full (const Conv *cv, const StRunContext *ctx, const Plan *pl)
{
  return cv->g.pool && !tile_call (cv, ctx) && pl->split;
}

static gboolean
conv_forward (StStage *stage, const StRunContext *ctx,
              const StTensor *const *inputs, StTensor *output, GError **error)
{
  const ConvConfig *cfg = stage->config;
  Conv *cv = stage->priv;
  const Geom *g = &cv->g;
  StActivation act = cfg->activation;
  const gsize numel = st_tensor_numel (output), full_numel = (gsize) g->n * g->c2 * g->h2 * g->w2;

  /* Parallelism comes from the blocks; a BLAS thread pool on top would
   * fight the core's for the same cores. */
  openblas_set_num_threads (1);

  Plan pl = plan_blocks (g, ctx);
  cv->pooled_via_full = pooled_via_full (cv, ctx, &pl);
  cv->pooled_by_tiles = g->pool && tile_call (cv, ctx);
  gint32 *argmax = NULL;
  if (g->pool && !(argmax = scratch_index (&cv->argmax, &cv->argmax_n, numel)))
    return scratch_failed (g, numel, 1, error);
  float *out = output->data, *pre = NULL;
  if (cv->pooled_via_full)
    {
      if (!(out = scratch (&cv->full, &cv->full_n, full_numel)))
        return scratch_failed (g, full_numel, 1, error);
      if (st_activation_needs_input (act)
          && !(pre = scratch (&cv->full_pre, &cv->full_pre_n, full_numel)))
        return scratch_failed (g, full_numel, 1, error);
    }
  else if (st_activation_needs_input (act) && !(pre = scratch (&cv->pre, &cv->pre_n, numel)))
    return scratch_failed (g, numel, 1, error);
  cv->cols_valid = FALSE;
  if (tile_call (cv, ctx))
    return tile_forward (cv, ctx, inputs[0]->data, st_stage_param (stage, cv->weight)->data,
                         cv->bias >= 0 ? st_stage_param (stage, cv->bias)->data : NULL,
                         out, pre, argmax, act, st_activation_arg (act, cfg->slope, cfg->alpha),
                         error);

  const gboolean pool_blocks = g->pool && !cv->pooled_via_full;
  gsize cols = plan_max_cols (&pl);
  Work *work = task_work (cv, pl.n_tasks);
  for (int t = 0; t < pl.n_tasks; t++)
    {
      const gsize col_n = (gsize) g->kg * cols + ROW_BURST, tmp_n = (gsize) g->c2 * cols;
      if (!(g->pointwise && pl.split) && !scratch (&work[t].col, &work[t].col_n, col_n))
        return scratch_failed (g, col_n, pl.n_tasks, error);
      if ((!pl.split || pool_blocks) && !scratch (&work[t].tmp, &work[t].tmp_n, tmp_n))
        return scratch_failed (g, tmp_n, pl.n_tasks, error);
      if (pool_blocks && pre && !scratch (&work[t].pre, &work[t].pre_n, tmp_n))
        return scratch_failed (g, tmp_n, pl.n_tasks, error);
    }
  /* Training keeps the col matrices for backward, which would otherwise
   * pack the same input again (a tenth of the backward's CPU time on the
   * Keras MNIST network); without the memory it packs again. */
  float *kept = NULL;
  if (ctx->training && !g->pointwise && kept_cols_size (g, &pl) <= KEPT_COLS_MAX)
    kept = scratch (&cv->cols, &cv->cols_n, kept_cols_size (g, &pl));

  FwdJob j = {
    .cv = cv, .pl = &pl, .in = inputs[0]->data,
    .in_end = inputs[0]->data + st_tensor_numel (inputs[0]),
    .w = st_stage_param (stage, cv->weight)->data,
    .b = cv->bias >= 0 ? st_stage_param (stage, cv->bias)->data : NULL,
    .out = out, .pre = pre, .cols = kept, .argmax = pool_blocks ? argmax : NULL, .act = act,
    .slope = st_activation_arg (act, cfg->slope, cfg->alpha),
  };
  st_parallel_for (ctx, pl.n_tasks, forward_tasks, &j);
  if (cv->pooled_via_full)
    {
      FullJob fj = { cv, FALSE, output->data, NULL };
      st_parallel_for (ctx, g->n, full_images, &fj);
    }
  cv->cols_valid = kept != NULL;
  cv->cols_split = pl.split;
  cv->cols_blocks = pl.n_blocks;
  cv->cols_per_block = pl.per_block;
  return TRUE;
}

/* ---- Backward --------------------------------------------------------------- */

typedef struct {
  Conv *cv;
  const Plan *pl;
  const float *in;             /* [N, C1, H1, W1] */
  const float *in_end;
  const float *w;              /* [C2, C1/G, kh, kw] */
  const float *out;            /* [N, C2, H2, W2], after the activation */
  const float *pre;            /* before it, or NULL */
  const float *dout;           /* [N, C2, H2, W2] */
  float *dw;                   /* [C2, C1/G, kh, kw], or NULL */
  float *db;                   /* [C2], or NULL */
  float *din;                  /* [N, C1, H1, W1], or NULL */
  const float *cols;           /* the forward's col matrices, or NULL: pack again */
  const gint32 *argmax;        /* pool=, blocks of whole images: out, pre and dout are pooled */
  gboolean halos;              /* tasks share pieces of images, whose input gradients overlap */
  StActivation act;
  float slope;
} BwdJob;

static void
backward_block (const BwdJob *j, Work *wk, const Block *k, float *dw, float *db,
                const Halo *halo)
{
  const Geom *g = &j->cv->g;
  const gsize hw = (gsize) g->h2 * g->w2, cols = k->p1 - k->p0;
  const gboolean in_place = k->n1 - k->n0 == 1;
  const gsize seg = in_place ? cols : hw;

  /* dz [C2, cols] = dout ⊙ act'(pre): gathered from NCHW, activation first. */
  float *dz = wk->tmp;
  for (int n = k->n0; j->argmax && n < k->n1; n++)
    unpool_image (g, n, j->out, j->pre, j->dout, j->argmax, j->act, j->slope, wk->pooled,
                  dz + (gsize) (n - k->n0) * hw, cols, db);
  for (int m = 0; !j->argmax && m < g->c2; m++)
    {
      double sum = 0.0;
      for (int n = k->n0; n < k->n1; n++)
        {
          gsize off = ((gsize) n * g->c2 + m) * hw + k->q0;
          float *d = dz + (gsize) m * cols + (gsize) (n - k->n0) * hw;
          if (j->act == ST_ACT_RELU)
            {
              /* One pass instead of a copy and a pass over the copy. */
              const float *restrict src = j->dout + off, *restrict y = j->out + off;
              float *restrict dst = d;
              for (gsize i = 0; i < seg; i++)
                {
                  /* Both loaded: a select, not a branch on the sign. */
                  float v = src[i];
                  dst[i] = y[i] > 0.0f ? v : 0.0f;
                }
            }
          else
            {
              memcpy (d, j->dout + off, sizeof (float) * seg);
              st_activation_backward (j->act, j->slope, j->pre ? j->pre + off : NULL,
                                      j->out + off, d, seg);
            }
          if (db)
            sum += sum_floats (d, seg);
        }
      if (db)
        db[m] += (float) sum;
    }
  if (!dw && !j->din)
    return;

  for (int gi = 0; gi < g->groups; gi++)
    {
      const float *dz_g = dz + (gsize) gi * g->mg * cols;
      const float *w_g = j->w + (gsize) gi * g->mg * g->kg;
      const float *col;
      gsize ldcol;
      gboolean direct = g->pointwise && in_place;
      if (direct)
        {
          col = j->in + ((gsize) k->n0 * g->c1 + (gsize) gi * g->cg) * hw + k->q0;
          ldcol = hw;
        }
      else if (j->cols)
        {
          col = j->cols + kept_col (g, j->pl, k, gi);
          ldcol = cols;
        }
      else
        {
          if (j->cv->taps && !j->pl->split)
            im2col_taps (wk->col, j->in, g, j->cv->taps, gi * g->cg, k->n0, k->n1);
          else
            im2col (wk->col, j->in, j->in_end, g, gi * g->cg, k->p0, k->p1);
          col = wk->col;
          ldcol = cols;
        }

      /* dW_g [mg, kg] += dz_g [mg, cols] × col^T [cols, kg] */
      if (dw)
        cblas_sgemm (CblasRowMajor, CblasNoTrans, CblasTrans, g->mg, g->kg, (int) cols,
                     1.0f, dz_g, (int) cols, col, (int) ldcol,
                     1.0f, dw + (gsize) gi * g->mg * g->kg, g->kg);

      /* dcol [kg, cols] = W_g^T [kg, mg] × dz_g [mg, cols], then back to pixels;
       * a 1×1 writes straight into din (pieces are disjoint). */
      if (!j->din)
        continue;
      if (direct)
        {
          float *d = j->din + ((gsize) k->n0 * g->c1 + (gsize) gi * g->cg) * hw + k->q0;
          cblas_sgemm (CblasRowMajor, CblasTrans, CblasNoTrans, g->kg, (int) cols, g->mg,
                       1.0f, w_g, g->kg, dz_g, (int) cols, 1.0f, d, (int) hw);
          continue;
        }
      cblas_sgemm (CblasRowMajor, CblasTrans, CblasNoTrans, g->kg, (int) cols, g->mg,
                   1.0f, w_g, g->kg, dz_g, (int) cols, 0.0f, wk->dcol, (int) cols);
      if (j->cv->taps && !j->pl->split)
        col2im_taps_add (j->din, wk->dcol, g, j->cv->taps, gi * g->cg, k->n0, k->n1);
      else
        col2im_add (j->din, halo, wk->dcol, g, gi * g->cg, k->p0, k->p1);
    }
}

/* The input rows of image n that output rows [y0, y1] reach, clipped. */
static void
rows_reached (const Geom *g, int y0, int y1, int *r0, int *r1)
{
  *r0 = MAX (y0 * g->sh - g->pt, 0);
  *r1 = MIN (y1 * g->sh - g->pt + halo_rows (g), g->h1);
}

/* The halos of the task over output pixels [p0, p1): the input rows its
 * first image shares with the pixels before p0, and those its last image
 * shares with the pixels from p1.  A row reached from both sides is in the
 * first; one reached from one task only is written in place. */
static void
task_halos (const Geom *g, gsize hw, gsize p0, gsize p1, float *buf, Halo halo[2])
{
  gsize halo_n = (gsize) g->c1 * halo_rows (g) * g->w1;
  memset (halo, 0, 2 * sizeof *halo);
  halo[0].buf = buf;
  halo[1].buf = buf + halo_n;
  if (p0 % hw != 0)
    {
      int r0, r1, e0, e1;
      halo[0].n = (int) (p0 / hw);
      gsize last = MIN (p1 - 1 - (gsize) halo[0].n * hw, hw - 1);
      rows_reached (g, (int) (p0 % hw / g->w2), (int) (last / g->w2), &r0, &r1);
      rows_reached (g, 0, (int) ((p0 - 1) % hw / g->w2), &e0, &e1);
      halo[0].r0 = r0;
      halo[0].r1 = MAX (r0, MIN (r1, e1));
    }
  if (p1 % hw != 0)
    {
      int r0, r1, e0, e1;
      halo[1].n = (int) ((p1 - 1) / hw);
      gsize first = MAX (p0, (gsize) halo[1].n * hw);
      rows_reached (g, (int) (first % hw / g->w2), (int) ((p1 - 1) % hw / g->w2), &r0, &r1);
      rows_reached (g, (int) (p1 % hw / g->w2), g->h2 - 1, &e0, &e1);
      halo[1].r0 = MAX (r0, e0);
      halo[1].r1 = MAX (halo[1].r0, r1);
    }
}

/* din += a task's halo. */
static void
add_halos (float *din, const Geom *g, const Halo halo[2])
{
  const gsize plane = (gsize) g->h1 * g->w1, w1 = g->w1;
  for (int h = 0; h < 2; h++)
    for (int c = 0; c < g->c1; c++)
      for (int iy = halo[h].r0; iy < halo[h].r1; iy++)
        {
          float *restrict d = din + ((gsize) halo[h].n * g->c1 + c) * plane + iy * w1;
          const float *restrict s = halo[h].buf + ((gsize) c * halo_rows (g) + (iy - halo[h].r0)) * w1;
          for (gsize x = 0; x < w1; x++)
            d[x] += s[x];
        }
}

static void
backward_tasks (gsize begin, gsize end, gpointer data)
{
  const BwdJob *j = data;
  const Plan *pl = j->pl;
  const Geom *g = &j->cv->g;
  for (gsize t = begin; t < end; t++)
    {
      Work *wk = &j->cv->work[t];
      /* Task 0 adds into the parameter gradients; the others into their
       * own, summed afterwards in task order so results do not depend on
       * timing. */
      float *dw = j->dw, *db = j->db;
      if (t > 0)
        {
          if (dw)
            {
              dw = wk->dw;
              memset (dw, 0, sizeof (float) * g->c2 * g->kg);
            }
          if (db)
            {
              db = wk->db;
              memset (db, 0, sizeof (float) * g->c2);
            }
        }
      int b0 = (int) ((gsize) pl->n_blocks * t / pl->n_tasks);
      int b1 = (int) ((gsize) pl->n_blocks * (t + 1) / pl->n_tasks);
      if (j->din)
        {
          /* The images wholly in this task are its own: cleared here, in
           * parallel, rather than the whole gradient on one thread.
           * Images split with another task were cleared before. */
          gsize image = (gsize) g->c1 * g->h1 * g->w1;
          int n0, n1;
          if (pl->split)
            {
              n0 = (b0 + pl->per_block - 1) / pl->per_block;
              n1 = b1 / pl->per_block;
            }
          else
            {
              n0 = block_at (pl, b0, g->n).n0;
              n1 = block_at (pl, b1 - 1, g->n).n1;
            }
          if (n1 > n0)
            memset (j->din + n0 * image, 0, sizeof (float) * (n1 - n0) * image);
        }
      Halo halo[2];
      if (j->halos)
        {
          task_halos (g, pl->hw, block_at (pl, b0, g->n).p0, block_at (pl, b1 - 1, g->n).p1,
                      wk->halo, halo);
          memset (wk->halo, 0, sizeof (float) * wk->halo_n);
        }
      for (int b = b0; b < b1; b++)
        {
          Block k = block_at (pl, b, g->n);
          backward_block (j, wk, &k, dw, db, j->halos ? halo : NULL);
        }
    }
}

/* The tasks' weight gradients, added into the parameter's in task order
 * for every element, over pieces of the elements in parallel. */
#define SUM_CHUNK 4096

typedef struct {
  const Work *work;
  int n_tasks;
  float *dw;
  gsize n;
} SumJob;

static void
sum_task_grads (gsize begin, gsize end, gpointer data)
{
  const SumJob *sj = data;
  gsize i0 = begin * SUM_CHUNK, i1 = MIN (end * SUM_CHUNK, sj->n);
  for (int t = 1; t < sj->n_tasks; t++)
    {
      const float *restrict src = sj->work[t].dw;
      float *restrict dst = sj->dw;
      for (gsize i = i0; i < i1; i++)
        dst[i] += src[i];
    }
}

static gboolean
conv_backward (StStage *stage, const StRunContext *ctx,
               const StTensor *const *inputs, const StTensor *output,
               const StTensor *grad_output, StTensor *const *grad_inputs,
               GError **error)
{
  const ConvConfig *cfg = stage->config;
  Conv *cv = stage->priv;
  const Geom *g = &cv->g;
  StActivation act = cfg->activation;
  StTensor *dw = st_stage_param_grad (stage, cv->weight);
  StTensor *db = cv->bias >= 0 ? st_stage_param_grad (stage, cv->bias) : NULL;
  StTensor *din = grad_inputs[0];

  const gsize numel = st_tensor_numel (output), full_numel = (gsize) g->n * g->c2 * g->h2 * g->w2;
  Plan pl = plan_blocks (g, ctx);
  const gboolean via_full = pooled_via_full (cv, ctx, &pl);
  if ((st_activation_needs_input (act)
       && (via_full ? cv->full_pre_n < full_numel : cv->pre_n < numel))
      || (g->pool && (cv->argmax_n < numel || via_full != cv->pooled_via_full
                      || tile_call (cv, ctx) != cv->pooled_by_tiles
                      || (via_full && cv->full_n < full_numel))))
    {
      g_set_error (error, ST_ERROR, ST_ERROR_FAILED,
                   "backward without a forward of this shape before it");
      return FALSE;
    }
  if (!dw && !db && !din)
    return TRUE;

  openblas_set_num_threads (1);

  if (tile_call (cv, ctx))
    return tile_backward (cv, ctx, inputs[0]->data, st_stage_param (stage, cv->weight)->data,
                          output->data, st_activation_needs_input (act) ? cv->pre : NULL,
                          grad_output->data, g->pool ? cv->argmax : NULL, dw ? dw->data : NULL,
                          db ? db->data : NULL, din ? din->data : NULL, act,
                          st_activation_arg (act, cfg->slope, cfg->alpha), error);

  /* pool= over pieces of images: the gradient unpooled whole, and the
   * rest as without pool=, from the forward's whole unpooled output. */
  const gboolean keeps_pre = st_activation_needs_input (act);
  const float *out = output->data, *pre = keeps_pre ? cv->pre : NULL;
  const float *dout = grad_output->data;
  if (via_full)
    {
      if (!scratch (&cv->full_dout, &cv->full_dout_n, full_numel))
        return scratch_failed (g, full_numel, 1, error);
      FullJob fj = { cv, TRUE, NULL, grad_output->data };
      st_parallel_for (ctx, g->n, full_images, &fj);
      out = cv->full;
      pre = keeps_pre ? cv->full_pre : NULL;
      dout = cv->full_dout;
    }
  const gboolean pool_blocks = g->pool && !via_full;

  gsize cols = plan_max_cols (&pl);
  Work *work = task_work (cv, pl.n_tasks);
  /* Tasks clear the images they hold whole; here only those that a task
   * boundary cuts, which more than one task adds into. */
  if (din && pl.split)
    {
      const gsize image = (gsize) g->c1 * g->h1 * g->w1;
      int cleared = -1;
      for (int t = 1; t < pl.n_tasks; t++)
        {
          int b = (int) ((gsize) pl.n_blocks * t / pl.n_tasks);
          int n = b / pl.per_block;
          if (b % pl.per_block != 0 && n != cleared)
            {
              memset (din->data + n * image, 0, sizeof (float) * image);
              cleared = n;
            }
        }
    }
  /* Pieces of one image in different tasks reach the same input rows. */
  const gboolean halos = din && pl.split && pl.n_tasks > 1 && !g->pointwise;
  const gsize halo_n = 2 * (gsize) g->c1 * halo_rows (g) * g->w1;
  for (int t = 0; t < pl.n_tasks; t++)
    {
      Work *wk = &work[t];
      const gsize col_n = (gsize) g->kg * cols + ROW_BURST, tmp_n = (gsize) g->c2 * cols;
      const gsize dw_n = (gsize) g->c2 * g->kg;
      if (!scratch (&wk->tmp, &wk->tmp_n, tmp_n))
        return scratch_failed (g, tmp_n, pl.n_tasks, error);
      if (!(g->pointwise && pl.split) && !scratch (&wk->col, &wk->col_n, col_n))
        return scratch_failed (g, col_n, pl.n_tasks, error);
      if (din && !(g->pointwise && pl.split) && !scratch (&wk->dcol, &wk->dcol_n, col_n - ROW_BURST))
        return scratch_failed (g, col_n - ROW_BURST, pl.n_tasks, error);
      if (t > 0 && dw && !scratch (&wk->dw, &wk->dw_n, dw_n))
        return scratch_failed (g, dw_n, pl.n_tasks, error);
      if (t > 0 && db && !scratch (&wk->db, &wk->db_n, g->c2))
        return scratch_failed (g, g->c2, pl.n_tasks, error);
      if (halos && !scratch (&wk->halo, &wk->halo_n, halo_n))
        return scratch_failed (g, halo_n, pl.n_tasks, error);
      const gsize pooled_n = (gsize) g->c2 * g->h3 * g->w3;
      if (pool_blocks && !scratch (&wk->pooled, &wk->pooled_n, pooled_n))
        return scratch_failed (g, pooled_n, pl.n_tasks, error);
    }

  BwdJob j = {
    .cv = cv, .pl = &pl, .in = inputs[0]->data,
    .in_end = inputs[0]->data + st_tensor_numel (inputs[0]),
    .w = st_stage_param (stage, cv->weight)->data,
    .out = out, .pre = pre, .dout = dout,
    .argmax = pool_blocks ? cv->argmax : NULL,
    .dw = dw ? dw->data : NULL,
    .db = db ? db->data : NULL,
    .din = din ? din->data : NULL,
    .cols = cv->cols_valid && cv->cols_split == pl.split && cv->cols_blocks == pl.n_blocks
            && cv->cols_per_block == pl.per_block ? cv->cols : NULL,
    .halos = halos,
    .act = act, .slope = st_activation_arg (act, cfg->slope, cfg->alpha),
  };
  st_parallel_for (ctx, pl.n_tasks, backward_tasks, &j);

  for (int t = 0; halos && t < pl.n_tasks; t++)
    {
      Halo halo[2];
      int b0 = (int) ((gsize) pl.n_blocks * t / pl.n_tasks);
      int b1 = (int) ((gsize) pl.n_blocks * (t + 1) / pl.n_tasks);
      task_halos (g, pl.hw, block_at (&pl, b0, g->n).p0, block_at (&pl, b1 - 1, g->n).p1,
                  work[t].halo, halo);
      add_halos (din->data, g, halo);
    }

  if (dw)
    {
      SumJob sj = { work, pl.n_tasks, dw->data, (gsize) g->c2 * g->kg };
      st_parallel_for (ctx, (sj.n + SUM_CHUNK - 1) / SUM_CHUNK, sum_task_grads, &sj);
    }
  for (int t = 1; db && t < pl.n_tasks; t++)
    for (int i = 0; i < g->c2; i++)
      db->data[i] += work[t].db[i];
  return TRUE;
}
