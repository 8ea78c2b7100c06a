/* strata — pipeline files: each file's [pipeline] group, the chain of
 * files that include one another, and the stage groups of all of them
 * handed to the graph. */
#include "pipeline-private.h"
#include "param.h"
#include "textfile.h"

#include <errno.h>
#include <glib/gstdio.h>
#include <string.h>

/* An include chain longer than this is surely a mistake (and would
 * otherwise only end when the files or the stack run out). */
#define MAX_INCLUDE_DEPTH 16
/* Far above any real file (a 5 MB pipeline of 91,000 stages loads in under
 * a second), far below what would strain memory. */
#define MAX_PIPELINE_FILE_BYTES (64u << 20)
#define MAX_LABELS_FILE_BYTES (16u << 20)

/* What one file's [pipeline] group says, its paths resolved against the
 * file's folder. */
typedef struct {
  char *description;
  gboolean has_input;
  StShape input;
  char **labels;
  char *weights_path;
  char *include;
} Settings;

/* One file of the chain: the outermost is the pipeline's own, each next
 * one the file its predecessor includes. */
typedef struct {
  const char *name;            /* owned by the pipeline's files */
  char *dir;
  gboolean has_id;             /* read from disk: dev and ino say which file */
  dev_t dev;
  ino_t ino;
  StKeyText text;
  Settings settings;
  int n_stages;                /* its own stage groups */
} ChainFile;

static void
chain_file_free (gpointer data)
{
  ChainFile *f = data;
  g_free (f->dir);
  st_key_text_clear (&f->text);
  g_free (f->settings.description);
  g_strfreev (f->settings.labels);
  g_free (f->settings.weights_path);
  g_free (f->settings.include);
  g_free (f);
}

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

static char *
resolve_path (const ChainFile *f, const char *value)
{
  return g_path_is_absolute (value) ? g_strdup (value) : g_build_filename (f->dir, value, NULL);
}

/* labels=: a list (a;b;c), or a file with one label a line. */
static char **
parse_labels (const ChainFile *f, const char *value, GError **error)
{
  g_auto (GStrv) items = NULL;
  if (strchr (value, ';') || strchr (value, ','))
    items = st_key_split_list (value, ";,");
  else
    {
      g_autofree char *path = resolve_path (f, value);
      g_autoptr (GError) read_error = NULL;
      g_autofree char *contents = st_text_file_read (path, MAX_LABELS_FILE_BYTES, NULL,
                                                      &read_error);
      if (!contents)
        {
          st_pipeline_set_file_error (error, f->name, ST_ERROR_PIPELINE,
                                      "group 'pipeline': key 'labels': expected a list (a;b;c) "
                                      "or a file of labels, found '%s' (%s)",
                                      value, read_error->message);
          return NULL;
        }
      items = g_strsplit_set (contents, "\n", -1);
    }
  GPtrArray *labels = g_ptr_array_new ();
  for (int k = 0; items[k]; k++)
    if (*g_strstrip (items[k]))
      g_ptr_array_add (labels, g_strdup (items[k]));
  g_ptr_array_add (labels, NULL);
  return (char **) g_ptr_array_free (labels, FALSE);
}

static gboolean
parse_setting (ChainFile *f, const char *key, const char *value, GError **error)
{
  static const char *const known[] = { "input", "weights", "labels", "description", "include",
                                       NULL };
  Settings *s = &f->settings;
  if (strcmp (key, "input") == 0)
    {
      if (!parse_input_shape (value, &s->input))
        {
          st_pipeline_set_file_error (error, f->name, ST_ERROR_PIPELINE,
                                      "group 'pipeline': key 'input': expected channels x "
                                      "height x width such as 1x28x28, found '%s'", value);
          return FALSE;
        }
      s->has_input = TRUE;
    }
  else if (strcmp (key, "weights") == 0)
    s->weights_path = resolve_path (f, value);
  else if (strcmp (key, "description") == 0)
    s->description = g_strdup (value);
  else if (strcmp (key, "include") == 0)
    /* Errors name the file as a user would: "net.ini", not "./net.ini". */
    s->include = strcmp (f->dir, ".") == 0 ? g_strdup (value) : resolve_path (f, value);
  else if (strcmp (key, "labels") == 0)
    return (s->labels = parse_labels (f, value, error)) != NULL;
  else
    {
      g_autofree char *near = st_suggest (key, known, 2);
      st_pipeline_set_file_error (error, f->name, ST_ERROR_PIPELINE,
                                  "group 'pipeline': unknown key '%s' (%s%s%s)", key,
                                  near ? "did you mean "
                                       : "expected one of input, weights, labels, description, "
                                         "include",
                                  near ? near : "", near ? "?" : "");
      return FALSE;
    }
  return TRUE;
}

