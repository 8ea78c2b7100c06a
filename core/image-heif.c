/* strata — HEIC and AVIF images through libheif, read only.
 *
 * The primary image is read, with its alpha, its transformations (irot,
 * imir, clap) applied as libheif applies them by default.  8-bit images
 * give 8-bit values; deeper ones (10 or 12 bit, as HDR photos are) give
 * their full range and say 16 bits.  libheif decodes whole images, so the
 * file is read into memory and decoded when opened, after the --max-pixels
 * check on the size its header declares; libheif's own security limits
 * stay on.  Gray images are read as RGB.
 *
 * libheif is optional (meson feature "heif").  Without it the format is
 * still recognised by its signature, so a HEIC or AVIF file fails with a
 * message saying what strata needs, rather than as an unknown file. */
#include "image-format.h"
#include "config.h"

#include <string.h>

#ifdef ST_HAVE_LIBHEIF
#include <libheif/heif.h>
#endif

/* ---- The format ------------------------------------------------------------ */

/* An ISO base media file: a box of type "ftyp" first, whose major brand
 * (then its compatible brands) says what it holds. */
static const char *const heif_brands[] = {
  "heic", "heix", "heim", "heis", "hevc", "hevx", "hevm", "hevs",
  "mif1", "msf1", "avif", "avis", NULL,
};

static gboolean
is_heif_brand (const guint8 *brand)
{
  for (const char *const *b = heif_brands; *b; b++)
    if (memcmp (brand, *b, 4) == 0)
      return TRUE;
  return FALSE;
}

static StImageMatch
heif_match (const guint8 *head, gsize head_len)
{
  /* Shorter than a box header: a few bytes of anything, not a cut HEIF. */
  if (head_len < 8)
    return ST_IMAGE_MATCH_NO;
  if (memcmp (head + 4, "ftyp", 4) != 0)
    return ST_IMAGE_MATCH_NO;
  if (head_len < 12)
    return ST_IMAGE_MATCH_TRUNCATED;
  return is_heif_brand (head + 8) ? ST_IMAGE_MATCH_YES : ST_IMAGE_MATCH_NO;
}

/* "AVIF" when the brands that the head holds say AV1, else "HEIC". */
static const char *
heif_kind (const guint8 *head, gsize head_len)
{
  /* Major brand at 8, minor version at 12, compatible brands from 16. */
  for (gsize at = 8; at + 4 <= head_len; at += at == 8 ? 8 : 4)
    if (memcmp (head + at, "avif", 4) == 0 || memcmp (head + at, "avis", 4) == 0)
      return "AVIF";
  return "HEIC";
}

#ifdef ST_HAVE_LIBHEIF

/* ---- Reading ------------------------------------------------------------------ */

typedef struct {
  struct heif_image *image;
  const guint8 *pixels;        /* interleaved RGB(A), 8 or little-endian 16 bits */
  int stride;
  int width, channels;
  int bits;                    /* significant bits a sample: 8, 10, 12... */
  int next_row;
} HeifLoad;

static gpointer
heif_init_once (G_GNUC_UNUSED gpointer data)
{
  /* Plugins are registered once for the process; never undone, as other
   * readers may be open in other threads. */
  heif_init (NULL);
  return NULL;
}

static void
heif_reader_close (gpointer reader)
{
  HeifLoad *ld = reader;
  if (!ld)
    return;
  heif_image_release (ld->image);
  g_free (ld);
}

/* "PATH: invalid HEIC file (libheif's message)"; a file that ends early
 * says so. */
static void
set_heif_error (GError **error, const char *path, const char *kind, struct heif_error err)
{
  /* libheif's messages may end in a newline or hold several lines. */
  g_autofree char *message = g_strstrip (g_strdelimit (g_strdup (err.message), "\r\n", ' '));
  if (err.code == heif_error_Invalid_input && err.subcode == heif_suberror_End_of_data)
    g_set_error (error, ST_ERROR, ST_ERROR_IMAGE, "%s: truncated %s file (%s)", path, kind,
                 message);
  else if (err.code == heif_error_Memory_allocation_error)
    g_set_error (error, ST_ERROR, ST_ERROR_IMAGE, "%s: not enough memory to decode the %s image",
                 path, kind);
  else
    g_set_error (error, ST_ERROR, ST_ERROR_IMAGE, "%s: invalid %s file (%s)", path, kind,
                 message);
}

/* One metadata item's bytes, or NULL when it is empty, too large or
 * unreadable (metadata is never a reason to refuse the pixels). */
