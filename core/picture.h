/* strata — pictures drawn with cairo (plots, filter pictures), written as
 * PNG files. */
#pragma once

#include <glib.h>

/* As cairo.h declares it (C11 allows the repeat), so that users of the
 * writer need not build against cairo. */
typedef struct _cairo_surface cairo_surface_t;

G_BEGIN_DECLS

/* Writes surface as a PNG file at path, atomically and synced; errors are
 * ST_ERROR_IO, "PATH: cannot write the WHAT: REASON" when the PNG cannot be
 * written. */
gboolean st_picture_write_png (cairo_surface_t *surface, const char *path, const char *what,
                               GError **error);

G_END_DECLS
