/* strata — PIPELINE as the command line takes it: a file, an installed
 * pipeline's name, or an inline chain. */
#include "pipeline-private.h"
#include "config.h"

#include <string.h>

/* "grayscale ! kernel preset=emboss" becomes the key file it stands for,
 * so that one parser and one set of checks serve both forms. */
StPipeline *
st_pipeline_load_inline (StRegistry *reg, const char *chain, GError **error)
{
  g_auto (GStrv) parts = g_strsplit_set (chain, "!", -1);
  g_autoptr (GString) ini = g_string_new (NULL);
  g_autoptr (GHashTable) counts = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, NULL);
  for (int i = 0; parts[i]; i++)
    {
      g_auto (GStrv) split = g_strsplit_set (parts[i], " \t\n\r\v\f", -1);
      g_autoptr (GPtrArray) words = g_ptr_array_new ();
      for (int k = 0; split[k]; k++)
        if (*split[k])
          g_ptr_array_add (words, split[k]);
      g_ptr_array_add (words, NULL);
      char **tokens = (char **) words->pdata;
      if (!tokens[0])
        {
          g_set_error (error, ST_ERROR, ST_ERROR_PIPELINE,
                       "inline pipeline: stage %d is empty (expected 'kind key=value ...' "
                       "between '!')", i + 1);
          return NULL;
        }
      const char *kind = tokens[0];
      if (strchr (kind, '=') || strchr (kind, '[') || strchr (kind, ']'))
        {
          g_set_error (error, ST_ERROR, ST_ERROR_PIPELINE,
                       "inline pipeline: stage %d: expected a stage kind first, found '%s'",
                       i + 1, kind);
          return NULL;
        }
      int count = GPOINTER_TO_INT (g_hash_table_lookup (counts, kind)) + 1;
      g_hash_table_insert (counts, g_strdup (kind), GINT_TO_POINTER (count));
      if (count == 1)
        g_string_append_printf (ini, "[%s]\ntype=%s\n", kind, kind);
      else
        g_string_append_printf (ini, "[%s%d]\ntype=%s\n", kind, count, kind);
      for (int k = 1; tokens[k]; k++)
        {
          if (!strchr (tokens[k], '=') || tokens[k][0] == '=')
            {
              g_set_error (error, ST_ERROR, ST_ERROR_PIPELINE,
                           "inline pipeline: stage %d (%s): expected key=value, found '%s'",
                           i + 1, kind, tokens[k]);
              return NULL;
            }
          g_string_append_printf (ini, "%s\n", tokens[k]);
        }
    }
  g_autofree char *cwd = g_get_current_dir ();
  return st_pipeline_load_text (reg, ini->str, "inline pipeline", cwd, error);
}

/* Installed pipelines: STRATA_PIPELINE_PATH, then the source tree when
 * running from the build tree, then the installed data directory. */
char *
st_pipeline_find_named (const char *name)
{
  g_autoptr (GPtrArray) dirs = g_ptr_array_new_with_free_func (g_free);
  const char *env = g_getenv ("STRATA_PIPELINE_PATH");
  if (env)
    {
      g_auto (GStrv) parts = g_strsplit (env, G_SEARCHPATH_SEPARATOR_S, -1);
      for (int i = 0; parts[i]; i++)
        if (*parts[i])
          g_ptr_array_add (dirs, g_strdup (parts[i]));
    }
  g_autofree char *exe = g_file_read_link ("/proc/self/exe", NULL);
  if (exe && g_str_has_prefix (exe, ST_BUILD_ROOT "/"))
    g_ptr_array_add (dirs, g_strdup (ST_SOURCE_ROOT "/pipelines"));
  else
    g_ptr_array_add (dirs, g_strdup (ST_PIPELINE_DIR));
  for (guint i = 0; i < dirs->len; i++)
    {
      g_autofree char *file = g_strconcat (name, ".ini", NULL);
      char *path = g_build_filename (dirs->pdata[i], file, NULL);
      if (g_file_test (path, G_FILE_TEST_IS_REGULAR))
        return path;
      g_free (path);
    }
  return NULL;
}

StPipeline *
st_pipeline_load (StRegistry *reg, const char *spec, GError **error)
{
  if (g_file_test (spec, G_FILE_TEST_IS_REGULAR))
    return st_pipeline_load_file (reg, spec, error);
  if (strchr (spec, '!') || strchr (spec, '=') || strchr (spec, ' '))
    return st_pipeline_load_inline (reg, spec, error);
  if (strchr (spec, '/') || g_str_has_suffix (spec, ".ini"))
    {
      g_set_error (error, ST_ERROR, ST_ERROR_PIPELINE, "%s: no such pipeline file", spec);
      return NULL;
    }
  g_autofree char *path = st_pipeline_find_named (spec);
  if (path)
    return st_pipeline_load_file (reg, path, error);
  if (st_registry_lookup (reg, spec))
    return st_pipeline_load_inline (reg, spec, error);
  const char *refusal = st_registry_refusal (reg, spec);
  if (refusal)
    {
      g_set_error (error, ST_ERROR, ST_ERROR_PLUGIN,
                   "%s: no pipeline file or installed pipeline of that name, and the plugin "
                   "that provides the stage kind was not loaded: %s", spec, refusal);
      return NULL;
    }
  g_autofree char *near = st_registry_suggest (reg, spec);
  g_set_error (error, ST_ERROR, ST_ERROR_PIPELINE,
               "%s: no pipeline file, installed pipeline or stage kind of that name%s%s%s",
               spec, near ? " (did you mean " : "", near ? near : "", near ? "?)" : "");
  return NULL;
}
