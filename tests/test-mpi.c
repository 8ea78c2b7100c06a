/* strata as several MPI ranks on this machine (loopback, shared memory):
 * folder runs, evaluation and training give what one process gives.
 * Skipped where mpirun is missing or strata was built without MPI. */
#include "dist.h"
#include "image.h"
#include "testutil.h"

#include <glib/gstdio.h>
#include <json-glib/json-glib.h>
#include <string.h>

static const char *exe;
static char *mpirun;

typedef struct {
  char *dir;
} Fixture;

static void
fixture_set_up (Fixture *f, gconstpointer unused)
{
  f->dir = tu_make_tmpdir ("strata-mpi-XXXXXX");
}

static void
fixture_tear_down (Fixture *f, gconstpointer unused)
{
  tu_remove_tree (f->dir);
  g_free (f->dir);
}

/* Whether the ranks can be started here; skips the test when not. */
static gboolean
can_run (void)
{
  if (!st_dist_built ())
    {
      g_test_skip ("strata was built without MPI (meson option mpi)");
      return FALSE;
    }
  if (!mpirun)
    {
      g_test_skip ("mpirun not found (Debian: openmpi-bin)");
      return FALSE;
    }
  return TRUE;
}

/* strata with args (NULL-terminated) as n ranks of one job: shared
 * memory and loopback only, more ranks than cores allowed. */
static TuResult
launch (int n, const char *const *args, gboolean job_fails)
{
  g_autofree char *ranks = g_strdup_printf ("%d", n);
  g_autoptr (GPtrArray) argv = g_ptr_array_new ();
  const char *const launch[] = { "-np", ranks, "--oversubscribe", "--mca", "btl", "self,vader",
                                 exe };
  for (guint i = 0; i < G_N_ELEMENTS (launch); i++)
    g_ptr_array_add (argv, (char *) launch[i]);
  for (int i = 0; args[i]; i++)
    g_ptr_array_add (argv, (char *) args[i]);
  g_ptr_array_add (argv, NULL);
  /* Under AddressSanitizer: Open MPI's memory hooks and the components
   * it unloads at the end leave allocations LeakSanitizer can neither
   * name nor suppress, so the ranks skip the leak check; the runs
   * without mpirun here and in the other tests keep it. */
  g_autofree char *asan = g_strdup (g_getenv ("ASAN_OPTIONS"));
  g_autofree char *ranks_asan = g_strdup_printf ("%s%sdetect_leaks=0", asan ? asan : "",
                                                 asan && *asan ? ":" : "");
  g_setenv ("ASAN_OPTIONS", ranks_asan, TRUE);
  TuResult r = job_fails ? tu_run_argv_may_die (mpirun, (const char *const *) argv->pdata)
                         : tu_run_argv (mpirun, (const char *const *) argv->pdata);
  if (asan)
    g_setenv ("ASAN_OPTIONS", asan, TRUE);
  else
    g_unsetenv ("ASAN_OPTIONS");
  return r;
}

static TuResult
run_ranks (int n, const char *const *args)
{
  return launch (n, args, FALSE);
}

#define RUN(...) tu_run_argv (exe, (const char *const[]) { __VA_ARGS__, NULL })
#define RANKS(n, ...) run_ranks (n, (const char *const[]) { __VA_ARGS__, NULL })
/* A job that a rank's failure ends: mpirun may itself die by a signal
 * while it tears such a job down, which says nothing of strata (its
 * output then may be cut short); the files are checked all the same. */
#define FAILING_RANKS(n, ...) launch (n, (const char *const[]) { __VA_ARGS__, NULL }, TRUE)

/* How many times needle occurs in text. */
static int
count_of (const char *text, const char *needle)
{
  int n = 0;
  for (const char *at = strstr (text, needle); at; at = strstr (at + 1, needle))
    n++;
  return n;
}

