/* strata — the command-line tool. */
#include "config.h"
#include "pipeline.h"
#include "registry.h"
#include "runner.h"
#include "stage.h"
#include "param.h"
#include "dataset.h"
#include "train.h"
#include "evaluate.h"
#include "options.h"
#include "optimizer.h"
#include "report.h"
#include "weights.h"
#include "context.h"
#include "visualize.h"

#include <malloc.h>
#include <stddef.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

enum { EXIT_OK = 0, EXIT_SOME_FAILED = 1, EXIT_USAGE = 2, EXIT_INTERRUPTED = 130 };

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
  g_autofree char *default_limit = st_format_bytes (st_memory_limit ());
  g_snprintf (max_memory_help, sizeof max_memory_help,
              "Refuse a pipeline whose tensors and parameters need more than SIZE bytes; "
              "K, M, G, T (1000s) or Ki, Mi, Gi (1024s) suffixes, 1M to 1P "
              "(default: half the physical memory, here %s)", default_limit);
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
  if (providers->len > 1)
    printf ("  Rank         %d, overriding the other file%s below\n", k->rank,
            providers->len > 2 ? "s" : "");
  else
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
      printf ("  Also in      %s (rank %d), overridden: %s\n", other->path, other->kind->rank,
              other->kind->rank < k->rank ? "the higher rank is used"
                                          : "of equal ranks, the first found is used");
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
      const char *refusal = entry ? NULL : st_registry_refusal (reg, argv[1]);
      if (refusal)
        {
          fprintf (stderr, "strata: stage kind '%s' is provided only by a plugin that was not "
                   "loaded: %s\n", argv[1], refusal);
          return EXIT_USAGE;
        }
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
  guint overridden = 0;
  for (guint i = 0; i < names->len; i++)
    {
      const StKindEntry *e = st_registry_lookup (reg, names->pdata[i]);
      g_autoptr (GPtrArray) providers = st_registry_providers (reg, names->pdata[i]);
      printf ("%-14s %-9s %s\n", e->kind->name, category_name (e->kind->category),
              e->kind->summary ? e->kind->summary : "");
      if (providers->len == 1)
        {
          printf ("%-14s %-9s   from %s\n", "", "", e->path);
          continue;
        }
      /* A kind provided twice is worth seeing: the winner changes what
       * every pipeline using the kind does. */
      overridden++;
      printf ("%-14s %-9s   from %s (rank %d, used)\n", "", "", e->path, e->kind->rank);
      for (guint k = 1; k < providers->len; k++)
        {
          const StKindEntry *other = providers->pdata[k];
          printf ("%-14s %-9s   also %s (rank %d, overridden)\n", "", "", other->path,
                  other->kind->rank);
        }
    }
  printf ("\n%u stage kinds, plugin ABI version %d.\n", names->len, ST_ABI_VERSION);
  if (overridden)
    printf ("%u kind%s more than one file: the highest rank is used, then the first "
            "found on the search path.\n", overridden,
            overridden == 1 ? " is provided by" : "s are provided by");
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

/* Defined with the helpers shared by run, eval and train, below. */
static gboolean load_weights (StPipeline *p, const char *weights, gboolean random_weights,
                              GError **error);

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

