/* strata — batchnorm: per-channel normalisation, as PyTorch's BatchNorm2d
 * (and BatchNorm1d on [N, features, 1, 1], which is the same computation).
 *
 *     out = (in − mean) / sqrt(var + eps) · weight + bias
 *
 * In training mean and var are the batch's, over N, H and W (var biased),
 * and the running statistics move towards them by momentum, with the
 * unbiased var, as PyTorch does:
 *
 *     running = (1 − momentum) · running + momentum · batch
 *
 * At inference the running statistics are used.  The parameters are the
 * state_dict's weight, bias, running_mean and running_var (PyTorch's
 * num_batches_tracked only serves momentum=None, which is not offered). */
#include <strata/strata.h>

#include <math.h>
#include <stddef.h>

/* ---- Metadata ----------------------------------------------------------- */

typedef struct {
  double momentum;
  double eps;
} BatchnormConfig;

static const StParamSpec batchnorm_params[] = {
  { .name = "momentum", .type = ST_PARAM_DOUBLE, .default_value = "0.1",
    .flags = ST_PARAM_HAS_MIN | ST_PARAM_HAS_MAX, .min = 0, .max = 1,
    .help = "weight of each training batch in the running statistics",
    .offset = offsetof (BatchnormConfig, momentum) },
  { .name = "eps", .type = ST_PARAM_DOUBLE, .default_value = "1e-5",
    .flags = ST_PARAM_HAS_MIN | ST_PARAM_HAS_MAX, .min = 1e-12, .max = 1,
    .help = "added to the variance before the square root",
    .offset = offsetof (BatchnormConfig, eps) },
};

ST_DECLARE_FORWARD (batchnorm);
ST_DECLARE_BACKWARD (batchnorm);
static void batchnorm_finalize (StStage *stage);

static const StKind batchnorm_kind = {
  ST_KIND_HEADER,
  .name = "batchnorm",
  .summary = "per-channel normalisation with batch (training) or running statistics",
  .category = ST_CATEGORY_LAYER,
  .min_inputs = 1,
  .max_inputs = 1,
  .params = batchnorm_params,
  .n_params = G_N_ELEMENTS (batchnorm_params),
  .config_size = sizeof (BatchnormConfig),
  .infer = batchnorm_infer,
  .forward = batchnorm_forward,
  .backward = batchnorm_backward,
  .finalize = batchnorm_finalize,
};

ST_PLUGIN_DEFINE (&batchnorm_kind)

/* ---- Implementation ------------------------------------------------------- */

/* Parameter indices, in declaration order. */
enum { P_WEIGHT, P_BIAS, P_RUNNING_MEAN, P_RUNNING_VAR };

/* The statistics the last forward normalised with, for backward. */
typedef struct {
  int C;
  gboolean training;           /* batch statistics (TRUE) or running ones */
  double *mean;                /* [C] */
  double *rstd;                /* [C]: 1 / sqrt(var + eps) */
} BatchnormState;

static void
state_free (BatchnormState *st)
{
  if (!st)
    return;
  g_free (st->mean);
  g_free (st->rstd);
  g_free (st);
}

static gboolean
batchnorm_infer (StStage *stage, GError **error)
{
  StShape in = stage->in_shapes[0];
  int dims[1] = { in.c };
  static const struct {
    const char *name;
    StInit init;
    gboolean trainable;
  } params[] = {
    [P_WEIGHT] = { "weight", ST_INIT_ONES, TRUE },
    [P_BIAS] = { "bias", ST_INIT_ZEROS, TRUE },
    [P_RUNNING_MEAN] = { "running_mean", ST_INIT_ZEROS, FALSE },
    [P_RUNNING_VAR] = { "running_var", ST_INIT_ONES, FALSE },
  };
  for (int i = 0; i < (int) G_N_ELEMENTS (params); i++)
    {
      int index = st_stage_declare_param (stage, params[i].name, dims, 1, params[i].init,
                                          0.0, params[i].trainable, error);
      if (index < 0)
        return FALSE;
      g_assert (index == i);   /* the P_* indices */
    }

  stage->out_shape = in;
  /* Running a trained network is per pixel; training needs the whole batch,
   * and is never cut into strips. */
  stage->halo = 0;
  stage->macs = 2.0 * (double) st_shape_numel (in);

  BatchnormState *st = stage->priv;
  if (!st || st->C != in.c)
    {
      state_free (st);
      st = g_new0 (BatchnormState, 1);
      st->C = in.c;
      st->mean = g_new0 (double, in.c);
      st->rstd = g_new0 (double, in.c);
      stage->priv = st;
    }
  return TRUE;
}

