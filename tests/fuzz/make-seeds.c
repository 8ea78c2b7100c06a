/* strata — writes the generated part of the fuzz seed corpus.
 *
 *   make-fuzz-seeds CORPUS_DIR     (tests/fuzz/corpus in the source tree)
 *
 * Writes CORPUS_DIR/{image,pipeline,weights,idx,cgroup}/seed-*: small valid files
 * of every layout each parser knows, and a few malformed ones.  Files of
 * other names (reproducers of fixed findings) are left alone.  The output
 * is the same on every run, so the committed corpus can be regenerated and
 * compared. */
#include "context.h"
#include "image.h"
#include "../testutil.h"
#include "weights.h"

#include <gio/gio.h>
#include <glib/gstdio.h>
#include <stdio.h>               /* before jpeglib.h, which uses FILE */
#include <stdlib.h>
#include <string.h>
#include <jpeglib.h>
#include <png.h>
#include <gif_lib.h>
#include <tiffio.h>
#include <webp/encode.h>

#include "config.h"
#ifdef ST_HAVE_LIBHEIF
#include <libheif/heif.h>
#endif

static const char *corpus_dir;

static void
write_seed (const char *harness, const char *name, const void *data, gsize size)
{
  g_autofree char *dir = g_build_filename (corpus_dir, harness, NULL);
  g_assert (g_mkdir_with_parents (dir, 0755) == 0);
  g_autofree char *file = g_strconcat ("seed-", name, NULL);
  g_autofree char *path = g_build_filename (dir, file, NULL);
  g_autoptr (GError) error = NULL;
  if (!g_file_set_contents (path, data, (gssize) size, &error))
    g_error ("%s", error->message);
}

static guint8
pattern (int x, int y, int c)
{
  return (guint8) (x * 37 + y * 91 + c * 53 + x * y * 7);
}

/* ---- PNG ---------------------------------------------------------------- */

static void
png_append (png_structp png, png_bytep data, size_t length)
{
  g_byte_array_append (png_get_io_ptr (png), data, (guint) length);
}

static void
png_flush_nothing (G_GNUC_UNUSED png_structp png)
{
}

/* A width x height PNG of colour type colour at depth bits; palette images
 * get a palette of 2^depth entries and, with trns, transparency. */
static GByteArray *
make_png (int width, int height, int colour, int depth, gboolean interlaced, gboolean trns)
{
  GByteArray *out = g_byte_array_new ();
  png_structp png = png_create_write_struct (PNG_LIBPNG_VER_STRING, NULL, NULL, NULL);
  png_infop info = png_create_info_struct (png);
  g_assert (png && info);
  if (setjmp (png_jmpbuf (png)))
    g_error ("libpng failed");
  png_set_write_fn (png, out, png_append, png_flush_nothing);
  png_set_IHDR (png, info, width, height, depth, colour,
                interlaced ? PNG_INTERLACE_ADAM7 : PNG_INTERLACE_NONE,
                PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
  if (colour == PNG_COLOR_TYPE_PALETTE)
    {
      png_color palette[256];
      png_byte alpha[256];
      const int entries = 1 << depth;
      for (int i = 0; i < entries; i++)
        {
          palette[i] = (png_color) { pattern (i, 0, 0), pattern (i, 1, 1), pattern (i, 2, 2) };
          alpha[i] = (png_byte) (255 - i * 255 / entries);
        }
      png_set_PLTE (png, info, palette, entries);
      if (trns)
        png_set_tRNS (png, info, alpha, entries, NULL);
    }
  else if (trns)
    {
      png_color_16 key = { .gray = 1, .red = 1, .green = 2, .blue = 3 };
      png_set_tRNS (png, info, NULL, 0, &key);
    }
  png_write_info (png, info);

  const int channels = png_get_channels (png, info);
  const gsize row_bytes = png_get_rowbytes (png, info);
  guint8 *row = g_malloc0 (row_bytes);
  const int passes = png_set_interlace_handling (png);
  for (int pass = 0; pass < passes; pass++)
    for (int y = 0; y < height; y++)
      {
        memset (row, 0, row_bytes);
        for (int x = 0; x < width; x++)
          for (int c = 0; c < channels; c++)
            {
              const int v = pattern (x, y, c), sample = x * channels + c;
              if (depth == 16)
                {
                  row[2 * sample] = (guint8) v;
                  row[2 * sample + 1] = (guint8) (v * 3);
                }
              else if (depth == 8)
                row[sample] = (guint8) v;
              else
                {
                  /* Samples of 1, 2 or 4 bits, packed from the high bit. */
                  const int per_byte = 8 / depth, shift = 8 - depth * (sample % per_byte + 1);
                  row[sample / per_byte] |= (guint8) ((v & ((1 << depth) - 1)) << shift);
                }
            }
        png_write_row (png, row);
      }
  png_write_end (png, NULL);
  png_destroy_write_struct (&png, &info);
  g_free (row);
  return out;
}

static void
png_seed (const char *name, int width, int height, int colour, int depth,
          gboolean interlaced, gboolean trns)
{
  g_autoptr (GByteArray) png = make_png (width, height, colour, depth, interlaced, trns);
  write_seed ("image", name, png->data, png->len);
}

/* ---- JPEG --------------------------------------------------------------- */

/* An APP1 EXIF block holding only an orientation tag, in either byte order. */
static GByteArray *
make_exif (int orientation, gboolean big_endian)
{
  GByteArray *a = g_byte_array_new ();
  g_byte_array_append (a, (const guint8 *) "Exif\0\0", 6);
#define PUT16(v) do { guint16 v_ = (v); guint8 b_[2] = { big_endian ? v_ >> 8 : v_ & 0xff, \
                        big_endian ? v_ & 0xff : v_ >> 8 }; g_byte_array_append (a, b_, 2); } while (0)
