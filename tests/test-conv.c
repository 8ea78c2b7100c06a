/* strata — tests of the matrix-product layers: conv2d and dense.
 *
 * The plugins keep only their fast paths (im2col + OpenBLAS); the plain
 * references live here: naive loops in double for forward and backward,
 * written from the formulas, not from the plugins.  Every case is checked
 * against them, forward and backward, with 1 and 2 threads, and every
 * backward also against finite differences (st_gradcheck).  Known answers
 * worked by hand pin down the conventions, and the Keras MNIST network is
 * loaded from a pipeline file, counted and gradient-checked whole. */
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

static StTensor *
random_tensor (StShape shape, GRand *rand)
{
  StTensor *t = st_tensor_new (shape, NULL);
  g_assert_nonnull (t);
  for (gsize i = 0; i < st_tensor_numel (t); i++)
    t->data[i] = (float) g_rand_double_range (rand, -1.0, 1.0);
  return t;
}

static void
fill_random (StTensor *t, GRand *rand)
{
  for (gsize i = 0; i < st_tensor_numel (t); i++)
    t->data[i] = (float) g_rand_double_range (rand, -1.0, 1.0);
}

/* Worst |a − b| / max(|b|, 1) over n values; where in *at. */
static double
max_rel_diff (const float *a, const double *b, gsize n, gsize *at)
{
  double worst = 0.0;
  for (gsize i = 0; i < n; i++)
    {
      double d = fabs ((double) a[i] - b[i]) / MAX (fabs (b[i]), 1.0);
      if (!(d <= worst))
        {
          worst = isnan (d) ? INFINITY : d;
          if (at)
            *at = i;
        }
    }
  return worst;
}

static void
assert_close (const char *what, const char *params, const float *got,
              const double *want, gsize n, double tol)
{
  gsize at = 0;
  double err = max_rel_diff (got, want, n, &at);
  if (err > tol)
    g_error ("%s [%s]: relative error %.3g at %" G_GSIZE_FORMAT ": got %.8g, want %.8g",
             what, params, err, at, got[at], want[at]);
}

/* ---- Reference activation (double) ------------------------------------------ */

static double
ref_act (StActivation act, double a, double x)
{
  switch (act)
    {
    case ST_ACT_NONE: return x;
    case ST_ACT_RELU: return x > 0 ? x : 0;
    case ST_ACT_LEAKY_RELU: return x > 0 ? x : a * x;
    case ST_ACT_SIGMOID: return 1.0 / (1.0 + exp (-x));
    case ST_ACT_TANH: return tanh (x);
    case ST_ACT_ELU: return x > 0 ? x : a * (exp (x) - 1.0);
    case ST_ACT_GELU: return 0.5 * x * (1.0 + erf (x / sqrt (2.0)));
    }
  g_assert_not_reached ();
}

static double
ref_act_grad (StActivation act, double a, double x)
{
  switch (act)
    {
    case ST_ACT_NONE: return 1;
    case ST_ACT_RELU: return x > 0 ? 1 : 0;
    case ST_ACT_LEAKY_RELU: return x > 0 ? 1 : a;
    case ST_ACT_SIGMOID: { double s = 1.0 / (1.0 + exp (-x)); return s * (1 - s); }
    case ST_ACT_TANH: { double t = tanh (x); return 1 - t * t; }
    case ST_ACT_ELU: return x > 0 ? 1 : a * exp (x);
    case ST_ACT_GELU:
      return 0.5 * (1.0 + erf (x / sqrt (2.0))) + x * exp (-0.5 * x * x) / sqrt (2.0 * G_PI);
    }
  g_assert_not_reached ();
}

static const char *const act_names[] = {
  "none", "relu", "leaky_relu", "sigmoid", "tanh", "elu", "gelu",
};

/* ---- Reference conv2d --------------------------------------------------------- */

typedef struct {
  int n, c1, h1, w1;
  int c2, h2, w2;
  int kh, kw, sh, sw, dh, dw;
  int pt, pl;                  /* padding before; after is whatever the output size implies */
  int groups;
  gboolean bias;
  StActivation act;
  double a;                    /* slope or alpha */
} RefConv;

/* Padding before, and the output size, along one axis: 'same' as
 * TensorFlow defines it (ceil(in / s) outputs, the odd pixel after). */
static void
ref_axis (const char *padding, int in, int k, int s, int d, int *before, int *out)
{
  int span = d * (k - 1) + 1;
  if (strcmp (padding, "same") == 0)
    {
      *out = (in + s - 1) / s;
      int total = MAX ((*out - 1) * s + span - in, 0);
      *before = total / 2;
    }
  else
    {
      int p = strcmp (padding, "valid") == 0 ? 0 : atoi (padding);
      *before = p;
      *out = (in + 2 * p - span) / s + 1;
    }
}

/* out = act(pre), pre = b + Σ w · in; pre may be NULL. */
static void
ref_conv_forward (double *out, double *pre, const float *in, const float *w,
                  const float *b, const RefConv *r)
{
  int cg = r->c1 / r->groups, mg = r->c2 / r->groups;
  for (int n = 0; n < r->n; n++)
    for (int o = 0; o < r->c2; o++)
      for (int y = 0; y < r->h2; y++)
        for (int x = 0; x < r->w2; x++)
          {
            double sum = r->bias ? b[o] : 0.0;
            int g = o / mg;
            for (int c = 0; c < cg; c++)
              for (int i = 0; i < r->kh; i++)
                for (int j = 0; j < r->kw; j++)
                  {
                    int iy = y * r->sh - r->pt + i * r->dh;
                    int ix = x * r->sw - r->pl + j * r->dw;
                    if (iy < 0 || iy >= r->h1 || ix < 0 || ix >= r->w1)
                      continue;
                    sum += (double) w[((o * cg + c) * r->kh + i) * r->kw + j]
                           * in[((gsize) (n * r->c1 + g * cg + c) * r->h1 + iy) * r->w1 + ix];
                  }
            gsize at = (((gsize) n * r->c2 + o) * r->h2 + y) * r->w2 + x;
            if (pre)
              pre[at] = sum;
            out[at] = ref_act (r->act, r->a, sum);
          }
}

/* From dout and the pre-activation: din (overwritten), dw and db (added to). */
static void
ref_conv_backward (double *din, double *dw, double *db, const double *pre,
                   const float *dout, const float *in, const float *w, const RefConv *r)
{
  int cg = r->c1 / r->groups, mg = r->c2 / r->groups;
  memset (din, 0, sizeof (double) * r->n * r->c1 * r->h1 * r->w1);
  for (int n = 0; n < r->n; n++)
    for (int o = 0; o < r->c2; o++)
      for (int y = 0; y < r->h2; y++)
        for (int x = 0; x < r->w2; x++)
          {
            gsize at = (((gsize) n * r->c2 + o) * r->h2 + y) * r->w2 + x;
            double dz = dout[at] * ref_act_grad (r->act, r->a, pre[at]);
            if (r->bias)
              db[o] += dz;
            int g = o / mg;
            for (int c = 0; c < cg; c++)
              for (int i = 0; i < r->kh; i++)
                for (int j = 0; j < r->kw; j++)
                  {
                    int iy = y * r->sh - r->pt + i * r->dh;
                    int ix = x * r->sw - r->pl + j * r->dw;
                    if (iy < 0 || iy >= r->h1 || ix < 0 || ix >= r->w1)
                      continue;
                    gsize wi = ((gsize) (o * cg + c) * r->kh + i) * r->kw + j;
                    gsize ii = ((gsize) (n * r->c1 + g * cg + c) * r->h1 + iy) * r->w1 + ix;
                    dw[wi] += dz * in[ii];
                    din[ii] += dz * w[wi];
                  }
          }
}

/* One conv2d case: "filters=4 size=3 ..." (stride, dilation, padding as one
 * value or two; padding one value) on input shape, against the reference. */
typedef struct {
  const char *params;
  StShape in;
} ConvCase;

static int
param_int (const char *params, const char *key, int index, int fallback)
{
  TuParams p;
  tu_params_parse (&p, params);
  int v = fallback;
  for (int i = 0; i < p.n; i++)
    if (strcmp (p.keys[i], key) == 0)
      {
        g_auto (GStrv) parts = g_strsplit (p.values[i], ",", -1);
        v = atoi (parts[g_strv_length (parts) > 1 ? index : 0]);
      }
  tu_params_clear (&p);
  return v;
}

static char *
param_str (const char *params, const char *key, const char *fallback)
{
  TuParams p;
  tu_params_parse (&p, params);
  char *v = g_strdup (fallback);
  for (int i = 0; i < p.n; i++)
    if (strcmp (p.keys[i], key) == 0)
      {
        g_free (v);
        v = g_strdup (p.values[i]);
      }
  tu_params_clear (&p);
  return v;
}

static RefConv
ref_conv_from (const char *params, StShape in)
{
  RefConv r = {
    .n = in.n, .c1 = in.c, .h1 = in.h, .w1 = in.w,
    .c2 = param_int (params, "filters", 0, 1),
    .kh = param_int (params, "size", 0, 3), .kw = param_int (params, "size", 1, 3),
    .sh = param_int (params, "stride", 0, 1), .sw = param_int (params, "stride", 1, 1),
    .dh = param_int (params, "dilation", 0, 1), .dw = param_int (params, "dilation", 1, 1),
    .groups = param_int (params, "groups", 0, 1),
  };
  g_autofree char *padding = param_str (params, "padding", "valid");
  g_autofree char *bias = param_str (params, "bias", "true");
  g_autofree char *act = param_str (params, "activation", "none");
  r.bias = strcmp (bias, "true") == 0;
  for (guint i = 0; i < G_N_ELEMENTS (act_names); i++)
    if (strcmp (act, act_names[i]) == 0)
      r.act = (StActivation) i;
  r.a = 0.0;
  if (r.act == ST_ACT_LEAKY_RELU)
    {
      g_autofree char *slope = param_str (params, "slope", "0.01");
      r.a = g_ascii_strtod (slope, NULL);
    }
  if (r.act == ST_ACT_ELU)
    {
      g_autofree char *alpha = param_str (params, "alpha", "1");
      r.a = g_ascii_strtod (alpha, NULL);
    }
  ref_axis (padding, r.h1, r.kh, r.sh, r.dh, &r.pt, &r.h2);
  ref_axis (padding, r.w1, r.kw, r.sw, r.dw, &r.pl, &r.w2);
  return r;
}

