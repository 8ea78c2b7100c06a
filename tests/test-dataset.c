/* strata — tests of datasets (core/dataset.c).
 *
 * Every test gets a fresh temporary folder and writes its own fixtures:
 * IDX files byte by byte (plain, and gzipped with GIO's GZlibCompressor),
 * then damaged on purpose; image folders with st_image_save.  The real
 * Fashion-MNIST files are read too when the dataset-fashion-mnist package
 * has installed them. */
#include "context.h"
#include "dataset.h"
#include "prepare.h"
#include "registry.h"
#include "image.h"
#include "testutil.h"

#include <string.h>
#include <unistd.h>

#include <gio/gio.h>
#include <glib/gstdio.h>

#define FASHION_MNIST_DIR "/usr/share/datasets/fashion-mnist"

static void
temp_dir_setup (TuTempDir *fx, G_GNUC_UNUSED gconstpointer data)
{
  fx->dir = tu_make_tmpdir ("strata-test-dataset-XXXXXX");
}

/* ---- IDX fixtures -------------------------------------------------------- */

#define N_IMAGES 5
#define IMG_H 3
#define IMG_W 4

static const guint8 fixture_labels[N_IMAGES] = { 3, 0, 7, 1, 3 };

static guint8
fixture_pixel (gsize i)
{
  return (guint8) ((i * 37 + 11) % 256);
}

/* An IDX image file: magic, then n, h, w (as many as the magic's low byte
 * says), then n·h·w + extra pixels, less cut bytes at the end. */
static GByteArray *
idx_images_bytes (guint32 magic, guint32 n, guint32 h, guint32 w, gssize extra)
{
  GByteArray *a = g_byte_array_new ();
  tu_put_be32 (a, magic);
  const guint32 dims[3] = { n, h, w };
  for (guint i = 0; i < MIN (magic & 0xff, 3u); i++)
    tu_put_be32 (a, dims[i]);
  gsize count = (gsize) ((gssize) n * h * w + extra);
  for (gsize i = 0; i < count; i++)
    {
      guint8 v = fixture_pixel (i);
      g_byte_array_append (a, &v, 1);
    }
  return a;
}

static GByteArray *
idx_labels_bytes (const guint8 *labels, guint32 n_declared, guint32 n_written)
{
  GByteArray *a = g_byte_array_new ();
  tu_put_be32 (a, 0x00000801);
  tu_put_be32 (a, n_declared);
  g_byte_array_append (a, labels, n_written);
  return a;
}

static GByteArray *
gzip_bytes (const GByteArray *plain)
{
  g_autoptr (GZlibCompressor) z = g_zlib_compressor_new (G_ZLIB_COMPRESSOR_FORMAT_GZIP, 9);
  g_autoptr (GOutputStream) mem = g_memory_output_stream_new_resizable ();
  g_autoptr (GOutputStream) out = g_converter_output_stream_new (mem, G_CONVERTER (z));
  g_autoptr (GError) error = NULL;
  gsize written;
  g_assert_true (g_output_stream_write_all (out, plain->data, plain->len, &written, NULL, &error));
  g_assert_no_error (error);
  g_assert_true (g_output_stream_close (out, NULL, &error));
  g_assert_no_error (error);
  GMemoryOutputStream *m = G_MEMORY_OUTPUT_STREAM (mem);
  GByteArray *a = g_byte_array_new ();
  g_byte_array_append (a, g_memory_output_stream_get_data (m),
                       g_memory_output_stream_get_data_size (m));
  return a;
}

static char *
write_file (TuTempDir *fx, const char *name, const GByteArray *bytes)
{
  char *path = tu_temp_path (fx, name);
  g_autoptr (GError) error = NULL;
  g_file_set_contents (path, (const char *) bytes->data, bytes->len, &error);
  g_assert_no_error (error);
  return path;
}

/* Writes the standard fixture (images and labels), gzipped or not. */
static void
write_fixture (TuTempDir *fx, const char *images_name, const char *labels_name,
               gboolean gzip, char **images_path, char **labels_path)
{
  g_autoptr (GByteArray) img = idx_images_bytes (0x00000803, N_IMAGES, IMG_H, IMG_W, 0);
  g_autoptr (GByteArray) lab = idx_labels_bytes (fixture_labels, N_IMAGES, N_IMAGES);
  if (gzip)
    {
      g_autoptr (GByteArray) zi = gzip_bytes (img);
      g_autoptr (GByteArray) zl = gzip_bytes (lab);
      *images_path = write_file (fx, images_name, zi);
      *labels_path = write_file (fx, labels_name, zl);
    }
  else
    {
      *images_path = write_file (fx, images_name, img);
      *labels_path = write_file (fx, labels_name, lab);
    }
}

static void
assert_fixture (const StDataset *ds)
{
  g_assert_nonnull (ds);
  g_assert_cmpint (ds->n, ==, N_IMAGES);
  g_assert_cmpint (ds->x->shape.n, ==, N_IMAGES);
  g_assert_cmpint (ds->x->shape.c, ==, 1);
  g_assert_cmpint (ds->x->shape.h, ==, IMG_H);
  g_assert_cmpint (ds->x->shape.w, ==, IMG_W);
  for (gsize i = 0; i < N_IMAGES * IMG_H * IMG_W; i++)
    g_assert_cmpfloat (ds->x->data[i], ==, (float) fixture_pixel (i) / 255.0f);
  for (int i = 0; i < N_IMAGES; i++)
    g_assert_cmpint (ds->labels[i], ==, fixture_labels[i]);
  g_assert_cmpint (ds->n_classes, ==, 8);
  g_assert_null (ds->class_names);
  g_assert_cmpuint (ds->n_skipped, ==, 0);
}

/* ---- IDX tests ------------------------------------------------------------- */

static void
test_idx_plain (TuTempDir *fx, gconstpointer data)
{
  g_autofree char *images = NULL, *labels = NULL;
  write_fixture (fx, "images", "labels", FALSE, &images, &labels);
  g_autoptr (GError) error = NULL;
  g_autoptr (StDataset) ds = st_dataset_load_idx (images, labels, &error);
  g_assert_no_error (error);
  assert_fixture (ds);
}

static void
test_idx_gzip (TuTempDir *fx, gconstpointer data)
{
  /* Detected by the magic, not the name: neither file says .gz. */
  g_autofree char *images = NULL, *labels = NULL;
  write_fixture (fx, "images.idx", "labels.idx", TRUE, &images, &labels);
  g_autoptr (GError) error = NULL;
  g_autoptr (StDataset) ds = st_dataset_load_idx (images, labels, &error);
  g_assert_no_error (error);
  assert_fixture (ds);
}

static void
test_idx_dir (TuTempDir *fx, gconstpointer data)
{
  g_autofree char *a = NULL, *b = NULL, *c = NULL, *d = NULL;
  write_fixture (fx, "train-images-idx3-ubyte", "train-labels-idx1-ubyte", FALSE, &a, &b);
  write_fixture (fx, "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz", TRUE, &c, &d);
  for (int test_set = 0; test_set < 2; test_set++)
    {
      g_autoptr (GError) error = NULL;
      g_autoptr (StDataset) ds = st_dataset_load_idx_dir (fx->dir, test_set, &error);
      g_assert_no_error (error);
      assert_fixture (ds);
    }
}

/* Kaggle's copies name the files train-images.idx3-ubyte: such a folder is
 * an IDX set for st_dataset_is_idx_dir as for st_dataset_load_idx_dir,
 * and st_dataset_prepare reads it as one, not as class folders. */
