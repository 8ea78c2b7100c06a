/* `strata run`, `strata plugins` and `strata inspect` end to end: the CLI
 * run as a user runs it, on folders this test makes. */
#define _GNU_SOURCE  /* O_TMPFILE */
#include "atomic.h"
#include "image.h"
#include "progress.h"
#include "testutil.h"
#include "config.h"

#include <gio/gio.h>
#include <glib/gstdio.h>

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

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
  /* Replacing goes through a hidden name that is renamed over the file:
   * none is left, and the files are complete. */
  temporaries = 0;
  g_assert_cmpint (count_files (out, &temporaries), ==, 4);
  g_assert_cmpint (temporaries, ==, 0);
  g_autofree char *o1 = g_build_filename (out, "a.png", NULL);
  g_autoptr (StTensor) replaced = st_image_load (o1, 0, NULL, &error);
  g_assert_no_error (error);
  g_assert_cmpint (replaced->shape.w, ==, 17);
  tu_remove_tree (tmp);
}

/* PNM output chosen by the name or --format, keeping 16 bits; a PNM input;
 * GIF refused as an output format. */
static void
test_pnm_output (void)
{
  g_autofree char *tmp = tu_make_tmpdir ("strata-run-XXXXXX");
  g_autofree char *in = g_build_filename (tmp, "photo.png", NULL);
  g_autofree char *pgm = g_build_filename (tmp, "gray.pgm", NULL);
  write_image (in, 3, 20, 30, 16);
  TuResult r = tu_run (exe, "run", "grayscale", in, "-o", pgm, NULL);
  g_assert_cmpint (r.status, ==, 0);
  tu_result_clear (&r);
  g_autofree char *bytes = NULL;
  g_assert_true (g_file_get_contents (pgm, &bytes, NULL, NULL));
  g_assert_true (g_str_has_prefix (bytes, "P5\n30 20\n65535\n"));

  /* Into a folder with --format pnm: a PNG's extension becomes .pnm, a
   * PNM input keeps its name. */
  g_autofree char *outdir = g_build_filename (tmp, "conv/", NULL);
  r = tu_run (exe, "run", "blur", in, pgm, "-o", outdir, "--format", "pnm", "--quiet", NULL);
  g_assert_cmpint (r.status, ==, 0);
  tu_result_clear (&r);
  g_autofree char *from_png = g_build_filename (outdir, "photo.pnm", NULL);
  g_assert_true (g_file_test (from_png, G_FILE_TEST_IS_REGULAR));
  g_autofree char *converted = g_build_filename (outdir, "gray.pgm", NULL);
  StImageInfo info;
  g_autoptr (GError) error = NULL;
  g_autoptr (StTensor) t = st_image_load (converted, 0, &info, &error);
  g_assert_no_error (error);
  g_assert_cmpint (info.format, ==, ST_FORMAT_PNM);
  g_assert_cmpint (info.bit_depth, ==, 16);
  g_assert_cmpint (t->shape.c, ==, 1);

  /* GIF is read only: a GIF in a folder is written as a PNG. */
  g_autofree char *gif_dir = g_build_filename (tmp, "gifs", NULL);
  g_assert_cmpint (g_mkdir (gif_dir, 0755), ==, 0);
  g_autofree char *gif = g_build_filename (gif_dir, "dot.gif", NULL);
  /* 1x1, a two-colour table, index 0 transparent, the pixel index 0. */
  tu_write_bytes (gif, "GIF89a\x01\x00\x01\x00\x80\x00\x00\xff\xff\xff\x00\x00\x00"
                  "!\xf9\x04\x01\x00\x00\x00\x00,\x00\x00\x00\x00\x01\x00\x01\x00\x00"
                  "\x02\x02" "D\x01\x00;", 43);
  g_autofree char *gif_out = g_build_filename (tmp, "gif-out/", NULL);
  r = tu_run (exe, "run", "blur", gif_dir, "-o", gif_out, NULL);
  g_assert_cmpint (r.status, ==, 0);
  tu_result_clear (&r);
  g_autofree char *png = g_build_filename (gif_out, "dot.png", NULL);
  g_autoptr (StTensor) dot = st_image_load (png, 0, &info, &error);
  g_assert_no_error (error);
  g_assert_cmpint (info.format, ==, ST_FORMAT_PNG);
  g_assert_true (info.has_alpha);
  g_assert_cmpint (dot->shape.c, ==, 4);
  g_assert_cmpfloat (dot->data[3], ==, 0.0f);

  r = tu_run (exe, "run", "blur", in, "-o", outdir, "--format", "gif", NULL);
  g_assert_cmpint (r.status, ==, 2);
  g_assert_true (strstr (r.err, "--format gif: GIF is read only (write png, jpeg, tiff, webp or pnm)"));
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
  g_assert_cmpint (r.status, ==, 2);
  g_assert_true (strstr (r.err, "is the input itself"));
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

/* ---- Data safety ---------------------------------------------------------- */

static gboolean tmpfile_supported (const char *dir);

static char *
read_all (const char *path, gsize *len)
{
  char *data = NULL;
  g_autoptr (GError) error = NULL;
  g_assert_true (g_file_get_contents (path, &data, len, &error));
  g_assert_no_error (error);
  return data;
}

/* Asserts that path is a complete image of w x h pixels. */
static void
assert_complete_image (const char *path, int w, int h)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (StTensor) t = st_image_load (path, 0, NULL, &error);
  g_assert_no_error (error);
  g_assert_cmpint (t->shape.w, ==, w);
  g_assert_cmpint (t->shape.h, ==, h);
}

/* How many times needle occurs in haystack. */
static int
count_occurrences (const char *haystack, const char *needle)
{
  int n = 0;
  for (const char *p = haystack; (p = strstr (p, needle)); p += strlen (needle))
    n++;
  return n;
}

/* Names in dir, sorted, joined by spaces ("" when empty or missing). */
static char *
list_names (const char *dir)
{
  g_autoptr (GPtrArray) names = g_ptr_array_new_with_free_func (g_free);
  g_autoptr (GDir) d = g_dir_open (dir, 0, NULL);
  const char *name;
  while (d && (name = g_dir_read_name (d)))
    g_ptr_array_add (names, g_strdup (name));
  g_ptr_array_sort (names, st_compare_strings);
  g_ptr_array_add (names, NULL);
  return g_strjoinv (" ", (char **) names->pdata);
}

/* Case 1: photo.png and photo.jpg, -o the same folder, --format png
 * --overwrite: photo.jpg's output would be photo.png, an input. */
static void
test_input_never_replaced (void)
{
  g_autofree char *tmp = tu_make_tmpdir ("strata-run-XXXXXX");
  g_autofree char *dir = g_build_filename (tmp, "photos", NULL);
  g_mkdir (dir, 0755);
  g_autofree char *png = g_build_filename (dir, "photo.png", NULL);
  g_autofree char *jpg = g_build_filename (dir, "photo.jpg", NULL);
  write_image (png, 3, 20, 30, 8);
  write_image (jpg, 3, 24, 16, 8);
  gsize png_len, jpg_len;
  g_autofree char *png_before = read_all (png, &png_len);
  g_autofree char *jpg_before = read_all (jpg, &jpg_len);

  TuResult r = tu_run (exe, "run", "sharpen", dir, "-o", dir, "--format", "png", "--overwrite", NULL);
  g_assert_cmpint (r.status, ==, 2);
  g_assert_true (strstr (r.err, "photo.png: an input; the output of"));
  g_assert_true (strstr (r.err, "photo.jpg"));
  g_assert_true (strstr (r.err, "nothing was run"));
  tu_result_clear (&r);

  /* The same folder by another name (a symbolic link), and one file
   * named as the output of another: refused by identity. */
  g_autofree char *alias = g_build_filename (tmp, "alias", NULL);
  g_assert_cmpint (symlink (dir, alias), ==, 0);
  r = tu_run (exe, "run", "sharpen", jpg, png, "-o", alias, "--format", "png", "--overwrite", NULL);
  g_assert_cmpint (r.status, ==, 2);
  tu_result_clear (&r);
  r = tu_run (exe, "run", "sharpen", jpg, "-o", alias, "--format", "png", "--overwrite", NULL);
  g_assert_cmpint (r.status, ==, 0);  /* photo.png is not an input of this run */
  tu_result_clear (&r);
  g_free (png_before);
  png_before = read_all (png, &png_len);

  /* A hard link to an input in the output folder. */
  g_autofree char *out = g_build_filename (tmp, "out", NULL);
  g_mkdir (out, 0755);
  g_autofree char *hard = g_build_filename (out, "photo.png", NULL);
  g_assert_cmpint (link (png, hard), ==, 0);
  r = tu_run (exe, "run", "sharpen", dir, "-o", out, "--overwrite", NULL);
  g_assert_cmpint (r.status, ==, 2);
  g_assert_true (strstr (r.err, "photo.png"));
  tu_result_clear (&r);

  gsize len;
  g_autofree char *png_after = read_all (png, &len);
  g_assert_cmpmem (png_before, png_len, png_after, len);
  g_autofree char *jpg_after = read_all (jpg, &len);
  g_assert_cmpmem (jpg_before, jpg_len, jpg_after, len);
  g_autofree char *names = list_names (out);
  g_assert_cmpstr (names, ==, "photo.png");
  tu_remove_tree (tmp);
}

/* Case 2: several inputs with one output are refused before anything
 * runs, naming every one of them. */
static void
test_output_collisions (void)
{
  g_autofree char *tmp = tu_make_tmpdir ("strata-run-XXXXXX");
  g_autofree char *in = g_build_filename (tmp, "in", NULL);
  g_autofree char *out = g_build_filename (tmp, "out", NULL);
  g_mkdir (in, 0755);
  const char *names[] = { "a.png", "a.jpg", "a.jpeg", "b.png" };
  for (guint i = 0; i < G_N_ELEMENTS (names); i++)
    {
      g_autofree char *path = g_build_filename (in, names[i], NULL);
      write_image (path, 3, 8, 8, 8);
    }
  TuResult r = tu_run (exe, "run", "sharpen", in, "-o", out, "--format", "png", NULL);
  g_assert_cmpint (r.status, ==, 2);
  g_assert_true (strstr (r.err, "the output of 3 inputs"));
  for (int i = 0; i < 3; i++)
    g_assert_true (strstr (r.err, names[i]));
  g_assert_false (strstr (r.err, "b.png"));
  tu_result_clear (&r);
  g_assert_false (g_file_test (out, G_FILE_TEST_EXISTS));

  /* Two files of one name from two folders, on the command line. */
  g_autofree char *other = g_build_filename (tmp, "other", NULL);
  g_mkdir (other, 0755);
  g_autofree char *a1 = g_build_filename (in, "b.png", NULL);
  g_autofree char *a2 = g_build_filename (other, "b.png", NULL);
  write_image (a2, 3, 8, 8, 8);
  r = tu_run (exe, "run", "sharpen", a1, a2, "-o", out, NULL);
  g_assert_cmpint (r.status, ==, 2);
  g_assert_true (strstr (r.err, a1) && strstr (r.err, a2));
  tu_result_clear (&r);
  g_assert_false (g_file_test (out, G_FILE_TEST_EXISTS));

  /* One file named twice (and within a folder given too) is one job. */
  r = tu_run (exe, "run", "sharpen", a1, a1, "-o", out, NULL);
  g_assert_cmpint (r.status, ==, 0);
  g_assert_true (strstr (r.err, "1 written, 0 skipped, 0 failed, 0 interrupted"));
  tu_result_clear (&r);
  tu_remove_tree (tmp);
}

