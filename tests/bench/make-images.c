/* Makes the benchmark's inputs, with texture so that coding does real
 * work:
 *   make-images LARGE.jpg FOLDER COUNT    a 6000x4000 JPEG, COUNT 1024x768 JPEGs
 *   make-images --image PATH W H          one W x H image, its format from PATH
 *   make-images --mixed FOLDER COUNT      COUNT 1024x768 images, PNG, JPEG,
 *                                         TIFF, WebP, GIF and PNM in turn
 * Files already there are kept. */
#include "image.h"

#include <gif_lib.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

static StTensor *
texture (int w, int h, guint32 seed)
{
  StTensor *t = st_tensor_new0 (1, 3, h, w);
  GRand *rand = g_rand_new_with_seed (seed);
  double fx = g_rand_double_range (rand, 0.005, 0.05), fy = g_rand_double_range (rand, 0.005, 0.05);
  gsize plane = (gsize) w * h;
  for (int c = 0; c < 3; c++)
    for (int y = 0; y < h; y++)
      for (int x = 0; x < w; x++)
        t->data[c * plane + (gsize) y * w + x] =
          (float) (0.5 + 0.3 * sin (fx * x * (c + 1) + fy * y) + 0.1 * g_rand_double (rand));
  g_rand_free (rand);
  return t;
}

/* strata writes no GIF: the texture's green channel as 64 gray levels. */
static gboolean
make_gif (const char *path, const StTensor *t)
{
  const int w = t->shape.w, h = t->shape.h;
  int err = 0;
  GifFileType *gif = EGifOpenFileName (path, FALSE, &err);
  if (!gif)
    return FALSE;
  GifColorType colours[256] = { { 0 } };
  for (int i = 0; i < 64; i++)
    colours[i] = (GifColorType) { (GifByteType) (i * 4), (GifByteType) (i * 4),
                                  (GifByteType) (i * 4) };
  ColorMapObject *map = GifMakeMapObject (256, colours);
  gboolean ok = EGifPutScreenDesc (gif, w, h, 8, 0, map) == GIF_OK
                && EGifPutImageDesc (gif, 0, 0, w, h, FALSE, NULL) == GIF_OK;
  g_autofree GifPixelType *row = g_new (GifPixelType, w);
  const float *green = t->data + (gsize) w * h;
  for (int y = 0; ok && y < h; y++)
    {
      for (int x = 0; x < w; x++)
        row[x] = (GifPixelType) CLAMP ((int) (green[(gsize) y * w + x] * 63.0f + 0.5f), 0, 63);
      ok = EGifPutLine (gif, row, w) == GIF_OK;
    }
  ok &= EGifCloseFile (gif, &err) == GIF_OK;
  GifFreeMapObject (map);
  return ok;
}

/* A w x h image at path (its format from the name), unless there is one. */
static gboolean
make (const char *path, int w, int h, guint32 seed)
{
  if (g_file_test (path, G_FILE_TEST_EXISTS))
    return TRUE;
  g_autoptr (StTensor) t = texture (w, h, seed);
  if (g_str_has_suffix (path, ".gif"))
    {
      if (make_gif (path, t))
        return TRUE;
      fprintf (stderr, "%s: cannot write\n", path);
      return FALSE;
    }
  g_autoptr (GError) error = NULL;
  if (!st_image_save (t, path, ST_FORMAT_UNKNOWN, 8, 90, &error))
    {
      fprintf (stderr, "%s\n", error->message);
      return FALSE;
    }
  return TRUE;
}

int
main (int argc, char **argv)
{
  if (argc == 5 && g_str_equal (argv[1], "--image"))
    return make (argv[2], atoi (argv[3]), atoi (argv[4]), 1) ? 0 : 1;
  if (argc == 4 && g_str_equal (argv[1], "--mixed"))
    {
      static const char *const extensions[] = { "png", "jpg", "tif", "webp", "gif", "ppm" };
      g_mkdir_with_parents (argv[2], 0755);
      const int count = atoi (argv[3]);
      for (int i = 0; i < count; i++)
        {
          g_autofree char *name = g_strdup_printf ("%s/img%04d.%s", argv[2], i,
                                                   extensions[i % G_N_ELEMENTS (extensions)]);
          if (!make (name, 1024, 768, i + 2))
            return 1;
        }
      return 0;
    }
  if (argc != 4)
    {
      fprintf (stderr, "usage: make-images LARGE.jpg FOLDER COUNT\n"
               "       make-images --image PATH WIDTH HEIGHT\n"
               "       make-images --mixed FOLDER COUNT\n");
      return 2;
    }
  if (!make (argv[1], 6000, 4000, 1))
    return 1;
  g_mkdir_with_parents (argv[2], 0755);
  int count = atoi (argv[3]);
  for (int i = 0; i < count; i++)
    {
      g_autofree char *name = g_strdup_printf ("%s/img%04d.jpg", argv[2], i);
      if (!make (name, 1024, 768, i + 2))
        return 1;
    }
  return 0;
}