/* Forward and backward of a conv2d stage against the reference, on one
 * context. */
static void
check_conv_case (const char *params, StShape in_shape, StRunContext *ctx, guint32 seed)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (GRand) rand = g_rand_new_with_seed (seed);
  StStage *s = tu_stage_new (reg, "conv2d", "conv", params, &error);
  g_assert_no_error (error);
  st_stage_infer (s, &in_shape, 1, &error);
  g_assert_no_error (error);

  RefConv r = ref_conv_from (params, in_shape);
  StShape want = { r.n, r.c2, r.h2, r.w2 };
  if (!st_shape_equal (s->out_shape, want))
    {
      char a[64], b[64];
      g_error ("[%s]: output %s, want %s", params, st_shape_format (s->out_shape, a, 64),
               st_shape_format (want, b, 64));
    }
  g_assert_cmpfloat (s->macs, ==, (double) r.n * r.c2 * r.h2 * r.w2 * (r.c1 / r.groups) * r.kh * r.kw);
  g_assert_cmpint (st_stage_n_weights (s), ==, r.bias ? 2 : 1);
  StWeight *wp = st_stage_get_weight (s, 0);
  g_assert_cmpstr (wp->full_name, ==, "conv.weight");
  g_assert_cmpint (wp->rank, ==, 4);
  g_assert_cmpint (wp->dims[0], ==, r.c2);
  g_assert_cmpint (wp->dims[1], ==, r.c1 / r.groups);
  g_assert_cmpint (wp->dims[2], ==, r.kh);
  g_assert_cmpint (wp->dims[3], ==, r.kw);

  StTensor *w = st_stage_param (s, 0);
  StTensor *b = r.bias ? st_stage_param (s, 1) : NULL;
  fill_random (w, rand);
  if (b)
    fill_random (b, rand);
  g_autoptr (StTensor) in = random_tensor (in_shape, rand);
  g_autoptr (StTensor) out = st_tensor_new (s->out_shape, NULL);
  s->kind->forward (s, ctx, (const StTensor *const *) &in, out, &error);
  g_assert_no_error (error);

  gsize n_out = st_tensor_numel (out), n_in = st_tensor_numel (in), n_w = st_tensor_numel (w);
  g_autofree double *ref = g_new (double, n_out);
  g_autofree double *pre = g_new (double, n_out);
  ref_conv_forward (ref, pre, in->data, w->data, b ? b->data : NULL, &r);
  assert_close ("conv2d forward", params, out->data, ref, n_out, 1e-4);

  /* Backward, twice, to see the parameter gradients accumulate. */
  st_stage_enable_grads (s);
  g_autoptr (StTensor) dout = random_tensor (s->out_shape, rand);
  g_autoptr (StTensor) din = st_tensor_new (in_shape, NULL);
  g_autofree double *rdin = g_new (double, n_in);
  g_autofree double *rdw = g_new0 (double, n_w);
  g_autofree double *rdb = g_new0 (double, r.c2);
  ref_conv_backward (rdin, rdw, rdb, pre, dout->data, in->data, w->data, &r);
  for (int pass = 0; pass < 2; pass++)
    {
      StTensor *gin[1] = { din };
      /* Garbage in din: backward overwrites it. */
      for (gsize i = 0; i < n_in; i++)
        din->data[i] = 1e3f;
      s->kind->backward (s, ctx, (const StTensor *const *) &in, out, dout, gin, &error);
      g_assert_no_error (error);
      assert_close ("conv2d grad input", params, din->data, rdin, n_in, 1e-4);
      for (gsize i = 0; i < n_w; i++)
        rdw[i] *= pass == 0 ? 1 : 2;
      for (int i = 0; i < r.c2; i++)
        rdb[i] *= pass == 0 ? 1 : 2;
      assert_close ("conv2d grad weight", params, st_stage_param_grad (s, 0)->data, rdw, n_w, 1e-4);
      if (b)
        assert_close ("conv2d grad bias", params, st_stage_param_grad (s, 1)->data, rdb, r.c2, 1e-4);
      for (gsize i = 0; i < n_w; i++)
        rdw[i] /= pass == 0 ? 1 : 2;
      for (int i = 0; i < r.c2; i++)
        rdb[i] /= pass == 0 ? 1 : 2;
    }

  /* Without an input gradient (a first layer) the parameters still get theirs. */
  st_stage_zero_grads (s);
  StTensor *none[1] = { NULL };
  s->kind->backward (s, ctx, (const StTensor *const *) &in, out, dout, none, &error);
  g_assert_no_error (error);
  assert_close ("conv2d grad weight (no din)", params, st_stage_param_grad (s, 0)->data, rdw, n_w, 1e-4);
  if (b)
    assert_close ("conv2d grad bias (no din)", params, st_stage_param_grad (s, 1)->data, rdb, r.c2, 1e-4);
  st_stage_free (s);
}

static void
gradcheck (const char *kind_name, const char *params, StShape in_shape, double eps,
           guint64 seed)
{
  TuParams p;
  tu_params_parse (&p, params);
  StGradcheckResult res;
  g_autoptr (GError) error = NULL;
  gboolean ok = st_gradcheck (tu_kind (reg, kind_name), (const char *const *) p.keys,
                              (const char *const *) p.values, p.n, &in_shape, 1, TRUE,
                              seed, eps, 1e-3, &res, &error);
  tu_params_clear (&p);
  if (!ok)
    g_error ("gradcheck %s [%s]: %s", kind_name, params, error ? error->message : "failed");
  g_assert_cmpint (res.n_checked, >, 0);
  g_test_message ("gradcheck %s [%s] %dx%dx%dx%d: %d checked, worst %.2g", kind_name, params,
                  in_shape.n, in_shape.c, in_shape.h, in_shape.w, res.n_checked, res.max_rel_error);
}

/* The spread of geometries, without activation: the layer is linear in
 * every input and weight, so a central difference is exact at any step and
 * the gradient check takes a large one (4), which keeps float rounding of
 * the outputs far below the tolerance. */
static const ConvCase conv_cases[] = {
  { "filters=4 size=7,5", { 1, 3, 13, 11 } },
  { "filters=3 size=9,11 stride=2 padding=same", { 1, 2, 20, 23 } },
  { "filters=5 size=3 stride=2 padding=2", { 1, 3, 9, 10 } },
  { "filters=2 size=4 stride=3 padding=same", { 1, 2, 10, 11 } },
  { "filters=4 size=3 dilation=2 padding=same", { 1, 2, 11, 12 } },
  { "filters=3 size=3,2 dilation=2,3 stride=1,2 padding=1", { 1, 2, 12, 13 } },
  { "filters=6 size=3,5 groups=2", { 1, 4, 10, 9 } },
  { "filters=3 size=3 groups=3 padding=same", { 1, 3, 8, 9 } },       /* depthwise */
  { "filters=6 size=3 groups=3 bias=false", { 1, 3, 8, 9 } },          /* depthwise ×2 */
  { "filters=5 size=1 bias=false", { 1, 6, 7, 8 } },                   /* pointwise */
  { "filters=4 size=1 stride=2 groups=2", { 1, 6, 7, 8 } },
  { "filters=4 size=2 padding=valid", { 1, 1, 2, 2 } },                 /* one pixel out */
  { "filters=16 size=3 padding=1", { 1, 16, 5, 6 } },                  /* register tiles */
  { "filters=32 size=2,3 padding=same bias=false", { 1, 16, 4, 5 } },
};

/* Each fused activation, with the step its gradient check takes.  A
 * nonlinear layer's difference has truncation error (large steps) and
 * float rounding (small ones), and relu, leaky_relu and elu (alpha != 1)
 * have kinks that a step may straddle: the checks run on maps small enough
 * that one weight moves only a few outputs.  The check against the
 * reference backward, at 1e-4, runs on larger maps. */
static const struct {
  const char *params;
  double eps;
} act_cases[] = {
  { "activation=relu", 1e-2 },
  { "activation=leaky_relu slope=0.1", 1e-2 },
  { "activation=sigmoid", 1e-2 },
  { "activation=tanh", 3e-2 },
  { "activation=elu alpha=0.7", 1e-2 },
  { "activation=gelu bias=false", 3e-2 },
};