static void
test_idx_dir_dotted (TuTempDir *fx, gconstpointer data)
{
  g_assert_false (st_dataset_is_idx_dir (fx->dir));
  g_autofree char *images = NULL, *labels = NULL;
  write_fixture (fx, "train-images.idx3-ubyte", "train-labels.idx1-ubyte", FALSE, &images,
                 &labels);
  g_assert_true (st_dataset_is_idx_dir (fx->dir));

  g_autofree char *ini = tu_temp_path (fx, "flat.ini");
  static const char text[] = "[pipeline]\ninput=1x3x4\n[flat]\ntype=flatten\n";
  tu_write_bytes (ini, text, sizeof text - 1);
  StRegistry *reg = st_registry_new (NULL);
  g_autoptr (GError) error = NULL;
  StPipeline *p = st_pipeline_load (reg, ini, &error);
  g_assert_no_error (error);
  g_autoptr (StDataset) ds = st_dataset_prepare (p, fx->dir, FALSE, 0, 1, 0, NULL, NULL, &error);
  g_assert_no_error (error);
  assert_fixture (ds);
  g_autoptr (StDataset) few = st_dataset_prepare (p, fx->dir, FALSE, 2, 1, 0, NULL, NULL, &error);
  g_assert_no_error (error);
  g_assert_cmpint (few->n, ==, 2);
  st_pipeline_free (p);
  st_registry_free (reg);
}

/* Loads images/labels and checks the error: code ST_ERROR_DATA (unless
 * code says otherwise), message starting with path and containing every
 * fragment. */
static void
expect_error (const char *images, const char *labels, int code, const char *path,
              const char *const *fragments)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (StDataset) ds = st_dataset_load_idx (images, labels, &error);
  g_assert_null (ds);
  g_assert_nonnull (error);
  g_test_message ("%s", error->message);
  g_assert_error (error, ST_ERROR, code);
  g_assert_true (g_str_has_prefix (error->message, path));
  g_assert_cmpint (error->message[strlen (path)], ==, ':');
  g_assert_null (strchr (error->message, '\n'));
  for (int i = 0; fragments[i]; i++)
    if (!strstr (error->message, fragments[i]))
      g_error ("message '%s' lacks '%s'", error->message, fragments[i]);
}

#define FRAGMENTS(...) ((const char *const[]) { __VA_ARGS__, NULL })

static void
test_idx_wrong_magic (TuTempDir *fx, gconstpointer data)
{
  g_autofree char *images = NULL, *labels = NULL;
  write_fixture (fx, "images", "labels", FALSE, &images, &labels);

  /* Each kind of file given for the other: named as such. */
  expect_error (labels, labels, ST_ERROR_DATA, labels,
                FRAGMENTS ("not an IDX image file (magic 0x00000801, expected 0x00000803; "
                           "this is an IDX labels file)"));
  expect_error (images, images, ST_ERROR_DATA, images,
                FRAGMENTS ("not an IDX labels file (magic 0x00000803, expected 0x00000801; "
                           "this is an IDX image file)"));
  g_autoptr (GByteArray) junk = idx_images_bytes (0x89504e47, N_IMAGES, IMG_H, IMG_W, 0);
  g_autofree char *junk_path = write_file (fx, "junk", junk);
  expect_error (junk_path, labels, ST_ERROR_DATA, junk_path,
                FRAGMENTS ("not an IDX image file (magic 0x89504e47, expected 0x00000803)"));
  expect_error (images, junk_path, ST_ERROR_DATA, junk_path,
                FRAGMENTS ("not an IDX labels file (magic 0x89504e47, expected 0x00000801)"));

  /* A valid IDX file of floats. */
  g_autoptr (GByteArray) floats = idx_images_bytes (0x00000d03, N_IMAGES, IMG_H, IMG_W, 0);
  g_autofree char *floats_path = write_file (fx, "floats", floats);
  expect_error (floats_path, labels, ST_ERROR_DATA, floats_path,
                FRAGMENTS ("float32", "expected unsigned bytes"));

  /* Too short to hold a magic. */
  GByteArray *tiny = g_byte_array_new ();
  g_byte_array_append (tiny, (const guint8 *) "\0\0", 2);
  g_autofree char *tiny_path = write_file (fx, "tiny", tiny);
  g_byte_array_unref (tiny);
  expect_error (tiny_path, labels, ST_ERROR_DATA, tiny_path, FRAGMENTS ("only 2 bytes"));
}

static void
test_idx_truncated (TuTempDir *fx, gconstpointer data)
{
  g_autofree char *images = NULL, *labels = NULL;
  write_fixture (fx, "images", "labels", FALSE, &images, &labels);

  g_autoptr (GByteArray) cut = idx_images_bytes (0x00000803, N_IMAGES, IMG_H, IMG_W, -10);
  g_autofree char *cut_path = write_file (fx, "cut", cut);
  expect_error (cut_path, labels, ST_ERROR_DATA, cut_path,
                FRAGMENTS ("declares 5 images of 3x4 but holds only 50 bytes of the 60 needed"));

  /* The same through gzip. */
  g_autoptr (GByteArray) zcut = gzip_bytes (cut);
  g_autofree char *zcut_path = write_file (fx, "cut.gz", zcut);
  expect_error (zcut_path, labels, ST_ERROR_DATA, zcut_path,
                FRAGMENTS ("declares 5 images of 3x4 but holds only 50 bytes of the 60 needed"));

  /* A header cut in the dimensions. */
  GByteArray *head = idx_images_bytes (0x00000803, N_IMAGES, IMG_H, IMG_W, 0);
  g_byte_array_set_size (head, 10);
  g_autofree char *head_path = write_file (fx, "head", head);
  g_byte_array_unref (head);
  expect_error (head_path, labels, ST_ERROR_DATA, head_path,
                FRAGMENTS ("truncated IDX header (10 bytes, expected 16)"));

  /* Labels declaring more than they hold. */
  g_autoptr (GByteArray) lab = idx_labels_bytes (fixture_labels, 9, N_IMAGES);
  g_autofree char *lab_path = write_file (fx, "labcut", lab);
  expect_error (images, lab_path, ST_ERROR_DATA, lab_path,
                FRAGMENTS ("declares 9 labels but holds only 5 bytes of the 9 needed"));
}

static void
test_idx_absurd_header (TuTempDir *fx, gconstpointer data)
{
  g_autofree char *images = NULL, *labels = NULL;
  write_fixture (fx, "images", "labels", FALSE, &images, &labels);

  /* Refused from the header alone. */
  GByteArray *huge = g_byte_array_new ();
  tu_put_be32 (huge, 0x00000803);
  tu_put_be32 (huge, 0x7fffffff);
  tu_put_be32 (huge, 0xffffffff);
  tu_put_be32 (huge, 0xffffffff);
  g_autofree char *huge_path = write_file (fx, "huge", huge);
  g_byte_array_unref (huge);
  expect_error (huge_path, labels, ST_ERROR_DATA, huge_path,
                FRAGMENTS ("declares 2147483647 images of 4294967295x4294967295",
                           "more than strata accepts"));

  GByteArray *zero = g_byte_array_new ();
  tu_put_be32 (zero, 0x00000803);
  tu_put_be32 (zero, 3);
  tu_put_be32 (zero, 0);
  tu_put_be32 (zero, 28);
  g_autofree char *zero_path = write_file (fx, "zero", zero);
  g_byte_array_unref (zero);
  expect_error (zero_path, labels, ST_ERROR_DATA, zero_path, FRAGMENTS ("no data"));

  /* Plausible but far more than the file holds: a truncation, found
   * without allocating the 3.7 GB declared. */
  GByteArray *big = g_byte_array_new ();
  tu_put_be32 (big, 0x00000803);
  tu_put_be32 (big, 600000);
  tu_put_be32 (big, 28);
  tu_put_be32 (big, 220);
  for (int i = 0; i < 100; i++)
    tu_put_be32 (big, 0);
  g_autofree char *big_path = write_file (fx, "big", big);
  g_byte_array_unref (big);
  g_autofree guint8 *many = g_malloc0 (600000);
  g_autoptr (GByteArray) many_labels = idx_labels_bytes (many, 600000, 600000);
  g_autofree char *many_path = write_file (fx, "many-labels", many_labels);
  expect_error (big_path, many_path, ST_ERROR_DATA, big_path,
                FRAGMENTS ("declares 600000 images of 28x220 but holds only 400 bytes "
                           "of the 3696000000 needed"));
}

