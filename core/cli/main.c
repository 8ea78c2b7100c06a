/* strata — the command-line tool. */
#include "config.h"
#include "pipeline.h"
#include "registry.h"
#include "runner.h"
#include "stage.h"
#include "param.h"

#include <stdio.h>
#include <string.h>

enum { EXIT_OK = 0, EXIT_SOME_FAILED = 1, EXIT_USAGE = 2 };

static char **plugin_dirs;
static gboolean show_version;

static const GOptionEntry common_entries[] = {
  { "plugin-dir", 0, 0, G_OPTION_ARG_FILENAME_ARRAY, &plugin_dirs,
    "Also load plugins from DIR (before STRATA_PLUGIN_PATH)", "DIR" },
  { NULL }
};

static int
fail (GError *error)
{
  fprintf (stderr, "strata: %s\n", error->message);
  return EXIT_USAGE;
}

static GOptionContext *
make_context (const char *params, const char *summary, const GOptionEntry *entries)
{
  GOptionContext *ctx = g_option_context_new (params);
  g_option_context_set_summary (ctx, summary);
  if (entries)
    g_option_context_add_main_entries (ctx, entries, NULL);
  g_option_context_add_main_entries (ctx, common_entries, NULL);
  return ctx;
}

static gboolean
parse_options (GOptionContext *ctx, int *argc, char ***argv)
{
  g_autoptr (GError) error = NULL;
  if (!g_option_context_parse (ctx, argc, argv, &error))
    {
      fprintf (stderr, "strata: %s\n", error->message);
      return FALSE;
    }
  st_registry_set_default_dirs ((const char *const *) plugin_dirs);
  return TRUE;
}

/* ---- strata plugins ---------------------------------------------------- */

static const char *
category_name (StCategory c)
{
  switch (c)
    {
    case ST_CATEGORY_FILTER: return "filter";
    case ST_CATEGORY_LAYER: return "layer";
    case ST_CATEGORY_PLUMBING: return "plumbing";
    }
  return "?";
}

static void
print_kind (const StKindEntry *entry, GPtrArray *providers)
{
  const StKind *k = entry->kind;
  printf ("%s — %s\n\n", k->name, k->summary ? k->summary : "");
  printf ("  Category     %s\n", category_name (k->category));
  printf ("  File         %s\n", entry->path);
  printf ("  Rank         %d\n", k->rank);
  printf ("  ABI version  %u\n", k->abi_version);
  if (k->max_inputs < 0)
    printf ("  Inputs       %d or more\n", k->min_inputs);
  else if (k->min_inputs == k->max_inputs)
    printf ("  Inputs       %d\n", k->min_inputs);
  else
    printf ("  Inputs       %d to %d\n", k->min_inputs, k->max_inputs);
  printf ("  Trainable    %s\n", k->backward ? "yes (has backward)" : "no (inference only)");
  for (guint i = 1; i < providers->len; i++)
    {
      const StKindEntry *other = providers->pdata[i];
      printf ("  Also in      %s (rank %d)\n", other->path, other->kind->rank);
    }
  printf ("\nParameters:\n");
  if (k->n_params == 0)
    printf ("  (none)\n");
  for (int i = 0; i < k->n_params; i++)
    {
      const StParamSpec *s = &k->params[i];
      g_autofree char *range = st_param_describe_range (s);
      printf ("\n  %-14s %s%s\n", s->name, st_param_type_name (s->type),
              s->flags & ST_PARAM_REQUIRED ? ", required" : "");
      if (s->help)
        printf ("    %s\n", s->help);
      if (s->default_value)
        printf ("    default: %s\n", s->default_value);
      if (range)
        printf ("    %s: %s\n", s->type == ST_PARAM_ENUM ? "choices" : "range", range);
    }
}

