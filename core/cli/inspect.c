/* strata inspect: a pipeline's stages, shapes, parameters and
 * multiply-adds, and pictures of its feature maps and filters. */
#include "cli.h"
#include "options.h"
#include "image.h"
#include "registry.h"
#include "stage.h"
#include "visualize.h"

#include <stddef.h>
#include <stdio.h>
#include <string.h>

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

/* A picture goes to a .png that is not the image it is drawn from. */
static gboolean
check_picture_path (const char *option, const char *path, const char *image_path)
{
  if (st_image_format_from_name (path) != ST_FORMAT_PNG)
    {
      fprintf (stderr, "strata inspect: %s: expected a .png file, found '%s'\n", option, path);
      return FALSE;
    }
  g_autofree char *a = g_canonicalize_filename (path, NULL);
  g_autofree char *b = image_path ? g_canonicalize_filename (image_path, NULL) : NULL;
  if (b && strcmp (a, b) == 0)
    {
      fprintf (stderr, "strata inspect: %s: '%s' is the input IMAGE; it is never overwritten\n",
               option, path);
      return FALSE;
    }
  return TRUE;
}

/* IMAGE's colour: pipelines see colour only, as in `strata run`. */
static StTensor *
load_colour (const char *path, GError **error)
{
  StImageInfo info;
  StTensor *image = st_image_load (path, ST_DEFAULT_MAX_PIXELS, &info, error);
  if (image && info.has_alpha)
    {
      StTensor *colour = st_image_split_alpha (image, NULL);
      st_tensor_free (image);
      image = colour;
    }
  return image;
}

/* The table: each stage's kind, inputs, output shape, parameters and
 * multiply-adds, and their totals, for input shape in. */