static int
cmd_inspect (int argc, char **argv)
{
  char *output = NULL, *weights = NULL, *weights_image = NULL;
  gboolean random_weights = FALSE;
  const GOptionEntry entries[] = {
    { "output", 'o', 0, G_OPTION_ARG_FILENAME, &output,
      "With IMAGE: the picture of every stage's feature maps (PNG)", "MAPS.png" },
    { "weights", 'w', 0, G_OPTION_ARG_FILENAME, &weights, "Weights file (default: the pipeline's)", "FILE" },
    { "random-weights", 0, 0, G_OPTION_ARG_NONE, &random_weights,
      "No weights: draw a fresh random initialisation", NULL },
    { "weights-image", 0, 0, G_OPTION_ARG_FILENAME, &weights_image,
      "The picture of the first convolution's filters (PNG)", "FILTERS.png" },
    { NULL }
  };
  g_autoptr (GOptionContext) octx = make_context ("PIPELINE [IMAGE]",
    "Prints a pipeline's stages, output shapes, parameters and multiply-adds.\n"
    "With IMAGE and -o, also draws every stage's output for that image; with\n"
    "--weights-image, the filters of the first conv2d stage.", entries);
  /* Owned before parsing, so that a refused option frees those parsed before it. */
  g_autofree char *output_owned = NULL, *weights_owned = NULL, *weights_image_owned = NULL;
  gboolean parsed = parse_options (octx, &argc, &argv);
  output_owned = output;
  weights_owned = weights;
  weights_image_owned = weights_image;
  if (!parsed)
    return EXIT_USAGE;
  if (argc != 2 && argc != 3)
    {
      fprintf (stderr, "strata inspect: expected PIPELINE and at most one IMAGE\n");
      return EXIT_USAGE;
    }
  const char *image_path = argc == 3 ? argv[2] : NULL;
  if (image_path && !output)
    {
      fprintf (stderr, "strata inspect: with IMAGE, -o MAPS.png names the picture to write\n");
      return EXIT_USAGE;
    }
  if (output && !image_path)
    {
      fprintf (stderr, "strata inspect: -o: feature maps need an IMAGE to run on\n");
      return EXIT_USAGE;
    }
  if ((output && !check_picture_path ("-o", output, image_path))
      || (weights_image && !check_picture_path ("--weights-image", weights_image, image_path)))
    return EXIT_USAGE;
  g_autoptr (GError) error = NULL;
  StPipeline *p = st_pipeline_load (st_registry_get_default (), argv[1], &error);
  if (!p)
    return fail (error);
  g_autoptr (StTensor) image = NULL;
  if (image_path)
    {
      StImageInfo info;
      image = st_image_load (image_path, ST_DEFAULT_MAX_PIXELS, &info, &error);
      if (image && info.has_alpha)
        {
          /* Pipelines see colour only, as in `strata run`. */
          StShape s = image->shape;
          StTensor *colour = st_tensor_new0 (1, s.c - 1, s.h, s.w);
          memcpy (colour->data, image->data, st_tensor_numel (colour) * sizeof (float));
          st_tensor_free (image);
          image = colour;
        }
      if (!image)
        {
          st_pipeline_free (p);
          return fail (error);
        }
    }
  StShape in;
  gboolean fixed = st_pipeline_fixed_input (p, &in);
  if (!fixed)
    in = image ? image->shape : (StShape) { 1, 3, 256, 256 };
  /* Drawing needs the weights; the table alone does not. */
  if (!st_pipeline_prepare (p, in, &error)
      || ((image || weights || weights_image)
          && !load_weights (p, weights, random_weights, &error)))
    {
      st_pipeline_free (p);
      return fail (error);
    }
  printf ("%s%s%s\n", st_pipeline_name (p), st_pipeline_description (p) ? " — " : "",
          st_pipeline_description (p) ? st_pipeline_description (p) : "");
  printf ("input %dx%dx%d%s\n\n", in.c, in.h, in.w,
          fixed ? "" : image ? " (a filter pipeline takes any image; shown for IMAGE)"
                             : " (a filter pipeline takes any image; shown for 3x256x256)");
  printf ("%-16s %-14s %-16s %-14s %12s %16s\n", "STAGE", "KIND", "INPUT", "OUTPUT",
          "PARAMS", "MULT-ADDS");
  double total_params = 0, total_macs = 0;
  gboolean any_floored = FALSE;
  for (int i = 0; i < st_pipeline_n_stages (p); i++)
    {
      StStage *s = st_pipeline_stage (p, i);
      double params = (double) (st_stage_weight_bytes (s) / sizeof (float));
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
  gboolean ok = TRUE;
  if (image)
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
        printf ("%sfilters: %s\n", image ? "" : "\n", weights_image);
    }
  st_pipeline_free (p);
  return ok ? EXIT_OK : fail (error);
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
static gboolean
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

static gboolean
is_idx_dir (const char *dir)
{
  const char *names[] = { "train-images-idx3-ubyte", "train-images-idx3-ubyte.gz",
                          "t10k-images-idx3-ubyte", "t10k-images-idx3-ubyte.gz" };
  for (guint i = 0; i < G_N_ELEMENTS (names); i++)
    {
      g_autofree char *path = g_build_filename (dir, names[i], NULL);
      if (g_file_test (path, G_FILE_TEST_IS_REGULAR))
        return TRUE;
    }
  return FALSE;
}

typedef struct {
  StPipeline *p;
  StRunContext *ctx;
  int prefix;
  StShape fixed;
  gboolean has_fixed;
  StShape first_image;         /* as decoded (colour only), for messages */
  gboolean seen_image;
} SampleMaker;

/* An image without its alpha channel: a classifier sees colour only.
 * Returns image itself when it has none. */
static const StTensor *
without_alpha (const StTensor *image, StTensor **owned)
{
  if (image->shape.c != 2 && image->shape.c != 4)
    return image;
  *owned = st_tensor_new0 (1, image->shape.c - 1, image->shape.h, image->shape.w);
  memcpy ((*owned)->data, image->data, st_tensor_numel (*owned) * sizeof (float));
  return *owned;
}

/* A folder image becomes a sample by going through the pipeline's
 * preparation stages (grayscale, resize, ...). */
static StTensor *
make_sample (const StTensor *image, gpointer data, GError **error)
{
  SampleMaker *m = data;
  g_autoptr (StTensor) colour = NULL;
  const StTensor *in = without_alpha (image, &colour);
  if (!m->seen_image)
    {
      m->first_image = in->shape;
      m->seen_image = TRUE;
    }
  if (m->prefix == 0)
    {
      if (m->has_fixed && !st_shape_equal (in->shape, m->fixed))
        {
          char a[64], b[64];
          g_set_error (error, ST_ERROR, ST_ERROR_SHAPE,
                       "image is %s, the pipeline takes %s (add grayscale or resize stages)",
                       st_shape_format (in->shape, a, sizeof a), st_shape_format (m->fixed, b, sizeof b));
          return NULL;
        }
      return st_tensor_copy (in);
    }
  return st_pipeline_forward_range (m->p, m->ctx, in, 0, m->prefix - 1, FALSE, error);
}

/* Without input=, a pipeline's learnable stages are sized at load for a
 * 3x256x256 image; data of another shape would reach them as "declared
 * with another shape".  Say instead what is missing and what to write. */
static gboolean
check_sized_for_data (StPipeline *p, const char *dir, StShape sample, StShape image,
                      GError **error)
{
  int first = st_pipeline_prefix_length (p);
  if (st_pipeline_fixed_input (p, NULL) || first >= st_pipeline_n_stages (p))
    return TRUE;
  StStage *stage = st_pipeline_stage (p, first);
  StShape sized = stage->in_shapes[0];
  sample.n = sized.n = 1;
  if (st_shape_equal (sample, sized))
    return TRUE;
  /* As input= is written: CxHxW. */
  g_set_error (error, ST_ERROR, ST_ERROR_PIPELINE,
               "%s: the [pipeline] group has no input=, so stage '%s' was sized for %dx%dx%d; "
               "the images of %s make it %dx%dx%d: add input=%dx%dx%d to the [pipeline] group",
               st_pipeline_name (p), stage->name, sized.c, sized.h, sized.w, dir,
               sample.c, sample.h, sample.w, image.c, image.h, image.w);
  return FALSE;
}

/* IDX files or a folder of class folders, as samples ready for the part
 * of the pipeline after its preparation stages. */
static StDataset *
load_data (StPipeline *p, const char *dir, gboolean test_set, int limit, int threads,
           guint64 max_pixels, GError **error)
{
  g_autoptr (StDataset) ds = NULL;
  StShape image;
  if (is_idx_dir (dir))
    {
      /* The header says the shape: a misfit is refused before the data
       * (hundreds of MB, maybe) is read. */
      StShape fixed;
      if (!st_dataset_idx_dir_image_shape (dir, test_set, &image, error))
        return NULL;
      if (st_pipeline_fixed_input (p, &fixed) && !st_shape_equal (fixed, image))
        {
          char a[64], b[64];
          g_set_error (error, ST_ERROR, ST_ERROR_DATA, "%s: images are %s, the pipeline %s takes %s",
                       dir, st_shape_format (image, a, sizeof a), st_pipeline_name (p),
                       st_shape_format (fixed, b, sizeof b));
          return NULL;
        }
      ds = st_dataset_load_idx_dir (dir, test_set, error);
      if (!ds)
        return NULL;
      if (limit > 0 && limit < ds->n)
        st_dataset_truncate (ds, limit);
      if (!st_dataset_apply_prefix (ds, p, threads, error))
        return NULL;
    }
  else
    {
      g_autoptr (StRunContext) ctx = st_run_context_new (threads, 0);
      SampleMaker maker = { .p = p, .ctx = ctx, .prefix = st_pipeline_prefix_length (p) };
      maker.has_fixed = st_pipeline_fixed_input (p, &maker.fixed);
      ds = st_dataset_load_folder (dir, st_pipeline_labels (p), make_sample, &maker, max_pixels, error);
      if (!ds)
        return NULL;
      image = maker.first_image;
      if (limit > 0 && limit < ds->n)
        st_dataset_truncate (ds, limit);
      if (ds->n_skipped)
        fprintf (stderr, "%s: %u unreadable images skipped\n", dir, ds->n_skipped);
    }
  if (ds->n > 0 && !check_sized_for_data (p, dir, ds->x->shape, image, error))
    return NULL;
  return g_steal_pointer (&ds);
}

/* ---- Options from tables, for train and eval ----------------------------- */

/* Parses the command line into the tables' structs; FALSE once said why. */
static gboolean
parse_table_options (const char *command, const char *params, const char *summary,
                     const OptionTable *tables, int n_tables, int *argc, char ***argv)
{
  g_autoptr (CliOptions) options = cli_options_new (tables, n_tables);
  g_autoptr (GOptionContext) octx = make_context (params, summary, cli_options_entries (options));
  if (!parse_options (octx, argc, argv))
    return FALSE;
  g_autoptr (GError) error = NULL;
  if (!cli_options_apply (options, &error))
    {
      fprintf (stderr, "strata %s: %s\n", command, error->message);
      return FALSE;
    }
  return TRUE;
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
  { { "limit", ST_PARAM_INT, "0", ST_PARAM_HAS_MIN, 0, 0, NULL,
      "Use only the first N training images", TRAIN_FIELD (limit) }, 0, "N", NULL, "0: all" },
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
      TRAIN_FIELD (quiet) }, 0, NULL, "true", NULL },
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
  if (!parse_table_options ("train", "PIPELINE --data DIR -o WEIGHTS",
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

/* Before anything slow: a full training that cannot write its result is
 * an hour lost. */
static gboolean
check_train_files (const TrainCommand *cmd, const StTrainOptions *opt, GError **error)
{
  if (!st_train_check_outputs (opt, error))
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
  else if (is_idx_dir (cmd->data))
    *held = load_data (p, cmd->data, TRUE, 0, opt->threads, ST_DEFAULT_MAX_PIXELS, error);
  return *held || !(cmd->test || (is_idx_dir (cmd->data) && cmd->val_split == 0));
}

static void
announce_training (const StDataset *train, const StDataset *held, const StTrainOptions *opt)
{
  g_autofree char *testing = held ? g_strdup_printf (", testing on %d images", held->n)
                                  : g_strdup ("");
  fprintf (stderr, "training on %d images%s, %d epochs, batch %d, %s, seed %" G_GUINT64_FORMAT "\n",
           train->n, testing, opt->epochs, opt->batch_size, st_optimizer_name (opt->optimizer),
           opt->seed);
}

/* st_train, then what was written; the exit status. */
static int
run_training (StPipeline *p, StDataset *train, StDataset *held, const TrainCommand *cmd,
              StTrainOptions *opt, GError **error)
{
  TrainPrinter printer;
  train_printer_init (&printer, cmd->quiet);
  opt->report = print_train_report;
  opt->report_data = &printer;
  opt->class_names = (const char *const *) train->class_names;
  gint64 start = g_get_monotonic_time ();
  int epochs_run = 0;
  if (!st_train (p, train, held, opt, &epochs_run, error))
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
  { { "jobs", ST_PARAM_INT, "0", ST_PARAM_HAS_MIN | ST_PARAM_HAS_MAX, 0, ST_MAX_THREADS, NULL,
      "Threads", EVAL_FIELD (threads) }, 'j', "N", NULL, "0: one per core" },
  { { "limit", ST_PARAM_INT, "0", ST_PARAM_HAS_MIN, 0, 0, NULL, "Use only the first N images",
      EVAL_FIELD (limit) }, 0, "N", NULL, "0: all" },
};

static gboolean
parse_eval_command (int *argc, char ***argv, EvalCommand *cmd)
{
  const OptionTable table = { eval_options, G_N_ELEMENTS (eval_options), cmd };
  if (!parse_table_options ("eval", "PIPELINE --data DIR",
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

/* ---- strata run --------------------------------------------------------- */

/* An integer option given as text, in [min, max]; unset (NULL) keeps
 * *value.  Taking the text rather than G_OPTION_ARG_INT leaves no value
 * that means "unset", and out-of-range numbers are refused, not wrapped. */
static gboolean
parse_ranged_int (const char *option, const char *text, gint64 min, gint64 max, gint64 *value)
{
  if (!text)
    return TRUE;
  gint64 v;
  if (!g_ascii_string_to_signed (text, 10, min, max, &v, NULL))
    {
      if (max >= G_MAXINT)  /* "or more": the type's own limit is no range a user needs */
        fprintf (stderr, "strata run: %s: expected a whole number, %" G_GINT64_FORMAT
                 " or more, found '%s'\n", option, min, text);
      else
        fprintf (stderr, "strata run: %s: expected a whole number from %" G_GINT64_FORMAT
                 " to %" G_GINT64_FORMAT ", found '%s'\n", option, min, max, text);
      return FALSE;
    }
  *value = v;
  return TRUE;
}

static int
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
    { "weights", 'w', 0, G_OPTION_ARG_FILENAME, &weights, "Weights file (default: the pipeline's)", "FILE" },
    { "random-weights", 0, 0, G_OPTION_ARG_NONE, &random_weights,
      "No weights: run learnable stages with a fresh random initialisation", NULL },
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
  if (!parse_ranged_int ("--quality", quality_text, 1, 100, &quality)
      || !parse_ranged_int ("--jobs", jobs_text, 1, ST_MAX_THREADS, &jobs)
      || !parse_ranged_int ("--top", top_text, 1, G_MAXINT, &top)
      || !parse_ranged_int ("--max-pixels", max_pixels_text, 1, G_MAXINT64, &max_pixels))
    return EXIT_USAGE;
  StRunOptions opt = { .output = output, .jpeg_quality = (int) quality, .jobs = (int) jobs,
                       .overwrite = overwrite, .quiet = quiet, .top_k = (int) top,
                       .max_pixels = (guint64) max_pixels };
  gboolean predictions_format = FALSE;
  if (format)
    {
      if (g_ascii_strcasecmp (format, "png") == 0)
        opt.format = ST_FORMAT_PNG;
      else if (g_ascii_strcasecmp (format, "jpeg") == 0 || g_ascii_strcasecmp (format, "jpg") == 0)
        opt.format = ST_FORMAT_JPEG;
      else if (g_ascii_strcasecmp (format, "jsonl") == 0)
        opt.jsonl = predictions_format = TRUE;
      else if (g_ascii_strcasecmp (format, "csv") == 0)
        predictions_format = TRUE;
      else
        {
          fprintf (stderr, "strata run: --format: expected png, jpeg, csv or jsonl, found '%s'\n", format);
          return EXIT_USAGE;
        }
    }
  g_autoptr (GError) error = NULL;
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
