/* strata — pipeline files, inline chains, and the stage graph. */
#include "pipeline.h"
#include "stage.h"
#include "param.h"
#include "context.h"
#include "config.h"

#include <string.h>

#define IMAGE_INPUT (-1)

typedef struct {
  StStage *stage;
  char **input_names;          /* as written, or the defaults filled in */
  int *inputs;                 /* node index in run order, or IMAGE_INPUT */
  int n_inputs;
  int last_use;                /* last node that reads this one's output */
  int file_index;              /* place of its group in the file */
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
  guint64 kept_bytes;          /* a forward that keeps every output, as last prepared */
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

/* A line as an error message quotes it: long ones cut short. */
static char *
quote_line (const char *line)
{
  if (g_utf8_strlen (line, -1) <= 60)
    return g_strdup (line);
  g_autofree char *head = g_utf8_substring (line, 0, 57);
  return g_strconcat (head, "...", NULL);
}

/* A group of the file: a stage, or [pipeline].  Names, keys and values
 * point into the text's lines, which the ParsedText owns. */
typedef struct {
  const char *name;
  GPtrArray *keys;             /* const char *, in file order */
  GPtrArray *values;           /* const char *, as written (escapes unresolved) */
} Group;

typedef struct {
  char *buffer;                /* a copy of the text, cut into lines */
  GPtrArray *groups;           /* Group *, in file order */
} ParsedText;

static void
group_free (gpointer data)
{
  Group *g = data;
  g_ptr_array_unref (g->keys);
  g_ptr_array_unref (g->values);
  g_free (g);
}

static void
parsed_text_clear (ParsedText *t)
{
  g_clear_pointer (&t->groups, g_ptr_array_unref);
  g_clear_pointer (&t->buffer, g_free);
}

G_DEFINE_AUTO_CLEANUP_CLEAR_FUNC (ParsedText, parsed_text_clear)

/* A value as GKeyFile reads one: \s \n \t \r and \\ stand for a space,
 * newline, tab, return and backslash; any other escape is an error. */
static char *
unescape_value (const char *raw, GError **error)
{
  if (!strchr (raw, '\\'))
    return g_strdup (raw);
  GString *out = g_string_sized_new (strlen (raw));
  for (const char *c = raw; *c; c++)
    {
      if (*c != '\\')
        {
          g_string_append_c (out, *c);
          continue;
        }
      c++;
      switch (*c)
        {
        case 's': g_string_append_c (out, ' '); break;
        case 'n': g_string_append_c (out, '\n'); break;
        case 't': g_string_append_c (out, '\t'); break;
        case 'r': g_string_append_c (out, '\r'); break;
        case '\\': g_string_append_c (out, '\\'); break;
        default:
          if (g_ascii_isgraph (*c))
            g_set_error (error, ST_ERROR, ST_ERROR_PIPELINE,
                         "invalid escape sequence '\\%c' (write '\\\\' for a backslash)", *c);
          else if (*c)
            g_set_error (error, ST_ERROR, ST_ERROR_PIPELINE,
                         "invalid escape sequence (write '\\\\' for a backslash)");
          else
            g_set_error (error, ST_ERROR, ST_ERROR_PIPELINE,
                         "a backslash ends the value (write '\\\\' for a backslash)");
          g_string_free (out, TRUE);
          return NULL;
        }
    }
  return g_string_free (out, FALSE);
}

/* The key-file syntax, in one pass over the lines, in place of GKeyFile.
 * GKeyFile's messages for a malformed line are raw, or misleading: a
 * header missing its ']' is skipped, so the keys below it land in the
 * stage before and read as given twice.  It merges repeated groups and
 * keeps the last of repeated keys without a word, where a pipeline file
 * with either is almost surely a mistake.  And it allocates several times
 * per key, which is most of the time a large file takes.  Every complaint
 * here names the line. */
static gboolean
parse_text (StPipeline *p, const char *text, ParsedText *out, GError **error)
{
  out->groups = g_ptr_array_new_with_free_func (group_free);
  out->buffer = g_strdup (text);
  /* Cut in place with strchr: g_strsplit searches with strstr, which
   * sanitizers check to the end of the text on every call. */
  g_autoptr (GPtrArray) starts = g_ptr_array_new ();
  for (char *c = out->buffer; c; )
    {
      g_ptr_array_add (starts, c);
      c = strchr (c, '\n');
      if (c)
        *c++ = '\0';
    }
  g_ptr_array_add (starts, NULL);
  char **lines = (char **) starts->pdata;
  Group *current = NULL;
  /* Names point into lines; keys holds the current group's only. */
  g_autoptr (GHashTable) groups = g_hash_table_new (g_str_hash, g_str_equal);
  g_autoptr (GHashTable) keys = g_hash_table_new (g_str_hash, g_str_equal);
  const char *group = NULL;
  for (int i = 0; lines[i]; i++)
    {
      const int line_no = i + 1;
      char *line = g_strstrip (lines[i]);
      if (*line == '#' || *line == '\0')
        continue;
      if (*line == '[')
        {
          char *end = strchr (line, ']');
          const char *problem = NULL;
          if (!end)
            problem = "a stage header needs a closing ']'";
          else if (end[1] != '\0')
            problem = "unexpected text after the header's ']'";
          else if (end == line + 1)
            problem = "a stage header needs a name between '[' and ']'";
          else if (strchr (line + 1, '[') && strchr (line + 1, '[') < end)
            problem = "a stage name cannot contain '['";
          for (const char *c = line + 1; !problem && c < end; c++)
            if (g_ascii_iscntrl (*c))
              problem = "a stage name cannot contain control characters";
          if (problem)
            {
              g_autofree char *quoted = quote_line (line);
              set_error (error, p, ST_ERROR_PIPELINE,
                         "not a valid pipeline file: line %d: '%s': %s", line_no, quoted, problem);
              return FALSE;
            }
          *end = '\0';
          group = line + 1;
          int first = GPOINTER_TO_INT (g_hash_table_lookup (groups, group));
          if (first)
            {
              set_error (error, p, ST_ERROR_PIPELINE,
                         "stage '%s': duplicate stage name (line %d repeats line %d)",
                         group, line_no, first);
              return FALSE;
            }
          g_hash_table_insert (groups, (char *) group, GINT_TO_POINTER (line_no));
          g_hash_table_remove_all (keys);
          current = g_new0 (Group, 1);
          current->name = group;
          current->keys = g_ptr_array_new ();
          current->values = g_ptr_array_new ();
          g_ptr_array_add (out->groups, current);
          continue;
        }
      char *eq = strchr (line, '=');
      if (!eq)
        {
          g_autofree char *quoted = quote_line (line);
          set_error (error, p, ST_ERROR_PIPELINE,
                     "not a valid pipeline file: line %d: expected '[stage]', 'key=value' or "
                     "a '#' comment, found '%s'", line_no, quoted);
          return FALSE;
        }
      *eq = '\0';   /* the line is ours: the key ends here */
      char *key = g_strchomp (line);
      if (!*key)
        {
          *eq = '=';
          g_autofree char *quoted = quote_line (line);
          set_error (error, p, ST_ERROR_PIPELINE,
                     "not a valid pipeline file: line %d: '%s': a key is missing before '='",
                     line_no, quoted);
          return FALSE;
        }
      if (!group)
        {
          set_error (error, p, ST_ERROR_PIPELINE,
                     "not a valid pipeline file: line %d: key '%s' comes before the first "
                     "[stage] header", line_no, key);
          return FALSE;
        }
      if (strpbrk (key, "[]"))
        {
          set_error (error, p, ST_ERROR_PIPELINE,
                     "not a valid pipeline file: line %d: key '%s': a key cannot contain "
                     "'[' or ']'", line_no, key);
          return FALSE;
        }
      int first = GPOINTER_TO_INT (g_hash_table_lookup (keys, key));
      if (first)
        {
          set_error (error, p, ST_ERROR_PIPELINE,
                     "stage '%s': key '%s' given twice (lines %d and %d)",
                     group, key, first, line_no);
          return FALSE;
        }
      g_hash_table_insert (keys, key, GINT_TO_POINTER (line_no));
      g_ptr_array_add (current->keys, key);
      g_ptr_array_add (current->values, g_strchug (eq + 1));
    }
  return TRUE;
}

/* Splits a list at any of the separators, each item stripped of spaces;
 * empty items stay (the caller decides).  Linear: no regular expression. */
static char **
split_list (const char *text, const char *separators)
{
  char **items = g_strsplit_set (text, separators, -1);
  for (int i = 0; items[i]; i++)
    g_strstrip (items[i]);
  return items;
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
parse_pipeline_group (StPipeline *p, const Group *group, GError **error)
{
  static const char *const known[] = { "input", "weights", "labels", "description", NULL };
  const char *const *keys = (const char *const *) group->keys->pdata;
  for (guint i = 0; i < group->keys->len; i++)
    {
      g_autoptr (GError) local = NULL;
      g_autofree char *value = unescape_value (group->values->pdata[i], &local);
      if (!value)
        {
          set_error (error, p, ST_ERROR_PIPELINE, "group 'pipeline': key '%s': %s", keys[i],
                     local->message);
          return FALSE;
        }
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
              g_auto (GStrv) items = split_list (value, ";,");
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
                  set_error (error, p, ST_ERROR_PIPELINE,
                             "group 'pipeline': key 'labels': expected a list (a;b;c) or a "
                             "file of labels, found '%s' (%s)", value, read_error->message);
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
          set_error (error, p, ST_ERROR_PIPELINE,
                     "group 'pipeline': unknown key '%s' (%s%s%s)", keys[i],
                     near ? "did you mean " : "expected one of input, weights, labels, description",
                     near ? near : "", near ? "?" : "");
          return FALSE;
        }
    }
  return TRUE;
}

/* Sorts the nodes so that each comes after the ones it reads, depth first
 * from each node in file order, with an explicit stack: a chain of many
 * thousand stages must not recurse once per stage.  A node met again while
 * on the stack closes a cycle, which is reported as the path around it. */
static gboolean
sort_nodes (StPipeline *p, GPtrArray *file_order, GPtrArray *sorted, GError **error)
{
  const int n = file_order->len;
  g_autofree guint8 *state = g_new0 (guint8, n);   /* 0 new, 1 on the stack, 2 done */
  g_autofree int *next_input = g_new0 (int, n);    /* the next input to follow */
  g_autoptr (GArray) stack = g_array_new (FALSE, FALSE, sizeof (int));
  for (int root = 0; root < n; root++)
    {
      if (state[root] == 2)
        continue;
      state[root] = 1;
      g_array_append_val (stack, root);
      while (stack->len)
        {
          int i = g_array_index (stack, int, stack->len - 1);
          Node *node = file_order->pdata[i];
          if (next_input[i] == node->n_inputs)
            {
              state[i] = 2;
              g_ptr_array_add (sorted, node);
              g_array_set_size (stack, stack->len - 1);
              continue;
            }
          int j = node->inputs[next_input[i]++];
          if (j == IMAGE_INPUT || state[j] == 2)
            continue;
          if (state[j] == 1)
            {
              Node *closing = file_order->pdata[j];
              GString *path = g_string_new (NULL);
              gboolean on = FALSE;
              for (guint k = 0; k < stack->len; k++)
                {
                  int s = g_array_index (stack, int, k);
                  on = on || s == j;
                  if (on)
                    g_string_append_printf (path, "%s -> ",
                                            ((Node *) file_order->pdata[s])->stage->name);
                }
              g_string_append (path, closing->stage->name);
              set_error (error, p, ST_ERROR_PIPELINE,
                         "stage '%s': key 'input': the inputs form a cycle: %s",
                         closing->stage->name, path->str);
              g_string_free (path, TRUE);
              return FALSE;
            }
          state[j] = 1;
          g_array_append_val (stack, j);
        }
    }
  return TRUE;
}

static gboolean
build_stages (StPipeline *p, GPtrArray *groups, GError **error)
{
  g_autoptr (GPtrArray) file_order = g_ptr_array_new_with_free_func (node_free);
  /* Stage name -> place in file_order; the names are the stages' own. */
  g_autoptr (GHashTable) index = g_hash_table_new (g_str_hash, g_str_equal);

  for (guint g = 0; g < groups->len; g++)
    {
      const Group *group = groups->pdata[g];
      const char *name = group->name;
      if (strcmp (name, "pipeline") == 0)
        continue;
      if (strcmp (name, "image") == 0 || !*name || strchr (name, ',') || strchr (name, '.'))
        {
          set_error (error, p, ST_ERROR_PIPELINE,
                     "stage '%s': invalid stage name (expected a name other than 'image', "
                     "without ',' or '.')", name);
          return FALSE;
        }
      g_autofree char *type = NULL;
      for (guint k = 0; k < group->keys->len && !type; k++)
        if (strcmp (group->keys->pdata[k], "type") == 0)
          type = unescape_value (group->values->pdata[k], NULL);
      if (!type || !*g_strstrip (type))
        {
          set_error (error, p, ST_ERROR_PIPELINE,
                     "stage '%s': key 'type' is missing (expected a stage kind; "
                     "'strata plugins' lists them)", name);
          return FALSE;
        }
      const StKindEntry *entry = st_registry_lookup (p->reg, type);
      const char *refusal = entry ? NULL : st_registry_refusal (p->reg, type);
      if (refusal)
        {
          set_error (error, p, ST_ERROR_PLUGIN,
                     "stage '%s': key 'type': stage kind '%s' is provided only by a plugin "
                     "that was not loaded: %s", name, type, refusal);
          return FALSE;
        }
      if (!entry)
        {
          g_autofree char *near = st_registry_suggest (p->reg, type);
          set_error (error, p, ST_ERROR_PIPELINE,
                     "stage '%s': key 'type': unknown stage kind '%s'%s%s%s", name, type,
                     near ? " (did you mean " : " ('strata plugins' lists the kinds)",
                     near ? near : "", near ? "?)" : "");
          return FALSE;
        }

      const guint n_keys = group->keys->len;
      const char *const *keys = (const char *const *) group->keys->pdata;
      g_autoptr (GPtrArray) pkeys = g_ptr_array_new ();
      g_autoptr (GPtrArray) pvalues = g_ptr_array_new_with_free_func (g_free);
      g_autofree char *input = NULL;
      for (guint k = 0; k < n_keys; k++)
        {
          if (strcmp (keys[k], "type") == 0)
            continue;
          g_autoptr (GError) local = NULL;
          char *value = unescape_value (group->values->pdata[k], &local);
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
          g_ptr_array_add (pkeys, (char *) keys[k]);
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
      node->file_index = file_order->len;
      g_hash_table_insert (index, (char *) stage->name, GINT_TO_POINTER (file_order->len));
      if (input)
        {
          g_strstrip (input);
          /* "" is no input at all, as the kind's input count then says. */
          node->input_names = *input ? split_list (input, ",") : g_new0 (char *, 1);
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
          gpointer found = NULL;
          if (strcmp (in, "image") == 0)
            node->inputs[k] = IMAGE_INPUT;
          else if (g_hash_table_lookup_extended (index, in, NULL, &found))
            node->inputs[k] = GPOINTER_TO_INT (found);
          else
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
  g_autoptr (GPtrArray) sorted = g_ptr_array_sized_new (n);
  if (!sort_nodes (p, file_order, sorted, error))
    return FALSE;

  /* The output is the last stage of the file, and every stage must feed it:
   * a stage whose result goes nowhere is almost surely a wiring mistake.
   * Since nothing reads the last stage, the post-order puts it last. */
  g_autofree gboolean *used = g_new0 (gboolean, n);
  used[n - 1] = TRUE;
  g_autofree int *run_index = g_new (int, n);
  for (int r = 0; r < n; r++)
    run_index[((Node *) sorted->pdata[r])->file_index] = r;
  for (int r = n - 1; r >= 0; r--)
    {
      Node *node = sorted->pdata[r];
      if (!used[node->file_index])
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
      set_error (error, p, ST_ERROR_PIPELINE, "not a pipeline file (not UTF-8 text)");
      return NULL;
    }
  g_auto (ParsedText) parsed = { NULL, NULL };
  if (!parse_text (p, text, &parsed, error))
    return NULL;
  for (guint g = 0; g < parsed.groups->len; g++)
    {
      const Group *group = parsed.groups->pdata[g];
      if (strcmp (group->name, "pipeline") == 0 && !parse_pipeline_group (p, group, error))
        return NULL;
    }
  if (!build_stages (p, parsed.groups, error))
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
  return load_text (reg, text, path, dir, error);
}

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
      for (int k = 0; k < st_stage_n_weights (a) && k < st_stage_n_weights (b); k++)
        {
          StWeight *pa = st_stage_get_weight (a, k), *pb = st_stage_get_weight (b, k);
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

GPtrArray *
st_pipeline_weights (const StPipeline *p)
{
  GPtrArray *params = g_ptr_array_new ();
  for (int i = 0; i < st_pipeline_n_stages (p); i++)
    {
      StStage *stage = st_pipeline_stage (p, i);
      for (int k = 0; k < st_stage_n_weights (stage); k++)
        g_ptr_array_add (params, st_stage_get_weight (stage, k));
    }
  return params;
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
  /* check_range (p, k, n - 1) for every k at once: stages k.. may read
   * nothing before stage k - 1, nor the image (-1) when k > 0.  lowest[k]
   * is the lowest node any stage from k on reads. */
  int n = p->nodes->len;
  g_autofree int *lowest = g_new (int, n + 1);
  lowest[n] = G_MAXINT;
  for (int i = n - 1; i >= 0; i--)
    {
      Node *node = p->nodes->pdata[i];
      lowest[i] = lowest[i + 1];
      for (int k = 0; k < node->n_inputs; k++)
        lowest[i] = MIN (lowest[i], node->inputs[k]);
    }
#define REST_STANDS_ALONE(k) ((k) == 0 || lowest[k] >= (k) - 1)
  int k = 0;
  while (k < n - 1)
    {
      Node *node = p->nodes->pdata[k];
      if (st_stage_n_weights (node->stage) > 0 || node->n_inputs != 1
          || !REST_STANDS_ALONE (k + 1))
        break;
      k++;
    }
  /* Only a prefix after which the rest stands alone counts. */
  while (k > 0 && !REST_STANDS_ALONE (k))
    k--;
#undef REST_STANDS_ALONE
  return k;
}

static char *find_named_pipeline (const char *name);

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
static void
set_fixed_input_error (StPipeline *p, StShape input, GError **error)
{
  const StShape want = p->input;
  g_autofree char *variant = find_photo_variant (p);
  GString *how = g_string_new (NULL);
  if (input.c != want.c && want.c == 1)
    g_string_append (how, "grayscale");
  if (input.h != want.h || input.w != want.w)
    g_string_append_printf (how, "%sresize width=%d height=%d", how->len ? " and " : "",
                            want.w, want.h);
  g_autofree char *stages = g_string_free (how, FALSE);
  set_error (error, p, ST_ERROR_SHAPE,
             "the pipeline takes %dx%dx%d, the image is %dx%dx%d: %s%s%sput stages that make "
             "it %dx%dx%d before the first one%s%s%s",
             want.c, want.h, want.w, input.c, input.h, input.w,
             variant ? "use the pipeline " : "", variant ? variant : "",
             variant ? ", which takes any image, or " : "",
             want.c, want.h, want.w,
             *stages ? " (such as " : "", stages, *stages ? ")" : "");
}

static guint64
node_bytes (const Node *node)
{
  guint64 bytes = 0;
  st_shape_bytes (node->stage->out_shape, &bytes);  /* checked by st_stage_infer */
  return bytes;
}

/* Shape inference for stages first..last.  Parameters are declared (and
 * allocated) here, each bounded together with every other stage's by the
 * memory limit. */
static gboolean
infer_range (StPipeline *p, StShape input, int first, int last, GError **error)
{
  g_return_val_if_fail (check_range (p, first, last), FALSE);
  p->prepared = FALSE;
  /* Another shape than input= may still fit (preparation stages, a global
   * pool); when it does not, that is what the user needs to hear. */
  const gboolean other_shape = first == 0 && p->has_input
    && (input.c != p->input.c || input.h != p->input.h || input.w != p->input.w);
  if (!st_shape_bytes (input, NULL))
    {
      char buf[64];
      set_error (error, p, ST_ERROR_SHAPE, "input shape %s is empty or too large",
                 st_shape_format (input, buf, sizeof buf));
      return FALSE;
    }
  guint64 params = 0;
  for (guint i = 0; i < p->nodes->len; i++)
    params += st_stage_weight_bytes (((Node *) p->nodes->pdata[i])->stage);
  g_autofree StShape *shapes = NULL;
  int room = 0;
  for (int i = first; i <= last; i++)
    {
      Node *node = p->nodes->pdata[i];
      if (node->n_inputs > room)
        {
          room = node->n_inputs;
          shapes = g_renew (StShape, shapes, room);
        }
      for (int k = 0; k < node->n_inputs; k++)
        {
          int j = source_in_range (node, k, first);
          shapes[k] = j < 0 ? input : ((Node *) p->nodes->pdata[j])->stage->out_shape;
        }
      guint64 before = st_stage_weight_bytes (node->stage);
      st_stage_set_other_weight_bytes (node->stage, params - before);
      g_autoptr (GError) local = NULL;
      gboolean ok = st_stage_infer (node->stage, shapes, node->n_inputs, &local);
      params += st_stage_weight_bytes (node->stage) - before;
      if (!ok && other_shape && local->code != ST_ERROR_MEMORY)
        {
          set_fixed_input_error (p, input, error);
          return FALSE;
        }
      if (!ok)
        {
          g_set_error (error, ST_ERROR, local->code, "%s: %s", p->name, local->message);
          return FALSE;
        }
    }
  return TRUE;
}

/* The working memory of stages first..last on input, as forward uses it:
 * the input, every parameter, and at each stage its output beside the
 * outputs still to be read (forward frees each after its last reader).
 * Refused, naming the stage where it passes the limit, before anything is
 * allocated.  Also notes what a forward that keeps every output needs. */
static gboolean
check_memory (StPipeline *p, StShape input, int first, int last, GError **error)
{
  const guint64 limit = st_memory_limit ();
  g_autofree char *limit_text = st_format_bytes (limit);
  guint64 input_bytes = 0, params = 0;
  st_shape_bytes (input, &input_bytes);
  for (guint i = 0; i < p->nodes->len; i++)
    params += st_stage_weight_bytes (((Node *) p->nodes->pdata[i])->stage);
  char buf[64];
  if (input_bytes > limit || params > limit - input_bytes)
    {
      g_autofree char *need = st_format_bytes (input_bytes);
      g_autofree char *with = st_format_bytes (input_bytes + params);
      set_error (error, p, ST_ERROR_MEMORY,
                 "the input %s needs %s, %s with the parameters; the limit is %s (--max-memory)",
                 st_shape_format (input, buf, sizeof buf), need, with, limit_text);
      return FALSE;
    }
  guint64 live = input_bytes + params, kept = input_bytes + params;
  g_autofree gboolean *freed = g_new0 (gboolean, p->nodes->len);
  for (int i = first; i <= last; i++)
    {
      Node *node = p->nodes->pdata[i];
      const guint64 out = node_bytes (node);
      if (out > limit - live)
        {
          g_autofree char *need = st_format_bytes (out);
          if (out > limit)
            set_error (error, p, ST_ERROR_MEMORY,
                       "stage '%s' (%s): output %s needs %s; the limit is %s (--max-memory)",
                       node->stage->name, node->stage->kind->name,
                       st_shape_format (node->stage->out_shape, buf, sizeof buf), need,
                       limit_text);
          else
            {
              g_autofree char *with = st_format_bytes (live + out);
              set_error (error, p, ST_ERROR_MEMORY,
                         "stage '%s' (%s): output %s needs %s, %s with the input, the "
                         "parameters and the outputs still to be read; the limit is %s "
                         "(--max-memory)", node->stage->name, node->stage->kind->name,
                         st_shape_format (node->stage->out_shape, buf, sizeof buf), need,
                         with, limit_text);
            }
          return FALSE;
        }
      live += out;
      kept = kept > G_MAXUINT64 - out ? G_MAXUINT64 : kept + out;
      for (int k = 0; k < node->n_inputs; k++)
        {
          int j = source_in_range (node, k, first);
          if (j >= 0 && ((Node *) p->nodes->pdata[j])->last_use == i && !freed[j])
            {
              freed[j] = TRUE;
              live -= node_bytes (p->nodes->pdata[j]);
            }
        }
    }
  /* Kept outputs, and the copy of the last one that forward returns. */
  guint64 last_out = node_bytes (p->nodes->pdata[last]);
  p->kept_bytes = kept > G_MAXUINT64 - last_out ? G_MAXUINT64 : kept + last_out;
  return TRUE;
}

gboolean
st_pipeline_prepare_range (StPipeline *p, StShape input, int first, int last, GError **error)
{
  return infer_range (p, input, first, last, error)
         && check_memory (p, input, first, last, error);
}

gboolean
st_pipeline_infer_shapes (StPipeline *p, StShape input, GError **error)
{
  return infer_range (p, input, 0, p->nodes->len - 1, error);
}

gboolean
st_pipeline_prepare (StPipeline *p, StShape input, GError **error)
{
  if (p->prepared && st_shape_equal (p->prepared_shape, input))
    return TRUE;
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
      if (!st_pipeline_prepare_range (p, input->shape, first, last, error))
        return NULL;
    }
  const guint64 limit = st_memory_limit ();
  if (keep_activations && p->kept_bytes > limit)
    {
      g_autofree char *need = st_format_bytes (p->kept_bytes);
      g_autofree char *limit_text = st_format_bytes (limit);
      set_error (error, p, ST_ERROR_MEMORY,
                 "keeping every stage's output of a batch of %d (for training or feature "
                 "maps) needs %s; the limit is %s (--max-memory)", input->shape.n, need,
                 limit_text);
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
      /* On the heap: a stage may have many thousand inputs. */
      g_autofree const StTensor **inputs = g_new (const StTensor *, MAX (node->n_inputs, 1));
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
      needs[i] = st_stage_n_weights (node->stage) > 0;
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
      g_autofree const StTensor **inputs = g_new (const StTensor *, MAX (node->n_inputs, 1));
      g_autofree StTensor **gin = g_new (StTensor *, MAX (node->n_inputs, 1));
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
