/* strata — writing a file atomically: into a temporary file beside it, then
 * renamed over it, so readers see the old file or the new one, never a
 * partial one, and a failed write leaves nothing behind. */
#pragma once

#include <cairo.h>
#include <glib.h>
#include <stdio.h>

G_BEGIN_DECLS

typedef struct _StAtomicFile StAtomicFile;

typedef enum {
  ST_ATOMIC_FILE_NONE = 0,
  /* fsync before the rename, so a crash leaves the old contents or the new
   * ones, never an empty file; costs a disk flush per file. */
  ST_ATOMIC_FILE_SYNC = 1 << 0,
} StAtomicFileFlags;

/* Opens a new temporary file beside path (same folder, hidden name
 * ".NAME.XXXXXX", mode 0666 & ~umask) for writing.  Errors, here and in
 * st_atomic_file_commit, are in the ST_ERROR domain with error_code and
 * start with path ("PATH: cannot write: No space left on device"). */
StAtomicFile *st_atomic_file_new (const char *path, int error_code, StAtomicFileFlags flags,
                                  GError **error);

/* The stream to write the contents to; write errors stay in its error
 * indicator (ferror) for st_atomic_file_commit to report. */
FILE *st_atomic_file_stream (StAtomicFile *f);

/* Flushes, fsyncs (with ST_ATOMIC_FILE_SYNC), closes and renames the temporary file over path; frees f.
 * On failure the temporary file is unlinked and path is left as it was. */
gboolean st_atomic_file_commit (StAtomicFile *f, GError **error);

/* Closes and unlinks the temporary file; frees f.  NULL is a no-op. */
void st_atomic_file_abort (StAtomicFile *f);

/* Writes surface as a PNG file at path, atomically and synced; errors are
 * ST_ERROR_IO, "PATH: cannot write the WHAT: REASON" when the PNG cannot be
 * written. */
gboolean st_atomic_write_png (cairo_surface_t *surface, const char *path, const char *what,
                              GError **error);

G_DEFINE_AUTOPTR_CLEANUP_FUNC (StAtomicFile, st_atomic_file_abort)

G_END_DECLS
