/* strata — benchmark of the CNN layers: the Keras MNIST network
 * (pipelines/keras-mnist.ini) per batch of 64 and per image at batch 1,
 * forward and forward + backward; each conv layer's forward in GFLOP/s
 * against OpenBLAS's own SGEMM on a matrix of the same M, N, K; and, when
 * a python3 with torch is found, the same network in PyTorch.
 *
 * usage: bench-cnn [--threads N] [--runs N] [--no-torch]
 *
 * Times are medians after warm-up.  The SGEMM reference is looked up in
 * the OpenBLAS the conv2d plugin loaded, after the core set
 * OPENBLAS_CORETYPE: linking OpenBLAS here would load it before main and
 * time other kernels than the plugin runs. */
#include "context.h"
#include "pipeline.h"
#include "registry.h"
#include "stage.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

typedef void (*SgemmFunc) (int order, int ta, int tb, int m, int n, int k, float alpha,
                           const float *a, int lda, const float *b, int ldb, float beta,
                           float *c, int ldc);
typedef void (*SetThreadsFunc) (int n);
typedef char *(*CorenameFunc) (void);

enum { ROW_MAJOR = 101, NO_TRANS = 111 };

static int runs = 20;

static int
compare_double (const void *a, const void *b)
{
  double x = *(const double *) a, y = *(const double *) b;
  return x < y ? -1 : x > y;
}

/* Median of n timings; *best gets the fastest.  On a busy machine the
 * best run is the one least disturbed. */
