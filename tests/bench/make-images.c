/* Makes the benchmark's inputs: one large RGB JPEG and a folder of smaller
 * ones, with texture so that JPEG coding does real work. */
#include "image.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>

static gboolean
make (const char *path, int w, int h, guint32 seed)
{
  g_autoptr (StTensor) t = st_tensor_new0 (1, 3, h, w);
  GRand *rand = g_rand_new_with_seed (seed);
  double fx = g_rand_double_range (rand, 0.005, 0.05), fy = g_rand_double_range (rand, 0.005, 0.05);
  gsize plane = (gsize) w * h;
  for (int c = 0; c < 3; c++)
    for (int y = 0; y < h; y++)
      for (int x = 0; x < w; x++)
        t->data[c * plane + (gsize) y * w + x] =
          (float) (0.5 + 0.3 * sin (fx * x * (c + 1) + fy * y) + 0.1 * g_rand_double (rand));
  g_rand_free (rand);
  g_autoptr (GError) error = NULL;
  if (!st_image_save (t, path, ST_FORMAT_JPEG, 8, 90, &error))
    {
      fprintf (stderr, "%s\n", error->message);
      return FALSE;
    }
  return TRUE;
}

int
main (int argc, char **argv)
{
  if (argc != 4)
    {
      fprintf (stderr, "usage: make-images LARGE.jpg FOLDER COUNT\n");
      return 2;
    }
  if (!g_file_test (argv[1], G_FILE_TEST_EXISTS) && !make (argv[1], 6000, 4000, 1))
    return 1;
  g_mkdir_with_parents (argv[2], 0755);
  int count = atoi (argv[3]);
  for (int i = 0; i < count; i++)
    {
      g_autofree char *name = g_strdup_printf ("%s/img%04d.jpg", argv[2], i);
      if (!g_file_test (name, G_FILE_TEST_EXISTS) && !make (name, 1024, 768, i + 2))
        return 1;
    }
  return 0;
}
