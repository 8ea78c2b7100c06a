/* `strata run`, `strata plugins` and `strata inspect` end to end: the CLI
 * run as a user runs it, on folders this test makes. */
#include "image.h"
#include "testutil.h"

#include <glib/gstdio.h>
#include <string.h>

static const char *exe;

static void
write_image (const char *path, int c, int h, int w, int bit_depth)
{
  g_autoptr (StTensor) t = st_tensor_new0 (1, c, h, w);
  for (gsize i = 0; i < st_tensor_numel (t); i++)
    t->data[i] = (float) ((i * 37) % 256) / 255.0f;
  g_autoptr (GError) error = NULL;
  g_assert_true (st_image_save (t, path, st_image_format_from_name (path), bit_depth, 95, &error));
  g_assert_no_error (error);
}

static void
truncate_copy (const char *src, const char *dst, double fraction)
{
  g_autofree char *data = NULL;
  gsize len;
  g_assert_true (g_file_get_contents (src, &data, &len, NULL));
  tu_write_bytes (dst, data, (gsize) (len * fraction));
}

/* Counts regular files below dir, and any left-over temporary names. */
static int
count_files (const char *dir, int *temporaries)
{
  g_autoptr (GDir) d = g_dir_open (dir, 0, NULL);
  if (!d)
    return 0;
  int n = 0;
  const char *name;
  while ((name = g_dir_read_name (d)))
    {
      g_autofree char *path = g_build_filename (dir, name, NULL);
      if (g_file_test (path, G_FILE_TEST_IS_DIR))
        n += count_files (path, temporaries);
      else
        {
          n++;
          if (name[0] == '.' && temporaries)
            (*temporaries)++;
        }
    }
  return n;
}

static void
test_folder_with_bad_images (void)
{
  g_autofree char *tmp = tu_make_tmpdir ("strata-run-XXXXXX");
  g_autofree char *in = g_build_filename (tmp, "in", NULL);
  g_autofree char *sub = g_build_filename (in, "sub", "deeper", NULL);
  g_autofree char *out = g_build_filename (tmp, "out", NULL);
  g_mkdir_with_parents (sub, 0755);

  g_autofree char *good1 = g_build_filename (in, "a.png", NULL);
  g_autofree char *good2 = g_build_filename (in, "B.JPG", NULL);
  g_autofree char *good3 = g_build_filename (sub, "c.jpeg", NULL);
  g_autofree char *good4 = g_build_filename (sub, "d16.png", NULL);
  write_image (good1, 3, 31, 17, 8);
  write_image (good2, 3, 24, 40, 8);
  write_image (good3, 1, 9, 9, 8);
  write_image (good4, 4, 12, 10, 16);

  g_autofree char *trunc_png = g_build_filename (in, "trunc.png", NULL);
  g_autofree char *trunc_jpg = g_build_filename (in, "trunc.jpg", NULL);
  truncate_copy (good1, trunc_png, 0.5);
  truncate_copy (good2, trunc_jpg, 0.5);
  g_autofree char *empty = g_build_filename (in, "empty.png", NULL);
  tu_write_bytes (empty, "", 0);
  g_autofree char *text = g_build_filename (sub, "notes.jpg", NULL);
  tu_write_bytes (text, "just some text\n", 15);
  g_autofree char *noise = g_build_filename (in, "noise.png", NULL);
  guint8 random_bytes[512];
  for (int i = 0; i < 512; i++)
    random_bytes[i] = (guint8) g_test_rand_int ();
  tu_write_bytes (noise, random_bytes, sizeof random_bytes);
  /* A PNG whose header declares 100000 x 100000 pixels, with a valid CRC. */
  guint8 huge[33] = {
    0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n', 0, 0, 0, 13, 'I', 'H', 'D', 'R',
    0x00, 0x01, 0x86, 0xa0, 0x00, 0x01, 0x86, 0xa0, 8, 2, 0, 0, 0,
  };
  guint32 crc = tu_crc32 (huge + 12, 17);
  for (int i = 0; i < 4; i++)
    huge[29 + i] = (guint8) (crc >> (24 - 8 * i));
  g_autofree char *huge_path = g_build_filename (in, "huge.png", NULL);
  tu_write_bytes (huge_path, huge, sizeof huge);
  g_autofree char *ignored = g_build_filename (in, "readme.txt", NULL);
  tu_write_bytes (ignored, "not an image name", 17);

  TuResult r = tu_run (exe, "run", "sharpen", in, "-o", out, "--quiet", NULL);
  g_assert_cmpint (r.status, ==, 1);
  const char *bad[] = { trunc_png, trunc_jpg, empty, text, noise, huge_path };
  for (guint i = 0; i < G_N_ELEMENTS (bad); i++)
    {
      g_autofree char *line = g_strdup_printf ("%s: ", bad[i]);
      if (!strstr (r.err, line))
        g_error ("no error line for %s in: %s", bad[i], r.err);
    }
  g_assert_true (strstr (r.err, "100000x100000"));
  tu_result_clear (&r);

  int temporaries = 0;
  g_assert_cmpint (count_files (out, &temporaries), ==, 4);
  g_assert_cmpint (temporaries, ==, 0);
  g_autofree char *o4 = g_build_filename (out, "sub", "deeper", "d16.png", NULL);
  StImageInfo info;
  g_autoptr (GError) error = NULL;
  g_autoptr (StTensor) t = st_image_load (o4, 0, &info, &error);
  g_assert_no_error (error);
  g_assert_cmpint (info.bit_depth, ==, 16);
  g_assert_true (info.has_alpha);
  g_assert_cmpint (t->shape.c, ==, 4);

  /* Alpha passes through the filter unchanged. */
  g_autoptr (StTensor) src = st_image_load (good4, 0, NULL, &error);
  gsize plane = (gsize) t->shape.h * t->shape.w;
  for (gsize i = 0; i < plane; i++)
    g_assert_cmpfloat (t->data[3 * plane + i], ==, src->data[3 * plane + i]);

  /* Run again: everything there is skipped; with --overwrite, rewritten. */
  r = tu_run (exe, "run", "sharpen", good1, good2, "-o", out, NULL);
  g_assert_cmpint (r.status, ==, 0);
  g_assert_true (strstr (r.err, "0 written, 2 skipped, 0 failed"));
  tu_result_clear (&r);
  r = tu_run (exe, "run", "sharpen", good1, good2, "-o", out, "--overwrite", NULL);
  g_assert_cmpint (r.status, ==, 0);
  g_assert_true (strstr (r.err, "2 written, 0 skipped, 0 failed"));
  tu_result_clear (&r);
  tu_remove_tree (tmp);
}

