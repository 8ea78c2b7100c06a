/* strata — tests of the geometric stages: flip, rotate90, crop, pad.
 *
 * Every forward is compared with a plain reference written here (naive
 * loops, independent of the plugins' code: a turn by 180 or 270 is the
 * quarter turn repeated, reflect bounces until it lands) over odd sizes,
 * 1-pixel images, 1 to 4 channels and batches of 1 to 3, with 1 and 3
 * threads.  Every backward is checked as the forward's adjoint
 * (<F x, g> = <x, B g>) and with st_gradcheck.  Through the runner, each
 * stage on a 400x300 image gives the same bytes whole and with strips
 * asked for (only the local ones, flip horizontal, then run in strips),
 * and those bytes are the reference's; `strata run` does the same from the
 * command line and names both sizes when a crop reaches outside.  lppool
 * (L_p-norm pooling) is checked against PyTorch's formula and gradcheck. */
#include "image.h"
#include "pipeline.h"
#include "runner.h"
#include "testutil.h"

#include <glib/gstdio.h>
#include <math.h>
#include <string.h>

static StRegistry *reg;

G_DEFINE_AUTOPTR_CLEANUP_FUNC (StStage, st_stage_free)
G_DEFINE_AUTOPTR_CLEANUP_FUNC (StPipeline, st_pipeline_free)
static StRunContext *ctxs[2];        /* 1 and 3 threads */

/* ---- References ------------------------------------------------------------ */

typedef enum { REF_FLIP, REF_ROTATE, REF_CROP, REF_PAD } RefKind;

/* One case: the stage's parameters and what the reference must do. */
typedef struct {
  const char *kind;
  const char *params;
  RefKind ref;
  /* flip: mirror_x, mirror_y; rotate: quarter turns; crop: x, y, w, h
   * (x < 0: centred); pad: top, bottom, left, right, border
   * (0 zero, 1 edge, 2 reflect, 3 wrap, 4 constant) */
  int a[5];
  float value;                 /* pad's constant */
} Case;

static const Case cases[] = {
  { "flip", "direction=horizontal", REF_FLIP, { 1, 0 }, 0 },
  { "flip", "direction=vertical", REF_FLIP, { 0, 1 }, 0 },
  { "flip", "direction=both", REF_FLIP, { 1, 1 }, 0 },
  { "rotate90", "angle=90", REF_ROTATE, { 1 }, 0 },
  { "rotate90", "angle=180", REF_ROTATE, { 2 }, 0 },
  { "rotate90", "angle=270", REF_ROTATE, { 3 }, 0 },
  { "crop", "x=0 y=0 width=1 height=1", REF_CROP, { 0, 0, 1, 1 }, 0 },
  { "crop", "center=true width=1 height=1", REF_CROP, { -1, 0, 1, 1 }, 0 },
  { "pad", "all=2", REF_PAD, { 2, 2, 2, 2, 0 }, 0 },
  { "pad", "top=3 bottom=0 left=1 right=4 border=edge", REF_PAD, { 3, 0, 1, 4, 1 }, 0 },
  { "pad", "all=9 top=1 border=reflect", REF_PAD, { 1, 9, 9, 9, 2 }, 0 },
  { "pad", "left=7 right=2 border=wrap", REF_PAD, { 0, 0, 7, 2, 3 }, 0 },
  { "pad", "all=3 border=constant value=0.25", REF_PAD, { 3, 3, 3, 3, 4 }, 0.25f },
};

/* Where position i of a padded line of n reads, or -1 for the constant. */
static int
ref_border (int i, int n, int border)
{
  if (i >= 0 && i < n)
    return i;
  switch (border)
    {
    case 1: return i < 0 ? 0 : n - 1;
    case 2:
      if (n == 1)
        return 0;
      while (i < 0 || i >= n)
        i = i < 0 ? -i : 2 * (n - 1) - i;
      return i;
    case 3:
      while (i < 0)
        i += n;
      return i % n;
    default: return -1;
    }
}

