/* scale — an example trainable strata plugin built outside the strata tree.
 *
 *     out[n, c, y, x] = weight[c] · in[n, c, y, x] (+ bias[c])
 *
 * weight [C] starts at ones and bias [C] (with bias=true) at zeros, so an
 * untrained stage passes its input through unchanged.  The parameters are
 * the core's, named "<stage>.weight" and "<stage>.bias" like a PyTorch
 * state_dict: training, weight files and `strata inspect` handle them with
 * no code here.  test-scale.c checks backward against finite differences. */
#include <strata/strata.h>

#include <stddef.h>

/* ---- Metadata ----------------------------------------------------------- */

typedef struct {
  gboolean bias;
} ScaleConfig;

static const StParamSpec scale_params[] = {
  { .name = "bias", .type = ST_PARAM_BOOL, .default_value = "false",
    .help = "also learn a per-channel offset",
    .offset = offsetof (ScaleConfig, bias) },
};

static gboolean scale_infer (StStage *stage, GError **error);
static gboolean scale_forward (StStage *stage, const StRunContext *ctx,
                               const StTensor *const *inputs, StTensor *output,
                               GError **error);
static gboolean scale_backward (StStage *stage, const StRunContext *ctx,
                                const StTensor *const *inputs,
                                const StTensor *output,
                                const StTensor *grad_output,
                                StTensor *const *grad_inputs,
                                GError **error);

static const StKind scale_kind = {
  ST_KIND_HEADER,
  .name = "scale",
  .summary = "learnable per-channel multiplier (and optional offset)",
  .category = ST_CATEGORY_LAYER,
  .rank = 0,
  .min_inputs = 1,
  .max_inputs = 1,
  .params = scale_params,
  .n_params = G_N_ELEMENTS (scale_params),
  .config_size = sizeof (ScaleConfig),
  .infer = scale_infer,
  .forward = scale_forward,
  .backward = scale_backward,    /* having one makes the kind trainable */
};

ST_PLUGIN_DEFINE (&scale_kind)

/* ---- Implementation ------------------------------------------------------- */

/* Parameter indices: st_stage_declare_param numbers them in declaration
 * order, and infer always declares weight first. */
enum { P_WEIGHT, P_BIAS };

static gboolean
scale_infer (StStage *stage, GError **error)
{
  const ScaleConfig *cfg = stage->config;
  StShape in = stage->in_shapes[0];
  int dims[1] = { in.c };
  /* Idempotent: infer runs again whenever the input shape changes, and a
   * changed channel count is refused here with a message naming it. */
  if (st_stage_declare_param (stage, "weight", dims, 1, ST_INIT_ONES, 0.0, TRUE, error) < 0)
    return FALSE;
  if (cfg->bias
      && st_stage_declare_param (stage, "bias", dims, 1, ST_INIT_ZEROS, 0.0, TRUE, error) < 0)
    return FALSE;
  stage->out_shape = in;
  stage->halo = 0;
  stage->macs = (double) st_shape_numel (in);
  return TRUE;
}

typedef struct {
  StShape s;
  const float *x, *dy;
  float *y, *dx;               /* dx NULL: no input gradient wanted */
  const float *w, *b;          /* b NULL without bias */
  float *dw, *db;              /* NULL when the gradient is not wanted */
} Job;

/* One work item is one [H, W] plane of one image. */
static void
forward_range (gsize begin, gsize end, gpointer data)
{
  const Job *j = data;
  gsize plane = (gsize) j->s.h * j->s.w;
  for (gsize p = begin; p < end; p++)
    {
      int c = (int) (p % (gsize) j->s.c);
      const float w = j->w[c], b = j->b ? j->b[c] : 0.0f;
      const float *x = j->x + p * plane;
      float *y = j->y + p * plane;
      for (gsize i = 0; i < plane; i++)
        y[i] = w * x[i] + b;
    }
}

static gboolean
scale_forward (StStage *stage, const StRunContext *ctx,
               const StTensor *const *inputs, StTensor *output,
               G_GNUC_UNUSED GError **error)
{
  const ScaleConfig *cfg = stage->config;
  Job j = {
    .s = inputs[0]->shape,
    .x = inputs[0]->data,
    .y = output->data,
    .w = st_stage_param (stage, P_WEIGHT)->data,
    .b = cfg->bias ? st_stage_param (stage, P_BIAS)->data : NULL,
  };
  st_parallel_for (ctx, (gsize) j.s.n * j.s.c, forward_range, &j);
  return TRUE;
}

/* One work item is one channel, over every image of the batch: the
 * parameter gradients of channel c are then written by one thread only. */
static void
backward_range (gsize begin, gsize end, gpointer data)
{
  const Job *j = data;
  gsize plane = (gsize) j->s.h * j->s.w;
  for (gsize c = begin; c < end; c++)
    {
      const float w = j->w[c];
      double sum_dw = 0.0, sum_db = 0.0;   /* double: a batch sums many terms */
      for (int n = 0; n < j->s.n; n++)
        {
          gsize off = ((gsize) n * j->s.c + c) * plane;
          const float *x = j->x + off, *dy = j->dy + off;
          for (gsize i = 0; i < plane; i++)
            {
              sum_dw += (double) dy[i] * x[i];
              sum_db += dy[i];
            }
          if (j->dx)
            for (gsize i = 0; i < plane; i++)
              j->dx[off + i] = w * dy[i];
        }
      /* Add, never overwrite: the core zeroes parameter gradients before
       * a batch, and whatever else adds into them must be kept. */
      if (j->dw)
        j->dw[c] += (float) sum_dw;
      if (j->db)
        j->db[c] += (float) sum_db;
    }
}

static gboolean
scale_backward (StStage *stage, const StRunContext *ctx,
                const StTensor *const *inputs, G_GNUC_UNUSED const StTensor *output,
                const StTensor *grad_output, StTensor *const *grad_inputs,
                G_GNUC_UNUSED GError **error)
{
  const ScaleConfig *cfg = stage->config;
  StTensor *dw = st_stage_param_grad (stage, P_WEIGHT);
  StTensor *db = cfg->bias ? st_stage_param_grad (stage, P_BIAS) : NULL;
  Job j = {
    .s = inputs[0]->shape,
    .x = inputs[0]->data,
    .dy = grad_output->data,
    .dx = grad_inputs[0] ? grad_inputs[0]->data : NULL,
    .w = st_stage_param (stage, P_WEIGHT)->data,
    .dw = dw ? dw->data : NULL,
    .db = db ? db->data : NULL,
  };
  st_parallel_for (ctx, (gsize) j.s.c, backward_range, &j);
  return TRUE;
}
