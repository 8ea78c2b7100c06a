/* strata — tests of the filter stages: kernel, grayscale, add, magnitude.
 *
 * The kernel plugin keeps only its fast path; the plain reference lives
 * here (per-pixel loops in double, with an explicit border lookup written
 * independently of the plugin's), and every border mode, stride, padding,
 * channel count and kernel shape is checked against it.  Known answers
 * worked by hand pin down the conventions themselves.  Every case runs with
 * 1 and 2 threads. */
#include "context.h"
#include "pipeline.h"
#include "registry.h"
#include "stage.h"
#include "testutil.h"

#include <math.h>
#include <string.h>

static StRegistry *reg;
static StRunContext *ctxs[2];        /* 1 and 2 threads */

/* ---- Helpers ---------------------------------------------------------------- */

/* One stage, one input, one thread count; asserts success. */
static StTensor *
run1 (const char *kind_name, const char *params, const StTensor *in, int ctx_index)
{
  return tu_run1 (reg, kind_name, params, in, ctxs[ctx_index]);
}

static void
assert_close (const StTensor *got, const StTensor *want, double tol, const char *what)
{
  char a[64], b[64];
  if (!st_shape_equal (got->shape, want->shape))
    g_error ("%s: shape %s, expected %s", what,
             st_shape_format (got->shape, a, sizeof a),
             st_shape_format (want->shape, b, sizeof b));
  for (gsize i = 0; i < st_tensor_numel (got); i++)
    {
      double g = got->data[i], w = want->data[i];
      if (!(fabs (g - w) <= tol * MAX (1.0, fabs (w))))
        g_error ("%s: element %" G_GSIZE_FORMAT " is %.9g, expected %.9g",
                 what, i, g, w);
    }
}

static void
assert_values (const StTensor *got, int h, int w, const float *want, const char *what)
{
  g_autoptr (StTensor) expected = tu_tensor_from (1, 1, h, w, want);
  assert_close (got, expected, 1e-6, what);
}

/* ---- The reference kernel --------------------------------------------------- */

enum { REF_ZERO, REF_EDGE, REF_REFLECT, REF_WRAP };
static const char *const border_names[] = { "zero", "edge", "reflect", "wrap" };

/* Index i on a line of n pixels, or -1 for a zero.  Reflect mirrors about
 * the edge pixel, one bounce at a time, so it holds for any distance. */
static int
ref_index (int i, int n, int border)
{
  if (i >= 0 && i < n)
    return i;
  switch (border)
    {
    case REF_ZERO:
      return -1;
    case REF_EDGE:
      return i < 0 ? 0 : n - 1;
    case REF_REFLECT:
      if (n == 1)
        return 0;
      while (i < 0 || i >= n)
        i = i < 0 ? -i : 2 * (n - 1) - i;
      return i;
    case REF_WRAP:
      while (i < 0)
        i += n;
      return i % n;
    }
  g_assert_not_reached ();
}

enum { REF_SAME = -1, REF_VALID = -2 };

/* Correlation of every channel with k (fh × fw, row-major), rotated 180°
 * when flip; padding as the plugin's param.  NULL when the output would be
 * empty. */
static StTensor *
ref_kernel (const StTensor *in, const double *k, int fh, int fw, gboolean flip,
            double scale, double offset, int border, int stride, int padding)
{
  int pt, pb, pl, pr;
  if (padding == REF_SAME)
    {
      /* TensorFlow's rule: the least total padding giving ceil(in / S)
       * outputs, the odd pixel after. */
      int th = MAX ((in->shape.h + stride - 1) / stride * stride - stride + fh - in->shape.h, 0);
      int tw = MAX ((in->shape.w + stride - 1) / stride * stride - stride + fw - in->shape.w, 0);
      pt = th / 2, pb = th - pt;
      pl = tw / 2, pr = tw - pl;
    }
  else if (padding == REF_VALID)
    pt = pb = pl = pr = 0;
  else
    pt = pb = pl = pr = padding;
  StShape s = in->shape;
  if (s.h + pt + pb < fh || s.w + pl + pr < fw)
    return NULL;
  int h2 = (s.h + pt + pb - fh) / stride + 1;
  int w2 = (s.w + pl + pr - fw) / stride + 1;
  StTensor *out = st_tensor_new0 (s.n, s.c, h2, w2);
  for (int p = 0; p < s.n * s.c; p++)
    {
      const float *plane = in->data + (gsize) p * s.h * s.w;
      for (int y = 0; y < h2; y++)
        for (int x = 0; x < w2; x++)
          {
            double acc = offset;
            for (int m = 0; m < fh; m++)
              for (int n = 0; n < fw; n++)
                {
                  double kv = flip ? k[(fh - 1 - m) * fw + (fw - 1 - n)] : k[m * fw + n];
                  int iy = ref_index (y * stride - pt + m, s.h, border);
                  int ix = ref_index (x * stride - pl + n, s.w, border);
                  double v = iy < 0 || ix < 0 ? 0.0 : plane[iy * s.w + ix];
                  acc += scale * kv * v;
                }
            out->data[((gsize) p * h2 + y) * w2 + x] = (float) acc;
          }
    }
  return out;
}

/* ---- kernel: against the reference -------------------------------------------- */

typedef struct {
  char params[512];
  int fh, fw;
  double k[64];
  double scale, offset;
  gboolean flip;
} Case;

static void
case_matrix (Case *c, const char *preset_params, int fh, int fw, const double *k)
{
  memset (c, 0, sizeof *c);
  g_strlcpy (c->params, preset_params, sizeof c->params);
  c->fh = fh;
  c->fw = fw;
  memcpy (c->k, k, sizeof (double) * fh * fw);
  c->scale = 1.0;
}

