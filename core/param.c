/* strata — parameter values: the one place where text becomes config. */
#include "param.h"

#include <math.h>
#include <string.h>

const char *
st_param_type_name (StParamType type)
{
  switch (type)
    {
    case ST_PARAM_INT: return "int";
    case ST_PARAM_DOUBLE: return "double";
    case ST_PARAM_BOOL: return "bool";
    case ST_PARAM_STRING: return "string";
    case ST_PARAM_ENUM: return "enum";
    case ST_PARAM_INT_LIST: return "int list";
    case ST_PARAM_DOUBLE_LIST: return "double list";
    case ST_PARAM_INT64: return "int64";
    }
  return "?";
}

static char *
format_number (double v)
{
  char buf[G_ASCII_DTOSTR_BUF_SIZE];
  return g_strdup (g_ascii_formatd (buf, sizeof buf, "%g", v));
}

char *
st_param_describe_range (const StParamSpec *spec)
{
  if (spec->type == ST_PARAM_ENUM && spec->choices)
    return g_strjoinv ("|", (char **) spec->choices);

  GString *s = g_string_new (NULL);
  gboolean has_min = spec->flags & ST_PARAM_HAS_MIN;
  gboolean has_max = spec->flags & ST_PARAM_HAS_MAX;
  gboolean above = spec->flags & ST_PARAM_MIN_EXCLUSIVE;
  gboolean below = spec->flags & ST_PARAM_MAX_EXCLUSIVE;
  g_autofree char *lo = format_number (spec->min);
  g_autofree char *hi = format_number (spec->max);
  if (has_min && has_max && above)
    g_string_append_printf (s, "more than %s, %s %s", lo, below ? "less than" : "at most", hi);
  else if (has_min && has_max)
    g_string_append_printf (s, "%s to %s%s", lo, below ? "less than " : "", hi);
  else if (has_min)
    g_string_append_printf (s, "%s %s", above ? "more than" : "at least", lo);
  else if (has_max)
    g_string_append_printf (s, "%s %s", below ? "less than" : "at most", hi);
  if (spec->type == ST_PARAM_INT && spec->choices)
    {
      g_autofree char *names = g_strjoinv ("|", (char **) spec->choices);
      g_string_append_printf (s, "%s%s", s->len ? " or " : "", names);
    }
  if (s->len == 0)
    {
      g_string_free (s, TRUE);
      return NULL;
    }
  return g_string_free (s, FALSE);
}

static gboolean
out_of_range (const StParamSpec *spec, double v)
{
  gboolean above = spec->flags & ST_PARAM_MIN_EXCLUSIVE;
  gboolean below = spec->flags & ST_PARAM_MAX_EXCLUSIVE;
  return ((spec->flags & ST_PARAM_HAS_MIN) && (v < spec->min || (above && v == spec->min)))
         || ((spec->flags & ST_PARAM_HAS_MAX) && (v > spec->max || (below && v == spec->max)));
}

static void
set_expected (const StParamSpec *spec, const char *what, const char *found,
              GError **error)
{
  g_autofree char *range = st_param_describe_range (spec);
  g_set_error (error, ST_ERROR, ST_ERROR_PIPELINE,
               "expected %s%s%s, found '%s'", what,
               range ? " " : "", range ? range : "", found);
}

/* A whole number in [lo, hi] and in the spec's range. */
static gboolean
parse_integer (const StParamSpec *spec, const char *text, gint64 lo, gint64 hi, gint64 *out,
               GError **error)
{
  if (!g_ascii_string_to_signed (text, 10, lo, hi, out, NULL) || out_of_range (spec, (double) *out))
    {
      set_expected (spec, "an integer", text, error);
      return FALSE;
    }
  return TRUE;
}

static gboolean
parse_int (const StParamSpec *spec, const char *text, int *out, GError **error)
{
  if (spec->type == ST_PARAM_INT && spec->choices)
    for (int i = 0; spec->choices[i]; i++)
      if (g_ascii_strcasecmp (text, spec->choices[i]) == 0)
        {
          *out = -(i + 1);
          return TRUE;
        }
  gint64 v;
  if (!parse_integer (spec, text, G_MININT, G_MAXINT, &v, error))
    return FALSE;
  *out = (int) v;
  return TRUE;
}

