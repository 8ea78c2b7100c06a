/* strata — dense: the fully connected layer.
 *
 *     out(n, u) = act(b(u) + Σ_f w(u, f) · in(n, f))
 *
 * An image-shaped input [N, C, H, W] is read as [N, C·H·W], flattened in
 * C, H, W order as PyTorch's Flatten does; NCHW is already that order, so
 * nothing moves.  Weights are [units, in] like PyTorch's Linear.  Forward
 * and backward are single SGEMMs split among the core's threads (OpenBLAS
 * single-threaded inside, as in conv2d). */
#include <strata/strata.h>

#include <cblas.h>
#include <math.h>
#include <stddef.h>
#include <string.h>

#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC optimize ("O3")
#endif

void openblas_set_num_threads (int num_threads);

/* ---- Metadata ----------------------------------------------------------- */

typedef struct {
  int units;
  gboolean bias;
  int activation;
  double slope;
  double alpha;
} DenseConfig;

static const StParamSpec dense_params[] = {
  { .name = "units", .type = ST_PARAM_INT, .flags = ST_PARAM_REQUIRED
    | ST_PARAM_HAS_MIN | ST_PARAM_HAS_MAX, .min = 1, .max = 1 << 24,
    .help = "outputs per sample",
    .offset = offsetof (DenseConfig, units) },
  { .name = "bias", .type = ST_PARAM_BOOL, .default_value = "true",
    .help = "add a learned bias per unit",
    .offset = offsetof (DenseConfig, bias) },
  ST_ACTIVATION_PARAM_SPECS (DenseConfig),
};

ST_DECLARE_FORWARD (dense);
ST_DECLARE_BACKWARD (dense);
static void dense_finalize (StStage *stage);

static const StKind dense_kind = {
  ST_KIND_HEADER,
  .name = "dense",
  .summary = "fully connected layer (OpenBLAS SGEMM); flattens an image-shaped input in C,H,W order",
  .category = ST_CATEGORY_LAYER,
  .rank = 10,
  .min_inputs = 1,
  .max_inputs = 1,
  .params = dense_params,
  .n_params = G_N_ELEMENTS (dense_params),
  .config_size = sizeof (DenseConfig),
  .infer = dense_infer,
  .forward = dense_forward,
  .backward = dense_backward,
  /* The GEMMs overwrite (beta 0) every output and every din column. */
  .flags = ST_KIND_WRITES_ALL,
  .finalize = dense_finalize,
};

ST_PLUGIN_DEFINE (&dense_kind)

/* ---- State ------------------------------------------------------------------ */

typedef struct {
  int n, f, u;                 /* batch, inputs, units */
  int weight, bias;            /* parameter indices; bias -1 without one */
  float *pre;                  /* pre-activation [n, u], kept only when the activation's backward needs it */
  gsize pre_n;
  float *dz;                   /* [n, u] */
  gsize dz_n;
} Dense;

static void
dense_free (Dense *d)
{
  if (!d)
    return;
  g_free (d->pre);
  g_free (d->dz);
  g_free (d);
}

static void
dense_finalize (StStage *stage)
{
  g_clear_pointer ((Dense **) &stage->priv, dense_free);
}

static float *
scratch (float **buf, gsize *have, gsize n)
{
  if (*have < n)
    {
      g_free (*buf);
      *buf = g_new (float, n);
      *have = n;
    }
  return *buf;
}