/* The same kernel given as matrix=, rows joined by ';'. */
static void
case_random (Case *c, GRand *rand, int fh, int fw)
{
  memset (c, 0, sizeof *c);
  GString *s = g_string_new ("matrix=");
  for (int i = 0; i < fh * fw; i++)
    {
      /* Multiples of 1/8: exact in text and in float. */
      c->k[i] = g_rand_int_range (rand, -16, 17) / 8.0;
      char buf[G_ASCII_DTOSTR_BUF_SIZE];
      g_string_append (s, g_ascii_dtostr (buf, sizeof buf, c->k[i]));
      if (i + 1 < fh * fw)
        g_string_append_c (s, (i + 1) % fw == 0 ? ';' : ',');
    }
  g_strlcpy (c->params, s->str, sizeof c->params);
  g_string_free (s, TRUE);
  c->fh = fh;
  c->fw = fw;
  c->scale = 1.0;
}

static void
gaussian_matrix (double *k, int size, double sigma)
{
  double sum = 0;
  for (int m = 0; m < size; m++)
    for (int n = 0; n < size; n++)
      {
        double dy = m - (size - 1) / 2.0, dx = n - (size - 1) / 2.0;
        k[m * size + n] = exp (-(dx * dx + dy * dy) / (2 * sigma * sigma));
        sum += k[m * size + n];
      }
  for (int i = 0; i < size * size; i++)
    k[i] /= sum;
}

static GPtrArray *
make_cases (void)
{
  static const double identity[] = { 1 };
  static const double sharpen[] = { 0, -1, 0, -1, 5, -1, 0, -1, 0 };
  static const double emboss[] = { -2, -1, 0, -1, 1, 1, 0, 1, 2 };
  static const double laplacian[] = { 0, 1, 0, 1, -4, 1, 0, 1, 0 };
  static const double outline[] = { -1, -1, -1, -1, 8, -1, -1, -1, -1 };
  static const double sobel_x[] = { -1, 0, 1, -2, 0, 2, -1, 0, 1 };
  static const double sobel_y[] = { -1, -2, -1, 0, 0, 0, 1, 2, 1 };
  GPtrArray *cases = g_ptr_array_new_with_free_func (g_free);
  Case *c;

#define ADD(params, fh, fw, k) \
  (c = g_new (Case, 1), case_matrix (c, params, fh, fw, k), g_ptr_array_add (cases, c))
  ADD ("preset=identity", 1, 1, identity);
  ADD ("preset=sharpen", 3, 3, sharpen);
  ADD ("preset=emboss", 3, 3, emboss);
  ADD ("preset=laplacian", 3, 3, laplacian);
  ADD ("preset=edge", 3, 3, laplacian);
  ADD ("preset=outline", 3, 3, outline);
  ADD ("preset=sobel-x", 3, 3, sobel_x);
  ADD ("preset=sobel-y", 3, 3, sobel_y);
  ADD ("preset=emboss flip=true", 3, 3, emboss);
  c->flip = TRUE;
  ADD ("preset=sharpen scale=0.5 offset=0.25", 3, 3, sharpen);
  c->scale = 0.5, c->offset = 0.25;
#undef ADD

  double box[25];
  for (int s = 2; s <= 5; s += 3)   /* 2 (even) and 5 */
    {
      for (int i = 0; i < s * s; i++)
        box[i] = 1.0 / (s * s);
      c = g_new (Case, 1);
      g_autofree char *p = g_strdup_printf ("preset=box size=%d", s);
      case_matrix (c, p, s, s, box);
      g_ptr_array_add (cases, c);
    }
  for (int i = 0; i < 9; i++)
    box[i] = 1.0 / 9;
  c = g_new (Case, 1);
  case_matrix (c, "preset=box", 3, 3, box);      /* size 0: 3 */
  g_ptr_array_add (cases, c);

  double g[64];
  gaussian_matrix (g, 7, 1.0);                     /* size 0: 2*ceil(3)+1 */
  c = g_new (Case, 1);
  case_matrix (c, "preset=gaussian sigma=1", 7, 7, g);
  g_ptr_array_add (cases, c);
  gaussian_matrix (g, 4, 0.8);
  c = g_new (Case, 1);
  case_matrix (c, "preset=gaussian sigma=0.8 size=4 scale=2 offset=-0.5", 4, 4, g);
  c->scale = 2, c->offset = -0.5;
  g_ptr_array_add (cases, c);

  g_autoptr (GRand) rand = g_rand_new_with_seed (7);
  static const int dims[][2] = { { 3, 3 }, { 2, 2 }, { 4, 4 }, { 2, 3 }, { 3, 2 },
                                 { 1, 4 }, { 5, 1 }, { 5, 5 }, { 1, 6 }, { 8, 7 } };
  for (guint i = 0; i < G_N_ELEMENTS (dims); i++)
    for (int flip = 0; flip < 2; flip++)
      {
        c = g_new (Case, 1);
        case_random (c, rand, dims[i][0], dims[i][1]);
        if (flip)
          {
            c->flip = TRUE;
            g_strlcat (c->params, " flip=true", sizeof c->params);
          }
        g_ptr_array_add (cases, c);
      }
  return cases;
}

