/* strata — reading and writing images as tensors: what is the same for
 * every format.
 *
 * Each format is a codec in its own file (image-png.c, image-jpeg.c)
 * behind the interface of image-format.h; this file finds the codec (by
 * the file's first bytes when reading, by the name or the caller's choice
 * when writing) and does the rest: standard input, the temporary output
 * file, argument checks and the order of calls.  Both directions stream: a
 * reader decodes rows as they are asked for, a writer encodes rows as they
 * are given, so a large image can pass through in strips; st_image_load
 * and st_image_save are one call of each.
 *
 * Nothing here prints: warnings are dropped, errors become GErrors whose
 * message starts with the file's path. */
#include "image-format.h"
#include "atomic.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <unistd.h>

/* Every format strata reads and writes.  A new format is a file that
 * defines its StImageCodec, a line here and a value at the end of
 * StImageFormat. */
static const StImageCodec *const codecs[] = {
  &st_image_png_codec,
  &st_image_jpeg_codec,
  &st_image_tiff_codec,
  &st_image_webp_codec,
  &st_image_pnm_codec,
  &st_image_gif_codec,
  &st_image_heif_codec,
};

static const StImageCodec *
codec_for_format (StImageFormat format)
{
  for (gsize i = 0; i < G_N_ELEMENTS (codecs); i++)
    if (codecs[i]->format == format)
      return codecs[i];
  return NULL;
}

/* "A, B or C" */
static void
append_alternative (GString *s, gsize index, gsize count, const char *prefix,
                    const char *item)
{
  if (index > 0)
    g_string_append (s, index + 1 == count ? " or " : ", ");
  g_string_append_printf (s, "%s%s", prefix, item);
}

/* "PATH: unknown image format (name the file .png, .jpg or .jpeg)" */
static void
set_unknown_format_error (const char *path, GError **error)
{
  g_autofree char *names = st_image_extension_list (".", " or ");
  g_set_error (error, ST_ERROR, ST_ERROR_IMAGE,
               "%s: unknown image format (name the file %s)", path, names);
}

StImageFormat
st_image_format_from_name (const char *path)
{
  g_return_val_if_fail (path != NULL, ST_FORMAT_UNKNOWN);

  const char *slash = strrchr (path, G_DIR_SEPARATOR);
  const char *dot = strrchr (slash ? slash + 1 : path, '.');
  if (!dot)
    return ST_FORMAT_UNKNOWN;
  for (gsize i = 0; i < G_N_ELEMENTS (codecs); i++)
    for (const char *const *ext = codecs[i]->extensions; *ext; ext++)
      if (g_ascii_strcasecmp (dot + 1, *ext) == 0)
        return codecs[i]->format;
  return ST_FORMAT_UNKNOWN;
}

StImageFormat
st_image_format_from_content (const char *path)
{
  g_return_val_if_fail (path != NULL, ST_FORMAT_UNKNOWN);

  FILE *fp = fopen (path, "rbe");
  if (!fp)
    return ST_FORMAT_UNKNOWN;
  guint8 head[ST_IMAGE_HEAD_SIZE];
  const gsize len = fread (head, 1, sizeof head, fp);
  fclose (fp);
  for (gsize i = 0; i < G_N_ELEMENTS (codecs); i++)
    if (codecs[i]->match (head, len) == ST_IMAGE_MATCH_YES)
      return codecs[i]->format;
  return ST_FORMAT_UNKNOWN;
}

const char *
st_image_format_extension (StImageFormat format)
{
  const StImageCodec *codec = codec_for_format (format);
  return codec ? codec->extensions[0] : "";
}

const char *
st_image_format_label (StImageFormat format)
{
  const StImageCodec *codec = codec_for_format (format);
  return codec ? codec->name : "unknown";
}

StImageFormat
st_image_output_format (StImageFormat format)
{
  const StImageCodec *codec = codec_for_format (format);
  return codec && !codec->writer_open ? ST_FORMAT_PNG : format;
}

