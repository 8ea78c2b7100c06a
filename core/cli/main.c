/* strata — the command-line tool. */
#include "config.h"
#include "cli.h"
#include "pipeline.h"
#include "registry.h"
#include "stage.h"
#include "param.h"
#include "prepare.h"
#include "train.h"
#include "runner.h"
#include "weights.h"
#include "context.h"

#include <malloc.h>
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

static char **plugin_dirs;
static gboolean show_version;
static guint64 max_memory;           /* 0: not given */
static char max_memory_help[256];    /* says the default, which depends on the machine */

#define MAX_MEMORY_MIN G_GUINT64_CONSTANT (1000000)            /* 1M */
#define MAX_MEMORY_MAX G_GUINT64_CONSTANT (1000000000000000)   /* 1P */

/* --max-memory SIZE: bytes, or a number with a decimal (K, M, G, T, P) or
 * binary (Ki, Mi, Gi, Ti) suffix, as the messages that quote the limit
 * write sizes in decimal units (GB). */
static gboolean
parse_max_memory (const char *option, const char *value, gpointer data, GError **error)
{
  static const struct {
    const char *suffix;
    double factor;
  } units[] = {
    { "", 1 }, { "K", 1e3 }, { "M", 1e6 }, { "G", 1e9 }, { "T", 1e12 }, { "P", 1e15 },
    { "Ki", 1024.0 }, { "Mi", 1048576.0 }, { "Gi", 1073741824.0 }, { "Ti", 1099511627776.0 },
  };
  char *end = NULL;
  double number = g_ascii_strtod (value, &end);
  if (end != value && g_ascii_isdigit (*value))
    {
      g_autofree char *suffix = g_strstrip (g_strdup (end));
      if (g_str_has_suffix (suffix, "B") || g_str_has_suffix (suffix, "b"))
        suffix[strlen (suffix) - 1] = '\0';
      for (guint i = 0; i < G_N_ELEMENTS (units); i++)
        if (g_ascii_strcasecmp (suffix, units[i].suffix) == 0)
          {
            double bytes = number * units[i].factor;
            if (bytes >= MAX_MEMORY_MIN && bytes <= MAX_MEMORY_MAX)
              {
                max_memory = (guint64) bytes;
                return TRUE;
              }
            break;
          }
    }
  g_set_error (error, G_OPTION_ERROR, G_OPTION_ERROR_BAD_VALUE,
               "%s: expected a size from 1M to 1P such as 4G or 512M, found '%s'", option, value);
  return FALSE;
}

static const GOptionEntry common_entries[] = {
  { "plugin-dir", 0, 0, G_OPTION_ARG_FILENAME_ARRAY, &plugin_dirs,
    "Also load plugins from DIR, an existing folder (before STRATA_PLUGIN_PATH)", "DIR" },
  { "max-memory", 0, 0, G_OPTION_ARG_CALLBACK, (gpointer) parse_max_memory, max_memory_help,
    "SIZE" },
  { NULL }
};

int
fail (GError *error)
{
  fprintf (stderr, "strata: %s\n", error->message);
  return EXIT_USAGE;
}

/* The library's lines (a file skipped, an image failed), each on stderr. */
void
print_message (const char *line, gpointer user_data)
{
  (void) user_data;
  fprintf (stderr, "%s\n", line);
}

GOptionContext *
make_context (const char *params, const char *summary, const GOptionEntry *entries)
{
  GOptionContext *ctx = g_option_context_new (params);
  g_option_context_set_summary (ctx, summary);
  if (entries)
    g_option_context_add_main_entries (ctx, entries, NULL);
  g_autofree char *default_limit = st_format_bytes (st_memory_limit ());
  g_snprintf (max_memory_help, sizeof max_memory_help,
              "Refuse a pipeline whose tensors and parameters need more than SIZE bytes; "
              "K, M, G, T (1000s) or Ki, Mi, Gi (1024s) suffixes, 1M to 1P "
              "(default: half the physical memory, here %s)", default_limit);
  g_option_context_add_main_entries (ctx, common_entries, NULL);
  return ctx;
}

