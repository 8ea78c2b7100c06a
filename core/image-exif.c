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

/* ---- EXIF in a TIFF file ---------------------------------------------------------
 * A TIFF keeps EXIF as directories of its own, pointed at from its first
 * directory (the EXIF and GPS directory tags), not as a block.  Handing it
 * on means copying directories between a TIFF structure and another: each
 * entry with the data it points at, the offsets made to fit.  Both must
 * have the same byte order. */

#define TIFF_TAG_EXIF_IFD 0x8769
#define TIFF_TAG_GPS_IFD 0x8825
#define TIFF_TAG_INTEROP_IFD 0xa005
#define TIFF_TYPE_ASCII 2
#define TIFF_TYPE_LONG 4
#define TIFF_TYPE_IFD 13
/* Directories nested deeper than EXIF's interoperability one are not followed. */
#define TIFF_MAX_IFD_DEPTH 2

/* The first directory's tags that are EXIF's too (the camera, the date,
 * the author), beside the pointers. */
static const guint16 exif_ifd0_tags[] = {
  0x010e, 0x010f, 0x0110, 0x0131, 0x0132, 0x013b, 0x8298,
  TIFF_TAG_EXIF_IFD, TIFF_TAG_GPS_IFD, 0,
};

static const guint8 tiff_type_sizes[] = { 0, 1, 1, 2, 4, 8, 1, 1, 2, 4, 8, 4, 8, 4 };

typedef struct {
  const guint8 *src;
  gsize size;
  gboolean big;
  GByteArray *dst;
  guint32 base;                /* where dst will start in the file it joins */
} IfdCopy;

static void
exif_write16 (guint8 *p, guint v, gboolean big)
{
  p[big ? 0 : 1] = v >> 8;
  p[big ? 1 : 0] = v;
}

static void
exif_write32 (guint8 *p, guint32 v, gboolean big)
{
  for (int i = 0; i < 4; i++)
    p[big ? 3 - i : i] = v >> (8 * i);
}

static gboolean
is_pointer_tag (guint tag)
{
  return tag == TIFF_TAG_EXIF_IFD || tag == TIFF_TAG_GPS_IFD || tag == TIFF_TAG_INTEROP_IFD;
}

static gboolean
tag_listed (const guint16 *tags, guint tag)
{
  if (!tags)
    return TRUE;
  for (; *tags; tags++)
    if (*tags == tag)
      return TRUE;
  return FALSE;
}

/* Where entry i of the directory at offset is, or NULL past the bounds. */
static const guint8 *
ifd_entry (const IfdCopy *c, guint32 offset, guint i)
{
  if (offset < 8 || offset > c->size - 2)
    return NULL;
  const guint n = exif_read16 (c->src + offset, c->big);
  if (i >= n || (c->size - offset - 2) / 12 <= i)
    return NULL;
  return c->src + offset + 2 + 12 * (gsize) i;
}

static void
dst_align (GByteArray *dst)
{
  if (dst->len & 1)
    g_byte_array_append (dst, (const guint8 *) "", 1);
}

/* Copies the directory at offset of src, with the tags listed (NULL: all),
 * to the end of dst, followed by what its entries point at; the
 * directories it points at are copied too (before it), to depth.  Returns
 * its offset in the joined file, 0 when it is malformed or keeps nothing. */
static guint32
ifd_copy (IfdCopy *c, guint32 offset, const guint16 *tags, int depth)
{
  if (offset < 8 || offset > c->size - 2 || depth <= 0)
    return 0;
  const guint n = exif_read16 (c->src + offset, c->big);
  g_autofree guint32 *values = g_new0 (guint32, n + 1);
  g_autofree gboolean *keep = g_new0 (gboolean, n + 1);
  guint kept = 0;
  for (guint i = 0; i < n; i++)
    {
      const guint8 *e = ifd_entry (c, offset, i);
      if (!e)
        return 0;
      const guint tag = exif_read16 (e, c->big), type = exif_read16 (e + 2, c->big);
      const guint32 count = exif_read32 (e + 4, c->big);
      if (!tag_listed (tags, tag) || type == 0 || type >= G_N_ELEMENTS (tiff_type_sizes)
          || count == 0 || count > c->size / tiff_type_sizes[type])
        continue;
      const gsize bytes = (gsize) count * tiff_type_sizes[type];
      const guint32 at = exif_read32 (e + 8, c->big);
      if (is_pointer_tag (tag))
        {
          if (count != 1 || (type != TIFF_TYPE_LONG && type != TIFF_TYPE_IFD)
              || !(values[i] = ifd_copy (c, at, NULL, depth - 1)))
            continue;
        }
      else if (bytes > 4 && (at > c->size || bytes > c->size - at))
        continue;
      keep[i] = TRUE;
      kept++;
    }
  if (kept == 0)
    return 0;

  dst_align (c->dst);
  const guint pos = c->dst->len;
  g_byte_array_set_size (c->dst, pos + 2 + 12 * kept + 4);
  memset (c->dst->data + pos, 0, 2 + 12 * kept + 4);
  exif_write16 (c->dst->data + pos, kept, c->big);
  guint k = 0;
  for (guint i = 0; i < n; i++)
    {
      if (!keep[i])
        continue;
      const guint8 *e = ifd_entry (c, offset, i);
      const guint type = exif_read16 (e + 2, c->big);
      const gsize bytes = (gsize) exif_read32 (e + 4, c->big) * tiff_type_sizes[type];
      const gsize out = pos + 2 + 12 * (gsize) k++;
      memcpy (c->dst->data + out, e, 8);
      if (is_pointer_tag (exif_read16 (e, c->big)))
        exif_write32 (c->dst->data + out + 8, values[i], c->big);
      else if (bytes <= 4)
        memcpy (c->dst->data + out + 8, e + 8, 4);
      else
        {
          dst_align (c->dst);
          const guint32 data_pos = c->dst->len;
          g_byte_array_append (c->dst, c->src + exif_read32 (e + 8, c->big), bytes);
          exif_write32 (c->dst->data + out + 8, c->base + data_pos, c->big);
        }
    }
  return c->base + pos;
}

