/* strata — JPEG images through libjpeg (libjpeg-turbo where available).
 *
 * libjpeg reports errors by calling a handler that must not return; it is
 * given handlers that record the reason and longjmp back.  Each setjmp
 * lives in a small *_run() function whose state is kept in a struct
 * reached through a pointer argument, so nothing the cleanup code reads is
 * a local variable clobbered by the longjmp.  Harmless warnings are
 * dropped.  A JPEG's EXIF orientation is applied when reading. */
#include "image-format.h"

#include <errno.h>
#include <setjmp.h>
#include <stdlib.h>
#include <string.h>

#include <jpeglib.h>
#include <jerror.h>

/* Rows handed to libjpeg per jpeg_read_scanlines() or
 * jpeg_write_scanlines() call. */
#define JPEG_ROWS_PER_CALL 16

static const guint8 jpeg_signature[3] = { 0xff, 0xd8, 0xff };

/* What starts an APP1 marker's data: EXIF, or XMP (Adobe's XMP
 * specification, part 3), each with its terminating NUL. */
static const char jpeg_exif_prefix[] = "Exif\0";
static const char jpeg_xmp_prefix[] = "http://ns.adobe.com/xap/1.0/";
#define JPEG_EXIF_PREFIX_SIZE sizeof jpeg_exif_prefix      /* 6 */
#define JPEG_XMP_PREFIX_SIZE sizeof jpeg_xmp_prefix        /* 29 */
/* A marker's data: 65535 less the two bytes of its length. */
#define JPEG_MARKER_MAX_DATA 65533

/* ---- JPEG reading ------------------------------------------------------ */

#define JPEG_INPUT_BUFFER 65536
/* A progressive JPEG has about ten scans; a crafted one can repeat a scan
 * hundreds of thousands of times, each a full pass over the coefficients,
 * and take hours to decode.  libjpeg-turbo's own tools stop at 500. */
#define JPEG_MAX_SCANS 500

typedef struct {
  struct jpeg_decompress_struct cinfo;
  struct jpeg_error_mgr jerr;
  struct jpeg_source_mgr source;
  struct jpeg_progress_mgr progress;
  jmp_buf jump;
  gboolean created;
  StImageInput *in;
  guint64 max_pixels;
  gboolean cmyk;
  int orientation;
  StImageMetadata metadata;    /* handed to the header when opened */
  int pixel_bytes;             /* per decoded pixel: 1, or 4 (RGBX, CMYK) or 3 */
  int channels;                /* of the tensor: 1 or 3 */
  JSAMPARRAY rows;
  StTensor *whole;             /* orientations 3 to 8: the image, decoded when opened */
  /* The current read: n_rows rows into dst from row dst_row on. */
  StTensor *dst;
  int dst_row, n_rows;
  const float *table;
  GError *error;               /* set for errors found outside libjpeg */
  int code;                    /* for the libjpeg error in reason */
  char reason[ST_IMAGE_REASON_SIZE];
  guint8 buffer[JPEG_INPUT_BUFFER];
} JpegLoad;

static G_NORETURN void
jpeg_load_fail (JpegLoad *ld, int code, const char *reason)
{
  ld->code = code;
  g_strlcpy (ld->reason, reason, sizeof ld->reason);
  longjmp (ld->jump, 1);
}

static void
jpeg_load_error_exit (j_common_ptr cinfo)
{
  JpegLoad *ld = cinfo->client_data;
  char message[JMSG_LENGTH_MAX];
  cinfo->err->format_message (cinfo, message);
  g_snprintf (ld->reason, sizeof ld->reason, "invalid JPEG file (%s)", message);
  longjmp (ld->jump, 1);
}

static void
jpeg_silent_output (G_GNUC_UNUSED j_common_ptr cinfo)
{
}

