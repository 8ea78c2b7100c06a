/* strata — pipeline files, inline chains, and the stage graph. */
#include "pipeline.h"
#include "stage.h"
#include "param.h"
#include "config.h"

#include <string.h>

#define IMAGE_INPUT (-1)

typedef struct {
  StStage *stage;
  char **input_names;          /* as written, or the defaults filled in */
  int *inputs;                 /* node index in run order, or IMAGE_INPUT */
  int n_inputs;
  int last_use;                /* last node that reads this one's output */
} Node;

struct _StPipeline {
  StRegistry *reg;
  char *name;                  /* file path, or "inline pipeline" */
  char *source;                /* the key file text, to make copies */
  char *dir;                   /* where relative paths in the file start */
  char *description;
  gboolean has_input;
  StShape input;
  char **labels;
  char *weights_path;
  GPtrArray *nodes;            /* Node*, in run order */
  gboolean prepared;
  StShape prepared_shape;
  StTensor **acts;             /* per node, kept for backward */
  StTensor *acts_input;        /* the input of the last forward that kept them */
  int range_first, range_last; /* the stages that forward ran */
};

static void
node_free (gpointer p)
{
  Node *node = p;
  st_stage_free (node->stage);
  g_strfreev (node->input_names);
  g_free (node->inputs);
  g_free (node);
}

static void
clear_activations (StPipeline *p)
{
  g_clear_pointer (&p->acts_input, st_tensor_free);
  for (guint i = 0; p->acts && i < p->nodes->len; i++)
    g_clear_pointer (&p->acts[i], st_tensor_free);
}

void
st_pipeline_free (StPipeline *p)
{
  if (!p)
    return;
  clear_activations (p);
  g_free (p->acts);
  if (p->nodes)
    g_ptr_array_unref (p->nodes);
  g_free (p->name);
  g_free (p->source);
  g_free (p->dir);
  g_free (p->description);
  g_strfreev (p->labels);
  g_free (p->weights_path);
  g_free (p);
}

G_DEFINE_AUTOPTR_CLEANUP_FUNC (StPipeline, st_pipeline_free)

static void
set_error (GError **error, StPipeline *p, int code, const char *fmt, ...) G_GNUC_PRINTF (4, 5);

static void
set_error (GError **error, StPipeline *p, int code, const char *fmt, ...)
{
  va_list ap;
  va_start (ap, fmt);
  g_autofree char *msg = g_strdup_vprintf (fmt, ap);
  va_end (ap);
  g_set_error (error, ST_ERROR, code, "%s: %s", p->name, msg);
}

/* GKeyFile merges repeated groups and keeps the last of repeated keys
 * without a word; a pipeline file with either is almost surely a mistake. */
static gboolean
check_duplicates (StPipeline *p, const char *text, GError **error)
{
  g_auto (GStrv) lines = g_strsplit (text, "\n", -1);
  g_autoptr (GHashTable) groups = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, NULL);
  g_autoptr (GHashTable) keys = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, NULL);
  g_autofree char *group = NULL;
  for (int i = 0; lines[i]; i++)
    {
      char *line = g_strstrip (lines[i]);
      if (*line == '#' || *line == '\0')
        continue;
      if (*line == '[')
        {
          char *end = strrchr (line, ']');
          if (!end)
            continue;  /* GKeyFile reports it */
          g_free (group);
          group = g_strndup (line + 1, end - line - 1);
          int first = GPOINTER_TO_INT (g_hash_table_lookup (groups, group));
          if (first)
            {
              set_error (error, p, ST_ERROR_PIPELINE,
                         "stage '%s': duplicate stage name (line %d repeats line %d)",
                         group, i + 1, first);
              return FALSE;
            }
          g_hash_table_insert (groups, g_strdup (group), GINT_TO_POINTER (i + 1));
          g_hash_table_remove_all (keys);
          continue;
        }
      char *eq = strchr (line, '=');
      if (!eq || !group)
        continue;
      g_autofree char *key = g_strstrip (g_strndup (line, eq - line));
      int first = GPOINTER_TO_INT (g_hash_table_lookup (keys, key));
      if (first)
        {
          set_error (error, p, ST_ERROR_PIPELINE,
                     "stage '%s': key '%s' given twice (lines %d and %d)",
                     group, key, first, i + 1);
          return FALSE;
        }
      g_hash_table_insert (keys, g_strdup (key), GINT_TO_POINTER (i + 1));
    }
  return TRUE;
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