/* A small gzip file declaring more images than there are labels is refused
 * from the headers, before its data is inflated: the message is the count
 * mismatch, not what reading the data would find. */
static void
test_idx_counts_before_data (TuTempDir *fx, gconstpointer data)
{
  g_autofree char *images = NULL, *labels = NULL;
  write_fixture (fx, "images", "labels", FALSE, &images, &labels);
  g_autoptr (GByteArray) big = idx_images_bytes (0x00000803, 600000, 28, 28,
                                                 1000 - (gssize) 600000 * 28 * 28);
  g_autoptr (GByteArray) zbig = gzip_bytes (big);
  g_autofree char *zbig_path = write_file (fx, "big.gz", zbig);
  expect_error (zbig_path, labels, ST_ERROR_DATA, labels,
                FRAGMENTS ("labels file has 5 labels, images file has 600000 images"));
}

/* What a header declares is held against the memory limit before a byte
 * of data is read. */
static void
test_idx_memory_limit (TuTempDir *fx, gconstpointer data)
{
  g_autoptr (GByteArray) img = idx_images_bytes (0x00000803, 100, 28, 28, 0);
  g_autoptr (GByteArray) zimg = gzip_bytes (img);
  g_autofree char *images = write_file (fx, "images.gz", zimg);
  g_autofree guint8 *zeros = g_malloc0 (100);
  g_autoptr (GByteArray) lab = idx_labels_bytes (zeros, 100, 100);
  g_autofree char *labels = write_file (fx, "labels", lab);

  /* 78,400 bytes become 78,400 floats: 392,000 bytes in all. */
  st_set_memory_limit (300000);
  expect_error (images, labels, ST_ERROR_MEMORY, images,
                FRAGMENTS ("declares 100 images of 28x28", "392000 bytes",
                           "limit of 300000 bytes (--max-memory)"));
  st_set_memory_limit (400000);
  g_autoptr (GError) error = NULL;
  g_autoptr (StDataset) ds = st_dataset_load_idx (images, labels, &error);
  st_set_memory_limit (0);
  g_assert_no_error (error);
  g_assert_cmpint (ds->n, ==, 100);
}

static void
test_idx_trailing (TuTempDir *fx, gconstpointer data)
{
  g_autofree char *images = NULL, *labels = NULL;
  write_fixture (fx, "images", "labels", FALSE, &images, &labels);

  g_autoptr (GByteArray) extra = idx_images_bytes (0x00000803, N_IMAGES, IMG_H, IMG_W, 3);
  g_autofree char *extra_path = write_file (fx, "extra", extra);
  expect_error (extra_path, labels, ST_ERROR_DATA, extra_path,
                FRAGMENTS ("3 bytes of trailing data after the 60 bytes"));

  g_autoptr (GByteArray) zextra = gzip_bytes (extra);
  g_autofree char *zextra_path = write_file (fx, "extra.gz", zextra);
  expect_error (zextra_path, labels, ST_ERROR_DATA, zextra_path,
                FRAGMENTS ("3 bytes of trailing data after the 60 bytes"));

  /* A tail that inflates without end is not read to its end: the count
   * stops at 1 MiB.  (16 MiB of zeros are 16 KB of gzip.) */
  g_autoptr (GByteArray) bomb = idx_images_bytes (0x00000803, N_IMAGES, IMG_H, IMG_W, 0);
  g_byte_array_set_size (bomb, bomb->len + (16u << 20));
  g_autoptr (GByteArray) zbomb = gzip_bytes (bomb);
  g_autofree char *zbomb_path = write_file (fx, "bomb.gz", zbomb);
  expect_error (zbomb_path, labels, ST_ERROR_DATA, zbomb_path,
                FRAGMENTS ("at least 1048576 bytes of trailing data after the 60 bytes"));

  g_autoptr (GByteArray) lab = idx_labels_bytes (fixture_labels, 4, N_IMAGES);
  g_autofree char *lab_path = write_file (fx, "labextra", lab);
  expect_error (images, lab_path, ST_ERROR_DATA, lab_path,
                FRAGMENTS ("1 byte of trailing data after the 4 bytes"));
}

static void
test_idx_count_mismatch (TuTempDir *fx, gconstpointer data)
{
  g_autofree char *images = NULL, *labels = NULL;
  write_fixture (fx, "images", "labels", FALSE, &images, &labels);
  g_autoptr (GByteArray) lab = idx_labels_bytes (fixture_labels, 4, 4);
  g_autofree char *lab_path = write_file (fx, "labels4", lab);
  expect_error (images, lab_path, ST_ERROR_DATA, lab_path,
                FRAGMENTS ("labels file has 4 labels, images file has 5 images"));
}

static void
test_idx_corrupt_gzip (TuTempDir *fx, gconstpointer data)
{
  g_autofree char *images = NULL, *labels = NULL;
  write_fixture (fx, "images", "labels", FALSE, &images, &labels);
  g_autoptr (GByteArray) img = idx_images_bytes (0x00000803, N_IMAGES, IMG_H, IMG_W, 0);
  g_autoptr (GByteArray) z = gzip_bytes (img);

  /* A wrong CRC-32 in the trailer. */
  GByteArray *bad_crc = g_byte_array_new ();
  g_byte_array_append (bad_crc, z->data, z->len);
  bad_crc->data[bad_crc->len - 8] ^= 0x5a;
  g_autofree char *crc_path = write_file (fx, "crc.gz", bad_crc);
  g_byte_array_unref (bad_crc);
  expect_error (crc_path, labels, ST_ERROR_DATA, crc_path, FRAGMENTS ("corrupt gzip stream"));

  /* The stream cut in the middle. */
  GByteArray *cut = g_byte_array_new ();
  g_byte_array_append (cut, z->data, z->len / 2);
  g_autofree char *cut_path = write_file (fx, "cut.gz", cut);
  g_byte_array_unref (cut);
  expect_error (cut_path, labels, ST_ERROR_DATA, cut_path,
                FRAGMENTS ("corrupt gzip stream (it ends early)"));

  /* Garbage after a valid gzip header. */
  GByteArray *garbage = g_byte_array_new ();
  g_byte_array_append (garbage, z->data, 10);
  for (int i = 0; i < 64; i++)
    {
      guint8 v = 0xff;
      g_byte_array_append (garbage, &v, 1);
    }
  g_autofree char *garbage_path = write_file (fx, "garbage.gz", garbage);
  g_byte_array_unref (garbage);
  expect_error (garbage_path, labels, ST_ERROR_DATA, garbage_path,
                FRAGMENTS ("corrupt gzip stream"));
}

