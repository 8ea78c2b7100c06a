/* strata — converting image rows between the bytes a codec reads or
 * writes and the float planes of a [1, C, H, W] tensor, for every format
 * alike: 8-bit values map to i / 255, 16-bit to i / 65535, and writing
 * clamps to [0, 1] and rounds to the nearest step (NaN becomes 0). */
#include "image-convert.h"

#include <string.h>

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

/* Columns per block when writing a rotated image, so the rows of one batch
 * fill each destination cache line before it is evicted. */
#define TRANSPOSE_BLOCK 256

/* Pixels per block when converting floats to bytes for writing: small
 * enough that a block of every plane stays in L1. */
#define PACK_BLOCK 256

/* Filled once, shared by every reader. */
const float *
st_image_unit_table (void)
{
  static float table[256];
  static gsize ready = 0;
  if (g_once_init_enter (&ready))
    {
      for (int i = 0; i < 256; i++)
        table[i] = (float) i / 255.0f;
      g_once_init_leave (&ready, 1);
    }
  return table;
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

void
st_image_row_planes (const StTensor *t, int row, float **planes)
{
  const gsize plane_size = (gsize) t->shape.h * (gsize) t->shape.w;
  for (int c = 0; c < t->shape.c; c++)
    planes[c] = t->data + c * plane_size + (gsize) row * t->shape.w;
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
void
st_image_row_u8_to_planes (float *const *planes, int channels, ptrdiff_t xstep,
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
void
st_image_row_u16be_to_planes (float *const *planes, int channels, const guint8 *src, int width)
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
void
st_image_store_rows_u8 (StTensor *t, const StImagePlacement *place, int width, guint8 *const *rows,
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
          st_image_row_u8_to_planes (planes, channels, place->xstep, rows[r], pixel_bytes,
                                     width, table);
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
void
st_image_pack_row_u8 (const float *const *planes, int n_planes, int channels, int width,
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

void
st_image_pack_row_u16be (const float *const *planes, int channels, int width, guint8 *restrict dst)
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

void
st_image_rows_row (const StImageRows *src, int channels, int width, int k, const float **row)
{
  for (int c = 0; c < channels; c++)
    row[c] = src->planes[c] + (gsize) k * width;
}