#define PUT32(v) do { guint32 w_ = (v); if (big_endian) { PUT16 (w_ >> 16); PUT16 (w_ & 0xffff); } \
                      else { PUT16 (w_ & 0xffff); PUT16 (w_ >> 16); } } while (0)
  g_byte_array_append (a, (const guint8 *) (big_endian ? "MM" : "II"), 2);
  PUT16 (42);
  PUT32 (8);                   /* IFD0 right after the TIFF header */
  PUT16 (1);                   /* one entry */
  PUT16 (0x0112);              /* Orientation */
  PUT16 (3);                   /* SHORT */
  PUT32 (1);
  PUT16 (orientation);
  PUT16 (0);
  PUT32 (0);                   /* no next IFD */
#undef PUT16
#undef PUT32
  return a;
}

typedef struct {
  int components;              /* 1 gray, 3 YCbCr, 4 CMYK */
  gboolean subsample;          /* 4:2:0 rather than 4:4:4 */
  gboolean progressive;
  int restart_rows;
  int orientation;             /* 0: no EXIF */
  gboolean exif_big_endian;
} JpegLayout;

static GByteArray *
make_jpeg (int width, int height, const JpegLayout *layout)
{
  struct jpeg_compress_struct cinfo;
  struct jpeg_error_mgr jerr;
  unsigned char *mem = NULL;
  unsigned long mem_size = 0;
  cinfo.err = jpeg_std_error (&jerr);
  jpeg_create_compress (&cinfo);
  jpeg_mem_dest (&cinfo, &mem, &mem_size);
  cinfo.image_width = width;
  cinfo.image_height = height;
  cinfo.input_components = layout->components;
  cinfo.in_color_space = layout->components == 1 ? JCS_GRAYSCALE
                         : layout->components == 3 ? JCS_RGB : JCS_CMYK;
  jpeg_set_defaults (&cinfo);
  jpeg_set_quality (&cinfo, 75, TRUE);
  if (layout->components == 3 && !layout->subsample)
    cinfo.comp_info[0].h_samp_factor = cinfo.comp_info[0].v_samp_factor = 1;
  if (layout->progressive)
    jpeg_simple_progression (&cinfo);
  cinfo.restart_in_rows = layout->restart_rows;
  jpeg_start_compress (&cinfo, TRUE);
  if (layout->orientation)
    {
      g_autoptr (GByteArray) exif = make_exif (layout->orientation, layout->exif_big_endian);
      jpeg_write_marker (&cinfo, JPEG_APP0 + 1, exif->data, exif->len);
    }
  g_autofree guint8 *row = g_malloc ((gsize) width * layout->components);
  while (cinfo.next_scanline < cinfo.image_height)
    {
      for (int x = 0; x < width; x++)
        for (int c = 0; c < layout->components; c++)
          row[x * layout->components + c] = pattern (x, (int) cinfo.next_scanline, c);
      JSAMPROW rows[1] = { row };
      jpeg_write_scanlines (&cinfo, rows, 1);
    }
  jpeg_finish_compress (&cinfo);
  jpeg_destroy_compress (&cinfo);
  GByteArray *out = g_byte_array_new ();
  g_byte_array_append (out, mem, (guint) mem_size);
  free (mem);
  return out;
}

static void
jpeg_seed (const char *name, int width, int height, JpegLayout layout)
{
  g_autoptr (GByteArray) jpeg = make_jpeg (width, height, &layout);
  write_seed ("image", name, jpeg->data, jpeg->len);
}

/* ---- TIFF --------------------------------------------------------------- */

/* A width x height TIFF (through a temporary file: libtiff writes files);
 * photometric PALETTE gets a gray ramp of a colour map; tile 0: strips. */
static GByteArray *
make_tiff (int width, int height, int samples, int bits, int photometric, int compression,
           int tile, int pages)
{
  g_autofree char *dir = g_dir_make_tmp ("strata-seeds-XXXXXX", NULL);
  g_assert (dir);
  g_autofree char *path = g_build_filename (dir, "seed.tif", NULL);
  TIFF *tif = TIFFOpen (path, "w");
  g_assert (tif);
  for (int page = 0; page < pages; page++)
    {
      TIFFSetField (tif, TIFFTAG_IMAGEWIDTH, width);
      TIFFSetField (tif, TIFFTAG_IMAGELENGTH, height);
      TIFFSetField (tif, TIFFTAG_SAMPLESPERPIXEL, samples);
      TIFFSetField (tif, TIFFTAG_BITSPERSAMPLE, bits);
      TIFFSetField (tif, TIFFTAG_PLANARCONFIG, PLANARCONFIG_CONTIG);
      TIFFSetField (tif, TIFFTAG_PHOTOMETRIC, photometric);
      TIFFSetField (tif, TIFFTAG_COMPRESSION, compression);
      if (compression == COMPRESSION_JPEG)
        TIFFSetField (tif, TIFFTAG_JPEGCOLORMODE, JPEGCOLORMODE_RGB);
      if (samples == 2 || samples == 4)
        {
          const guint16 extra[] = { EXTRASAMPLE_UNASSALPHA };
          TIFFSetField (tif, TIFFTAG_EXTRASAMPLES, 1, extra);
        }
      if (photometric == PHOTOMETRIC_PALETTE)
        {
          guint16 map[3][256];
          for (int i = 0; i < 256; i++)
            map[0][i] = map[1][i] = map[2][i] = (guint16) (i * 257);
          TIFFSetField (tif, TIFFTAG_COLORMAP, map[0], map[1], map[2]);
        }
      const int bytes = bits / 8;
      if (tile)
        {
          TIFFSetField (tif, TIFFTAG_TILEWIDTH, tile);
          TIFFSetField (tif, TIFFTAG_TILELENGTH, tile);
          g_autofree guint8 *buf = g_malloc0 (TIFFTileSize (tif));
          for (int ty = 0; ty < height; ty += tile)
            for (int tx = 0; tx < width; tx += tile)
              {
                for (gsize i = 0; i < (gsize) TIFFTileSize (tif); i++)
                  buf[i] = pattern (tx + (int) i, ty, page);
                g_assert (TIFFWriteTile (tif, buf, tx, ty, 0, 0) > 0);
              }
        }
      else
        {
          TIFFSetField (tif, TIFFTAG_ROWSPERSTRIP, compression == COMPRESSION_JPEG ? 16 : 2);
          g_autofree guint8 *row = g_malloc0 ((gsize) width * samples * bytes);
          for (int y = 0; y < height; y++)
            {
              for (int i = 0; i < width * samples * bytes; i++)
                row[i] = pattern (i, y, page);
              g_assert (TIFFWriteScanline (tif, row, y, 0) == 1);
            }
        }
      g_assert (TIFFWriteDirectory (tif));
    }
  TIFFClose (tif);
  gchar *data;
  gsize size;
  g_assert (g_file_get_contents (path, &data, &size, NULL));
  g_unlink (path);
  g_rmdir (dir);
  GByteArray *out = g_byte_array_new_take ((guint8 *) data, size);
  return out;
}