static void
test_idx_missing (TuTempDir *fx, gconstpointer data)
{
  g_autofree char *images = NULL, *labels = NULL;
  write_fixture (fx, "images", "labels", FALSE, &images, &labels);
  g_autofree char *none = tu_temp_path (fx, "none");
  expect_error (none, labels, ST_ERROR_IO, none, FRAGMENTS ("no such file"));
  expect_error (images, none, ST_ERROR_IO, none, FRAGMENTS ("no such file"));
  expect_error (fx->dir, labels, ST_ERROR_IO, fx->dir, FRAGMENTS ("is a folder"));

  /* A folder without the files: the message names what was looked for. */
  g_autoptr (GError) error = NULL;
  g_autoptr (StDataset) ds = st_dataset_load_idx_dir (fx->dir, FALSE, &error);
  g_assert_null (ds);
  g_assert_error (error, ST_ERROR, ST_ERROR_IO);
  g_test_message ("%s", error->message);
  g_assert_true (g_str_has_prefix (error->message, fx->dir));
  g_assert_nonnull (strstr (error->message, "looked for train-images-idx3-ubyte and "
                            "train-labels-idx1-ubyte, each with or without .gz"));
  g_clear_error (&error);

  /* Only the test set's labels missing. */
  g_autoptr (GByteArray) img = idx_images_bytes (0x00000803, N_IMAGES, IMG_H, IMG_W, 0);
  g_autofree char *t10k = write_file (fx, "t10k-images-idx3-ubyte", img);
  ds = st_dataset_load_idx_dir (fx->dir, TRUE, &error);
  g_assert_null (ds);
  g_assert_error (error, ST_ERROR, ST_ERROR_IO);
  g_test_message ("%s", error->message);
  g_assert_nonnull (strstr (error->message, "found t10k-images-idx3-ubyte but not "
                            "t10k-labels-idx1-ubyte (with or without .gz)"));
  g_clear_error (&error);

  g_autofree char *nowhere = tu_temp_path (fx, "nowhere");
  ds = st_dataset_load_idx_dir (nowhere, FALSE, &error);
  g_assert_null (ds);
  g_assert_error (error, ST_ERROR, ST_ERROR_IO);
  g_assert_true (g_str_has_prefix (error->message, nowhere));
}

/* Images of more than one chunk (1 MiB) are read straight into the tensor
 * while a second thread converts the chunk before, in four buffers used in
 * turn (core/idx.c): with more chunks than buffers and a last chunk that is
 * not full, every float is still byte / 255, in place, plain and gzipped. */
#define BIG_N 7001
#define BIG_SIDE 28

/* The first n images of the big fixture, and their labels. */
static void
assert_big_first (const StDataset *ds, int n)
{
  g_assert_nonnull (ds);
  g_assert_cmpint (ds->n, ==, n);
  g_assert_cmpint (ds->n_classes, ==, 10);
  g_assert_cmpint (ds->x->shape.n, ==, n);
  g_assert_cmpint (ds->x->shape.h, ==, BIG_SIDE);
  g_assert_cmpint (ds->x->shape.w, ==, BIG_SIDE);
  for (gsize i = 0; i < (gsize) n * BIG_SIDE * BIG_SIDE; i++)
    if (ds->x->data[i] != (float) fixture_pixel (i) / 255.0f)
      g_error ("pixel %" G_GSIZE_FORMAT ": %.9g, expected %.9g", i, ds->x->data[i],
               (float) fixture_pixel (i) / 255.0f);
  for (int i = 0; i < n; i++)
    g_assert_cmpint (ds->labels[i], ==, i % 10);
}

static void
assert_big (const StDataset *ds)
{
  assert_big_first (ds, BIG_N);
}

/* The big fixture's labels file: image i is of class i % 10. */
static GByteArray *
big_labels_bytes (void)
{
  g_autofree guint8 *classes = g_malloc (BIG_N);
  for (int i = 0; i < BIG_N; i++)
    classes[i] = (guint8) (i % 10);
  return idx_labels_bytes (classes, BIG_N, BIG_N);
}

static char *
write_big_labels (TuTempDir *fx)
{
  g_autoptr (GByteArray) lab = big_labels_bytes ();
  return write_file (fx, "big-labels", lab);
}

static void
test_idx_chunked (TuTempDir *fx, gconstpointer data)
{
  g_autofree char *labels = write_big_labels (fx);
  g_autoptr (GByteArray) img = idx_images_bytes (0x00000803, BIG_N, BIG_SIDE, BIG_SIDE, 0);
  g_assert_cmpuint (img->len, >, 5u << 20);
  g_autoptr (GByteArray) zimg = gzip_bytes (img);
  g_autofree char *plain = write_file (fx, "big", img);
  g_autofree char *gz = write_file (fx, "big.gz", zimg);
  for (int i = 0; i < 2; i++)
    {
      g_autoptr (GError) error = NULL;
      g_autoptr (StDataset) ds = st_dataset_load_idx (i ? gz : plain, labels, &error);
      g_assert_no_error (error);
      assert_big (ds);
    }
}

/* Only the first images kept (--limit): the same values as a whole
 * load's first ones, the classes of the whole set, plain and gzipped; the
 * rest is still read, so a fault after the kept part is still refused. */
static void
test_idx_first (TuTempDir *fx, gconstpointer data)
{
  g_autoptr (GByteArray) img = idx_images_bytes (0x00000803, BIG_N, BIG_SIDE, BIG_SIDE, 0);
  g_autoptr (GByteArray) lab = big_labels_bytes ();
  g_autoptr (GByteArray) zimg = gzip_bytes (img);
  const GByteArray *variants[] = { img, zimg };
  for (gsize v = 0; v < G_N_ELEMENTS (variants); v++)
    {
      g_autofree char *dir = g_strdup_printf ("first%" G_GSIZE_FORMAT, v);
      g_autofree char *dir_path = tu_temp_path (fx, dir);
      g_assert_cmpint (g_mkdir (dir_path, 0755), ==, 0);
      g_autofree char *images = g_build_filename (dir, "train-images-idx3-ubyte", NULL);
      g_autofree char *labels = g_build_filename (dir, "train-labels-idx1-ubyte", NULL);
      g_free (write_file (fx, images, variants[v]));
      g_free (write_file (fx, labels, lab));
      const int firsts[] = { 3, 1338, 5000, BIG_N, BIG_N + 9 };
      for (gsize i = 0; i < G_N_ELEMENTS (firsts); i++)
        {
          g_autoptr (GError) error = NULL;
          g_autoptr (StDataset) ds = st_dataset_load_idx_dir_first (dir_path, FALSE, firsts[i],
                                                                    &error);
          g_assert_no_error (error);
          assert_big_first (ds, MIN (firsts[i], BIG_N));
        }
    }
  /* Trailing data far after the kept images: refused as ever. */
  g_autoptr (GByteArray) extra = idx_images_bytes (0x00000803, BIG_N, BIG_SIDE, BIG_SIDE, 5);
  g_autofree char *extra_dir = tu_temp_path (fx, "extra-first");
  g_assert_cmpint (g_mkdir (extra_dir, 0755), ==, 0);
  g_free (write_file (fx, "extra-first/train-images-idx3-ubyte", extra));
  g_free (write_file (fx, "extra-first/train-labels-idx1-ubyte", lab));
  g_autoptr (GError) extra_error = NULL;
  g_autoptr (StDataset) none = st_dataset_load_idx_dir_first (extra_dir, FALSE, 10, &extra_error);
  g_assert_null (none);
  g_assert_error (extra_error, ST_ERROR, ST_ERROR_DATA);
  g_assert_nonnull (strstr (extra_error->message, "5 bytes of trailing data"));
}

/* The same errors as in one chunk, found in a later one or after the
 * last, with the converting thread stopped and nothing leaked. */