/* One counter-clockwise quarter turn (numpy.rot90 with k=1). */
static StTensor *
ref_quarter (const StTensor *in)
{
  StShape s = in->shape;
  StTensor *out = st_tensor_new0 (s.n, s.c, s.w, s.h);
  for (int p = 0; p < s.n * s.c; p++)
    for (int y = 0; y < s.w; y++)
      for (int x = 0; x < s.h; x++)
        out->data[((gsize) p * s.w + y) * s.h + x] = in->data[((gsize) p * s.h + x) * s.w + s.w - 1 - y];
  return out;
}

static StTensor *
reference (const Case *k, const StTensor *in)
{
  StShape s = in->shape;
  const int *a = k->a;
  switch (k->ref)
    {
    case REF_FLIP:
      {
        StTensor *out = st_tensor_new0 (s.n, s.c, s.h, s.w);
        for (int p = 0; p < s.n * s.c; p++)
          for (int y = 0; y < s.h; y++)
            for (int x = 0; x < s.w; x++)
              out->data[((gsize) p * s.h + y) * s.w + x] =
                in->data[((gsize) p * s.h + (a[1] ? s.h - 1 - y : y)) * s.w + (a[0] ? s.w - 1 - x : x)];
        return out;
      }
    case REF_ROTATE:
      {
        StTensor *t = st_tensor_new0 (s.n, s.c, s.h, s.w);
        memcpy (t->data, in->data, st_tensor_numel (in) * sizeof (float));
        for (int turn = 0; turn < a[0]; turn++)
          {
            StTensor *next = ref_quarter (t);
            st_tensor_free (t);
            t = next;
          }
        return t;
      }
    case REF_CROP:
      {
        int x0 = a[0] < 0 ? (s.w - a[2]) / 2 : a[0], y0 = a[0] < 0 ? (s.h - a[3]) / 2 : a[1];
        StTensor *out = st_tensor_new0 (s.n, s.c, a[3], a[2]);
        for (int p = 0; p < s.n * s.c; p++)
          for (int y = 0; y < a[3]; y++)
            for (int x = 0; x < a[2]; x++)
              out->data[((gsize) p * a[3] + y) * a[2] + x] =
                in->data[((gsize) p * s.h + y0 + y) * s.w + x0 + x];
        return out;
      }
    case REF_PAD:
    default:
      {
        int oh = s.h + a[0] + a[1], ow = s.w + a[2] + a[3];
        StTensor *out = st_tensor_new0 (s.n, s.c, oh, ow);
        for (int p = 0; p < s.n * s.c; p++)
          for (int y = 0; y < oh; y++)
            for (int x = 0; x < ow; x++)
              {
                int sy = ref_border (y - a[0], s.h, a[4]), sx = ref_border (x - a[2], s.w, a[4]);
                out->data[((gsize) p * oh + y) * ow + x] =
                  sy < 0 || sx < 0 ? k->value : in->data[((gsize) p * s.h + sy) * s.w + sx];
              }
        return out;
      }
    }
}

static void
assert_tensors_equal (const StTensor *got, const StTensor *want)
{
  g_assert_true (st_shape_equal (got->shape, want->shape));
  for (gsize i = 0; i < st_tensor_numel (want); i++)
    if (got->data[i] != want->data[i])
      g_error ("element %" G_GSIZE_FORMAT ": %g, want %g", i, got->data[i], want->data[i]);
}

/* ---- Forward and backward ---------------------------------------------------- */

static const StShape shapes[] = {
  { 1, 1, 1, 1 }, { 2, 3, 5, 7 }, { 3, 2, 4, 1 }, { 1, 4, 1, 6 }, { 2, 1, 8, 8 },
};

static void
test_forward_reference (void)
{
  GRand *rand = g_rand_new_with_seed (10);
  for (guint ci = 0; ci < G_N_ELEMENTS (cases); ci++)
    for (guint si = 0; si < G_N_ELEMENTS (shapes); si++)
      for (int t = 0; t < 2; t++)
        {
          const Case *k = &cases[ci];
          StShape s = shapes[si];
          g_test_message ("%s %s on %dx%dx%dx%d", k->kind, k->params, s.n, s.c, s.h, s.w);
          g_autoptr (StTensor) in = tu_tensor_random (rand, s.n, s.c, s.h, s.w);
          g_autoptr (StTensor) want = reference (k, in);
          g_autoptr (StTensor) got = tu_run1 (reg, k->kind, k->params, in, ctxs[t]);
          assert_tensors_equal (got, want);
        }
  g_rand_free (rand);
}