static void
tiff_seed (const char *name, int width, int height, int samples, int bits, int photometric,
           int compression, int tile, int pages)
{
  g_autoptr (GByteArray) tiff = make_tiff (width, height, samples, bits, photometric,
                                           compression, tile, pages);
  write_seed ("image", name, tiff->data, tiff->len);
}

/* ---- WebP --------------------------------------------------------------- */

static void
webp_seed (const char *name, int width, int height, gboolean alpha, int quality, gsize cut)
{
  const int bytes = alpha ? 4 : 3;
  g_autofree guint8 *pixels = g_malloc ((gsize) width * height * bytes);
  for (int y = 0; y < height; y++)
    for (int x = 0; x < width; x++)
      for (int c = 0; c < bytes; c++)
        pixels[(y * width + x) * bytes + c] = pattern (x, y, c);
  guint8 *out = NULL;
  gsize size;
  if (quality == 0)
    size = alpha ? WebPEncodeLosslessRGBA (pixels, width, height, width * bytes, &out)
                 : WebPEncodeLosslessRGB (pixels, width, height, width * bytes, &out);
  else
    size = alpha ? WebPEncodeRGBA (pixels, width, height, width * bytes, quality, &out)
                 : WebPEncodeRGB (pixels, width, height, width * bytes, quality, &out);
  g_assert (size > cut);
  write_seed ("image", name, out, size - cut);
  WebPFree (out);
}

/* ---- Metadata ----------------------------------------------------------- */

/* An image of format ext written by strata with an ICC profile of
 * icc_size bytes (a JPEG's over 65519 bytes is split over APP2 markers),
 * EXIF (tu_make_exif's, with EXIF and interoperability directories; or, for
 * an orientation, IFD0 with that tag alone) and XMP; with keep, only its
 * first keep bytes. */
static void
metadata_seed (const char *name, int channels, gsize icc_size, int orientation, gsize keep)
{
  const guint8 exif[] = {
    'M', 'M', 0, 42, 0, 0, 0, 8, 0, 1,
    0x01, 0x12, 0, 3, 0, 0, 0, 1, 0, orientation, 0, 0,
    0, 0, 0, 0,
  };
  static const char xmp[] = "<x:xmpmeta xmlns:x=\"adobe:ns:meta/\"/>";
  g_autoptr (StImageMetadata) m = st_image_metadata_new ();
  m->icc = tu_make_icc_profile (icc_size, "RGB ");
  m->exif = orientation ? g_bytes_new (exif, sizeof exif) : tu_make_exif (TRUE);
  m->xmp = g_bytes_new_static (xmp, sizeof xmp - 1);
  const StImageWriteOptions options = { m, FALSE };

  g_autoptr (StTensor) t = st_tensor_new0 (1, channels, 9, 11);
  for (int c = 0; c < channels; c++)
    for (int y = 0; y < 9; y++)
      for (int x = 0; x < 11; x++)
        t->data[(c * 9 + y) * 11 + x] = pattern (x, y, c) / 255.0f;
  g_autofree char *dir = g_dir_make_tmp ("strata-seed-XXXXXX", NULL);
  g_assert (dir);
  g_autofree char *path = g_build_filename (dir, name, NULL);
  g_autoptr (GError) error = NULL;
  if (!st_image_save_with (t, path, ST_FORMAT_UNKNOWN, 8, 90, &options, &error))
    g_error ("%s", error->message);
  g_autofree char *data = NULL;
  gsize size;
  g_assert (g_file_get_contents (path, &data, &size, NULL));
  g_assert (size > keep);
  write_seed ("image", name, data, keep ? keep : size);
  g_unlink (path);
  g_rmdir (dir);
}

static void
metadata_seeds (void)
{
  metadata_seed ("meta-rgb.png", 3, 600, 0, 0);
  metadata_seed ("meta-rgba.webp", 4, 600, 0, 0);
  metadata_seed ("meta-rgb.tif", 3, 600, 0, 0);
  metadata_seed ("meta-exif6.jpg", 3, 600, 6, 0);
  metadata_seed ("meta-icc-split.jpg", 3, 70000, 0, 0);
  /* Cut inside the second APP2 marker of the profile. */
  metadata_seed ("meta-icc-cut.jpg", 3, 70000, 0, 67000);
}

/* ---- PNM and GIF -------------------------------------------------------- */

/* Width x height samples of `channels` a pixel, one or two bytes each. */
static void
pnm_binary_seed (const char *name, const char *header, int width, int height, int channels,
                 int sample_bytes)
{
  g_autoptr (GByteArray) a = g_byte_array_new ();
  g_byte_array_append (a, (const guint8 *) header, strlen (header));
  for (int i = 0; i < width * height * channels * sample_bytes; i++)
    {
      guint8 b = (guint8) (i * 37 + 11);
      g_byte_array_append (a, &b, 1);
    }
  write_seed ("image", name, a->data, a->len);
}

