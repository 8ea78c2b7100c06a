/* strata — WebP images through libwebp.
 *
 * libwebp decodes and encodes whole images, so a WebP is read into memory
 * and decoded when opened (its size checked first, from the header, by
 * WebPGetFeatures), and a WebP being written collects its rows until the
 * end.  Lossy and lossless files are read, with their alpha; files are
 * written lossy at the run's quality.  WebP has no gray: gray images are
 * written as RGB (gray + alpha as RGBA). */
#include "image-format.h"

#include <errno.h>
#include <string.h>

#include <webp/decode.h>
#include <webp/encode.h>

static const char *
webp_status_text (VP8StatusCode status)
{
  switch (status)
    {
    case VP8_STATUS_OUT_OF_MEMORY: return "out of memory";
    case VP8_STATUS_INVALID_PARAM: return "invalid parameter";
    case VP8_STATUS_BITSTREAM_ERROR: return "corrupt data";
    case VP8_STATUS_UNSUPPORTED_FEATURE: return "unsupported feature";
    case VP8_STATUS_NOT_ENOUGH_DATA: return "not enough data";
    default: return "decoding failed";
    }
}

/* ---- WebP reading ----------------------------------------------------------- */

typedef struct {
  guint8 *pixels;              /* RGB or RGBA rows, as libwebp decoded them */
  int width, channels;
  int next_row;
  const float *table;
} WebpLoad;

static void
webp_reader_close (gpointer reader)
{
  WebpLoad *ld = reader;
  if (!ld)
    return;
  WebPFree (ld->pixels);
  g_free (ld);
}

static gpointer
webp_reader_open (StImageInput *in, guint64 max_pixels, StImageHeader *header, GError **error)
{
  gsize size;
  g_autofree guint8 *data = st_image_input_read_all (in, &size, error);
  if (!data)
    return NULL;
  WebPBitstreamFeatures features;
  VP8StatusCode status = WebPGetFeatures (data, size, &features);
  if (status == VP8_STATUS_NOT_ENOUGH_DATA)
    {
      g_set_error (error, ST_ERROR, ST_ERROR_IMAGE,
                   "%s: truncated WebP file (it ends inside the header)", in->path);
      return NULL;
    }
  if (status != VP8_STATUS_OK)
    {
      g_set_error (error, ST_ERROR, ST_ERROR_IMAGE, "%s: invalid WebP file (%s)", in->path,
                   webp_status_text (status));
      return NULL;
    }
  if (features.has_animation)
    {
      g_set_error (error, ST_ERROR, ST_ERROR_IMAGE,
                   "%s: animated WebP files are not supported", in->path);
      return NULL;
    }
  if (!st_image_check_pixel_limit (in->path, features.width, features.height, max_pixels,
                                   error))
    return NULL;

  WebpLoad *ld = g_new0 (WebpLoad, 1);
  ld->table = st_image_unit_table ();
  ld->width = features.width;
  ld->channels = features.has_alpha ? 4 : 3;
  int width, height;
  ld->pixels = features.has_alpha ? WebPDecodeRGBA (data, size, &width, &height)
                                  : WebPDecodeRGB (data, size, &width, &height);
  if (!ld->pixels || width != features.width || height != features.height)
    {
      /* The simple API gives no reason: ask the decoder for one. */
      WebPDecoderConfig config;
      WebPInitDecoderConfig (&config);
      status = WebPDecode (data, size, &config);
      WebPFreeDecBuffer (&config.output);
      if (status == VP8_STATUS_NOT_ENOUGH_DATA)
        g_set_error (error, ST_ERROR, ST_ERROR_IMAGE,
                     "%s: truncated WebP file (it ends before the image is complete)",
                     in->path);
      else
        g_set_error (error, ST_ERROR, ST_ERROR_IMAGE, "%s: invalid WebP file (%s)", in->path,
                     webp_status_text (status));
      webp_reader_close (ld);
      return NULL;
    }
  header->width = features.width;
  header->height = features.height;
  header->channels = ld->channels;
  header->info = (StImageInfo) { ST_FORMAT_WEBP, 8, features.has_alpha };
  return ld;
}

static gboolean
webp_reader_read (gpointer reader, StTensor *dst, int first_row, int n_rows,
                  G_GNUC_UNUSED GError **error)
{
  WebpLoad *ld = reader;
  const gsize stride = (gsize) ld->width * ld->channels;
  for (int k = 0; k < n_rows; k++, ld->next_row++)
    {
      float *planes[4];
      st_image_row_planes (dst, first_row + k, planes);
      st_image_row_u8_to_planes (planes, ld->channels, 1, ld->pixels + ld->next_row * stride,
                                 ld->channels, ld->width, ld->table);
    }
  return TRUE;
}

/* ---- WebP writing ----------------------------------------------------------- */

typedef struct {
  const char *path;
  FILE *fp;
  int width, height, channels, quality;
  int pixel_bytes;             /* 3 (RGB) or 4 (RGBA) */
  int next_row;
  guint8 *pixels;
} WebpSave;

