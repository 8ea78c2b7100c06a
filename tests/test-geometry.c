/* strata — tests of the geometric stages: flip, rotate90, crop, pad, affine,
 * resize.
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
 * (L_p-norm pooling) is checked against PyTorch's formula and gradcheck.
 *
 * affine is checked against a reference that solves the forward map for
 * each output pixel and samples from the taps' definitions, against the
 * exact stages for quarter turns and mirrors, as an adjoint, with
 * gradcheck, whole against strips, and 16-bit through `strata run`.
 * resize's bicubic and lanczos are checked against their definitions (as
 * OpenCV and PIL compute them); fit=contain and cover against resize then
 * pad or crop; width or height alone against the rounded aspect ratio.
 * tests/bench/oracle-affine.py compares both with OpenCV. */
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

/* ---- affine -------------------------------------------------------------------- */

/* One affine case: the stage's parameters and, for the reference, the map
 * they mean, written out as the README states it. */
typedef struct {
  const char *params;
  gboolean has_matrix;
  double matrix[6];            /* forward, input to output */
  double rotate, sx, sy, shear_x, tx, ty;
  int interpolation;           /* 0 nearest, 1 bilinear, 2 bicubic */
  int border;                  /* as Case's pad */
  float value;
  gboolean fit;
  double shear_y;
} AffineCase;

static const AffineCase affine_cases[] = {
  { "", FALSE, { 0 }, 0, 1, 1, 0, 0, 0, 1, 0, 0, FALSE, 0 },
  { "matrix=1.2,0.3,-1,-0.2,0.9,0.5", TRUE, { 1.2, 0.3, -1, -0.2, 0.9, 0.5 }, 0, 1, 1, 0, 0, 0,
    1, 0, 0, FALSE, 0 },
  { "rotate=30 interpolation=bicubic border=reflect", FALSE, { 0 }, 30, 1, 1, 0, 0, 0, 2, 2, 0, FALSE, 0 },
  { "scale=0.7,1.3 interpolation=nearest border=edge", FALSE, { 0 }, 0, 0.7, 1.3, 0, 0, 0, 0, 1, 0, FALSE, 0 },
  { "translate=2.25,-1.5 border=wrap", FALSE, { 0 }, 0, 1, 1, 0, 2.25, -1.5, 1, 3, 0, FALSE, 0 },
  { "shear=20 border=constant value=0.25", FALSE, { 0 }, 0, 1, 1, 20, 0, 0, 1, 4, 0.25f, FALSE, 0 },
  { "rotate=-33 scale=1.5 size=fit interpolation=bicubic", FALSE, { 0 }, -33, 1.5, 1.5, 0, 0, 0,
    2, 0, 0, TRUE, 0 },
  { "rotate=10 shear=-15 scale=0.5,2 translate=1,1 border=edge size=fit", FALSE, { 0 }, 10, 0.5, 2,
    -15, 1, 1, 1, 1, 0, TRUE, 0 },
  { "shear=20,-10 rotate=5 border=reflect", FALSE, { 0 }, 5, 1, 1, 20, 0, 0, 1, 2, 0, FALSE, -10 },
};