#define TEXT_SEED(name, text) write_seed ("image", name, text, sizeof text - 1)

static void
pnm_seeds (void)
{
  TEXT_SEED ("plain.pbm", "P1\n# comment\n5 2\n1 0 1 0 1\n01010\n");
  TEXT_SEED ("plain.pgm", "P2 # c\n3 2\n255\n0 128 255\n1 2 3\n");
  TEXT_SEED ("plain16.ppm", "P3\n2 1\n65535\n65535 0 1 2 3 40000\n");
  pnm_binary_seed ("bits.pbm", "P4\n# c\n13 3\n", 2, 3, 1, 1);
  pnm_binary_seed ("gray8.pgm", "P5\n6 4\n255\n", 6, 4, 1, 1);
  pnm_binary_seed ("gray16.pgm", "P5 4 3 65535\n", 4, 3, 1, 2);
  pnm_binary_seed ("maxval9.pgm", "P5\n3 3\n9\n", 3, 3, 1, 1);
  pnm_binary_seed ("rgb8.ppm", "P6\n5 4\n255\n", 5, 4, 3, 1);
  pnm_binary_seed ("rgb16.ppm", "P6\n3 2\n1000\n", 3, 2, 3, 2);
  pnm_binary_seed ("rgba.pam", "P7\nWIDTH 3\nHEIGHT 2\nDEPTH 4\nMAXVAL 255\n"
                   "TUPLTYPE RGB_ALPHA\nENDHDR\n", 3, 2, 4, 1);
  pnm_binary_seed ("graya16.pam", "P7\n# c\nWIDTH 2\nHEIGHT 2\nDEPTH 2\nMAXVAL 65535\n"
                   "TUPLTYPE GRAYSCALE_ALPHA\nENDHDR\n", 2, 2, 2, 2);
  TEXT_SEED ("bw.pam", "P7\nWIDTH 3\nHEIGHT 1\nDEPTH 1\nMAXVAL 1\nTUPLTYPE BLACKANDWHITE\n"
             "ENDHDR\n\x01\x00\x01");
  TEXT_SEED ("truncated.ppm", "P6\n4 4\n255\n\x01\x02\x03");
}

/* ---- HEIC and AVIF -------------------------------------------------------- */

#ifdef ST_HAVE_LIBHEIF
static struct heif_error
heif_append (G_GNUC_UNUSED struct heif_context *ctx, const void *data, size_t size,
             void *bytes)
{
  g_byte_array_append (bytes, data, (guint) size);
  return (struct heif_error) { heif_error_Ok, heif_suberror_Unspecified, "Success" };
}

/* A width x height pattern encoded by libheif (HEVC or AV1; 8 or 10 bits;
 * orientation as EXIF numbers it; with an ICC profile, EXIF and XMP when
 * metadata), less its last cut bytes; nothing when libheif has no encoder
 * for it. */
static void
heif_seed (const char *name, enum heif_compression_format compression, int width, int height,
           gboolean alpha, int bits, int orientation, gboolean metadata, gsize cut)
{
  if (!heif_have_encoder_for_format (compression))
    return;
  const int channels = alpha ? 4 : 3;
  const enum heif_chroma chroma = bits > 8
    ? (alpha ? heif_chroma_interleaved_RRGGBBAA_LE : heif_chroma_interleaved_RRGGBB_LE)
    : (alpha ? heif_chroma_interleaved_RGBA : heif_chroma_interleaved_RGB);
  struct heif_image *image = NULL;
  g_assert (heif_image_create (width, height, heif_colorspace_RGB, chroma, &image).code
            == heif_error_Ok);
  g_assert (heif_image_add_plane (image, heif_channel_interleaved, width, height, bits).code
            == heif_error_Ok);
  int stride;
  guint8 *pixels = heif_image_get_plane (image, heif_channel_interleaved, &stride);
  const int sample_bytes = bits > 8 ? 2 : 1;
  for (int y = 0; y < height; y++)
    for (int x = 0; x < width; x++)
      for (int c = 0; c < channels; c++)
        for (int b = 0; b < sample_bytes; b++)
          pixels[y * stride + (x * channels + c) * sample_bytes + b]
            = b == 1 ? pattern (x, y, c) & ((1 << (bits - 8)) - 1) : pattern (x, y, c);
  g_autoptr (GBytes) icc = metadata ? tu_make_icc_profile (200, "RGB ") : NULL;
  g_autoptr (GBytes) exif = metadata ? tu_make_exif (TRUE) : NULL;
  static const char xmp[] = "<x:xmpmeta xmlns:x=\"adobe:ns:meta/\"/>";
  if (icc)
    g_assert (heif_image_set_raw_color_profile (image, "prof", g_bytes_get_data (icc, NULL),
                                                g_bytes_get_size (icc)).code == heif_error_Ok);
  struct heif_context *ctx = heif_context_alloc ();
  struct heif_encoder *encoder = NULL;
  g_assert (heif_context_get_encoder_for_format (ctx, compression, &encoder).code
            == heif_error_Ok);
  heif_encoder_set_lossy_quality (encoder, 50);
  struct heif_encoding_options *options = heif_encoding_options_alloc ();
  options->image_orientation = (enum heif_orientation) orientation;
  struct heif_image_handle *handle = NULL;
  g_assert (heif_context_encode_image (ctx, image, encoder, options, &handle).code
            == heif_error_Ok);
  if (exif)
    g_assert (heif_context_add_exif_metadata (ctx, handle, g_bytes_get_data (exif, NULL),
                                              (int) g_bytes_get_size (exif)).code
              == heif_error_Ok);
  if (metadata)
    g_assert (heif_context_add_XMP_metadata (ctx, handle, xmp, sizeof xmp - 1).code
              == heif_error_Ok);
  heif_image_handle_release (handle);
  g_autoptr (GByteArray) bytes = g_byte_array_new ();
  struct heif_writer writer = { 1, heif_append };
  g_assert (heif_context_write (ctx, &writer, bytes).code == heif_error_Ok);
  g_assert (bytes->len > cut);
  write_seed ("image", name, bytes->data, bytes->len - cut);
  heif_encoding_options_free (options);
  heif_encoder_release (encoder);
  heif_context_free (ctx);
  heif_image_release (image);
}
#endif

