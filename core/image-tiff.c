/* strata — TIFF images through libtiff.
 *
 * libtiff needs to seek, and the input may be standard input, so a TIFF is
 * read into memory first and libtiff reads it there; a TIFF being written
 * is likewise built in memory and copied to the stream at the end.  Only
 * the first page (directory) of a multi-page file is read.
 *
 * libtiff's global error handlers are shared by every thread, so each
 * handle gets its own (TIFFOpenOptions, libtiff 4.5) writing into the
 * struct of the read or write it belongs to.
 *
 * Gray and RGB images of 8 or 16 bits, with or without alpha, in strips
 * or tiles, are decoded directly and keep their depth; every other layout
 * (palette, YCbCr JPEG, min-is-white, 1 to 4 bits...) goes through
 * libtiff's RGBA interface, decoded whole when opened, as 8-bit. */
#include "image-format.h"

#include <errno.h>
#include <string.h>

#include <tiffio.h>

/* ---- The file in memory, for libtiff's client procedures ------------------ */

typedef struct {
  guint8 *data;
  gsize size, capacity;
  gsize pos;
} TiffMemory;

static tmsize_t
tiff_memory_read (thandle_t handle, void *buf, tmsize_t size)
{
  TiffMemory *m = handle;
  gsize n = m->pos < m->size ? MIN ((gsize) size, m->size - m->pos) : 0;
  memcpy (buf, m->data + m->pos, n);
  m->pos += n;
  return n;
}

static tmsize_t
tiff_memory_write (thandle_t handle, void *buf, tmsize_t size)
{
  TiffMemory *m = handle;
  gsize end;
  if (!g_size_checked_add (&end, m->pos, size))
    return -1;
  if (end > m->capacity)
    {
      gsize capacity = MAX (end, m->capacity * 2);
      guint8 *data = g_try_realloc (m->data, capacity);
      if (!data)
        return -1;
      m->data = data;
      m->capacity = capacity;
    }
  if (m->pos > m->size)
    memset (m->data + m->size, 0, m->pos - m->size);
  memcpy (m->data + m->pos, buf, size);
  m->pos = end;
  m->size = MAX (m->size, end);
  return size;
}

static toff_t
tiff_memory_seek (thandle_t handle, toff_t offset, int whence)
{
  TiffMemory *m = handle;
  gint64 base = whence == SEEK_CUR ? (gint64) m->pos : whence == SEEK_END ? (gint64) m->size : 0;
  gint64 pos = base + (gint64) offset;
  if (pos < 0)
    return (toff_t) -1;
  m->pos = pos;
  return pos;
}

static int
tiff_memory_close (G_GNUC_UNUSED thandle_t handle)
{
  return 0;
}

static toff_t
tiff_memory_size (thandle_t handle)
{
  return ((TiffMemory *) handle)->size;
}

static int
tiff_memory_map (G_GNUC_UNUSED thandle_t handle, G_GNUC_UNUSED void **base,
                 G_GNUC_UNUSED toff_t *size)
{
  return 0;
}

static void
tiff_memory_unmap (G_GNUC_UNUSED thandle_t handle, G_GNUC_UNUSED void *base,
                   G_GNUC_UNUSED toff_t size)
{
}

#define TIFF_HANDLE_NAME "tiff"

/* The first error libtiff reports on one handle. */
typedef struct {
  char reason[ST_IMAGE_REASON_SIZE];
} TiffErrors;

static int
tiff_record_error (G_GNUC_UNUSED TIFF *tif, void *user_data, G_GNUC_UNUSED const char *module,
                   const char *fmt, va_list ap)
{
  TiffErrors *errors = user_data;
  if (errors->reason[0] != '\0')
    return 1;
  g_vsnprintf (errors->reason, sizeof errors->reason, fmt, ap);
  /* Some messages start with the handle's name: the path is named already. */
  const gsize prefix = strlen (TIFF_HANDLE_NAME ": ");
  if (strncmp (errors->reason, TIFF_HANDLE_NAME ": ", prefix) == 0)
    memmove (errors->reason, errors->reason + prefix, strlen (errors->reason + prefix) + 1);
  return 1;
}