/* The forward map of k for a w x h input, and the output size. */
static void
ref_affine_map (const AffineCase *k, int w, int h, double m[6], int *out_w, int *out_h)
{
  if (k->has_matrix)
    memcpy (m, k->matrix, sizeof k->matrix);
  else
    {
      /* p' = R·Sh·S·(p − c) + c + t, R turning counter-clockwise on screen. */
      double cx = (w - 1) / 2.0, cy = (h - 1) / 2.0, t = k->rotate * G_PI / 180;
      double c = cos (t), s = sin (t);
      double hx = tan (k->shear_x * G_PI / 180), hy = tan (k->shear_y * G_PI / 180);
      double a11 = (c + s * hy) * k->sx, a12 = (c * hx + s) * k->sy;
      double a21 = (c * hy - s) * k->sx, a22 = (c - s * hx) * k->sy;
      m[0] = a11, m[1] = a12, m[2] = cx + k->tx - a11 * cx - a12 * cy;
      m[3] = a21, m[4] = a22, m[5] = cy + k->ty - a21 * cx - a22 * cy;
    }
  *out_w = w, *out_h = h;
  if (!k->fit)
    return;
  double xs[4], ys[4];
  for (int i = 0; i < 4; i++)
    {
      double x = i % 2 ? w - 0.5 : -0.5, y = i / 2 ? h - 0.5 : -0.5;
      xs[i] = m[0] * x + m[1] * y + m[2];
      ys[i] = m[3] * x + m[4] * y + m[5];
    }
  double x0 = MIN (MIN (xs[0], xs[1]), MIN (xs[2], xs[3])), x1 = MAX (MAX (xs[0], xs[1]), MAX (xs[2], xs[3]));
  double y0 = MIN (MIN (ys[0], ys[1]), MIN (ys[2], ys[3])), y1 = MAX (MAX (ys[0], ys[1]), MAX (ys[2], ys[3]));
  *out_w = (int) ceil (x1 - x0 - 1e-6);
  *out_h = (int) ceil (y1 - y0 - 1e-6);
  m[2] += (*out_w - 1) / 2.0 - (x0 + x1) / 2;
  m[5] += (*out_h - 1) / 2.0 - (y0 + y1) / 2;
}

/* Keys' cubic at a = −0.75, expanded. */
static double
ref_cubic (double t)
{
  t = fabs (t);
  if (t <= 1)
    return 1.25 * t * t * t - 2.25 * t * t + 1;
  if (t < 2)
    return -0.75 * t * t * t + 3.75 * t * t - 6 * t + 3;
  return 0;
}

static double
ref_tap (const float *plane, int w, int h, double x, double y, const AffineCase *k)
{
  int ix = ref_border ((int) x, w, k->border), iy = ref_border ((int) y, h, k->border);
  return ix < 0 || iy < 0 ? k->value : plane[(gsize) iy * w + ix];
}

/* Every output pixel solves the forward map for the input point it shows
 * (Cramer's rule) and samples there from the taps' own definitions. */
static StTensor *
ref_affine (const AffineCase *k, const StTensor *in)
{
  StShape s = in->shape;
  double m[6];
  int ow, oh;
  ref_affine_map (k, s.w, s.h, m, &ow, &oh);
  double det = m[0] * m[4] - m[1] * m[3];
  StTensor *out = st_tensor_new0 (s.n, s.c, oh, ow);
  for (int p = 0; p < s.n * s.c; p++)
    for (int y = 0; y < oh; y++)
      for (int x = 0; x < ow; x++)
        {
          const float *plane = in->data + (gsize) p * s.h * s.w;
          double u = x - m[2], v = y - m[5];
          double sx = (u * m[4] - m[1] * v) / det, sy = (m[0] * v - m[3] * u) / det;
          double fx = floor (sx), fy = floor (sy), sum = 0;
          if (k->interpolation == 0)
            sum = ref_tap (plane, s.w, s.h, floor (sx + 0.5), floor (sy + 0.5), k);
          else if (k->interpolation == 1)
            for (int j = 0; j < 2; j++)
              for (int i = 0; i < 2; i++)
                sum += (j ? sy - fy : 1 - (sy - fy)) * (i ? sx - fx : 1 - (sx - fx))
                       * ref_tap (plane, s.w, s.h, fx + i, fy + j, k);
          else
            for (int j = -1; j < 3; j++)
              for (int i = -1; i < 3; i++)
                sum += ref_cubic (sy - fy - j) * ref_cubic (sx - fx - i)
                       * ref_tap (plane, s.w, s.h, fx + i, fy + j, k);
          out->data[((gsize) p * oh + y) * ow + x] = (float) sum;
        }
  return out;
}

static void
assert_tensors_close (const StTensor *got, const StTensor *want, double tolerance)
{
  if (!st_shape_equal (got->shape, want->shape))
    {
      char a[64], b[64];
      g_error ("shape %s, want %s", st_shape_format (got->shape, a, sizeof a),
               st_shape_format (want->shape, b, sizeof b));
    }
  for (gsize i = 0; i < st_tensor_numel (want); i++)
    if (fabs (got->data[i] - want->data[i]) > tolerance)
      g_error ("element %" G_GSIZE_FORMAT ": %.7g, want %.7g", i, got->data[i], want->data[i]);
}