/* Called by libjpeg as it goes: stops a file of too many scans. */
static void
jpeg_scan_limit (j_common_ptr cinfo)
{
  j_decompress_ptr d = (j_decompress_ptr) cinfo;
  if (d->input_scan_number > JPEG_MAX_SCANS)
    {
      char reason[ST_IMAGE_REASON_SIZE];
      g_snprintf (reason, sizeof reason, "invalid JPEG file (more than %d scans)",
                  JPEG_MAX_SCANS);
      jpeg_load_fail (cinfo->client_data, ST_ERROR_IMAGE, reason);
    }
}

/* libjpeg reports missing entropy data as a warning and fills the rest of
 * the image with grey; that is a broken file, not a picture.  Other
 * warnings (such as stray bytes between markers) are harmless and dropped. */
static void
jpeg_load_emit (j_common_ptr cinfo, int level)
{
  if (level >= 0)
    return;
  if (cinfo->err->msg_code == JWRN_HIT_MARKER || cinfo->err->msg_code == JWRN_JPEG_EOF)
    cinfo->err->error_exit (cinfo);
  cinfo->err->num_warnings++;
}

static void
jpeg_source_init (G_GNUC_UNUSED j_decompress_ptr cinfo)
{
}

static boolean
jpeg_source_fill (j_decompress_ptr cinfo)
{
  JpegLoad *ld = cinfo->client_data;
  gsize n = st_image_input_read (ld->in, ld->buffer, sizeof ld->buffer);
  if (n == 0)
    {
      if (ferror (ld->in->fp))
        {
          char reason[ST_IMAGE_REASON_SIZE];
          g_snprintf (reason, sizeof reason, "cannot read: %s", g_strerror (errno));
          jpeg_load_fail (ld, ST_ERROR_IO, reason);
        }
      /* libjpeg would insert an EOI, warn and pad the image with grey. */
      jpeg_load_fail (ld, ST_ERROR_IMAGE,
                      "truncated JPEG file (it ends before the image is complete)");
    }
  ld->source.next_input_byte = ld->buffer;
  ld->source.bytes_in_buffer = n;
  return TRUE;
}

static void
jpeg_source_skip (j_decompress_ptr cinfo, long count)
{
  struct jpeg_source_mgr *src = cinfo->src;
  if (count <= 0)
    return;
  while ((size_t) count > src->bytes_in_buffer)
    {
      count -= (long) src->bytes_in_buffer;
      jpeg_source_fill (cinfo);
    }
  src->next_input_byte += count;
  src->bytes_in_buffer -= count;
}

static void
jpeg_source_term (G_GNUC_UNUSED j_decompress_ptr cinfo)
{
}

/* EXIF and XMP from the saved APP1 markers, the ICC profile from the APP2
 * markers it is split over; orientation the one the reader applies. */
static void
jpeg_read_metadata (j_decompress_ptr cinfo, int orientation, StImageMetadata *m)
{
  for (jpeg_saved_marker_ptr mk = cinfo->marker_list; mk; mk = mk->next)
    {
      if (mk->marker != JPEG_APP0 + 1)
        continue;
      if (!m->exif && mk->data_length > JPEG_EXIF_PREFIX_SIZE
          && memcmp (mk->data, jpeg_exif_prefix, JPEG_EXIF_PREFIX_SIZE) == 0)
        st_image_metadata_set (&m->exif, mk->data + JPEG_EXIF_PREFIX_SIZE,
                               mk->data_length - JPEG_EXIF_PREFIX_SIZE);
      else if (!m->xmp && mk->data_length > JPEG_XMP_PREFIX_SIZE
               && memcmp (mk->data, jpeg_xmp_prefix, JPEG_XMP_PREFIX_SIZE) == 0)
        st_image_metadata_set (&m->xmp, mk->data + JPEG_XMP_PREFIX_SIZE,
                               mk->data_length - JPEG_XMP_PREFIX_SIZE);
    }
  if (orientation != 1)
    {
      GBytes *upright = st_image_exif_upright (m->exif);
      if (upright)
        {
          g_bytes_unref (m->exif);
          m->exif = upright;
        }
    }
  JOCTET *icc = NULL;
  unsigned int icc_size = 0;
  /* FALSE, with nothing allocated, when there is none or its chunks do not
   * fit together. */
  if (jpeg_read_icc_profile (cinfo, &icc, &icc_size))
    st_image_metadata_set (&m->icc, icc, icc_size);
  free (icc);
}