/* Known answers pin the conventions: numpy.rot90 turns counter-clockwise;
 * numpy.pad's reflect does not repeat the edge. */
static void
test_known_answers (void)
{
  const float m[] = { 1, 2, 3, 4, 5, 6 };
  g_autoptr (StTensor) in = tu_tensor_from (1, 1, 2, 3, m);
  g_autoptr (StTensor) r90 = tu_run1 (reg, "rotate90", "angle=90", in, ctxs[0]);
  const float want90[] = { 3, 6, 2, 5, 1, 4 };
  g_autoptr (StTensor) w90 = tu_tensor_from (1, 1, 3, 2, want90);
  assert_tensors_equal (r90, w90);
  g_autoptr (StTensor) r270 = tu_run1 (reg, "rotate90", "angle=270", in, ctxs[0]);
  const float want270[] = { 4, 1, 5, 2, 6, 3 };
  g_autoptr (StTensor) w270 = tu_tensor_from (1, 1, 3, 2, want270);
  assert_tensors_equal (r270, w270);

  const float line[] = { 1, 2, 3 };
  g_autoptr (StTensor) l = tu_tensor_from (1, 1, 1, 3, line);
  g_autoptr (StTensor) refl = tu_run1 (reg, "pad", "left=2 right=2 border=reflect", l, ctxs[0]);
  const float want_refl[] = { 3, 2, 1, 2, 3, 2, 1 };
  g_autoptr (StTensor) wr = tu_tensor_from (1, 1, 1, 7, want_refl);
  assert_tensors_equal (refl, wr);
  g_autoptr (StTensor) wrap = tu_run1 (reg, "pad", "left=2 right=2 border=wrap", l, ctxs[0]);
  const float want_wrap[] = { 2, 3, 1, 2, 3, 1, 2 };
  g_autoptr (StTensor) ww = tu_tensor_from (1, 1, 1, 7, want_wrap);
  assert_tensors_equal (wrap, ww);

  /* An odd margin leaves the extra pixel after, as torchvision. */
  g_autoptr (StTensor) c = tu_run1 (reg, "crop", "center=true width=1 height=2", in, ctxs[0]);
  const float want_c[] = { 2, 5 };
  g_autoptr (StTensor) wc = tu_tensor_from (1, 1, 2, 1, want_c);
  assert_tensors_equal (c, wc);
}

/* The backward of a linear stage is its adjoint: <F x, g> = <x, B g> for
 * every x and g; then st_gradcheck against finite differences. */
static void
test_backward (void)
{
  GRand *rand = g_rand_new_with_seed (11);
  for (guint ci = 0; ci < G_N_ELEMENTS (cases); ci++)
    for (guint si = 0; si < G_N_ELEMENTS (shapes); si++)
      {
        const Case *k = &cases[ci];
        StShape s = shapes[si];
        g_autoptr (GError) error = NULL;
        g_autoptr (StStage) stage = tu_stage_new (reg, k->kind, k->kind, k->params, &error);
        g_assert_no_error (error);
        g_autoptr (StTensor) x = tu_tensor_random (rand, s.n, s.c, s.h, s.w);
        const StTensor *ins[] = { x };
        g_autoptr (StTensor) y = tu_stage_run (stage, ins, 1, ctxs[si % 2], &error);
        g_assert_no_error (error);
        g_autoptr (StTensor) g = tu_tensor_random (rand, y->shape.n, y->shape.c, y->shape.h, y->shape.w);
        g_autoptr (StTensor) dx = st_tensor_new (s, &error);
        g_assert_no_error (error);
        StTensor *grads[] = { dx };
        g_assert_true (stage->kind->backward (stage, ctxs[si % 2], ins, y, g, grads, &error));
        g_assert_no_error (error);
        /* The constant of pad border=constant is an offset, not linear in x. */
        double fx_g = 0, x_bg = 0, offset = 0;
        g_autoptr (StTensor) zero = st_tensor_new0 (s.n, s.c, s.h, s.w);
        g_autoptr (StTensor) y0 = tu_run1 (reg, k->kind, k->params, zero, ctxs[0]);
        for (gsize i = 0; i < st_tensor_numel (y); i++)
          {
            fx_g += (double) y->data[i] * g->data[i];
            offset += (double) y0->data[i] * g->data[i];
          }
        for (gsize i = 0; i < st_tensor_numel (x); i++)
          x_bg += (double) x->data[i] * dx->data[i];
        g_assert_cmpfloat_with_epsilon (fx_g - offset, x_bg, 1e-4 * (1 + fabs (x_bg)));

        TuParams p;
        tu_params_parse (&p, k->params);
        StGradcheckResult result;
        gboolean ok = st_gradcheck (stage->kind, p.keys, p.values, p.n, &s, 1, TRUE, 1, 5e-2,
                                    1e-3, &result, &error);
        tu_params_clear (&p);
        g_assert_no_error (error);
        g_assert_true (ok);
      }
  g_rand_free (rand);
}

