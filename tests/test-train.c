/* Training end to end through the CLI: a synthetic task learnt perfectly,
 * determinism and resume, refused options, classifier predictions, and
 * Fashion-MNIST when its Debian package is installed. */
#include "image.h"
#include "optimizer.h"
#include "registry.h"
#include "train.h"
#include "testutil.h"
#include "weights.h"

#include <gio/gio.h>
#include <glib/gstdio.h>
#include <json-glib/json-glib.h>
#include <math.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>

static const char *exe;

#define RUN(...) tu_run_argv (exe, (const char *const[]) { __VA_ARGS__, NULL })

static const char *tiny_pipeline =
  "[pipeline]\ninput=1x8x8\nlabels=left;right\n"
  "[conv]\ntype=conv2d\nfilters=4\nsize=3\nactivation=relu\n"
  "[drop]\ntype=dropout\nrate=0.1\n"
  "[fc]\ntype=dense\nunits=2\n"
  "[prob]\ntype=softmax\n";

typedef struct {
  char *dir, *data, *ini;
} Fixture;

static void
fixture_set_up (Fixture *f, gconstpointer unused)
{
  f->dir = g_dir_make_tmp ("strata-train-XXXXXX", NULL);
  f->data = g_build_filename (f->dir, "data", NULL);
  g_mkdir (f->data, 0755);
  tu_write_synthetic_idx (f->data, "train", 400, 1);
  tu_write_synthetic_idx (f->data, "t10k", 100, 2);
  f->ini = g_build_filename (f->dir, "tiny.ini", NULL);
  g_assert_true (g_file_set_contents (f->ini, tiny_pipeline, -1, NULL));
}

static void
fixture_tear_down (Fixture *f, gconstpointer unused)
{
  tu_remove_tree (f->dir);
  g_free (f->dir);
  g_free (f->data);
  g_free (f->ini);
}

static double
eval_accuracy (const char *ini, const char *data, const char *weights)
{
  TuResult r = RUN ("eval", ini, "--data", data, "--weights", weights, "--format", "json");
  g_assert_cmpint (r.status, ==, 0);
  g_autoptr (JsonParser) parser = json_parser_new ();
  g_assert_true (json_parser_load_from_data (parser, r.out, -1, NULL));
  JsonObject *o = json_node_get_object (json_parser_get_root (parser));
  double acc = json_object_get_double_member (o, "accuracy");
  g_assert_cmpint (json_object_get_int_member (o, "images"), ==, 100);
  g_assert_cmpint (json_array_get_length (json_object_get_array_member (o, "confusion")), ==, 2);
  tu_result_clear (&r);
  return acc;
}

static void
test_synthetic_learns (Fixture *f, gconstpointer unused)
{
  g_autofree char *w = g_build_filename (f->dir, "w.safetensors", NULL);
  TuResult r = RUN ("train", f->ini, "--data", f->data, "-o", w, "--epochs", "6", "--batch", "16",
                  "--lr", "0.01", "--seed", "3", "-q");
  g_assert_cmpint (r.status, ==, 0);
  g_assert_null (strstr (r.err, "training on"));
  tu_result_clear (&r);
  g_assert_cmpfloat (eval_accuracy (f->ini, f->data, w), ==, 1.0);

  /* The log has a line per epoch, and the plot is a PNG. */
  g_autofree char *csv = g_build_filename (f->dir, "w.csv", NULL);
  g_autofree char *log = NULL;
  g_assert_true (g_file_get_contents (csv, &log, NULL, NULL));
  g_auto (GStrv) lines = g_strsplit (g_strstrip (log), "\n", -1);
  g_assert_cmpint (g_strv_length (lines), ==, 7);
  g_autofree char *png = g_build_filename (f->dir, "w.png", NULL);
  StImageInfo info;
  g_autoptr (StTensor) plot = st_image_load (png, 0, &info, NULL);
  g_assert_nonnull (plot);
  g_assert_cmpint (plot->shape.w, >, 400);
}

static gboolean
same_file_contents (const char *a, const char *b)
{
  g_autofree char *da = NULL, *db = NULL;
  gsize la, lb;
  g_assert_true (g_file_get_contents (a, &da, &la, NULL));
  g_assert_true (g_file_get_contents (b, &db, &lb, NULL));
  return la == lb && memcmp (da, db, la) == 0;
}

static void
test_seed_and_resume (Fixture *f, gconstpointer unused)
{
  g_autofree char *a = g_build_filename (f->dir, "a.safetensors", NULL);
  g_autofree char *b = g_build_filename (f->dir, "b.safetensors", NULL);
  g_autofree char *c = g_build_filename (f->dir, "c.safetensors", NULL);
  g_autofree char *d = g_build_filename (f->dir, "d.safetensors", NULL);
  g_autofree char *ckpt = g_build_filename (f->dir, "c.ckpt.safetensors", NULL);
  TuResult r = RUN ("train", f->ini, "--data", f->data, "-o", a, "--epochs", "3", "--batch", "32",
                  "--seed", "7", "-j", "2", "--quiet");
  g_assert_cmpint (r.status, ==, 0);
  tu_result_clear (&r);
  r = RUN ("train", f->ini, "--data", f->data, "-o", b, "--epochs", "3", "--batch", "32",
           "--seed", "7", "-j", "2", "--quiet");
  g_assert_cmpint (r.status, ==, 0);
  tu_result_clear (&r);
  g_assert_true (same_file_contents (a, b));

  /* Another seed gives other weights. */
  r = RUN ("train", f->ini, "--data", f->data, "-o", d, "--epochs", "3", "--batch", "32",
           "--seed", "8", "-j", "2", "--quiet");
  g_assert_cmpint (r.status, ==, 0);
  tu_result_clear (&r);
  g_assert_false (same_file_contents (a, d));

  /* One epoch, then two more from its checkpoint: the same as three at once. */
  r = RUN ("train", f->ini, "--data", f->data, "-o", c, "--epochs", "1", "--batch", "32",
           "--seed", "7", "-j", "2", "--quiet");
  g_assert_cmpint (r.status, ==, 0);
  tu_result_clear (&r);
  r = RUN ("train", f->ini, "--data", f->data, "-o", c, "--epochs", "3", "--batch", "32",
           "--seed", "7", "-j", "2", "--quiet", "--resume", ckpt);
  g_assert_cmpint (r.status, ==, 0);
  tu_result_clear (&r);
  g_assert_true (same_file_contents (a, c));
}

/* tiny_pipeline with augmentation before it (a vertical flip keeps the
 * left/right task; each shift of the crop is at most a pixel), or with
 * the same stages made the identity. */
static const char *augment_stages =
  "[flip]\ntype=randomflip\ndirection=vertical\n"
  "[shift]\ntype=randomcrop\npadding=1\nborder=edge\n"
  "[erase]\ntype=randomerase\np=0.3\narea=0.02,0.1\n"
  "[light]\ntype=jitter\nbrightness=0.2\ncontrast=0.2\n";
static const char *inert_stages =
  "[flip]\ntype=randomflip\np=0\n"
  "[shift]\ntype=randomcrop\npadding=0\n"
  "[erase]\ntype=randomerase\np=0\n"
  "[light]\ntype=jitter\nbrightness=0\ncontrast=0\n";

static char *
write_augmented (Fixture *f, const char *name, const char *stages)
{
  /* The augmentation goes between [pipeline] and [conv]. */
  const char *conv = strstr (tiny_pipeline, "[conv]");
  g_autofree char *head = g_strndup (tiny_pipeline, conv - tiny_pipeline);
  g_autofree char *text = g_strconcat (head, stages, conv, NULL);
  char *path = g_build_filename (f->dir, name, NULL);
  g_assert_true (g_file_set_contents (path, text, -1, NULL));
  return path;
}

/* The tensors of two weights files are equal, byte for byte (their
 * metadata names the pipeline file, which may differ). */
static gboolean
same_tensors (const char *a, const char *b)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (StTensorFile) fa = st_tensor_file_read (a, &error);
  g_assert_no_error (error);
  g_autoptr (StTensorFile) fb = st_tensor_file_read (b, &error);
  g_assert_no_error (error);
  if (fa->tensors->len != fb->tensors->len)
    return FALSE;
  for (guint i = 0; i < fa->tensors->len; i++)
    {
      const StNamedTensor *x = fa->tensors->pdata[i];
      const StNamedTensor *y = st_tensor_file_find (fb, x->name);
      if (!y || !st_shape_equal (x->value->shape, y->value->shape)
          || memcmp (x->value->data, y->value->data,
                     st_tensor_numel (x->value) * sizeof (float)) != 0)
        return FALSE;
    }
  return TRUE;
}