/* An image of w x h with channels channels, a pattern from seed. */
static void
write_image (const char *path, int w, int h, int channels, int seed, StImageFormat format)
{
  g_autoptr (StTensor) t = st_tensor_new0 (1, channels, h, w);
  for (gsize i = 0; i < st_tensor_numel (t); i++)
    t->data[i] = (float) ((i * 7 + (gsize) seed * 13) % 256) / 255.0f;
  g_autoptr (GError) error = NULL;
  g_assert_true (st_image_save (t, path, format, 8, 90, &error));
  g_assert_no_error (error);
}

/* A folder tree of images of several sizes and formats, and one file
 * that is no image. */
static char *
make_inputs (Fixture *f)
{
  char *in = g_build_filename (f->dir, "in", NULL);
  g_autofree char *sub = g_build_filename (in, "sub", "deeper", NULL);
  g_assert_cmpint (g_mkdir_with_parents (sub, 0755), ==, 0);
  for (int i = 0; i < 11; i++)
    {
      g_autofree char *name = g_strdup_printf ("%s/%s%02d.%s", i % 3 ? in : sub,
                                               i % 2 ? "photo" : "scan", i,
                                               i % 4 == 1 ? "jpg" : "png");
      write_image (name, 8 + 37 * i, 5 + 23 * (i % 5), i % 2 ? 3 : 1, i,
                   i % 4 == 1 ? ST_FORMAT_JPEG : ST_FORMAT_PNG);
    }
  g_autofree char *notes = g_build_filename (in, "notes.txt", NULL);
  g_assert_true (g_file_set_contents (notes, "not an image", -1, NULL));
  return in;
}

/* Every file under dir, as "relative path\tcontent digest" lines, sorted. */
static void
list_tree (const char *root, const char *rel, GPtrArray *lines)
{
  g_autofree char *path = rel ? g_build_filename (root, rel, NULL) : g_strdup (root);
  g_autoptr (GDir) dir = g_dir_open (path, 0, NULL);
  g_assert_nonnull (dir);
  for (const char *name; (name = g_dir_read_name (dir));)
    {
      g_autofree char *child_rel = rel ? g_build_filename (rel, name, NULL) : g_strdup (name);
      g_autofree char *child = g_build_filename (root, child_rel, NULL);
      if (g_file_test (child, G_FILE_TEST_IS_DIR))
        {
          list_tree (root, child_rel, lines);
          continue;
        }
      g_autofree char *bytes = NULL;
      gsize len = 0;
      g_assert_true (g_file_get_contents (child, &bytes, &len, NULL));
      g_autofree char *sum = g_compute_checksum_for_data (G_CHECKSUM_SHA256, (guint8 *) bytes, len);
      g_ptr_array_add (lines, g_strdup_printf ("%s\t%s", child_rel, sum));
    }
}

static int
compare_lines (gconstpointer a, gconstpointer b)
{
  return strcmp (*(const char *const *) a, *(const char *const *) b);
}

static char *
tree_digest (const char *root)
{
  g_autoptr (GPtrArray) lines = g_ptr_array_new_with_free_func (g_free);
  list_tree (root, NULL, lines);
  g_ptr_array_sort (lines, compare_lines);
  g_ptr_array_add (lines, NULL);
  return g_strjoinv ("\n", (char **) lines->pdata);
}

/* A folder run writes the files and bytes one process writes, with 2 and
 * with 3 ranks (more than the images of some sizes divide evenly), and
 * rank 0 alone says the summary. */