static int
tiff_ignore_warning (G_GNUC_UNUSED TIFF *tif, G_GNUC_UNUSED void *user_data,
                     G_GNUC_UNUSED const char *module, G_GNUC_UNUSED const char *fmt,
                     G_GNUC_UNUSED va_list ap)
{
  return 1;
}

static TIFF *
tiff_open_memory (const char *mode, TiffMemory *m, TiffErrors *errors)
{
  TIFFOpenOptions *opts = TIFFOpenOptionsAlloc ();
  TIFFOpenOptionsSetErrorHandlerExtR (opts, tiff_record_error, errors);
  TIFFOpenOptionsSetWarningHandlerExtR (opts, tiff_ignore_warning, NULL);
  TIFF *tif = TIFFClientOpenExt (TIFF_HANDLE_NAME, mode, m, tiff_memory_read, tiff_memory_write,
                                 tiff_memory_seek, tiff_memory_close, tiff_memory_size,
                                 tiff_memory_map, tiff_memory_unmap, opts);
  TIFFOpenOptionsFree (opts);
  return tif;
}

/* Native-endian 16-bit samples to big-endian and back, in place, so the
 * shared big-endian converters serve. */
static void
tiff_swap_u16 (guint8 *bytes, gsize n_samples)
{
#if G_BYTE_ORDER == G_LITTLE_ENDIAN
  for (gsize i = 0; i < n_samples; i++)
    {
      guint8 t = bytes[2 * i];
      bytes[2 * i] = bytes[2 * i + 1];
      bytes[2 * i + 1] = t;
    }
#else
  (void) bytes;
  (void) n_samples;
#endif
}

/* ---- TIFF reading ----------------------------------------------------------- */

typedef struct {
  StImageInput *in;
  TiffMemory file;
  TiffErrors errors;
  TIFF *tif;
  int width, height, channels, bit_depth;
  gboolean tiled;
  guint8 *row;                 /* one decoded row (strips) */
  guint8 *pixels;              /* every row (tiles) */
  gsize rowbytes;
  int next_row;
  const float *table;
} TiffLoad;

static void
tiff_reader_close (gpointer reader)
{
  TiffLoad *ld = reader;
  if (!ld)
    return;
  if (ld->tif)
    TIFFClose (ld->tif);
  g_free (ld->file.data);
  g_free (ld->row);
  g_free (ld->pixels);
  g_free (ld);
}

/* "PATH: invalid TIFF file (WHAT: LIBTIFF'S REASON)" */
static void
tiff_load_error (TiffLoad *ld, const char *what, GError **error)
{
  if (ld->errors.reason[0])
    g_set_error (error, ST_ERROR, ST_ERROR_IMAGE, "%s: invalid TIFF file (%s: %s)",
                 ld->in->path, what, ld->errors.reason);
  else
    g_set_error (error, ST_ERROR, ST_ERROR_IMAGE, "%s: invalid TIFF file (%s)",
                 ld->in->path, what);
}

/* Whether the layout is one decoded as it is stored, keeping its depth. */
static gboolean
tiff_is_direct (guint16 photometric, guint16 samples, guint16 bits, guint16 format,
                guint16 planar)
{
  if ((bits != 8 && bits != 16) || format != SAMPLEFORMAT_UINT || planar != PLANARCONFIG_CONTIG)
    return FALSE;
  return (photometric == PHOTOMETRIC_MINISBLACK && samples <= 2)
         || (photometric == PHOTOMETRIC_RGB && (samples == 3 || samples == 4));
}