static void
test_conv_reference (void)
{
  for (guint i = 0; i < G_N_ELEMENTS (conv_cases); i++)
    for (int batch = 1; batch <= 5; batch += 4)
      for (int t = 0; t < 2; t++)
        {
          StShape s = conv_cases[i].in;
          s.n = batch;
          check_conv_case (conv_cases[i].params, s, ctxs[t], 100 + i);
        }
  for (guint i = 0; i < G_N_ELEMENTS (act_cases); i++)
    for (int batch = 1; batch <= 5; batch += 4)
      for (int t = 0; t < 2; t++)
        {
          g_autofree char *params = g_strdup_printf ("filters=4 size=3 padding=1 %s",
                                                     act_cases[i].params);
          check_conv_case (params, (StShape) { batch, 2, 9, 9 }, ctxs[t], 150 + i);
        }
  /* One input channel: few taps, the direct path instead of the GEMM, on
   * rows longer and shorter than its 32-pixel steps. */
  static const ConvCase one_channel[] = {
    { "filters=32 size=3 activation=relu", { 1, 1, 28, 28 } },
    { "filters=5 size=3 stride=2 padding=same", { 1, 1, 28, 27 } },
    { "filters=6 size=5 padding=same activation=gelu", { 1, 1, 30, 41 } },
    { "filters=3 size=5 stride=2", { 1, 1, 17, 70 } },
    { "filters=7 size=3 padding=same activation=sigmoid", { 1, 1, 64, 64 } },
  };
  for (guint i = 0; i < G_N_ELEMENTS (one_channel); i++)
    for (int batch = 1; batch <= 5; batch += 4)
      for (int t = 0; t < 2; t++)
        {
          StShape s = one_channel[i].in;
          s.n = batch;
          check_conv_case (one_channel[i].params, s, ctxs[t], 170 + i);
        }
}

/* Shapes large enough to take the threaded paths: blocks of several images
 * with a short last one, pieces of one image (whose input gradients
 * overlap), several pieces per image, a pointwise conv written in place,
 * a 3×3 map packed many images to a block; and maps wide enough to be
 * packed row by row rather than through the tap table. */
static const ConvCase threaded_cases[] = {
  { "filters=16 size=3", { 5, 3, 40, 40 } },
  { "filters=8 size=3 padding=same activation=relu", { 1, 4, 64, 64 } },
  { "filters=8 size=3 stride=1 dilation=2 padding=same", { 2, 1, 100, 100 } },
  { "filters=16 size=1 activation=gelu", { 1, 16, 64, 64 } },
  { "filters=64 size=3 activation=relu", { 64, 64, 5, 5 } },
  { "filters=32 size=3 groups=4 stride=2 padding=same", { 3, 8, 37, 29 } },
  /* Rows of 16 pixels and more take the row copies, strided and padded. */
  { "filters=6 size=5,3 stride=2 dilation=1,2 padding=2", { 2, 3, 30, 70 } },
  { "filters=4 size=7,5 stride=3,2 padding=same groups=2", { 1, 4, 50, 90 } },
  { "filters=5 size=3 padding=same activation=tanh", { 4, 3, 9, 16 } },
  { "filters=8 size=3 activation=relu", { 6, 5, 13, 13 } },
};

static void
test_conv_threaded (void)
{
  for (guint i = 0; i < G_N_ELEMENTS (threaded_cases); i++)
    for (int t = 0; t < 2; t++)
      check_conv_case (threaded_cases[i].params, threaded_cases[i].in, ctxs[t], 200 + i);
}

static void
test_conv_gradcheck (void)
{
  for (guint i = 0; i < G_N_ELEMENTS (conv_cases); i++)
    for (int batch = 1; batch <= 5; batch += 4)
      {
        StShape s = conv_cases[i].in;
        s.n = batch;
        gradcheck ("conv2d", conv_cases[i].params, s, 4.0, 300 + i);
      }
  for (guint i = 0; i < G_N_ELEMENTS (act_cases); i++)
    {
      g_autofree char *params = g_strdup_printf ("filters=2 size=3 padding=1 %s",
                                                 act_cases[i].params);
      gradcheck ("conv2d", params, (StShape) { 1, 1, 3, 3 }, act_cases[i].eps, 350 + i);
      gradcheck ("conv2d", params, (StShape) { 5, 1, 2, 2 }, act_cases[i].eps, 350 + i);
    }
}

/* ---- pool=: fused max pooling ------------------------------------------------- */

static double *
to_doubles (const StTensor *t)
{
  double *d = g_new (double, st_tensor_numel (t));
  for (gsize i = 0; i < st_tensor_numel (t); i++)
    d[i] = t->data[i];
  return d;
}

/* Whether a and b hold the same n floats, bit for bit, any NaN matching
 * any NaN; else the first index that differs, or -1. */
static gssize
first_difference (const float *a, const float *b, gsize n)
{
  for (gsize i = 0; i < n; i++)
    if (!(isnan (a[i]) && isnan (b[i])) && memcmp (&a[i], &b[i], sizeof (float)) != 0)
      return (gssize) i;
  return -1;
}

static void
assert_same_floats (const char *what, const char *params, const float *got, const float *want,
                    gsize n)
{
  gssize at = first_difference (got, want, n);
  if (at >= 0)
    g_error ("%s [%s]: at %" G_GSSIZE_FORMAT ": got %.9g, want %.9g", what, params, at, got[at],
             want[at]);
}

/* A conv2d input with what a pooled maximum must treat as maxpool does:
 * NaN pixels (each NaN's windows sum to NaN), ties (a pixel's value
 * repeated beside it), and zeros of both signs. */
static void
add_pool_edge_cases (StTensor *in, GRand *rand)
{
  for (gsize i = 0; i < st_tensor_numel (in); i++)
    {
      double u = g_rand_double (rand);
      if (u < 0.01)
        in->data[i] = NAN;
      else if (u < 0.2 && i > 0)
        in->data[i] = in->data[i - 1];
      else if (u < 0.25)
        in->data[i] = u < 0.225 ? 0.0f : -0.0f;
    }
}

/* conv2d with pool=k against conv2d without it followed by a maxpool
 * stage of size=k, forward and backward (input, weight and bias
 * gradients), on one context.  edges: the input gets
 * add_pool_edge_cases () and the first filter zero weights (a map of
 * ties), and the forward must match bit for bit (the sums of the
 * unpooled layer's kernels being the same), which also puts every
 * gradient at the same maxima. */
static void
check_pool_case (const char *params, int k, StShape in_shape, StRunContext *ctx, guint32 seed,
                 gboolean edges)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (GRand) rand = g_rand_new_with_seed (seed);
  g_autofree char *fused_params = g_strdup_printf ("%s pool=%d", params, k);
  g_autofree char *pool_params = g_strdup_printf ("size=%d", k);
  StStage *fused = tu_stage_new (reg, "conv2d", "conv", fused_params, &error);
  g_assert_no_error (error);
  StStage *conv = tu_stage_new (reg, "conv2d", "conv", params, &error);
  g_assert_no_error (error);
  StStage *pool = tu_stage_new (reg, "maxpool", "pool", pool_params, &error);
  g_assert_no_error (error);
  st_stage_infer (fused, &in_shape, 1, &error);
  g_assert_no_error (error);
  st_stage_infer (conv, &in_shape, 1, &error);
  g_assert_no_error (error);
  st_stage_infer (pool, &conv->out_shape, 1, &error);
  g_assert_no_error (error);
  g_assert_true (st_shape_equal (fused->out_shape, pool->out_shape));
  g_assert_cmpfloat (fused->macs, ==, conv->macs);
  g_assert_cmpint (fused->halo, ==, ST_HALO_WHOLE);

  for (int i = 0; i < st_stage_n_weights (conv); i++)
    {
      fill_random (st_stage_param (conv, i), rand);
      memcpy (st_stage_param (fused, i)->data, st_stage_param (conv, i)->data,
              st_tensor_numel (st_stage_param (conv, i)) * sizeof (float));
    }
  g_autoptr (StTensor) in = random_tensor (in_shape, rand);
  if (edges)
    {
      add_pool_edge_cases (in, rand);
      const gsize filter = st_tensor_numel (st_stage_param (conv, 0)) / conv->out_shape.c;
      memset (st_stage_param (conv, 0)->data, 0, filter * sizeof (float));
      memset (st_stage_param (fused, 0)->data, 0, filter * sizeof (float));
    }
  g_autoptr (StTensor) mid = st_tensor_new (conv->out_shape, NULL);
  g_autoptr (StTensor) want = st_tensor_new (pool->out_shape, NULL);
  g_autoptr (StTensor) got = st_tensor_new (fused->out_shape, NULL);
  /* With edges, twice: the input with its NaNs, then with zeros in their
   * place for the backward.  A NaN that only outputs left out by the
   * pooling read reaches the weight gradient through the unfused layer
   * (0 · NaN) but not through one that skips those outputs. */
  for (int pass = edges ? 0 : 1; pass < 2; pass++)
    {
      if (pass == 1)
        for (gsize i = 0; i < st_tensor_numel (in); i++)
          if (isnan (in->data[i]))
            in->data[i] = 0.0f;
      g_assert_true (conv->kind->forward (conv, ctx, (const StTensor *const *) &in, mid, &error));
      g_assert_true (pool->kind->forward (pool, ctx, (const StTensor *const *) &mid, want, &error));
      g_assert_true (fused->kind->forward (fused, ctx, (const StTensor *const *) &in, got, &error));
      g_assert_no_error (error);
      if (edges)
        assert_same_floats ("conv2d pool= forward", fused_params, got->data, want->data,
                            st_tensor_numel (want));
      else
        {
          g_autofree double *want_d = to_doubles (want);
          assert_close ("conv2d pool= forward", fused_params, got->data, want_d,
                        st_tensor_numel (want), 1e-5);
        }
    }

  st_stage_enable_grads (conv);
  st_stage_enable_grads (fused);
  g_autoptr (StTensor) dout = random_tensor (want->shape, rand);
  g_autoptr (StTensor) dmid = st_tensor_new (mid->shape, NULL);
  g_autoptr (StTensor) din_want = st_tensor_new (in_shape, NULL);
  g_autoptr (StTensor) din = st_tensor_new (in_shape, NULL);
  StTensor *gmid[1] = { dmid }, *gwant[1] = { din_want }, *gin[1] = { din };
  g_assert_true (pool->kind->backward (pool, ctx, (const StTensor *const *) &mid, want, dout, gmid,
                                       &error));
  g_assert_true (conv->kind->backward (conv, ctx, (const StTensor *const *) &in, mid, dmid, gwant,
                                       &error));
  for (gsize i = 0; i < st_tensor_numel (din); i++)
    din->data[i] = 1e3f;
  g_assert_true (fused->kind->backward (fused, ctx, (const StTensor *const *) &in, got, dout, gin,
                                        &error));
  g_assert_no_error (error);
  /* Within rounding, not bit for bit: the pooled layer may sum its
   * gradients over the pixels in another order, and leave out the zeros
   * of the pixels no window covers. */
  const double tol = edges ? 1e-5 : 1e-4;
  g_autofree double *din_d = to_doubles (din_want);
  assert_close ("conv2d pool= grad input", fused_params, din->data, din_d, st_tensor_numel (din),
                tol);
  for (int i = 0; i < st_stage_n_weights (conv); i++)
    {
      g_autofree double *d = to_doubles (st_stage_param_grad (conv, i));
      assert_close (i ? "conv2d pool= grad bias" : "conv2d pool= grad weight", fused_params,
                    st_stage_param_grad (fused, i)->data, d,
                    st_tensor_numel (st_stage_param_grad (conv, i)), tol);
    }
  st_stage_free (fused);
  st_stage_free (conv);
  st_stage_free (pool);
}