typedef struct {
  StShape s;
  gboolean training;
  double momentum, eps;
  BatchnormState *st;
  const float *inp, *dout;
  float *dst;                  /* out, or dinp (NULL: no input gradient wanted) */
  float *weight, *bias, *running_mean, *running_var;
  float *dweight, *dbias;      /* NULL when not training the parameters */
} Job;

/* For channels [begin, end): out = (inp − mean) · rstd · weight + bias, with
 * the batch's statistics (which also update the running ones) or the
 * running ones.  out, inp: [N, C, HW]. */
static void
batchnorm_forward_channels (gsize begin, gsize end, gpointer data)
{
  const Job *j = data;
  gsize hw = (gsize) j->s.h * j->s.w, m = (gsize) j->s.n * hw;
  for (gsize c = begin; c < end; c++)
    {
      double mean, rstd;
      if (j->training)
        {
          /* Two passes in double: one-pass E[x²] − E[x]² cancels badly. */
          double sum = 0.0, sq = 0.0;
          for (int n = 0; n < j->s.n; n++)
            {
              const float *x = j->inp + ((gsize) n * j->s.c + c) * hw;
              for (gsize i = 0; i < hw; i++)
                sum += x[i];
            }
          mean = sum / (double) m;
          for (int n = 0; n < j->s.n; n++)
            {
              const float *x = j->inp + ((gsize) n * j->s.c + c) * hw;
              for (gsize i = 0; i < hw; i++)
                sq += (x[i] - mean) * (x[i] - mean);
            }
          double var = sq / (double) m;
          rstd = 1.0 / sqrt (var + j->eps);
          j->running_mean[c] = (float) ((1.0 - j->momentum) * j->running_mean[c]
                                        + j->momentum * mean);
          j->running_var[c] = (float) ((1.0 - j->momentum) * j->running_var[c]
                                       + j->momentum * sq / (double) (m - 1));
        }
      else
        {
          mean = j->running_mean[c];
          rstd = 1.0 / sqrt ((double) j->running_var[c] + j->eps);
        }
      j->st->mean[c] = mean;
      j->st->rstd[c] = rstd;

      /* In double, so that each output is rounded once: float scale and
       * shift would put the same error into a whole channel. */
      double scale = rstd * j->weight[c], shift = j->bias[c];
      for (int n = 0; n < j->s.n; n++)
        {
          gsize off = ((gsize) n * j->s.c + c) * hw;
          const float *x = j->inp + off;
          float *y = j->dst + off;
          for (gsize i = 0; i < hw; i++)
            y[i] = (float) ((x[i] - mean) * scale + shift);
        }
    }
}

/* For channels [begin, end), with xhat = (inp − mean) · rstd:
 *   dweight += Σ dout · xhat,  dbias += Σ dout,
 *   dinp += rstd · w · (dout − mean(dout) − xhat · mean(dout · xhat))  (batch statistics)
 *   dinp += rstd · w · dout                                           (running statistics)
 * inp, dout, dinp: [N, C, HW]. */