static void
heif_seeds (void)
{
#ifdef ST_HAVE_LIBHEIF
  heif_init (NULL);
  heif_seed ("rgb.heic", heif_compression_HEVC, 8, 6, FALSE, 8, 1, FALSE, 0);
  heif_seed ("rgba-rotated.heic", heif_compression_HEVC, 6, 4, TRUE, 8, 6, FALSE, 0);
  heif_seed ("deep.heic", heif_compression_HEVC, 5, 5, FALSE, 10, 1, FALSE, 0);
  heif_seed ("metadata.heic", heif_compression_HEVC, 6, 6, FALSE, 8, 6, TRUE, 0);
  heif_seed ("rgba.avif", heif_compression_AV1, 7, 5, TRUE, 8, 1, FALSE, 0);
  heif_seed ("mirrored.avif", heif_compression_AV1, 4, 9, FALSE, 8, 2, FALSE, 0);
  heif_seed ("truncated.avif", heif_compression_AV1, 8, 8, FALSE, 8, 1, FALSE, 30);
  heif_deinit ();
#endif
  /* Just the file type box: refused, with libheif or without. */
  write_seed ("image", "ftyp-only.heic", "\0\0\0\x18" "ftypheic\0\0\0\0mif1heic", 24);
}

/* A GIF of `frames` frames of a 4-colour pattern, written by giflib
 * straight into the corpus. */
static void
gif_seed (const char *name, int width, int height, int frames, int transparent,
          gboolean interlace)
{
  g_autofree char *file = g_strconcat ("seed-", name, NULL);
  g_autofree char *path = g_build_filename (corpus_dir, "image", file, NULL);
  int err = 0;
  GifFileType *gif = EGifOpenFileName (path, FALSE, &err);
  if (!gif)
    g_error ("%s: cannot write (%s)", path, GifErrorString (err));
  GifColorType colours[4] = { { 255, 0, 0 }, { 0, 255, 0 }, { 0, 0, 255 }, { 9, 99, 199 } };
  ColorMapObject *map = GifMakeMapObject (4, colours);
  EGifSetGifVersion (gif, TRUE);
  EGifPutScreenDesc (gif, width, height, 2, 0, map);
  g_autofree GifPixelType *row = g_new (GifPixelType, width);
  for (int f = 0; f < frames; f++)
    {
      GraphicsControlBlock gcb = { DISPOSAL_UNSPECIFIED, FALSE, 5, transparent };
      GifByteType ext[4];
      EGifPutExtension (gif, GRAPHICS_EXT_FUNC_CODE, (int) EGifGCBToExtension (&gcb, ext), ext);
      EGifPutImageDesc (gif, 0, 0, width, height, interlace, NULL);
      for (int y = 0; y < height; y++)
        {
          for (int x = 0; x < width; x++)
            row[x] = (GifPixelType) ((x + 2 * y + f) % 4);
          EGifPutLine (gif, row, width);
        }
    }
  if (EGifCloseFile (gif, &err) != GIF_OK)
    g_error ("%s: cannot write (%s)", path, GifErrorString (err));
  GifFreeMapObject (map);
}

static void
gif_seeds (void)
{
  gif_seed ("palette.gif", 9, 7, 1, NO_TRANSPARENT_COLOR, FALSE);
  gif_seed ("transparent.gif", 6, 5, 1, 1, FALSE);
  gif_seed ("interlaced.gif", 5, 11, 1, NO_TRANSPARENT_COLOR, TRUE);
  gif_seed ("animation.gif", 4, 4, 2, 3, FALSE);
}