static gboolean
parse_settings (ChainFile *f, const StKeyGroup *group, GError **error)
{
  const char *const *keys = (const char *const *) group->keys->pdata;
  for (guint i = 0; i < group->keys->len; i++)
    {
      g_autoptr (GError) local = NULL;
      g_autofree char *value = st_key_unescape (group->values->pdata[i], &local);
      if (!value)
        {
          st_pipeline_set_file_error (error, f->name, ST_ERROR_PIPELINE,
                                      "group 'pipeline': key '%s': %s", keys[i], local->message);
          return FALSE;
        }
      if (!parse_setting (f, keys[i], g_strstrip (value), error))
        return FALSE;
    }
  return TRUE;
}

/* A file's text as the graph needs it: UTF-8 with no NUL, which would
 * silently end the text early. */
static char *
read_pipeline_file (const char *path, GError **error)
{
  gsize length = 0;
  g_autoptr (GError) local = NULL;
  g_autofree char *text = st_text_file_read (path, MAX_PIPELINE_FILE_BYTES, &length, &local);
  if (!text)
    {
      g_set_error (error, ST_ERROR, ST_ERROR_PIPELINE, "cannot read pipeline file: %s",
                   local->message);
      return NULL;
    }
  if (!g_utf8_validate_len (text, length, NULL) || strlen (text) != length)
    {
      g_set_error (error, ST_ERROR, ST_ERROR_PIPELINE,
                   "not a pipeline file (not UTF-8 text, or it holds a NUL byte)");
      return NULL;
    }
  return g_steal_pointer (&text);
}

/* Reads one file of the chain from its text: the syntax, then the
 * [pipeline] group.  Editors on Windows start UTF-8 files with a
 * byte-order mark, which would read as part of the first line. */
static gboolean
read_chain_file (ChainFile *f, const char *text, GError **error)
{
  if (g_str_has_prefix (text, "\xEF\xBB\xBF"))
    text += 3;
  if (!g_utf8_validate (text, -1, NULL))
    {
      st_pipeline_set_file_error (error, f->name, ST_ERROR_PIPELINE,
                                  "not a pipeline file (not UTF-8 text)");
      return FALSE;
    }
  if (!st_key_text_parse (f->name, text, &f->text, error))
    return FALSE;
  for (guint g = 0; g < f->text.groups->len; g++)
    {
      const StKeyGroup *group = f->text.groups->pdata[g];
      if (strcmp (group->name, "pipeline") == 0)
        {
          if (!parse_settings (f, group, error))
            return FALSE;
        }
      else
        f->n_stages++;
    }
  return TRUE;
}

/* "a.ini -> b.ini -> c.ini": the chain so far, then next. */
static char *
format_chain (GPtrArray *chain, const char *next)
{
  GString *text = g_string_new (NULL);
  for (guint i = 0; i < chain->len; i++)
    g_string_append_printf (text, "%s -> ", ((ChainFile *) chain->pdata[i])->name);
  g_string_append (text, next);
  return g_string_free (text, FALSE);
}

/* The file the chain's last file includes, read and appended; its name
 * is kept in files.  A file already in the chain, a chain too deep or a
 * file that cannot be read is an error naming the including file. */