/* Case 3: an output folder inside the input folder is not searched. */
static void
test_output_inside_input (void)
{
  g_autofree char *tmp = tu_make_tmpdir ("strata-run-XXXXXX");
  g_autofree char *photos = g_build_filename (tmp, "photos", NULL);
  g_autofree char *out = g_build_filename (photos, "out", NULL);
  g_mkdir (photos, 0755);
  g_autofree char *a = g_build_filename (photos, "a.png", NULL);
  write_image (a, 3, 8, 8, 8);
  for (int run = 0; run < 2; run++)
    {
      TuResult r = tu_run (exe, "run", "sharpen", photos, "-o", out, NULL);
      g_assert_cmpint (r.status, ==, 0);
      g_assert_true (strstr (r.err, run == 0 ? "1 written, 0 skipped" : "0 written, 1 skipped"));
      tu_result_clear (&r);
    }
  g_autofree char *names = list_names (out);
  g_assert_cmpstr (names, ==, "a.png");
  tu_remove_tree (tmp);
}

/* Case 4: a symbolic link loop is reported once and not followed; each
 * folder is searched once. */
static void
test_symlink_loop (void)
{
  g_autofree char *tmp = tu_make_tmpdir ("strata-run-XXXXXX");
  g_autofree char *in = g_build_filename (tmp, "in", NULL);
  g_autofree char *a = g_build_filename (in, "a", NULL);
  g_autofree char *out = g_build_filename (tmp, "out", NULL);
  g_mkdir_with_parents (a, 0755);
  g_autofree char *img = g_build_filename (a, "x.png", NULL);
  write_image (img, 3, 8, 8, 8);
  g_autofree char *up = g_build_filename (a, "up", NULL);
  g_assert_cmpint (symlink ("..", up), ==, 0);
  TuResult r = tu_run (exe, "run", "sharpen", in, "-o", out, NULL);
  g_assert_cmpint (r.status, ==, 0);
  g_assert_cmpint (count_occurrences (r.err, "loop"), ==, 1);
  g_assert_true (strstr (r.err, "a/up: symbolic link loop"));
  g_assert_true (strstr (r.err, "1 written, 0 skipped, 0 failed"));
  tu_result_clear (&r);

  /* A link to nothing and a FIFO under image names are named and counted
   * as failed, never waited on. */
  g_autofree char *broken = g_build_filename (a, "broken.png", NULL);
  g_assert_cmpint (symlink ("nowhere.png", broken), ==, 0);
  g_autofree char *fifo = g_build_filename (in, "pipe.jpg", NULL);
  g_assert_cmpint (mkfifo (fifo, 0600), ==, 0);
  r = tu_run (exe, "run", "sharpen", in, "-o", out, NULL);
  g_assert_cmpint (r.status, ==, 1);
  g_assert_true (strstr (r.err, "broken.png: cannot read"));
  g_assert_true (strstr (r.err, "pipe.jpg: not a regular file"));
  g_assert_true (strstr (r.err, "0 written, 1 skipped, 2 failed, 0 interrupted"));
  tu_result_clear (&r);
  g_autofree char *names = list_names (out);
  g_assert_cmpstr (names, ==, "a");
  tu_remove_tree (tmp);
}

/* Runs exe with args, stdin from stdin_bytes (or none); returns the exit
 * status, stdout as bytes and stderr as text. */
static int
run_with_stdin (GBytes *stdin_bytes, GBytes **out, char **err, const char *const *args)
{
  g_autoptr (GPtrArray) argv = g_ptr_array_new ();
  g_ptr_array_add (argv, (char *) exe);
  for (int i = 0; args[i]; i++)
    g_ptr_array_add (argv, (char *) args[i]);
  g_ptr_array_add (argv, NULL);
  g_autoptr (GError) error = NULL;
  g_autoptr (GSubprocess) p = g_subprocess_newv ((const char *const *) argv->pdata,
                                                 G_SUBPROCESS_FLAGS_STDIN_PIPE
                                                 | G_SUBPROCESS_FLAGS_STDOUT_PIPE
                                                 | G_SUBPROCESS_FLAGS_STDERR_PIPE, &error);
  g_assert_no_error (error);
  g_autoptr (GBytes) err_bytes = NULL;
  g_autoptr (GBytes) nothing = g_bytes_new_static ("", 0);
  g_assert_true (g_subprocess_communicate (p, stdin_bytes ? stdin_bytes : nothing, NULL, out,
                                           &err_bytes, &error));
  g_assert_no_error (error);
  g_assert_true (g_subprocess_get_if_exited (p));
  *err = g_strndup (g_bytes_get_data (err_bytes, NULL), g_bytes_get_size (err_bytes));
  g_test_message ("stderr: %s", *err);
  return g_subprocess_get_exit_status (p);
}

/* Case 5: -o is a known image name, a folder, or - (standard output);
 * INPUT - is standard input. */
static void
test_output_names_and_standard_streams (void)
{
  g_autofree char *tmp = tu_make_tmpdir ("strata-run-XXXXXX");
  g_autofree char *in = g_build_filename (tmp, "photo.jpg", NULL);
  write_image (in, 3, 20, 30, 8);
  const char *bad_names[] = { "name.bmp", "noext" };
  for (guint i = 0; i < G_N_ELEMENTS (bad_names); i++)
    {
      g_autofree char *out = g_build_filename (tmp, bad_names[i], NULL);
      TuResult r = tu_run (exe, "run", "sharpen", in, "-o", out, NULL);
      g_assert_cmpint (r.status, ==, 2);
      g_assert_true (strstr (r.err, "not a .png, .jpg, .jpeg, .tif, .tiff, .webp, .pgm, .ppm, .pnm, "
                             ".pbm, .pam, .gif, .heic, .heif, .avif or .hif name"));
      tu_result_clear (&r);
      g_assert_false (g_file_test (out, G_FILE_TEST_EXISTS));
    }
  /* The extension chooses the format; --format must agree with it. */
  const struct { const char *name; StImageFormat format; } good_names[] = {
    { "out.tif", ST_FORMAT_TIFF }, { "out.TIFF", ST_FORMAT_TIFF }, { "out.webp", ST_FORMAT_WEBP },
  };
  for (guint i = 0; i < G_N_ELEMENTS (good_names); i++)
    {
      g_autofree char *out = g_build_filename (tmp, good_names[i].name, NULL);
      TuResult r = tu_run (exe, "run", "sharpen", in, "-o", out, NULL);
      g_assert_cmpint (r.status, ==, 0);
      tu_result_clear (&r);
      StImageInfo info;
      g_autoptr (GError) error = NULL;
      g_autoptr (StTensor) t = st_image_load (out, 0, &info, &error);
      g_assert_no_error (error);
      g_assert_cmpint (info.format, ==, good_names[i].format);
      g_assert_cmpint (t->shape.w, ==, 30);
    }
  g_autofree char *clash = g_build_filename (tmp, "clash.tif", NULL);
  TuResult fr = tu_run (exe, "run", "sharpen", in, "-o", clash, "--format", "webp", NULL);
  g_assert_cmpint (fr.status, ==, 2);
  g_assert_true (strstr (fr.err, "the name says TIFF but --format says WebP"));
  tu_result_clear (&fr);
  /* A final slash makes a folder of any name. */
  g_autofree char *folder = g_build_filename (tmp, "noext/", NULL);
  TuResult r = tu_run (exe, "run", "sharpen", in, "-o", folder, "--quiet", NULL);
  g_assert_cmpint (r.status, ==, 0);
  tu_result_clear (&r);
  g_autofree char *in_folder = g_build_filename (tmp, "noext", "photo.jpg", NULL);
  assert_complete_image (in_folder, 30, 20);
  /* Several inputs need a folder, not an image name. */
  g_autofree char *as_image = g_build_filename (tmp, "two.png", NULL);
  r = tu_run (exe, "run", "sharpen", in, in_folder, "-o", as_image, NULL);
  g_assert_cmpint (r.status, ==, 2);
  tu_result_clear (&r);
  g_assert_false (g_file_test (as_image, G_FILE_TEST_EXISTS));

  /* -o -: the image on standard output, in the input's format or --format. */
  g_autofree char *out_path = g_build_filename (tmp, "from-stdout", NULL);
  const struct { const char *format; StImageFormat expect; } cases[] = {
    { NULL, ST_FORMAT_JPEG }, { "png", ST_FORMAT_PNG },
  };
  for (guint i = 0; i < G_N_ELEMENTS (cases); i++)
    {
      const char *args[] = { "run", "sharpen", in, "-o", "-", cases[i].format ? "--format" : NULL,
                             cases[i].format, NULL };
      g_autoptr (GBytes) out = NULL;
      g_autofree char *err = NULL;
      g_assert_cmpint (run_with_stdin (NULL, &out, &err, args), ==, 0);
      tu_write_bytes (out_path, g_bytes_get_data (out, NULL), g_bytes_get_size (out));
      StImageInfo info;
      g_autoptr (GError) error = NULL;
      g_autoptr (StTensor) t = st_image_load (out_path, 0, &info, &error);
      g_assert_no_error (error);
      g_assert_cmpint (info.format, ==, cases[i].expect);
      g_assert_cmpint (t->shape.w, ==, 30);
    }

  /* INPUT -: standard input, by its signature, to a file and to stdout. */
  gsize len;
  g_autofree char *jpeg = read_all (in, &len);
  g_autoptr (GBytes) jpeg_bytes = g_bytes_new (jpeg, len);
  g_autofree char *to_file = g_build_filename (tmp, "stdin.png", NULL);
  const char *args_file[] = { "run", "sharpen", "-", "-o", to_file, NULL };
  g_autoptr (GBytes) out1 = NULL;
  g_autofree char *err1 = NULL;
  g_assert_cmpint (run_with_stdin (jpeg_bytes, &out1, &err1, args_file), ==, 0);
  assert_complete_image (to_file, 30, 20);
  const char *args_pipe[] = { "run", "sharpen", "-", "-o", "-", "--format", "png", NULL };
  g_autoptr (GBytes) out2 = NULL;
  g_autofree char *err2 = NULL;
  g_assert_cmpint (run_with_stdin (jpeg_bytes, &out2, &err2, args_pipe), ==, 0);
  tu_write_bytes (out_path, g_bytes_get_data (out2, NULL), g_bytes_get_size (out2));
  assert_complete_image (out_path, 30, 20);
  /* Not an image on standard input: named as such. */
  g_autoptr (GBytes) text = g_bytes_new_static ("hello", 5);
  g_autoptr (GBytes) out3 = NULL;
  g_autofree char *err3 = NULL;
  const char *args_again[] = { "run", "sharpen", "-", "-o", to_file, "--overwrite", NULL };
  g_assert_cmpint (run_with_stdin (text, &out3, &err3, args_again), ==, 1);
  g_assert_true (strstr (err3, "standard input: not a PNG, JPEG, TIFF, WebP, PNM, GIF or HEIF image"));
  /* Standard input has no name in an output folder. */
  const char *args_folder[] = { "run", "sharpen", "-", in, "-o", folder, NULL };
  g_autoptr (GBytes) out4 = NULL;
  g_autofree char *err4 = NULL;
  g_assert_cmpint (run_with_stdin (jpeg_bytes, &out4, &err4, args_folder), ==, 2);
  tu_remove_tree (tmp);
}

