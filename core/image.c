/* strata — reading and writing PNG and JPEG images as tensors.
 *
 * Both directions stream: a reader decodes rows as they are asked for, a
 * writer encodes rows as they are given, so a large image can pass through
 * in strips; st_image_load and st_image_save are one call of each.
 *
 * libpng and libjpeg report errors by calling a handler that must not
 * return; both are given handlers that record the reason and longjmp back.
 * Each setjmp lives in a small *_run() function whose state is kept in a
 * struct reached through a pointer argument, so nothing the cleanup code
 * reads is a local variable clobbered by the longjmp.  A stream is one such
 * struct, and every call into the library goes through a *_run() function
 * of its own.
 *
 * Nothing here prints: warnings are dropped, errors become GErrors whose
 * message starts with the file's path. */
#include "image.h"
#include "atomic.h"

#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <jpeglib.h>
#include <jerror.h>
#include <libexif/exif-data.h>
#include <png.h>

#ifdef __SSE2__
#include <emmintrin.h>
#endif

/* The pixel conversions also get AVX2 versions, used when the CPU has AVX2
 * and FMA: they convert between bytes and floats two to three times as
 * fast, with results identical to the SSE2 and scalar code's (checked for
 * every byte value by the tests), so the output does not depend on the
 * CPU. */
#if defined(__GNUC__) && defined(__x86_64__)
#define HAVE_AVX2 1
#include <immintrin.h>
#define AVX2_FUNCTION __attribute__ ((target ("avx2")))
#define AVX2_FMA_FUNCTION __attribute__ ((target ("avx2,fma")))
#endif

#define REASON_SIZE 512

/* Enough of the file to tell its format and, for a PNG, to read the IHDR
 * chunk (signature 8 + length 4 + type 4 + data 13 + CRC 4). */
#define HEAD_SIZE 33

/* Rows handed to libjpeg per jpeg_read_scanlines() or
 * jpeg_write_scanlines() call. */
#define JPEG_ROWS_PER_CALL 16

/* Columns per block when writing a rotated image, so the rows of one batch
 * fill each destination cache line before it is evicted. */
#define TRANSPOSE_BLOCK 256

/* Pixels per block when converting floats to bytes for writing: small
 * enough that a block of every plane stays in L1. */
#define PACK_BLOCK 256


