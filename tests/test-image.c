/* strata — tests of PNG and JPEG reading and writing (core/image.c).
 *
 * Every test gets a fresh temporary folder (setup/teardown below) and makes
 * its own fixtures there: with st_image_save for round trips, and with
 * libpng/libjpeg directly for layouts our writer never produces (palettes,
 * low bit depths, interlacing, CMYK, EXIF) and for damaged files. */
#include "image.h"
#include "testutil.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/stat.h>

#include <glib/gstdio.h>
#include <jpeglib.h>
#include <png.h>
#include <gif_lib.h>
#include <tiffio.h>
#include <webp/encode.h>
#include <webp/demux.h>
#include <libexif/exif-data.h>

#include "config.h"
#ifdef ST_HAVE_LIBHEIF
#include <libheif/heif.h>
#endif

static void
temp_dir_setup (TuTempDir *fx, G_GNUC_UNUSED gconstpointer data)
{
  fx->dir = tu_make_tmpdir ("strata-test-image-XXXXXX");
}

static int
count_entries (const char *path)
{
  GDir *dir = g_dir_open (path, 0, NULL);
  g_assert_nonnull (dir);
  int n = 0;
  while (g_dir_read_name (dir))
    n++;
  g_dir_close (dir);
  return n;
}

static guint8 *
read_bytes (const char *path, gsize *size)
{
  char *data = NULL;
  GError *error = NULL;
  g_assert_true (g_file_get_contents (path, &data, size, &error));
  g_assert_no_error (error);
  return (guint8 *) data;
}

static inline float
at (const StTensor *t, int c, int y, int x)
{
  return t->data[((gsize) c * t->shape.h + y) * t->shape.w + x];
}

static inline void
set_at (StTensor *t, int c, int y, int x, float v)
{
  t->data[((gsize) c * t->shape.h + y) * t->shape.w + x] = v;
}

/* Values k / levels for random k, so a lossless round trip is exact. */
static StTensor *
random_levels (int channels, int height, int width, int levels, guint32 seed)
{
  StTensor *t = st_tensor_new0 (1, channels, height, width);
  GRand *rand = g_rand_new_with_seed (seed);
  for (gsize i = 0; i < st_tensor_numel (t); i++)
    t->data[i] = (float) g_rand_int_range (rand, 0, levels + 1) / (float) levels;
  g_rand_free (rand);
  return t;
}

/* A smooth picture: what JPEG is made for. */
static StTensor *
gradient (int channels, int height, int width)
{
  StTensor *t = st_tensor_new0 (1, channels, height, width);
  for (int c = 0; c < channels; c++)
    for (int y = 0; y < height; y++)
      for (int x = 0; x < width; x++)
        {
          float v = c == 0 ? (float) x / (width - 1)
                  : c == 1 ? (float) y / (height - 1)
                  : c == 2 ? (float) (x + y) / (width + height - 2)
                  : 0.5f;
          set_at (t, c, y, x, v);
        }
  return t;
}

static void
assert_tensors_equal (const StTensor *a, const StTensor *b)
{
  g_assert_true (st_shape_equal (a->shape, b->shape));
  for (gsize i = 0; i < st_tensor_numel (a); i++)
    if (a->data[i] != b->data[i])
      g_error ("element %" G_GSIZE_FORMAT " differs: %.9g != %.9g", i, a->data[i], b->data[i]);
}

static double
mean_abs_error (const StTensor *a, const StTensor *b)
{
  g_assert_true (st_shape_equal (a->shape, b->shape));
  double sum = 0;
  for (gsize i = 0; i < st_tensor_numel (a); i++)
    sum += fabs (a->data[i] - b->data[i]);
  return sum / st_tensor_numel (a);
}

static StTensor *
load_ok (const char *path, StImageInfo *info)
{
  GError *error = NULL;
  StTensor *t = st_image_load (path, ST_DEFAULT_MAX_PIXELS, info, &error);
  g_assert_no_error (error);
  g_assert_nonnull (t);
  return t;
}

static void
save_ok (const StTensor *t, const char *path, StImageFormat format, int bit_depth,
         int quality)
{
  GError *error = NULL;
  g_assert_true (st_image_save (t, path, format, bit_depth, quality, &error));
  g_assert_no_error (error);
}

/* Loading fails with a message that starts with the path and contains
 * `reason`. */
static void
assert_load_fails (const char *path, guint64 max_pixels, int code, const char *reason)
{
  GError *error = NULL;
  StImageInfo info = { 0 };
  StTensor *t = st_image_load (path, max_pixels, &info, &error);
  g_assert_null (t);
  g_assert_error (error, ST_ERROR, code);
  g_test_message ("%s", error->message);
  g_assert_true (g_str_has_prefix (error->message, path));
  g_assert_true (g_str_has_prefix (error->message + strlen (path), ": "));
  if (reason && !strstr (error->message, reason))
    g_error ("message \"%s\" lacks \"%s\"", error->message, reason);
  g_error_free (error);
}

/* ---- PNG fixtures written with libpng ---------------------------------- */

/* rows: height rows of packed samples as libpng takes them (one byte per
 * pixel for depths below 8, which png_set_packing packs). */
