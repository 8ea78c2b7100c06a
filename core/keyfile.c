/* strata — the key-file syntax of pipeline files. */
#include "keyfile.h"
#include <strata/strata.h>

#include <string.h>

static void
syntax_error (GError **error, const char *name, const char *fmt, ...) G_GNUC_PRINTF (3, 4);

static void
syntax_error (GError **error, const char *name, const char *fmt, ...)
{
  va_list ap;
  va_start (ap, fmt);
  g_autofree char *msg = g_strdup_vprintf (fmt, ap);
  va_end (ap);
  g_set_error (error, ST_ERROR, ST_ERROR_PIPELINE, "%s: %s", name, msg);
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

static void
group_free (gpointer data)
{
  StKeyGroup *g = data;
  g_ptr_array_unref (g->keys);
  g_ptr_array_unref (g->values);
  g_free (g);
}

void
st_key_text_clear (StKeyText *t)
{
  g_clear_pointer (&t->groups, g_ptr_array_unref);
  g_clear_pointer (&t->buffer, g_free);
}

char *
st_key_unescape (const char *raw, GError **error)
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

/* The reading of one text: where the lines are, what has been seen. */
typedef struct {
  const char *name;            /* of the file, for errors */
  StKeyText *out;
  StKeyGroup *current;         /* the group the key lines go into */
  GHashTable *groups;          /* group name -> its header's line */
  GHashTable *keys;            /* the current group's key -> its line */
} Reader;

/* Cuts the text's copy into lines, in place with strchr: g_strsplit
 * searches with strstr, which sanitizers check to the end of the text on
 * every call.  NULL-terminated, pointing into buffer. */
static GPtrArray *
cut_lines (char *buffer)
{
  GPtrArray *starts = g_ptr_array_new ();
  for (char *c = buffer; c; )
    {
      g_ptr_array_add (starts, c);
      c = strchr (c, '\n');
      if (c)
        *c++ = '\0';
    }
  g_ptr_array_add (starts, NULL);
  return starts;
}

/* What is wrong with a header line whose ']' (if any) is at end. */
static const char *
header_problem (const char *line, const char *end)
{
  if (!end)
    return "a stage header needs a closing ']'";
  if (end[1] != '\0')
    return "unexpected text after the header's ']'";
  if (end == line + 1)
    return "a stage header needs a name between '[' and ']'";
  if (strchr (line + 1, '[') && strchr (line + 1, '[') < end)
    return "a stage name cannot contain '['";
  for (const char *c = line + 1; c < end; c++)
    if (g_ascii_iscntrl (*c))
      return "a stage name cannot contain control characters";
  return NULL;
}

/* "[name]": a new group, unless the name was seen before. */
static gboolean
read_header (Reader *r, char *line, int line_no, GError **error)
{
  char *end = strchr (line, ']');
  const char *problem = header_problem (line, end);
  if (problem)
    {
      g_autofree char *quoted = quote_line (line);
      syntax_error (error, r->name, "not a valid pipeline file: line %d: '%s': %s", line_no,
                    quoted, problem);
      return FALSE;
    }
  *end = '\0';
  const char *group = line + 1;
  int first = GPOINTER_TO_INT (g_hash_table_lookup (r->groups, group));
  if (first)
    {
      syntax_error (error, r->name, "stage '%s': duplicate stage name (line %d repeats line %d)",
                    group, line_no, first);
      return FALSE;
    }
  g_hash_table_insert (r->groups, (char *) group, GINT_TO_POINTER (line_no));
  g_hash_table_remove_all (r->keys);
  r->current = g_new0 (StKeyGroup, 1);
  r->current->name = group;
  r->current->line = line_no;
  r->current->keys = g_ptr_array_new ();
  r->current->values = g_ptr_array_new ();
  g_ptr_array_add (r->out->groups, r->current);
  return TRUE;
}

/* "key=value" into the current group, unless the key was seen there. */
static gboolean
read_key_line (Reader *r, char *line, int line_no, GError **error)
{
  char *eq = strchr (line, '=');
  if (!eq)
    {
      g_autofree char *quoted = quote_line (line);
      syntax_error (error, r->name,
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
      syntax_error (error, r->name,
                    "not a valid pipeline file: line %d: '%s': a key is missing before '='",
                    line_no, quoted);
      return FALSE;
    }
  if (!r->current)
    {
      syntax_error (error, r->name,
                    "not a valid pipeline file: line %d: key '%s' comes before the first "
                    "[stage] header", line_no, key);
      return FALSE;
    }
  if (strpbrk (key, "[]"))
    {
      syntax_error (error, r->name,
                    "not a valid pipeline file: line %d: key '%s': a key cannot contain "
                    "'[' or ']'", line_no, key);
      return FALSE;
    }
  int first = GPOINTER_TO_INT (g_hash_table_lookup (r->keys, key));
  if (first)
    {
      syntax_error (error, r->name, "stage '%s': key '%s' given twice (lines %d and %d)",
                    r->current->name, key, first, line_no);
      return FALSE;
    }
  g_hash_table_insert (r->keys, key, GINT_TO_POINTER (line_no));
  g_ptr_array_add (r->current->keys, key);
  g_ptr_array_add (r->current->values, g_strchug (eq + 1));
  return TRUE;
}

/* The key-file syntax, in one pass over the lines, in place of GKeyFile.
 * GKeyFile's messages for a malformed line are raw, or misleading: a
 * header missing its ']' is skipped, so the keys below it land in the
 * stage before and read as given twice.  It merges repeated groups and
 * keeps the last of repeated keys without a word, where a pipeline file
 * with either is almost surely a mistake.  And it allocates several times
 * per key, which is most of the time a large file takes.  Every complaint
 * here names the line. */
gboolean
st_key_text_parse (const char *name, const char *text, StKeyText *out, GError **error)
{
  out->groups = g_ptr_array_new_with_free_func (group_free);
  out->buffer = g_strdup (text);
  g_autoptr (GPtrArray) starts = cut_lines (out->buffer);
  char **lines = (char **) starts->pdata;
  /* Names point into lines; keys holds the current group's only. */
  g_autoptr (GHashTable) groups = g_hash_table_new (g_str_hash, g_str_equal);
  g_autoptr (GHashTable) keys = g_hash_table_new (g_str_hash, g_str_equal);
  Reader r = { name, out, NULL, groups, keys };
  for (int i = 0; lines[i]; i++)
    {
      char *line = g_strstrip (lines[i]);
      if (*line == '#' || *line == '\0')
        continue;
      if (!(*line == '[' ? read_header (&r, line, i + 1, error)
                         : read_key_line (&r, line, i + 1, error)))
        return FALSE;
    }
  return TRUE;
}

char **
st_key_split_list (const char *text, const char *separators)
{
  char **items = g_strsplit_set (text, separators, -1);
  for (int i = 0; items[i]; i++)
    g_strstrip (items[i]);
  return items;
}