static void
test_affine_reference (void)
{
  GRand *rand = g_rand_new_with_seed (20);
  for (guint ci = 0; ci < G_N_ELEMENTS (affine_cases); ci++)
    for (guint si = 0; si < G_N_ELEMENTS (shapes); si++)
      for (int t = 0; t < 2; t++)
        {
          const AffineCase *k = &affine_cases[ci];
          StShape s = shapes[si];
          g_test_message ("affine %s on %dx%dx%dx%d", k->params, s.n, s.c, s.h, s.w);
          g_autoptr (StTensor) in = tu_tensor_random (rand, s.n, s.c, s.h, s.w);
          g_autoptr (StTensor) want = ref_affine (k, in);
          g_autoptr (StTensor) got = tu_run1 (reg, "affine", k->params, in, ctxs[t]);
          assert_tensors_close (got, want, 1e-5);
        }
  g_rand_free (rand);
}

/* Exact turns and mirrors equal the exact stages; a shift by one pixel
 * shows each border; size=fit holds the whole image. */
static void
test_affine_known (void)
{
  GRand *rand = g_rand_new_with_seed (21);
  const struct { const char *affine, *kind, *params; } same[] = {
    { "rotate=90 size=fit", "rotate90", "angle=90" },
    { "rotate=-90 size=fit interpolation=bicubic", "rotate90", "angle=270" },
    { "rotate=180", "flip", "direction=both" },
    { "scale=-1,1", "flip", "direction=horizontal" },
    { "matrix=1,0,0,0,-1,0 center=0,0 size=fit", "flip", "direction=vertical" },
    { "interpolation=bicubic border=wrap", "pad", "all=0" },
  };
  for (guint i = 0; i < G_N_ELEMENTS (same); i++)
    for (guint si = 0; si < G_N_ELEMENTS (shapes); si++)
      {
        StShape s = shapes[si];
        g_autoptr (StTensor) in = tu_tensor_random (rand, s.n, s.c, s.h, s.w);
        g_autoptr (StTensor) got = tu_run1 (reg, "affine", same[i].affine, in, ctxs[si % 2]);
        g_autoptr (StTensor) want = tu_run1 (reg, same[i].kind, same[i].params, in, ctxs[0]);
        g_test_message ("affine %s vs %s %s", same[i].affine, same[i].kind, same[i].params);
        assert_tensors_equal (got, want);
      }
  g_rand_free (rand);

  const float line[] = { 1, 2, 3 };
  g_autoptr (StTensor) l = tu_tensor_from (1, 1, 1, 3, line);
  const struct { const char *params; float want[3]; } shifts[] = {
    { "translate=1,0 interpolation=nearest", { 0, 1, 2 } },
    { "translate=1,0 border=edge", { 1, 1, 2 } },
    { "translate=1,0 border=reflect", { 2, 1, 2 } },
    { "translate=1,0 border=wrap", { 3, 1, 2 } },
    { "translate=-1,0 border=constant value=0.5", { 2, 3, 0.5f } },
    { "translate=0.5,0", { 0.5f, 1.5f, 2.5f } },
  };
  for (guint i = 0; i < G_N_ELEMENTS (shifts); i++)
    {
      g_autoptr (StTensor) got = tu_run1 (reg, "affine", shifts[i].params, l, ctxs[0]);
      g_autoptr (StTensor) want = tu_tensor_from (1, 1, 1, 3, shifts[i].want);
      g_test_message ("affine %s", shifts[i].params);
      assert_tensors_equal (got, want);
    }

  g_autoptr (StTensor) square = st_tensor_new0 (1, 1, 10, 10);
  g_autoptr (StTensor) turned = tu_run1 (reg, "affine", "rotate=45 size=fit", square, ctxs[0]);
  g_assert_cmpint (turned->shape.w, ==, 15);   /* ceil (10·√2) */
  g_assert_cmpint (turned->shape.h, ==, 15);
  g_autoptr (StTensor) wide = st_tensor_new0 (1, 1, 3, 5);
  g_autoptr (StTensor) big = tu_run1 (reg, "affine", "scale=2 size=fit", wide, ctxs[0]);
  g_assert_cmpint (big->shape.w, ==, 10);
  g_assert_cmpint (big->shape.h, ==, 6);

  StShape s = { 1, 1, 4, 4 };
  assert_infer_fails ("affine", "matrix=1,0,0,0,1,0 rotate=5", s,
                      "matrix gives the whole map: leave out rotate, scale, shear and translate");
  assert_infer_fails ("affine", "matrix=1,2,0,2,4,0", s, "cannot be inverted");
  assert_infer_fails ("affine", "scale=0", s, "cannot be inverted");
  assert_infer_fails ("affine", "scale=1,2,3", s, "scale takes 1 or 2 values, not 3");
  assert_infer_fails ("affine", "matrix=1,0,0,0,1", s, "matrix takes 6 values, not 5");
  assert_infer_fails ("affine", "scale=1000 size=fit", (StShape) { 1, 1, 2000, 2000 },
                      "size=fit needs 2000000x2000000 pixels");
}