/* The EXIF orientation (1 to 8) from a saved APP1 marker, 1 if none. */
static int
jpeg_exif_orientation (j_decompress_ptr cinfo)
{
  for (jpeg_saved_marker_ptr m = cinfo->marker_list; m; m = m->next)
    {
      if (m->marker != JPEG_APP0 + 1 || m->data_length < 6
          || memcmp (m->data, "Exif\0\0", 6) != 0)
        continue;
      return st_image_exif_orientation (m->data, m->data_length);
    }
  return 1;
}

/* Adobe CMYK (the common kind, from Photoshop) stores inverted inks: 255 is
 * no ink.  Without the Adobe marker, values are plain ink amounts.  Converts
 * naively (no colour profile), in place, to RGBX. */
static void
cmyk_to_rgbx_row (guint8 *row, int width, gboolean inverted)
{
  const unsigned flip = inverted ? 0 : 255;
  for (guint8 *p = row; p < row + 4 * (gsize) width; p += 4)
    {
      const unsigned k = p[3] ^ flip;
      p[0] = ((p[0] ^ flip) * k + 127) / 255;
      p[1] = ((p[1] ^ flip) * k + 127) / 255;
      p[2] = ((p[2] ^ flip) * k + 127) / 255;
    }
}

static void
jpeg_cmyk_rows (JpegLoad *ld, int n)
{
  if (ld->cmyk)
    for (int r = 0; r < n; r++)
      cmyk_to_rgbx_row (ld->rows[r], ld->cinfo.output_width, ld->cinfo.saw_Adobe_marker);
}

/* Reads the header and starts decompressing; an image whose orientation
 * reorders the rows is decoded whole here. */
static gboolean
jpeg_open_run (JpegLoad *ld)
{
  j_decompress_ptr cinfo = &ld->cinfo;

  if (setjmp (ld->jump))
    return FALSE;

  jpeg_create_decompress (cinfo);
  ld->created = TRUE;
  cinfo->src = &ld->source;
  ld->progress.progress_monitor = jpeg_scan_limit;
  cinfo->progress = &ld->progress;
  jpeg_save_markers (cinfo, JPEG_APP0 + 1, 0xffff);
  jpeg_save_markers (cinfo, JPEG_APP0 + 2, 0xffff);
  if (jpeg_read_header (cinfo, TRUE) != JPEG_HEADER_OK)
    jpeg_load_fail (ld, ST_ERROR_IMAGE, "invalid JPEG file (it holds no image)");

  if (!st_image_check_pixel_limit (ld->in->path, cinfo->image_width, cinfo->image_height,
                          ld->max_pixels, &ld->error))
    return FALSE;

  switch (cinfo->jpeg_color_space)
    {
    case JCS_GRAYSCALE:
      cinfo->out_color_space = JCS_GRAYSCALE;
      break;
    case JCS_YCbCr:
    case JCS_RGB:
#ifdef JCS_EXTENSIONS
      /* libjpeg-turbo's RGBX: whole 32-bit pixels, quick to split. */
      cinfo->out_color_space = JCS_EXT_RGBX;
#else
      cinfo->out_color_space = JCS_RGB;
#endif
      break;
    case JCS_CMYK:
    case JCS_YCCK:
      cinfo->out_color_space = JCS_CMYK;
      ld->cmyk = TRUE;
      break;
    default:
      {
        char reason[ST_IMAGE_REASON_SIZE];
        g_snprintf (reason, sizeof reason,
                    "unsupported JPEG colour space (%d components; expected gray, RGB or CMYK)",
                    cinfo->num_components);
        jpeg_load_fail (ld, ST_ERROR_IMAGE, reason);
      }
    }

  ld->orientation = jpeg_exif_orientation (cinfo);
  jpeg_read_metadata (cinfo, ld->orientation, &ld->metadata);
  jpeg_start_decompress (cinfo);

  const int width = cinfo->output_width, height = cinfo->output_height;
  ld->pixel_bytes = cinfo->output_components;
  ld->channels = ld->pixel_bytes == 1 ? 1 : 3;
  ld->rows = cinfo->mem->alloc_sarray ((j_common_ptr) cinfo, JPOOL_IMAGE,
                                       (JDIMENSION) width * ld->pixel_bytes,
                                       JPEG_ROWS_PER_CALL);
  if (st_image_orientation_streams (ld->orientation))
    return TRUE;

  const gboolean transposed = ld->orientation >= 5;
  ld->whole = st_image_new_tensor (ld->in->path, ld->channels,
                                transposed ? width : height,
                                transposed ? height : width, &ld->error);
  if (!ld->whole)
    return FALSE;
  const StImagePlacement place = st_image_placement_for_orientation (ld->orientation, width,
                                                                     height);
  while (cinfo->output_scanline < cinfo->output_height)
    {
      const int y0 = cinfo->output_scanline;
      const int n = jpeg_read_scanlines (cinfo, ld->rows, JPEG_ROWS_PER_CALL);
      if (n <= 0)
        jpeg_load_fail (ld, ST_ERROR_IMAGE, "truncated JPEG file");
      jpeg_cmyk_rows (ld, n);
      st_image_store_rows_u8 (ld->whole, &place, width, ld->rows, ld->pixel_bytes, y0, n,
                              ld->table);
    }
  /* Reads on to EOI, so a file that lacks it is refused as truncated
   * whether or not libjpeg's read-ahead happened to reach the end. */
  jpeg_finish_decompress (cinfo);
  return TRUE;
}