static void
test_kernel_reference (void)
{
  static const int sizes[][2] = { { 5, 7 }, { 11, 13 }, { 9, 1 }, { 1, 9 },
                                  { 2, 2 }, { 31, 40 } };   /* h, w */
  static const int channels[] = { 1, 3, 4 };
  static const int paddings[] = { REF_SAME, REF_VALID, 1, 4 };
  g_autoptr (GPtrArray) cases = make_cases ();
  g_autoptr (GRand) rand = g_rand_new_with_seed (42);
  int n_checked = 0, n_empty = 0;

  for (guint si = 0; si < G_N_ELEMENTS (sizes); si++)
    for (guint ci = 0; ci < G_N_ELEMENTS (channels); ci++)
      {
        /* One channel runs as a batch of two, for the batch indexing. */
        int batch = channels[ci] == 1 ? 2 : 1;
        g_autoptr (StTensor) in = tu_tensor_random (rand, batch, channels[ci],
                                                 sizes[si][0], sizes[si][1]);
        for (guint ki = 0; ki < cases->len; ki++)
          for (int border = 0; border < 4; border++)
            for (int stride = 1; stride <= 3; stride++)
              for (guint pi = 0; pi < G_N_ELEMENTS (paddings); pi++)
                {
                  const Case *c = cases->pdata[ki];
                  int padding = paddings[pi];
                  char pad_text[16];
                  if (padding == REF_SAME)
                    strcpy (pad_text, "same");
                  else if (padding == REF_VALID)
                    strcpy (pad_text, "valid");
                  else
                    g_snprintf (pad_text, sizeof pad_text, "%d", padding);
                  g_autofree char *params = g_strdup_printf (
                    "%s border=%s stride=%d padding=%s", c->params,
                    border_names[border], stride, pad_text);
                  g_autofree char *what = g_strdup_printf (
                    "%dx%dx%dx%d %s", batch, channels[ci], sizes[si][0],
                    sizes[si][1], params);
                  g_autoptr (StTensor) want = ref_kernel (
                    in, c->k, c->fh, c->fw, c->flip, c->scale, c->offset,
                    border, stride, padding);

                  StTensor *got[2] = { NULL, NULL };
                  for (int t = 0; t < 2; t++)
                    {
                      g_autoptr (GError) error = NULL;
                      StStage *stage = tu_stage_new (reg, "kernel", "kernel", params, &error);
                      g_assert_no_error (error);
                      const StTensor *inputs[] = { in };
                      got[t] = tu_stage_run (stage, inputs, 1, ctxs[t], &error);
                      if (!want)
                        {
                          /* Kernel larger than the padded input. */
                          if (!error)
                            g_error ("%s: expected an error", what);
                          g_assert_error (error, ST_ERROR, ST_ERROR_SHAPE);
                          g_assert_nonnull (strstr (error->message, "is larger than the padded input"));
                        }
                      else
                        {
                          if (error)
                            g_error ("%s: %s", what, error->message);
                          assert_close (got[t], want, 1e-5, what);
                        }
                      st_stage_free (stage);
                    }
                  if (want)
                    {
                      /* Threads split rows, never a sum: bit-identical. */
                      g_assert_cmpmem (got[0]->data, st_tensor_numel (got[0]) * sizeof (float),
                                       got[1]->data, st_tensor_numel (got[1]) * sizeof (float));
                      n_checked++;
                    }
                  else
                    n_empty++;
                  st_tensor_free (got[0]);
                  st_tensor_free (got[1]);
                }
      }
  g_test_message ("%d configurations checked against the reference, %d refused as empty",
                  n_checked, n_empty);
  g_assert_cmpint (n_empty, >, 0);
}

/* ---- kernel: known answers ----------------------------------------------------- */

static void
test_kernel_2x2_valid (void)
{
  static const float in16[] = { 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16 };
  g_autoptr (StTensor) in = tu_tensor_from (1, 1, 4, 4, in16);
  for (int t = 0; t < 2; t++)
    {
      /* out(i,j) = I(i,j) + 2 I(i,j+1) + 3 I(i+1,j) + 4 I(i+1,j+1):
       * 1 + 4 + 15 + 24 = 44, each step right +10, each step down +40. */
      g_autoptr (StTensor) out = run1 ("kernel", "matrix=1,2;3,4 padding=valid", in, t);
      static const float want[] = { 44, 54, 64, 84, 94, 104, 124, 134, 144 };
      assert_values (out, 3, 3, want, "2x2 valid");

      g_autoptr (StTensor) strided = run1 ("kernel", "matrix=1,2;3,4 padding=valid stride=2", in, t);
      static const float want2[] = { 44, 64, 124, 144 };
      assert_values (strided, 2, 2, want2, "2x2 valid stride 2");

      /* An even kernel anchors at its top left under 'same' (PyTorch): all
       * the padding goes after, so the first 3x3 are the valid answer and
       * the last row and column read the zero border. */
      g_autoptr (StTensor) same = run1 ("kernel", "matrix=1,2;3,4 border=zero", in, t);
      static const float want3[] = {
        44, 54, 64, 4 + 3 * 8,
        84, 94, 104, 8 + 3 * 12,
        124, 134, 144, 12 + 3 * 16,
        13 + 2 * 14, 14 + 2 * 15, 15 + 2 * 16, 16,
      };
      assert_values (same, 4, 4, want3, "2x2 same zero");
    }
}

