/* strata — benchmark of augmentation: one training epoch of the bundled
 * Fashion-MNIST network (pipelines/fashion-mnist.ini) on generated 28x28
 * images, without and with randomflip, randomcrop (padding 2) and
 * randomerase in front of it, alternated; prints the fastest epoch of
 * each and their ratio (the bound: at most 1.15), in wall time and
 * in the process's CPU time, which a busy machine disturbs less.
 *
 * usage: bench-augment [--threads N] [--runs N] [--images N] */
#include "context.h"
#include "pipeline.h"
#include "prepare.h"
#include "registry.h"
#include "train.h"

#include <stdio.h>
#include <time.h>
#include <stdlib.h>
#include <string.h>

static const char *augment_stages =
  "[flip]\ntype=randomflip\n"
  "[shift]\ntype=randomcrop\npadding=2\n"
  "[erase]\ntype=randomerase\np=0.5\n";

/* The bundled network's file, less its weights= line, with the stages
 * put before its first stage when given. */
static char *
network_text (const char *stages)
{
  g_autofree char *path = g_build_filename (STRATA_SOURCE_ROOT, "pipelines",
                                            "fashion-mnist.ini", NULL);
  g_autofree char *text = NULL;
  if (!g_file_get_contents (path, &text, NULL, NULL))
    {
      fprintf (stderr, "bench-augment: cannot read %s\n", path);
      exit (1);
    }
  GString *out = g_string_new (NULL);
  g_auto (GStrv) lines = g_strsplit (text, "\n", -1);
  gboolean placed = FALSE;
  for (int i = 0; lines[i]; i++)
    {
      if (g_str_has_prefix (lines[i], "weights="))
        continue;
      if (!placed && lines[i][0] == '[' && !g_str_has_prefix (lines[i], "[pipeline]"))
        {
          g_string_append (out, stages);
          placed = TRUE;
        }
      g_string_append_printf (out, "%s\n", lines[i]);
    }
  return g_string_free (out, FALSE);
}

static double
cpu_now (void)
{
  struct timespec t;
  clock_gettime (CLOCK_PROCESS_CPUTIME_ID, &t);
  return t.tv_sec + t.tv_nsec / 1e9;
}

/* Wall seconds of one epoch; *cpu gets its CPU seconds. */
static double
epoch_seconds (StRegistry *reg, const char *text, StDataset *data, int threads, double *cpu)
{
  g_autoptr (GError) error = NULL;
  StPipeline *p = st_pipeline_load_data (reg, text, "fashion-mnist.ini", &error);
  if (!p)
    {
      fprintf (stderr, "bench-augment: %s\n", error->message);
      exit (1);
    }
  StTrainOptions opt;
  st_train_options_init (&opt);
  opt.epochs = 1;
  opt.threads = threads;
  gint64 start = g_get_monotonic_time ();
  double cpu_start = cpu_now ();
  if (!st_train (p, data, NULL, &opt, NULL, &error))
    {
      fprintf (stderr, "bench-augment: %s\n", error->message);
      exit (1);
    }
  double seconds = (g_get_monotonic_time () - start) / 1e6;
  *cpu = cpu_now () - cpu_start;
  st_pipeline_free (p);
  return seconds;
}

/* CPU seconds of the random stages alone over the data in batches of 64,
 * as an epoch runs them: the figure the ratio above is made of, without
 * the noise of a whole epoch. */
