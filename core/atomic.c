/* strata — writing a file atomically: see atomic.h. */
#include "atomic.h"

#include <strata/plugin.h>

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <unistd.h>

#include <glib/gstdio.h>

struct _StAtomicFile {
  char *path;
  char *temp_path;
  FILE *fp;
  int error_code;
  StAtomicFileFlags flags;
};

static void
atomic_file_free (StAtomicFile *f)
{
  g_free (f->path);
  g_free (f->temp_path);
  g_free (f);
}

StAtomicFile *
st_atomic_file_new (const char *path, int error_code, StAtomicFileFlags flags,
                    GError **error)
{
  g_return_val_if_fail (path != NULL, NULL);
  g_return_val_if_fail (error == NULL || *error == NULL, NULL);

  /* A hidden name in the same folder, so rename() is atomic and never crosses
   * file systems; the base name is shortened so the temporary name stays
   * within NAME_MAX. */
  g_autofree char *dir = g_path_get_dirname (path);
  g_autofree char *base = g_path_get_basename (path);
  if (strlen (base) > 200)
    base[200] = '\0';
  g_autofree char *temp_name = g_strdup_printf (".%s.XXXXXX", base);
  g_autofree char *temp_path = g_build_filename (dir, temp_name, NULL);
  /* 0666 through the umask, as for any new file (g_mkstemp would use 0600). */
  int fd = g_mkstemp_full (temp_path, O_WRONLY | O_CLOEXEC, 0666);
  if (fd < 0)
    {
      int saved = errno;
      g_set_error (error, ST_ERROR, error_code, "%s: cannot create a temporary file in %s: %s",
                   path, dir, g_strerror (saved));
      return NULL;
    }
  FILE *fp = fdopen (fd, "wb");
  if (!fp)
    {
      int saved = errno;
      close (fd);
      g_unlink (temp_path);
      g_set_error (error, ST_ERROR, error_code, "%s: cannot write: %s", path,
                   g_strerror (saved));
      return NULL;
    }

  StAtomicFile *f = g_new0 (StAtomicFile, 1);
  f->path = g_strdup (path);
  f->temp_path = g_steal_pointer (&temp_path);
  f->fp = fp;
  f->error_code = error_code;
  f->flags = flags;
  return f;
}

FILE *
st_atomic_file_stream (StAtomicFile *f)
{
  g_return_val_if_fail (f != NULL, NULL);
  return f->fp;
}

gboolean
st_atomic_file_commit (StAtomicFile *f, GError **error)
{
  g_return_val_if_fail (f != NULL, FALSE);
  g_return_val_if_fail (error == NULL || *error == NULL, FALSE);

  /* With ST_ATOMIC_FILE_SYNC, on disk before the rename makes it the file. */
  const char *what = "cannot write";
  int saved = 0;
  errno = 0;
  if (fflush (f->fp) != 0)
    saved = errno ? errno : EIO;
  else if (ferror (f->fp))
    saved = EIO;  /* an earlier write failed; its errno is gone */
  else if ((f->flags & ST_ATOMIC_FILE_SYNC) && fsync (fileno (f->fp)) != 0)
    saved = errno;
  if (fclose (f->fp) != 0 && saved == 0)
    saved = errno ? errno : EIO;
  f->fp = NULL;
  if (saved == 0 && g_rename (f->temp_path, f->path) != 0)
    {
      saved = errno;
      what = "cannot replace the file: cannot rename the temporary file over it";
    }
  if (saved != 0)
    {
      g_unlink (f->temp_path);
      g_set_error (error, ST_ERROR, f->error_code, "%s: %s: %s", f->path, what,
                   g_strerror (saved));
    }
  atomic_file_free (f);
  return saved == 0;
}

void
st_atomic_file_abort (StAtomicFile *f)
{
  if (!f)
    return;
  if (f->fp)
    fclose (f->fp);
  g_unlink (f->temp_path);
  atomic_file_free (f);
}

/* ---- PNG pictures from cairo ------------------------------------------------ */

typedef struct {
  FILE *fp;
  int saved;  /* errno of the failed write, 0 if none */
} PngSink;

static cairo_status_t
png_sink_write (void *closure, const unsigned char *data, unsigned int length)
{
  PngSink *sink = closure;
  errno = 0;
  if (fwrite (data, 1, length, sink->fp) != length)
    {
      sink->saved = errno ? errno : EIO;
      return CAIRO_STATUS_WRITE_ERROR;
    }
  return CAIRO_STATUS_SUCCESS;
}

gboolean
st_atomic_write_png (cairo_surface_t *surface, const char *path, const char *what,
                     GError **error)
{
  g_return_val_if_fail (surface != NULL && path != NULL && what != NULL, FALSE);
  g_return_val_if_fail (error == NULL || *error == NULL, FALSE);

  StAtomicFile *f = st_atomic_file_new (path, ST_ERROR_IO, ST_ATOMIC_FILE_SYNC, error);
  if (!f)
    return FALSE;
  PngSink sink = { st_atomic_file_stream (f), 0 };
  cairo_status_t status = cairo_surface_write_to_png_stream (surface, png_sink_write, &sink);
  if (status != CAIRO_STATUS_SUCCESS)
    {
      /* cairo says only "error while writing"; errno says why (a full disk). */
      st_atomic_file_abort (f);
      g_set_error (error, ST_ERROR, ST_ERROR_IO, "%s: cannot write the %s: %s", path, what,
                   sink.saved ? g_strerror (sink.saved) : cairo_status_to_string (status));
      return FALSE;
    }
  return st_atomic_file_commit (f, error);
}