/* Case 7: an output that cannot be written is reported once, before any
 * image is read. */
static void
test_unwritable_output (void)
{
  g_autofree char *tmp = tu_make_tmpdir ("strata-run-XXXXXX");
  g_autofree char *in = g_build_filename (tmp, "in", NULL);
  g_mkdir (in, 0755);
  for (int i = 0; i < 3; i++)
    {
      g_autofree char *name = g_strdup_printf ("%d.png", i);
      g_autofree char *path = g_build_filename (in, name, NULL);
      write_image (path, 3, 8, 8, 8);
    }
  /* Were images read, this one would say so. */
  g_autofree char *bad = g_build_filename (in, "bad.png", NULL);
  tu_write_bytes (bad, "not a png", 9);

  g_autofree char *file = g_build_filename (tmp, "file", NULL);
  tu_write_bytes (file, "x", 1);
  g_autofree char *below_file = g_build_filename (file, "out", NULL);
  g_autofree char *readonly = g_build_filename (tmp, "readonly", NULL);
  g_mkdir (readonly, 0555);
  const char *outs[] = { "/proc/out", file, below_file, readonly };
  for (guint i = 0; i < G_N_ELEMENTS (outs); i++)
    {
      if (outs[i] == readonly && geteuid () == 0)
        continue;  /* root writes into a read-only folder */
      TuResult r = tu_run (exe, "run", "sharpen", in, "-o", outs[i], NULL);
      g_assert_cmpint (r.status, ==, 2);
      g_assert_cmpint (count_occurrences (r.err, outs[i]), ==, 1);
      g_assert_false (strstr (r.err, "bad.png"));
      g_assert_false (strstr (r.err, "written"));
      tu_result_clear (&r);
    }
  g_chmod (readonly, 0755);
  tu_remove_tree (tmp);
}

/* Cases 8 and 10: every option is checked against its range, which
 * --help states; no value means "unset". */
/* Files in a folder that are not images are counted, and named with
 * --verbose; an image whose extension names another format still reads. */
static void
test_ignored_files (void)
{
  g_autofree char *tmp = tu_make_tmpdir ("strata-run-XXXXXX");
  g_autofree char *in = g_build_filename (tmp, "in", NULL);
  g_autofree char *sub = g_build_filename (in, "sub", NULL);
  g_autofree char *out = g_build_filename (tmp, "out", NULL);
  g_assert_cmpint (g_mkdir_with_parents (sub, 0755), ==, 0);
  g_autofree char *png = g_build_filename (in, "a.png", NULL);
  g_autofree char *jpeg_named = g_build_filename (in, "b.jpg", NULL);
  g_autofree char *notes = g_build_filename (in, "notes.txt", NULL);
  g_autofree char *table = g_build_filename (sub, "data.csv", NULL);
  g_autofree char *bare = g_build_filename (sub, "README", NULL);
  write_image (png, 3, 6, 5, 8);
  write_image (jpeg_named, 3, 6, 5, 8);
  /* A PNG named .jpg: read by its content. */
  g_autofree char *png_bytes = NULL;
  gsize len = 0;
  g_assert_true (g_file_get_contents (png, &png_bytes, &len, NULL));
  tu_write_bytes (jpeg_named, png_bytes, len);
  tu_write_bytes (notes, "text", 4);
  tu_write_bytes (table, "1,2", 3);
  tu_write_bytes (bare, "", 0);

  TuResult r = tu_run (exe, "run", "sharpen", in, "-o", out, NULL);
  g_assert_cmpint (r.status, ==, 0);
  g_assert_true (strstr (r.err, "2 written, 0 skipped, 0 failed, 0 interrupted, 3 ignored"));
  g_assert_null (strstr (r.err, "notes.txt"));
  tu_result_clear (&r);

  r = tu_run (exe, "run", "sharpen", in, "-o", out, "--overwrite", "--verbose", NULL);
  g_assert_cmpint (r.status, ==, 0);
  const char *ignored[] = { notes, table, bare };
  for (guint i = 0; i < G_N_ELEMENTS (ignored); i++)
    {
      g_autofree char *line = g_strdup_printf ("%s: not an image format strata reads; ignored\n",
                                               ignored[i]);
      if (!strstr (r.err, line))
        g_error ("no line for %s in: %s", ignored[i], r.err);
    }
  g_assert_null (strstr (r.err, "a.png: "));
  g_assert_true (strstr (r.err, "2 written, 0 skipped, 0 failed, 0 interrupted, 3 ignored"));
  tu_result_clear (&r);

  /* A folder of nothing strata reads: no images, and how many files were passed over. */
  r = tu_run (exe, "run", "sharpen", sub, "-o", out, NULL);
  g_assert_cmpint (r.status, ==, 2);
  g_assert_true (strstr (r.err, "no images found"));
  g_assert_true (strstr (r.err, "2 other files ignored (--verbose names them)"));
  tu_result_clear (&r);
  tu_remove_tree (tmp);
}

static void
test_option_ranges (void)
{
  g_autofree char *tmp = tu_make_tmpdir ("strata-run-XXXXXX");
  g_autofree char *in = g_build_filename (tmp, "x.png", NULL);
  g_autofree char *out = g_build_filename (tmp, "y.png", NULL);
  write_image (in, 3, 8, 8, 8);
  const struct { const char *option, *value, *expect; } bad[] = {
    { "--jobs", "100000", "1 to 1024, found '100000'" },
    { "--jobs", "0", "1 to 1024, found '0'" },
    { "-j", "-1", "1 to 1024, found '-1'" },
    { "--max-pixels", "-5", "at least 1, found '-5'" },
    { "--max-pixels", "0", "at least 1, found '0'" },
    { "--quality", "101", "1 to 100, found '101'" },
    { "--quality", "9x", "1 to 100, found '9x'" },
    { "--top", "0", "at least 1, found '0'" },
    { "--max-pixels", "99999999999999999999", "at least 1" },
    { "--format", "bmp", "expected png, jpeg, tiff, webp, pnm, csv or jsonl, found 'bmp'" },
    { "--format", "csv", "writes images" },
  };
  for (guint i = 0; i < G_N_ELEMENTS (bad); i++)
    {
      TuResult r = tu_run (exe, "run", "sharpen", in, "-o", out, bad[i].option, bad[i].value, NULL);
      g_assert_cmpint (r.status, ==, 2);
      if (!strstr (r.err, bad[i].expect))
        g_error ("%s %s: '%s' lacks '%s'", bad[i].option, bad[i].value, r.err, bad[i].expect);
      tu_result_clear (&r);
    }
  g_assert_false (g_file_test (out, G_FILE_TEST_EXISTS));
  TuResult r = tu_run (exe, "run", "--help", NULL);
  g_assert_cmpint (r.status, ==, 0);
  const char *ranges[] = { "1 to 1024", "1 to 100 (default 90)", "at least 1 (default 200000000)",
                           "at least 1 (default 5)" };
  for (guint i = 0; i < G_N_ELEMENTS (ranges); i++)
    if (!strstr (r.out, ranges[i]))
      g_error ("--help lacks '%s'", ranges[i]);
  tu_result_clear (&r);
  /* The bound itself runs. */
  r = tu_run (exe, "run", "sharpen", in, "-o", out, "-j", "1024", "--max-pixels", "64", NULL);
  g_assert_cmpint (r.status, ==, 0);
  tu_result_clear (&r);
  /* -q is --quiet, as in most tools; JPEG quality is --quality only. */
  r = tu_run (exe, "run", "sharpen", in, "-o", out, "--overwrite", "-q", NULL);
  g_assert_cmpint (r.status, ==, 0);
  g_assert_cmpstr (r.err, ==, "");
  tu_result_clear (&r);
  r = tu_run (exe, "run", "--help", NULL);
  g_assert_true (strstr (r.out, "-q, --quiet"));
  g_assert_null (strstr (r.out, "-q, --quality"));
  tu_result_clear (&r);
  tu_remove_tree (tmp);
}

/* AddressSanitizer reserves terabytes of address space up front. */
#if defined(__SANITIZE_ADDRESS__)
#define UNDER_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define UNDER_ASAN 1
#endif
#endif

#ifndef UNDER_ASAN
static void
limit_address_space (gpointer data)
{
  struct rlimit limit = { 1 << 30, 1 << 30 };
  setrlimit (RLIMIT_AS, &limit);
}
#endif

/* Case 8: a thread that cannot be started is an error, not an abort. */
static void
test_thread_start_failure (void)
{
#ifdef UNDER_ASAN
  g_test_skip ("AddressSanitizer needs more address space than the limit leaves");
#else
  g_autofree char *tmp = tu_make_tmpdir ("strata-run-XXXXXX");
  g_autofree char *in = g_build_filename (tmp, "x.png", NULL);
  g_autofree char *out = g_build_filename (tmp, "y.png", NULL);
  write_image (in, 3, 8, 8, 8);
  const char *argv[] = { exe, "run", "sharpen", in, "-o", out, "-j", "1024", NULL };
  g_autofree char *err = NULL;
  int wait_status;
  g_autoptr (GError) error = NULL;
  /* A BLAS library's own threads and buffers, sized by the cores, would
   * take the limited space before strata's threads do. */
  g_auto (GStrv) env = g_get_environ ();
  env = g_environ_setenv (env, "OPENBLAS_NUM_THREADS", "1", TRUE);
  env = g_environ_setenv (env, "OMP_NUM_THREADS", "1", TRUE);
  g_assert_true (g_spawn_sync (NULL, (char **) argv, env, G_SPAWN_STDOUT_TO_DEV_NULL,
                               limit_address_space, NULL, NULL, &err, &wait_status, &error));
  g_assert_no_error (error);
  g_test_message ("stderr: %s", err);
  g_assert_true (WIFEXITED (wait_status));
  g_assert_cmpint (WEXITSTATUS (wait_status), ==, 2);
  g_assert_true (strstr (err, "cannot start thread"));
  g_assert_false (g_file_test (out, G_FILE_TEST_EXISTS));
  tu_remove_tree (tmp);
#endif
}