static void
image_seeds (void)
{
  /* 19x23: more rows than one band and than libjpeg's 16-row batch. */
  png_seed ("rgb8.png", 19, 23, PNG_COLOR_TYPE_RGB, 8, FALSE, FALSE);
  png_seed ("rgba8.png", 9, 5, PNG_COLOR_TYPE_RGB_ALPHA, 8, FALSE, FALSE);
  png_seed ("rgb16.png", 7, 6, PNG_COLOR_TYPE_RGB, 16, FALSE, FALSE);
  png_seed ("rgba16.png", 5, 4, PNG_COLOR_TYPE_RGB_ALPHA, 16, FALSE, FALSE);
  png_seed ("gray8.png", 17, 3, PNG_COLOR_TYPE_GRAY, 8, FALSE, FALSE);
  png_seed ("gray16.png", 4, 4, PNG_COLOR_TYPE_GRAY, 16, FALSE, FALSE);
  png_seed ("gray1.png", 13, 5, PNG_COLOR_TYPE_GRAY, 1, FALSE, FALSE);
  png_seed ("gray2-trns.png", 6, 3, PNG_COLOR_TYPE_GRAY, 2, FALSE, TRUE);
  png_seed ("gray4.png", 5, 5, PNG_COLOR_TYPE_GRAY, 4, FALSE, FALSE);
  png_seed ("graya8.png", 6, 5, PNG_COLOR_TYPE_GRAY_ALPHA, 8, FALSE, FALSE);
  png_seed ("graya16.png", 3, 7, PNG_COLOR_TYPE_GRAY_ALPHA, 16, FALSE, FALSE);
  png_seed ("rgb8-trns.png", 4, 3, PNG_COLOR_TYPE_RGB, 8, FALSE, TRUE);
  png_seed ("palette8-trns.png", 11, 4, PNG_COLOR_TYPE_PALETTE, 8, FALSE, TRUE);
  png_seed ("palette2.png", 10, 3, PNG_COLOR_TYPE_PALETTE, 2, FALSE, FALSE);
  png_seed ("palette1-trns.png", 9, 2, PNG_COLOR_TYPE_PALETTE, 1, FALSE, TRUE);
  png_seed ("interlaced-rgb8.png", 11, 10, PNG_COLOR_TYPE_RGB, 8, TRUE, FALSE);
  png_seed ("interlaced-gray16.png", 9, 9, PNG_COLOR_TYPE_GRAY, 16, TRUE, FALSE);
  png_seed ("interlaced-palette4.png", 7, 8, PNG_COLOR_TYPE_PALETTE, 4, TRUE, TRUE);
  png_seed ("1x1.png", 1, 1, PNG_COLOR_TYPE_RGB_ALPHA, 8, FALSE, FALSE);

  jpeg_seed ("rgb420.jpg", 19, 23, (JpegLayout) { .components = 3, .subsample = TRUE });
  jpeg_seed ("rgb444.jpg", 9, 7, (JpegLayout) { .components = 3 });
  jpeg_seed ("gray.jpg", 17, 18, (JpegLayout) { .components = 1 });
  jpeg_seed ("cmyk.jpg", 8, 8, (JpegLayout) { .components = 4 });
  jpeg_seed ("progressive.jpg", 12, 9, (JpegLayout) { .components = 3, .subsample = TRUE, .progressive = TRUE });
  jpeg_seed ("restart.jpg", 16, 24, (JpegLayout) { .components = 3, .subsample = TRUE, .restart_rows = 1 });
  jpeg_seed ("1x1.jpg", 1, 1, (JpegLayout) { .components = 3 });
  for (int o = 2; o <= 8; o++)
    {
      char name[32];
      g_snprintf (name, sizeof name, "exif%d.jpg", o);
      jpeg_seed (name, 7 + o, 19 - o, (JpegLayout) {
                   .components = o == 5 ? 1 : 3, .subsample = TRUE, .orientation = o,
                   .exif_big_endian = o % 2 });
    }
  jpeg_seed ("exif6-progressive-gray.jpg", 10, 17, (JpegLayout) {
             .components = 1, .progressive = TRUE, .orientation = 6, .exif_big_endian = TRUE });

  /* Broken: cut short, a bad IHDR CRC, and nothing but a signature. */
  g_autoptr (GByteArray) png = make_png (8, 8, PNG_COLOR_TYPE_RGB, 8, FALSE, FALSE);
  write_seed ("image", "truncated.png", png->data, png->len / 2);
  png->data[29] ^= 0xff;
  write_seed ("image", "bad-crc.png", png->data, png->len);
  JpegLayout layout = { .components = 3, .subsample = TRUE, .orientation = 6 };
  g_autoptr (GByteArray) jpeg = make_jpeg (8, 8, &layout);
  write_seed ("image", "truncated-exif6.jpg", jpeg->data, jpeg->len - 40);
  write_seed ("image", "signature-only.jpg", "\xff\xd8\xff", 3);

  tiff_seed ("gray8.tif", 7, 5, 1, 8, PHOTOMETRIC_MINISBLACK, COMPRESSION_NONE, 0, 1);
  tiff_seed ("graya8-packbits.tif", 6, 5, 2, 8, PHOTOMETRIC_MINISBLACK, COMPRESSION_PACKBITS, 0, 1);
  tiff_seed ("rgb16-lzw.tif", 5, 4, 3, 16, PHOTOMETRIC_RGB, COMPRESSION_LZW, 0, 1);
  tiff_seed ("rgba8-deflate-tiled.tif", 20, 18, 4, 8, PHOTOMETRIC_RGB, COMPRESSION_ADOBE_DEFLATE, 16, 1);
  tiff_seed ("gray16-tiled.tif", 17, 3, 1, 16, PHOTOMETRIC_MINISBLACK, COMPRESSION_NONE, 16, 1);
  tiff_seed ("palette8.tif", 6, 6, 1, 8, PHOTOMETRIC_PALETTE, COMPRESSION_NONE, 0, 1);
  tiff_seed ("ycbcr-jpeg.tif", 16, 16, 3, 8, PHOTOMETRIC_YCBCR, COMPRESSION_JPEG, 0, 1);
  tiff_seed ("two-pages.tif", 4, 3, 3, 8, PHOTOMETRIC_RGB, COMPRESSION_NONE, 0, 2);
  g_autoptr (GByteArray) tiff = make_tiff (8, 8, 3, 8, PHOTOMETRIC_RGB, COMPRESSION_ADOBE_DEFLATE,
                                           0, 1);
  write_seed ("image", "truncated.tif", tiff->data, tiff->len / 2);

  /* Quality 0: lossless. */
  webp_seed ("lossy-rgb.webp", 13, 9, FALSE, 80, 0);
  webp_seed ("lossy-rgba.webp", 9, 13, TRUE, 60, 0);
  webp_seed ("lossless-rgba.webp", 7, 6, TRUE, 0, 0);
  webp_seed ("lossless-rgb.webp", 5, 5, FALSE, 0, 0);
  webp_seed ("truncated.webp", 16, 16, FALSE, 80, 20);

  metadata_seeds ();

  pnm_seeds ();
  gif_seeds ();
  heif_seeds ();
}

/* ---- Pipelines ---------------------------------------------------------- */