char *
st_image_extension_list (const char *prefix, const char *last_separator)
{
  gsize count = 0;
  for (gsize i = 0; i < G_N_ELEMENTS (codecs); i++)
    count += g_strv_length ((char **) codecs[i]->extensions);
  GString *names = g_string_new (NULL);
  gsize index = 0;
  for (gsize i = 0; i < G_N_ELEMENTS (codecs); i++)
    for (const char *const *ext = codecs[i]->extensions; *ext; ext++, index++)
      {
        if (index > 0)
          g_string_append (names, index + 1 == count ? last_separator : ", ");
        g_string_append_printf (names, "%s%s", prefix, *ext);
      }
  return g_string_free (names, FALSE);
}

/* ---- Helpers for the codecs --------------------------------------------- */

StImageMatch
st_image_match_magic (const guint8 *head, gsize head_len, const guint8 *magic,
                      gsize magic_len)
{
  if (memcmp (head, magic, MIN (head_len, magic_len)) != 0)
    return ST_IMAGE_MATCH_NO;
  return head_len >= magic_len ? ST_IMAGE_MATCH_YES : ST_IMAGE_MATCH_TRUNCATED;
}

static void
format_pixel_count (guint64 n, char *buf, gsize size)
{
  if (n < 1000000)
    g_snprintf (buf, size, "%" G_GUINT64_FORMAT " pixels", n);
  else if (n % 1000000 == 0)
    g_snprintf (buf, size, "%" G_GUINT64_FORMAT " megapixels", n / 1000000);
  else
    g_snprintf (buf, size, "%.1f megapixels", (double) n / 1e6);
}

/* Width and height come from 32-bit header fields, so their product fits
 * in 64 bits. */
gboolean
st_image_check_pixel_limit (const char *path, guint64 width, guint64 height,
                            guint64 max_pixels, GError **error)
{
  guint64 pixels = width * height;
  if (max_pixels == 0 || pixels <= max_pixels)
    return TRUE;
  char have[64], limit[64];
  format_pixel_count (pixels, have, sizeof have);
  format_pixel_count (max_pixels, limit, sizeof limit);
  g_set_error (error, ST_ERROR, ST_ERROR_IMAGE,
               "%s: image is %" G_GUINT64_FORMAT "x%" G_GUINT64_FORMAT
               " (%s), more than the limit of %s (--max-pixels)",
               path, width, height, have, limit);
  return FALSE;
}

StTensor *
st_image_new_tensor (const char *path, int channels, guint64 height, guint64 width,
                     GError **error)
{
  if (height > G_MAXINT || width > G_MAXINT)
    {
      g_set_error (error, ST_ERROR, ST_ERROR_IMAGE,
                   "%s: image is %" G_GUINT64_FORMAT "x%" G_GUINT64_FORMAT
                   ", too large to hold", path, width, height);
      return NULL;
    }
  StTensor *t = st_tensor_new ((StShape) { 1, channels, (int) height, (int) width }, error);
  if (!t)
    g_prefix_error (error, "%s: ", path);
  return t;
}

void
st_image_take_error (GError **error, GError **found, const char *path, int code,
                     const char *reason)
{
  if (*found)
    g_propagate_error (error, g_steal_pointer (found));
  else
    g_set_error (error, ST_ERROR, code, "%s: %s", path, reason);
}

gsize
st_image_input_read (StImageInput *in, void *buf, gsize size)
{
  gsize done = 0;
  if (in->head_pos < in->head_len)
    {
      done = MIN (size, in->head_len - in->head_pos);
      memcpy (buf, in->head + in->head_pos, done);
      in->head_pos += done;
    }
  if (done < size)
    done += fread ((guint8 *) buf + done, 1, size - done, in->fp);
  return done;
}

guint8 *
st_image_input_read_all (StImageInput *in, gsize *size, GError **error)
{
  g_autoptr (GByteArray) bytes = g_byte_array_new ();
  guint8 buf[65536];
  gsize n;
  while ((n = st_image_input_read (in, buf, sizeof buf)) > 0)
    g_byte_array_append (bytes, buf, n);
  if (ferror (in->fp))
    {
      g_set_error (error, ST_ERROR, ST_ERROR_IO, "%s: cannot read: %s", in->path,
                   g_strerror (errno));
      return NULL;
    }
  *size = bytes->len;
  return g_byte_array_steal (bytes, NULL);
}

