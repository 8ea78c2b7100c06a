/* strata — tests of the preprocessing stages: resize, normalize, invert.
 *
 * resize is checked against references written here in double from the
 * definitions (PyTorch's bilinear and nearest with align_corners=False,
 * the exact box filter for area), and against known answers that pin the
 * conventions down (the 2x2 -> 4x4 bilinear PyTorch prints, block means).
 * normalize and invert are checked by value and their backward through
 * st_gradcheck.  Every case runs with 1 and 3 threads. */
#include "context.h"
#include "registry.h"
#include "stage.h"
#include "testutil.h"

#include <math.h>
#include <string.h>

static StRegistry *reg;
static StRunContext *ctxs[2];        /* 1 and 3 threads */

/* ---- Helpers ---------------------------------------------------------------- */

/* One stage on one input; asserts success. */
static StTensor *
run1 (const char *kind_name, const char *params, const StTensor *in, int ctx_index)
{
  return tu_run1 (reg, kind_name, params, in, ctxs[ctx_index]);
}

/* The error of building and inferring kind with params on shape. */
static GError *
stage_error (const char *kind_name, const char *params, StShape shape)
{
  GError *error = NULL;
  StStage *stage = tu_stage_new (reg, kind_name, kind_name, params, &error);
  if (stage)
    {
      st_stage_infer (stage, &shape, 1, &error);
      st_stage_free (stage);
    }
  g_assert_nonnull (error);
  g_test_message ("%s %s: %s", kind_name, params, error->message);
  return error;
}

static void
assert_values (const StTensor *got, const float *want, double tol)
{
  for (gsize i = 0; i < st_tensor_numel (got); i++)
    if (!(fabs (got->data[i] - want[i]) <= tol))
      g_error ("element %" G_GSIZE_FORMAT ": got %.9g, want %.9g", i, got->data[i], want[i]);
}

/* ---- References -------------------------------------------------------------- */

typedef double (*RefFunc) (const float *plane, int ih, int iw, int oh, int ow, int y, int x);

/* The source position of output i along an axis for PyTorch's bilinear
 * (align_corners=False): (i + 0.5) · in / out − 0.5, clamped at 0, computed
 * in float as PyTorch's kernel does (exact_positions: in double). */
static double
bilinear_source (int in, int out, int i, gboolean exact_positions)
{
  if (exact_positions)
    return MAX ((i + 0.5) * in / out - 0.5, 0.0);
  float scale = (float) in / (float) out;
  float src = scale * ((float) i + 0.5f) - 0.5f;
  return src < 0.0f ? 0.0 : src;
}

static double
bilinear_at (const float *p, int ih, int iw, int oh, int ow, int y, int x,
             gboolean exact_positions)
{
  double sy = ih == oh ? y : bilinear_source (ih, oh, y, exact_positions);
  double sx = iw == ow ? x : bilinear_source (iw, ow, x, exact_positions);
  int y0 = MIN ((int) floor (sy), ih - 1), x0 = MIN ((int) floor (sx), iw - 1);
  int y1 = MIN (y0 + 1, ih - 1), x1 = MIN (x0 + 1, iw - 1);
  double ly = sy - y0, lx = sx - x0;
  return (1 - ly) * ((1 - lx) * p[y0 * iw + x0] + lx * p[y0 * iw + x1])
         + ly * ((1 - lx) * p[y1 * iw + x0] + lx * p[y1 * iw + x1]);
}

/* PyTorch's bilinear, align_corners=False, from its definition. */
static double
ref_bilinear (const float *p, int ih, int iw, int oh, int ow, int y, int x)
{
  return bilinear_at (p, ih, iw, oh, ow, y, x, FALSE);
}

/* The same with positions in exact arithmetic: float positions move the
 * samples by about 1e-6 pixel, no more. */
static double
ref_bilinear_exact (const float *p, int ih, int iw, int oh, int ow, int y, int x)
{
  return bilinear_at (p, ih, iw, oh, ow, y, x, TRUE);
}

/* PyTorch's 'nearest': floor(dst * in / out), the scale a float as there. */
static int
ref_nearest_index (int in, int out, int i)
{
  return MIN ((int) floorf ((float) i * ((float) in / (float) out)), in - 1);
}