gboolean
parse_options (GOptionContext *ctx, int *argc, char ***argv)
{
  g_autoptr (GError) error = NULL;
  if (!g_option_context_parse (ctx, argc, argv, &error))
    {
      fprintf (stderr, "strata: %s\n", error->message);
      return FALSE;
    }
  /* A mistyped folder would otherwise just leave its plugins out. */
  for (int i = 0; plugin_dirs && plugin_dirs[i]; i++)
    if (!g_file_test (plugin_dirs[i], G_FILE_TEST_IS_DIR))
      {
        fprintf (stderr, "strata: --plugin-dir: %s: %s\n", plugin_dirs[i],
                 g_file_test (plugin_dirs[i], G_FILE_TEST_EXISTS) ? "not a folder"
                                                                   : "no such folder");
        return FALSE;
      }
  if (max_memory)
    st_set_memory_limit (max_memory);
  st_registry_set_default_dirs ((const char *const *) plugin_dirs);
  return TRUE;
}

/* The progress line, redrawn in place on the terminal. */
static void
draw_progress (const char *line, gpointer user_data)
{
  (void) user_data;
  fprintf (stderr, "\r\033[K%s", line);
  fflush (stderr);
}

StProgressFunc
terminal_progress (gboolean quiet)
{
  return quiet || !isatty (STDERR_FILENO) ? NULL : draw_progress;
}

/* ---- Weights and data, shared by run, eval and train -------------------- */

/* The first stage with parameters (learnt or loaded), or NULL. */
static const char *
first_learnable_stage (const StPipeline *p)
{
  for (int i = 0; i < st_pipeline_n_stages (p); i++)
    {
      StStage *s = st_pipeline_stage (p, i);
      if (st_stage_n_params (s) > 0)
        return s->name;
    }
  return NULL;
}

/* --weights, or the file the pipeline names.  Learnable stages without
 * either would run on random numbers and print confident nonsense, so that
 * takes an explicit random_weights. */
gboolean
load_weights (StPipeline *p, const char *weights, gboolean random_weights, GError **error)
{
  if (weights && random_weights)
    {
      g_set_error (error, ST_ERROR, ST_ERROR_USAGE,
                   "--weights and --random-weights: give one or the other");
      return FALSE;
    }
  const char *path = weights ? weights : st_pipeline_weights_path (p);
  if (path && !random_weights)
    return st_pipeline_load_weights (p, path, error);
  const char *learnable = first_learnable_stage (p);
  if (!random_weights && (learnable || st_pipeline_is_classifier (p)))
    {
      g_set_error (error, ST_ERROR, ST_ERROR_USAGE,
                   "%s: no weights%s%s%s: name a file with --weights FILE or weights= in the "
                   "[pipeline] group (or pass --random-weights to use a fresh random "
                   "initialisation)", st_pipeline_name (p),
                   learnable ? " for its learnable stages (the first is '" : "",
                   learnable ? learnable : "", learnable ? "')" : "");
      return FALSE;
    }
  return TRUE;
}

/* IDX files or a folder of class folders, as samples for the pipeline;
 * what was skipped is said on stderr. */
static StDataset *
load_data (StPipeline *p, const char *dir, gboolean test_set, int limit, int threads,
           guint64 max_pixels, GError **error)
{
  return st_dataset_prepare (p, dir, test_set, limit, threads, max_pixels, print_message, NULL,
                             error);
}

/* ---- Options with ranges, shared by train and eval ------------------------ */

#define MAX_BATCH 65536

