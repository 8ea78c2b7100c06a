/* strata — activation: an elementwise nonlinearity, as PyTorch's ReLU,
 * LeakyReLU, Sigmoid, Tanh, ELU and GELU.
 *
 * The math is <strata/activation.h>, the same code conv2d and dense run
 * for their fused activation=, so a separate stage and a fused one agree
 * bit for bit. */
#include <strata/strata.h>

#include <stddef.h>

/* ---- Metadata ----------------------------------------------------------- */

typedef struct {
  int function;                /* StActivation */
  double slope;
  double alpha;
} ActivationConfig;

static const StParamSpec activation_params[] = {
  { .name = "function", .type = ST_PARAM_ENUM, .default_value = "relu",
    .choices = ST_ACTIVATION_CHOICES,
    .help = "the nonlinearity (gelu is the exact erf form, PyTorch's default)",
    .offset = offsetof (ActivationConfig, function) },
  ST_ACTIVATION_SHAPE_PARAM_SPECS (ActivationConfig),
};

ST_DECLARE_FORWARD (activation);
ST_DECLARE_BACKWARD (activation);

static const StKind activation_kind = {
  ST_KIND_HEADER,
  .name = "activation",
  .summary = "elementwise relu, leaky_relu, sigmoid, tanh, elu or gelu",
  .category = ST_CATEGORY_LAYER,
  .min_inputs = 1,
  .max_inputs = 1,
  .params = activation_params,
  .n_params = G_N_ELEMENTS (activation_params),
  .config_size = sizeof (ActivationConfig),
  .infer = activation_infer,
  .forward = activation_forward,
  .backward = activation_backward,
  .flags = ST_KIND_WRITES_ALL,
};

ST_PLUGIN_DEFINE (&activation_kind)

/* ---- Implementation ------------------------------------------------------- */

static gboolean
activation_infer (StStage *stage, GError **error)
{
  stage->out_shape = stage->in_shapes[0];
  stage->halo = 0;
  stage->macs = (double) st_shape_numel (stage->out_shape);
  return TRUE;
}

/* Elements per work item: large enough that scheduling costs nothing. */
#define CHUNK 16384

typedef struct {
  StActivation act;
  float arg;
  const float *inp;
  const float *out;            /* backward only */
  float *dst;                  /* out, or dinp */
  const float *dout;           /* backward only */
  gsize numel;
} Job;

/* out = act(inp); [numel]. */
static void
forward_range (gsize begin, gsize end, gpointer data)
{
  const Job *j = data;
  gsize lo = begin * CHUNK, hi = MIN (end * CHUNK, j->numel);
  st_activation_forward (j->act, j->arg, j->inp + lo, j->dst + lo, hi - lo);
}

/* dinp = dout ⊙ act'(inp); [numel], every element written. */
static void
backward_range (gsize begin, gsize end, gpointer data)
{
  const Job *j = data;
  gsize lo = begin * CHUNK, hi = MIN (end * CHUNK, j->numel);
  st_activation_backward_into (j->act, j->arg, j->inp + lo, j->out + lo, j->dout + lo,
                               j->dst + lo, hi - lo);
}

static gboolean
activation_forward (StStage *stage, const StRunContext *ctx,
                    const StTensor *const *inputs, StTensor *output, GError **error)
{
  const ActivationConfig *cfg = stage->config;
  Job j = { cfg->function, st_activation_arg (cfg->function, cfg->slope, cfg->alpha),
            inputs[0]->data, NULL, output->data,
            NULL, st_tensor_numel (output) };
  st_parallel_for (ctx, (j.numel + CHUNK - 1) / CHUNK, forward_range, &j);
  return TRUE;
}

/* The input the backward of gelu needs is the one forward saw, which the
 * core hands back: no copy kept here. */
static gboolean
activation_backward (StStage *stage, const StRunContext *ctx,
                     const StTensor *const *inputs, const StTensor *output,
                     const StTensor *grad_output, StTensor *const *grad_inputs,
                     GError **error)
{
  const ActivationConfig *cfg = stage->config;
  if (!grad_inputs[0])
    return TRUE;
  Job j = { cfg->function, st_activation_arg (cfg->function, cfg->slope, cfg->alpha),
            inputs[0]->data, output->data,
            grad_inputs[0]->data, grad_output->data, st_tensor_numel (output) };
  st_parallel_for (ctx, (j.numel + CHUNK - 1) / CHUNK, backward_range, &j);
  return TRUE;
}