static double
ref_nearest (const float *p, int ih, int iw, int oh, int ow, int y, int x)
{
  return p[ref_nearest_index (ih, oh, y) * iw + ref_nearest_index (iw, ow, x)];
}

/* The exact box filter: the mean of the source over [y·ih/oh, (y+1)·ih/oh)
 * × [x·iw/ow, (x+1)·iw/ow), pixels weighted by their overlap. */
static double
ref_area (const float *p, int ih, int iw, int oh, int ow, int y, int x)
{
  double y_lo = (double) y * ih / oh, y_hi = (double) (y + 1) * ih / oh;
  double x_lo = (double) x * iw / ow, x_hi = (double) (x + 1) * iw / ow;
  double sum = 0;
  for (int sy = 0; sy < ih; sy++)
    {
      double wy = MIN (y_hi, sy + 1.0) - MAX (y_lo, (double) sy);
      if (wy <= 0)
        continue;
      for (int sx = 0; sx < iw; sx++)
        {
          double wx = MIN (x_hi, sx + 1.0) - MAX (x_lo, (double) sx);
          if (wx > 0)
            sum += wy * wx * p[sy * iw + sx];
        }
    }
  return sum / ((y_hi - y_lo) * (x_hi - x_lo));
}

static void
check_resize (const char *method, RefFunc ref, const StTensor *in, int oh, int ow, double tol)
{
  g_autofree char *params = g_strdup_printf ("width=%d height=%d interpolation=%s", ow, oh, method);
  for (int t = 0; t < 2; t++)
    {
      g_autoptr (StTensor) out = run1 ("resize", params, in, t);
      const StShape is = in->shape;
      g_assert_cmpint (out->shape.n, ==, is.n);
      g_assert_cmpint (out->shape.c, ==, is.c);
      g_assert_cmpint (out->shape.h, ==, oh);
      g_assert_cmpint (out->shape.w, ==, ow);
      for (int p = 0; p < is.n * is.c; p++)
        for (int y = 0; y < oh; y++)
          for (int x = 0; x < ow; x++)
            {
              double want = ref (in->data + (gsize) p * is.h * is.w, is.h, is.w, oh, ow, y, x);
              float got = out->data[((gsize) p * oh + y) * ow + x];
              if (!(fabs (got - want) <= tol))
                g_error ("%s %dx%d -> %dx%d, plane %d (%d, %d): got %.9g, want %.9g",
                         method, is.h, is.w, oh, ow, p, y, x, got, want);
            }
    }
}

/* Sizes (h, w) -> (h, w): up, down, both at once, non-integer ratios,
 * identity, to and from a single pixel, the 28x28 of Fashion-MNIST. */
static const int resize_cases[][4] = {
  { 4, 4, 2, 2 },
  { 2, 2, 4, 4 },
  { 3, 3, 5, 7 },
  { 5, 7, 3, 3 },
  { 28, 28, 14, 14 },
  { 28, 28, 56, 56 },
  { 28, 28, 20, 36 },
  { 28, 28, 28, 28 },
  { 96, 64, 28, 28 },
  { 17, 13, 28, 28 },
  { 1, 1, 3, 4 },
  { 6, 9, 1, 1 },
  { 7, 1, 3, 5 },
};

/* ---- resize ---------------------------------------------------------------- */

static void
test_resize_reference (void)
{
  static const struct {
    const char *method;
    RefFunc ref;
  } methods[] = {
    { "bilinear", ref_bilinear },
    { "nearest", ref_nearest },
    { "area", ref_area },
  };
  g_autoptr (GRand) rand = g_rand_new_with_seed (3);
  for (guint m = 0; m < G_N_ELEMENTS (methods); m++)
    for (guint i = 0; i < G_N_ELEMENTS (resize_cases); i++)
      {
        const int *c = resize_cases[i];
        g_autoptr (StTensor) in = tu_tensor_random (rand, 2, 3, c[0], c[1]);
        check_resize (methods[m].method, methods[m].ref, in, c[2], c[3], 1e-6);
        if (methods[m].ref == ref_bilinear)
          check_resize ("bilinear", ref_bilinear_exact, in, c[2], c[3], 2e-5);
      }
}