static void
test_idx_chunked_errors (TuTempDir *fx, gconstpointer data)
{
  g_autofree char *labels = write_big_labels (fx);
  const char *contents = "declares 7001 images of 28x28";

  /* Trailing data, plain and gzipped. */
  g_autoptr (GByteArray) extra = idx_images_bytes (0x00000803, BIG_N, BIG_SIDE, BIG_SIDE, 5);
  g_autofree char *extra_path = write_file (fx, "extra", extra);
  expect_error (extra_path, labels, ST_ERROR_DATA, extra_path,
                FRAGMENTS ("5 bytes of trailing data after the 5488784 bytes"));
  g_autoptr (GByteArray) zextra = gzip_bytes (extra);
  g_autofree char *zextra_path = write_file (fx, "extra.gz", zextra);
  expect_error (zextra_path, labels, ST_ERROR_DATA, zextra_path,
                FRAGMENTS ("5 bytes of trailing data after the 5488784 bytes"));

  /* Cut short, gzipped: first as it is (its trailer gives the short
   * size), then with the trailer's size made to agree with the header,
   * which zlib's length check then refuses at the end of the stream. */
  g_autoptr (GByteArray) cut = idx_images_bytes (0x00000803, BIG_N, BIG_SIDE, BIG_SIDE, -1000000);
  g_autoptr (GByteArray) zcut = gzip_bytes (cut);
  g_autofree char *zcut_path = write_file (fx, "cut.gz", zcut);
  expect_error (zcut_path, labels, ST_ERROR_DATA, zcut_path,
                FRAGMENTS (contents, "holds only 4488784 bytes of the 5488784 needed"));
  const guint32 isize = 16 + BIG_N * BIG_SIDE * BIG_SIDE;
  for (int i = 0; i < 4; i++)
    zcut->data[zcut->len - 4 + i] = (guint8) (isize >> (8 * i));
  g_autofree char *liar_path = write_file (fx, "liar.gz", zcut);
  expect_error (liar_path, labels, ST_ERROR_DATA, liar_path, FRAGMENTS ("corrupt gzip stream"));

  /* Whole, but a wrong CRC-32 (the trailer's size agrees), and cut in the
   * middle of the stream with the trailer kept. */
  g_autoptr (GByteArray) img = idx_images_bytes (0x00000803, BIG_N, BIG_SIDE, BIG_SIDE, 0);
  g_autoptr (GByteArray) z = gzip_bytes (img);
  z->data[z->len - 8] ^= 0x5a;
  g_autofree char *crc_path = write_file (fx, "crc.gz", z);
  expect_error (crc_path, labels, ST_ERROR_DATA, crc_path, FRAGMENTS ("corrupt gzip stream"));
  z->data[z->len - 8] ^= 0x5a;
  GByteArray *half = g_byte_array_new ();
  g_byte_array_append (half, z->data, z->len / 2);
  g_byte_array_append (half, z->data + z->len - 8, 8);
  g_autofree char *half_path = write_file (fx, "half.gz", half);
  g_byte_array_unref (half);
  expect_error (half_path, labels, ST_ERROR_DATA, half_path, FRAGMENTS ("corrupt gzip stream"));
}

/* The real thing, when the package is installed. */
static void
test_fashion_mnist (void)
{
  if (!g_file_test (FASHION_MNIST_DIR, G_FILE_TEST_IS_DIR))
    {
      g_test_skip ("dataset-fashion-mnist is not installed (" FASHION_MNIST_DIR ")");
      return;
    }
  for (int test_set = 0; test_set < 2; test_set++)
    {
      g_autoptr (GError) error = NULL;
      g_autoptr (StDataset) ds = st_dataset_load_idx_dir (FASHION_MNIST_DIR, test_set, &error);
      g_assert_no_error (error);
      int n = test_set ? 10000 : 60000;
      g_assert_cmpint (ds->n, ==, n);
      g_assert_cmpint (ds->x->shape.c, ==, 1);
      g_assert_cmpint (ds->x->shape.h, ==, 28);
      g_assert_cmpint (ds->x->shape.w, ==, 28);
      g_assert_cmpint (ds->n_classes, ==, 10);
      /* Fashion-MNIST is balanced: n / 10 of each class. */
      int counts[10] = { 0 };
      for (int i = 0; i < ds->n; i++)
        counts[ds->labels[i]]++;
      for (int c = 0; c < 10; c++)
        g_assert_cmpint (counts[c], ==, n / 10);
      double sum = 0;
      for (gsize i = 0; i < st_tensor_numel (ds->x); i++)
        sum += ds->x->data[i];
      /* The usual normalisation constant: mean 0.2860 (train), 0.2868 (test). */
      g_assert_cmpfloat_with_epsilon (sum / st_tensor_numel (ds->x), 0.2865, 0.001);
    }
}

/* ---- Image folders --------------------------------------------------------- */

#define FOLDER_H 6
#define FOLDER_W 5

/* A smooth 1x3xHxW image (so a JPEG keeps it close) of multiples of 1/255
 * (so a PNG keeps it exactly), different for each seed. */
static StTensor *
folder_image (int seed, int h, int w)
{
  StTensor *t = st_tensor_new0 (1, 3, h, w);
  for (int c = 0; c < 3; c++)
    for (int y = 0; y < h; y++)
      for (int x = 0; x < w; x++)
        t->data[(c * h + y) * w + x] = (float) MIN (seed * 20 + c * 30 + y * 4 + x * 3, 255) / 255.0f;
  return t;
}

static void
save_image (TuTempDir *fx, const char *rel, int seed, int h, int w)
{
  g_autofree char *path = tu_temp_path (fx, rel);
  g_autofree char *parent = g_path_get_dirname (path);
  g_assert_cmpint (g_mkdir_with_parents (parent, 0755), ==, 0);
  g_autoptr (StTensor) t = folder_image (seed, h, w);
  g_autoptr (GError) error = NULL;
  StImageFormat format = st_image_format_from_name (path);
  g_assert_true (st_image_save (t, path, format, 8, 95, &error));
  g_assert_no_error (error);
}

static void
save_text (TuTempDir *fx, const char *rel, const char *text)
{
  g_autofree char *path = tu_temp_path (fx, rel);
  g_autoptr (GError) error = NULL;
  g_file_set_contents (path, text, -1, &error);
  g_assert_no_error (error);
}

/* Three classes written out of order; two images each, one nested, one
 * with an upper-case extension, one JPEG; plus a damaged PNG, a text
 * file and a hidden folder, which are not samples. */
static void
write_folder (TuTempDir *fx)
{
  save_image (fx, "cat/c1.png", 5, FOLDER_H, FOLDER_W);
  save_image (fx, "ant/sub/a2.PNG", 2, FOLDER_H, FOLDER_W);
  save_image (fx, "ant/a1.png", 1, FOLDER_H, FOLDER_W);
  save_image (fx, "bee/b1.jpeg", 4, FOLDER_H, FOLDER_W);
  save_image (fx, "bee/b0.JPG", 3, FOLDER_H, FOLDER_W);
  save_text (fx, "cat/bad.png", "this is not a PNG file");
  save_text (fx, "cat/notes.txt", "ignored");
  save_image (fx, "cat/.hidden/h.png", 9, 2, 2);
}

/* Sample i of ds equals the PNG written with seed (JPEG: close). */
static void
assert_sample (const StDataset *ds, int i, int seed, gboolean exact)
{
  g_autoptr (StTensor) want = folder_image (seed, FOLDER_H, FOLDER_W);
  gsize numel = st_tensor_numel (want);
  const float *got = ds->x->data + (gsize) i * numel;
  for (gsize k = 0; k < numel; k++)
    if (exact)
      g_assert_cmpfloat (got[k], ==, want->data[k]);
    else
      g_assert_cmpfloat_with_epsilon (got[k], want->data[k], 0.06);
}

static void
load_folder_subprocess (const char *dir)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (StDataset) ds = st_dataset_load_folder (dir, NULL, NULL, NULL, NULL, 0, &error);
  g_assert_no_error (error);
  g_assert_cmpuint (ds->n_skipped, ==, 1);
}

/* A message callback: keeps each line in the GPtrArray user_data. */
static void
collect_line (const char *line, gpointer user_data)
{
  g_ptr_array_add (user_data, g_strdup (line));
}