static void
tiff_store_row (TiffLoad *ld, StTensor *dst, int row, guint8 *src)
{
  float *planes[4];
  st_image_row_planes (dst, row, planes);
  if (ld->bit_depth == 16)
    {
      tiff_swap_u16 (src, (gsize) ld->width * ld->channels);
      st_image_row_u16be_to_planes (planes, ld->channels, src, ld->width);
    }
  else
    st_image_row_u8_to_planes (planes, ld->channels, 1, src, ld->channels, ld->width, ld->table);
}

/* Every tile into ld->pixels. */
static gboolean
tiff_read_tiles (TiffLoad *ld, GError **error)
{
  guint32 tw = 0, th = 0;
  TIFFGetField (ld->tif, TIFFTAG_TILEWIDTH, &tw);
  TIFFGetField (ld->tif, TIFFTAG_TILELENGTH, &th);
  const tmsize_t tile_size = TIFFTileSize (ld->tif);
  gsize total;
  if (tw == 0 || th == 0 || tile_size <= 0
      || !g_size_checked_mul (&total, ld->rowbytes, ld->height)
      || !(ld->pixels = g_try_malloc (total)))
    {
      tiff_load_error (ld, "bad tile layout", error);
      return FALSE;
    }
  g_autofree guint8 *tile = g_try_malloc (tile_size);
  if (!tile)
    {
      tiff_load_error (ld, "bad tile size", error);
      return FALSE;
    }
  const gsize pixel_bytes = ld->rowbytes / ld->width;
  for (guint32 y = 0; y < (guint32) ld->height; y += th)
    for (guint32 x = 0; x < (guint32) ld->width; x += tw)
      {
        if (TIFFReadTile (ld->tif, tile, x, y, 0, 0) < 0)
          {
            tiff_load_error (ld, "cannot decode a tile", error);
            return FALSE;
          }
        const guint32 rows = MIN (th, (guint32) ld->height - y);
        const guint32 cols = MIN (tw, (guint32) ld->width - x);
        for (guint32 r = 0; r < rows; r++)
          memcpy (ld->pixels + (y + r) * ld->rowbytes + x * pixel_bytes,
                  tile + (gsize) r * tw * pixel_bytes, cols * pixel_bytes);
      }
  return TRUE;
}

/* Any other layout, through the RGBA interface, into a whole tensor. */
static StTensor *
tiff_read_rgba (TiffLoad *ld, guint16 photometric, gboolean alpha, GError **error)
{
  char emsg[1024] = "";
  if (!TIFFRGBAImageOK (ld->tif, emsg))
    {
      g_set_error (error, ST_ERROR, ST_ERROR_IMAGE, "%s: unsupported TIFF layout (%s)",
                   ld->in->path, emsg);
      return NULL;
    }
  const gboolean gray = photometric == PHOTOMETRIC_MINISBLACK
                        || photometric == PHOTOMETRIC_MINISWHITE;
  ld->channels = (gray ? 1 : 3) + (alpha ? 1 : 0);
  ld->bit_depth = 8;
  gsize n;
  g_autofree guint32 *raster = NULL;
  if (!g_size_checked_mul (&n, (gsize) ld->width * sizeof (guint32), ld->height)
      || !(raster = g_try_malloc (n)))
    {
      g_set_error (error, ST_ERROR, ST_ERROR_IMAGE, "%s: not enough memory for a %dx%d image",
                   ld->in->path, ld->width, ld->height);
      return NULL;
    }
  if (!TIFFReadRGBAImageOriented (ld->tif, ld->width, ld->height, raster,
                                  ORIENTATION_TOPLEFT, 0))
    {
      tiff_load_error (ld, "cannot decode the image", error);
      return NULL;
    }
  StTensor *t = st_image_new_tensor (ld->in->path, ld->channels, ld->height, ld->width, error);
  if (!t)
    return NULL;
  g_autofree guint8 *row = g_malloc ((gsize) ld->width * 4);
  for (int y = 0; y < ld->height; y++)
    {
      const guint32 *src = raster + (gsize) y * ld->width;
      for (int x = 0; x < ld->width; x++)
        {
          guint8 *p = row + 4 * x;
          p[0] = TIFFGetR (src[x]);
          if (gray)
            p[1] = TIFFGetA (src[x]);
          else
            {
              p[1] = TIFFGetG (src[x]);
              p[2] = TIFFGetB (src[x]);
              p[3] = TIFFGetA (src[x]);
            }
        }
      float *planes[4];
      st_image_row_planes (t, y, planes);
      st_image_row_u8_to_planes (planes, ld->channels, 1, row, 4, ld->width, ld->table);
    }
  return t;
}