static guint8 *
heif_metadata_bytes (const struct heif_image_handle *handle, heif_item_id id, gsize *size)
{
  *size = heif_image_handle_get_metadata_size (handle, id);
  if (*size == 0 || *size > ST_IMAGE_METADATA_MAX_BYTES)
    return NULL;
  guint8 *data = g_malloc (*size);
  if (heif_image_handle_get_metadata (handle, id, data).code != heif_error_Ok)
    g_clear_pointer (&data, g_free);
  return data;
}

/* The ICC profile, EXIF and XMP of the primary image.  EXIF is a 4-byte
 * offset to its TIFF header, then the block; its orientation is set to 1,
 * since libheif has already turned the pixels by irot and imir (which a
 * HEIF's EXIF orientation only repeats). */
static void
heif_read_metadata (const struct heif_image_handle *handle, StImageMetadata *m)
{
  const enum heif_color_profile_type profile = heif_image_handle_get_color_profile_type (handle);
  if (profile == heif_color_profile_type_prof || profile == heif_color_profile_type_rICC)
    {
      gsize size = heif_image_handle_get_raw_color_profile_size (handle);
      if (size > 0 && size <= ST_IMAGE_METADATA_MAX_BYTES)
        {
          g_autofree guint8 *icc = g_malloc (size);
          if (heif_image_handle_get_raw_color_profile (handle, icc).code == heif_error_Ok)
            st_image_metadata_set (&m->icc, icc, size);
        }
    }
  heif_item_id ids[16];
  const int n = heif_image_handle_get_list_of_metadata_block_IDs (handle, NULL, ids,
                                                                  G_N_ELEMENTS (ids));
  for (int i = 0; i < n; i++)
    {
      const char *type = heif_image_handle_get_metadata_type (handle, ids[i]);
      const char *content = heif_image_handle_get_metadata_content_type (handle, ids[i]);
      const gboolean exif = type && strcmp (type, "Exif") == 0;
      const gboolean xmp = type && strcmp (type, "mime") == 0 && content
                           && strcmp (content, "application/rdf+xml") == 0;
      if ((exif && m->exif) || (xmp && m->xmp) || (!exif && !xmp))
        continue;
      gsize size;
      g_autofree guint8 *data = heif_metadata_bytes (handle, ids[i], &size);
      if (!data)
        continue;
      if (xmp)
        {
          st_image_metadata_set (&m->xmp, data, size);
          continue;
        }
      if (size < 4)
        continue;
      const guint32 offset = (guint32) data[0] << 24 | (guint32) data[1] << 16
                             | (guint32) data[2] << 8 | data[3];
      if (offset > size - 4 || !st_image_exif_is_tiff (data + 4 + offset, size - 4 - offset))
        continue;
      st_image_metadata_set (&m->exif, data + 4 + offset, size - 4 - offset);
      GBytes *upright = st_image_exif_upright (m->exif);
      if (upright)
        {
          g_bytes_unref (m->exif);
          m->exif = upright;
        }
    }
}