static void
test_run_folder (Fixture *f, gconstpointer unused)
{
  if (!can_run ())
    return;
  g_autofree char *in = make_inputs (f);
  g_autofree char *alone = g_build_filename (f->dir, "alone", NULL);
  TuResult r = RUN ("run", "sharpen", in, "-o", alone, "-j", "1");
  g_assert_cmpint (r.status, ==, 0);
  g_assert_nonnull (strstr (r.err, "11 written, 0 skipped, 0 failed, 0 interrupted, 1 ignored"));
  tu_result_clear (&r);
  g_autofree char *expected = tree_digest (alone);
  g_assert_cmpint (count_of (expected, "\n"), ==, 10);

  for (int n = 2; n <= 3; n++)
    {
      g_autofree char *name = g_strdup_printf ("ranks%d", n);
      g_autofree char *out = g_build_filename (f->dir, name, NULL);
      r = RANKS (n, "run", "sharpen", in, "-o", out, "-j", "1");
      g_assert_cmpint (r.status, ==, 0);
      g_assert_cmpint (count_of (r.err, "11 written, 0 skipped, 0 failed, 0 interrupted, "
                                        "1 ignored"), ==, 1);
      tu_result_clear (&r);
      g_autofree char *got = tree_digest (out);
      g_assert_cmpstr (got, ==, expected);

      /* Again: every output is there, and every rank skips its share. */
      r = RANKS (n, "run", "sharpen", in, "-o", out, "-j", "1");
      g_assert_cmpint (r.status, ==, 0);
      g_assert_cmpint (count_of (r.err, "0 written, 11 skipped"), ==, 1);
      tu_result_clear (&r);
    }
}

/* An image no rank can read is said once and counted; the others are
 * written; the exit status is 1 as alone. */
static void
test_run_failed_image (Fixture *f, gconstpointer unused)
{
  if (!can_run ())
    return;
  g_autofree char *in = make_inputs (f);
  g_autofree char *bad = g_build_filename (in, "broken.png", NULL);
  g_assert_true (g_file_set_contents (bad, "\x89PNG\r\n\x1a\n truncated", -1, NULL));
  g_autofree char *out = g_build_filename (f->dir, "out", NULL);
  TuResult r = RANKS (3, "run", "sharpen", in, "-o", out, "-j", "1");
  g_assert_cmpint (r.status, ==, 1);
  g_assert_cmpint (count_of (r.err, "broken.png: "), ==, 1);
  g_assert_cmpint (count_of (r.err, "11 written, 0 skipped, 1 failed"), ==, 1);
  tu_result_clear (&r);
  g_autofree char *written = g_build_filename (out, "photo01.jpg", NULL);
  g_assert_true (g_file_test (written, G_FILE_TEST_IS_REGULAR));
  g_autofree char *none = g_build_filename (out, "broken.png", NULL);
  g_assert_false (g_file_test (none, G_FILE_TEST_EXISTS));
}

/* Rank 0's plan refuses outputs onto inputs: said once, nothing written
 * by any rank, status 2; standard input is refused with several ranks. */
static void
test_run_refused (Fixture *f, gconstpointer unused)
{
  if (!can_run ())
    return;
  g_autofree char *in = make_inputs (f);
  g_autofree char *before = tree_digest (in);
  TuResult r = RANKS (2, "run", "sharpen", in, "-o", in, "--overwrite", "-j", "1");
  g_assert_cmpint (r.status, ==, 2);
  g_assert_cmpint (count_of (r.err, "strata: "), ==, 1);
  tu_result_clear (&r);
  g_autofree char *after = tree_digest (in);
  g_assert_cmpstr (after, ==, before);

  g_autofree char *out = g_build_filename (f->dir, "out.png", NULL);
  r = RANKS (2, "run", "sharpen", "-", "-o", out);
  g_assert_cmpint (r.status, ==, 2);
  g_assert_cmpint (count_of (r.err, "standard input cannot be shared among 2 MPI ranks"), ==, 1);
  tu_result_clear (&r);
  g_assert_false (g_file_test (out, G_FILE_TEST_EXISTS));
}

/* A classifier's predictions: one table, in input order, the bytes one
 * process writes. */
