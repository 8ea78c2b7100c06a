/* strata — checking a stage's backward against finite differences.
 *
 * The loss is L = Σ out · R for a fixed random R, so grad_output = R and
 * one backward gives every analytic gradient at once; each numeric one is
 * (L(v + h) − L(v − h)) / 2h for one element v.  Values stay float, as
 * stages compute them, but L is summed in double and h is the step the
 * float actually took, so the only noise left is the stage's own rounding.
 *
 * When that central difference disagrees, more estimates are tried before
 * calling the gradient wrong, each sound in its own case:
 * - the central difference at h/2, and Richardson's (4·D(h/2) − D(h)) / 3,
 *   whose error is O(h⁴) instead of O(h²): for curved stages (gelu,
 *   softmax, batchnorm), where a step large enough to beat float noise
 *   leaves too much truncation error;
 * - the central difference at h/4 that agrees with the one at h/8: for
 *   kinks on both sides of v, none within h/4 (a bias moving many
 *   pre-activations of a fused activation at once);
 * - a one-sided difference, forward or backward, that gives the same slope
 *   at h and at h/2 (so the loss is straight on that side): for kinks
 *   (relu, maxpool ties), where the central difference averages two
 *   slopes and the gradient is whichever side the stage's subgradient
 *   convention picked (PyTorch's relu'(0) = 0, the first maximum);
 * - a one-sided Richardson 2·D(h/2) − D(h) that agrees with
 *   2·D(h/4) − D(h/2) (so that side is smooth): for a kink next to a
 *   curved side (elu with alpha ≠ 1 fused into conv2d or dense), where
 *   the one-sided slope itself is off by O(h), about h/2 relative on
 *   elu's exp side, far above the tolerance.
 * A gradient that is simply wrong matches none of these.  The reported
 * error is that of the closest estimate.
 *
 * Inputs are spread evenly over [-1, 1] (see fill_spread), trainable
 * parameters drawn uniformly from it; saved statistics keep their
 * initial values.  A mismatch returns FALSE with an ST_ERROR_FAILED error
 * naming the worst element, like any other failure. */
#include "context.h"
#include "kind.h"
#include "stage.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

/* Elements checked per tensor: enough to catch an indexing mistake, few
 * enough that a large layer checks in well under a second. */
#define MAX_CHECKED_PER_TENSOR 200
#define GRADCHECK_THREADS 4

typedef struct {
  StStage *stage;
  StRunContext *ctx;
  guint64 rng_state[4];        /* the context's generator before every forward */
  int n_inputs;
  StTensor **inputs;
  StTensor **grad_inputs;      /* the backward's */
  StTensor *output;
  StTensor *r;                 /* the loss weights, also grad_output */
} Check;

static double
rel_error (double a, double b)
{
  double e = fabs (a - b) / MAX (MAX (fabs (a), fabs (b)), 1e-2);
  return isnan (e) ? INFINITY : e;    /* a NaN gradient must fail, not pass */
}

static void
fill_uniform (StTensor *t, StRng *rng)
{
  gsize n = st_tensor_numel (t);
  for (gsize i = 0; i < n; i++)
    t->data[i] = (float) (2.0 * st_rng_uniform (rng) - 1.0);
}

/* Distinct values spread evenly over [-1, -2·eps] ∪ [2·eps, 1], in random
 * order.  Kinks sit where two inputs tie (maxpool) or at 0 (relu, elu's
 * curvature); this keeps them at least a step away whenever the tensor is
 * small enough for the spacing to exceed eps. */
static void
fill_spread (StTensor *t, double eps, StRng *rng)
{
  gsize n = st_tensor_numel (t);
  double gap = MIN (2.0 * eps, 0.5);
  double spacing = 2.0 * (1.0 - gap) / (double) n;
  for (gsize i = 0; i < n; i++)
    {
      double v = ((double) i + 0.5) * spacing;         /* in (0, 2 − 2·gap) */
      t->data[i] = (float) (v < 1.0 - gap ? v - 1.0 : v - 1.0 + 2.0 * gap);
    }
  for (gsize i = n; i > 1; i--)
    {
      gsize j = (gsize) (st_rng_next (rng) % i);
      float tmp = t->data[i - 1];
      t->data[i - 1] = t->data[j];
      t->data[j] = tmp;
    }
}

