/* strata — writing a file atomically: see atomic.h. */
#define _GNU_SOURCE  /* O_TMPFILE, AT_EMPTY_PATH */
#include "atomic.h"

#include <strata/plugin.h>

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <unistd.h>

#include <glib/gstdio.h>

struct _StAtomicFile {
  char *path;
  char *temp_path;   /* the named temporary; NULL for an unnamed one or stdout */
  FILE *fp;
  gboolean unnamed;  /* O_TMPFILE: no name until linked into place */
  gboolean to_stdout;
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

/* A hidden name beside path: the same folder, so rename() is atomic and
 * never crosses file systems; the base name is shortened so the temporary
 * name stays within NAME_MAX.  Ends in XXXXXX for g_mkstemp. */
static char *
hidden_template (const char *path)
{
  g_autofree char *dir = g_path_get_dirname (path);
  g_autofree char *base = g_path_get_basename (path);
  if (strlen (base) > 200)
    base[200] = '\0';
  g_autofree char *temp_name = g_strdup_printf (".%s.XXXXXX", base);
  return g_build_filename (dir, temp_name, NULL);
}

/* Linking an O_TMPFILE file needs /proc (or CAP_DAC_READ_SEARCH for
 * AT_EMPTY_PATH); without /proc, named temporaries are used throughout. */
static gboolean
can_link_unnamed (void)
{
  static gsize answer;
  if (g_once_init_enter (&answer))
    g_once_init_leave (&answer, g_file_test ("/proc/self/fd", G_FILE_TEST_IS_DIR) ? 2 : 1);
  return answer == 2;
}

/* An unnamed file in dir, or -1 with errno; errno EOPNOTSUPP (or EISDIR,
 * EINVAL on kernels and file systems without O_TMPFILE) says to fall back. */
static int
open_unnamed (const char *dir)
{
#ifdef O_TMPFILE
  if (!can_link_unnamed ())
    {
      errno = EOPNOTSUPP;
      return -1;
    }
  return open (dir, O_TMPFILE | O_WRONLY | O_CLOEXEC, 0666);
#else
  errno = EOPNOTSUPP;
  return -1;
#endif
}

StAtomicFile *
st_atomic_file_new (const char *path, int error_code, StAtomicFileFlags flags,
                    GError **error)
{
  g_return_val_if_fail (path != NULL, NULL);
  g_return_val_if_fail (error == NULL || *error == NULL, NULL);

  StAtomicFile *f = g_new0 (StAtomicFile, 1);
  f->path = g_strdup (path);
  f->error_code = error_code;
  f->flags = flags;
  g_autofree char *dir = g_path_get_dirname (path);
  int fd;
  if (strcmp (path, "-") == 0)
    {
      /* A copy, so closing the stream leaves stdout open for the rest. */
      f->to_stdout = TRUE;
      fd = fcntl (STDOUT_FILENO, F_DUPFD_CLOEXEC, 3);
    }
  else
    {
      fd = open_unnamed (dir);
      f->unnamed = fd >= 0;
      if (fd < 0 && (errno == EOPNOTSUPP || errno == EISDIR || errno == EINVAL))
        {
          /* 0666 through the umask, as for any new file (g_mkstemp would use 0600). */
          f->temp_path = hidden_template (path);
          fd = g_mkstemp_full (f->temp_path, O_WRONLY | O_CLOEXEC, 0666);
        }
    }
  FILE *fp = fd >= 0 ? fdopen (fd, "wb") : NULL;
  if (!fp)
    {
      int saved = errno;
      if (fd >= 0)
        close (fd);
      if (fd >= 0 && f->temp_path)
        g_unlink (f->temp_path);
      if (f->to_stdout)
        g_set_error (error, ST_ERROR, error_code, "standard output: cannot write: %s",
                     g_strerror (saved));
      else
        g_set_error (error, ST_ERROR, error_code, "%s: cannot create a temporary file in %s: %s",
                     path, dir, g_strerror (saved));
      atomic_file_free (f);
      return NULL;
    }
  f->fp = fp;
  return f;
}

FILE *
st_atomic_file_stream (StAtomicFile *f)
{
  g_return_val_if_fail (f != NULL, NULL);
  return f->fp;
}

/* Gives the unnamed file fd the name target; 0 or an errno (EEXIST when
 * target exists). */
static int
link_unnamed (int fd, const char *target)
{
  char proc_path[64];
  g_snprintf (proc_path, sizeof proc_path, "/proc/self/fd/%d", fd);
  if (linkat (AT_FDCWD, proc_path, AT_FDCWD, target, AT_SYMLINK_FOLLOW) == 0)
    return 0;
  int saved = errno;
  if (saved == EEXIST)
    return saved;
#ifdef AT_EMPTY_PATH
  if (linkat (fd, "", AT_FDCWD, target, AT_EMPTY_PATH) == 0)
    return 0;
  if (errno == EEXIST)
    return EEXIST;
#endif
  return saved;
}

/* Puts the finished unnamed file at path, replacing what is there: linked
 * straight to path when that is free (nothing is ever visible but the
 * complete file); otherwise linked to a fresh hidden name and renamed over
 * path, the only way to replace a file atomically.  0 or an errno, with
 * *what saying which step failed. */
static int
place_unnamed (StAtomicFile *f, const char **what)
{
  int fd = fileno (f->fp);
  int saved = link_unnamed (fd, f->path);
  if (saved != EEXIST)
    return saved;
  g_autofree char *tmpl = hidden_template (f->path);
  const gsize suffix = strlen (tmpl) - 6;
  static const char letters[] = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
  for (int attempt = 0; attempt < 100 && saved == EEXIST; attempt++)
    {
      for (int i = 0; i < 6; i++)
        tmpl[suffix + i] = letters[g_random_int_range (0, sizeof letters - 1)];
      saved = link_unnamed (fd, tmpl);
    }
  if (saved != 0)
    return saved;
  if (g_rename (tmpl, f->path) != 0)
    {
      saved = errno;
      g_unlink (tmpl);
      *what = "cannot replace the file: cannot rename the finished file over it";
      return saved;
    }
  return 0;
}

gboolean
st_atomic_file_commit (StAtomicFile *f, GError **error)
{
  g_return_val_if_fail (f != NULL, FALSE);
  g_return_val_if_fail (error == NULL || *error == NULL, FALSE);

  /* With ST_ATOMIC_FILE_SYNC, on disk before it takes the name. */
  const char *what = "cannot write";
  int saved = 0;
  errno = 0;
  if (fflush (f->fp) != 0)
    saved = errno ? errno : EIO;
  else if (ferror (f->fp))
    saved = EIO;  /* an earlier write failed; its errno is gone */
  else if ((f->flags & ST_ATOMIC_FILE_SYNC) && !f->to_stdout && fsync (fileno (f->fp)) != 0)
    saved = errno;
  /* The unnamed file is linked while its descriptor is open. */
  if (saved == 0 && f->unnamed)
    saved = place_unnamed (f, &what);
  if (fclose (f->fp) != 0 && saved == 0)
    saved = errno ? errno : EIO;
  f->fp = NULL;
  if (saved == 0 && f->temp_path && g_rename (f->temp_path, f->path) != 0)
    {
      saved = errno;
      what = "cannot replace the file: cannot rename the temporary file over it";
    }
  if (saved != 0)
    {
      if (f->temp_path)
        g_unlink (f->temp_path);
      g_set_error (error, ST_ERROR, f->error_code, "%s: %s: %s",
                   f->to_stdout ? "standard output" : f->path, what, g_strerror (saved));
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
    fclose (f->fp);  /* an unnamed file vanishes with its last descriptor */
  if (f->temp_path)
    g_unlink (f->temp_path);
  atomic_file_free (f);
}

gboolean
st_atomic_check_folder (const char *dir, int error_code, GError **error)
{
  g_return_val_if_fail (dir != NULL, FALSE);
  g_autofree char *probe = g_build_filename (dir, "strata-probe", NULL);
  g_autoptr (GError) local = NULL;
  StAtomicFile *f = st_atomic_file_new (probe, error_code, ST_ATOMIC_FILE_NONE, &local);
  if (!f)
    {
      /* The reason, without the probe's name. */
      const char *reason = strrchr (local->message, ':');
      g_set_error (error, ST_ERROR, error_code, "%s: cannot write here:%s", dir,
                   reason ? reason + 1 : local->message);
      return FALSE;
    }
  st_atomic_file_abort (f);
  return TRUE;
}