static void
webp_writer_free (gpointer writer)
{
  WebpSave *job = writer;
  if (!job)
    return;
  g_free (job->pixels);
  g_free (job);
}

static gboolean
webp_writer_check (const StImageWriteSpec *spec, GError **error)
{
  if (spec->quality < 1 || spec->quality > 100)
    {
      g_set_error (error, ST_ERROR, ST_ERROR_IMAGE,
                   "%s: WebP quality %d is out of range (expected 1 to 100)",
                   spec->path, spec->quality);
      return FALSE;
    }
  if (spec->width > WEBP_MAX_DIMENSION || spec->height > WEBP_MAX_DIMENSION)
    {
      g_set_error (error, ST_ERROR, ST_ERROR_IMAGE,
                   "%s: a WebP is at most %d pixels a side, this image is %dx%d",
                   spec->path, WEBP_MAX_DIMENSION, spec->width, spec->height);
      return FALSE;
    }
  return TRUE;
}

static gpointer
webp_writer_open (FILE *fp, const StImageWriteSpec *spec, GError **error)
{
  WebpSave *job = g_new0 (WebpSave, 1);
  job->path = spec->path;
  job->fp = fp;
  job->width = spec->width;
  job->height = spec->height;
  job->channels = spec->channels;
  job->quality = spec->quality;
  job->pixel_bytes = spec->channels == 2 || spec->channels == 4 ? 4 : 3;
  const gsize bytes = (gsize) spec->width * spec->height * job->pixel_bytes;
  if (!(job->pixels = g_try_malloc (bytes)))
    {
      g_set_error (error, ST_ERROR, ST_ERROR_IMAGE, "%s: not enough memory for a %dx%d WebP",
                   spec->path, spec->width, spec->height);
      webp_writer_free (job);
      return NULL;
    }
  return job;
}

static gboolean
webp_writer_write (gpointer writer, const StImageRows *rows, G_GNUC_UNUSED GError **error)
{
  WebpSave *job = writer;
  const gsize stride = (gsize) job->width * job->pixel_bytes;
  for (int k = 0; k < rows->n_rows; k++, job->next_row++)
    {
      const float *row[4];
      st_image_rows_row (rows, job->channels, job->width, k, row);
      /* Gray is spread over red, green and blue; alpha stays last. */
      const float *rgba[4] = { row[0], row[0], row[0], row[0] };
      if (job->channels >= 3)
        memcpy (rgba, row, job->channels * sizeof row[0]);
      else if (job->channels == 2)
        rgba[3] = row[1];
      st_image_pack_row_u8 (rgba, job->pixel_bytes, job->pixel_bytes, job->width,
                            job->pixels + job->next_row * stride);
    }
  return TRUE;
}

static gboolean
webp_writer_finish (gpointer writer, GError **error)
{
  WebpSave *job = writer;
  const int stride = job->width * job->pixel_bytes;
  guint8 *out = NULL;
  const gsize size = job->pixel_bytes == 4
    ? WebPEncodeRGBA (job->pixels, job->width, job->height, stride, job->quality, &out)
    : WebPEncodeRGB (job->pixels, job->width, job->height, stride, job->quality, &out);
  if (size == 0)
    {
      WebPFree (out);
      g_set_error (error, ST_ERROR, ST_ERROR_IMAGE, "%s: cannot write WebP (encoding failed)",
                   job->path);
      return FALSE;
    }
  const gboolean ok = fwrite (out, 1, size, job->fp) == size;
  WebPFree (out);
  if (!ok)
    g_set_error (error, ST_ERROR, ST_ERROR_IO, "%s: cannot write: %s", job->path,
                 g_strerror (errno));
  return ok;
}

/* ---- The format ------------------------------------------------------------- */

/* "RIFF", four bytes of size, "WEBP". */
static StImageMatch
webp_match (const guint8 *head, gsize head_len)
{
  StImageMatch riff = st_image_match_magic (head, head_len, (const guint8 *) "RIFF", 4);
  if (riff != ST_IMAGE_MATCH_YES)
    return riff;
  if (head_len <= 8)
    return ST_IMAGE_MATCH_TRUNCATED;
  return st_image_match_magic (head + 8, head_len - 8, (const guint8 *) "WEBP", 4);
}

static const char *const webp_extensions[] = { "webp", NULL };

const StImageCodec st_image_webp_codec = {
  .format = ST_FORMAT_WEBP,
  .name = "WebP",
  .extensions = webp_extensions,
  .match = webp_match,
  .reader_open = webp_reader_open,
  .reader_read = webp_reader_read,
  .reader_close = webp_reader_close,
  .writer_check = webp_writer_check,
  .writer_open = webp_writer_open,
  .writer_write = webp_writer_write,
  .writer_finish = webp_writer_finish,
  .writer_free = webp_writer_free,
};
