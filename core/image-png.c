/* strata — PNG images through libpng.
 *
 * libpng reports errors by calling a handler that must not return; it is
 * given handlers that record the reason and longjmp back.  Each setjmp
 * lives in a small *_run() function whose state is kept in a struct
 * reached through a pointer argument, so nothing the cleanup code reads is
 * a local variable clobbered by the longjmp.  Warnings are dropped. */
#include "image-format.h"

#include <errno.h>
#include <setjmp.h>
#include <string.h>

#include <png.h>

static const guint8 png_signature[8] = { 0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n' };

/* ---- PNG reading ------------------------------------------------------- */

typedef struct {
  StImageInput *in;
  guint64 max_pixels;
  png_structp png;
  png_infop info;
  guint8 *pixels;              /* one row, or every row when interlaced */
  guint8 **row_pointers;       /* while an interlaced image is read */
  gsize rowbytes;
  gboolean interlaced;
  int width, height, channels, bit_depth;
  int next_row;
  /* The current read: n_rows rows into dst from row dst_row on. */
  StTensor *dst;
  int dst_row, n_rows;
  const float *table;
  StImageMetadata metadata;    /* handed to the header when opened */
  GError *error;               /* set for errors found outside libpng */
  int code;                    /* for the libpng error in reason */
  gboolean reason_is_final;    /* reason was written by us, not by libpng */
  char reason[ST_IMAGE_REASON_SIZE];
} PngLoad;

static void
png_load_error (png_structp png, png_const_charp message)
{
  PngLoad *ld = png_get_error_ptr (png);
  if (!ld->reason_is_final)
    g_snprintf (ld->reason, sizeof ld->reason, "invalid PNG file (%s)", message);
  png_longjmp (png, 1);
}

static void
png_ignore_warning (G_GNUC_UNUSED png_structp png, G_GNUC_UNUSED png_const_charp message)
{
}

static void
png_load_read (png_structp png, png_bytep data, size_t length)
{
  PngLoad *ld = png_get_io_ptr (png);
  if (st_image_input_read (ld->in, data, length) == length)
    return;
  if (ferror (ld->in->fp))
    {
      ld->code = ST_ERROR_IO;
      g_snprintf (ld->reason, sizeof ld->reason, "cannot read: %s", g_strerror (errno));
    }
  else
    g_strlcpy (ld->reason, "truncated PNG file (it ends before the image is complete)",
               sizeof ld->reason);
  ld->reason_is_final = TRUE;
  png_error (png, ld->reason);
}

/* The keyword of the iTXt chunk that holds XMP (Adobe's XMP specification). */
#define PNG_XMP_KEYWORD "XML:com.adobe.xmp"

/* The iCCP, eXIf and XMP iTXt chunks before the image data (those after it
 * are not reached by a streaming read, and are rare). */
static void
png_read_metadata (png_structp png, png_infop info, StImageMetadata *m)
{
  png_charp name;
  int compression;
  png_bytep profile;
  png_uint_32 profile_size;
  if (png_get_iCCP (png, info, &name, &compression, &profile, &profile_size))
    st_image_metadata_set (&m->icc, profile, profile_size);
  png_bytep exif;
  png_uint_32 exif_size;
  if (png_get_eXIf_1 (png, info, &exif_size, &exif))
    st_image_metadata_set (&m->exif, exif, exif_size);
  png_textp text;
  int n_text;
  if (png_get_text (png, info, &text, &n_text) > 0)
    for (int i = 0; i < n_text; i++)
      if (strcmp (text[i].key, PNG_XMP_KEYWORD) == 0 && text[i].lang != NULL)
        st_image_metadata_set (&m->xmp, text[i].text, text[i].itxt_length);
}

static guint32
read_be32 (const guint8 *p)
{
  return (guint32) p[0] << 24 | (guint32) p[1] << 16 | (guint32) p[2] << 8 | p[3];
}

static guint32
png_crc (const guint8 *data, gsize length)
{
  guint32 crc = 0xffffffffu;
  for (gsize i = 0; i < length; i++)
    {
      crc ^= data[i];
      for (int k = 0; k < 8; k++)
        crc = (crc >> 1) ^ (0xedb88320u & -(crc & 1));
    }
  return crc ^ 0xffffffffu;
}

/* Checks the size an intact IHDR declares before libpng reads on, so that a
 * file holding little more than a huge header gets the size message rather
 * than one about what follows.  The check after png_read_info() covers the
 * rest. */
static gboolean
png_check_declared_size (StImageInput *in, guint64 max_pixels, GError **error)
{
  const guint8 *chunk = in->head + 8;
  if (in->head_len < ST_IMAGE_HEAD_SIZE || read_be32 (chunk) != 13
      || memcmp (chunk + 4, "IHDR", 4) != 0
      || png_crc (chunk + 4, 17) != read_be32 (chunk + 21))
    return TRUE;
  return st_image_check_pixel_limit (in->path, read_be32 (chunk + 8), read_be32 (chunk + 12),
                            max_pixels, error);
}

/* Reads the header and sets the transformations; an interlaced image is
 * decoded whole here, to bytes. */
static gboolean
png_open_run (PngLoad *ld)
{
  if (setjmp (png_jmpbuf (ld->png)))
    return FALSE;

  png_structp png = ld->png;
  png_infop info = ld->info;

  png_set_read_fn (png, ld, png_load_read);
  /* libpng's own limit (1000000 a side) would refuse with a vaguer message
   * than ours, so it only guards what fits in an int. */
  png_set_user_limits (png, G_MAXINT, G_MAXINT);
  png_read_info (png, info);

  png_uint_32 width, height;
  int depth, colour, interlace;
  png_get_IHDR (png, info, &width, &height, &depth, &colour, &interlace, NULL, NULL);
  if (!st_image_check_pixel_limit (ld->in->path, width, height, ld->max_pixels, &ld->error))
    return FALSE;
  png_read_metadata (png, info, &ld->metadata);

  if (colour == PNG_COLOR_TYPE_PALETTE)
    png_set_palette_to_rgb (png);
  if (colour == PNG_COLOR_TYPE_GRAY && depth < 8)
    png_set_expand_gray_1_2_4_to_8 (png);
  if (png_get_valid (png, info, PNG_INFO_tRNS))
    png_set_tRNS_to_alpha (png);
  const int passes = png_set_interlace_handling (png);
  png_read_update_info (png, info);

  ld->width = width;
  ld->height = height;
  ld->channels = png_get_channels (png, info);
  ld->bit_depth = png_get_bit_depth (png, info);
  ld->rowbytes = png_get_rowbytes (png, info);
  if (ld->channels < 1 || ld->channels > 4 || (ld->bit_depth != 8 && ld->bit_depth != 16))
    {
      g_set_error (&ld->error, ST_ERROR, ST_ERROR_IMAGE,
                   "%s: unsupported PNG layout (%d channels of %d bits)",
                   ld->in->path, ld->channels, ld->bit_depth);
      return FALSE;
    }

  if (passes == 1)
    {
      ld->pixels = g_malloc (ld->rowbytes);
      return TRUE;
    }

  /* Adam7 fills each row over seven passes, so the rows must all stay. */
  ld->interlaced = TRUE;
  gsize bytes;
  if (!g_size_checked_mul (&bytes, ld->rowbytes, height)
      || !(ld->pixels = g_try_malloc (bytes)))
    {
      g_set_error (&ld->error, ST_ERROR, ST_ERROR_IMAGE,
                   "%s: not enough memory for an interlaced %ux%u image",
                   ld->in->path, (unsigned) width, (unsigned) height);
      return FALSE;
    }
  ld->row_pointers = g_new (guint8 *, height);
  for (png_uint_32 y = 0; y < height; y++)
    ld->row_pointers[y] = ld->pixels + y * ld->rowbytes;
  png_read_image (png, ld->row_pointers);
  /* Reads up to IEND, so a file cut after its last row is still refused. */
  png_read_end (png, NULL);
  g_clear_pointer (&ld->row_pointers, g_free);
  return TRUE;
}

static void
png_store_row (PngLoad *ld, int row, const guint8 *src)
{
  float *planes[4];
  st_image_row_planes (ld->dst, row, planes);
  if (ld->bit_depth == 16)
    st_image_row_u16be_to_planes (planes, ld->channels, src, ld->width);
  else
    st_image_row_u8_to_planes (planes, ld->channels, 1, src, ld->channels, ld->width, ld->table);
}

static gboolean
png_rows_run (PngLoad *ld)
{
  if (setjmp (png_jmpbuf (ld->png)))
    return FALSE;

  for (int k = 0; k < ld->n_rows; k++)
    {
      if (ld->interlaced)
        png_store_row (ld, ld->dst_row + k, ld->pixels + (gsize) ld->next_row * ld->rowbytes);
      else
        {
          png_read_row (ld->png, ld->pixels, NULL);
          png_store_row (ld, ld->dst_row + k, ld->pixels);
        }
      ld->next_row++;
    }
  if (!ld->interlaced && ld->next_row == ld->height)
    png_read_end (ld->png, NULL);
  return TRUE;
}

static void
png_load_take_error (PngLoad *ld, GError **error)
{
  st_image_take_error (error, &ld->error, ld->in->path, ld->code, ld->reason);
}

static void
png_reader_close (gpointer reader)
{
  PngLoad *ld = reader;
  if (!ld)
    return;
  if (ld->png)
    png_destroy_read_struct (&ld->png, ld->info ? &ld->info : NULL, NULL);
  g_free (ld->row_pointers);
  g_free (ld->pixels);
  g_clear_pointer (&ld->metadata.icc, g_bytes_unref);
  g_clear_pointer (&ld->metadata.exif, g_bytes_unref);
  g_clear_pointer (&ld->metadata.xmp, g_bytes_unref);
  g_clear_error (&ld->error);
  g_free (ld);
}

static gpointer
png_reader_open (StImageInput *in, guint64 max_pixels, StImageHeader *header,
                 GError **error)
{
  if (!png_check_declared_size (in, max_pixels, error))
    return NULL;

  PngLoad *ld = g_new0 (PngLoad, 1);
  ld->in = in;
  ld->max_pixels = max_pixels;
  ld->code = ST_ERROR_IMAGE;
  ld->table = st_image_unit_table ();
  ld->png = png_create_read_struct (PNG_LIBPNG_VER_STRING, ld, png_load_error,
                                    png_ignore_warning);
  if (ld->png)
    ld->info = png_create_info_struct (ld->png);
  if (!ld->png || !ld->info)
    {
      png_reader_close (ld);
      g_set_error (error, ST_ERROR, ST_ERROR_IMAGE, "%s: cannot start libpng", in->path);
      return NULL;
    }
  if (!png_open_run (ld))
    {
      png_load_take_error (ld, error);
      png_reader_close (ld);
      return NULL;
    }
  header->width = ld->width;
  header->height = ld->height;
  header->channels = ld->channels;
  header->info = (StImageInfo) { ST_FORMAT_PNG, ld->bit_depth,
                                 ld->channels == 2 || ld->channels == 4 };
  header->metadata = ld->metadata;
  ld->metadata = (StImageMetadata) { 0 };
  return ld;
}

static gboolean
png_reader_read (gpointer reader, StTensor *dst, int first_row, int n_rows, GError **error)
{
  PngLoad *ld = reader;
  ld->dst = dst;
  ld->dst_row = first_row;
  ld->n_rows = n_rows;
  const gboolean ok = png_rows_run (ld);
  ld->dst = NULL;
  if (!ok)
    png_load_take_error (ld, error);
  return ok;
}


/* ---- PNG writing ------------------------------------------------------- */

typedef struct {
  const char *path;
  FILE *fp;
  png_structp png;
  png_infop info;
  guint8 *row;
  int width, height, channels, bit_depth;
  StImageMetadata metadata;    /* the writer's, borrowed */
  char *xmp;                   /* metadata.xmp as a C string */
  StImageRows src;
  int code;
  gboolean reason_is_final;
  char reason[ST_IMAGE_REASON_SIZE];
} PngSave;

static void
png_save_error (png_structp png, png_const_charp message)
{
  PngSave *job = png_get_error_ptr (png);
  if (!job->reason_is_final)
    g_snprintf (job->reason, sizeof job->reason, "cannot write PNG (%s)", message);
  png_longjmp (png, 1);
}

static void
png_save_write (png_structp png, png_bytep data, size_t length)
{
  PngSave *job = png_get_io_ptr (png);
  if (fwrite (data, 1, length, job->fp) == length)
    return;
  job->code = ST_ERROR_IO;
  g_snprintf (job->reason, sizeof job->reason, "cannot write: %s", g_strerror (errno));
  job->reason_is_final = TRUE;
  png_error (png, job->reason);
}

static void
png_save_flush (G_GNUC_UNUSED png_structp png)
{
}

/* libpng checks a profile it is given against the image and refuses one it
 * finds wrong; with benign errors as warnings the chunk is left out and the
 * pixels are written. */
static void
png_save_set_metadata (PngSave *job)
{
  const StImageMetadata *m = &job->metadata;
  png_set_benign_errors (job->png, 1);
  gsize size;
  if (m->icc)
    {
      const guint8 *data = g_bytes_get_data (m->icc, &size);
      png_set_iCCP (job->png, job->info, "ICC profile", PNG_COMPRESSION_TYPE_BASE, data,
                    (png_uint_32) size);
    }
  if (m->exif)
    {
      const guint8 *data = g_bytes_get_data (m->exif, &size);
      png_set_eXIf_1 (job->png, job->info, (png_uint_32) size, (png_bytep) data);
    }
  if (m->xmp)
    {
      /* libpng takes the text as a C string; the job frees it, as libpng
       * may longjmp out of here. */
      const char *data = g_bytes_get_data (m->xmp, &size);
      job->xmp = g_strndup (data, size);
      png_text text = {
        .compression = PNG_ITXT_COMPRESSION_NONE,
        .key = (png_charp) PNG_XMP_KEYWORD,
        .text = job->xmp,
        .itxt_length = strlen (job->xmp),
        .lang = (png_charp) "",
        .lang_key = (png_charp) "",
      };
      png_set_text (job->png, job->info, &text, 1);
    }
}

static gboolean
png_save_start_run (PngSave *job)
{
  if (setjmp (png_jmpbuf (job->png)))
    return FALSE;

  static const int colour_types[] = {
    PNG_COLOR_TYPE_GRAY, PNG_COLOR_TYPE_GRAY_ALPHA,
    PNG_COLOR_TYPE_RGB, PNG_COLOR_TYPE_RGB_ALPHA,
  };
  png_set_write_fn (job->png, job, png_save_write, png_save_flush);
  png_set_IHDR (job->png, job->info, job->width, job->height, job->bit_depth,
                colour_types[job->channels - 1], PNG_INTERLACE_NONE,
                PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
  png_save_set_metadata (job);
  png_write_info (job->png, job->info);
  return TRUE;
}

static gboolean
png_save_rows_run (PngSave *job)
{
  if (setjmp (png_jmpbuf (job->png)))
    return FALSE;

  for (int k = 0; k < job->src.n_rows; k++)
    {
      const float *row[4];
      st_image_rows_row (&job->src, job->channels, job->width, k, row);
      if (job->bit_depth == 16)
        st_image_pack_row_u16be (row, job->channels, job->width, job->row);
      else
        st_image_pack_row_u8 (row, job->channels, job->channels, job->width, job->row);
      png_write_row (job->png, job->row);
    }
  return TRUE;
}

static gboolean
png_save_end_run (PngSave *job)
{
  if (setjmp (png_jmpbuf (job->png)))
    return FALSE;
  png_write_end (job->png, NULL);
  return TRUE;
}

static void
png_writer_free (gpointer writer)
{
  PngSave *job = writer;
  if (!job)
    return;
  if (job->png)
    png_destroy_write_struct (&job->png, job->info ? &job->info : NULL);
  g_free (job->xmp);
  g_free (job->row);
  g_free (job);
}

static gboolean
png_writer_check (const StImageWriteSpec *spec, GError **error)
{
  if (spec->bit_depth != 8 && spec->bit_depth != 16)
    {
      g_set_error (error, ST_ERROR, ST_ERROR_IMAGE,
                   "%s: cannot write a PNG of bit depth %d (expected 8 or 16)",
                   spec->path, spec->bit_depth);
      return FALSE;
    }
  return TRUE;
}

static gpointer
png_writer_open (FILE *fp, const StImageWriteSpec *spec, GError **error)
{
  PngSave *job = g_new0 (PngSave, 1);
  job->path = spec->path;
  job->fp = fp;
  job->width = spec->width;
  job->height = spec->height;
  job->channels = spec->channels;
  job->bit_depth = spec->bit_depth;
  job->metadata = spec->metadata;
  job->code = ST_ERROR_IMAGE;
  job->png = png_create_write_struct (PNG_LIBPNG_VER_STRING, job, png_save_error,
                                      png_ignore_warning);
  if (job->png)
    job->info = png_create_info_struct (job->png);
  if (!job->png || !job->info)
    {
      png_writer_free (job);
      g_set_error (error, ST_ERROR, ST_ERROR_IMAGE, "%s: cannot start libpng", spec->path);
      return NULL;
    }
  job->row = g_malloc ((gsize) job->width * job->channels * (job->bit_depth / 8));
  if (!png_save_start_run (job))
    {
      g_set_error (error, ST_ERROR, job->code, "%s: %s", job->path, job->reason);
      png_writer_free (job);
      return NULL;
    }
  return job;
}

static gboolean
png_writer_write (gpointer writer, const StImageRows *rows, GError **error)
{
  PngSave *job = writer;
  job->src = *rows;
  if (png_save_rows_run (job))
    return TRUE;
  g_set_error (error, ST_ERROR, job->code, "%s: %s", job->path, job->reason);
  return FALSE;
}

static gboolean
png_writer_finish (gpointer writer, GError **error)
{
  PngSave *job = writer;
  if (png_save_end_run (job))
    return TRUE;
  g_set_error (error, ST_ERROR, job->code, "%s: %s", job->path, job->reason);
  return FALSE;
}

/* ---- The format ---------------------------------------------------------- */

static StImageMatch
png_match (const guint8 *head, gsize head_len)
{
  return st_image_match_magic (head, head_len, png_signature, sizeof png_signature);
}

static const char *const png_extensions[] = { "png", NULL };

const StImageCodec st_image_png_codec = {
  .format = ST_FORMAT_PNG,
  .name = "PNG",
  .extensions = png_extensions,
  .match = png_match,
  .reader_open = png_reader_open,
  .reader_read = png_reader_read,
  .reader_close = png_reader_close,
  .writer_check = png_writer_check,
  .writer_open = png_writer_open,
  .writer_write = png_writer_write,
  .writer_finish = png_writer_finish,
  .writer_free = png_writer_free,
};