static double
stages_alone_seconds (StRegistry *reg, const char *text, StDataset *data)
{
  g_autoptr (GError) error = NULL;
  StPipeline *p = st_pipeline_load_data (reg, text, "fashion-mnist.ini", &error);
  g_assert_no_error (error);
  int first = st_dataset_cached_stages (p), last = st_pipeline_prefix_length (p) - 1;
  StRunContext *ctx = st_run_context_new (1, 1);
  ctx->training = TRUE;
  gsize per = 28 * 28;
  double start = cpu_now ();
  for (int b = 0; b < data->n; b += 64)
    {
      int count = MIN (64, data->n - b);
      g_autofree guint64 *seeds = g_new (guint64, count);
      for (int i = 0; i < count; i++)
        seeds[i] = st_item_seed (1, 0, b + i);
      ctx->item_seeds = seeds;
      g_autoptr (StTensor) batch = st_tensor_new0 (count, 1, 28, 28);
      memcpy (batch->data, data->x->data + b * per, count * per * sizeof (float));
      g_autoptr (StTensor) out = st_pipeline_forward_range (p, ctx, batch, first, last, TRUE,
                                                            &error);
      g_assert_no_error (error);
    }
  double seconds = cpu_now () - start;
  ctx->item_seeds = NULL;
  st_run_context_free (ctx);
  st_pipeline_free (p);
  return seconds;
}

int
main (int argc, char **argv)
{
  int threads = 0, runs = 3, images = 10000;
  for (int i = 1; i + 1 < argc; i += 2)
    {
      if (strcmp (argv[i], "--threads") == 0)
        threads = atoi (argv[i + 1]);
      else if (strcmp (argv[i], "--runs") == 0)
        runs = MAX (1, atoi (argv[i + 1]));
      else if (strcmp (argv[i], "--images") == 0)
        images = MAX (64, atoi (argv[i + 1]));
    }
  StRegistry *reg = st_registry_new (NULL);
  /* Garment-like blobs are not needed: the work per image is the same. */
  StDataset *data = g_new0 (StDataset, 1);
  data->n = images;
  data->x = st_tensor_new0 (images, 1, 28, 28);
  data->n_classes = 10;
  data->labels = g_new (int, images);
  GRand *rand = g_rand_new_with_seed (1);
  for (gsize i = 0; i < st_tensor_numel (data->x); i++)
    data->x->data[i] = (float) g_rand_double (rand);
  for (int i = 0; i < images; i++)
    data->labels[i] = g_rand_int_range (rand, 0, 10);
  g_rand_free (rand);

  g_autofree char *plain = network_text ("");
  g_autofree char *augmented = network_text (augment_stages);
  double best_plain = G_MAXDOUBLE, best_aug = G_MAXDOUBLE;
  double cpu_plain = G_MAXDOUBLE, cpu_aug = G_MAXDOUBLE, unused;
  /* The first epoch of a process pays for warming up (page faults, the
   * BLAS's buffers): not counted. */
  epoch_seconds (reg, plain, data, threads, &unused);
  for (int r = 0; r < runs; r++)
    {
      double ca, cb;
      double a = epoch_seconds (reg, plain, data, threads, &ca);
      double b = epoch_seconds (reg, augmented, data, threads, &cb);
      printf ("run %d: plain %.3f s (CPU %.3f s), augmented %.3f s (CPU %.3f s)\n", r + 1, a,
              ca, b, cb);
      best_plain = MIN (best_plain, a);
      best_aug = MIN (best_aug, b);
      cpu_plain = MIN (cpu_plain, ca);
      cpu_aug = MIN (cpu_aug, cb);
    }
  printf ("epoch of %d images, fastest of %d: plain %.3f s, augmented %.3f s, ratio %.3f; "
          "CPU plain %.3f s, augmented %.3f s, ratio %.3f\n", images, runs, best_plain,
          best_aug, best_aug / best_plain, cpu_plain, cpu_aug, cpu_aug / cpu_plain);
  double alone = G_MAXDOUBLE;
  for (int r = 0; r < runs; r++)
    alone = MIN (alone, stages_alone_seconds (reg, augmented, data));
  printf ("the random stages alone: CPU %.4f s per epoch, %.2f%% of the plain epoch's CPU\n",
          alone, 100 * alone / cpu_plain);
  st_dataset_free (data);
  st_registry_free (reg);
  return 0;
}
