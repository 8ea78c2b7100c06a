/* strata — row conversion between codec bytes and tensor planes, shared by
 * every image format (see image-convert.c). */
#pragma once

#include <strata/strata.h>

#include <stddef.h>

G_BEGIN_DECLS

/* Where source pixel (x, y) lands in a plane of the output tensor:
 * origin + x * xstep + y * ystep.  Encodes the EXIF orientations. */
typedef struct {
  ptrdiff_t origin, xstep, ystep;
} StImagePlacement;

/* The rows of the current write: planes[c] + k * width is row k of
 * channel c. */
typedef struct {
  const float *const *planes;
  int n_rows;
} StImageRows;

/* value / 255 for every byte value. */
const float *st_image_unit_table (void);

/* Pointers to row `row` of each plane of t. */
void st_image_row_planes (const StTensor *t, int row, float **planes);

/* One row of 8-bit pixels of pixel_bytes bytes, whose first bytes are the
 * channels, into the planes: channel c of source pixel x goes to
 * planes[c][x * xstep], xstep 1, or -1 for a mirrored row (planes then
 * point at the row's last pixel). */
void st_image_row_u8_to_planes (float *const *planes, int channels, ptrdiff_t xstep,
                                const guint8 *src, int pixel_bytes, int width,
                                const float *table);
/* Big-endian 16-bit samples, as libpng delivers them. */
void st_image_row_u16be_to_planes (float *const *planes, int channels, const guint8 *src,
                                   int width);
/* Converts n_rows 8-bit rows (source rows y0 ...) into the planes of a
 * whole-image tensor, placed as place says. */
void st_image_store_rows_u8 (StTensor *t, const StImagePlacement *place, int width,
                             guint8 *const *rows, int pixel_bytes, int y0, int n_rows,
                             const float *table);

/* Packs one row, planes[c] (c < n_planes) holding its values, into
 * `channels` interleaved bytes a pixel; channels past n_planes (an RGBX
 * filler) are 255. */
void st_image_pack_row_u8 (const float *const *planes, int n_planes, int channels, int width,
                           guint8 *restrict dst);
/* The same as big-endian 16-bit samples, n_planes == channels. */
void st_image_pack_row_u16be (const float *const *planes, int channels, int width,
                              guint8 *restrict dst);

/* Row k of the current write, one pointer a channel. */
void st_image_rows_row (const StImageRows *src, int channels, int width, int k,
                        const float **row);

G_END_DECLS