static void
test_folder (TuTempDir *fx, gconstpointer data)
{
  write_folder (fx);
  g_autoptr (GError) error = NULL;
  g_autoptr (StDataset) ds = st_dataset_load_folder (fx->dir, NULL, NULL, NULL, NULL, 0, &error);
  g_assert_no_error (error);
  g_assert_cmpint (ds->n, ==, 5);
  g_assert_cmpuint (ds->n_skipped, ==, 1);
  g_assert_cmpint (ds->n_classes, ==, 3);
  g_assert_cmpint (g_strv_length (ds->class_names), ==, 3);
  g_assert_cmpstr (ds->class_names[0], ==, "ant");
  g_assert_cmpstr (ds->class_names[1], ==, "bee");
  g_assert_cmpstr (ds->class_names[2], ==, "cat");
  g_assert_cmpint (ds->x->shape.n, ==, 5);
  g_assert_cmpint (ds->x->shape.c, ==, 3);
  g_assert_cmpint (ds->x->shape.h, ==, FOLDER_H);
  g_assert_cmpint (ds->x->shape.w, ==, FOLDER_W);

  /* Sorted paths within each class: ant/a1.png < ant/sub/a2.PNG,
   * bee/b0.JPG < bee/b1.jpeg. */
  static const int want_labels[] = { 0, 0, 1, 1, 2 };
  static const int want_seeds[] = { 1, 2, 3, 4, 5 };
  for (int i = 0; i < 5; i++)
    {
      g_assert_cmpint (ds->labels[i], ==, want_labels[i]);
      assert_sample (ds, i, want_seeds[i], want_labels[i] != 1);
    }

  /* The damaged file is said through the callback as "path: reason",
   * alone. */
  g_autoptr (GPtrArray) lines = g_ptr_array_new_with_free_func (g_free);
  g_autoptr (StDataset) again = st_dataset_load_folder (fx->dir, NULL, NULL, collect_line, lines,
                                                        0, &error);
  g_assert_no_error (error);
  g_autofree char *bad = tu_temp_path (fx, "cat/bad.png");
  g_autofree char *prefix = g_strdup_printf ("%s: ", bad);
  g_assert_cmpuint (lines->len, ==, 1);
  g_assert_true (g_str_has_prefix (lines->pdata[0], prefix));
  g_assert_null (strchr (lines->pdata[0], '\n'));

  /* Without a callback the library writes nothing itself. */
  g_setenv ("STRATA_TEST_FOLDER", fx->dir, TRUE);
  g_test_trap_subprocess ("/folder/stderr-subprocess", 0, G_TEST_SUBPROCESS_DEFAULT);
  g_test_trap_assert_passed ();
  g_test_trap_assert_stderr ("");
  g_test_trap_assert_stdout ("");
}

/* Run only by test_folder, in a child process whose stderr it reads. */
static void
test_folder_subprocess (void)
{
  if (!g_test_subprocess ())
    {
      g_test_skip ("run by /folder/classes");
      return;
    }
  load_folder_subprocess (g_getenv ("STRATA_TEST_FOLDER"));
}

static void
test_folder_class_names (TuTempDir *fx, gconstpointer data)
{
  write_folder (fx);
  g_autoptr (GError) error = NULL;

  /* A given order, with a class that has no folder. */
  static const char *const names[] = { "cat", "dog", "bee", "ant", NULL };
  g_autoptr (StDataset) ds = st_dataset_load_folder (fx->dir, names, NULL, NULL, NULL, 0, &error);
  g_assert_no_error (error);
  g_assert_cmpint (ds->n_classes, ==, 4);
  for (int i = 0; i < 4; i++)
    g_assert_cmpstr (ds->class_names[i], ==, names[i]);
  g_assert_null (ds->class_names[4]);
  static const int want_labels[] = { 0, 2, 2, 3, 3 };
  static const int want_seeds[] = { 5, 3, 4, 1, 2 };
  g_assert_cmpint (ds->n, ==, 5);
  for (int i = 0; i < 5; i++)
    {
      g_assert_cmpint (ds->labels[i], ==, want_labels[i]);
      assert_sample (ds, i, want_seeds[i], want_labels[i] != 2);
    }

  /* A folder the list does not name. */
  static const char *const short_names[] = { "ant", "bee", NULL };
  g_autoptr (StDataset) none = st_dataset_load_folder (fx->dir, short_names, NULL, NULL, NULL, 0, &error);
  g_assert_null (none);
  g_assert_error (error, ST_ERROR, ST_ERROR_DATA);
  g_test_message ("%s", error->message);
  g_autofree char *cat = tu_temp_path (fx, "cat");
  g_assert_true (g_str_has_prefix (error->message, cat));
  g_assert_nonnull (strstr (error->message, "'cat' is not one of the 2 classes ('ant', 'bee')"));
}

/* Labels a folder cannot be named after map to a folder-safe name:
 * every bundled Fashion-MNIST class can have its folder. */
static void
test_folder_safe_names (TuTempDir *fx, gconstpointer data)
{
  g_autofree char *a = st_dataset_folder_name ("T-shirt/top");
  g_assert_cmpstr (a, ==, "T-shirt_top");
  g_autofree char *b = st_dataset_folder_name ("a:b*c?d\"e<f>g|h\\i\nj");
  g_assert_cmpstr (b, ==, "a_b_c_d_e_f_g_h_i_j");
  g_autofree char *c = st_dataset_folder_name (".hidden");
  g_assert_cmpstr (c, ==, "_.hidden");
  g_autofree char *d = st_dataset_folder_name ("");
  g_assert_cmpstr (d, ==, "_");
  g_autofree char *e = st_dataset_folder_name ("Ankle boot");
  g_assert_cmpstr (e, ==, "Ankle boot");

  save_image (fx, "T-shirt_top/t.png", 1, FOLDER_H, FOLDER_W);
  save_image (fx, "Trouser/u.png", 2, FOLDER_H, FOLDER_W);
  static const char *const names[] = { "T-shirt/top", "Trouser", NULL };
  g_autoptr (GError) error = NULL;
  g_autoptr (StDataset) ds = st_dataset_load_folder (fx->dir, names, NULL, NULL, NULL, 0, &error);
  g_assert_no_error (error);
  g_assert_cmpint (ds->n, ==, 2);
  g_assert_cmpstr (ds->class_names[0], ==, "T-shirt/top");
  g_assert_cmpint (ds->labels[0], ==, 0);
  g_assert_cmpint (ds->labels[1], ==, 1);
  assert_sample (ds, 0, 1, TRUE);

  /* Case counts after the mapping. */
  save_image (fx, "trouser/v.png", 3, FOLDER_H, FOLDER_W);
  g_autoptr (StDataset) none = st_dataset_load_folder (fx->dir, names, NULL, NULL, NULL, 0, &error);
  g_assert_null (none);
  g_assert_error (error, ST_ERROR, ST_ERROR_DATA);
  g_test_message ("%s", error->message);
  g_assert_nonnull (strstr (error->message, "folder 'trouser' is not one of the 2 classes "
                                            "('T-shirt_top', 'Trouser')"));
  g_clear_error (&error);

  /* Two labels with one folder name cannot be told apart. */
  static const char *const clash[] = { "a/b", "a_b", NULL };
  g_autoptr (StDataset) neither = st_dataset_load_folder (fx->dir, clash, NULL, NULL, NULL, 0, &error);
  g_assert_null (neither);
  g_assert_error (error, ST_ERROR, ST_ERROR_DATA);
  g_assert_nonnull (strstr (error->message, "classes 'a/b' and 'a_b' both have the folder name 'a_b'"));
}

/* Link loops inside class folders: each folder is searched once (three
 * links back up the tree made the old depth limit search 3^32 folders). */
