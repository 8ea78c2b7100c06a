/* strata — measuring a classifier on a dataset. */
#include "evaluate.h"
#include "train.h"   /* st_scores_to_probabilities */

#include <json-glib/json-glib.h>

#include <math.h>
#include <stdio.h>
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

double
st_evaluate (StPipeline *p, const StDataset *ds, const StRunContext *ctx, int batch_size,
             guint64 *confusion, GError **error)
{
  int first = st_pipeline_prefix_length (p);
  int last = st_pipeline_n_stages (p) - 1;
  int n_classes = st_pipeline_output_shape (p).c;
  memset (confusion, 0, sizeof (guint64) * n_classes * n_classes);
  double loss = 0;
  g_autofree int *labels = g_new (int, batch_size);
  for (int start = 0; start < ds->n; start += batch_size)
    {
      int count = MIN (batch_size, ds->n - start);
      g_autoptr (StTensor) batch = st_dataset_gather_batch (ds, NULL, start, count, labels);
      g_autoptr (StTensor) out = st_pipeline_forward_range (p, ctx, batch, first, last, FALSE, error);
      if (!out)
        return -1;
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
          loss += -log (MAX (prob[labels[b]], 1e-30f));
        }
    }
  return ds->n ? loss / ds->n : 0;
}

/* ---- Reporting ------------------------------------------------------------- */

static char *
class_name (const StPipeline *p, const StDataset *ds, int c)
{
  const char *const *labels = st_pipeline_labels (p);
  if (labels && c < (int) g_strv_length ((char **) labels))
    return g_strdup (labels[c]);
  if (ds->class_names && c < (int) g_strv_length (ds->class_names))
    return g_strdup (ds->class_names[c]);
  return g_strdup_printf ("%d", c);
}

void
st_print_evaluation (const StPipeline *p, const StDataset *ds, const guint64 *confusion,
                     double loss, gboolean json)
{
  int n = st_pipeline_output_shape (p).c;
  guint64 right = 0, total = 0;
  for (int t = 0; t < n; t++)
    for (int q = 0; q < n; q++)
      {
        total += confusion[t * n + q];
        if (t == q)
          right += confusion[t * n + q];
      }
  double accuracy = total ? (double) right / total : 0;
  g_autoptr (JsonBuilder) b = json ? json_builder_new () : NULL;
  if (json)
    {
      json_builder_begin_object (b);
      json_builder_set_member_name (b, "pipeline");
      json_builder_add_string_value (b, st_pipeline_name (p));
      json_builder_set_member_name (b, "images");
      json_builder_add_int_value (b, (gint64) total);
      json_builder_set_member_name (b, "accuracy");
      json_builder_add_double_value (b, accuracy);
      json_builder_set_member_name (b, "loss");
      json_builder_add_double_value (b, loss);
      json_builder_set_member_name (b, "classes");
      json_builder_begin_array (b);
    }
  else
    {
      printf ("accuracy %.2f%% (%" G_GUINT64_FORMAT " of %" G_GUINT64_FORMAT "), mean loss %.4f\n\n",
              100 * accuracy, right, total, loss);
      printf ("%-20s %10s %10s %8s\n", "class", "precision", "recall", "images");
    }
  for (int c = 0; c < n; c++)
    {
      guint64 tp = confusion[c * n + c], actual = 0, predicted = 0;
      for (int k = 0; k < n; k++)
        {
          actual += confusion[c * n + k];
          predicted += confusion[k * n + c];
        }
      double precision = predicted ? (double) tp / predicted : 0;
      double recall = actual ? (double) tp / actual : 0;
      g_autofree char *name = class_name (p, ds, c);
      if (json)
        {
          json_builder_begin_object (b);
          json_builder_set_member_name (b, "name");
          json_builder_add_string_value (b, name);
          json_builder_set_member_name (b, "precision");
          json_builder_add_double_value (b, precision);
          json_builder_set_member_name (b, "recall");
          json_builder_add_double_value (b, recall);
          json_builder_set_member_name (b, "images");
          json_builder_add_int_value (b, (gint64) actual);
          json_builder_end_object (b);
        }
      else
        printf ("%-20s %9.1f%% %9.1f%% %8" G_GUINT64_FORMAT "\n", name, 100 * precision,
                100 * recall, actual);
    }
  if (json)
    {
      json_builder_end_array (b);
      json_builder_set_member_name (b, "confusion");
      json_builder_begin_array (b);
      for (int t = 0; t < n; t++)
        {
          json_builder_begin_array (b);
          for (int q = 0; q < n; q++)
            json_builder_add_int_value (b, (gint64) confusion[t * n + q]);
          json_builder_end_array (b);
        }
      json_builder_end_array (b);
      json_builder_end_object (b);
      g_autoptr (JsonGenerator) gen = json_generator_new ();
      g_autoptr (JsonNode) root = json_builder_get_root (b);
      json_generator_set_root (gen, root);
      g_autofree char *text = json_generator_to_data (gen, NULL);
      printf ("%s\n", text);
      return;
    }
  printf ("\nconfusion matrix (rows: true class, columns: predicted class)\n%6s", "");
  for (int q = 0; q < n; q++)
    printf (" %6d", q);
  printf ("\n");
  for (int t = 0; t < n; t++)
    {
      printf ("%6d", t);
      for (int q = 0; q < n; q++)
        printf (" %6" G_GUINT64_FORMAT, confusion[t * n + q]);
      g_autofree char *name = class_name (p, ds, t);
      printf ("  %s\n", name);
    }
}