static gboolean
parse_choice (const char *option, const char *value, const char *const *names, int *out)
{
  for (int i = 0; names[i]; i++)
    if (g_ascii_strcasecmp (value, names[i]) == 0)
      {
        *out = i;
        return TRUE;
      }
  g_autofree char *all = g_strjoinv ("|", (char **) names);
  fprintf (stderr, "strata: %s: expected %s, found '%s'\n", option, all, value);
  return FALSE;
}

/* An option's number, whole text, finite. */
static gboolean
parse_number (const char *command, const char *option, const char *text, double *out)
{
  char *end = NULL;
  double v = g_ascii_strtod (text, &end);
  if (!*text || *end || !isfinite (v))
    {
      fprintf (stderr, "strata %s: %s: expected a number, found '%s'\n", command, option, text);
      return FALSE;
    }
  *out = v;
  return TRUE;
}

static gboolean
int_in_range (const char *command, const char *option, gint64 v, gint64 lo, gint64 hi)
{
  if (v >= lo && v <= hi)
    return TRUE;
  fprintf (stderr, "strata %s: %s: expected %" G_GINT64_FORMAT " to %" G_GINT64_FORMAT
           ", found %" G_GINT64_FORMAT "\n", command, option, lo, hi, v);
  return FALSE;
}

/* ---- strata train -------------------------------------------------------- */

static char *
default_path (const char *weights, const char *suffix)
{
  const char *dot = strrchr (weights, '.');
  const char *slash = strrchr (weights, '/');
  gsize stem = dot && (!slash || dot > slash) ? (gsize) (dot - weights) : strlen (weights);
  return g_strdup_printf ("%.*s%s", (int) stem, weights, suffix);
}