#define TRAIN_AUG(ini, out, epochs, threads, ...)                                        \
  RUN ("train", ini, "--data", f->data, "-o", out, "--epochs", epochs, "--batch", "16",   \
       "--lr", "0.01", "--seed", "5", "-j", threads, "--quiet", ##__VA_ARGS__)

/* Two epochs with augmentation learn the task; the weights are the same
 * on 1 and 2 threads; the random stages do act, and made inert they give
 * the weights of the pipeline without them. */
static void
test_augmented_training (Fixture *f, gconstpointer unused)
{
  g_autofree char *aug = write_augmented (f, "aug.ini", augment_stages);
  g_autofree char *inert = write_augmented (f, "inert.ini", inert_stages);
  g_autofree char *a = g_build_filename (f->dir, "a.safetensors", NULL);
  g_autofree char *b = g_build_filename (f->dir, "b.safetensors", NULL);
  g_autofree char *c = g_build_filename (f->dir, "c.safetensors", NULL);
  g_autofree char *d = g_build_filename (f->dir, "d.safetensors", NULL);
  TuResult r = TRAIN_AUG (aug, a, "2", "1");
  g_assert_cmpint (r.status, ==, 0);
  tu_result_clear (&r);
  double accuracy = eval_accuracy (aug, f->data, a);
  g_test_message ("accuracy after 2 epochs with augmentation: %.3f", accuracy);
  g_assert_cmpfloat (accuracy, >=, 0.95);
  r = TRAIN_AUG (aug, b, "2", "2");
  g_assert_cmpint (r.status, ==, 0);
  tu_result_clear (&r);
  g_assert_true (same_file_contents (a, b));

  r = TRAIN_AUG (inert, c, "2", "2");
  g_assert_cmpint (r.status, ==, 0);
  tu_result_clear (&r);
  r = TRAIN_AUG (f->ini, d, "2", "2");
  g_assert_cmpint (r.status, ==, 0);
  tu_result_clear (&r);
  g_assert_false (same_tensors (a, c));
  g_assert_true (same_tensors (c, d));
}

/* With augmentation, a run resumed from an epoch's checkpoint ends with
 * the weights of a run never stopped: every sample's draws depend on the
 * seed, the epoch and its index alone. */
static void
test_augmented_resume (Fixture *f, gconstpointer unused)
{
  g_autofree char *aug = write_augmented (f, "aug.ini", augment_stages);
  g_autofree char *whole = g_build_filename (f->dir, "whole.safetensors", NULL);
  g_autofree char *part = g_build_filename (f->dir, "part.safetensors", NULL);
  g_autofree char *ckpt = g_build_filename (f->dir, "part.ckpt.safetensors", NULL);
  TuResult r = TRAIN_AUG (aug, whole, "3", "2");
  g_assert_cmpint (r.status, ==, 0);
  tu_result_clear (&r);
  r = TRAIN_AUG (aug, part, "1", "2");
  g_assert_cmpint (r.status, ==, 0);
  tu_result_clear (&r);
  r = TRAIN_AUG (aug, part, "3", "1", "--resume", ckpt);
  g_assert_cmpint (r.status, ==, 0);
  tu_result_clear (&r);
  g_assert_true (same_file_contents (whole, part));
}

/* Raises SIGINT at the first progress report of the second epoch (after
 * its first batch), as Ctrl-C would: the loop stops before the next one. */
static void
interrupt_mid_epoch (const StTrainReport *r, gpointer data)
{
  gboolean *raised = data;
  if (r->event == ST_TRAIN_PROGRESS && r->epoch == 2 && r->batch < r->n_batches && !*raised)
    {
      *raised = TRUE;
      raise (SIGINT);
    }
}

/* st_train of the augmented pipeline for 3 epochs on threads, resuming
 * from resume when given, with a report function; FALSE with error set
 * when it stops. */
static gboolean
train_augmented (const char *ini, const char *data, int threads, const char *out,
                 const char *checkpoint, const char *resume, StTrainReportFunc report,
                 gpointer report_data, GError **error)
{
  StRegistry *reg = st_registry_new (NULL);
  StPipeline *p = st_pipeline_load_file (reg, ini, error);
  g_assert_no_error (*error);
  StDataset *train = st_dataset_load_idx_dir (data, FALSE, error);
  g_assert_no_error (*error);
  StTrainOptions opt;
  st_train_options_init (&opt);
  opt.epochs = 3;
  opt.batch_size = 16;
  opt.seed = 5;
  opt.threads = threads;
  opt.weights_out = out;
  opt.checkpoint = checkpoint;
  opt.resume = resume;
  opt.report = report;
  opt.report_data = report_data;
  gboolean ok = st_train (p, train, NULL, &opt, NULL, error);
  st_dataset_free (train);
  st_pipeline_free (p);
  st_registry_free (reg);
  return ok;
}

/* Ctrl-C in the middle of an epoch with augmentation, then --resume: the
 * weights of the run never stopped. */
static void
test_augmented_interrupt (Fixture *f, gconstpointer unused)
{
  g_autofree char *aug = write_augmented (f, "aug.ini", augment_stages);
  g_autofree char *whole = g_build_filename (f->dir, "whole.safetensors", NULL);
  g_autofree char *resumed = g_build_filename (f->dir, "resumed.safetensors", NULL);
  g_autofree char *ckpt = g_build_filename (f->dir, "stop.ckpt.safetensors", NULL);
  g_autoptr (GError) error = NULL;
  g_assert_true (train_augmented (aug, f->data, 1, whole, NULL, NULL, NULL, NULL, &error));
  g_assert_no_error (error);

  gboolean raised = FALSE;
  g_assert_false (train_augmented (aug, f->data, 2, resumed, ckpt, NULL, interrupt_mid_epoch,
                                   &raised, &error));
  g_assert_error (error, ST_ERROR, ST_ERROR_INTERRUPTED);
  g_clear_error (&error);
  g_assert_false (g_file_test (resumed, G_FILE_TEST_EXISTS));
  g_autoptr (StTensorFile) file = st_tensor_file_read (ckpt, &error);
  g_assert_no_error (error);
  g_assert_cmpstr (g_hash_table_lookup (file->metadata, "strata.epoch"), ==, "1");
  g_assert_cmpstr (g_hash_table_lookup (file->metadata, "strata.batch"), !=, "0");

  g_assert_true (train_augmented (aug, f->data, 2, resumed, ckpt, ckpt, NULL, NULL, &error));
  g_assert_no_error (error);
  g_assert_true (same_tensors (whole, resumed));
}

static void
test_bad_options (Fixture *f, gconstpointer unused)
{
  g_autofree char *w = g_build_filename (f->dir, "w.safetensors", NULL);
  struct { const char *args[4]; const char *message; } cases[] = {
    { { "--lr", "-0.1" }, "--lr" },
    { { "--batch", "0" }, "--batch" },
    { { "--epochs", "0" }, "--epochs" },
    { { "--optimizer", "adagrad" }, "--optimizer" },
    { { "--val-split", "1.5" }, "--val-split" },
  };
  for (guint i = 0; i < G_N_ELEMENTS (cases); i++)
    {
      TuResult r = RUN ("train", f->ini, "--data", f->data, "-o", w, cases[i].args[0], cases[i].args[1]);
      g_assert_cmpint (r.status, ==, 2);
      g_assert_true (strstr (r.err, cases[i].message));
      tu_result_clear (&r);
    }
  g_assert_false (g_file_test (w, G_FILE_TEST_EXISTS));

  /* A filter pipeline has nothing to train and no class scores. */
  TuResult r = RUN ("train", "sharpen", "--data", f->data, "-o", w);
  g_assert_cmpint (r.status, ==, 2);
  g_assert_true (strstr (r.err, "no stage has trainable parameters"));
  tu_result_clear (&r);
  g_autofree char *not_scores = g_build_filename (f->dir, "conv.ini", NULL);
  g_file_set_contents (not_scores, "[pipeline]\ninput=1x8x8\n[c]\ntype=conv2d\nfilters=3\nsize=3\n", -1, NULL);
  r = RUN ("train", not_scores, "--data", f->data, "-o", w);
  g_assert_cmpint (r.status, ==, 2);
  g_assert_true (strstr (r.err, "expected class scores"));
  tu_result_clear (&r);
  /* Labels up to 1 but only one score... a 1-unit output is refused; a
   * 2-class net on 3-class data is too. */
  tu_write_synthetic_idx (f->data, "train", 10, 4);
  g_autofree char *labels = g_build_filename (f->data, "train-labels-idx1-ubyte", NULL);
  g_autofree char *bytes = NULL;
  gsize len;
  g_file_get_contents (labels, &bytes, &len, NULL);
  bytes[8] = 5;
  g_file_set_contents (labels, bytes, len, NULL);
  r = RUN ("train", f->ini, "--data", f->data, "-o", w);
  g_assert_cmpint (r.status, ==, 2);
  g_assert_true (strstr (r.err, "labels up to 5"));
  tu_result_clear (&r);
}

static void
test_predictions_csv (Fixture *f, gconstpointer unused)
{
  g_autofree char *w = g_build_filename (f->dir, "w.safetensors", NULL);
  TuResult r = RUN ("train", f->ini, "--data", f->data, "-o", w, "--epochs", "2", "--quiet");
  g_assert_cmpint (r.status, ==, 0);
  tu_result_clear (&r);
  g_autofree char *photos = g_build_filename (f->dir, "photos", NULL);
  g_mkdir (photos, 0755);
  for (int i = 0; i < 5; i++)
    {
      g_autoptr (StTensor) t = st_tensor_new0 (1, 1, 8, 8);
      for (int x = 0; x < 64; x++)
        t->data[x] = ((x % 8) < 4) == (i % 2) ? 0.2f : 0.7f;
      g_autofree char *name = g_strdup_printf ("%s/p%d.png", photos, i);
      g_assert_true (st_image_save (t, name, ST_FORMAT_PNG, 8, 90, NULL));
    }
  g_autofree char *bad = g_build_filename (photos, "bad.png", NULL);
  g_file_set_contents (bad, "nope", 4, NULL);
  g_autofree char *csv = g_build_filename (f->dir, "pred.csv", NULL);
  r = RUN ("run", f->ini, photos, "-o", csv, "--weights", w, "--top", "2", "--quiet");
  g_assert_cmpint (r.status, ==, 1);
  g_assert_true (strstr (r.err, "bad.png: "));
  tu_result_clear (&r);
  g_autofree char *text = NULL;
  g_assert_true (g_file_get_contents (csv, &text, NULL, NULL));
  g_auto (GStrv) lines = g_strsplit (g_strstrip (text), "\n", -1);
  g_assert_cmpint (g_strv_length (lines), ==, 6);
  g_assert_cmpstr (lines[0], ==, "path,label,probability,label_2,probability_2");
  for (int i = 1; i < 6; i++)
    {
      g_auto (GStrv) cells = g_strsplit (lines[i], ",", -1);
      g_assert_cmpint (g_strv_length (cells), ==, 5);
      double sum = g_ascii_strtod (cells[2], NULL) + g_ascii_strtod (cells[4], NULL);
      g_assert_cmpfloat_with_epsilon (sum, 1.0, 1e-5);
      g_assert_true (strcmp (cells[1], "left") == 0 || strcmp (cells[1], "right") == 0);
    }
  /* The same as JSON lines on standard output. */
  r = RUN ("run", f->ini, photos, "--weights", w, "--format", "jsonl", "--quiet");
  g_assert_cmpint (r.status, ==, 1);
  g_auto (GStrv) json_lines = g_strsplit (g_strstrip (r.out), "\n", -1);
  g_assert_cmpint (g_strv_length (json_lines), ==, 5);
  g_autoptr (JsonParser) parser = json_parser_new ();
  g_assert_true (json_parser_load_from_data (parser, json_lines[0], -1, NULL));
  tu_result_clear (&r);
  /* A folder whose every image fails leaves the table of the run before
   * untouched, --overwrite or not. */
  g_autofree char *all_bad = g_build_filename (f->dir, "all-bad", NULL);
  g_mkdir (all_bad, 0755);
  g_autofree char *bad2 = g_build_filename (all_bad, "bad.png", NULL);
  g_file_set_contents (bad2, "nope", 4, NULL);
  g_autofree char *before = NULL;
  g_assert_true (g_file_get_contents (csv, &before, NULL, NULL));
  r = RUN ("run", f->ini, all_bad, "-o", csv, "--overwrite", "--weights", w, "--quiet");
  g_assert_cmpint (r.status, ==, 1);
  g_assert_true (strstr (r.err, "bad.png: "));
  tu_result_clear (&r);
  g_autofree char *after = NULL;
  g_assert_true (g_file_get_contents (csv, &after, NULL, NULL));
  g_assert_cmpstr (after, ==, before);
  /* Without weights a classifier is refused. */
  r = RUN ("run", f->ini, photos, "-o", csv, "--overwrite");
  g_assert_cmpint (r.status, ==, 2);
  g_assert_true (strstr (r.err, "no weights"));
  tu_result_clear (&r);
}

static void
test_fashion_mnist_subset (Fixture *f, gconstpointer unused)
{
  const char *dir = "/usr/share/datasets/fashion-mnist";
  if (!g_file_test (dir, G_FILE_TEST_IS_DIR))
    {
      g_test_skip ("dataset-fashion-mnist is not installed");
      return;
    }
  g_autofree char *ini = g_build_filename (STRATA_SOURCE_ROOT, "pipelines", "keras-mnist.ini", NULL);
  g_autofree char *w = g_build_filename (f->dir, "km.safetensors", NULL);
  TuResult r = RUN ("train", ini, "--data", dir, "-o", w, "--epochs", "1", "--limit", "2000", "--quiet");
  g_assert_cmpint (r.status, ==, 0);
  tu_result_clear (&r);
  r = RUN ("eval", ini, "--data", dir, "--weights", w, "--limit", "2000", "--format", "json");
  g_assert_cmpint (r.status, ==, 0);
  g_autoptr (JsonParser) parser = json_parser_new ();
  g_assert_true (json_parser_load_from_data (parser, r.out, -1, NULL));
  double acc = json_object_get_double_member (json_node_get_object (json_parser_get_root (parser)), "accuracy");
  g_test_message ("accuracy after one epoch on 2000 images: %.3f", acc);
  g_assert_cmpfloat (acc, >, 0.60);
  tu_result_clear (&r);
}

/* ---- Options, weights, outputs and class folders ------------------------ */

/* DIR/CLASS/iN.png: 8x8 gray images, bright on the left for even classes
 * and on the right for odd ones. */
static void
write_class_folders (const char *dir, const char *const *folders, int per_class)
{
  for (int c = 0; folders[c]; c++)
    {
      g_autofree char *sub = g_build_filename (dir, folders[c], NULL);
      g_assert_cmpint (g_mkdir_with_parents (sub, 0755), ==, 0);
      for (int i = 0; i < per_class; i++)
        {
          g_autoptr (StTensor) t = st_tensor_new0 (1, 1, 8, 8);
          for (int x = 0; x < 64; x++)
            t->data[x] = ((x % 8) < 4) == (c % 2 == 0) ? 0.7f + 0.01f * i : 0.2f;
          g_autofree char *name = g_strdup_printf ("%s/i%d.png", sub, i);
          g_assert_true (st_image_save (t, name, ST_FORMAT_PNG, 8, 90, NULL));
        }
    }
}

static const char *no_labels_pipeline =
  "[pipeline]\ninput=1x8x8\n"
  "[conv]\ntype=conv2d\nfilters=4\nsize=3\nactivation=relu\n"
  "[fc]\ntype=dense\nunits=2\n";

/* Every value is checked with its range, and -1 is no "default" (case 10). */
static void
test_option_ranges (Fixture *f, gconstpointer unused)
{
  g_autofree char *w = g_build_filename (f->dir, "w.safetensors", NULL);
  struct { const char *args[2]; const char *message; } cases[] = {
    { { "--lr", "-1" }, "--lr: expected a number more than 0, found '-1'" },
    { { "--lr", "nan" }, "--lr: expected a number more than 0, found 'nan'" },
    { { "--lr", "0.1x" }, "--lr: expected a number" },
    { { "--lr", "0" }, "--lr: expected a number more than 0, found '0'" },
    { { "--momentum", "1" }, "--momentum: expected a number 0 to less than 1, found '1'" },
    { { "--momentum", "-1" }, "--momentum: expected a number 0 to less than 1, found '-1'" },
    { { "--weight-decay", "inf" }, "--weight-decay: expected a number at least 0, found 'inf'" },
    { { "--gamma", "0" }, "--gamma: expected a number more than 0, at most 1, found '0'" },
    { { "--jobs", "100000" }, "--jobs: expected an integer 1 to 1024, found '100000'" },
    { { "--jobs", "-1" }, "--jobs: expected an integer 1 to 1024, found '-1'" },
    { { "--limit", "-5" }, "--limit: expected an integer at least 1, found '-5'" },
    { { "--limit", "0" }, "--limit: expected an integer at least 1, found '0'" },
    { { "--jobs", "0" }, "--jobs: expected an integer 1 to 1024, found '0'" },
    { { "--seed", "-1" }, "--seed: expected an integer at least 0, found '-1'" },
    { { "--step-epochs", "0" }, "--step-epochs: expected an integer 1 to 100000" },
    { { "--batch", "100000" }, "--batch: expected an integer 1 to 65536" },
    { { "--test", "x" }, "" },
  };
  for (guint i = 0; i < G_N_ELEMENTS (cases) - 1; i++)
    {
      TuResult r = RUN ("train", f->ini, "--data", f->data, "-o", w, cases[i].args[0], cases[i].args[1]);
      g_assert_cmpint (r.status, ==, 2);
      if (!strstr (r.err, cases[i].message))
        g_error ("'%s %s': '%s' lacks '%s'", cases[i].args[0], cases[i].args[1], r.err, cases[i].message);
      tu_result_clear (&r);
    }
  g_autofree char *no_ckpt = g_build_filename (f->dir, "none.ckpt.safetensors", NULL);
  TuResult r = RUN ("train", f->ini, "--data", f->data, "-o", w, "--resume", no_ckpt);
  g_assert_cmpint (r.status, ==, 2);
  g_assert_nonnull (strstr (r.err, "--resume: "));
  g_assert_nonnull (strstr (r.err, "none.ckpt.safetensors: no such file"));
  g_assert_null (strstr (r.err, "training on"));
  tu_result_clear (&r);
  r = RUN ("train", f->ini, "--data", f->data, "-o", w, "--val-split", "0.2", "--test", f->data);
  g_assert_cmpint (r.status, ==, 2);
  g_assert_nonnull (strstr (r.err, "--val-split and --test: give one or the other"));
  tu_result_clear (&r);
  g_assert_false (g_file_test (w, G_FILE_TEST_EXISTS));

  const char *eval_cases[][3] = {
    { "--batch", "0", "--batch: expected an integer 1 to 65536" },
    { "--jobs", "-2", "--jobs: expected an integer 1 to 1024" },
    { "--jobs", "0", "--jobs: expected an integer 1 to 1024" },
    { "--limit", "-1", "--limit: expected an integer at least 1" },
    { "--format", "xml", "--format: expected one of text|json, found 'xml'" },
  };
  for (guint i = 0; i < G_N_ELEMENTS (eval_cases); i++)
    {
      r = RUN ("eval", f->ini, "--data", f->data, "--random-weights", eval_cases[i][0], eval_cases[i][1]);
      g_assert_cmpint (r.status, ==, 2);
      g_assert_nonnull (strstr (r.err, eval_cases[i][2]));
      tu_result_clear (&r);
    }

  /* --help states the ranges. */
  r = RUN ("train", "--help");
  g_assert_cmpint (r.status, ==, 0);
  g_assert_nonnull (strstr (r.out, "Learning rate, more than 0"));
  g_assert_nonnull (strstr (r.out, "SGD momentum, 0 to less than 1"));
  g_assert_nonnull (strstr (r.out, "Threads, 1 to 1024 (default one per CPU)"));
  /* Help, defaults and ranges come from one table. */
  g_assert_nonnull (strstr (r.out, "Batch size, 1 to 65536 (default 64)"));
  g_assert_nonnull (strstr (r.out, "(default 0.001 for adam and adamw, 0.01 for sgd)"));
  g_assert_nonnull (strstr (r.out, "step schedule: decay factor, more than 0, at most 1 (default 0.1)"));
  tu_result_clear (&r);
  r = RUN ("eval", "--help");
  g_assert_nonnull (strstr (r.out, "Images per batch, 1 to 65536"));
  g_assert_nonnull (strstr (r.out, "--random-weights"));
  tu_result_clear (&r);
}

/* A stage failing while training is an error, printed once, not an
 * interruption (case 11). */
static void
test_stage_failure (Fixture *f, gconstpointer unused)
{
  const char *plugin = g_getenv ("STRATA_TEST_PLUGIN_FAIL_TRAIN");
  g_assert_nonnull (plugin);
  g_autofree char *plugins = g_build_filename (f->dir, "plugins", NULL);
  g_assert_cmpint (g_mkdir (plugins, 0755), ==, 0);
  g_autofree char *copy = g_build_filename (plugins, "fail-train.so", NULL);
  g_autofree char *bytes = NULL;
  gsize len;
  g_assert_true (g_file_get_contents (plugin, &bytes, &len, NULL));
  g_assert_true (g_file_set_contents (copy, bytes, len, NULL));

  g_autofree char *ini = g_build_filename (f->dir, "fail.ini", NULL);
  g_assert_true (g_file_set_contents (ini,
    "[pipeline]\ninput=1x8x8\n"
    "[conv]\ntype=conv2d\nfilters=4\nsize=3\n"
    "[fail]\ntype=fail-in-training\n"
    "[fc]\ntype=dense\nunits=2\n", -1, NULL));
  g_autofree char *w = g_build_filename (f->dir, "w.safetensors", NULL);
  TuResult r = RUN ("train", ini, "--plugin-dir", plugins, "--data", f->data, "-o", w, "--quiet");
  g_assert_cmpint (r.status, !=, 0);
  g_assert_cmpint (r.status, !=, 130);
  const char *first = strstr (r.err, "refuses to train (a test stage)");
  g_assert_nonnull (first);
  g_assert_null (strstr (first + 1, "refuses to train"));
  g_assert_null (strstr (r.err, "interrupted"));
  tu_result_clear (&r);
  g_assert_false (g_file_test (w, G_FILE_TEST_EXISTS));
}

/* Ctrl-C while training: a checkpoint, the message saying so, and exit
 * status 130.  The signal is sent once the first epoch's line is read, so
 * the handler is in place; 100,000 epochs never end first. */
static void
test_interrupt (Fixture *f, gconstpointer unused)
{
  g_autofree char *w = g_build_filename (f->dir, "w.safetensors", NULL);
  g_autofree char *ckpt = g_build_filename (f->dir, "w.ckpt.safetensors", NULL);
  g_autoptr (GError) error = NULL;
  g_autoptr (GSubprocess) proc = g_subprocess_new (G_SUBPROCESS_FLAGS_STDERR_PIPE
                                                   | G_SUBPROCESS_FLAGS_STDOUT_SILENCE, &error,
                                                   exe, "train", f->ini, "--data", f->data,
                                                   "-o", w, "--epochs", "100000", "-j", "1", NULL);
  g_assert_no_error (error);
  g_autoptr (GDataInputStream) err = g_data_input_stream_new (g_subprocess_get_stderr_pipe (proc));
  GString *all = g_string_new (NULL);
  for (;;)
    {
      g_autofree char *line = g_data_input_stream_read_line (err, NULL, NULL, &error);
      g_assert_no_error (error);
      g_assert_nonnull (line);
      g_string_append_printf (all, "%s\n", line);
      if (g_str_has_prefix (line, "epoch 1/100000"))
        break;
    }
  g_subprocess_send_signal (proc, SIGINT);
  for (;;)
    {
      g_autofree char *line = g_data_input_stream_read_line (err, NULL, NULL, &error);
      g_assert_no_error (error);
      if (!line)
        break;
      g_string_append_printf (all, "%s\n", line);
    }
  g_assert_true (g_subprocess_wait (proc, NULL, &error));
  g_test_message ("%s", all->str);
  g_assert_true (g_subprocess_get_if_exited (proc));
  g_assert_cmpint (g_subprocess_get_exit_status (proc), ==, 130);
  g_assert_nonnull (strstr (all->str, "interrupted: checkpoint written to"));
  g_assert_null (strstr (all->str, "strata: "));
  g_string_free (all, TRUE);
  g_assert_true (g_file_test (ckpt, G_FILE_TEST_IS_REGULAR));
  g_assert_false (g_file_test (w, G_FILE_TEST_EXISTS));
}

/* A learning rate that blows the loss up stops training with a message
 * rather than writing NaN weights no load would take. */
static void
test_divergence (Fixture *f, gconstpointer unused)
{
  g_autofree char *w = g_build_filename (f->dir, "w.safetensors", NULL);
  TuResult r = RUN ("train", f->ini, "--data", f->data, "-o", w, "--optimizer", "sgd",
                    "--lr", "1e30", "--quiet");
  g_assert_cmpint (r.status, ==, 2);
  g_assert_nonnull (strstr (r.err, "training diverged in epoch 1"));
  g_assert_nonnull (strstr (r.err, "the loss is not finite (try a smaller --lr); no weights written"));
  tu_result_clear (&r);
  g_assert_false (g_file_test (w, G_FILE_TEST_EXISTS));
}

/* A checkpoint whose position does not fit an int is refused, not cast. */
static void
test_checkpoint_position (Fixture *f, gconstpointer unused)
{
  g_autofree char *w = g_build_filename (f->dir, "w.safetensors", NULL);
  g_autofree char *ckpt = g_build_filename (f->dir, "w.ckpt.safetensors", NULL);
  g_autofree char *bad = g_build_filename (f->dir, "bad.ckpt.safetensors", NULL);
  TuResult r = RUN ("train", f->ini, "--data", f->data, "-o", w, "--epochs", "1", "--quiet");
  g_assert_cmpint (r.status, ==, 0);
  tu_result_clear (&r);
  g_autoptr (GError) error = NULL;
  g_autoptr (StTensorFile) file = st_tensor_file_read (ckpt, &error);
  g_assert_no_error (error);
  g_hash_table_insert (file->metadata, g_strdup ("strata.epoch"), g_strdup ("4294967297"));
  g_assert_true (st_tensor_file_write (bad, (const StNamedTensor *const *) file->tensors->pdata,
                                       file->tensors->len, file->metadata, &error));
  r = RUN ("train", f->ini, "--data", f->data, "-o", w, "--epochs", "2", "--resume", bad, "--quiet");
  g_assert_cmpint (r.status, ==, 2);
  g_assert_nonnull (strstr (r.err, "training position is out of range or malformed"));
  tu_result_clear (&r);
}

/* run, eval and inspect IMAGE refuse learnable stages without weights
 * unless --random-weights asks for them (case 14). */
static void
test_weights_required (Fixture *f, gconstpointer unused)
{
  g_autofree char *ini = g_build_filename (f->dir, "scores.ini", NULL);
  g_assert_true (g_file_set_contents (ini, no_labels_pipeline, -1, NULL));
  g_autofree char *photo = g_build_filename (f->dir, "photo.png", NULL);
  g_autoptr (StTensor) t = st_tensor_new0 (1, 1, 8, 8);
  g_assert_true (st_image_save (t, photo, ST_FORMAT_PNG, 8, 90, NULL));
  g_autofree char *csv = g_build_filename (f->dir, "out.csv", NULL);
  g_autofree char *maps = g_build_filename (f->dir, "maps.png", NULL);

  const char *hint = "no weights for its learnable stages (the first is 'conv'): name a file "
                     "with --weights FILE or weights= in the [pipeline] group (or pass "
                     "--random-weights";
  TuResult r = RUN ("run", ini, photo, "-o", csv);
  g_assert_cmpint (r.status, ==, 2);
  g_assert_nonnull (strstr (r.err, ini));
  g_assert_nonnull (strstr (r.err, hint));
  tu_result_clear (&r);
  g_assert_false (g_file_test (csv, G_FILE_TEST_EXISTS));
  r = RUN ("eval", ini, "--data", f->data);
  g_assert_cmpint (r.status, ==, 2);
  g_assert_nonnull (strstr (r.err, hint));
  tu_result_clear (&r);
  r = RUN ("inspect", ini, photo, "-o", maps);
  g_assert_cmpint (r.status, ==, 2);
  g_assert_nonnull (strstr (r.err, hint));
  tu_result_clear (&r);
  g_assert_false (g_file_test (maps, G_FILE_TEST_EXISTS));

  /* Asked for, they run. */
  r = RUN ("run", ini, photo, "-o", csv, "--random-weights", "--quiet");
  g_assert_cmpint (r.status, ==, 0);
  tu_result_clear (&r);
  g_assert_true (g_file_test (csv, G_FILE_TEST_IS_REGULAR));
  r = RUN ("inspect", ini, photo, "-o", maps, "--random-weights");
  g_assert_cmpint (r.status, ==, 0);
  tu_result_clear (&r);
  r = RUN ("eval", ini, "--data", f->data, "--random-weights", "--format", "json");
  g_assert_cmpint (r.status, ==, 0);
  tu_result_clear (&r);
  /* The table alone needs no weights. */
  r = RUN ("inspect", ini);
  g_assert_cmpint (r.status, ==, 0);
  tu_result_clear (&r);
  g_autofree char *w = g_build_filename (f->dir, "w.safetensors", NULL);
  r = RUN ("run", ini, photo, "-o", csv, "--overwrite", "--random-weights", "--weights", w);
  g_assert_cmpint (r.status, ==, 2);
  g_assert_nonnull (strstr (r.err, "--weights and --random-weights: give one or the other"));
  tu_result_clear (&r);
}

/* Class folders named after labels that cannot be folder names, and class
 * names that travel in the weights file to run and eval (cases 16, 17). */
static void
test_class_folders (Fixture *f, gconstpointer unused)
{
  g_autofree char *folders = g_build_filename (f->dir, "folders", NULL);
  static const char *const names[] = { "T-shirt_top", "Trouser", NULL };
  write_class_folders (folders, names, 6);

  /* labels= with a '/' in a name. */
  g_autofree char *labelled = g_build_filename (f->dir, "labelled.ini", NULL);
  g_assert_true (g_file_set_contents (labelled,
    "[pipeline]\ninput=1x8x8\nlabels=T-shirt/top;Trouser\n"
    "[conv]\ntype=conv2d\nfilters=4\nsize=3\nactivation=relu\n"
    "[fc]\ntype=dense\nunits=2\n", -1, NULL));
  g_autofree char *w1 = g_build_filename (f->dir, "w1.safetensors", NULL);
  TuResult r = RUN ("train", labelled, "--data", folders, "-o", w1, "--epochs", "1", "--quiet");
  g_assert_cmpint (r.status, ==, 0);
  tu_result_clear (&r);
  r = RUN ("eval", labelled, "--data", folders, "--weights", w1);
  g_assert_cmpint (r.status, ==, 0);
  g_assert_nonnull (strstr (r.out, "T-shirt/top"));
  g_assert_nonnull (strstr (r.out, "images"));
  tu_result_clear (&r);

  /* No labels=: the folder names, stored in the weights, name the classes. */
  g_autofree char *ini = g_build_filename (f->dir, "scores.ini", NULL);
  g_assert_true (g_file_set_contents (ini, no_labels_pipeline, -1, NULL));
  g_autofree char *w2 = g_build_filename (f->dir, "w2.safetensors", NULL);
  r = RUN ("train", ini, "--data", folders, "-o", w2, "--epochs", "8", "--lr", "0.01", "--quiet");
  g_assert_cmpint (r.status, ==, 0);
  tu_result_clear (&r);
  g_autofree char *photo_dir = g_build_filename (f->dir, "photos", NULL);
  static const char *const one[] = { "x", NULL };
  write_class_folders (photo_dir, one, 1);
  g_autofree char *photo = g_build_filename (photo_dir, "x", "i0.png", NULL);
  r = RUN ("run", ini, photo, "--weights", w2, "--format", "jsonl", "--quiet");
  g_assert_cmpint (r.status, ==, 0);
  g_assert_nonnull (strstr (r.out, "\"T-shirt_top\""));
  g_assert_nonnull (strstr (r.out, "\"Trouser\""));
  tu_result_clear (&r);
  r = RUN ("eval", ini, "--data", folders, "--weights", w2, "--format", "json");
  g_assert_cmpint (r.status, ==, 0);
  g_assert_nonnull (strstr (r.out, "\"name\":\"T-shirt_top\""));
  tu_result_clear (&r);
}

/* Class folders through a cached stage and random ones: trained; an
 * image of another size before the random stages is refused, naming the
 * file and what to do. */
static void
test_augmented_class_folders (Fixture *f, gconstpointer unused)
{
  g_autofree char *folders = g_build_filename (f->dir, "folders", NULL);
  static const char *const names[] = { "a", "b", NULL };
  write_class_folders (folders, names, 6);
  g_autofree char *ini = g_build_filename (f->dir, "aug.ini", NULL);
  g_assert_true (g_file_set_contents (ini,
    "[pipeline]\ninput=1x8x8\n"
    "[inv]\ntype=invert\n"
    "[flip]\ntype=randomflip\ndirection=vertical\n"
    "[fit]\ntype=resize\nwidth=8\nheight=8\n"
    "[conv]\ntype=conv2d\nfilters=4\nsize=3\nactivation=relu\n"
    "[fc]\ntype=dense\nunits=2\n", -1, NULL));
  g_autofree char *w = g_build_filename (f->dir, "w.safetensors", NULL);
  TuResult r = RUN ("train", ini, "--data", folders, "-o", w, "--epochs", "2", "--quiet");
  g_assert_cmpint (r.status, ==, 0);
  tu_result_clear (&r);

  g_autoptr (StTensor) big = st_tensor_new0 (1, 1, 12, 12);
  g_autofree char *odd = g_build_filename (folders, "b", "odd.png", NULL);
  g_assert_true (st_image_save (big, odd, ST_FORMAT_PNG, 8, 90, NULL));
  r = RUN ("train", ini, "--data", folders, "-o", w, "--epochs", "1", "--quiet");
  g_assert_cmpint (r.status, ==, 2);
  g_test_message ("%s", r.err);
  g_assert_nonnull (strstr (r.err, "odd.png: image is 1x1x12x12 before the random stage 'flip', "
                                   "but the first was 1x1x8x8"));
  g_assert_nonnull (strstr (r.err, "(resize)"));
  tu_result_clear (&r);
}

/* Outputs are checked before training; a resume with nothing left claims
 * nothing it did not write; the summary line reads right (case 18). */
static void
test_outputs (Fixture *f, gconstpointer unused)
{
  g_autofree char *folders = g_build_filename (f->dir, "folders", NULL);
  static const char *const names[] = { "left", "right", NULL };
  write_class_folders (folders, names, 4);
  g_autofree char *ini = g_build_filename (f->dir, "scores.ini", NULL);
  g_assert_true (g_file_set_contents (ini, no_labels_pipeline, -1, NULL));

  g_autofree char *nowhere = g_build_filename (f->dir, "nonexistent", "dir", "w.safetensors", NULL);
  TuResult r = RUN ("train", ini, "--data", folders, "-o", nowhere);
  g_assert_cmpint (r.status, ==, 2);
  g_assert_nonnull (strstr (r.err, "cannot write the weights: folder"));
  g_assert_nonnull (strstr (r.err, "does not exist"));
  g_assert_null (strstr (r.err, "training on"));
  tu_result_clear (&r);

  g_autofree char *w = g_build_filename (f->dir, "w.safetensors", NULL);
  g_autofree char *bad_log = g_build_filename (f->dir, "missing", "log.csv", NULL);
  r = RUN ("train", ini, "--data", folders, "-o", w, "--log", bad_log);
  g_assert_cmpint (r.status, ==, 2);
  g_assert_nonnull (strstr (r.err, "cannot write the log"));
  tu_result_clear (&r);
  r = RUN ("train", ini, "--data", folders, "-o", w, "--plot", f->dir);
  g_assert_cmpint (r.status, ==, 2);
  g_assert_nonnull (strstr (r.err, "cannot write the plot there: it is a folder"));
  tu_result_clear (&r);
  /* -o w.csv would be overwritten by its own default log. */
  g_autofree char *as_csv = g_build_filename (f->dir, "w.csv", NULL);
  r = RUN ("train", ini, "--data", folders, "-o", as_csv);
  g_assert_cmpint (r.status, ==, 2);
  g_assert_nonnull (strstr (r.err, "named for both the weights and the log"));
  tu_result_clear (&r);
  g_assert_false (g_file_test (w, G_FILE_TEST_EXISTS));
  g_assert_false (g_file_test (as_csv, G_FILE_TEST_EXISTS));

  /* Without a test set, the summary line has no stray count. */
  r = RUN ("train", ini, "--data", folders, "-o", w, "--epochs", "1");
  g_assert_cmpint (r.status, ==, 0);
  g_assert_nonnull (strstr (r.err, "training on 8 images, 1 epochs, batch 64"));
  tu_result_clear (&r);

  /* A checkpoint with all its epochs done: weights written, no log or plot
   * claimed, and the log of the first run left as it was. */
  g_autofree char *csv = g_build_filename (f->dir, "w.csv", NULL);
  g_autofree char *png = g_build_filename (f->dir, "w.png", NULL);
  g_autofree char *ckpt = g_build_filename (f->dir, "w.ckpt.safetensors", NULL);
  g_autofree char *log_before = NULL;
  g_assert_true (g_file_get_contents (csv, &log_before, NULL, NULL));
  g_assert_cmpint (g_unlink (png), ==, 0);
  r = RUN ("train", ini, "--data", folders, "-o", w, "--epochs", "1", "--resume", ckpt);
  g_assert_cmpint (r.status, ==, 0);
  g_assert_nonnull (strstr (r.err, "had already done all 1 epochs, so no log or plot was written"));
  g_assert_null (strstr (r.err, "(log "));
  tu_result_clear (&r);
  g_autofree char *log_after = NULL;
  g_assert_true (g_file_get_contents (csv, &log_after, NULL, NULL));
  g_assert_cmpstr (log_before, ==, log_after);
  g_assert_false (g_file_test (png, G_FILE_TEST_EXISTS));
}

/* Without input=, data that the learnable stages were not sized for is
 * refused with what to write (case 20). */
static void
test_input_missing (Fixture *f, gconstpointer unused)
{
  g_autofree char *folders = g_build_filename (f->dir, "folders", NULL);
  static const char *const names[] = { "left", "right", NULL };
  write_class_folders (folders, names, 2);
  g_autofree char *ini = g_build_filename (f->dir, "no-input.ini", NULL);
  g_assert_true (g_file_set_contents (ini,
    "[conv]\ntype=conv2d\nfilters=2\nsize=3\n[pool]\ntype=maxpool\nsize=8\n"
    "[fc]\ntype=dense\nunits=2\n", -1, NULL));
  g_autofree char *w = g_build_filename (f->dir, "w.safetensors", NULL);
  const char *want = "the [pipeline] group has no input=, so stage 'conv' was sized for "
                     "3x256x256; the images of ";
  TuResult r = RUN ("train", ini, "--data", folders, "-o", w);
  g_assert_cmpint (r.status, ==, 2);
  g_assert_nonnull (strstr (r.err, want));
  g_assert_nonnull (strstr (r.err, "make it 1x8x8: add input=1x8x8 to the [pipeline] group"));
  g_assert_null (strstr (r.err, "declared with another shape"));
  tu_result_clear (&r);
  /* IDX data the same way. */
  r = RUN ("train", ini, "--data", f->data, "-o", w);
  g_assert_cmpint (r.status, ==, 2);
  g_assert_nonnull (strstr (r.err, "add input=1x8x8 to the [pipeline] group"));
  tu_result_clear (&r);
  g_assert_false (g_file_test (w, G_FILE_TEST_EXISTS));
}

/* Gradients and the optimiser's moments count against --max-memory before
 * training starts: 321,608 bytes of parameters take four times that with
 * adam (over 1 MB) and three times with sgd (under it). */
static void
test_training_memory (Fixture *f, gconstpointer unused)
{
  g_autofree char *ini = g_build_filename (f->dir, "wide.ini", NULL);
  g_assert_true (g_file_set_contents (ini, "[pipeline]\ninput=1x8x8\n"
                                      "[hidden]\ntype=dense\nunits=1200\n"
                                      "[fc]\ntype=dense\nunits=2\n", -1, NULL));
  g_autofree char *w = g_build_filename (f->dir, "w.safetensors", NULL);
  TuResult r = RUN ("train", ini, "--data", f->data, "-o", w, "--epochs", "1", "--quiet",
                    "--max-memory", "1M");
  g_assert_cmpint (r.status, ==, 2);
  g_assert_nonnull (strstr (r.err, "wide.ini: training needs 321.6 kB for the gradients and "
                                   "643.2 kB for the adam optimizer's state, 1.3 MB with the "
                                   "parameters; the limit is 1.0 MB (--max-memory)"));
  tu_result_clear (&r);
  g_assert_false (g_file_test (w, G_FILE_TEST_EXISTS));
  r = RUN ("train", ini, "--data", f->data, "-o", w, "--epochs", "1", "--quiet",
           "--max-memory", "1M", "--optimizer", "sgd");
  g_assert_cmpint (r.status, ==, 0);
  tu_result_clear (&r);
  g_assert_true (g_file_test (w, G_FILE_TEST_EXISTS));
}

/* A checkpoint's parameters go through the weights file checks: one
 * written for another shape of network is refused naming the tensor and
 * both shapes; and a seed past 32 bits is taken whole. */
static void
test_checkpoint_other_pipeline (Fixture *f, gconstpointer unused)
{
  g_autofree char *w = g_build_filename (f->dir, "w.safetensors", NULL);
  g_autofree char *ckpt = g_build_filename (f->dir, "w.ckpt.safetensors", NULL);
  TuResult r = RUN ("train", f->ini, "--data", f->data, "-o", w, "--epochs", "1", "--quiet",
                    "--seed", "5000000000");
  g_assert_cmpint (r.status, ==, 0);
  tu_result_clear (&r);
  g_autoptr (GError) error = NULL;
  g_autoptr (StTensorFile) file = st_tensor_file_read (w, &error);
  g_assert_no_error (error);
  g_assert_cmpstr (g_hash_table_lookup (file->metadata, "strata.seed"), ==, "5000000000");

  g_autofree char *wider = g_build_filename (f->dir, "wider.ini", NULL);
  g_autofree char *text = g_strdup (tiny_pipeline);
  char *filters = strstr (text, "filters=4");
  filters[strlen ("filters=")] = '6';
  g_assert_true (g_file_set_contents (wider, text, -1, NULL));
  g_autofree char *w2 = g_build_filename (f->dir, "w2.safetensors", NULL);
  r = RUN ("train", wider, "--data", f->data, "-o", w2, "--epochs", "2", "--quiet",
           "--resume", ckpt);
  g_assert_cmpint (r.status, ==, 2);
  g_assert_nonnull (strstr (r.err, "w.ckpt.safetensors: tensor 'conv.weight': shape [4, 1, 3, 3] "
                                   "in the file, the pipeline expects [6, 1, 3, 3]"));
  tu_result_clear (&r);
  g_assert_false (g_file_test (w2, G_FILE_TEST_EXISTS));
}

/* What st_train reports through the callback, in place of printing: one
 * epoch event per epoch with its test figures, the last batch of every
 * epoch as progress, the optimizer's default learning rate when none is
 * given, and the same losses as the CSV log. */
typedef struct {
  int n_epochs, n_progress, last_batch;
  double lr, loss[2], test_accuracy[2];
} Reports;

static void
collect_report (const StTrainReport *r, gpointer data)
{
  Reports *got = data;
  if (r->event == ST_TRAIN_PROGRESS)
    {
      got->n_progress++;
      got->last_batch = r->batch;
      g_assert_cmpint (r->n_batches, ==, 8);
      return;
    }
  g_assert_cmpint (r->event, ==, ST_TRAIN_EPOCH);
  g_assert_cmpint (r->epoch, ==, got->n_epochs + 1);
  g_assert_cmpint (r->epochs, ==, 2);
  g_assert_cmpint (got->last_batch, ==, 8);
  got->lr = r->lr;
  got->loss[got->n_epochs] = r->loss;
  got->test_accuracy[got->n_epochs] = r->test_accuracy;
  got->n_epochs++;
}

/* st_train's inputs for the tiny pipeline on the fixture's training set:
 * two epochs of eight batches, on one thread. */
typedef struct {
  StRegistry *reg;
  StPipeline *p;
  StDataset *train;
  StTrainOptions opt;
} LibraryRun;

static void
library_run_init (LibraryRun *run, const Fixture *f)
{
  g_autoptr (GError) error = NULL;
  run->reg = st_registry_new (NULL);
  run->p = st_pipeline_load_file (run->reg, f->ini, &error);
  g_assert_no_error (error);
  run->train = st_dataset_load_idx_dir (f->data, FALSE, &error);
  g_assert_no_error (error);
  st_train_options_init (&run->opt);
  run->opt.epochs = 2;
  run->opt.batch_size = 50;
  run->opt.threads = 1;
}

static void
library_run_clear (LibraryRun *run)
{
  st_dataset_free (run->train);
  st_pipeline_free (run->p);
  st_registry_free (run->reg);
}

static void
test_report_callback (Fixture *f, gconstpointer unused)
{
  g_autoptr (GError) error = NULL;
  LibraryRun run;
  library_run_init (&run, f);
  g_autoptr (StDataset) test = st_dataset_load_idx_dir (f->data, TRUE, &error);
  g_assert_no_error (error);
  g_autofree char *csv = g_build_filename (f->dir, "log.csv", NULL);
  run.opt.log_csv = csv;
  Reports got = { 0 };
  run.opt.report = collect_report;
  run.opt.report_data = &got;
  int epochs_run = 0;
  g_assert_true (st_train (run.p, run.train, test, &run.opt, &epochs_run, &error));
  g_assert_no_error (error);
  g_assert_cmpint (epochs_run, ==, 2);
  g_assert_cmpint (got.n_epochs, ==, 2);
  g_assert_cmpint (got.n_progress, >=, 2);
  g_assert_cmpfloat (got.lr, ==, 1e-3);
  for (int e = 0; e < 2; e++)
    g_assert_true (got.test_accuracy[e] >= 0 && got.test_accuracy[e] <= 1);
  g_autofree char *log = NULL;
  g_assert_true (g_file_get_contents (csv, &log, NULL, NULL));
  g_auto (GStrv) lines = g_strsplit (log, "\n", -1);
  for (int e = 0; e < 2; e++)
    {
      g_autofree char *start = g_strdup_printf ("%d,0.001,%.6f,", e + 1, got.loss[e]);
      g_assert_true (g_str_has_prefix (lines[e + 1], start));
    }
  library_run_clear (&run);
}

/* Training's progress line is run's (progress.h): each epoch's bar ends
 * on its full count with the loss, accuracy, rate and time left, and is
 * removed before the epoch's report is written. */
static void
log_progress_line (const char *line, gpointer data)
{
  g_ptr_array_add (data, g_strdup (line));
}

static void
log_epoch_report (const StTrainReport *r, gpointer data)
{
  if (r->event == ST_TRAIN_EPOCH)
    g_ptr_array_add (data, g_strdup_printf ("EPOCH %d loss %.4f  acc %.2f%%", r->epoch, r->loss,
                                            100 * r->accuracy));
}

static void
test_progress_line (Fixture *f, gconstpointer unused)
{
  g_autoptr (GError) error = NULL;
  LibraryRun run;
  library_run_init (&run, f);
  g_autoptr (GPtrArray) lines = g_ptr_array_new_with_free_func (g_free);
  run.opt.progress = log_progress_line;
  run.opt.progress_data = lines;
  run.opt.report = log_epoch_report;
  run.opt.report_data = lines;
  g_assert_true (st_train (run.p, run.train, NULL, &run.opt, NULL, &error));
  g_assert_no_error (error);
  int epochs = 0;
  for (guint i = 0; i < lines->len; i++)
    {
      const char *line = lines->pdata[i];
      if (!g_str_has_prefix (line, "EPOCH "))
        continue;
      /* The full bar with the figures the report gives, then its removal. */
      epochs++;
      g_assert_cmpuint (i, >=, 2);
      g_assert_cmpstr (lines->pdata[i - 1], ==, "");
      const char *bar = lines->pdata[i - 2];
      g_autofree char *head = g_strdup_printf ("epoch %d/2 [##############################] 8/8  ",
                                               epochs);
      g_assert_true (g_str_has_prefix (bar, head));
      g_assert_nonnull (strstr (bar, line + strlen ("EPOCH 1 ")));
      g_assert_nonnull (strstr (bar, " img/s  0:00 left"));
    }
  g_assert_cmpint (epochs, ==, 2);
  library_run_clear (&run);
}

/* ---- Label smoothing and per-step schedules ------------------------------------- */

/* The loss and its gradient against the definition, computed here in
 * double: targets t = (1 - E) one-hot + E / K, loss -Σ t log softmax(x),
 * gradient (softmax(x) - t) / B; at E = 0 the plain cross-entropy. */
static void
test_label_smoothing_loss (Fixture *f, gconstpointer unused)
{
  const float x[] = { 1.0f, -2.0f, 0.5f, 3.0f, /* */ -1.0f, 0.0f, 2.0f, 0.25f };
  const int labels[] = { 3, 1 };
  const double smoothing[] = { 0, 0.1, 0.5 };
  g_autoptr (StTensor) logits = tu_tensor_from (2, 4, 1, 1, x);
  for (guint s = 0; s < G_N_ELEMENTS (smoothing); s++)
    {
      double e = smoothing[s], want_loss = 0;
      double want_grad[8];
      for (int b = 0; b < 2; b++)
        {
          double z = 0;
          for (int j = 0; j < 4; j++)
            z += exp (x[b * 4 + j]);
          for (int j = 0; j < 4; j++)
            {
              double p = exp (x[b * 4 + j]) / z;
              double t = (1 - e) * (j == labels[b]) + e / 4;
              want_loss -= t * log (p);
              want_grad[b * 4 + j] = (p - t) / 2;
            }
        }
      g_autoptr (StTensor) grad = st_tensor_new (logits->shape, NULL);
      int correct = 0;
      double loss = st_softmax_cross_entropy (logits, labels, e, grad, &correct);
      g_test_message ("E = %g: loss %.9f, want %.9f", e, loss, want_loss);
      g_assert_cmpfloat_with_epsilon (loss, want_loss, 1e-6);
      for (int i = 0; i < 8; i++)
        g_assert_cmpfloat_with_epsilon (grad->data[i], want_grad[i], 1e-7);
      /* Sample 0's highest score is its label 3; sample 1's is 2, not 1. */
      g_assert_cmpint (correct, ==, 1);
    }
}

/* The rate of each step against the formulas, written out here: PyTorch's
 * OneCycleLR with its defaults (total_steps = epochs * batches), and
 * linear warm-up then cosine; the per-epoch schedules keep their value
 * through an epoch. */
static void
test_schedule_values (Fixture *f, gconstpointer unused)
{
  StTrainOptions opt;
  st_train_options_init (&opt);
  opt.lr = 0.1;
  opt.epochs = 2;
  opt.schedule = ST_SCHEDULE_ONE_CYCLE;
  /* 10 steps: up over steps 0..2 (0.3 * 10 - 1 = 2), down over 2..9. */
  const double initial = 0.1 / 25, final = initial / 1e4;
  for (int k = 0; k < 10; k++)
    {
      double want = k <= 2 ? 0.1 + (initial - 0.1) / 2 * (cos (G_PI * k / 2.0) + 1)
                           : final + (0.1 - final) / 2 * (cos (G_PI * (k - 2) / 7.0) + 1);
      g_assert_cmpfloat_with_epsilon (st_schedule_lr (&opt, k, 5), want, 1e-15);
    }
  g_assert_cmpfloat_with_epsilon (st_schedule_lr (&opt, 0, 5), 0.004, 1e-15);
  g_assert_cmpfloat_with_epsilon (st_schedule_lr (&opt, 1, 5), 0.052, 1e-15);
  g_assert_cmpfloat_with_epsilon (st_schedule_lr (&opt, 2, 5), 0.1, 1e-15);
  g_assert_cmpfloat_with_epsilon (st_schedule_lr (&opt, 9, 5), 4e-7, 1e-18);
  /* Past the end (a resume with more epochs), the floor. */
  g_assert_cmpfloat_with_epsilon (st_schedule_lr (&opt, 12, 5), 4e-7, 1e-18);

  opt.schedule = ST_SCHEDULE_WARMUP_COSINE;
  opt.epochs = 3;
  opt.warmup_epochs = 1;
  g_assert_cmpint (st_schedule_warmup_steps (&opt, 4), ==, 4);
  for (int k = 0; k < 12; k++)
    {
      double want = k < 4 ? 0.1 * k / 4.0 : 0.1 * 0.5 * (1 + cos (G_PI * (k - 4) / 8.0));
      g_assert_cmpfloat_with_epsilon (st_schedule_lr (&opt, k, 4), want, 1e-15);
    }
  g_assert_cmpfloat (st_schedule_lr (&opt, 0, 4), ==, 0);
  g_assert_cmpfloat_with_epsilon (st_schedule_lr (&opt, 2, 4), 0.05, 1e-15);
  g_assert_cmpfloat_with_epsilon (st_schedule_lr (&opt, 4, 4), 0.1, 1e-15);
  g_assert_cmpfloat_with_epsilon (st_schedule_lr (&opt, 8, 4), 0.05, 1e-15);
  opt.warmup_epochs = 0;
  opt.warmup_steps = 2;
  g_assert_cmpfloat_with_epsilon (st_schedule_lr (&opt, 1, 4), 0.05, 1e-15);
  g_assert_cmpfloat_with_epsilon (st_schedule_lr (&opt, 7, 4), 0.1 * 0.5 * (1 + cos (G_PI * 0.5)),
                                  1e-15);

  opt.schedule = ST_SCHEDULE_STEP;
  opt.step_epochs = 1;
  opt.gamma = 0.5;
  g_assert_cmpfloat (st_schedule_lr (&opt, 3, 4), ==, 0.1);
  g_assert_cmpfloat (st_schedule_lr (&opt, 4, 4), ==, 0.05);
  opt.schedule = ST_SCHEDULE_COSINE;
  g_assert_cmpfloat (st_schedule_lr (&opt, 7, 4), ==, 0.1 * 0.5 * (1 + cos (G_PI / 3)));
}

typedef struct {
  double last_lr;
  int interrupt_after;         /* raise SIGINT at this epoch's report; 0: never */
} ScheduleReports;

static void
schedule_report (const StTrainReport *r, gpointer data)
{
  ScheduleReports *got = data;
  got->last_lr = r->lr;
  if (r->event == ST_TRAIN_EPOCH && r->epoch == got->interrupt_after)
    raise (SIGINT);
}

/* One-cycle with label smoothing for 3 epochs of 8 steps: the same
 * weights when stopped after the first epoch and resumed (label smoothing
 * then coming from the checkpoint), as without the stop; the last step's
 * rate is the one-cycle floor; smoothing changes the weights; a resume
 * that contradicts the checkpoint is refused. */
static void
test_schedule_resume (Fixture *f, gconstpointer unused)
{
  g_autoptr (GError) error = NULL;
  char *paths[3];
  const char *names[] = { "whole", "resumed", "unsmoothed" };
  for (int i = 0; i < 3; i++)
    paths[i] = g_strdup_printf ("%s/%s.safetensors", f->dir, names[i]);
  g_autofree char *ckpt = g_build_filename (f->dir, "resumed.ckpt.safetensors", NULL);
  for (int i = 0; i < 3; i++)
    {
      LibraryRun run;
      library_run_init (&run, f);
      run.opt.epochs = 3;
      run.opt.schedule = ST_SCHEDULE_ONE_CYCLE;
      run.opt.lr = 0.01;
      run.opt.label_smoothing = i == 2 ? 0 : 0.2;
      run.opt.weights_out = paths[i];
      run.opt.checkpoint = i == 1 ? ckpt : NULL;
      ScheduleReports got = { 0, i == 1 ? 1 : 0 };
      run.opt.report = schedule_report;
      run.opt.report_data = &got;
      if (i == 1)
        {
          g_assert_false (st_train (run.p, run.train, NULL, &run.opt, NULL, &error));
          g_assert_error (error, ST_ERROR, ST_ERROR_INTERRUPTED);
          g_clear_error (&error);
          g_assert_true (g_file_test (ckpt, G_FILE_TEST_IS_REGULAR));
          /* Another smoothing or schedule than the checkpoint's is refused. */
          run.opt.resume = ckpt;
          run.opt.label_smoothing = 0.1;
          g_assert_false (st_train (run.p, run.train, NULL, &run.opt, NULL, &error));
          g_assert_error (error, ST_ERROR, ST_ERROR_USAGE);
          g_assert_nonnull (strstr (error->message, "written with --label-smoothing 0.2, this run gives 0.1"));
          g_clear_error (&error);
          run.opt.label_smoothing = -1;
          run.opt.schedule = ST_SCHEDULE_COSINE;
          g_assert_false (st_train (run.p, run.train, NULL, &run.opt, NULL, &error));
          g_assert_error (error, ST_ERROR, ST_ERROR_USAGE);
          g_assert_nonnull (strstr (error->message, "schedule 'one-cycle', this run uses 'cosine'"));
          g_clear_error (&error);
          /* Not given: the checkpoint's 0.2. */
          run.opt.schedule = ST_SCHEDULE_ONE_CYCLE;
          got.interrupt_after = 0;
        }
      g_assert_true (st_train (run.p, run.train, NULL, &run.opt, NULL, &error));
      g_assert_no_error (error);
      g_assert_cmpfloat_with_epsilon (got.last_lr, 0.01 / 25 / 1e4, 1e-18);
      library_run_clear (&run);
    }
  g_assert_true (same_file_contents (paths[0], paths[1]));
  g_assert_false (same_file_contents (paths[0], paths[2]));
  for (int i = 0; i < 3; i++)
    g_free (paths[i]);

  /* The options that contradict each other, before any data is read. */
  g_autofree char *w = g_build_filename (f->dir, "w.safetensors", NULL);
  struct { const char *args[4]; const char *message; } cases[] = {
    { { "--warmup", "1" }, "--warmup and --warmup-steps apply to --schedule warmup-cosine only" },
    { { "--schedule", "warmup-cosine", "--warmup", "1" }, NULL },
    { { "--label-smoothing", "1" }, "--label-smoothing" },
    { { "--label-smoothing", "-0.1" }, "--label-smoothing" },
  };
  for (guint i = 0; i < G_N_ELEMENTS (cases); i++)
    {
      TuResult r = RUN ("train", f->ini, "--data", "/nonexistent", "-o", w, cases[i].args[0],
                        cases[i].args[1], cases[i].args[2] ? cases[i].args[2] : "--quiet",
                        cases[i].args[3] ? cases[i].args[3] : "--quiet");
      g_assert_cmpint (r.status, ==, 2);
      /* The one valid combination fails on the data, not on the options. */
      g_assert_nonnull (strstr (r.err, cases[i].message ? cases[i].message : "/nonexistent"));
      tu_result_clear (&r);
    }
  TuResult r = RUN ("train", f->ini, "--data", f->data, "-o", w, "--schedule", "warmup-cosine",
                    "--warmup", "1", "--warmup-steps", "3", "--quiet");
  g_assert_cmpint (r.status, ==, 2);
  g_assert_nonnull (strstr (r.err, "give the warm-up in epochs or in steps, not both"));
  tu_result_clear (&r);
}

/* A checkpoint from before label smoothing and schedules were kept (no
 * such keys) resumes with neither; a stored smoothing out of range is
 * refused with the file's name. */
static void
test_checkpoint_settings (Fixture *f, gconstpointer unused)
{
  g_autofree char *w = g_build_filename (f->dir, "w.safetensors", NULL);
  g_autofree char *ckpt = g_build_filename (f->dir, "w.ckpt.safetensors", NULL);
  g_autofree char *old = g_build_filename (f->dir, "old.ckpt.safetensors", NULL);
  g_autofree char *bad = g_build_filename (f->dir, "bad.ckpt.safetensors", NULL);
  TuResult r = RUN ("train", f->ini, "--data", f->data, "-o", w, "--epochs", "1", "--quiet");
  g_assert_cmpint (r.status, ==, 0);
  tu_result_clear (&r);
  g_autoptr (GError) error = NULL;
  g_autoptr (StTensorFile) file = st_tensor_file_read (ckpt, &error);
  g_assert_no_error (error);
  g_assert_cmpstr (g_hash_table_lookup (file->metadata, "strata.label_smoothing"), ==, "0x0p+0");
  g_assert_cmpstr (g_hash_table_lookup (file->metadata, "strata.schedule"), ==, "constant");
  g_assert_true (g_hash_table_remove (file->metadata, "strata.label_smoothing"));
  g_assert_true (g_hash_table_remove (file->metadata, "strata.schedule"));
  g_assert_true (st_tensor_file_write (old, (const StNamedTensor *const *) file->tensors->pdata,
                                       file->tensors->len, file->metadata, &error));
  g_hash_table_insert (file->metadata, g_strdup ("strata.label_smoothing"), g_strdup ("1.5"));
  g_assert_true (st_tensor_file_write (bad, (const StNamedTensor *const *) file->tensors->pdata,
                                       file->tensors->len, file->metadata, &error));
  r = RUN ("train", f->ini, "--data", f->data, "-o", w, "--epochs", "2", "--resume", old,
           "--schedule", "one-cycle", "--quiet");
  g_assert_cmpint (r.status, ==, 0);
  tu_result_clear (&r);
  r = RUN ("train", f->ini, "--data", f->data, "-o", w, "--epochs", "2", "--resume", bad, "--quiet");
  g_assert_cmpint (r.status, ==, 2);
  g_assert_nonnull (strstr (r.err, "bad.ckpt.safetensors: the checkpoint's label smoothing '1.5' "
                                   "is not in [0, 1)"));
  tu_result_clear (&r);
}

/* ---- A residual network learns ------------------------------------------------ */

/* DIR/PREFIX-images-idx3-ubyte and -labels-idx1-ubyte: n 12x12 images of
 * four classes, stripes of period 4 at a random phase running
 * horizontally (0), vertically (1), along one diagonal (2) or the other
 * (3), with noise from seed. */
static void
write_stripes_idx (const char *dir, const char *prefix, int n, guint32 seed)
{
  g_autoptr (GRand) rand = g_rand_new_with_seed (seed);
  g_autoptr (GByteArray) images = g_byte_array_new ();
  g_autoptr (GByteArray) labels = g_byte_array_new ();
  tu_put_be32 (images, 0x803);
  tu_put_be32 (images, n);
  tu_put_be32 (images, 12);
  tu_put_be32 (images, 12);
  tu_put_be32 (labels, 0x801);
  tu_put_be32 (labels, n);
  for (int i = 0; i < n; i++)
    {
      guint8 label = (guint8) (i % 4);
      g_byte_array_append (labels, &label, 1);
      int phase = g_rand_int_range (rand, 0, 4);
      for (int y = 0; y < 12; y++)
        for (int x = 0; x < 12; x++)
          {
            int along = label == 0 ? y : label == 1 ? x : label == 2 ? x + y : x - y + 12;
            gboolean bright = (along + phase) % 4 < 2;
            guint8 v = (guint8) CLAMP ((bright ? 180 : 60) + g_rand_int_range (rand, -40, 40), 0,
                                       255);
            g_byte_array_append (images, &v, 1);
          }
    }
  g_autofree char *ip = g_strdup_printf ("%s/%s-images-idx3-ubyte", dir, prefix);
  g_autofree char *lp = g_strdup_printf ("%s/%s-labels-idx1-ubyte", dir, prefix);
  g_assert_true (g_file_set_contents (ip, (char *) images->data, images->len, NULL));
  g_assert_true (g_file_set_contents (lp, (char *) labels->data, labels->len, NULL));
}

/* A stem and one residual block (the stem's output feeds both the block
 * and its addition), global pooling, four scores. */
static const char *residual_pipeline =
  "[pipeline]\ninput=1x12x12\n"
  "[stem]\ntype=conv2d\nfilters=8\nsize=3\npadding=same\nactivation=relu\n"
  "[a]\ntype=conv2d\nfilters=8\nsize=3\npadding=same\nactivation=relu\n"
  "[b]\ntype=conv2d\nfilters=8\nsize=3\npadding=same\n"
  "[sum]\ntype=add\ninput=stem,b\n"
  "[relu]\ntype=activation\nfunction=relu\n"
  "[gap]\ntype=globalavgpool\n"
  "[fc]\ntype=dense\nunits=4\n"
  "[prob]\ntype=softmax\n";

/* Trained through the CLI on 400 images for 4 epochs (about a second),
 * the residual network tells the four orientations apart on 100 unseen
 * images (it scores 1.0 with seeds 1 to 8; 0.95 leaves room). */
static void
test_residual_learns (Fixture *f, gconstpointer unused)
{
  g_autofree char *data = g_build_filename (f->dir, "stripes", NULL);
  g_assert_cmpint (g_mkdir (data, 0755), ==, 0);
  write_stripes_idx (data, "train", 400, 21);
  write_stripes_idx (data, "t10k", 100, 22);
  g_autofree char *ini = g_build_filename (f->dir, "residual.ini", NULL);
  g_assert_true (g_file_set_contents (ini, residual_pipeline, -1, NULL));
  g_autofree char *w = g_build_filename (f->dir, "residual.safetensors", NULL);
  TuResult r = RUN ("train", ini, "--data", data, "-o", w, "--epochs", "4", "--batch", "16",
                    "--lr", "0.01", "--seed", "3", "-j", "2", "--quiet");
  g_assert_cmpint (r.status, ==, 0);
  tu_result_clear (&r);
  r = RUN ("eval", ini, "--data", data, "--weights", w, "--format", "json");
  g_assert_cmpint (r.status, ==, 0);
  g_autoptr (JsonParser) parser = json_parser_new ();
  g_assert_true (json_parser_load_from_data (parser, r.out, -1, NULL));
  JsonObject *o = json_node_get_object (json_parser_get_root (parser));
  double acc = json_object_get_double_member (o, "accuracy");
  g_test_message ("residual network on 4 stripe orientations: test accuracy %.3f", acc);
  g_assert_cmpint (json_object_get_int_member (o, "images"), ==, 100);
  g_assert_cmpfloat (acc, >=, 0.95);
  tu_result_clear (&r);
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  exe = g_getenv ("STRATA_EXE");
  if (!exe)
    {
      g_printerr ("STRATA_EXE is not set: run this test through 'meson test'\n");
      return 1;
    }
  g_test_add ("/train/synthetic-learns", Fixture, NULL, fixture_set_up, test_synthetic_learns, fixture_tear_down);
  g_test_add ("/train/seed-and-resume", Fixture, NULL, fixture_set_up, test_seed_and_resume, fixture_tear_down);
  g_test_add ("/train/augmented", Fixture, NULL, fixture_set_up, test_augmented_training, fixture_tear_down);
  g_test_add ("/train/augmented-resume", Fixture, NULL, fixture_set_up, test_augmented_resume, fixture_tear_down);
  g_test_add ("/train/augmented-class-folders", Fixture, NULL, fixture_set_up, test_augmented_class_folders, fixture_tear_down);
  g_test_add ("/train/augmented-interrupt", Fixture, NULL, fixture_set_up, test_augmented_interrupt, fixture_tear_down);
  g_test_add ("/train/bad-options", Fixture, NULL, fixture_set_up, test_bad_options, fixture_tear_down);
  g_test_add ("/train/predictions", Fixture, NULL, fixture_set_up, test_predictions_csv, fixture_tear_down);
  g_test_add ("/train/option-ranges", Fixture, NULL, fixture_set_up, test_option_ranges, fixture_tear_down);
  g_test_add ("/train/interrupt", Fixture, NULL, fixture_set_up, test_interrupt, fixture_tear_down);
  g_test_add ("/train/divergence", Fixture, NULL, fixture_set_up, test_divergence, fixture_tear_down);
  g_test_add ("/train/checkpoint-position", Fixture, NULL, fixture_set_up, test_checkpoint_position, fixture_tear_down);
  g_test_add ("/train/stage-failure", Fixture, NULL, fixture_set_up, test_stage_failure, fixture_tear_down);
  g_test_add ("/train/weights-required", Fixture, NULL, fixture_set_up, test_weights_required, fixture_tear_down);
  g_test_add ("/train/class-folders", Fixture, NULL, fixture_set_up, test_class_folders, fixture_tear_down);
  g_test_add ("/train/outputs", Fixture, NULL, fixture_set_up, test_outputs, fixture_tear_down);
  g_test_add ("/train/input-missing", Fixture, NULL, fixture_set_up, test_input_missing, fixture_tear_down);
  g_test_add ("/train/training-memory", Fixture, NULL, fixture_set_up, test_training_memory, fixture_tear_down);
  g_test_add ("/train/checkpoint-other-pipeline", Fixture, NULL, fixture_set_up, test_checkpoint_other_pipeline, fixture_tear_down);
  g_test_add ("/train/report-callback", Fixture, NULL, fixture_set_up, test_report_callback, fixture_tear_down);
  g_test_add ("/train/progress-line", Fixture, NULL, fixture_set_up, test_progress_line, fixture_tear_down);
  g_test_add ("/train/label-smoothing-loss", Fixture, NULL, fixture_set_up, test_label_smoothing_loss, fixture_tear_down);
  g_test_add ("/train/schedule-values", Fixture, NULL, fixture_set_up, test_schedule_values, fixture_tear_down);
  g_test_add ("/train/schedule-resume", Fixture, NULL, fixture_set_up, test_schedule_resume, fixture_tear_down);
  g_test_add ("/train/checkpoint-settings", Fixture, NULL, fixture_set_up, test_checkpoint_settings, fixture_tear_down);
  g_test_add ("/train/residual-learns", Fixture, NULL, fixture_set_up, test_residual_learns, fixture_tear_down);
  g_test_add ("/train/fashion-mnist-subset", Fixture, NULL, fixture_set_up, test_fashion_mnist_subset, fixture_tear_down);
  return g_test_run ();
}