/* The ICC profile, the XMP packet and the EXIF of the first page (EXIF
 * is directories of the file's own, copied out into a block). */
static void
tiff_read_metadata (TIFF *tif, const TiffMemory *file, StImageMetadata *m)
{
  if (!TIFFIsBigTIFF (tif))
    m->exif = st_image_exif_from_tiff (file->data, file->size);
  guint32 size = 0;
  void *data = NULL;
  if (TIFFGetField (tif, TIFFTAG_ICCPROFILE, &size, &data))
    st_image_metadata_set (&m->icc, data, size);
  if (TIFFGetField (tif, TIFFTAG_XMLPACKET, &size, &data))
    st_image_metadata_set (&m->xmp, data, size);
}

static gpointer
tiff_reader_open (StImageInput *in, guint64 max_pixels, StImageHeader *header, GError **error)
{
  TiffLoad *ld = g_new0 (TiffLoad, 1);
  ld->in = in;
  ld->table = st_image_unit_table ();
  if (!(ld->file.data = st_image_input_read_all (in, &ld->file.size, error)))
    goto fail;
  ld->tif = tiff_open_memory ("rm", &ld->file, &ld->errors);
  if (!ld->tif)
    {
      tiff_load_error (ld, "cannot read the header", error);
      goto fail;
    }

  guint32 width = 0, height = 0;
  guint16 photometric = 0, samples = 1, bits = 1, format = SAMPLEFORMAT_UINT;
  guint16 planar = PLANARCONFIG_CONTIG, n_extra = 0, *extra = NULL;
  if (!TIFFGetField (ld->tif, TIFFTAG_IMAGEWIDTH, &width)
      || !TIFFGetField (ld->tif, TIFFTAG_IMAGELENGTH, &height) || width == 0 || height == 0)
    {
      tiff_load_error (ld, "no image size", error);
      goto fail;
    }
  if (!st_image_check_pixel_limit (in->path, width, height, max_pixels, error))
    goto fail;
  if (width > G_MAXINT / 8 || height > G_MAXINT)
    {
      g_set_error (error, ST_ERROR, ST_ERROR_IMAGE, "%s: image is %ux%u, too large to hold",
                   in->path, width, height);
      goto fail;
    }
  TIFFGetFieldDefaulted (ld->tif, TIFFTAG_SAMPLESPERPIXEL, &samples);
  TIFFGetFieldDefaulted (ld->tif, TIFFTAG_BITSPERSAMPLE, &bits);
  TIFFGetFieldDefaulted (ld->tif, TIFFTAG_SAMPLEFORMAT, &format);
  TIFFGetFieldDefaulted (ld->tif, TIFFTAG_PLANARCONFIG, &planar);
  TIFFGetFieldDefaulted (ld->tif, TIFFTAG_EXTRASAMPLES, &n_extra, &extra);
  TIFFGetField (ld->tif, TIFFTAG_PHOTOMETRIC, &photometric);
  ld->width = width;
  ld->height = height;
  ld->tiled = TIFFIsTiled (ld->tif);

  if (tiff_is_direct (photometric, samples, bits, format, planar))
    {
      ld->channels = samples;
      ld->bit_depth = bits;
      ld->rowbytes = (gsize) width * samples * (bits / 8);
      if (ld->tiled)
        {
          if (!tiff_read_tiles (ld, error))
            goto fail;
        }
      else if ((gsize) TIFFScanlineSize (ld->tif) != ld->rowbytes)
        {
          tiff_load_error (ld, "bad strip layout", error);
          goto fail;
        }
      else
        ld->row = g_malloc (ld->rowbytes);
    }
  else
    {
      header->whole = tiff_read_rgba (ld, photometric, n_extra > 0, error);
      if (!header->whole)
        goto fail;
    }

  header->width = ld->width;
  header->height = ld->height;
  header->channels = ld->channels;
  header->info = (StImageInfo) { ST_FORMAT_TIFF, ld->bit_depth,
                                 ld->channels == 2 || ld->channels == 4 };
  tiff_read_metadata (ld->tif, &ld->file, &header->metadata);
  return ld;

fail:
  tiff_reader_close (ld);
  return NULL;
}

