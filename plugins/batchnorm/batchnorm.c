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
  .flags = ST_KIND_WRITES_ALL,
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

/* Sums in eight double partial sums, element i into sum i % 8: eight
 * independent chains, which the vectoriser packs into vector registers,
 * where one running sum would wait for each addition in turn.  Double, as
 * one sum would be: a channel can hold millions of values.  Named locals,
 * not an array, which GCC would keep in memory.  The order depends on the
 * data only, so results are the same whatever the thread count. */
#define LANES 8

#define LANES_DECLARE(a, acc)                                                  \
  double a##0 = acc[0], a##1 = acc[1], a##2 = acc[2], a##3 = acc[3],           \
         a##4 = acc[4], a##5 = acc[5], a##6 = acc[6], a##7 = acc[7]
#define LANES_STORE(a, acc)                                                    \
  (acc[0] = a##0, acc[1] = a##1, acc[2] = a##2, acc[3] = a##3,                 \
   acc[4] = a##4, acc[5] = a##5, acc[6] = a##6, acc[7] = a##7)

static inline double
lanes_total (const double *acc)
{
  double t = 0.0;
  for (int l = 0; l < LANES; l++)
    t += acc[l];
  return t;
}

/* acc[l] += Σ x[i] over the i of lane l. */
static inline void
add_sum (double *acc, const float *x, gsize n)
{
  LANES_DECLARE (a, acc);
  gsize i = 0;
  for (; i + LANES <= n; i += LANES)
    {
      a0 += x[i]; a1 += x[i + 1]; a2 += x[i + 2]; a3 += x[i + 3];
      a4 += x[i + 4]; a5 += x[i + 5]; a6 += x[i + 6]; a7 += x[i + 7];
    }
  LANES_STORE (a, acc);
  for (int l = 0; i < n; i++, l++)
    acc[l] += x[i];
}

/* acc[l] += Σ (x[i] − mean)². */
static inline void
add_squares (double *acc, const float *x, gsize n, double mean)
{
#define SQ(k) ((x[i + k] - mean) * (x[i + k] - mean))
  LANES_DECLARE (a, acc);
  gsize i = 0;
  for (; i + LANES <= n; i += LANES)
    {
      a0 += SQ (0); a1 += SQ (1); a2 += SQ (2); a3 += SQ (3);
      a4 += SQ (4); a5 += SQ (5); a6 += SQ (6); a7 += SQ (7);
    }
  LANES_STORE (a, acc);
  for (int l = 0; i < n; i++, l++)
    acc[l] += SQ (0);
#undef SQ
}

/* sg[l] += Σ g[i],  sgx[l] += Σ g[i] · (x[i] − mean). */
static inline void
add_grad_sums (double *sg, double *sgx, const float *x, const float *g, gsize n, double mean)
{
#define GX(k) (g[i + k] * (x[i + k] - mean))
  LANES_DECLARE (a, sg);
  LANES_DECLARE (b, sgx);
  gsize i = 0;
  for (; i + LANES <= n; i += LANES)
    {
      a0 += g[i]; a1 += g[i + 1]; a2 += g[i + 2]; a3 += g[i + 3];
      a4 += g[i + 4]; a5 += g[i + 5]; a6 += g[i + 6]; a7 += g[i + 7];
      b0 += GX (0); b1 += GX (1); b2 += GX (2); b3 += GX (3);
      b4 += GX (4); b5 += GX (5); b6 += GX (6); b7 += GX (7);
    }
  LANES_STORE (a, sg);
  LANES_STORE (b, sgx);
  for (int l = 0; i < n; i++, l++)
    {
      sg[l] += g[i];
      sgx[l] += GX (0);
    }
#undef GX
}

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
          /* Two passes: one-pass E[x²] − E[x]² cancels badly. */
          double acc[LANES] = { 0 };
          for (int n = 0; n < j->s.n; n++)
            add_sum (acc, j->inp + ((gsize) n * j->s.c + c) * hw, hw);
          mean = lanes_total (acc) / (double) m;
          for (int l = 0; l < LANES; l++)
            acc[l] = 0.0;
          for (int n = 0; n < j->s.n; n++)
            add_squares (acc, j->inp + ((gsize) n * j->s.c + c) * hw, hw, mean);
          double sq = lanes_total (acc);
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
       * shift would put the same error into a whole channel, and x·a + b
       * cancels badly where the mean is large and the spread small.  The
       * loop vectorises all the same. */
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
 *   dinp = rstd · w · (dout − mean(dout) − xhat · mean(dout · xhat))  (batch statistics)
 *   dinp = rstd · w · dout                                            (running statistics)
 * inp, dout, dinp: [N, C, HW]. */
static void
batchnorm_backward_channels (gsize begin, gsize end, gpointer data)
{
  const Job *j = data;
  gsize hw = (gsize) j->s.h * j->s.w, m = (gsize) j->s.n * hw;
  for (gsize c = begin; c < end; c++)
    {
      double mean = j->st->mean[c], rstd = j->st->rstd[c];
      double sg[LANES] = { 0 }, sgx[LANES] = { 0 };
      for (int n = 0; n < j->s.n; n++)
        {
          gsize off = ((gsize) n * j->s.c + c) * hw;
          add_grad_sums (sg, sgx, j->inp + off, j->dout + off, hw, mean);
        }
      /* rstd taken out of the sum: one multiplication instead of m. */
      double sum_g = lanes_total (sg), sum_gx = lanes_total (sgx) * rstd;
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
              d[i] = (float) (k * (g[i] - mean_g - xhat * mean_gx));
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