static void
assert_infer_fails (const char *kind, const char *params, StShape shape, const char *message)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (StStage) stage = tu_stage_new (reg, kind, kind, params, &error);
  g_assert_no_error (error);
  g_assert_false (st_stage_infer (stage, &shape, 1, &error));
  g_assert_nonnull (error);
  g_test_message ("%s", error->message);
  g_assert_nonnull (strstr (error->message, message));
}

static void
test_crop_outside (void)
{
  StShape s = { 1, 3, 48, 64 };
  assert_infer_fails ("crop", "x=10 y=20 width=60 height=10", s,
                      "a crop of 60x10 at x=10, y=20 reaches outside the 64x48 image");
  assert_infer_fails ("crop", "y=40 width=64 height=9", s, "reaches outside the 64x48 image");
  assert_infer_fails ("crop", "center=true width=65 height=48", s,
                      "a centred crop of 65x48 does not fit in the 64x48 image");
  /* The whole image is a crop that fits. */
  g_autoptr (GError) error = NULL;
  g_autoptr (StStage) stage = tu_stage_new (reg, "crop", "crop", "x=0 y=0 width=64 height=48", &error);
  g_assert_true (st_stage_infer (stage, &s, 1, &error));
  g_assert_no_error (error);
}

/* ---- L_p-norm pooling ---------------------------------------------------------- */

/* PyTorch's LPPool2d for inputs >= 0: (mean of x^p · K²)^(1/p). */
static StTensor *
ref_lppool (const StTensor *in, double p, int k, int s)
{
  StShape sh = in->shape;
  int oh = (sh.h - k) / s + 1, ow = (sh.w - k) / s + 1;
  StTensor *out = st_tensor_new0 (sh.n, sh.c, oh, ow);
  for (int pl = 0; pl < sh.n * sh.c; pl++)
    for (int y = 0; y < oh; y++)
      for (int x = 0; x < ow; x++)
        {
          double mean = 0;
          for (int m = 0; m < k; m++)
            for (int n = 0; n < k; n++)
              mean += pow (in->data[((gsize) pl * sh.h + y * s + m) * sh.w + x * s + n], p) / (k * k);
          out->data[((gsize) pl * oh + y) * ow + x] = (float) pow (mean * k * k, 1.0 / p);
        }
  return out;
}