GBytes *
st_image_exif_from_tiff (const guint8 *file, gsize size)
{
  if (!st_image_exif_is_tiff (file, size))
    return NULL;
  const gboolean big = file[0] == 'M';
  g_autoptr (GByteArray) dst = g_byte_array_new ();
  g_byte_array_append (dst, file, 4);
  g_byte_array_set_size (dst, 8);
  IfdCopy c = { file, size, big, dst, 0 };
  const guint32 ifd0 = ifd_copy (&c, exif_read32 (file + 4, big), exif_ifd0_tags,
                                 TIFF_MAX_IFD_DEPTH + 1);
  if (!ifd0)
    return NULL;
  exif_write32 (dst->data + 4, ifd0, big);
  /* Text alone, without a pointer, is no EXIF to speak of. */
  if (!st_image_exif_ifd_offset (dst->data, dst->len, TIFF_TAG_EXIF_IFD)
      && !st_image_exif_ifd_offset (dst->data, dst->len, TIFF_TAG_GPS_IFD))
    return NULL;
  if (dst->len > ST_IMAGE_METADATA_MAX_BYTES)
    return NULL;
  return g_byte_array_free_to_bytes (g_steal_pointer (&dst));
}

guint32
st_image_exif_ifd_offset (const guint8 *data, gsize size, guint tag)
{
  if (!st_image_exif_is_tiff (data, size))
    return 0;
  const IfdCopy c = { data, size, data[0] == 'M', NULL, 0 };
  const guint32 ifd0 = exif_read32 (data + 4, c.big);
  const guint8 *e;
  for (guint i = 0; (e = ifd_entry (&c, ifd0, i)); i++)
    if (exif_read16 (e, c.big) == tag && exif_read32 (e + 4, c.big) == 1)
      return exif_read32 (e + 8, c.big);
  return 0;
}

char *
st_image_exif_ifd0_text (const guint8 *data, gsize size, guint tag)
{
  if (!st_image_exif_is_tiff (data, size))
    return NULL;
  const IfdCopy c = { data, size, data[0] == 'M', NULL, 0 };
  const guint32 ifd0 = exif_read32 (data + 4, c.big);
  const guint8 *e;
  for (guint i = 0; (e = ifd_entry (&c, ifd0, i)); i++)
    {
      if (exif_read16 (e, c.big) != tag || exif_read16 (e + 2, c.big) != TIFF_TYPE_ASCII)
        continue;
      const guint32 count = exif_read32 (e + 4, c.big);
      const guint8 *text = count <= 4 ? e + 8 : data + exif_read32 (e + 8, c.big);
      if (count == 0 || (count > 4 && (text < data || count > size - (gsize) (text - data))))
        return NULL;
      return g_utf8_make_valid ((const char *) text, strnlen ((const char *) text, count));
    }
  return NULL;
}

gboolean
st_image_exif_into_tiff (GByteArray *file, GBytes *exif, guint tag)
{
  gsize size;
  const guint8 *data = g_bytes_get_data (exif, &size);
  const guint32 from = st_image_exif_ifd_offset (data, size, tag);
  if (!from || !st_image_exif_is_tiff (file->data, file->len) || file->data[0] != data[0])
    return FALSE;
  /* The file's entry for tag, to point at the copy. */
  const gboolean big = data[0] == 'M';
  const IfdCopy f = { file->data, file->len, big, NULL, 0 };
  const guint32 ifd0 = exif_read32 (file->data + 4, big);
  const guint8 *e = NULL;
  for (guint i = 0; (e = ifd_entry (&f, ifd0, i)); i++)
    if (exif_read16 (e, big) == tag)
      break;
  if (!e)
    return FALSE;
  const gsize entry = e - file->data;
  dst_align (file);
  g_autoptr (GByteArray) copy = g_byte_array_new ();
  IfdCopy c = { data, size, big, copy, file->len };
  const guint32 at = ifd_copy (&c, from, NULL, TIFF_MAX_IFD_DEPTH);
  if (!at)
    return FALSE;
  g_byte_array_append (file, copy->data, copy->len);
  exif_write32 (file->data + entry + 8, at, big);
  return TRUE;
}

gboolean
st_image_exif_has_ifd (GBytes *exif, guint tag)
{
  gsize size;
  const guint8 *data = g_bytes_get_data (exif, &size);
  const guint32 from = st_image_exif_ifd_offset (data, size, tag);
  if (!from)
    return FALSE;
  g_autoptr (GByteArray) scratch = g_byte_array_new ();
  IfdCopy c = { data, size, data[0] == 'M', scratch, 0 };
  return ifd_copy (&c, from, NULL, TIFF_MAX_IFD_DEPTH) != 0;
}
