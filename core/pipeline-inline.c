/* strata — PIPELINE as the command line takes it: a file, an installed
 * pipeline's name, or an inline chain; and the installed pipeline to
 * suggest when a fixed-input network is handed another shape. */
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

/* Where installed pipelines are: STRATA_PIPELINE_PATH, then the source
 * tree when running from the build tree, then the installed data
 * directory. */
static GPtrArray *
pipeline_search_dirs (void)
{
  GPtrArray *dirs = g_ptr_array_new_with_free_func (g_free);
  const char *env = g_getenv ("STRATA_PIPELINE_PATH");
  if (env)
    {
      g_auto (GStrv) parts = g_strsplit (env, G_SEARCHPATH_SEPARATOR_S, -1);
      for (int i = 0; parts[i]; i++)
        if (*parts[i])
          g_ptr_array_add (dirs, g_strdup (parts[i]));
    }
  if (st_running_from_build_tree ())
    g_ptr_array_add (dirs, g_strdup (ST_SOURCE_ROOT "/pipelines"));
  else
    g_ptr_array_add (dirs, g_strdup (ST_PIPELINE_DIR));
  return dirs;
}

static char *
find_named_pipeline (const char *name)
{
  g_autoptr (GPtrArray) dirs = pipeline_search_dirs ();
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

static gint
compare_names (gconstpointer a, gconstpointer b)
{
  return strcmp (*(char *const *) a, *(char *const *) b);
}

GPtrArray *
st_pipeline_installed_names (void)
{
  g_autoptr (GPtrArray) dirs = pipeline_search_dirs ();
  g_autoptr (GHashTable) seen = g_hash_table_new (g_str_hash, g_str_equal);
  GPtrArray *names = g_ptr_array_new_with_free_func (g_free);
  for (guint i = 0; i < dirs->len; i++)
    {
      g_autoptr (GDir) d = g_dir_open (dirs->pdata[i], 0, NULL);
      const char *file;
      while (d && (file = g_dir_read_name (d)))
        {
          if (!g_str_has_suffix (file, ".ini") || strlen (file) == 4)
            continue;
          g_autofree char *path = g_build_filename (dirs->pdata[i], file, NULL);
          char *name = g_strndup (file, strlen (file) - 4);
          if (!g_file_test (path, G_FILE_TEST_IS_REGULAR) || g_hash_table_contains (seen, name))
            {
              g_free (name);
              continue;
            }
          g_hash_table_add (seen, name);
          g_ptr_array_add (names, name);
        }
    }
  g_ptr_array_sort (names, compare_names);
  return names;
}

char *
st_pipeline_find_installed (const char *name)
{
  return find_named_pipeline (name);
}

/* "; installed pipelines: blur, sharpen" for an error, or "". */
static char *
installed_pipelines_note (void)
{
  g_autoptr (GPtrArray) names = st_pipeline_installed_names ();
  if (names->len == 0)
    return g_strdup ("");
  g_ptr_array_add (names, NULL);
  g_autofree char *list = g_strjoinv (", ", (char **) names->pdata);
  return g_strdup_printf ("; installed pipelines: %s ('strata pipelines' describes them)", list);
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
  g_autofree char *path = find_named_pipeline (spec);
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
  g_autofree char *installed = installed_pipelines_note ();
  g_set_error (error, ST_ERROR, ST_ERROR_PIPELINE,
               "%s: no pipeline file, installed pipeline or stage kind of that name%s%s%s%s",
               spec, near ? " (did you mean " : "", near ? near : "", near ? "?)" : "",
               installed);
  return NULL;
}

/* The same network behind preparation stages, when the pipeline file has
 * one beside it or installed as NAME-photo: a name to suggest, or NULL. */
static char *
find_photo_variant (const StPipeline *p)
{
  if (!g_str_has_suffix (p->name, ".ini"))
    return NULL;
  g_autofree char *base = g_path_get_basename (p->name);
  base[strlen (base) - 4] = '\0';
  g_autofree char *name = g_strconcat (base, "-photo", NULL);
  g_autofree char *installed = find_named_pipeline (name);
  if (installed)
    return g_steal_pointer (&name);
  g_autofree char *file = g_strconcat (name, ".ini", NULL);
  char *beside = g_build_filename (p->dir, file, NULL);
  if (g_file_test (beside, G_FILE_TEST_IS_REGULAR))
    return beside;
  g_free (beside);
  return NULL;
}

/* What a user who hands a fixed-input network an ordinary photo needs to
 * hear: both shapes and a way out, rather than a stage's complaint about
 * its parameters' shapes. */
void
st_pipeline_set_fixed_input_error (StPipeline *p, StShape input, GError **error)
{
  const StShape want = p->input;
  g_autofree char *variant = find_photo_variant (p);
  /* What must change, in words: the core names no stage kind. */
  GString *how = g_string_new (NULL);
  if (input.c != want.c)
    g_string_append_printf (how, "%d channel%s instead of %d", want.c, want.c == 1 ? "" : "s",
                            input.c);
  if (input.h != want.h || input.w != want.w)
    g_string_append_printf (how, "%s%dx%d pixels instead of %dx%d", how->len ? "; " : "",
                            want.h, want.w, input.h, input.w);
  g_autofree char *change = g_string_free (how, FALSE);
  st_pipeline_set_error (error, p, ST_ERROR_SHAPE,
                         "the pipeline takes %dx%dx%d, the image is %dx%dx%d: %s%s%sput stages "
                         "that make it %dx%dx%d before the first one%s%s%s",
                         want.c, want.h, want.w, input.c, input.h, input.w,
                         variant ? "use the pipeline " : "", variant ? variant : "",
                         variant ? ", which takes any image, or " : "",
                         want.c, want.h, want.w,
                         *change ? " (" : "", change, *change ? ")" : "");
}