static void
test_kernel_emboss (void)
{
  static const float in9[] = { 1, 2, 3, 4, 5, 6, 7, 8, 9 };
  g_autoptr (StTensor) in = tu_tensor_from (1, 1, 3, 3, in9);
  /* Emboss -2,-1,0;-1,1,1;0,1,2 correlated, zero outside.  Centre:
   * -2·1 - 1·2 + 0·3 - 1·4 + 1·5 + 1·6 + 0·7 + 1·8 + 2·9 = 29; top left:
   * 1·1 + 1·2 + 1·4 + 2·5 = 17; bottom right: -2·5 - 1·6 - 1·8 + 1·9 = -15. */
  static const float want[] = { 17, 21, 7, 31, 29, 3, 11, -3, -15 };
  for (int t = 0; t < 2; t++)
    {
      g_autoptr (StTensor) out = run1 ("kernel", "preset=emboss border=zero", in, t);
      assert_values (out, 3, 3, want, "emboss 3x3 zero border");
      g_autoptr (StTensor) out2 = run1 ("kernel", "matrix=-2,-1,0;-1,1,1;0,1,2 border=zero", in, t);
      assert_values (out2, 3, 3, want, "emboss as matrix=");
    }
}

static void
test_kernel_flip (void)
{
  g_autoptr (GRand) rand = g_rand_new_with_seed (3);
  g_autoptr (StTensor) in = tu_tensor_random (rand, 1, 2, 9, 8);
  /* flip=true is correlation with the kernel rotated 180°, odd and even. */
  static const char *const pairs[][2] = {
    { "matrix=1,2,3;4,5,6;7,8,10", "matrix=10,8,7;6,5,4;3,2,1" },
    { "matrix=1,-2,0.5;3,0,-1", "matrix=-1,0,3;0.5,-2,1" },
    { "preset=sobel-x", "matrix=1,0,-1;2,0,-2;1,0,-1" },
  };
  for (int t = 0; t < 2; t++)
    for (guint i = 0; i < G_N_ELEMENTS (pairs); i++)
      {
        g_autofree char *flipped = g_strdup_printf ("%s flip=true border=edge", pairs[i][0]);
        g_autofree char *rotated = g_strdup_printf ("%s border=edge", pairs[i][1]);
        g_autoptr (StTensor) a = run1 ("kernel", flipped, in, t);
        g_autoptr (StTensor) b = run1 ("kernel", rotated, in, t);
        assert_close (a, b, 0, flipped);
      }

  /* True convolution of an impulse reproduces the kernel itself;
   * correlation gives it rotated. */
  g_autoptr (StTensor) impulse = st_tensor_new0 (1, 1, 5, 5);
  impulse->data[2 * 5 + 2] = 1;
  for (int t = 0; t < 2; t++)
    {
      g_autoptr (StTensor) conv = run1 ("kernel", "matrix=1,2,3;4,5,6;7,8,9 flip=true padding=valid border=zero", impulse, t);
      static const float k[] = { 1, 2, 3, 4, 5, 6, 7, 8, 9 };
      g_autoptr (StTensor) conv_full = run1 ("kernel", "matrix=1,2,3;4,5,6;7,8,9 flip=true border=zero", impulse, t);
      g_autoptr (StTensor) corr_full = run1 ("kernel", "matrix=1,2,3;4,5,6;7,8,9 border=zero", impulse, t);
      g_assert_cmpint (conv->shape.h, ==, 3);
      for (int y = 0; y < 3; y++)
        for (int x = 0; x < 3; x++)
          {
            g_assert_cmpfloat (conv_full->data[(y + 1) * 5 + x + 1], ==, k[y * 3 + x]);
            g_assert_cmpfloat (corr_full->data[(y + 1) * 5 + x + 1], ==, k[8 - (y * 3 + x)]);
          }
      /* The valid window sees only the centre tap. */
      g_assert_cmpfloat (conv->data[1 * 3 + 1], ==, 5);
    }
}

static void
test_kernel_borders_by_hand (void)
{
  /* One row 1 2 3 4 through a 1x5 box-like kernel that picks the leftmost
   * tap only (offset -2 from the centre): the padding shows directly. */
  static const float row[] = { 1, 2, 3, 4 };
  g_autoptr (StTensor) in = tu_tensor_from (1, 1, 1, 4, row);
  static const struct { const char *border; float want[4]; } cases[] = {
    { "zero", { 0, 0, 1, 2 } },
    { "edge", { 1, 1, 1, 2 } },
    { "reflect", { 3, 2, 1, 2 } },   /* ... 3 2 | 1 2 3 4: edge not repeated */
    { "wrap", { 3, 4, 1, 2 } },
  };
  for (int t = 0; t < 2; t++)
    for (guint i = 0; i < G_N_ELEMENTS (cases); i++)
      {
        g_autofree char *p = g_strdup_printf ("matrix=1,0,0,0,0 border=%s", cases[i].border);
        g_autoptr (StTensor) out = run1 ("kernel", p, in, t);
        assert_values (out, 1, 4, cases[i].want, p);
      }

  /* Reflect further than the image is wide: a 1-pixel-wide image
   * reflects to itself, a 2-pixel one bounces 1 2 1 2 ... */
  static const float one[] = { 7 };
  g_autoptr (StTensor) single = tu_tensor_from (1, 1, 1, 1, one);
  for (int t = 0; t < 2; t++)
    {
      g_autoptr (StTensor) out = run1 ("kernel", "preset=box size=5 border=reflect", single, t);
      static const float want[] = { 7 };
      assert_values (out, 1, 1, want, "reflect 1x1");
    }
  static const float two[] = { 1, 2 };
  g_autoptr (StTensor) pair = tu_tensor_from (1, 1, 1, 2, two);
  for (int t = 0; t < 2; t++)
    {
      /* Padded by 4: 1 2 1 2 | 1 2 | 1 2 1 2, read by the 1x1 identity. */
      g_autoptr (StTensor) out = run1 ("kernel", "padding=4 border=reflect", pair, t);
      g_assert_cmpint (out->shape.h, ==, 9);
      g_assert_cmpint (out->shape.w, ==, 10);
      static const float want_row[] = { 1, 2, 1, 2, 1, 2, 1, 2, 1, 2 };
      for (int x = 0; x < 10; x++)
        g_assert_cmpfloat (out->data[4 * 10 + x], ==, want_row[x]);
    }
}