static void
write_png_raw (const char *path, int width, int height, int depth, int colour,
               gboolean interlaced, const png_color *palette, int n_palette,
               const guint8 *alpha, int n_alpha, const png_color_16 *trans_colour,
               guint8 **rows)
{
  FILE *fp = fopen (path, "wb");
  g_assert_nonnull (fp);
  png_structp png = png_create_write_struct (PNG_LIBPNG_VER_STRING, NULL, NULL, NULL);
  png_infop info = png_create_info_struct (png);
  g_assert_true (png && info);
  if (setjmp (png_jmpbuf (png)))
    g_error ("libpng failed writing a fixture");
  png_init_io (png, fp);
  png_set_IHDR (png, info, width, height, depth, colour,
                interlaced ? PNG_INTERLACE_ADAM7 : PNG_INTERLACE_NONE,
                PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
  if (palette)
    png_set_PLTE (png, info, palette, n_palette);
  if (alpha || trans_colour)
    png_set_tRNS (png, info, alpha, n_alpha, trans_colour);
  png_write_info (png, info);
  if (depth < 8)
    png_set_packing (png);
  if (interlaced)
    png_set_interlace_handling (png);
  png_write_image (png, rows);
  png_write_end (png, NULL);
  png_destroy_write_struct (&png, &info);
  g_assert_cmpint (fclose (fp), ==, 0);
}

static guint8 **
alloc_rows (int height, gsize rowbytes)
{
  guint8 **rows = g_new (guint8 *, height);
  for (int y = 0; y < height; y++)
    rows[y] = g_malloc0 (rowbytes);
  return rows;
}

static void
free_rows (guint8 **rows, int height)
{
  for (int y = 0; y < height; y++)
    g_free (rows[y]);
  g_free (rows);
}

static void
append_chunk (GByteArray *out, const char *type, const guint8 *data, guint32 length)
{
  tu_put_be32 (out, length);
  guint8 *body = g_malloc (length + 4);
  memcpy (body, type, 4);
  if (length)
    memcpy (body + 4, data, length);
  g_byte_array_append (out, body, length + 4);
  tu_put_be32 (out, tu_crc32 (body, length + 4));
  g_free (body);
}

static guint32
get_be32 (const guint8 *p)
{
  return (guint32) p[0] << 24 | (guint32) p[1] << 16 | (guint32) p[2] << 8 | p[3];
}

static const guint8 png_sig[8] = { 0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n' };

/* ---- JPEG fixtures written with libjpeg -------------------------------- */

typedef struct {
  int components;              /* 1, 3 or 4 */
  J_COLOR_SPACE in_space;
  J_COLOR_SPACE jpeg_space;    /* JCS_UNKNOWN: libjpeg's default for in_space */
  gboolean no_adobe_marker;
  int orientation;             /* 0: no EXIF block */
  gboolean big_endian_exif;
  gboolean progressive;
  int quality;
} JpegFixture;

/* A minimal EXIF block: TIFF header, IFD0 with one Orientation entry. */
static gsize
make_exif_orientation (guint8 *out, int orientation, gboolean big_endian)
{
  guint8 le[] = {
    'E', 'x', 'i', 'f', 0, 0,
    'I', 'I', 42, 0, 8, 0, 0, 0,          /* TIFF header, IFD0 at 8 */
    1, 0,                                 /* one entry */
    0x12, 0x01, 3, 0, 1, 0, 0, 0,         /* Orientation, SHORT, count 1 */
    orientation, 0, 0, 0,
    0, 0, 0, 0,                           /* no next IFD */
  };
  guint8 be[] = {
    'E', 'x', 'i', 'f', 0, 0,
    'M', 'M', 0, 42, 0, 0, 0, 8,
    0, 1,
    0x01, 0x12, 0, 3, 0, 0, 0, 1,
    0, orientation, 0, 0,
    0, 0, 0, 0,
  };
  G_STATIC_ASSERT (sizeof le == sizeof be);
  memcpy (out, big_endian ? be : le, sizeof le);
  return sizeof le;
}

/* pixels: interleaved rows of width * components bytes. */
static void
write_jpeg_raw (const char *path, int width, int height, const guint8 *pixels,
                const JpegFixture *f)
{
  struct jpeg_compress_struct cinfo;
  struct jpeg_error_mgr jerr;
  FILE *fp = fopen (path, "wb");
  g_assert_nonnull (fp);
  cinfo.err = jpeg_std_error (&jerr);
  jpeg_create_compress (&cinfo);
  jpeg_stdio_dest (&cinfo, fp);
  cinfo.image_width = width;
  cinfo.image_height = height;
  cinfo.input_components = f->components;
  cinfo.in_color_space = f->in_space;
  jpeg_set_defaults (&cinfo);
  if (f->jpeg_space != JCS_UNKNOWN)
    jpeg_set_colorspace (&cinfo, f->jpeg_space);
  if (f->no_adobe_marker)
    cinfo.write_Adobe_marker = FALSE;
  jpeg_set_quality (&cinfo, f->quality ? f->quality : 95, TRUE);
  if (f->progressive)
    jpeg_simple_progression (&cinfo);
  jpeg_start_compress (&cinfo, TRUE);
  if (f->orientation)
    {
      guint8 exif[64];
      gsize n = make_exif_orientation (exif, f->orientation, f->big_endian_exif);
      jpeg_write_marker (&cinfo, JPEG_APP0 + 1, exif, n);
    }
  while (cinfo.next_scanline < cinfo.image_height)
    {
      JSAMPROW row = (JSAMPROW) pixels + (gsize) cinfo.next_scanline * width * f->components;
      jpeg_write_scanlines (&cinfo, &row, 1);
    }
  jpeg_finish_compress (&cinfo);
  jpeg_destroy_compress (&cinfo);
  g_assert_cmpint (fclose (fp), ==, 0);
}

/* ---- Format names ------------------------------------------------------ */

static void
test_format_from_name (void)
{
  g_assert_cmpint (st_image_format_from_name ("a.png"), ==, ST_FORMAT_PNG);
  g_assert_cmpint (st_image_format_from_name ("dir/A.PNG"), ==, ST_FORMAT_PNG);
  g_assert_cmpint (st_image_format_from_name ("a.jpg"), ==, ST_FORMAT_JPEG);
  g_assert_cmpint (st_image_format_from_name ("a.JpEg"), ==, ST_FORMAT_JPEG);
  g_assert_cmpint (st_image_format_from_name ("a.png.txt"), ==, ST_FORMAT_UNKNOWN);
  g_assert_cmpint (st_image_format_from_name ("png"), ==, ST_FORMAT_UNKNOWN);
  g_assert_cmpint (st_image_format_from_name ("x.png/file"), ==, ST_FORMAT_UNKNOWN);
  g_assert_cmpint (st_image_format_from_name ("a.jpgx"), ==, ST_FORMAT_UNKNOWN);
}

/* The messages that list the formats are built from image.c's format
 * table: checked whole, so that a table entry cannot garble them. */
static void
test_format_table_messages (TuTempDir *fx, G_GNUC_UNUSED gconstpointer data)
{
  static const struct {
    const char *name;
    const char *bytes;
    gsize size;
    const char *reason;
  } cases[] = {
    { "text.png", "BM6\0\0\0", 6,
      "not a PNG, JPEG, TIFF, WebP, PNM, GIF or HEIF image (unrecognised file signature)" },
    { "cut.jpg", "\x89PN", 3, "truncated PNG file" },
    { "cut.png", "\xff\xd8", 2, "truncated JPEG file" },
    { "one.png", "\xff", 1, "truncated JPEG file" },
  };
  for (gsize i = 0; i < G_N_ELEMENTS (cases); i++)
    {
      g_autofree char *path = tu_temp_path (fx, cases[i].name);
      tu_write_bytes (path, cases[i].bytes, cases[i].size);
      g_autoptr (GError) error = NULL;
      g_assert_null (st_image_load (path, 0, NULL, &error));
      g_assert_error (error, ST_ERROR, ST_ERROR_IMAGE);
      g_autofree char *want = g_strdup_printf ("%s: %s", path, cases[i].reason);
      g_assert_cmpstr (error->message, ==, want);
    }

  g_autofree char *out = tu_temp_path (fx, "out.bmp");
  g_autofree char *want = g_strdup_printf (
      "%s: unknown image format (name the file .png, .jpg, .jpeg, .tif, .tiff, .webp, .pgm, .ppm, "
      ".pnm, .pbm, .pam, .gif, .heic, .heif, .avif or .hif)", out);
  g_autoptr (StTensor) image = st_tensor_new0 (1, 3, 2, 2);
  g_autoptr (GError) save_error = NULL;
  g_assert_false (st_image_save (image, out, ST_FORMAT_UNKNOWN, 8, 90, &save_error));
  g_assert_cmpstr (save_error->message, ==, want);
  g_autoptr (GError) open_error = NULL;
  g_assert_null (st_image_writer_open (out, ST_FORMAT_UNKNOWN, 2, 2, 3, 8, 90, &open_error));
  g_assert_cmpstr (open_error->message, ==, want);
  g_assert_false (g_file_test (out, G_FILE_TEST_EXISTS));
}

/* ---- PNG round trips --------------------------------------------------- */

static void
png_round_trip (TuTempDir *fx, int bit_depth)
{
  const int levels = bit_depth == 16 ? 65535 : 255;
  for (int channels = 1; channels <= 4; channels++)
    {
      g_autofree char *name = g_strdup_printf ("rt-%d-%d.png", channels, bit_depth);
      g_autofree char *path = tu_temp_path (fx, name);
      g_autoptr (StTensor) src = random_levels (channels, 7, 13, levels, channels);
      /* The extremes must survive too. */
      src->data[0] = 0.0f;
      src->data[1] = 1.0f;
      save_ok (src, path, ST_FORMAT_PNG, bit_depth, 0);
      StImageInfo info;
      g_autoptr (StTensor) back = load_ok (path, &info);
      assert_tensors_equal (src, back);
      g_assert_cmpint (info.format, ==, ST_FORMAT_PNG);
      g_assert_cmpint (info.bit_depth, ==, bit_depth);
      g_assert_cmpint (info.has_alpha, ==, channels == 2 || channels == 4);
    }
  g_assert_cmpint (count_entries (fx->dir), ==, 4);
}

static void
test_png_round_trip_8 (TuTempDir *fx, G_GNUC_UNUSED gconstpointer data)
{
  png_round_trip (fx, 8);
}

static void
test_png_round_trip_16 (TuTempDir *fx, G_GNUC_UNUSED gconstpointer data)
{
  png_round_trip (fx, 16);
}

/* Our writer's 16-bit samples, read back by libpng itself: checks the byte
 * order independently of our reader. */
static void
test_png_16_bit_samples (TuTempDir *fx, G_GNUC_UNUSED gconstpointer data)
{
  g_autofree char *path = tu_temp_path (fx, "samples16.png");
  g_autoptr (StTensor) t = st_tensor_new0 (1, 3, 1, 2);
  const guint16 want[6] = { 0x1234, 0xfedc, 0x0001, 0x8000, 0xffff, 0x0000 };
  for (int c = 0; c < 3; c++)
    for (int x = 0; x < 2; x++)
      set_at (t, c, 0, x, want[x * 3 + c] / 65535.0f);
  save_ok (t, path, ST_FORMAT_PNG, 16, 0);

  FILE *fp = fopen (path, "rb");
  png_structp png = png_create_read_struct (PNG_LIBPNG_VER_STRING, NULL, NULL, NULL);
  png_infop info = png_create_info_struct (png);
  if (setjmp (png_jmpbuf (png)))
    g_error ("libpng could not read our file");
  png_init_io (png, fp);
  png_read_png (png, info, PNG_TRANSFORM_IDENTITY, NULL);
  g_assert_cmpint (png_get_bit_depth (png, info), ==, 16);
  g_assert_cmpint (png_get_color_type (png, info), ==, PNG_COLOR_TYPE_RGB);
  png_bytepp rows = png_get_rows (png, info);
  for (int i = 0; i < 6; i++)
    g_assert_cmpuint ((rows[0][2 * i] << 8) | rows[0][2 * i + 1], ==, want[i]);
  png_destroy_read_struct (&png, &info, NULL);
  fclose (fp);
}

static void
test_png_palette (TuTempDir *fx, G_GNUC_UNUSED gconstpointer data)
{
  const png_color palette[4] = { { 255, 0, 0 }, { 0, 255, 0 }, { 0, 0, 255 }, { 10, 20, 30 } };
  const guint8 alpha[2] = { 0, 128 };     /* entries 2 and 3 stay opaque */
  const int width = 5, height = 3;

  for (int with_trns = 0; with_trns <= 1; with_trns++)
    for (int depth = 2; depth <= 8; depth += 6)
      {
        g_autofree char *name = g_strdup_printf ("palette-%d-%d.png", depth, with_trns);
        g_autofree char *path = tu_temp_path (fx, name);
        guint8 **rows = alloc_rows (height, width);
        for (int y = 0; y < height; y++)
          for (int x = 0; x < width; x++)
            rows[y][x] = (x + y) % 4;
        write_png_raw (path, width, height, depth, PNG_COLOR_TYPE_PALETTE, FALSE,
                       palette, 4, with_trns ? alpha : NULL, with_trns ? 2 : 0, NULL, rows);
        free_rows (rows, height);

        StImageInfo info;
        g_autoptr (StTensor) t = load_ok (path, &info);
        const int channels = with_trns ? 4 : 3;
        g_assert_cmpint (t->shape.c, ==, channels);
        g_assert_cmpint (t->shape.h, ==, height);
        g_assert_cmpint (t->shape.w, ==, width);
        g_assert_cmpint (info.bit_depth, ==, 8);
        g_assert_cmpint (info.has_alpha, ==, with_trns);
        for (int y = 0; y < height; y++)
          for (int x = 0; x < width; x++)
            {
              const int i = (x + y) % 4;
              g_assert_cmpfloat (at (t, 0, y, x), ==, palette[i].red / 255.0f);
              g_assert_cmpfloat (at (t, 1, y, x), ==, palette[i].green / 255.0f);
              g_assert_cmpfloat (at (t, 2, y, x), ==, palette[i].blue / 255.0f);
              if (with_trns)
                g_assert_cmpfloat (at (t, 3, y, x), ==, (i < 2 ? alpha[i] : 255) / 255.0f);
            }
      }
}

static void
test_png_gray_low_depth (TuTempDir *fx, G_GNUC_UNUSED gconstpointer data)
{
  const int width = 9, height = 2;
  for (int depth = 1; depth <= 4; depth *= 2)
    {
      const int max = (1 << depth) - 1;
      g_autofree char *name = g_strdup_printf ("gray%d.png", depth);
      g_autofree char *path = tu_temp_path (fx, name);
      guint8 **rows = alloc_rows (height, width);
      for (int y = 0; y < height; y++)
        for (int x = 0; x < width; x++)
          rows[y][x] = (x + y) % (max + 1);
      write_png_raw (path, width, height, depth, PNG_COLOR_TYPE_GRAY, FALSE,
                     NULL, 0, NULL, 0, NULL, rows);
      free_rows (rows, height);

      StImageInfo info;
      g_autoptr (StTensor) t = load_ok (path, &info);
      g_assert_cmpint (t->shape.c, ==, 1);
      g_assert_cmpint (info.bit_depth, ==, 8);
      g_assert_false (info.has_alpha);
      for (int y = 0; y < height; y++)
        for (int x = 0; x < width; x++)
          g_assert_cmpfloat (at (t, 0, y, x), ==,
                             (float) ((x + y) % (max + 1) * (255 / max)) / 255.0f);
    }
}

/* A gray or RGB PNG's tRNS names one transparent colour. */
static void
test_png_trns_colour (TuTempDir *fx, G_GNUC_UNUSED gconstpointer data)
{
  g_autofree char *path = tu_temp_path (fx, "gray-trns.png");
  const int width = 4, height = 2;
  guint8 **rows = alloc_rows (height, width);
  for (int y = 0; y < height; y++)
    for (int x = 0; x < width; x++)
      rows[y][x] = x == 1 ? 7 : 200;
  png_color_16 transparent = { .gray = 7 };
  write_png_raw (path, width, height, 8, PNG_COLOR_TYPE_GRAY, FALSE,
                 NULL, 0, NULL, 0, &transparent, rows);
  free_rows (rows, height);

  StImageInfo info;
  g_autoptr (StTensor) t = load_ok (path, &info);
  g_assert_cmpint (t->shape.c, ==, 2);
  g_assert_true (info.has_alpha);
  for (int y = 0; y < height; y++)
    for (int x = 0; x < width; x++)
      {
        g_assert_cmpfloat (at (t, 0, y, x), ==, (x == 1 ? 7 : 200) / 255.0f);
        g_assert_cmpfloat (at (t, 1, y, x), ==, x == 1 ? 0.0f : 1.0f);
      }
}

static void
test_png_interlaced (TuTempDir *fx, G_GNUC_UNUSED gconstpointer data)
{
  /* Sizes that are not multiples of the 8x8 Adam7 block. */
  const int width = 13, height = 11;

  g_autofree char *rgb_path = tu_temp_path (fx, "adam7-rgb8.png");
  guint8 **rows = alloc_rows (height, width * 3);
  for (int y = 0; y < height; y++)
    for (int x = 0; x < width * 3; x++)
      rows[y][x] = (guint8) (y * 31 + x * 7);
  write_png_raw (rgb_path, width, height, 8, PNG_COLOR_TYPE_RGB, TRUE,
                 NULL, 0, NULL, 0, NULL, rows);
  g_autoptr (StTensor) rgb = load_ok (rgb_path, NULL);
  g_assert_cmpint (rgb->shape.c, ==, 3);
  for (int y = 0; y < height; y++)
    for (int x = 0; x < width; x++)
      for (int c = 0; c < 3; c++)
        g_assert_cmpfloat (at (rgb, c, y, x), ==, rows[y][x * 3 + c] / 255.0f);
  free_rows (rows, height);

  g_autofree char *ga_path = tu_temp_path (fx, "adam7-ga16.png");
  rows = alloc_rows (height, width * 4);
  for (int y = 0; y < height; y++)
    for (int x = 0; x < width; x++)
      {
        guint16 gray = (guint16) (y * 4099 + x * 257 + 1), alpha = (guint16) (65535 - x * 999);
        guint8 *p = rows[y] + 4 * x;
        p[0] = gray >> 8, p[1] = gray & 0xff, p[2] = alpha >> 8, p[3] = alpha & 0xff;
      }
  write_png_raw (ga_path, width, height, 16, PNG_COLOR_TYPE_GRAY_ALPHA, TRUE,
                 NULL, 0, NULL, 0, NULL, rows);
  StImageInfo info;
  g_autoptr (StTensor) ga = load_ok (ga_path, &info);
  g_assert_cmpint (ga->shape.c, ==, 2);
  g_assert_cmpint (info.bit_depth, ==, 16);
  g_assert_true (info.has_alpha);
  for (int y = 0; y < height; y++)
    for (int x = 0; x < width; x++)
      {
        const guint8 *p = rows[y] + 4 * x;
        g_assert_cmpfloat (at (ga, 0, y, x), ==, ((p[0] << 8) | p[1]) / 65535.0f);
        g_assert_cmpfloat (at (ga, 1, y, x), ==, ((p[2] << 8) | p[3]) / 65535.0f);
      }
  free_rows (rows, height);
}

/* The format comes from the contents, not the name. */
static void
test_format_by_signature (TuTempDir *fx, G_GNUC_UNUSED gconstpointer data)
{
  g_autofree char *png_path = tu_temp_path (fx, "really-a-png.jpg");
  g_autofree char *jpeg_path = tu_temp_path (fx, "really-a-jpeg.png");
  g_autoptr (StTensor) src = random_levels (3, 8, 8, 255, 1);
  save_ok (src, png_path, ST_FORMAT_PNG, 8, 0);
  save_ok (src, jpeg_path, ST_FORMAT_JPEG, 8, 90);

  StImageInfo info;
  g_autoptr (StTensor) a = load_ok (png_path, &info);
  g_assert_cmpint (info.format, ==, ST_FORMAT_PNG);
  assert_tensors_equal (src, a);
  g_autoptr (StTensor) b = load_ok (jpeg_path, &info);
  g_assert_cmpint (b->shape.c, ==, 3);
  g_assert_cmpint (info.format, ==, ST_FORMAT_JPEG);
  g_assert_cmpint (info.bit_depth, ==, 8);
  g_assert_false (info.has_alpha);
}

/* ---- JPEG round trips -------------------------------------------------- */

static void
test_jpeg_round_trip (TuTempDir *fx, G_GNUC_UNUSED gconstpointer data)
{
  /* 37 x 23: not a whole number of blocks, pixels or vectors. */
  for (int channels = 1; channels <= 3; channels += 2)
    for (int odd = 0; odd <= 1; odd++)
      {
        g_autofree char *name = g_strdup_printf ("gradient-%d-%d.jpg", channels, odd);
        g_autofree char *path = tu_temp_path (fx, name);
        g_autoptr (StTensor) src = gradient (channels, odd ? 23 : 48, odd ? 37 : 64);
        save_ok (src, path, ST_FORMAT_JPEG, 8, 95);
        StImageInfo info;
        g_autoptr (StTensor) back = load_ok (path, &info);
        g_assert_cmpint (info.format, ==, ST_FORMAT_JPEG);
        g_assert_cmpint (info.bit_depth, ==, 8);
        g_assert_false (info.has_alpha);
        double err = mean_abs_error (src, back);
        g_test_message ("%d channels, %dx%d: mean absolute error %.4f", channels,
                        src->shape.w, src->shape.h, err);
        g_assert_cmpfloat (err, <, 0.02);
        /* Every value is a whole number of 255ths. */
        for (gsize i = 0; i < st_tensor_numel (back); i++)
          g_assert_cmpfloat (back->data[i], ==, (float) lrintf (back->data[i] * 255) / 255.0f);
      }
}

/* JPEG has no alpha: it is dropped, and gray + alpha becomes gray. */
static void
test_jpeg_drops_alpha (TuTempDir *fx, G_GNUC_UNUSED gconstpointer data)
{
  for (int channels = 2; channels <= 4; channels += 2)
    {
      g_autofree char *name = g_strdup_printf ("alpha-%d.jpg", channels);
      g_autofree char *path = tu_temp_path (fx, name);
      g_autoptr (StTensor) src = gradient (channels, 32, 40);
      save_ok (src, path, ST_FORMAT_JPEG, 16, 95);   /* 16 is ignored for JPEG */
      g_autoptr (StTensor) back = load_ok (path, NULL);
      g_assert_cmpint (back->shape.c, ==, channels - 1);
      g_autoptr (StTensor) opaque = st_tensor_new0 (1, channels - 1, 32, 40);
      memcpy (opaque->data, src->data, st_tensor_numel (opaque) * sizeof (float));
      g_assert_cmpfloat (mean_abs_error (opaque, back), <, 0.02);
    }
}

static void
test_jpeg_progressive (TuTempDir *fx, G_GNUC_UNUSED gconstpointer data)
{
  g_autofree char *path = tu_temp_path (fx, "progressive.jpg");
  const int width = 40, height = 24;
  guint8 *pixels = g_malloc (width * height * 3);
  for (int i = 0; i < width * height * 3; i++)
    pixels[i] = (guint8) (i / 3 % width * 6);
  write_jpeg_raw (path, width, height, pixels,
                  &(JpegFixture) { 3, JCS_RGB, .progressive = TRUE });
  g_autoptr (StTensor) t = load_ok (path, NULL);
  g_assert_cmpint (t->shape.c, ==, 3);
  g_assert_cmpint (t->shape.w, ==, width);
  for (int x = 0; x < width; x++)
    g_assert_cmpfloat (fabsf (at (t, 1, 10, x) - x * 6 / 255.0f), <, 0.03);
  g_free (pixels);
}

/* A progressive JPEG whose last scan is repeated 600 times (each a valid
 * refinement pass to libjpeg, and a full pass over the image) is refused,
 * not decoded for as long as the scans take. */
static void
test_jpeg_too_many_scans (TuTempDir *fx, G_GNUC_UNUSED gconstpointer data)
{
  g_autofree char *path = tu_temp_path (fx, "scans.jpg");
  const int width = 16, height = 16;
  guint8 pixels[16 * 16 * 3];
  for (gsize i = 0; i < sizeof pixels; i++)
    pixels[i] = (guint8) (i * 7);
  write_jpeg_raw (path, width, height, pixels,
                  &(JpegFixture) { 3, JCS_RGB, .progressive = TRUE });
  g_autofree guint8 *bytes = NULL;
  gsize size = 0;
  g_assert_true (g_file_get_contents (path, (char **) &bytes, &size, NULL));
  /* The last scan: from the last SOS marker to the EOI marker. */
  gsize sos = 0;
  for (gsize i = 0; i + 1 < size; i++)
    if (bytes[i] == 0xff && bytes[i + 1] == 0xda)
      sos = i;
  g_assert_cmpuint (sos, >, 0);
  g_assert_true (bytes[size - 2] == 0xff && bytes[size - 1] == 0xd9);
  GByteArray *out = g_byte_array_new ();
  g_byte_array_append (out, bytes, size - 2);
  for (int k = 0; k < 600; k++)
    g_byte_array_append (out, bytes + sos, size - 2 - sos);
  g_byte_array_append (out, bytes + size - 2, 2);
  tu_write_bytes (path, out->data, out->len);
  g_byte_array_unref (out);
  g_autoptr (GError) error = NULL;
  g_assert_null (st_image_load (path, 0, NULL, &error));
  g_assert_error (error, ST_ERROR, ST_ERROR_IMAGE);
  g_assert_nonnull (strstr (error->message, "more than 500 scans"));
  g_assert_true (g_str_has_prefix (error->message, path));
}

/* Four quadrants of distinct colours; after applying the orientation the
 * output corners must show the right source corners. */
enum { TL, TR, BL, BR };

static const guint8 corner_colours[4][3] = {
  [TL] = { 255, 0, 0 }, [TR] = { 0, 255, 0 }, [BL] = { 0, 0, 255 }, [BR] = { 255, 255, 255 },
};

/* For each orientation, the source corner seen at each output corner
 * (TL, TR, BL, BR), from the EXIF definitions of the 0th row and column. */
static const int orientation_corners[9][4] = {
  [1] = { TL, TR, BL, BR },   /* top-left */
  [2] = { TR, TL, BR, BL },   /* top-right: mirrored */
  [3] = { BR, BL, TR, TL },   /* bottom-right: rotated 180 */
  [4] = { BL, BR, TL, TR },   /* bottom-left: flipped */
  [5] = { TL, BL, TR, BR },   /* left-top: transposed */
  [6] = { BL, TL, BR, TR },   /* right-top: turn 90 clockwise */
  [7] = { BR, TR, BL, TL },   /* right-bottom: transversed */
  [8] = { TR, BR, TL, BL },   /* left-bottom: turn 90 counter-clockwise */
};

static void
check_corner (const StTensor *t, int y, int x, int source_corner, int orientation)
{
  for (int c = 0; c < 3; c++)
    if (fabsf (at (t, c, y, x) - corner_colours[source_corner][c] / 255.0f) > 0.05f)
      g_error ("orientation %d: pixel (%d, %d) channel %d is %.3f, expected source corner %d",
               orientation, x, y, c, at (t, c, y, x), source_corner);
}

static void
test_jpeg_exif_orientation (TuTempDir *fx, G_GNUC_UNUSED gconstpointer data)
{
  const int width = 64, height = 32;
  guint8 *pixels = g_malloc (width * height * 3);
  for (int y = 0; y < height; y++)
    for (int x = 0; x < width; x++)
      {
        int corner = (y < height / 2 ? 0 : 2) + (x < width / 2 ? 0 : 1);
        memcpy (pixels + (y * width + x) * 3, corner_colours[corner], 3);
      }

  for (int orientation = 1; orientation <= 8; orientation++)
    for (int big_endian = 0; big_endian <= 1; big_endian++)
      {
        g_autofree char *name = g_strdup_printf ("orient-%d-%d.jpg", orientation, big_endian);
        g_autofree char *path = tu_temp_path (fx, name);
        write_jpeg_raw (path, width, height, pixels,
                        &(JpegFixture) { 3, JCS_RGB, .orientation = orientation,
                                         .big_endian_exif = big_endian, .quality = 100 });
        g_autoptr (StTensor) t = load_ok (path, NULL);
        const gboolean swapped = orientation >= 5;
        g_assert_cmpint (t->shape.c, ==, 3);
        g_assert_cmpint (t->shape.w, ==, swapped ? height : width);
        g_assert_cmpint (t->shape.h, ==, swapped ? width : height);
        /* A few pixels in from each corner, away from chroma bleeding. */
        const int w = t->shape.w, h = t->shape.h, m = 3;
        check_corner (t, m, m, orientation_corners[orientation][TL], orientation);
        check_corner (t, m, w - 1 - m, orientation_corners[orientation][TR], orientation);
        check_corner (t, h - 1 - m, m, orientation_corners[orientation][BL], orientation);
        check_corner (t, h - 1 - m, w - 1 - m, orientation_corners[orientation][BR], orientation);
      }

  /* An out-of-range orientation is ignored. */
  g_autofree char *path = tu_temp_path (fx, "orient-9.jpg");
  write_jpeg_raw (path, width, height, pixels,
                  &(JpegFixture) { 3, JCS_RGB, .orientation = 9, .quality = 100 });
  g_autoptr (StTensor) t = load_ok (path, NULL);
  g_assert_cmpint (t->shape.w, ==, width);
  check_corner (t, 3, 3, TL, 9);
  g_free (pixels);
}

/* The exact pixel mapping of a rotated gray image, larger than one batch
 * of rows and one transpose block. */
static void
test_jpeg_orientation_exact (TuTempDir *fx, G_GNUC_UNUSED gconstpointer data)
{
  const int width = 300, height = 40;
  g_autofree char *plain_path = tu_temp_path (fx, "plain.jpg");
  guint8 *pixels = g_malloc (width * height);
  for (int y = 0; y < height; y++)
    for (int x = 0; x < width; x++)
      pixels[y * width + x] = (guint8) ((x * 5 + y * 3) ^ (x * y));
  write_jpeg_raw (plain_path, width, height, pixels,
                  &(JpegFixture) { 1, JCS_GRAYSCALE, .quality = 90 });
  g_autoptr (StTensor) plain = load_ok (plain_path, NULL);

  for (int orientation = 2; orientation <= 8; orientation++)
    {
      g_autofree char *name = g_strdup_printf ("gray-orient-%d.jpg", orientation);
      g_autofree char *path = tu_temp_path (fx, name);
      write_jpeg_raw (path, width, height, pixels,
                      &(JpegFixture) { 1, JCS_GRAYSCALE, .orientation = orientation,
                                       .quality = 90 });
      g_autoptr (StTensor) t = load_ok (path, NULL);
      const int w = width, h = height;
      for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++)
          {
            int ox, oy;
            switch (orientation)
              {
              case 2: ox = w - 1 - x, oy = y; break;
              case 3: ox = w - 1 - x, oy = h - 1 - y; break;
              case 4: ox = x, oy = h - 1 - y; break;
              case 5: ox = y, oy = x; break;
              case 6: ox = h - 1 - y, oy = x; break;
              case 7: ox = h - 1 - y, oy = w - 1 - x; break;
              default: ox = y, oy = w - 1 - x; break;
              }
            g_assert_cmpfloat (at (t, 0, oy, ox), ==, at (plain, 0, y, x));
          }
    }
  g_free (pixels);
}

/* Three 16x16 patches: no ink, red (magenta + yellow), black (K only). */
static guint8 *
cmyk_patches (int *width, int *height, gboolean inverted)
{
  static const guint8 ink[3][4] = { { 0, 0, 0, 0 }, { 0, 255, 255, 0 }, { 0, 0, 0, 255 } };
  *width = 48, *height = 16;
  guint8 *pixels = g_malloc (48 * 16 * 4);
  for (int y = 0; y < 16; y++)
    for (int x = 0; x < 48; x++)
      for (int c = 0; c < 4; c++)
        pixels[(y * 48 + x) * 4 + c] = inverted ? 255 - ink[x / 16][c] : ink[x / 16][c];
  return pixels;
}

static void
test_jpeg_cmyk (TuTempDir *fx, G_GNUC_UNUSED gconstpointer data)
{
  static const float rgb[3][3] = { { 1, 1, 1 }, { 1, 0, 0 }, { 0, 0, 0 } };
  static const struct {
    const char *name;
    J_COLOR_SPACE jpeg_space;
    gboolean no_adobe;
  } cases[] = {
    { "adobe-cmyk.jpg", JCS_CMYK, FALSE },   /* Photoshop's kind: inverted */
    { "adobe-ycck.jpg", JCS_YCCK, FALSE },
    { "plain-cmyk.jpg", JCS_CMYK, TRUE },    /* no Adobe marker: plain inks */
  };
  for (gsize i = 0; i < G_N_ELEMENTS (cases); i++)
    {
      g_autofree char *path = tu_temp_path (fx, cases[i].name);
      int width, height;
      guint8 *pixels = cmyk_patches (&width, &height, !cases[i].no_adobe);
      write_jpeg_raw (path, width, height, pixels,
                      &(JpegFixture) { 4, JCS_CMYK, cases[i].jpeg_space,
                                       .no_adobe_marker = cases[i].no_adobe });
      g_free (pixels);
      g_autoptr (StTensor) t = load_ok (path, NULL);
      g_assert_cmpint (t->shape.c, ==, 3);
      g_assert_cmpint (t->shape.w, ==, width);
      for (int patch = 0; patch < 3; patch++)
        for (int c = 0; c < 3; c++)
          if (fabsf (at (t, c, 8, patch * 16 + 8) - rgb[patch][c]) > 0.04f)
            g_error ("%s: patch %d channel %d is %.3f, expected %.0f", cases[i].name,
                     patch, c, at (t, c, 8, patch * 16 + 8), rgb[patch][c]);
    }
}

/* ---- Damaged and hostile input ----------------------------------------- */

static void
test_missing_file (TuTempDir *fx, G_GNUC_UNUSED gconstpointer data)
{
  g_autofree char *path = tu_temp_path (fx, "nowhere.png");
  assert_load_fails (path, 0, ST_ERROR_IO, "cannot open");
  assert_load_fails (fx->dir, 0, ST_ERROR_IO, "Is a directory");
}

static void
test_empty_file (TuTempDir *fx, G_GNUC_UNUSED gconstpointer data)
{
  g_autofree char *path = tu_temp_path (fx, "empty.png");
  tu_write_bytes (path, "", 0);
  assert_load_fails (path, 0, ST_ERROR_IMAGE, "empty file");
}

static void
test_text_named_jpeg (TuTempDir *fx, G_GNUC_UNUSED gconstpointer data)
{
  g_autofree char *path = tu_temp_path (fx, "notes.jpg");
  const char *text = "This is not a picture.\nIt is a text file with a .jpg name.\n";
  tu_write_bytes (path, text, strlen (text));
  assert_load_fails (path, 0, ST_ERROR_IMAGE, "not a PNG, JPEG, TIFF, WebP, PNM, GIF or HEIF");
}

static void
test_random_bytes (TuTempDir *fx, G_GNUC_UNUSED gconstpointer data)
{
  GRand *rand = g_rand_new_with_seed (42);
  guint8 bytes[4096];
  for (gsize i = 0; i < sizeof bytes; i++)
    bytes[i] = (guint8) g_rand_int (rand);
  g_rand_free (rand);

  g_autofree char *path = tu_temp_path (fx, "random.png");
  bytes[0] = 'R';
  tu_write_bytes (path, bytes, sizeof bytes);
  assert_load_fails (path, 0, ST_ERROR_IMAGE, "not a PNG, JPEG, TIFF, WebP, PNM, GIF or HEIF");

  /* Noise behind a valid signature reaches the decoders. */
  g_autofree char *png_path = tu_temp_path (fx, "random-after-signature.png");
  memcpy (bytes, png_sig, 8);
  tu_write_bytes (png_path, bytes, sizeof bytes);
  assert_load_fails (png_path, 0, ST_ERROR_IMAGE, "PNG");

  g_autofree char *jpeg_path = tu_temp_path (fx, "random-after-signature.jpg");
  memcpy (bytes, "\xff\xd8\xff", 3);
  tu_write_bytes (jpeg_path, bytes, sizeof bytes);
  assert_load_fails (jpeg_path, 0, ST_ERROR_IMAGE, "JPEG");
}

static void
test_truncated_png (TuTempDir *fx, G_GNUC_UNUSED gconstpointer data)
{
  g_autofree char *path = tu_temp_path (fx, "whole.png");
  g_autoptr (StTensor) noise = random_levels (3, 64, 64, 255, 7);
  save_ok (noise, path, ST_FORMAT_PNG, 8, 0);
  gsize size;
  g_autofree guint8 *bytes = read_bytes (path, &size);

  g_autofree char *cut = tu_temp_path (fx, "cut.png");
  tu_write_bytes (cut, bytes, size * 6 / 10);
  assert_load_fails (cut, 0, ST_ERROR_IMAGE, "truncated");
  tu_write_bytes (cut, bytes, 20);                /* inside IHDR */
  assert_load_fails (cut, 0, ST_ERROR_IMAGE, "truncated");
  tu_write_bytes (cut, bytes, 5);                 /* inside the signature */
  assert_load_fails (cut, 0, ST_ERROR_IMAGE, "truncated");
  tu_write_bytes (cut, bytes, size - 4);          /* rows complete, IEND cut */
  assert_load_fails (cut, 0, ST_ERROR_IMAGE, "truncated");
}

/* An IDAT that is short but intact (valid CRC, followed by IEND): the file
 * is whole, its image data is not. */
static void
test_truncated_idat (TuTempDir *fx, G_GNUC_UNUSED gconstpointer data)
{
  g_autofree char *path = tu_temp_path (fx, "whole.png");
  g_autoptr (StTensor) noise = random_levels (1, 64, 64, 255, 8);
  save_ok (noise, path, ST_FORMAT_PNG, 8, 0);
  gsize size;
  g_autofree guint8 *bytes = read_bytes (path, &size);

  GByteArray *idat = g_byte_array_new ();
  GByteArray *out = g_byte_array_new ();
  g_byte_array_append (out, bytes, 8);
  for (gsize pos = 8; pos + 12 <= size;)
    {
      const guint32 length = get_be32 (bytes + pos);
      const guint8 *type = bytes + pos + 4;
      if (memcmp (type, "IDAT", 4) == 0)
        g_byte_array_append (idat, type + 4, length);
      else if (memcmp (type, "IEND", 4) != 0)
        g_byte_array_append (out, bytes + pos, length + 12);
      pos += length + 12;
    }
  g_assert_cmpuint (idat->len, >, 100);
  append_chunk (out, "IDAT", idat->data, idat->len / 2);
  append_chunk (out, "IEND", NULL, 0);
  g_autofree char *cut = tu_temp_path (fx, "short-idat.png");
  tu_write_bytes (cut, out->data, out->len);
  assert_load_fails (cut, 0, ST_ERROR_IMAGE, "invalid PNG");
  g_byte_array_unref (idat);
  g_byte_array_unref (out);
}

static void
test_truncated_jpeg (TuTempDir *fx, G_GNUC_UNUSED gconstpointer data)
{
  g_autofree char *path = tu_temp_path (fx, "whole.jpg");
  g_autoptr (StTensor) noise = random_levels (3, 64, 64, 255, 9);
  save_ok (noise, path, ST_FORMAT_JPEG, 8, 90);
  gsize size;
  g_autofree guint8 *bytes = read_bytes (path, &size);

  g_autofree char *cut = tu_temp_path (fx, "cut.jpg");
  tu_write_bytes (cut, bytes, size / 2);
  assert_load_fails (cut, 0, ST_ERROR_IMAGE, "truncated");
  tu_write_bytes (cut, bytes, 40);                /* in the headers */
  assert_load_fails (cut, 0, ST_ERROR_IMAGE, "truncated");
  tu_write_bytes (cut, bytes, 2);                 /* inside the signature */
  assert_load_fails (cut, 0, ST_ERROR_IMAGE, "truncated");

  /* Cut entropy data followed by an EOI marker: libjpeg would pad with
   * grey and warn; we refuse. */
  guint8 *patched = g_memdup2 (bytes, size);
  patched[size / 2] = 0xff;
  patched[size / 2 + 1] = 0xd9;
  tu_write_bytes (cut, patched, size / 2 + 2);
  assert_load_fails (cut, 0, ST_ERROR_IMAGE, "Corrupt JPEG data");
  g_free (patched);

  /* Lacking only its EOI marker, the file is still cut short. */
  tu_write_bytes (cut, bytes, size - 2);
  assert_load_fails (cut, 0, ST_ERROR_IMAGE, "truncated");
}

/* Every prefix of a small image must fail cleanly, never crash or leak
 * (run under AddressSanitizer), and flipped bytes must not crash. */
static void
test_every_prefix_and_bit_flips (TuTempDir *fx, G_GNUC_UNUSED gconstpointer data)
{
  const char *names[] = { "small.png", "small.jpg", "small16.png" };
  g_autoptr (StTensor) src = random_levels (4, 9, 11, 255, 11);
  for (gsize n = 0; n < G_N_ELEMENTS (names); n++)
    {
      g_autofree char *path = tu_temp_path (fx, names[n]);
      save_ok (src, path, st_image_format_from_name (path), n == 2 ? 16 : 8, 80);
      gsize size;
      g_autofree guint8 *bytes = read_bytes (path, &size);
      g_autofree char *cut = tu_temp_path (fx, "cut");
      for (gsize len = 0; len < size; len++)
        {
          tu_write_bytes (cut, bytes, len);
          GError *error = NULL;
          StTensor *t = st_image_load (cut, 0, NULL, &error);
          if (t)
            g_error ("%s cut to %" G_GSIZE_FORMAT " of %" G_GSIZE_FORMAT " bytes loaded",
                     names[n], len, size);
          g_assert_error (error, ST_ERROR, ST_ERROR_IMAGE);
          g_assert_true (g_str_has_prefix (error->message, cut));
          g_error_free (error);
        }

      GRand *rand = g_rand_new_with_seed (n);
      for (int trial = 0; trial < 300; trial++)
        {
          guint8 *damaged = g_memdup2 (bytes, size);
          for (int k = 0; k < 3; k++)
            damaged[g_rand_int_range (rand, 0, size)] ^= 1 << g_rand_int_range (rand, 0, 8);
          tu_write_bytes (cut, damaged, size);
          g_free (damaged);
          GError *error = NULL;
          StTensor *t = st_image_load (cut, 0, NULL, &error);
          g_assert_true ((t == NULL) == (error != NULL));
          if (t)
            g_assert_cmpint (t->shape.c, >=, 1);
          st_tensor_free (t);
          g_clear_error (&error);
        }
      g_rand_free (rand);
    }
}

/* A header declaring 100000 x 100000 pixels, and nothing else. */
static void
test_huge_png_header (TuTempDir *fx, G_GNUC_UNUSED gconstpointer data)
{
  g_autofree char *path = tu_temp_path (fx, "huge.png");
  GByteArray *out = g_byte_array_new ();
  g_byte_array_append (out, png_sig, 8);
  guint8 ihdr[13] = { 0, 0x01, 0x86, 0xa0, 0, 0x01, 0x86, 0xa0, 8, 2, 0, 0, 0 };
  append_chunk (out, "IHDR", ihdr, sizeof ihdr);
  tu_write_bytes (path, out->data, out->len);
  g_byte_array_unref (out);

  g_autofree char *expected = g_strdup_printf (
      "%s: image is 100000x100000 (10000 megapixels), more than the limit of "
      "200 megapixels (--max-pixels)", path);
  GError *error = NULL;
  g_assert_null (st_image_load (path, ST_DEFAULT_MAX_PIXELS, NULL, &error));
  g_assert_error (error, ST_ERROR, ST_ERROR_IMAGE);
  g_assert_cmpstr (error->message, ==, expected);
  g_clear_error (&error);

  /* Without a limit it is still refused, for its missing data. */
  assert_load_fails (path, 0, ST_ERROR_IMAGE, "truncated");
}

static void
test_max_pixels (TuTempDir *fx, G_GNUC_UNUSED gconstpointer data)
{
  g_autoptr (StTensor) src = gradient (3, 48, 64);
  const char *names[] = { "limit.png", "limit.jpg" };
  for (gsize i = 0; i < G_N_ELEMENTS (names); i++)
    {
      g_autofree char *path = tu_temp_path (fx, names[i]);
      save_ok (src, path, ST_FORMAT_UNKNOWN, 8, 90);
      GError *error = NULL;
      StTensor *t = st_image_load (path, 64 * 48, NULL, &error);
      g_assert_no_error (error);
      st_tensor_free (t);
      t = st_image_load (path, 0, NULL, &error);
      g_assert_no_error (error);
      st_tensor_free (t);
      assert_load_fails (path, 64 * 48 - 1, ST_ERROR_IMAGE,
                         "image is 64x48 (3072 pixels), more than the limit of 3071 pixels");
    }
}


/* ---- PNM ------------------------------------------------------------------ */

/* Every layout the writer makes (P5, P6, P7 with alpha) at both depths. */
static void
test_pnm_round_trip (TuTempDir *fx, G_GNUC_UNUSED gconstpointer data)
{
  static const char *const names[] = { "a.pgm", "a.pam", "a.ppm", "a.pnm" };
  static const char *const magic[] = { "P5\n", "P7\n", "P6\n", "P7\n" };
  for (int depth = 8; depth <= 16; depth += 8)
    for (int channels = 1; channels <= 4; channels++)
      {
        g_autofree char *name = g_strdup_printf ("%d-%s", depth, names[channels - 1]);
        g_autofree char *path = tu_temp_path (fx, name);
        g_autoptr (StTensor) src = random_levels (channels, 5, 9, depth == 16 ? 65535 : 255,
                                                  channels + depth);
        src->data[0] = 0.0f;
        src->data[1] = 1.0f;
        save_ok (src, path, ST_FORMAT_UNKNOWN, depth, 0);
        gsize size;
        g_autofree guint8 *bytes = read_bytes (path, &size);
        g_assert_cmpmem (bytes, 3, magic[channels - 1], 3);
        StImageInfo info;
        g_autoptr (StTensor) back = load_ok (path, &info);
        assert_tensors_equal (src, back);
        g_assert_cmpint (info.format, ==, ST_FORMAT_PNM);
        g_assert_cmpint (info.bit_depth, ==, depth);
        g_assert_cmpint (info.has_alpha, ==, channels == 2 || channels == 4);
      }
}

/* .pgm takes grey and .ppm RGB only: other pixels are refused by name,
 * with the name that fits, and nothing is written. */
static void
test_pnm_names (TuTempDir *fx, G_GNUC_UNUSED gconstpointer data)
{
  static const struct {
    const char *name;
    int channels;
    const char *message;       /* NULL: written */
  } cases[] = {
    { "g.pgm", 1, NULL },
    { "c.PGM", 3, "a PGM holds grey pixels only, and this image is RGB (name the file .ppm" },
    { "ga.pgm", 2, "this image is grey and alpha (name the file .pam" },
    { "c.ppm", 3, NULL },
    { "g.ppm", 1, "a PPM holds RGB pixels only, and this image is grey (name the file .pgm" },
    { "ca.ppm", 4, "this image is RGBA (name the file .pam" },
    { "g.pnm", 1, NULL },
    { "ca.pnm", 4, NULL },
  };
  for (gsize i = 0; i < G_N_ELEMENTS (cases); i++)
    {
      g_autofree char *path = tu_temp_path (fx, cases[i].name);
      g_autoptr (StTensor) src = random_levels (cases[i].channels, 5, 9, 255, (int) i);
      GError *error = NULL;
      gboolean ok = st_image_save (src, path, ST_FORMAT_UNKNOWN, 8, 0, &error);
      if (!cases[i].message)
        {
          g_assert_no_error (error);
          g_assert_true (ok);
          continue;
        }
      g_assert_false (ok);
      g_assert_error (error, ST_ERROR, ST_ERROR_IMAGE);
      if (!strstr (error->message, cases[i].message) || !strstr (error->message, path))
        g_error ("%s: unexpected message: %s", cases[i].name, error->message);
      g_error_free (error);
      g_assert_false (g_file_test (path, G_FILE_TEST_EXISTS));
    }
}

/* Files written by hand: each kind, with comments where the formats allow
 * them, and the values they must give. */
static void
test_pnm_hand_written (TuTempDir *fx, G_GNUC_UNUSED gconstpointer data)
{
  static const struct {
    const char *name;
    const char *bytes;
    gsize size;
    int channels, width, height, depth;
    float values[10];             /* planar, as the tensor holds them */
  } cases[] = {
#define BYTES(text) text, sizeof text - 1
    { "p1.pbm", BYTES ("P1\n# plain\n3 1\n1 0\n1"), 1, 3, 1, 8, { 0, 1, 0 } },
    { "p1-packed.pbm", BYTES ("P1 3 1 101"), 1, 3, 1, 8, { 0, 1, 0 } },
    { "p2.pgm", BYTES ("P2 #c\n2 2 # size\n4\n0 1\n2 4\n"), 1, 2, 2, 8, { 0, 0.25f, 0.5f, 1 } },
    { "p3.ppm", BYTES ("P3\n1 2\n65535\n65535 0 32768\n0 65535 0\n"), 3, 1, 2, 16,
      { 1, 0, 0, 1, 32768.0f / 65535, 0 } },
    { "p4.pbm", BYTES ("P4\n# bits\n10 1\n\x5f\xc0"), 1, 10, 1, 8,
      { 1, 0, 1, 0, 0, 0, 0, 0, 0, 0 } },
    { "p5.pgm", BYTES ("P5\n# c\n2 1 1000\n\x03\xe8\x01\xf4"), 1, 2, 1, 16, { 1, 0.5f } },
    { "p6.ppm", BYTES ("P6 1 1 3\n\x00\x03\x01"), 3, 1, 1, 8, { 0, 1, 1.0f / 3 } },
    { "bw.pam", BYTES ("P7\nWIDTH 2\nHEIGHT 1\nDEPTH 1\nMAXVAL 1\nTUPLTYPE BLACKANDWHITE\nENDHDR\n"
      "\x01\x00"), 1, 2, 1, 8, { 1, 0 } },
    { "ga.pam", BYTES ("P7\n# comment\nWIDTH 1\nHEIGHT 1\nDEPTH 2\nMAXVAL 255\n"
      "TUPLTYPE GRAYSCALE_ALPHA\nENDHDR\n\xff\x80"), 2, 1, 1, 8, { 1, 128.0f / 255 } },
    { "rgba.pam", BYTES ("P7\nWIDTH 1\nHEIGHT 1\nDEPTH 4\nMAXVAL 65535\nTUPLTYPE RGB_ALPHA\n"
                         "ENDHDR\n"
      "\xff\xff\x00\x00\x00\x00\xff\xff"), 4, 1, 1, 16, { 1, 0, 0, 1 } },
#undef BYTES
  };
  for (gsize i = 0; i < G_N_ELEMENTS (cases); i++)
    {
      g_autofree char *path = tu_temp_path (fx, cases[i].name);
      tu_write_bytes (path, cases[i].bytes, cases[i].size);
      StImageInfo info;
      g_autoptr (StTensor) t = load_ok (path, &info);
      g_assert_cmpint (t->shape.c, ==, cases[i].channels);
      g_assert_cmpint (t->shape.w, ==, cases[i].width);
      g_assert_cmpint (t->shape.h, ==, cases[i].height);
      g_assert_cmpint (info.bit_depth, ==, cases[i].depth);
      for (gsize k = 0; k < st_tensor_numel (t); k++)
        if (fabsf (t->data[k] - cases[i].values[k]) > 1e-6f)
          g_error ("%s: value %" G_GSIZE_FORMAT " is %g, expected %g", cases[i].name, k,
                   t->data[k], cases[i].values[k]);
    }
}

static void
test_pnm_bad (TuTempDir *fx, G_GNUC_UNUSED gconstpointer data)
{
  static const struct {
    const char *bytes;
    const char *reason;
  } cases[] = {
    { "P5\n2 2\n255\n\x01\x02\x03", "truncated PNM file (it ends before the image is complete)" },
    { "P5\n2 2", "truncated PNM file (it ends inside the header)" },
    { "P2\n2 1\n255\n1", "truncated PNM file" },
    { "P5\n99999999999 1\n255\n", "invalid PNM width (more than 2147483647)" },
    { "P5\n2 1\n0\n", "invalid PNM maxval (0; expected 1 to 65535)" },
    { "P5\n2 1\n65536\n", "invalid PNM maxval (more than 65535)" },
    { "P5\n0 1\n255\n", "invalid PNM width (0; expected 1 to 2147483647)" },
    { "P5\nx 1\n255\n", "invalid PNM width (expected a number)" },
    { "P5\n2x 1\n255\n", "unexpected character after the number" },
    { "P2\n2 1\n9\n3 10\n", "invalid PNM sample 10 (over the maxval 9)" },
    { "P5\n1 1\n9\n\x0a", "invalid PNM sample 10 (over the maxval 9)" },
    { "P1\n2 1\n1 2\n", "invalid PBM pixel (expected 0 or 1)" },
    { "P7\nWIDTH 1\nHEIGHT 1\nDEPTH 5\nMAXVAL 255\nENDHDR\n", "invalid PAM DEPTH '5'" },
    { "P7\nWIDTH 1\nHEIGHT 1\nDEPTH 3\nMAXVAL 255\nTUPLTYPE GRAYSCALE\nENDHDR\n",
      "TUPLTYPE GRAYSCALE with DEPTH 3" },
    { "P7\nWIDTH 1\nHEIGHT 1\nDEPTH 3\nENDHDR\n", "WIDTH, HEIGHT, DEPTH and MAXVAL are required" },
    { "P7\nWIDTH 1\nHEIGHT 1\nDEPTH 1\nMAXVAL 255\nTUPLTYPE CMYK\nENDHDR\n",
      "unsupported PAM tuple type 'CMYK'" },
    { "P7\nWIDTH 1\nHEIGHT 1\nCOLOURS 3\n", "unknown field 'COLOURS'" },
  };
  for (gsize i = 0; i < G_N_ELEMENTS (cases); i++)
    {
      g_autofree char *name = g_strdup_printf ("bad-%" G_GSIZE_FORMAT ".pnm", i);
      g_autofree char *path = tu_temp_path (fx, name);
      tu_write_bytes (path, cases[i].bytes, strlen (cases[i].bytes));
      assert_load_fails (path, 0, ST_ERROR_IMAGE, cases[i].reason);
    }

  /* A header of endless comments is refused, not read on. */
  g_autofree char *path = tu_temp_path (fx, "comments.pgm");
  g_autoptr (GString) text = g_string_new ("P5\n");
  while (text->len < 70000)
    g_string_append (text, "# a comment line\n");
  tu_write_bytes (path, text->str, text->len);
  assert_load_fails (path, 0, ST_ERROR_IMAGE, "invalid PNM header (longer than 65536 bytes)");

  /* A PBM cannot be written: the name is refused before any file is made. */
  g_autofree char *out = tu_temp_path (fx, "out.pbm");
  g_autoptr (StTensor) image = st_tensor_new0 (1, 1, 2, 2);
  g_autoptr (GError) error = NULL;
  g_assert_false (st_image_save (image, out, ST_FORMAT_UNKNOWN, 8, 90, &error));
  g_assert_nonnull (strstr (error->message, "cannot write a PBM bitmap"));
  g_assert_false (g_file_test (out, G_FILE_TEST_EXISTS));
}

/* --max-pixels refuses from the header: the files hold no pixels at all. */
static void
test_pnm_max_pixels (TuTempDir *fx, G_GNUC_UNUSED gconstpointer data)
{
  static const char *const headers[] = {
    "P5\n100000 100000\n255\n", "P1 100000 100000\n",
    "P7\nWIDTH 100000\nHEIGHT 100000\nDEPTH 3\nMAXVAL 255\nENDHDR\n",
  };
  for (gsize i = 0; i < G_N_ELEMENTS (headers); i++)
    {
      g_autofree char *name = g_strdup_printf ("huge-%" G_GSIZE_FORMAT ".pnm", i);
      g_autofree char *path = tu_temp_path (fx, name);
      tu_write_bytes (path, headers[i], strlen (headers[i]));
      assert_load_fails (path, ST_DEFAULT_MAX_PIXELS, ST_ERROR_IMAGE,
                         "image is 100000x100000 (10000 megapixels), more than the limit");
    }
}

/* ---- GIF ------------------------------------------------------------------ */

/* A GIF written with giflib: frames of width x height palette indices, each
 * after a Graphics Control Extension naming `transparent` (-1: none);
 * interlaced frames are given to giflib in pass order, as it expects. */
static void
write_gif (const char *path, int width, int height, const guint8 (*palette)[3], int n_colours,
           const guint8 *const *frames, int n_frames, int transparent, gboolean interlace)
{
  int err = 0;
  GifFileType *gif = EGifOpenFileName (path, FALSE, &err);
  g_assert_nonnull (gif);
  GifColorType colours[256] = { { 0 } };
  for (int i = 0; i < n_colours; i++)
    colours[i] = (GifColorType) { palette[i][0], palette[i][1], palette[i][2] };
  ColorMapObject *map = GifMakeMapObject (256, colours);
  EGifSetGifVersion (gif, TRUE);
  g_assert_cmpint (EGifPutScreenDesc (gif, width, height, 8, 0, map), ==, GIF_OK);
  for (int f = 0; f < n_frames; f++)
    {
      GraphicsControlBlock gcb = { DISPOSAL_UNSPECIFIED, FALSE, 10, transparent };
      GifByteType ext[4];
      size_t n = EGifGCBToExtension (&gcb, ext);
      g_assert_cmpint (EGifPutExtension (gif, GRAPHICS_EXT_FUNC_CODE, (int) n, ext), ==, GIF_OK);
      g_assert_cmpint (EGifPutImageDesc (gif, 0, 0, width, height, interlace, NULL), ==, GIF_OK);
      static const int start[] = { 0, 4, 2, 1 }, step[] = { 8, 8, 4, 2 };
      for (int pass = 0; pass < (interlace ? 4 : 1); pass++)
        for (int y = interlace ? start[pass] : 0; y < height; y += interlace ? step[pass] : 1)
          g_assert_cmpint (EGifPutLine (gif, (GifPixelType *) frames[f] + y * width, width),
                           ==, GIF_OK);
    }
  g_assert_cmpint (EGifCloseFile (gif, &err), ==, GIF_OK);
  GifFreeMapObject (map);
}

static const guint8 gif_palette[4][3] = {
  { 255, 0, 0 }, { 0, 255, 0 }, { 10, 20, 30 }, { 200, 100, 50 },
};

static void
assert_gif_pixels (const StTensor *t, const guint8 *indices, int transparent)
{
  for (int y = 0; y < t->shape.h; y++)
    for (int x = 0; x < t->shape.w; x++)
      {
        const int i = indices[y * t->shape.w + x];
        const gboolean clear = i == transparent;
        for (int c = 0; c < 3; c++)
          g_assert_cmpfloat (at (t, c, y, x), ==, clear ? 0.0f : gif_palette[i][c] / 255.0f);
        if (t->shape.c == 4)
          g_assert_cmpfloat (at (t, 3, y, x), ==, clear ? 0.0f : 1.0f);
      }
}

static guint8 *
gif_indices (int width, int height, int seed)
{
  guint8 *p = g_malloc ((gsize) width * height);
  for (int i = 0; i < width * height; i++)
    p[i] = (guint8) ((i * 7 + i / width + seed) % 4);
  return p;
}

static void
test_gif_read (TuTempDir *fx, G_GNUC_UNUSED gconstpointer data)
{
  const int w = 7, h = 19;
  g_autofree guint8 *first = gif_indices (w, h, 0);
  g_autofree guint8 *second = gif_indices (w, h, 1);
  const guint8 *frames[] = { first, second };
  static const struct {
    const char *name;
    int n_frames, transparent;
    gboolean interlace;
  } cases[] = {
    { "palette.gif", 1, -1, FALSE },
    { "transparent.gif", 1, 2, FALSE },
    { "interlaced.gif", 1, -1, TRUE },
    /* The first frame of an animation, not the second. */
    { "animation.gif", 2, -1, FALSE },
  };
  for (gsize i = 0; i < G_N_ELEMENTS (cases); i++)
    {
      g_autofree char *path = tu_temp_path (fx, cases[i].name);
      write_gif (path, w, h, gif_palette, 4, frames, cases[i].n_frames, cases[i].transparent,
                 cases[i].interlace);
      StImageInfo info;
      g_autoptr (StTensor) t = load_ok (path, &info);
      g_assert_cmpint (info.format, ==, ST_FORMAT_GIF);
      g_assert_cmpint (info.bit_depth, ==, 8);
      g_assert_cmpint (info.has_alpha, ==, cases[i].transparent >= 0);
      g_assert_cmpint (t->shape.c, ==, cases[i].transparent >= 0 ? 4 : 3);
      g_assert_cmpint (t->shape.w, ==, w);
      g_assert_cmpint (t->shape.h, ==, h);
      assert_gif_pixels (t, first, cases[i].transparent);
    }

  /* A 1x1 frame on a 2x1 screen: the uncovered pixel is transparent. */
  g_autofree char *path = tu_temp_path (fx, "small-frame.gif");
  tu_write_bytes (path, "GIF89a\x02\x00\x01\x00\x80\x00\x00\xff\x00\x00\x00\x00\xff"
                  ",\x00\x00\x00\x00\x01\x00\x01\x00\x00\x02\x02" "D\x01\x00;", 35);
  StImageInfo info;
  g_autoptr (StTensor) t = load_ok (path, &info);
  g_assert_true (info.has_alpha);
  g_assert_cmpint (t->shape.c, ==, 4);
  g_assert_cmpint (t->shape.w, ==, 2);
  const float want[] = { 1, 0, 0, 0, 0, 0, 1, 0 };
  for (gsize k = 0; k < G_N_ELEMENTS (want); k++)
    g_assert_cmpfloat (t->data[k], ==, want[k]);
}

static void
test_gif_bad (TuTempDir *fx, G_GNUC_UNUSED gconstpointer data)
{
  const int w = 40, h = 30;
  g_autofree guint8 *indices = gif_indices (w, h, 0);
  const guint8 *frames[] = { indices };
  g_autofree char *good = tu_temp_path (fx, "good.gif");
  write_gif (good, w, h, gif_palette, 4, frames, 1, -1, FALSE);
  gsize size;
  g_autofree guint8 *bytes = read_bytes (good, &size);

  g_autofree char *cut = tu_temp_path (fx, "cut.gif");
  tu_write_bytes (cut, bytes, size / 2);
  assert_load_fails (cut, 0, ST_ERROR_IMAGE,
                     "truncated GIF file (it ends before the image is complete)");
  g_autofree char *header = tu_temp_path (fx, "header.gif");
  tu_write_bytes (header, bytes, 10);
  assert_load_fails (header, 0, ST_ERROR_IMAGE, "truncated GIF file");

  /* A screen descriptor, then no image at all. */
  g_autofree char *empty = tu_temp_path (fx, "empty.gif");
  tu_write_bytes (empty, "GIF89a\x01\x00\x01\x00\x00\x00\x00;", 14);
  assert_load_fails (empty, 0, ST_ERROR_IMAGE, "invalid GIF file (it holds no image)");
  g_autofree char *junk = tu_temp_path (fx, "junk.gif");
  tu_write_bytes (junk, "GIF89a\x01\x00\x01\x00\x00\x00\x00\x55\x55\x55", 16);
  assert_load_fails (junk, 0, ST_ERROR_IMAGE, "invalid GIF file (");

  /* --max-pixels from the screen size: the file holds no pixels. */
  g_autofree char *huge = tu_temp_path (fx, "huge.gif");
  tu_write_bytes (huge, "GIF89a\x60\xea\x60\xea\x00\x00\x00", 13);
  assert_load_fails (huge, ST_DEFAULT_MAX_PIXELS, ST_ERROR_IMAGE,
                     "image is 60000x60000 (3600 megapixels), more than the limit");
  assert_load_fails (good, w * h - 1, ST_ERROR_IMAGE, "image is 40x30 (1200 pixels)");

  /* Writing is refused before any file is made. */
  g_autofree char *out = tu_temp_path (fx, "out.gif");
  g_autoptr (StTensor) image = st_tensor_new0 (1, 3, 2, 2);
  g_autoptr (GError) error = NULL;
  g_assert_false (st_image_save (image, out, ST_FORMAT_UNKNOWN, 8, 90, &error));
  g_assert_nonnull (strstr (error->message, "cannot write GIF (strata reads GIF only"));
  g_assert_false (g_file_test (out, G_FILE_TEST_EXISTS));
}

/* The library never prints: every failure above, run again in a child
 * whose stderr and stdout must stay empty. */
static void
test_silent (TuTempDir *fx, G_GNUC_UNUSED gconstpointer data)
{
  if (g_test_subprocess ())
    {
      test_truncated_png (fx, NULL);
      test_truncated_idat (fx, NULL);
      test_truncated_jpeg (fx, NULL);
      test_random_bytes (fx, NULL);
      test_huge_png_header (fx, NULL);
      return;
    }
  g_test_trap_subprocess (NULL, 0, G_TEST_SUBPROCESS_DEFAULT);
  g_test_trap_assert_passed ();
  g_test_trap_assert_stdout ("");
  g_test_trap_assert_stderr ("");
}

/* ---- Saving ------------------------------------------------------------ */

static void
assert_save_fails (const StTensor *t, const char *path, StImageFormat format,
                   int bit_depth, int quality, int code, const char *reason)
{
  GError *error = NULL;
  g_assert_false (st_image_save (t, path, format, bit_depth, quality, &error));
  g_assert_error (error, ST_ERROR, code);
  g_test_message ("%s", error->message);
  g_assert_true (g_str_has_prefix (error->message, path));
  if (reason && !strstr (error->message, reason))
    g_error ("message \"%s\" lacks \"%s\"", error->message, reason);
  g_error_free (error);
}

static void
test_save_missing_folder (TuTempDir *fx, G_GNUC_UNUSED gconstpointer data)
{
  g_autoptr (StTensor) t = gradient (3, 4, 4);
  g_autofree char *path = g_build_filename (fx->dir, "no-such-folder", "out.png", NULL);
  assert_save_fails (t, path, ST_FORMAT_PNG, 8, 0, ST_ERROR_IO, "No such file");
  assert_save_fails (t, path, ST_FORMAT_JPEG, 8, 90, ST_ERROR_IO, "No such file");
  g_assert_cmpint (count_entries (fx->dir), ==, 0);
}

static void
test_save_bad_arguments (TuTempDir *fx, G_GNUC_UNUSED gconstpointer data)
{
  g_autofree char *png = tu_temp_path (fx, "out.png");
  g_autofree char *jpeg = tu_temp_path (fx, "out.jpg");
  g_autofree char *other = tu_temp_path (fx, "out.bmp");
  g_autoptr (StTensor) five = st_tensor_new0 (1, 5, 4, 4);
  g_autoptr (StTensor) batch = st_tensor_new0 (2, 3, 4, 4);
  g_autoptr (StTensor) rgb = gradient (3, 4, 4);

  assert_save_fails (five, png, ST_FORMAT_PNG, 8, 0, ST_ERROR_IMAGE, "1x5x4x4");
  assert_save_fails (five, jpeg, ST_FORMAT_JPEG, 8, 90, ST_ERROR_IMAGE, "1x5x4x4");
  assert_save_fails (batch, png, ST_FORMAT_PNG, 8, 0, ST_ERROR_IMAGE, "2x3x4x4");
  assert_save_fails (rgb, png, ST_FORMAT_PNG, 12, 0, ST_ERROR_IMAGE, "bit depth 12");
  assert_save_fails (rgb, jpeg, ST_FORMAT_JPEG, 8, 0, ST_ERROR_IMAGE, "quality 0");
  assert_save_fails (rgb, jpeg, ST_FORMAT_JPEG, 8, 101, ST_ERROR_IMAGE, "quality 101");
  assert_save_fails (rgb, other, ST_FORMAT_UNKNOWN, 8, 90, ST_ERROR_IMAGE, "unknown image format");
  g_assert_cmpint (count_entries (fx->dir), ==, 0);
}

/* A target that cannot be replaced (a folder) fails at the rename, and the
 * temporary file goes away. */
static void
test_save_rename_fails (TuTempDir *fx, G_GNUC_UNUSED gconstpointer data)
{
  g_autofree char *path = tu_temp_path (fx, "taken.png");
  g_assert_cmpint (g_mkdir (path, 0700), ==, 0);
  g_autoptr (StTensor) t = gradient (3, 4, 4);
  assert_save_fails (t, path, ST_FORMAT_PNG, 8, 0, ST_ERROR_IO, "cannot replace");
  g_assert_cmpint (count_entries (fx->dir), ==, 1);
  g_assert_true (g_file_test (path, G_FILE_TEST_IS_DIR));
}

static void
test_save_replaces (TuTempDir *fx, G_GNUC_UNUSED gconstpointer data)
{
  g_autofree char *path = tu_temp_path (fx, "replace.png");
  tu_write_bytes (path, "old contents", 12);
  mode_t old_mask = umask (022);
  g_autoptr (StTensor) t = random_levels (4, 5, 6, 255, 3);
  save_ok (t, path, ST_FORMAT_PNG, 8, 0);
  umask (old_mask);
  g_autoptr (StTensor) back = load_ok (path, NULL);
  assert_tensors_equal (t, back);
  g_assert_cmpint (count_entries (fx->dir), ==, 1);
  struct stat st;
  g_assert_cmpint (g_stat (path, &st), ==, 0);
  g_assert_cmpint (st.st_mode & 0777, ==, 0644);
}

/* A write that fails midway (here: past a file-size limit, as on a full
 * disk) is reported with the path and leaves no file behind. */
static void
test_save_write_error (TuTempDir *fx, G_GNUC_UNUSED gconstpointer data)
{
  if (!g_test_subprocess ())
    {
      g_test_trap_subprocess (NULL, 0, G_TEST_SUBPROCESS_DEFAULT);
      g_test_trap_assert_passed ();
      g_test_trap_assert_stderr ("");
      return;
    }
  g_autoptr (StTensor) noise = random_levels (3, 256, 256, 255, 5);
  signal (SIGXFSZ, SIG_IGN);
  struct rlimit limit = { 4096, 4096 };
  g_assert_cmpint (setrlimit (RLIMIT_FSIZE, &limit), ==, 0);
  g_autofree char *png = tu_temp_path (fx, "big.png");
  g_autofree char *jpeg = tu_temp_path (fx, "big.jpg");
  assert_save_fails (noise, png, ST_FORMAT_PNG, 8, 0, ST_ERROR_IO, NULL);
  assert_save_fails (noise, png, ST_FORMAT_PNG, 16, 0, ST_ERROR_IO, NULL);
  assert_save_fails (noise, jpeg, ST_FORMAT_JPEG, 8, 95, ST_ERROR_IO, NULL);
  g_assert_cmpint (count_entries (fx->dir), ==, 0);
}

/* Out-of-range values clamp, NaN becomes 0, halves round up. */
static void
test_save_clamps (TuTempDir *fx, G_GNUC_UNUSED gconstpointer data)
{
  g_autofree char *path8 = tu_temp_path (fx, "clamp8.png");
  g_autofree char *path16 = tu_temp_path (fx, "clamp16.png");
  g_autoptr (StTensor) t = st_tensor_new0 (1, 1, 1, 6);
  const float in[6] = { -0.5f, 1.5f, NAN, 0.5f, INFINITY, -INFINITY };
  memcpy (t->data, in, sizeof in);
  save_ok (t, path8, ST_FORMAT_PNG, 8, 0);
  save_ok (t, path16, ST_FORMAT_PNG, 16, 0);
  g_autoptr (StTensor) b8 = load_ok (path8, NULL);
  g_autoptr (StTensor) b16 = load_ok (path16, NULL);
  const float want8[6] = { 0, 1, 0, 128 / 255.0f, 1, 0 };
  const float want16[6] = { 0, 1, 0, 32768 / 65535.0f, 1, 0 };
  for (int i = 0; i < 6; i++)
    {
      g_assert_cmpfloat (b8->data[i], ==, want8[i]);
      g_assert_cmpfloat (b16->data[i], ==, want16[i]);
    }
}

/* ---- TIFF ---------------------------------------------------------------- */

static void
tiff_round_trip (TuTempDir *fx, int bit_depth)
{
  const int levels = bit_depth == 16 ? 65535 : 255;
  for (int channels = 1; channels <= 4; channels++)
    {
      g_autofree char *name = g_strdup_printf ("rt-%d-%d.tif", channels, bit_depth);
      g_autofree char *path = tu_temp_path (fx, name);
      g_autoptr (StTensor) src = random_levels (channels, 7, 13, levels, channels);
      src->data[0] = 0.0f;
      src->data[1] = 1.0f;
      save_ok (src, path, ST_FORMAT_UNKNOWN, bit_depth, 0);
      StImageInfo info;
      g_autoptr (StTensor) back = load_ok (path, &info);
      assert_tensors_equal (src, back);
      g_assert_cmpint (info.format, ==, ST_FORMAT_TIFF);
      g_assert_cmpint (info.bit_depth, ==, bit_depth);
      g_assert_cmpint (info.has_alpha, ==, channels == 2 || channels == 4);
    }
}

static void
test_tiff_round_trip_8 (TuTempDir *fx, G_GNUC_UNUSED gconstpointer data)
{
  tiff_round_trip (fx, 8);
}

static void
test_tiff_round_trip_16 (TuTempDir *fx, G_GNUC_UNUSED gconstpointer data)
{
  tiff_round_trip (fx, 16);
}

/* A TIFF written by libtiff itself: pixel (x, y) of sample s is
 * (x * 7 + y * 13 + s * 50) % 256 (times 257 at 16 bits); tile_size 0
 * writes strips. */
static guint32
tiff_sample (int x, int y, int s, int bits)
{
  guint32 v = (guint32) (x * 7 + y * 13 + s * 50) % 256;
  return bits == 16 ? v * 257 : v;
}

static void
write_tiff_raw (const char *path, int width, int height, int samples, int bits,
                guint16 compression, int tile_size, int pages)
{
  TIFF *tif = TIFFOpen (path, "w");
  g_assert_nonnull (tif);
  for (int page = 0; page < pages; page++)
    {
      TIFFSetField (tif, TIFFTAG_IMAGEWIDTH, width);
      TIFFSetField (tif, TIFFTAG_IMAGELENGTH, height);
      TIFFSetField (tif, TIFFTAG_SAMPLESPERPIXEL, samples);
      TIFFSetField (tif, TIFFTAG_BITSPERSAMPLE, bits);
      TIFFSetField (tif, TIFFTAG_PLANARCONFIG, PLANARCONFIG_CONTIG);
      TIFFSetField (tif, TIFFTAG_PHOTOMETRIC, samples <= 2 ? PHOTOMETRIC_MINISBLACK : PHOTOMETRIC_RGB);
      TIFFSetField (tif, TIFFTAG_COMPRESSION, compression);
      if (samples == 2 || samples == 4)
        {
          const guint16 extra[] = { EXTRASAMPLE_UNASSALPHA };
          TIFFSetField (tif, TIFFTAG_EXTRASAMPLES, 1, extra);
        }
      const gsize bps = bits / 8;
      if (tile_size)
        {
          TIFFSetField (tif, TIFFTAG_TILEWIDTH, tile_size);
          TIFFSetField (tif, TIFFTAG_TILELENGTH, tile_size);
          g_autofree guint8 *tile = g_malloc0 (TIFFTileSize (tif));
          for (int ty = 0; ty < height; ty += tile_size)
            for (int tx = 0; tx < width; tx += tile_size)
              {
                for (int y = 0; y < tile_size; y++)
                  for (int x = 0; x < tile_size; x++)
                    for (int s = 0; s < samples; s++)
                      {
                        guint32 v = tiff_sample (tx + x, ty + y, s + page, bits);
                        gsize i = ((gsize) y * tile_size + x) * samples + s;
                        if (bits == 16)
                          ((guint16 *) tile)[i] = v;
                        else
                          tile[i] = v;
                      }
                g_assert_cmpint (TIFFWriteTile (tif, tile, tx, ty, 0, 0), >, 0);
              }
        }
      else
        {
          TIFFSetField (tif, TIFFTAG_ROWSPERSTRIP, 3);
          g_autofree guint8 *row = g_malloc0 ((gsize) width * samples * bps);
          for (int y = 0; y < height; y++)
            {
              for (int x = 0; x < width; x++)
                for (int s = 0; s < samples; s++)
                  {
                    guint32 v = tiff_sample (x, y, s + page, bits);
                    if (bits == 16)
                      ((guint16 *) row)[x * samples + s] = v;
                    else
                      row[x * samples + s] = v;
                  }
              g_assert_cmpint (TIFFWriteScanline (tif, row, y, 0), ==, 1);
            }
        }
      g_assert_true (TIFFWriteDirectory (tif));
    }
  TIFFClose (tif);
}

static void
assert_tiff_pixels (const StTensor *t, int samples, int bits)
{
  g_assert_cmpint (t->shape.c, ==, samples);
  const float top = bits == 16 ? 65535.0f : 255.0f;
  for (int s = 0; s < samples; s++)
    for (int y = 0; y < t->shape.h; y++)
      for (int x = 0; x < t->shape.w; x++)
        g_assert_cmpfloat (at (t, s, y, x), ==, tiff_sample (x, y, s, bits) / top);
}

/* Files from libtiff: every layout, depth, compression, strips and tiles,
 * and only the first page of a two-page file. */
static void
test_tiff_from_libtiff (TuTempDir *fx, G_GNUC_UNUSED gconstpointer data)
{
  static const guint16 compressions[] = { COMPRESSION_NONE, COMPRESSION_LZW,
                                          COMPRESSION_ADOBE_DEFLATE, COMPRESSION_PACKBITS };
  for (int samples = 1; samples <= 4; samples++)
    for (int bits = 8; bits <= 16; bits += 8)
      for (gsize c = 0; c < G_N_ELEMENTS (compressions); c++)
        for (int tile = 0; tile <= 16; tile += 16)
          {
            g_autofree char *name = g_strdup_printf ("lib-%d-%d-%d-%d.tif", samples, bits,
                                                     (int) c, tile);
            g_autofree char *path = tu_temp_path (fx, name);
            write_tiff_raw (path, 21, 19, samples, bits, compressions[c], tile, 2);
            StImageInfo info;
            g_autoptr (StTensor) t = load_ok (path, &info);
            g_assert_cmpint (t->shape.w, ==, 21);
            g_assert_cmpint (t->shape.h, ==, 19);
            assert_tiff_pixels (t, samples, bits);
            g_assert_cmpint (info.bit_depth, ==, bits);
          }
}

/* Our writer's file, read by libtiff itself: Deflate, the layout tags,
 * and 16-bit samples in the file's byte order. */
static void
test_tiff_read_by_libtiff (TuTempDir *fx, G_GNUC_UNUSED gconstpointer data)
{
  g_autoptr (StTensor) src = random_levels (4, 5, 9, 65535, 3);
  g_autofree char *path = tu_temp_path (fx, "ours.tiff");
  save_ok (src, path, ST_FORMAT_TIFF, 16, 0);
  TIFF *tif = TIFFOpen (path, "r");
  g_assert_nonnull (tif);
  guint16 compression = 0, bits = 0, samples = 0, photometric = 0, n_extra = 0, *extra = NULL;
  TIFFGetField (tif, TIFFTAG_COMPRESSION, &compression);
  TIFFGetField (tif, TIFFTAG_BITSPERSAMPLE, &bits);
  TIFFGetField (tif, TIFFTAG_SAMPLESPERPIXEL, &samples);
  TIFFGetField (tif, TIFFTAG_PHOTOMETRIC, &photometric);
  TIFFGetField (tif, TIFFTAG_EXTRASAMPLES, &n_extra, &extra);
  g_assert_cmpint (compression, ==, COMPRESSION_ADOBE_DEFLATE);
  g_assert_cmpint (bits, ==, 16);
  g_assert_cmpint (samples, ==, 4);
  g_assert_cmpint (photometric, ==, PHOTOMETRIC_RGB);
  g_assert_cmpint (n_extra, ==, 1);
  g_assert_cmpint (extra[0], ==, EXTRASAMPLE_UNASSALPHA);
  guint16 row[9 * 4];
  for (int y = 0; y < 5; y++)
    {
      g_assert_cmpint (TIFFReadScanline (tif, row, y, 0), ==, 1);
      for (int x = 0; x < 9; x++)
        for (int c = 0; c < 4; c++)
          g_assert_cmpfloat (row[x * 4 + c] / 65535.0f, ==, at (src, c, y, x));
    }
  TIFFClose (tif);
}

/* A palette image and a JPEG-compressed one go through libtiff's RGBA
 * interface. */
static void
test_tiff_palette_and_jpeg (TuTempDir *fx, G_GNUC_UNUSED gconstpointer data)
{
  g_autofree char *path = tu_temp_path (fx, "palette.tif");
  TIFF *tif = TIFFOpen (path, "w");
  g_assert_nonnull (tif);
  TIFFSetField (tif, TIFFTAG_IMAGEWIDTH, 4);
  TIFFSetField (tif, TIFFTAG_IMAGELENGTH, 2);
  TIFFSetField (tif, TIFFTAG_SAMPLESPERPIXEL, 1);
  TIFFSetField (tif, TIFFTAG_BITSPERSAMPLE, 8);
  TIFFSetField (tif, TIFFTAG_PHOTOMETRIC, PHOTOMETRIC_PALETTE);
  guint16 red[256] = { 0 }, green[256] = { 0 }, blue[256] = { 0 };
  red[1] = 65535;
  green[2] = 65535;
  blue[3] = 257 * 100;
  TIFFSetField (tif, TIFFTAG_COLORMAP, red, green, blue);
  const guint8 rows[2][4] = { { 0, 1, 2, 3 }, { 3, 2, 1, 0 } };
  for (int y = 0; y < 2; y++)
    g_assert_cmpint (TIFFWriteScanline (tif, (void *) rows[y], y, 0), ==, 1);
  TIFFClose (tif);
  g_autoptr (StTensor) t = load_ok (path, NULL);
  g_assert_cmpint (t->shape.c, ==, 3);
  g_assert_cmpfloat (at (t, 0, 0, 1), ==, 1.0f);
  g_assert_cmpfloat (at (t, 1, 0, 2), ==, 1.0f);
  g_assert_cmpfloat (at (t, 2, 0, 3), ==, 100 / 255.0f);
  g_assert_cmpfloat (at (t, 2, 1, 0), ==, 100 / 255.0f);
  g_assert_cmpfloat (at (t, 0, 1, 3), ==, 0.0f);

  g_autofree char *jpeg = tu_temp_path (fx, "jpeg.tif");
  tif = TIFFOpen (jpeg, "w");
  TIFFSetField (tif, TIFFTAG_IMAGEWIDTH, 32);
  TIFFSetField (tif, TIFFTAG_IMAGELENGTH, 16);
  TIFFSetField (tif, TIFFTAG_SAMPLESPERPIXEL, 3);
  TIFFSetField (tif, TIFFTAG_BITSPERSAMPLE, 8);
  TIFFSetField (tif, TIFFTAG_PHOTOMETRIC, PHOTOMETRIC_YCBCR);
  TIFFSetField (tif, TIFFTAG_COMPRESSION, COMPRESSION_JPEG);
  TIFFSetField (tif, TIFFTAG_JPEGCOLORMODE, JPEGCOLORMODE_RGB);
  TIFFSetField (tif, TIFFTAG_ROWSPERSTRIP, 16);
  guint8 row[32 * 3];
  for (int y = 0; y < 16; y++)
    {
      for (int x = 0; x < 32; x++)
        row[3 * x] = row[3 * x + 1] = row[3 * x + 2] = 200;
      g_assert_cmpint (TIFFWriteScanline (tif, row, y, 0), ==, 1);
    }
  TIFFClose (tif);
  g_autoptr (StTensor) j = load_ok (jpeg, NULL);
  g_assert_cmpint (j->shape.c, ==, 3);
  g_assert_cmpint (j->shape.w, ==, 32);
  for (gsize i = 0; i < st_tensor_numel (j); i++)
    g_assert_cmpfloat (fabs (j->data[i] - 200 / 255.0f), <, 3 / 255.0f);
}

/* Cut files, a corrupt strip and a huge header give one clear error. */
static void
test_tiff_bad (TuTempDir *fx, G_GNUC_UNUSED gconstpointer data)
{
  g_autofree char *path = tu_temp_path (fx, "good.tif");
  write_tiff_raw (path, 40, 30, 3, 8, COMPRESSION_ADOBE_DEFLATE, 0, 1);
  gsize size;
  g_autofree guint8 *bytes = read_bytes (path, &size);

  g_autofree char *cut = tu_temp_path (fx, "cut.tif");
  tu_write_bytes (cut, bytes, size / 2);
  assert_load_fails (cut, 0, ST_ERROR_IMAGE, "invalid TIFF file");
  tu_write_bytes (cut, bytes, 6);
  assert_load_fails (cut, 0, ST_ERROR_IMAGE, "invalid TIFF file (cannot read the header");

  /* The first strip's data (just after the 8-byte header) garbled. */
  g_autofree guint8 *bad = g_memdup2 (bytes, size);
  memset (bad + 8, 0xff, 40);
  g_autofree char *corrupt = tu_temp_path (fx, "corrupt.tif");
  tu_write_bytes (corrupt, bad, size);
  assert_load_fails (corrupt, 0, ST_ERROR_IMAGE, "invalid TIFF file (cannot decode row 0");

  assert_load_fails (path, 40 * 30 - 1, ST_ERROR_IMAGE,
                     "image is 40x30 (1200 pixels), more than the limit of 1199 pixels");
  /* A header claiming 100000 x 100000 over a few bytes of data. */
  g_autofree char *huge = tu_temp_path (fx, "huge.tif");
  write_tiff_raw (huge, 64, 64, 1, 8, COMPRESSION_NONE, 0, 1);
  TIFF *tif = TIFFOpen (huge, "r+");
  TIFFSetField (tif, TIFFTAG_IMAGEWIDTH, 100000);
  TIFFSetField (tif, TIFFTAG_IMAGELENGTH, 100000);
  TIFFRewriteDirectory (tif);
  TIFFClose (tif);
  assert_load_fails (huge, ST_DEFAULT_MAX_PIXELS, ST_ERROR_IMAGE,
                     "image is 100000x100000 (10000 megapixels), more than the limit");
}

/* ---- WebP ---------------------------------------------------------------- */

/* Lossy at quality 95: close to the source; gray comes back as RGB. */
static void
test_webp_round_trip (TuTempDir *fx, G_GNUC_UNUSED gconstpointer data)
{
  for (int channels = 1; channels <= 4; channels++)
    {
      g_autofree char *name = g_strdup_printf ("rt-%d.webp", channels);
      g_autofree char *path = tu_temp_path (fx, name);
      g_autoptr (StTensor) src = gradient (channels, 37, 53);
      save_ok (src, path, ST_FORMAT_UNKNOWN, 8, 95);
      StImageInfo info;
      g_autoptr (StTensor) back = load_ok (path, &info);
      const gboolean alpha = channels == 2 || channels == 4;
      g_assert_cmpint (info.format, ==, ST_FORMAT_WEBP);
      g_assert_cmpint (info.bit_depth, ==, 8);
      g_assert_cmpint (info.has_alpha, ==, alpha);
      g_assert_cmpint (back->shape.c, ==, alpha ? 4 : 3);
      g_assert_cmpint (back->shape.w, ==, 53);
      g_assert_cmpint (back->shape.h, ==, 37);
      double error = 0;
      for (int c = 0; c < back->shape.c; c++)
        for (int y = 0; y < 37; y++)
          for (int x = 0; x < 53; x++)
            {
              const int from = channels >= 3 ? c : c == 3 ? 1 : 0;
              error += fabs (at (back, c, y, x) - at (src, from, y, x));
            }
      error /= st_tensor_numel (back);
      g_test_message ("%d channels: mean absolute error %.4f", channels, error);
      g_assert_cmpfloat (error, <, 0.02);
    }
}

/* Quality changes the file: lower quality, smaller file. */
static void
test_webp_quality (TuTempDir *fx, G_GNUC_UNUSED gconstpointer data)
{
  g_autoptr (StTensor) src = random_levels (3, 64, 64, 255, 7);
  g_autofree char *low = tu_temp_path (fx, "low.webp");
  g_autofree char *high = tu_temp_path (fx, "high.webp");
  save_ok (src, low, ST_FORMAT_WEBP, 8, 10);
  save_ok (src, high, ST_FORMAT_WEBP, 8, 100);
  gsize low_size, high_size;
  g_autofree guint8 *a = read_bytes (low, &low_size);
  g_autofree guint8 *b = read_bytes (high, &high_size);
  g_assert_cmpuint (low_size, <, high_size);
}

/* A lossless RGBA file from libwebp itself reads back exactly. */
static void
test_webp_from_libwebp (TuTempDir *fx, G_GNUC_UNUSED gconstpointer data)
{
  const int width = 19, height = 11;
  guint8 pixels[19 * 11 * 4];
  for (int i = 0; i < width * height * 4; i++)
    pixels[i] = (guint8) (i * 37 + i / 7);
  guint8 *out = NULL;
  gsize size = WebPEncodeLosslessRGBA (pixels, width, height, width * 4, &out);
  g_assert_cmpuint (size, >, 0);
  g_autofree char *path = tu_temp_path (fx, "lossless.webp");
  tu_write_bytes (path, out, size);
  WebPFree (out);
  StImageInfo info;
  g_autoptr (StTensor) t = load_ok (path, &info);
  g_assert_true (info.has_alpha);
  g_assert_cmpint (t->shape.c, ==, 4);
  for (int y = 0; y < height; y++)
    for (int x = 0; x < width; x++)
      for (int c = 0; c < 4; c++)
        {
          const guint8 *p = pixels + (y * width + x) * 4;
          /* Lossless WebP may change the colour of fully transparent pixels. */
          if (p[3] == 0 && c < 3)
            continue;
          g_assert_cmpfloat (at (t, c, y, x), ==, p[c] / 255.0f);
        }
}

/* Files made by the formats' own command-line tools, where they are
 * installed (the test command installs libtiff-tools and webp): tiffcp
 * rewrites a strata TIFF with each compression and as tiles, cwebp encodes
 * a PNG, ImageMagick's convert writes PGM, GIF and 16-bit TIFF.  A tool
 * that is missing skips its part, saying so. */
static gboolean
run_tool (const char *const *argv)
{
  g_autofree char *path = g_find_program_in_path (argv[0]);
  if (!path)
    return FALSE;
  g_autofree char *err = NULL;
  int status = -1;
  g_autoptr (GError) error = NULL;
  g_spawn_sync (NULL, (char **) argv, NULL, G_SPAWN_SEARCH_PATH | G_SPAWN_STDOUT_TO_DEV_NULL,
                NULL, NULL, NULL, &err, &status, &error);
  g_assert_no_error (error);
  if (!g_spawn_check_wait_status (status, NULL))
    g_error ("%s failed: %s", argv[0], err);
  return TRUE;
}

/* Whether `convert` is ImageMagick's (some systems have other commands of
 * that name). */
static gboolean
have_imagemagick (void)
{
  g_autofree char *path = g_find_program_in_path ("convert");
  if (!path)
    return FALSE;
  const char *argv[] = { "convert", "-version", NULL };
  g_autofree char *out = NULL;
  int status = -1;
  return g_spawn_sync (NULL, (char **) argv, NULL, G_SPAWN_STDERR_TO_DEV_NULL, NULL, NULL,
                       &out, NULL, &status, NULL)
         && g_spawn_check_wait_status (status, NULL) && out && strstr (out, "ImageMagick");
}

static void
test_files_from_other_tools (TuTempDir *fx, G_GNUC_UNUSED gconstpointer data)
{
  GString *missing = g_string_new (NULL);
  /* tiffcp: every compression strata reads, and tiles, from a 16-bit RGB
   * and an 8-bit RGBA strata TIFF; all lossless except JPEG. */
  g_autoptr (StTensor) deep = random_levels (3, 37, 29, 65535, 41);
  g_autoptr (StTensor) rgba = random_levels (4, 23, 31, 255, 42);
  g_autofree char *deep_tif = tu_temp_path (fx, "deep.tif");
  g_autofree char *rgba_tif = tu_temp_path (fx, "rgba.tif");
  save_ok (deep, deep_tif, ST_FORMAT_TIFF, 16, 90);
  save_ok (rgba, rgba_tif, ST_FORMAT_TIFF, 8, 90);
  static const char *const ways[][4] = {
    { "-c", "lzw", NULL }, { "-c", "zip", NULL }, { "-c", "packbits", NULL },
    { "-c", "none", NULL }, { "-t", "-w", "16", NULL },
  };
  gboolean have_tiffcp = TRUE;
  for (gsize w = 0; w < G_N_ELEMENTS (ways) && have_tiffcp; w++)
    for (int k = 0; k < 2; k++)
      {
        const char *src = k ? rgba_tif : deep_tif;
        g_autofree char *dst = tu_temp_path (fx, "copy.tif");
        const char *argv[8] = { "tiffcp" };
        int n = 1;
        for (int i = 0; ways[w][i]; i++)
          argv[n++] = ways[w][i];
        argv[n++] = src, argv[n++] = dst, argv[n] = NULL;
        g_unlink (dst);
        if (!(have_tiffcp = run_tool (argv)))
          break;
        StImageInfo info;
        g_autoptr (StTensor) t = load_ok (dst, &info);
        assert_tensors_equal (t, k ? rgba : deep);
        g_assert_cmpint (info.bit_depth, ==, k ? 8 : 16);
      }
  if (have_tiffcp)
    {
      g_autoptr (StTensor) smooth = gradient (3, 40, 48);
      g_autofree char *src = tu_temp_path (fx, "smooth.tif");
      g_autofree char *dst = tu_temp_path (fx, "jpeg.tif");
      save_ok (smooth, src, ST_FORMAT_TIFF, 8, 90);
      const char *argv[] = { "tiffcp", "-c", "jpeg:95", src, dst, NULL };
      g_assert_true (run_tool (argv));
      g_autoptr (StTensor) t = load_ok (dst, NULL);
      g_assert_cmpfloat (mean_abs_error (t, smooth), <, 0.01);
    }
  else
    g_string_append (missing, " tiffcp (libtiff-tools)");

  /* cwebp: lossless from an RGBA PNG (exact where alpha is not 0), lossy
   * from an RGB one. */
  g_autofree char *png = tu_temp_path (fx, "rgba.png");
  g_autofree char *webp = tu_temp_path (fx, "cwebp.webp");
  save_ok (rgba, png, ST_FORMAT_PNG, 8, 90);
  const char *lossless[] = { "cwebp", "-quiet", "-lossless", "-exact", png, "-o", webp, NULL };
  if (run_tool (lossless))
    {
      g_autoptr (StTensor) t = load_ok (webp, NULL);
      assert_tensors_equal (t, rgba);
      g_autoptr (StTensor) smooth = gradient (3, 40, 48);
      g_autofree char *rgb_png = tu_temp_path (fx, "smooth.png");
      save_ok (smooth, rgb_png, ST_FORMAT_PNG, 8, 90);
      const char *lossy[] = { "cwebp", "-quiet", "-q", "90", rgb_png, "-o", webp, NULL };
      g_assert_true (run_tool (lossy));
      g_autoptr (StTensor) l = load_ok (webp, NULL);
      g_assert_cmpfloat (mean_abs_error (l, smooth), <, 0.02);
    }
  else
    g_string_append (missing, " cwebp (webp)");

  /* ImageMagick: PGM, GIF and 16-bit TIFF from a 16-bit gray PNG. */
  g_autoptr (StTensor) gray = random_levels (1, 13, 17, 65535, 43);
  g_autofree char *gray_png = tu_temp_path (fx, "gray16.png");
  save_ok (gray, gray_png, ST_FORMAT_PNG, 16, 90);
  g_autofree char *pgm = tu_temp_path (fx, "magick.pgm");
  const char *to_pgm[] = { "convert", gray_png, pgm, NULL };
  if (have_imagemagick () && run_tool (to_pgm))
    {
      g_autoptr (StTensor) t = load_ok (pgm, NULL);
      assert_tensors_equal (t, gray);
      g_autofree char *gif = tu_temp_path (fx, "magick.gif");
      g_autofree char *rgb8_png = tu_temp_path (fx, "levels.png");
      g_autoptr (StTensor) few = random_levels (3, 9, 11, 3, 44);  /* 64 colours at most */
      save_ok (few, rgb8_png, ST_FORMAT_PNG, 8, 90);
      const char *to_gif[] = { "convert", rgb8_png, gif, NULL };
      g_assert_true (run_tool (to_gif));
      g_autoptr (StTensor) g = load_ok (gif, NULL);
      assert_tensors_equal (g, few);
    }
  else
    g_string_append (missing, " convert (imagemagick)");
  if (missing->len)
    g_test_message ("not installed, so not tried:%s", missing->str);
  g_string_free (missing, TRUE);
}

static void
test_webp_bad (TuTempDir *fx, G_GNUC_UNUSED gconstpointer data)
{
  g_autoptr (StTensor) src = gradient (3, 48, 64);
  g_autofree char *path = tu_temp_path (fx, "good.webp");
  save_ok (src, path, ST_FORMAT_WEBP, 8, 90);
  gsize size;
  g_autofree guint8 *bytes = read_bytes (path, &size);

  g_autofree char *cut = tu_temp_path (fx, "cut.webp");
  tu_write_bytes (cut, bytes, size / 2);
  assert_load_fails (cut, 0, ST_ERROR_IMAGE, "truncated WebP file");
  tu_write_bytes (cut, bytes, 14);
  assert_load_fails (cut, 0, ST_ERROR_IMAGE, "truncated WebP file (it ends inside the header)");

  g_autofree guint8 *bad = g_memdup2 (bytes, size);
  memset (bad + 12, 'x', 16);
  g_autofree char *corrupt = tu_temp_path (fx, "corrupt.webp");
  tu_write_bytes (corrupt, bad, size);
  assert_load_fails (corrupt, 0, ST_ERROR_IMAGE, "invalid WebP file");

  assert_load_fails (path, 64 * 48 - 1, ST_ERROR_IMAGE,
                     "image is 64x48 (3072 pixels), more than the limit of 3071 pixels");

  /* A lossless header claiming 16384 x 16384 (VP8L: signature 0x2f at
   * byte 20, then 14 bits of width - 1 and 14 of height - 1). */
  guint8 tiny[4 * 4 * 4] = { 0 };
  guint8 *out = NULL;
  gsize n = WebPEncodeLosslessRGBA (tiny, 4, 4, 16, &out);
  g_assert_cmpuint (n, >, 25);
  g_assert_cmpint (out[20], ==, 0x2f);
  out[21] = out[22] = out[23] = 0xff;
  out[24] |= 0x0f;
  g_autofree char *huge = tu_temp_path (fx, "huge.webp");
  tu_write_bytes (huge, out, n);
  WebPFree (out);
  assert_load_fails (huge, ST_DEFAULT_MAX_PIXELS, ST_ERROR_IMAGE,
                     "image is 16384x16384 (268.4 megapixels), more than the limit");

  GError *error = NULL;
  g_assert_false (st_image_save (src, path, ST_FORMAT_WEBP, 8, 0, &error));
  g_assert_error (error, ST_ERROR, ST_ERROR_IMAGE);
  g_assert_true (strstr (error->message, "WebP quality 0 is out of range"));
  g_error_free (error);
}

/* ---- Metadata: ICC, EXIF and XMP handed from reader to writer ------------- */

/* make_exif_orientation's block without JPEG's "Exif\0\0": what
 * StImageMetadata holds. */
static GBytes *
make_exif (int orientation, gboolean big_endian)
{
  guint8 exif[64];
  gsize n = make_exif_orientation (exif, orientation, big_endian);
  return g_bytes_new (exif + 6, n - 6);
}

static const char test_xmp[] =
  "<x:xmpmeta xmlns:x=\"adobe:ns:meta/\"><rdf:RDF "
  "xmlns:rdf=\"http://www.w3.org/1999/02/22-rdf-syntax-ns#\"><rdf:Description "
  "xmlns:dc=\"http://purl.org/dc/elements/1.1/\" dc:format=\"strata-test\"/>"
  "</rdf:RDF></x:xmpmeta>";

static StImageMetadata *
make_metadata (gsize icc_size)
{
  StImageMetadata *m = st_image_metadata_new ();
  m->icc = tu_make_icc_profile (icc_size, "RGB ");
  m->exif = tu_make_exif (FALSE);
  m->xmp = g_bytes_new_static (test_xmp, strlen (test_xmp));
  return m;
}

static StImageMetadata *
read_metadata (const char *path)
{
  GError *error = NULL;
  StImageReader *r = st_image_reader_open (path, 0, NULL, NULL, NULL, NULL, &error);
  g_assert_no_error (error);
  StImageMetadata *m = st_image_reader_take_metadata (r);
  /* The pixels read as well as ever. */
  g_autoptr (StTensor) t = st_image_reader_read_all (r, &error);
  g_assert_no_error (error);
  g_assert_nonnull (t);
  st_image_reader_close (r);
  return m;
}

static void
assert_blob (GBytes *got, GBytes *want, const char *what)
{
  if (!want)
    {
      if (got)
        g_error ("%s: expected none, found %" G_GSIZE_FORMAT " bytes", what,
                 g_bytes_get_size (got));
      return;
    }
  if (!got)
    g_error ("%s: missing", what);
  if (!g_bytes_equal (got, want))
    g_error ("%s: %" G_GSIZE_FORMAT " bytes differ from the %" G_GSIZE_FORMAT " written", what,
             g_bytes_get_size (got), g_bytes_get_size (want));
}

static void
save_with_ok (const StTensor *t, const char *path, const StImageWriteOptions *options)
{
  GError *error = NULL;
  g_assert_true (st_image_save_with (t, path, ST_FORMAT_UNKNOWN, 8, 90, options, &error));
  g_assert_no_error (error);
}

/* What libpng, libtiff and libwebp themselves find in our files. */
static void
check_png_chunks (const char *path, const StImageMetadata *m)
{
  FILE *fp = fopen (path, "rb");
  g_assert_nonnull (fp);
  png_structp png = png_create_read_struct (PNG_LIBPNG_VER_STRING, NULL, NULL, NULL);
  png_infop info = png_create_info_struct (png);
  png_init_io (png, fp);
  png_read_info (png, info);
  png_charp name;
  int compression;
  png_bytep profile;
  png_uint_32 size;
  g_assert_true (png_get_iCCP (png, info, &name, &compression, &profile, &size));
  g_assert_cmpmem (profile, size, g_bytes_get_data (m->icc, NULL), g_bytes_get_size (m->icc));
  png_bytep exif;
  g_assert_true (png_get_eXIf_1 (png, info, &size, &exif));
  g_assert_cmpmem (exif, size, g_bytes_get_data (m->exif, NULL), g_bytes_get_size (m->exif));
  png_textp text;
  int n_text = 0;
  png_get_text (png, info, &text, &n_text);
  g_assert_cmpint (n_text, ==, 1);
  g_assert_cmpstr (text[0].key, ==, "XML:com.adobe.xmp");
  g_assert_cmpstr (text[0].text, ==, test_xmp);
  png_destroy_read_struct (&png, &info, NULL);
  fclose (fp);
}

/* The values of tu_make_exif's block, as libexif reads them. */
static void
check_exif_values (GBytes *exif, const char *path)
{
  if (!exif)
    g_error ("%s: no EXIF", path);
  g_autoptr (GByteArray) app1 = g_byte_array_new ();
  g_byte_array_append (app1, (const guint8 *) "Exif\0\0", 6);
  g_byte_array_append (app1, g_bytes_get_data (exif, NULL), g_bytes_get_size (exif));
  ExifData *ed = exif_data_new_from_data (app1->data, app1->len);
  g_assert_nonnull (ed);
  static const struct { ExifTag tag; const char *value; } want[] = {
    { EXIF_TAG_MAKE, "Canon" },
    { EXIF_TAG_EXPOSURE_TIME, "1/250 sec." },
    { EXIF_TAG_DATE_TIME_ORIGINAL, TU_EXIF_DATE },
    { EXIF_TAG_INTEROPERABILITY_INDEX, "R98" },
  };
  for (gsize i = 0; i < G_N_ELEMENTS (want); i++)
    {
      ExifEntry *e = exif_data_get_entry (ed, want[i].tag);
      char value[64] = "";
      if (e)
        exif_entry_get_value (e, value, sizeof value);
      if (strcmp (value, want[i].value) != 0)
        g_error ("%s: EXIF tag 0x%04x is '%s', expected '%s'", path, want[i].tag, value,
                 want[i].value);
    }
  exif_data_unref (ed);
}

static void
check_tiff_tags (const char *path, const StImageMetadata *m)
{
  TIFF *tif = TIFFOpen (path, "r");
  g_assert_nonnull (tif);
  guint32 size;
  void *data;
  g_assert_true (TIFFGetField (tif, TIFFTAG_ICCPROFILE, &size, &data));
  g_assert_cmpmem (data, size, g_bytes_get_data (m->icc, NULL), g_bytes_get_size (m->icc));
  g_assert_true (TIFFGetField (tif, TIFFTAG_XMLPACKET, &size, &data));
  g_assert_cmpmem (data, size, test_xmp, strlen (test_xmp));
  char *make = NULL;
  g_assert_true (TIFFGetField (tif, TIFFTAG_MAKE, &make));
  g_assert_cmpstr (make, ==, "Canon");
  /* libtiff's own reading of the EXIF directory copied in (it does not
   * know the interoperability pointer: no warning about it). */
  toff_t exif_offset = 0;
  g_assert_true (TIFFGetField (tif, TIFFTAG_EXIFIFD, &exif_offset));
  TIFFErrorHandler warn = TIFFSetWarningHandler (NULL);
  g_assert_true (TIFFReadEXIFDirectory (tif, exif_offset));
  TIFFSetWarningHandler (warn);
  char *date = NULL;
  g_assert_true (TIFFGetField (tif, EXIFTAG_DATETIMEORIGINAL, &date));
  g_assert_cmpstr (date, ==, TU_EXIF_DATE);
  TIFFClose (tif);
}

static void
check_webp_chunks (const char *path, const StImageMetadata *m)
{
  gsize size;
  g_autofree guint8 *file = read_bytes (path, &size);
  WebPData data = { file, size };
  WebPDemuxer *demux = WebPDemux (&data);
  g_assert_nonnull (demux);
  static const char *const fourcc[] = { "ICCP", "EXIF", "XMP " };
  GBytes *const want[] = { m->icc, m->exif, m->xmp };
  for (int i = 0; i < 3; i++)
    {
      WebPChunkIterator chunk;
      g_assert_true (WebPDemuxGetChunk (demux, fourcc[i], 1, &chunk));
      g_assert_cmpmem (chunk.chunk.bytes, chunk.chunk.size, g_bytes_get_data (want[i], NULL),
                       g_bytes_get_size (want[i]));
      WebPDemuxReleaseChunkIterator (&chunk);
    }
  WebPDemuxDelete (demux);
}

/* Each format keeps what it can store: an ICC profile, EXIF and XMP, with
 * and without alpha, EXIF of either byte order.  A TIFF holds EXIF as
 * directories of its own: the block read back is made anew, its values
 * the same. */
static void
test_metadata_round_trip (TuTempDir *fx, G_GNUC_UNUSED gconstpointer data)
{
  g_autoptr (StImageMetadata) m = make_metadata (3000);
  const StImageWriteOptions options = { m, FALSE };
  static const char *const names[] = { "m.png", "m.jpg", "m.tif", "m.webp" };
  for (int channels = 3; channels <= 4; channels++)
    for (gsize i = 0; i < G_N_ELEMENTS (names); i++)
      {
        g_clear_pointer (&m->exif, g_bytes_unref);
        m->exif = tu_make_exif (channels == 4);
        g_autoptr (StTensor) t = gradient (channels, 12, 16);
        g_autofree char *path = tu_temp_path (fx, names[i]);
        save_with_ok (t, path, &options);
        g_autoptr (StImageMetadata) got = read_metadata (path);
        const gboolean tiff = g_str_has_suffix (path, ".tif");
        assert_blob (got->icc, m->icc, path);
        if (tiff)
          check_exif_values (got->exif, path);
        else
          assert_blob (got->exif, m->exif, path);
        assert_blob (got->xmp, m->xmp, path);
        if (g_str_has_suffix (path, ".png"))
          check_png_chunks (path, m);
        else if (tiff)
          check_tiff_tags (path, m);
        else if (g_str_has_suffix (path, ".webp"))
          check_webp_chunks (path, m);
      }
  /* Without options, or without metadata, nothing is written. */
  for (gsize i = 0; i < G_N_ELEMENTS (names); i++)
    {
      g_autoptr (StTensor) t = gradient (3, 12, 16);
      g_autofree char *path = tu_temp_path (fx, names[i]);
      save_with_ok (t, path, NULL);
      g_autoptr (StImageMetadata) got = read_metadata (path);
      g_assert_true (!got->icc && !got->exif && !got->xmp);
    }
}

/* The number of APP2 markers of a JPEG, and whether it has JFIF's APP0. */
static int
count_jpeg_app2 (const char *path, gboolean *jfif)
{
  struct jpeg_decompress_struct cinfo;
  struct jpeg_error_mgr jerr;
  FILE *fp = fopen (path, "rb");
  g_assert_nonnull (fp);
  cinfo.err = jpeg_std_error (&jerr);
  jpeg_create_decompress (&cinfo);
  jpeg_stdio_src (&cinfo, fp);
  jpeg_save_markers (&cinfo, JPEG_APP0 + 2, 0xffff);
  jpeg_read_header (&cinfo, TRUE);
  int n = 0;
  for (jpeg_saved_marker_ptr mk = cinfo.marker_list; mk; mk = mk->next)
    n += mk->marker == JPEG_APP0 + 2;
  *jfif = cinfo.saw_JFIF_marker;
  jpeg_destroy_decompress (&cinfo);
  fclose (fp);
  return n;
}

/* A profile larger than one marker holds is split over several APP2
 * markers, and put back together when read; EXIF's APP1 comes first. */
static void
test_metadata_jpeg_large_icc (TuTempDir *fx, G_GNUC_UNUSED gconstpointer data)
{
  g_autoptr (StImageMetadata) m = make_metadata (200000);
  const StImageWriteOptions options = { m, FALSE };
  g_autoptr (StTensor) t = gradient (3, 8, 8);
  g_autofree char *path = tu_temp_path (fx, "large.jpg");
  save_with_ok (t, path, &options);
  gboolean jfif;
  g_assert_cmpint (count_jpeg_app2 (path, &jfif), ==, 4);   /* 200000 / 65519 */
  g_assert_false (jfif);
  g_autoptr (StImageMetadata) got = read_metadata (path);
  assert_blob (got->icc, m->icc, path);
  assert_blob (got->exif, m->exif, path);
}

/* A JPEG the reader turned upright hands on EXIF saying so (orientation 1),
 * the rest of the block unchanged; one it did not turn, its EXIF as it is. */
static void
test_metadata_orientation_reset (TuTempDir *fx, G_GNUC_UNUSED gconstpointer data)
{
  guint8 pixels[8 * 6 * 3] = { 0 };
  for (int orientation = 1; orientation <= 8; orientation++)
    for (int big_endian = 0; big_endian <= 1; big_endian++)
      {
        g_autofree char *path = tu_temp_path (fx, "turned.jpg");
        write_jpeg_raw (path, 8, 6, pixels,
                        &(JpegFixture) { 3, JCS_RGB, .orientation = orientation,
                                         .big_endian_exif = big_endian });
        g_autoptr (StImageMetadata) got = read_metadata (path);
        g_autoptr (GBytes) upright = make_exif (1, big_endian);
        assert_blob (got->exif, upright, path);
      }
}

/* Malformed and oversized blobs are dropped without failing the image: an
 * EXIF block that is not a TIFF structure, a profile with a wrong size or
 * signature, a profile over ST_IMAGE_METADATA_MAX_BYTES (split over 70
 * APP2 markers); and when writing, a profile for other channels than the
 * image's (an RGB profile on a gray PNG, which libpng would refuse). */
static void
test_metadata_bad_dropped (TuTempDir *fx, G_GNUC_UNUSED gconstpointer data)
{
  g_autofree char *path = tu_temp_path (fx, "bad.jpg");
  static const struct {
    gsize icc_size;
    int damage;                /* 0 none, 1 signature, 2 declared size */
  } cases[] = {
    { 600, 1 }, { 600, 2 }, { ST_IMAGE_METADATA_MAX_BYTES + 4, 0 },
  };
  for (gsize i = 0; i < G_N_ELEMENTS (cases); i++)
    {
      g_autoptr (GBytes) icc = tu_make_icc_profile (cases[i].icc_size, "RGB ");
      gsize size;
      const guint8 *good = g_bytes_get_data (icc, &size);
      guint8 *bytes = g_memdup2 (good, size);
      if (cases[i].damage == 1)
        memcpy (bytes + 36, "acsq", 4);
      else if (cases[i].damage == 2)
        bytes[3] ^= 4;
      struct jpeg_compress_struct cinfo;
      struct jpeg_error_mgr jerr;
      FILE *fp = fopen (path, "wb");
      g_assert_nonnull (fp);
      cinfo.err = jpeg_std_error (&jerr);
      jpeg_create_compress (&cinfo);
      jpeg_stdio_dest (&cinfo, fp);
      cinfo.image_width = 4;
      cinfo.image_height = 2;
      cinfo.input_components = 3;
      cinfo.in_color_space = JCS_RGB;
      jpeg_set_defaults (&cinfo);
      jpeg_start_compress (&cinfo, TRUE);
      static const guint8 not_tiff[] = "Exif\0\0XX*\0 not a TIFF structure";
      jpeg_write_marker (&cinfo, JPEG_APP0 + 1, not_tiff, sizeof not_tiff);
      jpeg_write_icc_profile (&cinfo, bytes, (unsigned int) size);
      guint8 row[12] = { 200, 100, 50, 200, 100, 50, 200, 100, 50, 200, 100, 50 };
      JSAMPROW rows[1] = { row };
      for (int y = 0; y < 2; y++)
        jpeg_write_scanlines (&cinfo, rows, 1);
      jpeg_finish_compress (&cinfo);
      jpeg_destroy_compress (&cinfo);
      g_assert_cmpint (fclose (fp), ==, 0);
      g_free (bytes);

      g_autoptr (StImageMetadata) got = read_metadata (path);
      g_assert_null (got->icc);
      g_assert_null (got->exif);
      g_autoptr (StTensor) t = load_ok (path, NULL);
      g_assert_cmpfloat (fabs (at (t, 0, 1, 3) - 200 / 255.0), <, 0.03);
    }

  g_autoptr (StImageMetadata) m = make_metadata (1000);
  const StImageWriteOptions options = { m, FALSE };
  g_autoptr (StTensor) gray = gradient (1, 4, 4);
  g_autofree char *gray_path = tu_temp_path (fx, "gray.png");
  save_with_ok (gray, gray_path, &options);
  g_autoptr (StImageMetadata) got = read_metadata (gray_path);
  g_assert_null (got->icc);
  assert_blob (got->exif, m->exif, gray_path);
  /* A gray profile on a gray image stays. */
  g_clear_pointer (&m->icc, g_bytes_unref);
  m->icc = tu_make_icc_profile (1000, "GRAY");
  save_with_ok (gray, gray_path, &options);
  g_autoptr (StImageMetadata) got_gray = read_metadata (gray_path);
  assert_blob (got_gray->icc, m->icc, gray_path);

  /* EXIF whose directory pointer leads outside the block: a TIFF gets the
   * camera's name but no EXIF directory entry pointing nowhere. */
  gsize size;
  g_autoptr (GBytes) good = tu_make_exif (FALSE);
  const guint8 *good_data = g_bytes_get_data (good, &size);
  guint8 *broken = g_memdup2 (good_data, size);
  memset (broken + 30, 0xff, 4);   /* IFD0's second entry's value: the pointer */
  g_clear_pointer (&m->exif, g_bytes_unref);
  m->exif = g_bytes_new_take (broken, size);
  g_autofree char *tiff_path = tu_temp_path (fx, "broken-exif.tif");
  save_with_ok (gray, tiff_path, &options);
  g_autoptr (StImageMetadata) got_tiff = read_metadata (tiff_path);
  g_assert_null (got_tiff->exif);
  TIFF *tif = TIFFOpen (tiff_path, "r");
  g_assert_nonnull (tif);
  char *make = NULL;
  toff_t exif_offset;
  g_assert_true (TIFFGetField (tif, TIFFTAG_MAKE, &make));
  g_assert_cmpstr (make, ==, "Canon");
  g_assert_false (TIFFGetField (tif, TIFFTAG_EXIFIFD, &exif_offset));
  TIFFClose (tif);
}

/* Lossless WebP gives back every 8-bit value, RGB and RGBA; JPEG refuses
 * to be lossless, and writes nothing. */
static void
test_webp_lossless (TuTempDir *fx, G_GNUC_UNUSED gconstpointer data)
{
  const StImageWriteOptions lossless = { NULL, TRUE };
  for (int channels = 3; channels <= 4; channels++)
    {
      g_autoptr (StTensor) t = random_levels (channels, 17, 23, 255, 40 + channels);
      g_autofree char *path = tu_temp_path (fx, "exact.webp");
      save_with_ok (t, path, &lossless);
      g_autoptr (StTensor) back = load_ok (path, NULL);
      assert_tensors_equal (back, t);
    }
  g_autoptr (StTensor) t = gradient (3, 4, 4);
  g_autofree char *jpeg = tu_temp_path (fx, "lossless.jpg");
  GError *error = NULL;
  g_assert_false (st_image_save_with (t, jpeg, ST_FORMAT_UNKNOWN, 8, 90, &lossless, &error));
  g_assert_error (error, ST_ERROR, ST_ERROR_IMAGE);
  g_assert_true (g_str_has_prefix (error->message, jpeg));
  g_assert_nonnull (strstr (error->message, "JPEG cannot be written lossless"));
  g_error_free (error);
  g_assert_false (g_file_test (jpeg, G_FILE_TEST_EXISTS));
  /* PNG and TIFF are lossless anyway: accepted. */
  g_autofree char *png = tu_temp_path (fx, "lossless.png");
  save_with_ok (t, png, &lossless);
}

/* ---- HEIC and AVIF ------------------------------------------------------------ */

#ifdef ST_HAVE_LIBHEIF

static const struct {
  const char *name;
  enum heif_compression_format compression;
} heif_kinds[] = {
  { "HEIC", heif_compression_HEVC },
  { "AVIF", heif_compression_AV1 },
};

/* Skips the test, saying why, when libheif has no encoder for kind i. */
static gboolean
heif_encoder_missing (gsize i)
{
  if (heif_have_encoder_for_format (heif_kinds[i].compression))
    return FALSE;
  g_autofree char *why = g_strdup_printf ("libheif has no %s encoder to make the fixtures",
                                          heif_kinds[i].name);
  g_test_skip (why);
  return TRUE;
}

/* 8-bit RGB and RGBA for both codecs, and 10-bit read back as 16-bit
 * values: lossy, so within a few levels on a smooth picture.  Debian's aom
 * 3.6 aborts on an assertion when libheif gives it 10-bit input, so the
 * deep fixtures are HEIC only; libheif hands both codecs' deep images over
 * alike. */
static void
test_heif_read (TuTempDir *fx, G_GNUC_UNUSED gconstpointer data)
{
  heif_init (NULL);
  static const struct {
    int channels, bits;
  } layouts[] = { { 3, 8 }, { 4, 8 }, { 3, 10 }, { 4, 10 } };
  for (gsize k = 0; k < G_N_ELEMENTS (heif_kinds); k++)
    {
      if (heif_encoder_missing (k))
        continue;
      for (gsize i = 0; i < G_N_ELEMENTS (layouts); i++)
        {
          if (heif_kinds[k].compression == heif_compression_AV1 && layouts[i].bits > 8)
            continue;
          g_autoptr (StTensor) src = gradient (layouts[i].channels, 48, 64);
          g_autofree char *name = g_strdup_printf ("%s-%d-%d.%s", heif_kinds[k].name,
                                                  layouts[i].channels, layouts[i].bits,
                                                  k == 0 ? "heic" : "avif");
          g_autofree char *path = tu_temp_path (fx, name);
          g_assert_true (tu_write_heif (path, src, k == 1, layouts[i].bits, 1));
          StImageInfo info;
          g_autoptr (StTensor) t = load_ok (path, &info);
          g_test_message ("%s: mean error %.4f", name, mean_abs_error (src, t));
          g_assert_cmpint (info.format, ==, ST_FORMAT_HEIF);
          g_assert_cmpint (info.bit_depth, ==, layouts[i].bits > 8 ? 16 : 8);
          g_assert_cmpint (info.has_alpha, ==, layouts[i].channels == 4);
          g_assert_true (st_shape_equal (t->shape, src->shape));
          g_assert_cmpfloat (mean_abs_error (src, t), <, 0.01);
          /* 10-bit values are not rounded to 8 bits. */
          if (layouts[i].bits > 8)
            {
              gboolean finer = FALSE;
              for (gsize j = 0; j < st_tensor_numel (t) && !finer; j++)
                finer = fabsf (t->data[j] * 255.0f - roundf (t->data[j] * 255.0f)) > 0.01f;
              g_assert_true (finer);
            }
        }
    }
  heif_deinit ();
}

/* Four flat quarters, so that lossy coding keeps each one's colour. */
static StTensor *
quarters (int height, int width)
{
  StTensor *t = st_tensor_new0 (1, 3, height, width);
  for (int y = 0; y < height; y++)
    for (int x = 0; x < width; x++)
      {
        const int q = (y >= height / 2) * 2 + (x >= width / 2);
        for (int c = 0; c < 3; c++)
          set_at (t, c, y, x, corner_colours[q][c] / 255.0f);
      }
  return t;
}

/* irot and imir are applied: every orientation gives the picture that a
 * JPEG with that EXIF orientation gives. */
static void
test_heif_orientation (TuTempDir *fx, G_GNUC_UNUSED gconstpointer data)
{
  heif_init (NULL);
  const int w = 64, h = 32;
  g_autoptr (StTensor) src = quarters (h, w);
  for (gsize k = 0; k < G_N_ELEMENTS (heif_kinds); k++)
    {
      if (heif_encoder_missing (k))
        continue;
      for (int o = 1; o <= 8; o++)
        {
          g_autofree char *name = g_strdup_printf ("o%d-%s", o, heif_kinds[k].name);
          g_autofree char *path = tu_temp_path (fx, name);
          g_assert_true (tu_write_heif (path, src, k == 1, 8, o));
          g_autoptr (StTensor) t = load_ok (path, NULL);
          const gboolean turned = o >= 5;
          g_assert_cmpint (t->shape.w, ==, turned ? h : w);
          g_assert_cmpint (t->shape.h, ==, turned ? w : h);
          /* A few pixels in from each corner, away from chroma bleeding. */
          const int ow = t->shape.w, oh = t->shape.h, m = 4;
          check_corner (t, m, m, orientation_corners[o][TL], o);
          check_corner (t, m, ow - 1 - m, orientation_corners[o][TR], o);
          check_corner (t, oh - 1 - m, m, orientation_corners[o][BL], o);
          check_corner (t, oh - 1 - m, ow - 1 - m, orientation_corners[o][BR], o);
        }
    }
  heif_deinit ();
}

/* A HEIC's or AVIF's ICC profile, EXIF and XMP are read and handed on to
 * the output like any format's; the EXIF of a picture stored turned (irot
 * with EXIF orientation 6, as a phone writes it) says 1, as the pixels
 * are upright.  A file without them gives none. */
static void
test_heif_metadata (TuTempDir *fx, G_GNUC_UNUSED gconstpointer data)
{
  heif_init (NULL);
  g_autoptr (StTensor) src = quarters (32, 64);
  g_autoptr (GBytes) icc = tu_make_icc_profile (3000, "RGB ");
  g_autoptr (GBytes) xmp = g_bytes_new_static (test_xmp, strlen (test_xmp));
  for (gsize k = 0; k < G_N_ELEMENTS (heif_kinds); k++)
    {
      if (heif_encoder_missing (k))
        continue;
      for (int big = 0; big < 2; big++)
        {
          g_autoptr (GBytes) turned = make_exif (6, big);
          g_autoptr (GBytes) upright = make_exif (1, big);
          g_autofree char *name = g_strdup_printf ("meta%d-%s", big, heif_kinds[k].name);
          g_autofree char *path = tu_temp_path (fx, name);
          g_assert_true (tu_write_heif_with (path, src, k == 1, 8, 6, icc, turned, xmp));
          StImageMetadata *m = read_metadata (path);
          assert_blob (m->icc, icc, "ICC profile");
          assert_blob (m->exif, upright, "EXIF");
          assert_blob (m->xmp, xmp, "XMP");
          st_image_metadata_free (m);

          /* Through a pipeline to a PNG: the same three, pixels turned. */
          g_autofree char *png = g_strconcat (path, ".png", NULL);
          g_autoptr (StTensor) t = load_ok (path, NULL);
          g_assert_cmpint (t->shape.h, ==, 64);
          TuResult r = tu_run (g_getenv ("STRATA_EXE"), "run", "sharpen", path, "-o", png, NULL);
          g_assert_cmpint (r.status, ==, 0);
          tu_result_clear (&r);
          StImageMetadata *out = read_metadata (png);
          assert_blob (out->icc, icc, "PNG's ICC profile");
          assert_blob (out->exif, upright, "PNG's EXIF");
          assert_blob (out->xmp, xmp, "PNG's XMP");
          st_image_metadata_free (out);
        }
      g_autofree char *bare = tu_temp_path (fx, heif_kinds[k].name);
      g_assert_true (tu_write_heif (bare, src, k == 1, 8, 1));
      StImageMetadata *none = read_metadata (bare);
      assert_blob (none->icc, NULL, "ICC profile");
      assert_blob (none->exif, NULL, "EXIF");
      assert_blob (none->xmp, NULL, "XMP");
      st_image_metadata_free (none);
    }
  heif_deinit ();
}

/* Offset of the first box of this type in a file, or -1. */
static gssize
find_box (const guint8 *bytes, gsize size, const char *type)
{
  for (gsize i = 4; i + 4 <= size; i++)
    if (memcmp (bytes + i, type, 4) == 0)
      return (gssize) i - 4;
  return -1;
}

static void
test_heif_bad (TuTempDir *fx, G_GNUC_UNUSED gconstpointer data)
{
  heif_init (NULL);
  for (gsize k = 0; k < G_N_ELEMENTS (heif_kinds); k++)
    {
      if (heif_encoder_missing (k))
        continue;
      const char *kind = heif_kinds[k].name;
      g_autoptr (StTensor) src = gradient (3, 48, 64);
      g_autofree char *good = tu_temp_path (fx, k == 0 ? "good.heic" : "good.avif");
      g_assert_true (tu_write_heif (good, src, k == 1, 8, 1));
      gsize size;
      g_autofree guint8 *bytes = read_bytes (good, &size);

      g_autofree char *reason = g_strdup_printf ("%s file", kind);
      g_autofree char *cut = tu_temp_path (fx, "cut");
      for (gsize n = 12; n < size; n += n < 64 ? 1 : size / 7)
        {
          tu_write_bytes (cut, bytes, n);
          assert_load_fails (cut, 0, ST_ERROR_IMAGE, reason);
        }
      g_autofree guint8 *bad = g_memdup2 (bytes, size);
      const gssize meta = find_box (bad, size, "meta");
      g_assert_cmpint (meta, >, 0);
      memset (bad + meta + 12, 0xee, 24);
      g_autofree char *corrupt = tu_temp_path (fx, "corrupt");
      tu_write_bytes (corrupt, bad, size);
      g_autofree char *invalid = g_strdup_printf ("invalid %s file (", kind);
      assert_load_fails (corrupt, 0, ST_ERROR_IMAGE, invalid);

      /* --max-pixels from the declared size, with the limit one under. */
      assert_load_fails (good, 64 * 48 - 1, ST_ERROR_IMAGE,
                         "image is 64x48 (3072 pixels), more than the limit of 3071 pixels");
      /* Every image spatial extent (the image's, its tiles') set to 20000
       * x 20000: refused before decoding (the coded image is 64x48). */
      memcpy (bad, bytes, size);
      const guint8 big[8] = { 0, 0, 0x4e, 0x20, 0, 0, 0x4e, 0x20 };
      int n_ispe = 0;
      for (gssize at = 0, ispe; (ispe = find_box (bad + at, size - at, "ispe")) >= 0;
           at += ispe + 20, n_ispe++)
        memcpy (bad + at + ispe + 12, big, sizeof big);
      g_assert_cmpint (n_ispe, >, 0);
      g_autofree char *huge = tu_temp_path (fx, "huge");
      tu_write_bytes (huge, bad, size);
      assert_load_fails (huge, ST_DEFAULT_MAX_PIXELS, ST_ERROR_IMAGE,
                         "image is 20000x20000 (400 megapixels), more than the limit");

      /* Writing is refused before any file is made. */
      g_autofree char *out = tu_temp_path (fx, "out.heic");
      g_autoptr (GError) error = NULL;
      g_assert_false (st_image_save (src, out, ST_FORMAT_UNKNOWN, 8, 90, &error));
      g_assert_nonnull (strstr (error->message, "cannot write HEIC or AVIF"));
      g_assert_false (g_file_test (out, G_FILE_TEST_EXISTS));
    }
  heif_deinit ();
}

#else /* !ST_HAVE_LIBHEIF */

/* Without libheif a HEIC or AVIF is still recognised, and the message says
 * what strata needs. */
static void
test_heif_missing (TuTempDir *fx, G_GNUC_UNUSED gconstpointer data)
{
  g_autofree char *heic = tu_temp_path (fx, "photo");
  tu_write_bytes (heic, "\0\0\0\x18" "ftypheic\0\0\0\0mif1heic", 24);
  assert_load_fails (heic, 0, ST_ERROR_IMAGE,
                     "HEIC images need strata built with libheif (libheif-dev)");
  g_autofree char *avif = tu_temp_path (fx, "photo.avif");
  tu_write_bytes (avif, "\0\0\0\x1c" "ftypavif\0\0\0\0avifmif1miaf", 28);
  assert_load_fails (avif, 0, ST_ERROR_IMAGE,
                     "AVIF images need strata built with libheif (libheif-dev)");
}

#endif /* ST_HAVE_LIBHEIF */

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);