/* ---- Metadata ---------------------------------------------------------- */

StImageMetadata *
st_image_metadata_new (void)
{
  return g_new0 (StImageMetadata, 1);
}

static void
metadata_clear (StImageMetadata *m)
{
  g_clear_pointer (&m->icc, g_bytes_unref);
  g_clear_pointer (&m->exif, g_bytes_unref);
  g_clear_pointer (&m->xmp, g_bytes_unref);
}

void
st_image_metadata_free (StImageMetadata *metadata)
{
  if (!metadata)
    return;
  metadata_clear (metadata);
  g_free (metadata);
}

void
st_image_metadata_set (GBytes **field, const void *data, gsize size)
{
  g_clear_pointer (field, g_bytes_unref);
  if (data && size > 0 && size <= ST_IMAGE_METADATA_MAX_BYTES)
    *field = g_bytes_new (data, size);
}

static guint32
icc_read_be32 (const guint8 *p)
{
  return (guint32) p[0] << 24 | (guint32) p[1] << 16 | (guint32) p[2] << 8 | p[3];
}

/* An ICC profile starts with a 128-byte header: its size, and "acsp" at 36;
 * the colour space at 16 ("RGB " or "GRAY" for what strata writes).  Only
 * that much is checked: the profile is handed on, not used. */
#define ICC_HEADER_BYTES 128

static gboolean
icc_is_sound (GBytes *icc)
{
  gsize size;
  const guint8 *p = g_bytes_get_data (icc, &size);
  return size >= ICC_HEADER_BYTES + 4 && icc_read_be32 (p) == size
         && memcmp (p + 36, "acsp", 4) == 0;
}

/* Whether the profile is for pictures of colour_channels channels (1 gray,
 * 3 RGB): a gray profile on RGB pixels would show them wrongly. */
static gboolean
icc_fits_channels (GBytes *icc, int colour_channels)
{
  const guint8 *p = g_bytes_get_data (icc, NULL);
  return memcmp (p + 16, colour_channels == 1 ? "GRAY" : "RGB ", 4) == 0;
}

/* What a codec found, less what is malformed or too large. */
static void
metadata_drop_unsound (StImageMetadata *m)
{
  if (m->icc && (g_bytes_get_size (m->icc) > ST_IMAGE_METADATA_MAX_BYTES || !icc_is_sound (m->icc)))
    g_clear_pointer (&m->icc, g_bytes_unref);
  if (m->exif)
    {
      gsize size;
      const guint8 *p = g_bytes_get_data (m->exif, &size);
      if (size > ST_IMAGE_METADATA_MAX_BYTES || !st_image_exif_is_tiff (p, size))
        g_clear_pointer (&m->exif, g_bytes_unref);
    }
  if (m->xmp && (g_bytes_get_size (m->xmp) > ST_IMAGE_METADATA_MAX_BYTES
                 || g_bytes_get_size (m->xmp) == 0))
    g_clear_pointer (&m->xmp, g_bytes_unref);
}

/* ---- Reader ------------------------------------------------------------ */

struct _StImageReader {
  char *path;
  StImageInput in;
  StImageHeader header;
  int next_row;
  gboolean failed;
  gboolean from_stdin;         /* path "-" */
  const StImageCodec *codec;
  gpointer state;              /* the codec's */
};

void
st_image_reader_close (StImageReader *reader)
{
  if (!reader)
    return;
  if (reader->codec)
    reader->codec->reader_close (reader->state);
  st_tensor_free (reader->header.whole);
  metadata_clear (&reader->header.metadata);
  if (reader->in.fp)
    fclose (reader->in.fp);
  g_free (reader->path);
  g_free (reader);
}

/* Opens the file, or a copy of standard input's descriptor for "-" (so
 * that closing the reader leaves stdin open), and reads its first bytes. */