/* pool= keeps its maxima's positions in the layout of the path its
 * forward took; a backward on more threads than images takes another
 * path (the register tiles want an image a thread), and must then give
 * the same gradients or refuse, never read the positions wrongly. */
static void
check_pool_other_backward (void)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (GRand) rand = g_rand_new_with_seed (870);
  const StShape shape = { 1, 16, 10, 10 };
  StStage *s = tu_stage_new (reg, "conv2d", "conv", "filters=16 size=3 activation=relu pool=2",
                             &error);
  g_assert_no_error (error);
  st_stage_infer (s, &shape, 1, &error);
  g_assert_no_error (error);
  for (int i = 0; i < st_stage_n_weights (s); i++)
    fill_random (st_stage_param (s, i), rand);
  st_stage_enable_grads (s);
  g_autoptr (StTensor) in = random_tensor (shape, rand);
  g_autoptr (StTensor) out = st_tensor_new (s->out_shape, NULL);
  g_autoptr (StTensor) dout = random_tensor (s->out_shape, rand);
  g_autoptr (StTensor) want = st_tensor_new (shape, NULL);
  g_autoptr (StTensor) got = st_tensor_new (shape, NULL);
  StTensor *gwant[1] = { want }, *ggot[1] = { got };
  g_assert_true (s->kind->forward (s, ctxs[0], (const StTensor *const *) &in, out, &error));
  g_assert_true (s->kind->backward (s, ctxs[0], (const StTensor *const *) &in, out, dout, gwant,
                                    &error));
  if (s->kind->backward (s, ctxs[1], (const StTensor *const *) &in, out, dout, ggot, &error))
    {
      g_autofree double *want_d = to_doubles (want);
      assert_close ("conv2d pool= backward on another path", "", got->data, want_d,
                    st_tensor_numel (got), 1e-5);
    }
  else
    {
      g_assert_error (error, ST_ERROR, ST_ERROR_FAILED);
      g_assert_nonnull (strstr (error->message, "backward without a forward of this shape"));
    }
  st_stage_free (s);
}

/* Each way the layer runs: the direct path for few taps (a first layer,
 * several images a block), SGEMM blocks, register tiles (channels in
 * sixteens), pieces of large images (pooled through the whole map), one
 * image on two threads; maps that pool evenly and with a row and column
 * left over; windows of 2 and 3; an activation that keeps its input. */
typedef struct {
  const char *params;          /* conv2d's, without pool= */
  int k;                       /* the pool= */
  StShape in;
} PoolCase;

static void
test_conv_pool (void)
{
  static const PoolCase cases[] = {
    { "filters=32 size=3 activation=relu", 2, { 7, 1, 28, 28 } },
    { "filters=8 size=3 activation=relu", 2, { 5, 1, 13, 13 } },
    { "filters=6 size=3 padding=same activation=gelu", 3, { 3, 4, 14, 17 } },
    { "filters=5 size=3,2 stride=2,1 activation=tanh", 2, { 4, 5, 15, 12 } },
    { "filters=16 size=3 activation=relu", 2, { 6, 16, 13, 13 } },
    { "filters=32 size=3 padding=same activation=gelu", 2, { 5, 16, 12, 12 } },
    { "filters=16 size=3 activation=relu", 2, { 1, 16, 9, 9 } },
    { "filters=4 size=3 activation=relu", 2, { 2, 3, 70, 91 } },
    { "filters=4 size=5 padding=same activation=gelu", 3, { 1, 2, 64, 80 } },
  };
  static const PoolCase edge_cases[] = {
    { "filters=32 size=3 activation=relu", 2, { 4, 1, 28, 28 } },
    { "filters=16 size=3 bias=false", 3, { 3, 16, 11, 14 } },
    { "filters=48 size=3 padding=same activation=relu", 2, { 5, 3, 5, 7 } },
    { "filters=16 size=2 activation=relu", 2, { 2, 32, 12, 12 } },
  };
  for (int training = 0; training < 2; training++)
    for (int t = 0; t < 2; t++)
      {
        StRunContext *ctx = st_run_context_new (t + 1, 1);
        ctx->training = training;
        for (guint i = 0; i < G_N_ELEMENTS (cases); i++)
          check_pool_case (cases[i].params, cases[i].k, cases[i].in, ctx, 800 + i, FALSE);
        /* Maxima pooled from the register tiles' pixel-major sums (relu or
         * no activation): one input channel or sixteen, windows of 2 and
         * 3, maps floored or not, several images to a call. */
        for (guint i = 0; i < G_N_ELEMENTS (edge_cases); i++)
          check_pool_case (edge_cases[i].params, edge_cases[i].k, edge_cases[i].in, ctx, 860 + i,
                           TRUE);
        st_run_context_free (ctx);
      }
  check_pool_other_backward ();
  /* Few filters and small maps: float rounding of the loss stays far
   * below the gradients, and the step (below the spacing of gradcheck's
   * inputs) rarely moves a maximum or crosses a kink. */
  gradcheck ("conv2d", "filters=2 size=3 activation=relu pool=2", (StShape) { 2, 1, 6, 7 }, 1e-2,
             850);
  gradcheck ("conv2d", "filters=2 size=3 padding=same activation=gelu bias=false pool=3",
             (StShape) { 1, 2, 7, 7 }, 3e-2, 851);
  gradcheck ("conv2d", "filters=2 size=2,3 stride=2,1 activation=tanh pool=2",
             (StShape) { 2, 2, 5, 5 }, 1e-2, 852);
}

/* A 4×4 ramp and a 2×2 kernel, worked by hand:
 *
 *   in(y, x) = 4y + x + 1      k = | 1 2 |
 *                                  | 3 4 |
 *
 *   out(y, x) = in(y,x) + 2 in(y,x+1) + 3 in(y+1,x) + 4 in(y+1,x+1) + 0.5
 *             = 40y + 10x + 44.5
 *
 * With dout = 1: dW(i, j) = Σ of the 3×3 window at (i, j) = 54 + 9(4i + j),
 * db = 9, and din(y, x) = the sum of the kernel taps that touch (y, x). */
static void
test_conv_known (void)
{
  g_autoptr (GError) error = NULL;
  StShape shape = { 1, 1, 4, 4 };
  g_autoptr (StTensor) in = st_tensor_new (shape, NULL);
  for (int i = 0; i < 16; i++)
    in->data[i] = (float) (i + 1);

  for (int t = 0; t < 2; t++)
    {
      StStage *s = tu_stage_new (reg, "conv2d", "conv1", "filters=1 size=2", &error);
      g_assert_no_error (error);
      st_stage_infer (s, &shape, 1, &error);
      g_assert_no_error (error);
      g_assert_false (s->floored);
      g_assert_cmpint (s->halo, ==, ST_HALO_WHOLE);
      float k[4] = { 1, 2, 3, 4 };
      memcpy (st_stage_param (s, 0)->data, k, sizeof k);
      st_stage_param (s, 1)->data[0] = 0.5f;
      g_autoptr (StTensor) out = st_tensor_new (s->out_shape, NULL);
      s->kind->forward (s, ctxs[t], (const StTensor *const *) &in, out, &error);
      g_assert_no_error (error);
      static const float want[9] = { 44.5, 54.5, 64.5, 84.5, 94.5, 104.5, 124.5, 134.5, 144.5 };
      g_assert_cmpint (out->shape.h, ==, 3);
      g_assert_cmpint (out->shape.w, ==, 3);
      for (int i = 0; i < 9; i++)
        g_assert_cmpfloat (out->data[i], ==, want[i]);

      st_stage_enable_grads (s);
      g_autoptr (StTensor) dout = st_tensor_new (s->out_shape, NULL);
      for (int i = 0; i < 9; i++)
        dout->data[i] = 1.0f;
      g_autoptr (StTensor) din = st_tensor_new (shape, NULL);
      StTensor *gin[1] = { din };
      s->kind->backward (s, ctxs[t], (const StTensor *const *) &in, out, dout, gin, &error);
      g_assert_no_error (error);
      static const float want_dw[4] = { 54, 63, 90, 99 };
      static const float want_din[16] = { 1, 3, 3, 2, 4, 10, 10, 6, 4, 10, 10, 6, 3, 7, 7, 4 };
      for (int i = 0; i < 4; i++)
        g_assert_cmpfloat (st_stage_param_grad (s, 0)->data[i], ==, want_dw[i]);
      g_assert_cmpfloat (st_stage_param_grad (s, 1)->data[0], ==, 9.0f);
      for (int i = 0; i < 16; i++)
        g_assert_cmpfloat (din->data[i], ==, want_din[i]);
      st_stage_free (s);

      /* Stride 2 keeps the corners of the stride-1 answer; the bottom row
       * and right column of a 5×5 would not fit, so the size is floored. */
      s = tu_stage_new (reg, "conv2d", "conv1", "filters=1 size=2 stride=2", &error);
      g_assert_no_error (error);
      st_stage_infer (s, &shape, 1, &error);
      g_assert_no_error (error);
      g_assert_false (s->floored);
      memcpy (st_stage_param (s, 0)->data, k, sizeof k);
      st_stage_param (s, 1)->data[0] = 0.5f;
      g_autoptr (StTensor) out2 = st_tensor_new (s->out_shape, NULL);
      s->kind->forward (s, ctxs[t], (const StTensor *const *) &in, out2, &error);
      g_assert_no_error (error);
      static const float want2[4] = { 44.5, 64.5, 124.5, 144.5 };
      g_assert_cmpint (out2->shape.h, ==, 2);
      for (int i = 0; i < 4; i++)
        g_assert_cmpfloat (out2->data[i], ==, want2[i]);
      StShape five = { 1, 1, 5, 5 };
      st_stage_infer (s, &five, 1, &error);
      g_assert_no_error (error);
      g_assert_true (s->floored);
      g_assert_cmpint (s->out_shape.h, ==, 2);
      st_stage_free (s);
    }
}