static void
test_kernel_shapes (void)
{
  g_autoptr (GError) error = NULL;
  struct {
    const char *params;
    int h, w;
    int h2, w2;
    gboolean floored;
    int halo;
    double macs_per_out;
  } cases[] = {
    { "preset=sharpen", 7, 5, 7, 5, FALSE, 1, 9 },
    { "preset=sharpen stride=2", 7, 5, 4, 3, FALSE, ST_HALO_WHOLE, 9 },
    /* 'same' pads just enough for ceil(8 / 2) outputs: nothing is floored. */
    { "preset=sharpen stride=2", 7, 8, 4, 4, FALSE, ST_HALO_WHOLE, 9 },
    { "preset=sharpen padding=valid", 7, 5, 5, 3, FALSE, ST_HALO_WHOLE, 9 },
    { "preset=sharpen padding=valid stride=2", 8, 5, 3, 2, TRUE, ST_HALO_WHOLE, 9 },
    { "preset=sharpen padding=2", 7, 5, 9, 7, FALSE, ST_HALO_WHOLE, 9 },
    { "preset=sharpen border=wrap", 7, 5, 7, 5, FALSE, ST_HALO_WHOLE, 9 },
    { "matrix=1,2;3,4", 7, 5, 7, 5, FALSE, 1, 4 },
    { "matrix=1,2,3,4;5,6,7,8", 7, 5, 7, 5, FALSE, 2, 8 },
    { "preset=gaussian sigma=2", 20, 30, 20, 30, FALSE, 6, 169 },
    { "preset=box", 20, 30, 20, 30, FALSE, 1, 9 },
    { "preset=box size=4", 20, 30, 20, 30, FALSE, 2, 16 },
    { "preset=identity", 3, 3, 3, 3, FALSE, 0, 1 },
  };
  for (guint i = 0; i < G_N_ELEMENTS (cases); i++)
    {
      StStage *stage = tu_stage_new (reg, "kernel", "kernel", cases[i].params, &error);
      g_assert_no_error (error);
      StShape in = { 2, 3, cases[i].h, cases[i].w };
      g_assert_true (st_stage_infer (stage, &in, 1, &error));
      g_assert_no_error (error);
      StShape want = { 2, 3, cases[i].h2, cases[i].w2 };
      if (!st_shape_equal (stage->out_shape, want))
        g_error ("%s: %dx%d, expected %dx%d", cases[i].params, stage->out_shape.h,
                 stage->out_shape.w, want.h, want.w);
      g_assert_cmpint (stage->floored, ==, cases[i].floored);
      g_assert_cmpint (stage->halo, ==, cases[i].halo);
      g_assert_cmpfloat (stage->macs, ==, st_shape_numel (want) * cases[i].macs_per_out);
      st_stage_free (stage);
    }
}

static void
test_kernel_constant_image (void)
{
  /* Box and gaussian sum to 1: a flat image stays flat under every border
   * that repeats image pixels. */
  g_autoptr (StTensor) in = st_tensor_new0 (1, 3, 23, 17);
  for (gsize i = 0; i < st_tensor_numel (in); i++)
    in->data[i] = 0.625f;
  static const char *const params[] = {
    "preset=gaussian sigma=2", "preset=gaussian sigma=0.5", "preset=box size=7",
    "preset=box size=6", "preset=gaussian sigma=3 size=30", "preset=emboss",
  };
  for (int t = 0; t < 2; t++)
    for (guint i = 0; i < G_N_ELEMENTS (params); i++)
      for (int b = 1; b < 4; b++)
        {
          g_autofree char *p = g_strdup_printf ("%s border=%s", params[i], border_names[b]);
          g_autoptr (StTensor) out = run1 ("kernel", p, in, t);
          for (gsize k = 0; k < st_tensor_numel (out); k++)
            if (fabsf (out->data[k] - 0.625f) > 1e-6f)
              g_error ("%s: element %" G_GSIZE_FORMAT " is %.9g", p, k, out->data[k]);
        }
}