static gboolean
parse_pipeline_group (StPipeline *p, GKeyFile *kf, GError **error)
{
  static const char *const known[] = { "input", "weights", "labels", "description", NULL };
  g_auto (GStrv) keys = g_key_file_get_keys (kf, "pipeline", NULL, NULL);
  for (int i = 0; keys && keys[i]; i++)
    {
      g_autofree char *value = g_key_file_get_string (kf, "pipeline", keys[i], NULL);
      if (!value)
        value = g_strdup ("");
      g_strstrip (value);
      if (strcmp (keys[i], "input") == 0)
        {
          if (!parse_input_shape (value, &p->input))
            {
              set_error (error, p, ST_ERROR_PIPELINE,
                         "group 'pipeline': key 'input': expected channels x height x width "
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
              g_auto (GStrv) items = g_regex_split_simple ("\\s*[;,]\\s*", value, 0, 0);
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
              g_autoptr (GError) local = NULL;
              if (!g_file_get_contents (path, &contents, NULL, &local))
                {
                  set_error (error, p, ST_ERROR_PIPELINE,
                             "group 'pipeline': key 'labels': expected a list (a;b;c) or a "
                             "file of labels, found '%s' (%s)", value, local->message);
                  return FALSE;
                }
              g_auto (GStrv) lines = g_strsplit (contents, "\n", -1);
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
          set_error (error, p, ST_ERROR_PIPELINE,
                     "group 'pipeline': unknown key '%s' (%s%s%s)", keys[i],
                     near ? "did you mean " : "expected one of input, weights, labels, description",
                     near ? near : "", near ? "?" : "");
          return FALSE;
        }
    }
  return TRUE;
}

static int
find_node (StPipeline *p, GPtrArray *nodes, const char *name)
{
  for (guint i = 0; i < nodes->len; i++)
    if (strcmp (((Node *) nodes->pdata[i])->stage->name, name) == 0)
      return (int) i;
  return -2;
}

/* Depth-first topological sort; a node met again while on the stack closes
 * a cycle, which is reported as the path around it. */
static gboolean
visit (StPipeline *p, GPtrArray *file_order, int i, int *state, GArray *stack,
       GPtrArray *sorted, GError **error)
{
  if (state[i] == 2)
    return TRUE;
  Node *node = file_order->pdata[i];
  if (state[i] == 1)
    {
      GString *path = g_string_new (NULL);
      gboolean on = FALSE;
      for (guint k = 0; k < stack->len; k++)
        {
          int s = g_array_index (stack, int, k);
          on = on || s == i;
          if (on)
            g_string_append_printf (path, "%s -> ", ((Node *) file_order->pdata[s])->stage->name);
        }
      g_string_append (path, node->stage->name);
      set_error (error, p, ST_ERROR_PIPELINE, "stage '%s': key 'input': the inputs form a cycle: %s",
                 node->stage->name, path->str);
      g_string_free (path, TRUE);
      return FALSE;
    }
  state[i] = 1;
  g_array_append_val (stack, i);
  for (int k = 0; k < node->n_inputs; k++)
    if (node->inputs[k] != IMAGE_INPUT
        && !visit (p, file_order, node->inputs[k], state, stack, sorted, error))
      return FALSE;
  g_array_set_size (stack, stack->len - 1);
  state[i] = 2;
  g_ptr_array_add (sorted, node);
  return TRUE;
}

static gboolean
build_stages (StPipeline *p, GKeyFile *kf, GError **error)
{
  gsize n_groups = 0;
  g_auto (GStrv) groups = g_key_file_get_groups (kf, &n_groups);
  g_autoptr (GPtrArray) file_order = g_ptr_array_new_with_free_func (node_free);

  for (gsize g = 0; g < n_groups; g++)
    {
      const char *name = groups[g];
      if (strcmp (name, "pipeline") == 0)
        continue;
      if (strcmp (name, "image") == 0 || !*name || strchr (name, ',') || strchr (name, '.'))
        {
          set_error (error, p, ST_ERROR_PIPELINE,
                     "stage '%s': invalid stage name (expected a name other than 'image', "
                     "without ',' or '.')", name);
          return FALSE;
        }
      g_autofree char *type = g_key_file_get_string (kf, name, "type", NULL);
      if (!type || !*g_strstrip (type))
        {
          set_error (error, p, ST_ERROR_PIPELINE,
                     "stage '%s': key 'type' is missing (expected a stage kind; "
                     "'strata plugins' lists them)", name);
          return FALSE;
        }
      const StKindEntry *entry = st_registry_lookup (p->reg, type);
      if (!entry)
        {
          g_autofree char *near = st_registry_suggest (p->reg, type);
          set_error (error, p, ST_ERROR_PIPELINE,
                     "stage '%s': key 'type': unknown stage kind '%s'%s%s%s", name, type,
                     near ? " (did you mean " : " ('strata plugins' lists the kinds)",
                     near ? near : "", near ? "?)" : "");
          return FALSE;
        }

      gsize n_keys = 0;
      g_auto (GStrv) keys = g_key_file_get_keys (kf, name, &n_keys, NULL);
      g_autoptr (GPtrArray) pkeys = g_ptr_array_new ();
      g_autoptr (GPtrArray) pvalues = g_ptr_array_new_with_free_func (g_free);
      g_autofree char *input = NULL;
      for (gsize k = 0; k < n_keys; k++)
        {
          if (strcmp (keys[k], "type") == 0)
            continue;
          g_autoptr (GError) local = NULL;
          char *value = g_key_file_get_string (kf, name, keys[k], &local);
          if (!value)
            {
              set_error (error, p, ST_ERROR_PIPELINE, "stage '%s': key '%s': %s",
                         name, keys[k], local->message);
              return FALSE;
            }
          if (strcmp (keys[k], "input") == 0)
            {
              input = value;
              continue;
            }
          g_ptr_array_add (pkeys, keys[k]);
          g_ptr_array_add (pvalues, value);
        }

      g_autoptr (GError) local = NULL;
      StStage *stage = st_stage_new (entry->kind, name, (const char *const *) pkeys->pdata,
                                     (const char *const *) pvalues->pdata, pkeys->len, &local);
      if (!stage)
        {
          g_set_error (error, ST_ERROR, local->code, "%s: %s", p->name, local->message);
          return FALSE;
        }
      Node *node = g_new0 (Node, 1);
      node->stage = stage;
      if (input)
        {
          node->input_names = g_regex_split_simple ("\\s*,\\s*", g_strstrip (input), 0, 0);
        }
      else
        {
          node->input_names = g_new0 (char *, 2);
          node->input_names[0] = g_strdup (file_order->len
            ? ((Node *) file_order->pdata[file_order->len - 1])->stage->name : "image");
        }
      node->n_inputs = g_strv_length (node->input_names);
      g_ptr_array_add (file_order, node);
    }

  if (file_order->len == 0)
    {
      set_error (error, p, ST_ERROR_PIPELINE,
                 "no stages (expected at least one group with a type= key)");
      return FALSE;
    }

  for (guint i = 0; i < file_order->len; i++)
    {
      Node *node = file_order->pdata[i];
      node->inputs = g_new (int, MAX (node->n_inputs, 1));
      for (int k = 0; k < node->n_inputs; k++)
        {
          const char *in = node->input_names[k];
          node->inputs[k] = strcmp (in, "image") == 0 ? IMAGE_INPUT : find_node (p, file_order, in);
          if (node->inputs[k] == -2)
            {
              g_autoptr (GPtrArray) names = g_ptr_array_new ();
              g_ptr_array_add (names, "image");
              for (guint j = 0; j < file_order->len; j++)
                g_ptr_array_add (names, (char *) ((Node *) file_order->pdata[j])->stage->name);
              g_ptr_array_add (names, NULL);
              g_autofree char *near = st_suggest (in, (const char *const *) names->pdata, 2);
              g_autofree char *all = g_strjoinv (", ", (char **) names->pdata);
              set_error (error, p, ST_ERROR_PIPELINE,
                         "stage '%s': key 'input': no stage named '%s' (%s%s%s)",
                         node->stage->name, *in ? in : "",
                         near ? "did you mean " : "expected one of ", near ? near : all,
                         near ? "?" : "");
              return FALSE;
            }
          if (node->inputs[k] == (int) i)
            {
              set_error (error, p, ST_ERROR_PIPELINE,
                         "stage '%s': key 'input': a stage cannot read its own output",
                         node->stage->name);
              return FALSE;
            }
        }
    }

  int n = file_order->len;
  g_autofree int *state = g_new0 (int, n);
  g_autoptr (GArray) stack = g_array_new (FALSE, FALSE, sizeof (int));
  g_autoptr (GPtrArray) sorted = g_ptr_array_new ();
  for (int i = 0; i < n; i++)
    if (!visit (p, file_order, i, state, stack, sorted, error))
      return FALSE;

  /* The output is the last stage of the file, and every stage must feed it:
   * a stage whose result goes nowhere is almost surely a wiring mistake.
   * Since nothing reads the last stage, the post-order puts it last. */
  g_autofree gboolean *used = g_new0 (gboolean, n);
  used[n - 1] = TRUE;
  g_autofree int *run_index = g_new (int, n);
  for (int r = 0; r < n; r++)
    {
      guint fi = 0;
      g_ptr_array_find (file_order, sorted->pdata[r], &fi);
      run_index[fi] = r;
    }
  for (int r = n - 1; r >= 0; r--)
    {
      Node *node = sorted->pdata[r];
      guint fi = 0;
      g_ptr_array_find (file_order, node, &fi);
      if (!used[fi])
        continue;
      for (int k = 0; k < node->n_inputs; k++)
        if (node->inputs[k] != IMAGE_INPUT)
          used[node->inputs[k]] = TRUE;
    }
  for (int i = 0; i < n; i++)
    if (!used[i])
      {
        set_error (error, p, ST_ERROR_PIPELINE,
                   "stage '%s': its output is not used by the final stage '%s' "
                   "(expected every stage to feed the last one; check the input= keys)",
                   ((Node *) file_order->pdata[i])->stage->name,
                   ((Node *) file_order->pdata[n - 1])->stage->name);
        return FALSE;
      }

  /* Re-index inputs from file order to run order, and hand the nodes over. */
  for (int r = 0; r < n; r++)
    {
      Node *node = sorted->pdata[r];
      for (int k = 0; k < node->n_inputs; k++)
        if (node->inputs[k] != IMAGE_INPUT)
          node->inputs[k] = run_index[node->inputs[k]];
    }
  p->nodes = g_ptr_array_new_with_free_func (node_free);
  for (int r = 0; r < n; r++)
    g_ptr_array_add (p->nodes, sorted->pdata[r]);
  g_ptr_array_set_free_func (file_order, NULL);
  return TRUE;
}

static void
compute_last_use (StPipeline *p)
{
  for (guint i = 0; i < p->nodes->len; i++)
    ((Node *) p->nodes->pdata[i])->last_use = (int) i;
  for (guint i = 0; i < p->nodes->len; i++)
    {
      Node *node = p->nodes->pdata[i];
      for (int k = 0; k < node->n_inputs; k++)
        if (node->inputs[k] >= 0)
          ((Node *) p->nodes->pdata[node->inputs[k]])->last_use = (int) i;
    }
}

static StPipeline *
load_text (StRegistry *reg, const char *text, const char *display_name,
           const char *dir, GError **error)
{
  g_autoptr (StPipeline) p = g_new0 (StPipeline, 1);
  p->reg = reg;
  p->name = g_strdup (display_name);
  p->source = g_strdup (text);
  p->dir = g_strdup (dir);

  if (!check_duplicates (p, text, error))
    return NULL;
  g_autoptr (GKeyFile) kf = g_key_file_new ();
  g_autoptr (GError) local = NULL;
  /* GKeyFile takes ';' as its list separator; pipeline lists use ',' and
   * rows use ';', both parsed by the core from the raw string. */
  if (!g_key_file_load_from_data (kf, text, -1, G_KEY_FILE_NONE, &local))
    {
      set_error (error, p, ST_ERROR_PIPELINE, "not a valid pipeline file: %s", local->message);
      return NULL;
    }
  if (g_key_file_has_group (kf, "pipeline") && !parse_pipeline_group (p, kf, error))
    return NULL;
  if (!build_stages (p, kf, error))
    return NULL;
  compute_last_use (p);
  p->acts = g_new0 (StTensor *, p->nodes->len);

  /* Check shapes through the whole graph now, before any image is read.
   * Filters take any image: check them on a typical RGB one. */
  StShape probe = p->has_input ? p->input : (StShape) { 1, 3, 256, 256 };
  if (!st_pipeline_prepare (p, probe, error))
    return NULL;
  return g_steal_pointer (&p);
}

StPipeline *
st_pipeline_load_data (StRegistry *reg, const char *data, const char *display_name,
                       GError **error)
{
  g_autofree char *cwd = g_get_current_dir ();
  return load_text (reg, data, display_name, cwd, error);
}

StPipeline *
st_pipeline_load_file (StRegistry *reg, const char *path, GError **error)
{
  g_autofree char *text = NULL;
  g_autoptr (GError) local = NULL;
  if (!g_file_get_contents (path, &text, NULL, &local))
    {
      g_set_error (error, ST_ERROR, ST_ERROR_PIPELINE, "%s: cannot read pipeline file: %s",
                   path, local->message);
      return NULL;
    }
  if (!g_utf8_validate (text, -1, NULL))
    {
      g_set_error (error, ST_ERROR, ST_ERROR_PIPELINE,
                   "%s: not a pipeline file (not UTF-8 text)", path);
      return NULL;
    }
  g_autofree char *dir = g_path_get_dirname (path);
  return load_text (reg, text, path, dir, error);
}

/* "grayscale ! kernel preset=emboss" becomes the key file it stands for,
 * so that one parser and one set of checks serve both forms. */
StPipeline *
st_pipeline_load_inline (StRegistry *reg, const char *chain, GError **error)
{
  g_auto (GStrv) parts = g_strsplit (chain, "!", -1);
  g_autoptr (GString) ini = g_string_new (NULL);
  g_autoptr (GHashTable) counts = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, NULL);
  for (int i = 0; parts[i]; i++)
    {
      g_auto (GStrv) tokens = g_regex_split_simple ("\\s+", g_strstrip (parts[i]), 0, 0);
      if (!tokens[0] || !*tokens[0])
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
          if (!*tokens[k])
            continue;
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
  return load_text (reg, ini->str, "inline pipeline", cwd, error);
}

/* Installed pipelines: STRATA_PIPELINE_PATH, then the source tree when
 * running from the build tree, then the installed data directory. */
static char *
find_named_pipeline (const char *name)
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
  g_autofree char *path = find_named_pipeline (spec);
  if (path)
    return st_pipeline_load_file (reg, path, error);
  if (st_registry_lookup (reg, spec))
    return st_pipeline_load_inline (reg, spec, error);
  g_autofree char *near = st_registry_suggest (reg, spec);
  g_set_error (error, ST_ERROR, ST_ERROR_PIPELINE,
               "%s: no pipeline file, installed pipeline or stage kind of that name%s%s%s",
               spec, near ? " (did you mean " : "", near ? near : "", near ? "?)" : "");
  return NULL;
}

StPipeline *
st_pipeline_copy (const StPipeline *src, GError **error)
{
  StPipeline *p = load_text (src->reg, src->source, src->name, src->dir, error);
  if (!p)
    return NULL;
  /* Same labels and parameters as the original, trained or loaded. */
  st_pipeline_set_labels (p, (const char *const *) src->labels);
  for (guint i = 0; i < p->nodes->len; i++)
    {
      StStage *a = ((Node *) src->nodes->pdata[i])->stage;
      StStage *b = ((Node *) p->nodes->pdata[i])->stage;
      for (int k = 0; k < st_stage_n_params (a) && k < st_stage_n_params (b); k++)
        {
          StParam *pa = st_stage_get_param (a, k), *pb = st_stage_get_param (b, k);
          if (st_shape_equal (pa->value->shape, pb->value->shape))
            memcpy (pb->value->data, pa->value->data, st_tensor_numel (pa->value) * sizeof (float));
        }
    }
  return p;
}

const char *
st_pipeline_name (const StPipeline *p)
{
  return p->name;
}

const char *
st_pipeline_description (const StPipeline *p)
{
  return p->description;
}

gboolean
st_pipeline_fixed_input (const StPipeline *p, StShape *shape)
{
  if (p->has_input && shape)
    *shape = p->input;
  return p->has_input;
}

const char *const *
st_pipeline_labels (const StPipeline *p)
{
  return (const char *const *) p->labels;
}

void
st_pipeline_set_labels (StPipeline *p, const char *const *labels)
{
  char **copy = g_strdupv ((char **) labels);
  g_strfreev (p->labels);
  p->labels = copy;
}

const char *
st_pipeline_weights_path (const StPipeline *p)
{
  return p->weights_path;
}

int
st_pipeline_n_stages (const StPipeline *p)
{
  return (int) p->nodes->len;
}

StStage *
st_pipeline_stage (const StPipeline *p, int index)
{
  return ((Node *) p->nodes->pdata[index])->stage;
}

const char *const *
st_pipeline_stage_inputs (const StPipeline *p, int index)
{
  return (const char *const *) ((Node *) p->nodes->pdata[index])->input_names;
}

/* The node feeding input k of node i when stages [first, last] run on their
 * own with `input` standing for the output of stage first - 1 (or for the
 * image when first is 0): -1 means that input. */
static int
source_in_range (Node *node, int k, int first)
{
  int j = node->inputs[k];
  return j < first ? -1 : j;
}

static gboolean
check_range (const StPipeline *p, int first, int last)
{
  int n = p->nodes->len;
  if (first < 0 || last >= n || first > last)
    return FALSE;
  for (int i = first; i <= last; i++)
    {
      Node *node = p->nodes->pdata[i];
      for (int k = 0; k < node->n_inputs; k++)
        {
          int j = node->inputs[k];
          /* Inside the range, a stage may read the range's input only. */
          if (j < first && j != first - 1 && !(first == 0 && j == IMAGE_INPUT))
            return FALSE;
          if (first > 0 && j == IMAGE_INPUT)
            return FALSE;
        }
    }
  return TRUE;
}

int
st_pipeline_prefix_length (const StPipeline *p)
{
  int k = 0;
  int n = p->nodes->len;
  while (k < n - 1)
    {
      Node *node = p->nodes->pdata[k];
      if (st_stage_n_params (node->stage) > 0 || node->n_inputs != 1
          || !check_range (p, k + 1, n - 1))
        break;
      k++;
    }
  /* Only a prefix after which the rest stands alone counts. */
  while (k > 0 && !check_range (p, k, n - 1))
    k--;
  return k;
}

gboolean
st_pipeline_prepare_range (StPipeline *p, StShape input, int first, int last, GError **error)
{
  g_return_val_if_fail (check_range (p, first, last), FALSE);
  for (int i = first; i <= last; i++)
    {
      Node *node = p->nodes->pdata[i];
      StShape *shapes = g_newa (StShape, MAX (node->n_inputs, 1));
      for (int k = 0; k < node->n_inputs; k++)
        {
          int j = source_in_range (node, k, first);
          shapes[k] = j < 0 ? input : ((Node *) p->nodes->pdata[j])->stage->out_shape;
        }
      g_autoptr (GError) local = NULL;
      if (!st_stage_infer (node->stage, shapes, node->n_inputs, &local))
        {
          g_set_error (error, ST_ERROR, local->code, "%s: %s", p->name, local->message);
          p->prepared = FALSE;
          return FALSE;
        }
    }
  return TRUE;
}

gboolean
st_pipeline_prepare (StPipeline *p, StShape input, GError **error)
{
  if (p->prepared && st_shape_equal (p->prepared_shape, input))
    return TRUE;
  p->prepared = FALSE;
  if (!st_pipeline_prepare_range (p, input, 0, p->nodes->len - 1, error))
    return FALSE;
  p->prepared = TRUE;
  p->prepared_shape = input;
  return TRUE;
}

StShape
st_pipeline_output_shape (const StPipeline *p)
{
  return ((Node *) p->nodes->pdata[p->nodes->len - 1])->stage->out_shape;
}

const StTensor *
st_pipeline_activation (const StPipeline *p, int index)
{
  return p->acts[index];
}

StTensor *
st_pipeline_forward_range (StPipeline *p, const StRunContext *ctx, const StTensor *input,
                           int first, int last, gboolean keep_activations, GError **error)
{
  if (first == 0 && last == (int) p->nodes->len - 1)
    {
      if (!st_pipeline_prepare (p, input->shape, error))
        return NULL;
    }
  else
    {
      /* Sub-ranges re-infer on every call: shapes there are cheap and the
       * whole-pipeline cache above must not be fooled by them. */
      p->prepared = FALSE;
      if (!st_pipeline_prepare_range (p, input->shape, first, last, error))
        return NULL;
    }
  clear_activations (p);
  p->range_first = first;
  p->range_last = last;
  if (keep_activations)
    p->acts_input = st_tensor_copy (input);
  for (int i = first; i <= last; i++)
    {
      Node *node = p->nodes->pdata[i];
      const StTensor **inputs = g_newa (const StTensor *, MAX (node->n_inputs, 1));
      for (int k = 0; k < node->n_inputs; k++)
        {
          int j = source_in_range (node, k, first);
          inputs[k] = j < 0 ? input : p->acts[j];
        }
      StTensor *out = st_tensor_new (node->stage->out_shape, error);
      if (!out)
        goto fail;
      g_autoptr (GError) local = NULL;
      if (!node->stage->kind->forward (node->stage, ctx, inputs, out, &local))
        {
          st_tensor_free (out);
          g_set_error (error, ST_ERROR, local ? local->code : ST_ERROR_FAILED,
                       "stage '%s' (%s): %s", node->stage->name, node->stage->kind->name,
                       local ? local->message : "forward failed");
          goto fail;
        }
      p->acts[i] = out;
      /* Free what nothing later reads, so large images keep few copies. */
      if (!keep_activations)
        for (int k = 0; k < node->n_inputs; k++)
          {
            int j = source_in_range (node, k, first);
            if (j >= 0 && ((Node *) p->nodes->pdata[j])->last_use == i)
              g_clear_pointer (&p->acts[j], st_tensor_free);
          }
    }
  if (keep_activations)
    return st_tensor_copy (p->acts[last]);
  StTensor *result = g_steal_pointer (&p->acts[last]);
  clear_activations (p);
  return result;

fail:
  clear_activations (p);
  return NULL;
}

StTensor *
st_pipeline_forward (StPipeline *p, const StRunContext *ctx, const StTensor *input,
                     gboolean keep_activations, GError **error)
{
  return st_pipeline_forward_range (p, ctx, input, 0, p->nodes->len - 1, keep_activations, error);
}

static void
add_into (StTensor *dst, const StTensor *src)
{
  gsize n = st_tensor_numel (dst);
  for (gsize i = 0; i < n; i++)
    dst->data[i] += src->data[i];
}

gboolean
st_pipeline_backward_range (StPipeline *p, const StRunContext *ctx, const StTensor *grad_output,
                            int last, GError **error)
{
  int first = p->range_first;
  g_return_val_if_fail (p->acts_input != NULL && last >= first && last <= p->range_last
                        && p->acts[last] != NULL, FALSE);

  /* Only stages with parameters upstream of them need a gradient. */
  int n = p->nodes->len;
  g_autofree gboolean *needs = g_new0 (gboolean, n);
  for (int i = first; i <= last; i++)
    {
      Node *node = p->nodes->pdata[i];
      needs[i] = st_stage_n_params (node->stage) > 0;
      for (int k = 0; k < node->n_inputs; k++)
        {
          int j = source_in_range (node, k, first);
          if (j >= 0 && needs[j])
            needs[i] = TRUE;
        }
    }

  g_autofree StTensor **grads = g_new0 (StTensor *, n);
  grads[last] = st_tensor_copy (grad_output);
  gboolean ok = TRUE;
  for (int i = last; i >= first && ok; i--)
    {
      Node *node = p->nodes->pdata[i];
      if (!grads[i] || !needs[i])
        continue;
      if (!node->stage->kind->backward)
        {
          g_set_error (error, ST_ERROR, ST_ERROR_PIPELINE,
                       "%s: stage '%s' (%s) cannot be trained through: the kind has no backward pass",
                       p->name, node->stage->name, node->stage->kind->name);
          ok = FALSE;
          break;
        }
      const StTensor **inputs = g_newa (const StTensor *, MAX (node->n_inputs, 1));
      StTensor **gin = g_newa (StTensor *, MAX (node->n_inputs, 1));
      for (int k = 0; k < node->n_inputs; k++)
        {
          int j = source_in_range (node, k, first);
          inputs[k] = j < 0 ? p->acts_input : p->acts[j];
          gin[k] = j >= 0 && needs[j] ? st_tensor_new (p->acts[j]->shape, NULL) : NULL;
        }
      g_autoptr (GError) local = NULL;
      if (!node->stage->kind->backward (node->stage, ctx, inputs, p->acts[i], grads[i], gin, &local))
        {
          g_set_error (error, ST_ERROR, local ? local->code : ST_ERROR_FAILED,
                       "stage '%s' (%s): %s", node->stage->name, node->stage->kind->name,
                       local ? local->message : "backward failed");
          ok = FALSE;
        }
      for (int k = 0; k < node->n_inputs; k++)
        {
          int j = source_in_range (node, k, first);
          if (!gin[k])
            continue;
          if (ok && !grads[j])
            grads[j] = gin[k];
          else
            {
              if (ok)
                add_into (grads[j], gin[k]);
              st_tensor_free (gin[k]);
            }
        }
      g_clear_pointer (&grads[i], st_tensor_free);
    }
  for (int i = 0; i < n; i++)
    st_tensor_free (grads[i]);
  return ok;
}

gboolean
st_pipeline_backward (StPipeline *p, const StRunContext *ctx, const StTensor *grad_output,
                      GError **error)
{
  return st_pipeline_backward_range (p, ctx, grad_output, p->range_last, error);
}
