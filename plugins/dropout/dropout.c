/* strata — dropout: inverted dropout, as PyTorch's Dropout.
 *
 * In training each value is kept with probability 1 − rate and the kept
 * ones are scaled by 1 / (1 − rate), so the expected output is the input
 * and inference is the identity, with nothing to rescale.  The mask comes
 * from the run context's seeded generator, drawn in element order on the
 * calling thread, so a seed gives the same mask whatever the thread count. */
#include <strata/strata.h>

#include <stddef.h>
#include <string.h>

/* ---- Metadata ----------------------------------------------------------- */

typedef struct {
  double rate;
} DropoutConfig;

static const StParamSpec dropout_params[] = {
  { .name = "rate", .type = ST_PARAM_DOUBLE, .default_value = "0.5",
    .flags = ST_PARAM_HAS_MIN | ST_PARAM_HAS_MAX, .min = 0, .max = 1,
    .help = "probability of zeroing a value in training, 0 <= rate < 1",
    .offset = offsetof (DropoutConfig, rate) },
};

ST_DECLARE_FORWARD (dropout);
ST_DECLARE_BACKWARD (dropout);
static void dropout_finalize (StStage *stage);

static const StKind dropout_kind = {
  ST_KIND_HEADER,
  .name = "dropout",
  .summary = "zeroes values at random in training and rescales the rest; identity otherwise",
  .category = ST_CATEGORY_LAYER,
  .min_inputs = 1,
  .max_inputs = 1,
  .params = dropout_params,
  .n_params = G_N_ELEMENTS (dropout_params),
  .config_size = sizeof (DropoutConfig),
  .infer = dropout_infer,
  .forward = dropout_forward,
  .backward = dropout_backward,
  .flags = ST_KIND_WRITES_ALL,
  .finalize = dropout_finalize,
};

ST_PLUGIN_DEFINE (&dropout_kind)

/* ---- Implementation ------------------------------------------------------- */

/* What the last forward did, for backward. */
typedef struct {
  float *mask;                 /* 0 or 1 / (1 − rate) per value; NULL: identity */
  gsize n;
} DropoutState;

static gboolean
dropout_infer (StStage *stage, GError **error)
{
  const DropoutConfig *cfg = stage->config;
  /* The spec's bounds are inclusive; rate = 1 would divide by zero. */
  if (cfg->rate >= 1.0)
    {
      g_set_error (error, ST_ERROR, ST_ERROR_PIPELINE,
                   "key 'rate': expected a value below 1, found %g", cfg->rate);
      return FALSE;
    }
  stage->out_shape = stage->in_shapes[0];
  stage->macs = (double) st_shape_numel (stage->out_shape);
  stage->halo = 0;
  return TRUE;
}

/* mask: [n] drawn from rng, each 1 / (1 − rate) with probability 1 − rate, else 0. */
static void
dropout_draw_mask (float *mask, struct _StRng *rng, double rate, gsize n)
{
  float scale = (float) (1.0 / (1.0 - rate));
  for (gsize i = 0; i < n; i++)
    mask[i] = st_rng_uniform (rng) >= rate ? scale : 0.0f;
}

/* out = inp ⊙ mask; [n]. */
static void
dropout_forward_values (float *out, const float *inp, const float *mask, gsize n)
{
  for (gsize i = 0; i < n; i++)
    out[i] = inp[i] * mask[i];
}

/* dinp = dout ⊙ mask; [n]. */
static void
dropout_backward_values (float *dinp, const float *dout, const float *mask, gsize n)
{
  for (gsize i = 0; i < n; i++)
    dinp[i] = dout[i] * mask[i];
}

static gboolean
dropout_forward (StStage *stage, const StRunContext *ctx,
                 const StTensor *const *inputs, StTensor *output, GError **error)
{
  const DropoutConfig *cfg = stage->config;
  DropoutState *st = stage->priv;
  gsize n = st_tensor_numel (output);
  if (!st)
    stage->priv = st = g_new0 (DropoutState, 1);

  if (!ctx->training || cfg->rate == 0.0)
    {
      g_clear_pointer (&st->mask, g_free);
      st->n = n;
      memcpy (output->data, inputs[0]->data, n * sizeof (float));
      return TRUE;
    }
  if (!st->mask || st->n != n)
    {
      g_free (st->mask);
      st->mask = g_new (float, n);
    }
  st->n = n;
  dropout_draw_mask (st->mask, ctx->rng, cfg->rate, n);
  dropout_forward_values (output->data, inputs[0]->data, st->mask, n);
  return TRUE;
}

static gboolean
dropout_backward (StStage *stage, const StRunContext *ctx,
                  const StTensor *const *inputs, const StTensor *output,
                  const StTensor *grad_output, StTensor *const *grad_inputs,
                  GError **error)
{
  DropoutState *st = stage->priv;
  gsize n = st_tensor_numel (grad_output);
  if (!grad_inputs[0])
    return TRUE;
  if (!st || st->n != n)
    {
      g_set_error (error, ST_ERROR, ST_ERROR_FAILED, "backward without a matching forward");
      return FALSE;
    }
  if (st->mask)
    dropout_backward_values (grad_inputs[0]->data, grad_output->data, st->mask, n);
  else
    memcpy (grad_inputs[0]->data, grad_output->data, n * sizeof (float));
  return TRUE;
}

static void
dropout_finalize (StStage *stage)
{
  DropoutState *st = stage->priv;
  if (!st)
    return;
  g_free (st->mask);
  g_free (st);
  stage->priv = NULL;
}
