/* strata run: a pipeline over image files and folders. */
#include "cli.h"
#include "context.h"
#include "dist.h"
#include "options.h"
#include "registry.h"
#include "runner.h"

#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

/* A classifier's predictions, when no file is named. */
static void
print_predictions (const char *table, gpointer user_data)
{
  (void) user_data;
  fputs (table, stdout);
  fflush (stdout);
}

/* In the signal handler: write(2) only. */
static void
say_interrupted (gpointer user_data)
{
  (void) user_data;
  static const char msg[] = "\nstrata: interrupted: stopping after the images in progress "
                            "(again to stop at once)\n";
  ssize_t written = write (STDERR_FILENO, msg, sizeof msg - 1);
  (void) written;
}

/* --format: an image format, or (predictions_format) csv or jsonl. */
static gboolean
parse_format (const char *format, StRunOptions *opt, gboolean *predictions_format)
{
  if (g_ascii_strcasecmp (format, "png") == 0)
    opt->format = ST_FORMAT_PNG;
  else if (g_ascii_strcasecmp (format, "jpeg") == 0 || g_ascii_strcasecmp (format, "jpg") == 0)
    opt->format = ST_FORMAT_JPEG;
  else if (g_ascii_strcasecmp (format, "tiff") == 0 || g_ascii_strcasecmp (format, "tif") == 0)
    opt->format = ST_FORMAT_TIFF;
  else if (g_ascii_strcasecmp (format, "webp") == 0)
    opt->format = ST_FORMAT_WEBP;
  else if (g_ascii_strcasecmp (format, "pnm") == 0 || g_ascii_strcasecmp (format, "pgm") == 0
           || g_ascii_strcasecmp (format, "ppm") == 0)
    opt->format = ST_FORMAT_PNM;
  else if (g_ascii_strcasecmp (format, "gif") == 0)
    {
      fprintf (stderr, "strata run: --format gif: GIF is read only "
               "(write png, jpeg, tiff, webp or pnm)\n");
      return FALSE;
    }
  else if (g_ascii_strcasecmp (format, "jsonl") == 0)
    opt->jsonl = *predictions_format = TRUE;
  else if (g_ascii_strcasecmp (format, "csv") == 0)
    *predictions_format = TRUE;
  else
    {
      fprintf (stderr, "strata run: --format: expected png, jpeg, tiff, webp, pnm, csv or jsonl, "
               "found '%s'\n", format);
      return FALSE;
    }
  return TRUE;
}

/* Whether every output is a JPEG, by --format or -o's extension (an
 * output folder aside). */
static gboolean
writes_jpeg (const StRunOptions *opt)
{
  if (opt->format != ST_FORMAT_UNKNOWN)
    return opt->format == ST_FORMAT_JPEG;
  return opt->output && !g_str_has_suffix (opt->output, G_DIR_SEPARATOR_S)
         && !g_file_test (opt->output, G_FILE_TEST_IS_DIR)
         && st_image_format_from_name (opt->output) == ST_FORMAT_JPEG;
}

/* What run takes, filled from run_options. */
typedef struct {
  char *output, *format, *weights;
  gboolean random_weights, overwrite, quiet, verbose, strip, lossless;
  int top, quality, jobs;
  gint64 max_pixels;
} RunCommand;

#define RUN_FIELD(name) offsetof (RunCommand, name)
#define RANGE (ST_PARAM_HAS_MIN | ST_PARAM_HAS_MAX)

static const StOptionSpec run_options[] = {
  { { "output", ST_PARAM_STRING, NULL, 0, 0, 0, NULL,
      "Output image (one input; .png, .jpg, .jpeg, .tif, .tiff, .webp, .pgm, .ppm or .pnm), "
      "folder (one that exists, a name ending in '/', or with several inputs or a folder), or - "
      "for standard output",
      RUN_FIELD (output) }, 'o', "OUT", NULL, NULL },
  { { "format", ST_PARAM_STRING, NULL, 0, 0, 0, NULL,
      "Images: png, jpeg, tiff, webp or pnm; predictions: csv or jsonl", RUN_FIELD (format) },
    0, "FMT", NULL, "each input's own format, or csv" },
  { { "weights", ST_PARAM_STRING, NULL, 0, 0, 0, NULL, "Weights file", RUN_FIELD (weights) },
    'w', "FILE", NULL, "the pipeline's" },
  { { "random-weights", ST_PARAM_BOOL, NULL, 0, 0, 0, NULL,
      "No weights: run learnable stages with a fresh random initialisation",
      RUN_FIELD (random_weights) }, 0, NULL, "true", NULL },
  { { "top", ST_PARAM_INT, "5", ST_PARAM_HAS_MIN, 1, 0, NULL,
      "Predictions: labels listed per image", RUN_FIELD (top) }, 0, "K", NULL, NULL },
  { { "quality", ST_PARAM_INT, "90", RANGE, 1, 100, NULL, "JPEG and WebP quality",
      RUN_FIELD (quality) }, 0, "N", NULL, NULL },
  /* Not given, 0 stays: st_default_threads (). */
  { { "jobs", ST_PARAM_INT, NULL, RANGE, 1, ST_MAX_THREADS, NULL, "Threads", RUN_FIELD (jobs) },
    'j', "N", NULL, "one per CPU" },
  { { "overwrite", ST_PARAM_BOOL, NULL, 0, 0, 0, NULL, "Replace existing outputs (never an input)",
      RUN_FIELD (overwrite) }, 0, NULL, "true", NULL },
  { { "quiet", ST_PARAM_BOOL, NULL, 0, 0, 0, NULL, "No progress bar or summary",
      RUN_FIELD (quiet) }, 'q', NULL, "true", NULL },
  { { "verbose", ST_PARAM_BOOL, NULL, 0, 0, 0, NULL,
      "Also name each file in a folder that is ignored as not an image",
      RUN_FIELD (verbose) }, 'v', NULL, "true", NULL },
  { { "max-pixels", ST_PARAM_INT64, "200000000", ST_PARAM_HAS_MIN, 1, 0, NULL,
      "Refuse images of more than N pixels", RUN_FIELD (max_pixels) }, 0, "N", NULL, NULL },
  { { "strip", ST_PARAM_BOOL, NULL, 0, 0, 0, NULL,
      "Write no metadata (ICC profile, EXIF, XMP); otherwise outputs keep their input's",
      RUN_FIELD (strip) }, 0, NULL, "true", NULL },
  { { "lossless", ST_PARAM_BOOL, NULL, 0, 0, 0, NULL,
      "Write WebP lossless (PNG, TIFF and PNM are anyway; JPEG cannot be)",
      RUN_FIELD (lossless) }, 0, NULL, "true", NULL },
};