static gboolean
jpeg_rows_run (JpegLoad *ld)
{
  j_decompress_ptr cinfo = &ld->cinfo;

  if (setjmp (ld->jump))
    return FALSE;

  const int width = cinfo->output_width;
  const ptrdiff_t xstep = ld->orientation == 2 ? -1 : 1;
  for (int done = 0; done < ld->n_rows;)
    {
      const int n = jpeg_read_scanlines (cinfo, ld->rows,
                                         MIN (JPEG_ROWS_PER_CALL, ld->n_rows - done));
      if (n <= 0)
        jpeg_load_fail (ld, ST_ERROR_IMAGE, "truncated JPEG file");
      jpeg_cmyk_rows (ld, n);
      for (int r = 0; r < n; r++)
        {
          float *planes[3];
          st_image_row_planes (ld->dst, ld->dst_row + done + r, planes);
          if (xstep < 0)
            for (int c = 0; c < ld->channels; c++)
              planes[c] += width - 1;
          st_image_row_u8_to_planes (planes, ld->channels, xstep, ld->rows[r], ld->pixel_bytes,
                            width, ld->table);
        }
      done += n;
    }
  if (cinfo->output_scanline == cinfo->output_height)
    jpeg_finish_decompress (cinfo);
  return TRUE;
}

static void
jpeg_load_take_error (JpegLoad *ld, GError **error)
{
  st_image_take_error (error, &ld->error, ld->in->path, ld->code, ld->reason);
}

static void
jpeg_reader_close (gpointer reader)
{
  JpegLoad *ld = reader;
  if (!ld)
    return;
  if (ld->created)
    jpeg_destroy_decompress (&ld->cinfo);
  st_tensor_free (ld->whole);
  g_clear_pointer (&ld->metadata.icc, g_bytes_unref);
  g_clear_pointer (&ld->metadata.exif, g_bytes_unref);
  g_clear_pointer (&ld->metadata.xmp, g_bytes_unref);
  g_clear_error (&ld->error);
  g_free (ld);
}