static void
pipeline_seeds (const char *source_root)
{
  /* Every bundled pipeline as it is. */
  g_autofree char *bundled = g_build_filename (source_root, "pipelines", NULL);
  g_autoptr (GDir) dir = g_dir_open (bundled, 0, NULL);
  g_assert (dir);
  for (const char *name; (name = g_dir_read_name (dir));)
    {
      if (!g_str_has_suffix (name, ".ini"))
        continue;
      g_autofree char *path = g_build_filename (bundled, name, NULL);
      g_autofree char *text = NULL;
      gsize size;
      g_assert (g_file_get_contents (path, &text, &size, NULL));
      write_seed ("pipeline", name, text, size);
    }

  static const struct { const char *name, *text; } seeds[] = {
    { "inline-emboss.txt", "inline:grayscale ! kernel preset=emboss" },
    { "inline-resize.txt", "inline:resize width=4 height=3 ! invert ! magnitude" },
    { "skip.ini",
      "[pipeline]\ninput=3x8x8\n[a]\ntype=conv2d\nfilters=3\nsize=3\npadding=same\n"
      "[b]\ntype=activation\nfunction=relu\n[sum]\ntype=add\ninput=image,b\nweights=1,0.5\n" },
    { "kernel-rows.ini", "[k]\ntype=kernel\nmatrix=0,1,0;1,-4,1;0,1,0\nborder=zero\nstride=2\n" },
    { "dense-net.ini",
      "[pipeline]\ninput=1x6x6\nlabels=a;b;c\n[f]\ntype=flatten\n[d]\ntype=dense\nunits=3\n"
      "activation=relu\n[p]\ntype=dropout\nrate=0.5\n[s]\ntype=softmax\n" },
    { "pool-stride.ini",
      "[pipeline]\ninput=2x9x7\n[p]\ntype=avgpool\nsize=3\nstride=2\n[n]\ntype=batchnorm\n" },
    { "bad-missing-bracket.ini", "[a\ntype=invert\n" },
    { "bad-duplicate.ini", "[a]\ntype=invert\n[a]\ntype=invert\n" },
    { "bad-unknown-key.ini", "[a]\ntype=kernel\npreset=sharpen\ncolour=blue\n" },
    { "bad-cycle.ini", "[a]\ntype=add\ninput=b,image\n[b]\ntype=add\ninput=a,image\n" },
    { "bad-bom.ini", "\xef\xbb\xbf[a]\ntype=grayscale\n" },
    { "bad-range.ini", "[pipeline]\ninput=1x0x5\n[a]\ntype=conv2d\nfilters=-3\nsize=1e9\n" },
  };
  for (gsize i = 0; i < G_N_ELEMENTS (seeds); i++)
    write_seed ("pipeline", seeds[i].name, seeds[i].text, strlen (seeds[i].text));
}

/* ---- Weights ------------------------------------------------------------ */

/* The network of fuzz-weights.c. */
static const char weights_network[] =
  "[pipeline]\n"
  "input=1x4x4\n"
  "[conv]\ntype=conv2d\nfilters=2\nsize=3\n"
  "[bn]\ntype=batchnorm\n"
  "[pool]\ntype=maxpool\nsize=2\n"
  "[flat]\ntype=flatten\n"
  "[fc]\ntype=dense\nunits=3\n";

/* A safetensors file from its JSON header and data section. */
static void
safetensors_seed (const char *name, const char *header, const void *data, gsize size)
{
  g_autoptr (GByteArray) a = g_byte_array_new ();
  guint64 n = GUINT64_TO_LE (strlen (header));
  g_byte_array_append (a, (const guint8 *) &n, 8);
  g_byte_array_append (a, (const guint8 *) header, (guint) strlen (header));
  g_byte_array_append (a, data, (guint) size);
  write_seed ("weights", name, a->data, a->len);
}

static void
weights_seeds (void)
{
  g_autoptr (GError) error = NULL;
  StPipeline *p = st_pipeline_load_data (st_registry_get_default (), weights_network,
                                         "fuzz.ini", &error);
  g_assert_no_error (error);
  g_autofree char *tmp = g_dir_make_tmp ("strata-seeds-XXXXXX", &error);
  g_assert_no_error (error);
  g_autofree char *path = g_build_filename (tmp, "w.safetensors", NULL);
  g_autoptr (GHashTable) metadata = g_hash_table_new (g_str_hash, g_str_equal);
  g_hash_table_insert (metadata, "pipeline", "fuzz.ini");
  g_assert (st_pipeline_save_weights (p, path, metadata, &error));
  g_autofree char *bytes = NULL;
  gsize size;
  g_assert (g_file_get_contents (path, &bytes, &size, NULL));
  g_unlink (path);
  g_rmdir (tmp);
  st_pipeline_free (p);
  write_seed ("weights", "network.safetensors", bytes, size);
  write_seed ("weights", "truncated.safetensors", bytes, size - 5);

  const guint8 two[8] = { 0, 0x3c, 0, 0xc0, 0x80, 0x3f, 0, 0 };   /* F16 1, -2; BF16 1, 0 */
  safetensors_seed ("f16-bf16.safetensors",
                    "{\"a\":{\"dtype\":\"F16\",\"shape\":[2],\"data_offsets\":[0,4]},"
                    "\"b\":{\"dtype\":\"BF16\",\"shape\":[1,2],\"data_offsets\":[4,8]}}",
                    two, sizeof two);
  const double one = 1.0;
  safetensors_seed ("f64-scalar.safetensors",
                    "{\"__metadata__\":{\"format\":\"pt\"},"
                    "\"s\":{\"dtype\":\"F64\",\"shape\":[],\"data_offsets\":[0,8]}}",
                    &one, sizeof one);
  const float four[4] = { 1, 2, 3, 4 };
  safetensors_seed ("rank4-unaligned.safetensors",
                    "{\"t\":{\"dtype\":\"F32\",\"shape\":[1,1,2,2],\"data_offsets\":[0,16]}} ",
                    four, sizeof four);
  safetensors_seed ("bad-overlap.safetensors",
                    "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
                    "\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]}}",
                    four, 12);
  safetensors_seed ("bad-shape.safetensors",
                    "{\"fc.bias\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,16]}}",
                    four, sizeof four);
  safetensors_seed ("bad-dtype.safetensors",
                    "{\"a\":{\"dtype\":\"I8\",\"shape\":[4],\"data_offsets\":[0,4]}}",
                    four, 4);
  safetensors_seed ("bad-duplicate.safetensors",
                    "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
                    "\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}",
                    four, 8);
  safetensors_seed ("bad-json.safetensors", "{\"a\":{\"dtype\":\"F32\",\"shape\":[1",
                    four, 4);
}

