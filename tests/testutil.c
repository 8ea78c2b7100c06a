/* strata — helpers shared by the test programs (see testutil.h). */
#include "testutil.h"

#include <math.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>

#include <glib/gstdio.h>

#include "config.h"
#ifdef ST_HAVE_LIBHEIF
#include <libheif/heif.h>
#endif

/* ---- Files and folders --------------------------------------------------- */

char *
tu_make_tmpdir (const char *tmpl)
{
  g_autoptr (GError) error = NULL;
  char *dir = g_dir_make_tmp (tmpl, &error);
  g_assert_no_error (error);
  return dir;
}

void
tu_remove_tree (const char *path)
{
  if (g_file_test (path, G_FILE_TEST_IS_DIR))
    {
      g_autoptr (GDir) d = g_dir_open (path, 0, NULL);
      const char *name;
      while (d && (name = g_dir_read_name (d)))
        {
          g_autofree char *child = g_build_filename (path, name, NULL);
          tu_remove_tree (child);
        }
      g_rmdir (path);
    }
  else
    g_unlink (path);
}

void
tu_temp_dir_teardown (TuTempDir *fx, G_GNUC_UNUSED gconstpointer data)
{
  tu_remove_tree (fx->dir);
  g_free (fx->dir);
}

char *
tu_temp_path (TuTempDir *fx, const char *name)
{
  return g_build_filename (fx->dir, name, NULL);
}

void
tu_write_bytes (const char *path, const void *data, gsize size)
{
  FILE *fp = fopen (path, "wb");
  g_assert_nonnull (fp);
  g_assert_cmpuint (fwrite (data, 1, size, fp), ==, size);
  g_assert_cmpint (fclose (fp), ==, 0);
}

void
tu_put_be32 (GByteArray *a, guint32 v)
{
  guint8 b[4] = { v >> 24, v >> 16, v >> 8, v };
  g_byte_array_append (a, b, 4);
}

guint32
tu_crc32 (const guint8 *data, gsize len)
{
  guint32 crc = 0xffffffffu;
  for (gsize i = 0; i < len; i++)
    {
      crc ^= data[i];
      for (int k = 0; k < 8; k++)
        crc = (crc >> 1) ^ (0xedb88320u & -(crc & 1));
    }
  return crc ^ 0xffffffffu;
}

static void
put_u16 (guint8 *p, guint v, gboolean big)
{
  p[big ? 0 : 1] = v >> 8;
  p[big ? 1 : 0] = v;
}

static void
put_u32 (guint8 *p, guint32 v, gboolean big)
{
  for (int i = 0; i < 4; i++)
    p[big ? 3 - i : i] = v >> (8 * i);
}

/* One 12-byte directory entry at p. */
static void
put_entry (guint8 *p, guint tag, guint type, guint32 count, guint32 value, gboolean big)
{
  put_u16 (p, tag, big);
  put_u16 (p + 2, type, big);
  put_u32 (p + 4, count, big);
  if (type == 3 && count == 1)
    put_u16 (p + 8, value, big);
  else
    put_u32 (p + 8, value, big);
}

GBytes *
tu_make_exif (gboolean big)
{
  enum { ASCII = 2, LONG = 4, RATIONAL = 5 };
  guint8 *p = g_malloc0 (132);
  memcpy (p, big ? "MM\0*" : "II*\0", 4);
  put_u32 (p + 4, 8, big);
  /* IFD0 at 8: Make, the EXIF pointer; its data at 38. */
  put_u16 (p + 8, 2, big);
  put_entry (p + 10, 0x010f, ASCII, 6, 38, big);
  put_entry (p + 22, 0x8769, LONG, 1, 44, big);
  memcpy (p + 38, "Canon", 6);
  /* The EXIF directory at 44: ExposureTime, DateTimeOriginal, the
   * interoperability pointer; their data at 86 and 94. */
  put_u16 (p + 44, 3, big);
  put_entry (p + 46, 0x829a, RATIONAL, 1, 86, big);
  put_entry (p + 58, 0x9003, ASCII, 20, 94, big);
  put_entry (p + 70, 0xa005, LONG, 1, 114, big);
  put_u32 (p + 86, 1, big);
  put_u32 (p + 90, 250, big);
  memcpy (p + 94, TU_EXIF_DATE, 20);
  /* The interoperability directory at 114, its one value in the entry. */
  put_u16 (p + 114, 1, big);
  put_u16 (p + 116, 0x0001, big);
  put_u16 (p + 118, ASCII, big);
  put_u32 (p + 120, 4, big);
  memcpy (p + 124, "R98", 4);
  return g_bytes_new_take (p, 132);
}