const StOptionSpec *
cli_run_options (int *n)
{
  *n = G_N_ELEMENTS (run_options);
  return run_options;
}

static int run_command (RunCommand *cmd, int argc, char **argv);

int
cmd_run (int argc, char **argv)
{
  RunCommand cmd = { 0 };
  const OptionTable table = { run_options, G_N_ELEMENTS (run_options), &cmd };
  int rc = EXIT_USAGE;
  if (cli_parse_table_options ("run", "PIPELINE INPUT... -o OUT",
        "Runs a pipeline over image files and folders (searched recursively).\n"
        "PIPELINE is a pipeline file, an installed pipeline's name (sharpen), or an\n"
        "inline chain ('grayscale ! kernel preset=emboss').  INPUT - reads an image\n"
        "from standard input.\n\n"
        "Nothing runs when an output would replace an input or two inputs would\n"
        "have one output.  Exit status: 0 all written (or skipped), 1 some images\n"
        "failed, 2 nothing run (usage, pipeline or output problem), 130 interrupted.",
        &table, 1, &argc, &argv))
    rc = run_command (&cmd, argc, argv);
  st_options_clear (run_options, G_N_ELEMENTS (run_options), &cmd);
  return rc;
}

static int
run_command (RunCommand *cmd, int argc, char **argv)
{
  if (argc < 3)
    {
      fprintf (stderr, "strata run: expected PIPELINE and at least one INPUT (see --help)\n");
      return EXIT_USAGE;
    }
  const char *format = cmd->format, *weights = cmd->weights;
  const gboolean quiet = cmd->quiet;
  g_autoptr (GError) error = NULL;
  StRunOptions opt = { .output = cmd->output, .jpeg_quality = cmd->quality, .jobs = cmd->jobs,
                       .overwrite = cmd->overwrite, .quiet = quiet, .top_k = cmd->top,
                       .verbose = cmd->verbose, .strip_metadata = cmd->strip,
                       .lossless = cmd->lossless,
                       .max_pixels = (guint64) cmd->max_pixels, .message = print_message,
                       .progress = terminal_progress (quiet),
                       .interrupted = say_interrupted, .predictions = print_predictions };
  gboolean predictions_format = FALSE;
  if (format && !parse_format (format, &opt, &predictions_format))
    return EXIT_USAGE;
  if (cmd->lossless && writes_jpeg (&opt))
    {
      fprintf (stderr, "strata run: --lossless: JPEG cannot be written lossless "
               "(choose --format webp, png or tiff)\n");
      return EXIT_USAGE;
    }
  StPipeline *p = st_pipeline_load (st_registry_get_default (), argv[1], &error);
  if (!p)
    return fail (error);
  const gboolean classify = st_pipeline_is_classifier (p);
  if (format && classify != predictions_format)
    {
      fprintf (stderr, "strata run: --format %s: %s\n", format,
               classify ? "this pipeline writes predictions: csv or jsonl"
                        : "this pipeline writes images: png, jpeg, tiff, webp or pnm");
      st_pipeline_free (p);
      return EXIT_USAGE;
    }
  if (!load_weights (p, weights, cmd->random_weights, &error))
    {
      st_pipeline_free (p);
      return fail (error);
    }
  StRunSummary summary;
  gboolean ok = st_run_images (p, (const char *const *) argv + 2, &opt, &summary, &error);
  st_pipeline_free (p);
  if (!ok)
    return fail (error);
  /* Several MPI ranks: rank 0 says the summary of them all. */
  if (!quiet && st_dist_rank () == 0)
    {
      /* "N ignored" only when a folder held other files: the usual line stays short. */
      g_autofree char *ignored = summary.ignored ? g_strdup_printf (", %u ignored", summary.ignored)
                                                 : g_strdup ("");
      fprintf (stderr, "%u written, %u skipped, %u failed, %u interrupted%s\n", summary.written,
               summary.skipped, summary.failed, summary.interrupted, ignored);
    }
  if (summary.interrupted)
    return EXIT_INTERRUPTED;
  return summary.failed ? EXIT_SOME_FAILED : EXIT_OK;
}

