/* strata — a pipeline's parameters to and from a safetensors file, under
 * the names and shapes a PyTorch state_dict has. */
#include "weights.h"
#include "stage.h"

#include <json-glib/json-glib.h>

#include <string.h>

StNamedTensor *
st_named_tensor_borrow (const char *name, const StWeight *weight, StTensor *value)
{
  StNamedTensor *t = g_new0 (StNamedTensor, 1);
  t->name = (char *) name;
  t->rank = weight->rank;
  memcpy (t->dims, weight->dims, sizeof t->dims);
  t->value = value;
  return t;
}

gboolean
st_weights_write (StPipeline *p, const char *path, GPtrArray *extra, GHashTable *metadata,
                  GError **error)
{
  g_autoptr (GPtrArray) weights = st_pipeline_weights (p);
  g_autoptr (GPtrArray) named = g_ptr_array_new_with_free_func (g_free);
  for (guint i = 0; i < weights->len; i++)
    {
      const StWeight *weight = weights->pdata[i];
      g_ptr_array_add (named, st_named_tensor_borrow (weight->full_name, weight, weight->value));
    }
  for (guint i = 0; extra && i < extra->len; i++)
    g_ptr_array_add (named, g_memdup2 (extra->pdata[i], sizeof (StNamedTensor)));
  g_autoptr (GHashTable) meta = g_hash_table_new (g_str_hash, g_str_equal);
  st_metadata_merge (meta, metadata);
  g_hash_table_insert (meta, "strata.pipeline", (gpointer) st_pipeline_name (p));
  return st_tensor_file_write (path, (const StNamedTensor *const *) named->pdata,
                               (int) named->len, meta, error);
}

gboolean
st_pipeline_save_weights (StPipeline *p, const char *path, GHashTable *metadata,
                          GError **error)
{
  return st_weights_write (p, path, NULL, metadata, error);
}

/* The class names a training on class folders stored ("strata.labels", a
 * JSON list of strings), checked against the pipeline's class scores; NULL
 * without error when there are none. */
static char **
stored_labels (const StTensorFile *file, const char *path, StPipeline *p, GError **error)
{
  const char *text = g_hash_table_lookup (file->metadata, "strata.labels");
  if (!text)
    return NULL;
  g_autoptr (JsonParser) parser = json_parser_new_immutable ();
  JsonNode *root = json_parser_load_from_data (parser, text, -1, NULL)
                   ? json_parser_get_root (parser) : NULL;
  JsonArray *list = root && JSON_NODE_HOLDS_ARRAY (root) ? json_node_get_array (root) : NULL;
  guint n = list ? json_array_get_length (list) : 0;
  g_autoptr (GPtrArray) names = g_ptr_array_new_with_free_func (g_free);
  for (guint i = 0; i < n; i++)
    {
      JsonNode *item = json_array_get_element (list, i);
      if (!JSON_NODE_HOLDS_VALUE (item) || json_node_get_value_type (item) != G_TYPE_STRING)
        break;
      g_ptr_array_add (names, g_strdup (json_node_get_string (item)));
    }
  if (!list || n == 0 || names->len != n)
    {
      st_file_error (error, path, "__metadata__: strata.labels is not a list of class names");
      return NULL;
    }
  StShape out = st_pipeline_output_shape (p);
  if (out.h != 1 || out.w != 1 || (int) n != out.c)
    {
      st_file_error (error, path, "__metadata__: strata.labels names %u classes, the pipeline "
                     "%s scores %d", n, st_pipeline_name (p), out.h == 1 && out.w == 1 ? out.c : 0);
      return NULL;
    }
  g_ptr_array_add (names, NULL);
  return (char **) g_ptr_array_free (g_steal_pointer (&names), FALSE);
}

static gboolean
same_dims (const StNamedTensor *t, const StWeight *weight)
{
  if (t->rank != weight->rank)
    return FALSE;
  for (int d = 0; d < t->rank; d++)
    if (t->dims[d] != weight->dims[d])
      return FALSE;
  return st_shape_equal (t->value->shape, weight->value->shape);
}