static gpointer
jpeg_reader_open (StImageInput *in, guint64 max_pixels, StImageHeader *header,
                  GError **error)
{
  JpegLoad *ld = g_new0 (JpegLoad, 1);
  ld->in = in;
  ld->max_pixels = max_pixels;
  ld->table = st_image_unit_table ();
  ld->code = ST_ERROR_IMAGE;
  ld->cinfo.client_data = ld;
  ld->cinfo.err = jpeg_std_error (&ld->jerr);
  ld->jerr.error_exit = jpeg_load_error_exit;
  ld->jerr.output_message = jpeg_silent_output;
  ld->jerr.emit_message = jpeg_load_emit;
  ld->source.init_source = jpeg_source_init;
  ld->source.fill_input_buffer = jpeg_source_fill;
  ld->source.skip_input_data = jpeg_source_skip;
  ld->source.resync_to_restart = jpeg_resync_to_restart;
  ld->source.term_source = jpeg_source_term;

  if (!jpeg_open_run (ld))
    {
      jpeg_load_take_error (ld, error);
      jpeg_reader_close (ld);
      return NULL;
    }
  const gboolean transposed = ld->orientation >= 5;
  const int w = ld->cinfo.output_width, h = ld->cinfo.output_height;
  header->width = transposed ? h : w;
  header->height = transposed ? w : h;
  header->channels = ld->channels;
  header->info = (StImageInfo) { ST_FORMAT_JPEG, 8, FALSE };
  header->whole = g_steal_pointer (&ld->whole);
  header->metadata = ld->metadata;
  ld->metadata = (StImageMetadata) { 0 };
  return ld;
}

static gboolean
jpeg_reader_read (gpointer reader, StTensor *dst, int first_row, int n_rows, GError **error)
{
  JpegLoad *ld = reader;
  ld->dst = dst;
  ld->dst_row = first_row;
  ld->n_rows = n_rows;
  const gboolean ok = jpeg_rows_run (ld);
  ld->dst = NULL;
  if (!ok)
    jpeg_load_take_error (ld, error);
  return ok;
}


/* ---- JPEG writing ------------------------------------------------------ */

typedef struct {
  struct jpeg_compress_struct cinfo;
  struct jpeg_error_mgr jerr;
  jmp_buf jump;
  gboolean created;
  const char *path;
  FILE *fp;
  int width, height;
  int planes;                  /* taken from the source: 1 or 3 */
  int channels;                /* bytes a pixel given to libjpeg */
  int quality;
  StImageMetadata metadata;    /* the writer's, borrowed */
  JSAMPARRAY rows;
  StImageRows src;
  int code;
  char reason[ST_IMAGE_REASON_SIZE];
} JpegSave;

static void
jpeg_save_error_exit (j_common_ptr cinfo)
{
  JpegSave *job = cinfo->client_data;
  /* libjpeg's stdio destination raises JERR_FILE_WRITE right after a short
   * fwrite, so errno still says why ("out of disk space?" only guesses). */
  const int saved_errno = errno;
  if (cinfo->err->msg_code == JERR_FILE_WRITE)
    {
      job->code = ST_ERROR_IO;
      g_snprintf (job->reason, sizeof job->reason, "cannot write: %s", g_strerror (saved_errno));
    }
  else
    {
      char message[JMSG_LENGTH_MAX];
      cinfo->err->format_message (cinfo, message);
      job->code = ST_ERROR_IMAGE;
      g_snprintf (job->reason, sizeof job->reason, "cannot write JPEG (%s)", message);
    }
  longjmp (job->jump, 1);
}

static void
jpeg_save_emit (G_GNUC_UNUSED j_common_ptr cinfo, G_GNUC_UNUSED int level)
{
}

/* One APP1 marker of prefix and blob; a blob too large for one is left out
 * (extended XMP and EXIF over several markers are rare and unsupported). */