/* <F x, g> = <x, B g> for the stage's forward F (with a zero border: a
 * constant one is an offset) and backward B. */
static void
check_adjoint (const char *kind, const char *params, StShape s, GRand *rand, StRunContext *ctx)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (StStage) stage = tu_stage_new (reg, kind, kind, params, &error);
  g_assert_no_error (error);
  g_autoptr (StTensor) x = tu_tensor_random (rand, s.n, s.c, s.h, s.w);
  const StTensor *ins[] = { x };
  g_autoptr (StTensor) y = tu_stage_run (stage, ins, 1, ctx, &error);
  g_assert_no_error (error);
  g_autoptr (StTensor) g = tu_tensor_random (rand, y->shape.n, y->shape.c, y->shape.h, y->shape.w);
  g_autoptr (StTensor) dx = st_tensor_new0 (s.n, s.c, s.h, s.w);
  StTensor *grads[] = { dx };
  g_assert_true (stage->kind->backward (stage, ctx, ins, y, g, grads, &error));
  g_assert_no_error (error);
  double fx_g = 0, x_bg = 0;
  for (gsize i = 0; i < st_tensor_numel (y); i++)
    fx_g += (double) y->data[i] * g->data[i];
  for (gsize i = 0; i < st_tensor_numel (x); i++)
    x_bg += (double) x->data[i] * dx->data[i];
  g_assert_cmpfloat_with_epsilon (fx_g, x_bg, 1e-4 * (1 + fabs (x_bg)));
}

static void
test_affine_backward (void)
{
  GRand *rand = g_rand_new_with_seed (22);
  const char *params[] = {
    "rotate=30 interpolation=bicubic border=reflect",
    "scale=0.7,1.3 interpolation=nearest border=edge",
    "translate=2.25,-1.5 border=wrap",
    "rotate=-33 scale=1.5 size=fit",
    "matrix=1.2,0.3,-1,-0.2,0.9,0.5",
  };
  for (guint i = 0; i < G_N_ELEMENTS (params); i++)
    for (guint si = 0; si < G_N_ELEMENTS (shapes); si++)
      {
        StShape s = shapes[si];
        g_test_message ("affine %s on %dx%dx%dx%d", params[i], s.n, s.c, s.h, s.w);
        check_adjoint ("affine", params[i], s, rand, ctxs[si % 2]);
        TuParams p;
        tu_params_parse (&p, params[i]);
        StGradcheckResult result;
        g_autoptr (GError) error = NULL;
        gboolean ok = st_gradcheck (tu_kind (reg, "affine"), p.keys, p.values, p.n, &s, 1, TRUE,
                                    1, 5e-2, 1e-3, &result, &error);
        tu_params_clear (&p);
        g_assert_no_error (error);
        g_assert_true (ok);
      }
  g_rand_free (rand);
}

/* Each level of path within `levels` of the reference's, at the file's
 * depth (the stage's floats and the reference's doubles may round either
 * side of a half level). */