/* L = Σ out · R for the current inputs and parameters.  The generator is
 * reset first, so a stochastic stage (dropout) draws the same mask on every
 * call and the loss is a function of the values alone. */
static gboolean
loss (Check *c, double *value, GError **error)
{
  st_rng_set_state (c->ctx->rng, c->rng_state);
  st_tensor_zero (c->output);
  if (!c->stage->kind->forward (c->stage, c->ctx, (const StTensor *const *) c->inputs,
                                c->output, error))
    return FALSE;
  double sum = 0.0;
  gsize n = st_tensor_numel (c->output);
  for (gsize i = 0; i < n; i++)
    sum += (double) c->output->data[i] * (double) c->r->data[i];
  *value = sum;
  return TRUE;
}

/* (L(v + h) − L(v − h)) / 2h, where v is *value and h the float step that
 * eps rounds to; also the two one-sided differences around base. */
static gboolean
central_difference (Check *c, float *value, double eps, double base,
                    double *central, double *forward, double *backward,
                    GError **error)
{
  float v = *value;
  float vp = (float) (v + eps), vm = (float) (v - eps);
  double lp, lm;
  *value = vp;
  gboolean ok = loss (c, &lp, error);
  *value = vm;
  ok = ok && loss (c, &lm, error);
  *value = v;
  if (!ok)
    return FALSE;
  double hp = (double) vp - v, hm = v - (double) vm;
  *central = (lp - lm) / (hp + hm);
  *forward = (lp - base) / hp;
  *backward = (base - lm) / hm;
  return TRUE;
}

/* Up to max indices of [0, n), picked from rng without repeats. */
static gsize *
pick_indices (gsize n, gsize max, StRng *rng, gsize *n_picked)
{
  gsize *idx = g_new (gsize, n);
  for (gsize i = 0; i < n; i++)
    idx[i] = i;
  gsize k = MIN (n, max);
  if (k < n)
    for (gsize i = 0; i < k; i++)
      {
        gsize j = i + (gsize) (st_rng_next (rng) % (n - i));
        gsize t = idx[i];
        idx[i] = idx[j];
        idx[j] = t;
      }
  *n_picked = k;
  return idx;
}

/* "(1,0,2,3)" for element i of a tensor whose leading rank dims are dims. */
static void
format_coords (char *buf, gsize size, gsize i, const int *dims, int rank)
{
  gsize coord[4];
  for (int d = rank - 1; d >= 0; d--)
    {
      coord[d] = i % (gsize) dims[d];
      i /= (gsize) dims[d];
    }
  gsize len = g_strlcpy (buf, "(", size);
  for (int d = 0; d < rank && len < size; d++)
    len += snprintf (buf + len, size - len, d ? ",%" G_GSIZE_FORMAT : "%" G_GSIZE_FORMAT,
                     coord[d]);
  if (len < size)
    g_strlcat (buf, ")", size);
}

/* Compares the analytic gradient grad of tensor values with differences,
 * updating the worst error in result. */