static void
test_single_file_and_format (void)
{
  g_autofree char *tmp = tu_make_tmpdir ("strata-run-XXXXXX");
  g_autofree char *in = g_build_filename (tmp, "photo.png", NULL);
  g_autofree char *out = g_build_filename (tmp, "result.jpg", NULL);
  write_image (in, 3, 20, 30, 8);
  TuResult r = tu_run (exe, "run", "grayscale ! kernel preset=emboss", in, "-o", out, "--quality", "80", NULL);
  g_assert_cmpint (r.status, ==, 0);
  tu_result_clear (&r);
  StImageInfo info;
  g_autoptr (GError) error = NULL;
  g_autoptr (StTensor) t = st_image_load (out, 0, &info, &error);
  g_assert_no_error (error);
  g_assert_cmpint (info.format, ==, ST_FORMAT_JPEG);
  g_assert_cmpint (t->shape.c, ==, 1);
  g_assert_cmpint (t->shape.w, ==, 30);

  /* --format into a folder (named with a final slash) changes the extension. */
  g_autofree char *outdir = g_build_filename (tmp, "conv/", NULL);
  r = tu_run (exe, "run", "blur", in, "-o", outdir, "--format", "jpeg", "--quiet", NULL);
  g_assert_cmpint (r.status, ==, 0);
  tu_result_clear (&r);
  g_autofree char *converted = g_build_filename (outdir, "photo.jpg", NULL);
  g_assert_true (g_file_test (converted, G_FILE_TEST_IS_REGULAR));

  /* The input is never overwritten. */
  g_autofree char *before = NULL, *after = NULL;
  gsize len_before, len_after;
  g_file_get_contents (in, &before, &len_before, NULL);
  r = tu_run (exe, "run", "sharpen", in, "-o", in, "--overwrite", NULL);
  g_assert_cmpint (r.status, ==, 1);
  g_assert_true (strstr (r.err, "overwrite the input"));
  tu_result_clear (&r);
  g_file_get_contents (in, &after, &len_after, NULL);
  g_assert_cmpmem (before, len_before, after, len_after);
  tu_remove_tree (tmp);
}