static void
test_lppool (void)
{
  GRand *rand = g_rand_new_with_seed (13);
  const struct { double p; int k, s; const char *params; } lp[] = {
    { 2, 2, 2, "p=2" }, { 2, 3, 1, "p=2 size=3 stride=1" }, { 3, 2, 3, "p=3 size=2 stride=3" },
    { 1, 1, 1, "p=1 size=1" }, { 40, 2, 1, "p=40 size=2 stride=1" },
  };
  for (guint i = 0; i < G_N_ELEMENTS (lp); i++)
    for (guint si = 0; si < G_N_ELEMENTS (shapes); si++)
      for (int t = 0; t < 2; t++)
        {
          StShape s = shapes[si];
          if (s.h < lp[i].k || s.w < lp[i].k)
            continue;
          g_autoptr (StTensor) in = tu_tensor_random (rand, s.n, s.c, s.h, s.w);
          g_autoptr (StTensor) want = ref_lppool (in, lp[i].p, lp[i].k, lp[i].s);
          g_autoptr (StTensor) got = tu_run1 (reg, "lppool", lp[i].params, in, ctxs[t]);
          g_assert_true (st_shape_equal (got->shape, want->shape));
          for (gsize e = 0; e < st_tensor_numel (want); e++)
            g_assert_cmpfloat_with_epsilon (got->data[e], want->data[e], 1e-5 * (1 + want->data[e]));

          TuParams p;
          tu_params_parse (&p, lp[i].params);
          StGradcheckResult result;
          g_autoptr (GError) error = NULL;
          gboolean ok = st_gradcheck (tu_kind (reg, "lppool"), p.keys, p.values, p.n, &s, 1, TRUE,
                                      1, 1e-2, 1e-3, &result, &error);
          tu_params_clear (&p);
          g_assert_no_error (error);
          g_assert_true (ok);
        }
  g_rand_free (rand);

  /* A 3-4-5 triangle, and negative values count by their size. */
  const float v[] = { 3, -4, 0, 0 };
  g_autoptr (StTensor) in = tu_tensor_from (1, 1, 2, 2, v);
  g_autoptr (StTensor) out = tu_run1 (reg, "lppool", "p=2", in, ctxs[0]);
  g_assert_cmpfloat_with_epsilon (out->data[0], 5.0, 1e-6);
  /* A high power on tiny values: |x|^p and norm^(p−1) underflow to 0, yet
   * the norm is right and the gradient finite: nearly 1 at the largest
   * value, nearly 0 elsewhere. */
  const float tiny[] = { 1e-9f, 2e-9f, 0, 1e-9f };
  g_autoptr (GError) error = NULL;
  g_autoptr (StStage) stage = tu_stage_new (reg, "lppool", "lppool", "p=40", &error);
  g_autoptr (StTensor) x = tu_tensor_from (1, 1, 2, 2, tiny);
  const StTensor *ins[] = { x };
  g_autoptr (StTensor) y = tu_stage_run (stage, ins, 1, ctxs[0], &error);
  g_assert_no_error (error);
  g_assert_cmpfloat_with_epsilon (y->data[0], 2e-9, 1e-12);
  const float one = 1;
  g_autoptr (StTensor) g = tu_tensor_from (1, 1, 1, 1, &one);
  g_autoptr (StTensor) dx = st_tensor_new0 (1, 1, 2, 2);
  StTensor *grads[] = { dx };
  g_assert_true (stage->kind->backward (stage, ctxs[0], ins, y, g, grads, &error));
  g_assert_cmpfloat_with_epsilon (dx->data[1], 1.0, 1e-5);
  g_assert_cmpfloat (dx->data[2], ==, 0.0);
  g_assert_true (isfinite (dx->data[0]) && dx->data[0] >= 0 && dx->data[0] < 1e-6);
  assert_infer_fails ("lppool", "size=3", (StShape) { 1, 1, 2, 5 },
                      "a 3x3 window does not fit in the 5x2 input");
}

/* ---- Through the runner and the CLI ------------------------------------------ */

/* A 400x300 RGB PNG of noise: large enough that a local pipeline runs in
 * strips of 16 rows. */
static char *
write_input (const char *dir, StTensor **tensor)
{
  GRand *rand = g_rand_new_with_seed (12);
  g_autoptr (StTensor) t = tu_tensor_random (rand, 1, 3, 300, 400);
  g_rand_free (rand);
  char *path = g_build_filename (dir, "in.png", NULL);
  g_autoptr (GError) error = NULL;
  g_assert_true (st_image_save (t, path, st_image_format_from_name (path), 8, 90, &error));
  g_assert_no_error (error);
  *tensor = st_image_load (path, 0, NULL, &error);
  g_assert_no_error (error);
  return path;
}