static int
cmd_train (int argc, char **argv)
{
  StTrainOptions opt;
  st_train_options_init (&opt);
  char *data = NULL, *test = NULL, *output = NULL, *optimizer = NULL, *schedule = NULL;
  char *checkpoint = NULL, *resume = NULL, *log = NULL, *plot = NULL;
  /* Numbers whose default depends on other options are read as text, so
   * that "not given" is not a value a user can type. */
  char *lr_text = NULL, *momentum_text = NULL;
  double val_split = 0, weight_decay = 0, gamma = 0.1;
  int epochs = 10, batch = 64, threads = 0, limit = 0, step_epochs = 10;
  gint64 seed = 1;
  gboolean nesterov = FALSE, no_shuffle = FALSE, quiet = FALSE;
  const GOptionEntry entries[] = {
    { "data", 0, 0, G_OPTION_ARG_FILENAME, &data, "Training data: IDX files or a folder of class folders", "DIR" },
    { "test", 0, 0, G_OPTION_ARG_FILENAME, &test, "Test data, measured after each epoch", "DIR" },
    { "val-split", 0, 0, G_OPTION_ARG_DOUBLE, &val_split,
      "Hold out this fraction of the training data to test on, 0 to less than 1 (default 0: none)", "F" },
    { "output", 'o', 0, G_OPTION_ARG_FILENAME, &output, "Weights file to write (safetensors)", "WEIGHTS" },
    { "epochs", 0, 0, G_OPTION_ARG_INT, &epochs, "Passes over the data, 1 to 100000 (default 10)", "N" },
    { "batch", 'b', 0, G_OPTION_ARG_INT, &batch, "Batch size, 1 to 65536 (default 64)", "N" },
    { "optimizer", 0, 0, G_OPTION_ARG_STRING, &optimizer, "sgd, adam (default) or adamw", "NAME" },
    { "lr", 0, 0, G_OPTION_ARG_STRING, &lr_text,
      "Learning rate, more than 0 (default 0.001 for adam and adamw, 0.01 for sgd)", "X" },
    { "momentum", 0, 0, G_OPTION_ARG_STRING, &momentum_text, "SGD momentum, 0 to less than 1 (default 0.9)", "X" },
    { "nesterov", 0, 0, G_OPTION_ARG_NONE, &nesterov, "SGD with Nesterov momentum", NULL },
    { "weight-decay", 0, 0, G_OPTION_ARG_DOUBLE, &weight_decay,
      "L2 penalty (decoupled for adamw), 0 or more (default 0)", "X" },
    { "schedule", 0, 0, G_OPTION_ARG_STRING, &schedule, "Learning rate: constant (default), step or cosine", "NAME" },
    { "step-epochs", 0, 0, G_OPTION_ARG_INT, &step_epochs,
      "step schedule: epochs between decays, 1 to 100000 (default 10)", "N" },
    { "gamma", 0, 0, G_OPTION_ARG_DOUBLE, &gamma, "step schedule: decay factor, more than 0 to 1 (default 0.1)", "X" },
    { "seed", 0, 0, G_OPTION_ARG_INT64, &seed,
      "Seed of initial weights, shuffling and dropout, 0 or more (default 1)", "N" },
    { "no-shuffle", 0, 0, G_OPTION_ARG_NONE, &no_shuffle, "Keep the data's order", NULL },
    { "jobs", 'j', 0, G_OPTION_ARG_INT, &threads, "Threads, 0 to 1024 (default 0: one per core)", "N" },
    { "limit", 0, 0, G_OPTION_ARG_INT, &limit, "Use only the first N training images, 0 or more (default 0: all)", "N" },
    { "checkpoint", 0, 0, G_OPTION_ARG_FILENAME, &checkpoint, "Checkpoint file (default WEIGHTS.ckpt.safetensors)", "FILE" },
    { "resume", 0, 0, G_OPTION_ARG_FILENAME, &resume, "Continue from a checkpoint", "FILE" },
    { "log", 0, 0, G_OPTION_ARG_FILENAME, &log, "Per-epoch CSV log (default WEIGHTS.csv)", "FILE" },
    { "plot", 0, 0, G_OPTION_ARG_FILENAME, &plot, "Training curves PNG (default WEIGHTS.png)", "FILE" },
    { "quiet", 0, 0, G_OPTION_ARG_NONE, &quiet, "No progress or per-epoch lines", NULL },
    { NULL }
  };
  g_autoptr (GOptionContext) octx = make_context ("PIPELINE --data DIR -o WEIGHTS",
    "Trains a classifier pipeline with softmax cross-entropy.", entries);
  gboolean parsed = parse_options (octx, &argc, &argv);
  g_autofree char *o1 = data, *o2 = test, *o3 = output, *o4 = optimizer, *o5 = schedule,
                  *o6 = checkpoint, *o7 = resume, *o8 = log, *o9 = plot, *o10 = lr_text,
                  *o11 = momentum_text;
  if (!parsed)
    return EXIT_USAGE;
  if (argc != 2 || !data || !output)
    {
      fprintf (stderr, "strata train: expected PIPELINE, --data DIR and -o WEIGHTS (see --help)\n");
      return EXIT_USAGE;
    }
  static const char *const optimizers[] = { "sgd", "adam", "adamw", NULL };
  static const char *const schedules[] = { "constant", "step", "cosine", NULL };
  int choice;
  if (optimizer)
    {
      if (!parse_choice ("--optimizer", optimizer, optimizers, &choice))
        return EXIT_USAGE;
      opt.optimizer = choice;
    }
  if (schedule)
    {
      if (!parse_choice ("--schedule", schedule, schedules, &choice))
        return EXIT_USAGE;
      opt.schedule = choice;
    }
  double lr = opt.optimizer == ST_OPTIM_SGD ? 0.01 : 1e-3, momentum = opt.momentum;
  if ((lr_text && !parse_number ("train", "--lr", lr_text, &lr))
      || (momentum_text && !parse_number ("train", "--momentum", momentum_text, &momentum)))
    return EXIT_USAGE;
  const char *bad = NULL;
  if (lr <= 0)
    bad = "--lr: expected more than 0";
  else if (momentum < 0 || momentum >= 1)
    bad = "--momentum: expected 0 to less than 1";
  else if (!isfinite (weight_decay) || weight_decay < 0)
    bad = "--weight-decay: expected 0 or more";
  else if (!isfinite (val_split) || val_split < 0 || val_split >= 1)
    bad = "--val-split: expected 0 to less than 1";
  else if (!isfinite (gamma) || gamma <= 0 || gamma > 1)
    bad = "--gamma: expected more than 0, at most 1";
  else if (val_split > 0 && test)
    bad = "--val-split and --test: give one or the other";
  if (bad)
    {
      fprintf (stderr, "strata train: %s\n", bad);
      return EXIT_USAGE;
    }
  if (!int_in_range ("train", "--epochs", epochs, 1, 100000)
      || !int_in_range ("train", "--batch", batch, 1, MAX_BATCH)
      || !int_in_range ("train", "--step-epochs", step_epochs, 1, 100000)
      || !int_in_range ("train", "--seed", seed, 0, G_MAXINT64)
      || !int_in_range ("train", "--jobs", threads, 0, ST_MAX_THREADS)
      || !int_in_range ("train", "--limit", limit, 0, G_MAXINT))
    return EXIT_USAGE;
  opt.lr = lr;
  opt.momentum = momentum;
  opt.nesterov = nesterov;
  opt.weight_decay = weight_decay;
  opt.step_epochs = step_epochs;
  opt.gamma = gamma;
  opt.batch_size = batch;
  opt.epochs = epochs;
  opt.shuffle = !no_shuffle;
  opt.seed = (guint64) seed;
  opt.threads = threads;
  opt.quiet = quiet;
  opt.weights_out = output;
  g_autofree char *ckpt = checkpoint ? g_strdup (checkpoint) : default_path (output, ".ckpt.safetensors");
  g_autofree char *csv = log ? g_strdup (log) : default_path (output, ".csv");
  g_autofree char *png = plot ? g_strdup (plot) : default_path (output, ".png");
  opt.checkpoint = ckpt;
  opt.log_csv = csv;
  opt.plot_png = png;
  opt.resume = resume;

  g_autoptr (GError) error = NULL;
  /* Before anything slow: a full training that cannot write its result is
   * an hour lost. */
  if (!st_train_check_outputs (&opt, &error))
    return fail (error);
  if (resume && !g_file_test (resume, G_FILE_TEST_IS_REGULAR))
    {
      fprintf (stderr, "strata train: --resume: %s: %s\n", resume,
               g_file_test (resume, G_FILE_TEST_EXISTS) ? "not a file" : "no such file");
      return EXIT_USAGE;
    }
  StPipeline *p = st_pipeline_load (st_registry_get_default (), argv[1], &error);
  if (!p)
    return fail (error);
  int rc = EXIT_USAGE;
  StDataset *train = NULL, *held = NULL;
  if (!st_train_check_pipeline (p, 0, &error))
    goto out;
  train = load_data (p, data, FALSE, limit, threads, ST_DEFAULT_MAX_PIXELS, &error);
  if (!train)
    goto out;
  if (!st_train_check_pipeline (p, train->n_classes, &error))
    goto out;
  if (val_split > 0)
    held = st_dataset_split (train, val_split, opt.seed);
  else if (test)
    held = load_data (p, test, TRUE, 0, threads, ST_DEFAULT_MAX_PIXELS, &error);
  else if (st_dataset_is_idx_dir (data))
    held = load_data (p, data, TRUE, 0, threads, ST_DEFAULT_MAX_PIXELS, &error);
  if ((test || (st_dataset_is_idx_dir (data) && val_split == 0)) && !held)
    goto out;
  opt.class_names = (const char *const *) train->class_names;
  if (!quiet)
    {
      g_autofree char *testing = held ? g_strdup_printf (", testing on %d images", held->n)
                                      : g_strdup ("");
      fprintf (stderr, "training on %d images%s, %d epochs, batch %d, %s, seed %" G_GINT64_FORMAT "\n",
               train->n, testing, epochs, batch, optimizers[opt.optimizer], seed);
    }
  gint64 start = g_get_monotonic_time ();
  int epochs_run = 0;
  if (!st_train (p, train, held, &opt, &epochs_run, &error))
    {
      /* st_train has said where the checkpoint is. */
      if (g_error_matches (error, ST_ERROR, ST_ERROR_INTERRUPTED))
        {
          rc = 130;
          g_clear_error (&error);
        }
      goto out;
    }
  if (!quiet && epochs_run > 0)
    fprintf (stderr, "wrote %s in %.1f s (log %s, plot %s)\n", output,
             (g_get_monotonic_time () - start) / 1e6, csv, png);
  else if (!quiet)
    fprintf (stderr, "wrote %s: %s had already done all %d epochs, so no log or plot was written\n",
             output, resume, epochs);
  rc = EXIT_OK;
out:
  if (error)
    fail (error);
  st_dataset_free (train);
  st_dataset_free (held);
  st_pipeline_free (p);
  return rc;
}

