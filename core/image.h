/* strata — reading and writing PNG and JPEG images as tensors. */
#pragma once

#include <strata/strata.h>

G_BEGIN_DECLS

typedef enum {
  ST_FORMAT_UNKNOWN,
  ST_FORMAT_PNG,
  ST_FORMAT_JPEG,
  ST_FORMAT_TIFF,
  ST_FORMAT_WEBP,
  ST_FORMAT_PNM,
  ST_FORMAT_GIF,
  ST_FORMAT_HEIF,              /* HEIC and AVIF, read only */
} StImageFormat;

typedef struct {
  StImageFormat format;
  int bit_depth;               /* 8 or 16 (PNG only); what a writer should keep */
  gboolean has_alpha;          /* the last channel of the tensor is alpha */
} StImageInfo;

#define ST_DEFAULT_MAX_PIXELS G_GUINT64_CONSTANT (200000000)

/* The format named by a file's extension (.png, .jpg, .jpeg, any case). */
StImageFormat st_image_format_from_name (const char *path);

/* The format whose signature starts the file at path (its first few bytes
 * only are read), or ST_FORMAT_UNKNOWN when none does or it cannot be
 * read. */
StImageFormat st_image_format_from_content (const char *path);

/* A format's usual extension, without the dot ("png"), and its name in
 * messages ("PNG"). */
const char *st_image_format_extension (StImageFormat format);
const char *st_image_format_label (StImageFormat format);

/* The format an image read as format is written in when none is asked
 * for: the same, or PNG for a format strata reads only (GIF, HEIF). */
StImageFormat st_image_output_format (StImageFormat format);

/* Every extension the codecs know, in the codec table's order, each after
 * prefix: ".png, .jpg, ... or .gif" with last_separator " or ".  Free it. */
char *st_image_extension_list (const char *prefix, const char *last_separator);

/* Reads a PNG or JPEG (chosen by the file's signature, not its name) into a
 * new [1, C, H, W] tensor of values in [0, 1]: C is 1 (gray), 2 (gray +
 * alpha), 3 (RGB) or 4 (RGBA).  Palette PNGs are expanded, a JPEG's EXIF
 * orientation is applied.  Images declaring more than max_pixels pixels are
 * refused before any large allocation (0: no limit).  Every error names the
 * file.  info may be NULL. */
StTensor *st_image_load (const char *path, guint64 max_pixels,
                         StImageInfo *info, GError **error);

/* Writes a [1, C, H, W] tensor (C as above; values clamped to [0, 1] and
 * rounded to the bit depth).  JPEG is 8-bit and drops alpha; quality 1-100.
 * The file is written under a temporary name in the same folder and renamed
 * into place, so a failed write leaves nothing behind. */
gboolean st_image_save (const StTensor *image, const char *path,
                        StImageFormat format, int bit_depth, int jpeg_quality,
                        GError **error);

/* ---- Streaming ----------------------------------------------------------
 * st_image_load and st_image_save are built on these: an image read or
 * written a band of rows at a time, so a large image never has to be held
 * whole.  Rows are decoded as they are asked for, except where the file
 * makes that impossible: an interlaced PNG (its rows fill in over seven
 * passes) keeps its decoded bytes, and a JPEG whose EXIF orientation flips
 * it upside down or turns it is decoded whole when opened. */

typedef struct _StImageReader StImageReader;
typedef struct _StImageWriter StImageWriter;

/* Opens an image and reads its header: what st_image_load checks (the
 * signature, the size limit) is checked here.  path "-" reads standard
 * input (any format, by its signature; errors say "standard input").  width, height and channels
 * are what the rows will be (after orientation, alpha included); info and
 * the three may be NULL. */
StImageReader *st_image_reader_open (const char *path, guint64 max_pixels,
                                     StImageInfo *info, int *width, int *height,
                                     int *channels, GError **error);
/* Reads the next n_rows rows of the image, in order, into rows first_row to
 * first_row + n_rows - 1 of dst, a [1, C, H, W] tensor of the image's width
 * and channels.  Reading the last row also checks the rest of the file, so
 * a file cut short fails here.  After a failure the reader only closes. */