static void
jpeg_write_app1 (j_compress_ptr cinfo, const char *prefix, gsize prefix_size, GBytes *blob)
{
  gsize size;
  const guint8 *data = g_bytes_get_data (blob, &size);
  if (size > JPEG_MARKER_MAX_DATA - prefix_size)
    return;
  jpeg_write_m_header (cinfo, JPEG_APP0 + 1, (unsigned int) (prefix_size + size));
  for (gsize i = 0; i < prefix_size; i++)
    jpeg_write_m_byte (cinfo, prefix[i]);
  for (gsize i = 0; i < size; i++)
    jpeg_write_m_byte (cinfo, data[i]);
}

static void
jpeg_save_metadata (j_compress_ptr cinfo, const StImageMetadata *m)
{
  if (m->exif)
    jpeg_write_app1 (cinfo, jpeg_exif_prefix, JPEG_EXIF_PREFIX_SIZE, m->exif);
  if (m->xmp)
    jpeg_write_app1 (cinfo, jpeg_xmp_prefix, JPEG_XMP_PREFIX_SIZE, m->xmp);
  if (m->icc)
    {
      gsize size;
      const guint8 *data = g_bytes_get_data (m->icc, &size);
      /* Split over as many APP2 markers as it needs. */
      jpeg_write_icc_profile (cinfo, data, (unsigned int) size);
    }
}

static gboolean
jpeg_save_start_run (JpegSave *job)
{
  j_compress_ptr cinfo = &job->cinfo;

  if (setjmp (job->jump))
    return FALSE;

  jpeg_create_compress (cinfo);
  job->created = TRUE;
  jpeg_stdio_dest (cinfo, job->fp);

  cinfo->in_color_space = job->planes == 3 ? JCS_RGB : JCS_GRAYSCALE;
  job->channels = job->planes;
#ifdef JCS_EXTENSIONS
  /* libjpeg-turbo takes RGBX, which packs into whole 32-bit pixels. */
  if (job->planes == 3)
    {
      job->channels = 4;
      cinfo->in_color_space = JCS_EXT_RGBX;
    }
#endif
  cinfo->image_width = job->width;
  cinfo->image_height = job->height;
  cinfo->input_components = job->channels;
  /* libjpeg's defaults: 4:2:0 chroma, no Huffman optimisation (a second
   * pass for a few percent of size). */
  jpeg_set_defaults (cinfo);
  jpeg_set_quality (cinfo, job->quality, TRUE);
  /* The accurate integer DCT; with libjpeg-turbo's SIMD it costs little
   * more than JDCT_IFAST. */
  cinfo->dct_method = JDCT_ISLOW;
  /* EXIF's APP1 must follow SOI directly, where JFIF's APP0 would be. */
  if (job->metadata.exif
      && g_bytes_get_size (job->metadata.exif) + JPEG_EXIF_PREFIX_SIZE <= JPEG_MARKER_MAX_DATA)
    cinfo->write_JFIF_header = FALSE;
  jpeg_start_compress (cinfo, TRUE);
  jpeg_save_metadata (cinfo, &job->metadata);
  job->rows = cinfo->mem->alloc_sarray ((j_common_ptr) cinfo, JPOOL_IMAGE,
                                        (JDIMENSION) job->width * job->channels,
                                        JPEG_ROWS_PER_CALL);
  return TRUE;
}

static gboolean
jpeg_save_rows_run (JpegSave *job)
{
  if (setjmp (job->jump))
    return FALSE;

  for (int k0 = 0; k0 < job->src.n_rows; k0 += JPEG_ROWS_PER_CALL)
    {
      const int n = MIN (JPEG_ROWS_PER_CALL, job->src.n_rows - k0);
      for (int r = 0; r < n; r++)
        {
          const float *row[3];
          st_image_rows_row (&job->src, job->planes, job->width, k0 + r, row);
          st_image_pack_row_u8 (row, job->planes, job->channels, job->width, job->rows[r]);
        }
      jpeg_write_scanlines (&job->cinfo, job->rows, n);
    }
  return TRUE;
}

static gboolean
jpeg_save_end_run (JpegSave *job)
{
  if (setjmp (job->jump))
    return FALSE;
  jpeg_finish_compress (&job->cinfo);
  return TRUE;
}