#define ADD(name, fn) g_test_add (name, TuTempDir, NULL, temp_dir_setup, fn, tu_temp_dir_teardown)
  g_test_add_func ("/image/format-from-name", test_format_from_name);
  ADD ("/image/png/round-trip-8", test_png_round_trip_8);
  ADD ("/image/png/round-trip-16", test_png_round_trip_16);
  ADD ("/image/png/16-bit-samples", test_png_16_bit_samples);
  ADD ("/image/png/palette", test_png_palette);
  ADD ("/image/png/gray-low-depth", test_png_gray_low_depth);
  ADD ("/image/png/trns-colour", test_png_trns_colour);
  ADD ("/image/png/interlaced", test_png_interlaced);
  ADD ("/image/format-by-signature", test_format_by_signature);
  ADD ("/image/format-table-messages", test_format_table_messages);
  ADD ("/image/jpeg/round-trip", test_jpeg_round_trip);
  ADD ("/image/jpeg/drops-alpha", test_jpeg_drops_alpha);
  ADD ("/image/jpeg/progressive", test_jpeg_progressive);
  ADD ("/image/jpeg/too-many-scans", test_jpeg_too_many_scans);
  ADD ("/image/jpeg/exif-orientation", test_jpeg_exif_orientation);
  ADD ("/image/jpeg/orientation-exact", test_jpeg_orientation_exact);
  ADD ("/image/jpeg/cmyk", test_jpeg_cmyk);
  ADD ("/image/bad/missing-file", test_missing_file);
  ADD ("/image/bad/empty-file", test_empty_file);
  ADD ("/image/bad/text-named-jpeg", test_text_named_jpeg);
  ADD ("/image/bad/random-bytes", test_random_bytes);
  ADD ("/image/bad/truncated-png", test_truncated_png);
  ADD ("/image/bad/truncated-idat", test_truncated_idat);
  ADD ("/image/bad/truncated-jpeg", test_truncated_jpeg);
  ADD ("/image/bad/every-prefix-and-bit-flips", test_every_prefix_and_bit_flips);
  ADD ("/image/bad/huge-png-header", test_huge_png_header);
  ADD ("/image/bad/max-pixels", test_max_pixels);
  ADD ("/image/bad/silent", test_silent);
  ADD ("/image/pnm/round-trip", test_pnm_round_trip);
  ADD ("/image/pnm/names", test_pnm_names);
  ADD ("/image/pnm/hand-written", test_pnm_hand_written);
  ADD ("/image/pnm/bad", test_pnm_bad);
  ADD ("/image/pnm/max-pixels", test_pnm_max_pixels);
  ADD ("/image/gif/read", test_gif_read);
  ADD ("/image/gif/bad", test_gif_bad);
  ADD ("/image/save/missing-folder", test_save_missing_folder);
  ADD ("/image/save/bad-arguments", test_save_bad_arguments);
  ADD ("/image/save/rename-fails", test_save_rename_fails);
  ADD ("/image/save/replaces", test_save_replaces);
  ADD ("/image/save/write-error", test_save_write_error);
  ADD ("/image/save/clamps", test_save_clamps);
  ADD ("/image/tiff/round-trip-8", test_tiff_round_trip_8);
  ADD ("/image/tiff/round-trip-16", test_tiff_round_trip_16);
  ADD ("/image/tiff/from-libtiff", test_tiff_from_libtiff);
  ADD ("/image/tiff/read-by-libtiff", test_tiff_read_by_libtiff);
  ADD ("/image/tiff/palette-and-jpeg", test_tiff_palette_and_jpeg);
  ADD ("/image/tiff/bad", test_tiff_bad);
  ADD ("/image/webp/round-trip", test_webp_round_trip);
  ADD ("/image/webp/quality", test_webp_quality);
  ADD ("/image/webp/from-libwebp", test_webp_from_libwebp);
  ADD ("/image/webp/bad", test_webp_bad);
  ADD ("/image/files-from-other-tools", test_files_from_other_tools);
  ADD ("/image/webp/lossless", test_webp_lossless);
  ADD ("/image/metadata/round-trip", test_metadata_round_trip);
  ADD ("/image/metadata/jpeg-large-icc", test_metadata_jpeg_large_icc);
  ADD ("/image/metadata/orientation-reset", test_metadata_orientation_reset);
  ADD ("/image/metadata/bad-dropped", test_metadata_bad_dropped);
#ifdef ST_HAVE_LIBHEIF
  ADD ("/image/heif/read", test_heif_read);
  ADD ("/image/heif/orientation", test_heif_orientation);
  ADD ("/image/heif/metadata", test_heif_metadata);
  ADD ("/image/heif/bad", test_heif_bad);
#else
  ADD ("/image/heif/missing", test_heif_missing);
#endif
#undef ADD

  return g_test_run ();
}