static void
test_run_predictions (Fixture *f, gconstpointer unused)
{
  if (!can_run ())
    return;
  g_autofree char *in = make_inputs (f);
  g_autofree char *alone = g_build_filename (f->dir, "alone.csv", NULL);
  TuResult r = RUN ("run", "fashion-mnist-photo", in, "-o", alone, "-j", "1");
  g_assert_cmpint (r.status, ==, 0);
  tu_result_clear (&r);
  g_autofree char *expected = NULL;
  g_assert_true (g_file_get_contents (alone, &expected, NULL, NULL));
  g_assert_cmpint (count_of (expected, "\n"), ==, 12);
  for (int n = 2; n <= 3; n++)
    {
      g_autofree char *name = g_strdup_printf ("ranks%d.csv", n);
      g_autofree char *path = g_build_filename (f->dir, name, NULL);
      r = RANKS (n, "run", "fashion-mnist-photo", in, "-o", path, "-j", "1");
      g_assert_cmpint (r.status, ==, 0);
      tu_result_clear (&r);
      g_autofree char *got = NULL;
      g_assert_true (g_file_get_contents (path, &got, NULL, NULL));
      g_assert_cmpstr (got, ==, expected);
    }
  /* To standard output: rank 0 alone writes it. */
  r = RANKS (3, "run", "fashion-mnist-photo", in, "-j", "1");
  g_assert_cmpint (r.status, ==, 0);
  g_assert_cmpstr (r.out, ==, expected);
  tu_result_clear (&r);
}

static const char *tiny_pipeline =
  "[pipeline]\ninput=1x8x8\nlabels=left;right\n"
  "[conv]\ntype=conv2d\nfilters=4\nsize=3\nactivation=relu\n"
  "[norm]\ntype=batchnorm\n"
  "[drop]\ntype=dropout\nrate=0.1\n"
  "[fc]\ntype=dense\nunits=2\n"
  "[prob]\ntype=softmax\n";

/* The tiny pipeline and a synthetic IDX set (100 training images, 103
 * test images: batches that the ranks do not divide evenly). */
static void
make_training_set (Fixture *f, char **ini, char **data)
{
  *data = g_build_filename (f->dir, "data", NULL);
  g_assert_cmpint (g_mkdir (*data, 0755), ==, 0);
  tu_write_synthetic_idx (*data, "train", 100, 1);
  tu_write_synthetic_idx (*data, "t10k", 103, 2);
  *ini = g_build_filename (f->dir, "tiny.ini", NULL);
  g_assert_true (g_file_set_contents (*ini, tiny_pipeline, -1, NULL));
}

/* Accuracy, precision, recall, the confusion matrix and the loss are
 * those of one process, to the last digit, with 2 and 3 ranks. */
static void
test_eval (Fixture *f, gconstpointer unused)
{
  if (!can_run ())
    return;
  g_autofree char *ini = NULL, *data = NULL;
  make_training_set (f, &ini, &data);
  TuResult alone = RUN ("eval", ini, "--data", data, "--random-weights", "--batch", "10",
                        "--format", "json", "-j", "1");
  g_assert_cmpint (alone.status, ==, 0);
  g_assert_nonnull (strstr (alone.out, "\"images\":103"));
  g_assert_nonnull (strstr (alone.out, "\"confusion\""));
  for (int n = 2; n <= 3; n++)
    {
      TuResult r = RANKS (n, "eval", ini, "--data", data, "--random-weights", "--batch", "10",
                          "--format", "json", "-j", "1");
      g_assert_cmpint (r.status, ==, 0);
      g_assert_cmpstr (r.out, ==, alone.out);
      tu_result_clear (&r);
    }
  tu_result_clear (&alone);
}

static char *
file_digest (const char *path)
{
  g_autofree char *bytes = NULL;
  gsize len = 0;
  g_assert_true (g_file_get_contents (path, &bytes, &len, NULL));
  return g_compute_checksum_for_data (G_CHECKSUM_SHA256, (guint8 *) bytes, len);
}

/* Trains the tiny pipeline on n ranks (0: without mpirun) into out with
 * extra arguments (NULL-terminated), the weights compared across the ranks
 * every epoch; asserts success. */
static void
train_ranks (int n, const char *ini, const char *data, const char *out, const char *epochs,
             const char *resume)
{
  const char *args[] = { "train", ini, "--data", data, "-o", out, "--epochs", epochs,
                         "--batch", "7", "--seed", "5", "-j", "1",
                         resume ? "--resume" : NULL, resume, NULL };
  TuResult r = n ? run_ranks (n, args) : tu_run_argv (exe, args);
  g_assert_cmpint (r.status, ==, 0);
  /* Rank 0 alone says what it wrote. */
  g_assert_cmpint (count_of (r.err, "wrote "), ==, 1);
  tu_result_clear (&r);
}

