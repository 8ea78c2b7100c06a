/* strata — runs a fuzz harness over files, without a fuzzer: the
 * regression test of each harness's corpus.
 *
 *   fuzz-NAME-corpus PATH...
 *
 * Each PATH is a file or a folder (its files, sorted by name, not
 * recursing); each file is one TAP case.  A crash, a sanitizer report or a
 * failed check in the harness ends the program, which the test counts as a
 * failure naming the last file begun. */
#include "fuzz.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static gint
compare_strings (gconstpointer a, gconstpointer b)
{
  return strcmp (*(const char *const *) a, *(const char *const *) b);
}

static gboolean
collect (const char *path, GPtrArray *files)
{
  if (!g_file_test (path, G_FILE_TEST_IS_DIR))
    {
      g_ptr_array_add (files, g_strdup (path));
      return TRUE;
    }
  g_autoptr (GError) error = NULL;
  g_autoptr (GDir) dir = g_dir_open (path, 0, &error);
  if (!dir)
    {
      printf ("Bail out! %s\n", error->message);
      return FALSE;
    }
  g_autoptr (GPtrArray) found = g_ptr_array_new ();
  for (const char *name; (name = g_dir_read_name (dir));)
    {
      char *file = g_build_filename (path, name, NULL);
      if (g_file_test (file, G_FILE_TEST_IS_REGULAR))
        g_ptr_array_add (found, file);
      else
        g_free (file);
    }
  g_ptr_array_sort (found, compare_strings);
  for (guint i = 0; i < found->len; i++)
    g_ptr_array_add (files, found->pdata[i]);
  return TRUE;
}

int
main (int argc, char **argv)
{
  g_autoptr (GPtrArray) files = g_ptr_array_new_with_free_func (g_free);
  for (int i = 1; i < argc; i++)
    if (!collect (argv[i], files))
      return 1;
  if (files->len == 0)
    {
      printf ("Bail out! no input files\n");
      return 1;
    }

  printf ("1..%u\n", files->len);
  for (guint i = 0; i < files->len; i++)
    {
      const char *path = files->pdata[i];
      g_autofree char *bytes = NULL;
      gsize size = 0;
      g_autoptr (GError) error = NULL;
      if (!g_file_get_contents (path, &bytes, &size, &error))
        {
          printf ("not ok %u - %s\n", i + 1, error->message);
          continue;
        }
      /* Named before the run, so a crash's output says which file. */
      printf ("# %s (%" G_GSIZE_FORMAT " bytes)\n", path, size);
      fflush (stdout);
      /* An exact-size copy, so ASan sees a read past the end (and never
       * NULL, as libFuzzer never passes NULL). */
      guint8 *copy = g_malloc (MAX (size, 1));
      memcpy (copy, bytes, size);
      LLVMFuzzerTestOneInput (copy, size);
      g_free (copy);
      g_autofree char *name = g_path_get_basename (path);
      printf ("ok %u - %s\n", i + 1, name);
    }
  return 0;
}
