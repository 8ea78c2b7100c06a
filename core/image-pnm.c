/* strata — the Netpbm family: PBM, PGM, PPM (plain and binary) and PAM.
 *
 * A reader of our own: Debian's libnetpbm reports bad input by printing and
 * calling exit(), which a library that must never abort cannot use, and
 * the formats are a short text header over plain samples.  The header
 * parser is strict and bounded (numbers, header length, maxval 1 to
 * 65535), the pixel limit is checked as soon as the size is known, and
 * rows are decoded as they are asked for.
 *
 * Writing: gray is a PGM (P5), RGB a PPM (P6), with alpha a PAM (P7), at
 * maxval 255 or 65535 as the bit depth asks. */
#include "image-format.h"

#include <errno.h>
#include <string.h>

/* Longer headers (comments included) are refused rather than read on. */
#define PNM_MAX_HEADER_BYTES 65536
#define PNM_MAX_LINE 256

typedef struct {
  StImageInput *in;
  int kind;                    /* the digit after 'P': 1 to 7 */
  int width, height, channels;
  guint maxval;
  gboolean bits;               /* P4: one bit a pixel, 1 is black */
  gsize header_bytes;
  int pushed;                  /* a character given back, or -1 */
  gboolean in_header;
  guint8 *row;
  gsize rowbytes;
  int next_row;
  char reason[ST_IMAGE_REASON_SIZE];
  int code;
} PnmLoad;

static gboolean
pnm_fail (PnmLoad *ld, const char *format, ...) G_GNUC_PRINTF (2, 3);

static gboolean
pnm_fail (PnmLoad *ld, const char *format, ...)
{
  va_list args;
  va_start (args, format);
  g_vsnprintf (ld->reason, sizeof ld->reason, format, args);
  va_end (args);
  return FALSE;
}

static gboolean
pnm_fail_short_read (PnmLoad *ld)
{
  if (ferror (ld->in->fp))
    {
      ld->code = ST_ERROR_IO;
      return pnm_fail (ld, "cannot read: %s", g_strerror (errno));
    }
  return pnm_fail (ld, ld->in_header ? "truncated PNM file (it ends inside the header)"
                                     : "truncated PNM file (it ends before the image is complete)");
}

/* The next byte, or -1 at the end of the file (reason then set). */
static int
pnm_getc (PnmLoad *ld)
{
  if (ld->pushed >= 0)
    {
      int c = ld->pushed;
      ld->pushed = -1;
      return c;
    }
  guint8 byte;
  if (st_image_input_read (ld->in, &byte, 1) != 1)
    {
      pnm_fail_short_read (ld);
      return -1;
    }
  if (ld->in_header && ++ld->header_bytes > PNM_MAX_HEADER_BYTES)
    {
      pnm_fail (ld, "invalid PNM header (longer than %d bytes)", PNM_MAX_HEADER_BYTES);
      return -1;
    }
  return byte;
}

static gboolean
pnm_is_space (int c)
{
  return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f';
}

/* Skips whitespace and comments (from '#' to the end of the line). */
static gboolean
pnm_skip_space (PnmLoad *ld)
{
  for (;;)
    {
      int c = pnm_getc (ld);
      if (c < 0)
        return FALSE;
      if (c == '#')
        {
          do
            c = pnm_getc (ld);
          while (c >= 0 && c != '\n' && c != '\r');
          if (c < 0)
            return FALSE;
        }
      else if (!pnm_is_space (c))
        {
          ld->pushed = c;
          return TRUE;
        }
    }
}

/* A decimal number of at most `limit`, after whitespace and comments; the
 * character that ends it must be whitespace (consumed) or a comment. */
static gboolean
pnm_read_number (PnmLoad *ld, const char *what, guint min, guint limit, guint *value)
{
  if (!pnm_skip_space (ld))
    return FALSE;
  int c = pnm_getc (ld);
  if (c < '0' || c > '9')
    return pnm_fail (ld, "invalid PNM %s (expected a number)", what);
  guint64 n = 0;
  while (c >= '0' && c <= '9')
    {
      n = n * 10 + (guint) (c - '0');
      if (n > limit)
        return pnm_fail (ld, "invalid PNM %s (more than %u)", what, limit);
      c = pnm_getc (ld);
    }
  /* The last sample of a plain file may end it. */
  if (c < 0 && (ld->in_header || ferror (ld->in->fp)))
    return FALSE;
  if (c == '#')
    ld->pushed = c;
  else if (c < 0)
    ;
  else if (!pnm_is_space (c))
    return pnm_fail (ld, "invalid PNM %s (unexpected character after the number)", what);
  if (n < min)
    return pnm_fail (ld, "invalid PNM %s (%u; expected %u to %u)", what, (guint) n, min, limit);
  *value = (guint) n;
  return TRUE;
}