static gboolean
dense_infer (StStage *stage, GError **error)
{
  const DenseConfig *cfg = stage->config;
  StShape in = stage->in_shapes[0];
  gint64 f = (gint64) in.c * in.h * in.w;

  if (in.n <= 0 || f <= 0)
    {
      char buf[64];
      g_set_error (error, ST_ERROR, ST_ERROR_SHAPE, "input %s is empty",
                   st_shape_format (in, buf, sizeof buf));
      return FALSE;
    }
  if (f > G_MAXINT / 64)
    {
      char buf[64];
      g_set_error (error, ST_ERROR, ST_ERROR_SHAPE,
                   "input %s has %" G_GINT64_FORMAT " features a sample, too many for a dense layer",
                   st_shape_format (in, buf, sizeof buf), f);
      return FALSE;
    }

  Dense *d = stage->priv;
  if (!d)
    {
      d = g_new0 (Dense, 1);
      d->bias = -1;
      stage->priv = d;
    }
  d->n = in.n;
  d->f = (int) f;
  d->u = cfg->units;

  /* He/Kaiming uniform for ReLU nets; PyTorch's default bias bound. */
  int wdims[2] = { d->u, d->f };
  d->weight = st_stage_declare_param (stage, "weight", wdims, 2, ST_INIT_HE_UNIFORM, 0, TRUE, error);
  if (d->weight < 0)
    return FALSE;
  if (cfg->bias)
    {
      d->bias = st_stage_declare_param (stage, "bias", &d->u, 1, ST_INIT_UNIFORM,
                                        1.0 / sqrt ((double) d->f), TRUE, error);
      if (d->bias < 0)
        return FALSE;
    }

  stage->out_shape = (StShape) { in.n, d->u, 1, 1 };
  stage->halo = ST_HALO_WHOLE;
  stage->macs = (double) in.n * d->u * (double) d->f;
  return TRUE;
}

/* Multiply-adds a task must have to be worth waking a thread for. */
#define MIN_TASK_MACS 400000.0
/* Tasks per thread, at most, when there is work for them: the pool hands
 * them out as threads become free, so a thread the system deschedules
 * holds up one small task instead of its whole share. */
#define TASKS_PER_THREAD 4

static int
n_tasks (const StRunContext *ctx, double macs, int max)
{
  int threads = st_parallel_threads (ctx);
  int per_thread = threads == 1 ? 1 : TASKS_PER_THREAD;
  return MAX (1, (int) MIN (MIN (threads * per_thread, macs / MIN_TASK_MACS), max));
}

/* ---- Forward ---------------------------------------------------------------- */

typedef struct {
  const Dense *d;
  const float *in;             /* [N, F] */
  const float *w;              /* [U, F] */
  const float *b;              /* [U] or NULL */
  float *out;                  /* [N, U] */
  float *pre;                  /* [N, U] or NULL */
  StActivation act;
  float slope;
  int tasks;
  gboolean by_units;           /* split the units among tasks, else the samples */
} FwdJob;

static void
forward_tasks (gsize begin, gsize end, gpointer data)
{
  const FwdJob *j = data;
  const Dense *d = j->d;
  for (gsize t = begin; t < end; t++)
    {
      int n0 = 0, n1 = d->n, u0 = 0, u1 = d->u;
      if (j->by_units)
        {
          u0 = (int) ((gsize) d->u * t / j->tasks);
          u1 = (int) ((gsize) d->u * (t + 1) / j->tasks);
        }
      else
        {
          n0 = (int) ((gsize) d->n * t / j->tasks);
          n1 = (int) ((gsize) d->n * (t + 1) / j->tasks);
        }
      if (n0 == n1 || u0 == u1)
        continue;
      /* out [n, u] = in [n, F] × W^T [F, u] */
      float *o = j->out + (gsize) n0 * d->u + u0;
      cblas_sgemm (CblasRowMajor, CblasNoTrans, CblasTrans, n1 - n0, u1 - u0, d->f,
                   1.0f, j->in + (gsize) n0 * d->f, d->f, j->w + (gsize) u0 * d->f, d->f,
                   0.0f, o, d->u);
      for (int n = n0; n < n1; n++)
        {
          float *row = j->out + (gsize) n * d->u;
          if (j->b)
            for (int u = u0; u < u1; u++)
              row[u] += j->b[u];
          if (j->pre)
            memcpy (j->pre + (gsize) n * d->u + u0, row + u0, sizeof (float) * (u1 - u0));
          st_activation_forward (j->act, j->slope, row + u0, row + u0, u1 - u0);
        }
    }
}

static gboolean
dense_forward (StStage *stage, const StRunContext *ctx,
               const StTensor *const *inputs, StTensor *output, GError **error)
{
  const DenseConfig *cfg = stage->config;
  Dense *d = stage->priv;
  StActivation act = cfg->activation;

  openblas_set_num_threads (1);
  gboolean by_units = d->n < 2 * st_parallel_threads (ctx);
  FwdJob j = {
    .d = d, .in = inputs[0]->data,
    .w = st_stage_param (stage, d->weight)->data,
    .b = d->bias >= 0 ? st_stage_param (stage, d->bias)->data : NULL,
    .out = output->data,
    .pre = st_activation_needs_input (act)
           ? scratch (&d->pre, &d->pre_n, (gsize) d->n * d->u) : NULL,
    .act = act, .slope = st_activation_arg (act, cfg->slope, cfg->alpha),
    .by_units = by_units,
  };
  j.tasks = n_tasks (ctx, stage->macs, by_units ? d->u : d->n);
  st_parallel_for (ctx, j.tasks, forward_tasks, &j);
  return TRUE;
}

