/* strata — optimisers (SGD, Adam, AdamW) and learning-rate schedules. */
#include "optimizer.h"

#include <math.h>

GArray *
st_optimizer_collect_slots (GPtrArray *weights, const StTrainOptions *opt)
{
  GArray *slots = g_array_new (FALSE, TRUE, sizeof (StOptimizerSlot));
  for (guint i = 0; i < weights->len; i++)
    {
      StWeight *weight = weights->pdata[i];
      if (!weight->trainable)
        continue;
      StOptimizerSlot slot = { weight, st_tensor_new (weight->value->shape, NULL), NULL };
      if (opt->optimizer != ST_OPTIM_SGD)
        slot.v = st_tensor_new (weight->value->shape, NULL);
      g_array_append_val (slots, slot);
    }
  return slots;
}

guint64
st_optimizer_state_bytes (GPtrArray *weights, StOptimKind kind)
{
  guint64 bytes = 0;
  for (guint i = 0; i < weights->len; i++)
    {
      const StWeight *weight = weights->pdata[i];
      if (weight->trainable)
        bytes += st_tensor_numel (weight->value) * sizeof (float);
    }
  /* A momentum buffer for SGD (allocated even at momentum 0), two moments for Adam. */
  return kind == ST_OPTIM_SGD ? bytes : 2 * bytes;
}

void
st_optimizer_free_slots (GArray *slots)
{
  for (guint i = 0; i < slots->len; i++)
    {
      StOptimizerSlot *s = &g_array_index (slots, StOptimizerSlot, i);
      st_tensor_free (s->m);
      st_tensor_free (s->v);
    }
  g_array_free (slots, TRUE);
}

/* Elements of one work item of the update: small enough to share a
 * 93K-parameter network among threads, large enough to vectorise. */
#define STEP_CHUNK 8192

typedef struct {
  GArray *slots;
  const StTrainOptions *opt;
  double lr, bias1, bias2;
  guint *first_item;           /* per slot: its first work item; [slots->len] = the total */
} StepJob;

/* Updates elements [j0, j1) of one slot: every element on its own, so how
 * the elements are split among threads never changes a result. */
static void
update_range (const StepJob *job, StOptimizerSlot *s, gsize j0, gsize j1)
{
  const StTrainOptions *opt = job->opt;
  double lr = job->lr, wd = opt->weight_decay;
  float *restrict w = s->weight->value->data, *restrict g = s->weight->grad->data;
  float *restrict m = s->m->data, *restrict v = s->v ? s->v->data : NULL;
  switch (opt->optimizer)
    {
    case ST_OPTIM_SGD:
      /* As PyTorch: buf = momentum * buf + g; nesterov steps by g + momentum * buf. */
      for (gsize j = j0; j < j1; j++)
        {
          float grad = g[j] + (float) wd * w[j];
          float step_dir = grad;
          if (opt->momentum > 0)
            {
              m[j] = (float) opt->momentum * m[j] + grad;
              step_dir = opt->nesterov ? grad + (float) opt->momentum * m[j] : m[j];
            }
          w[j] -= (float) lr * step_dir;
        }
      break;
    case ST_OPTIM_ADAM:
    case ST_OPTIM_ADAMW:
      {
        gboolean decoupled = opt->optimizer == ST_OPTIM_ADAMW;
        float b1 = (float) opt->beta1, b2 = (float) opt->beta2;
        float step_size = (float) (lr / job->bias1);
        float inv_sqrt_bias2 = (float) (1.0 / sqrt (job->bias2));
        float eps = (float) opt->eps;
        for (gsize j = j0; j < j1; j++)
          {
            float grad = g[j];
            if (decoupled)
              w[j] -= (float) (lr * wd) * w[j];
            else
              grad += (float) wd * w[j];
            m[j] = b1 * m[j] + (1.0f - b1) * grad;
            v[j] = b2 * v[j] + (1.0f - b2) * grad * grad;
            w[j] -= step_size * m[j] / (sqrtf (v[j]) * inv_sqrt_bias2 + eps);
          }
        break;
      }
    }
}

static void
update_items (gsize begin, gsize end, gpointer data)
{
  const StepJob *job = data;
  guint i = 0;
  for (gsize item = begin; item < end; item++)
    {
      while (job->first_item[i + 1] <= item)
        i++;
      StOptimizerSlot *s = &g_array_index (job->slots, StOptimizerSlot, i);
      gsize n = st_tensor_numel (s->weight->value);
      gsize j0 = (item - job->first_item[i]) * STEP_CHUNK;
      update_range (job, s, j0, MIN (j0 + STEP_CHUNK, n));
    }
}