static gpointer
heif_reader_open (StImageInput *in, guint64 max_pixels, StImageHeader *header, GError **error)
{
  static GOnce init = G_ONCE_INIT;
  g_once (&init, heif_init_once, NULL);

  const char *kind = heif_kind (in->head, in->head_len);
  gsize size;
  g_autofree guint8 *data = st_image_input_read_all (in, &size, error);
  if (!data)
    return NULL;

  struct heif_context *ctx = heif_context_alloc ();
  struct heif_image_handle *handle = NULL;
  struct heif_image *image = NULL;
  struct heif_decoding_options *options = NULL;
  HeifLoad *ld = NULL;
  struct heif_error err = heif_context_read_from_memory_without_copy (ctx, data, size, NULL);
  if (err.code == heif_error_Ok)
    err = heif_context_get_primary_image_handle (ctx, &handle);
  if (err.code != heif_error_Ok)
    {
      set_heif_error (error, in->path, kind, err);
      goto out;
    }

  /* The size after the transformations: what the rows will be. */
  const int width = heif_image_handle_get_width (handle);
  const int height = heif_image_handle_get_height (handle);
  if (width < 1 || height < 1)
    {
      g_set_error (error, ST_ERROR, ST_ERROR_IMAGE, "%s: invalid %s file (image of %dx%d)",
                   in->path, kind, width, height);
      goto out;
    }
  if (!st_image_check_pixel_limit (in->path, width, height, max_pixels, error))
    goto out;

  const gboolean alpha = heif_image_handle_has_alpha_channel (handle);
  const int luma_bits = heif_image_handle_get_luma_bits_per_pixel (handle);
  const gboolean deep = luma_bits > 8;
  const enum heif_chroma chroma = deep
    ? (alpha ? heif_chroma_interleaved_RRGGBBAA_LE : heif_chroma_interleaved_RRGGBB_LE)
    : (alpha ? heif_chroma_interleaved_RGBA : heif_chroma_interleaved_RGB);
  options = heif_decoding_options_alloc ();
  err = heif_decode_image (handle, &image, heif_colorspace_RGB, chroma, options);
  if (err.code != heif_error_Ok)
    {
      set_heif_error (error, in->path, kind, err);
      goto out;
    }
  ld = g_new0 (HeifLoad, 1);
  ld->image = g_steal_pointer (&image);
  ld->pixels = heif_image_get_plane_readonly (ld->image, heif_channel_interleaved, &ld->stride);
  ld->width = width;
  ld->channels = alpha ? 4 : 3;
  ld->bits = deep ? heif_image_get_bits_per_pixel_range (ld->image, heif_channel_interleaved)
                  : 8;
  if (!ld->pixels || heif_image_get_width (ld->image, heif_channel_interleaved) != width
      || heif_image_get_height (ld->image, heif_channel_interleaved) != height
      || ld->bits < 8 || ld->bits > 16)
    {
      g_set_error (error, ST_ERROR, ST_ERROR_IMAGE,
                   "%s: invalid %s file (the decoded image is not the %dx%d it declares)",
                   in->path, kind, width, height);
      g_clear_pointer (&ld, heif_reader_close);
      goto out;
    }
  header->width = width;
  header->height = height;
  header->channels = ld->channels;
  header->info = (StImageInfo) { ST_FORMAT_HEIF, deep ? 16 : 8, alpha };
  heif_read_metadata (handle, &header->metadata);

out:
  heif_decoding_options_free (options);
  heif_image_release (image);
  heif_image_handle_release (handle);
  heif_context_free (ctx);
  return ld;
}

static gboolean
heif_reader_read (gpointer reader, StTensor *dst, int first_row, int n_rows,
                  G_GNUC_UNUSED GError **error)
{
  HeifLoad *ld = reader;
  const float *unit = st_image_unit_table ();
  const float scale = 1.0f / (float) ((1u << ld->bits) - 1);
  for (int k = 0; k < n_rows; k++, ld->next_row++)
    {
      float *planes[4];
      st_image_row_planes (dst, first_row + k, planes);
      const guint8 *src = ld->pixels + (gsize) ld->next_row * ld->stride;
      if (ld->bits == 8)
        {
          st_image_row_u8_to_planes (planes, ld->channels, 1, src, ld->channels, ld->width,
                                     unit);
          continue;
        }
      for (int x = 0; x < ld->width; x++)
        for (int c = 0; c < ld->channels; c++)
          {
            const guint8 *s = src + ((gsize) x * ld->channels + c) * 2;
            planes[c][x] = (float) (s[0] | s[1] << 8) * scale;
          }
    }
  return TRUE;
}

#else /* !ST_HAVE_LIBHEIF */

static gpointer
heif_reader_open (StImageInput *in, G_GNUC_UNUSED guint64 max_pixels,
                  G_GNUC_UNUSED StImageHeader *header, GError **error)
{
  g_set_error (error, ST_ERROR, ST_ERROR_IMAGE,
               "%s: %s images need strata built with libheif (libheif-dev)", in->path,
               heif_kind (in->head, in->head_len));
  return NULL;
}

static gboolean
heif_reader_read (G_GNUC_UNUSED gpointer reader, G_GNUC_UNUSED StTensor *dst,
                  G_GNUC_UNUSED int first_row, G_GNUC_UNUSED int n_rows,
                  G_GNUC_UNUSED GError **error)
{
  g_assert_not_reached ();
}

static void
heif_reader_close (G_GNUC_UNUSED gpointer reader)
{
}

#endif /* ST_HAVE_LIBHEIF */

/* ---- Writing: refused -------------------------------------------------------- */

static gboolean
heif_writer_check (const StImageWriteSpec *spec, GError **error)
{
  g_set_error (error, ST_ERROR, ST_ERROR_IMAGE,
               "%s: cannot write HEIC or AVIF (strata reads them only; write PNG, JPEG, "
               "TIFF, WebP or PNM)", spec->path);
  return FALSE;
}

static const char *const heif_extensions[] = { "heic", "heif", "avif", "hif", NULL };

const StImageCodec st_image_heif_codec = {
  .format = ST_FORMAT_HEIF,
  .name = "HEIF",
  .extensions = heif_extensions,
  .match = heif_match,
  .reader_open = heif_reader_open,
  .reader_read = heif_reader_read,
  .reader_close = heif_reader_close,
  .writer_check = heif_writer_check,
};