static gboolean
check_tensor (Check *c, const char *what, float *values, const float *grad,
              const int *dims, int rank, gsize numel, double eps, double tolerance,
              double base, StRng *pick_rng, StGradcheckResult *result,
              GError **error)
{
  gsize n_picked;
  g_autofree gsize *idx = pick_indices (numel, MAX_CHECKED_PER_TENSOR, pick_rng, &n_picked);
  for (gsize k = 0; k < n_picked; k++)
    {
      gsize i = idx[k];
      double a = grad[i];
      double num, fwd, bwd;
      if (!central_difference (c, &values[i], eps, base, &num, &fwd, &bwd, error))
        return FALSE;
      double err = rel_error (a, num);
      /* Not only when it fails: the reported error should show the margin. */
      if (err > tolerance / 4)
        {
          /* Differences at steps h / 2^s, s = 0..3. */
          double cen[4] = { num }, fw[4] = { fwd }, bw[4] = { bwd };
          for (int s = 1; s < 4; s++)
            if (!central_difference (c, &values[i], eps / (1 << s), base, &cen[s], &fw[s], &bw[s],
                                     error))
              return FALSE;
          double rich = (4.0 * cen[1] - cen[0]) / 3.0;
          double fw_rich[2], bw_rich[2];
          for (int s = 0; s < 2; s++)
            {
              fw_rich[s] = 2.0 * fw[s + 1] - fw[s];
              bw_rich[s] = 2.0 * bw[s + 1] - bw[s];
            }
          const double candidates[][2] = {
            { cen[1], rel_error (a, cen[1]) },
            { rich, rel_error (a, rich) },
            { cen[2], MAX (rel_error (a, cen[2]), rel_error (a, cen[3])) },
            { fw[0], MAX (rel_error (a, fw[0]), rel_error (a, fw[1])) },
            { bw[0], MAX (rel_error (a, bw[0]), rel_error (a, bw[1])) },
            { fw_rich[0], MAX (rel_error (a, fw_rich[0]), rel_error (a, fw_rich[1])) },
            { bw_rich[0], MAX (rel_error (a, bw_rich[0]), rel_error (a, bw_rich[1])) },
          };
          for (gsize j = 0; j < G_N_ELEMENTS (candidates); j++)
            if (candidates[j][1] < err)
              {
                num = candidates[j][0];
                err = candidates[j][1];
              }
        }
      result->n_checked++;
      if (err > result->max_rel_error || result->n_checked == 1)
        {
          char coords[96];
          format_coords (coords, sizeof coords, i, dims, rank);
          result->max_rel_error = err;
          snprintf (result->worst, sizeof result->worst,
                    "%s %s: analytic %.7g, numeric %.7g", what, coords, a, num);
        }
    }
  return TRUE;
}

/* The stage's inputs, spread (see fill_spread), with room for their
 * gradients; its trainable parameters drawn uniformly; its output; and the
 * loss weights R.  Saved statistics (batchnorm's running_var) keep their
 * initial values, which are valid ones; random values could be, say,
 * negative. */
static gboolean
make_tensors (Check *c, const StShape *in_shapes, double eps, StRng *rng, GError **error)
{
  c->inputs = g_new0 (StTensor *, MAX (c->n_inputs, 1));
  c->grad_inputs = g_new0 (StTensor *, MAX (c->n_inputs, 1));
  for (int i = 0; i < c->n_inputs; i++)
    {
      if (!(c->inputs[i] = st_tensor_new (in_shapes[i], error))
          || !(c->grad_inputs[i] = st_tensor_new (in_shapes[i], error)))
        return FALSE;
      fill_spread (c->inputs[i], eps, rng);
    }
  for (int p = 0; p < st_stage_n_weights (c->stage); p++)
    if (st_stage_get_weight (c->stage, p)->trainable)
      fill_uniform (st_stage_get_weight (c->stage, p)->value, rng);
  if (!(c->output = st_tensor_new (c->stage->out_shape, error))
      || !(c->r = st_tensor_new (c->stage->out_shape, error)))
    return FALSE;
  fill_uniform (c->r, rng);
  return TRUE;
}

static void
free_tensors (Check *c)
{
  for (int i = 0; c->inputs && i < c->n_inputs; i++)
    {
      st_tensor_free (c->inputs[i]);
      st_tensor_free (c->grad_inputs[i]);
    }
  g_free (c->inputs);
  g_free (c->grad_inputs);
  st_tensor_free (c->output);
  st_tensor_free (c->r);
}

/* Adds delta to every parameter gradient. */
static void
shift_weight_grads (StStage *stage, float delta)
{
  for (int p = 0; p < st_stage_n_weights (stage); p++)
    {
      StTensor *g = st_stage_get_weight (stage, p)->grad;
      for (gsize k = 0; k < st_tensor_numel (g); k++)
        g->data[k] += delta;
    }
}

/* Analytic: one forward (*base, the loss), one backward with
 * grad_output = R.  Parameter gradients start from a known offset rather
 * than zero, so a backward that overwrites them instead of adding into
 * them is caught. */
