/* strata — reading a small file of text: see textfile.h. */
#include "textfile.h"
#include "param.h"

#include <strata/plugin.h>

#include <errno.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <glib/gstdio.h>

char *
st_text_file_read (const char *path, gsize max_bytes, gsize *length, GError **error)
{
  /* Opened without blocking, so that a FIFO with no writer is refused by
   * the check below instead of waiting for one. */
  int fd = g_open (path, O_RDONLY | O_CLOEXEC | O_NONBLOCK, 0);
  if (fd < 0)
    {
      int saved = errno;
      g_set_error (error, ST_ERROR, ST_ERROR_IO, "cannot open: %s", g_strerror (saved));
      return NULL;
    }
  struct stat st;
  const char *problem = NULL;
  if (fstat (fd, &st) != 0)
    problem = g_strerror (errno);
  else if (S_ISDIR (st.st_mode))
    problem = "is a folder";
  else if (!S_ISREG (st.st_mode))
    problem = "not a regular file";
  else if ((guint64) st.st_size > max_bytes)
    {
      g_autofree char *limit = st_format_bytes (max_bytes);
      g_set_error (error, ST_ERROR, ST_ERROR_IO, "larger than the %s such a file may have",
                   limit);
      g_close (fd, NULL);
      return NULL;
    }
  if (problem)
    {
      g_set_error_literal (error, ST_ERROR, ST_ERROR_IO, problem);
      g_close (fd, NULL);
      return NULL;
    }
  /* The file may grow while it is read: read at most max_bytes, and one
   * more to tell. */
  char *text = g_malloc ((gsize) st.st_size + 2);
  gsize got = 0, want = (gsize) st.st_size + 1;
  while (got < want)
    {
      ssize_t n = read (fd, text + got, want - got);
      if (n < 0 && errno == EINTR)
        continue;
      if (n < 0)
        {
          int saved = errno;
          g_free (text);
          g_close (fd, NULL);
          g_set_error (error, ST_ERROR, ST_ERROR_IO, "cannot read: %s", g_strerror (saved));
          return NULL;
        }
      if (n == 0)
        break;
      got += (gsize) n;
    }
  g_close (fd, NULL);
  if (got > (gsize) st.st_size)
    got = (gsize) st.st_size;  /* grew while read: what it held when looked at */
  text[got] = '\0';
  if (length)
    *length = got;
  return text;
}
