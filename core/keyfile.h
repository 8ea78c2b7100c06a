/* strata — the key-file syntax of pipeline files, read in one pass that
 * names the line of every complaint. */
#pragma once

#include <glib.h>

G_BEGIN_DECLS

/* A group of the file: a stage, or [pipeline].  Names, keys and values
 * point into the text's lines, which the StKeyText owns. */
typedef struct {
  const char *name;
  int line;                    /* of its header */
  GPtrArray *keys;             /* const char *, in file order */
  GPtrArray *values;           /* const char *, as written (escapes unresolved) */
} StKeyGroup;

typedef struct {
  char *buffer;                /* a copy of the text, cut into lines */
  GPtrArray *groups;           /* StKeyGroup *, in file order */
} StKeyText;

void st_key_text_clear (StKeyText *t);
G_DEFINE_AUTO_CLEANUP_CLEAR_FUNC (StKeyText, st_key_text_clear)

/* Cuts text into groups; every error starts with "name: " and names the
 * line.  Repeated groups and repeated keys in a group are errors. */
gboolean st_key_text_parse (const char *name, const char *text, StKeyText *out,
                            GError **error);
/* A value as GKeyFile reads one: \s \n \t \r and \\ stand for a space,
 * newline, tab, return and backslash; any other escape is an error. */
char    *st_key_unescape (const char *raw, GError **error);
/* Splits a list at any of the separators, each item stripped of spaces;
 * empty items stay (the caller decides).  Linear: no regular expression. */
char   **st_key_split_list (const char *text, const char *separators);

G_END_DECLS
