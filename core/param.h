/* strata — parsing and validating stage parameters from their specs. */
#pragma once

#include <strata/strata.h>

G_BEGIN_DECLS

/* Parses text as spec says and stores it in config at spec->offset.  The
 * error says what was expected and what was found, without naming the
 * stage or key (the caller does). */
gboolean    st_param_parse (const StParamSpec *spec, const char *text,
                            void *config, GError **error);
/* Frees the strings and lists stored in config. */
void        st_param_clear (const StKind *kind, void *config);
/* "int", "double list", "enum" ... */
const char *st_param_type_name (StParamType type);
/* The range or choices in words ("1 to 64", "zero|edge|reflect|wrap"), or
 * NULL when unconstrained. */
char       *st_param_describe_range (const StParamSpec *spec);

G_END_DECLS

G_BEGIN_DECLS
/* strcmp for g_ptr_array_sort on an array of strings. */
gint  st_compare_strings (gconstpointer a, gconstpointer b);
/* The names in dir, hidden ones (".name") left out, sorted with strcmp: an
 * order that does not depend on the file system's. */
GPtrArray *st_dir_sorted_names (GDir *dir);
/* Levenshtein distance, for "did you mean" suggestions. */
int   st_edit_distance (const char *a, const char *b);
/* The candidates within a small distance of name (at most max, closest
 * first) joined as "'a', 'b'", or NULL when none is close. */
char *st_suggest (const char *name, const char *const *candidates, int max);
/* Bytes in decimal units with one decimal, "68.7 GB", plain ASCII (unlike
 * g_format_size's no-break space): for messages about the memory limit. */
char *st_format_bytes (guint64 bytes);
G_END_DECLS