static gboolean
reader_open_input (StImageReader *r, GError **error)
{
  const char *path = r->path;
  StImageInput *in = &r->in;
  if (r->from_stdin)
    {
      int fd = fcntl (STDIN_FILENO, F_DUPFD_CLOEXEC, 3);
      in->fp = fd >= 0 ? fdopen (fd, "rb") : NULL;
      if (fd >= 0 && !in->fp)
        close (fd);
    }
  else
    in->fp = fopen (path, "rbe");
  if (!in->fp)
    {
      int saved = errno;
      g_set_error (error, ST_ERROR, ST_ERROR_IO, "%s: cannot open: %s",
                   path, g_strerror (saved));
      return FALSE;
    }
  in->head_len = fread (in->head, 1, sizeof in->head, in->fp);

  if (ferror (in->fp))
    {
      int saved = errno;
      g_set_error (error, ST_ERROR, ST_ERROR_IO, "%s: cannot read: %s",
                   path, g_strerror (saved));
      return FALSE;
    }
  if (in->head_len == 0)
    {
      g_set_error (error, ST_ERROR, ST_ERROR_IMAGE, "%s: empty file", path);
      return FALSE;
    }
  return TRUE;
}

/* The codec whose signature the file starts with; else an error saying the
 * file is cut inside a signature, or has none strata knows. */
static const StImageCodec *
codec_for_head (const StImageInput *in, GError **error)
{
  for (gsize i = 0; i < G_N_ELEMENTS (codecs); i++)
    if (codecs[i]->match (in->head, in->head_len) == ST_IMAGE_MATCH_YES)
      return codecs[i];
  for (gsize i = 0; i < G_N_ELEMENTS (codecs); i++)
    if (codecs[i]->match (in->head, in->head_len) == ST_IMAGE_MATCH_TRUNCATED)
      {
        g_set_error (error, ST_ERROR, ST_ERROR_IMAGE, "%s: truncated %s file", in->path,
                     codecs[i]->name);
        return NULL;
      }
  g_autoptr (GString) names = g_string_new (NULL);
  for (gsize i = 0; i < G_N_ELEMENTS (codecs); i++)
    append_alternative (names, i, G_N_ELEMENTS (codecs), "", codecs[i]->name);
  g_set_error (error, ST_ERROR, ST_ERROR_IMAGE,
               "%s: not a %s image (unrecognised file signature)", in->path, names->str);
  return NULL;
}

/* Tells the format from the signature and reads the header. */
static gboolean
reader_start (StImageReader *r, guint64 max_pixels, GError **error)
{
  if (!reader_open_input (r, error))
    return FALSE;
  const StImageCodec *codec = codec_for_head (&r->in, error);
  if (!codec)
    return FALSE;
  r->state = codec->reader_open (&r->in, max_pixels, &r->header, error);
  if (!r->state)
    return FALSE;
  r->codec = codec;
  metadata_drop_unsound (&r->header.metadata);
  return TRUE;
}

StImageReader *
st_image_reader_open (const char *path, guint64 max_pixels, StImageInfo *info,
                      int *width, int *height, int *channels, GError **error)
{
  g_return_val_if_fail (path != NULL, NULL);
  g_return_val_if_fail (error == NULL || *error == NULL, NULL);

  StImageReader *r = g_new0 (StImageReader, 1);
  r->from_stdin = strcmp (path, "-") == 0;
  r->path = g_strdup (r->from_stdin ? "standard input" : path);
  r->in.path = r->path;
  if (!reader_start (r, max_pixels, error))
    {
      st_image_reader_close (r);
      return NULL;
    }
  if (info)
    *info = r->header.info;
  if (width)
    *width = r->header.width;
  if (height)
    *height = r->header.height;
  if (channels)
    *channels = r->header.channels;
  return r;
}

