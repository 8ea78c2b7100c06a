/* strata — the interface every image format implements, and what the
 * formats share.  Private to core/image*.c.
 *
 * A format is one file (image-png.c, image-jpeg.c) exporting one
 * StImageCodec, listed in the table at the top of image.c.  image.c does
 * what is the same for every format: opening the file or standard input,
 * telling the format from the first bytes, the temporary output file, the
 * checks on arguments and on the order of calls.  A codec reads or writes
 * rows of float planes and sets errors that start with the file's path.
 *
 * Reading: reader_open reads the header (refusing images over max_pixels
 * before allocating much) and fills an StImageHeader; reader_read is then
 * called with bands of rows, in order, and reader_close at the end.
 * Writing: writer_check refuses what the format cannot hold before any
 * file is made; writer_open starts the encoding into a stream, writer_write
 * takes bands of rows, writer_finish completes the stream (image.c then
 * names the file), writer_free releases it in every case. */
#pragma once

#include "image.h"
#include "image-convert.h"

#include <stdio.h>

G_BEGIN_DECLS

/* Room for a codec library's error message. */
#define ST_IMAGE_REASON_SIZE 512

/* Enough of the file to tell its format and, for a PNG, to read the IHDR
 * chunk (signature 8 + length 4 + type 4 + data 13 + CRC 4). */
#define ST_IMAGE_HEAD_SIZE 33

/* An open file whose first bytes were already read to tell its format;
 * reads serve those bytes again first, so the file need not be seekable. */
typedef struct {
  const char *path;            /* as errors name it: "standard input" for "-" */
  FILE *fp;
  guint8 head[ST_IMAGE_HEAD_SIZE];
  gsize head_len;
  gsize head_pos;
} StImageInput;

/* Reads up to size bytes; fewer at the end of the file or on an error
 * (ferror (in->fp) tells which). */
gsize st_image_input_read (StImageInput *in, void *buf, gsize size);
/* The rest of the file, for a format whose library needs it whole. */
guint8 *st_image_input_read_all (StImageInput *in, gsize *size, GError **error);

/* What a reader knows once the header is read. */
typedef struct {
  int width, height, channels; /* of the rows it will give (after orientation) */
  StImageInfo info;
  /* Set when the format had to decode the whole image when opened (a JPEG
   * turned by its EXIF orientation): image.c serves the rows from it and
   * owns it; reader_read is then never called. */
  StTensor *whole;
  /* What the file holds beside the pixels, set by reader_open; image.c
   * owns it and drops what is malformed or too large. */
  StImageMetadata metadata;
} StImageHeader;

/* What a writer is asked to write; path is what errors name. */
typedef struct {
  const char *path;
  int width, height, channels; /* channels 1 to 4, as st_image_save takes them */
  int bit_depth;               /* 8 or 16 where the format has a choice */
  int quality;                 /* 1 to 100 for lossy formats */
  /* To write beside the pixels: fields may be NULL; checked by image.c (an
   * ICC profile matches the colour channels). */
  StImageMetadata metadata;
  gboolean lossless;
} StImageWriteSpec;

typedef enum {
  ST_IMAGE_MATCH_NO,
  ST_IMAGE_MATCH_YES,
  ST_IMAGE_MATCH_TRUNCATED,    /* the file ends inside the signature */
} StImageMatch;

typedef struct {
  StImageFormat format;
  const char *name;                 /* in messages: "PNG" */
  const char *const *extensions;    /* lower case, no dot, NULL-terminated */
  /* Whether the file's first bytes are this format's signature. */
  StImageMatch (*match) (const guint8 *head, gsize head_len);

  gpointer (*reader_open) (StImageInput *in, guint64 max_pixels, StImageHeader *header,
                           GError **error);
  /* Rows first_row to first_row + n_rows - 1 of dst are the next n_rows
   * rows; reading the last row checks the rest of the file. */
  gboolean (*reader_read) (gpointer reader, StTensor *dst, int first_row, int n_rows,
                           GError **error);
  void (*reader_close) (gpointer reader);

  gboolean (*writer_check) (const StImageWriteSpec *spec, GError **error);
  gpointer (*writer_open) (FILE *fp, const StImageWriteSpec *spec, GError **error);
  gboolean (*writer_write) (gpointer writer, const StImageRows *rows, GError **error);
  gboolean (*writer_finish) (gpointer writer, GError **error);
  void (*writer_free) (gpointer writer);
} StImageCodec;