static gboolean
pnm_check_size (PnmLoad *ld, guint64 max_pixels, GError **error)
{
  return st_image_check_pixel_limit (ld->in->path, ld->width, ld->height, max_pixels, error);
}

/* P1 to P6: width, height and (except for bitmaps) maxval. */
static gboolean
pnm_read_header (PnmLoad *ld, guint64 max_pixels, GError **error)
{
  guint width, height;
  if (!pnm_read_number (ld, "width", 1, G_MAXINT, &width)
      || !pnm_read_number (ld, "height", 1, G_MAXINT, &height))
    return FALSE;
  ld->width = width;
  ld->height = height;
  if (!pnm_check_size (ld, max_pixels, error))
    return FALSE;
  const gboolean bitmap = ld->kind == 1 || ld->kind == 4;
  ld->channels = ld->kind == 3 || ld->kind == 6 ? 3 : 1;
  ld->bits = ld->kind == 4;
  ld->maxval = 1;
  if (!bitmap && !pnm_read_number (ld, "maxval", 1, 65535, &ld->maxval))
    return FALSE;
  /* The single whitespace after the last field was consumed; a comment
   * there belongs to no format. */
  if (ld->pushed >= 0 && ld->kind >= 4)
    return pnm_fail (ld, "invalid PNM header (a comment where the pixels start)");
  return TRUE;
}

/* One line of a PAM header, without its end; empty at a blank line. */
static gboolean
pam_read_line (PnmLoad *ld, char *line)
{
  int n = 0;
  for (;;)
    {
      int c = pnm_getc (ld);
      if (c < 0)
        return FALSE;
      if (c == '\n')
        break;
      if (n == PNM_MAX_LINE - 1)
        return pnm_fail (ld, "invalid PAM header (a line longer than %d bytes)", PNM_MAX_LINE);
      line[n++] = (char) c;
    }
  line[n] = '\0';
  return TRUE;
}

static gboolean
pam_parse_number (PnmLoad *ld, const char *key, const char *text, guint min, guint limit,
                  guint *value)
{
  guint64 n;
  if (!g_ascii_string_to_unsigned (text, 10, min, limit, &n, NULL))
    return pnm_fail (ld, "invalid PAM %s '%s' (expected %u to %u)", key, text, min, limit);
  *value = (guint) n;
  return TRUE;
}

static gboolean
pam_read_header (PnmLoad *ld, guint64 max_pixels, GError **error)
{
  guint width = 0, height = 0, depth = 0, maxval = 0;
  char tupltype[PNM_MAX_LINE] = "";
  char line[PNM_MAX_LINE];
  for (;;)
    {
      if (!pam_read_line (ld, line))
        return FALSE;
      g_strstrip (line);
      if (line[0] == '\0' || line[0] == '#')
        continue;
      if (strcmp (line, "ENDHDR") == 0)
        break;
      char *value = line + strcspn (line, " \t");
      if (*value)
        *value++ = '\0';
      value = g_strchug (value);
      gboolean ok = TRUE;
      if (strcmp (line, "WIDTH") == 0)
        ok = pam_parse_number (ld, "WIDTH", value, 1, G_MAXINT, &width);
      else if (strcmp (line, "HEIGHT") == 0)
        ok = pam_parse_number (ld, "HEIGHT", value, 1, G_MAXINT, &height);
      else if (strcmp (line, "DEPTH") == 0)
        ok = pam_parse_number (ld, "DEPTH", value, 1, 4, &depth);
      else if (strcmp (line, "MAXVAL") == 0)
        ok = pam_parse_number (ld, "MAXVAL", value, 1, 65535, &maxval);
      else if (strcmp (line, "TUPLTYPE") == 0)
        g_strlcpy (tupltype, value, sizeof tupltype);
      else
        return pnm_fail (ld, "invalid PAM header (unknown field '%s')", line);
      if (!ok)
        return FALSE;
    }
  if (!width || !height || !depth || !maxval)
    return pnm_fail (ld, "invalid PAM header (WIDTH, HEIGHT, DEPTH and MAXVAL are required)");
  ld->width = width;
  ld->height = height;
  if (!pnm_check_size (ld, max_pixels, error))
    return FALSE;

  static const struct { const char *name; guint depth; } types[] = {
    { "BLACKANDWHITE", 1 }, { "GRAYSCALE", 1 }, { "BLACKANDWHITE_ALPHA", 2 },
    { "GRAYSCALE_ALPHA", 2 }, { "RGB", 3 }, { "RGB_ALPHA", 4 },
  };
  if (tupltype[0])
    {
      gsize i = 0;
      while (i < G_N_ELEMENTS (types) && strcmp (types[i].name, tupltype) != 0)
        i++;
      if (i == G_N_ELEMENTS (types))
        return pnm_fail (ld, "unsupported PAM tuple type '%s'", tupltype);
      if (types[i].depth != depth)
        return pnm_fail (ld, "invalid PAM header (TUPLTYPE %s with DEPTH %u)", tupltype, depth);
      if (g_str_has_prefix (tupltype, "BLACKANDWHITE") && maxval != 1)
        return pnm_fail (ld, "invalid PAM header (TUPLTYPE %s with MAXVAL %u)", tupltype,
                         maxval);
    }
  ld->channels = depth;
  ld->maxval = maxval;
  return TRUE;
}