static int
cmd_plugins (int argc, char **argv)
{
  g_autoptr (GOptionContext) octx = make_context ("[NAME]",
    "Lists the stage kinds of every plugin found, or every parameter of one kind.", NULL);
  if (!parse_options (octx, &argc, &argv))
    return EXIT_USAGE;
  StRegistry *reg = st_registry_get_default ();
  if (argc > 2)
    {
      fprintf (stderr, "strata plugins: expected at most one NAME\n");
      return EXIT_USAGE;
    }
  if (argc == 2)
    {
      const StKindEntry *entry = st_registry_lookup (reg, argv[1]);
      if (!entry)
        {
          g_autofree char *near = st_registry_suggest (reg, argv[1]);
          fprintf (stderr, "strata: no stage kind named '%s'%s%s%s\n", argv[1],
                   near ? " (did you mean " : "", near ? near : "", near ? "?)" : "");
          return EXIT_USAGE;
        }
      g_autoptr (GPtrArray) providers = st_registry_providers (reg, argv[1]);
      print_kind (entry, providers);
      return EXIT_OK;
    }
  g_autoptr (GPtrArray) names = st_registry_kind_names (reg);
  printf ("%-14s %-9s %s\n", "KIND", "CATEGORY", "SUMMARY");
  for (guint i = 0; i < names->len; i++)
    {
      const StKindEntry *e = st_registry_lookup (reg, names->pdata[i]);
      printf ("%-14s %-9s %s\n", e->kind->name, category_name (e->kind->category),
              e->kind->summary ? e->kind->summary : "");
      printf ("%-14s %-9s   from %s\n", "", "", e->path);
    }
  printf ("\n%u stage kinds, plugin ABI version %d.\n", names->len, ST_ABI_VERSION);
  GPtrArray *errors = st_registry_load_errors (reg);
  if (errors->len)
    {
      printf ("\nNot loaded:\n");
      for (guint i = 0; i < errors->len; i++)
        printf ("  %s\n", (char *) errors->pdata[i]);
    }
  return EXIT_OK;
}

/* ---- strata inspect ----------------------------------------------------- */

static char *
format_count (double v)
{
  /* 93322 -> "93,322": tables people read. */
  g_autofree char *digits = g_strdup_printf ("%.0f", v);
  GString *s = g_string_new (NULL);
  int len = strlen (digits);
  for (int i = 0; i < len; i++)
    {
      if (i > 0 && (len - i) % 3 == 0)
        g_string_append_c (s, ',');
      g_string_append_c (s, digits[i]);
    }
  return g_string_free (s, FALSE);
}

static int
cmd_inspect (int argc, char **argv)
{
  g_autoptr (GOptionContext) octx = make_context ("PIPELINE",
    "Prints a pipeline's stages, output shapes, parameters and multiply-adds.", NULL);
  if (!parse_options (octx, &argc, &argv))
    return EXIT_USAGE;
  if (argc != 2)
    {
      fprintf (stderr, "strata inspect: expected one PIPELINE\n");
      return EXIT_USAGE;
    }
  g_autoptr (GError) error = NULL;
  StPipeline *p = st_pipeline_load (st_registry_get_default (), argv[1], &error);
  if (!p)
    return fail (error);
  StShape in;
  gboolean fixed = st_pipeline_fixed_input (p, &in);
  if (!fixed)
    in = (StShape) { 1, 3, 256, 256 };
  if (!st_pipeline_prepare (p, in, &error))
    {
      st_pipeline_free (p);
      return fail (error);
    }
  printf ("%s%s%s\n", st_pipeline_name (p), st_pipeline_description (p) ? " — " : "",
          st_pipeline_description (p) ? st_pipeline_description (p) : "");
  printf ("input %dx%dx%d%s\n\n", in.c, in.h, in.w,
          fixed ? "" : " (a filter pipeline takes any image; shown for 3x256x256)");
  printf ("%-16s %-14s %-16s %-14s %12s %16s\n", "STAGE", "KIND", "INPUT", "OUTPUT",
          "PARAMS", "MULT-ADDS");
  double total_params = 0, total_macs = 0;
  gboolean any_floored = FALSE;
  for (int i = 0; i < st_pipeline_n_stages (p); i++)
    {
      StStage *s = st_pipeline_stage (p, i);
      double params = 0;
      for (int k = 0; k < st_stage_n_params (s); k++)
        params += st_tensor_numel (st_stage_get_param (s, k)->value);
      total_params += params;
      total_macs += s->macs;
      g_autofree char *inputs = g_strjoinv (",", (char **) st_pipeline_stage_inputs (p, i));
      g_autofree char *shape = g_strdup_printf ("%dx%dx%d%s", s->out_shape.c, s->out_shape.h,
                                                s->out_shape.w, s->floored ? " *" : "");
      g_autofree char *pc = format_count (params);
      g_autofree char *mc = format_count (s->macs);
      printf ("%-16s %-14s %-16s %-14s %12s %16s\n", s->name, s->kind->name, inputs, shape, pc, mc);
      any_floored |= s->floored;
    }
  g_autofree char *tp = format_count (total_params);
  g_autofree char *tm = format_count (total_macs);
  printf ("%-16s %-14s %-16s %-14s %12s %16s\n", "total", "", "", "", tp, tm);
  if (any_floored)
    printf ("\n* output size rounded down: (W - F + 2P) / S is not a whole number, "
            "so the last rows or columns of the input are not used.\n");
  st_pipeline_free (p);
  return EXIT_OK;
}

