/* strata — EXIF orientation: reading the tag with libexif, and where it
 * puts each pixel.  Any format that carries an EXIF block can use it. */
#include "image-format.h"

#include <libexif/exif-data.h>
#include <string.h>

int
st_image_exif_orientation (const guint8 *data, gsize size)
{
  ExifData *exif = exif_data_new ();
  if (!exif)
    return 1;
  /* Only reading: keep libexif from "fixing" (adding) entries. */
  exif_data_unset_option (exif, EXIF_DATA_OPTION_FOLLOW_SPECIFICATION);
  exif_data_load_data (exif, data, size);
  int orientation = 1;
  ExifEntry *entry = exif_data_get_entry (exif, EXIF_TAG_ORIENTATION);
  if (entry && entry->format == EXIF_FORMAT_SHORT && entry->components >= 1
      && entry->size >= 2)
    orientation = exif_get_short (entry->data, exif_data_get_byte_order (exif));
  exif_data_unref (exif);
  return orientation >= 1 && orientation <= 8 ? orientation : 1;
}

/* The EXIF orientation tag says how the stored rows must be transformed to
 * show the picture upright; for 5 to 8 the output's width is the source's
 * height.  Source is width x height. */
StImagePlacement
st_image_placement_for_orientation (int orientation, ptrdiff_t width, ptrdiff_t height)
{
  typedef StImagePlacement Place;
  ptrdiff_t w = width, h = height;
  switch (orientation)
    {
    case 2: return (Place) { w - 1, -1, w };                        /* mirrored */
    case 3: return (Place) { (h - 1) * w + w - 1, -1, -w };         /* rotated 180 */
    case 4: return (Place) { (h - 1) * w, 1, -w };                  /* flipped */
    case 5: return (Place) { 0, h, 1 };                             /* transposed */
    case 6: return (Place) { h - 1, h, -1 };                        /* needs 90 clockwise */
    case 7: return (Place) { (w - 1) * h + h - 1, -h, -1 };         /* transversed */
    case 8: return (Place) { (w - 1) * h, -h, 1 };                  /* needs 90 counter-clockwise */
    default: return (Place) { 0, 1, w };
    }
}

/* Orientations 1 and 2 keep the stored row order, so rows can be handed
 * on as they are decoded; the others need the whole image first. */
gboolean
st_image_orientation_streams (int orientation)
{
  return orientation <= 2;
}

/* ---- Handing EXIF on ---------------------------------------------------------- */

#define EXIF_TAG_ORIENTATION_ID 0x0112
#define EXIF_TYPE_SHORT 3

gboolean
st_image_exif_is_tiff (const guint8 *data, gsize size)
{
  return size >= 8 && (memcmp (data, "II*\0", 4) == 0 || memcmp (data, "MM\0*", 4) == 0);
}

static guint
exif_read16 (const guint8 *p, gboolean big)
{
  return big ? (guint) p[0] << 8 | p[1] : (guint) p[1] << 8 | p[0];
}

static guint32
exif_read32 (const guint8 *p, gboolean big)
{
  return big ? (guint32) p[0] << 24 | (guint32) p[1] << 16 | (guint32) p[2] << 8 | p[3]
             : (guint32) p[3] << 24 | (guint32) p[2] << 16 | (guint32) p[1] << 8 | p[0];
}

/* The orientation entry of IFD0 is patched in a copy, byte for byte, rather
 * than the block rebuilt by libexif: rebuilding can drop or move maker
 * notes and tags libexif does not know. */
GBytes *
st_image_exif_upright (GBytes *exif)
{
  gsize size;
  const guint8 *data = exif ? g_bytes_get_data (exif, &size) : NULL;
  if (!data || !st_image_exif_is_tiff (data, size))
    return NULL;
  const gboolean big = data[0] == 'M';
  const guint32 ifd = exif_read32 (data + 4, big);
  if (ifd < 8 || ifd > size - 2)
    return NULL;
  const guint count = exif_read16 (data + ifd, big);
  for (guint i = 0; i < count; i++)
    {
      const gsize entry = ifd + 2 + (gsize) 12 * i;
      if (entry + 12 > size)
        return NULL;
      if (exif_read16 (data + entry, big) != EXIF_TAG_ORIENTATION_ID)
        continue;
      if (exif_read16 (data + entry + 2, big) != EXIF_TYPE_SHORT
          || exif_read32 (data + entry + 4, big) < 1
          || exif_read16 (data + entry + 8, big) == 1)
        return NULL;
      guint8 *copy = g_memdup2 (data, size);
      copy[entry + 8] = big ? 0 : 1;
      copy[entry + 9] = big ? 1 : 0;
      return g_bytes_new_take (copy, size);
    }
  return NULL;
}