/* The atomic writer: nothing visible until commit (where O_TMPFILE is
 * supported), replacing leaves no hidden name, abort leaves nothing. */
static void
test_atomic_file (void)
{
  g_autofree char *tmp = tu_make_tmpdir ("strata-atomic-XXXXXX");
  g_autofree char *path = g_build_filename (tmp, "f.txt", NULL);
  for (int round = 0; round < 2; round++)
    {
      g_autoptr (GError) error = NULL;
      StAtomicFile *f = st_atomic_file_new (path, ST_ERROR_IO, ST_ATOMIC_FILE_SYNC, &error);
      g_assert_no_error (error);
      fputs (round == 0 ? "first" : "second", st_atomic_file_stream (f));
      g_autofree char *during = list_names (tmp);
      if (tmpfile_supported (tmp))
        g_assert_cmpstr (during, ==, round == 0 ? "" : "f.txt");
      g_assert_true (st_atomic_file_commit (f, &error));
      g_assert_no_error (error);
      gsize len;
      g_autofree char *text = read_all (path, &len);
      g_assert_cmpstr (text, ==, round == 0 ? "first" : "second");
      g_autofree char *after = list_names (tmp);
      g_assert_cmpstr (after, ==, "f.txt");
    }
  g_autoptr (GError) error = NULL;
  g_autofree char *other = g_build_filename (tmp, "g.txt", NULL);
  StAtomicFile *f = st_atomic_file_new (other, ST_ERROR_IO, ST_ATOMIC_FILE_NONE, &error);
  fputs ("partial", st_atomic_file_stream (f));
  st_atomic_file_abort (f);
  g_autofree char *names = list_names (tmp);
  g_assert_cmpstr (names, ==, "f.txt");

  g_assert_true (st_atomic_check_folder (tmp, ST_ERROR_IO, &error));
  g_assert_no_error (error);
  g_assert_false (st_atomic_check_folder (path, ST_ERROR_IO, &error));
  g_assert_error (error, ST_ERROR, ST_ERROR_IO);
  g_assert_true (g_str_has_prefix (error->message, path));
  g_clear_error (&error);
  g_autofree char *missing = g_build_filename (tmp, "missing", "f.txt", NULL);
  g_assert_null (st_atomic_file_new (missing, ST_ERROR_WEIGHTS, ST_ATOMIC_FILE_NONE, &error));
  g_assert_error (error, ST_ERROR, ST_ERROR_WEIGHTS);
  tu_remove_tree (tmp);
}

/* The pool behind -j refuses more than ST_MAX_THREADS with an error. */
static void
test_pool_bound (void)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (StRunContext) none = st_run_context_try_new (ST_MAX_THREADS + 1, 0, &error);
  g_assert_null (none);
  g_assert_error (error, ST_ERROR, ST_ERROR_USAGE);
  g_assert_true (strstr (error->message, "at most 1024"));
  g_clear_error (&error);
  g_autoptr (StRunContext) two = st_run_context_try_new (2, 0, &error);
  g_assert_no_error (error);
  g_assert_cmpint (st_parallel_threads (two), ==, 2);
}

typedef struct {
  guint *hits;
  guint64 call;
} PoolCallJob;

static void
pool_call_items (gsize begin, gsize end, gpointer data)
{
  PoolCallJob *j = data;
  for (gsize i = begin; i < end; i++)
    __atomic_fetch_add (&j->hits[i], (guint) (j->call % 7 + 1), __ATOMIC_RELAXED);
}

/* Many calls back to back, every item run exactly once and its effect seen
 * by the caller when the call returns: on pools of a thread a core or
 * fewer and of more threads than cores, with calls of 1 to 40 items (some
 * fewer than the threads), and some after long work on the caller alone. */
static void
test_pool_calls (void)
{
  const int counts[] = { 2, 3, 2 * (int) g_get_num_processors () + 1 };
  guint hits[40];
  for (guint c = 0; c < G_N_ELEMENTS (counts); c++)
    {
      g_autoptr (StRunContext) ctx = st_run_context_new (counts[c], 1);
      for (guint64 call = 0; call < 20000; call++)
        {
          gsize n = 1 + call * 7 % 40;
          memset (hits, 0, sizeof hits);
          PoolCallJob j = { hits, call };
          st_parallel_for (ctx, n, pool_call_items, &j);
          for (gsize i = 0; i < G_N_ELEMENTS (hits); i++)
            if (hits[i] != (i < n ? call % 7 + 1 : 0))
              g_error ("%d threads, call %" G_GUINT64_FORMAT " of %" G_GSIZE_FORMAT
                       " items: item %" G_GSIZE_FORMAT " hit %u", counts[c], call, n, i, hits[i]);
          if (call % 1000 == 999)
            {
              volatile double x = 0;
              for (int k = 0; k < 2000000; k++)
                x += k * 0.5;
            }
        }
    }
}

/* CPUs the calling thread may run on. */
static int
thread_cpus (void)
{
  cpu_set_t set;
  g_assert_cmpint (pthread_getaffinity_np (pthread_self (), sizeof set, &set), ==, 0);
  return CPU_COUNT (&set);
}

/* The CPUs the calling thread may run on, or 0 (the test skipped) when a
 * pool would have one thread and bind nothing. */
static int
cpus_to_bind (void)
{
  const int all = thread_cpus ();
  if (all < 2)
    g_test_skip ("one CPU: a pool of one thread binds nothing");
  return all < 2 ? 0 : all;
}

static void
record_cpus (gsize begin, gsize end, gpointer data)
{
  int *cpus = data;
  for (gsize i = begin; i < end; i++)
    cpus[i] = thread_cpus ();
}

static gpointer
unpinned_thread (gpointer data)
{
  (void) data;
  st_thread_unpin ();
  return GINT_TO_POINTER (thread_cpus ());
}

typedef struct {
  StRunContext *ctx;
  int *cpus;
} CallerJob;

/* Calls on a pool another thread called first; its CPUs after. */
static gpointer
later_caller (gpointer data)
{
  CallerJob *j = data;
  st_thread_unpin ();
  st_parallel_for (j->ctx, 64, record_cpus, j->cpus);
  return GINT_TO_POINTER (thread_cpus ());
}

/* A pool with a thread for every CPU binds each thread, the first caller
 * included, to one CPU, and gives that caller its CPUs back when freed; a
 * later caller on another thread stays free;
 * a larger pool binds nothing; a thread that unpins itself runs on all. */
static void
test_pool_cpus (void)
{
  const int all = cpus_to_bind ();
  if (!all)
    return;
  int cpus[64];
  const gsize items = G_N_ELEMENTS (cpus);
  {
    g_autoptr (StRunContext) ctx = st_run_context_new (all, 1);
    st_parallel_for (ctx, items, record_cpus, cpus);
    for (gsize i = 0; i < items; i++)
      g_assert_cmpint (cpus[i], ==, 1);
    g_assert_cmpint (thread_cpus (), ==, 1);
    GThread *t = g_thread_new ("unpinned", unpinned_thread, NULL);
    g_assert_cmpint (GPOINTER_TO_INT (g_thread_join (t)), ==, all);
    CallerJob later = { ctx, cpus };
    t = g_thread_new ("later-caller", later_caller, &later);
    g_assert_cmpint (GPOINTER_TO_INT (g_thread_join (t)), ==, all);
  }
  g_assert_cmpint (thread_cpus (), ==, all);
  g_autoptr (StRunContext) more = st_run_context_new (all + 1, 1);
  st_parallel_for (more, items, record_cpus, cpus);
  for (gsize i = 0; i < items; i++)
    g_assert_cmpint (cpus[i], ==, all);
}

/* The one CPU thread tid (0: the calling one) is bound to; -1 if several. */
static int
bound_cpu (pid_t tid)
{
  cpu_set_t set;
  g_assert_cmpint (sched_getaffinity (tid, sizeof set, &set), ==, 0);
  if (CPU_COUNT (&set) != 1)
    return -1;
  for (int cpu = 0;; cpu++)
    if (CPU_ISSET (cpu, &set))
      return cpu;
}

/* The thread ids of this process's pool workers. */
static GArray *
worker_tids (void)
{
  GArray *tids = g_array_new (FALSE, FALSE, sizeof (pid_t));
  g_autoptr (GDir) dir = g_dir_open ("/proc/self/task", 0, NULL);
  g_assert_nonnull (dir);
  const char *name;
  while ((name = g_dir_read_name (dir)))
    {
      g_autofree char *path = g_strdup_printf ("/proc/self/task/%s/comm", name);
      g_autofree char *comm = NULL;
      if (g_file_get_contents (path, &comm, NULL, NULL) && g_str_has_prefix (comm, "strata-worker"))
        {
          pid_t tid = atoi (name);
          g_array_append_val (tids, tid);
        }
    }
  return tids;
}

/* A thread's state letter in /proc (R running or waiting for a CPU, S
 * asleep, ...); '?' if it cannot be read. */
static char
thread_state (pid_t tid)
{
  g_autofree char *path = g_strdup_printf ("/proc/self/task/%d/stat", (int) tid);
  g_autofree char *stat = NULL;
  const char *end = g_file_get_contents (path, &stat, NULL, NULL) ? strrchr (stat, ')') : NULL;
  return end && end[1] == ' ' ? end[2] : '?';
}

/* Whether every thread of the pool but the calling one (a worker) is
 * asleep: the process's first thread, the caller, and the other workers. */
static gboolean
others_asleep (void)
{
  if (thread_state (getpid ()) != 'S')
    return FALSE;
  g_autoptr (GArray) tids = worker_tids ();
  for (guint i = 0; i < tids->len; i++)
    if (g_array_index (tids, pid_t, i) != gettid () && thread_state (g_array_index (tids, pid_t, i)) != 'S')
      return FALSE;
  return TRUE;
}

/* The first worker to take an item stalls as a preempted thread does:
 * runnable, but at nice 19 beside a busy thread bound to its CPU, so that
 * it gets about 1.5% of it.  It goes on once it is bound to another CPU,
 * or once every other thread of the pool has given up and gone to sleep. */
typedef struct {
  int stalled;                 /* a worker took the stall */
  int cpu;                     /* the CPU it was bound to */
  int release;                 /* the busy thread stops */
  gboolean moved;
} Stall;

static gpointer
busy_on_cpu (gpointer data)
{
  Stall *stall = data;
  cpu_set_t one;
  CPU_ZERO (&one);
  CPU_SET (stall->cpu, &one);
  g_assert_cmpint (sched_setaffinity (0, sizeof one, &one), ==, 0);
  while (!__atomic_load_n (&stall->release, __ATOMIC_SEQ_CST))
    ;
  return NULL;
}

