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

/* The running statistics (weights not trained) become rank 0's. */
static void
broadcast_buffers (GPtrArray *weights)
{
  for (guint i = 0; i < weights->len; i++)
    {
      StWeight *w = weights->pdata[i];
      if (!w->trainable)
        st_dist_broadcast (w->value->data, st_tensor_numel (w->value) * sizeof (float));
    }
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
      if (w->trainable && w->grad)
        {
          memcpy (w->grad->data, packed + at, st_tensor_numel (w->grad) * sizeof (float));
          at += st_tensor_numel (w->grad);
        }
    }
  broadcast_buffers (weights);
}

/* One bucket: the gradients of a run of weights, packed. */
typedef struct {
  GPtrArray *weights;          /* StWeight *, not owned */
  float *packed, *sum;
  gsize n;                     /* floats */
  int first_stage;             /* the bucket is full once backward is past this stage */
  StDistPending *pending;      /* started, not yet waited for */
} Bucket;

struct StGradBuckets {
  GPtrArray *weights;          /* every weight, for the running statistics */
  GArray *buckets;             /* Bucket, in the order backward fills them */
  guint next;                  /* the first bucket not started */
  StPipeline *p;
};

/* The bucket size from STRATA_BUCKET_KB; 0 when the sum waits for the
 * end of backward. */
static gsize
bucket_bytes (void)
{
  const char *text = g_getenv ("STRATA_BUCKET_KB");
  if (!text)
    return 256 * 1024;
  return (gsize) g_ascii_strtoull (text, NULL, 10) * 1024;
}

StGradBuckets *
st_grad_buckets_new (StPipeline *p, GPtrArray *weights)
{
  const gsize cap = bucket_bytes ();
  if (!st_dist_active () || cap == 0)
    return NULL;
  StGradBuckets *b = g_new0 (StGradBuckets, 1);
  b->p = p;
  b->weights = g_ptr_array_ref (weights);
  b->buckets = g_array_new (FALSE, TRUE, sizeof (Bucket));
  /* The stages in the order backward finishes them, the last first; a
   * stage's weights stay in one bucket, so that a bucket is full as soon
   * as backward leaves its first stage.  A new bucket begins at a stage
   * that would overflow the cap; a stage larger than the cap has a bucket
   * of its own. */
  Bucket *open = NULL;
  for (int s = st_pipeline_n_stages (p) - 1; s >= 0; s--)
    {
      StStage *stage = st_pipeline_stage (p, s);
      gsize stage_n = 0;
      for (int k = 0; k < st_stage_n_weights (stage); k++)
        {
          const StWeight *w = st_stage_get_weight (stage, k);
          if (w->trainable && w->grad)
            stage_n += st_tensor_numel (w->grad);
        }
      if (stage_n == 0)
        continue;
      if (!open || (open->n + stage_n) * sizeof (float) > cap)
        {
          g_array_set_size (b->buckets, b->buckets->len + 1);
          open = &g_array_index (b->buckets, Bucket, b->buckets->len - 1);
          open->weights = g_ptr_array_new ();
        }
      for (int k = 0; k < st_stage_n_weights (stage); k++)
        {
          StWeight *w = st_stage_get_weight (stage, k);
          if (w->trainable && w->grad)
            g_ptr_array_add (open->weights, w);
        }
      open->n += stage_n;
      open->first_stage = s;
    }
  for (guint i = 0; i < b->buckets->len; i++)
    {
      Bucket *bucket = &g_array_index (b->buckets, Bucket, i);
      bucket->packed = g_new (float, bucket->n);
      bucket->sum = g_new (float, bucket->n);
    }
  st_pipeline_set_backward_hook (p, st_grad_buckets_stage_done, b);
  return b;
}

void
st_grad_buckets_free (StGradBuckets *b)
{
  if (!b)
    return;
  st_pipeline_set_backward_hook (b->p, NULL, NULL);
  for (guint i = 0; i < b->buckets->len; i++)
    {
      Bucket *bucket = &g_array_index (b->buckets, Bucket, i);
      /* A sum still pending means backward failed: the job is aborted. */
      g_ptr_array_unref (bucket->weights);
      if (!bucket->pending)
        {
          g_free (bucket->packed);
          g_free (bucket->sum);
        }
    }
  g_array_unref (b->buckets);
  g_ptr_array_unref (b->weights);
  g_free (b);
}

static void
start_bucket (Bucket *bucket)
{
  gsize at = 0;
  for (guint i = 0; i < bucket->weights->len; i++)
    {
      const StWeight *w = bucket->weights->pdata[i];
      memcpy (bucket->packed + at, w->grad->data, st_tensor_numel (w->grad) * sizeof (float));
      at += st_tensor_numel (w->grad);
    }
  bucket->pending = st_dist_start_sum_floats (bucket->packed, bucket->sum, bucket->n);
}

void
st_grad_buckets_stage_done (int stage, gpointer data)
{
  StGradBuckets *b = data;
  while (b->next < b->buckets->len
         && g_array_index (b->buckets, Bucket, b->next).first_stage >= stage)
    start_bucket (&g_array_index (b->buckets, Bucket, b->next++));
  /* Open MPI moves a started sum on only inside an MPI call. */
  for (guint i = 0; i < b->next; i++)
    st_dist_progress (g_array_index (b->buckets, Bucket, i).pending);
}

void
st_grad_buckets_finish (StGradBuckets *b)
{
  if (!b)
    return;
  /* Stages before the trained range never reach the hook. */
  while (b->next < b->buckets->len)
    start_bucket (&g_array_index (b->buckets, Bucket, b->next++));
  for (guint i = 0; i < b->buckets->len; i++)
    {
      Bucket *bucket = &g_array_index (b->buckets, Bucket, i);
      st_dist_wait (g_steal_pointer (&bucket->pending));
      gsize at = 0;
      for (guint k = 0; k < bucket->weights->len; k++)
        {
          StWeight *w = bucket->weights->pdata[k];
          memcpy (w->grad->data, bucket->sum + at, st_tensor_numel (w->grad) * sizeof (float));
          at += st_tensor_numel (w->grad);
        }
    }
  b->next = 0;
  broadcast_buffers (b->weights);
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