/* ---- strata eval ---------------------------------------------------------- */

static int
cmd_eval (int argc, char **argv)
{
  char *data = NULL, *weights = NULL, *format = NULL;
  int threads = 0, limit = 0, batch = 256;
  gboolean random_weights = FALSE;
  const GOptionEntry entries[] = {
    { "data", 0, 0, G_OPTION_ARG_FILENAME, &data, "IDX files (their test set) or a folder of class folders", "DIR" },
    { "weights", 'w', 0, G_OPTION_ARG_FILENAME, &weights, "Weights file (default: the pipeline's)", "FILE" },
    { "random-weights", 0, 0, G_OPTION_ARG_NONE, &random_weights,
      "No weights: measure a fresh random initialisation (a baseline)", NULL },
    { "format", 0, 0, G_OPTION_ARG_STRING, &format, "text (default) or json", "FMT" },
    { "batch", 'b', 0, G_OPTION_ARG_INT, &batch, "Images per batch, 1 to 65536 (default 256)", "N" },
    { "jobs", 'j', 0, G_OPTION_ARG_INT, &threads, "Threads, 0 to 1024 (default 0: one per core)", "N" },
    { "limit", 0, 0, G_OPTION_ARG_INT, &limit, "Use only the first N images, 0 or more (default 0: all)", "N" },
    { NULL }
  };
  g_autoptr (GOptionContext) octx = make_context ("PIPELINE --data DIR",
    "Measures a classifier: accuracy, per-class precision and recall, confusion matrix.", entries);
  gboolean parsed = parse_options (octx, &argc, &argv);
  g_autofree char *o1 = data, *o2 = weights, *o3 = format;
  if (!parsed)
    return EXIT_USAGE;
  static const char *const formats[] = { "text", "json", NULL };
  int json = 0;
  if (argc != 2 || !data)
    {
      fprintf (stderr, "strata eval: expected PIPELINE and --data DIR (see --help)\n");
      return EXIT_USAGE;
    }
  if ((format && !parse_choice ("--format", format, formats, &json))
      || !int_in_range ("eval", "--batch", batch, 1, MAX_BATCH)
      || !int_in_range ("eval", "--jobs", threads, 0, ST_MAX_THREADS)
      || !int_in_range ("eval", "--limit", limit, 0, G_MAXINT))
    return EXIT_USAGE;
  g_autoptr (GError) error = NULL;
  StPipeline *p = st_pipeline_load (st_registry_get_default (), argv[1], &error);
  if (!p)
    return fail (error);
  int rc = EXIT_USAGE;
  StDataset *ds = NULL;
  g_autofree guint64 *confusion = NULL;
  g_autoptr (StRunContext) ctx = NULL;
  if (!st_pipeline_is_classifier (p))
    {
      g_set_error (&error, ST_ERROR, ST_ERROR_PIPELINE, "%s: does not end in class scores; "
                   "eval measures classifiers", st_pipeline_name (p));
      goto out;
    }
  if (!load_weights (p, weights, random_weights, &error))
    goto out;
  ds = load_data (p, data, TRUE, limit, threads, ST_DEFAULT_MAX_PIXELS, &error);
  if (!ds || !st_train_check_pipeline (p, ds->n_classes, &error))
    goto out;
  int n = st_pipeline_output_shape (p).c;
  confusion = g_new0 (guint64, (gsize) n * n);
  ctx = st_run_context_new (threads, 0);
  double loss = st_evaluate (p, ds, ctx, batch, confusion, &error);
  if (loss < 0)
    goto out;
  st_print_evaluation (p, ds, confusion, loss, json);
  rc = EXIT_OK;
out:
  if (error)
    fail (error);
  st_dataset_free (ds);
  st_pipeline_free (p);
  return rc;
}

