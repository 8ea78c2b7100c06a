/* strata — fuzz harness: image decoding (core/image.c), EXIF orientation
 * and the metadata handed on (ICC profile, EXIF, XMP) included.
 *
 * The input is an image file.  It is decoded whole (st_image_load) and
 * again in bands of a few rows through the streaming reader, which must
 * agree with each other, fail together, and give values in [0, 1]. */
#include "fuzz.h"

#include "image.h"

#include <string.h>

/* Enough for every seed; a larger declared size is refused before any
 * large allocation, which is what the limit is for. */
#define FUZZ_MAX_PIXELS (1u << 20)

/* Rows per band: odd, so bands straddle libjpeg's 16-row batches. */
#define BAND_ROWS 7

/* What a reader hands on is bounded, and its EXIF a TIFF structure. */
static void
check_metadata (const StImageMetadata *m)
{
  GBytes *const blobs[] = { m->icc, m->exif, m->xmp };
  for (gsize i = 0; i < G_N_ELEMENTS (blobs); i++)
    g_assert (!blobs[i] || (g_bytes_get_size (blobs[i]) > 0
                            && g_bytes_get_size (blobs[i]) <= ST_IMAGE_METADATA_MAX_BYTES));
  if (m->exif)
    {
      const guint8 *exif = g_bytes_get_data (m->exif, NULL);
      g_assert (memcmp (exif, "II*\0", 4) == 0 || memcmp (exif, "MM\0*", 4) == 0);
    }
}

static StTensor *
read_in_bands (const char *path, GError **error)
{
  int width, height, channels;
  g_autoptr (StImageReader) r = st_image_reader_open (path, FUZZ_MAX_PIXELS, NULL, &width,
                                                      &height, &channels, error);
  if (!r)
    return NULL;
  g_autoptr (StImageMetadata) metadata = st_image_reader_take_metadata (r);
  check_metadata (metadata);
  StTensor *t = st_tensor_new ((StShape) { 1, channels, height, width }, error);
  if (!t)
    return NULL;
  for (int row = 0; row < height; row += BAND_ROWS)
    if (!st_image_reader_read (r, t, row, MIN (BAND_ROWS, height - row), error))
      {
        st_tensor_free (t);
        return NULL;
      }
  return t;
}

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
  fuzz_init ();
  const char *path = fuzz_bytes_path (0, data, size);

  g_autoptr (GError) error = NULL;
  StImageInfo info;
  g_autoptr (StTensor) whole = st_image_load (path, FUZZ_MAX_PIXELS, &info, &error);
  g_assert ((whole == NULL) == (error != NULL));
  if (error)
    g_assert (g_str_has_prefix (error->message, path));

  g_autoptr (GError) band_error = NULL;
  g_autoptr (StTensor) banded = read_in_bands (path, &band_error);
  g_assert ((banded == NULL) == (whole == NULL));
  if (!whole)
    return 0;

  g_assert (info.format != ST_FORMAT_UNKNOWN);
  g_assert (whole->shape.n == 1 && whole->shape.c >= 1 && whole->shape.c <= 4);
  g_assert (memcmp (&whole->shape, &banded->shape, sizeof whole->shape) == 0);
  const gsize n = st_tensor_numel (whole);
  for (gsize i = 0; i < n; i++)
    g_assert (whole->data[i] >= 0.0f && whole->data[i] <= 1.0f);
  g_assert (memcmp (whole->data, banded->data, n * sizeof (float)) == 0);
  return 0;
}