static void
batchnorm_backward_channels (gsize begin, gsize end, gpointer data)
{
  const Job *j = data;
  gsize hw = (gsize) j->s.h * j->s.w, m = (gsize) j->s.n * hw;
  for (gsize c = begin; c < end; c++)
    {
      double mean = j->st->mean[c], rstd = j->st->rstd[c];
      double sum_g = 0.0, sum_gx = 0.0;
      for (int n = 0; n < j->s.n; n++)
        {
          gsize off = ((gsize) n * j->s.c + c) * hw;
          const float *x = j->inp + off, *g = j->dout + off;
          for (gsize i = 0; i < hw; i++)
            {
              sum_g += g[i];
              sum_gx += g[i] * ((x[i] - mean) * rstd);
            }
        }
      if (j->dweight)
        j->dweight[c] += (float) sum_gx;
      if (j->dbias)
        j->dbias[c] += (float) sum_g;
      if (!j->dst)
        continue;

      double k = rstd * j->weight[c];
      double mean_g = j->training ? sum_g / (double) m : 0.0;
      double mean_gx = j->training ? sum_gx / (double) m : 0.0;
      for (int n = 0; n < j->s.n; n++)
        {
          gsize off = ((gsize) n * j->s.c + c) * hw;
          const float *x = j->inp + off, *g = j->dout + off;
          float *d = j->dst + off;
          for (gsize i = 0; i < hw; i++)
            {
              double xhat = (x[i] - mean) * rstd;
              d[i] += (float) (k * (g[i] - mean_g - xhat * mean_gx));
            }
        }
    }
}

static Job
job_new (StStage *stage, gboolean training)
{
  const BatchnormConfig *cfg = stage->config;
  return (Job) {
    .s = stage->in_shapes[0],
    .training = training,
    .momentum = cfg->momentum,
    .eps = cfg->eps,
    .st = stage->priv,
    .weight = st_stage_param (stage, P_WEIGHT)->data,
    .bias = st_stage_param (stage, P_BIAS)->data,
    .running_mean = st_stage_param (stage, P_RUNNING_MEAN)->data,
    .running_var = st_stage_param (stage, P_RUNNING_VAR)->data,
  };
}

static gboolean
batchnorm_forward (StStage *stage, const StRunContext *ctx,
                   const StTensor *const *inputs, StTensor *output, GError **error)
{
  StShape s = inputs[0]->shape;
  if (ctx->training && (gsize) s.n * s.h * s.w < 2)
    {
      char buf[64];
      g_set_error (error, ST_ERROR, ST_ERROR_SHAPE,
                   "training needs more than one value per channel for batch statistics, "
                   "found input %s", st_shape_format (s, buf, sizeof buf));
      return FALSE;
    }
  Job j = job_new (stage, ctx->training);
  j.inp = inputs[0]->data;
  j.dst = output->data;
  j.st->training = ctx->training;
  st_parallel_for (ctx, (gsize) s.c, batchnorm_forward_channels, &j);
  return TRUE;
}

static gboolean
batchnorm_backward (StStage *stage, const StRunContext *ctx,
                    const StTensor *const *inputs, const StTensor *output,
                    const StTensor *grad_output, StTensor *const *grad_inputs,
                    GError **error)
{
  BatchnormState *st = stage->priv;
  /* Differentiate what forward computed, whatever the flag says now. */
  Job j = job_new (stage, st->training);
  j.inp = inputs[0]->data;
  j.dout = grad_output->data;
  j.dst = grad_inputs[0] ? grad_inputs[0]->data : NULL;
  StTensor *dw = st_stage_param_grad (stage, P_WEIGHT);
  StTensor *db = st_stage_param_grad (stage, P_BIAS);
  j.dweight = dw ? dw->data : NULL;
  j.dbias = db ? db->data : NULL;
  st_parallel_for (ctx, (gsize) inputs[0]->shape.c, batchnorm_backward_channels, &j);
  return TRUE;
}

static void
batchnorm_finalize (StStage *stage)
{
  g_clear_pointer ((BatchnormState **) &stage->priv, state_free);
}