gboolean st_image_reader_read (StImageReader *reader, StTensor *dst,
                               int first_row, int n_rows, GError **error);
/* Every row, into a new tensor; only before any row was read. */
StTensor *st_image_reader_read_all (StImageReader *reader, GError **error);
void st_image_reader_close (StImageReader *reader);

/* Starts writing a width x height image of channels channels (1 to 4, as
 * st_image_save takes them) to a temporary file in path's folder.  format
 * ST_FORMAT_UNKNOWN: from path's extension.  bit_depth and quality as for
 * st_image_save. */
StImageWriter *st_image_writer_open (const char *path, StImageFormat format,
                                     int width, int height, int channels,
                                     int bit_depth, int quality, GError **error);
/* Writes rows src_first_row to src_first_row + n_rows - 1 of src (a
 * [1, C, H, W] tensor of the writer's width and channels) as the image's
 * next n_rows rows. */
gboolean st_image_writer_write (StImageWriter *writer, const StTensor *src,
                                int src_first_row, int n_rows, GError **error);
/* The same from one pointer per channel: planes[c] points at the first
 * row's values of channel c, each row width floats after the one before. */
gboolean st_image_writer_write_planes (StImageWriter *writer,
                                       const float *const *planes, int n_rows,
                                       GError **error);
/* Completes the file (every row must have been written) and renames it into
 * place; on failure removes it.  Frees the writer either way. */
gboolean st_image_writer_finish (StImageWriter *writer, GError **error);
/* Removes the temporary file and frees the writer. */
void st_image_writer_abort (StImageWriter *writer);

G_DEFINE_AUTOPTR_CLEANUP_FUNC (StImageReader, st_image_reader_close)

/* The colour planes of image ([1, C, H, W], alpha its last plane) as a new
 * tensor, and, when alpha is not NULL, its alpha plane as another: filters
 * and classifiers see colour only. */
StTensor *st_image_split_alpha (const StTensor *image, StTensor **alpha);

/* ---- Metadata -----------------------------------------------------------
 * What travels with the pixels from a reader to a writer: each a byte blob
 * as the formats store it, or NULL.  Pixels are not colour-managed; the
 * profile is handed on so that viewers show the same colours.  A blob over
 * ST_IMAGE_METADATA_MAX_BYTES, or one that is malformed, is dropped when
 * read (a broken profile never costs the pixels). */

#define ST_IMAGE_METADATA_MAX_BYTES (4u << 20)

typedef struct {
  GBytes *icc;                 /* an ICC profile */
  GBytes *exif;                /* EXIF as a TIFF structure ("II*\0" or "MM\0*" first) */
  GBytes *xmp;                 /* an XMP packet (XML) */
} StImageMetadata;

StImageMetadata *st_image_metadata_new (void);
void st_image_metadata_free (StImageMetadata *metadata);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (StImageMetadata, st_image_metadata_free)

/* The reader's metadata, handed to the caller (free it); the reader keeps
 * none.  An EXIF orientation the reader applied is set to 1 in it, so that
 * viewers do not turn the picture twice. */
StImageMetadata *st_image_reader_take_metadata (StImageReader *reader);

/* What a writer adds to the pixels; zeroed: nothing. */
typedef struct {
  const StImageMetadata *metadata;  /* NULL: none */
  gboolean lossless;                /* WebP lossless; PNG, TIFF, PNM are anyway; JPEG refuses */
} StImageWriteOptions;

/* st_image_writer_open and st_image_save with options (NULL as zeroed). */
StImageWriter *st_image_writer_open_with (const char *path, StImageFormat format,
                                          int width, int height, int channels,
                                          int bit_depth, int quality,
                                          const StImageWriteOptions *options,
                                          GError **error);
gboolean st_image_save_with (const StTensor *image, const char *path,
                             StImageFormat format, int bit_depth, int quality,
                             const StImageWriteOptions *options, GError **error);

G_END_DECLS