static void
test_resize_bilinear_known (void)
{
  static const float grid4[16] = { 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15 };
  static const float grid2[4] = { 0, 1, 2, 3 };
  g_autoptr (StTensor) in4 = tu_tensor_from (1, 1, 4, 4, grid4);
  g_autoptr (StTensor) in2 = tu_tensor_from (1, 1, 2, 2, grid2);
  for (int t = 0; t < 2; t++)
    {
      /* Halving samples between pixel pairs: the 2x2 block means, where
       * align_corners=True would give the corners 0, 3, 12, 15. */
      g_autoptr (StTensor) down = run1 ("resize", "width=2 height=2", in4, t);
      static const float want_down[] = { 2.5, 4.5, 10.5, 12.5 };
      assert_values (down, want_down, 0);

      /* What PyTorch prints for F.interpolate(arange(4).view(1,1,2,2),
       * size=(4,4), mode='bilinear', align_corners=False). */
      g_autoptr (StTensor) up = run1 ("resize", "width=4 height=4", in2, t);
      static const float want_up[] = {
        0.0, 0.25, 0.75, 1.0,
        0.5, 0.75, 1.25, 1.5,
        1.5, 1.75, 2.25, 2.5,
        2.0, 2.25, 2.75, 3.0,
      };
      assert_values (up, want_up, 0);

      /* Same size: an exact copy. */
      g_autoptr (StTensor) same = run1 ("resize", "width=4 height=4", in4, t);
      assert_values (same, grid4, 0);

      /* One axis only. */
      g_autoptr (StTensor) wide = run1 ("resize", "width=4 height=2", in2, t);
      static const float want_wide[] = { 0.0, 0.25, 0.75, 1.0, 2.0, 2.25, 2.75, 3.0 };
      assert_values (wide, want_wide, 0);
    }
}

static void
test_resize_nearest_known (void)
{
  static const float row3[3] = { 10, 20, 30 };
  static const float grid2[4] = { 0, 1, 2, 3 };
  g_autoptr (StTensor) in3 = tu_tensor_from (1, 1, 1, 3, row3);
  g_autoptr (StTensor) in2 = tu_tensor_from (1, 1, 2, 2, grid2);
  for (int t = 0; t < 2; t++)
    {
      g_autoptr (StTensor) five = run1 ("resize", "width=5 height=1 interpolation=nearest", in3, t);
      static const float want_five[] = { 10, 10, 20, 20, 30 };     /* floor(i * 0.6) */
      assert_values (five, want_five, 0);
      g_autoptr (StTensor) two = run1 ("resize", "width=2 height=1 interpolation=nearest", in3, t);
      static const float want_two[] = { 10, 20 };                  /* floor(i * 1.5) */
      assert_values (two, want_two, 0);
      g_autoptr (StTensor) up = run1 ("resize", "width=4 height=4 interpolation=nearest", in2, t);
      static const float want_up[] = { 0, 0, 1, 1, 0, 0, 1, 1, 2, 2, 3, 3, 2, 2, 3, 3 };
      assert_values (up, want_up, 0);
    }
}

