/* strata — a pipeline as a classifier (see classifier.h). */
#include "classifier.h"
#include "kind.h"

gboolean
st_pipeline_is_classifier (const StPipeline *p)
{
  StShape out = st_pipeline_output_shape (p);
  return out.h == 1 && out.w == 1 && out.c >= 2;
}

gboolean
st_pipeline_ends_in_probabilities (const StPipeline *p)
{
  int n = st_pipeline_n_stages (p);
  return n > 0 && (st_kind_flags (st_pipeline_stage (p, n - 1)->kind)
                   & ST_KIND_OUTPUTS_PROBABILITIES);
}

char **
st_pipeline_class_names (const StPipeline *p, const char *const *fallback)
{
  int n = st_pipeline_output_shape (p).c;
  const char *const *labels = st_pipeline_labels (p);
  guint n_labels = labels ? g_strv_length ((char **) labels) : 0;
  guint n_fallback = fallback ? g_strv_length ((char **) fallback) : 0;
  char **names = g_new0 (char *, n + 1);
  for (int c = 0; c < n; c++)
    names[c] = (guint) c < n_labels ? g_strdup (labels[c])
               : (guint) c < n_fallback ? g_strdup (fallback[c])
               : g_strdup_printf ("%d", c);
  return names;
}

void
st_scores_to_probabilities (const StPipeline *p, StTensor *scores)
{
  if (st_pipeline_ends_in_probabilities (p))
    return;
  gsize per = (gsize) scores->shape.c * scores->shape.h * scores->shape.w;
  for (int b = 0; b < scores->shape.n; b++)
    st_softmax_channels (scores->data + b * per, scores->data + b * per, scores->shape.c, 1);
}