static gboolean
tiff_reader_read (gpointer reader, StTensor *dst, int first_row, int n_rows, GError **error)
{
  TiffLoad *ld = reader;
  for (int k = 0; k < n_rows; k++, ld->next_row++)
    {
      if (ld->tiled)
        {
          /* Converted in a copy: the stored bytes stay as libtiff gave them. */
          memcpy (ld->row ? ld->row : (ld->row = g_malloc (ld->rowbytes)),
                  ld->pixels + (gsize) ld->next_row * ld->rowbytes, ld->rowbytes);
        }
      else if (TIFFReadScanline (ld->tif, ld->row, ld->next_row, 0) < 0)
        {
          g_autofree char *what = g_strdup_printf ("cannot decode row %d", ld->next_row);
          tiff_load_error (ld, what, error);
          return FALSE;
        }
      tiff_store_row (ld, dst, first_row + k, ld->row);
    }
  return TRUE;
}

/* ---- TIFF writing ----------------------------------------------------------- */

typedef struct {
  const char *path;
  FILE *fp;
  TiffMemory file;
  TiffErrors errors;
  TIFF *tif;
  int width, channels, bit_depth;
  int next_row;
  guint8 *row;
  GBytes *exif;                /* the writer's, borrowed */
  guint exif_ifds[2];          /* the tags of the directories to copy in */
  int n_exif_ifds;
} TiffSave;

static void
tiff_writer_free (gpointer writer)
{
  TiffSave *job = writer;
  if (!job)
    return;
  if (job->tif)
    TIFFClose (job->tif);
  g_free (job->file.data);
  g_free (job->row);
  g_free (job);
}

static void
tiff_save_error (TiffSave *job, const char *what, GError **error)
{
  g_set_error (error, ST_ERROR, ST_ERROR_IMAGE, "%s: cannot write TIFF (%s%s%s)", job->path,
               what, job->errors.reason[0] ? ": " : "", job->errors.reason);
}

static gboolean
tiff_writer_check (const StImageWriteSpec *spec, GError **error)
{
  if (spec->bit_depth != 8 && spec->bit_depth != 16)
    {
      g_set_error (error, ST_ERROR, ST_ERROR_IMAGE,
                   "%s: cannot write a TIFF of bit depth %d (expected 8 or 16)",
                   spec->path, spec->bit_depth);
      return FALSE;
    }
  return TRUE;
}

/* EXIF's camera, date and author text as the file's own tags; its EXIF
 * and GPS directories are copied in when the file is complete, the
 * entries that point at them made now. */
