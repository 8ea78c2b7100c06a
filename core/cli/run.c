/* strata run: a pipeline over image files and folders. */
#include "cli.h"
#include "context.h"
#include "optvalue.h"
#include "registry.h"
#include "runner.h"

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
  else if (g_ascii_strcasecmp (format, "jsonl") == 0)
    opt->jsonl = *predictions_format = TRUE;
  else if (g_ascii_strcasecmp (format, "csv") == 0)
    *predictions_format = TRUE;
  else
    {
      fprintf (stderr, "strata run: --format: expected png, jpeg, csv or jsonl, found '%s'\n",
               format);
      return FALSE;
    }
  return TRUE;
}

int
cmd_run (int argc, char **argv)
{
  char *output = NULL, *format = NULL, *weights = NULL;
  char *quality_text = NULL, *jobs_text = NULL, *top_text = NULL, *max_pixels_text = NULL;
  gboolean overwrite = FALSE, quiet = FALSE, random_weights = FALSE;
  g_autofree char *jobs_help = g_strdup_printf ("Threads, 1 to %d (default: one per core)",
                                                ST_MAX_THREADS);
  const GOptionEntry entries[] = {
    { "output", 'o', 0, G_OPTION_ARG_FILENAME, &output,
      "Output image (one input; .png, .jpg or .jpeg), folder (one that exists, a name "
      "ending in '/', or with several inputs or a folder), or - for standard output", "OUT" },
    { "format", 0, 0, G_OPTION_ARG_STRING, &format,
      "Images: png or jpeg (default: keep each input's); predictions: csv (default) or jsonl", "FMT" },
    WEIGHTS_OPTION_ENTRIES (weights, random_weights,
                            "No weights: run learnable stages with a fresh random initialisation"),
    { "top", 0, 0, G_OPTION_ARG_STRING, &top_text,
      "Predictions: labels listed per image, 1 or more (default 5)", "K" },
    { "quality", 'q', 0, G_OPTION_ARG_STRING, &quality_text, "JPEG quality, 1 to 100 (default 90)", "N" },
    { "jobs", 'j', 0, G_OPTION_ARG_STRING, &jobs_text, jobs_help, "N" },
    { "overwrite", 0, 0, G_OPTION_ARG_NONE, &overwrite,
      "Replace existing outputs (never an input)", NULL },
    { "quiet", 0, 0, G_OPTION_ARG_NONE, &quiet, "No progress bar or summary", NULL },
    { "max-pixels", 0, 0, G_OPTION_ARG_STRING, &max_pixels_text,
      "Refuse images of more than N pixels, 1 or more (default 200000000)", "N" },
    { NULL }
  };
  g_autoptr (GOptionContext) octx = make_context ("PIPELINE INPUT... -o OUT",
    "Runs a pipeline over image files and folders (searched recursively).\n"
    "PIPELINE is a pipeline file, an installed pipeline's name (sharpen), or an\n"
    "inline chain ('grayscale ! kernel preset=emboss').  INPUT - reads an image\n"
    "from standard input.\n\n"
    "Nothing runs when an output would replace an input or two inputs would\n"
    "have one output.  Exit status: 0 all written (or skipped), 1 some images\n"
    "failed, 2 nothing run (usage, pipeline or output problem), 130 interrupted.", entries);
  gboolean parsed = parse_options (octx, &argc, &argv);
  g_autofree char *output_owned = output, *format_owned = format, *weights_owned = weights;
  g_autofree char *o1 = quality_text, *o2 = jobs_text, *o3 = top_text, *o4 = max_pixels_text;
  if (!parsed)
    return EXIT_USAGE;
  if (argc < 3)
    {
      fprintf (stderr, "strata run: expected PIPELINE and at least one INPUT (see --help)\n");
      return EXIT_USAGE;
    }
  gint64 quality = 90, jobs = 0, top = 5, max_pixels = ST_DEFAULT_MAX_PIXELS;
  g_autoptr (GError) error = NULL;
  if (!st_option_parse_int ("--quality", quality_text, 1, 100, &quality, &error)
      || !st_option_parse_int ("--jobs", jobs_text, 1, ST_MAX_THREADS, &jobs, &error)
      || !st_option_parse_int ("--top", top_text, 1, G_MAXINT, &top, &error)
      || !st_option_parse_int ("--max-pixels", max_pixels_text, 1, G_MAXINT64, &max_pixels,
                               &error))
    {
      fprintf (stderr, "strata run: %s\n", error->message);
      return EXIT_USAGE;
    }
  StRunOptions opt = { .output = output, .jpeg_quality = (int) quality, .jobs = (int) jobs,
                       .overwrite = overwrite, .quiet = quiet, .top_k = (int) top,
                       .max_pixels = (guint64) max_pixels, .message = print_message,
                       .progress = terminal_progress (quiet),
                       .interrupted = say_interrupted, .predictions = print_predictions };
  gboolean predictions_format = FALSE;
  if (format && !parse_format (format, &opt, &predictions_format))
    return EXIT_USAGE;
  StPipeline *p = st_pipeline_load (st_registry_get_default (), argv[1], &error);
  if (!p)
    return fail (error);
  const gboolean classify = st_pipeline_is_classifier (p);
  if (format && classify != predictions_format)
    {
      fprintf (stderr, "strata run: --format %s: %s\n", format,
               classify ? "this pipeline writes predictions: csv or jsonl"
                        : "this pipeline writes images: png or jpeg");
      st_pipeline_free (p);
      return EXIT_USAGE;
    }
  if (!load_weights (p, weights, random_weights, &error))
    {
      st_pipeline_free (p);
      return fail (error);
    }
  StRunSummary summary;
  gboolean ok = st_run_images (p, (const char *const *) argv + 2, &opt, &summary, &error);
  st_pipeline_free (p);
  if (!ok)
    return fail (error);
  if (!quiet)
    fprintf (stderr, "%u written, %u skipped, %u failed, %u interrupted\n", summary.written,
             summary.skipped, summary.failed, summary.interrupted);
  if (summary.interrupted)
    return EXIT_INTERRUPTED;
  return summary.failed ? EXIT_SOME_FAILED : EXIT_OK;
}

