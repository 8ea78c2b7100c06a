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
  StKeyGroup *current = NULL;
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
              syntax_error (error, name,
                            "not a valid pipeline file: line %d: '%s': %s", line_no, quoted,
                            problem);
              return FALSE;
            }
          *end = '\0';
          group = line + 1;
          int first = GPOINTER_TO_INT (g_hash_table_lookup (groups, group));
          if (first)
            {
              syntax_error (error, name,
                            "stage '%s': duplicate stage name (line %d repeats line %d)",
                            group, line_no, first);
              return FALSE;
            }
          g_hash_table_insert (groups, (char *) group, GINT_TO_POINTER (line_no));
          g_hash_table_remove_all (keys);
          current = g_new0 (StKeyGroup, 1);
          current->name = group;
          current->line = line_no;
          current->keys = g_ptr_array_new ();
          current->values = g_ptr_array_new ();
          g_ptr_array_add (out->groups, current);
          continue;
        }
      char *eq = strchr (line, '=');
      if (!eq)
        {
          g_autofree char *quoted = quote_line (line);
          syntax_error (error, name,
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
          syntax_error (error, name,
                        "not a valid pipeline file: line %d: '%s': a key is missing before '='",
                        line_no, quoted);
          return FALSE;
        }
      if (!group)
        {
          syntax_error (error, name,
                        "not a valid pipeline file: line %d: key '%s' comes before the first "
                        "[stage] header", line_no, key);
          return FALSE;
        }
      if (strpbrk (key, "[]"))
        {
          syntax_error (error, name,
                        "not a valid pipeline file: line %d: key '%s': a key cannot contain "
                        "'[' or ']'", line_no, key);
          return FALSE;
        }
      int first = GPOINTER_TO_INT (g_hash_table_lookup (keys, key));
      if (first)
        {
          syntax_error (error, name,
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

char **
st_key_split_list (const char *text, const char *separators)
{
  char **items = g_strsplit_set (text, separators, -1);
  for (int i = 0; items[i]; i++)
    g_strstrip (items[i]);
  return items;
}