static void
assert_image_near (const char *path, const StTensor *want, int levels)
{
  g_autoptr (GError) error = NULL;
  StImageInfo info;
  g_autoptr (StTensor) got = st_image_load (path, 0, &info, &error);
  g_assert_no_error (error);
  g_assert_true (st_shape_equal (got->shape, want->shape));
  double scale = (1 << info.bit_depth) - 1;
  for (gsize i = 0; i < st_tensor_numel (want); i++)
    {
      /* Rounded as the writers do, in float, half up. */
      long g = lrint (got->data[i] * scale);
      long w = (long) floorf (CLAMP (want->data[i], 0.0f, 1.0f) * (float) scale + 0.5f);
      if (labs (g - w) > levels)
        g_error ("%s: element %" G_GSIZE_FORMAT " is %g, want %g", path, i, got->data[i], want->data[i]);
    }
}

/* affine is not local: asked for strips, the runner still runs it whole,
 * with the same bytes, and those are the reference's. */
static void
test_affine_strips (void)
{
  g_autofree char *dir = tu_make_tmpdir ("strata-geometry-XXXXXX");
  g_autoptr (StTensor) in = NULL;
  g_autofree char *input = write_input (dir, &in);
  g_autofree char *whole = g_build_filename (dir, "whole.png", NULL);
  g_autofree char *strips = g_build_filename (dir, "strips.png", NULL);
  const guint chosen[] = { 2, 5, 6 };
  for (guint i = 0; i < G_N_ELEMENTS (chosen); i++)
    {
      const AffineCase *k = &affine_cases[chosen[i]];
      g_autofree char *chain = g_strdup_printf ("affine %s", k->params);
      g_test_message ("%s", chain);
      g_autoptr (GError) error = NULL;
      g_autoptr (StPipeline) p = st_pipeline_load_inline (reg, chain, &error);
      g_assert_no_error (error);
      StRunSummary s = run_images (p, input, whole, 0, G_MAXUINT64);
      s = run_images (p, input, strips, 16, 1);
      g_assert_cmpuint (s.in_strips, ==, 0);
      assert_same_bytes (whole, strips);
      g_autoptr (StTensor) want = ref_affine (k, in);
      assert_image_near (whole, want, 1);
    }
  tu_remove_tree (dir);
}

/* 16 bits in, 16 bits out through `strata run`, each level within one of
 * the reference. */
static void
test_affine_cli_16bit (void)
{
  const char *exe = g_getenv ("STRATA_EXE");
  g_assert_nonnull (exe);
  g_autofree char *dir = tu_make_tmpdir ("strata-geometry-XXXXXX");
  g_autofree char *input = g_build_filename (dir, "deep.png", NULL);
  g_autofree char *out = g_build_filename (dir, "out.png", NULL);
  GRand *rand = g_rand_new_with_seed (23);
  g_autoptr (StTensor) t = tu_tensor_random (rand, 1, 3, 23, 37);
  g_rand_free (rand);
  g_autoptr (GError) error = NULL;
  g_assert_true (st_image_save (t, input, st_image_format_from_name (input), 16, 90, &error));
  g_assert_no_error (error);
  g_autoptr (StTensor) in = st_image_load (input, 0, NULL, &error);
  g_assert_no_error (error);

  const AffineCase *k = &affine_cases[2];
  g_autofree char *chain = g_strdup_printf ("affine %s", k->params);
  TuResult r = tu_run (exe, "run", chain, input, "-o", out, "--quiet", NULL);
  g_assert_cmpint (r.status, ==, 0);
  tu_result_clear (&r);
  StImageInfo info;
  g_autoptr (StTensor) got = st_image_load (out, 0, &info, &error);
  g_assert_no_error (error);
  g_assert_cmpint (info.bit_depth, ==, 16);
  g_autoptr (StTensor) want = ref_affine (k, in);
  assert_image_near (out, want, 1);

  r = tu_run (exe, "run", "affine matrix=0,0,0,0,0,0", input, "-o", out, NULL);
  g_assert_cmpint (r.status, !=, 0);
  g_assert_nonnull (strstr (r.err, "cannot be inverted"));
  tu_result_clear (&r);
  tu_remove_tree (dir);
}

/* ---- resize: bicubic, lanczos, aspect ratio, contain and cover ---------------- */