static void
jpeg_writer_free (gpointer writer)
{
  JpegSave *job = writer;
  if (!job)
    return;
  if (job->created)
    jpeg_destroy_compress (&job->cinfo);
  g_free (job);
}

/* A JPEG is always 8-bit, whatever bit depth the caller keeps. */
static gboolean
jpeg_writer_check (const StImageWriteSpec *spec, GError **error)
{
  if (spec->lossless)
    {
      g_set_error (error, ST_ERROR, ST_ERROR_IMAGE,
                   "%s: JPEG cannot be written lossless (--lossless: write WebP, PNG or TIFF)",
                   spec->path);
      return FALSE;
    }
  if (spec->quality < 1 || spec->quality > 100)
    {
      g_set_error (error, ST_ERROR, ST_ERROR_IMAGE,
                   "%s: JPEG quality %d is out of range (expected 1 to 100)",
                   spec->path, spec->quality);
      return FALSE;
    }
  if (spec->width > JPEG_MAX_DIMENSION || spec->height > JPEG_MAX_DIMENSION)
    {
      g_set_error (error, ST_ERROR, ST_ERROR_IMAGE,
                   "%s: a JPEG is at most %d pixels a side, this image is %dx%d",
                   spec->path, (int) JPEG_MAX_DIMENSION, spec->width, spec->height);
      return FALSE;
    }
  return TRUE;
}

static gpointer
jpeg_writer_open (FILE *fp, const StImageWriteSpec *spec, GError **error)
{
  JpegSave *job = g_new0 (JpegSave, 1);
  job->path = spec->path;
  job->fp = fp;
  job->width = spec->width;
  job->height = spec->height;
  /* JPEG has no alpha: gray + alpha becomes gray, RGBA becomes RGB. */
  job->planes = spec->channels >= 3 ? 3 : 1;
  job->quality = spec->quality;
  job->metadata = spec->metadata;
  job->cinfo.client_data = job;
  job->cinfo.err = jpeg_std_error (&job->jerr);
  job->jerr.error_exit = jpeg_save_error_exit;
  job->jerr.output_message = jpeg_silent_output;
  job->jerr.emit_message = jpeg_save_emit;
  if (!jpeg_save_start_run (job))
    {
      g_set_error (error, ST_ERROR, job->code, "%s: %s", job->path, job->reason);
      jpeg_writer_free (job);
      return NULL;
    }
  return job;
}

static gboolean
jpeg_writer_write (gpointer writer, const StImageRows *rows, GError **error)
{
  JpegSave *job = writer;
  job->src = *rows;
  if (jpeg_save_rows_run (job))
    return TRUE;
  g_set_error (error, ST_ERROR, job->code, "%s: %s", job->path, job->reason);
  return FALSE;
}

static gboolean
jpeg_writer_finish (gpointer writer, GError **error)
{
  JpegSave *job = writer;
  if (jpeg_save_end_run (job))
    return TRUE;
  g_set_error (error, ST_ERROR, job->code, "%s: %s", job->path, job->reason);
  return FALSE;
}

/* ---- The format ---------------------------------------------------------- */

static StImageMatch
jpeg_match (const guint8 *head, gsize head_len)
{
  return st_image_match_magic (head, head_len, jpeg_signature, sizeof jpeg_signature);
}

static const char *const jpeg_extensions[] = { "jpg", "jpeg", NULL };

const StImageCodec st_image_jpeg_codec = {
  .format = ST_FORMAT_JPEG,
  .name = "JPEG",
  .extensions = jpeg_extensions,
  .match = jpeg_match,
  .reader_open = jpeg_reader_open,
  .reader_read = jpeg_reader_read,
  .reader_close = jpeg_reader_close,
  .writer_check = jpeg_writer_check,
  .writer_open = jpeg_writer_open,
  .writer_write = jpeg_writer_write,
  .writer_finish = jpeg_writer_finish,
  .writer_free = jpeg_writer_free,
};