/* Output sizes, padding and halo as the help text promises. */
static void
test_conv_shapes (void)
{
  static const struct {
    const char *params;
    StShape in, out;
    gboolean floored;
    int halo;
  } cases[] = {
    { "filters=32 size=3", { 2, 1, 28, 28 }, { 2, 32, 26, 26 }, FALSE, ST_HALO_WHOLE },
    { "filters=8 size=3 padding=same", { 1, 3, 28, 28 }, { 1, 8, 28, 28 }, FALSE, 1 },
    { "filters=8 size=3 padding=1", { 1, 3, 28, 28 }, { 1, 8, 28, 28 }, FALSE, 1 },
    { "filters=8 size=4 padding=same", { 1, 3, 28, 28 }, { 1, 8, 28, 28 }, FALSE, 2 },
    { "filters=8 size=3 dilation=2 padding=same", { 1, 3, 28, 28 }, { 1, 8, 28, 28 }, FALSE, 2 },
    { "filters=8 size=3 stride=2 padding=same", { 1, 3, 28, 28 }, { 1, 8, 14, 14 }, FALSE, ST_HALO_WHOLE },
    { "filters=8 size=3 stride=2 padding=same", { 1, 3, 27, 27 }, { 1, 8, 14, 14 }, FALSE, ST_HALO_WHOLE },
    { "filters=8 size=3 stride=2", { 1, 3, 28, 28 }, { 1, 8, 13, 13 }, TRUE, ST_HALO_WHOLE },
    { "filters=8 size=5 stride=2 padding=2", { 1, 3, 28, 28 }, { 1, 8, 14, 14 }, TRUE, ST_HALO_WHOLE },
    { "filters=8 size=3,5 stride=1,2", { 1, 3, 10, 21 }, { 1, 8, 8, 9 }, FALSE, ST_HALO_WHOLE },
    { "filters=8 size=3,5 stride=1,2", { 1, 3, 10, 20 }, { 1, 8, 8, 8 }, TRUE, ST_HALO_WHOLE },
    { "filters=4 size=1", { 3, 16, 7, 9 }, { 3, 4, 7, 9 }, FALSE, 0 },
  };
  for (guint i = 0; i < G_N_ELEMENTS (cases); i++)
    {
      g_autoptr (GError) error = NULL;
      StStage *s = tu_stage_new (reg, "conv2d", "c", cases[i].params, &error);
      g_assert_no_error (error);
      st_stage_infer (s, &cases[i].in, 1, &error);
      g_assert_no_error (error);
      if (!st_shape_equal (s->out_shape, cases[i].out) || s->floored != cases[i].floored
          || s->halo != cases[i].halo)
        {
          char a[64];
          g_error ("[%s]: got %s floored %d halo %d", cases[i].params,
                   st_shape_format (s->out_shape, a, 64), s->floored, s->halo);
        }
      st_stage_free (s);
    }
}

static void
expect_infer_error (const char *kind_name, const char *params, StShape in,
                    StErrorCode code, const char *message)
{
  g_autoptr (GError) error = NULL;
  StStage *s = tu_stage_new (reg, kind_name, "conv7", params, &error);
  g_assert_no_error (error);
  g_assert_false (st_stage_infer (s, &in, 1, &error));
  g_assert_error (error, ST_ERROR, (gint) code);
  if (!strstr (error->message, message) || !strstr (error->message, "'conv7'"))
    g_error ("[%s]: message '%s' lacks '%s' or the stage name", params, error->message, message);
  st_stage_free (s);
}

static void
test_conv_errors (void)
{
  expect_infer_error ("conv2d", "filters=4 size=5", (StShape) { 1, 1, 3, 3 }, ST_ERROR_SHAPE,
                      "kernel 5x5 is larger than the padded input 3x3");
  expect_infer_error ("conv2d", "filters=4 size=5,2 padding=1", (StShape) { 1, 1, 2, 2 },
                      ST_ERROR_SHAPE, "kernel 5x2 is larger than the padded input 4x4");
  expect_infer_error ("conv2d", "filters=4 size=3 dilation=3", (StShape) { 1, 1, 6, 9 },
                      ST_ERROR_SHAPE, "kernel 3x3 dilated by 3x3 spans 7x7, larger than the padded input 6x9");
  expect_infer_error ("conv2d", "filters=4 groups=2", (StShape) { 1, 3, 8, 8 }, ST_ERROR_SHAPE,
                      "3 input channels are not divisible by groups=2");
  expect_infer_error ("conv2d", "filters=3 groups=2", (StShape) { 1, 4, 8, 8 }, ST_ERROR_SHAPE,
                      "filters=3 is not divisible by groups=2");
  expect_infer_error ("conv2d", "filters=3 size=3,3,3", (StShape) { 1, 4, 8, 8 }, ST_ERROR_PIPELINE,
                      "key 'size': expected one value or two (height,width), found 3");
  expect_infer_error ("conv2d", "filters=3 stride=1,2,1", (StShape) { 1, 4, 8, 8 }, ST_ERROR_PIPELINE,
                      "key 'stride'");

  /* Values the parameter table refuses before any plugin code runs. */
  static const char *const bad[] = {
    "filters=0", "size=3", "filters=2 size=0", "filters=2 stride=0", "filters=2 padding=-3",
    "filters=2 padding=full", "filters=2 groups=0", "filters=2 activation=swish",
    "filters=2 slope=-1", "filters=2 kernel_size=3",
  };
  for (guint i = 0; i < G_N_ELEMENTS (bad); i++)
    {
      g_autoptr (GError) error = NULL;
      StStage *s = tu_stage_new (reg, "conv2d", "conv7", bad[i], &error);
      if (s)
        g_error ("[%s] was accepted", bad[i]);
      g_assert_error (error, ST_ERROR, ST_ERROR_PIPELINE);
      g_assert_nonnull (strstr (error->message, "'conv7'"));
    }

  /* Through a pipeline file the message names the file and the stage. */
  const char *text =
    "[pipeline]\ninput=3x16x16\n\n"
    "[conv1]\ntype=conv2d\nfilters=8\ngroups=2\n";
  g_autoptr (GError) error = NULL;
  StPipeline *p = st_pipeline_load_data (reg, text, "groups.ini", &error);
  g_assert_null (p);
  g_assert_error (error, ST_ERROR, ST_ERROR_SHAPE);
  g_assert_nonnull (strstr (error->message, "groups.ini"));
  g_assert_nonnull (strstr (error->message, "conv1"));
  g_assert_nonnull (strstr (error->message, "3 input channels are not divisible by groups=2"));
}