void
st_optimizer_step (GArray *slots, const StTrainOptions *opt, double lr, gint64 step,
                   const StRunContext *ctx)
{
  g_autofree guint *first_item = g_new (guint, slots->len + 1);
  first_item[0] = 0;
  for (guint i = 0; i < slots->len; i++)
    {
      StOptimizerSlot *s = &g_array_index (slots, StOptimizerSlot, i);
      gsize n = st_tensor_numel (s->weight->value);
      first_item[i + 1] = first_item[i] + (guint) ((n + STEP_CHUNK - 1) / STEP_CHUNK);
    }
  StepJob job = {
    .slots = slots, .opt = opt, .lr = lr,
    .bias1 = 1.0 - pow (opt->beta1, (double) step),
    .bias2 = 1.0 - pow (opt->beta2, (double) step),
    .first_item = first_item,
  };
  st_parallel_for (ctx, first_item[slots->len], update_items, &job);
}

/* PyTorch's OneCycleLR with its defaults (anneal_strategy "cos",
 * pct_start 0.3, div_factor 25, final_div_factor 1e4, three_phase False,
 * momentum not cycled): from lr/25 up to lr over the first 30% of the
 * steps, then down to lr/25/1e4 at the last, both halves cosine. */
static double
one_cycle_lr (double max_lr, gint64 step, gint64 total)
{
  const double pct_start = 0.3, div_factor = 25, final_div_factor = 1e4;
  double initial = max_lr / div_factor, final = initial / final_div_factor;
  /* Past the end (more epochs on resume) the rate stays at its floor. */
  double k = (double) MIN (step, total - 1);
  double peak_step = pct_start * (double) total - 1, last_step = (double) (total - 1);
  double from, to, pct;
  if (k <= peak_step)
    from = initial, to = max_lr, pct = peak_step > 0 ? k / peak_step : 1;
  else
    from = max_lr, to = final, pct = (k - peak_step) / (last_step - peak_step);
  return to + (from - to) / 2.0 * (cos (G_PI * pct) + 1.0);
}

/* Linear from 0 (step 0) towards lr over the warm-up's steps, then cosine
 * from lr to 0 over the rest, as get_cosine_schedule_with_warmup of
 * Hugging Face's transformers. */
static double
warmup_cosine_lr (double lr, gint64 step, gint64 warmup, gint64 total)
{
  if (step < warmup)
    return lr * (double) step / (double) warmup;
  double progress = (double) (step - warmup) / (double) MAX (total - warmup, 1);
  return lr * 0.5 * (1.0 + cos (G_PI * MIN (progress, 1.0)));
}

double
st_schedule_lr (const StTrainOptions *opt, gint64 step, int steps_per_epoch)
{
  int spe = MAX (steps_per_epoch, 1);
  int epoch = (int) MIN (step / spe, G_MAXINT);
  gint64 total = (gint64) MAX (opt->epochs, 1) * spe;
  switch (opt->schedule)
    {
    case ST_SCHEDULE_CONSTANT:
      return opt->lr;
    case ST_SCHEDULE_STEP:
      return opt->lr * pow (opt->gamma, epoch / MAX (opt->step_epochs, 1));
    case ST_SCHEDULE_COSINE:
      return opt->lr * 0.5 * (1.0 + cos (G_PI * epoch / MAX (opt->epochs, 1)));
    case ST_SCHEDULE_ONE_CYCLE:
      return one_cycle_lr (opt->lr, step, total);
    case ST_SCHEDULE_WARMUP_COSINE:
      return warmup_cosine_lr (opt->lr, step, st_schedule_warmup_steps (opt, spe), total);
    }
  return opt->lr;
}

gint64
st_schedule_warmup_steps (const StTrainOptions *opt, int steps_per_epoch)
{
  return opt->warmup_steps > 0 ? opt->warmup_steps
                               : (gint64) opt->warmup_epochs * MAX (steps_per_epoch, 1);
}

const char *
st_schedule_name (StScheduleKind kind)
{
  static const char *const names[] = { "constant", "step", "cosine", "one-cycle",
                                       "warmup-cosine" };
  return names[kind];
}

const char *
st_optimizer_name (StOptimKind k)
{
  return k == ST_OPTIM_SGD ? "sgd" : k == ST_OPTIM_ADAM ? "adam" : "adamw";
}
