/* strata — data-parallel training over MPI ranks; see dist-train.h. */
#include "dist-train.h"
#include "dist.h"
#include "stage.h"

#include <string.h>

double
st_dist_batch_part (int *start, int *count)
{
  if (!st_dist_active ())
    return 1;
  const int total = *count, ranks = st_dist_size (), rank = st_dist_rank ();
  const int base = total / ranks, extra = total % ranks;
  const int part = base + (rank < extra);
  if (part == 0)
    {
      *count = 1;
      return 0;
    }
  *start += rank * base + MIN (rank, extra);
  *count = part;
  return (double) part / total;
}

void
st_dist_batch_sums (double *loss, int *correct, StTensor *logits_grad, double share)
{
  if (!st_dist_active ())
    return;
  double sums[2] = { share > 0 ? *loss : 0, share > 0 ? *correct : 0 };
  st_dist_allreduce_doubles (sums, 2, ST_DIST_SUM);
  *loss = sums[0];
  *correct = (int) sums[1];
  /* The mean over the batch is the sum of each part's mean times its share. */
  const float weight = (float) share;
  if (share != 1)
    for (gsize i = 0; i < st_tensor_numel (logits_grad); i++)
      logits_grad->data[i] *= weight;
}

void
st_dist_sum_gradients (GPtrArray *weights)
{
  if (!st_dist_active ())
    return;
  /* One reduction of every gradient packed together: a call per tensor
   * would pay the latency once per layer. */
  gsize total = 0;
  for (guint i = 0; i < weights->len; i++)
    {
      const StWeight *w = weights->pdata[i];
      if (w->trainable && w->grad)
        total += st_tensor_numel (w->grad);
    }
  g_autofree float *packed = g_new (float, MAX (total, 1));
  gsize at = 0;
  for (guint i = 0; i < weights->len; i++)
    {
      const StWeight *w = weights->pdata[i];
      if (!w->trainable || !w->grad)
        continue;
      memcpy (packed + at, w->grad->data, st_tensor_numel (w->grad) * sizeof (float));
      at += st_tensor_numel (w->grad);
    }
  st_dist_allreduce_floats (packed, total, ST_DIST_SUM);
  at = 0;
  for (guint i = 0; i < weights->len; i++)
    {
      StWeight *w = weights->pdata[i];
      if (!w->trainable)
        st_dist_broadcast (w->value->data, st_tensor_numel (w->value) * sizeof (float));
      else if (w->grad)
        {
          memcpy (w->grad->data, packed + at, st_tensor_numel (w->grad) * sizeof (float));
          at += st_tensor_numel (w->grad);
        }
    }
}

void
st_dist_train_outputs (StTrainOptions *opt)
{
  if (st_dist_rank () == 0)
    return;
  opt->weights_out = NULL;
  opt->log_csv = NULL;
  opt->plot_png = NULL;
}

/* FNV-1a over every weight's bytes. */
static guint64
weights_hash (GPtrArray *weights)
{
  guint64 h = G_GUINT64_CONSTANT (0xcbf29ce484222325);
  for (guint i = 0; i < weights->len; i++)
    {
      const StWeight *w = weights->pdata[i];
      const guint8 *bytes = (const guint8 *) w->value->data;
      for (gsize b = 0; b < st_tensor_numel (w->value) * sizeof (float); b++)
        h = (h ^ bytes[b]) * G_GUINT64_CONSTANT (0x100000001b3);
    }
  return h;
}

gboolean
st_dist_check_start (GPtrArray *weights, int n_samples, GError **error)
{
  if (!st_dist_active ())
    return TRUE;
  const int ranks = st_dist_size ();
  g_autofree guint64 *samples = g_new (guint64, ranks);
  g_autofree guint64 *hashes = g_new (guint64, ranks);
  st_dist_allgather_u64 (n_samples, samples);
  st_dist_allgather_u64 (weights_hash (weights), hashes);
  for (int r = 1; r < ranks; r++)
    if (samples[r] != samples[0])
      {
        g_set_error (error, ST_ERROR, ST_ERROR_DATA,
                     "rank %d has %" G_GUINT64_FORMAT " training images, rank 0 %"
                     G_GUINT64_FORMAT ": every machine needs the same data", r, samples[r],
                     samples[0]);
        return FALSE;
      }
    else if (hashes[r] != hashes[0])
      {
        g_set_error (error, ST_ERROR, ST_ERROR_WEIGHTS,
                     "rank %d starts from other weights than rank 0: every machine needs the "
                     "same pipeline, plugins and checkpoint", r);
        return FALSE;
      }
  return TRUE;
}

gboolean
st_dist_check_replicas (GPtrArray *weights, int epoch, GError **error)
{
  if (!st_dist_active () || !g_getenv ("STRATA_CHECK_REPLICAS"))
    return TRUE;
  g_autofree guint64 *hashes = g_new (guint64, st_dist_size ());
  st_dist_allgather_u64 (weights_hash (weights), hashes);
  for (int r = 1; r < st_dist_size (); r++)
    if (hashes[r] != hashes[0])
      {
        g_set_error (error, ST_ERROR, ST_ERROR_FAILED,
                     "epoch %d: the weights of rank %d differ from rank 0's (hash %016"
                     G_GINT64_MODIFIER "x, not %016" G_GINT64_MODIFIER "x)",
                     epoch + 1, r, hashes[r], hashes[0]);
        return FALSE;
      }
  return TRUE;
}