GBytes *
tu_make_icc_profile (gsize size, const char *space)
{
  static const guint8 d50[12] = { 0, 0, 0xf6, 0xd6, 0, 1, 0, 0, 0, 0, 0xd3, 0x2d };
  guint8 *p = g_malloc0 (size);
  for (gsize i = 132; i < size; i++)
    p[i] = (guint8) (i * 7 + 1);
  p[0] = size >> 24;
  p[1] = size >> 16;
  p[2] = size >> 8;
  p[3] = size;
  p[8] = 2;                    /* version 2.1 */
  p[9] = 0x10;
  memcpy (p + 12, "mntr", 4);
  memcpy (p + 16, space, 4);
  memcpy (p + 20, "XYZ ", 4);
  memcpy (p + 36, "acsp", 4);
  memcpy (p + 68, d50, sizeof d50);
  return g_bytes_new_take (p, size);
}

void
tu_write_synthetic_idx (const char *dir, const char *prefix, int n, guint32 seed)
{
  GRand *rand = g_rand_new_with_seed (seed);
  g_autoptr (GByteArray) images = g_byte_array_new ();
  g_autoptr (GByteArray) labels = g_byte_array_new ();
  tu_put_be32 (images, 0x803);
  tu_put_be32 (images, n);
  tu_put_be32 (images, 8);
  tu_put_be32 (images, 8);
  tu_put_be32 (labels, 0x801);
  tu_put_be32 (labels, n);
  for (int i = 0; i < n; i++)
    {
      guint8 label = (guint8) (i % 2);
      g_byte_array_append (labels, &label, 1);
      for (int y = 0; y < 8; y++)
        for (int x = 0; x < 8; x++)
          {
            gboolean bright = label ? x >= 4 : x < 4;
            guint8 v = (guint8) CLAMP ((bright ? 170 : 60) + g_rand_int_range (rand, -50, 50), 0, 255);
            g_byte_array_append (images, &v, 1);
          }
    }
  g_rand_free (rand);
  g_autofree char *ip = g_strdup_printf ("%s/%s-images-idx3-ubyte", dir, prefix);
  g_autofree char *lp = g_strdup_printf ("%s/%s-labels-idx1-ubyte", dir, prefix);
  g_assert_true (g_file_set_contents (ip, (char *) images->data, images->len, NULL));
  g_assert_true (g_file_set_contents (lp, (char *) labels->data, labels->len, NULL));
}

/* ---- Running the CLI ----------------------------------------------------- */

void
tu_result_clear (TuResult *r)
{
  g_free (r->out);
  g_free (r->err);
}

static TuResult
spawn_and_wait (const char *exe, const char *const *args, gboolean may_die)
{
  g_autoptr (GPtrArray) argv = g_ptr_array_new ();
  g_ptr_array_add (argv, (char *) exe);
  for (int i = 0; args[i]; i++)
    g_ptr_array_add (argv, (char *) args[i]);
  g_ptr_array_add (argv, NULL);
  TuResult r = { 0 };
  int wait_status;
  g_autoptr (GError) error = NULL;
  g_assert_true (g_spawn_sync (NULL, (char **) argv->pdata, NULL, G_SPAWN_DEFAULT, NULL, NULL,
                               &r.out, &r.err, &wait_status, &error));
  g_assert_no_error (error);
  if (!WIFEXITED (wait_status))
    {
      int sig = WIFSIGNALED (wait_status) ? WTERMSIG (wait_status) : -1;
      /* Say how it died and what it said, or the failure is unreadable. */
      g_printerr ("%s ended by signal %d\nstdout: %s\nstderr: %s\n", exe, sig, r.out, r.err);
      g_assert_true (may_die && sig > 0);
      r.signal = sig;
      r.status = 128 + sig;
      return r;
    }
  r.status = WEXITSTATUS (wait_status);
  g_test_message ("stdout: %s\nstderr: %s", r.out, r.err);
  return r;
}