static void
test_folder_link_loops (TuTempDir *fx, gconstpointer data)
{
  save_image (fx, "cat/c1.png", 5, FOLDER_H, FOLDER_W);
  save_image (fx, "cat/sub/c2.png", 6, FOLDER_H, FOLDER_W);
  save_image (fx, "dog/d1.png", 7, FOLDER_H, FOLDER_W);
  const char *links[][2] = { { "..", "cat/up" }, { ".", "cat/self" }, { "..", "cat/sub/up" },
                             { "../dog", "cat/dog" } };
  for (guint i = 0; i < G_N_ELEMENTS (links); i++)
    {
      g_autofree char *link = tu_temp_path (fx, links[i][1]);
      g_assert_cmpint (symlink (links[i][0], link), ==, 0);
    }
  g_autoptr (GError) error = NULL;
  g_autoptr (StDataset) ds = st_dataset_load_folder (fx->dir, NULL, NULL, NULL, NULL, 0, &error);
  g_assert_no_error (error);
  g_assert_cmpint (ds->n_classes, ==, 2);
  /* c1 and c2 once each, and d1 in its own class, not through cat/dog. */
  g_assert_cmpint (ds->n, ==, 3);
  static const int want_labels[] = { 0, 0, 1 };
  static const int want_seeds[] = { 5, 6, 7 };
  for (int i = 0; i < 3; i++)
    {
      g_assert_cmpint (ds->labels[i], ==, want_labels[i]);
      assert_sample (ds, i, want_seeds[i], TRUE);
    }
}

/* A folder's samples are held against the memory limit before the tensor
 * for all of them is allocated. */
static void
test_folder_memory_limit (TuTempDir *fx, gconstpointer data)
{
  for (int i = 0; i < 4; i++)
    {
      g_autofree char *name = g_strdup_printf ("cat/c%d.png", i);
      save_image (fx, name, i, FOLDER_H, FOLDER_W);
    }
  gsize one = (gsize) 3 * FOLDER_H * FOLDER_W * sizeof (float);
  st_set_memory_limit (4 * one - 1);
  g_autoptr (GError) error = NULL;
  g_autoptr (StDataset) ds = st_dataset_load_folder (fx->dir, NULL, NULL, NULL, NULL, 0, &error);
  g_assert_null (ds);
  g_assert_error (error, ST_ERROR, ST_ERROR_MEMORY);
  g_test_message ("%s", error->message);
  g_assert_true (g_str_has_prefix (error->message, fx->dir));
  g_assert_nonnull (strstr (error->message, "(--max-memory)"));
  g_clear_error (&error);
  st_set_memory_limit (4 * one);
  g_autoptr (StDataset) fits = st_dataset_load_folder (fx->dir, NULL, NULL, NULL, NULL, 0, &error);
  st_set_memory_limit (0);
  g_assert_no_error (error);
  g_assert_cmpint (fits->n, ==, 4);
}

typedef struct {
  int calls;
  float scale;
} ConvertData;

/* Channel 0's top-left 2x2 corner, times scale; refuses images that are
 * not RGB. */
static StTensor *
convert_corner (const StTensor *image, gpointer user_data, GError **error)
{
  ConvertData *cd = user_data;
  cd->calls++;
  if (image->shape.c != 3)
    {
      g_set_error (error, ST_ERROR, ST_ERROR_SHAPE, "expected RGB, found %d channels",
                   image->shape.c);
      return NULL;
    }
  StTensor *t = st_tensor_new0 (1, 1, 2, 2);
  for (int y = 0; y < 2; y++)
    for (int x = 0; x < 2; x++)
      t->data[y * 2 + x] = image->data[y * image->shape.w + x] * cd->scale;
  return t;
}

static void
test_folder_convert (TuTempDir *fx, gconstpointer data)
{
  write_folder (fx);
  /* Another size: fine, since convert makes every sample 1x1x2x2. */
  save_image (fx, "cat/c2.png", 6, 9, 11);
  ConvertData cd = { 0, 2.0f };
  g_autoptr (GError) error = NULL;
  g_autoptr (StDataset) ds = st_dataset_load_folder (fx->dir, NULL, convert_corner, NULL, &cd, 0, &error);
  g_assert_no_error (error);
  g_assert_cmpint (cd.calls, ==, 6);
  g_assert_cmpint (ds->n, ==, 6);
  g_assert_cmpuint (ds->n_skipped, ==, 1);
  g_assert_cmpint (ds->x->shape.c, ==, 1);
  g_assert_cmpint (ds->x->shape.h, ==, 2);
  g_assert_cmpint (ds->x->shape.w, ==, 2);
  static const int want_seeds[] = { 1, 2, 5, 6 };
  static const int rows[] = { 0, 1, 4, 5 };
  for (guint k = 0; k < G_N_ELEMENTS (rows); k++)
    {
      int w = want_seeds[k] == 6 ? 11 : FOLDER_W;
      g_autoptr (StTensor) img = folder_image (want_seeds[k], 9, w);
      for (int y = 0; y < 2; y++)
        for (int x = 0; x < 2; x++)
          g_assert_cmpfloat (ds->x->data[rows[k] * 4 + y * 2 + x], ==, img->data[y * w + x] * 2.0f);
    }

  /* A failing convert names the image. */
  g_autoptr (StTensor) gray = st_tensor_new0 (1, 1, 4, 4);
  g_autofree char *gray_path = tu_temp_path (fx, "bee/gray.png");
  g_assert_true (st_image_save (gray, gray_path, ST_FORMAT_PNG, 8, 0, &error));
  g_autoptr (StDataset) none = st_dataset_load_folder (fx->dir, NULL, convert_corner, NULL, &cd, 0, &error);
  g_assert_null (none);
  g_assert_error (error, ST_ERROR, ST_ERROR_SHAPE);
  g_test_message ("%s", error->message);
  g_autofree char *want = g_strdup_printf ("%s: expected RGB, found 1 channels", gray_path);
  g_assert_cmpstr (error->message, ==, want);
}

static void
test_folder_errors (TuTempDir *fx, gconstpointer data)
{
  g_autoptr (GError) error = NULL;

  /* No class folders. */
  g_autoptr (StDataset) ds = st_dataset_load_folder (fx->dir, NULL, NULL, NULL, NULL, 0, &error);
  g_assert_null (ds);
  g_assert_error (error, ST_ERROR, ST_ERROR_DATA);
  g_assert_true (g_str_has_prefix (error->message, fx->dir));
  g_clear_error (&error);

  /* Class folders without images. */
  save_text (fx, "readme.txt", "not a class");
  g_autofree char *a = tu_temp_path (fx, "a");
  g_assert_cmpint (g_mkdir (a, 0755), ==, 0);
  save_text (fx, "a/list.txt", "x");
  ds = st_dataset_load_folder (fx->dir, NULL, NULL, NULL, NULL, 0, &error);
  g_assert_null (ds);
  g_assert_error (error, ST_ERROR, ST_ERROR_DATA);
  g_test_message ("%s", error->message);
  g_assert_nonnull (strstr (error->message, "no images"));
  g_clear_error (&error);

  /* Only unreadable images. */
  save_text (fx, "a/x.png", "garbage");
  ds = st_dataset_load_folder (fx->dir, NULL, NULL, NULL, NULL, 0, &error);
  g_assert_null (ds);
  g_assert_error (error, ST_ERROR, ST_ERROR_DATA);
  g_test_message ("%s", error->message);
  g_assert_nonnull (strstr (error->message, "none of the 1 images found could be read"));
  g_clear_error (&error);

  /* Shapes that differ, without convert: named with both shapes. */
  save_image (fx, "a/y1.png", 1, FOLDER_H, FOLDER_W);
  save_image (fx, "b/y2.png", 2, 28, 28);
  ds = st_dataset_load_folder (fx->dir, NULL, NULL, NULL, NULL, 0, &error);
  g_assert_null (ds);
  g_assert_error (error, ST_ERROR, ST_ERROR_SHAPE);
  g_test_message ("%s", error->message);
  g_autofree char *y2 = tu_temp_path (fx, "b/y2.png");
  g_autofree char *want = g_strdup_printf ("%s: sample shape 1x3x28x28 differs from the first "
                                           "image's 1x3x6x5", y2);
  g_assert_cmpstr (error->message, ==, want);
  g_clear_error (&error);

  /* max_pixels: the large image is skipped, not fatal. */
  ds = st_dataset_load_folder (fx->dir, NULL, NULL, NULL, NULL, 100, &error);
  g_assert_no_error (error);
  g_assert_cmpint (ds->n, ==, 1);
  g_assert_cmpuint (ds->n_skipped, ==, 2);

  g_autofree char *nowhere = tu_temp_path (fx, "nowhere");
  g_autoptr (StDataset) none = st_dataset_load_folder (nowhere, NULL, NULL, NULL, NULL, 0, &error);
  g_assert_null (none);
  g_assert_error (error, ST_ERROR, ST_ERROR_IO);
  g_assert_true (g_str_has_prefix (error->message, nowhere));
}