/* ---- Backward --------------------------------------------------------------- */

typedef struct {
  const Dense *d;
  const float *in;             /* [N, F] */
  const float *w;              /* [U, F] */
  const float *dz;             /* [N, U]: grad_output through the activation */
  float *dw;                   /* [U, F] or NULL */
  float *din;                  /* [N, F] or NULL */
  int tasks;
} BwdJob;

/* Task t owns rows [u0, u1) of dW and columns [f0, f1) of din: no two
 * tasks write the same element. */
static void
backward_tasks (gsize begin, gsize end, gpointer data)
{
  const BwdJob *j = data;
  const Dense *d = j->d;
  for (gsize t = begin; t < end; t++)
    {
      int u0 = (int) ((gsize) d->u * t / j->tasks), u1 = (int) ((gsize) d->u * (t + 1) / j->tasks);
      int f0 = (int) ((gsize) d->f * t / j->tasks), f1 = (int) ((gsize) d->f * (t + 1) / j->tasks);
      /* dW [u, F] += dz^T [u, N] × in [N, F] */
      if (j->dw && u1 > u0)
        cblas_sgemm (CblasRowMajor, CblasTrans, CblasNoTrans, u1 - u0, d->f, d->n,
                     1.0f, j->dz + u0, d->u, j->in, d->f,
                     1.0f, j->dw + (gsize) u0 * d->f, d->f);
      /* din [N, f] = dz [N, U] × W [U, f] */
      if (j->din && f1 > f0)
        cblas_sgemm (CblasRowMajor, CblasNoTrans, CblasNoTrans, d->n, f1 - f0, d->u,
                     1.0f, j->dz, d->u, j->w + f0, d->f,
                     0.0f, j->din + f0, d->f);
    }
}

static gboolean
dense_backward (StStage *stage, const StRunContext *ctx,
                const StTensor *const *inputs, const StTensor *output,
                const StTensor *grad_output, StTensor *const *grad_inputs,
                GError **error)
{
  const DenseConfig *cfg = stage->config;
  Dense *d = stage->priv;
  StActivation act = cfg->activation;
  StTensor *dw = st_stage_param_grad (stage, d->weight);
  StTensor *db = d->bias >= 0 ? st_stage_param_grad (stage, d->bias) : NULL;
  StTensor *din = grad_inputs[0];
  gsize nu = (gsize) d->n * d->u;

  if (st_activation_needs_input (act) && d->pre_n < nu)
    {
      g_set_error (error, ST_ERROR, ST_ERROR_FAILED,
                   "backward without a forward of this shape before it");
      return FALSE;
    }

  /* dz = dout ⊙ act'(pre), the activation's backward first. */
  float *dz = scratch (&d->dz, &d->dz_n, nu);
  memcpy (dz, grad_output->data, sizeof (float) * nu);
  st_activation_backward (act, st_activation_arg (act, cfg->slope, cfg->alpha),
                          st_activation_needs_input (act) ? d->pre : NULL,
                          output->data, dz, nu);
  /* db [U] += Σ_n dz [n, U] */
  if (db)
    for (int n = 0; n < d->n; n++)
      for (int u = 0; u < d->u; u++)
        db->data[u] += dz[(gsize) n * d->u + u];

  openblas_set_num_threads (1);
  BwdJob j = {
    .d = d, .in = inputs[0]->data,
    .w = st_stage_param (stage, d->weight)->data,
    .dz = dz,
    .dw = dw ? dw->data : NULL,
    .din = din ? din->data : NULL,
  };
  j.tasks = n_tasks (ctx, 2.0 * stage->macs, MAX (d->u, d->f));
  if (j.dw || j.din)
    st_parallel_for (ctx, j.tasks, backward_tasks, &j);
  return TRUE;
}