static double
median (double *v, int n, double *best)
{
  qsort (v, n, sizeof (double), compare_double);
  if (best)
    *best = v[0];
  return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

static double
now_ms (void)
{
  return g_get_monotonic_time () / 1000.0;
}

/* CPU milliseconds of all the process's threads: on a shared machine wall
 * times swing with the neighbours' load, the work done does not. */
static double
cpu_ms (void)
{
  struct timespec ts;
  clock_gettime (CLOCK_PROCESS_CPUTIME_ID, &ts);
  return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static void
fill (StTensor *t, GRand *rand, double lo, double hi)
{
  for (gsize i = 0; i < st_tensor_numel (t); i++)
    t->data[i] = (float) g_rand_double_range (rand, lo, hi);
}

static void
die (GError *error)
{
  fprintf (stderr, "bench-cnn: %s\n", error->message);
  exit (1);
}

/* Median milliseconds of forward (and backward) of the whole network. */
static double
time_network (StPipeline *p, StRunContext *ctx, const StTensor *in, gboolean backward,
              int n_runs, double *best)
{
  g_autoptr (GRand) rand = g_rand_new_with_seed (3);
  StShape out_shape = st_pipeline_output_shape (p);
  g_autoptr (StTensor) grad = st_tensor_new (out_shape, NULL);
  fill (grad, rand, -1, 1);
  double *t = g_new (double, n_runs);
  GError *error = NULL;
  /* Training keeps what backward needs; inference does not. */
  ctx->training = backward;
  for (int r = -3; r < n_runs; r++)
    {
      double t0 = now_ms ();
      StTensor *out = st_pipeline_forward (p, ctx, in, backward, &error);
      if (!out)
        die (error);
      if (backward)
        {
          for (int i = 0; i < st_pipeline_n_stages (p); i++)
            st_stage_zero_grads (st_pipeline_stage (p, i));
          if (!st_pipeline_backward (p, ctx, grad, &error))
            die (error);
        }
      st_tensor_free (out);
      if (r >= 0)
        t[r] = now_ms () - t0;
    }
  double m = median (t, n_runs, best);
  g_free (t);
  return m;
}

/* Runs the PyTorch twin of the network; fills ms[] and best[] from its
 * "key median best" lines. */
static gboolean
run_torch (int threads, double ms[5], double best[5])
{
  static const char *const keys[5] = { "fwd64", "fwdbwd64", "train64", "fwd1", "fwdbwd1" };
  const char *candidates[] = { g_getenv ("PYTHON"), "python3", "/usr/bin/python3" };
  g_autofree char *script = g_build_filename (STRATA_SOURCE_ROOT, "tests", "bench",
                                              "bench_cnn_torch.py", NULL);
  for (guint c = 0; c < G_N_ELEMENTS (candidates); c++)
    {
      if (!candidates[c])
        continue;
      g_autofree char *py = g_find_program_in_path (candidates[c]);
      if (!py)
        continue;
      const char *probe[] = { py, "-c", "import torch", NULL };
      gint status = 1;
      if (!g_spawn_sync (NULL, (char **) probe, NULL, G_SPAWN_STDOUT_TO_DEV_NULL
                         | G_SPAWN_STDERR_TO_DEV_NULL, NULL, NULL, NULL, NULL, &status, NULL)
          || !g_spawn_check_wait_status (status, NULL))
        continue;
      g_autofree char *nthreads = g_strdup_printf ("%d", threads);
      g_autofree char *nruns = g_strdup_printf ("%d", runs);
      const char *argv[] = { py, script, nthreads, nruns, NULL };
      g_autofree char *out = NULL;
      g_autoptr (GError) error = NULL;
      if (!g_spawn_sync (NULL, (char **) argv, NULL, G_SPAWN_DEFAULT, NULL, NULL, &out, NULL,
                         &status, &error)
          || !g_spawn_check_wait_status (status, &error))
        {
          fprintf (stderr, "bench-cnn: %s failed: %s\n", script, error ? error->message : "?");
          return FALSE;
        }
      printf ("PyTorch (%s):\n", py);
      int found = 0;
      g_auto (GStrv) lines = g_strsplit (out, "\n", -1);
      for (int i = 0; lines[i]; i++)
        {
          if (g_str_has_prefix (lines[i], "#"))
            printf ("  %s\n", lines[i] + 1);
          for (int k = 0; k < 5; k++)
            {
              g_autofree char *prefix = g_strdup_printf ("%s ", keys[k]);
              if (g_str_has_prefix (lines[i], prefix))
                {
                  char *end;
                  ms[k] = g_ascii_strtod (lines[i] + strlen (prefix), &end);
                  best[k] = g_ascii_strtod (end, NULL);
                  found++;
                }
            }
        }
      return found == 5;
    }
  printf ("PyTorch: no python3 with torch found (apt-get install python3-torch, or set PYTHON)\n");
  return FALSE;
}

int
main (int argc, char **argv)
{
  int threads = 0;
  gboolean torch = TRUE;
  for (int i = 1; i < argc; i++)
    {
      if (strcmp (argv[i], "--threads") == 0 && i + 1 < argc)
        threads = atoi (argv[++i]);
      else if (strcmp (argv[i], "--runs") == 0 && i + 1 < argc)
        {
          runs = atoi (argv[++i]);
          runs = MAX (runs, 1);
        }
      else if (strcmp (argv[i], "--no-torch") == 0)
        torch = FALSE;
      else
        {
          fprintf (stderr, "usage: bench-cnn [--threads N] [--runs N] [--no-torch]\n");
          return 2;
        }
    }

  GError *error = NULL;
  StRegistry *reg = st_registry_new (NULL);
  g_autofree char *path = g_build_filename (STRATA_SOURCE_ROOT, "pipelines", "keras-mnist.ini", NULL);
  StPipeline *p = st_pipeline_load_file (reg, path, &error);
  if (!p)
    die (error);
  StRunContext *ctx = st_run_context_new (threads, 1);
  threads = st_parallel_threads (ctx);
  for (int i = 0; i < st_pipeline_n_stages (p); i++)
    st_stage_enable_grads (st_pipeline_stage (p, i));

  /* The OpenBLAS conv2d runs, as loaded (and configured) by the core. */
  GModule *blas = g_module_open ("libopenblas.so.0", G_MODULE_BIND_LAZY);
  SgemmFunc sgemm = NULL;
  SetThreadsFunc set_threads = NULL;
  CorenameFunc corename = NULL;
  if (!blas || !g_module_symbol (blas, "cblas_sgemm", (gpointer *) &sgemm)
      || !g_module_symbol (blas, "openblas_set_num_threads", (gpointer *) &set_threads))
    {
      fprintf (stderr, "bench-cnn: cannot find OpenBLAS: %s\n", g_module_error ());
      return 1;
    }
  g_module_symbol (blas, "openblas_get_corename", (gpointer *) &corename);
  const char *coretype = g_getenv ("OPENBLAS_CORETYPE");
  printf ("strata bench-cnn: %s, %d thread%s, OpenBLAS kernels %s (OPENBLAS_CORETYPE=%s), median of %d runs\n\n",
          path, threads, threads == 1 ? "" : "s", corename ? corename () : "?",
          coretype ? coretype : "unset", runs);

  g_autoptr (GRand) rand = g_rand_new_with_seed (1);
  g_autoptr (StTensor) in64 = st_tensor_new0 (64, 1, 28, 28);
  g_autoptr (StTensor) in1 = st_tensor_new0 (1, 1, 28, 28);
  fill (in64, rand, 0, 1);
  fill (in1, rand, 0, 1);

  /* Per layer, batch 64: this stage's forward and backward alone, and for
   * conv layers SGEMM on the product it reduces to. */
  ctx->training = TRUE;
  StTensor *kept = st_pipeline_forward (p, ctx, in64, TRUE, &error);
  if (!kept)
    die (error);
  st_tensor_free (kept);
  printf ("Per layer, batch 64       MFLOP   fwd ms  GFLOP/s (best)   bwd ms  fwd cpu  bwd cpu | SGEMM M x N x K       GFLOP/s (best)  fwd/SGEMM (best)\n");
  double total_fwd = 0, total_bwd = 0, total_fwd_cpu = 0, total_bwd_cpu = 0;
  for (int i = 0; i < st_pipeline_n_stages (p); i++)
    {
      StStage *s = st_pipeline_stage (p, i);
      const StTensor *x = i == 0 ? in64 : st_pipeline_activation (p, i - 1);
      g_autoptr (StTensor) out = st_tensor_new (s->out_shape, NULL);
      g_autoptr (StTensor) gout = st_tensor_new (s->out_shape, NULL);
      g_autoptr (StTensor) gin = st_tensor_new (x->shape, NULL);
      fill (gout, rand, -1, 1);
      StTensor *gins[1] = { i == 0 ? NULL : gin };
      double *tf = g_new (double, runs), *tb = g_new (double, runs);
      double *cf = g_new (double, runs), *cb = g_new (double, runs);
      for (int r = -3; r < runs; r++)
        {
          double c0 = cpu_ms (), t0 = now_ms ();
          if (!s->kind->forward (s, ctx, &x, out, &error))
            die (error);
          double c1 = cpu_ms (), t1 = now_ms ();
          if (s->kind->backward
              && !s->kind->backward (s, ctx, &x, out, gout, gins, &error))
            die (error);
          double c2 = cpu_ms (), t2 = now_ms ();
          if (r >= 0)
            {
              tf[r] = t1 - t0;
              tb[r] = t2 - t1;
              cf[r] = c1 - c0;
              cb[r] = c2 - c1;
            }
        }
      double fbest, f = median (tf, runs, &fbest), b = median (tb, runs, NULL);
      double fc = median (cf, runs, NULL), bc = median (cb, runs, NULL);
      g_free (tf);
      g_free (tb);
      g_free (cf);
      g_free (cb);
      total_fwd += f;
      total_bwd += b;
      total_fwd_cpu += fc;
      total_bwd_cpu += bc;
      char shape[64];
      st_shape_format (s->out_shape, shape, sizeof shape);
      printf ("  %-8s %-14s %6.1f %8.3f %6.1f (%5.1f) %8.3f %8.3f %8.3f |", s->name, shape,
              2e-6 * s->macs, f, 2e-6 * s->macs / f, 2e-6 * s->macs / fbest, b, fc, bc);
      if (strcmp (s->kind->name, "conv2d") == 0)
        {
          /* out [M, N] = W [M, K] × col [K, N] over the whole batch, N
           * the unpooled pixels where the layer pools (pool=). */
          int m = s->out_shape.c;
          int k = (int) (st_tensor_numel (st_stage_param (s, 0)) / m);
          int n = (int) llround (s->macs / ((double) m * k));
          float *a = g_new (float, (gsize) m * k), *bm = g_new (float, (gsize) k * n);
          float *c = g_new (float, (gsize) m * n);
          for (gsize j = 0; j < (gsize) m * k; j++)
            a[j] = (float) g_rand_double (rand);
          for (gsize j = 0; j < (gsize) k * n; j++)
            bm[j] = (float) g_rand_double (rand);
          set_threads (threads);
          double *tg = g_new (double, runs);
          for (int r = -3; r < runs; r++)
            {
              double t0 = now_ms ();
              sgemm (ROW_MAJOR, NO_TRANS, NO_TRANS, m, n, k, 1.0f, a, k, bm, n, 0.0f, c, n);
              if (r >= 0)
                tg[r] = now_ms () - t0;
            }
          double gbest, g = median (tg, runs, &gbest);
          printf (" %3d x %5d x %3d  %6.1f (%5.1f)  %5.2f (%4.2f)", m, n, k, 2e-6 * s->macs / g,
                  2e-6 * s->macs / gbest, g / f, gbest / fbest);
          g_free (tg);
          g_free (a);
          g_free (bm);
          g_free (c);
        }
      printf ("\n");
    }
  printf ("  %-23s %6s %8.3f %14s %8.3f %8.3f %8.3f\n\n", "sum of layers", "", total_fwd, "",
          total_bwd, total_fwd_cpu, total_bwd_cpu);

  double ms[4], best[4];
  ms[0] = time_network (p, ctx, in64, FALSE, runs, &best[0]);
  ms[1] = time_network (p, ctx, in64, TRUE, runs, &best[1]);
  ms[2] = time_network (p, ctx, in1, FALSE, runs * 5, &best[2]);
  ms[3] = time_network (p, ctx, in1, TRUE, runs * 5, &best[3]);
  static const char *const what[4] = {
    "forward, batch 64", "forward+backward, batch 64", "forward, batch 1", "forward+backward, batch 1",
  };
  static const int batch[4] = { 64, 64, 1, 1 };
  printf ("Network                      strata ms  (best)   images/s\n");
  for (int i = 0; i < 4; i++)
    printf ("  %-26s %9.3f %8.3f  %9.0f\n", what[i], ms[i], best[i], batch[i] * 1e3 / ms[i]);
  printf ("\n");

  double tm[5], tb[5];
  if (torch && run_torch (threads, tm, tb))
    {
      /* Index of each strata figure in the torch lines. */
      static const int twin[4] = { 0, 1, 3, 4 };
      printf ("                             torch ms (best)   strata ms (best)   torch/strata (best)  >1: strata faster\n");
      for (int i = 0; i < 4; i++)
        printf ("  %-26s %8.3f %8.3f  %8.3f %8.3f  %6.2f (%4.2f)\n", what[i], tm[twin[i]],
                tb[twin[i]], ms[i], best[i], tm[twin[i]] / ms[i], tb[twin[i]] / best[i]);
      printf ("  %-26s %8.3f %8.3f\n", "(torch fwd+bwd+SGD step)", tm[2], tb[2]);
    }

  st_run_context_free (ctx);
  st_pipeline_free (p);
  st_registry_free (reg);
  return 0;
}