gboolean
st_image_reader_read (StImageReader *r, StTensor *dst, int first_row, int n_rows,
                      GError **error)
{
  g_return_val_if_fail (r != NULL && dst != NULL, FALSE);
  g_return_val_if_fail (dst->shape.n == 1 && dst->shape.c == r->header.channels
                        && dst->shape.w == r->header.width, FALSE);
  g_return_val_if_fail (first_row >= 0 && n_rows >= 0 && first_row <= dst->shape.h - n_rows,
                        FALSE);
  g_return_val_if_fail (n_rows <= r->header.height - r->next_row, FALSE);
  g_return_val_if_fail (error == NULL || *error == NULL, FALSE);

  if (r->failed)
    {
      g_set_error (error, ST_ERROR, ST_ERROR_IMAGE, "%s: cannot read on after an error", r->path);
      return FALSE;
    }
  if (n_rows == 0)
    return TRUE;

  gboolean ok = TRUE;
  if (r->header.whole)
    {
      float *from[4], *to[4];
      st_image_row_planes (r->header.whole, r->next_row, from);
      st_image_row_planes (dst, first_row, to);
      for (int c = 0; c < r->header.channels; c++)
        memcpy (to[c], from[c], sizeof (float) * n_rows * (gsize) r->header.width);
    }
  else
    ok = r->codec->reader_read (r->state, dst, first_row, n_rows, error);
  if (ok)
    r->next_row += n_rows;
  else
    r->failed = TRUE;
  return ok;
}

StImageMetadata *
st_image_reader_take_metadata (StImageReader *r)
{
  g_return_val_if_fail (r != NULL, NULL);

  StImageMetadata *m = st_image_metadata_new ();
  *m = r->header.metadata;
  r->header.metadata = (StImageMetadata) { 0 };
  return m;
}

StTensor *
st_image_reader_read_all (StImageReader *r, GError **error)
{
  g_return_val_if_fail (r != NULL && r->next_row == 0 && !r->failed, NULL);

  /* Already decoded whole: hand that over rather than copy it. */
  if (r->header.whole)
    {
      r->next_row = r->header.height;
      return g_steal_pointer (&r->header.whole);
    }
  StTensor *t = st_image_new_tensor (r->path, r->header.channels, r->header.height,
                                     r->header.width, error);
  if (t && !st_image_reader_read (r, t, 0, r->header.height, error))
    g_clear_pointer (&t, st_tensor_free);
  return t;
}

StTensor *
st_image_load (const char *path, guint64 max_pixels, StImageInfo *info,
               GError **error)
{
  g_return_val_if_fail (path != NULL, NULL);
  g_return_val_if_fail (error == NULL || *error == NULL, NULL);

  StImageInfo local_info;
  StImageReader *r = st_image_reader_open (path, max_pixels, &local_info, NULL, NULL, NULL,
                                           error);
  if (!r)
    return NULL;
  StTensor *t = st_image_reader_read_all (r, error);
  st_image_reader_close (r);
  if (t && info)
    *info = local_info;
  return t;
}


/* ---- Writer ------------------------------------------------------------ */

struct _StImageWriter {
  char *path;
  StAtomicFile *file;
  int width, height, channels;
  int next_row;
  gboolean failed;
  const StImageCodec *codec;
  gpointer state;              /* the codec's; NULL once it is done */
  StImageMetadata metadata;    /* what the codec's spec points at */
};

static gboolean
check_write_arguments (const StImageCodec *codec, const StImageWriteSpec *spec,
                       GError **error)
{
  if (!codec)
    {
      set_unknown_format_error (spec->path, error);
      return FALSE;
    }
  if (spec->channels < 1 || spec->channels > 4 || spec->width < 1 || spec->height < 1)
    {
      g_set_error (error, ST_ERROR, ST_ERROR_IMAGE,
                   "%s: cannot write a %dx%d image of %d channels (expected 1 (gray), "
                   "2 (gray + alpha), 3 (RGB) or 4 (RGBA))",
                   spec->path, spec->width, spec->height, spec->channels);
      return FALSE;
    }
  return codec->writer_check (spec, error);
}

static void
writer_free_codec (StImageWriter *w)
{
  if (w->state)
    w->codec->writer_free (g_steal_pointer (&w->state));
}

