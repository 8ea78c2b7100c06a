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
#include "evaluate.h"
#include "options.h"
#include "optimizer.h"
#include "report.h"
#include "weights.h"
#include "context.h"
#include "dist.h"
#include "dist-run.h"

#include <malloc.h>
#include <stddef.h>
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

static char **plugin_dirs;
static gboolean show_version;        /* in --help only: main answers --version first */
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
  { "version", 0, 0, G_OPTION_ARG_NONE, &show_version, "Print strata's version and exit", NULL },
  { NULL }
};

#define MAX_MEMORY_HELP "Refuse a pipeline whose tensors and parameters need more than SIZE " \
  "bytes; K, M, G, T (1000s) or Ki, Mi, Gi (1024s) suffixes, 1M to 1P (default: half the " \
  "physical memory"

/* For the manual and completion: the help says no machine's memory. */
const GOptionEntry *
cli_common_entries (void)
{
  if (!*max_memory_help)
    g_snprintf (max_memory_help, sizeof max_memory_help, "%s)", MAX_MEMORY_HELP);
  return common_entries;
}

int
fail (GError *error)
{
  /* Rank 0 has said it; the other MPI ranks only stop. */
  if (st_dist_error_echoed (error))
    return EXIT_USAGE;
  if (st_dist_rank () != 0)
    fprintf (stderr, "strata (rank %d): %s\n", st_dist_rank (), error->message);
  else
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
  g_snprintf (max_memory_help, sizeof max_memory_help, "%s, here %s)", MAX_MEMORY_HELP,
              default_limit);
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
      if (st_stage_n_weights (s) > 0)
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

/* ---- strata train -------------------------------------------------------- */

/* What train takes beside StTrainOptions: its data and its files. */
typedef struct {
  char *data, *test, *output, *checkpoint, *resume, *log, *plot;
  double val_split;
  int limit;
  gboolean quiet;
} TrainCommand;

#define TRAIN_FIELD(name) offsetof (TrainCommand, name)

static const StOptionSpec train_data_options[] = {
  { { "data", ST_PARAM_STRING, NULL, 0, 0, 0, NULL,
      "Training data: IDX files or a folder of class folders", TRAIN_FIELD (data) }, 0, "DIR", NULL, NULL },
  { { "test", ST_PARAM_STRING, NULL, 0, 0, 0, NULL, "Test data, measured after each epoch",
      TRAIN_FIELD (test) }, 0, "DIR", NULL, NULL },
  { { "val-split", ST_PARAM_DOUBLE, "0", ST_PARAM_HAS_MIN | ST_PARAM_HAS_MAX | ST_PARAM_MAX_EXCLUSIVE,
      0, 1, NULL, "Hold out this fraction of the training data to test on",
      TRAIN_FIELD (val_split) }, 0, "F", NULL, "0: none" },
  /* Not given, 0 stays: every image. */
  { { "limit", ST_PARAM_INT, NULL, ST_PARAM_HAS_MIN, 1, 0, NULL,
      "Use only the first N training images", TRAIN_FIELD (limit) }, 0, "N", NULL, "all" },
  { { "output", ST_PARAM_STRING, NULL, 0, 0, 0, NULL, "Weights file to write (safetensors)",
      TRAIN_FIELD (output) }, 'o', "WEIGHTS", NULL, NULL },
};

static const StOptionSpec train_file_options[] = {
  { { "checkpoint", ST_PARAM_STRING, NULL, 0, 0, 0, NULL, "Checkpoint file",
      TRAIN_FIELD (checkpoint) }, 0, "FILE", NULL, "WEIGHTS.ckpt.safetensors" },
  { { "resume", ST_PARAM_STRING, NULL, 0, 0, 0, NULL, "Continue from a checkpoint",
      TRAIN_FIELD (resume) }, 0, "FILE", NULL, NULL },
  { { "log", ST_PARAM_STRING, NULL, 0, 0, 0, NULL, "Per-epoch CSV log", TRAIN_FIELD (log) },
    0, "FILE", NULL, "WEIGHTS.csv" },
  { { "plot", ST_PARAM_STRING, NULL, 0, 0, 0, NULL, "Training curves PNG", TRAIN_FIELD (plot) },
    0, "FILE", NULL, "WEIGHTS.png" },
  { { "quiet", ST_PARAM_BOOL, NULL, 0, 0, 0, NULL, "No progress or per-epoch lines",
      TRAIN_FIELD (quiet) }, 'q', NULL, "true", NULL },
};

static void
train_command_clear (TrainCommand *cmd)
{
  st_options_clear (train_data_options, G_N_ELEMENTS (train_data_options), cmd);
  st_options_clear (train_file_options, G_N_ELEMENTS (train_file_options), cmd);
}

static char *
default_path (const char *weights, const char *suffix)
{
  const char *dot = strrchr (weights, '.');
  const char *slash = strrchr (weights, '/');
  gsize stem = dot && (!slash || dot > slash) ? (gsize) (dot - weights) : strlen (weights);
  return g_strdup_printf ("%.*s%s", (int) stem, weights, suffix);
}

/* Options into cmd and opt, checked against each other; FALSE once said why. */
static gboolean
parse_train_command (int *argc, char ***argv, TrainCommand *cmd, StTrainOptions *opt)
{
  const OptionTable tables[] = {
    { train_data_options, G_N_ELEMENTS (train_data_options), cmd },
    { st_train_option_specs, st_train_n_option_specs, opt },
    { train_file_options, G_N_ELEMENTS (train_file_options), cmd },
  };
  if (!cli_parse_table_options ("train", "PIPELINE --data DIR -o WEIGHTS",
                            "Trains a classifier pipeline with softmax cross-entropy.",
                            tables, G_N_ELEMENTS (tables), argc, argv))
    return FALSE;
  const char *bad = NULL;
  if (*argc != 2 || !cmd->data || !cmd->output)
    bad = "expected PIPELINE, --data DIR and -o WEIGHTS (see --help)";
  else if (cmd->val_split > 0 && cmd->test)
    bad = "--val-split and --test: give one or the other";
  if (bad)
    {
      fprintf (stderr, "strata train: %s\n", bad);
      return FALSE;
    }
  return TRUE;
}

/* The files beside -o that were not named, and opt's view of them all. */
static void
settle_train_files (TrainCommand *cmd, StTrainOptions *opt)
{
  if (!cmd->checkpoint)
    cmd->checkpoint = default_path (cmd->output, ".ckpt.safetensors");
  if (!cmd->log)
    cmd->log = default_path (cmd->output, ".csv");
  if (!cmd->plot)
    cmd->plot = default_path (cmd->output, ".png");
  opt->weights_out = cmd->output;
  opt->checkpoint = cmd->checkpoint;
  opt->log_csv = cmd->log;
  opt->plot_png = cmd->plot;
  opt->resume = cmd->resume;
}

/* Before anything slow: a full training that cannot write its result, or
 * whose options contradict each other, is an hour lost. */
static gboolean
check_train_files (const TrainCommand *cmd, const StTrainOptions *opt, GError **error)
{
  if (!st_train_options_check (opt, error) || !st_train_check_outputs (opt, error))
    return FALSE;
  if (cmd->resume && !g_file_test (cmd->resume, G_FILE_TEST_IS_REGULAR))
    {
      g_set_error (error, ST_ERROR, ST_ERROR_USAGE, "--resume: %s: %s", cmd->resume,
                   g_file_test (cmd->resume, G_FILE_TEST_EXISTS) ? "not a file" : "no such file");
      return FALSE;
    }
  return TRUE;
}

/* The training data and the data to test on: --test, a --val-split share,
 * or an IDX folder's test files. */
static gboolean
load_train_data (StPipeline *p, const TrainCommand *cmd, const StTrainOptions *opt,
                 StDataset **train, StDataset **held, GError **error)
{
  *train = load_data (p, cmd->data, FALSE, cmd->limit, opt->threads, ST_DEFAULT_MAX_PIXELS, error);
  if (!*train || !st_train_check_pipeline (p, (*train)->n_classes, error))
    return FALSE;
  if (cmd->val_split > 0)
    *held = st_dataset_split (*train, cmd->val_split, opt->seed);
  else if (cmd->test)
    *held = load_data (p, cmd->test, TRUE, 0, opt->threads, ST_DEFAULT_MAX_PIXELS, error);
  else if (st_dataset_is_idx_dir (cmd->data))
    *held = load_data (p, cmd->data, TRUE, 0, opt->threads, ST_DEFAULT_MAX_PIXELS, error);
  return *held || !(cmd->test || (st_dataset_is_idx_dir (cmd->data) && cmd->val_split == 0));
}

static void
announce_training (const StDataset *train, const StDataset *held, const StTrainOptions *opt)
{
  g_autofree char *testing = held ? g_strdup_printf (", testing on %d images", held->n)
                                  : g_strdup ("");
  fprintf (stderr, "training on %d images%s, %d epochs, batch %d, %s, seed %" G_GUINT64_FORMAT,
           train->n, testing, opt->epochs, opt->batch_size, st_optimizer_name (opt->optimizer),
           opt->seed);
  if (opt->schedule != ST_SCHEDULE_CONSTANT)
    fprintf (stderr, ", %s schedule", st_schedule_name (opt->schedule));
  /* The loss on the progress line and in the log is then the smoothed one. */
  if (opt->label_smoothing > 0)
    fprintf (stderr, ", label smoothing %g (smoothed loss)", opt->label_smoothing);
  fputc ('\n', stderr);
}

/* st_train, then what was written; the exit status. */
static int
run_training (StPipeline *p, StDataset *train, StDataset *held, const TrainCommand *cmd,
              StTrainOptions *opt, GError **error)
{
  TrainPrinter printer = { .quiet = cmd->quiet };
  opt->report = print_train_report;
  opt->report_data = &printer;
  opt->progress = terminal_progress (cmd->quiet);
  opt->class_names = (const char *const *) train->class_names;
  /* Several MPI ranks: rank 0 speaks for them all. */
  if (st_dist_rank () != 0)
    opt->report = NULL;
  gint64 start = g_get_monotonic_time ();
  int epochs_run = 0;
  gboolean trained = st_train (p, train, held, opt, &epochs_run, error);
  /* Every rank stops at the same batch when interrupted. */
  if (trained || g_error_matches (*error, ST_ERROR, ST_ERROR_INTERRUPTED))
    st_dist_agreed ();
  if (!trained)
    {
      /* The report has said where the checkpoint is. */
      if (!g_error_matches (*error, ST_ERROR, ST_ERROR_INTERRUPTED))
        return EXIT_USAGE;
      g_clear_error (error);
      return EXIT_INTERRUPTED;
    }
  if (!cmd->quiet && epochs_run > 0)
    fprintf (stderr, "wrote %s in %.1f s (log %s, plot %s)\n", cmd->output,
             (g_get_monotonic_time () - start) / 1e6, cmd->log, cmd->plot);
  else if (!cmd->quiet)
    fprintf (stderr, "wrote %s: %s had already done all %d epochs, so no log or plot was written\n",
             cmd->output, cmd->resume, opt->epochs);
  return EXIT_OK;
}

static int
cmd_train (int argc, char **argv)
{
  TrainCommand cmd = { 0 };
  StTrainOptions opt;
  st_train_options_init (&opt);
  int rc = EXIT_USAGE;
  g_autoptr (GError) error = NULL;
  StPipeline *p = NULL;
  StDataset *train = NULL, *held = NULL;
  if (!parse_train_command (&argc, &argv, &cmd, &opt))
    goto out;
  if (st_dist_rank () != 0)
    cmd.quiet = TRUE;
  settle_train_files (&cmd, &opt);
  if (!check_train_files (&cmd, &opt, &error))
    goto out;
  p = st_pipeline_load (st_registry_get_default (), argv[1], &error);
  if (!p || !st_train_check_pipeline (p, 0, &error)
      || !load_train_data (p, &cmd, &opt, &train, &held, &error))
    goto out;
  if (!cmd.quiet)
    announce_training (train, held, &opt);
  rc = run_training (p, train, held, &cmd, &opt, &error);
out:
  if (error)
    fail (error);
  st_dataset_free (train);
  st_dataset_free (held);
  st_pipeline_free (p);
  train_command_clear (&cmd);
  return rc;
}

/* ---- strata eval ---------------------------------------------------------- */

typedef struct {
  char *data, *weights;
  gboolean random_weights;
  int format;                  /* index into formats */
  int batch, threads, limit;
} EvalCommand;

#define EVAL_FIELD(name) offsetof (EvalCommand, name)

static const char *const formats[] = { "text", "json", NULL };

static const StOptionSpec eval_options[] = {
  { { "data", ST_PARAM_STRING, NULL, 0, 0, 0, NULL,
      "IDX files (their test set) or a folder of class folders", EVAL_FIELD (data) }, 0, "DIR", NULL, NULL },
  { { "weights", ST_PARAM_STRING, NULL, 0, 0, 0, NULL, "Weights file", EVAL_FIELD (weights) },
    'w', "FILE", NULL, "the pipeline's" },
  { { "random-weights", ST_PARAM_BOOL, NULL, 0, 0, 0, NULL,
      "No weights: measure a fresh random initialisation (a baseline)",
      EVAL_FIELD (random_weights) }, 0, NULL, "true", NULL },
  { { "format", ST_PARAM_ENUM, "text", 0, 0, 0, formats, "Output format", EVAL_FIELD (format) },
    0, "FMT", NULL, NULL },
  { { "batch", ST_PARAM_INT, "256", ST_PARAM_HAS_MIN | ST_PARAM_HAS_MAX, 1, 65536, NULL,
      "Images per batch", EVAL_FIELD (batch) }, 'b', "N", NULL, NULL },
  /* Not given, 0 stays: st_default_threads (), every image. */
  { { "jobs", ST_PARAM_INT, NULL, ST_PARAM_HAS_MIN | ST_PARAM_HAS_MAX, 1, ST_MAX_THREADS, NULL,
      "Threads", EVAL_FIELD (threads) }, 'j', "N", NULL, "one per CPU" },
  { { "limit", ST_PARAM_INT, NULL, ST_PARAM_HAS_MIN, 1, 0, NULL, "Use only the first N images",
      EVAL_FIELD (limit) }, 0, "N", NULL, "all" },
};

static gboolean
parse_eval_command (int *argc, char ***argv, EvalCommand *cmd)
{
  const OptionTable table = { eval_options, G_N_ELEMENTS (eval_options), cmd };
  if (!cli_parse_table_options ("eval", "PIPELINE --data DIR",
                            "Measures a classifier: accuracy, per-class precision and recall, "
                            "confusion matrix.", &table, 1, argc, argv))
    return FALSE;
  if (*argc != 2 || !cmd->data)
    {
      fprintf (stderr, "strata eval: expected PIPELINE and --data DIR (see --help)\n");
      return FALSE;
    }
  return TRUE;
}

/* The pipeline with its weights, measured on the data. */
static StEvaluation *
evaluate_classifier (StPipeline *p, const EvalCommand *cmd, GError **error)
{
  if (!st_pipeline_is_classifier (p))
    {
      g_set_error (error, ST_ERROR, ST_ERROR_PIPELINE, "%s: does not end in class scores; "
                   "eval measures classifiers", st_pipeline_name (p));
      return NULL;
    }
  if (!load_weights (p, cmd->weights, cmd->random_weights, error))
    return NULL;
  g_autoptr (StDataset) ds = load_data (p, cmd->data, TRUE, cmd->limit, cmd->threads,
                                        ST_DEFAULT_MAX_PIXELS, error);
  if (!ds || !st_train_check_pipeline (p, ds->n_classes, error))
    return NULL;
  g_autoptr (StRunContext) ctx = st_run_context_new (cmd->threads, 0);
  return st_evaluate (p, ds, ctx, cmd->batch, error);
}

/* Loads, measures and prints; the exit status. */
static int
evaluate_and_print (const char *pipeline, const EvalCommand *cmd)
{
  g_autoptr (GError) error = NULL;
  StPipeline *p = st_pipeline_load (st_registry_get_default (), pipeline, &error);
  g_autoptr (StEvaluation) ev = p ? evaluate_classifier (p, cmd, &error) : NULL;
  st_pipeline_free (p);
  if (!ev)
    return fail (error);
  /* Several MPI ranks: each measured its share; rank 0 has the sums. */
  st_dist_agreed ();
  if (st_dist_rank () == 0)
    print_evaluation (ev, cmd->format == 1);
  return EXIT_OK;
}

static int
cmd_eval (int argc, char **argv)
{
  EvalCommand cmd = { 0 };
  int rc = parse_eval_command (&argc, &argv, &cmd) ? evaluate_and_print (argv[1], &cmd)
                                                  : EXIT_USAGE;
  st_options_clear (eval_options, G_N_ELEMENTS (eval_options), &cmd);
  return rc;
}

/* ---- main --------------------------------------------------------------- */

int
cli_command_tables (const char *command, OptionTable *tables, int max)
{
  int n = 0;
  const OptionTable train[] = {
    { train_data_options, G_N_ELEMENTS (train_data_options), NULL },
    { st_train_option_specs, st_train_n_option_specs, NULL },
    { train_file_options, G_N_ELEMENTS (train_file_options), NULL },
  };
  if (strcmp (command, "train") == 0)
    for (; n < (int) G_N_ELEMENTS (train) && n < max; n++)
      tables[n] = train[n];
  else if (strcmp (command, "eval") == 0 && max > 0)
    tables[n++] = (OptionTable) { eval_options, G_N_ELEMENTS (eval_options), NULL };
  else if (strcmp (command, "run") == 0 && max > 0)
    {
      tables[n].options = cli_run_options (&tables[n].n_options);
      tables[n++].target = NULL;
    }
  else if (strcmp (command, "inspect") == 0 && max > 0)
    {
      tables[n].options = cli_inspect_options (&tables[n].n_options);
      tables[n++].target = NULL;
    }
  return n;
}

static void
usage (FILE *out)
{
  fprintf (out, "Usage: strata COMMAND [OPTIONS...]\n\nCommands:\n");
  for (const CliCommand *c = cli_commands; c->name; c++)
    {
      g_autofree char *call = g_strdup_printf ("%s %s", c->name, c->synopsis);
      fprintf (out, "  %-36s %s\n", call, c->summary);
    }
  fprintf (out, "\n'strata COMMAND --help' describes a command's options.\n");
}

/* "strata COMMAND ... --version" answers like "strata --version", before
 * the command checks its other arguments ("--" ends the options). */
static gboolean
asks_version (int argc, char **argv)
{
  for (int i = 2; i < argc && strcmp (argv[i], "--") != 0; i++)
    if (strcmp (argv[i], "--version") == 0)
      return TRUE;
  return FALSE;
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
  if (strcmp (cmd, "--man") == 0)
    return cli_print_manual ();
  if (strcmp (cmd, "--version") == 0 || strcmp (cmd, "version") == 0 || asks_version (argc, argv))
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
  /* The verbs that share their work when mpirun or srun started several
   * copies of strata; the others run alone in each. */
  gboolean shared = strcmp (cmd, "run") == 0 || strcmp (cmd, "train") == 0
                    || strcmp (cmd, "eval") == 0;
  if (shared)
    st_dist_init (&argc, &argv);
  if (strcmp (cmd, "run") == 0)
    rc = cmd_run (argc - 1, argv + 1);
  else if (strcmp (cmd, "plugins") == 0)
    rc = cmd_plugins (argc - 1, argv + 1);
  else if (strcmp (cmd, "pipelines") == 0)
    rc = cmd_pipelines (argc - 1, argv + 1);
  else if (strcmp (cmd, "complete") == 0)
    rc = cmd_complete (argc - 1, argv + 1);
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
  return shared ? st_dist_finish (rc) : rc;
}