static StRunSummary
run_images (StPipeline *p, const char *input, const char *output, int strip_rows,
            guint64 strip_min_pixels)
{
  StRunOptions opt = {
    .output = output, .jpeg_quality = 90, .jobs = 2, .overwrite = TRUE, .quiet = TRUE,
    .strip_rows = strip_rows, .strip_min_pixels = strip_min_pixels,
  };
  const char *inputs[] = { input, NULL };
  StRunSummary summary;
  g_autoptr (GError) error = NULL;
  g_assert_true (st_run_images (p, inputs, &opt, &summary, &error));
  g_assert_no_error (error);
  g_assert_cmpuint (summary.written, ==, 1);
  return summary;
}

/* The 8-bit levels of path equal those of want. */
static void
assert_image_is (const char *path, const StTensor *want)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (StTensor) got = st_image_load (path, 0, NULL, &error);
  g_assert_no_error (error);
  g_assert_true (st_shape_equal (got->shape, want->shape));
  for (gsize i = 0; i < st_tensor_numel (want); i++)
    {
      int g = (int) lrintf (got->data[i] * 255.0f);
      int w = (int) lrintf (CLAMP (want->data[i], 0.0f, 1.0f) * 255.0f);
      if (g != w)
        g_error ("%s: element %" G_GSIZE_FORMAT " is %d, want %d", path, i, g, w);
    }
}

static void
assert_same_bytes (const char *a, const char *b)
{
  g_autofree char *da = NULL, *db = NULL;
  gsize la, lb;
  g_assert_true (g_file_get_contents (a, &da, &la, NULL));
  g_assert_true (g_file_get_contents (b, &db, &lb, NULL));
  if (la != lb || memcmp (da, db, la) != 0)
    g_error ("%s and %s differ", a, b);
}

typedef struct {
  const char *chain;
  Case ref;
  gboolean local;              /* runs in strips */
} RunCase;

static const RunCase run_cases[] = {
  { "flip direction=horizontal", { "flip", NULL, REF_FLIP, { 1, 0 }, 0 }, TRUE },
  { "flip direction=vertical", { "flip", NULL, REF_FLIP, { 0, 1 }, 0 }, FALSE },
  { "flip direction=both", { "flip", NULL, REF_FLIP, { 1, 1 }, 0 }, FALSE },
  { "rotate90 angle=90", { "rotate90", NULL, REF_ROTATE, { 1 }, 0 }, FALSE },
  { "rotate90 angle=180", { "rotate90", NULL, REF_ROTATE, { 2 }, 0 }, FALSE },
  { "rotate90 angle=270", { "rotate90", NULL, REF_ROTATE, { 3 }, 0 }, FALSE },
  { "crop x=17 y=31 width=201 height=99", { "crop", NULL, REF_CROP, { 17, 31, 201, 99 }, 0 }, FALSE },
  { "crop center=true width=333 height=5", { "crop", NULL, REF_CROP, { -1, 0, 333, 5 }, 0 }, FALSE },
  { "pad top=3 bottom=40 left=7 right=0 border=reflect",
    { "pad", NULL, REF_PAD, { 3, 40, 7, 0, 2 }, 0 }, FALSE },
  { "pad all=9 border=wrap", { "pad", NULL, REF_PAD, { 9, 9, 9, 9, 3 }, 0 }, FALSE },
  { "pad all=5 left=0 border=constant value=0.5",
    { "pad", NULL, REF_PAD, { 5, 5, 0, 5, 4 }, 0.5f }, FALSE },
  { "pad all=2 border=edge", { "pad", NULL, REF_PAD, { 2, 2, 2, 2, 1 }, 0 }, FALSE },
};