/* The kernel filter is a depthwise conv2d without bias: same numbers. */
static void
test_conv_equals_kernel (void)
{
  static const struct {
    const char *kernel, *conv;
    int kh, kw;
  } cases[] = {
    { "border=zero padding=valid", "padding=valid", 3, 3 },
    { "border=zero padding=same", "padding=same", 3, 4 },
    { "border=zero padding=same", "padding=same", 5, 5 },
    { "border=zero padding=2", "padding=2", 3, 2 },
    { "border=zero padding=valid stride=2", "padding=valid stride=2", 3, 3 },
  };
  g_autoptr (GRand) rand = g_rand_new_with_seed (7);
  StShape shape = { 2, 3, 17, 19 };
  g_autoptr (StTensor) in = random_tensor (shape, rand);
  for (guint i = 0; i < G_N_ELEMENTS (cases); i++)
    {
      int kh = cases[i].kh, kw = cases[i].kw;
      g_autofree float *k = g_new (float, kh * kw);
      GString *matrix = g_string_new ("matrix=");
      for (int m = 0; m < kh; m++)
        for (int n = 0; n < kw; n++)
          {
            /* Values exact in float and in text. */
            k[m * kw + n] = (float) (g_rand_int_range (rand, -64, 64) / 16.0);
            g_string_append_printf (matrix, "%s%g", n ? "," : (m ? ";" : ""), k[m * kw + n]);
          }
      g_autofree char *kparams = g_strdup_printf ("%s %s", matrix->str, cases[i].kernel);
      g_autofree char *cparams = g_strdup_printf ("filters=3 groups=3 bias=false size=%d,%d %s",
                                                  kh, kw, cases[i].conv);
      g_string_free (matrix, TRUE);

      for (int t = 0; t < 2; t++)
        {
          g_autoptr (GError) error = NULL;
          StStage *ks = tu_stage_new (reg, "kernel", "k", kparams, &error);
          g_assert_no_error (error);
          StStage *cs = tu_stage_new (reg, "conv2d", "c", cparams, &error);
          g_assert_no_error (error);
          st_stage_infer (ks, &shape, 1, &error);
          g_assert_no_error (error);
          st_stage_infer (cs, &shape, 1, &error);
          g_assert_no_error (error);
          g_assert_true (st_shape_equal (ks->out_shape, cs->out_shape));
          g_assert_cmpint (ks->halo, ==, cs->halo);
          StTensor *w = st_stage_param (cs, 0);
          for (int c = 0; c < 3; c++)
            memcpy (w->data + c * kh * kw, k, sizeof (float) * kh * kw);
          g_autoptr (StTensor) a = st_tensor_new (ks->out_shape, NULL);
          g_autoptr (StTensor) b = st_tensor_new (cs->out_shape, NULL);
          ks->kind->forward (ks, ctxs[t], (const StTensor *const *) &in, a, &error);
          g_assert_no_error (error);
          cs->kind->forward (cs, ctxs[t], (const StTensor *const *) &in, b, &error);
          g_assert_no_error (error);
          for (gsize j = 0; j < st_tensor_numel (a); j++)
            if (fabsf (a->data[j] - b->data[j]) > 1e-5f * MAX (1.0f, fabsf (a->data[j])))
              g_error ("kernel [%s] vs conv2d [%s]: %g vs %g at %" G_GSIZE_FORMAT,
                       kparams, cparams, a->data[j], b->data[j], j);
          st_stage_free (ks);
          st_stage_free (cs);
        }
    }
}

/* ---- Reference dense ---------------------------------------------------------- */

static void
check_dense_case (const char *params, StShape in_shape, StRunContext *ctx, guint32 seed)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (GRand) rand = g_rand_new_with_seed (seed);
  StStage *s = tu_stage_new (reg, "dense", "fc", params, &error);
  g_assert_no_error (error);
  st_stage_infer (s, &in_shape, 1, &error);
  g_assert_no_error (error);

  RefConv r = ref_conv_from (params, in_shape);   /* for bias, act and a */
  int n = in_shape.n, f = in_shape.c * in_shape.h * in_shape.w;
  int u = param_int (params, "units", 0, 1);
  StShape want = { n, u, 1, 1 };
  g_assert_true (st_shape_equal (s->out_shape, want));
  g_assert_cmpint (s->halo, ==, ST_HALO_WHOLE);
  g_assert_cmpfloat (s->macs, ==, (double) n * u * f);
  StWeight *wp = st_stage_get_weight (s, 0);
  g_assert_cmpstr (wp->full_name, ==, "fc.weight");
  g_assert_cmpint (wp->rank, ==, 2);
  g_assert_cmpint (wp->dims[0], ==, u);
  g_assert_cmpint (wp->dims[1], ==, f);

  StTensor *w = st_stage_param (s, 0);
  StTensor *b = r.bias ? st_stage_param (s, 1) : NULL;
  fill_random (w, rand);
  if (b)
    fill_random (b, rand);
  g_autoptr (StTensor) in = random_tensor (in_shape, rand);
  g_autoptr (StTensor) out = st_tensor_new (s->out_shape, NULL);
  s->kind->forward (s, ctx, (const StTensor *const *) &in, out, &error);
  g_assert_no_error (error);

  g_autofree double *ref = g_new (double, n * u);
  g_autofree double *pre = g_new (double, n * u);
  for (int i = 0; i < n; i++)
    for (int o = 0; o < u; o++)
      {
        double sum = b ? b->data[o] : 0.0;
        for (int k = 0; k < f; k++)
          sum += (double) w->data[(gsize) o * f + k] * in->data[(gsize) i * f + k];
        pre[i * u + o] = sum;
        ref[i * u + o] = ref_act (r.act, r.a, sum);
      }
  assert_close ("dense forward", params, out->data, ref, (gsize) n * u, 1e-4);

  st_stage_enable_grads (s);
  g_autoptr (StTensor) dout = random_tensor (s->out_shape, rand);
  g_autoptr (StTensor) din = st_tensor_new (in_shape, NULL);
  g_autofree double *rdin = g_new0 (double, (gsize) n * f);
  g_autofree double *rdw = g_new0 (double, (gsize) u * f);
  g_autofree double *rdb = g_new0 (double, u);
  for (int i = 0; i < n; i++)
    for (int o = 0; o < u; o++)
      {
        double dz = dout->data[i * u + o] * ref_act_grad (r.act, r.a, pre[i * u + o]);
        rdb[o] += dz;
        for (int k = 0; k < f; k++)
          {
            rdw[(gsize) o * f + k] += dz * in->data[(gsize) i * f + k];
            rdin[(gsize) i * f + k] += dz * w->data[(gsize) o * f + k];
          }
      }
  StTensor *gin[1] = { din };
  for (gsize i = 0; i < st_tensor_numel (din); i++)
    din->data[i] = 1e3f;
  s->kind->backward (s, ctx, (const StTensor *const *) &in, out, dout, gin, &error);
  g_assert_no_error (error);
  assert_close ("dense grad input", params, din->data, rdin, (gsize) n * f, 1e-4);
  assert_close ("dense grad weight", params, st_stage_param_grad (s, 0)->data, rdw, (gsize) u * f, 1e-4);
  if (b)
    assert_close ("dense grad bias", params, st_stage_param_grad (s, 1)->data, rdb, u, 1e-4);
  st_stage_free (s);
}

static const ConvCase dense_cases[] = {
  { "units=7", { 1, 13, 1, 1 } },
  { "units=5", { 1, 3, 4, 5 } },                 /* flattened in C, H, W order */
  { "units=1 bias=false", { 1, 9, 1, 1 } },
};

static void
test_dense_reference (void)
{
  for (int batch = 1; batch <= 5; batch += 4)
    for (int t = 0; t < 2; t++)
      {
        for (guint i = 0; i < G_N_ELEMENTS (dense_cases); i++)
          {
            StShape s = dense_cases[i].in;
            s.n = batch;
            check_dense_case (dense_cases[i].params, s, ctxs[t], 400 + i);
          }
        for (guint i = 0; i < G_N_ELEMENTS (act_cases); i++)
          {
            g_autofree char *params = g_strdup_printf ("units=6 %s", act_cases[i].params);
            check_dense_case (params, (StShape) { batch, 2, 3, 3 }, ctxs[t], 420 + i);
          }
      }
  /* Big enough to split among threads: by samples, and by units at batch 1. */
  for (int t = 0; t < 2; t++)
    {
      check_dense_case ("units=64 activation=relu", (StShape) { 64, 64, 3, 3 }, ctxs[t], 450);
      check_dense_case ("units=500 activation=gelu", (StShape) { 1, 2000, 1, 1 }, ctxs[t], 451);
      check_dense_case ("units=10", (StShape) { 3, 40000, 1, 1 }, ctxs[t], 452);
    }
}

static void
test_dense_gradcheck (void)
{
  for (int batch = 1; batch <= 5; batch += 4)
    {
      for (guint i = 0; i < G_N_ELEMENTS (dense_cases); i++)
        {
          StShape s = dense_cases[i].in;
          s.n = batch;
          gradcheck ("dense", dense_cases[i].params, s, 4.0, 500 + i);
        }
      for (guint i = 0; i < G_N_ELEMENTS (act_cases); i++)
        {
          g_autofree char *params = g_strdup_printf ("units=6 %s", act_cases[i].params);
          gradcheck ("dense", params, (StShape) { batch, 11, 1, 1 }, act_cases[i].eps, 520 + i);
        }
    }
}

/* A 2×2 layer by hand: out = W·x + b = [1 2; 3 4]·[1, −1] + [0.5, −0.5]. */
static void
test_dense_known (void)
{
  g_autoptr (GError) error = NULL;
  StShape shape = { 1, 2, 1, 1 };
  StStage *s = tu_stage_new (reg, "dense", "fc1", "units=2 activation=relu", &error);
  g_assert_no_error (error);
  st_stage_infer (s, &shape, 1, &error);
  g_assert_no_error (error);
  float w[4] = { 1, 2, 3, 4 }, b[2] = { 0.5f, -0.5f };
  memcpy (st_stage_param (s, 0)->data, w, sizeof w);
  memcpy (st_stage_param (s, 1)->data, b, sizeof b);
  g_autoptr (StTensor) in = st_tensor_new (shape, NULL);
  in->data[0] = 1;
  in->data[1] = -1;
  g_autoptr (StTensor) out = st_tensor_new (s->out_shape, NULL);
  s->kind->forward (s, ctxs[0], (const StTensor *const *) &in, out, &error);
  g_assert_no_error (error);
  /* pre = [1 − 2 + 0.5, 3 − 4 − 0.5] = [−0.5, −1.5]: relu zeroes both. */
  g_assert_cmpfloat (out->data[0], ==, 0.0f);
  g_assert_cmpfloat (out->data[1], ==, 0.0f);
  b[0] = 2.0f;
  memcpy (st_stage_param (s, 1)->data, b, sizeof b);
  s->kind->forward (s, ctxs[0], (const StTensor *const *) &in, out, &error);
  g_assert_cmpfloat (out->data[0], ==, 1.0f);

  /* A changed input size is a changed weight shape: a clear error. */
  StShape other = { 1, 3, 1, 1 };
  g_assert_false (st_stage_infer (s, &other, 1, &error));
  g_assert_error (error, ST_ERROR, ST_ERROR_SHAPE);
  g_assert_nonnull (strstr (error->message, "fc1.weight"));
  st_stage_free (s);
}

