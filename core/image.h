/* strata — reading and writing PNG and JPEG images as tensors. */
#pragma once

#include <strata/strata.h>

G_BEGIN_DECLS

typedef enum {
  ST_FORMAT_UNKNOWN,
  ST_FORMAT_PNG,
  ST_FORMAT_JPEG,
} StImageFormat;

typedef struct {
  StImageFormat format;
  int bit_depth;               /* 8 or 16 (PNG only); what a writer should keep */
  gboolean has_alpha;          /* the last channel of the tensor is alpha */
} StImageInfo;

#define ST_DEFAULT_MAX_PIXELS G_GUINT64_CONSTANT (200000000)

/* The format named by a file's extension (.png, .jpg, .jpeg, any case). */
StImageFormat st_image_format_from_name (const char *path);

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

G_END_DECLS