static void
test_strips_match_whole (void)
{
  g_autofree char *dir = tu_make_tmpdir ("strata-geometry-XXXXXX");
  g_autoptr (StTensor) in = NULL;
  g_autofree char *input = write_input (dir, &in);
  g_autofree char *whole = g_build_filename (dir, "whole.png", NULL);
  g_autofree char *strips = g_build_filename (dir, "strips.png", NULL);
  for (guint i = 0; i < G_N_ELEMENTS (run_cases); i++)
    {
      const RunCase *rc = &run_cases[i];
      g_test_message ("%s", rc->chain);
      g_autoptr (GError) error = NULL;
      g_autoptr (StPipeline) p = st_pipeline_load_inline (reg, rc->chain, &error);
      g_assert_no_error (error);
      StRunSummary s = run_images (p, input, whole, 0, G_MAXUINT64);
      g_assert_cmpuint (s.in_strips, ==, 0);
      s = run_images (p, input, strips, 16, 1);
      g_assert_cmpuint (s.in_strips, ==, rc->local ? 1 : 0);
      assert_same_bytes (whole, strips);
      g_autoptr (StTensor) want = reference (&rc->ref, in);
      assert_image_is (whole, want);
    }
  /* A local filter before a local flip: still strips, still the same. */
  g_autoptr (GError) error = NULL;
  g_autoptr (StPipeline) p = st_pipeline_load_inline (reg, "kernel preset=sharpen ! flip", &error);
  g_assert_no_error (error);
  run_images (p, input, whole, 0, G_MAXUINT64);
  StRunSummary s = run_images (p, input, strips, 16, 1);
  g_assert_cmpuint (s.in_strips, ==, 1);
  assert_same_bytes (whole, strips);
  tu_remove_tree (dir);
}

static void
test_cli (void)
{
  const char *exe = g_getenv ("STRATA_EXE");
  g_assert_nonnull (exe);
  g_autofree char *dir = tu_make_tmpdir ("strata-geometry-XXXXXX");
  g_autoptr (StTensor) in = NULL;
  g_autofree char *input = write_input (dir, &in);
  g_autofree char *out = g_build_filename (dir, "out.png", NULL);

  TuResult r = tu_run (exe, "run", "rotate90 angle=270 ! pad top=1 border=constant value=1",
                       input, "-o", out, "--quiet", NULL);
  g_assert_cmpint (r.status, ==, 0);
  tu_result_clear (&r);
  const Case turn = { "rotate90", NULL, REF_ROTATE, { 3 }, 0 };
  const Case pad = { "pad", NULL, REF_PAD, { 1, 0, 0, 0, 4 }, 1.0f };
  g_autoptr (StTensor) turned = reference (&turn, in);
  g_autoptr (StTensor) want = reference (&pad, turned);
  assert_image_is (out, want);

  g_autofree char *out2 = g_build_filename (dir, "out2.png", NULL);
  r = tu_run (exe, "run", "crop x=300 width=101 height=10", input, "-o", out2, NULL);
  g_assert_cmpint (r.status, !=, 0);
  g_assert_nonnull (strstr (r.err, "a crop of 101x10 at x=300, y=0 reaches outside the 400x300 image"));
  g_assert_false (g_file_test (out2, G_FILE_TEST_EXISTS));
  tu_result_clear (&r);

  const char *kinds[] = { "flip", "rotate90", "crop", "pad" };
  const char *keys[] = { "direction", "angle", "center", "constant" };
  for (guint i = 0; i < G_N_ELEMENTS (kinds); i++)
    {
      r = tu_run (exe, "plugins", kinds[i], NULL);
      g_assert_cmpint (r.status, ==, 0);
      g_assert_nonnull (strstr (r.out, keys[i]));
      tu_result_clear (&r);
    }
  tu_remove_tree (dir);
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  reg = st_registry_new (NULL);
  ctxs[0] = st_run_context_new (1, 1);
  ctxs[1] = st_run_context_new (3, 1);
  g_test_add_func ("/geometry/forward-reference", test_forward_reference);
  g_test_add_func ("/geometry/known-answers", test_known_answers);
  g_test_add_func ("/geometry/backward", test_backward);
  g_test_add_func ("/geometry/crop-outside", test_crop_outside);
  g_test_add_func ("/geometry/lppool", test_lppool);
  g_test_add_func ("/geometry/strips-match-whole", test_strips_match_whole);
  g_test_add_func ("/geometry/cli", test_cli);
  int rc = g_test_run ();
  st_run_context_free (ctxs[0]);
  st_run_context_free (ctxs[1]);
  st_registry_free (reg);
  return rc;
}