static void
test_resize_area_known (void)
{
  static const float grid4[16] = { 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15 };
  g_autoptr (StTensor) in4 = tu_tensor_from (1, 1, 4, 4, grid4);
  g_autoptr (GRand) rand = g_rand_new_with_seed (5);
  for (int t = 0; t < 2; t++)
    {
      /* Integer factors: block means (PyTorch's adaptive_avg_pool2d). */
      g_autoptr (StTensor) down = run1 ("resize", "width=2 height=2 interpolation=area", in4, t);
      static const float want_down[] = { 2.5, 4.5, 10.5, 12.5 };
      assert_values (down, want_down, 1e-6);

      g_autoptr (StTensor) in66 = tu_tensor_random (rand, 2, 2, 6, 6);
      g_autoptr (StTensor) blocks = run1 ("resize", "width=3 height=2 interpolation=area", in66, t);
      for (int p = 0; p < 4; p++)
        for (int by = 0; by < 2; by++)
          for (int bx = 0; bx < 3; bx++)
            {
              double sum = 0;
              for (int y = 0; y < 3; y++)
                for (int x = 0; x < 2; x++)
                  sum += in66->data[(p * 6 + by * 3 + y) * 6 + bx * 2 + x];
              g_assert_cmpfloat_with_epsilon (blocks->data[(p * 2 + by) * 3 + bx], sum / 6, 1e-6);
            }

      /* Enlarging 2 -> 3: the middle pixel straddles both halves. */
      static const float pair[2] = { 1, 4 };
      g_autoptr (StTensor) in_pair = tu_tensor_from (1, 1, 1, 2, pair);
      g_autoptr (StTensor) three = run1 ("resize", "width=3 height=1 interpolation=area", in_pair, t);
      static const float want_three[] = { 1, 2.5, 4 };
      assert_values (three, want_three, 1e-6);

      /* Non-integer ratios keep a constant and the mean of a linear ramp. */
      static const int sizes[][4] = { { 7, 5, 3, 4 }, { 28, 28, 10, 9 }, { 5, 7, 8, 11 } };
      for (guint s = 0; s < G_N_ELEMENTS (sizes); s++)
        {
          const int ih = sizes[s][0], iw = sizes[s][1], oh = sizes[s][2], ow = sizes[s][3];
          g_autoptr (StTensor) flat = st_tensor_new0 (1, 2, ih, iw);
          g_autoptr (StTensor) ramp = st_tensor_new0 (1, 2, ih, iw);
          double ramp_mean = 0;
          for (int y = 0; y < ih; y++)
            for (int x = 0; x < iw; x++)
              for (int c = 0; c < 2; c++)
                {
                  flat->data[(c * ih + y) * iw + x] = 0.3f;
                  float v = 0.1f + 0.05f * x + 0.02f * y + c;
                  ramp->data[(c * ih + y) * iw + x] = v;
                  ramp_mean += v;
                }
          ramp_mean /= 2.0 * ih * iw;
          g_autofree char *params = g_strdup_printf ("width=%d height=%d interpolation=area", ow, oh);
          g_autoptr (StTensor) flat_out = run1 ("resize", params, flat, t);
          for (gsize i = 0; i < st_tensor_numel (flat_out); i++)
            g_assert_cmpfloat_with_epsilon (flat_out->data[i], 0.3, 1e-6);
          g_autoptr (StTensor) ramp_out = run1 ("resize", params, ramp, t);
          double mean = 0;
          for (gsize i = 0; i < st_tensor_numel (ramp_out); i++)
            mean += ramp_out->data[i];
          mean /= st_tensor_numel (ramp_out);
          g_assert_cmpfloat_with_epsilon (mean, ramp_mean, 1e-5);
        }
    }
}

static void
test_resize_round_trip (void)
{
  /* 28 -> 56 (bilinear) -> 28 (area) is not the identity but a known
   * smoothing: up[2k] = x[k-1]/4 + 3x[k]/4, up[2k+1] = 3x[k]/4 + x[k+1]/4,
   * so the pair's mean is x[k-1]/8 + 3x[k]/4 + x[k+1]/8 along each axis. */
  g_autoptr (GRand) rand = g_rand_new_with_seed (11);
  g_autoptr (StTensor) in = tu_tensor_random (rand, 1, 1, 28, 28);
  for (int t = 0; t < 2; t++)
    {
      g_autoptr (StTensor) up = run1 ("resize", "width=56 height=56", in, t);
      g_autoptr (StTensor) back = run1 ("resize", "width=28 height=28 interpolation=area", up, t);
      g_assert_cmpint (back->shape.h, ==, 28);
      g_assert_cmpint (back->shape.w, ==, 28);
      for (int y = 1; y < 27; y++)
        for (int x = 1; x < 27; x++)
          {
            const float *p = in->data;
            const double a[3] = { 0.125, 0.75, 0.125 };
            double want = 0;
            for (int dy = -1; dy <= 1; dy++)
              for (int dx = -1; dx <= 1; dx++)
                want += a[dy + 1] * a[dx + 1] * p[(y + dy) * 28 + x + dx];
            g_assert_cmpfloat_with_epsilon (back->data[y * 28 + x], want, 1e-5);
          }
      g_autoptr (StTensor) near_up = run1 ("resize", "width=56 height=56 interpolation=nearest", in, t);
      g_autoptr (StTensor) near_back = run1 ("resize", "width=28 height=28 interpolation=nearest", near_up, t);
      assert_values (near_back, in->data, 0);
    }
}

