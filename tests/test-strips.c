/* Large images in strips: the streaming reader and writer, and `strata
 * run`'s strip path, which must write byte for byte what the whole-image
 * path writes. */
#include "image.h"
#include "runner.h"
#include "testutil.h"

#include <glib/gstdio.h>
#include <math.h>
#include <stdio.h>
#include <jpeglib.h>
#include <png.h>
#include <string.h>

G_DEFINE_AUTOPTR_CLEANUP_FUNC (StPipeline, st_pipeline_free)

static StRegistry *reg;

/* ---- Fixtures ---------------------------------------------------------- */

static int
count_entries (const char *dir)
{
  g_autoptr (GDir) d = g_dir_open (dir, 0, NULL);
  int n = 0;
  while (d && g_dir_read_name (d))
    n++;
  return n;
}

/* Smooth waves, edges and noise, so that filters and JPEG coding have real
 * work and every kind of row differs from its neighbours. */
static StTensor *
pattern (int c, int h, int w, guint32 seed)
{
  StTensor *t = st_tensor_new0 (1, c, h, w);
  GRand *rand = g_rand_new_with_seed (seed);
  gsize plane = (gsize) h * w;
  for (int k = 0; k < c; k++)
    for (int y = 0; y < h; y++)
      for (int x = 0; x < w; x++)
        {
          double v = 0.5 + 0.3 * sin (0.05 * x * (k + 1) + 0.07 * y)
                     + ((x / 17 + y / 13) % 2 ? 0.1 : -0.1)
                     + 0.15 * (g_rand_double (rand) - 0.5);
          t->data[k * plane + (gsize) y * w + x] = (float) v;
        }
  g_rand_free (rand);
  return t;
}

static void
save_ok (const StTensor *t, const char *path, int bit_depth)
{
  g_autoptr (GError) error = NULL;
  g_assert_true (st_image_save (t, path, ST_FORMAT_UNKNOWN, bit_depth, 92, &error));
  g_assert_no_error (error);
}

static StTensor *
load_ok (const char *path, StImageInfo *info)
{
  g_autoptr (GError) error = NULL;
  StTensor *t = st_image_load (path, 0, info, &error);
  g_assert_no_error (error);
  return t;
}

static void
assert_tensors_equal (const StTensor *a, const StTensor *b)
{
  g_assert_true (st_shape_equal (a->shape, b->shape));
  g_assert_cmpmem (a->data, st_tensor_numel (a) * sizeof (float),
                   b->data, st_tensor_numel (b) * sizeof (float));
}

static void
assert_same_bytes (const char *a, const char *b)
{
  g_autofree char *da = NULL, *db = NULL;
  gsize la, lb;
  g_assert_true (g_file_get_contents (a, &da, &la, NULL));
  g_assert_true (g_file_get_contents (b, &db, &lb, NULL));
  if (la != lb || memcmp (da, db, la) != 0)
    g_error ("%s and %s differ", a, b);
}

/* A JPEG with an EXIF orientation, written with libjpeg: a minimal APP1
 * block (TIFF header, IFD0 with one Orientation entry). */
static void
write_oriented_jpeg (const char *path, const StTensor *t, int orientation)
{
  const int w = t->shape.w, h = t->shape.h;
  const gsize plane = (gsize) w * h;
  struct jpeg_compress_struct cinfo;
  struct jpeg_error_mgr jerr;
  FILE *fp = fopen (path, "wb");
  g_assert_nonnull (fp);
  cinfo.err = jpeg_std_error (&jerr);
  jpeg_create_compress (&cinfo);
  jpeg_stdio_dest (&cinfo, fp);
  cinfo.image_width = w;
  cinfo.image_height = h;
  cinfo.input_components = 3;
  cinfo.in_color_space = JCS_RGB;
  jpeg_set_defaults (&cinfo);
  jpeg_set_quality (&cinfo, 90, TRUE);
  jpeg_start_compress (&cinfo, TRUE);
  const guint8 exif[] = {
    'E', 'x', 'i', 'f', 0, 0,
    'I', 'I', 42, 0, 8, 0, 0, 0,
    1, 0,
    0x12, 0x01, 3, 0, 1, 0, 0, 0,
    orientation, 0, 0, 0,
    0, 0, 0, 0,
  };
  jpeg_write_marker (&cinfo, JPEG_APP0 + 1, exif, sizeof exif);
  g_autofree guint8 *row = g_malloc ((gsize) w * 3);
  while (cinfo.next_scanline < cinfo.image_height)
    {
      const int y = cinfo.next_scanline;
      for (int x = 0; x < w; x++)
        for (int c = 0; c < 3; c++)
          {
            float v = CLAMP (t->data[c * plane + (gsize) y * w + x], 0.0f, 1.0f);
            row[3 * x + c] = (guint8) (v * 255.0f + 0.5f);
          }
      JSAMPROW r = row;
      jpeg_write_scanlines (&cinfo, &r, 1);
    }
  jpeg_finish_compress (&cinfo);
  jpeg_destroy_compress (&cinfo);
  g_assert_cmpint (fclose (fp), ==, 0);
}