static void
tiff_set_exif (TiffSave *job, GBytes *exif)
{
  static const guint text_tags[] = {
    TIFFTAG_IMAGEDESCRIPTION, TIFFTAG_MAKE, TIFFTAG_MODEL, TIFFTAG_SOFTWARE,
    TIFFTAG_DATETIME, TIFFTAG_ARTIST, TIFFTAG_COPYRIGHT,
  };
  gsize size;
  const guint8 *data = g_bytes_get_data (exif, &size);
  for (gsize i = 0; i < G_N_ELEMENTS (text_tags); i++)
    {
      g_autofree char *text = st_image_exif_ifd0_text (data, size, text_tags[i]);
      if (text)
        TIFFSetField (job->tif, text_tags[i], text);
    }
  static const guint ifd_tags[] = { TIFFTAG_EXIFIFD, TIFFTAG_GPSIFD };
  for (gsize i = 0; i < G_N_ELEMENTS (ifd_tags); i++)
    if (st_image_exif_has_ifd (exif, ifd_tags[i]))
      {
        TIFFSetField (job->tif, ifd_tags[i], (guint64) 0);
        job->exif_ifds[job->n_exif_ifds++] = ifd_tags[i];
      }
  job->exif = exif;
}

static gpointer
tiff_writer_open (FILE *fp, const StImageWriteSpec *spec, GError **error)
{
  TiffSave *job = g_new0 (TiffSave, 1);
  job->path = spec->path;
  job->fp = fp;
  job->width = spec->width;
  job->channels = spec->channels;
  job->bit_depth = spec->bit_depth;
  /* EXIF's directories are copied in as they are: the file takes their
   * byte order. */
  const guint8 *exif = spec->metadata.exif ? g_bytes_get_data (spec->metadata.exif, NULL) : NULL;
  job->tif = tiff_open_memory (!exif ? "w" : exif[0] == 'M' ? "wb" : "wl", &job->file,
                               &job->errors);
  if (!job->tif)
    {
      tiff_save_error (job, "cannot start libtiff", error);
      tiff_writer_free (job);
      return NULL;
    }
  TIFF *tif = job->tif;
  const gboolean alpha = spec->channels == 2 || spec->channels == 4;
  TIFFSetField (tif, TIFFTAG_IMAGEWIDTH, (guint32) spec->width);
  TIFFSetField (tif, TIFFTAG_IMAGELENGTH, (guint32) spec->height);
  TIFFSetField (tif, TIFFTAG_SAMPLESPERPIXEL, (guint16) spec->channels);
  TIFFSetField (tif, TIFFTAG_BITSPERSAMPLE, (guint16) spec->bit_depth);
  TIFFSetField (tif, TIFFTAG_SAMPLEFORMAT, SAMPLEFORMAT_UINT);
  TIFFSetField (tif, TIFFTAG_PLANARCONFIG, PLANARCONFIG_CONTIG);
  TIFFSetField (tif, TIFFTAG_PHOTOMETRIC,
                spec->channels <= 2 ? PHOTOMETRIC_MINISBLACK : PHOTOMETRIC_RGB);
  TIFFSetField (tif, TIFFTAG_ORIENTATION, ORIENTATION_TOPLEFT);
  if (alpha)
    {
      const guint16 extra[] = { EXTRASAMPLE_UNASSALPHA };
      TIFFSetField (tif, TIFFTAG_EXTRASAMPLES, 1, extra);
    }
  TIFFSetField (tif, TIFFTAG_COMPRESSION, COMPRESSION_ADOBE_DEFLATE);
  TIFFSetField (tif, TIFFTAG_PREDICTOR, PREDICTOR_HORIZONTAL);
  TIFFSetField (tif, TIFFTAG_ROWSPERSTRIP, TIFFDefaultStripSize (tif, 0));
  gsize size;
  if (spec->metadata.icc)
    {
      const void *data = g_bytes_get_data (spec->metadata.icc, &size);
      TIFFSetField (tif, TIFFTAG_ICCPROFILE, (guint32) size, data);
    }
  if (spec->metadata.xmp)
    {
      const void *data = g_bytes_get_data (spec->metadata.xmp, &size);
      TIFFSetField (tif, TIFFTAG_XMLPACKET, (guint32) size, data);
    }
  if (spec->metadata.exif)
    tiff_set_exif (job, spec->metadata.exif);
  job->row = g_malloc ((gsize) spec->width * spec->channels * (spec->bit_depth / 8));
  return job;
}