/* Lanczos-3 from its definition: sinc(x)·sinc(x/3) inside |x| < 3. */
static double
ref_lanczos3 (double x)
{
  if (fabs (x) >= 3)
    return 0;
  if (x == 0)
    return 1;
  double p = G_PI * x;
  return sin (p) / p * sin (p / 3) / (p / 3);
}

/* The weight output i of an axis from in to out pixels gives input j:
 * bicubic as OpenCV (edge taps clamped, so they pile onto the edge pixel),
 * lanczos as PIL (window stretched when shrinking, normalised). */
static double
ref_axis_weight (gboolean lanczos, int in, int out, int i, int j)
{
  double scale = (double) in / out;
  if (!lanczos)
    {
      double src = (i + 0.5) * scale - 0.5, f = floor (src), w = 0;
      for (int m = -1; m < 3; m++)
        if (CLAMP ((int) f + m, 0, in - 1) == j)
          w += ref_cubic (src - (f + m));
      return w;
    }
  double stretch = MAX (scale, 1.0), centre = (i + 0.5) * scale, sum = 0;
  for (int k = 0; k < in; k++)
    sum += ref_lanczos3 ((k + 0.5 - centre) / stretch);
  return ref_lanczos3 ((j + 0.5 - centre) / stretch) / sum;
}

static StTensor *
ref_resize (const StTensor *in, int ow, int oh, gboolean lanczos)
{
  StShape s = in->shape;
  StTensor *out = st_tensor_new0 (s.n, s.c, oh, ow);
  for (int p = 0; p < s.n * s.c; p++)
    for (int y = 0; y < oh; y++)
      for (int x = 0; x < ow; x++)
        {
          double sum = 0;
          for (int j = 0; j < s.h; j++)
            {
              double wy = ref_axis_weight (lanczos, s.h, oh, y, j);
              if (wy != 0)
                for (int i = 0; i < s.w; i++)
                  sum += wy * ref_axis_weight (lanczos, s.w, ow, x, i)
                         * in->data[((gsize) p * s.h + j) * s.w + i];
            }
          out->data[((gsize) p * oh + y) * ow + x] = (float) sum;
        }
  return out;
}

static void
test_resize_kernels (void)
{
  GRand *rand = g_rand_new_with_seed (30);
  const int sizes[][2] = { { 1, 1 }, { 3, 2 }, { 9, 7 }, { 2, 11 }, { 5, 5 } };
  for (int lanczos = 0; lanczos < 2; lanczos++)
    for (guint si = 0; si < G_N_ELEMENTS (shapes); si++)
      for (guint oi = 0; oi < G_N_ELEMENTS (sizes); oi++)
        {
          StShape s = shapes[si];
          int ow = sizes[oi][0], oh = sizes[oi][1];
          g_autofree char *params = g_strdup_printf ("width=%d height=%d interpolation=%s", ow, oh,
                                                     lanczos ? "lanczos" : "bicubic");
          g_test_message ("resize %s on %dx%dx%dx%d", params, s.n, s.c, s.h, s.w);
          g_autoptr (StTensor) in = tu_tensor_random (rand, s.n, s.c, s.h, s.w);
          g_autoptr (StTensor) want = ref_resize (in, ow, oh, lanczos);
          g_autoptr (StTensor) got = tu_run1 (reg, "resize", params, in, ctxs[oi % 2]);
          assert_tensors_close (got, want, 2e-5);
        }
  /* Same size is the identity, exactly. */
  g_autoptr (StTensor) in = tu_tensor_random (rand, 2, 3, 5, 7);
  g_autoptr (StTensor) cubic = tu_run1 (reg, "resize", "width=7 height=5 interpolation=bicubic", in, ctxs[1]);
  assert_tensors_equal (cubic, in);
  g_autoptr (StTensor) lz = tu_run1 (reg, "resize", "width=7 height=5 interpolation=lanczos", in, ctxs[1]);
  assert_tensors_equal (lz, in);
  g_rand_free (rand);
}

/* contain is resize to the aspect-true size inside, then pad; cover is
 * resize to the aspect-true size around, then a centred crop: both checked
 * as those two steps. */
typedef struct {
  const char *params;          /* after width=W height=H */
  int w, h;
  gboolean contain;
  const char *method;
  int border;                  /* as Case's pad */
  float value;
} FitCase;