/* Frees the codec and the writer; the file is committed or aborted already. */
static void
writer_free (StImageWriter *w)
{
  writer_free_codec (w);
  metadata_clear (&w->metadata);
  g_free (w->path);
  g_free (w);
}

void
st_image_writer_abort (StImageWriter *w)
{
  if (!w)
    return;
  writer_free_codec (w);
  st_atomic_file_abort (g_steal_pointer (&w->file));
  writer_free (w);
}

/* The metadata to write, each blob referenced, less a profile for other
 * colour channels than the image's (a pipeline may have made it gray). */
static void
metadata_for_writing (StImageMetadata *dst, const StImageMetadata *src, int channels)
{
  if (!src)
    return;
  const int colour = channels == 2 || channels == 4 ? channels - 1 : channels;
  if (src->icc && icc_is_sound (src->icc) && icc_fits_channels (src->icc, colour))
    dst->icc = g_bytes_ref (src->icc);
  if (src->exif)
    dst->exif = g_bytes_ref (src->exif);
  if (src->xmp)
    dst->xmp = g_bytes_ref (src->xmp);
}

StImageWriter *
st_image_writer_open (const char *path, StImageFormat format, int width, int height,
                      int channels, int bit_depth, int quality, GError **error)
{
  return st_image_writer_open_with (path, format, width, height, channels, bit_depth,
                                    quality, NULL, error);
}

StImageWriter *
st_image_writer_open_with (const char *path, StImageFormat format, int width, int height,
                           int channels, int bit_depth, int quality,
                           const StImageWriteOptions *options, GError **error)
{
  g_return_val_if_fail (path != NULL, NULL);
  g_return_val_if_fail (error == NULL || *error == NULL, NULL);

  if (format == ST_FORMAT_UNKNOWN)
    format = st_image_format_from_name (path);
  const StImageCodec *codec = codec_for_format (format);
  StImageWriteSpec spec = { path, width, height, channels, bit_depth, quality,
                            .lossless = options && options->lossless };
  if (!check_write_arguments (codec, &spec, error))
    return NULL;

  /* Not synced: a disk flush per image would cost a tenth of a folder run's
   * speed, and an image can be made again from its input. */
  StAtomicFile *file = st_atomic_file_new (path, ST_ERROR_IO, ST_ATOMIC_FILE_NONE, error);
  if (!file)
    return NULL;

  StImageWriter *w = g_new0 (StImageWriter, 1);
  w->path = g_strdup (path);
  w->file = file;
  w->width = width;
  w->height = height;
  w->channels = channels;
  w->codec = codec;
  metadata_for_writing (&w->metadata, options ? options->metadata : NULL, channels);
  /* The codec keeps spec.path for its messages and may keep the metadata:
   * the writer's own. */
  spec.path = w->path;
  spec.metadata = w->metadata;
  w->state = codec->writer_open (st_atomic_file_stream (file), &spec, error);
  if (!w->state)
    {
      st_image_writer_abort (w);
      return NULL;
    }
  return w;
}

gboolean
st_image_writer_write_planes (StImageWriter *w, const float *const *planes, int n_rows,
                              GError **error)
{
  g_return_val_if_fail (w != NULL && planes != NULL, FALSE);
  g_return_val_if_fail (n_rows >= 0 && n_rows <= w->height - w->next_row, FALSE);
  g_return_val_if_fail (error == NULL || *error == NULL, FALSE);

  if (w->failed)
    {
      g_set_error (error, ST_ERROR, ST_ERROR_IMAGE, "%s: cannot write on after an error",
                   w->path);
      return FALSE;
    }
  if (n_rows == 0)
    return TRUE;

  const StImageRows rows = { planes, n_rows };
  if (!w->codec->writer_write (w->state, &rows, error))
    {
      w->failed = TRUE;
      return FALSE;
    }
  w->next_row += n_rows;
  return TRUE;
}