static void
test_kernel_errors (void)
{
  g_autoptr (StTensor) in = st_tensor_new0 (1, 1, 3, 3);
  const StTensor *inputs[] = { in };
  struct {
    const char *params;
    gboolean at_new;             /* refused by the core's parameter check */
    int code;
    const char *fragment;
  } cases[] = {
    { "matrix=1,1,1,1,1;1,1,1,1,1;1,1,1,1,1;1,1,1,1,1;1,1,1,1,1 padding=valid", FALSE,
      ST_ERROR_SHAPE, "kernel 5x5 is larger than the padded input 3x3" },
    { "preset=box size=6 padding=1", FALSE, ST_ERROR_SHAPE,
      "kernel 6x6 is larger than the padded input 5x5" },
    { "preset=sharpen size=5", FALSE, ST_ERROR_PIPELINE, "size" },
    { "matrix=1,2;3,4 size=3", FALSE, ST_ERROR_PIPELINE, "size" },
    { "preset=gaussian sigma=0", TRUE, ST_ERROR_PIPELINE, "sigma" },
    { "preset=gaussian sigma=-1", TRUE, ST_ERROR_PIPELINE, "sigma" },
    { "stride=0", TRUE, ST_ERROR_PIPELINE, "stride" },
    { "padding=-3", TRUE, ST_ERROR_PIPELINE, "padding" },
    { "padding=full", TRUE, ST_ERROR_PIPELINE, "padding" },
    { "preset=blur", TRUE, ST_ERROR_PIPELINE, "preset" },
    { "border=mirror", TRUE, ST_ERROR_PIPELINE, "border" },
    { "matrix=1,2;3", TRUE, ST_ERROR_PIPELINE, "matrix" },
    { "radius=2", TRUE, ST_ERROR_PIPELINE, "radius" },
  };
  for (guint i = 0; i < G_N_ELEMENTS (cases); i++)
    {
      g_autoptr (GError) error = NULL;
      StStage *stage = tu_stage_new (reg, "kernel", "kernel", cases[i].params, &error);
      if (cases[i].at_new)
        {
          g_assert_null (stage);
        }
      else
        {
          g_assert_no_error (error);
          g_autoptr (StTensor) out = tu_stage_run (stage, inputs, 1, ctxs[0], &error);
          g_assert_null (out);
          st_stage_free (stage);
        }
      if (!error)
        g_error ("%s: expected an error", cases[i].params);
      g_test_message ("%s -> %s", cases[i].params, error->message);
      g_assert_error (error, ST_ERROR, cases[i].code);
      if (!strstr (error->message, cases[i].fragment))
        g_error ("%s: '%s' does not mention '%s'", cases[i].params, error->message,
                 cases[i].fragment);
      g_assert_null (strchr (error->message, '\n'));
    }
}

/* ---- grayscale, add, magnitude --------------------------------------------------- */

static void
test_grayscale (void)
{
  /* Two pixels: pure red and (0.2, 0.4, 0.6). */
  static const float rgb[] = { 1, 0.2f, 0, 0.4f, 0, 0.6f };
  g_autoptr (StTensor) in = tu_tensor_from (1, 3, 1, 2, rgb);
  for (int t = 0; t < 2; t++)
    {
      g_autoptr (StTensor) out = run1 ("grayscale", NULL, in, t);
      /* 0.299·0.2 + 0.587·0.4 + 0.114·0.6 = 0.0598 + 0.2348 + 0.0684 */
      static const float want[] = { 0.299f, 0.363f };
      assert_values (out, 1, 2, want, "bt601");
      g_autoptr (StTensor) out709 = run1 ("grayscale", "weights=bt709", in, t);
      /* 0.2126·0.2 + 0.7152·0.4 + 0.0722·0.6 = 0.04252 + 0.28608 + 0.04332 */
      static const float want709[] = { 0.2126f, 0.37192f };
      assert_values (out709, 1, 2, want709, "bt709");

      /* A batch of two, larger, against the formula. */
      g_autoptr (GRand) rand = g_rand_new_with_seed (5);
      g_autoptr (StTensor) big = tu_tensor_random (rand, 2, 3, 17, 9);
      g_autoptr (StTensor) gray = run1 ("grayscale", NULL, big, t);
      g_assert_cmpint (gray->shape.c, ==, 1);
      gsize plane = 17 * 9;
      for (int n = 0; n < 2; n++)
        for (gsize i = 0; i < plane; i++)
          {
            const float *p = big->data + n * 3 * plane + i;
            double want_v = 0.299 * p[0] + 0.587 * p[plane] + 0.114 * p[2 * plane];
            g_assert_cmpfloat_with_epsilon (gray->data[n * plane + i], want_v, 1e-6);
          }

      /* Gray passes through. */
      g_autoptr (StTensor) one = tu_tensor_random (rand, 1, 1, 4, 5);
      g_autoptr (StTensor) same = run1 ("grayscale", NULL, one, t);
      assert_close (same, one, 0, "gray passthrough");
    }

  for (int c = 2; c <= 4; c += 2)
    {
      g_autoptr (GError) error = NULL;
      g_autoptr (StTensor) bad = st_tensor_new0 (1, c, 2, 2);
      const StTensor *inputs[] = { bad };
      StStage *stage = tu_stage_new (reg, "grayscale", "grayscale", NULL, &error);
      g_assert_null (tu_stage_run (stage, inputs, 1, ctxs[0], &error));
      g_assert_error (error, ST_ERROR, ST_ERROR_SHAPE);
      g_autofree char *found = g_strdup_printf ("found %d", c);
      g_assert_nonnull (strstr (error->message, found));
      st_stage_free (stage);
    }
}

