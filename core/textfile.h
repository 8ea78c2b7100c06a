/* strata — reading a small file of text that a user named: a pipeline, a
 * labels list, a training log. */
#pragma once

#include <glib.h>

G_BEGIN_DECLS

/* The whole of path, NUL-terminated, when it is a regular file of at most
 * max_bytes (length may be NULL).  A device, a FIFO or a folder is refused
 * rather than read: /dev/zero would fill memory and a FIFO could block
 * forever.  Errors (ST_ERROR_IO) say what is wrong, not the file: the
 * caller names it in its own words. */
char *st_text_file_read (const char *path, gsize max_bytes, gsize *length, GError **error);

G_END_DECLS
