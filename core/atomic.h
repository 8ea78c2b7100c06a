/* strata — writing a file atomically, so that readers (and a later run)
 * see the old file or the complete new one, never a partial one, and a
 * failed or interrupted write leaves nothing behind.
 *
 * On Linux the contents go to an unnamed file (O_TMPFILE) in the target's
 * folder, linked into place when complete: until then it has no name, so
 * even a SIGKILL or a power cut leaves nothing to clean up.  Where the file
 * system refuses O_TMPFILE, a hidden temporary ".NAME.XXXXXX" beside the
 * target is renamed over it instead (and removed on failure or abort).
 * Replacing an existing file links the finished file to a hidden name and
 * renames that over the target, since linkat cannot replace. */
#pragma once

#include <glib.h>
#include <stdio.h>

G_BEGIN_DECLS

typedef struct _StAtomicFile StAtomicFile;

typedef enum {
  ST_ATOMIC_FILE_NONE = 0,
  /* fsync before the file takes its name, so a crash leaves the old
   * contents or the new ones, never an empty file; costs a disk flush per
   * file. */
  ST_ATOMIC_FILE_SYNC = 1 << 0,
} StAtomicFileFlags;

/* Opens a new file to be given path's name when committed (mode 0666 &
 * ~umask).  path "-" is standard output: written straight through, so
 * there is nothing to undo on failure.  Errors, here and in
 * st_atomic_file_commit, are in the ST_ERROR domain with error_code and
 * start with path ("PATH: cannot write: No space left on device"). */
StAtomicFile *st_atomic_file_new (const char *path, int error_code, StAtomicFileFlags flags,
                                  GError **error);

/* The stream to write the contents to; write errors stay in its error
 * indicator (ferror) for st_atomic_file_commit to report. */
FILE *st_atomic_file_stream (StAtomicFile *f);

/* Flushes, fsyncs (with ST_ATOMIC_FILE_SYNC), gives the file path's name
 * (replacing what was there) and closes it; frees f.  On failure nothing
 * new is left and path is as it was. */
gboolean st_atomic_file_commit (StAtomicFile *f, GError **error);

/* Closes and discards the unfinished file; frees f.  NULL is a no-op. */
void st_atomic_file_abort (StAtomicFile *f);

/* Whether a file can be created in the folder dir, found by creating one
 * (and discarding it): permissions, read-only mounts and /proc all answer
 * truthfully, as root too.  The error is "DIR: cannot write here: REASON",
 * with error_code. */
gboolean st_atomic_check_folder (const char *dir, int error_code, GError **error);

G_DEFINE_AUTOPTR_CLEANUP_FUNC (StAtomicFile, st_atomic_file_abort)

G_END_DECLS