static void
test_add (void)
{
  static const float a_v[] = { 1, 2, 3, 4 };
  static const float b_v[] = { 10, 20, 30, 40 };
  static const float c_v[] = { -1, 0, 1, 0.5f };
  g_autoptr (StTensor) a = tu_tensor_from (1, 1, 2, 2, a_v);
  g_autoptr (StTensor) b = tu_tensor_from (1, 1, 2, 2, b_v);
  g_autoptr (StTensor) c = tu_tensor_from (1, 1, 2, 2, c_v);
  for (int t = 0; t < 2; t++)
    {
      g_autoptr (GError) error = NULL;
      const StTensor *ab[] = { a, b };
      StStage *stage = tu_stage_new (reg, "add", "add", "weights=1.5,-0.5 offset=0.25", &error);
      g_assert_no_error (error);
      g_autoptr (StTensor) out = tu_stage_run (stage, ab, 2, ctxs[t], &error);
      g_assert_no_error (error);
      /* 0.25 + 1.5 a - 0.5 b */
      static const float want[] = { -3.25f, -6.75f, -10.25f, -13.75f };
      assert_values (out, 2, 2, want, "add weighted");

      /* Backward: grad_in_i = w_i · grad_out; NULL means not wanted. */
      static const float g_v[] = { 1, -2, 0.5f, 4 };
      g_autoptr (StTensor) grad = tu_tensor_from (1, 1, 2, 2, g_v);
      g_autoptr (StTensor) ga = st_tensor_new0 (1, 1, 2, 2);
      StTensor *grads[] = { ga, NULL };
      g_assert_nonnull (stage->kind->backward);
      g_assert_true (stage->kind->backward (stage, ctxs[t], ab, out, grad, grads, &error));
      static const float want_ga[] = { 1.5f, -3, 0.75f, 6 };
      assert_values (ga, 2, 2, want_ga, "add backward");
      st_stage_free (stage);

      /* Default weights, three inputs. */
      const StTensor *abc[] = { a, b, c };
      stage = tu_stage_new (reg, "add", "add", NULL, &error);
      g_autoptr (StTensor) sum = tu_stage_run (stage, abc, 3, ctxs[t], &error);
      g_assert_no_error (error);
      static const float want_sum[] = { 10, 22, 34, 44.5f };
      assert_values (sum, 2, 2, want_sum, "add default");
      st_stage_free (stage);

      /* One input is allowed: a scaled copy. */
      const StTensor *just_a[] = { a };
      stage = tu_stage_new (reg, "add", "add", "weights=2", &error);
      g_autoptr (StTensor) twice = tu_stage_run (stage, just_a, 1, ctxs[t], &error);
      g_assert_no_error (error);
      static const float want_twice[] = { 2, 4, 6, 8 };
      assert_values (twice, 2, 2, want_twice, "add one input");
      st_stage_free (stage);
    }

  /* Weights that do not match the inputs: expected and found named. */
  g_autoptr (GError) error = NULL;
  const StTensor *ab[] = { a, b };
  StStage *stage = tu_stage_new (reg, "add", "add", "weights=1,2,3", &error);
  g_assert_no_error (error);
  g_assert_null (tu_stage_run (stage, ab, 2, ctxs[0], &error));
  g_assert_error (error, ST_ERROR, ST_ERROR_PIPELINE);
  g_test_message ("%s", error->message);
  g_assert_nonnull (strstr (error->message, "weights"));
  g_assert_nonnull (strstr (error->message, "expected 2"));
  g_assert_nonnull (strstr (error->message, "found 3"));
  st_stage_free (stage);
  g_clear_error (&error);

  /* Shapes that differ. */
  g_autoptr (StTensor) other = st_tensor_new0 (1, 1, 2, 3);
  const StTensor *mixed[] = { a, other };
  stage = tu_stage_new (reg, "add", "add", NULL, &error);
  g_assert_null (tu_stage_run (stage, mixed, 2, ctxs[0], &error));
  g_assert_error (error, ST_ERROR, ST_ERROR_SHAPE);
  g_assert_nonnull (strstr (error->message, "1x1x2x3"));
  st_stage_free (stage);

  /* Large enough to be split between threads. */
  g_autoptr (GRand) rand = g_rand_new_with_seed (11);
  g_autoptr (StTensor) x = tu_tensor_random (rand, 1, 3, 123, 457);
  g_autoptr (StTensor) y = tu_tensor_random (rand, 1, 3, 123, 457);
  const StTensor *xy[] = { x, y };
  for (int t = 0; t < 2; t++)
    {
      g_clear_error (&error);
      stage = tu_stage_new (reg, "add", "add", "weights=0.5,-2 offset=1", &error);
      g_autoptr (StTensor) out = tu_stage_run (stage, xy, 2, ctxs[t], &error);
      g_assert_no_error (error);
      for (gsize i = 0; i < st_tensor_numel (out); i++)
        g_assert_cmpfloat_with_epsilon (out->data[i], 1 + 0.5 * x->data[i] - 2 * y->data[i], 1e-6);
      st_stage_free (stage);
    }
}

static void
test_add_gradcheck (void)
{
  const StKindEntry *entry = st_registry_lookup (reg, "add");
  static const char *const keys[] = { "weights", "offset" };
  static const char *const values[] = { "1.5,-0.5,2", "0.25" };
  StShape shapes[] = { { 2, 3, 4, 5 }, { 2, 3, 4, 5 }, { 2, 3, 4, 5 } };
  StGradcheckResult result;
  g_autoptr (GError) error = NULL;
  gboolean ok = st_gradcheck (entry->kind, keys, values, 2, shapes, 3, FALSE, 1,
                              1e-2, 1e-3, &result, &error);
  g_assert_no_error (error);
  g_test_message ("add: %d gradients, worst relative error %.3g (%s)",
                  result.n_checked, result.max_rel_error, result.worst);
  g_assert_true (ok);
  g_assert_cmpint (result.n_checked, >, 0);
}

