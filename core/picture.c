/* strata — pictures drawn with cairo (plots, filter pictures), written as
 * PNG files atomically. */
#include "picture.h"
#include "atomic.h"

#include <strata/error.h>
#include <cairo.h>
#include <errno.h>

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
st_picture_write_png (cairo_surface_t *surface, const char *path, const char *what,
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