static gboolean
parse_double (const StParamSpec *spec, const char *text, double *out,
              GError **error)
{
  char *end = NULL;
  double v = g_ascii_strtod (text, &end);
  if (*text == '\0' || end == text || *end != '\0' || !isfinite (v)
      || out_of_range (spec, v))
    {
      set_expected (spec, "a number", text, error);
      return FALSE;
    }
  *out = v;
  return TRUE;
}

static gboolean
parse_bool (const char *text, gboolean *out, GError **error)
{
  static const char *const yes[] = { "true", "yes", "on", "1", NULL };
  static const char *const no[] = { "false", "no", "off", "0", NULL };
  for (int i = 0; yes[i]; i++)
    {
      if (g_ascii_strcasecmp (text, yes[i]) == 0)
        return *out = TRUE, TRUE;
      if (g_ascii_strcasecmp (text, no[i]) == 0)
        return *out = FALSE, TRUE;
    }
  g_set_error (error, ST_ERROR, ST_ERROR_PIPELINE,
               "expected true or false, found '%s'", text);
  return FALSE;
}

/* Splits "a,b;c,d" into trimmed elements, counting rows. */
static char **
split_list (const char *text, int *rows, int *per_row, GError **error)
{
  g_auto (GStrv) row_texts = g_strsplit_set (text, ";", -1);
  GPtrArray *items = g_ptr_array_new_with_free_func (g_free);
  int n_rows = 0, width = -1;
  for (int r = 0; row_texts[r]; r++)
    {
      g_strstrip (row_texts[r]);
      if (row_texts[r][0] == '\0' && row_texts[r + 1] == NULL && r > 0)
        break;  /* a trailing ';' as GKeyFile lists write them */
      g_auto (GStrv) cells = g_strsplit_set (row_texts[r], ",", -1);
      int count = g_strv_length (cells);
      if (width >= 0 && count != width)
        {
          g_set_error (error, ST_ERROR, ST_ERROR_PIPELINE,
                       "expected rows of equal length, found row %d with %d values "
                       "where row 1 has %d in '%s'", r + 1, count, width, text);
          g_ptr_array_free (items, TRUE);
          return NULL;
        }
      width = count;
      for (int i = 0; cells[i]; i++)
        g_ptr_array_add (items, g_strdup (g_strstrip (cells[i])));
      n_rows++;
    }
  g_ptr_array_add (items, NULL);
  g_ptr_array_set_free_func (items, NULL);
  *rows = n_rows;
  *per_row = width;
  return (char **) g_ptr_array_free (items, FALSE);
}

gboolean
st_param_parse (const StParamSpec *spec, const char *raw, void *config,
                GError **error)
{
  void *field = (char *) config + spec->offset;
  g_autofree char *text = g_strstrip (g_strdup (raw));

  switch (spec->type)
    {
    case ST_PARAM_INT:
      return parse_int (spec, text, field, error);
    case ST_PARAM_DOUBLE:
      return parse_double (spec, text, field, error);
    case ST_PARAM_INT64:
      return parse_integer (spec, text, G_MININT64, G_MAXINT64, field, error);
    case ST_PARAM_BOOL:
      return parse_bool (text, field, error);
    case ST_PARAM_STRING:
      g_free (*(char **) field);
      *(char **) field = g_steal_pointer (&text);
      return TRUE;
    case ST_PARAM_ENUM:
      for (int i = 0; spec->choices && spec->choices[i]; i++)
        if (g_ascii_strcasecmp (text, spec->choices[i]) == 0)
          {
            *(int *) field = i;
            return TRUE;
          }
      set_expected (spec, "one of", text, error);
      return FALSE;
    case ST_PARAM_INT_LIST:
    case ST_PARAM_DOUBLE_LIST:
      {
        int rows, per_row;
        g_auto (GStrv) items = split_list (text, &rows, &per_row, error);
        if (!items)
          return FALSE;
        int n = g_strv_length (items);
        gboolean is_int = spec->type == ST_PARAM_INT_LIST;
        if (n == 0 || (n == 1 && items[0][0] == '\0'))
          {
            set_expected (spec, is_int ? "a list of integers" : "a list of numbers",
                          text, error);
            return FALSE;
          }
        int *ints = is_int ? g_new (int, n) : NULL;
        double *doubles = is_int ? NULL : g_new (double, n);
        for (int i = 0; i < n; i++)
          {
            gboolean ok = is_int ? parse_int (spec, items[i], &ints[i], NULL)
                                 : parse_double (spec, items[i], &doubles[i], NULL);
            if (!ok)
              {
                g_autofree char *range = st_param_describe_range (spec);
                g_set_error (error, ST_ERROR, ST_ERROR_PIPELINE,
                             "expected a list of %s%s%s, found '%s' in '%s'",
                             is_int ? "integers" : "numbers",
                             range ? " " : "", range ? range : "", items[i], text);
                g_free (ints);
                g_free (doubles);
                return FALSE;
              }
          }
        if (is_int)
          {
            StIntList *list = field;
            g_free (list->values);
            list->n = n;
            list->values = ints;
          }
        else
          {
            StDoubleList *list = field;
            g_free (list->values);
            list->n = n;
            list->rows = rows;
            list->values = doubles;
          }
        return TRUE;
      }
    }
  g_set_error (error, ST_ERROR, ST_ERROR_PLUGIN, "unknown parameter type %d",
               spec->type);
  return FALSE;
}

