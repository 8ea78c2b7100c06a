/* strata — checking the text given to a front end's options. */
#pragma once

#include <strata/strata.h>

G_BEGIN_DECLS

/* An integer option given as text, in [min, max]; text NULL (not given)
 * keeps *value.  Taking the text rather than G_OPTION_ARG_INT leaves no
 * value that means "not given", and out-of-range numbers are refused, not
 * wrapped.  The error (ST_ERROR_USAGE) names option, the range and text. */
gboolean st_option_parse_int (const char *option, const char *text, gint64 min, gint64 max,
                              gint64 *value, GError **error);

G_END_DECLS