static void
stall_item (gsize begin, gsize end, gpointer data)
{
  (void) begin;
  (void) end;
  Stall *stall = data;
  /* The caller waits for a worker to take the stall, rather than run every
   * item before a worker wakes. */
  if (gettid () == getpid ())
    {
      while (!__atomic_load_n (&stall->stalled, __ATOMIC_SEQ_CST))
        ;
      return;
    }
  if (__atomic_exchange_n (&stall->stalled, TRUE, __ATOMIC_SEQ_CST))
    return;
  stall->cpu = bound_cpu (0);
  GThread *busy = g_thread_new ("busy", busy_on_cpu, stall);
  g_assert_cmpint (setpriority (PRIO_PROCESS, gettid (), 19), ==, 0);
  while (bound_cpu (0) == stall->cpu && !others_asleep ())
    ;
  stall->moved = bound_cpu (0) != stall->cpu;
  __atomic_store_n (&stall->release, TRUE, __ATOMIC_SEQ_CST);
  g_thread_join (busy);
}

/* A bound pool's thread that another waits for, and that is runnable but
 * not running (preempted), trades CPUs with the one waiting: it goes on on
 * the CPU the other leaves.  The threads stay bound to distinct CPUs. */
static void
test_pool_trade (void)
{
  const int all = cpus_to_bind ();
  if (!all)
    return;
  cpu_set_t allowed;
  g_assert_cmpint (sched_getaffinity (0, sizeof allowed, &allowed), ==, 0);
  g_autoptr (StRunContext) ctx = st_run_context_new (all, 1);
  /* A waiting thread that is itself preempted may miss its chance; the
   * next call gives it another. */
  gboolean moved = FALSE;
  for (int attempt = 0; attempt < 20 && !moved; attempt++)
    {
      Stall stall = { 0 };
      st_parallel_for (ctx, 64 * all, stall_item, &stall);
      moved = stall.moved;
    }
  g_assert_true (moved);
  int cpus[64];
  st_parallel_for (ctx, G_N_ELEMENTS (cpus), record_cpus, cpus);
  for (gsize i = 0; i < G_N_ELEMENTS (cpus); i++)
    g_assert_cmpint (cpus[i], ==, 1);
  /* Still one thread a CPU: every CPU has one of the pool's threads. */
  int bound_to[CPU_SETSIZE] = { 0 };
  g_autoptr (GArray) tids = worker_tids ();
  for (guint i = 0; i < tids->len; i++)
    bound_to[bound_cpu (g_array_index (tids, pid_t, i))]++;
  bound_to[bound_cpu (0)]++;
  for (int cpu = 0; cpu < CPU_SETSIZE; cpu++)
    g_assert_cmpint (bound_to[cpu], ==, (CPU_ISSET (cpu, &allowed) ? 1 : 0));
}

/* Writes text to root/path, making the folders. */
static void
put_file (const char *root, const char *path, const char *text)
{
  g_autofree char *full = g_build_filename (root, path, NULL);
  g_autofree char *dir = g_path_get_dirname (full);
  g_assert_cmpint (g_mkdir_with_parents (dir, 0755), ==, 0);
  g_assert_true (g_file_set_contents (full, text, -1, NULL));
}

/* A control group's CPU quota, read as the kernel shows it, caps the
 * default thread count. */
static void
test_cgroup_quota (void)
{
  g_autofree char *root = tu_make_tmpdir ("strata-cgroup-XXXXXX");
  const char *v2_mount = "29 23 0:26 / /sys/fs/cgroup rw,nosuid shared:4 - cgroup2 cgroup2 rw\n";

  /* cgroup v2: the group's quota, or its parent's when that is smaller. */
  put_file (root, "sys/fs/cgroup/user.slice/app/cpu.max", "150000 100000\n");
  put_file (root, "sys/fs/cgroup/user.slice/cpu.max", "max 100000\n");
  g_assert_cmpfloat (st_cgroup_cpu_quota ("0::/user.slice/app\n", v2_mount, root), ==, 1.5);
  put_file (root, "sys/fs/cgroup/user.slice/cpu.max", "50000 100000\n");
  g_assert_cmpfloat (st_cgroup_cpu_quota ("0::/user.slice/app\n", v2_mount, root), ==, 0.5);
  /* No quota anywhere: "max". */
  put_file (root, "sys/fs/cgroup/free/cpu.max", "max 100000\n");
  g_assert_cmpfloat (st_cgroup_cpu_quota ("0::/free\n", v2_mount, root), ==, 0);

  /* cgroup v1 beside an empty v2 hierarchy, the cpu controller mounted
   * with cpuacct; -1 is no quota. */
  const char *v1_cgroups = "4:cpu,cpuacct:/docker/abc\n1:name=systemd:/docker/abc\n0::/\n";
  const char *v1_mounts = "31 30 0:28 / /sys/fs/cgroup/cpu,cpuacct rw,relatime shared:9 - cgroup "
                          "cgroup rw,cpu,cpuacct\n"
                          "35 30 0:31 / /sys/fs/cgroup/unified rw - cgroup2 cgroup2 rw\n";
  put_file (root, "sys/fs/cgroup/cpu,cpuacct/docker/abc/cpu.cfs_quota_us", "200000\n");
  put_file (root, "sys/fs/cgroup/cpu,cpuacct/docker/abc/cpu.cfs_period_us", "100000\n");
  put_file (root, "sys/fs/cgroup/cpu,cpuacct/docker/cpu.cfs_quota_us", "-1\n");
  put_file (root, "sys/fs/cgroup/cpu,cpuacct/docker/cpu.cfs_period_us", "100000\n");
  g_assert_cmpfloat (st_cgroup_cpu_quota (v1_cgroups, v1_mounts, root), ==, 2.0);

  /* Inside a container the mount shows the container's own group at its
   * top (mount root /docker/abc), and a mount point may hold escaped
   * spaces. */
  put_file (root, "mnt/cg roup/cpu.max", "250000 100000\n");
  g_assert_cmpfloat (st_cgroup_cpu_quota ("0::/docker/abc\n",
                                          "40 30 0:26 /docker/abc /mnt/cg\\040roup ro - cgroup2 "
                                          "cgroup2 rw\n", root), ==, 2.5);
  g_assert_cmpfloat (st_cgroup_cpu_quota ("0::/../other\n",
                                          "40 30 0:26 /docker/abc /mnt/cg\\040roup ro - cgroup2 "
                                          "cgroup2 rw\n", root), ==, 2.5);

  /* What cannot be read or parsed sets no quota. */
  put_file (root, "sys/fs/cgroup/bad/cpu.max", "150000\n");
  put_file (root, "sys/fs/cgroup/worse/cpu.max", "1e5 100000x\n");
  const char *cgroups[] = { "", "0::/bad\n", "0::/worse\n", "0::/missing\n", "::::\n", "0::\n",
                            "x:cpu:relative\n" };
  const char *mounts[] = { "", v2_mount, "29 23 0:26 / /sys/fs/cgroup rw - cgroup2\n",
                           "1 2 3 4 5 6 -\n", "-\n" };
  for (guint c = 0; c < G_N_ELEMENTS (cgroups); c++)
    for (guint m = 0; m < G_N_ELEMENTS (mounts); m++)
      g_assert_cmpfloat (st_cgroup_cpu_quota (cgroups[c], mounts[m], root), ==, 0);

  /* The default: at least one thread, no more than the CPUs. */
  g_assert_cmpint (st_default_threads (), >=, 1);
  g_assert_cmpint (st_default_threads (), <=, (int) g_get_num_processors ());
  tu_remove_tree (root);
}

/* ---- Interruption (case 6) -------------------------------------------------
 * The run reads one input from a FIFO that this test fills: half of a large
 * PNG, so that its output is half written when the signal comes.  No sleep:
 * the test waits on the pipes (poll) for what strata has read and said. */

typedef struct {
  GPid pid;
  int err_fd;                  /* strata's stderr */
  GString *err;
  gboolean err_closed;
} Child;

/* Reads what strata wrote to stderr; FALSE once it is closed. */
static gboolean
child_read_err (Child *c)
{
  char buf[4096];
  ssize_t n = read (c->err_fd, buf, sizeof buf);
  if (n > 0)
    g_string_append_len (c->err, buf, n);
  else if (n == 0 || (errno != EINTR && errno != EAGAIN))
    c->err_closed = TRUE;
  return !c->err_closed;
}

/* Writes len bytes of data to the FIFO fd (non-blocking), reading stderr
 * meanwhile; FALSE if strata closed stderr (exited) first. */
static gboolean
feed_fifo (Child *c, int fd, const guint8 *data, gsize len)
{
  gsize done = 0;
  while (done < len && !c->err_closed)
    {
      struct pollfd fds[2] = { { fd, POLLOUT, 0 }, { c->err_fd, POLLIN, 0 } };
      g_assert_cmpint (poll (fds, 2, -1), >, 0);
      if (fds[1].revents)
        child_read_err (c);
      if (fds[0].revents & POLLOUT)
        {
          ssize_t n = write (fd, data + done, len - done);
          if (n > 0)
            done += n;
          else
            g_assert_true (errno == EAGAIN || errno == EINTR);
        }
    }
  return done == len;
}

/* Reads stderr until it holds text; FALSE if it closed first. */
static gboolean
wait_for_err (Child *c, const char *text)
{
  while (!strstr (c->err->str, text))
    if (!child_read_err (c))
      return FALSE;
  return TRUE;
}

static gboolean
tmpfile_supported (const char *dir)
{
  int fd = open (dir, O_TMPFILE | O_WRONLY, 0600);
  if (fd < 0)
    return FALSE;
  close (fd);
  return TRUE;
}