gboolean
st_weights_check (GPtrArray *weights, const StTensorFile *file, const char *path,
                  const char *extra_prefix, GError **error)
{
  g_autoptr (GHashTable) by_name = g_hash_table_new (g_str_hash, g_str_equal);
  for (guint i = 0; i < weights->len; i++)
    g_hash_table_insert (by_name, ((StWeight *) weights->pdata[i])->full_name, weights->pdata[i]);

  /* The parameters the file lacks: a hint when it has others instead
   * (a renamed stage). */
  GString *missing = g_string_new (NULL);
  const StWeight *first_missing = NULL;
  int n_missing = 0;
  for (guint i = 0; i < weights->len; i++)
    {
      const StWeight *weight = weights->pdata[i];
      if (st_tensor_file_find (file, weight->full_name))
        continue;
      if (!first_missing)
        first_missing = weight;
      if (n_missing < 4)
        g_string_append_printf (missing, "%s'%s'", n_missing ? ", " : "", weight->full_name);
      else if (n_missing == 4)
        g_string_append (missing, ", ...");
      n_missing++;
    }

  gboolean ok = TRUE;
  for (guint i = 0; ok && i < file->tensors->len; i++)
    {
      const StNamedTensor *t = file->tensors->pdata[i];
      if (extra_prefix && g_str_has_prefix (t->name, extra_prefix))
        continue;
      const StWeight *weight = g_hash_table_lookup (by_name, t->name);
      g_autofree char *found = st_format_dims (t->dims, t->rank);
      if (!weight)
        {
          g_autofree char *shown = st_printable (t->name);
          if (n_missing)
            st_file_error (error, path, "tensor '%s' is not a parameter of this "
                           "pipeline (the file lacks %s)", shown, missing->str);
          else
            st_file_error (error, path, "tensor '%s' is not a parameter of this "
                           "pipeline", shown);
          ok = FALSE;
        }
      else if (!same_dims (t, weight))
        {
          g_autofree char *expected = st_format_dims (weight->dims, weight->rank);
          st_file_tensor_error (error, path, t->name, "shape %s in the file, the "
                                "pipeline expects %s", found, expected);
          ok = FALSE;
        }
    }
  if (ok && first_missing)
    {
      g_autofree char *expected = st_format_dims (first_missing->dims, first_missing->rank);
      st_file_tensor_error (error, path, first_missing->full_name, "missing from "
                            "the file (the pipeline expects shape %s)", expected);
      ok = FALSE;
    }
  g_string_free (missing, TRUE);
  return ok;
}

void
st_weights_copy (GPtrArray *weights, const StTensorFile *file)
{
  for (guint i = 0; i < weights->len; i++)
    {
      StWeight *weight = weights->pdata[i];
      const StNamedTensor *t = st_tensor_file_find (file, weight->full_name);
      memcpy (weight->value->data, t->value->data, st_tensor_numel (t->value) * sizeof (float));
    }
}

gboolean
st_pipeline_load_weights (StPipeline *p, const char *path, GError **error)
{
  g_autoptr (StTensorFile) file = st_tensor_file_read (path, error);
  if (!file)
    return FALSE;
  g_autoptr (GPtrArray) weights = st_pipeline_weights (p);
  if (!st_weights_check (weights, file, path, NULL, error)
      || !st_tensor_file_check_finite (file, path, error))
    return FALSE;
  /* The pipeline's own labels= win over the file's. */
  g_auto (GStrv) labels = NULL;
  if (!st_pipeline_labels (p))
    {
      GError *local = NULL;
      labels = stored_labels (file, path, p, &local);
      if (local)
        {
          g_propagate_error (error, local);
          return FALSE;
        }
    }

  /* Everything fits: only now does p change. */
  if (labels)
    st_pipeline_set_labels (p, (const char *const *) labels);
  st_weights_copy (weights, file);
  return TRUE;
}