static void
test_usage_and_pipeline_errors (void)
{
  g_autofree char *tmp = tu_make_tmpdir ("strata-run-XXXXXX");
  g_autofree char *in = g_build_filename (tmp, "x.png", NULL);
  g_autofree char *out = g_build_filename (tmp, "o", NULL);
  write_image (in, 3, 8, 8, 8);
  TuResult r = tu_run (exe, "run", "kernel preset=sharpn", in, "-o", out, NULL);
  g_assert_cmpint (r.status, ==, 2);
  g_assert_true (strstr (r.err, "key 'preset'"));
  g_assert_true (strstr (r.err, "found 'sharpn'"));
  tu_result_clear (&r);
  r = tu_run (exe, "run", "sharpen", in, NULL);
  g_assert_cmpint (r.status, ==, 2);
  tu_result_clear (&r);
  r = tu_run (exe, "run", "sharpen", in, "-o", out, "--quality", "0", NULL);
  g_assert_cmpint (r.status, ==, 2);
  tu_result_clear (&r);
  r = tu_run (exe, "frobnicate", NULL);
  g_assert_cmpint (r.status, ==, 2);
  tu_result_clear (&r);
  g_autofree char *bad_ini = g_build_filename (tmp, "bad.ini", NULL);
  tu_write_bytes (bad_ini, "[a]\ntype=kernel\nsize=-3\n", 24);
  r = tu_run (exe, "run", bad_ini, in, "-o", out, NULL);
  g_assert_cmpint (r.status, ==, 2);
  g_assert_true (strstr (r.err, bad_ini));
  g_assert_true (strstr (r.err, "stage 'a'"));
  g_assert_true (strstr (r.err, "key 'size'"));
  tu_result_clear (&r);
  /* A missing input is a failed image, not a crash. */
  g_autofree char *missing = g_build_filename (tmp, "missing.png", NULL);
  r = tu_run (exe, "run", "sharpen", missing, in, "-o", out, "--quiet", NULL);
  g_assert_cmpint (r.status, ==, 1);
  g_assert_true (strstr (r.err, "missing.png: no such file"));
  tu_result_clear (&r);
  tu_remove_tree (tmp);
}

static void
test_plugins_listing (void)
{
  TuResult r = tu_run (exe, "plugins", NULL);
  g_assert_cmpint (r.status, ==, 0);
  const char *kinds[] = { "kernel", "grayscale", "add", "magnitude" };
  for (guint i = 0; i < G_N_ELEMENTS (kinds); i++)
    g_assert_true (strstr (r.out, kinds[i]));
  g_assert_true (strstr (r.out, "." G_MODULE_SUFFIX));
  tu_result_clear (&r);

  r = tu_run (exe, "plugins", "kernel", NULL);
  g_assert_cmpint (r.status, ==, 0);
  const char *params[] = { "preset", "matrix", "border", "stride", "padding", "flip",
                           "zero|edge|reflect|wrap", "default: reflect" };
  for (guint i = 0; i < G_N_ELEMENTS (params); i++)
    if (!strstr (r.out, params[i]))
      g_error ("'strata plugins kernel' lacks '%s'", params[i]);
  tu_result_clear (&r);

  r = tu_run (exe, "plugins", "kernal", NULL);
  g_assert_cmpint (r.status, ==, 2);
  g_assert_true (strstr (r.err, "'kernel'"));
  tu_result_clear (&r);
}

static void
test_inspect (void)
{
  TuResult r = tu_run (exe, "inspect", "edges", NULL);
  g_assert_cmpint (r.status, ==, 0);
  g_assert_true (strstr (r.out, "magnitude"));
  g_assert_true (strstr (r.out, "sx,sy"));
  tu_result_clear (&r);
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  exe = g_getenv ("STRATA_EXE");
  if (!exe)
    {
      g_printerr ("STRATA_EXE is not set: run this test through 'meson test'\n");
      return 1;
    }
  g_test_add_func ("/run/folder-with-bad-images", test_folder_with_bad_images);
  g_test_add_func ("/run/single-file-and-format", test_single_file_and_format);
  g_test_add_func ("/run/usage-and-pipeline-errors", test_usage_and_pipeline_errors);
  g_test_add_func ("/cli/plugins", test_plugins_listing);
  g_test_add_func ("/cli/inspect", test_inspect);
  return g_test_run ();
}