static void
test_resize_errors (void)
{
  StShape shape = { 1, 3, 8, 8 };
  static const char *const bad[] = {
    "width=0 height=4", "", "width=4 height=4 interpolation=cubic",
    "width=4 height=-1", "width=4 height=4 size=2",
  };
  for (guint i = 0; i < G_N_ELEMENTS (bad); i++)
    {
      g_autoptr (GError) error = stage_error ("resize", bad[i], shape);
      g_assert_true (error->domain == ST_ERROR);
    }

  g_autoptr (GError) error = NULL;
  StStage *stage = tu_stage_new (reg, "resize", "resize", "width=5 height=3", &error);
  g_assert_no_error (error);
  g_assert_true (st_stage_infer (stage, &shape, 1, &error));
  g_assert_cmpint (stage->halo, ==, ST_HALO_WHOLE);
  g_assert_true (st_shape_equal (stage->out_shape, (StShape) { 1, 3, 3, 5 }));
  g_assert_cmpint (stage->kind->category, ==, ST_CATEGORY_PLUMBING);
  st_stage_free (stage);
}

/* ---- normalize and invert -------------------------------------------------- */

static void
test_normalize (void)
{
  g_autoptr (GRand) rand = g_rand_new_with_seed (7);
  g_autoptr (StTensor) rgb = tu_tensor_random (rand, 2, 3, 5, 6);
  g_autoptr (StTensor) gray = tu_tensor_random (rand, 3, 1, 28, 28);
  static const float mean[3] = { 0.5f, 0.25f, 0.0f }, std[3] = { 0.5f, 2.0f, 1.0f };
  for (int t = 0; t < 2; t++)
    {
      g_autoptr (StTensor) out = run1 ("normalize", "mean=0.5,0.25,0 std=0.5,2,1", rgb, t);
      g_assert_true (st_shape_equal (out->shape, rgb->shape));
      for (int n = 0; n < 2; n++)
        for (int c = 0; c < 3; c++)
          for (int i = 0; i < 30; i++)
            {
              gsize k = (gsize) (n * 3 + c) * 30 + i;
              g_assert_cmpfloat (out->data[k], ==, (rgb->data[k] - mean[c]) / std[c]);
            }

      /* One value for every channel; Fashion-MNIST's usual constants. */
      g_autoptr (StTensor) all = run1 ("normalize", "mean=0.25 std=4", rgb, t);
      for (gsize k = 0; k < st_tensor_numel (rgb); k++)
        g_assert_cmpfloat (all->data[k], ==, (rgb->data[k] - 0.25f) / 4.0f);
      g_autoptr (StTensor) fm = run1 ("normalize", "mean=0.2860 std=0.3530", gray, t);
      for (gsize k = 0; k < st_tensor_numel (gray); k++)
        g_assert_cmpfloat (fm->data[k], ==, (gray->data[k] - 0.2860f) / 0.3530f);
    }
}

static void
test_normalize_errors (void)
{
  StShape rgb = { 1, 3, 4, 4 }, gray = { 1, 1, 4, 4 };
  GError *error = stage_error ("normalize", "mean=0.1,0.2 std=1", rgb);
  g_assert_error (error, ST_ERROR, ST_ERROR_SHAPE);
  g_assert_nonnull (strstr (error->message,
                            "key 'mean': expected 1 value or 3 (one per channel of the input), found 2"));
  g_clear_error (&error);
  error = stage_error ("normalize", "mean=0.1 std=1,2,3,4", rgb);
  g_assert_nonnull (strstr (error->message, "key 'std': expected 1 value or 3"));
  g_assert_nonnull (strstr (error->message, "found 4"));
  g_clear_error (&error);
  error = stage_error ("normalize", "mean=0.1,0.2,0.3 std=1", gray);
  g_assert_nonnull (strstr (error->message,
                            "key 'mean': expected 1 value (the input has 1 channel), found 3"));
  g_clear_error (&error);
  error = stage_error ("normalize", "mean=0 std=1,0,2", rgb);
  g_assert_nonnull (strstr (error->message, "key 'std': expected values > 0, found 0"));
  g_clear_error (&error);
  error = stage_error ("normalize", "mean=0 std=-1", rgb);
  g_assert_nonnull (strstr (error->message, "found -1"));
  g_clear_error (&error);
  error = stage_error ("normalize", "mean=0", rgb);          /* std is required */
  g_clear_error (&error);
  error = stage_error ("normalize", "std=1", rgb);           /* and so is mean */
  g_clear_error (&error);
}