/* An interlaced (Adam7) 8-bit RGB PNG, written with libpng. */
static void
write_interlaced_png (const char *path, const StTensor *t)
{
  const int w = t->shape.w, h = t->shape.h;
  const gsize plane = (gsize) w * h;
  FILE *fp = fopen (path, "wb");
  g_assert_nonnull (fp);
  png_structp png = png_create_write_struct (PNG_LIBPNG_VER_STRING, NULL, NULL, NULL);
  png_infop info = png_create_info_struct (png);
  g_assert_true (png && info);
  if (setjmp (png_jmpbuf (png)))
    g_error ("libpng failed writing a fixture");
  png_init_io (png, fp);
  png_set_IHDR (png, info, w, h, 8, PNG_COLOR_TYPE_RGB, PNG_INTERLACE_ADAM7,
                PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
  png_write_info (png, info);
  png_set_interlace_handling (png);
  guint8 **rows = g_new (guint8 *, h);
  for (int y = 0; y < h; y++)
    {
      rows[y] = g_malloc ((gsize) w * 3);
      for (int x = 0; x < w; x++)
        for (int c = 0; c < 3; c++)
          {
            float v = CLAMP (t->data[c * plane + (gsize) y * w + x], 0.0f, 1.0f);
            rows[y][3 * x + c] = (guint8) (v * 255.0f + 0.5f);
          }
    }
  png_write_image (png, rows);
  png_write_end (png, NULL);
  png_destroy_write_struct (&png, &info);
  for (int y = 0; y < h; y++)
    g_free (rows[y]);
  g_free (rows);
  g_assert_cmpint (fclose (fp), ==, 0);
}

static StPipeline *
load_pipeline (const char *spec)
{
  g_autoptr (GError) error = NULL;
  g_autofree char *path = g_str_has_suffix (spec, ".ini")
                          ? g_build_filename (STRATA_SOURCE_ROOT, "pipelines", spec, NULL)
                          : g_strdup (spec);
  StPipeline *p = st_pipeline_load (reg, path, &error);
  g_assert_no_error (error);
  return p;
}

/* Never strips, whatever the size. */
#define WHOLE G_MAXUINT64

static StRunSummary
run_images (StPipeline *p, const char *input, const char *output, int strip_rows,
            guint64 strip_min_pixels, int jobs)
{
  StRunOptions opt = {
    .output = output, .jpeg_quality = 90, .jobs = jobs, .overwrite = TRUE, .quiet = TRUE,
    .strip_rows = strip_rows, .strip_min_pixels = strip_min_pixels,
  };
  const char *inputs[] = { input, NULL };
  StRunSummary summary;
  g_autoptr (GError) error = NULL;
  g_assert_true (st_run_images (p, inputs, &opt, &summary, &error));
  g_assert_no_error (error);
  return summary;
}

/* Runs p on input whole and in strips of each height in strip_rows (0 ends
 * the list), with one thread and with two (the decoder then runs ahead on
 * a thread of its own), and checks the files are identical. */
static void
assert_strips_match (const char *dir, const char *spec, const char *input, const char *ext,
                     const int *strip_rows)
{
  g_test_message ("%s on %s", spec, input);
  g_autoptr (StPipeline) p = load_pipeline (spec);
  g_autofree char *whole = g_strdup_printf ("%s/whole.%s", dir, ext);
  StRunSummary s = run_images (p, input, whole, 0, WHOLE, 1);
  g_assert_cmpuint (s.written, ==, 1);
  g_assert_cmpuint (s.in_strips, ==, 0);
  for (const int *rows = strip_rows; *rows; rows++)
    for (int jobs = 1; jobs <= 2; jobs++)
      {
        g_autofree char *strips = g_strdup_printf ("%s/strips-%d-%d.%s", dir, *rows, jobs, ext);
        s = run_images (p, input, strips, *rows, 1, jobs);
        g_assert_cmpuint (s.written, ==, 1);
        g_assert_cmpuint (s.in_strips, ==, 1);
        assert_same_bytes (whole, strips);
        g_unlink (strips);
      }
  g_unlink (whole);
}

/* ---- Reader and writer ------------------------------------------------- */

/* Reads path in bands of `band` rows into varying rows of a scratch tensor
 * and writes them on in other bands: the image read back must equal what
 * st_image_load gives, and the file written what st_image_save writes. */
static void
assert_streams_like_whole (const char *dir, const char *path, int band)
{
  StImageInfo info;
  g_autoptr (StTensor) whole = load_ok (path, &info);
  int w, h, c;
  g_autoptr (GError) error = NULL;
  g_autoptr (StImageReader) reader = st_image_reader_open (path, 0, NULL, &w, &h, &c, &error);
  g_assert_no_error (error);
  g_assert_cmpint (w, ==, whole->shape.w);
  g_assert_cmpint (h, ==, whole->shape.h);
  g_assert_cmpint (c, ==, whole->shape.c);

  const char *ext = info.format == ST_FORMAT_PNG ? "png" : "jpg";
  g_autofree char *expected = g_strdup_printf ("%s/expected.%s", dir, ext);
  g_autofree char *written = g_strdup_printf ("%s/written.%s", dir, ext);
  save_ok (whole, expected, info.bit_depth);
  StImageWriter *writer = st_image_writer_open (written, ST_FORMAT_UNKNOWN, w, h, c,
                                                info.bit_depth, 92, &error);
  g_assert_no_error (error);

  g_autoptr (StTensor) back = st_tensor_new0 (1, c, h, w);
  g_autoptr (StTensor) scratch = st_tensor_new0 (1, c, band + 3, w);
  for (int y = 0, k = 0; y < h; k++)
    {
      const int n = MIN (band - k % 2, h - y);   /* bands of two heights */
      const int at = k % 4;                      /* into varying rows */
      g_assert_true (st_image_reader_read (reader, scratch, at, n, &error));
      g_assert_no_error (error);
      g_assert_true (st_image_writer_write (writer, scratch, at, n, &error));
      g_assert_no_error (error);
      for (int ch = 0; ch < c; ch++)
        memcpy (back->data + ((gsize) ch * h + y) * w,
                scratch->data + ((gsize) ch * scratch->shape.h + at) * w,
                sizeof (float) * n * w);
      y += n;
    }
  g_assert_true (st_image_writer_finish (writer, &error));
  g_assert_no_error (error);
  assert_tensors_equal (whole, back);
  assert_same_bytes (expected, written);
  g_unlink (expected);
  g_unlink (written);
}

static void
test_reader_writer_round_trip (void)
{
  g_autofree char *dir = tu_make_tmpdir ("strata-strips-XXXXXX");
  struct { const char *name; int c, bits; } cases[] = {
    { "rgb.png", 3, 8 }, { "rgba16.png", 4, 16 }, { "gray.png", 1, 8 },
    { "graya.png", 2, 8 }, { "rgb.jpg", 3, 8 }, { "gray.jpg", 1, 8 },
  };
  for (gsize i = 0; i < G_N_ELEMENTS (cases); i++)
    {
      g_autofree char *path = g_build_filename (dir, cases[i].name, NULL);
      g_autoptr (StTensor) t = pattern (cases[i].c, 45, 37, i);
      save_ok (t, path, cases[i].bits);
      assert_streams_like_whole (dir, path, 1);
      assert_streams_like_whole (dir, path, 7);
      assert_streams_like_whole (dir, path, 64);
    }

  /* Rows that cannot stream: interlaced, and orientations that flip or
   * turn the picture; and one that mirrors each row as it streams. */
  g_autoptr (StTensor) t = pattern (3, 41, 29, 9);
  g_autofree char *interlaced = g_build_filename (dir, "adam7.png", NULL);
  write_interlaced_png (interlaced, t);
  assert_streams_like_whole (dir, interlaced, 5);
  for (int orientation = 1; orientation <= 8; orientation++)
    {
      g_autofree char *path = g_strdup_printf ("%s/orientation-%d.jpg", dir, orientation);
      write_oriented_jpeg (path, t, orientation);
      assert_streams_like_whole (dir, path, 6);
    }
  tu_remove_tree (dir);
}

/* Every byte value decodes to exactly i / 255, whichever conversion code
 * the CPU takes (gray and RGBA rows have vector paths, RGB a table), and
 * encodes back to itself. */
static void
test_exact_levels (void)
{
  g_autofree char *dir = tu_make_tmpdir ("strata-strips-XXXXXX");
  for (int c = 1; c <= 4; c++)
    {
      const int w = 256 + 7;   /* vector loops and their scalar tails */
      g_autoptr (StTensor) t = st_tensor_new0 (1, c, 3, w);
      for (gsize i = 0; i < st_tensor_numel (t); i++)
        t->data[i] = (float) ((i * 7 + i / w) % 256) / 255.0f;
      g_autofree char *path = g_strdup_printf ("%s/levels-%d.png", dir, c);
      save_ok (t, path, 8);
      g_autoptr (StTensor) back = load_ok (path, NULL);
      assert_tensors_equal (t, back);
    }
  tu_remove_tree (dir);
}

/* A writer that is given up on, or finished before every row came, leaves
 * nothing behind; a reader can stop anywhere. */
static void
test_writer_abort_and_short (void)
{
  g_autofree char *dir = tu_make_tmpdir ("strata-strips-XXXXXX");
  g_autofree char *path = g_build_filename (dir, "out.png", NULL);
  g_autoptr (StTensor) t = pattern (3, 20, 10, 1);
  g_autoptr (GError) error = NULL;

  StImageWriter *w = st_image_writer_open (path, ST_FORMAT_UNKNOWN, 10, 20, 3, 8, 90, &error);
  g_assert_no_error (error);
  g_assert_true (st_image_writer_write (w, t, 0, 5, &error));
  st_image_writer_abort (w);
  g_assert_cmpint (count_entries (dir), ==, 0);

  w = st_image_writer_open (path, ST_FORMAT_UNKNOWN, 10, 20, 3, 8, 90, &error);
  g_assert_true (st_image_writer_write (w, t, 0, 19, &error));
  g_assert_false (st_image_writer_finish (w, &error));
  g_assert_error (error, ST_ERROR, ST_ERROR_IMAGE);
  g_assert_true (g_str_has_prefix (error->message, path));
  g_clear_error (&error);
  g_assert_cmpint (count_entries (dir), ==, 0);

  g_assert_null (st_image_writer_open (path, ST_FORMAT_UNKNOWN, 10, 20, 5, 8, 90, &error));
  g_assert_error (error, ST_ERROR, ST_ERROR_IMAGE);
  g_clear_error (&error);
  g_assert_null (st_image_writer_open (path, ST_FORMAT_PNG, 10, 20, 3, 12, 90, &error));
  g_assert_error (error, ST_ERROR, ST_ERROR_IMAGE);
  g_clear_error (&error);
  g_assert_cmpint (count_entries (dir), ==, 0);

  save_ok (t, path, 8);
  StImageReader *r = st_image_reader_open (path, 0, NULL, NULL, NULL, NULL, &error);
  g_assert_no_error (error);
  g_autoptr (StTensor) band = st_tensor_new0 (1, 3, 4, 10);
  g_assert_true (st_image_reader_read (r, band, 0, 4, &error));
  st_image_reader_close (r);
  tu_remove_tree (dir);
}

/* ---- The strip path ---------------------------------------------------- */

static const int some_rows[] = { 16, 5, 0 };

static void
test_strips_match_whole (void)
{
  g_autofree char *dir = tu_make_tmpdir ("strata-strips-XXXXXX");
  /* An odd height: the last strip is short for every strip height. */
  g_autoptr (StTensor) rgb = pattern (3, 203, 131, 3);
  g_autofree char *png = g_build_filename (dir, "in.png", NULL);
  g_autofree char *jpeg = g_build_filename (dir, "in.jpg", NULL);
  save_ok (rgb, png, 8);
  save_ok (rgb, jpeg, 8);
  const char *pipelines[] = {
    "sharpen.ini",
    "edges.ini",                 /* a graph: two kernels joined by magnitude */
    "unsharp.ini",               /* a 13x13 gaussian: a halo wider than a strip */
    "grayscale ! kernel preset=emboss border=reflect",
    "kernel preset=box size=4 border=edge",   /* uneven padding */
  };
  for (gsize i = 0; i < G_N_ELEMENTS (pipelines); i++)
    {
      assert_strips_match (dir, pipelines[i], png, "png", some_rows);
      assert_strips_match (dir, pipelines[i], jpeg, "jpg", some_rows);
    }
  tu_remove_tree (dir);
}

/* 16-bit and alpha: the alpha plane goes around the filters, per strip. */
static void
test_strips_alpha_and_depth (void)
{
  g_autofree char *dir = tu_make_tmpdir ("strata-strips-XXXXXX");
  g_autoptr (StTensor) rgba = pattern (4, 77, 53, 4);
  g_autoptr (StTensor) graya = pattern (2, 77, 53, 5);
  g_autofree char *rgba8 = g_build_filename (dir, "rgba8.png", NULL);
  g_autofree char *rgba16 = g_build_filename (dir, "rgba16.png", NULL);
  g_autofree char *gray16 = g_build_filename (dir, "graya16.png", NULL);
  save_ok (rgba, rgba8, 8);
  save_ok (rgba, rgba16, 16);
  save_ok (graya, gray16, 16);
  const int rows[] = { 9, 0 };
  assert_strips_match (dir, "unsharp.ini", rgba8, "png", rows);
  assert_strips_match (dir, "sharpen.ini", rgba16, "png", rows);
  assert_strips_match (dir, "edges.ini", gray16, "png", rows);
  /* RGBA to JPEG: alpha dropped on both paths. */
  assert_strips_match (dir, "sharpen.ini", rgba8, "jpg", rows);

  /* Alpha kept, exactly. */
  g_autoptr (StPipeline) p = load_pipeline ("sharpen.ini");
  g_autofree char *out = g_build_filename (dir, "out.png", NULL);
  StRunSummary s = run_images (p, rgba16, out, 10, 1, 2);
  g_assert_cmpuint (s.in_strips, ==, 1);
  StImageInfo in_info, out_info;
  g_autoptr (StTensor) before = load_ok (rgba16, &in_info);
  g_autoptr (StTensor) after = load_ok (out, &out_info);
  g_assert_true (out_info.has_alpha);
  g_assert_cmpint (out_info.bit_depth, ==, 16);
  g_assert_cmpint (after->shape.c, ==, 4);
  const gsize plane = (gsize) 77 * 53;
  g_assert_cmpmem (before->data + 3 * plane, plane * sizeof (float),
                   after->data + 3 * plane, plane * sizeof (float));
  tu_remove_tree (dir);
}

/* Decoded whole when opened, then cut into strips all the same. */
static void
test_strips_unstreamable_inputs (void)
{
  g_autofree char *dir = tu_make_tmpdir ("strata-strips-XXXXXX");
  g_autoptr (StTensor) t = pattern (3, 71, 46, 6);
  g_autofree char *interlaced = g_build_filename (dir, "adam7.png", NULL);
  write_interlaced_png (interlaced, t);
  const int rows[] = { 8, 0 };
  assert_strips_match (dir, "sharpen.ini", interlaced, "png", rows);
  for (int orientation = 2; orientation <= 8; orientation += 3)   /* 2, 5, 8 */
    {
      g_autofree char *path = g_strdup_printf ("%s/orientation-%d.jpg", dir, orientation);
      write_oriented_jpeg (path, t, orientation);
      assert_strips_match (dir, "edges.ini", path, "jpg", rows);
    }
  tu_remove_tree (dir);
}

/* With the default options: an image over the size threshold runs in
 * strips, when every stage is local. */
static void
test_strips_by_default (void)
{
  g_autofree char *dir = tu_make_tmpdir ("strata-strips-XXXXXX");
  g_autoptr (StTensor) big = pattern (3, 501, 700, 7);
  g_autoptr (StTensor) small = pattern (3, 200, 320, 8);      /* 64000 pixels */
  g_autofree char *big_path = g_build_filename (dir, "big.jpg", NULL);
  g_autofree char *small_path = g_build_filename (dir, "small.jpg", NULL);
  save_ok (big, big_path, 8);
  save_ok (small, small_path, 8);
  g_autofree char *out_whole = g_build_filename (dir, "out-whole.jpg", NULL);
  g_autofree char *out = g_build_filename (dir, "out.jpg", NULL);

  g_autoptr (StPipeline) p = load_pipeline ("sharpen.ini");
  StRunSummary s = run_images (p, big_path, out, 0, 0, 0);
  g_assert_cmpuint (s.in_strips, ==, 1);
  s = run_images (p, big_path, out_whole, 0, WHOLE, 0);
  g_assert_cmpuint (s.in_strips, ==, 0);
  assert_same_bytes (out, out_whole);
  s = run_images (p, small_path, out, 0, 0, 0);
  g_assert_cmpuint (s.written, ==, 1);
  g_assert_cmpuint (s.in_strips, ==, 0);

  /* A stage that needs the whole image (wrap reads the far edge). */
  g_autoptr (StPipeline) wrap = load_pipeline ("kernel preset=sharpen border=wrap");
  s = run_images (wrap, big_path, out, 0, 1, 0);
  g_assert_cmpuint (s.written, ==, 1);
  g_assert_cmpuint (s.in_strips, ==, 0);
  tu_remove_tree (dir);
}

/* A file cut short fails while strips are already written: the error names
 * the input, as on the whole-image path, and no output, finished or
 * temporary, is left. */
static void
test_strips_truncated (void)
{
  for (int jobs = 1; jobs <= 2; jobs++)
    {
      g_autofree char *child = g_strdup_printf ("/strips/truncated/subprocess/%d", jobs);
      g_test_trap_subprocess (child, 0, G_TEST_SUBPROCESS_DEFAULT);
      g_test_trap_assert_passed ();
      g_test_trap_assert_stderr ("*/in/half.jpg: truncated JPEG file*");
      g_test_trap_assert_stderr ("*/in/no-eoi.jpg: truncated JPEG file*");
    }
  /* The library writes nothing itself: its lines go to the callback. */
  g_test_trap_subprocess ("/strips/truncated/subprocess/3", 0, G_TEST_SUBPROCESS_DEFAULT);
  g_test_trap_assert_passed ();
  g_test_trap_assert_stderr ("");
  g_test_trap_assert_stdout ("");
}

/* The runner says its lines through a callback: here, stderr. */
static void
print_line (const char *line, gpointer user_data)
{
  (void) user_data;
  g_printerr ("%s\n", line);
}

/* Keeps the predictions table given to the callback. */
static void
keep_table (const char *table, gpointer user_data)
{
  g_string_append (user_data, table);
}

/* A classifier's table with no file named goes to the predictions
 * callback, and without one nowhere: the library never writes stdout. */
static void
classify_quietly (const char *dir)
{
  g_autofree char *image = g_build_filename (dir, "good.png", NULL);
  g_autoptr (StTensor) t = pattern (3, 20, 30, 1);
  save_ok (t, image, 8);
  g_autoptr (StPipeline) p = load_pipeline ("resize width=1 height=1");
  g_autoptr (GString) table = g_string_new (NULL);
  const char *inputs[] = { image, NULL };
  for (int with_callback = 0; with_callback < 2; with_callback++)
    {
      StRunOptions opt = { .jobs = 1, .quiet = TRUE, .top_k = 1, .user_data = table,
                           .predictions = with_callback ? keep_table : NULL };
      StRunSummary summary;
      g_autoptr (GError) error = NULL;
      g_assert_true (st_run_images (p, inputs, &opt, &summary, &error));
      g_assert_cmpuint (summary.written, ==, 1);
    }
  g_autofree char *head = g_strdup_printf ("path,label,probability\n%s,", image);
  g_assert_true (g_str_has_prefix (table->str, head));
}

/* The child of test_strips_truncated: runs a folder of two cut JPEGs in
 * strips, one image at a time (jobs 1: the decoder on the caller's thread)
 * or with two threads to the image (jobs 2: on its own). */
static void
strips_truncated_child (gconstpointer data)
{
  if (!g_test_subprocess ())
    return;
  /* 1, 2: as described; 3: as 1 but with no message callback. */
  const int mode = GPOINTER_TO_INT (data);
  const int jobs = mode == 2 ? 2 : 1;
  g_autofree char *dir = tu_make_tmpdir ("strata-strips-XXXXXX");
  g_autofree char *in_dir = g_build_filename (dir, "in", NULL);
  g_autofree char *out_dir = g_build_filename (dir, "out", NULL);
  g_assert_cmpint (g_mkdir (in_dir, 0700), ==, 0);
  g_autoptr (StTensor) t = pattern (3, 150, 120, 2);
  g_autofree char *good = g_build_filename (in_dir, "good.jpg", NULL);
  save_ok (t, good, 8);
  g_autofree char *bytes = NULL;
  gsize len;
  g_assert_true (g_file_get_contents (good, &bytes, &len, NULL));
  g_autofree char *half = g_build_filename (in_dir, "half.jpg", NULL);
  g_autofree char *no_eoi = g_build_filename (in_dir, "no-eoi.jpg", NULL);
  g_assert_true (g_file_set_contents (half, bytes, len / 2, NULL));
  g_assert_true (g_file_set_contents (no_eoi, bytes, len - 2, NULL));
  g_unlink (good);

  g_autoptr (StPipeline) p = load_pipeline ("sharpen.ini");
  StRunOptions opt = {
    .output = out_dir, .jpeg_quality = 90, .jobs = jobs == 1 ? 1 : 4, .quiet = TRUE,
    .strip_rows = 16, .strip_min_pixels = 1, .message = mode == 3 ? NULL : print_line,
  };
  const char *inputs[] = { half, no_eoi, NULL };
  StRunSummary summary;
  g_autoptr (GError) error = NULL;
  g_assert_true (st_run_images (p, inputs, &opt, &summary, &error));
  g_assert_no_error (error);
  g_assert_cmpuint (summary.failed, ==, 2);
  g_assert_cmpuint (summary.written, ==, 0);
  g_assert_cmpint (count_entries (out_dir), ==, 0);
  if (mode == 3)
    classify_quietly (dir);
  tu_remove_tree (dir);
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  reg = st_registry_new (NULL);
  g_test_add_func ("/image/stream/round-trip", test_reader_writer_round_trip);
  g_test_add_func ("/image/stream/abort-and-short", test_writer_abort_and_short);
  g_test_add_func ("/image/stream/exact-levels", test_exact_levels);
  g_test_add_func ("/strips/match-whole", test_strips_match_whole);
  g_test_add_func ("/strips/alpha-and-depth", test_strips_alpha_and_depth);
  g_test_add_func ("/strips/unstreamable-inputs", test_strips_unstreamable_inputs);
  g_test_add_func ("/strips/by-default", test_strips_by_default);
  g_test_add_func ("/strips/truncated", test_strips_truncated);
  g_test_add_data_func ("/strips/truncated/subprocess/1", GINT_TO_POINTER (1),
                        strips_truncated_child);
  g_test_add_data_func ("/strips/truncated/subprocess/3", GINT_TO_POINTER (3),
                        strips_truncated_child);
  g_test_add_data_func ("/strips/truncated/subprocess/2", GINT_TO_POINTER (2),
                        strips_truncated_child);
  int rc = g_test_run ();
  st_registry_free (reg);
  return rc;
}