extern const StImageCodec st_image_png_codec;
extern const StImageCodec st_image_jpeg_codec;
extern const StImageCodec st_image_tiff_codec;
extern const StImageCodec st_image_webp_codec;
extern const StImageCodec st_image_pnm_codec;
extern const StImageCodec st_image_gif_codec;
extern const StImageCodec st_image_heif_codec;

/* ---- Helpers for the codecs ---------------------------------------------- */

/* YES when head starts with magic, TRUNCATED when head is shorter and is
 * its beginning. */
StImageMatch st_image_match_magic (const guint8 *head, gsize head_len,
                                   const guint8 *magic, gsize magic_len);

/* Refuses an image of more than max_pixels pixels (0: no limit), naming the
 * file, the size and --max-pixels. */
gboolean st_image_check_pixel_limit (const char *path, guint64 width, guint64 height,
                                     guint64 max_pixels, GError **error);

/* A new [1, channels, height, width] tensor, or an error naming path. */
StTensor *st_image_new_tensor (const char *path, int channels, guint64 height,
                               guint64 width, GError **error);

/* Hands on an error a codec met: *found (an error set outside the codec
 * library, already complete) when set, else "PATH: REASON" with code. */
void st_image_take_error (GError **error, GError **found, const char *path, int code,
                          const char *reason);

/* ---- EXIF (image-exif.c) ---------------------------------------------------- */

/* The orientation tag (1 to 8) of an EXIF block ("Exif\0\0" and a TIFF
 * structure, as a JPEG's APP1 marker holds it); 1 if it has none. */
int st_image_exif_orientation (const guint8 *data, gsize size);

/* Where the pixels of a width x height stored image go for the picture to
 * show upright; for orientations 5 to 8 the output's width is height. */
StImagePlacement st_image_placement_for_orientation (int orientation, ptrdiff_t width,
                                                     ptrdiff_t height);

/* Whether the orientation keeps the stored row order, so rows can be
 * handed on as they are decoded; the others need the whole image first. */
gboolean st_image_orientation_streams (int orientation);

/* The same block with orientation 1 where it says otherwise: a new blob,
 * or NULL when there is nothing to change (no tag, already 1, malformed). */
GBytes *st_image_exif_upright (GBytes *exif);

/* Whether a blob looks like an EXIF TIFF structure ("II*\0" or "MM\0*"). */
gboolean st_image_exif_is_tiff (const guint8 *data, gsize size);

/* EXIF in a TIFF file, whose directories hold it (image-exif.c).
 * st_image_exif_from_tiff: the EXIF of a classic TIFF file in memory as a
 * block (its first directory's EXIF and GPS pointers and camera, date and
 * author text, with the directories pointed at), or NULL.
 * st_image_exif_ifd_offset: the value of the first directory's entry tag
 * (0x8769 EXIF, 0x8825 GPS), 0 if none.  st_image_exif_ifd0_text: the text
 * of the first directory's ASCII entry tag (free it), or NULL.
 * st_image_exif_into_tiff: appends to file (a classic TIFF of exif's byte
 * order whose first directory has an entry tag) a copy of the directory
 * exif's entry tag points at, and points the file's entry at it. */
GBytes *st_image_exif_from_tiff (const guint8 *file, gsize size);
guint32 st_image_exif_ifd_offset (const guint8 *data, gsize size, guint tag);
char *st_image_exif_ifd0_text (const guint8 *data, gsize size, guint tag);
gboolean st_image_exif_into_tiff (GByteArray *file, GBytes *exif, guint tag);
/* Whether st_image_exif_into_tiff would find a sound directory for tag. */
gboolean st_image_exif_has_ifd (GBytes *exif, guint tag);

/* Stores a copy of size bytes at data in *field (replacing what is there)
 * unless it is empty or over ST_IMAGE_METADATA_MAX_BYTES. */
void st_image_metadata_set (GBytes **field, const void *data, gsize size);

G_END_DECLS
