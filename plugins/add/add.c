/* strata — add: a weighted sum of inputs of one shape.
 *
 *     out = offset + Σ_i w_i · in_i          (w_i = 1 unless weights= says)
 *
 * An unsharp mask is add with input=image,blur and weights=1.5,-0.5; a
 * residual connection is add with input=a,b.  The backward is one line,
 * grad_in_i = w_i · grad_out, so the kind can sit inside a trained network
 * (pipelines/resnet-mnist.ini). */
#include <strata/strata.h>

#include <stddef.h>

/* ---- Metadata ----------------------------------------------------------- */

typedef struct {
  StDoubleList weights;
  double offset;
} AddConfig;

static const StParamSpec add_params[] = {
  { .name = "weights", .type = ST_PARAM_DOUBLE_LIST,
    .help = "one weight per input, in input order (e.g. 1.5,-0.5); default all 1",
    .offset = offsetof (AddConfig, weights) },
  { .name = "offset", .type = ST_PARAM_DOUBLE, .default_value = "0",
    .help = "added to every output value",
    .offset = offsetof (AddConfig, offset) },
};

ST_DECLARE_FORWARD (add);
ST_DECLARE_BACKWARD (add);

static const StKind add_kind = {
  ST_KIND_HEADER,
  .name = "add",
  .summary = "weighted sum of inputs of one shape: offset + w1*in1 + w2*in2 + ...",
  .category = ST_CATEGORY_PLUMBING,
  .min_inputs = 1,
  .max_inputs = -1,
  .params = add_params,
  .n_params = G_N_ELEMENTS (add_params),
  .config_size = sizeof (AddConfig),
  .infer = add_infer,
  .forward = add_forward,
  .backward = add_backward,
  .flags = ST_KIND_WRITES_ALL,
};

ST_PLUGIN_DEFINE (&add_kind)

/* ---- Implementation ------------------------------------------------------- */

static double
weight (const AddConfig *cfg, int i)
{
  return cfg->weights.n > 0 ? cfg->weights.values[i] : 1.0;
}

static gboolean
add_infer (StStage *stage, GError **error)
{
  const AddConfig *cfg = stage->config;
  if (cfg->weights.n > 0 && cfg->weights.n != stage->n_inputs)
    {
      g_set_error (error, ST_ERROR, ST_ERROR_PIPELINE,
                   "key 'weights': expected %d value%s (one per input), found %d",
                   stage->n_inputs, stage->n_inputs == 1 ? "" : "s",
                   cfg->weights.n);
      return FALSE;
    }
  if (!st_stage_check_same_shapes (stage, error))
    return FALSE;
  stage->halo = 0;
  stage->macs = (double) st_shape_numel (stage->out_shape) * stage->n_inputs;
  return TRUE;
}

/* Elements per work item: large enough that scheduling costs nothing. */
#define CHUNK 16384

typedef struct {
  const StTensor *const *inputs;
  int n_inputs;
  const float *w;              /* n_inputs weights */
  float offset;
  float *out;
  gsize numel;
} Job;

static void
add_range (gsize begin, gsize end, gpointer data)
{
  const Job *j = data;
  gsize lo = begin * CHUNK, hi = MIN (end * CHUNK, j->numel);
  float *restrict o = j->out + lo;
  gsize n = hi - lo;
  const float *restrict a = j->inputs[0]->data + lo;
  float w0 = j->w[0], offset = j->offset;
  for (gsize x = 0; x < n; x++)
    o[x] = offset + w0 * a[x];
  for (int i = 1; i < j->n_inputs; i++)
    {
      const float *restrict b = j->inputs[i]->data + lo;
      float wi = j->w[i];
      for (gsize x = 0; x < n; x++)
        o[x] += wi * b[x];
    }
}

static float *
float_weights (const AddConfig *cfg, int n)
{
  float *w = g_new (float, n);
  for (int i = 0; i < n; i++)
    w[i] = (float) weight (cfg, i);
  return w;
}

static gboolean
add_forward (StStage *stage, const StRunContext *ctx,
             const StTensor *const *inputs, StTensor *output, GError **error)
{
  const AddConfig *cfg = stage->config;
  g_autofree float *w = float_weights (cfg, stage->n_inputs);
  Job j = { inputs, stage->n_inputs, w, (float) cfg->offset, output->data,
            st_tensor_numel (output) };
  st_parallel_for (ctx, (j.numel + CHUNK - 1) / CHUNK, add_range, &j);
  return TRUE;
}

typedef struct {
  const float *grad_output;
  float *grad_input;
  float w;
  gsize numel;
} BackJob;

static void
scale_range (gsize begin, gsize end, gpointer data)
{
  const BackJob *j = data;
  gsize lo = begin * CHUNK, hi = MIN (end * CHUNK, j->numel);
  const float *restrict g = j->grad_output;
  float *restrict d = j->grad_input;
  for (gsize x = lo; x < hi; x++)
    d[x] = j->w * g[x];
}

/* No broadcasting: every input has the output's shape, so each gradient
 * is the output's scaled by its weight.  An input named twice (input=a,a)
 * gets one gradient per mention, which the core sums. */
static gboolean
add_backward (StStage *stage, const StRunContext *ctx,
              const StTensor *const *inputs, const StTensor *output,
              const StTensor *grad_output, StTensor *const *grad_inputs,
              GError **error)
{
  const AddConfig *cfg = stage->config;
  gsize n = st_tensor_numel (grad_output);
  for (int i = 0; i < stage->n_inputs; i++)
    {
      if (!grad_inputs[i])
        continue;
      BackJob j = { grad_output->data, grad_inputs[i]->data, (float) weight (cfg, i), n };
      st_parallel_for (ctx, (n + CHUNK - 1) / CHUNK, scale_range, &j);
    }
  return TRUE;
}