static void
test_interrupt (gconstpointer data)
{
  const int sig = GPOINTER_TO_INT (data);
  g_autofree char *tmp = tu_make_tmpdir ("strata-run-XXXXXX");
  g_autofree char *in = g_build_filename (tmp, "in", NULL);
  g_autofree char *out = g_build_filename (tmp, "out", NULL);
  g_mkdir (in, 0755);
  g_mkdir (out, 0755);
  if (sig == SIGKILL && !tmpfile_supported (out))
    {
      /* Named temporaries are removed on SIGINT, but a kill leaves them. */
      g_test_skip ("the file system refuses O_TMPFILE");
      tu_remove_tree (tmp);
      return;
    }
  g_autofree char *a = g_build_filename (in, "a.png", NULL);
  g_autofree char *c = g_build_filename (in, "c.jpg", NULL);
  write_image (a, 3, 300, 200, 8);
  write_image (c, 3, 200, 300, 8);
  g_autofree char *last = g_build_filename (tmp, "z.png", NULL);
  write_image (last, 3, 20, 20, 8);

  /* A 1024 x 1024 PNG of noise: 3 MB that compress to about as much, read
   * in strips of 32 rows. */
  const int size = 1024;
  g_autoptr (StTensor) noise = st_tensor_new0 (1, 3, size, size);
  GRand *rand = g_rand_new_with_seed (7);
  for (gsize i = 0; i < st_tensor_numel (noise); i++)
    noise->data[i] = (float) g_rand_double (rand);
  g_rand_free (rand);
  g_autofree char *big = g_build_filename (tmp, "big.png", NULL);
  g_autoptr (GError) error = NULL;
  g_assert_true (st_image_save (noise, big, ST_FORMAT_PNG, 8, 90, &error));
  gsize big_len;
  g_autofree guint8 *big_data = (guint8 *) read_all (big, &big_len);
  g_assert_cmpuint (big_len, >, 1 << 20);

  g_autofree char *fifo = g_build_filename (tmp, "feed.png", NULL);
  g_assert_cmpint (mkfifo (fifo, 0600), ==, 0);
  /* Read and write: opening does not wait for strata, nor writing fail
   * when strata stops reading. */
  int fifo_fd = open (fifo, O_RDWR | O_NONBLOCK | O_CLOEXEC);
  g_assert_cmpint (fifo_fd, >=, 0);

  g_autofree char *out_dir = g_strconcat (out, "/", NULL);
  const char *argv[] = { exe, "run", "sharpen", in, fifo, last, "-o", out_dir, "-j", "1", NULL };
  Child child = { .err = g_string_new (NULL) };
  g_assert_true (g_spawn_async_with_pipes (NULL, (char **) argv, NULL,
                                           G_SPAWN_DO_NOT_REAP_CHILD | G_SPAWN_STDOUT_TO_DEV_NULL,
                                           NULL, NULL, &child.pid, NULL, NULL, &child.err_fd,
                                           &error));
  g_assert_no_error (error);

  /* One worker takes the inputs in order: once it has read half of the
   * FIFO's image, a.png and c.jpg are written and feed.png is half done. */
  g_assert_true (feed_fifo (&child, fifo_fd, big_data, big_len / 2));
  g_assert_cmpint (kill (child.pid, sig), ==, 0);
  if (sig != SIGKILL)
    {
      /* Once strata says it was interrupted, the rest of the image lets the
       * worker reach the next strip, where it stops. */
      g_assert_true (wait_for_err (&child, "interrupted"));
      feed_fifo (&child, fifo_fd, big_data + big_len / 2, big_len - big_len / 2);
    }
  while (child_read_err (&child))
    ;
  int status;
  g_assert_cmpint (waitpid (child.pid, &status, 0), ==, child.pid);
  g_spawn_close_pid (child.pid);
  close (child.err_fd);
  close (fifo_fd);
  g_test_message ("stderr: %s", child.err->str);
  if (sig == SIGKILL)
    g_assert_true (WIFSIGNALED (status) && WTERMSIG (status) == SIGKILL);
  else
    {
      g_assert_true (WIFEXITED (status));
      g_assert_cmpint (WEXITSTATUS (status), ==, 130);
      g_assert_true (strstr (child.err->str, "2 written, 0 skipped, 0 failed, 2 interrupted"));
      g_assert_cmpint (count_occurrences (child.err->str, "interrupted:"), ==, 1);
    }
  g_string_free (child.err, TRUE);

  /* Only the complete outputs: no half image, no temporary file. */
  g_autofree char *names = list_names (out);
  g_assert_cmpstr (names, ==, "a.png c.jpg");
  g_autofree char *out_a = g_build_filename (out, "a.png", NULL);
  g_autofree char *out_c = g_build_filename (out, "c.jpg", NULL);
  assert_complete_image (out_a, 200, 300);
  assert_complete_image (out_c, 300, 200);
  tu_remove_tree (tmp);
}

/* A classifier with no -o gives its table to the front end, which writes
 * it on standard output; with -o -, the same. */
static void
test_predictions_on_stdout (void)
{
  g_autofree char *tmp = tu_make_tmpdir ("strata-run-XXXXXX");
  g_autofree char *in = g_build_filename (tmp, "photo.png", NULL);
  write_image (in, 3, 20, 30, 8);
  /* Three channels of one pixel: class scores, nothing learnt. */
  const char *classifier = "resize width=1 height=1";
  for (int dash = 0; dash < 2; dash++)
    {
      TuResult r = dash ? tu_run (exe, "run", classifier, in, "-o", "-", "--random-weights",
                                  "--quiet", NULL)
                        : tu_run (exe, "run", classifier, in, "--random-weights", "--quiet",
                                  NULL);
      g_assert_cmpint (r.status, ==, 0);
      g_autofree char *head = g_strdup_printf ("path,label,probability,label_2,probability_2,"
                                               "label_3,probability_3\n%s,", in);
      g_assert_true (g_str_has_prefix (r.out, head));
      g_assert_cmpstr (r.err, ==, "");
      tu_result_clear (&r);
    }
  tu_remove_tree (tmp);
}

/* The lines a progress callback was given, "" for each removal. */
static void
collect_progress (const char *line, gpointer user_data)
{
  g_ptr_array_add (user_data, g_strdup (line));
}

/* The progress line says the count, the rate and the time left; it is
 * removed only when shown, and drawn again after a removal; without a
 * callback nothing happens. */
static void
test_progress (void)
{
  g_autofree char *line = st_progress_format ("epoch 2/3", 5, 20, 2.5, "img", 75, "loss 0.5");
  g_assert_cmpstr (line, ==, "epoch 2/3 [#######-----------------------] 5/20  loss 0.5  "
                   "2.5 img/s  1:15 left");
  g_autofree char *plain = st_progress_format (NULL, 20, 20, 10, "img", 0, NULL);
  g_assert_cmpstr (plain, ==, "[##############################] 20/20  10.0 img/s  0:00 left");

  g_autoptr (GPtrArray) lines = g_ptr_array_new_with_free_func (g_free);
  g_autoptr (StProgress) p = st_progress_new (4, "img", collect_progress, lines);
  st_progress_clear (p);                 /* nothing shown: nothing to remove */
  g_assert_cmpuint (lines->len, ==, 0);
  st_progress_step (p);                  /* the first drawing is never held back */
  g_assert_cmpuint (lines->len, ==, 1);
  g_assert_true (g_str_has_prefix (lines->pdata[0], "[#######-----------------------] 1/4  "));
  st_progress_clear (p);
  g_assert_cmpstr (lines->pdata[1], ==, "");
  st_progress_update (p, 4, 64, NULL);
  st_progress_finish (p);
  g_assert_true (g_str_has_prefix (g_ptr_array_index (lines, lines->len - 2),
                                   "[##############################] 4/4  "));
  g_assert_cmpstr (g_ptr_array_index (lines, lines->len - 1), ==, "");

  g_autoptr (StProgress) silent = st_progress_new (4, "img", NULL, NULL);
  st_progress_step (silent);
  st_progress_finish (silent);
}

/* ---- Metadata and --lossless ------------------------------------------------ */

/* An EXIF block (TIFF structure, little-endian) whose IFD0 holds one
 * entry, the orientation. */
static GBytes *
exif_with_orientation (int orientation)
{
  const guint8 tiff[] = {
    'I', 'I', 42, 0, 8, 0, 0, 0, 1, 0,
    0x12, 0x01, 3, 0, 1, 0, 0, 0, orientation, 0, 0, 0,
    0, 0, 0, 0,
  };
  return g_bytes_new (tiff, sizeof tiff);
}

static const char run_xmp[] = "<x:xmpmeta xmlns:x=\"adobe:ns:meta/\">strata</x:xmpmeta>";

static void
write_image_with (const char *path, int c, int h, int w, const StImageMetadata *m)
{
  g_autoptr (StTensor) t = st_tensor_new0 (1, c, h, w);
  for (gsize i = 0; i < st_tensor_numel (t); i++)
    t->data[i] = (float) ((i * 37) % 256) / 255.0f;
  const StImageWriteOptions options = { m, FALSE };
  g_autoptr (GError) error = NULL;
  g_assert_true (st_image_save_with (t, path, ST_FORMAT_UNKNOWN, 8, 95, &options, &error));
  g_assert_no_error (error);
}

static StImageMetadata *
metadata_of (const char *path)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (StImageReader) r = st_image_reader_open (path, 0, NULL, NULL, NULL, NULL, &error);
  g_assert_no_error (error);
  return st_image_reader_take_metadata (r);
}

static void
assert_same_blob (GBytes *got, GBytes *want, const char *path, const char *what)
{
  if (want && !got)
    g_error ("%s: its %s is missing", path, what);
  if (!want && got)
    g_error ("%s: has an %s, expected none", path, what);
  if (want && !g_bytes_equal (got, want))
    g_error ("%s: its %s differs", path, what);
}

/* A run keeps each input's ICC profile, EXIF and XMP in every output format
 * that stores them, whole and in strips; a profile for RGB
 * is dropped when the pipeline makes the picture gray; --strip keeps none. */
static void
test_metadata_kept (void)
{
  g_autofree char *tmp = tu_make_tmpdir ("strata-run-XXXXXX");
  g_autofree char *in = g_build_filename (tmp, "in", NULL);
  g_assert_cmpint (g_mkdir (in, 0755), ==, 0);
  g_autoptr (StImageMetadata) m = st_image_metadata_new ();
  m->icc = tu_make_icc_profile (2000, "RGB ");
  m->exif = tu_make_exif (FALSE);
  m->xmp = g_bytes_new_static (run_xmp, strlen (run_xmp));
  /* big.png runs in strips (more than 64K pixels, sharpen is local). */
  static const char *const inputs[] = { "a.jpg", "b.png", "c.webp", "d.tif", "big.png" };
  for (gsize i = 0; i < G_N_ELEMENTS (inputs); i++)
    {
      g_autofree char *path = g_build_filename (in, inputs[i], NULL);
      const gboolean big = g_str_has_prefix (inputs[i], "big");
      write_image_with (path, 3, big ? 300 : 30, big ? 400 : 40, m);
    }

  static const char *const formats[] = { NULL, "png", "jpeg", "tiff", "webp" };
  for (gsize f = 0; f < G_N_ELEMENTS (formats); f++)
    for (int strip = 0; strip <= 1; strip++)
      {
        g_autofree char *out = g_strdup_printf ("%s/out-%s-%d/", tmp,
                                                formats[f] ? formats[f] : "kept", strip);
        const char *args[16] = { "run", "sharpen", in, "-o", out, "--quiet" };
        int n = 6;
        if (formats[f])
          {
            args[n++] = "--format";
            args[n++] = formats[f];
          }
        if (strip)
          args[n++] = "--strip";
        TuResult r = tu_run_argv (exe, args);
        g_assert_cmpint (r.status, ==, 0);
        tu_result_clear (&r);
        g_autoptr (GDir) dir = g_dir_open (out, 0, NULL);
        g_assert_nonnull (dir);
        int seen = 0;
        for (const char *name; (name = g_dir_read_name (dir)); seen++)
          {
            g_autofree char *path = g_build_filename (out, name, NULL);
            g_autoptr (StImageMetadata) got = metadata_of (path);
            /* Through a TIFF, EXIF is made anew from its directories. */
            const gboolean anew = g_str_has_suffix (name, ".tif") || g_str_has_prefix (name, "d.");
            assert_same_blob (got->icc, strip ? NULL : m->icc, path, "ICC profile");
            if (strip || !anew)
              assert_same_blob (got->exif, strip ? NULL : m->exif, path, "EXIF");
            else if (!got->exif || !memmem (g_bytes_get_data (got->exif, NULL),
                                            g_bytes_get_size (got->exif), TU_EXIF_DATE,
                                            sizeof TU_EXIF_DATE))
              g_error ("%s: its EXIF lacks the date", path);
            assert_same_blob (got->xmp, strip ? NULL : m->xmp, path, "XMP");
          }
        g_assert_cmpint (seen, ==, G_N_ELEMENTS (inputs));
      }

  g_autofree char *a = g_build_filename (in, "a.jpg", NULL);
  g_autofree char *gray = g_build_filename (tmp, "gray.png", NULL);
  TuResult r = tu_run (exe, "run", "grayscale", a, "-o", gray, "--quiet", NULL);
  g_assert_cmpint (r.status, ==, 0);
  tu_result_clear (&r);
  g_autoptr (StImageMetadata) got = metadata_of (gray);
  g_assert_null (got->icc);
  assert_same_blob (got->exif, m->exif, gray, "EXIF");
  tu_remove_tree (tmp);
}