static void
test_magnitude (void)
{
  static const float a_v[] = { 3, -6, 0, 1 };
  static const float b_v[] = { 4, 8, 0, -2 };
  static const float c_v[] = { 0, 0, -2, 2 };
  g_autoptr (StTensor) a = tu_tensor_from (1, 1, 2, 2, a_v);
  g_autoptr (StTensor) b = tu_tensor_from (1, 1, 2, 2, b_v);
  g_autoptr (StTensor) c = tu_tensor_from (1, 1, 2, 2, c_v);
  for (int t = 0; t < 2; t++)
    {
      g_autoptr (GError) error = NULL;
      const StTensor *ab[] = { a, b };
      StStage *stage = tu_stage_new (reg, "magnitude", "magnitude", NULL, &error);
      g_autoptr (StTensor) out = tu_stage_run (stage, ab, 2, ctxs[t], &error);
      g_assert_no_error (error);
      const float want[] = { 5, 10, 0, sqrtf (5) };
      assert_values (out, 2, 2, want, "magnitude 2");

      const StTensor *abc[] = { a, b, c };
      g_autoptr (StTensor) out3 = tu_stage_run (stage, abc, 3, ctxs[t], &error);
      g_assert_no_error (error);
      static const float want3[] = { 5, 10, 2, 3 };
      assert_values (out3, 2, 2, want3, "magnitude 3");

      const StTensor *just_a[] = { a };
      g_autoptr (StTensor) abs_a = tu_stage_run (stage, just_a, 1, ctxs[t], &error);
      g_assert_no_error (error);
      static const float want1[] = { 3, 6, 0, 1 };
      assert_values (abs_a, 2, 2, want1, "magnitude 1");
      st_stage_free (stage);
    }

  g_autoptr (GError) error = NULL;
  g_autoptr (StTensor) other = st_tensor_new0 (1, 2, 2, 2);
  const StTensor *mixed[] = { a, other };
  StStage *stage = tu_stage_new (reg, "magnitude", "magnitude", NULL, &error);
  g_assert_null (tu_stage_run (stage, mixed, 2, ctxs[0], &error));
  g_assert_error (error, ST_ERROR, ST_ERROR_SHAPE);
  st_stage_free (stage);
}

/* ---- The pipelines shipped with these stages --------------------------------------- */

static StTensor *
run_pipeline (const char *name, const StTensor *in, int t)
{
  g_autoptr (GError) error = NULL;
  g_autofree char *path = g_build_filename (STRATA_SOURCE_ROOT, "pipelines", name, NULL);
  StPipeline *p = st_pipeline_load_file (reg, path, &error);
  g_assert_no_error (error);
  g_assert_nonnull (st_pipeline_description (p));
  g_assert_true (st_pipeline_prepare (p, in->shape, &error));
  g_assert_no_error (error);
  StTensor *out = st_pipeline_forward (p, ctxs[t], in, FALSE, &error);
  g_assert_no_error (error);
  st_pipeline_free (p);
  return out;
}

static void
test_pipelines (void)
{
  g_autoptr (GRand) rand = g_rand_new_with_seed (9);
  g_autoptr (StTensor) in = tu_tensor_random (rand, 1, 3, 29, 37);
  for (int t = 0; t < 2; t++)
    {
      /* Single-stage files equal the stage they name. */
      static const char *const single[][2] = {
        { "sharpen.ini", "preset=sharpen" },
        { "emboss.ini", "preset=emboss" },
        { "blur.ini", "preset=box size=5" },
        { "gaussian.ini", "preset=gaussian sigma=2" },
      };
      for (guint i = 0; i < G_N_ELEMENTS (single); i++)
        {
          g_autoptr (StTensor) got = run_pipeline (single[i][0], in, t);
          g_autoptr (StTensor) want = run1 ("kernel", single[i][1], in, t);
          assert_close (got, want, 0, single[i][0]);
        }

      g_autoptr (StTensor) sx = run1 ("kernel", "preset=sobel-x border=edge", in, t);
      g_autoptr (StTensor) sy = run1 ("kernel", "preset=sobel-y border=edge", in, t);
      g_autoptr (StTensor) edges = run_pipeline ("edges.ini", in, t);
      g_assert_true (st_shape_equal (edges->shape, in->shape));
      for (gsize i = 0; i < st_tensor_numel (edges); i++)
        g_assert_cmpfloat_with_epsilon (edges->data[i],
                                        hypot (sx->data[i], sy->data[i]), 1e-5);

      g_autoptr (StTensor) blur = run1 ("kernel", "preset=gaussian sigma=2", in, t);
      g_autoptr (StTensor) unsharp = run_pipeline ("unsharp.ini", in, t);
      g_assert_true (st_shape_equal (unsharp->shape, in->shape));
      for (gsize i = 0; i < st_tensor_numel (unsharp); i++)
        g_assert_cmpfloat_with_epsilon (unsharp->data[i],
                                        1.5 * in->data[i] - 0.5 * blur->data[i], 1e-5);
    }
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  reg = st_registry_new (NULL);
  for (int i = 0; i < 2; i++)
    ctxs[i] = st_run_context_new (i + 1, 1);

  g_test_add_func ("/kernel/reference", test_kernel_reference);
  g_test_add_func ("/kernel/2x2-valid", test_kernel_2x2_valid);
  g_test_add_func ("/kernel/emboss", test_kernel_emboss);
  g_test_add_func ("/kernel/flip", test_kernel_flip);
  g_test_add_func ("/kernel/borders", test_kernel_borders_by_hand);
  g_test_add_func ("/kernel/shapes", test_kernel_shapes);
  g_test_add_func ("/kernel/constant-image", test_kernel_constant_image);
  g_test_add_func ("/kernel/errors", test_kernel_errors);
  g_test_add_func ("/grayscale/known", test_grayscale);
  g_test_add_func ("/add/known", test_add);
  g_test_add_func ("/add/gradcheck", test_add_gradcheck);
  g_test_add_func ("/magnitude/known", test_magnitude);
  g_test_add_func ("/pipelines/filters", test_pipelines);

  int rc = g_test_run ();
  for (int i = 0; i < 2; i++)
    st_run_context_free (ctxs[i]);
  st_registry_free (reg);
  return rc;
}