static const FitCase fit_cases[] = {
  { "fit=contain interpolation=bicubic border=constant value=0.25", 9, 4, TRUE, "bicubic", 4, 0.25f },
  { "fit=contain interpolation=lanczos border=reflect", 4, 9, TRUE, "lanczos", 2, 0 },
  { "fit=contain interpolation=area border=edge", 6, 6, TRUE, "area", 1, 0 },
  { "fit=contain", 3, 1, TRUE, "bilinear", 0, 0 },
  { "fit=cover interpolation=area", 5, 5, FALSE, "area", 0, 0 },
  { "fit=cover interpolation=nearest", 3, 7, FALSE, "nearest", 0, 0 },
  { "fit=cover interpolation=lanczos", 8, 3, FALSE, "lanczos", 0, 0 },
};

static gint64
ref_round_aspect (int a, int b, int given)
{
  return MAX ((gint64) floor ((double) a * given / b + 0.5), 1);
}

static void
test_resize_fit (void)
{
  GRand *rand = g_rand_new_with_seed (31);
  for (guint ci = 0; ci < G_N_ELEMENTS (fit_cases); ci++)
    for (guint si = 0; si < G_N_ELEMENTS (shapes); si++)
      {
        const FitCase *k = &fit_cases[ci];
        StShape s = shapes[si];
        /* The scale that fits inside (contain) or covers (cover). */
        double fx = (double) k->w / s.w, fy = (double) k->h / s.h;
        gboolean by_width = k->contain ? fx <= fy : fx > fy;
        int iw = by_width ? k->w : (int) ref_round_aspect (s.w, s.h, k->h);
        int ih = by_width ? (int) ref_round_aspect (s.h, s.w, k->w) : k->h;
        iw = k->contain ? MIN (iw, k->w) : MAX (iw, k->w);
        ih = k->contain ? MIN (ih, k->h) : MAX (ih, k->h);
        g_autofree char *params = g_strdup_printf ("width=%d height=%d %s", k->w, k->h, k->params);
        g_autofree char *inner = g_strdup_printf ("width=%d height=%d interpolation=%s", iw, ih, k->method);
        g_test_message ("resize %s on %dx%dx%dx%d (scaled to %dx%d)", params, s.n, s.c, s.h, s.w,
                        iw, ih);
        g_autoptr (StTensor) in = tu_tensor_random (rand, s.n, s.c, s.h, s.w);
        g_autoptr (StTensor) scaled = tu_run1 (reg, "resize", inner, in, ctxs[0]);
        Case step;
        if (k->contain)
          {
            int left = (k->w - iw) / 2, top = (k->h - ih) / 2;
            step = (Case) { "pad", NULL, REF_PAD,
                            { top, k->h - ih - top, left, k->w - iw - left, k->border }, k->value };
          }
        else
          step = (Case) { "crop", NULL, REF_CROP, { -1, 0, k->w, k->h }, 0 };
        g_autoptr (StTensor) want = reference (&step, scaled);
        g_autoptr (StTensor) got = tu_run1 (reg, "resize", params, in, ctxs[si % 2]);
        assert_tensors_equal (got, want);
      }
  g_rand_free (rand);
}