TuResult
tu_run_argv (const char *exe, const char *const *args)
{
  return spawn_and_wait (exe, args, FALSE);
}

TuResult
tu_run_argv_may_die (const char *exe, const char *const *args)
{
  return spawn_and_wait (exe, args, TRUE);
}

static TuResult
run_va (const char *exe, const char *first, va_list ap)
{
  g_autoptr (GPtrArray) args = g_ptr_array_new ();
  for (const char *a = first; a; a = va_arg (ap, const char *))
    g_ptr_array_add (args, (char *) a);
  g_ptr_array_add (args, NULL);
  return tu_run_argv (exe, (const char *const *) args->pdata);
}

TuResult
tu_run (const char *exe, const char *first, ...)
{
  va_list ap;
  va_start (ap, first);
  TuResult r = run_va (exe, first, ap);
  va_end (ap);
  return r;
}

int
tu_run_capture (const char *exe, char **out, char **err, const char *first, ...)
{
  va_list ap;
  va_start (ap, first);
  TuResult r = run_va (exe, first, ap);
  va_end (ap);
  *out = r.out;
  *err = r.err;
  return r.status;
}

/* ---- Stages -------------------------------------------------------------- */

void
tu_params_parse (TuParams *p, const char *text)
{
  g_auto (GStrv) words = g_strsplit (text ? text : "", " ", -1);
  p->n = 0;
  for (int i = 0; words[i]; i++)
    {
      if (!*words[i])
        continue;
      g_assert_cmpint (p->n, <, (int) G_N_ELEMENTS (p->keys));
      p->split[p->n] = g_strsplit (words[i], "=", 2);
      g_assert_nonnull (p->split[p->n][1]);
      p->keys[p->n] = p->split[p->n][0];
      p->values[p->n] = p->split[p->n][1];
      p->n++;
    }
}

void
tu_params_clear (TuParams *p)
{
  for (int i = 0; i < p->n; i++)
    g_strfreev (p->split[i]);
  p->n = 0;
}

const StKind *
tu_kind (StRegistry *reg, const char *kind_name)
{
  const StKindEntry *entry = st_registry_lookup (reg, kind_name);
  if (!entry)
    g_error ("no plugin provides kind '%s'", kind_name);
  return entry->kind;
}

StStage *
tu_stage_new (StRegistry *reg, const char *kind_name, const char *name, const char *params,
              GError **error)
{
  TuParams p;
  tu_params_parse (&p, params);
  StStage *stage = st_stage_new (tu_kind (reg, kind_name), name, p.keys, p.values, p.n, error);
  tu_params_clear (&p);
  return stage;
}

StTensor *
tu_stage_run (StStage *stage, const StTensor *const *inputs, int n_inputs, StRunContext *ctx,
              GError **error)
{
  StShape shapes[8];
  g_assert_cmpint (n_inputs, <=, 8);
  for (int i = 0; i < n_inputs; i++)
    shapes[i] = inputs[i]->shape;
  if (!st_stage_infer (stage, shapes, n_inputs, error))
    return NULL;
  StTensor *out = st_tensor_new (stage->out_shape, error);
  g_assert_nonnull (out);
  if (!stage->kind->forward (stage, ctx, inputs, out, error))
    {
      st_tensor_free (out);
      return NULL;
    }
  return out;
}

StTensor *
tu_run1 (StRegistry *reg, const char *kind_name, const char *params, const StTensor *in,
         StRunContext *ctx)
{
  g_autoptr (GError) error = NULL;
  StStage *stage = tu_stage_new (reg, kind_name, kind_name, params, &error);
  g_assert_no_error (error);
  StTensor *out = tu_stage_run (stage, &in, 1, ctx, &error);
  g_assert_no_error (error);
  st_stage_free (stage);
  return out;
}

/* ---- Tensors ------------------------------------------------------------- */

StTensor *
tu_tensor_from (int n, int c, int h, int w, const float *values)
{
  StTensor *t = st_tensor_new0 (n, c, h, w);
  memcpy (t->data, values, sizeof (float) * st_tensor_numel (t));
  return t;
}