/* A JPEG that strata turned upright (EXIF orientation 6) is written with
 * orientation 1, so viewers do not turn it again; whole and in strips. */
static void
test_metadata_orientation (void)
{
  g_autofree char *tmp = tu_make_tmpdir ("strata-run-XXXXXX");
  g_autoptr (StImageMetadata) m = st_image_metadata_new ();
  m->exif = exif_with_orientation (6);
  g_autoptr (GBytes) upright = exif_with_orientation (1);
  for (int big = 0; big <= 1; big++)
    {
      const int w = big ? 400 : 40, h = big ? 300 : 30;
      g_autofree char *in = g_build_filename (tmp, "turned.jpg", NULL);
      g_autofree char *out = g_build_filename (tmp, big ? "big.jpg" : "small.jpg", NULL);
      write_image_with (in, 3, h, w, m);
      TuResult r = tu_run (exe, "run", "sharpen", in, "-o", out, "--quiet", NULL);
      g_assert_cmpint (r.status, ==, 0);
      tu_result_clear (&r);
      g_autoptr (GError) error = NULL;
      int out_w, out_h;
      g_autoptr (StImageReader) reader = st_image_reader_open (out, 0, NULL, &out_w, &out_h,
                                                               NULL, &error);
      g_assert_no_error (error);
      g_assert_cmpint (out_w, ==, h);
      g_assert_cmpint (out_h, ==, w);
      /* The bytes of the file, as the reader would reset the tag itself. */
      g_autofree char *bytes = NULL;
      gsize size;
      g_assert_true (g_file_get_contents (out, &bytes, &size, NULL));
      g_autoptr (GByteArray) app1 = g_byte_array_new ();
      g_byte_array_append (app1, (const guint8 *) "Exif\0\0", 6);
      g_byte_array_append (app1, g_bytes_get_data (upright, NULL), g_bytes_get_size (upright));
      g_assert_nonnull (memmem (bytes, size, app1->data, app1->len));
    }
  tu_remove_tree (tmp);
}

/* --lossless: WebP outputs give back every 8-bit value (RGB, and RGBA
 * with alpha passed through), whole and in strips; JPEG refused: at once
 * when it is every output's format (exit 2), else for each JPEG output. */
static void
test_lossless (void)
{
  g_autofree char *tmp = tu_make_tmpdir ("strata-run-XXXXXX");
  g_autofree char *in = g_build_filename (tmp, "in", NULL);
  g_autofree char *out = g_build_filename (tmp, "out/", NULL);
  g_assert_cmpint (g_mkdir (in, 0755), ==, 0);
  static const struct { const char *name; int c, h, w; } images[] = {
    { "rgb", 3, 30, 40 }, { "rgba", 4, 30, 40 },
    { "big", 3, 300, 400 }, { "bigalpha", 4, 300, 400 },
  };
  for (gsize i = 0; i < G_N_ELEMENTS (images); i++)
    {
      g_autofree char *name = g_strdup_printf ("%s.png", images[i].name);
      g_autofree char *path = g_build_filename (in, name, NULL);
      write_image (path, images[i].c, images[i].h, images[i].w, 8);
    }
  TuResult r = tu_run (exe, "run", "invert ! invert", in, "-o", out, "--format", "webp",
                       "--lossless", "--quiet", NULL);
  g_assert_cmpint (r.status, ==, 0);
  tu_result_clear (&r);
  for (gsize i = 0; i < G_N_ELEMENTS (images); i++)
    {
      g_autofree char *src_name = g_strdup_printf ("%s.png", images[i].name);
      g_autofree char *out_name = g_strdup_printf ("%s.webp", images[i].name);
      g_autofree char *src = g_build_filename (in, src_name, NULL);
      g_autofree char *dst = g_build_filename (out, out_name, NULL);
      g_autoptr (GError) error = NULL;
      g_autoptr (StTensor) a = st_image_load (src, 0, NULL, &error);
      g_assert_no_error (error);
      g_autoptr (StTensor) b = st_image_load (dst, 0, NULL, &error);
      g_assert_no_error (error);
      g_assert_true (st_shape_equal (a->shape, b->shape));
      for (gsize k = 0; k < st_tensor_numel (a); k++)
        if (a->data[k] != b->data[k])
          g_error ("%s: value %" G_GSIZE_FORMAT " is %g, was %g", dst, k, b->data[k], a->data[k]);
    }

  g_autofree char *rgb = g_build_filename (in, "rgb.png", NULL);
  g_autofree char *jpg = g_build_filename (tmp, "x.jpg", NULL);
  r = tu_run (exe, "run", "sharpen", rgb, "-o", jpg, "--lossless", NULL);
  g_assert_cmpint (r.status, ==, 2);
  g_assert_nonnull (strstr (r.err, "strata run: --lossless: JPEG cannot be written lossless "
                                   "(choose --format webp, png or tiff)\n"));
  tu_result_clear (&r);
  r = tu_run (exe, "run", "sharpen", rgb, "-o", out, "--format", "jpeg", "--lossless", NULL);
  g_assert_cmpint (r.status, ==, 2);
  tu_result_clear (&r);
  g_assert_false (g_file_test (jpg, G_FILE_TEST_EXISTS));
  /* PNG is lossless anyway: accepted. */
  g_autofree char *png = g_build_filename (tmp, "x.png", NULL);
  r = tu_run (exe, "run", "sharpen", rgb, "-o", png, "--lossless", "--quiet", NULL);
  g_assert_cmpint (r.status, ==, 0);
  tu_result_clear (&r);
  /* A JPEG input keeping its format: that image fails, the rest are written. */
  g_autofree char *mixed = g_build_filename (tmp, "mixed", NULL);
  g_autofree char *mixed_out = g_build_filename (tmp, "mixed-out/", NULL);
  g_assert_cmpint (g_mkdir (mixed, 0755), ==, 0);
  g_autofree char *photo = g_build_filename (mixed, "photo.jpg", NULL);
  g_autofree char *plain = g_build_filename (mixed, "plain.png", NULL);
  write_image (photo, 3, 10, 10, 8);
  write_image (plain, 3, 10, 10, 8);
  r = tu_run (exe, "run", "sharpen", mixed, "-o", mixed_out, "--lossless", NULL);
  g_assert_cmpint (r.status, ==, 1);
  g_assert_nonnull (strstr (r.err, "photo.jpg: JPEG cannot be written lossless"));
  g_assert_nonnull (strstr (r.err, "1 written, 0 skipped, 1 failed"));
  tu_result_clear (&r);
  tu_remove_tree (tmp);
}

/* HEIC and AVIF in a folder are read (written as PNG: strata reads them
 * only), or, without libheif, fail with a message naming it; either way a
 * HEIC that cannot be read counts as failed, never as ignored. */
static void
test_heif_folder (void)
{
  g_autofree char *tmp = tu_make_tmpdir ("strata-run-XXXXXX");
  g_autofree char *in = g_build_filename (tmp, "phone", NULL);
  g_assert_cmpint (g_mkdir (in, 0755), ==, 0);
  g_autofree char *out = g_build_filename (tmp, "out/", NULL);
  g_autofree char *fake = g_build_filename (in, "header-only.heic", NULL);
  tu_write_bytes (fake, "\0\0\0\x18" "ftypheic\0\0\0\0mif1heic", 24);

  TuResult r = tu_run (exe, "run", "invert", in, "-o", out, NULL);
  g_assert_cmpint (r.status, ==, 1);
#ifdef ST_HAVE_LIBHEIF
  g_autofree char *line = g_strdup_printf ("%s: invalid HEIC file (", fake);
#else
  g_autofree char *line = g_strdup_printf (
      "%s: HEIC images need strata built with libheif (libheif-dev)\n", fake);
#endif
  g_assert_nonnull (strstr (r.err, line));
  g_assert_nonnull (strstr (r.err, "0 written, 0 skipped, 1 failed"));
  g_assert_null (strstr (r.err, "ignored"));
  tu_result_clear (&r);

#ifdef ST_HAVE_LIBHEIF
  g_autoptr (StTensor) src = st_tensor_new0 (1, 4, 16, 24);
  for (gsize i = 0; i < st_tensor_numel (src); i++)
    src->data[i] = i < 3 * 16 * 24 ? 0.25f : 1.0f;
  static const struct { const char *name; gboolean av1; } photos[] = {
    { "a.heic", FALSE }, { "b.avif", TRUE },
  };
  for (gsize i = 0; i < G_N_ELEMENTS (photos); i++)
    {
      g_autofree char *path = g_build_filename (in, photos[i].name, NULL);
      if (!tu_write_heif (path, src, photos[i].av1, 8, 1))
        {
          g_test_skip ("libheif has no HEVC or no AV1 encoder to make the fixtures");
          tu_remove_tree (tmp);
          return;
        }
    }
  g_assert_cmpint (g_unlink (fake), ==, 0);
  r = tu_run (exe, "run", "invert", in, "-o", out, NULL);
  g_assert_cmpint (r.status, ==, 0);
  g_assert_nonnull (strstr (r.err, "2 written, 0 skipped, 0 failed"));
  tu_result_clear (&r);
  for (gsize i = 0; i < G_N_ELEMENTS (photos); i++)
    {
      g_autofree char *png = g_strdup_printf ("%s%c.png", out, photos[i].name[0]);
      StImageInfo info;
      g_autoptr (GError) error = NULL;
      g_autoptr (StTensor) t = st_image_load (png, 0, &info, &error);
      g_assert_no_error (error);
      g_assert_cmpint (info.format, ==, ST_FORMAT_PNG);
      g_assert_true (info.has_alpha);
      g_assert_cmpint (t->shape.w, ==, 24);
      g_assert_cmpint (t->shape.h, ==, 16);
      /* Inverted colour, alpha kept. */
      g_assert_cmpfloat (fabsf (t->data[0] - 0.75f), <, 0.02f);
      g_assert_cmpfloat (t->data[3 * 16 * 24], ==, 1.0f);
    }
#endif
  tu_remove_tree (tmp);
}