/* One row of samples into row (two bytes a sample, big-endian, when maxval
 * is over 255), from the text of a plain format. */
static gboolean
pnm_read_plain_row (PnmLoad *ld)
{
  const gsize n = (gsize) ld->width * ld->channels;
  for (gsize i = 0; i < n; i++)
    {
      guint v;
      if (ld->kind == 1)
        {
          /* Bitmap digits need no separator. */
          if (!pnm_skip_space (ld))
            return FALSE;
          int c = pnm_getc (ld);
          if (c != '0' && c != '1')
            return pnm_fail (ld, "invalid PBM pixel (expected 0 or 1)");
          v = c == '0';
        }
      else if (!pnm_read_number (ld, "sample", 0, 65535, &v))
        return FALSE;
      else if (v > ld->maxval)
        return pnm_fail (ld, "invalid PNM sample %u (over the maxval %u)", v, ld->maxval);
      if (ld->maxval > 255)
        {
          ld->row[2 * i] = v >> 8;
          ld->row[2 * i + 1] = v & 0xff;
        }
      else
        ld->row[i] = v;
    }
  return TRUE;
}

static gboolean
pnm_read_binary_row (PnmLoad *ld)
{
  if (st_image_input_read (ld->in, ld->row, ld->rowbytes) != ld->rowbytes)
    return pnm_fail_short_read (ld);
  return TRUE;
}

static void
pnm_store_row (PnmLoad *ld, StTensor *dst, int row)
{
  float *planes[4];
  st_image_row_planes (dst, row, planes);
  if (ld->bits)
    {
      for (int x = 0; x < ld->width; x++)
        planes[0][x] = (ld->row[x >> 3] >> (7 - (x & 7)) & 1) ? 0.0f : 1.0f;
      return;
    }
  const float scale = 1.0f / (float) ld->maxval;
  const int c_n = ld->channels;
  for (int x = 0; x < ld->width; x++)
    for (int c = 0; c < c_n; c++)
      {
        const gsize i = (gsize) x * c_n + c;
        const guint v = ld->maxval > 255 ? (guint) ld->row[2 * i] << 8 | ld->row[2 * i + 1]
                                         : ld->row[i];
        planes[c][x] = ld->maxval == 255 || ld->maxval == 65535 ? (float) v / (float) ld->maxval
                                                                : MIN (v * scale, 1.0f);
      }
}

static void
pnm_reader_close (gpointer reader)
{
  PnmLoad *ld = reader;
  if (!ld)
    return;
  g_free (ld->row);
  g_free (ld);
}