/* ---- main --------------------------------------------------------------- */

static void
usage (FILE *out)
{
  fprintf (out,
           "Usage: strata COMMAND [OPTIONS...]\n\n"
           "Commands:\n"
           "  run PIPELINE INPUT... -o OUT        run a pipeline on image files and folders\n"
           "  train PIPELINE --data DIR -o WEIGHTS  train a classifier\n"
           "  eval PIPELINE --data DIR            accuracy, precision, recall, confusion matrix\n"
           "  inspect PIPELINE [IMAGE -o PNG]     stages, shapes, parameters, multiply-adds;\n"
           "                                      with IMAGE, a picture of each stage's feature maps\n"
           "  plugins [NAME]                      list stage kinds, or one kind's parameters\n\n"
           "'strata COMMAND --help' describes a command's options.\n");
}

int
main (int argc, char **argv)
{
  /* Stage outputs of a few MB are allocated and freed for every strip and
   * batch; glibc would map and unmap each from the kernel, and the page
   * faults cost more than the filters.  Keep such blocks in the heap. */
  mallopt (M_MMAP_THRESHOLD, 32 << 20);
  mallopt (M_TRIM_THRESHOLD, 64 << 20);

  if (argc < 2)
    {
      usage (stderr);
      return EXIT_USAGE;
    }
  const char *cmd = argv[1];
  if (strcmp (cmd, "--version") == 0 || strcmp (cmd, "version") == 0)
    {
      printf ("strata %s (plugin ABI %d)\n", ST_VERSION, ST_ABI_VERSION);
      return EXIT_OK;
    }
  if (strcmp (cmd, "--help") == 0 || strcmp (cmd, "-h") == 0 || strcmp (cmd, "help") == 0)
    {
      usage (stdout);
      return EXIT_OK;
    }
  /* Each command parses its own options: argv[0] becomes "strata CMD". */
  g_autofree char *prog = g_strdup_printf ("strata %s", cmd);
  g_set_prgname (prog);
  argv[1] = prog;
  int rc;
  if (strcmp (cmd, "run") == 0)
    rc = cmd_run (argc - 1, argv + 1);
  else if (strcmp (cmd, "plugins") == 0)
    rc = cmd_plugins (argc - 1, argv + 1);
  else if (strcmp (cmd, "train") == 0)
    rc = cmd_train (argc - 1, argv + 1);
  else if (strcmp (cmd, "eval") == 0)
    rc = cmd_eval (argc - 1, argv + 1);
  else if (strcmp (cmd, "inspect") == 0)
    rc = cmd_inspect (argc - 1, argv + 1);
  else
    {
      fprintf (stderr, "strata: unknown command '%s'\n\n", cmd);
      usage (stderr);
      rc = EXIT_USAGE;
    }
  g_strfreev (plugin_dirs);
  (void) show_version;
  return rc;
}