/* Files in a folder are taken by their first bytes: a name without an
 * image extension whose content is an image is read, a name that says
 * another format than the content is read as the content says, with a
 * note (not under --quiet), and the output is named for what it holds. */
static void
test_content_recognition (void)
{
  g_autofree char *tmp = tu_make_tmpdir ("strata-run-XXXXXX");
  g_autofree char *in = g_build_filename (tmp, "in", NULL);
  g_assert_cmpint (g_mkdir (in, 0755), ==, 0);
  g_autofree char *jpeg = g_build_filename (tmp, "real.jpg", NULL);
  g_autofree char *png = g_build_filename (tmp, "real.png", NULL);
  write_image (jpeg, 3, 8, 10, 8);
  write_image (png, 3, 6, 4, 8);
  g_autofree char *jpeg_bytes = NULL, *png_bytes = NULL;
  gsize jpeg_len, png_len;
  g_assert_true (g_file_get_contents (jpeg, &jpeg_bytes, &jpeg_len, NULL));
  g_assert_true (g_file_get_contents (png, &png_bytes, &png_len, NULL));

  g_autofree char *misnamed = g_build_filename (in, "photo.png", NULL);
  g_autofree char *bare = g_build_filename (in, "scan", NULL);
  g_autofree char *odd = g_build_filename (in, "picture.dat", NULL);
  g_autofree char *gif = g_build_filename (in, "dot.bin", NULL);
  g_autofree char *text = g_build_filename (in, "notes.txt", NULL);
  g_autofree char *broken = g_build_filename (in, "broken.png", NULL);
  tu_write_bytes (misnamed, jpeg_bytes, jpeg_len);
  tu_write_bytes (bare, png_bytes, png_len);
  tu_write_bytes (odd, jpeg_bytes, jpeg_len);
  /* 1x1 GIF, two colours, the pixel index 1 (black). */
  tu_write_bytes (gif, "GIF89a\x01\x00\x01\x00\x80\x00\x00\xff\xff\xff\x00\x00\x00"
                  ",\x00\x00\x00\x00\x01\x00\x01\x00\x00\x02\x02" "L\x01\x00;", 35);
  tu_write_bytes (text, "P is not for PNM\n", 17);
  tu_write_bytes (broken, "not a PNG at all", 16);

  g_autofree char *out = g_build_filename (tmp, "out/", NULL);
  TuResult r = tu_run (exe, "run", "invert", in, "-o", out, NULL);
  g_assert_cmpint (r.status, ==, 1);
  g_autofree char *note = g_strdup_printf ("%s: a JPEG named .png; read as JPEG\n", misnamed);
  const char *first = strstr (r.err, note);
  g_assert_nonnull (first);
  g_assert_null (strstr (first + 1, note));
  /* Only the name that says another format gets a note. */
  g_assert_null (strstr (r.err, "named .dat"));
  g_autofree char *broken_line = g_strdup_printf ("%s: not a ", broken);
  g_assert_nonnull (strstr (r.err, broken_line));
  g_assert_nonnull (strstr (r.err, "4 written, 0 skipped, 1 failed, 0 interrupted, 1 ignored"));
  tu_result_clear (&r);

  static const struct {
    const char *name;
    StImageFormat format;
    int width;
  } outputs[] = {
    { "photo.jpg", ST_FORMAT_JPEG, 10 },
    { "scan.png", ST_FORMAT_PNG, 4 },
    { "picture.jpg", ST_FORMAT_JPEG, 10 },
    { "dot.png", ST_FORMAT_PNG, 1 },       /* GIF is read only */
  };
  for (gsize i = 0; i < G_N_ELEMENTS (outputs); i++)
    {
      g_autofree char *path = g_build_filename (out, outputs[i].name, NULL);
      StImageInfo info;
      g_autoptr (GError) error = NULL;
      g_autoptr (StTensor) t = st_image_load (path, 0, &info, &error);
      g_assert_no_error (error);
      g_assert_cmpint (info.format, ==, outputs[i].format);
      g_assert_cmpint (t->shape.w, ==, outputs[i].width);
    }
  g_autofree char *dot = g_build_filename (out, "dot.png", NULL);
  g_autoptr (StTensor) white = st_image_load (dot, 0, NULL, NULL);
  g_assert_cmpfloat (white->data[0], ==, 1.0f);
  int temporaries = 0;
  g_assert_cmpint (count_files (out, &temporaries), ==, 4);

  /* --quiet: no note. */
  r = tu_run (exe, "run", "invert", in, "-o", out, "--overwrite", "--quiet", NULL);
  g_assert_cmpint (r.status, ==, 1);
  g_assert_null (strstr (r.err, "read as JPEG"));
  tu_result_clear (&r);

  /* A file named on the command line: its output is named for its content
   * too, and --format still decides. */
  g_autofree char *one = g_build_filename (tmp, "one/", NULL);
  r = tu_run (exe, "run", "invert", bare, "-o", one, NULL);
  g_assert_cmpint (r.status, ==, 0);
  tu_result_clear (&r);
  g_autofree char *one_png = g_build_filename (one, "scan.png", NULL);
  g_assert_true (g_file_test (one_png, G_FILE_TEST_IS_REGULAR));
  r = tu_run (exe, "run", "invert", misnamed, "-o", one, "--format", "tiff", "--quiet", NULL);
  g_assert_cmpint (r.status, ==, 0);
  tu_result_clear (&r);
  g_autofree char *one_tiff = g_build_filename (one, "photo.tif", NULL);
  g_assert_true (g_file_test (one_tiff, G_FILE_TEST_IS_REGULAR));
  tu_remove_tree (tmp);
}

/* The bundled classifiers on the bundled samples: each file is named for
 * its class (00023-ankle-boot.png, tshirt.jpg), and the shipped weights
 * must keep naming nearly all of them right, through the plain pipeline
 * and through the photo pipeline's grayscale, resize and invert. */
static int
count_right (const char *pipeline, const char *folder, int *total)
{
  g_autofree char *dir = g_build_filename (g_getenv ("STRATA_SOURCE_ROOT"), "samples", folder,
                                           NULL);
  g_autofree char *out = NULL, *err = NULL;
  int status = tu_run_capture (exe, &out, &err, "run", pipeline, dir, "-o", "-", "-j", "1",
                               NULL);
  g_assert_cmpint (status, ==, 0);
  g_auto (GStrv) lines = g_strsplit (out, "\n", -1);
  int right = 0;
  *total = 0;
  for (int i = 1; lines[i] && *lines[i]; i++)
    {
      g_auto (GStrv) fields = g_strsplit (lines[i], ",", 3);
      g_assert_nonnull (fields[1]);
      g_autofree char *base = g_path_get_basename (fields[0]);
      /* "00023-ankle-boot.png" and "Ankle boot" both become "ankleboot". */
      GString *want = g_string_new (NULL), *got = g_string_new (NULL);
      for (const char *c = base[0] >= '0' && base[0] <= '9' ? strchr (base, '-') + 1 : base;
           *c && *c != '.'; c++)
        if (g_ascii_isalpha (*c))
          g_string_append_c (want, g_ascii_tolower (*c));
      for (const char *c = fields[1]; *c && *c != '/'; c++)
        if (g_ascii_isalpha (*c))
          g_string_append_c (got, g_ascii_tolower (*c));
      g_test_message ("%s: %s", base, fields[1]);
      right += strcmp (want->str, got->str) == 0;
      (*total)++;
      g_string_free (want, TRUE);
      g_string_free (got, TRUE);
    }
  return right;
}

static void
test_bundled_classifiers (void)
{
  int total = 0;
  int right = count_right ("fashion-mnist", "fashion-mnist", &total);
  g_assert_cmpint (total, ==, 20);
  g_assert_cmpint (right, >=, 19);
  right = count_right ("fashion-mnist-photo", "garments", &total);
  g_assert_cmpint (total, ==, 10);
  g_assert_cmpint (right, >=, 9);
  right = count_right ("fashion-mnist-large", "fashion-mnist", &total);
  g_assert_cmpint (total, ==, 20);
  g_assert_cmpint (right, >=, 19);
  right = count_right ("fashion-mnist-large-photo", "garments", &total);
  g_assert_cmpint (total, ==, 10);
  g_assert_cmpint (right, >=, 9);
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  signal (SIGPIPE, SIG_IGN);
  exe = g_getenv ("STRATA_EXE");
  if (!exe)
    {
      g_printerr ("STRATA_EXE is not set: run this test through 'meson test'\n");
      return 1;
    }
  g_test_add_func ("/run/folder-with-bad-images", test_folder_with_bad_images);
  g_test_add_func ("/run/single-file-and-format", test_single_file_and_format);
  g_test_add_func ("/run/pnm-output", test_pnm_output);
  g_test_add_func ("/run/usage-and-pipeline-errors", test_usage_and_pipeline_errors);
  g_test_add_func ("/run/input-never-replaced", test_input_never_replaced);
  g_test_add_func ("/run/output-collisions", test_output_collisions);
  g_test_add_func ("/run/output-inside-input", test_output_inside_input);
  g_test_add_func ("/run/symlink-loop", test_symlink_loop);
  g_test_add_func ("/run/output-names-and-standard-streams",
                   test_output_names_and_standard_streams);
  g_test_add_func ("/run/unwritable-output", test_unwritable_output);
  g_test_add_func ("/run/option-ranges", test_option_ranges);
  g_test_add_func ("/run/ignored-files", test_ignored_files);
  g_test_add_func ("/run/progress", test_progress);
  g_test_add_func ("/run/predictions-on-stdout", test_predictions_on_stdout);
  g_test_add_func ("/run/bundled-classifiers", test_bundled_classifiers);
  g_test_add_func ("/run/thread-start-failure", test_thread_start_failure);
  g_test_add_func ("/run/pool-bound", test_pool_bound);
  g_test_add_func ("/run/pool-calls", test_pool_calls);
  g_test_add_func ("/run/pool-cpus", test_pool_cpus);
  g_test_add_func ("/run/pool-trade", test_pool_trade);
  g_test_add_func ("/run/cgroup-quota", test_cgroup_quota);
  g_test_add_func ("/run/atomic-file", test_atomic_file);
  g_test_add_func ("/run/heif-folder", test_heif_folder);
  g_test_add_func ("/run/content-recognition", test_content_recognition);
  g_test_add_data_func ("/run/interrupt/sigint", GINT_TO_POINTER (SIGINT), test_interrupt);
  g_test_add_data_func ("/run/interrupt/sigterm", GINT_TO_POINTER (SIGTERM), test_interrupt);
  g_test_add_data_func ("/run/interrupt/sigkill", GINT_TO_POINTER (SIGKILL), test_interrupt);
  g_test_add_func ("/run/metadata-kept", test_metadata_kept);
  g_test_add_func ("/run/metadata-orientation", test_metadata_orientation);
  g_test_add_func ("/run/lossless", test_lossless);
  g_test_add_func ("/cli/plugins", test_plugins_listing);
  g_test_add_func ("/cli/inspect", test_inspect);
  return g_test_run ();
}
