/* strata — EXIF orientation: reading the tag with libexif, and where it
 * puts each pixel.  Any format that carries an EXIF block can use it. */
#include "image-format.h"

#include <libexif/exif-data.h>

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