/* -np 1 gives the weights of a run without mpirun; 2 and 3 ranks (the
 * last batch of 2 leaves the third rank without samples) keep the weights
 * identical on every rank each epoch, and give the same weights again
 * when run again. */
static void
test_train (Fixture *f, gconstpointer unused)
{
  if (!can_run ())
    return;
  g_autofree char *ini = NULL, *data = NULL;
  make_training_set (f, &ini, &data);
  g_autofree char *alone = g_build_filename (f->dir, "alone.safetensors", NULL);
  g_autofree char *one = g_build_filename (f->dir, "one.safetensors", NULL);
  train_ranks (0, ini, data, alone, "2", NULL);
  train_ranks (1, ini, data, one, "2", NULL);
  g_autofree char *alone_sum = file_digest (alone);
  g_autofree char *one_sum = file_digest (one);
  g_assert_cmpstr (one_sum, ==, alone_sum);

  for (int n = 2; n <= 3; n++)
    {
      g_autofree char *first = g_strdup_printf ("%s/ranks%d-a.safetensors", f->dir, n);
      g_autofree char *second = g_strdup_printf ("%s/ranks%d-b.safetensors", f->dir, n);
      train_ranks (n, ini, data, first, "2", NULL);
      train_ranks (n, ini, data, second, "2", NULL);
      g_autofree char *first_sum = file_digest (first);
      g_autofree char *second_sum = file_digest (second);
      g_assert_cmpstr (first_sum, ==, second_sum);
      /* The log has one line per epoch: rank 0 alone appended to it. */
      g_autofree char *log = g_strdup_printf ("%s/ranks%d-a.csv", f->dir, n);
      g_autofree char *text = NULL;
      g_assert_true (g_file_get_contents (log, &text, NULL, NULL));
      g_assert_cmpint (count_of (text, "\n"), ==, 3);
    }
}

/* Trains the tiny pipeline for 2 epochs on n ranks with the gradients
 * summed in buckets of kb kilobytes (STRATA_BUCKET_KB) into out; returns
 * how many sums of floats rank 0 started (STRATA_DIST_STATS). */
static int
train_in_buckets (int n, const char *kb, const char *ini, const char *data, const char *out)
{
  g_setenv ("STRATA_BUCKET_KB", kb, TRUE);
  g_setenv ("STRATA_DIST_STATS", "1", TRUE);
  TuResult r = RANKS (n, "train", ini, "--data", data, "-o", out, "--epochs", "2", "--batch", "7",
                      "--seed", "5", "-j", "1");
  g_unsetenv ("STRATA_BUCKET_KB");
  g_unsetenv ("STRATA_DIST_STATS");
  g_assert_cmpint (r.status, ==, 0);
  g_autofree char *prefix = g_strdup_printf ("rank 0 of %d: ", n);
  const char *line = strstr (r.err, prefix);
  g_assert_nonnull (line);
  int sums = (int) g_ascii_strtoll (line + strlen (prefix), NULL, 10);
  tu_result_clear (&r);
  return sums;
}

/* The gradients summed in buckets started during backward give, bit for
 * bit, the weights of one sum after backward, on 2 and 3 ranks.  The tiny
 * pipeline's 338 gradients in buckets of 1 kB are two sums a step (the
 * dense stage's 290, larger than a bucket, started before backward goes
 * on to the normalisation and the convolution; their 48): 2 epochs of 15
 * steps. */
static void
test_train_buckets (Fixture *f, gconstpointer unused)
{
  if (!can_run ())
    return;
  g_autofree char *ini = NULL, *data = NULL;
  make_training_set (f, &ini, &data);
  for (int n = 2; n <= 3; n++)
    {
      g_autofree char *whole = g_strdup_printf ("%s/whole%d.safetensors", f->dir, n);
      g_autofree char *buckets = g_strdup_printf ("%s/buckets%d.safetensors", f->dir, n);
      g_assert_cmpint (train_in_buckets (n, "0", ini, data, whole), ==, 30);
      g_assert_cmpint (train_in_buckets (n, "1", ini, data, buckets), ==, 60);
      g_autofree char *whole_sum = file_digest (whole);
      g_autofree char *buckets_sum = file_digest (buckets);
      g_assert_cmpstr (buckets_sum, ==, whole_sum);
    }
}