static const guint8 png_signature[8] = { 0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n' };
static const guint8 jpeg_signature[3] = { 0xff, 0xd8, 0xff };

StImageFormat
st_image_format_from_name (const char *path)
{
  g_return_val_if_fail (path != NULL, ST_FORMAT_UNKNOWN);

  const char *slash = strrchr (path, G_DIR_SEPARATOR);
  const char *dot = strrchr (slash ? slash + 1 : path, '.');
  if (!dot)
    return ST_FORMAT_UNKNOWN;
  const char *ext = dot + 1;
  if (g_ascii_strcasecmp (ext, "png") == 0)
    return ST_FORMAT_PNG;
  if (g_ascii_strcasecmp (ext, "jpg") == 0 || g_ascii_strcasecmp (ext, "jpeg") == 0)
    return ST_FORMAT_JPEG;
  return ST_FORMAT_UNKNOWN;
}

/* ---- Shared helpers ---------------------------------------------------- */

static void
fill_unit_table (float table[256])
{
  for (int i = 0; i < 256; i++)
    table[i] = (float) i / 255.0f;
}

/* Clamps to [0, 1] (NaN becomes 0) and rounds to the nearest step. */
static inline guint8
unit_to_u8 (float v)
{
  v = v * 255.0f + 0.5f;
  v = v > 0.0f ? v : 0.0f;
  v = v < 255.0f ? v : 255.0f;
  return (guint8) (int) v;     /* via int: one vector conversion instruction */
}

static inline guint16
unit_to_u16 (float v)
{
  v = v * 65535.0f + 0.5f;
  v = v > 0.0f ? v : 0.0f;
  v = v < 65535.0f ? v : 65535.0f;
  return (guint16) v;
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
static gboolean
check_pixel_limit (const char *path, guint64 width, guint64 height,
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

static StTensor *
new_image_tensor (const char *path, int channels, guint64 height, guint64 width,
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


/* Pointers to row `row` of each plane of t. */
static void
row_planes (const StTensor *t, int row, float **planes)
{
  const gsize plane_size = (gsize) t->shape.h * (gsize) t->shape.w;
  for (int c = 0; c < t->shape.c; c++)
    planes[c] = t->data + c * plane_size + (gsize) row * t->shape.w;
}

/* ---- Input ------------------------------------------------------------- */

/* An open file whose first bytes were already read to tell its format;
 * reads serve those bytes again first, so the file need not be seekable. */
typedef struct {
  const char *path;
  FILE *fp;
  guint8 head[HEAD_SIZE];
  gsize head_len;
  gsize head_pos;
} Input;

static gsize
input_read (Input *in, void *buf, gsize size)
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

/* Where source pixel (x, y) lands in a plane of the output tensor:
 * origin + x * xstep + y * ystep.  Encodes the EXIF orientations. */
typedef struct {
  ptrdiff_t origin, xstep, ystep;
} Placement;

/* The EXIF orientation tag says how the stored rows must be transformed to
 * show the picture upright; for 5 to 8 the output's width is the source's
 * height.  Source is width x height. */
static Placement
placement_for_orientation (int orientation, ptrdiff_t width, ptrdiff_t height)
{
  ptrdiff_t w = width, h = height;
  switch (orientation)
    {
    case 2: return (Placement) { w - 1, -1, w };                    /* mirrored */
    case 3: return (Placement) { (h - 1) * w + w - 1, -1, -w };     /* rotated 180 */
    case 4: return (Placement) { (h - 1) * w, 1, -w };              /* flipped */
    case 5: return (Placement) { 0, h, 1 };                         /* transposed */
    case 6: return (Placement) { h - 1, h, -1 };                    /* needs 90 clockwise */
    case 7: return (Placement) { (w - 1) * h + h - 1, -h, -1 };     /* transversed */
    case 8: return (Placement) { (w - 1) * h, -h, 1 };              /* needs 90 counter-clockwise */
    default: return (Placement) { 0, 1, w };
    }
}

/* Orientations 1 and 2 keep the stored row order, so rows can be handed
 * on as they are decoded; the others need the whole image first. */
static gboolean
orientation_streams (int orientation)
{
  return orientation <= 2;
}

#ifdef HAVE_AVX2
static gboolean
cpu_has_avx2 (void)
{
  static gsize have = 0;       /* 1 + the answer, once known */
  if (g_once_init_enter (&have))
    g_once_init_leave (&have, 1 + (__builtin_cpu_supports ("avx2")
                                   && __builtin_cpu_supports ("fma")));
  return have == 2;
}

/* i / 255 correctly rounded, without a division: q = i * RN(1/255) is
 * within an ulp, and one FMA step on the exact remainder i - 255 q
 * rounds it right (for every i from 0 to 255; division is 2x slower). */
AVX2_FMA_FUNCTION static inline __m256
unit_from_bytes_avx2 (__m256i i)
{
  const __m256 inverse = _mm256_set1_ps (1.0f / 255.0f), scale = _mm256_set1_ps (255.0f);
  const __m256 x = _mm256_cvtepi32_ps (i);
  const __m256 q = _mm256_mul_ps (x, inverse);
  return _mm256_fmadd_ps (_mm256_fnmadd_ps (q, scale, x), inverse, q);
}

/* As bytes_to_planes_sse2, 8 pixels at a time. */
AVX2_FMA_FUNCTION static int
bytes_to_planes_avx2 (float *const *planes, int channels, const guint8 *src,
                      int pixel_bytes, int width)
{
  int x = 0;
  if (pixel_bytes == 4 && channels >= 3)
    {
      const __m256i mask = _mm256_set1_epi32 (0xff);
      for (; x + 8 <= width; x += 8)
        {
          const __m256i v = _mm256_loadu_si256 ((const __m256i *) (src + 4 * x));
          for (int c = 0; c < channels; c++)
            _mm256_storeu_ps (planes[c] + x, unit_from_bytes_avx2 (
                                  _mm256_and_si256 (_mm256_srli_epi32 (v, 8 * c), mask)));
        }
    }
  else if (pixel_bytes == 1 && channels == 1)
    {
      for (; x + 8 <= width; x += 8)
        {
          const __m128i v = _mm_loadl_epi64 ((const __m128i *) (src + x));
          _mm256_storeu_ps (planes[0] + x, unit_from_bytes_avx2 (_mm256_cvtepu8_epi32 (v)));
        }
    }
  return x;
}
#endif

#ifdef __SSE2__
/* Converts the pixels of a row from x on into contiguous planes, 4 or 16
 * at a time, and returns how far it got.  divps is correctly rounded, so
 * the values equal the lookup table's i / 255 exactly. */
static int
bytes_to_planes_sse2 (float *const *planes, int channels, const guint8 *src,
                      int pixel_bytes, int width, int x)
{
  const __m128 scale = _mm_set1_ps (255.0f);
  if (pixel_bytes == 4 && channels >= 3)
    {
      /* Little-endian: channel c of a 32-bit pixel is bits 8c to 8c + 7. */
      const __m128i mask = _mm_set1_epi32 (0xff);
      for (; x + 4 <= width; x += 4)
        {
          const __m128i v = _mm_loadu_si128 ((const __m128i *) (src + 4 * x));
          _mm_storeu_ps (planes[0] + x, _mm_div_ps (_mm_cvtepi32_ps (_mm_and_si128 (v, mask)), scale));
          _mm_storeu_ps (planes[1] + x, _mm_div_ps (_mm_cvtepi32_ps (
                             _mm_and_si128 (_mm_srli_epi32 (v, 8), mask)), scale));
          _mm_storeu_ps (planes[2] + x, _mm_div_ps (_mm_cvtepi32_ps (
                             _mm_and_si128 (_mm_srli_epi32 (v, 16), mask)), scale));
          if (channels == 4)
            _mm_storeu_ps (planes[3] + x, _mm_div_ps (_mm_cvtepi32_ps (_mm_srli_epi32 (v, 24)), scale));
        }
    }
  else if (pixel_bytes == 1 && channels == 1)
    {
      const __m128i zero = _mm_setzero_si128 ();
      for (; x + 16 <= width; x += 16)
        {
          const __m128i v = _mm_loadu_si128 ((const __m128i *) (src + x));
          const __m128i lo = _mm_unpacklo_epi8 (v, zero), hi = _mm_unpackhi_epi8 (v, zero);
          const __m128i quarters[4] = {
            _mm_unpacklo_epi16 (lo, zero), _mm_unpackhi_epi16 (lo, zero),
            _mm_unpacklo_epi16 (hi, zero), _mm_unpackhi_epi16 (hi, zero),
          };
          for (int k = 0; k < 4; k++)
            _mm_storeu_ps (planes[0] + x + 4 * k, _mm_div_ps (_mm_cvtepi32_ps (quarters[k]), scale));
        }
    }
  return x;
}
#endif

/* One row of 8-bit pixels of pixel_bytes bytes, whose first bytes are the
 * channels, into the planes: channel c of source pixel x goes to
 * planes[c][x * xstep], xstep 1, or -1 for a mirrored row (planes then
 * point at the row's last pixel). */
static void
row_u8_to_planes (float *const *planes, int channels, ptrdiff_t xstep,
                  const guint8 *src, int pixel_bytes, int width, const float *table)
{
  int done = 0;
#ifdef HAVE_AVX2
  if (xstep == 1 && cpu_has_avx2 ())
    done = bytes_to_planes_avx2 (planes, channels, src, pixel_bytes, width);
#endif
#ifdef __SSE2__
  if (xstep == 1)
    done = bytes_to_planes_sse2 (planes, channels, src, pixel_bytes, width, done);
#endif
  for (int c = 0; c < channels; c++)
    {
      float *restrict dst = planes[c];
      const guint8 *restrict s = src + c;
      if (xstep == 1)
        for (int x = done; x < width; x++)
          dst[x] = table[s[x * pixel_bytes]];
      else
        for (int x = done; x < width; x++)
          dst[x * xstep] = table[s[x * pixel_bytes]];
    }
}

/* Big-endian 16-bit samples, as libpng delivers them. */
static void
row_u16be_to_planes (float *const *planes, int channels, const guint8 *src, int width)
{
  for (int c = 0; c < channels; c++)
    {
      float *restrict dst = planes[c];
      const guint8 *restrict s = src + 2 * c;
      for (int x = 0; x < width; x++)
        {
          const guint8 *p = s + 2 * x * channels;
          dst[x] = (float) ((p[0] << 8) | p[1]) / 65535.0f;
        }
    }
}

/* Converts n_rows 8-bit rows (source rows y0 ...) into the planes of a
 * whole-image tensor, placed as the orientation says. */
static void
store_rows_u8 (StTensor *t, const Placement *place, int width, guint8 *const *rows,
               int pixel_bytes, int y0, int n_rows, const float *table)
{
  const int channels = t->shape.c;
  const gsize plane_size = (gsize) t->shape.h * (gsize) t->shape.w;

  if (place->xstep == 1 || place->xstep == -1)
    {
      for (int r = 0; r < n_rows; r++)
        {
          const ptrdiff_t start = place->origin + (ptrdiff_t) (y0 + r) * place->ystep;
          float *planes[4];
          for (int c = 0; c < channels; c++)
            planes[c] = t->data + c * plane_size + start;
          row_u8_to_planes (planes, channels, place->xstep, rows[r], pixel_bytes, width, table);
        }
      return;
    }

  const ptrdiff_t xstep = place->xstep;
  for (int c = 0; c < channels; c++)
    {
      float *plane = t->data + c * plane_size;
      for (int x0 = 0; x0 < width; x0 += TRANSPOSE_BLOCK)
        {
          const int x1 = MIN (width, x0 + TRANSPOSE_BLOCK);
          for (int r = 0; r < n_rows; r++)
            {
              float *restrict dst = plane + place->origin + (ptrdiff_t) (y0 + r) * place->ystep;
              const guint8 *restrict src = rows[r] + c;
              for (int x = x0; x < x1; x++)
                dst[x * xstep] = table[src[x * pixel_bytes]];
            }
        }
    }
}

/* ---- PNG reading ------------------------------------------------------- */

typedef struct {
  Input *in;
  guint64 max_pixels;
  png_structp png;
  png_infop info;
  guint8 *pixels;              /* one row, or every row when interlaced */
  guint8 **row_pointers;       /* while an interlaced image is read */
  gsize rowbytes;
  gboolean interlaced;
  int width, height, channels, bit_depth;
  int next_row;
  /* The current read: n_rows rows into dst from row dst_row on. */
  StTensor *dst;
  int dst_row, n_rows;
  const float *table;
  GError *error;               /* set for errors found outside libpng */
  int code;                    /* for the libpng error in reason */
  gboolean reason_is_final;    /* reason was written by us, not by libpng */
  char reason[REASON_SIZE];
} PngLoad;

static void
png_load_error (png_structp png, png_const_charp message)
{
  PngLoad *ld = png_get_error_ptr (png);
  if (!ld->reason_is_final)
    g_snprintf (ld->reason, sizeof ld->reason, "invalid PNG file (%s)", message);
  png_longjmp (png, 1);
}

static void
png_ignore_warning (G_GNUC_UNUSED png_structp png, G_GNUC_UNUSED png_const_charp message)
{
}

static void
png_load_read (png_structp png, png_bytep data, size_t length)
{
  PngLoad *ld = png_get_io_ptr (png);
  if (input_read (ld->in, data, length) == length)
    return;
  if (ferror (ld->in->fp))
    {
      ld->code = ST_ERROR_IO;
      g_snprintf (ld->reason, sizeof ld->reason, "cannot read: %s", g_strerror (errno));
    }
  else
    g_strlcpy (ld->reason, "truncated PNG file (it ends before the image is complete)",
               sizeof ld->reason);
  ld->reason_is_final = TRUE;
  png_error (png, ld->reason);
}

static guint32
read_be32 (const guint8 *p)
{
  return (guint32) p[0] << 24 | (guint32) p[1] << 16 | (guint32) p[2] << 8 | p[3];
}

static guint32
png_crc (const guint8 *data, gsize length)
{
  guint32 crc = 0xffffffffu;
  for (gsize i = 0; i < length; i++)
    {
      crc ^= data[i];
      for (int k = 0; k < 8; k++)
        crc = (crc >> 1) ^ (0xedb88320u & -(crc & 1));
    }
  return crc ^ 0xffffffffu;
}

/* Checks the size an intact IHDR declares before libpng reads on, so that a
 * file holding little more than a huge header gets the size message rather
 * than one about what follows.  The check after png_read_info() covers the
 * rest. */
static gboolean
png_check_declared_size (Input *in, guint64 max_pixels, GError **error)
{
  const guint8 *chunk = in->head + 8;
  if (in->head_len < HEAD_SIZE || read_be32 (chunk) != 13
      || memcmp (chunk + 4, "IHDR", 4) != 0
      || png_crc (chunk + 4, 17) != read_be32 (chunk + 21))
    return TRUE;
  return check_pixel_limit (in->path, read_be32 (chunk + 8), read_be32 (chunk + 12),
                            max_pixels, error);
}

/* Reads the header and sets the transformations; an interlaced image is
 * decoded whole here, to bytes. */
static gboolean
png_open_run (PngLoad *ld)
{
  if (setjmp (png_jmpbuf (ld->png)))
    return FALSE;

  png_structp png = ld->png;
  png_infop info = ld->info;

  png_set_read_fn (png, ld, png_load_read);
  /* libpng's own limit (1000000 a side) would refuse with a vaguer message
   * than ours, so it only guards what fits in an int. */
  png_set_user_limits (png, G_MAXINT, G_MAXINT);
  png_read_info (png, info);

  png_uint_32 width, height;
  int depth, colour, interlace;
  png_get_IHDR (png, info, &width, &height, &depth, &colour, &interlace, NULL, NULL);
  if (!check_pixel_limit (ld->in->path, width, height, ld->max_pixels, &ld->error))
    return FALSE;

  if (colour == PNG_COLOR_TYPE_PALETTE)
    png_set_palette_to_rgb (png);
  if (colour == PNG_COLOR_TYPE_GRAY && depth < 8)
    png_set_expand_gray_1_2_4_to_8 (png);
  if (png_get_valid (png, info, PNG_INFO_tRNS))
    png_set_tRNS_to_alpha (png);
  const int passes = png_set_interlace_handling (png);
  png_read_update_info (png, info);

  ld->width = width;
  ld->height = height;
  ld->channels = png_get_channels (png, info);
  ld->bit_depth = png_get_bit_depth (png, info);
  ld->rowbytes = png_get_rowbytes (png, info);
  if (ld->channels < 1 || ld->channels > 4 || (ld->bit_depth != 8 && ld->bit_depth != 16))
    {
      g_set_error (&ld->error, ST_ERROR, ST_ERROR_IMAGE,
                   "%s: unsupported PNG layout (%d channels of %d bits)",
                   ld->in->path, ld->channels, ld->bit_depth);
      return FALSE;
    }

  if (passes == 1)
    {
      ld->pixels = g_malloc (ld->rowbytes);
      return TRUE;
    }

  /* Adam7 fills each row over seven passes, so the rows must all stay. */
  ld->interlaced = TRUE;
  gsize bytes;
  if (!g_size_checked_mul (&bytes, ld->rowbytes, height)
      || !(ld->pixels = g_try_malloc (bytes)))
    {
      g_set_error (&ld->error, ST_ERROR, ST_ERROR_IMAGE,
                   "%s: not enough memory for an interlaced %ux%u image",
                   ld->in->path, (unsigned) width, (unsigned) height);
      return FALSE;
    }
  ld->row_pointers = g_new (guint8 *, height);
  for (png_uint_32 y = 0; y < height; y++)
    ld->row_pointers[y] = ld->pixels + y * ld->rowbytes;
  png_read_image (png, ld->row_pointers);
  /* Reads up to IEND, so a file cut after its last row is still refused. */
  png_read_end (png, NULL);
  g_clear_pointer (&ld->row_pointers, g_free);
  return TRUE;
}

static void
png_store_row (PngLoad *ld, int row, const guint8 *src)
{
  float *planes[4];
  row_planes (ld->dst, row, planes);
  if (ld->bit_depth == 16)
    row_u16be_to_planes (planes, ld->channels, src, ld->width);
  else
    row_u8_to_planes (planes, ld->channels, 1, src, ld->channels, ld->width, ld->table);
}

static gboolean
png_rows_run (PngLoad *ld)
{
  if (setjmp (png_jmpbuf (ld->png)))
    return FALSE;

  for (int k = 0; k < ld->n_rows; k++)
    {
      if (ld->interlaced)
        png_store_row (ld, ld->dst_row + k, ld->pixels + (gsize) ld->next_row * ld->rowbytes);
      else
        {
          png_read_row (ld->png, ld->pixels, NULL);
          png_store_row (ld, ld->dst_row + k, ld->pixels);
        }
      ld->next_row++;
    }
  if (!ld->interlaced && ld->next_row == ld->height)
    png_read_end (ld->png, NULL);
  return TRUE;
}

static void
png_load_take_error (PngLoad *ld, GError **error)
{
  if (ld->error)
    g_propagate_error (error, g_steal_pointer (&ld->error));
  else
    g_set_error (error, ST_ERROR, ld->code, "%s: %s", ld->in->path, ld->reason);
}

static void
png_load_free (PngLoad *ld)
{
  if (!ld)
    return;
  if (ld->png)
    png_destroy_read_struct (&ld->png, ld->info ? &ld->info : NULL, NULL);
  g_free (ld->row_pointers);
  g_free (ld->pixels);
  g_clear_error (&ld->error);
  g_free (ld);
}

static PngLoad *
png_load_open (Input *in, guint64 max_pixels, GError **error)
{
  if (!png_check_declared_size (in, max_pixels, error))
    return NULL;

  PngLoad *ld = g_new0 (PngLoad, 1);
  ld->in = in;
  ld->max_pixels = max_pixels;
  ld->code = ST_ERROR_IMAGE;
  ld->png = png_create_read_struct (PNG_LIBPNG_VER_STRING, ld, png_load_error,
                                    png_ignore_warning);
  if (ld->png)
    ld->info = png_create_info_struct (ld->png);
  if (!ld->png || !ld->info)
    {
      png_load_free (ld);
      g_set_error (error, ST_ERROR, ST_ERROR_IMAGE, "%s: cannot start libpng", in->path);
      return NULL;
    }
  if (!png_open_run (ld))
    {
      png_load_take_error (ld, error);
      png_load_free (ld);
      return NULL;
    }
  return ld;
}

/* ---- JPEG reading ------------------------------------------------------ */

#define JPEG_INPUT_BUFFER 65536

typedef struct {
  struct jpeg_decompress_struct cinfo;
  struct jpeg_error_mgr jerr;
  struct jpeg_source_mgr source;
  jmp_buf jump;
  gboolean created;
  Input *in;
  guint64 max_pixels;
  gboolean cmyk;
  int orientation;
  int pixel_bytes;             /* per decoded pixel: 1, or 4 (RGBX, CMYK) or 3 */
  int channels;                /* of the tensor: 1 or 3 */
  JSAMPARRAY rows;
  StTensor *whole;             /* orientations 3 to 8: the image, decoded when opened */
  /* The current read: n_rows rows into dst from row dst_row on. */
  StTensor *dst;
  int dst_row, n_rows;
  const float *table;
  GError *error;               /* set for errors found outside libjpeg */
  int code;                    /* for the libjpeg error in reason */
  char reason[REASON_SIZE];
  guint8 buffer[JPEG_INPUT_BUFFER];
} JpegLoad;

static G_NORETURN void
jpeg_load_fail (JpegLoad *ld, int code, const char *reason)
{
  ld->code = code;
  g_strlcpy (ld->reason, reason, sizeof ld->reason);
  longjmp (ld->jump, 1);
}

static void
jpeg_load_error_exit (j_common_ptr cinfo)
{
  JpegLoad *ld = cinfo->client_data;
  char message[JMSG_LENGTH_MAX];
  cinfo->err->format_message (cinfo, message);
  g_snprintf (ld->reason, sizeof ld->reason, "invalid JPEG file (%s)", message);
  longjmp (ld->jump, 1);
}

static void
jpeg_silent_output (G_GNUC_UNUSED j_common_ptr cinfo)
{
}

/* libjpeg reports missing entropy data as a warning and fills the rest of
 * the image with grey; that is a broken file, not a picture.  Other
 * warnings (such as stray bytes between markers) are harmless and dropped. */
static void
jpeg_load_emit (j_common_ptr cinfo, int level)
{
  if (level >= 0)
    return;
  if (cinfo->err->msg_code == JWRN_HIT_MARKER || cinfo->err->msg_code == JWRN_JPEG_EOF)
    cinfo->err->error_exit (cinfo);
  cinfo->err->num_warnings++;
}

static void
jpeg_source_init (G_GNUC_UNUSED j_decompress_ptr cinfo)
{
}

static boolean
jpeg_source_fill (j_decompress_ptr cinfo)
{
  JpegLoad *ld = cinfo->client_data;
  gsize n = input_read (ld->in, ld->buffer, sizeof ld->buffer);
  if (n == 0)
    {
      if (ferror (ld->in->fp))
        {
          char reason[REASON_SIZE];
          g_snprintf (reason, sizeof reason, "cannot read: %s", g_strerror (errno));
          jpeg_load_fail (ld, ST_ERROR_IO, reason);
        }
      /* libjpeg would insert an EOI, warn and pad the image with grey. */
      jpeg_load_fail (ld, ST_ERROR_IMAGE,
                      "truncated JPEG file (it ends before the image is complete)");
    }
  ld->source.next_input_byte = ld->buffer;
  ld->source.bytes_in_buffer = n;
  return TRUE;
}

static void
jpeg_source_skip (j_decompress_ptr cinfo, long count)
{
  struct jpeg_source_mgr *src = cinfo->src;
  if (count <= 0)
    return;
  while ((size_t) count > src->bytes_in_buffer)
    {
      count -= (long) src->bytes_in_buffer;
      jpeg_source_fill (cinfo);
    }
  src->next_input_byte += count;
  src->bytes_in_buffer -= count;
}

static void
jpeg_source_term (G_GNUC_UNUSED j_decompress_ptr cinfo)
{
}

/* The EXIF orientation (1 to 8) from a saved APP1 marker, 1 if none. */
static int
jpeg_exif_orientation (j_decompress_ptr cinfo)
{
  for (jpeg_saved_marker_ptr m = cinfo->marker_list; m; m = m->next)
    {
      if (m->marker != JPEG_APP0 + 1 || m->data_length < 6
          || memcmp (m->data, "Exif\0\0", 6) != 0)
        continue;
      ExifData *exif = exif_data_new ();
      if (!exif)
        return 1;
      /* Only reading: keep libexif from "fixing" (adding) entries. */
      exif_data_unset_option (exif, EXIF_DATA_OPTION_FOLLOW_SPECIFICATION);
      exif_data_load_data (exif, m->data, m->data_length);
      int orientation = 1;
      ExifEntry *entry = exif_data_get_entry (exif, EXIF_TAG_ORIENTATION);
      if (entry && entry->format == EXIF_FORMAT_SHORT && entry->components >= 1
          && entry->size >= 2)
        orientation = exif_get_short (entry->data, exif_data_get_byte_order (exif));
      exif_data_unref (exif);
      return orientation >= 1 && orientation <= 8 ? orientation : 1;
    }
  return 1;
}

/* Adobe CMYK (the common kind, from Photoshop) stores inverted inks: 255 is
 * no ink.  Without the Adobe marker, values are plain ink amounts.  Converts
 * naively (no colour profile), in place, to RGBX. */
static void
cmyk_to_rgbx_row (guint8 *row, int width, gboolean inverted)
{
  const unsigned flip = inverted ? 0 : 255;
  for (guint8 *p = row; p < row + 4 * (gsize) width; p += 4)
    {
      const unsigned k = p[3] ^ flip;
      p[0] = ((p[0] ^ flip) * k + 127) / 255;
      p[1] = ((p[1] ^ flip) * k + 127) / 255;
      p[2] = ((p[2] ^ flip) * k + 127) / 255;
    }
}

static void
jpeg_cmyk_rows (JpegLoad *ld, int n)
{
  if (ld->cmyk)
    for (int r = 0; r < n; r++)
      cmyk_to_rgbx_row (ld->rows[r], ld->cinfo.output_width, ld->cinfo.saw_Adobe_marker);
}

/* Reads the header and starts decompressing; an image whose orientation
 * reorders the rows is decoded whole here. */
static gboolean
jpeg_open_run (JpegLoad *ld)
{
  j_decompress_ptr cinfo = &ld->cinfo;

  if (setjmp (ld->jump))
    return FALSE;

  jpeg_create_decompress (cinfo);
  ld->created = TRUE;
  cinfo->src = &ld->source;
  jpeg_save_markers (cinfo, JPEG_APP0 + 1, 0xffff);
  if (jpeg_read_header (cinfo, TRUE) != JPEG_HEADER_OK)
    jpeg_load_fail (ld, ST_ERROR_IMAGE, "invalid JPEG file (it holds no image)");

  if (!check_pixel_limit (ld->in->path, cinfo->image_width, cinfo->image_height,
                          ld->max_pixels, &ld->error))
    return FALSE;

  switch (cinfo->jpeg_color_space)
    {
    case JCS_GRAYSCALE:
      cinfo->out_color_space = JCS_GRAYSCALE;
      break;
    case JCS_YCbCr:
    case JCS_RGB:
#ifdef JCS_EXTENSIONS
      /* libjpeg-turbo's RGBX: whole 32-bit pixels, quick to split. */
      cinfo->out_color_space = JCS_EXT_RGBX;
#else
      cinfo->out_color_space = JCS_RGB;
#endif
      break;
    case JCS_CMYK:
    case JCS_YCCK:
      cinfo->out_color_space = JCS_CMYK;
      ld->cmyk = TRUE;
      break;
    default:
      {
        char reason[REASON_SIZE];
        g_snprintf (reason, sizeof reason,
                    "unsupported JPEG colour space (%d components; expected gray, RGB or CMYK)",
                    cinfo->num_components);
        jpeg_load_fail (ld, ST_ERROR_IMAGE, reason);
      }
    }

  ld->orientation = jpeg_exif_orientation (cinfo);
  jpeg_start_decompress (cinfo);

  const int width = cinfo->output_width, height = cinfo->output_height;
  ld->pixel_bytes = cinfo->output_components;
  ld->channels = ld->pixel_bytes == 1 ? 1 : 3;
  ld->rows = cinfo->mem->alloc_sarray ((j_common_ptr) cinfo, JPOOL_IMAGE,
                                       (JDIMENSION) width * ld->pixel_bytes,
                                       JPEG_ROWS_PER_CALL);
  if (orientation_streams (ld->orientation))
    return TRUE;

  const gboolean transposed = ld->orientation >= 5;
  ld->whole = new_image_tensor (ld->in->path, ld->channels,
                                transposed ? width : height,
                                transposed ? height : width, &ld->error);
  if (!ld->whole)
    return FALSE;
  const Placement place = placement_for_orientation (ld->orientation, width, height);
  while (cinfo->output_scanline < cinfo->output_height)
    {
      const int y0 = cinfo->output_scanline;
      const int n = jpeg_read_scanlines (cinfo, ld->rows, JPEG_ROWS_PER_CALL);
      if (n <= 0)
        jpeg_load_fail (ld, ST_ERROR_IMAGE, "truncated JPEG file");
      jpeg_cmyk_rows (ld, n);
      store_rows_u8 (ld->whole, &place, width, ld->rows, ld->pixel_bytes, y0, n, ld->table);
    }
  /* Reads on to EOI, so a file that lacks it is refused as truncated
   * whether or not libjpeg's read-ahead happened to reach the end. */
  jpeg_finish_decompress (cinfo);
  return TRUE;
}

static gboolean
jpeg_rows_run (JpegLoad *ld)
{
  j_decompress_ptr cinfo = &ld->cinfo;

  if (setjmp (ld->jump))
    return FALSE;

  const int width = cinfo->output_width;
  const ptrdiff_t xstep = ld->orientation == 2 ? -1 : 1;
  for (int done = 0; done < ld->n_rows;)
    {
      const int n = jpeg_read_scanlines (cinfo, ld->rows,
                                         MIN (JPEG_ROWS_PER_CALL, ld->n_rows - done));
      if (n <= 0)
        jpeg_load_fail (ld, ST_ERROR_IMAGE, "truncated JPEG file");
      jpeg_cmyk_rows (ld, n);
      for (int r = 0; r < n; r++)
        {
          float *planes[3];
          row_planes (ld->dst, ld->dst_row + done + r, planes);
          if (xstep < 0)
            for (int c = 0; c < ld->channels; c++)
              planes[c] += width - 1;
          row_u8_to_planes (planes, ld->channels, xstep, ld->rows[r], ld->pixel_bytes,
                            width, ld->table);
        }
      done += n;
    }
  if (cinfo->output_scanline == cinfo->output_height)
    jpeg_finish_decompress (cinfo);
  return TRUE;
}

static void
jpeg_load_take_error (JpegLoad *ld, GError **error)
{
  if (ld->error)
    g_propagate_error (error, g_steal_pointer (&ld->error));
  else
    g_set_error (error, ST_ERROR, ld->code, "%s: %s", ld->in->path, ld->reason);
}

static void
jpeg_load_free (JpegLoad *ld)
{
  if (!ld)
    return;
  if (ld->created)
    jpeg_destroy_decompress (&ld->cinfo);
  st_tensor_free (ld->whole);
  g_clear_error (&ld->error);
  g_free (ld);
}

static JpegLoad *
jpeg_load_open (Input *in, guint64 max_pixels, const float *table, GError **error)
{
  JpegLoad *ld = g_new0 (JpegLoad, 1);
  ld->in = in;
  ld->max_pixels = max_pixels;
  ld->table = table;
  ld->code = ST_ERROR_IMAGE;
  ld->cinfo.client_data = ld;
  ld->cinfo.err = jpeg_std_error (&ld->jerr);
  ld->jerr.error_exit = jpeg_load_error_exit;
  ld->jerr.output_message = jpeg_silent_output;
  ld->jerr.emit_message = jpeg_load_emit;
  ld->source.init_source = jpeg_source_init;
  ld->source.fill_input_buffer = jpeg_source_fill;
  ld->source.skip_input_data = jpeg_source_skip;
  ld->source.resync_to_restart = jpeg_resync_to_restart;
  ld->source.term_source = jpeg_source_term;

  if (!jpeg_open_run (ld))
    {
      jpeg_load_take_error (ld, error);
      jpeg_load_free (ld);
      return NULL;
    }
  return ld;
}

/* ---- Reader ------------------------------------------------------------ */

struct _StImageReader {
  char *path;
  Input in;
  StImageInfo info;
  int width, height, channels;
  int next_row;
  gboolean failed;
  gboolean from_stdin;         /* path "-" */
  PngLoad *png;
  JpegLoad *jpeg;
  float table[256];
};

void
st_image_reader_close (StImageReader *reader)
{
  if (!reader)
    return;
  png_load_free (reader->png);
  jpeg_load_free (reader->jpeg);
  if (reader->in.fp)
    fclose (reader->in.fp);
  g_free (reader->path);
  g_free (reader);
}

/* Tells the format from the signature and reads the header. */
static gboolean
reader_start (StImageReader *r, guint64 max_pixels, GError **error)
{
  const char *path = r->path;
  Input *in = &r->in;
  /* "-" is standard input, read through a copy of the descriptor so that
   * closing the reader leaves stdin open. */
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
  if (in->head_len >= sizeof png_signature
      && memcmp (in->head, png_signature, sizeof png_signature) == 0)
    {
      r->png = png_load_open (in, max_pixels, error);
      if (!r->png)
        return FALSE;
      r->png->table = r->table;
      r->width = r->png->width;
      r->height = r->png->height;
      r->channels = r->png->channels;
      r->info = (StImageInfo) { ST_FORMAT_PNG, r->png->bit_depth,
                                r->channels == 2 || r->channels == 4 };
      return TRUE;
    }
  if (in->head_len >= sizeof jpeg_signature
      && memcmp (in->head, jpeg_signature, sizeof jpeg_signature) == 0)
    {
      r->jpeg = jpeg_load_open (in, max_pixels, r->table, error);
      if (!r->jpeg)
        return FALSE;
      const gboolean transposed = r->jpeg->orientation >= 5;
      const int w = r->jpeg->cinfo.output_width, h = r->jpeg->cinfo.output_height;
      r->width = transposed ? h : w;
      r->height = transposed ? w : h;
      r->channels = r->jpeg->channels;
      r->info = (StImageInfo) { ST_FORMAT_JPEG, 8, FALSE };
      return TRUE;
    }
  if (memcmp (in->head, png_signature, MIN (in->head_len, sizeof png_signature)) == 0)
    g_set_error (error, ST_ERROR, ST_ERROR_IMAGE, "%s: truncated PNG file", path);
  else if (memcmp (in->head, jpeg_signature, MIN (in->head_len, sizeof jpeg_signature)) == 0)
    g_set_error (error, ST_ERROR, ST_ERROR_IMAGE, "%s: truncated JPEG file", path);
  else
    g_set_error (error, ST_ERROR, ST_ERROR_IMAGE,
                 "%s: not a PNG or JPEG image (unrecognised file signature)", path);
  return FALSE;
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
  fill_unit_table (r->table);
  if (!reader_start (r, max_pixels, error))
    {
      st_image_reader_close (r);
      return NULL;
    }
  if (info)
    *info = r->info;
  if (width)
    *width = r->width;
  if (height)
    *height = r->height;
  if (channels)
    *channels = r->channels;
  return r;
}

gboolean
st_image_reader_read (StImageReader *r, StTensor *dst, int first_row, int n_rows,
                      GError **error)
{
  g_return_val_if_fail (r != NULL && dst != NULL, FALSE);
  g_return_val_if_fail (dst->shape.n == 1 && dst->shape.c == r->channels
                        && dst->shape.w == r->width, FALSE);
  g_return_val_if_fail (first_row >= 0 && n_rows >= 0 && first_row <= dst->shape.h - n_rows,
                        FALSE);
  g_return_val_if_fail (n_rows <= r->height - r->next_row, FALSE);
  g_return_val_if_fail (error == NULL || *error == NULL, FALSE);

  if (r->failed)
    {
      g_set_error (error, ST_ERROR, ST_ERROR_IMAGE, "%s: cannot read on after an error", r->path);
      return FALSE;
    }
  if (n_rows == 0)
    return TRUE;

  gboolean ok = TRUE;
  if (r->jpeg && r->jpeg->whole)
    {
      float *from[3], *to[3];
      row_planes (r->jpeg->whole, r->next_row, from);
      row_planes (dst, first_row, to);
      for (int c = 0; c < r->channels; c++)
        memcpy (to[c], from[c], sizeof (float) * n_rows * (gsize) r->width);
    }
  else if (r->png)
    {
      PngLoad *ld = r->png;
      ld->dst = dst;
      ld->dst_row = first_row;
      ld->n_rows = n_rows;
      ok = png_rows_run (ld);
      ld->dst = NULL;
      if (!ok)
        png_load_take_error (ld, error);
    }
  else
    {
      JpegLoad *ld = r->jpeg;
      ld->dst = dst;
      ld->dst_row = first_row;
      ld->n_rows = n_rows;
      ok = jpeg_rows_run (ld);
      ld->dst = NULL;
      if (!ok)
        jpeg_load_take_error (ld, error);
    }
  if (ok)
    r->next_row += n_rows;
  else
    r->failed = TRUE;
  return ok;
}

StTensor *
st_image_reader_read_all (StImageReader *r, GError **error)
{
  g_return_val_if_fail (r != NULL && r->next_row == 0 && !r->failed, NULL);

  /* Already decoded whole: hand that over rather than copy it. */
  if (r->jpeg && r->jpeg->whole)
    {
      r->next_row = r->height;
      return g_steal_pointer (&r->jpeg->whole);
    }
  StTensor *t = new_image_tensor (r->path, r->channels, r->height, r->width, error);
  if (t && !st_image_reader_read (r, t, 0, r->height, error))
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

/* ---- Writing ----------------------------------------------------------- */

/* Clamps, rounds and narrows n floats to bytes: the same arithmetic as
 * unit_to_u8, 16 values at a time where SSE2 is available (all x86-64). */
static void
unit_span_to_u8 (const float *restrict src, guint8 *restrict dst, int n)
{
  int x = 0;
#ifdef __SSE2__
  const __m128 scale = _mm_set1_ps (255.0f), half = _mm_set1_ps (0.5f);
  const __m128 low = _mm_setzero_ps (), high = _mm_set1_ps (255.0f);
  for (; x + 16 <= n; x += 16)
    {
      __m128i q[4];
      for (int k = 0; k < 4; k++)
        {
          __m128 v = _mm_add_ps (_mm_mul_ps (_mm_loadu_ps (src + x + 4 * k), scale), half);
          /* maxps returns its second operand for NaN: NaN becomes 0. */
          v = _mm_min_ps (_mm_max_ps (v, low), high);
          q[k] = _mm_cvttps_epi32 (v);
        }
      _mm_storeu_si128 ((__m128i *) (dst + x),
                        _mm_packus_epi16 (_mm_packs_epi32 (q[0], q[1]),
                                          _mm_packs_epi32 (q[2], q[3])));
    }
#endif
  for (; x < n; x++)
    dst[x] = unit_to_u8 (src[x]);
}

static void
interleave_2 (const guint8 *restrict a, const guint8 *restrict b, guint8 *restrict out, int n)
{
  int x = 0;
#ifdef __SSE2__
  for (; x + 16 <= n; x += 16)
    {
      const __m128i va = _mm_loadu_si128 ((const __m128i *) (a + x));
      const __m128i vb = _mm_loadu_si128 ((const __m128i *) (b + x));
      _mm_storeu_si128 ((__m128i *) (out + 2 * x), _mm_unpacklo_epi8 (va, vb));
      _mm_storeu_si128 ((__m128i *) (out + 2 * x + 16), _mm_unpackhi_epi8 (va, vb));
    }
#endif
  for (; x < n; x++)
    out[2 * x] = a[x], out[2 * x + 1] = b[x];
}

static void
interleave_3 (const guint8 *restrict a, const guint8 *restrict b, const guint8 *restrict c,
              guint8 *restrict out, int n)
{
  for (int x = 0; x < n; x++, out += 3)
    out[0] = a[x], out[1] = b[x], out[2] = c[x];
}

#ifdef HAVE_AVX2
AVX2_FUNCTION static inline __m256i
unit_to_u8_avx2 (__m256 v)
{
  v = _mm256_add_ps (_mm256_mul_ps (v, _mm256_set1_ps (255.0f)), _mm256_set1_ps (0.5f));
  /* maxps returns its second operand for NaN: NaN becomes 0. */
  v = _mm256_min_ps (_mm256_max_ps (v, _mm256_setzero_ps ()), _mm256_set1_ps (255.0f));
  return _mm256_cvttps_epi32 (v);
}

/* As pack_pixels_4, 8 pixels at a time; returns how far it got. */
AVX2_FUNCTION static int
pack_pixels_4_avx2 (const float *const *planes, int n_planes, int width, guint8 *restrict dst)
{
  int x = 0;
  const __m256i opaque = _mm256_set1_epi32 ((int) 0xff000000u);
  for (; x + 8 <= width; x += 8)
    {
      const __m256i r = unit_to_u8_avx2 (_mm256_loadu_ps (planes[0] + x));
      const __m256i g = unit_to_u8_avx2 (_mm256_loadu_ps (planes[1] + x));
      const __m256i b = unit_to_u8_avx2 (_mm256_loadu_ps (planes[2] + x));
      const __m256i a = n_planes == 4
                        ? _mm256_slli_epi32 (unit_to_u8_avx2 (_mm256_loadu_ps (planes[3] + x)), 24)
                        : opaque;
      const __m256i rg = _mm256_or_si256 (r, _mm256_slli_epi32 (g, 8));
      const __m256i ba = _mm256_or_si256 (_mm256_slli_epi32 (b, 16), a);
      _mm256_storeu_si256 ((__m256i *) (dst + 4 * x), _mm256_or_si256 (rg, ba));
    }
  return x;
}
#endif

/* Packs 3 planes (RGB, with an opaque filler byte) or 4 (RGBA) into whole
 * 32-bit pixels: each channel's integer is shifted into place, so there is
 * no byte shuffling at all. */
static void
pack_pixels_4 (const float *const *planes, int n_planes, int width, guint8 *restrict dst)
{
  int x = 0;
#ifdef HAVE_AVX2
  if (cpu_has_avx2 ())
    x = pack_pixels_4_avx2 (planes, n_planes, width, dst);
#endif
#ifdef __SSE2__
  const __m128 scale = _mm_set1_ps (255.0f), half = _mm_set1_ps (0.5f);
  const __m128 low = _mm_setzero_ps (), high = _mm_set1_ps (255.0f);
  const __m128i opaque = _mm_set1_epi32 ((int) 0xff000000u);
  for (; x + 4 <= width; x += 4)
    {
      __m128i q[4];
      for (int c = 0; c < n_planes; c++)
        {
          __m128 v = _mm_add_ps (_mm_mul_ps (_mm_loadu_ps (planes[c] + x), scale), half);
          v = _mm_min_ps (_mm_max_ps (v, low), high);
          q[c] = _mm_slli_epi32 (_mm_cvttps_epi32 (v), 8 * c);
        }
      if (n_planes == 3)
        q[3] = opaque;
      _mm_storeu_si128 ((__m128i *) (dst + 4 * x),
                        _mm_or_si128 (_mm_or_si128 (q[0], q[1]), _mm_or_si128 (q[2], q[3])));
    }
#endif
  for (; x < width; x++)
    for (int c = 0; c < 4; c++)
      dst[4 * x + c] = c < n_planes ? unit_to_u8 (planes[c][x]) : 0xff;
}

/* Packs one row, planes[c] (c < n_planes) holding its values, into
 * `channels` interleaved bytes a pixel; channels past n_planes (an RGBX
 * filler) are 255.  Below four channels each block is converted plane by
 * plane, then interleaved. */
static void
pack_row_u8 (const float *const *planes, int n_planes, int channels, int width,
             guint8 *restrict dst)
{
  guint8 block[3][PACK_BLOCK];

  if (channels == 4)
    {
      pack_pixels_4 (planes, n_planes, width, dst);
      return;
    }
  for (int x0 = 0; x0 < width; x0 += PACK_BLOCK)
    {
      const int n = MIN (PACK_BLOCK, width - x0);
      guint8 *out = dst + (gsize) x0 * channels;
      if (channels == 1)
        {
          unit_span_to_u8 (planes[0] + x0, out, n);
          continue;
        }
      for (int c = 0; c < n_planes; c++)
        unit_span_to_u8 (planes[c] + x0, block[c], n);
      switch (channels)
        {
        case 2: interleave_2 (block[0], block[1], out, n); break;
        default: interleave_3 (block[0], block[1], block[2], out, n); break;
        }
    }
}

static void
pack_row_u16be (const float *const *planes, int channels, int width, guint8 *restrict dst)
{
  for (int c = 0; c < channels; c++)
    {
      const float *restrict src = planes[c];
      guint8 *restrict d = dst + 2 * c;
      for (int x = 0; x < width; x++)
        {
          const guint16 v = unit_to_u16 (src[x]);
          d[2 * x * channels] = v >> 8;
          d[2 * x * channels + 1] = v & 0xff;
        }
    }
}

/* The rows of the current write: planes[c] + k * width is row k of
 * channel c. */
typedef struct {
  const float *const *planes;
  int n_rows;
} RowSource;

static void
row_source_row (const RowSource *src, int channels, int width, int k, const float **row)
{
  for (int c = 0; c < channels; c++)
    row[c] = src->planes[c] + (gsize) k * width;
}

/* ---- PNG writing ------------------------------------------------------- */

typedef struct {
  FILE *fp;
  png_structp png;
  png_infop info;
  guint8 *row;
  int width, height, channels, bit_depth;
  RowSource src;
  int code;
  gboolean reason_is_final;
  char reason[REASON_SIZE];
} PngSave;

static void
png_save_error (png_structp png, png_const_charp message)
{
  PngSave *job = png_get_error_ptr (png);
  if (!job->reason_is_final)
    g_snprintf (job->reason, sizeof job->reason, "cannot write PNG (%s)", message);
  png_longjmp (png, 1);
}

static void
png_save_write (png_structp png, png_bytep data, size_t length)
{
  PngSave *job = png_get_io_ptr (png);
  if (fwrite (data, 1, length, job->fp) == length)
    return;
  job->code = ST_ERROR_IO;
  g_snprintf (job->reason, sizeof job->reason, "cannot write: %s", g_strerror (errno));
  job->reason_is_final = TRUE;
  png_error (png, job->reason);
}

static void
png_save_flush (G_GNUC_UNUSED png_structp png)
{
}

static gboolean
png_save_start_run (PngSave *job)
{
  if (setjmp (png_jmpbuf (job->png)))
    return FALSE;

  static const int colour_types[] = {
    PNG_COLOR_TYPE_GRAY, PNG_COLOR_TYPE_GRAY_ALPHA,
    PNG_COLOR_TYPE_RGB, PNG_COLOR_TYPE_RGB_ALPHA,
  };
  png_set_write_fn (job->png, job, png_save_write, png_save_flush);
  png_set_IHDR (job->png, job->info, job->width, job->height, job->bit_depth,
                colour_types[job->channels - 1], PNG_INTERLACE_NONE,
                PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
  png_write_info (job->png, job->info);
  return TRUE;
}

static gboolean
png_save_rows_run (PngSave *job)
{
  if (setjmp (png_jmpbuf (job->png)))
    return FALSE;

  for (int k = 0; k < job->src.n_rows; k++)
    {
      const float *row[4];
      row_source_row (&job->src, job->channels, job->width, k, row);
      if (job->bit_depth == 16)
        pack_row_u16be (row, job->channels, job->width, job->row);
      else
        pack_row_u8 (row, job->channels, job->channels, job->width, job->row);
      png_write_row (job->png, job->row);
    }
  return TRUE;
}

static gboolean
png_save_end_run (PngSave *job)
{
  if (setjmp (png_jmpbuf (job->png)))
    return FALSE;
  png_write_end (job->png, NULL);
  return TRUE;
}

static void
png_save_free (PngSave *job)
{
  if (!job)
    return;
  if (job->png)
    png_destroy_write_struct (&job->png, job->info ? &job->info : NULL);
  g_free (job->row);
  g_free (job);
}

static PngSave *
png_save_open (FILE *fp, int width, int height, int channels, int bit_depth,
               int *code, char *reason)
{
  PngSave *job = g_new0 (PngSave, 1);
  job->fp = fp;
  job->width = width;
  job->height = height;
  job->channels = channels;
  job->bit_depth = bit_depth;
  job->code = ST_ERROR_IMAGE;
  job->png = png_create_write_struct (PNG_LIBPNG_VER_STRING, job, png_save_error,
                                      png_ignore_warning);
  if (job->png)
    job->info = png_create_info_struct (job->png);
  if (!job->png || !job->info)
    {
      png_save_free (job);
      g_strlcpy (reason, "cannot start libpng", REASON_SIZE);
      *code = ST_ERROR_IMAGE;
      return NULL;
    }
  job->row = g_malloc ((gsize) width * channels * (bit_depth / 8));
  if (!png_save_start_run (job))
    {
      *code = job->code;
      g_strlcpy (reason, job->reason, REASON_SIZE);
      png_save_free (job);
      return NULL;
    }
  return job;
}

/* ---- JPEG writing ------------------------------------------------------ */

typedef struct {
  struct jpeg_compress_struct cinfo;
  struct jpeg_error_mgr jerr;
  jmp_buf jump;
  gboolean created;
  FILE *fp;
  int width, height;
  int planes;                  /* taken from the source: 1 or 3 */
  int channels;                /* bytes a pixel given to libjpeg */
  int quality;
  JSAMPARRAY rows;
  RowSource src;
  int code;
  char reason[REASON_SIZE];
} JpegSave;

static void
jpeg_save_error_exit (j_common_ptr cinfo)
{
  JpegSave *job = cinfo->client_data;
  /* libjpeg's stdio destination raises JERR_FILE_WRITE right after a short
   * fwrite, so errno still says why ("out of disk space?" only guesses). */
  const int saved_errno = errno;
  if (cinfo->err->msg_code == JERR_FILE_WRITE)
    {
      job->code = ST_ERROR_IO;
      g_snprintf (job->reason, sizeof job->reason, "cannot write: %s", g_strerror (saved_errno));
    }
  else
    {
      char message[JMSG_LENGTH_MAX];
      cinfo->err->format_message (cinfo, message);
      job->code = ST_ERROR_IMAGE;
      g_snprintf (job->reason, sizeof job->reason, "cannot write JPEG (%s)", message);
    }
  longjmp (job->jump, 1);
}

static void
jpeg_save_emit (G_GNUC_UNUSED j_common_ptr cinfo, G_GNUC_UNUSED int level)
{
}

static gboolean
jpeg_save_start_run (JpegSave *job)
{
  j_compress_ptr cinfo = &job->cinfo;

  if (setjmp (job->jump))
    return FALSE;

  jpeg_create_compress (cinfo);
  job->created = TRUE;
  jpeg_stdio_dest (cinfo, job->fp);

  cinfo->in_color_space = job->planes == 3 ? JCS_RGB : JCS_GRAYSCALE;
  job->channels = job->planes;
#ifdef JCS_EXTENSIONS
  /* libjpeg-turbo takes RGBX, which packs into whole 32-bit pixels. */
  if (job->planes == 3)
    {
      job->channels = 4;
      cinfo->in_color_space = JCS_EXT_RGBX;
    }
#endif
  cinfo->image_width = job->width;
  cinfo->image_height = job->height;
  cinfo->input_components = job->channels;
  /* libjpeg's defaults: 4:2:0 chroma, no Huffman optimisation (a second
   * pass for a few percent of size). */
  jpeg_set_defaults (cinfo);
  jpeg_set_quality (cinfo, job->quality, TRUE);
  /* The accurate integer DCT; with libjpeg-turbo's SIMD it costs little
   * more than JDCT_IFAST. */
  cinfo->dct_method = JDCT_ISLOW;
  jpeg_start_compress (cinfo, TRUE);
  job->rows = cinfo->mem->alloc_sarray ((j_common_ptr) cinfo, JPOOL_IMAGE,
                                        (JDIMENSION) job->width * job->channels,
                                        JPEG_ROWS_PER_CALL);
  return TRUE;
}

static gboolean
jpeg_save_rows_run (JpegSave *job)
{
  if (setjmp (job->jump))
    return FALSE;

  for (int k0 = 0; k0 < job->src.n_rows; k0 += JPEG_ROWS_PER_CALL)
    {
      const int n = MIN (JPEG_ROWS_PER_CALL, job->src.n_rows - k0);
      for (int r = 0; r < n; r++)
        {
          const float *row[3];
          row_source_row (&job->src, job->planes, job->width, k0 + r, row);
          pack_row_u8 (row, job->planes, job->channels, job->width, job->rows[r]);
        }
      jpeg_write_scanlines (&job->cinfo, job->rows, n);
    }
  return TRUE;
}

static gboolean
jpeg_save_end_run (JpegSave *job)
{
  if (setjmp (job->jump))
    return FALSE;
  jpeg_finish_compress (&job->cinfo);
  return TRUE;
}

static void
jpeg_save_free (JpegSave *job)
{
  if (!job)
    return;
  if (job->created)
    jpeg_destroy_compress (&job->cinfo);
  g_free (job);
}

static JpegSave *
jpeg_save_open (FILE *fp, int width, int height, int channels, int quality,
                int *code, char *reason)
{
  JpegSave *job = g_new0 (JpegSave, 1);
  job->fp = fp;
  job->width = width;
  job->height = height;
  /* JPEG has no alpha: gray + alpha becomes gray, RGBA becomes RGB. */
  job->planes = channels >= 3 ? 3 : 1;
  job->quality = quality;
  job->cinfo.client_data = job;
  job->cinfo.err = jpeg_std_error (&job->jerr);
  job->jerr.error_exit = jpeg_save_error_exit;
  job->jerr.output_message = jpeg_silent_output;
  job->jerr.emit_message = jpeg_save_emit;
  if (!jpeg_save_start_run (job))
    {
      *code = job->code;
      g_strlcpy (reason, job->reason, REASON_SIZE);
      jpeg_save_free (job);
      return NULL;
    }
  return job;
}

/* ---- Writer ------------------------------------------------------------ */

struct _StImageWriter {
  char *path;
  StAtomicFile *file;
  int width, height, channels;
  int next_row;
  gboolean failed;
  PngSave *png;
  JpegSave *jpeg;
};

static gboolean
check_write_arguments (const char *path, StImageFormat format, int width, int height,
                       int channels, int bit_depth, int quality, GError **error)
{
  if (format != ST_FORMAT_PNG && format != ST_FORMAT_JPEG)
    {
      g_set_error (error, ST_ERROR, ST_ERROR_IMAGE,
                   "%s: unknown image format (name the file .png, .jpg or .jpeg)", path);
      return FALSE;
    }
  if (channels < 1 || channels > 4 || width < 1 || height < 1)
    {
      g_set_error (error, ST_ERROR, ST_ERROR_IMAGE,
                   "%s: cannot write a %dx%d image of %d channels (expected 1 (gray), "
                   "2 (gray + alpha), 3 (RGB) or 4 (RGBA))", path, width, height, channels);
      return FALSE;
    }
  /* A JPEG is always 8-bit, whatever bit depth the caller keeps. */
  if (format == ST_FORMAT_PNG && bit_depth != 8 && bit_depth != 16)
    {
      g_set_error (error, ST_ERROR, ST_ERROR_IMAGE,
                   "%s: cannot write a PNG of bit depth %d (expected 8 or 16)",
                   path, bit_depth);
      return FALSE;
    }
  if (format == ST_FORMAT_JPEG)
    {
      if (quality < 1 || quality > 100)
        {
          g_set_error (error, ST_ERROR, ST_ERROR_IMAGE,
                       "%s: JPEG quality %d is out of range (expected 1 to 100)",
                       path, quality);
          return FALSE;
        }
      if (width > JPEG_MAX_DIMENSION || height > JPEG_MAX_DIMENSION)
        {
          g_set_error (error, ST_ERROR, ST_ERROR_IMAGE,
                       "%s: a JPEG is at most %d pixels a side, this image is %dx%d",
                       path, (int) JPEG_MAX_DIMENSION, width, height);
          return FALSE;
        }
    }
  return TRUE;
}

/* Frees the codec and the writer; the file is committed or aborted already. */
static void
writer_free (StImageWriter *w)
{
  png_save_free (g_steal_pointer (&w->png));
  jpeg_save_free (g_steal_pointer (&w->jpeg));
  g_free (w->path);
  g_free (w);
}

void
st_image_writer_abort (StImageWriter *w)
{
  if (!w)
    return;
  png_save_free (g_steal_pointer (&w->png));
  jpeg_save_free (g_steal_pointer (&w->jpeg));
  st_atomic_file_abort (g_steal_pointer (&w->file));
  writer_free (w);
}

StImageWriter *
st_image_writer_open (const char *path, StImageFormat format, int width, int height,
                      int channels, int bit_depth, int quality, GError **error)
{
  g_return_val_if_fail (path != NULL, NULL);
  g_return_val_if_fail (error == NULL || *error == NULL, NULL);

  if (format == ST_FORMAT_UNKNOWN)
    format = st_image_format_from_name (path);
  if (!check_write_arguments (path, format, width, height, channels, bit_depth, quality,
                              error))
    return NULL;

  /* Not synced: a disk flush per image would cost a tenth of a folder run's
   * speed, and an image can be made again from its input. */
  StAtomicFile *file = st_atomic_file_new (path, ST_ERROR_IO, ST_ATOMIC_FILE_NONE, error);
  if (!file)
    return NULL;
  FILE *fp = st_atomic_file_stream (file);

  StImageWriter *w = g_new0 (StImageWriter, 1);
  w->path = g_strdup (path);
  w->file = file;
  w->width = width;
  w->height = height;
  w->channels = channels;
  int code = ST_ERROR_IMAGE;
  char reason[REASON_SIZE] = "";
  if (format == ST_FORMAT_PNG)
    w->png = png_save_open (fp, width, height, channels, bit_depth, &code, reason);
  else
    w->jpeg = jpeg_save_open (fp, width, height, channels, quality, &code, reason);
  if (!w->png && !w->jpeg)
    {
      g_set_error (error, ST_ERROR, code, "%s: %s", path, reason);
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

  const RowSource src = { planes, n_rows };
  gboolean ok;
  if (w->png)
    {
      w->png->src = src;
      ok = png_save_rows_run (w->png);
      if (!ok)
        g_set_error (error, ST_ERROR, w->png->code, "%s: %s", w->path, w->png->reason);
    }
  else
    {
      w->jpeg->src = src;
      ok = jpeg_save_rows_run (w->jpeg);
      if (!ok)
        g_set_error (error, ST_ERROR, w->jpeg->code, "%s: %s", w->path, w->jpeg->reason);
    }
  if (ok)
    w->next_row += n_rows;
  else
    w->failed = TRUE;
  return ok;
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
  row_planes (src, src_first_row, planes);
  return st_image_writer_write_planes (w, (const float *const *) planes, n_rows, error);
}

gboolean
st_image_writer_finish (StImageWriter *w, GError **error)
{
  g_return_val_if_fail (w != NULL, FALSE);
  g_return_val_if_fail (error == NULL || *error == NULL, FALSE);

  int code = ST_ERROR_IMAGE;
  char reason[REASON_SIZE] = "";
  gboolean ok = TRUE;
  if (w->failed)
    {
      ok = FALSE;
      g_strlcpy (reason, "cannot finish after a failed write", sizeof reason);
    }
  else if (w->next_row != w->height)
    {
      ok = FALSE;
      g_snprintf (reason, sizeof reason, "cannot finish: %d of %d rows were written",
                  w->next_row, w->height);
    }
  else if (w->png && !png_save_end_run (w->png))
    {
      ok = FALSE;
      code = w->png->code;
      g_strlcpy (reason, w->png->reason, sizeof reason);
    }
  else if (w->jpeg && !jpeg_save_end_run (w->jpeg))
    {
      ok = FALSE;
      code = w->jpeg->code;
      g_strlcpy (reason, w->jpeg->reason, sizeof reason);
    }
  if (!ok)
    {
      g_set_error (error, ST_ERROR, code, "%s: %s", w->path, reason);
      st_image_writer_abort (w);
      return FALSE;
    }
  /* The codec is done with the stream: flushed, closed, renamed over path. */
  png_save_free (g_steal_pointer (&w->png));
  jpeg_save_free (g_steal_pointer (&w->jpeg));
  ok = st_atomic_file_commit (g_steal_pointer (&w->file), error);
  writer_free (w);
  return ok;
}

gboolean
st_image_save (const StTensor *image, const char *path, StImageFormat format,
               int bit_depth, int jpeg_quality, GError **error)
{
  g_return_val_if_fail (image != NULL && image->data != NULL, FALSE);
  g_return_val_if_fail (path != NULL, FALSE);
  g_return_val_if_fail (error == NULL || *error == NULL, FALSE);

  if (format == ST_FORMAT_UNKNOWN)
    format = st_image_format_from_name (path);
  if (format != ST_FORMAT_PNG && format != ST_FORMAT_JPEG)
    {
      g_set_error (error, ST_ERROR, ST_ERROR_IMAGE,
                   "%s: unknown image format (name the file .png, .jpg or .jpeg)", path);
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
  StImageWriter *w = st_image_writer_open (path, format, s.w, s.h, s.c, bit_depth,
                                           jpeg_quality, error);
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