static gboolean
tiff_writer_write (gpointer writer, const StImageRows *rows, GError **error)
{
  TiffSave *job = writer;
  for (int k = 0; k < rows->n_rows; k++, job->next_row++)
    {
      const float *row[4];
      st_image_rows_row (rows, job->channels, job->width, k, row);
      if (job->bit_depth == 16)
        {
          st_image_pack_row_u16be (row, job->channels, job->width, job->row);
          tiff_swap_u16 (job->row, (gsize) job->width * job->channels);
        }
      else
        st_image_pack_row_u8 (row, job->channels, job->channels, job->width, job->row);
      if (TIFFWriteScanline (job->tif, job->row, job->next_row, 0) < 0)
        {
          tiff_save_error (job, "cannot encode a row", error);
          return FALSE;
        }
    }
  return TRUE;
}

static gboolean
tiff_writer_finish (gpointer writer, GError **error)
{
  TiffSave *job = writer;
  TIFF *tif = g_steal_pointer (&job->tif);
  /* TIFFClose writes the directory; errors it meets are recorded. */
  job->errors.reason[0] = '\0';
  TIFFClose (tif);
  if (job->errors.reason[0])
    {
      tiff_save_error (job, "cannot complete the file", error);
      return FALSE;
    }
  if (job->n_exif_ifds > 0 && job->file.size < G_MAXUINT32)
    {
      /* Entries left pointing nowhere would be worse than none: the
       * directories were checked when the entries were made. */
      GByteArray *whole = g_byte_array_new_take (g_steal_pointer (&job->file.data),
                                                 job->file.size);
      for (int i = 0; i < job->n_exif_ifds; i++)
        st_image_exif_into_tiff (whole, job->exif, job->exif_ifds[i]);
      job->file.size = whole->len;
      job->file.data = g_byte_array_free (whole, FALSE);
    }
  if (fwrite (job->file.data, 1, job->file.size, job->fp) != job->file.size)
    {
      g_set_error (error, ST_ERROR, ST_ERROR_IO, "%s: cannot write: %s", job->path,
                   g_strerror (errno));
      return FALSE;
    }
  return TRUE;
}

/* ---- The format ------------------------------------------------------------- */

static StImageMatch
tiff_match (const guint8 *head, gsize head_len)
{
  static const guint8 little[] = { 'I', 'I', 42, 0 }, big[] = { 'M', 'M', 0, 42 };
  static const guint8 little_big[] = { 'I', 'I', 43, 0 }, big_big[] = { 'M', 'M', 0, 43 };
  StImageMatch best = ST_IMAGE_MATCH_NO;
  const guint8 *const magics[] = { little, big, little_big, big_big };
  for (gsize i = 0; i < G_N_ELEMENTS (magics); i++)
    {
      StImageMatch m = st_image_match_magic (head, head_len, magics[i], 4);
      if (m == ST_IMAGE_MATCH_YES)
        return m;
      if (m == ST_IMAGE_MATCH_TRUNCATED)
        best = m;
    }
  return best;
}

static const char *const tiff_extensions[] = { "tif", "tiff", NULL };

const StImageCodec st_image_tiff_codec = {
  .format = ST_FORMAT_TIFF,
  .name = "TIFF",
  .extensions = tiff_extensions,
  .match = tiff_match,
  .reader_open = tiff_reader_open,
  .reader_read = tiff_reader_read,
  .reader_close = tiff_reader_close,
  .writer_check = tiff_writer_check,
  .writer_open = tiff_writer_open,
  .writer_write = tiff_writer_write,
  .writer_finish = tiff_writer_finish,
  .writer_free = tiff_writer_free,
};