static void
test_invert (void)
{
  static const float v[] = { 0, 1, 0.25f, 0.75f, -0.5f, 2 };
  g_autoptr (StTensor) in = tu_tensor_from (1, 2, 1, 3, v);
  for (int t = 0; t < 2; t++)
    {
      g_autoptr (StTensor) out = run1 ("invert", NULL, in, t);
      static const float want[] = { 1, 0, 0.75f, 0.25f, 1.5f, -1 };
      assert_values (out, want, 0);
      g_autoptr (StTensor) twice = run1 ("invert", NULL, out, t);
      assert_values (twice, v, 0);
    }
  g_autoptr (GError) error = stage_error ("invert", "amount=1", (StShape) { 1, 1, 2, 2 });
}

static void
gradcheck (const char *kind_name, const char *params, StShape shape)
{
  const StKindEntry *entry = st_registry_lookup (reg, kind_name);
  g_assert_nonnull (entry);
  g_auto (GStrv) words = g_strsplit (params, " ", -1);
  const char *keys[8], *values[8];
  char **pairs[8];
  int n = 0;
  for (int i = 0; words[i] && *words[i]; i++, n++)
    {
      pairs[n] = g_strsplit (words[i], "=", 2);
      keys[n] = pairs[n][0];
      values[n] = pairs[n][1];
    }
  StGradcheckResult result;
  g_autoptr (GError) error = NULL;
  gboolean ok = st_gradcheck (entry->kind, keys, values, n, &shape, 1, FALSE, 1,
                              1e-2, 1e-3, &result, &error);
  g_assert_no_error (error);
  g_test_message ("%s %s: %d gradients, worst relative error %.3g (%s)", kind_name, params,
                  result.n_checked, result.max_rel_error, result.worst);
  g_assert_true (ok);
  g_assert_cmpint (result.n_checked, >, 0);
  for (int i = 0; i < n; i++)
    g_strfreev (pairs[i]);
}

static void
test_gradcheck (void)
{
  gradcheck ("normalize", "mean=0.1,-0.2,0.3 std=0.5,2,4", (StShape) { 2, 3, 4, 5 });
  gradcheck ("normalize", "mean=0.286 std=0.353", (StShape) { 3, 1, 6, 6 });
  gradcheck ("invert", "", (StShape) { 2, 3, 4, 5 });
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  reg = st_registry_new (NULL);
  ctxs[0] = st_run_context_new (1, 1);
  ctxs[1] = st_run_context_new (3, 1);

  g_test_add_func ("/resize/reference", test_resize_reference);
  g_test_add_func ("/resize/bilinear-known", test_resize_bilinear_known);
  g_test_add_func ("/resize/nearest-known", test_resize_nearest_known);
  g_test_add_func ("/resize/area-known", test_resize_area_known);
  g_test_add_func ("/resize/round-trip", test_resize_round_trip);
  g_test_add_func ("/resize/errors", test_resize_errors);
  g_test_add_func ("/normalize/values", test_normalize);
  g_test_add_func ("/normalize/errors", test_normalize_errors);
  g_test_add_func ("/invert/values", test_invert);
  g_test_add_func ("/gradcheck", test_gradcheck);

  int rc = g_test_run ();
  for (int i = 0; i < 2; i++)
    st_run_context_free (ctxs[i]);
  st_registry_free (reg);
  return rc;
}