/* A rank killed in the middle of a run: mpirun ends the job and says
 * which rank died and how; every output left is complete (the bytes a
 * single run writes) and the dead rank's image has none. */
static void
test_run_killed_rank (Fixture *f, gconstpointer unused)
{
  if (!can_run ())
    return;
  const char *plugin = g_getenv ("STRATA_TEST_PLUGIN_MPI_DIE");
  g_assert_nonnull (plugin);
  g_autofree char *plugins = g_build_filename (f->dir, "plugins", NULL);
  g_assert_cmpint (g_mkdir (plugins, 0755), ==, 0);
  g_autofree char *copy = g_build_filename (plugins, "mpi-die.so", NULL);
  g_autofree char *bytes = NULL;
  gsize len;
  g_assert_true (g_file_get_contents (plugin, &bytes, &len, NULL));
  g_assert_true (g_file_set_contents (copy, bytes, len, NULL));

  g_autofree char *in = g_build_filename (f->dir, "in", NULL);
  g_assert_cmpint (g_mkdir (in, 0755), ==, 0);
  for (int i = 0; i < 24; i++)
    {
      g_autofree char *name = g_strdup_printf ("%s/img%02d.png", in, i);
      write_image (name, i == 12 ? 61 : 40 + 2 * i, 30, 3, i, ST_FORMAT_PNG);
    }
  const char *pipeline = "die-on-width-61 ! kernel preset=sharpen";
  g_autofree char *alone = g_build_filename (f->dir, "alone", NULL);
  g_autofree char *out = g_build_filename (f->dir, "out", NULL);
  g_autofree char *dying = g_build_filename (in, "img12.png", NULL);
  g_assert_cmpint (g_unlink (dying), ==, 0);
  TuResult r = RUN ("run", "--plugin-dir", plugins, pipeline, in, "-o", alone, "-j", "1");
  g_assert_cmpint (r.status, ==, 0);
  tu_result_clear (&r);
  write_image (dying, 61, 30, 3, 12, ST_FORMAT_PNG);

  r = FAILING_RANKS (3, "run", "--plugin-dir", plugins, pipeline, in, "-o", out, "-j", "1");
  g_assert_cmpint (r.status, !=, 0);
  if (!r.signal)
    g_assert_nonnull (strstr (r.err, "signal 9"));
  tu_result_clear (&r);
  /* Whatever was written is complete; no temporary file is left. */
  g_autoptr (GDir) dir = g_dir_open (out, 0, NULL);
  g_assert_nonnull (dir);
  for (const char *name; (name = g_dir_read_name (dir));)
    {
      g_assert_cmpstr (name, !=, "img12.png");
      g_autofree char *got = g_build_filename (out, name, NULL);
      g_autofree char *want = g_build_filename (alone, name, NULL);
      g_autofree char *got_sum = file_digest (got);
      g_autofree char *want_sum = file_digest (want);
      g_assert_cmpstr (got_sum, ==, want_sum);
    }
}

/* A checkpoint written by 2 ranks continues on 3: the position in the
 * data is the global batch. */
static void
test_train_resume (Fixture *f, gconstpointer unused)
{
  if (!can_run ())
    return;
  g_autofree char *ini = NULL, *data = NULL;
  make_training_set (f, &ini, &data);
  g_autofree char *out = g_build_filename (f->dir, "w.safetensors", NULL);
  g_autofree char *checkpoint = g_build_filename (f->dir, "w.ckpt.safetensors", NULL);
  train_ranks (2, ini, data, out, "1", NULL);
  g_assert_true (g_file_test (checkpoint, G_FILE_TEST_IS_REGULAR));
  g_autofree char *resumed = g_build_filename (f->dir, "resumed.safetensors", NULL);
  train_ranks (3, ini, data, resumed, "2", checkpoint);
  g_autofree char *log = g_build_filename (f->dir, "resumed.csv", NULL);
  g_autofree char *text = NULL;
  g_assert_true (g_file_get_contents (log, &text, NULL, NULL));
  /* Only the second epoch ran. */
  g_assert_nonnull (strstr (text, "\n2,"));
  g_assert_null (strstr (text, "\n1,"));
}