static gboolean
analytic_gradients (Check *c, double *base, GError **error)
{
  const float offset = 0.5f;
  st_stage_zero_grads (c->stage);
  shift_weight_grads (c->stage, offset);
  if (!loss (c, base, error)
      || !c->stage->kind->backward (c->stage, c->ctx, (const StTensor *const *) c->inputs,
                                    c->output, c->r, c->grad_inputs, error))
    return FALSE;
  shift_weight_grads (c->stage, -offset);
  return TRUE;
}

/* Every input's and trainable parameter's analytic gradient against
 * differences; the worst error goes to result. */
static gboolean
check_all_tensors (Check *c, double eps, double tolerance, double base, StRng *rng,
                   StGradcheckResult *result, GError **error)
{
  for (int i = 0; i < c->n_inputs; i++)
    {
      char what[32];
      StShape s = c->inputs[i]->shape;
      int dims[4] = { s.n, s.c, s.h, s.w };
      snprintf (what, sizeof what, "input %d", i);
      if (!check_tensor (c, what, c->inputs[i]->data, c->grad_inputs[i]->data, dims, 4,
                         st_tensor_numel (c->inputs[i]), eps, tolerance, base, rng,
                         result, error))
        return FALSE;
    }
  for (int p = 0; p < st_stage_n_weights (c->stage); p++)
    {
      StWeight *param = st_stage_get_weight (c->stage, p);
      if (!param->trainable)
        continue;
      g_autofree char *what = g_strdup_printf ("parameter '%s'", param->full_name);
      if (!check_tensor (c, what, param->value->data, param->grad->data, param->dims,
                         param->rank, st_tensor_numel (param->value), eps, tolerance,
                         base, rng, result, error))
        return FALSE;
    }
  return TRUE;
}

static gboolean
check_arguments (const StKind *kind, double eps, GError **error)
{
  if (!kind->backward)
    {
      g_set_error (error, ST_ERROR, ST_ERROR_PLUGIN,
                   "kind '%s' has no backward: it is inference-only", kind->name);
      return FALSE;
    }
  if (!(eps > 0.0))
    {
      g_set_error (error, ST_ERROR, ST_ERROR_USAGE, "gradcheck step must be positive, found %g", eps);
      return FALSE;
    }
  return TRUE;
}

gboolean
st_gradcheck (const StKind *kind, const char *const *keys,
              const char *const *values, int n_keys,
              const StShape *in_shapes, int n_inputs,
              gboolean training, guint64 seed, double eps,
              double tolerance, StGradcheckResult *result,
              GError **error)
{
  StGradcheckResult local_result;
  if (!result)
    result = &local_result;
  memset (result, 0, sizeof *result);
  if (!check_arguments (kind, eps, error))
    return FALSE;
  StStage *stage = st_stage_new_inferred (kind, keys, values, n_keys, in_shapes, n_inputs, error);
  if (!stage)
    return FALSE;
  /* Several threads, so that the parallel paths are the ones checked; a
   * fixed count, so that a seed gives the same check everywhere. */
  g_autoptr (StRunContext) ctx = st_run_context_new (GRADCHECK_THREADS, seed);
  StRng *rng = st_rng_new (seed ^ G_GUINT64_CONSTANT (0x5eed6ad1c4ec4000));
  st_stage_enable_grads (stage);
  ctx->training = training;
  Check c = { .stage = stage, .ctx = ctx, .n_inputs = n_inputs };
  double base;
  gboolean ok = make_tensors (&c, in_shapes, eps, rng, error);
  if (ok)
    {
      st_rng_get_state (ctx->rng, c.rng_state);
      ok = analytic_gradients (&c, &base, error)
           && check_all_tensors (&c, eps, tolerance, base, rng, result, error);
    }
  if (ok && result->max_rel_error > tolerance)
    {
      g_set_error (error, ST_ERROR, ST_ERROR_FAILED,
                   "kind '%s': gradient off by relative error %.3g (tolerance %.3g) at %s",
                   kind->name, result->max_rel_error, tolerance, result->worst);
      ok = FALSE;
    }
  free_tensors (&c);
  st_rng_free (rng);
  st_stage_free (stage);
  return ok;
}