/* ---- IDX ---------------------------------------------------------------- */

static GBytes *
gzip_bytes (const void *data, gsize size)
{
  g_autoptr (GZlibCompressor) z = g_zlib_compressor_new (G_ZLIB_COMPRESSOR_FORMAT_GZIP, 9);
  g_autoptr (GOutputStream) mem = g_memory_output_stream_new_resizable ();
  g_autoptr (GOutputStream) out = g_converter_output_stream_new (mem, G_CONVERTER (z));
  g_assert (g_output_stream_write_all (out, data, size, NULL, NULL, NULL));
  g_assert (g_output_stream_close (out, NULL, NULL));
  return g_memory_output_stream_steal_as_bytes (G_MEMORY_OUTPUT_STREAM (mem));
}

/* A seed for fuzz-idx.c: its mode byte, then the file. */
static void
idx_seed (const char *name, guint8 mode, const void *data, gsize size)
{
  g_autoptr (GByteArray) a = g_byte_array_new ();
  g_byte_array_append (a, &mode, 1);
  g_byte_array_append (a, data, (guint) size);
  write_seed ("idx", name, a->data, a->len);
}

static void
idx_seeds (void)
{
  /* Two 3x2 images (the harness's labels file has two labels) and two
   * labels (its images file has two images). */
  const guint8 images[] = {
    0, 0, 8, 3, 0, 0, 0, 2, 0, 0, 0, 3, 0, 0, 0, 2,
    0, 10, 20, 30, 40, 50, 255, 245, 235, 225, 215, 205,
  };
  const guint8 labels[] = { 0, 0, 8, 1, 0, 0, 0, 2, 9, 0 };
  enum { IMAGES = 0, LABELS = 1, GZIP_IN_HARNESS = 2 };
  idx_seed ("images", IMAGES, images, sizeof images);
  idx_seed ("labels", LABELS, labels, sizeof labels);
  idx_seed ("images-gzip-by-harness", IMAGES | GZIP_IN_HARNESS, images, sizeof images);
  idx_seed ("labels-gzip-by-harness", LABELS | GZIP_IN_HARNESS, labels, sizeof labels);
  g_autoptr (GBytes) images_gz = gzip_bytes (images, sizeof images);
  g_autoptr (GBytes) labels_gz = gzip_bytes (labels, sizeof labels);
  idx_seed ("images.gz", IMAGES, g_bytes_get_data (images_gz, NULL),
            g_bytes_get_size (images_gz));
  idx_seed ("labels.gz", LABELS, g_bytes_get_data (labels_gz, NULL),
            g_bytes_get_size (labels_gz));
  idx_seed ("images-truncated.gz", IMAGES, g_bytes_get_data (images_gz, NULL),
            g_bytes_get_size (images_gz) - 6);
  idx_seed ("images-truncated", IMAGES, images, sizeof images - 3);
  idx_seed ("labels-trailing", LABELS, "\0\0\x08\x01\0\0\0\x02\x01\x02\x03", 11);
  idx_seed ("labels-as-images", IMAGES, labels, sizeof labels);
  idx_seed ("images-float", IMAGES, "\0\0\x0d\x03\0\0\0\x01\0\0\0\x01\0\0\0\x01\0\0\0\0", 20);
}

/* A seed for fuzz-cgroup.c: its texts joined by NULs. */
static void
cgroup_seed (const char *name, const char *cgroups, const char *mountinfo, const char *limit,
             const char *period)
{
  g_autoptr (GByteArray) a = g_byte_array_new ();
  const char *parts[] = { cgroups, mountinfo, limit, period };
  for (guint i = 0; i < G_N_ELEMENTS (parts); i++)
    g_byte_array_append (a, (const guint8 *) parts[i], (guint) strlen (parts[i]) + (i < 3));
  write_seed ("cgroup", name, a->data, a->len);
}

static void
cgroup_seeds (void)
{
  const char *v2 = "29 23 0:26 / /sys/fs/cgroup rw,nosuid shared:4 - cgroup2 cgroup2 rw\n";
  const char *v1 = "31 30 0:28 / /sys/fs/cgroup rw,relatime shared:9 - cgroup cgroup rw,cpu,cpuacct\n"
                   "35 30 0:31 / /sys/fs/cgroup/unified rw - cgroup2 cgroup2 rw\n";
  cgroup_seed ("v2", "0::/g\n", v2, "150000 100000\n", "");
  cgroup_seed ("v2-max", "0::/g\n", v2, "max 100000\n", "");
  cgroup_seed ("v1", "4:cpu,cpuacct:/g\n1:name=systemd:/g\n0::/\n", v1, "200000\n", "100000\n");
  cgroup_seed ("v1-none", "4:cpu,cpuacct:/g\n0::/\n", v1, "-1\n", "100000\n");
  cgroup_seed ("namespace", "0::/docker/abc\n",
               "40 30 0:26 /docker/abc /sys/fs/cgroup ro - cgroup2 cgroup2 rw\n", "50000 100000\n", "");
  cgroup_seed ("escaped", "0::/g\n", "29 23 0:26 / /sys/fs/cg\\040x rw - cgroup2 cgroup2 rw\n",
               "100000 100000\n", "");
}

int
main (int argc, char **argv)
{
  if (argc != 2)
    {
      fprintf (stderr, "usage: %s CORPUS_DIR\n", argv[0]);
      return 2;
    }
  corpus_dir = argv[1];
  image_seeds ();
  pipeline_seeds (STRATA_SOURCE_ROOT);
  weights_seeds ();
  idx_seeds ();
  cgroup_seeds ();
  return 0;
}