/* ---- The Keras MNIST network --------------------------------------------------- */

static const char mnist_ini[] =
  "[pipeline]\n"
  "input=1x28x28\n"
  "[conv1]\ntype=conv2d\nfilters=32\nsize=3\nactivation=relu\n"
  "[pool1]\ntype=maxpool\nsize=2\n"
  "[conv2]\ntype=conv2d\nfilters=64\nsize=3\nactivation=relu\n"
  "[pool2]\ntype=maxpool\nsize=2\n"
  "[conv3]\ntype=conv2d\nfilters=64\nsize=3\nactivation=relu\n"
  "[flatten]\ntype=flatten\n"
  "[fc1]\ntype=dense\nunits=64\nactivation=relu\n"
  "[fc2]\ntype=dense\nunits=10\n"
  "[prob]\ntype=softmax\n";

/* The same network with its max pooling fused into conv1 and conv2. */
static const char mnist_fused_ini[] =
  "[pipeline]\n"
  "input=1x28x28\n"
  "[conv1]\ntype=conv2d\nfilters=32\nsize=3\nactivation=relu\npool=2\n"
  "[conv2]\ntype=conv2d\nfilters=64\nsize=3\nactivation=relu\npool=2\n"
  "[conv3]\ntype=conv2d\nfilters=64\nsize=3\nactivation=relu\n"
  "[flatten]\ntype=flatten\n"
  "[fc1]\ntype=dense\nunits=64\nactivation=relu\n"
  "[fc2]\ntype=dense\nunits=10\n"
  "[prob]\ntype=softmax\n";

static double
net_loss (StPipeline *p, StRunContext *ctx, const StTensor *in, const StTensor *r)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (StTensor) out = st_pipeline_forward (p, ctx, in, FALSE, &error);
  g_assert_no_error (error);
  double sum = 0.0;
  for (gsize i = 0; i < st_tensor_numel (out); i++)
    sum += (double) out->data[i] * r->data[i];
  return sum;
}

/* data: the network's pipeline text. */
static void
test_network (gconstpointer data)
{
  g_autoptr (GError) error = NULL;
  StPipeline *p = st_pipeline_load_data (reg, data, "keras-mnist.ini", &error);
  g_assert_no_error (error);

  gsize total = 0;
  for (int i = 0; i < st_pipeline_n_stages (p); i++)
    {
      StStage *s = st_pipeline_stage (p, i);
      for (int k = 0; k < st_stage_n_weights (s); k++)
        total += st_tensor_numel (st_stage_param (s, k));
      st_stage_enable_grads (s);
      st_stage_zero_grads (s);
    }
  g_assert_cmpuint (total, ==, 93322);

  /* Batch of 2: gradients summed over samples, as training does. */
  g_autoptr (GRand) rand = g_rand_new_with_seed (2024);
  g_autoptr (StTensor) in = st_tensor_new0 (2, 1, 28, 28);
  for (gsize i = 0; i < st_tensor_numel (in); i++)
    in->data[i] = (float) g_rand_double (rand);
  StRunContext *ctx = ctxs[1];
  g_autoptr (StTensor) out = st_pipeline_forward (p, ctx, in, TRUE, &error);
  g_assert_no_error (error);
  g_assert_cmpint (out->shape.n, ==, 2);
  g_assert_cmpint (out->shape.c, ==, 10);
  g_autoptr (StTensor) r = random_tensor (out->shape, rand);
  st_pipeline_backward (p, ctx, r, &error);
  g_assert_no_error (error);

  /* Central differences of Σ out · R on a sample of every parameter.  Two
   * things limit them in float: rounding of the outputs, which grows as the
   * step shrinks, and ReLU and maxpool kinks, which a larger step straddles
   * (a conv1 bias moves 1,352 pre-activations at once).  So each element's
   * numeric gradient is the median of the differences at five steps from
   * 2e-3 down to 1.25e-4, and each tensor is scored by the norm-wise error
   * |a − n| / |a| over its sample, which tiny entries, all rounding, cannot
   * dominate. */
  double worst = 0.0;
  int checked = 0;
  for (int i = 0; i < st_pipeline_n_stages (p); i++)
    {
      StStage *s = st_pipeline_stage (p, i);
      for (int k = 0; k < st_stage_n_weights (s); k++)
        {
          StWeight *param = st_stage_get_weight (s, k);
          float *v = param->value->data;
          gsize n = st_tensor_numel (param->value);
          double sum_err = 0.0, sum_a = 0.0, elem_worst = 0.0;
          int samples = (int) MIN (n, 32);
          for (int e = 0; e < samples; e++)
            {
              gsize j = n <= 32 ? (gsize) e : (gsize) g_rand_int_range (rand, 0, (gint32) n);
              double a = param->grad->data[j];
              double nums[5], eps = 2e-3;
              for (int q = 0; q < 5; q++, eps /= 2)
                {
                  float v0 = v[j], vp = (float) (v0 + eps), vm = (float) (v0 - eps);
                  v[j] = vp;
                  double lp = net_loss (p, ctx, in, r);
                  v[j] = vm;
                  double lm = net_loss (p, ctx, in, r);
                  v[j] = v0;
                  nums[q] = (lp - lm) / ((double) vp - vm);
                }
              for (int x = 0; x < 5; x++)
                for (int y = x + 1; y < 5; y++)
                  if (nums[y] < nums[x])
                    {
                      double t = nums[x];
                      nums[x] = nums[y];
                      nums[y] = t;
                    }
              double num = nums[2];
              sum_err += (a - num) * (a - num);
              sum_a += a * a;
              elem_worst = MAX (elem_worst, fabs (a - num) / MAX (MAX (fabs (a), fabs (num)), 1e-30));
              checked++;
            }
          double err = sqrt (sum_err / MAX (sum_a, 1e-300));
          g_test_message ("%-13s %2d elements: norm-wise relative error %.2g (worst element %.2g)",
                          param->full_name, samples, err, elem_worst);
          /* Over many seeds conv1 and conv2, under the most kinks, score
           * up to 2.5e-2 and the rest below 1e-2; a wrong gradient scores
           * near 1. */
          gboolean early = g_str_equal (s->name, "conv1") || g_str_equal (s->name, "conv2");
          g_assert_cmpfloat (err, <, early ? 5e-2 : 1e-2);
          worst = MAX (worst, err);
        }
    }
  g_test_message ("keras-mnist whole-network gradient check: %d elements, worst tensor %.2g",
                  checked, worst);
  st_pipeline_free (p);
}

/* The installed description is the same network: with the same weights,
 * the same scores and gradients as the one with maxpool stages. */
static void
test_network_file (void)
{
  g_autoptr (GError) error = NULL;
  g_autofree char *path = g_build_filename (STRATA_SOURCE_ROOT, "pipelines", "keras-mnist.ini", NULL);
  StPipeline *p = st_pipeline_load_file (reg, path, &error);
  g_assert_no_error (error);
  StPipeline *plain = st_pipeline_load_data (reg, mnist_ini, "keras-mnist.ini", &error);
  g_assert_no_error (error);
  g_autoptr (GPtrArray) weights = st_pipeline_weights (p);
  g_autoptr (GPtrArray) plain_weights = st_pipeline_weights (plain);
  g_assert_cmpuint (weights->len, ==, plain_weights->len);
  for (guint i = 0; i < weights->len; i++)
    {
      StWeight *w = weights->pdata[i], *pw = plain_weights->pdata[i];
      g_assert_cmpstr (w->full_name, ==, pw->full_name);
      g_assert_cmpuint (st_tensor_numel (w->value), ==, st_tensor_numel (pw->value));
      memcpy (w->value->data, pw->value->data, st_tensor_numel (w->value) * sizeof (float));
    }
  g_autoptr (GRand) rand = g_rand_new_with_seed (77);
  g_autoptr (StTensor) in = st_tensor_new0 (9, 1, 28, 28);
  for (gsize i = 0; i < st_tensor_numel (in); i++)
    in->data[i] = (float) g_rand_double (rand);
  for (int i = 0; i < st_pipeline_n_stages (p); i++)
    st_stage_enable_grads (st_pipeline_stage (p, i));
  for (int i = 0; i < st_pipeline_n_stages (plain); i++)
    st_stage_enable_grads (st_pipeline_stage (plain, i));
  g_autoptr (StTensor) got = st_pipeline_forward (p, ctxs[1], in, TRUE, &error);
  g_assert_no_error (error);
  g_autoptr (StTensor) want = st_pipeline_forward (plain, ctxs[1], in, TRUE, &error);
  g_assert_no_error (error);
  g_autofree double *want_d = to_doubles (want);
  assert_close ("keras-mnist.ini scores", "", got->data, want_d, st_tensor_numel (want), 1e-5);
  g_autoptr (StTensor) r = random_tensor (got->shape, rand);
  g_assert_true (st_pipeline_backward (p, ctxs[1], r, &error));
  g_assert_true (st_pipeline_backward (plain, ctxs[1], r, &error));
  for (guint i = 0; i < weights->len; i++)
    {
      StWeight *w = weights->pdata[i], *pw = plain_weights->pdata[i];
      g_autofree double *d = to_doubles (pw->grad);
      assert_close ("keras-mnist.ini gradient", w->full_name, w->grad->data, d,
                    st_tensor_numel (pw->grad), 1e-4);
    }
  st_pipeline_free (plain);
  gsize total = 0;
  for (int i = 0; i < st_pipeline_n_stages (p); i++)
    {
      StStage *s = st_pipeline_stage (p, i);
      for (int k = 0; k < st_stage_n_weights (s); k++)
        total += st_tensor_numel (st_stage_param (s, k));
    }
  g_assert_cmpuint (total, ==, 93322);
  StShape shape;
  g_assert_true (st_pipeline_fixed_input (p, &shape));
  g_assert_cmpint (shape.c, ==, 1);
  g_assert_cmpint (shape.h, ==, 28);
  StShape o = st_pipeline_output_shape (p);
  g_assert_cmpint (o.c, ==, 10);
  st_pipeline_free (p);
}