static void
print_stages (StPipeline *p, StShape in, gboolean fixed, gboolean has_image)
{
  printf ("%s%s%s\n", st_pipeline_name (p), st_pipeline_description (p) ? " — " : "",
          st_pipeline_description (p) ? st_pipeline_description (p) : "");
  printf ("input %dx%dx%d%s\n\n", in.c, in.h, in.w,
          fixed ? "" : has_image ? " (a filter pipeline takes any image; shown for IMAGE)"
                                 : " (a filter pipeline takes any image; shown for 3x256x256)");
  printf ("%-16s %-14s %-16s %-14s %12s %16s\n", "STAGE", "KIND", "INPUT", "OUTPUT",
          "PARAMS", "MULT-ADDS");
  double total_params = 0, total_macs = 0;
  gboolean any_floored = FALSE;
  for (int i = 0; i < st_pipeline_n_stages (p); i++)
    {
      StStage *s = st_pipeline_stage (p, i);
      double params = 0;
      for (int k = 0; k < st_stage_n_weights (s); k++)
        params += st_tensor_numel (st_stage_get_weight (s, k)->value);
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
    printf ("\n* output size rounded down: (W - F + 2P) / S is not a whole number (or, "
            "with pool=, the map is not a whole number of windows), so the last rows or "
            "columns of the input are not used.\n");
}

/* What inspect takes, filled from inspect_options. */
typedef struct {
  char *output, *weights, *weights_image, *augment;
  gboolean random_weights;
  gint64 seed;
} InspectCommand;

#define INSPECT_FIELD(name) offsetof (InspectCommand, name)

static const StOptionSpec inspect_options[] = {
  { { "output", ST_PARAM_STRING, NULL, 0, 0, 0, NULL,
      "With IMAGE: the picture of every stage's feature maps (PNG)", INSPECT_FIELD (output) },
    'o', "MAPS.png", NULL, NULL },
  { { "weights", ST_PARAM_STRING, NULL, 0, 0, 0, NULL, "Weights file", INSPECT_FIELD (weights) },
    'w', "FILE", NULL, "the pipeline's" },
  { { "random-weights", ST_PARAM_BOOL, NULL, 0, 0, 0, NULL,
      "No weights: draw a fresh random initialisation", INSPECT_FIELD (random_weights) },
    0, NULL, "true", NULL },
  { { "weights-image", ST_PARAM_STRING, NULL, 0, 0, 0, NULL,
      "The picture of the first convolution's filters (PNG)", INSPECT_FIELD (weights_image) },
    0, "FILTERS.png", NULL, NULL },
  { { "augment", ST_PARAM_STRING, NULL, 0, 0, 0, NULL,
      "With IMAGE: a grid of 16 samples as training feeds them, random stages drawn (PNG)",
      INSPECT_FIELD (augment) },
    0, "GRID.png", NULL, NULL },
  { { "seed", ST_PARAM_INT64, "1", ST_PARAM_HAS_MIN, 0, 0, NULL,
      "The seed of the augmented samples' draws, as strata train's seed", INSPECT_FIELD (seed) },
    0, "N", NULL, NULL },
};

const StOptionSpec *
cli_inspect_options (int *n)
{
  *n = G_N_ELEMENTS (inspect_options);
  return inspect_options;
}

static int inspect_command (const InspectCommand *cmd, int argc, char **argv);

int
cmd_inspect (int argc, char **argv)
{
  InspectCommand cmd = { 0 };
  const OptionTable table = { inspect_options, G_N_ELEMENTS (inspect_options), &cmd };
  int rc = EXIT_USAGE;
  if (cli_parse_table_options ("inspect", "PIPELINE [IMAGE]",
        "Prints a pipeline's stages, output shapes, parameters and multiply-adds.\n"
        "With IMAGE and -o, also draws every stage's output for that image; with\n"
        "--weights-image, the filters of the first convolution; with IMAGE and\n"
        "--augment, 16 samples of it as the random stages change it in training.",
        &table, 1, &argc, &argv))
    rc = inspect_command (&cmd, argc, argv);
  st_options_clear (inspect_options, G_N_ELEMENTS (inspect_options), &cmd);
  return rc;
}

static int
inspect_command (const InspectCommand *cmd, int argc, char **argv)
{
  const char *output = cmd->output, *weights = cmd->weights;
  const char *weights_image = cmd->weights_image, *augment = cmd->augment;
  const gboolean random_weights = cmd->random_weights;
  if (argc != 2 && argc != 3)
    {
      fprintf (stderr, "strata inspect: expected PIPELINE and at most one IMAGE\n");
      return EXIT_USAGE;
    }
  const char *image_path = argc == 3 ? argv[2] : NULL;
  if (image_path && !output && !augment)
    {
      fprintf (stderr, "strata inspect: with IMAGE, -o MAPS.png or --augment GRID.png names "
               "the picture to write\n");
      return EXIT_USAGE;
    }
  if (augment && !image_path)
    {
      fprintf (stderr, "strata inspect: --augment: samples need an IMAGE to start from\n");
      return EXIT_USAGE;
    }
  if (output && !image_path)
    {
      fprintf (stderr, "strata inspect: -o: feature maps need an IMAGE to run on\n");
      return EXIT_USAGE;
    }
  if ((output && !check_picture_path ("-o", output, image_path))
      || (weights_image && !check_picture_path ("--weights-image", weights_image, image_path))
      || (augment && !check_picture_path ("--augment", augment, image_path)))
    return EXIT_USAGE;
  g_autoptr (GError) error = NULL;
  StPipeline *p = st_pipeline_load (st_registry_get_default (), argv[1], &error);
  if (!p)
    return fail (error);
  g_autoptr (StTensor) image = image_path ? load_colour (image_path, &error) : NULL;
  if (image_path && !image)
    {
      st_pipeline_free (p);
      return fail (error);
    }
  StShape in;
  gboolean fixed = st_pipeline_fixed_input (p, &in);
  if (!fixed)
    in = image ? image->shape : (StShape) { 1, 3, 256, 256 };
  /* Feature maps and filters need the weights; the table and the
   * augmented samples (drawn before any weight) do not. */
  if (!st_pipeline_prepare (p, in, &error)
      || ((output || weights || weights_image)
          && !load_weights (p, weights, random_weights, &error)))
    {
      st_pipeline_free (p);
      return fail (error);
    }
  print_stages (p, in, fixed, image != NULL);
  gboolean ok = TRUE;
  if (output)
    {
      ok = st_draw_feature_maps (p, image, output, &error);
      if (ok)
        printf ("\nfeature maps: %s\n", output);
      else if (error->code != ST_ERROR_IO)
        g_prefix_error (&error, "%s: ", image_path);
    }
  if (ok && weights_image)
    {
      ok = st_draw_weights (p, weights_image, &error);
      if (ok)
        printf ("%sfilters: %s\n", output ? "" : "\n", weights_image);
    }
  if (ok && augment)
    {
      ok = st_draw_augmented (p, image, (guint64) cmd->seed, augment, &error);
      if (ok)
        printf ("%saugmented samples: %s\n", output || weights_image ? "" : "\n", augment);
      else if (error->code != ST_ERROR_IO && error->code != ST_ERROR_PIPELINE)
        g_prefix_error (&error, "%s: ", image_path);
    }
  st_pipeline_free (p);
  return ok ? EXIT_OK : fail (error);
}