static gpointer
pnm_reader_open (StImageInput *in, guint64 max_pixels, StImageHeader *header, GError **error)
{
  g_autoptr (GError) found = NULL;
  PnmLoad *ld = g_new0 (PnmLoad, 1);
  ld->in = in;
  ld->pushed = -1;
  ld->in_header = TRUE;
  ld->code = ST_ERROR_IMAGE;
  guint8 magic[2];
  gboolean ok = st_image_input_read (in, magic, 2) == 2;
  if (!ok)
    pnm_fail_short_read (ld);
  else
    {
      ld->kind = magic[1] - '0';
      if (ld->kind == 7)
        {
          int c = pnm_getc (ld);
          ok = c == '\n'
               || (c >= 0 && pnm_fail (ld, "invalid PAM header (P7 not on a line of its own)"));
          ok = ok && pam_read_header (ld, max_pixels, &found);
        }
      else
        ok = pnm_read_header (ld, max_pixels, &found);
    }
  if (!ok)
    {
      st_image_take_error (error, &found, in->path, ld->code, ld->reason);
      pnm_reader_close (ld);
      return NULL;
    }
  ld->in_header = FALSE;
  /* Rows are held as the binary formats store them; the plain formats are
   * converted to that first. */
  const int sample_bytes = ld->maxval > 255 ? 2 : 1;
  ld->rowbytes = ld->bits ? ((gsize) ld->width + 7) / 8
                          : (gsize) ld->width * ld->channels * sample_bytes;
  ld->row = g_try_malloc (ld->rowbytes);
  if (!ld->row)
    {
      g_set_error (error, ST_ERROR, ST_ERROR_IMAGE, "%s: not enough memory for a row of %d pixels",
                   in->path, ld->width);
      pnm_reader_close (ld);
      return NULL;
    }
  header->width = ld->width;
  header->height = ld->height;
  header->channels = ld->channels;
  header->info = (StImageInfo) { ST_FORMAT_PNM, sample_bytes * 8,
                                 ld->channels == 2 || ld->channels == 4 };
  return ld;
}

static gboolean
pnm_reader_read (gpointer reader, StTensor *dst, int first_row, int n_rows, GError **error)
{
  PnmLoad *ld = reader;
  const gboolean plain = ld->kind <= 3;
  for (int k = 0; k < n_rows; k++)
    {
      gboolean ok = plain ? pnm_read_plain_row (ld) : pnm_read_binary_row (ld);
      if (ok && !plain && !ld->bits && ld->maxval != 255 && ld->maxval != 65535)
        {
          /* A sample over maxval is as corrupt in binary as in text. */
          const gsize n = (gsize) ld->width * ld->channels;
          for (gsize i = 0; ok && i < n; i++)
            {
              guint v = ld->maxval > 255 ? (guint) ld->row[2 * i] << 8 | ld->row[2 * i + 1]
                                         : ld->row[i];
              if (v > ld->maxval)
                ok = pnm_fail (ld, "invalid PNM sample %u (over the maxval %u)", v, ld->maxval);
            }
        }
      if (!ok)
        {
          g_set_error (error, ST_ERROR, ld->code, "%s: %s", ld->in->path, ld->reason);
          return FALSE;
        }
      pnm_store_row (ld, dst, first_row + k);
      ld->next_row++;
    }
  return TRUE;
}

/* ---- Writing ------------------------------------------------------------- */

typedef struct {
  const char *path;
  FILE *fp;
  int width, channels, bit_depth;
  guint8 *row;
} PnmSave;

static gboolean
pnm_write_failed (const char *path, GError **error)
{
  g_set_error (error, ST_ERROR, ST_ERROR_IO, "%s: cannot write: %s", path, g_strerror (errno));
  return FALSE;
}

static gboolean
pnm_writer_check (const StImageWriteSpec *spec, GError **error)
{
  if (spec->bit_depth != 8 && spec->bit_depth != 16)
    {
      g_set_error (error, ST_ERROR, ST_ERROR_IMAGE,
                   "%s: cannot write a PNM of bit depth %d (expected 8 or 16)",
                   spec->path, spec->bit_depth);
      return FALSE;
    }
  const char *dot = strrchr (spec->path, '.');
  if (dot && g_ascii_strcasecmp (dot, ".pbm") == 0)
    {
      g_set_error (error, ST_ERROR, ST_ERROR_IMAGE,
                   "%s: cannot write a PBM bitmap (name the file .pgm, .ppm or .pnm)",
                   spec->path);
      return FALSE;
    }
  /* A .pgm is read as grey and a .ppm as RGB by the tools that go by the
   * name: other pixels under those names are refused, not converted. */
  const gboolean pgm = dot && g_ascii_strcasecmp (dot, ".pgm") == 0;
  const gboolean ppm = dot && g_ascii_strcasecmp (dot, ".ppm") == 0;
  static const char *const layouts[] = { "", "grey", "grey and alpha", "RGB", "RGBA" };
  if ((pgm && spec->channels != 1) || (ppm && spec->channels != 3))
    {
      g_set_error (error, ST_ERROR, ST_ERROR_IMAGE,
                   "%s: a %s holds %s pixels only, and this image is %s (name the file %s "
                   "or .pnm%s)", spec->path, pgm ? "PGM" : "PPM", pgm ? "grey" : "RGB",
                   layouts[spec->channels],
                   spec->channels == 1 ? ".pgm" : spec->channels == 3 ? ".ppm" : ".pam",
                   pgm ? ", or put a grayscale stage last" : "");
      return FALSE;
    }
  return TRUE;
}