/* A machine with another copy of the data is refused before the first
 * step (mpirun's colon gives rank 1 other arguments than rank 0). */
static void
test_train_other_data (Fixture *f, gconstpointer unused)
{
  if (!can_run ())
    return;
  g_autofree char *ini = NULL, *data = NULL;
  make_training_set (f, &ini, &data);
  g_autofree char *other = g_build_filename (f->dir, "other", NULL);
  g_assert_cmpint (g_mkdir (other, 0755), ==, 0);
  tu_write_synthetic_idx (other, "train", 90, 1);
  tu_write_synthetic_idx (other, "t10k", 103, 2);
  g_autofree char *out = g_build_filename (f->dir, "w.safetensors", NULL);
  TuResult r = tu_run_argv_may_die (mpirun, (const char *const[]) {
    "--oversubscribe", "--mca", "btl", "self,vader",
    "-np", "1", exe, "train", ini, "--data", data, "-o", out, "-j", "1", ":",
    "-np", "1", exe, "train", ini, "--data", other, "-o", out, "-j", "1", NULL });
  g_assert_cmpint (r.status, !=, 0);
  if (!r.signal)   /* mpirun itself killed: see FAILING_RANKS */
    g_assert_nonnull (strstr (r.err, "rank 1 has 90 training images, rank 0 100"));
  tu_result_clear (&r);
  g_assert_false (g_file_test (out, G_FILE_TEST_EXISTS));
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  exe = g_getenv ("STRATA_EXE");
  g_assert_nonnull (exe);
  mpirun = g_find_program_in_path ("mpirun");
  /* Containers often run tests as root, which Open MPI refuses unless told. */
  g_setenv ("OMPI_ALLOW_RUN_AS_ROOT", "1", TRUE);
  g_setenv ("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1", TRUE);
  /* No network but loopback: the TCP transport may not look elsewhere. */
  g_setenv ("OMPI_MCA_btl_tcp_if_include", "lo", TRUE);
  g_setenv ("OMPI_MCA_oob_tcp_if_include", "lo", TRUE);

  /* Every training run compares the ranks' weights after each epoch. */
  g_setenv ("STRATA_CHECK_REPLICAS", "1", TRUE);
  g_test_add ("/mpi/run/folder", Fixture, NULL, fixture_set_up, test_run_folder, fixture_tear_down);
  g_test_add ("/mpi/run/failed-image", Fixture, NULL, fixture_set_up, test_run_failed_image,
              fixture_tear_down);
  g_test_add ("/mpi/run/refused", Fixture, NULL, fixture_set_up, test_run_refused,
              fixture_tear_down);
  g_test_add ("/mpi/run/predictions", Fixture, NULL, fixture_set_up, test_run_predictions,
              fixture_tear_down);
  g_test_add ("/mpi/eval", Fixture, NULL, fixture_set_up, test_eval, fixture_tear_down);
  g_test_add ("/mpi/train", Fixture, NULL, fixture_set_up, test_train, fixture_tear_down);
  g_test_add ("/mpi/train/buckets", Fixture, NULL, fixture_set_up, test_train_buckets,
              fixture_tear_down);
  g_test_add ("/mpi/run/killed-rank", Fixture, NULL, fixture_set_up, test_run_killed_rank,
              fixture_tear_down);
  g_test_add ("/mpi/train/other-data", Fixture, NULL, fixture_set_up, test_train_other_data,
              fixture_tear_down);
  g_test_add ("/mpi/train/resume", Fixture, NULL, fixture_set_up, test_train_resume,
              fixture_tear_down);
  int rc = g_test_run ();
  g_free (mpirun);
  return rc;
}