static void
test_resize_aspect (void)
{
  GRand *rand = g_rand_new_with_seed (32);
  g_autoptr (StTensor) in = tu_tensor_random (rand, 1, 3, 30, 45);
  g_rand_free (rand);
  const struct { const char *params; int w, h; } keep[] = {
    { "width=30", 30, 20 }, { "height=10", 15, 10 }, { "width=7 interpolation=area", 7, 5 },
    { "height=1", 2, 1 }, { "width=1", 1, 1 },
  };
  for (guint i = 0; i < G_N_ELEMENTS (keep); i++)
    {
      g_autoptr (StTensor) got = tu_run1 (reg, "resize", keep[i].params, in, ctxs[0]);
      g_autofree char *both = g_strdup_printf ("%s %s=%d", keep[i].params,
                                               strstr (keep[i].params, "width") ? "height" : "width",
                                               strstr (keep[i].params, "width") ? keep[i].h : keep[i].w);
      g_autoptr (StTensor) want = tu_run1 (reg, "resize", both, in, ctxs[0]);
      g_test_message ("resize %s", keep[i].params);
      g_assert_cmpint (got->shape.w, ==, keep[i].w);
      g_assert_cmpint (got->shape.h, ==, keep[i].h);
      assert_tensors_equal (got, want);
    }

  /* contain puts the image in the middle; cover shows the middle. */
  const float m[] = { 1, 2, 3, 4, 5, 6, 7, 8 };
  g_autoptr (StTensor) wide = tu_tensor_from (1, 1, 2, 4, m);
  g_autoptr (StTensor) contained = tu_run1 (reg, "resize", "width=4 height=4 fit=contain interpolation=nearest "
                                            "border=constant value=0.5", wide, ctxs[0]);
  const float want_contain[] = { 0.5f, 0.5f, 0.5f, 0.5f, 1, 2, 3, 4, 5, 6, 7, 8, 0.5f, 0.5f, 0.5f, 0.5f };
  g_autoptr (StTensor) wc = tu_tensor_from (1, 1, 4, 4, want_contain);
  assert_tensors_equal (contained, wc);
  g_autoptr (StTensor) covered = tu_run1 (reg, "resize", "width=2 height=2 fit=cover", wide, ctxs[0]);
  const float want_cover[] = { 2, 3, 6, 7 };
  g_autoptr (StTensor) wv = tu_tensor_from (1, 1, 2, 2, want_cover);
  assert_tensors_equal (covered, wv);

  StShape s = { 1, 1, 1, 4000 };
  assert_infer_fails ("resize", "interpolation=bicubic", s,
                      "give width, height or both (one alone keeps the aspect ratio)");
  assert_infer_fails ("resize", "height=100", s,
                      "keeping the 4000x1 input's aspect ratio gives 400000x100");
}

/* resize needs its whole input: asked for strips, the runner runs it
 * whole, with the same bytes. */
static void
test_resize_strips (void)
{
  g_autofree char *dir = tu_make_tmpdir ("strata-geometry-XXXXXX");
  g_autoptr (StTensor) in = NULL;
  g_autofree char *input = write_input (dir, &in);
  g_autofree char *whole = g_build_filename (dir, "whole.png", NULL);
  g_autofree char *strips = g_build_filename (dir, "strips.png", NULL);
  const char *chains[] = {
    "resize width=150 height=150 fit=contain interpolation=lanczos border=reflect",
    "resize height=123 interpolation=bicubic",
    "resize width=120 height=200 fit=cover interpolation=area",
  };
  for (guint i = 0; i < G_N_ELEMENTS (chains); i++)
    {
      g_test_message ("%s", chains[i]);
      g_autoptr (GError) error = NULL;
      g_autoptr (StPipeline) p = st_pipeline_load_inline (reg, chains[i], &error);
      g_assert_no_error (error);
      run_images (p, input, whole, 0, G_MAXUINT64);
      StRunSummary s = run_images (p, input, strips, 16, 1);
      g_assert_cmpuint (s.in_strips, ==, 0);
      assert_same_bytes (whole, strips);
      g_autoptr (StTensor) want = tu_run1 (reg, "resize", chains[i] + strlen ("resize "), in, ctxs[1]);
      assert_image_near (whole, want, 0);
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
  g_test_add_func ("/geometry/affine/reference", test_affine_reference);
  g_test_add_func ("/geometry/affine/known", test_affine_known);
  g_test_add_func ("/geometry/affine/backward", test_affine_backward);
  g_test_add_func ("/geometry/affine/strips", test_affine_strips);
  g_test_add_func ("/geometry/affine/cli-16bit", test_affine_cli_16bit);
  g_test_add_func ("/geometry/resize/kernels", test_resize_kernels);
  g_test_add_func ("/geometry/resize/fit", test_resize_fit);
  g_test_add_func ("/geometry/resize/aspect", test_resize_aspect);
  g_test_add_func ("/geometry/resize/strips", test_resize_strips);
  int rc = g_test_run ();
  st_run_context_free (ctxs[0]);
  st_run_context_free (ctxs[1]);
  st_registry_free (reg);
  return rc;
}