/* ---- strata run --------------------------------------------------------- */

static int
cmd_run (int argc, char **argv)
{
  char *output = NULL, *format = NULL;
  int quality = 90, jobs = 0;
  gboolean overwrite = FALSE, quiet = FALSE;
  gint64 max_pixels = ST_DEFAULT_MAX_PIXELS;
  const GOptionEntry entries[] = {
    { "output", 'o', 0, G_OPTION_ARG_FILENAME, &output, "Output file (one image) or folder", "OUT" },
    { "format", 0, 0, G_OPTION_ARG_STRING, &format, "Write png or jpeg (default: keep each input's)", "FMT" },
    { "quality", 'q', 0, G_OPTION_ARG_INT, &quality, "JPEG quality, 1-100 (default 90)", "N" },
    { "jobs", 'j', 0, G_OPTION_ARG_INT, &jobs, "Threads (default: one per core)", "N" },
    { "overwrite", 0, 0, G_OPTION_ARG_NONE, &overwrite, "Replace existing outputs", NULL },
    { "quiet", 0, 0, G_OPTION_ARG_NONE, &quiet, "No progress bar or summary", NULL },
    { "max-pixels", 0, 0, G_OPTION_ARG_INT64, &max_pixels,
      "Refuse images larger than N pixels (default 200000000)", "N" },
    { NULL }
  };
  g_autoptr (GOptionContext) octx = make_context ("PIPELINE INPUT... -o OUT",
    "Runs a pipeline over image files and folders (searched recursively).\n"
    "PIPELINE is a pipeline file, an installed pipeline's name (sharpen), or an\n"
    "inline chain ('grayscale ! kernel preset=emboss').", entries);
  if (!parse_options (octx, &argc, &argv))
    return EXIT_USAGE;
  g_autofree char *output_owned = output, *format_owned = format;
  if (argc < 3)
    {
      fprintf (stderr, "strata run: expected PIPELINE and at least one INPUT (see --help)\n");
      return EXIT_USAGE;
    }
  StRunOptions opt = { .output = output, .jpeg_quality = quality, .jobs = jobs,
                       .overwrite = overwrite, .quiet = quiet,
                       .max_pixels = max_pixels > 0 ? (guint64) max_pixels : 0 };
  if (format)
    {
      if (g_ascii_strcasecmp (format, "png") == 0)
        opt.format = ST_FORMAT_PNG;
      else if (g_ascii_strcasecmp (format, "jpeg") == 0 || g_ascii_strcasecmp (format, "jpg") == 0)
        opt.format = ST_FORMAT_JPEG;
      else
        {
          fprintf (stderr, "strata run: --format: expected png or jpeg, found '%s'\n", format);
          return EXIT_USAGE;
        }
    }
  if (quality < 1 || quality > 100)
    {
      fprintf (stderr, "strata run: --quality: expected 1 to 100, found %d\n", quality);
      return EXIT_USAGE;
    }
  if (jobs < 0)
    {
      fprintf (stderr, "strata run: --jobs: expected a positive number, found %d\n", jobs);
      return EXIT_USAGE;
    }
  g_autoptr (GError) error = NULL;
  StPipeline *p = st_pipeline_load (st_registry_get_default (), argv[1], &error);
  if (!p)
    return fail (error);
  StRunSummary summary;
  gboolean ok = st_run_images (p, (const char *const *) argv + 2, &opt, &summary, &error);
  st_pipeline_free (p);
  if (!ok)
    return fail (error);
  if (!quiet)
    fprintf (stderr, "%u written, %u skipped, %u failed\n", summary.written,
             summary.skipped, summary.failed);
  return summary.failed ? EXIT_SOME_FAILED : EXIT_OK;
}

/* ---- main --------------------------------------------------------------- */

static void
usage (FILE *out)
{
  fprintf (out,
           "Usage: strata COMMAND [OPTIONS...]\n\n"
           "Commands:\n"
           "  run PIPELINE INPUT... -o OUT   run a pipeline on image files and folders\n"
           "  inspect PIPELINE               stages, shapes, parameters, multiply-adds\n"
           "  plugins [NAME]                 list stage kinds, or one kind's parameters\n\n"
           "'strata COMMAND --help' describes a command's options.\n");
}

int
main (int argc, char **argv)
{
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