static gboolean
read_included (GPtrArray *chain, GPtrArray *files, GError **error)
{
  const ChainFile *from = chain->pdata[chain->len - 1];
  const char *path = from->settings.include;
  g_autofree char *trail = format_chain (chain, path);
  if (chain->len >= MAX_INCLUDE_DEPTH)
    {
      st_pipeline_set_file_error (error, from->name, ST_ERROR_PIPELINE,
                                  "group 'pipeline': key 'include': more than %d files include "
                                  "one another (%s)", MAX_INCLUDE_DEPTH, trail);
      return FALSE;
    }
  GStatBuf st;
  if (g_stat (path, &st) != 0)
    {
      const int saved = errno;
      st_pipeline_set_file_error (error, from->name, ST_ERROR_PIPELINE,
                                  "group 'pipeline': key 'include': cannot read %s: %s", path,
                                  g_strerror (saved));
      return FALSE;
    }
  for (guint i = 0; i < chain->len; i++)
    {
      const ChainFile *seen = chain->pdata[i];
      if (seen->has_id && seen->dev == st.st_dev && seen->ino == st.st_ino)
        {
          st_pipeline_set_file_error (error, from->name, ST_ERROR_PIPELINE,
                                      "group 'pipeline': key 'include': %s includes itself "
                                      "(%s)", seen->name, trail);
          return FALSE;
        }
    }
  g_autoptr (GError) local = NULL;
  g_autofree char *text = read_pipeline_file (path, &local);
  if (!text)
    {
      st_pipeline_set_file_error (error, from->name, ST_ERROR_PIPELINE,
                                  "group 'pipeline': key 'include': %s: %s", path,
                                  local->message);
      return FALSE;
    }
  ChainFile *f = g_new0 (ChainFile, 1);
  g_ptr_array_add (files, g_strdup (path));
  f->name = files->pdata[files->len - 1];
  f->dir = g_path_get_dirname (path);
  f->has_id = TRUE;
  f->dev = st.st_dev;
  f->ino = st.st_ino;
  g_ptr_array_add (chain, f);
  return read_chain_file (f, text, error);
}

static gboolean
same_file (const char *a, const char *b)
{
  g_autofree char *ca = g_canonicalize_filename (a, NULL);
  g_autofree char *cb = g_canonicalize_filename (b, NULL);
  return strcmp (ca, cb) == 0;
}

static gboolean
same_labels (char **a, char **b)
{
  return g_strv_equal ((const char *const *) a, (const char *const *) b);
}

/* A [pipeline] key given by two files of the chain with two values:
 * FALSE, with the error. */
static gboolean
set_conflict_error (GError **error, const ChainFile *f, const char *key, const char *other)
{
  st_pipeline_set_file_error (error, f->name, ST_ERROR_PIPELINE,
                              "group 'pipeline': key '%s': %s, which includes this file, gives "
                              "another value (give it in one of the two)", key, other);
  return FALSE;
}

/* The whole pipeline's settings: a key given by an included file holds
 * for the whole unless an including file gives it too, with another
 * value, which is an error naming both.  description is the outermost
 * file's that has one.  input= of an included file is the shape its
 * first stages take: the pipeline's input when no file before it has
 * stages, otherwise what the last of those stages must make (checked by
 * the graph). */
static gboolean
merge_settings (StPipeline *p, GPtrArray *chain, GError **error)
{
  const char *weights_from = NULL, *labels_from = NULL, *input_from = NULL;
  int stages_before = 0;
  for (guint i = 0; i < chain->len; i++)
    {
      ChainFile *f = chain->pdata[i];
      Settings *s = &f->settings;
      if (!p->description && s->description)
        p->description = g_strdup (s->description);
      if (s->weights_path && weights_from && !same_file (s->weights_path, p->weights_path))
        return set_conflict_error (error, f, "weights", weights_from);
      if (s->weights_path && !weights_from)
        {
          p->weights_path = g_strdup (s->weights_path);
          weights_from = f->name;
        }
      if (s->labels && labels_from && !same_labels (s->labels, p->labels))
        return set_conflict_error (error, f, "labels", labels_from);
      if (s->labels && !labels_from)
        {
          p->labels = g_strdupv (s->labels);
          labels_from = f->name;
        }
      if (s->has_input && stages_before == 0)
        {
          if (input_from && !st_shape_equal (s->input, p->input))
            return set_conflict_error (error, f, "input", input_from);
          p->has_input = TRUE;
          p->input = s->input;
          input_from = f->name;
        }
      stages_before += f->n_stages;
    }
  return TRUE;
}

