/* strata — the error domain of the core and of plugins: every GError the
 * library and its plugins set is in ST_ERROR, with one of these codes.
 * plugin.h includes it; a program that only reads images or runs
 * pipelines can include it alone. */
#pragma once

#include <glib.h>

G_BEGIN_DECLS

/* Error domain of the core and of plugins.  A plugin's callbacks set errors
 * in it (or any domain); the core prefixes the pipeline file and stage name,
 * so a message says only what is wrong: "expected 1 or 3 channels, found 4". */
#define ST_ERROR (st_error_quark ())
GQuark st_error_quark (void);

typedef enum {
  ST_ERROR_FAILED,     /* anything else */
  ST_ERROR_USAGE,      /* bad command-line option */
  ST_ERROR_PIPELINE,   /* malformed pipeline file or inline chain; parameters that clash */
  ST_ERROR_SHAPE,      /* shapes that do not fit together: what infer usually reports */
  ST_ERROR_PLUGIN,     /* a plugin that cannot be loaded or used */
  ST_ERROR_IMAGE,      /* an image that cannot be read or written */
  ST_ERROR_WEIGHTS,    /* a malformed weights file or one that does not fit */
  ST_ERROR_DATA,       /* a malformed dataset */
  ST_ERROR_IO,         /* a file that cannot be read or written */
  ST_ERROR_INTERRUPTED, /* stopped by the user (Ctrl-C, SIGTERM): not a failure of the input */
  ST_ERROR_MEMORY,     /* more memory than the limit (--max-memory) allows */
} StErrorCode;

G_END_DECLS
