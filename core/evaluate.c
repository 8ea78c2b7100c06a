/* strata — measuring a classifier on a dataset. */
#include "evaluate.h"
#include "classifier.h"
#include "dist.h"
#include "prepare.h"

#include <math.h>
#include <string.h>

StTensor *
st_dataset_gather_batch (const StDataset *ds, const int *order, int start, int count, int *labels)
{
  StShape s = ds->x->shape;
  gsize per = (gsize) s.c * s.h * s.w;
  StTensor *batch = st_tensor_new0 (count, s.c, s.h, s.w);
  for (int i = 0; i < count; i++)
    {
      int idx = order ? order[start + i] : start + i;
      memcpy (batch->data + i * per, ds->x->data + (gsize) idx * per, per * sizeof (float));
      labels[i] = ds->labels[idx];
    }
  return batch;
}

/* Adds ds's batches' predictions to the confusion matrix and writes each
 * sample's cross-entropy into losses; FALSE with error set when a stage
 * fails.  Several MPI ranks take whole batches each, so that every batch,
 * and so every number, is the one a single process computes. */
static gboolean
fill_confusion (StPipeline *p, const StDataset *ds, const StRunContext *ctx, int batch_size,
                int n_classes, guint64 *confusion, double *losses, GError **error)
{
  int first = st_dataset_cached_stages (p);
  int last = st_pipeline_n_stages (p) - 1;
  gint64 from, to;
  st_dist_share (ds->n, batch_size, &from, &to);
  g_autofree int *labels = g_new (int, batch_size);
  for (int start = from; start < to; start += batch_size)
    {
      int count = MIN (batch_size, ds->n - start);
      g_autoptr (StTensor) batch = st_dataset_gather_batch (ds, NULL, start, count, labels);
      g_autoptr (StTensor) out = st_pipeline_forward_range (p, ctx, batch, first, last, FALSE, error);
      if (!out)
        return FALSE;
      st_scores_to_probabilities (p, out);
      for (int b = 0; b < count; b++)
        {
          const float *prob = out->data + (gsize) b * out->shape.c;
          int best = 0;
          for (int j = 1; j < out->shape.c; j++)
            if (prob[j] > prob[best])
              best = j;
          if (labels[b] < n_classes)
            confusion[labels[b] * n_classes + best]++;
          losses[start + b] = -log (MAX (prob[labels[b]], 1e-30f));
        }
    }
  return TRUE;
}

/* The pipeline's label, else the data's class name, else the index. */
static char *
class_name (const StPipeline *p, const StDataset *ds, int c)
{
  g_auto (GStrv) names = st_pipeline_class_names (p, (const char *const *) ds->class_names);
  return g_strdup (names[c]);
}

/* Accuracy and each class's precision and recall from the confusion matrix. */
static void
summarise (StEvaluation *ev, const StPipeline *p, const StDataset *ds)
{
  int n = ev->n_classes;
  for (int t = 0; t < n; t++)
    for (int q = 0; q < n; q++)
      {
        ev->images += ev->confusion[t * n + q];
        if (t == q)
          ev->correct += ev->confusion[t * n + q];
      }
  ev->accuracy = ev->images ? (double) ev->correct / ev->images : 0;
  for (int c = 0; c < n; c++)
    {
      StClassScore *score = &ev->classes[c];
      guint64 tp = ev->confusion[c * n + c], predicted = 0;
      for (int k = 0; k < n; k++)
        {
          score->images += ev->confusion[c * n + k];
          predicted += ev->confusion[k * n + c];
        }
      score->name = class_name (p, ds, c);
      score->precision = predicted ? (double) tp / predicted : 0;
      score->recall = score->images ? (double) tp / score->images : 0;
    }
}

StEvaluation *
st_evaluate (StPipeline *p, const StDataset *ds, const StRunContext *ctx, int batch_size,
             GError **error)
{
  g_autoptr (StEvaluation) ev = g_new0 (StEvaluation, 1);
  ev->pipeline = g_strdup (st_pipeline_name (p));
  ev->n_classes = st_pipeline_output_shape (p).c;
  ev->confusion = g_new0 (guint64, (gsize) ev->n_classes * ev->n_classes);
  ev->classes = g_new0 (StClassScore, ev->n_classes);
  g_autofree double *losses = g_new0 (double, MAX (ds->n, 1));
  if (!fill_confusion (p, ds, ctx, batch_size, ev->n_classes, ev->confusion, losses, error))
    return NULL;
  /* Counts add exactly; a loss is 0 on every rank but the one that
   * computed it, and the sum is then taken in sample order, as alone. */
  st_dist_allreduce_ints ((gint64 *) ev->confusion, (gsize) ev->n_classes * ev->n_classes,
                          ST_DIST_SUM);
  st_dist_allreduce_doubles (losses, ds->n, ST_DIST_SUM);
  double loss = 0;
  for (int i = 0; i < ds->n; i++)
    loss += losses[i];
  ev->loss = ds->n ? loss / ds->n : 0;
  summarise (ev, p, ds);
  return g_steal_pointer (&ev);
}

void
st_evaluation_free (StEvaluation *ev)
{
  if (!ev)
    return;
  for (int c = 0; c < ev->n_classes; c++)
    g_free (ev->classes[c].name);
  g_free (ev->classes);
  g_free (ev->confusion);
  g_free (ev->pipeline);
  g_free (ev);
}