/* Every file's stage groups, outermost file first, with what "image"
 * stands for in each.  Stage names are unique across the files: the
 * weights are named after them. */
static gboolean
collect_stage_groups (GPtrArray *chain, GArray *stages, GError **error)
{
  /* Stage name -> place in stages. */
  g_autoptr (GHashTable) seen = g_hash_table_new (g_str_hash, g_str_equal);
  const char *image = NULL;
  for (guint i = 0; i < chain->len; i++)
    {
      const ChainFile *f = chain->pdata[i];
      const char *last = NULL;
      for (guint g = 0; g < f->text.groups->len; g++)
        {
          const StKeyGroup *group = f->text.groups->pdata[g];
          if (strcmp (group->name, "pipeline") == 0)
            continue;
          gpointer found;
          if (g_hash_table_lookup_extended (seen, group->name, NULL, &found))
            {
              const StStageGroup *other = &g_array_index (stages, StStageGroup,
                                                          GPOINTER_TO_INT (found));
              st_pipeline_set_file_error (error, f->name, ST_ERROR_PIPELINE,
                                          "stage '%s': %s has a stage of that name (line %d); "
                                          "stage names are unique across included files",
                                          group->name, other->file, other->group->line);
              return FALSE;
            }
          g_hash_table_insert (seen, (char *) group->name, GINT_TO_POINTER (stages->len));
          StStageGroup sg = { group, f->name, (int) i, image,
                              image && f->settings.has_input, f->settings.input };
          g_array_append_val (stages, sg);
          last = group->name;
        }
      if (last)
        image = last;
    }
  return TRUE;
}

static StPipeline *
load_text (StRegistry *reg, const char *text, const char *display_name, const char *dir,
           gboolean from_file, GError **error)
{
  g_autoptr (StPipeline) p = g_new0 (StPipeline, 1);
  p->reg = reg;
  p->name = g_strdup (display_name);
  p->source = g_strdup (text);
  p->dir = g_strdup (dir);
  p->from_file = from_file;
  p->files = g_ptr_array_new_with_free_func (g_free);

  g_autoptr (GPtrArray) chain = g_ptr_array_new_with_free_func (chain_file_free);
  ChainFile *top = g_new0 (ChainFile, 1);
  top->name = p->name;
  top->dir = g_strdup (dir);
  GStatBuf st;
  if (from_file && g_stat (display_name, &st) == 0)
    {
      top->has_id = TRUE;
      top->dev = st.st_dev;
      top->ino = st.st_ino;
    }
  g_ptr_array_add (chain, top);
  if (!read_chain_file (top, text, error))
    return NULL;
  while (((ChainFile *) chain->pdata[chain->len - 1])->settings.include)
    if (!read_included (chain, p->files, error))
      return NULL;
  if (!merge_settings (p, chain, error))
    return NULL;
  g_autoptr (GArray) stages = g_array_new (FALSE, FALSE, sizeof (StStageGroup));
  if (!collect_stage_groups (chain, stages, error)
      || !st_pipeline_build_graph (p, stages, error))
    return NULL;
  return g_steal_pointer (&p);
}

StPipeline *
st_pipeline_load_text (StRegistry *reg, const char *text, const char *display_name,
                       const char *dir, GError **error)
{
  return load_text (reg, text, display_name, dir, FALSE, error);
}

StPipeline *
st_pipeline_reload (const StPipeline *p, GError **error)
{
  return load_text (p->reg, p->source, p->name, p->dir, p->from_file, error);
}

StPipeline *
st_pipeline_load_data (StRegistry *reg, const char *data, const char *display_name,
                       GError **error)
{
  g_autofree char *cwd = g_get_current_dir ();
  return load_text (reg, data, display_name, cwd, FALSE, error);
}

StPipeline *
st_pipeline_load_file (StRegistry *reg, const char *path, GError **error)
{
  g_autoptr (GError) local = NULL;
  g_autofree char *text = read_pipeline_file (path, &local);
  if (!text)
    {
      g_set_error (error, ST_ERROR, ST_ERROR_PIPELINE, "%s: %s", path, local->message);
      return NULL;
    }
  g_autofree char *dir = g_path_get_dirname (path);
  return load_text (reg, text, path, dir, TRUE, error);
}
