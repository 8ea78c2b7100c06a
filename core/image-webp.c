/* strata — WebP images through libwebp.
 *
 * libwebp decodes and encodes whole images, so a WebP is read into memory
 * and decoded when opened (its size checked first, from the header, by
 * WebPGetFeatures), and a WebP being written collects its rows until the
 * end.  Lossy and lossless files are read, with their alpha; files are
 * written lossy at the run's quality, or lossless when asked.  WebP has no
 * gray: gray images are written as RGB (gray + alpha as RGBA).  The ICCP,
 * EXIF and XMP chunks are read with WebPDemux and written with WebPMux. */
#include "image-format.h"

#include <errno.h>
#include <string.h>

#include <webp/decode.h>
#include <webp/encode.h>
#include <webp/demux.h>
#include <webp/mux.h>

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

static void
webp_read_chunk (WebPDemuxer *demux, const char *fourcc, GBytes **field)
{
  WebPChunkIterator chunk;
  if (WebPDemuxGetChunk (demux, fourcc, 1, &chunk))
    st_image_metadata_set (field, chunk.chunk.bytes, chunk.chunk.size);
  WebPDemuxReleaseChunkIterator (&chunk);
}

/* The ICCP, EXIF and XMP chunks of an extended (VP8X) file; EXIF is stored
 * as a TIFF structure, though some writers put JPEG's "Exif\0\0" first. */
static void
webp_read_metadata (const guint8 *data, gsize size, StImageMetadata *m)
{
  WebPData webp = { data, size };
  WebPDemuxer *demux = WebPDemux (&webp);
  if (!demux)
    return;
  const uint32_t flags = WebPDemuxGetI (demux, WEBP_FF_FORMAT_FLAGS);
  if (flags & ICCP_FLAG)
    webp_read_chunk (demux, "ICCP", &m->icc);
  if (flags & EXIF_FLAG)
    {
      webp_read_chunk (demux, "EXIF", &m->exif);
      gsize n;
      const guint8 *exif = m->exif ? g_bytes_get_data (m->exif, &n) : NULL;
      if (exif && n > 6 && memcmp (exif, "Exif\0\0", 6) == 0)
        {
          GBytes *tiff = g_bytes_new_from_bytes (m->exif, 6, n - 6);
          g_bytes_unref (m->exif);
          m->exif = tiff;
        }
    }
  if (flags & XMP_FLAG)
    webp_read_chunk (demux, "XMP ", &m->xmp);
  WebPDemuxDelete (demux);
}

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
  webp_read_metadata (data, size, &header->metadata);
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
  gboolean lossless;
  StImageMetadata metadata;    /* the writer's, borrowed */
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
  job->lossless = spec->lossless;
  job->metadata = spec->metadata;
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
webp_add_chunk (WebPMux *mux, const char *fourcc, GBytes *blob)
{
  if (!blob)
    return TRUE;
  gsize size;
  const guint8 *data = g_bytes_get_data (blob, &size);
  const WebPData chunk = { data, size };
  return WebPMuxSetChunk (mux, fourcc, &chunk, 1) == WEBP_MUX_OK;
}

/* The encoded image with the metadata's chunks, in *out (a WebPData to
 * clear); FALSE when the muxer fails. */
static gboolean
webp_mux_metadata (WebpSave *job, const guint8 *image, gsize size, WebPData *out)
{
  const StImageMetadata *m = &job->metadata;
  /* WebP is always written as RGB: a gray profile would not fit. */
  GBytes *icc = m->icc && memcmp ((const guint8 *) g_bytes_get_data (m->icc, NULL) + 16,
                                  "RGB ", 4) == 0 ? m->icc : NULL;
  const WebPData bitstream = { image, size };
  WebPMux *mux = WebPMuxCreate (&bitstream, 1);
  const gboolean ok = mux && webp_add_chunk (mux, "ICCP", icc)
                      && webp_add_chunk (mux, "EXIF", m->exif)
                      && webp_add_chunk (mux, "XMP ", m->xmp)
                      && WebPMuxAssemble (mux, out) == WEBP_MUX_OK;
  WebPMuxDelete (mux);
  return ok;
}

/* What WebPEncodeRGB(A) and WebPEncodeLosslessRGB(A) do, with libwebp's
 * "exact" set for lossless: the colour of transparent pixels is kept, not
 * replaced by whatever compresses best.  The file in *out (WebPFree it);
 * 0 on failure. */
static gsize
webp_encode (WebpSave *job, int stride, guint8 **out)
{
  /* WebPEncodeLosslessRGB's effort. */
  const float lossless_effort = 70;
  WebPConfig config;
  WebPPicture picture;
  WebPMemoryWriter memory;
  if (!WebPConfigPreset (&config, WEBP_PRESET_DEFAULT,
                         job->lossless ? lossless_effort : job->quality)
      || !WebPPictureInit (&picture))
    return 0;
  config.lossless = job->lossless;
  config.exact = job->lossless;
  picture.use_argb = job->lossless;
  picture.width = job->width;
  picture.height = job->height;
  picture.writer = WebPMemoryWrite;
  picture.custom_ptr = &memory;
  WebPMemoryWriterInit (&memory);
  const gboolean ok = (job->pixel_bytes == 4
                       ? WebPPictureImportRGBA (&picture, job->pixels, stride)
                       : WebPPictureImportRGB (&picture, job->pixels, stride))
                      && WebPEncode (&config, &picture);
  WebPPictureFree (&picture);
  if (!ok)
    {
      WebPMemoryWriterClear (&memory);
      return 0;
    }
  *out = memory.mem;
  return memory.size;
}

static gboolean
webp_writer_finish (gpointer writer, GError **error)
{
  WebpSave *job = writer;
  const int stride = job->width * job->pixel_bytes;
  guint8 *encoded = NULL;
  const gsize size = webp_encode (job, stride, &encoded);
  if (size == 0)
    {
      g_set_error (error, ST_ERROR, ST_ERROR_IMAGE, "%s: cannot write WebP (encoding failed)",
                   job->path);
      return FALSE;
    }
  WebPData out = { encoded, size };
  WebPData muxed;
  WebPDataInit (&muxed);
  if ((job->metadata.icc || job->metadata.exif || job->metadata.xmp)
      && webp_mux_metadata (job, encoded, size, &muxed))
    out = muxed;
  /* A failed mux writes the image without its metadata. */
  const gboolean ok = fwrite (out.bytes, 1, out.size, job->fp) == out.size;
  WebPFree (encoded);
  WebPDataClear (&muxed);
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
