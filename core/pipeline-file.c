/* strata — pipeline files: the [pipeline] group, then the stage groups
 * handed to the graph. */
#include "pipeline-private.h"
#include "param.h"

#include <string.h>

static gboolean
parse_input_shape (const char *text, StShape *shape)
{
  g_auto (GStrv) parts = g_strsplit (text, "x", -1);
  if (g_strv_length (parts) != 3)
    return FALSE;
  guint64 v[3];
  for (int i = 0; i < 3; i++)
    if (!g_ascii_string_to_unsigned (g_strstrip (parts[i]), 10, 1, 1 << 20, &v[i], NULL))
      return FALSE;
  *shape = (StShape) { 1, (int) v[0], (int) v[1], (int) v[2] };
  return TRUE;
}

static gboolean
parse_pipeline_group (StPipeline *p, const StKeyGroup *group, GError **error)
{
  static const char *const known[] = { "input", "weights", "labels", "description", NULL };
  const char *const *keys = (const char *const *) group->keys->pdata;
  for (guint i = 0; i < group->keys->len; i++)
    {
      g_autoptr (GError) local = NULL;
      g_autofree char *value = st_key_unescape (group->values->pdata[i], &local);
      if (!value)
        {
          st_pipeline_set_error (error, p, ST_ERROR_PIPELINE,
                                 "group 'pipeline': key '%s': %s", keys[i],
                                 local->message);
          return FALSE;
        }
      g_strstrip (value);
      if (strcmp (keys[i], "input") == 0)
        {
          if (!parse_input_shape (value, &p->input))
            {
              st_pipeline_set_error (error, p, ST_ERROR_PIPELINE,
                                     "group 'pipeline': key 'input': expected channels x height x "
                                     "width "
                                     "such as 1x28x28, found '%s'", value);
              return FALSE;
            }
          p->has_input = TRUE;
        }
      else if (strcmp (keys[i], "weights") == 0)
        p->weights_path = g_path_is_absolute (value) ? g_strdup (value)
                                                     : g_build_filename (p->dir, value, NULL);
      else if (strcmp (keys[i], "description") == 0)
        p->description = g_strdup (value);
      else if (strcmp (keys[i], "labels") == 0)
        {
          if (strchr (value, ';') || strchr (value, ','))
            {
              g_auto (GStrv) items = st_key_split_list (value, ";,");
              GPtrArray *labels = g_ptr_array_new ();
              for (int k = 0; items[k]; k++)
                if (*items[k])
                  g_ptr_array_add (labels, g_strdup (items[k]));
              g_ptr_array_add (labels, NULL);
              p->labels = (char **) g_ptr_array_free (labels, FALSE);
            }
          else
            {
              g_autofree char *path = g_path_is_absolute (value)
                ? g_strdup (value) : g_build_filename (p->dir, value, NULL);
              g_autofree char *contents = NULL;
              g_autoptr (GError) read_error = NULL;
              if (!g_file_get_contents (path, &contents, NULL, &read_error))
                {
                  st_pipeline_set_error (error, p, ST_ERROR_PIPELINE,
                                         "group 'pipeline': key 'labels': expected a list (a;b;c) "
                                         "or a "
                                         "file of labels, found '%s' (%s)",
                                         value, read_error->message);
                  return FALSE;
                }
              g_auto (GStrv) lines = g_strsplit_set (contents, "\n", -1);
              GPtrArray *labels = g_ptr_array_new ();
              for (int k = 0; lines[k]; k++)
                if (*g_strstrip (lines[k]))
                  g_ptr_array_add (labels, g_strdup (lines[k]));
              g_ptr_array_add (labels, NULL);
              p->labels = (char **) g_ptr_array_free (labels, FALSE);
            }
        }
      else
        {
          g_autofree char *near = st_suggest (keys[i], known, 2);
          st_pipeline_set_error (error, p, ST_ERROR_PIPELINE,
                                 "group 'pipeline': unknown key '%s' (%s%s%s)", keys[i],
                                 near ? "did you mean "
                                      : "expected one of input, weights, labels, description",
                                 near ? near : "", near ? "?" : "");
          return FALSE;
        }
    }
  return TRUE;
}

StPipeline *
st_pipeline_load_text (StRegistry *reg, const char *text, const char *display_name,
                       const char *dir, GError **error)
{
  /* Editors on Windows start UTF-8 files with a byte-order mark, which
   * would read as part of the first line. */
  if (g_str_has_prefix (text, "\xEF\xBB\xBF"))
    text += 3;
  g_autoptr (StPipeline) p = g_new0 (StPipeline, 1);
  p->reg = reg;
  p->name = g_strdup (display_name);
  p->source = g_strdup (text);
  p->dir = g_strdup (dir);

  if (!g_utf8_validate (text, -1, NULL))
    {
      st_pipeline_set_error (error, p, ST_ERROR_PIPELINE, "not a pipeline file (not UTF-8 text)");
      return NULL;
    }
  g_auto (StKeyText) parsed = { NULL, NULL };
  if (!st_key_text_parse (p->name, text, &parsed, error))
    return NULL;
  for (guint g = 0; g < parsed.groups->len; g++)
    {
      const StKeyGroup *group = parsed.groups->pdata[g];
      if (strcmp (group->name, "pipeline") == 0 && !parse_pipeline_group (p, group, error))
        return NULL;
    }
  if (!st_pipeline_build_graph (p, parsed.groups, error))
    return NULL;
  return g_steal_pointer (&p);
}

StPipeline *
st_pipeline_load_data (StRegistry *reg, const char *data, const char *display_name,
                       GError **error)
{
  g_autofree char *cwd = g_get_current_dir ();
  return st_pipeline_load_text (reg, data, display_name, cwd, error);
}

StPipeline *
st_pipeline_load_file (StRegistry *reg, const char *path, GError **error)
{
  g_autofree char *text = NULL;
  gsize length = 0;
  g_autoptr (GError) local = NULL;
  if (!g_file_get_contents (path, &text, &length, &local))
    {
      g_set_error (error, ST_ERROR, ST_ERROR_PIPELINE, "%s: cannot read pipeline file: %s",
                   path, local->message);
      return NULL;
    }
  /* A NUL would silently end the text early. */
  if (!g_utf8_validate_len (text, length, NULL) || strlen (text) != length)
    {
      g_set_error (error, ST_ERROR, ST_ERROR_PIPELINE,
                   "%s: not a pipeline file (not UTF-8 text, or it holds a NUL byte)", path);
      return NULL;
    }
  g_autofree char *dir = g_path_get_dirname (path);
  return st_pipeline_load_text (reg, text, path, dir, error);
}
