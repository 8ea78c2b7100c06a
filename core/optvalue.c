/* strata — checking the text given to a front end's options. */
#include "optvalue.h"

gboolean
st_option_parse_int (const char *option, const char *text, gint64 min, gint64 max,
                     gint64 *value, GError **error)
{
  if (!text)
    return TRUE;
  gint64 v;
  if (!g_ascii_string_to_signed (text, 10, min, max, &v, NULL))
    {
      if (max >= G_MAXINT)  /* "or more": the type's own limit is no range a user needs */
        g_set_error (error, ST_ERROR, ST_ERROR_USAGE, "%s: expected a whole number, %"
                     G_GINT64_FORMAT " or more, found '%s'", option, min, text);
      else
        g_set_error (error, ST_ERROR, ST_ERROR_USAGE, "%s: expected a whole number from %"
                     G_GINT64_FORMAT " to %" G_GINT64_FORMAT ", found '%s'", option, min, max,
                     text);
      return FALSE;
    }
  *value = v;
  return TRUE;
}
