/* strata — fuzz harness: control groups' CPU quota (core/context.c).
 *
 * The input is up to four texts separated by NUL bytes: /proc/self/cgroup,
 * /proc/self/mountinfo, and what the limit files hold (cpu.max and
 * cpu.cfs_quota_us get the third, cpu.cfs_period_us the fourth), written
 * under a folder of the harness's own at sys/fs/cgroup/ and one level
 * below, at sys/fs/cgroup/g/. */
#include "fuzz.h"

#include "context.h"

#include <glib/gstdio.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

static void
put (const char *dir, const char *name, const char *text)
{
  g_autofree char *path = g_build_filename (dir, name, NULL);
  g_file_set_contents (path, text, -1, NULL);
}

static char *root;             /* the harness's folder, made once */

/* Removes the harness's folder and what it wrote there, at exit. */
static void
remove_root (void)
{
  const char *dirs[] = { "sys/fs/cgroup/g", "sys/fs/cgroup", "sys/fs", "sys", "" };
  const char *files[] = { "cpu.max", "cpu.cfs_quota_us", "cpu.cfs_period_us" };
  for (guint d = 0; d < G_N_ELEMENTS (dirs); d++)
    {
      g_autofree char *dir = g_build_filename (root, dirs[d], NULL);
      for (guint f = 0; f < G_N_ELEMENTS (files); f++)
        {
          g_autofree char *path = g_build_filename (dir, files[f], NULL);
          g_unlink (path);
        }
      g_rmdir (dir);
    }
}

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
  fuzz_init ();
  if (!root)
    {
      root = g_dir_make_tmp ("strata-fuzz-cgroup-XXXXXX", NULL);
      g_assert (root);
      atexit (remove_root);
    }
  /* The texts, NUL-terminated: the input's parts past its NULs. */
  g_autofree char *copy = g_malloc (size + 1);
  memcpy (copy, data, size);
  copy[size] = '\0';
  const char *parts[4] = { "", "", "", "" };
  const char *c = copy;
  for (int i = 0; i < 4 && c <= copy + size; i++)
    {
      parts[i] = c;
      c += strlen (c) + 1;
    }
  g_autofree char *top = g_build_filename (root, "sys", "fs", "cgroup", NULL);
  g_autofree char *below = g_build_filename (top, "g", NULL);
  g_assert (g_mkdir_with_parents (below, 0700) == 0);
  const char *dirs[] = { top, below };
  for (guint i = 0; i < G_N_ELEMENTS (dirs); i++)
    {
      put (dirs[i], "cpu.max", parts[2]);
      put (dirs[i], "cpu.cfs_quota_us", parts[2]);
      put (dirs[i], "cpu.cfs_period_us", parts[3]);
    }
  double quota = st_cgroup_cpu_quota (parts[0], parts[1], root);
  g_assert (quota >= 0 && isfinite (quota));
  return 0;
}