StTensor *
tu_tensor_random (GRand *rand, int n, int c, int h, int w)
{
  StTensor *t = st_tensor_new0 (n, c, h, w);
  for (gsize i = 0; i < st_tensor_numel (t); i++)
    t->data[i] = (float) g_rand_double (rand);
  return t;
}

/* ---- HEIC and AVIF fixtures ---------------------------------------------- */

#ifdef ST_HAVE_LIBHEIF
gboolean
tu_write_heif (const char *path, const StTensor *src, gboolean av1, int bits, int orientation)
{
  return tu_write_heif_with (path, src, av1, bits, orientation, NULL, NULL, NULL);
}

gboolean
tu_write_heif_with (const char *path, const StTensor *src, gboolean av1, int bits,
                    int orientation, GBytes *icc, GBytes *exif, GBytes *xmp)
{
  const enum heif_compression_format compression = av1 ? heif_compression_AV1
                                                       : heif_compression_HEVC;
  if (!heif_have_encoder_for_format (compression))
    return FALSE;
  const int w = src->shape.w, h = src->shape.h, channels = src->shape.c;
  const gboolean alpha = channels == 4;
  const enum heif_chroma chroma = bits > 8
    ? (alpha ? heif_chroma_interleaved_RRGGBBAA_LE : heif_chroma_interleaved_RRGGBB_LE)
    : (alpha ? heif_chroma_interleaved_RGBA : heif_chroma_interleaved_RGB);
  struct heif_image *image = NULL;
  g_assert_cmpint (heif_image_create (w, h, heif_colorspace_RGB, chroma, &image).code, ==,
                   heif_error_Ok);
  g_assert_cmpint (heif_image_add_plane (image, heif_channel_interleaved, w, h, bits).code,
                   ==, heif_error_Ok);
  int stride;
  guint8 *pixels = heif_image_get_plane (image, heif_channel_interleaved, &stride);
  const float top = (float) ((1 << bits) - 1);
  for (int y = 0; y < h; y++)
    for (int x = 0; x < w; x++)
      for (int c = 0; c < channels; c++)
        {
          const guint v = (guint) lrintf (src->data[((gsize) c * h + y) * w + x] * top);
          if (bits > 8)
            {
              guint8 *p = pixels + (gsize) y * stride + ((gsize) x * channels + c) * 2;
              p[0] = (guint8) (v & 0xff);
              p[1] = (guint8) (v >> 8);
            }
          else
            pixels[(gsize) y * stride + (gsize) x * channels + c] = (guint8) v;
        }
  if (icc)
    g_assert_cmpint (heif_image_set_raw_color_profile (image, "prof",
                                                       g_bytes_get_data (icc, NULL),
                                                       g_bytes_get_size (icc)).code,
                     ==, heif_error_Ok);
  struct heif_context *ctx = heif_context_alloc ();
  struct heif_encoder *encoder = NULL;
  g_assert_cmpint (heif_context_get_encoder_for_format (ctx, compression, &encoder).code, ==,
                   heif_error_Ok);
  heif_encoder_set_lossy_quality (encoder, 95);
  struct heif_encoding_options *options = heif_encoding_options_alloc ();
  options->image_orientation = (enum heif_orientation) orientation;
  struct heif_image_handle *handle = NULL;
  struct heif_error err = heif_context_encode_image (ctx, image, encoder, options, &handle);
  g_assert_cmpstr (err.message, ==, "Success");
  if (exif)
    g_assert_cmpint (heif_context_add_exif_metadata (ctx, handle, g_bytes_get_data (exif, NULL),
                                                     (int) g_bytes_get_size (exif)).code,
                     ==, heif_error_Ok);
  if (xmp)
    g_assert_cmpint (heif_context_add_XMP_metadata (ctx, handle, g_bytes_get_data (xmp, NULL),
                                                    (int) g_bytes_get_size (xmp)).code,
                     ==, heif_error_Ok);
  heif_image_handle_release (handle);
  g_assert_cmpint (heif_context_write_to_file (ctx, path).code, ==, heif_error_Ok);
  heif_encoding_options_free (options);
  heif_encoder_release (encoder);
  heif_context_free (ctx);
  heif_image_release (image);
  return TRUE;
}
#endif