gboolean
st_image_writer_write (StImageWriter *w, const StTensor *src, int src_first_row, int n_rows,
                       GError **error)
{
  g_return_val_if_fail (w != NULL && src != NULL, FALSE);
  g_return_val_if_fail (src->shape.n == 1 && src->shape.c == w->channels
                        && src->shape.w == w->width, FALSE);
  g_return_val_if_fail (src_first_row >= 0 && n_rows >= 0
                        && src_first_row <= src->shape.h - n_rows, FALSE);

  float *planes[4];
  st_image_row_planes (src, src_first_row, planes);
  return st_image_writer_write_planes (w, (const float *const *) planes, n_rows, error);
}

gboolean
st_image_writer_finish (StImageWriter *w, GError **error)
{
  g_return_val_if_fail (w != NULL, FALSE);
  g_return_val_if_fail (error == NULL || *error == NULL, FALSE);

  gboolean ok = TRUE;
  if (w->failed)
    {
      ok = FALSE;
      g_set_error (error, ST_ERROR, ST_ERROR_IMAGE, "%s: cannot finish after a failed write",
                   w->path);
    }
  else if (w->next_row != w->height)
    {
      ok = FALSE;
      g_set_error (error, ST_ERROR, ST_ERROR_IMAGE,
                   "%s: cannot finish: %d of %d rows were written",
                   w->path, w->next_row, w->height);
    }
  else
    ok = w->codec->writer_finish (w->state, error);
  if (!ok)
    {
      st_image_writer_abort (w);
      return FALSE;
    }
  /* The codec is done with the stream: flushed, closed, renamed over path. */
  writer_free_codec (w);
  ok = st_atomic_file_commit (g_steal_pointer (&w->file), error);
  writer_free (w);
  return ok;
}

gboolean
st_image_save (const StTensor *image, const char *path, StImageFormat format,
               int bit_depth, int jpeg_quality, GError **error)
{
  return st_image_save_with (image, path, format, bit_depth, jpeg_quality, NULL, error);
}

gboolean
st_image_save_with (const StTensor *image, const char *path, StImageFormat format,
                    int bit_depth, int jpeg_quality, const StImageWriteOptions *options,
                    GError **error)
{
  g_return_val_if_fail (image != NULL && image->data != NULL, FALSE);
  g_return_val_if_fail (path != NULL, FALSE);
  g_return_val_if_fail (error == NULL || *error == NULL, FALSE);

  if (format == ST_FORMAT_UNKNOWN)
    format = st_image_format_from_name (path);
  if (!codec_for_format (format))
    {
      set_unknown_format_error (path, error);
      return FALSE;
    }
  const StShape s = image->shape;
  if (s.n != 1 || s.c < 1 || s.c > 4 || s.h < 1 || s.w < 1)
    {
      char buf[64];
      g_set_error (error, ST_ERROR, ST_ERROR_IMAGE,
                   "%s: cannot save a tensor of shape %s as an image (expected 1xCxHxW "
                   "with C = 1 (gray), 2 (gray + alpha), 3 (RGB) or 4 (RGBA))",
                   path, st_shape_format (s, buf, sizeof buf));
      return FALSE;
    }
  StImageWriter *w = st_image_writer_open_with (path, format, s.w, s.h, s.c, bit_depth,
                                                jpeg_quality, options, error);
  if (!w)
    return FALSE;
  if (!st_image_writer_write (w, image, 0, s.h, error))
    {
      st_image_writer_abort (w);
      return FALSE;
    }
  return st_image_writer_finish (w, error);
}

StTensor *
st_image_split_alpha (const StTensor *image, StTensor **alpha)
{
  const int c = image->shape.c - 1;
  const gsize plane = (gsize) image->shape.h * image->shape.w;
  StTensor *colour = st_tensor_new0 (1, c, image->shape.h, image->shape.w);
  memcpy (colour->data, image->data, plane * c * sizeof (float));
  if (alpha)
    {
      *alpha = st_tensor_new0 (1, 1, image->shape.h, image->shape.w);
      memcpy ((*alpha)->data, image->data + plane * c, plane * sizeof (float));
    }
  return colour;
}