/* Pieces of one image on different tasks reach the same input rows; their
 * input gradients must add up in the same order whichever thread finishes
 * first, so repeated backward passes on many threads agree bit for bit
 * (and with the reference).  Adding them as the tasks finished made the
 * last bits of the shared rows vary from run to run. */
static void
test_conv_split_deterministic (void)
{
  static const ConvCase cases[] = {
    { "filters=8 size=3 padding=same activation=relu", { 1, 4, 64, 64 } },
    { "filters=6 size=5,3 stride=2 dilation=1,2 padding=2", { 2, 3, 90, 70 } },
    { "filters=4 size=3 dilation=3 padding=same groups=2", { 3, 4, 70, 61 } },
    { "filters=32 size=3 padding=same activation=relu", { 16, 16, 9, 9 } },
  };
  StRunContext *ctx = st_run_context_new (8, 1);
  for (guint i = 0; i < G_N_ELEMENTS (cases); i++)
    {
      check_conv_case (cases[i].params, cases[i].in, ctx, 400 + i);

      g_autoptr (GError) error = NULL;
      g_autoptr (GRand) rand = g_rand_new_with_seed (450 + i);
      StStage *s = tu_stage_new (reg, "conv2d", "conv", cases[i].params, &error);
      g_assert_no_error (error);
      st_stage_infer (s, &cases[i].in, 1, &error);
      g_assert_no_error (error);
      fill_random (st_stage_param (s, 0), rand);
      st_stage_enable_grads (s);
      g_autoptr (StTensor) in = random_tensor (cases[i].in, rand);
      g_autoptr (StTensor) out = st_tensor_new (s->out_shape, NULL);
      g_autoptr (StTensor) dout = random_tensor (s->out_shape, rand);
      g_autoptr (StTensor) din = st_tensor_new (cases[i].in, NULL);
      g_autoptr (StTensor) first = st_tensor_new (cases[i].in, NULL);
      g_assert_true (s->kind->forward (s, ctx, (const StTensor *const *) &in, out, &error));
      StTensor *dw = st_stage_param_grad (s, 0);
      g_autoptr (StTensor) first_dw = st_tensor_new (dw->shape, NULL);
      for (int run = 0; run < 30; run++)
        {
          StTensor *gin[1] = { run == 0 ? first : din };
          st_stage_zero_grads (s);
          g_assert_true (s->kind->backward (s, ctx, (const StTensor *const *) &in, out, dout,
                                            gin, &error));
          g_assert_no_error (error);
          if (run == 0)
            memcpy (first_dw->data, dw->data, sizeof (float) * st_tensor_numel (dw));
          if (run > 0 && memcmp (din->data, first->data, sizeof (float) * st_tensor_numel (din)) != 0)
            g_error ("[%s]: the input gradient of run %d differs from the first's", cases[i].params,
                     run + 1);
          if (run > 0 && memcmp (dw->data, first_dw->data, sizeof (float) * st_tensor_numel (dw)) != 0)
            g_error ("[%s]: the weight gradient of run %d differs from the first's", cases[i].params,
                     run + 1);
        }
      st_stage_free (s);
    }
  st_run_context_free (ctx);
}

/* Filters in sixteens at stride 1 take the register tiles (tiles.c) where
 * the CPU has AVX-512, with at least an image per thread: the Keras MNIST
 * shapes; 48 and 80 channels (64 + 16, in both directions); one and three
 * vectors of channels; padding on one side, on both, and none; every
 * activation's backward from dzT; rectangular kernels; images not a
 * multiple of a tile's pixels; several small images to a call, the last
 * call short; a batch of one image on one thread; and input channels not
 * in sixteens (1, 3, 20), whose input gradient runs on channels padded
 * to sixteens. */
static const ConvCase tile_cases[] = {
  { "filters=64 size=3 activation=relu", { 8, 32, 13, 13 } },
  { "filters=64 size=3 activation=relu", { 6, 64, 5, 5 } },
  { "filters=48 size=5,3 padding=same activation=gelu", { 3, 16, 7, 12 } },
  { "filters=80 size=3 padding=1 activation=leaky_relu slope=0.2", { 3, 80, 6, 5 } },
  { "filters=16 size=2 bias=false activation=tanh", { 4, 32, 9, 9 } },
  { "filters=32 size=4,1 padding=2 activation=sigmoid", { 2, 16, 3, 17 } },
  { "filters=16 size=3 activation=elu alpha=0.5", { 1, 48, 4, 4 } },
  /* Small maps go several images to a call: 4 here, the last call 1. */
  { "filters=32 size=3 padding=same activation=relu", { 21, 16, 4, 5 } },
  { "filters=16 size=3 activation=relu", { 4, 1, 8, 8 } },
  { "filters=32 size=3 padding=same", { 2, 3, 7, 9 } },
  { "filters=16 size=2 padding=1 activation=tanh", { 2, 20, 6, 5 } },
};

static void
test_conv_tiles (void)
{
  for (int training = 0; training < 2; training++)
    for (int t = 0; t < 2; t++)
      {
        StRunContext *ctx = st_run_context_new (t + 1, 1);
        ctx->training = training;
        for (guint i = 0; i < G_N_ELEMENTS (tile_cases); i++)
          check_conv_case (tile_cases[i].params, tile_cases[i].in, ctx, 700 + i);
        st_run_context_free (ctx);
      }
}

/* In training the forward keeps its col matrices for the backward instead
 * of packing the input again: the same cases, against the same reference,
 * on training contexts. */
static void
test_conv_training (void)
{
  for (int t = 0; t < 2; t++)
    {
      StRunContext *ctx = st_run_context_new (t + 1, 1);
      ctx->training = TRUE;
      for (guint i = 0; i < G_N_ELEMENTS (threaded_cases); i++)
        check_conv_case (threaded_cases[i].params, threaded_cases[i].in, ctx, 500 + i);
      for (guint i = 0; i < G_N_ELEMENTS (conv_cases); i++)
        {
          StShape s = conv_cases[i].in;
          s.n = 5;
          check_conv_case (conv_cases[i].params, s, ctx, 550 + i);
        }
      check_conv_case ("filters=32 size=3 activation=relu", (StShape) { 7, 1, 28, 28 }, ctx, 590);
      st_run_context_free (ctx);
    }
}

/* Whole images at column stride 1 are packed and unpacked row by row:
 * row strides above 1, padding and dilation on that path, rows shorter and
 * longer than a burst copy.  And pieces of images whose tasks clear the
 * input gradient of the images they hold whole, while images cut between
 * tasks are cleared before: several pieces per image over tasks of
 * several blocks, and a pointwise convolution written in place. */
static void
test_conv_rows (void)
{
  static const ConvCase cases[] = {
    { "filters=4 size=3,5 stride=2,1 padding=same", { 3, 3, 20, 11 } },
    { "filters=4 size=3 stride=3,1 dilation=2 padding=2", { 4, 2, 17, 9 } },
    { "filters=6 size=5 padding=same activation=relu", { 3, 2, 12, 20 } },
    { "filters=5 size=3,4 stride=2,1", { 2, 3, 9, 30 } },
    { "filters=8 size=3 padding=same", { 16, 1, 50, 50 } },
    { "filters=16 size=1", { 3, 16, 50, 50 } },
  };
  for (guint i = 0; i < G_N_ELEMENTS (cases); i++)
    for (int t = 0; t < 2; t++)
      check_conv_case (cases[i].params, cases[i].in, ctxs[t], 600 + i);
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  reg = st_registry_new (NULL);
  for (int i = 0; i < 2; i++)
    ctxs[i] = st_run_context_new (i + 1, 1);

  g_test_add_func ("/conv2d/known", test_conv_known);
  g_test_add_func ("/conv2d/shapes", test_conv_shapes);
  g_test_add_func ("/conv2d/reference", test_conv_reference);
  g_test_add_func ("/conv2d/threaded", test_conv_threaded);
  g_test_add_func ("/conv2d/rows", test_conv_rows);
  g_test_add_func ("/conv2d/tiles", test_conv_tiles);
  g_test_add_func ("/conv2d/pool", test_conv_pool);
  g_test_add_func ("/conv2d/split-deterministic", test_conv_split_deterministic);
  g_test_add_func ("/conv2d/training", test_conv_training);
  g_test_add_func ("/conv2d/gradcheck", test_conv_gradcheck);
  g_test_add_func ("/conv2d/errors", test_conv_errors);
  g_test_add_func ("/conv2d/equals-kernel", test_conv_equals_kernel);
  g_test_add_func ("/dense/known", test_dense_known);
  g_test_add_func ("/dense/reference", test_dense_reference);
  g_test_add_func ("/dense/gradcheck", test_dense_gradcheck);
  g_test_add_data_func ("/network/keras-mnist", mnist_ini, test_network);
  g_test_add_data_func ("/network/keras-mnist-fused", mnist_fused_ini, test_network);
  g_test_add_func ("/network/keras-mnist-file", test_network_file);

  int rc = g_test_run ();
  for (int i = 0; i < 2; i++)
    st_run_context_free (ctxs[i]);
  st_registry_free (reg);
  return rc;
}