/* ---- Split and truncate ---------------------------------------------------- */

/* n samples of 1x2x2 whose pixels all equal 10 · label + index, so any
 * sample can be traced to where it came from. */
static StDataset *
numbered_dataset (int n)
{
  StDataset *ds = g_new0 (StDataset, 1);
  ds->n = n;
  ds->n_classes = 3;
  ds->x = st_tensor_new0 (n, 1, 2, 2);
  ds->labels = g_new (int, n);
  const char *const names[] = { "a", "b", "c", NULL };
  ds->class_names = g_strdupv ((char **) names);
  for (int i = 0; i < n; i++)
    {
      ds->labels[i] = i % 3;
      for (int k = 0; k < 4; k++)
        ds->x->data[i * 4 + k] = (float) (1000 * ds->labels[i] + i);
    }
  return ds;
}

/* Each sample's data agrees with its label; returns the original indices
 * in a bitmask. */
static guint64
check_consistent (const StDataset *ds)
{
  guint64 seen = 0;
  int last = -1;
  for (int i = 0; i < ds->n; i++)
    {
      int v = (int) ds->x->data[i * 4];
      int label = v / 1000, index = v % 1000;
      g_assert_cmpint (ds->labels[i], ==, label);
      g_assert_cmpint (label, ==, index % 3);
      for (int k = 1; k < 4; k++)
        g_assert_cmpfloat (ds->x->data[i * 4 + k], ==, (float) v);
      g_assert_cmpint (index, >, last);           /* original order kept */
      last = index;
      seen |= G_GUINT64_CONSTANT (1) << index;
    }
  return seen;
}

static void
test_split (void)
{
  guint64 first_moved = 0;
  gboolean differs = FALSE;
  for (guint64 seed = 1; seed <= 6; seed++)
    {
      g_autoptr (StDataset) ds = numbered_dataset (40);
      g_autoptr (StDataset) val = st_dataset_split (ds, 0.25, seed);
      g_assert_cmpint (val->n, ==, 10);
      g_assert_cmpint (ds->n, ==, 30);
      g_assert_cmpint (val->x->shape.n, ==, 10);
      g_assert_cmpint (ds->x->shape.n, ==, 30);
      g_assert_cmpint (val->n_classes, ==, 3);
      g_assert_cmpstr (val->class_names[2], ==, "c");
      guint64 moved = check_consistent (val), kept = check_consistent (ds);
      g_assert_cmpuint (moved & kept, ==, 0);
      g_assert_cmpuint (moved | kept, ==, (G_GUINT64_CONSTANT (1) << 40) - 1);

      /* Deterministic: the same seed moves the same samples. */
      g_autoptr (StDataset) ds2 = numbered_dataset (40);
      g_autoptr (StDataset) val2 = st_dataset_split (ds2, 0.25, seed);
      g_assert_cmpuint (check_consistent (val2), ==, moved);
      if (seed == 1)
        first_moved = moved;
      else if (moved != first_moved)
        differs = TRUE;
      /* Not simply the first or last samples. */
      g_assert_cmpuint (moved, !=, (G_GUINT64_CONSTANT (1) << 10) - 1);
    }
  g_assert_true (differs);

  /* Edges: nothing moved, everything moved, a small set keeps both sides. */
  g_autoptr (StDataset) a = numbered_dataset (5);
  g_autoptr (StDataset) none = st_dataset_split (a, 0.0, 1);
  g_assert_cmpint (none->n, ==, 0);
  g_assert_null (none->x);
  g_assert_cmpint (a->n, ==, 5);
  g_autoptr (StDataset) all = st_dataset_split (a, 1.0, 1);
  g_assert_cmpint (all->n, ==, 5);
  g_assert_cmpint (a->n, ==, 0);
  g_assert_null (a->x);
  g_assert_cmpuint (check_consistent (all), ==, 0x1f);
  g_autoptr (StDataset) b = numbered_dataset (3);
  g_autoptr (StDataset) one = st_dataset_split (b, 0.01, 7);
  g_assert_cmpint (one->n, ==, 1);
  g_assert_cmpint (b->n, ==, 2);
}

static void
test_truncate (void)
{
  g_autoptr (StDataset) ds = numbered_dataset (10);
  st_dataset_truncate (ds, 20);
  g_assert_cmpint (ds->n, ==, 10);
  st_dataset_truncate (ds, 4);
  g_assert_cmpint (ds->n, ==, 4);
  g_assert_cmpint (ds->x->shape.n, ==, 4);
  g_assert_cmpuint (check_consistent (ds), ==, 0xf);
  g_assert_cmpint (ds->n_classes, ==, 3);
  st_dataset_truncate (ds, 0);
  g_assert_cmpint (ds->n, ==, 0);
  g_assert_null (ds->x);
  g_assert_null (ds->labels);
  st_dataset_free (NULL);
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);

#define ADD(path, fn) g_test_add (path, TuTempDir, NULL, temp_dir_setup, fn, tu_temp_dir_teardown)
  ADD ("/idx/plain", test_idx_plain);
  ADD ("/idx/gzip", test_idx_gzip);
  ADD ("/idx/dir", test_idx_dir);
  ADD ("/idx/dir-dotted", test_idx_dir_dotted);
  ADD ("/idx/wrong-magic", test_idx_wrong_magic);
  ADD ("/idx/truncated", test_idx_truncated);
  ADD ("/idx/absurd-header", test_idx_absurd_header);
  ADD ("/idx/trailing", test_idx_trailing);
  ADD ("/idx/count-mismatch", test_idx_count_mismatch);
  ADD ("/idx/corrupt-gzip", test_idx_corrupt_gzip);
  ADD ("/idx/missing", test_idx_missing);
  ADD ("/idx/counts-before-data", test_idx_counts_before_data);
  ADD ("/idx/memory-limit", test_idx_memory_limit);
  ADD ("/idx/chunked", test_idx_chunked);
  ADD ("/idx/chunked-errors", test_idx_chunked_errors);
  ADD ("/idx/first", test_idx_first);
  g_test_add_func ("/idx/fashion-mnist", test_fashion_mnist);
  ADD ("/folder/classes", test_folder);
  g_test_add_func ("/folder/stderr-subprocess", test_folder_subprocess);
  ADD ("/folder/class-names", test_folder_class_names);
  ADD ("/folder/convert", test_folder_convert);
  ADD ("/folder/errors", test_folder_errors);
  ADD ("/folder/safe-names", test_folder_safe_names);
  ADD ("/folder/link-loops", test_folder_link_loops);
  ADD ("/folder/memory-limit", test_folder_memory_limit);
  g_test_add_func ("/split", test_split);
  g_test_add_func ("/truncate", test_truncate);
#undef ADD

  return g_test_run ();
}