static void
pnm_writer_free (gpointer writer)
{
  PnmSave *job = writer;
  if (!job)
    return;
  g_free (job->row);
  g_free (job);
}

static gpointer
pnm_writer_open (FILE *fp, const StImageWriteSpec *spec, GError **error)
{
  const guint maxval = spec->bit_depth == 16 ? 65535 : 255;
  int written;
  if (spec->channels == 1 || spec->channels == 3)
    written = fprintf (fp, "P%c\n%d %d\n%u\n", spec->channels == 1 ? '5' : '6', spec->width,
                       spec->height, maxval);
  else
    written = fprintf (fp, "P7\nWIDTH %d\nHEIGHT %d\nDEPTH %d\nMAXVAL %u\nTUPLTYPE %s\nENDHDR\n",
                       spec->width, spec->height, spec->channels, maxval,
                       spec->channels == 2 ? "GRAYSCALE_ALPHA" : "RGB_ALPHA");
  if (written < 0)
    {
      pnm_write_failed (spec->path, error);
      return NULL;
    }
  PnmSave *job = g_new0 (PnmSave, 1);
  job->path = spec->path;
  job->fp = fp;
  job->width = spec->width;
  job->channels = spec->channels;
  job->bit_depth = spec->bit_depth;
  job->row = g_malloc ((gsize) job->width * job->channels * (job->bit_depth / 8));
  return job;
}

static gboolean
pnm_writer_write (gpointer writer, const StImageRows *rows, GError **error)
{
  PnmSave *job = writer;
  const gsize rowbytes = (gsize) job->width * job->channels * (job->bit_depth / 8);
  for (int k = 0; k < rows->n_rows; k++)
    {
      const float *row[4];
      st_image_rows_row (rows, job->channels, job->width, k, row);
      if (job->bit_depth == 16)
        st_image_pack_row_u16be (row, job->channels, job->width, job->row);
      else
        st_image_pack_row_u8 (row, job->channels, job->channels, job->width, job->row);
      if (fwrite (job->row, 1, rowbytes, job->fp) != rowbytes)
        return pnm_write_failed (job->path, error);
    }
  return TRUE;
}

static gboolean
pnm_writer_finish (G_GNUC_UNUSED gpointer writer, G_GNUC_UNUSED GError **error)
{
  return TRUE;
}

/* ---- The format ---------------------------------------------------------- */

static StImageMatch
pnm_match (const guint8 *head, gsize head_len)
{
  if (head_len == 0 || head[0] != 'P')
    return ST_IMAGE_MATCH_NO;
  if (head_len == 1)
    return ST_IMAGE_MATCH_TRUNCATED;
  if (head[1] < '1' || head[1] > '7')
    return ST_IMAGE_MATCH_NO;
  if (head_len == 2)
    return ST_IMAGE_MATCH_TRUNCATED;
  return pnm_is_space (head[2]) ? ST_IMAGE_MATCH_YES : ST_IMAGE_MATCH_NO;
}

static const char *const pnm_extensions[] = { "pgm", "ppm", "pnm", "pbm", "pam", NULL };

const StImageCodec st_image_pnm_codec = {
  .format = ST_FORMAT_PNM,
  .name = "PNM",
  .extensions = pnm_extensions,
  .match = pnm_match,
  .reader_open = pnm_reader_open,
  .reader_read = pnm_reader_read,
  .reader_close = pnm_reader_close,
  .writer_check = pnm_writer_check,
  .writer_open = pnm_writer_open,
  .writer_write = pnm_writer_write,
  .writer_finish = pnm_writer_finish,
  .writer_free = pnm_writer_free,
};