void
st_param_clear (const StKind *kind, void *config)
{
  for (int i = 0; i < kind->n_params; i++)
    {
      const StParamSpec *spec = &kind->params[i];
      void *field = (char *) config + spec->offset;
      switch (spec->type)
        {
        case ST_PARAM_STRING:
          g_clear_pointer ((char **) field, g_free);
          break;
        case ST_PARAM_INT_LIST:
          g_clear_pointer (&((StIntList *) field)->values, g_free);
          break;
        case ST_PARAM_DOUBLE_LIST:
          g_clear_pointer (&((StDoubleList *) field)->values, g_free);
          break;
        default:
          break;
        }
    }
}

gint
st_compare_strings (gconstpointer a, gconstpointer b)
{
  return strcmp (*(const char *const *) a, *(const char *const *) b);
}

GPtrArray *
st_dir_sorted_names (GDir *dir)
{
  GPtrArray *names = g_ptr_array_new_with_free_func (g_free);
  const char *name;
  while ((name = g_dir_read_name (dir)))
    if (name[0] != '.')
      g_ptr_array_add (names, g_strdup (name));
  g_ptr_array_sort (names, st_compare_strings);
  return names;
}

int
st_edit_distance (const char *a, const char *b)
{
  int la = strlen (a), lb = strlen (b);
  g_autofree int *row = g_new (int, lb + 1);
  for (int j = 0; j <= lb; j++)
    row[j] = j;
  for (int i = 1; i <= la; i++)
    {
      int diag = row[0];
      row[0] = i;
      for (int j = 1; j <= lb; j++)
        {
          int up = row[j];
          int cost = g_ascii_tolower (a[i - 1]) != g_ascii_tolower (b[j - 1]);
          row[j] = MIN (MIN (row[j] + 1, row[j - 1] + 1), diag + cost);
          diag = up;
        }
    }
  return row[lb];
}

char *
st_suggest (const char *name, const char *const *candidates, int max)
{
  /* Close enough: a third of the name's length, at least 2 edits, or a
   * candidate that starts with the name. */
  int limit = MAX (2, (int) strlen (name) / 3);
  GString *out = g_string_new (NULL);
  int found = 0;
  for (int d = 0; d <= limit + 1 && found < max; d++)
    for (int i = 0; candidates[i] && found < max; i++)
      {
        int dist = st_edit_distance (name, candidates[i]);
        gboolean prefix = g_str_has_prefix (candidates[i], name) && *name;
        if ((dist == d && d <= limit) || (d == limit + 1 && prefix && dist > limit))
          {
            g_string_append_printf (out, "%s'%s'", found ? ", " : "", candidates[i]);
            found++;
          }
      }
  if (!found)
    {
      g_string_free (out, TRUE);
      return NULL;
    }
  return g_string_free (out, FALSE);
}

char *
st_format_bytes (guint64 bytes)
{
  static const char *const units[] = { "kB", "MB", "GB", "TB", "PB", "EB" };
  if (bytes < 1000)
    return g_strdup_printf ("%u bytes", (guint) bytes);
  double value = bytes / 1000.0;
  guint u = 0;
  /* 999.95 would print as "1000.0". */
  while (value >= 999.95 && u + 1 < G_N_ELEMENTS (units))
    {
      value /= 1000.0;
      u++;
    }
  return g_strdup_printf ("%.1f %s", value, units[u]);
}
